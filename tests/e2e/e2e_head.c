/*
 * e2e_head.c - HEAD answers carry no body (RFC 9110 §9.3.2), so the next
 * request on the same connection gets a clean answer. HEAD /events used to
 * send the chunked terminator "0\r\n\r\n" after its headers (libmicrohttpd
 * 0.9.75 writes it for any chunked HEAD answer), which a client reads as
 * the start of the next answer (Node's HTTP parser fails on it).
 *
 * Each check sends the HEAD request, reads its head, then sends GET
 * /healthz on the same connection: any byte of a body left behind would be
 * parsed as that answer's status line.
 */
#include "tests/e2e/suites.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/orders.h"
#include "tests/lib/process.h"

/* HEAD `path` on `c`: status `status`, Content-Type starting with `type`
 * (when not NULL); then GET /healthz on the same connection answers 200
 * {"status":"ok"} with nothing after it. */
static void head_then_get(struct http_conn *c, const char *path, int status,
                          const char *type)
{
    struct http_resp r;
    ck_assert_int_eq(http_send(c, "HEAD", path, NULL, NULL, 0), 0);
    int e = http_read(c, &r, true, E2E_IO_TIMEOUT_MS);
    ck_assert_msg(e == 0, "HEAD %s: no answer (%d)", path, e);
    ck_assert_msg(r.status == status, "HEAD %s: status %d, want %d", path,
                  r.status, status);
    if (type != NULL) {
        const char *ct = http_header(&r, "Content-Type");
        ck_assert_msg(ct != NULL && header_starts(ct, type),
                      "HEAD %s: Content-Type %s, want %s", path,
                      ct ? ct : "(none)", type);
    }
    ck_assert_msg(!http_says_close(&r), "HEAD %s: closed the connection", path);
    http_resp_free(&r);

    e = http_roundtrip(c, "GET", "/healthz", NULL, NULL, 0, &r);
    ck_assert_msg(e == 0, "GET /healthz after HEAD %s: unreadable (%d)", path,
                  e);
    ck_assert_msg(r.status == 200 && strstr(r.body, "\"ok\"") != NULL,
                  "GET /healthz after HEAD %s: %d %s", path, r.status, r.body);
    ck_assert_msg(c->len == 0, "after HEAD %s: %zu stray bytes", path, c->len);
    http_resp_free(&r);
}

START_TEST(test_e2e_head_events)
{
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    head_then_get(&c, "/events", 200, "text/event-stream");
    /* Twice in a row on the same connection, and no viewer was left. */
    head_then_get(&c, "/events", 200, "text/event-stream");
    http_close(&c);
    cJSON *j = get_json_ok(port, "/stats");
    ck_assert_int_eq((int)jnum(j, "events.viewers"), 0);
    cJSON_Delete(j);
    shopd_destroy(s);
}
END_TEST

/* Every route that serves GET, and a 404 and a 405, on one connection. */
START_TEST(test_e2e_head_every_route)
{
    static const struct {
        const char *path;
        int status;
        const char *type;
    } routes[] = {
        {"/healthz", 200, "application/json"},
        {"/readyz", 200, "application/json"},
        {"/stats", 200, "application/json"},
        {"/metrics", 200, "text/plain"},
        {"/", 200, "text/html"},
        {"/events", 200, "text/event-stream"},
        {"/openapi.json", 200, "application/json"},
        {"/products", 200, "application/json"},
        {"/products/apple", 200, "application/json"},
        {"/products/no-such-sku", 404, "application/json"},
        {"/orders/1", 200, "application/json"},
        {"/orders/999999", 404, "application/json"},
        {"/no-such-path", 404, "application/json"},
        {"/buy", 405, "application/json"},
    };
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    uint64_t id = buy_one_ok(port, "{\"product\":\"apple\",\"quantity\":1}");
    ck_assert_int_eq((int)id, 1);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        head_then_get(&c, routes[i].path, routes[i].status, routes[i].type);
    http_close(&c);
    shopd_destroy(s);
}
END_TEST

Suite *e2e_head_suite(void)
{
    Suite *s = suite_create("e2e_head");
    TCase *tc = tcase_create("head");
    tcase_add_checked_fixture(tc, NULL, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_e2e_head_events);
    tcase_add_test(tc, test_e2e_head_every_route);
    suite_add_tcase(s, tc);
    return s;
}
