/*
 * floor.c - the shop floor's live controls (SPEC §11): how many elves,
 * how much work per order, paused or not, and the injected faults of
 * POST /buy with their end.
 *
 * The pool (worker/) does the growing, shrinking and pausing; this file
 * keeps the rest as plain data and applies a change in one piece:
 *
 *   shop_floor_set ──lock mu──▶ pool_resize ─▶ work_ms ─▶ pool_pause ─▶ faults
 *
 * A change is validated by the caller (server/api/floor.c) before it gets
 * here, so the only failure left is the pool's (a thread that cannot be
 * created, or a drain that began): the resize comes first and a failed one
 * applies nothing.
 *
 * Reads on the hot path never lock: work_ms is an atomic a worker reads
 * before each order (the change applies from the next order an elf takes),
 * and a POST /buy looks at `active` first, taking `mu` only while a fault
 * is on. Faults end by themselves at `until_mono` (looked at whenever they
 * are read) or at once when every rate and the latency are set to 0, and
 * at the drain (floor_end).
 *
 * Rates are drawn per request from a per-thread xorshift64* generator
 * (seeded once per thread from the clock and the thread's own address):
 * no lock and no rand().
 *
 * Lock order: `mu` before the pool's locks (pool_resize, pool_pause); the
 * pool never calls back here. Nothing else is taken under `mu`.
 */
#include "shop/shop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"
#include "shop/internal.h"
#include "worker/worker.h"

struct floor {
    struct pool *pool; /* not owned; NULL when the mode has no pool */
    size_t fixed;      /* workers at start */
    unsigned start_work_ms;
    size_t quick_batch; /* the pool's batch without simulated work */
    _Atomic unsigned work_ms;
    _Atomic bool active;          /* a fault is on (may have expired: see mu) */
    _Atomic uint64_t injected[3]; /* by enum shop_fault_kind */

    /* Serialises changes; guards faults and until_mono. */
    pthread_mutex_t mu;
    struct shop_faults faults;
    int64_t until_mono; /* CLOCK_MONOTONIC ns; meaningful while active */
};

int floor_create(struct pool *pool, size_t fixed_workers, unsigned work_ms,
                 size_t quick_batch, struct floor **out)
{
    struct floor *f = calloc(1, sizeof(*f));
    int rc;

    *out = NULL;
    if (f == NULL)
        return -ENOMEM;
    rc = -pthread_mutex_init(&f->mu, NULL);
    if (rc != 0) {
        free(f);
        return rc;
    }
    f->pool = pool;
    f->fixed = fixed_workers;
    f->quick_batch = quick_batch;
    f->start_work_ms = work_ms;
    atomic_init(&f->work_ms, work_ms);
    atomic_init(&f->active, false);
    for (size_t i = 0; i < 3; i++)
        atomic_init(&f->injected[i], 0);
    *out = f;
    return 0;
}

void floor_destroy(struct floor *f)
{
    if (f == NULL)
        return;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

unsigned floor_work_ms(struct floor *f)
{
    return atomic_load_explicit(&f->work_ms, memory_order_relaxed);
}

/* Turn the faults off (mu held). */
static void faults_clear_locked(struct floor *f)
{
    memset(&f->faults, 0, sizeof(f->faults));
    atomic_store(&f->active, false);
}

/* End the faults if their time is up (mu held). */
static void expire_locked(struct floor *f)
{
    if (atomic_load(&f->active) &&
        time_now_ns(CLOCK_MONOTONIC) >= f->until_mono)
        faults_clear_locked(f);
}

void floor_end(struct floor *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->mu);
    faults_clear_locked(f);
    pthread_mutex_unlock(&f->mu);
}

void shop_floor_get(struct shop *s, struct shop_floor *out)
{
    struct floor *f = shop_floor_of(s);

    memset(out, 0, sizeof(*out));
    out->workers = pool_size(f->pool);
    out->work_ms = floor_work_ms(f);
    out->paused = pool_paused(f->pool);
    out->start_workers = f->fixed;
    out->start_work_ms = f->start_work_ms;
    pthread_mutex_lock(&f->mu);
    expire_locked(f);
    out->faults = f->faults;
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < 3; i++)
        out->injected[i] = atomic_load(&f->injected[i]);
}

/* Merge the change's faults into the current ones (mu held). */
static void faults_apply_locked(struct floor *f,
                                const struct shop_floor_change *c)
{
    struct shop_faults *ft = &f->faults;

    expire_locked(f);
    if (c->set_latency_ms)
        ft->latency_ms = c->latency_ms;
    if (c->set_error_rate)
        ft->error_rate = c->error_rate;
    if (c->set_drop_rate)
        ft->drop_rate = c->drop_rate;
    if (ft->latency_ms == 0 && ft->error_rate <= 0 && ft->drop_rate <= 0) {
        faults_clear_locked(f); /* every fault 0: they end at once */
        return;
    }
    if (c->for_s > 0) {
        f->until_mono =
            time_now_ns(CLOCK_MONOTONIC) + (int64_t)c->for_s * NS_PER_S;
        ft->until_ns =
            time_now_ns(CLOCK_REALTIME) + (int64_t)c->for_s * NS_PER_S;
    }
    /* A fault with no end would outlive the demo: the caller requires
     * for_s with any non-zero fault, so until is set here. */
    atomic_store(&f->active, ft->until_ns != 0);
}

int shop_floor_set(struct shop *s, const struct shop_floor_change *c)
{
    struct floor *f = shop_floor_of(s);
    int rc = 0;

    pthread_mutex_lock(&f->mu);
    if (shop_draining(s)) {
        rc = -EPIPE;
        goto out;
    }
    if (c->set_workers && (rc = pool_resize(f->pool, c->workers)) != 0)
        goto out;
    if (c->set_work_ms) {
        atomic_store(&f->work_ms, c->work_ms);
        /* slow orders one by one, quick in batches */
        pool_set_batch(f->pool, c->work_ms > 0 ? 1 : f->quick_batch);
    }
    if (c->set_paused && (rc = pool_pause(f->pool, c->paused)) != 0)
        goto out;
    faults_apply_locked(f, c);
out:
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* A per-thread xorshift64* generator: a uniform double in [0, 1). */
static double draw_unit(void)
{
    static _Thread_local uint64_t x;

    if (x == 0) {
        uint64_t seed = (uint64_t)time_now_ns(CLOCK_MONOTONIC) ^
                        (uint64_t)(uintptr_t)&x * 0x9E3779B97F4A7C15ull;
        x = seed != 0 ? seed : 0x2545F4914F6CDD1Dull;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

void shop_floor_draw(struct shop *s, struct shop_fault_draw *out)
{
    struct floor *f = shop_floor_of(s);
    struct shop_faults ft;

    memset(out, 0, sizeof(*out));
    if (!atomic_load_explicit(&f->active, memory_order_relaxed))
        return;
    pthread_mutex_lock(&f->mu);
    expire_locked(f);
    ft = f->faults;
    pthread_mutex_unlock(&f->mu);
    if (ft.error_rate > 0 && draw_unit() < ft.error_rate) {
        out->error = true;
        return; /* no order: neither latency nor a drop applies */
    }
    out->latency_ms = ft.latency_ms;
    out->drop = ft.drop_rate > 0 && draw_unit() < ft.drop_rate;
}

void shop_floor_injected(struct shop *s, enum shop_fault_kind kind)
{
    if ((unsigned)kind < 3)
        atomic_fetch_add_explicit(&shop_floor_of(s)->injected[kind], 1,
                                  memory_order_relaxed);
}
