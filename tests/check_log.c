/*
 * check_log.c - the log never carries a raw control character (SPEC §4):
 * a message with a newline, a carriage return or an escape sequence (a
 * path a client sent) is one line, written escaped, in text and in JSON.
 *
 * Each test points stderr at a pipe, logs, and reads back what was
 * written (log_msg writes one line with one write(2)).
 */
#include "common/log.h"

#include <check.h>

#include "tests/suites.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Log `msg` (as "%s") and return what reached stderr, in `out`. */
static void logged(bool json, const char *msg, char *out, size_t len)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(p[1], STDERR_FILENO), 0);
    log_set_json(json);
    log_msg(LOG_WARN, "path %s", msg);
    log_set_json(false);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[1]);
    ssize_t n = read(p[0], out, len - 1);
    close(p[0]);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
}

static size_t lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static const char *const hostile[] = {
    "/a\n2026-01-01T00:00:00.000Z info  FORGED",
    "/a\r2026-01-01T00:00:00.000Z info  FORGED",
    "/a\x1b[2K\x1b[1G"
    "FORGED",
    "/a\x7f\x01\x08"
    "FORGED",
};

START_TEST(test_log_text_escapes_controls)
{
    char out[1024];
    logged(false, hostile[_i], out, sizeof(out));
    ck_assert_msg(lines(out) == 1, "not one line: %s", out);
    for (const char *p = out; *p != '\0'; p++)
        ck_assert_msg(((unsigned char)*p >= 0x20 && *p != 0x7f) ||
                          (*p == '\n' && p[1] == '\0'),
                      "a raw control byte 0x%02x in: %s", (unsigned char)*p,
                      out);
    ck_assert_ptr_nonnull(strstr(out, "FORGED"));
}
END_TEST

START_TEST(test_log_text_escape_forms)
{
    char out[1024];
    logged(false,
           "a\nb\rc\td\x1b"
           "e",
           out, sizeof(out));
    ck_assert_ptr_nonnull(strstr(out, "path a\\nb\\rc\\td\\x1be\n"));
    /* Printable text, backslashes and UTF-8 are left as they are. */
    logged(false, "caf\xc3\xa9 C:\\dir", out, sizeof(out));
    ck_assert_ptr_nonnull(strstr(out, "path caf\xc3\xa9 C:\\dir\n"));
}
END_TEST

START_TEST(test_log_json_escapes_controls)
{
    char out[1024];
    logged(true, hostile[_i], out, sizeof(out));
    ck_assert_msg(lines(out) == 1, "not one line: %s", out);
    for (const char *p = out; *p != '\0'; p++)
        ck_assert_msg(((unsigned char)*p >= 0x20 && *p != 0x7f) ||
                          (*p == '\n' && p[1] == '\0'),
                      "a raw control byte 0x%02x in: %s", (unsigned char)*p,
                      out);
}
END_TEST

Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("escape");
    int n = (int)(sizeof(hostile) / sizeof(hostile[0]));
    tcase_add_loop_test(tc, test_log_text_escapes_controls, 0, n);
    tcase_add_test(tc, test_log_text_escape_forms);
    tcase_add_loop_test(tc, test_log_json_escapes_controls, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
