/*
 * buf.h - memory for the test helpers: allocation that aborts on
 * out-of-memory (a test has no better answer) and a growing byte buffer
 * that is always NUL-terminated, for captured output, requests being
 * built and bodies being read.
 *
 * Thread safety: none needed: every function touches only its arguments;
 * a buffer is owned by one thread at a time (or guarded by its owner).
 */
#ifndef SHOPD_TESTS_LIB_BUF_H
#define SHOPD_TESTS_LIB_BUF_H

#include <stddef.h>

/* malloc/realloc/strdup that abort with a message instead of NULL. */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);
char *xstrdup(const char *s);

/* A growing byte buffer; a zeroed one is empty. `p` is NUL-terminated
 * once anything was added; the owner frees `p`. */
struct buf {
    char *p;
    size_t len, cap;
};

/* Append `n` bytes (which may contain NULs). */
void buf_add(struct buf *b, const void *data, size_t n);
/* Append a string. */
void buf_str(struct buf *b, const char *s);
/* Append printf-formatted text, however long. */
void buf_fmt(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A malloc'd NUL-terminated copy of the contents ("" when empty). */
char *buf_copy(const struct buf *b);

#endif /* SHOPD_TESTS_LIB_BUF_H */
