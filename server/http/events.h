/*
 * events.h - the /events Server-Sent Events streams (server-internal).
 *
 * A stream sends the /stats snapshot as one `data:` event a few times a
 * second. No thread is held per viewer: between events a stream's
 * connection is suspended in libmicrohttpd, and one ticker thread resumes
 * all suspended streams on each tick. A viewer that stops reading holds a
 * small, bounded send buffer and is dropped once it falls 5 s of ticks
 * behind (counted in app->http, SPEC §10).
 *
 * Thread safety: events_response() and events_head_response() are called from
 * HTTP threads at once; events_create/events_stop/events_destroy from the
 * controlling thread.
 */
#ifndef SHOPD_HTTP_EVENTS_H
#define SHOPD_HTTP_EVENTS_H

#include <microhttpd.h>

#include "server/api/api.h"

struct events;

/*
 * Create the stream hub for `app` (not owned; its `http` counters, if any,
 * count viewers) in `*out` and start its ticker thread (which takes no
 * signal). Returns 0, or -ENOMEM or the pthread error (and stores NULL).
 */
int events_create(const struct app *app, struct events **out);

/*
 * Build the streaming response for a new viewer on connection `c`, or NULL
 * when streams are ended (the caller then answers 503). The caller queues
 * it and destroys its own reference as with any response. The daemon must
 * have been started with MHD_ALLOW_SUSPEND_RESUME.
 */
struct MHD_Response *events_response(struct events *ev,
                                     struct MHD_Connection *c);

/*
 * Build the answer to HEAD /events: the stream's headers with no body and
 * no stream (an empty response, so libmicrohttpd frames it with
 * Content-Length: 0 and keeps the connection), or NULL when streams are
 * ended or memory ran out (the caller then answers 503, as for GET).
 */
struct MHD_Response *events_head_response(struct events *ev);

/*
 * End every stream (each gets its end of stream and closes) and refuse new
 * ones; resumes every suspended connection, so that MHD_stop_daemon() may
 * be called afterwards. Idempotent.
 */
void events_stop(struct events *ev);

/* Stop the ticker and free the hub. Accepts NULL. After MHD_stop_daemon. */
void events_destroy(struct events *ev);

#endif /* SHOPD_HTTP_EVENTS_H */
