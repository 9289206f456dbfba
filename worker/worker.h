/*
 * worker.h - a pool of threads that drain a channel.
 *
 * Each of the pool's N threads loops: receive up to `batch` items from the
 * channel at once, call the handler with each in order, repeat; it exits
 * when the channel is closed and empty. The pool starts all of its threads or
 * none, and stops by close-then-join (pool_drain), never by cancellation.
 * While it runs it can grow and shrink (pool_resize: a leaving worker
 * finishes the batch in its hands first) and pause (pool_pause: workers
 * take nothing more until un-paused; the drain un-pauses). Worker threads
 * block every signal so that signals reach the main thread.
 *
 * Thread safety: pool_create, pool_start and pool_destroy are for one
 * controlling thread; pool_drain, pool_resize, pool_pause and
 * pool_set_batch may be called from any thread, also at once (they take
 * turns); the readers (pool_size, pool_paused, pool_in_flight,
 * pool_worker_*) from any thread at any time between create and destroy.
 */
#ifndef SHOPD_WORKER_H
#define SHOPD_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "queue/queue.h"

/*
 * Called by worker `worker` (0 .. N-1) for each item it receives. `item`
 * points to a copy of the element, valid only during the call; `seq` is the
 * item's channel sequence number; `arg` is the pool's argument.
 */
typedef void (*pool_handler)(void *item, uint64_t seq, unsigned worker,
                             void *arg);

struct pool;

/* Largest batch a worker may receive at once. */
#define POOL_BATCH_MAX 1024

/* Most workers a pool may have at once; worker indexes are below it. */
#define POOL_MAX 1024

/*
 * Create a pool of `nthreads` (1..POOL_MAX) workers over channel `q` (not
 * owned; it must outlive the pool) and store it in `*out` (NULL on failure).
 * Each worker receives up to `batch` (1..POOL_BATCH_MAX) items per lock round
 * trip: 1 hands out items one by one (fair when each takes long), more
 * saves the channel's lock per item when items are quick; pool_set_batch
 * may lower it (and raise it back) later. No thread runs
 * until pool_start(). Returns 0, -EINVAL, -ENOMEM, or the pthread error
 * as a negative errno.
 */
int pool_create(struct queue *q, size_t nthreads, size_t batch, pool_handler fn,
                void *arg, struct pool **out);

/*
 * Start every worker thread. All or none: on failure the threads already
 * started are stopped again (the channel is left open).
 * Returns 0 or the pthread error as a negative errno.
 */
int pool_start(struct pool *p);

/*
 * Close the channel, let the workers finish every item still in it, and join
 * them (leaving workers too); un-pauses first. If `deadline` (CLOCK_MONOTONIC)
 * is not NULL and passes first, returns -ETIMEDOUT and leaves the remaining
 * workers running (the caller is then expected to exit the process). Returns 0
 * once all workers are joined. Blocks. Idempotent once it has returned 0.
 */
int pool_drain(struct pool *p, const struct timespec *deadline);

/*
 * Free the pool. Accepts NULL. The pool must be drained (or never started).
 */
void pool_destroy(struct pool *p);

/*
 * Make the pool `n` (1..POOL_MAX) workers. Growing is all or none: if a
 * thread cannot be created, the ones just created are stopped before they
 * take anything and the size stays as it was (the error is returned).
 * Shrinking returns at once: the workers past `n` each finish the batch in
 * their hands, then leave (they are joined by a later resize or the
 * drain); no item is lost or handled twice. Returns 0, -EINVAL (n out of
 * range, or the pool not started), -EPIPE (draining), or the error of
 * pthread_create / -ENOMEM as a negative errno. Never waits for a handler.
 */
int pool_resize(struct pool *p, size_t n);

/*
 * Pause (true) or un-pause (false) the workers: while paused, each worker
 * finishes the batch in its hands and then takes nothing more; the channel
 * fills. Returns 0, or -EPIPE once draining (the drain un-pauses).
 */
int pool_pause(struct pool *p, bool paused);

/* True while paused. */
bool pool_paused(struct pool *p);

/*
 * Items a worker receives at once from its next receive on: 1..the `batch`
 * given to pool_create. Returns 0 or -EINVAL.
 */
int pool_set_batch(struct pool *p, size_t batch);

/* Number of workers wanted now (the last resize's `n`; leaving workers that
 * are still finishing their batch are not counted). */
size_t pool_size(const struct pool *p);

/* Items received by a worker whose handler has not returned yet (a batch
 * waiting in a worker counts, all of it). */
uint64_t pool_in_flight(struct pool *p);

/* Items worker `i` (any index below POOL_MAX, whether or not it has a
 * thread now) has handled so far. */
uint64_t pool_worker_handled(struct pool *p, size_t i);

/* True while worker `i` holds items (is inside the handler, or has more of
 * its batch to go). */
bool pool_worker_busy(struct pool *p, size_t i);

#endif /* SHOPD_WORKER_H */
