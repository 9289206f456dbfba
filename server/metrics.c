/*
 * metrics.c - the Prometheus text exposition (format 0.0.4) of /metrics.
 *
 * Every family gets its # HELP and # TYPE lines; counters end in _total;
 * histograms give cumulative _bucket{le} series ending in +Inf, then _sum
 * and _count, as promtool check metrics expects. Label values (SKUs) are
 * restricted to [A-Za-z0-9_-] by the catalog, so they need no escaping.
 */
#include "server/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    gauge(b, "shopd_workers", "Worker threads.", (double)s.workers);
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
