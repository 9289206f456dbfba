/*
 * response.c - filling a struct http_response: a body built in a jbuf,
 * headers, and every error answer, from the one table of HTTP errors
 * (errors.h) kept here as an array indexed by enum http_err.
 */
#include "server/api/errors.h"
#include "server/api/internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char oom_body[] =
    "{\"error\":\"internal\",\"message\":\"out of memory\"}";

void http_response_release(struct http_response *res)
{
    if (!res->body_static)
        free(res->body);
    res->body = NULL;
    res->body_len = 0;
}

void http_set_body(struct http_response *res, unsigned status,
                   const char *content_type, struct jbuf *b)
{
    http_response_release(res);
    res->status = status;
    res->content_type = content_type;
    res->body = jb_take(b, &res->body_len);
    res->body_static = false;
    if (res->body == NULL) {
        res->status = 500;
        res->content_type = "application/json";
        res->body = (char *)oom_body;
        res->body_len = sizeof(oom_body) - 1;
        res->body_static = true;
    }
}

void http_add_header(struct http_response *res, const char *name,
                     const char *value)
{
    if (res->nheaders == HTTP_MAX_HEADERS)
        return;
    struct http_header *h = &res->headers[res->nheaders++];
    h->name = name;
    snprintf(h->value, sizeof(h->value), "%s", value);
}

void http_error(struct http_response *res, unsigned status, const char *code,
                const char *msg)
{
    struct jbuf b;
    jb_init(&b, 128);
    jb_cstr(&b, "{\"error\":");
    jb_str(&b, code, strlen(code));
    jb_cstr(&b, ",\"message\":");
    jb_str(&b, msg, strlen(msg));
    jb_cstr(&b, "}");
    http_set_body(res, status, "application/json", &b);
}

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
