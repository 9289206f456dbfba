/*
 * log.c - one line per event on stderr, as text or JSON.
 *
 * Each line is formatted into a local buffer and written with a single
 * write(2), so lines from different threads never interleave. The format
 * is chosen once at start-up, before any other thread exists; it is the
 * only process-wide setting in the server and is never written again.
 *
 * A message may carry what a client sent (a path, a header value), so no
 * raw control character ever reaches the log: in text lines a newline is
 * written "\n", a carriage return "\r", a tab "\t", and every other
 * control byte (ESC included: no terminal escape sequences) "\xNN"; JSON
 * lines escape them as JSON does. One event is always one line.
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

/* Append `s` with its control bytes escaped (see the note above). */
static void jb_escaped(struct jbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != 0x7f)
            continue;
        jb_raw(b, run, (size_t)(s - run));
        run = s + 1;
        if (c == '\n')
            jb_raw(b, "\\n", 2);
        else if (c == '\r')
            jb_raw(b, "\\r", 2);
        else if (c == '\t')
            jb_raw(b, "\\t", 2);
        else
            jb_raw(b, (const char[]){'\\', 'x', hex[c >> 4], hex[c & 15]}, 4);
    }
    jb_raw(b, run, (size_t)(s - run));
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
        jb_printf(&b, "%s %-5s ", when, level_name(level));
        jb_escaped(&b, msg);
        jb_cstr(&b, "\n");
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
