/*
 * errors.c - the one table of HTTP errors (errors.h), as arrays indexed by
 * enum http_err, and the function that answers with a row.
 */
#include "server/errors.h"

#include <assert.h>

struct err_row {
    unsigned status;
    unsigned headers;
    const char *code;
    const char *message;
};

static const struct err_row rows[HTTP_ERR_COUNT] = {
#define HTTP_ERR_ROW(name, st, c, h, msg)                                      \
    [HTTP_ERR_##name] = {                                                      \
        .status = (st), .headers = (h), .code = (c), .message = (msg)},
    HTTP_ERRORS(HTTP_ERR_ROW)
#undef HTTP_ERR_ROW
};

static const struct err_row *row(enum http_err e)
{
    assert(e >= 0 && e < HTTP_ERR_COUNT);
    return &rows[e < HTTP_ERR_COUNT ? e : HTTP_ERR_INTERNAL];
}

unsigned http_err_status(enum http_err e)
{
    return row(e)->status;
}

const char *http_err_code(enum http_err e)
{
    return row(e)->code;
}

const char *http_err_message(enum http_err e)
{
    return row(e)->message;
}

void http_fail(struct http_response *res, enum http_err e, const char *msg)
{
    const struct err_row *r = row(e);

    http_error(res, r->status, r->code, msg != NULL ? msg : r->message);
    if (r->headers & ERRH_RETRY_AFTER)
        http_add_header(res, "Retry-After", "1");
    if (r->headers & ERRH_BEARER)
        http_add_header(res, "WWW-Authenticate", "Bearer");
    if (r->headers & ERRH_CLOSE)
        res->close = true;
}
