/*
 * shop/internal.h - private parts of the shop module, shared by its own .c
 * files and by tests/check_shop.c. Nothing outside shop/ and its test may
 * include this header.
 *
 * The shop is split into five objects, each with its own lock (if any):
 *   inventory  (inventory.c) - stock, sold and restocked per product, one
 *                              mutex;
 *   idem_table (idem.c)      - the idempotency keys, one mutex;
 *   orderbook  (orderbook.c) - a fixed ring of the last N orders, striped
 *                              mutexes;
 *   shop_stats (stats.c)     - atomic counters, two latency histograms and
 *                              a tiny throughput ring with its own mutex;
 *   latency_hist (stats.c)   - lock-free log-scale histogram.
 * None of them calls into another, so no two of these locks are ever held
 * at once. Beside them, the store's parts of the floor, built only when
 * the store needs them (NULL otherwise, and then every call does nothing):
 *   committer  (committer.c) - the journal of a durable store: group
 *                              commits of accepts, results and restocks;
 *   shared     (shared.c)    - a shared store's feeder (stream -> this
 *                              instance's belt) and reader.
 * They call into the order book and the inventory, never holding their own
 * lock meanwhile.
 *
 * Thread safety: every function here may be called from any thread between
 * its object's create and destroy.
 */
#ifndef SHOPD_SHOP_INTERNAL_H
#define SHOPD_SHOP_INTERNAL_H

#include "shop/shop.h"

#include "common/time.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Hot fields written by different threads live on different cache lines. */
#define SHOP_CACHE_LINE 64

/* What travels on the belt: the order and when it was put there. */
struct shop_item {
    struct order o;
    int64_t enqueued_mono_ns; /* CLOCK_MONOTONIC at shop_submit() */
};

/*
 * Zeroed memory aligned to a cache line (for structs with _Alignas fields,
 * which plain malloc does not honour). Free with free(). Returns NULL if out
 * of memory.
 */
static inline void *shop_cache_zalloc(size_t size)
{
    size_t rounded =
        (size + SHOP_CACHE_LINE - 1) / SHOP_CACHE_LINE * SHOP_CACHE_LINE;
    void *p = aligned_alloc(SHOP_CACHE_LINE, rounded);

    if (p)
        memset(p, 0, rounded);
    return p;
}

/* ---- inventory.c ------------------------------------------------------ */

struct inventory;

/*
 * Stock of `n` products, initialised from `catalog[i].stock`, or, when
 * `start` is not NULL (a restarted durable shop), from `start[i].stock`,
 * `.sold` and `.restocked`; `catalog[i].stock` is then the stock the
 * product ever had (initial + restocked), for the oversold figure. With
 * `unsafe` set, inventory_take() skips the lock (the demo race). Stores
 * the inventory in `*out` and returns 0, or returns -ENOMEM or the
 * pthread error (and stores NULL).
 */
int inventory_create(const struct product *catalog, size_t n, bool unsafe,
                     const struct shop_stock *start, struct inventory **out);
void inventory_destroy(struct inventory *inv);

/*
 * Take `qty` (> 0) units of product `i`: if there are enough, subtract them
 * from stock, add them to sold and return 0; else change nothing and return
 * -ERANGE (out of stock). Takes the inventory lock (unless unsafe).
 */
int inventory_take(struct inventory *inv, size_t i, int64_t qty);

/* Copy stock, sold, restocked and oversold of every product under one
 * lock hold. */
void inventory_read_all(struct inventory *inv, struct shop_stock *out);

/*
 * Add `qty` (> 0) units to product `i`'s stock and restocked count under
 * the lock (even in unsafe mode), copying its numbers after the change into
 * `out` (may be NULL). Returns 0, or -EOVERFLOW (nothing changed).
 */
int inventory_restock(struct inventory *inv, size_t i, int64_t qty,
                      struct shop_stock *out);

/* ---- idem.c ----------------------------------------------------------- */

struct idem_table;

/*
 * A table of at most `cap` (> 0) keys, each kept `ttl_s` (> 0) seconds, in
 * `*out`. Returns 0, or -EINVAL, -ENOMEM or the pthread error (and stores
 * NULL).
 */
int idem_create(size_t cap, unsigned ttl_s, struct idem_table **out);
void idem_destroy(struct idem_table *t);

/* shop_idem_begin() at time `now_ns` (CLOCK_MONOTONIC); `len` checked. */
enum shop_idem_result idem_begin(struct idem_table *t,
                                 enum shop_idem_scope scope, const char *key,
                                 size_t len, const char *fp, size_t fp_len,
                                 int64_t now_ns, struct shop_idem_ticket *tk,
                                 struct shop_idem_answer *ans);
/* shop_idem_complete() and shop_idem_abort(). */
int idem_complete(struct idem_table *t, const struct shop_idem_ticket *tk,
                  const struct shop_idem_answer *outcome);
void idem_abort(struct idem_table *t, const struct shop_idem_ticket *tk);

/* Fill the idem_* fields of `out`. */
void idem_counts(struct idem_table *t, struct shop_snapshot *out);

/* ---- orderbook.c ------------------------------------------------------ */

struct orderbook;

/* A ring of `history` (> 0) order slots, in `*out`. Returns 0, or -ENOMEM
 * or the pthread error (and stores NULL). */
int orderbook_create(size_t history, struct orderbook **out);
void orderbook_destroy(struct orderbook *b);

/*
 * Record `o` (o->id > 0) in its slot, unless the slot holds a newer order,
 * or holds this order already in a final state and `o` says queued (a fast
 * worker may finish an order before its submitter records it queued).
 */
void orderbook_put(struct orderbook *b, const struct order *o);

/* Copy order `id` into `out`. Returns 0, or -ENOENT if it is not kept. */
int orderbook_get(struct orderbook *b, uint64_t id, struct order *out);

/* ---- stats.c: latency histogram --------------------------------------- */

struct latency_hist;

/* A zeroed histogram, or NULL when out of memory (its only failure). */
struct latency_hist *latency_hist_create(void);
void latency_hist_destroy(struct latency_hist *h);

/* Record one observation of `ns` nanoseconds (negative counts as 0). */
void latency_hist_record(struct latency_hist *h, int64_t ns);

/* Percentiles (ms), max, count and sum; p50 <= p90 <= p99 <= max. */
void latency_hist_summary(struct latency_hist *h, struct shop_latency *out);

/* The fixed Prometheus buckets, cumulative, with count and sum. */
void latency_hist_export(struct latency_hist *h, struct shop_histogram *out);

/* ---- stats.c: counters and throughput --------------------------------- */

struct shop_stats;

/* Zeroed counters in `*out`; uptime counts from `start_mono_ns`. Returns 0,
 * or -ENOMEM or the pthread error (and stores NULL). */
int shop_stats_create(int64_t start_mono_ns, struct shop_stats **out);
void shop_stats_destroy(struct shop_stats *st);

void shop_stats_count_full(struct shop_stats *st);
void shop_stats_count_invalid(struct shop_stats *st);
/* One order done: fulfilled (true) or out of stock (false). */
void shop_stats_count_done(struct shop_stats *st, bool fulfilled);

struct latency_hist *shop_stats_queue_wait(struct shop_stats *st);
struct latency_hist *shop_stats_processing(struct shop_stats *st);

/* Fill the counter, latency and uptime fields of `out`; leave the rest. */
void shop_stats_read(struct shop_stats *st, struct shop_snapshot *out);

/*
 * The accepted and processed rates per second over a recent window, given
 * the current totals; adds a sample to the window at most every 100 ms.
 */
void shop_stats_rate(struct shop_stats *st, uint64_t accepted,
                     uint64_t processed, double *accepted_per_s,
                     double *processed_per_s);

/* ---- committer.c ------------------------------------------------------ */

struct committer;
struct queue;

/*
 * Every committer_* function below but create accepts NULL, the journal of
 * a shop whose store keeps nothing (memory): then it does nothing, refuses
 * accepts and restocks with -EINVAL, and reports nothing pending.
 */

/*
 * The group committer of a durable store `st` (not owned), feeding `belt`
 * and recording in `book`. `held` is the shop's count of reserved belt
 * slots: the committer (and the restorer) release one per order put on the
 * belt or refused. At most `accept_cap` accepts and `result_cap` results
 * wait. `backlog` (`nbacklog` orders, copied) go on the belt first.
 * Stores it in `*out` and returns 0, or returns -ENOMEM or the pthread
 * error (and stores NULL). No thread runs before committer_start().
 */
int committer_create(struct store *st, struct queue *belt,
                     struct orderbook *book, struct inventory *inv,
                     _Atomic size_t *held, size_t accept_cap, size_t result_cap,
                     const struct order *backlog, size_t nbacklog,
                     struct committer **out);
int committer_start(struct committer *c);
/* Hand an accept over (its belt slot is reserved). 0, or -EPIPE once
 * accepts are closed. Never blocks for long (one short lock). */
int committer_accept(struct committer *c, const struct shop_item *it,
                     const struct shop_order_key *key, shop_done_fn done,
                     void *arg);
/* Hand a restock over: committed in the next batch, then applied to the
 * inventory and answered through `done` on the committer thread. 0,
 * -EPIPE once accepts are closed, -ENOMEM. Never blocks for long. */
int committer_restock(struct committer *c, uint32_t product, int64_t qty,
                      const struct shop_order_key *key, shop_restock_fn done,
                      void *arg);
/* Hand a result over (decided, or ORDER_QUEUED for a store that decides);
 * blocks while result_cap results wait. Not with NULL. */
void committer_result(struct committer *c, const struct order *o);
/*
 * Called on the committer thread for each result of a successful commit,
 * with the status the store kept (a store that decides fills it in), and
 * whether this commit applied it (false: the order was final already, a
 * second delivery). Must not block.
 */
typedef void (*committer_done_fn)(void *arg, const struct order *o,
                                  bool applied);
/* Set the hook of committed results; before committer_start(). */
void committer_on_done(struct committer *c, committer_done_fn fn, void *arg);
/* Refuse new accepts; wait until every accepted one and the whole backlog
 * is on the belt. 0 or -ETIMEDOUT past `deadline` (may be NULL). */
int committer_close_accepts(struct committer *c,
                            const struct timespec *deadline);
/* Commit every result left, then stop the thread. 0 or -ETIMEDOUT. */
int committer_finish(struct committer *c, const struct timespec *deadline);
/* Orders not yet durable in their final state or not yet on the belt. */
size_t committer_unfinished(struct committer *c);
void committer_destroy(struct committer *c);
void committer_stats(struct committer *c, struct shop_store_stats *out);
void committer_histogram(struct committer *c, struct shop_histogram *out);
bool committer_available(struct committer *c);
/* Orders committed as accepted so far. */
uint64_t committer_accepted(struct committer *c);
/* Accepts and restocks answered -EIO (503 store_unavailable) so far. */
uint64_t committer_refused(struct committer *c);

/* ---- shared.c: feeder and reader of a shared store (Redis) ----------- */

struct shared;

/*
 * The feeder of `belt` (not owned) from shared store `st` (not owned), and
 * the reader of the shop's current state. At most as many orders are held
 * as `workers` elves finish well within reclaim_ms (see shared.c). Stores
 * it in `*out` and returns 0, or returns -ENOMEM or the pthread error (and
 * stores NULL); no thread runs before shared_start().
 *
 * Every shared_* function below accepts NULL (a store that is not
 * shared) and then does nothing: start 0, read -ENOTSUP, figures false,
 * store_ok true.
 */
int shared_create(struct store *st, struct queue *belt, size_t nproducts,
                  size_t workers, unsigned work_ms, struct shared **out);
/* Start the reader and the feeder. 0 or a negative errno. */
int shared_start(struct shared *sh);
/* Stop taking orders from the store and join the feeder (it waits at most
 * one take, ~100 ms). Controlling thread. */
void shared_stop(struct shared *sh);
/* An elf handed one fed order's result to the journal: room to feed. */
void shared_handed(struct shared *sh);
int shared_read(struct shared *sh, struct shop_read *r);
/* Copy the cached shop-wide figures, and the stock, sold and restocked of
 * the first SHOP_REPORT_PRODUCTS products over `stock`'s (only if valid;
 * either may be NULL). Returns whether they were ever read. */
bool shared_figures(struct shared *sh, struct store_shop *fig,
                    struct shop_stock *stock);
/* Stops the feeder and the reader (after answering queued reads), frees. */
void shared_destroy(struct shared *sh);

/* --- floor.c: the live controls (SPEC §11) ------------------------------ */

struct floor;
struct pool;

/* The floor over this instance's `pool` (not owned; in every store mode),
 * which started with `fixed_workers`; `quick_batch` is the pool's batch
 * when work_ms is 0. Returns 0, -ENOMEM or a pthread error. */
int floor_create(struct pool *pool, size_t fixed_workers, unsigned work_ms,
                 size_t quick_batch, struct floor **out);
void floor_destroy(struct floor *f);
/* Simulated work per order now (an atomic read). */
unsigned floor_work_ms(struct floor *f);
/* The drain: every fault ends. */
void floor_end(struct floor *f);
/* The shop's floor (shop.c). */
struct floor *shop_floor_of(struct shop *s);

/* Copy a store's order into a shop order. */
void shop_order_from_store(const struct store_order *so, struct order *o);

#endif /* SHOPD_SHOP_INTERNAL_H */
