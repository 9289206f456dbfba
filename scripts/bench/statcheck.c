/*
 * statcheck.c - read one shopd /stats snapshot on stdin, print the numbers
 * the benchmark needs and check the invariants of SPEC.md section 1.
 *
 * Usage: curl -s http://HOST:PORT/stats | statcheck [--initial N]
 *
 * Prints one line:
 *   depth=D in_flight=F accepted=A processed=P fulfilled=X out_of_stock=Y
 *   rejected_full=R products=K idle=yes|no invariants=OK|BAD [why]
 * `idle` is depth == 0 && in_flight == 0 (the benchmark waits for it).
 * The invariants checked (meaningful once idle): accepted == processed,
 * processed == fulfilled + out_of_stock, and with --initial N, for every
 * product stock + sold == N + restocked (the benchmark's catalog gives every
 * product the same stock). Exit status 0 if the snapshot parsed, 1 if not; the
 * verdict is in the output, so a caller can poll until idle.
 */
#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads all of stdin into a NUL-terminated buffer; NULL on failure. */
static char *read_all(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    for (;;) {
        if (cap - n < 4096) {
            char *p = realloc(buf, cap * 2);
            if (p == NULL) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0)
            break;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* A whole, non-negative JSON number below 2^53 as uint64_t. */
static bool get_u64(const cJSON *obj, const char *key, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
        v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
        return false;
    *out = (uint64_t)v->valuedouble;
    return true;
}

/* Check every product of /stats' inventory (stock + sold == initial +
 * restocked, when the initial stock is known); the first problem goes into
 * why if it is still empty. Returns how many products there are. */
static size_t check_inventory(const cJSON *inv, bool have_initial,
                              uint64_t initial, char *why, size_t whylen)
{
    size_t products = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, inv)
    {
        uint64_t stock, sold;
        products++;
        if (!get_u64(p, "stock", &stock) || !get_u64(p, "sold", &sold)) {
            if (why[0] == '\0')
                snprintf(why, whylen, "%s: no stock/sold", p->string);
            continue;
        }
        /* Restocks add to the left side's expectation (0 if absent). */
        uint64_t restocked = 0;
        get_u64(p, "restocked", &restocked);
        if (have_initial && stock + sold != initial + restocked &&
            why[0] == '\0')
            snprintf(why, whylen,
                     "%s: stock %" PRIu64 " + sold %" PRIu64 " != %" PRIu64
                     " + restocked %" PRIu64,
                     p->string, stock, sold, initial, restocked);
    }
    return products;
}

/* A durable store's own cost, orders per commit and commit latency, as
 * " key=value" fields (empty for the memory store). */
static void store_cost(const cJSON *root, char *cost, size_t costlen)
{
    const cJSON *store = cJSON_GetObjectItemCaseSensitive(root, "store");
    const cJSON *opc =
        cJSON_GetObjectItemCaseSensitive(store, "orders_per_commit");
    const cJSON *cl =
        cJSON_GetObjectItemCaseSensitive(store, "commit_latency_ms");
    const cJSON *c50 = cJSON_GetObjectItemCaseSensitive(cl, "p50");
    const cJSON *c99 = cJSON_GetObjectItemCaseSensitive(cl, "p99");
    cost[0] = '\0';
    if (cJSON_IsNumber(opc) && cJSON_IsNumber(c50) && cJSON_IsNumber(c99))
        snprintf(cost, costlen,
                 " orders_per_commit=%.1f commit_p50_ms=%.3f"
                 " commit_p99_ms=%.3f",
                 opc->valuedouble, c50->valuedouble, c99->valuedouble);
}

int main(int argc, char **argv)
{
    uint64_t initial = 0;
    bool have_initial = false;

    if (argc == 3 && strcmp(argv[1], "--initial") == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(argv[2], &end, 10);
        if (errno != 0 || end == argv[2] || *end != '\0') {
            fprintf(stderr, "statcheck: bad --initial\n");
            return 2;
        }
        initial = v;
        have_initial = true;
    } else if (argc != 1) {
        fprintf(stderr, "usage: statcheck [--initial N] < stats.json\n");
        return 2;
    }

    size_t len = 0;
    char *text = read_all(&len);
    if (text == NULL) {
        fprintf(stderr, "statcheck: out of memory\n");
        return 1;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *queue = cJSON_GetObjectItemCaseSensitive(root, "queue");
    const cJSON *orders = cJSON_GetObjectItemCaseSensitive(root, "orders");
    const cJSON *inv = cJSON_GetObjectItemCaseSensitive(root, "inventory");
    uint64_t depth, in_flight, accepted, processed, fulfilled, oos, full;
    if (!cJSON_IsObject(queue) || !cJSON_IsObject(orders) ||
        !cJSON_IsObject(inv) || !get_u64(queue, "depth", &depth) ||
        !get_u64(orders, "in_flight", &in_flight) ||
        !get_u64(orders, "accepted", &accepted) ||
        !get_u64(orders, "processed", &processed) ||
        !get_u64(orders, "fulfilled", &fulfilled) ||
        !get_u64(orders, "out_of_stock", &oos) ||
        !get_u64(orders, "rejected_full", &full)) {
        printf("unparsable /stats snapshot\n");
        cJSON_Delete(root);
        return 1;
    }

    char why[256] = "";
    size_t products = 0;
    if (accepted != processed)
        snprintf(why, sizeof(why), "accepted %" PRIu64 " != processed %" PRIu64,
                 accepted, processed);
    else if (processed != fulfilled + oos)
        snprintf(why, sizeof(why),
                 "processed %" PRIu64 " != fulfilled + out_of_stock %" PRIu64,
                 processed, fulfilled + oos);
    products = check_inventory(inv, have_initial, initial, why, sizeof(why));
    if (products == 0 && why[0] == '\0')
        snprintf(why, sizeof(why), "no products in inventory");

    char cost[128];
    store_cost(root, cost, sizeof(cost));

    printf("depth=%" PRIu64 " in_flight=%" PRIu64 " accepted=%" PRIu64
           " processed=%" PRIu64 " fulfilled=%" PRIu64 " out_of_stock=%" PRIu64
           " rejected_full=%" PRIu64
           "%s products=%zu idle=%s invariants=%s%s%s\n",
           depth, in_flight, accepted, processed, fulfilled, oos, full, cost,
           products, depth == 0 && in_flight == 0 ? "yes" : "no",
           why[0] ? "BAD" : "OK", why[0] ? " " : "", why);
    cJSON_Delete(root);
    return 0;
}
