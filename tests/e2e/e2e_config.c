/*
 * e2e_config.c - settings against the real binary (SPEC §4): bad values
 * exit 2 with one line naming the setting before the port is bound,
 * --help/--version, a port in use, precedence defaults < file < env < flags.
 */
#include "tests/e2e/suites.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/clock.h"
#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/process.h"

/* What a bad-configuration case writes to a temporary file. */
enum tmp_kind {
    TMP_NONE = 0,
    TMP_CATALOG, /* passed as --catalog FILE */
    TMP_CONFIG,  /* passed as --config FILE */
};

struct bad_case {
    const char *args[6]; /* after --bind 127.0.0.1 --port 0 */
    const char *env[3];  /* extra environment */
    enum tmp_kind kind;
    const char *content;  /* of the temporary file */
    const char *names[3]; /* the line must contain one of these */
};

static const struct bad_case bad_cases[] = {
    {{"--port", "abc"}, {NULL}, TMP_NONE, NULL, {"--port"}},
    {{"--port", "70000"}, {NULL}, TMP_NONE, NULL, {"--port"}},
    {{"--port", "-1"}, {NULL}, TMP_NONE, NULL, {"--port"}},
    {{"--port"}, {NULL}, TMP_NONE, NULL, {"--port"}},
    {{"--workers", "0"}, {NULL}, TMP_NONE, NULL, {"--workers"}},
    {{"--workers", "4x"}, {NULL}, TMP_NONE, NULL, {"--workers"}},
    {{"--workers", "99999999999999999999"},
     {NULL},
     TMP_NONE,
     NULL,
     {"--workers"}},
    {{"--workers", ""}, {NULL}, TMP_NONE, NULL, {"--workers"}},
    {{"--queue-capacity", "-1"}, {NULL}, TMP_NONE, NULL, {"--queue-capacity"}},
    {{"--queue-capacity", "0"}, {NULL}, TMP_NONE, NULL, {"--queue-capacity"}},
    {{"--max-body", "x"}, {NULL}, TMP_NONE, NULL, {"--max-body"}},
    {{"--work-ms", "1.5"}, {NULL}, TMP_NONE, NULL, {"--work-ms"}},
    {{"--drain-timeout", "-5"}, {NULL}, TMP_NONE, NULL, {"--drain-timeout"}},
    {{"--max-quantity", "0"}, {NULL}, TMP_NONE, NULL, {"--max-quantity"}},
    {{"--order-history", "0"}, {NULL}, TMP_NONE, NULL, {"--order-history"}},
    {{"--log-format", "xml"}, {NULL}, TMP_NONE, NULL, {"--log-format"}},
    {{"--bind", "not-an-address"}, {NULL}, TMP_NONE, NULL, {"--bind"}},
    {{"--bogus"}, {NULL}, TMP_NONE, NULL, {"--bogus"}},
    {{"--bogus=1"}, {NULL}, TMP_NONE, NULL, {"--bogus"}},
    {{"extra-positional"}, {NULL}, TMP_NONE, NULL, {"extra-positional"}},
    {{NULL}, {"SHOPD_WORKERS=x"}, TMP_NONE, NULL, {"SHOPD_WORKERS"}},
    {{NULL}, {"SHOPD_MAX_BODY=-1"}, TMP_NONE, NULL, {"SHOPD_MAX_BODY"}},
    {{NULL},
     {"SHOPD_QUEUE_CAPACITY=0"},
     TMP_NONE,
     NULL,
     {"SHOPD_QUEUE_CAPACITY"}},
    {{"--config", "/nonexistent/shopd.json"},
     {NULL},
     TMP_NONE,
     NULL,
     {"config"}},
    {{"--catalog", "/nonexistent/catalog.json"},
     {NULL},
     TMP_NONE,
     NULL,
     {"catalog"}},
    {{NULL}, {NULL}, TMP_CONFIG, "{\"bogus_key\":1}", {"bogus_key"}},
    {{NULL}, {NULL}, TMP_CONFIG, "{\"workers\":\"many\"}", {"workers"}},
    {{NULL}, {NULL}, TMP_CONFIG, "{\"workers\":0}", {"workers"}},
    {{NULL}, {NULL}, TMP_CONFIG, "{\"port\":8080", {"config"}},
    {{NULL}, {NULL}, TMP_CONFIG, "[1,2]", {"config"}},
    {{NULL},
     {NULL},
     TMP_CATALOG,
     "{\"products\":[{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":1,"
     "\"stock\":1},{\"sku\":\"a\",\"name\":\"B\",\"price_cents\":1,"
     "\"stock\":1}]}",
     {"catalog"}},
    {{NULL},
     {NULL},
     TMP_CATALOG,
     "{\"products\":[{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":1,"
     "\"stock\":-1}]}",
     {"catalog"}},
    {{NULL},
     {NULL},
     TMP_CATALOG,
     "{\"products\":[{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":-1,"
     "\"stock\":1}]}",
     {"catalog"}},
    {{NULL},
     {NULL},
     TMP_CATALOG,
     "{\"products\":[{\"sku\":\"bad sku!\",\"name\":\"A\","
     "\"price_cents\":1,\"stock\":1}]}",
     {"catalog"}},
    {{NULL},
     {NULL},
     TMP_CATALOG,
     "{\"products\":[{\"sku\":\"\",\"name\":\"A\",\"price_cents\":1,"
     "\"stock\":1}]}",
     {"catalog"}},
    {{NULL}, {NULL}, TMP_CATALOG, "{\"products\":[]}", {"catalog"}},
    {{NULL}, {NULL}, TMP_CATALOG, "{\"items\":[]}", {"catalog"}},
    {{NULL}, {NULL}, TMP_CATALOG, "{\"products\":[", {"catalog"}},
    {{NULL}, {NULL}, TMP_CATALOG, "", {"catalog"}},
    {{NULL},
     {NULL},
     TMP_CATALOG,
     "{\"products\":[{\"sku\":\"a\",\"name\":\"A\",\"price_cents\":1,"
     "\"stock\":1.5}]}",
     {"catalog"}},
    {{NULL},
     {NULL},
     TMP_CATALOG,
     "{\"products\":[{\"sku\":\"a\",\"price_cents\":1,\"stock\":1}]}",
     {"catalog"}},
};

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(test_e2e_config_bad)
{
    const struct bad_case *bc = &bad_cases[_i];
    const char *args[12];
    size_t n = 0;
    char *tmp = NULL;
    if (bc->kind != TMP_NONE) {
        tmp = write_tmp(bc->content);
        args[n++] = bc->kind == TMP_CATALOG ? "--catalog" : "--config";
        args[n++] = tmp;
    }
    for (size_t i = 0; i < 6 && bc->args[i]; i++)
        args[n++] = bc->args[i];
    args[n] = NULL;
    char what[256] = "";
    for (size_t i = 0; i < n; i++) {
        strncat(what, args[i] == tmp ? "FILE" : args[i],
                sizeof what - strlen(what) - 2);
        strncat(what, " ", sizeof what - strlen(what) - 1);
    }
    if (bc->env[0])
        strncat(what, bc->env[0], sizeof what - strlen(what) - 1);
    if (bc->content) {
        strncat(what, " file: ", sizeof what - strlen(what) - 1);
        strncat(what, bc->content, sizeof what - strlen(what) - 1);
    }

    struct shopd *s = shopd_spawn(args, bc->env, false);
    ck_assert_ptr_nonnull(s);
    /* Either it logs "listening" (wrong) or it exits (pipes close). */
    bool listened = shopd_wait_output(s, "listening on", 15000);
    int st = shopd_wait_exit(s, listened ? 0 : 10000);
    char *err = shopd_stderr(s);
    char *out = shopd_stdout(s);
    shopd_destroy(s);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    ck_assert_msg(!listened,
                  "[%s] was accepted and the server listened; "
                  "stderr: %.300s",
                  what, err);
    expect_exit_code(st, 2, what, err);
    bool named = false;
    for (size_t i = 0; i < 3 && bc->names[i]; i++)
        named = named || strstr(err, bc->names[i]) != NULL;
    ck_assert_msg(named, "[%s] stderr does not name '%s': %.300s", what,
                  bc->names[0], err);
    ck_assert_msg(count_lines(err) == 1 && err[strlen(err) - 1] == '\n',
                  "[%s] stderr is not exactly one line: '%.400s'", what, err);
    ck_assert_msg(out[0] == '\0', "[%s] wrote to stdout: %.200s", what, out);
    free(err);
    free(out);
}
END_TEST

/* A settings file that is not a regular file is a bad value: one line,
 * exit 2, and never a hang (a FIFO with no writer blocked open() before). */
static const char *const file_flags[] = {
    "--catalog", "--config", "--admin-token-file", "--redis-password-file"};

START_TEST(test_e2e_config_not_regular_file)
{
    const char *flag = file_flags[_i / 2];
    bool fifo = _i % 2 == 0;
    char *path = write_tmp("");
    ck_assert_int_eq(unlink(path), 0);
    if (fifo)
        ck_assert_int_eq(mkfifo(path, 0600), 0);
    else
        ck_assert_int_eq(mkdir(path, 0700), 0);
    const char *const args[] = {"--bind", "127.0.0.1", "--port", "0",
                                flag,     path,        NULL};
    char *err = NULL, *out = NULL;
    int st = shopd_run(args, NULL, 10000, &out, &err);
    if (fifo)
        unlink(path);
    else
        rmdir(path);
    char what[96];
    snprintf(what, sizeof(what), "%s a %s", flag, fifo ? "FIFO" : "directory");
    ck_assert_msg(st != -1, "[%s] shopd hung", what);
    expect_exit_code(st, 2, what, err);
    ck_assert_msg(strstr(err, flag) != NULL &&
                      strstr(err, "not a regular file") != NULL,
                  "[%s] stderr: %.300s", what, err);
    ck_assert_msg(count_lines(err) == 1, "[%s] not one line: %.400s", what,
                  err);
    free(path);
    free(err);
    free(out);
}
END_TEST

/* A Redis password written in --store on the command line shows in ps:
 * one warning, never the password; from SHOPD_STORE, no warning. (No
 * Redis listens on port 1: shopd then exits, after the warning.) */
START_TEST(test_e2e_config_redis_password_warning)
{
    static const char *const argv_store[] = {
        "--bind", "127.0.0.1", "--port",
        "0",      "--store",   "redis://:pw-S3cr3t-9@127.0.0.1:1/0",
        NULL};
    static const char *const plain[] = {"--bind", "127.0.0.1", "--port", "0",
                                        NULL};
    static const char *const env[] = {
        "SHOPD_STORE=redis://:pw-S3cr3t-9@127.0.0.1:1/0", NULL};
    const char *warn = "visible to every local user";
    char *err = NULL;
    shopd_run(argv_store, NULL, 20000, NULL, &err);
    const char *w = strstr(err, warn);
    ck_assert_msg(w != NULL && strstr(w + 1, warn) == NULL,
                  "not exactly one warning: %.600s", err);
    ck_assert_msg(strstr(err, "pw-S3cr3t-9") == NULL,
                  "the password was logged: %.600s", err);
    free(err);
    shopd_run(plain, env, 20000, NULL, &err);
    ck_assert_msg(strstr(err, warn) == NULL, "warned about SHOPD_STORE: %.600s",
                  err);
    ck_assert_msg(strstr(err, "pw-S3cr3t-9") == NULL,
                  "the password was logged: %.600s", err);
    free(err);
}
END_TEST

/* A catalog of 100,000 products loads in under 2 s (SPEC §4; the
 * duplicate check was O(n^2): 24 s on main), and /stats and /metrics
 * stay small: the first 1000 products one by one, and the count. A slow
 * run (valgrind, sanitizers) uses 20,000 products, bound times E2E_SLOW. */
START_TEST(test_e2e_config_large_catalog)
{
    int slow = e2e_slow();
    size_t n = slow > 1 ? 20000 : 100000;
    char *json = catalog_json_of(n);
    int64_t t0 = now_ms();
    char *path;
    struct shopd *s = shopd_start_catalog(json, &path, NULL);
    int64_t took = now_ms() - t0;
    free(json);
    printf("e2e_config: %zu products: listening after %lld ms\n", n,
           (long long)took);
    ck_assert_msg(took < 2000 * slow, "%zu products took %lld ms to load", n,
                  (long long)took);
    unsigned port = shopd_port(s);
    struct http_resp r;
    ck_assert_int_eq(http_do(port, "GET", "/stats", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(r.body_len < 256 * 1024, "/stats is %zu bytes", r.body_len);
    cJSON *st = resp_json(&r);
    ck_assert_ptr_nonnull(st);
    ck_assert(jnum(st, "inventory_total") == (double)n);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(st, "inventory_truncated")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(st, "inventory")),
                     1000);
    cJSON_Delete(st);
    http_resp_free(&r);
    ck_assert_int_eq(http_do(port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(r.body_len < 512 * 1024, "/metrics is %zu bytes", r.body_len);
    http_resp_free(&r);
    shopd_stop_catalog(s, path);
}
END_TEST

START_TEST(test_e2e_config_bad_before_bind)
{
    /* The port is taken: a config error must win (exit 2, names --workers),
     * proving validation happens before the bind. */
    unsigned port;
    int fd = listen_any(&port);
    ck_assert_int_ge(fd, 0);
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    const char *const args[] = {"--bind",    "127.0.0.1", "--port", ps,
                                "--workers", "0",         NULL};
    char *err;
    int st = shopd_run(args, NULL, 10000, NULL, &err);
    close(fd);
    expect_exit_code(st, 2, "--workers 0 on a taken port", err);
    ck_assert_msg(strstr(err, "--workers") != NULL, "stderr: %.300s", err);
    free(err);
}
END_TEST

START_TEST(test_e2e_config_port_in_use)
{
    unsigned port;
    int fd = listen_any(&port);
    ck_assert_int_ge(fd, 0);
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    const char *const args[] = {"--bind", "127.0.0.1", "--port", ps, NULL};
    char *err, *out;
    int st = shopd_run(args, NULL, 15000, &out, &err);
    close(fd);
    ck_assert_msg(st != -1, "shopd did not exit although port %s is taken", ps);
    ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  "exit status 0 although port %s is taken", ps);
    ck_assert_msg(strstr(err, "listening on") == NULL,
                  "claims to listen on a taken port: %.300s", err);
    ck_assert_msg(strstr(err, ps) || strstr(err, "in use"),
                  "the error does not say the port is in use: %.300s", err);
    free(err);
    free(out);
}
END_TEST

START_TEST(test_e2e_config_help)
{
    static const char *const names[] = {
        "--bind",
        "--port",
        "--workers",
        "--queue-capacity",
        "--http-threads",
        "--work-ms",
        "--catalog",
        "--max-body",
        "--max-quantity",
        "--order-history",
        "--max-connections",
        "--conn-timeout",
        "--drain-timeout",
        "--log-format",
        "--config",
        "--unsafe-inventory",
        "--help",
        "--version",
        "SHOPD_BIND",
        "SHOPD_PORT",
        "SHOPD_WORKERS",
        "SHOPD_QUEUE_CAPACITY",
        "SHOPD_HTTP_THREADS",
        "SHOPD_WORK_MS",
        "SHOPD_CATALOG",
        "SHOPD_MAX_BODY",
        "SHOPD_MAX_QUANTITY",
        "SHOPD_ORDER_HISTORY",
        "SHOPD_MAX_CONNECTIONS",
        "SHOPD_CONN_TIMEOUT",
        "SHOPD_DRAIN_TIMEOUT",
        "SHOPD_LOG_FORMAT",
        "SHOPD_CONFIG",
        "SHOPD_UNSAFE_INVENTORY",
        /* defaults */
        "8080",
        "1024",
        "4096",
        "65536",
        "10000",
        "0.0.0.0",
    };
    static const char *const args[] = {"--help", NULL};
    char *out, *err;
    int st = shopd_run(args, NULL, 10000, &out, &err);
    expect_exit_code(st, 0, "--help", err);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        ck_assert_msg(strstr(out, names[i]) != NULL,
                      "--help (stdout) does not mention %s", names[i]);
    ck_assert_msg(strstr(out, "listening") == NULL &&
                      strstr(err, "listening") == NULL,
                  "--help started the server");
    free(out);
    free(err);
}
END_TEST

START_TEST(test_e2e_config_version)
{
    static const char *const args[] = {"--version", NULL};
    char *out, *err;
    int st = shopd_run(args, NULL, 10000, &out, &err);
    expect_exit_code(st, 0, "--version", err);
    ck_assert_msg(strpbrk(out, "0123456789") != NULL,
                  "--version printed no version on stdout: '%s'", out);
    ck_assert_msg(count_lines(out) == 1, "--version is not one line: '%s'",
                  out);
    free(out);
    free(err);
}
END_TEST

static double stats_workers(const char *const *args, const char *const *env)
{
    struct shopd *s = shopd_start(args, env);
    cJSON *j = get_json_ok(shopd_port(s), "/stats");
    double w = jnum(j, "workers");
    cJSON_Delete(j);
    shopd_destroy(s);
    return w;
}

START_TEST(test_e2e_config_precedence)
{
    char *file = write_tmp("{\"workers\":3,\"queue_capacity\":33}");
    const char *const a_file[] = {"--config", file, NULL};
    const char *const a_flag[] = {"--config", file, "--workers", "1", NULL};
    const char *const env[] = {"SHOPD_WORKERS=2", NULL};

    double w = stats_workers(NULL, NULL);
    ck_assert_msg(w >= 1, "default workers %g", w);
    w = stats_workers(a_file, NULL);
    ck_assert_msg(w == 3, "file: workers %g, want 3", w);
    w = stats_workers(a_file, env);
    ck_assert_msg(w == 2, "file < env: workers %g, want 2", w);
    w = stats_workers(a_flag, env);
    ck_assert_msg(w == 1, "env < flag: workers %g, want 1", w);

    /* Settings the file gives and nobody overrides stay. */
    struct shopd *s = shopd_start(a_flag, env);
    cJSON *j = get_json_ok(shopd_port(s), "/stats");
    ck_assert_msg(jnum(j, "queue.capacity") == 33, "capacity %g, want 33",
                  jnum(j, "queue.capacity"));
    cJSON_Delete(j);
    shopd_destroy(s);
    unlink(file);
    free(file);
}
END_TEST

START_TEST(test_e2e_config_file_and_env)
{
    char *file = write_tmp("{\"max_quantity\":3,\"queue_capacity\":7,"
                           "\"http_threads\":1}");
    const char *const args[] = {"--config", file, NULL};
    const char *const env[] = {"SHOPD_MAX_BODY=50", NULL};
    struct shopd *s = shopd_start(args, env);
    unsigned port = shopd_port(s);
    cJSON *j = get_json_ok(port, "/stats");
    ck_assert_msg(jnum(j, "queue.capacity") == 7, "capacity");
    ck_assert_msg(jnum(j, "http_threads") == 1, "http_threads");
    char sku[80];
    snprintf(sku, sizeof sku, "%s", json_at(j, "inventory")->child->string);
    cJSON_Delete(j);
    char body[200];
    snprintf(body, sizeof body, "{\"product\":\"%s\",\"quantity\":4}", sku);
    struct http_resp r;
    ck_assert_int_eq(
        http_do(port, "POST", "/buy", NULL, body, strlen(body), &r), 0);
    if (strlen(body) > 50)
        expect_error(&r, 413, "body_too_large");
    else
        expect_error(&r, 400, "invalid_field");
    http_resp_free(&r);
    snprintf(body, sizeof body, "{\"product\":\"%s\",\"quantity\":3}", sku);
    if (strlen(body) <= 50) {
        ck_assert_int_eq(
            http_do(port, "POST", "/buy", NULL, body, strlen(body), &r), 0);
        ck_assert_msg(r.status == 202, "quantity 3: %d %s", r.status, r.body);
        http_resp_free(&r);
    }
    char big[64];
    memset(big, ' ', sizeof big);
    memcpy(big, "{}", 2);
    ck_assert_int_eq(http_do(port, "POST", "/buy", NULL, big, 51, &r), 0);
    expect_error(&r, 413, "body_too_large");
    http_resp_free(&r);
    shopd_destroy(s);
    unlink(file);
    free(file);
}
END_TEST

START_TEST(test_e2e_config_flag_equals)
{
    static const char *const args[] = {"--queue-capacity=11", "--workers=2",
                                       NULL};
    struct shopd *s = shopd_start(args, NULL);
    cJSON *j = get_json_ok(shopd_port(s), "/stats");
    ck_assert_msg(jnum(j, "queue.capacity") == 11, "capacity");
    ck_assert_msg(jnum(j, "workers") == 2, "workers");
    cJSON_Delete(j);
    shopd_destroy(s);
}
END_TEST

START_TEST(test_e2e_config_log_json)
{
    static const char *const args[] = {"--log-format", "json", NULL};
    struct shopd *s = shopd_start(args, NULL);
    cJSON_Delete(get_json_ok(shopd_port(s), "/healthz"));
    shopd_signal(s, SIGTERM);
    char *err = shopd_expect_exit(s, 20000, 0, "SIGTERM, JSON logs");
    shopd_destroy(s);
    size_t lines = 0;
    for (char *line = err; *line;) {
        char *nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "last log line is not terminated");
        cJSON *j = cJSON_ParseWithLength(line, (size_t)(nl - line));
        ck_assert_msg(j && cJSON_IsObject(j),
                      "--log-format json line is not a JSON object: %.*s",
                      (int)(nl - line), line);
        cJSON_Delete(j);
        lines++;
        line = nl + 1;
    }
    ck_assert_msg(lines >= 2, "expected a listening and a final line");
    free(err);
}
END_TEST

Suite *e2e_config_suite(void)
{
    Suite *s = suite_create("e2e_config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, NULL, e2e_teardown);
    tcase_set_timeout(tc, 45);
    tcase_add_loop_test(tc, test_e2e_config_bad, 0,
                        (int)(sizeof bad_cases / sizeof *bad_cases));
    tcase_add_loop_test(tc, test_e2e_config_not_regular_file, 0,
                        (int)(2 * sizeof(file_flags) / sizeof(file_flags[0])));
    tcase_add_test(tc, test_e2e_config_redis_password_warning);
    tcase_add_test(tc, test_e2e_config_large_catalog);
    tcase_add_test(tc, test_e2e_config_bad_before_bind);
    tcase_add_test(tc, test_e2e_config_port_in_use);
    tcase_add_test(tc, test_e2e_config_help);
    tcase_add_test(tc, test_e2e_config_version);
    tcase_add_test(tc, test_e2e_config_precedence);
    tcase_add_test(tc, test_e2e_config_file_and_env);
    tcase_add_test(tc, test_e2e_config_flag_equals);
    tcase_add_test(tc, test_e2e_config_log_json);
    suite_add_tcase(s, tc);
    return s;
}
