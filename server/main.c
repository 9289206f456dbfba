/*
 * main.c - wires config, shop and HTTP together and owns the process:
 * signals, start-up errors, the drain on shutdown, exit status.
 *
 * Signals: SIGINT and SIGTERM are blocked before any thread starts, so
 * every thread inherits the mask and only main receives them, with
 * sigwait(). That also works when shopd is PID 1 in a container. On the
 * first signal the shop stops taking orders (503 shutting_down, /readyz
 * 503, Connection: close) while HTTP keeps answering reads; the workers
 * drain the belt; a final stats line is logged; exit 0. A second signal
 * exits at once; a drain past --drain-timeout logs what is left and exits 1.
 *
 * Exit status: 0 after a clean drain, 1 on a run-time failure (port in use,
 * drain timeout), 2 for a bad setting or catalog, 128+N on a second signal.
 */
#include "config/config.h"
#include "server/server.h"
#include "shop/shop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { EXIT_BAD_CONFIG = 2 };

/* Lift the open-file limit so max_connections sockets can be open. */
static void raise_fd_limit(unsigned max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)max_connections + 256;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur =
        rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        log_msg(LOG_WARN,
                "open-file limit %llu is below --max-connections %u; "
                "connections past it will be refused",
                (unsigned long long)rl.rlim_cur, max_connections);
}

/* Zero a secret in a way the compiler may not drop as a dead store. */
static void explicit_wipe(char *p, size_t n)
{
    volatile char *v = p;
    while (n-- > 0)
        *v++ = '\0';
}

/* After the first signal: a second one ends the process at once. */
static void *second_signal(void *arg)
{
    const sigset_t *set = arg;
    int sig = 0;
    if (sigwait(set, &sig) == 0) {
        log_msg(LOG_WARN, "second signal (%s): exiting now",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
        _exit(128 + sig);
    }
    return NULL;
}

static void log_final(struct shop *s, const char *what, enum log_level lvl)
{
    struct shop_snapshot st;
    shop_snapshot(s, &st);
    log_msg(lvl,
            "%s accepted=%llu processed=%llu fulfilled=%llu "
            "out_of_stock=%llu rejected_full=%llu rejected_invalid=%llu "
            "left=%llu",
            what, (unsigned long long)st.accepted,
            (unsigned long long)st.processed, (unsigned long long)st.fulfilled,
            (unsigned long long)st.out_of_stock,
            (unsigned long long)st.rejected_full,
            (unsigned long long)st.rejected_invalid,
            (unsigned long long)shop_left(s));
}

/* Load the catalog named in the config, or the demo one. */
static int load_catalog(const struct config *cfg, struct product **owned,
                        const struct product **list, size_t *n, char *err,
                        size_t errlen)
{
    *owned = NULL;
    if (cfg->catalog[0] == '\0') {
        *list = shop_demo_catalog(n);
        return 0;
    }
    int rc = catalog_load_file(cfg->catalog, owned, n, err, errlen);
    *list = *owned;
    return rc;
}

/*
 * `shopd --probe [URL]`: exit 0 if URL (default: /healthz on 127.0.0.1 and
 * SHOPD_PORT or 8080) answers 2xx, else print why and exit 1. Used as the
 * container HEALTHCHECK, so the image needs no curl.
 */
static int run_probe(int argc, char **argv)
{
    char url[256];
    if (argc >= 3) {
        if ((size_t)snprintf(url, sizeof(url), "%s", argv[2]) >= sizeof(url)) {
            fprintf(stderr, "shopd: probe: URL longer than %zu bytes\n",
                    sizeof(url) - 1);
            return 1;
        }
    } else {
        /* Single-threaded here: the probe runs before anything starts. */
        const char *port =
            getenv("SHOPD_PORT"); // NOLINT(concurrency-mt-unsafe)
        snprintf(url, sizeof(url), "http://127.0.0.1:%s/healthz",
                 port != NULL && port[0] != '\0' ? port : "8080");
    }
    char err[256];
    if (probe_url(url, 2000, err, sizeof(err)) < 0) {
        fprintf(stderr, "shopd: probe %s: %s\n", url, err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--probe") == 0)
        return run_probe(argc, argv);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct config cfg;
    enum config_action action;
    char err[512];
    if (config_load(&cfg, argc, argv, environ, &action, err, sizeof(err)) < 0) {
        fprintf(stderr, "shopd: %s\n", err);
        return EXIT_BAD_CONFIG;
    }
    if (action == CONFIG_HELP) {
        size_t need = config_help(NULL, 0) + 1;
        char *text = malloc(need);
        if (text == NULL)
            return 1;
        config_help(text, need);
        fputs(text, stdout);
        free(text);
        return 0;
    }
    if (action == CONFIG_VERSION) {
        printf("shopd %s\n", config_version());
        return 0;
    }
    log_set_json(cfg.log_format == CONFIG_LOG_JSON);
    if (cfg.store.kind != CONFIG_STORE_MEMORY) {
        char store[CONFIG_PATH_MAX + 64];
        config_store_describe(&cfg.store, store, sizeof(store));
        log_msg(LOG_ERROR, "store %s: this build has only the memory store",
                store);
        return 1;
    }

    struct product *owned = NULL;
    const struct product *catalog = NULL;
    size_t nproducts = 0;
    if (load_catalog(&cfg, &owned, &catalog, &nproducts, err, sizeof(err)) <
        0) {
        fprintf(stderr, "shopd: %s\n", err);
        return EXIT_BAD_CONFIG;
    }
    raise_fd_limit(cfg.max_connections);

    struct shop_config sc = {
        .workers = cfg.workers,
        .queue_capacity = cfg.queue_capacity,
        .order_history = cfg.order_history,
        .work_ms = cfg.work_ms,
        .unsafe_inventory = cfg.unsafe_inventory,
        .idempotency_ttl = cfg.idempotency_ttl,
    };
    int status = 1;
    struct httpd *httpd = NULL;
    struct shop *shop = shop_create(&sc, catalog, nproducts);
    char why[128];
    if (shop == NULL) {
        strerror_r(errno, why, sizeof(why));
        log_msg(LOG_ERROR, "cannot create the shop: %s", why);
        goto out;
    }
    int rc = shop_start(shop);
    if (rc < 0) {
        strerror_r(-rc, why, sizeof(why));
        log_msg(LOG_ERROR, "cannot start %u workers: %s", cfg.workers, why);
        goto out;
    }

    struct app app = {
        .shop = shop,
        .limits = {.max_body = cfg.max_body,
                   .max_quantity = cfg.max_quantity,
                   .http_threads = cfg.http_threads,
                   .admin_enabled = cfg.admin_token[0] != '\0'},
    };
    /* The server keeps only the token's digest; the token itself is wiped
     * from the config once it is no longer needed. */
    if (app.limits.admin_enabled)
        shop_sha256(cfg.admin_token, strlen(cfg.admin_token),
                    app.limits.admin_digest);
    explicit_wipe(cfg.admin_token, sizeof(cfg.admin_token));
    struct httpd_options ho = {
        .bind = cfg.bind,
        .port = cfg.port,
        .threads = cfg.http_threads,
        .max_connections = cfg.max_connections,
        .conn_timeout_s = cfg.conn_timeout,
    };
    httpd = httpd_start(&ho, &app, err, sizeof(err));
    if (httpd == NULL) {
        log_msg(LOG_ERROR, "%s", err);
        shop_drain(shop, NULL);
        goto out;
    }
    log_msg(LOG_INFO,
            "shopd %s listening on %s:%u workers=%u http_threads=%u "
            "queue_capacity=%u products=%zu",
            config_version(), cfg.bind, httpd_port(httpd), cfg.workers,
            cfg.http_threads, cfg.queue_capacity, nproducts);
    log_msg(LOG_INFO, "admin API %s; idempotency keys kept %us",
            app.limits.admin_enabled ? "on (token set)" : "off",
            cfg.idempotency_ttl);
    if (cfg.unsafe_inventory)
        log_msg(LOG_WARN, "UNSAFE INVENTORY: stock is updated without the "
                          "lock (demo) - expect lost updates and oversell");

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    log_msg(LOG_INFO, "%s: draining %llu orders (up to %us)",
            sig == SIGINT ? "SIGINT" : "SIGTERM",
            (unsigned long long)shop_left(shop), cfg.drain_timeout);
    pthread_t watcher;
    if (pthread_create(&watcher, NULL, second_signal, &sigs) == 0)
        pthread_detach(watcher);

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += cfg.drain_timeout;
    shop_stop_accepting(shop);
    if (shop_drain(shop, &deadline) == -ETIMEDOUT) {
        if (shop_left(shop) > 0) {
            log_final(shop, "drain timed out:", LOG_ERROR);
            _exit(1);
        }
        /* Nothing left: the deadline only beat the workers' own exit
         * (e.g. --drain-timeout 0 with an empty belt). Join them. */
        shop_drain(shop, NULL);
    }
    log_final(shop, "drained", LOG_INFO);
    status = 0;
out:
    httpd_end_streams(httpd);
    httpd_stop(httpd);
    shop_destroy(shop);
    free(owned);
    return status;
}
