/*
 * thread.c - start threads that never take a signal.
 *
 * A new thread inherits its creator's signal mask, so the mask is widened
 * to "everything blocked" around pthread_create() and restored after: the
 * new thread starts blocked, the creator ends as it began.
 */
#include "common/thread.h"

#include <signal.h>

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
