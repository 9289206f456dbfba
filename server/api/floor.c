/*
 * floor.c - GET and PATCH /admin/floor (SPEC §11): the shop floor's live
 * controls over HTTP, their view in /stats and /metrics, and what POST
 * /buy's faults do to an answer.
 *
 * Checks, in the order of SPEC §9, the first that applies answers: a
 * method other than GET, HEAD or PATCH (405, Allow: GET, PATCH); no admin
 * token configured (403 admin_disabled); no or a wrong Bearer token (401
 * unauthorized); a drain under way (503 shutting_down); then the body
 * (413, 400 invalid_json, 400 invalid_field naming the field and its
 * range). A PATCH is validated whole before anything is applied, so a
 * patch with any bad field applies nothing.
 *
 * Merge patch (RFC 7396): an absent member keeps its value; "faults"
 * merges the same way. A member set to null is removed, which for a
 * setting means back to where the process started: workers and work_ms
 * to their configured values, paused to false, a fault to 0 ("faults":
 * null ends every fault). Unknown members are refused (invalid_field), so
 * that a typo is not silently a no-op; "until" is read-only and ignored
 * (send for_s). faults.for_s (1..3600) is required whenever the patch
 * sets a fault to a non-zero value, and (re)starts the faults' clock.
 *
 * Every applied change logs one line: the fields that changed, old and
 * new, and the client's address; never the token. The log line is written
 * through common/log, as the HTTP layer's own lines are.
 *
 * Faults on POST /buy (floor_buy_answer): a latency holds the answer on
 * the timer of deferred.c (the connection is suspended meanwhile; no HTTP
 * thread waits); a drop marks the answer `drop`, and the HTTP glue closes
 * the connection instead of sending it. Both apply only to a taken order.
 */
#include "server/api/internal.h"

#include "server/api/errors.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

#define CT_JSON "application/json"

/* --- views ------------------------------------------------------------- */

void view_floor(const struct shop_floor *f, bool counts, struct jbuf *b)
{
    const struct shop_faults *ft = &f->faults;

    jb_printf(b,
              "{\"workers\":%zu,\"work_ms\":%u,\"paused\":%s,"
              "\"faults\":{\"latency_ms\":%u,\"error_rate\":%.15g,"
              "\"drop_rate\":%.15g,\"until\":",
              f->workers, f->work_ms, f->paused ? "true" : "false",
              ft->latency_ms, ft->error_rate, ft->drop_rate);
    if (ft->until_ns != 0)
        jb_time(b, ft->until_ns);
    else
        jb_cstr(b, "null");
    jb_cstr(b, "}");
    if (counts)
        jb_printf(b,
                  ",\"faults_injected\":{\"latency\":%llu,\"error\":%llu,"
                  "\"drop\":%llu}",
                  (unsigned long long)f->injected[SHOP_FAULT_LATENCY],
                  (unsigned long long)f->injected[SHOP_FAULT_ERROR],
                  (unsigned long long)f->injected[SHOP_FAULT_DROP]);
    jb_cstr(b, "}");
}

void metrics_floor(const struct shop_floor *f, struct jbuf *b)
{
    static const char *const kinds[] = {"latency", "error", "drop"};
    const struct shop_faults *ft = &f->faults;

    jb_cstr(b, "# HELP shopd_floor_work_seconds Simulated work per order.\n"
               "# TYPE shopd_floor_work_seconds gauge\n");
    jb_printf(b, "shopd_floor_work_seconds %.15g\n", f->work_ms / 1000.0);
    jb_cstr(b, "# HELP shopd_floor_paused 1 while the elves are paused.\n"
               "# TYPE shopd_floor_paused gauge\n");
    jb_printf(b, "shopd_floor_paused %d\n", f->paused ? 1 : 0);
    jb_cstr(b, "# HELP shopd_fault_latency_seconds Injected answer delay of "
               "POST /buy.\n# TYPE shopd_fault_latency_seconds gauge\n");
    jb_printf(b, "shopd_fault_latency_seconds %.15g\n",
              ft->latency_ms / 1000.0);
    jb_cstr(b, "# HELP shopd_fault_error_rate Share of POST /buy answered "
               "503 injected_fault.\n# TYPE shopd_fault_error_rate gauge\n");
    jb_printf(b, "shopd_fault_error_rate %.15g\n", ft->error_rate);
    jb_cstr(b, "# HELP shopd_fault_drop_rate Share of POST /buy taken but "
               "left unanswered.\n# TYPE shopd_fault_drop_rate gauge\n");
    jb_printf(b, "shopd_fault_drop_rate %.15g\n", ft->drop_rate);
    jb_cstr(b, "# HELP shopd_faults_injected_total Faults injected into "
               "POST /buy, by kind.\n"
               "# TYPE shopd_faults_injected_total counter\n");
    for (size_t i = 0; i < 3; i++)
        jb_printf(b, "shopd_faults_injected_total{kind=\"%s\"} %llu\n",
                  kinds[i], (unsigned long long)f->injected[i]);
}

static void floor_answer(const struct app *app, struct http_response *res)
{
    struct shop_floor f;
    struct jbuf b;

    shop_floor_get(app->shop, &f);
    jb_init(&b, 256);
    view_floor(&f, false, &b);
    http_set_body(res, 200, CT_JSON, &b);
}

/* --- the patch ---------------------------------------------------------- */

/* A patch's fields, one row each: name, where it sits, its range. */
enum field_kind { F_INT, F_RATE, F_BOOL };

struct floor_field {
    const char *name; /* as in the message: "workers", "faults.for_s" */
    bool in_faults;
    enum field_kind kind;
    double min, max;
};

static const struct floor_field fields[] = {
    {"workers", false, F_INT, 1, SHOP_FLOOR_WORKERS_MAX},
    {"work_ms", false, F_INT, 0, SHOP_FLOOR_WORK_MS_MAX},
    {"paused", false, F_BOOL, 0, 1},
    {"latency_ms", true, F_INT, 0, SHOP_FAULT_LATENCY_MAX},
    {"error_rate", true, F_RATE, 0, 1},
    {"drop_rate", true, F_RATE, 0, 1},
    {"for_s", true, F_INT, 1, SHOP_FAULT_FOR_MAX},
};

enum {
    FLD_WORKERS,
    FLD_WORK_MS,
    FLD_PAUSED,
    FLD_LATENCY,
    FLD_ERROR,
    FLD_DROP,
    FLD_FOR,
    FLD_COUNT
};

/* A patch as read: each field absent, null, or a value. */
struct patch {
    bool present[FLD_COUNT];
    bool null[FLD_COUNT];
    double value[FLD_COUNT];
    bool faults_null; /* "faults": null */
};

static int bad_field(const struct floor_field *fd, char *msg, size_t msglen)
{
    const char *pre = fd->in_faults ? "faults." : "";

    if (fd->kind == F_BOOL)
        snprintf(msg, msglen, "field '%s%s' must be true or false", pre,
                 fd->name);
    else if (fd->kind == F_RATE)
        snprintf(msg, msglen, "field '%s%s' must be a number between 0 and 1",
                 pre, fd->name);
    else
        snprintf(msg, msglen,
                 "field '%s%s' must be an integer between %.0f and %.0f", pre,
                 fd->name, fd->min, fd->max);
    return -EINVAL;
}

/* Read field `i` from `item`, a member of `obj` whose text is `text`. */
static int read_field(struct patch *p, size_t i, const cJSON *obj,
                      const cJSON *item, const char *text, size_t len,
                      char *msg, size_t msglen)
{
    const struct floor_field *fd = &fields[i];

    p->present[i] = true;
    if (cJSON_IsNull(item)) {
        p->null[i] = true;
        return 0;
    }
    if (fd->kind == F_BOOL) {
        if (!cJSON_IsBool(item))
            return bad_field(fd, msg, msglen);
        p->value[i] = cJSON_IsTrue(item) ? 1 : 0;
        return 0;
    }
    if (!cJSON_IsNumber(item) ||
        (fd->kind == F_INT && !parse_member_is_integer(obj, item, text, len)))
        return bad_field(fd, msg, msglen);
    double d = item->valuedouble;
    if (!(d >= fd->min && d <= fd->max))
        return bad_field(fd, msg, msglen);
    p->value[i] = d;
    return 0;
}

/* Read the members of `obj` (the top level, or "faults"). */
static int read_members(struct patch *p, const cJSON *obj, bool in_faults,
                        const char *text, size_t len, char *msg, size_t msglen)
{
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        size_t i;
        int rc;

        if (in_faults && strcmp(c->string, "until") == 0)
            continue; /* read-only: its end comes from for_s */
        for (i = 0; i < FLD_COUNT; i++)
            if (fields[i].in_faults == in_faults &&
                strcmp(fields[i].name, c->string) == 0)
                break;
        if (i == FLD_COUNT) {
            if (!in_faults && strcmp(c->string, "faults") == 0)
                continue;
            snprintf(msg, msglen,
                     "unknown field '%s%.64s': the floor has workers, "
                     "work_ms, paused and faults (latency_ms, error_rate, "
                     "drop_rate, for_s)",
                     in_faults ? "faults." : "", c->string);
            return -EINVAL;
        }
        rc = read_field(p, i, obj, c, text, len, msg, msglen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Parse and validate a whole patch. 0, or -EBADMSG / -EINVAL with msg. */
static int patch_parse(const char *body, size_t len, struct patch *p, char *msg,
                       size_t msglen)
{
    cJSON *root = NULL;
    int rc = parse_json_object(body, len, &root, msg, msglen);

    memset(p, 0, sizeof(*p));
    if (rc != 0)
        return rc;
    rc = read_members(p, root, false, body, len, msg, msglen);
    const cJSON *ft = cJSON_GetObjectItemCaseSensitive(root, "faults");
    if (rc == 0 && ft != NULL) {
        size_t flen = 0;
        const char *ftext = parse_member_raw(root, ft, body, len, &flen);

        if (cJSON_IsNull(ft)) {
            p->faults_null = true;
        } else if (!cJSON_IsObject(ft) || ftext == NULL) {
            snprintf(msg, msglen, "field 'faults' must be an object");
            rc = -EINVAL;
        } else {
            rc = read_members(p, ft, true, ftext, flen, msg, msglen);
        }
    }
    cJSON_Delete(root);
    if (rc != 0)
        return rc;
    bool nonzero = false;
    for (size_t i = FLD_LATENCY; i <= FLD_DROP; i++)
        nonzero |= p->present[i] && !p->null[i] && p->value[i] > 0;
    if (nonzero && (!p->present[FLD_FOR] || p->null[FLD_FOR])) {
        snprintf(msg, msglen,
                 "field 'faults.for_s' (an integer between 1 and %d) is "
                 "required with a non-zero fault",
                 SHOP_FAULT_FOR_MAX);
        return -EINVAL;
    }
    return 0;
}

/* The change a patch asks for, over the floor `now`. */
static void patch_change(const struct patch *p, const struct shop_floor *now,
                         struct shop_floor_change *c)
{
    memset(c, 0, sizeof(*c));
    c->set_workers = p->present[FLD_WORKERS];
    c->workers = p->null[FLD_WORKERS] ? now->start_workers
                                      : (size_t)p->value[FLD_WORKERS];
    c->set_work_ms = p->present[FLD_WORK_MS];
    c->work_ms = p->null[FLD_WORK_MS] ? now->start_work_ms
                                      : (unsigned)p->value[FLD_WORK_MS];
    c->set_paused = p->present[FLD_PAUSED];
    c->paused = !p->null[FLD_PAUSED] && p->value[FLD_PAUSED] > 0;
    c->set_latency_ms = p->present[FLD_LATENCY] || p->faults_null;
    c->latency_ms = p->null[FLD_LATENCY] ? 0 : (unsigned)p->value[FLD_LATENCY];
    c->set_error_rate = p->present[FLD_ERROR] || p->faults_null;
    c->error_rate = p->null[FLD_ERROR] ? 0 : p->value[FLD_ERROR];
    c->set_drop_rate = p->present[FLD_DROP] || p->faults_null;
    c->drop_rate = p->null[FLD_DROP] ? 0 : p->value[FLD_DROP];
    c->for_s = p->null[FLD_FOR] ? 0 : (unsigned)p->value[FLD_FOR];
    /* A setting equal to the current one is no change (no resize). */
    if (c->set_workers && c->workers == now->workers)
        c->set_workers = false;
    if (c->set_paused && c->paused == now->paused)
        c->set_paused = false;
    if (c->set_work_ms && c->work_ms == now->work_ms)
        c->set_work_ms = false;
}

/* --- the log line ------------------------------------------------------- */

static void client_text(const struct http_request *req, char *buf, size_t n)
{
    const struct sockaddr *sa = req->client_addr;

    snprintf(buf, n, "unknown");
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET,
                  &((const struct sockaddr_in *)req->client_addr)->sin_addr,
                  buf, (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6,
                  &((const struct sockaddr_in6 *)req->client_addr)->sin6_addr,
                  buf, (socklen_t)n);
}

/* Append " name old->new" to `b` for each field that changed. */
static void describe(const struct shop_floor *a, const struct shop_floor *z,
                     struct jbuf *b)
{
    if (a->workers != z->workers)
        jb_printf(b, " workers %zu->%zu", a->workers, z->workers);
    if (a->work_ms != z->work_ms)
        jb_printf(b, " work_ms %u->%u", a->work_ms, z->work_ms);
    if (a->paused != z->paused)
        jb_printf(b, " paused %s->%s", a->paused ? "true" : "false",
                  z->paused ? "true" : "false");
    if (a->faults.latency_ms != z->faults.latency_ms)
        jb_printf(b, " faults.latency_ms %u->%u", a->faults.latency_ms,
                  z->faults.latency_ms);
    if (a->faults.error_rate != z->faults.error_rate)
        jb_printf(b, " faults.error_rate %g->%g", a->faults.error_rate,
                  z->faults.error_rate);
    if (a->faults.drop_rate != z->faults.drop_rate)
        jb_printf(b, " faults.drop_rate %g->%g", a->faults.drop_rate,
                  z->faults.drop_rate);
    if (a->faults.until_ns != z->faults.until_ns) {
        char until[40] = "null";
        if (z->faults.until_ns != 0)
            format_rfc3339(until, sizeof(until), z->faults.until_ns);
        jb_printf(b, " faults.until %s", until);
    }
}

static void log_change(const struct http_request *req,
                       const struct shop_floor *before,
                       const struct shop_floor *after)
{
    char client[INET6_ADDRSTRLEN + 1];
    struct jbuf b;
    size_t len = 0;

    jb_init(&b, 160);
    describe(before, after, &b);
    char *what = jb_take(&b, &len);
    if (what == NULL || len == 0) {
        free(what);
        return; /* nothing changed: nothing to log */
    }
    client_text(req, client, sizeof(client));
    log_msg(LOG_INFO, "floor changed by %s:%s", client, what);
    free(what);
}

/* --- the handler -------------------------------------------------------- */

static void floor_patch(const struct app *app, const struct http_request *req,
                        struct http_response *res)
{
    char msg[200];
    struct patch p;
    struct shop_floor before, after;
    struct shop_floor_change c;

    if (req->body_too_large) {
        snprintf(msg, sizeof(msg), "request body is larger than %zu bytes",
                 app->limits.max_body);
        http_fail(res, HTTP_ERR_BODY_TOO_LARGE, msg);
        return;
    }
    int rc = patch_parse(req->body, req->body_len, &p, msg, sizeof(msg));
    if (rc != 0) {
        http_fail(res,
                  rc == -EBADMSG ? HTTP_ERR_INVALID_JSON
                                 : HTTP_ERR_INVALID_FIELD,
                  msg);
        return;
    }
    shop_floor_get(app->shop, &before);
    patch_change(&p, &before, &c);
    rc = shop_floor_set(app->shop, &c);
    if (rc == -EPIPE) {
        http_fail(res, HTTP_ERR_SHUTTING_DOWN,
                  "the shop is closing: the floor is as the drain left it");
        return;
    }
    if (rc != 0) {
        char why[96] = "unknown error";
        strerror_r(-rc, why, sizeof(why));
        snprintf(msg, sizeof(msg),
                 "could not start %zu workers: %s; the floor is unchanged",
                 c.workers, why);
        http_fail(res, HTTP_ERR_INTERNAL, msg);
        return;
    }
    shop_floor_get(app->shop, &after);
    log_change(req, &before, &after);
    struct jbuf b;
    jb_init(&b, 256);
    view_floor(&after, false, &b);
    http_set_body(res, 200, CT_JSON, &b);
}

void handle_floor(const struct app *app, const struct http_request *req,
                  const char *arg, struct http_response *res)
{
    (void)arg;
    bool get =
        strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    bool patch = strcmp(req->method, "PATCH") == 0;

    if (!get && !patch) {
        http_fail(res, HTTP_ERR_METHOD_NOT_ALLOWED, "use GET or PATCH");
        http_add_header(res, "Allow", "GET, PATCH");
        return;
    }
    if (!app->limits.admin_enabled) {
        http_fail(res, HTTP_ERR_ADMIN_DISABLED, NULL);
        return;
    }
    if (!api_authorized(app, req)) {
        http_fail(res, HTTP_ERR_UNAUTHORIZED, NULL);
        return;
    }
    if (shop_draining(app->shop)) {
        http_fail(res, HTTP_ERR_SHUTTING_DOWN,
                  "the shop is closing: the floor is as the drain left it");
        return;
    }
    if (get)
        floor_answer(app, res);
    else
        floor_patch(app, req, res);
}

/* --- POST /buy's faults -------------------------------------------------- */

void floor_buy_answer(const struct app *app, const struct shop_fault_draw *draw,
                      bool taken, struct http_response *res)
{
    if (!taken)
        return;
    if (draw->drop) {
        res->drop = true;
        shop_floor_injected(app->shop, SHOP_FAULT_DROP);
    }
    if (draw->latency_ms == 0 || res->deferred != NULL)
        return;
    struct http_deferred *d = http_deferred_create();
    if (d == NULL)
        return; /* answer at once rather than not at all */
    if (api_timer_hold(app->timer, d, draw->latency_ms) != 0) {
        http_deferred_release(d);
        http_deferred_release(d);
        return;
    }
    http_deferred_complete(d, res); /* takes the answer; the timer sends it */
    res->deferred = d;
    shop_floor_injected(app->shop, SHOP_FAULT_LATENCY);
}
