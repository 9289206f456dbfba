/*
 * httpd.c - the libmicrohttpd glue: sockets in, api_handle() out.
 *
 * Mode: internal polling threads with poll(2) - one thread, or a pool of
 * `threads` when there are two or more. poll rather than epoll because
 * libmicrohttpd 0.9.75's epoll loop stalls when exactly 128 events are
 * ready at once (it waits again with the full timeout); poll is immune and
 * measured as fast at the connection counts this server is run with.
 *
 * A request is seen by the access handler several times: first after its
 * headers, then once per body chunk, then once more when it is complete.
 * The first call allocates the per-request state (freed in the completed
 * callback); chunks are appended up to max_body and then dropped (never
 * buffered past the cap); the last call builds a struct http_request,
 * calls api_handle() and queues the answer. A Content-Length over the
 * cap is answered 413 on the first call, before any body byte is read.
 *
 * Hostile clients (SPEC §10): on the first call, before any body byte is
 * read, the headers that frame the request are checked across all their
 * values, and every header value is checked whole: a NUL, a bare CR or an
 * obs-folded line is refused, never truncated or dropped (see "request
 * framing" below); a refusal closes the connection. A chunk-size line over
 * CHUNK_LINE_MAX bytes is refused (400, close) once the body is in. All
 * bodies being buffered at once hold at most BODIES_MAX bytes; past it a
 * body is refused with 503 busy rather than more memory (SPEC §4).
 * Every connection is registered with conns.c (admission past the limits,
 * and a total deadline per request), through libmicrohttpd's connection
 * notifications and its request-line callback.
 *
 * The listen socket is made here, so that "address in use" and friends are
 * reported with their real errno, and port 0 can be resolved.
 */
#include "server/http/conns.h"
#include "server/api/errors.h"
#include "server/http/events.h"
#include "server/http/httpd.h"
#include "common/log.h"
#include "common/thread.h"
#include "common/time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct httpd {
    struct MHD_Daemon *daemon;
    const struct app *app;
    struct events *events;
    struct conns *conns; /* admission and request deadlines */
    int listen_fd;
    bool sync_ready; /* mu and idle exist */
    unsigned port;
    /* Requests between their first call and their completion callback:
     * stopping waits for these, so no answered 202 is cut off. */
    _Atomic unsigned in_progress;
    /* Body bytes buffered by all requests in progress, at most
     * BODIES_MAX: a body that would pass it is refused (503 busy). */
    _Atomic size_t body_bytes;
    _Atomic bool stopping; /* httpd_stop() is waiting on `idle` */
    pthread_mutex_t mu;    /* guards nothing but the wait on `idle` */
    pthread_cond_t idle;   /* signalled when in_progress drops to 0 */
    /* libmicrohttpd's own messages (one per malformed request) are rate
     * limited, so a flood of garbage is not a flood of log lines. */
    _Atomic long log_second;      /* the second being counted */
    _Atomic unsigned log_lines;   /* lines logged in it */
    _Atomic unsigned log_dropped; /* lines dropped since the last report */
};

/* libmicrohttpd lines logged per second at most; the rest are counted. */
#define MHD_LOG_PER_SECOND 10

/*
 * libmicrohttpd's memory pool per connection. It holds the read buffer
 * (half of it) and one 64-byte record per request header, so it bounds
 * how many headers fit. Measured on 0.9.75: 16 KiB served 215 headers of
 * 10 bytes (2.2 KiB: 300 got 431); 32 KiB serves 434 of them (4.6 KiB),
 * 312 of 40 bytes (12 KiB), so 8 KiB whenever the lines average 19 bytes
 * or more; 64 KiB would serve 871 of 10 bytes. But 0.9.75 zeroes the
 * whole pool between two requests of a keep-alive connection, so the pool
 * is paid on every request, and in cache: with 128 kept-alive clients,
 * CPU per POST /buy was +9% at 32 KiB and +50% at 64 KiB over 16 KiB.
 */
#ifndef CONN_MEMORY /* a build-time knob, so that benchmarks can compare */
#define CONN_MEMORY (32 * 1024)
#endif

/* The longest chunk-size line (size, extensions, CRLF) served; nginx
 * and other strict servers refuse longer ones. */
#define CHUNK_LINE_MAX 256

/* All request bodies buffered at once hold at most this (SPEC §4). */
#ifndef BODIES_MAX
#define BODIES_MAX ((size_t)64 << 20)
#endif

/* Bodies up to this size (every order is) need no allocation of their own. */
#define REQ_INLINE_BODY 256

/* The request headers the handlers read, noted in the one walk over the
 * headers that also checks the framing. The values point into
 * libmicrohttpd's pool and live as long as the request. */
struct req_headers {
    const char *idempotency_key; /* the first Idempotency-Key, or NULL */
    unsigned idempotency_keys;
    const char *authorization; /* the first Authorization, or NULL */
    unsigned authorizations;
    const char *content_length; /* the first Content-Length, or NULL */
    bool chunked;               /* Transfer-Encoding: chunked */
};

/* Per-request state, owned by libmicrohttpd's *con_cls slot. */
struct req_state {
    struct req_headers hdr;
    char *body; /* NUL-terminated, grows up to max_body; `small` or heap */
    size_t len, cap;
    bool too_large; /* the body went past max_body: dropped, not buffered */
    bool long_chunk_line; /* a chunk-size line over CHUNK_LINE_MAX bytes */
    bool busy;            /* the body would pass BODIES_MAX: dropped */
    size_t charged;       /* bytes of this body counted in body_bytes */
    bool answered;        /* a response has been queued */
    /* A deferred answer (api.h): the connection is suspended until it
     * completes; `deferred_sent` once its final response is queued. */
    struct http_deferred *deferred;
    bool deferred_sent;
    char small[REQ_INLINE_BODY];
};

/* Drop the body (freeing it if it outgrew `small`), and give back what
 * it counted against BODIES_MAX. */
static void drop_body(struct httpd *h, struct req_state *st)
{
    if (st->body != st->small)
        free(st->body);
    st->body = NULL;
    st->len = st->cap = 0;
    if (st->charged > 0) {
        atomic_fetch_sub_explicit(&h->body_bytes, st->charged,
                                  memory_order_relaxed);
        st->charged = 0;
    }
}

/* Count `n` more body bytes against BODIES_MAX; false (nothing counted)
 * if they do not fit. */
static bool charge_body(struct httpd *h, struct req_state *st, size_t n)
{
    size_t was =
        atomic_fetch_add_explicit(&h->body_bytes, n, memory_order_relaxed);
    if (was + n > BODIES_MAX) {
        atomic_fetch_sub_explicit(&h->body_bytes, n, memory_order_relaxed);
        return false;
    }
    st->charged += n;
    return true;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Whether one more libmicrohttpd line may be logged this second. */
static bool log_allowed(struct httpd *h)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long sec = (long)now.tv_sec;
    long seen = atomic_load(&h->log_second);
    if (seen != sec &&
        atomic_compare_exchange_strong(&h->log_second, &seen, sec)) {
        unsigned dropped = atomic_exchange(&h->log_dropped, 0);
        atomic_store(&h->log_lines, 0);
        if (dropped > 0)
            log_msg(LOG_WARN,
                    "libmicrohttpd: %u more messages suppressed (at most %d "
                    "a second)",
                    dropped, MHD_LOG_PER_SECOND);
    }
    if (atomic_fetch_add(&h->log_lines, 1) < MHD_LOG_PER_SECOND)
        return true;
    atomic_fetch_add(&h->log_dropped, 1);
    return false;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    if (!log_allowed(cls))
        return;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_msg(LOG_WARN, "libmicrohttpd: %s", line);
}

/* ---- connection admission and deadlines (SPEC §10) ---------------------
 *
 * libmicrohttpd's own connection limit is set above max_connections (it
 * would leave new clients in the listen backlog); every connection it
 * accepts is registered with conns.c, which shuts down the ones over a
 * limit at once and the ones whose request is overdue (see conns.c).
 */

/* The registry record of a connection (its socket context), or NULL. */
static struct conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static void connection_notify(void *cls, struct MHD_Connection *c,
                              void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    struct httpd *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (fd == NULL)
            return;
        *socket_context = conns_open(h->conns, fd->connect_fd,
                                     addr != NULL ? addr->client_addr : NULL);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        conns_close(h->conns, *socket_context);
        *socket_context = NULL;
    }
}

/* The request line has arrived: a keep-alive request's clock starts. The
 * request's state stays NULL until the access handler's first call. */
static void *request_line(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)uri;
    struct httpd *h = cls;
    conns_request_started(h->conns, conn_of(c));
    return NULL;
}

/* libmicrohttpd's own connection limit: above max_connections in each
 * thread of a pool (it splits its limit between them), so that it never
 * stops accepting before conns.c has refused. */
static unsigned mhd_connection_limit(unsigned max_connections, unsigned pool)
{
    unsigned long long n =
        ((unsigned long long)max_connections + 64) * (pool > 1 ? pool : 1);
    return n > 0x7fffffffULL ? 0x7fffffffU : (unsigned)n;
}

static void request_completed(void *cls, struct MHD_Connection *c,
                              void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct httpd *h = cls;
    struct req_state *st = *con_cls;
    conns_request_done(h->conns, conn_of(c));
    if (st != NULL) {
        drop_body(h, st);
        http_deferred_release(st->deferred);
        free(st);
        *con_cls = NULL;
        if (atomic_fetch_sub(&h->in_progress, 1) == 1 &&
            atomic_load(&h->stopping)) {
            pthread_mutex_lock(&h->mu);
            pthread_cond_broadcast(&h->idle);
            pthread_mutex_unlock(&h->mu);
        }
    }
}

/* Append a body chunk, or drop it once the body is over the cap or the
 * bodies of all requests would pass BODIES_MAX. */
static void append_body(struct httpd *h, struct req_state *st, const char *data,
                        size_t n, size_t max_body)
{
    if (st->too_large || st->busy)
        return;
    if (st->len + n > max_body) {
        st->too_large = true;
        drop_body(h, st);
        return;
    }
    if (!charge_body(h, st, n)) {
        st->busy = true;
        drop_body(h, st);
        return;
    }
    if (st->body == NULL) {
        st->body = st->small;
        st->cap = sizeof(st->small);
    }
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap * 2;
        while (cap < st->len + n + 1)
            cap *= 2;
        char *p = st->body == st->small ? malloc(cap) : realloc(st->body, cap);
        if (p == NULL) {
            /* Treat like an oversized body: refuse rather than crash. */
            st->too_large = true;
            drop_body(h, st);
            return;
        }
        if (st->body == st->small)
            memcpy(p, st->small, st->len);
        st->body = p;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    st->body[st->len] = '\0';
}

/* The /events answer: a stream, or for HEAD its headers only (events.c). */
static enum MHD_Result queue_events(struct httpd *h, struct MHD_Connection *c,
                                    bool head)
{
    struct MHD_Response *r = NULL;
    if (h->events != NULL)
        r = head ? events_head_response(h->events)
                 : events_response(h->events, c);
    if (r == NULL) {
        struct http_response res = {0};
        http_fail(&res, HTTP_ERR_SHUTTING_DOWN, "the event stream has ended");
        r = MHD_create_response_from_buffer(res.body_len, res.body,
                                            MHD_RESPMEM_MUST_COPY);
        http_response_release(&res);
        if (r == NULL)
            return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json");
        enum MHD_Result ok = MHD_queue_response(c, 503, r);
        MHD_destroy_response(r);
        return ok;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/*
 * The request headers the handlers read (Idempotency-Key, Authorization):
 * the first value of each and how many times it came. libmicrohttpd owns
 * the strings until the request completes.
 */
static void note_header(struct req_headers *h, const char *key,
                        const char *value)
{
    const char **first = NULL;
    unsigned *count = NULL;
    if (strcasecmp(key, "Idempotency-Key") == 0) {
        first = &h->idempotency_key;
        count = &h->idempotency_keys;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0) {
        first = &h->authorization;
        count = &h->authorizations;
    } else {
        return;
    }
    if ((*count)++ == 0)
        *first = value;
}

/* ---- request framing (SPEC §10) ---------------------------------------
 *
 * libmicrohttpd 0.9.75 frames a body by the first Transfer-Encoding header
 * if there is one (any value: a non-chunked one means "read until the
 * client closes"), else by the first Content-Length; it ignores repeats,
 * keeps a space before the colon as part of the name, and serves HTTP/1.1
 * without Host. A proxy in front may frame the same bytes differently, so
 * on the first handler call, before any body byte is read, every header
 * that frames the request is checked here across all its values, and a
 * request a strict HTTP/1.1 server would refuse is answered at once with
 * Connection: close (libmicrohttpd then discards the body unread and
 * closes), so the bytes after it are never read as a request.
 */

/* What the framing headers of one request say. */
struct framing {
    unsigned te;      /* Transfer-Encoding headers */
    unsigned cl;      /* Content-Length headers */
    unsigned host;    /* Host headers */
    bool te_other;    /* a Transfer-Encoding other than exactly "chunked" */
    bool cl_bad;      /* a Content-Length that is not plain decimal */
    bool cl_differ;   /* Content-Length values that disagree */
    bool bad_name;    /* a header name that is not an RFC 9110 token */
    bool folded;      /* a framing header continued on the next line */
    bool obs_fold;    /* any header continued on the next line */
    bool bad_value;   /* a NUL or a bare CR in a header value */
    const char *cl_v; /* the first Content-Length value */
    struct req_headers *hdr; /* noted on the same walk */
    /* The previous header's value and its length, to see what libmicrohttpd
     * left between it and the next header's name. */
    const char *prev_v;
    size_t prev_vlen;
};

/* RFC 9110 tchar. */
static bool tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool plain_decimal(const char *v)
{
    if (*v == '\0')
        return false;
    for (; *v != '\0'; v++)
        if (*v < '0' || *v > '9')
            return false;
    return true;
}

/* Compare two decimal strings by value ("007" equals "7"). */
static bool same_decimal(const char *a, const char *b)
{
    while (*a == '0' && a[1] != '\0')
        a++;
    while (*b == '0' && b[1] != '\0')
        b++;
    return strcmp(a, b) == 0;
}

/* Whether `key` is longer than `name` and starts with it (any case). */
static bool has_prefix_nocase(const char *key, const char *name)
{
    size_t n = strlen(name);
    return strlen(key) > n && strncasecmp(key, name, n) == 0;
}

/*
 * Header values as libmicrohttpd 0.9.75 hands them over (connection.c,
 * get_next_header_line and process_header_line): every header line stays
 * where it was received in the connection's read buffer; its CRLF (or bare
 * LF) is overwritten with NULs, its colon with a NUL, and the value starts
 * after the blanks that follow the colon. So:
 *   - a bare CR is kept inside the value: it is seen there;
 *   - a NUL inside the value ends the C string early (the value's length
 *     too: it is strlen()'d), but the rest of the line is still in the
 *     buffer. After a whole value come only its line end's one or two NULs,
 *     then the next header's name; any other byte there is the hidden rest
 *     of a value cut at a NUL;
 *   - an obs-fold continuation line is appended to the header's *name*,
 *     which is copied elsewhere in the pool for that: the value then no
 *     longer follows its name's NUL and blanks.
 * These reads stay inside the bytes of the request head libmicrohttpd
 * already parsed (each value's line end, then the next line or the empty
 * line that ends the head). A NUL as the very last byte of a value, just
 * before a bare LF, hides nothing and cannot be told apart.
 */
static bool blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Whether `v` starts where its line put it: after `key`, its NUL (the
 * colon) and blanks. If not, the name was continued by an obs-fold. */
static bool value_follows_name(const char *key, size_t klen, const char *v)
{
    uintptr_t after = (uintptr_t)(key + klen + 1);
    uintptr_t at = (uintptr_t)v;
    if (at < after || at - after > 256)
        return false;
    for (const char *p = key + klen + 1; p < v; p++)
        if (!blank(*p))
            return false;
    return true;
}

/* Whether anything but the line end lies between the previous value and
 * `next`, the next header's name (NULL after the last header: the empty
 * line that ends the head follows). A name copied elsewhere by an obs-fold
 * counts as a hidden byte too: that request is refused either way. */
static bool value_cut_at_nul(const char *v, size_t vlen, const char *next)
{
    const char *end = v + vlen; /* the NUL that ends the C string */
    if (next == end + 1)
        return false; /* a bare LF, then the next name */
    if (next == end + 2 || next == NULL)
        return end[1] != '\0'; /* CRLF (or the empty line) follows */
    return true;
}

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind,
                                      const char *key, size_t klen,
                                      const char *value, size_t vlen)
{
    (void)kind;
    struct framing *f = cls;
    if (key == NULL)
        return MHD_YES;
    if (value == NULL) {
        value = "";
        vlen = 0;
    }
    if (f->prev_v != NULL && value_cut_at_nul(f->prev_v, f->prev_vlen, key))
        f->bad_value = true;
    f->prev_v = value;
    f->prev_vlen = vlen;
    if (!value_follows_name(key, klen, value))
        f->obs_fold = true;
    if (memchr(value, '\r', vlen) != NULL)
        f->bad_value = true;
    for (const char *k = key; *k != '\0' && !f->bad_name; k++)
        f->bad_name = !tchar((unsigned char)*k);
    if (*key == '\0')
        f->bad_name = true;
    /* libmicrohttpd 0.9.75 appends an obsolete folded line ("\r\n chunked")
     * to the header's name, not its value: "Transfer-Encodingchunked".
     * A proxy may unfold it into a framing header, so such a name is a
     * malformed request, not an unknown header. */
    if (has_prefix_nocase(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
        has_prefix_nocase(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        f->folded = true;
    if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->te++;
        if (strcasecmp(value, "chunked") != 0)
            f->te_other = true;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->cl++;
        if (!plain_decimal(value))
            f->cl_bad = true;
        else if (f->cl_v == NULL)
            f->cl_v = value;
        else if (!same_decimal(f->cl_v, value))
            f->cl_differ = true;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        f->host++;
    } else {
        note_header(f->hdr, key, value);
    }
    return MHD_YES;
}

/*
 * Check how the request is framed, noting the headers the handlers read in
 * `hdr` on the same walk. Returns false if it may be served; otherwise
 * fills `res` with the answer (which closes the connection).
 */
static bool framing_refused(struct MHD_Connection *c, const char *version,
                            struct req_headers *hdr, struct http_response *res)
{
    struct framing f = {.hdr = hdr};
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, framing_header, &f);
    if (f.prev_v != NULL && value_cut_at_nul(f.prev_v, f.prev_vlen, NULL))
        f.bad_value = true;
    hdr->content_length = f.cl_v;
    hdr->chunked = f.te == 1 && !f.te_other;
    if (f.bad_value)
        http_fail(res, HTTP_ERR_BAD_REQUEST,
                  "a header value holds a NUL or a bare CR");
    else if (f.bad_name)
        http_fail(res, HTTP_ERR_BAD_REQUEST,
                  "a header name is not a token (no space before the "
                  "colon)");
    else if (f.folded || f.obs_fold)
        http_fail(res, HTTP_ERR_BAD_REQUEST,
                  "a header is folded over two lines (obs-fold) or a "
                  "framing header is misspelt");
    else if (f.te > 1 || f.te_other)
        http_fail(res, HTTP_ERR_NOT_IMPLEMENTED, NULL);
    else if (f.te > 0 && f.cl > 0)
        http_fail(res, HTTP_ERR_BAD_REQUEST,
                  "both Transfer-Encoding and Content-Length");
    else if (f.cl_bad || f.cl_differ)
        http_fail(res, HTTP_ERR_BAD_REQUEST,
                  "Content-Length must be one plain decimal number");
    else if (f.host > 1)
        http_fail(res, HTTP_ERR_BAD_REQUEST, "more than one Host header");
    else if (f.host == 0 && version != NULL &&
             strncmp(version, "HTTP/1.", 7) == 0 &&
             strcmp(version, MHD_HTTP_VERSION_1_0) != 0)
        http_fail(res, HTTP_ERR_BAD_REQUEST, "HTTP/1.1 requires a Host header");
    else
        return false;
    return true; /* every framing error closes the connection */
}

/*
 * The path of the request target: an absolute-form target
 * ("http://host:port/stats", RFC 9112 §3.2.2) is served as its path.
 */
static const char *origin_path(const char *url)
{
    size_t skip = 0;
    if (strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    if (skip == 0)
        return url;
    const char *slash = strchr(url + skip, '/');
    return slash != NULL ? slash : "/";
}

/* Queue a plain (complete) response; takes over what `res` owns. */
static enum MHD_Result queue_plain(struct MHD_Connection *c,
                                   struct http_response *res_in)
{
    struct http_response res = *res_in;
    memset(res_in, 0, sizeof(*res_in));
    if (res.drop) { /* SPEC §11's drop fault: close, answer nothing */
        http_response_release(&res);
        return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        res.body_len, res.body,
        res.body_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        http_response_release(&res);
        return MHD_NO;
    }
    /* The response owns a malloc'd body now. */
    res.body = NULL;
    if (res.content_type != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                res.content_type);
    for (size_t i = 0; i < res.nheaders; i++)
        MHD_add_response_header(r, res.headers[i].name, res.headers[i].value);
    if (res.close)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(c, res.status, r);
    MHD_destroy_response(r);
    return ok;
}

/* --- deferred answers: suspend now, resume when the answer is ready ---- */

static void suspend_conn(void *ctx)
{
    MHD_suspend_connection(ctx);
}

static void resume_conn(void *ctx)
{
    MHD_resume_connection(ctx);
}

/* Queue the deferred answer if it is complete (after a resume, or when it
 * completed before the connection could be suspended). */
static enum MHD_Result send_deferred(struct MHD_Connection *c,
                                     struct req_state *st)
{
    struct http_response res;
    if (st->deferred_sent || !http_deferred_take(st->deferred, &res))
        return MHD_YES;
    st->deferred_sent = true;
    return queue_plain(c, &res);
}

/* The handler answered `deferred`: suspend the connection until it
 * completes, unless it already has. */
static enum MHD_Result defer_answer(struct MHD_Connection *c,
                                    struct req_state *st,
                                    struct http_deferred *d)
{
    st->deferred = d;
    if (http_deferred_suspend(d, suspend_conn, resume_conn, c))
        return MHD_YES;
    return send_deferred(c, st);
}

/* Route the complete request and queue its answer. */
static enum MHD_Result dispatch(struct httpd *h, struct MHD_Connection *c,
                                const char *url, const char *method,
                                struct req_state *st)
{
    struct http_request req = {
        .method = method,
        .path = origin_path(url),
        .body = st->body,
        .body_len = st->len,
        .body_too_large = st->too_large,
    };
    req.idempotency_key = st->hdr.idempotency_key;
    req.idempotency_keys = st->hdr.idempotency_keys;
    req.authorization = st->hdr.authorization;
    req.authorizations = st->hdr.authorizations;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    req.client_addr = ci != NULL ? (const void *)ci->client_addr : NULL;
    struct http_response res;
    api_handle(h->app, &req, &res);
    st->answered = true;
    if (res.stream_events) {
        http_response_release(&res);
        return queue_events(h, c, strcmp(method, MHD_HTTP_METHOD_HEAD) == 0);
    }
    if (res.deferred != NULL)
        return defer_answer(c, st, res.deferred);
    return queue_plain(c, &res);
}

/* True if Content-Length `cl` (plain decimal, or NULL) announces a body
 * larger than `max`. */
static bool content_length_over(const char *cl, size_t max)
{
    if (cl == NULL)
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(cl, &end, 10);
    return errno == ERANGE || (end != cl && v > max);
}

/*
 * Whether the chunk data at `data` came right after a chunk-size line
 * longer than CHUNK_LINE_MAX. libmicrohttpd 0.9.75 (connection.c,
 * process_request_body) hands over each chunk's data in place in its read
 * buffer, right after the line "SIZE[;ext]\r\n" it parsed; before that
 * line lies the previous chunk's "\r\n", or the NULs it wrote over the
 * empty line that ended the head (its read buffer starts after it, and
 * what it has not handed over is moved back to that start). So looking
 * back from `data` for a '\n' or a NUL stays inside the request; a line
 * longer than the read buffer never reaches here (libmicrohttpd answers
 * it 500 itself).
 */
static bool after_long_chunk_line(const char *data)
{
    if (data[-1] != '\n')
        return false; /* the rest of a chunk, not a chunk's start */
    const char *p = data - 2;
    for (size_t n = 0; n <= CHUNK_LINE_MAX; n++, p--)
        if (*p == '\n' || *p == '\0')
            return false;
    return true;
}

/* Whether a body of Content-Length `cl` (within max_body) would pass
 * BODIES_MAX with the bodies being buffered now. */
static bool body_would_not_fit(struct httpd *h, const char *cl, size_t max_body)
{
    if (cl == NULL || content_length_over(cl, max_body))
        return false;
    unsigned long long v = strtoull(cl, NULL, 10);
    return atomic_load_explicit(&h->body_bytes, memory_order_relaxed) + v >
           BODIES_MAX;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *c,
                                      const char *url, const char *method,
                                      const char *version,
                                      const char *upload_data,
                                      size_t *upload_data_size, void **con_cls)
{
    struct httpd *h = cls;
    struct req_state *st = *con_cls;

    if (st == NULL) {
        st = calloc(1, sizeof(*st));
        if (st == NULL)
            return MHD_NO;
        *con_cls = st;
        atomic_fetch_add_explicit(&h->in_progress, 1, memory_order_relaxed);
        struct http_response res = {0};
        if (framing_refused(c, version, &st->hdr, &res)) {
            conns_request_arrived(h->conns, conn_of(c));
            st->answered = true;
            return queue_plain(c, &res);
        }
        if (body_would_not_fit(h, st->hdr.content_length,
                               h->app->limits.max_body)) {
            /* Refused before a byte of it is read (libmicrohttpd then
             * discards the body unread and closes the connection). */
            conns_request_arrived(h->conns, conn_of(c));
            struct http_response busy = {0};
            http_fail(&busy, HTTP_ERR_BUSY, NULL);
            st->answered = true;
            return queue_plain(c, &busy);
        }
        if (content_length_over(st->hdr.content_length,
                                h->app->limits.max_body)) {
            /* Answer now: libmicrohttpd then discards the body unread and
             * closes the connection. */
            conns_request_arrived(h->conns, conn_of(c));
            st->too_large = true;
            return dispatch(h, c, url, method, st);
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        if (st->hdr.chunked && !st->long_chunk_line &&
            after_long_chunk_line(upload_data)) {
            st->long_chunk_line = true;
            drop_body(h, st);
        }
        if (!st->answered && !st->long_chunk_line)
            append_body(h, st, upload_data, *upload_data_size,
                        h->app->limits.max_body);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->deferred != NULL)
        return send_deferred(c, st);
    if (st->answered)
        return MHD_YES;
    conns_request_arrived(h->conns, conn_of(c));
    if (st->long_chunk_line || st->busy) {
        struct http_response res = {0};
        if (st->busy)
            http_fail(&res, HTTP_ERR_BUSY, NULL);
        else
            http_fail(&res, HTTP_ERR_BAD_REQUEST,
                      "a chunk-size line is longer than 256 bytes");
        res.close = true;
        st->answered = true;
        return queue_plain(c, &res);
    }
    return dispatch(h, c, url, method, st);
}

/* Make, bind and listen on the server socket. Returns the fd or -errno. */
static int listen_on(const char *bind_addr, unsigned port, bool *ipv6,
                     unsigned *bound_port)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, bind_addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        sslen = sizeof(*v4);
        *ipv6 = false;
    } else if (inet_pton(AF_INET6, bind_addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        sslen = sizeof(*v6);
        *ipv6 = true;
    } else {
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *bound_port = ntohs(*ipv6 ? v6->sin6_port : v4->sin_port);
    return fd;
}

/* Start libmicrohttpd on h's listen socket (NULL if it would not). */
static struct MHD_Daemon *
start_daemon(struct httpd *h, const struct httpd_options *opt, bool ipv6)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (ipv6)
        flags |= MHD_USE_IPv6;
    /* THREAD_POOL_SIZE 0 or 1 only draws a warning in 0.9.75: pass it
     * only when it means a pool. */
    unsigned pool = opt->threads >= 2 ? opt->threads : 0;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, access_handler, h, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_logger, h, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)h->listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, connection_notify, h,
        MHD_OPTION_URI_LOG_CALLBACK, request_line, h,
        MHD_OPTION_CONNECTION_LIMIT,
        mhd_connection_limit(opt->max_connections, pool),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)opt->conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
        pool ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (unsigned int)pool,
        MHD_OPTION_END);
}

int httpd_start(const struct httpd_options *opt, const struct app *app,
                struct httpd **out, char *err, size_t errlen)
{
    struct httpd *h = calloc(1, sizeof(*h));
    int rc = -ENOMEM;
    const char *what = "out of memory";

    if (h == NULL)
        goto fail;
    h->app = app;
    h->listen_fd = -1;
    what = "cannot create a mutex or condition variable";
    pthread_cond_t *const conds[] = {&h->idle};
    rc = thread_sync_init(&h->mu, conds, 1);
    if (rc)
        goto fail;
    h->sync_ready = true;

    bool ipv6 = false;
    rc = listen_on(opt->bind, opt->port, &ipv6, &h->port);
    if (rc < 0) {
        char why[128];
        strerror_r(-rc, why, sizeof(why));
        snprintf(err, errlen, "cannot listen on %s:%u: %s", opt->bind,
                 opt->port, why);
        what = NULL;
        goto fail;
    }
    h->listen_fd = rc;

    what = "cannot start the event stream thread";
    rc = events_create(app, &h->events);
    if (rc)
        goto fail;
    struct conns_limits lim = {
        .max_total = opt->max_connections,
        .max_per_ip = opt->max_connections_per_ip,
        .request_s = opt->header_timeout_s,
        .keepalive_s = opt->conn_timeout_s,
    };
    what = "cannot start the connection reaper thread";
    rc = conns_create(&lim, app->http, &h->conns);
    if (rc)
        goto fail;

    h->daemon = start_daemon(h, opt, ipv6);
    if (h->daemon == NULL) {
        snprintf(err, errlen, "libmicrohttpd failed to start on %s:%u",
                 opt->bind, h->port);
        rc = -EIO;
        what = NULL;
        goto fail;
    }
    *out = h;
    return 0;

fail:
    if (what != NULL) {
        char why[128];
        strerror_r(-rc, why, sizeof(why));
        snprintf(err, errlen, "%s: %s", what, why);
    }
    httpd_stop(h);
    *out = NULL;
    return rc;
}

unsigned httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_end_streams(struct httpd *h)
{
    if (h != NULL && h->events != NULL)
        events_stop(h->events);
}

/* Wait up to `ms` for the requests in progress to finish. */
static void wait_requests(struct httpd *h, unsigned ms)
{
    struct timespec deadline = time_deadline_ms(CLOCK_MONOTONIC, ms);
    /* seq_cst on both sides: a completion either sees `stopping` and
     * signals, or finished before the count below is read. */
    atomic_store(&h->stopping, true);
    pthread_mutex_lock(&h->mu);
    while (atomic_load(&h->in_progress) > 0)
        if (pthread_cond_timedwait(&h->idle, &h->mu, &deadline) != 0)
            break;
    pthread_mutex_unlock(&h->mu);
}

void httpd_stop(struct httpd *h)
{
    if (h == NULL)
        return;
    if (h->events != NULL)
        events_stop(h->events);
    if (h->daemon != NULL) {
        /* Stop accepting, then let requests already inside finish
         * (answers now carry Connection: close), so that a 202 that was
         * decided is also delivered. MHD_stop_daemon would cut them off. */
        MHD_socket fd = MHD_quiesce_daemon(h->daemon);
        wait_requests(h, 2000);
        MHD_stop_daemon(h->daemon);
        /* A quiesced listen socket is the caller's to close; otherwise
         * libmicrohttpd closed the one it was given. */
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    } else if (h->listen_fd >= 0) {
        close(h->listen_fd); /* a start that failed before the daemon */
    }
    events_destroy(h->events);
    conns_destroy(h->conns);
    if (h->sync_ready) {
        pthread_cond_t *const conds[] = {&h->idle};
        thread_sync_destroy(&h->mu, conds, 1);
    }
    free(h);
}
