/*
 * jbuf.h - a growable string for building JSON and text answers, and the
 * small text rules that go with it (RFC 3339 times, strict UTF-8).
 *
 * Thread safety: a struct jbuf belongs to one thread at a time; the other
 * functions touch only their arguments.
 */
#ifndef SHOPD_JBUF_H
#define SHOPD_JBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A growable string for building JSON and text answers. After an
 * allocation failure `oom` is set and further appends do nothing, so a
 * builder checks once at the end.
 */
struct jbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

/* Start an empty string with room for `cap` bytes (sets oom on failure). */
void jb_init(struct jbuf *b, size_t cap);
/* Free the string; `b` may be reused after jb_init(). */
void jb_free(struct jbuf *b);
/* Append `n` bytes of `s` as they are. */
void jb_raw(struct jbuf *b, const char *s, size_t n);
/* Append the C string `s` as it is. */
void jb_cstr(struct jbuf *b, const char *s);
/* Append printf-style formatted text (never truncated: grows instead). */
void jb_printf(struct jbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append `s` (n bytes) as a quoted, escaped JSON string. */
void jb_str(struct jbuf *b, const char *s, size_t n);
/* Append a JSON number for a double (finite; 3 decimals at most). */
void jb_double(struct jbuf *b, double v);
/*
 * Format CLOCK_REALTIME nanoseconds as RFC 3339 UTC with milliseconds,
 * e.g. "2026-11-28T01:02:03.456Z", into `buf` (at least 32 bytes).
 */
void format_rfc3339(char *buf, size_t len, int64_t realtime_ns);
/* Append an RFC 3339 UTC time with milliseconds, quoted. */
void jb_time(struct jbuf *b, int64_t realtime_ns);
/* Strict UTF-8: no overlongs, no surrogates, nothing past U+10FFFF. */
bool utf8_valid(const char *s, size_t n);
/* Hand the string over (NUL-terminated) and reset `b`; NULL after oom. */
char *jb_take(struct jbuf *b, size_t *len);

#endif /* SHOPD_JBUF_H */
