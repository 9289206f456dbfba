/*
 * file.c - whole-file reads and text positions, shared by the config file,
 * the catalog file and the admin token file.
 *
 * file_read_all() grows its buffer by doubling and stops at `max`, so a
 * huge file cannot make shopd read without bound. It reads regular files
 * only: the path is opened without blocking (a FIFO with no writer would
 * block open() forever) and checked with fstat() before any read, so a
 * FIFO, a device or a directory given by mistake is an error, never a hang
 * or an endless read.
 */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, size_t max, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    size_t cap = 0;
    int rc;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = FILE_NOT_REGULAR;
        goto fail;
    }
    for (;;) {
        ssize_t got;

        if (n == cap) {
            size_t ncap = cap == 0 ? 4096 : cap * 2;
            char *nbuf = realloc(buf, ncap + 1);

            if (nbuf == NULL) {
                rc = -ENOMEM;
                goto fail;
            }
            buf = nbuf;
            cap = ncap;
        }
        got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > max) {
            rc = -EFBIG;
            goto fail;
        }
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;

fail:
    close(fd);
    free(buf);
    return rc;
}

void text_line_col(const char *text, size_t len, const char *at, size_t *line,
                   size_t *col)
{
    size_t off =
        at != NULL && at >= text && at <= text + len ? (size_t)(at - text) : 0;
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}
