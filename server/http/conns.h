/*
 * conns.h - admission of HTTP connections and request deadlines (SPEC §10),
 * server-internal: used by httpd.c only.
 *
 * Every connection libmicrohttpd opens is registered here (its
 * NOTIFY_CONNECTION callback), which decides at once whether it may stay:
 * past max_connections, or past max_connections_per_ip from one address,
 * it is shut down before a byte of it is read. A reaper thread enforces a
 * total deadline on each request (header_timeout from its start, however
 * slowly its bytes trickle), on a new connection that sends nothing, and
 * on the pause between two requests of a keep-alive connection; an overdue
 * connection is shut down and libmicrohttpd closes it.
 *
 * Thread safety: all functions may be called from any thread at once,
 * except conns_create and conns_destroy (controlling thread).
 */
#ifndef SHOPD_HTTP_CONNS_H
#define SHOPD_HTTP_CONNS_H

#include <stdbool.h>
#include <sys/socket.h>

#include "server/api/api.h"

struct conns;
struct conn;

struct conns_limits {
    unsigned max_total;   /* connections open at most */
    unsigned max_per_ip;  /* from one address; 0 = no limit */
    unsigned request_s;   /* a request must arrive within this (s) */
    unsigned keepalive_s; /* the next request must start within this (s) */
};

/*
 * Create the registry and start its reaper thread (with every signal
 * blocked). `counters` (not owned, may be NULL) receives the counts.
 * Stores the registry in `*out` and returns 0, or returns -ENOMEM or the
 * pthread error (and stores NULL).
 */
int conns_create(const struct conns_limits *lim, struct http_counters *counters,
                 struct conns **out);

/* Stop the reaper and free the registry. Accepts NULL. Call after every
 * connection was closed (after MHD_stop_daemon). */
void conns_destroy(struct conns *cs);

/*
 * Register a new connection on socket `fd` from `addr` (may be NULL).
 * Returns its record (the caller keeps it, for instance as libmicrohttpd's
 * socket context), or NULL when out of memory. When the connection is over
 * a limit, its socket is shut down at once and it is counted as refused;
 * it must still be passed to conns_close().
 */
struct conn *conns_open(struct conns *cs, int fd, const struct sockaddr *addr);

/* The connection is closing: forget it. Accepts NULL. The socket must
 * still be open during this call (it is the fd's last use here). */
void conns_close(struct conns *cs, struct conn *c);

/* A request line arrived: the request's own deadline starts now (for the
 * first request of a connection it started when the connection opened).
 * Accepts NULL. */
void conns_request_started(struct conns *cs, struct conn *c);

/* The whole request has arrived (or was answered early): no deadline
 * while it is answered. Accepts NULL. */
void conns_request_arrived(struct conns *cs, struct conn *c);

/* The answer was sent: the next request must start within keepalive_s.
 * Accepts NULL. */
void conns_request_done(struct conns *cs, struct conn *c);

#endif /* SHOPD_HTTP_CONNS_H */
