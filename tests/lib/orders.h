/*
 * orders.h - the order belt as a test sees it through HTTP: place an order
 * and assert the exact 202 answer, wait until the belt is idle, wait until
 * one order is final.
 *
 * Every wait polls /stats or /orders/{id} with a small back-off up to a
 * deadline; none sleeps to let something happen.
 *
 * Thread safety: every function asserts (Check), so only from the test's
 * own thread.
 */
#ifndef SHOPD_TESTS_LIB_ORDERS_H
#define SHOPD_TESTS_LIB_ORDERS_H

#include <stdint.h>

#include <cJSON.h>

#include "tests/lib/http.h"

/* POST /buy `json` on connection `c`; returns the order id of a 202 and
 * asserts the exact 202 body and Location. */
uint64_t buy_ok(struct http_conn *c, const char *json);

/* buy_ok on a fresh connection to `port`, closed afterwards. */
uint64_t buy_one_ok(unsigned port, const char *json);

/*
 * Poll /stats until the belt is idle: depth == 0, in_flight == 0 and
 * processed == accepted (fails the test after `timeout_ms`). Returns the
 * last snapshot (caller deletes).
 */
cJSON *wait_idle_ok(unsigned port, int timeout_ms);

/* Poll /orders/id until its status is final; returns the order JSON
 * (caller deletes). Fails the test after `timeout_ms`. */
cJSON *wait_order_final_ok(unsigned port, uint64_t id, int timeout_ms);

#endif /* SHOPD_TESTS_LIB_ORDERS_H */
