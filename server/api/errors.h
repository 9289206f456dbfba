/*
 * errors.h - every error shopd answers over HTTP, in one table.
 *
 * Each row of HTTP_ERRORS is one error a client can see: the name of its
 * enum constant, the HTTP status, the "error" code of the JSON body, the
 * headers the status calls for, and the default "message". The enum, the
 * status mapping, the code strings and the default texts are all made from
 * this table (an X-macro, as libuv's UV_ERRNO_MAP and Lwan's
 * FOR_EACH_HTTP_STATUS are), so a code cannot be spelled two ways or
 * answered with two statuses.
 *
 * Thread safety: the table is constant; every function may be called from
 * any thread at once.
 */
#ifndef SHOPD_API_ERRORS_H
#define SHOPD_API_ERRORS_H

#include "server/api/api.h"

/* Headers an error carries besides its body. */
#define ERRH_NONE        0u
#define ERRH_RETRY_AFTER 1u /* Retry-After: 1 */
#define ERRH_CLOSE       2u /* Connection: close */
#define ERRH_BEARER      4u /* WWW-Authenticate: Bearer */

/* X(NAME, status, "code", headers, "default message") */
#define HTTP_ERRORS(X)                                                         \
    X(BAD_REQUEST, 400, "bad_request", ERRH_CLOSE,                             \
      "the request is not well-formed HTTP/1.1")                               \
    X(INVALID_JSON, 400, "invalid_json", ERRH_NONE,                            \
      "the body is not one JSON object")                                       \
    X(INVALID_FIELD, 400, "invalid_field", ERRH_NONE,                          \
      "a field is missing or has a wrong value")                               \
    X(INVALID_ID, 400, "invalid_id", ERRH_NONE,                                \
      "the order id is not a positive whole number")                           \
    X(INVALID_IDEMPOTENCY_KEY, 400, "invalid_idempotency_key", ERRH_NONE,      \
      "Idempotency-Key must be one header of 1-255 characters from ! to ~ "    \
      "except \", optionally in double quotes")                                \
    X(UNAUTHORIZED, 401, "unauthorized", ERRH_BEARER,                          \
      "send Authorization: Bearer <admin token>")                              \
    X(ADMIN_DISABLED, 403, "admin_disabled", ERRH_NONE,                        \
      "the admin API is off: start shopd with --admin-token-file or "          \
      "SHOPD_ADMIN_TOKEN")                                                     \
    X(NOT_FOUND, 404, "not_found", ERRH_NONE, "no such resource")              \
    X(UNKNOWN_PRODUCT, 404, "unknown_product", ERRH_NONE,                      \
      "the product is not in the catalog")                                     \
    X(UNKNOWN_ORDER, 404, "unknown_order", ERRH_NONE,                          \
      "no such order (never issued, or no longer kept)")                       \
    X(METHOD_NOT_ALLOWED, 405, "method_not_allowed", ERRH_NONE,                \
      "method not allowed here")                                               \
    X(IDEMPOTENCY_KEY_IN_USE, 409, "idempotency_key_in_use", ERRH_RETRY_AFTER, \
      "a request with this Idempotency-Key is still being answered; retry "    \
      "in a second")                                                           \
    X(BODY_TOO_LARGE, 413, "body_too_large", ERRH_CLOSE,                       \
      "the request body is too large")                                         \
    X(IDEMPOTENCY_KEY_REUSED, 422, "idempotency_key_reused", ERRH_NONE,        \
      "this Idempotency-Key was used for a different request")                 \
    X(INTERNAL, 500, "internal", ERRH_NONE, "an internal error")               \
    X(NOT_IMPLEMENTED, 501, "not_implemented", ERRH_CLOSE,                     \
      "the only Transfer-Encoding served is exactly 'chunked'")                \
    X(QUEUE_FULL, 503, "queue_full", ERRH_RETRY_AFTER,                         \
      "the order belt is full; retry in a second")                             \
    X(SHUTTING_DOWN, 503, "shutting_down", ERRH_CLOSE,                         \
      "the shop is closing and takes no new orders")                           \
    X(STORE_UNAVAILABLE, 503, "store_unavailable", ERRH_RETRY_AFTER,           \
      "the store cannot be reached; retry in a second")                        \
    X(INJECTED_FAULT, 503, "injected_fault", ERRH_RETRY_AFTER,                 \
      "a fault injected on purpose (PATCH /admin/floor); no order was "        \
      "taken: retry in a second")                                              \
    X(OUTCOME_UNKNOWN, 504, "outcome_unknown", ERRH_NONE,                      \
      "the order may have been taken: retry with the same Idempotency-Key, "   \
      "or look it up")                                                         \
    X(BUSY, 503, "busy", ERRH_RETRY_AFTER | ERRH_CLOSE,                        \
      "request bodies in progress hold all the memory they may; retry in a "   \
      "second")

enum http_err {
#define HTTP_ERR_ENUM(name, status, code, headers, msg) HTTP_ERR_##name,
    HTTP_ERRORS(HTTP_ERR_ENUM)
#undef HTTP_ERR_ENUM
        HTTP_ERR_COUNT
};

/* The HTTP status of `e`. */
unsigned http_err_status(enum http_err e);
/* The "error" code of `e`, e.g. "queue_full". */
const char *http_err_code(enum http_err e);
/* The default message of `e`. */
const char *http_err_message(enum http_err e);

/*
 * Fill `res` with error `e`: its status, the body
 * {"error":"<code>","message":"<msg, or the default if NULL>"} and the
 * headers the row names (Retry-After, Connection: close,
 * WWW-Authenticate). `msg` is copied (escaped).
 */
void http_fail(struct http_response *res, enum http_err e, const char *msg);

#endif /* SHOPD_API_ERRORS_H */
