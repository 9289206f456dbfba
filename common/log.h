/*
 * log.h - one line per event on stderr, as text or JSON.
 *
 * Thread safety: log_msg() may be called from any thread at once (one
 * write(2) per line); log_set_json() once, before other threads start.
 */
#ifndef SHOPD_LOG_H
#define SHOPD_LOG_H

#include <stdbool.h>

enum log_level { LOG_INFO, LOG_WARN, LOG_ERROR };

/* Choose text or JSON lines; call once before any thread logs. */
void log_set_json(bool json);

/*
 * Log one line to stderr: a timestamp, the level and the message.
 * `fmt` is printf-style. Thread-safe (one write per line).
 */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* SHOPD_LOG_H */
