/*
 * check_server.c - the HTTP handlers without a socket: every row of the
 * SPEC's POST /buy table, the read endpoints, routing, and catalog files.
 * Each test builds its own small shop; workers are not started unless a
 * test needs orders processed, so the belt's contents are deterministic.
 */
#include "server/api/internal.h"
#include "server/api/api.h"
#include "common/log.h"
#include "server/cmd/catalog_file.h"
#include "server/http/httpd.h"
#include "shop/shop.h"

#include <cJSON.h>
#include <check.h>

#include "tests/suites.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct shop *shop;
static struct app app;

static const struct product test_catalog[] = {
    {"apple", "Apple", 50, 10},
    {"pear", "Pear", 70, 0},
};

static void setup(void)
{
    struct shop_config sc = {
        .workers = 1, .queue_capacity = 4, .order_history = 16};
    ck_assert_int_eq(shop_create(&sc, test_catalog, 2, &shop), 0);
    app.shop = shop;
    app.limits.max_body = 4096;
    app.limits.max_quantity = 1000;
    app.limits.http_threads = 2;
    app.limits.admin_enabled = false;
}

static void teardown(void)
{
    shop_destroy(shop);
    shop = NULL;
}

/* Send one request through the router. */
static void call(const char *method, const char *path, const char *body,
                 struct http_response *res)
{
    struct http_request req = {
        .method = method,
        .path = path,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    api_handle(&app, &req, res);
}

static const char *header(const struct http_response *res, const char *name)
{
    for (size_t i = 0; i < res->nheaders; i++)
        if (strcmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

/* The error code of a JSON error body; asserts the body's shape. */
static void assert_error(const struct http_response *res, unsigned status,
                         const char *code)
{
    ck_assert_uint_eq(res->status, status);
    ck_assert_str_eq(res->content_type, "application/json");
    cJSON *j = cJSON_ParseWithLength(res->body, res->body_len);
    ck_assert_ptr_nonnull(j);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    ck_assert(cJSON_IsString(e));
    ck_assert(cJSON_IsString(m));
    ck_assert_str_eq(e->valuestring, code);
    ck_assert_uint_gt(strlen(m->valuestring), 0);
    cJSON_Delete(j);
}

START_TEST(test_server_buy_accepts_and_locates)
{
    struct http_response res;
    call("POST", "/buy", "{\"product\":\"apple\",\"quantity\":2}", &res);
    ck_assert_uint_eq(res.status, 202);
    ck_assert_str_eq(res.body, "{\"order_id\":1,\"status\":\"queued\"}");
    ck_assert_str_eq(header(&res, "Location"), "/orders/1");
    http_response_release(&res);

    call("POST", "/buy",
         "{\"product\":\"pear\",\"quantity\":1,\"customer\":\"ann\","
         "\"extra\":[1,{\"x\":2}]}",
         &res);
    ck_assert_uint_eq(res.status, 202);
    ck_assert_str_eq(res.body, "{\"order_id\":2,\"status\":\"queued\"}");
    http_response_release(&res);
}
END_TEST

struct bad_body {
    const char *body;
    unsigned status;
    const char *code;
    const char *names; /* the message must name this, or NULL */
};

static const struct bad_body bad_bodies[] = {
    {"", 400, "invalid_json", NULL},
    {"nope", 400, "invalid_json", NULL},
    {"[1,2]", 400, "invalid_json", NULL},
    {"\"apple\"", 400, "invalid_json", NULL},
    {"{\"product\":\"apple\",\"quantity\":1} x", 400, "invalid_json", NULL},
    {"{\"product\":\"apple\",\"quantity\":1", 400, "invalid_json", NULL},
    {"{\"quantity\":1}", 400, "invalid_field", "product"},
    {"{\"product\":1,\"quantity\":1}", 400, "invalid_field", "product"},
    {"{\"product\":\"ap ple\",\"quantity\":1}", 400, "invalid_field",
     "product"},
    {"{\"product\":\"\",\"quantity\":1}", 400, "invalid_field", "product"},
    {"{\"product\":"
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaa\",\"quantity\":1}",
     400, "invalid_field", "product"},
    {"{\"product\":\"apple\"}", 400, "invalid_field", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":0}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"apple\",\"quantity\":-1}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1.5}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1.0}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"apple\",\"quantity\":\"3\"}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1e3}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"apple\",\"quantity\":true}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"apple\",\"quantity\":null}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1001}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"apple\",\"quantity\":99999999999999999999}", 400,
     "invalid_field", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":01}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1,\"customer\":5}", 400,
     "invalid_field", "customer"},
    {"{\"product\":\"apple\",\"quantity\":1,\"customer\":\"\xff\xfe\"}", 400,
     "invalid_field", "customer"},
    {"{\"product\":\"apple\\u0000x\",\"quantity\":1}", 400, "invalid_field",
     "product"},
    {"{\"product\":\"apple\",\"quantity\":1,\"customer\":\"a\\u0000b\"}", 400,
     "invalid_field", "customer"},
    /* cJSON's leniencies must not smuggle a non-integer quantity in. */
    {"{\"product\":\"apple\",\"quantit\\u0079\":1e2}", 400, "invalid_field",
     "quantity"},
    /* A key twice in one object, anywhere (SPEC §1): parsers disagree on
     * which one wins, so neither may. Escaped spellings are the same key. */
    {"{\"product\":\"apple\",\"quantit\\u0079\":1e2,\"quantity\":1}", 400,
     "invalid_json", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1,\"quantity\":1000000}", 400,
     "invalid_json", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1,\"product\":\"pear\"}", 400,
     "invalid_json", "product"},
    {"{\"product\":\"apple\",\"quantity\":1,\"x\":{\"a\":1,\"a\":2}}", 400,
     "invalid_json", "'a'"},
    {"{\"product\":\"apple\",\"quantity\":1,\"x\":[{\"k\":[{\"b\":1,\"b\":1}]}]"
     "}",
     400, "invalid_json", "'b'"},
    {"{\"product\":\"apple\",\"quantity\":1,\"a\":1,\"b\":2,\"c\":3,\"d\":4,"
     "\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"k\":11,\"l\":12,"
     "\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"q\":17,\"a\":18}",
     400, "invalid_json", "'a'"},
    {"{\"product\":\"apple\",\x0b\"quantity\":1e2}", 400, "invalid_field",
     "quantity"},
    {"\xef\xbb\xbf{\"product\":\"apple\",\"quantity\":1e2}", 400,
     "invalid_field", "quantity"},
    {"{\"product\":\"apple\",\"quantity\":1e400}", 400, "invalid_field",
     "quantity"},
    {"{\"product\":\"kiwi\",\"quantity\":1}", 404, "unknown_product", "kiwi"},
    {"{\"product\":\"APPLE\",\"quantity\":1}", 404, "unknown_product", NULL},
};

START_TEST(test_server_buy_rejects_bad_bodies)
{
    const struct bad_body *b = &bad_bodies[_i];
    struct http_response res;
    call("POST", "/buy", b->body, &res);
    assert_error(&res, b->status, b->code);
    if (b->names != NULL)
        ck_assert_msg(strstr(res.body, b->names) != NULL,
                      "message of %s should name %s: %s", b->body, b->names,
                      res.body);
    http_response_release(&res);

    struct shop_snapshot s;
    shop_snapshot(shop, &s);
    ck_assert_uint_eq(s.accepted, 0);
    ck_assert_uint_eq(s.rejected_invalid, 1);
}
END_TEST

START_TEST(test_server_buy_customer_limits)
{
    char body[400];
    char name[130];
    memset(name, 'c', 128);
    name[128] = '\0';
    struct http_response res;
    snprintf(body, sizeof(body),
             "{\"product\":\"apple\",\"quantity\":1,\"customer\":\"%s\"}",
             name);
    call("POST", "/buy", body, &res);
    ck_assert_uint_eq(res.status, 202);
    http_response_release(&res);

    name[128] = 'c';
    name[129] = '\0';
    snprintf(body, sizeof(body),
             "{\"product\":\"apple\",\"quantity\":1,\"customer\":\"%s\"}",
             name);
    call("POST", "/buy", body, &res);
    assert_error(&res, 400, "invalid_field");
    http_response_release(&res);

    call("POST", "/buy",
         "{\"product\":\"apple\",\"quantity\":1,\"customer\":null}", &res);
    ck_assert_uint_eq(res.status, 202);
    http_response_release(&res);

    /* An escaped backslash before "u0000" is text, not an escaped NUL. */
    call("POST", "/buy",
         "{\"product\":\"apple\",\"quantity\":1,\"customer\":\"a\\\\u0000\"}",
         &res);
    ck_assert_uint_eq(res.status, 202);
    http_response_release(&res);
}
END_TEST

START_TEST(test_server_buy_max_quantity)
{
    struct http_response res;
    call("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1000}", &res);
    ck_assert_uint_eq(res.status, 202);
    http_response_release(&res);
    app.limits.max_quantity = 5;
    call("POST", "/buy", "{\"product\":\"apple\",\"quantity\":6}", &res);
    assert_error(&res, 400, "invalid_field");
    ck_assert_ptr_nonnull(strstr(res.body, "5"));
    http_response_release(&res);
}
END_TEST

START_TEST(test_server_buy_too_large)
{
    struct http_request req = {
        .method = "POST", .path = "/buy", .body_too_large = true};
    struct http_response res;
    api_handle(&app, &req, &res);
    assert_error(&res, 413, "body_too_large");
    http_response_release(&res);
}
END_TEST

START_TEST(test_server_buy_queue_full_then_draining)
{
    struct http_response res;
    const char *body = "{\"product\":\"apple\",\"quantity\":1}";
    for (int i = 0; i < 4; i++) {
        call("POST", "/buy", body, &res);
        ck_assert_uint_eq(res.status, 202);
        http_response_release(&res);
    }
    call("POST", "/buy", body, &res);
    assert_error(&res, 503, "queue_full");
    ck_assert_str_eq(header(&res, "Retry-After"), "1");
    http_response_release(&res);

    shop_stop_accepting(shop);
    call("POST", "/buy", body, &res);
    assert_error(&res, 503, "shutting_down");
    ck_assert(res.close);
    http_response_release(&res);

    call("GET", "/readyz", NULL, &res);
    assert_error(&res, 503, "shutting_down");
    http_response_release(&res);
    call("GET", "/healthz", NULL, &res);
    ck_assert_uint_eq(res.status, 200);
    http_response_release(&res);

    struct shop_snapshot s;
    shop_snapshot(shop, &s);
    ck_assert_uint_eq(s.accepted, 4);
    ck_assert_uint_eq(s.rejected_full, 1);
    ck_assert(s.draining);
}
END_TEST

START_TEST(test_server_methods_and_paths)
{
    static const char *const get_paths[] = {
        "/orders/1", "/products", "/products/apple",
        "/stats",    "/metrics",  "/healthz",
        "/readyz",   "/",         "/events"};
    struct http_response res;
    call("GET", "/buy", NULL, &res);
    assert_error(&res, 405, "method_not_allowed");
    ck_assert_str_eq(header(&res, "Allow"), "POST");
    http_response_release(&res);
    call("DELETE", "/buy", NULL, &res);
    ck_assert_uint_eq(res.status, 405);
    http_response_release(&res);
    for (size_t i = 0; i < sizeof(get_paths) / sizeof(get_paths[0]); i++) {
        call("POST", get_paths[i], "{}", &res);
        assert_error(&res, 405, "method_not_allowed");
        ck_assert_str_eq(header(&res, "Allow"), "GET, HEAD");
        http_response_release(&res);
    }
    static const char *const unknown[] = {"/nope", "/orders", "/buy/",
                                          "/stats/x", "//"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        call("GET", unknown[i], NULL, &res);
        assert_error(&res, 404, "not_found");
        http_response_release(&res);
    }
}
END_TEST

START_TEST(test_server_order_ids)
{
    static const char *const bad[] = {"/orders/abc", "/orders/-1", "/orders/1x",
                                      "/orders/",
                                      "/orders/99999999999999999999"};
    struct http_response res;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        call("GET", bad[i], NULL, &res);
        assert_error(&res, 400, "invalid_id");
        http_response_release(&res);
    }
    call("GET", "/orders/0", NULL, &res);
    assert_error(&res, 404, "unknown_order");
    http_response_release(&res);
    call("GET", "/orders/1", NULL, &res);
    assert_error(&res, 404, "unknown_order");
    http_response_release(&res);
}
END_TEST

START_TEST(test_server_order_lifecycle)
{
    struct http_response res;
    call("POST", "/buy",
         "{\"product\":\"apple\",\"quantity\":3,\"customer\":\"a \\\"q\\\"\\n"
         "\\u00e9\"}",
         &res);
    ck_assert_uint_eq(res.status, 202);
    http_response_release(&res);

    call("GET", "/orders/1", NULL, &res);
    ck_assert_uint_eq(res.status, 200);
    cJSON *j = cJSON_ParseWithLength(res.body, res.body_len);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "queued");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "product")->valuestring, "apple");
    ck_assert_int_eq(cJSON_GetObjectItem(j, "quantity")->valueint, 3);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "customer")->valuestring,
                     "a \"q\"\n\xc3\xa9");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "processed_at")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "worker")));
    const char *at = cJSON_GetObjectItem(j, "accepted_at")->valuestring;
    ck_assert_uint_eq(strlen(at), 24);
    ck_assert_int_eq(at[10], 'T');
    ck_assert_int_eq(at[23], 'Z');
    cJSON_Delete(j);
    http_response_release(&res);

    ck_assert_int_eq(shop_start(shop), 0);
    ck_assert_int_eq(shop_drain(shop, NULL), 0);
    call("GET", "/orders/1", NULL, &res);
    j = cJSON_ParseWithLength(res.body, res.body_len);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring,
                     "fulfilled");
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(j, "processed_at")));
    ck_assert_int_eq(cJSON_GetObjectItem(j, "worker")->valueint, 0);
    cJSON_Delete(j);
    http_response_release(&res);

    call("GET", "/products/apple", NULL, &res);
    ck_assert_uint_eq(res.status, 200);
    ck_assert_str_eq(res.body, "{\"sku\":\"apple\",\"name\":\"Apple\","
                               "\"price_cents\":50,\"stock\":7,\"sold\":3,"
                               "\"restocked\":0}");
    http_response_release(&res);
}
END_TEST

START_TEST(test_server_products)
{
    struct http_response res;
    call("GET", "/products", NULL, &res);
    ck_assert_uint_eq(res.status, 200);
    cJSON *j = cJSON_ParseWithLength(res.body, res.body_len);
    ck_assert(cJSON_IsArray(j));
    ck_assert_int_eq(cJSON_GetArraySize(j), 2);
    const cJSON *p = cJSON_GetArrayItem(j, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(p, "sku")->valuestring, "pear");
    ck_assert_int_eq(cJSON_GetObjectItem(p, "stock")->valueint, 0);
    cJSON_Delete(j);
    http_response_release(&res);
    call("GET", "/products/nope", NULL, &res);
    assert_error(&res, 404, "unknown_product");
    http_response_release(&res);
}
END_TEST

START_TEST(test_server_stats_shape)
{
    struct http_response res;
    call("GET", "/stats", NULL, &res);
    ck_assert_uint_eq(res.status, 200);
    cJSON *j = cJSON_ParseWithLength(res.body, res.body_len);
    ck_assert_ptr_nonnull(j);
    static const char *const top[] = {
        "uptime_s", "workers",    "http_threads", "draining", "queue",
        "orders",   "latency_ms", "throughput",   "inventory"};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
        ck_assert_msg(cJSON_HasObjectItem(j, top[i]), "missing %s", top[i]);
    const cJSON *o = cJSON_GetObjectItem(j, "orders");
    static const char *const ord[] = {
        "accepted",  "rejected_full", "rejected_invalid", "processed",
        "fulfilled", "out_of_stock",  "in_flight"};
    for (size_t i = 0; i < sizeof(ord) / sizeof(ord[0]); i++)
        ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItem(o, ord[i])),
                      "missing orders.%s", ord[i]);
    const cJSON *q = cJSON_GetObjectItem(j, "queue");
    ck_assert_int_eq(cJSON_GetObjectItem(q, "capacity")->valueint, 4);
    const cJSON *lat = cJSON_GetObjectItem(j, "latency_ms");
    const cJSON *qw = cJSON_GetObjectItem(lat, "queue_wait");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(qw, "p99")));
    const cJSON *inv = cJSON_GetObjectItem(j, "inventory");
    const cJSON *apple = cJSON_GetObjectItem(inv, "apple");
    ck_assert_int_eq(cJSON_GetObjectItem(apple, "stock")->valueint, 10);
    ck_assert_int_eq(cJSON_GetObjectItem(apple, "sold")->valueint, 0);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "draining")));
    cJSON_Delete(j);
    http_response_release(&res);
}
END_TEST

START_TEST(test_server_metrics_text)
{
    struct http_response res;
    call("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1}", &res);
    http_response_release(&res);
    call("GET", "/metrics", NULL, &res);
    ck_assert_uint_eq(res.status, 200);
    ck_assert_ptr_nonnull(strstr(res.content_type, "version=0.0.4"));
    ck_assert_ptr_nonnull(
        strstr(res.body, "\nshopd_orders_accepted_total 1\n"));
    ck_assert_ptr_nonnull(strstr(res.body, "# TYPE shopd_queue_depth gauge"));
    ck_assert_ptr_nonnull(strstr(res.body, "\nshopd_queue_depth 1\n"));
    ck_assert_ptr_nonnull(
        strstr(res.body, "shopd_queue_wait_seconds_bucket{le=\"+Inf\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(res.body, "shopd_processing_seconds_count"));
    ck_assert_ptr_nonnull(
        strstr(res.body, "shopd_product_stock{sku=\"apple\"} 10\n"));
    ck_assert_int_eq(res.body[res.body_len - 1], '\n');
    /* Uptime in milliseconds at most, no binary noise (issue 9). */
    const char *up = strstr(res.body, "\nshopd_uptime_seconds ");
    ck_assert_ptr_nonnull(up);
    up += strlen("\nshopd_uptime_seconds ");
    const char *dot = strchr(up, '.');
    size_t line = strcspn(up, "\n");
    if (dot != NULL && (size_t)(dot - up) < line)
        ck_assert_uint_le(line - (size_t)(dot - up) - 1, 3);
    http_response_release(&res);
}
END_TEST

/* Every sample of /metrics belongs to the family declared just above it,
 * each family is declared once (HELP then TYPE), and the HTTP layer's
 * families show only when the app has its counters. */
static void assert_families(const char *body)
{
    char family[96] = "";
    char seen[64][96];
    size_t nseen = 0;
    for (const char *l = body; *l != '\0'; l = strchr(l, '\n') + 1) {
        size_t len = strcspn(l, "\n");
        char name[96];
        if (strncmp(l, "# HELP ", 7) == 0) {
            size_t n = strcspn(l + 7, " ");
            ck_assert_uint_lt(n, sizeof(family));
            snprintf(family, sizeof(family), "%.*s", (int)n, l + 7);
            for (size_t k = 0; k < nseen; k++)
                ck_assert_str_ne(seen[k], family);
            ck_assert_uint_lt(nseen, 64);
            snprintf(seen[nseen++], sizeof(seen[0]), "%s", family);
            const char *t = l + len + 1;
            ck_assert_int_eq(strncmp(t, "# TYPE ", 7), 0);
            ck_assert_int_eq(strncmp(t + 7, family, strlen(family)), 0);
            l = t;
            continue;
        }
        size_t n = strcspn(l, "{ ");
        snprintf(name, sizeof(name), "%.*s", (int)n, l);
        ck_assert_msg(strncmp(name, family, strlen(family)) == 0,
                      "%s outside its family %s", name, family);
        if (l[len] == '\0')
            break;
    }
    ck_assert_uint_gt(nseen, 30);
}

START_TEST(test_server_metrics_families_from_the_table)
{
    struct http_response res;
    call("GET", "/metrics", NULL, &res);
    ck_assert_uint_eq(res.status, 200);
    assert_families(res.body);
    ck_assert_ptr_null(strstr(res.body, "shopd_events_viewers"));
    ck_assert_ptr_null(strstr(res.body, "shopd_shop_belt")); /* no Redis */
    ck_assert_ptr_nonnull(
        strstr(res.body, "\nshopd_store_info{kind=\"memory\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(
        res.body, "\nshopd_orders_rejected_total{reason=\"invalid\"} 0\n"));
    http_response_release(&res);

    struct http_counters hc = {0};
    atomic_store(&hc.viewers, 3);
    atomic_store(&hc.conns_refused, 7);
    app.http = &hc;
    call("GET", "/metrics", NULL, &res);
    assert_families(res.body);
    ck_assert_ptr_nonnull(strstr(res.body, "\nshopd_events_viewers 3\n"));
    ck_assert_ptr_nonnull(
        strstr(res.body, "\nshopd_connections_refused_total 7\n"));
    http_response_release(&res);
    call("GET", "/stats", NULL, &res);
    ck_assert_ptr_nonnull(strstr(res.body, "\"events\":{\"viewers\":3,"));
    http_response_release(&res);
    app.http = NULL;
}
END_TEST

START_TEST(test_server_dashboard_served)
{
    struct http_response res;
    call("GET", "/", NULL, &res);
    ck_assert_uint_eq(res.status, 200);
    ck_assert_ptr_nonnull(strstr(res.content_type, "text/html"));
    ck_assert_uint_gt(res.body_len, 100);
    ck_assert_ptr_nonnull(strstr(res.body, "<html"));
    http_response_release(&res);
}
END_TEST

/* --- catalog files ------------------------------------------------------ */

static char catalog_path[64];

static const char *write_catalog(const char *text)
{
    snprintf(catalog_path, sizeof(catalog_path), "/tmp/shopd-cat-XXXXXX");
    int fd = mkstemp(catalog_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return catalog_path;
}

START_TEST(test_server_catalog_valid)
{
    struct product *p = NULL;
    size_t n = 0;
    char err[256];
    const char *path =
        write_catalog("{\"products\":[{\"sku\":\"a-1\",\"name\":\"A\","
                      "\"price_cents\":5,\"stock\":0},{\"sku\":\"B_2\","
                      "\"name\":\"B\",\"price_cents\":0,\"stock\":7}]}");
    ck_assert_int_eq(catalog_load_file(path, &p, &n, err, sizeof(err)), 0);
    unlink(path);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(p[1].sku, "B_2");
    ck_assert_int_eq(p[1].stock, 7);
    ck_assert_int_eq(p[0].price_cents, 5);
    free(p);
}
END_TEST

static const char *const bad_catalogs[] = {
    "",
    "{\"products\":[{\"sku\":\"a\",\"name\":\"\xff\",\"price_cents\":1,"
    "\"stock\":1}]}",
    "{\"products\":[]}",
    "{\"products\":{}}",
    "[]",
    "{\"products\":[{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":1,"
    "\"stock\":-1}]}",
    "{\"products\":[{\"sku\":\"a b\",\"name\":\"A\",\"price_cents\":1,"
    "\"stock\":1}]}",
    "{\"products\":[{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":1.5,"
    "\"stock\":1}]}",
    "{\"products\":[{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":-1,"
    "\"stock\":1}]}",
    "{\"products\":[{\"sku\":\"a\",\"price_cents\":1,\"stock\":1}]}",
    "{\"products\":[{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":1,"
    "\"stock\":1},{\"sku\":\"a\",\"name\":\"B\",\"price_cents\":1,"
    "\"stock\":1}]}",
    "{\"products\":[{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":1,"
    "\"stock\":\"1\"}]}",
};

START_TEST(test_server_catalog_rejects)
{
    struct product *p = NULL;
    size_t n = 0;
    char err[256] = "";
    const char *path = write_catalog(bad_catalogs[_i]);
    int rc = catalog_load_file(path, &p, &n, err, sizeof(err));
    unlink(path);
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_null(p);
    ck_assert_ptr_nonnull(strstr(err, "--catalog"));
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* The messages name where and what: a position for JSON errors, the real
 * limits for fields (issue 9). */
START_TEST(test_server_catalog_messages)
{
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"{\"products\": [\n  {\"sku\": \"a\",,}\n]}", "line 2, column"},
        {"{\"products\":[{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":1,"
         "\"stock\":9007199254740992}]}",
         "stock must be a whole number from 0 to 9007199254740991 (2^53 - 1)"},
        {"{\"products\":[{\"sku\":\"abcdefghijabcdefghijabcdefghijabcdefghij"
         "abcdefghijabcdefghijabcde\",\"name\":\"A\",\"price_cents\":1,"
         "\"stock\":1}]}",
         "sku must be 1-64 characters"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct product *p = NULL;
        size_t n = 0;
        char err[256] = "";
        const char *path = write_catalog(cases[i].text);
        int rc = catalog_load_file(path, &p, &n, err, sizeof(err));
        unlink(path);
        ck_assert_int_eq(rc, -EINVAL);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "\"%s\" lacks \"%s\"",
                      err, cases[i].want);
    }
}
END_TEST

START_TEST(test_server_catalog_missing_file)
{
    struct product *p = NULL;
    size_t n = 0;
    char err[256] = "";
    ck_assert_int_lt(catalog_load_file("/nonexistent/catalog.json", &p, &n, err,
                                       sizeof(err)),
                     0);
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
}
END_TEST

/* ---- deferred answers: the suspend/complete handshake ------------------ */

struct fake_conn {
    int suspended, resumed;
};

static void fake_suspend(void *ctx)
{
    ((struct fake_conn *)ctx)->suspended++;
}

static void fake_resume(void *ctx)
{
    ((struct fake_conn *)ctx)->resumed++;
}

static void final_answer(struct http_response *res)
{
    memset(res, 0, sizeof(*res));
    http_error(res, 503, "store_unavailable", "try again");
}

START_TEST(test_server_deferred_completed_before_suspend)
{
    struct http_deferred *d = http_deferred_create();
    ck_assert_ptr_nonnull(d);
    struct http_response res;
    final_answer(&res);
    http_deferred_complete(d, &res); /* the completer was quick */
    ck_assert_ptr_null(res.body);    /* taken over */
    struct fake_conn c = {0};
    /* The glue must not suspend: the answer is there already. */
    ck_assert(!http_deferred_suspend(d, fake_suspend, fake_resume, &c));
    ck_assert_int_eq(c.suspended, 0);
    struct http_response out;
    ck_assert(http_deferred_take(d, &out));
    ck_assert_uint_eq(out.status, 503);
    ck_assert_ptr_nonnull(strstr(out.body, "store_unavailable"));
    http_response_release(&out);
    ck_assert_int_eq(c.resumed, 0);
    http_deferred_release(d); /* the request's reference: frees */
}
END_TEST

START_TEST(test_server_deferred_completed_after_suspend)
{
    struct http_deferred *d = http_deferred_create();
    ck_assert_ptr_nonnull(d);
    struct fake_conn c = {0};
    ck_assert(http_deferred_suspend(d, fake_suspend, fake_resume, &c));
    ck_assert_int_eq(c.suspended, 1);
    struct http_response out;
    ck_assert(!http_deferred_take(d, &out)); /* nothing yet */
    struct http_response res;
    final_answer(&res);
    http_deferred_complete(d, &res);
    ck_assert_int_eq(c.resumed, 1); /* resumed exactly once */
    ck_assert(http_deferred_take(d, &out));
    ck_assert_uint_eq(out.status, 503);
    http_response_release(&out);
    http_deferred_release(d);
}
END_TEST

/* ---- Idempotency-Key and restock (SPEC §8, §9) ------------------------- */

#define ADMIN_TOKEN "s3cret-token-0123456789"

/* Send one request with the given Idempotency-Key headers (0-2 of them) and
 * Authorization (NULL for none). */
static void call_h(const char *method, const char *path, const char *body,
                   const char *key, unsigned nkeys, const char *auth,
                   struct http_response *res)
{
    struct http_request req = {
        .method = method,
        .path = path,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .idempotency_key = key,
        .idempotency_keys = nkeys,
        .authorization = auth,
        .authorizations = auth ? 1 : 0,
    };
    api_handle(&app, &req, res);
}

static void enable_admin(void)
{
    app.limits.admin_enabled = true;
    memset(app.limits.admin_token, 0, sizeof(app.limits.admin_token));
    app.limits.admin_token_len = strlen(ADMIN_TOKEN);
    memcpy(app.limits.admin_token, ADMIN_TOKEN, app.limits.admin_token_len);
}

START_TEST(test_server_buy_idempotent_replay)
{
    struct http_response res;
    call_h("POST", "/buy", "{\"product\":\"apple\",\"quantity\":2}", "k-1", 1,
           NULL, &res);
    ck_assert_uint_eq(res.status, 202);
    ck_assert_ptr_null(header(&res, "Idempotent-Replayed"));
    http_response_release(&res);
    /* Same request, other spelling, quoted key: the first answer again. */
    call_h("POST", "/buy",
           " {\"quantity\":2, \"customer\":null,\"product\":\"apple\","
           "\"note\":[1]}",
           "\"k-1\"", 1, NULL, &res);
    ck_assert_uint_eq(res.status, 202);
    ck_assert_str_eq(res.body, "{\"order_id\":1,\"status\":\"queued\"}");
    ck_assert_str_eq(header(&res, "Location"), "/orders/1");
    ck_assert_str_eq(header(&res, "Idempotent-Replayed"), "true");
    http_response_release(&res);
    /* A different request under the key: 422. */
    call_h("POST", "/buy",
           "{\"product\":\"apple\",\"quantity\":2,\"customer\":\"ann\"}", "k-1",
           1, NULL, &res);
    assert_error(&res, 422, "idempotency_key_reused");
    http_response_release(&res);
    /* Another key is another order. */
    call_h("POST", "/buy", "{\"product\":\"apple\",\"quantity\":2}", "k-2", 1,
           NULL, &res);
    ck_assert_str_eq(res.body, "{\"order_id\":2,\"status\":\"queued\"}");
    http_response_release(&res);

    struct shop_snapshot snap;
    shop_snapshot(shop, &snap);
    ck_assert_uint_eq(snap.accepted, 2);
    ck_assert_uint_eq(snap.idem_replayed, 1);
    ck_assert_uint_eq(snap.idem_mismatched, 1);
}
END_TEST

static const char *const bad_keys[] = {
    "",
    "\"\"",
    "\"abc",
    "abc\"",
    "a b",
    "a\"b",
    "caf\xc3\xa9",
    "tab\there",
    "\"a\"b\"",
    /* 256 characters */
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
};

START_TEST(test_server_buy_bad_idempotency_keys)
{
    struct http_response res;
    call_h("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1}",
           bad_keys[_i], 1, NULL, &res);
    assert_error(&res, 400, "invalid_idempotency_key");
    http_response_release(&res);
    struct shop_snapshot snap;
    shop_snapshot(shop, &snap);
    ck_assert_uint_eq(snap.accepted, 0);
}
END_TEST

START_TEST(test_server_buy_key_edges)
{
    struct http_response res;
    /* Two key headers, even equal ones: 400. */
    call_h("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1}", "k", 2,
           NULL, &res);
    assert_error(&res, 400, "invalid_idempotency_key");
    http_response_release(&res);
    /* 255 characters, every allowed one: fine, bare or quoted. */
    char key[256], quoted[258];
    for (size_t i = 0; i < 255; i++) {
        char c = (char)('!' + i % 94);
        key[i] = c == '"' ? '#' : c;
    }
    key[255] = '\0';
    snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    call_h("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1}", key, 1,
           NULL, &res);
    ck_assert_uint_eq(res.status, 202);
    http_response_release(&res);
    call_h("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1}", quoted, 1,
           NULL, &res);
    ck_assert_uint_eq(res.status, 202);
    ck_assert_str_eq(header(&res, "Idempotent-Replayed"), "true");
    http_response_release(&res);
    /* Only successes are remembered: a 404 leaves the key free. */
    call_h("POST", "/buy", "{\"product\":\"nope\",\"quantity\":1}", "k404", 1,
           NULL, &res);
    assert_error(&res, 404, "unknown_product");
    http_response_release(&res);
    call_h("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1}", "k404", 1,
           NULL, &res);
    ck_assert_uint_eq(res.status, 202);
    ck_assert_ptr_null(header(&res, "Idempotent-Replayed"));
    http_response_release(&res);
}
END_TEST

START_TEST(test_server_buy_key_after_queue_full)
{
    /* The belt holds 4 (workers not started): the 5th is a 503, which is
     * not remembered, so the same key succeeds once there is room. */
    struct http_response res;
    for (int i = 0; i < 4; i++) {
        call("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1}", &res);
        ck_assert_uint_eq(res.status, 202);
        http_response_release(&res);
    }
    call_h("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1}", "full", 1,
           NULL, &res);
    assert_error(&res, 503, "queue_full");
    http_response_release(&res);
    ck_assert_int_eq(shop_start(shop), 0);
    ck_assert_int_eq(shop_drain(shop, NULL), 0);
    /* Drained: now it is shutting down, still not remembered. */
    call_h("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1}", "full", 1,
           NULL, &res);
    assert_error(&res, 503, "shutting_down");
    http_response_release(&res);
    struct shop_snapshot snap;
    shop_snapshot(shop, &snap);
    ck_assert_uint_eq(snap.idem_keys, 0);
}
END_TEST

START_TEST(test_server_buy_key_in_use_409)
{
    /* Hold the key as a request still being answered would. */
    struct shop_idem_ticket tk;
    struct shop_idem_answer ans;
    ck_assert_int_eq(
        shop_idem_begin(shop, SHOP_IDEM_BUY, "busy", 4, "x", 1, &tk, &ans),
        SHOP_IDEM_NEW);
    struct http_response res;
    call_h("POST", "/buy", "{\"product\":\"apple\",\"quantity\":1}", "\"busy\"",
           1, NULL, &res);
    assert_error(&res, 409, "idempotency_key_in_use");
    ck_assert_str_eq(header(&res, "Retry-After"), "1");
    http_response_release(&res);
    /* Whatever the body. */
    call_h("POST", "/buy", "{\"product\":\"pear\",\"quantity\":9}", "busy", 1,
           NULL, &res);
    assert_error(&res, 409, "idempotency_key_in_use");
    http_response_release(&res);
    struct shop_snapshot snap;
    shop_snapshot(shop, &snap);
    ck_assert_uint_eq(snap.accepted, 0);
    ck_assert_uint_eq(snap.idem_in_use, 2);
    /* Once the first one failed, the key is free again. */
    shop_idem_abort(shop, &tk);
    call_h("POST", "/buy", "{\"product\":\"pear\",\"quantity\":9}", "busy", 1,
           NULL, &res);
    ck_assert_uint_eq(res.status, 202);
    http_response_release(&res);
}
END_TEST

START_TEST(test_api_token_equal_over_every_byte_and_the_length)
{
    const char *t = ADMIN_TOKEN;
    size_t n = strlen(t);
    ck_assert(api_token_equal(t, n, t, n));
    /* A prefix, an extension, one byte changed: unequal. */
    ck_assert(!api_token_equal(t, n - 1, t, n));
    ck_assert(!api_token_equal(ADMIN_TOKEN "x", n + 1, t, n));
    ck_assert(!api_token_equal("s3cret-token-0123456788", n, t, n));
    ck_assert(!api_token_equal("", 0, t, n));
    /* NUL padding is not the token: the lengths count. */
    char padded[32] = ADMIN_TOKEN;
    ck_assert(!api_token_equal(padded, n + 1, t, n));
    /* The longest token (255 bytes) works; 256 bytes or more never match,
     * not even a token whose first 256 bytes are the configured ones. */
    static char longest[API_TOKEN_MAX + 8];
    memset(longest, 'z', sizeof(longest));
    ck_assert(api_token_equal(longest, API_TOKEN_MAX - 1, longest,
                              API_TOKEN_MAX - 1));
    ck_assert(
        !api_token_equal(longest, API_TOKEN_MAX, longest, API_TOKEN_MAX - 1));
    ck_assert(!api_token_equal(longest, API_TOKEN_MAX, longest, API_TOKEN_MAX));
    ck_assert(
        !api_token_equal(longest, sizeof(longest), longest, API_TOKEN_MAX - 1));
}
END_TEST

START_TEST(test_server_restock_checks_in_order)
{
    struct http_response res;
    const char *auth = "Bearer " ADMIN_TOKEN;
    /* 405 first, whatever else is wrong. */
    call_h("GET", "/products/apple/restock", NULL, NULL, 0, NULL, &res);
    ck_assert_uint_eq(res.status, 405);
    ck_assert_str_eq(header(&res, "Allow"), "POST");
    http_response_release(&res);
    /* No token configured: 403, even with a token and a good body. */
    call_h("POST", "/products/apple/restock", "{\"quantity\":1}", NULL, 0, auth,
           &res);
    assert_error(&res, 403, "admin_disabled");
    http_response_release(&res);
    enable_admin();
    static const char *const wrong[] = {
        NULL,
        "",
        "Bearer",
        "Bearer ",
        "Basic " ADMIN_TOKEN,
        "Bearer " ADMIN_TOKEN "x",
        "Bearer s3cret-token-012345678",
        "Bearer S3CRET-TOKEN-0123456789",
        "Bearer" ADMIN_TOKEN,
    };
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        call_h("POST", "/products/nope/restock", "x", NULL, 0, wrong[i], &res);
        assert_error(&res, 401, "unauthorized");
        ck_assert_str_eq(header(&res, "WWW-Authenticate"), "Bearer");
        ck_assert_ptr_null(strstr(res.body, ADMIN_TOKEN));
        http_response_release(&res);
    }
    /* Two Authorization headers: 401 too. */
    struct http_request two = {.method = "POST",
                               .path = "/products/apple/restock",
                               .body = "{\"quantity\":1}",
                               .body_len = 14,
                               .authorization = auth,
                               .authorizations = 2};
    api_handle(&app, &two, &res);
    assert_error(&res, 401, "unauthorized");
    http_response_release(&res);
    /* Then 404, then 400. */
    call_h("POST", "/products/nope/restock", "x", NULL, 0, auth, &res);
    assert_error(&res, 404, "unknown_product");
    http_response_release(&res);
    static const struct {
        const char *body;
        const char *code;
    } bad[] = {
        {"", "invalid_json"},
        {"x", "invalid_json"},
        {"[1]", "invalid_json"},
        {"{\"quantity\":1,\"quantity\":2}", "invalid_json"},
        {"{}", "invalid_field"},
        {"{\"quantity\":0}", "invalid_field"},
        {"{\"quantity\":-1}", "invalid_field"},
        {"{\"quantity\":1.5}", "invalid_field"},
        {"{\"quantity\":1e3}", "invalid_field"},
        {"{\"quantity\":\"3\"}", "invalid_field"},
        {"{\"quantity\":true}", "invalid_field"},
        {"{\"quantity\":1000000001}", "invalid_field"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        call_h("POST", "/products/apple/restock", bad[i].body, NULL, 0, auth,
               &res);
        assert_error(&res, 400, bad[i].code);
        http_response_release(&res);
    }
    /* Nothing was added by any of these. */
    call("GET", "/products/apple", NULL, &res);
    ck_assert_str_eq(res.body, "{\"sku\":\"apple\",\"name\":\"Apple\","
                               "\"price_cents\":50,\"stock\":10,\"sold\":0,"
                               "\"restocked\":0}");
    http_response_release(&res);
}
END_TEST

START_TEST(test_server_restock_adds_and_replays)
{
    struct http_response res;
    enable_admin();
    call_h("POST", "/products/pear/restock", "{\"quantity\":1000000000}", NULL,
           0, "bearer   " ADMIN_TOKEN, &res);
    ck_assert_uint_eq(res.status, 200);
    const char want[] =
        "{\"sku\":\"pear\",\"name\":\"Pear\",\"price_cents\":70,"
        "\"stock\":1000000000,\"sold\":0,"
        "\"restocked\":1000000000}";
    ck_assert_str_eq(res.body, want);
    http_response_release(&res);
    call("GET", "/products/pear", NULL, &res);
    ck_assert_str_eq(res.body, want);
    http_response_release(&res);

    /* With a key: once, then the same answer (not a second restock). */
    call_h("POST", "/products/pear/restock", "{\"quantity\":5}", "r1", 1,
           "Bearer " ADMIN_TOKEN, &res);
    ck_assert_uint_eq(res.status, 200);
    char *first = strdup(res.body);
    http_response_release(&res);
    call_h("POST", "/products/pear/restock", "{ \"quantity\" : 5 }", "r1", 1,
           "Bearer " ADMIN_TOKEN, &res);
    ck_assert_uint_eq(res.status, 200);
    ck_assert_str_eq(res.body, first);
    ck_assert_str_eq(header(&res, "Idempotent-Replayed"), "true");
    http_response_release(&res);
    free(first);
    call_h("POST", "/products/pear/restock", "{\"quantity\":6}", "r1", 1,
           "Bearer " ADMIN_TOKEN, &res);
    assert_error(&res, 422, "idempotency_key_reused");
    http_response_release(&res);
    /* Keys are per endpoint: r1 on /buy is a new key. */
    call_h("POST", "/buy", "{\"product\":\"pear\",\"quantity\":1}", "r1", 1,
           NULL, &res);
    ck_assert_uint_eq(res.status, 202);
    ck_assert_ptr_null(header(&res, "Idempotent-Replayed"));
    http_response_release(&res);
    /* A wrong key on restock is checked after the token. */
    call_h("POST", "/products/pear/restock", "{\"quantity\":6}", "", 1,
           "Bearer " ADMIN_TOKEN, &res);
    assert_error(&res, 400, "invalid_idempotency_key");
    http_response_release(&res);

    call("GET", "/stats", NULL, &res);
    cJSON *j = cJSON_ParseWithLength(res.body, res.body_len);
    ck_assert_ptr_nonnull(j);
    const cJSON *inv = cJSON_GetObjectItem(j, "inventory");
    const cJSON *pear = cJSON_GetObjectItem(inv, "pear");
    ck_assert_int_eq(cJSON_GetObjectItem(pear, "restocked")->valueint,
                     1000000005);
    ck_assert_int_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(inv, "apple"), "restocked")
            ->valueint,
        0);
    const cJSON *idem = cJSON_GetObjectItem(j, "idempotency");
    ck_assert_int_eq(cJSON_GetObjectItem(idem, "replayed")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItem(idem, "mismatched")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItem(idem, "in_use")->valueint, 0);
    ck_assert_ptr_null(strstr(res.body, ADMIN_TOKEN));
    cJSON_Delete(j);
    http_response_release(&res);

    call("GET", "/metrics", NULL, &res);
    ck_assert_ptr_nonnull(strstr(res.body,
                                 "\nshopd_restocked_units_total{sku=\"pear\"} "
                                 "1000000005\n"));
    ck_assert_ptr_nonnull(
        strstr(res.body, "\nshopd_restocked_units_total{sku=\"apple\"} 0\n"));
    ck_assert_ptr_nonnull(
        strstr(res.body, "\nshopd_idempotent_replays_total 1\n"));
    ck_assert_ptr_nonnull(
        strstr(res.body, "\nshopd_idempotency_mismatches_total 1\n"));
    ck_assert_ptr_nonnull(
        strstr(res.body, "\nshopd_idempotency_conflicts_total 0\n"));
    http_response_release(&res);
}
END_TEST

/* ---- the shop floor (SPEC §11) ------------------------------------------ */

/* A PATCH /admin/floor with the admin token; the answer's floor. */
static cJSON *floor_patch_ok(const char *body)
{
    struct http_response res;
    call_h("PATCH", "/admin/floor", body, NULL, 0, "Bearer " ADMIN_TOKEN, &res);
    ck_assert_msg(res.status == 200, "%s: %u %.*s", body, res.status,
                  (int)res.body_len, res.body);
    cJSON *j = cJSON_ParseWithLength(res.body, res.body_len);
    ck_assert_ptr_nonnull(j);
    http_response_release(&res);
    return j;
}

static double jfield(const cJSON *j, const char *a, const char *b)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b != NULL)
        n = cJSON_GetObjectItemCaseSensitive(n, b);
    ck_assert_msg(cJSON_IsNumber(n), "%s.%s", a, b ? b : "");
    return n->valuedouble;
}

START_TEST(test_server_floor_checks_in_order)
{
    struct http_response res;
    const char *auth = "Bearer " ADMIN_TOKEN;
    call_h("DELETE", "/admin/floor", NULL, NULL, 0, auth, &res);
    assert_error(&res, 405, "method_not_allowed");
    ck_assert_str_eq(header(&res, "Allow"), "GET, PATCH");
    http_response_release(&res);
    call_h("PATCH", "/admin/floor", "{", NULL, 0, auth, &res);
    assert_error(&res, 403, "admin_disabled");
    http_response_release(&res);
    enable_admin();
    call_h("PATCH", "/admin/floor", "{", NULL, 0, "Bearer nope", &res);
    assert_error(&res, 401, "unauthorized");
    ck_assert_str_eq(header(&res, "WWW-Authenticate"), "Bearer");
    http_response_release(&res);
    call_h("PATCH", "/admin/floor", "{", NULL, 0, auth, &res);
    assert_error(&res, 400, "invalid_json");
    http_response_release(&res);
    call_h("PATCH", "/admin/floor", "{\"work_ms\":-1}", NULL, 0, auth, &res);
    assert_error(&res, 400, "invalid_field");
    ck_assert_ptr_nonnull(strstr(res.body, "work_ms"));
    ck_assert_ptr_null(strstr(res.body, ADMIN_TOKEN));
    http_response_release(&res);
    call_h("GET", "/admin/floor", NULL, NULL, 0, auth, &res);
    ck_assert_uint_eq(res.status, 200);
    ck_assert_ptr_nonnull(strstr(res.body, "\"until\":null"));
    http_response_release(&res);
}
END_TEST

/* Merge patch: absent keeps, null goes back to the start, faults merge and
 * end at 0 or null; a bad field applies nothing; a drain answers 503. */
START_TEST(test_server_floor_merge_patch)
{
    struct http_response res;
    enable_admin();
    ck_assert_int_eq(shop_start(shop), 0);
    cJSON *f = floor_patch_ok("{\"workers\":3,\"work_ms\":7}");
    ck_assert(jfield(f, "workers", NULL) == 3);
    cJSON_Delete(f);
    f = floor_patch_ok("{}");
    ck_assert(jfield(f, "workers", NULL) == 3);
    ck_assert(jfield(f, "work_ms", NULL) == 7);
    cJSON_Delete(f);
    call_h("PATCH", "/admin/floor", "{\"workers\":1,\"paused\":\"no\"}", NULL,
           0, "Bearer " ADMIN_TOKEN, &res);
    assert_error(&res, 400, "invalid_field");
    http_response_release(&res);
    f = floor_patch_ok("{\"faults\":{\"latency_ms\":5,\"drop_rate\":0.25,"
                       "\"for_s\":60}}");
    ck_assert(jfield(f, "workers", NULL) == 3); /* the bad patch: nothing */
    ck_assert(jfield(f, "faults", "drop_rate") == 0.25);
    cJSON_Delete(f);
    f = floor_patch_ok("{\"faults\":{\"drop_rate\":0}}");
    ck_assert(jfield(f, "faults", "latency_ms") == 5);
    cJSON_Delete(f);
    f = floor_patch_ok("{\"faults\":null,\"workers\":null,\"work_ms\":null}");
    ck_assert(jfield(f, "workers", NULL) == 1);
    ck_assert(jfield(f, "work_ms", NULL) == 0);
    ck_assert(jfield(f, "faults", "latency_ms") == 0);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(f, "faults"), "until")));
    cJSON_Delete(f);
    ck_assert_int_eq(shop_drain(shop, NULL), 0);
    call_h("GET", "/admin/floor", NULL, NULL, 0, "Bearer " ADMIN_TOKEN, &res);
    assert_error(&res, 503, "shutting_down");
    http_response_release(&res);
}
END_TEST

/* A held answer is sent only when its timer lets go, even once complete;
 * closing the timer lets every held answer go at once. */
START_TEST(test_server_deferred_held_by_timer)
{
    struct api_timer *t = NULL;
    ck_assert_int_eq(api_timer_create(shop, &t), 0);
    struct http_deferred *d = http_deferred_create();
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(api_timer_hold(t, d, 60000), 0);
    struct http_response res;
    final_answer(&res);
    http_deferred_complete(d, &res);
    struct fake_conn c = {0};
    /* Complete but held: the glue suspends. */
    ck_assert(http_deferred_suspend(d, fake_suspend, fake_resume, &c));
    struct http_response out;
    ck_assert(!http_deferred_take(d, &out));
    ck_assert_int_eq(c.resumed, 0);
    api_timer_close(t); /* joins the timer's thread: no race on c */
    ck_assert_int_eq(c.resumed, 1);
    ck_assert(http_deferred_take(d, &out));
    ck_assert_uint_eq(out.status, 503);
    http_response_release(&out);
    http_deferred_release(d);
    /* Closed: a hold is refused (the caller answers at once). */
    d = http_deferred_create();
    ck_assert_int_eq(api_timer_hold(t, d, 10), -EPIPE);
    http_deferred_release(d);
    http_deferred_release(d);
    api_timer_destroy(t);
}
END_TEST

Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("handlers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_server_buy_accepts_and_locates);
    tcase_add_loop_test(tc, test_server_buy_rejects_bad_bodies, 0,
                        sizeof(bad_bodies) / sizeof(bad_bodies[0]));
    tcase_add_test(tc, test_server_buy_customer_limits);
    tcase_add_test(tc, test_server_buy_max_quantity);
    tcase_add_test(tc, test_server_buy_too_large);
    tcase_add_test(tc, test_server_buy_queue_full_then_draining);
    tcase_add_test(tc, test_server_methods_and_paths);
    tcase_add_test(tc, test_server_order_ids);
    tcase_add_test(tc, test_server_order_lifecycle);
    tcase_add_test(tc, test_server_products);
    tcase_add_test(tc, test_server_stats_shape);
    tcase_add_test(tc, test_server_metrics_text);
    tcase_add_test(tc, test_server_metrics_families_from_the_table);
    tcase_add_test(tc, test_server_dashboard_served);
    tcase_add_test(tc, test_server_deferred_completed_before_suspend);
    tcase_add_test(tc, test_server_deferred_completed_after_suspend);
    tcase_add_test(tc, test_server_buy_idempotent_replay);
    tcase_add_loop_test(tc, test_server_buy_bad_idempotency_keys, 0,
                        sizeof(bad_keys) / sizeof(bad_keys[0]));
    tcase_add_test(tc, test_server_buy_key_edges);
    tcase_add_test(tc, test_server_buy_key_after_queue_full);
    tcase_add_test(tc, test_server_buy_key_in_use_409);
    tcase_add_test(tc, test_api_token_equal_over_every_byte_and_the_length);
    tcase_add_test(tc, test_server_restock_checks_in_order);
    tcase_add_test(tc, test_server_restock_adds_and_replays);
    tcase_add_test(tc, test_server_floor_checks_in_order);
    tcase_add_test(tc, test_server_floor_merge_patch);
    tcase_add_test(tc, test_server_deferred_held_by_timer);
    suite_add_tcase(s, tc);

    TCase *cat = tcase_create("catalog");
    tcase_set_timeout(cat, 20);
    tcase_add_test(cat, test_server_catalog_valid);
    tcase_add_loop_test(cat, test_server_catalog_rejects, 0,
                        sizeof(bad_catalogs) / sizeof(bad_catalogs[0]));
    tcase_add_test(cat, test_server_catalog_missing_file);
    tcase_add_test(cat, test_server_catalog_messages);
    suite_add_tcase(s, cat);
    return s;
}
