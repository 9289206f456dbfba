/*
 * thread.c - start threads that never take a signal.
 *
 * A new thread inherits its creator's signal mask, so the mask is widened
 * to "everything blocked" around pthread_create() and restored after: the
 * new thread starts blocked, the creator ends as it began.
 *
 * Every timed wait in shopd measures CLOCK_MONOTONIC (a wall-clock step
 * must not fire or stretch a timeout), so thread_sync_init() gives each
 * condition variable that clock, even one nobody waits on with a timeout:
 * the clock costs nothing on an untimed wait and no owner has to choose.
 */
#include "common/thread.h"

#include <signal.h>
#include <time.h>

int thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    rc = pthread_sigmask(SIG_BLOCK, &all, &old);
    if (rc != 0)
        return -rc;
    rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

int thread_sync_init(pthread_mutex_t *mu, pthread_cond_t *const conds[],
                     size_t n)
{
    pthread_condattr_t ca;
    size_t made = 0;
    int rc = pthread_mutex_init(mu, NULL);

    if (rc != 0)
        return -rc;
    rc = pthread_condattr_init(&ca);
    if (rc == 0) {
        rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        while (rc == 0 && made < n &&
               (rc = pthread_cond_init(conds[made], &ca)) == 0)
            made++;
        pthread_condattr_destroy(&ca);
    }
    if (rc == 0)
        return 0;
    while (made > 0)
        pthread_cond_destroy(conds[--made]);
    pthread_mutex_destroy(mu);
    return -rc;
}

void thread_sync_destroy(pthread_mutex_t *mu, pthread_cond_t *const conds[],
                         size_t n)
{
    while (n > 0)
        pthread_cond_destroy(conds[--n]);
    pthread_mutex_destroy(mu);
}
