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
 * Held answers (SPEC §11's latency fault): a timer may hold a deferred
 * answer (http_deferred_hold, one more reference) so that even once it is
 * complete it is sent only when the timer lets go (http_deferred_unhold).
 * "Ready" is `done && !held`: the glue answers at once only if ready, the
 * completer and the timer each resume a suspended connection only if
 * their step made it ready.
 *
 * The timer (api_timer) is one thread over a list of held answers sorted
 * by when they are due (inserted from the tail: with one latency at a time
 * they arrive in order, so an insert is O(1)). While it holds answers it
 * wakes for the first due one, or every TIMER_TICK_MS to see whether the
 * shop drains: then every held answer goes at once, so that a drain never
 * waits for a fault. With none held it sleeps until one comes.
 * api_timer_close lets all go and stops the thread; holds asked for after
 * it are refused (the caller answers at once).
 *
 * Lock order: a deferred's `lock` only; suspend is called under it (so
 * the completer cannot miss it), resume outside it. The timer's `mu` is
 * never held while a deferred's lock is taken: due answers are taken off
 * the list under `mu`, then let go without it.
 */
#include "server/api/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/thread.h"
#include "common/time.h"

struct http_deferred {
    pthread_mutex_t lock; /* guards done, suspended, res */
    bool done;
    bool suspended;
    bool held; /* a timer holds the answer back (latency fault) */
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
    bool suspended = d->suspended && !d->held;
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
    bool done = d->done && !d->held;
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
    bool done = d->done && !d->held;
    if (done) {
        *out = d->res;
        memset(&d->res, 0, sizeof(d->res));
        d->suspended = false;
    }
    pthread_mutex_unlock(&d->lock);
    return done;
}

/* --- held answers and their timer ------------------------------------ */

static void deferred_hold(struct http_deferred *d)
{
    atomic_fetch_add(&d->refs, 1);
    pthread_mutex_lock(&d->lock);
    d->held = true;
    pthread_mutex_unlock(&d->lock);
}

/* Let a held answer go: resume its connection if it is now ready and
 * waiting, and drop the timer's reference. */
static void deferred_unhold(struct http_deferred *d)
{
    pthread_mutex_lock(&d->lock);
    d->held = false;
    bool resume_now = d->done && d->suspended;
    void (*resume)(void *) = d->resume;
    void *ctx = d->resume_ctx;
    pthread_mutex_unlock(&d->lock);
    if (resume_now && resume != NULL)
        resume(ctx);
    http_deferred_release(d);
}

/* How often the timer looks whether the shop drains, at most. */
#define TIMER_TICK_MS 100

struct timer_entry {
    int64_t due; /* CLOCK_MONOTONIC ns */
    struct http_deferred *d;
    struct timer_entry *prev, *next;
};

struct api_timer {
    struct shop *shop; /* not owned: its drain lets every answer go */
    pthread_t thread;
    pthread_mutex_t mu; /* guards the list and closed */
    pthread_cond_t cv;  /* a new first entry, or closed; CLOCK_MONOTONIC */
    struct timer_entry *head, *tail;
    bool closed;
    bool have_thread;
};

/* Take the entries due by `now` (all if `all`) off the list (mu held). */
static struct timer_entry *take_due_locked(struct api_timer *t, int64_t now,
                                           bool all)
{
    struct timer_entry *first = t->head, *e = t->head;

    while (e != NULL && (all || e->due <= now))
        e = e->next;
    if (e == first)
        return NULL;
    if (e != NULL) {
        e->prev->next = NULL;
        e->prev = NULL;
    } else {
        t->tail = NULL;
    }
    t->head = e;
    return first;
}

static void let_go(struct timer_entry *e)
{
    while (e != NULL) {
        struct timer_entry *next = e->next;

        deferred_unhold(e->d);
        free(e);
        e = next;
    }
}

static void *timer_main(void *arg)
{
    struct api_timer *t = arg;

    pthread_mutex_lock(&t->mu);
    while (!t->closed) {
        int64_t now = time_now_ns(CLOCK_MONOTONIC);
        struct timer_entry *due =
            take_due_locked(t, now, shop_draining(t->shop));
        if (due != NULL) {
            pthread_mutex_unlock(&t->mu);
            let_go(due);
            pthread_mutex_lock(&t->mu);
            continue;
        }
        if (t->head == NULL) { /* nothing held: nothing to let go */
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        int64_t wake = now + TIMER_TICK_MS * NS_PER_MS;
        if (t->head->due < wake)
            wake = t->head->due;
        struct timespec ts = time_from_ns(wake);
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int api_timer_create(struct shop *shop, struct api_timer **out)
{
    struct api_timer *t = calloc(1, sizeof(*t));

    *out = NULL;
    if (t == NULL)
        return -ENOMEM;
    t->shop = shop;
    /* All or nothing here: api_timer_destroy() only sees a whole timer. */
    pthread_cond_t *const conds[] = {&t->cv};
    int rc = thread_sync_init(&t->mu, conds, 1);
    if (rc == 0) {
        rc = thread_start(&t->thread, timer_main, t);
        if (rc == 0) {
            t->have_thread = true;
            *out = t;
            return 0;
        }
        thread_sync_destroy(&t->mu, conds, 1);
    }
    free(t);
    return rc;
}

int api_timer_hold(struct api_timer *t, struct http_deferred *d, unsigned ms)
{
    if (t == NULL)
        return -EPIPE;
    struct timer_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    e->due = time_now_ns(CLOCK_MONOTONIC) + (int64_t)ms * NS_PER_MS;
    e->d = d;
    deferred_hold(d);
    pthread_mutex_lock(&t->mu);
    if (t->closed) {
        pthread_mutex_unlock(&t->mu);
        deferred_unhold(d);
        free(e);
        return -EPIPE;
    }
    struct timer_entry *after = t->tail;
    while (after != NULL && after->due > e->due)
        after = after->prev;
    e->prev = after;
    e->next = after != NULL ? after->next : t->head;
    if (e->next != NULL)
        e->next->prev = e;
    else
        t->tail = e;
    if (after != NULL)
        after->next = e;
    else
        t->head = e;
    bool first = t->head == e;
    pthread_mutex_unlock(&t->mu);
    if (first)
        pthread_cond_signal(&t->cv);
    return 0;
}

void api_timer_close(struct api_timer *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    bool was = t->closed;
    t->closed = true;
    struct timer_entry *all = take_due_locked(t, 0, true);
    pthread_mutex_unlock(&t->mu);
    if (was)
        return;
    pthread_cond_signal(&t->cv);
    pthread_join(t->thread, NULL);
    t->have_thread = false;
    let_go(all);
}

void api_timer_destroy(struct api_timer *t)
{
    if (t == NULL)
        return;
    api_timer_close(t);
    pthread_cond_t *const conds[] = {&t->cv};
    thread_sync_destroy(&t->mu, conds, 1);
    free(t);
}
