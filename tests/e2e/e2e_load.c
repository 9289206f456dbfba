/*
 * e2e_load.c - the real binary under bounded load on 127.0.0.1: SPEC §1's
 * invariants after a concurrent burst, backpressure (503 queue_full),
 * keep-alive, many concurrent connections, pipelining.
 *
 * Client threads only collect results; every assertion runs in the test
 * thread after the joins (Check asserts are for the test thread only).
 */
#include "tests/e2e/suites.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/clock.h"
#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/orders.h"
#include "tests/lib/process.h"

/* ---- the concurrent burst ----------------------------------------------- */

#define BURST_THREADS  8
#define BURST_ORDERS   250
#define BURST_PRODUCTS 3
#define MAX_SNAPSHOTS  4000

static const char *const burst_skus[BURST_PRODUCTS] = {"a", "b", "c"};
static const long burst_stock[BURST_PRODUCTS] = {400, 250, 120};
static const char burst_catalog[] =
    "{\"products\":["
    "{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":1,\"stock\":400},"
    "{\"sku\":\"b\",\"name\":\"B\",\"price_cents\":2,\"stock\":250},"
    "{\"sku\":\"c\",\"name\":\"C\",\"price_cents\":3,\"stock\":120}]}";

struct sent_order {
    uint64_t id;
    int product;
    int qty;
};

struct burst_thread {
    pthread_t tid;
    unsigned port;
    int index;
    int n202, n503, nother, nerr;
    int other_status;
    char err[160];
    int nsent;
    struct sent_order sent[BURST_ORDERS];
};

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* The order id in a 202 body, or 0. */
static uint64_t body_order_id(const char *body)
{
    const char *p = body ? strstr(body, "\"order_id\":") : NULL;
    if (!p)
        return 0;
    return strtoull(p + 11, NULL, 10);
}

static void *burst_main(void *arg)
{
    struct burst_thread *t = arg;
    uint32_t seed = 0x9e3779b9u * (uint32_t)(t->index + 1);
    struct http_conn c;
    if (http_connect(&c, t->port) != 0) {
        t->nerr = BURST_ORDERS;
        snprintf(t->err, sizeof t->err, "connect failed");
        return NULL;
    }
    for (int i = 0; i < BURST_ORDERS; i++) {
        int p = (int)(xorshift(&seed) % BURST_PRODUCTS);
        int q = 1 + (int)(xorshift(&seed) % 3);
        char body[160];
        snprintf(body, sizeof body,
                 "{\"product\":\"%s\",\"quantity\":%d,\"customer\":"
                 "\"t%d-%d\"}",
                 burst_skus[p], q, t->index, i);
        struct http_resp r;
        int e =
            http_roundtrip(&c, "POST", "/buy", NULL, body, strlen(body), &r);
        if (e != 0) {
            if (!t->nerr)
                snprintf(t->err, sizeof t->err, "request %d: %s", i,
                         strerror(-e));
            t->nerr++;
            http_resp_free(&r);
            http_close(&c);
            if (http_connect(&c, t->port) != 0)
                break;
            continue;
        }
        if (r.status == 202) {
            t->n202++;
            t->sent[t->nsent].id = body_order_id(r.body);
            t->sent[t->nsent].product = p;
            t->sent[t->nsent].qty = q;
            t->nsent++;
        } else if (r.status == 503 && strstr(r.body, "queue_full")) {
            t->n503++;
        } else {
            t->nother++;
            t->other_status = r.status;
        }
        bool close_it = http_says_close(&r);
        http_resp_free(&r);
        if (close_it) {
            http_close(&c);
            if (http_connect(&c, t->port) != 0)
                break;
        }
    }
    http_close(&c);
    return NULL;
}

struct poller {
    pthread_t tid;
    unsigned port;
    atomic_bool stop;
    int nsnap;
    char *snap[MAX_SNAPSHOTS];
    int nerr;
};

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    struct http_conn c;
    if (http_connect(&c, p->port) != 0) {
        p->nerr++;
        return NULL;
    }
    while (!atomic_load(&p->stop) && p->nsnap < MAX_SNAPSHOTS) {
        struct http_resp r;
        int e = http_roundtrip(&c, "GET", "/stats", NULL, NULL, 0, &r);
        if (e == 0 && r.status == 200) {
            p->snap[p->nsnap++] = r.body;
            r.body = NULL;
        } else {
            p->nerr++;
        }
        bool close_it = e != 0 || http_says_close(&r);
        http_resp_free(&r);
        if (close_it) {
            http_close(&c);
            if (http_connect(&c, p->port) != 0)
                break;
        }
        backoff_ms(2);
    }
    http_close(&c);
    return NULL;
}

START_TEST(test_e2e_load_invariants)
{
    char *cat = write_tmp(burst_catalog);
    const char *const args[] = {"--catalog", cat, "--workers", "4", NULL};
    struct shopd *s = shopd_start(args, NULL);
    unsigned port = shopd_port(s);

    static struct burst_thread th[BURST_THREADS];
    static struct poller pol;
    memset(th, 0, sizeof th);
    memset(&pol, 0, sizeof pol);
    pol.port = port;
    atomic_init(&pol.stop, false);
    ck_assert_int_eq(pthread_create(&pol.tid, NULL, poller_main, &pol), 0);
    for (int i = 0; i < BURST_THREADS; i++) {
        th[i].port = port;
        th[i].index = i;
        ck_assert_int_eq(pthread_create(&th[i].tid, NULL, burst_main, &th[i]),
                         0);
    }
    for (int i = 0; i < BURST_THREADS; i++)
        pthread_join(th[i].tid, NULL);
    atomic_store(&pol.stop, true);
    pthread_join(pol.tid, NULL);

    int n202 = 0, n503 = 0;
    for (int i = 0; i < BURST_THREADS; i++) {
        ck_assert_msg(th[i].nerr == 0, "thread %d: %d transport errors (%s)", i,
                      th[i].nerr, th[i].err);
        ck_assert_msg(th[i].nother == 0,
                      "thread %d: %d answers neither 202 nor 503 queue_full "
                      "(e.g. %d)",
                      i, th[i].nother, th[i].other_status);
        n202 += th[i].n202;
        n503 += th[i].n503;
    }
    ck_assert_int_eq(n202 + n503, BURST_THREADS * BURST_ORDERS);
    ck_assert_msg(n202 > 0, "no order accepted");

    /* Snapshots taken during the burst: stock never negative, never
     * oversold, the belt never over capacity. */
    ck_assert_msg(pol.nerr == 0, "%d /stats polls failed", pol.nerr);
    for (int k = 0; k < pol.nsnap; k++) {
        cJSON *j = cJSON_Parse(pol.snap[k]);
        ck_assert_msg(j != NULL, "snapshot %d is not JSON", k);
        ck_assert_msg(jnum(j, "queue.depth") <= jnum(j, "queue.capacity"),
                      "depth over capacity");
        ck_assert_msg(jnum(j, "queue.high_water") <= jnum(j, "queue.capacity"),
                      "high_water over capacity");
        for (int p = 0; p < BURST_PRODUCTS; p++) {
            char path[64];
            snprintf(path, sizeof path, "inventory.%s.stock", burst_skus[p]);
            double stock = jnum(j, path);
            snprintf(path, sizeof path, "inventory.%s.sold", burst_skus[p]);
            double sold = jnum(j, path);
            ck_assert_msg(stock >= 0, "negative stock of %s mid-burst",
                          burst_skus[p]);
            ck_assert_msg(sold <= burst_stock[p], "%s oversold mid-burst",
                          burst_skus[p]);
        }
        cJSON_Delete(j);
        free(pol.snap[k]);
    }

    cJSON *st = wait_idle_ok(port, 30000);
    double acc = jnum(st, "orders.accepted");
    double proc = jnum(st, "orders.processed");
    double ful = jnum(st, "orders.fulfilled");
    double oos = jnum(st, "orders.out_of_stock");
    ck_assert_msg(acc == n202, "accepted %g, the client saw %d 202s", acc,
                  n202);
    ck_assert_msg(jnum(st, "orders.rejected_full") == n503,
                  "rejected_full %g, the client saw %d queue_full",
                  jnum(st, "orders.rejected_full"), n503);
    ck_assert_msg(jnum(st, "orders.rejected_invalid") == 0, "rejected_invalid");
    ck_assert_msg(acc == proc + jnum(st, "queue.depth") +
                             jnum(st, "orders.in_flight"),
                  "accepted != processed + depth + in_flight");
    ck_assert_msg(proc == ful + oos,
                  "processed %g != fulfilled %g + "
                  "out_of_stock %g",
                  proc, ful, oos);
    ck_assert_msg(oos > 0, "the burst should run some product out of stock");
    ck_assert_msg(jnum(st, "queue.high_water") <= jnum(st, "queue.capacity"),
                  "high_water");
    long stock[BURST_PRODUCTS], sold[BURST_PRODUCTS];
    for (int p = 0; p < BURST_PRODUCTS; p++) {
        char path[64];
        snprintf(path, sizeof path, "inventory.%s.stock", burst_skus[p]);
        stock[p] = (long)jnum(st, path);
        snprintf(path, sizeof path, "inventory.%s.sold", burst_skus[p]);
        sold[p] = (long)jnum(st, path);
        ck_assert_msg(stock[p] >= 0, "negative stock of %s", burst_skus[p]);
        ck_assert_msg(stock[p] + sold[p] == burst_stock[p],
                      "%s: stock %ld + sold %ld != %ld", burst_skus[p],
                      stock[p], sold[p], burst_stock[p]);
    }
    cJSON_Delete(st);

    /* Ids: exactly 1..n202, each once. */
    struct sent_order *by_id = calloc((size_t)n202 + 1, sizeof *by_id);
    ck_assert_ptr_nonnull(by_id);
    for (int i = 0; i < BURST_THREADS; i++) {
        for (int k = 0; k < th[i].nsent; k++) {
            uint64_t id = th[i].sent[k].id;
            ck_assert_msg(id >= 1 && id <= (uint64_t)n202,
                          "order id %llu outside 1..%d", (unsigned long long)id,
                          n202);
            ck_assert_msg(by_id[id].id == 0, "order id %llu issued twice",
                          (unsigned long long)id);
            by_id[id] = th[i].sent[k];
        }
    }

    /* Every order: what was sent, a final status, and the books agree. */
    long fulfilled_qty[BURST_PRODUCTS] = {0};
    long nful = 0, noos = 0;
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (uint64_t id = 1; id <= (uint64_t)n202; id++) {
        char path[64];
        snprintf(path, sizeof path, "/orders/%llu", (unsigned long long)id);
        struct http_resp r;
        int e = http_roundtrip(&c, "GET", path, NULL, NULL, 0, &r);
        ck_assert_msg(e == 0 && r.status == 200, "GET %s: %d %s", path,
                      r.status, strerror(-e));
        cJSON *o = resp_json(&r);
        ck_assert_msg(o != NULL, "%s not JSON", path);
        int p = by_id[id].product;
        ck_assert_str_eq(jstr(o, "product"), burst_skus[p]);
        ck_assert_msg(jnum(o, "quantity") == by_id[id].qty, "%s quantity",
                      path);
        const char *status = jstr(o, "status");
        if (strcmp(status, "fulfilled") == 0) {
            fulfilled_qty[p] += by_id[id].qty;
            nful++;
        } else {
            ck_assert_msg(strcmp(status, "out_of_stock") == 0,
                          "%s status %s after the belt drained", path, status);
            /* Stock only goes down, so it is still short. */
            ck_assert_msg(stock[p] < by_id[id].qty,
                          "%s out_of_stock for %d but %ld %s are left", path,
                          by_id[id].qty, stock[p], burst_skus[p]);
            noos++;
        }
        cJSON_Delete(o);
        bool close_it = http_says_close(&r);
        http_resp_free(&r);
        if (close_it) {
            http_close(&c);
            ck_assert_int_eq(http_connect(&c, port), 0);
        }
    }
    http_close(&c);
    ck_assert_msg(nful == (long)ful && noos == (long)oos,
                  "orders say %ld fulfilled %ld out_of_stock, stats %g %g",
                  nful, noos, ful, oos);
    for (int p = 0; p < BURST_PRODUCTS; p++)
        ck_assert_msg(fulfilled_qty[p] == sold[p],
                      "%s: fulfilled orders add up to %ld, sold is %ld",
                      burst_skus[p], fulfilled_qty[p], sold[p]);

    /* /products agrees with /stats. */
    cJSON *list = get_json_ok(port, "/products");
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        for (int p = 0; p < BURST_PRODUCTS; p++) {
            if (strcmp(jstr(item, "sku"), burst_skus[p]) != 0)
                continue;
            ck_assert_msg(jnum(item, "stock") == stock[p] &&
                              jnum(item, "sold") == sold[p],
                          "/products %s disagrees with /stats", burst_skus[p]);
        }
    }
    cJSON_Delete(list);
    free(by_id);
    shopd_destroy(s);
    unlink(cat);
    free(cat);
}
END_TEST

/* ---- backpressure -------------------------------------------------------- */

START_TEST(test_e2e_load_backpressure)
{
    static const char *const args[] = {
        "--workers", "1", "--queue-capacity", "4", "--work-ms", "500", NULL};
    struct shopd *s = shopd_start(args, NULL);
    unsigned port = shopd_port(s);
    cJSON *st = get_json_ok(port, "/stats");
    const char *sku = json_at(st, "inventory")->child->string;
    char body[160];
    snprintf(body, sizeof body, "{\"product\":\"%s\",\"quantity\":1}", sku);
    cJSON_Delete(st);

    uint64_t ids[20];
    int n202 = 0, n503 = 0;
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (int i = 0; i < 20; i++) {
        struct http_resp r;
        int e =
            http_roundtrip(&c, "POST", "/buy", NULL, body, strlen(body), &r);
        ck_assert_msg(e == 0, "order %d: %s", i, strerror(-e));
        if (r.status == 202) {
            ids[n202++] = body_order_id(r.body);
        } else {
            expect_error(&r, 503, "queue_full");
            const char *ra = http_header(&r, "Retry-After");
            ck_assert_msg(ra && strcmp(ra, "1") == 0,
                          "503 queue_full Retry-After '%s', want 1",
                          ra ? ra : "(none)");
            n503++;
        }
        bool close_it = http_says_close(&r);
        http_resp_free(&r);
        if (close_it) {
            http_close(&c);
            ck_assert_int_eq(http_connect(&c, port), 0);
        }
    }
    http_close(&c);
    /* The first four always fit on the empty belt. */
    ck_assert_msg(n202 >= 4, "only %d of 20 accepted", n202);
    ck_assert_msg(n503 >= 1, "no 503 queue_full with capacity 4 and one "
                             "500 ms worker");
    for (int i = 0; i < n202; i++)
        ck_assert_msg(ids[i] == (uint64_t)i + 1,
                      "202 number %d has id %llu, want %d", i + 1,
                      (unsigned long long)ids[i], i + 1);
    st = get_json_ok(port, "/stats");
    ck_assert_msg(jnum(st, "orders.rejected_full") == n503,
                  "rejected_full %g, saw %d", jnum(st, "orders.rejected_full"),
                  n503);
    ck_assert_msg(jnum(st, "orders.accepted") == n202, "accepted");
    ck_assert_msg(jnum(st, "queue.high_water") == 4,
                  "high_water %g, want 4 (the belt was full)",
                  jnum(st, "queue.high_water"));
    cJSON_Delete(st);
    for (int i = 0; i < n202; i++) {
        cJSON *o = wait_order_final_ok(port, ids[i], 30000);
        cJSON_Delete(o);
    }
    cJSON_Delete(wait_idle_ok(port, 10000));
    /* 503s consumed no id. */
    ck_assert_int_eq(buy_one_ok(port, body), (uint64_t)n202 + 1);
    shopd_destroy(s);
}
END_TEST

/* ---- keep-alive, many connections, pipelining --------------------------- */

START_TEST(test_e2e_load_keepalive)
{
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    cJSON *st = get_json_ok(port, "/stats");
    const char *sku = json_at(st, "inventory")->child->string;
    char body[160];
    snprintf(body, sizeof body, "{\"product\":\"%s\",\"quantity\":1}", sku);
    cJSON_Delete(st);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (uint64_t i = 1; i <= 200; i++) {
        struct http_resp r;
        ck_assert_int_eq(
            http_roundtrip(&c, "GET", "/healthz", NULL, NULL, 0, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(!http_says_close(&r), "closed after %llu",
                      (unsigned long long)i);
        http_resp_free(&r);
        ck_assert_int_eq(buy_ok(&c, body), i);
        char path[64];
        snprintf(path, sizeof path, "/orders/%llu", (unsigned long long)i);
        ck_assert_int_eq(http_roundtrip(&c, "GET", path, NULL, NULL, 0, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(!http_says_close(&r), "closed");
        http_resp_free(&r);
    }
    http_close(&c);
    shopd_destroy(s);
}
END_TEST

static const int conn_counts[] = {128, 256};

START_TEST(test_e2e_load_connections)
{
    int n = conn_counts[_i];
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    cJSON *st = get_json_ok(port, "/stats");
    const char *sku = json_at(st, "inventory")->child->string;
    char body[160];
    snprintf(body, sizeof body, "{\"product\":\"%s\",\"quantity\":1}", sku);
    cJSON_Delete(st);

    struct http_conn *c = calloc((size_t)n, sizeof *c);
    ck_assert_ptr_nonnull(c);
    for (int i = 0; i < n; i++) {
        int e = http_connect(&c[i], port);
        ck_assert_msg(e == 0, "connection %d of %d: %s", i, n, strerror(-e));
    }
    /* Every connection is open at once; each round sends on all of them,
     * then reads all answers. */
    static const char *const paths[] = {"/healthz", "/buy", "/stats",
                                        "/products"};
    char *seen = calloc((size_t)n + 1, 1);
    ck_assert_ptr_nonnull(seen);
    for (size_t round = 0; round < sizeof paths / sizeof *paths; round++) {
        bool post = strcmp(paths[round], "/buy") == 0;
        for (int i = 0; i < n; i++) {
            int e = http_send(&c[i], post ? "POST" : "GET", paths[round], NULL,
                              post ? body : NULL, post ? strlen(body) : 0);
            ck_assert_msg(e == 0, "round %zu conn %d send: %s", round, i,
                          strerror(-e));
        }
        for (int i = 0; i < n; i++) {
            struct http_resp r;
            int e = http_read(&c[i], &r, false, E2E_IO_TIMEOUT_MS);
            ck_assert_msg(e == 0, "%d connections, round %s, conn %d: %s", n,
                          paths[round], i,
                          e == -ETIMEDOUT ? "timed out" : strerror(-e));
            ck_assert_msg(r.status == (post ? 202 : 200),
                          "%d connections, %s conn %d: status %d %.100s", n,
                          paths[round], i, r.status, r.body);
            ck_assert_msg(!http_says_close(&r), "conn %d closed", i);
            if (post) {
                uint64_t id = body_order_id(r.body);
                ck_assert_msg(id >= 1 && id <= (uint64_t)n && !seen[id],
                              "bad or duplicate id %llu",
                              (unsigned long long)id);
                seen[id] = 1;
            }
            http_resp_free(&r);
        }
    }
    for (int i = 0; i < n; i++)
        http_close(&c[i]);
    free(seen);
    free(c);
    cJSON *j = wait_idle_ok(port, 20000);
    ck_assert_msg(jnum(j, "orders.accepted") == n, "accepted");
    cJSON_Delete(j);
    ck_assert_msg(shopd_running(s), "shopd died");
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_load_pipelined)
{
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    char req[1024] = "";
    for (int i = 0; i < 5; i++) {
        char one[128];
        snprintf(one, sizeof one, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                 i % 2 ? "/readyz" : "/healthz");
        strcat(req, one);
    }
    ck_assert_int_eq(http_send_raw(&c, req, strlen(req)), 0);
    for (int i = 0; i < 5; i++) {
        struct http_resp r;
        int e = http_read(&c, &r, false, E2E_IO_TIMEOUT_MS);
        ck_assert_msg(e == 0, "pipelined answer %d: %s", i, strerror(-e));
        ck_assert_int_eq(r.status, 200);
        http_resp_free(&r);
    }
    http_close(&c);
    shopd_destroy(s);
}
END_TEST

Suite *e2e_load_suite(void)
{
    Suite *s = suite_create("e2e_load");
    TCase *tc = tcase_create("load");
    tcase_add_checked_fixture(tc, NULL, e2e_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_e2e_load_invariants);
    tcase_add_test(tc, test_e2e_load_backpressure);
    tcase_add_test(tc, test_e2e_load_keepalive);
    tcase_add_loop_test(tc, test_e2e_load_connections, 0,
                        (int)(sizeof conn_counts / sizeof *conn_counts));
    tcase_add_test(tc, test_e2e_load_pipelined);
    suite_add_tcase(s, tc);
    return s;
}
