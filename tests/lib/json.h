/*
 * json.h - reading shopd's JSON answers in tests: parse a body, reach a
 * field by a dotted path, assert a field's type, assert the exact shape of
 * an error answer, GET a JSON document.
 *
 * Thread safety: resp_json, json_at and is_rfc3339_utc may be called from
 * any thread; every other function asserts (Check), so only from the
 * test's own thread.
 */
#ifndef SHOPD_TESTS_LIB_JSON_H
#define SHOPD_TESTS_LIB_JSON_H

#include <stdbool.h>

#include <cJSON.h>

#include "tests/lib/http.h"

/* Parse the body as JSON; NULL if it is not. The caller deletes it. */
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

/* Whether `s` is an RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SS[.frac]Z". */
bool is_rfc3339_utc(const char *s);

#endif /* SHOPD_TESTS_LIB_JSON_H */
