/*
 * queue.h - a bounded multi-producer multi-consumer channel.
 *
 * Semantics follow a Go buffered channel: elements have a fixed size and are
 * copied in and out (no allocation per item); send blocks while the channel
 * is full, recv blocks while it is empty; close wakes every waiter, later
 * sends fail with -EPIPE, and receivers drain what is left before they see
 * -EPIPE. The try_ variants never block and return -EAGAIN instead.
 *
 * Each successful send is given a sequence number: 1 for the first item ever
 * sent, 2 for the next, and so on, in the channel's total order. Because the
 * channel is FIFO, the receiver of an item sees the same number; callers may
 * use it as a gap-free ticket (shopd uses it as the order id).
 *
 * Thread safety: every function may be called from any thread at any time
 * between queue_create() and queue_destroy().
 */
#ifndef SHOPD_QUEUE_H
#define SHOPD_QUEUE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

struct queue;

/*
 * Create a channel of `capacity` slots of `elem_size` bytes each (both > 0)
 * and store it, owned by the caller, in `*out` (NULL on failure).
 * Returns 0, -EINVAL, -ENOMEM, or the pthread error as a negative errno.
 */
int queue_create(size_t capacity, size_t elem_size, struct queue **out);

/*
 * Free the channel. Accepts NULL. No thread may be using it any more.
 */
void queue_destroy(struct queue *q);

/*
 * Copy `elem_size` bytes from `elem` into the channel, blocking while it is
 * full. If `seq` is not NULL it receives the item's sequence number.
 * Returns 0, or -EPIPE if the channel is (or becomes, while waiting) closed.
 */
int queue_send(struct queue *q, const void *elem, uint64_t *seq);

/*
 * As queue_send(), but never blocks: returns -EAGAIN if the channel is full.
 */
int queue_try_send(struct queue *q, const void *elem, uint64_t *seq);

/*
 * Copy the oldest item into `out`, blocking while the channel is empty and
 * open. If `seq` is not NULL it receives the item's sequence number.
 * Returns 0, or -EPIPE once the channel is closed and empty.
 */
int queue_recv(struct queue *q, void *out, uint64_t *seq);

/*
 * As queue_recv(), but never blocks: returns -EAGAIN if the channel is empty
 * and open, -EPIPE if it is closed and empty.
 */
int queue_try_recv(struct queue *q, void *out, uint64_t *seq);

/*
 * Receive up to `max` (> 0) of the oldest items in one hold of the lock:
 * copy them, oldest first, into `out` (room for `max` elements, back to
 * back) and, if `seqs` is not NULL, their sequence numbers into `seqs`.
 * Blocks while the channel is empty and open, like queue_recv(). Returns
 * how many it took (1..max), or -EPIPE once the channel is closed and
 * empty. A worker that receives in batches pays one lock round trip per
 * batch instead of one per item.
 */
int queue_recv_many(struct queue *q, void *out, uint64_t *seqs, size_t max);

/*
 * As queue_recv_many(), but `stop(arg)` is also read, under the channel's
 * lock, before taking anything and in every wait round: when it is true,
 * returns -EINTR and takes nothing (even if items wait). `stop` must not
 * block or take a lock (read atomics). queue_wake_receivers() makes every
 * blocked receiver read its `stop` again.
 */
int queue_recv_many_unless(struct queue *q, void *out, uint64_t *seqs,
                           size_t max, bool (*stop)(void *), void *arg);

/*
 * Wake every receiver blocked in the channel, so that each reads its
 * `stop` condition again (queue_recv_many_unless); receivers with nothing
 * to take and no reason to stop wait again. Call it after changing what
 * the conditions read.
 */
void queue_wake_receivers(struct queue *q);

/*
 * Close the channel: wake every blocked sender (they return -EPIPE) and
 * receiver (they drain what is left, then return -EPIPE). Idempotent.
 */
void queue_close(struct queue *q);

/* Number of items in the channel now. */
size_t queue_len(struct queue *q);

/* Capacity given to queue_create(). */
size_t queue_cap(const struct queue *q);

/* Element size given to queue_create(). */
size_t queue_elem_size(const struct queue *q);

/* Largest number of items the channel has held at once. */
size_t queue_high_water(struct queue *q);

/* Number of successful sends so far (the last sequence number issued). */
uint64_t queue_sent(struct queue *q);

/*
 * Read the number of successful sends and of items now in the channel at
 * one instant (under one hold of the lock), so that `sent - len` is exactly
 * the number of items received so far.
 */
void queue_counts(struct queue *q, uint64_t *sent, size_t *len);

/* True once queue_close() has been called. */
bool queue_closed(struct queue *q);

#endif /* SHOPD_QUEUE_H */
