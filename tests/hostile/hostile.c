/*
 * hostile.c - hostile clients against the real shopd binary.
 *
 * Each test starts its own shopd (small limits where the case needs them),
 * attacks it over raw sockets, and then asserts three things:
 *   1. every attack got a clear answer: a 4xx (505 for an unknown HTTP
 *      version), a JSON error body where shopd itself answered, or a
 *      closed connection - never a hang, never a 2xx for garbage;
 *   2. the server still serves: /healthz 200 and a normal POST /buy 202,
 *      each within a generous bound (seconds);
 *   3. nothing leaked: the open descriptors of the process come back to
 *      their level before the attack (polled up to a deadline), resident
 *      memory did not grow by what was sent, and SIGTERM still gives a
 *      clean drain with exit status 0 and no sanitizer report.
 *
 * Every wait is a poll on a condition with a deadline; the only sleeps
 * pace the slowloris attacker (that is the attack, not synchronisation).
 * Time bounds are multiplied by $E2E_SLOW for sanitizer builds.
 *
 * Run: SHOPD_BIN=./shopd build/tests/hostile/hostile
 *      (CK_RUN_CASE=slowloris etc. runs one case; CK_FORK=no for gdb)
 */
#include "tests/hostile/hostile.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lib/clock.h"
#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/process.h"
#include "tests/lib/reliability.h"

/* How long one attack may wait for its answer or close. */
#define IO_MS 10000
/* Bound for /healthz and POST /buy after an attack. */
#define ALIVE_MS 5000
/* How long the server may take to release descriptors after an attack. */
#define FD_MS 15000

/* ---- helpers ---------------------------------------------------------- */

/* A started shopd with the numbers taken right after it started. */
struct target {
    struct shopd *s;
    unsigned port;
    pid_t pid;
    int fds0;  /* open descriptors with no client connected */
    long rss0; /* resident KiB after a warm-up request */
};

static void target_start(struct target *t, const char *const *args)
{
    memset(t, 0, sizeof(*t));
    t->s = shopd_start(args, NULL);
    t->port = shopd_port(t->s);
    t->pid = shopd_pid(t->s);
    t->fds0 = rel_proc_fd_count(t->pid);
    ck_assert_msg(t->fds0 > 0, "cannot read /proc/%d/fd", (int)t->pid);
    rel_expect_alive(t->port, ALIVE_MS);
    int n = rel_wait_fds_at_most(t->pid, t->fds0, e2e_slow_ms(FD_MS));
    ck_assert_msg(n <= t->fds0, "warm-up left descriptors open: %d > %d", n,
                  t->fds0);
    t->rss0 = rel_proc_rss_kb(t->pid);
}

/* Alive, descriptors back, clean exit. */
static void target_finish(struct target *t)
{
    ck_assert_msg(shopd_running(t->s), "shopd died during the attack");
    rel_expect_alive(t->port, ALIVE_MS);
    int n = rel_wait_fds_at_most(t->pid, t->fds0, e2e_slow_ms(FD_MS));
    ck_assert_msg(n <= t->fds0,
                  "descriptors not released: %d open, %d before the attack", n,
                  t->fds0);
    rel_expect_clean_exit(t->s, 30000, NULL);
    shopd_destroy(t->s);
    t->s = NULL;
}

static void assert_rss_growth_below(const struct target *t, long kb,
                                    const char *what)
{
    long rss = rel_proc_rss_kb(t->pid);
    ck_assert_msg(rss > 0, "cannot read VmRSS");
    /* Sanitizer builds keep freed memory in quarantine for a while. */
    kb *= e2e_slow();
    printf("hostile: %s: VmRSS %ld KiB -> %ld KiB\n", what, t->rss0, rss);
    ck_assert_msg(rss - t->rss0 < kb,
                  "%s: resident memory grew by %ld KiB (limit %ld KiB)", what,
                  rss - t->rss0, kb);
}

/* Abort a connection with a reset (SO_LINGER 0), as a crashing client. */
static void reset_close(struct http_conn *c)
{
    if (c->fd >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    http_close(c);
}

static bool in_list(int v, const int *list)
{
    for (; *list != 0; list++)
        if (*list == v)
            return true;
    return false;
}

/* Whether a read result means "the server closed without an answer". */
static bool closed_rc(int rc)
{
    return rc == -EPIPE || rc == -ECONNRESET;
}

/*
 * Check one attack's outcome: closed without an answer, or a status from
 * `allowed` (0-terminated). After an error status the server must also
 * close the connection (it cannot trust the rest of the stream).
 */
static void expect_refused(const char *what, struct http_conn *c, int rc,
                           const struct http_resp *r, const int *allowed)
{
    if (closed_rc(rc))
        return;
    ck_assert_msg(rc == 0, "%s: no answer and no close (%s)", what,
                  strerror(-rc));
    ck_assert_msg(in_list(r->status, allowed), "%s: got status %d, body %.200s",
                  what, r->status, r->body ? r->body : "");
    if (r->status >= 400 && r->status != 404 && r->status != 405) {
        int e = http_wait_closed(c, e2e_slow_ms(IO_MS));
        ck_assert_msg(e == 0, "%s: connection not closed after %d (%s)", what,
                      r->status, strerror(-e));
    }
}

/* Send raw bytes on a fresh connection and read the answer. */
static int raw_exchange(unsigned port, const void *data, size_t len,
                        struct http_conn *c, struct http_resp *r)
{
    memset(r, 0, sizeof(*r));
    int e = http_connect(c, port);
    ck_assert_msg(e == 0, "connect: %s", strerror(-e));
    e = http_send_raw(c, data, len);
    /* The server may close before it read everything: that is fine, the
     * answer (if any) is still in our receive buffer. */
    (void)e;
    return http_read(c, r, false, e2e_slow_ms(IO_MS));
}

/* A deterministic generator (xorshift64*) so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static char *repeat(const char *s, size_t times)
{
    size_t n = strlen(s);
    char *p = malloc(n * times + 1);
    ck_assert(p != NULL);
    for (size_t i = 0; i < times; i++)
        memcpy(p + i * n, s, n);
    p[n * times] = '\0';
    return p;
}

/* No per-address limit: the attacks here come from 127.0.0.1 as the
 * probes do, and test the other limits. */
static const char *const default_args[] = {"--max-connections",
                                           "200",
                                           "--conn-timeout",
                                           "2",
                                           "--max-connections-per-ip",
                                           "0",
                                           NULL};

/* ---- malformed request lines ----------------------------------------- */

struct raw_case {
    const char *name;
    const char *data;
    size_t len;
    int allowed[6];
};

/* A literal and its length (it may hold NUL bytes). */
#define RAW(lit) lit, sizeof(lit) - 1

static const struct raw_case malformed[] = {
    {"garbage line", RAW("GARBAGE\r\n\r\n"), {400, 0}},
    {"method only", RAW("GET\r\n\r\n"), {400, 0}},
    {"empty lines", RAW("\r\n\r\n\r\n\r\n"), {400, 0}},
    {"extra token",
     RAW("GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n"),
     {400, 0}},
    {"bad protocol",
     RAW("GET /healthz FOO/1.1\r\nHost: x\r\n\r\n"),
     {400, 505, 0}},
    {"HTTP/9.9",
     RAW("GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n"),
     {400, 505, 0}},
    {"header without colon",
     RAW("GET /healthz HTTP/1.1\r\nNoColonHere\r\nHost: x\r\n\r\n"),
     {400, 0}},
    {"NUL in request line",
     RAW("GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n"),
     {400, 404, 0}},
    {"bad Content-Length",
     RAW("POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
     {400, 0}},
    {"negative Content-Length",
     RAW("POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
     {400, 0}},
    {"Content-Length past 2^64",
     RAW("POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: "
         "99999999999999999999999\r\n\r\n"),
     {400, 413, 0}},
    {"two Content-Lengths",
     RAW("POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         "Content-Length: 7\r\n\r\nabcde"),
     {400, 0}},
    {"bad chunk size",
     RAW("POST /buy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "zz\r\nabc\r\n0\r\n\r\n"),
     {400, 0}},
    {"huge chunk size",
     RAW("POST /buy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "ffffffffffffffffff\r\nabc"),
     {400, 413, 0}},
    {"TLS client hello",
     RAW("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\x01\x02\x03\r\n"
         "\r\n"),
     {400, 0}},
};

START_TEST(test_hostile_malformed_request_lines)
{
    struct target t;
    target_start(&t, default_args);
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        const struct raw_case *rc = &malformed[i];
        struct http_conn c;
        struct http_resp r;
        int e = raw_exchange(t.port, rc->data, rc->len, &c, &r);
        expect_refused(rc->name, &c, e, &r, rc->allowed);
        http_resp_free(&r);
        http_close(&c);
    }

    /* A request line far over the connection's memory: 414 or closed. */
    char *longurl = repeat("a", 64 * 1024);
    size_t reqcap = strlen(longurl) + 64;
    char *req = malloc(reqcap);
    ck_assert(req != NULL);
    snprintf(req, reqcap, "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", longurl);
    struct http_conn c;
    struct http_resp r;
    int e = raw_exchange(t.port, req, strlen(req), &c, &r);
    expect_refused("64 KiB URI", &c, e, &r, (const int[]){414, 400, 431, 0});
    http_resp_free(&r);
    http_close(&c);
    /* A 64 KiB method. */
    snprintf(req, reqcap, "%s / HTTP/1.1\r\nHost: x\r\n\r\n", longurl);
    for (char *p = req; *p == 'a'; p++)
        *p = 'A';
    e = raw_exchange(t.port, req, strlen(req), &c, &r);
    expect_refused("64 KiB method", &c, e, &r,
                   (const int[]){400, 405, 414, 431, 501, 0});
    http_resp_free(&r);
    http_close(&c);
    free(req);
    free(longurl);

    /* A request cut off in its headers, then silence: the idle timeout
     * (2 s here) closes it. */
    e = http_connect(&c, t.port);
    ck_assert_int_eq(e, 0);
    const char *cut = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Cut: y";
    ck_assert_int_eq(http_send_raw(&c, cut, strlen(cut)), 0);
    e = http_read(&c, &r, false, e2e_slow_ms(IO_MS));
    ck_assert_msg(closed_rc(e) || (e == 0 && r.status >= 400 && r.status < 500),
                  "cut-off headers: rc %d status %d", e, r.status);
    http_resp_free(&r);
    http_close(&c);
    target_finish(&t);
}
END_TEST

/* ---- headers over the limit ------------------------------------------- */

START_TEST(test_hostile_headers_over_limit)
{
    struct target t;
    target_start(&t, default_args);
    static const int allowed[] = {431, 400, 413, 0};

    /* One 80 KiB header: past the 32 KiB connection memory pool
     * (8 KiB of headers are served, SPEC §10). */
    char *big = repeat("b", 80 * 1024);
    size_t cap = 200 * 1024;
    char *req = malloc(cap);
    ck_assert(req != NULL);
    snprintf(req, cap, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n",
             big);
    struct http_conn c;
    struct http_resp r;
    int e = raw_exchange(t.port, req, strlen(req), &c, &r);
    expect_refused("one 80 KiB header", &c, e, &r, allowed);
    http_resp_free(&r);
    http_close(&c);

    /* 3000 small headers (about 40 KiB). */
    size_t off = (size_t)snprintf(req, cap,
                                  "GET /healthz HTTP/1.1\r\n"
                                  "Host: x\r\n");
    for (int i = 0; i < 3000; i++)
        off += (size_t)snprintf(req + off, cap - off, "X-H%d: v%d\r\n", i, i);
    snprintf(req + off, cap - off, "\r\n");
    e = raw_exchange(t.port, req, strlen(req), &c, &r);
    expect_refused("3000 headers", &c, e, &r, allowed);
    http_resp_free(&r);
    http_close(&c);

    /* A header block that never ends: 150 KiB without an empty line. */
    off = (size_t)snprintf(req, cap, "POST /buy HTTP/1.1\r\nHost: x\r\n");
    while (off + 64 < 150 * 1024)
        off += (size_t)snprintf(req + off, cap - off, "X-Endless: %032llu\r\n",
                                (unsigned long long)off);
    e = raw_exchange(t.port, req, off, &c, &r);
    expect_refused("endless header block", &c, e, &r, allowed);
    http_resp_free(&r);
    http_close(&c);
    free(req);
    free(big);
    target_finish(&t);
}
END_TEST

/* ---- bodies over the limit ------------------------------------------- */

/* Expect shopd's own 413: JSON body_too_large and Connection: close. */
static void expect_413(const char *what, struct http_conn *c, int rc,
                       const struct http_resp *r)
{
    ck_assert_msg(rc == 0, "%s: no answer (%s)", what, strerror(-rc));
    expect_error(r, 413, "body_too_large");
    ck_assert_msg(http_says_close(r), "%s: 413 without Connection: close",
                  what);
    int e = http_wait_closed(c, e2e_slow_ms(IO_MS));
    ck_assert_msg(e == 0, "%s: connection not closed after 413 (%s)", what,
                  strerror(-e));
}

START_TEST(test_hostile_big_body_content_length)
{
    struct target t;
    target_start(&t, default_args);
    const size_t ten_mb = 10u << 20;
    char *body = malloc(ten_mb);
    ck_assert(body != NULL);
    memset(body, 'x', ten_mb);

    for (int round = 0; round < 3; round++) {
        /* Announce 10 MiB: 413 at once, before any body byte is sent. */
        struct http_conn c;
        ck_assert_int_eq(http_connect(&c, t.port), 0);
        char head[256];
        snprintf(head, sizeof(head),
                 "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\n\r\n",
                 ten_mb);
        ck_assert_int_eq(http_send_raw(&c, head, strlen(head)), 0);
        struct http_resp r;
        int e = http_read(&c, &r, false, e2e_slow_ms(IO_MS));
        expect_413("10 MiB announced", &c, e, &r);
        http_resp_free(&r);
        http_close(&c);

        /* The same with Expect: 100-continue: 413, never 100. */
        ck_assert_int_eq(http_connect(&c, t.port), 0);
        snprintf(head, sizeof(head),
                 "POST /buy HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 ten_mb);
        ck_assert_int_eq(http_send_raw(&c, head, strlen(head)), 0);
        e = http_read(&c, &r, false, e2e_slow_ms(IO_MS));
        expect_413("10 MiB with Expect: 100-continue", &c, e, &r);
        http_resp_free(&r);
        http_close(&c);

        /* Headers and all 10 MiB in one go: the server stops reading;
         * the answer is 413 or, if our unread bytes made the kernel reset
         * the connection, a reset. */
        ck_assert_int_eq(http_connect(&c, t.port), 0);
        snprintf(head, sizeof(head),
                 "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                 ten_mb);
        ck_assert_int_eq(http_send_raw(&c, head, strlen(head)), 0);
        e = http_send_raw(&c, body, ten_mb);
        ck_assert_msg(e == 0 || e == -EPIPE || e == -ECONNRESET,
                      "sending the 10 MiB body: %s", strerror(-e));
        e = http_read(&c, &r, false, e2e_slow_ms(IO_MS));
        if (e == 0)
            expect_413("10 MiB sent", &c, e, &r);
        else
            ck_assert_msg(closed_rc(e), "10 MiB sent: %s", strerror(-e));
        http_resp_free(&r);
        http_close(&c);
    }
    assert_rss_growth_below(&t, 5 * 1024, "3x 10 MiB bodies");

    /* The boundary: exactly max_body is read and parsed, one more is 413. */
    char *edge = malloc(4097 + 1);
    ck_assert(edge != NULL);
    memset(edge, ' ', 4097);
    const char *order = "{\"product\":\"apple\",\"quantity\":1}";
    memcpy(edge, order, strlen(order));
    struct http_conn c;
    struct http_resp r;
    ck_assert_int_eq(http_connect(&c, t.port), 0);
    int e = http_roundtrip(&c, "POST", "/buy", NULL, edge, 4096, &r);
    ck_assert_msg(e == 0 && r.status == 202,
                  "a 4096-byte order: rc %d status %d %s", e, r.status,
                  r.body ? r.body : "");
    http_resp_free(&r);
    e = http_roundtrip(&c, "POST", "/buy", NULL, edge, 4097, &r);
    expect_413("4097-byte body", &c, e, &r);
    http_resp_free(&r);
    http_close(&c);
    free(edge);
    free(body);
    target_finish(&t);
}
END_TEST

START_TEST(test_hostile_chunked_over_limit)
{
    struct target t;
    target_start(&t, default_args);
    const size_t total = 4u << 20;
    char *body = malloc(total);
    ck_assert(body != NULL);
    memset(body, '[', total);

    for (int round = 0; round < 3; round++) {
        struct http_conn c;
        struct http_resp r;
        ck_assert_int_eq(http_connect(&c, t.port), 0);
        int e =
            http_send_chunked(&c, "POST", "/buy", NULL, body, total, 16 * 1024);
        ck_assert_msg(e == 0 || e == -EPIPE || e == -ECONNRESET,
                      "sending 4 MiB chunked: %s", strerror(-e));
        e = http_read(&c, &r, false, e2e_slow_ms(IO_MS));
        if (e == 0)
            expect_413("4 MiB chunked", &c, e, &r);
        else
            ck_assert_msg(closed_rc(e), "4 MiB chunked: %s", strerror(-e));
        http_resp_free(&r);
        http_close(&c);
    }
    assert_rss_growth_below(&t, 5 * 1024, "3x 4 MiB chunked bodies");

    /* A chunked order under the cap, in 7-byte chunks, is accepted. */
    const char *order = "{\"product\":\"apple\",\"quantity\":2}";
    struct http_conn c;
    struct http_resp r;
    ck_assert_int_eq(http_connect(&c, t.port), 0);
    int e =
        http_send_chunked(&c, "POST", "/buy", NULL, order, strlen(order), 7);
    ck_assert_int_eq(e, 0);
    e = http_read(&c, &r, false, e2e_slow_ms(IO_MS));
    ck_assert_msg(e == 0 && r.status == 202, "chunked order: rc %d status %d",
                  e, r.status);
    http_resp_free(&r);
    /* Just over the cap by chunks: 413 on the same connection. */
    char *over = malloc(5000);
    ck_assert(over != NULL);
    memset(over, ' ', 5000);
    memcpy(over, order, strlen(order));
    e = http_send_chunked(&c, "POST", "/buy", NULL, over, 5000, 1000);
    ck_assert_int_eq(e, 0);
    e = http_read(&c, &r, false, e2e_slow_ms(IO_MS));
    expect_413("5000 bytes chunked", &c, e, &r);
    http_resp_free(&r);
    http_close(&c);
    free(over);
    free(body);
    target_finish(&t);
}
END_TEST

/* ---- slowloris -------------------------------------------------------- */

#define SLOW_CONNS  300
#define SLOW_ROUNDS 8

START_TEST(test_hostile_slowloris)
{
    static const char *const args[] = {"--max-connections",
                                       "400",
                                       "--conn-timeout",
                                       "2",
                                       "--max-connections-per-ip",
                                       "0",
                                       NULL};
    struct target t;
    target_start(&t, args);
    struct http_conn *conns = calloc(SLOW_CONNS, sizeof(*conns));
    ck_assert(conns != NULL);
    const char *start = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    for (int i = 0; i < SLOW_CONNS; i++) {
        int e = http_connect(&conns[i], t.port);
        ck_assert_msg(e == 0, "slow connection %d: %s", i, strerror(-e));
        ck_assert_int_eq(http_send_raw(&conns[i], start, strlen(start)), 0);
    }

    /* Each round every slow client sends one more header byte; between
     * rounds other clients must still be served in bounded time. */
    int dropped = 0;
    int64_t worst = 0;
    for (int round = 0; round < SLOW_ROUNDS; round++) {
        for (int i = 0; i < SLOW_CONNS; i++)
            if (conns[i].fd >= 0 && http_send_raw(&conns[i], "a", 1) != 0) {
                http_close(&conns[i]);
                dropped++;
            }
        int64_t t0 = now_ms();
        rel_expect_alive(t.port, ALIVE_MS);
        int64_t took = now_ms() - t0;
        if (took > worst)
            worst = took;
        backoff_ms(500); /* the attacker's pace */
    }
    printf("hostile: slowloris: %d slow connections, %d closed by the server "
           "while active, worst healthz+buy %lld ms\n",
           SLOW_CONNS, dropped, (long long)worst);

    /* Now they go quiet: the idle timeout must close every one. */
    int64_t deadline = now_ms() + e2e_slow_ms(2000 + 15000);
    int open = 0;
    for (int i = 0; i < SLOW_CONNS; i++) {
        if (conns[i].fd < 0)
            continue;
        int64_t left = deadline - now_ms();
        int e = http_wait_closed(&conns[i], left > 0 ? (int)left : 0);
        if (e != 0)
            open++;
        http_close(&conns[i]);
    }
    ck_assert_msg(open == 0,
                  "%d idle slowloris connections were not closed "
                  "by the idle timeout",
                  open);
    free(conns);
    target_finish(&t);
}
END_TEST

/* ---- idle keep-alive connections up to and past the limit -------------- */

#define KA_LIMIT 1000
#define KA_EXTRA 200

START_TEST(test_hostile_keepalive_limit)
{
    static const char *const args[] = {"--max-connections",
                                       "1000",
                                       "--conn-timeout",
                                       "20",
                                       "--max-connections-per-ip",
                                       "0",
                                       NULL};
    struct rlimit rl;
    ck_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    ck_assert_msg(rl.rlim_cur >= KA_LIMIT + KA_EXTRA + 64,
                  "open-file limit %llu is too low for %d connections",
                  (unsigned long long)rl.rlim_cur, KA_LIMIT + KA_EXTRA);
    struct target t;
    target_start(&t, args);
    struct http_conn *idle = calloc(KA_LIMIT, sizeof(*idle));
    struct http_conn *extra = calloc(KA_EXTRA, sizeof(*extra));
    ck_assert(idle != NULL && extra != NULL);

    /* Fill the server up to its limit with kept-alive, idle connections:
     * each made one request, then sits there. */
    int served = 0;
    for (int i = 0; i < KA_LIMIT; i++) {
        int e = http_connect(&idle[i], t.port);
        ck_assert_msg(e == 0, "connection %d: %s", i, strerror(-e));
        struct http_resp r;
        e = http_roundtrip(&idle[i], "GET", "/healthz", NULL, NULL, 0, &r);
        if (e == 0 && r.status == 200)
            served++;
        http_resp_free(&r);
    }
    printf("hostile: keep-alive: %d of %d connections under the limit "
           "served\n",
           served, KA_LIMIT);
    ck_assert_msg(served >= KA_LIMIT - 4,
                  "only %d of %d connections under the limit were served",
                  served, KA_LIMIT);
    int peak = rel_proc_fd_count(t.pid);

    /* Past the limit (SPEC §10): a new connection is closed at once, not
     * left waiting in the listen backlog behind the idle ones (which the
     * 20 s idle timeout would only release later). */
    int64_t t0 = now_ms();
    for (int i = 0; i < KA_EXTRA; i++) {
        int e = http_connect(&extra[i], t.port);
        if (e != 0)
            continue; /* refused at connect: fine */
        e = http_send(&extra[i], "GET", "/healthz", NULL, NULL, 0);
        if (e != 0)
            http_close(&extra[i]);
    }
    int closed = 0;
    int64_t deadline = now_ms() + e2e_slow_ms(3000);
    for (int i = 0; i < KA_EXTRA; i++) {
        if (extra[i].fd < 0) {
            closed++;
            continue;
        }
        int64_t left = deadline - now_ms();
        struct http_resp r;
        int e = http_read(&extra[i], &r, false, left > 0 ? (int)left : 0);
        ck_assert_msg(e != 0,
                      "a client past the limit was served (%d) while "
                      "the limit was held",
                      r.status);
        ck_assert_msg(closed_rc(e),
                      "a client past the limit was not closed at once: %s",
                      strerror(-e));
        closed++;
        http_resp_free(&r);
        http_close(&extra[i]);
    }
    printf("hostile: keep-alive: %d clients past the limit closed within "
           "%lld ms\n",
           closed, (long long)(now_ms() - t0));
    int over =
        rel_wait_fds_at_most(t.pid, t.fds0 + KA_LIMIT + 2, e2e_slow_ms(FD_MS));
    printf("hostile: keep-alive: shopd fds %d at start, %d at the limit, %d "
           "after %d more clients\n",
           t.fds0, peak, over, KA_EXTRA);
    ck_assert_msg(over <= t.fds0 + KA_LIMIT + 2,
                  "shopd holds %d descriptors, more than the limit of %d "
                  "connections allows (%d at start)",
                  over, KA_LIMIT, t.fds0);

    /* The idle ones must be closed by the idle timeout (20 s). */
    deadline = now_ms() + e2e_slow_ms(20000 + 20000);
    int still = 0;
    for (int i = 0; i < KA_LIMIT; i++) {
        if (idle[i].fd < 0)
            continue;
        int64_t left = deadline - now_ms();
        if (http_wait_closed(&idle[i], left > 0 ? (int)left : 0) != 0)
            still++;
        http_close(&idle[i]);
    }
    ck_assert_msg(still == 0,
                  "%d idle keep-alive connections not closed by "
                  "the idle timeout",
                  still);
    free(idle);
    free(extra);
    target_finish(&t);
}
END_TEST

/* ---- clients that vanish mid-body and mid-response ------------------- */

START_TEST(test_hostile_disconnect_mid_body)
{
    struct target t;
    target_start(&t, default_args);
    const char *half = "{\"product\":\"apple\",\"quan";
    for (int i = 0; i < 400; i++) {
        struct http_conn c;
        ck_assert_int_eq(http_connect(&c, t.port), 0);
        char head[200];
        switch (i % 4) {
        case 0: /* Content-Length 1000, 24 bytes sent, then FIN */
        case 1: /* the same, then RST */
            snprintf(head, sizeof(head),
                     "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: "
                     "1000\r\n\r\n%s",
                     half);
            break;
        case 2: /* chunked, two chunks, no end */
            snprintf(head, sizeof(head),
                     "POST /buy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                     "chunked\r\n\r\n5\r\n{\"pro\r\n5\r\nduct\"\r\n");
            break;
        default: /* cut inside the headers */
            snprintf(head, sizeof(head),
                     "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Le");
            break;
        }
        (void)http_send_raw(&c, head, strlen(head));
        if (i % 4 == 1)
            reset_close(&c);
        else
            http_close(&c);
    }
    assert_rss_growth_below(&t, 5 * 1024, "400 abandoned bodies");
    target_finish(&t);
}
END_TEST

START_TEST(test_hostile_disconnect_mid_response)
{
    struct target t;
    target_start(&t, default_args);
    static const char *const paths[] = {"/metrics", "/stats", "/products", "/"};
    for (int i = 0; i < 200; i++) {
        struct http_conn c;
        ck_assert_int_eq(http_connect(&c, t.port), 0);
        int small = 1024;
        setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        ck_assert_int_eq(http_send(&c, "GET", paths[i % 4], NULL, NULL, 0), 0);
        /* Read a little of the answer, then vanish. */
        char *got = NULL;
        (void)http_read_until(&c, "HTTP/1.1", &got, e2e_slow_ms(IO_MS));
        free(got);
        if (i % 2)
            reset_close(&c);
        else
            http_close(&c);
    }
    /* Pipelined requests, then close without reading a byte. */
    char *pipe = repeat("GET /stats HTTP/1.1\r\nHost: x\r\n\r\n", 50);
    for (int i = 0; i < 50; i++) {
        struct http_conn c;
        ck_assert_int_eq(http_connect(&c, t.port), 0);
        (void)http_send_raw(&c, pipe, strlen(pipe));
        reset_close(&c);
    }
    free(pipe);
    /* Event streams dropped after their first event. */
    for (int i = 0; i < 30; i++) {
        struct http_conn c;
        ck_assert_int_eq(http_connect(&c, t.port), 0);
        ck_assert_int_eq(http_send(&c, "GET", "/events", NULL, NULL, 0), 0);
        struct http_resp r;
        int e = http_read_head(&c, &r, e2e_slow_ms(IO_MS));
        ck_assert_msg(e == 0 && r.status == 200, "/events: rc %d status %d", e,
                      r.status);
        http_resp_free(&r);
        char *ev = NULL;
        (void)http_read_until(&c, "\n\n", &ev, e2e_slow_ms(IO_MS));
        free(ev);
        if (i % 2)
            reset_close(&c);
        else
            http_close(&c);
    }
    target_finish(&t);
}
END_TEST

/* ---- random bytes ------------------------------------------------------ */

#define RANDOM_CONNS 200

START_TEST(test_hostile_random_bytes)
{
    struct target t;
    target_start(&t, default_args);
    struct http_conn *conns = calloc(RANDOM_CONNS, sizeof(*conns));
    ck_assert(conns != NULL);
    const char *prefix = "POST /buy HTTP/1.1\r\nHost: x\r\n";
    char buf[4200];
    for (int i = 0; i < RANDOM_CONNS; i++) {
        size_t n = 1 + (size_t)(rng() % 4096), off = 0;
        if (i % 2) { /* a valid start, then noise in the headers */
            off = strlen(prefix);
            memcpy(buf, prefix, off);
        }
        for (size_t k = 0; k < n; k++)
            buf[off + k] = (char)(rng() & 0xff);
        ck_assert_int_eq(http_connect(&conns[i], t.port), 0);
        (void)http_send_raw(&conns[i], buf, off + n);
    }
    /* All were sent at once: one shared deadline for every answer. */
    int64_t deadline = now_ms() + e2e_slow_ms(2000 + IO_MS);
    int closed = 0, answered = 0;
    for (int i = 0; i < RANDOM_CONNS; i++) {
        int64_t left = deadline - now_ms();
        struct http_resp r;
        int e = http_read(&conns[i], &r, false, left > 0 ? (int)left : 0);
        if (closed_rc(e)) {
            closed++;
        } else {
            ck_assert_msg(e == 0,
                          "random bytes #%d: neither an answer nor a "
                          "close: %s",
                          i, strerror(-e));
            ck_assert_msg((r.status >= 400 && r.status < 500) ||
                              r.status == 505,
                          "random bytes #%d: status %d", i, r.status);
            answered++;
        }
        http_resp_free(&r);
        http_close(&conns[i]);
    }
    printf("hostile: random bytes: %d closed, %d answered 4xx\n", closed,
           answered);

    /* Random mutations of a valid order with a correct Content-Length:
     * a JSON answer every time - 202, or a JSON 400/404 error. */
    const char *order =
        "{\"product\":\"apple\",\"quantity\":3,\"customer\":\"Ada\"}";
    size_t olen = strlen(order);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, t.port), 0);
    int accepted = 0;
    for (int i = 0; i < 500; i++) {
        memcpy(buf, order, olen);
        int flips = 1 + (int)(rng() % 4);
        for (int k = 0; k < flips; k++)
            buf[rng() % olen] = (char)(rng() & 0xff);
        struct http_resp r;
        int e = http_roundtrip(&c, "POST", "/buy", NULL, buf, olen, &r);
        ck_assert_msg(e == 0, "mutated order #%d: %s", i, strerror(-e));
        ck_assert_msg(r.status == 202 || r.status == 400 || r.status == 404,
                      "mutated order #%d: status %d %s", i, r.status, r.body);
        if (r.status != 202) {
            cJSON *j = resp_json(&r);
            ck_assert_msg(j && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(
                                   j, "error")),
                          "mutated order #%d: error body %s", i, r.body);
            cJSON_Delete(j);
        } else {
            accepted++;
        }
        http_resp_free(&r);
    }
    http_close(&c);
    printf("hostile: 500 mutated orders, %d accepted\n", accepted);
    free(conns);
    target_finish(&t);
}
END_TEST

/* ---- deeply nested JSON under the size cap ---------------------------- */

static void post_expect(unsigned port, const char *body, int status,
                        const char *code)
{
    struct http_resp r;
    int e = http_do(port, "POST", "/buy", NULL, body, strlen(body), &r);
    ck_assert_msg(e == 0, "POST nested (%zu bytes): %s", strlen(body),
                  strerror(-e));
    if (code != NULL)
        expect_error(&r, status, code);
    else
        ck_assert_msg(r.status == status, "nested: status %d, want %d: %s",
                      r.status, status, r.body);
    http_resp_free(&r);
}

/* `open` repeated `depth` times, `mid`, `close` repeated `depth` times. */
static char *nest(const char *head, const char *open, size_t depth,
                  const char *mid, const char *close, const char *tail)
{
    size_t cap = strlen(head) + depth * (strlen(open) + strlen(close)) +
                 strlen(mid) + strlen(tail) + 1;
    char *p = malloc(cap), *q = p;
    ck_assert(p != NULL);
    q = stpcpy(q, head);
    for (size_t i = 0; i < depth; i++)
        q = stpcpy(q, open);
    q = stpcpy(q, mid);
    for (size_t i = 0; i < depth; i++)
        q = stpcpy(q, close);
    stpcpy(q, tail);
    return p;
}

START_TEST(test_hostile_nested_json)
{
    struct target t;
    target_start(&t, default_args);
    char *b;

    /* 2048 arrays deep, 4096 bytes: past cJSON's nesting limit. */
    b = nest("", "[", 2048, "", "]", "");
    post_expect(t.port, b, 400, "invalid_json");
    free(b);
    /* Never closed. */
    b = nest("", "[", 4096, "", "", "");
    post_expect(t.port, b, 400, "invalid_json");
    free(b);
    /* 1000 deep: cJSON's limit itself; an array is not an order. */
    b = nest("", "[", 1000, "", "]", "");
    post_expect(t.port, b, 400, "invalid_json");
    free(b);
    /* Within the nesting limit, an object without the fields. */
    b = nest("", "{\"a\":", 600, "1", "}", "");
    post_expect(t.port, b, 400, "invalid_field");
    free(b);
    /* A nested product. */
    b = nest("{\"quantity\":1,\"product\":", "[", 900, "\"apple\"", "]", "}");
    post_expect(t.port, b, 400, "invalid_field");
    free(b);
    /* A nested quantity. */
    b = nest("{\"product\":\"apple\",\"quantity\":", "{\"q\":", 500, "1", "}",
             "}");
    post_expect(t.port, b, 400, "invalid_field");
    free(b);
    /* Too deep in an extra field: the whole body is invalid. */
    b = nest("{\"product\":\"apple\",\"quantity\":1,\"x\":", "[", 1500, "", "]",
             "}");
    post_expect(t.port, b, 400, "invalid_json");
    free(b);
    /* Deep but legal in an extra field: unknown fields are ignored
     * (SPEC §1), so this is an order. */
    b = nest("{\"product\":\"apple\",\"quantity\":1,\"x\":", "[", 900, "", "]",
             "}");
    post_expect(t.port, b, 202, NULL);
    free(b);
    target_finish(&t);
}
END_TEST

/* ---- quantities spelled to slip past validation ------------------------ */

/*
 * Found by the fuzzer (tests/fuzz/regress/): cJSON reads each of these
 * bodies as an order for a non-integer or out-of-range quantity written in
 * a way a raw-text check by key name can miss - an escaped or duplicated
 * key, a control byte that cJSON takes for whitespace, a byte order mark,
 * an integer past 2^63. SPEC §1: 1e3 and friends are rejected.
 */
START_TEST(test_hostile_sneaky_quantities)
{
    static const struct {
        const char *what;
        const char *body;
        size_t len;
        const char *code;
    } cases[] = {
        {"escaped key", RAW("{\"product\":\"apple\",\"quantit\\u0079\":1e2}"),
         "invalid_field"},
        /* The same key twice (as decoded): invalid JSON (SPEC §1). */
        {"escaped key before the plain one",
         RAW("{\"product\":\"apple\",\"quantit\\u0079\":1e2,\"quantity\":1}"),
         "invalid_json"},
        {"key cut by \\u0000",
         RAW("{\"product\":\"apple\",\"quantity\\u0000\":1.5e1,"
             "\"quantity\":1}"),
         "invalid_json"},
        {"vertical tab as whitespace",
         RAW("{\"product\":\"apple\",\x0b\"quantity\":1e2}"), "invalid_field"},
        {"byte order mark",
         RAW("\xef\xbb\xbf{\"product\":\"apple\",\"quantity\":1e2}"),
         "invalid_field"},
        {"integer past 2^63",
         RAW("{\"product\":\"apple\",\"quantity\":100000000000000000000}"),
         "invalid_field"},
        {"integer past 2^64, negative",
         RAW("{\"product\":\"apple\",\"quantity\":-100000000000000000000}"),
         "invalid_field"},
    };
    struct target t;
    target_start(&t, default_args);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, t.port), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_resp r;
        int e = http_roundtrip(&c, "POST", "/buy", NULL, cases[i].body,
                               cases[i].len, &r);
        ck_assert_msg(e == 0, "%s: %s", cases[i].what, strerror(-e));
        ck_assert_msg(r.status == 400, "%s: status %d %s, want 400",
                      cases[i].what, r.status, r.body);
        expect_error(&r, 400, cases[i].code);
        http_resp_free(&r);
    }
    http_close(&c);
    target_finish(&t);
}
END_TEST

/* ---- runner -------------------------------------------------------------- */

/* ---- Idempotency-Key and Authorization garbage ------------------------ */

#define HOSTILE_TOKEN "hostile-admin-token-0123456789"

/* A header value of `n` random bytes (no CR, LF or NUL), with at least one
 * byte no key may hold (a space). */
static void garbage_value(char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c;
        do
            c = (char)(rng() & 0xff);
        while (c == '\r' || c == '\n' || c == '\0');
        out[i] = c;
    }
    out[n / 2] = ' ';
    out[n] = '\0';
}

/* Send one request with `headers` and expect a status from `allowed`. */
static void expect_status(unsigned port, const char *what, const char *path,
                          const char *headers, const char *body,
                          const int *allowed)
{
    struct http_resp r;
    int e = http_do(port, "POST", path, headers, body, strlen(body), &r);
    ck_assert_msg(e == 0 || closed_rc(e), "%s: %s", what, strerror(-e));
    if (e == 0) {
        ck_assert_msg(in_list(r.status, allowed), "%s: status %d, body %.200s",
                      what, r.status, r.body);
        ck_assert_msg(strstr(r.body, HOSTILE_TOKEN) == NULL,
                      "%s: the admin token in an answer", what);
    }
    http_resp_free(&r);
}

START_TEST(test_hostile_keys_and_tokens)
{
    char *tok = write_tmp(HOSTILE_TOKEN "\n");
    const char *const args[] = {"--max-connections",
                                "200",
                                "--conn-timeout",
                                "2",
                                "--admin-token-file",
                                tok,
                                NULL};
    struct target t;
    target_start(&t, args);
    static const int key_400[] = {400, 0};
    static const int auth_401[] = {401, 400, 0};
    static const char order[] = "{\"product\":\"apple\",\"quantity\":1}";
    char value[8200], *hdr = malloc(64 * 1024);
    ck_assert(hdr != NULL);

    /* 200 random Idempotency-Key and Authorization values, 1-200 bytes. */
    for (int i = 0; i < 200; i++) {
        garbage_value(value, 1 + (size_t)(rng() % 200));
        snprintf(hdr, 64 * 1024, "Idempotency-Key: %s\r\n", value);
        expect_status(t.port, "garbage key", "/buy", hdr, order, key_400);
        snprintf(hdr, 64 * 1024, "Authorization: %s\r\n", value);
        expect_status(t.port, "garbage Authorization",
                      "/products/apple/restock", hdr, "{\"quantity\":1}",
                      auth_401);
        snprintf(hdr, 64 * 1024, "Authorization: Bearer %s\r\n", value);
        expect_status(t.port, "garbage Bearer token", "/products/apple/restock",
                      hdr, "{\"quantity\":1}", auth_401);
    }
    /* Huge: an 8 KiB key and an 8 KiB token. */
    memset(value, 'k', 8000);
    value[8000] = '\0';
    snprintf(hdr, 64 * 1024, "Idempotency-Key: %s\r\n", value);
    expect_status(t.port, "8 KiB key", "/buy", hdr, order, key_400);
    snprintf(hdr, 64 * 1024, "Authorization: Bearer %s\r\n", value);
    expect_status(t.port, "8 KiB token", "/products/apple/restock", hdr,
                  "{\"quantity\":1}", auth_401);
    /* Repeated: 200 key headers; 200 copies of the right Authorization. */
    size_t off = 0;
    for (int i = 0; i < 200; i++)
        off += (size_t)snprintf(hdr + off, 64 * 1024 - off,
                                "Idempotency-Key: k\r\n");
    expect_status(t.port, "200 key headers", "/buy", hdr, order, key_400);
    off = 0;
    for (int i = 0; i < 200; i++)
        off += (size_t)snprintf(hdr + off, 64 * 1024 - off,
                                "Authorization: Bearer " HOSTILE_TOKEN "\r\n");
    expect_status(t.port, "200 Authorization headers",
                  "/products/apple/restock", hdr, "{\"quantity\":1}", auth_401);
    free(hdr);

    /* None of it bought, restocked or kept a key. */
    cJSON *st = get_json_ok(t.port, "/stats");
    ck_assert_int_eq((int)jnum(st, "inventory.apple.restocked"), 0);
    ck_assert_int_eq((int)jnum(st, "idempotency.keys"), 0);
    cJSON_Delete(st);
    target_finish(&t);
    unlink(tok);
    free(tok);
}
END_TEST

static Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    const struct rel_case cases[] = {
        {"malformed", test_hostile_malformed_request_lines, 120, 0},
        {"headers", test_hostile_headers_over_limit, 120, 0},
        {"big_body", test_hostile_big_body_content_length, 120, 0},
        {"chunked", test_hostile_chunked_over_limit, 120, 0},
        {"slowloris", test_hostile_slowloris, 180, 0},
        {"keepalive", test_hostile_keepalive_limit, 240, 0},
        {"mid_body", test_hostile_disconnect_mid_body, 120, 0},
        {"mid_response", test_hostile_disconnect_mid_response, 120, 0},
        {"random", test_hostile_random_bytes, 120, 0},
        {"nested", test_hostile_nested_json, 120, 0},
        {"sneaky_quantities", test_hostile_sneaky_quantities, 60, 0},
        {"keys_and_tokens", test_hostile_keys_and_tokens, 120, 0},
    };
    rel_add_cases(s, cases, sizeof(cases) / sizeof(cases[0]));
    return s;
}

/* The keep-alive case holds KA_LIMIT + KA_EXTRA sockets at once. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = 8192;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur =
        rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int main(void)
{
    raise_fd_limit();
    SRunner *sr = srunner_create(hostile_suite());
    srunner_add_suite(sr, hostile_slow_suite());
    return rel_run(sr);
}
