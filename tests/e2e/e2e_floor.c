/*
 * e2e_floor.c - the shop floor, live (SPEC §11), against the real binary:
 * one test per row of §11's tables (workers, work_ms, paused, each fault,
 * for_s, ending faults), the §9 check order of /admin/floor, a patch with a
 * bad field applying nothing, the token never in any output, a drain that
 * ends faults and un-pauses, a client flooding PATCH with good and bad
 * bodies, and resizes, pauses and un-pauses while clients buy, in memory
 * and in SQLite (then a restart and a scan of every order), with the
 * invariants of §1 exact afterwards.
 *
 * Waits are on conditions (an answer, a poll of /stats or /admin/floor
 * with a deadline), never a fixed sleep.
 */
#include "tests/e2e/suites.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/clock.h"
#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/orders.h"
#include "tests/lib/process.h"
#include "tests/lib/redis_harness.h"

#define TOKEN     "e2e-floor-token-5b8e2d4a91"
#define TOKEN_ENV "SHOPD_ADMIN_TOKEN=" TOKEN
#define AUTH      "Authorization: Bearer " TOKEN "\r\n"

static const char apple1[] = "{\"product\":\"apple\",\"quantity\":1}";

/* Start shopd with the admin token and `extra` arguments. */
static struct shopd *start_floor(const char *const *extra)
{
    static const char *const env[] = {TOKEN_ENV, NULL};
    return shopd_start(extra, env);
}

/* PATCH /admin/floor with `body` (and `auth` header lines); the answer. */
static void patch(unsigned port, const char *auth, const char *body,
                  struct http_resp *r)
{
    int e = http_do(port, "PATCH", "/admin/floor", auth, body, strlen(body), r);
    ck_assert_msg(e == 0, "PATCH: %s", strerror(-e));
}

/* PATCH that must answer 200; returns the new floor (caller deletes). */
static cJSON *patch_ok(unsigned port, const char *body)
{
    struct http_resp r;
    patch(port, AUTH, body, &r);
    ck_assert_msg(r.status == 200, "PATCH %s: %d %.300s", body, r.status,
                  r.body);
    cJSON *j = resp_json(&r);
    ck_assert_ptr_nonnull(j);
    http_resp_free(&r);
    return j;
}

static cJSON *floor_get(unsigned port)
{
    struct http_resp r;
    int e = http_do(port, "GET", "/admin/floor", AUTH, NULL, 0, &r);
    ck_assert_int_eq(e, 0);
    ck_assert_msg(r.status == 200, "GET floor: %d %s", r.status, r.body);
    cJSON *j = resp_json(&r);
    ck_assert_ptr_nonnull(j);
    http_resp_free(&r);
    return j;
}

static bool is_null_at(const cJSON *j, const char *path)
{
    return cJSON_IsNull(json_at(j, path));
}

/* POST /buy on a fresh connection; the status (the answer in `r`). */
static int buy(unsigned port, const char *headers, struct http_resp *r)
{
    int e = http_do(port, "POST", "/buy", headers, apple1, strlen(apple1), r);
    ck_assert_msg(e == 0, "POST /buy: %s", strerror(-e));
    return r->status;
}

/* The §1 invariants, exact on an idle belt; returns the snapshot. */
static cJSON *invariants_ok(unsigned port)
{
    cJSON *s = wait_idle_ok(port, 30000);
    double acc = jnum(s, "orders.accepted");
    ck_assert(acc == jnum(s, "orders.processed") + jnum(s, "queue.depth") +
                         jnum(s, "orders.in_flight"));
    ck_assert(jnum(s, "orders.processed") ==
              jnum(s, "orders.fulfilled") + jnum(s, "orders.out_of_stock"));
    return s;
}

/* --- GET, and §11's first table ---------------------------------------- */

START_TEST(test_e2e_floor_get)
{
    static const char *const args[] = {"--workers", "3", "--work-ms", "2",
                                       NULL};
    struct shopd *s = start_floor(args);
    cJSON *f = floor_get(shopd_port(s));
    ck_assert_int_eq((int)jnum(f, "workers"), 3);
    ck_assert_int_eq((int)jnum(f, "work_ms"), 2);
    ck_assert(cJSON_IsFalse(json_at(f, "paused")));
    ck_assert_int_eq((int)jnum(f, "faults.latency_ms"), 0);
    ck_assert(jnum(f, "faults.error_rate") == 0);
    ck_assert(jnum(f, "faults.drop_rate") == 0);
    ck_assert(is_null_at(f, "faults.until"));
    cJSON_Delete(f);
    shopd_destroy(s);
}
END_TEST

/* workers: grow and shrink while orders flow; nothing lost after. */
START_TEST(test_e2e_floor_workers)
{
    static const char *const args[] = {"--workers", "2", "--work-ms", "1",
                                       NULL};
    struct shopd *s = start_floor(args);
    unsigned port = shopd_port(s);
    static const char *const sizes[] = {"{\"workers\":8}", "{\"workers\":1}",
                                        "{\"workers\":5}"};
    unsigned ok = 0;
    for (size_t round = 0; round < 3; round++) {
        cJSON *f = patch_ok(port, sizes[round]);
        cJSON_Delete(f);
        for (int i = 0; i < 20; i++) {
            struct http_resp r;
            ok += buy(port, NULL, &r) == 202;
            http_resp_free(&r);
        }
    }
    cJSON *st = invariants_ok(port);
    ck_assert_int_eq((int)jnum(st, "workers"), 5);
    ck_assert_int_eq((int)jnum(st, "floor.workers"), 5);
    ck_assert_int_eq((int)jnum(st, "orders.accepted"), (int)ok);
    cJSON_Delete(st);
    shopd_destroy(s);
}
END_TEST

/* work_ms: from the next order on, each takes that long. */
START_TEST(test_e2e_floor_work_ms)
{
    static const char *const args[] = {"--workers", "1", NULL};
    struct shopd *s = start_floor(args);
    unsigned port = shopd_port(s);
    cJSON_Delete(patch_ok(port, "{\"work_ms\":150}"));
    uint64_t id = buy_one_ok(port, apple1);
    cJSON_Delete(wait_order_final_ok(port, id, 10000));
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_msg(jnum(st, "latency_ms.processing.max") >= 140,
                  "processing max %.1f ms",
                  jnum(st, "latency_ms.processing.max"));
    ck_assert_int_eq((int)jnum(st, "floor.work_ms"), 150);
    cJSON_Delete(st);
    shopd_destroy(s);
}
END_TEST

/* paused: the belt fills, then 503 queue_full; un-paused, it drains. */
START_TEST(test_e2e_floor_paused)
{
    static const char *const args[] = {"--workers", "2", "--queue-capacity",
                                       "4", NULL};
    struct shopd *s = start_floor(args);
    unsigned port = shopd_port(s);
    cJSON *f = patch_ok(port, "{\"paused\":true}");
    ck_assert(cJSON_IsTrue(json_at(f, "paused")));
    cJSON_Delete(f);
    struct http_resp r;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(buy(port, NULL, &r), 202);
        http_resp_free(&r);
    }
    buy(port, NULL, &r);
    expect_error(&r, 503, "queue_full");
    http_resp_free(&r);
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_int_eq((int)jnum(st, "queue.depth"), 4);
    ck_assert(cJSON_IsTrue(json_at(st, "floor.paused")));
    cJSON_Delete(st);
    cJSON_Delete(patch_ok(port, "{\"paused\":false}"));
    st = invariants_ok(port);
    ck_assert_int_eq((int)jnum(st, "orders.processed"), 4);
    cJSON_Delete(st);
    shopd_destroy(s);
}
END_TEST

/* --- §11's faults --------------------------------------------------------- */

/* latency_ms: the order is taken at once, its answer waits, and another
 * connection is served meanwhile by the one HTTP thread there is. */
START_TEST(test_e2e_floor_latency)
{
    static const char *const args[] = {"--http-threads", "1", NULL};
    struct shopd *s = start_floor(args);
    unsigned port = shopd_port(s);
    /* 700 ms, more on a slow run (sanitizers, valgrind): the other
     * requests below must fit well inside it. */
    int lat = e2e_slow_ms(700) > 10000 ? 10000 : e2e_slow_ms(700);
    char body[96];
    snprintf(body, sizeof body,
             "{\"faults\":{\"latency_ms\":%d,\"for_s\":600}}", lat);
    cJSON_Delete(patch_ok(port, body));
    struct http_conn a;
    ck_assert_int_eq(http_connect(&a, port), 0);
    int64_t t0 = now_ms();
    ck_assert_int_eq(
        http_send(&a, "POST", "/buy", NULL, apple1, strlen(apple1)), 0);
    /* Taken at once: /stats on another connection sees it, quickly. */
    int64_t deadline = t0 + e2e_slow_ms(5000);
    for (;;) {
        cJSON *st = get_json_ok(port, "/stats");
        double acc = jnum(st, "orders.accepted");
        cJSON_Delete(st);
        if (acc == 1)
            break;
        ck_assert_msg(now_ms() < deadline, "order not taken");
        backoff_ms(5);
    }
    struct http_resp r;
    ck_assert_int_eq(http_do(port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    ck_assert_msg(now_ms() - t0 < lat - 100, "other requests waited %lld ms",
                  (long long)(now_ms() - t0));
    ck_assert_int_eq(http_read(&a, &r, false, 10000), 0);
    ck_assert_int_eq(r.status, 202);
    ck_assert_msg(now_ms() - t0 >= lat - 10, "answered after %lld ms",
                  (long long)(now_ms() - t0));
    http_resp_free(&r);
    http_close(&a);
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_int_eq((int)jnum(st, "floor.faults_injected.latency"), 1);
    cJSON_Delete(st);
    shopd_destroy(s);
}
END_TEST

/* error_rate 1: every POST /buy is 503 injected_fault, no order taken;
 * a keyed one may be retried once the fault ends. */
START_TEST(test_e2e_floor_error_rate)
{
    struct shopd *s = start_floor(NULL);
    unsigned port = shopd_port(s);
    cJSON_Delete(
        patch_ok(port, "{\"faults\":{\"error_rate\":1,\"for_s\":60}}"));
    struct http_resp r;
    for (int i = 0; i < 5; i++) {
        buy(port, i == 0 ? "Idempotency-Key: e1\r\n" : NULL, &r);
        expect_error(&r, 503, "injected_fault");
        ck_assert_str_eq(http_header(&r, "Retry-After"), "1");
        http_resp_free(&r);
    }
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_int_eq((int)jnum(st, "orders.accepted"), 0);
    ck_assert_int_eq((int)jnum(st, "floor.faults_injected.error"), 5);
    cJSON_Delete(st);
    cJSON_Delete(patch_ok(port, "{\"faults\":{\"error_rate\":0}}"));
    ck_assert_int_eq(buy(port, "Idempotency-Key: e1\r\n", &r), 202);
    ck_assert_ptr_null(http_header(&r, "Idempotent-Replayed"));
    http_resp_free(&r);
    shopd_destroy(s);
}
END_TEST

/* drop_rate 1: taken, then the connection closes unanswered; the keyed
 * retry replays the same order. Returns the retry's order id. */
static void drop_then_replay(unsigned port)
{
    cJSON_Delete(patch_ok(port, "{\"faults\":{\"drop_rate\":1,\"for_s\":60}}"));
    struct http_conn c;
    struct http_resp r;
    ck_assert_int_eq(http_connect(&c, port), 0);
    ck_assert_int_eq(http_send(&c, "POST", "/buy", "Idempotency-Key: d1\r\n",
                               apple1, strlen(apple1)),
                     0);
    int e = http_read(&c, &r, false, 10000);
    ck_assert_msg(e == -EPIPE, "expected a close without answer, got %d", e);
    http_close(&c);
    cJSON_Delete(patch_ok(port, "{\"faults\":{\"drop_rate\":0}}"));
    ck_assert_int_eq(buy(port, "Idempotency-Key: d1\r\n", &r), 202);
    ck_assert_str_eq(http_header(&r, "Idempotent-Replayed"), "true");
    cJSON *j = resp_json(&r);
    ck_assert_int_eq((int)jnum(j, "order_id"), 1);
    cJSON_Delete(j);
    http_resp_free(&r);
    cJSON *st = invariants_ok(port);
    ck_assert_int_eq((int)jnum(st, "orders.accepted"), 1);
    ck_assert_int_eq((int)jnum(st, "floor.faults_injected.drop"), 1);
    cJSON_Delete(st);
}

START_TEST(test_e2e_floor_drop_rate)
{
    struct shopd *s = start_floor(NULL);
    drop_then_replay(shopd_port(s));
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_floor_drop_rate_sqlite)
{
    char *db = write_tmp("");
    char store[600];
    snprintf(store, sizeof store, "sqlite:%s.db", db);
    const char *const args[] = {"--store", store, "--sync", "normal", NULL};
    struct shopd *s = start_floor(args);
    drop_then_replay(shopd_port(s));
    shopd_destroy(s);
    unlink(db);
    free(db);
}
END_TEST

/* With a shared (Redis) store the elves are this instance's pool too:
 * workers and paused change it, the faults work, and a dropped keyed order
 * replays from the store. */
START_TEST(test_e2e_floor_redis)
{
    struct redis_server rs;
    int rc = redis_server_start(&rs, false);
    ck_assert_msg(rc == 0, "redis-server did not start: %s", strerror(-rc));
    const char *const args[] = {"--store", rs.url, "--workers", "2", NULL};
    struct shopd *s = start_floor(args);
    unsigned port = shopd_port(s);
    cJSON_Delete(patch_ok(port, "{\"workers\":4,\"faults\":null}"));
    cJSON *f = floor_get(port);
    ck_assert_int_eq((int)jnum(f, "workers"), 4);
    cJSON_Delete(f);
    cJSON *st = get_json_ok(port, "/stats");
    ck_assert_int_eq((int)jnum(st, "workers"), 4);
    cJSON_Delete(st);
    drop_then_replay(port);
    shopd_destroy(s);
    redis_server_destroy(&rs);
}
END_TEST

/* for_s: the faults end by themselves, and until says when. */
START_TEST(test_e2e_floor_for_s)
{
    struct shopd *s = start_floor(NULL);
    unsigned port = shopd_port(s);
    cJSON *f = patch_ok(port, "{\"faults\":{\"error_rate\":1,\"for_s\":1}}");
    ck_assert(is_rfc3339_utc(jstr(f, "faults.until")));
    cJSON_Delete(f);
    int64_t deadline = now_ms() + e2e_slow_ms(5000);
    int delay = 10;
    for (;;) {
        f = floor_get(port);
        bool ended = is_null_at(f, "faults.until");
        if (ended)
            ck_assert(jnum(f, "faults.error_rate") == 0);
        cJSON_Delete(f);
        if (ended)
            break;
        ck_assert_msg(now_ms() < deadline, "faults never ended");
        backoff_step(&delay, 100);
    }
    struct http_resp r;
    ck_assert_int_eq(buy(port, NULL, &r), 202);
    http_resp_free(&r);
    shopd_destroy(s);
}
END_TEST

/* Every fault set to 0 ends them at once; null ends them too. */
START_TEST(test_e2e_floor_zero_faults_end)
{
    struct shopd *s = start_floor(NULL);
    unsigned port = shopd_port(s);
    cJSON_Delete(patch_ok(port, "{\"faults\":{\"latency_ms\":50,"
                                "\"error_rate\":0.5,\"for_s\":600}}"));
    cJSON *f = patch_ok(port, "{\"faults\":{\"error_rate\":0}}");
    ck_assert_int_eq((int)jnum(f, "faults.latency_ms"), 50); /* merged */
    ck_assert(!is_null_at(f, "faults.until"));
    cJSON_Delete(f);
    f = patch_ok(port, "{\"faults\":{\"latency_ms\":0,\"error_rate\":0}}");
    ck_assert(is_null_at(f, "faults.until"));
    ck_assert_int_eq((int)jnum(f, "faults.latency_ms"), 0);
    cJSON_Delete(f);
    cJSON_Delete(patch_ok(port, "{\"faults\":{\"drop_rate\":0.5,"
                                "\"for_s\":600},\"workers\":3}"));
    f = patch_ok(port, "{\"faults\":null,\"workers\":null}");
    ck_assert(is_null_at(f, "faults.until"));
    ck_assert(jnum(f, "faults.drop_rate") == 0);
    cJSON_Delete(f);
    shopd_destroy(s);
}
END_TEST

/* --- the check order, bad fields, the token --------------------------------
 */

struct refusal {
    bool admin; /* started with a token */
    const char *method, *headers, *body;
    int status;
    const char *code, *names; /* the message names this */
};

static const struct refusal refusals[] = {
    {false, "DELETE", NULL, NULL, 405, "method_not_allowed", NULL},
    {true, "POST", AUTH, "{}", 405, "method_not_allowed", NULL},
    {false, "PATCH", AUTH, "{\"workers\":0}", 403, "admin_disabled", NULL},
    {true, "GET", NULL, NULL, 401, "unauthorized", NULL},
    {true, "PATCH", "Authorization: Bearer wrong-token-123456\r\n",
     "{\"workers\":0}", 401, "unauthorized", NULL},
    {true, "PATCH", AUTH, "{", 400, "invalid_json", NULL},
    {true, "PATCH", AUTH, "[1]", 400, "invalid_json", NULL},
    {true, "PATCH", AUTH, "{\"workers\":1,\"workers\":2}", 400, "invalid_json",
     NULL},
    {true, "PATCH", AUTH, "{\"workers\":0}", 400, "invalid_field",
     "'workers' must be an integer between 1 and 1024"},
    {true, "PATCH", AUTH, "{\"workers\":1025}", 400, "invalid_field",
     "workers"},
    {true, "PATCH", AUTH, "{\"workers\":2.5}", 400, "invalid_field", "workers"},
    {true, "PATCH", AUTH, "{\"workers\":\"2\"}", 400, "invalid_field",
     "workers"},
    {true, "PATCH", AUTH, "{\"work_ms\":60001}", 400, "invalid_field",
     "between 0 and 60000"},
    {true, "PATCH", AUTH, "{\"paused\":1}", 400, "invalid_field", "paused"},
    {true, "PATCH", AUTH, "{\"faults\":{\"latency_ms\":10001,\"for_s\":5}}",
     400, "invalid_field", "faults.latency_ms"},
    {true, "PATCH", AUTH, "{\"faults\":{\"error_rate\":1.5,\"for_s\":5}}", 400,
     "invalid_field", "faults.error_rate"},
    {true, "PATCH", AUTH, "{\"faults\":{\"drop_rate\":-0.1,\"for_s\":5}}", 400,
     "invalid_field", "faults.drop_rate"},
    {true, "PATCH", AUTH, "{\"faults\":{\"drop_rate\":0.1,\"for_s\":3601}}",
     400, "invalid_field", "faults.for_s"},
    {true, "PATCH", AUTH, "{\"faults\":{\"drop_rate\":0.1}}", 400,
     "invalid_field", "faults.for_s"},
    {true, "PATCH", AUTH, "{\"faults\":3}", 400, "invalid_field", "faults"},
    {true, "PATCH", AUTH, "{\"elves\":3}", 400, "invalid_field", "elves"},
};

START_TEST(test_e2e_floor_refused)
{
    const struct refusal *t = &refusals[_i];
    static const char *const env[] = {TOKEN_ENV, NULL};
    struct shopd *s = shopd_start(NULL, t->admin ? env : NULL);
    struct http_resp r;
    int e = http_do(shopd_port(s), t->method, "/admin/floor", t->headers,
                    t->body, t->body ? strlen(t->body) : 0, &r);
    ck_assert_int_eq(e, 0);
    const char *msg = expect_error(&r, t->status, t->code);
    if (t->status == 405)
        ck_assert_str_eq(http_header(&r, "Allow"), "GET, PATCH");
    if (t->status == 401)
        ck_assert_str_eq(http_header(&r, "WWW-Authenticate"), "Bearer");
    if (t->names != NULL)
        ck_assert_msg(strstr(msg, t->names) != NULL, "message '%s' lacks '%s'",
                      msg, t->names);
    ck_assert_ptr_null(strstr(r.body, TOKEN));
    http_resp_free(&r);
    shopd_destroy(s);
}
END_TEST

/* A patch with one bad field applies none of the good ones. */
START_TEST(test_e2e_floor_bad_field_applies_nothing)
{
    static const char *const args[] = {"--workers", "2", NULL};
    struct shopd *s = start_floor(args);
    unsigned port = shopd_port(s);
    struct http_resp r;
    patch(port, AUTH,
          "{\"workers\":6,\"paused\":true,\"work_ms\":5,"
          "\"faults\":{\"latency_ms\":5,\"error_rate\":2,\"for_s\":9}}",
          &r);
    expect_error(&r, 400, "invalid_field");
    http_resp_free(&r);
    cJSON *f = floor_get(port);
    ck_assert_int_eq((int)jnum(f, "workers"), 2);
    ck_assert_int_eq((int)jnum(f, "work_ms"), 0);
    ck_assert(cJSON_IsFalse(json_at(f, "paused")));
    ck_assert_int_eq((int)jnum(f, "faults.latency_ms"), 0);
    ck_assert(is_null_at(f, "faults.until"));
    cJSON_Delete(f);
    shopd_destroy(s);
}
END_TEST

/* One log line per change, with the client's address; the token nowhere:
 * not in the logs, /stats, /metrics or /admin/floor. */
START_TEST(test_e2e_floor_logs_without_token)
{
    struct shopd *s = start_floor(NULL);
    unsigned port = shopd_port(s);
    cJSON_Delete(patch_ok(port, "{\"workers\":4,\"work_ms\":3}"));
    cJSON_Delete(patch_ok(port, "{\"workers\":4}")); /* no change: no line */
    ck_assert(shopd_wait_output(s, "workers 2->4", 5000) ||
              shopd_wait_output(s, "->4", 1));
    const char *paths[] = {"/stats", "/metrics", "/admin/floor"};
    for (size_t i = 0; i < 3; i++) {
        struct http_resp r;
        ck_assert_int_eq(http_do(port, "GET", paths[i], AUTH, NULL, 0, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_ptr_null(strstr(r.body, TOKEN));
        http_resp_free(&r);
    }
    shopd_signal(s, SIGTERM);
    char *out = shopd_expect_exit(s, 20000, 0, "drain");
    ck_assert_ptr_null(strstr(out, TOKEN));
    ck_assert_msg(strstr(out, "floor changed by 127.0.0.1: workers") != NULL,
                  "no change line: %s", out);
    const char *first = strstr(out, "floor changed by");
    ck_assert_ptr_null(strstr(first + 1, "floor changed by"));
    free(out);
    shopd_destroy(s);
}
END_TEST

/* A drain ends the faults and un-pauses: every order on the belt is
 * processed; /admin/floor answers 503 shutting_down meanwhile. */
START_TEST(test_e2e_floor_drain_unpauses)
{
    static const char *const args[] = {"--workers", "1", "--work-ms", "150",
                                       NULL};
    struct shopd *s = start_floor(args);
    unsigned port = shopd_port(s);
    cJSON_Delete(patch_ok(port, "{\"paused\":true,\"faults\":{"
                                "\"latency_ms\":10000,\"for_s\":600}}"));
    cJSON_Delete(patch_ok(port, "{\"faults\":{\"latency_ms\":0}}"));
    struct http_resp r;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(buy(port, NULL, &r), 202);
        http_resp_free(&r);
    }
    shopd_signal(s, SIGTERM);
    ck_assert(shopd_wait_output(s, "draining", 5000));
    /* The drain line comes just before the shop stops accepting: poll
     * until the 503 (or the drain is already over and the server gone). */
    int64_t deadline = now_ms() + e2e_slow_ms(5000);
    int delay = 2;
    for (;;) {
        if (http_do(port, "GET", "/admin/floor", AUTH, NULL, 0, &r) != 0)
            break;
        bool done = r.status != 200;
        if (done)
            expect_error(&r, 503, "shutting_down");
        http_resp_free(&r);
        if (done)
            break;
        ck_assert_msg(now_ms() < deadline, "/admin/floor never 503");
        backoff_step(&delay, 20);
    }
    char *out = shopd_expect_exit(s, 20000, 0, "drain");
    ck_assert_msg(strstr(out, "processed=5") != NULL, "%s", out);
    free(out);
    shopd_destroy(s);
}
END_TEST

/* --- a hostile client, and resizes under load ----------------------------- */

struct flooder {
    unsigned port;
    unsigned seed;
    unsigned bad, good;
};

static const char *const flood_bodies[] = {
    "{\"workers\":3}",
    "{\"workers\":0}",
    "{\"paused\":true}",
    "{\"paused\":false}",
    "{\"work_ms\":1e9}",
    "{\"faults\":{\"error_rate\":0.01,\"for_s\":1}}",
    "{\"faults\":{\"error_rate\":0}}",
    "{\"faults\":[1,2,3]}",
    "{\"workers\":6,\"workers\":7}",
    "nonsense",
    "{\"workers\":2,\"faults\":{\"drop_rate\":\"x\"}}",
    "{\"faults\":{\"latency_ms\":1,\"for_s\":0}}",
    "",
    "{\"workers\":" /* truncated */,
};

static void *flood(void *arg)
{
    struct flooder *f = arg;
    size_t n = sizeof flood_bodies / sizeof *flood_bodies;
    for (int i = 0; i < 150; i++) {
        const char *body = flood_bodies[rand_r(&f->seed) % n];
        struct http_resp r;
        if (http_do(f->port, "PATCH", "/admin/floor", AUTH, body, strlen(body),
                    &r) != 0)
            continue;
        if (r.status == 200)
            f->good++;
        else if (r.status == 400)
            f->bad++;
        http_resp_free(&r);
    }
    return NULL;
}

START_TEST(test_e2e_floor_hostile_patch_flood)
{
    static const char *const args[] = {"--workers", "2", NULL};
    struct shopd *s = start_floor(args);
    unsigned port = shopd_port(s);
    struct flooder f[4];
    pthread_t t[4];
    for (unsigned i = 0; i < 4; i++) {
        f[i] = (struct flooder){.port = port, .seed = 7 + i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, flood, &f[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    unsigned good = 0, bad = 0;
    for (unsigned i = 0; i < 4; i++) {
        good += f[i].good;
        bad += f[i].bad;
    }
    ck_assert_uint_eq(good + bad, 600);
    cJSON_Delete(patch_ok(port, "{\"paused\":false,\"faults\":null}"));
    cJSON *fl = floor_get(port);
    int w = (int)jnum(fl, "workers");
    ck_assert(w == 2 || w == 3);
    cJSON_Delete(fl);
    struct http_resp r;
    ck_assert_int_eq(buy(port, NULL, &r), 202);
    http_resp_free(&r);
    cJSON_Delete(invariants_ok(port));
    shopd_destroy(s);
}
END_TEST

struct buyer {
    unsigned port;
    unsigned ok, full, n;
    uint64_t ids[400];
};

static void *buyer_main(void *arg)
{
    struct buyer *b = arg;
    struct http_conn c;
    if (http_connect(&c, b->port) != 0)
        return NULL;
    for (unsigned i = 0; i < b->n; i++) {
        struct http_resp r;
        if (http_roundtrip(&c, "POST", "/buy", NULL, apple1, strlen(apple1),
                           &r) != 0) {
            http_close(&c);
            if (http_connect(&c, b->port) != 0)
                return NULL;
            continue;
        }
        if (r.status == 202) {
            cJSON *j = resp_json(&r);
            const cJSON *id = j ? cJSON_GetObjectItem(j, "order_id") : NULL;
            if (cJSON_IsNumber(id) && b->ok < 400)
                b->ids[b->ok] = (uint64_t)id->valuedouble;
            b->ok++;
            cJSON_Delete(j);
        } else if (r.status == 503) {
            b->full++;
        }
        http_resp_free(&r);
    }
    http_close(&c);
    return NULL;
}

/* Four clients buy while the floor grows, shrinks, pauses and goes on;
 * afterwards every 202 is accounted for, exactly. */
static void resize_under_load(unsigned port, struct buyer *b)
{
    static const char *const steps[] = {
        "{\"workers\":1}",    "{\"workers\":8,\"paused\":true}",
        "{\"workers\":2}",    "{\"paused\":false,\"work_ms\":0}",
        "{\"workers\":6}",    "{\"workers\":1,\"work_ms\":1}",
        "{\"workers\":4}",    "{\"paused\":true,\"workers\":3}",
        "{\"paused\":false}",
    };
    pthread_t t[4];
    for (unsigned i = 0; i < 4; i++) {
        b[i] = (struct buyer){.port = port, .n = 150};
        ck_assert_int_eq(pthread_create(&t[i], NULL, buyer_main, &b[i]), 0);
    }
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
            cJSON_Delete(patch_ok(port, steps[i]));
    for (unsigned i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cJSON_Delete(patch_ok(port, "{\"paused\":false}"));
    cJSON *st = invariants_ok(port);
    unsigned ok = b[0].ok + b[1].ok + b[2].ok + b[3].ok;
    ck_assert_int_eq((int)jnum(st, "orders.accepted"), (int)ok);
    ck_assert_int_eq((int)jnum(st, "workers"), 3);
    const cJSON *inv = json_at(st, "inventory.apple");
    ck_assert_ptr_nonnull(inv);
    cJSON_Delete(st);
}

START_TEST(test_e2e_floor_resize_under_load)
{
    static const char *const args[] = {
        "--workers", "2", "--work-ms", "1", "--queue-capacity", "64", NULL};
    struct shopd *s = start_floor(args);
    static struct buyer b[4];
    resize_under_load(shopd_port(s), b);
    shopd_destroy(s);
}
END_TEST

/* The same over SQLite, then a restart: every 202'd order is final. */
START_TEST(test_e2e_floor_resize_under_load_sqlite)
{
    char *tmp = write_tmp("");
    char store[600];
    snprintf(store, sizeof store, "sqlite:%s.db", tmp);
    const char *const args[] = {
        "--workers",        "2",      "--work-ms", "1",
        "--queue-capacity", "64",     "--store",   store,
        "--sync",           "normal", NULL};
    struct shopd *s = start_floor(args);
    static struct buyer b[4];
    resize_under_load(shopd_port(s), b);
    shopd_signal(s, SIGTERM);
    free(shopd_expect_exit(s, 30000, 0, "drain"));
    shopd_destroy(s);

    s = start_floor(args);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (unsigned i = 0; i < 4; i++)
        for (unsigned k = 0; k < b[i].ok && k < 400; k++) {
            char path[48];
            snprintf(path, sizeof path, "/orders/%llu",
                     (unsigned long long)b[i].ids[k]);
            struct http_resp r;
            ck_assert_int_eq(http_roundtrip(&c, "GET", path, NULL, NULL, 0, &r),
                             0);
            ck_assert_msg(r.status == 200, "%s: %d", path, r.status);
            ck_assert_msg(strstr(r.body, "\"queued\"") == NULL,
                          "%s not final: %s", path, r.body);
            http_resp_free(&r);
        }
    http_close(&c);
    shopd_destroy(s);
    unlink(tmp);
    free(tmp);
}
END_TEST

/* The same over Redis: this instance's belt is fed from the shared
 * stream and the same pool's elves take from it while it is resized. */
START_TEST(test_e2e_floor_resize_under_load_redis)
{
    struct redis_server rs;
    int rc = redis_server_start(&rs, false);
    ck_assert_msg(rc == 0, "redis-server did not start: %s", strerror(-rc));
    const char *const args[] = {
        "--workers", "2",       "--work-ms", "1", "--queue-capacity",
        "64",        "--store", rs.url,      NULL};
    struct shopd *s = start_floor(args);
    static struct buyer b[4];
    resize_under_load(shopd_port(s), b);
    shopd_destroy(s);
    redis_server_destroy(&rs);
}
END_TEST

Suite *e2e_floor_suite(void)
{
    Suite *s = suite_create("e2e_floor");
    TCase *rows = tcase_create("rows");
    tcase_add_checked_fixture(rows, NULL, e2e_teardown);
    tcase_set_timeout(rows, 60);
    tcase_add_test(rows, test_e2e_floor_get);
    tcase_add_test(rows, test_e2e_floor_workers);
    tcase_add_test(rows, test_e2e_floor_work_ms);
    tcase_add_test(rows, test_e2e_floor_paused);
    tcase_add_test(rows, test_e2e_floor_latency);
    tcase_add_test(rows, test_e2e_floor_error_rate);
    tcase_add_test(rows, test_e2e_floor_drop_rate);
    tcase_add_test(rows, test_e2e_floor_drop_rate_sqlite);
    tcase_add_test(rows, test_e2e_floor_redis);
    tcase_add_test(rows, test_e2e_floor_for_s);
    tcase_add_test(rows, test_e2e_floor_zero_faults_end);
    suite_add_tcase(s, rows);

    TCase *checks = tcase_create("checks");
    tcase_add_checked_fixture(checks, NULL, e2e_teardown);
    tcase_set_timeout(checks, 60);
    tcase_add_loop_test(checks, test_e2e_floor_refused, 0,
                        sizeof refusals / sizeof *refusals);
    tcase_add_test(checks, test_e2e_floor_bad_field_applies_nothing);
    tcase_add_test(checks, test_e2e_floor_logs_without_token);
    tcase_add_test(checks, test_e2e_floor_drain_unpauses);
    suite_add_tcase(s, checks);

    TCase *load = tcase_create("load");
    tcase_add_checked_fixture(load, NULL, e2e_teardown);
    tcase_set_timeout(load, 120);
    tcase_add_test(load, test_e2e_floor_hostile_patch_flood);
    tcase_add_test(load, test_e2e_floor_resize_under_load);
    tcase_add_test(load, test_e2e_floor_resize_under_load_sqlite);
    tcase_add_test(load, test_e2e_floor_resize_under_load_redis);
    suite_add_tcase(s, load);
    return s;
}
