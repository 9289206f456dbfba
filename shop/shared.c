/*
 * shared.c - the workers and the reader of a shop whose belt lives in a
 * shared store (STORE_CAP_SHARED: Redis), so that any number of shopd
 * instances sell one shop.
 *
 *   store_take ──▶ worker ──(work_ms)──▶ store_commit(results) ──▶ order
 *   (own pending,                         the store decides:        book,
 *    reclaimed,                           stock, status, ack        stats
 *    new orders)
 *
 * Workers: each loops store_take() -> simulated work -> store_commit() of
 * the batch's results with status STORE_QUEUED; the store checks and takes
 * the stock atomically and fills in the status. A commit that fails on the
 * wire is retried (the store applies a result at most once, so a repeat is
 * harmless); an order whose result reports applied=false was finished by
 * another instance first and is not counted here. Each worker uses the
 * store from its own thread (the store gives each its own connection).
 * With work_ms > 0 a worker takes one order at a time, so an order is held
 * no longer than its own work (reclaim_ms must exceed that).
 *
 * Reader: reads that must show the shop's current state (GET /orders/{id},
 * GET /products) are queued by HTTP threads with shop_read_async() and
 * answered on this thread, so no HTTP thread waits on the store. Every
 * FIGURES_MS it also refreshes a cached copy of the shop-wide figures and
 * stock for /stats, /metrics and the dashboard, which never wait either.
 *
 * Drain: workers keep taking until a take finds nothing (or, past the
 * deadline, at once), finish the batch in hand and exit; the drain then
 * succeeds. Orders still on the shared belt are safe in the store: other
 * instances, or this one restarted, finish them.
 *
 * Locks: `mu` (drain wait), `rmu` (read queue), `fmu` (cached figures) are
 * leaves: never held together, never across store calls or callbacks.
 */
#include "shop/internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>

#include "common/thread.h"
#include "store/store.h"

#define SHARED_BATCH 64   /* orders per take when there is no work_ms */
#define TAKE_WAIT_MS 100  /* a take waits so long for orders */
#define RETRY_MS     100  /* pause before a failed commit is retried */
#define BACKOFF_MIN  50   /* pause after a failed take, doubling ... */
#define BACKOFF_MAX  1000 /* ... up to this (ms) */
#define FIGURES_MS   250  /* shop-wide figures refresh */

struct shared_worker {
    struct shared *sh;
    unsigned index;
    pthread_t tid;
    _Atomic bool busy;
    _Atomic uint64_t handled;
    _Atomic size_t holding; /* orders taken and not yet final */
};

struct shared {
    struct store *store;
    struct orderbook *book;
    struct shop_stats *stats;
    size_t nproducts;
    unsigned work_ms;
    size_t nworkers;
    struct shared_worker *w;
    size_t started;
    int sync_ready; /* mu, rmu, fmu, cv, rcv initialised so far (0-5) */

    _Atomic bool draining; /* workers exit once a take finds nothing */
    _Atomic bool stop_now; /* workers exit after their current batch */
    pthread_mutex_t mu;    /* guards running (the drain's wait) */
    pthread_cond_t cv;     /* signalled when a worker exits */
    size_t running;

    pthread_t reader;
    bool reader_started;
    pthread_mutex_t rmu; /* guards head, tail, rclosing */
    pthread_cond_t rcv;  /* signalled when a read is queued or on close */
    struct shop_read *head, *tail;
    bool rclosing;

    pthread_mutex_t fmu; /* guards the cached figures below */
    bool fig_valid;
    struct store_shop fig;
    struct shop_stock *fig_stock; /* nproducts entries */
};

/* Process one batch of taken orders to the end (or until stop_now). */
static void work_batch(struct shared_worker *w, struct store_order *o,
                       struct store_result *res, size_t n)
{
    struct shared *sh = w->sh;
    int64_t now = time_now_ns(CLOCK_REALTIME);
    int64_t taken = time_now_ns(CLOCK_MONOTONIC);

    for (size_t i = 0; i < n; i++)
        latency_hist_record(shop_stats_queue_wait(sh->stats),
                            now - o[i].accepted_ns);
    if (sh->work_ms > 0)
        time_sleep_ms(sh->work_ms * (unsigned)n);
    now = time_now_ns(CLOCK_REALTIME);
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        res[i].id = o[i].id;
        res[i].product = o[i].product;
        res[i].quantity = o[i].quantity;
        res[i].status = STORE_QUEUED; /* the store decides */
        res[i].worker = (int32_t)w->index;
        res[i].processed_ns = now;
    }
    struct store_batch b = {.results = res, .nresults = n};
    while (store_commit(sh->store, &b) != 0) {
        if (atomic_load(&sh->stop_now))
            return; /* still pending in the store: finished later */
        time_sleep_ms(RETRY_MS);
    }
    int64_t spent = time_now_ns(CLOCK_MONOTONIC) - taken;
    for (size_t i = 0; i < n; i++) {
        if (!res[i].applied)
            continue; /* another instance finished it first */
        struct order done;
        shop_order_from_store(&o[i], &done);
        done.status = (enum order_status)res[i].status;
        done.worker = (int32_t)w->index;
        done.processed_ns = res[i].processed_ns;
        orderbook_put(sh->book, &done);
        latency_hist_record(shop_stats_processing(sh->stats), spent);
        shop_stats_count_done(sh->stats, res[i].status == STORE_FULFILLED);
    }
}

static void *worker_main(void *arg)
{
    struct shared_worker *w = arg;
    struct shared *sh = w->sh;
    size_t max = sh->work_ms > 0 ? 1 : SHARED_BATCH;
    struct store_order *o = calloc(max, sizeof(*o));
    struct store_result *res = calloc(max, sizeof(*res));

    unsigned backoff = BACKOFF_MIN;

    while (o && res && !atomic_load(&sh->stop_now)) {
        int n = store_take(sh->store, w->index, o, max, TAKE_WAIT_MS);
        if (n < 0) {
            /* The store is away; a draining worker holds nothing, and
             * the orders wait in the store for whoever runs next. */
            if (atomic_load(&sh->draining))
                break;
            time_sleep_ms(backoff);
            backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
            continue;
        }
        backoff = BACKOFF_MIN;
        if (n == 0) {
            if (atomic_load(&sh->draining))
                break;
            continue;
        }
        atomic_store(&w->holding, (size_t)n);
        atomic_store(&w->busy, true);
        work_batch(w, o, res, (size_t)n);
        atomic_store(&w->busy, false);
        atomic_store(&w->holding, 0);
        atomic_fetch_add_explicit(&w->handled, (uint64_t)n,
                                  memory_order_relaxed);
    }
    free(res);
    free(o);
    pthread_mutex_lock(&sh->mu);
    sh->running--;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

/* ---- the reader ------------------------------------------------------ */

static void refresh_figures(struct shared *sh, struct store_product *scratch)
{
    struct store_shop fig;
    int rc = store_shop_get(sh->store, &fig);
    if (rc == 0)
        rc = store_products_get(sh->store, scratch, sh->nproducts);
    if (rc != 0)
        return; /* keep the last figures */
    pthread_mutex_lock(&sh->fmu);
    sh->fig = fig;
    for (size_t i = 0; i < sh->nproducts; i++) {
        sh->fig_stock[i].stock = scratch[i].stock;
        sh->fig_stock[i].sold = scratch[i].sold;
        sh->fig_stock[i].restocked = scratch[i].restocked;
    }
    sh->fig_valid = true;
    pthread_mutex_unlock(&sh->fmu);
}

static void serve(struct shared *sh, struct shop_read *r,
                  struct store_product *scratch)
{
    if (r->kind == SHOP_READ_ORDER) {
        struct store_order so;
        r->rc = store_order_get(sh->store, r->id, &so);
        if (r->rc == 0) {
            shop_order_from_store(&so, &r->order);
            memcpy(r->accepted_by, so.accepted_by, sizeof(r->accepted_by));
            memcpy(r->processed_by, so.processed_by, sizeof(r->processed_by));
        }
    } else {
        r->rc = store_products_get(sh->store, scratch, sh->nproducts);
        for (size_t i = 0; r->rc == 0 && i < sh->nproducts; i++) {
            r->stock[i].stock = scratch[i].stock;
            r->stock[i].sold = scratch[i].sold;
            r->stock[i].restocked = scratch[i].restocked;
        }
    }
    r->done(r);
}

static void *reader_main(void *arg)
{
    struct shared *sh = arg;
    struct store_product *scratch = calloc(sh->nproducts, sizeof(*scratch));
    int64_t next = 0;

    pthread_mutex_lock(&sh->rmu);
    for (;;) {
        while (sh->head == NULL && !sh->rclosing &&
               time_now_ns(CLOCK_MONOTONIC) < next) {
            struct timespec ts = time_from_ns(next);
            pthread_cond_timedwait(&sh->rcv, &sh->rmu, &ts);
        }
        struct shop_read *list = sh->head;
        bool closing = sh->rclosing;
        sh->head = sh->tail = NULL;
        pthread_mutex_unlock(&sh->rmu);
        while (list) {
            struct shop_read *r = list;
            list = r->next;
            if (scratch == NULL) {
                r->rc = -ENOMEM;
                r->done(r);
            } else {
                serve(sh, r, scratch);
            }
        }
        if (closing)
            break;
        if (scratch && time_now_ns(CLOCK_MONOTONIC) >= next) {
            refresh_figures(sh, scratch);
            next =
                time_now_ns(CLOCK_MONOTONIC) + (int64_t)FIGURES_MS * NS_PER_MS;
        }
        pthread_mutex_lock(&sh->rmu);
    }
    free(scratch);
    return NULL;
}

/* ---- public (to shop.c) ---------------------------------------------- */

int shared_create(struct store *st, struct orderbook *book,
                  struct shop_stats *stats, size_t nproducts, size_t workers,
                  unsigned work_ms, struct shared **out)
{
    struct shared *sh = calloc(1, sizeof(*sh));
    int err = -ENOMEM;

    if (sh == NULL)
        goto fail;
    sh->store = st;
    sh->book = book;
    sh->stats = stats;
    sh->nproducts = nproducts;
    sh->work_ms = work_ms;
    sh->nworkers = workers;
    sh->w = calloc(workers, sizeof(*sh->w));
    sh->fig_stock = calloc(nproducts ? nproducts : 1, sizeof(*sh->fig_stock));
    if (!sh->w || !sh->fig_stock)
        goto fail;
    /* Each sync object counts in sync_ready once made, so that
     * shared_destroy() undoes exactly what was done. */
    pthread_mutex_t *mutexes[] = {&sh->mu, &sh->rmu, &sh->fmu};
    for (size_t i = 0; i < 3; i++) {
        err = -pthread_mutex_init(mutexes[i], NULL);
        if (err)
            goto fail;
        sh->sync_ready++;
    }
    pthread_condattr_t ca;
    err = -pthread_condattr_init(&ca);
    if (err)
        goto fail;
    err = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (err == 0 && (err = -pthread_cond_init(&sh->cv, &ca)) == 0) {
        sh->sync_ready++;
        if ((err = -pthread_cond_init(&sh->rcv, &ca)) == 0)
            sh->sync_ready++;
    }
    pthread_condattr_destroy(&ca);
    if (err)
        goto fail;
    *out = sh;
    return 0;

fail:
    shared_destroy(sh);
    *out = NULL;
    return err;
}

int shared_start(struct shared *sh)
{
    /* Signals are main's (sigwait): these threads take none. */
    int err = thread_start(&sh->reader, reader_main, sh);
    if (err)
        return err;
    sh->reader_started = true;
    for (size_t i = 0; i < sh->nworkers; i++) {
        struct shared_worker *w = &sh->w[i];
        w->sh = sh;
        w->index = (unsigned)i;
        pthread_mutex_lock(&sh->mu);
        sh->running++;
        pthread_mutex_unlock(&sh->mu);
        err = thread_start(&w->tid, worker_main, w);
        if (err) {
            pthread_mutex_lock(&sh->mu);
            sh->running--;
            pthread_mutex_unlock(&sh->mu);
            shared_drain(sh, NULL);
            return err;
        }
        sh->started++;
    }
    return 0;
}

int shared_drain(struct shared *sh, const struct timespec *deadline)
{
    atomic_store(&sh->draining, true);
    pthread_mutex_lock(&sh->mu);
    while (sh->running > 0) {
        if (deadline == NULL || atomic_load(&sh->stop_now)) {
            pthread_cond_wait(&sh->cv, &sh->mu);
        } else if (pthread_cond_timedwait(&sh->cv, &sh->mu, deadline) ==
                   ETIMEDOUT) {
            /* Other instances may keep the shared belt busy for ever.
             * Orders still on it are safe in the store (another instance,
             * or this one restarted, finishes them): stop taking, finish
             * the batches in hand (one order each with --work-ms; a
             * commit that cannot reach Redis gives up, its orders stay
             * pending in the store and are claimed later). */
            atomic_store(&sh->stop_now, true);
        }
    }
    pthread_mutex_unlock(&sh->mu);
    for (size_t i = 0; i < sh->started; i++)
        pthread_join(sh->w[i].tid, NULL);
    sh->started = 0;
    return 0;
}

uint64_t shared_in_flight(struct shared *sh)
{
    uint64_t n = 0;

    for (size_t i = 0; i < sh->nworkers; i++)
        n += atomic_load(&sh->w[i].holding);
    return n;
}

bool shared_worker_busy(struct shared *sh, size_t i)
{
    return i < sh->nworkers && atomic_load(&sh->w[i].busy);
}

uint64_t shared_worker_handled(struct shared *sh, size_t i)
{
    return i < sh->nworkers ? atomic_load(&sh->w[i].handled) : 0;
}

int shared_read(struct shared *sh, struct shop_read *r)
{
    r->next = NULL;
    pthread_mutex_lock(&sh->rmu);
    if (sh->rclosing || !sh->reader_started) {
        pthread_mutex_unlock(&sh->rmu);
        return -EPIPE;
    }
    if (sh->tail)
        sh->tail->next = r;
    else
        sh->head = r;
    sh->tail = r;
    pthread_cond_signal(&sh->rcv);
    pthread_mutex_unlock(&sh->rmu);
    return 0;
}

bool shared_figures(struct shared *sh, struct store_shop *fig,
                    struct shop_stock *stock)
{
    pthread_mutex_lock(&sh->fmu);
    bool valid = sh->fig_valid;
    if (fig)
        *fig = sh->fig;
    if (stock)
        memcpy(stock, sh->fig_stock, sh->nproducts * sizeof(*stock));
    pthread_mutex_unlock(&sh->fmu);
    return valid;
}

void shared_destroy(struct shared *sh)
{
    if (sh == NULL)
        return;
    if (sh->started > 0)
        return; /* workers still running after a timed-out drain: leak */
    if (sh->reader_started) {
        pthread_mutex_lock(&sh->rmu);
        sh->rclosing = true;
        pthread_cond_signal(&sh->rcv);
        pthread_mutex_unlock(&sh->rmu);
        pthread_join(sh->reader, NULL);
    }
    if (sh->sync_ready > 4)
        pthread_cond_destroy(&sh->rcv);
    if (sh->sync_ready > 3)
        pthread_cond_destroy(&sh->cv);
    if (sh->sync_ready > 2)
        pthread_mutex_destroy(&sh->fmu);
    if (sh->sync_ready > 1)
        pthread_mutex_destroy(&sh->rmu);
    if (sh->sync_ready > 0)
        pthread_mutex_destroy(&sh->mu);
    free(sh->fig_stock);
    free(sh->w);
    free(sh);
}
