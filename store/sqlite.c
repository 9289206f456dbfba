/*
 * sqlite.c - the SQLite store (work in progress: open fails for now).
 */
#include "store/internal.h"

#include <errno.h>
#include <stdio.h>

static int sq_open(const struct store_options *opt, struct store **out,
                   char *err, size_t errlen)
{
    (void)opt;
    *out = NULL;
    snprintf(err, errlen, "store sqlite: not built yet");
    return -ENOTSUP;
}

const struct store_backend store_sqlite_backend = {
    .kind = STORE_SQLITE,
    .caps = STORE_CAP_DURABLE,
    .open = sq_open,
};
