/*
 * e2e_lifecycle.c - start-up and shutdown of the real binary (SPEC §3):
 * logs on stderr, SIGTERM/SIGINT drain, a second signal, the drain timeout,
 * and open connections that must not hold the exit up.
 */
#include "tests/e2e/suites.h"

#include <errno.h>
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

static const char catalog[] =
    "{\"products\":["
    "{\"sku\":\"apple\",\"name\":\"Apple\",\"price_cents\":50,\"stock\":10},"
    "{\"sku\":\"pear\",\"name\":\"Pear\",\"price_cents\":75,\"stock\":100}]}";

static struct shopd *start_cat(char **path, const char *const *extra)
{
    return shopd_start_catalog(catalog, path, extra);
}

static void stop_cat(struct shopd *s, char *path)
{
    shopd_stop_catalog(s, path);
}

/* Poll /readyz until it answers 503 (the signal has been handled). */
static void wait_not_ready(unsigned port)
{
    int64_t deadline = now_ms() + 15000;
    int delay = 1;
    for (;;) {
        struct http_resp r;
        int e = http_do(port, "GET", "/readyz", NULL, NULL, 0, &r);
        ck_assert_msg(e == 0, "GET /readyz during drain: %s", strerror(-e));
        int st = r.status;
        http_resp_free(&r);
        if (st == 503)
            return;
        ck_assert_msg(st == 200, "/readyz answered %d", st);
        ck_assert_msg(now_ms() < deadline,
                      "/readyz still 200 15 s after the signal");
        backoff_step(&delay, 20);
    }
}

/* An IPv6 listen address is logged as [ADDR]:PORT, as URLs write it. */
START_TEST(test_e2e_life_logs_ipv6_in_brackets)
{
    static const char *const args[] = {"--bind", "::1", "--port", "0", NULL};
    struct shopd *s = shopd_spawn(args, NULL, false);
    ck_assert_ptr_nonnull(s);
    bool listened = shopd_wait_output(s, "listening on", 15000);
    char *err = shopd_stderr(s);
    shopd_signal(s, SIGTERM);
    shopd_wait_exit(s, 10000);
    shopd_destroy(s);
    if (listened) /* a machine without IPv6 loopback cannot bind ::1 */
        ck_assert_msg(strstr(err, "listening on [::1]:") != NULL,
                      "no bracketed address: %.300s", err);
    else
        ck_assert_msg(strstr(err, "::1") != NULL, "stderr: %.300s", err);
    free(err);
}
END_TEST

START_TEST(test_e2e_life_logs_to_stderr)
{
    struct shopd *s = shopd_start(NULL, NULL);
    char *err = shopd_stderr(s);
    char *out = shopd_stdout(s);
    char want[64];
    snprintf(want, sizeof want, "listening on 127.0.0.1:%u", shopd_port(s));
    ck_assert_msg(strstr(err, want) != NULL,
                  "'%s' is not on stderr (stderr: %.300s stdout: %.300s)", want,
                  err, out);
    ck_assert_msg(strstr(out, "listening") == NULL,
                  "the listening line went to stdout");
    free(err);
    free(out);
    /* The port really is the one we talk to. */
    cJSON_Delete(get_json_ok(shopd_port(s), "/healthz"));
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_life_sigterm_drain)
{
    /* 16 orders of 300 ms on one worker: the drain lasts ~5 s. */
    static const char *const extra[] = {
        "--workers", "1", "--work-ms", "300", "--queue-capacity", "64", NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, extra);
    unsigned port = shopd_port(s);
    struct http_conn keep;
    ck_assert_int_eq(http_connect(&keep, port), 0);
    for (uint64_t i = 1; i <= 16; i++)
        ck_assert_int_eq(
            buy_ok(&keep, "{\"product\":\"apple\",\"quantity\":1}"), i);

    shopd_signal(s, SIGTERM);
    wait_not_ready(port);

    /* New orders: 503 shutting_down, Connection: close. */
    struct http_conn c;
    struct http_resp r;
    ck_assert_int_eq(http_connect(&c, port), 0);
    const char *body = "{\"product\":\"apple\",\"quantity\":1}";
    ck_assert_int_eq(
        http_roundtrip(&c, "POST", "/buy", NULL, body, strlen(body), &r), 0);
    expect_error(&r, 503, "shutting_down");
    ck_assert_msg(http_says_close(&r),
                  "503 shutting_down without Connection: close");
    http_resp_free(&r);
    ck_assert_msg(http_wait_closed(&c, 10000) == 0,
                  "connection not closed after Connection: close");
    http_close(&c);
    /* Also on a keep-alive connection opened before the signal. */
    ck_assert_int_eq(
        http_roundtrip(&keep, "POST", "/buy", NULL, body, strlen(body), &r), 0);
    expect_error(&r, 503, "shutting_down");
    http_resp_free(&r);
    http_close(&keep);

    /* Reads keep working while the belt drains. */
    cJSON *j = get_json_ok(port, "/healthz");
    ck_assert_str_eq(jstr(j, "status"), "ok");
    cJSON_Delete(j);
    j = get_json_ok(port, "/stats");
    ck_assert_msg(cJSON_IsTrue(json_at(j, "draining")),
                  "/stats draining is not true during the drain");
    ck_assert_msg(jnum(j, "orders.accepted") == 16, "accepted %g",
                  jnum(j, "orders.accepted"));
    cJSON_Delete(j);
    j = get_json_ok(port, "/orders/16");
    ck_assert_msg(jnum(j, "order_id") == 16, "order 16");
    cJSON_Delete(j);
    j = get_json_ok(port, "/products/apple");
    cJSON_Delete(j);

    char *err = shopd_expect_exit(s, 30000, 0, "SIGTERM drain");
    ck_assert_msg(strstr(err, "drained") != NULL, "no 'drained' line: %.500s",
                  err);
    ck_assert_msg(log_field(err, "accepted=") == 16, "accepted= in %.500s",
                  err);
    ck_assert_msg(log_field(err, "processed=") == 16, "processed= in %.500s",
                  err);
    ck_assert_msg(log_field(err, "fulfilled=") == 10, "fulfilled= in %.500s",
                  err);
    ck_assert_msg(log_field(err, "out_of_stock=") == 6,
                  "out_of_stock= in %.500s", err);
    ck_assert_msg(log_field(err, "left=") == 0, "left= in %.500s", err);
    free(err);
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_life_sigint_drain)
{
    static const char *const extra[] = {"--workers", "2", NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, extra);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (int i = 0; i < 3; i++)
        buy_ok(&c, "{\"product\":\"pear\",\"quantity\":2}");
    http_close(&c);
    shopd_signal(s, SIGINT);
    char *err = shopd_expect_exit(s, 20000, 0, "SIGINT drain");
    ck_assert_msg(strstr(err, "drained") != NULL, "no 'drained': %.500s", err);
    ck_assert_msg(
        log_field(err, "accepted=") == 3 && log_field(err, "processed=") == 3 &&
            log_field(err, "fulfilled=") == 3 && log_field(err, "left=") == 0,
        "final line: %.500s", err);
    free(err);
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_life_idle_sigterm)
{
    struct shopd *s = shopd_start(NULL, NULL);
    shopd_signal(s, SIGTERM);
    char *err = shopd_expect_exit(s, 20000, 0, "idle SIGTERM");
    ck_assert_msg(strstr(err, "drained") != NULL &&
                      log_field(err, "accepted=") == 0 &&
                      log_field(err, "processed=") == 0,
                  "final line: %.500s", err);
    free(err);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_life_second_signal)
{
    /* The drain would take 8 x 5 s; the second signal must not wait. */
    static const char *const extra[] = {"--workers", "1", "--work-ms", "5000",
                                        NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, extra);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (int i = 0; i < 8; i++)
        buy_ok(&c, "{\"product\":\"pear\",\"quantity\":1}");
    http_close(&c);
    shopd_signal(s, SIGTERM);
    wait_not_ready(port);
    ck_assert_msg(shopd_running(s), "exited before the second signal");
    /* Later than 100 ms after the first: a second request (SPEC §3). */
    backoff_ms(150);
    shopd_signal(s, SIGTERM);
    int st = shopd_wait_exit(s, 20000);
    ck_assert_msg(st != -1, "a second SIGTERM did not end the drain");
    ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  "a second signal exited 0; want non-zero");
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_life_drain_timeout)
{
    static const char *const extra[] = {
        "--workers", "1", "--work-ms", "1000", "--drain-timeout", "1", NULL};
    char *cat;
    struct shopd *s = start_cat(&cat, extra);
    unsigned port = shopd_port(s);
    struct http_conn c;
    ck_assert_int_eq(http_connect(&c, port), 0);
    for (int i = 0; i < 8; i++)
        buy_ok(&c, "{\"product\":\"pear\",\"quantity\":1}");
    http_close(&c);
    shopd_signal(s, SIGTERM);
    int st = shopd_wait_exit(s, 30000);
    char *err = shopd_stderr(s);
    ck_assert_msg(st != -1,
                  "did not exit after the drain timeout; stderr "
                  "%.500s",
                  err);
    ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  "exit 0 although orders were left; stderr %.500s", err);
    long left = log_field(err, "left=");
    ck_assert_msg(left > 0 && left <= 8, "left=%ld in %.500s", left, err);
    free(err);
    stop_cat(s, cat);
}
END_TEST

START_TEST(test_e2e_life_open_connections)
{
    /* Idle keep-alive, a half-sent request and an /events stream must not
     * hold up the exit (default --conn-timeout is 30 s). */
    struct shopd *s = shopd_start(NULL, NULL);
    unsigned port = shopd_port(s);
    struct http_conn ev, keep, partial;
    struct http_resp r;
    ck_assert_int_eq(http_connect(&ev, port), 0);
    ck_assert_int_eq(http_send(&ev, "GET", "/events", NULL, NULL, 0), 0);
    ck_assert_int_eq(http_read_head(&ev, &r, E2E_IO_TIMEOUT_MS), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    char *first;
    ck_assert_int_eq(http_read_until(&ev, "\n\n", &first, E2E_IO_TIMEOUT_MS),
                     0);
    free(first);
    ck_assert_int_eq(http_connect(&keep, port), 0);
    ck_assert_int_eq(
        http_roundtrip(&keep, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    ck_assert_int_eq(http_connect(&partial, port), 0);
    const char *half = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    ck_assert_int_eq(http_send_raw(&partial, half, strlen(half)), 0);

    shopd_signal(s, SIGTERM);
    free(shopd_expect_exit(s, 20000, 0, "SIGTERM with open connections"));
    ck_assert_int_eq(http_wait_closed(&ev, 5000), 0);
    ck_assert_int_eq(http_wait_closed(&keep, 5000), 0);
    http_close(&ev);
    http_close(&keep);
    http_close(&partial);
    shopd_destroy(s);
}
END_TEST

/* `shopd --probe URL`: the container health check, without curl. */
START_TEST(test_e2e_life_probe)
{
    struct shopd *s = shopd_start(NULL, NULL);
    char ok[96], missing[96], closed[96];
    snprintf(ok, sizeof ok, "http://127.0.0.1:%u/healthz", shopd_port(s));
    snprintf(missing, sizeof missing, "http://127.0.0.1:%u/nope",
             shopd_port(s));
    unsigned port = 0;
    int fd = listen_any(&port); /* bound, then closed: nobody listens */
    ck_assert_int_ge(fd, 0);
    close(fd);
    snprintf(closed, sizeof closed, "http://127.0.0.1:%u/healthz", port);

    const char *const a_ok[] = {"--probe", ok, NULL};
    const char *const a_missing[] = {"--probe", missing, NULL};
    const char *const a_closed[] = {"--probe", closed, NULL};
    const char *const a_bad[] = {"--probe", "ftp://x/", NULL};
    char *err = NULL;
    int st = shopd_run(a_ok, NULL, 10000, NULL, &err);
    expect_exit_code(st, 0, "probe of /healthz", err);
    free(err);
    const char *const *fails[] = {a_missing, a_closed, a_bad};
    for (size_t i = 0; i < 3; i++) {
        err = NULL;
        st = shopd_run(fails[i], NULL, 10000, NULL, &err);
        expect_exit_code(st, 1, fails[i][1], err);
        ck_assert_msg(err != NULL && strstr(err, "probe") != NULL,
                      "probe failure says nothing: %s", err ? err : "");
        free(err);
    }

    /* Without a URL it probes /healthz on SHOPD_PORT. */
    char envport[32];
    snprintf(envport, sizeof envport, "SHOPD_PORT=%u", shopd_port(s));
    const char *const env[] = {envport, NULL};
    const char *const a_default[] = {"--probe", NULL};
    st = shopd_run(a_default, env, 10000, NULL, NULL);
    expect_exit_code(st, 0, "probe with SHOPD_PORT", NULL);
    shopd_destroy(s);
}
END_TEST

Suite *e2e_lifecycle_suite(void)
{
    Suite *s = suite_create("e2e_lifecycle");
    TCase *tc = tcase_create("lifecycle");
    tcase_add_checked_fixture(tc, NULL, e2e_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_e2e_life_logs_to_stderr);
    tcase_add_test(tc, test_e2e_life_logs_ipv6_in_brackets);
    tcase_add_test(tc, test_e2e_life_probe);
    tcase_add_test(tc, test_e2e_life_sigterm_drain);
    tcase_add_test(tc, test_e2e_life_sigint_drain);
    tcase_add_test(tc, test_e2e_life_idle_sigterm);
    tcase_add_test(tc, test_e2e_life_second_signal);
    tcase_add_test(tc, test_e2e_life_drain_timeout);
    tcase_add_test(tc, test_e2e_life_open_connections);
    suite_add_tcase(s, tc);
    return s;
}
