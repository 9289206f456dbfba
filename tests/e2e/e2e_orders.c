/*
 * e2e_orders.c - POST /buy and GET /orders/{id} against the real binary:
 * every answer of SPEC §1's table, validation, limits, the order book.
 */
#include "tests/e2e/suites.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/orders.h"
#include "tests/lib/process.h"

static const char catalog[] =
    "{\"products\":["
    "{\"sku\":\"apple\",\"name\":\"Apple\",\"price_cents\":50,\"stock\":100},"
    "{\"sku\":\"pear\",\"name\":\"Pear\",\"price_cents\":75,\"stock\":5},"
    "{\"sku\":\"Gold_Bar-1\",\"name\":\"Gold\",\"price_cents\":9,"
    "\"stock\":0}]}";

/* Start shopd over `catalog` plus `extra` args; `*path` gets the file. */
static struct shopd *start_cat(char **path, const char *const *extra)
{
    return shopd_start_catalog(catalog, path, extra);
}

static void stop_cat(struct shopd *s, char *path)
{
    shopd_stop_catalog(s, path);
}

/*
 * POST /buy `body` (length `len`) with `headers` on a fresh connection. A
 * failed send is not fatal: the server may answer (413) and close before
 * it has read everything, so the answer is read regardless.
 */
static void post_buy(unsigned port, const char *headers, const char *body,
                     size_t len, struct http_resp *r)
{
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    int se = http_send(&c, "POST", "/buy", headers, body, len);
    int e = http_read(&c, r, false, E2E_IO_TIMEOUT_MS);
    http_close(&c);
    ck_assert_msg(e == 0, "POST /buy: no answer: %s (send: %s)", strerror(-e),
                  se ? strerror(-se) : "ok");
}

static void check_order(const cJSON *o, uint64_t id, const char *sku, int qty,
                        const char *customer)
{
    ck_assert_msg(jnum(o, "order_id") == (double)id, "order_id");
    ck_assert_str_eq(jstr(o, "product"), sku);
    ck_assert_msg(jnum(o, "quantity") == qty, "quantity");
    const cJSON *c = json_at(o, "customer");
    if (customer) {
        ck_assert_msg(cJSON_IsString(c), "customer is not a string");
        ck_assert_str_eq(c->valuestring, customer);
    } else {
        ck_assert_msg(cJSON_IsNull(c), "absent customer is not null");
    }
    ck_assert_msg(is_rfc3339_utc(jstr(o, "accepted_at")),
                  "accepted_at '%s' is not RFC 3339 UTC",
                  jstr(o, "accepted_at"));
    ck_assert_msg(json_at(o, "processed_at") != NULL, "no processed_at");
    ck_assert_msg(json_at(o, "worker") != NULL, "no worker");
}

START_TEST(test_e2e_buy_accepted)
{
    static const char *const extra[] = {"--workers", "2", NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, extra);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    uint64_t a =
        buy_ok(&c, "{\"product\":\"apple\",\"quantity\":2,\"customer\":"
                   "\"ann\"}");
    uint64_t b = buy_ok(&c, "{\"product\":\"apple\",\"quantity\":3}");
    uint64_t d =
        buy_ok(&c, "{\"gift\":true,\"product\":\"pear\",\"quantity\":1,"
                   "\"extra\":{\"x\":[1,2]}}");
    uint64_t w =
        buy_ok(&c, " \n{ \"product\" : \"apple\" , \"quantity\" : 1 }\n ");
    http_close(&c);
    ck_assert_msg(a == 1 && b == 2 && d == 3 && w == 4,
                  "ids %llu %llu %llu %llu, want 1 2 3 4",
                  (unsigned long long)a, (unsigned long long)b,
                  (unsigned long long)d, (unsigned long long)w);

    static const struct {
        const char *sku;
        int qty;
        const char *customer;
    } want[] = {{"apple", 2, "ann"},
                {"apple", 3, NULL},
                {"pear", 1, NULL},
                {"apple", 1, NULL}};
    for (uint64_t id = 1; id <= 4; id++) {
        cJSON *o = wait_order_final_ok(port, id, 20000);
        check_order(o, id, want[id - 1].sku, want[id - 1].qty,
                    want[id - 1].customer);
        ck_assert_str_eq(jstr(o, "status"), "fulfilled");
        ck_assert_msg(is_rfc3339_utc(jstr(o, "processed_at")),
                      "processed_at '%s' is not RFC 3339 UTC",
                      jstr(o, "processed_at"));
        const cJSON *wk = json_at(o, "worker");
        ck_assert_msg(cJSON_IsNumber(wk) && wk->valuedouble >= 0 &&
                          wk->valuedouble < 2 &&
                          wk->valuedouble == (double)(int)wk->valuedouble,
                      "worker is not an index below 2");
        cJSON_Delete(o);
    }
    cJSON *p = get_json_ok(port, "/products/apple");
    ck_assert_msg(jnum(p, "stock") == 94 && jnum(p, "sold") == 6,
                  "apple stock %g sold %g, want 94 6", jnum(p, "stock"),
                  jnum(p, "sold"));
    cJSON_Delete(p);
    cJSON *st = wait_idle_ok(port, 10000);
    ck_assert_msg(jnum(st, "orders.accepted") == 4 &&
                      jnum(st, "orders.fulfilled") == 4,
                  "stats accepted/fulfilled");
    cJSON_Delete(st);
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_buy_queued_order_fields)
{
    /* One slow worker: the third order waits at least 2 work periods. */
    static const char *const extra[] = {"--workers", "1", "--work-ms", "3000",
                                        NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, extra);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (int i = 0; i < 3; i++)
        buy_ok(&c, "{\"product\":\"apple\",\"quantity\":1,\"customer\":"
                   "\"q\"}");
    http_close(&c);
    cJSON *o = get_json_ok(port, "/orders/3");
    check_order(o, 3, "apple", 1, "q");
    ck_assert_str_eq(jstr(o, "status"), "queued");
    ck_assert_msg(cJSON_IsNull(json_at(o, "processed_at")),
                  "queued order has processed_at");
    ck_assert_msg(cJSON_IsNull(json_at(o, "worker")),
                  "queued order has a worker");
    cJSON_Delete(o);
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_msg(jnum(st, "orders.accepted") ==
                      jnum(st, "orders.processed") + jnum(st, "queue.depth") +
                          jnum(st, "orders.in_flight"),
                  "accepted != processed + depth + in_flight while busy");
    cJSON_Delete(st);
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_buy_out_of_stock)
{
    static const char *const extra[] = {"--workers", "1", NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, extra);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    buy_ok(&c, "{\"product\":\"pear\",\"quantity\":3}");
    buy_ok(&c, "{\"product\":\"pear\",\"quantity\":3}");
    buy_ok(&c, "{\"product\":\"Gold_Bar-1\",\"quantity\":1}");
    buy_ok(&c, "{\"product\":\"pear\",\"quantity\":2}");
    http_close(&c);
    static const char *const want[] = {"fulfilled", "out_of_stock",
                                       "out_of_stock", "fulfilled"};
    for (uint64_t id = 1; id <= 4; id++) {
        cJSON *o = wait_order_final_ok(port, id, 20000);
        ck_assert_msg(strcmp(jstr(o, "status"), want[id - 1]) == 0,
                      "order %llu is %s, want %s", (unsigned long long)id,
                      jstr(o, "status"), want[id - 1]);
        /* A processed order says who processed it, whatever the outcome. */
        ck_assert_msg(is_rfc3339_utc(jstr(o, "processed_at")),
                      "processed_at of order %llu", (unsigned long long)id);
        ck_assert_msg(jnum(o, "worker") == 0, "worker of order %llu",
                      (unsigned long long)id);
        cJSON_Delete(o);
    }
    cJSON *p = get_json_ok(port, "/products/pear");
    ck_assert_msg(jnum(p, "stock") == 0 && jnum(p, "sold") == 5,
                  "pear stock %g sold %g, want 0 5", jnum(p, "stock"),
                  jnum(p, "sold"));
    cJSON_Delete(p);
    p = get_json_ok(port, "/products/Gold_Bar-1");
    ck_assert_msg(jnum(p, "stock") == 0 && jnum(p, "sold") == 0, "gold");
    cJSON_Delete(p);
    cJSON *st = wait_idle_ok(port, 10000);
    ck_assert_msg(jnum(st, "orders.fulfilled") == 2 &&
                      jnum(st, "orders.out_of_stock") == 2 &&
                      jnum(st, "orders.processed") == 4,
                  "stats fulfilled/out_of_stock/processed");
    ck_assert_msg(jnum(st, "inventory.pear.stock") == 0 &&
                      jnum(st, "inventory.pear.sold") == 5,
                  "stats inventory pear");
    cJSON_Delete(st);
    stop_cat(s, cat);
}
END_TEST

static const char *const invalid_json_bodies[] = {
    "",
    "not json",
    "[1,2]",
    "[{\"product\":\"apple\",\"quantity\":1}]",
    "\"apple\"",
    "42",
    "null",
    "true",
    "{\"product\":\"apple\",\"quantity\":1} trailing",
    "{\"product\":\"apple\",\"quantity\":1}{}",
    "{\"product\":\"apple\",\"quantity\":1",
    "{\"product\":\"apple\" \"quantity\":1}",
    "{'product':'apple','quantity':1}",
    "product=apple&quantity=1",
};

START_TEST(test_e2e_buy_invalid_json)
{
    const char *body = invalid_json_bodies[_i];
    char *cat;
    struct shopd *s = start_cat(&cat, NULL);
    struct http_resp r;
    post_buy(shopd_port(s), "Content-Type: application/json\r\n", body,
             strlen(body), &r);
    ck_assert_msg(r.status == 400, "body '%s': status %d, body %.200s", body,
                  r.status, r.body);
    expect_error(&r, 400, "invalid_json");
    http_resp_free(&r);
    stop_cat(s, cat);
}
END_TEST

static const struct {
    const char *body;
    const char *field;
} invalid_fields[] = {
    {"{}", "product"},
    {"{\"quantity\":1}", "product"},
    {"{\"product\":\"apple\"}", "quantity"},
    {"{\"product\":5,\"quantity\":1}", "product"},
    {"{\"product\":null,\"quantity\":1}", "product"},
    {"{\"product\":[\"apple\"],\"quantity\":1}", "product"},
    {"{\"product\":\"\",\"quantity\":1}", "product"},
    {"{\"product\":\"bad sku\",\"quantity\":1}", "product"},
    {"{\"product\":\"a/b\",\"quantity\":1}", "product"},
    {"{\"product\":\"apple!\",\"quantity\":1}", "product"},
    {"{\"product\":\"appl\\u00e9\",\"quantity\":1}", "product"},
    {"{\"product\":\"apple\\u0000x\",\"quantity\":1}", "product"},
    {"{\"product\":"
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaa\",\"quantity\":1}",
     "product"},
    {"{\"product\":\"apple\",\"quantity\":0}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":-1}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1.5}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":\"3\"}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1e3}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1E0}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":true}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":null}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":[1]}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1001}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":2147483648}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":4294967297}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":18446744073709551617}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1e300}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":-0.5}", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1,\"customer\":5}", "customer"},
    {"{\"product\":\"apple\",\"quantity\":1,\"customer\":true}", "customer"},
    {"{\"product\":\"apple\",\"quantity\":1,\"customer\":[]}", "customer"},
    {"{\"product\":\"apple\",\"quantity\":1,\"customer\":{}}", "customer"},
    {"{\"product\":\"apple\",\"quantity\":1,\"customer\":\""
     "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
     "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"}",
     "customer"},
};

START_TEST(test_e2e_buy_invalid_field)
{
    const char *body = invalid_fields[_i].body;
    const char *field = invalid_fields[_i].field;
    char *cat;
    struct shopd *s = start_cat(&cat, NULL);
    struct http_resp r;
    post_buy(shopd_port(s), "Content-Type: application/json\r\n", body,
             strlen(body), &r);
    ck_assert_msg(r.status == 400, "body '%s': status %d, body %.200s", body,
                  r.status, r.body);
    const char *msg = expect_error(&r, 400, "invalid_field");
    ck_assert_msg(strstr(msg, field) != NULL,
                  "body '%s': message '%s' does not name '%s'", body, msg,
                  field);
    http_resp_free(&r);
    cJSON *st = get_json_ok(shopd_port(s), "/stats");
    ck_assert_msg(jnum(st, "orders.accepted") == 0, "an invalid order was "
                                                    "accepted");
    cJSON_Delete(st);
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_buy_unknown_product)
{
    char *cat;
    struct shopd *s = start_cat(&cat, NULL);
    static const char *const bodies[] = {
        "{\"product\":\"nope\",\"quantity\":1}",
        "{\"product\":\"APPLE\",\"quantity\":1}",
        /* 64 characters: well-formed, just not in the catalog. */
        ("{\"product\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaa\",\"quantity\":1}"),
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        struct http_resp r;
        post_buy(shopd_port(s), NULL, bodies[i], strlen(bodies[i]), &r);
        ck_assert_msg(r.status == 404, "%s: status %d body %.200s", bodies[i],
                      r.status, r.body);
        expect_error(&r, 404, "unknown_product");
        http_resp_free(&r);
    }
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_buy_limits)
{
    static const char *const extra[] = {"--max-quantity", "5", NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, extra);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    ck_assert_int_eq(buy_ok(&c, "{\"product\":\"apple\",\"quantity\":5}"), 1);
    struct http_resp r;
    const char *six = "{\"product\":\"apple\",\"quantity\":6}";
    post_buy(port, NULL, six, strlen(six), &r);
    const char *msg = expect_error(&r, 400, "invalid_field");
    ck_assert_msg(strstr(msg, "quantity"), "message '%s' lacks quantity", msg);
    http_resp_free(&r);

    /* Customer: exactly 128 bytes is fine, and escapes round-trip. */
    char body[512];
    char c128[129];
    memset(c128, 'c', 128);
    c128[128] = '\0';
    snprintf(body, sizeof body,
             "{\"product\":\"apple\",\"quantity\":1,\"customer\":\"%s\"}",
             c128);
    ck_assert_int_eq(buy_ok(&c, body), 2);
    ck_assert_int_eq(
        buy_ok(&c, "{\"product\":\"apple\",\"quantity\":1,\"customer\":"
                   "\"Zo\xc3\xab \\\"Q\\\" \\\\ \\n\\t\\u00e9\"}"),
        3);
    /* 64 multi-byte characters are 128 bytes: still fine. */
    char cu[512] = "{\"product\":\"apple\",\"quantity\":1,\"customer\":\"";
    for (int i = 0; i < 64; i++)
        strcat(cu, "\xc3\xa9");
    strcat(cu, "\"}");
    ck_assert_int_eq(buy_ok(&c, cu), 4);
    http_close(&c);

    cJSON *o = get_json_ok(port, "/orders/2");
    ck_assert_str_eq(jstr(o, "customer"), c128);
    cJSON_Delete(o);
    o = get_json_ok(port, "/orders/3");
    ck_assert_str_eq(jstr(o, "customer"), "Zo\xc3\xab \"Q\" \\ \n\t\xc3\xa9");
    cJSON_Delete(o);
    o = get_json_ok(port, "/orders/4");
    ck_assert_int_eq(strlen(jstr(o, "customer")), 128);
    cJSON_Delete(o);

    /* 129 bytes (two-byte characters) are too many. */
    char cv[512] = "{\"product\":\"apple\",\"quantity\":1,\"customer\":\"x";
    for (int i = 0; i < 64; i++)
        strcat(cv, "\xc3\xa9");
    strcat(cv, "\"}");
    post_buy(port, NULL, cv, strlen(cv), &r);
    msg = expect_error(&r, 400, "invalid_field");
    ck_assert_msg(strstr(msg, "customer"), "message '%s' lacks customer", msg);
    http_resp_free(&r);
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_buy_method_not_allowed)
{
    static const char *const methods[] = {"GET",   "PUT",  "DELETE",
                                          "PATCH", "HEAD", "OPTIONS"};
    struct shopd *s = shopd_start(NULL, NULL);
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        struct http_conn c;
        struct http_resp r;
        ck_assert_int_eq(http_connect(&c, shopd_port(s)), 0);
        ck_assert_int_eq(http_send(&c, methods[i], "/buy", NULL, NULL, 0), 0);
        int e = http_read(&c, &r, strcmp(methods[i], "HEAD") == 0,
                          E2E_IO_TIMEOUT_MS);
        ck_assert_msg(e == 0, "%s /buy: %s", methods[i], strerror(-e));
        ck_assert_msg(r.status == 405, "%s /buy: status %d", methods[i],
                      r.status);
        const char *allow = http_header(&r, "Allow");
        ck_assert_msg(allow && strcmp(allow, "POST") == 0,
                      "%s /buy: Allow '%s', want POST", methods[i],
                      allow ? allow : "(none)");
        if (strcmp(methods[i], "HEAD") != 0) {
            cJSON *j = resp_json(&r);
            ck_assert_msg(j && cJSON_IsString(json_at(j, "error")),
                          "%s /buy: 405 body %.200s", methods[i], r.body);
            cJSON_Delete(j);
        }
        http_resp_free(&r);
        http_close(&c);
    }
    cJSON *st = get_json_ok(shopd_port(s), "/stats");
    ck_assert_msg(jnum(st, "orders.accepted") == 0, "accepted");
    cJSON_Delete(st);
    shopd_destroy(s);
}
END_TEST

/* A valid order padded with spaces to exactly `len` bytes. */
static char *padded_order(size_t len)
{
    const char *core = "{\"product\":\"apple\",\"quantity\":1}";
    size_t cl = strlen(core);
    ck_assert_uint_ge(len, cl);
    char *b = malloc(len + 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, core, cl);
    memset(b + cl, ' ', len - cl);
    b[len] = '\0';
    return b;
}

/*
 * A body up to --max-body (default 4096) is read, one byte more is 413
 * body_too_large, however the body is framed. Each row starts its own
 * shopd: the answer, then the counters (a 413 is a rejected_invalid).
 */
#define EXPECT_100 "Expect: 100-continue\r\n"

static const struct body_size {
    const char *row;      /* names the row in failure messages */
    const char *max_body; /* --max-body, or NULL for the default */
    const char *headers;  /* extra request header lines, or NULL */
    size_t len;           /* a valid order padded with spaces to this */
    size_t chunk;         /* 0: Content-Length; else chunks of this size */
    int status;           /* 202, or 413 body_too_large */
} body_sizes[] = {
    {"exactly --max-body 100", "100", NULL, 100, 0, 202},
    {"one byte over --max-body 100", "100", NULL, 101, 0, 413},
    {"20000 bytes over --max-body 100", "100", NULL, 20000, 0, 413},
    {"exactly the default 4096", NULL, NULL, 4096, 0, 202},
    {"one byte over the default 4096", NULL, NULL, 4097, 0, 413},
    {"chunked in 7-byte pieces", "100", NULL, 40, 7, 202},
    {"chunked, 300 bytes over --max-body 100", "100", NULL, 300, 50, 413},
    {"Expect: 100-continue, 2000 bytes", NULL, EXPECT_100, 2000, 0, 202},
    {"Expect: 100-continue, 5000 bytes", NULL, EXPECT_100, 5000, 0, 413},
};

START_TEST(test_e2e_buy_body_size)
{
    const struct body_size *b = &body_sizes[_i];
    const char *const extra[] = {"--max-body", b->max_body, NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, b->max_body ? extra : NULL);
    unsigned port = shopd_port(s);
    char *body = padded_order(b->len);
    struct http_resp r;
    if (b->chunk) {
        struct http_conn c;
        ck_assert_int_eq(http_connect(&c, port), 0);
        int se = http_send_chunked(&c, "POST", "/buy", b->headers, body, b->len,
                                   b->chunk);
        int e = http_read(&c, &r, false, E2E_IO_TIMEOUT_MS);
        http_close(&c);
        ck_assert_msg(e == 0, "%s: no answer: %s (send: %s)", b->row,
                      strerror(-e), se ? strerror(-se) : "ok");
    } else {
        post_buy(port, b->headers, body, b->len, &r);
    }
    free(body);
    ck_assert_msg(r.status == b->status, "%s: status %d, want %d; body %.200s",
                  b->row, r.status, b->status, r.body);
    if (b->status == 202)
        ck_assert_msg(
            strcmp(r.body, "{\"order_id\":1,\"status\":\"queued\"}") == 0,
            "%s: 202 body '%s'", b->row, r.body);
    else
        expect_error(&r, 413, "body_too_large");
    http_resp_free(&r);
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_msg(
        jnum(st, "orders.accepted") == (b->status == 202 ? 1 : 0) &&
            jnum(st, "orders.rejected_invalid") == (b->status == 413 ? 1 : 0),
        "%s: accepted %g rejected_invalid %g", b->row,
        jnum(st, "orders.accepted"), jnum(st, "orders.rejected_invalid"));
    cJSON_Delete(st);
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_buy_too_large_answers_early)
{
    /* A huge Content-Length must be refused without waiting for it all. */
    char *cat;
    struct shopd *s = start_cat(&cat, NULL);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, shopd_port(s)), 0);
    const char *head = "POST /buy HTTP/1.1\r\nHost: x\r\n"
                       "Content-Length: 1000000000\r\n\r\n";
    ck_assert_int_eq(http_send_raw(&c, head, strlen(head)), 0);
    char *b = padded_order(8192);
    (void)http_send_raw(&c, b, 8192);
    free(b);
    struct http_resp r;
    int e = http_read(&c, &r, false, E2E_IO_TIMEOUT_MS);
    ck_assert_msg(e == 0,
                  "no answer to a 1 GB Content-Length before the "
                  "body was sent (%s)",
                  e == -ETIMEDOUT ? "timed out" : strerror(-e));
    expect_error(&r, 413, "body_too_large");
    http_resp_free(&r);
    http_close(&c);
    cJSON_Delete(get_json_ok(shopd_port(s), "/healthz"));
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_buy_any_content_type)
{
    static const char *const headers[] = {
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: text/plain\r\n",
        NULL, /* none at all */
        "Content-Type: application/json; charset=utf-8\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
    };
    char *cat;
    struct shopd *s = start_cat(&cat, NULL);
    const char *body = "{\"product\":\"apple\",\"quantity\":2}";
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        struct http_resp r;
        post_buy(shopd_port(s), headers[i], body, strlen(body), &r);
        ck_assert_msg(r.status == 202, "with '%s': status %d %s",
                      headers[i] ? headers[i] : "no Content-Type", r.status,
                      r.body);
        char want[64];
        snprintf(want, sizeof want, "{\"order_id\":%zu,\"status\":\"queued\"}",
                 i + 1);
        ck_assert_str_eq(r.body, want);
        http_resp_free(&r);
    }
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_buy_with_curl)
{
    char *cat;
    struct shopd *s = start_cat(&cat, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/buy", shopd_port(s));
    const char *const argv[] = {"curl",
                                "-s",
                                "-S",
                                "--max-time",
                                "20",
                                "-w",
                                "\n%{http_code}",
                                "-XPOST",
                                url,
                                "-d",
                                "{\"product\":\"apple\",\"quantity\":2}",
                                NULL};
    char *out;
    int st = run_cmd(argv, NULL, 0, &out, 30000);
    ck_assert_msg(st != -3, "curl is not on PATH");
    ck_assert_msg(st == 0, "curl failed (%d): %s", st, out);
    ck_assert_msg(strcmp(out, "{\"order_id\":1,\"status\":\"queued\"}\n202") ==
                      0,
                  "curl -d got '%s'", out);
    free(out);
    cJSON *o = wait_order_final_ok(shopd_port(s), 1, 20000);
    ck_assert_str_eq(jstr(o, "status"), "fulfilled");
    ck_assert_msg(jnum(o, "quantity") == 2, "quantity");
    cJSON_Delete(o);
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_buy_expect_continue_curl)
{
    /* The real curl sends Expect: 100-continue for a 2000-byte body read
     * from stdin. */
    char *cat;
    struct shopd *s = start_cat(&cat, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/buy", shopd_port(s));
    const char *const argv[] = {
        "curl",           "-s", "-S", "--max-time", "20", "-w",
        "\n%{http_code}", url,  "-d", "@-",         NULL};
    char *b = padded_order(2000);
    char *out;
    int st = run_cmd(argv, b, 2000, &out, 30000);
    free(b);
    ck_assert_msg(st != -3, "curl is not on PATH");
    ck_assert_msg(st == 0, "curl failed (%d): %s", st, out);
    ck_assert_msg(strcmp(out, "{\"order_id\":1,\"status\":\"queued\"}\n202") ==
                      0,
                  "curl -d @- (2000 bytes) got '%s'", out);
    free(out);
    stop_cat(s, cat);
}
END_TEST

/*
 * GET /orders/{id} with one order placed: the order itself, 404
 * unknown_order for a well-formed id that is not there, 400 invalid_id for
 * anything that is not a whole number in 1..2^64-1 written in plain
 * decimal digits.
 */
static const struct {
    const char *path;
    int status;
    const char *code; /* NULL for the 200 */
} order_gets[] = {
    {"/orders/1", 200, NULL},
    {"/orders/0", 404, "unknown_order"},
    {"/orders/2", 404, "unknown_order"},
    {"/orders/18446744073709551615", 404, "unknown_order"},
    {"/orders/abc", 400, "invalid_id"},
    {"/orders/-1", 400, "invalid_id"},
    {"/orders/1x", 400, "invalid_id"},
    {"/orders/x1", 400, "invalid_id"},
    {"/orders/1.0", 400, "invalid_id"},
    {"/orders/0x10", 400, "invalid_id"},
    {"/orders/+1", 400, "invalid_id"},
    {"/orders/%201", 400, "invalid_id"},
    {"/orders/18446744073709551616", 400, "invalid_id"},
    {"/orders/99999999999999999999999999", 400, "invalid_id"},
};

START_TEST(test_e2e_orders_get)
{
    const char *path = order_gets[_i].path;
    char *cat;
    struct shopd *s = start_cat(&cat, NULL);
    buy_one_ok(shopd_port(s), "{\"product\":\"apple\",\"quantity\":1}");
    struct http_resp r;
    ck_assert_int_eq(http_do(shopd_port(s), "GET", path, NULL, NULL, 0, &r), 0);
    ck_assert_msg(r.status == order_gets[_i].status,
                  "GET %s: status %d, want %d; body %.200s", path, r.status,
                  order_gets[_i].status, r.body);
    if (order_gets[_i].code) {
        expect_error(&r, order_gets[_i].status, order_gets[_i].code);
    } else {
        cJSON *o = resp_json(&r);
        ck_assert_msg(o != NULL && jnum(o, "order_id") == 1,
                      "GET %s: not order 1: %.200s", path, r.body);
        cJSON_Delete(o);
    }
    http_resp_free(&r);
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_orders_history)
{
    static const char *const extra[] = {"--order-history", "4", NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, extra);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (uint64_t i = 1; i <= 6; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"product\":\"apple\",\"quantity\":%llu}",
                 (unsigned long long)i);
        ck_assert_int_eq(buy_ok(&c, body), i);
    }
    http_close(&c);
    for (uint64_t i = 1; i <= 6; i++) {
        char path[64];
        snprintf(path, sizeof path, "/orders/%llu", (unsigned long long)i);
        struct http_resp r;
        ck_assert_int_eq(http_do(port, "GET", path, NULL, NULL, 0, &r), 0);
        if (i <= 2) {
            ck_assert_msg(r.status == 404,
                          "%s with --order-history 4 after 6 orders: %d", path,
                          r.status);
            expect_error(&r, 404, "unknown_order");
        } else {
            ck_assert_msg(r.status == 200, "%s: %d", path, r.status);
            cJSON *o = resp_json(&r);
            ck_assert_msg(o != NULL, "%s: not JSON", path);
            ck_assert_msg(jnum(o, "order_id") == (double)i &&
                              jnum(o, "quantity") == (double)i,
                          "%s holds another order: %s", path, r.body);
            cJSON_Delete(o);
        }
        http_resp_free(&r);
    }
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_buy_rejected_invalid_counted)
{
    static const char *const extra[] = {"--max-body", "100", NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, extra);
    unsigned port = shopd_port(s);
    static const char *const bodies[] = {
        "nope", "{\"product\":\"apple\",\"quantity\":0}",
        "{\"product\":\"nope\",\"quantity\":1}"};
    for (size_t i = 0; i < 3; i++) {
        struct http_resp r;
        post_buy(port, NULL, bodies[i], strlen(bodies[i]), &r);
        ck_assert_msg(r.status == 400 || r.status == 404, "status %d",
                      r.status);
        http_resp_free(&r);
    }
    struct http_resp r;
    char *b = padded_order(500);
    post_buy(port, NULL, b, 500, &r);
    free(b);
    ck_assert_int_eq(r.status, 413);
    http_resp_free(&r);
    buy_one_ok(port, "{\"product\":\"apple\",\"quantity\":1}");
    cJSON *st = wait_idle_ok(port, 10000);
    ck_assert_msg(jnum(st, "orders.rejected_invalid") == 4,
                  "rejected_invalid %g, want 4",
                  jnum(st, "orders.rejected_invalid"));
    ck_assert_msg(jnum(st, "orders.accepted") == 1, "accepted");
    ck_assert_msg(jnum(st, "orders.rejected_full") == 0, "rejected_full");
    cJSON_Delete(st);
    stop_cat(s, cat);
}
END_TEST

Suite *e2e_orders_suite(void)
{
    Suite *s = suite_create("e2e_orders");
    TCase *tc = tcase_create("orders");
    tcase_add_checked_fixture(tc, NULL, e2e_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_e2e_buy_accepted);
    tcase_add_test(tc, test_e2e_buy_queued_order_fields);
    tcase_add_test(tc, test_e2e_buy_out_of_stock);
    tcase_add_loop_test(
        tc, test_e2e_buy_invalid_json, 0,
        (int)(sizeof invalid_json_bodies / sizeof *invalid_json_bodies));
    tcase_add_loop_test(tc, test_e2e_buy_invalid_field, 0,
                        (int)(sizeof invalid_fields / sizeof *invalid_fields));
    tcase_add_test(tc, test_e2e_buy_unknown_product);
    tcase_add_test(tc, test_e2e_buy_limits);
    tcase_add_test(tc, test_e2e_buy_method_not_allowed);
    tcase_add_loop_test(tc, test_e2e_buy_body_size, 0,
                        (int)(sizeof body_sizes / sizeof *body_sizes));
    tcase_add_test(tc, test_e2e_buy_too_large_answers_early);
    tcase_add_test(tc, test_e2e_buy_any_content_type);
    tcase_add_test(tc, test_e2e_buy_with_curl);
    tcase_add_test(tc, test_e2e_buy_expect_continue_curl);
    tcase_add_loop_test(tc, test_e2e_orders_get, 0,
                        (int)(sizeof order_gets / sizeof *order_gets));
    tcase_add_test(tc, test_e2e_orders_history);
    tcase_add_test(tc, test_e2e_buy_rejected_invalid_counted);
    suite_add_tcase(s, tc);
    return s;
}
