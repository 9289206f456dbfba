/*
 * clock.h - time for the test helpers: a monotonic clock in milliseconds,
 * the pause between two polls of a condition, and the run's slow-down
 * factor for time bounds (sanitizer and valgrind runs are slower).
 *
 * Waiting is always a poll of a condition up to a deadline: backoff_ms is
 * the pause between two polls, never a way to let something happen.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef SHOPD_TESTS_LIB_CLOCK_H
#define SHOPD_TESTS_LIB_CLOCK_H

#include <stdint.h>

/* Monotonic milliseconds. */
int64_t now_ms(void);

/* Sleep `ms` milliseconds (back-off between polls only). */
void backoff_ms(int ms);

/*
 * Sleep `*delay_ms`, then double it while it is below `max_ms`: the pause
 * between two polls of a condition that usually turns true soon.
 */
void backoff_step(int *delay_ms, int max_ms);

/*
 * How much slower this run is: $E2E_SLOW (4 under a sanitizer, 8 under
 * valgrind; 1 to 100), 1 by default. Multiply time bounds by it.
 */
int e2e_slow(void);

/* `ms` times e2e_slow(). */
int e2e_slow_ms(int ms);

#endif /* SHOPD_TESTS_LIB_CLOCK_H */
