/*
 * check_conns.c - connection admission (server/http/conns.c) without a socket:
 * the per-address table and the total limit against a simple model, over
 * thousands of opens and closes whose addresses collide in the table.
 */
#include "server/http/conns.h"
#include "tests/suites.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define ADDRS 300
#define SLOTS 400

static struct sockaddr_in addr_of(int i)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)i * 7919u);
    return a;
}

static bool open_one(struct conns *cs, struct http_counters *hc, int i,
                     struct conn **out)
{
    struct sockaddr_in a = addr_of(i);
    uint64_t refused = atomic_load(&hc->conns_refused);
    /* fd -1: an admitted connection's socket is not touched; a refused
     * one's shutdown(-1) fails harmlessly. */
    *out = conns_open(cs, -1, (const struct sockaddr *)&a);
    ck_assert_ptr_nonnull(*out);
    return atomic_load(&hc->conns_refused) == refused;
}

START_TEST(test_conns_admission_matches_model)
{
    struct http_counters hc = {0};
    struct conns_limits lim = {.max_total = 250,
                               .max_per_ip = 2,
                               .request_s = 3600,
                               .keepalive_s = 3600};
    struct conns *cs = NULL;
    ck_assert_int_eq(conns_create(&lim, &hc, &cs), 0);
    struct conn *slot[SLOTS] = {0};
    int slot_addr[SLOTS];
    bool slot_admitted[SLOTS];
    int per_addr[ADDRS] = {0};
    int total = 0;
    unsigned seed = 12345;
    for (int step = 0; step < 20000; step++) {
        int k = (int)(rand_r(&seed) % SLOTS);
        if (slot[k] == NULL) {
            int a = (int)(rand_r(&seed) % ADDRS);
            bool want = total < 250 && per_addr[a] < 2;
            bool got = open_one(cs, &hc, a, &slot[k]);
            ck_assert_msg(got == want,
                          "step %d: address %d with %d open (total %d): "
                          "admitted %d, want %d",
                          step, a, per_addr[a], total, got, want);
            slot_addr[k] = a;
            slot_admitted[k] = got;
            if (got) {
                per_addr[a]++;
                total++;
            }
        } else {
            conns_close(cs, slot[k]);
            slot[k] = NULL;
            if (slot_admitted[k]) {
                per_addr[slot_addr[k]]--;
                total--;
            }
        }
        int open = 0;
        for (int j = 0; j < SLOTS; j++)
            open += slot[j] != NULL;
        /* Refused connections are open until libmicrohttpd closes them. */
        ck_assert_uint_eq(atomic_load(&hc.conns_open), (uint64_t)open);
    }
    for (int k = 0; k < SLOTS; k++)
        conns_close(cs, slot[k]);
    ck_assert_uint_eq(atomic_load(&hc.conns_open), 0);
    conns_destroy(cs);
}
END_TEST

Suite *conns_suite(void)
{
    Suite *s = suite_create("conns");
    TCase *tc = tcase_create("admission");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_conns_admission_matches_model);
    suite_add_tcase(s, tc);
    return s;
}
