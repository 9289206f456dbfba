/*
 * queue_bench.c - microbenchmark of the channel (queue/queue.h) alone.
 *
 * P producer threads send `items` elements in total with the blocking
 * queue_send(); C consumer threads receive them with queue_recv() until the
 * channel, closed once every producer is done, reports -EPIPE. All threads
 * wait at a barrier, the clock starts when they leave it and stops when the
 * last consumer has drained the channel. ns/op is wall time per element
 * moved from a producer to a consumer, items/s its inverse. Every element
 * carries its number in its first 8 bytes; the consumers' sum and count are
 * checked, so a lost or duplicated element fails the run.
 *
 * Same shape as scripts/bench/chan_go/main.go (Go's buffered channel), so
 * the two can be compared line by line: element size (default 184 bytes,
 * sizeof(struct shop_item) in shopd, what its belt carries), capacity
 * (default 1024, shopd's default), items, producers and consumers.
 *
 * Usage: queue_bench [--case PxC]... [--items N] [--cap N] [--elem BYTES]
 *                    [--rounds N]
 * Default cases: 1x1 4x4 8x2. Prints one line per case and round:
 *   QUEUE impl=c case=PxC items=N secs=S items_per_s=X ns_per_op=Y
 * and exits 1 if any check fails.
 */
#include "queue/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CASES   16
#define MAX_THREADS 256

struct bench_case {
    unsigned producers, consumers;
};

struct run {
    struct queue *q;
    size_t elem_size;
    uint64_t items;
    unsigned producers;
    pthread_barrier_t start;
};

struct producer {
    struct run *run;
    uint64_t first, count; /* sends first .. first+count-1 */
    int err;
    pthread_t thread;
};

struct consumer {
    struct run *run;
    uint64_t received, sum;
    int64_t done_ns; /* CLOCK_MONOTONIC when it saw the channel closed */
    pthread_t thread;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    unsigned char *elem = calloc(1, p->run->elem_size);

    pthread_barrier_wait(&p->run->start);
    if (elem == NULL) {
        p->err = -ENOMEM;
        return NULL;
    }
    for (uint64_t i = 0; i < p->count; i++) {
        uint64_t v = p->first + i;
        memcpy(elem, &v, sizeof(v));
        int rc = queue_send(p->run->q, elem, NULL);
        if (rc != 0) {
            p->err = rc;
            break;
        }
    }
    free(elem);
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct consumer *c = arg;
    unsigned char *elem = calloc(1, c->run->elem_size);

    pthread_barrier_wait(&c->run->start);
    if (elem != NULL) {
        while (queue_recv(c->run->q, elem, NULL) == 0) {
            uint64_t v;
            memcpy(&v, elem, sizeof(v));
            c->sum += v;
            c->received++;
        }
    }
    c->done_ns = now_ns();
    free(elem);
    return NULL;
}

/* One run of one case. Returns the elapsed seconds, or -1 on failure. */
static double run_case(const struct bench_case *bc, uint64_t items, size_t cap,
                       size_t elem_size)
{
    struct run run = {
        .elem_size = elem_size, .items = items, .producers = bc->producers};
    struct producer prod[MAX_THREADS];
    struct consumer cons[MAX_THREADS];
    unsigned np = 0, nc = 0;
    double secs = -1;

    int rc = queue_create(cap, elem_size, &run.q);
    if (rc < 0) {
        fprintf(stderr, "queue_create: %s\n", strerror(-rc));
        return -1;
    }
    /* +1: the main thread starts the clock at the same barrier. */
    if (pthread_barrier_init(&run.start, NULL,
                             bc->producers + bc->consumers + 1) != 0) {
        queue_destroy(run.q);
        return -1;
    }
    memset(prod, 0, sizeof(prod));
    memset(cons, 0, sizeof(cons));
    uint64_t per = items / bc->producers, next = 1;
    for (np = 0; np < bc->producers; np++) {
        prod[np].run = &run;
        prod[np].first = next;
        prod[np].count = np + 1 == bc->producers ? items - (next - 1) : per;
        next += prod[np].count;
        if (pthread_create(&prod[np].thread, NULL, producer_main, &prod[np]) !=
            0)
            goto out; /* the barrier is never reached: abort the process */
    }
    for (nc = 0; nc < bc->consumers; nc++) {
        cons[nc].run = &run;
        if (pthread_create(&cons[nc].thread, NULL, consumer_main, &cons[nc]) !=
            0)
            goto out;
    }
    pthread_barrier_wait(&run.start);
    int64_t t0 = now_ns();
    bool ok = true;
    for (unsigned i = 0; i < np; i++) {
        pthread_join(prod[i].thread, NULL);
        ok = ok && prod[i].err == 0;
    }
    queue_close(run.q);
    uint64_t received = 0, sum = 0;
    int64_t t1 = t0;
    for (unsigned i = 0; i < nc; i++) {
        pthread_join(cons[i].thread, NULL);
        received += cons[i].received;
        sum += cons[i].sum;
        if (cons[i].done_ns > t1)
            t1 = cons[i].done_ns;
    }
    /* 1 + 2 + ... + items, modulo 2^64 like the consumers' sums. */
    uint64_t want =
        items % 2 == 0 ? (items / 2) * (items + 1) : items * ((items + 1) / 2);
    if (!ok || received != items || sum != want) {
        fprintf(stderr,
                "queue_bench: %ux%u: received %" PRIu64 " of %" PRIu64
                ", checksum %s\n",
                bc->producers, bc->consumers, received, items,
                sum == want ? "ok" : "BAD");
    } else {
        secs = (double)(t1 - t0) / 1e9;
    }
    pthread_barrier_destroy(&run.start);
    queue_destroy(run.q);
    return secs;
out:
    fprintf(stderr, "queue_bench: cannot create threads\n");
    exit(1);
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_case(const char *s, struct bench_case *bc)
{
    char *end = NULL;
    errno = 0;
    unsigned long p = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != 'x')
        return false;
    const char *c0 = end + 1;
    unsigned long c = strtoul(c0, &end, 10);
    if (errno != 0 || end == c0 || *end != '\0')
        return false;
    if (p < 1 || c < 1 || p + c >= MAX_THREADS)
        return false;
    bc->producers = (unsigned)p;
    bc->consumers = (unsigned)c;
    return true;
}

static int usage(void)
{
    fprintf(stderr, "usage: queue_bench [--case PxC]... [--items N] "
                    "[--cap N] [--elem BYTES] [--rounds N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct bench_case cases[MAX_CASES];
    size_t ncases = 0;
    uint64_t items = 2000000, cap = 1024, elem = 184, rounds = 1;

    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok;
        if (v == NULL)
            return usage();
        if (strcmp(argv[i], "--case") == 0)
            ok = ncases < MAX_CASES && parse_case(v, &cases[ncases++]);
        else if (strcmp(argv[i], "--items") == 0)
            ok = parse_u64(v, 1, UINT64_C(1) << 40, &items);
        else if (strcmp(argv[i], "--cap") == 0)
            ok = parse_u64(v, 1, UINT64_C(1) << 30, &cap);
        else if (strcmp(argv[i], "--elem") == 0)
            ok = parse_u64(v, 8, 1 << 20, &elem);
        else if (strcmp(argv[i], "--rounds") == 0)
            ok = parse_u64(v, 1, 1000, &rounds);
        else
            ok = false;
        if (!ok)
            return usage();
    }
    if (ncases == 0) {
        static const struct bench_case def[] = {{1, 1}, {4, 4}, {8, 2}};
        ncases = sizeof(def) / sizeof(def[0]);
        memcpy(cases, def, sizeof(def));
    }

    for (uint64_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < ncases; i++) {
            double secs = run_case(&cases[i], items, (size_t)cap, (size_t)elem);
            if (secs < 0)
                return 1;
            printf("QUEUE impl=c case=%ux%u items=%" PRIu64 " cap=%" PRIu64
                   " elem=%" PRIu64
                   " secs=%.4f items_per_s=%.0f ns_per_op=%.1f\n",
                   cases[i].producers, cases[i].consumers, items, cap, elem,
                   secs, (double)items / secs, secs * 1e9 / (double)items);
            fflush(stdout);
        }
    }
    return 0;
}
