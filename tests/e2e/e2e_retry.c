/*
 * e2e_retry.c - safe retries and restock against the real binary: one test
 * per row of SPEC §8 (Idempotency-Key on POST /buy) and §9 (POST
 * /products/{sku}/restock with a Bearer token), 20 clients racing with one
 * key, the restock invariant under a burst of buys and restocks, and the
 * admin token absent from every output shopd produces.
 */
#include "tests/e2e/suites.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/clock.h"
#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/orders.h"
#include "tests/lib/process.h"

#define TOKEN     "e2e-admin-token-7f3a9c1d"
#define TOKEN_ENV "SHOPD_ADMIN_TOKEN=" TOKEN
#define AUTH      "Authorization: Bearer " TOKEN "\r\n"

static const char retry_catalog[] =
    "{\"products\":["
    "{\"sku\":\"apple\",\"name\":\"Apple\",\"price_cents\":50,\"stock\":100},"
    "{\"sku\":\"pear\",\"name\":\"Pear\",\"price_cents\":70,\"stock\":3}]}";

static const char apple2[] = "{\"product\":\"apple\",\"quantity\":2}";

/* Start shopd over the small catalog with the admin token (or without). */
static struct shopd *start_shop(char **cat, bool admin,
                                const char *const *extra)
{
    const char *args[16];
    size_t n = 0;
    args[n++] = "--catalog";
    args[n++] = NULL; /* filled below */
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 14; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    *cat = write_tmp(retry_catalog);
    args[1] = *cat;
    static const char *const env_admin[] = {TOKEN_ENV, NULL};
    return shopd_start(args, admin ? env_admin : NULL);
}

static void stop_shop(struct shopd *s, char *cat)
{
    shopd_destroy(s);
    unlink(cat);
    free(cat);
}

/* POST `body` to `path` with extra raw header lines; returns the answer. */
static void post(unsigned port, const char *path, const char *headers,
                 const char *body, struct http_resp *r)
{
    int e = http_do(port, "POST", path, headers, body, strlen(body), r);
    ck_assert_msg(e == 0, "POST %s: %s", path, strerror(-e));
}

/* A 202 with its exact body and Location; returns the order id. */
static uint64_t expect_202(const struct http_resp *r, bool replayed)
{
    ck_assert_msg(r->status == 202, "status %d body %.300s", r->status,
                  r->body);
    cJSON *j = resp_json(r);
    ck_assert_msg(j != NULL, "202 body not JSON: %s", r->body);
    uint64_t id = (uint64_t)jnum(j, "order_id");
    cJSON_Delete(j);
    char want[96];
    snprintf(want, sizeof want, "{\"order_id\":%llu,\"status\":\"queued\"}",
             (unsigned long long)id);
    ck_assert_str_eq(r->body, want);
    snprintf(want, sizeof want, "/orders/%llu", (unsigned long long)id);
    const char *loc = http_header(r, "Location");
    ck_assert_msg(loc && strcmp(loc, want) == 0, "Location %s, want %s",
                  loc ? loc : "(none)", want);
    const char *rep = http_header(r, "Idempotent-Replayed");
    if (replayed)
        ck_assert_msg(rep && strcmp(rep, "true") == 0,
                      "a replay without Idempotent-Replayed: true");
    else
        ck_assert_msg(rep == NULL, "a first answer says Idempotent-Replayed");
    return id;
}

static double stat_of(unsigned port, const char *path)
{
    cJSON *j = get_json_ok(port, "/stats");
    double v = jnum(j, path);
    cJSON_Delete(j);
    return v;
}

/* ---- SPEC §8, row by row ------------------------------------------------ */

/* Row 1: a key not seen is processed as usual; its order exists. */
START_TEST(test_e2e_retry_new_key_processed)
{
    char *cat;
    struct shopd *s = start_shop(&cat, false, NULL);
    unsigned port = shopd_port(s);
    struct http_resp r;
    post(port, "/buy", "Idempotency-Key: first-use-1\r\n", apple2, &r);
    uint64_t id = expect_202(&r, false);
    http_resp_free(&r);
    cJSON *o = wait_order_final_ok(port, id, 10000);
    ck_assert_str_eq(jstr(o, "status"), "fulfilled");
    ck_assert_int_eq((int)jnum(o, "quantity"), 2);
    cJSON_Delete(o);
    ck_assert_int_eq((int)stat_of(port, "orders.accepted"), 1);
    ck_assert_int_eq((int)stat_of(port, "idempotency.keys"), 1);
    stop_shop(s, cat);
}
END_TEST

/* Row 3: the same key and the same request: the first answer again. */
START_TEST(test_e2e_retry_replay_same_request)
{
    char *cat;
    struct shopd *s = start_shop(&cat, false, NULL);
    unsigned port = shopd_port(s);
    struct http_resp r;
    post(port, "/buy", "Idempotency-Key: order-42\r\n", apple2, &r);
    uint64_t id = expect_202(&r, false);
    http_resp_free(&r);
    /* Field order, spacing, unknown fields, "customer":null, a quoted key:
     * all the same request under the same key. */
    static const char *const same[] = {
        "{\"product\":\"apple\",\"quantity\":2}",
        "{ \"quantity\" : 2 ,\n \"product\" : \"apple\" }",
        "{\"product\":\"apple\",\"quantity\":2,\"customer\":null}",
        "{\"product\":\"apple\",\"quantity\":2,\"gift\":{\"wrap\":true}}",
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        post(port, "/buy",
             i % 2 ? "Idempotency-Key: \"order-42\"\r\n"
                   : "Idempotency-Key: order-42\r\n",
             same[i], &r);
        ck_assert_uint_eq(expect_202(&r, true), id);
        http_resp_free(&r);
    }
    cJSON *idle = wait_idle_ok(port, 10000);
    ck_assert_int_eq((int)jnum(idle, "orders.accepted"), 1);
    ck_assert_int_eq((int)jnum(idle, "idempotency.replayed"), 4);
    ck_assert_int_eq((int)jnum(idle, "inventory.apple.sold"), 2);
    cJSON_Delete(idle);
    stop_shop(s, cat);
}
END_TEST

/* Row 4: the same key and a different request: 422. */
START_TEST(test_e2e_retry_mismatch_422)
{
    char *cat;
    struct shopd *s = start_shop(&cat, false, NULL);
    unsigned port = shopd_port(s);
    struct http_resp r;
    post(port, "/buy", "Idempotency-Key: k-422\r\n",
         "{\"product\":\"apple\",\"quantity\":2}", &r);
    expect_202(&r, false);
    http_resp_free(&r);
    static const char *const other[] = {
        "{\"product\":\"apple\",\"quantity\":3}",
        "{\"product\":\"pear\",\"quantity\":2}",
        "{\"product\":\"apple\",\"quantity\":2,\"customer\":\"ann\"}",
        "{\"product\":\"apple\",\"quantity\":2,\"customer\":\"\"}",
    };
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        post(port, "/buy", "Idempotency-Key: k-422\r\n", other[i], &r);
        expect_error(&r, 422, "idempotency_key_reused");
        http_resp_free(&r);
    }
    ck_assert_int_eq((int)stat_of(port, "orders.accepted"), 1);
    ck_assert_int_eq((int)stat_of(port, "idempotency.mismatched"), 4);
    struct http_resp m;
    ck_assert_int_eq(http_do(port, "GET", "/metrics", NULL, NULL, 0, &m), 0);
    ck_assert_ptr_nonnull(
        strstr(m.body, "\nshopd_idempotency_mismatches_total 4\n"));
    http_resp_free(&m);
    stop_shop(s, cat);
}
END_TEST

/* The canonical request carries the customer's bytes: the same name
 * written another way in JSON is the same request; a name that differs in
 * one byte, or the string "null" against no customer, is another. */
START_TEST(test_e2e_retry_customer_bytes_name_the_request)
{
    char *cat;
    struct shopd *s = start_shop(&cat, false, NULL);
    unsigned port = shopd_port(s);
    struct http_resp r;
    post(port, "/buy", "Idempotency-Key: cust-1\r\n",
         "{\"product\":\"apple\",\"quantity\":1,\"customer\":\"a|\\\"b\"}", &r);
    uint64_t id = expect_202(&r, false);
    http_resp_free(&r);
    post(
        port, "/buy", "Idempotency-Key: cust-1\r\n",
        "{\"customer\":\"\\u0061|\\\"b\",\"quantity\":1,\"product\":\"apple\"}",
        &r);
    ck_assert_uint_eq(expect_202(&r, true), id);
    http_resp_free(&r);
    post(port, "/buy", "Idempotency-Key: cust-1\r\n",
         "{\"product\":\"apple\",\"quantity\":1,\"customer\":\"a|\\\"c\"}", &r);
    expect_error(&r, 422, "idempotency_key_reused");
    http_resp_free(&r);

    post(port, "/buy", "Idempotency-Key: cust-2\r\n",
         "{\"product\":\"apple\",\"quantity\":1}", &r);
    expect_202(&r, false);
    http_resp_free(&r);
    post(port, "/buy", "Idempotency-Key: cust-2\r\n",
         "{\"product\":\"apple\",\"quantity\":1,\"customer\":\"null\"}", &r);
    expect_error(&r, 422, "idempotency_key_reused");
    http_resp_free(&r);
    ck_assert_int_eq((int)stat_of(port, "orders.accepted"), 2);
    stop_shop(s, cat);
}
END_TEST

/* Row 5: empty, over-long or malformed keys, or two key headers: 400. */
static const char *const bad_key_headers[] = {
    "Idempotency-Key:\r\n",
    "Idempotency-Key: \"\"\r\n",
    "Idempotency-Key: \"unbalanced\r\n",
    "Idempotency-Key: in\"side\r\n",
    "Idempotency-Key: two words\r\n",
    "Idempotency-Key: caf\xc3\xa9\r\n",
    "Idempotency-Key: a\r\nIdempotency-Key: a\r\n",
    "Idempotency-Key: a\r\nidempotency-key: b\r\n",
    NULL, /* over-long: built in the test */
};

START_TEST(test_e2e_retry_bad_key_400)
{
    char *cat;
    struct shopd *s = start_shop(&cat, false, NULL);
    unsigned port = shopd_port(s);
    char longkey[320];
    const char *h = bad_key_headers[_i];
    if (h == NULL) {
        int n = snprintf(longkey, sizeof longkey, "Idempotency-Key: ");
        memset(longkey + n, 'k', 256);
        memcpy(longkey + n + 256, "\r\n", 3);
        h = longkey;
    }
    struct http_resp r;
    post(port, "/buy", h, apple2, &r);
    expect_error(&r, 400, "invalid_idempotency_key");
    http_resp_free(&r);
    /* 255 characters is the longest key: accepted. */
    int n = snprintf(longkey, sizeof longkey, "Idempotency-Key: ");
    memset(longkey + n, 'k', 255);
    memcpy(longkey + n + 255, "\r\n", 3);
    post(port, "/buy", longkey, apple2, &r);
    expect_202(&r, false);
    http_resp_free(&r);
    ck_assert_int_eq((int)stat_of(port, "orders.accepted"), 1);
    stop_shop(s, cat);
}
END_TEST

/* Only successes are remembered: after a 4xx or a 503 the key is free. */
START_TEST(test_e2e_retry_only_success_remembered)
{
    char *cat;
    const char *const extra[] = {"--workers",        "1", "--work-ms", "2500",
                                 "--queue-capacity", "1", NULL};
    struct shopd *s = start_shop(&cat, false, extra);
    unsigned port = shopd_port(s);
    struct http_resp r;
    /* A 404 and a 400 under the key ... */
    post(port, "/buy", "Idempotency-Key: later\r\n",
         "{\"product\":\"plum\",\"quantity\":1}", &r);
    expect_error(&r, 404, "unknown_product");
    http_resp_free(&r);
    post(port, "/buy", "Idempotency-Key: later\r\n",
         "{\"product\":\"apple\",\"quantity\":0}", &r);
    expect_error(&r, 400, "invalid_field");
    http_resp_free(&r);
    /* ... then a 503: the worker busy with one order (waited for on
     * /stats), the one-slot belt holding another. */
    post(port, "/buy", NULL, "{\"product\":\"apple\",\"quantity\":1}", &r);
    expect_202(&r, false);
    http_resp_free(&r);
    int64_t until = now_ms() + 20000;
    while (stat_of(port, "orders.in_flight") != 1 && now_ms() < until)
        backoff_ms(5);
    post(port, "/buy", NULL, "{\"product\":\"apple\",\"quantity\":1}", &r);
    expect_202(&r, false);
    http_resp_free(&r);
    post(port, "/buy", "Idempotency-Key: later\r\n", apple2, &r);
    expect_error(&r, 503, "queue_full");
    ck_assert_str_eq(http_header(&r, "Retry-After"), "1");
    http_resp_free(&r);
    /* Once there is room, the same key is a new order. */
    cJSON *idle = wait_idle_ok(port, 20000);
    cJSON_Delete(idle);
    post(port, "/buy", "Idempotency-Key: later\r\n", apple2, &r);
    uint64_t id = expect_202(&r, false);
    http_resp_free(&r);
    post(port, "/buy", "Idempotency-Key: later\r\n", apple2, &r);
    ck_assert_uint_eq(expect_202(&r, true), id);
    http_resp_free(&r);
    stop_shop(s, cat);
}
END_TEST

/* Keys expire idempotency_ttl seconds after their first use. */
START_TEST(test_e2e_retry_key_expires)
{
    char *cat;
    const char *const extra[] = {"--idempotency-ttl", "1", NULL};
    struct shopd *s = start_shop(&cat, false, extra);
    unsigned port = shopd_port(s);
    struct http_resp r;
    int64_t t0 = now_ms();
    post(port, "/buy", "Idempotency-Key: short-lived\r\n", apple2, &r);
    uint64_t first = expect_202(&r, false);
    http_resp_free(&r);
    /* Retry until the answer is a new order; every answer before it must
     * be the replay, and the new one cannot come before the TTL. */
    uint64_t second = 0;
    int replays = 0;
    while (second == 0 && now_ms() - t0 < 15000) {
        post(port, "/buy", "Idempotency-Key: short-lived\r\n", apple2, &r);
        if (http_header(&r, "Idempotent-Replayed") != NULL) {
            ck_assert_uint_eq(expect_202(&r, true), first);
            replays++;
        } else {
            second = expect_202(&r, false);
        }
        http_resp_free(&r);
        if (second == 0)
            backoff_ms(100);
    }
    ck_assert_msg(second != 0, "the key never expired (ttl 1 s)");
    ck_assert_uint_gt(second, first);
    ck_assert_int_ge(replays, 1);
    ck_assert_int_ge(now_ms() - t0, 1000);
    stop_shop(s, cat);
}
END_TEST

/* Keys are per endpoint: one key on /buy and on a restock is two keys. */
START_TEST(test_e2e_retry_keys_per_endpoint)
{
    char *cat;
    struct shopd *s = start_shop(&cat, true, NULL);
    unsigned port = shopd_port(s);
    struct http_resp r;
    post(port, "/buy", "Idempotency-Key: shared\r\n", apple2, &r);
    expect_202(&r, false);
    http_resp_free(&r);
    post(port, "/products/apple/restock", AUTH "Idempotency-Key: shared\r\n",
         "{\"quantity\":5}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(http_header(&r, "Idempotent-Replayed"));
    char *first = strdup(r.body);
    http_resp_free(&r);
    /* A sale in between: the replay still shows the numbers right after
     * the restock, not the product's current ones. */
    post(port, "/buy", "", apple2, &r);
    uint64_t sold = expect_202(&r, false);
    http_resp_free(&r);
    cJSON_Delete(wait_order_final_ok(port, sold, 10000));
    /* A restock retried with its key is not applied twice. */
    post(port, "/products/apple/restock", AUTH "Idempotency-Key: shared\r\n",
         "{ \"quantity\": 5 }", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, first);
    ck_assert_str_eq(http_header(&r, "Idempotent-Replayed"), "true");
    http_resp_free(&r);
    free(first);
    post(port, "/products/apple/restock", AUTH "Idempotency-Key: shared\r\n",
         "{\"quantity\":6}", &r);
    expect_error(&r, 422, "idempotency_key_reused");
    http_resp_free(&r);
    cJSON *p = get_json_ok(port, "/products/apple");
    ck_assert_int_eq((int)jnum(p, "restocked"), 5);
    cJSON_Delete(p);
    stop_shop(s, cat);
}
END_TEST

/* Huge and repeated key and Authorization headers: a 4xx, and the server
 * keeps serving. */
START_TEST(test_e2e_retry_huge_and_repeated_headers)
{
    char *cat;
    struct shopd *s = start_shop(&cat, true, NULL);
    unsigned port = shopd_port(s);
    enum { BIG = 6000, REPEAT = 100 };
    char *h = malloc(BIG + 64);
    ck_assert_ptr_nonnull(h);
    struct http_resp r;

    /* A 6000-character key: over 255, refused as a key. */
    int n = snprintf(h, 64, "Idempotency-Key: ");
    memset(h + n, 'k', BIG);
    memcpy(h + n + BIG, "\r\n", 3);
    post(port, "/buy", h, apple2, &r);
    expect_error(&r, 400, "invalid_idempotency_key");
    http_resp_free(&r);

    /* A 6000-character token: simply wrong. */
    n = snprintf(h, 64, "Authorization: Bearer ");
    memset(h + n, 't', BIG);
    memcpy(h + n + BIG, "\r\n", 3);
    post(port, "/products/apple/restock", h, "{\"quantity\":1}", &r);
    expect_error(&r, 401, "unauthorized");
    http_resp_free(&r);

    /* The same key header 100 times, and Authorization 100 times. */
    char *rep = malloc(REPEAT * 48 + 1);
    ck_assert_ptr_nonnull(rep);
    rep[0] = '\0';
    for (int i = 0; i < REPEAT; i++)
        strcat(rep, "Idempotency-Key: same\r\n");
    post(port, "/buy", rep, apple2, &r);
    expect_error(&r, 400, "invalid_idempotency_key");
    http_resp_free(&r);
    rep[0] = '\0';
    for (int i = 0; i < REPEAT; i++)
        strcat(rep, AUTH);
    post(port, "/products/apple/restock", rep, "{\"quantity\":1}", &r);
    expect_error(&r, 401, "unauthorized");
    http_resp_free(&r);
    free(rep);
    free(h);

    /* Still serving, nothing bought or restocked. */
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_int_eq((int)jnum(st, "orders.accepted"), 0);
    ck_assert_int_eq((int)jnum(st, "inventory.apple.restocked"), 0);
    cJSON_Delete(st);
    stop_shop(s, cat);
}
END_TEST

/* ---- 20 clients, one key, one body, at once (rows 2 and 3) ------------- */

#define RACERS 20

struct racer {
    pthread_t tid;
    unsigned port;
    const char *key_header;
    pthread_barrier_t *go;
    int err;
    int status;
    bool replayed;
    bool retry_after_1;
    bool in_use_body;
    uint64_t id;
};

static void *racer_main(void *arg)
{
    struct racer *t = arg;
    struct http_conn c;
    struct http_resp r;
    t->err = http_connect(&c, t->port);
    pthread_barrier_wait(t->go);
    if (t->err != 0)
        return NULL;
    t->err = http_roundtrip(&c, "POST", "/buy", t->key_header, apple2,
                            sizeof(apple2) - 1, &r);
    http_close(&c);
    if (t->err != 0)
        return NULL;
    t->status = r.status;
    const char *rep = http_header(&r, "Idempotent-Replayed");
    t->replayed = rep != NULL && strcmp(rep, "true") == 0;
    const char *ra = http_header(&r, "Retry-After");
    t->retry_after_1 = ra != NULL && strcmp(ra, "1") == 0;
    t->in_use_body = strstr(r.body, "\"idempotency_key_in_use\"") != NULL;
    if (r.status == 202) {
        const char *p = strstr(r.body, "\"order_id\":");
        t->id = p ? strtoull(p + 11, NULL, 10) : 0;
    }
    http_resp_free(&r);
    return NULL;
}

START_TEST(test_e2e_retry_twenty_clients_one_key)
{
    char *cat;
    struct shopd *s = start_shop(&cat, false, NULL);
    unsigned port = shopd_port(s);
    int conflicts = 0;
    enum { ROUNDS = 5 };
    for (int round = 0; round < ROUNDS; round++) {
        char hdr[64];
        snprintf(hdr, sizeof hdr, "Idempotency-Key: race-%d\r\n", round);
        static struct racer t[RACERS];
        pthread_barrier_t go;
        ck_assert_int_eq(pthread_barrier_init(&go, NULL, RACERS), 0);
        for (int i = 0; i < RACERS; i++) {
            t[i] = (struct racer){.port = port, .key_header = hdr, .go = &go};
            ck_assert_int_eq(pthread_create(&t[i].tid, NULL, racer_main, &t[i]),
                             0);
        }
        int fresh = 0;
        uint64_t id = 0;
        for (int i = 0; i < RACERS; i++)
            ck_assert_int_eq(pthread_join(t[i].tid, NULL), 0);
        pthread_barrier_destroy(&go);
        for (int i = 0; i < RACERS; i++) {
            ck_assert_msg(t[i].err == 0, "client %d: %s", i,
                          strerror(-t[i].err));
            if (t[i].status == 409) {
                ck_assert_msg(t[i].retry_after_1 && t[i].in_use_body,
                              "a 409 without Retry-After: 1 or its code");
                conflicts++;
                continue;
            }
            ck_assert_msg(t[i].status == 202, "client %d: status %d", i,
                          t[i].status);
            if (!t[i].replayed)
                fresh++;
            if (id == 0)
                id = t[i].id;
            ck_assert_msg(t[i].id == id, "order ids %llu and %llu for one key",
                          (unsigned long long)t[i].id, (unsigned long long)id);
        }
        ck_assert_int_eq(fresh, 1);
        ck_assert_uint_ne(id, 0);
    }
    /* Exactly one order per key. */
    cJSON *idle = wait_idle_ok(port, 10000);
    ck_assert_int_eq((int)jnum(idle, "orders.accepted"), ROUNDS);
    ck_assert_int_eq((int)jnum(idle, "idempotency.in_use"), conflicts);
    ck_assert_int_eq((int)jnum(idle, "idempotency.replayed"),
                     ROUNDS * (RACERS - 1) - conflicts);
    cJSON_Delete(idle);
    stop_shop(s, cat);
}
END_TEST

/* ---- SPEC §9, row by row ------------------------------------------------ */

/*
 * Rows 1 to 5, every refusal of a restock: the status and error code of
 * the row, Allow: POST on a 405, WWW-Authenticate: Bearer on a 401, never
 * the token in an answer, and no stock added.
 */
#define APPLE_RESTOCK "/products/apple/restock"
#define QTY1          "{\"quantity\":1}"

static const struct {
    const char *row; /* names the row in failure messages */
    bool admin;      /* the server has an admin token */
    const char *method;
    const char *path;
    const char *headers;
    const char *body;
    int status;
    const char *code;
} refusals[] = {
    /* Row 1: a method other than POST: 405 (even with no token set). */
    {"GET", false, "GET", APPLE_RESTOCK, AUTH, QTY1, 405, "method_not_allowed"},
    {"PUT", false, "PUT", APPLE_RESTOCK, AUTH, QTY1, 405, "method_not_allowed"},
    {"DELETE", false, "DELETE", APPLE_RESTOCK, AUTH, QTY1, 405,
     "method_not_allowed"},
    {"PATCH", false, "PATCH", APPLE_RESTOCK, AUTH, QTY1, 405,
     "method_not_allowed"},
    /* Row 2: no admin token configured: 403, whatever is sent. */
    {"no token set, a good request", false, "POST", APPLE_RESTOCK, AUTH, QTY1,
     403, "admin_disabled"},
    {"no token set, nothing right", false, "POST", "/products/nope/restock",
     NULL, "x", 403, "admin_disabled"},
    /* Row 3: no Authorization or a wrong token: 401, before the unknown
     * product and the bad body are looked at. */
    {"no Authorization", true, "POST", "/products/nope/restock", NULL, "x", 401,
     "unauthorized"},
    {"Bearer and no token", true, "POST", "/products/nope/restock",
     "Authorization: Bearer\r\n", "x", 401, "unauthorized"},
    {"a wrong token", true, "POST", "/products/nope/restock",
     "Authorization: Bearer wrong-token-wrong-token\r\n", "x", 401,
     "unauthorized"},
    {"the token and one more byte", true, "POST", "/products/nope/restock",
     "Authorization: Bearer " TOKEN "x\r\n", "x", 401, "unauthorized"},
    {"the token less one byte", true, "POST", "/products/nope/restock",
     "Authorization: Bearer e2e-admin-token-7f3a9c1\r\n", "x", 401,
     "unauthorized"},
    {"Basic with the token", true, "POST", "/products/nope/restock",
     "Authorization: Basic " TOKEN "\r\n", "x", 401, "unauthorized"},
    {"the token without a scheme", true, "POST", "/products/nope/restock",
     "Authorization: " TOKEN "\r\n", "x", 401, "unauthorized"},
    {"two Authorization headers", true, "POST", "/products/nope/restock",
     AUTH AUTH, "x", 401, "unauthorized"},
    /* Row 4: an unknown product: 404, before the body is looked at. */
    {"unknown product", true, "POST", "/products/plum/restock", AUTH,
     "not json", 404, "unknown_product"},
    /* Row 5: a bad body or quantity: 400. */
    {"empty body", true, "POST", APPLE_RESTOCK, AUTH, "", 400, "invalid_json"},
    {"cut JSON", true, "POST", APPLE_RESTOCK, AUTH, "{\"quantity\":", 400,
     "invalid_json"},
    {"an array", true, "POST", APPLE_RESTOCK, AUTH, "[5]", 400, "invalid_json"},
    {"no quantity", true, "POST", APPLE_RESTOCK, AUTH, "{}", 400,
     "invalid_field"},
    {"quantity 0", true, "POST", APPLE_RESTOCK, AUTH, "{\"quantity\":0}", 400,
     "invalid_field"},
    {"quantity -3", true, "POST", APPLE_RESTOCK, AUTH, "{\"quantity\":-3}", 400,
     "invalid_field"},
    {"quantity 2.5", true, "POST", APPLE_RESTOCK, AUTH, "{\"quantity\":2.5}",
     400, "invalid_field"},
    {"quantity 1e2", true, "POST", APPLE_RESTOCK, AUTH, "{\"quantity\":1e2}",
     400, "invalid_field"},
    {"quantity as a string", true, "POST", APPLE_RESTOCK, AUTH,
     "{\"quantity\":\"7\"}", 400, "invalid_field"},
    {"quantity over 10^9", true, "POST", APPLE_RESTOCK, AUTH,
     "{\"quantity\":1000000001}", 400, "invalid_field"},
};

START_TEST(test_e2e_admin_refused)
{
    const char *row = refusals[_i].row;
    char *cat;
    struct shopd *s = start_shop(&cat, refusals[_i].admin, NULL);
    unsigned port = shopd_port(s);
    struct http_resp r;
    const char *body = refusals[_i].body;
    int e = http_do(port, refusals[_i].method, refusals[_i].path,
                    refusals[_i].headers, body, strlen(body), &r);
    ck_assert_msg(e == 0, "%s: %s", row, strerror(-e));
    ck_assert_msg(r.status == refusals[_i].status,
                  "%s: status %d, want %d; body %.200s", row, r.status,
                  refusals[_i].status, r.body);
    const char *msg = expect_error(&r, refusals[_i].status, refusals[_i].code);
    ck_assert_msg(strstr(msg, TOKEN) == NULL && strstr(r.body, TOKEN) == NULL,
                  "%s: the answer shows the token", row);
    const char *allow = http_header(&r, "Allow");
    const char *auth = http_header(&r, "WWW-Authenticate");
    if (refusals[_i].status == 405)
        ck_assert_msg(allow && strcmp(allow, "POST") == 0,
                      "%s: Allow is '%s', want 'POST'", row,
                      allow ? allow : "(none)");
    if (refusals[_i].status == 401)
        ck_assert_msg(auth && strcmp(auth, "Bearer") == 0,
                      "%s: WWW-Authenticate is '%s', want 'Bearer'", row,
                      auth ? auth : "(none)");
    http_resp_free(&r);
    cJSON *p = get_json_ok(port, "/products/apple");
    ck_assert_msg(jnum(p, "stock") == 100 && jnum(p, "restocked") == 0,
                  "%s: apple stock %g restocked %g after a refusal", row,
                  jnum(p, "stock"), jnum(p, "restocked"));
    cJSON_Delete(p);
    stop_shop(s, cat);
}
END_TEST

/* 200: stock and restocked grow; every view shows it. */
START_TEST(test_e2e_admin_restock_200)
{
    char *cat;
    struct shopd *s = start_shop(&cat, true, NULL);
    unsigned port = shopd_port(s);
    buy_one_ok(port, "{\"product\":\"pear\",\"quantity\":3}");
    cJSON_Delete(wait_idle_ok(port, 10000));

    struct http_resp r;
    post(port, "/products/pear/restock", AUTH, "{\"quantity\":1000000000}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"sku\":\"pear\",\"name\":\"Pear\","
                             "\"price_cents\":70,\"stock\":1000000000,"
                             "\"sold\":3,\"restocked\":1000000000}");
    struct http_resp g;
    ck_assert_int_eq(http_do(port, "GET", "/products/pear", NULL, NULL, 0, &g),
                     0);
    ck_assert_str_eq(g.body, r.body);
    http_resp_free(&g);
    http_resp_free(&r);

    cJSON *all = get_json_ok(port, "/products");
    ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(all, 0), "restocked"), 0);
    ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(all, 1), "restocked"),
                     1000000000);
    cJSON_Delete(all);
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_int_eq((int)jnum(st, "inventory.pear.restocked"), 1000000000);
    ck_assert_int_eq((int)jnum(st, "inventory.apple.restocked"), 0);
    ck_assert_int_eq((int)(jnum(st, "inventory.pear.stock") +
                           jnum(st, "inventory.pear.sold")),
                     3 + 1000000000);
    cJSON_Delete(st);
    ck_assert_int_eq(http_do(port, "GET", "/metrics", NULL, NULL, 0, &g), 0);
    ck_assert_ptr_nonnull(strstr(g.body,
                                 "\nshopd_restocked_units_total{sku=\"pear\"} "
                                 "1000000000\n"));
    ck_assert_ptr_nonnull(
        strstr(g.body, "\nshopd_restocked_units_total{sku=\"apple\"} 0\n"));
    http_resp_free(&g);
    stop_shop(s, cat);
}
END_TEST

/* The token from --admin-token-file: its first line, CR/LF stripped. */
START_TEST(test_e2e_admin_token_file)
{
    char *tok = write_tmp(TOKEN "\r\nsecond line is ignored\n");
    char *cat = write_tmp(retry_catalog);
    const char *const args[] = {"--catalog", cat, "--admin-token-file", tok,
                                NULL};
    struct shopd *s = shopd_start(args, NULL);
    struct http_resp r;
    post(shopd_port(s), "/products/apple/restock", AUTH, "{\"quantity\":4}",
         &r);
    ck_assert_msg(r.status == 200, "status %d body %s", r.status, r.body);
    http_resp_free(&r);
    post(shopd_port(s), "/products/apple/restock",
         "Authorization: Bearer second line is ignored\r\n", "{\"quantity\":4}",
         &r);
    expect_error(&r, 401, "unauthorized");
    http_resp_free(&r);
    shopd_destroy(s);
    unlink(tok);
    unlink(cat);
    free(tok);
    free(cat);
}
END_TEST

/* ---- the restock invariant under a burst ------------------------------- */

#define BURST_THREADS 6
#define BURST_EACH    150

struct burster {
    pthread_t tid;
    unsigned port;
    bool restocker;
    int errors;
    long restocked; /* units answered 200 */
    int bought;     /* 202s */
};

static void *burst_main(void *arg)
{
    struct burster *t = arg;
    struct http_conn c;
    if (http_connect(&c, t->port) != 0) {
        t->errors = BURST_EACH;
        return NULL;
    }
    for (int i = 0; i < BURST_EACH; i++) {
        struct http_resp r;
        int q = 1 + i % 4;
        char body[64];
        int e;
        if (t->restocker) {
            snprintf(body, sizeof body, "{\"quantity\":%d}", q);
            e = http_roundtrip(&c, "POST", "/products/pear/restock", AUTH, body,
                               strlen(body), &r);
        } else {
            snprintf(body, sizeof body,
                     "{\"product\":\"pear\",\"quantity\":%d}", q);
            e = http_roundtrip(&c, "POST", "/buy", NULL, body, strlen(body),
                               &r);
        }
        if (e != 0) {
            t->errors++;
            http_close(&c);
            if (http_connect(&c, t->port) != 0)
                break;
            continue;
        }
        if (t->restocker && r.status == 200)
            t->restocked += q;
        else if (!t->restocker && r.status == 202)
            t->bought++;
        else if (r.status != 503)
            t->errors++;
        http_resp_free(&r);
    }
    http_close(&c);
    return NULL;
}

START_TEST(test_e2e_admin_restock_invariant_under_burst)
{
    char *cat;
    const char *const extra[] = {"--workers", "4", "--queue-capacity", "4096",
                                 NULL};
    struct shopd *s = start_shop(&cat, true, extra);
    unsigned port = shopd_port(s);
    static struct burster t[BURST_THREADS];
    for (int i = 0; i < BURST_THREADS; i++) {
        t[i] = (struct burster){.port = port, .restocker = i % 3 == 0};
        ck_assert_int_eq(pthread_create(&t[i].tid, NULL, burst_main, &t[i]), 0);
    }
    long restocked = 0;
    for (int i = 0; i < BURST_THREADS; i++) {
        ck_assert_int_eq(pthread_join(t[i].tid, NULL), 0);
        ck_assert_int_eq(t[i].errors, 0);
        restocked += t[i].restocked;
    }
    cJSON *idle = wait_idle_ok(port, 20000);
    double stock = jnum(idle, "inventory.pear.stock");
    double sold = jnum(idle, "inventory.pear.sold");
    ck_assert_int_eq((long)jnum(idle, "inventory.pear.restocked"), restocked);
    ck_assert_int_ge((long)stock, 0);
    ck_assert_int_eq((long)(stock + sold), 3 + restocked);
    ck_assert_int_eq((int)jnum(idle, "oversold"), 0);
    /* Restocked units were sold: the burst really interleaved. */
    ck_assert_int_gt((long)sold, 3);
    cJSON_Delete(idle);
    stop_shop(s, cat);
}
END_TEST

/* ---- the token never appears in any output ------------------------------ */

static void assert_no_token(const char *what, const char *text)
{
    ck_assert_msg(text == NULL || strstr(text, TOKEN) == NULL,
                  "the admin token appears in %s", what);
}

START_TEST(test_e2e_admin_token_never_printed)
{
    char *cat;
    const char *const extra[] = {"--log-format", "json", NULL};
    struct shopd *s = start_shop(&cat, true, extra);
    unsigned port = shopd_port(s);
    static const char *const paths[] = {"/stats", "/metrics", "/products",
                                        "/products/apple", "/orders/1"};
    struct http_resp r;
    /* Wrong tokens, good ones, bad bodies, a replay: every answer. */
    static const char *const heads[] = {
        AUTH, "Authorization: Bearer " TOKEN "-wrong\r\n",
        "Authorization: Basic " TOKEN "\r\n", AUTH "Idempotency-Key: tok\r\n",
        AUTH "Idempotency-Key: tok\r\n"};
    for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
        post(port, "/products/apple/restock", heads[i], "{\"quantity\":1}", &r);
        assert_no_token("a restock answer", r.body);
        for (size_t h = 0; h < r.nheaders; h++)
            assert_no_token("a response header", r.headers[h].value);
        http_resp_free(&r);
        post(port, "/products/apple/restock", heads[i], TOKEN, &r);
        assert_no_token("an error body", r.body);
        http_resp_free(&r);
    }
    post(port, "/buy", AUTH, "{\"product\":\"" TOKEN "\",\"quantity\":1}", &r);
    http_resp_free(&r);
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        ck_assert_int_eq(http_do(port, "GET", paths[i], AUTH, NULL, 0, &r), 0);
        assert_no_token(paths[i], r.body);
        http_resp_free(&r);
    }
    shopd_signal(s, SIGTERM);
    char *err = shopd_expect_exit(s, 30000, 0, "SIGTERM with an admin token");
    char *out = shopd_stdout(s);
    ck_assert_ptr_nonnull(strstr(err, "admin API on"));
    assert_no_token("stderr", err);
    assert_no_token("stdout", out);
    free(err);
    free(out);
    stop_shop(s, cat);

    /* --help and a too-short token's error line. */
    static const char *const help[] = {"--help", NULL};
    static const char *const env[] = {TOKEN_ENV, NULL};
    int st = shopd_run(help, env, 10000, &out, &err);
    expect_exit_code(st, 0, "--help", err);
    ck_assert_ptr_nonnull(strstr(out, "admin"));
    assert_no_token("--help", out);
    assert_no_token("--help stderr", err);
    free(out);
    free(err);
    static const char *const none[] = {NULL};
    static const char *const short_env[] = {"SHOPD_ADMIN_TOKEN=tooshort7",
                                            NULL};
    st = shopd_run(none, short_env, 10000, &out, &err);
    expect_exit_code(st, 2, "a too-short admin token", err);
    ck_assert_ptr_null(strstr(err, "tooshort7"));
    free(out);
    free(err);
}
END_TEST

Suite *e2e_retry_suite(void)
{
    Suite *s = suite_create("e2e_retry");
    TCase *keys = tcase_create("idempotency");
    tcase_add_checked_fixture(keys, NULL, e2e_teardown);
    tcase_set_timeout(keys, 60);
    tcase_add_test(keys, test_e2e_retry_new_key_processed);
    tcase_add_test(keys, test_e2e_retry_replay_same_request);
    tcase_add_test(keys, test_e2e_retry_mismatch_422);
    tcase_add_test(keys, test_e2e_retry_customer_bytes_name_the_request);
    tcase_add_loop_test(keys, test_e2e_retry_bad_key_400, 0,
                        sizeof bad_key_headers / sizeof *bad_key_headers);
    tcase_add_test(keys, test_e2e_retry_only_success_remembered);
    tcase_add_test(keys, test_e2e_retry_key_expires);
    tcase_add_test(keys, test_e2e_retry_keys_per_endpoint);
    tcase_add_test(keys, test_e2e_retry_twenty_clients_one_key);
    tcase_add_test(keys, test_e2e_retry_huge_and_repeated_headers);
    suite_add_tcase(s, keys);

    TCase *admin = tcase_create("admin");
    tcase_add_checked_fixture(admin, NULL, e2e_teardown);
    tcase_set_timeout(admin, 60);
    tcase_add_loop_test(admin, test_e2e_admin_refused, 0,
                        sizeof refusals / sizeof *refusals);
    tcase_add_test(admin, test_e2e_admin_restock_200);
    tcase_add_test(admin, test_e2e_admin_token_file);
    tcase_add_test(admin, test_e2e_admin_restock_invariant_under_burst);
    tcase_add_test(admin, test_e2e_admin_token_never_printed);
    suite_add_tcase(s, admin);
    return s;
}
