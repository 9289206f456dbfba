/*
 * api.h - the routes and JSON views of shopd: plain handlers over
 * request/response structs. Nothing here sees libmicrohttpd; http/ feeds
 * these handlers from sockets.
 *
 * Handlers never see libmicrohttpd types, so they are tested without a
 * socket: fill a struct http_request, call api_handle(), read the
 * struct http_response.
 *
 * Thread safety: api_handle() may be called from any thread at once;
 * a struct http_response belongs to one thread at a time.
 */
#ifndef SHOPD_API_H
#define SHOPD_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shop/shop.h"

/* Longest admin token + 1, as CONFIG_SECRET_MAX (main checks). */
#define API_TOKEN_MAX 256

/* Settings the handlers need; read-only once the server runs. */
struct api_limits {
    size_t max_body;       /* bytes accepted in a request body */
    unsigned max_quantity; /* largest quantity of one order */
    unsigned http_threads; /* reported by /stats */
    /* The admin API (SPEC §9): off unless a token was configured. The
     * token, zero-padded (the config's copy is wiped once this one is
     * made, this one at exit); a presented token is compared with it by
     * api_token_equal(), in constant time. Never logged or reported. */
    bool admin_enabled;
    size_t admin_token_len;
    char admin_token[API_TOKEN_MAX];
};

/*
 * Whether token `have` (`have_len` bytes) equals `want` (`want_len`), in
 * time independent of their bytes and lengths: both are copied into
 * zero-padded buffers of API_TOKEN_MAX bytes and every byte is compared
 * (XORs OR-ed together, with the lengths' difference), with no early exit.
 * A token of API_TOKEN_MAX bytes or more is unequal to anything. The
 * copies are wiped before returning. Thread-safe.
 */
bool api_token_equal(const char *have, size_t have_len, const char *want,
                     size_t want_len);

/*
 * Counts of the HTTP layer (SPEC §10), kept by the libmicrohttpd glue and
 * the /events hub, read by /stats and /metrics. Relaxed atomics: each one
 * is exact, they are not a consistent snapshot together.
 */
struct http_counters {
    _Atomic uint64_t conns_open;      /* connections open now */
    _Atomic uint64_t conns_refused;   /* closed at once: over a limit */
    _Atomic uint64_t conns_timed_out; /* closed: request not in on time */
    _Atomic uint64_t viewers;         /* /events streams open now */
    _Atomic uint64_t viewers_dropped; /* /events viewers that fell behind */
};

struct api_timer;

/* Everything a handler may touch. */
struct app {
    struct shop *shop;
    struct api_limits limits;
    struct http_counters *http; /* may be NULL (then reported as 0) */
    /* This instance's name for /stats; may be published after the start
     * (once the port is bound), hence atomic. NULL reads as "". */
    const char *_Atomic instance;
    /* Holds answers back for the latency fault (SPEC §11); NULL: answers
     * are never held (the fault's latency is then not applied). */
    struct api_timer *timer;
};

struct http_request {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* without the query string */
    const char *body;    /* NUL-terminated copy of the body, or NULL */
    size_t body_len;     /* bytes in body, not counting the NUL */
    bool body_too_large; /* the body went past limits.max_body */
    /* Request headers the handlers read (values as the client sent them,
     * or NULL when absent), each with how many times it was sent. */
    const char *idempotency_key; /* the first Idempotency-Key */
    unsigned idempotency_keys;
    const char *authorization; /* the first Authorization */
    unsigned authorizations;
    /* The client's address (a struct sockaddr), or NULL: for log lines. */
    const void *client_addr;
};

#define HTTP_MAX_HEADERS 6

struct http_deferred;

struct http_header {
    const char *name; /* static string */
    char value[48];
};

struct http_response {
    unsigned status;
    const char *content_type; /* static string */
    char *body;               /* malloc'd unless body_static */
    size_t body_len;
    bool body_static;   /* body points to static storage */
    bool close;         /* add "Connection: close" */
    bool stream_events; /* answer with the /events stream instead */
    /* Close the connection without sending this answer (SPEC §11's drop
     * fault: the answer is lost on the way). */
    bool drop;
    /* Not NULL: the answer comes later, through this (see below); the
     * rest of the response is ignored. */
    struct http_deferred *deferred;
    size_t nheaders;
    struct http_header headers[HTTP_MAX_HEADERS];
};

/*
 * Route and answer one complete request. Never fails: allocation failure
 * gives a static 500 body. The caller frees the body with
 * http_response_release().
 */
void api_handle(const struct app *app, const struct http_request *req,
                struct http_response *res);

/*
 * The route table, row by row, for a test that holds it against the
 * OpenAPI document. A row serves `path` exactly, or, when `param`, any
 * path that starts with `path` and then holds one parameter (and, if
 * `suffix` is not NULL, ends with `suffix`: "/products/" "{sku}"
 * "/restock"). `allow` names the methods it serves as its 405's Allow
 * header does ("GET, HEAD"). api_route_at() with i >= api_route_count()
 * gives row 0. The strings are static. Thread-safe (the table is const).
 */
struct api_route_info {
    const char *path;
    bool param;
    const char *suffix;
    const char *allow;
};
size_t api_route_count(void);
void api_route_at(size_t i, struct api_route_info *out);

/*
 * Deferred answers. A handler that must wait for another thread (a commit)
 * creates one, hands it to that thread and sets res->deferred; the HTTP
 * glue suspends the connection (no HTTP thread waits), and the other
 * thread calls http_deferred_complete() with the final response, which
 * resumes the connection and sends it.
 *
 * http_deferred_create(): NULL when out of memory. It holds two
 * references: the request's and the completer's.
 * http_deferred_complete(): callable once, from any thread; takes over
 * what `res` owns (leaves it zeroed) and drops the completer's reference.
 * Never blocks for long.
 * http_deferred_release(): drop one reference (a handler that could not
 * hand the deferred answer over drops both). Accepts NULL.
 */
struct http_deferred *http_deferred_create(void);
void http_deferred_complete(struct http_deferred *d, struct http_response *res);
void http_deferred_release(struct http_deferred *d);

/*
 * The glue's side of a deferred answer (deferred.c). Suspend: if `d` is
 * not complete yet, remember `resume(ctx)` and call `suspend(ctx)` (both
 * under d's lock, so the completer resumes a connection only after it was
 * suspended) and return true; if it is complete, return false (answer at
 * once). Take: move the final response into `out` if complete (true).
 */
bool http_deferred_suspend(struct http_deferred *d, void (*suspend)(void *ctx),
                           void (*resume)(void *ctx), void *ctx);
bool http_deferred_take(struct http_deferred *d, struct http_response *out);

/*
 * The timer of held answers (SPEC §11's latency fault), one thread.
 * api_timer_create(): over `shop` (not owned), whose drain lets every held
 * answer go at once; 0 or a negative errno. api_timer_hold(): hold `d`
 * (not yet handed to the glue, or already: either works) for `ms`: even
 * once complete it is sent only then. 0, or -EPIPE (timer NULL or closed)
 * / -ENOMEM, and then `d` is not held. api_timer_close(): let every held
 * answer go and stop the thread; holds after it are refused. Call it
 * before the HTTP server stops (a suspended connection must be resumed
 * first). api_timer_destroy(): close, then free; accepts NULL.
 * Thread safety: hold from any thread; create, close and destroy from the
 * controlling thread.
 */
int api_timer_create(struct shop *shop, struct api_timer **out);
int api_timer_hold(struct api_timer *t, struct http_deferred *d, unsigned ms);
void api_timer_close(struct api_timer *t);
void api_timer_destroy(struct api_timer *t);

/* Free what a response owns. Accepts a zeroed response. */
void http_response_release(struct http_response *res);

/*
 * Fill `res` with an error: `status`, body {"error":code,"message":msg}.
 * `code` and `msg` are copied (escaped).
 */
void http_error(struct http_response *res, unsigned status, const char *code,
                const char *msg);

/* Add a header to `res` (value copied, truncated to fit). */
void http_add_header(struct http_response *res, const char *name,
                     const char *value);

/*
 * Format the /stats JSON snapshot into a malloc'd string; `len` gets its
 * length. Returns NULL on allocation failure. Used by /stats and /events.
 */
char *api_stats_json(const struct app *app, size_t *len);

#endif /* SHOPD_API_H */
