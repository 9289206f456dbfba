/*
 * store.c - dispatch from store.h to the backend chosen at open, and the
 * helpers every backend shares.
 *
 * The backend table is fixed at open and read-only afterwards, so the
 * dispatch needs no lock: each call costs one indirect call.
 */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

static const struct store_backend *backend_of(enum store_kind kind)
{
    switch (kind) {
    case STORE_MEMORY:
        return &store_memory_backend;
    case STORE_SQLITE:
        return &store_sqlite_backend;
    case STORE_REDIS:
        return &store_redis_backend;
    }
    return NULL;
}

const char *store_kind_name(enum store_kind kind)
{
    switch (kind) {
    case STORE_MEMORY:
        return "memory";
    case STORE_SQLITE:
        return "sqlite";
    case STORE_REDIS:
        return "redis";
    }
    return "unknown";
}

int store_open(const struct store_options *opt, struct store **out, char *err,
               size_t errlen)
{
    *out = NULL;
    const struct store_backend *be = opt ? backend_of(opt->kind) : NULL;
    if (be == NULL) {
        snprintf(err, errlen, "store %s is not built into this shopd",
                 opt ? store_kind_name(opt->kind) : "(none)");
        return -EINVAL;
    }
    int rc = be->open(opt, out, err, errlen);
    if (rc == 0)
        (*out)->be = be;
    return rc;
}

void store_close(struct store *st)
{
    if (st != NULL)
        st->be->close(st);
}

enum store_kind store_kind(const struct store *st)
{
    return st->be->kind;
}

unsigned store_caps(const struct store *st)
{
    return st->be->caps;
}

bool store_durable(const struct store *st)
{
    return st != NULL && (st->be->caps & STORE_CAP_DURABLE) != 0;
}

int store_load(struct store *st, const struct store_product *catalog, size_t n,
               struct store_state *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (catalog == NULL || n == 0) {
        snprintf(err, errlen, "the catalog is empty");
        return -EINVAL;
    }
    return st->be->load(st, catalog, n, out, err, errlen);
}

void store_state_free(struct store_state *s)
{
    if (s == NULL)
        return;
    free(s->products);
    free(s->unfinished);
    memset(s, 0, sizeof(*s));
}

int store_commit(struct store *st, struct store_batch *b)
{
    return st->be->commit(st, b);
}

int store_order_get(struct store *st, uint64_t id, struct store_order *out)
{
    if (id == 0)
        return -ENOENT;
    return st->be->order_get(st, id, out);
}

int store_idem_get(struct store *st, const char *endpoint, const char *key,
                   size_t key_len, struct store_answer *out)
{
    if (key_len == 0 || key_len > STORE_IDEM_KEY_MAX)
        return -EINVAL;
    return st->be->idem_get(st, endpoint, key, key_len, out);
}

int store_take(struct store *st, unsigned worker, struct store_order *out,
               size_t max, unsigned wait_ms)
{
    if (st->be->take == NULL)
        return -ENOTSUP;
    return st->be->take(st, worker, out, max, wait_ms);
}

int store_products_get(struct store *st, struct store_product *out, size_t n)
{
    if (st->be->products_get == NULL)
        return -ENOTSUP;
    return st->be->products_get(st, out, n);
}

int store_shop_get(struct store *st, struct store_shop *out)
{
    memset(out, 0, sizeof(*out));
    if (st->be->shop_get == NULL)
        return -ENOTSUP;
    return st->be->shop_get(st, out);
}

bool store_available(struct store *st)
{
    return st->be->available(st);
}

void store_stats(struct store *st, struct store_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = st->be->kind;
    st->be->stats(st, out);
}
