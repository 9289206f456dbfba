/*
 * redis.c - the Redis store: any number of shopd instances, one shop.
 *
 * Everything shared lives in Redis (>= 7.0): products and their stock,
 * orders, the order id counter, idempotency keys, and the belt, a Redis
 * Stream drained by one consumer group ("workers") whose consumers are the
 * instances (--instance). Every change is a Redis Function from
 * store/redis_lib.lua, compiled into the binary and loaded (FUNCTION LOAD
 * REPLACE) at open, so each step is atomic in Redis and every instance
 * runs the same code:
 *   shopd_seed     seed an empty shop, add products it lacks (once, even
 *                  when instances start together: it is one atomic step);
 *   shopd_accept   per order: idempotency key, shop-wide belt bound
 *                  (queue_capacity) -> full, next id, XADD, order hash, key;
 *   shopd_process  per order: skip if final (a second delivery, counted),
 *                  else take the stock if there is enough, set the final
 *                  status and who processed it, XACK and XDEL its entry;
 *   shopd_restock, shopd_products, shopd_stats, shopd_reclaimed.
 *
 * The store decides (STORE_CAP_DECIDES): results reach store_commit() as
 * STORE_QUEUED and shopd_process fills in the status. One store_commit()
 * is one round trip: MULTI, the FCALLs (128 orders per FCALL), EXEC, so a
 * batch is applied whole or not at all when the connection drops.
 *
 * Delivery is at least once. store_take() hands out, in this order: this
 * consumer's own pending entries found at store_load() (a previous life of
 * this instance name), entries of any consumer idle longer than reclaim_ms
 * (XAUTOCLAIM, at most every reclaim_ms / 2, one thread at a time: a dead
 * instance's orders), then new entries (XREADGROUP >, blocking up to
 * wait_ms). An entry leaves the pending list only in the step that makes
 * its order final, so an order that got a 202 is never lost: whoever
 * holds it dies, someone else claims it.
 *
 * Connections: hiredis contexts are not thread-safe, so each call borrows
 * one from a small pool (`pool_mu`, never held across I/O) and gives it
 * back, or drops it after an I/O error; a new one is dialled when the pool
 * is empty. So the committer and every worker each use their own.
 *
 * Locks: `pool_mu` (the idle connections) and `own_mu` (the own pending
 * orders left to hand out) are leaves, never held together or across I/O.
 */
#include "store/internal.h"

#include <errno.h>
#include <hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREFIX             "{shopd}" /* a hash tag: every key in one slot */
#define GROUP              "workers"
#define CHUNK              128  /* orders per FCALL */
#define POOL_MAX           64   /* idle connections kept */
#define IO_TIMEOUT_MS      5000 /* one reply may take this long */
#define CONNECT_TIMEOUT_MS 1000
#define WAIT_MAX_MS        2000 /* longest XREADGROUP BLOCK */
#define OPEN_WAIT_MS       10000

/* The stream of orders not final yet (the shared belt). */
static const char key_orders[] = PREFIX ":orders";

extern const char redis_lib_lua[];
extern const char redis_lib_lua_end[];

struct sku_slot {
    const char *sku; /* points into `products` */
    uint32_t index;
};

struct redis_store {
    struct store base;
    char host[256];
    char path[256];
    char password[256]; /* secret: never logged or reported */
    char instance[STORE_INSTANCE_MAX + 1];
    unsigned port, db, reclaim_ms, ttl;
    size_t capacity;
    char describe[256];

    pthread_mutex_t pool_mu; /* guards pool and npool */
    redisContext *pool[POOL_MAX];
    size_t npool;

    /* Set by store_load(), read-only afterwards (load runs before any
     * commit or take). */
    struct store_product *catalog; /* for seeding again */
    size_t ncatalog;
    struct store_product *products;
    size_t nproducts;
    struct sku_slot *by_sku; /* sorted by SKU */

    pthread_mutex_t own_mu;  /* guards own, nown, own_next */
    struct store_order *own; /* own pending orders found at load */
    size_t nown, own_next;

    _Atomic bool reclaiming;      /* one thread runs XAUTOCLAIM */
    _Atomic int64_t next_reclaim; /* CLOCK_MONOTONIC ns */
    char reclaim_cursor[48];      /* by the thread holding `reclaiming` */

    _Atomic bool available; /* the last commit succeeded */
    _Atomic bool reseed;    /* the shop or the library is gone: set up */
    _Atomic uint64_t round_trips, failures, reclaimed, duplicates;
};

/* ---- small helpers --------------------------------------------------- */

static int64_t mono_ns(void)
{
    return time_now_ns(CLOCK_MONOTONIC);
}

static void pause_ms(unsigned ms)
{
    struct timespec req = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&req, &req) == -1 && errno == EINTR)
        ;
}

static void copy_str(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int64_t reply_int(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

static bool is_array(const redisReply *r, size_t min)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= min;
}

static bool is_str(const redisReply *r)
{
    return r != NULL &&
           (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* An error reply saying the shop or the library is missing from Redis. */
static bool gone(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR &&
           (strstr(r->str, "NOSHOP") != NULL ||
            strstr(r->str, "NOGROUP") != NULL ||
            strstr(r->str, "Function not found") != NULL);
}

static int sku_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sku_slot *)a)->sku,
                  ((const struct sku_slot *)b)->sku);
}

/* The index of `sku` in the loaded products, or -1. */
static int64_t find_sku(const struct redis_store *rs, const char *sku)
{
    struct sku_slot key = {.sku = sku};
    const struct sku_slot *hit =
        rs->by_sku
            ? bsearch(&key, rs->by_sku, rs->nproducts, sizeof(key), sku_cmp)
            : NULL;
    return hit ? (int64_t)hit->index : -1;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Parse a remembered answer, "<fingerprint hex>\n<status>\n<id>\n<body>"
 * (the fingerprint is the canonical request, hex-encoded by the library so
 * that any byte is safe in the framing). Returns 0 or -EIO when it is not
 * in that form.
 */
static int parse_answer(const char *v, size_t len, struct store_answer *out)
{
    const char *end = v + len;
    const char *nl1 = memchr(v, '\n', len);
    if (nl1 == NULL || (nl1 - v) % 2 != 0 ||
        nl1 - v > (ptrdiff_t)2 * STORE_FINGERPRINT_MAX)
        return -EIO;
    size_t n = (size_t)(nl1 - v) / 2;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val(v[2 * i]), lo = hex_val(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EIO;
        out->fingerprint[i] = (char)(hi << 4 | lo);
    }
    out->fingerprint_len = n;
    const char *nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1));
    const char *nl3 =
        nl2 ? memchr(nl2 + 1, '\n', (size_t)(end - nl2 - 1)) : NULL;
    if (nl3 == NULL)
        return -EIO;
    out->status = (unsigned)strtoul(nl1 + 1, NULL, 10);
    out->order_id = strtoull(nl2 + 1, NULL, 10);
    size_t blen = (size_t)(end - nl3 - 1);
    if (blen > STORE_ANSWER_MAX)
        return -EIO;
    memcpy(out->body, nl3 + 1, blen);
    out->body[blen] = '\0';
    out->body_len = blen;
    return 0;
}

/* ---- connections ----------------------------------------------------- */

/* Send the library: FUNCTION LOAD REPLACE. Returns 0, -EIO or -EPROTO. */
static int load_library(redisContext *c, char *err, size_t errlen)
{
    size_t liblen = (size_t)(redis_lib_lua_end - redis_lib_lua);
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", redis_lib_lua};
    const size_t lens[] = {8, 4, 7, liblen};
    redisReply *r = redisCommandArgv(c, 4, argv, lens);

    if (r == NULL) {
        snprintf(err, errlen, "%s", c->errstr);
        return -EIO;
    }
    int ret = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "FUNCTION LOAD (Redis >= 7.0 is needed): %s",
                 r->str);
        ret = strstr(r->str, "LOADING") ? -EIO : -EPROTO;
    }
    freeReplyObject(r);
    return ret;
}

/*
 * A fresh context, authenticated and on its database, or NULL with the
 * reason in `err`; `fatal` says retrying cannot help (AUTH or SELECT
 * refused).
 */
static redisContext *dial(const struct redis_store *rs, char *err,
                          size_t errlen, bool *fatal)
{
    struct timeval ct = {CONNECT_TIMEOUT_MS / 1000,
                         (CONNECT_TIMEOUT_MS % 1000) * 1000L};
    struct timeval io = {IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000L};
    redisContext *c;
    redisReply *r = NULL;

    *fatal = false;
    if (rs->host[0] != '\0')
        c = redisConnectWithTimeout(rs->host, (int)rs->port, ct);
    else
        c = redisConnectUnixWithTimeout(rs->path, ct);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "%s", c->errstr);
        goto fail;
    }
    redisSetTimeout(c, io);
    if (rs->host[0] != '\0')
        redisEnableKeepAlive(c);
    if (rs->password[0] != '\0') {
        const char *argv[] = {"AUTH", rs->password};
        r = redisCommandArgv(c, 2, argv, NULL);
        if (r == NULL) {
            snprintf(err, errlen, "%s", c->errstr);
            goto fail;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            /* Redis's own text; it never repeats the password. */
            snprintf(err, errlen, "AUTH refused: %s", r->str);
            *fatal = strstr(r->str, "LOADING") == NULL;
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (rs->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%u", rs->db);
        const char *argv[] = {"SELECT", db};
        r = redisCommandArgv(c, 2, argv, NULL);
        if (r == NULL) {
            snprintf(err, errlen, "%s", c->errstr);
            goto fail;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "SELECT %u: %s", rs->db, r->str);
            *fatal = strstr(r->str, "LOADING") == NULL;
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    return c;

fail:
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return NULL;
}

/* Borrow a connection (dialling one if none is idle), or NULL. */
static redisContext *borrow(struct redis_store *rs)
{
    redisContext *c = NULL;
    char err[256];
    bool fatal;

    pthread_mutex_lock(&rs->pool_mu);
    if (rs->npool > 0)
        c = rs->pool[--rs->npool];
    pthread_mutex_unlock(&rs->pool_mu);
    if (c == NULL)
        c = dial(rs, err, sizeof(err), &fatal);
    return c;
}

/*
 * Give a connection back; a broken one (`ok` false) is closed, and so are
 * the idle ones: they went to the same server, which most likely went
 * away, so the next caller dials afresh instead of finding each broken
 * connection in turn.
 */
static void give_back(struct redis_store *rs, redisContext *c, bool ok)
{
    redisContext *stale[POOL_MAX];
    size_t nstale = 0;

    if (c == NULL)
        return;
    pthread_mutex_lock(&rs->pool_mu);
    if (ok && c->err == 0) {
        if (rs->npool < POOL_MAX) {
            rs->pool[rs->npool++] = c;
            c = NULL;
        }
    } else {
        nstale = rs->npool;
        memcpy(stale, rs->pool, nstale * sizeof(redisContext *));
        rs->npool = 0;
    }
    pthread_mutex_unlock(&rs->pool_mu);
    redisFree(c);
    for (size_t i = 0; i < nstale; i++)
        redisFree(stale[i]);
}

/* ---- seeding --------------------------------------------------------- */

/*
 * FCALL shopd_seed with the catalog. Stores whether the shop was empty
 * and, in `added` (room for ncatalog flags), which catalog products were
 * new. Returns 0, -EIO or -EPROTO (message in `err`).
 */
static int seed(struct redis_store *rs, redisContext *c, bool *was_empty,
                bool *added, char *err, size_t errlen)
{
    size_t n = rs->ncatalog;
    size_t argc = 5 + 4 * n;
    const char **argv = calloc(argc, sizeof(*argv));
    char(*nums)[2][24] = calloc(n + 1, sizeof(*nums));
    redisReply *r = NULL;
    int ret = -ENOMEM;

    if (!argv || !nums) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    argv[0] = "FCALL";
    argv[1] = "shopd_seed";
    argv[2] = "1";
    argv[3] = PREFIX;
    snprintf(nums[n][0], sizeof(nums[n][0]), "%zu", n);
    argv[4] = nums[n][0];
    for (size_t i = 0; i < n; i++) {
        const struct store_product *p = &rs->catalog[i];
        snprintf(nums[i][0], sizeof(nums[i][0]), "%" PRId64, p->price_cents);
        snprintf(nums[i][1], sizeof(nums[i][1]), "%" PRId64, p->initial);
        argv[5 + 4 * i] = p->sku;
        argv[6 + 4 * i] = p->name;
        argv[7 + 4 * i] = nums[i][0];
        argv[8 + 4 * i] = nums[i][1];
    }
    r = redisCommandArgv(c, (int)argc, argv, NULL);
    count(&rs->round_trips, 1);
    ret = -EIO;
    if (r == NULL) {
        snprintf(err, errlen, "%s", c->errstr);
        goto out;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "seeding the shop: %s", r->str);
        ret = strstr(r->str, "LOADING") ? -EIO : -EPROTO;
        goto out;
    }
    if (!is_array(r, 1)) {
        snprintf(err, errlen, "seeding the shop: unexpected reply");
        ret = -EPROTO;
        goto out;
    }
    if (was_empty)
        *was_empty = reply_int(r->element[0]) == 1;
    for (size_t i = 1; added && i < r->elements; i++)
        for (size_t k = 0; k < n; k++)
            if (is_str(r->element[i]) &&
                strcmp(r->element[i]->str, rs->catalog[k].sku) == 0)
                added[k] = true;
    ret = 0;
out:
    if (r)
        freeReplyObject(r);
    free(nums);
    free(argv);
    return ret;
}

/* After a "gone" reply: load the library and seed again. */
static void set_up_again(struct redis_store *rs, redisContext *c)
{
    char err[256];

    if (load_library(c, err, sizeof(err)) == 0 &&
        seed(rs, c, NULL, NULL, err, sizeof(err)) == 0)
        atomic_store(&rs->reseed, false);
}

/* ---- open, load, close ----------------------------------------------- */

static void rd_close(struct store *st)
{
    struct redis_store *rs = (struct redis_store *)st;

    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->npool; i++)
        redisFree(rs->pool[i]);
    pthread_mutex_destroy(&rs->own_mu);
    pthread_mutex_destroy(&rs->pool_mu);
    free(rs->own);
    free(rs->by_sku);
    free(rs->products);
    free(rs->catalog);
    free(rs);
}

static int rd_open(const struct store_options *opt, struct store **out,
                   char *err, size_t errlen)
{
    struct redis_store *rs = calloc(1, sizeof(*rs));
    char why[256] = "";
    int ret = -ENOMEM;

    *out = NULL;
    if (rs == NULL) {
        snprintf(err, errlen, "store redis: out of memory");
        return ret;
    }
    pthread_mutex_init(&rs->pool_mu, NULL);
    pthread_mutex_init(&rs->own_mu, NULL);
    snprintf(rs->host, sizeof(rs->host), "%s", opt->host ? opt->host : "");
    snprintf(rs->path, sizeof(rs->path), "%s", opt->path ? opt->path : "");
    snprintf(rs->password, sizeof(rs->password), "%s",
             opt->password ? opt->password : "");
    rs->port = opt->port ? opt->port : 6379;
    rs->db = opt->db;
    rs->reclaim_ms = opt->reclaim_ms ? opt->reclaim_ms : 5000;
    rs->ttl = opt->idempotency_ttl ? opt->idempotency_ttl : 86400;
    rs->capacity = opt->queue_capacity ? opt->queue_capacity : 1024;
    if (opt->instance == NULL || opt->instance[0] == '\0' ||
        strlen(opt->instance) > STORE_INSTANCE_MAX ||
        (rs->host[0] == '\0' && rs->path[0] == '\0')) {
        snprintf(err, errlen, "store redis: bad options");
        ret = -EINVAL;
        goto fail;
    }
    snprintf(rs->instance, sizeof(rs->instance), "%s", opt->instance);
    if (rs->host[0] != '\0')
        snprintf(rs->describe, sizeof(rs->describe), "redis://%.180s:%u/%u",
                 rs->host, rs->port, rs->db);
    else
        snprintf(rs->describe, sizeof(rs->describe), "unix://%.180s?db=%u",
                 rs->path, rs->db);
    atomic_init(&rs->available, true);
    atomic_init(&rs->next_reclaim,
                mono_ns() + (int64_t)rs->reclaim_ms * 1000000 / 2);
    strcpy(rs->reclaim_cursor, "0-0");

    /* An unreachable (or still loading) Redis is retried for a while. */
    unsigned wait = opt->connect_wait_ms ? opt->connect_wait_ms : OPEN_WAIT_MS;
    int64_t give_up = mono_ns() + (int64_t)wait * 1000000;
    for (;;) {
        bool fatal = false;
        redisContext *c = dial(rs, why, sizeof(why), &fatal);
        if (c != NULL) {
            ret = load_library(c, why, sizeof(why));
            fatal = ret == -EPROTO;
            if (ret == 0) {
                give_back(rs, c, true);
                break;
            }
            redisFree(c);
        }
        if (fatal || mono_ns() >= give_up) {
            snprintf(err, errlen, "store %s: %s", rs->describe, why);
            ret = fatal ? -EPROTO : -EIO;
            goto fail;
        }
        pause_ms(200);
    }
    *out = &rs->base;
    return 0;

fail:
    rd_close(&rs->base);
    return ret;
}

/* An order from a stream entry [id, [field, value, ...]]. Returns 0, or
 * -ENOENT for an entry that carries no order (or an unknown product: then
 * `id` still gets the order id, 0 if none). */
static int entry_order(const struct redis_store *rs, const redisReply *e,
                       struct store_order *o, uint64_t *id)
{
    char sku[STORE_SKU_MAX + 1] = "";

    memset(o, 0, sizeof(*o));
    o->worker = -1;
    *id = 0;
    if (!is_array(e, 2) || !is_array(e->element[1], 2))
        return -ENOENT;
    const redisReply *f = e->element[1];
    for (size_t j = 0; j + 1 < f->elements; j += 2) {
        const redisReply *k = f->element[j], *v = f->element[j + 1];
        if (!is_str(k) || !is_str(v))
            continue;
        if (strcmp(k->str, "id") == 0)
            o->id = strtoull(v->str, NULL, 10);
        else if (strcmp(k->str, "p") == 0)
            copy_str(sku, sizeof(sku), v->str, v->len);
        else if (strcmp(k->str, "q") == 0)
            o->quantity = (uint32_t)strtoul(v->str, NULL, 10);
        else if (strcmp(k->str, "t") == 0)
            o->accepted_ns = strtoll(v->str, NULL, 10);
        else if (strcmp(k->str, "by") == 0)
            copy_str(o->accepted_by, sizeof(o->accepted_by), v->str, v->len);
        else if (strcmp(k->str, "c") == 0) {
            o->has_customer = true;
            copy_str(o->customer, sizeof(o->customer), v->str, v->len);
        }
    }
    *id = o->id;
    int64_t idx = find_sku(rs, sku);
    if (o->id == 0 || idx < 0)
        return -ENOENT;
    o->product = (uint32_t)idx;
    o->status = STORE_QUEUED;
    return 0;
}

/* Collect this consumer's own pending orders (a previous life's). */
static int load_own(struct redis_store *rs, redisContext *c, char *err,
                    size_t errlen)
{
    char cursor[48] = "0";
    size_t cap = 0;

    for (;;) {
        const char *argv[] = {"XREADGROUP", "GROUP",    GROUP,
                              rs->instance, "COUNT",    "1000",
                              "STREAMS",    key_orders, cursor};
        redisReply *r = redisCommandArgv(c, 9, argv, NULL);
        count(&rs->round_trips, 1);
        if (r == NULL) {
            snprintf(err, errlen, "%s", c->errstr);
            return -EIO;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "reading own pending orders: %s", r->str);
            freeReplyObject(r);
            return -EPROTO;
        }
        const redisReply *list = NULL;
        if (is_array(r, 1) && is_array(r->element[0], 2))
            list = r->element[0]->element[1];
        size_t n = is_array(list, 0) ? list->elements : 0;
        if (n == 0) {
            freeReplyObject(r);
            return 0;
        }
        if (rs->nown + n > cap) {
            size_t ncap = (rs->nown + n) * 2;
            struct store_order *p = realloc(rs->own, ncap * sizeof(*p));
            if (p == NULL) {
                freeReplyObject(r);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
            }
            rs->own = p;
            cap = ncap;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t id;
            if (entry_order(rs, list->element[i], &rs->own[rs->nown], &id) == 0)
                rs->nown++;
        }
        const redisReply *last = list->element[n - 1];
        if (is_array(last, 1) && is_str(last->element[0]))
            copy_str(cursor, sizeof(cursor), last->element[0]->str,
                     last->element[0]->len);
        freeReplyObject(r);
    }
}

/* FCALL shopd_products into a malloc'd array. Returns 0, -EIO, -ENOMEM. */
static int read_products(struct redis_store *rs, redisContext *c,
                         struct store_product **out, size_t *n)
{
    const char *argv[] = {"FCALL", "shopd_products", "1", PREFIX};
    redisReply *r = redisCommandArgv(c, 4, argv, NULL);
    int ret = -EIO;

    count(&rs->round_trips, 1);
    *out = NULL;
    *n = 0;
    if (!is_array(r, 0) || r->elements % 7 != 0)
        goto out;
    size_t k = r->elements / 7;
    struct store_product *p = calloc(k ? k : 1, sizeof(*p));
    ret = -ENOMEM;
    if (p == NULL)
        goto out;
    for (size_t i = 0; i < k; i++) {
        redisReply **e = &r->element[i * 7];
        if (is_str(e[0]))
            copy_str(p[i].sku, sizeof(p[i].sku), e[0]->str, e[0]->len);
        if (is_str(e[1]))
            copy_str(p[i].name, sizeof(p[i].name), e[1]->str, e[1]->len);
        p[i].price_cents = reply_int(e[2]);
        p[i].initial = reply_int(e[3]);
        p[i].stock = reply_int(e[4]);
        p[i].sold = reply_int(e[5]);
        p[i].restocked = reply_int(e[6]);
    }
    *out = p;
    *n = k;
    ret = 0;
out:
    if (r)
        freeReplyObject(r);
    return ret;
}

static int rd_load(struct store *st, const struct store_product *catalog,
                   size_t n, struct store_state *out, char *err, size_t errlen)
{
    struct redis_store *rs = (struct redis_store *)st;
    struct store_product *prods = NULL, *copy = NULL;
    size_t np = 0;
    bool *added = calloc(n, sizeof(*added));
    bool was_empty = false;
    char why[256] = "";
    int ret = -ENOMEM;
    redisContext *c = NULL;

    free(rs->catalog);
    rs->catalog = calloc(n, sizeof(*rs->catalog));
    if (rs->catalog == NULL || added == NULL)
        goto fail;
    memcpy(rs->catalog, catalog, n * sizeof(*catalog));
    rs->ncatalog = n;
    c = borrow(rs);
    ret = -EIO;
    if (c == NULL) {
        snprintf(why, sizeof(why), "cannot connect");
        goto fail;
    }
    ret = seed(rs, c, &was_empty, added, why, sizeof(why));
    if (ret < 0)
        goto fail;
    ret = read_products(rs, c, &prods, &np);
    if (ret < 0) {
        snprintf(why, sizeof(why), "reading the products");
        goto fail;
    }
    ret = -ENOMEM;
    copy = calloc(np ? np : 1, sizeof(*copy));
    struct sku_slot *idx = calloc(np ? np : 1, sizeof(*idx));
    if (copy == NULL || idx == NULL) {
        free(idx);
        goto fail;
    }
    for (size_t i = 0; i < np; i++)
        for (size_t k = 0; k < n; k++)
            if (added[k] && !was_empty &&
                strcmp(prods[i].sku, catalog[k].sku) == 0) {
                prods[i].added = true;
                out->nadded++;
            }
    memcpy(copy, prods, np * sizeof(*prods));
    free(rs->products);
    free(rs->by_sku);
    rs->products = copy;
    rs->nproducts = np;
    for (size_t i = 0; i < np; i++) {
        idx[i].sku = rs->products[i].sku;
        idx[i].index = (uint32_t)i;
    }
    qsort(idx, np, sizeof(*idx), sku_cmp);
    rs->by_sku = idx;
    copy = NULL;

    /* The next id. */
    const char *argv[] = {"GET", PREFIX ":next_id"};
    redisReply *r = redisCommandArgv(c, 2, argv, NULL);
    count(&rs->round_trips, 1);
    ret = -EIO;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "reading the next order id");
        if (r)
            freeReplyObject(r);
        goto fail;
    }
    out->next_id = (uint64_t)reply_int(r) + 1;
    freeReplyObject(r);

    pthread_mutex_lock(&rs->own_mu);
    rs->nown = rs->own_next = 0;
    pthread_mutex_unlock(&rs->own_mu);
    ret = load_own(rs, c, why, sizeof(why));
    if (ret < 0)
        goto fail;

    give_back(rs, c, true);
    out->products = prods;
    out->nproducts = np;
    out->seeded = was_empty;
    /* Unfinished orders stay on the shared belt: store_take() hands this
     * instance's own ones out first. */
    out->unfinished = NULL;
    out->nunfinished = 0;
    free(added);
    return 0;

fail:
    snprintf(err, errlen, "store %s: %s", rs->describe, why);
    give_back(rs, c, false);
    free(copy);
    free(prods);
    free(added);
    return ret;
}

/* ---- commit ---------------------------------------------------------- */

/* Argument strings of one commit, freed after it. */
struct args {
    const char **v;
    size_t *len;
    size_t n, cap;
    char (*num)[72];
    size_t nnum, capnum;
};

static void arg(struct args *a, const char *s, size_t len)
{
    a->v[a->n] = s;
    a->len[a->n] = len;
    a->n++;
}

static void arg_s(struct args *a, const char *s)
{
    arg(a, s, strlen(s));
}

/* A number (or a short formatted string) kept alive until the commit. */
static const char *arg_fmt(struct args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *arg_fmt(struct args *a, const char *fmt, ...)
{
    va_list ap;
    char *s = a->num[a->nnum++];

    va_start(ap, fmt);
    vsnprintf(s, sizeof(a->num[0]), fmt, ap);
    va_end(ap);
    arg_s(a, s);
    return s;
}

/* Append the arguments of one idempotency key (endpoint, key,
 * fingerprint, status, body). */
static void arg_idem(struct args *a, const struct store_idem *idem,
                     const char *dflt_ep)
{
    if (idem == NULL) {
        arg_s(a, dflt_ep);
        arg_s(a, "");
        arg_s(a, "");
        arg_s(a, "0");
        arg_s(a, "");
        return;
    }
    arg_s(a, idem->endpoint);
    arg(a, idem->key, idem->key_len);
    arg(a, idem->fingerprint, idem->fingerprint_len);
    arg_fmt(a, "%u", idem->status);
    arg(a, idem->body ? idem->body : "", idem->body ? idem->body_len : 0);
}

/* Send one command from `a` (from argument `first` to the end). */
static void send_cmd(redisContext *c, struct args *a, size_t first)
{
    redisAppendCommandArgv(c, (int)(a->n - first), a->v + first,
                           a->len + first);
}

/* What a commit reply says of the result at `r` (an FCALL's array). */
static int take_results(struct redis_store *rs, const redisReply *r,
                        struct store_result *res, size_t m)
{
    if (!is_array(r, 2 * m))
        return -EIO;
    for (size_t i = 0; i < m; i++) {
        int status = (int)reply_int(r->element[2 * i]);
        bool applied = reply_int(r->element[2 * i + 1]) == 1;
        if (status < STORE_QUEUED || status > STORE_OUT_OF_STOCK)
            status = STORE_QUEUED;
        res[i].status = (enum store_status)status;
        res[i].applied = applied;
        if (!applied)
            count(&rs->duplicates, 1);
    }
    return 0;
}

static int take_accepts(const redisReply *r, struct store_accept *acc, size_t m)
{
    if (!is_array(r, 2 * m))
        return -EIO;
    for (size_t i = 0; i < m; i++) {
        int code = (int)reply_int(r->element[2 * i]);
        const redisReply *v = r->element[2 * i + 1];
        struct store_accept *a = &acc[i];
        if (code == 0) {
            a->result = STORE_ACCEPTED;
            a->order.id = (uint64_t)reply_int(v);
            a->order.status = STORE_QUEUED;
        } else if (code == 1) {
            a->result = STORE_FULL;
        } else {
            a->result = STORE_KEY_EXISTS;
            if (a->existing &&
                (!is_str(v) || parse_answer(v->str, v->len, a->existing) < 0))
                return -EIO;
        }
    }
    return 0;
}

static int take_restock(const redisReply *r, struct store_restock *rt)
{
    if (!is_array(r, 2))
        return -EIO;
    if (reply_int(r->element[0]) == 0 && r->elements >= 4) {
        rt->result = STORE_ACCEPTED;
        rt->stock = reply_int(r->element[1]);
        rt->sold = reply_int(r->element[2]);
        rt->restocked = reply_int(r->element[3]);
        return 0;
    }
    rt->result = STORE_KEY_EXISTS;
    if (rt->existing && (!is_str(r->element[1]) ||
                         parse_answer(r->element[1]->str, r->element[1]->len,
                                      rt->existing) < 0))
        return -EIO;
    return 0;
}

static int check_batch(const struct redis_store *rs,
                       const struct store_batch *b)
{
    for (size_t i = 0; i < b->naccepts; i++)
        if (b->accepts[i].order.product >= rs->nproducts)
            return -EINVAL;
    for (size_t i = 0; i < b->nrestocks; i++)
        if (b->restocks[i].product >= rs->nproducts)
            return -EINVAL;
    return 0;
}

static int rd_commit(struct store *st, struct store_batch *b)
{
    struct redis_store *rs = (struct redis_store *)st;
    size_t nres_calls = (b->nresults + CHUNK - 1) / CHUNK;
    size_t nacc_calls = (b->naccepts + CHUNK - 1) / CHUNK;
    size_t ncalls = nres_calls + nacc_calls + b->nrestocks;
    struct args a = {0};
    redisContext *c = NULL;
    redisReply *r = NULL;
    bool ok = false;
    int ret = check_batch(rs, b);

    if (ret < 0)
        return ret;
    ret = -ENOMEM;
    a.cap =
        2 + ncalls * 12 + 3 * b->nresults + 9 * b->naccepts + 12 * b->nrestocks;
    a.capnum = 8 + ncalls * 4 + 4 * (b->nresults + b->naccepts + b->nrestocks);
    a.v = calloc(a.cap, sizeof(*a.v));
    a.len = calloc(a.cap, sizeof(*a.len));
    a.num = calloc(a.capnum, sizeof(*a.num));
    char(*cust)[STORE_CUSTOMER_MAX + 2] =
        calloc(b->naccepts ? b->naccepts : 1, sizeof(*cust));
    if (!a.v || !a.len || !a.num || !cust)
        goto out;

    ret = -EIO;
    c = borrow(rs);
    if (c == NULL)
        goto out;
    if (atomic_load(&rs->reseed))
        set_up_again(rs, c);

    if (ncalls == 0) {
        /* A probe: one PING shows whether Redis answers. */
        r = redisCommand(c, "PING");
        count(&rs->round_trips, 1);
        ok = r != NULL && r->type != REDIS_REPLY_ERROR;
        ret = ok ? 0 : -EIO;
        goto out;
    }

    arg_s(&a, "MULTI");
    send_cmd(c, &a, 0);
    /* Results first: they free belt slots for the accepts after them. */
    for (size_t k = 0; k < nres_calls; k++) {
        size_t first = k * CHUNK;
        size_t m = b->nresults - first < CHUNK ? b->nresults - first : CHUNK;
        size_t at = a.n;
        arg_s(&a, "FCALL");
        arg_s(&a, "shopd_process");
        arg_s(&a, "1");
        arg_s(&a, PREFIX);
        arg_s(&a, rs->instance);
        arg_fmt(&a, "%zu", m);
        for (size_t i = 0; i < m; i++) {
            const struct store_result *res = &b->results[first + i];
            arg_fmt(&a, "%" PRIu64, res->id);
            arg_fmt(&a, "%" PRId32, res->worker);
            arg_fmt(&a, "%" PRId64, res->processed_ns);
        }
        send_cmd(c, &a, at);
    }
    for (size_t k = 0; k < nacc_calls; k++) {
        size_t first = k * CHUNK;
        size_t m = b->naccepts - first < CHUNK ? b->naccepts - first : CHUNK;
        size_t at = a.n;
        arg_s(&a, "FCALL");
        arg_s(&a, "shopd_accept");
        arg_s(&a, "1");
        arg_s(&a, PREFIX);
        arg_fmt(&a, "%zu", rs->capacity);
        arg_s(&a, rs->instance);
        arg_fmt(&a, "%u", rs->ttl);
        arg_fmt(&a, "%zu", m);
        for (size_t i = 0; i < m; i++) {
            const struct store_accept *acc = &b->accepts[first + i];
            const struct store_order *o = &acc->order;
            char *cu = cust[first + i];
            if (o->has_customer) {
                cu[0] = '+';
                copy_str(cu + 1, STORE_CUSTOMER_MAX + 1, o->customer,
                         strnlen(o->customer, STORE_CUSTOMER_MAX));
            } else {
                cu[0] = '\0';
            }
            arg_s(&a, rs->products[o->product].sku);
            arg_fmt(&a, "%" PRIu32, o->quantity);
            arg_s(&a, cu);
            arg_fmt(&a, "%" PRId64, o->accepted_ns);
            arg_idem(&a, acc->idem, "buy");
        }
        send_cmd(c, &a, at);
    }
    for (size_t i = 0; i < b->nrestocks; i++) {
        const struct store_restock *rt = &b->restocks[i];
        size_t at = a.n;
        arg_s(&a, "FCALL");
        arg_s(&a, "shopd_restock");
        arg_s(&a, "1");
        arg_s(&a, PREFIX);
        arg_s(&a, rs->products[rt->product].sku);
        arg_fmt(&a, "%" PRId64, rt->quantity);
        arg_idem(&a, rt->idem, "restock");
        arg_fmt(&a, "%u", rs->ttl);
        send_cmd(c, &a, at);
    }
    size_t at = a.n;
    arg_s(&a, "EXEC");
    send_cmd(c, &a, at);

    /* MULTI's +OK and each command's +QUEUED, then EXEC's array. */
    for (size_t i = 0; i < 1 + ncalls; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            r = NULL;
            goto out;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (redisGetReply(c, (void **)&r) != REDIS_OK) {
        r = NULL;
        goto out;
    }
    count(&rs->round_trips, 1);
    ok = true; /* the connection is in step, whatever EXEC said */
    if (!is_array(r, ncalls))
        goto out;
    for (size_t i = 0; i < ncalls; i++)
        if (r->element[i]->type == REDIS_REPLY_ERROR) {
            if (gone(r->element[i]))
                atomic_store(&rs->reseed, true);
            goto out;
        }
    size_t e = 0;
    for (size_t k = 0; k < nres_calls; k++, e++) {
        size_t first = k * CHUNK;
        size_t m = b->nresults - first < CHUNK ? b->nresults - first : CHUNK;
        if (take_results(rs, r->element[e], &b->results[first], m) < 0)
            goto out;
    }
    for (size_t k = 0; k < nacc_calls; k++, e++) {
        size_t first = k * CHUNK;
        size_t m = b->naccepts - first < CHUNK ? b->naccepts - first : CHUNK;
        if (take_accepts(r->element[e], &b->accepts[first], m) < 0)
            goto out;
    }
    for (size_t i = 0; i < b->nrestocks; i++, e++)
        if (take_restock(r->element[e], &b->restocks[i]) < 0)
            goto out;
    ret = 0;
out:
    if (r)
        freeReplyObject(r);
    give_back(rs, c, ok);
    free(cust);
    free(a.num);
    free(a.len);
    free(a.v);
    atomic_store(&rs->available, ret == 0);
    if (ret == -EIO)
        count(&rs->failures, 1);
    return ret;
}

/* ---- reads ----------------------------------------------------------- */

static int rd_order_get(struct store *st, uint64_t id, struct store_order *out)
{
    struct redis_store *rs = (struct redis_store *)st;
    char key[64], sku[STORE_SKU_MAX + 1] = "";
    redisContext *c = borrow(rs);
    int ret = -EIO;

    if (c == NULL)
        return ret;
    snprintf(key, sizeof(key), PREFIX ":o:%" PRIu64, id);
    const char *argv[] = {"HGETALL", key};
    redisReply *r = redisCommandArgv(c, 2, argv, NULL);
    count(&rs->round_trips, 1);
    if (!is_array(r, 0))
        goto out;
    ret = -ENOENT;
    if (r->elements == 0)
        goto out;
    memset(out, 0, sizeof(*out));
    out->id = id;
    out->worker = -1;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (!is_str(k) || !is_str(v))
            continue;
        const char *f = k->str;
        if (strcmp(f, "product") == 0)
            copy_str(sku, sizeof(sku), v->str, v->len);
        else if (strcmp(f, "quantity") == 0)
            out->quantity = (uint32_t)strtoul(v->str, NULL, 10);
        else if (strcmp(f, "customer") == 0) {
            out->has_customer = true;
            copy_str(out->customer, sizeof(out->customer), v->str, v->len);
        } else if (strcmp(f, "status") == 0)
            out->status = strcmp(v->str, "fulfilled") == 0 ? STORE_FULFILLED
                          : strcmp(v->str, "out_of_stock") == 0
                              ? STORE_OUT_OF_STOCK
                              : STORE_QUEUED;
        else if (strcmp(f, "accepted_at") == 0)
            out->accepted_ns = strtoll(v->str, NULL, 10);
        else if (strcmp(f, "processed_at") == 0)
            out->processed_ns = strtoll(v->str, NULL, 10);
        else if (strcmp(f, "accepted_by") == 0)
            copy_str(out->accepted_by, sizeof(out->accepted_by), v->str,
                     v->len);
        else if (strcmp(f, "processed_by") == 0)
            copy_str(out->processed_by, sizeof(out->processed_by), v->str,
                     v->len);
        else if (strcmp(f, "worker") == 0)
            out->worker = (int32_t)strtol(v->str, NULL, 10);
    }
    /* A product this instance did not load (another instance added it
     * after this one started) cannot be named by index. */
    int64_t idx = find_sku(rs, sku);
    if (idx < 0)
        goto out;
    out->product = (uint32_t)idx;
    ret = 0;
out:
    give_back(rs, c, r != NULL);
    if (r)
        freeReplyObject(r);
    return ret;
}

static int rd_idem_get(struct store *st, const char *endpoint, const char *key,
                       size_t key_len, struct store_answer *out)
{
    struct redis_store *rs = (struct redis_store *)st;
    char name[STORE_IDEM_KEY_MAX + 64];
    int n = snprintf(name, sizeof(name), PREFIX ":idem:%s:", endpoint);
    redisContext *c = NULL;
    redisReply *r = NULL;
    int ret = -EINVAL;

    if (n < 0 || (size_t)n + key_len >= sizeof(name))
        return ret;
    memcpy(name + n, key, key_len);
    c = borrow(rs);
    ret = -EIO;
    if (c == NULL)
        return ret;
    const char *argv[] = {"GET", name};
    const size_t lens[] = {3, (size_t)n + key_len};
    r = redisCommandArgv(c, 2, argv, lens);
    count(&rs->round_trips, 1);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        goto out;
    ret = -ENOENT;
    if (r->type == REDIS_REPLY_NIL)
        goto out;
    ret = is_str(r) ? parse_answer(r->str, r->len, out) : -EIO;
out:
    give_back(rs, c, r != NULL);
    if (r)
        freeReplyObject(r);
    return ret;
}

/* ---- take ------------------------------------------------------------ */

/*
 * Finish at once, in the store, the orders of entries this instance cannot
 * hand to its shop (a product it did not load): the store decides anyway.
 */
static void process_here(struct redis_store *rs, redisContext *c,
                         const uint64_t *ids, size_t n, unsigned worker)
{
    struct timespec now;
    char nbuf[24], wbuf[16], tbuf[24];
    char(*idbuf)[24] = calloc(n, sizeof(*idbuf));
    const char **argv = calloc(6 + 3 * n, sizeof(*argv));

    if (idbuf && argv) {
        clock_gettime(CLOCK_REALTIME, &now);
        snprintf(nbuf, sizeof(nbuf), "%zu", n);
        snprintf(wbuf, sizeof(wbuf), "%u", worker);
        snprintf(tbuf, sizeof(tbuf), "%" PRId64,
                 (int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
        size_t k = 0;
        argv[k++] = "FCALL";
        argv[k++] = "shopd_process";
        argv[k++] = "1";
        argv[k++] = PREFIX;
        argv[k++] = rs->instance;
        argv[k++] = nbuf;
        for (size_t i = 0; i < n; i++) {
            snprintf(idbuf[i], sizeof(idbuf[i]), "%" PRIu64, ids[i]);
            argv[k++] = idbuf[i];
            argv[k++] = wbuf;
            argv[k++] = tbuf;
        }
        redisReply *r = redisCommandArgv(c, (int)k, argv, NULL);
        count(&rs->round_trips, 1);
        if (r)
            freeReplyObject(r);
    }
    free(argv);
    free(idbuf);
}

/*
 * Turn a list of stream entries into orders in `out` (room for `max`);
 * entries of unknown products are processed here (when they carry an
 * order) or acknowledged (when they carry none). Returns how many orders.
 */
static size_t entries_to_orders(struct redis_store *rs, redisContext *c,
                                const redisReply *list, struct store_order *out,
                                size_t max, unsigned worker)
{
    size_t n = 0, nodd = 0;
    uint64_t odd[64];

    if (!is_array(list, 0))
        return 0;
    for (size_t i = 0; i < list->elements && n < max; i++) {
        uint64_t id;
        if (entry_order(rs, list->element[i], &out[n], &id) == 0)
            n++;
        else if (id != 0 && nodd < sizeof(odd) / sizeof(odd[0]))
            odd[nodd++] = id;
    }
    if (nodd > 0)
        process_here(rs, c, odd, nodd, worker);
    return n;
}

/* Hand out own pending orders found at load. Returns how many. */
static size_t take_own(struct redis_store *rs, struct store_order *out,
                       size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&rs->own_mu);
    while (n < max && rs->own_next < rs->nown)
        out[n++] = rs->own[rs->own_next++];
    pthread_mutex_unlock(&rs->own_mu);
    return n;
}

/* XAUTOCLAIM one page of entries idle past reclaim_ms. Returns the number
 * of orders, or -EIO. Called by one thread at a time. */
static int reclaim(struct redis_store *rs, redisContext *c, unsigned worker,
                   struct store_order *out, size_t max)
{
    char idle[16], cnt[24];

    snprintf(idle, sizeof(idle), "%u", rs->reclaim_ms);
    snprintf(cnt, sizeof(cnt), "%zu", max);
    const char *argv[] = {"XAUTOCLAIM", key_orders, GROUP,
                          rs->instance, idle,       rs->reclaim_cursor,
                          "COUNT",      cnt};
    redisReply *r = redisCommandArgv(c, 8, argv, NULL);
    count(&rs->round_trips, 1);
    if (r == NULL)
        return -EIO;
    int n = 0;
    if (is_array(r, 2) && is_str(r->element[0])) {
        copy_str(rs->reclaim_cursor, sizeof(rs->reclaim_cursor),
                 r->element[0]->str, r->element[0]->len);
        n = (int)entries_to_orders(rs, c, r->element[1], out, max, worker);
    } else if (gone(r)) {
        atomic_store(&rs->reseed, true);
    }
    freeReplyObject(r);
    if (n > 0) {
        char nb[16];
        snprintf(nb, sizeof(nb), "%d", n);
        const char *cargv[] = {"FCALL", "shopd_reclaimed", "1", PREFIX, nb};
        r = redisCommandArgv(c, 5, cargv, NULL);
        count(&rs->round_trips, 1);
        if (r)
            freeReplyObject(r);
        count(&rs->reclaimed, (uint64_t)n);
    }
    return n;
}

static int rd_take(struct store *st, unsigned worker, struct store_order *out,
                   size_t max, unsigned wait_ms)
{
    struct redis_store *rs = (struct redis_store *)st;
    redisContext *c;
    redisReply *r = NULL;
    int ret;

    if (max == 0)
        return 0;
    size_t n = take_own(rs, out, max);
    if (n > 0)
        return (int)n;
    c = borrow(rs);
    if (c == NULL) {
        atomic_store(&rs->available, false);
        return -EIO;
    }
    if (atomic_load(&rs->reseed))
        set_up_again(rs, c);

    /* A dead instance's orders, at most every reclaim_ms / 2, one thread
     * at a time; a full page means more may wait, so look again soon. */
    int64_t now = mono_ns();
    bool expected = false;
    if (now >= atomic_load(&rs->next_reclaim) &&
        atomic_compare_exchange_strong(&rs->reclaiming, &expected, true)) {
        ret = reclaim(rs, c, worker, out, max);
        bool more = strcmp(rs->reclaim_cursor, "0-0") != 0;
        atomic_store(&rs->next_reclaim,
                     more ? now : now + (int64_t)rs->reclaim_ms * 500000);
        atomic_store(&rs->reclaiming, false);
        if (ret != 0) {
            give_back(rs, c, ret > 0);
            return ret;
        }
    }

    char cnt[24], block[16];
    snprintf(cnt, sizeof(cnt), "%zu", max);
    snprintf(block, sizeof(block), "%u",
             wait_ms > WAIT_MAX_MS ? WAIT_MAX_MS : wait_ms);
    const char *argv[] = {"XREADGROUP", "GROUP",    GROUP,   rs->instance,
                          "COUNT",      cnt,        "BLOCK", block,
                          "STREAMS",    key_orders, ">"};
    /* BLOCK 0 would wait forever: without a wait, leave BLOCK out. */
    int argc = wait_ms > 0 ? 11 : 9;
    if (wait_ms == 0) {
        argv[6] = "STREAMS";
        argv[7] = key_orders;
        argv[8] = ">";
    }
    r = redisCommandArgv(c, argc, argv, NULL);
    count(&rs->round_trips, 1);
    /* Workers poll all the time: they notice a Redis that went away (or
     * came back) even when nobody buys. */
    atomic_store(&rs->available, r != NULL);
    ret = -EIO;
    if (r == NULL)
        goto out;
    if (r->type == REDIS_REPLY_ERROR) {
        if (gone(r))
            atomic_store(&rs->reseed, true);
        goto out;
    }
    ret = 0;
    if (is_array(r, 1) && is_array(r->element[0], 2))
        ret = (int)entries_to_orders(rs, c, r->element[0]->element[1], out, max,
                                     worker);
out:
    give_back(rs, c, r != NULL);
    if (r)
        freeReplyObject(r);
    return ret;
}

/* ---- shared reads ---------------------------------------------------- */

static int rd_products_get(struct store *st, struct store_product *out,
                           size_t n)
{
    struct redis_store *rs = (struct redis_store *)st;
    struct store_product *p = NULL;
    size_t np = 0;
    redisContext *c = borrow(rs);

    if (c == NULL)
        return -EIO;
    int ret = read_products(rs, c, &p, &np);
    give_back(rs, c, ret != -EIO);
    if (ret < 0)
        return ret;
    for (size_t i = 0; i < n && i < rs->nproducts; i++) {
        int64_t k = -1;
        /* The store lists products in insertion order, as load did; look
         * up by SKU all the same, in case the lists differ. */
        if (i < np && strcmp(p[i].sku, rs->products[i].sku) == 0)
            k = (int64_t)i;
        for (size_t j = 0; k < 0 && j < np; j++)
            if (strcmp(p[j].sku, rs->products[i].sku) == 0)
                k = (int64_t)j;
        if (k < 0)
            continue;
        out[i].stock = p[k].stock;
        out[i].sold = p[k].sold;
        out[i].restocked = p[k].restocked;
        out[i].initial = p[k].initial;
    }
    free(p);
    return 0;
}

static int rd_shop_get(struct store *st, struct store_shop *out)
{
    struct redis_store *rs = (struct redis_store *)st;
    redisContext *c = borrow(rs);

    if (c == NULL)
        return -EIO;
    const char *argv[] = {"FCALL", "shopd_stats", "1", PREFIX};
    redisReply *r = redisCommandArgv(c, 4, argv, NULL);
    count(&rs->round_trips, 1);
    int ret = -EIO;
    if (is_array(r, 12)) {
        uint64_t *f[] = {
            &out->accepted,  &out->rejected_full, &out->processed,
            &out->fulfilled, &out->out_of_stock,  &out->double_deliveries,
            &out->reclaimed, &out->restocked,     &out->belt,
            &out->pending,   &out->last_id,       &out->consumers};
        for (size_t i = 0; i < 12; i++)
            *f[i] = (uint64_t)reply_int(r->element[i]);
        ret = 0;
    }
    give_back(rs, c, r != NULL);
    if (r)
        freeReplyObject(r);
    return ret;
}

/* ---- status ---------------------------------------------------------- */

static bool rd_available(struct store *st)
{
    struct redis_store *rs = (struct redis_store *)st;

    return atomic_load(&rs->available);
}

static void rd_stats(struct store *st, struct store_stats *out)
{
    struct redis_store *rs = (struct redis_store *)st;

    out->available = atomic_load(&rs->available);
#define LOAD(f) atomic_load_explicit(&rs->f, memory_order_relaxed)
    out->round_trips = LOAD(round_trips);
    out->failures = LOAD(failures);
    out->reclaimed = LOAD(reclaimed);
    out->duplicates = LOAD(duplicates);
#undef LOAD
    snprintf(out->describe, sizeof(out->describe), "%.120s instance=%.120s",
             rs->describe, rs->instance);
}

const struct store_backend store_redis_backend = {
    .kind = STORE_REDIS,
    .caps = STORE_CAP_DURABLE | STORE_CAP_DECIDES | STORE_CAP_SHARED,
    .open = rd_open,
    .close = rd_close,
    .load = rd_load,
    .commit = rd_commit,
    .order_get = rd_order_get,
    .idem_get = rd_idem_get,
    .take = rd_take,
    .products_get = rd_products_get,
    .shop_get = rd_shop_get,
    .available = rd_available,
    .stats = rd_stats,
};
