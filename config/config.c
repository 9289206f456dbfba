/*
 * config.c - shopd's settings, from four sources into one struct config.
 *
 * Design. Every setting is one row of the static const table `settings`
 * (flag, config-file key, environment variable, type, offset into struct
 * config, range, default, help), as in Redis' static_configs. Parsing from
 * every source, validation, defaults and --help all walk that table, so a
 * new setting is one new row and --help cannot drift from the parser.
 *
 * config_load() works in this order, which gives the precedence
 * defaults < config file < environment < flags:
 *   1. a first pass over argv looks only for --help/-h and --version/-V
 *      (they win at once, even over bad values elsewhere) and --config;
 *   2. the file named by --config, else by SHOPD_CONFIG, is read and applied;
 *   3. the SHOPD_* variables named in the table are applied; every other
 *      variable is ignored;
 *   4. the flags are applied left to right, so the last one wins.
 * All of it works on a local copy: the caller's struct changes only on
 * success, so a failed load never leaves half a config behind.
 *
 * Every value from every source goes through one setter per type, which is
 * where ranges are checked. An error is one line naming the flag, the value,
 * the reason and the source; values are escaped so that a newline inside an
 * environment variable cannot split the line.
 *
 * The module has no global state (everything lives in the caller's
 * arguments), so it is thread-safe; it never prints and never exits.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cJSON.h>

#include "common/file.h"

#ifndef SHOPD_VERSION
#define SHOPD_VERSION "0.1.0"
#endif

/* A config file larger than this is surely the wrong file. */
#define CONFIG_FILE_MAX ((size_t)1024 * 1024)
/* Values quoted in error lines are cut after this many input bytes. */
#define QUOTE_MAX 128
/* Room for a quoted value: every byte may become \xNN, plus quotes, "...". */
#define QUOTE_BUF (QUOTE_MAX * 4 + 8)

#define ATTR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

enum setting_type {
    SET_UINT,        /* unsigned, decimal digits only, min..max */
    SET_PATH,        /* char[size], non-empty */
    SET_BIND,        /* char[size], IPv4/IPv6 literal, "localhost", "*" */
    SET_ENUM,        /* an enum, one of names[0..nnames-1] */
    SET_BOOL,        /* bool; the bare flag means true */
    SET_STORE,       /* struct config_store, from a store URL */
    SET_NAME,        /* char[size], 1+ characters of NAME_CHARS */
    SET_TOKEN,       /* char[size] secret: the flag and the file key name a
                        file whose first line is the token, the variable
                        holds the token itself; "" is no token */
    SET_SECRET_FILE, /* char[size] secret: the first line of the file the
                        flag names (the Redis password) */
    SET_ACTION,      /* --help, --version: no value, no variable, no key */
};

struct setting {
    const char *flag;         /* "--queue-capacity" */
    const char *short_flag;   /* "-h", or NULL */
    const char *key;          /* config file key, NULL if not allowed there */
    const char *env;          /* environment variable, NULL if none */
    size_t offset;            /* of the field in struct config */
    size_t size;              /* of the field */
    unsigned long min, max;   /* SET_UINT range, inclusive */
    unsigned long def;        /* SET_UINT, SET_BOOL, SET_ENUM default;
                                 the enum config_action of a SET_ACTION */
    const char *def_text;     /* SET_PATH, SET_BIND, SET_STORE, SET_NAME
                                 default */
    const char *const *names; /* SET_ENUM: the values' names, by value */
    size_t nnames;
    const char *shown_def; /* default as --help shows it, if not computed */
    const char *allowed;   /* allowed values as --help shows them */
    const char *metavar;   /* "N", "ADDR", "FILE" */
    const char *help;      /* meaning, one or more lines */
    enum setting_type type;
    bool def_ncpu; /* default: online CPUs, clamped to min..max */
};

#define FIELD(f)                                                               \
    .offset = offsetof(struct config, f),                                      \
    .size = sizeof(((struct config *)0)->f)

#define NAMES(a) .names = (a), .nnames = sizeof(a) / sizeof((a)[0])

static const char *const log_format_names[] = {
    [CONFIG_LOG_TEXT] = "text",
    [CONFIG_LOG_JSON] = "json",
};

static const char *const sync_names[] = {
    [CONFIG_SYNC_FULL] = "full",
    [CONFIG_SYNC_NORMAL] = "normal",
};

/* Characters of an instance name: it appears in logs, JSON and Redis keys. */
#define NAME_CHARS                                                             \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-"

static const struct setting settings[] = {
    {.flag = "--config",
     .env = "SHOPD_CONFIG",
     .type = SET_PATH,
     FIELD(config_file),
     .shown_def = "none",
     .allowed = "path",
     .metavar = "FILE",
     .help = "JSON file of settings (see below)"},
    {.flag = "--bind",
     .key = "bind",
     .env = "SHOPD_BIND",
     .type = SET_BIND,
     FIELD(bind),
     .def_text = "0.0.0.0",
     .allowed = "IP literal",
     .metavar = "ADDR",
     .help = "listen address: an IPv4 or IPv6 literal (\"[::1]\" too);\n"
             "\"localhost\" means 127.0.0.1, \"*\" means 0.0.0.0"},
    {.flag = "--port",
     .key = "port",
     .env = "SHOPD_PORT",
     .type = SET_UINT,
     FIELD(port),
     .min = 0,
     .max = 65535,
     .def = 8080,
     .metavar = "N",
     .help = "TCP port to listen on; 0 picks a free port"},
    {.flag = "--workers",
     .key = "workers",
     .env = "SHOPD_WORKERS",
     .type = SET_UINT,
     FIELD(workers),
     .min = 1,
     .max = 1024,
     .def_ncpu = true,
     .metavar = "N",
     .help = "worker threads that take orders off the queue"},
    {.flag = "--queue-capacity",
     .key = "queue_capacity",
     .env = "SHOPD_QUEUE_CAPACITY",
     .type = SET_UINT,
     FIELD(queue_capacity),
     .min = 1,
     .max = 16777216,
     .def = 1024,
     .metavar = "N",
     .help = "queue slots: orders accepted but not yet taken by a worker"},
    {.flag = "--http-threads",
     .key = "http_threads",
     .env = "SHOPD_HTTP_THREADS",
     .type = SET_UINT,
     FIELD(http_threads),
     .min = 1,
     .max = 256,
     .def_ncpu = true,
     .metavar = "N",
     .help = "threads that answer HTTP requests"},
    {.flag = "--work-ms",
     .key = "work_ms",
     .env = "SHOPD_WORK_MS",
     .type = SET_UINT,
     FIELD(work_ms),
     .min = 0,
     .max = 60000,
     .def = 0,
     .metavar = "MS",
     .help = "simulated work per order, milliseconds, outside the lock"},
    {.flag = "--catalog",
     .key = "catalog",
     .env = "SHOPD_CATALOG",
     .type = SET_PATH,
     FIELD(catalog),
     .def_text = "",
     .shown_def = "built-in demo",
     .allowed = "path",
     .metavar = "FILE",
     .help = "catalog file (JSON), checked when the server starts"},
    {.flag = "--max-body",
     .key = "max_body",
     .env = "SHOPD_MAX_BODY",
     .type = SET_UINT,
     FIELD(max_body),
     .min = 16,
     .max = 67108864,
     .def = 4096,
     .metavar = "BYTES",
     .help = "largest request body accepted; larger ones get 413"},
    {.flag = "--max-quantity",
     .key = "max_quantity",
     .env = "SHOPD_MAX_QUANTITY",
     .type = SET_UINT,
     FIELD(max_quantity),
     .min = 1,
     .max = 1000000000,
     .def = 1000,
     .metavar = "N",
     .help = "largest quantity one order may ask for"},
    {.flag = "--order-history",
     .key = "order_history",
     .env = "SHOPD_ORDER_HISTORY",
     .type = SET_UINT,
     FIELD(order_history),
     .min = 1,
     .max = 16777216,
     .def = 65536,
     .metavar = "N",
     .help = "orders kept for GET /orders/{id}; older ones are forgotten"},
    {.flag = "--max-connections",
     .key = "max_connections",
     .env = "SHOPD_MAX_CONNECTIONS",
     .type = SET_UINT,
     FIELD(max_connections),
     .min = 1,
     .max = 1000000,
     .def = 10000,
     .metavar = "N",
     .help = "open HTTP connections at most"},
    {.flag = "--conn-timeout",
     .key = "conn_timeout",
     .env = "SHOPD_CONN_TIMEOUT",
     .type = SET_UINT,
     FIELD(conn_timeout),
     .min = 1,
     .max = 86400,
     .def = 30,
     .metavar = "S",
     .help = "seconds before an idle connection is closed"},
    {.flag = "--drain-timeout",
     .key = "drain_timeout",
     .env = "SHOPD_DRAIN_TIMEOUT",
     .type = SET_UINT,
     FIELD(drain_timeout),
     .min = 0,
     .max = 3600,
     .def = 30,
     .metavar = "S",
     .help = "seconds to finish queued orders after SIGTERM/SIGINT"},
    {.flag = "--log-format",
     .key = "log_format",
     .env = "SHOPD_LOG_FORMAT",
     .type = SET_ENUM,
     FIELD(log_format),
     NAMES(log_format_names),
     .def = CONFIG_LOG_TEXT,
     .allowed = "text|json",
     .metavar = "FMT",
     .help = "log lines as plain text or as one JSON object each"},
    {.flag = "--unsafe-inventory",
     .key = "unsafe_inventory",
     .env = "SHOPD_UNSAFE_INVENTORY",
     .type = SET_BOOL,
     FIELD(unsafe_inventory),
     .def = 0,
     .allowed = "boolean",
     .help = "demo only: drop the inventory lock to show lost updates\n"
             "and oversell"},
    {.flag = "--store",
     .key = "store",
     .env = "SHOPD_STORE",
     .type = SET_STORE,
     FIELD(store),
     .def_text = "memory",
     .allowed = "memory|sqlite:PATH|redis://|unix://",
     .metavar = "URL",
     .help = "where the shop lives: \"memory\" (this process only),\n"
             "\"sqlite:PATH\" (a durable file), or a Redis >= 7.0 server\n"
             "that every instance shares: redis://[:PASSWORD@]HOST[:PORT]"
             "[/DB]\nor unix://PATH[?db=N] (rediss:// is not supported)"},
    {.flag = "--sync",
     .key = "sync",
     .env = "SHOPD_SYNC",
     .type = SET_ENUM,
     FIELD(sync),
     NAMES(sync_names),
     .def = CONFIG_SYNC_FULL,
     .allowed = "full|normal",
     .metavar = "MODE",
     .help = "sqlite: a 202 is fsynced (full, survives power loss) or\n"
             "written to the OS (normal, survives a crash of shopd)"},
    {.flag = "--instance",
     .key = "instance",
     .env = "SHOPD_INSTANCE",
     .type = SET_NAME,
     FIELD(instance),
     .def_text = "",
     .shown_def = "<hostname>:<port>",
     .allowed = "[A-Za-z0-9._:@-]",
     .metavar = "NAME",
     .help = "this instance's name in /stats, orders and the store"},
    {.flag = "--reclaim-ms",
     .key = "reclaim_ms",
     .env = "SHOPD_RECLAIM_MS",
     .type = SET_UINT,
     FIELD(reclaim_ms),
     .min = 100,
     .max = 3600000,
     .def = 5000,
     .metavar = "MS",
     .help = "redis: finish a dead instance's orders after they have\n"
             "waited this long; above the slowest processing time"},
    {.flag = "--idempotency-ttl",
     .key = "idempotency_ttl",
     .env = "SHOPD_IDEMPOTENCY_TTL",
     .type = SET_UINT,
     FIELD(idempotency_ttl),
     .min = 1,
     .max = 31536000,
     .def = 86400,
     .metavar = "S",
     .help = "seconds an Idempotency-Key is remembered after first use"},
    {.flag = "--admin-token-file",
     .key = "admin_token_file",
     .env = "SHOPD_ADMIN_TOKEN",
     .type = SET_TOKEN,
     FIELD(admin_token),
     .shown_def = "none: admin API off",
     .allowed = "path",
     .metavar = "FILE",
     .help = "file whose first line is the admin token (at least 16\n"
             "printable characters); SHOPD_ADMIN_TOKEN holds the token\n"
             "itself. Restock (POST /products/{sku}/restock) needs it"},
    {.flag = "--header-timeout",
     .key = "header_timeout",
     .env = "SHOPD_HEADER_TIMEOUT",
     .type = SET_UINT,
     FIELD(header_timeout),
     .min = 1,
     .max = 3600,
     .def = 10,
     .metavar = "S",
     .help = "a request's head and body must have arrived this many\n"
             "seconds after the connection opened (a later request on\n"
             "the connection: after its request line), however slowly\n"
             "they trickle; a connection that sends nothing is closed"},
    {.flag = "--max-connections-per-ip",
     .key = "max_connections_per_ip",
     .env = "SHOPD_MAX_CONNECTIONS_PER_IP",
     .type = SET_UINT,
     FIELD(max_connections_per_ip),
     .min = 0,
     .max = 1000000,
     .def = 0, /* stands for "not set": see per_ip_default() */
     .shown_def = "max-connections/4",
     .metavar = "N",
     .help = "open connections from one client address at most;\n"
             "past it a new one is closed at once, so that one address\n"
             "cannot take every connection (2500 at the default\n"
             "--max-connections: room for wrk -c2000); 0: no limit\n"
             "(behind a proxy that funnels every client through one\n"
             "address, raise it or set 0)"},
    {.flag = "--redis-password-file",
     .key = "redis_password_file",
     .type = SET_SECRET_FILE,
     FIELD(redis_password),
     .shown_def = "none",
     .allowed = "path",
     .metavar = "FILE",
     .help = "file whose first line is the Redis password; it wins\n"
             "over one in --store (a password written in --store on the\n"
             "command line shows in ps: use this or SHOPD_STORE)"},
    {.flag = "--help",
     .short_flag = "-h",
     .type = SET_ACTION,
     .def = CONFIG_HELP,
     .help = "print this help and exit"},
    {.flag = "--version",
     .short_flag = "-V",
     .type = SET_ACTION,
     .def = CONFIG_VERSION,
     .help = "print the version and exit"},
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

/* ---- small helpers ------------------------------------------------------ */

/* Write one error line into err (if there is room) and return -EINVAL. */
static int errorf(char *err, size_t errlen, const char *fmt, ...)
    ATTR_PRINTF(3, 4);
static int errorf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/*
 * Write s into dst as a double-quoted string, with control bytes, quotes and
 * backslashes escaped and at most QUOTE_MAX input bytes, so that any value
 * fits on one line of an error message. Returns dst.
 */
static const char *quote(char dst[QUOTE_BUF], const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t i;

    dst[o++] = '"';
    for (i = 0; s[i] != '\0' && i < QUOTE_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 0xf];
        } else {
            dst[o++] = (char)ch;
        }
    }
    dst[o++] = '"';
    if (s[i] != '\0') {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}

/* The field of c that setting s describes. */
static void *field_of(struct config *c, const struct setting *s)
{
    return (unsigned char *)c + s->offset;
}

static const struct setting *find_flag(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];

        if (strncmp(s->flag, name, len) == 0 && s->flag[len] == '\0')
            return s;
        if (s->short_flag != NULL && strncmp(s->short_flag, name, len) == 0 &&
            s->short_flag[len] == '\0')
            return s;
    }
    return NULL;
}

static const struct setting *find_key(const char *key)
{
    size_t i;

    for (i = 0; i < NSETTINGS; i++)
        if (settings[i].key != NULL && strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

/* Like getenv() over envp: the value of the first NAME=..., or NULL. */
static const char *env_get(char *const envp[], const char *name)
{
    size_t n = strlen(name);

    if (envp == NULL)
        return NULL;
    for (; *envp != NULL; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        return 1;
    return n > (long)UINT_MAX ? UINT_MAX : (unsigned)n;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes"};
    static const char *const no[] = {"0", "false", "no"};
    size_t i;

    for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static int read_file(const char *flag, const char *path, char **out,
                     size_t *outlen, char *err, size_t errlen);

/* ---- store URLs --------------------------------------------------------- */

/* Parse decimal digits s[0..n-1] into *out, at most max. */
static bool parse_decimal(const char *s, size_t n, unsigned long max,
                          unsigned *out)
{
    unsigned long v = 0;

    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Copy n bytes of s into dst[size] as a C string; false if it won't fit. */
static bool copy_part(char *dst, size_t size, const char *s, size_t n)
{
    if (n >= size)
        return false;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

/* A host name (letters, digits, '.', '-', '_') or an IP literal. */
static bool host_valid(const char *h)
{
    unsigned char bin[sizeof(struct in6_addr)];

    if (h[0] == '\0')
        return false;
    if (inet_pton(AF_INET6, h, bin) == 1)
        return true;
    for (const char *p = h; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
            return false;
    return true;
}

/* sqlite:PATH, given what follows "sqlite:". */
static bool parse_sqlite(const char *path, struct config_store *out, char *why,
                         size_t whylen)
{
    out->kind = CONFIG_STORE_SQLITE;
    if (path[0] == '\0') {
        snprintf(why, whylen, "sqlite: needs a file path (sqlite:PATH)");
        return false;
    }
    if (!copy_part(out->path, sizeof out->path, path, strlen(path))) {
        snprintf(why, whylen, "the sqlite path is too long");
        return false;
    }
    return true;
}

/* unix://PATH[?db=N], given what follows "unix://". */
static bool parse_unix(const char *path, struct config_store *out, char *why,
                       size_t whylen)
{
    const char *q = strchr(path, '?');
    size_t plen = q != NULL ? (size_t)(q - path) : strlen(path);

    out->kind = CONFIG_STORE_REDIS;
    if (plen == 0) {
        snprintf(why, whylen, "unix:// needs a socket path");
        return false;
    }
    if (!copy_part(out->path, sizeof out->path, path, plen)) {
        snprintf(why, whylen, "the socket path is too long");
        return false;
    }
    if (q != NULL && (strncmp(q, "?db=", 4) != 0 ||
                      !parse_decimal(q + 4, strlen(q + 4), 65535, &out->db))) {
        snprintf(why, whylen,
                 "after the socket path only ?db=N (0..65535) may "
                 "follow");
        return false;
    }
    return true;
}

/* The ":PASSWORD@" of a redis:// URL, if any: *p is moved past it. */
static bool parse_redis_password(const char **p, struct config_store *out,
                                 char *why, size_t whylen)
{
    const char *at = strrchr(*p, '@');

    if (at == NULL)
        return true;
    if ((*p)[0] != ':') {
        snprintf(why, whylen,
                 "a password is written redis://:PASSWORD@HOST "
                 "(user names are not supported)");
        return false;
    }
    if (at == *p + 1 || !copy_part(out->password, sizeof out->password, *p + 1,
                                   (size_t)(at - *p - 1))) {
        snprintf(why, whylen, "the password is empty or too long");
        return false;
    }
    *p = at + 1;
    return true;
}

/* The HOST or [IPv6] of a redis:// URL: *end is set just past it. */
static bool parse_redis_host(const char *p, struct config_store *out,
                             const char **end, char *why, size_t whylen)
{
    if (p[0] == '[') {
        const char *close = strchr(p, ']');

        if (close == NULL || !copy_part(out->host, sizeof out->host, p + 1,
                                        (size_t)(close - p - 1))) {
            snprintf(why, whylen, "bad [IPv6] host");
            return false;
        }
        *end = close + 1;
    } else {
        *end = p + strcspn(p, ":/");
        if (!copy_part(out->host, sizeof out->host, p, (size_t)(*end - p))) {
            snprintf(why, whylen, "the host name is too long");
            return false;
        }
    }
    if (!host_valid(out->host)) {
        snprintf(why, whylen, "the host is empty or not a host name");
        return false;
    }
    return true;
}

/* The [:PORT][/DB] that ends a redis:// URL. */
static bool parse_redis_port_db(const char *end, struct config_store *out,
                                char *why, size_t whylen)
{
    if (*end == ':') {
        size_t n = strcspn(end + 1, "/");

        if (!parse_decimal(end + 1, n, 65535, &out->port) || out->port == 0) {
            snprintf(why, whylen, "the port must be 1..65535");
            return false;
        }
        end += 1 + n;
    }
    if (*end == '/' && end[1] != '\0') {
        if (!parse_decimal(end + 1, strlen(end + 1), 65535, &out->db)) {
            snprintf(why, whylen,
                     "the database must be a number "
                     "0..65535");
            return false;
        }
    } else if (*end != '\0' && strcmp(end, "/") != 0) {
        snprintf(why, whylen, "unexpected text after the host");
        return false;
    }
    return true;
}

/* redis://[:PASSWORD@]HOST[:PORT][/DB], given what follows "redis://". */
static bool parse_redis_url(const char *p, struct config_store *out, char *why,
                            size_t whylen)
{
    const char *end;

    out->kind = CONFIG_STORE_REDIS;
    out->port = 6379;
    return parse_redis_password(&p, out, why, whylen) &&
           parse_redis_host(p, out, &end, why, whylen) &&
           parse_redis_port_db(end, out, why, whylen);
}

/*
 * Parse a --store value into *out. On failure writes the reason (no value
 * quoted: a URL may hold a password) into why and returns false.
 */
static bool parse_store(const char *val, struct config_store *out, char *why,
                        size_t whylen)
{
    static const char redis[] = "redis://";
    static const char unix_[] = "unix://";
    static const char sqlite[] = "sqlite:";

    memset(out, 0, sizeof *out);
    if (strcmp(val, "memory") == 0) {
        out->kind = CONFIG_STORE_MEMORY;
        return true;
    }
    if (strncmp(val, sqlite, sizeof sqlite - 1) == 0)
        return parse_sqlite(val + sizeof sqlite - 1, out, why, whylen);
    if (strncmp(val, unix_, sizeof unix_ - 1) == 0)
        return parse_unix(val + sizeof unix_ - 1, out, why, whylen);
    if (strncmp(val, redis, sizeof redis - 1) == 0)
        return parse_redis_url(val + sizeof redis - 1, out, why, whylen);
    if (strncmp(val, "rediss://", 9) == 0)
        snprintf(why, whylen, "rediss:// (TLS) is not supported");
    else
        snprintf(why, whylen,
                 "expected memory, sqlite:PATH, redis://[:PASSWORD@]HOST"
                 "[:PORT][/DB] or unix://PATH[?db=N]");
    return false;
}

void config_store_describe(const struct config_store *s, char *buf, size_t len)
{
    switch (s->kind) {
    case CONFIG_STORE_MEMORY:
        snprintf(buf, len, "memory");
        return;
    case CONFIG_STORE_SQLITE:
        snprintf(buf, len, "sqlite:%s", s->path);
        return;
    case CONFIG_STORE_REDIS:
        if (s->host[0] == '\0')
            snprintf(buf, len, "unix://%s?db=%u", s->path, s->db);
        else
            snprintf(buf, len, "redis://%s%s%s%s:%u/%u",
                     s->password[0] != '\0' ? ":***@" : "",
                     strchr(s->host, ':') != NULL ? "[" : "", s->host,
                     strchr(s->host, ':') != NULL ? "]" : "", s->port, s->db);
        return;
    }
    snprintf(buf, len, "?");
}

/* ---- setters: one per type, shared by every source ---------------------- */

static int set_uint(struct config *c, const struct setting *s, const char *val,
                    const char *from, char *err, size_t errlen)
{
    char q[QUOTE_BUF];
    unsigned long long v;
    char *end;

    /*
     * Decimal digits only: strtoull alone would accept leading spaces, a
     * sign (and negate!), so check the characters first. A minus sign in
     * front of digits is a number, just out of range.
     */
    if (!all_digits(val)) {
        if (val[0] == '-' && all_digits(val + 1))
            goto out_of_range;
        return errorf(err, errlen, "%s: %s is not a whole number (from %s)",
                      s->flag, quote(q, val), from);
    }
    errno = 0;
    v = strtoull(val, &end, 10);
    if (errno == ERANGE || *end != '\0' || v < s->min || v > s->max)
        goto out_of_range;
    assert(s->size == sizeof(unsigned));
    *(unsigned *)field_of(c, s) = (unsigned)v;
    return 0;

out_of_range:
    return errorf(err, errlen, "%s: %s is out of range %lu..%lu (from %s)",
                  s->flag, quote(q, val), s->min, s->max, from);
}

static int set_bind(struct config *c, const struct setting *s, const char *val,
                    const char *from, char *err, size_t errlen)
{
    char q[QUOTE_BUF];
    char addr[CONFIG_BIND_MAX];
    unsigned char bin[sizeof(struct in6_addr)];
    size_t len = strlen(val);

    if (strcmp(val, "localhost") == 0) {
        snprintf(addr, sizeof addr, "127.0.0.1");
    } else if (strcmp(val, "*") == 0) {
        snprintf(addr, sizeof addr, "0.0.0.0");
    } else if (len >= 2 && val[0] == '[' && val[len - 1] == ']' &&
               len - 2 < sizeof addr) {
        /* "[::1]", as in URLs. */
        memcpy(addr, val + 1, len - 2);
        addr[len - 2] = '\0';
        if (inet_pton(AF_INET6, addr, bin) != 1)
            goto bad;
    } else if (len < sizeof addr) {
        memcpy(addr, val, len + 1);
        if (inet_pton(AF_INET, addr, bin) != 1 &&
            inet_pton(AF_INET6, addr, bin) != 1)
            goto bad;
    } else {
        goto bad;
    }
    assert(s->size == sizeof addr);
    memcpy(field_of(c, s), addr, sizeof addr);
    return 0;

bad:
    return errorf(err, errlen,
                  "%s: %s is not an IPv4 or IPv6 address, \"localhost\" or "
                  "\"*\" (from %s)",
                  s->flag, quote(q, val), from);
}

/*
 * Set the admin token from its text: not quoted in any error, since it is a
 * secret. "" (an empty variable) turns the admin API off.
 */
static int set_token_value(struct config *c, const struct setting *s,
                           const char *tok, size_t len, const char *from,
                           char *err, size_t errlen)
{
    char *dst = field_of(c, s);

    if (len == 0) {
        dst[0] = '\0';
        return 0;
    }
    if (len < CONFIG_TOKEN_MIN || len >= s->size)
        return errorf(err, errlen,
                      "%s: the admin token must be at least %d characters "
                      "and at most %zu, not %zu (from %s)",
                      s->flag, CONFIG_TOKEN_MIN, s->size - 1, len, from);
    for (size_t i = 0; i < len; i++)
        if (tok[i] <= ' ' || tok[i] > '~')
            return errorf(err, errlen,
                          "%s: the admin token must be printable ASCII "
                          "without spaces (from %s)",
                          s->flag, from);
    memcpy(dst, tok, len);
    dst[len] = '\0';
    return 0;
}

/* A secret's file: its first line (without CR/LF) is text[0..*len); the
 * caller validates it, then wipes and frees the buffer with wipe_free(). */
static int read_first_line(const struct setting *s, const char *path,
                           char **text, size_t *len, char *err, size_t errlen)
{
    size_t n = 0;
    int rc = read_file(s->flag, path, text, &n, err, errlen);

    if (rc < 0)
        return rc;
    *len = strcspn(*text, "\r\n");
    return 0;
}

/* The buffer held a secret: wipe it before it goes back. */
static void wipe_free(char *text)
{
    memset(text, 0, strlen(text));
    free(text);
}

/* Set the admin token from the first line of the file at path. */
static int set_token_file(struct config *c, const struct setting *s,
                          const char *path, const char *from, char *err,
                          size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_first_line(s, path, &text, &len, err, errlen);

    if (rc < 0)
        return rc;
    if (len == 0)
        rc = errorf(err, errlen,
                    "%s: the first line of the file is empty "
                    "(from %s)",
                    s->flag, from);
    else
        rc = set_token_value(c, s, text, len, from, err, errlen);
    wipe_free(text);
    return rc;
}

/* Set a secret from the first line of the file at path (trailing CR/LF
 * dropped); never quoted in an error. */
static int set_secret_file(struct config *c, const struct setting *s,
                           const char *path, const char *from, char *err,
                           size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_first_line(s, path, &text, &len, err, errlen);

    if (rc < 0)
        return rc;
    if (len == 0 || len >= s->size || memchr(text, '\0', len) != NULL)
        rc = errorf(err, errlen,
                    "%s: the first line of the file must hold the secret, "
                    "1 to %zu bytes (from %s)",
                    s->flag, s->size - 1, from);
    else
        memcpy(field_of(c, s), text, len);
    if (rc == 0)
        ((char *)field_of(c, s))[len] = '\0';
    wipe_free(text);
    return rc;
}

/* Set s from text (a flag, a variable or a JSON string). */
static int set_text(struct config *c, const struct setting *s, const char *val,
                    const char *from, char *err, size_t errlen)
{
    char q[QUOTE_BUF];
    size_t len = strlen(val);
    size_t i;
    bool b;

    if (len == 0)
        return errorf(err, errlen, "%s: empty value (from %s)", s->flag, from);

    switch (s->type) {
    case SET_UINT:
        return set_uint(c, s, val, from, err, errlen);
    case SET_BIND:
        return set_bind(c, s, val, from, err, errlen);
    case SET_PATH:
        if (len >= s->size)
            return errorf(err, errlen,
                          "%s: path is too long (%zu bytes, at most %zu) "
                          "(from %s)",
                          s->flag, len, s->size - 1, from);
        memcpy(field_of(c, s), val, len + 1);
        return 0;
    case SET_ENUM:
        assert(s->size == sizeof(int));
        for (i = 0; i < s->nnames; i++) {
            if (strcmp(val, s->names[i]) == 0) {
                int v = (int)i;

                memcpy(field_of(c, s), &v, sizeof v);
                return 0;
            }
        }
        return errorf(err, errlen, "%s: %s is not one of %s (from %s)", s->flag,
                      quote(q, val), s->allowed, from);
    case SET_STORE: {
        char why[160];

        assert(s->size == sizeof(struct config_store));
        if (!parse_store(val, field_of(c, s), why, sizeof why))
            return errorf(err, errlen, "%s: %s (from %s)", s->flag, why, from);
        return 0;
    }
    case SET_NAME:
        if (len >= s->size || strspn(val, NAME_CHARS) != len)
            return errorf(
                err, errlen, "%s: %s must be 1..%zu characters of %s (from %s)",
                s->flag, quote(q, val), s->size - 1, s->allowed, from);
        memcpy(field_of(c, s), val, len + 1);
        return 0;
    case SET_TOKEN:
        return set_token_file(c, s, val, from, err, errlen);
    case SET_SECRET_FILE:
        return set_secret_file(c, s, val, from, err, errlen);
    case SET_BOOL:
        if (!parse_bool(val, &b))
            return errorf(err, errlen,
                          "%s: %s is not a boolean (1/0, true/false, yes/no) "
                          "(from %s)",
                          s->flag, quote(q, val), from);
        *(bool *)field_of(c, s) = b;
        return 0;
    case SET_ACTION:
        break;
    }
    assert(!"set_text: setting takes no value");
    return -EINVAL;
}

static const char *json_kind(const cJSON *item)
{
    if (cJSON_IsString(item))
        return "a string";
    if (cJSON_IsNumber(item))
        return "a number";
    if (cJSON_IsBool(item))
        return "a boolean";
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsArray(item))
        return "an array";
    if (cJSON_IsObject(item))
        return "an object";
    return "an invalid value";
}

/* Set s from one value of the config file. */
static int set_json(struct config *c, const struct setting *s,
                    const cJSON *item, const char *from, char *err,
                    size_t errlen)
{
    double d;

    switch (s->type) {
    case SET_UINT:
        if (!cJSON_IsNumber(item))
            return errorf(err, errlen,
                          "%s: expected a whole number, got %s (from %s)",
                          s->flag, json_kind(item), from);
        /*
         * valueint saturates and truncates, so judge valuedouble: bound it
         * first (this also rejects NaN and infinities) so that the cast to
         * long long is defined, then require it whole and in range.
         */
        d = item->valuedouble;
        if (!(d > -1e18 && d < 1e18))
            goto out_of_range;
        if (d != (double)(long long)d)
            return errorf(err, errlen,
                          "%s: %.15g is not a whole number (from %s)", s->flag,
                          d, from);
        if (d < (double)s->min || d > (double)s->max)
            goto out_of_range;
        assert(s->size == sizeof(unsigned));
        *(unsigned *)field_of(c, s) = (unsigned)d;
        return 0;
    case SET_BOOL:
        if (!cJSON_IsBool(item))
            return errorf(err, errlen,
                          "%s: expected true or false, got %s (from %s)",
                          s->flag, json_kind(item), from);
        *(bool *)field_of(c, s) = cJSON_IsTrue(item);
        return 0;
    case SET_PATH:
    case SET_BIND:
    case SET_ENUM:
    case SET_STORE:
    case SET_NAME:
    case SET_TOKEN:
    case SET_SECRET_FILE:
        if (!cJSON_IsString(item) || item->valuestring == NULL)
            return errorf(err, errlen,
                          "%s: expected a string, got %s (from %s)", s->flag,
                          json_kind(item), from);
        return set_text(c, s, item->valuestring, from, err, errlen);
    case SET_ACTION:
        break;
    }
    assert(!"set_json: setting has no config file key");
    return -EINVAL;

out_of_range:
    return errorf(err, errlen, "%s: %.15g is out of range %lu..%lu (from %s)",
                  s->flag, d, s->min, s->max, from);
}

/* ---- the config file ---------------------------------------------------- */

/*
 * Read all of path into a malloc'ed, NUL-terminated buffer. On success the
 * caller frees *out. Errors name `flag`, since that is where the path came
 * from.
 */
static int read_file(const char *flag, const char *path, char **out,
                     size_t *outlen, char *err, size_t errlen)
{
    char q[QUOTE_BUF];
    char why[128];
    int rc = file_read_all(path, CONFIG_FILE_MAX, out, outlen);

    if (rc == -EFBIG)
        return errorf(err, errlen, "%s: %s is larger than %zu bytes", flag,
                      quote(q, path), CONFIG_FILE_MAX);
    if (rc == -ENOMEM)
        return errorf(err, errlen, "%s: out of memory reading %s", flag,
                      quote(q, path));
    if (rc == FILE_NOT_REGULAR)
        return errorf(err, errlen, "%s: %s is " FILE_NOT_REGULAR_TEXT, flag,
                      quote(q, path));
    if (rc < 0) {
        if (strerror_r(-rc, why, sizeof why) != 0)
            snprintf(why, sizeof why, "error %d", -rc);
        return errorf(err, errlen, "%s: cannot read %s: %s", flag,
                      quote(q, path), why);
    }
    return 0;
}

/* Parse a settings file's text into one JSON object, *out (the caller
 * deletes it). `from` names the file in the message. */
static int parse_object(const char *text, size_t len, const char *from,
                        cJSON **out, char *err, size_t errlen)
{
    const char *end = NULL;
    cJSON *root;

    *out = NULL;
    if (len == 0)
        return errorf(err, errlen, "%s: is empty", from);
    if (strlen(text) != len)
        return errorf(err, errlen, "%s: contains a NUL byte", from);
    /*
     * Count the NUL in the length and require it: cJSON then rejects
     * trailing garbage, and any read past the end lands on the NUL.
     */
    root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (root == NULL) {
        size_t line, col;

        text_line_col(text, len, end, &line, &col);
        return errorf(err, errlen, "%s: invalid JSON at line %zu, column %zu",
                      from, line, col);
    }
    if (!cJSON_IsObject(root)) {
        int rc = errorf(err, errlen, "%s: expected one JSON object, got %s",
                        from, json_kind(root));
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return 0;
}

/* The error for a key no setting has, with a hint where one fits. */
static int unknown_key(const char *key, const char *from, char *err,
                       size_t errlen)
{
    char q[QUOTE_BUF];
    char alt[64];
    size_t i;

    /* Help the user who wrote the flag's spelling, "max-body". */
    for (i = 0; key[i] != '\0' && i + 1 < sizeof alt; i++)
        alt[i] = (char)(key[i] == '-' ? '_' : key[i]);
    alt[i] = '\0';
    if (key[i] == '\0' && strcmp(alt, key) != 0 && find_key(alt) != NULL)
        return errorf(err, errlen,
                      "%s: unknown key %s (write \"%s\": \"_\" for \"-\")",
                      from, quote(q, key), alt);
    if (strcmp(key, "config") == 0)
        return errorf(err, errlen,
                      "%s: key \"config\" is not allowed in a config file",
                      from);
    return errorf(err, errlen, "%s: unknown key %s", from, quote(q, key));
}

/* Apply every key of the file at path to c. */
static int load_file(struct config *c, const char *path, char *err,
                     size_t errlen)
{
    char from[QUOTE_BUF + 16];
    char q[QUOTE_BUF];
    char qpath[QUOTE_BUF];
    bool seen[NSETTINGS] = {false};
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    const cJSON *item;
    int rc;

    rc = read_file("--config", path, &text, &len, err, errlen);
    if (rc < 0)
        goto out;
    quote(qpath, path);
    snprintf(from, sizeof from, "config file %s", qpath);
    rc = parse_object(text, len, from, &root, err, errlen);
    if (rc < 0)
        goto out;

    cJSON_ArrayForEach(item, root)
    {
        const char *key = item->string != NULL ? item->string : "";
        const struct setting *s = find_key(key);
        size_t idx;

        if (s == NULL) {
            rc = unknown_key(key, from, err, errlen);
            goto out;
        }
        idx = (size_t)(s - settings);
        if (seen[idx]) {
            rc = errorf(err, errlen, "%s: duplicate key %s", from,
                        quote(q, key));
            goto out;
        }
        seen[idx] = true;
        rc = set_json(c, s, item, from, err, errlen);
        if (rc < 0)
            goto out;
    }
    rc = 0;

out:
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* ---- the command line --------------------------------------------------- */

struct cli_arg {
    const struct setting *s;
    const char *value; /* NULL for --help and --version */
};

/*
 * Parse the flag at argv[*i] and, for "--name value", its value; always
 * advances *i past what it consumed, even on error, so a caller may skip
 * bad arguments. A value in the next argument must not start with "--", so
 * that "--port --workers 4" reports the missing value of --port.
 */
static int next_cli_arg(int argc, char *const argv[], int *i,
                        struct cli_arg *out, char *err, size_t errlen)
{
    char q[QUOTE_BUF];
    const char *arg = argv[*i];
    const char *eq = NULL;
    const struct setting *s;
    size_t name_len;

    out->s = NULL;
    out->value = NULL;
    (*i)++;
    if (arg[0] != '-' || arg[1] == '\0')
        return errorf(err, errlen,
                      "unexpected argument %s (shopd takes only flags)",
                      quote(q, arg));
    if (arg[1] == '-')
        eq = strchr(arg, '=');
    name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    s = find_flag(arg, name_len);
    if (s == NULL) {
        char name[QUOTE_MAX + 1];

        snprintf(name, sizeof name, "%.*s",
                 (int)(name_len < QUOTE_MAX ? name_len : QUOTE_MAX), arg);
        return errorf(err, errlen, "unknown flag %s (see --help)",
                      quote(q, name));
    }
    out->s = s;
    if (s->type == SET_ACTION) {
        if (eq != NULL)
            return errorf(err, errlen, "%s: takes no value (from command line)",
                          s->flag);
        out->value = NULL;
    } else if (eq != NULL) {
        out->value = eq + 1;
    } else if (s->type == SET_BOOL) {
        out->value = "true";
    } else if (*i < argc && strncmp(argv[*i], "--", 2) != 0) {
        out->value = argv[(*i)++];
    } else {
        return errorf(err, errlen, "%s: missing value (from command line)",
                      s->flag);
    }
    return 0;
}

/* ---- public API --------------------------------------------------------- */

/*
 * The per-address limit when none is set (SPEC §10): a share of the
 * connection limit, so that one address can hold at most a quarter of the
 * connections and the others always find room, yet one load generator
 * (wrk -c2000) fits at the defaults. A per-address limit rather than
 * "the oldest idle connection gives way" (nginx): it refuses the attacker's
 * excess at accept, before any byte is read, and never closes a
 * connection that a well-behaved client is about to use.
 */
static unsigned per_ip_default(unsigned max_connections)
{
    unsigned n = max_connections / CONFIG_PER_IP_SHARE;
    return n > 0 ? n : 1;
}

void config_defaults(struct config *c)
{
    unsigned ncpu = online_cpus();
    size_t i;

    memset(c, 0, sizeof *c);
    for (i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        unsigned long v = s->def;

        switch (s->type) {
        case SET_UINT:
            if (s->def_ncpu)
                v = ncpu < s->min ? s->min : ncpu > s->max ? s->max : ncpu;
            *(unsigned *)field_of(c, s) = (unsigned)v;
            break;
        case SET_PATH:
        case SET_BIND:
        case SET_NAME:
            snprintf(field_of(c, s), s->size, "%s",
                     s->def_text != NULL ? s->def_text : "");
            break;
        case SET_TOKEN:
        case SET_SECRET_FILE:
            break;
        case SET_STORE: {
            char why[160];
            bool ok = parse_store(s->def_text, field_of(c, s), why, sizeof why);

            assert(ok);
            (void)ok;
            break;
        }
        case SET_ENUM: {
            int e = (int)v;

            assert(s->size == sizeof e);
            memcpy(field_of(c, s), &e, sizeof e);
            break;
        }
        case SET_BOOL:
            *(bool *)field_of(c, s) = v != 0;
            break;
        case SET_ACTION:
            break;
        }
    }
    c->max_connections_per_ip = per_ip_default(c->max_connections);
}

/* Apply the environment to c, in table order; the first NAME= entry of a
 * name counts. The config file's own variable is skipped (already read). */
static int load_env(struct config *c, char *const envp[],
                    const struct setting *config_setting, char *err,
                    size_t errlen)
{
    for (size_t k = 0; k < NSETTINGS; k++) {
        const struct setting *s = &settings[k];
        const char *val;
        int rc;

        if (s->env == NULL || s == config_setting)
            continue;
        val = env_get(envp, s->env);
        if (val == NULL)
            continue;
        if (s->type == SET_TOKEN)
            rc = set_token_value(c, s, val, strlen(val), s->env, err, errlen);
        else
            rc = set_text(c, s, val, s->env, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Apply the command line's flags to c, left to right (--help and
 * --version were taken out before). */
static int load_flags(struct config *c, int argc, char *const argv[], char *err,
                      size_t errlen)
{
    struct cli_arg a;

    for (int i = 1; i < argc;) {
        int rc = next_cli_arg(argc, argv, &i, &a, err, errlen);
        if (rc < 0)
            return rc;
        assert(a.s != NULL && a.s->type != SET_ACTION);
        rc = set_text(c, a.s, a.value, "command line", err, errlen);
        if (rc < 0)
            return rc;
        if (a.s->type == SET_STORE && c->store.password[0] != '\0')
            c->store_password_in_argv = true;
    }
    return 0;
}

int config_load(struct config *c, int argc, char *const argv[],
                char *const envp[], enum config_action *action, char *err,
                size_t errlen)
{
    const struct setting *config_setting =
        find_flag("--config", strlen("--config"));
    struct config tmp;
    struct cli_arg a;
    const char *config_path = NULL;
    const char *config_from = "command line";
    int rc;
    int i;

    assert(c != NULL && action != NULL && config_setting != NULL);
    assert(argc == 0 || argv != NULL);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    config_defaults(&tmp);
    /* UINT_MAX: not set by any source (the range tops out far below). */
    tmp.max_connections_per_ip = UINT_MAX;
    *action = CONFIG_RUN;

    /* 1. --help and --version win over everything; find --config. */
    for (i = 1; i < argc;) {
        if (next_cli_arg(argc, argv, &i, &a, NULL, 0) < 0)
            continue;
        assert(a.s != NULL);
        if (a.s->type == SET_ACTION) {
            tmp.max_connections_per_ip = per_ip_default(tmp.max_connections);
            *c = tmp;
            *action = (enum config_action)a.s->def;
            return 0;
        }
        if (a.s == config_setting)
            config_path = a.value;
    }

    /* 2. The config file: --config, else SHOPD_CONFIG. */
    if (config_path == NULL) {
        config_path = env_get(envp, config_setting->env);
        config_from = config_setting->env;
    }
    if (config_path != NULL) {
        rc = set_text(&tmp, config_setting, config_path, config_from, err,
                      errlen);
        if (rc < 0)
            return rc;
        rc = load_file(&tmp, tmp.config_file, err, errlen);
        if (rc < 0)
            return rc;
    }

    /* 3. The environment; 4. the flags, left to right. */
    rc = load_env(&tmp, envp, config_setting, err, errlen);
    if (rc < 0)
        return rc;
    rc = load_flags(&tmp, argc, argv, err, errlen);
    if (rc < 0)
        return rc;
    /* --redis-password-file wins over a password in --store; one copy of
     * the secret is kept. */
    if (tmp.redis_password[0] != '\0') {
        memcpy(tmp.store.password, tmp.redis_password,
               sizeof tmp.store.password);
        memset(tmp.redis_password, 0, sizeof tmp.redis_password);
    }

    if (tmp.max_connections_per_ip == UINT_MAX)
        tmp.max_connections_per_ip = per_ip_default(tmp.max_connections);
    *c = tmp;
    return 0;
}

/* An append-only writer into a caller's buffer that counts what it needed. */
struct help_out {
    char *buf;
    size_t len;
    size_t used;
};

static void out_printf(struct help_out *o, const char *fmt, ...)
    ATTR_PRINTF(2, 3);
static void out_printf(struct help_out *o, const char *fmt, ...)
{
    size_t room = o->used < o->len ? o->len - o->used : 0;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(room > 0 ? o->buf + o->used : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->used += (size_t)n;
}

/* Print a help text indented by 6, one output line per "\n" in it. */
static void out_help_text(struct help_out *o, const char *text)
{
    while (*text != '\0') {
        size_t n = strcspn(text, "\n");

        out_printf(o, "      %.*s\n", (int)n, text);
        text += n;
        if (*text == '\n')
            text++;
    }
}

size_t config_help(char *buf, size_t len)
{
    struct help_out o = {buf, len, 0};
    size_t i;

    if (buf != NULL && len > 0)
        buf[0] = '\0';
    out_printf(&o,
               "Usage: shopd [OPTION]...\n"
               "shopd %s serves a shop over HTTP. Each setting is taken "
               "from, later\nones winning:\n"
               "  built-in default < config file (--config) < SHOPD_* "
               "variable < flag\n"
               "Flags take \"--name value\" or \"--name=value\".\n"
               "\n"
               "  flag                   variable                default; "
               "allowed values\n",
               SHOPD_VERSION);

    for (i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        char name[64];
        char def[32];
        char allowed[48];

        if (s->type == SET_ACTION)
            continue;
        snprintf(name, sizeof name, "%s%s%s", s->flag,
                 s->metavar != NULL ? " " : "",
                 s->metavar != NULL ? s->metavar : "");
        if (s->shown_def != NULL)
            snprintf(def, sizeof def, "%s", s->shown_def);
        else if (s->def_ncpu)
            snprintf(def, sizeof def, "number of CPUs");
        else if (s->type == SET_UINT)
            snprintf(def, sizeof def, "%lu", s->def);
        else if (s->type == SET_ENUM)
            snprintf(def, sizeof def, "%s", s->names[s->def]);
        else if (s->type == SET_BOOL)
            snprintf(def, sizeof def, "%s", s->def ? "on" : "off");
        else
            snprintf(def, sizeof def, "%s", s->def_text);
        if (s->allowed != NULL)
            snprintf(allowed, sizeof allowed, "%s", s->allowed);
        else
            snprintf(allowed, sizeof allowed, "%lu..%lu", s->min, s->max);
        out_printf(&o, "  %-22s %-23s %s; %s\n", name,
                   s->env != NULL ? s->env : "-", def, allowed);
        out_help_text(&o, s->help);
    }
    for (i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        char name[64];

        if (s->type != SET_ACTION)
            continue;
        snprintf(name, sizeof name, "%s, %s", s->flag, s->short_flag);
        out_printf(&o, "  %-22s %s\n", name, s->help);
    }
    out_printf(&o, "  %-22s %s\n", "--probe [URL]",
               "GET URL (default http://127.0.0.1:$SHOPD_PORT/healthz),");
    out_printf(&o, "  %-22s %s\n", "",
               "exit 0 on a 2xx answer, else 1: a container health check");
    out_printf(
        &o,
        "\n"
        "A boolean flag alone means true; --flag=VALUE and the variable take\n"
        "1/0, true/false or yes/no. Numbers are decimal digits only.\n"
        "--help and --version win over every other argument.\n"
        "\n"
        "The config file is one JSON object; its keys are the flag names\n"
        "without dashes, with \"_\" for \"-\", e.g.\n"
        "  {\"port\": 8080, \"queue_capacity\": 4096, \"log_format\": "
        "\"json\"}\n"
        "Numbers are JSON integers, unsafe_inventory is true or false, the\n"
        "rest are strings; unknown keys are an error. Relative paths in it\n"
        "are relative to the working directory, not to the file.\n");
    return o.used;
}

const char *config_version(void)
{
    return SHOPD_VERSION;
}
