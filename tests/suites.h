/*
 * suites.h - the Check suite of each module, run by tests/run_unit.c.
 */
#ifndef SHOPD_TESTS_SUITES_H
#define SHOPD_TESTS_SUITES_H

#include <check.h>

Suite *queue_suite(void);
Suite *pool_suite(void);
Suite *shop_suite(void);
Suite *config_suite(void);
Suite *api_suite(void);
Suite *conns_suite(void);
Suite *store_suite(void);
Suite *redis_suite(void);
Suite *errors_suite(void);
Suite *openapi_suite(void);
Suite *log_suite(void);

#endif /* SHOPD_TESTS_SUITES_H */
