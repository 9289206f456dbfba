/*
 * views.c - what the API shows, in one place: an order and a product as
 * JSON, the /stats snapshot (also the /events payload), and the Prometheus
 * text of /metrics. Routes (routes.c) decide what to show; this file
 * decides how it looks, so a number added to the shop is added here once.
 *
 * One read per view: shop_report() fills one plain struct (counters, belt,
 * latency, throughput, elves, the bounded inventory, the floor, the
 * store's figures and the shop-wide ones), and view_read() adds the HTTP
 * layer's counts; /stats, /events and /metrics only render that struct.
 * /metrics is the `metrics` table below (name, kind, help, labels, where
 * the value lies in the struct, and which part of the shop it needs),
 * walked by one loop. Rows and /stats sections that need a part the shop
 * lacks (a durable store's journal, a shared store's figures, the HTTP
 * counters) are left out by shown(), the one place here that asks.
 *
 * /metrics is the Prometheus text exposition, format 0.0.4.
 * Every family gets its # HELP and # TYPE lines; counters end in _total;
 * histograms give cumulative _bucket{le} series ending in +Inf, then _sum
 * and _count, as promtool check metrics expects. Label values (SKUs) are
 * restricted to [A-Za-z0-9_-] by the catalog, so they need no escaping.
 */
#include "server/api/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- orders and products ----------------------------------------------- */

void view_order(const struct app *app, const struct order *o,
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

void view_product(const struct product *p, const struct shop_stock *s,
                  struct jbuf *b)
{
    jb_cstr(b, "{\"sku\":");
    jb_str(b, p->sku, strlen(p->sku));
    jb_cstr(b, ",\"name\":");
    jb_str(b, p->name, strlen(p->name));
    jb_printf(b,
              ",\"price_cents\":%lld,\"stock\":%lld,\"sold\":%lld,"
              "\"restocked\":%lld}",
              (long long)p->price_cents, (long long)s->stock,
              (long long)s->sold, (long long)s->restocked);
}

/* --- the report, as the views read it ---------------------------------- */

/* The HTTP layer's counts (SPEC §10), read once per view. */
struct http_figures {
    uint64_t viewers, dropped, open, refused, timed_out;
};

/* What one view renders: the shop's report and the HTTP layer's counts. */
struct view {
    struct shop_report r;
    bool has_http; /* app->http was given (/metrics shows it only then) */
    struct http_figures h;
};

/* Which rows a view shows: the same ones in every mode, less those whose
 * part the shop does not have. The one place here that asks. */
enum shown { SHOWN_ALWAYS = 0, SHOWN_HTTP, SHOWN_DURABLE, SHOWN_SHARED };

static bool shown(const struct view *v, enum shown when)
{
    switch (when) {
    case SHOWN_HTTP:
        return v->has_http;
    case SHOWN_DURABLE:
        return v->r.store.durable;
    case SHOWN_SHARED:
        return v->r.shared;
    default:
        return true;
    }
}

static uint64_t load(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* Read the shop's report and the HTTP counts. Returns 0 or -ENOMEM. */
static int view_read(const struct app *app, struct view *v)
{
    memset(v, 0, sizeof(*v));
    struct http_counters *c = app->http;
    if (c != NULL) {
        v->has_http = true;
        v->h = (struct http_figures){
            load(&c->viewers), load(&c->viewers_dropped), load(&c->conns_open),
            load(&c->conns_refused), load(&c->conns_timed_out)};
    }
    return shop_report(app->shop, &v->r);
}

/* --- /stats ------------------------------------------------------------ */

static const char *yes(bool b)
{
    return b ? "true" : "false";
}

/* Append `v` in decimal: the per-product lines' numbers, thousands per
 * view, without a format string to parse each time. */
static void put_num(struct jbuf *b, uint64_t u, bool minus)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (minus)
        tmp[--i] = '-';
    jb_raw(b, tmp + i, sizeof(tmp) - i);
}

static void put_i64(struct jbuf *b, int64_t v)
{
    put_num(b, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0);
}

/* `text` (a literal), then `v`. */
#define PUT(b, text, v)                                                        \
    do {                                                                       \
        jb_raw((b), (text), sizeof(text) - 1);                                 \
        put_i64((b), (v));                                                     \
    } while (0)

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

/* uptime, workers, the belt and the floor. */
static void stats_floor(const struct app *app, const struct view *v,
                        struct jbuf *b)
{
    const struct shop_snapshot *s = &v->r.snap;
    jb_cstr(b, "{\"uptime_s\":");
    jb_double(b, s->uptime_s);
    jb_printf(b,
              ",\"workers\":%zu,\"http_threads\":%u,\"draining\":%s,"
              "\"unsafe_inventory\":%s,",
              s->workers, app->limits.http_threads, yes(s->draining),
              yes(v->r.unsafe_inventory));
    jb_printf(b,
              "\"queue\":{\"capacity\":%zu,\"depth\":%zu,\"high_water\":%zu},",
              s->queue_capacity, s->queue_depth, s->queue_high_water);
    jb_cstr(b, "\"floor\":"); /* SPEC §11 */
    view_floor(&v->r.floor, true, b);
    jb_cstr(b, ",");
}

/* The orders, the HTTP layer's counts (SPEC §10) and the keys. */
static void stats_orders(const struct view *v, struct jbuf *b)
{
    const struct shop_snapshot *s = &v->r.snap;
    jb_printf(
        b,
        "\"orders\":{\"accepted\":%llu,\"rejected_full\":%llu,"
        "\"rejected_invalid\":%llu,\"processed\":%llu,"
        "\"fulfilled\":%llu,\"out_of_stock\":%llu,\"in_flight\":%llu},",
        (unsigned long long)s->accepted, (unsigned long long)s->rejected_full,
        (unsigned long long)s->rejected_invalid,
        (unsigned long long)s->processed, (unsigned long long)s->fulfilled,
        (unsigned long long)s->out_of_stock, (unsigned long long)s->in_flight);
    jb_printf(b,
              "\"events\":{\"viewers\":%llu,\"dropped\":%llu},"
              "\"connections\":{\"open\":%llu,\"refused\":%llu,"
              "\"timed_out\":%llu},",
              (unsigned long long)v->h.viewers,
              (unsigned long long)v->h.dropped, (unsigned long long)v->h.open,
              (unsigned long long)v->h.refused,
              (unsigned long long)v->h.timed_out);
    jb_printf(b,
              "\"idempotency\":{\"replayed\":%llu,\"in_use\":%llu,"
              "\"mismatched\":%llu,\"keys\":%zu,\"capacity\":%zu},",
              (unsigned long long)s->idem_replayed,
              (unsigned long long)s->idem_in_use,
              (unsigned long long)s->idem_mismatched, s->idem_keys,
              s->idem_capacity);
}

/* Latency, throughput and each elf. */
static void stats_work(const struct view *v, struct jbuf *b)
{
    const struct shop_snapshot *s = &v->r.snap;
    jb_cstr(b, "\"latency_ms\":{");
    write_latency(b, "queue_wait", &s->queue_wait);
    jb_cstr(b, ",");
    write_latency(b, "processing", &s->processing);
    jb_cstr(b, "},\"throughput\":{\"accepted_per_s\":");
    jb_double(b, s->accepted_per_s);
    jb_cstr(b, ",\"processed_per_s\":");
    jb_double(b, s->processed_per_s);
    jb_cstr(b, "},\"worker_state\":[");
    for (size_t i = 0; i < v->r.nworkers; i++)
        jb_printf(b, "%s{\"busy\":%s,\"processed\":%llu}", i ? "," : "",
                  yes(v->r.worker[i].busy),
                  (unsigned long long)v->r.worker[i].processed);
    jb_cstr(b, "],");
}

/* A bounded inventory (the first SHOP_REPORT_PRODUCTS products, in
 * catalog order), so that /stats and every /events tick stay cheap with a
 * catalog of 100,000 products; /products has them all. */
static void stats_inventory(const struct app *app, const struct view *v,
                            struct jbuf *b)
{
    const struct shop_report *r = &v->r;
    jb_printf(b, "\"inventory_total\":%zu,\"inventory_truncated\":%s",
              r->nproducts, yes(r->shown < r->nproducts));
    jb_cstr(b, ",\"inventory\":{");
    for (size_t i = 0; i < r->shown; i++) {
        const struct product *p = shop_product(app->shop, i);
        const struct shop_stock *st = &r->stock[i];
        if (i)
            jb_cstr(b, ",");
        jb_str(b, p->sku, strlen(p->sku));
        PUT(b, ":{\"stock\":", st->stock);
        PUT(b, ",\"sold\":", st->sold);
        PUT(b, ",\"initial\":", p->stock);
        PUT(b, ",\"restocked\":", st->restocked);
        PUT(b, ",\"oversold\":", st->oversold);
        jb_raw(b, "}", 1);
    }
    jb_printf(b, "},\"oversold\":%lld,", (long long)r->oversold);
}

/* A durable store's own cost: its journal's commits. */
static void stats_journal(const struct shop_store_stats *ss, struct jbuf *b)
{
    jb_cstr(b, ",\"describe\":");
    jb_str(b, ss->store.describe, strlen(ss->store.describe));
    jb_printf(b,
              ",\"commits\":%llu,\"failed_commits\":%llu,"
              "\"committed_orders\":%llu,\"orders_per_commit\":",
              (unsigned long long)ss->commits,
              (unsigned long long)ss->failed_commits,
              (unsigned long long)ss->committed_orders);
    jb_double(b, ss->orders_per_commit);
    jb_cstr(b, ",");
    write_latency(b, "commit_latency_ms", &ss->commit_latency);
    jb_printf(b,
              ",\"round_trips\":%llu,\"duplicates\":%llu,"
              "\"restored\":%zu,\"restored_on_belt\":%zu,"
              "\"uncommitted\":%zu",
              (unsigned long long)ss->store.round_trips,
              (unsigned long long)ss->store.duplicates, ss->backlog,
              ss->backlog_fed, ss->uncommitted);
}

/* A shared store: this instance's Redis cost (every round trip: accepts,
 * takes, results, reads, against the orders it committed), then the
 * whole shop's figures. */
static void stats_shared(const struct shop_report *r, struct jbuf *b)
{
    const struct shop_store_stats *ss = &r->store;
    const struct store_shop *f = &r->shop;
    uint64_t rt = ss->store.round_trips;
    jb_printf(b,
              ",\"connected\":%s,\"reclaimed\":%llu,"
              "\"orders_per_round_trip\":",
              yes(ss->store.available),
              (unsigned long long)ss->store.reclaimed);
    jb_double(b, rt ? (double)ss->committed_orders / (double)rt : 0);
    jb_printf(
        b,
        "},\"shop\":{\"valid\":%s,\"accepted\":%llu,"
        "\"rejected_full\":%llu,\"processed\":%llu,\"fulfilled\":%llu,"
        "\"out_of_stock\":%llu,\"double_deliveries\":%llu,"
        "\"reclaimed\":%llu,\"restocked\":%llu,\"belt\":%llu,"
        "\"in_flight\":%llu,\"last_order_id\":%llu,\"instances\":%llu",
        yes(r->shop_valid), (unsigned long long)f->accepted,
        (unsigned long long)f->rejected_full, (unsigned long long)f->processed,
        (unsigned long long)f->fulfilled, (unsigned long long)f->out_of_stock,
        (unsigned long long)f->double_deliveries,
        (unsigned long long)f->reclaimed, (unsigned long long)f->restocked,
        (unsigned long long)f->belt, (unsigned long long)f->pending,
        (unsigned long long)f->last_id, (unsigned long long)f->consumers);
}

/* "instance" and "store" of /stats: which store, and its own cost. */
static void stats_store(const struct app *app, const struct view *v,
                        struct jbuf *b)
{
    const char *inst = atomic_load(&app->instance);
    if (inst == NULL)
        inst = "";
    jb_cstr(b, "\"instance\":");
    jb_str(b, inst, strlen(inst));
    jb_printf(b, ",\"store\":{\"kind\":\"%s\",\"available\":%s",
              v->r.store_kind, yes(v->r.store.available));
    if (shown(v, SHOWN_DURABLE))
        stats_journal(&v->r.store, b);
    if (shown(v, SHOWN_SHARED))
        stats_shared(&v->r, b);
    jb_cstr(b, "}");
}

char *api_stats_json(const struct app *app, size_t *len)
{
    struct view *v = malloc(sizeof(*v));
    if (v == NULL || view_read(app, v) != 0) {
        free(v);
        return NULL;
    }
    struct jbuf b;
    jb_init(&b, 1024 + 96 * v->r.shown + 48 * v->r.nworkers);
    stats_floor(app, v, &b);
    stats_orders(v, &b);
    stats_work(v, &b);
    stats_inventory(app, v, &b);
    stats_store(app, v, &b);
    jb_cstr(&b, "}");
    shop_report_release(&v->r);
    free(v);
    return jb_take(&b, len);
}

/* --- /metrics ----------------------------------------------------------- */

static void family(struct jbuf *b, const char *name, const char *type,
                   const char *help)
{
    jb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* How a row shows its value. */
enum metric_kind {
    M_COUNTER,   /* a family and its series, an integer */
    M_GAUGE,     /* a family and its series, %.15g */
    M_SERIES,    /* one more series of the family above (labels differ) */
    M_HISTOGRAM, /* a struct shop_histogram */
    M_PRODUCT,   /* a family with one series per shown product */
    M_WRITE,     /* its own writer */
};

/* The type of the value at the row's offset. */
enum metric_value { V_U64, V_SIZE, V_I64, V_DOUBLE, V_BOOL };

struct metric;
typedef void (*metric_write_fn)(const struct metric *m, const struct view *v,
                                struct jbuf *b);

/* One row of the exposition. */
struct metric {
    const char *name;
    enum metric_kind kind;
    const char *type; /* M_PRODUCT: "gauge" or "counter" */
    const char *help;
    const char *labels; /* NULL, or the series' labels without braces */
    size_t off; /* into struct view; M_PRODUCT: into struct shop_stock */
    enum metric_value val;
    enum shown when;
    metric_write_fn write; /* M_WRITE */
};

/* The value of row `m` in `v`, as a double and as an integer. */
static double value_of(const struct metric *m, const void *base,
                       unsigned long long *whole)
{
    const char *p = (const char *)base + m->off;
    double d;
    switch (m->val) {
    case V_SIZE:
        *whole = *(const size_t *)(const void *)p;
        return (double)*whole;
    case V_I64:
        *whole = (unsigned long long)*(const int64_t *)(const void *)p;
        return (double)*(const int64_t *)(const void *)p;
    case V_DOUBLE:
        d = *(const double *)(const void *)p;
        *whole = (unsigned long long)d;
        return d;
    case V_BOOL:
        *whole = *(const bool *)(const void *)p ? 1 : 0;
        return (double)*whole;
    default:
        *whole = *(const uint64_t *)(const void *)p;
        return (double)*whole;
    }
}

/* One series: "name{labels} value", in one format call. Gauges take 15
 * significant digits: every count exactly, no binary noise (7.399202177,
 * not 7.3992021770000003). */
static void series(struct jbuf *b, const char *name, const char *labels,
                   bool integer, const struct metric *m, const void *base)
{
    unsigned long long whole;
    double d = value_of(m, base, &whole);
    /* (Four literal formats: each %s costs a scrape's time.) */
    if (labels != NULL && integer)
        jb_printf(b, "%s{%s} %llu\n", name, labels, whole);
    else if (labels != NULL)
        jb_printf(b, "%s{%s} %.15g\n", name, labels, d);
    else if (integer) {
        jb_raw(b, name, strlen(name));
        jb_raw(b, " ", 1);
        put_num(b, whole, false);
        jb_raw(b, "\n", 1);
    } else
        jb_printf(b, "%s %.15g\n", name, d);
}

static void write_histogram(const struct metric *m, const struct view *v,
                            struct jbuf *b)
{
    const struct shop_histogram *h = (const void *)((const char *)v + m->off);
    family(b, m->name, "histogram", m->help);
    for (size_t i = 0; i < SHOP_HIST_BUCKETS; i++)
        jb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", m->name, h->le[i],
                  (unsigned long long)h->cumulative[i]);
    jb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", m->name,
              (unsigned long long)h->count);
    jb_printf(b, "%s_sum %.17g\n%s_count %llu\n", m->name, h->sum_s, m->name,
              (unsigned long long)h->count);
}

/* Per-product series for the first SHOP_REPORT_PRODUCTS products only: a
 * scrape stays small whatever the catalog (as /stats). */
static void write_products(const struct metric *m, const struct view *v,
                           const struct app *app, struct jbuf *b)
{
    family(b, m->name, m->type, m->help);
    size_t len = strlen(m->name);
    for (size_t i = 0; i < v->r.shown; i++) {
        unsigned long long whole;
        value_of(m, &v->r.stock[i], &whole);
        const char *sku = shop_product(app->shop, i)->sku;
        jb_raw(b, m->name, len);
        jb_raw(b, "{sku=\"", 6);
        jb_raw(b, sku, strlen(sku));
        PUT(b, "\"} ", (int64_t)whole);
        jb_raw(b, "\n", 1);
    }
}

static void write_floor(const struct metric *m, const struct view *v,
                        struct jbuf *b)
{
    (void)m;
    metrics_floor(&v->r.floor, b); /* SPEC §11 */
}

/* Milliseconds are all a scrape every few seconds can use. */
static void write_uptime(const struct metric *m, const struct view *v,
                         struct jbuf *b)
{
    family(b, m->name, "gauge", m->help);
    jb_printf(b, "%s %.15g\n", m->name,
              floor(v->r.snap.uptime_s * 1000.0) / 1000.0);
}

static void write_store_info(const struct metric *m, const struct view *v,
                             struct jbuf *b)
{
    family(b, m->name, "gauge", m->help);
    jb_printf(b, "%s{kind=\"%s\"} 1\n", m->name, v->r.store_kind);
}

#define SNAP(f)  offsetof(struct view, r.snap.f)
#define REP(f)   offsetof(struct view, r.f)
#define HTTP(f)  offsetof(struct view, h.f)
#define STOCK(f) offsetof(struct shop_stock, f)

/* The exposition, in order: one row per family (or extra series). */
static const struct metric metrics[] = {
    {.name = "shopd_orders_accepted_total",
     .kind = M_COUNTER,
     .help = "Orders accepted onto the belt (answered 202).",
     .off = SNAP(accepted)},
    {.name = "shopd_orders_rejected_total",
     .kind = M_COUNTER,
     .help = "Orders refused, by reason.",
     .labels = "reason=\"queue_full\"",
     .off = SNAP(rejected_full)},
    {.name = "shopd_orders_rejected_total",
     .kind = M_SERIES,
     .labels = "reason=\"invalid\"",
     .off = SNAP(rejected_invalid)},
    {.name = "shopd_orders_processed_total",
     .kind = M_COUNTER,
     .help = "Orders a worker has finished.",
     .off = SNAP(processed)},
    {.name = "shopd_orders_fulfilled_total",
     .kind = M_COUNTER,
     .help = "Orders fulfilled from stock.",
     .off = SNAP(fulfilled)},
    {.name = "shopd_orders_out_of_stock_total",
     .kind = M_COUNTER,
     .help = "Orders rejected by a worker for lack of stock.",
     .off = SNAP(out_of_stock)},
    {.name = "shopd_orders_in_flight",
     .kind = M_GAUGE,
     .help = "Orders being processed by a worker.",
     .off = SNAP(in_flight)},
    {.name = "shopd_queue_depth",
     .kind = M_GAUGE,
     .help = "Orders waiting on the belt.",
     .off = SNAP(queue_depth),
     .val = V_SIZE},
    {.name = "shopd_queue_capacity",
     .kind = M_GAUGE,
     .help = "Slots on the belt.",
     .off = SNAP(queue_capacity),
     .val = V_SIZE},
    {.name = "shopd_queue_high_water",
     .kind = M_GAUGE,
     .help = "Most orders ever on the belt at once.",
     .off = SNAP(queue_high_water),
     .val = V_SIZE},
    {.name = "shopd_workers",
     .kind = M_GAUGE,
     .help = "Worker threads (the pool's size now).",
     .off = SNAP(workers),
     .val = V_SIZE},
    {.name = "shopd_floor", .kind = M_WRITE, .write = write_floor},
    {.name = "shopd_draining",
     .kind = M_GAUGE,
     .help = "1 while shutting down, else 0.",
     .off = SNAP(draining),
     .val = V_BOOL},
    {.name = "shopd_uptime_seconds",
     .kind = M_WRITE,
     .help = "Seconds since start.",
     .write = write_uptime},
    {.name = "shopd_idempotent_replays_total",
     .kind = M_COUNTER,
     .help = "Requests answered with the remembered answer of their "
             "Idempotency-Key.",
     .off = SNAP(idem_replayed)},
    {.name = "shopd_idempotency_conflicts_total",
     .kind = M_COUNTER,
     .help = "Requests answered 409: their Idempotency-Key was still in use.",
     .off = SNAP(idem_in_use)},
    {.name = "shopd_idempotency_mismatches_total",
     .kind = M_COUNTER,
     .help = "Requests answered 422: their Idempotency-Key was used for "
             "another request.",
     .off = SNAP(idem_mismatched)},
    {.name = "shopd_idempotency_keys",
     .kind = M_GAUGE,
     .help = "Idempotency keys kept now.",
     .off = SNAP(idem_keys),
     .val = V_SIZE},
    {.name = "shopd_idempotency_keys_capacity",
     .kind = M_GAUGE,
     .help = "Most idempotency keys kept (the oldest is dropped first).",
     .off = SNAP(idem_capacity),
     .val = V_SIZE},
    {.name = "shopd_products",
     .kind = M_GAUGE,
     .help = "Products in the catalog.",
     .off = REP(nproducts),
     .val = V_SIZE},
    {.name = "shopd_product_stock",
     .kind = M_PRODUCT,
     .type = "gauge",
     .help = "Units in stock per product.",
     .off = STOCK(stock),
     .val = V_I64},
    {.name = "shopd_product_sold_total",
     .kind = M_PRODUCT,
     .type = "counter",
     .help = "Units sold per product.",
     .off = STOCK(sold),
     .val = V_I64},
    {.name = "shopd_restocked_units_total",
     .kind = M_PRODUCT,
     .type = "counter",
     .help = "Units added by restocks per product.",
     .off = STOCK(restocked),
     .val = V_I64},
    {.name = "shopd_events_viewers",
     .kind = M_GAUGE,
     .help = "Open /events streams.",
     .off = HTTP(viewers),
     .when = SHOWN_HTTP},
    {.name = "shopd_events_dropped_total",
     .kind = M_COUNTER,
     .help = "/events viewers dropped for falling behind.",
     .off = HTTP(dropped),
     .when = SHOWN_HTTP},
    {.name = "shopd_connections_open",
     .kind = M_GAUGE,
     .help = "Open HTTP connections.",
     .off = HTTP(open),
     .when = SHOWN_HTTP},
    {.name = "shopd_connections_refused_total",
     .kind = M_COUNTER,
     .help = "Connections closed at once: over max_connections or "
             "max_connections_per_ip.",
     .off = HTTP(refused),
     .when = SHOWN_HTTP},
    {.name = "shopd_connections_timed_out_total",
     .kind = M_COUNTER,
     .help = "Connections closed because a request had not arrived "
             "within header_timeout (or the next one did not start).",
     .off = HTTP(timed_out),
     .when = SHOWN_HTTP},
    {.name = "shopd_store_info",
     .kind = M_WRITE,
     .help = "The store this instance uses (always 1).",
     .write = write_store_info},
    {.name = "shopd_store_available",
     .kind = M_GAUGE,
     .help = "1 while the store accepts writes, else 0.",
     .off = REP(store.available),
     .val = V_BOOL},
    {.name = "shopd_store_commits_total",
     .kind = M_COUNTER,
     .help = "Commits (atomic store steps), failed ones included.",
     .off = REP(store.commits)},
    {.name = "shopd_store_commit_failures_total",
     .kind = M_COUNTER,
     .help = "Commits that failed.",
     .off = REP(store.failed_commits)},
    {.name = "shopd_store_committed_orders_total",
     .kind = M_COUNTER,
     .help = "Accepts and results made durable.",
     .off = REP(store.committed_orders)},
    {.name = "shopd_store_uncommitted",
     .kind = M_GAUGE,
     .help = "Accepts and results not yet committed, restored orders not yet "
             "on the belt.",
     .off = REP(store.uncommitted),
     .val = V_SIZE},
    {.name = "shopd_store_orders_per_commit",
     .kind = M_GAUGE,
     .help = "Accepts and results per successful commit, on average.",
     .off = REP(store.orders_per_commit),
     .val = V_DOUBLE},
    /* A shared store: this instance's Redis cost, and the shop's figures
     * (every instance's orders, as of the last refresh). */
    {.name = "shopd_store_round_trips_total",
     .kind = M_COUNTER,
     .help = "Redis round trips of this instance.",
     .off = REP(store.store.round_trips),
     .when = SHOWN_SHARED},
    {.name = "shopd_store_reclaimed_total",
     .kind = M_COUNTER,
     .help = "Orders this instance claimed from a dead one.",
     .off = REP(store.store.reclaimed),
     .when = SHOWN_SHARED},
    {.name = "shopd_shop_orders_accepted_total",
     .kind = M_COUNTER,
     .help = "Orders accepted by every instance of the shop.",
     .off = REP(shop.accepted),
     .when = SHOWN_SHARED},
    {.name = "shopd_shop_orders_processed_total",
     .kind = M_COUNTER,
     .help = "Orders finished by every instance of the shop.",
     .off = REP(shop.processed),
     .when = SHOWN_SHARED},
    {.name = "shopd_shop_orders_fulfilled_total",
     .kind = M_COUNTER,
     .help = "Orders fulfilled, shop-wide.",
     .off = REP(shop.fulfilled),
     .when = SHOWN_SHARED},
    {.name = "shopd_shop_orders_out_of_stock_total",
     .kind = M_COUNTER,
     .help = "Orders out of stock, shop-wide.",
     .off = REP(shop.out_of_stock),
     .when = SHOWN_SHARED},
    {.name = "shopd_shop_double_deliveries_total",
     .kind = M_COUNTER,
     .help = "Results that found their order final already (a second "
             "delivery, not applied).",
     .off = REP(shop.double_deliveries),
     .when = SHOWN_SHARED},
    {.name = "shopd_shop_reclaimed_total",
     .kind = M_COUNTER,
     .help = "Orders claimed from a dead instance, shop-wide.",
     .off = REP(shop.reclaimed),
     .when = SHOWN_SHARED},
    {.name = "shopd_shop_belt",
     .kind = M_GAUGE,
     .help = "Orders not final yet, every instance's (queued and taken).",
     .off = REP(shop.belt),
     .when = SHOWN_SHARED},
    {.name = "shopd_store_commit_seconds",
     .kind = M_HISTOGRAM,
     .help = "Time one commit of a batch takes.",
     .off = REP(commit)},
    {.name = "shopd_queue_wait_seconds",
     .kind = M_HISTOGRAM,
     .help = "Time from acceptance until a worker takes the order.",
     .off = REP(queue_wait)},
    {.name = "shopd_processing_seconds",
     .kind = M_HISTOGRAM,
     .help = "Time a worker spends on one order.",
     .off = REP(processing)},
};

#define METRIC_COUNT (sizeof(metrics) / sizeof(metrics[0]))

/* One row of the table. */
static void metric_row(const struct app *app, const struct metric *m,
                       const struct view *v, struct jbuf *b)
{
    switch (m->kind) {
    case M_COUNTER:
    case M_GAUGE:
        family(b, m->name, m->kind == M_COUNTER ? "counter" : "gauge", m->help);
        series(b, m->name, m->labels, m->kind == M_COUNTER, m, v);
        break;
    case M_SERIES: /* the family above is a counter */
        series(b, m->name, m->labels, true, m, v);
        break;
    case M_HISTOGRAM:
        write_histogram(m, v, b);
        break;
    case M_PRODUCT:
        write_products(m, v, app, b);
        break;
    case M_WRITE:
        m->write(m, v, b);
        break;
    }
}

void metrics_write(const struct app *app, struct jbuf *b)
{
    struct view *v = malloc(sizeof(*v));
    if (v == NULL || view_read(app, v) != 0) {
        free(v);
        b->oom = true;
        return;
    }
    for (size_t i = 0; i < METRIC_COUNT; i++)
        if (shown(v, metrics[i].when))
            metric_row(app, &metrics[i], v, b);
    shop_report_release(&v->r);
    free(v);
}
