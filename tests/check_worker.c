/*
 * check_worker.c - unit tests of the worker pool (worker/).
 *
 * Handlers run on the pool's threads, so they never call ck_assert: they
 * record what they saw (atomics, or fields under a mutex), and the test
 * thread asserts after pool_drain has joined the workers. Handlers that must
 * hold a worker still wait on a condition the test controls; the test learns
 * that a handler has started from a condition too, never by sleeping.
 */
#include <check.h>

#include "tests/suites.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "worker/worker.h"

#define MAX_WORKERS 16

/* ---- counting handler ---------------------------------------------------
 * Items are uint32 values 0..n-1 sent by one producer in order, so item v
 * must arrive with sequence number v + 1. */

struct count_ctx {
    size_t n_items;
    _Atomic unsigned *seen;                 /* [item] times handled */
    _Atomic uint64_t by_index[MAX_WORKERS]; /* [worker] items handled */
    _Atomic size_t bad;                     /* wrong seq or index */
    /* Only with a single worker (its one writer): items arrive in order. */
    bool check_order;
    uint32_t next;
    size_t out_of_order;
};

/* A new channel / pool; the test fails if creation fails. */
static struct queue *new_queue(size_t cap, size_t elem)
{
    struct queue *q = NULL;

    ck_assert_int_eq(queue_create(cap, elem, &q), 0);
    ck_assert_ptr_nonnull(q);
    return q;
}

static struct pool *new_pool(struct queue *q, size_t nthreads, pool_handler fn,
                             void *arg)
{
    struct pool *p = NULL;

    ck_assert_int_eq(pool_create(q, nthreads, 1, fn, arg, &p), 0);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void count_handler(void *item, uint64_t seq, unsigned worker, void *arg)
{
    struct count_ctx *c = arg;
    uint32_t v;

    memcpy(&v, item, sizeof(v));
    if (v >= c->n_items || seq != (uint64_t)v + 1 || worker >= MAX_WORKERS) {
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    if (c->check_order && v != c->next++)
        c->out_of_order++;
    atomic_fetch_add(&c->seen[v], 1);
    atomic_fetch_add(&c->by_index[worker], 1);
}

static void count_init(struct count_ctx *c, size_t n_items)
{
    memset(c, 0, sizeof(*c));
    c->n_items = n_items;
    c->seen = calloc(n_items, sizeof(*c->seen));
    ck_assert_ptr_nonnull(c->seen);
    for (size_t i = 0; i < n_items; i++)
        atomic_init(&c->seen[i], 0);
    for (size_t i = 0; i < MAX_WORKERS; i++)
        atomic_init(&c->by_index[i], 0);
    atomic_init(&c->bad, 0);
}

/* Every item handled exactly once, by a worker whose own count agrees with
 * the pool's; the pool idle and fully counted. */
static void count_check(struct count_ctx *c, struct pool *p)
{
    size_t missing = 0, repeated = 0, i;
    uint64_t total = 0;

    ck_assert_uint_eq(atomic_load(&c->bad), 0);
    ck_assert_uint_eq(c->out_of_order, 0);
    for (i = 0; i < c->n_items; i++) {
        unsigned n = atomic_load(&c->seen[i]);

        missing += n == 0;
        repeated += n > 1;
    }
    ck_assert_uint_eq(missing, 0);
    ck_assert_uint_eq(repeated, 0);
    for (i = 0; i < pool_size(p); i++) {
        ck_assert_uint_eq(pool_worker_handled(p, i),
                          atomic_load(&c->by_index[i]));
        ck_assert(!pool_worker_busy(p, i));
        total += pool_worker_handled(p, i);
    }
    ck_assert_uint_eq(total, c->n_items);
    ck_assert_uint_eq(pool_in_flight(p), 0);
    free(c->seen);
}

START_TEST(test_pool_create_rejects_bad_args)
{
    struct queue *q = new_queue(4, sizeof(uint32_t));
    struct count_ctx c;
    struct pool *p = (struct pool *)&c; /* any non-NULL value */

    ck_assert_int_eq(pool_create(q, 0, 1, count_handler, &c, &p), -EINVAL);
    ck_assert_ptr_null(p);
    p = (struct pool *)&c;
    ck_assert_int_eq(pool_create(q, 2, 1, NULL, &c, &p), -EINVAL);
    ck_assert_ptr_null(p);
    p = (struct pool *)&c;
    ck_assert_int_eq(pool_create(NULL, 2, 1, count_handler, &c, &p), -EINVAL);
    ck_assert_ptr_null(p);
    p = (struct pool *)&c;
    ck_assert_int_eq(pool_create(q, 2, 0, count_handler, &c, &p), -EINVAL);
    ck_assert_ptr_null(p);
    p = (struct pool *)&c;
    ck_assert_int_eq(
        pool_create(q, 2, POOL_BATCH_MAX + 1, count_handler, &c, &p), -EINVAL);
    ck_assert_ptr_null(p);
    pool_destroy(NULL);
    queue_destroy(q);
}
END_TEST

START_TEST(test_pool_handles_every_item_once)
{
    const size_t n_items = 20000, nthreads = 4;
    struct queue *q = new_queue(64, sizeof(uint32_t));
    struct count_ctx c;
    struct pool *p;

    ck_assert_ptr_nonnull(q);
    count_init(&c, n_items);
    p = new_pool(q, nthreads, count_handler, &c);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(pool_size(p), nthreads);
    ck_assert_int_eq(pool_start(p), 0);
    for (uint32_t v = 0; v < n_items; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    ck_assert(queue_closed(q));
    ck_assert_uint_eq(queue_len(q), 0);
    count_check(&c, p);
    /* Out-of-range readers answer harmlessly. */
    ck_assert_uint_eq(pool_worker_handled(p, nthreads), 0);
    ck_assert(!pool_worker_busy(p, nthreads));
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST

START_TEST(test_pool_single_worker_keeps_order)
{
    const size_t n_items = 1000;
    struct queue *q = new_queue(n_items, sizeof(uint32_t));
    struct count_ctx c;
    struct pool *p;

    ck_assert_ptr_nonnull(q);
    count_init(&c, n_items);
    c.check_order = true;
    for (uint32_t v = 0; v < n_items; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    p = new_pool(q, 1, count_handler, &c);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pool_start(p), 0);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    count_check(&c, p);
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST

/* Items already on the channel when drain starts are all handled before
 * drain returns: drain closes, it does not discard. */
START_TEST(test_pool_drain_waits_for_queued_items)
{
    const size_t n_items = 500, nthreads = 3;
    struct queue *q = new_queue(n_items, sizeof(uint32_t));
    struct count_ctx c;
    struct pool *p;

    ck_assert_ptr_nonnull(q);
    count_init(&c, n_items);
    for (uint32_t v = 0; v < n_items; v++)
        ck_assert_int_eq(queue_try_send(q, &v, NULL), 0);
    ck_assert_uint_eq(queue_len(q), n_items); /* full before start */
    p = new_pool(q, nthreads, count_handler, &c);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pool_start(p), 0);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    ck_assert_uint_eq(queue_len(q), 0);
    count_check(&c, p);
    ck_assert_int_eq(pool_drain(p, NULL), 0); /* idempotent */
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST

START_TEST(test_pool_drain_without_start)
{
    struct queue *q = new_queue(4, sizeof(uint32_t));
    struct count_ctx c;
    struct pool *p;

    ck_assert_ptr_nonnull(q);
    count_init(&c, 1);
    p = new_pool(q, 2, count_handler, &c);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    ck_assert(queue_closed(q));
    ck_assert_uint_eq(pool_in_flight(p), 0);
    free(c.seen);
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST

/* Receiving in batches hands out every item exactly once too. */
START_TEST(test_pool_batches_handle_every_item_once)
{
    const size_t n_items = 20000, nthreads = 4;
    struct queue *q = new_queue(64, sizeof(uint32_t));
    struct count_ctx c;
    struct pool *p = NULL;

    count_init(&c, n_items);
    ck_assert_int_eq(pool_create(q, nthreads, 16, count_handler, &c, &p), 0);
    ck_assert_int_eq(pool_start(p), 0);
    for (uint32_t v = 0; v < n_items; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    count_check(&c, p);
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST

/* ---- a handler the test holds ------------------------------------------- */

struct hold_ctx {
    pthread_mutex_t mu; /* guards entered and released */
    pthread_cond_t cv;  /* entered grew, or released was set */
    unsigned entered;   /* handler calls begun */
    bool released;      /* handlers may return */
    _Atomic uint64_t done;
};

static void hold_handler(void *item, uint64_t seq, unsigned worker, void *arg)
{
    struct hold_ctx *h = arg;

    (void)item;
    (void)seq;
    (void)worker;
    pthread_mutex_lock(&h->mu);
    h->entered++;
    pthread_cond_broadcast(&h->cv);
    while (!h->released)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    atomic_fetch_add(&h->done, 1);
}

static struct timespec monotonic_after_ms(long ms)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_nsec += ms * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    return t;
}

/* A batch a worker has taken counts as in flight, all of it, until each
 * item's handler has returned: nothing is lost from the books. */
START_TEST(test_pool_in_flight_counts_a_held_batch)
{
    struct queue *q = new_queue(8, sizeof(uint32_t));
    struct hold_ctx h = {.entered = 0};
    struct pool *p = NULL;

    ck_assert_int_eq(pthread_mutex_init(&h.mu, NULL), 0);
    ck_assert_int_eq(pthread_cond_init(&h.cv, NULL), 0);
    atomic_init(&h.done, 0);
    for (uint32_t v = 0; v < 4; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    ck_assert_int_eq(pool_create(q, 1, 4, hold_handler, &h, &p), 0);
    ck_assert_int_eq(pool_start(p), 0);
    pthread_mutex_lock(&h.mu);
    while (h.entered == 0)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    /* One lock round trip took all four: the belt is empty, the worker
     * holds them. */
    ck_assert_uint_eq(queue_len(q), 0);
    ck_assert_uint_eq(pool_in_flight(p), 4);
    ck_assert(pool_worker_busy(p, 0));
    pthread_mutex_lock(&h.mu);
    h.released = true;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    ck_assert_uint_eq(atomic_load(&h.done), 4);
    ck_assert_uint_eq(pool_worker_handled(p, 0), 4);
    ck_assert_uint_eq(pool_in_flight(p), 0);
    ck_assert(!pool_worker_busy(p, 0));
    pool_destroy(p);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
    queue_destroy(q);
}
END_TEST

START_TEST(test_pool_drain_times_out_while_handler_blocked)
{
    const size_t n_items = 6, nthreads = 2;
    struct queue *q = new_queue(8, sizeof(uint32_t));
    struct hold_ctx h = {.entered = 0};
    struct timespec past, soon;
    struct pool *p;
    uint64_t busy = 0;

    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(pthread_mutex_init(&h.mu, NULL), 0);
    ck_assert_int_eq(pthread_cond_init(&h.cv, NULL), 0);
    atomic_init(&h.done, 0);
    for (uint32_t v = 0; v < n_items; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    p = new_pool(q, nthreads, hold_handler, &h);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pool_start(p), 0);

    /* Wait until a handler is running (and held). */
    pthread_mutex_lock(&h.mu);
    while (h.entered == 0)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    ck_assert_uint_ge(pool_in_flight(p), 1);
    ck_assert_uint_le(pool_in_flight(p), nthreads);
    for (size_t i = 0; i < nthreads; i++)
        busy += pool_worker_busy(p, i);
    ck_assert_uint_ge(busy, 1);

    /* A deadline already past, and one that passes while we wait: no
     * handler can return before we release it, so both time out. */
    past = monotonic_after_ms(0);
    ck_assert_int_eq(pool_drain(p, &past), -ETIMEDOUT);
    soon = monotonic_after_ms(20);
    ck_assert_int_eq(pool_drain(p, &soon), -ETIMEDOUT);
    ck_assert(queue_closed(q));
    ck_assert_uint_eq(atomic_load(&h.done), 0);

    pthread_mutex_lock(&h.mu);
    h.released = true;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    ck_assert_uint_eq(atomic_load(&h.done), n_items);
    ck_assert_uint_eq(pool_in_flight(p), 0);
    ck_assert_uint_eq(pool_worker_handled(p, 0) + pool_worker_handled(p, 1),
                      n_items);
    ck_assert_uint_eq(queue_len(q), 0);
    /* Idempotent after success, with or without a deadline. */
    past = monotonic_after_ms(0);
    ck_assert_int_eq(pool_drain(p, &past), 0);
    ck_assert_int_eq(pool_drain(p, NULL), 0);

    pool_destroy(p);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
    queue_destroy(q);
}
END_TEST

/* A deadline that is far away does not get in the way of a normal drain. */
START_TEST(test_pool_drain_with_deadline_succeeds)
{
    const size_t n_items = 300;
    struct queue *q = new_queue(n_items, sizeof(uint32_t));
    struct timespec later;
    struct count_ctx c;
    struct pool *p;

    ck_assert_ptr_nonnull(q);
    count_init(&c, n_items);
    for (uint32_t v = 0; v < n_items; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    p = new_pool(q, 2, count_handler, &c);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pool_start(p), 0);
    later = monotonic_after_ms(0);
    later.tv_sec += 3600;
    ck_assert_int_eq(pool_drain(p, &later), 0);
    count_check(&c, p);
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST

/* ---- signal mask --------------------------------------------------------- */

struct sig_ctx {
    pthread_barrier_t all_in; /* one party per worker, plus none else */
    /* [worker] written by that worker only, read after the join. */
    int mask_rc[MAX_WORKERS];
    bool term_blocked[MAX_WORKERS];
    bool int_blocked[MAX_WORKERS];
    _Atomic unsigned calls[MAX_WORKERS];
};

static void sig_handler(void *item, uint64_t seq, unsigned worker, void *arg)
{
    struct sig_ctx *s = arg;
    sigset_t cur;

    (void)item;
    (void)seq;
    if (worker >= MAX_WORKERS)
        return;
    atomic_fetch_add(&s->calls[worker], 1);
    sigemptyset(&cur);
    s->mask_rc[worker] = pthread_sigmask(SIG_BLOCK, NULL, &cur);
    s->term_blocked[worker] = sigismember(&cur, SIGTERM) == 1;
    s->int_blocked[worker] = sigismember(&cur, SIGINT) == 1;
    /* Hold each worker here until every worker has an item, so the n items
     * go to n different workers. */
    pthread_barrier_wait(&s->all_in);
}

START_TEST(test_pool_workers_block_termination_signals)
{
    const size_t nthreads = 3;
    struct queue *q = new_queue(nthreads, sizeof(uint32_t));
    struct sig_ctx s;
    sigset_t unblock, saved, now;
    struct pool *p;
    size_t i;

    ck_assert_ptr_nonnull(q);
    memset(&s, 0, sizeof(s));
    for (i = 0; i < MAX_WORKERS; i++)
        atomic_init(&s.calls[i], 0);
    ck_assert_int_eq(pthread_barrier_init(&s.all_in, NULL, nthreads), 0);
    /* The test thread (the pool's creator) has the signals unblocked. */
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGTERM);
    sigaddset(&unblock, SIGINT);
    ck_assert_int_eq(pthread_sigmask(SIG_UNBLOCK, &unblock, &saved), 0);

    for (uint32_t v = 0; v < nthreads; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    p = new_pool(q, nthreads, sig_handler, &s);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pool_start(p), 0);

    /* pool_start gave the creator its own mask back. */
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &now), 0);
    ck_assert_int_eq(sigismember(&now, SIGTERM), 0);
    ck_assert_int_eq(sigismember(&now, SIGINT), 0);

    ck_assert_int_eq(pool_drain(p, NULL), 0);
    for (i = 0; i < nthreads; i++) {
        ck_assert_uint_eq(atomic_load(&s.calls[i]), 1);
        ck_assert_int_eq(s.mask_rc[i], 0);
        ck_assert(s.term_blocked[i]);
        ck_assert(s.int_blocked[i]);
    }
    pool_destroy(p);
    pthread_barrier_destroy(&s.all_in);
    ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &saved, NULL), 0);
    queue_destroy(q);
}
END_TEST

/* ---- all or none --------------------------------------------------------- */

/* ---- resize and pause --------------------------------------------------- */

/* Every item handled once over all slots a resized pool may have used. */
static void count_check_slots(struct count_ctx *c, struct pool *p)
{
    size_t missing = 0, repeated = 0, i;
    uint64_t total = 0;

    ck_assert_uint_eq(atomic_load(&c->bad), 0);
    for (i = 0; i < c->n_items; i++) {
        unsigned n = atomic_load(&c->seen[i]);

        missing += n == 0;
        repeated += n > 1;
    }
    ck_assert_uint_eq(missing, 0);
    ck_assert_uint_eq(repeated, 0);
    for (i = 0; i < MAX_WORKERS; i++) {
        ck_assert_uint_eq(pool_worker_handled(p, i),
                          atomic_load(&c->by_index[i]));
        ck_assert(!pool_worker_busy(p, i));
        total += pool_worker_handled(p, i);
    }
    ck_assert_uint_eq(total, c->n_items);
    ck_assert_uint_eq(pool_in_flight(p), 0);
    free(c->seen);
}

struct producer {
    struct queue *q;
    uint32_t n;
    _Atomic bool done;
};

static void *produce(void *arg)
{
    struct producer *pr = arg;

    for (uint32_t v = 0; v < pr->n; v++)
        if (queue_send(pr->q, &v, NULL) != 0)
            break;
    atomic_store(&pr->done, true);
    return NULL;
}

/* A producer fills the belt while the pool grows, shrinks and pauses over
 * and over: every item is handled exactly once, by some slot. */
START_TEST(test_pool_resize_under_producer)
{
    static const size_t sizes[] = {4, 1, 8, 2, MAX_WORKERS, 3, 1, 12};
    struct queue *q = new_queue(64, sizeof(uint32_t));
    struct producer pr = {.q = q, .n = 20000};
    struct count_ctx c;
    struct pool *p = NULL;
    pthread_t t;
    size_t round = 0;

    count_init(&c, pr.n);
    atomic_init(&pr.done, false);
    ck_assert_int_eq(pool_create(q, 2, 4, count_handler, &c, &p), 0);
    ck_assert_int_eq(pool_start(p), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, produce, &pr), 0);
    while (!atomic_load(&pr.done) || round < 40) {
        size_t n = sizes[round % (sizeof(sizes) / sizeof(sizes[0]))];

        ck_assert_int_eq(pool_resize(p, n), 0);
        ck_assert_uint_eq(pool_size(p), n);
        ck_assert_int_eq(pool_pause(p, round % 3 == 0), 0);
        ck_assert_int_eq(pool_set_batch(p, round % 2 ? 1 : 4), 0);
        round++;
    }
    ck_assert_int_eq(pool_pause(p, false), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    count_check_slots(&c, p);
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST

/* Paused, no worker takes an item (new ones neither): the belt fills.
 * Un-paused, they go on. */
START_TEST(test_pool_pause_takes_nothing)
{
    const uint32_t n = 8;
    struct queue *q = new_queue(n, sizeof(uint32_t));
    struct count_ctx c;
    struct pool *p = new_pool(q, 2, count_handler, &c);
    uint32_t v;

    count_init(&c, n);
    ck_assert_int_eq(pool_start(p), 0);
    ck_assert_int_eq(pool_pause(p, true), 0);
    ck_assert(pool_paused(p));
    for (v = 0; v < n; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    ck_assert_int_eq(pool_resize(p, 4), 0);
    ck_assert_int_eq(queue_try_send(q, &v, NULL), -EAGAIN);
    ck_assert_uint_eq(queue_len(q), n);
    ck_assert_uint_eq(pool_in_flight(p), 0);
    ck_assert_int_eq(pool_pause(p, false), 0);
    ck_assert(!pool_paused(p));
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    count_check_slots(&c, p);
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST

/* The drain un-pauses: a paused pool's belt is still emptied. */
START_TEST(test_pool_drain_while_paused)
{
    const uint32_t n = 16;
    struct queue *q = new_queue(n, sizeof(uint32_t));
    struct count_ctx c;
    struct pool *p = new_pool(q, 3, count_handler, &c);

    count_init(&c, n);
    ck_assert_int_eq(pool_start(p), 0);
    ck_assert_int_eq(pool_pause(p, true), 0);
    for (uint32_t v = 0; v < n; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    ck_assert(!pool_paused(p));
    ck_assert_int_eq(pool_pause(p, true), -EPIPE);
    ck_assert_int_eq(pool_resize(p, 2), -EPIPE);
    count_check_slots(&c, p);
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST

static void hold_release(struct hold_ctx *h)
{
    pthread_mutex_lock(&h->mu);
    h->released = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

struct drain_call {
    struct pool *p;
    int rc;
};

static void *drain_thread(void *arg)
{
    struct drain_call *d = arg;

    d->rc = pool_drain(d->p, NULL);
    return NULL;
}

/* Two workers each hold a batch of 4 in the handler. Shrinking (and
 * growing back, and shrinking again) returns without waiting for them; a
 * drain started meanwhile waits; once released, every item is handled
 * once: the leaving worker finished its whole batch. */
START_TEST(test_pool_shrink_and_drain_finish_held_batches)
{
    struct queue *q = new_queue(8, sizeof(uint32_t));
    struct hold_ctx h = {.entered = 0};
    struct drain_call d = {.rc = -1};
    struct pool *p = NULL;
    pthread_t t;

    ck_assert_int_eq(pthread_mutex_init(&h.mu, NULL), 0);
    ck_assert_int_eq(pthread_cond_init(&h.cv, NULL), 0);
    atomic_init(&h.done, 0);
    for (uint32_t v = 0; v < 8; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    ck_assert_int_eq(pool_create(q, 2, 4, hold_handler, &h, &p), 0);
    ck_assert_int_eq(pool_start(p), 0);
    pthread_mutex_lock(&h.mu);
    while (h.entered < 2)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    ck_assert_uint_eq(pool_in_flight(p), 8);

    ck_assert_int_eq(pool_resize(p, 1), 0);
    ck_assert_uint_eq(pool_size(p), 1);
    ck_assert_int_eq(pool_resize(p, 3), 0);
    ck_assert_int_eq(pool_resize(p, 1), 0);
    ck_assert_uint_eq(pool_in_flight(p), 8);
    d.p = p;
    ck_assert_int_eq(pthread_create(&t, NULL, drain_thread, &d), 0);
    hold_release(&h);
    pthread_join(t, NULL);
    ck_assert_int_eq(d.rc, 0);
    ck_assert_uint_eq(atomic_load(&h.done), 8);
    ck_assert_uint_eq(pool_worker_handled(p, 0) + pool_worker_handled(p, 1) +
                          pool_worker_handled(p, 2),
                      8);
    ck_assert_uint_eq(pool_in_flight(p), 0);
    pool_destroy(p);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
    queue_destroy(q);
}
END_TEST

START_TEST(test_pool_resize_rejects_bad_args)
{
    struct queue *q = new_queue(4, sizeof(uint32_t));
    struct count_ctx c;
    struct pool *p = new_pool(q, 1, count_handler, &c);

    count_init(&c, 1);
    ck_assert_int_eq(pool_resize(p, 2), -EINVAL); /* not started */
    ck_assert_int_eq(pool_start(p), 0);
    ck_assert_int_eq(pool_resize(p, 0), -EINVAL);
    ck_assert_int_eq(pool_resize(p, POOL_MAX + 1), -EINVAL);
    ck_assert_int_eq(pool_set_batch(p, 2), -EINVAL); /* created with 1 */
    ck_assert_int_eq(pool_set_batch(p, 0), -EINVAL);
    ck_assert_uint_eq(pool_size(p), 1);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    free(c.seen);
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST

/* Sanitizer runtimes reserve and map memory of their own, which a tight
 * address-space limit would break; the start-failure test is skipped there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define POOL_TEST_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define POOL_TEST_UNDER_SANITIZER 1
#endif
#endif

#ifndef POOL_TEST_UNDER_SANITIZER
/* The process's address-space size now, in bytes, or 0 if unknown. */
static size_t vm_size_bytes(void)
{
    char line[256];
    size_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmSize:", 7) == 0) {
            char *end;

            kb = (size_t)strtoull(line + 7, &end, 10);
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

/* With the address space capped a little above its current size, the
 * default 8 MiB thread stacks run out after a few of the 512 threads, so
 * pool_start fails part-way. It must leave nothing running: no item taken
 * from the channel, the channel still open, and the pool destroyable. */
START_TEST(test_pool_start_failure_starts_none)
{
    const size_t nthreads = 512, n_items = 4;
    struct queue *q = new_queue(n_items, sizeof(uint32_t));
    struct rlimit saved, tight;
    struct count_ctx c;
    struct pool *p;
    size_t vm;
    int rc;

    ck_assert_ptr_nonnull(q);
    count_init(&c, n_items);
    for (uint32_t v = 0; v < n_items; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    p = new_pool(q, nthreads, count_handler, &c);
    ck_assert_ptr_nonnull(p);

    vm = vm_size_bytes();
    ck_assert_uint_gt(vm, 0);
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &saved), 0);
    tight = saved;
    tight.rlim_cur = (rlim_t)vm + (rlim_t)64 * 1024 * 1024;
    if (saved.rlim_cur != RLIM_INFINITY && tight.rlim_cur > saved.rlim_cur)
        tight.rlim_cur = saved.rlim_cur;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &tight), 0);
    rc = pool_start(p);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &saved), 0);

    ck_assert_int_lt(rc, 0);
    ck_assert(!queue_closed(q));
    ck_assert_uint_eq(queue_len(q), n_items);
    ck_assert_uint_eq(pool_in_flight(p), 0);
    for (size_t i = 0; i < MAX_WORKERS; i++)
        ck_assert_uint_eq(atomic_load(&c.by_index[i]), 0);
    pool_destroy(p);

    /* The channel is intact: a fresh pool handles every item. */
    p = new_pool(q, 2, count_handler, &c);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pool_start(p), 0);
    ck_assert_int_eq(pool_drain(p, NULL), 0);
    count_check(&c, p);
    pool_destroy(p);
    queue_destroy(q);
}
END_TEST
#endif /* !POOL_TEST_UNDER_SANITIZER */

Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *core = tcase_create("core");
    TCase *drain = tcase_create("drain");
    TCase *resize = tcase_create("resize");

    tcase_set_timeout(core, 30);
    tcase_add_test(core, test_pool_create_rejects_bad_args);
    tcase_add_test(core, test_pool_batches_handle_every_item_once);
    tcase_add_test(core, test_pool_in_flight_counts_a_held_batch);
    tcase_add_test(core, test_pool_handles_every_item_once);
    tcase_add_test(core, test_pool_single_worker_keeps_order);
    tcase_add_test(core, test_pool_workers_block_termination_signals);
#ifndef POOL_TEST_UNDER_SANITIZER
    tcase_add_test(core, test_pool_start_failure_starts_none);
#endif
    suite_add_tcase(s, core);

    tcase_set_timeout(resize, 60);
    tcase_add_test(resize, test_pool_resize_under_producer);
    tcase_add_test(resize, test_pool_pause_takes_nothing);
    tcase_add_test(resize, test_pool_drain_while_paused);
    tcase_add_test(resize, test_pool_shrink_and_drain_finish_held_batches);
    tcase_add_test(resize, test_pool_resize_rejects_bad_args);
    suite_add_tcase(s, resize);

    tcase_set_timeout(drain, 30);
    tcase_add_test(drain, test_pool_drain_waits_for_queued_items);
    tcase_add_test(drain, test_pool_drain_without_start);
    tcase_add_test(drain, test_pool_drain_with_deadline_succeeds);
    tcase_add_loop_test(drain, test_pool_drain_times_out_while_handler_blocked,
                        0, 5);
    suite_add_tcase(s, drain);
    return s;
}
