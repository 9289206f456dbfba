/*
 * config.h - shopd's settings: built-in defaults < config file (--config,
 * JSON) < environment (SHOPD_*) < command-line flags, validated into one
 * plain struct.
 *
 * One static table of settings (name, flag, env, type, range, default, help)
 * drives parsing, validation and --help. The config module knows nothing of
 * the other modules.
 *
 * Thread safety: config_load() and config_help() touch only their
 * arguments and are safe to call from any thread. A loaded struct config is
 * read-only afterwards and may be shared without locks.
 */
#ifndef SHOPD_CONFIG_H
#define SHOPD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_BIND_MAX 64
#define CONFIG_PATH_MAX 4096

enum config_log_format {
    CONFIG_LOG_TEXT = 0,
    CONFIG_LOG_JSON,
};

/* What main should do after config_load(). */
enum config_action {
    CONFIG_RUN = 0, /* serve */
    CONFIG_HELP,    /* print config_help() and exit 0 */
    CONFIG_VERSION, /* print the version and exit 0 */
};

struct config {
    char bind[CONFIG_BIND_MAX];    /* listen address, IPv4 or IPv6 literal */
    unsigned port;                 /* 0 picks a free port */
    unsigned workers;              /* worker threads */
    unsigned queue_capacity;       /* channel slots */
    unsigned http_threads;         /* libmicrohttpd threads */
    unsigned work_ms;              /* simulated work per order */
    char catalog[CONFIG_PATH_MAX]; /* catalog file, "" = built-in demo */
    unsigned max_body;             /* bytes */
    unsigned max_quantity;
    unsigned order_history; /* orders kept for /orders/{id} */
    unsigned max_connections;
    unsigned conn_timeout;  /* idle connection timeout, seconds */
    unsigned drain_timeout; /* seconds */
    enum config_log_format log_format;
    bool unsafe_inventory;             /* demo: drop the inventory lock */
    char config_file[CONFIG_PATH_MAX]; /* the --config given, "" if none */
};

/* Fill `c` with the built-in defaults (CPU counts read from the system). */
void config_defaults(struct config *c);

/*
 * Load the settings: defaults, then the file named by --config (or
 * SHOPD_CONFIG), then `envp` (a NULL-terminated "NAME=value" array, may be
 * NULL), then `argv[1..argc-1]`. Flags take "--name value" or
 * "--name=value"; booleans take no value.
 * On success stores what to do in `*action` and returns 0. On a bad value,
 * unknown flag, unreadable or invalid file, writes one line naming the
 * setting and the reason into `err` (no newline) and returns -EINVAL.
 */
int config_load(struct config *c, int argc, char *const argv[],
                char *const envp[], enum config_action *action, char *err,
                size_t errlen);

/*
 * Write the --help text (every setting with its flag, variable, default and
 * meaning) into `buf`. Returns the length it needed, like snprintf.
 */
size_t config_help(char *buf, size_t len);

/* The version string, e.g. "0.1.0". */
const char *config_version(void);

#endif /* SHOPD_CONFIG_H */
