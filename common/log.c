/*
 * log.c - one line per event on stderr, as text or JSON.
 *
 * Each line is formatted into a local buffer and written with a single
 * write(2), so lines from different threads never interleave. The format
 * is chosen once at start-up, before any other thread exists; it is the
 * only process-wide setting in the server and is never written again.
 */
#include "common/log.h"

#include "common/jbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool log_json; /* written once by main before threads start */

void log_set_json(bool json)
{
    log_json = json;
}

static const char *level_name(enum log_level level)
{
    switch (level) {
    case LOG_INFO:
        return "info";
    case LOG_WARN:
        return "warn";
    case LOG_ERROR:
        return "error";
    }
    return "info";
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char when[48];
    format_rfc3339(when, sizeof(when),
                   (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);

    struct jbuf b;
    jb_init(&b, 1200);
    if (log_json) {
        jb_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", when,
                  level_name(level));
        jb_str(&b, msg, strlen(msg));
        jb_cstr(&b, "}\n");
    } else {
        jb_printf(&b, "%s %-5s %s\n", when, level_name(level), msg);
    }
    size_t len = 0;
    char *line = jb_take(&b, &len);
    if (line == NULL)
        return;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    free(line);
}
