/*
 * jbuf.c - a small growable string used to format every answer.
 *
 * Answers are built with snprintf-style appends instead of cJSON's printer:
 * fixed keys need no escaping, counters are uint64 (cJSON prints doubles),
 * and one buffer per answer keeps the request path to one allocation.
 * Strings from outside (customer names) go through jb_str(), which escapes.
 */
#include "common/jbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void jb_init(struct jbuf *b, size_t cap)
{
    b->len = 0;
    b->cap = cap ? cap : 64;
    b->p = malloc(b->cap);
    b->oom = b->p == NULL;
    if (b->p)
        b->p[0] = '\0';
}

void jb_free(struct jbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Make room for `n` more bytes plus the NUL. */
static bool reserve(struct jbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void jb_raw(struct jbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void jb_cstr(struct jbuf *b, const char *s)
{
    jb_raw(b, s, strlen(s));
}

void jb_printf(struct jbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (!reserve(b, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void jb_str(struct jbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    jb_raw(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7] = "\\u00";
        switch (c) {
        case '"':
            jb_raw(b, "\\\"", 2);
            break;
        case '\\':
            jb_raw(b, "\\\\", 2);
            break;
        case '\n':
            jb_raw(b, "\\n", 2);
            break;
        case '\r':
            jb_raw(b, "\\r", 2);
            break;
        case '\t':
            jb_raw(b, "\\t", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                jb_raw(b, esc, 6);
            } else {
                jb_raw(b, (const char *)&s[i], 1);
            }
        }
    }
    jb_raw(b, "\"", 1);
}

void jb_double(struct jbuf *b, double v)
{
    if (!isfinite(v))
        v = 0;
    jb_printf(b, "%.3f", v);
}

void format_rfc3339(char *buf, size_t len, int64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000);
    int ms = (int)(ns % 1000000000 / 1000000);
    struct tm tm;
    if (gmtime_r(&sec, &tm) == NULL) {
        snprintf(buf, len, "1970-01-01T00:00:00.000Z");
        return;
    }
    char day[24];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", day, ms);
}

void jb_time(struct jbuf *b, int64_t ns)
{
    char when[48];
    format_rfc3339(when, sizeof(when), ns);
    jb_printf(b, "\"%s\"", when);
}

bool utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if (i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (s[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

char *jb_take(struct jbuf *b, size_t *len)
{
    if (b->oom) {
        jb_free(b);
        b->oom = false;
        return NULL;
    }
    char *p = b->p;
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}
