/*
 * redis.c - the Redis store: any number of shopd instances, one shop.
 *
 * Everything shared lives in Redis (>= 7.0): products and their stock,
 * orders, the order id counter, idempotency keys, and the belt, a Redis
 * Stream drained by one consumer group ("workers") whose consumers are the
 * instances (--instance). Every change is a Redis Function from
 * store/redis_lib.lua (its key schema is at its top), compiled into the
 * binary and loaded (FUNCTION LOAD REPLACE) at open, so each step is
 * atomic in Redis and every instance runs the same code:
 *   shopd_seed     at start only: seed an empty store (once, even when
 *                  instances start together), add products it lacks;
 *   shopd_commit   one store_commit(), in one FCALL: results (the store
 *                  decides: stock, final status, XACK), accepts (belt
 *                  bound, ids, XADD, keys) and restocks;
 *   shopd_order, shopd_products, shopd_stats, shopd_reclaimed.
 *
 * Never a silent new shop: store_load() learns the shop's epoch (written
 * once, by the start that seeded it); every function checks it before it
 * writes, in the same atomic step, and answers NOSHOP when the shop is
 * gone (FLUSHALL, a Redis restarted empty). Then `gone` is set: commits
 * are refused (-EIO: nothing was applied), takes stop, reads answer -EIO,
 * until a probe finds the same epoch again (the Redis restarted on its
 * append-only file). Nothing here ever seeds after store_load().
 *
 * Never a false answer: each commit carries a tag (instance, lane, boot,
 * seq): a lane is held by one commit at a time, its seq grows, and boot
 * grows with every start under this instance name. shopd_commit keeps the
 * outcome of each lane's last commit and returns it when the same tag
 * comes again, so after a timeout the commit is sent again on a fresh
 * connection (for up to OUTCOME_WAIT_MS) without being applied twice.
 * -EIO means the commit certainly was not applied (refused before it was
 * sent, or by the script before it wrote); -ETIMEDOUT that the outcome is
 * still unknown.
 *
 * Flat memory (SPEC §7): Redis keeps the last order_history orders (their
 * stream entries, ~40 B, and their final records in hashes of 64 ids,
 * ~30 B), plus every order not final; older ones are trimmed (XTRIM
 * MINID ~) and their record buckets deleted whole, in the commits. A
 * dropped order answers -ENOENT. Costs per order in Redis: one XADD at
 * accept; at the end one field of a bucket HSET and one id of an XACK per
 * batch; stock, sold and counters once per batch.
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
 * is empty. An idle connection that became readable (the server closed
 * it) is dropped before use, so a dead connection is found before a
 * commit is sent on it, not after.
 *
 * Locks: `pool_mu` (idle connections), `own_mu` (own pending orders left
 * to hand out) and `lane_mu` (lanes) are leaves, never held together or
 * across I/O.
 */
#include "store/internal.h"

#include <errno.h>
#include <hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PREFIX             "{shopd}" /* a hash tag: every key in one slot */
#define GROUP              "workers"
#define POOL_MAX           64   /* idle connections kept */
#define IO_TIMEOUT_MS      5000 /* one reply may take this long */
#define CONNECT_TIMEOUT_MS 1000
#define WAIT_MAX_MS        2000  /* longest XREADGROUP BLOCK */
#define OPEN_WAIT_MS       10000 /* store_open retries so long */
#define OUTCOME_WAIT_MS    10000 /* a commit in doubt is resent so long */
#define RESEND_PAUSE_MS    100   /* between attempts to resend */
#define SHOP_CHECK_MS      1000  /* takes check the shop's epoch so often */
#define LANES              1024  /* commits in flight at once, at most */
#define HISTORY_DEFAULT    65536

/* The stream of orders (the shared belt). */
static const char key_belt[] = PREFIX ":belt";

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
    size_t capacity, history;
    char describe[256];

    pthread_mutex_t pool_mu; /* guards pool and npool */
    redisContext *pool[POOL_MAX];
    size_t npool;

    /* Set by store_load(), read-only afterwards (load runs before any
     * commit or take). */
    struct store_product *catalog;
    size_t ncatalog;
    struct store_product *products;
    size_t nproducts;
    struct sku_slot *by_sku; /* sorted by SKU */
    char epoch[64];          /* the shop's marker, as seeded */
    char boot[24];           /* starts under this instance name */
    char number[24];         /* this instance's number in the shop */

    pthread_mutex_t own_mu;  /* guards own, nown, own_next */
    struct store_order *own; /* own pending orders found at load */
    size_t nown, own_next;

    pthread_mutex_t lane_mu; /* guards lane_busy and lane_seq */
    bool lane_busy[LANES];
    uint64_t lane_seq[LANES];

    _Atomic bool reclaiming;      /* one thread runs XAUTOCLAIM */
    _Atomic int64_t next_reclaim; /* CLOCK_MONOTONIC ns */
    char reclaim_cursor[48];      /* by the thread holding `reclaiming` */
    _Atomic int64_t next_check;   /* CLOCK_MONOTONIC ns: shop epoch probe */

    _Atomic bool available; /* the last commit or take succeeded */
    _Atomic bool gone;      /* the loaded shop is missing from Redis */
    _Atomic bool reload;    /* the library is missing: load it again */
    _Atomic uint64_t round_trips, failures, reclaimed, duplicates;
    _Atomic uint64_t replays, unknown;
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

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000L};
    return tv;
}

/* An error reply saying the shop is missing from Redis. */
static bool is_err(const redisReply *r, const char *what)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR &&
           strstr(r->str, what) != NULL;
}

/*
 * Note what an error reply says of the shop: NOSHOP (or NOGROUP, the belt
 * gone) marks the shop gone; a missing function asks for the library
 * again (a Redis restarted empty lost it; the shop's check then says
 * NOSHOP). Returns true if the reply was such an error.
 */
static bool note_error(struct redis_store *rs, const redisReply *r)
{
    if (is_err(r, "NOSHOP") || is_err(r, "NOGROUP")) {
        atomic_store(&rs->gone, true);
        atomic_store(&rs->available, false);
        return true;
    }
    if (is_err(r, "Function not found")) {
        atomic_store(&rs->reload, true);
        return true;
    }
    return false;
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
 * Parse a key's record, "<fingerprint hex>\n<outcome>" (the fingerprint is
 * the canonical request, hex-encoded by the library so that any byte is
 * safe in the framing; the outcome is an order id, or a restock's
 * "<stock> <sold> <restocked>"). Returns 0 or -EIO when it is not in that
 * form.
 */
static int parse_answer(const char *v, size_t len, struct store_answer *out)
{
    const char *nl = memchr(v, '\n', len);
    if (nl == NULL || (nl - v) % 2 != 0 ||
        nl - v > (ptrdiff_t)2 * STORE_FINGERPRINT_MAX)
        return -EIO;
    memset(out, 0, sizeof(*out));
    size_t n = (size_t)(nl - v) / 2;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val(v[2 * i]), lo = hex_val(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EIO;
        out->fingerprint[i] = (char)(hi << 4 | lo);
    }
    out->fingerprint_len = n;
    char num[80];
    size_t rest = len - n * 2 - 1;
    if (rest == 0 || rest >= sizeof(num))
        return -EIO;
    memcpy(num, nl + 1, rest);
    num[rest] = '\0';
    int64_t x[3];
    int got =
        sscanf(num, "%" SCNd64 " %" SCNd64 " %" SCNd64, &x[0], &x[1], &x[2]);
    if (got == 1 && x[0] > 0) {
        out->order_id = (uint64_t)x[0];
    } else if (got == 3) {
        out->stock = x[0];
        out->sold = x[1];
        out->restocked = x[2];
    } else {
        return -EIO;
    }
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

/* Run one setup command (AUTH, SELECT). Returns 0, or -1 with the reason
 * in `err` and `*fatal` when retrying cannot help. */
static int setup_cmd(redisContext *c, int argc, const char **argv,
                     const char *what, char *err, size_t errlen, bool *fatal)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL) {
        snprintf(err, errlen, "%s", c->errstr);
        return -1;
    }
    int ret = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        /* Redis's own text; it never repeats the password. */
        snprintf(err, errlen, "%s: %s", what, r->str);
        *fatal = strstr(r->str, "LOADING") == NULL;
        ret = -1;
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
    redisContext *c;

    *fatal = false;
    if (rs->host[0] != '\0')
        c = redisConnectWithTimeout(rs->host, (int)rs->port,
                                    tv_ms(CONNECT_TIMEOUT_MS));
    else
        c = redisConnectUnixWithTimeout(rs->path, tv_ms(CONNECT_TIMEOUT_MS));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "%s", c->errstr);
        goto fail;
    }
    redisSetTimeout(c, tv_ms(IO_TIMEOUT_MS));
    if (rs->host[0] != '\0')
        redisEnableKeepAlive(c);
    if (rs->password[0] != '\0') {
        const char *argv[] = {"AUTH", rs->password};
        if (setup_cmd(c, 2, argv, "AUTH refused", err, errlen, fatal) < 0)
            goto fail;
    }
    if (rs->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%u", rs->db);
        const char *argv[] = {"SELECT", db};
        if (setup_cmd(c, 2, argv, "SELECT", err, errlen, fatal) < 0)
            goto fail;
    }
    return c;

fail:
    redisFree(c);
    return NULL;
}

/* Whether an idle connection has something to read: the server closed it
 * (or it is out of step). Such a connection is never used again. */
static bool stale(const redisContext *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

/* Borrow a connection (dialling one if none is idle), or NULL. */
static redisContext *borrow(struct redis_store *rs)
{
    redisContext *c = NULL;
    char err[256];
    bool fatal;

    for (;;) {
        pthread_mutex_lock(&rs->pool_mu);
        c = rs->npool > 0 ? rs->pool[--rs->npool] : NULL;
        pthread_mutex_unlock(&rs->pool_mu);
        if (c == NULL || !stale(c))
            break;
        redisFree(c);
    }
    if (c == NULL)
        c = dial(rs, err, sizeof(err), &fatal);
    if (c != NULL && atomic_exchange(&rs->reload, false) &&
        load_library(c, err, sizeof(err)) != 0)
        atomic_store(&rs->reload, true);
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
    redisContext *old[POOL_MAX];
    size_t nold = 0;

    if (c == NULL)
        return;
    pthread_mutex_lock(&rs->pool_mu);
    if (ok && c->err == 0) {
        if (rs->npool < POOL_MAX) {
            rs->pool[rs->npool++] = c;
            c = NULL;
        }
    } else {
        nold = rs->npool;
        memcpy(old, rs->pool, nold * sizeof(redisContext *));
        rs->npool = 0;
    }
    pthread_mutex_unlock(&rs->pool_mu);
    redisFree(c);
    for (size_t i = 0; i < nold; i++)
        redisFree(old[i]);
}

/* One command on a borrowed connection; the reply (NULL on an I/O error)
 * is the caller's. Notes what an error reply says of the shop. */
static redisReply *command(struct redis_store *rs, int argc, const char **argv,
                           const size_t *lens)
{
    redisContext *c = borrow(rs);
    if (c == NULL)
        return NULL;
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    count(&rs->round_trips, 1);
    give_back(rs, c, r != NULL);
    note_error(rs, r);
    return r;
}

/*
 * Whether the loaded shop is in Redis: its epoch in P:counters. Clears or
 * sets `gone`. Returns 1 (there), 0 (gone) or -EIO (no answer).
 */
static int shop_check(struct redis_store *rs)
{
    const char *argv[] = {"HGET", PREFIX ":counters", "shop"};
    redisReply *r = command(rs, 3, argv, NULL);
    if (r == NULL)
        return -EIO;
    bool there = is_str(r) && strcmp(r->str, rs->epoch) == 0;
    freeReplyObject(r);
    atomic_store(&rs->gone, !there);
    return there ? 1 : 0;
}

/* ---- seeding --------------------------------------------------------- */

/* What shopd_seed answered. */
struct seeded {
    bool was_empty;
    bool *added; /* room for ncatalog flags */
};

static int seed_reply(struct redis_store *rs, const redisReply *r,
                      struct seeded *out, char *err, size_t errlen)
{
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "seeding the shop: %s", r->str);
        return strstr(r->str, "LOADING") ? -EIO : -EPROTO;
    }
    if (!is_array(r, 4) || !is_str(r->element[1])) {
        snprintf(err, errlen, "seeding the shop: unexpected reply");
        return -EPROTO;
    }
    out->was_empty = reply_int(r->element[0]) == 1;
    copy_str(rs->epoch, sizeof(rs->epoch), r->element[1]->str,
             r->element[1]->len);
    snprintf(rs->boot, sizeof(rs->boot), "%" PRId64, reply_int(r->element[2]));
    snprintf(rs->number, sizeof(rs->number), "%" PRId64,
             reply_int(r->element[3]));
    /* The SKUs added come in catalog order (the function walks the
     * catalog as sent): one pass over both, not one search per SKU. */
    size_t k = 0;
    for (size_t i = 4; i < r->elements; i++) {
        if (!is_str(r->element[i]))
            continue;
        while (k < rs->ncatalog &&
               strcmp(r->element[i]->str, rs->catalog[k].sku) != 0)
            k++;
        if (k < rs->ncatalog)
            out->added[k++] = true;
    }
    return 0;
}

/*
 * FCALL shopd_seed with the catalog: seeds an empty store (with a new
 * epoch), adds the products it lacks, counts this start under the
 * instance's name. Returns 0, -EIO or -EPROTO (message in `err`).
 */
static int seed(struct redis_store *rs, redisContext *c, struct seeded *out,
                char *err, size_t errlen)
{
    size_t n = rs->ncatalog;
    size_t argc = 7 + 4 * n;
    const char **argv = calloc(argc, sizeof(*argv));
    char(*nums)[2][24] = calloc(n + 1, sizeof(*nums));
    char epoch[64];
    redisReply *r = NULL;
    int ret = -ENOMEM;

    if (!argv || !nums) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* A new shop's epoch: unique to this start (time and process). */
    snprintf(epoch, sizeof(epoch), "%" PRIx64 "-%lx",
             (uint64_t)time_now_ns(CLOCK_REALTIME), (long)getpid());
    argv[0] = "FCALL";
    argv[1] = "shopd_seed";
    argv[2] = "1";
    argv[3] = PREFIX;
    argv[4] = epoch;
    argv[5] = rs->instance;
    snprintf(nums[n][0], sizeof(nums[n][0]), "%zu", n);
    argv[6] = nums[n][0];
    for (size_t i = 0; i < n; i++) {
        const struct store_product *p = &rs->catalog[i];
        snprintf(nums[i][0], sizeof(nums[i][0]), "%" PRId64, p->price_cents);
        snprintf(nums[i][1], sizeof(nums[i][1]), "%" PRId64, p->initial);
        argv[7 + 4 * i] = p->sku;
        argv[8 + 4 * i] = p->name;
        argv[9 + 4 * i] = nums[i][0];
        argv[10 + 4 * i] = nums[i][1];
    }
    r = redisCommandArgv(c, (int)argc, argv, NULL);
    count(&rs->round_trips, 1);
    ret = -EIO;
    if (r == NULL) {
        snprintf(err, errlen, "%s", c->errstr);
        goto out;
    }
    ret = seed_reply(rs, r, out, err, errlen);
out:
    if (r)
        freeReplyObject(r);
    free(nums);
    free(argv);
    return ret;
}

/* ---- open, load, close ----------------------------------------------- */

static void rd_close(struct store *st)
{
    struct redis_store *rs = (struct redis_store *)st;

    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->npool; i++)
        redisFree(rs->pool[i]);
    pthread_mutex_destroy(&rs->lane_mu);
    pthread_mutex_destroy(&rs->own_mu);
    pthread_mutex_destroy(&rs->pool_mu);
    free(rs->own);
    free(rs->by_sku);
    free(rs->products);
    free(rs->catalog);
    free(rs);
}

/* Copy the options into `rs`. Returns 0 or -EINVAL. */
static int take_options(struct redis_store *rs, const struct store_options *opt)
{
    snprintf(rs->host, sizeof(rs->host), "%s", opt->host ? opt->host : "");
    snprintf(rs->path, sizeof(rs->path), "%s", opt->path ? opt->path : "");
    snprintf(rs->password, sizeof(rs->password), "%s",
             opt->password ? opt->password : "");
    rs->port = opt->port ? opt->port : 6379;
    rs->db = opt->db;
    rs->reclaim_ms = opt->reclaim_ms ? opt->reclaim_ms : 5000;
    rs->ttl = opt->idempotency_ttl ? opt->idempotency_ttl : 86400;
    rs->capacity = opt->queue_capacity ? opt->queue_capacity : 1024;
    rs->history = opt->order_history ? opt->order_history : HISTORY_DEFAULT;
    if (opt->instance == NULL || opt->instance[0] == '\0' ||
        strlen(opt->instance) > STORE_INSTANCE_MAX ||
        (rs->host[0] == '\0' && rs->path[0] == '\0'))
        return -EINVAL;
    snprintf(rs->instance, sizeof(rs->instance), "%s", opt->instance);
    if (rs->host[0] != '\0')
        snprintf(rs->describe, sizeof(rs->describe), "redis://%.180s:%u/%u",
                 rs->host, rs->port, rs->db);
    else
        snprintf(rs->describe, sizeof(rs->describe), "unix://%.180s?db=%u",
                 rs->path, rs->db);
    return 0;
}

/*
 * Reach Redis and load the library, retrying an unreachable (or still
 * loading) server for `wait` ms; the first failure is reported at once
 * through opt->on_wait. Returns 0, or -EIO / -EPROTO with `why`.
 */
static int reach(struct redis_store *rs, const struct store_options *opt,
                 unsigned wait, char *why, size_t whylen)
{
    int64_t give_up = mono_ns() + (int64_t)wait * 1000000;
    bool told = false;

    for (;;) {
        bool fatal = false;
        int ret = -EIO;
        redisContext *c = dial(rs, why, whylen, &fatal);
        if (c != NULL) {
            ret = load_library(c, why, whylen);
            fatal = ret == -EPROTO;
            if (ret == 0) {
                give_back(rs, c, true);
                return 0;
            }
            redisFree(c);
        }
        if (fatal)
            return -EPROTO;
        if (mono_ns() >= give_up)
            return -EIO;
        if (!told && opt->on_wait != NULL) {
            char line[512];
            snprintf(
                line, sizeof(line),
                "store %.200s: %.200s; waiting up to %u s for Redis to answer",
                rs->describe, why, (wait + 999) / 1000);
            opt->on_wait(opt->on_wait_arg, line);
            told = true;
        }
        pause_ms(200);
    }
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
    pthread_mutex_init(&rs->lane_mu, NULL);
    ret = take_options(rs, opt);
    if (ret < 0) {
        snprintf(err, errlen, "store redis: bad options");
        goto fail;
    }
    atomic_init(&rs->available, true);
    atomic_init(&rs->next_reclaim,
                mono_ns() + (int64_t)rs->reclaim_ms * 1000000 / 2);
    strcpy(rs->reclaim_cursor, "0-0");

    unsigned wait = opt->connect_wait_ms ? opt->connect_wait_ms : OPEN_WAIT_MS;
    ret = reach(rs, opt, wait, why, sizeof(why));
    if (ret < 0) {
        snprintf(err, errlen, "store %s: %s", rs->describe, why);
        goto fail;
    }
    *out = &rs->base;
    return 0;

fail:
    rd_close(&rs->base);
    return ret;
}

/* The order id of a stream entry id "<id>-0", 0 if it is not one. */
static uint64_t entry_id(const redisReply *e)
{
    return is_str(e) ? strtoull(e->str, NULL, 10) : 0;
}

/* The fields of an entry's packed order, "sku|quantity|accepted
 * ns|instance number|customer" (customer "" or "+" and the name). */
static void unpack_order(const char *v, size_t len, struct store_order *o,
                         char *sku)
{
    const char *end = v + len, *bar[4];
    const char *at = v;
    for (int i = 0; i < 4; i++) {
        bar[i] = memchr(at, '|', (size_t)(end - at));
        if (bar[i] == NULL)
            return;
        at = bar[i] + 1;
    }
    copy_str(sku, STORE_SKU_MAX + 1, v, (size_t)(bar[0] - v));
    o->quantity = (uint32_t)strtoul(bar[0] + 1, NULL, 10);
    o->accepted_ns = strtoll(bar[1] + 1, NULL, 10);
    if (at < end && *at == '+') {
        o->has_customer = true;
        copy_str(o->customer, sizeof(o->customer), at + 1,
                 (size_t)(end - at - 1));
    }
}

/* An order from a stream entry [id, [field, value, ...]]. Returns 0, or
 * -ENOENT for an entry that carries no order or an unknown product (then
 * `sku` still names it, and o->id and o->quantity are set). */
static int entry_order(const struct redis_store *rs, const redisReply *e,
                       struct store_order *o, char *sku)
{
    memset(o, 0, sizeof(*o));
    o->worker = -1;
    sku[0] = '\0';
    if (!is_array(e, 2) || !is_array(e->element[1], 2))
        return -ENOENT;
    o->id = entry_id(e->element[0]);
    const redisReply *f = e->element[1];
    for (size_t j = 0; j + 1 < f->elements; j += 2) {
        const redisReply *k = f->element[j], *v = f->element[j + 1];
        if (is_str(k) && is_str(v) && strcmp(k->str, "o") == 0)
            unpack_order(v->str, v->len, o, sku);
    }
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
        const char *argv[] = {"XREADGROUP", "GROUP",  GROUP,
                              rs->instance, "COUNT",  "1000",
                              "STREAMS",    key_belt, cursor};
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
            char sku[STORE_SKU_MAX + 1];
            if (entry_order(rs, list->element[i], &rs->own[rs->nown], sku) == 0)
                rs->nown++;
        }
        const redisReply *last = list->element[n - 1];
        if (is_array(last, 1) && is_str(last->element[0]))
            copy_str(cursor, sizeof(cursor), last->element[0]->str,
                     last->element[0]->len);
        freeReplyObject(r);
    }
}

/* FCALL shopd_products into a malloc'd array: the first `limit` products
 * (0: all). Returns 0, -EIO, -ENOMEM. */
static int read_products(struct redis_store *rs, redisContext *c, size_t limit,
                         struct store_product **out, size_t *n)
{
    char lim[24];
    snprintf(lim, sizeof(lim), "%zu", limit);
    const char *argv[] = {"FCALL", "shopd_products", "1",
                          PREFIX,  rs->epoch,        lim};
    redisReply *r = redisCommandArgv(c, 6, argv, NULL);
    int ret = -EIO;

    count(&rs->round_trips, 1);
    note_error(rs, r);
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

/* Index the loaded products by SKU (rs->products, rs->by_sku). */
static int index_products(struct redis_store *rs,
                          const struct store_product *prods, size_t np)
{
    struct store_product *copy = calloc(np ? np : 1, sizeof(*copy));
    struct sku_slot *idx = calloc(np ? np : 1, sizeof(*idx));
    if (copy == NULL || idx == NULL) {
        free(copy);
        free(idx);
        return -ENOMEM;
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
    return 0;
}

/* The last order id given (P:counters last_id). Returns 0 or -EIO. */
static int read_last_id(struct redis_store *rs, redisContext *c, uint64_t *out)
{
    const char *argv[] = {"HGET", PREFIX ":counters", "last_id"};
    redisReply *r = redisCommandArgv(c, 3, argv, NULL);
    count(&rs->round_trips, 1);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (r)
            freeReplyObject(r);
        return -EIO;
    }
    *out = (uint64_t)reply_int(r);
    freeReplyObject(r);
    return 0;
}

static int rd_load(struct store *st, const struct store_product *catalog,
                   size_t n, struct store_state *out, char *err, size_t errlen)
{
    struct redis_store *rs = (struct redis_store *)st;
    struct store_product *prods = NULL;
    size_t np = 0;
    struct seeded sd = {.added = calloc(n ? n : 1, sizeof(bool))};
    char why[256] = "";
    int ret = -ENOMEM;
    redisContext *c = NULL;
    uint64_t last = 0;

    free(rs->catalog);
    rs->catalog = calloc(n ? n : 1, sizeof(*rs->catalog));
    if (rs->catalog == NULL || sd.added == NULL)
        goto fail;
    memcpy(rs->catalog, catalog, n * sizeof(*catalog));
    rs->ncatalog = n;
    c = borrow(rs);
    ret = -EIO;
    if (c == NULL) {
        snprintf(why, sizeof(why), "cannot connect");
        goto fail;
    }
    ret = seed(rs, c, &sd, why, sizeof(why));
    if (ret < 0)
        goto fail;
    ret = read_products(rs, c, 0, &prods, &np);
    if (ret < 0) {
        snprintf(why, sizeof(why), "reading the products");
        goto fail;
    }
    ret = index_products(rs, prods, np);
    if (ret < 0)
        goto fail;
    /* A product added to a shop that existed: say so (by SKU, through the
     * index just built: 100,000 products load in well under a second). */
    for (size_t k = 0; k < n && !sd.was_empty; k++) {
        int64_t i = sd.added[k] ? find_sku(rs, catalog[k].sku) : -1;
        if (i >= 0) {
            prods[i].added = true;
            out->nadded++;
        }
    }
    ret = read_last_id(rs, c, &last);
    if (ret < 0) {
        snprintf(why, sizeof(why), "reading the last order id");
        goto fail;
    }
    out->next_id = last + 1;
    pthread_mutex_lock(&rs->own_mu);
    rs->nown = rs->own_next = 0;
    pthread_mutex_unlock(&rs->own_mu);
    ret = load_own(rs, c, why, sizeof(why));
    if (ret < 0)
        goto fail;

    give_back(rs, c, true);
    atomic_store(&rs->gone, false);
    out->products = prods;
    out->nproducts = np;
    out->seeded = sd.was_empty;
    /* Unfinished orders stay on the shared belt: store_take() hands this
     * instance's own ones out first. */
    out->unfinished = NULL;
    out->nunfinished = 0;
    free(sd.added);
    return 0;

fail:
    snprintf(err, errlen, "store %s: %s", rs->describe, why);
    give_back(rs, c, false);
    free(prods);
    free(sd.added);
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

static int args_init(struct args *a, size_t cap, size_t capnum)
{
    memset(a, 0, sizeof(*a));
    a->cap = cap;
    a->capnum = capnum;
    a->v = calloc(cap, sizeof(*a->v));
    a->len = calloc(cap, sizeof(*a->len));
    a->num = calloc(capnum, sizeof(*a->num));
    return a->v && a->len && a->num ? 0 : -ENOMEM;
}

static void args_free(struct args *a)
{
    free(a->num);
    free(a->len);
    free(a->v);
}

/* Append the arguments of one idempotency key (endpoint, key,
 * fingerprint). */
static void arg_idem(struct args *a, const struct store_idem *idem,
                     const char *dflt_ep)
{
    if (idem == NULL) {
        arg_s(a, dflt_ep);
        arg_s(a, "");
        arg_s(a, "");
        return;
    }
    arg_s(a, idem->endpoint);
    arg(a, idem->key, idem->key_len);
    arg(a, idem->fingerprint, idem->fingerprint_len);
}

/* ---- lanes: one commit at a time each, a growing sequence ------------ */

/* Take a free lane and the next sequence number on it, or -EAGAIN. */
static int lane_get(struct redis_store *rs, uint64_t *seq)
{
    int lane = -EAGAIN;

    pthread_mutex_lock(&rs->lane_mu);
    for (int i = 0; i < LANES; i++)
        if (!rs->lane_busy[i]) {
            rs->lane_busy[i] = true;
            *seq = ++rs->lane_seq[i];
            lane = i;
            break;
        }
    pthread_mutex_unlock(&rs->lane_mu);
    return lane;
}

static void lane_put(struct redis_store *rs, int lane)
{
    pthread_mutex_lock(&rs->lane_mu);
    rs->lane_busy[lane] = false;
    pthread_mutex_unlock(&rs->lane_mu);
}

/* The head of a shopd_commit call: FCALL, the tag and the counts. */
static void arg_head(struct redis_store *rs, struct args *a, int lane,
                     uint64_t seq, size_t nres, size_t nacc, size_t nrst)
{
    arg_s(a, "FCALL");
    arg_s(a, "shopd_commit");
    arg_s(a, "1");
    arg_s(a, PREFIX);
    arg_s(a, rs->epoch);
    arg_s(a, rs->instance);
    arg_s(a, rs->number);
    arg_fmt(a, "%d", lane);
    arg_s(a, rs->boot);
    arg_fmt(a, "%" PRIu64, seq);
    arg_fmt(a, "%zu", rs->capacity);
    arg_fmt(a, "%u", rs->ttl);
    arg_fmt(a, "%zu", rs->history);
    arg_fmt(a, "%zu", nres);
    arg_fmt(a, "%zu", nacc);
    arg_fmt(a, "%zu", nrst);
}

/* ---- sending a commit until its outcome is known ---------------------- */

/*
 * Write the command in `c`'s output buffer. Returns 0 (all written), 1
 * (nothing written: the server cannot have it) or -1 (partly written).
 */
static int flush_out(redisContext *c)
{
    int done = 0;

    if (redisBufferWrite(c, &done) == REDIS_ERR)
        return 1;
    while (!done)
        if (redisBufferWrite(c, &done) == REDIS_ERR)
            return -1;
    return 0;
}

/* Whether an error reply means the commit was not applied and sending it
 * again may help at once (the library was missing: loaded again). */
static bool retry_now(struct redis_store *rs, const redisReply *r)
{
    return note_error(rs, r) && atomic_load(&rs->reload);
}

/*
 * Send the tagged commit in `a` and read its reply into `*out` (an array;
 * the caller frees it). While no attempt can have reached Redis, a
 * failure returns -EIO at once (nothing was applied). Once one may have
 * (sent, then no reply), the same commit is sent again on a fresh
 * connection until a reply comes or OUTCOME_WAIT_MS pass: then
 * -ETIMEDOUT. An error reply to a commit that was never in doubt is -EIO
 * (the script refused it before writing).
 */
static int exchange(struct redis_store *rs, struct args *a, redisReply **out)
{
    int64_t deadline = 0;
    bool doubt = false;

    *out = NULL;
    for (int attempt = 0;; attempt++) {
        int64_t now = mono_ns();
        if (doubt && now >= deadline) {
            count(&rs->unknown, 1);
            return -ETIMEDOUT;
        }
        if (!doubt && attempt >= 3)
            return -EIO;
        if (attempt > 0 && doubt)
            pause_ms(RESEND_PAUSE_MS);
        redisContext *c = borrow(rs);
        if (c == NULL) {
            if (!doubt)
                return -EIO;
            continue;
        }
        int64_t left = doubt ? (deadline - now) / 1000000 : IO_TIMEOUT_MS;
        redisSetTimeout(c, tv_ms(left < 1 ? 1 : left));
        redisAppendCommandArgv(c, (int)a->n, a->v, a->len);
        int w = flush_out(c);
        if (w == 1) {
            give_back(rs, c, false);
            continue; /* not sent: a fresh connection may do */
        }
        bool was_doubt = doubt;
        if (!doubt) {
            doubt = true;
            deadline = mono_ns() + (int64_t)OUTCOME_WAIT_MS * 1000000;
        }
        redisReply *r = NULL;
        if (w < 0 || redisGetReply(c, (void **)&r) != REDIS_OK) {
            count(&rs->round_trips, 1);
            give_back(rs, c, false);
            continue; /* in doubt: send it again */
        }
        count(&rs->round_trips, 1);
        redisSetTimeout(c, tv_ms(IO_TIMEOUT_MS));
        give_back(rs, c, true);
        if (r->type != REDIS_REPLY_ERROR) {
            *out = r;
            return 0;
        }
        bool again = retry_now(rs, r);
        freeReplyObject(r);
        if (!was_doubt) {
            /* Refused, and no earlier attempt can have been applied. */
            if (!again)
                return -EIO;
            doubt = false;
        }
        /* Otherwise an earlier attempt may have been applied: only a
         * reply to the same tag tells (Redis loading, the shop back). */
    }
}

/* What a commit reply says of the results at `e` (2 values each). */
static void take_results(struct redis_store *rs, redisReply **e,
                         struct store_result *res, size_t m)
{
    for (size_t i = 0; i < m; i++) {
        int status = (int)reply_int(e[2 * i]);
        bool applied = reply_int(e[2 * i + 1]) == 1;
        if (status < STORE_QUEUED || status > STORE_OUT_OF_STOCK)
            status = STORE_QUEUED;
        res[i].status = (enum store_status)status;
        res[i].applied = applied;
        if (!applied)
            count(&rs->duplicates, 1);
    }
}

static int take_accepts(redisReply **e, struct store_accept *acc, size_t m)
{
    for (size_t i = 0; i < m; i++) {
        int code = (int)reply_int(e[2 * i]);
        const redisReply *v = e[2 * i + 1];
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

static int take_restocks(redisReply **e, struct store_restock *rt, size_t m)
{
    for (size_t i = 0; i < m; i++, e += 4) {
        if (reply_int(e[0]) == 0) {
            rt[i].result = STORE_ACCEPTED;
            rt[i].stock = reply_int(e[1]);
            rt[i].sold = reply_int(e[2]);
            rt[i].restocked = reply_int(e[3]);
            continue;
        }
        rt[i].result = STORE_KEY_EXISTS;
        if (rt[i].existing &&
            (!is_str(e[1]) ||
             parse_answer(e[1]->str, e[1]->len, rt[i].existing) < 0))
            return -EIO;
    }
    return 0;
}

static int check_batch(const struct redis_store *rs,
                       const struct store_batch *b)
{
    for (size_t i = 0; i < b->naccepts; i++)
        if (b->accepts[i].order.product >= rs->nproducts)
            return -EINVAL;
    for (size_t i = 0; i < b->nresults; i++)
        if (b->results[i].product >= rs->nproducts)
            return -EINVAL;
    for (size_t i = 0; i < b->nrestocks; i++)
        if (b->restocks[i].product >= rs->nproducts)
            return -EINVAL;
    return 0;
}

/* The tail of a result's record: "|<processed us>|<worker>|<number>". */
static void arg_tail(struct redis_store *rs, struct args *a, int64_t ns,
                     int32_t worker)
{
    arg_fmt(a, "|%" PRId64 "|%" PRId32 "|%s", ns / 1000, worker, rs->number);
}

/* Room for an order packed as its entry's field (unpack_order()). */
#define PACKED_MAX (STORE_SKU_MAX + STORE_CUSTOMER_MAX + 96)

/* The arguments of the results, accepts and restocks of `b`. `pk` has
 * room for naccepts packed orders. */
static void arg_batch(struct redis_store *rs, struct args *a,
                      const struct store_batch *b, char (*pk)[PACKED_MAX])
{
    for (size_t i = 0; i < b->nresults; i++) {
        const struct store_result *res = &b->results[i];
        arg_fmt(a, "%" PRIu64, res->id);
        arg_s(a, rs->products[res->product].sku);
        arg_fmt(a, "%" PRIu32, res->quantity);
        arg_tail(rs, a, res->processed_ns, res->worker);
    }
    for (size_t i = 0; i < b->naccepts; i++) {
        const struct store_accept *acc = &b->accepts[i];
        const struct store_order *o = &acc->order;
        int n = snprintf(pk[i], PACKED_MAX, "%s|%" PRIu32 "|%" PRId64 "|%s|",
                         rs->products[o->product].sku, o->quantity,
                         o->accepted_ns, rs->number);
        size_t len = n > 0 ? (size_t)n : 0;
        if (o->has_customer) {
            size_t cl = strnlen(o->customer, STORE_CUSTOMER_MAX);
            pk[i][len++] = '+';
            memcpy(pk[i] + len, o->customer, cl);
            len += cl;
        }
        arg(a, pk[i], len);
        if (acc->idem != NULL) {
            arg_s(a, "1");
            arg_idem(a, acc->idem, "buy");
        } else {
            arg_s(a, "");
        }
    }
    for (size_t i = 0; i < b->nrestocks; i++) {
        const struct store_restock *rt = &b->restocks[i];
        arg_s(a, rs->products[rt->product].sku);
        arg_fmt(a, "%" PRId64, rt->quantity);
        arg_idem(a, rt->idem, "restock");
    }
}

/* An empty commit: whether the loaded shop is there (a probe). */
static int probe(struct redis_store *rs)
{
    int there = shop_check(rs);
    atomic_store(&rs->available, there == 1);
    if (there != 1)
        count(&rs->failures, 1);
    return there == 1 ? 0 : -EIO;
}

static int rd_commit(struct store *st, struct store_batch *b)
{
    struct redis_store *rs = (struct redis_store *)st;
    size_t nr = b->nresults, na = b->naccepts, nk = b->nrestocks;
    struct args a;
    redisReply *r = NULL;
    uint64_t seq = 0;
    int lane = -1;
    int ret = check_batch(rs, b);

    if (ret < 0)
        return ret;
    if (nr + na + nk == 0)
        return probe(rs);
    ret = args_init(&a, 16 + 4 * nr + 5 * na + 5 * nk, 16 + 5 * (nr + na + nk));
    char(*pk)[PACKED_MAX] = calloc(na ? na : 1, sizeof(*pk));
    if (ret < 0 || pk == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    lane = lane_get(rs, &seq);
    ret = -EIO;
    if (lane < 0)
        goto out;
    arg_head(rs, &a, lane, seq, nr, na, nk);
    arg_batch(rs, &a, b, pk);
    ret = exchange(rs, &a, &r);
    if (ret < 0)
        goto out;
    ret = -EIO;
    if (!is_array(r, 1 + 2 * nr + 2 * na + 4 * nk))
        goto out;
    if (reply_int(r->element[0]) == 1)
        count(&rs->replays, 1);
    redisReply **e = r->element + 1;
    take_results(rs, e, b->results, nr);
    if (take_accepts(e + 2 * nr, b->accepts, na) < 0 ||
        take_restocks(e + 2 * nr + 2 * na, b->restocks, nk) < 0)
        goto out;
    atomic_store(&rs->gone, false);
    ret = 0;
out:
    if (r)
        freeReplyObject(r);
    if (lane >= 0)
        lane_put(rs, lane);
    free(pk);
    args_free(&a);
    atomic_store(&rs->available, ret == 0);
    if (ret == -EIO || ret == -ETIMEDOUT)
        count(&rs->failures, 1);
    return ret;
}

/* ---- reads ----------------------------------------------------------- */

static enum store_status status_of(int64_t v)
{
    return v == 1   ? STORE_FULFILLED
           : v == 2 ? STORE_OUT_OF_STOCK
                    : STORE_QUEUED;
}

static int rd_order_get(struct store *st, uint64_t id, struct store_order *out)
{
    struct redis_store *rs = (struct redis_store *)st;
    char idbuf[24], hist[24];

    snprintf(idbuf, sizeof(idbuf), "%" PRIu64, id);
    snprintf(hist, sizeof(hist), "%zu", rs->history);
    const char *argv[] = {"FCALL",   "shopd_order", "1", PREFIX,
                          rs->epoch, idbuf,         hist};
    redisReply *r = command(rs, 7, argv, NULL);
    int ret = -EIO;
    if (!is_array(r, 0))
        goto out;
    ret = -ENOENT;
    if (r->elements < 9)
        goto out;
    redisReply **e = r->element;
    memset(out, 0, sizeof(*out));
    out->id = id;
    out->status = status_of(reply_int(e[0]));
    out->quantity = (uint32_t)reply_int(e[2]);
    if (is_str(e[3]) && e[3]->len > 0) {
        out->has_customer = true;
        copy_str(out->customer, sizeof(out->customer), e[3]->str + 1,
                 e[3]->len - 1);
    }
    out->accepted_ns = reply_int(e[4]);
    out->processed_ns = reply_int(e[5]);
    out->worker = (int32_t)reply_int(e[6]);
    if (is_str(e[7]))
        copy_str(out->accepted_by, sizeof(out->accepted_by), e[7]->str,
                 e[7]->len);
    if (is_str(e[8]))
        copy_str(out->processed_by, sizeof(out->processed_by), e[8]->str,
                 e[8]->len);
    /* A product this instance did not load (another instance added it
     * after this one started) cannot be named by index. */
    int64_t idx = is_str(e[1]) ? find_sku(rs, e[1]->str) : -1;
    if (idx < 0)
        goto out;
    out->product = (uint32_t)idx;
    ret = 0;
out:
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

    if (n < 0 || (size_t)n + key_len >= sizeof(name))
        return -EINVAL;
    if (atomic_load(&rs->gone))
        return -EIO; /* a new shop's keys are not this shop's */
    memcpy(name + n, key, key_len);
    const char *argv[] = {"GET", name};
    const size_t lens[] = {3, (size_t)n + key_len};
    redisReply *r = command(rs, 2, argv, lens);
    int ret = -EIO;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        goto out;
    ret = -ENOENT;
    if (r->type == REDIS_REPLY_NIL)
        goto out;
    ret = is_str(r) ? parse_answer(r->str, r->len, out) : -EIO;
out:
    if (r)
        freeReplyObject(r);
    return ret;
}

/* ---- take ------------------------------------------------------------ */

/* An entry this instance cannot hand to its shop (a product it did not
 * load): the store finishes its order at once. */
struct odd {
    uint64_t id;
    uint32_t quantity;
    char sku[STORE_SKU_MAX + 1];
};

static void process_here(struct redis_store *rs, const struct odd *odd,
                         size_t n, unsigned worker)
{
    struct args a;
    uint64_t seq;
    redisReply *r = NULL;
    int64_t now = time_now_ns(CLOCK_REALTIME);
    int lane = -1;

    if (args_init(&a, 16 + 4 * n, 16 + 4 * n) == 0 &&
        (lane = lane_get(rs, &seq)) >= 0) {
        arg_head(rs, &a, lane, seq, n, 0, 0);
        for (size_t i = 0; i < n; i++) {
            arg_fmt(&a, "%" PRIu64, odd[i].id);
            arg_s(&a, odd[i].sku);
            arg_fmt(&a, "%" PRIu32, odd[i].quantity);
            arg_tail(rs, &a, now, (int32_t)worker);
        }
        /* On failure the entries stay pending: claimed again later. */
        if (exchange(rs, &a, &r) == 0)
            freeReplyObject(r);
    }
    if (lane >= 0)
        lane_put(rs, lane);
    args_free(&a);
}

/*
 * Turn a list of stream entries into orders in `out` (room for `max`);
 * entries of unknown products are processed here. Returns how many
 * orders.
 */
static size_t entries_to_orders(struct redis_store *rs, const redisReply *list,
                                struct store_order *out, size_t max,
                                unsigned worker)
{
    size_t n = 0, nodd = 0;
    struct odd odd[32];

    if (!is_array(list, 0))
        return 0;
    for (size_t i = 0; i < list->elements && n < max; i++) {
        char sku[STORE_SKU_MAX + 1];
        if (entry_order(rs, list->element[i], &out[n], sku) == 0) {
            n++;
        } else if (out[n].id != 0 && sku[0] != '\0' &&
                   nodd < sizeof(odd) / sizeof(odd[0])) {
            odd[nodd].id = out[n].id;
            odd[nodd].quantity = out[n].quantity;
            memcpy(odd[nodd].sku, sku, sizeof(sku));
            nodd++;
        }
    }
    if (nodd > 0)
        process_here(rs, odd, nodd, worker);
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
static int reclaim(struct redis_store *rs, unsigned worker,
                   struct store_order *out, size_t max)
{
    char idle[16], cnt[24];

    snprintf(idle, sizeof(idle), "%u", rs->reclaim_ms);
    snprintf(cnt, sizeof(cnt), "%zu", max);
    const char *argv[] = {"XAUTOCLAIM", key_belt, GROUP,
                          rs->instance, idle,     rs->reclaim_cursor,
                          "COUNT",      cnt};
    redisReply *r = command(rs, 8, argv, NULL);
    if (r == NULL)
        return -EIO;
    int n = 0;
    if (is_array(r, 2) && is_str(r->element[0])) {
        copy_str(rs->reclaim_cursor, sizeof(rs->reclaim_cursor),
                 r->element[0]->str, r->element[0]->len);
        n = (int)entries_to_orders(rs, r->element[1], out, max, worker);
    }
    freeReplyObject(r);
    if (n > 0) {
        char nb[16];
        snprintf(nb, sizeof(nb), "%d", n);
        const char *cargv[] = {"FCALL", "shopd_reclaimed", "1",
                               PREFIX,  rs->epoch,         nb};
        r = command(rs, 6, cargv, NULL);
        if (r)
            freeReplyObject(r);
        count(&rs->reclaimed, (uint64_t)n);
    }
    return n;
}

/*
 * Whether the loaded shop is (still) in Redis, as far as takes need to
 * know: asked at most every SHOP_CHECK_MS by one thread; in between, the
 * last answer (or what a commit found) stands.
 */
static bool shop_here(struct redis_store *rs)
{
    int64_t now = mono_ns();
    int64_t next = atomic_load(&rs->next_check);

    if (now < next ||
        !atomic_compare_exchange_strong(&rs->next_check, &next,
                                        now + (int64_t)SHOP_CHECK_MS * 1000000))
        return !atomic_load(&rs->gone);
    return shop_check(rs) == 1;
}

/* A dead instance's orders, at most every reclaim_ms / 2, one thread at a
 * time; a full page means more may wait, so look again soon. Returns the
 * orders claimed (0 when it was not this thread's turn), or -EIO. */
static int reclaim_turn(struct redis_store *rs, unsigned worker,
                        struct store_order *out, size_t max)
{
    int64_t now = mono_ns();
    bool expected = false;

    if (now < atomic_load(&rs->next_reclaim) ||
        !atomic_compare_exchange_strong(&rs->reclaiming, &expected, true))
        return 0;
    int ret = reclaim(rs, worker, out, max);
    bool more = strcmp(rs->reclaim_cursor, "0-0") != 0;
    atomic_store(&rs->next_reclaim,
                 more ? now : now + (int64_t)rs->reclaim_ms * 500000);
    atomic_store(&rs->reclaiming, false);
    return ret;
}

static int rd_take(struct store *st, unsigned worker, struct store_order *out,
                   size_t max, unsigned wait_ms)
{
    struct redis_store *rs = (struct redis_store *)st;

    if (max == 0)
        return 0;
    size_t n = take_own(rs, out, max);
    if (n > 0)
        return (int)n;
    if (!shop_here(rs)) {
        atomic_store(&rs->available, false);
        return -EIO; /* never take a shop's orders that is not ours */
    }
    int ret = reclaim_turn(rs, worker, out, max);
    if (ret != 0)
        return ret;

    char cnt[24], block[16];
    snprintf(cnt, sizeof(cnt), "%zu", max);
    snprintf(block, sizeof(block), "%u",
             wait_ms > WAIT_MAX_MS ? WAIT_MAX_MS : wait_ms);
    const char *argv[] = {"XREADGROUP", "GROUP",  GROUP,   rs->instance,
                          "COUNT",      cnt,      "BLOCK", block,
                          "STREAMS",    key_belt, ">"};
    /* BLOCK 0 would wait forever: without a wait, leave BLOCK out. */
    int argc = wait_ms > 0 ? 11 : 9;
    if (wait_ms == 0) {
        argv[6] = "STREAMS";
        argv[7] = key_belt;
        argv[8] = ">";
    }
    redisReply *r = command(rs, argc, argv, NULL);
    /* Workers poll all the time: they notice a Redis that went away (or
     * came back) even when nobody buys. */
    atomic_store(&rs->available, r != NULL && !atomic_load(&rs->gone));
    ret = -EIO;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        goto out;
    ret = 0;
    if (is_array(r, 1) && is_array(r->element[0], 2))
        ret = (int)entries_to_orders(rs, r->element[0]->element[1], out, max,
                                     worker);
out:
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
    int ret = read_products(rs, c, n < rs->nproducts ? n : 0, &p, &np);
    give_back(rs, c, ret != -EIO || c->err == 0);
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
    const char *argv[] = {"FCALL", "shopd_stats", "1", PREFIX, rs->epoch};
    redisReply *r = command(rs, 5, argv, NULL);
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
    if (r)
        freeReplyObject(r);
    return ret;
}

/* ---- status ---------------------------------------------------------- */

static bool rd_available(struct store *st)
{
    struct redis_store *rs = (struct redis_store *)st;

    return atomic_load(&rs->available) && !atomic_load(&rs->gone);
}

static void rd_stats(struct store *st, struct store_stats *out)
{
    struct redis_store *rs = (struct redis_store *)st;

    out->vanished = atomic_load(&rs->gone);
    out->available = atomic_load(&rs->available) && !out->vanished;
    if (out->vanished)
        snprintf(out->reason, sizeof(out->reason),
                 "the shop is missing from Redis (flushed, or Redis "
                 "restarted empty)");
    else if (!out->available)
        snprintf(out->reason, sizeof(out->reason), "Redis does not answer");
#define LOAD(f) atomic_load_explicit(&rs->f, memory_order_relaxed)
    out->round_trips = LOAD(round_trips);
    out->failures = LOAD(failures);
    out->reclaimed = LOAD(reclaimed);
    out->duplicates = LOAD(duplicates);
    out->replays = LOAD(replays);
    out->unknown = LOAD(unknown);
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
