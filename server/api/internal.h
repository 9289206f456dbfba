/*
 * internal.h - helpers shared by api/'s own .c files only.
 *
 * Thread safety: a struct jbuf belongs to one thread at a time; the other
 * functions touch only their arguments (and the shop through its
 * thread-safe API) and may run on any thread at once.
 */
#ifndef SHOPD_API_INTERNAL_H
#define SHOPD_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/api/api.h"
#include "common/jbuf.h"

/* Parse and validate a POST /buy body (cJSON lives in parse.c only). */
struct buy_order {
    const char *sku; /* points into the caller's `sku_buf` */
    size_t sku_len;
    unsigned quantity;
    bool has_customer;
    char customer[SHOP_CUSTOMER_MAX + 1];
};

/*
 * Validate `body` (NUL-terminated, `len` bytes). Returns 0 and fills `out`
 * (its sku is copied into `sku_buf` of SHOP_SKU_MAX + 1 bytes), or writes a
 * message naming the problem into `msg` and returns -EBADMSG (the body is
 * not one JSON object: invalid_json) or -EINVAL (a field is missing or
 * wrong: invalid_field).
 */
int buy_parse(const char *body, size_t len, unsigned max_quantity,
              struct buy_order *out, char *sku_buf, char *msg, size_t msglen);

/*
 * Validate a POST /products/{sku}/restock body: one JSON object whose
 * "quantity" is a JSON integer in 1..SHOP_RESTOCK_MAX (other members are
 * ignored; a member named twice is invalid JSON). Returns 0 and stores the
 * quantity, or writes a message naming the problem into `msg` and returns
 * -EBADMSG or -EINVAL, as buy_parse() does.
 */
int restock_parse(const char *body, size_t len, unsigned *quantity, char *msg,
                  size_t msglen);

/*
 * For other parsers of api/ (floor.c): parse `body` as one JSON object
 * with no member named twice, as buy_parse() does (0, or -EBADMSG with a
 * message; the caller deletes `*root`). The raw text of member `item` of
 * the object `obj` whose own text is `text` (`len` bytes), and whether it
 * is written as a JSON integer (no fraction, no exponent).
 */
struct cJSON;
int parse_json_object(const char *body, size_t len, struct cJSON **root,
                      char *msg, size_t msglen);
bool parse_member_is_integer(const struct cJSON *obj, const struct cJSON *item,
                             const char *text, size_t len);
const char *parse_member_raw(const struct cJSON *obj, const struct cJSON *item,
                             const char *text, size_t len, size_t *toklen);

/* --- floor.c: GET and PATCH /admin/floor (SPEC §11) -------------------- */

/* The handler of /admin/floor (GET, HEAD and PATCH; it checks the method
 * itself, to answer 405 with Allow: GET, PATCH). */
void handle_floor(const struct app *app, const struct http_request *req,
                  const char *arg, struct http_response *res);

/* Whether the request carries exactly one "Authorization: Bearer <admin
 * token>" (routes.c: compared in constant time). */
bool api_authorized(const struct app *app, const struct http_request *req);

/* The floor as JSON: {"workers":..,"work_ms":..,"paused":..,"faults":{..}}
 * and, with `counts`, "faults_injected":{..} (for /stats). */
void view_floor(const struct shop_floor *f, bool counts, struct jbuf *b);

/* The floor's gauges and counters for /metrics. */
void metrics_floor(const struct shop_floor *f, struct jbuf *b);

/*
 * POST /buy's faults (SPEC §11), once the answer `res` is made: when the
 * order was taken (`taken`), a drawn latency makes the answer wait (res
 * becomes deferred, resumed by the timer) and a drawn drop marks it to be
 * dropped (the connection closes without it). `draw` comes from
 * shop_floor_draw().
 */
void floor_buy_answer(const struct app *app, const struct shop_fault_draw *draw,
                      bool taken, struct http_response *res);

/* Give `res` the string built in `b` (taken), or a static 500 if building
 * ran out of memory. Frees what `res` owned before. */
void http_set_body(struct http_response *res, unsigned status,
                   const char *content_type, struct jbuf *b);

/* --- views.c: how orders, products and the numbers look --------------- */

/* An order as GET /orders/{id} shows it; with a shared store (accepted_by
 * not NULL) also the instances that accepted and processed it. */
void view_order(const struct app *app, const struct order *o,
                const char *accepted_by, const char *processed_by,
                struct jbuf *b);

/* A product as GET /products/{sku} shows it. */
void view_product(const struct product *p, const struct shop_stock *s,
                  struct jbuf *b);

/* Append the Prometheus exposition of the shop's numbers to `b` (sets
 * b->oom on allocation failure): one shop_report(), rendered by the
 * metrics table. Takes the inventory lock once, briefly. */
void metrics_write(const struct app *app, struct jbuf *b);

/* The dashboard page, compiled into the binary (dashboard_blob.S). */
extern const char dashboard_html[];
extern const char dashboard_html_end[];

/* The OpenAPI document of the API, compiled into the binary
 * (openapi_blob.S from openapi.json; NUL-terminated at the end). */
extern const char openapi_json[];
extern const char openapi_json_end[];

#endif /* SHOPD_API_INTERNAL_H */
