/*
 * check_shop.c - Check suite of the shop module.
 *
 * Every test builds and tears down its own shop. Quiescence is reached by
 * shop_drain() (close-then-join), never by sleeping; helper threads only
 * record what they saw, and the test thread asserts after joining them.
 */
#include "shop/shop.h"

#include <check.h>

#include "tests/suites.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shop/internal.h"
#include "store/store.h"
#include "tests/lib/redis_harness.h"

static const struct product test_catalog[] = {
    {"apple", "Apple", 50, 100},
    {"banana", "Banana", 25, 50},
    {"cherry", "Cherry", 300, 5},
};
#define TEST_NPRODUCTS (sizeof(test_catalog) / sizeof(test_catalog[0]))

static struct shop *make_shop_over(size_t workers, size_t capacity,
                                   size_t history, unsigned work_ms,
                                   bool unsafe, const struct product *catalog,
                                   size_t n)
{
    struct shop_config cfg = {
        .workers = workers,
        .queue_capacity = capacity,
        .order_history = history,
        .work_ms = work_ms,
        .unsafe_inventory = unsafe,
    };
    struct shop *s = NULL;

    ck_assert_int_eq(shop_create(&cfg, catalog, n, &s), 0);
    return s;
}

static struct shop *make_shop(size_t workers, size_t capacity, size_t history)
{
    return make_shop_over(workers, capacity, history, 0, false, test_catalog,
                          TEST_NPRODUCTS);
}

static struct order make_order(uint32_t product, uint32_t quantity)
{
    struct order o;

    memset(&o, 0, sizeof(o));
    o.product = product;
    o.quantity = quantity;
    return o;
}

/* Submit one order that must be accepted; returns its id. */
static uint64_t submit_ok(struct shop *s, uint32_t product, uint32_t quantity)
{
    struct order o = make_order(product, quantity);
    uint64_t id = 0;

    ck_assert_int_eq(shop_submit(s, &o, &id), 0);
    ck_assert_uint_gt(id, 0);
    return id;
}

static void start_and_drain(struct shop *s)
{
    ck_assert_int_eq(shop_start(s), 0);
    ck_assert_int_eq(shop_drain(s, NULL), 0);
}

/* The invariants of SPEC §1 on an idle shop. */
static void assert_idle_invariants(struct shop *s)
{
    struct shop_snapshot snap;

    shop_snapshot(s, &snap);
    ck_assert_uint_eq(snap.accepted,
                      snap.processed + snap.queue_depth + snap.in_flight);
    ck_assert_uint_eq(snap.processed, snap.fulfilled + snap.out_of_stock);
}

static void assert_latency_sane(const struct shop_latency *l)
{
    ck_assert_double_ge(l->p50, 0);
    ck_assert_double_le(l->p50, l->p90);
    ck_assert_double_le(l->p90, l->p99);
    ck_assert_double_le(l->p99, l->max);
    ck_assert_double_ge(l->sum_ms, 0);
}

/* ---- single-threaded behaviour ---------------------------------------- */

/* A read answered by shop_read(): its outcome, once `done` ran. */
struct read_seen {
    struct shop_read r;
    _Atomic bool done;
};

static void note_read(struct shop_read *r)
{
    atomic_store(&((struct read_seen *)r)->done, true);
}

/* Memory: one call per action, answered at once; the report holds every
 * part, its inventory bounded to SHOP_REPORT_PRODUCTS products. */
START_TEST(test_shop_report_and_one_call_per_action_in_memory)
{
    enum { N = SHOP_REPORT_PRODUCTS + 200 };
    struct product *cat = calloc(N, sizeof(*cat));
    ck_assert_ptr_nonnull(cat);
    for (size_t i = 0; i < N; i++) {
        snprintf(cat[i].sku, sizeof(cat[i].sku), "p%zu", i);
        snprintf(cat[i].name, sizeof(cat[i].name), "P %zu", i);
        cat[i].stock = 10;
    }
    struct shop *s = make_shop_over(2, 64, 64, 0, false, cat, N);
    free(cat);
    ck_assert(!shop_answers_later(s));
    ck_assert_int_eq(shop_start(s), 0);

    struct order o = make_order(0, 3);
    uint64_t id = 0;
    ck_assert_int_eq(shop_buy(s, &o, NULL, NULL, NULL, &id), 0);
    ck_assert_uint_eq(id, 1);
    o.product = N - 1; /* past the shown products */
    ck_assert_int_eq(shop_buy(s, &o, NULL, NULL, NULL, &id), 0);
    struct shop_stock after;
    ck_assert_int_eq(shop_restock_any(s, 0, 5, NULL, NULL, NULL, &after), 0);
    ck_assert_int_eq(after.restocked, 5);
    ck_assert_int_eq(shop_drain(s, NULL), 0);

    /* A read is answered on this thread, before shop_read() returns. */
    struct read_seen rs;
    memset(&rs, 0, sizeof(rs));
    rs.r.kind = SHOP_READ_ORDER;
    rs.r.id = 1;
    rs.r.done = note_read;
    ck_assert_int_eq(shop_read(s, &rs.r), 0);
    ck_assert(atomic_load(&rs.done));
    ck_assert_int_eq(rs.r.rc, 0);
    ck_assert(!rs.r.named);
    ck_assert_int_eq(rs.r.order.status, ORDER_FULFILLED);

    struct shop_report r;
    ck_assert_int_eq(shop_report(s, &r), 0);
    ck_assert_uint_eq(r.snap.accepted, 2);
    ck_assert_uint_eq(r.snap.processed, 2);
    ck_assert_uint_eq(r.nworkers, 2);
    ck_assert_uint_eq(r.worker[0].processed + r.worker[1].processed, 2);
    ck_assert_uint_eq(r.nproducts, N);
    ck_assert_uint_eq(r.shown, SHOP_REPORT_PRODUCTS);
    ck_assert_int_eq(r.stock[0].stock, 12);
    ck_assert_int_eq(r.stock[N - 1].sold, 3);
    ck_assert_int_eq(r.oversold, 0);
    ck_assert_uint_eq(r.queue_wait.count, 2);
    ck_assert_uint_eq(r.commit.count, 0);
    ck_assert_str_eq(r.store_kind, "memory");
    ck_assert(!r.store.durable);
    ck_assert(r.store.available);
    ck_assert(!r.shared);
    ck_assert(!r.shop_valid);
    ck_assert_uint_eq(r.floor.workers, 2);
    shop_report_release(&r);
    shop_report_release(&r); /* released twice: harmless */
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_ids_start_at_one_and_increase)
{
    struct shop *s = make_shop(1, 16, 64);

    for (uint64_t want = 1; want <= 5; want++)
        ck_assert_uint_eq(submit_ok(s, 0, 1), want);
    start_and_drain(s);
    assert_idle_invariants(s);
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_order_goes_queued_to_fulfilled)
{
    struct shop *s = make_shop(1, 16, 64);
    struct order o = make_order(1, 3);
    struct order got;
    struct shop_stock stock[TEST_NPRODUCTS];
    uint64_t id = 0;

    o.has_customer = true;
    strcpy(o.customer, "alice");
    ck_assert_int_eq(shop_submit(s, &o, &id), 0);

    /* No worker runs yet, so the order must still be queued. */
    ck_assert_int_eq(shop_order(s, id, &got), 0);
    ck_assert_uint_eq(got.id, id);
    ck_assert_int_eq(got.status, ORDER_QUEUED);
    ck_assert_int_eq(got.worker, -1);
    ck_assert_int_eq(got.processed_ns, 0);
    ck_assert_int_gt(got.accepted_ns, 0);
    ck_assert_uint_eq(got.product, 1);
    ck_assert_uint_eq(got.quantity, 3);
    ck_assert(got.has_customer);
    ck_assert_str_eq(got.customer, "alice");

    start_and_drain(s);
    ck_assert_int_eq(shop_order(s, id, &got), 0);
    ck_assert_uint_eq(got.id, id);
    ck_assert_int_eq(got.status, ORDER_FULFILLED);
    ck_assert_int_eq(got.worker, 0);
    ck_assert_int_ge(got.processed_ns, got.accepted_ns);
    ck_assert_str_eq(got.customer, "alice");

    shop_stock_all(s, stock);
    ck_assert_int_eq(stock[1].stock, 47);
    ck_assert_int_eq(stock[1].sold, 3);
    ck_assert_int_eq(stock[0].stock, 100);
    ck_assert_uint_eq(shop_worker_processed(s, 0), 1);
    ck_assert(!shop_worker_busy(s, 0));
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_out_of_stock_leaves_stock_unchanged)
{
    struct shop *s = make_shop(1, 16, 64);
    struct shop_stock stock[TEST_NPRODUCTS];
    struct shop_snapshot snap;
    struct order got;
    uint64_t too_many, exact, one_more;

    /* The cherry has 5 in stock; FIFO with one worker fixes the order. */
    too_many = submit_ok(s, 2, 6);
    exact = submit_ok(s, 2, 5);
    one_more = submit_ok(s, 2, 1);
    start_and_drain(s);

    ck_assert_int_eq(shop_order(s, too_many, &got), 0);
    ck_assert_int_eq(got.status, ORDER_OUT_OF_STOCK);
    ck_assert_int_eq(shop_order(s, exact, &got), 0);
    ck_assert_int_eq(got.status, ORDER_FULFILLED);
    ck_assert_int_eq(shop_order(s, one_more, &got), 0);
    ck_assert_int_eq(got.status, ORDER_OUT_OF_STOCK);

    shop_stock_all(s, stock);
    ck_assert_int_eq(stock[2].stock, 0);
    ck_assert_int_eq(stock[2].sold, 5);
    ck_assert_int_eq(stock[2].oversold, 0);

    shop_snapshot(s, &snap);
    ck_assert_uint_eq(snap.processed, 3);
    ck_assert_uint_eq(snap.fulfilled, 1);
    ck_assert_uint_eq(snap.out_of_stock, 2);
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_full_belt_rejects_with_eagain)
{
    struct shop *s = make_shop(2, 4, 64);
    struct order o = make_order(0, 1);
    struct shop_snapshot snap;
    uint64_t id = 0;

    /* Workers never start: the belt fills up and stays full. */
    for (int i = 0; i < 4; i++)
        submit_ok(s, 0, 1);
    ck_assert_int_eq(shop_submit(s, &o, &id), -EAGAIN);
    ck_assert_int_eq(shop_submit(s, &o, &id), -EAGAIN);

    shop_snapshot(s, &snap);
    ck_assert_uint_eq(snap.rejected_full, 2);
    ck_assert_uint_eq(snap.accepted, 4);
    ck_assert_uint_eq(snap.queue_depth, 4);
    ck_assert_uint_eq(snap.queue_capacity, 4);
    ck_assert_uint_eq(snap.queue_high_water, 4);
    ck_assert_uint_eq(snap.processed, 0);
    ck_assert_uint_eq(shop_left(s), 4);
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_draining_rejects_with_epipe)
{
    struct shop *s = make_shop(1, 16, 64);
    struct order o = make_order(0, 1);
    struct shop_snapshot snap;
    uint64_t id = 0;

    ck_assert(!shop_draining(s));
    ck_assert_int_eq(shop_start(s), 0);
    submit_ok(s, 0, 1);
    shop_stop_accepting(s);
    ck_assert(shop_draining(s));
    ck_assert_int_eq(shop_submit(s, &o, &id), -EPIPE);

    ck_assert_int_eq(shop_drain(s, NULL), 0);
    ck_assert_int_eq(shop_submit(s, &o, &id), -EPIPE);
    ck_assert_uint_eq(shop_left(s), 0);

    shop_snapshot(s, &snap);
    ck_assert(snap.draining);
    ck_assert_uint_eq(snap.accepted, 1);
    ck_assert_uint_eq(snap.processed, 1);
    ck_assert_uint_eq(snap.rejected_full, 0);
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_order_book_keeps_last_history)
{
    struct shop *s = make_shop(1, 32, 8);
    struct order got;

    for (int i = 0; i < 20; i++)
        submit_ok(s, 0, 1);
    for (uint64_t id = 1; id <= 12; id++)
        ck_assert_int_eq(shop_order(s, id, &got), -ENOENT);
    for (uint64_t id = 13; id <= 20; id++) {
        ck_assert_int_eq(shop_order(s, id, &got), 0);
        ck_assert_uint_eq(got.id, id);
    }
    ck_assert_int_eq(shop_order(s, 0, &got), -ENOENT);
    ck_assert_int_eq(shop_order(s, 21, &got), -ENOENT);
    ck_assert_int_eq(shop_order(s, 28, &got), -ENOENT);
    ck_assert_int_eq(shop_order(s, UINT64_MAX, &got), -ENOENT);

    /* Processing keeps the same window, now with final states. */
    start_and_drain(s);
    ck_assert_int_eq(shop_order(s, 12, &got), -ENOENT);
    ck_assert_int_eq(shop_order(s, 20, &got), 0);
    ck_assert_int_eq(got.status, ORDER_FULFILLED);
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_invalid_order_rejected_with_einval)
{
    struct shop *s = make_shop(1, 16, 64);
    struct order bad_product = make_order(TEST_NPRODUCTS, 1);
    struct order huge_product = make_order(UINT32_MAX, 1);
    struct order no_quantity = make_order(0, 0);
    struct shop_snapshot snap;
    uint64_t id = 0;

    ck_assert_int_eq(shop_submit(s, &bad_product, &id), -EINVAL);
    ck_assert_int_eq(shop_submit(s, &huge_product, &id), -EINVAL);
    ck_assert_int_eq(shop_submit(s, &no_quantity, &id), -EINVAL);
    shop_count_invalid(s);
    shop_count_invalid(s);

    shop_snapshot(s, &snap);
    ck_assert_uint_eq(snap.accepted, 0);
    ck_assert_uint_eq(snap.rejected_invalid, 2);
    ck_assert_uint_eq(snap.rejected_full, 0);
    /* The next valid order still gets id 1: rejections use no id. */
    ck_assert_uint_eq(submit_ok(s, 0, 1), 1);
    shop_destroy(s);
}
END_TEST

/* Lookup is by binary search over a sorted index: an unsorted catalog with
 * SKUs that are prefixes of each other must still find each at its index. */
START_TEST(test_shop_find_product_unsorted_catalog)
{
    static const struct product cat[] = {
        {"zeta", "Z", 1, 1}, {"alpha", "A", 1, 1},     {"mid", "M", 1, 1},
        {"alp", "Al", 1, 1}, {"alphabet", "Ab", 1, 1}, {"Alpha", "AA", 1, 1},
        {"a", "a", 1, 1},
    };
    size_t n = sizeof(cat) / sizeof(cat[0]);
    struct shop *s = make_shop_over(1, 4, 4, 0, false, cat, n);

    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(shop_find_product(s, cat[i].sku, strlen(cat[i].sku)),
                         (int)i);
    ck_assert_int_eq(shop_find_product(s, "al", 2), -ENOENT);
    ck_assert_int_eq(shop_find_product(s, "alphab", 6), -ENOENT);
    ck_assert_int_eq(shop_find_product(s, "zz", 2), -ENOENT);
    ck_assert_int_eq(shop_find_product(s, "0", 1), -ENOENT);
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_find_product_exact_match_only)
{
    struct shop *s = make_shop(1, 4, 4);
    const struct product *p;

    ck_assert_uint_eq(shop_product_count(s), TEST_NPRODUCTS);
    ck_assert_int_eq(shop_find_product(s, "apple", 5), 0);
    ck_assert_int_eq(shop_find_product(s, "cherry", 6), 2);
    /* Length-delimited: the bytes after `len` do not matter. */
    ck_assert_int_eq(shop_find_product(s, "applepie", 5), 0);
    ck_assert_int_eq(shop_find_product(s, "applepie", 8), -ENOENT);
    ck_assert_int_eq(shop_find_product(s, "appl", 4), -ENOENT);
    ck_assert_int_eq(shop_find_product(s, "Apple", 5), -ENOENT);
    ck_assert_int_eq(shop_find_product(s, "apple\0", 6), -ENOENT);
    ck_assert_int_eq(shop_find_product(s, "", 0), -ENOENT);

    p = shop_product(s, 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->sku, "banana");
    ck_assert_int_eq(p->price_cents, 25);
    ck_assert_int_eq(p->stock, 50);
    ck_assert_ptr_null(shop_product(s, TEST_NPRODUCTS));
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_create_rejects_bad_config)
{
    struct shop_config good = {
        .workers = 1, .queue_capacity = 4, .order_history = 4};
    struct shop_config cfg;
    struct product bad[2] = {test_catalog[0], test_catalog[1]};
    struct shop *s = (struct shop *)&good; /* must be overwritten with NULL */

    cfg = good;
    cfg.workers = 0;
    ck_assert_int_eq(shop_create(&cfg, test_catalog, TEST_NPRODUCTS, &s),
                     -EINVAL);
    ck_assert_ptr_null(s);
    cfg = good;
    cfg.queue_capacity = 0;
    ck_assert_int_eq(shop_create(&cfg, test_catalog, TEST_NPRODUCTS, &s),
                     -EINVAL);
    cfg = good;
    cfg.order_history = 0;
    ck_assert_int_eq(shop_create(&cfg, test_catalog, TEST_NPRODUCTS, &s),
                     -EINVAL);
    ck_assert_int_eq(shop_create(&good, test_catalog, 0, &s), -EINVAL);
    ck_assert_int_eq(shop_create(&good, NULL, 1, &s), -EINVAL);
    ck_assert_int_eq(shop_create(NULL, test_catalog, 1, &s), -EINVAL);
    bad[0].stock = -1;
    ck_assert_int_eq(shop_create(&good, bad, 1, &s), -EINVAL);
    /* The SKU rule is the shop's: a catalog that breaks it, or names one
     * SKU twice, makes no shop. */
    bad[0] = test_catalog[0];
    snprintf(bad[0].sku, sizeof(bad[0].sku), "has space");
    ck_assert_int_eq(shop_create(&good, bad, 1, &s), -EINVAL);
    bad[0].sku[0] = '\0';
    ck_assert_int_eq(shop_create(&good, bad, 1, &s), -EINVAL);
    bad[0] = test_catalog[0];
    bad[1] = test_catalog[0];
    ck_assert_int_eq(shop_create(&good, bad, 2, &s), -EINVAL);
    ck_assert_ptr_null(s);
    bad[1] = test_catalog[1];
    ck_assert_int_eq(shop_create(&good, bad, 2, &s), 0);
    ck_assert_ptr_nonnull(s);
    shop_destroy(s);
    shop_destroy(NULL);
}
END_TEST

START_TEST(test_shop_demo_catalog_is_well_formed)
{
    size_t n = 0;
    const struct product *cat = shop_demo_catalog(&n);

    ck_assert_uint_ge(n, 8);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(cat[i].sku);

        ck_assert_uint_ge(len, 1);
        ck_assert_uint_le(len, SHOP_SKU_MAX);
        ck_assert_uint_eq(strspn(cat[i].sku, "abcdefghijklmnopqrstuvwxyz"
                                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789_-"),
                          len);
        ck_assert_uint_ge(strlen(cat[i].name), 1);
        ck_assert_int_ge(cat[i].price_cents, 0);
        ck_assert_int_gt(cat[i].stock, 0);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(cat[i].sku, cat[j].sku);
    }
    ck_assert_str_eq(shop_status_name(ORDER_QUEUED), "queued");
    ck_assert_str_eq(shop_status_name(ORDER_FULFILLED), "fulfilled");
    ck_assert_str_eq(shop_status_name(ORDER_OUT_OF_STOCK), "out_of_stock");
}
END_TEST

/* ---- histograms ------------------------------------------------------- */

START_TEST(test_shop_latency_percentiles_from_known_values)
{
    struct latency_hist *h = latency_hist_create();
    struct shop_latency l;

    ck_assert_ptr_nonnull(h);
    latency_hist_summary(h, &l);
    ck_assert_uint_eq(l.count, 0);
    ck_assert_double_eq(l.p99, 0);

    /* 1 ms, 2 ms, ... 1000 ms: the buckets are at most 12.5% wide. */
    for (int64_t ms = 1; ms <= 1000; ms++)
        latency_hist_record(h, ms * NS_PER_MS);
    latency_hist_summary(h, &l);
    ck_assert_uint_eq(l.count, 1000);
    ck_assert_double_eq(l.max, 1000.0);
    ck_assert_double_eq(l.sum_ms, 500500.0);
    ck_assert_double_ge(l.p50, 500 * 0.875);
    ck_assert_double_le(l.p50, 500 * 1.125);
    ck_assert_double_ge(l.p90, 900 * 0.875);
    ck_assert_double_le(l.p90, 900 * 1.125);
    ck_assert_double_ge(l.p99, 990 * 0.875);
    ck_assert_double_le(l.p99, 1000.0);
    assert_latency_sane(&l);
    latency_hist_destroy(h);
}
END_TEST

START_TEST(test_shop_prometheus_buckets_are_inclusive_and_cumulative)
{
    struct latency_hist *h = latency_hist_create();
    struct shop_histogram ph;

    ck_assert_ptr_nonnull(h);
    latency_hist_record(h, -5);            /* counts as 0 */
    latency_hist_record(h, 100000);        /* exactly 0.0001 s */
    latency_hist_record(h, 100001);        /* just above */
    latency_hist_record(h, 3 * NS_PER_S);  /* <= 5 s */
    latency_hist_record(h, 20 * NS_PER_S); /* only +Inf */
    latency_hist_export(h, &ph);

    ck_assert_uint_eq(ph.count, 5);
    ck_assert_double_eq(ph.le[0], 0.0001);
    ck_assert_double_eq(ph.le[SHOP_HIST_BUCKETS - 1], 10);
    ck_assert_uint_eq(ph.cumulative[0], 2);
    ck_assert_uint_eq(ph.cumulative[1], 3);
    ck_assert_uint_eq(ph.cumulative[13], 3); /* le 2.5 */
    ck_assert_uint_eq(ph.cumulative[14], 4); /* le 5 */
    ck_assert_uint_eq(ph.cumulative[SHOP_HIST_BUCKETS - 1], 4);
    ck_assert_double_ge(ph.sum_s, 23.0);
    ck_assert_double_le(ph.sum_s, 23.001);
    latency_hist_destroy(h);
}
END_TEST

START_TEST(test_shop_histograms_count_every_processed_order)
{
    struct shop *s = make_shop(2, 256, 256);
    struct shop_histogram qw, pr;
    struct shop_snapshot snap;

    ck_assert_int_eq(shop_start(s), 0);
    for (int i = 0; i < 200; i++)
        submit_ok(s, (uint32_t)(i % 3), 1);
    ck_assert_int_eq(shop_drain(s, NULL), 0);

    shop_snapshot(s, &snap);
    ck_assert_uint_eq(snap.processed, 200);
    ck_assert_uint_eq(snap.queue_wait.count, 200);
    ck_assert_uint_eq(snap.processing.count, 200);
    assert_latency_sane(&snap.queue_wait);
    assert_latency_sane(&snap.processing);
    ck_assert_double_ge(snap.uptime_s, 0);
    ck_assert_double_ge(snap.accepted_per_s, 0);
    ck_assert_double_ge(snap.processed_per_s, 0);
    ck_assert_uint_eq(snap.workers, 2);

    shop_histograms(s, &qw, &pr);
    ck_assert_uint_eq(qw.count, 200);
    ck_assert_uint_eq(pr.count, 200);
    for (size_t i = 1; i < SHOP_HIST_BUCKETS; i++) {
        ck_assert_double_gt(qw.le[i], qw.le[i - 1]);
        ck_assert_uint_ge(qw.cumulative[i], qw.cumulative[i - 1]);
        ck_assert_uint_ge(pr.cumulative[i], pr.cumulative[i - 1]);
    }
    ck_assert_uint_le(qw.cumulative[SHOP_HIST_BUCKETS - 1], qw.count);
    ck_assert_uint_le(pr.cumulative[SHOP_HIST_BUCKETS - 1], pr.count);
    ck_assert_uint_eq(shop_worker_processed(s, 0) + shop_worker_processed(s, 1),
                      200);
    shop_destroy(s);
}
END_TEST

/* ---- concurrency ------------------------------------------------------ */

#define SUBMITTERS      4
#define ORDERS_PER_SUBM 4000

struct submitter {
    struct shop *s;
    pthread_barrier_t *go;
    uint32_t seed;
    /* Results, read by the test thread after the join. */
    uint64_t ids[ORDERS_PER_SUBM];
    size_t accepted;
    size_t full;
    size_t other_errors;
    bool ids_increasing;
};

static uint32_t next_random(uint32_t *seed)
{
    *seed = *seed * 1664525u + 1013904223u;
    return *seed >> 8;
}

static void *submitter_main(void *arg)
{
    struct submitter *sub = arg;
    uint64_t last = 0;

    sub->ids_increasing = true;
    pthread_barrier_wait(sub->go);
    for (int i = 0; i < ORDERS_PER_SUBM; i++) {
        uint32_t r = next_random(&sub->seed);
        struct order o = make_order(r % TEST_NPRODUCTS, 1 + (r >> 4) % 4);
        uint64_t id = 0;
        int ret = shop_submit(sub->s, &o, &id);

        if (ret == 0) {
            if (id <= last)
                sub->ids_increasing = false;
            last = id;
            sub->ids[sub->accepted++] = id;
        } else if (ret == -EAGAIN) {
            sub->full++;
        } else {
            sub->other_errors++;
        }
    }
    return NULL;
}

START_TEST(test_shop_concurrent_orders_never_oversell)
{
    static const struct product catalog[] = {
        {"a", "A", 1, 3000},
        {"b", "B", 1, 1500},
        {"c", "C", 1, 200},
    };
    enum { N = 3, WORKERS = 4, TOTAL = SUBMITTERS * ORDERS_PER_SUBM };
    struct shop *s = make_shop_over(WORKERS, 64, TOTAL, 0, false, catalog, N);
    struct submitter *subs = calloc(SUBMITTERS, sizeof(*subs));
    pthread_t tid[SUBMITTERS];
    pthread_barrier_t go;
    struct shop_snapshot snap;
    struct shop_stock stock[N];
    int64_t fulfilled_qty[N] = {0};
    unsigned char *seen = calloc(TOTAL + 1, 1);
    size_t accepted = 0, full = 0;
    uint64_t per_worker = 0;

    ck_assert_ptr_nonnull(subs);
    ck_assert_ptr_nonnull(seen);
    ck_assert_int_eq(pthread_barrier_init(&go, NULL, SUBMITTERS + 1), 0);
    ck_assert_int_eq(shop_start(s), 0);
    for (int i = 0; i < SUBMITTERS; i++) {
        subs[i].s = s;
        subs[i].go = &go;
        subs[i].seed = 12345u + 977u * (uint32_t)i;
        ck_assert_int_eq(
            pthread_create(&tid[i], NULL, submitter_main, &subs[i]), 0);
    }
    pthread_barrier_wait(&go);
    for (int i = 0; i < SUBMITTERS; i++)
        ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
    ck_assert_int_eq(shop_drain(s, NULL), 0);

    for (int i = 0; i < SUBMITTERS; i++) {
        ck_assert_uint_eq(subs[i].other_errors, 0);
        ck_assert(subs[i].ids_increasing);
        accepted += subs[i].accepted;
        full += subs[i].full;
        for (size_t k = 0; k < subs[i].accepted; k++) {
            uint64_t id = subs[i].ids[k];

            ck_assert_uint_ge(id, 1);
            ck_assert_uint_le(id, TOTAL);
            ck_assert_uint_eq(seen[id], 0);
            seen[id] = 1;
        }
    }
    ck_assert_uint_eq(accepted + full, TOTAL);
    ck_assert_uint_gt(accepted, 0);

    shop_snapshot(s, &snap);
    ck_assert_uint_eq(snap.accepted, accepted);
    ck_assert_uint_eq(snap.rejected_full, full);
    ck_assert_uint_eq(snap.processed, accepted);
    ck_assert_uint_eq(snap.queue_depth, 0);
    ck_assert_uint_eq(snap.in_flight, 0);
    ck_assert_uint_eq(shop_left(s), 0);
    assert_idle_invariants(s);
    ck_assert_uint_eq(snap.queue_wait.count, snap.processed);
    ck_assert_uint_eq(snap.processing.count, snap.processed);
    assert_latency_sane(&snap.queue_wait);
    assert_latency_sane(&snap.processing);
    for (size_t w = 0; w < WORKERS; w++)
        per_worker += shop_worker_processed(s, w);
    ck_assert_uint_eq(per_worker, snap.processed);

    /* Ids are gap-free, and every kept order reached a final state. */
    for (uint64_t id = 1; id <= accepted; id++) {
        struct order o;

        ck_assert_uint_eq(seen[id], 1);
        ck_assert_int_eq(shop_order(s, id, &o), 0);
        ck_assert_int_ne(o.status, ORDER_QUEUED);
        ck_assert_int_ge(o.worker, 0);
        ck_assert_int_lt(o.worker, WORKERS);
        if (o.status == ORDER_FULFILLED)
            fulfilled_qty[o.product] += o.quantity;
    }

    shop_stock_all(s, stock);
    for (size_t i = 0; i < N; i++) {
        ck_assert_int_ge(stock[i].stock, 0);
        ck_assert_int_eq(stock[i].stock + stock[i].sold, catalog[i].stock);
        ck_assert_int_eq(stock[i].oversold, 0);
        ck_assert_int_eq(stock[i].sold, fulfilled_qty[i]);
    }
    pthread_barrier_destroy(&go);
    free(seen);
    free(subs);
    shop_destroy(s);
}
END_TEST

/* 20000 orders of one unit each for a product with 10000 in stock. */
#define RACE_STOCK  10000
#define RACE_ORDERS 20000

static void run_race(bool unsafe, struct shop_stock *out,
                     struct shop_snapshot *snap)
{
    static const struct product catalog[] = {
        {"widget", "Widget", 1, RACE_STOCK},
    };
    struct shop *s = make_shop_over(4, RACE_ORDERS, 16, 0, unsafe, catalog, 1);

    ck_assert(shop_unsafe(s) == unsafe);
    /* Fill the belt first so that all four workers contend from the start. */
    for (int i = 0; i < RACE_ORDERS; i++)
        submit_ok(s, 0, 1);
    start_and_drain(s);
    shop_stock_all(s, out);
    shop_snapshot(s, snap);
    shop_destroy(s);
}

START_TEST(test_shop_safe_mode_sells_exactly_the_stock)
{
    struct shop_stock st;
    struct shop_snapshot snap;

    run_race(false, &st, &snap);
    ck_assert_int_eq(st.stock, 0);
    ck_assert_int_eq(st.sold, RACE_STOCK);
    ck_assert_int_eq(st.oversold, 0);
    ck_assert_uint_eq(snap.fulfilled, RACE_STOCK);
    ck_assert_uint_eq(snap.out_of_stock, RACE_ORDERS - RACE_STOCK);
}
END_TEST

START_TEST(test_shop_unsafe_mode_loses_updates)
{
    struct shop_stock st;
    struct shop_snapshot snap;

    run_race(true, &st, &snap);
    /*
     * Stock never goes below 0, but concurrent read-modify-writes lose
     * decrements (never increments of sold), so stock + sold can only grow
     * past the initial stock: conservation breaks.
     */
    ck_assert_int_ge(st.stock, 0);
    ck_assert_int_gt(st.stock + st.sold, RACE_STOCK);
    ck_assert_uint_eq(snap.processed, RACE_ORDERS);
}
END_TEST

START_TEST(test_shop_drain_past_deadline_times_out_then_finishes)
{
    /* One worker, 10 orders of 200 ms each: about 2 s of work. */
    struct shop *s =
        make_shop_over(1, 16, 16, 200, false, test_catalog, TEST_NPRODUCTS);
    struct order o = make_order(0, 1);
    struct timespec now;
    struct shop_snapshot snap;
    uint64_t id = 0;

    for (int i = 0; i < 10; i++)
        submit_ok(s, 0, 1);
    ck_assert_int_eq(shop_start(s), 0);
    ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &now), 0);
    ck_assert_int_eq(shop_drain(s, &now), -ETIMEDOUT);
    ck_assert_uint_gt(shop_left(s), 0);
    ck_assert(shop_draining(s));
    ck_assert_int_eq(shop_submit(s, &o, &id), -EPIPE);

    ck_assert_int_eq(shop_drain(s, NULL), 0);
    ck_assert_uint_eq(shop_left(s), 0);
    shop_snapshot(s, &snap);
    ck_assert_uint_eq(snap.processed, 10);
    ck_assert_uint_eq(snap.fulfilled, 10);
    shop_destroy(s);
}
END_TEST

/* ---- restock, idempotency keys ------------------------------------------ */

START_TEST(test_shop_restock_adds_to_stock_and_restocked)
{
    struct shop *s = make_shop(1, 8, 8);
    struct shop_stock after, all[TEST_NPRODUCTS];

    ck_assert_int_eq(shop_restock(s, 2, 7, &after), 0);
    ck_assert_int_eq(after.stock, 12);
    ck_assert_int_eq(after.restocked, 7);
    ck_assert_int_eq(after.sold, 0);
    ck_assert_int_eq(shop_restock(s, 2, SHOP_RESTOCK_MAX, NULL), 0);
    shop_stock_all(s, all);
    ck_assert_int_eq(all[2].stock, 5 + 7 + SHOP_RESTOCK_MAX);
    ck_assert_int_eq(all[2].restocked, 7 + SHOP_RESTOCK_MAX);
    ck_assert_int_eq(all[0].restocked, 0);
    ck_assert_int_eq(all[2].oversold, 0);
    ck_assert_int_eq(shop_restock(s, 2, 0, NULL), -EINVAL);
    ck_assert_int_eq(shop_restock(s, 2, SHOP_RESTOCK_MAX + 1, NULL), -EINVAL);
    ck_assert_int_eq(shop_restock(s, TEST_NPRODUCTS, 1, NULL), -ENOENT);
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_restock_refuses_overflow)
{
    static const struct product big[] = {{"x", "X", 1, INT64_MAX - 5}};
    struct shop *s = make_shop_over(1, 4, 4, 0, false, big, 1);
    struct shop_stock st;
    ck_assert_int_eq(shop_restock(s, 0, 6, &st), -EOVERFLOW);
    ck_assert_int_eq(st.stock, INT64_MAX - 5);
    ck_assert_int_eq(st.restocked, 0);
    ck_assert_int_eq(shop_restock(s, 0, 5, &st), 0);
    ck_assert_int_eq(st.stock, INT64_MAX);
    shop_destroy(s);
}
END_TEST

struct restocker {
    struct shop *s;
    pthread_barrier_t *go;
    int64_t added;
    int errors;
};

static void *restocker_main(void *arg)
{
    struct restocker *r = arg;
    pthread_barrier_wait(r->go);
    for (int i = 0; i < 2000; i++) {
        int64_t q = 1 + i % 3;
        if (shop_restock(r->s, 0, q, NULL) == 0)
            r->added += q;
        else
            r->errors++;
    }
    return NULL;
}

START_TEST(test_shop_restock_invariant_under_concurrent_buys)
{
    /* Little stock, many buyers: orders run out of stock until restocks
     * refill it. Afterwards stock + sold == initial + restocked exactly. */
    static const struct product three[] = {
        {"a", "A", 1, 10}, {"b", "B", 1, 20}, {"c", "C", 1, 0}};
    enum { BUYERS = 3, RESTOCKERS = 2 };
    struct shop *s = make_shop_over(4, 256, 64, 0, false, three, 3);
    struct submitter subs[BUYERS];
    struct restocker rs[RESTOCKERS];
    pthread_t tid[BUYERS + RESTOCKERS];
    pthread_barrier_t go;
    memset(subs, 0, sizeof(subs));
    memset(rs, 0, sizeof(rs));
    ck_assert_int_eq(pthread_barrier_init(&go, NULL, BUYERS + RESTOCKERS + 1),
                     0);
    ck_assert_int_eq(shop_start(s), 0);
    for (int i = 0; i < BUYERS; i++) {
        subs[i].s = s;
        subs[i].go = &go;
        subs[i].seed = 7u + 31u * (uint32_t)i;
        ck_assert_int_eq(
            pthread_create(&tid[i], NULL, submitter_main, &subs[i]), 0);
    }
    for (int i = 0; i < RESTOCKERS; i++) {
        rs[i].s = s;
        rs[i].go = &go;
        ck_assert_int_eq(
            pthread_create(&tid[BUYERS + i], NULL, restocker_main, &rs[i]), 0);
    }
    pthread_barrier_wait(&go);
    for (int i = 0; i < BUYERS + RESTOCKERS; i++)
        ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
    ck_assert_int_eq(shop_drain(s, NULL), 0);

    int64_t added = 0;
    for (int i = 0; i < RESTOCKERS; i++) {
        ck_assert_int_eq(rs[i].errors, 0);
        added += rs[i].added;
    }
    struct shop_stock st[3];
    shop_stock_all(s, st);
    ck_assert_int_eq(st[0].restocked, added);
    ck_assert_int_eq(st[0].stock + st[0].sold, 10 + added);
    /* Whether restocked units were sold as well depends on the threads'
     * timing; the invariant above is what must hold either way. */
    ck_assert_int_eq(st[1].restocked, 0);
    ck_assert_int_eq(st[1].stock + st[1].sold, 20);
    ck_assert_int_eq(st[2].stock + st[2].sold, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_ge(st[i].stock, 0);
        ck_assert_int_eq(st[i].oversold, 0);
    }
    pthread_barrier_destroy(&go);
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_idem_new_in_use_replay_mismatch)
{
    struct shop *s = make_shop(1, 8, 8);
    struct shop_idem_ticket tk, tk2;
    struct shop_idem_answer ans;
    const char *fa = "request a", *fb = "request b";

    ck_assert_int_eq(
        shop_idem_begin(s, SHOP_IDEM_BUY, "k1", 2, fa, strlen(fa), &tk, &ans),
        SHOP_IDEM_NEW);
    /* While the first is being answered, any request with the key: 409. */
    ck_assert_int_eq(
        shop_idem_begin(s, SHOP_IDEM_BUY, "k1", 2, fa, strlen(fa), &tk2, &ans),
        SHOP_IDEM_IN_PROGRESS);
    ck_assert_int_eq(
        shop_idem_begin(s, SHOP_IDEM_BUY, "k1", 2, fb, strlen(fb), &tk2, &ans),
        SHOP_IDEM_IN_PROGRESS);
    const struct shop_idem_answer seven = {.order_id = 7};
    ck_assert_int_eq(shop_idem_complete(s, &tk, &seven), 0);
    memset(&ans, 0, sizeof(ans));
    ck_assert_int_eq(
        shop_idem_begin(s, SHOP_IDEM_BUY, "k1", 2, fa, strlen(fa), &tk2, &ans),
        SHOP_IDEM_REPLAY);
    ck_assert_uint_eq(ans.order_id, 7);
    ck_assert_int_eq(
        shop_idem_begin(s, SHOP_IDEM_BUY, "k1", 2, fb, strlen(fb), &tk2, &ans),
        SHOP_IDEM_MISMATCH);
    /* Keys are per endpoint: the same key on restock is another key. */
    ck_assert_int_eq(shop_idem_begin(s, SHOP_IDEM_RESTOCK, "k1", 2, fb,
                                     strlen(fb), &tk2, &ans),
                     SHOP_IDEM_NEW);
    /* Bad lengths. */
    static char longkey[SHOP_IDEM_KEY_MAX + 1];
    memset(longkey, 'x', sizeof(longkey));
    ck_assert_int_eq(
        shop_idem_begin(s, SHOP_IDEM_BUY, "", 0, fa, strlen(fa), &tk2, &ans),
        -EINVAL);
    ck_assert_int_eq(shop_idem_begin(s, SHOP_IDEM_BUY, longkey, sizeof(longkey),
                                     fa, strlen(fa), &tk2, &ans),
                     -EINVAL);
    ck_assert_int_eq(shop_idem_begin(s, SHOP_IDEM_BUY, longkey,
                                     SHOP_IDEM_KEY_MAX, fa, strlen(fa), &tk2,
                                     &ans),
                     SHOP_IDEM_NEW);

    struct shop_snapshot snap;
    shop_snapshot(s, &snap);
    ck_assert_uint_eq(snap.idem_replayed, 1);
    ck_assert_uint_eq(snap.idem_in_use, 2);
    ck_assert_uint_eq(snap.idem_mismatched, 1);
    ck_assert_uint_eq(snap.idem_keys, 3);
    ck_assert_uint_eq(snap.idem_capacity, 8);
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_idem_abort_frees_the_key)
{
    struct shop *s = make_shop(1, 8, 8);
    struct shop_idem_ticket tk, old;
    struct shop_idem_answer ans;
    const char *fa = "a", *fb = "b";
    ck_assert_int_eq(
        shop_idem_begin(s, SHOP_IDEM_BUY, "k", 1, fa, strlen(fa), &tk, &ans),
        SHOP_IDEM_NEW);
    shop_idem_abort(s, &tk);
    old = tk;
    /* After a failure the key may be used again, even for another body. */
    ck_assert_int_eq(
        shop_idem_begin(s, SHOP_IDEM_BUY, "k", 1, fb, strlen(fb), &tk, &ans),
        SHOP_IDEM_NEW);
    /* A stale ticket does nothing to the entry that replaced it. */
    shop_idem_abort(s, &old);
    const struct shop_idem_answer one = {.order_id = 1};
    ck_assert_int_eq(shop_idem_complete(s, &old, &one), -ENOENT);
    ck_assert_int_eq(
        shop_idem_begin(s, SHOP_IDEM_BUY, "k", 1, fb, strlen(fb), &old, &ans),
        SHOP_IDEM_IN_PROGRESS);
    /* A restock's numbers come back whole. */
    const struct shop_idem_answer nums = {
        .stock = {.stock = INT64_C(1) << 40, .sold = 3, .restocked = -1}};
    ck_assert_int_eq(shop_idem_complete(s, &tk, &nums), 0);
    ck_assert_int_eq(
        shop_idem_begin(s, SHOP_IDEM_BUY, "k", 1, fb, strlen(fb), &old, &ans),
        SHOP_IDEM_REPLAY);
    ck_assert_uint_eq(ans.order_id, 0);
    ck_assert_int_eq(ans.stock.stock, INT64_C(1) << 40);
    ck_assert_int_eq(ans.stock.sold, 3);
    ck_assert_int_eq(ans.stock.restocked, -1);
    shop_destroy(s);
}
END_TEST

START_TEST(test_shop_idem_bounded_oldest_dropped_first)
{
    enum { CAP = 16 };
    struct idem_table *t = NULL;
    ck_assert_int_eq(idem_create(CAP, 60, &t), 0);
    struct shop_idem_ticket tk;
    struct shop_idem_answer ans;
    const char *fp = "same";
    char key[16];
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < CAP + 1; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, key, strlen(key), fp,
                                    strlen(fp), 0, &tk, &ans),
                         SHOP_IDEM_NEW);
        ck_assert_int_eq(
            idem_complete(t, &tk, &(struct shop_idem_answer){.order_id = 1}),
            0);
    }
    struct shop_snapshot snap;
    idem_counts(t, &snap);
    ck_assert_uint_eq(snap.idem_keys, CAP);
    /* key-0 was the oldest: dropped to make room for key-16. */
    for (int i = CAP; i >= 1; i--) {
        snprintf(key, sizeof(key), "key-%d", i);
        ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, key, strlen(key), fp,
                                    strlen(fp), 0, &tk, &ans),
                         SHOP_IDEM_REPLAY);
    }
    ck_assert_int_eq(
        idem_begin(t, SHOP_IDEM_BUY, "key-0", 5, fp, strlen(fp), 0, &tk, &ans),
        SHOP_IDEM_NEW);
    /* ... which dropped key-1, the oldest then. */
    ck_assert_int_eq(
        idem_begin(t, SHOP_IDEM_BUY, "key-1", 5, fp, strlen(fp), 0, &tk, &ans),
        SHOP_IDEM_NEW);
    ck_assert_int_eq(
        idem_begin(t, SHOP_IDEM_BUY, "key-3", 5, fp, strlen(fp), 0, &tk, &ans),
        SHOP_IDEM_REPLAY);
    idem_destroy(t);
}
END_TEST

START_TEST(test_shop_idem_sharded_table_keeps_the_newest)
{
    /* A large table is sharded; still at most `cap` keys, and the keys
     * dropped are the oldest ones. */
    enum { CAP = 4096 };
    struct idem_table *t = NULL;
    ck_assert_int_eq(idem_create(CAP, 60, &t), 0);
    struct shop_idem_ticket tk;
    static struct shop_idem_answer ans;
    const char *fp = "same";
    char key[24];
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < 3 * CAP; i++) {
        int n = snprintf(key, sizeof(key), "k-%d", i);
        ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, key, (size_t)n, fp,
                                    strlen(fp), 0, &tk, &ans),
                         SHOP_IDEM_NEW);
        ck_assert_int_eq(
            idem_complete(t, &tk, &(struct shop_idem_answer){.order_id = 1}),
            0);
    }
    struct shop_snapshot snap;
    idem_counts(t, &snap);
    ck_assert_uint_eq(snap.idem_keys, CAP);
    ck_assert_uint_eq(snap.idem_capacity, CAP);
    /* The newest half is all there ... */
    for (int i = 3 * CAP - CAP / 2; i < 3 * CAP; i++) {
        int n = snprintf(key, sizeof(key), "k-%d", i);
        ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, key, (size_t)n, fp,
                                    strlen(fp), 0, &tk, &ans),
                         SHOP_IDEM_REPLAY);
    }
    /* ... and the oldest are all gone. */
    for (int i = 0; i < CAP; i++) {
        int n = snprintf(key, sizeof(key), "k-%d", i);
        ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, key, (size_t)n, fp,
                                    strlen(fp), 0, &tk, &ans),
                         SHOP_IDEM_NEW);
    }
    idem_destroy(t);
}
END_TEST

START_TEST(test_shop_idem_keys_expire_after_ttl)
{
    struct idem_table *t = NULL;
    ck_assert_int_eq(idem_create(8, 10, &t), 0);
    struct shop_idem_ticket tk;
    struct shop_idem_answer ans;
    const char *fa = "a", *fb = "b";
    const int64_t t0 = 1000 * NS_PER_S;
    ck_assert_int_eq(
        idem_begin(t, SHOP_IDEM_BUY, "k", 1, fa, strlen(fa), t0, &tk, &ans),
        SHOP_IDEM_NEW);
    ck_assert_int_eq(
        idem_complete(t, &tk, &(struct shop_idem_answer){.order_id = 1}), 0);
    /* Kept for 10 s after its first use, replays included. */
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, "k", 1, fa, strlen(fa),
                                t0 + 10 * NS_PER_S - 1, &tk, &ans),
                     SHOP_IDEM_REPLAY);
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, "k", 1, fb, strlen(fb),
                                t0 + 10 * NS_PER_S - 1, &tk, &ans),
                     SHOP_IDEM_MISMATCH);
    /* Then it is new again, for any request. */
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, "k", 1, fb, strlen(fb),
                                t0 + 10 * NS_PER_S, &tk, &ans),
                     SHOP_IDEM_NEW);
    struct shop_snapshot snap;
    idem_counts(t, &snap);
    ck_assert_uint_eq(snap.idem_keys, 1);
    idem_destroy(t);
    ck_assert_int_eq(idem_create(0, 10, &t), -EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(idem_create(8, 0, &t), -EINVAL);
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_shop_idem_keys_and_fingerprints_compared_in_full)
{
    /* Keys are kept whole: 255-byte keys that differ in their last byte
     * only are two keys, and a fingerprint that is a prefix of another is
     * another request. */
    struct idem_table *t = NULL;
    ck_assert_int_eq(idem_create(64, 60, &t), 0);
    struct shop_idem_ticket tk;
    struct shop_idem_answer ans;
    static char ka[SHOP_IDEM_KEY_MAX], kb[SHOP_IDEM_KEY_MAX];
    memset(ka, 'k', sizeof(ka));
    memset(kb, 'k', sizeof(kb));
    kb[SHOP_IDEM_KEY_MAX - 1] = 'l';
    const char *fp = "apple|2|null";
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, ka, sizeof(ka), fp,
                                strlen(fp), 0, &tk, &ans),
                     SHOP_IDEM_NEW);
    ck_assert_int_eq(
        idem_complete(t, &tk, &(struct shop_idem_answer){.order_id = 1}), 0);
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, kb, sizeof(kb), fp,
                                strlen(fp), 0, &tk, &ans),
                     SHOP_IDEM_NEW);
    ck_assert_int_eq(
        idem_complete(t, &tk, &(struct shop_idem_answer){.order_id = 2}), 0);
    /* A key that is a prefix of a kept one is another key too. */
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, ka, sizeof(ka) - 1, fp,
                                strlen(fp), 0, &tk, &ans),
                     SHOP_IDEM_NEW);
    idem_abort(t, &tk);
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, ka, sizeof(ka), fp,
                                strlen(fp), 0, &tk, &ans),
                     SHOP_IDEM_REPLAY);
    ck_assert_uint_eq(ans.order_id, 1);
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, kb, sizeof(kb), fp,
                                strlen(fp), 0, &tk, &ans),
                     SHOP_IDEM_REPLAY);
    ck_assert_uint_eq(ans.order_id, 2);
    /* "apple|2|null" against its prefix "apple|2|nul" and a longer one. */
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, ka, sizeof(ka), fp,
                                strlen(fp) - 1, 0, &tk, &ans),
                     SHOP_IDEM_MISMATCH);
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_BUY, ka, sizeof(ka),
                                "apple|2|nullx", 13, 0, &tk, &ans),
                     SHOP_IDEM_MISMATCH);
    /* The same key on the other endpoint is another key. */
    ck_assert_int_eq(idem_begin(t, SHOP_IDEM_RESTOCK, ka, sizeof(ka), fp,
                                strlen(fp), 0, &tk, &ans),
                     SHOP_IDEM_NEW);
    idem_destroy(t);
}
END_TEST

START_TEST(test_shop_fingerprints_are_the_canonical_request)
{
    char fp[SHOP_IDEM_FP_MAX];
    size_t n = shop_buy_fingerprint("apple", 2, NULL, fp);
    ck_assert_uint_eq(n, 12);
    ck_assert_int_eq(memcmp(fp, "apple|2|null", n), 0);
    n = shop_buy_fingerprint("apple", 2, "alice", fp);
    ck_assert_uint_eq(n, 15);
    ck_assert_int_eq(memcmp(fp, "apple|2|\"alice\"", n), 0);
    /* A customer named null is not an absent customer. */
    n = shop_buy_fingerprint("apple", 2, "null", fp);
    ck_assert_int_eq(memcmp(fp, "apple|2|\"null\"", n), 0);
    n = shop_restock_fingerprint("apple", 500, fp);
    ck_assert_uint_eq(n, 9);
    ck_assert_int_eq(memcmp(fp, "apple|500", n), 0);
    /* The longest request fits: a 64-byte SKU, the largest quantity and a
     * 128-byte customer. */
    char sku[SHOP_SKU_MAX + 1], cust[SHOP_CUSTOMER_MAX + 1];
    memset(sku, 's', SHOP_SKU_MAX);
    sku[SHOP_SKU_MAX] = '\0';
    memset(cust, '|', SHOP_CUSTOMER_MAX);
    cust[SHOP_CUSTOMER_MAX] = '\0';
    n = shop_buy_fingerprint(sku, 4294967295u, cust, fp);
    ck_assert_uint_eq(n, SHOP_SKU_MAX + 1 + 10 + 1 + 2 + SHOP_CUSTOMER_MAX);
    ck_assert_uint_lt(n, SHOP_IDEM_FP_MAX);
    ck_assert_int_eq(fp[n - 1], '"');
}
END_TEST

struct idem_racer {
    struct shop *s;
    pthread_barrier_t *go;
    int result;
    uint64_t order_id;
};

static void *idem_racer_main(void *arg)
{
    struct idem_racer *r = arg;
    struct shop_idem_ticket tk;
    struct shop_idem_answer ans;
    const char *fp = "one request";

    pthread_barrier_wait(r->go);
    r->result = shop_idem_begin(r->s, SHOP_IDEM_BUY, "race", 4, fp, strlen(fp),
                                &tk, &ans);
    if (r->result == SHOP_IDEM_NEW)
        shop_idem_complete(r->s, &tk,
                           &(struct shop_idem_answer){.order_id = 1});
    else if (r->result == SHOP_IDEM_REPLAY)
        r->order_id = ans.order_id;
    return NULL;
}

START_TEST(test_shop_idem_one_winner_among_racers)
{
    enum { RACERS = 16 };
    struct shop *s = make_shop(1, 8, 64);
    struct idem_racer r[RACERS];
    pthread_t tid[RACERS];
    pthread_barrier_t go;
    ck_assert_int_eq(pthread_barrier_init(&go, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct idem_racer){.s = s, .go = &go};
        ck_assert_int_eq(pthread_create(&tid[i], NULL, idem_racer_main, &r[i]),
                         0);
    }
    int news = 0, others = 0;
    for (int i = 0; i < RACERS; i++) {
        ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
        if (r[i].result == SHOP_IDEM_NEW)
            news++;
        else if (r[i].result == SHOP_IDEM_IN_PROGRESS ||
                 (r[i].result == SHOP_IDEM_REPLAY && r[i].order_id == 1))
            others++;
    }
    ck_assert_int_eq(news, 1);
    ck_assert_int_eq(others, RACERS - 1);
    pthread_barrier_destroy(&go);
    shop_destroy(s);
}
END_TEST

/* ---- one floor over a shared store (Redis) ------------------------------ */

/* The verdicts of accepts (committer thread): ok and failed counts. */
struct accepts {
    _Atomic unsigned ok, failed;
};

static void count_accept(void *arg, int rc, uint64_t id)
{
    struct accepts *a = arg;
    (void)id;
    if (rc == 0)
        atomic_fetch_add(&a->ok, 1);
    else
        atomic_fetch_add(&a->failed, 1);
}

/* A short pause of a wait loop on a condition only a poll can see. */
static void short_nap(void)
{
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static struct redis_server shop_redis;

/* Open and load the Redis store of `shop_redis` as `instance`. */
static struct store *redis_store_for(const char *instance,
                                     struct store_state *state)
{
    struct store_options opt = {
        .kind = STORE_REDIS,
        .path = shop_redis.sock,
        .instance = instance,
        .reclaim_ms = 5000,
        .idempotency_ttl = 60,
        .queue_capacity = 1000,
    };
    struct store_product cat[TEST_NPRODUCTS];
    char err[256] = "";
    struct store *st = NULL;

    memset(cat, 0, sizeof(cat));
    for (size_t i = 0; i < TEST_NPRODUCTS; i++) {
        _Static_assert(sizeof(cat[i].sku) == sizeof(test_catalog[i].sku) &&
                           sizeof(cat[i].name) == sizeof(test_catalog[i].name),
                       "catalog field sizes");
        memcpy(cat[i].sku, test_catalog[i].sku, sizeof(cat[i].sku));
        memcpy(cat[i].name, test_catalog[i].name, sizeof(cat[i].name));
        cat[i].price_cents = test_catalog[i].price_cents;
        cat[i].initial = cat[i].stock = test_catalog[i].stock;
    }
    int rc = store_open(&opt, &st, err, sizeof(err));
    ck_assert_msg(rc == 0, "open: %s", err);
    rc = store_load(st, cat, TEST_NPRODUCTS, state, err, sizeof(err));
    ck_assert_msg(rc == 0, "load: %s", err);
    return st;
}

static struct shop *redis_shop(struct store *st, const struct store_state *s,
                               size_t workers, unsigned work_ms)
{
    struct shop_config cfg = {
        .workers = workers,
        .queue_capacity = 64,
        .order_history = 1024,
        .work_ms = work_ms,
        .store = st,
    };
    struct shop *shop = NULL;
    ck_assert_int_eq(shop_create_stored(&cfg, s, &shop), 0);
    ck_assert(shop_shared(shop));
    ck_assert_int_eq(shop_start(shop), 0);
    return shop;
}

/* Submit `n` orders of `qty` units of `product`, each once it may (the
 * local reservation refuses while the floor is full), and wait for every
 * verdict. */
static void submit_stored(struct shop *shop, size_t n, uint32_t product,
                          struct accepts *a)
{
    struct order o = make_order(product, 1);
    unsigned want = atomic_load(&a->ok) + atomic_load(&a->failed);

    for (size_t i = 0; i < n; i++) {
        int rc;
        while ((rc = shop_submit_async(shop, &o, count_accept, a)) == -EAGAIN)
            short_nap();
        ck_assert_int_eq(rc, 0);
    }
    want += (unsigned)n;
    while (atomic_load(&a->ok) + atomic_load(&a->failed) < want)
        short_nap();
    ck_assert_uint_eq(atomic_load(&a->failed), 0);
}

/* Wait until this instance has processed `n` orders (results committed). */
static void wait_processed(struct shop *shop, uint64_t n)
{
    struct shop_snapshot snap;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        shop_snapshot(shop, &snap);
        if (snap.processed >= n)
            return;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        ck_assert_msg(now.tv_sec - start.tv_sec < 20, "processed %llu of %llu",
                      (unsigned long long)snap.processed,
                      (unsigned long long)n);
        short_nap();
    }
}

START_TEST(test_shop_redis_elves_take_from_the_local_belt)
{
    signal(SIGPIPE, SIG_IGN);
    int rc = redis_server_start(&shop_redis, false);
    ck_assert_msg(rc == 0, "redis-server did not start: %s", strerror(-rc));
    struct store_state state;
    struct store *st = redis_store_for("solo", &state);
    struct shop *shop = redis_shop(st, &state, 2, 0);
    store_state_free(&state);

    /* 90 apples (stock 100) and 20 cherries (stock 5). */
    struct accepts a = {0};
    submit_stored(shop, 90, 0, &a);
    submit_stored(shop, 20, 2, &a);
    wait_processed(shop, 110);

    struct shop_snapshot snap;
    shop_snapshot(shop, &snap);
    ck_assert_uint_eq(snap.accepted, 110);
    ck_assert_uint_eq(snap.processed, 110);
    ck_assert_uint_eq(snap.fulfilled, 95); /* the store decided */
    ck_assert_uint_eq(snap.out_of_stock, 15);
    ck_assert_uint_eq(snap.queue_depth, 0);
    ck_assert_uint_eq(snap.in_flight, 0);
    /* Every order went over this instance's own belt to the pool's elves. */
    ck_assert_uint_ge(snap.queue_high_water, 1);
    ck_assert_uint_le(snap.queue_high_water, snap.queue_capacity);
    uint64_t by_elves = 0;
    for (size_t i = 0; i < shop_worker_count(shop); i++)
        by_elves += shop_worker_processed(shop, i);
    ck_assert_uint_eq(by_elves, 110);
    struct order got;
    ck_assert_int_eq(shop_order(shop, 1, &got), 0);
    ck_assert_int_eq(got.status, ORDER_FULFILLED);
    ck_assert_int_ge(got.worker, 0);

    /* The same calls as in memory: the reader answers later, naming the
     * instances; the report shows the shared store's parts. */
    ck_assert(shop_answers_later(shop));
    struct read_seen rs;
    memset(&rs, 0, sizeof(rs));
    rs.r.kind = SHOP_READ_ORDER;
    rs.r.id = 1;
    rs.r.done = note_read;
    ck_assert_int_eq(shop_read(shop, &rs.r), 0);
    while (!atomic_load(&rs.done))
        short_nap();
    ck_assert_int_eq(rs.r.rc, 0);
    ck_assert(rs.r.named);
    ck_assert_str_eq(rs.r.accepted_by, "solo");
    struct shop_report r;
    ck_assert_int_eq(shop_report(shop, &r), 0);
    ck_assert_uint_eq(r.snap.accepted, 110);
    ck_assert_str_eq(r.store_kind, "redis");
    ck_assert(r.store.durable);
    ck_assert(r.shared);
    ck_assert_uint_ge(r.store.commits, 1);
    ck_assert_uint_ge(r.commit.count, 1);
    shop_report_release(&r);

    ck_assert_int_eq(shop_drain(shop, NULL), 0);
    ck_assert_uint_eq(shop_left(shop), 0);
    shop_destroy(shop);
    store_close(st);
    redis_server_destroy(&shop_redis);
}
END_TEST

START_TEST(test_shop_redis_drain_leaves_the_rest_to_others)
{
    signal(SIGPIPE, SIG_IGN);
    int rc = redis_server_start(&shop_redis, false);
    ck_assert_msg(rc == 0, "redis-server did not start: %s", strerror(-rc));
    struct store_state state;
    struct store *st = redis_store_for("first", &state);
    /* One elf, 20 ms per order: 30 orders take 600 ms at least. */
    struct shop *shop = redis_shop(st, &state, 1, 20);
    store_state_free(&state);
    struct accepts a = {0};
    submit_stored(shop, 30, 0, &a);
    wait_processed(shop, 1);

    /* Drain: the feeder stops, the elf finishes what this instance holds
     * (at most one order per elf with work_ms), results commit. */
    ck_assert_int_eq(shop_drain(shop, NULL), 0);
    ck_assert_uint_eq(shop_left(shop), 0);
    struct shop_snapshot snap;
    shop_snapshot(shop, &snap);
    uint64_t first = snap.processed;
    ck_assert_uint_lt(first, 30);
    ck_assert_uint_eq(snap.queue_depth, 0);
    shop_destroy(shop);

    /* The rest waited in Redis: another instance finishes them. */
    struct store *st2 = redis_store_for("second", &state);
    struct shop *other = redis_shop(st2, &state, 2, 0);
    store_state_free(&state);
    wait_processed(other, 30 - first);
    ck_assert_int_eq(shop_drain(other, NULL), 0);
    shop_snapshot(other, &snap);
    ck_assert_uint_eq(snap.processed, 30 - first);
    shop_destroy(other);
    store_close(st2);
    store_close(st);
    redis_server_destroy(&shop_redis);
}
END_TEST

Suite *shop_suite(void)
{
    Suite *suite = suite_create("shop");
    TCase *core = tcase_create("core");
    TCase *hist = tcase_create("histograms");
    TCase *conc = tcase_create("concurrency");

    tcase_set_timeout(core, 30);
    tcase_add_test(core, test_shop_ids_start_at_one_and_increase);
    tcase_add_test(core, test_shop_report_and_one_call_per_action_in_memory);
    tcase_add_test(core, test_shop_order_goes_queued_to_fulfilled);
    tcase_add_test(core, test_shop_out_of_stock_leaves_stock_unchanged);
    tcase_add_test(core, test_shop_full_belt_rejects_with_eagain);
    tcase_add_test(core, test_shop_draining_rejects_with_epipe);
    tcase_add_test(core, test_shop_order_book_keeps_last_history);
    tcase_add_test(core, test_shop_invalid_order_rejected_with_einval);
    tcase_add_test(core, test_shop_find_product_exact_match_only);
    tcase_add_test(core, test_shop_find_product_unsorted_catalog);
    tcase_add_test(core, test_shop_create_rejects_bad_config);
    tcase_add_test(core, test_shop_demo_catalog_is_well_formed);
    suite_add_tcase(suite, core);

    tcase_set_timeout(hist, 30);
    tcase_add_test(hist, test_shop_latency_percentiles_from_known_values);
    tcase_add_test(hist,
                   test_shop_prometheus_buckets_are_inclusive_and_cumulative);
    tcase_add_test(hist, test_shop_histograms_count_every_processed_order);
    suite_add_tcase(suite, hist);

    tcase_set_timeout(conc, 120);
    tcase_add_test(conc, test_shop_concurrent_orders_never_oversell);
    tcase_add_test(conc, test_shop_safe_mode_sells_exactly_the_stock);
    tcase_add_test(conc, test_shop_unsafe_mode_loses_updates);
    tcase_add_test(conc, test_shop_drain_past_deadline_times_out_then_finishes);
    tcase_add_test(conc, test_shop_restock_invariant_under_concurrent_buys);
    tcase_add_test(conc, test_shop_idem_one_winner_among_racers);
    suite_add_tcase(suite, conc);

    TCase *idem = tcase_create("restock_and_keys");
    tcase_set_timeout(idem, 30);
    tcase_add_test(idem, test_shop_restock_adds_to_stock_and_restocked);
    tcase_add_test(idem, test_shop_restock_refuses_overflow);
    tcase_add_test(idem, test_shop_idem_new_in_use_replay_mismatch);
    tcase_add_test(idem, test_shop_idem_abort_frees_the_key);
    tcase_add_test(idem, test_shop_idem_bounded_oldest_dropped_first);
    tcase_add_test(idem, test_shop_idem_keys_expire_after_ttl);
    tcase_add_test(idem, test_shop_idem_sharded_table_keeps_the_newest);
    tcase_add_test(idem, test_shop_idem_keys_and_fingerprints_compared_in_full);
    tcase_add_test(idem, test_shop_fingerprints_are_the_canonical_request);
    suite_add_tcase(suite, idem);

    /* A real redis-server per test (tests/lib/redis_harness.c). */
    TCase *shared = tcase_create("shared_store");
    tcase_set_timeout(shared, 60);
    tcase_add_test(shared, test_shop_redis_elves_take_from_the_local_belt);
    tcase_add_test(shared, test_shop_redis_drain_leaves_the_rest_to_others);
    suite_add_tcase(suite, shared);
    return suite;
}
