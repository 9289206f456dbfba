/*
 * soak.c - a million orders through one shopd, then look for leaks.
 *
 * A warm-up of WARMUP orders (more than --order-history, so the order
 * book's ring is fully touched) brings the process to its working size;
 * its resident memory and open descriptors are then recorded. Then
 * $SOAK_ORDERS (default 1,000,000) more orders are pushed through over
 * keep-alive connections by CLIENTS threads with a lean client (one
 * prebuilt request, no allocation per order). Afterwards:
 *   - VmRSS is back within a tolerance of its post-warm-up level and the
 *     descriptor count is back exactly (no leak per order or connection);
 *     under a sanitizer ($E2E_SLOW > 1) the RSS bound is skipped (freed
 *     memory sits in quarantine) and LeakSanitizer's exit check stands in;
 *   - /stats is exact: accepted == every 202 the clients got, processed ==
 *     accepted, fulfilled == processed (the catalog's stock is large),
 *     rejected_full == the 503s the clients got, no invalid order;
 *   - per product, stock + sold == initial stock and sold == the
 *     quantities the clients were told were accepted;
 *   - /orders/1 is forgotten (404), the last id is kept;
 *   - SIGTERM drains cleanly with the same counts.
 * The whole run must finish within $SOAK_SECONDS (default 600, times
 * $E2E_SLOW). The numbers are printed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <check.h>

#include "tests/lib/clock.h"
#include "tests/lib/http.h"
#include "tests/lib/json.h"
#include "tests/lib/orders.h"
#include "tests/lib/process.h"
#include "tests/lib/reliability.h"

#define CLIENTS   8
#define PRODUCTS  4
#define HISTORY   65536
#define WARMUP    100000
#define STOCK     1000000000000LL
#define RSS_SLACK (8 * 1024) /* KiB of growth tolerated after warm-up */

static const char *const skus[PRODUCTS] = {"soak-a", "soak-b", "soak-c",
                                           "soak-d"};

/* ---- a lean keep-alive client -------------------------------------------- */

struct lean {
    int fd;
    char buf[8192];
    size_t len;
};

static int lean_connect(struct lean *c, unsigned port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = E2E_IO_TIMEOUT_MS / 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return -e;
    }
    return 0;
}

static void lean_close(struct lean *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

/* The first occurrence of `needle` (n bytes) in [p, p + len), or NULL. */
static const char *find_mem(const char *p, size_t len, const char *needle,
                            size_t n)
{
    for (size_t i = 0; i + n <= len; i++)
        if (p[i] == needle[0] && memcmp(p + i, needle, n) == 0)
            return p + i;
    return NULL;
}

/* The value of header `name` in the head [p, end), or NULL. */
static const char *find_header(const char *p, const char *end, const char *name)
{
    size_t n = strlen(name);
    for (; p < end; p++) {
        if (p[0] == '\n' && (size_t)(end - p) > n + 1 &&
            strncasecmp(p + 1, name, n) == 0 && p[1 + n] == ':') {
            p += 2 + n;
            while (p < end && *p == ' ')
                p++;
            return p;
        }
    }
    return NULL;
}

/*
 * Send `req` and read one answer. Stores the status and, for a 202, the
 * order id. Returns 0, or a negative errno (the connection is then closed).
 */
static int lean_request(struct lean *c, const char *req, size_t reqlen,
                        int *status, uint64_t *id)
{
    for (size_t off = 0; off < reqlen;) {
        ssize_t n = send(c->fd, req + off, reqlen - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? -errno : -EPIPE;
            lean_close(c);
            return e;
        }
        off += (size_t)n;
    }
    size_t head = 0, total = 0;
    for (;;) {
        if (head == 0) {
            const char *eoh = find_mem(c->buf, c->len, "\r\n\r\n", 4);
            if (eoh != NULL) {
                head = (size_t)(eoh - c->buf) + 4;
                const char *cl =
                    find_header(c->buf, c->buf + head, "Content-Length");
                if (cl == NULL || c->len < 12) {
                    lean_close(c);
                    return -EPROTO;
                }
                total = head + strtoul(cl, NULL, 10);
                if (total > sizeof(c->buf)) {
                    lean_close(c);
                    return -EPROTO;
                }
            }
        }
        if (head != 0 && c->len >= total)
            break;
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? -errno : -EPIPE;
            lean_close(c);
            return e;
        }
        c->len += (size_t)n;
    }
    *status = (int)strtol(c->buf + 9, NULL, 10);
    *id = 0;
    if (*status == 202) {
        const char *p =
            find_mem(c->buf + head, total - head, "\"order_id\":", 11);
        if (p != NULL)
            *id = strtoull(p + 11, NULL, 10);
    }
    const char *conn = find_header(c->buf, c->buf + head, "Connection");
    bool close_it = conn != NULL && strncasecmp(conn, "close", 5) == 0;
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    if (close_it)
        lean_close(c);
    return 0;
}

/* ---- the load ------------------------------------------------------------ */

struct worker {
    pthread_t thread;
    unsigned port;
    int index;
    uint64_t quota;   /* 202s to collect */
    int64_t deadline; /* now_ms() past which the worker gives up */
    /* results */
    uint64_t accepted, queue_full, errors, other;
    uint64_t sold[PRODUCTS];
    uint64_t max_id;
    int other_status;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char req[PRODUCTS * 3][256];
    size_t reqlen[PRODUCTS * 3];
    /* Each worker cycles through every product and quantities 1..3. */
    for (int k = 0; k < PRODUCTS * 3; k++) {
        char body[96];
        int n =
            snprintf(body, sizeof(body), "{\"product\":\"%s\",\"quantity\":%d}",
                     skus[k % PRODUCTS], 1 + k / PRODUCTS);
        reqlen[k] = (size_t)snprintf(
            req[k], sizeof(req[k]),
            "POST /buy HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            "application/json\r\nContent-Length: %d\r\n\r\n%s",
            n, body);
    }
    struct lean c = {.fd = -1};
    uint64_t k = (uint64_t)w->index;
    while (w->accepted < w->quota) {
        if ((w->accepted & 1023) == 0 && now_ms() > w->deadline)
            break;
        if (c.fd < 0 && lean_connect(&c, w->port) != 0) {
            w->errors++;
            if (w->errors > 100)
                break;
            backoff_ms(10);
            continue;
        }
        int slot = (int)(k % (PRODUCTS * 3));
        int status = 0;
        uint64_t id = 0;
        if (lean_request(&c, req[slot], reqlen[slot], &status, &id) != 0) {
            /* No answer: with a healthy server this does not happen; the
             * test fails on it (the exact counts could not hold). */
            w->errors++;
            if (w->errors > 100)
                break;
            continue;
        }
        if (status == 202) {
            w->accepted++;
            w->sold[slot % PRODUCTS] += (uint64_t)(1 + slot / PRODUCTS);
            if (id > w->max_id)
                w->max_id = id;
            k++;
        } else if (status == 503) {
            w->queue_full++;
            backoff_ms(1);
        } else {
            w->other++;
            w->other_status = status;
            if (w->other > 100)
                break;
        }
    }
    lean_close(&c);
    return NULL;
}

struct totals {
    uint64_t accepted, queue_full, errors, other, max_id;
    uint64_t sold[PRODUCTS];
    int other_status;
};

/* Push `orders` orders through with CLIENTS threads; adds to `t`. */
static void run_load(unsigned port, uint64_t orders, int64_t deadline,
                     struct totals *t)
{
    struct worker w[CLIENTS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < CLIENTS; i++) {
        w[i].port = port;
        w[i].index = i;
        w[i].quota = orders / CLIENTS + (i == 0 ? orders % CLIENTS : 0);
        w[i].deadline = deadline;
        ck_assert_int_eq(pthread_create(&w[i].thread, NULL, worker_main, &w[i]),
                         0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(w[i].thread, NULL);
        t->accepted += w[i].accepted;
        t->queue_full += w[i].queue_full;
        t->errors += w[i].errors;
        t->other += w[i].other;
        if (w[i].other)
            t->other_status = w[i].other_status;
        if (w[i].max_id > t->max_id)
            t->max_id = w[i].max_id;
        for (int p = 0; p < PRODUCTS; p++)
            t->sold[p] += w[i].sold[p];
    }
}

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return def;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0' && v > 0 ? v : def;
}

/* Wait until the belt is idle, then read /stats. */
static cJSON *idle_stats(unsigned port)
{
    return wait_idle_ok(port, 120000 * e2e_slow());
}

START_TEST(test_soak_million_orders)
{
    uint64_t orders = env_u64("SOAK_ORDERS", 1000000);
    int64_t budget_ms =
        (int64_t)env_u64("SOAK_SECONDS", 600) * 1000 * e2e_slow();
    int64_t t_start = now_ms();
    int64_t deadline = t_start + budget_ms;

    char catalog[1024];
    size_t off = (size_t)snprintf(catalog, sizeof(catalog), "{\"products\":[");
    for (int p = 0; p < PRODUCTS; p++)
        off += (size_t)snprintf(catalog + off, sizeof(catalog) - off,
                                "%s{\"sku\":\"%s\",\"name\":\"Soak %d\","
                                "\"price_cents\":1,\"stock\":%lld}",
                                p ? "," : "", skus[p], p, (long long)STOCK);
    snprintf(catalog + off, sizeof(catalog) - off, "]}");
    char *path = write_tmp(catalog);
    char history[16];
    snprintf(history, sizeof(history), "%d", HISTORY);
    const char *const args[] = {
        "--catalog",       path,    "--workers", "2", "--http-threads", "2",
        "--order-history", history, NULL};
    struct shopd *s = shopd_start(args, NULL);
    unsigned port = shopd_port(s);
    pid_t pid = shopd_pid(s);
    int fds0 = rel_proc_fd_count(pid);

    struct totals t;
    memset(&t, 0, sizeof(t));
    run_load(port, WARMUP, deadline, &t);
    ck_assert_msg(t.accepted == WARMUP && t.errors == 0 && t.other == 0,
                  "warm-up: %llu accepted, %llu errors, %llu other (%d)",
                  (unsigned long long)t.accepted, (unsigned long long)t.errors,
                  (unsigned long long)t.other, t.other_status);
    cJSON_Delete(idle_stats(port));
    /* The warm-up's connections are closed: wait for the server to see it. */
    int fds_warm = rel_wait_fds_at_most(pid, fds0, 15000 * e2e_slow());
    long rss_warm = rel_proc_rss_kb(pid);
    int64_t t_load = now_ms();

    run_load(port, orders, deadline, &t);
    int64_t t_done = now_ms();
    ck_assert_msg(t_done <= deadline, "the soak took over %lld s",
                  (long long)(budget_ms / 1000));
    ck_assert_msg(t.errors == 0 && t.other == 0,
                  "%llu requests without an answer, %llu unexpected (%d)",
                  (unsigned long long)t.errors, (unsigned long long)t.other,
                  t.other_status);
    ck_assert_msg(t.accepted == WARMUP + orders,
                  "only %llu of %llu orders accepted in time",
                  (unsigned long long)t.accepted,
                  (unsigned long long)(WARMUP + orders));

    cJSON *st = idle_stats(port);
    /* The clients have closed their connections: wait for the server to
     * notice, then compare. */
    int fds_end = rel_wait_fds_at_most(pid, fds_warm, 15000 * e2e_slow());
    long rss_end = rel_proc_rss_kb(pid);
    double secs = (double)(t_done - t_load) / 1000.0;
    printf("soak: %llu orders in %.1f s (%.0f orders/s), %llu x 503 "
           "queue_full retried\n",
           (unsigned long long)orders, secs, (double)orders / secs,
           (unsigned long long)t.queue_full);
    printf("soak: VmRSS %ld KiB after warm-up, %ld KiB after the soak (%+ld "
           "KiB); fds %d -> %d\n",
           rss_warm, rss_end, rss_end - rss_warm, fds_warm, fds_end);

    uint64_t acc = (uint64_t)jnum(st, "orders.accepted");
    printf("soak: /stats accepted=%llu processed=%llu fulfilled=%llu "
           "out_of_stock=%llu rejected_full=%llu rejected_invalid=%llu\n",
           (unsigned long long)acc,
           (unsigned long long)jnum(st, "orders.processed"),
           (unsigned long long)jnum(st, "orders.fulfilled"),
           (unsigned long long)jnum(st, "orders.out_of_stock"),
           (unsigned long long)jnum(st, "orders.rejected_full"),
           (unsigned long long)jnum(st, "orders.rejected_invalid"));
    ck_assert_msg(fds_end <= fds_warm, "descriptors: %d after, %d before",
                  fds_end, fds_warm);
    ck_assert_msg(acc == t.accepted, "accepted %llu, clients got %llu 202s",
                  (unsigned long long)acc, (unsigned long long)t.accepted);
    ck_assert_msg(t.max_id == acc, "highest id %llu, accepted %llu",
                  (unsigned long long)t.max_id, (unsigned long long)acc);
    ck_assert_msg(jnum(st, "orders.processed") == (double)acc &&
                      jnum(st, "orders.fulfilled") == (double)acc &&
                      jnum(st, "orders.out_of_stock") == 0,
                  "processed/fulfilled do not match accepted");
    ck_assert_msg(jnum(st, "orders.rejected_full") == (double)t.queue_full,
                  "rejected_full %.0f, clients got %llu 503s",
                  jnum(st, "orders.rejected_full"),
                  (unsigned long long)t.queue_full);
    ck_assert_msg(jnum(st, "orders.rejected_invalid") == 0, "rejected_invalid");
    for (int p = 0; p < PRODUCTS; p++) {
        char key[64];
        snprintf(key, sizeof(key), "inventory.%s.stock", skus[p]);
        double stock = jnum(st, key);
        snprintf(key, sizeof(key), "inventory.%s.sold", skus[p]);
        double sold = jnum(st, key);
        printf("soak: %s stock=%.0f sold=%.0f (clients: %llu)\n", skus[p],
               stock, sold, (unsigned long long)t.sold[p]);
        ck_assert_msg(stock + sold == (double)STOCK,
                      "%s: stock %.0f + sold %.0f != %lld", skus[p], stock,
                      sold, (long long)STOCK);
        ck_assert_msg(sold == (double)t.sold[p],
                      "%s: sold %.0f, clients were accepted %llu", skus[p],
                      sold, (unsigned long long)t.sold[p]);
    }
    cJSON_Delete(st);

    /* The order book keeps the last HISTORY orders only. */
    struct http_resp r;
    ck_assert_int_eq(http_do(port, "GET", "/orders/1", NULL, NULL, 0, &r), 0);
    expect_error(&r, 404, "unknown_order");
    http_resp_free(&r);
    char last[64];
    snprintf(last, sizeof(last), "/orders/%llu", (unsigned long long)acc);
    cJSON *o = get_json_ok(port, last);
    ck_assert_str_eq(jstr(o, "status"), "fulfilled");
    cJSON_Delete(o);

    struct rel_final f;
    rel_expect_clean_exit(s, 60000, &f);
    ck_assert_msg(f.accepted == acc && f.processed == acc,
                  "final line accepted=%llu processed=%llu, want %llu",
                  (unsigned long long)f.accepted,
                  (unsigned long long)f.processed, (unsigned long long)acc);
    printf("soak: total %.1f s\n", (double)(now_ms() - t_start) / 1000.0);
    /* Under a sanitizer (E2E_SLOW > 1) freed memory sits in quarantine for
     * hundreds of MiB, so resident memory says nothing there; LeakSanitizer
     * checked the clean exit above instead. */
    if (e2e_slow() == 1)
        ck_assert_msg(rss_end <= rss_warm + RSS_SLACK,
                      "resident memory grew by %ld KiB over %llu orders",
                      rss_end - rss_warm, (unsigned long long)orders);
    else
        printf("soak: VmRSS bound not checked under a sanitizer build\n");
    shopd_destroy(s);
    unlink(path);
    free(path);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("soak");
    const struct rel_case million = {"million", test_soak_million_orders,
                                     (int)env_u64("SOAK_SECONDS", 600) + 300,
                                     0};
    rel_add_cases(suite, &million, 1);
    return rel_run(srunner_create(suite));
}
