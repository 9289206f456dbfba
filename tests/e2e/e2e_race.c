/*
 * e2e_race.c - the race demo, end to end: with --unsafe-inventory the stock
 * update drops the lock and concurrent workers lose updates, so /stats
 * shows oversold > 0; with the lock (the default) the same load never
 * oversells and stock + sold stays exactly the initial stock.
 */
#include "tests/e2e/suites.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/orders.h"
#include "tests/lib/process.h"

#define RACE_THREADS 8
#define RACE_ORDERS  500 /* per thread: 4000 units wanted of 2000 */
#define RACE_STOCK   2000

static const char race_catalog[] =
    "{\"products\":[{\"sku\":\"gem\",\"name\":\"Gem\",\"price_cents\":100,"
    "\"stock\":2000}]}";

struct race_thread {
    pthread_t tid;
    unsigned port;
    int n202, nfail;
};

static void *race_main(void *arg)
{
    struct race_thread *t = arg;
    static const char body[] = "{\"product\":\"gem\",\"quantity\":1}";
    struct http_conn c;
    if (http_connect(&c, t->port) != 0) {
        t->nfail = RACE_ORDERS;
        return NULL;
    }
    for (int i = 0; i < RACE_ORDERS; i++) {
        struct http_resp r;
        if (http_roundtrip(&c, "POST", "/buy", NULL, body, sizeof(body) - 1,
                           &r) != 0) {
            t->nfail++;
            http_resp_free(&r);
            http_close(&c);
            if (http_connect(&c, t->port) != 0)
                break;
            continue;
        }
        if (r.status == 202)
            t->n202++;
        else
            t->nfail++;
        http_resp_free(&r);
    }
    http_close(&c);
    return NULL;
}

/*
 * Run the load against a fresh shopd; return the idle /stats snapshot. The
 * caller stops `*out` and its catalog `*cat` with shopd_stop_catalog().
 */
static cJSON *run_race(bool unsafe, struct shopd **out, char **cat,
                       int *accepted)
{
    const char *const safe_args[] = {"--workers", "4", "--queue-capacity",
                                     "8192", NULL};
    const char *const unsafe_args[] = {"--workers",          "4",
                                       "--queue-capacity",   "8192",
                                       "--unsafe-inventory", NULL};
    struct shopd *s = shopd_start_catalog(race_catalog, cat,
                                          unsafe ? unsafe_args : safe_args);
    *out = s;
    static struct race_thread th[RACE_THREADS];
    memset(th, 0, sizeof th);
    for (int i = 0; i < RACE_THREADS; i++) {
        th[i].port = shopd_port(s);
        ck_assert_int_eq(pthread_create(&th[i].tid, NULL, race_main, &th[i]),
                         0);
    }
    *accepted = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i].tid, NULL);
        ck_assert_msg(th[i].nfail == 0, "thread %d: %d orders not accepted", i,
                      th[i].nfail);
        *accepted += th[i].n202;
    }
    return wait_idle_ok(shopd_port(s), 30000);
}

START_TEST(test_e2e_race_unsafe_oversells)
{
    struct shopd *s;
    char *cat;
    int accepted;
    cJSON *st = run_race(true, &s, &cat, &accepted);
    ck_assert_int_eq(accepted, RACE_THREADS * RACE_ORDERS);
    ck_assert_msg(cJSON_IsTrue(json_at(st, "unsafe_inventory")),
                  "unsafe_inventory not reported");
    double stock = jnum(st, "inventory.gem.stock");
    double sold = jnum(st, "inventory.gem.sold");
    double oversold = jnum(st, "inventory.gem.oversold");
    ck_assert_msg(oversold > 0,
                  "no oversell without the lock (stock %g sold %g): the "
                  "race did not show",
                  stock, sold);
    ck_assert_msg(jnum(st, "oversold") == oversold, "total oversold");
    ck_assert_msg(sold - RACE_STOCK == oversold,
                  "oversold %g is not sold %g beyond stock %d", oversold, sold,
                  RACE_STOCK);
    ck_assert_msg(stock + sold != RACE_STOCK,
                  "conservation held despite oversell");
    cJSON_Delete(st);
    shopd_stop_catalog(s, cat);
}
END_TEST

START_TEST(test_e2e_race_lock_never_oversells)
{
    struct shopd *s;
    char *cat;
    int accepted;
    cJSON *st = run_race(false, &s, &cat, &accepted);
    ck_assert_int_eq(accepted, RACE_THREADS * RACE_ORDERS);
    ck_assert_msg(cJSON_IsFalse(json_at(st, "unsafe_inventory")),
                  "unsafe_inventory on by default");
    ck_assert_int_eq((int)jnum(st, "inventory.gem.stock"), 0);
    ck_assert_int_eq((int)jnum(st, "inventory.gem.sold"), RACE_STOCK);
    ck_assert_int_eq((int)jnum(st, "inventory.gem.oversold"), 0);
    ck_assert_int_eq((int)jnum(st, "oversold"), 0);
    ck_assert_int_eq((int)jnum(st, "orders.fulfilled"), RACE_STOCK);
    ck_assert_int_eq((int)jnum(st, "orders.out_of_stock"),
                     accepted - RACE_STOCK);
    cJSON_Delete(st);
    shopd_stop_catalog(s, cat);
}
END_TEST

Suite *e2e_race_suite(void)
{
    Suite *s = suite_create("e2e_race");
    TCase *tc = tcase_create("race");
    tcase_add_checked_fixture(tc, NULL, e2e_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_e2e_race_unsafe_oversells);
    tcase_add_test(tc, test_e2e_race_lock_never_oversells);
    suite_add_tcase(s, tc);
    return s;
}
