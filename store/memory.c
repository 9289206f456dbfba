/*
 * memory.c - the default store: the shop lives in this process only.
 *
 * The shop does not route its hot path through this backend (it checks
 * store_durable() and keeps its own belt, ids and order book), so nothing
 * here runs per order. The backend exists so that every shop has a store
 * to name in /stats, and so that the interface has a plain reference:
 * store_load() hands the catalog back, store_commit() numbers accepts and
 * applies results and restocks to an in-memory copy of the products, and
 * keeps no orders (store_order_get() finds none).
 *
 * Thread safety: as store.h; commit and load run on one thread at a time,
 * the counters read by store_stats() are atomics.
 */
#include "store/internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct memory_store {
    struct store base;
    uint64_t next_id;               /* committer thread only */
    struct store_product *products; /* committer thread only */
    size_t nproducts;
    _Atomic uint64_t commits;
};

static int mem_open(const struct store_options *opt, struct store **out,
                    char *err, size_t errlen)
{
    (void)opt;
    struct memory_store *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        snprintf(err, errlen, "store memory: out of memory");
        return -ENOMEM;
    }
    m->next_id = 1;
    atomic_init(&m->commits, 0);
    *out = &m->base;
    return 0;
}

static void mem_close(struct store *st)
{
    struct memory_store *m = (struct memory_store *)st;
    free(m->products);
    free(m);
}

static int mem_load(struct store *st, const struct store_product *catalog,
                    size_t n, struct store_state *out, char *err, size_t errlen)
{
    struct memory_store *m = (struct memory_store *)st;
    struct store_product *p = calloc(n, sizeof(*p));
    struct store_product *mine = calloc(n, sizeof(*mine));
    if (p == NULL || mine == NULL) {
        free(p);
        free(mine);
        snprintf(err, errlen, "store memory: out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = catalog[i];
        p[i].stock = p[i].initial;
        p[i].sold = p[i].restocked = 0;
        p[i].added = false;
    }
    memcpy(mine, p, n * sizeof(*p));
    free(m->products);
    m->products = mine;
    m->nproducts = n;
    out->products = p;
    out->nproducts = n;
    out->seeded = true;
    out->next_id = m->next_id;
    return 0;
}

static int mem_commit(struct store *st, struct store_batch *b)
{
    struct memory_store *m = (struct memory_store *)st;
    for (size_t i = 0; i < b->nresults; i++)
        if (b->results[i].product >= m->nproducts ||
            b->results[i].status == STORE_QUEUED)
            return -EINVAL;
    for (size_t i = 0; i < b->nrestocks; i++)
        if (b->restocks[i].product >= m->nproducts)
            return -EINVAL;
    for (size_t i = 0; i < b->naccepts; i++) {
        b->accepts[i].order.id = m->next_id++;
        b->accepts[i].order.status = STORE_QUEUED;
        b->accepts[i].result = STORE_ACCEPTED;
    }
    for (size_t i = 0; i < b->nresults; i++) {
        struct store_result *r = &b->results[i];
        if (r->status == STORE_FULFILLED) {
            m->products[r->product].stock -= r->quantity;
            m->products[r->product].sold += r->quantity;
        }
        r->applied = true;
    }
    for (size_t i = 0; i < b->nrestocks; i++) {
        struct store_restock *r = &b->restocks[i];
        struct store_product *p = &m->products[r->product];
        p->stock += r->quantity;
        p->restocked += r->quantity;
        r->stock = p->stock;
        r->sold = p->sold;
        r->restocked = p->restocked;
        r->result = STORE_ACCEPTED;
    }
    atomic_fetch_add_explicit(&m->commits, 1, memory_order_relaxed);
    return 0;
}

static int mem_order_get(struct store *st, uint64_t id, struct store_order *out)
{
    (void)st;
    (void)id;
    (void)out;
    return -ENOENT;
}

static int mem_idem_get(struct store *st, const char *endpoint, const char *key,
                        size_t key_len, struct store_answer *out)
{
    (void)st;
    (void)endpoint;
    (void)key;
    (void)key_len;
    (void)out;
    return -ENOENT;
}

static bool mem_available(struct store *st)
{
    (void)st;
    return true;
}

static void mem_stats(struct store *st, struct store_stats *out)
{
    struct memory_store *m = (struct memory_store *)st;
    out->available = true;
    out->round_trips = atomic_load_explicit(&m->commits, memory_order_relaxed);
    snprintf(out->describe, sizeof(out->describe), "memory");
}

const struct store_backend store_memory_backend = {
    .kind = STORE_MEMORY,
    .caps = 0,
    .open = mem_open,
    .close = mem_close,
    .load = mem_load,
    .commit = mem_commit,
    .order_get = mem_order_get,
    .idem_get = mem_idem_get,
    .take = NULL,
    .available = mem_available,
    .stats = mem_stats,
};
