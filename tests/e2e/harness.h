/*
 * harness.h - end-to-end test harness: start the real shopd binary on a
 * free port, speak HTTP/1.1 to it over raw sockets, read its JSON.
 *
 * The binary is $SHOPD_BIN (default ./shopd). Every shopd is started with
 * the caller's arguments after "--bind 127.0.0.1 --port 0", with every
 * SHOPD_* variable removed from the environment (then the caller's extra
 * variables added), stdout and stderr captured through two pipes that a
 * reader thread drains (so a chatty server never blocks on a full pipe).
 * The child gets PR_SET_PDEATHSIG(SIGKILL), so a test process that dies
 * (a failed assertion _exits in Check's fork mode) takes its servers with
 * it; e2e_teardown() kills and reaps whatever a test left running.
 *
 * Thread safety: the http_* functions touch only their arguments and may
 * be used from any thread. The shopd_* functions are for the test's own
 * thread (they are what fork/waitpid), as are every function that asserts
 * (names starting with `expect_` or ending in `_ok`): Check asserts only
 * work in the test thread.
 */
#ifndef SHOPD_TESTS_E2E_HARNESS_H
#define SHOPD_TESTS_E2E_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cJSON.h>
#include <check.h>

/* Milliseconds a single HTTP read or write may wait before failing. */
#define E2E_IO_TIMEOUT_MS 15000
/* Milliseconds shopd may take to log its listening line. */
#define E2E_START_TIMEOUT_MS 15000

/* ---- the shopd process ------------------------------------------------ */

struct shopd;

/*
 * Start shopd with "--bind 127.0.0.1 --port 0" then `args` (NULL-terminated,
 * may be NULL) and extra environment `env` ("NAME=value", NULL-terminated,
 * may be NULL). Waits until it logs "listening on 127.0.0.1:PORT" and
 * records PORT. Fails the test (with the captured output) if it does not.
 */
struct shopd *shopd_start(const char *const *args, const char *const *env);

/*
 * Start shopd like shopd_start() but do not wait for anything. With
 * `no_defaults` the "--bind 127.0.0.1 --port 0" prefix is left out.
 * Returns NULL if fork/pipe failed.
 */
struct shopd *shopd_spawn(const char *const *args, const char *const *env,
                          bool no_defaults);

/* The port shopd listens on (0 before it logged it). */
unsigned shopd_port(const struct shopd *s);
pid_t shopd_pid(const struct shopd *s);

/* Send signal `sig` to the process (ignored once it was reaped). */
void shopd_signal(struct shopd *s, int sig);

/*
 * Wait until the captured stdout+stderr contain `needle` or the pipes are
 * closed or `timeout_ms` passed. Returns whether the needle was seen.
 */
bool shopd_wait_output(struct shopd *s, const char *needle, int timeout_ms);

/*
 * Wait up to `timeout_ms` for the process to exit and reap it. Returns the
 * wait status, or -1 if it is still running.
 */
int shopd_wait_exit(struct shopd *s, int timeout_ms);

/* Whether the process has not exited yet (reaps it if it has). */
bool shopd_running(struct shopd *s);

/*
 * A copy of what shopd wrote to stderr / stdout so far (malloc'd,
 * NUL-terminated; the caller frees it). After the process exited and the
 * pipes hit end-of-file this is everything.
 */
char *shopd_stderr(struct shopd *s);
char *shopd_stdout(struct shopd *s);

/*
 * SIGKILL the process if it runs, reap it, stop the reader thread, free
 * everything. Accepts NULL.
 */
void shopd_destroy(struct shopd *s);

/*
 * Run shopd to completion (no default arguments): spawn, wait up to
 * `timeout_ms` for its exit (SIGKILL after that). Stores the wait status
 * (-1 on timeout) and the captured stdout and stderr (malloc'd; pass NULL
 * to drop them).
 */
int shopd_run(const char *const *args, const char *const *env, int timeout_ms,
              char **out, char **err);

/* Checked-fixture teardown: kill and reap every shopd still registered. */
void e2e_teardown(void);

/* ---- a minimal HTTP/1.1 client ---------------------------------------- */

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

/* ---- JSON and assertions (test thread only) --------------------------- */

/* Parse the body as JSON; NULL if it is not. */
cJSON *resp_json(const struct http_resp *r);

/* The node at a dotted path ("queue.depth"), or NULL. */
const cJSON *json_at(const cJSON *root, const char *path);

/* The number at `path`; fails the test if it is missing or not a number. */
double jnum(const cJSON *root, const char *path);
/* The string at `path`; fails the test if missing or not a string. */
const char *jstr(const cJSON *root, const char *path);

/*
 * Assert an error answer: `status`, Content-Type application/json, a body
 * that is exactly {"error":code,"message":"<non-empty>"}. Returns the
 * message (owned by a static buffer, valid until the next call).
 */
const char *expect_error(const struct http_resp *r, int status,
                         const char *code);

/* GET `path` on a fresh connection, assert 200 + JSON, return the parsed
 * body (caller deletes). */
cJSON *get_json_ok(unsigned port, const char *path);

/* POST /buy `json` on connection `c`; returns the order id of a 202 and
 * asserts the exact 202 body and Location. */
uint64_t buy_ok(struct http_conn *c, const char *json);

/*
 * Poll /stats until the belt is idle: depth == 0, in_flight == 0 and
 * processed == accepted (fails the test after `timeout_ms`). Returns the
 * last snapshot (caller deletes).
 */
cJSON *wait_idle_ok(unsigned port, int timeout_ms);

/* Poll /orders/id until its status is final; returns the order JSON. */
cJSON *wait_order_final_ok(unsigned port, uint64_t id, int timeout_ms);

/* Whether `s` is an RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SS[.frac]Z". */
bool is_rfc3339_utc(const char *s);

/* ---- small utilities --------------------------------------------------- */

/* Monotonic milliseconds. */
int64_t now_ms(void);
/* How much slower this run is: $E2E_SLOW (4 under a sanitizer, 8 under
 * valgrind), 1 by default. Multiply time bounds by it. */
int e2e_slow(void);
/* Sleep `ms` milliseconds (back-off between polls only). */
void backoff_ms(int ms);

/*
 * The runner's scratch directory for temporary files: created before the
 * suites run and removed (with whatever failed tests left in it) after.
 * Returns 0 or a negative errno.
 */
int e2e_tmpdir_create(void);
void e2e_tmpdir_remove(void);

/*
 * Write `content` to a fresh file in the scratch directory (or /tmp);
 * returns its malloc'd path.
 */
char *write_tmp(const char *content);

/*
 * Start shopd over a catalog file written from `catalog_json`, plus the
 * NULL-ended `extra` arguments (may be NULL); `*path` gets the file's
 * malloc'd path for shopd_stop_catalog().
 */
struct shopd *shopd_start_catalog(const char *catalog_json, char **path,
                                  const char *const *extra);

/* Destroy `s` and remove and free the catalog file `path`. */
void shopd_stop_catalog(struct shopd *s, char *path);

/*
 * Bind and listen on 127.0.0.1 port 0; stores the port. Returns the socket
 * or -1.
 */
int listen_any(unsigned *port);

/*
 * Run `argv` (argv[0] looked up in PATH) with `input` on its stdin, its
 * stdout and stderr captured into `*out` (malloc'd). Waits up to
 * `timeout_ms`. Returns the wait status, -1 on timeout, -2 if it could not
 * start, -3 if the program was not found (exit 127).
 */
int run_cmd(const char *const *argv, const char *input, size_t input_len,
            char **out, int timeout_ms);

/* ---- suites ------------------------------------------------------------ */

Suite *e2e_api_suite(void);
Suite *e2e_orders_suite(void);
Suite *e2e_config_suite(void);
Suite *e2e_lifecycle_suite(void);
Suite *e2e_load_suite(void);
Suite *e2e_redis_suite(void);
Suite *e2e_race_suite(void);
Suite *e2e_signals_suite(void);
Suite *e2e_framing_suite(void);
Suite *e2e_store_suite(void);
Suite *e2e_retry_suite(void);

#endif /* SHOPD_TESTS_E2E_HARNESS_H */
