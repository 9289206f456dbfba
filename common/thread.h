/*
 * thread.h - how every shopd module starts a thread.
 *
 * Signals are for main alone (SPEC §3): main waits for them with sigwait(),
 * so no other thread may take one. thread_start() creates a thread with
 * every signal blocked, whatever the caller's mask, and leaves the
 * caller's own mask as it was.
 *
 * thread_sync_init() makes a mutex and its condition variables in one
 * call, all or none, so an owner needs one flag (by house convention a
 * `bool sync_ready`) to know whether to call thread_sync_destroy().
 *
 * Thread safety: callable from any thread.
 */
#ifndef SHOPD_COMMON_THREAD_H
#define SHOPD_COMMON_THREAD_H

#include <pthread.h>
#include <stddef.h>

/*
 * Create a joinable thread running fn(arg) with every signal blocked.
 * Returns 0, or the error of pthread_sigmask/pthread_create as a negative
 * errno (no thread was created then).
 */
int thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/*
 * Initialise *mu (default attributes) and the n condition variables
 * conds[0..n-1] on CLOCK_MONOTONIC, so that any pthread_cond_timedwait()
 * on them takes a deadline from time_deadline_ms(CLOCK_MONOTONIC, ...).
 * All or none: on failure whatever was made is destroyed again. Returns 0
 * or the pthread error as a negative errno. n may be 0 (a lone mutex).
 * The objects must not be in use; the caller owns them.
 */
int thread_sync_init(pthread_mutex_t *mu, pthread_cond_t *const conds[],
                     size_t n);

/* Destroy what a successful thread_sync_init(mu, conds, n) made: nobody
 * may be waiting on, or holding, any of them. */
void thread_sync_destroy(pthread_mutex_t *mu, pthread_cond_t *const conds[],
                         size_t n);

#endif /* SHOPD_COMMON_THREAD_H */
