/*
 * shared.c - what a shop whose orders live in a shared store
 * (STORE_CAP_SHARED: Redis) adds to the one shop floor: the feeder that
 * fills this instance's belt from the shared stream, and the reader that
 * answers reads of the whole shop. The elves are the pool of worker/, as
 * in every mode; their results go to the store through the group
 * committer (committer.c), which the store decides (stock, status).
 *
 *   store_take ──▶ feeder ──queue_send──▶ [ belt ] ──▶ elves (worker/)
 *   (own pending,   (one thread,            local        │ work_ms
 *    reclaimed,      at most `limit`                     ▼
 *    new orders)     orders held)        committer_result ──▶ store_commit
 *                        ▲                                  (batched), then
 *                        └──── shared_handed(): room ◀──────  order book,
 *                                                             stats
 *
 * Feeder: one thread loops store_take() (this instance's own pending
 * orders first, then reclaimed ones, then new ones) and sends what it took
 * onto the local belt (queue_send blocks while the belt is full: back-
 * pressure). The shop-wide bound stays in Redis (queue_capacity, SPEC §7);
 * the local belt only bounds what this instance holds.
 *
 * How much it takes, and reclaim: an order taken from the stream stays
 * pending in Redis until the commit of its result; if it is held longer
 * than reclaim_ms, another instance (or this one) claims it again, and one
 * of the two results is then a wasted second delivery (applied once, never
 * twice). So the feeder holds at most `limit` orders that the elves have
 * not finished yet (on the belt or in an elf's hands, `held`), and takes
 * again only once `held` fell to `limit / 2` or below:
 *   - with work_ms > 0, `limit` is one order per elf: an order waits for
 *     no elf's previous order, so it is held its own work_ms, one take
 *     and one commit (as before the one floor: reclaim_ms must exceed
 *     work_ms);
 *   - without simulated work, SHARED_PER_ELF orders per elf (the elves
 *     finish them in microseconds; batches keep Redis round trips per
 *     order low), and never more than half the local belt, so that
 *     accepts keep room on it (the shop reserves belt slots for them).
 * An elf that hands an order's result over calls shared_handed(), which
 * wakes the feeder when `held` falls to the low mark. Results then wait
 * for at most a commit or two (the committer takes every pending result
 * into each commit). Elves that stop taking (a paused or stalled pool)
 * leave at most `limit` orders on this belt; past reclaim_ms other
 * instances take those again, and whichever result commits first counts.
 *
 * Drain: shared_stop() stops the feeder and joins it (a take waits at
 * most TAKE_WAIT_MS); the shop then drains the pool (the elves finish
 * every order on the local belt) and the committer commits their results.
 * Orders still in Redis are safe: other instances, or this one restarted,
 * finish them.
 *
 * Reader: reads that must show the shop's current state (GET /orders/{id},
 * GET /products, GET /stats) are queued by HTTP threads with
 * shop_read_async() and answered on this thread, so no HTTP thread waits
 * on the store. It keeps a cached copy of the shop-wide figures and stock:
 * refreshed for each round of reads that holds a /stats (one refresh for
 * all of them, so /stats shows every order answered before it was asked),
 * and every FIGURES_MS anyway for /metrics and the dashboard's /events,
 * which use the copy as it is and never wait.
 *
 * Every function accepts NULL (a shop whose store is not shared): then it
 * does nothing, and the shop calls it the same way in every mode.
 *
 * Locks: `mu` (the feeder's wait for room and for stop), `rmu` (read
 * queue), `fmu` (cached figures) are leaves: never held together, never
 * across store calls, queue calls or callbacks.
 */
#include "shop/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "common/thread.h"
#include "queue/queue.h"
#include "store/store.h"

#define SHARED_PER_ELF 64   /* orders held per elf without work_ms */
#define TAKE_WAIT_MS   100  /* a take waits so long for orders */
#define BACKOFF_MIN    50   /* pause after a failed take, doubling ... */
#define BACKOFF_MAX    1000 /* ... up to this (ms) */
#define FIGURES_MS     250  /* shop-wide figures refresh */

struct shared {
    struct store *store;
    struct queue *belt; /* not owned */
    size_t nproducts;
    size_t limit, low; /* orders held at most; take again at <= low */
    struct store_order *take_buf; /* limit entries, the feeder's */
    _Atomic size_t held;          /* taken and not yet handed to the journal */
    pthread_t feeder, reader;
    struct shop_read *head, *tail; /* the read queue, under rmu */
    size_t nfig;                   /* products in the figures: the first */
    struct shop_stock *fig_stock;  /* nfig entries, under fmu */

    pthread_mutex_t mu;  /* guards stop (and the feeder's wait) */
    pthread_mutex_t rmu; /* guards head, tail, rclosing */
    pthread_mutex_t fmu; /* guards fig, fig_valid and fig_stock */
    pthread_cond_t cv;   /* room on the floor, or stop */
    pthread_cond_t rcv;  /* signalled when a read is queued or on close */
    struct store_shop fig;

    bool sync_ready;      /* mu, rmu, fmu, cv and rcv exist */
    _Atomic bool waiting; /* the feeder waits on `cv` for room */
    bool stop;            /* the feeder takes no more (under mu) */
    bool feeder_started, reader_started; /* controlling thread */
    bool rclosing;                       /* under rmu */
    bool fig_valid;                      /* under fmu */
};

/* ---- the feeder ------------------------------------------------------ */

/*
 * Wait until the elves hold no more than the low mark, or for `ms` (> 0:
 * a pause after a failed take). Returns how many orders may be taken now,
 * 0 once stopping.
 */
static size_t wait_room(struct shared *sh, unsigned ms)
{
    struct timespec until = time_deadline_ms(CLOCK_MONOTONIC, ms);
    size_t room = 0;

    pthread_mutex_lock(&sh->mu);
    atomic_store(&sh->waiting, true);
    for (;;) {
        size_t held = atomic_load(&sh->held);
        if (sh->stop)
            break;
        if (ms == 0 && held <= sh->low) {
            room = sh->limit - held;
            break;
        }
        if (ms == 0) {
            pthread_cond_wait(&sh->cv, &sh->mu);
        } else if (pthread_cond_timedwait(&sh->cv, &sh->mu, &until) ==
                   ETIMEDOUT) {
            ms = 0;
        }
    }
    atomic_store(&sh->waiting, false);
    pthread_mutex_unlock(&sh->mu);
    return room;
}

/* Put `n` taken orders on the local belt, oldest first. */
static void feed(struct shared *sh, size_t n)
{
    int64_t now = time_now_ns(CLOCK_MONOTONIC);
    int64_t wall = time_now_ns(CLOCK_REALTIME);

    atomic_fetch_add(&sh->held, n);
    for (size_t i = 0; i < n; i++) {
        struct shop_item it;
        shop_order_from_store(&sh->take_buf[i], &it.o);
        it.o.status = ORDER_QUEUED;
        it.o.worker = -1;
        it.o.processed_ns = 0;
        /* Queue wait counts from the accept (on whichever instance),
         * as the order waited in the shared stream before this belt. */
        int64_t waited = wall - it.o.accepted_ns;
        it.enqueued_mono_ns = now - (waited > 0 ? waited : 0);
        /* The belt is closed only after the feeder is joined, and it has
         * room for `limit` orders: this never fails and seldom waits. */
        if (queue_send(sh->belt, &it, NULL) != 0)
            atomic_fetch_sub(&sh->held, 1);
    }
}

static void *feeder_main(void *arg)
{
    struct shared *sh = arg;
    unsigned backoff = 0;

    for (;;) {
        size_t room = wait_room(sh, backoff);
        if (room == 0)
            break; /* stopping */
        int n = store_take(sh->store, 0, sh->take_buf, room, TAKE_WAIT_MS);
        if (n < 0) {
            /* The store is away: the orders wait in it for whoever runs
             * next; look again after a pause that doubles. */
            backoff = backoff == 0 ? BACKOFF_MIN : backoff * 2;
            if (backoff > BACKOFF_MAX)
                backoff = BACKOFF_MAX;
            continue;
        }
        backoff = 0;
        feed(sh, (size_t)n);
    }
    return NULL;
}

/* ---- the reader ------------------------------------------------------ */

/* Read the shop-wide figures and stock into the cached copy; on a failure
 * the last copy stays. Returns 0 or the store's -errno. */
static int refresh_figures(struct shared *sh, struct store_product *scratch)
{
    size_t n = sh->nfig;
    struct store_shop fig;
    int rc = store_shop_get(sh->store, &fig);
    if (rc == 0)
        rc = store_products_get(sh->store, scratch, n);
    if (rc != 0)
        return rc; /* keep the last figures */
    pthread_mutex_lock(&sh->fmu);
    sh->fig = fig;
    for (size_t i = 0; i < n; i++) {
        sh->fig_stock[i].stock = scratch[i].stock;
        sh->fig_stock[i].sold = scratch[i].sold;
        sh->fig_stock[i].restocked = scratch[i].restocked;
    }
    sh->fig_valid = true;
    pthread_mutex_unlock(&sh->fmu);
    return 0;
}

/* Answer one read. Every SHOP_READ_FIGURES read of one round shares one
 * refresh: `*fig_rc` is 1 until it ran, then its result. */
static void serve(struct shared *sh, struct shop_read *r,
                  struct store_product *scratch, int *fig_rc)
{
    if (r->kind == SHOP_READ_ORDER) {
        struct store_order so;
        r->rc = store_order_get(sh->store, r->id, &so);
        if (r->rc == 0) {
            shop_order_from_store(&so, &r->order);
            memcpy(r->accepted_by, so.accepted_by, sizeof(r->accepted_by));
            memcpy(r->processed_by, so.processed_by, sizeof(r->processed_by));
        }
    } else if (r->kind == SHOP_READ_FIGURES) {
        /* A store known to be down is not asked: /stats answers at once
         * with the last figures (and says the store is down). */
        if (*fig_rc > 0)
            *fig_rc = store_available(sh->store) ? refresh_figures(sh, scratch)
                                                 : -EIO;
        r->rc = *fig_rc;
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
        int fig_rc = 1; /* this round has not refreshed the figures */
        while (list) {
            struct shop_read *r = list;
            list = r->next;
            if (scratch == NULL) {
                r->rc = -ENOMEM;
                r->done(r);
            } else {
                serve(sh, r, scratch, &fig_rc);
            }
        }
        if (closing)
            break;
        /* Refresh every FIGURES_MS, counted from the last refresh (one
         * for a /stats read counts). */
        if (fig_rc == 0 || (scratch && time_now_ns(CLOCK_MONOTONIC) >= next)) {
            if (fig_rc != 0)
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

/* How many orders the feeder may hold (see the design note). */
static size_t feed_limit(size_t belt_cap, size_t workers, unsigned work_ms)
{
    size_t limit = work_ms > 0 ? workers : workers * SHARED_PER_ELF;
    size_t half = belt_cap / 2 > 0 ? belt_cap / 2 : 1;

    return limit < half ? limit : half;
}

/* Mutexes and condition variables, all or none: `cv` waits under `mu`,
 * `rcv` under `rmu`, and `fmu` has none. */
static int make_sync(struct shared *sh)
{
    pthread_cond_t *const feed[] = {&sh->cv};
    pthread_cond_t *const reads[] = {&sh->rcv};
    int err = thread_sync_init(&sh->mu, feed, 1);

    if (err)
        return err;
    err = thread_sync_init(&sh->rmu, reads, 1);
    if (err == 0 && (err = thread_sync_init(&sh->fmu, NULL, 0)) != 0)
        thread_sync_destroy(&sh->rmu, reads, 1);
    if (err)
        thread_sync_destroy(&sh->mu, feed, 1);
    return err;
}

/* Undo make_sync(). */
static void free_sync(struct shared *sh)
{
    pthread_cond_t *const feed[] = {&sh->cv};
    pthread_cond_t *const reads[] = {&sh->rcv};

    thread_sync_destroy(&sh->fmu, NULL, 0);
    thread_sync_destroy(&sh->rmu, reads, 1);
    thread_sync_destroy(&sh->mu, feed, 1);
}

int shared_create(struct store *st, struct queue *belt, size_t nproducts,
                  size_t workers, unsigned work_ms, struct shared **out)
{
    struct shared *sh = calloc(1, sizeof(*sh));
    int err = -ENOMEM;

    if (sh == NULL)
        goto fail;
    sh->store = st;
    sh->belt = belt;
    sh->nproducts = nproducts;
    sh->limit = feed_limit(queue_cap(belt), workers, work_ms);
    sh->low = sh->limit / 2;
    atomic_init(&sh->held, 0);
    atomic_init(&sh->waiting, false);
    sh->take_buf = calloc(sh->limit, sizeof(*sh->take_buf));
    /* Only the products a report shows are read (a catalog of 100,000
     * would cost Redis ~0.2 s a read). */
    sh->nfig =
        nproducts < SHOP_REPORT_PRODUCTS ? nproducts : SHOP_REPORT_PRODUCTS;
    sh->fig_stock = calloc(sh->nfig ? sh->nfig : 1, sizeof(*sh->fig_stock));
    if (!sh->take_buf || !sh->fig_stock)
        goto fail;
    err = make_sync(sh);
    if (err)
        goto fail;
    sh->sync_ready = true;
    *out = sh;
    return 0;

fail:
    shared_destroy(sh);
    *out = NULL;
    return err;
}

int shared_start(struct shared *sh)
{
    if (sh == NULL)
        return 0;
    /* Signals are main's (sigwait): these threads take none. */
    int err = thread_start(&sh->reader, reader_main, sh);
    if (err)
        return err;
    sh->reader_started = true;
    err = thread_start(&sh->feeder, feeder_main, sh);
    if (err)
        return err; /* the reader stops in shared_destroy() */
    sh->feeder_started = true;
    return 0;
}

void shared_stop(struct shared *sh)
{
    if (sh == NULL)
        return;
    pthread_mutex_lock(&sh->mu);
    sh->stop = true;
    pthread_cond_signal(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    if (sh->feeder_started) {
        pthread_join(sh->feeder, NULL);
        sh->feeder_started = false;
    }
}

void shared_handed(struct shared *sh)
{
    if (sh == NULL)
        return;
    /* Only fed orders count (never below 0, should an order reach the
     * belt another way). Sequentially consistent with the feeder's
     * `waiting` then `held`: either it sees this decrement, or this sees
     * it waiting. */
    size_t held = atomic_load(&sh->held);
    do {
        if (held == 0)
            return;
    } while (!atomic_compare_exchange_weak(&sh->held, &held, held - 1));
    if (held - 1 <= sh->low && atomic_load(&sh->waiting)) {
        pthread_mutex_lock(&sh->mu);
        pthread_cond_signal(&sh->cv);
        pthread_mutex_unlock(&sh->mu);
    }
}

int shared_read(struct shared *sh, struct shop_read *r)
{
    if (sh == NULL)
        return -ENOTSUP;
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
    if (fig)
        memset(fig, 0, sizeof(*fig));
    if (sh == NULL)
        return false;
    pthread_mutex_lock(&sh->fmu);
    bool valid = sh->fig_valid;
    if (fig)
        *fig = sh->fig;
    for (size_t i = 0; stock && valid && i < sh->nfig; i++) {
        stock[i].stock = sh->fig_stock[i].stock;
        stock[i].sold = sh->fig_stock[i].sold;
        stock[i].restocked = sh->fig_stock[i].restocked;
    }
    pthread_mutex_unlock(&sh->fmu);
    return valid;
}

void shared_destroy(struct shared *sh)
{
    if (sh == NULL)
        return;
    if (sh->feeder_started)
        shared_stop(sh);
    if (sh->reader_started) {
        pthread_mutex_lock(&sh->rmu);
        sh->rclosing = true;
        pthread_cond_signal(&sh->rcv);
        pthread_mutex_unlock(&sh->rmu);
        pthread_join(sh->reader, NULL);
    }
    if (sh->sync_ready)
        free_sync(sh);
    free(sh->fig_stock);
    free(sh->take_buf);
    free(sh);
}
