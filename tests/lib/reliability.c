/*
 * reliability.c - /proc probes, the final log line, sanitizer reports and
 * a clean shutdown, for the reliability tests.
 *
 * Everything that waits polls its condition with a small back-off up to a
 * deadline; nothing sleeps to let something happen.
 */
#include "tests/lib/reliability.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <check.h>

#include "tests/lib/clock.h"
#include "tests/lib/http.h"
#include "tests/lib/orders.h"

long rel_proc_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            char *end = NULL;
            errno = 0;
            long v = strtol(line + 6, &end, 10);
            if (errno == 0 && end != line + 6)
                kb = v;
            break;
        }
    }
    fclose(f);
    return kb;
}

int rel_proc_fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int rel_wait_fds_at_most(pid_t pid, int max, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int delay = 2;
    for (;;) {
        int n = rel_proc_fd_count(pid);
        if (n <= max || now_ms() >= deadline)
            return n;
        backoff_step(&delay, 50);
    }
}

/* Read "name=<u64>" at `p`; advances past it. */
static bool take_count(const char **p, const char *name, uint64_t *out)
{
    const char *s = strstr(*p, name);
    if (s == NULL)
        return false;
    s += strlen(name);
    if (*s != '=')
        return false;
    s++;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return false;
    *out = v;
    *p = end;
    return true;
}

bool rel_parse_final(const char *log, const char *prefix, struct rel_final *out)
{
    const char *line = NULL;
    for (const char *p = log; p != NULL && (p = strstr(p, prefix)) != NULL;
         p++) {
        /* Only a prefix followed by the counts counts (the "draining N
         * orders" line shares the word). */
        const char *after = p + strlen(prefix);
        while (*after == ' ')
            after++;
        if (strncmp(after, "accepted=", 9) == 0)
            line = p;
    }
    if (line == NULL)
        return false;
    const char *eol = strchr(line, '\n');
    size_t n = eol ? (size_t)(eol - line) : strlen(line);
    char buf[512];
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    memcpy(buf, line, n);
    buf[n] = '\0';
    const char *p = buf;
    memset(out, 0, sizeof(*out));
    return take_count(&p, "accepted", &out->accepted) &&
           take_count(&p, "processed", &out->processed) &&
           take_count(&p, "fulfilled", &out->fulfilled) &&
           take_count(&p, "out_of_stock", &out->out_of_stock) &&
           take_count(&p, "rejected_full", &out->rejected_full) &&
           take_count(&p, "rejected_invalid", &out->rejected_invalid) &&
           take_count(&p, "left", &out->left);
}

bool rel_sanitizer_report(const char *log)
{
    static const char *const marks[] = {
        "AddressSanitizer", "LeakSanitizer", "runtime error:",
        "ThreadSanitizer",  "MHD_PANIC",     "Fatal error in GNU libmicrohttpd",
    };
    for (size_t i = 0; log != NULL && i < sizeof(marks) / sizeof(marks[0]); i++)
        if (strstr(log, marks[i]) != NULL)
            return true;
    return false;
}

uint64_t rel_expect_alive(unsigned port, int bound_ms)
{
    int bound = e2e_slow_ms(bound_ms);
    struct http_resp r;
    int64_t t0 = now_ms();
    int e = http_do(port, "GET", "/healthz", NULL, NULL, 0, &r);
    int64_t took = now_ms() - t0;
    ck_assert_msg(e == 0, "GET /healthz after the attack: %s", strerror(-e));
    ck_assert_msg(r.status == 200, "GET /healthz after the attack: %d %s",
                  r.status, r.body);
    ck_assert_msg(took <= bound, "GET /healthz took %lld ms (bound %d ms)",
                  (long long)took, bound);
    http_resp_free(&r);

    t0 = now_ms();
    uint64_t id = buy_one_ok(port, "{\"product\":\"apple\",\"quantity\":1}");
    took = now_ms() - t0;
    ck_assert_msg(took <= bound, "POST /buy took %lld ms (bound %d ms)",
                  (long long)took, bound);
    return id;
}

void rel_expect_clean_exit(struct shopd *s, int timeout_ms,
                           struct rel_final *out)
{
    shopd_signal(s, SIGTERM);
    int st = shopd_wait_exit(s, timeout_ms);
    char *err = shopd_stderr(s);
    size_t n = strlen(err);
    const char *tail = n > 1500 ? err + n - 1500 : err;
    ck_assert_msg(!rel_sanitizer_report(err), "sanitizer report: %s", tail);
    expect_exit_code(st, 0, "shopd after SIGTERM", err);
    struct rel_final f;
    ck_assert_msg(rel_parse_final(err, "drained", &f),
                  "no final 'drained accepted=...' line: %s", tail);
    ck_assert_msg(f.left == 0 && f.processed == f.accepted &&
                      f.fulfilled + f.out_of_stock == f.processed,
                  "final counts do not add up: %s", tail);
    free(err);
    if (out != NULL)
        *out = f;
}

void rel_add_cases(Suite *s, const struct rel_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, NULL, e2e_teardown);
        tcase_set_timeout(tc, cases[i].timeout_s * e2e_slow());
        if (cases[i].loops > 0)
            tcase_add_loop_test(tc, cases[i].test, 0, cases[i].loops);
        else
            tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
}

int rel_run(SRunner *sr)
{
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    int run = srunner_ntests_run(sr);
    srunner_free(sr);
    printf("%d passed, %d failed\n", run - failed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
