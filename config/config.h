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

#define CONFIG_BIND_MAX     64
#define CONFIG_PATH_MAX     4096
#define CONFIG_HOST_MAX     256 /* a Redis host name or IP literal */
#define CONFIG_SECRET_MAX   256 /* an admin token or a Redis password */
#define CONFIG_INSTANCE_MAX 128 /* an instance name */
#define CONFIG_TOKEN_MIN    16  /* shortest admin token accepted */
/* Unless set, max_connections_per_ip is max_connections / this (SPEC §10). */
#define CONFIG_PER_IP_SHARE 4

enum config_log_format {
    CONFIG_LOG_TEXT = 0,
    CONFIG_LOG_JSON,
};

/* Where the shop lives (SPEC §7), from --store. */
enum config_store_kind {
    CONFIG_STORE_MEMORY = 0, /* "memory": this process only */
    CONFIG_STORE_SQLITE,     /* "sqlite:PATH" */
    CONFIG_STORE_REDIS,      /* "redis://..." or "unix://PATH[?db=N]" */
};

/* --store, parsed. Plain data; `password` is a secret: never log it. */
struct config_store {
    enum config_store_kind kind;
    /* sqlite: the database file; redis over unix://: the socket path. */
    char path[CONFIG_PATH_MAX];
    char host[CONFIG_HOST_MAX]; /* redis over TCP; "" for unix:// */
    unsigned port;              /* redis over TCP; 6379 unless given */
    unsigned db;                /* redis database number, 0 unless given */
    char password[CONFIG_SECRET_MAX]; /* redis AUTH password, "" if none */
};

/* --sync: how durable a 202 is with the sqlite store. */
enum config_sync {
    CONFIG_SYNC_FULL = 0, /* fsync at every commit: survives power loss */
    CONFIG_SYNC_NORMAL,   /* written to the OS: survives a crash of shopd */
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
    struct config_store store;         /* where the shop lives */
    enum config_sync sync;             /* sqlite durability of a 202 */
    /* This instance's name; "" means "<hostname>:<bound port>", which only
     * main can know once the port is bound. */
    char instance[CONFIG_INSTANCE_MAX];
    unsigned reclaim_ms;      /* claim a dead instance's orders after */
    unsigned idempotency_ttl; /* seconds an Idempotency-Key is kept */
    /* The admin token itself (from SHOPD_ADMIN_TOKEN or the first line of
     * --admin-token-file), "" when the admin API is off. A secret: never
     * log or print it. */
    char admin_token[CONFIG_SECRET_MAX];
    /* The first line of --redis-password-file while loading; config_load()
     * moves it into store.password (it wins) and clears this. */
    char redis_password[CONFIG_SECRET_MAX];
    /* A password was written in --store on the command line, where every
     * local user sees it (ps): main warns once. Never the password. */
    bool store_password_in_argv;
    unsigned header_timeout;         /* whole request must arrive within, s */
    unsigned max_connections_per_ip; /* 0 = no limit; unless set,
                                        max_connections / 4 */
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

/*
 * Write `s` as a user would read it in a log line, with any password
 * replaced by "***": "memory", "sqlite:/data/shop.db",
 * "redis://:***@redis:6379/0", or for a unix socket "unix://PATH?db=N".
 */
void config_store_describe(const struct config_store *s, char *buf, size_t len);

/* The version string, e.g. "0.1.0". */
const char *config_version(void);

#endif /* SHOPD_CONFIG_H */
