/*
 * store/internal.h - the backend table behind store.h, shared by the
 * store's own .c files only.
 *
 * Each backend fills one static const struct store_backend; store.c
 * dispatches through it. A backend's state begins with a struct store, so
 * the public handle and the backend's own struct are one allocation.
 *
 * Thread safety: as store.h says for the function each entry implements.
 */
#ifndef SHOPD_STORE_INTERNAL_H
#define SHOPD_STORE_INTERNAL_H

#include "store/store.h"

#include "common/time.h"

struct store_backend {
    enum store_kind kind;
    unsigned caps; /* enum store_cap bits */
    int (*open)(const struct store_options *opt, struct store **out, char *err,
                size_t errlen);
    void (*close)(struct store *st);
    int (*load)(struct store *st, const struct store_product *catalog, size_t n,
                struct store_state *out, char *err, size_t errlen);
    int (*commit)(struct store *st, struct store_batch *b);
    int (*order_get)(struct store *st, uint64_t id, struct store_order *out);
    int (*idem_get)(struct store *st, const char *endpoint, const char *key,
                    size_t key_len, struct store_answer *out);
    /* NULL unless STORE_CAP_SHARED */
    int (*take)(struct store *st, unsigned worker, struct store_order *out,
                size_t max, unsigned wait_ms);
    /* NULL unless STORE_CAP_SHARED */
    int (*products_get)(struct store *st, struct store_product *out, size_t n);
    int (*shop_get)(struct store *st, struct store_shop *out);
    bool (*available)(struct store *st);
    void (*stats)(struct store *st, struct store_stats *out);
};

/* The head of every backend's state. */
struct store {
    const struct store_backend *be;
};

extern const struct store_backend store_memory_backend;
extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_redis_backend;

#endif /* SHOPD_STORE_INTERNAL_H */
