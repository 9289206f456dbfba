/*
 * events.c - the /events Server-Sent Events hub.
 *
 * Each viewer gets its own callback response (MHD_SIZE_UNKNOWN, so HTTP/1.1
 * clients get chunked encoding) whose state is one struct stream. The
 * content reader sends `retry:` once, then one `data: <stats json>\n\n`
 * event per tick. When no event is due it parks the connection with
 * MHD_suspend_connection() and returns 0; libmicrohttpd then neither polls
 * the socket nor calls the reader again until the connection is resumed,
 * so an idle viewer costs no thread and no CPU. One ticker thread bumps
 * `tick` every EVENTS_TICK_MS and resumes every parked stream, which makes
 * libmicrohttpd call the reader again, which finds an event due.
 *
 * Stream states (all under hub.lock):
 *   ACTIVE     libmicrohttpd owns the connection; the reader may run.
 *   SUSPENDING the reader decided to park and has released the lock to call
 *              MHD_suspend_connection(). Nobody else may resume it yet:
 *              resuming a connection that is not suspended is undefined.
 *              After the call the reader takes the lock again; if the tick
 *              moved (or the hub stopped) meanwhile it resumes the
 *              connection itself, otherwise it links it into `parked`.
 *   PARKED     suspended and on the `parked` list. Whoever unlinks it (the
 *              ticker or events_stop) marks it ACTIVE and calls
 *              MHD_resume_connection() after dropping the lock.
 * A suspended connection is never closed by libmicrohttpd, so a stream
 * cannot be freed between being unlinked and being resumed; after the
 * resume call nobody but libmicrohttpd touches the connection again. The
 * ticker reads a stream's `next` before resuming it for that reason.
 *
 * The free callback runs when libmicrohttpd destroys the response (the
 * viewer went away or the stream ended); by then the stream is ACTIVE and
 * unlinked, and it only has to drop the hub's count of streams.
 *
 * Shutdown: events_stop() sets `stopped`, unlinks and resumes every PARKED
 * stream and waits until no stream is SUSPENDING and the ticker holds no
 * unlinked batch, so that when it returns no connection is suspended and
 * none will be: MHD_stop_daemon() may follow. Readers finish the event
 * they are sending, then end their streams with
 * MHD_CONTENT_READER_END_OF_STREAM (the chunked terminator). events_stop()
 * also waits, at most EVENTS_STOP_WAIT_MS, for every stream's response to
 * be freed, so that viewers see that clean end rather than the abrupt
 * close MHD_stop_daemon() would give them.
 *
 * Viewers that stop reading (SPEC §10): each stream socket gets a small
 * send buffer (EVENTS_SNDBUF), so a stalled viewer pins little kernel
 * memory; once its buffers are full its reader is no longer called and its
 * `sent_tick` falls behind. On every tick the ticker walks `all` and shuts
 * down the socket of any ACTIVE stream more than EVENTS_BEHIND_TICKS behind;
 * libmicrohttpd then fails the write and closes the connection, which frees
 * the stream. The descriptor is still the stream's when shutdown() runs:
 * libmicrohttpd destroys a connection's response (stream_free, which takes
 * hub.lock to unlink it from `all`) before it closes the socket, and the
 * ticker calls shutdown() under hub.lock on linked streams only (a
 * non-blocking call: the one system call made under hub.lock, as the only
 * way to keep the descriptor from being reused in between).
 *
 * Lock order: libmicrohttpd's response mutex (held around the reader) ->
 * hub.lock. No libmicrohttpd call, I/O or allocation happens under
 * hub.lock.
 */
#include "server/http/events.h"

#include "common/thread.h"
#include "common/time.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Time between two events of a stream. */
#define EVENTS_TICK_MS 250
/* Buffer libmicrohttpd allocates for a callback response without chunked
 * encoding (HTTP/1.0 viewers); chunked viewers use the connection's own
 * write buffer. Events larger than `max` are sent across calls anyway. */
#define EVENTS_BLOCK_SIZE 8192
/* How long events_stop() waits for the streams to send their end. */
#define EVENTS_STOP_WAIT_MS 1000
/* A viewer whose last event is this many ticks old (5 s) is dropped. */
#define EVENTS_BEHIND_TICKS 20
/* Send buffer asked for each stream socket (Linux doubles it for its own
 * bookkeeping): a few events; the rest waits in the stream, not the
 * kernel. */
#define EVENTS_SNDBUF 8192

static const char RETRY_LINE[] = "retry: 1000\n";
static const char DATA_PREFIX[] = "data: ";

enum stream_state { STREAM_ACTIVE, STREAM_SUSPENDING, STREAM_PARKED };

struct stream {
    struct events *hub;
    struct MHD_Connection *conn;
    int fd; /* the connection's socket */
    /* Under hub->lock. */
    enum stream_state state;
    uint64_t sent_tick;  /* hub tick of the last event sent */
    struct stream *next; /* link in hub->parked, or in an unlinked batch */
    struct stream *all_prev, *all_next; /* link in hub->all */
    bool dropped;                       /* its socket was shut down */
    /* Only the reader (one call at a time per response) touches these. */
    bool started; /* the first event (with `retry:`) was built */
    char *pend;   /* the event being sent, malloc'd */
    size_t pend_len;
    size_t pend_off;
};

struct events {
    const struct app *app;
    pthread_t ticker;
    bool ticker_started;   /* set once by events_create() */
    bool sync_ready;       /* lock, wake and idle exist */
    pthread_mutex_t lock;  /* guards everything below */
    pthread_cond_t wake;   /* ticker sleeps on it: stop, or a first stream */
    pthread_cond_t idle;   /* events_stop waits on it: streams settled */
    bool stopped;          /* no new streams; readers end theirs */
    bool ticker_asleep;    /* the ticker waits for a first stream */
    bool ticker_busy;      /* the ticker is resuming an unlinked batch */
    uint64_t tick;         /* bumped every EVENTS_TICK_MS */
    size_t nstreams;       /* streams alive (responses not yet freed) */
    size_t nsuspending;    /* streams in STREAM_SUSPENDING */
    struct stream *parked; /* PARKED streams */
    struct stream *all;    /* every stream alive */
};

/* Resume every stream of an unlinked batch. Called without hub.lock. */
static void resume_batch(struct stream *s)
{
    while (s != NULL) {
        struct stream *next = s->next;
        struct MHD_Connection *c = s->conn;
        /* From here on `s` may be freed by libmicrohttpd at any moment. */
        MHD_resume_connection(c);
        s = next;
    }
}

/* Unlink every PARKED stream and mark it ACTIVE; the caller resumes the
 * returned batch once it has dropped hub.lock. */
static struct stream *unlink_parked(struct events *ev)
{
    struct stream *batch = ev->parked;
    for (struct stream *s = batch; s != NULL; s = s->next)
        s->state = STREAM_ACTIVE;
    ev->parked = NULL;
    return batch;
}

static void count_http(struct events *ev, size_t field_offset, bool up)
{
    struct http_counters *c = ev->app->http;
    if (c == NULL)
        return;
    _Atomic uint64_t *f = (_Atomic uint64_t *)((char *)c + field_offset);
    if (up)
        atomic_fetch_add_explicit(f, 1, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(f, 1, memory_order_relaxed);
}

/* Shut down the sockets of ACTIVE streams that fell behind (hub.lock
 * held). */
static void drop_stalled(struct events *ev)
{
    for (struct stream *s = ev->all; s != NULL; s = s->all_next) {
        if (s->state != STREAM_ACTIVE || s->dropped || s->fd < 0 ||
            ev->tick - s->sent_tick <= EVENTS_BEHIND_TICKS)
            continue;
        shutdown(s->fd, SHUT_RDWR);
        s->dropped = true;
        count_http(ev, offsetof(struct http_counters, viewers_dropped), true);
    }
}

static void *ticker_main(void *arg)
{
    struct events *ev = arg;
    const int64_t tick_ns = EVENTS_TICK_MS * NS_PER_MS;
    int64_t due = time_now_ns(CLOCK_MONOTONIC) + tick_ns;

    pthread_mutex_lock(&ev->lock);
    while (!ev->stopped) {
        if (ev->nstreams == 0) {
            /* Nobody watches: sleep until a stream arrives or stop. */
            ev->ticker_asleep = true;
            pthread_cond_wait(&ev->wake, &ev->lock);
            ev->ticker_asleep = false;
            due = time_now_ns(CLOCK_MONOTONIC) + tick_ns;
            continue;
        }
        struct timespec at = time_from_ns(due);
        int rc = pthread_cond_timedwait(&ev->wake, &ev->lock, &at);
        if (rc != ETIMEDOUT || ev->stopped)
            continue;
        ev->tick++;
        drop_stalled(ev);
        struct stream *batch = unlink_parked(ev);
        ev->ticker_busy = true;
        pthread_mutex_unlock(&ev->lock);

        resume_batch(batch);

        pthread_mutex_lock(&ev->lock);
        ev->ticker_busy = false;
        if (ev->stopped)
            pthread_cond_broadcast(&ev->idle);
        /* Keep a steady rhythm; after a stall, restart from now. */
        int64_t now = time_now_ns(CLOCK_MONOTONIC);
        due += tick_ns;
        if (due <= now)
            due = now + tick_ns;
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
}

/* Build the next event into s->pend. Returns false when out of memory
 * (the event is skipped; the next tick tries again). */
static bool build_event(struct stream *s)
{
    size_t json_len = 0;
    char *json = api_stats_json(s->hub->app, &json_len);
    if (json == NULL)
        return false;
    size_t retry_len = s->started ? 0 : sizeof(RETRY_LINE) - 1;
    size_t prefix_len = sizeof(DATA_PREFIX) - 1;
    size_t len = retry_len + prefix_len + json_len + 2;
    char *buf = malloc(len);
    if (buf == NULL) {
        free(json);
        return false;
    }
    char *p = buf;
    memcpy(p, RETRY_LINE, retry_len);
    p += retry_len;
    memcpy(p, DATA_PREFIX, prefix_len);
    p += prefix_len;
    memcpy(p, json, json_len);
    p += json_len;
    memcpy(p, "\n\n", 2);
    free(json);

    s->started = true;
    s->pend = buf;
    s->pend_len = len;
    s->pend_off = 0;
    return true;
}

/* Copy what fits of the pending event into `buf`. */
static ssize_t send_pending(struct stream *s, char *buf, size_t max)
{
    size_t n = s->pend_len - s->pend_off;
    if (n > max)
        n = max;
    memcpy(buf, s->pend + s->pend_off, n);
    s->pend_off += n;
    if (s->pend_off == s->pend_len) {
        free(s->pend);
        s->pend = NULL;
        s->pend_len = s->pend_off = 0;
    }
    return (ssize_t)n;
}

/* Park the stream: suspend its connection until the next tick. */
static void park(struct stream *s)
{
    struct events *ev = s->hub;

    MHD_suspend_connection(s->conn);

    pthread_mutex_lock(&ev->lock);
    bool resume_now = ev->stopped || ev->tick != s->sent_tick;
    ev->nsuspending--;
    if (resume_now) {
        s->state = STREAM_ACTIVE;
    } else {
        s->state = STREAM_PARKED;
        s->next = ev->parked;
        ev->parked = s;
    }
    if (ev->stopped && ev->nsuspending == 0)
        pthread_cond_broadcast(&ev->idle);
    pthread_mutex_unlock(&ev->lock);

    /* The tick moved while we were suspending, and the ticker could not
     * resume a connection it might have seen unsuspended: do it here. */
    if (resume_now)
        MHD_resume_connection(s->conn);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    struct events *ev = s->hub;
    (void)pos;

    for (;;) {
        /* Finish the event under way first, even when stopping. */
        if (s->pend != NULL)
            return send_pending(s, buf, max);
        pthread_mutex_lock(&ev->lock);
        if (ev->stopped) {
            pthread_mutex_unlock(&ev->lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        bool due = !s->started || s->sent_tick != ev->tick;
        if (due) {
            s->sent_tick = ev->tick;
        } else {
            s->state = STREAM_SUSPENDING;
            ev->nsuspending++;
        }
        pthread_mutex_unlock(&ev->lock);

        if (!due) {
            park(s);
            return 0;
        }
        if (!build_event(s)) {
            /* Out of memory: skip this event and wait for the next. */
            s->started = true;
            continue;
        }
    }
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    struct events *ev = s->hub;

    pthread_mutex_lock(&ev->lock);
    /* libmicrohttpd never frees a suspended connection's response. */
    assert(s->state == STREAM_ACTIVE);
    ev->nstreams--;
    if (s->all_prev != NULL)
        s->all_prev->all_next = s->all_next;
    else
        ev->all = s->all_next;
    if (s->all_next != NULL)
        s->all_next->all_prev = s->all_prev;
    if (ev->stopped && ev->nstreams == 0)
        pthread_cond_broadcast(&ev->idle);
    pthread_mutex_unlock(&ev->lock);

    count_http(ev, offsetof(struct http_counters, viewers), false);
    free(s->pend);
    free(s);
}

int events_create(const struct app *app, struct events **out)
{
    struct events *ev = calloc(1, sizeof(*ev));
    int err = -ENOMEM;

    if (ev == NULL)
        goto fail;
    ev->app = app;
    pthread_cond_t *const conds[] = {&ev->wake, &ev->idle};
    err = thread_sync_init(&ev->lock, conds, 2);
    if (err)
        goto fail;
    ev->sync_ready = true;
    /* Signals are main's (sigwait): the ticker takes none. */
    err = thread_start(&ev->ticker, ticker_main, ev);
    if (err)
        goto fail;
    ev->ticker_started = true;
    *out = ev;
    return 0;

fail:
    events_destroy(ev);
    *out = NULL;
    return err;
}

struct MHD_Response *events_response(struct events *ev,
                                     struct MHD_Connection *c)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->hub = ev;
    s->conn = c;
    s->state = STREAM_ACTIVE;
    s->fd = -1;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci != NULL) {
        int sndbuf = EVENTS_SNDBUF;
        s->fd = ci->connect_fd;
        setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }

    pthread_mutex_lock(&ev->lock);
    bool stopped = ev->stopped;
    if (!stopped) {
        ev->nstreams++;
        s->sent_tick = ev->tick;
        s->all_next = ev->all;
        if (ev->all != NULL)
            ev->all->all_prev = s;
        ev->all = s;
        if (ev->ticker_asleep)
            pthread_cond_signal(&ev->wake);
    }
    pthread_mutex_unlock(&ev->lock);
    if (stopped) {
        free(s);
        return NULL;
    }
    count_http(ev, offsetof(struct http_counters, viewers), true);

    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, EVENTS_BLOCK_SIZE, stream_read, s, stream_free);
    if (r == NULL)
        stream_free(s);
    return r;
}

/*
 * HEAD /events. A stream's response has no known size, so libmicrohttpd
 * 0.9.75 frames it with chunked encoding, and for a HEAD request it skips
 * the body but still writes the chunked terminator "0\r\n\r\n" after
 * the headers (connection.c: CHUNKED_BODY_UNREADY -> BODY_SENT builds the
 * footer whatever the method): bytes the client reads as the start of the
 * next answer. No response flag of 0.9.75 leaves the terminator out, so
 * HEAD gets an empty response instead: no stream, no viewer counted.
 * libmicrohttpd gives it Content-Length: 0 (it adds that header to every
 * sized response and drops one set by the application).
 */
struct MHD_Response *events_head_response(struct events *ev)
{
    pthread_mutex_lock(&ev->lock);
    bool stopped = ev->stopped;
    pthread_mutex_unlock(&ev->lock);
    if (stopped)
        return NULL;
    return MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
}

void events_stop(struct events *ev)
{
    if (ev == NULL)
        return;
    pthread_mutex_lock(&ev->lock);
    bool again = ev->stopped;
    ev->stopped = true;
    pthread_cond_signal(&ev->wake);
    struct stream *batch = unlink_parked(ev);
    pthread_mutex_unlock(&ev->lock);

    resume_batch(batch);

    /* A reader between deciding to park and parking resumes its own
     * connection when it sees `stopped`; the ticker finishes its batch.
     * Both are short and never wait for us. */
    pthread_mutex_lock(&ev->lock);
    while (ev->nsuspending > 0 || ev->ticker_busy)
        pthread_cond_wait(&ev->idle, &ev->lock);

    /* Give the resumed streams a moment to send their end of stream
     * (once: a second call does not wait again). Past the deadline
     * MHD_stop_daemon() closes what is left. */
    if (again) {
        pthread_mutex_unlock(&ev->lock);
        return;
    }
    struct timespec deadline =
        time_deadline_ms(CLOCK_MONOTONIC, EVENTS_STOP_WAIT_MS);
    while (ev->nstreams > 0) {
        if (pthread_cond_timedwait(&ev->idle, &ev->lock, &deadline) ==
            ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&ev->lock);
}

void events_destroy(struct events *ev)
{
    if (ev == NULL)
        return;
    if (ev->ticker_started) {
        events_stop(ev);
        pthread_join(ev->ticker, NULL);
    }
    /* Every response was freed by MHD_stop_daemon() before this call. */
    assert(ev->nstreams == 0);
    if (ev->sync_ready) {
        pthread_cond_t *const conds[] = {&ev->wake, &ev->idle};
        thread_sync_destroy(&ev->lock, conds, 2);
    }
    free(ev);
}
