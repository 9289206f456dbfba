/*
 * e2e_api.c - the read-only endpoints, routing, method checks and malformed
 * requests, against the real binary (SPEC §1).
 */
#include "tests/e2e/suites.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/orders.h"
#include "tests/lib/process.h"

static const char small_catalog[] =
    "{\"products\":["
    "{\"sku\":\"apple\",\"name\":\"Apple\",\"price_cents\":50,\"stock\":10},"
    "{\"sku\":\"pear-2\",\"name\":\"Pear \\\"Conference\\\"\","
    "\"price_cents\":75,\"stock\":3},"
    "{\"sku\":\"Gold_Bar\",\"name\":\"Gold bar\",\"price_cents\":0,"
    "\"stock\":0}]}";

/* Start shopd over the small catalog; `*path` gets the catalog file. */
static struct shopd *start_small(char **path, const char *const *extra)
{
    return shopd_start_catalog(small_catalog, path, extra);
}

static void stop_small(struct shopd *s, char *path)
{
    shopd_stop_catalog(s, path);
}

START_TEST(test_e2e_api_healthz)
{
    struct shopd *s = shopd_start(NULL, NULL);
    cJSON *j = get_json_ok(shopd_port(s), "/healthz");
    ck_assert_str_eq(jstr(j, "status"), "ok");
    cJSON_Delete(j);
    /* A query string is not part of the path. */
    j = get_json_ok(shopd_port(s), "/healthz?probe=1");
    ck_assert_str_eq(jstr(j, "status"), "ok");
    cJSON_Delete(j);
    j = get_json_ok(shopd_port(s), "/stats?pretty=0");
    ck_assert_msg(json_at(j, "orders") != NULL, "/stats?x is not /stats");
    cJSON_Delete(j);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_api_http10)
{
    /* An HTTP/1.0 client (ab, old proxies): answered, then closed. */
    struct shopd *s = shopd_start(NULL, NULL);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, shopd_port(s)), 0);
    const char *req = "GET /healthz HTTP/1.0\r\n\r\n";
    ck_assert_int_eq(http_send_raw(&c, req, strlen(req)), 0);
    struct http_resp r;
    ck_assert_int_eq(http_read(&c, &r, false, E2E_IO_TIMEOUT_MS), 0);
    ck_assert_int_eq(r.status, 200);
    cJSON *j = resp_json(&r);
    ck_assert_msg(j && strcmp(jstr(j, "status"), "ok") == 0, "body %s", r.body);
    cJSON_Delete(j);
    http_resp_free(&r);
    ck_assert_msg(http_wait_closed(&c, 10000) == 0,
                  "HTTP/1.0 connection without keep-alive left open");
    http_close(&c);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_api_readyz)
{
    struct shopd *s = shopd_start(NULL, NULL);
    struct http_resp r;
    ck_assert_int_eq(
        http_do(shopd_port(s), "GET", "/readyz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    shopd_destroy(s);
}
END_TEST

static const char *const unknown_paths[] = {
    "/nope",  "/api/v1/buy", "/stats/extra", "/healthz/x",    "/productsx",
    "/buyer", "/orders",     "/metrics.txt", "/index.html?x", "//",
};

START_TEST(test_e2e_api_not_found)
{
    struct shopd *s = shopd_start(NULL, NULL);
    const char *path = unknown_paths[_i];
    struct http_resp r;
    ck_assert_int_eq(http_do(shopd_port(s), "GET", path, NULL, NULL, 0, &r), 0);
    ck_assert_msg(r.status == 404, "GET %s: status %d body %.200s", path,
                  r.status, r.body);
    expect_error(&r, 404, "not_found");
    http_resp_free(&r);
    /* An unknown path is unknown whatever the method. */
    ck_assert_int_eq(http_do(shopd_port(s), "POST", path, NULL, "{}", 2, &r),
                     0);
    ck_assert_msg(r.status == 404, "POST %s: status %d body %.200s", path,
                  r.status, r.body);
    expect_error(&r, 404, "not_found");
    http_resp_free(&r);
    shopd_destroy(s);
}
END_TEST

static const char *const get_only_paths[] = {
    "/orders/1", "/products", "/products/apple",
    "/stats",    "/metrics",  "/healthz",
    "/readyz",   "/",         "/events",
};

START_TEST(test_e2e_api_get_only_405)
{
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH"};
    char *cat;
    struct shopd *s = start_small(&cat, NULL);
    buy_one_ok(shopd_port(s), "{\"product\":\"apple\",\"quantity\":1}");
    for (size_t p = 0; p < sizeof get_only_paths / sizeof *get_only_paths;
         p++) {
        for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
            struct http_resp r;
            int e = http_do(shopd_port(s), methods[m], get_only_paths[p], NULL,
                            "{}", 2, &r);
            ck_assert_msg(e == 0, "%s %s: %s", methods[m], get_only_paths[p],
                          strerror(-e));
            ck_assert_msg(r.status == 405, "%s %s: status %d, want 405",
                          methods[m], get_only_paths[p], r.status);
            const char *allow = http_header(&r, "Allow");
            ck_assert_msg(allow && strcasecmp(allow, "GET, HEAD") == 0,
                          "%s %s: Allow is '%s', want 'GET, HEAD'", methods[m],
                          get_only_paths[p], allow ? allow : "(none)");
            cJSON *j = resp_json(&r);
            ck_assert_msg(j && cJSON_IsString(json_at(j, "error")) &&
                              cJSON_IsString(json_at(j, "message")),
                          "%s %s: 405 body is not an error object: %.200s",
                          methods[m], get_only_paths[p], r.body);
            cJSON_Delete(j);
            http_resp_free(&r);
        }
    }
    stop_small(s, cat);
}
END_TEST

START_TEST(test_e2e_api_head)
{
    static const char *const paths[] = {"/healthz", "/stats",   "/products",
                                        "/readyz",  "/metrics", "/"};
    struct shopd *s = shopd_start(NULL, NULL);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, shopd_port(s)), 0);
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        struct http_resp r;
        ck_assert_int_eq(
            http_roundtrip(&c, "HEAD", paths[i], NULL, NULL, 0, &r), 0);
        ck_assert_msg(r.status == 200, "HEAD %s: status %d", paths[i],
                      r.status);
        ck_assert_msg(!http_says_close(&r), "HEAD %s closed the connection",
                      paths[i]);
        http_resp_free(&r);
        /* If HEAD had sent a body, this response would not parse. */
        ck_assert_int_eq(
            http_roundtrip(&c, "GET", "/healthz", NULL, NULL, 0, &r), 0);
        ck_assert_msg(r.status == 200, "GET after HEAD %s: status %d", paths[i],
                      r.status);
        http_resp_free(&r);
    }
    http_close(&c);
    shopd_destroy(s);
}
END_TEST

static bool sku_well_formed(const char *sku)
{
    size_t n = strlen(sku);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)sku[i]) && sku[i] != '_' && sku[i] != '-')
            return false;
    return true;
}

static bool is_whole(const cJSON *n)
{
    return cJSON_IsNumber(n) &&
           n->valuedouble == (double)(long long)n->valuedouble;
}

START_TEST(test_e2e_api_products_demo)
{
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    cJSON *list = get_json_ok(port, "/products");
    ck_assert_msg(cJSON_IsArray(list), "/products is not an array");
    int n = cJSON_GetArraySize(list);
    ck_assert_msg(n >= 8, "demo catalog has %d products, want >= 8", n);
    cJSON *stats = get_json_ok(port, "/stats");
    const cJSON *inv = json_at(stats, "inventory");
    ck_assert_msg(cJSON_IsObject(inv), "/stats inventory not an object");
    ck_assert_int_eq(cJSON_GetArraySize(inv), n);
    for (int i = 0; i < n; i++) {
        const cJSON *p = cJSON_GetArrayItem(list, i);
        ck_assert_msg(cJSON_IsObject(p), "product %d not an object", i);
        const char *sku = jstr(p, "sku");
        ck_assert_msg(sku_well_formed(sku), "bad demo sku '%s'", sku);
        ck_assert_msg(jstr(p, "name")[0] != '\0', "empty name for %s", sku);
        ck_assert_msg(is_whole(json_at(p, "price_cents")) &&
                          jnum(p, "price_cents") >= 0,
                      "bad price_cents for %s", sku);
        ck_assert_msg(is_whole(json_at(p, "stock")) && jnum(p, "stock") >= 0,
                      "bad stock for %s", sku);
        ck_assert_msg(jnum(p, "sold") == 0, "fresh %s has sold != 0", sku);
        for (int k = 0; k < i; k++)
            ck_assert_msg(
                strcmp(jstr(cJSON_GetArrayItem(list, k), "sku"), sku) != 0,
                "duplicate sku %s", sku);
        char path[128];
        snprintf(path, sizeof path, "/products/%s", sku);
        cJSON *one = get_json_ok(port, path);
        ck_assert_msg(cJSON_Compare(one, p, true),
                      "GET %s differs from its /products entry", path);
        cJSON_Delete(one);
        const cJSON *iv = cJSON_GetObjectItemCaseSensitive(inv, sku);
        ck_assert_msg(iv != NULL, "/stats inventory lacks %s", sku);
        ck_assert_msg(jnum(iv, "stock") == jnum(p, "stock") &&
                          jnum(iv, "sold") == 0,
                      "/stats inventory %s disagrees with /products", sku);
    }
    cJSON_Delete(stats);
    cJSON_Delete(list);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_api_products_unknown)
{
    struct shopd *s = shopd_start(NULL, NULL);
    struct http_resp r;
    ck_assert_int_eq(
        http_do(shopd_port(s), "GET", "/products/nope", NULL, NULL, 0, &r), 0);
    expect_error(&r, 404, "unknown_product");
    http_resp_free(&r);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_api_catalog_file)
{
    char *cat;
    struct shopd *s = start_small(&cat, NULL);
    unsigned port = shopd_port(s);
    cJSON *want = cJSON_Parse(small_catalog);
    const cJSON *wp = json_at(want, "products");
    cJSON *list = get_json_ok(port, "/products");
    ck_assert_msg(cJSON_IsArray(list), "/products is not an array");
    ck_assert_int_eq(cJSON_GetArraySize(list), cJSON_GetArraySize(wp));
    const cJSON *w;
    cJSON_ArrayForEach(w, wp)
    {
        const char *sku = jstr(w, "sku");
        const cJSON *got = NULL, *p;
        cJSON_ArrayForEach(p, list)
        {
            if (strcmp(jstr(p, "sku"), sku) == 0)
                got = p;
        }
        ck_assert_msg(got != NULL, "/products lacks %s", sku);
        ck_assert_str_eq(jstr(got, "name"), jstr(w, "name"));
        ck_assert_msg(jnum(got, "price_cents") == jnum(w, "price_cents"),
                      "price of %s", sku);
        ck_assert_msg(jnum(got, "stock") == jnum(w, "stock"), "stock of %s",
                      sku);
        ck_assert_msg(jnum(got, "sold") == 0, "sold of %s", sku);
    }
    cJSON_Delete(list);
    cJSON_Delete(want);
    stop_small(s, cat);
}
END_TEST

/*
 * Assert `obj` is an object with every key in `keys` (NULL-ended); append
 * the keys it has beyond those to `extra` (reported once, at the end).
 */
static void expect_keys(const cJSON *obj, const char *what,
                        const char *const *keys, char *extra, size_t len)
{
    ck_assert_msg(cJSON_IsObject(obj), "%s is not an object", what);
    for (int n = 0; keys[n]; n++)
        ck_assert_msg(cJSON_GetObjectItemCaseSensitive(obj, keys[n]) != NULL,
                      "%s lacks key %s", what, keys[n]);
    const cJSON *k;
    cJSON_ArrayForEach(k, obj)
    {
        bool known = false;
        for (int i = 0; keys[i]; i++)
            known = known || strcmp(k->string, keys[i]) == 0;
        if (!known &&
            strlen(extra) + strlen(what) + strlen(k->string) + 3 < len) {
            strcat(extra, " ");
            strcat(extra, what);
            strcat(extra, ".");
            strcat(extra, k->string);
        }
    }
}

static void expect_numbers(const cJSON *obj, const char *what)
{
    const cJSON *k;
    cJSON_ArrayForEach(k, obj)
    {
        ck_assert_msg(cJSON_IsNumber(k) && k->valuedouble >= 0,
                      "%s.%s is not a non-negative number", what, k->string);
    }
}

START_TEST(test_e2e_api_stats_shape)
{
    /* The SPEC's keys (§7 adds instance and store) plus the documented
     * additions for the dashboard, the race demo and retries
     * (docs/api.md: unsafe_inventory, worker_state, oversold,
     * idempotency) and for
     * hostile clients (SPEC §10: events, connections), the bounded
     * inventory of a large catalog (SPEC §4: inventory_total,
     * inventory_truncated) and the floor (SPEC §11). */
    static const char *const top[] = {
        "uptime_s",    "workers",     "http_threads",     "draining",
        "queue",       "orders",      "latency_ms",       "throughput",
        "inventory",   "oversold",    "unsafe_inventory", "worker_state",
        "events",      "connections", "instance",         "store",
        "idempotency", "floor",       "inventory_total",  "inventory_truncated",
        NULL};
    static const char *const idem[] = {"replayed", "in_use",   "mismatched",
                                       "keys",     "capacity", NULL};
    static const char *const queue[] = {"capacity", "depth", "high_water",
                                        NULL};
    static const char *const orders[] = {
        "accepted",  "rejected_full", "rejected_invalid", "processed",
        "fulfilled", "out_of_stock",  "in_flight",        NULL};
    static const char *const lat[] = {"queue_wait", "processing", NULL};
    static const char *const pct[] = {"p50", "p90", "p99", "max", NULL};
    static const char *const thr[] = {"accepted_per_s", "processed_per_s",
                                      NULL};
    static const char *const inv[] = {"stock",     "sold",     "initial",
                                      "restocked", "oversold", NULL};
    static const char *const extra[] = {
        "--workers", "3", "--http-threads", "2", "--queue-capacity",
        "100",       NULL};
    char *cat;
    struct shopd *s = start_small(&cat, extra);
    char extra_keys[1024] = "";
    cJSON *j = get_json_ok(shopd_port(s), "/stats");
    expect_keys(j, "stats", top, extra_keys, sizeof extra_keys);
    ck_assert_msg(cJSON_IsNumber(json_at(j, "uptime_s")) &&
                      jnum(j, "uptime_s") >= 0,
                  "uptime_s");
    ck_assert_msg(jnum(j, "workers") == 3, "workers %g, want 3",
                  jnum(j, "workers"));
    ck_assert_msg(jnum(j, "http_threads") == 2, "http_threads %g, want 2",
                  jnum(j, "http_threads"));
    ck_assert_msg(cJSON_IsFalse(json_at(j, "draining")),
                  "draining is not false");
    expect_keys(json_at(j, "queue"), "queue", queue, extra_keys,
                sizeof extra_keys);
    expect_numbers(json_at(j, "queue"), "queue");
    ck_assert_msg(jnum(j, "queue.capacity") == 100, "capacity %g",
                  jnum(j, "queue.capacity"));
    ck_assert_msg(jnum(j, "queue.depth") == 0, "depth");
    ck_assert_msg(jnum(j, "queue.high_water") == 0, "high_water");
    expect_keys(json_at(j, "orders"), "orders", orders, extra_keys,
                sizeof extra_keys);
    const cJSON *k;
    cJSON_ArrayForEach(k, json_at(j, "orders"))
    {
        ck_assert_msg(cJSON_IsNumber(k) && k->valuedouble == 0,
                      "fresh orders.%s is not 0", k->string);
    }
    expect_keys(json_at(j, "idempotency"), "idempotency", idem, extra_keys,
                sizeof extra_keys);
    expect_numbers(json_at(j, "idempotency"), "idempotency");
    ck_assert_msg(jnum(j, "idempotency.keys") == 0 &&
                      jnum(j, "idempotency.capacity") > 0,
                  "idempotency keys/capacity");
    expect_keys(json_at(j, "latency_ms"), "latency_ms", lat, extra_keys,
                sizeof extra_keys);
    expect_keys(json_at(j, "latency_ms.queue_wait"), "queue_wait", pct,
                extra_keys, sizeof extra_keys);
    expect_numbers(json_at(j, "latency_ms.queue_wait"), "queue_wait");
    expect_keys(json_at(j, "latency_ms.processing"), "processing", pct,
                extra_keys, sizeof extra_keys);
    expect_numbers(json_at(j, "latency_ms.processing"), "processing");
    expect_keys(json_at(j, "throughput"), "throughput", thr, extra_keys,
                sizeof extra_keys);
    expect_numbers(json_at(j, "throughput"), "throughput");
    const cJSON *iv = json_at(j, "inventory");
    ck_assert_msg(cJSON_IsObject(iv), "inventory");
    ck_assert_int_eq(cJSON_GetArraySize(iv), 3);
    cJSON_ArrayForEach(k, iv)
    {
        expect_keys(k, k->string, inv, extra_keys, sizeof extra_keys);
    }
    ck_assert_msg(jnum(iv, "apple.stock") == 10 && jnum(iv, "apple.sold") == 0,
                  "apple");
    ck_assert_msg(jnum(iv, "apple.restocked") == 0, "apple restocked");
    ck_assert_msg(jnum(iv, "pear-2.stock") == 3, "pear-2");
    ck_assert_msg(jnum(iv, "Gold_Bar.stock") == 0, "Gold_Bar");
    cJSON_Delete(j);
    ck_assert_msg(extra_keys[0] == '\0',
                  "/stats has keys beyond SPEC's shape:%s", extra_keys);
    stop_small(s, cat);
}
END_TEST

/* The value of the first sample line "name value" (no labels), or -1. */
static double metric_value(const char *text, const char *name)
{
    size_t nl = strlen(name);
    const char *line = text;
    while (line && *line) {
        if (strncmp(line, name, nl) == 0 && line[nl] == ' ')
            return strtod(line + nl + 1, NULL);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

/*
 * For every histogram whose only label is `le`: buckets never decrease,
 * the +Inf bucket equals _count, and at least one histogram has seen an
 * observation.
 */
static void check_histograms(const char *text)
{
    char base[128] = "";
    double last = -1, inf = -1;
    int nhist = 0;
    bool observed = false;
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        const char *b = memchr(line, '{', ll);
        if (line[0] != '#' && b && b - line > 7 &&
            strncmp(b - 7, "_bucket", 7) == 0 && strncmp(b, "{le=\"", 5) == 0) {
            size_t bl = (size_t)(b - 7 - line);
            ck_assert_msg(bl < sizeof base, "metric name too long");
            if (strlen(base) != bl || strncmp(base, line, bl) != 0) {
                memcpy(base, line, bl);
                base[bl] = '\0';
                last = -1;
                nhist++;
            }
            const char *sp = memchr(b, ' ', ll - (size_t)(b - line));
            ck_assert_msg(sp != NULL, "bucket line without a value");
            double v = strtod(sp + 1, NULL);
            ck_assert_msg(v >= last, "%s buckets decrease", base);
            last = v;
            if (strncmp(b, "{le=\"+Inf\"}", 11) == 0) {
                inf = v;
                char name[160];
                snprintf(name, sizeof name, "%s_count", base);
                double count = metric_value(text, name);
                ck_assert_msg(count == inf, "%s: +Inf bucket %g != _count %g",
                              base, inf, count);
                snprintf(name, sizeof name, "%s_sum", base);
                ck_assert_msg(metric_value(text, name) >= 0, "%s_sum", base);
                observed = observed || inf > 0;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    ck_assert_msg(nhist >= 1, "/metrics has no histogram with le buckets");
    ck_assert_msg(observed, "no histogram counted the processed orders");
}

START_TEST(test_e2e_api_metrics)
{
    char *cat;
    struct shopd *s = start_small(&cat, NULL);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (int i = 0; i < 3; i++)
        buy_ok(&c, "{\"product\":\"apple\",\"quantity\":1}");
    http_close(&c);
    cJSON_Delete(wait_idle_ok(port, 20000));
    struct http_resp r;
    ck_assert_int_eq(http_do(port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    const char *ct = http_header(&r, "Content-Type");
    ck_assert_msg(header_starts(ct, "text/plain") && strstr(ct, "0.0.4"),
                  "/metrics Content-Type '%s', want text/plain; "
                  "version=0.0.4",
                  ct ? ct : "(none)");
    static const char *const needles[] = {"shopd_orders_accepted_total",
                                          "shopd_queue_depth",
                                          "_bucket{",
                                          "le=\"+Inf\"",
                                          "_sum",
                                          "_count",
                                          "# TYPE",
                                          "# HELP"};
    for (size_t i = 0; i < sizeof needles / sizeof *needles; i++)
        ck_assert_msg(strstr(r.body, needles[i]) != NULL, "/metrics lacks %s",
                      needles[i]);
    double acc = metric_value(r.body, "shopd_orders_accepted_total");
    ck_assert_msg(acc == 3, "shopd_orders_accepted_total is %g, want 3", acc);
    double depth = metric_value(r.body, "shopd_queue_depth");
    ck_assert_msg(depth == 0, "shopd_queue_depth is %g, want 0", depth);
    check_histograms(r.body);

    static const char *const argv[] = {"promtool", "check", "metrics", NULL};
    char *out;
    int st = run_cmd(argv, r.body, r.body_len, &out, 30000);
    ck_assert_msg(st != -3,
                  "promtool is not on PATH: install the Debian package "
                  "'prometheus' (the Makefile's deps target does)");
    ck_assert_msg(st == 0, "promtool check metrics failed (status %d): %.800s",
                  st, out);
    free(out);
    http_resp_free(&r);
    stop_small(s, cat);
}
END_TEST

START_TEST(test_e2e_api_dashboard)
{
    struct shopd *s = shopd_start(NULL, NULL);
    struct http_resp r;
    ck_assert_int_eq(http_do(shopd_port(s), "GET", "/", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(header_starts(http_header(&r, "Content-Type"), "text/html"),
                  "/ Content-Type is not text/html");
    for (size_t i = 0; i < r.body_len; i++)
        r.body[i] = (char)tolower((unsigned char)r.body[i]);
    ck_assert_msg(strstr(r.body, "<html") != NULL, "/ has no <html");
    http_resp_free(&r);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_api_events)
{
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    ck_assert_int_eq(http_send(&c, "GET", "/events", NULL, NULL, 0), 0);
    struct http_resp r;
    ck_assert_int_eq(http_read_head(&c, &r, E2E_IO_TIMEOUT_MS), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(
        header_starts(http_header(&r, "Content-Type"), "text/event-stream"),
        "/events Content-Type is not text/event-stream");
    bool chunked = http_header(&r, "Transfer-Encoding") != NULL;
    http_resp_free(&r);
    /* Two events, each with a data: line holding a /stats snapshot. */
    for (int ev = 0; ev < 2; ev++) {
        char *text = NULL;
        int e = http_read_until(&c, "\n\n", &text, E2E_IO_TIMEOUT_MS);
        ck_assert_msg(e == 0, "no SSE event %d: %s", ev, strerror(-e));
        const char *data = strstr(text, "data:");
        ck_assert_msg(data != NULL, "event without data: %.300s", text);
        data += 5;
        const char *end = strchr(data, '\n');
        cJSON *j = cJSON_ParseWithLength(data, (size_t)(end - data));
        ck_assert_msg(j != NULL && json_at(j, "orders.accepted") &&
                          json_at(j, "queue.depth"),
                      "SSE data is not a /stats snapshot: %.300s (chunked "
                      "framing: %d)",
                      data, chunked);
        cJSON_Delete(j);
        free(text);
    }
    http_close(&c);
    cJSON_Delete(get_json_ok(port, "/healthz"));
    shopd_destroy(s);
}
END_TEST

/* Malformed requests: each must get a 4xx or a closed connection. */
struct malformed {
    const char *name;
    const char *head; /* raw bytes sent first */
    size_t big;       /* then this many 'a's */
    const char *tail; /* then these bytes */
    bool shut_wr;     /* then half-close */
};

static const struct malformed malformed_cases[] = {
    {"garbage request line", "GARBAGE\r\n\r\n", 0, NULL, false},
    {"method only", "GET\r\n\r\n", 0, NULL, false},
    {"binary junk", "\x01\x02\x03\xff\xfe\r\n\r\n", 0, NULL, false},
    {"huge header", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", 70000,
     "\r\n\r\n", false},
    {"huge url", "GET /", 70000, " HTTP/1.1\r\nHost: x\r\n\r\n", false},
    {"many headers", "GET /healthz HTTP/1.1\r\nHost: x\r\n", 0, NULL, false},
    {"bad chunk size",
     "POST /buy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     "ZZZ\r\n\r\n",
     0, NULL, false},
    {"non-numeric content-length",
     "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", 0, NULL,
     false},
    {"negative content-length",
     "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}", 0, NULL,
     false},
    {"truncated body then half-close",
     "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
     "{\"product\"",
     0, NULL, true},
    {"partial request line then half-close", "GET /heal", 0, NULL, true},
    {"partial headers then half-close",
     "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b", 0, NULL, true},
};

START_TEST(test_e2e_api_malformed)
{
    const struct malformed *m = &malformed_cases[_i];
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    /* Send errors are fine: the server may answer and close early. */
    (void)http_send_raw(&c, m->head, strlen(m->head));
    if (m->big) {
        char *big = malloc(m->big);
        ck_assert_ptr_nonnull(big);
        memset(big, 'a', m->big);
        (void)http_send_raw(&c, big, m->big);
        free(big);
    }
    if (strcmp(m->name, "many headers") == 0) {
        char line[64];
        for (int i = 0; i < 3000; i++) {
            int n = snprintf(line, sizeof line, "X-H%d: v\r\n", i);
            if (http_send_raw(&c, line, (size_t)n) != 0)
                break;
        }
        (void)http_send_raw(&c, "\r\n", 2);
    }
    if (m->tail)
        (void)http_send_raw(&c, m->tail, strlen(m->tail));
    if (m->shut_wr)
        shutdown(c.fd, SHUT_WR);
    struct http_resp r;
    int e = http_read(&c, &r, false, 10000);
    if (e == 0) {
        ck_assert_msg(r.status >= 400 && r.status < 500,
                      "%s: status %d, want 4xx or a closed connection", m->name,
                      r.status);
    } else {
        ck_assert_msg(e == -EPIPE || e == -ECONNRESET,
                      "%s: neither a response nor a close (%s)", m->name,
                      e == -ETIMEDOUT ? "timed out" : strerror(-e));
    }
    http_resp_free(&r);
    http_close(&c);
    ck_assert_msg(shopd_running(s), "%s: shopd died", m->name);
    cJSON *j = get_json_ok(port, "/healthz");
    ck_assert_str_eq(jstr(j, "status"), "ok");
    cJSON_Delete(j);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_api_conn_timeout)
{
    static const char *const args[] = {"--conn-timeout", "1", NULL};
    struct shopd *s = shopd_start(args, NULL);
    struct http_conn idle, used;
    ck_assert_int_eq(http_connect(&idle, shopd_port(s)), 0);
    ck_assert_int_eq(http_connect(&used, shopd_port(s)), 0);
    struct http_resp r;
    ck_assert_int_eq(
        http_roundtrip(&used, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    int e = http_wait_closed(&idle, 15000);
    ck_assert_msg(e == 0,
                  "idle connection not closed with --conn-timeout 1 "
                  "(%s)",
                  strerror(-e));
    e = http_wait_closed(&used, 15000);
    ck_assert_msg(e == 0,
                  "idle keep-alive connection not closed with "
                  "--conn-timeout 1 (%s)",
                  strerror(-e));
    http_close(&idle);
    http_close(&used);
    cJSON_Delete(get_json_ok(shopd_port(s), "/healthz"));
    shopd_destroy(s);
}
END_TEST

Suite *e2e_api_suite(void)
{
    Suite *s = suite_create("e2e_api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, NULL, e2e_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_e2e_api_healthz);
    tcase_add_test(tc, test_e2e_api_readyz);
    tcase_add_test(tc, test_e2e_api_http10);
    tcase_add_loop_test(tc, test_e2e_api_not_found, 0,
                        (int)(sizeof unknown_paths / sizeof *unknown_paths));
    tcase_add_test(tc, test_e2e_api_get_only_405);
    tcase_add_test(tc, test_e2e_api_head);
    tcase_add_test(tc, test_e2e_api_products_demo);
    tcase_add_test(tc, test_e2e_api_products_unknown);
    tcase_add_test(tc, test_e2e_api_catalog_file);
    tcase_add_test(tc, test_e2e_api_stats_shape);
    tcase_add_test(tc, test_e2e_api_metrics);
    tcase_add_test(tc, test_e2e_api_dashboard);
    tcase_add_test(tc, test_e2e_api_events);
    tcase_add_loop_test(
        tc, test_e2e_api_malformed, 0,
        (int)(sizeof malformed_cases / sizeof *malformed_cases));
    tcase_add_test(tc, test_e2e_api_conn_timeout);
    suite_add_tcase(s, tc);
    return s;
}
