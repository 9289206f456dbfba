/*
 * store.c - dispatch from store.h to the backend chosen at open, and the
 * helpers every backend shares.
 *
 * The backend table is fixed at open and read-only afterwards, so the
 * dispatch needs no lock: each call costs one indirect call.
 */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
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

/* Copy `body` into `out` (room for STORE_ANSWER_MAX + 1), replacing each
 * of the `n` placeholders `ph[i]` with the decimal `val[i]`. Returns the
 * length, or -EINVAL if the result would not fit. */
static int render(const char *body, size_t len, const char *const *ph,
                  const char *const *val, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = 0;
        while (k < n && (strlen(ph[k]) > len - i ||
                         memcmp(body + i, ph[k], strlen(ph[k])) != 0))
            k++;
        const char *piece = k < n ? val[k] : body + i;
        size_t plen = k < n ? strlen(val[k]) : 1;
        if (o + plen > STORE_ANSWER_MAX)
            return -EINVAL;
        memcpy(out + o, piece, plen);
        o += plen;
        i += k < n ? strlen(ph[k]) : 1;
    }
    out[o] = '\0';
    return (int)o;
}

int store_render_answer(const char *body, size_t len, uint64_t id, char *out)
{
    static const char *const ph[] = {STORE_ID_PLACEHOLDER};
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, id);
    const char *const val[] = {num};
    return render(body, len, ph, val, 1, out);
}

int store_render_restock(const char *body, size_t len, int64_t stock,
                         int64_t sold, int64_t restocked, char *out)
{
    static const char *const ph[] = {STORE_STOCK_PLACEHOLDER,
                                     STORE_SOLD_PLACEHOLDER,
                                     STORE_RESTOCKED_PLACEHOLDER};
    char a[24], b[24], c[24];
    snprintf(a, sizeof(a), "%" PRId64, stock);
    snprintf(b, sizeof(b), "%" PRId64, sold);
    snprintf(c, sizeof(c), "%" PRId64, restocked);
    const char *const val[] = {a, b, c};
    return render(body, len, ph, val, 3, out);
}
