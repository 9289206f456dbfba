/*
 * deferred.c - answers that come later: a handler that cannot answer at
 * once (POST /buy with a durable store waits for its commit) returns a
 * response marked `deferred`; the HTTP glue suspends the connection, and
 * whoever finishes the work completes the deferred answer from its own
 * thread, which resumes the connection to send it.
 *
 * Handshake (the completion may come before the glue has suspended):
 *   glue:      lock; if done -> answer now; else suspend, suspended = true;
 *              unlock
 *   completer: lock; store the answer, done = true; s = suspended; unlock;
 *              if s -> resume
 * Either the glue sees `done` and never suspends, or it suspended under
 * the lock before the completer looked, so the completer resumes it.
 *
 * Why no answer waits on a missed resume, however the threads are
 * starved (libmicrohttpd 0.9.75, read in its source): a suspend from the
 * handler takes effect before it returns (the connection leaves the
 * daemon's active list at once); a resume from any thread only marks the
 * connection and the daemon under the daemon's mutex, then wakes its
 * poll through the eventfd; and every turn of the poll loop first moves
 * every marked connection back (resume_suspended_connections) and, after
 * poll, runs the state machine of every active connection whether or not
 * its socket is ready, so the handler is called again and queues the
 * answer. A mark set while the daemon is busy is seen on its next turn. So
 * an answer could only be lost by resuming a connection that is not
 * suspended (libmicrohttpd then silently skips that connection's next
 * suspend: undefined behaviour by its documentation) or by suspending
 * after the completer looked; the handshake above rules out both.
 * `make e2e-redis-heavy` checks every request answered within 5 s under
 * stress-ng.
 *
 * Two references: the request's (dropped when libmicrohttpd completes the
 * request) and the completer's (dropped by http_deferred_complete()). The
 * last one frees.
 *
 * Lock order: `lock` only; suspend is called under it (so the completer
 * cannot miss it), resume outside it.
 */
#include "server/api/internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct http_deferred {
    pthread_mutex_t lock; /* guards done, suspended, res */
    bool done;
    bool suspended;
    struct http_response res;
    void (*resume)(void *ctx); /* set by the glue before it suspends */
    void *resume_ctx;
    _Atomic int refs;
};

struct http_deferred *http_deferred_create(void)
{
    struct http_deferred *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        free(d);
        return NULL;
    }
    atomic_init(&d->refs, 2);
    return d;
}

void http_deferred_release(struct http_deferred *d)
{
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    http_response_release(&d->res);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

void http_deferred_complete(struct http_deferred *d, struct http_response *res)
{
    pthread_mutex_lock(&d->lock);
    d->res = *res;
    d->done = true;
    bool suspended = d->suspended;
    void (*resume)(void *) = d->resume;
    void *ctx = d->resume_ctx;
    pthread_mutex_unlock(&d->lock);
    /* The response now belongs to `d`. */
    memset(res, 0, sizeof(*res));
    if (suspended && resume != NULL)
        resume(ctx);
    http_deferred_release(d);
}

bool http_deferred_suspend(struct http_deferred *d, void (*suspend)(void *ctx),
                           void (*resume)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&d->lock);
    bool done = d->done;
    if (!done) {
        d->resume = resume;
        d->resume_ctx = ctx;
        suspend(ctx);
        d->suspended = true;
    }
    pthread_mutex_unlock(&d->lock);
    return !done;
}

bool http_deferred_take(struct http_deferred *d, struct http_response *out)
{
    pthread_mutex_lock(&d->lock);
    bool done = d->done;
    if (done) {
        *out = d->res;
        memset(&d->res, 0, sizeof(d->res));
        d->suspended = false;
    }
    pthread_mutex_unlock(&d->lock);
    return done;
}
