/*
 * stats.c - the shop's counters, latency histograms and throughput.
 *
 * Counters only ever grow, so they are relaxed atomics: a snapshot reads
 * each exactly but not all at one instant. Counters written by HTTP threads
 * (rejections) and by workers (processed, ...) sit on separate cache lines.
 *
 * A latency histogram has two sets of atomic buckets, both lock-free:
 *   - fine log-scale buckets over microseconds (8 per power of two, so a
 *     bucket is at most 12.5% wide, up to 2^32 us, about 71 minutes) for the
 *     p50/p90/p99 of /stats, interpolated inside the bucket;
 *   - the 16 fixed Prometheus buckets (seconds) of /metrics, counted
 *     directly so that their bounds are exact.
 * Its count is derived from the buckets it is reported with, so a report is
 * self-consistent even while workers record.
 *
 * Throughput over a recent window: shop_stats_rate() keeps a small ring of
 * (time, accepted, processed) samples, adding one at most every
 * RATE_EVERY_NS, and reports the rate against the oldest sample of the last
 * RATE_WINDOW_NS (or the newest older one, or the start), skipping
 * samples younger than RATE_MIN_AGE_NS as too noisy. It costs nothing
 * per order, only a short walk per snapshot.
 *
 * Lock order: only `rate_lock`, never held with another lock; no I/O or
 * allocation while held.
 */
#include "shop/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#define HIST_SUB_BITS 3
#define HIST_SUB      (1u << HIST_SUB_BITS) /* sub-buckets per power of 2 */
#define HIST_MAX_LOG2 31                    /* top bucket ends at 2^32 us */
#define HIST_FINE     (HIST_SUB + (HIST_MAX_LOG2 - HIST_SUB_BITS + 1) * HIST_SUB)
#define HIST_LIMIT_US ((UINT64_C(1) << (HIST_MAX_LOG2 + 1)) - 1)

#define RATE_SAMPLES    64
#define RATE_EVERY_NS   (100 * NS_PER_MS)
#define RATE_WINDOW_NS  (5 * NS_PER_S)
#define RATE_MIN_AGE_NS (50 * NS_PER_MS)

/* Upper bounds of the Prometheus buckets, in ns and in seconds. */
static const int64_t prom_le_ns[SHOP_HIST_BUCKETS] = {
    100000,     250000,     500000,     1000000,     2500000,   5000000,
    10000000,   25000000,   50000000,   100000000,   250000000, 500000000,
    1000000000, 2500000000, 5000000000, 10000000000,
};
static const double prom_le_s[SHOP_HIST_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,
};

struct latency_hist {
    _Atomic uint64_t fine[HIST_FINE]; /* log-scale buckets over us */
    /* Prometheus buckets, not cumulative; the last one is above 10 s. */
    _Atomic uint64_t prom[SHOP_HIST_BUCKETS + 1];
    _Atomic uint64_t sum_ns;
    _Atomic uint64_t max_ns;
};

struct rate_sample {
    int64_t t_ns; /* CLOCK_MONOTONIC */
    uint64_t accepted, processed;
};

struct shop_stats {
    /* Written by HTTP threads. */
    _Alignas(SHOP_CACHE_LINE) _Atomic uint64_t rejected_full;
    _Atomic uint64_t rejected_invalid;
    /* Written by workers. */
    _Alignas(SHOP_CACHE_LINE) _Atomic uint64_t processed;
    _Atomic uint64_t fulfilled;
    _Atomic uint64_t out_of_stock;
    _Alignas(SHOP_CACHE_LINE) struct latency_hist queue_wait;
    _Alignas(SHOP_CACHE_LINE) struct latency_hist processing;
    /* guards rate[], rate_head and rate_len */
    _Alignas(SHOP_CACHE_LINE) pthread_mutex_t rate_lock;
    struct rate_sample rate[RATE_SAMPLES];
    size_t rate_head;      /* next slot to write */
    size_t rate_len;       /* samples kept, <= RATE_SAMPLES */
    int64_t start_mono_ns; /* read-only after create */
    bool lock_ready;       /* rate_lock initialised (create/destroy) */
};

/* ---- latency histogram ------------------------------------------------ */

static size_t fine_bucket(uint64_t us)
{
    unsigned e;

    if (us < HIST_SUB)
        return (size_t)us;
    if (us > HIST_LIMIT_US)
        us = HIST_LIMIT_US;
    e = 63u - (unsigned)__builtin_clzll(us); /* >= HIST_SUB_BITS */
    return HIST_SUB + (size_t)(e - HIST_SUB_BITS) * HIST_SUB +
           (size_t)((us >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* The bounds [lo, hi) of fine bucket `b`, in microseconds. */
static void fine_bounds(size_t b, double *lo, double *hi)
{
    size_t e, sub;

    if (b < HIST_SUB) {
        *lo = (double)b;
        *hi = (double)b + 1;
        return;
    }
    e = HIST_SUB_BITS + (b - HIST_SUB) / HIST_SUB;
    sub = (b - HIST_SUB) % HIST_SUB;
    *lo = (double)((HIST_SUB + sub) << (e - HIST_SUB_BITS));
    *hi = (double)((HIST_SUB + sub + 1) << (e - HIST_SUB_BITS));
}

struct latency_hist *latency_hist_create(void)
{
    return shop_cache_zalloc(sizeof(struct latency_hist));
}

void latency_hist_destroy(struct latency_hist *h)
{
    free(h);
}

void latency_hist_record(struct latency_hist *h, int64_t ns)
{
    uint64_t v = ns > 0 ? (uint64_t)ns : 0;
    uint64_t max = atomic_load_explicit(&h->max_ns, memory_order_relaxed);
    size_t p = 0;

    atomic_fetch_add_explicit(&h->fine[fine_bucket(v / 1000)], 1,
                              memory_order_relaxed);
    while (p < SHOP_HIST_BUCKETS && (int64_t)v > prom_le_ns[p])
        p++;
    atomic_fetch_add_explicit(&h->prom[p], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, v, memory_order_relaxed);
    while (v > max &&
           !atomic_compare_exchange_weak_explicit(
               &h->max_ns, &max, v, memory_order_relaxed, memory_order_relaxed))
        ;
}

/* The value (us) below which a share `q` of the `total` observations lie. */
static double fine_quantile(const uint64_t *counts, uint64_t total, double q)
{
    uint64_t rank = (uint64_t)(q * (double)total + 0.999999);
    uint64_t below = 0;
    double lo, hi;

    if (rank < 1)
        rank = 1;
    if (rank > total)
        rank = total;
    for (size_t b = 0; b < HIST_FINE; b++) {
        if (below + counts[b] >= rank) {
            fine_bounds(b, &lo, &hi);
            return lo + (hi - lo) * (double)(rank - below) / (double)counts[b];
        }
        below += counts[b];
    }
    return 0; /* not reached: the counts add up to total */
}

void latency_hist_summary(struct latency_hist *h, struct shop_latency *out)
{
    uint64_t counts[HIST_FINE];
    uint64_t total = 0;
    double max_ms;

    for (size_t b = 0; b < HIST_FINE; b++) {
        counts[b] = atomic_load_explicit(&h->fine[b], memory_order_relaxed);
        total += counts[b];
    }
    max_ms =
        (double)atomic_load_explicit(&h->max_ns, memory_order_relaxed) / 1e6;
    out->count = total;
    out->sum_ms =
        (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e6;
    out->max = max_ms;
    if (total == 0) {
        out->p50 = out->p90 = out->p99 = 0;
        return;
    }
    /* Interpolated values are monotone in q; clamping keeps them <= max. */
    out->p50 = fine_quantile(counts, total, 0.50) / 1e3;
    out->p90 = fine_quantile(counts, total, 0.90) / 1e3;
    out->p99 = fine_quantile(counts, total, 0.99) / 1e3;
    if (out->p50 > max_ms)
        out->p50 = max_ms;
    if (out->p90 > max_ms)
        out->p90 = max_ms;
    if (out->p99 > max_ms)
        out->p99 = max_ms;
}

void latency_hist_export(struct latency_hist *h, struct shop_histogram *out)
{
    uint64_t cum = 0;

    for (size_t i = 0; i < SHOP_HIST_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->prom[i], memory_order_relaxed);
        out->le[i] = prom_le_s[i];
        out->cumulative[i] = cum;
    }
    cum +=
        atomic_load_explicit(&h->prom[SHOP_HIST_BUCKETS], memory_order_relaxed);
    out->count = cum;
    out->sum_s =
        (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
}

/* ---- counters and throughput ------------------------------------------ */

int shop_stats_create(int64_t start_mono_ns, struct shop_stats **out)
{
    struct shop_stats *st = shop_cache_zalloc(sizeof(*st));
    int err = -ENOMEM;

    if (!st)
        goto fail;
    err = -pthread_mutex_init(&st->rate_lock, NULL);
    if (err)
        goto fail;
    st->lock_ready = true;
    st->start_mono_ns = start_mono_ns;
    *out = st;
    return 0;

fail:
    shop_stats_destroy(st);
    *out = NULL;
    return err;
}

void shop_stats_destroy(struct shop_stats *st)
{
    if (!st)
        return;
    if (st->lock_ready)
        pthread_mutex_destroy(&st->rate_lock);
    free(st);
}

void shop_stats_count_full(struct shop_stats *st)
{
    atomic_fetch_add_explicit(&st->rejected_full, 1, memory_order_relaxed);
}

void shop_stats_count_invalid(struct shop_stats *st)
{
    atomic_fetch_add_explicit(&st->rejected_invalid, 1, memory_order_relaxed);
}

void shop_stats_count_done(struct shop_stats *st, bool fulfilled)
{
    atomic_fetch_add_explicit(fulfilled ? &st->fulfilled : &st->out_of_stock, 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&st->processed, 1, memory_order_relaxed);
}

struct latency_hist *shop_stats_queue_wait(struct shop_stats *st)
{
    return &st->queue_wait;
}

struct latency_hist *shop_stats_processing(struct shop_stats *st)
{
    return &st->processing;
}

static double per_second(uint64_t now, uint64_t then, int64_t dt_ns)
{
    if (dt_ns <= 0 || now <= then)
        return 0;
    return (double)(now - then) * 1e9 / (double)dt_ns;
}

/* Rates of `cur` against a recent sample; add `cur` to the ring if due. */
static void rate_update(struct shop_stats *st, const struct rate_sample *cur,
                        double *accepted_per_s, double *processed_per_s)
{
    struct rate_sample ref = {st->start_mono_ns, 0, 0};
    const struct rate_sample *newest = NULL;

    pthread_mutex_lock(&st->rate_lock);
    for (size_t i = 0; i < st->rate_len; i++) {
        const struct rate_sample *s =
            &st->rate[(st->rate_head + RATE_SAMPLES - st->rate_len + i) %
                      RATE_SAMPLES];

        /* Too short a base gives noise (and a concurrent reader may have
         * added a sample after our clock read): use an older one. */
        if (cur->t_ns - s->t_ns < RATE_MIN_AGE_NS)
            break;
        ref = *s;
        if (cur->t_ns - s->t_ns <= RATE_WINDOW_NS)
            break; /* the oldest sample inside the window */
    }
    if (st->rate_len > 0)
        newest = &st->rate[(st->rate_head + RATE_SAMPLES - 1) % RATE_SAMPLES];
    if (!newest || cur->t_ns - newest->t_ns >= RATE_EVERY_NS) {
        st->rate[st->rate_head] = *cur;
        st->rate_head = (st->rate_head + 1) % RATE_SAMPLES;
        if (st->rate_len < RATE_SAMPLES)
            st->rate_len++;
    }
    pthread_mutex_unlock(&st->rate_lock);

    *accepted_per_s =
        per_second(cur->accepted, ref.accepted, cur->t_ns - ref.t_ns);
    *processed_per_s =
        per_second(cur->processed, ref.processed, cur->t_ns - ref.t_ns);
}

void shop_stats_read(struct shop_stats *st, struct shop_snapshot *out)
{
    int64_t now = time_now_ns(CLOCK_MONOTONIC);

    out->uptime_s = (double)(now - st->start_mono_ns) / 1e9;
    out->rejected_full =
        atomic_load_explicit(&st->rejected_full, memory_order_relaxed);
    out->rejected_invalid =
        atomic_load_explicit(&st->rejected_invalid, memory_order_relaxed);
    out->processed = atomic_load_explicit(&st->processed, memory_order_relaxed);
    out->fulfilled = atomic_load_explicit(&st->fulfilled, memory_order_relaxed);
    out->out_of_stock =
        atomic_load_explicit(&st->out_of_stock, memory_order_relaxed);
    latency_hist_summary(&st->queue_wait, &out->queue_wait);
    latency_hist_summary(&st->processing, &out->processing);
}

void shop_stats_rate(struct shop_stats *st, uint64_t accepted,
                     uint64_t processed, double *accepted_per_s,
                     double *processed_per_s)
{
    struct rate_sample cur = {time_now_ns(CLOCK_MONOTONIC), accepted,
                              processed};

    rate_update(st, &cur, accepted_per_s, processed_per_s);
}
