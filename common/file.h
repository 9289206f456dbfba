/*
 * file.h - small helpers for the files shopd reads (settings, catalogs):
 * read a whole file, and find the line and column of a parse error.
 *
 * Thread safety: every function touches only its arguments; safe from any
 * thread.
 */
#ifndef SHOPD_COMMON_FILE_H
#define SHOPD_COMMON_FILE_H

#include <errno.h>
#include <stddef.h>

/* What file_read_all() returns for a path that is not a regular file. */
#define FILE_NOT_REGULAR (-EINVAL)

/* The reason to print for FILE_NOT_REGULAR. */
#define FILE_NOT_REGULAR_TEXT                                                  \
    "not a regular file (a directory, a FIFO or a device)"

/*
 * Read all of `path` into a malloc'd buffer, NUL-terminated (the NUL is not
 * counted in `*len`). The caller frees `*out`. Returns 0, FILE_NOT_REGULAR
 * (-EINVAL) if the path is not a regular file (never blocks on a FIFO),
 * -EFBIG if the file holds more than `max` bytes, -ENOMEM, or the negative
 * errno of open/fstat/read. Blocks on the file system.
 */
int file_read_all(const char *path, size_t max, char **out, size_t *len);

/* Line and column (both from 1) of `at` in the `len` bytes of `text`, for
 * parse errors (where the parser stopped); an `at` outside the text, or
 * NULL, counts as its start. */
void text_line_col(const char *text, size_t len, const char *at, size_t *line,
                   size_t *col);

#endif /* SHOPD_COMMON_FILE_H */
