/*
 * check_errors.c - unit tests of the one table of HTTP errors
 * (server/api/errors.h): every code spelled once, statuses as SPEC §1, §8, §9
 * and §10 give them, and the headers each status calls for.
 */
#include "server/api/errors.h"

#include <check.h>
#include <cJSON.h>
#include <string.h>

#include "tests/suites.h"

/* The header `name` of `res`, or NULL. */
static const char *header(const struct http_response *res, const char *name)
{
    for (size_t i = 0; i < res->nheaders; i++)
        if (strcmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

START_TEST(test_errors_codes_are_unique_and_named)
{
    for (int a = 0; a < HTTP_ERR_COUNT; a++) {
        ck_assert_ptr_nonnull(http_err_code((enum http_err)a));
        ck_assert_uint_gt(strlen(http_err_message((enum http_err)a)), 0);
        ck_assert_uint_ge(http_err_status((enum http_err)a), 400);
        ck_assert_uint_lt(http_err_status((enum http_err)a), 600);
        for (int b = a + 1; b < HTTP_ERR_COUNT; b++)
            ck_assert_str_ne(http_err_code((enum http_err)a),
                             http_err_code((enum http_err)b));
    }
}
END_TEST

START_TEST(test_errors_statuses_follow_the_spec)
{
    static const struct {
        enum http_err e;
        unsigned status;
        const char *code;
    } rows[] = {
        {HTTP_ERR_INVALID_JSON, 400, "invalid_json"},
        {HTTP_ERR_INVALID_FIELD, 400, "invalid_field"},
        {HTTP_ERR_UNKNOWN_PRODUCT, 404, "unknown_product"},
        {HTTP_ERR_UNKNOWN_ORDER, 404, "unknown_order"},
        {HTTP_ERR_NOT_FOUND, 404, "not_found"},
        {HTTP_ERR_BODY_TOO_LARGE, 413, "body_too_large"},
        {HTTP_ERR_QUEUE_FULL, 503, "queue_full"},
        {HTTP_ERR_SHUTTING_DOWN, 503, "shutting_down"},
        {HTTP_ERR_STORE_UNAVAILABLE, 503, "store_unavailable"},
        {HTTP_ERR_OUTCOME_UNKNOWN, 504, "outcome_unknown"},
        {HTTP_ERR_IDEMPOTENCY_KEY_IN_USE, 409, "idempotency_key_in_use"},
        {HTTP_ERR_IDEMPOTENCY_KEY_REUSED, 422, "idempotency_key_reused"},
        {HTTP_ERR_INVALID_IDEMPOTENCY_KEY, 400, "invalid_idempotency_key"},
        {HTTP_ERR_ADMIN_DISABLED, 403, "admin_disabled"},
        {HTTP_ERR_UNAUTHORIZED, 401, "unauthorized"},
        {HTTP_ERR_NOT_IMPLEMENTED, 501, "not_implemented"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ck_assert_uint_eq(http_err_status(rows[i].e), rows[i].status);
        ck_assert_str_eq(http_err_code(rows[i].e), rows[i].code);
    }
}
END_TEST

/* The body is the SPEC's error object; the row's headers come with it. */
START_TEST(test_errors_fail_fills_body_and_headers)
{
    struct http_response res;

    memset(&res, 0, sizeof(res));
    http_fail(&res, HTTP_ERR_QUEUE_FULL, NULL);
    ck_assert_uint_eq(res.status, 503);
    ck_assert_str_eq(header(&res, "Retry-After"), "1");
    ck_assert(!res.close);
    cJSON *j = cJSON_ParseWithLength(res.body, res.body_len);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "error")->valuestring,
                     "queue_full");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "message")->valuestring,
                     http_err_message(HTTP_ERR_QUEUE_FULL));
    cJSON_Delete(j);
    http_response_release(&res);

    memset(&res, 0, sizeof(res));
    http_fail(&res, HTTP_ERR_SHUTTING_DOWN, "closing \"now\"");
    ck_assert(res.close);
    ck_assert_ptr_null(header(&res, "Retry-After"));
    j = cJSON_ParseWithLength(res.body, res.body_len);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "message")->valuestring,
                     "closing \"now\"");
    cJSON_Delete(j);
    http_response_release(&res);

    memset(&res, 0, sizeof(res));
    http_fail(&res, HTTP_ERR_UNAUTHORIZED, NULL);
    ck_assert_uint_eq(res.status, 401);
    ck_assert_str_eq(header(&res, "WWW-Authenticate"), "Bearer");
    http_response_release(&res);
}
END_TEST

Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("table");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_errors_codes_are_unique_and_named);
    tcase_add_test(tc, test_errors_statuses_follow_the_spec);
    tcase_add_test(tc, test_errors_fail_fills_body_and_headers);
    suite_add_tcase(s, tc);
    return s;
}
