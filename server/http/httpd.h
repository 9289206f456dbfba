/*
 * httpd.h - the libmicrohttpd glue: listen, check the framing of each
 * request (SPEC §10), assemble it into a struct http_request, hand it to
 * the routes of api/ and send the answer; /events streams live in
 * events.h, admission and deadlines in conns.h. Only http/ includes
 * <microhttpd.h>.
 *
 * Thread safety: httpd_start() and httpd_stop() are for the controlling
 * thread; httpd_port() and httpd_end_streams() may be called from any.
 */
#ifndef SHOPD_HTTPD_H
#define SHOPD_HTTPD_H

#include "server/api/api.h"

struct httpd_options {
    const char *bind; /* IPv4 or IPv6 literal */
    unsigned port;    /* 0 picks a free port */
    unsigned threads; /* 1 = one polling thread, else a pool */
    unsigned max_connections;
    unsigned conn_timeout_s;
    unsigned header_timeout_s;       /* a request must arrive within this */
    unsigned max_connections_per_ip; /* 0 = no limit */
};

struct httpd;

/*
 * Bind and start serving `app` (not owned; must outlive the server).
 * Stores the server in `*out` and returns 0, or writes one line naming
 * the reason into `err` and returns a negative errno (and stores NULL).
 */
int httpd_start(const struct httpd_options *opt, const struct app *app,
                struct httpd **out, char *err, size_t errlen);

/* The port actually bound. */
unsigned httpd_port(const struct httpd *h);

/*
 * End the live /events streams (they close cleanly) and refuse new ones.
 * Call once the shop is drained, before httpd_stop(). Callable from any
 * thread.
 */
void httpd_end_streams(struct httpd *h);

/* Stop serving and free the server. Accepts NULL (and a server whose
 * start failed half-way). Blocks briefly. */
void httpd_stop(struct httpd *h);

#endif /* SHOPD_HTTPD_H */
