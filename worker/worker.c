/*
 * worker.c - a pool of threads that drain a channel.
 *
 * Each worker owns a buffer of `batch` elements and loops: queue_recv_many
 * into it (one lock round trip for up to `batch` items), record how many it
 * holds, call the handler for each in order, counting each as it is done.
 * queue_recv_many returns -EPIPE only once the channel is closed and empty,
 * so a worker exits exactly when there is nothing left to do;
 * pool_drain is therefore "close the channel, wait for every worker to exit,
 * join them". Nothing is ever cancelled.
 *
 * All or none: pool_start creates the threads one by one, but each new
 * thread first waits at a start gate. Only when every thread exists is the
 * gate opened (GATE_GO); if a pthread_create fails, the gate is set to
 * GATE_ABORT instead, and the threads already created return without
 * touching the channel and are joined. The channel is left open and intact.
 *
 * Threads are created with every signal blocked (common/thread.c), so
 * signals are delivered to a thread that has not blocked them, in shopd the
 * main one.
 *
 * Counters: each worker's `handled` and `holding` are written only by that
 * worker and read by anyone, as relaxed atomics on the worker's own cache
 * line, so workers never share a line on the hot path. pool_in_flight sums
 * what the workers hold (received, handler not yet returned). The readers are
 * exact once the workers are idle or joined; while they run the numbers are a
 * snapshot, not a consistent cut.
 *
 * Invariants (under `mu`): 0 <= live <= nthreads; live counts workers that
 * passed the start gate with GATE_GO and have not yet finished their loop.
 *
 * Lock order: `mu` is never held while taking another lock; a worker holds
 * no pool lock while it is in queue_recv or in the handler.
 */
#include "worker/worker.h"

#include "common/thread.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define POOL_CACHE_LINE 64

enum gate { GATE_WAIT, GATE_GO, GATE_ABORT };

struct pool;

struct pool_worker {
    /* Written only by this worker, read by anyone: items handled, and
     * items received and not yet handled. First on the line, aligned so no
     * two workers share a cache line. */
    _Alignas(POOL_CACHE_LINE) _Atomic uint64_t handled;
    _Atomic size_t holding;
    struct pool *pool;
    void *items;    /* batch * elem_size bytes, this worker's receive buffer */
    uint64_t *seqs; /* batch sequence numbers */
    unsigned index; /* 0 .. nthreads-1 */
    pthread_t thread;
};

struct pool {
    struct queue *q; /* not owned */
    pool_handler fn;
    void *arg;
    size_t nthreads;
    size_t batch;                /* items received at once, >= 1 */
    size_t elem_size;            /* the channel's */
    struct pool_worker *workers; /* nthreads entries, cache-line aligned */

    /* Guards `gate` and `live`. */
    pthread_mutex_t mu;
    pthread_cond_t gate_cv; /* gate left GATE_WAIT */
    pthread_cond_t exit_cv; /* live reached 0; waits on CLOCK_MONOTONIC */
    enum gate gate;
    size_t live;

    /* Used only by the controlling thread, so unguarded. */
    bool started;
    bool joined;
    /* Which of mu, gate_cv, exit_cv exist, so that pool_destroy() can undo
     * a pool_create() that failed half-way. Set once, at creation. */
    bool have_mu, have_gate_cv, have_exit_cv;
};

static void *worker_main(void *opaque)
{
    struct pool_worker *w = opaque;
    struct pool *p = w->pool;
    enum gate g;
    int n;

    pthread_mutex_lock(&p->mu);
    while (p->gate == GATE_WAIT)
        pthread_cond_wait(&p->gate_cv, &p->mu);
    g = p->gate;
    pthread_mutex_unlock(&p->mu);
    if (g == GATE_ABORT)
        return NULL;

    while ((n = queue_recv_many(p->q, w->items, w->seqs, p->batch)) > 0) {
        unsigned char *item = w->items;

        atomic_store_explicit(&w->holding, (size_t)n, memory_order_relaxed);
        for (int i = 0; i < n; i++, item += p->elem_size) {
            p->fn(item, w->seqs[i], w->index, p->arg);
            /* Single writer: plain loads and stores, no locked
             * instruction. */
            atomic_store_explicit(
                &w->handled,
                atomic_load_explicit(&w->handled, memory_order_relaxed) + 1,
                memory_order_relaxed);
            atomic_store_explicit(&w->holding, (size_t)(n - i - 1),
                                  memory_order_relaxed);
        }
    }

    pthread_mutex_lock(&p->mu);
    if (--p->live == 0)
        pthread_cond_signal(&p->exit_cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int pool_create(struct queue *q, size_t nthreads, size_t batch, pool_handler fn,
                void *arg, struct pool **out)
{
    struct pool *p = NULL;
    pthread_condattr_t ca;
    bool have_ca = false;
    size_t elem_size, i;
    int rc;

    *out = NULL;
    if (q == NULL || fn == NULL || nthreads == 0 || nthreads > UINT32_MAX ||
        batch == 0 || batch > POOL_BATCH_MAX)
        return -EINVAL;
    if (nthreads > SIZE_MAX / sizeof(struct pool_worker))
        return -ENOMEM;
    elem_size = queue_elem_size(q);
    if (elem_size > SIZE_MAX / batch)
        return -ENOMEM;
    rc = -ENOMEM;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto fail;
    p->q = q;
    p->fn = fn;
    p->arg = arg;
    p->nthreads = nthreads;
    p->batch = batch;
    p->elem_size = elem_size;
    p->gate = GATE_WAIT;
    /* sizeof(struct pool_worker) is a multiple of its alignment, as C11
     * aligned_alloc requires of the size. */
    p->workers = aligned_alloc(_Alignof(struct pool_worker),
                               nthreads * sizeof(struct pool_worker));
    if (p->workers == NULL)
        goto fail;
    memset(p->workers, 0, nthreads * sizeof(struct pool_worker));
    for (i = 0; i < nthreads; i++) {
        struct pool_worker *w = &p->workers[i];

        atomic_init(&w->handled, 0);
        atomic_init(&w->holding, 0);
        w->pool = p;
        w->index = (unsigned)i;
        w->items = malloc(batch * elem_size);
        w->seqs = malloc(batch * sizeof(*w->seqs));
        if (w->items == NULL || w->seqs == NULL)
            goto fail;
    }
    rc = -pthread_mutex_init(&p->mu, NULL);
    if (rc != 0)
        goto fail;
    p->have_mu = true;
    rc = -pthread_cond_init(&p->gate_cv, NULL);
    if (rc != 0)
        goto fail;
    p->have_gate_cv = true;
    rc = -pthread_condattr_init(&ca);
    if (rc != 0)
        goto fail;
    have_ca = true;
    rc = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc != 0)
        goto fail;
    rc = -pthread_cond_init(&p->exit_cv, &ca);
    if (rc != 0)
        goto fail;
    p->have_exit_cv = true;
    pthread_condattr_destroy(&ca);
    *out = p;
    return 0;

fail:
    if (have_ca)
        pthread_condattr_destroy(&ca);
    pool_destroy(p);
    return rc;
}

void pool_destroy(struct pool *p)
{
    size_t i;

    if (p == NULL)
        return;
    assert(!p->started || p->joined);
    if (p->have_exit_cv)
        pthread_cond_destroy(&p->exit_cv);
    if (p->have_gate_cv)
        pthread_cond_destroy(&p->gate_cv);
    if (p->have_mu)
        pthread_mutex_destroy(&p->mu);
    if (p->workers != NULL)
        for (i = 0; i < p->nthreads; i++) {
            free(p->workers[i].items);
            free(p->workers[i].seqs);
        }
    free(p->workers);
    free(p);
}

/* Open or abort the start gate, waking every thread waiting at it. */
static void gate_set(struct pool *p, enum gate g, size_t live)
{
    pthread_mutex_lock(&p->mu);
    p->gate = g;
    p->live = live;
    pthread_mutex_unlock(&p->mu);
    pthread_cond_broadcast(&p->gate_cv);
}

int pool_start(struct pool *p)
{
    size_t i, created;
    int rc = 0;

    if (p->started)
        return -EINVAL;
    for (created = 0; created < p->nthreads; created++) {
        struct pool_worker *w = &p->workers[created];

        rc = thread_start(&w->thread, worker_main, w);
        if (rc != 0)
            break;
    }

    if (rc != 0) {
        gate_set(p, GATE_ABORT, 0);
        for (i = 0; i < created; i++)
            pthread_join(p->workers[i].thread, NULL);
        /* Back to a never-started pool: destroy (or start) may follow. */
        gate_set(p, GATE_WAIT, 0);
        return rc;
    }
    /* `live` is set together with the gate, before any worker can exit. */
    gate_set(p, GATE_GO, p->nthreads);
    p->started = true;
    return 0;
}

int pool_drain(struct pool *p, const struct timespec *deadline)
{
    size_t i;
    int rc = 0;

    queue_close(p->q);
    if (!p->started || p->joined)
        return 0;

    pthread_mutex_lock(&p->mu);
    while (p->live > 0 && rc == 0) {
        if (deadline != NULL)
            rc = pthread_cond_timedwait(&p->exit_cv, &p->mu, deadline);
        else
            rc = pthread_cond_wait(&p->exit_cv, &p->mu);
    }
    if (p->live == 0)
        rc = 0; /* they all finished, even if the deadline passed too */
    pthread_mutex_unlock(&p->mu);
    if (rc != 0)
        return -rc;

    for (i = 0; i < p->nthreads; i++)
        pthread_join(p->workers[i].thread, NULL);
    p->joined = true;
    return 0;
}

size_t pool_size(const struct pool *p)
{
    return p->nthreads;
}

uint64_t pool_in_flight(struct pool *p)
{
    uint64_t n = 0;
    size_t i;

    for (i = 0; i < p->nthreads; i++)
        n += atomic_load_explicit(&p->workers[i].holding, memory_order_relaxed);
    return n;
}

uint64_t pool_worker_handled(struct pool *p, size_t i)
{
    if (i >= p->nthreads)
        return 0;
    return atomic_load_explicit(&p->workers[i].handled, memory_order_relaxed);
}

bool pool_worker_busy(struct pool *p, size_t i)
{
    if (i >= p->nthreads)
        return false;
    return atomic_load_explicit(&p->workers[i].holding, memory_order_relaxed) >
           0;
}
