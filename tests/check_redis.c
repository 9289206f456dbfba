/*
 * check_redis.c - Check suite of the Redis store (store/redis.c) against a
 * real redis-server that each test starts itself on a unix socket in a
 * temporary directory (tests/lib/redis_harness.c) and stops by PID.
 *
 * Several struct store over one Redis stand for several shopd instances:
 * each has its own instance name and its own connections, as separate
 * processes would. Threads only record what they saw; the test thread
 * asserts after joining them.
 */
#include "store/store.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>

#include "tests/lib/redis_harness.h"
#include "tests/suites.h"

static const struct store_product catalog[] = {
    {.sku = "apple",
     .name = "Apple",
     .price_cents = 50,
     .initial = 10,
     .stock = 10},
    {.sku = "pear",
     .name = "Pear",
     .price_cents = 40,
     .initial = 0,
     .stock = 0},
};
#define NCATALOG (sizeof(catalog) / sizeof(catalog[0]))

static struct redis_server server;
static size_t history; /* order_history of the stores a test opens, 0 =
                          the default */

/* Start a Redis for this test (with the append-only file if `aof`). */
static void start_redis(bool aof)
{
    /* hiredis writes with write(2): a Redis that went away must give
     * EPIPE, not kill the process (shopd's main ignores SIGPIPE too). */
    signal(SIGPIPE, SIG_IGN);
    int rc = redis_server_start(&server, aof);
    ck_assert_msg(rc == 0, "redis-server did not start: %s", strerror(-rc));
}

static void stop_redis(void)
{
    redis_server_destroy(&server);
}

static struct store *open_store_opts(const char *instance, unsigned reclaim_ms,
                                     size_t capacity, unsigned wait_ms,
                                     int *rc_out, char *err, size_t errlen)
{
    struct store_options opt = {
        .kind = STORE_REDIS,
        .path = server.sock,
        .instance = instance,
        .reclaim_ms = reclaim_ms,
        .idempotency_ttl = 60,
        .queue_capacity = capacity,
        .connect_wait_ms = wait_ms,
        .order_history = history,
    };
    struct store *st = NULL;
    int rc = store_open(&opt, &st, err, errlen);
    if (rc_out)
        *rc_out = rc;
    return st;
}

/* Open and load a store as instance `instance`. */
static struct store *open_store(const char *instance, unsigned reclaim_ms,
                                size_t capacity, struct store_state *state)
{
    char err[256] = "";
    int rc;
    struct store *st = open_store_opts(instance, reclaim_ms, capacity, 0, &rc,
                                       err, sizeof(err));
    ck_assert_msg(rc == 0 && st != NULL, "open: %s", err);
    struct store_state local;
    struct store_state *s = state ? state : &local;
    rc = store_load(st, catalog, NCATALOG, s, err, sizeof(err));
    ck_assert_msg(rc == 0, "load: %s", err);
    if (s == &local)
        store_state_free(&local);
    return st;
}

static struct store_accept make_accept(uint32_t product, uint32_t qty)
{
    struct store_accept a;

    memset(&a, 0, sizeof(a));
    a.order.product = product;
    a.order.quantity = qty;
    a.order.accepted_ns = 1700000000123456789LL;
    return a;
}

/* Accept `n` orders of `qty` units of product 0 in one commit; store
 * their ids in `ids`. */
static void accept_n(struct store *st, size_t n, uint32_t qty, uint64_t *ids)
{
    struct store_accept *acc = calloc(n, sizeof(*acc));
    ck_assert_ptr_nonnull(acc);
    for (size_t i = 0; i < n; i++)
        acc[i] = make_accept(0, qty);
    struct store_batch b = {.accepts = acc, .naccepts = n};
    ck_assert_int_eq(store_commit(st, &b), 0);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(acc[i].result, STORE_ACCEPTED);
        if (ids)
            ids[i] = acc[i].order.id;
    }
    free(acc);
}

/* Commit the results of `n` taken orders; returns how many applied. */
static size_t finish_orders(struct store *st, const struct store_order *o,
                            size_t n, struct store_result *res)
{
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        res[i].id = o[i].id;
        res[i].product = o[i].product;
        res[i].quantity = o[i].quantity;
        res[i].status = STORE_QUEUED;
        res[i].worker = 0;
        res[i].processed_ns = 1700000001000000000LL;
    }
    struct store_batch b = {.results = res, .nresults = n};
    ck_assert_int_eq(store_commit(st, &b), 0);
    size_t applied = 0;
    for (size_t i = 0; i < n; i++)
        applied += res[i].applied;
    return applied;
}

/* Take until `want` orders came or a take returned none. */
static size_t take_all(struct store *st, struct store_order *out, size_t want)
{
    size_t got = 0;
    while (got < want) {
        int n = store_take(st, 0, out + got, want - got, 200);
        ck_assert_int_ge(n, 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return got;
}

START_TEST(test_redis_seeds_once_and_adds_products)
{
    start_redis(false);
    struct store_state s1, s2;
    struct store *a = open_store("a", 5000, 100, &s1);
    ck_assert(s1.seeded);
    ck_assert_uint_eq(s1.nproducts, NCATALOG);
    ck_assert_uint_eq(s1.next_id, 1);
    ck_assert_str_eq(s1.products[0].sku, "apple");
    ck_assert_int_eq(s1.products[0].stock, 10);
    ck_assert_uint_eq(s1.nadded, 0);

    /* Sell 3 apples, then a second instance loads the same shop. */
    uint64_t id;
    accept_n(a, 1, 3, &id);
    struct store_order o[4];
    struct store_result r[4];
    ck_assert_uint_eq(take_all(a, o, 1), 1);
    ck_assert_uint_eq(finish_orders(a, o, 1, r), 1);
    ck_assert_int_eq(r[0].status, STORE_FULFILLED);

    char err[256];
    int rc;
    struct store *b = open_store_opts("b", 5000, 100, 0, &rc, err, sizeof(err));
    ck_assert_int_eq(rc, 0);
    struct store_product more[3];
    memcpy(more, catalog, sizeof(catalog));
    more[2] = catalog[0];
    snprintf(more[2].sku, sizeof(more[2].sku), "kiwi");
    more[2].initial = more[2].stock = 7;
    ck_assert_int_eq(store_load(b, more, 3, &s2, err, sizeof(err)), 0);
    ck_assert(!s2.seeded);
    ck_assert_uint_eq(s2.nproducts, 3);
    ck_assert_uint_eq(s2.nadded, 1);
    ck_assert_str_eq(s2.products[2].sku, "kiwi");
    ck_assert(s2.products[2].added);
    ck_assert(!s2.products[0].added);
    /* The shop keeps its stock: the catalog's 10 apples are not back. */
    ck_assert_int_eq(s2.products[0].stock, 7);
    ck_assert_int_eq(s2.products[0].sold, 3);
    ck_assert_uint_eq(s2.next_id, 2);
    store_state_free(&s1);
    store_state_free(&s2);
    store_close(a);
    store_close(b);
    stop_redis();
}
END_TEST

START_TEST(test_redis_ids_shared_and_orders_found_everywhere)
{
    start_redis(false);
    struct store *a = open_store("a", 5000, 100, NULL);
    struct store *b = open_store("b", 5000, 100, NULL);
    uint64_t ia[3], ib[3];
    accept_n(a, 3, 1, ia);
    accept_n(b, 3, 1, ib);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(ia[i], (uint64_t)i + 1);
        ck_assert_uint_eq(ib[i], (uint64_t)i + 4);
    }
    struct store_order o;
    ck_assert_int_eq(store_order_get(b, 2, &o), 0);
    ck_assert_uint_eq(o.id, 2);
    ck_assert_uint_eq(o.product, 0);
    ck_assert_int_eq(o.status, STORE_QUEUED);
    ck_assert_str_eq(o.accepted_by, "a");
    ck_assert_str_eq(o.processed_by, "");
    ck_assert_int_eq(o.accepted_ns, 1700000000123456789LL);
    ck_assert_int_eq(store_order_get(a, 99, &o), -ENOENT);

    /* b's workers take a's orders too: one shared belt. */
    struct store_order got[6];
    struct store_result res[6];
    size_t n = take_all(b, got, 6);
    ck_assert_uint_eq(n, 6);
    ck_assert_uint_eq(finish_orders(b, got, n, res), 6);
    ck_assert_int_eq(store_order_get(a, 1, &o), 0);
    ck_assert_int_eq(o.status, STORE_FULFILLED);
    ck_assert_str_eq(o.processed_by, "b");
    ck_assert_int_eq(o.processed_ns, 1700000001000000000LL);
    store_close(a);
    store_close(b);
    stop_redis();
}
END_TEST

START_TEST(test_redis_never_oversells_and_applies_once)
{
    start_redis(false);
    struct store_state s;
    struct store *a = open_store("a", 5000, 100, &s);
    store_state_free(&s);
    /* 10 apples, 6 orders of 2: 5 fulfilled, 1 out of stock. */
    accept_n(a, 6, 2, NULL);
    struct store_order o[6];
    struct store_result r[6];
    ck_assert_uint_eq(take_all(a, o, 6), 6);
    ck_assert_uint_eq(finish_orders(a, o, 6, r), 6);
    int ful = 0, oos = 0;
    for (int i = 0; i < 6; i++) {
        ful += r[i].status == STORE_FULFILLED;
        oos += r[i].status == STORE_OUT_OF_STOCK;
    }
    ck_assert_int_eq(ful, 5);
    ck_assert_int_eq(oos, 1);
    ck_assert_int_eq(r[5].status, STORE_OUT_OF_STOCK);

    /* A second delivery changes nothing and is counted. */
    ck_assert_uint_eq(finish_orders(a, o, 6, r), 0);
    ck_assert_int_eq(r[0].status, STORE_FULFILLED);
    ck_assert_int_eq(r[5].status, STORE_OUT_OF_STOCK);
    struct store_stats stats;
    store_stats(a, &stats);
    ck_assert_uint_eq(stats.duplicates, 6);
    ck_assert_int_eq(stats.kind, STORE_REDIS);
    ck_assert(strstr(stats.describe, "instance=a") != NULL);

    struct store *b = open_store("b", 5000, 100, &s);
    ck_assert_int_eq(s.products[0].stock, 0);
    ck_assert_int_eq(s.products[0].sold, 10);
    store_state_free(&s);
    store_close(a);
    store_close(b);
    stop_redis();
}
END_TEST

START_TEST(test_redis_belt_full_is_shop_wide)
{
    start_redis(false);
    struct store *a = open_store("a", 5000, 3, NULL);
    struct store *b = open_store("b", 5000, 3, NULL);
    accept_n(a, 2, 1, NULL);
    struct store_accept acc[2] = {make_accept(0, 1), make_accept(0, 1)};
    struct store_batch batch = {.accepts = acc, .naccepts = 2};
    ck_assert_int_eq(store_commit(b, &batch), 0);
    ck_assert_int_eq(acc[0].result, STORE_ACCEPTED);
    ck_assert_uint_eq(acc[0].order.id, 3);
    ck_assert_int_eq(acc[1].result, STORE_FULL);

    /* Finishing one frees its slot. */
    struct store_order o[1];
    struct store_result r[1];
    ck_assert_uint_eq(take_all(a, o, 1), 1);
    ck_assert_uint_eq(finish_orders(a, o, 1, r), 1);
    acc[1] = make_accept(0, 1);
    batch.accepts = &acc[1];
    batch.naccepts = 1;
    ck_assert_int_eq(store_commit(b, &batch), 0);
    ck_assert_int_eq(acc[1].result, STORE_ACCEPTED);
    store_close(a);
    store_close(b);
    stop_redis();
}
END_TEST

START_TEST(test_redis_idempotency_keys_shared)
{
    start_redis(false);
    struct store *a = open_store("a", 5000, 100, NULL);
    struct store *b = open_store("b", 5000, 100, NULL);
    struct store_idem key = {
        .endpoint = "buy",
        .key = "k-1xyz",
        .key_len = 3, /* "k-1": the key is not NUL-terminated */
        /* The canonical request, with bytes the framing must carry. */
        .fingerprint = "apple|1|\"a\nb\"\x00",
        .fingerprint_len = 14,
    };
    struct store_accept acc = make_accept(0, 1);
    acc.idem = &key;
    struct store_batch batch = {.accepts = &acc, .naccepts = 1};
    ck_assert_int_eq(store_commit(a, &batch), 0);
    ck_assert_int_eq(acc.result, STORE_ACCEPTED);
    uint64_t first = acc.order.id;

    /* The same key on another instance: the first outcome, no order. */
    struct store_answer ans;
    struct store_accept again = make_accept(0, 1);
    again.idem = &key;
    again.existing = &ans;
    batch.accepts = &again;
    ck_assert_int_eq(store_commit(b, &batch), 0);
    ck_assert_int_eq(again.result, STORE_KEY_EXISTS);
    ck_assert_uint_eq(ans.order_id, first);
    ck_assert_uint_eq(ans.fingerprint_len, key.fingerprint_len);
    ck_assert_mem_eq(ans.fingerprint, key.fingerprint, key.fingerprint_len);

    memset(&ans, 0, sizeof(ans));
    ck_assert_int_eq(store_idem_get(b, "buy", "k-1", 3, &ans), 0);
    ck_assert_uint_eq(ans.order_id, first);
    ck_assert_mem_eq(ans.fingerprint, key.fingerprint, key.fingerprint_len);
    ck_assert_int_eq(store_idem_get(b, "restock", "k-1", 3, &ans), -ENOENT);
    ck_assert_int_eq(store_idem_get(b, "buy", "k-2", 3, &ans), -ENOENT);

    /* Restock: applied once, replayed with the first figures. */
    struct store_idem rkey = key;
    rkey.endpoint = "restock";
    struct store_restock rt = {.product = 0, .quantity = 5, .idem = &rkey};
    struct store_batch rb = {.restocks = &rt, .nrestocks = 1};
    ck_assert_int_eq(store_commit(a, &rb), 0);
    ck_assert_int_eq(rt.result, STORE_ACCEPTED);
    ck_assert_int_eq(rt.stock, 15);
    ck_assert_int_eq(rt.restocked, 5);
    struct store_restock rt2 = {
        .product = 0, .quantity = 5, .idem = &rkey, .existing = &ans};
    rb.restocks = &rt2;
    ck_assert_int_eq(store_commit(b, &rb), 0);
    ck_assert_int_eq(rt2.result, STORE_KEY_EXISTS);
    ck_assert_uint_eq(ans.order_id, 0);
    ck_assert_int_eq(ans.stock, 15);
    ck_assert_int_eq(ans.restocked, 5);
    ck_assert_int_eq(ans.sold, rt.sold);
    struct store_state s;
    struct store *c = open_store("c", 5000, 100, &s);
    ck_assert_int_eq(s.products[0].stock, 15);
    ck_assert_int_eq(s.products[0].restocked, 5);
    store_state_free(&s);
    store_close(a);
    store_close(b);
    store_close(c);
    stop_redis();
}
END_TEST

START_TEST(test_redis_dead_instance_orders_reclaimed)
{
    start_redis(false);
    struct store *dead = open_store("dead", 100, 100, NULL);
    struct store *live = open_store("live", 100, 100, NULL);
    accept_n(dead, 4, 1, NULL);
    /* "dead" takes every order, then never finishes them. */
    struct store_order held[4];
    ck_assert_uint_eq(take_all(dead, held, 4), 4);
    struct store_order o[4];
    ck_assert_int_eq(store_take(live, 0, o, 4, 0), 0);

    /* Past reclaim_ms, the live instance claims and finishes them. */
    size_t got = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        int n = store_take(live, 0, o + got, 4 - got, 50);
        ck_assert_int_ge(n, 0);
        got += (size_t)n;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (got < 4 && now.tv_sec - start.tv_sec < 5);
    ck_assert_uint_eq(got, 4);
    struct store_result r[4];
    ck_assert_uint_eq(finish_orders(live, o, 4, r), 4);
    struct store_stats stats;
    store_stats(live, &stats);
    ck_assert_uint_eq(stats.reclaimed, 4);

    /* The slow one's late results change nothing. */
    ck_assert_uint_eq(finish_orders(dead, held, 4, r), 0);
    struct store_order o1;
    ck_assert_int_eq(store_order_get(dead, 1, &o1), 0);
    ck_assert_str_eq(o1.processed_by, "live");
    store_close(dead);
    store_close(live);
    stop_redis();
}
END_TEST

START_TEST(test_redis_restart_finishes_own_pending_first)
{
    start_redis(false);
    struct store *a = open_store("a", 60000, 100, NULL);
    accept_n(a, 3, 1, NULL);
    struct store_order held[3];
    ck_assert_uint_eq(take_all(a, held, 3), 3);
    store_close(a); /* "killed" holding three orders */

    /* Restarted under the same name, it gets them back at once (long
     * before reclaim_ms), then new ones. */
    a = open_store("a", 60000, 100, NULL);
    accept_n(a, 1, 1, NULL);
    struct store_order o[4];
    ck_assert_int_eq(store_take(a, 0, o, 2, 0), 2);
    ck_assert_uint_eq(o[0].id, 1);
    ck_assert_uint_eq(o[1].id, 2);
    ck_assert_int_eq(store_take(a, 0, o + 2, 2, 0), 1);
    ck_assert_uint_eq(o[2].id, 3);
    ck_assert_int_eq(store_take(a, 0, o + 3, 1, 0), 1);
    ck_assert_uint_eq(o[3].id, 4);
    struct store_result r[4];
    ck_assert_uint_eq(finish_orders(a, o, 4, r), 4);
    store_close(a);
    stop_redis();
}
END_TEST

START_TEST(test_redis_unreachable_fails_open)
{
    snprintf(server.sock, sizeof(server.sock), "/nonexistent/redis.sock");
    char err[256] = "";
    int rc = 0;
    struct store *st =
        open_store_opts("a", 5000, 100, 300, &rc, err, sizeof(err));
    ck_assert_ptr_null(st);
    ck_assert_int_eq(rc, -EIO);
    ck_assert_msg(strstr(err, "unix:///nonexistent/redis.sock") != NULL, "%s",
                  err);
}
END_TEST

START_TEST(test_redis_outage_then_recovery_keeps_orders)
{
    start_redis(true); /* appendonly, appendfsync always */
    struct store *a = open_store("a", 5000, 100, NULL);
    uint64_t ids[5];
    accept_n(a, 5, 1, ids);
    redis_server_stop(&server);

    struct store_accept acc = make_accept(0, 1);
    struct store_batch b = {.accepts = &acc, .naccepts = 1};
    ck_assert_int_eq(store_commit(a, &b), -EIO);
    ck_assert(!store_available(a));
    struct store_order o[5];
    ck_assert_int_eq(store_take(a, 0, o, 5, 0), -EIO);
    ck_assert_int_eq(store_order_get(a, 1, &o[0]), -EIO);

    ck_assert_int_eq(redis_server_restart(&server), 0);
    struct store_batch probe = {0};
    ck_assert_int_eq(store_commit(a, &probe), 0);
    ck_assert(store_available(a));
    /* Every acknowledged order survived; ids carry on. */
    ck_assert_uint_eq(take_all(a, o, 5), 5);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(o[i].id, ids[i]);
    ck_assert_int_eq(store_commit(a, &b), 0);
    ck_assert_uint_eq(acc.order.id, 6);
    store_close(a);
    stop_redis();
}
END_TEST

/* --- a shop that vanishes, a commit sent twice, flat memory ------------ */

/* A hiredis connection of the test's own, to look at Redis directly. */
static redisContext *peek(void)
{
    redisContext *c = redisConnectUnix(server.sock);
    ck_assert_msg(c != NULL && c->err == 0, "cannot connect to the test Redis");
    return c;
}

static long long peek_int(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, cmd);
    ck_assert_ptr_nonnull(r);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                  : -1;
    freeReplyObject(r);
    return v;
}

/* A figure of INFO memory, e.g. "used_memory:". */
static long long info_num(redisContext *c, const char *field)
{
    redisReply *r = redisCommand(c, "INFO memory");
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    const char *p = strstr(r->str, field);
    ck_assert_ptr_nonnull(p);
    long long v = strtoll(p + strlen(field), NULL, 10);
    freeReplyObject(r);
    return v;
}

static long long used_memory(redisContext *c)
{
    return info_num(c, "used_memory:");
}

static bool store_is_gone(struct store *st)
{
    struct store_stats ss;
    store_stats(st, &ss);
    return ss.vanished;
}

START_TEST(test_redis_flushall_is_never_a_new_shop)
{
    start_redis(false);
    struct store *a = open_store("a", 5000, 100, NULL);
    uint64_t ids[3];
    accept_n(a, 3, 1, ids);
    redisContext *c = peek();
    freeReplyObject(redisCommand(c, "FLUSHALL"));

    /* The running instance refuses writes (nothing applied: -EIO, not in
     * doubt), takes nothing, reads nothing, and seeds nothing. */
    struct store_accept acc = make_accept(0, 1);
    struct store_batch b = {.accepts = &acc, .naccepts = 1};
    ck_assert_int_eq(store_commit(a, &b), -EIO);
    ck_assert(store_is_gone(a));
    ck_assert(!store_available(a));
    struct store_order o;
    ck_assert_int_eq(store_order_get(a, 1, &o), -EIO);
    struct store_batch probe = {0};
    ck_assert_int_eq(store_commit(a, &probe), -EIO);
    struct store_order t[4];
    ck_assert_int_eq(store_take(a, 0, t, 4, 0), -EIO);
    ck_assert_int_eq(peek_int(c, "DBSIZE"), 0);

    /* Only a start seeds, and says so; the old instance still refuses:
     * the new shop is not the one it loaded, so its ids cannot clash. */
    struct store_state s;
    struct store *b2 = open_store("b", 5000, 100, &s);
    ck_assert(s.seeded);
    store_state_free(&s);
    ck_assert_int_eq(store_commit(a, &b), -EIO);
    ck_assert_int_eq(store_order_get(a, 1, &o), -EIO);
    accept_n(b2, 1, 1, ids);
    ck_assert_uint_eq(ids[0], 1);
    ck_assert_int_eq(store_commit(a, &probe), -EIO);
    redisFree(c);
    store_close(a);
    store_close(b2);
    stop_redis();
}
END_TEST

/* Instances started together: the empty store is seeded exactly once. */
struct starter {
    pthread_barrier_t *go;
    struct store *st;
    struct store_state state;
    int rc;
};

static void *start_one(void *arg)
{
    struct starter *s = arg;
    char err[256];
    pthread_barrier_wait(s->go);
    s->rc = store_load(s->st, catalog, NCATALOG, &s->state, err, sizeof(err));
    return NULL;
}

START_TEST(test_redis_started_together_seed_once)
{
    start_redis(false);
    enum { N = 4 };
    struct starter s[N];
    pthread_t t[N];
    pthread_barrier_t go;
    char err[256];
    ck_assert_int_eq(pthread_barrier_init(&go, NULL, N), 0);
    for (int i = 0; i < N; i++) {
        char name[16];
        int rc;
        snprintf(name, sizeof(name), "s%d", i);
        memset(&s[i], 0, sizeof(s[i]));
        s[i].go = &go;
        s[i].st = open_store_opts(name, 5000, 100, 0, &rc, err, sizeof(err));
        ck_assert_int_eq(rc, 0);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, start_one, &s[i]), 0);
    int seeded = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(s[i].rc, 0);
        seeded += s[i].state.seeded;
    }
    ck_assert_int_eq(seeded, 1);
    /* One shop: an id given by one is not given by another. */
    uint64_t a, b;
    accept_n(s[0].st, 1, 1, &a);
    accept_n(s[3].st, 1, 1, &b);
    ck_assert_uint_eq(a, 1);
    ck_assert_uint_eq(b, 2);
    for (int i = 0; i < N; i++) {
        store_state_free(&s[i].state);
        store_close(s[i].st);
    }
    pthread_barrier_destroy(&go);
    stop_redis();
}
END_TEST

START_TEST(test_redis_restarted_empty_then_back)
{
    start_redis(true); /* appendonly, appendfsync always */
    struct store *a = open_store("a", 5000, 100, NULL);
    uint64_t ids[3];
    accept_n(a, 3, 1, ids);

    /* Redis comes back empty (its files moved away): refused, no seed. */
    char aof[256], aside[256];
    snprintf(aof, sizeof(aof), "%s/appendonlydir", server.dir);
    snprintf(aside, sizeof(aside), "%s/aside", server.dir);
    redis_server_stop(&server);
    ck_assert_int_eq(rename(aof, aside), 0);
    ck_assert_int_eq(redis_server_restart(&server), 0);
    struct store_accept acc = make_accept(0, 1);
    struct store_batch b = {.accepts = &acc, .naccepts = 1};
    ck_assert_int_eq(store_commit(a, &b), -EIO);
    ck_assert_int_eq(store_commit(a, &b), -EIO);
    ck_assert(store_is_gone(a));
    redisContext *c = peek();
    ck_assert_int_eq(peek_int(c, "EXISTS {shopd}:counters"), 0);
    redisFree(c);

    /* Back on its files: the same shop serves again, ids carry on. */
    redis_server_stop(&server);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mv '%s' '%s'", aof, aside, aof);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(redis_server_restart(&server), 0);
    struct store_batch probe = {0};
    ck_assert_int_eq(store_commit(a, &probe), 0);
    ck_assert(!store_is_gone(a));
    ck_assert_int_eq(store_commit(a, &b), 0);
    ck_assert_uint_eq(acc.order.id, 4);
    struct store_order o;
    ck_assert_int_eq(store_order_get(a, 2, &o), 0);
    store_close(a);
    stop_redis();
}
END_TEST

/* shopd_commit by hand: `seq` on lane 7 of instance "a", one accept. */
static redisReply *commit_by_hand(redisContext *c, const char *epoch,
                                  const char *boot, const char *seq)
{
    /* A keyless accept: the packed order, keyed. */
    const char *argv[] = {"FCALL",
                          "shopd_commit",
                          "1",
                          "{shopd}",
                          epoch,
                          "a",
                          "1",
                          "7",
                          boot,
                          seq,
                          "100",
                          "60",
                          "1000",
                          "0",
                          "1",
                          "0",
                          "apple|1|1700000000123456789|1|",
                          ""};
    redisReply *r =
        redisCommandArgv(c, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    ck_assert_ptr_nonnull(r);
    return r;
}

START_TEST(test_redis_tagged_commit_applied_once)
{
    start_redis(false);
    struct store *a = open_store("a", 5000, 100, NULL);
    redisContext *c = peek();
    redisReply *e = redisCommand(c, "HGET {shopd}:counters shop");
    ck_assert(e != NULL && e->type == REDIS_REPLY_STRING);
    char boot[24];
    snprintf(boot, sizeof(boot), "%lld", peek_int(c, "HGET {shopd}:boot a"));

    /* The same tag twice: one order, the first outcome both times. */
    redisReply *r1 = commit_by_hand(c, e->str, boot, "1");
    redisReply *r2 = commit_by_hand(c, e->str, boot, "1");
    ck_assert_int_eq(r1->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r2->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r1->elements, 3);
    ck_assert_uint_eq(r2->elements, 3);
    ck_assert_int_eq(r1->element[0]->integer, 0);
    ck_assert_int_eq(r2->element[0]->integer, 1); /* a replay */
    ck_assert_int_eq(r1->element[2]->integer, 1); /* order id 1 */
    ck_assert_int_eq(r2->element[2]->integer, 1);
    ck_assert_int_eq(peek_int(c, "HGET {shopd}:counters last_id"), 1);
    ck_assert_int_eq(peek_int(c, "XLEN {shopd}:belt"), 1);
    /* The next seq is a new commit; an older one arriving late is not. */
    redisReply *r3 = commit_by_hand(c, e->str, boot, "2");
    ck_assert_int_eq(r3->element[2]->integer, 2);
    redisReply *r4 = commit_by_hand(c, e->str, boot, "1");
    ck_assert_int_eq(r4->type, REDIS_REPLY_ERROR);
    ck_assert_msg(strstr(r4->str, "STALE") != NULL, "%s", r4->str);
    /* A wrong epoch (another shop) is refused before anything. */
    redisReply *r5 = commit_by_hand(c, "not-this-shop", boot, "3");
    ck_assert_int_eq(r5->type, REDIS_REPLY_ERROR);
    ck_assert_msg(strstr(r5->str, "NOSHOP") != NULL, "%s", r5->str);
    ck_assert_int_eq(peek_int(c, "HGET {shopd}:counters last_id"), 2);
    freeReplyObject(r1);
    freeReplyObject(r2);
    freeReplyObject(r3);
    freeReplyObject(r4);
    freeReplyObject(r5);
    freeReplyObject(e);
    redisFree(c);
    store_close(a);
    stop_redis();
}
END_TEST

#define HISTORY 1000

/* Accept and finish `n` orders, `per` per commit. */
static void sell(struct store *st, size_t n, size_t per)
{
    struct store_order *o = calloc(per, sizeof(*o));
    struct store_result *r = calloc(per, sizeof(*r));
    ck_assert(o && r);
    for (size_t done = 0; done < n; done += per) {
        accept_n(st, per, 1, NULL);
        size_t got = take_all(st, o, per);
        ck_assert_uint_eq(got, per);
        ck_assert_uint_eq(finish_orders(st, o, got, r), got);
    }
    free(r);
    free(o);
}

START_TEST(test_redis_memory_flat_and_history_kept)
{
    start_redis(false);
    history = HISTORY;
    struct store_product big = catalog[0];
    big.initial = big.stock = 1000000000;
    char err[256];
    int rc;
    struct store_state s;
    struct store *a =
        open_store_opts("a", 60000, 100000, 0, &rc, err, sizeof(err));
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(store_load(a, &big, 1, &s, err, sizeof(err)), 0);
    store_state_free(&s);
    redisContext *c = peek();

    /* Warm up (2 x history), then 4 x history more: used_memory stays
     * within 10 % of the warm figure. */
    sell(a, 2 * HISTORY, 100);
    long long warm = used_memory(c), top = warm;
    for (int k = 0; k < 4; k++) {
        sell(a, HISTORY, 100);
        long long m = used_memory(c);
        top = m > top ? m : top;
    }
    ck_assert_msg(top - warm < warm / 10,
                  "used_memory grew from %lld to %lld over 4 x history", warm,
                  top);
    /* A retained order costs at most 200 bytes: its stream entry and its
     * record, as MEMORY USAGE counts them. */
    long long keys = peek_int(c, "MEMORY USAGE {shopd}:belt SAMPLES 0");
    long long last = peek_int(c, "HGET {shopd}:counters last_id");
    for (long long b = (last - HISTORY + 1) / 64; b <= last / 64; b++) {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "MEMORY USAGE {shopd}:f:%lld", b);
        keys += peek_int(c, cmd);
    }
    long long kept = peek_int(c, "XLEN {shopd}:belt");
    long long per = keys / kept;
    ck_assert_msg(per <= 200, "%lld bytes per retained order", per);
    fprintf(stderr,
            "redis memory: %lld B per retained order (%lld kept); "
            "used_memory %lld after 2 x history, at most %lld up to 6 x\n",
            per, kept, warm, top);

    /* An order held, not final, while 2 x history others pass: kept. */
    uint64_t held_id;
    accept_n(a, 1, 1, &held_id);
    struct store_order held;
    ck_assert_int_eq(store_take(a, 0, &held, 1, 0), 1);
    sell(a, 2 * HISTORY, 100);
    struct store_order o;
    ck_assert_int_eq(store_order_get(a, held_id, &o), 0);
    ck_assert_int_eq(o.status, STORE_QUEUED);
    /* An old final order is dropped (404); a recent one is kept. */
    ck_assert_int_eq(store_order_get(a, held_id - 1, &o), -ENOENT);
    ck_assert_int_eq(store_order_get(a, held_id + 2 * HISTORY, &o), 0);
    ck_assert_int_eq(o.status, STORE_FULFILLED);
    struct store_result r;
    ck_assert_uint_eq(finish_orders(a, &held, 1, &r), 1);
    ck_assert_int_eq(store_order_get(a, held_id, &o), -ENOENT);
    /* ... and applied once: a second delivery changes nothing. */
    ck_assert_uint_eq(finish_orders(a, &held, 1, &r), 0);
    ck_assert_int_eq(peek_int(c, "HGET {shopd}:sold apple") +
                         peek_int(c, "HGET {shopd}:stock apple"),
                     1000000000);
    ck_assert_int_eq(peek_int(c, "HGET {shopd}:sold apple"), 8 * HISTORY + 1);
    /* Once it is final, the orders behind it go too. */
    sell(a, HISTORY, 100);
    long long after = used_memory(c);
    ck_assert_msg(after - warm < warm / 10,
                  "used_memory %lld after the held order, %lld before", after,
                  warm);
    history = 0;
    redisFree(c);
    store_close(a);
    stop_redis();
}
END_TEST

/* --- concurrency: instances x workers racing for one hot product ------- */

#define HOT_STOCK   50
#define HOT_ORDERS  200
#define HOT_THREADS 4

struct racer {
    struct store *st;
    unsigned worker;
    size_t fulfilled, out_of_stock, applied_twice;
    int error;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct store_order o[16];
    struct store_result res[16];
    int idle = 0;

    while (idle < 3) {
        int n = store_take(r->st, r->worker, o, 16, 100);
        if (n < 0) {
            r->error = n;
            return NULL;
        }
        if (n == 0) {
            idle++;
            continue;
        }
        idle = 0;
        for (int i = 0; i < n; i++) {
            memset(&res[i], 0, sizeof(res[i]));
            res[i].id = o[i].id;
            res[i].product = o[i].product;
            res[i].quantity = o[i].quantity;
            res[i].worker = (int32_t)r->worker;
        }
        struct store_batch b = {.results = res, .nresults = (size_t)n};
        int rc = store_commit(r->st, &b);
        if (rc < 0) {
            r->error = rc;
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            if (!res[i].applied)
                r->applied_twice++;
            else if (res[i].status == STORE_FULFILLED)
                r->fulfilled++;
            else
                r->out_of_stock++;
        }
    }
    return NULL;
}

START_TEST(test_redis_hot_product_many_instances)
{
    start_redis(false);
    struct store_product hot = catalog[0];
    hot.initial = hot.stock = HOT_STOCK;
    struct store *inst[2];
    char err[256];
    for (int i = 0; i < 2; i++) {
        int rc;
        struct store_state s;
        inst[i] = open_store_opts(i ? "b" : "a", 5000, 100000, 0, &rc, err,
                                  sizeof(err));
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(store_load(inst[i], &hot, 1, &s, err, sizeof(err)), 0);
        store_state_free(&s);
    }
    for (int i = 0; i < HOT_ORDERS / 20; i++)
        accept_n(inst[i % 2], 20, 1, NULL);

    pthread_t t[HOT_THREADS];
    struct racer r[HOT_THREADS];
    memset(r, 0, sizeof(r));
    for (unsigned i = 0; i < HOT_THREADS; i++) {
        r[i].st = inst[i % 2];
        r[i].worker = i / 2;
        ck_assert_int_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    size_t ful = 0, oos = 0, twice = 0;
    for (unsigned i = 0; i < HOT_THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(r[i].error, 0);
        ful += r[i].fulfilled;
        oos += r[i].out_of_stock;
        twice += r[i].applied_twice;
    }
    ck_assert_uint_eq(ful, HOT_STOCK);
    ck_assert_uint_eq(oos, HOT_ORDERS - HOT_STOCK);
    ck_assert_uint_eq(twice, 0);
    struct store_state s;
    ck_assert_int_eq(store_load(inst[0], &hot, 1, &s, err, sizeof(err)), 0);
    ck_assert_int_eq(s.products[0].stock, 0);
    ck_assert_int_eq(s.products[0].sold, HOT_STOCK);
    store_state_free(&s);
    store_close(inst[0]);
    store_close(inst[1]);
    stop_redis();
}
END_TEST

Suite *redis_suite(void)
{
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("store");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_redis_seeds_once_and_adds_products);
    tcase_add_test(tc, test_redis_ids_shared_and_orders_found_everywhere);
    tcase_add_test(tc, test_redis_never_oversells_and_applies_once);
    tcase_add_test(tc, test_redis_belt_full_is_shop_wide);
    tcase_add_test(tc, test_redis_idempotency_keys_shared);
    tcase_add_test(tc, test_redis_dead_instance_orders_reclaimed);
    tcase_add_test(tc, test_redis_restart_finishes_own_pending_first);
    tcase_add_test(tc, test_redis_unreachable_fails_open);
    tcase_add_test(tc, test_redis_outage_then_recovery_keeps_orders);
    tcase_add_test(tc, test_redis_hot_product_many_instances);
    tcase_add_test(tc, test_redis_flushall_is_never_a_new_shop);
    tcase_add_test(tc, test_redis_restarted_empty_then_back);
    tcase_add_test(tc, test_redis_started_together_seed_once);
    tcase_add_test(tc, test_redis_tagged_commit_applied_once);
    tcase_add_test(tc, test_redis_memory_flat_and_history_kept);
    suite_add_tcase(s, tc);
    return s;
}
