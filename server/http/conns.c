/*
 * conns.c - admission of HTTP connections and request deadlines (SPEC §10).
 *
 * Why: libmicrohttpd 0.9.75 has an idle timeout only (one byte every few
 * seconds keeps a request alive forever: slowloris), stops accepting at its
 * connection limit (new clients then wait in the listen backlog behind the
 * ones holding the limit), and has a per-address limit that also leaves
 * the excess in the backlog. So libmicrohttpd's own limit is set above
 * ours, every connection it accepts is registered here, and:
 *
 *   - admission: a connection past max_total, or past max_per_ip from its
 *     address, has its socket shut down at once (libmicrohttpd then reads
 *     end-of-file and closes it, before any byte of it is parsed);
 *   - deadlines: each connection carries one deadline (CLOCK_MONOTONIC ms,
 *     0 for none). It is set to open + request_s when the connection opens
 *     (silent connections and the first request), to now + request_s when
 *     a later request's line arrives, cleared while a request that has
 *     fully arrived is being answered (slow readers are left to the idle
 *     timeout), and set to now + keepalive_s once an answer is sent. A
 *     reaper thread looks every REAP_MS and shuts down every connection
 *     past its deadline.
 *
 * libmicrohttpd exposes no "first byte of the next request" event on a
 * keep-alive connection, so there the request's clock starts when its
 * request line is complete; the line itself must come within keepalive_s.
 *
 * Shutting a socket down from the reaper thread is safe only while the
 * descriptor still belongs to that connection: libmicrohttpd calls the
 * CLOSED notification (conns_close, which takes `lock`) before it closes
 * the descriptor, and the reaper calls shutdown() under `lock` on
 * connections still in the list. shutdown() never blocks; it is the one
 * system call made under the lock, as the only way to keep the descriptor
 * from being closed and reused in between.
 *
 * Per-address counts live in a fixed open-addressing table (linear
 * probing, backward-shift deletion, a per-process hash seed), sized at
 * creation for twice the connection limit, so no allocation happens under
 * the lock and no address pattern degrades it for long.
 *
 * Lock order: libmicrohttpd's internal locks -> conns.lock.
 */
#include "server/http/conns.h"

#include "common/thread.h"
#include "common/time.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How often the reaper looks for overdue connections. */
#define REAP_MS 200

struct conn {
    struct conn *prev, *next; /* in conns.head; under conns.lock */
    int fd;
    unsigned char addr[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d */
    bool has_addr;
    bool counted;    /* admitted: holds a place in the counts */
    bool shut;       /* shutdown() was called; under conns.lock */
    bool kept_alive; /* a request completed (connection's thread only) */
    _Atomic int64_t deadline; /* ms, CLOCK_MONOTONIC; 0 = none */
};

struct ip_slot {
    unsigned char addr[16];
    unsigned count; /* 0: empty */
};

struct conns {
    struct conns_limits lim;
    struct http_counters *counters; /* may be NULL */
    uint64_t seed;
    pthread_t reaper;
    bool reaper_started;  /* set once by conns_create() */
    bool sync_ready;      /* lock and wake exist */
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;  /* the reaper waits for a connection or stop */
    bool stop;
    bool reaper_asleep;
    struct conn *head;
    unsigned admitted;     /* connections counted against max_total */
    struct ip_slot *slots; /* NULL when there is no per-address limit */
    size_t mask;           /* slots - 1 (a power of two minus one) */
};

static int64_t now_ms(void)
{
    return time_now_ms(CLOCK_MONOTONIC);
}

static void count(struct conns *cs, size_t field_offset, int delta)
{
    if (cs->counters == NULL)
        return;
    _Atomic uint64_t *f =
        (_Atomic uint64_t *)((char *)cs->counters + field_offset);
    if (delta > 0)
        atomic_fetch_add_explicit(f, (uint64_t)delta, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(f, (uint64_t)-delta, memory_order_relaxed);
}

#define COUNT(cs, field, delta)                                                \
    count((cs), offsetof(struct http_counters, field), (delta))

/* ---- the per-address table (under lock) -------------------------------- */

static size_t slot_hash(const struct conns *cs, const unsigned char *a)
{
    uint64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, a + 8, 8);
    uint64_t h = (x ^ cs->seed) * 0x9e3779b97f4a7c15ull;
    h ^= y + (h >> 29);
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (size_t)h & cs->mask;
}

/* The slot of `a`, or the empty slot where it would go. */
static struct ip_slot *slot_find(struct conns *cs, const unsigned char *a)
{
    size_t i = slot_hash(cs, a);
    while (cs->slots[i].count != 0 && memcmp(cs->slots[i].addr, a, 16) != 0)
        i = (i + 1) & cs->mask;
    return &cs->slots[i];
}

/* Empty slot `i` and shift later members of its probe run back. */
static void slot_remove(struct conns *cs, size_t i)
{
    size_t j = i;
    for (;;) {
        cs->slots[i].count = 0;
        for (;;) {
            j = (j + 1) & cs->mask;
            if (cs->slots[j].count == 0)
                return;
            size_t home = slot_hash(cs, cs->slots[j].addr);
            /* Move j back to i unless its home lies cyclically in (i, j]. */
            bool stays =
                i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays)
                break;
        }
        cs->slots[i] = cs->slots[j];
        i = j;
    }
}

/* ---- the reaper ---------------------------------------------------------- */

static void *reaper_main(void *arg)
{
    struct conns *cs = arg;
    pthread_mutex_lock(&cs->lock);
    while (!cs->stop) {
        if (cs->head == NULL) {
            cs->reaper_asleep = true;
            pthread_cond_wait(&cs->wake, &cs->lock);
            cs->reaper_asleep = false;
            continue;
        }
        struct timespec due = time_deadline_ms(CLOCK_MONOTONIC, REAP_MS);
        if (pthread_cond_timedwait(&cs->wake, &cs->lock, &due) != ETIMEDOUT)
            continue;
        int64_t now = now_ms();
        for (struct conn *c = cs->head; c != NULL; c = c->next) {
            int64_t d =
                atomic_load_explicit(&c->deadline, memory_order_relaxed);
            if (d == 0 || d > now || c->shut)
                continue;
            shutdown(c->fd, SHUT_RDWR);
            c->shut = true;
            COUNT(cs, conns_timed_out, 1);
        }
    }
    pthread_mutex_unlock(&cs->lock);
    return NULL;
}

/* ---- public ------------------------------------------------------------- */

int conns_create(const struct conns_limits *lim, struct http_counters *counters,
                 struct conns **out)
{
    struct conns *cs = calloc(1, sizeof(*cs));
    int err = -ENOMEM;

    if (cs == NULL)
        goto fail;
    cs->lim = *lim;
    cs->counters = counters;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    cs->seed = ((uint64_t)t.tv_nsec << 32) ^ (uint64_t)t.tv_sec ^
               ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)cs;
    if (lim->max_per_ip > 0) {
        size_t n = 64;
        while (n < 2 * (size_t)lim->max_total)
            n *= 2;
        cs->slots = calloc(n, sizeof(*cs->slots));
        if (cs->slots == NULL)
            goto fail;
        cs->mask = n - 1;
    }
    pthread_cond_t *const conds[] = {&cs->wake};
    err = thread_sync_init(&cs->lock, conds, 1);
    if (err)
        goto fail;
    cs->sync_ready = true;
    /* Signals are main's (sigwait): the reaper takes none. */
    err = thread_start(&cs->reaper, reaper_main, cs);
    if (err)
        goto fail;
    cs->reaper_started = true;
    *out = cs;
    return 0;

fail:
    conns_destroy(cs);
    *out = NULL;
    return err;
}

void conns_destroy(struct conns *cs)
{
    if (cs == NULL)
        return;
    if (cs->reaper_started) {
        pthread_mutex_lock(&cs->lock);
        cs->stop = true;
        pthread_cond_signal(&cs->wake);
        pthread_mutex_unlock(&cs->lock);
        pthread_join(cs->reaper, NULL);
    }
    if (cs->sync_ready) {
        pthread_cond_t *const conds[] = {&cs->wake};
        thread_sync_destroy(&cs->lock, conds, 1);
    }
    free(cs->slots);
    free(cs);
}

/* The address as 16 bytes (IPv4 mapped into IPv6). */
static bool addr_key(const struct sockaddr *sa, unsigned char *out)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &v4->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        memcpy(out, &v6->sin6_addr, 16);
        return true;
    }
    return false;
}

struct conn *conns_open(struct conns *cs, int fd, const struct sockaddr *addr)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        shutdown(fd, SHUT_RDWR);
        COUNT(cs, conns_refused, 1);
        return NULL;
    }
    c->fd = fd;
    c->has_addr = addr_key(addr, c->addr);
    atomic_store_explicit(&c->deadline,
                          now_ms() + (int64_t)cs->lim.request_s * 1000,
                          memory_order_relaxed);

    pthread_mutex_lock(&cs->lock);
    bool admit = cs->admitted < cs->lim.max_total;
    struct ip_slot *slot = NULL;
    if (admit && cs->slots != NULL && c->has_addr) {
        slot = slot_find(cs, c->addr);
        admit = slot->count < cs->lim.max_per_ip;
    }
    if (admit) {
        cs->admitted++;
        c->counted = true;
        if (slot != NULL) {
            if (slot->count == 0)
                memcpy(slot->addr, c->addr, 16);
            slot->count++;
        }
    } else {
        /* Closed at once: libmicrohttpd reads end-of-file and closes it
         * without parsing a byte. */
        shutdown(fd, SHUT_RDWR);
        c->shut = true;
    }
    c->next = cs->head;
    if (cs->head != NULL)
        cs->head->prev = c;
    cs->head = c;
    if (cs->reaper_asleep)
        pthread_cond_signal(&cs->wake);
    pthread_mutex_unlock(&cs->lock);

    COUNT(cs, conns_open, 1);
    if (!admit)
        COUNT(cs, conns_refused, 1);
    return c;
}

void conns_close(struct conns *cs, struct conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&cs->lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        cs->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->counted) {
        cs->admitted--;
        if (cs->slots != NULL && c->has_addr) {
            struct ip_slot *slot = slot_find(cs, c->addr);
            if (slot->count > 1)
                slot->count--;
            else if (slot->count == 1)
                slot_remove(cs, (size_t)(slot - cs->slots));
        }
    }
    pthread_mutex_unlock(&cs->lock);
    COUNT(cs, conns_open, -1);
    free(c);
}

void conns_request_started(struct conns *cs, struct conn *c)
{
    if (c == NULL || !c->kept_alive)
        return;
    atomic_store_explicit(&c->deadline,
                          now_ms() + (int64_t)cs->lim.request_s * 1000,
                          memory_order_relaxed);
}

void conns_request_arrived(struct conns *cs, struct conn *c)
{
    (void)cs;
    if (c != NULL)
        atomic_store_explicit(&c->deadline, 0, memory_order_relaxed);
}

void conns_request_done(struct conns *cs, struct conn *c)
{
    if (c == NULL)
        return;
    c->kept_alive = true;
    atomic_store_explicit(&c->deadline,
                          now_ms() + (int64_t)cs->lim.keepalive_s * 1000,
                          memory_order_relaxed);
}
