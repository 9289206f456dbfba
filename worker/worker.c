/*
 * worker.c - the one pool of elves: threads that drain a channel, in a
 * number that may change while they run.
 *
 * Each worker owns a buffer of up to `batch_max` elements and loops:
 * queue_recv_many_unless into it (one lock round trip for up to `batch`
 * items), record how many it holds, call the handler for each in order,
 * counting each as it is done. The receive also reads the worker's own
 * stop condition (worker_stop: the pool is paused, or this worker's slot
 * is past the wanted size); when it holds, the receive takes nothing and
 * returns -EINTR. So a worker only ever stops between batches: a leaving
 * or pausing elf finishes every item in its hands first, and an item is
 * either still on the belt or in exactly one worker's hands.
 *
 * Slots: the pool has POOL_MAX slots, allocated at creation and kept until
 * pool_destroy, so the per-worker readers (pool_worker_handled/busy) are
 * safe for any index at any time, however the pool grows and shrinks. Slot
 * i holds worker i; `target` is the size (slots 0..target-1 work). Each
 * slot has a `want` flag (does its worker stay?) and a state (under `mu`):
 *
 *   EMPTY ──grow──▶ WAITING ──gate opens──▶ RUNNING ──leaves / drained──▶ GONE
 *     ▲                 └──gate aborted (a create failed)──▶ GONE      │
 *     └──────────────────── joined (next resize, or drain) ◀───────────┘
 *
 * Growing gives each new slot a thread held at its slot's gate; only when
 * every one exists are their gates opened together, `want` set and
 * `target` raised (all or nothing: if a pthread_create fails, the threads
 * already created are aborted at their gates, never touch the channel, and
 * are joined; the size stays as it was). Shrinking clears `want` of the
 * slots past the new size and wakes the receivers; it does not wait: a
 * leaving worker finishes its batch, sees `want` clear and marks itself
 * GONE, in one hold of `mu`; a later resize or the drain joins it. A slot
 * still RUNNING when the pool grows back over it gets `want` set again
 * under `mu`, so its worker either has not decided to leave (and stays)
 * or is already GONE (and is joined and replaced).
 *
 * Pause: `paused` makes every worker's stop condition true. A paused worker
 * waits on `pause_cv` (not on the channel) until the pool is un-paused,
 * shrunk past it, or drained. The drain un-pauses first.
 *
 * Drain: close the channel, un-pause, and wait for `live` to reach 0; every
 * worker then exits (a worker still wanted drains the channel until it is
 * closed and empty; a leaving one stops after its batch), and every slot
 * with a thread is joined. Nothing is ever cancelled.
 *
 * Threads are created with every signal blocked (common/thread.c), so
 * signals are delivered to a thread that has not blocked them, in shopd the
 * main one.
 *
 * Counters: each worker's `handled` and `holding` are written only by the
 * slot's current worker and read by anyone, as relaxed atomics on the
 * slot's own cache line. pool_in_flight sums what the workers hold over the
 * slots ever used (`nslots`). The readers are exact once the workers are
 * idle or joined; while they run the numbers are a snapshot.
 *
 * Invariants (under `mu`): `live` counts the slots in RUNNING; `want` and
 * `target` are written only under `mu` (and read as atomics); a worker
 * decides to leave and becomes GONE in one hold of `mu`; slots >= target
 * have `want` clear once a resize returns.
 *
 * Lock order: `resize_mu` (one resize, pause or drain at a time) before
 * `mu`, and `resize_mu` before the channel's lock (queue_wake_receivers,
 * queue_close); `mu` is held with no other lock. A worker never takes
 * `resize_mu`, and holds no pool lock while it is in the channel or in the
 * handler; the stop condition that runs under the channel's lock only
 * reads atomics. A resize never waits for a handler (shrinking does not
 * join; it joins only workers already GONE).
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

enum slot_state { SLOT_EMPTY, SLOT_WAITING, SLOT_RUNNING, SLOT_GONE };
enum gate { GATE_WAIT, GATE_GO, GATE_ABORT };

struct pool;

struct pool_worker {
    /* Written only by this slot's worker, read by anyone: items handled,
     * and items received and not yet handled. First on the line, aligned
     * so no two workers share a cache line. */
    _Alignas(POOL_CACHE_LINE) _Atomic uint64_t handled;
    _Atomic size_t holding;
    struct pool *pool;
    void *items;    /* batch_max * elem_size bytes, allocated on first use */
    uint64_t *seqs; /* batch_max sequence numbers */
    pthread_t thread;
    unsigned index;        /* the slot's number, 0 .. POOL_MAX-1 */
    enum slot_state state; /* under pool mu */
    enum gate gate;        /* under pool mu, while WAITING */
    /* Whether this slot's worker should work (else it leaves): written
     * under pool mu, read by the stop condition as an atomic. */
    _Atomic bool want;
};

struct pool {
    struct queue *q; /* not owned */
    pool_handler fn;
    void *arg;
    size_t batch_max;            /* each buffer's room, >= 1 */
    _Atomic size_t batch;        /* items received at once, 1..batch_max */
    size_t elem_size;            /* the channel's */
    struct pool_worker *workers; /* POOL_MAX slots, cache-line aligned */
    size_t initial;              /* the size pool_start starts */

    /* Written under mu, read anywhere: the wanted size, and pause. */
    _Atomic size_t target;
    _Atomic bool paused;
    /* Slots ever given a thread (readers' bound); grows under resize_mu. */
    _Atomic size_t nslots;

    /* One resize, pause or drain at a time; taken before mu. */
    pthread_mutex_t resize_mu;
    /* Guards the slots' state and gate, `live` and `draining`. */
    pthread_mutex_t mu;
    pthread_cond_t gate_cv;  /* a slot's gate left GATE_WAIT */
    pthread_cond_t pause_cv; /* paused, target or draining changed */
    pthread_cond_t exit_cv;  /* live reached 0; waits on CLOCK_MONOTONIC */
    size_t live;
    bool draining;

    /* Under resize_mu. */
    bool started;
    bool joined;
    /* resize_mu, mu and the three conditions exist (all or none), so that
     * pool_destroy() can undo a pool_create() that failed half-way. Set
     * once, at creation. */
    bool sync_ready;
};

/* The receive's stop condition: read under the channel's lock. */
static bool worker_stop(void *opaque)
{
    const struct pool_worker *w = opaque;
    const struct pool *p = w->pool;

    return atomic_load(&p->paused) || !atomic_load(&w->want);
}

/* Handle one received batch of `n` items. */
static void handle_batch(struct pool_worker *w, int n)
{
    struct pool *p = w->pool;
    unsigned char *item = w->items;

    atomic_store_explicit(&w->holding, (size_t)n, memory_order_relaxed);
    for (int i = 0; i < n; i++, item += p->elem_size) {
        p->fn(item, w->seqs[i], w->index, p->arg);
        /* Single writer: plain loads and stores, no locked instruction. */
        atomic_store_explicit(
            &w->handled,
            atomic_load_explicit(&w->handled, memory_order_relaxed) + 1,
            memory_order_relaxed);
        atomic_store_explicit(&w->holding, (size_t)(n - i - 1),
                              memory_order_relaxed);
    }
}

/* After a receive stopped: wait out a pause. Returns true if the worker
 * must leave (called with mu held, which the caller keeps to mark it GONE
 * in the same hold). */
static bool stopped_locked(struct pool_worker *w)
{
    struct pool *p = w->pool;

    while (atomic_load(&p->paused) && !p->draining && atomic_load(&w->want))
        pthread_cond_wait(&p->pause_cv, &p->mu);
    return !atomic_load(&w->want);
}

/* Mark the worker GONE and count it out (called with mu held). */
static void exit_locked(struct pool_worker *w)
{
    struct pool *p = w->pool;

    w->state = SLOT_GONE;
    if (--p->live == 0)
        pthread_cond_broadcast(&p->exit_cv);
}

static void *worker_main(void *opaque)
{
    struct pool_worker *w = opaque;
    struct pool *p = w->pool;
    enum gate g;
    int n;

    pthread_mutex_lock(&p->mu);
    while (w->gate == GATE_WAIT)
        pthread_cond_wait(&p->gate_cv, &p->mu);
    g = w->gate;
    pthread_mutex_unlock(&p->mu);
    if (g == GATE_ABORT)
        return NULL;

    for (;;) {
        n = queue_recv_many_unless(p->q, w->items, w->seqs,
                                   atomic_load(&p->batch), worker_stop, w);
        if (n > 0) {
            handle_batch(w, n);
            continue;
        }
        pthread_mutex_lock(&p->mu);
        if (n != -EINTR || stopped_locked(w))
            break; /* closed and drained, or leaving; still holding mu */
        pthread_mutex_unlock(&p->mu);
    }
    exit_locked(w);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The pool's locks and conditions, all or none. */
static int make_sync(struct pool *p)
{
    pthread_cond_t *const conds[] = {&p->gate_cv, &p->pause_cv, &p->exit_cv};
    int rc = thread_sync_init(&p->mu, conds, 3);

    if (rc == 0 && (rc = thread_sync_init(&p->resize_mu, NULL, 0)) != 0)
        thread_sync_destroy(&p->mu, conds, 3);
    return rc;
}

int pool_create(struct queue *q, size_t nthreads, size_t batch, pool_handler fn,
                void *arg, struct pool **out)
{
    struct pool *p = NULL;
    size_t elem_size;
    int rc;

    *out = NULL;
    if (q == NULL || fn == NULL || nthreads == 0 || nthreads > POOL_MAX ||
        batch == 0 || batch > POOL_BATCH_MAX)
        return -EINVAL;
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
    p->initial = nthreads;
    p->batch_max = batch;
    atomic_init(&p->batch, batch);
    atomic_init(&p->target, 0);
    atomic_init(&p->paused, false);
    atomic_init(&p->nslots, 0);
    p->elem_size = elem_size;
    /* sizeof(struct pool_worker) is a multiple of its alignment, as C11
     * aligned_alloc requires of the size. */
    p->workers = aligned_alloc(_Alignof(struct pool_worker),
                               POOL_MAX * sizeof(struct pool_worker));
    if (p->workers == NULL)
        goto fail;
    memset(p->workers, 0, POOL_MAX * sizeof(struct pool_worker));
    for (size_t i = 0; i < POOL_MAX; i++) {
        struct pool_worker *w = &p->workers[i];

        atomic_init(&w->handled, 0);
        atomic_init(&w->holding, 0);
        atomic_init(&w->want, false);
        w->pool = p;
        w->index = (unsigned)i;
    }
    if ((rc = make_sync(p)) != 0)
        goto fail;
    p->sync_ready = true;
    *out = p;
    return 0;

fail:
    pool_destroy(p);
    return rc;
}

void pool_destroy(struct pool *p)
{
    if (p == NULL)
        return;
    assert(!p->started || p->joined);
    if (p->sync_ready) {
        pthread_cond_t *const conds[] = {&p->gate_cv, &p->pause_cv,
                                         &p->exit_cv};
        thread_sync_destroy(&p->mu, conds, 3);
        thread_sync_destroy(&p->resize_mu, NULL, 0);
    }
    if (p->workers != NULL)
        for (size_t i = 0; i < POOL_MAX; i++) {
            free(p->workers[i].items);
            free(p->workers[i].seqs);
        }
    free(p->workers);
    free(p);
}

/* Join the slots in [from, to) whose worker is GONE, making them EMPTY
 * (called with resize_mu held, mu not held). A GONE worker has returned or
 * is about to, so the join does not wait for work. */
static void reap(struct pool *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        struct pool_worker *w = &p->workers[i];
        bool gone;

        pthread_mutex_lock(&p->mu);
        gone = w->state == SLOT_GONE;
        pthread_mutex_unlock(&p->mu);
        if (!gone)
            continue;
        pthread_join(w->thread, NULL);
        pthread_mutex_lock(&p->mu);
        w->state = SLOT_EMPTY;
        pthread_mutex_unlock(&p->mu);
    }
}

/* Make slot `w` (index in the range being grown) work: a worker still
 * RUNNING (it was leaving) is kept; a GONE one is joined and the slot gets
 * a new thread, held at its gate. Returns 0 or an error (nothing started). */
static int spawn_one(struct pool *p, struct pool_worker *w)
{
    enum slot_state st;
    int rc;

    pthread_mutex_lock(&p->mu);
    st = w->state;
    if (st == SLOT_RUNNING) /* it decides to leave under mu: it stays */
        atomic_store(&w->want, true);
    pthread_mutex_unlock(&p->mu);
    if (st == SLOT_RUNNING)
        return 0;
    if (st == SLOT_GONE) {
        pthread_join(w->thread, NULL);
        pthread_mutex_lock(&p->mu);
        w->state = SLOT_EMPTY;
        pthread_mutex_unlock(&p->mu);
    }
    if (w->items == NULL) {
        w->items = malloc(p->batch_max * p->elem_size);
        w->seqs = malloc(p->batch_max * sizeof(*w->seqs));
        if (w->items == NULL || w->seqs == NULL)
            return -ENOMEM;
    }
    w->gate = GATE_WAIT;
    rc = thread_start(&w->thread, worker_main, w);
    if (rc == 0) {
        pthread_mutex_lock(&p->mu);
        w->state = SLOT_WAITING;
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}

/* Open the gates of every WAITING slot in [from, to) and make the size
 * `to`; or, when `go` is false (a create failed), abort them and let the
 * slots kept in this range leave again. */
static void open_gates(struct pool *p, size_t from, size_t to, bool go)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = from; i < to; i++) {
        struct pool_worker *w = &p->workers[i];

        atomic_store(&w->want, go);
        if (w->state != SLOT_WAITING)
            continue;
        w->gate = go ? GATE_GO : GATE_ABORT;
        w->state = go ? SLOT_RUNNING : SLOT_GONE;
        p->live += go;
    }
    if (go)
        atomic_store(&p->target, to);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_broadcast(&p->gate_cv);
    if (!go)
        queue_wake_receivers(p->q);
}

/* Grow from `from` to `to` workers, all or none (resize_mu held). */
static int grow(struct pool *p, size_t from, size_t to)
{
    int rc = 0;

    if (atomic_load(&p->nslots) < to)
        atomic_store(&p->nslots, to);
    for (size_t i = from; i < to && rc == 0; i++)
        rc = spawn_one(p, &p->workers[i]);
    open_gates(p, from, to, rc == 0);
    if (rc != 0)
        reap(p, from, to); /* the aborted ones */
    return rc;
}

/* Shrink to `to` workers (resize_mu held): they leave after their batch. */
static void shrink(struct pool *p, size_t to)
{
    size_t n = atomic_load(&p->nslots);

    pthread_mutex_lock(&p->mu);
    for (size_t i = to; i < n; i++)
        atomic_store(&p->workers[i].want, false);
    atomic_store(&p->target, to);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_broadcast(&p->pause_cv);
    queue_wake_receivers(p->q);
    /* Join those already gone from earlier shrinks; never wait here. */
    reap(p, to, n);
}

int pool_start(struct pool *p)
{
    int rc;

    pthread_mutex_lock(&p->resize_mu);
    if (p->started) {
        pthread_mutex_unlock(&p->resize_mu);
        return -EINVAL;
    }
    rc = grow(p, 0, p->initial);
    p->started = rc == 0;
    pthread_mutex_unlock(&p->resize_mu);
    return rc;
}

int pool_resize(struct pool *p, size_t n)
{
    size_t now;
    int rc = 0;

    if (n == 0 || n > POOL_MAX)
        return -EINVAL;
    pthread_mutex_lock(&p->resize_mu);
    if (!p->started || p->draining) {
        rc = p->started ? -EPIPE : -EINVAL;
        goto out;
    }
    now = atomic_load(&p->target);
    if (n > now)
        rc = grow(p, now, n);
    else if (n < now)
        shrink(p, n);
out:
    pthread_mutex_unlock(&p->resize_mu);
    return rc;
}

int pool_pause(struct pool *p, bool paused)
{
    int rc = 0;

    pthread_mutex_lock(&p->resize_mu);
    pthread_mutex_lock(&p->mu);
    if (p->draining)
        rc = -EPIPE;
    else
        atomic_store(&p->paused, paused);
    pthread_mutex_unlock(&p->mu);
    if (rc == 0 && !paused) {
        pthread_cond_broadcast(&p->pause_cv);
    } else if (rc == 0) {
        queue_wake_receivers(p->q);
    }
    pthread_mutex_unlock(&p->resize_mu);
    return rc;
}

bool pool_paused(struct pool *p)
{
    return atomic_load(&p->paused);
}

int pool_set_batch(struct pool *p, size_t batch)
{
    if (batch == 0 || batch > p->batch_max)
        return -EINVAL;
    atomic_store(&p->batch, batch);
    return 0;
}

int pool_drain(struct pool *p, const struct timespec *deadline)
{
    size_t i, n;
    int rc = 0;

    pthread_mutex_lock(&p->resize_mu);
    pthread_mutex_lock(&p->mu);
    p->draining = true;
    atomic_store(&p->paused, false);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_broadcast(&p->pause_cv);
    queue_close(p->q);
    if (!p->started || p->joined)
        goto out;

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
    if (rc != 0) {
        rc = -rc;
        goto out;
    }
    n = atomic_load(&p->nslots);
    reap(p, 0, n);
    for (i = 0; i < n; i++)
        assert(p->workers[i].state == SLOT_EMPTY);
    p->joined = true;
out:
    pthread_mutex_unlock(&p->resize_mu);
    return rc;
}

size_t pool_size(const struct pool *p)
{
    size_t n = atomic_load(&((struct pool *)p)->target);

    return n > 0 ? n : p->initial;
}

uint64_t pool_in_flight(struct pool *p)
{
    size_t i, n = atomic_load(&p->nslots);
    uint64_t sum = 0;

    for (i = 0; i < n; i++)
        sum +=
            atomic_load_explicit(&p->workers[i].holding, memory_order_relaxed);
    return sum;
}

uint64_t pool_worker_handled(struct pool *p, size_t i)
{
    if (i >= POOL_MAX)
        return 0;
    return atomic_load_explicit(&p->workers[i].handled, memory_order_relaxed);
}

bool pool_worker_busy(struct pool *p, size_t i)
{
    if (i >= POOL_MAX)
        return false;
    return atomic_load_explicit(&p->workers[i].holding, memory_order_relaxed) >
           0;
}
