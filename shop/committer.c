/*
 * committer.c - the group committer between the shop and a durable store
 * (the journal behind the belt), and the feeder that puts a restarted
 * shop's unfinished orders back on the belt.
 *
 *   shop_submit_async ─┐                         ┌─▶ belt (accepted orders)
 *   worker results  ───┼─▶ pending ─swap─▶ batch ┤    order book, done(202)
 *                      │   (lock)   store_commit └─▶ order book (final)
 *
 * One thread commits. Producers (HTTP threads with accepts, workers with
 * results) append to the pending arrays under `lock`; the committer swaps
 * them with its own (empty) arrays, drops the lock, and commits the whole
 * batch in one store_commit(). While that commit is in flight the next
 * batch fills, so under load batches grow by themselves and an order waits
 * for at most one commit besides its own (PostgreSQL's group commit).
 *
 * Bounds, so nothing here allocates after create:
 *   - accepts: the shop reserves a belt slot before it hands an order over,
 *     so at most queue_capacity accepts are pending or in flight;
 *   - results: workers block in committer_result() while result_cap
 *     results wait (only while commits fail: each commit empties them).
 *
 * Restocks (rare admin actions) wait in a FIFO list and go into the same
 * commits; an accept or a restock may carry its Idempotency-Key, which is
 * committed with it (a key the store already holds refuses the accept or
 * restock: -EEXIST).
 *
 * After a commit: accepted orders are recorded as queued in the order
 * book, put on the belt (their reserved slot guarantees room; a shared
 * store's accepts reach a belt through its stream and the shop's feeder
 * instead) and their completions run; failed accepts complete with -EIO. A
 * committed restock is applied to the inventory only then, so no sale uses
 * units the store does not hold. Results are recorded in the order book only
 * once committed, so GET /orders/{id} never shows a final status that a crash
 * could take back; each committed result is reported to the shop's hook
 * (committer_on_done) with the status the store kept (a store with
 * STORE_CAP_DECIDES fills it in) and whether this commit applied it, so the
 * shop counts it then. Failed results are kept and retried (the stock they took
 * is already gone from the in-memory inventory) every RETRY_MS, before anything
 * newer. While the store is unavailable and idle, an empty commit probes it
 * every PROBE_MS, so /readyz recovers without traffic.
 *
 * A shop without a journal (the memory store) has no committer: every
 * function here accepts NULL and then does nothing (or reports nothing
 * pending), so the shop calls them the same way in every mode.
 *
 * Lock order: `lock` only; never held with another lock, never across
 * store_commit(), queue_send(), a completion or the done hook.
 */
#include "shop/internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "common/thread.h"
#include "queue/queue.h"
#include "store/store.h"

#define RETRY_MS    100
#define SMALL_BATCH 16 /* a batch below this waits one yield for more */
#define PROBE_MS    1000
/* Restocks taken into one commit at most (they are rare admin actions). */
#define RESTOCKS_PER_COMMIT 64

/* One restock handed over by shop_restock_async(), in a FIFO list (a
 * node is allocated by the caller before it takes the lock). */
struct pending_restock {
    struct pending_restock *next;
    uint32_t product;
    int64_t qty;
    shop_restock_fn done;
    void *arg;
    bool keyed;
    struct store_idem idem; /* points into the fields below */
    struct store_answer existing;
    size_t key_len;
    char key[SHOP_IDEM_KEY_MAX];
    size_t fp_len;
    char fp[STORE_FINGERPRINT_MAX];
};

/* One accept handed over by shop_submit_async(), with its key if any. */
struct pending_accept {
    struct shop_item item;
    shop_done_fn done;
    void *arg;
    bool keyed;
    struct store_idem idem; /* points into key and fp below */
    size_t key_len;
    char key[SHOP_IDEM_KEY_MAX];
    size_t fp_len;
    char fp[STORE_FINGERPRINT_MAX];
};

_Static_assert(STORE_FINGERPRINT_MAX == SHOP_IDEM_FP_MAX, "fingerprint sizes");
_Static_assert(STORE_IDEM_KEY_MAX == SHOP_IDEM_KEY_MAX, "key sizes");

struct committer {
    struct store *store;
    struct queue *belt;
    struct orderbook *book;
    struct inventory *inv; /* a committed restock is applied here */
    _Atomic size_t *held;  /* the shop's reserved belt slots */
    size_t accept_cap, result_cap;

    pthread_mutex_t lock;       /* guards every field down to `feeder_done` */
    pthread_cond_t wake;        /* committer: work arrived or closing */
    pthread_cond_t room;        /* workers: result room; drain: progress */
    struct pending_accept *acc; /* pending accepts (acc_n) */
    size_t acc_n;
    struct order *res; /* pending results (res_n) */
    size_t res_n;
    struct pending_restock *rs_head; /* pending restocks, oldest first */
    struct pending_restock **rs_tail;
    bool accepts_closed; /* no more accepts may arrive */
    bool results_closed; /* no more results may arrive */
    bool accepts_busy;   /* the committer holds accepts in flight */
    bool exited;         /* the committer thread has returned */
    bool feeder_done;    /* the feeder has put its last order */
    size_t retained;     /* failed results awaiting retry (committer) */

    /* Committer thread only. */
    struct pending_accept *acc_fly;
    struct order *res_fly;
    struct store_accept *sacc;
    struct store_result *sres;
    struct pending_restock *rs_fly[RESTOCKS_PER_COMMIT];
    struct store_restock srs[RESTOCKS_PER_COMMIT];

    /* The feeder's orders: read-only after create. */
    struct shop_item *backlog;
    size_t nbacklog;
    _Atomic size_t fed;

    pthread_t thread, feeder;
    bool thread_started, feeder_started;
    bool sync_ready; /* lock, wake and room exist */

    struct latency_hist *latency;
    _Atomic uint64_t commits, committed_orders, failed_commits;
    _Atomic uint64_t accepted; /* orders committed as accepted */
    _Atomic uint64_t refused;  /* accepts and restocks answered -EIO */
    /* A shared store (Redis): its belt is the store's; accepted orders do
     * not go on the local one, and the store may refuse one as full. */
    bool shared;
    _Atomic bool available;
    /* Committed results are reported here (set before start). */
    committer_done_fn done_fn;
    void *done_arg;
};

static void to_store_order(const struct order *o, struct store_order *so)
{
    memset(so, 0, sizeof(*so));
    so->id = o->id;
    so->product = o->product;
    so->quantity = o->quantity;
    so->status = (enum store_status)o->status;
    so->worker = o->worker;
    so->accepted_ns = o->accepted_ns;
    so->processed_ns = o->processed_ns;
    so->has_customer = o->has_customer;
    if (o->has_customer)
        memcpy(so->customer, o->customer, sizeof(so->customer));
}

void shop_order_from_store(const struct store_order *so, struct order *o)
{
    memset(o, 0, sizeof(*o));
    o->id = so->id;
    o->product = so->product;
    o->quantity = so->quantity;
    o->status = (enum order_status)so->status;
    o->worker = so->worker;
    o->accepted_ns = so->accepted_ns;
    o->processed_ns = so->processed_ns;
    o->has_customer = so->has_customer;
    if (so->has_customer)
        memcpy(o->customer, so->customer, sizeof(o->customer));
}

/* Commit one batch: `na` accepts, `nr` results (the first `nr` of
 * res_fly) and `nk` restocks. Returns store_commit()'s result. */
static int commit_batch(struct committer *c, size_t na, size_t nr, size_t nk)
{
    for (size_t i = 0; i < nk; i++) {
        memset(&c->srs[i], 0, sizeof(c->srs[i]));
        struct pending_restock *p = c->rs_fly[i];
        c->srs[i].product = p->product;
        c->srs[i].quantity = p->qty;
        if (p->keyed) {
            p->idem = (struct store_idem){
                .endpoint = "restock",
                .key = p->key,
                .key_len = p->key_len,
                .fingerprint = p->fp,
                .fingerprint_len = p->fp_len,
            };
            c->srs[i].idem = &p->idem;
            c->srs[i].existing = &p->existing;
        }
    }
    for (size_t i = 0; i < na; i++) {
        struct store_accept *a = &c->sacc[i];
        struct pending_accept *p = &c->acc_fly[i];
        memset(a, 0, sizeof(*a));
        to_store_order(&p->item.o, &a->order);
        if (p->keyed) {
            p->idem = (struct store_idem){
                .endpoint = "buy",
                .key = p->key,
                .key_len = p->key_len,
                .fingerprint = p->fp,
                .fingerprint_len = p->fp_len,
            };
            a->idem = &p->idem;
        }
    }
    for (size_t i = 0; i < nr; i++) {
        const struct order *o = &c->res_fly[i];
        struct store_result *r = &c->sres[i];
        r->id = o->id;
        r->product = o->product;
        r->quantity = o->quantity;
        r->status = (enum store_status)o->status;
        r->worker = o->worker;
        r->processed_ns = o->processed_ns;
        r->applied = false;
    }
    struct store_batch b = {
        .accepts = c->sacc,
        .naccepts = na,
        .results = c->sres,
        .nresults = nr,
        .restocks = c->srs,
        .nrestocks = nk,
    };
    int64_t t0 = time_now_ns(CLOCK_MONOTONIC);
    int rc = store_commit(c->store, &b);
    latency_hist_record(c->latency, time_now_ns(CLOCK_MONOTONIC) - t0);
    atomic_fetch_add_explicit(&c->commits, 1, memory_order_relaxed);
    if (rc == 0)
        atomic_fetch_add_explicit(&c->committed_orders, na + nr,
                                  memory_order_relaxed); /* restocks aside */
    else
        atomic_fetch_add_explicit(&c->failed_commits, 1, memory_order_relaxed);
    atomic_store_explicit(&c->available, rc == 0, memory_order_release);
    return rc;
}

/* After a commit: hand accepted orders on, answer every accept. */
static void finish_accepts(struct committer *c, size_t na, int rc)
{
    for (size_t i = 0; i < na; i++) {
        struct pending_accept *p = &c->acc_fly[i];
        if (rc == 0 && c->sacc[i].result == STORE_ACCEPTED) {
            p->item.o.id = c->sacc[i].order.id;
            orderbook_put(c->book, &p->item.o);
            /* Room is reserved: this never waits, and the belt is closed
             * only after every accept has been handed on. */
            if (!c->shared)
                queue_send(c->belt, &p->item, NULL);
            atomic_fetch_sub_explicit(c->held, 1, memory_order_release);
            atomic_fetch_add_explicit(&c->accepted, 1, memory_order_relaxed);
            p->done(p->arg, 0, p->item.o.id);
        } else if (rc == 0 && c->sacc[i].result == STORE_FULL) {
            atomic_fetch_sub_explicit(c->held, 1, memory_order_release);
            p->done(p->arg, -EAGAIN, 0);
        } else {
            atomic_fetch_sub_explicit(c->held, 1, memory_order_release);
            /* -ETIMEDOUT: the store may have taken it (SPEC §7, 504). */
            int res = rc == 0 ? -EEXIST : rc == -ETIMEDOUT ? -ETIMEDOUT : -EIO;
            if (res == -EIO)
                atomic_fetch_add_explicit(&c->refused, 1, memory_order_relaxed);
            p->done(p->arg, res, 0);
        }
    }
}

/* After a commit: a committed restock is applied to the inventory (so a
 * sale can use it only once it is durable) and answered with the
 * product's numbers; a failed one is answered -EIO. */
static void finish_restocks(struct committer *c, size_t nk, int rc)
{
    for (size_t i = 0; i < nk; i++) {
        struct pending_restock *p = c->rs_fly[i];
        const struct store_restock *r = &c->srs[i];
        if (rc == 0 && r->result == STORE_KEY_EXISTS) {
            p->done(p->arg, -EEXIST, NULL);
        } else if (rc == 0) {
            inventory_restock(c->inv, p->product, p->qty, NULL);
            /* The numbers committed with it: what its key remembers. */
            struct shop_stock st = {
                .stock = r->stock, .sold = r->sold, .restocked = r->restocked};
            p->done(p->arg, 0, &st);
        } else {
            if (rc != -ETIMEDOUT)
                atomic_fetch_add_explicit(&c->refused, 1, memory_order_relaxed);
            p->done(p->arg, rc == -ETIMEDOUT ? -ETIMEDOUT : -EIO, NULL);
        }
        free(p);
    }
}

/* After a successful commit: each result with the status the store kept
 * goes to the shop's hook, then (if this commit applied it) to the order
 * book. */
static void finish_results(struct committer *c, size_t nr)
{
    for (size_t i = 0; i < nr; i++) {
        struct order *o = &c->res_fly[i];
        bool applied = c->sres[i].applied;
        o->status = (enum order_status)c->sres[i].status;
        if (c->done_fn != NULL)
            c->done_fn(c->done_arg, o, applied);
        if (applied)
            orderbook_put(c->book, o);
    }
}

static void *committer_main(void *arg)
{
    struct committer *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        /* Wait for work, a retry, a probe, or the end. */
        while (c->acc_n == 0 && c->res_n == 0 && c->rs_head == NULL) {
            if (c->results_closed && c->accepts_closed && c->retained == 0)
                goto out;
            bool down =
                !atomic_load_explicit(&c->available, memory_order_acquire);
            if (c->retained == 0 && !down) {
                pthread_cond_wait(&c->wake, &c->lock);
                continue;
            }
            struct timespec ts;
            ts = time_deadline_ms(CLOCK_MONOTONIC,
                                  c->retained ? RETRY_MS : PROBE_MS);
            if (pthread_cond_timedwait(&c->wake, &c->lock, &ts) == ETIMEDOUT)
                break;
        }
        /* A small batch that just arrived: let the producers that are
         * running add to it first (one yield, as PostgreSQL's commit_delay
         * waits for siblings), so that fewer, larger commits carry the
         * same orders when the CPUs are busy. */
        if (c->acc_n + c->res_n < SMALL_BATCH && c->retained == 0) {
            pthread_mutex_unlock(&c->lock);
            sched_yield();
            pthread_mutex_lock(&c->lock);
        }
        /* Take the batch: retained results first, then the new ones. */
        size_t na = c->acc_n;
        struct pending_accept *ta = c->acc_fly;
        c->acc_fly = c->acc;
        c->acc = ta;
        c->acc_n = 0;
        size_t take = 2 * c->result_cap - c->retained;
        if (take > c->res_n)
            take = c->res_n;
        size_t nr = c->retained + take;
        memcpy(c->res_fly + c->retained, c->res, take * sizeof(*c->res));
        c->res_n -= take;
        memmove(c->res, c->res + take, c->res_n * sizeof(*c->res));
        size_t nk = 0;
        while (c->rs_head != NULL && nk < RESTOCKS_PER_COMMIT) {
            c->rs_fly[nk++] = c->rs_head;
            c->rs_head = c->rs_head->next;
        }
        if (c->rs_head == NULL)
            c->rs_tail = &c->rs_head;
        c->accepts_busy = na > 0 || nk > 0;
        if (nr > 0)
            pthread_cond_broadcast(&c->room);
        pthread_mutex_unlock(&c->lock);

        int rc = commit_batch(c, na, nr, nk);
        finish_accepts(c, na, rc);
        finish_restocks(c, nk, rc);
        if (rc == 0)
            finish_results(c, nr);

        pthread_mutex_lock(&c->lock);
        c->retained = rc == 0 ? 0 : nr;
        c->accepts_busy = false;
        pthread_cond_broadcast(&c->room);
    }
out:
    c->exited = true;
    pthread_cond_broadcast(&c->room);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* Put the restarted shop's unfinished orders on the belt, in id order,
 * waiting for room as workers take them. */
static void *feeder_main(void *arg)
{
    struct committer *c = arg;
    for (size_t i = 0; i < c->nbacklog; i++) {
        struct shop_item *it = &c->backlog[i];
        it->enqueued_mono_ns = time_now_ns(CLOCK_MONOTONIC);
        if (queue_send(c->belt, it, NULL) != 0)
            break; /* closed by a drain past its deadline */
        atomic_fetch_sub_explicit(c->held, 1, memory_order_release);
        atomic_fetch_add_explicit(&c->fed, 1, memory_order_relaxed);
    }
    pthread_mutex_lock(&c->lock);
    c->feeder_done = true;
    pthread_cond_broadcast(&c->room);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int committer_create(struct store *st, struct queue *belt,
                     struct orderbook *book, struct inventory *inv,
                     _Atomic size_t *held, size_t accept_cap, size_t result_cap,
                     const struct order *backlog, size_t nbacklog,
                     struct committer **out)
{
    struct committer *c = calloc(1, sizeof(*c));
    int err = -ENOMEM;
    if (c == NULL)
        goto fail;
    c->store = st;
    c->shared = (store_caps(st) & STORE_CAP_SHARED) != 0;
    c->inv = inv;
    c->rs_tail = &c->rs_head;
    c->belt = belt;
    c->book = book;
    c->held = held;
    c->accept_cap = accept_cap;
    c->result_cap = result_cap;
    c->feeder_done = nbacklog == 0;
    atomic_init(&c->available, true);
    atomic_init(&c->fed, 0);
    c->acc = calloc(accept_cap, sizeof(*c->acc));
    c->acc_fly = calloc(accept_cap, sizeof(*c->acc_fly));
    c->sacc = calloc(accept_cap, sizeof(*c->sacc));
    c->res = calloc(result_cap, sizeof(*c->res));
    /* Retained results plus a full pending array fit in flight. */
    c->res_fly = calloc(2 * result_cap, sizeof(*c->res_fly));
    c->sres = calloc(2 * result_cap, sizeof(*c->sres));
    c->latency = latency_hist_create();
    if (nbacklog > 0)
        c->backlog = calloc(nbacklog, sizeof(*c->backlog));
    if (!c->acc || !c->acc_fly || !c->sacc || !c->res || !c->res_fly ||
        !c->sres || !c->latency || (nbacklog > 0 && !c->backlog))
        goto fail;
    for (size_t i = 0; i < nbacklog; i++) {
        c->backlog[i].o = backlog[i];
        c->backlog[i].o.status = ORDER_QUEUED;
        c->backlog[i].o.worker = -1;
        c->backlog[i].o.processed_ns = 0;
    }
    c->nbacklog = nbacklog;
    pthread_cond_t *const conds[] = {&c->wake, &c->room};
    err = thread_sync_init(&c->lock, conds, 2);
    if (err)
        goto fail;
    c->sync_ready = true;
    *out = c;
    return 0;

fail:
    committer_destroy(c);
    *out = NULL;
    return err;
}

void committer_on_done(struct committer *c, committer_done_fn fn, void *arg)
{
    if (c == NULL)
        return;
    c->done_fn = fn;
    c->done_arg = arg;
}

int committer_start(struct committer *c)
{
    if (c == NULL)
        return 0;
    /* Signals are main's (sigwait): these threads take none. */
    int err = thread_start(&c->thread, committer_main, c);
    if (err)
        return err;
    c->thread_started = true;
    if (c->nbacklog > 0) {
        err = thread_start(&c->feeder, feeder_main, c);
        if (err) {
            committer_finish(c, NULL);
            return err;
        }
        c->feeder_started = true;
    }
    return 0;
}

int committer_accept(struct committer *c, const struct shop_item *it,
                     const struct shop_order_key *key, shop_done_fn done,
                     void *arg)
{
    if (c == NULL)
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    if (c->accepts_closed || c->acc_n == c->accept_cap) {
        pthread_mutex_unlock(&c->lock);
        return -EPIPE;
    }
    struct pending_accept *p = &c->acc[c->acc_n++];
    p->item = *it;
    p->done = done;
    p->arg = arg;
    p->keyed = key != NULL;
    if (key != NULL) {
        p->key_len = key->len;
        memcpy(p->key, key->key, key->len);
        p->fp_len = key->fp_len;
        memcpy(p->fp, key->fp, key->fp_len);
    }
    if (c->acc_n == 1)
        pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int committer_restock(struct committer *c, uint32_t product, int64_t qty,
                      const struct shop_order_key *key, shop_restock_fn done,
                      void *arg)
{
    if (c == NULL)
        return -EINVAL;
    struct pending_restock *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->product = product;
    p->qty = qty;
    p->done = done;
    p->arg = arg;
    if (key != NULL) {
        p->keyed = true;
        p->key_len = key->len;
        memcpy(p->key, key->key, key->len);
        p->fp_len = key->fp_len;
        memcpy(p->fp, key->fp, key->fp_len);
    }
    pthread_mutex_lock(&c->lock);
    if (c->accepts_closed) {
        pthread_mutex_unlock(&c->lock);
        free(p);
        return -EPIPE;
    }
    bool first = c->rs_head == NULL;
    *c->rs_tail = p;
    c->rs_tail = &p->next;
    if (first)
        pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void committer_result(struct committer *c, const struct order *o)
{
    pthread_mutex_lock(&c->lock);
    while (c->res_n == c->result_cap && !c->exited)
        pthread_cond_wait(&c->room, &c->lock);
    if (!c->exited) {
        c->res[c->res_n++] = *o;
        if (c->res_n == 1)
            pthread_cond_signal(&c->wake);
    }
    pthread_mutex_unlock(&c->lock);
}

/* One wait on `room` (lock held). Returns false once `deadline` (may be
 * NULL: no deadline) has passed. */
static bool wait_room(struct committer *c, const struct timespec *deadline)
{
    if (deadline == NULL) {
        pthread_cond_wait(&c->room, &c->lock);
        return true;
    }
    return pthread_cond_timedwait(&c->room, &c->lock, deadline) != ETIMEDOUT;
}

static bool accepts_flushed(const struct committer *c)
{
    return (c->acc_n == 0 && c->rs_head == NULL && !c->accepts_busy) ||
           c->exited;
}

int committer_close_accepts(struct committer *c,
                            const struct timespec *deadline)
{
    bool timedout = false;
    if (c == NULL || !c->thread_started)
        return 0; /* never started: nothing was accepted or fed */
    pthread_mutex_lock(&c->lock);
    c->accepts_closed = true;
    pthread_cond_signal(&c->wake);
    while (!timedout && !(accepts_flushed(c) && c->feeder_done))
        timedout =
            !wait_room(c, deadline) && !(accepts_flushed(c) && c->feeder_done);
    pthread_mutex_unlock(&c->lock);
    if (!timedout && c->feeder_started) {
        pthread_join(c->feeder, NULL);
        c->feeder_started = false;
    }
    return timedout ? -ETIMEDOUT : 0;
}

int committer_finish(struct committer *c, const struct timespec *deadline)
{
    bool timedout = false;
    if (c == NULL || !c->thread_started)
        return 0;
    pthread_mutex_lock(&c->lock);
    c->accepts_closed = c->results_closed = true;
    pthread_cond_signal(&c->wake);
    while (!timedout && !c->exited)
        timedout = !wait_room(c, deadline) && !c->exited;
    pthread_mutex_unlock(&c->lock);
    if (timedout)
        return -ETIMEDOUT;
    pthread_join(c->thread, NULL);
    c->thread_started = false;
    return 0;
}

size_t committer_unfinished(struct committer *c)
{
    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    size_t n = c->res_n + c->retained + c->acc_n;
    pthread_mutex_unlock(&c->lock);
    return n + c->nbacklog -
           atomic_load_explicit(&c->fed, memory_order_relaxed);
}

void committer_destroy(struct committer *c)
{
    if (c == NULL)
        return;
    if (c->thread_started || c->feeder_started)
        return; /* still running after a timed-out drain: leak, we exit */
    while (c->rs_head != NULL) { /* never committed: never answered */
        struct pending_restock *p = c->rs_head;
        c->rs_head = p->next;
        free(p);
    }
    if (c->sync_ready) {
        pthread_cond_t *const conds[] = {&c->wake, &c->room};
        thread_sync_destroy(&c->lock, conds, 2);
    }
    free(c->acc);
    free(c->acc_fly);
    free(c->sacc);
    free(c->res);
    free(c->res_fly);
    free(c->sres);
    free(c->backlog);
    latency_hist_destroy(c->latency);
    free(c);
}

void committer_stats(struct committer *c, struct shop_store_stats *out)
{
    if (c == NULL)
        return;
    out->durable = true;
    out->commits = atomic_load_explicit(&c->commits, memory_order_relaxed);
    out->committed_orders =
        atomic_load_explicit(&c->committed_orders, memory_order_relaxed);
    out->failed_commits =
        atomic_load_explicit(&c->failed_commits, memory_order_relaxed);
    uint64_t ok = out->commits - out->failed_commits;
    out->orders_per_commit =
        ok > 0 ? (double)out->committed_orders / (double)ok : 0;
    latency_hist_summary(c->latency, &out->commit_latency);
    out->backlog = c->nbacklog;
    out->backlog_fed = atomic_load_explicit(&c->fed, memory_order_relaxed);
    out->uncommitted = committer_unfinished(c);
}

void committer_histogram(struct committer *c, struct shop_histogram *out)
{
    if (c == NULL)
        return;
    latency_hist_export(c->latency, out);
}

uint64_t committer_accepted(struct committer *c)
{
    if (c == NULL)
        return 0;
    return atomic_load_explicit(&c->accepted, memory_order_relaxed);
}

uint64_t committer_refused(struct committer *c)
{
    return atomic_load_explicit(&c->refused, memory_order_relaxed);
}

bool committer_available(struct committer *c)
{
    if (c == NULL)
        return true;
    return atomic_load_explicit(&c->available, memory_order_acquire);
}
