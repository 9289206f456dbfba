/*
 * reliability.h - helpers shared by the reliability tests (tests/hostile,
 * tests/drain, tests/soak), on top of the process and HTTP helpers: what the
 * kernel says about a shopd process (resident memory, open descriptors),
 * the final "drained" log line, sanitizer reports in a log, and a clean
 * SIGTERM shutdown.
 *
 * Thread safety: rel_proc_* and rel_parse_final may be called from any
 * thread; the rel_expect_* functions assert, so only from the test thread.
 */
#ifndef SHOPD_TESTS_LIB_RELIABILITY_H
#define SHOPD_TESTS_LIB_RELIABILITY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>

#include "tests/lib/process.h"

/* Resident set size of `pid` in KiB (VmRSS), or -1. */
long rel_proc_rss_kb(pid_t pid);

/* Number of open file descriptors of `pid` (/proc/PID/fd), or -1. */
int rel_proc_fd_count(pid_t pid);

/*
 * Wait (polling with back-off) until `pid` has at most `max` descriptors
 * open or `timeout_ms` passed. Returns the last count seen.
 */
int rel_wait_fds_at_most(pid_t pid, int max, int timeout_ms);

/* The counts of shopd's final "drained ..." or "drain timed out: ..." line. */
struct rel_final {
    uint64_t accepted, processed, fulfilled, out_of_stock;
    uint64_t rejected_full, rejected_invalid, left;
};

/*
 * Find the last line of `log` containing `prefix` ("drained" or "drain
 * timed out:") followed by the counts, and parse them. Returns whether it
 * was found and complete.
 */
bool rel_parse_final(const char *log, const char *prefix,
                     struct rel_final *out);

/*
 * Whether `log` holds a sanitizer or libmicrohttpd panic report
 * (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer "runtime
 * error:", ThreadSanitizer, "MHD_PANIC"/"Fatal error in GNU
 * libmicrohttpd").
 */
bool rel_sanitizer_report(const char *log);

/*
 * Assert that the server still serves: GET /healthz answers 200 and a
 * normal POST /buy answers 202, each on a fresh connection within
 * `bound_ms` (times e2e_slow()). Returns the order id.
 */
uint64_t rel_expect_alive(unsigned port, int bound_ms);

/*
 * Send SIGTERM and assert a clean exit: status 0 within `timeout_ms`, a
 * final "drained" line with left=0 and processed == accepted, and no
 * sanitizer report in stderr. Stores the final counts if `out` is not NULL.
 * The process is reaped (the struct stays valid for shopd_destroy).
 */
void rel_expect_clean_exit(struct shopd *s, int timeout_ms,
                           struct rel_final *out);

/* One test of a reliability program, in a TCase of its own. */
struct rel_case {
    const char *name; /* of the TCase: CK_RUN_CASE=name runs it alone */
    const TTest *test;
    int timeout_s; /* times e2e_slow() */
    int loops;     /* 0: a plain test; N: a loop test over rows 0..N-1 */
};

/*
 * Add one TCase per case to `s`, each with e2e_teardown as its checked
 * fixture (so a failed test leaves no shopd running).
 */
void rel_add_cases(Suite *s, const struct rel_case *cases, size_t n);

/*
 * Run `sr` (CK_ENV selects and sets the output), print "N passed, M
 * failed", free it. Returns the exit status for main.
 */
int rel_run(SRunner *sr);

#endif /* SHOPD_TESTS_LIB_RELIABILITY_H */
