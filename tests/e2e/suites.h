/*
 * suites.h - the end-to-end suites, each against the real shopd binary,
 * run by tests/e2e/run_e2e.c. The helpers they share live in tests/lib/.
 *
 * Thread safety: the suite constructors are for the runner's thread.
 */
#ifndef SHOPD_TESTS_E2E_SUITES_H
#define SHOPD_TESTS_E2E_SUITES_H

#include <check.h>

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
Suite *e2e_outage_suite(void);
Suite *e2e_floor_suite(void);
Suite *e2e_head_suite(void);

#endif /* SHOPD_TESTS_E2E_SUITES_H */
