/*
 * run_e2e.c - the end-to-end runner: every e2e suite in one SRunner.
 *
 *   SHOPD_BIN=./shopd build/tests/e2e/e2e
 *
 * CK_RUN_SUITE / CK_RUN_CASE select, CK_VERBOSITY sets the output, and
 * CK_FORK=no runs in one process (for gdb).
 */
#include "tests/e2e/suites.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/lib/process.h"

int main(void)
{
    /* A server closing on us must show up as EPIPE, not kill the runner. */
    signal(SIGPIPE, SIG_IGN);
    const char *bin = getenv("SHOPD_BIN");
    if (!bin || !*bin)
        bin = "./shopd";
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "e2e: %s is not an executable (set SHOPD_BIN)\n", bin);
        return EXIT_FAILURE;
    }
    if (e2e_tmpdir_create() != 0)
        fprintf(stderr, "e2e: no scratch directory, using /tmp\n");
    SRunner *sr = srunner_create(e2e_api_suite());
    srunner_add_suite(sr, e2e_orders_suite());
    srunner_add_suite(sr, e2e_config_suite());
    srunner_add_suite(sr, e2e_lifecycle_suite());
    srunner_add_suite(sr, e2e_load_suite());
    srunner_add_suite(sr, e2e_race_suite());
    srunner_add_suite(sr, e2e_signals_suite());
    srunner_add_suite(sr, e2e_framing_suite());
    srunner_add_suite(sr, e2e_store_suite());
    srunner_add_suite(sr, e2e_retry_suite());
    srunner_add_suite(sr, e2e_outage_suite());
    srunner_add_suite(sr, e2e_floor_suite());
    srunner_add_suite(sr, e2e_head_suite());
    srunner_add_suite(sr, e2e_redis_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    e2e_tmpdir_remove();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
