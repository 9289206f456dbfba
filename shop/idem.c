/*
 * idem.c - the memory store's idempotency keys (SPEC §8): a bounded table
 * that remembers, per (endpoint, key), the fingerprint of the first request
 * and, once it succeeded, its outcome: the order id, or the product's
 * numbers after a restock (data, not an HTTP answer: the server renders
 * the replay from it).
 *
 * Layout: the table is split into `nshards` shards (up to IDEM_SHARDS, each
 * of at least IDEM_SHARD_MIN keys), a key's shard chosen by its hash, so
 * that HTTP threads rarely wait on one another's lock. A shard is a fixed
 * array of entries used as a ring in the order keys are first seen, plus a
 * hash index (chain heads, a power of two >= its entries, chained through
 * entry.next). A new key takes the slot at its shard's ring head; if that
 * slot still holds a key, that key is the oldest one kept in the shard and
 * is dropped first. Hashes spread evenly, so every shard sees an even share
 * of the keys and the key dropped is among the oldest of the whole table
 * (exactly the oldest when there is one shard: tables under
 * 2 * IDEM_SHARD_MIN keys). Nothing is allocated per request: the table is
 * mapped once (all shards' entries in one mapping, their chain heads in
 * another, with huge pages requested; pages are only made resident as keys
 * arrive), and the outcome lives inside its entry.
 *
 * Each entry keeps the full key (up to 255 bytes) and the full fingerprint
 * (the canonical request, up to SHOP_IDEM_FP_MAX bytes), and a lookup
 * compares both in full (scope and length, then memcmp): two keys are the
 * same key only when they are byte for byte the same, never because of a
 * hash. The hash only picks the shard and the bucket: FNV-1a 64 over the
 * scope and the key, started from a seed drawn from getrandom() per table,
 * with a final mix. It is a plain seeded hash-table hash, not a keyed
 * PRF: the seed makes a client's blind aim at one chain unlikely to land,
 * but nothing here proves chains short against an adaptive client. A chain
 * is bounded by the table's bound (a shard's entries), like the table
 * itself; that is the worst case a lookup can be made to walk. A key
 * expires `ttl` seconds after it was first used (CLOCK_MONOTONIC: the
 * memory store does not outlive the process); an expired entry found by a
 * lookup is dropped there.
 *
 * Entry states: FREE -> PENDING (begin: the first request is being
 * answered) -> DONE (complete: answer kept) or FREE (abort: not a success,
 * the key may be used again). Each begin stamps the entry with a new
 * generation that its ticket carries, so a complete() or abort() for an
 * entry that was dropped and reused in the meantime does nothing.
 *
 * Lock order: one shard's `lock` at a time, never held with another lock;
 * no I/O and no allocation or free while held.
 */
/* madvise(MADV_HUGEPAGE) is a Linux extension, outside strict POSIX. */
#define _DEFAULT_SOURCE 1

#include "shop/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/random.h>

#define IDEM_NONE UINT32_MAX

enum idem_state { IDEM_FREE = 0, IDEM_PENDING, IDEM_DONE };

struct idem_entry {
    uint64_t hash;      /* of scope and key: picks shard and bucket */
    int64_t expires_ns; /* CLOCK_MONOTONIC */
    uint64_t gen;       /* stamped by begin, carried by tickets */
    uint32_t next;      /* hash chain */
    uint8_t state;      /* enum idem_state */
    uint8_t scope;      /* enum shop_idem_scope */
    uint8_t key_len;    /* 1..SHOP_IDEM_KEY_MAX */
    uint16_t fp_len;    /* 1..SHOP_IDEM_FP_MAX */
    char key[SHOP_IDEM_KEY_MAX];
    char fp[SHOP_IDEM_FP_MAX];       /* the canonical request */
    struct shop_idem_answer outcome; /* once DONE */
};
_Static_assert(SHOP_IDEM_KEY_MAX <= UINT8_MAX, "key_len is a uint8_t");
_Static_assert(SHOP_IDEM_FP_MAX <= UINT16_MAX, "fp_len is a uint16_t");

#define IDEM_SHARDS    16 /* at most; a power of two */
#define IDEM_SHARD_MIN 64 /* keys per shard, at least */
#define IDEM_SLOT_BITS 24 /* a ticket's slot: shard << 24 | index */

struct idem_shard {
    /* guards every field below up to `cap`; each shard on its own lines */
    _Alignas(SHOP_CACHE_LINE) pthread_mutex_t lock;
    struct idem_entry *e; /* cap entries */
    uint32_t *bucket;     /* nbuckets chain heads */
    size_t head;          /* the ring slot the next new key takes */
    uint64_t gen;         /* last generation stamped */
    size_t cap, nbuckets; /* read-only after create */
};

struct idem_table {
    struct idem_shard *shard;   /* nshards, each on its own cache lines */
    size_t nshards, cap;        /* read-only after create */
    size_t shards_ready;        /* shards whose lock exists (create/destroy) */
    size_t shard_buckets;       /* chain heads per shard */
    struct idem_entry *entries; /* all shards' entries, one mapping */
    uint32_t *buckets;          /* all shards' chain heads, one mapping */
    size_t entries_size, buckets_size; /* bytes mapped */
    int64_t ttl_ns;                    /* read-only after create */
    uint64_t seed;                     /* read-only after create */
    _Atomic size_t used;               /* entries not FREE (for /stats) */
    _Atomic uint64_t replayed, in_use, mismatched;
};

/* FNV-1a 64 over the scope and the key, from the table's seed, with a
 * final mix so that the low bits (the bucket) and the high bits (the
 * shard) both depend on every input byte. */
static uint64_t key_hash(uint64_t seed, enum shop_idem_scope scope,
                         const char *key, size_t len)
{
    const uint64_t prime = UINT64_C(0x100000001b3);
    uint64_t h = UINT64_C(0xcbf29ce484222325) ^ seed;
    h = (h ^ (uint8_t)scope) * prime;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)key[i]) * prime;
    h ^= h >> 29;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 32;
    return h;
}

/* A seed for the hash: random bytes; the clock and an address if the
 * kernel gives none (still distinct per process, only less unpredictable). */
static uint64_t draw_seed(const void *self)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
        return seed;
    return (uint64_t)time_now_ns(CLOCK_MONOTONIC) ^
           ((uint64_t)time_now_ns(CLOCK_REALTIME) << 17) ^
           (uint64_t)(uintptr_t)self;
}

/*
 * Zeroed memory for the table, straight from the kernel: untouched pages
 * cost nothing (a shopd that never sees a key never pays for the table),
 * and huge pages are asked for, because keys land on random entries and
 * with 4 KiB pages nearly every lookup in a table of many megabytes would
 * also miss the TLB. Returns NULL on failure; free with table_free().
 */
static void *table_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE); /* advice only: may fail */
#endif
    return p;
}

static void table_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

/* Set up shard `sh` over `cap` entries at `e` and `nbuckets` heads at
 * `bucket` (parts of the table's two allocations). */
static int shard_init(struct idem_shard *sh, struct idem_entry *e, size_t cap,
                      uint32_t *bucket, size_t nbuckets)
{
    sh->e = e;
    sh->cap = cap;
    sh->bucket = bucket;
    sh->nbuckets = nbuckets;
    for (size_t i = 0; i < nbuckets; i++)
        bucket[i] = IDEM_NONE;
    return pthread_mutex_init(&sh->lock, NULL);
}

int idem_create(size_t cap, unsigned ttl_s, struct idem_table **out)
{
    struct idem_table *t = NULL;
    int err = -EINVAL;

    if (cap == 0 || cap > SHOP_IDEM_KEYS_MAX || ttl_s == 0)
        goto fail;
    err = -ENOMEM;
    t = calloc(1, sizeof(*t));
    if (!t)
        goto fail;
    t->cap = cap;
    t->nshards = 1;
    while (t->nshards < IDEM_SHARDS && cap / (t->nshards * 2) >= IDEM_SHARD_MIN)
        t->nshards *= 2;
    /* Every shard gets the same number of chain heads: a power of two at
     * least as large as its share of the keys (the shares add up to cap). */
    t->shard_buckets = 1;
    while (t->shard_buckets < (cap + t->nshards - 1) / t->nshards)
        t->shard_buckets *= 2;
    t->ttl_ns = (int64_t)ttl_s * NS_PER_S;
    t->shard = shop_cache_zalloc(t->nshards * sizeof(*t->shard));
    t->entries_size = cap * sizeof(struct idem_entry);
    t->buckets_size = t->nshards * t->shard_buckets * sizeof(uint32_t);
    t->entries = table_alloc(t->entries_size);
    t->buckets = table_alloc(t->buckets_size);
    if (!t->shard || !t->entries || !t->buckets)
        goto fail;
    size_t first = 0;
    for (size_t i = 0; i < t->nshards; i++) {
        size_t n = cap / t->nshards + (i < cap % t->nshards ? 1 : 0);
        err = -shard_init(&t->shard[i], t->entries + first, n,
                          t->buckets + i * t->shard_buckets, t->shard_buckets);
        if (err)
            goto fail;
        t->shards_ready++;
        first += n;
    }
    t->seed = draw_seed(t);
    *out = t;
    return 0;

fail:
    idem_destroy(t);
    *out = NULL;
    return err;
}

void idem_destroy(struct idem_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->shards_ready; i++)
        pthread_mutex_destroy(&t->shard[i].lock);
    table_free(t->entries, t->entries_size);
    table_free(t->buckets, t->buckets_size);
    free(t->shard);
    free(t);
}

/* The hash's low bits pick the bucket, its high bits the shard. */
static size_t bucket_of(const struct idem_shard *sh, uint64_t h)
{
    return (size_t)(h & (sh->nbuckets - 1));
}

static size_t shard_of(const struct idem_table *t, uint64_t h)
{
    return (size_t)((h >> 40) & (t->nshards - 1));
}

/* Whether entry `e` holds `key` of `scope`, compared in full. */
static bool same_key(const struct idem_entry *e, uint64_t h,
                     enum shop_idem_scope scope, const char *key, size_t len)
{
    return e->hash == h && e->scope == (uint8_t)scope && e->key_len == len &&
           memcmp(e->key, key, len) == 0;
}

/* Unlink entry `i` from its chain and mark it free. Lock held. */
static void drop_locked(struct idem_table *t, struct idem_shard *sh, uint32_t i)
{
    struct idem_entry *e = &sh->e[i];
    uint32_t *link = &sh->bucket[bucket_of(sh, e->hash)];
    while (*link != IDEM_NONE && *link != i)
        link = &sh->e[*link].next;
    if (*link == i)
        *link = e->next;
    e->state = IDEM_FREE;
    e->next = IDEM_NONE;
    atomic_fetch_sub_explicit(&t->used, 1, memory_order_relaxed);
}

enum shop_idem_result idem_begin(struct idem_table *t,
                                 enum shop_idem_scope scope, const char *key,
                                 size_t len, const char *fp, size_t fp_len,
                                 int64_t now_ns, struct shop_idem_ticket *tk,
                                 struct shop_idem_answer *ans)
{
    /* Callers check; never write past an entry's arrays. */
    if (len > SHOP_IDEM_KEY_MAX)
        len = SHOP_IDEM_KEY_MAX;
    if (fp_len > SHOP_IDEM_FP_MAX)
        fp_len = SHOP_IDEM_FP_MAX;
    uint64_t h = key_hash(t->seed, scope, key, len);

    enum shop_idem_result res = SHOP_IDEM_NEW;
    size_t si = shard_of(t, h);
    struct idem_shard *sh = &t->shard[si];
    size_t b = bucket_of(sh, h);

    /* The table is larger than the caches: start the two loads that miss
     * (the chain head, and the ring slot a new key takes) before waiting
     * on them one after the other. */
    __builtin_prefetch(&sh->bucket[b]);
    pthread_mutex_lock(&sh->lock);
    __builtin_prefetch(&sh->e[sh->head], 1);
    uint32_t i = sh->bucket[b];
    while (i != IDEM_NONE && !same_key(&sh->e[i], h, scope, key, len))
        i = sh->e[i].next;
    if (i != IDEM_NONE && now_ns >= sh->e[i].expires_ns) {
        drop_locked(t, sh, i);
        i = IDEM_NONE;
    }
    if (i != IDEM_NONE) {
        struct idem_entry *e = &sh->e[i];
        if (e->state == IDEM_PENDING)
            res = SHOP_IDEM_IN_PROGRESS;
        else if (e->fp_len != fp_len || memcmp(e->fp, fp, fp_len) != 0)
            res = SHOP_IDEM_MISMATCH;
        else {
            res = SHOP_IDEM_REPLAY;
            *ans = e->outcome;
        }
    } else {
        /* A new key takes the ring's head; a key still there is the oldest
         * one kept, and is dropped first. */
        i = (uint32_t)sh->head;
        sh->head = (sh->head + 1) % sh->cap;
        if (sh->e[i].state != IDEM_FREE)
            drop_locked(t, sh, i);
        struct idem_entry *e = &sh->e[i];
        e->hash = h;
        e->scope = (uint8_t)scope;
        e->key_len = (uint8_t)len;
        memcpy(e->key, key, len);
        e->fp_len = (uint16_t)fp_len;
        memcpy(e->fp, fp, fp_len);
        e->expires_ns = now_ns + t->ttl_ns;
        e->gen = ++sh->gen;
        e->state = IDEM_PENDING;
        memset(&e->outcome, 0, sizeof(e->outcome));
        e->next = sh->bucket[b];
        sh->bucket[b] = i;
        atomic_fetch_add_explicit(&t->used, 1, memory_order_relaxed);
        tk->slot = (uint32_t)(si << IDEM_SLOT_BITS) | i;
        tk->gen = e->gen;
    }
    pthread_mutex_unlock(&sh->lock);

    if (res == SHOP_IDEM_IN_PROGRESS)
        atomic_fetch_add_explicit(&t->in_use, 1, memory_order_relaxed);
    else if (res == SHOP_IDEM_MISMATCH)
        atomic_fetch_add_explicit(&t->mismatched, 1, memory_order_relaxed);
    else if (res == SHOP_IDEM_REPLAY)
        atomic_fetch_add_explicit(&t->replayed, 1, memory_order_relaxed);
    return res;
}

/* The shard of ticket `tk`, or NULL for a ticket no begin() gave. */
static struct idem_shard *ticket_shard(struct idem_table *t,
                                       const struct shop_idem_ticket *tk)
{
    size_t si = tk->slot >> IDEM_SLOT_BITS;
    size_t i = tk->slot & ((1u << IDEM_SLOT_BITS) - 1);
    return si < t->nshards && i < t->shard[si].cap ? &t->shard[si] : NULL;
}

/* The entry ticket `tk` names, if it is still pending. Lock held. */
static struct idem_entry *ticket_entry(struct idem_shard *sh,
                                       const struct shop_idem_ticket *tk)
{
    struct idem_entry *e = &sh->e[tk->slot & ((1u << IDEM_SLOT_BITS) - 1)];
    return e->state == IDEM_PENDING && e->gen == tk->gen ? e : NULL;
}

int idem_complete(struct idem_table *t, const struct shop_idem_ticket *tk,
                  const struct shop_idem_answer *outcome)
{
    int ret = -ENOENT;
    struct idem_shard *sh = ticket_shard(t, tk);
    if (!sh)
        return ret;
    pthread_mutex_lock(&sh->lock);
    struct idem_entry *e = ticket_entry(sh, tk);
    if (e) {
        e->state = IDEM_DONE;
        e->outcome = *outcome;
        ret = 0;
    }
    pthread_mutex_unlock(&sh->lock);
    return ret;
}

void idem_abort(struct idem_table *t, const struct shop_idem_ticket *tk)
{
    struct idem_shard *sh = ticket_shard(t, tk);
    if (!sh)
        return;
    pthread_mutex_lock(&sh->lock);
    struct idem_entry *e = ticket_entry(sh, tk);
    if (e)
        drop_locked(t, sh, (uint32_t)(e - sh->e));
    pthread_mutex_unlock(&sh->lock);
}

void idem_counts(struct idem_table *t, struct shop_snapshot *out)
{
    out->idem_replayed =
        atomic_load_explicit(&t->replayed, memory_order_relaxed);
    out->idem_in_use = atomic_load_explicit(&t->in_use, memory_order_relaxed);
    out->idem_mismatched =
        atomic_load_explicit(&t->mismatched, memory_order_relaxed);
    out->idem_keys = atomic_load_explicit(&t->used, memory_order_relaxed);
    out->idem_capacity = t->cap;
}
