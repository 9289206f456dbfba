/*
 * http.h - a minimal HTTP/1.1 client over raw sockets to 127.0.0.1, for
 * tests that must control every byte: requests with any method, headers
 * and framing (Content-Length, chunked, raw bytes), answers read with a
 * deadline (Content-Length, chunked, until close, or a stream read up to a
 * marker such as an SSE event).
 *
 * Sockets are non-blocking and every read and write goes through poll()
 * with a deadline, so a server that hangs fails the test instead of
 * hanging it. Nothing here asserts.
 *
 * Thread safety: every function touches only its arguments and may be
 * used from any thread; one connection belongs to one thread at a time.
 */
#ifndef SHOPD_TESTS_LIB_HTTP_H
#define SHOPD_TESTS_LIB_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Milliseconds a single HTTP read or write may wait before failing. */
#define E2E_IO_TIMEOUT_MS 15000

struct http_conn {
    int fd; /* -1 when closed */
    unsigned port;
    char *buf; /* bytes read but not consumed yet */
    size_t len, cap;
    /* A streamed body (after http_read_head) in chunked encoding is
     * decoded into `sbuf` for http_read_until. */
    bool stream_chunked;
    bool stream_end;               /* the last chunk was seen */
    unsigned long long chunk_left; /* data bytes left in this chunk */
    bool need_crlf;                /* the CRLF after a chunk's data is due */
    char *sbuf;
    size_t slen;
};

#define HTTP_MAX_RESP_HEADERS 64

struct http_kv {
    char *name;
    char *value;
};

struct http_resp {
    int status;
    size_t nheaders;
    struct http_kv headers[HTTP_MAX_RESP_HEADERS];
    char *body; /* NUL-terminated */
    size_t body_len;
    bool chunked;
};

/* Connect to 127.0.0.1:port. Returns 0 or a negative errno. */
int http_connect(struct http_conn *c, unsigned port);
/* Close the connection (accepts a closed one). */
void http_close(struct http_conn *c);

/*
 * Send a request. `headers` is NULL or extra raw header lines, each ending
 * in "\r\n". A non-NULL `body` (even of length 0) gets a Content-Length.
 * Host is always sent. Returns 0 or a negative errno.
 */
int http_send(struct http_conn *c, const char *method, const char *path,
              const char *headers, const void *body, size_t len);

/* Send a request with a chunked body cut into `chunk` byte pieces. */
int http_send_chunked(struct http_conn *c, const char *method, const char *path,
                      const char *headers, const void *body, size_t len,
                      size_t chunk);

/* Send raw bytes. Returns 0 or a negative errno. */
int http_send_raw(struct http_conn *c, const void *data, size_t len);

/*
 * Read one response (skipping 1xx). `head` says the request was HEAD (no
 * body follows). The body is read by Content-Length, chunked encoding, or
 * until the server closes. Returns 0, -ETIMEDOUT, -EPIPE (closed before a
 * status line), -EPROTO (not HTTP) or another negative errno.
 */
int http_read(struct http_conn *c, struct http_resp *r, bool head,
              int timeout_ms);

/*
 * Read only the status line and headers (for streams such as /events).
 * The body is left in the connection for http_read_until(), which decodes
 * chunked encoding if the response uses it.
 */
int http_read_head(struct http_conn *c, struct http_resp *r, int timeout_ms);

/*
 * Read until the unconsumed body bytes contain `needle`; store a malloc'd
 * copy of everything up to and including it into `*out` and consume it.
 * Returns 0, -ETIMEDOUT, -EPIPE (the stream ended first), -EPROTO.
 */
int http_read_until(struct http_conn *c, const char *needle, char **out,
                    int timeout_ms);

/* Wait until the server closes the connection (0) or the timeout. */
int http_wait_closed(struct http_conn *c, int timeout_ms);

/* Send then read. Returns what http_send or http_read returned. */
int http_roundtrip(struct http_conn *c, const char *method, const char *path,
                   const char *headers, const void *body, size_t len,
                   struct http_resp *r);

/* A one-shot request on a fresh connection, closed afterwards. */
int http_do(unsigned port, const char *method, const char *path,
            const char *headers, const void *body, size_t len,
            struct http_resp *r);

/* Value of header `name` (case-insensitive), or NULL. */
const char *http_header(const struct http_resp *r, const char *name);
/* Whether the server said Connection: close. */
bool http_says_close(const struct http_resp *r);
/* Free what the response owns and zero it. Accepts a zeroed response. */
void http_resp_free(struct http_resp *r);

/* Whether a header value starts with `prefix`, case-insensitively. */
bool header_starts(const char *value, const char *prefix);

/*
 * Bind and listen on 127.0.0.1 port 0 (a port nobody else has); stores
 * the port. Returns the socket or -1.
 */
int listen_any(unsigned *port);

#endif /* SHOPD_TESTS_LIB_HTTP_H */
