/*
 * store.h - where the shop lives beyond one process (SPEC §7): one small
 * interface with three backends, memory (the default), SQLite and Redis.
 *
 * The store sits below shop/: it knows products, orders and idempotency
 * keys as plain data, and nothing of the belt, the workers or HTTP. shop/
 * keeps the inventory behind its mutex and the belt; the store makes them
 * durable. The memory store is a thin stand-in so that every shop has a
 * store to name in /stats: shop/ checks store_durable() and, when it is
 * false, keeps today's path (no committer thread, no allocation, the
 * belt's sequence numbers as order ids) and never calls store_commit().
 *
 * The write path of a durable store is a group committer in shop/ (one
 * thread): while one store_commit() is in flight, the next batch of
 * accepts, results and restocks fills; each store_commit() is one atomic
 * step (one SQLite transaction, one pipelined Redis round trip of atomic
 * functions). Nothing is reported before its commit returned 0: an order
 * gets its 202 only after the commit that gave it its id, and
 * GET /orders/{id} shows a final status only after the commit that recorded
 * it.
 *
 * Two ways of deciding an order, chosen by the backend's capabilities:
 *  - the shop decides (SQLite): a worker takes the stock under the
 *    inventory lock, then hands the decided result to the committer, which
 *    records status and stock change in one commit;
 *  - the store decides (STORE_CAP_DECIDES, Redis): the result goes to
 *    store_commit() with status STORE_QUEUED and the store checks and takes
 *    the stock atomically itself, filling in the status; the shop then
 *    mirrors the outcome into its inventory.
 * Either way an order is applied at most once: recording a result for an
 * order that is already final changes nothing and reports applied=false.
 *
 * Ownership: every struct passed in is the caller's; the store copies what
 * it keeps. store_load() fills a struct store_state whose arrays the caller
 * frees with store_state_free().
 *
 * Blocking: store_open, store_load, store_commit, store_order_get and
 * store_idem_get may block on disk or network; never call them from an
 * HTTP thread on the hot path (the server suspends the request instead).
 * store_stats, store_available, store_kind, store_durable and store_caps
 * never block.
 *
 * Thread safety: store_load() and store_commit() are for one thread at a
 * time (load before the committer starts; then the committer commits),
 * except that a backend with STORE_CAP_SHARED may allow store_commit() and
 * store_take() from several threads at once (each on its own connection);
 * store_order_get()
 * and store_idem_get() may be called from any thread at once, concurrently
 * with a commit; store_stats(), store_available() and the capability
 * readers from any thread at any time; store_close() once, after every
 * other call has returned.
 */
#ifndef SHOPD_STORE_H
#define SHOPD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_SKU_MAX         64  /* as SHOP_SKU_MAX */
#define STORE_NAME_MAX        128 /* as SHOP_NAME_MAX */
#define STORE_CUSTOMER_MAX    128 /* as SHOP_CUSTOMER_MAX */
#define STORE_INSTANCE_MAX    128 /* longest instance name */
#define STORE_IDEM_KEY_MAX    255 /* longest Idempotency-Key (SPEC §8) */
#define STORE_FINGERPRINT_MAX 256 /* longest request fingerprint */

enum store_kind {
    STORE_MEMORY = 0,
    STORE_SQLITE,
    STORE_REDIS,
};

/* What a 202 waits for with SQLite (PRAGMA synchronous). */
enum store_sync {
    STORE_SYNC_FULL = 0, /* fsync at every commit: survives power loss */
    STORE_SYNC_NORMAL,   /* written to the OS: survives a crash of shopd */
};

/* Capabilities of a backend (bits of store_caps()). */
enum store_cap {
    STORE_CAP_DURABLE = 1u << 0, /* orders outlive the process */
    STORE_CAP_DECIDES = 1u << 1, /* store_commit() decides results itself */
    STORE_CAP_SHARED = 1u << 2,  /* several instances share one shop */
};

/*
 * Settings of store_open(), copied. main fills this from its config; the
 * store never sees the config module. Strings may be NULL for "unset".
 */
struct store_options {
    enum store_kind kind;
    const char *path;     /* sqlite: the database file; redis: unix socket */
    const char *host;     /* redis: host name (NULL with a unix socket) */
    unsigned port;        /* redis: TCP port */
    unsigned db;          /* redis: database number */
    const char *password; /* redis: secret; never logged or reported */
    enum store_sync sync; /* sqlite: PRAGMA synchronous */
    const char *instance; /* this instance's name (for shared stores) */
    unsigned reclaim_ms;  /* redis: claim a dead instance's orders after */
    unsigned idempotency_ttl; /* seconds a key is remembered (SPEC §8) */
    size_t queue_capacity;    /* redis: the shop-wide belt's capacity */
    size_t cache_kib;         /* sqlite: page cache per connection, 0 =
                                 the store's default (2 MiB) */
    const char *vfs;          /* sqlite: VFS name, NULL = the default one
                                 (tests wrap it to fail writes on demand) */
    unsigned connect_wait_ms; /* redis: how long open retries an
                                 unreachable server, 0 = 10 s (SPEC §7) */
    size_t order_history;     /* redis: orders whose record the shared
                                 store keeps (SPEC §7), 0 = 65536 */
    /* redis: called once, from store_open(), at the first failed attempt
     * to reach the store, with one line saying that open waits and how
     * long (the caller logs it: the store never logs). May be NULL. */
    void (*on_wait)(void *arg, const char *line);
    void *on_wait_arg;
};

/* Order states, in the same order as shop's enum order_status. */
enum store_status {
    STORE_QUEUED = 0,
    STORE_FULFILLED,
    STORE_OUT_OF_STOCK,
};

/* A product as the store holds it: catalog data and live numbers. */
struct store_product {
    char sku[STORE_SKU_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    int64_t price_cents;
    int64_t initial;   /* stock when the product entered the store */
    int64_t stock;     /* units on the shelf now */
    int64_t sold;      /* units sold, ever */
    int64_t restocked; /* units added by restocks, ever */
    bool added;        /* store_load(): added from the catalog just now */
};

/*
 * An order as the store holds it. `product` is an index into the product
 * list of the last store_load() (the store maps it to its own key).
 */
struct store_order {
    uint64_t id;
    uint32_t product;
    uint32_t quantity;
    enum store_status status;
    int32_t worker;       /* processing worker's index, or -1 */
    int64_t accepted_ns;  /* CLOCK_REALTIME ns since the epoch */
    int64_t processed_ns; /* CLOCK_REALTIME ns, 0 while queued */
    bool has_customer;
    char customer[STORE_CUSTOMER_MAX + 1];
    /* Shared stores only ("" otherwise): who accepted and processed it. */
    char accepted_by[STORE_INSTANCE_MAX + 1];
    char processed_by[STORE_INSTANCE_MAX + 1];
};

/*
 * Everything store_load() found, owned by the caller (store_state_free()).
 * The products are the store's, in the store's order (seeded ones in
 * catalog order, then any added ones); their indexes are what orders use.
 * `unfinished` are the orders without a final status, in id order: the
 * shop puts them back on the belt before it takes new ones.
 */
struct store_state {
    struct store_product *products;
    size_t nproducts;
    size_t nadded;    /* products added from the catalog by this load */
    bool seeded;      /* the store was empty and was seeded now */
    uint64_t next_id; /* the id the next accepted order gets (>= 1) */
    struct store_order *unfinished;
    size_t nunfinished;
};

/*
 * An idempotency key that travels with an accept or a restock (SPEC §8):
 * committed in the same step as what it answered, so a replay works after
 * kill -9. `endpoint` names the key space ("buy", "restock").
 *
 * The key's record is {endpoint, key, fingerprint, outcome}; the outcome
 * is what the same step decided, not an HTTP answer: the id the store
 * assigned to the order (an order's id is only known at commit), or the
 * product's numbers right after the restock (the ones store_restock
 * returns). The server renders every answer, first or replayed, from it.
 */
struct store_idem {
    const char *endpoint; /* static string */
    const char *key;      /* 1..STORE_IDEM_KEY_MAX bytes, not terminated */
    size_t key_len;
    const char *fingerprint; /* the canonical request, not terminated */
    size_t fingerprint_len;  /* 1..STORE_FINGERPRINT_MAX bytes */
};

/* A key's record, as store_idem_get() and a refused accept give it. */
struct store_answer {
    char fingerprint[STORE_FINGERPRINT_MAX]; /* not terminated */
    size_t fingerprint_len;
    uint64_t order_id; /* the order it created (buy), 0 for a restock */
    /* a restock: the product's numbers right after it (0 for a buy) */
    int64_t stock, sold, restocked;
};

/* What became of one accept in store_commit(). */
enum store_accept_result {
    STORE_ACCEPTED = 0, /* committed, `order.id` assigned */
    STORE_FULL,         /* shared belt full (Redis): 503 queue_full */
    STORE_KEY_EXISTS,   /* the idempotency key was there: see `existing` */
};

/* One new order for store_commit(): in `order` and `idem`, out the rest. */
struct store_accept {
    struct store_order order;        /* in: product, quantity, customer,
                                        accepted_ns; out: id (status queued) */
    const struct store_idem *idem;   /* NULL: no key */
    enum store_accept_result result; /* out */
    struct store_answer *existing;   /* out with STORE_KEY_EXISTS, if not
                                        NULL (caller's buffer) */
};

/* One processed order for store_commit(). */
struct store_result {
    uint64_t id;
    uint32_t product;
    uint32_t quantity;
    enum store_status status; /* in: decided, or STORE_QUEUED for a store
                                 with STORE_CAP_DECIDES; out: final */
    int32_t worker;
    int64_t processed_ns;
    bool applied; /* out: false if the order was final already (a second
                     delivery): nothing was changed */
};

/* One restock for store_commit(): add `quantity` to stock and restocked. */
struct store_restock {
    uint32_t product;
    int64_t quantity;              /* 1 .. 1e9 */
    const struct store_idem *idem; /* NULL: no key */
    /* out: the product's numbers after this restock */
    int64_t stock, sold, restocked;
    enum store_accept_result result; /* ACCEPTED or KEY_EXISTS */
    struct store_answer *existing;   /* as in struct store_accept */
};

/*
 * One atomic step. Any array may be empty (NULL, 0); an empty batch is a
 * probe: it writes nothing a user can see but exercises the write path, so
 * the committer learns that a failed store works again.
 */
struct store_batch {
    struct store_accept *accepts;
    size_t naccepts;
    struct store_result *results;
    size_t nresults;
    struct store_restock *restocks;
    size_t nrestocks;
};

/* The store's own figures (the committer keeps commit counts/latency). */
struct store_stats {
    enum store_kind kind;
    bool available;       /* the last write succeeded (or none failed) */
    uint64_t round_trips; /* Redis round trips / SQLite transactions */
    uint64_t failures;    /* commits that failed */
    uint64_t reclaimed;   /* orders claimed from a dead instance (Redis) */
    uint64_t duplicates;  /* results already final (applied=false) */
    uint64_t replays;     /* commits sent again after a timeout whose
                             first outcome the store returned (Redis) */
    uint64_t unknown;     /* commits whose outcome stayed unknown
                             (-ETIMEDOUT) */
    char describe[256];   /* e.g. "sqlite:/data/shop.db sync=full";
                             never a password */
    /* Why the store is unavailable, "" while it is available: a short
     * phrase for the outage log line ("database or disk is full",
     * "the file was deleted"); never a password. */
    char reason[160];
    /* The shop itself is gone from under shopd (SPEC §7: the SQLite file
     * deleted, moved or replaced; a Redis shop flushed or restarted
     * empty), not merely unreachable: shopd never re-creates it and
     * serves again only when that same shop is back. Implies !available. */
    bool vanished;
};

struct store;

/*
 * Open the store named in `opt`. SQLite: open or create the file, take an
 * exclusive lock on it and on its lock file DIR/.NAME.shopd-lock, which
 * stays when the database is deleted or replaced (a second shopd on the
 * same file or path fails here), WAL mode, the schema. Redis: connect
 * (retrying for up to 10 s).
 * Returns 0 and stores the store in `*out`, or a negative errno with one
 * line naming the store and the reason in `err` (-EBUSY: in use by
 * another process; -EINVAL: bad options; -EIO, -ENOENT, ...). Blocks.
 */
int store_open(const struct store_options *opt, struct store **out, char *err,
               size_t errlen);

/* Close the store and free it. Accepts NULL. Blocks until flushed. */
void store_close(struct store *st);

/* The backend's kind, capabilities, and whether it is durable. */
enum store_kind store_kind(const struct store *st);
unsigned store_caps(const struct store *st);
bool store_durable(const struct store *st);

/*
 * Load the shop at start: seed an empty store from `catalog` (`n` > 0
 * products; `initial`/`stock` = the catalog stock, the rest ignored), add
 * any catalog product the store does not know (marked `added`), and read
 * products, the next order id and every unfinished order into `out`.
 * Known products keep their stored stock and name. Returns 0, or a
 * negative errno with a line in `err`. Blocks; call before the committer
 * starts.
 */
int store_load(struct store *st, const struct store_product *catalog, size_t n,
               struct store_state *out, char *err, size_t errlen);

/* Free what store_load() put in `s` and zero it. Accepts a zeroed state. */
void store_state_free(struct store_state *s);

/*
 * Commit `b` in one atomic step: every accept gets the next id (or is
 * refused as FULL / KEY_EXISTS), every result is recorded with its stock
 * change unless its order is final already, every restock is applied; and
 * their idempotency keys are stored. All or nothing: on failure nothing of
 * `b` is kept, ids are not consumed, and the outputs are undefined.
 * Returns 0, -EIO (I/O error, disk full, connection refused, the shop gone
 * from the store: nothing of `b` was applied, and the store is unavailable
 * until a commit succeeds again), -ETIMEDOUT (a shared store stopped
 * answering in the middle of the commit and did not answer again within
 * 10 s: `b` may or may not have been applied, once at most), -ENOMEM or
 * -EINVAL. Blocks (up to 10 s with a shared store that stalls).
 */
int store_commit(struct store *st, struct store_batch *b);

/*
 * Look up order `id`. Returns 0 and fills `out`, -ENOENT if there is no
 * such order, -EIO if the store cannot be read now. Blocks (briefly for
 * SQLite: a read in WAL mode never waits for a writer). Thread-safe.
 */
int store_order_get(struct store *st, uint64_t id, struct store_order *out);

/*
 * Look up an unexpired idempotency key of `endpoint`. Returns 0 and fills
 * `out`, -ENOENT if unknown or expired, -EIO. Blocks. Thread-safe.
 */
int store_idem_get(struct store *st, const char *endpoint, const char *key,
                   size_t key_len, struct store_answer *out);

/*
 * Shared stores only (STORE_CAP_SHARED; others return -ENOTSUP): take up
 * to `max` orders for worker `worker` to process into `out`: this
 * instance's own pending ones first, then new ones, then a dead instance's
 * orders idle for reclaim_ms. Waits up to `wait_ms` when there are none.
 * Returns the number taken (>= 0) or a negative errno (-EIO). Blocks.
 * With such a store the orders live on the store's shared belt, not on
 * the shop's local one, and their results go back through store_commit().
 */
int store_take(struct store *st, unsigned worker, struct store_order *out,
               size_t max, unsigned wait_ms);

/*
 * Shop-wide figures of a shared store (STORE_CAP_SHARED): every instance's
 * orders together.
 */
struct store_shop {
    uint64_t accepted, rejected_full, processed, fulfilled, out_of_stock;
    uint64_t double_deliveries; /* results that found their order final */
    uint64_t reclaimed;         /* orders claimed from another instance */
    uint64_t restocked;         /* units, every product */
    uint64_t belt;              /* orders not final yet (queued + taken) */
    uint64_t pending;           /* of them, taken by some worker */
    uint64_t last_id;           /* the last order id given */
    uint64_t consumers;         /* instance names that ever took orders */
};

/*
 * Shared stores only (others return -ENOTSUP): the live stock, sold and
 * restocked of the first `n` products of the last store_load() (all of
 * them, or fewer: only those are read), by index, into `out` (name and
 * price are left alone); and the shop-wide figures.
 * Return 0 or -EIO. Block (one round trip). Thread-safe.
 */
int store_products_get(struct store *st, struct store_product *out, size_t n);
int store_shop_get(struct store *st, struct store_shop *out);

/*
 * Whether the store can take writes now: the last write succeeded and
 * (SQLite) the path still names the file opened at start (checked at
 * most every STORE_WATCH_MS, with one stat(2) - so never for long).
 * Any thread.
 */
#define STORE_WATCH_MS 100
bool store_available(struct store *st);

/* Fill `out` with the store's own figures. Never blocks; any thread. */
void store_stats(struct store *st, struct store_stats *out);

/* "memory", "sqlite", "redis". */
const char *store_kind_name(enum store_kind kind);

#endif /* SHOPD_STORE_H */
