/*
 * run_unit.c - runs every module's Check suite.
 *
 * CK_RUN_SUITE=queue (etc.) runs one suite; CK_FORK=no runs in-process
 * for gdb and valgrind; CK_VERBOSITY=verbose lists every test.
 */
#include "tests/suites.h"

#include <check.h>
#include <stdlib.h>

int main(void)
{
    SRunner *sr = srunner_create(queue_suite());
    srunner_add_suite(sr, pool_suite());
    srunner_add_suite(sr, shop_suite());
    srunner_add_suite(sr, config_suite());
    srunner_add_suite(sr, api_suite());
    srunner_add_suite(sr, conns_suite());
    srunner_add_suite(sr, store_suite());
    srunner_add_suite(sr, redis_suite());
    srunner_add_suite(sr, errors_suite());
    srunner_add_suite(sr, openapi_suite());
    srunner_add_suite(sr, log_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
