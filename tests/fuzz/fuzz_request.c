/*
 * fuzz_request.c - libFuzzer target over the request path, no socket.
 *
 * The input is split into a request as libmicrohttpd would hand it over:
 *
 *   byte 0      bits 0-3 pick the method from `methods`; bit 4 sets
 *               body_too_large (as the glue does past --max-body); bit 5
 *               passes a NULL body when the body is empty (no body sent);
 *               bit 6: an Idempotency-Key header, bit 7: an Authorization
 *               header (values taken from the body, below)
 *   bytes 1..   the path, up to the first NUL (no NUL: all of it is the
 *               path and there is no body)
 *   the rest    the body; a NUL-terminated copy is passed, as the glue does.
 *               With bit 6 and/or 7, the body's first line(s) (up to '\n')
 *               are first the Idempotency-Key value, then the Authorization
 *               value; a value starting with 0x01 counts as sent twice.
 *
 * api_handle() routes it and fills a response; the target then checks
 * what every answer must satisfy (SPEC §1) and aborts if one does not, so
 * the fuzzer finds wrong answers as well as memory errors:
 *   - the status is one the API defines;
 *   - a JSON answer parses as JSON; an error answer (>= 400) is exactly
 *     {"error":"<code>","message":"<non-empty>"};
 *   - a 202 came from POST /buy, and its body is one JSON object whose
 *     "product" is a catalog SKU and whose "quantity" is written as a JSON
 *     integer within 1..max_quantity (checked here independently of
 *     parse.c's own scanner), and in which no object anywhere has the same
 *     key twice (a pairwise walk of the whole tree here; parse.c sorts);
 *   - a 200 from a restock came with exactly one Authorization carrying the
 *     fuzz token; a 401 has WWW-Authenticate, a 409 Retry-After; no answer
 *     contains the token unless the request's path or body did, or as an
 *     order's "customer" (a client's own words, from an earlier request).
 *
 * The shop is never started (no worker threads, so runs are repeatable);
 * accepted orders pile up on the belt, so the shop is rebuilt before the
 * belt fills and a 503 queue_full would hide the accept path.
 */
#include "server/api/api.h"
#include "shop/shop.h"

#include <cJSON.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_QUEUE_CAPACITY 4096
#define FUZZ_MAX_BODY       4096
#define FUZZ_MAX_QUANTITY   1000
#define FUZZ_TOKEN          "fuzz-admin-token-0123"

static const char *const methods[] = {
    "GET",  "POST",  "HEAD", "PUT",  "DELETE", "OPTIONS", "PATCH", "",
    "post", "POSTX", "get",  "GETS", "TRACE",  "CONNECT", "BUY",   "P",
};

static struct shop *shop;
static struct app app;

static void fail(const char *what, const struct http_request *req,
                 const struct http_response *res)
{
    fprintf(stderr,
            "fuzz_request: %s\n  request: %s %s body(%zu)=%.200s\n"
            "  response: %u %.300s\n",
            what, req->method, req->path, req->body_len,
            req->body ? req->body : "(null)", res->status,
            res->body ? res->body : "(null)");
    abort();
}

static void shop_renew(void)
{
    shop_destroy(shop);
    size_t n = 0;
    const struct product *cat = shop_demo_catalog(&n);
    struct shop_config cfg = {
        .workers = 1,
        .queue_capacity = FUZZ_QUEUE_CAPACITY,
        .order_history = 1024,
        .work_ms = 0,
        .unsafe_inventory = false,
    };
    if (shop_create(&cfg, cat, n, &shop) != 0) {
        fputs("fuzz_request: shop_create failed\n", stderr);
        abort();
    }
    app.shop = shop;
    app.limits.max_body = FUZZ_MAX_BODY;
    app.limits.max_quantity = FUZZ_MAX_QUANTITY;
    app.limits.http_threads = 2;
    app.limits.admin_enabled = true;
    app.limits.admin_token_len = strlen(FUZZ_TOKEN);
    memcpy(app.limits.admin_token, FUZZ_TOKEN, app.limits.admin_token_len);
}

static bool known_status(unsigned st)
{
    static const unsigned ok[] = {200, 202, 400, 401, 403, 404,
                                  405, 409, 413, 422, 503};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (st == ok[i])
            return true;
    return false;
}

static bool contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return true;
    return false;
}

static bool has_header(const struct http_response *res, const char *name)
{
    for (size_t i = 0; i < res->nheaders; i++)
        if (strcmp(res->headers[i].name, name) == 0)
            return true;
    return false;
}

/* Cut the next line (up to '\n') off the front of the body as a header
 * value (malloc'd into `*value`, NULL-terminated); 0x01 first: sent twice. */
static void take_header(char **body, size_t *body_len, char **value,
                        unsigned *count)
{
    const char *nl = memchr(*body, '\n', *body_len);
    size_t n = nl ? (size_t)(nl - *body) : *body_len;
    *value = malloc(n + 1);
    if (*value == NULL)
        return;
    memcpy(*value, *body, n);
    (*value)[n] = '\0';
    *count = 1;
    if (n > 0 && (*value)[0] == 1) {
        memmove(*value, *value + 1, n);
        *count = 2;
    }
    size_t used = nl ? n + 1 : n;
    memmove(*body, *body + used, *body_len - used + 1);
    *body_len -= used;
}

static void check_error_body(const struct http_request *req,
                             const struct http_response *res)
{
    cJSON *j = cJSON_ParseWithLength(res->body, res->body_len);
    if (j == NULL || !cJSON_IsObject(j))
        fail("error body is not a JSON object", req, res);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (!cJSON_IsString(e) || !cJSON_IsString(m) ||
        cJSON_GetArraySize(j) != 2 || e->valuestring[0] == '\0' ||
        m->valuestring[0] == '\0')
        fail("error body is not {error,message}", req, res);
    cJSON_Delete(j);
}

/* Whether any object in the tree under `item` has a key twice. */
static bool has_duplicate_key(const cJSON *item)
{
    for (const cJSON *a = item->child; a != NULL; a = a->next) {
        if (cJSON_IsObject(item))
            for (const cJSON *b = a->next; b != NULL; b = b->next)
                if (strcmp(a->string, b->string) == 0)
                    return true;
        if (has_duplicate_key(a))
            return true;
    }
    return false;
}

/* Re-check an accepted order with an independent reading of the body. */
static void check_accepted(const struct http_request *req,
                           const struct http_response *res)
{
    if (strcmp(req->method, "POST") != 0 || strcmp(req->path, "/buy") != 0 ||
        req->body == NULL || req->body_too_large)
        fail("202 for something other than a POST /buy", req, res);
    cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
    if (j == NULL || !cJSON_IsObject(j))
        fail("202 for a body that is not one JSON object", req, res);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "product");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "quantity");
    if (!cJSON_IsString(p) ||
        shop_find_product(shop, p->valuestring, strlen(p->valuestring)) < 0)
        fail("202 without a catalog product", req, res);
    if (!cJSON_IsNumber(q) || q->valuedouble < 1 ||
        q->valuedouble > FUZZ_MAX_QUANTITY)
        fail("202 with a quantity out of range", req, res);
    /* How the body spells the number (1e3, 2.0, 01 are refused) is checked
     * by tests/check_server.c's table and the inputs in tests/fuzz/regress;
     * here the value itself must be a whole number. */
    if (q->valuedouble != floor(q->valuedouble))
        fail("202 with a quantity that is not whole", req, res);
    if (has_duplicate_key(j))
        fail("202 for a body with a key twice in one object", req, res);
    cJSON_Delete(j);
}

/* Whether any key or string value in the tree under `item` has the token. */
static bool json_has_token(const cJSON *item)
{
    for (const cJSON *a = item; a != NULL; a = a->next) {
        if (a->string != NULL && strstr(a->string, FUZZ_TOKEN) != NULL)
            return true;
        if (cJSON_IsString(a) && strstr(a->valuestring, FUZZ_TOKEN) != NULL)
            return true;
        if (a->child != NULL && json_has_token(a->child))
            return true;
    }
    return false;
}

/* Whether the client sent the token itself: in the path, the raw body, or
 * a string of the body as JSON decodes it (a 404 names the product as
 * decoded, so "\u0066uzz-..." comes back spelled plainly). */
static bool request_has_token(const struct http_request *req)
{
    if (strstr(req->path, FUZZ_TOKEN) != NULL)
        return true;
    if (req->body == NULL)
        return false;
    if (contains(req->body, req->body_len, FUZZ_TOKEN))
        return true;
    cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
    bool has = j != NULL && json_has_token(j);
    cJSON_Delete(j);
    return has;
}

/* Whether the answer shows the token anywhere but an order's "customer",
 * which is a client's own words, stored by an earlier POST /buy and shown
 * back by GET /orders/{id} (the fuzzer finds that order soon enough). */
static bool answer_leaks_token(const struct http_response *res)
{
    if (res->body == NULL || !contains(res->body, res->body_len, FUZZ_TOKEN))
        return false;
    cJSON *j = cJSON_ParseWithLength(res->body, res->body_len);
    if (j == NULL)
        return true;
    cJSON_DeleteItemFromObjectCaseSensitive(j, "customer");
    bool leaks = json_has_token(j);
    cJSON_Delete(j);
    return leaks;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (shop == NULL)
        shop_renew();
    if (size == 0)
        return 0;

    uint8_t ctl = data[0];
    const char *method = methods[ctl & 0x0f];
    const uint8_t *rest = data + 1;
    size_t rest_len = size - 1;
    const uint8_t *nul = memchr(rest, '\0', rest_len);
    size_t path_len = nul ? (size_t)(nul - rest) : rest_len;

    char *path = malloc(path_len + 1);
    if (path == NULL)
        return 0;
    memcpy(path, rest, path_len);
    path[path_len] = '\0';

    char *body = NULL;
    size_t body_len = 0;
    if (nul != NULL) {
        body_len = rest_len - path_len - 1;
        body = malloc(body_len + 1);
        if (body == NULL) {
            free(path);
            return 0;
        }
        memcpy(body, nul + 1, body_len);
        body[body_len] = '\0';
    }
    if (body != NULL && body_len == 0 && (ctl & 0x20)) {
        free(body);
        body = NULL;
    }

    char *key = NULL, *auth = NULL;
    unsigned nkeys = 0, nauth = 0;
    if (body != NULL && (ctl & 0x40))
        take_header(&body, &body_len, &key, &nkeys);
    if (body != NULL && (ctl & 0x80))
        take_header(&body, &body_len, &auth, &nauth);
    struct http_request req = {
        .method = method,
        .path = path,
        .body = body,
        .body_len = body_len,
        .body_too_large = (ctl & 0x10) != 0 || body_len > FUZZ_MAX_BODY,
        .idempotency_key = key,
        .idempotency_keys = key ? nkeys : 0,
        .authorization = auth,
        .authorizations = auth ? nauth : 0,
    };
    struct http_response res;
    api_handle(&app, &req, &res);

    if (!known_status(res.status))
        fail("status outside the API", &req, &res);
    if (!res.stream_events && res.body == NULL)
        fail("response without a body", &req, &res);
    if (res.content_type != NULL &&
        strncmp(res.content_type, "application/json", 16) == 0) {
        if (res.status >= 400) {
            check_error_body(&req, &res);
        } else {
            cJSON *j = cJSON_ParseWithLength(res.body, res.body_len);
            if (j == NULL)
                fail("JSON answer does not parse", &req, &res);
            cJSON_Delete(j);
        }
    } else if (res.status >= 400) {
        fail("error answer is not JSON", &req, &res);
    }
    if (res.status == 202)
        check_accepted(&req, &res);
    if (res.status == 405 && !has_header(&res, "Allow"))
        fail("405 without Allow", &req, &res);
    if (res.status == 401 && !has_header(&res, "WWW-Authenticate"))
        fail("401 without WWW-Authenticate", &req, &res);
    if (res.status == 409 && !has_header(&res, "Retry-After"))
        fail("409 without Retry-After", &req, &res);
    if (answer_leaks_token(&res) && !request_has_token(&req))
        fail("the admin token in an answer", &req, &res);
    if (res.status == 200 && strcmp(req.method, "POST") == 0) {
        const char *a = auth;
        size_t tl = strlen(FUZZ_TOKEN);
        bool good = a != NULL && nauth == 1 && strncasecmp(a, "bearer", 6) == 0;
        if (good) {
            a += 6;
            while (*a == ' ' || *a == '\t')
                a++;
            good = a != auth + 6 && strlen(a) == tl &&
                   memcmp(a, FUZZ_TOKEN, tl) == 0;
        }
        if (!good)
            fail("a restock without the token", &req, &res);
    }
    http_response_release(&res);
    free(key);
    free(auth);
    free(body);
    free(path);

    /* Keep the belt from filling: a never-started shop is rebuilt. */
    struct shop_snapshot snap;
    shop_snapshot(shop, &snap);
    if (snap.queue_depth >= FUZZ_QUEUE_CAPACITY / 2)
        shop_renew();
    return 0;
}
