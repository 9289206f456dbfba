/*
 * internal.h - helpers shared by the server's own .c files only.
 *
 * Thread safety: a struct jbuf belongs to one thread at a time; the other
 * functions touch only their arguments (and the shop through its
 * thread-safe API) and may run on any thread at once.
 */
#ifndef SHOPD_SERVER_INTERNAL_H
#define SHOPD_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/server.h"

/*
 * A growable string for building JSON and text answers. After an
 * allocation failure `oom` is set and further appends do nothing, so a
 * builder checks once at the end.
 */
struct jbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

/* Start an empty string with room for `cap` bytes (sets oom on failure). */
void jb_init(struct jbuf *b, size_t cap);
/* Free the string; `b` may be reused after jb_init(). */
void jb_free(struct jbuf *b);
/* Append `n` bytes of `s` as they are. */
void jb_raw(struct jbuf *b, const char *s, size_t n);
/* Append the C string `s` as it is. */
void jb_cstr(struct jbuf *b, const char *s);
/* Append printf-style formatted text (never truncated: grows instead). */
void jb_printf(struct jbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append `s` (n bytes) as a quoted, escaped JSON string. */
void jb_str(struct jbuf *b, const char *s, size_t n);
/* Append a JSON number for a double (finite; 3 decimals at most). */
void jb_double(struct jbuf *b, double v);
/*
 * Format CLOCK_REALTIME nanoseconds as RFC 3339 UTC with milliseconds,
 * e.g. "2026-11-28T01:02:03.456Z", into `buf` (at least 32 bytes).
 */
void format_rfc3339(char *buf, size_t len, int64_t realtime_ns);
/* Append an RFC 3339 UTC time with milliseconds, quoted. */
void jb_time(struct jbuf *b, int64_t realtime_ns);
/* Strict UTF-8: no overlongs, no surrogates, nothing past U+10FFFF. */
bool utf8_valid(const char *s, size_t n);
/* Hand the string over (NUL-terminated) and reset `b`; NULL after oom. */
char *jb_take(struct jbuf *b, size_t *len);

/* Parse and validate a POST /buy body (cJSON lives in buy.c only). */
struct buy_order {
    const char *sku; /* points into `storage` */
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
 * Copy every product's live stock (one short hold of the inventory lock)
 * into a malloc'd array the caller frees; stores its length in `*n`.
 * Returns NULL on allocation failure.
 */
struct shop_stock *stock_copy(const struct app *app, size_t *n);

/* Append the Prometheus exposition of the shop's numbers to `b` (sets
 * b->oom on allocation failure). Takes the inventory lock once, briefly. */
void metrics_write(const struct app *app, struct jbuf *b);

/*
 * The glue's side of a deferred answer (deferred.c). Suspend: if `d` is
 * not complete yet, remember `resume(ctx)` and call `suspend(ctx)` (both
 * under d's lock, so the completer resumes a connection only after it was
 * suspended) and return true; if it is complete, return false (answer at
 * once). Take: move the final response into `out` if complete (true).
 */
bool http_deferred_suspend(struct http_deferred *d, void (*suspend)(void *ctx),
                           void (*resume)(void *ctx), void *ctx);
bool http_deferred_take(struct http_deferred *d, struct http_response *out);

/* The dashboard page, compiled into the binary (dashboard_blob.S). */
extern const char dashboard_html[];
extern const char dashboard_html_end[];

#endif /* SHOPD_SERVER_INTERNAL_H */
