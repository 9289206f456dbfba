/*
 * check_config.c - unit tests of the config module: defaults, every source
 * setting every kind of value, precedence, every class of bad value, and
 * the --help/--version actions and text.
 *
 * Environments are passed as explicit envp arrays (never setenv), and
 * config files are mkstemp() files removed by the fixture's teardown.
 */
#include "config/config.h"

#include <check.h>

#include "tests/suites.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SHOPD_VERSION
#define SHOPD_VERSION "0.1.0"
#endif

/* argv and envp arrays as compound literals; argv[0] is "shopd". */
#define ARGV(...) ((char *const[]){"shopd", __VA_ARGS__, NULL})
#define NO_ARGS   ((char *const[]){"shopd", NULL})
#define ENVP(...) ((char *const[]){__VA_ARGS__, NULL})

#define MAX_TEMP 8

static struct config cfg;
static enum config_action action;
static char err[512];
static char temp_paths[MAX_TEMP][64];
static int ntemp;

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    action = CONFIG_RUN;
    err[0] = '\0';
    ntemp = 0;
}

static void teardown(void)
{
    int i;

    for (i = 0; i < ntemp; i++)
        unlink(temp_paths[i]);
    ntemp = 0;
}

/* A temporary file holding `content`; removed by teardown(). */
static char *temp_file(const char *content)
{
    size_t len = strlen(content);
    char *path;
    int fd;

    ck_assert_int_lt(ntemp, MAX_TEMP);
    path = temp_paths[ntemp];
    snprintf(path, sizeof temp_paths[0], "/tmp/check_config_XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ntemp++;
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
    return path;
}

static int load(char *const argv[], char *const envp[])
{
    int argc = 0;

    while (argv[argc] != NULL)
        argc++;
    err[0] = '\0';
    return config_load(&cfg, argc, argv, envp, &action, err, sizeof err);
}

static unsigned expected_cpus(unsigned max)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        return 1;
    return (unsigned long)n > max ? max : (unsigned)n;
}

static void assert_defaults(const struct config *c)
{
    ck_assert_str_eq(c->bind, "0.0.0.0");
    ck_assert_uint_eq(c->port, 8080);
    ck_assert_uint_eq(c->workers, expected_cpus(1024));
    ck_assert_uint_eq(c->queue_capacity, 1024);
    ck_assert_uint_eq(c->http_threads, expected_cpus(256));
    ck_assert_uint_eq(c->work_ms, 0);
    ck_assert_str_eq(c->catalog, "");
    ck_assert_uint_eq(c->max_body, 4096);
    ck_assert_uint_eq(c->max_quantity, 1000);
    ck_assert_uint_eq(c->order_history, 65536);
    ck_assert_uint_eq(c->max_connections, 10000);
    ck_assert_uint_eq(c->conn_timeout, 30);
    ck_assert_uint_eq(c->drain_timeout, 30);
    ck_assert_int_eq(c->log_format, CONFIG_LOG_TEXT);
    ck_assert(!c->unsafe_inventory);
    ck_assert_str_eq(c->config_file, "");
    ck_assert_int_eq(c->store.kind, CONFIG_STORE_MEMORY);
    ck_assert_int_eq(c->sync, CONFIG_SYNC_FULL);
    ck_assert_str_eq(c->instance, "");
    ck_assert_uint_eq(c->reclaim_ms, 5000);
    ck_assert_uint_eq(c->idempotency_ttl, 86400);
    ck_assert_str_eq(c->admin_token, "");
    ck_assert_uint_eq(c->header_timeout, 10);
    ck_assert_uint_eq(c->max_connections_per_ip, 2500);
}

/* The values the "every kind" tests set, whatever the source. */
static void assert_custom(const struct config *c)
{
    ck_assert_str_eq(c->bind, "127.0.0.1");
    ck_assert_uint_eq(c->port, 9000);
    ck_assert_uint_eq(c->workers, 3);
    ck_assert_uint_eq(c->queue_capacity, 64);
    ck_assert_uint_eq(c->http_threads, 5);
    ck_assert_uint_eq(c->work_ms, 7);
    ck_assert_str_eq(c->catalog, "cat.json");
    ck_assert_uint_eq(c->max_body, 100);
    ck_assert_uint_eq(c->max_quantity, 50);
    ck_assert_uint_eq(c->order_history, 10);
    ck_assert_uint_eq(c->max_connections, 20);
    ck_assert_uint_eq(c->conn_timeout, 2);
    ck_assert_uint_eq(c->drain_timeout, 0);
    ck_assert_int_eq(c->log_format, CONFIG_LOG_JSON);
    ck_assert(c->unsafe_inventory);
}

START_TEST(test_config_defaults)
{
    config_defaults(&cfg);
    assert_defaults(&cfg);
}
END_TEST

START_TEST(test_config_no_sources_gives_defaults)
{
    ck_assert_int_eq(load(NO_ARGS, NULL), 0);
    ck_assert_int_eq(action, CONFIG_RUN);
    assert_defaults(&cfg);
    ck_assert_int_eq(load(NO_ARGS, ENVP("PATH=/bin", "HOME=/root")), 0);
    assert_defaults(&cfg);
    ck_assert_int_eq(config_load(&cfg, 0, NULL, NULL, &action, NULL, 0), 0);
    assert_defaults(&cfg);
}
END_TEST

START_TEST(test_config_flags_set_every_kind)
{
    ck_assert_int_eq(
        load(ARGV("--bind", "127.0.0.1", "--port", "9000", "--workers", "3",
                  "--queue-capacity", "64", "--http-threads", "5", "--work-ms",
                  "7", "--catalog", "cat.json", "--max-body", "100",
                  "--max-quantity", "50", "--order-history", "10",
                  "--max-connections", "20", "--conn-timeout", "2",
                  "--drain-timeout", "0", "--log-format", "json",
                  "--unsafe-inventory"),
             NULL),
        0);
    ck_assert_int_eq(action, CONFIG_RUN);
    assert_custom(&cfg);
}
END_TEST

START_TEST(test_config_flags_equals_form)
{
    ck_assert_int_eq(
        load(ARGV("--bind=127.0.0.1", "--port=9000", "--workers=3",
                  "--queue-capacity=64", "--http-threads=5", "--work-ms=7",
                  "--catalog=cat.json", "--max-body=100", "--max-quantity=50",
                  "--order-history=10", "--max-connections=20",
                  "--conn-timeout=2", "--drain-timeout=0", "--log-format=json",
                  "--unsafe-inventory=true"),
             NULL),
        0);
    assert_custom(&cfg);

    ck_assert_int_eq(load(ARGV("--unsafe-inventory=false"), NULL), 0);
    ck_assert(!cfg.unsafe_inventory);
    /* The value after "=" may itself contain "=". */
    ck_assert_int_eq(load(ARGV("--catalog=a=b.json"), NULL), 0);
    ck_assert_str_eq(cfg.catalog, "a=b.json");
}
END_TEST

START_TEST(test_config_env_sets_every_kind)
{
    ck_assert_int_eq(
        load(NO_ARGS,
             ENVP("SHOPD_BIND=127.0.0.1", "SHOPD_PORT=9000", "SHOPD_WORKERS=3",
                  "SHOPD_QUEUE_CAPACITY=64", "SHOPD_HTTP_THREADS=5",
                  "SHOPD_WORK_MS=7", "SHOPD_CATALOG=cat.json",
                  "SHOPD_MAX_BODY=100", "SHOPD_MAX_QUANTITY=50",
                  "SHOPD_ORDER_HISTORY=10", "SHOPD_MAX_CONNECTIONS=20",
                  "SHOPD_CONN_TIMEOUT=2", "SHOPD_DRAIN_TIMEOUT=0",
                  "SHOPD_LOG_FORMAT=json", "SHOPD_UNSAFE_INVENTORY=1")),
        0);
    assert_custom(&cfg);
}
END_TEST

START_TEST(test_config_env_ignores_other_variables)
{
    ck_assert_int_eq(
        load(NO_ARGS, ENVP("SHOPD_BIN=./shopd", "SHOPD_UNKNOWN=", "SHOPD=1",
                           "SHOPD_PORTX=1", "XSHOPD_PORT=1", "NOEQUALS",
                           "shopd_port=1", "PATH=/usr/bin")),
        0);
    assert_defaults(&cfg);
}
END_TEST

START_TEST(test_config_env_first_entry_wins)
{
    ck_assert_int_eq(load(NO_ARGS, ENVP("SHOPD_PORT=1", "SHOPD_PORT=2")), 0);
    ck_assert_uint_eq(cfg.port, 1);
}
END_TEST

START_TEST(test_config_file_sets_every_kind)
{
    char *path = temp_file(
        "{\n"
        "  \"bind\": \"127.0.0.1\", \"port\": 9000, \"workers\": 3,\n"
        "  \"queue_capacity\": 64, \"http_threads\": 5, \"work_ms\": 7,\n"
        "  \"catalog\": \"cat.json\", \"max_body\": 100,\n"
        "  \"max_quantity\": 50, \"order_history\": 10,\n"
        "  \"max_connections\": 20, \"conn_timeout\": 2,\n"
        "  \"drain_timeout\": 0, \"log_format\": \"json\",\n"
        "  \"unsafe_inventory\": true\n"
        "}\n");

    ck_assert_int_eq(load(ARGV("--config", path), NULL), 0);
    assert_custom(&cfg);
    ck_assert_str_eq(cfg.config_file, path);
}
END_TEST

START_TEST(test_config_file_empty_object_gives_defaults)
{
    char *path = temp_file("  {}  \n");

    ck_assert_int_eq(load(ARGV("--config", path), NULL), 0);
    ck_assert_str_eq(cfg.config_file, path);
    cfg.config_file[0] = '\0';
    assert_defaults(&cfg);
}
END_TEST

START_TEST(test_config_file_from_env_and_flag)
{
    char *a = temp_file("{\"port\": 1111}");
    char *b = temp_file("{\"port\": 2222}");
    char env[128];

    snprintf(env, sizeof env, "SHOPD_CONFIG=%s", a);
    ck_assert_int_eq(load(NO_ARGS, ENVP(env)), 0);
    ck_assert_uint_eq(cfg.port, 1111);
    ck_assert_str_eq(cfg.config_file, a);

    /* --config beats SHOPD_CONFIG; the variable's file is not read. */
    ck_assert_int_eq(load(ARGV("--config", b), ENVP(env)), 0);
    ck_assert_uint_eq(cfg.port, 2222);
    ck_assert_str_eq(cfg.config_file, b);

    ck_assert_int_eq(
        load(ARGV("--config", "/nonexistent/x.json", "--config", b), NULL), 0);
    ck_assert_uint_eq(cfg.port, 2222);
}
END_TEST

START_TEST(test_config_precedence_file_env_flag)
{
    char *path = temp_file("{\"port\": 1000, \"log_format\": \"json\", "
                           "\"unsafe_inventory\": true}");

    /* All three sources set the port: the flag wins. */
    ck_assert_int_eq(
        load(ARGV("--config", path, "--port", "3000"), ENVP("SHOPD_PORT=2000")),
        0);
    ck_assert_uint_eq(cfg.port, 3000);
    /* No flag: the environment beats the file. */
    ck_assert_int_eq(load(ARGV("--config", path), ENVP("SHOPD_PORT=2000")), 0);
    ck_assert_uint_eq(cfg.port, 2000);
    /* File only. */
    ck_assert_int_eq(load(ARGV("--config", path), NULL), 0);
    ck_assert_uint_eq(cfg.port, 1000);
    /* Flag over file without the environment; --config may come last. */
    ck_assert_int_eq(load(ARGV("--port", "3000", "--config", path), NULL), 0);
    ck_assert_uint_eq(cfg.port, 3000);

    /* Strings and booleans follow the same order. */
    ck_assert_int_eq(
        load(ARGV("--config", path, "--log-format", "text"),
             ENVP("SHOPD_LOG_FORMAT=json", "SHOPD_UNSAFE_INVENTORY=no")),
        0);
    ck_assert_int_eq(cfg.log_format, CONFIG_LOG_TEXT);
    ck_assert(!cfg.unsafe_inventory);
    ck_assert_int_eq(load(ARGV("--config", path, "--unsafe-inventory"),
                          ENVP("SHOPD_UNSAFE_INVENTORY=false")),
                     0);
    ck_assert(cfg.unsafe_inventory);
}
END_TEST

START_TEST(test_config_last_flag_wins)
{
    ck_assert_int_eq(load(ARGV("--port", "1", "--port=2", "--port", "3"), NULL),
                     0);
    ck_assert_uint_eq(cfg.port, 3);
}
END_TEST

START_TEST(test_config_bool_words)
{
    static const char *const yes[] = {
        "SHOPD_UNSAFE_INVENTORY=1", "SHOPD_UNSAFE_INVENTORY=true",
        "SHOPD_UNSAFE_INVENTORY=yes", "SHOPD_UNSAFE_INVENTORY=TRUE"};
    static const char *const no[] = {"SHOPD_UNSAFE_INVENTORY=0",
                                     "SHOPD_UNSAFE_INVENTORY=false",
                                     "SHOPD_UNSAFE_INVENTORY=no"};
    size_t i;

    for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        ck_assert_int_eq(load(NO_ARGS, ENVP((char *)yes[i])), 0);
        ck_assert_msg(cfg.unsafe_inventory, "%s", yes[i]);
    }
    for (i = 0; i < sizeof no / sizeof no[0]; i++) {
        ck_assert_int_eq(load(NO_ARGS, ENVP((char *)no[i])), 0);
        ck_assert_msg(!cfg.unsafe_inventory, "%s", no[i]);
    }
    ck_assert_int_eq(load(ARGV("--unsafe-inventory=yes"), NULL), 0);
    ck_assert(cfg.unsafe_inventory);
    ck_assert_int_eq(load(ARGV("--unsafe-inventory=0"), NULL), 0);
    ck_assert(!cfg.unsafe_inventory);
}
END_TEST

START_TEST(test_config_bind_forms)
{
    ck_assert_int_eq(load(ARGV("--bind", "localhost"), NULL), 0);
    ck_assert_str_eq(cfg.bind, "127.0.0.1");
    ck_assert_int_eq(load(ARGV("--bind", "*"), NULL), 0);
    ck_assert_str_eq(cfg.bind, "0.0.0.0");
    ck_assert_int_eq(load(ARGV("--bind", "::1"), NULL), 0);
    ck_assert_str_eq(cfg.bind, "::1");
    ck_assert_int_eq(load(ARGV("--bind", "[::1]"), NULL), 0);
    ck_assert_str_eq(cfg.bind, "::1");
    ck_assert_int_eq(load(ARGV("--bind=::"), NULL), 0);
    ck_assert_str_eq(cfg.bind, "::");
    ck_assert_int_eq(load(NO_ARGS, ENVP("SHOPD_BIND=192.168.1.20")), 0);
    ck_assert_str_eq(cfg.bind, "192.168.1.20");
}
END_TEST

START_TEST(test_config_range_limits_accepted)
{
    ck_assert_int_eq(
        load(ARGV("--port", "0", "--workers", "1", "--queue-capacity", "1",
                  "--http-threads", "1", "--work-ms", "0", "--max-body", "16",
                  "--max-quantity", "1", "--order-history", "1",
                  "--max-connections", "1", "--conn-timeout", "1",
                  "--drain-timeout", "0"),
             NULL),
        0);
    ck_assert_uint_eq(cfg.port, 0);
    ck_assert_uint_eq(cfg.max_body, 16);
    ck_assert_uint_eq(cfg.conn_timeout, 1);

    ck_assert_int_eq(
        load(ARGV("--port", "65535", "--workers", "1024", "--queue-capacity",
                  "16777216", "--http-threads", "256", "--work-ms", "60000",
                  "--max-body", "67108864", "--max-quantity", "1000000000",
                  "--order-history", "16777216", "--max-connections", "1000000",
                  "--conn-timeout", "86400", "--drain-timeout", "3600"),
             NULL),
        0);
    ck_assert_uint_eq(cfg.port, 65535);
    ck_assert_uint_eq(cfg.workers, 1024);
    ck_assert_uint_eq(cfg.queue_capacity, 16777216);
    ck_assert_uint_eq(cfg.http_threads, 256);
    ck_assert_uint_eq(cfg.work_ms, 60000);
    ck_assert_uint_eq(cfg.max_body, 67108864);
    ck_assert_uint_eq(cfg.max_quantity, 1000000000);
    ck_assert_uint_eq(cfg.order_history, 16777216);
    ck_assert_uint_eq(cfg.max_connections, 1000000);
    ck_assert_uint_eq(cfg.conn_timeout, 86400);
    ck_assert_uint_eq(cfg.drain_timeout, 3600);

    /* Leading zeros are still decimal. */
    ck_assert_int_eq(load(ARGV("--port", "0080"), NULL), 0);
    ck_assert_uint_eq(cfg.port, 80);
}
END_TEST

START_TEST(test_config_store_forms)
{
    char desc[256];

    ck_assert_int_eq(load(ARGV("--store", "sqlite:/data/shop.db"), NULL), 0);
    ck_assert_int_eq(cfg.store.kind, CONFIG_STORE_SQLITE);
    ck_assert_str_eq(cfg.store.path, "/data/shop.db");

    ck_assert_int_eq(load(ARGV("--store", "redis://cache"), NULL), 0);
    ck_assert_int_eq(cfg.store.kind, CONFIG_STORE_REDIS);
    ck_assert_str_eq(cfg.store.host, "cache");
    ck_assert_uint_eq(cfg.store.port, 6379);
    ck_assert_uint_eq(cfg.store.db, 0);
    ck_assert_str_eq(cfg.store.password, "");

    ck_assert_int_eq(
        load(ARGV("--store", "redis://:s3cr@t@10.0.0.5:6380/2"), NULL), 0);
    ck_assert_str_eq(cfg.store.host, "10.0.0.5");
    ck_assert_uint_eq(cfg.store.port, 6380);
    ck_assert_uint_eq(cfg.store.db, 2);
    ck_assert_str_eq(cfg.store.password, "s3cr@t");
    /* The description a log line shows hides the password. */
    config_store_describe(&cfg.store, desc, sizeof desc);
    ck_assert_str_eq(desc, "redis://:***@10.0.0.5:6380/2");

    ck_assert_int_eq(load(ARGV("--store", "redis://[::1]:7000/"), NULL), 0);
    ck_assert_str_eq(cfg.store.host, "::1");
    ck_assert_uint_eq(cfg.store.port, 7000);
    config_store_describe(&cfg.store, desc, sizeof desc);
    ck_assert_str_eq(desc, "redis://[::1]:7000/0");

    ck_assert_int_eq(load(ARGV("--store", "unix:///tmp/r.sock?db=3"), NULL), 0);
    ck_assert_int_eq(cfg.store.kind, CONFIG_STORE_REDIS);
    ck_assert_str_eq(cfg.store.path, "/tmp/r.sock");
    ck_assert_str_eq(cfg.store.host, "");
    ck_assert_uint_eq(cfg.store.db, 3);

    /* Environment and file spell it the same way; flags still win. */
    ck_assert_int_eq(
        load(NO_ARGS, ENVP("SHOPD_STORE=sqlite:a.db", "SHOPD_SYNC=normal")), 0);
    ck_assert_int_eq(cfg.store.kind, CONFIG_STORE_SQLITE);
    ck_assert_int_eq(cfg.sync, CONFIG_SYNC_NORMAL);
    ck_assert_int_eq(
        load(ARGV("--store", "memory"), ENVP("SHOPD_STORE=sqlite:a.db")), 0);
    ck_assert_int_eq(cfg.store.kind, CONFIG_STORE_MEMORY);
    char *path = temp_file("{\"store\": \"sqlite:f.db\", \"sync\": "
                           "\"normal\", \"instance\": \"a-1\"}");
    ck_assert_int_eq(load(ARGV("--config", path), NULL), 0);
    ck_assert_str_eq(cfg.store.path, "f.db");
    ck_assert_int_eq(cfg.sync, CONFIG_SYNC_NORMAL);
    ck_assert_str_eq(cfg.instance, "a-1");
}
END_TEST

START_TEST(test_config_new_numbers_and_names)
{
    ck_assert_int_eq(
        load(ARGV("--reclaim-ms", "100", "--idempotency-ttl", "1",
                  "--header-timeout", "1", "--max-connections-per-ip", "0",
                  "--instance", "web-1.example:8080"),
             NULL),
        0);
    ck_assert_uint_eq(cfg.reclaim_ms, 100);
    ck_assert_uint_eq(cfg.idempotency_ttl, 1);
    ck_assert_uint_eq(cfg.header_timeout, 1);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 0);
    ck_assert_str_eq(cfg.instance, "web-1.example:8080");
    ck_assert_int_eq(load(NO_ARGS, ENVP("SHOPD_RECLAIM_MS=3600000",
                                        "SHOPD_IDEMPOTENCY_TTL=31536000",
                                        "SHOPD_HEADER_TIMEOUT=3600",
                                        "SHOPD_MAX_CONNECTIONS_PER_IP=50")),
                     0);
    ck_assert_uint_eq(cfg.reclaim_ms, 3600000);
    ck_assert_uint_eq(cfg.idempotency_ttl, 31536000);
    ck_assert_uint_eq(cfg.header_timeout, 3600);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 50);
}
END_TEST

/* The per-address limit is on by default (SPEC §10): a quarter of
 * --max-connections unless set, from whichever source sets that. */
START_TEST(test_config_per_ip_default_share)
{
    ck_assert_int_eq(load(ARGV("--max-connections", "400"), NULL), 0);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 100);
    ck_assert_int_eq(load(NO_ARGS, ENVP("SHOPD_MAX_CONNECTIONS=3")), 0);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 1);
    ck_assert_int_eq(
        load(ARGV("--max-connections", "400", "--max-connections-per-ip", "0"),
             NULL),
        0);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 0);
    ck_assert_int_eq(load(ARGV("--max-connections-per-ip", "7000"), NULL), 0);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 7000);
}
END_TEST

START_TEST(test_config_admin_token_sources)
{
    /* The first line of the file, without its CR/LF. */
    char *file = temp_file("0123456789abcdefFILE\r\nsecond line\n");
    char *other = temp_file("fromtheconfigfile-token\n");
    char conf[256];

    ck_assert_int_eq(load(ARGV("--admin-token-file", file), NULL), 0);
    ck_assert_str_eq(cfg.admin_token, "0123456789abcdefFILE");
    /* The variable holds the token itself. */
    ck_assert_int_eq(
        load(NO_ARGS, ENVP("SHOPD_ADMIN_TOKEN=abcdefghijklmnopENV")), 0);
    ck_assert_str_eq(cfg.admin_token, "abcdefghijklmnopENV");
    /* The flag wins over the variable. */
    ck_assert_int_eq(load(ARGV("--admin-token-file", file),
                          ENVP("SHOPD_ADMIN_TOKEN=abcdefghijklmnopENV")),
                     0);
    ck_assert_str_eq(cfg.admin_token, "0123456789abcdefFILE");
    /* An empty variable means no token, even over the config file. */
    snprintf(conf, sizeof conf, "{\"admin_token_file\": \"%s\"}", other);
    char *cf = temp_file(conf);
    ck_assert_int_eq(load(ARGV("--config", cf), NULL), 0);
    ck_assert_str_eq(cfg.admin_token, "fromtheconfigfile-token");
    ck_assert_int_eq(load(ARGV("--config", cf), ENVP("SHOPD_ADMIN_TOKEN=")), 0);
    ck_assert_str_eq(cfg.admin_token, "");
}
END_TEST

/* --redis-password-file: the first line, trailing CR/LF dropped; it wins
 * over a password in --store from any source; a password written in
 * --store on the command line (only there) is flagged for a warning. */
START_TEST(test_config_redis_password_file)
{
    char *file = temp_file("pw-from-file\r\nsecond line\n");
    char conf[256];

    ck_assert_int_eq(
        load(ARGV("--store", "redis://h:6379/0", "--redis-password-file", file),
             NULL),
        0);
    ck_assert_str_eq(cfg.store.password, "pw-from-file");
    ck_assert_str_eq(cfg.redis_password, "");
    ck_assert(!cfg.store_password_in_argv);
    /* The file wins over the URL, whichever comes first. */
    ck_assert_int_eq(load(ARGV("--redis-password-file", file, "--store",
                               "redis://:in-url@h:6379/0"),
                          NULL),
                     0);
    ck_assert_str_eq(cfg.store.password, "pw-from-file");
    ck_assert(cfg.store_password_in_argv);
    /* From the variable: no warning. */
    ck_assert_int_eq(
        load(NO_ARGS, ENVP("SHOPD_STORE=redis://:in-env@h:6379/0")), 0);
    ck_assert_str_eq(cfg.store.password, "in-env");
    ck_assert(!cfg.store_password_in_argv);
    /* From the config file: no warning either, and the key works. */
    snprintf(conf, sizeof conf,
             "{\"store\": \"redis://:in-conf@h/0\", "
             "\"redis_password_file\": \"%s\"}",
             file);
    char *cf = temp_file(conf);
    ck_assert_int_eq(load(ARGV("--config", cf), NULL), 0);
    ck_assert_str_eq(cfg.store.password, "pw-from-file");
    ck_assert(!cfg.store_password_in_argv);
    /* An empty first line, a directory: one error, no secret. */
    char *empty = temp_file("\nnext-line-secret\n");
    ck_assert_int_eq(load(ARGV("--redis-password-file", empty), NULL), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--redis-password-file"));
    ck_assert_ptr_null(strstr(err, "next-line-secret"));
    ck_assert_int_eq(load(ARGV("--redis-password-file", "/tmp"), NULL),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
}
END_TEST

/* The catalog, config and token files are regular files or an error:
 * a FIFO never blocks the load. */
START_TEST(test_config_fifo_is_an_error)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/check_config_fifo_%ld", (long)getpid());
    unlink(path);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(load(ARGV("--config", path), NULL), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    ck_assert_int_eq(load(ARGV("--admin-token-file", path), NULL), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    unlink(path);
}
END_TEST

START_TEST(test_config_admin_token_never_in_errors)
{
    char *shortfile = temp_file("short-SECRET\n");

    ck_assert_int_eq(load(NO_ARGS, ENVP("SHOPD_ADMIN_TOKEN=tiny-SECRET")),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "at least") ? err : strstr(err, "16"));
    ck_assert_ptr_null(strstr(err, "SECRET"));
    ck_assert_int_eq(load(ARGV("--admin-token-file", shortfile), NULL),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--admin-token-file"));
    ck_assert_ptr_null(strstr(err, "SECRET"));
    ck_assert_int_eq(
        load(NO_ARGS, ENVP("SHOPD_ADMIN_TOKEN=has a space SECRET 123")),
        -EINVAL);
    ck_assert_ptr_null(strstr(err, "SECRET"));
    /* A Redis password in a bad URL is not echoed either. */
    ck_assert_int_eq(load(ARGV("--store", "redis://:SECRET@host:99999"), NULL),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--store"));
    ck_assert_ptr_null(strstr(err, "SECRET"));
}
END_TEST

/* One bad input: argv after argv[0], envp, and optionally a config file. */
struct bad_case {
    const char *args[5];
    const char *env[3];
    const char *file;  /* content of a temp config file, or NULL */
    bool file_via_env; /* name it in SHOPD_CONFIG instead of --config */
    const char *want[2];
};

static const struct bad_case bad_cases[] = {
    /* Numbers on the command line. */
    {{"--workers", "abc"},
     {0},
     NULL,
     false,
     {"--workers: \"abc\" is not a whole number (from command line)"}},
    {{"--port", "-1"}, {0}, NULL, false, {"--port", "out of range 0..65535"}},
    {{"--port=-80"}, {0}, NULL, false, {"--port", "out of range"}},
    {{"--port", "65536"},
     {0},
     NULL,
     false,
     {"--port: \"65536\" is out of range 0..65535 (from command line)"}},
    {{"--workers", "0"}, {0}, NULL, false, {"--workers", "range 1..1024"}},
    {{"--workers", "1025"}, {0}, NULL, false, {"--workers", "range 1..1024"}},
    {{"--max-body", "15"}, {0}, NULL, false, {"--max-body", "16..67108864"}},
    {{"--port", "80x"}, {0}, NULL, false, {"--port", "not a whole number"}},
    {{"--port", " 80"}, {0}, NULL, false, {"--port", "not a whole number"}},
    {{"--port", "+80"}, {0}, NULL, false, {"--port", "not a whole number"}},
    {{"--port", "0x50"}, {0}, NULL, false, {"--port", "not a whole number"}},
    {{"--port", "1e3"}, {0}, NULL, false, {"--port", "not a whole number"}},
    {{"--port", "8.0"}, {0}, NULL, false, {"--port", "not a whole number"}},
    {{"--max-quantity", "99999999999999999999999"},
     {0},
     NULL,
     false,
     {"--max-quantity", "out of range"}},
    {{"--queue-capacity", "4294967297"},
     {0},
     NULL,
     false,
     {"--queue-capacity", "out of range"}},
    {{"--port="}, {0}, NULL, false, {"--port: empty value"}},
    /* Numbers in the environment. */
    {{0},
     {"SHOPD_PORT="},
     NULL,
     false,
     {"--port: empty value (from SHOPD_PORT)"}},
    {{0},
     {"SHOPD_PORT=99999"},
     NULL,
     false,
     {"--port: \"99999\" is out of range 0..65535 (from SHOPD_PORT)"}},
    {{0},
     {"SHOPD_WORKERS=two"},
     NULL,
     false,
     {"--workers", "(from SHOPD_WORKERS)"}},
    {{0},
     {"SHOPD_WORK_MS=60001"},
     NULL,
     false,
     {"--work-ms", "(from SHOPD_WORK_MS)"}},
    /* Strings and booleans. */
    {{"--bind", "999.0.0.1"}, {0}, NULL, false, {"--bind", "not an IPv4"}},
    {{"--bind", "example.com"}, {0}, NULL, false, {"--bind", "not an IPv4"}},
    {{"--bind", "[127.0.0.1]"}, {0}, NULL, false, {"--bind", "not an IPv4"}},
    {{0}, {"SHOPD_BIND=1.2.3"}, NULL, false, {"--bind", "SHOPD_BIND"}},
    {{"--log-format", "xml"},
     {0},
     NULL,
     false,
     {"--log-format: \"xml\" is not one of text|json"}},
    {{0},
     {"SHOPD_LOG_FORMAT=JSON"},
     NULL,
     false,
     {"--log-format", "SHOPD_LOG_FORMAT"}},
    {{"--catalog", ""}, {0}, NULL, false, {"--catalog: empty value"}},
    {{"--unsafe-inventory=maybe"},
     {0},
     NULL,
     false,
     {"--unsafe-inventory", "\"maybe\" is not a boolean"}},
    {{0},
     {"SHOPD_UNSAFE_INVENTORY=2"},
     NULL,
     false,
     {"--unsafe-inventory", "SHOPD_UNSAFE_INVENTORY"}},
    /* The shape of the command line. */
    {{"--bogus"}, {0}, NULL, false, {"unknown flag \"--bogus\""}},
    {{"--bogus=1"}, {0}, NULL, false, {"unknown flag \"--bogus\""}},
    {{"-x"}, {0}, NULL, false, {"unknown flag \"-x\""}},
    {{"--queue_capacity", "4"},
     {0},
     NULL,
     false,
     {"unknown flag \"--queue_capacity\""}},
    {{"--"}, {0}, NULL, false, {"unknown flag \"--\""}},
    {{"--port"}, {0}, NULL, false, {"--port: missing value"}},
    {{"--port", "--workers", "2"}, {0}, NULL, false, {"--port: missing value"}},
    {{"extra"}, {0}, NULL, false, {"unexpected argument \"extra\""}},
    {{"--port", "80", "extra"},
     {0},
     NULL,
     false,
     {"unexpected argument \"extra\""}},
    {{"-"}, {0}, NULL, false, {"unexpected argument \"-\""}},
    {{"--unsafe-inventory", "true"},
     {0},
     NULL,
     false,
     {"unexpected argument \"true\""}},
    {{"--help=yes"}, {0}, NULL, false, {"--help: takes no value"}},
    /* The config file. */
    {{0},
     {0},
     "{\"colour\": 1}",
     false,
     {"config file \"/tmp/check_config_", "unknown key \"colour\""}},
    {{0}, {0}, "{\"Port\": 1}", false, {"config file", "unknown key \"Port\""}},
    {{0},
     {0},
     "{\"queue-capacity\": 1}",
     false,
     {"unknown key \"queue-capacity\"", "queue_capacity"}},
    {{0}, {0}, "{\"help\": true}", false, {"unknown key \"help\""}},
    {{0},
     {0},
     "{\"config\": \"x.json\"}",
     false,
     {"config file", "\"config\""}},
    {{0},
     {0},
     "{\"port\": 1,\n \"port\": 2}",
     false,
     {"config file", "duplicate key \"port\""}},
    {{0},
     {0},
     "{\"port\": 80,}",
     false,
     {"config file", "invalid JSON at line 1"}},
    {{0},
     {0},
     "{\"port\": 80}\ntrailing",
     false,
     {"config file", "invalid JSON at line 2"}},
    {{0}, {0}, "", false, {"config file", "is empty"}},
    {{0}, {0}, "[1, 2]", false, {"config file", "expected one JSON object"}},
    {{0}, {0}, "\"port\"", false, {"config file", "got a string"}},
    {{0},
     {0},
     "{\"port\": \"80\"}",
     false,
     {"--port: expected a whole number, got a string (from config file "}},
    {{0}, {0}, "{\"port\": null}", false, {"--port", "got null"}},
    {{0}, {0}, "{\"port\": true}", false, {"--port", "got a boolean"}},
    {{0},
     {0},
     "{\"port\": 80.5}",
     false,
     {"--port: 80.5 is not a whole number (from config file "}},
    {{0},
     {0},
     "{\"port\": -1}",
     false,
     {"--port: -1 is out of range 0..65535 (from config file "}},
    {{0}, {0}, "{\"port\": 70000}", false, {"--port", "out of range"}},
    {{0}, {0}, "{\"workers\": 0}", false, {"--workers", "out of range"}},
    {{0}, {0}, "{\"workers\": 1e300}", false, {"--workers", "out of range"}},
    {{0},
     {0},
     "{\"max_quantity\": 9007199254740993}",
     false,
     {"--max-quantity", "out of range"}},
    {{0},
     {0},
     "{\"unsafe_inventory\": 1}",
     false,
     {"--unsafe-inventory: expected true or false, got a number"}},
    {{0},
     {0},
     "{\"bind\": 1}",
     false,
     {"--bind: expected a string, got a number"}},
    {{0}, {0}, "{\"bind\": \"nowhere\"}", false, {"--bind", "config file"}},
    {{0},
     {0},
     "{\"log_format\": \"xml\"}",
     false,
     {"--log-format", "(from config file \"/tmp/check_config_"}},
    {{0}, {0}, "{\"catalog\": \"\"}", false, {"--catalog: empty value"}},
    {{0}, {0}, "{\"catalog\": [\"a\"]}", false, {"--catalog", "got an array"}},
    {{0}, {0}, "{\"port\": 99999}", true, {"--port", "from config file"}},
    {{"--config", "/nonexistent/shopd.json"},
     {0},
     NULL,
     false,
     {"--config: cannot read \"/nonexistent/shopd.json\": No such file or "
      "directory"}},
    {{0},
     {"SHOPD_CONFIG=/nonexistent/x.json"},
     NULL,
     false,
     {"--config: cannot read \"/nonexistent/x.json\""}},
    {{"--config", "/tmp"},
     {0},
     NULL,
     false,
     {"--config", "not a regular file"}},
    {{0}, {"SHOPD_CONFIG="}, NULL, false, {"--config: empty value"}},
    {{"--config"}, {0}, NULL, false, {"--config: missing value"}},
    /* Stores (SPEC §7): a malformed --store is exit status 2. */
    {{"--store", "postgres://x"}, {0}, NULL, false, {"--store", "expected"}},
    {{"--store", "sqlite:"}, {0}, NULL, false, {"--store", "file path"}},
    {{"--store", "redis://"}, {0}, NULL, false, {"--store", "host"}},
    {{"--store", "redis://h:0"}, {0}, NULL, false, {"--store", "port"}},
    {{"--store", "redis://h:65536"}, {0}, NULL, false, {"--store", "port"}},
    {{"--store", "redis://h:12x"}, {0}, NULL, false, {"--store", "port"}},
    {{"--store", "redis://h/abc"}, {0}, NULL, false, {"--store", "database"}},
    {{"--store", "rediss://h"}, {0}, NULL, false, {"--store", "TLS"}},
    {{"--store", "unix://"}, {0}, NULL, false, {"--store", "socket path"}},
    {{"--store", "unix:///s?x=1"}, {0}, NULL, false, {"--store", "?db="}},
    {{0}, {"SHOPD_STORE="}, NULL, false, {"--store: empty value"}},
    {{"--sync", "always"}, {0}, NULL, false, {"--sync", "full|normal"}},
    {{"--instance", "a b"}, {0}, NULL, false, {"--instance", "characters"}},
    {{"--reclaim-ms", "99"},
     {0},
     NULL,
     false,
     {"--reclaim-ms", "out of range 100..3600000"}},
    {{"--idempotency-ttl", "0"},
     {0},
     NULL,
     false,
     {"--idempotency-ttl", "out of range 1..31536000"}},
    {{"--header-timeout", "0"}, {0}, NULL, false, {"--header-timeout"}},
    {{"--max-connections-per-ip", "x"},
     {0},
     NULL,
     false,
     {"--max-connections-per-ip"}},
    {{"--admin-token-file", "/nonexistent/tok"},
     {0},
     NULL,
     false,
     {"--admin-token-file: cannot read"}},
    {{0},
     {"SHOPD_ADMIN_TOKEN=123456789012345"},
     NULL,
     false,
     {"--admin-token-file", "at least"}},
    {{0}, {0}, "{\"store\": \"ftp://x\"}", false, {"--store", "config file"}},
};

#define N_BAD_CASES ((int)(sizeof bad_cases / sizeof bad_cases[0]))

START_TEST(test_config_rejects_bad_values)
{
    const struct bad_case *bc = &bad_cases[_i];
    char *argv[16];
    char *envp[8];
    char env_config[128];
    char *path = NULL;
    int argc = 0;
    int envc = 0;
    size_t k;
    int rc;

    if (bc->file != NULL)
        path = temp_file(bc->file);
    argv[argc++] = "shopd";
    if (path != NULL && !bc->file_via_env) {
        argv[argc++] = "--config";
        argv[argc++] = path;
    }
    for (k = 0; k < 5 && bc->args[k] != NULL; k++)
        argv[argc++] = (char *)bc->args[k];
    argv[argc] = NULL;
    if (path != NULL && bc->file_via_env) {
        snprintf(env_config, sizeof env_config, "SHOPD_CONFIG=%s", path);
        envp[envc++] = env_config;
    }
    for (k = 0; k < 3 && bc->env[k] != NULL; k++)
        envp[envc++] = (char *)bc->env[k];
    envp[envc] = NULL;

    memset(&cfg, 0x5a, sizeof cfg);
    rc = load(argv, envp);
    ck_assert_msg(rc == -EINVAL, "case %d (%s): rc %d, want -EINVAL", _i,
                  bc->want[0], rc);
    ck_assert_int_eq(action, CONFIG_RUN);
    for (k = 0; k < 2; k++)
        if (bc->want[k] != NULL)
            ck_assert_msg(strstr(err, bc->want[k]) != NULL,
                          "case %d: error \"%s\" lacks \"%s\"", _i, err,
                          bc->want[k]);
    ck_assert_ptr_null(strchr(err, '\n'));
    /* A failed load leaves the caller's struct alone. */
    ck_assert_uint_eq(cfg.port, 0x5a5a5a5au);
}
END_TEST

START_TEST(test_config_help_and_version_actions)
{
    ck_assert_int_eq(load(ARGV("--help"), NULL), 0);
    ck_assert_int_eq(action, CONFIG_HELP);
    ck_assert_int_eq(load(ARGV("-h"), NULL), 0);
    ck_assert_int_eq(action, CONFIG_HELP);
    ck_assert_int_eq(load(ARGV("--version"), NULL), 0);
    ck_assert_int_eq(action, CONFIG_VERSION);
    ck_assert_int_eq(load(ARGV("-V"), NULL), 0);
    ck_assert_int_eq(action, CONFIG_VERSION);
    /* The first one given wins. */
    ck_assert_int_eq(load(ARGV("--port", "1", "-V", "--help"), NULL), 0);
    ck_assert_int_eq(action, CONFIG_VERSION);
    ck_assert_int_eq(load(NO_ARGS, NULL), 0);
    ck_assert_int_eq(action, CONFIG_RUN);
}
END_TEST

START_TEST(test_config_help_wins_over_bad_values)
{
    char *path = temp_file("not json");

    ck_assert_int_eq(load(ARGV("--port", "abc", "--help"), NULL), 0);
    ck_assert_int_eq(action, CONFIG_HELP);
    ck_assert_int_eq(load(ARGV("--bogus", "stray", "-h"), NULL), 0);
    ck_assert_int_eq(action, CONFIG_HELP);
    ck_assert_int_eq(load(ARGV("--version"), ENVP("SHOPD_PORT=abc")), 0);
    ck_assert_int_eq(action, CONFIG_VERSION);
    ck_assert_int_eq(load(ARGV("--config", path, "--help"), NULL), 0);
    ck_assert_int_eq(action, CONFIG_HELP);
    ck_assert_int_eq(load(ARGV("--config", "/nonexistent", "-V"), NULL), 0);
    ck_assert_int_eq(action, CONFIG_VERSION);
}
END_TEST

START_TEST(test_config_help_lists_every_setting)
{
    static const char *const needles[] = {
        "--bind",
        "SHOPD_BIND",
        "--port",
        "SHOPD_PORT",
        "--workers",
        "SHOPD_WORKERS",
        "--queue-capacity",
        "SHOPD_QUEUE_CAPACITY",
        "--http-threads",
        "SHOPD_HTTP_THREADS",
        "--work-ms",
        "SHOPD_WORK_MS",
        "--catalog",
        "SHOPD_CATALOG",
        "--max-body",
        "SHOPD_MAX_BODY",
        "--max-quantity",
        "SHOPD_MAX_QUANTITY",
        "--order-history",
        "SHOPD_ORDER_HISTORY",
        "--max-connections",
        "SHOPD_MAX_CONNECTIONS",
        "--conn-timeout",
        "SHOPD_CONN_TIMEOUT",
        "--drain-timeout",
        "SHOPD_DRAIN_TIMEOUT",
        "--log-format",
        "SHOPD_LOG_FORMAT",
        "--unsafe-inventory",
        "SHOPD_UNSAFE_INVENTORY",
        "--config",
        "SHOPD_CONFIG",
        "--store",
        "SHOPD_STORE",
        "--sync",
        "SHOPD_SYNC",
        "--instance",
        "SHOPD_INSTANCE",
        "--reclaim-ms",
        "SHOPD_RECLAIM_MS",
        "--idempotency-ttl",
        "SHOPD_IDEMPOTENCY_TTL",
        "--admin-token-file",
        "SHOPD_ADMIN_TOKEN",
        "--header-timeout",
        "SHOPD_HEADER_TIMEOUT",
        "--max-connections-per-ip",
        "SHOPD_MAX_CONNECTIONS_PER_IP",
        "--help",
        "--version",
        "--probe [URL]",
        "number of CPUs",
        "0..65535",
        "text|json",
        "8080",
    };
    static char help[8192];
    size_t n = config_help(help, sizeof help);
    size_t i;

    ck_assert_uint_gt(n, 0);
    ck_assert_uint_lt(n, sizeof help);
    ck_assert_uint_eq(strlen(help), n);
    for (i = 0; i < sizeof needles / sizeof needles[0]; i++)
        ck_assert_msg(strstr(help, needles[i]) != NULL, "help lacks %s",
                      needles[i]);
    /* Each setting's flag and variable share a line. */
    for (i = 0; i + 1 < 32; i += 2) {
        const char *line = strstr(help, needles[i + 1]);
        const char *start = line;

        ck_assert_ptr_nonnull(line);
        while (start > help && start[-1] != '\n')
            start--;
        ck_assert_msg(strncmp(start + 2, needles[i], strlen(needles[i])) == 0,
                      "%s is not on the line of %s", needles[i + 1],
                      needles[i]);
    }
}
END_TEST

START_TEST(test_config_help_reports_needed_length)
{
    char small[16];
    size_t need = config_help(NULL, 0);

    ck_assert_uint_gt(need, sizeof small);
    ck_assert_uint_eq(config_help(small, sizeof small), need);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
}
END_TEST

START_TEST(test_config_version)
{
    ck_assert_str_eq(config_version(), SHOPD_VERSION);
}
END_TEST

START_TEST(test_config_error_is_one_line)
{
    ck_assert_int_eq(load(NO_ARGS, ENVP("SHOPD_PORT=8\n0")), -EINVAL);
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_ptr_nonnull(strstr(err, "\"8\\x0a0\""));
}
END_TEST

START_TEST(test_config_error_truncated_to_errlen)
{
    char small[8];
    int rc = config_load(&cfg, 3, ARGV("--port", "abc"), NULL, &action, small,
                         sizeof small);

    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_str_eq(small, "--port:");
    ck_assert_int_eq(
        config_load(&cfg, 2, ARGV("--bogus"), NULL, &action, NULL, 0), -EINVAL);
}
END_TEST

/* Declared here too: the runner declares it, no header is shared. */

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    TCase *bad = tcase_create("bad_values");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_config_defaults);
    tcase_add_test(tc, test_config_no_sources_gives_defaults);
    tcase_add_test(tc, test_config_flags_set_every_kind);
    tcase_add_test(tc, test_config_flags_equals_form);
    tcase_add_test(tc, test_config_env_sets_every_kind);
    tcase_add_test(tc, test_config_env_ignores_other_variables);
    tcase_add_test(tc, test_config_env_first_entry_wins);
    tcase_add_test(tc, test_config_file_sets_every_kind);
    tcase_add_test(tc, test_config_file_empty_object_gives_defaults);
    tcase_add_test(tc, test_config_file_from_env_and_flag);
    tcase_add_test(tc, test_config_precedence_file_env_flag);
    tcase_add_test(tc, test_config_last_flag_wins);
    tcase_add_test(tc, test_config_bool_words);
    tcase_add_test(tc, test_config_bind_forms);
    tcase_add_test(tc, test_config_range_limits_accepted);
    tcase_add_test(tc, test_config_store_forms);
    tcase_add_test(tc, test_config_new_numbers_and_names);
    tcase_add_test(tc, test_config_per_ip_default_share);
    tcase_add_test(tc, test_config_admin_token_sources);
    tcase_add_test(tc, test_config_admin_token_never_in_errors);
    tcase_add_test(tc, test_config_redis_password_file);
    tcase_add_test(tc, test_config_fifo_is_an_error);
    tcase_add_test(tc, test_config_help_and_version_actions);
    tcase_add_test(tc, test_config_help_wins_over_bad_values);
    tcase_add_test(tc, test_config_help_lists_every_setting);
    tcase_add_test(tc, test_config_help_reports_needed_length);
    tcase_add_test(tc, test_config_version);
    tcase_add_test(tc, test_config_error_is_one_line);
    tcase_add_test(tc, test_config_error_truncated_to_errlen);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(bad, setup, teardown);
    tcase_set_timeout(bad, 10);
    tcase_add_loop_test(bad, test_config_rejects_bad_values, 0, N_BAD_CASES);
    suite_add_tcase(s, bad);
    return s;
}
