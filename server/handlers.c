/*
 * handlers.c - routing and the JSON API, free of libmicrohttpd.
 *
 * One static route table maps a path to its handler and its allowed
 * methods; server_handle() picks the route, answers 405 with Allow for a
 * wrong method and 404 for an unknown path, and calls the handler. Every
 * error answer goes through http_error(), the one place that shapes the
 * {"error","message"} body. Handlers only read the shop through its
 * thread-safe API, so they run on any HTTP thread at once.
 */
#include "server/internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_JSON "application/json"

typedef void (*route_fn)(const struct app *app, const struct http_request *req,
                         const char *arg, struct http_response *res);

struct route {
    const char *path; /* exact path, or prefix when `prefix` */
    bool prefix;      /* the rest of the path is the handler's argument */
    bool post;        /* POST only; otherwise GET and HEAD */
    route_fn fn;
};

static void handle_buy(const struct app *, const struct http_request *,
                       const char *, struct http_response *);
static void handle_order(const struct app *, const struct http_request *,
                         const char *, struct http_response *);
static void handle_products(const struct app *, const struct http_request *,
                            const char *, struct http_response *);
static void handle_product(const struct app *, const struct http_request *,
                           const char *, struct http_response *);
static void handle_stats(const struct app *, const struct http_request *,
                         const char *, struct http_response *);
static void handle_metrics(const struct app *, const struct http_request *,
                           const char *, struct http_response *);
static void handle_healthz(const struct app *, const struct http_request *,
                           const char *, struct http_response *);
static void handle_readyz(const struct app *, const struct http_request *,
                          const char *, struct http_response *);
static void handle_dashboard(const struct app *, const struct http_request *,
                             const char *, struct http_response *);
static void handle_events(const struct app *, const struct http_request *,
                          const char *, struct http_response *);

static const struct route routes[] = {
    {"/buy", false, true, handle_buy},
    {"/orders/", true, false, handle_order},
    {"/products", false, false, handle_products},
    {"/products/", true, false, handle_product},
    {"/stats", false, false, handle_stats},
    {"/metrics", false, false, handle_metrics},
    {"/healthz", false, false, handle_healthz},
    {"/readyz", false, false, handle_readyz},
    {"/", false, false, handle_dashboard},
    {"/events", false, false, handle_events},
};

static const char oom_body[] =
    "{\"error\":\"internal\",\"message\":\"out of memory\"}";

void http_response_release(struct http_response *res)
{
    if (!res->body_static)
        free(res->body);
    res->body = NULL;
    res->body_len = 0;
}

/* Give `res` the string built in `b`, or a 500 if building ran out of memory.
 */
static void set_body(struct http_response *res, unsigned status,
                     const char *content_type, struct jbuf *b)
{
    http_response_release(res);
    res->status = status;
    res->content_type = content_type;
    res->body = jb_take(b, &res->body_len);
    res->body_static = false;
    if (res->body == NULL) {
        res->status = 500;
        res->content_type = CT_JSON;
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
    set_body(res, status, CT_JSON, &b);
}

/* --- POST /buy ------------------------------------------------------- */

/* The 202 of an accepted order. */
static void buy_accepted(struct http_response *res, uint64_t id)
{
    struct jbuf b;
    jb_init(&b, 64);
    jb_printf(&b, "{\"order_id\":%llu,\"status\":\"queued\"}",
              (unsigned long long)id);
    set_body(res, 202, CT_JSON, &b);
    char loc[40];
    snprintf(loc, sizeof(loc), "/orders/%llu", (unsigned long long)id);
    http_add_header(res, "Location", loc);
}

/* A durable store's verdict on one order (committer thread): the deferred
 * answer is 202, or 503 store_unavailable when the commit failed. */
static void buy_committed(void *arg, int rc, uint64_t id)
{
    struct http_response res;
    memset(&res, 0, sizeof(res));
    if (rc == 0) {
        buy_accepted(&res, id);
    } else if (rc == -EAGAIN) {
        /* A shared store's belt (every instance's orders) is full. */
        http_error(&res, 503, "queue_full",
                   "the order belt is full; retry in a second");
        http_add_header(&res, "Retry-After", "1");
    } else {
        http_error(&res, 503, "store_unavailable",
                   "the order could not be stored; retry in a second");
        http_add_header(&res, "Retry-After", "1");
    }
    http_deferred_complete(arg, &res);
}

static void handle_buy(const struct app *app, const struct http_request *req,
                       const char *arg, struct http_response *res)
{
    (void)arg;
    char msg[160];
    char sku[SHOP_SKU_MAX + 1];
    struct buy_order bo;

    if (req->body_too_large) {
        snprintf(msg, sizeof(msg), "request body is larger than %zu bytes",
                 app->limits.max_body);
        http_error(res, 413, "body_too_large", msg);
        res->close = true;
        shop_count_invalid(app->shop);
        return;
    }
    switch (buy_parse(req->body, req->body_len, app->limits.max_quantity, &bo,
                      sku, msg, sizeof(msg))) {
    case BUY_OK:
        break;
    case BUY_INVALID_JSON:
        http_error(res, 400, "invalid_json", msg);
        shop_count_invalid(app->shop);
        return;
    case BUY_INVALID_FIELD:
        http_error(res, 400, "invalid_field", msg);
        shop_count_invalid(app->shop);
        return;
    }

    int idx = shop_find_product(app->shop, bo.sku, bo.sku_len);
    if (idx < 0) {
        snprintf(msg, sizeof(msg), "product '%s' is not in the catalog",
                 bo.sku);
        http_error(res, 404, "unknown_product", msg);
        shop_count_invalid(app->shop);
        return;
    }

    struct order o;
    memset(&o, 0, sizeof(o));
    o.product = (uint32_t)idx;
    o.quantity = bo.quantity;
    o.has_customer = bo.has_customer;
    if (bo.has_customer)
        memcpy(o.customer, bo.customer, sizeof(o.customer));

    uint64_t id = 0;
    struct http_deferred *d = NULL;
    int rc;
    if (shop_durable(app->shop)) {
        /* 202 only once the order is committed: answer later. */
        d = http_deferred_create();
        rc = d ? shop_submit_async(app->shop, &o, buy_committed, d) : -ENOMEM;
        if (rc == 0) {
            res->deferred = d;
            return;
        }
        /* Never handed over: drop both references. */
        http_deferred_release(d);
        http_deferred_release(d);
    } else {
        rc = shop_submit(app->shop, &o, &id);
    }
    if (rc == -EAGAIN) {
        http_error(res, 503, "queue_full",
                   "the order belt is full; retry in a second");
        http_add_header(res, "Retry-After", "1");
        return;
    }
    if (rc == -EPIPE) {
        http_error(res, 503, "shutting_down",
                   "the shop is closing and takes no new orders");
        res->close = true;
        return;
    }
    if (rc < 0) {
        http_error(res, 500, "internal", "the order could not be queued");
        return;
    }

    buy_accepted(res, id);
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

static void write_order_by(const struct app *app, const struct order *o,
                           const char *accepted_by, const char *processed_by,
                           struct jbuf *b);

static void write_order(const struct app *app, const struct order *o,
                        struct jbuf *b)
{
    write_order_by(app, o, NULL, NULL, b);
}

/* With a shared store, also who accepted and who processed the order. */
static void write_order_by(const struct app *app, const struct order *o,
                           const char *accepted_by, const char *processed_by,
                           struct jbuf *b)
{
    const struct product *p = shop_product(app->shop, o->product);
    jb_printf(b, "{\"order_id\":%llu,\"product\":", (unsigned long long)o->id);
    jb_str(b, p->sku, strlen(p->sku));
    jb_printf(b, ",\"quantity\":%u,\"customer\":", (unsigned)o->quantity);
    if (o->has_customer)
        jb_str(b, o->customer, strlen(o->customer));
    else
        jb_cstr(b, "null");
    jb_printf(
        b, ",\"status\":\"%s\",\"accepted_at\":", shop_status_name(o->status));
    jb_time(b, o->accepted_ns);
    jb_cstr(b, ",\"processed_at\":");
    if (o->status == ORDER_QUEUED)
        jb_cstr(b, "null,\"worker\":null");
    else {
        jb_time(b, o->processed_ns);
        jb_printf(b, ",\"worker\":%d", (int)o->worker);
    }
    if (accepted_by != NULL) {
        jb_cstr(b, ",\"accepted_by\":");
        jb_str(b, accepted_by, strlen(accepted_by));
        jb_cstr(b, ",\"processed_by\":");
        if (processed_by != NULL && processed_by[0] != '\0')
            jb_str(b, processed_by, strlen(processed_by));
        else
            jb_cstr(b, "null");
    }
    jb_cstr(b, "}");
}

/* --- shared stores: reads answered on the shop's reader thread -------- */

/* A read in flight, with what its answer needs. */
struct deferred_read {
    struct shop_read r;
    const struct app *app;
    struct http_deferred *d;
    int product; /* GET /products/{sku}: its index; -1 for the list */
};

static void store_unavailable(struct http_response *res)
{
    http_error(res, 503, "store_unavailable",
               "the store cannot be read now; retry in a second");
    http_add_header(res, "Retry-After", "1");
}

static void write_product(const struct product *p, const struct shop_stock *s,
                          struct jbuf *b);

/* Reader thread: the answer of a read is in. */
static void read_done(struct shop_read *r)
{
    struct deferred_read *dr = (struct deferred_read *)r;
    const struct app *app = dr->app;
    struct http_response res;
    struct jbuf b;

    memset(&res, 0, sizeof(res));
    if (r->rc == -ENOENT) {
        http_error(&res, 404, "unknown_order",
                   "no such order (never issued, or no longer kept)");
    } else if (r->rc < 0) {
        store_unavailable(&res);
    } else if (r->kind == SHOP_READ_ORDER) {
        jb_init(&b, 400);
        write_order_by(app, &r->order, r->accepted_by, r->processed_by, &b);
        set_body(&res, 200, CT_JSON, &b);
    } else if (dr->product >= 0) {
        jb_init(&b, 160);
        write_product(shop_product(app->shop, (size_t)dr->product),
                      &r->stock[dr->product], &b);
        set_body(&res, 200, CT_JSON, &b);
    } else {
        size_t n = shop_product_count(app->shop);
        jb_init(&b, 128 * n + 8);
        jb_cstr(&b, "[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                jb_cstr(&b, ",");
            write_product(shop_product(app->shop, i), &r->stock[i], &b);
        }
        jb_cstr(&b, "]");
        set_body(&res, 200, CT_JSON, &b);
    }
    http_deferred_complete(dr->d, &res);
    free(r->stock);
    free(dr);
}

/*
 * Hand a read to a shared shop's reader and defer the answer. Returns
 * false (and answers 503 itself) if it could not.
 */
static bool defer_read(const struct app *app, enum shop_read_kind kind,
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
    if (shop_read_async(app->shop, &dr->r) != 0) {
        /* Never handed over: drop both references. */
        http_deferred_release(d);
        http_deferred_release(d);
        goto fail;
    }
    res->deferred = d;
    return true;
fail:
    if (dr)
        free(dr->r.stock);
    free(dr);
    store_unavailable(res);
    return false;
}

static void handle_order(const struct app *app, const struct http_request *req,
                         const char *arg, struct http_response *res)
{
    (void)req;
    uint64_t id;
    if (parse_id(arg, &id) < 0) {
        http_error(res, 400, "invalid_id",
                   "order id must be a positive decimal integer");
        return;
    }
    if (id != 0 && shop_shared(app->shop)) {
        defer_read(app, SHOP_READ_ORDER, id, -1, res);
        return;
    }
    struct order o;
    int rc = id == 0 ? -ENOENT : shop_order(app->shop, id, &o);
    if (rc == -EIO) {
        http_error(res, 503, "store_unavailable",
                   "the store cannot be read now; retry in a second");
        http_add_header(res, "Retry-After", "1");
        return;
    }
    if (rc < 0) {
        http_error(res, 404, "unknown_order",
                   "no such order (never issued, or no longer kept)");
        return;
    }
    struct jbuf b;
    jb_init(&b, 320);
    write_order(app, &o, &b);
    set_body(res, 200, CT_JSON, &b);
}

/* --- GET /products, /products/{sku} ---------------------------------- */

static void write_product(const struct product *p, const struct shop_stock *s,
                          struct jbuf *b)
{
    jb_cstr(b, "{\"sku\":");
    jb_str(b, p->sku, strlen(p->sku));
    jb_cstr(b, ",\"name\":");
    jb_str(b, p->name, strlen(p->name));
    jb_printf(b, ",\"price_cents\":%lld,\"stock\":%lld,\"sold\":%lld}",
              (long long)p->price_cents, (long long)s->stock,
              (long long)s->sold);
}

struct shop_stock *stock_copy(const struct app *app, size_t *n)
{
    *n = shop_product_count(app->shop);
    struct shop_stock *s = calloc(*n, sizeof(*s));
    if (s != NULL)
        shop_stock_all(app->shop, s);
    return s;
}

static void handle_products(const struct app *app,
                            const struct http_request *req, const char *arg,
                            struct http_response *res)
{
    (void)req;
    (void)arg;
    if (shop_shared(app->shop)) {
        defer_read(app, SHOP_READ_PRODUCTS, 0, -1, res);
        return;
    }
    size_t n;
    struct shop_stock *st = stock_copy(app, &n);
    struct jbuf b;
    jb_init(&b, 128 * n + 8);
    if (st == NULL)
        b.oom = true;
    jb_cstr(&b, "[");
    for (size_t i = 0; st != NULL && i < n; i++) {
        if (i)
            jb_cstr(&b, ",");
        write_product(shop_product(app->shop, i), &st[i], &b);
    }
    jb_cstr(&b, "]");
    free(st);
    set_body(res, 200, CT_JSON, &b);
}

static void handle_product(const struct app *app,
                           const struct http_request *req, const char *arg,
                           struct http_response *res)
{
    (void)req;
    int idx = shop_find_product(app->shop, arg, strlen(arg));
    if (idx < 0) {
        http_error(res, 404, "unknown_product",
                   "no product with that sku in the catalog");
        return;
    }
    if (shop_shared(app->shop)) {
        defer_read(app, SHOP_READ_PRODUCTS, 0, idx, res);
        return;
    }
    size_t n;
    struct shop_stock *st = stock_copy(app, &n);
    struct jbuf b;
    jb_init(&b, 160);
    if (st == NULL)
        b.oom = true;
    else
        write_product(shop_product(app->shop, (size_t)idx), &st[idx], &b);
    free(st);
    set_body(res, 200, CT_JSON, &b);
}

/* --- GET /stats ------------------------------------------------------ */

static void write_latency(struct jbuf *b, const char *name,
                          const struct shop_latency *l)
{
    jb_printf(b, "\"%s\":{\"p50\":", name);
    jb_double(b, l->p50);
    jb_cstr(b, ",\"p90\":");
    jb_double(b, l->p90);
    jb_cstr(b, ",\"p99\":");
    jb_double(b, l->p99);
    jb_cstr(b, ",\"max\":");
    jb_double(b, l->max);
    jb_cstr(b, "}");
}

/* "instance" and "store" of /stats: which store, and its own cost. */
static void write_store(const struct app *app, struct jbuf *b)
{
    struct shop_store_stats ss;
    shop_store_stats(app->shop, &ss);
    const char *inst = atomic_load(&app->instance);
    if (inst == NULL)
        inst = "";
    jb_cstr(b, "\"instance\":");
    jb_str(b, inst, strlen(inst));
    jb_printf(b, ",\"store\":{\"kind\":\"%s\",\"available\":%s",
              store_kind_name(ss.store.kind), ss.available ? "true" : "false");
    if (ss.durable) {
        jb_cstr(b, ",\"describe\":");
        jb_str(b, ss.store.describe, strlen(ss.store.describe));
        jb_printf(b,
                  ",\"commits\":%llu,\"failed_commits\":%llu,"
                  "\"committed_orders\":%llu,\"orders_per_commit\":",
                  (unsigned long long)ss.commits,
                  (unsigned long long)ss.failed_commits,
                  (unsigned long long)ss.committed_orders);
        jb_double(b, ss.orders_per_commit);
        jb_cstr(b, ",");
        write_latency(b, "commit_latency_ms", &ss.commit_latency);
        jb_printf(b,
                  ",\"round_trips\":%llu,\"duplicates\":%llu,"
                  "\"restored\":%zu,\"restored_on_belt\":%zu",
                  (unsigned long long)ss.store.round_trips,
                  (unsigned long long)ss.store.duplicates, ss.backlog,
                  ss.backlog_fed);
    }
    struct store_shop fig;
    if (shop_shared(app->shop)) {
        /* Every Redis round trip of this instance (accepts, takes,
         * results, reads) against the orders it accepted. */
        uint64_t acc = ss.store.round_trips ? ss.committed_orders : 0;
        jb_printf(b,
                  ",\"connected\":%s,\"reclaimed\":%llu,"
                  "\"orders_per_round_trip\":",
                  ss.store.available ? "true" : "false",
                  (unsigned long long)ss.store.reclaimed);
        jb_double(b, ss.store.round_trips
                         ? (double)acc / (double)ss.store.round_trips
                         : 0);
        jb_cstr(b, "}");
        bool valid = shop_shared_figures(app->shop, &fig);
        jb_printf(
            b,
            ",\"shop\":{\"valid\":%s,\"accepted\":%llu,"
            "\"rejected_full\":%llu,\"processed\":%llu,\"fulfilled\":%llu,"
            "\"out_of_stock\":%llu,\"double_deliveries\":%llu,"
            "\"reclaimed\":%llu,\"restocked\":%llu,\"belt\":%llu,"
            "\"in_flight\":%llu,\"last_order_id\":%llu,\"instances\":%llu}",
            valid ? "true" : "false", (unsigned long long)fig.accepted,
            (unsigned long long)fig.rejected_full,
            (unsigned long long)fig.processed,
            (unsigned long long)fig.fulfilled,
            (unsigned long long)fig.out_of_stock,
            (unsigned long long)fig.double_deliveries,
            (unsigned long long)fig.reclaimed,
            (unsigned long long)fig.restocked, (unsigned long long)fig.belt,
            (unsigned long long)fig.pending, (unsigned long long)fig.last_id,
            (unsigned long long)fig.consumers);
        return;
    }
    jb_cstr(b, "}");
}

char *server_stats_json(const struct app *app, size_t *len)
{
    struct shop_snapshot s;
    shop_snapshot(app->shop, &s);
    size_t n;
    struct shop_stock *st = stock_copy(app, &n);
    if (st == NULL)
        return NULL;

    struct jbuf b;
    jb_init(&b, 1024 + 96 * n);
    jb_cstr(&b, "{\"uptime_s\":");
    jb_double(&b, s.uptime_s);
    jb_printf(&b,
              ",\"workers\":%zu,\"http_threads\":%u,\"draining\":%s,"
              "\"unsafe_inventory\":%s,",
              s.workers, app->limits.http_threads,
              s.draining ? "true" : "false",
              shop_unsafe(app->shop) ? "true" : "false");
    jb_printf(&b,
              "\"queue\":{\"capacity\":%zu,\"depth\":%zu,\"high_water\":%zu},",
              s.queue_capacity, s.queue_depth, s.queue_high_water);
    jb_printf(
        &b,
        "\"orders\":{\"accepted\":%llu,\"rejected_full\":%llu,"
        "\"rejected_invalid\":%llu,\"processed\":%llu,"
        "\"fulfilled\":%llu,\"out_of_stock\":%llu,\"in_flight\":%llu},",
        (unsigned long long)s.accepted, (unsigned long long)s.rejected_full,
        (unsigned long long)s.rejected_invalid, (unsigned long long)s.processed,
        (unsigned long long)s.fulfilled, (unsigned long long)s.out_of_stock,
        (unsigned long long)s.in_flight);
    jb_cstr(&b, "\"latency_ms\":{");
    write_latency(&b, "queue_wait", &s.queue_wait);
    jb_cstr(&b, ",");
    write_latency(&b, "processing", &s.processing);
    jb_cstr(&b, "},\"throughput\":{\"accepted_per_s\":");
    jb_double(&b, s.accepted_per_s);
    jb_cstr(&b, ",\"processed_per_s\":");
    jb_double(&b, s.processed_per_s);
    jb_cstr(&b, "},\"worker_state\":[");
    for (size_t i = 0; i < shop_worker_count(app->shop); i++)
        jb_printf(&b, "%s{\"busy\":%s,\"processed\":%llu}", i ? "," : "",
                  shop_worker_busy(app->shop, i) ? "true" : "false",
                  (unsigned long long)shop_worker_processed(app->shop, i));
    jb_cstr(&b, "],\"inventory\":{");
    int64_t oversold = 0;
    for (size_t i = 0; i < n; i++) {
        const struct product *p = shop_product(app->shop, i);
        if (i)
            jb_cstr(&b, ",");
        jb_str(&b, p->sku, strlen(p->sku));
        jb_printf(&b,
                  ":{\"stock\":%lld,\"sold\":%lld,\"initial\":%lld,"
                  "\"oversold\":%lld}",
                  (long long)st[i].stock, (long long)st[i].sold,
                  (long long)p->stock, (long long)st[i].oversold);
        oversold += st[i].oversold;
    }
    jb_printf(&b, "},\"oversold\":%lld,", (long long)oversold);
    write_store(app, &b);
    jb_cstr(&b, "}");
    free(st);
    return jb_take(&b, len);
}

static void handle_stats(const struct app *app, const struct http_request *req,
                         const char *arg, struct http_response *res)
{
    (void)req;
    (void)arg;
    http_response_release(res);
    res->status = 200;
    res->content_type = CT_JSON;
    res->body = server_stats_json(app, &res->body_len);
    res->body_static = false;
    if (res->body == NULL)
        http_error(res, 500, "internal", "out of memory");
}

/* --- GET /metrics ---------------------------------------------------- */

static void handle_metrics(const struct app *app,
                           const struct http_request *req, const char *arg,
                           struct http_response *res)
{
    (void)req;
    (void)arg;
    struct jbuf b;
    jb_init(&b, 4096);
    metrics_write(app, &b);
    set_body(res, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
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
        http_error(res, 503, "shutting_down",
                   "draining: not accepting new orders");
        return;
    }
    if (!shop_store_ok(app->shop)) {
        http_error(res, 503, "store_unavailable",
                   "the store cannot be written; retrying by itself");
        http_add_header(res, "Retry-After", "1");
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

static bool is_get(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

void server_handle(const struct app *app, const struct http_request *req,
                   struct http_response *res)
{
    memset(res, 0, sizeof(*res));
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct route *r = &routes[i];
        size_t n = strlen(r->path);
        if (r->prefix ? strncmp(req->path, r->path, n) != 0
                      : strcmp(req->path, r->path) != 0)
            continue;
        bool allowed =
            r->post ? strcmp(req->method, "POST") == 0 : is_get(req->method);
        if (!allowed) {
            http_error(res, 405, "method_not_allowed",
                       r->post ? "use POST" : "use GET or HEAD");
            http_add_header(res, "Allow", r->post ? "POST" : "GET, HEAD");
            return;
        }
        r->fn(app, req, r->prefix ? req->path + n : NULL, res);
        if (shop_draining(app->shop))
            res->close = true;
        return;
    }
    http_error(res, 404, "not_found", "no such endpoint");
}
