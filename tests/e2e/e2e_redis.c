/*
 * e2e_redis.c - many shopd instances, one shop: the real binary against a
 * real redis-server that each test starts itself (tests/lib/redis_harness)
 * on a unix socket in a temporary directory and stops by PID.
 *
 * Faults are real: kill -9 of an instance holding orders, a Redis killed
 * mid-load (appendfsync always) and started again on its files.
 *
 * Client threads only record what they saw (status counts and the ids of
 * their 202s); the test thread asserts after joining them.
 */
#include "tests/e2e/suites.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/clock.h"
#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/orders.h"
#include "tests/lib/process.h"
#include "tests/lib/redis_harness.h"

#define HOT_STOCK  500
#define HOT_ORDERS 2000
#define CLIENTS    8

static struct redis_server redis;

static void start_redis(bool aof)
{
    int rc = redis_server_start(&redis, aof);
    ck_assert_msg(rc == 0, "redis-server did not start: %s", strerror(-rc));
}

static void teardown(void)
{
    e2e_teardown();
    redis_server_destroy(&redis);
}

/* Start one instance named `name` on the shared Redis, over `catalog`
 * (a file path), with extra NULL-ended arguments. */
static struct shopd *start_instance(const char *name, const char *catalog,
                                    const char *const *extra)
{
    const char *args[32];
    size_t n = 0;
    args[n++] = "--store";
    args[n++] = redis.url;
    args[n++] = "--instance";
    args[n++] = name;
    args[n++] = "--catalog";
    args[n++] = catalog;
    while (extra && *extra && n < 31)
        args[n++] = *extra++;
    args[n] = NULL;
    return shopd_start(args, NULL);
}

static const char hot_catalog[] =
    "{\"products\":[{\"sku\":\"hot\",\"name\":\"Hot\",\"price_cents\":100,"
    "\"stock\":500},{\"sku\":\"cold\",\"name\":\"Cold\",\"price_cents\":5,"
    "\"stock\":100000}]}";

/* ---- client threads ---------------------------------------------------- */

struct client {
    const unsigned *ports; /* instances, used round robin */
    size_t nports;
    size_t first;  /* index of the first instance this client uses */
    size_t orders; /* how many to send */
    const char *body;
    _Atomic bool *stop; /* optional: stop early when set */
    /* results */
    uint64_t *ids;
    size_t nids;
    size_t s202, s503_full, s503_store, s504, other, io_errors;
    char last_other[200];
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct http_conn conn[8];
    size_t k = c->nports < 8 ? c->nports : 8;

    for (size_t i = 0; i < k; i++)
        conn[i].fd = -1;
    for (size_t i = 0; i < c->orders; i++) {
        if (c->stop && atomic_load(c->stop))
            break;
        size_t at = (c->first + i) % k;
        struct http_conn *cn = &conn[at];
        if (cn->fd < 0 && http_connect(cn, c->ports[at]) != 0) {
            c->io_errors++;
            continue;
        }
        struct http_resp r;
        int e = http_roundtrip(cn, "POST", "/buy", NULL, c->body,
                               strlen(c->body), &r);
        if (e != 0) {
            c->io_errors++;
            http_close(cn);
            continue;
        }
        if (r.status == 202) {
            const char *p = strstr(r.body, "\"order_id\":");
            if (p)
                c->ids[c->nids++] = strtoull(p + 11, NULL, 10);
            c->s202++;
        } else if (r.status == 503 && strstr(r.body, "queue_full")) {
            c->s503_full++;
        } else if (r.status == 503 && strstr(r.body, "store_unavailable")) {
            c->s503_store++;
        } else if (r.status == 504 && strstr(r.body, "outcome_unknown")) {
            c->s504++; /* Redis killed mid-commit: it may have it */
        } else {
            c->other++;
            snprintf(c->last_other, sizeof(c->last_other), "%d %s", r.status,
                     r.body);
        }
        if (http_says_close(&r))
            http_close(cn);
        http_resp_free(&r);
    }
    for (size_t i = 0; i < k; i++)
        http_close(&conn[i]);
    return NULL;
}

/* Clients running in the background (start_clients .. join_clients). */
struct crowd {
    pthread_t t[CLIENTS];
    struct client c[CLIENTS];
    size_t n;
};

/* Start `nclients` clients of `per` orders each (until `stop`, if set). */
static void start_clients(struct crowd *cr, const unsigned *ports,
                          size_t nports, size_t nclients, size_t per,
                          const char *body, _Atomic bool *stop)
{
    ck_assert_uint_le(nclients, CLIENTS);
    memset(cr, 0, sizeof(*cr));
    cr->n = nclients;
    for (size_t i = 0; i < nclients; i++) {
        struct client *c = &cr->c[i];
        c->ports = ports;
        c->nports = nports;
        c->first = i;
        c->orders = per;
        c->body = body;
        c->stop = stop;
        c->ids = calloc(per, sizeof(uint64_t));
        ck_assert_ptr_nonnull(c->ids);
        ck_assert_int_eq(pthread_create(&cr->t[i], NULL, client_main, c), 0);
    }
}

/* Join the clients; sum their counts into `sum` and every 202 id into a
 * malloc'd array (`*ids`, `*nids`). */
static void join_clients(struct crowd *cr, struct client *sum, uint64_t **ids,
                         size_t *nids)
{
    size_t total = 0;
    for (size_t i = 0; i < cr->n; i++)
        total += cr->c[i].orders;
    memset(sum, 0, sizeof(*sum));
    *ids = calloc(total + 1, sizeof(uint64_t));
    ck_assert_ptr_nonnull(*ids);
    *nids = 0;
    for (size_t i = 0; i < cr->n; i++) {
        struct client *c = &cr->c[i];
        pthread_join(cr->t[i], NULL);
        sum->s202 += c->s202;
        sum->s503_full += c->s503_full;
        sum->s503_store += c->s503_store;
        sum->s504 += c->s504;
        sum->other += c->other;
        sum->io_errors += c->io_errors;
        if (c->other)
            memcpy(sum->last_other, c->last_other, sizeof(sum->last_other));
        memcpy(*ids + *nids, c->ids, c->nids * sizeof(uint64_t));
        *nids += c->nids;
        free(c->ids);
    }
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Poll `port`'s /stats until the shop-wide figures (refreshed every
 * ~250 ms) show at least `min_accepted` orders and an empty belt. */
static cJSON *wait_shop_idle(unsigned port, size_t min_accepted, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        cJSON *s = get_json_ok(port, "/stats");
        const cJSON *v = json_at(s, "shop.valid");
        if (cJSON_IsTrue(v) && jnum(s, "shop.belt") == 0 &&
            jnum(s, "shop.accepted") >= (double)min_accepted &&
            jnum(s, "shop.accepted") == jnum(s, "shop.processed"))
            return s;
        cJSON_Delete(s);
        ck_assert_msg(now_ms() < deadline,
                      "the shop's belt is not empty "
                      "after %d ms",
                      timeout_ms);
        backoff_ms(20);
    }
}

/* GET /orders/id on a keep-alive connection; returns the status code and
 * the order's status text in `st` (room for 16). */
static int get_order(struct http_conn *c, unsigned port, uint64_t id, char *st,
                     char *by, size_t bylen)
{
    char path[48];
    snprintf(path, sizeof(path), "/orders/%llu", (unsigned long long)id);
    if (c->fd < 0 && http_connect(c, port) != 0)
        return -1;
    struct http_resp r;
    if (http_roundtrip(c, "GET", path, NULL, NULL, 0, &r) != 0) {
        http_close(c);
        return -1;
    }
    int status = r.status;
    st[0] = '\0';
    if (by)
        by[0] = '\0';
    cJSON *j = resp_json(&r);
    if (j) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "status");
        if (cJSON_IsString(s))
            snprintf(st, 16, "%s", s->valuestring);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "processed_by");
        if (by && cJSON_IsString(b))
            snprintf(by, bylen, "%s", b->valuestring);
        cJSON_Delete(j);
    }
    http_resp_free(&r);
    return status;
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_redis_hot_product_three_instances)
{
    start_redis(false);
    char *cat = write_tmp(hot_catalog);
    const char *extra[] = {"--queue-capacity", "4096", "--workers", "2", NULL};
    struct shopd *s[3];
    unsigned ports[3];
    const char *names[] = {"i1", "i2", "i3"};
    for (int i = 0; i < 3; i++) {
        s[i] = start_instance(names[i], cat, extra);
        ports[i] = shopd_port(s[i]);
    }
    struct crowd cr;
    struct client sum;
    uint64_t *ids;
    size_t nids;
    start_clients(&cr, ports, 3, CLIENTS, HOT_ORDERS / CLIENTS,
                  "{\"product\":\"hot\",\"quantity\":1}", NULL);
    join_clients(&cr, &sum, &ids, &nids);
    ck_assert_msg(sum.other == 0 && sum.io_errors == 0,
                  "unexpected answers: %zu (%s), io errors %zu", sum.other,
                  sum.last_other, sum.io_errors);
    ck_assert_uint_eq(sum.s202, HOT_ORDERS);
    ck_assert_uint_eq(nids, HOT_ORDERS);

    cJSON *st = wait_shop_idle(ports[0], HOT_ORDERS, 30000);
    ck_assert_int_eq((int)jnum(st, "shop.fulfilled"), HOT_STOCK);
    ck_assert_int_eq((int)jnum(st, "shop.out_of_stock"),
                     HOT_ORDERS - HOT_STOCK);
    cJSON_Delete(st);

    /* Exactly 500 sold, never oversold, on every instance. */
    for (int i = 0; i < 3; i++) {
        cJSON *p = get_json_ok(ports[i], "/products/hot");
        ck_assert_int_eq((int)jnum(p, "stock"), 0);
        ck_assert_int_eq((int)jnum(p, "sold"), HOT_STOCK);
        cJSON_Delete(p);
    }
    /* Every 202'd id is found, final, on every instance; ids are unique;
     * and the orders landed on all three. */
    qsort(ids, nids, sizeof(*ids), cmp_id);
    for (size_t i = 1; i < nids; i++)
        ck_assert_msg(ids[i] != ids[i - 1], "order id %llu given twice",
                      (unsigned long long)ids[i]);
    size_t fulfilled = 0;
    size_t by_instance[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        struct http_conn c = {.fd = -1};
        for (size_t k = 0; k < nids; k++) {
            char status[16], by[64];
            int code = get_order(&c, ports[i], ids[k], status, by, sizeof(by));
            ck_assert_msg(code == 200, "order %llu on instance %d: %d",
                          (unsigned long long)ids[k], i, code);
            ck_assert_msg(strcmp(status, "queued") != 0,
                          "order %llu still queued",
                          (unsigned long long)ids[k]);
            if (i == 0) {
                fulfilled += strcmp(status, "fulfilled") == 0;
                for (int n = 0; n < 3; n++)
                    by_instance[n] += strcmp(by, names[n]) == 0;
            }
        }
        http_close(&c);
    }
    ck_assert_uint_eq(fulfilled, HOT_STOCK);
    for (int n = 0; n < 3; n++)
        ck_assert_msg(by_instance[n] > 0, "instance %s processed nothing",
                      names[n]);
    free(ids);
    for (int i = 0; i < 3; i++)
        shopd_destroy(s[i]);
    unlink(cat);
    free(cat);
}
END_TEST

START_TEST(test_redis_kill9_orders_finished_by_others)
{
    start_redis(false);
    char *cat = write_tmp(hot_catalog);
    /* A slow clerk: each worker holds one order for 200 ms. */
    const char *slow[] = {"--work-ms",    "200", "--workers", "2",
                          "--reclaim-ms", "500", NULL};
    struct shopd *a = start_instance("doomed", cat, slow);
    unsigned pa = shopd_port(a);
    struct http_conn c = {.fd = -1};
    ck_assert_int_eq(http_connect(&c, pa), 0);
    uint64_t ids[10];
    for (int i = 0; i < 10; i++)
        ids[i] = buy_ok(&c, "{\"product\":\"hot\",\"quantity\":1}");
    http_close(&c);
    /* Wait until its workers hold orders, then kill -9. */
    int64_t deadline = now_ms() + 5000;
    for (;;) {
        cJSON *st = get_json_ok(pa, "/stats");
        double held = jnum(st, "orders.in_flight");
        cJSON_Delete(st);
        if (held >= 1)
            break;
        ck_assert_msg(now_ms() < deadline, "no order in flight");
        backoff_ms(5);
    }
    shopd_signal(a, SIGKILL);
    ck_assert_int_ne(shopd_wait_exit(a, 5000), -1);
    int64_t killed = now_ms();

    /* Another instance finishes every order, the dead one's included,
     * within reclaim_ms + their processing + a margin. */
    const char *fast[] = {"--work-ms",    "10",  "--workers", "2",
                          "--reclaim-ms", "500", NULL};
    struct shopd *b = start_instance("survivor", cat, fast);
    unsigned pb = shopd_port(b);
    struct http_conn g = {.fd = -1};
    for (int i = 0; i < 10; i++) {
        char status[16], by[64];
        for (;;) {
            int code = get_order(&g, pb, ids[i], status, by, sizeof(by));
            ck_assert_int_eq(code, 200);
            if (strcmp(status, "queued") != 0)
                break;
            ck_assert_msg(now_ms() - killed < 500 + 5000,
                          "order %llu still queued %lld ms after the kill",
                          (unsigned long long)ids[i],
                          (long long)(now_ms() - killed));
            backoff_ms(10);
        }
    }
    http_close(&g);
    cJSON *st = wait_shop_idle(pb, 10, 5000);
    ck_assert_int_ge((int)jnum(st, "shop.reclaimed"), 1);
    ck_assert_int_eq((int)jnum(st, "shop.fulfilled"), 10);
    cJSON_Delete(st);
    cJSON *p = get_json_ok(pb, "/products/hot");
    ck_assert_int_eq((int)jnum(p, "stock"), HOT_STOCK - 10);
    ck_assert_int_eq((int)jnum(p, "sold"), 10);
    cJSON_Delete(p);
    shopd_destroy(b);
    shopd_destroy(a);
    unlink(cat);
    free(cat);
}
END_TEST

START_TEST(test_redis_outage_then_recovery_loses_no_202)
{
    start_redis(true); /* appendonly yes, appendfsync always */
    char *cat = write_tmp("{\"products\":[{\"sku\":\"cold\",\"name\":\"Cold\","
                          "\"price_cents\":5,\"stock\":100000000}]}");
    const char *extra[] = {"--queue-capacity", "100000", "--workers", "2",
                           "--reclaim-ms",     "1000",   NULL};
    struct shopd *s = start_instance("solo", cat, extra);
    unsigned port = shopd_port(s);

    /* Buy while Redis is killed mid-load. */
    _Atomic bool stop = false;
    struct crowd cr;
    start_clients(&cr, &port, 1, 4, 500000,
                  "{\"product\":\"cold\",\"quantity\":1}", &stop);
    int64_t deadline = now_ms() + 10000;
    for (;;) {
        cJSON *st = get_json_ok(port, "/stats");
        double acc = jnum(st, "orders.accepted");
        cJSON_Delete(st);
        if (acc >= 300)
            break;
        ck_assert_msg(now_ms() < deadline, "no load");
        backoff_ms(5);
    }
    redis_server_kill(&redis);

    /* POST /buy: 503 store_unavailable with Retry-After: 1. */
    struct http_resp r;
    deadline = now_ms() + 5000;
    for (;;) {
        static const char one[] = "{\"product\":\"cold\",\"quantity\":1}";
        ck_assert_int_eq(
            http_do(port, "POST", "/buy", NULL, one, sizeof(one) - 1, &r), 0);
        if (r.status == 503)
            break;
        ck_assert_msg(r.status == 202, "status %d: %s", r.status, r.body);
        ck_assert_msg(now_ms() < deadline, "still 202 without Redis");
        http_resp_free(&r);
    }
    expect_error(&r, 503, "store_unavailable");
    ck_assert_str_eq(http_header(&r, "Retry-After"), "1");
    http_resp_free(&r);
    /* /readyz 503, /healthz and /stats 200. */
    deadline = now_ms() + 5000;
    for (;;) {
        ck_assert_int_eq(http_do(port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
        int code = r.status;
        http_resp_free(&r);
        if (code == 503)
            break;
        ck_assert_msg(now_ms() < deadline, "/readyz still %d", code);
        backoff_ms(20);
    }
    ck_assert_int_eq(http_do(port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    cJSON *down = get_json_ok(port, "/stats");
    ck_assert(cJSON_IsFalse(json_at(down, "store.connected")));
    cJSON_Delete(down);
    ck_assert_int_eq(http_do(port, "GET", "/orders/1", NULL, NULL, 0, &r), 0);
    expect_error(&r, 503, "store_unavailable");
    http_resp_free(&r);

    /* Redis comes back on its append-only file: shopd recovers alone. */
    ck_assert_int_eq(redis_server_restart(&redis), 0);
    deadline = now_ms() + 10000;
    for (;;) {
        ck_assert_int_eq(http_do(port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
        int code = r.status;
        http_resp_free(&r);
        if (code == 200)
            break;
        ck_assert_msg(now_ms() < deadline, "/readyz still %d", code);
        backoff_ms(50);
    }
    /* The clients buy again, then stop. */
    cJSON *st0 = get_json_ok(port, "/stats");
    double before = jnum(st0, "orders.accepted");
    cJSON_Delete(st0);
    deadline = now_ms() + 10000;
    for (;;) {
        cJSON *st = get_json_ok(port, "/stats");
        double acc = jnum(st, "orders.accepted");
        cJSON_Delete(st);
        if (acc >= before + 200)
            break;
        ck_assert_msg(now_ms() < deadline, "no orders after the restart");
        backoff_ms(5);
    }
    atomic_store(&stop, true);
    struct client sum;
    uint64_t *ids;
    size_t nids;
    join_clients(&cr, &sum, &ids, &nids);
    ck_assert_msg(sum.other == 0, "unexpected: %s", sum.last_other);
    ck_assert_uint_gt(sum.s503_store, 0);
    ck_assert_uint_eq(sum.s202, nids);

    /* No 202 lost: each is found and final; stock adds up. */
    cJSON *idle = wait_shop_idle(port, nids, 20000);
    size_t accepted = (size_t)jnum(idle, "shop.accepted");
    char *txt = cJSON_PrintUnformatted(idle);
    ck_assert_msg(accepted >= nids, "%zu accepted, %zu 202s: %s", accepted,
                  nids, txt);
    free(txt);
    cJSON_Delete(idle);
    struct http_conn g = {.fd = -1};
    for (size_t i = 0; i < nids; i++) {
        char status[16];
        ck_assert_int_eq(get_order(&g, port, ids[i], status, NULL, 0), 200);
        ck_assert_str_eq(status, "fulfilled");
    }
    http_close(&g);
    cJSON *p = get_json_ok(port, "/products/cold");
    ck_assert_int_eq((int)(jnum(p, "stock") + jnum(p, "sold")), 100000000);
    ck_assert_int_eq((int)jnum(p, "sold"), (int)accepted);
    cJSON_Delete(p);
    free(ids);
    shopd_destroy(s);
    unlink(cat);
    free(cat);
}
END_TEST

/* ---- clients that name every order, to find it again ------------------ */

#define TAGGED_MAX 20000

/* One client: order i names customer "k<me>-<i>"; `code[i]` is what it
 * got (the HTTP status, -1 for an I/O error), `id[i]` the id of a 202. */
struct tagged {
    const unsigned *ports;
    size_t nports;
    unsigned me;
    _Atomic bool *stop;
    int *code;
    uint64_t *id;
    size_t n;
    _Atomic size_t sold; /* 202s so far, for the test thread to watch */
};

static void *tagged_main(void *arg)
{
    struct tagged *t = arg;
    struct http_conn conn[3] = {{.fd = -1}, {.fd = -1}, {.fd = -1}};

    for (size_t i = 0; i < TAGGED_MAX && !atomic_load(t->stop); i++) {
        struct http_conn *cn = &conn[(t->me + i) % t->nports];
        unsigned port = t->ports[(t->me + i) % t->nports];
        char body[128];
        snprintf(
            body, sizeof(body),
            "{\"product\":\"cold\",\"quantity\":1,\"customer\":\"k%u-%zu\"}",
            t->me, i);
        struct http_resp r;
        t->code[i] = -1;
        t->id[i] = 0;
        t->n = i + 1;
        if ((cn->fd < 0 && http_connect(cn, port) != 0) ||
            http_roundtrip(cn, "POST", "/buy", NULL, body, strlen(body), &r) !=
                0) {
            http_close(cn);
            backoff_ms(5);
            continue;
        }
        t->code[i] = r.status;
        if (r.status == 202)
            atomic_fetch_add_explicit(&t->sold, 1, memory_order_relaxed);
        const char *p = strstr(r.body, "\"order_id\":");
        if (r.status == 202 && p)
            t->id[i] = strtoull(p + 11, NULL, 10);
        if (http_says_close(&r))
            http_close(cn);
        http_resp_free(&r);
        if (r.status != 202)
            backoff_ms(5); /* the store is away: do not spin */
    }
    for (size_t k = 0; k < 3; k++)
        http_close(&conn[k]);
    return NULL;
}

#define TAGGED_CLIENTS 4

struct tagged_crowd {
    pthread_t th[TAGGED_CLIENTS];
    struct tagged t[TAGGED_CLIENTS];
    _Atomic bool stop;
};

static void tagged_start(struct tagged_crowd *cr, const unsigned *ports,
                         size_t nports)
{
    memset(cr, 0, sizeof(*cr));
    atomic_init(&cr->stop, false);
    for (unsigned i = 0; i < TAGGED_CLIENTS; i++) {
        struct tagged *t = &cr->t[i];
        t->ports = ports;
        t->nports = nports;
        t->me = i;
        t->stop = &cr->stop;
        atomic_init(&t->sold, 0);
        t->code = calloc(TAGGED_MAX, sizeof(int));
        t->id = calloc(TAGGED_MAX, sizeof(uint64_t));
        ck_assert(t->code && t->id);
        ck_assert_int_eq(pthread_create(&cr->th[i], NULL, tagged_main, t), 0);
    }
}

static void tagged_join(struct tagged_crowd *cr)
{
    atomic_store(&cr->stop, true);
    for (unsigned i = 0; i < TAGGED_CLIENTS; i++)
        pthread_join(cr->th[i], NULL);
}

static void tagged_free(struct tagged_crowd *cr)
{
    for (unsigned i = 0; i < TAGGED_CLIENTS; i++) {
        free(cr->t[i].code);
        free(cr->t[i].id);
    }
}

/* How many 202s the running crowd got so far. */
static size_t live_sales(struct tagged_crowd *cr)
{
    size_t n = 0;
    for (unsigned i = 0; i < TAGGED_CLIENTS; i++)
        n += atomic_load_explicit(&cr->t[i].sold, memory_order_relaxed);
    return n;
}

/* How many answers of `status` the crowd got (after tagged_join()). */
static size_t tagged_count(const struct tagged_crowd *cr, int status)
{
    size_t n = 0;
    for (unsigned i = 0; i < TAGGED_CLIENTS; i++)
        for (size_t k = 0; k < cr->t[i].n; k++)
            n += cr->t[i].code[k] == status;
    return n;
}

/* Every 202 id went to one order only. */
static void tagged_ids_unique(const struct tagged_crowd *cr)
{
    uint64_t *all = calloc(TAGGED_CLIENTS * TAGGED_MAX, sizeof(uint64_t));
    size_t n = 0;
    ck_assert_ptr_nonnull(all);
    for (unsigned i = 0; i < TAGGED_CLIENTS; i++)
        for (size_t k = 0; k < cr->t[i].n; k++)
            if (cr->t[i].code[k] == 202)
                all[n++] = cr->t[i].id[k];
    qsort(all, n, sizeof(*all), cmp_id);
    for (size_t k = 1; k < n; k++)
        ck_assert_msg(all[k] != all[k - 1], "order id %llu given twice",
                      (unsigned long long)all[k]);
    free(all);
}

/* The order of customer "k<me>-<i>" in an order's JSON, or false. */
static bool customer_of(const cJSON *o, unsigned *me, size_t *i)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "customer");
    return cJSON_IsString(c) && sscanf(c->valuestring, "k%u-%zu", me, i) == 2 &&
           *me < TAGGED_CLIENTS && *i < TAGGED_MAX;
}

/*
 * Read every order 1..last on `port` and hold them against what the
 * clients were told: an order exists only for a 202 (same id) or a 504,
 * each customer's at most once; every 202 is found. Returns how many
 * orders were found.
 */
static size_t tagged_audit(const struct tagged_crowd *cr, unsigned port,
                           uint64_t last)
{
    struct http_conn c = {.fd = -1};
    size_t found = 0, f202 = 0;
    unsigned char *seen = calloc(TAGGED_CLIENTS * TAGGED_MAX, 1);
    ck_assert_ptr_nonnull(seen);
    for (uint64_t id = 1; id <= last; id++) {
        char path[48];
        snprintf(path, sizeof(path), "/orders/%llu", (unsigned long long)id);
        if (c.fd < 0)
            ck_assert_int_eq(http_connect(&c, port), 0);
        struct http_resp r;
        ck_assert_int_eq(http_roundtrip(&c, "GET", path, NULL, NULL, 0, &r), 0);
        ck_assert_msg(r.status == 200, "order %llu: %d %s",
                      (unsigned long long)id, r.status, r.body);
        cJSON *o = resp_json(&r);
        unsigned me;
        size_t i;
        if (customer_of(o, &me, &i)) {
            const struct tagged *t = &cr->t[me];
            int code = i < t->n ? t->code[i] : 0;
            ck_assert_msg(code == 202 || code == 504 || code == -1,
                          "order %llu of customer k%u-%zu, who got %d",
                          (unsigned long long)id, me, i, code);
            ck_assert_msg(code != 202 || t->id[i] == id,
                          "customer k%u-%zu got id %llu, has order %llu", me, i,
                          (unsigned long long)t->id[i], (unsigned long long)id);
            ck_assert_msg(!seen[me * TAGGED_MAX + i],
                          "customer k%u-%zu has two orders", me, i);
            seen[me * TAGGED_MAX + i] = 1;
            f202 += code == 202;
            found++;
        }
        cJSON_Delete(o);
        if (http_says_close(&r))
            http_close(&c);
        http_resp_free(&r);
    }
    http_close(&c);
    free(seen);
    ck_assert_uint_eq(f202, tagged_count(cr, 202));
    return found;
}

/* The highest id any client got a 202 for. */
static uint64_t tagged_max_id(const struct tagged_crowd *cr)
{
    uint64_t m = 0;
    for (unsigned i = 0; i < TAGGED_CLIENTS; i++)
        for (size_t k = 0; k < cr->t[i].n; k++)
            if (cr->t[i].code[k] == 202 && cr->t[i].id[k] > m)
                m = cr->t[i].id[k];
    return m;
}

/* After the clients stopped: wait until the shop-wide figures (a cached
 * copy, refreshed every ~250 ms) include every 202 and the belt is
 * empty; return them. */
static cJSON *tagged_idle(const struct tagged_crowd *cr, unsigned port)
{
    uint64_t top = tagged_max_id(cr);
    int64_t deadline = now_ms() + e2e_slow_ms(20000);
    for (;;) {
        cJSON *st = wait_shop_idle(port, 1, 20000);
        if (jnum(st, "shop.last_order_id") >= (double)top)
            return st;
        cJSON_Delete(st);
        ck_assert_msg(now_ms() < deadline, "figures never showed id %llu",
                      (unsigned long long)top);
        backoff_ms(50);
    }
}

/* Poll until `path` on `port` answers `status`, for up to `ms`. */
static void wait_status(unsigned port, const char *method, const char *path,
                        const char *body, int status, int ms)
{
    int64_t deadline = now_ms() + e2e_slow_ms(ms);
    for (;;) {
        struct http_resp r;
        ck_assert_int_eq(http_do(port, method, path, NULL, body,
                                 body ? strlen(body) : 0, &r),
                         0);
        int got = r.status;
        http_resp_free(&r);
        if (got == status)
            return;
        ck_assert_msg(now_ms() < deadline, "%s %s: still %d, not %d", method,
                      path, got, status);
        backoff_ms(20);
    }
}

/* Wait until the running clients got `n` more 202s than `from`. */
static void wait_sales(struct tagged_crowd *cr, size_t from, size_t n)
{
    int64_t deadline = now_ms() + e2e_slow_ms(10000);
    while (live_sales(cr) < from + n) {
        ck_assert_msg(now_ms() < deadline, "no sales");
        backoff_ms(10);
    }
}

static const char cold_catalog[] =
    "{\"products\":[{\"sku\":\"cold\",\"name\":\"Cold\",\"price_cents\":5,"
    "\"stock\":100000000}]}";
static const char one_cold[] = "{\"product\":\"cold\",\"quantity\":1}";

/* FLUSHALL under load on 3 instances: they refuse, never re-seed, never
 * give an id twice, never show another customer's order. */
START_TEST(test_redis_flushall_under_load_is_never_a_new_shop)
{
    start_redis(false);
    char *cat = write_tmp(cold_catalog);
    const char *extra[] = {"--workers", "2", NULL};
    struct shopd *s[3];
    unsigned ports[3];
    const char *names[] = {"f1", "f2", "f3"};
    for (int i = 0; i < 3; i++) {
        s[i] = start_instance(names[i], cat, extra);
        ports[i] = shopd_port(s[i]);
    }
    struct tagged_crowd cr;
    tagged_start(&cr, ports, 3);
    wait_sales(&cr, 0, 300);
    char reply[64];
    ck_assert_int_eq(
        redis_server_command(&redis, "FLUSHALL", reply, sizeof(reply)), 0);
    /* Every instance: 503 store_unavailable to /buy, /readyz 503. */
    for (int i = 0; i < 3; i++) {
        wait_status(ports[i], "POST", "/buy", one_cold, 503, 5000);
        wait_status(ports[i], "GET", "/readyz", NULL, 503, 5000);
    }
    size_t before = live_sales(&cr);
    backoff_ms(500); /* the clients keep buying */
    tagged_join(&cr);
    /* No 202 after the flush (a client may have been counting one it got
     * just before). */
    ck_assert_uint_le(tagged_count(&cr, 202), before + TAGGED_CLIENTS);
    ck_assert_uint_gt(tagged_count(&cr, 503), 0);
    tagged_ids_unique(&cr);
    /* Nothing was written after the flush: no new shop, nothing resold. */
    ck_assert_int_eq(
        redis_server_command(&redis, "DBSIZE", reply, sizeof(reply)), 0);
    ck_assert_str_eq(reply, ":0");
    /* An order polled by id is not another customer's: it is 503. */
    for (int i = 0; i < 3; i++) {
        struct http_resp r;
        ck_assert_int_eq(
            http_do(ports[i], "GET", "/orders/1", NULL, NULL, 0, &r), 0);
        expect_error(&r, 503, "store_unavailable");
        http_resp_free(&r);
        ck_assert(shopd_running(s[i]));
    }
    tagged_free(&cr);
    for (int i = 0; i < 3; i++)
        shopd_destroy(s[i]);
    unlink(cat);
    free(cat);
}
END_TEST

/* Redis restarted empty under load: 503 meanwhile, no seed; restarted on
 * its files: the same shop, every 202 found, no 503 taken. */
START_TEST(test_redis_restarted_empty_then_back_under_load)
{
    start_redis(true);
    char *cat = write_tmp(cold_catalog);
    const char *extra[] = {"--workers", "2", NULL};
    struct shopd *s[2];
    unsigned ports[2];
    s[0] = start_instance("e1", cat, extra);
    s[1] = start_instance("e2", cat, extra);
    ports[0] = shopd_port(s[0]);
    ports[1] = shopd_port(s[1]);
    struct tagged_crowd cr;
    tagged_start(&cr, ports, 2);
    wait_sales(&cr, 0, 200);

    char aof[256], aside[256], reply[64];
    snprintf(aof, sizeof(aof), "%s/appendonlydir", redis.dir);
    snprintf(aside, sizeof(aside), "%s/aside", redis.dir);
    redis_server_stop(&redis);
    ck_assert_int_eq(rename(aof, aside), 0);
    ck_assert_int_eq(redis_server_restart(&redis), 0);
    for (int i = 0; i < 2; i++) {
        wait_status(ports[i], "POST", "/buy", one_cold, 503, 5000);
        wait_status(ports[i], "GET", "/readyz", NULL, 503, 5000);
        struct http_resp r;
        ck_assert_int_eq(
            http_do(ports[i], "GET", "/orders/1", NULL, NULL, 0, &r), 0);
        expect_error(&r, 503, "store_unavailable");
        http_resp_free(&r);
    }
    backoff_ms(300);
    ck_assert_int_eq(
        redis_server_command(&redis, "DBSIZE", reply, sizeof(reply)), 0);
    ck_assert_str_eq(reply, ":0"); /* nobody seeded a new shop */

    /* The shop is back: the instances serve it again by themselves. */
    redis_server_stop(&redis);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mv '%s' '%s'", aof, aside, aof);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(redis_server_restart(&redis), 0);
    for (int i = 0; i < 2; i++)
        wait_status(ports[i], "GET", "/readyz", NULL, 200, 10000);
    wait_sales(&cr, live_sales(&cr), 100);
    tagged_join(&cr);
    ck_assert_uint_gt(tagged_count(&cr, 503), 0);
    tagged_ids_unique(&cr);
    cJSON *idle = tagged_idle(&cr, ports[0]);
    uint64_t last = (uint64_t)jnum(idle, "shop.last_order_id");
    size_t accepted = (size_t)jnum(idle, "shop.accepted");
    cJSON_Delete(idle);
    size_t found = tagged_audit(&cr, ports[1], last);
    ck_assert_uint_eq(found, accepted);
    cJSON *p = get_json_ok(ports[0], "/products/cold");
    ck_assert_int_eq((int)(jnum(p, "stock") + jnum(p, "sold")), 100000000);
    ck_assert_int_eq((int)jnum(p, "sold"), (int)accepted);
    cJSON_Delete(p);
    tagged_free(&cr);
    for (int i = 0; i < 2; i++)
        shopd_destroy(s[i]);
    unlink(cat);
    free(cat);
}
END_TEST

/* Redis stalled (SIGSTOP) past the 5 s I/O timeout while keyless clients
 * buy: never a false 503; every 202 and 504 order is found afterwards. */
START_TEST(test_redis_stall_is_never_a_false_503)
{
    start_redis(true);
    char *cat = write_tmp(cold_catalog);
    const char *extra[] = {"--workers", "2", NULL};
    struct shopd *s = start_instance("st", cat, extra);
    unsigned port = shopd_port(s);
    struct tagged_crowd cr;
    tagged_start(&cr, &port, 1);
    wait_sales(&cr, 0, 200);
    /* 6.5 s by default: past the 5 s I/O timeout, within the 10 s a
     * request waits; SHOPD_E2E_STALL_MS=12000 shows 504s too. */
    const char *env = getenv("SHOPD_E2E_STALL_MS");
    long stall = env ? strtol(env, NULL, 10) : 6500;
    ck_assert_int_eq(kill(redis.pid, SIGSTOP), 0);
    backoff_ms(stall > 0 && stall < 60000 ? (int)stall : 6500);
    ck_assert_int_eq(kill(redis.pid, SIGCONT), 0);
    wait_sales(&cr, live_sales(&cr), 200);
    tagged_join(&cr);
    cJSON *idle = tagged_idle(&cr, port);
    uint64_t last = (uint64_t)jnum(idle, "shop.last_order_id");
    size_t accepted = (size_t)jnum(idle, "shop.accepted");
    cJSON_Delete(idle);
    size_t found = tagged_audit(&cr, port, last);
    ck_assert_uint_eq(found, accepted);
    fprintf(stderr,
            "stall: %zu orders, %zu x 202, %zu x 503, %zu x 504, 0 false "
            "503s\n",
            found, tagged_count(&cr, 202), tagged_count(&cr, 503),
            tagged_count(&cr, 504));
    cJSON *p = get_json_ok(port, "/products/cold");
    ck_assert_int_eq((int)(jnum(p, "stock") + jnum(p, "sold")), 100000000);
    ck_assert_int_eq((int)jnum(p, "sold"), (int)accepted);
    cJSON_Delete(p);
    tagged_free(&cr);
    shopd_destroy(s);
    unlink(cat);
    free(cat);
}
END_TEST

/* A Redis that does not answer yet: one line at once says shopd waits. */
START_TEST(test_redis_wait_at_start_is_said_at_once)
{
    char path[256];
    snprintf(path, sizeof(path), "unix:///nonexistent-%d/redis.sock",
             (int)getpid());
    const char *args[] = {"--bind",  "127.0.0.1", "--port", "0",
                          "--store", path,        NULL};
    int64_t t0 = now_ms();
    struct shopd *s = shopd_spawn(args, NULL, true);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(shopd_wait_output(s, "waiting up to 10 s", 3000),
                  "no wait line");
    ck_assert_msg(now_ms() - t0 < e2e_slow_ms(3000), "the wait line came late");
    char *err = shopd_stderr(s);
    ck_assert_msg(strstr(err, path) != NULL, "%s", err);
    free(err);
    shopd_destroy(s);
}
END_TEST

/* The instance drains and exits 0 (under valgrind: with no error or leak);
 * otherwise the failure shows what it said. */
static void exits_cleanly(struct shopd *s)
{
    int st = shopd_wait_exit(s, 10000);
    if (st != 0) {
        char *err = shopd_stderr(s);
        ck_abort_msg("exit status %d; stderr: %.1500s", st, err);
    }
}

START_TEST(test_redis_restart_of_every_instance_keeps_the_shop)
{
    start_redis(false);
    char *cat = write_tmp(hot_catalog);
    struct shopd *a = start_instance("a", cat, NULL);
    struct shopd *b = start_instance("b", cat, NULL);
    uint64_t first =
        buy_one_ok(shopd_port(a), "{\"product\":\"hot\",\"quantity\":7}");
    uint64_t second =
        buy_one_ok(shopd_port(b), "{\"product\":\"hot\",\"quantity\":3}");
    cJSON *st = wait_shop_idle(shopd_port(a), 2, 5000);
    cJSON_Delete(st);
    shopd_signal(a, SIGTERM);
    shopd_signal(b, SIGTERM);
    exits_cleanly(a);
    exits_cleanly(b);
    shopd_destroy(a);
    shopd_destroy(b);

    /* Both start again: the stock sold stays sold, ids carry on, the old
     * orders are still found. */
    a = start_instance("a", cat, NULL);
    b = start_instance("b", cat, NULL);
    ck_assert(shopd_wait_output(a, "loaded", 1000));
    cJSON *p = get_json_ok(shopd_port(b), "/products/hot");
    ck_assert_int_eq((int)jnum(p, "stock"), HOT_STOCK - 10);
    ck_assert_int_eq((int)jnum(p, "sold"), 10);
    cJSON_Delete(p);
    cJSON *o = get_json_ok(shopd_port(a), "/orders/2");
    ck_assert_str_eq(jstr(o, "status"), "fulfilled");
    ck_assert_str_eq(jstr(o, "accepted_by"), "b");
    cJSON_Delete(o);
    uint64_t third =
        buy_one_ok(shopd_port(b), "{\"product\":\"hot\",\"quantity\":1}");
    ck_assert_uint_eq(first, 1);
    ck_assert_uint_eq(second, 2);
    ck_assert_uint_eq(third, 3);
    shopd_destroy(a);
    shopd_destroy(b);
    unlink(cat);
    free(cat);
}
END_TEST

/* /stats on any instance shows every order answered before it was asked:
 * the shop-wide figures are read afresh for it, not from a copy up to
 * 250 ms old (a client that just got its 202s, or saw its orders final,
 * reads them back at once). */
START_TEST(test_redis_stats_show_every_answered_order)
{
    start_redis(false);
    char *cat = write_tmp(hot_catalog);
    struct shopd *a = start_instance("sa", cat, NULL);
    struct shopd *b = start_instance("sb", cat, NULL);
    unsigned pa = shopd_port(a), pb = shopd_port(b);
    /* Rounds, so that some land right after a periodic refresh. */
    for (int round = 1; round <= 5; round++) {
        uint64_t id = 0;
        for (int i = 0; i < 4; i++)
            id = buy_one_ok(pa, "{\"product\":\"hot\",\"quantity\":1}");
        cJSON *st = get_json_ok(pb, "/stats");
        ck_assert_int_eq((int)jnum(st, "shop.accepted"), 4 * round);
        ck_assert_int_eq((int)jnum(st, "shop.last_order_id"), (int)id);
        cJSON_Delete(st);
        for (uint64_t k = id - 3; k <= id; k++)
            cJSON_Delete(wait_order_final_ok(pa, k, 5000));
        st = get_json_ok(pb, "/stats");
        ck_assert_int_eq((int)jnum(st, "shop.processed"), 4 * round);
        ck_assert_int_eq((int)jnum(st, "shop.belt"), 0);
        ck_assert_int_eq((int)jnum(st, "inventory.hot.sold"), 4 * round);
        ck_assert_int_eq((int)jnum(st, "inventory.hot.stock"),
                         HOT_STOCK - 4 * round);
        cJSON_Delete(st);
    }
    shopd_destroy(a);
    shopd_destroy(b);
    unlink(cat);
    free(cat);
}
END_TEST

/* A catalog of 100,000 products on Redis: seeded, then loaded again by a
 * restart, in seconds (matching the seeded SKUs to the catalog was
 * O(n^2): 30 s), and /stats stays quick and small (it reads the first
 * 1000 products' numbers, not 100,000). A slow run (valgrind,
 * sanitizers) uses 20,000 products, bounds times E2E_SLOW. */
START_TEST(test_redis_large_catalog)
{
    start_redis(false);
    int slow = e2e_slow();
    size_t n = slow > 1 ? 20000 : 100000;
    char *json = catalog_json_of(n);
    char *cat = write_tmp(json);
    free(json);
    for (int life = 0; life < 2; life++) {
        int64_t t0 = now_ms();
        struct shopd *s = start_instance("big", cat, NULL);
        int64_t took = now_ms() - t0;
        printf("e2e_redis: %zu products: listening after %lld ms (%s)\n", n,
               (long long)took, life ? "loaded" : "seeded");
        ck_assert_msg(took < 10000 * slow, "%zu products took %lld ms", n,
                      (long long)took);
        unsigned port = shopd_port(s);
        char last[80];
        snprintf(last, sizeof(last), "{\"product\":\"p%06zu\",\"quantity\":1}",
                 n - 1);
        uint64_t id = buy_one_ok(port, last);
        cJSON_Delete(wait_order_final_ok(port, id, 5000));
        snprintf(last, sizeof(last), "/products/p%06zu", n - 1);
        cJSON *p = get_json_ok(port, last);
        ck_assert_int_eq((int)jnum(p, "sold"), life + 1);
        cJSON_Delete(p);
        struct http_resp r;
        t0 = now_ms();
        ck_assert_int_eq(http_do(port, "GET", "/stats", NULL, NULL, 0, &r), 0);
        took = now_ms() - t0;
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(took < 1000 * slow, "/stats took %lld ms",
                      (long long)took);
        ck_assert_msg(r.body_len < 256 * 1024, "/stats is %zu bytes",
                      r.body_len);
        cJSON *st = resp_json(&r);
        ck_assert(jnum(st, "inventory_total") == (double)n);
        ck_assert_int_eq((int)jnum(st, "shop.fulfilled"), life + 1);
        cJSON_Delete(st);
        http_resp_free(&r);
        shopd_destroy(s);
    }
    unlink(cat);
    free(cat);
}
END_TEST

/* An Idempotency-Key lives in Redis: every instance sees it. */
START_TEST(test_redis_idempotency_key_on_every_instance)
{
    start_redis(false);
    char *cat = write_tmp(hot_catalog);
    struct shopd *a = start_instance("ka", cat, NULL);
    struct shopd *b = start_instance("kb", cat, NULL);
    static const char body[] = "{\"product\":\"hot\",\"quantity\":2}";
    static const char other[] = "{\"product\":\"hot\",\"quantity\":3}";
    const char *key = "Idempotency-Key: order-77\r\n";
    struct http_resp r;
    ck_assert_int_eq(
        http_do(shopd_port(a), "POST", "/buy", key, body, sizeof(body) - 1, &r),
        0);
    ck_assert_int_eq(r.status, 202);
    char first[128];
    snprintf(first, sizeof(first), "%s", r.body);
    http_resp_free(&r);
    ck_assert_int_eq(
        http_do(shopd_port(b), "POST", "/buy", key, body, sizeof(body) - 1, &r),
        0);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(r.body, first);
    ck_assert_str_eq(http_header(&r, "Idempotent-Replayed"), "true");
    http_resp_free(&r);
    ck_assert_int_eq(http_do(shopd_port(b), "POST", "/buy", key, other,
                             sizeof(other) - 1, &r),
                     0);
    expect_error(&r, 422, "idempotency_key_reused");
    http_resp_free(&r);
    /* One order, not two. */
    cJSON *st = wait_shop_idle(shopd_port(b), 1, 5000);
    ck_assert_int_eq((int)jnum(st, "shop.accepted"), 1);
    cJSON_Delete(st);
    shopd_destroy(a);
    shopd_destroy(b);
    unlink(cat);
    free(cat);
}
END_TEST

START_TEST(test_redis_bad_store_exits_2)
{
    static const char *const bad[] = {"redis://",           "redis://host:0",
                                      "redis://host:99999", "unix://",
                                      "rediss://host",      "redis://host/x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *args[] = {"--store", bad[i], NULL};
        char *err = NULL;
        int st = shopd_run(args, NULL, 10000, NULL, &err);
        expect_exit_code(st, 2, bad[i], err);
        ck_assert_msg(strstr(err, "store") != NULL, "%s", err);
        free(err);
    }
}
END_TEST

/* Heavier (make e2e-redis-heavy): the start-up retry takes 10 s. */
START_TEST(test_redis_unreachable_at_start_exits_1)
{
    char path[256];
    snprintf(path, sizeof(path), "unix:///nonexistent-%d/redis.sock",
             (int)getpid());
    const char *args[] = {"--port", "0", "--store", path, NULL};
    char *err = NULL;
    int64_t t0 = now_ms();
    int st = shopd_run(args, NULL, 30000, NULL, &err);
    int64_t took = now_ms() - t0;
    expect_exit_code(st, 1, "Redis unreachable at start", err);
    ck_assert_msg(took >= 9000 && took < 20000, "gave up after %lld ms",
                  (long long)took);
    ck_assert_msg(strstr(err, path) != NULL, "%s", err);
    /* Two lines: the wait, at once, and the reason it gave up. */
    size_t lines = 0;
    for (const char *p = err; *p; p++)
        lines += *p == '\n';
    ck_assert_msg(lines == 2, "%zu lines: %s", lines, err);
    ck_assert_msg(strstr(err, "waiting up to 10 s") != NULL, "%s", err);
    free(err);
}
END_TEST

/* A Redis that comes up during the 10 s is used. */
START_TEST(test_redis_late_redis_is_waited_for)
{
    start_redis(false);
    redis_server_stop(&redis);
    char *cat = write_tmp(hot_catalog);
    const char *args[] = {"--bind",    "127.0.0.1", "--port",     "0",
                          "--store",   redis.url,   "--instance", "late",
                          "--catalog", cat,         NULL};
    struct shopd *s = shopd_spawn(args, NULL, true);
    ck_assert_ptr_nonnull(s);
    backoff_ms(2000);
    ck_assert(shopd_running(s));
    ck_assert_int_eq(redis_server_restart(&redis), 0);
    ck_assert_msg(shopd_wait_output(s, "listening on", 15000),
                  "shopd did not start once Redis was up");
    shopd_destroy(s);
    unlink(cat);
    free(cat);
}
END_TEST

Suite *e2e_redis_suite(void)
{
    Suite *s = suite_create("e2e_redis");
    TCase *tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_redis_hot_product_three_instances);
    tcase_add_test(tc, test_redis_kill9_orders_finished_by_others);
    tcase_add_test(tc, test_redis_outage_then_recovery_loses_no_202);
    tcase_add_test(tc, test_redis_restart_of_every_instance_keeps_the_shop);
    tcase_add_test(tc, test_redis_idempotency_key_on_every_instance);
    tcase_add_test(tc, test_redis_stats_show_every_answered_order);
    tcase_add_test(tc, test_redis_large_catalog);
    tcase_add_test(tc, test_redis_bad_store_exits_2);
    tcase_add_test(tc, test_redis_flushall_under_load_is_never_a_new_shop);
    tcase_add_test(tc, test_redis_restarted_empty_then_back_under_load);
    tcase_add_test(tc, test_redis_stall_is_never_a_false_503);
    tcase_add_test(tc, test_redis_wait_at_start_is_said_at_once);
    suite_add_tcase(s, tc);
    /* The slow ones only when asked (make e2e-redis-heavy). */
    const char *heavy = getenv("SHOPD_E2E_HEAVY");
    if (heavy != NULL && strcmp(heavy, "1") == 0) {
        TCase *slow = tcase_create("redis_heavy");
        tcase_add_checked_fixture(slow, NULL, teardown);
        tcase_set_timeout(slow, 120);
        tcase_add_test(slow, test_redis_unreachable_at_start_exits_1);
        tcase_add_test(slow, test_redis_late_redis_is_waited_for);
        suite_add_tcase(s, slow);
    }
    return s;
}
