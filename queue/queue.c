/*
 * queue.c - a bounded multi-producer multi-consumer channel.
 *
 * Design, after Go's runtime/chan.go (hchan) with POSIX primitives: a ring
 * of `cap` slots of `elem_size` bytes, allocated once; senders copy an
 * element into the slot after the newest one, receivers copy the oldest one
 * out. Nothing is allocated per item. A parallel array holds each slot's
 * sequence number, so the receiver of an item sees the number its sender was
 * given.
 *
 * Invariants, all under `mu`:
 *   - 0 <= len <= cap; the items are slots head, head+1, ... (mod cap);
 *   - the sequence numbers in the ring are sent-len+1 .. sent, in ring order
 *     (they are handed out under the same lock that appends to the ring);
 *   - len <= high_water <= cap;
 *   - once closed, never open again; send fails, recv drains then fails.
 *
 * Waiting: a receiver waits on `not_empty` while the ring is empty and the
 * channel is open; a sender waits on `not_full` while the ring is full and
 * the channel is open. Both re-check `closed` and their predicate inside the
 * wait loop, so spurious and stolen wake-ups are harmless. Waiters count
 * themselves (`recv_waiting`, `send_waiting`) so the other side signals only
 * when someone may be blocked. The signal is sent after the mutex is
 * released, so the woken thread does not immediately block on the mutex
 * still held by its waker; this is safe because the waiter count was read
 * under the lock after the waiter had started waiting, and every waiter
 * re-checks its predicate. queue_close broadcasts both conditions.
 *
 * Fewer wake-ups, as Go's channel does by handing an item to one parked
 * receiver: a sender signals a receiver only if more receivers wait than
 * have already been signalled (`recv_woken`), so a burst of sends wakes one
 * receiver, not one per item. A woken receiver that leaves items behind
 * passes the wake on to the next waiter if none is on its way (the baton),
 * so the invariant "items and waiters => a wake-up is pending" holds.
 * Senders blocked on a full channel are woken one at a time as slots free
 * up (`send_woken`, and a baton in queue_send).
 *
 * A receiver that finds the channel empty first spins briefly (yielding
 * the CPU each time) before it blocks: under load the
 * next item usually arrives within microseconds, and catching it without
 * sleeping saves the futex wake-up the sender would otherwise pay for every
 * item. The spin reads `avail`, a relaxed copy of `len` kept for this purpose
 * only; every decision is still taken under the lock.
 *
 * A receiver may also stop waiting on its own condition
 * (queue_recv_many_unless, used by the worker pool to let an elf leave or
 * pause): the condition is read under `mu` in every wait round, and
 * queue_wake_receivers makes every waiting receiver read it again.
 *
 * Lock order: `mu` is the only lock, and no other lock is taken while it is
 * held (a receiver's `stop` condition only reads atomics). Nothing under it
 * blocks other than the condition waits, allocates or does I/O.
 */
#include "queue/queue.h"

#include "common/thread.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct queue {
    /* Guards every field below except cap, elem_size and the two array
     * pointers, which are fixed at creation. */
    pthread_mutex_t mu;
    pthread_cond_t not_empty; /* signalled when an item arrives */
    pthread_cond_t not_full;  /* signalled when a slot frees up */

    size_t cap;         /* slots, > 0, immutable */
    size_t elem_size;   /* bytes per slot, > 0, immutable */
    unsigned char *buf; /* cap * elem_size bytes; contents under mu */
    uint64_t *seqs;     /* sequence number of each slot; under mu */

    size_t head;         /* index of the oldest item */
    size_t len;          /* items in the ring */
    size_t high_water;   /* largest len ever */
    uint64_t sent;       /* successful sends = last sequence number */
    size_t recv_waiting; /* receivers blocked on not_empty */
    size_t recv_woken;   /* of those, already signalled and not yet up */
    size_t send_waiting; /* senders blocked on not_full */
    size_t send_woken;   /* of those, already signalled and not yet up */
    bool closed;
    /* Copy of len for spinning receivers to read without the lock; written
     * under mu, read relaxed as a hint only. */
    _Atomic size_t avail;
    /* Which of mu, not_empty, not_full exist, so that queue_destroy() can
     * undo a queue_create() that failed half-way. Set once, at creation. */
    bool sync_ready; /* mu, not_empty and not_full exist */
};

int queue_create(size_t capacity, size_t elem_size, struct queue **out)
{
    struct queue *q = NULL;
    int rc;

    *out = NULL;
    if (capacity == 0 || elem_size == 0)
        return -EINVAL;
    if (capacity > SIZE_MAX / elem_size ||
        capacity > SIZE_MAX / sizeof(uint64_t))
        return -ENOMEM;
    rc = -ENOMEM;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        goto fail;
    q->cap = capacity;
    q->elem_size = elem_size;
    q->buf = malloc(capacity * elem_size);
    q->seqs = malloc(capacity * sizeof(uint64_t));
    if (q->buf == NULL || q->seqs == NULL)
        goto fail;
    pthread_cond_t *const conds[] = {&q->not_empty, &q->not_full};
    rc = thread_sync_init(&q->mu, conds, 2);
    if (rc != 0)
        goto fail;
    q->sync_ready = true;
    *out = q;
    return 0;

fail:
    queue_destroy(q);
    return rc;
}

void queue_destroy(struct queue *q)
{
    if (q == NULL)
        return;
    if (q->sync_ready) {
        pthread_cond_t *const conds[] = {&q->not_empty, &q->not_full};
        thread_sync_destroy(&q->mu, conds, 2);
    }
    free(q->seqs);
    free(q->buf);
    free(q);
}

/* Whether a receiver should be signalled now, and if so count the wake-up:
 * only when more receivers wait than are already being woken. */
static bool wake_receiver_locked(struct queue *q)
{
    if (q->recv_waiting <= q->recv_woken)
        return false;
    q->recv_woken++;
    return true;
}

/*
 * The same for a blocked sender when a slot frees up, but one at a time:
 * many producers blocked on a full channel would otherwise all be woken to
 * fight over one slot. The woken sender passes the wake on (queue_send's
 * baton) while slots remain.
 */
static bool wake_sender_locked(struct queue *q)
{
    if (q->send_waiting == 0 || q->send_woken > 0)
        return false;
    q->send_woken++;
    return true;
}

/* Append `elem` to the ring. Called with mu held and len < cap. Returns
 * whether a receiver may be waiting and must be signalled. */
static bool put_locked(struct queue *q, const void *elem, uint64_t *seq)
{
    size_t tail = q->head + q->len;

    if (tail >= q->cap)
        tail -= q->cap;
    memcpy(q->buf + tail * q->elem_size, elem, q->elem_size);
    q->seqs[tail] = ++q->sent;
    if (++q->len > q->high_water)
        q->high_water = q->len;
    if (seq != NULL)
        *seq = q->seqs[tail];
    atomic_store_explicit(&q->avail, q->len, memory_order_relaxed);
    return wake_receiver_locked(q);
}

/* Remove the oldest item into `out`. Called with mu held and len > 0.
 * Returns whether a sender may be waiting and must be signalled. */
static bool take_locked(struct queue *q, void *out, uint64_t *seq)
{
    size_t h = q->head;

    memcpy(out, q->buf + h * q->elem_size, q->elem_size);
    if (seq != NULL)
        *seq = q->seqs[h];
    q->head = (h + 1 == q->cap) ? 0 : h + 1;
    q->len--;
    atomic_store_explicit(&q->avail, q->len, memory_order_relaxed);
    return wake_sender_locked(q);
}

int queue_send(struct queue *q, const void *elem, uint64_t *seq)
{
    bool wake_receiver, wake_sender = false;

    pthread_mutex_lock(&q->mu);
    while (!q->closed && q->len == q->cap) {
        q->send_waiting++;
        pthread_cond_wait(&q->not_full, &q->mu);
        q->send_waiting--;
        if (q->send_woken > 0)
            q->send_woken--;
    }
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        return -EPIPE;
    }
    wake_receiver = put_locked(q, elem, seq);
    /* The baton: free slots left and blocked senders not yet woken. */
    if (q->len < q->cap)
        wake_sender = wake_sender_locked(q);
    pthread_mutex_unlock(&q->mu);
    if (wake_receiver)
        pthread_cond_signal(&q->not_empty);
    if (wake_sender)
        pthread_cond_signal(&q->not_full);
    return 0;
}

int queue_try_send(struct queue *q, const void *elem, uint64_t *seq)
{
    bool wake;

    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        return -EPIPE;
    }
    if (q->len == q->cap) {
        pthread_mutex_unlock(&q->mu);
        return -EAGAIN;
    }
    wake = put_locked(q, elem, seq);
    pthread_mutex_unlock(&q->mu);
    if (wake)
        pthread_cond_signal(&q->not_empty);
    return 0;
}

/* Spins of a receiver that found the channel empty, before it blocks
 * (a build-time knob so that benchmarks can compare; 0 turns it off). */
#ifndef QUEUE_SPINS
#define QUEUE_SPINS 64
#endif

/* Wait briefly, without the lock, for an item or a close to show up. */
static void spin_for_item(struct queue *q)
{
    for (int i = 0; i < QUEUE_SPINS; i++) {
        if (atomic_load_explicit(&q->avail, memory_order_relaxed) > 0)
            return;
        sched_yield();
    }
}

/*
 * Lock the channel and wait, as a receiver, until it holds an item, is
 * closed, or `stop(arg)` (if `stop` is not NULL) is true; spins briefly
 * first. Returns with mu held; false means closed and drained.
 */
static bool lock_for_recv(struct queue *q, bool (*stop)(void *), void *arg)
{
    pthread_mutex_lock(&q->mu);
    if (QUEUE_SPINS > 0 && q->len == 0 && !q->closed) {
        pthread_mutex_unlock(&q->mu);
        spin_for_item(q);
        pthread_mutex_lock(&q->mu);
    }
    while (!q->closed && q->len == 0 && (stop == NULL || !stop(arg))) {
        q->recv_waiting++;
        pthread_cond_wait(&q->not_empty, &q->mu);
        q->recv_waiting--;
        if (q->recv_woken > 0)
            q->recv_woken--;
    }
    return q->len > 0;
}

/* After a receive: pass the baton if items are left, unlock, and send the
 * wake-ups decided under the lock. */
static void unlock_after_recv(struct queue *q, bool wake_sender)
{
    bool wake_receiver = q->len > 0 && wake_receiver_locked(q);

    pthread_mutex_unlock(&q->mu);
    if (wake_sender)
        pthread_cond_signal(&q->not_full);
    if (wake_receiver)
        pthread_cond_signal(&q->not_empty);
}

int queue_recv(struct queue *q, void *out, uint64_t *seq)
{
    if (!lock_for_recv(q, NULL, NULL)) { /* closed and drained */
        pthread_mutex_unlock(&q->mu);
        return -EPIPE;
    }
    unlock_after_recv(q, take_locked(q, out, seq));
    return 0;
}

int queue_recv_many(struct queue *q, void *out, uint64_t *seqs, size_t max)
{
    return queue_recv_many_unless(q, out, seqs, max, NULL, NULL);
}

int queue_recv_many_unless(struct queue *q, void *out, uint64_t *seqs,
                           size_t max, bool (*stop)(void *), void *arg)
{
    unsigned char *dst = out;
    bool wake_sender = false;
    size_t n;

    if (max > INT_MAX)
        max = INT_MAX;
    lock_for_recv(q, stop, arg);
    if (stop != NULL && stop(arg)) {
        /* Taking nothing: a wake-up meant for an item goes on (baton). */
        unlock_after_recv(q, false);
        return -EINTR;
    }
    if (q->len == 0) { /* closed and drained */
        pthread_mutex_unlock(&q->mu);
        return -EPIPE;
    }
    for (n = 0; n < max && q->len > 0; n++) {
        wake_sender |= take_locked(q, dst, seqs != NULL ? &seqs[n] : NULL);
        dst += q->elem_size;
    }
    unlock_after_recv(q, wake_sender);
    return (int)n;
}

void queue_wake_receivers(struct queue *q)
{
    /* Taking the lock orders this wake-up after whatever the caller
     * changed that `stop` reads: a receiver either sees the change before
     * it waits, or is already waiting and is woken here. */
    pthread_mutex_lock(&q->mu);
    pthread_mutex_unlock(&q->mu);
    pthread_cond_broadcast(&q->not_empty);
}

int queue_try_recv(struct queue *q, void *out, uint64_t *seq)
{
    bool wake;

    pthread_mutex_lock(&q->mu);
    if (q->len == 0) {
        int rc = q->closed ? -EPIPE : -EAGAIN;

        pthread_mutex_unlock(&q->mu);
        return rc;
    }
    wake = take_locked(q, out, seq);
    pthread_mutex_unlock(&q->mu);
    if (wake)
        pthread_cond_signal(&q->not_full);
    return 0;
}

void queue_close(struct queue *q)
{
    bool was_closed;

    pthread_mutex_lock(&q->mu);
    was_closed = q->closed;
    q->closed = true;
    pthread_mutex_unlock(&q->mu);
    if (!was_closed) {
        pthread_cond_broadcast(&q->not_empty);
        pthread_cond_broadcast(&q->not_full);
    }
}

size_t queue_len(struct queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

size_t queue_cap(const struct queue *q)
{
    return q->cap;
}

size_t queue_elem_size(const struct queue *q)
{
    return q->elem_size;
}

size_t queue_high_water(struct queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->high_water;
    pthread_mutex_unlock(&q->mu);
    return n;
}

uint64_t queue_sent(struct queue *q)
{
    uint64_t n;

    pthread_mutex_lock(&q->mu);
    n = q->sent;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void queue_counts(struct queue *q, uint64_t *sent, size_t *len)
{
    pthread_mutex_lock(&q->mu);
    *sent = q->sent;
    *len = q->len;
    pthread_mutex_unlock(&q->mu);
}

bool queue_closed(struct queue *q)
{
    bool c;

    pthread_mutex_lock(&q->mu);
    c = q->closed;
    pthread_mutex_unlock(&q->mu);
    return c;
}
