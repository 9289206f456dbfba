/*
 * check_queue.c - unit tests of the bounded MPMC channel (queue/).
 *
 * Threads never call ck_assert: they record what they saw in their own
 * struct, the test thread joins them and asserts afterwards. Tests that need
 * a thread to be blocked synchronise with a barrier just before the blocking
 * call; whether the other side acts before or after the thread has actually
 * blocked, the outcome is the same, so nothing depends on timing.
 */
#include <check.h>

#include "tests/suites.h"
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

/* ---- helpers ----------------------------------------------------------- */

/* A thread that performs one blocking send or recv after a barrier. */
struct blocker {
    struct queue *q;
    pthread_barrier_t *ready;
    int value; /* sent, or received */
    uint64_t seq;
    int rc;
};

static void *recv_thread(void *opaque)
{
    struct blocker *b = opaque;

    pthread_barrier_wait(b->ready);
    b->rc = queue_recv(b->q, &b->value, &b->seq);
    return NULL;
}

static void *send_thread(void *opaque)
{
    struct blocker *b = opaque;

    pthread_barrier_wait(b->ready);
    b->rc = queue_send(b->q, &b->value, &b->seq);
    return NULL;
}

/* A new channel of `cap` slots of `elem` bytes; the test fails if not. */
static struct queue *new_queue(size_t cap, size_t elem)
{
    struct queue *q = NULL;

    ck_assert_int_eq(queue_create(cap, elem, &q), 0);
    ck_assert_ptr_nonnull(q);
    return q;
}

static struct queue *new_int_queue(size_t cap)
{
    return new_queue(cap, sizeof(int));
}

/* ---- basic behaviour --------------------------------------------------- */

START_TEST(test_queue_create_rejects_bad_sizes)
{
    struct queue *q = (struct queue *)&q; /* any non-NULL value */

    ck_assert_int_eq(queue_create(0, sizeof(int), &q), -EINVAL);
    ck_assert_ptr_null(q);
    q = (struct queue *)&q;
    ck_assert_int_eq(queue_create(8, 0, &q), -EINVAL);
    ck_assert_ptr_null(q);

    /* capacity * elem_size would overflow size_t. */
    q = (struct queue *)&q;
    ck_assert_int_eq(queue_create(SIZE_MAX / 2, 16, &q), -ENOMEM);
    ck_assert_ptr_null(q);

    queue_destroy(NULL);
}
END_TEST

START_TEST(test_queue_reports_cap_and_elem_size)
{
    struct queue *q = new_queue(5, 24);

    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(queue_cap(q), 5);
    ck_assert_uint_eq(queue_elem_size(q), 24);
    ck_assert_uint_eq(queue_len(q), 0);
    ck_assert_uint_eq(queue_sent(q), 0);
    ck_assert_uint_eq(queue_high_water(q), 0);
    ck_assert(!queue_closed(q));
    queue_destroy(q);
}
END_TEST

START_TEST(test_queue_fifo_order)
{
    struct queue *q = new_int_queue(8);
    int i, v;

    for (i = 0; i < 8; i++)
        ck_assert_int_eq(queue_send(q, &i, NULL), 0);
    for (i = 0; i < 8; i++) {
        ck_assert_int_eq(queue_recv(q, &v, NULL), 0);
        ck_assert_int_eq(v, i);
    }
    ck_assert_uint_eq(queue_len(q), 0);
    queue_destroy(q);
}
END_TEST

/* Many laps around a small ring, with the ring part full, stay FIFO. */
START_TEST(test_queue_fifo_order_across_wraparound)
{
    struct queue *q = new_int_queue(3);
    int next_in = 0, next_out = 0, v, lap;

    for (lap = 0; lap < 100; lap++) {
        while (queue_try_send(q, &next_in, NULL) == 0)
            next_in++;
        ck_assert_uint_eq(queue_len(q), 3);
        /* Take one or two, so head moves by varying steps. */
        for (int k = 0; k < 1 + lap % 2; k++) {
            ck_assert_int_eq(queue_try_recv(q, &v, NULL), 0);
            ck_assert_int_eq(v, next_out);
            next_out++;
        }
    }
    while (queue_try_recv(q, &v, NULL) == 0) {
        ck_assert_int_eq(v, next_out);
        next_out++;
    }
    ck_assert_int_eq(next_out, next_in);
    queue_destroy(q);
}
END_TEST

/* Elements are copied whole, byte for byte, for a size that is not a
 * multiple of a word. */
START_TEST(test_queue_copies_whole_elements)
{
    unsigned char in[13], out[13];
    struct queue *q = new_queue(2, sizeof(in));
    int i;

    ck_assert_ptr_nonnull(q);
    for (i = 0; i < 13; i++)
        in[i] = (unsigned char)(0xA0 + i);
    ck_assert_int_eq(queue_send(q, in, NULL), 0);
    memset(in, 0, sizeof(in)); /* the queue holds a copy, not a pointer */
    memset(out, 0, sizeof(out));
    ck_assert_int_eq(queue_recv(q, out, NULL), 0);
    for (i = 0; i < 13; i++)
        ck_assert_uint_eq(out[i], 0xA0 + i);
    queue_destroy(q);
}
END_TEST

START_TEST(test_queue_sequence_numbers_match)
{
    struct queue *q = new_int_queue(16);
    uint64_t seq;
    int i, v;

    for (i = 0; i < 10; i++) {
        seq = 0;
        if (i % 2)
            ck_assert_int_eq(queue_send(q, &i, &seq), 0);
        else
            ck_assert_int_eq(queue_try_send(q, &i, &seq), 0);
        ck_assert_uint_eq(seq, (uint64_t)i + 1);
    }
    ck_assert_uint_eq(queue_sent(q), 10);
    for (i = 0; i < 10; i++) {
        seq = 0;
        if (i % 2)
            ck_assert_int_eq(queue_recv(q, &v, &seq), 0);
        else
            ck_assert_int_eq(queue_try_recv(q, &v, &seq), 0);
        ck_assert_int_eq(v, i);
        ck_assert_uint_eq(seq, (uint64_t)i + 1);
    }
    /* A failed send does not use up a number. */
    ck_assert_int_eq(queue_try_recv(q, &v, &seq), -EAGAIN);
    queue_close(q);
    ck_assert_int_eq(queue_try_send(q, &i, &seq), -EPIPE);
    ck_assert_uint_eq(queue_sent(q), 10);
    queue_destroy(q);
}
END_TEST

START_TEST(test_queue_capacity_bound)
{
    struct queue *q = new_int_queue(4);
    uint64_t seq = 0;
    int i, v;

    for (i = 0; i < 4; i++)
        ck_assert_int_eq(queue_try_send(q, &i, NULL), 0);
    ck_assert_int_eq(queue_try_send(q, &i, &seq), -EAGAIN);
    ck_assert_uint_eq(seq, 0);
    ck_assert_uint_eq(queue_len(q), 4);
    ck_assert_uint_eq(queue_len(q), queue_cap(q));
    ck_assert_uint_eq(queue_sent(q), 4);
    /* One out makes room for exactly one more. */
    ck_assert_int_eq(queue_recv(q, &v, NULL), 0);
    ck_assert_int_eq(queue_try_send(q, &i, &seq), 0);
    ck_assert_uint_eq(seq, 5);
    ck_assert_int_eq(queue_try_send(q, &i, NULL), -EAGAIN);
    queue_destroy(q);
}
END_TEST

START_TEST(test_queue_try_recv_empty)
{
    struct queue *q = new_int_queue(4);
    uint64_t seq = 0;
    int v = 7;

    ck_assert_int_eq(queue_try_recv(q, &v, &seq), -EAGAIN);
    ck_assert_int_eq(v, 7); /* untouched */
    ck_assert_uint_eq(seq, 0);
    queue_close(q);
    ck_assert_int_eq(queue_try_recv(q, &v, &seq), -EPIPE);
    queue_destroy(q);
}
END_TEST

START_TEST(test_queue_high_water)
{
    struct queue *q = new_int_queue(8);
    int i, v;

    for (i = 0; i < 3; i++)
        ck_assert_int_eq(queue_send(q, &i, NULL), 0);
    ck_assert_uint_eq(queue_high_water(q), 3);
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(queue_recv(q, &v, NULL), 0);
    ck_assert_uint_eq(queue_high_water(q), 3); /* a mark, not the depth */
    ck_assert_uint_eq(queue_len(q), 1);
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(queue_send(q, &i, NULL), 0);
    ck_assert_uint_eq(queue_high_water(q), 3);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(queue_send(q, &i, NULL), 0);
    ck_assert_uint_eq(queue_high_water(q), 8);
    ck_assert_int_eq(queue_try_send(q, &i, NULL), -EAGAIN);
    ck_assert_uint_eq(queue_high_water(q), 8);
    queue_destroy(q);
}
END_TEST

/* ---- close ------------------------------------------------------------- */

START_TEST(test_queue_send_after_close)
{
    struct queue *q = new_int_queue(4);
    int v = 1;

    queue_close(q);
    queue_close(q); /* idempotent */
    ck_assert(queue_closed(q));
    ck_assert_int_eq(queue_send(q, &v, NULL), -EPIPE);
    ck_assert_int_eq(queue_try_send(q, &v, NULL), -EPIPE);
    ck_assert_uint_eq(queue_len(q), 0);
    ck_assert_uint_eq(queue_sent(q), 0);
    ck_assert_int_eq(queue_recv(q, &v, NULL), -EPIPE);
    queue_destroy(q);
}
END_TEST

START_TEST(test_queue_receivers_drain_after_close)
{
    struct queue *q = new_int_queue(4);
    uint64_t seq;
    int i, v;

    for (i = 0; i < 3; i++)
        ck_assert_int_eq(queue_send(q, &i, NULL), 0);
    queue_close(q);
    ck_assert(queue_closed(q));
    ck_assert_uint_eq(queue_len(q), 3);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(
            i == 1 ? queue_try_recv(q, &v, &seq) : queue_recv(q, &v, &seq), 0);
        ck_assert_int_eq(v, i);
        ck_assert_uint_eq(seq, (uint64_t)i + 1);
    }
    ck_assert_int_eq(queue_recv(q, &v, NULL), -EPIPE);
    ck_assert_int_eq(queue_try_recv(q, &v, NULL), -EPIPE);
    ck_assert_int_eq(queue_recv(q, &v, NULL), -EPIPE);
    queue_destroy(q);
}
END_TEST

START_TEST(test_queue_close_wakes_blocked_receiver)
{
    struct queue *q = new_int_queue(2);
    pthread_barrier_t ready;
    struct blocker b = {.q = q, .ready = &ready, .value = -1, .rc = 1};
    pthread_t t;

    ck_assert_int_eq(pthread_barrier_init(&ready, NULL, 2), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, recv_thread, &b), 0);
    pthread_barrier_wait(&ready);
    queue_close(q);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(b.rc, -EPIPE);
    ck_assert_int_eq(b.value, -1);
    pthread_barrier_destroy(&ready);
    queue_destroy(q);
}
END_TEST

START_TEST(test_queue_close_wakes_blocked_sender)
{
    struct queue *q = new_int_queue(1);
    pthread_barrier_t ready;
    struct blocker b = {.q = q, .ready = &ready, .value = 42, .rc = 1};
    pthread_t t;
    int first = 7, v;

    ck_assert_int_eq(queue_send(q, &first, NULL), 0); /* now full */
    ck_assert_int_eq(pthread_barrier_init(&ready, NULL, 2), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, send_thread, &b), 0);
    pthread_barrier_wait(&ready);
    queue_close(q);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(b.rc, -EPIPE);
    /* The blocked item never went in; the earlier one is still there. */
    ck_assert_uint_eq(queue_sent(q), 1);
    ck_assert_int_eq(queue_recv(q, &v, NULL), 0);
    ck_assert_int_eq(v, 7);
    ck_assert_int_eq(queue_recv(q, &v, NULL), -EPIPE);
    pthread_barrier_destroy(&ready);
    queue_destroy(q);
}
END_TEST

START_TEST(test_queue_send_wakes_blocked_receiver)
{
    struct queue *q = new_int_queue(2);
    pthread_barrier_t ready;
    struct blocker b = {.q = q, .ready = &ready, .value = -1, .rc = 1};
    pthread_t t;
    uint64_t seq;
    int v = 99;

    ck_assert_int_eq(pthread_barrier_init(&ready, NULL, 2), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, recv_thread, &b), 0);
    pthread_barrier_wait(&ready);
    ck_assert_int_eq(queue_send(q, &v, &seq), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_int_eq(b.value, 99);
    ck_assert_uint_eq(b.seq, seq);
    pthread_barrier_destroy(&ready);
    queue_destroy(q);
}
END_TEST

/* One item at a time to many blocked receivers: with at most one of them
 * spinning and no wake for a spinner, every item still reaches one. */
#define MANY_RECEIVERS 6
START_TEST(test_queue_each_send_reaches_a_waiting_receiver)
{
    struct queue *q = new_int_queue(1);
    pthread_barrier_t ready;
    struct blocker b[MANY_RECEIVERS];
    pthread_t t[MANY_RECEIVERS];
    int seen = 0;

    ck_assert_int_eq(pthread_barrier_init(&ready, NULL, MANY_RECEIVERS + 1), 0);
    for (int i = 0; i < MANY_RECEIVERS; i++) {
        b[i] = (struct blocker){.q = q, .ready = &ready, .value = -1, .rc = 1};
        ck_assert_int_eq(pthread_create(&t[i], NULL, recv_thread, &b[i]), 0);
    }
    pthread_barrier_wait(&ready);
    for (int v = 0; v < MANY_RECEIVERS; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0); /* waits for room */
    for (int i = 0; i < MANY_RECEIVERS; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_int_eq(b[i].rc, 0);
        ck_assert_int_ge(b[i].value, 0);
        ck_assert_int_lt(b[i].value, MANY_RECEIVERS);
        seen |= 1 << b[i].value;
    }
    ck_assert_int_eq(seen, (1 << MANY_RECEIVERS) - 1);
    ck_assert_uint_eq(queue_len(q), 0);
    pthread_barrier_destroy(&ready);
    queue_destroy(q);
}
END_TEST

START_TEST(test_queue_recv_wakes_blocked_sender)
{
    struct queue *q = new_int_queue(1);
    pthread_barrier_t ready;
    struct blocker b = {.q = q, .ready = &ready, .value = 2, .rc = 1};
    pthread_t t;
    int first = 1, v;

    ck_assert_int_eq(queue_send(q, &first, NULL), 0); /* now full */
    ck_assert_int_eq(pthread_barrier_init(&ready, NULL, 2), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, send_thread, &b), 0);
    pthread_barrier_wait(&ready);
    ck_assert_int_eq(queue_recv(q, &v, NULL), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_uint_eq(b.seq, 2);
    ck_assert_int_eq(queue_try_recv(q, &v, NULL), 0);
    ck_assert_int_eq(v, 2);
    pthread_barrier_destroy(&ready);
    queue_destroy(q);
}
END_TEST

/* ---- receiving in batches ---------------------------------------------- */

START_TEST(test_queue_recv_many_takes_oldest_up_to_max)
{
    struct queue *q = new_int_queue(8);
    int out[8];
    uint64_t seqs[8];

    for (int v = 10; v < 15; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    /* At most max, oldest first, with their sequence numbers. */
    ck_assert_int_eq(queue_recv_many(q, out, seqs, 3), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(out[i], 10 + i);
        ck_assert_uint_eq(seqs[i], (uint64_t)i + 1);
    }
    /* Fewer than max when fewer are there; seqs may be NULL. */
    ck_assert_int_eq(queue_recv_many(q, out, NULL, 8), 2);
    ck_assert_int_eq(out[0], 13);
    ck_assert_int_eq(out[1], 14);
    ck_assert_uint_eq(queue_len(q), 0);
    /* Closed and empty: -EPIPE; closed with items: they come out first. */
    int v = 7;
    ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    queue_close(q);
    ck_assert_int_eq(queue_recv_many(q, out, seqs, 8), 1);
    ck_assert_int_eq(out[0], 7);
    ck_assert_uint_eq(seqs[0], 6);
    ck_assert_int_eq(queue_recv_many(q, out, seqs, 8), -EPIPE);
    queue_destroy(q);
}
END_TEST

struct many_receiver {
    struct queue *q;
    pthread_barrier_t *ready;
    int out[4];
    int rc;
};

static void *recv_many_thread(void *opaque)
{
    struct many_receiver *r = opaque;

    pthread_barrier_wait(r->ready);
    r->rc = queue_recv_many(r->q, r->out, NULL, 4);
    return NULL;
}

START_TEST(test_queue_recv_many_blocks_until_an_item)
{
    struct queue *q = new_int_queue(4);
    pthread_barrier_t ready;
    struct many_receiver r = {.q = q, .ready = &ready, .rc = -1};
    pthread_t t;
    int v = 42;

    ck_assert_int_eq(pthread_barrier_init(&ready, NULL, 2), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, recv_many_thread, &r), 0);
    pthread_barrier_wait(&ready);
    ck_assert_int_eq(queue_send(q, &v, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(r.rc, 1);
    ck_assert_int_eq(r.out[0], 42);
    pthread_barrier_destroy(&ready);
    queue_destroy(q);
}
END_TEST

/* A batch frees several slots at once: every blocked sender gets one. */
START_TEST(test_queue_recv_many_wakes_every_blocked_sender)
{
    enum { CAP = 3 };
    struct queue *q = new_int_queue(CAP);
    pthread_barrier_t ready;
    struct blocker b[CAP];
    pthread_t t[CAP];
    int out[CAP];

    for (int v = 0; v < CAP; v++)
        ck_assert_int_eq(queue_send(q, &v, NULL), 0); /* now full */
    ck_assert_int_eq(pthread_barrier_init(&ready, NULL, CAP + 1), 0);
    for (int i = 0; i < CAP; i++) {
        b[i] = (struct blocker){
            .q = q, .ready = &ready, .value = 100 + i, .rc = 1};
        ck_assert_int_eq(pthread_create(&t[i], NULL, send_thread, &b[i]), 0);
    }
    pthread_barrier_wait(&ready);
    ck_assert_int_eq(queue_recv_many(q, out, NULL, CAP), CAP);
    for (int i = 0; i < CAP; i++) {
        ck_assert_int_eq(out[i], i);
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_int_eq(b[i].rc, 0);
    }
    ck_assert_uint_eq(queue_len(q), CAP);
    pthread_barrier_destroy(&ready);
    queue_destroy(q);
}
END_TEST

/* ---- MPMC stress ------------------------------------------------------- */

#define STRESS_PRODUCERS    4
#define STRESS_CONSUMERS    4
#define STRESS_ITEMS        1000000u
#define STRESS_PER_PRODUCER (STRESS_ITEMS / STRESS_PRODUCERS)
#define STRESS_CAPACITY     64

struct stress_item {
    uint32_t producer;
    uint32_t idx; /* 0 .. STRESS_PER_PRODUCER-1, in send order */
};

struct stress {
    struct queue *q;
    pthread_barrier_t go;
    uint64_t *send_seq; /* [item id], written by the item's producer */
    uint64_t *recv_seq; /* [item id], written by the item's consumer */
};

struct producer {
    struct stress *s;
    uint32_t id;
    size_t send_failures;
};

struct consumer {
    struct stress *s;
    unsigned char *got;     /* bitmap over item ids */
    unsigned char *got_seq; /* bitmap over seq-1 */
    size_t received;
    size_t bad_items;        /* out-of-range producer, index or seq */
    size_t dup_items;        /* the same item twice at this consumer */
    size_t order_errors;     /* a producer's items out of order */
    size_t seq_order_errors; /* sequence numbers not increasing */
};

static bool bit_test_and_set(unsigned char *map, size_t i)
{
    unsigned char m = (unsigned char)(1u << (i % 8));
    bool was = (map[i / 8] & m) != 0;

    map[i / 8] |= m;
    return was;
}

static bool bit_test(const unsigned char *map, size_t i)
{
    return (map[i / 8] & (1u << (i % 8))) != 0;
}

static void *producer_main(void *opaque)
{
    struct producer *p = opaque;
    struct stress *s = p->s;
    struct stress_item it = {.producer = p->id};
    uint64_t seq;

    pthread_barrier_wait(&s->go);
    for (it.idx = 0; it.idx < STRESS_PER_PRODUCER; it.idx++) {
        /* Every eighth send tries first, then blocks if the ring is full. */
        int rc = -EAGAIN;

        if (it.idx % 8 == 0)
            rc = queue_try_send(s->q, &it, &seq);
        if (rc == -EAGAIN)
            rc = queue_send(s->q, &it, &seq);
        if (rc != 0) {
            p->send_failures++;
            continue;
        }
        s->send_seq[(size_t)p->id * STRESS_PER_PRODUCER + it.idx] = seq;
    }
    return NULL;
}

static void *consumer_main(void *opaque)
{
    struct consumer *c = opaque;
    struct stress *s = c->s;
    int64_t last_idx[STRESS_PRODUCERS];
    uint64_t last_seq = 0, seq;
    struct stress_item it;
    size_t id;
    int rc;

    for (int i = 0; i < STRESS_PRODUCERS; i++)
        last_idx[i] = -1;
    pthread_barrier_wait(&s->go);
    for (;;) {
        /* Every sixteenth receive tries first, then blocks if empty. */
        rc = -EAGAIN;
        if (c->received % 16 == 15)
            rc = queue_try_recv(s->q, &it, &seq);
        if (rc == -EAGAIN)
            rc = queue_recv(s->q, &it, &seq);
        if (rc != 0)
            break;
        c->received++;
        if (it.producer >= STRESS_PRODUCERS || it.idx >= STRESS_PER_PRODUCER ||
            seq == 0 || seq > STRESS_ITEMS) {
            c->bad_items++;
            continue;
        }
        if ((int64_t)it.idx <= last_idx[it.producer])
            c->order_errors++;
        last_idx[it.producer] = it.idx;
        if (seq <= last_seq)
            c->seq_order_errors++;
        last_seq = seq;
        id = (size_t)it.producer * STRESS_PER_PRODUCER + it.idx;
        if (bit_test_and_set(c->got, id))
            c->dup_items++;
        bit_test_and_set(c->got_seq, (size_t)(seq - 1));
        s->recv_seq[id] = seq;
    }
    return NULL;
}

START_TEST(test_queue_mpmc_stress)
{
    struct stress s = {0};
    struct producer prod[STRESS_PRODUCERS];
    struct consumer cons[STRESS_CONSUMERS];
    pthread_t pt[STRESS_PRODUCERS], ct[STRESS_CONSUMERS];
    size_t map_bytes = (STRESS_ITEMS + 7) / 8;
    size_t total = 0, missing = 0, multi = 0, seq_mismatch = 0;
    size_t seq_missing = 0, seq_multi = 0;
    size_t i;
    int k;

    s.q = new_queue(STRESS_CAPACITY, sizeof(struct stress_item));
    ck_assert_ptr_nonnull(s.q);
    s.send_seq = calloc(STRESS_ITEMS, sizeof(uint64_t));
    s.recv_seq = calloc(STRESS_ITEMS, sizeof(uint64_t));
    ck_assert_ptr_nonnull(s.send_seq);
    ck_assert_ptr_nonnull(s.recv_seq);
    ck_assert_int_eq(
        pthread_barrier_init(&s.go, NULL, STRESS_PRODUCERS + STRESS_CONSUMERS),
        0);
    for (k = 0; k < STRESS_CONSUMERS; k++) {
        cons[k] = (struct consumer){.s = &s};
        cons[k].got = calloc(map_bytes, 1);
        cons[k].got_seq = calloc(map_bytes, 1);
        ck_assert_ptr_nonnull(cons[k].got);
        ck_assert_ptr_nonnull(cons[k].got_seq);
        ck_assert_int_eq(pthread_create(&ct[k], NULL, consumer_main, &cons[k]),
                         0);
    }
    for (k = 0; k < STRESS_PRODUCERS; k++) {
        prod[k] = (struct producer){.s = &s, .id = (uint32_t)k};
        ck_assert_int_eq(pthread_create(&pt[k], NULL, producer_main, &prod[k]),
                         0);
    }
    for (k = 0; k < STRESS_PRODUCERS; k++)
        ck_assert_int_eq(pthread_join(pt[k], NULL), 0);
    queue_close(s.q);
    for (k = 0; k < STRESS_CONSUMERS; k++)
        ck_assert_int_eq(pthread_join(ct[k], NULL), 0);

    for (k = 0; k < STRESS_PRODUCERS; k++)
        ck_assert_uint_eq(prod[k].send_failures, 0);
    for (k = 0; k < STRESS_CONSUMERS; k++) {
        ck_assert_uint_eq(cons[k].bad_items, 0);
        ck_assert_uint_eq(cons[k].dup_items, 0);
        ck_assert_uint_eq(cons[k].order_errors, 0);
        ck_assert_uint_eq(cons[k].seq_order_errors, 0);
        total += cons[k].received;
    }
    ck_assert_uint_eq(total, STRESS_ITEMS);
    ck_assert_uint_eq(queue_sent(s.q), STRESS_ITEMS);
    ck_assert_uint_eq(queue_len(s.q), 0);
    ck_assert_uint_le(queue_high_water(s.q), STRESS_CAPACITY);

    for (i = 0; i < STRESS_ITEMS; i++) {
        int n_item = 0, n_seq = 0;

        for (k = 0; k < STRESS_CONSUMERS; k++) {
            n_item += bit_test(cons[k].got, i);
            n_seq += bit_test(cons[k].got_seq, i);
        }
        missing += n_item == 0;
        multi += n_item > 1;
        seq_missing += n_seq == 0;
        seq_multi += n_seq > 1;
        seq_mismatch += s.send_seq[i] != s.recv_seq[i];
    }
    ck_assert_uint_eq(missing, 0);
    ck_assert_uint_eq(multi, 0);
    ck_assert_uint_eq(seq_missing, 0);
    ck_assert_uint_eq(seq_multi, 0);
    ck_assert_uint_eq(seq_mismatch, 0);

    for (k = 0; k < STRESS_CONSUMERS; k++) {
        free(cons[k].got);
        free(cons[k].got_seq);
    }
    pthread_barrier_destroy(&s.go);
    free(s.send_seq);
    free(s.recv_seq);
    queue_destroy(s.q);
}
END_TEST

Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *core = tcase_create("core");
    TCase *tc_close = tcase_create("close");
    TCase *stress = tcase_create("stress");

    tcase_set_timeout(core, 10);
    tcase_add_test(core, test_queue_create_rejects_bad_sizes);
    tcase_add_test(core, test_queue_reports_cap_and_elem_size);
    tcase_add_test(core, test_queue_fifo_order);
    tcase_add_test(core, test_queue_fifo_order_across_wraparound);
    tcase_add_test(core, test_queue_copies_whole_elements);
    tcase_add_test(core, test_queue_sequence_numbers_match);
    tcase_add_test(core, test_queue_capacity_bound);
    tcase_add_test(core, test_queue_try_recv_empty);
    tcase_add_test(core, test_queue_high_water);
    suite_add_tcase(s, core);

    /* The blocking tests run several times so that both orders (the other
     * side acting before and after the thread blocks) are exercised. */
    tcase_set_timeout(tc_close, 10);
    tcase_add_test(tc_close, test_queue_send_after_close);
    tcase_add_test(tc_close, test_queue_receivers_drain_after_close);
    tcase_add_loop_test(tc_close, test_queue_close_wakes_blocked_receiver, 0,
                        20);
    tcase_add_loop_test(tc_close, test_queue_close_wakes_blocked_sender, 0, 20);
    tcase_add_loop_test(tc_close, test_queue_send_wakes_blocked_receiver, 0,
                        20);
    tcase_add_loop_test(tc_close, test_queue_recv_wakes_blocked_sender, 0, 20);
    tcase_add_loop_test(tc_close,
                        test_queue_each_send_reaches_a_waiting_receiver, 0, 20);
    tcase_add_test(tc_close, test_queue_recv_many_takes_oldest_up_to_max);
    tcase_add_loop_test(tc_close, test_queue_recv_many_blocks_until_an_item, 0,
                        20);
    tcase_add_loop_test(tc_close,
                        test_queue_recv_many_wakes_every_blocked_sender, 0, 20);
    suite_add_tcase(s, tc_close);

    /* Generous: 8 threads on 2 busy cores, possibly under a sanitizer. */
    tcase_set_timeout(stress, 300);
    tcase_add_test(stress, test_queue_mpmc_stress);
    suite_add_tcase(s, stress);
    return s;
}
