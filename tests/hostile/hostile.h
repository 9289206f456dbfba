/*
 * hostile.h - the suites of the hostile-client program (tests/hostile):
 * hostile.c holds the runner and the quick attacks, slow_clients.c the
 * heavy ones of SPEC §10.
 *
 * Thread safety: the suite constructors are for the runner's thread.
 */
#ifndef SHOPD_TESTS_HOSTILE_HOSTILE_H
#define SHOPD_TESTS_HOSTILE_HOSTILE_H

#include <check.h>

/* The heavy SPEC §10 attacks (tests/hostile/slow_clients.c): smuggling,
 * slow headers and bodies, stalled /events viewers. */
Suite *hostile_slow_suite(void);

#endif /* SHOPD_TESTS_HOSTILE_HOSTILE_H */
