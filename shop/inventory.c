/*
 * inventory.c - stock and sold per product, behind one mutex.
 *
 * Invariant (safe mode): for every product, stock >= 0 and
 * stock + sold == initial stock + restocked, because a take and a restock
 * read and write under the lock and readers copy all three under the lock.
 * A restock takes the lock even in unsafe mode: the demo race is between
 * buyers only.
 *
 * The unsafe demo mode (--unsafe-inventory) drops the lock in
 * inventory_take() and widens the gap between reading the stock and writing
 * it back, so that concurrent workers lose updates and oversell. Every field
 * is still an atomic, so the race is a logic race that the demo shows, not
 * undefined behaviour that ThreadSanitizer would report.
 *
 * Lock order: only `lock`, never held with another lock; no I/O or
 * allocation while held.
 */
#include "shop/internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

/* How long the unsafe mode waits between reading and writing the stock. */
#define UNSAFE_WINDOW_NS INT64_C(20000)

struct inventory {
    /* guards stock[], sold[] and restocked[] (they must agree) */
    pthread_mutex_t lock;
    bool sync_ready; /* lock exists (for destroy after a failure) */
    bool unsafe;     /* demo mode: take without the lock */
    size_t n;
    int64_t *initial;           /* read-only after create */
    _Atomic int64_t *stock;     /* units on the shelf */
    _Atomic int64_t *sold;      /* units sold so far */
    _Atomic int64_t *restocked; /* units added by restocks */
};

int inventory_create(const struct product *catalog, size_t n, bool unsafe,
                     const struct shop_stock *start, struct inventory **out)
{
    struct inventory *inv = calloc(1, sizeof(*inv));
    int err = -ENOMEM;

    if (!inv)
        goto fail;
    inv->initial = calloc(n, sizeof(*inv->initial));
    inv->stock = calloc(n, sizeof(*inv->stock));
    inv->sold = calloc(n, sizeof(*inv->sold));
    inv->restocked = calloc(n, sizeof(*inv->restocked));
    if (!inv->initial || !inv->stock || !inv->sold || !inv->restocked)
        goto fail;
    err = -pthread_mutex_init(&inv->lock, NULL);
    if (err)
        goto fail;
    inv->sync_ready = true;
    inv->unsafe = unsafe;
    inv->n = n;
    for (size_t i = 0; i < n; i++) {
        inv->initial[i] = catalog[i].stock;
        atomic_init(&inv->stock[i], start ? start[i].stock : catalog[i].stock);
        atomic_init(&inv->sold[i], start ? start[i].sold : 0);
        atomic_init(&inv->restocked[i], start ? start[i].restocked : 0);
    }
    *out = inv;
    return 0;

fail:
    inventory_destroy(inv);
    *out = NULL;
    return err;
}

void inventory_destroy(struct inventory *inv)
{
    if (!inv)
        return;
    if (inv->sync_ready)
        pthread_mutex_destroy(&inv->lock);
    free(inv->initial);
    free(inv->stock);
    free(inv->sold);
    free(inv->restocked);
    free(inv);
}

/*
 * Keep the unsafe reader busy for a while, yielding first so that another
 * worker on the same core gets to read the same stale stock.
 */
static void race_window(void)
{
    int64_t until = time_now_ns(CLOCK_MONOTONIC) + UNSAFE_WINDOW_NS;

    sched_yield();
    while (time_now_ns(CLOCK_MONOTONIC) < until)
        ;
}

static int take_unsafe(struct inventory *inv, size_t i, int64_t qty)
{
    int64_t stock = atomic_load_explicit(&inv->stock[i], memory_order_relaxed);

    if (stock < qty)
        return -ERANGE;
    race_window();
    /* The lost update: another worker may have written since the read. */
    atomic_store_explicit(&inv->stock[i], stock - qty, memory_order_relaxed);
    atomic_fetch_add_explicit(&inv->sold[i], qty, memory_order_relaxed);
    return 0;
}

int inventory_take(struct inventory *inv, size_t i, int64_t qty)
{
    int ret = -ERANGE;
    int64_t stock;

    if (inv->unsafe)
        return take_unsafe(inv, i, qty);

    pthread_mutex_lock(&inv->lock);
    stock = atomic_load_explicit(&inv->stock[i], memory_order_relaxed);
    if (stock >= qty) {
        atomic_store_explicit(&inv->stock[i], stock - qty,
                              memory_order_relaxed);
        atomic_fetch_add_explicit(&inv->sold[i], qty, memory_order_relaxed);
        ret = 0;
    }
    pthread_mutex_unlock(&inv->lock);
    return ret;
}

void inventory_read_all(struct inventory *inv, struct shop_stock *out)
{
    pthread_mutex_lock(&inv->lock);
    for (size_t i = 0; i < inv->n; i++) {
        out[i].stock =
            atomic_load_explicit(&inv->stock[i], memory_order_relaxed);
        out[i].sold = atomic_load_explicit(&inv->sold[i], memory_order_relaxed);
        out[i].restocked =
            atomic_load_explicit(&inv->restocked[i], memory_order_relaxed);
    }
    pthread_mutex_unlock(&inv->lock);

    for (size_t i = 0; i < inv->n; i++) {
        int64_t over = out[i].sold - inv->initial[i] - out[i].restocked;

        out[i].oversold = over > 0 ? over : 0;
    }
}

int inventory_restock(struct inventory *inv, size_t i, int64_t qty,
                      struct shop_stock *out)
{
    int ret = -EOVERFLOW;
    struct shop_stock now = {0};

    pthread_mutex_lock(&inv->lock);
    int64_t stock = atomic_load_explicit(&inv->stock[i], memory_order_relaxed);
    int64_t added =
        atomic_load_explicit(&inv->restocked[i], memory_order_relaxed);
    if (stock <= INT64_MAX - qty && added <= INT64_MAX - qty) {
        atomic_store_explicit(&inv->stock[i], stock + qty,
                              memory_order_relaxed);
        atomic_store_explicit(&inv->restocked[i], added + qty,
                              memory_order_relaxed);
        ret = 0;
    }
    now.stock = atomic_load_explicit(&inv->stock[i], memory_order_relaxed);
    now.sold = atomic_load_explicit(&inv->sold[i], memory_order_relaxed);
    now.restocked =
        atomic_load_explicit(&inv->restocked[i], memory_order_relaxed);
    pthread_mutex_unlock(&inv->lock);

    int64_t over = now.sold - inv->initial[i] - now.restocked;
    now.oversold = over > 0 ? over : 0;
    if (out)
        *out = now;
    return ret;
}
