/*
 * routes.c - the route table and the handlers, free of libmicrohttpd.
 *
 * One static route table maps a path to its handler and its allowed
 * methods; api_handle() picks the route, answers 405 with Allow for a
 * wrong method and 404 for an unknown path, and calls the handler. Every
 * error answer goes through http_fail() and the table of server/api/errors.h,
 * the one place that names every error; http_error() shapes the
 * {"error","message"} body. Handlers only read the shop through its
 * thread-safe API, so they run on any HTTP thread at once.
 *
 * Idempotency-Key (SPEC §8): a handler that takes a key validates it,
 * computes the request's fingerprint (the canonical request itself, as
 * shop_buy_fingerprint() writes it: for /buy the SKU, the quantity and the
 * customer or its absence, "apple|2|null"; for a restock the SKU and the
 * quantity, "apple|500" - never the raw bytes, so field order, spacing and
 * unknown fields do not matter), and asks the shop's key table
 * whether the key is new, in use, answered for this request (replay) or
 * for another one. Only a success's outcome (the order id, or the
 * restocked product's numbers) is handed back to the table; every other
 * outcome forgets the key so it may be retried. Every answer, first or
 * replayed (from the table or from a durable store's record), is rendered
 * by buy_answer() or restock_answer().
 *
 * Admin (SPEC §9): POST /products/{sku}/restock checks, in this order,
 * the method, that an admin token is configured, the Bearer token
 * (api_token_equal(): both zero-padded to API_TOKEN_MAX bytes and
 * compared over all of them, so neither the token's bytes nor its length
 * show in the timing), then the key, the product and the body. No answer
 * ever contains the token.
 */
#include "server/api/internal.h"

#include "server/api/errors.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_JSON "application/json"

typedef void (*route_fn)(const struct app *app, const struct http_request *req,
                         const char *arg, struct http_response *res);

struct route {
    const char *path;  /* exact path, or prefix when `prefix` */
    bool prefix;       /* the rest of the path is the handler's argument */
    const char *allow; /* the methods served, as the Allow header names them */
    route_fn fn;
    const char *suffix; /* with `prefix`: the path must end so, and the
                           argument is what lies between (one segment) */
};

/* The error of a body buy_parse() or restock_parse() refused. */
static enum http_err parse_error(int rc)
{
    return rc == -EBADMSG ? HTTP_ERR_INVALID_JSON : HTTP_ERR_INVALID_FIELD;
}

/* --- Idempotency-Key ------------------------------------------------- */

/* Every answer of a POST /buy and of a restock, first or replayed: below. */
static void buy_answer(struct http_response *res, int rc, uint64_t id,
                       bool stored);
static void restock_answer(struct http_response *res, int rc,
                           const struct product *p, const struct shop_stock *st,
                           bool stored);

/* A key's replay: the first request's outcome `ans`, rendered by the one
 * place that rendered its first answer (`p` the restocked product, NULL
 * for a POST /buy), marked as a replay. */
static void replay_answer(struct http_response *res, const struct product *p,
                          const struct shop_idem_answer *ans)
{
    if (p == NULL)
        buy_answer(res, 0, ans->order_id, false);
    else
        restock_answer(res, 0, p, &ans->stock, false);
}

enum key_check { KEY_NONE = 0, KEY_OK, KEY_BAD };

/* A key character: '!' to '~' except '"'. */
static bool key_char(char c)
{
    return c >= '!' && c <= '~' && c != '"';
}

/*
 * The request's Idempotency-Key: KEY_NONE if it sent none, KEY_OK with the
 * key (without its quotes, if it was quoted) in `*key` and `*len`, or
 * KEY_BAD for an empty, over-long or malformed key, or two key headers.
 */
static enum key_check request_key(const struct http_request *req,
                                  const char **key, size_t *len)
{
    if (req->idempotency_keys == 0 || req->idempotency_key == NULL)
        return req->idempotency_keys == 0 ? KEY_NONE : KEY_BAD;
    if (req->idempotency_keys > 1)
        return KEY_BAD;
    const char *k = req->idempotency_key;
    size_t n = strlen(k);
    if (n >= 2 && k[0] == '"' && k[n - 1] == '"') {
        k++;
        n -= 2;
    }
    if (n == 0 || n > SHOP_IDEM_KEY_MAX)
        return KEY_BAD;
    for (size_t i = 0; i < n; i++)
        if (!key_char(k[i]))
            return KEY_BAD;
    *key = k;
    *len = n;
    return KEY_OK;
}

static void bad_key(struct http_response *res)
{
    http_fail(res, HTTP_ERR_INVALID_IDEMPOTENCY_KEY,
              "Idempotency-Key must be sent once, as 1-255 characters from "
              "'!' to '~' except '\"', optionally in double quotes");
}

/*
 * Start the key's life for this request. Returns true if the handler goes
 * on processing (a new key: `tk` filled); false if `res` already holds the
 * answer: the replay, a 409 or a 422.
 */
static bool idem_start(const struct app *app, enum shop_idem_scope scope,
                       const struct product *p, const char *key, size_t len,
                       const char *fp, size_t fp_len,
                       struct shop_idem_ticket *tk, struct http_response *res)
{
    struct shop_idem_answer ans;
    int r = shop_idem_begin(app->shop, scope, key, len, fp, fp_len, tk, &ans);
    switch (r) {
    case SHOP_IDEM_NEW:
        return true;
    case SHOP_IDEM_IN_PROGRESS:
        http_fail(res, HTTP_ERR_IDEMPOTENCY_KEY_IN_USE,
                  "a request with this Idempotency-Key is still being "
                  "answered; retry in a second");
        return false;
    case SHOP_IDEM_MISMATCH:
        http_fail(res, HTTP_ERR_IDEMPOTENCY_KEY_REUSED,
                  "this Idempotency-Key was used for a different request");
        return false;
    case SHOP_IDEM_REPLAY:
        replay_answer(res, p, &ans);
        http_add_header(res, "Idempotent-Replayed", "true");
        return false;
    default:
        bad_key(res);
        return false;
    }
}

/* Hand a success's outcome to the key table (`rc` 0), or forget the key. */
static void idem_finish(const struct app *app,
                        const struct shop_idem_ticket *tk, int rc,
                        const struct shop_idem_answer *outcome)
{
    if (rc == 0)
        shop_idem_complete(app->shop, tk, outcome);
    else
        shop_idem_abort(app->shop, tk);
}

/* --- POST /buy ------------------------------------------------------- */

/* The 202 of an accepted order. */
static void buy_accepted(struct http_response *res, uint64_t id)
{
    struct jbuf b;
    jb_init(&b, 64);
    jb_printf(&b, "{\"order_id\":%llu,\"status\":\"queued\"}",
              (unsigned long long)id);
    http_set_body(res, 202, CT_JSON, &b);
    char loc[40];
    snprintf(loc, sizeof(loc), "/orders/%llu", (unsigned long long)id);
    http_add_header(res, "Location", loc);
}

/* An order handed to a durable store's committer, until its verdict. */
struct buy_pending {
    struct http_deferred *d;
    const struct app *app;
    bool keyed; /* it carries an Idempotency-Key: tk holds it */
    struct shop_idem_ticket tk;
    bool drop; /* SPEC §11's drop fault: close instead of answering */
};

/* Give a request handed to a durable store its answer `res` (committer
 * thread): its key remembers a success or is forgotten, then the suspended
 * connection is resumed with the answer. */
static void pending_answer(const struct app *app, bool keyed,
                           const struct shop_idem_ticket *tk, int rc,
                           const struct shop_idem_answer *outcome,
                           struct http_deferred *d, struct http_response *res)
{
    if (keyed)
        idem_finish(app, tk, rc, outcome);
    http_deferred_complete(d, res);
}

/* The words of the failures a buy and a restock share, per endpoint. */
struct failure_words {
    const char *closing;  /* -EPIPE before a store saw it: draining */
    const char *in_use;   /* -EEXIST from the store: its key just stored */
    const char *unknown;  /* -ETIMEDOUT from the store: outcome unknown */
    const char *unstored; /* any other failure of the store */
    const char *internal; /* any other failure before the store */
};

static const struct failure_words buy_words = {
    .closing = "the shop is closing and takes no new orders",
    .in_use = "a request with this Idempotency-Key was just stored; "
              "retry in a second",
    .unknown = "the order may have been taken: retry with the same "
               "Idempotency-Key, or look it up",
    .unstored = "the order could not be stored; retry in a second",
    .internal = "the order could not be queued",
};

static const struct failure_words restock_words = {
    .closing = "the shop is closing and takes no restocks",
    .in_use = "a restock with this Idempotency-Key was just stored; "
              "retry in a second",
    .unknown = "the restock may have been applied: retry with the same "
               "Idempotency-Key, or look the product up",
    .unstored = "the restock could not be stored; retry in a second",
    .internal = "the restock failed",
};

/* The failures a buy and a restock answer alike: `rc` (not 0) is the
 * outcome, `stored` says it came from a durable store's commit rather
 * than from handing the request over. */
static void shared_failure(struct http_response *res, int rc, bool stored,
                           const struct failure_words *w)
{
    if (rc == -EPIPE && !stored)
        http_fail(res, HTTP_ERR_SHUTTING_DOWN, w->closing);
    else if (rc == -EEXIST && stored)
        http_fail(res, HTTP_ERR_IDEMPOTENCY_KEY_IN_USE, w->in_use);
    else if (rc == -ETIMEDOUT && stored)
        /* The store stopped answering mid-commit (SPEC §7): never a 503,
         * which would tell a keyless client that a retry is safe. */
        http_fail(res, HTTP_ERR_OUTCOME_UNKNOWN, w->unknown);
    else if (stored)
        http_fail(res, HTTP_ERR_STORE_UNAVAILABLE, w->unstored);
    else
        http_fail(res, HTTP_ERR_INTERNAL, w->internal);
}

/*
 * Every answer of a POST /buy past validation, in one place: `rc` is the
 * outcome (0: accepted as order `id`), `stored` says it came from a durable
 * store's commit rather than from handing the order over.
 */
static void buy_answer(struct http_response *res, int rc, uint64_t id,
                       bool stored)
{
    if (rc == 0)
        buy_accepted(res, id);
    else if (rc == -EAGAIN)
        /* The belt is full (with a shared store, every instance's). */
        http_fail(res, HTTP_ERR_QUEUE_FULL,
                  "the order belt is full; retry in a second");
    else
        shared_failure(res, rc, stored, &buy_words);
}

/* A durable store's verdict on one order (committer thread): the deferred
 * answer is 202, 409 when the store turned out to hold its key already
 * (the retry is then answered from the store), 504 when the outcome is
 * unknown, or 503 store_unavailable when the commit failed. */
static void buy_committed(void *arg, int rc, uint64_t id)
{
    struct buy_pending *p = arg;
    struct http_response res;
    memset(&res, 0, sizeof(res));
    buy_answer(&res, rc, id, true);
    if (p->keyed) {
        struct shop_idem_answer outcome = {.order_id = id};
        idem_finish(p->app, &p->tk, rc, &outcome);
    }
    /* The key is committed and remembered: now the answer may be lost. */
    struct shop_fault_draw draw = {.drop = p->drop};
    floor_buy_answer(p->app, &draw, rc == 0, &res);
    http_deferred_complete(p->d, &res);
    free(p);
}

/*
 * A key the memory table saw as new may still be in a durable store (kept
 * across restarts, or dropped from the bounded table). Answer from there:
 * a replay or 422, and the memory table learns it. Returns true when `res`
 * is the answer (the ticket is then finished), false to go on.
 */
static bool idem_from_store(const struct app *app, enum shop_idem_scope scope,
                            const struct product *p, const char *key,
                            size_t len, const char *fp, size_t fp_len,
                            const struct shop_idem_ticket *tk,
                            struct http_response *res)
{
    struct shop_idem_answer ans;
    char first[SHOP_IDEM_FP_MAX];
    size_t first_len = 0;
    int rc =
        shop_idem_stored(app->shop, scope, key, len, &ans, first, &first_len);
    if (rc == -ENOENT)
        return false;
    if (rc < 0) {
        http_fail(res, HTTP_ERR_STORE_UNAVAILABLE,
                  "the store cannot be read now; retry in a second");
        shop_idem_abort(app->shop, tk);
        return true;
    }
    if (first_len != fp_len || memcmp(first, fp, fp_len) != 0) {
        http_fail(res, HTTP_ERR_IDEMPOTENCY_KEY_REUSED,
                  "this Idempotency-Key was used for a different request");
        shop_idem_abort(app->shop, tk);
        return true;
    }
    replay_answer(res, p, &ans);
    idem_finish(app, tk, 0, &ans); /* later replays come from memory */
    http_add_header(res, "Idempotent-Replayed", "true");
    return true;
}

/* A keyed request's start: the memory table first, then (a new key) the
 * store, which in memory keeps none. `p` is the restocked product (NULL
 * for a POST /buy): a replay shows it. Returns true to go on processing
 * with `tk`, false when `res` already holds the answer. */
static bool key_begin(const struct app *app, enum shop_idem_scope scope,
                      const struct product *p, const char *key, size_t key_len,
                      const char *fp, size_t fp_len,
                      struct shop_idem_ticket *tk, struct http_response *res)
{
    if (!idem_start(app, scope, p, key, key_len, fp, fp_len, tk, res))
        return false;
    return !idem_from_store(app, scope, p, key, key_len, fp, fp_len, tk, res);
}

/* A POST /buy on its way: the request, once valid, and its key. */
struct buy_req {
    struct order o;
    struct buy_order bo;
    char sku[SHOP_SKU_MAX + 1];
    enum key_check kc;
    const char *key;
    size_t key_len;
    char fp[SHOP_IDEM_FP_MAX];
    size_t fp_len;
    struct shop_idem_ticket tk;
    struct shop_fault_draw draw;
};

/* Validate a POST /buy: its size, its key, its body and its product.
 * Returns true with the order in `br`, or false with the 4xx in `res`
 * (counted as an invalid order). */
static bool buy_read(const struct app *app, const struct http_request *req,
                     struct buy_req *br, struct http_response *res)
{
    char msg[160];
    int prc;
    if (req->body_too_large) {
        snprintf(msg, sizeof(msg), "request body is larger than %zu bytes",
                 app->limits.max_body);
        http_fail(res, HTTP_ERR_BODY_TOO_LARGE, msg);
    } else if ((br->kc = request_key(req, &br->key, &br->key_len)) == KEY_BAD) {
        bad_key(res);
    } else if ((prc = buy_parse(req->body, req->body_len,
                                app->limits.max_quantity, &br->bo, br->sku, msg,
                                sizeof(msg))) < 0) {
        http_fail(res, parse_error(prc), msg);
    } else {
        int idx = shop_find_product(app->shop, br->bo.sku, br->bo.sku_len);
        if (idx >= 0) {
            br->o.product = (uint32_t)idx;
            br->o.quantity = br->bo.quantity;
            br->o.has_customer = br->bo.has_customer;
            if (br->bo.has_customer)
                memcpy(br->o.customer, br->bo.customer, sizeof(br->o.customer));
            return true;
        }
        snprintf(msg, sizeof(msg), "product '%s' is not in the catalog",
                 br->bo.sku);
        http_fail(res, HTTP_ERR_UNKNOWN_PRODUCT, msg);
    }
    shop_count_invalid(app->shop);
    return false;
}

/* Hand the order to a shop that answers later (a durable store: the 202
 * waits for the commit). Returns 0 when `res` is deferred, else a
 * negative errno (nothing handed over). */
static int buy_later(const struct app *app, const struct buy_req *br,
                     struct http_response *res)
{
    struct buy_pending *p = calloc(1, sizeof(*p));
    struct http_deferred *d = p ? http_deferred_create() : NULL;
    int rc = -ENOMEM;
    if (d != NULL) {
        p->d = d;
        p->app = app;
        p->keyed = br->kc == KEY_OK;
        if (p->keyed)
            p->tk = br->tk;
        p->drop = br->draw.drop;
        /* Held before the commit can answer: its 202 waits for both. */
        bool held = br->draw.latency_ms > 0 &&
                    api_timer_hold(app->timer, d, br->draw.latency_ms) == 0;
        struct shop_order_key ok = {br->key, br->key_len, br->fp, br->fp_len};
        rc = shop_buy(app->shop, &br->o, p->keyed ? &ok : NULL, buy_committed,
                      p, NULL);
        /* (Not handed over: the timer drops its own reference.) */
        if (held && rc == SHOP_LATER)
            shop_floor_injected(app->shop, SHOP_FAULT_LATENCY);
    }
    if (rc == SHOP_LATER) {
        res->deferred = d;
        return 0;
    }
    /* Never handed over: drop both references. */
    http_deferred_release(d);
    http_deferred_release(d);
    free(p);
    return rc;
}

static void handle_buy(const struct app *app, const struct http_request *req,
                       const char *arg, struct http_response *res)
{
    (void)arg;
    struct buy_req br;
    memset(&br, 0, sizeof(br));
    if (!buy_read(app, req, &br, res))
        return;
    /* SPEC §11's faults: an injected error takes no order (and no key). */
    shop_floor_draw(app->shop, &br.draw);
    if (br.draw.error) {
        shop_floor_injected(app->shop, SHOP_FAULT_ERROR);
        http_fail(res, HTTP_ERR_INJECTED_FAULT, NULL);
        return;
    }
    if (br.kc == KEY_OK) {
        br.fp_len = shop_buy_fingerprint(
            br.bo.sku, br.bo.quantity,
            br.bo.has_customer ? br.bo.customer : NULL, br.fp);
        if (!key_begin(app, SHOP_IDEM_BUY, NULL, br.key, br.key_len, br.fp,
                       br.fp_len, &br.tk, res))
            return;
    }
    uint64_t id = 0;
    int rc;
    if (shop_answers_later(app->shop)) {
        rc = buy_later(app, &br, res);
        if (rc == 0)
            return;
    } else {
        rc = shop_buy(app->shop, &br.o, NULL, NULL, NULL, &id);
    }
    buy_answer(res, rc, id, false);
    if (br.kc == KEY_OK) {
        struct shop_idem_answer outcome = {.order_id = id};
        idem_finish(app, &br.tk, rc, &outcome);
    }
    floor_buy_answer(app, &br.draw, rc == 0, res);
}

/* --- GET /orders/{id} ------------------------------------------------ */

/* Parse a decimal order id: digits only, no sign, fits in uint64. */
static int parse_id(const char *s, uint64_t *out)
{
    if (*s == '\0' || strlen(s) > 20)
        return -EINVAL;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -EINVAL;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}

/* --- reads: answered at once, or on a shared shop's reader thread ----- */

/* A read in flight, with what its answer needs. */
struct deferred_read {
    struct shop_read r;
    const struct app *app;
    struct http_deferred *d;
    int product; /* GET /products/{sku}: its index; -1 for the list */
};

static void store_unavailable(struct http_response *res)
{
    http_fail(res, HTTP_ERR_STORE_UNAVAILABLE,
              "the store cannot be read now; retry in a second");
}

/* The /stats snapshot, from the shop-wide figures as they are now. */
static void stats_answer(const struct app *app, struct http_response *res)
{
    http_response_release(res);
    res->status = 200;
    res->content_type = CT_JSON;
    res->body = api_stats_json(app, &res->body_len);
    res->body_static = false;
    if (res->body == NULL)
        http_fail(res, HTTP_ERR_INTERNAL, "out of memory");
}

/* Reader thread: the answer of a read is in. */
static void read_done(struct shop_read *r)
{
    struct deferred_read *dr = (struct deferred_read *)r;
    const struct app *app = dr->app;
    struct http_response res;
    struct jbuf b;

    memset(&res, 0, sizeof(res));
    if (r->kind == SHOP_READ_FIGURES) {
        /* Refreshed, or the store cannot be read: /stats answers 200
         * either way, with the last figures and the store's state. */
        stats_answer(app, &res);
    } else if (r->rc == -ENOENT) {
        http_fail(&res, HTTP_ERR_UNKNOWN_ORDER,
                  "no such order (never issued, or no longer kept)");
    } else if (r->rc < 0) {
        store_unavailable(&res);
    } else if (r->kind == SHOP_READ_ORDER) {
        jb_init(&b, 400);
        view_order(app, &r->order, r->named ? r->accepted_by : NULL,
                   r->named ? r->processed_by : NULL, &b);
        http_set_body(&res, 200, CT_JSON, &b);
    } else if (dr->product >= 0) {
        jb_init(&b, 160);
        view_product(shop_product(app->shop, (size_t)dr->product),
                     &r->stock[dr->product], &b);
        http_set_body(&res, 200, CT_JSON, &b);
    } else {
        size_t n = shop_product_count(app->shop);
        jb_init(&b, 128 * n + 8);
        jb_cstr(&b, "[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                jb_cstr(&b, ",");
            view_product(shop_product(app->shop, i), &r->stock[i], &b);
        }
        jb_cstr(&b, "]");
        http_set_body(&res, 200, CT_JSON, &b);
    }
    http_deferred_complete(dr->d, &res);
    free(r->stock);
    free(dr);
}

/*
 * Hand a read to the shop and answer it: at once when the shop answered
 * on this thread (memory, SQLite), or later (a shared store's reader).
 * Answers 503 itself if it could not hand the read over.
 */
static void read_answer(const struct app *app, enum shop_read_kind kind,
                        uint64_t id, int product, struct http_response *res)
{
    struct deferred_read *dr = calloc(1, sizeof(*dr));
    size_t n = shop_product_count(app->shop);

    if (dr != NULL && kind == SHOP_READ_PRODUCTS)
        dr->r.stock = calloc(n, sizeof(*dr->r.stock));
    if (dr == NULL || (kind == SHOP_READ_PRODUCTS && dr->r.stock == NULL))
        goto fail;
    dr->d = http_deferred_create();
    if (dr->d == NULL)
        goto fail;
    dr->app = app;
    dr->product = product;
    dr->r.kind = kind;
    dr->r.id = id;
    dr->r.done = read_done;
    /* Once handed over, the read may be answered (and `dr` freed) at any
     * moment: keep what is still needed here. */
    struct http_deferred *d = dr->d;
    if (shop_read(app->shop, &dr->r) != 0) {
        /* Never handed over: drop both references. */
        http_deferred_release(d);
        http_deferred_release(d);
        goto fail;
    }
    /* Answered already: take the answer, drop the request's reference. */
    if (http_deferred_take(d, res))
        http_deferred_release(d);
    else
        res->deferred = d;
    return;
fail:
    if (dr)
        free(dr->r.stock);
    free(dr);
    if (kind == SHOP_READ_FIGURES)
        stats_answer(app, res); /* the figures as they are */
    else
        store_unavailable(res);
}

static void handle_order(const struct app *app, const struct http_request *req,
                         const char *arg, struct http_response *res)
{
    (void)req;
    uint64_t id;
    if (parse_id(arg, &id) < 0) {
        http_fail(res, HTTP_ERR_INVALID_ID,
                  "order id must be a positive decimal integer");
        return;
    }
    if (id == 0) {
        http_fail(res, HTTP_ERR_UNKNOWN_ORDER,
                  "no such order (never issued, or no longer kept)");
        return;
    }
    read_answer(app, SHOP_READ_ORDER, id, -1, res);
}

/* --- GET /products, /products/{sku} ---------------------------------- */

static void handle_products(const struct app *app,
                            const struct http_request *req, const char *arg,
                            struct http_response *res)
{
    (void)req;
    (void)arg;
    read_answer(app, SHOP_READ_PRODUCTS, 0, -1, res);
}

static void handle_product(const struct app *app,
                           const struct http_request *req, const char *arg,
                           struct http_response *res)
{
    (void)req;
    int idx = shop_find_product(app->shop, arg, strlen(arg));
    if (idx < 0) {
        http_fail(res, HTTP_ERR_UNKNOWN_PRODUCT,
                  "no product with that sku in the catalog");
        return;
    }
    read_answer(app, SHOP_READ_PRODUCTS, 0, idx, res);
}

/* --- POST /products/{sku}/restock ------------------------------------ */

/* Case-insensitive ASCII prefix match. */
static bool starts_nocase(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++) {
        char a = *s, b = *prefix;
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

bool api_token_equal(const char *have, size_t have_len, const char *want,
                     size_t want_len)
{
    /* Both into zero-padded buffers of one size, then every byte of them
     * compared, with no early exit: the time does not depend on where the
     * tokens differ nor on either length. A token that does not fit is
     * unequal (the loop still runs). */
    char a[API_TOKEN_MAX], b[API_TOKEN_MAX];
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    memcpy(a, have, have_len < sizeof(a) ? have_len : sizeof(a));
    memcpy(b, want, want_len < sizeof(b) ? want_len : sizeof(b));
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < sizeof(a); i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    size_t rest = have_len ^ want_len;
    rest |= (size_t)(have_len >= sizeof(a)) | (size_t)(want_len >= sizeof(b));
    bool equal = ((size_t)diff | rest) == 0;
    /* The copies held the token: wipe them (volatile stores, not elided). */
    volatile char *va = a, *vb = b;
    for (size_t i = 0; i < sizeof(a); i++) {
        va[i] = 0;
        vb[i] = 0;
    }
    return equal;
}

/*
 * Whether the request carries exactly one "Authorization: Bearer <token>"
 * with the configured token, compared by api_token_equal() in constant
 * time.
 */
static bool authorized(const struct app *app, const struct http_request *req)
{
    if (req->authorizations != 1 || req->authorization == NULL)
        return false;
    const char *v = req->authorization;
    if (!starts_nocase(v, "bearer") || (v[6] != ' ' && v[6] != '\t'))
        return false;
    v += 6;
    while (*v == ' ' || *v == '\t')
        v++;
    return api_token_equal(v, strlen(v), app->limits.admin_token,
                           app->limits.admin_token_len);
}

bool api_authorized(const struct app *app, const struct http_request *req)
{
    return authorized(app, req);
}

/* A restock handed to a durable store's committer, until its verdict. */
struct restock_pending {
    struct http_deferred *d;
    const struct app *app;
    const struct product *p;
    bool keyed; /* it carries an Idempotency-Key: tk holds it */
    struct shop_idem_ticket tk;
};

/* The 200 of a restock: the product as GET /products/{sku} shows it. */
static void restock_done(struct http_response *res, const struct product *p,
                         const struct shop_stock *st)
{
    struct jbuf b;
    jb_init(&b, 256);
    view_product(p, st, &b);
    http_set_body(res, 200, CT_JSON, &b);
}

/* Every answer of a restock past validation, as buy_answer() for /buy:
 * `rc` is the outcome (0: done, the numbers after it in `st`). */
static void restock_answer(struct http_response *res, int rc,
                           const struct product *p, const struct shop_stock *st,
                           bool stored)
{
    if (rc == 0)
        restock_done(res, p, st);
    else if (rc == -EOVERFLOW && !stored)
        http_fail(res, HTTP_ERR_INVALID_FIELD,
                  "field 'quantity' would take the stock past its limit");
    else
        shared_failure(res, rc, stored, &restock_words);
}

/* A durable store's verdict on one restock (committer thread): 200 with
 * the product once committed, or 409, 504 or 503 as for an order. */
static void restock_committed(void *arg, int rc, const struct shop_stock *st)
{
    struct restock_pending *p = arg;
    struct http_response res;
    memset(&res, 0, sizeof(res));
    restock_answer(&res, rc, p->p, st, true);
    struct shop_idem_answer outcome = {0};
    if (st != NULL)
        outcome.stock = *st;
    pending_answer(p->app, p->keyed, &p->tk, rc, &outcome, p->d, &res);
    free(p);
}

/* Hand a restock to a shop that answers later (a durable store's
 * committer). With a key, the key commits with the restock, remembering
 * the product's numbers after it (the ones this answer shows). Returns 0
 * when `res` is deferred, else a negative errno (nothing handed over). */
static int restock_later(const struct app *app, int idx, unsigned qty,
                         const struct shop_idem_ticket *tk,
                         const struct shop_order_key *key,
                         struct http_response *res)
{
    struct restock_pending *p = calloc(1, sizeof(*p));
    struct http_deferred *d = p ? http_deferred_create() : NULL;
    int rc = -ENOMEM;
    if (d != NULL) {
        p->d = d;
        p->app = app;
        p->p = shop_product(app->shop, (size_t)idx);
        p->keyed = tk != NULL;
        if (tk != NULL)
            p->tk = *tk;
        rc = shop_restock_any(app->shop, (size_t)idx, (int64_t)qty, key,
                              restock_committed, p, NULL);
    }
    if (rc == SHOP_LATER) {
        res->deferred = d;
        return 0;
    }
    http_deferred_release(d);
    http_deferred_release(d);
    free(p);
    return rc;
}

static void handle_restock(const struct app *app,
                           const struct http_request *req, const char *arg,
                           struct http_response *res)
{
    char msg[160];
    if (!app->limits.admin_enabled) {
        http_fail(res, HTTP_ERR_ADMIN_DISABLED,
                  "the admin API is off: start shopd with "
                  "--admin-token-file or SHOPD_ADMIN_TOKEN");
        return;
    }
    if (!authorized(app, req)) {
        http_fail(res, HTTP_ERR_UNAUTHORIZED,
                  "send Authorization: Bearer <admin token>");
        return;
    }
    const char *key = NULL;
    size_t key_len = 0;
    enum key_check kc = request_key(req, &key, &key_len);
    if (kc == KEY_BAD) {
        bad_key(res);
        return;
    }
    int idx = shop_find_product(app->shop, arg, strlen(arg));
    if (idx < 0) {
        http_fail(res, HTTP_ERR_UNKNOWN_PRODUCT,
                  "no product with that sku in the catalog");
        return;
    }
    if (req->body_too_large) {
        snprintf(msg, sizeof(msg), "request body is larger than %zu bytes",
                 app->limits.max_body);
        http_fail(res, HTTP_ERR_BODY_TOO_LARGE, msg);
        return;
    }
    unsigned qty = 0;
    int prc = restock_parse(req->body, req->body_len, &qty, msg, sizeof(msg));
    if (prc < 0) {
        http_fail(res, parse_error(prc), msg);
        return;
    }

    const struct product *p = shop_product(app->shop, (size_t)idx);
    struct shop_idem_ticket tk;
    char fp[SHOP_IDEM_FP_MAX];
    size_t fp_len = 0;
    if (kc == KEY_OK) {
        fp_len = shop_restock_fingerprint(p->sku, qty, fp);
        if (!key_begin(app, SHOP_IDEM_RESTOCK, p, key, key_len, fp, fp_len, &tk,
                       res))
            return;
    }
    struct shop_stock st = {0};
    int rc;
    if (shop_answers_later(app->shop)) {
        /* Committed first, then applied and answered (deferred). */
        struct shop_order_key ok = {key, key_len, fp, fp_len};
        rc = restock_later(app, idx, qty, kc == KEY_OK ? &tk : NULL,
                           kc == KEY_OK ? &ok : NULL, res);
        if (rc == 0)
            return;
    } else {
        rc = shop_restock_any(app->shop, (size_t)idx, (int64_t)qty, NULL, NULL,
                              NULL, &st);
    }
    restock_answer(res, rc, p, &st, false);
    if (kc == KEY_OK) {
        struct shop_idem_answer outcome = {.stock = st};
        idem_finish(app, &tk, rc, &outcome);
    }
}

/* --- GET /stats, /metrics -------------------------------------------- */

static void handle_stats(const struct app *app, const struct http_request *req,
                         const char *arg, struct http_response *res)
{
    (void)req;
    (void)arg;
    /* A shared shop refreshes its shop-wide figures first (on its reader,
     * no HTTP thread waits), so /stats shows every order answered before
     * it was asked; any other shop's figures are live. */
    read_answer(app, SHOP_READ_FIGURES, 0, -1, res);
}

static void handle_metrics(const struct app *app,
                           const struct http_request *req, const char *arg,
                           struct http_response *res)
{
    (void)req;
    (void)arg;
    struct jbuf b;
    jb_init(&b, 4096);
    metrics_write(app, &b);
    http_set_body(res, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

/* --- health, readiness, dashboard, events ---------------------------- */

static void static_body(struct http_response *res, unsigned status,
                        const char *content_type, const char *body, size_t len)
{
    http_response_release(res);
    res->status = status;
    res->content_type = content_type;
    res->body = (char *)body;
    res->body_len = len;
    res->body_static = true;
}

static void handle_healthz(const struct app *app,
                           const struct http_request *req, const char *arg,
                           struct http_response *res)
{
    (void)app;
    (void)req;
    (void)arg;
    static const char ok[] = "{\"status\":\"ok\"}";
    static_body(res, 200, CT_JSON, ok, sizeof(ok) - 1);
}

static void handle_readyz(const struct app *app, const struct http_request *req,
                          const char *arg, struct http_response *res)
{
    (void)req;
    (void)arg;
    static const char ready[] = "{\"status\":\"ready\"}";
    if (shop_draining(app->shop)) {
        http_fail(res, HTTP_ERR_SHUTTING_DOWN,
                  "draining: not accepting new orders");
        return;
    }
    if (!shop_store_ok(app->shop)) {
        http_fail(res, HTTP_ERR_STORE_UNAVAILABLE,
                  "the store cannot be written; retrying by itself");
        return;
    }
    static_body(res, 200, CT_JSON, ready, sizeof(ready) - 1);
}

static void handle_dashboard(const struct app *app,
                             const struct http_request *req, const char *arg,
                             struct http_response *res)
{
    (void)app;
    (void)req;
    (void)arg;
    static_body(res, 200, "text/html; charset=utf-8", dashboard_html,
                (size_t)(dashboard_html_end - dashboard_html));
}

static void handle_openapi(const struct app *app,
                           const struct http_request *req, const char *arg,
                           struct http_response *res)
{
    (void)app;
    (void)req;
    (void)arg;
    static_body(res, 200, CT_JSON, openapi_json,
                (size_t)(openapi_json_end - openapi_json));
}

static void handle_events(const struct app *app, const struct http_request *req,
                          const char *arg, struct http_response *res)
{
    (void)app;
    (void)req;
    (void)arg;
    http_response_release(res);
    res->status = 200;
    res->content_type = "text/event-stream";
    res->stream_events = true;
}

/* --- routing ---------------------------------------------------------- */

static const char GET[] = "GET, HEAD", POST[] = "POST",
                  GET_PATCH[] = "GET, PATCH";

static const struct route routes[] = {
    {"/buy", false, POST, handle_buy, NULL},
    {"/orders/", true, GET, handle_order, NULL},
    {"/products", false, GET, handle_products, NULL},
    {"/products/", true, POST, handle_restock, "/restock"},
    {"/products/", true, GET, handle_product, NULL},
    {"/stats", false, GET, handle_stats, NULL},
    {"/metrics", false, GET, handle_metrics, NULL},
    {"/healthz", false, GET, handle_healthz, NULL},
    {"/readyz", false, GET, handle_readyz, NULL},
    {"/", false, GET, handle_dashboard, NULL},
    {"/events", false, GET, handle_events, NULL},
    {"/openapi.json", false, GET, handle_openapi, NULL},
    {"/admin/floor", false, GET_PATCH, handle_floor, NULL},
};

#define ROUTE_COUNT (sizeof(routes) / sizeof(routes[0]))

/* The methods route `r` serves, as its Allow header names them. */
static const char *route_allow(const struct route *r)
{
    return r->allow;
}

/* Whether `method` is one of the comma-separated names in `allow`. */
static bool method_allowed(const char *allow, const char *method)
{
    size_t n = strlen(method);
    for (const char *p = allow; *p != '\0'; p += strspn(p, ", ")) {
        size_t len = strcspn(p, ", ");
        if (len == n && strncmp(p, method, n) == 0)
            return true;
        p += len;
    }
    return false;
}

size_t api_route_count(void)
{
    return ROUTE_COUNT;
}

void api_route_at(size_t i, struct api_route_info *out)
{
    const struct route *r = &routes[i < ROUTE_COUNT ? i : 0];
    out->path = r->path;
    out->param = r->prefix;
    out->suffix = r->suffix;
    out->allow = route_allow(r);
}

void api_handle(const struct app *app, const struct http_request *req,
                struct http_response *res)
{
    memset(res, 0, sizeof(*res));
    /* A segment between a prefix and a suffix, cut at one byte past the
     * longest SKU: a longer one is unknown anyway. */
    char segment[SHOP_SKU_MAX + 2];
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        const struct route *r = &routes[i];
        size_t n = strlen(r->path);
        if (r->prefix ? strncmp(req->path, r->path, n) != 0
                      : strcmp(req->path, r->path) != 0)
            continue;
        const char *arg = r->prefix ? req->path + n : NULL;
        if (r->suffix != NULL && arg != NULL) {
            size_t len = strlen(arg), sl = strlen(r->suffix);
            if (len <= sl || strcmp(arg + len - sl, r->suffix) != 0 ||
                memchr(arg, '/', len - sl) != NULL)
                continue;
            len -= sl;
            if (len >= sizeof(segment))
                len = sizeof(segment) - 1;
            memcpy(segment, arg, len);
            segment[len] = '\0';
            arg = segment;
        }
        if (!method_allowed(r->allow, req->method)) {
            http_fail(res, HTTP_ERR_METHOD_NOT_ALLOWED, NULL);
            http_add_header(res, "Allow", route_allow(r));
            return;
        }
        r->fn(app, req, arg, res);
        if (shop_draining(app->shop))
            res->close = true;
        return;
    }
    http_fail(res, HTTP_ERR_NOT_FOUND, "no such endpoint");
}
