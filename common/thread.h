/*
 * thread.h - how every shopd module starts a thread.
 *
 * Signals are for main alone (SPEC §3): main waits for them with sigwait(),
 * so no other thread may take one. thread_start() creates a thread with
 * every signal blocked, whatever the caller's mask, and leaves the
 * caller's own mask as it was.
 *
 * Thread safety: callable from any thread.
 */
#ifndef SHOPD_COMMON_THREAD_H
#define SHOPD_COMMON_THREAD_H

#include <pthread.h>

/*
 * Create a joinable thread running fn(arg) with every signal blocked.
 * Returns 0, or the error of pthread_sigmask/pthread_create as a negative
 * errno (no thread was created then).
 */
int thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif /* SHOPD_COMMON_THREAD_H */
