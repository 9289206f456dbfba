/*
 * orderbook.c - the last `history` orders, in fixed memory.
 *
 * Order ids are gap-free (the belt's sequence numbers), so order `id` lives
 * in slot `id % history` and a lookup is O(1): the slot holds the order if
 * its id matches, else the order was never issued or has been overwritten
 * by a newer one. Slot ids only grow; id 0 marks a never-used slot.
 *
 * Instead of one mutex per slot (too much memory) or one for the whole ring
 * (HTTP threads and workers would queue on it), slots are guarded by
 * BOOK_STRIPES mutexes: slot k belongs to stripe k % BOOK_STRIPES. Each
 * stripe sits on its own cache line.
 *
 * Lock order: at most one stripe is held at a time, never with another lock;
 * only a struct copy happens while held.
 */
#include "shop/internal.h"

#include <errno.h>
#include <pthread.h>

#define BOOK_STRIPES 64

/* One stripe's mutex, alone on its cache line. */
struct book_stripe {
    /* guards every slot k with k % BOOK_STRIPES == this stripe's index */
    _Alignas(SHOP_CACHE_LINE) pthread_mutex_t lock;
};

struct orderbook {
    size_t history;
    struct order *slots;  /* `history` slots, guarded by their stripe */
    size_t stripes_ready; /* stripe locks initialised (create/destroy) */
    struct book_stripe stripe[BOOK_STRIPES];
};

int orderbook_create(size_t history, struct orderbook **out)
{
    struct orderbook *b = shop_cache_zalloc(sizeof(*b));
    int err = -ENOMEM;

    if (!b)
        goto fail;
    b->history = history;
    b->slots = calloc(history, sizeof(*b->slots));
    if (!b->slots)
        goto fail;
    for (; b->stripes_ready < BOOK_STRIPES; b->stripes_ready++) {
        err = -pthread_mutex_init(&b->stripe[b->stripes_ready].lock, NULL);
        if (err)
            goto fail;
    }
    *out = b;
    return 0;

fail:
    orderbook_destroy(b);
    *out = NULL;
    return err;
}

void orderbook_destroy(struct orderbook *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->stripes_ready; i++)
        pthread_mutex_destroy(&b->stripe[i].lock);
    free(b->slots);
    free(b);
}

void orderbook_put(struct orderbook *b, const struct order *o)
{
    size_t k = (size_t)(o->id % b->history);
    pthread_mutex_t *lock = &b->stripe[k % BOOK_STRIPES].lock;
    struct order *slot = &b->slots[k];

    pthread_mutex_lock(lock);
    if (slot->id < o->id || (slot->id == o->id && o->status != ORDER_QUEUED))
        *slot = *o;
    pthread_mutex_unlock(lock);
}

int orderbook_get(struct orderbook *b, uint64_t id, struct order *out)
{
    size_t k = (size_t)(id % b->history);
    pthread_mutex_t *lock = &b->stripe[k % BOOK_STRIPES].lock;
    int ret = -ENOENT;

    if (id == 0)
        return -ENOENT;
    pthread_mutex_lock(lock);
    if (b->slots[k].id == id) {
        *out = b->slots[k];
        ret = 0;
    }
    pthread_mutex_unlock(lock);
    return ret;
}
