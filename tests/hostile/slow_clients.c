/*
 * slow_clients.c - the heavy attacks of SPEC §10 against the real binary:
 * request smuggling over raw sockets, slowloris (slow headers) and slow
 * bodies from 127.0.0.2 with probes from 127.0.0.1, and /events viewers
 * that never read.
 *
 * The attacker runs in its own thread and only counts (Check asserts only
 * in the test thread); the test thread probes and asserts. Probes are
 * bounded: each must be answered within PROBE_MS (times $E2E_SLOW). The
 * only sleeps pace the attacker and the probes (that is the attack), never
 * synchronisation.
 */
#include "tests/hostile/hostile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* A probe must be answered within this. */
#define PROBE_MS 2000
/* Time between two bytes of one attacking socket. */
#define TRICKLE_MS 500

/* ---- request smuggling ------------------------------------------------- */

#define ORDER "{\"product\":\"apple\",\"quantity\":1}"
#define SMUGGLED                                                               \
    "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n" ORDER

/* Everything the server sends on one connection until it closes it. */
static char *exchange_all(unsigned port, const char *raw, size_t len,
                          size_t *got)
{
    struct http_conn c;
    int e = http_connect(&c, port);
    ck_assert_msg(e == 0, "connect: %s", strerror(-e));
    (void)http_send_raw(&c, raw, len);
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    ck_assert(out != NULL);
    int64_t deadline = now_ms() + e2e_slow_ms(10000);
    for (;;) {
        int64_t left = deadline - now_ms();
        ck_assert_msg(left > 0, "not closed 10 s after: %.200s", raw);
        struct pollfd p = {.fd = c.fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        if (n + 1024 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            ck_assert(out != NULL);
        }
        ssize_t r = recv(c.fd, out + n, cap - n - 1, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            break;
        if (r > 0)
            n += (size_t)r;
    }
    out[n] = '\0';
    http_close(&c);
    *got = n;
    return out;
}

static int count_heads(const char *s)
{
    int n = 0;
    for (const char *p = strstr(s, "HTTP/1."); p; p = strstr(p + 1, "HTTP/1."))
        if (p == s || p[-1] == '\n')
            n++;
    return n;
}

struct smuggle_case {
    const char *name;
    const char *head; /* %zu is the Content-Length of the rest, if any */
    const char *rest;
    int status;   /* expected first status */
    bool one_ans; /* exactly one response head (false: the library's own
                     double answer, see docs/hardening.md) */
};

static const struct smuggle_case smuggles[] = {
    {"CL then TE chunked",
     "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     "0\r\n\r\n" SMUGGLED, 400, true},
    {"TE chunked then CL",
     "POST /buy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     "Content-Length: %zu\r\n\r\n",
     "0\r\n\r\n" SMUGGLED, 400, true},
    {"two different CLs",
     "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
     "Content-Length: %zu\r\n\r\n",
     SMUGGLED, 400, true},
    {"TE gzip + CL",
     "POST /buy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
     "Content-Length: %zu\r\n\r\n",
     SMUGGLED, 501, true},
    {"TE xchunked + CL",
     "POST /buy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n"
     "Content-Length: %zu\r\n\r\n",
     SMUGGLED, 501, true},
    {"TE chunked, identity + CL",
     "POST /buy HTTP/1.1\r\nHost: x\r\n"
     "Transfer-Encoding: chunked, identity\r\nContent-Length: %zu\r\n\r\n",
     SMUGGLED, 501, true},
    {"space before the colon",
     "POST /buy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
     "Content-Length: %zu\r\n\r\n",
     "0\r\n\r\n" SMUGGLED, 400, true},
    {"obsolete line folding of TE",
     "POST /buy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
     " chunked\r\nContent-Length: %zu\r\n\r\n",
     "0\r\n\r\n" SMUGGLED, 400, true},
    /* libmicrohttpd answers these itself, before shopd's handler runs, and
     * 0.9.75 writes its 400 head twice (docs/hardening.md, "What
     * libmicrohttpd answers by itself"); what matters here is that
     * the smuggled order is never read. */
    {"CL -1", "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
     SMUGGLED, 400, false},
    {"CL +32", "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: +32\r\n\r\n",
     ORDER SMUGGLED, 400, false},
    {"CL 0x20", "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: 0x20\r\n\r\n",
     ORDER SMUGGLED, 400, false},
};

START_TEST(test_hostile_smuggling)
{
    static const char *const args[] = {"--conn-timeout", "5", NULL};
    struct shopd *s = shopd_start(args, NULL);
    unsigned port = shopd_port(s);
    for (size_t i = 0; i < sizeof(smuggles) / sizeof(smuggles[0]); i++) {
        const struct smuggle_case *sc = &smuggles[i];
        /* The head with its "%zu" replaced by the length of the rest. */
        char raw[2048];
        const char *mark = strstr(sc->head, "%zu");
        if (mark != NULL)
            snprintf(raw, sizeof(raw), "%.*s%zu%s%s", (int)(mark - sc->head),
                     sc->head, strlen(sc->rest), mark + 3, sc->rest);
        else
            snprintf(raw, sizeof(raw), "%s%s", sc->head, sc->rest);
        size_t got = 0;
        char *out = exchange_all(port, raw, strlen(raw), &got);
        char want[32];
        snprintf(want, sizeof(want), "HTTP/1.1 %d ", sc->status);
        ck_assert_msg(strncmp(out, want, strlen(want)) == 0,
                      "%s: first answer is not %d: %.300s", sc->name,
                      sc->status, out);
        int heads = count_heads(out);
        printf("hostile: smuggling: %s: %d response head(s), then closed\n",
               sc->name, heads);
        if (sc->one_ans)
            ck_assert_msg(heads == 1, "%s: %d response heads: %.600s", sc->name,
                          heads, out);
        ck_assert_msg(strstr(out, " 202 ") == NULL,
                      "%s: an order was accepted: %.600s", sc->name, out);
        free(out);
    }
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_msg(jnum(st, "orders.accepted") == 0,
                  "%g orders were created by smuggled bytes",
                  jnum(st, "orders.accepted"));
    cJSON_Delete(st);
    rel_expect_alive(port, 5000);
    rel_expect_clean_exit(s, 30000, NULL);
    shopd_destroy(s);
}
END_TEST

/* ---- slowloris and slow bodies ----------------------------------------- */

enum slow_kind { SLOW_HEADERS, SLOW_BODY, SLOW_IDLE };

struct attack {
    unsigned port;
    const char *src; /* local address the attack comes from */
    int nsocks;
    enum slow_kind kind;
    bool reconnect; /* reopen what the server closed, as slowhttptest -c */
    _Atomic bool stop;
    _Atomic bool ready;        /* the first wave is connected */
    _Atomic long closed;       /* sockets the server closed */
    _Atomic long connects;     /* connections made */
    _Atomic long connect_fail; /* connect() failures */
    int *fds;
};

static int attack_connect(struct attack *a)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, a->src, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto fail;
    sa.sin_port = htons((uint16_t)a->port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto fail;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    const char *start =
        a->kind == SLOW_HEADERS
            ? "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
            : "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n"
              "{\"product\":\"apple\",\"quantity\":1,\"customer\":\"";
    if (a->kind != SLOW_IDLE &&
        send(fd, start, strlen(start), MSG_NOSIGNAL) < 0)
        goto fail;
    atomic_fetch_add(&a->connects, 1);
    return fd;
fail:
    atomic_fetch_add(&a->connect_fail, 1);
    close(fd);
    return -1;
}

/* Whether the server closed `fd` (end-of-file or reset pending). */
static bool server_closed(int fd)
{
    char buf[512];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0)
            return true;
        if (n < 0)
            return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
        /* An answer (408/400...) before the close: keep reading. */
    }
}

static void *attack_main(void *arg)
{
    struct attack *a = arg;
    for (int i = 0; i < a->nsocks && !atomic_load(&a->stop); i++)
        a->fds[i] = attack_connect(a);
    atomic_store(&a->ready, true);
    while (!atomic_load(&a->stop)) {
        for (int i = 0; i < a->nsocks; i++) {
            if (a->fds[i] >= 0 &&
                (server_closed(a->fds[i]) ||
                 (a->kind != SLOW_IDLE &&
                  send(a->fds[i], "a", 1, MSG_NOSIGNAL) < 0))) {
                close(a->fds[i]);
                a->fds[i] = -1;
                atomic_fetch_add(&a->closed, 1);
            }
            if (a->fds[i] < 0 && a->reconnect && !atomic_load(&a->stop))
                a->fds[i] = attack_connect(a);
        }
        backoff_ms(TRICKLE_MS);
    }
    for (int i = 0; i < a->nsocks; i++)
        if (a->fds[i] >= 0)
            close(a->fds[i]);
    return NULL;
}

/* One probe from 127.0.0.1: GET /healthz answered 200 within PROBE_MS. */
static bool probe(unsigned port)
{
    struct http_conn c;
    if (http_connect(&c, port) != 0)
        return false;
    struct http_resp r;
    memset(&r, 0, sizeof(r));
    bool ok = http_send(&c, "GET", "/healthz", NULL, NULL, 0) == 0 &&
              http_read(&c, &r, false, e2e_slow_ms(PROBE_MS)) == 0 &&
              r.status == 200;
    http_resp_free(&r);
    http_close(&c);
    return ok;
}

struct slow_case {
    const char *name;
    enum slow_kind kind;
    bool per_ip;   /* --max-connections-per-ip 50 */
    bool defaults; /* shopd at its defaults, DEFAULT_SOCKS sockets */
};

static const struct slow_case slow_cases[] = {
    {"slow headers, per-address limit", SLOW_HEADERS, true, false},
    {"slow headers, no per-address limit", SLOW_HEADERS, false, false},
    {"slow bodies, per-address limit", SLOW_BODY, true, false},
    {"slow bodies, no per-address limit", SLOW_BODY, false, false},
    /* SPEC §10: at the defaults one address cannot starve the others. */
    {"slow headers at the defaults", SLOW_HEADERS, true, true},
    {"idle sockets at the defaults", SLOW_IDLE, true, true},
};

/* Sockets of the attack at the defaults: 10,000 as in the issue; 3,000
 * (still past the per-address limit) on a slow run (E2E_SLOW > 1, as the
 * sanitizer builds set); HOSTILE_DEFAULT_SOCKS overrides both. */
static int default_socks(void)
{
    const char *v = getenv("HOSTILE_DEFAULT_SOCKS");
    long n = v != NULL ? strtol(v, NULL, 10) : 0;
    if (n > 0 && n <= 100000)
        return (int)n;
    return e2e_slow() > 1 ? 3000 : 10000;
}

/* Room for `n` sockets in this process: raise the soft open-file limit. */
static void want_fds(int n)
{
    struct rlimit rl;
    ck_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rlim_t want = (rlim_t)n + 256;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want
                          ? want
                          : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ck_assert_msg(rl.rlim_cur >= want,
                  "open-file limit %llu is too low for %d sockets",
                  (unsigned long long)rl.rlim_cur, n);
}

#define ATTACK_SOCKS   1000
#define HEADER_TIMEOUT 3
#define PROBE_EVERY_MS 200

START_TEST(test_hostile_slow_clients)
{
    const struct slow_case *sc = &slow_cases[_i];
    static const char *const per_ip[] = {"--max-connections",
                                         "200",
                                         "--max-connections-per-ip",
                                         "50",
                                         "--header-timeout",
                                         "3",
                                         "--conn-timeout",
                                         "30",
                                         NULL};
    static const char *const no_per_ip[] = {"--max-connections",
                                            "200",
                                            "--header-timeout",
                                            "3",
                                            "--conn-timeout",
                                            "30",
                                            "--max-connections-per-ip",
                                            "0",
                                            NULL};
    int nsocks = sc->defaults ? default_socks() : ATTACK_SOCKS;
    want_fds(nsocks);
    struct shopd *s = shopd_start(sc->defaults ? NULL
                                  : sc->per_ip ? per_ip
                                               : no_per_ip,
                                  NULL);
    unsigned port = shopd_port(s);
    pid_t pid = shopd_pid(s);
    int fds0 = rel_proc_fd_count(pid);

    struct attack a = {
        .port = port,
        .src = "127.0.0.2",
        .nsocks = nsocks,
        .kind = sc->kind,
        /* With the per-address limit the attacker may try as hard as it
         * likes; without it, the case is one wave (as slowhttptest's
         * fixed count): service must come back once its requests are
         * overdue. */
        .reconnect = sc->per_ip,
    };
    a.fds = malloc(sizeof(int) * (size_t)nsocks);
    ck_assert(a.fds != NULL);
    for (int i = 0; i < nsocks; i++)
        a.fds[i] = -1;
    pthread_t th;
    int64_t t0 = now_ms();
    ck_assert_int_eq(pthread_create(&th, NULL, attack_main, &a), 0);
    while (!atomic_load(&a.ready))
        backoff_ms(10);
    int64_t wave = now_ms() - t0;

    int probes = 0, served = 0;
    int64_t back_at = -1; /* first probe of an unbroken served run */
    int64_t until = now_ms() + e2e_slow_ms(10000);
    while (now_ms() < until) {
        int64_t at = now_ms() - t0;
        bool ok = probe(port);
        probes++;
        served += ok;
        if (ok && back_at < 0)
            back_at = at;
        else if (!ok)
            back_at = -1;
        backoff_ms(PROBE_EVERY_MS);
    }
    atomic_store(&a.stop, true);
    pthread_join(th, NULL);
    cJSON *st = get_json_ok(port, "/stats");
    printf("hostile: %s: %d sockets from %s (first wave in %lld ms), %ld "
           "connects, %ld closed by shopd; probes served %d/%d, unbroken "
           "since %lld ms; connections refused %g, timed out %g\n",
           sc->name, nsocks, a.src, (long long)wave, atomic_load(&a.connects),
           atomic_load(&a.closed), served, probes, (long long)back_at,
           jnum(st, "connections.refused"), jnum(st, "connections.timed_out"));
    ck_assert_msg(atomic_load(&a.connects) >= nsocks,
                  "the attack did not open its sockets (%ld, %ld failed)",
                  atomic_load(&a.connects), atomic_load(&a.connect_fail));
    /* At the defaults (header_timeout 10 s) the test may end before the
     * admitted attackers' deadline. */
    ck_assert_msg(sc->defaults || jnum(st, "connections.timed_out") > 0,
                  "no attacking request was closed for its deadline");
    cJSON_Delete(st);
    if (sc->per_ip) {
        ck_assert_msg(served * 100 >= probes * 95,
                      "%s: only %d of %d probes served", sc->name, served,
                      probes);
    } else {
        /* Back within header_timeout + 2 s of the attack starting (its
         * first wave connected), and served from then on. */
        int64_t bound = wave + e2e_slow_ms((HEADER_TIMEOUT + 2) * 1000);
        ck_assert_msg(back_at >= 0 && back_at <= bound,
                      "%s: service back at %lld ms, bound %lld ms", sc->name,
                      (long long)back_at, (long long)bound);
    }
    free(a.fds);
    int n = rel_wait_fds_at_most(pid, fds0, e2e_slow_ms(15000));
    ck_assert_msg(n <= fds0, "descriptors not released: %d > %d", n, fds0);
    rel_expect_alive(port, 5000);
    rel_expect_clean_exit(s, 30000, NULL);
    shopd_destroy(s);
}
END_TEST

/* ---- /events viewers that never read ------------------------------------ */

#define VIEWERS 200

/* Bytes queued in the send queues of shopd's established sockets on
 * `port` (what `ss -tm` shows as the send queue), from /proc/net/tcp;
 * stores the largest queue of one socket. */
static long send_queues(unsigned port, long *max_one)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    ck_assert(f != NULL);
    char line[512];
    long total = 0;
    *max_one = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned lport = 0, st = 0;
        unsigned long tx = 0, rx = 0;
        if (sscanf(line, " %*d: %*8x:%x %*8x:%*x %x %lx:%lx", &lport, &st, &tx,
                   &rx) != 4)
            continue;
        if (lport != port || st != 1 /* ESTABLISHED */)
            continue;
        total += (long)tx;
        if ((long)tx > *max_one)
            *max_one = (long)tx;
    }
    fclose(f);
    return total;
}

START_TEST(test_hostile_stalled_viewers)
{
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    pid_t pid = shopd_pid(s);
    int fds0 = rel_proc_fd_count(pid);
    long rss0 = rel_proc_rss_kb(pid);

    /* One viewer that reads: it must never be dropped. */
    struct http_conn good;
    ck_assert_int_eq(http_connect(&good, port), 0);
    ck_assert_int_eq(http_send(&good, "GET", "/events", NULL, NULL, 0), 0);
    struct http_resp gr;
    ck_assert_int_eq(http_read_head(&good, &gr, e2e_slow_ms(5000)), 0);
    ck_assert_int_eq(gr.status, 200);

    /* 200 that never read (a small receive buffer, as a slow-read attacker
     * advertises a small window). */
    int *fds = malloc(sizeof(int) * VIEWERS);
    ck_assert(fds != NULL);
    for (int i = 0; i < VIEWERS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert(fds[i] >= 0);
        int rcv = 4096;
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        ck_assert(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) == 0);
        const char *req = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
        ck_assert(send(fds[i], req, strlen(req), MSG_NOSIGNAL) > 0);
    }
    int64_t t0 = now_ms();
    long worst_total = 0, worst_one = 0;
    double dropped = 0;
    /* docs/hardening.md: a viewer advertising a small window is dropped
     * within 15 s (its buffers fill in a few seconds, then 5 s of ticks). */
    int64_t deadline = t0 + e2e_slow_ms(15000);
    while (now_ms() < deadline) {
        long one = 0;
        long total = send_queues(port, &one);
        if (total > worst_total)
            worst_total = total;
        if (one > worst_one)
            worst_one = one;
        char *ev = NULL;
        int e = http_read_until(&good, "\n\n", &ev, e2e_slow_ms(5000));
        ck_assert_msg(e == 0, "the reading viewer got no event: %s",
                      strerror(-e));
        free(ev);
        cJSON *st = get_json_ok(port, "/stats");
        dropped = jnum(st, "events.dropped");
        cJSON_Delete(st);
        if (dropped >= VIEWERS)
            break;
        backoff_ms(250);
    }
    int64_t took = now_ms() - t0;
    long rss = rel_proc_rss_kb(pid);
    printf("hostile: stalled viewers: %d dropped after %lld ms; send queues "
           "at most %ld bytes in all, %ld for one socket; VmRSS %ld -> %ld "
           "KiB\n",
           (int)dropped, (long long)took, worst_total, worst_one, rss0, rss);
    ck_assert_msg(dropped == VIEWERS,
                  "%g of %d stalled viewers dropped in %lld "
                  "ms",
                  dropped, VIEWERS, (long long)took);
    /* Bounded per viewer: the small send buffer (8 KiB asked, the kernel
     * doubles it) plus its bookkeeping. */
    ck_assert_msg(worst_one <= 64 * 1024,
                  "one stalled viewer held %ld bytes of send queue", worst_one);
    /* The reading viewer is still served. */
    char *ev = NULL;
    ck_assert_int_eq(http_read_until(&good, "\n\n", &ev, e2e_slow_ms(5000)), 0);
    free(ev);
    http_resp_free(&gr);
    http_close(&good);
    for (int i = 0; i < VIEWERS; i++)
        close(fds[i]);
    free(fds);
    int n = rel_wait_fds_at_most(pid, fds0, e2e_slow_ms(15000));
    ck_assert_msg(n <= fds0, "descriptors not released: %d > %d", n, fds0);
    rel_expect_clean_exit(s, 30000, NULL);
    shopd_destroy(s);
}
END_TEST

Suite *hostile_slow_suite(void)
{
    Suite *s = suite_create("hostile_slow");
    const struct rel_case cases[] = {
        {"smuggling", test_hostile_smuggling, 120, 0},
        {"slow_clients", test_hostile_slow_clients, 180,
         (int)(sizeof(slow_cases) / sizeof(slow_cases[0]))},
        {"stalled_viewers", test_hostile_stalled_viewers, 180, 0},
    };
    rel_add_cases(s, cases, sizeof(cases) / sizeof(cases[0]));
    return s;
}
