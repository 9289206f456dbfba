/*
 * main.c - wires config, shop and HTTP together and owns the process:
 * signals, start-up errors, the drain on shutdown, exit status.
 *
 * Signals (SPEC §3): every signal whose default action would end the
 * process and that a person, a terminal, a supervisor or a forgotten timer
 * sends is blocked before any thread starts, so every thread inherits the
 * mask and only main receives them, with sigwait(). That also works when
 * shopd is PID 1 in a container. SIGINT, SIGTERM, SIGHUP, SIGQUIT, the
 * timers and limits (SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ), SIGPWR,
 * SIGIO, SIGSTKFLT and the real-time signals all start the drain: the shop
 * stops taking orders (503 shutting_down, /readyz 503, Connection: close)
 * while HTTP keeps answering reads; the workers drain the belt; a final
 * stats line is logged; exit 0. So no signal loses an order that got a
 * 202. The crash signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
 * SIGTRAP, SIGSYS) keep their default: the process is broken. SIGUSR1 logs
 * one stats line and changes nothing; SIGUSR2 is ignored; SIGPIPE is
 * ignored (a client gone mid-answer fails one write with EPIPE). A second
 * draining request exits at once, but the same signal again within 100 ms
 * of the first is the same request delivered twice (GNU timeout signals
 * the child and then its process group) and is ignored; a drain past
 * --drain-timeout logs what is left and exits 1.
 *
 * Exit status: 0 after a clean drain, 1 on a run-time failure (port in use,
 * drain timeout), 2 for a bad setting or catalog, 128+N on a second signal.
 */
#include "config/config.h"
#include "server/api/api.h"
#include "server/cmd/probe.h"
#include "common/log.h"
#include "server/cmd/catalog_file.h"
#include "server/http/httpd.h"
#include "shop/shop.h"
#include "store/store.h"
#include "common/thread.h"
#include "common/time.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

/* Signals that start the drain (SPEC §3), with their names for the log:
 * every signal whose default action ends the process, except SIGKILL
 * (which cannot be caught), SIGUSR1/SIGUSR2 (below) and the crash signals
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS: the process
 * is broken, a drain could not be trusted). The real-time signals
 * SIGRTMIN..SIGRTMAX (their bounds are not constants) drain too. */
static const struct {
    int sig;
    const char *name;
} drain_signals[] = {
    {SIGINT, "SIGINT"},   {SIGTERM, "SIGTERM"}, {SIGHUP, "SIGHUP"},
    {SIGQUIT, "SIGQUIT"}, {SIGALRM, "SIGALRM"}, {SIGVTALRM, "SIGVTALRM"},
    {SIGPROF, "SIGPROF"}, {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
    {SIGPWR, "SIGPWR"},   {SIGIO, "SIGIO"},     {SIGSTKFLT, "SIGSTKFLT"},
};

/* The same signal again within this many ms of the first is the same
 * request (GNU timeout and process groups deliver it twice). */
#define SIGNAL_REPEAT_MS 100

/* The name of `sig` for the log, into buf ("SIGTERM", "SIGRTMIN+3"). */
static const char *signal_name(int sig, char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof(drain_signals) / sizeof(drain_signals[0]);
         i++)
        if (drain_signals[i].sig == sig)
            return drain_signals[i].name;
    if (sig == SIGUSR1)
        return "SIGUSR1";
    if (sig >= SIGRTMIN && sig <= SIGRTMAX)
        snprintf(buf, len, "SIGRTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(buf, len, "signal %d", sig);
    return buf;
}

/* Block every signal main waits for (call before any thread starts, so
 * that all threads inherit the mask), and ignore the ones that mean
 * nothing to shopd. SIGPIPE stays ignored: a client that closes its
 * socket mid-answer must fail that one write (EPIPE), not end the
 * process; it is not a request to stop. */
static void take_signals(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof(drain_signals) / sizeof(drain_signals[0]);
         i++)
        sigaddset(set, drain_signals[i].sig);
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
        sigaddset(set, sig);
    sigaddset(set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
}

static void log_final(struct shop *s, const char *what, enum log_level lvl);

/* The shop SIGUSR1 reports on, shared with the second-signal thread, and
 * the first draining signal (written by main before that thread starts). */
struct signal_watch {
    const sigset_t *set;
    pthread_mutex_t mu; /* guards shop */
    struct shop *shop;  /* NULL once main is about to destroy it */
    int first_sig;      /* the signal that started the drain */
    int64_t first_ms;   /* when it was taken, CLOCK_MONOTONIC */
};

/* Wait for a draining signal and return it; each SIGUSR1 on the way logs
 * one stats line. */
static int wait_drain_signal(struct signal_watch *w)
{
    for (;;) {
        int sig = 0;
        if (sigwait(w->set, &sig) != 0)
            continue;
        if (sig != SIGUSR1)
            return sig;
        pthread_mutex_lock(&w->mu);
        if (w->shop != NULL)
            log_final(w->shop, "stats:", LOG_INFO);
        pthread_mutex_unlock(&w->mu);
    }
}

/* Zero a secret in a way the compiler may not drop as a dead store. */
static void explicit_wipe(char *p, size_t n)
{
    volatile char *v = p;
    while (n-- > 0)
        *v++ = '\0';
}

/* After the first signal: a second request ends the process at once. The
 * same signal within SIGNAL_REPEAT_MS of the first is the same request,
 * delivered twice, and is ignored. */
static void *second_signal(void *arg)
{
    struct signal_watch *w = arg;
    for (;;) {
        int sig = wait_drain_signal(w);
        if (sig == w->first_sig &&
            time_now_ms(CLOCK_MONOTONIC) - w->first_ms < SIGNAL_REPEAT_MS)
            continue;
        char name[32];
        log_msg(LOG_WARN, "second signal (%s): exiting now",
                signal_name(sig, name, sizeof(name)));
        _exit(128 + sig);
    }
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

/* <hostname>:<port>, or the configured --instance. */
static void instance_name(const struct config *cfg, unsigned port, char *buf,
                          size_t len)
{
    if (cfg->instance[0] != '\0') {
        snprintf(buf, len, "%s", cfg->instance);
        return;
    }
    char host[64];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(buf, len, "%s:%u", host, port);
}

/* store_open() waits for a store that does not answer yet: say so at once
 * (SPEC §7), not only when it gives up. */
static void store_waiting(void *arg, const char *line)
{
    (void)arg;
    log_msg(LOG_WARN, "%s", line);
}

/*
 * Open the store named by --store and, if it is durable, load the shop
 * from it (seeding it from the catalog when empty). Logs what it found.
 * Returns 0, or -1 after logging one line naming the store and the reason.
 */
static int open_store(const struct config *cfg, const struct product *catalog,
                      size_t n, const char *instance, struct store **out,
                      struct store_state *state)
{
    char name[CONFIG_PATH_MAX + 64];
    char err[CONFIG_PATH_MAX + 256];
    config_store_describe(&cfg->store, name, sizeof(name));
    struct store_options so = {
        .kind = cfg->store.kind == CONFIG_STORE_SQLITE  ? STORE_SQLITE
                : cfg->store.kind == CONFIG_STORE_REDIS ? STORE_REDIS
                                                        : STORE_MEMORY,
        .path = cfg->store.path,
        .host = cfg->store.host,
        .port = cfg->store.port,
        .db = cfg->store.db,
        .password = cfg->store.password,
        .sync = cfg->sync == CONFIG_SYNC_NORMAL ? STORE_SYNC_NORMAL
                                                : STORE_SYNC_FULL,
        .instance = instance,
        .reclaim_ms = cfg->reclaim_ms,
        .idempotency_ttl = cfg->idempotency_ttl,
        .queue_capacity = cfg->queue_capacity,
        .order_history = cfg->order_history,
        .on_wait = store_waiting,
    };
    if (store_open(&so, out, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        return -1;
    }
    if (!store_durable(*out))
        return 0;
    struct store_product *cat = calloc(n, sizeof(*cat));
    if (cat == NULL) {
        log_msg(LOG_ERROR, "store %s: out of memory", name);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(cat[i].sku, sizeof(cat[i].sku), "%s", catalog[i].sku);
        snprintf(cat[i].name, sizeof(cat[i].name), "%s", catalog[i].name);
        cat[i].price_cents = catalog[i].price_cents;
        cat[i].initial = cat[i].stock = catalog[i].stock;
    }
    int rc = store_load(*out, cat, n, state, err, sizeof(err));
    free(cat);
    if (rc < 0) {
        log_msg(LOG_ERROR, "%s", err);
        return -1;
    }
    for (size_t i = 0; i < state->nproducts; i++)
        if (state->products[i].added)
            log_msg(LOG_INFO,
                    "store %s: catalog product '%s' was not in the store: "
                    "added with stock %lld",
                    name, state->products[i].sku,
                    (long long)state->products[i].stock);
    if (store_caps(*out) & STORE_CAP_SHARED) {
        log_msg(LOG_INFO,
                "store %s instance=%s: %s, %zu products, next order id %llu; "
                "orders not final stay on the shared belt (this instance's "
                "own first)",
                name, instance,
                state->seeded ? "seeded from the catalog" : "loaded",
                state->nproducts, (unsigned long long)state->next_id);
        return 0;
    }
    log_msg(LOG_INFO,
            "store %s sync=%s: %s, %zu products, next order id %llu, %zu "
            "unfinished %s on the belt",
            name, cfg->sync == CONFIG_SYNC_NORMAL ? "normal" : "full",
            state->seeded ? "seeded from the catalog" : "loaded",
            state->nproducts, (unsigned long long)state->next_id,
            state->nunfinished,
            state->nunfinished == 1 ? "order goes back" : "orders go back");
    return 0;
}

/*
 * The store outage log (SPEC §7): a thread looks at the shop's store every
 * WATCH_MS and logs one line when it fails (or the shop vanished from
 * under shopd) and one when it is back, with how long it was away and how
 * many requests got 503 meanwhile - never a line per request. "Back" is
 * logged once the store has stayed ok for WATCH_SETTLE_MS, so a store that
 * flickers (a nearly full disk: a small probe passes, the next batch
 * fails) is one outage, not a pair of lines per second.
 */
#define WATCH_MS        100
#define WATCH_SETTLE_MS 500

struct store_watch {
    struct shop *shop;
    char name[CONFIG_PATH_MAX + 64]; /* the store, password masked */
    pthread_mutex_t mu;              /* guards stop; exists while started */
    pthread_cond_t wake;             /* stop was set */
    bool stop;
    bool started; /* main's thread only */
    pthread_t thread;
};

/* One look at the store: log a transition. `down_ms` is when the outage
 * began (0: none), `ok_ms` when it was first seen ok again (0: not yet). */
struct watch_state {
    int64_t down_ms, ok_ms;
    bool said_vanished;
    /* 503s counted at the last look that found the store ok: those since
     * belong to the outage, even the ones answered before this thread
     * looked again. */
    uint64_t refused_ok;
};

static void watch_look(struct store_watch *w, struct watch_state *ws)
{
    struct shop_store_health h;
    shop_store_health(w->shop, &h);
    int64_t now = time_now_ns(CLOCK_MONOTONIC) / 1000000;
    if (!h.ok) {
        ws->ok_ms = 0;
        if (ws->down_ms == 0) {
            ws->down_ms = now;
            if (!h.vanished)
                log_msg(LOG_ERROR,
                        "store %s unavailable: %s; POST /buy answers 503 "
                        "store_unavailable until it is back",
                        w->name, h.reason[0] ? h.reason : "writes fail");
        }
        if (h.vanished && !ws->said_vanished) {
            ws->said_vanished = true;
            log_msg(LOG_ERROR,
                    "store %s: the shop is gone (%s); not re-creating it: "
                    "POST /buy answers 503 store_unavailable and what is "
                    "not committed yet is kept until the same shop is back",
                    w->name, h.reason[0] ? h.reason : "vanished");
        }
        return;
    }
    if (ws->down_ms == 0) {
        ws->refused_ok = h.refused;
        return;
    }
    if (ws->ok_ms == 0)
        ws->ok_ms = now;
    if (now - ws->ok_ms < WATCH_SETTLE_MS)
        return;
    log_msg(LOG_INFO,
            "store %s is back after %.1f s; %llu requests got 503 "
            "meanwhile",
            w->name, (double)(ws->ok_ms - ws->down_ms) / 1000.0,
            (unsigned long long)(h.refused - ws->refused_ok));
    *ws = (struct watch_state){.refused_ok = h.refused};
}

static void *store_watch_main(void *arg)
{
    struct store_watch *w = arg;
    struct watch_state ws = {0};
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        watch_look(w, &ws);
        pthread_mutex_lock(&w->mu);
        struct timespec due = time_deadline_ms(CLOCK_MONOTONIC, WATCH_MS);
        while (!w->stop &&
               pthread_cond_timedwait(&w->wake, &w->mu, &due) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Start watching a durable shop's store (a memory store never fails).
 * A failure to start only loses the log lines: it is logged, not fatal. */
static void store_watch_start(struct store_watch *w, struct shop *shop,
                              const struct config *cfg)
{
    if (!shop_durable(shop))
        return;
    w->shop = shop;
    config_store_describe(&cfg->store, w->name, sizeof(w->name));
    pthread_cond_t *const conds[] = {&w->wake};
    int rc = thread_sync_init(&w->mu, conds, 1);
    if (rc == 0) {
        rc = -pthread_create(&w->thread, NULL, store_watch_main, w);
        if (rc != 0)
            thread_sync_destroy(&w->mu, conds, 1);
    }
    if (rc != 0) {
        char why[128];
        strerror_r(-rc, why, sizeof(why));
        log_msg(LOG_WARN,
                "cannot watch the store (%s): its outages will "
                "not be logged",
                why);
        return;
    }
    w->started = true;
}

static void store_watch_stop(struct store_watch *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_t *const conds[] = {&w->wake};
    thread_sync_destroy(&w->mu, conds, 1);
    w->started = false;
}

/* Everything the running process holds, in the order it is made. */
struct program {
    struct config cfg;
    sigset_t sigs;
    struct signal_watch watch;
    struct product *owned; /* a catalog file's products, or NULL */
    const struct product *catalog;
    size_t nproducts;
    /* The instance's name: "" means <hostname>:<port>; with --port 0 the
     * port is only known once bound, so it is published after the start
     * (handlers read it through an atomic pointer). A shared store needs
     * the name before that (it is the instance's consumer name): with
     * --port 0 and no --instance it is <hostname>:pid<PID>. */
    char instance[CONFIG_INSTANCE_MAX + 80];
    char bound_instance[CONFIG_INSTANCE_MAX + 80];
    bool named_now;
    struct store *store;
    struct shop *shop;
    struct store_watch store_watch;
    struct http_counters http_counters;
    struct app app;
    struct httpd *httpd;
};

/*
 * Read the settings and the catalog. Returns -1 to go on, or the exit
 * status (0 after --help or --version, 2 for a bad setting or catalog).
 */
static int configure(struct program *p, int argc, char **argv)
{
    struct config *cfg = &p->cfg;
    enum config_action action;
    char err[512];

    if (config_load(cfg, argc, argv, environ, &action, err, sizeof(err)) < 0) {
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
    log_set_json(cfg->log_format == CONFIG_LOG_JSON);
    if (cfg->store_password_in_argv)
        log_msg(LOG_WARN,
                "--store: a Redis password on the command line is visible to "
                "every local user (ps); give it in SHOPD_STORE or "
                "--redis-password-file instead");
    if (cfg->unsafe_inventory && cfg->store.kind != CONFIG_STORE_MEMORY) {
        fprintf(stderr, "shopd: --unsafe-inventory is a demo of the memory "
                        "store only; it cannot be used with --store\n");
        return EXIT_BAD_CONFIG;
    }
    if (load_catalog(cfg, &p->owned, &p->catalog, &p->nproducts, err,
                     sizeof(err)) < 0) {
        fprintf(stderr, "shopd: %s\n", err);
        return EXIT_BAD_CONFIG;
    }
    raise_fd_limit(cfg->max_connections);
    return -1;
}

/* Open the store, build and start the shop. Returns 0, or -1 after
 * logging why. */
static int start_shop(struct program *p)
{
    const struct config *cfg = &p->cfg;
    struct store_state state = {0};
    char why[128];

    p->named_now = cfg->instance[0] != '\0' || cfg->port != 0 ||
                   cfg->store.kind != CONFIG_STORE_REDIS;
    if (p->named_now) {
        instance_name(cfg, cfg->port, p->instance, sizeof(p->instance));
    } else {
        char host[64];
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(p->instance, sizeof(p->instance), "%s:pid%ld", host,
                 (long)getpid());
    }
    if (open_store(cfg, p->catalog, p->nproducts, p->instance, &p->store,
                   &state) < 0)
        return -1;
    struct shop_config sc = {
        .workers = cfg->workers,
        .queue_capacity = cfg->queue_capacity,
        .order_history = cfg->order_history,
        .work_ms = cfg->work_ms,
        .unsafe_inventory = cfg->unsafe_inventory,
        .store = p->store,
        .idempotency_ttl = cfg->idempotency_ttl,
    };
    int rc;
    if (store_durable(p->store)) {
        rc = shop_create_stored(&sc, &state, &p->shop);
        p->nproducts = state.nproducts;
    } else {
        rc = shop_create(&sc, p->catalog, p->nproducts, &p->shop);
    }
    store_state_free(&state);
    if (rc < 0) {
        strerror_r(-rc, why, sizeof(why));
        log_msg(LOG_ERROR, "cannot create the shop: %s", why);
        return -1;
    }
    pthread_mutex_lock(&p->watch.mu);
    p->watch.shop = p->shop;
    pthread_mutex_unlock(&p->watch.mu);
    rc = shop_start(p->shop);
    if (rc < 0) {
        strerror_r(-rc, why, sizeof(why));
        log_msg(LOG_ERROR, "cannot start %u workers: %s", cfg->workers, why);
        return -1;
    }
    return 0;
}

/* Serve HTTP over the running shop. Returns 0, or -1 after logging why
 * (the shop is then drained). */
static int start_http(struct program *p)
{
    struct config *cfg = &p->cfg;
    struct app *app = &p->app;
    char err[512];

    app->shop = p->shop;
    app->http = &p->http_counters;
    atomic_init(&app->instance, p->instance);
    app->limits.max_body = cfg->max_body;
    app->limits.max_quantity = cfg->max_quantity;
    app->limits.http_threads = cfg->http_threads;
    app->limits.admin_enabled = cfg->admin_token[0] != '\0';
    /* The server keeps one zero-padded copy of the token (wiped at exit);
     * the config's is wiped now. */
    _Static_assert(API_TOKEN_MAX == CONFIG_SECRET_MAX, "token sizes");
    app->limits.admin_token_len = strnlen(cfg->admin_token, CONFIG_SECRET_MAX);
    memcpy(app->limits.admin_token, cfg->admin_token,
           sizeof(app->limits.admin_token));
    explicit_wipe(cfg->admin_token, sizeof(cfg->admin_token));
    struct httpd_options ho = {
        .bind = cfg->bind,
        .port = cfg->port,
        .threads = cfg->http_threads,
        .max_connections = cfg->max_connections,
        .conn_timeout_s = cfg->conn_timeout,
        .header_timeout_s = cfg->header_timeout,
        .max_connections_per_ip = cfg->max_connections_per_ip,
    };
    int trc = api_timer_create(p->shop, &app->timer);
    if (trc != 0) {
        char why[128] = "unknown error";
        strerror_r(-trc, why, sizeof(why));
        log_msg(LOG_ERROR, "cannot start the answer timer: %s", why);
        shop_drain(p->shop, NULL);
        return -1;
    }
    if (httpd_start(&ho, app, &p->httpd, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        shop_drain(p->shop, NULL);
        return -1;
    }
    unsigned port = httpd_port(p->httpd);
    if (cfg->port == 0 && cfg->instance[0] == '\0' && p->named_now) {
        instance_name(cfg, port, p->bound_instance, sizeof(p->bound_instance));
        atomic_store(&app->instance, p->bound_instance);
    }
    /* An IPv6 address is written in brackets before its port: [::1]:8080. */
    bool v6 = strchr(cfg->bind, ':') != NULL;
    log_msg(LOG_INFO,
            "shopd %s listening on %s%s%s:%u workers=%u http_threads=%u "
            "queue_capacity=%u products=%zu",
            config_version(), v6 ? "[" : "", cfg->bind, v6 ? "]" : "", port,
            cfg->workers, cfg->http_threads, cfg->queue_capacity, p->nproducts);
    log_msg(LOG_INFO, "admin API %s; idempotency keys kept %us",
            app->limits.admin_enabled ? "on (token set)" : "off",
            cfg->idempotency_ttl);
    if (cfg->unsafe_inventory)
        log_msg(LOG_WARN, "UNSAFE INVENTORY: stock is updated without the "
                          "lock (demo) - expect lost updates and oversell");
    return 0;
}

/* Serve until a draining signal, then drain. Returns the exit status. */
static int run(struct program *p)
{
    int sig = wait_drain_signal(&p->watch);
    p->watch.first_sig = sig;
    p->watch.first_ms = time_now_ms(CLOCK_MONOTONIC);
    char name[32];
    log_msg(LOG_INFO, "%s: draining %llu orders (up to %us)",
            signal_name(sig, name, sizeof(name)),
            (unsigned long long)shop_left(p->shop), p->cfg.drain_timeout);
    pthread_t watcher;
    if (pthread_create(&watcher, NULL, second_signal, &p->watch) == 0)
        pthread_detach(watcher);

    struct timespec deadline =
        time_deadline_ms(CLOCK_MONOTONIC, (int64_t)p->cfg.drain_timeout * 1000);
    shop_stop_accepting(p->shop);
    if (shop_drain(p->shop, &deadline) == -ETIMEDOUT) {
        if (shop_left(p->shop) > 0) {
            log_final(p->shop, "drain timed out:", LOG_ERROR);
            _exit(1);
        }
        /* Nothing left: the deadline only beat the workers' own exit
         * (e.g. --drain-timeout 0 with an empty belt). Join them. */
        shop_drain(p->shop, NULL);
    }
    log_final(p->shop, "drained", LOG_INFO);
    return 0;
}

/* Undo what the start made, in reverse order; each part may be missing. */
static void stop(struct program *p)
{
    /* Held answers (latency fault) go before the server stops: a
     * suspended connection must be resumed first. */
    api_timer_close(p->app.timer);
    httpd_end_streams(p->httpd);
    httpd_stop(p->httpd);
    api_timer_destroy(p->app.timer);
    /* No handler runs any more: the server's copy of the token goes. */
    explicit_wipe(p->app.limits.admin_token, sizeof(p->app.limits.admin_token));
    pthread_mutex_lock(&p->watch.mu);
    p->watch.shop = NULL;
    pthread_mutex_unlock(&p->watch.mu);
    store_watch_stop(&p->store_watch);
    /* Every path here has a drained (or never started) shop: a drain that
     * timed out left through _exit(), so no committer still uses it. */
    shop_destroy(p->shop);
    store_close(p->store);
    free(p->owned);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--probe") == 0)
        return run_probe(argc, argv);

    /* Static: the config holds large buffers, and the watch's mutex is
     * used by the second-signal thread until the process ends. */
    static struct program p = {.watch.mu = PTHREAD_MUTEX_INITIALIZER};
    take_signals(&p.sigs);
    p.watch.set = &p.sigs;
    int status = configure(&p, argc, argv);
    if (status >= 0)
        return status;
    status = start_shop(&p) == 0 ? 0 : 1;
    if (status == 0)
        store_watch_start(&p.store_watch, p.shop, &p.cfg);
    status = status == 0 && start_http(&p) == 0 ? run(&p) : 1;
    stop(&p);
    return status;
}
