/*
 * process.h - the real shopd binary as a child process of the test, the
 * run's scratch directory, and other programs (curl, promtool) run to
 * completion.
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
 * Thread safety: for the test's own thread (these functions fork, waitpid
 * and assert, and Check asserts only work in the test thread). Only the
 * internal reader thread touches a struct shopd besides it, under its lock.
 */
#ifndef SHOPD_TESTS_LIB_PROCESS_H
#define SHOPD_TESTS_LIB_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Milliseconds shopd may take to log its listening line (times
 * e2e_slow()). */
#define E2E_START_TIMEOUT_MS 15000

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
 * closed or `timeout_ms` passed (times E2E_SLOW, as every wait here).
 * Returns whether the needle was seen.
 */
bool shopd_wait_output(struct shopd *s, const char *needle, int timeout_ms);

/*
 * Wait up to `timeout_ms` (times E2E_SLOW) for the process to exit and
 * reap it. Returns the wait status, or -1 if it is still running.
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
 * Assert that wait status `st` (of shopd_wait_exit, shopd_run or run_cmd)
 * is a normal exit with status `code`. A failure names `what` and shows
 * the end of `err` (the program's stderr; may be NULL).
 */
void expect_exit_code(int st, int code, const char *what, const char *err);

/*
 * Wait up to `timeout_ms` for `s` to exit and assert exit status `code`
 * (a failure names `what`). Returns its stderr (malloc'd; the caller
 * frees it).
 */
char *shopd_expect_exit(struct shopd *s, int timeout_ms, int code,
                        const char *what);

/*
 * The number after the last `key` (e.g. "processed=") in a log `text` that
 * is not the tail of a longer key (so "stock=" does not match
 * "out_of_stock="); -1 if there is none.
 */
long log_field(const char *text, const char *key);

/*
 * Run shopd to completion (no default arguments): spawn, wait up to
 * `timeout_ms` for its exit (SIGKILL after that). Stores the wait status
 * (-1 on timeout) and the captured stdout and stderr (malloc'd; pass NULL
 * to drop them).
 */
int shopd_run(const char *const *args, const char *const *env, int timeout_ms,
              char **out, char **err);

/*
 * Start shopd over a catalog file written from `catalog_json`, plus the
 * NULL-ended `extra` arguments (may be NULL); `*path` gets the file's
 * malloc'd path for shopd_stop_catalog().
 */
struct shopd *shopd_start_catalog(const char *catalog_json, char **path,
                                  const char *const *extra);

/* Destroy `s` and remove and free the catalog file `path`. */
void shopd_stop_catalog(struct shopd *s, char *path);

/* Checked-fixture teardown: kill and reap every shopd still registered. */
void e2e_teardown(void);

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
 * A catalog of `n` products as JSON (malloc'd): SKUs p000000, p000001,
 * ..., names "P <i>", price 100 + i % 50 cents, 10 in stock each.
 */
char *catalog_json_of(size_t n);

/*
 * Run `argv` (argv[0] looked up in PATH) with `input` on its stdin, its
 * stdout and stderr captured into `*out` (malloc'd). Waits up to
 * `timeout_ms`. Returns the wait status, -1 on timeout, -2 if it could not
 * start, -3 if the program was not found (exit 127).
 */
int run_cmd(const char *const *argv, const char *input, size_t input_len,
            char **out, int timeout_ms);

#endif /* SHOPD_TESTS_LIB_PROCESS_H */
