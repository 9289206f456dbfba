/*
 * e2e_framing.c - HTTP framing and hostile clients, the light rows of
 * SPEC §10 (the heavy attacks live in tests/hostile): each ambiguous
 * framing gets exactly one answer and then the connection is closed, so
 * the bytes after it are never read as a request; Host rules; absolute-form
 * targets; large header blocks; a duplicate JSON key; the request deadline
 * (header_timeout); connections past max_connections and
 * max_connections_per_ip closed at once.
 */
#include "tests/e2e/suites.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lib/clock.h"
#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/orders.h"
#include "tests/lib/process.h"

#define ORDER "{\"product\":\"apple\",\"quantity\":1}"
/* A complete POST /buy, to be smuggled inside another request's body. */
#define SMUGGLED                                                               \
    "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n" ORDER

/* Bytes that arrive on `c` until the server closes it (fails the test if
 * it does not close within `ms`). */
static size_t bytes_until_closed(struct http_conn *c, int ms)
{
    size_t extra = c->len;
    int64_t deadline = now_ms() + ms;
    char buf[4096];
    for (;;) {
        int64_t left = deadline - now_ms();
        ck_assert_msg(left > 0, "the connection was not closed within %d ms",
                      ms);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return extra;
        if (n > 0)
            extra += (size_t)n;
    }
}

/*
 * Send `raw` on a fresh connection; assert exactly one answer with
 * `status` (a JSON error body with `code` when not NULL), then a close with
 * nothing after it.
 */
static void expect_one_answer_closed(unsigned port, const char *what,
                                     const char *raw, size_t raw_len,
                                     int status, const char *code)
{
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    ck_assert_int_eq(http_send_raw(&c, raw, raw_len), 0);
    struct http_resp r;
    int e = http_read(&c, &r, false, E2E_IO_TIMEOUT_MS);
    ck_assert_msg(e == 0, "%s: no answer (%s)", what, strerror(-e));
    ck_assert_msg(r.status == status, "%s: status %d, want %d: %s", what,
                  r.status, status, r.body);
    if (code != NULL)
        expect_error(&r, status, code);
    ck_assert_msg(http_says_close(&r), "%s: no Connection: close", what);
    size_t extra = bytes_until_closed(&c, E2E_IO_TIMEOUT_MS);
    ck_assert_msg(extra == 0, "%s: %zu bytes after the answer (a second one)",
                  what, extra);
    http_resp_free(&r);
    http_close(&c);
}

static double accepted(unsigned port)
{
    cJSON *st = get_json_ok(port, "/stats");
    double n = jnum(st, "orders.accepted");
    cJSON_Delete(st);
    return n;
}

/*
 * Requests whose framing is ambiguous or not allowed: each gets exactly
 * one answer and a close with nothing after it (so nothing smuggled in a
 * body is ever read as a request of its own), and creates no order. The
 * request is `head`, then (with `cl`) a Content-Length that covers
 * `body`, then `tail`, an empty line and `body`.
 */
#define POST_BUY         "POST /buy HTTP/1.1\r\nHost: x\r\n"
#define TE_CHUNKED       "Transfer-Encoding: chunked\r\n"
#define END_AND_SMUGGLED "0\r\n\r\n" SMUGGLED

/* A chunk-size line of 300 bytes: a size with leading zeros, or a size
 * and a long extension; each frames the order (32 = 0x20 bytes). */
#define ZEROS_50   "00000000000000000000000000000000000000000000000000"
#define ZEROS_300  ZEROS_50 ZEROS_50 ZEROS_50 ZEROS_50 ZEROS_50 ZEROS_50
#define CHUNK_TAIL "\r\n" ORDER "\r\n0\r\n\r\n"

static const struct {
    const char *row; /* names the row in failure messages */
    const char *head;
    bool cl;
    const char *tail;
    const char *body;
    int status;
    const char *code;
    /* Set when the head holds a NUL: `head` is then the whole request,
     * `raw_len` bytes long, and the fields above are not used. */
    size_t raw_len;
} one_answer[] = {
    /* Content-Length covers a chunked "0" terminator and a smuggled
     * order. */
    {"CL+TE", POST_BUY, true, TE_CHUNKED, END_AND_SMUGGLED, 400, "bad_request",
     0},
    {"TE+CL", POST_BUY TE_CHUNKED, true, "", END_AND_SMUGGLED, 400,
     "bad_request", 0},
    /* Two Content-Lengths: the first (0) would leave the order as the next
     * request. */
    {"two Content-Lengths", POST_BUY "Content-Length: 0\r\n", true, "",
     SMUGGLED, 400, "bad_request", 0},
    {"Transfer-Encoding: gzip", POST_BUY, true, "Transfer-Encoding: gzip\r\n",
     ORDER, 501, "not_implemented", 0},
    {"Transfer-Encoding: xchunked", POST_BUY, true,
     "Transfer-Encoding: xchunked\r\n", ORDER, 501, "not_implemented", 0},
    {"Transfer-Encoding: chunked, identity", POST_BUY, true,
     "Transfer-Encoding: chunked, identity\r\n", ORDER, 501, "not_implemented",
     0},
    {"Transfer-Encoding: identity", POST_BUY, true,
     "Transfer-Encoding: identity\r\n", ORDER, 501, "not_implemented", 0},
    {"two Transfer-Encodings", POST_BUY TE_CHUNKED TE_CHUNKED, false, "",
     END_AND_SMUGGLED, 501, "not_implemented", 0},
    {"space before the colon", POST_BUY "Transfer-Encoding : chunked\r\n", true,
     "", END_AND_SMUGGLED, 400, "bad_request", 0},
    {"HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n", false, "", "", 400,
     "bad_request", 0},
    {"two Host headers", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
     false, "", "", 400, "bad_request", 0},
    /* Header values are refused whole, never truncated or dropped (RFC
     * 9110 §5.5, RFC 9112 §5.2): a NUL, a bare CR, an obs-fold. */
    {"a NUL in a header value",
     POST_BUY "Idempotency-Key: k1\0junk\r\nContent-Length: 32\r\n\r\n" ORDER,
     false, "", "", 400, "bad_request",
     sizeof(POST_BUY "Idempotency-Key: k1\0junk\r\nContent-Length: "
                     "32\r\n\r\n" ORDER) -
         1},
    {"a NUL in the last header value",
     POST_BUY
     "Content-Length: 32\r\nAuthorization: Bearer t\0junk\r\n\r\n" ORDER,
     false, "", "", 400, "bad_request",
     sizeof(POST_BUY "Content-Length: 32\r\nAuthorization: Bearer "
                     "t\0junk\r\n\r\n" ORDER) -
         1},
    {"a bare CR in a header value", POST_BUY "X-Note: a\rjunk\r\n", true, "",
     ORDER, 400, "bad_request", 0},
    {"a bare CR ending a header value", POST_BUY "X-Note: a\r\r\n", true, "",
     ORDER, 400, "bad_request", 0},
    {"an obs-folded Idempotency-Key", POST_BUY "Idempotency-Key: k1\r\n k2\r\n",
     true, "", ORDER, 400, "bad_request", 0},
    {"an obs-folded header, tab", POST_BUY "X-Note: a\r\n\tb\r\n", true, "",
     ORDER, 400, "bad_request", 0},
    /* A chunk-size line longer than a few hundred bytes. */
    {"a 300-byte chunk size", POST_BUY TE_CHUNKED, false, "",
     ZEROS_300 "20" CHUNK_TAIL, 400, "bad_request", 0},
    {"a 300-byte chunk extension", POST_BUY TE_CHUNKED, false, "",
     "20;" ZEROS_300 CHUNK_TAIL, 400, "bad_request", 0},
};

START_TEST(test_e2e_framing_one_answer_closed)
{
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    char raw[2048];
    char cl[48] = "";
    size_t len = one_answer[_i].raw_len;
    if (len > 0) {
        memcpy(raw, one_answer[_i].head, len);
    } else {
        if (one_answer[_i].cl)
            snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n",
                     strlen(one_answer[_i].body));
        snprintf(raw, sizeof(raw), "%s%s%s\r\n%s", one_answer[_i].head, cl,
                 one_answer[_i].tail, one_answer[_i].body);
        len = strlen(raw);
    }
    expect_one_answer_closed(port, one_answer[_i].row, raw, len,
                             one_answer[_i].status, one_answer[_i].code);
    /* Nothing above created an order, smuggled or not. */
    ck_assert_msg(accepted(port) == 0, "%s: %g orders were accepted",
                  one_answer[_i].row, accepted(port));
    /* And the server still takes a proper one. */
    ck_assert_int_eq(buy_one_ok(port, ORDER), 1);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_framing_http10_needs_no_host)
{
    struct shopd *s = shopd_start(NULL, NULL);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, shopd_port(s)), 0);
    const char *v10 = "GET /healthz HTTP/1.0\r\n\r\n";
    ck_assert_int_eq(http_send_raw(&c, v10, strlen(v10)), 0);
    struct http_resp r;
    ck_assert_int_eq(http_read(&c, &r, false, E2E_IO_TIMEOUT_MS), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    http_close(&c);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_framing_absolute_form)
{
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    char path[128];
    snprintf(path, sizeof(path), "http://127.0.0.1:%u/products/apple", port);
    struct http_resp r;
    ck_assert_int_eq(http_do(port, "GET", path, NULL, NULL, 0, &r), 0);
    ck_assert_msg(r.status == 200, "absolute-form GET: %d %s", r.status,
                  r.body);
    cJSON *j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "sku"), "apple");
    cJSON_Delete(j);
    http_resp_free(&r);
    /* POST in absolute form is an order like any other. */
    snprintf(path, sizeof(path), "http://localhost:%u/buy", port);
    ck_assert_int_eq(http_do(port, "POST", path, NULL, ORDER, 32, &r), 0);
    ck_assert_int_eq(r.status, 202);
    http_resp_free(&r);
    shopd_destroy(s);
}
END_TEST

/* GET /healthz with headers "X-H<i>: v" (10 bytes each) or, with
 * `long_lines`, "X-Forwarded-<iiii>: value" (25 bytes) until they make
 * `want` bytes; returns the status and stores how many were sent. */
static int get_with_headers(unsigned port, bool long_lines, size_t want,
                            int *count)
{
    size_t cap = want + 128;
    char *h = malloc(cap);
    ck_assert(h != NULL);
    size_t off = 0;
    int n = 0;
    while (off < want) {
        if (long_lines)
            off += (size_t)snprintf(h + off, cap - off,
                                    "X-Forwarded-%04d: value\r\n", n);
        else
            off += (size_t)snprintf(h + off, cap - off, "X-H%d: v\r\n", n);
        n++;
    }
    *count = n;
    struct http_resp r;
    int e = http_do(port, "GET", "/healthz", h, NULL, 0, &r);
    free(h);
    ck_assert_msg(e == 0, "%d headers: %s", n, strerror(-e));
    int st = r.status;
    http_resp_free(&r);
    return st;
}

START_TEST(test_e2e_framing_many_headers)
{
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    /* The 300 short headers (3 KB), then 8 KiB of 25-byte headers
     * (docs/hardening.md: what the 32 KiB per connection holds). */
    static const struct {
        bool long_lines;
        size_t bytes;
    } cases[] = {{false, 3000}, {true, 8 * 1024 - 64}};
    for (size_t i = 0; i < 2; i++) {
        int n = 0;
        int st =
            get_with_headers(port, cases[i].long_lines, cases[i].bytes, &n);
        ck_assert_msg(st == 200, "%d headers (%zu bytes): status %d", n,
                      cases[i].bytes, st);
    }
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_framing_duplicate_json_key)
{
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    static const char body[] =
        "{\"product\":\"apple\",\"quantity\":1,\"quantity\":1000000}";
    struct http_resp r;
    ck_assert_int_eq(
        http_do(port, "POST", "/buy", NULL, body, sizeof(body) - 1, &r), 0);
    const char *msg = expect_error(&r, 400, "invalid_json");
    ck_assert_msg(strstr(msg, "quantity") != NULL, "message: %s", msg);
    http_resp_free(&r);
    ck_assert(accepted(port) == 0);
    shopd_destroy(s);
}
END_TEST

/* Connect to 127.0.0.1:port from the local address `src`. */
static void connect_from(struct http_conn *c, const char *src, unsigned port)
{
    memset(c, 0, sizeof(*c));
    c->port = port;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert(c->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    ck_assert_int_eq(inet_pton(AF_INET, src, &a.sin_addr), 1);
    ck_assert_msg(bind(c->fd, (struct sockaddr *)&a, sizeof(a)) == 0,
                  "bind %s: %s", src, strerror(errno));
    a.sin_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
    ck_assert_msg(connect(c->fd, (struct sockaddr *)&a, sizeof(a)) == 0,
                  "connect: %s", strerror(errno));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

START_TEST(test_e2e_framing_request_deadline)
{
    static const char *const args[] = {"--header-timeout", "1",
                                       "--conn-timeout", "30", NULL};
    struct shopd *s = shopd_start(args, NULL);
    unsigned port = shopd_port(s);
    /* A silent connection, and one trickling a header a byte every 100 ms
     * (which an idle timeout of 30 s would never end). */
    struct http_conn silent, slow;
    ck_assert_int_eq(http_connect(&silent, port), 0);
    ck_assert_int_eq(http_connect(&slow, port), 0);
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    ck_assert_int_eq(http_send_raw(&slow, head, strlen(head)), 0);
    int64_t t0 = now_ms();
    bool closed = false;
    while (!closed && now_ms() - t0 < 10000) {
        closed = http_send_raw(&slow, "a", 1) != 0 ||
                 http_wait_closed(&slow, 100) == 0;
    }
    int64_t took = now_ms() - t0;
    ck_assert_msg(closed,
                  "a trickling request lived %lld ms with "
                  "--header-timeout 1",
                  (long long)took);
    ck_assert_int_eq(http_wait_closed(&silent, 10000), 0);
    http_close(&slow);
    http_close(&silent);
    /* On a kept-alive connection the next request's clock starts with its
     * request line: one served request, then a trickled second one. */
    struct http_conn again;
    ck_assert_int_eq(http_connect(&again, port), 0);
    struct http_resp first;
    ck_assert_int_eq(
        http_roundtrip(&again, "GET", "/healthz", NULL, NULL, 0, &first), 0);
    ck_assert_int_eq(first.status, 200);
    http_resp_free(&first);
    ck_assert_int_eq(http_send_raw(&again, head, strlen(head)), 0);
    t0 = now_ms();
    closed = false;
    while (!closed && now_ms() - t0 < 10000) {
        closed = http_send_raw(&again, "a", 1) != 0 ||
                 http_wait_closed(&again, 100) == 0;
    }
    ck_assert_msg(closed, "a trickled second request lived %lld ms",
                  (long long)(now_ms() - t0));
    http_close(&again);

    /* A kept-alive connection that completes its requests is not cut. */
    struct http_conn ka;
    ck_assert_int_eq(http_connect(&ka, port), 0);
    for (int i = 0; i < 3; i++) {
        struct http_resp r;
        ck_assert_int_eq(
            http_roundtrip(&ka, "GET", "/healthz", NULL, NULL, 0, &r), 0);
        ck_assert_int_eq(r.status, 200);
        http_resp_free(&r);
        backoff_ms(400);
    }
    http_close(&ka);
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_msg(jnum(st, "connections.timed_out") >= 3,
                  "connections.timed_out = %g",
                  jnum(st, "connections.timed_out"));
    cJSON_Delete(st);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_framing_connection_limits)
{
    static const char *const args[] = {"--max-connections",
                                       "4",
                                       "--max-connections-per-ip",
                                       "2",
                                       "--conn-timeout",
                                       "30",
                                       "--header-timeout",
                                       "30",
                                       NULL};
    struct shopd *s = shopd_start(args, NULL);
    unsigned port = shopd_port(s);
    /* Of three from 127.0.0.2 two are admitted (they get answers) and one
     * is closed at once, not left waiting for a slot. Which one depends on
     * which HTTP thread accepted which first. */
    struct http_conn a[3];
    for (int i = 0; i < 3; i++)
        connect_from(&a[i], "127.0.0.2", port);
    int served = 0, closed = 0;
    for (int i = 0; i < 3; i++) {
        struct http_resp r;
        int e = http_roundtrip(&a[i], "GET", "/healthz", NULL, NULL, 0, &r);
        if (e == 0 && r.status == 200)
            served++;
        else if (e == -EPIPE || e == -ECONNRESET)
            closed++;
        http_resp_free(&r);
    }
    ck_assert_msg(served == 2 && closed == 1,
                  "3 connections from one address with a limit of 2: %d "
                  "served, %d closed",
                  served, closed);
    /* Another address still gets in: 2 more fill the limit of 4... */
    struct http_conn b[3];
    for (int i = 0; i < 2; i++) {
        connect_from(&b[i], "127.0.0.3", port);
        struct http_resp r;
        ck_assert_int_eq(
            http_roundtrip(&b[i], "GET", "/healthz", NULL, NULL, 0, &r), 0);
        ck_assert_int_eq(r.status, 200);
        http_resp_free(&r);
    }
    /* ...and past it a new connection is closed at once. */
    connect_from(&b[2], "127.0.0.4", port);
    ck_assert_msg(http_wait_closed(&b[2], 5000) == 0,
                  "a connection past --max-connections was not closed");
    for (int i = 0; i < 3; i++) {
        http_close(&a[i]);
        http_close(&b[i]);
    }
    /* Once they are gone, service is back (the server notices the closes
     * in its next poll). */
    int64_t deadline = now_ms() + 10000;
    for (;;) {
        struct http_resp r;
        int e = http_do(port, "GET", "/stats", NULL, NULL, 0, &r);
        if (e == 0 && r.status == 200) {
            cJSON *st = resp_json(&r);
            ck_assert(st != NULL);
            double refused = jnum(st, "connections.refused");
            ck_assert_msg(refused >= 2, "connections.refused = %g", refused);
            cJSON_Delete(st);
            http_resp_free(&r);
            break;
        }
        http_resp_free(&r);
        ck_assert_msg(now_ms() < deadline, "no service 10 s after the "
                                           "clients left");
        backoff_ms(50);
    }
    shopd_destroy(s);
}
END_TEST

/* All request bodies in progress hold at most 64 MiB (SPEC §4): with two
 * bodies of 30 MiB held open (their last byte not sent), a third that
 * announces 30 MiB more is answered 503 busy at once, with Retry-After: 1,
 * before a byte of it is read; the held ones are still served. */
#define BIG_BODY ((size_t)30 << 20)

START_TEST(test_e2e_framing_bodies_memory_cap)
{
    static const char *const args[] = {"--max-body", "33554432",
                                       "--header-timeout", "60", NULL};
    struct shopd *s = shopd_start(args, NULL);
    unsigned port = shopd_port(s);
    char *body = malloc(BIG_BODY);
    ck_assert_ptr_nonnull(body);
    memset(body, 'x', BIG_BODY);
    char head[160];
    snprintf(head, sizeof(head),
             "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             BIG_BODY);
    struct http_conn held[2];
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(http_connect(&held[i], port), 0);
        ck_assert_int_eq(http_send_raw(&held[i], head, strlen(head)), 0);
        ck_assert_int_eq(http_send_raw(&held[i], body, BIG_BODY - 1), 0);
    }
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    ck_assert_int_eq(http_send_raw(&c, head, strlen(head)), 0);
    struct http_resp r;
    int e = http_read(&c, &r, false, E2E_IO_TIMEOUT_MS);
    ck_assert_msg(e == 0, "no answer to a body past 64 MiB in all: %s",
                  strerror(-e));
    expect_error(&r, 503, "busy");
    const char *ra = http_header(&r, "Retry-After");
    ck_assert_msg(ra != NULL && strcmp(ra, "1") == 0, "Retry-After: %s",
                  ra ? ra : "(none)");
    ck_assert(http_says_close(&r));
    http_resp_free(&r);
    http_close(&c);
    /* The held bodies were kept whole: each is answered on its merits
     * (not JSON) once its last byte comes. */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(http_send_raw(&held[i], "x", 1), 0);
        ck_assert_int_eq(http_read(&held[i], &r, false, E2E_IO_TIMEOUT_MS), 0);
        ck_assert_msg(r.status == 400, "held body %d: %d %s", i, r.status,
                      r.body);
        http_resp_free(&r);
        http_close(&held[i]);
    }
    free(body);
    /* The memory went back: a body of the same announced size is read
     * (and judged on its merits) again. */
    ck_assert_int_eq(http_connect(&c, port), 0);
    snprintf(head, sizeof(head),
             "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    ck_assert_int_eq(http_send_raw(&c, head, strlen(head)), 0);
    ck_assert_int_eq(http_read(&c, &r, false, E2E_IO_TIMEOUT_MS), 0);
    ck_assert_msg(r.status == 400, "after the held bodies: %d %s", r.status,
                  r.body);
    http_resp_free(&r);
    http_close(&c);
    shopd_destroy(s);
}
END_TEST

Suite *e2e_framing_suite(void)
{
    Suite *s = suite_create("e2e_framing");
    TCase *tc = tcase_create("framing");
    tcase_add_checked_fixture(tc, NULL, e2e_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_e2e_framing_one_answer_closed, 0,
                        (int)(sizeof(one_answer) / sizeof(one_answer[0])));
    tcase_add_test(tc, test_e2e_framing_http10_needs_no_host);
    tcase_add_test(tc, test_e2e_framing_absolute_form);
    tcase_add_test(tc, test_e2e_framing_many_headers);
    tcase_add_test(tc, test_e2e_framing_duplicate_json_key);
    tcase_add_test(tc, test_e2e_framing_request_deadline);
    tcase_add_test(tc, test_e2e_framing_connection_limits);
    tcase_add_test(tc, test_e2e_framing_bodies_memory_cap);
    suite_add_tcase(s, tc);
    return s;
}
