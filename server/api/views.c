/*
 * views.c - what the API shows, in one place: an order and a product as
 * JSON, the /stats snapshot (also the /events payload), and the Prometheus
 * text of /metrics. Routes (routes.c) decide what to show; this file
 * decides how it looks, so a number added to the shop is added here once.
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

void view_product_as(const struct product *p, const char *stock,
                     const char *sold, const char *restocked, struct jbuf *b)
{
    jb_cstr(b, "{\"sku\":");
    jb_str(b, p->sku, strlen(p->sku));
    jb_cstr(b, ",\"name\":");
    jb_str(b, p->name, strlen(p->name));
    jb_printf(b,
              ",\"price_cents\":%lld,\"stock\":%s,\"sold\":%s,"
              "\"restocked\":%s}",
              (long long)p->price_cents, stock, sold, restocked);
}

void view_product(const struct product *p, const struct shop_stock *s,
                  struct jbuf *b)
{
    char stock[24], sold[24], restocked[24];
    snprintf(stock, sizeof(stock), "%lld", (long long)s->stock);
    snprintf(sold, sizeof(sold), "%lld", (long long)s->sold);
    snprintf(restocked, sizeof(restocked), "%lld", (long long)s->restocked);
    view_product_as(p, stock, sold, restocked, b);
}

struct shop_stock *stock_copy(const struct app *app, size_t *n)
{
    *n = shop_product_count(app->shop);
    struct shop_stock *s = calloc(*n, sizeof(*s));
    if (s != NULL)
        shop_stock_all(app->shop, s);
    return s;
}

/* --- /stats ------------------------------------------------------------ */

/* Products shown one by one in /stats, /events and /metrics at most. */
#define VIEW_PRODUCTS_MAX 1000

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

/* The HTTP layer's counts (SPEC §10): /events viewers and connections. */
static void write_http_counters(struct jbuf *b, struct http_counters *c)
{
    struct http_counters zero = {0};
    if (c == NULL)
        c = &zero;
    jb_printf(b,
              "\"events\":{\"viewers\":%llu,\"dropped\":%llu},"
              "\"connections\":{\"open\":%llu,\"refused\":%llu,"
              "\"timed_out\":%llu},",
              (unsigned long long)atomic_load_explicit(&c->viewers,
                                                       memory_order_relaxed),
              (unsigned long long)atomic_load_explicit(&c->viewers_dropped,
                                                       memory_order_relaxed),
              (unsigned long long)atomic_load_explicit(&c->conns_open,
                                                       memory_order_relaxed),
              (unsigned long long)atomic_load_explicit(&c->conns_refused,
                                                       memory_order_relaxed),
              (unsigned long long)atomic_load_explicit(&c->conns_timed_out,
                                                       memory_order_relaxed));
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
                  "\"restored\":%zu,\"restored_on_belt\":%zu,"
                  "\"uncommitted\":%zu",
                  (unsigned long long)ss.store.round_trips,
                  (unsigned long long)ss.store.duplicates, ss.backlog,
                  ss.backlog_fed, ss.uncommitted);
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

char *api_stats_json(const struct app *app, size_t *len)
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
    struct shop_floor fl; /* SPEC §11 */
    shop_floor_get(app->shop, &fl);
    jb_cstr(&b, "\"floor\":");
    view_floor(&fl, true, &b);
    jb_cstr(&b, ",");
    jb_printf(
        &b,
        "\"orders\":{\"accepted\":%llu,\"rejected_full\":%llu,"
        "\"rejected_invalid\":%llu,\"processed\":%llu,"
        "\"fulfilled\":%llu,\"out_of_stock\":%llu,\"in_flight\":%llu},",
        (unsigned long long)s.accepted, (unsigned long long)s.rejected_full,
        (unsigned long long)s.rejected_invalid, (unsigned long long)s.processed,
        (unsigned long long)s.fulfilled, (unsigned long long)s.out_of_stock,
        (unsigned long long)s.in_flight);
    write_http_counters(&b, app->http);
    jb_printf(
        &b,
        "\"idempotency\":{\"replayed\":%llu,\"in_use\":%llu,"
        "\"mismatched\":%llu,\"keys\":%zu,\"capacity\":%zu},",
        (unsigned long long)s.idem_replayed, (unsigned long long)s.idem_in_use,
        (unsigned long long)s.idem_mismatched, s.idem_keys, s.idem_capacity);
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
    /* A bounded inventory (the first VIEW_PRODUCTS_MAX products, in
     * catalog order), so that /stats and every /events tick stay cheap
     * with a catalog of 100,000 products; /products has them all. */
    size_t shown = n < VIEW_PRODUCTS_MAX ? n : VIEW_PRODUCTS_MAX;
    jb_printf(&b, "],\"inventory_total\":%zu,\"inventory_truncated\":%s", n,
              shown < n ? "true" : "false");
    jb_cstr(&b, ",\"inventory\":{");
    int64_t oversold = 0;
    for (size_t i = 0; i < n; i++) {
        if (i >= shown) {
            oversold += st[i].oversold;
            continue;
        }
        const struct product *p = shop_product(app->shop, i);
        if (i)
            jb_cstr(&b, ",");
        jb_str(&b, p->sku, strlen(p->sku));
        jb_printf(&b,
                  ":{\"stock\":%lld,\"sold\":%lld,\"initial\":%lld,"
                  "\"restocked\":%lld,\"oversold\":%lld}",
                  (long long)st[i].stock, (long long)st[i].sold,
                  (long long)p->stock, (long long)st[i].restocked,
                  (long long)st[i].oversold);
        oversold += st[i].oversold;
    }
    jb_printf(&b, "},\"oversold\":%lld,", (long long)oversold);
    write_store(app, &b);
    jb_cstr(&b, "}");
    free(st);
    return jb_take(&b, len);
}

/* --- /metrics ----------------------------------------------------------- */

static void family(struct jbuf *b, const char *name, const char *type,
                   const char *help)
{
    jb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct jbuf *b, const char *name, const char *help,
                    unsigned long long v)
{
    family(b, name, "counter", help);
    jb_printf(b, "%s %llu\n", name, v);
}

/* 15 significant digits: every count exactly, no binary noise
 * (7.399202177, not 7.3992021770000003). */
static void gauge(struct jbuf *b, const char *name, const char *help, double v)
{
    family(b, name, "gauge", help);
    jb_printf(b, "%s %.15g\n", name, v);
}

static void histogram(struct jbuf *b, const char *name, const char *help,
                      const struct shop_histogram *h)
{
    family(b, name, "histogram", help);
    for (size_t i = 0; i < SHOP_HIST_BUCKETS; i++)
        jb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i],
                  (unsigned long long)h->cumulative[i]);
    jb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
              (unsigned long long)h->count);
    jb_printf(b, "%s_sum %.17g\n%s_count %llu\n", name, h->sum_s, name,
              (unsigned long long)h->count);
}

void metrics_write(const struct app *app, struct jbuf *b)
{
    struct shop_snapshot s;
    shop_snapshot(app->shop, &s);

    counter(b, "shopd_orders_accepted_total",
            "Orders accepted onto the belt (answered 202).", s.accepted);
    family(b, "shopd_orders_rejected_total", "counter",
           "Orders refused, by reason.");
    jb_printf(b, "shopd_orders_rejected_total{reason=\"queue_full\"} %llu\n",
              (unsigned long long)s.rejected_full);
    jb_printf(b, "shopd_orders_rejected_total{reason=\"invalid\"} %llu\n",
              (unsigned long long)s.rejected_invalid);
    counter(b, "shopd_orders_processed_total", "Orders a worker has finished.",
            s.processed);
    counter(b, "shopd_orders_fulfilled_total", "Orders fulfilled from stock.",
            s.fulfilled);
    counter(b, "shopd_orders_out_of_stock_total",
            "Orders rejected by a worker for lack of stock.", s.out_of_stock);
    gauge(b, "shopd_orders_in_flight", "Orders being processed by a worker.",
          (double)s.in_flight);
    gauge(b, "shopd_queue_depth", "Orders waiting on the belt.",
          (double)s.queue_depth);
    gauge(b, "shopd_queue_capacity", "Slots on the belt.",
          (double)s.queue_capacity);
    gauge(b, "shopd_queue_high_water", "Most orders ever on the belt at once.",
          (double)s.queue_high_water);
    gauge(b, "shopd_workers", "Worker threads (the pool's size now).",
          (double)s.workers);
    struct shop_floor fl; /* SPEC §11 */
    shop_floor_get(app->shop, &fl);
    metrics_floor(&fl, b);
    gauge(b, "shopd_draining", "1 while shutting down, else 0.",
          s.draining ? 1 : 0);
    /* Milliseconds are all a scrape every few seconds can use. */
    gauge(b, "shopd_uptime_seconds", "Seconds since start.",
          floor(s.uptime_s * 1000.0) / 1000.0);
    counter(b, "shopd_idempotent_replays_total",
            "Requests answered with the remembered answer of their "
            "Idempotency-Key.",
            s.idem_replayed);
    counter(b, "shopd_idempotency_conflicts_total",
            "Requests answered 409: their Idempotency-Key was still in use.",
            s.idem_in_use);
    counter(b, "shopd_idempotency_mismatches_total",
            "Requests answered 422: their Idempotency-Key was used for "
            "another request.",
            s.idem_mismatched);
    gauge(b, "shopd_idempotency_keys", "Idempotency keys kept now.",
          (double)s.idem_keys);
    gauge(b, "shopd_idempotency_keys_capacity",
          "Most idempotency keys kept (the oldest is dropped first).",
          (double)s.idem_capacity);

    size_t n;
    struct shop_stock *st = stock_copy(app, &n);
    if (st == NULL) {
        b->oom = true;
        return;
    }
    /* Per-product series for the first VIEW_PRODUCTS_MAX products only:
     * a scrape stays small whatever the catalog (as /stats). */
    gauge(b, "shopd_products", "Products in the catalog.", (double)n);
    if (n > VIEW_PRODUCTS_MAX)
        n = VIEW_PRODUCTS_MAX;
    family(b, "shopd_product_stock", "gauge", "Units in stock per product.");
    for (size_t i = 0; i < n; i++)
        jb_printf(b, "shopd_product_stock{sku=\"%s\"} %lld\n",
                  shop_product(app->shop, i)->sku, (long long)st[i].stock);
    family(b, "shopd_product_sold_total", "counter", "Units sold per product.");
    for (size_t i = 0; i < n; i++)
        jb_printf(b, "shopd_product_sold_total{sku=\"%s\"} %lld\n",
                  shop_product(app->shop, i)->sku, (long long)st[i].sold);
    family(b, "shopd_restocked_units_total", "counter",
           "Units added by restocks per product.");
    for (size_t i = 0; i < n; i++)
        jb_printf(b, "shopd_restocked_units_total{sku=\"%s\"} %lld\n",
                  shop_product(app->shop, i)->sku, (long long)st[i].restocked);
    free(st);

    if (app->http != NULL) {
        struct http_counters *h = app->http;
        gauge(b, "shopd_events_viewers", "Open /events streams.",
              (double)atomic_load_explicit(&h->viewers, memory_order_relaxed));
        counter(
            b, "shopd_events_dropped_total",
            "/events viewers dropped for falling behind.",
            atomic_load_explicit(&h->viewers_dropped, memory_order_relaxed));
        gauge(
            b, "shopd_connections_open", "Open HTTP connections.",
            (double)atomic_load_explicit(&h->conns_open, memory_order_relaxed));
        counter(b, "shopd_connections_refused_total",
                "Connections closed at once: over max_connections or "
                "max_connections_per_ip.",
                atomic_load_explicit(&h->conns_refused, memory_order_relaxed));
        counter(
            b, "shopd_connections_timed_out_total",
            "Connections closed because a request had not arrived "
            "within header_timeout (or the next one did not start).",
            atomic_load_explicit(&h->conns_timed_out, memory_order_relaxed));
    }

    struct shop_store_stats ss;
    shop_store_stats(app->shop, &ss);
    family(b, "shopd_store_info", "gauge",
           "The store this instance uses (always 1).");
    jb_printf(b, "shopd_store_info{kind=\"%s\"} 1\n",
              store_kind_name(ss.store.kind));
    gauge(b, "shopd_store_available",
          "1 while the store accepts writes, else 0.", ss.available ? 1 : 0);
    counter(b, "shopd_store_commits_total",
            "Commits (atomic store steps), failed ones included.", ss.commits);
    counter(b, "shopd_store_commit_failures_total", "Commits that failed.",
            ss.failed_commits);
    counter(b, "shopd_store_committed_orders_total",
            "Accepts and results made durable.", ss.committed_orders);
    gauge(b, "shopd_store_uncommitted",
          "Accepts and results not yet committed, restored orders not yet "
          "on the belt.",
          (double)ss.uncommitted);
    gauge(b, "shopd_store_orders_per_commit",
          "Accepts and results per successful commit, on average.",
          ss.orders_per_commit);

    struct store_shop fig;
    if (shop_shared(app->shop)) {
        /* This instance's Redis cost, and the shop's figures (every
         * instance's orders, as of the last refresh). */
        counter(b, "shopd_store_round_trips_total",
                "Redis round trips of this instance.", ss.store.round_trips);
        counter(b, "shopd_store_reclaimed_total",
                "Orders this instance claimed from a dead one.",
                ss.store.reclaimed);
        shop_shared_figures(app->shop, &fig);
        counter(b, "shopd_shop_orders_accepted_total",
                "Orders accepted by every instance of the shop.", fig.accepted);
        counter(b, "shopd_shop_orders_processed_total",
                "Orders finished by every instance of the shop.",
                fig.processed);
        counter(b, "shopd_shop_orders_fulfilled_total",
                "Orders fulfilled, shop-wide.", fig.fulfilled);
        counter(b, "shopd_shop_orders_out_of_stock_total",
                "Orders out of stock, shop-wide.", fig.out_of_stock);
        counter(b, "shopd_shop_double_deliveries_total",
                "Results that found their order final already (a second "
                "delivery, not applied).",
                fig.double_deliveries);
        counter(b, "shopd_shop_reclaimed_total",
                "Orders claimed from a dead instance, shop-wide.",
                fig.reclaimed);
        gauge(b, "shopd_shop_belt",
              "Orders not final yet, every instance's (queued and taken).",
              (double)fig.belt);
    }

    struct shop_histogram qw, pr, cl;
    shop_commit_histogram(app->shop, &cl);
    histogram(b, "shopd_store_commit_seconds",
              "Time one commit of a batch takes.", &cl);
    shop_histograms(app->shop, &qw, &pr);
    histogram(b, "shopd_queue_wait_seconds",
              "Time from acceptance until a worker takes the order.", &qw);
    histogram(b, "shopd_processing_seconds",
              "Time a worker spends on one order.", &pr);
}
