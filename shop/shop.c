/*
 * shop.c - the shop floor, one in every store mode: takes orders onto the
 * belt, and the elves' handler that finishes them.
 *
 *   memory:  shop_submit ──try_send──────────────────────┐
 *   sqlite:  shop_submit_async ─▶ committer (journal) ───┤ send
 *   redis:   shop_submit_async ─▶ committer ─▶ stream ─▶ feeder (shared.c)
 *                                                        ▼
 *                          [ belt: struct queue of shop_item ] (this instance)
 *                                                        │ recv: the elves of
 *                                                        ▼ worker/ (the pool)
 *                   shop_handle ─▶ finish: inventory ─▶ order book, stats
 *                                  (memory), or journal ─▶ store_commit ─▶
 *                                  order book, stats (sqlite, redis)
 *
 * One floor: the belt (queue/) and the elves (worker/) are the same in
 * every mode; the store is a journal behind them. What differs is chosen
 * once, by the code that builds the shop (create()):
 *   - the journal `com` (committer.c): none in memory (every committer_*
 *     call then does nothing), SQLite's group commits, or Redis's;
 *   - the feeder `shared` (shared.c): only with a shared store (Redis),
 *     which fills the belt from the shared stream (this instance's own
 *     pending orders, reclaimed ones, new ones); every shared_* call does
 *     nothing otherwise;
 *   - `finish`, how an elf ends an order: the inventory decides and the
 *     order book shows it at once (memory); the inventory decides and the
 *     journal records it (SQLite); or the store decides in the journal's
 *     commit (Redis). A durable result is counted and shown only once its
 *     commit returned (committer_on_done -> shop_committed);
 *   - `take`, `restock` and `read`, how the server's one call per action
 *     (shop_buy, shop_restock_any, shop_read) is done: at once on the
 *     caller's thread (memory; reads in SQLite too), through the journal
 *     with the answer later (durable stores), or by the shared store's
 *     reader; and `accepted`, which count is this instance's accepts (the
 *     belt's, or the journal's when the belt also carries other
 *     instances' orders).
 * Past create, nothing here asks which store is in use: shop_report()
 * fills the same struct in every mode from whatever parts exist.
 *
 * Order ids: in memory an order's id is the belt's sequence number, so ids
 * are gap-free, start at 1 and grow in acceptance order, and the number of
 * accepted orders is queue_sent(). A durable store gives the id when it
 * commits the accept, and the order travels on the belt with it. A
 * submitter records its order as queued only after the send succeeded; a
 * fast elf may already have recorded it as final, so the order book never
 * moves an order from a final state back to queued.
 *
 * Invariants, exact in every snapshot (SPEC §1; shop_snapshot() reads the
 * counters in an order that keeps them so):
 *   accepted == processed + belt depth + in flight (memory and SQLite;
 *   with Redis this instance's belt takes every instance's orders, so the
 *   sum holds for the shop as a whole);
 *   processed == fulfilled + out_of_stock;
 *   per product, stock + sold == initial stock + restocked (safe mode).
 *
 * Restocks (shop_restock) go through the inventory lock like a sale. The
 * idempotency key table (idem.c) sits beside the belt: the server asks it
 * about a key before shop_submit() and tells it the outcome after, so the
 * shop never holds a key's lock while it touches the belt.
 *
 * Lock order: the shop itself has no lock. Its parts each have their own
 * (belt, pool, inventory, order-book stripes, throughput ring, key-table
 * shards, committer, feeder) and every path here takes at most one of them
 * at a time: the handler releases the inventory lock before touching the
 * order book or the journal, shop_submit() returns from the belt before
 * touching the order book. shop_snapshot() takes neither the inventory lock
 * nor any order-book stripe, so /stats stays cheap.
 */
#include "shop/shop.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdatomic.h>

#include "queue/queue.h"
#include "shop/internal.h"
#include "store/store.h"
#include "worker/worker.h"

struct shop;

/* How an elf finishes an order once the clerk's work is done (chosen at
 * create, see the design note). */
typedef void (*shop_finish_fn)(struct shop *s, struct order *o);

struct shop {
    struct shop_config cfg;  /* read-only after create */
    size_t nproducts;        /* read-only after create */
    struct product *catalog; /* read-only copy of the catalog */
    /* The catalog's entries sorted by SKU, for shop_find_product()'s
     * binary search; read-only after create. */
    const struct product **by_sku;
    struct queue *belt;
    struct pool *pool;
    struct inventory *inv;
    struct orderbook *book;
    struct shop_stats *stats;
    /* The store: cfg.store, or a memory store of the shop's own
     * (`own_store`) when the caller gave none. */
    struct store *store;
    struct store *own_store;
    struct committer *com; /* the journal; NULL: none (memory) */
    struct shared *shared; /* a shared store's feeder; NULL: none */
    shop_finish_fn finish; /* read-only after create */
    /* This instance's accepted orders, given the belt's sent count (chosen
     * at create): the belt's count, or the journal's when the belt also
     * carries other instances' orders. */
    uint64_t (*accepted)(const struct shop *s, uint64_t sent);
    /* How a buy, a restock and a read are done (chosen at create): at once
     * (memory), through the journal, answered later (durable stores), or
     * by the shared store's reader. */
    int (*take)(struct shop *s, const struct order *o,
                const struct shop_order_key *key, shop_done_fn done, void *arg,
                uint64_t *id);
    int (*restock)(struct shop *s, size_t i, int64_t qty,
                   const struct shop_order_key *key, shop_restock_fn done,
                   void *arg, struct shop_stock *out);
    int (*read)(struct shop *s, struct shop_read *r);
    bool shared_store; /* a shared store's figures exist; after create */
    /* Results another instance finished first (a second delivery). */
    _Atomic uint64_t superseded;
    /* Belt slots reserved by shop_submit_async() for orders not yet on the
     * belt (being committed, or the restart backlog). */
    _Atomic size_t held;
    struct idem_table *idem;
    struct floor *floor;   /* the live controls (floor.c) */
    _Atomic bool draining; /* set once; submitters read it */
    /* Reads the durable store could not answer (503 store_unavailable). */
    _Atomic uint64_t refused_reads;
    bool started; /* controlling thread only */
    bool drained; /* controlling thread only */
};

/* Orders a worker takes off the belt at once when there is no simulated
 * work: enough to share the belt's lock among many orders, few enough that
 * a batch is done in microseconds. */
#define SHOP_WORKER_BATCH 16

/* Memory: the inventory decides, the order book shows it at once. */
static void finish_here(struct shop *s, struct order *o)
{
    bool ok = inventory_take(s->inv, o->product, (int64_t)o->quantity) == 0;

    o->status = ok ? ORDER_FULFILLED : ORDER_OUT_OF_STOCK;
    orderbook_put(s->book, o);
    shop_stats_count_done(s->stats, ok);
}

/* SQLite: the inventory decides; the journal records it, and the result
 * shows (and counts) once it is committed. */
static void finish_journaled(struct shop *s, struct order *o)
{
    bool ok = inventory_take(s->inv, o->product, (int64_t)o->quantity) == 0;

    o->status = ok ? ORDER_FULFILLED : ORDER_OUT_OF_STOCK;
    committer_result(s->com, o);
}

/* Redis: the store takes the stock and decides in the journal's commit;
 * the order leaves this elf's hands, so the feeder may take another. */
static void finish_in_store(struct shop *s, struct order *o)
{
    o->status = ORDER_QUEUED;
    committer_result(s->com, o);
    shared_handed(s->shared);
}

/* This instance's accepts: every order it put on its own belt. */
static uint64_t accepted_on_belt(const struct shop *s, uint64_t sent)
{
    (void)s;
    return sent;
}

/* A shared store's belt also carries other instances' orders: this
 * instance's accepted orders are the ones its journal took. */
static uint64_t accepted_by_journal(const struct shop *s, uint64_t sent)
{
    (void)sent;
    return committer_accepted(s->com);
}

/* The journal's hook: a result is committed (committer thread). */
static void shop_committed(void *arg, const struct order *o, bool applied)
{
    struct shop *s = arg;

    if (applied)
        shop_stats_count_done(s->stats, o->status == ORDER_FULFILLED);
    else
        atomic_fetch_add_explicit(&s->superseded, 1, memory_order_relaxed);
}

/* The pool's handler: one order from the belt, start to finish. */
static void shop_handle(void *item, uint64_t seq, unsigned worker, void *arg)
{
    struct shop *s = arg;
    struct shop_item *it = item;
    struct order *o = &it->o;
    int64_t taken = time_now_ns(CLOCK_MONOTONIC);

    latency_hist_record(shop_stats_queue_wait(s->stats),
                        taken - it->enqueued_mono_ns);
    unsigned work_ms = floor_work_ms(s->floor); /* may change at runtime */
    if (work_ms > 0) /* the clerk's work, outside every lock */
        time_sleep_ms(work_ms);

    if (o->id == 0)
        o->id = seq; /* memory: the belt numbers the orders */
    o->worker = (int32_t)worker;
    o->processed_ns = time_now_ns(CLOCK_REALTIME);
    s->finish(s, o);

    latency_hist_record(shop_stats_processing(s->stats),
                        time_now_ns(CLOCK_MONOTONIC) - taken);
}

static int check_config(const struct shop_config *cfg,
                        const struct product *catalog, size_t n)
{
    if (!cfg || !catalog || n == 0 || n > INT_MAX)
        return -EINVAL;
    if (cfg->workers == 0 || cfg->workers > INT32_MAX ||
        cfg->queue_capacity == 0 || cfg->order_history == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        const struct product *p = &catalog[i];
        if (p->stock < 0 || p->price_cents < 0 ||
            !shop_sku_valid(p->sku, strnlen(p->sku, sizeof(p->sku))))
            return -EINVAL;
    }
    return 0;
}

/* How many idempotency keys the memory store keeps (see shop.h). */
static size_t idem_capacity(const struct shop_config *cfg)
{
    size_t cap =
        cfg->idempotency_keys ? cfg->idempotency_keys : cfg->order_history;
    return cap < SHOP_IDEM_KEYS_MAX ? cap : SHOP_IDEM_KEYS_MAX;
}

/* qsort order of two catalog entries: by SKU, as strcmp orders them. */
static int sku_order(const void *a, const void *b)
{
    const struct product *const *pa = a;
    const struct product *const *pb = b;

    return strcmp((*pa)->sku, (*pb)->sku);
}

static int take_now(struct shop *s, const struct order *o,
                    const struct shop_order_key *key, shop_done_fn done,
                    void *arg, uint64_t *id);
static int take_journaled(struct shop *s, const struct order *o,
                          const struct shop_order_key *key, shop_done_fn done,
                          void *arg, uint64_t *id);
static int restock_now(struct shop *s, size_t i, int64_t qty,
                       const struct shop_order_key *key, shop_restock_fn done,
                       void *arg, struct shop_stock *out);
static int restock_journaled(struct shop *s, size_t i, int64_t qty,
                             const struct shop_order_key *key,
                             shop_restock_fn done, void *arg,
                             struct shop_stock *out);
static int read_here(struct shop *s, struct shop_read *r);
static int read_shared(struct shop *s, struct shop_read *r);

/*
 * The store's parts of the floor, chosen here once (see the design note):
 * the store (a memory one of the shop's own if the caller gave none), a
 * durable store's journal, a shared store's feeder, and how an elf
 * finishes an order. Every other function calls them the same way in
 * every mode.
 */
static int build_journal(struct shop *s, const struct order *backlog,
                         size_t nbacklog)
{
    const struct shop_config *cfg = &s->cfg;
    struct store_options mem = {.kind = STORE_MEMORY};
    char msg[128];
    int err;

    s->finish = finish_here;
    s->accepted = accepted_on_belt;
    s->take = take_now;
    s->restock = restock_now;
    s->read = read_here;
    s->store = cfg->store;
    if (s->store == NULL) {
        err = store_open(&mem, &s->own_store, msg, sizeof(msg));
        if (err)
            return err;
        s->store = s->own_store;
    }
    if (!store_durable(s->store))
        return 0;
    for (size_t i = 0; i < nbacklog; i++)
        orderbook_put(s->book, &backlog[i]);
    /* Results may wait for a slow commit: room for four belts' worth
     * before workers block (memory is only touched when used). */
    err = committer_create(
        s->store, s->belt, s->book, s->inv, &s->held, cfg->queue_capacity,
        4 * cfg->queue_capacity + cfg->workers, backlog, nbacklog, &s->com);
    if (err)
        return err;
    committer_on_done(s->com, shop_committed, s);
    s->finish = finish_journaled;
    s->take = take_journaled;
    s->restock = restock_journaled;
    if (store_caps(s->store) & STORE_CAP_DECIDES)
        s->finish = finish_in_store;
    if (!(store_caps(s->store) & STORE_CAP_SHARED))
        return 0;
    s->accepted = accepted_by_journal;
    s->read = read_shared;
    s->shared_store = true;
    return shared_create(s->store, s->belt, s->nproducts, cfg->workers,
                         cfg->work_ms, &s->shared);
}

/* The catalog's copy and its SKU index (one SKU, one product). */
static int build_catalog(struct shop *s, const struct product *catalog,
                         size_t n)
{
    s->catalog = calloc(n, sizeof(*s->catalog));
    if (!s->catalog)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        s->catalog[i] = catalog[i];
        s->catalog[i].sku[SHOP_SKU_MAX] = '\0';
        s->catalog[i].name[SHOP_NAME_MAX] = '\0';
    }
    /* An array of pointers: the element size is a pointer's, on purpose. */
    const size_t entry = sizeof(const struct product *);
    s->by_sku = calloc(n, entry);
    if (!s->by_sku)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        s->by_sku[i] = &s->catalog[i];
    qsort(s->by_sku, n, entry, sku_order);
    for (size_t i = 1; i < n; i++)
        if (strcmp(s->by_sku[i - 1]->sku, s->by_sku[i]->sku) == 0)
            return -EINVAL;
    return 0;
}

/* The floor's own parts: counters, stock, order book, belt and elves. */
static int build_floor(struct shop *s, const struct shop_stock *start,
                       size_t nbacklog)
{
    const struct shop_config *cfg = &s->cfg;
    int err = shop_stats_create(time_now_ns(CLOCK_MONOTONIC), &s->stats);

    if (err)
        return err;
    atomic_init(&s->held, nbacklog);
    err = inventory_create(s->catalog, s->nproducts, cfg->unsafe_inventory,
                           start, &s->inv);
    if (err)
        return err;
    err = orderbook_create(cfg->order_history, &s->book);
    if (err)
        return err;
    err = queue_create(cfg->queue_capacity, sizeof(struct shop_item), &s->belt);
    if (err)
        return err;
    /* Quick orders are taken off the belt in batches (one lock round trip
     * each); slow ones (simulated work) one by one, so that no order waits
     * in one worker's batch while another worker is idle. */
    err = pool_create(s->belt, cfg->workers, SHOP_WORKER_BATCH, shop_handle, s,
                      &s->pool);
    if (err)
        return err;
    if (cfg->work_ms > 0)
        pool_set_batch(s->pool, 1);
    return 0;
}

static int create(const struct shop_config *cfg, const struct product *catalog,
                  size_t n, const struct shop_stock *start,
                  const struct order *backlog, size_t nbacklog,
                  struct shop **out)
{
    struct shop *s = NULL;
    int err = check_config(cfg, catalog, n);

    if (err)
        goto fail;
    err = -ENOMEM;
    s = calloc(1, sizeof(*s));
    if (!s)
        goto fail;
    s->cfg = *cfg;
    s->nproducts = n;
    atomic_init(&s->draining, false);
    atomic_init(&s->superseded, 0);
    err = build_catalog(s, catalog, n);
    if (err)
        goto fail;
    err = build_floor(s, start, nbacklog);
    if (err)
        goto fail;
    err = build_journal(s, backlog, nbacklog);
    if (err)
        goto fail;
    /* The floor's controls act on this instance's pool, in every mode. */
    err = floor_create(s->pool, cfg->workers, cfg->work_ms, SHOP_WORKER_BATCH,
                       &s->floor);
    if (err)
        goto fail;
    err = idem_create(idem_capacity(cfg),
                      cfg->idempotency_ttl ? cfg->idempotency_ttl
                                           : SHOP_IDEM_TTL_DEFAULT,
                      &s->idem);
    if (err)
        goto fail;
    *out = s;
    return 0;

fail:
    shop_destroy(s);
    *out = NULL;
    return err;
}

int shop_create(const struct shop_config *cfg, const struct product *catalog,
                size_t n, struct shop **out)
{
    if (cfg && store_durable(cfg->store)) {
        *out = NULL;
        return -EINVAL; /* a durable store's shop comes from its state */
    }
    return create(cfg, catalog, n, NULL, NULL, 0, out);
}

int shop_create_stored(const struct shop_config *cfg,
                       const struct store_state *state, struct shop **out)
{
    size_t n = state->nproducts;
    struct product *cat = calloc(n ? n : 1, sizeof(*cat));
    struct shop_stock *start = calloc(n ? n : 1, sizeof(*start));
    size_t nb = state->nunfinished;
    struct order *backlog = calloc(nb ? nb : 1, sizeof(*backlog));
    int err = -ENOMEM;

    *out = NULL;
    if (!cat || !start || !backlog)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct store_product *p = &state->products[i];
        snprintf(cat[i].sku, sizeof(cat[i].sku), "%s", p->sku);
        snprintf(cat[i].name, sizeof(cat[i].name), "%s", p->name);
        cat[i].price_cents = p->price_cents;
        /* stock + sold == initial + restocked, as in memory. */
        cat[i].stock = p->initial;
        start[i].stock = p->stock;
        start[i].sold = p->sold;
        start[i].restocked = p->restocked;
    }
    for (size_t i = 0; i < nb; i++) {
        shop_order_from_store(&state->unfinished[i], &backlog[i]);
        if (backlog[i].product >= n) {
            err = -EINVAL;
            goto out;
        }
    }
    err = create(cfg, cat, n, start, backlog, nb, out);
out:
    free(cat);
    free(start);
    free(backlog);
    return err;
}

bool shop_durable(const struct shop *s)
{
    return s->com != NULL;
}

int shop_start(struct shop *s)
{
    int ret = pool_start(s->pool);

    if (ret == 0) {
        ret = committer_start(s->com);
        if (ret == 0)
            ret = shared_start(s->shared);
        if (ret != 0) {
            shared_stop(s->shared);
            pool_drain(s->pool, NULL);
            committer_finish(s->com, NULL);
            s->drained = true;
        }
    }
    if (ret == 0)
        s->started = true;
    return ret;
}

void shop_stop_accepting(struct shop *s)
{
    atomic_store_explicit(&s->draining, true, memory_order_release);
}

bool shop_draining(struct shop *s)
{
    return atomic_load_explicit(&s->draining, memory_order_acquire);
}

int shop_drain(struct shop *s, const struct timespec *deadline)
{
    int ret;

    shop_stop_accepting(s);
    floor_end(s->floor); /* faults end; the pool's drain un-pauses */
    /* Every committed accept and the restart backlog go on the belt
     * first, and a shared store's feeder stops taking (orders still in
     * the store are safe: other instances, or a restart, finish them);
     * then the elves finish every order on the belt; then their results
     * commit. Without a journal or a feeder those steps return at once. */
    ret = committer_close_accepts(s->com, deadline);
    if (ret)
        return ret;
    shared_stop(s->shared);
    ret = pool_drain(s->pool, deadline);
    if (ret == 0)
        ret = committer_finish(s->com, deadline);
    if (ret == 0)
        s->drained = true;
    return ret;
}

uint64_t shop_left(struct shop *s)
{
    return (uint64_t)queue_len(s->belt) + pool_in_flight(s->pool) +
           committer_unfinished(s->com);
}

void shop_destroy(struct shop *s)
{
    if (!s)
        return;
    /*
     * Workers still running (a drain that timed out) may touch every part:
     * leaking them is the only safe choice, and the process is about to
     * exit anyway.
     */
    if (s->started && !s->drained)
        return;
    shared_destroy(s->shared);
    committer_destroy(s->com);
    pool_destroy(s->pool);
    queue_destroy(s->belt);
    orderbook_destroy(s->book);
    inventory_destroy(s->inv);
    shop_stats_destroy(s->stats);
    idem_destroy(s->idem);
    floor_destroy(s->floor);
    store_close(s->own_store);
    free(s->by_sku);
    free(s->catalog);
    free(s);
}

/* A new order as it goes on the belt: queued, stamped now, no id yet (the
 * belt or the store numbers it). */
static void belt_item(struct shop_item *it, const struct order *o)
{
    it->o = *o;
    it->o.id = 0;
    it->o.status = ORDER_QUEUED;
    it->o.worker = -1;
    it->o.accepted_ns = time_now_ns(CLOCK_REALTIME);
    it->o.processed_ns = 0;
    it->o.customer[SHOP_CUSTOMER_MAX] = '\0';
    if (!it->o.has_customer)
        it->o.customer[0] = '\0';
    it->enqueued_mono_ns = time_now_ns(CLOCK_MONOTONIC);
}

int shop_submit(struct shop *s, const struct order *o, uint64_t *id)
{
    struct shop_item it;
    uint64_t seq = 0;
    int ret;

    if (shop_draining(s))
        return -EPIPE;
    if (o->product >= s->nproducts || o->quantity == 0)
        return -EINVAL;

    belt_item(&it, o);

    ret = queue_try_send(s->belt, &it, &seq);
    if (ret == -EAGAIN)
        shop_stats_count_full(s->stats);
    if (ret)
        return ret;

    it.o.id = seq;
    orderbook_put(s->book, &it.o);
    if (id)
        *id = seq;
    return 0;
}

/* Reserve one belt slot for an order on its way through the committer:
 * orders on the belt plus reserved ones never exceed the capacity. */
static bool reserve_slot(struct shop *s)
{
    size_t cap = queue_cap(s->belt);
    size_t held = atomic_load_explicit(&s->held, memory_order_acquire);
    for (;;) {
        if (queue_len(s->belt) + held >= cap)
            return false;
        if (atomic_compare_exchange_weak_explicit(&s->held, &held, held + 1,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return true;
    }
}

int shop_submit_async(struct shop *s, const struct order *o, shop_done_fn done,
                      void *arg)
{
    return shop_submit_async_key(s, o, NULL, done, arg);
}

int shop_submit_async_key(struct shop *s, const struct order *o,
                          const struct shop_order_key *key, shop_done_fn done,
                          void *arg)
{
    struct shop_item it;

    if (key != NULL && (key->len == 0 || key->len > SHOP_IDEM_KEY_MAX ||
                        key->fp_len == 0 || key->fp_len > SHOP_IDEM_FP_MAX))
        return -EINVAL;
    if (shop_draining(s))
        return -EPIPE;
    if (o->product >= s->nproducts || o->quantity == 0)
        return -EINVAL;
    if (!reserve_slot(s)) {
        shop_stats_count_full(s->stats);
        return -EAGAIN;
    }
    belt_item(&it, o);
    int ret = committer_accept(s->com, &it, key, done, arg);
    if (ret != 0)
        atomic_fetch_sub_explicit(&s->held, 1, memory_order_release);
    return ret;
}

/* Memory: onto the belt at once (the key is the caller's table's). */
static int take_now(struct shop *s, const struct order *o,
                    const struct shop_order_key *key, shop_done_fn done,
                    void *arg, uint64_t *id)
{
    (void)key;
    (void)done;
    (void)arg;
    return shop_submit(s, o, id);
}

/* A durable store: journaled first, answered later through `done`. */
static int take_journaled(struct shop *s, const struct order *o,
                          const struct shop_order_key *key, shop_done_fn done,
                          void *arg, uint64_t *id)
{
    (void)id;
    int rc = shop_submit_async_key(s, o, key, done, arg);
    return rc == 0 ? SHOP_LATER : rc;
}

bool shop_answers_later(const struct shop *s)
{
    return s->take != take_now;
}

int shop_buy(struct shop *s, const struct order *o,
             const struct shop_order_key *key, shop_done_fn done, void *arg,
             uint64_t *id)
{
    return s->take(s, o, key, done, arg, id);
}

/* Memory and SQLite: answered on the caller's thread, from the order book
 * (then the store) or the inventory. */
static int read_here(struct shop *s, struct shop_read *r)
{
    r->named = false;
    r->rc = 0;
    if (r->kind == SHOP_READ_ORDER)
        r->rc = shop_order(s, r->id, &r->order);
    else if (r->kind == SHOP_READ_PRODUCTS)
        shop_stock_all(s, r->stock);
    /* SHOP_READ_FIGURES: this process's figures are live already. */
    r->done(r); /* may free r */
    return 0;
}

/* A shared store: its reader answers, naming the instances. */
static int read_shared(struct shop *s, struct shop_read *r)
{
    r->named = true;
    return shared_read(s->shared, r);
}

int shop_read(struct shop *s, struct shop_read *r)
{
    return s->read(s, r);
}

bool shop_store_ok(struct shop *s)
{
    /* The store's own flag also drops (and recovers) while nobody buys: a
     * shared store's feeder polls it all the time, SQLite looks whether
     * its file is still at its path; memory's is always up. */
    return store_available(s->store) && committer_available(s->com);
}

void shop_store_health(struct shop *s, struct shop_store_health *out)
{
    memset(out, 0, sizeof(*out));
    out->ok = shop_store_ok(s);
    /* The same in every mode: memory's store never vanishes, and its
     * empty journal refused nothing. */
    struct store_stats st;
    store_stats(s->store, &st);
    out->vanished = st.vanished;
    if (!out->ok)
        snprintf(out->reason, sizeof(out->reason), "%s", st.reason);
    out->refused =
        committer_refused(s->com) +
        atomic_load_explicit(&s->refused_reads, memory_order_relaxed);
}

bool shop_shared(const struct shop *s)
{
    return s->shared != NULL;
}

int shop_read_async(struct shop *s, struct shop_read *r)
{
    return shared_read(s->shared, r);
}

bool shop_shared_figures(struct shop *s, struct store_shop *out)
{
    return shared_figures(s->shared, out, NULL);
}

void shop_store_stats(struct shop *s, struct shop_store_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->available = shop_store_ok(s);
    store_stats(s->store, &out->store);
    committer_stats(s->com, out);
}

void shop_commit_histogram(struct shop *s, struct shop_histogram *out)
{
    memset(out, 0, sizeof(*out));
    committer_histogram(s->com, out);
}

void shop_count_invalid(struct shop *s)
{
    shop_stats_count_invalid(s->stats);
}

int shop_order(struct shop *s, uint64_t id, struct order *out)
{
    int ret = orderbook_get(s->book, id, out);
    if (ret == 0)
        return ret;
    /* Not kept here: the store may know it (memory's keeps none). */
    struct store_order so;
    ret = store_order_get(s->store, id, &so);
    if (ret == 0)
        shop_order_from_store(&so, out);
    else if (ret == -EIO)
        atomic_fetch_add_explicit(&s->refused_reads, 1, memory_order_relaxed);
    return ret;
}

size_t shop_product_count(const struct shop *s)
{
    return s->nproducts;
}

const struct product *shop_product(const struct shop *s, size_t i)
{
    return i < s->nproducts ? &s->catalog[i] : NULL;
}

int shop_find_product(const struct shop *s, const char *sku, size_t len)
{
    if (len == 0 || len > SHOP_SKU_MAX || memchr(sku, '\0', len) != NULL)
        return -ENOENT;
    /* Binary search in strcmp order: on a tie over `len` bytes, an entry
     * with more characters sorts after the key. */
    size_t lo = 0, hi = s->nproducts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *have = s->by_sku[mid]->sku;
        int c = strncmp(have, sku, len);

        if (c == 0 && have[len] != '\0')
            c = 1;
        if (c == 0)
            return (int)(s->by_sku[mid] - s->catalog);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -ENOENT;
}

void shop_stock_all(struct shop *s, struct shop_stock *out)
{
    /* A shared shop's stock is the whole shop's, as last read, for the
     * products a report shows; the inventory loaded at start for the
     * others, and for all until the first read. */
    inventory_read_all(s->inv, out);
    shared_figures(s->shared, NULL, out);
}

void shop_snapshot(struct shop *s, struct shop_snapshot *out)
{
    /*
     * The counters are read so that the SPEC's invariants hold exactly in
     * every snapshot, not only when the shop is idle: processed is the sum
     * of the outcomes (read first), and the belt's sent and length come from
     * one hold of its lock; then every order is either on the belt
     * (len), finished (processed) or taken and not yet finished:
     *   in_flight = (sent - len) - processed  >= 0,
     * because an order is counted as processed only after it was received.
     */
    memset(out, 0, sizeof(*out));
    shop_stats_read(s->stats, out);
    out->processed = out->fulfilled + out->out_of_stock;
    uint64_t superseded =
        atomic_load_explicit(&s->superseded, memory_order_relaxed);
    idem_counts(s->idem, out);
    uint64_t sent;
    size_t len;
    queue_counts(s->belt, &sent, &len);
    /* With a shared store the belt also carries other instances' orders
     * (see accepted_by_journal). */
    out->accepted = s->accepted(s, sent);
    out->queue_depth = len;
    uint64_t received = sent - len, done = out->processed + superseded;
    out->in_flight = received > done ? received - done : 0;
    out->queue_high_water = queue_high_water(s->belt);
    out->queue_capacity = queue_cap(s->belt);
    out->workers = shop_worker_count(s);
    out->draining = shop_draining(s);
    shop_stats_rate(s->stats, out->accepted, out->processed,
                    &out->accepted_per_s, &out->processed_per_s);
}

void shop_histograms(struct shop *s, struct shop_histogram *queue_wait,
                     struct shop_histogram *processing)
{
    if (queue_wait)
        latency_hist_export(shop_stats_queue_wait(s->stats), queue_wait);
    if (processing)
        latency_hist_export(shop_stats_processing(s->stats), processing);
}

size_t shop_worker_count(const struct shop *s)
{
    return pool_size(s->pool);
}

struct floor *shop_floor_of(struct shop *s)
{
    return s->floor;
}

bool shop_worker_busy(struct shop *s, size_t i)
{
    return pool_worker_busy(s->pool, i); /* any index: slots are kept */
}

uint64_t shop_worker_processed(struct shop *s, size_t i)
{
    return pool_worker_handled(s->pool, i);
}

bool shop_unsafe(const struct shop *s)
{
    return s->cfg.unsafe_inventory;
}

/* The report's per-elf states. The pool may resize meanwhile: its size is
 * read once, and a slot past it reads as idle (slots are kept). */
static int report_workers(struct shop *s, struct shop_report *out)
{
    out->nworkers = shop_worker_count(s);
    out->worker =
        calloc(out->nworkers ? out->nworkers : 1, sizeof(*out->worker));
    if (out->worker == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < out->nworkers; i++) {
        out->worker[i].busy = pool_worker_busy(s->pool, i);
        out->worker[i].processed = pool_worker_handled(s->pool, i);
    }
    return 0;
}

/* The report's inventory: every product's numbers, and their oversold. */
static int report_stock(struct shop *s, struct shop_report *out)
{
    size_t n = s->nproducts;

    out->stock = calloc(n, sizeof(*out->stock));
    if (out->stock == NULL)
        return -ENOMEM;
    shop_stock_all(s, out->stock);
    out->nproducts = n;
    out->shown = n < SHOP_REPORT_PRODUCTS ? n : SHOP_REPORT_PRODUCTS;
    for (size_t i = 0; i < n; i++)
        out->oversold += out->stock[i].oversold;
    return 0;
}

int shop_report(struct shop *s, struct shop_report *out)
{
    memset(out, 0, sizeof(*out));
    if (report_workers(s, out) != 0 || report_stock(s, out) != 0) {
        shop_report_release(out);
        return -ENOMEM;
    }
    shop_snapshot(s, &out->snap);
    out->unsafe_inventory = s->cfg.unsafe_inventory;
    shop_floor_get(s, &out->floor);
    shop_histograms(s, &out->queue_wait, &out->processing);
    committer_histogram(s->com, &out->commit);
    shop_store_stats(s, &out->store);
    out->store_kind = store_kind_name(out->store.store.kind);
    out->shared = s->shared_store;
    out->shop_valid = shared_figures(s->shared, &out->shop, NULL);
    return 0;
}

void shop_report_release(struct shop_report *r)
{
    free(r->worker);
    free(r->stock);
    r->worker = NULL;
    r->stock = NULL;
}

/* Memory: the inventory answers at once (a key is the caller's table's
 * business, and there is nothing to call back). */
static int restock_now(struct shop *s, size_t i, int64_t qty,
                       const struct shop_order_key *key, shop_restock_fn done,
                       void *arg, struct shop_stock *out)
{
    (void)key;
    (void)done;
    (void)arg;
    if (i >= s->nproducts)
        return -ENOENT;
    if (qty < 1 || qty > SHOP_RESTOCK_MAX)
        return -EINVAL;
    return inventory_restock(s->inv, i, qty, out);
}

/* A durable store: committed first, answered later through `done` (which
 * it needs: without one, -EINVAL). */
static int restock_journaled(struct shop *s, size_t i, int64_t qty,
                             const struct shop_order_key *key,
                             shop_restock_fn done, void *arg,
                             struct shop_stock *out)
{
    (void)out;
    if (done == NULL)
        return -EINVAL; /* shop_restock() on a durable store */
    int rc = shop_restock_async(s, i, qty, key, done, arg);
    return rc == 0 ? SHOP_LATER : rc;
}

int shop_restock(struct shop *s, size_t i, int64_t qty, struct shop_stock *out)
{
    return s->restock(s, i, qty, NULL, NULL, NULL, out);
}

int shop_restock_any(struct shop *s, size_t i, int64_t qty,
                     const struct shop_order_key *key, shop_restock_fn done,
                     void *arg, struct shop_stock *out)
{
    return s->restock(s, i, qty, key, done, arg, out);
}

int shop_restock_async(struct shop *s, size_t i, int64_t qty,
                       const struct shop_order_key *key, shop_restock_fn done,
                       void *arg)
{
    if (key != NULL && (key->len == 0 || key->len > SHOP_IDEM_KEY_MAX ||
                        key->fp_len == 0 || key->fp_len > SHOP_IDEM_FP_MAX))
        return -EINVAL;
    if (i >= s->nproducts)
        return -ENOENT;
    if (qty < 1 || qty > SHOP_RESTOCK_MAX)
        return -EINVAL;
    if (shop_draining(s))
        return -EPIPE;
    return committer_restock(s->com, (uint32_t)i, qty, key, done, arg);
}

int shop_idem_stored(struct shop *s, enum shop_idem_scope scope,
                     const char *key, size_t len, struct shop_idem_answer *ans,
                     char *fp, size_t *fp_len)
{
    /* Memory's store keeps no keys: -ENOENT. */
    struct store_answer sa;
    int rc =
        store_idem_get(s->store, scope == SHOP_IDEM_RESTOCK ? "restock" : "buy",
                       key, len, &sa);
    if (rc == -ENOENT)
        return -ENOENT;
    if (rc != 0) {
        atomic_fetch_add_explicit(&s->refused_reads, 1, memory_order_relaxed);
        return -EIO;
    }
    memset(ans, 0, sizeof(*ans));
    ans->order_id = sa.order_id;
    ans->stock.stock = sa.stock;
    ans->stock.sold = sa.sold;
    ans->stock.restocked = sa.restocked;
    *fp_len = sa.fingerprint_len < SHOP_IDEM_FP_MAX ? sa.fingerprint_len
                                                    : SHOP_IDEM_FP_MAX;
    memcpy(fp, sa.fingerprint, *fp_len);
    return 0;
}

/* The length snprintf() reports, capped to what `out` holds. */
static size_t fp_length(int n)
{
    if (n < 0)
        return 0;
    return (size_t)n < SHOP_IDEM_FP_MAX ? (size_t)n : SHOP_IDEM_FP_MAX - 1;
}

size_t shop_buy_fingerprint(const char *sku, unsigned quantity,
                            const char *customer, char *out)
{
    /* A SKU of 64 bytes and a customer of 128 take 206 at most. */
    int n = customer
                ? snprintf(out, SHOP_IDEM_FP_MAX, "%s|%u|\"%s\"", sku, quantity,
                           customer)
                : snprintf(out, SHOP_IDEM_FP_MAX, "%s|%u|null", sku, quantity);
    return fp_length(n);
}

size_t shop_restock_fingerprint(const char *sku, unsigned quantity, char *out)
{
    return fp_length(snprintf(out, SHOP_IDEM_FP_MAX, "%s|%u", sku, quantity));
}

int shop_idem_begin(struct shop *s, enum shop_idem_scope scope, const char *key,
                    size_t len, const char *fp, size_t fp_len,
                    struct shop_idem_ticket *tk, struct shop_idem_answer *ans)
{
    if (len == 0 || len > SHOP_IDEM_KEY_MAX || fp_len == 0 ||
        fp_len > SHOP_IDEM_FP_MAX)
        return -EINVAL;
    return (int)idem_begin(s->idem, scope, key, len, fp, fp_len,
                           time_now_ns(CLOCK_MONOTONIC), tk, ans);
}

int shop_idem_complete(struct shop *s, const struct shop_idem_ticket *tk,
                       const struct shop_idem_answer *outcome)
{
    return idem_complete(s->idem, tk, outcome);
}

void shop_idem_abort(struct shop *s, const struct shop_idem_ticket *tk)
{
    idem_abort(s->idem, tk);
}
