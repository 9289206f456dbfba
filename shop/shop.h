/*
 * shop.h - the shop floor: catalog, inventory, order book, statistics, and
 * the belt (a channel) with its worker pool, one floor in every store mode.
 *
 *   shop_submit ──try_send──▶ [ channel ] ──recv──▶ workers ──lock──▶ inventory
 *   (memory)                      ▲                        └──▶ order book,
 *   shop_submit_async ─▶ journal ─┘ (sqlite; redis: via the      stats
 *   (durable stores)                shared stream and a feeder)
 *
 * Every order this instance processes, in every store mode, comes off this
 * instance's belt and is handled by the pool of worker/. A durable store
 * is a journal behind the belt (shop.c's design note says how).
 *
 * The shop knows nothing of HTTP or JSON: the server validates requests and
 * formats answers; the shop takes orders and reports numbers. The server
 * makes one call per action, the same in every mode (shop_buy,
 * shop_restock_any, shop_read: answered at once or later, as
 * shop_answers_later() says), and reads every number it shows with one
 * shop_report() per request.
 *
 * Thread safety: from shop_create() until shop_destroy(), every function
 * except shop_create/shop_start/shop_drain/shop_destroy may be called from
 * any thread at any time (after a drain, shop_submit fails with -EPIPE).
 * Those four are for the one controlling thread.
 */
#ifndef SHOPD_SHOP_H
#define SHOPD_SHOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/store.h"

#define SHOP_SKU_MAX      64  /* longest SKU, in bytes */
#define SHOP_NAME_MAX     128 /* longest product name, in bytes */
#define SHOP_CUSTOMER_MAX 128 /* longest customer name, in bytes */

/* One catalog entry as loaded: plain data. */
struct product {
    char sku[SHOP_SKU_MAX + 1];
    char name[SHOP_NAME_MAX + 1];
    int64_t price_cents;
    int64_t stock; /* initial stock */
};

enum order_status {
    ORDER_QUEUED = 0,
    ORDER_FULFILLED,
    ORDER_OUT_OF_STOCK,
};

/* One order as kept in the order book: plain data. */
struct order {
    uint64_t id;
    uint32_t product; /* index into the catalog */
    uint32_t quantity;
    enum order_status status;
    int32_t worker;       /* index of the worker that processed it, or -1 */
    int64_t accepted_ns;  /* CLOCK_REALTIME, ns since the epoch */
    int64_t processed_ns; /* CLOCK_REALTIME, or 0 while queued */
    bool has_customer;
    char customer[SHOP_CUSTOMER_MAX + 1];
};

/* Settings the shop needs, copied by shop_create(). */
struct shop_config {
    size_t workers;        /* worker threads, > 0 */
    size_t queue_capacity; /* belt slots, > 0 */
    size_t order_history;  /* orders kept for shop_order(), > 0 */
    unsigned work_ms;      /* simulated work per order, outside the lock */
    bool unsafe_inventory; /* demo: update stock without the lock */
    /* Where the shop lives (not owned; outlives the shop). NULL or a
     * memory store: this process only, as before. A durable store: use
     * shop_create_stored() and shop_submit_async(). */
    struct store *store;
    /* Idempotency keys (SPEC §8): seconds a key is kept after its first use
     * (0: SHOP_IDEM_TTL_DEFAULT), and how many keys are kept at most (0:
     * order_history, at most SHOP_IDEM_KEYS_MAX). */
    unsigned idempotency_ttl;
    size_t idempotency_keys;
};

/*
 * Called once per shop_submit_async() that returned 0, on the committer
 * thread, when the order's fate is durable: `rc` 0 and its id (answer
 * 202), -EIO (the store failed: 503 store_unavailable). It must not block.
 */
typedef void (*shop_done_fn)(void *arg, int rc, uint64_t id);

/* Latency percentiles, in milliseconds. */
struct shop_latency {
    double p50, p90, p99, max;
    uint64_t count;
    double sum_ms;
};

/* The store's cost as the committer sees it (durable stores only). */
struct shop_store_stats {
    bool durable;
    bool available;   /* the last commit succeeded */
    uint64_t commits; /* store_commit() calls, failed ones too */
    uint64_t failed_commits;
    uint64_t committed_orders; /* accepts + results in successful commits */
    double orders_per_commit;  /* committed_orders / successful commits */
    struct shop_latency commit_latency;
    size_t backlog;     /* unfinished orders found at start */
    size_t backlog_fed; /* of them, put back on the belt so far */
    /* Accepts and results not yet committed, plus restored orders not yet
     * back on the belt: 0 once everything decided is durable. */
    size_t uncommitted;
    struct store_stats store; /* the backend's own figures */
};

/* Live numbers of one product. */
struct shop_stock {
    int64_t stock;
    int64_t sold;
    int64_t restocked; /* units added by restocks */
    int64_t oversold;  /* units sold beyond what existed (unsafe mode only) */
};

/*
 * A snapshot of every counter. The counters are read in an order that keeps
 * the invariants of SPEC §1 exact in every snapshot, even under load:
 * accepted == processed + queue_depth + in_flight and
 * processed == fulfilled + out_of_stock. With a shared store (Redis),
 * queue_depth is this instance's own belt (which carries every instance's
 * orders), accepted and processed are this instance's, so the first sum
 * holds for the shop as a whole, not per instance.
 */
struct shop_snapshot {
    double uptime_s;
    size_t workers;
    bool draining;
    size_t queue_capacity, queue_depth, queue_high_water;
    uint64_t accepted, rejected_full, rejected_invalid;
    uint64_t processed, fulfilled, out_of_stock, in_flight;
    struct shop_latency queue_wait, processing;
    double accepted_per_s, processed_per_s;
    /* Idempotency keys: answers replayed, 409s (key in use), 422s (key
     * reused for another request); keys kept now, and at most. */
    uint64_t idem_replayed, idem_in_use, idem_mismatched;
    size_t idem_keys, idem_capacity;
};

/* Histogram buckets for Prometheus: upper bounds in seconds, then counts. */
#define SHOP_HIST_BUCKETS 16
struct shop_histogram {
    double le[SHOP_HIST_BUCKETS];           /* upper bounds, seconds */
    uint64_t cumulative[SHOP_HIST_BUCKETS]; /* observations <= le[i] */
    uint64_t count;                         /* all observations (+Inf) */
    double sum_s;                           /* sum of observations, seconds */
};

struct shop;

/*
 * The built-in demo catalog (at least 8 products). Stores the count in `*n`
 * and returns a static array; never fails.
 */
const struct product *shop_demo_catalog(size_t *n);

/*
 * The SKU rule, owned here: 1 to SHOP_SKU_MAX characters of [A-Za-z0-9_-],
 * so a SKU is safe in a URL path, a Prometheus label and a log line as it
 * is. shop_create() refuses a catalog that breaks it; the API and the
 * catalog file check it first to say so clearly. SHOP_SKU_RULE is the rule
 * in words, for error messages.
 */
#define SHOP_SKU_RULE "1-64 characters of [A-Za-z0-9_-]"
_Static_assert(SHOP_SKU_MAX == 64, "SHOP_SKU_RULE spells SHOP_SKU_MAX");
/* Whether the `n` bytes at `sku` follow the SKU rule. Thread-safe. */
bool shop_sku_valid(const char *sku, size_t n);

/* The text of a status: "queued", "fulfilled", "out_of_stock". */
const char *shop_status_name(enum order_status st);

/*
 * Build a shop over `n` (> 0) products copied from `catalog`, each SKU
 * following the SKU rule and unique. Creates the belt and the pool but
 * starts no thread. Stores the shop in `*out` and returns 0, or returns
 * -EINVAL (a bad setting or catalog), -ENOMEM or a pthread error (and
 * stores NULL).
 */
int shop_create(const struct shop_config *cfg, const struct product *catalog,
                size_t n, struct shop **out);

/*
 * Build a shop over what store_load() found in the durable store
 * cfg->store: its products with their stock and sold, order ids going on
 * from state->next_id, and state's unfinished orders, which go back on
 * the belt in id order (as room frees) before any new order. `state` is
 * copied. Returns 0 or a negative errno, as shop_create().
 */
int shop_create_stored(const struct shop_config *cfg,
                       const struct store_state *state, struct shop **out);

/* Whether the shop's orders go through a durable store. */
bool shop_durable(const struct shop *s);

/* Start the workers (and a durable shop's committer and restorer, a
 * shared shop's feeder and reader). Returns 0 or a negative errno. */
int shop_start(struct shop *s);

/*
 * Stop taking orders, let the workers finish every accepted order, join
 * them, and commit their results. A shared shop stops taking orders from
 * the shared store and finishes the ones on its own belt; orders still in
 * the store are left to other instances (or a restart). Returns 0, or
 * -ETIMEDOUT if `deadline` (CLOCK_MONOTONIC, may be NULL) passed first;
 * then shop_left() tells how many orders were left.
 */
int shop_drain(struct shop *s, const struct timespec *deadline);

/* Orders accepted but not yet processed (on the belt or in a worker), and
 * results not yet committed. */
uint64_t shop_left(struct shop *s);

/* Free the shop. Accepts NULL. It must be drained or never started. */
void shop_destroy(struct shop *s);

/*
 * Mark the shop as draining: shop_submit() then fails with -EPIPE. Cheap,
 * callable from any thread; shop_drain() implies it.
 */
void shop_stop_accepting(struct shop *s);
/* Whether shop_stop_accepting() (or shop_drain()) has been called. */
bool shop_draining(struct shop *s);

/*
 * Put an order on the belt without blocking. `o` holds product, quantity and
 * the customer; id, status, worker and times are filled in here. On success
 * stores the order id in `*id` and returns 0. Returns -EAGAIN when the belt
 * is full, -EPIPE when draining, -EINVAL if the product index or quantity is
 * out of range. Counts rejections in the stats.
 */
int shop_submit(struct shop *s, const struct order *o, uint64_t *id);

/*
 * The durable store's way of shop_submit(): reserve a belt slot, hand the
 * order to the committer and return 0 at once; `done(arg, ...)` runs later
 * on the committer thread, once the order is committed (then it is on the
 * belt) or the commit failed. Returns without calling `done`: -EAGAIN when
 * the belt is full, -EPIPE when draining, -EINVAL for a bad order. Never
 * blocks. Only for a shop with shop_durable().
 */
int shop_submit_async(struct shop *s, const struct order *o, shop_done_fn done,
                      void *arg);

/* An Idempotency-Key of POST /buy that travels with its order into the
 * durable store (copied): committed in the same step as the order, with
 * the 202 it answered. */
struct shop_order_key {
    const char *key; /* 1..SHOP_IDEM_KEY_MAX bytes, not terminated */
    size_t len;
    const char *fp; /* the request's fingerprint (shop_buy_fingerprint()) */
    size_t fp_len;  /* 1..SHOP_IDEM_FP_MAX bytes */
};

/* What shop_buy() and shop_restock_any() return when the answer comes
 * later, through their callback. */
#define SHOP_LATER 1

/*
 * Whether shop_buy() and shop_restock_any() answer later, through their
 * callback (a durable store: the answer waits for the commit), rather
 * than at once. Fixed at create; lets a caller prepare for a later
 * answer only when one comes.
 */
bool shop_answers_later(const struct shop *s);

/*
 * POST /buy's one call, the same in every mode: take order `o`, with its
 * Idempotency-Key `key` (may be NULL; a durable store commits it with the
 * order). Returns 0 with the order id in `*id` when it was taken at once
 * (`done` never runs); SHOP_LATER when `done(arg, ...)` runs later, as
 * for shop_submit_async_key(); or, at once, -EAGAIN (the belt is full),
 * -EPIPE (draining), -EINVAL (a bad order or key), -ENOMEM. Never blocks.
 */
int shop_buy(struct shop *s, const struct order *o,
             const struct shop_order_key *key, shop_done_fn done, void *arg,
             uint64_t *id);

/*
 * As shop_submit_async(), with the order's key (may be NULL). If the store
 * already holds the key, the order is not created and `done` gets -EEXIST.
 */
int shop_submit_async_key(struct shop *s, const struct order *o,
                          const struct shop_order_key *key, shop_done_fn done,
                          void *arg);

/* Whether the store works (always true in memory): /readyz. */
bool shop_store_ok(struct shop *s);

/*
 * The store's health, for the outage log (SPEC §7: one line when the
 * store fails, one when it is back). `ok` is shop_store_ok(); `vanished`
 * says the shop itself is gone from under shopd (the SQLite file deleted,
 * moved or replaced; a Redis shop flushed or restarted empty: store.h's
 * store_stats.vanished), which shopd never re-creates; `reason` is a short
 * phrase while !ok ("" when the store gave none), never a secret.
 * `refused` counts every request answered 503 store_unavailable so far
 * (buys and restocks whose commit failed, reads the store could not
 * answer): the difference over an outage is how many got 503 meanwhile.
 * Never blocks (SQLite: at most one stat(2)); any thread.
 */
struct shop_store_health {
    bool ok;
    bool vanished;
    char reason[160];
    uint64_t refused;
};
void shop_store_health(struct shop *s, struct shop_store_health *out);

/* The store's figures; never blocks. */
void shop_store_stats(struct shop *s, struct shop_store_stats *out);

/* Histogram of commit latency, for /metrics (zeroed in memory). */
void shop_commit_histogram(struct shop *s, struct shop_histogram *out);

/*
 * Shared stores (STORE_CAP_SHARED: Redis) - reads that show the whole
 * shop's current state, answered on the shop's reader thread so that no
 * HTTP thread waits on the store. (The orders themselves come onto this
 * instance's belt from the shared stream, through the shop's feeder.)
 */
#define SHOP_INSTANCE_MAX 128
enum shop_read_kind {
    SHOP_READ_ORDER,    /* `id` in; `order`, accepted_by, processed_by out */
    SHOP_READ_PRODUCTS, /* `stock` (shop_product_count() entries) out */
    SHOP_READ_FIGURES,  /* nothing out: the shop-wide figures are fresh
                         * (shop_shared_figures()) once `done` runs with
                         * rc 0; a shop not shared has them live */
};
struct shop_read {
    struct shop_read *next; /* the shop's, while queued */
    enum shop_read_kind kind;
    uint64_t id;
    /* Called once on the reader thread with `rc` 0, -ENOENT (no such
     * order) or -EIO (the store cannot be read now). Must not block; may
     * free the read. */
    void (*done)(struct shop_read *r);
    void *arg;
    int rc;
    struct order order;
    char accepted_by[SHOP_INSTANCE_MAX + 1];
    char processed_by[SHOP_INSTANCE_MAX + 1]; /* "" until processed */
    struct shop_stock *stock;                 /* caller's array */
    bool named; /* accepted_by and processed_by were filled */
};

/* Whether the shop's belt and stock live in a shared store. */
bool shop_shared(const struct shop *s);

/*
 * Queue `r` (owned by the caller until `done` ran). Returns 0, -ENOTSUP
 * (not a shared shop) or -EPIPE (the shop is closing). Never blocks.
 */
int shop_read_async(struct shop *s, struct shop_read *r);

/*
 * The one way to read an order or the stock, the same in every mode: a
 * shared shop queues `r` for its reader (as shop_read_async()); any other
 * answers it on the calling thread, calling `done` before it returns
 * (an order from the order book, then the store; the stock from the
 * inventory). `r->named` tells whether accepted_by and processed_by were
 * filled (a shared store names the instances). Returns 0 (`done` runs,
 * now or later) or -EPIPE (not handed over; `done` never runs).
 */
int shop_read(struct shop *s, struct shop_read *r);

/* The shop-wide figures of a shared store, as of the last refresh (every
 * ~250 ms, and for each SHOP_READ_FIGURES read; all zero before the
 * first). Returns whether there was one. */
bool shop_shared_figures(struct shop *s, struct store_shop *out);

/* Count one rejected invalid order (bad request, unknown product, ...). */
void shop_count_invalid(struct shop *s);

/*
 * Look up an order by id: the order book, then (durable stores) the
 * store, which may read the disk. Returns 0, -ENOENT, or -EIO.
 */
int shop_order(struct shop *s, uint64_t id, struct order *out);

/*
 * Number of products; the catalog data of product `i` (< count), owned by
 * the shop and immutable until shop_destroy(); the index of a SKU.
 */
size_t shop_product_count(const struct shop *s);
const struct product *shop_product(const struct shop *s, size_t i);
/* Returns the index (>= 0) of the SKU of `len` bytes, or -ENOENT. */
int shop_find_product(const struct shop *s, const char *sku, size_t len);

/*
 * Copy the stock of every product into `out` (room for
 * shop_product_count() entries) under one short hold of the inventory lock,
 * so the copy is consistent. A shared shop copies the whole shop's stock
 * as last read (every ~250 ms; the stock loaded at start until then).
 */
void shop_stock_all(struct shop *s, struct shop_stock *out);

/*
 * Fill `out` with the current counters. Never takes the inventory lock;
 * holds the belt's lock for two loads and, at most every 100 ms, a small
 * lock to record a throughput sample. Never blocks for long.
 */
void shop_snapshot(struct shop *s, struct shop_snapshot *out);

/* Histograms of queue wait and processing time, for /metrics. */
void shop_histograms(struct shop *s, struct shop_histogram *queue_wait,
                     struct shop_histogram *processing);

/* Per-worker numbers for the dashboard. */
size_t shop_worker_count(const struct shop *s);
bool shop_worker_busy(struct shop *s, size_t i);
uint64_t shop_worker_processed(struct shop *s, size_t i);

/* Whether the unsafe-inventory demo mode is on. */
bool shop_unsafe(const struct shop *s);

/* --- the shop floor, live (SPEC §11; floor.c) ---------------------------- */

#define SHOP_FLOOR_WORKERS_MAX 1024 /* as POOL_MAX */
#define SHOP_FLOOR_WORK_MS_MAX 60000
#define SHOP_FAULT_LATENCY_MAX 10000 /* ms */
#define SHOP_FAULT_FOR_MAX     3600  /* s */

/* The faults of POST /buy now: all 0 (and until_ns 0) when none is on. */
struct shop_faults {
    unsigned latency_ms;
    double error_rate, drop_rate; /* 0..1 */
    int64_t until_ns;             /* CLOCK_REALTIME when they end, or 0 */
};

enum shop_fault_kind { SHOP_FAULT_LATENCY, SHOP_FAULT_ERROR, SHOP_FAULT_DROP };

/* This instance's floor: plain data. */
struct shop_floor {
    size_t workers; /* the pool's size now */
    unsigned work_ms;
    bool paused;
    size_t start_workers;   /* as configured at start */
    unsigned start_work_ms; /* as configured at start */
    struct shop_faults faults;
    uint64_t injected[3]; /* faults injected so far, by shop_fault_kind */
};

/*
 * A change of the floor, validated by the caller (ranges as above; a
 * for_s of 1..SHOP_FAULT_FOR_MAX whenever it sets a fault to non-zero).
 * Only the fields whose set_ flag is true change; the faults merge into
 * the current ones, for_s (when > 0) restarts their clock, and once every
 * fault is 0 they end.
 */
struct shop_floor_change {
    bool set_workers, set_work_ms, set_paused;
    bool set_latency_ms, set_error_rate, set_drop_rate;
    size_t workers;
    unsigned work_ms;
    bool paused;
    unsigned latency_ms;
    double error_rate, drop_rate;
    unsigned for_s; /* 0: the faults' end stays as it was */
};

/* One POST /buy's share of the faults. */
struct shop_fault_draw {
    bool error;          /* answer 503 injected_fault, take no order */
    unsigned latency_ms; /* answer that much later */
    bool drop;           /* close the connection instead of answering */
};

/* Read the floor now (faults past their end read as ended). Thread-safe. */
void shop_floor_get(struct shop *s, struct shop_floor *out);

/*
 * Apply `c` in one piece (changes take turns). Returns 0; -EPIPE while
 * draining; or the pool's error from growing (nothing is applied then).
 * Thread-safe; never waits for an order.
 */
int shop_floor_set(struct shop *s, const struct shop_floor_change *c);

/* Draw the faults for one POST /buy (a rate drawn per request; no lock
 * while no fault is on). Thread-safe. */
void shop_floor_draw(struct shop *s, struct shop_fault_draw *out);

/* Count one injected fault of `kind`. Thread-safe. */
void shop_floor_injected(struct shop *s, enum shop_fault_kind kind);

/* --- the one report of /stats, /metrics and /events --------------------- */

/* Products shown one by one in a report's views at most (the oversold
 * sum and the product count cover the whole catalog). */
#define SHOP_REPORT_PRODUCTS 1000

/* One elf now, for the dashboard. */
struct shop_worker_state {
    bool busy;
    uint64_t processed;
};

/*
 * Every number /stats, /metrics and /events show, read once per request:
 * plain data the server renders three ways. The same fields are filled in
 * every store mode; `store.durable` says the journal's figures mean
 * something, `shared` that the shop-wide figures (`shop`, `shop_valid`:
 * read at least once) and the shared store's own cost do.
 */
struct shop_report {
    struct shop_snapshot snap; /* counters, belt, latency, throughput */
    bool unsafe_inventory;
    struct shop_floor floor; /* SPEC §11 */
    size_t nworkers;
    struct shop_worker_state *worker; /* nworkers entries */
    size_t nproducts;                 /* the whole catalog */
    size_t shown;                     /* min(nproducts, SHOP_REPORT_PRODUCTS) */
    struct shop_stock *stock;         /* nproducts entries, catalog order */
    int64_t oversold;                 /* every product's */
    struct shop_histogram queue_wait, processing, commit;
    const char *store_kind; /* "memory", "sqlite", "redis" (static) */
    struct shop_store_stats store;
    bool shared;
    bool shop_valid;
    struct store_shop shop; /* the whole shop, as of the last refresh */
};

/*
 * Fill `out` (its arrays malloc'd: free them with shop_report_release()).
 * Takes each part's lock once, briefly, as shop_snapshot() and
 * shop_stock_all() do; never blocks for long. Returns 0 or -ENOMEM (then
 * `out` holds nothing to release).
 */
int shop_report(struct shop *s, struct shop_report *out);
/* Free a report's arrays. Accepts a zeroed report. */
void shop_report_release(struct shop_report *r);

/* Largest quantity one restock may add (SPEC §9). */
#define SHOP_RESTOCK_MAX 1000000000

/*
 * Restock: add `qty` (1..SHOP_RESTOCK_MAX) units to product `i`'s stock and
 * to its restocked count, under the inventory lock (so stock + sold ==
 * initial + restocked holds against concurrent buys), and copy the
 * product's numbers after the change into `out` (may be NULL). Returns 0,
 * -ENOENT for an unknown product, -EINVAL for a quantity out of range,
 * -EOVERFLOW if the stock would pass INT64_MAX.
 */
int shop_restock(struct shop *s, size_t i, int64_t qty, struct shop_stock *out);

/*
 * Called once per shop_restock_async() that returned 0, on the committer
 * thread: `rc` 0 and the product's numbers after the restock, or -EIO (the
 * store failed; nothing changed) with `st` NULL. It must not block.
 */
typedef void (*shop_restock_fn)(void *arg, int rc, const struct shop_stock *st);

/*
 * The durable store's way of shop_restock(): the restock is committed in
 * the committer's next batch, and only then applied to the inventory (so
 * no sale uses units the store does not have) and answered through `done`
 * with the product's numbers as committed with it. Returns 0 at once, or
 * without calling `done`: -ENOENT (no product `i`), -EINVAL (bad quantity
 * or key, or not a durable shop), -EPIPE (draining), -ENOMEM. Never
 * blocks.
 *
 * With a `key` (may be NULL), the key is committed with the restock, its
 * record's outcome being those numbers; if the store already holds the
 * key, nothing changes and `done` gets -EEXIST.
 */
int shop_restock_async(struct shop *s, size_t i, int64_t qty,
                       const struct shop_order_key *key, shop_restock_fn done,
                       void *arg);

/*
 * A restock's one call, the same in every mode: as shop_restock() (0 and
 * the numbers after it in `out`, done never runs) where the inventory
 * answers at once, or as shop_restock_async() (SHOP_LATER: `done` runs
 * once it is committed) where a durable store commits it first. Negative
 * errors at once as either of them.
 */
int shop_restock_any(struct shop *s, size_t i, int64_t qty,
                     const struct shop_order_key *key, shop_restock_fn done,
                     void *arg, struct shop_stock *out);

/* --- idempotency keys (SPEC §8) ------------------------------------------
 *
 * The key table answers one question per request that carries a key: has
 * this key been seen on this endpoint within the TTL, and with which
 * request? A request is named by its fingerprint: the canonical request
 * itself (not its raw bytes, not a digest of it), as shop_buy_fingerprint()
 * and shop_restock_fingerprint() write it; two fingerprints are equal when
 * their lengths and their bytes are. The protocol:
 *
 *   begin(scope, key, fingerprint) ->
 *     NEW          the caller processes the request, then calls complete()
 *                  with its outcome if it succeeded, abort() otherwise;
 *     IN_PROGRESS  the first request with this key is still being answered;
 *     REPLAY       the key answered the same request before: `ans` holds
 *                  that request's outcome, which the caller renders as
 *                  it rendered the first answer;
 *     MISMATCH     the key answered a different request.
 *
 * A key's record is {endpoint (scope), key, fingerprint, outcome}: data,
 * not an HTTP answer. The outcome is the order id (POST /buy) or the
 * product's numbers right after the restock.
 *
 * The memory store keeps at most shop_config.idempotency_keys keys, the
 * oldest dropped first, each for idempotency_ttl seconds after its first
 * use. A durable store implements the same four calls, committing the key
 * with the order it answered.
 */
#define SHOP_IDEM_KEY_MAX     255     /* longest key, in bytes */
#define SHOP_IDEM_TTL_DEFAULT 86400   /* seconds */
#define SHOP_IDEM_KEYS_MAX    262144u /* most keys the memory store keeps */
#define SHOP_IDEM_FP_MAX      256     /* longest fingerprint, in bytes */

/* Keys are per endpoint: the same key in two scopes is two keys. */
enum shop_idem_scope {
    SHOP_IDEM_BUY = 1,     /* POST /buy */
    SHOP_IDEM_RESTOCK = 2, /* POST /products/{sku}/restock */
};

enum shop_idem_result {
    SHOP_IDEM_NEW = 0,
    SHOP_IDEM_IN_PROGRESS,
    SHOP_IDEM_REPLAY,
    SHOP_IDEM_MISMATCH,
};

/* What begin() hands the caller of a NEW key, for complete() or abort(). */
struct shop_idem_ticket {
    uint32_t slot;
    uint64_t gen;
};

/* A key's remembered outcome: what the request it answered did. */
struct shop_idem_answer {
    uint64_t order_id;       /* POST /buy: the order it created */
    struct shop_stock stock; /* a restock: the numbers right after it */
};

/*
 * The canonical request, written to `out` (SHOP_IDEM_FP_MAX bytes, not
 * terminated); returns its length. POST /buy: "<sku>|<quantity>|null"
 * without a customer, "<sku>|<quantity>|\"<customer>\"" with one (the
 * customer's bytes as they are: it is the last field, so no escaping is
 * needed to keep two requests apart, and the form stays within 206 bytes).
 * A restock: "<sku>|<quantity>". A SKU holds no '|' and quantities are in
 * decimal without leading zeros, so equal requests give equal bytes and
 * different requests different ones.
 */
size_t shop_buy_fingerprint(const char *sku, unsigned quantity,
                            const char *customer, char *out);
size_t shop_restock_fingerprint(const char *sku, unsigned quantity, char *out);

/*
 * Look up `key` (`len` bytes, 1..SHOP_IDEM_KEY_MAX) in `scope` with the
 * request's fingerprint `fp` (`fp_len` bytes, 1..SHOP_IDEM_FP_MAX). Returns
 * a shop_idem_result (filling `tk` for NEW, `ans` for REPLAY), or -EINVAL
 * for a key or fingerprint of a bad length. Counts replays, in-use and
 * mismatch answers for shop_snapshot(). Never blocks for long; no
 * allocation.
 */
int shop_idem_begin(struct shop *s, enum shop_idem_scope scope, const char *key,
                    size_t len, const char *fp, size_t fp_len,
                    struct shop_idem_ticket *tk, struct shop_idem_answer *ans);

/*
 * Remember the outcome of the request of a NEW key (successes only).
 * Returns 0, or -ENOENT if the key was dropped meanwhile. Never allocates.
 */
int shop_idem_complete(struct shop *s, const struct shop_idem_ticket *tk,
                       const struct shop_idem_answer *outcome);

/* Forget the key of a NEW request that did not succeed: it may be reused. */
void shop_idem_abort(struct shop *s, const struct shop_idem_ticket *tk);

/*
 * A durable store's record of `key` in `scope`, for a key the
 * memory table does not know (after a restart, or dropped from the table):
 * fills `ans` (the outcome), `fp` (SHOP_IDEM_FP_MAX
 * bytes: the first request's fingerprint) and `*fp_len`, and returns 0; -ENOENT
 * if the store has no such unexpired key (or the shop is not durable); -EIO if
 * the store cannot be read. Blocks on a read of the store (brief in WAL mode).
 * Thread-safe.
 */
int shop_idem_stored(struct shop *s, enum shop_idem_scope scope,
                     const char *key, size_t len, struct shop_idem_answer *ans,
                     char *fp, size_t *fp_len);

#endif /* SHOPD_SHOP_H */
