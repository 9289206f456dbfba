/*
 * parse.c - parse and validate the bodies of POST /buy and a restock.
 *
 * cJSON checks the syntax and builds the tree; this file checks every type
 * and range itself, because cJSON is lenient: it accepts 1e3 and 1.0 as
 * numbers whose value is whole, and valueint saturates. So the quantity is
 * also checked on its raw text: a JSON integer is -?(0|[1-9][0-9]*), which
 * rejects "1e3", "1.0", "01" and "1.5" alike. The raw token is found by a
 * small scanner over the (already valid) top-level object.
 *
 * A key that appears twice in one object, anywhere in the body, makes the
 * body invalid_json (SPEC §1): cJSON keeps both members and its lookup
 * returns the first, while other parsers (Python, JavaScript) take the last,
 * so a proxy or firewall in front could read a different order than shopd.
 * Keys are compared as cJSON decodes them ("quantit\u0079" is "quantity").
 */
#include "server/api/internal.h"

#include "common/macros.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Skip whitespace as cJSON does: every byte up to 0x20. */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (unsigned char)*p <= 0x20)
        p++;
    return p;
}

/* Skip a string starting at its opening quote; returns past the close. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return end;
}

/* Skip one value (already known to be valid JSON). */
static const char *skip_value(const char *p, const char *end)
{
    if (p < end && *p == '"')
        return skip_string(p, end);
    if (p < end && (*p == '{' || *p == '[')) {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return end;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' &&
           (unsigned char)*p > 0x20)
        p++;
    return p;
}

/*
 * Find the raw text of the value of the top-level member at position
 * `index` (0-based, the order cJSON keeps the children in). By position,
 * not by name: cJSON decodes escaped keys ("quantit\u0079") and cuts a key
 * at \u0000, so matching raw names could pick the wrong member.
 * Returns its start and stores its length, or NULL.
 */
static const char *raw_member(const char *body, size_t len, size_t index,
                              size_t *toklen)
{
    const char *p = body, *end = body + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* cJSON skips a UTF-8 byte order mark */
    p = skip_ws(p, end);
    if (p == end || *p != '{')
        return NULL;
    p++;
    for (size_t i = 0;; i++) {
        p = skip_ws(p, end);
        if (p == end || *p != '"')
            return NULL;
        p = skip_string(p, end);
        p = skip_ws(p, end);
        if (p == end || *p != ':')
            return NULL;
        p = skip_ws(p + 1, end);
        const char *v = p;
        p = skip_value(p, end);
        if (i == index) {
            *toklen = (size_t)(p - v);
            return v;
        }
        p = skip_ws(p, end);
        if (p == end || *p != ',')
            return NULL;
        p++;
    }
}

/* The raw value text of `item`, a direct child of `root`, or NULL. */
static const char *raw_value(const cJSON *root, const cJSON *item,
                             const char *body, size_t len, size_t *toklen)
{
    size_t index = 0;
    for (const cJSON *c = root->child; c != NULL && c != item; c = c->next)
        index++;
    return raw_member(body, len, index, toklen);
}

/* True if `s` is a JSON integer token: -?(0|[1-9][0-9]*). */
static bool is_integer_token(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i == n)
        return false;
    if (s[i] == '0')
        return i + 1 == n;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/*
 * True if the string `item` (a child of `root`) contains an escaped NUL
 * (\u0000): cJSON decodes it and stops the C string there, so "apple\u0000x"
 * would silently read as "apple". Such strings are refused instead.
 */
static bool has_escaped_nul(const cJSON *root, const cJSON *item,
                            const char *body, size_t len)
{
    size_t n = 0;
    const char *tok = raw_value(root, item, body, len, &n);
    /* Walk the escapes pair by pair, so "\\u0000" (an escaped backslash,
     * then text) is not mistaken for an escaped NUL. */
    for (size_t i = 0; tok != NULL && i + 1 < n; i++) {
        if (tok[i] != '\\')
            continue;
        if (tok[i + 1] == 'u' && i + 6 <= n &&
            memcmp(tok + i + 2, "0000", 4) == 0)
            return true;
        i++; /* skip the escaped character */
    }
    return false;
}

static int field_error(char *msg, size_t msglen, const char *text)
{
    snprintf(msg, msglen, "%s", text);
    return -EINVAL;
}

static int check_quantity(const cJSON *root, const char *body, size_t len,
                          unsigned max_quantity, unsigned *out, char *msg,
                          size_t msglen)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantity");
    if (q == NULL)
        return field_error(msg, msglen, "field 'quantity' is required");
    if (!cJSON_IsNumber(q))
        return field_error(msg, msglen,
                           "field 'quantity' must be a JSON integer");
    size_t toklen = 0;
    const char *tok = raw_value(root, q, body, len, &toklen);
    /* Fail closed: a number cJSON found but the scanner did not is not
     * known to be written as an integer. */
    if (tok == NULL || !is_integer_token(tok, toklen))
        return field_error(msg, msglen,
                           "field 'quantity' must be a JSON integer");
    /* Range first: converting a double outside long long's range (1e80)
     * to an integer would be undefined behaviour. */
    double d = q->valuedouble;
    if (!(d >= 1 && d <= (double)max_quantity)) {
        snprintf(msg, msglen, "field 'quantity' must be between 1 and %u",
                 max_quantity);
        return -EINVAL;
    }
    *out = (unsigned)d;
    return 0;
}

static int check_fields(const cJSON *root, const char *body, size_t len,
                        unsigned max_quantity, struct buy_order *out,
                        char *sku_buf, char *msg, size_t msglen)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "product");
    if (p == NULL)
        return field_error(msg, msglen, "field 'product' is required");
    if (!cJSON_IsString(p) || p->valuestring == NULL)
        return field_error(msg, msglen, "field 'product' must be a string");
    size_t n = strlen(p->valuestring);
    if (!shop_sku_valid(p->valuestring, n) ||
        has_escaped_nul(root, p, body, len))
        return field_error(msg, msglen,
                           "field 'product' must be " SHOP_SKU_RULE);
    memcpy(sku_buf, p->valuestring, n + 1);
    out->sku = sku_buf;
    out->sku_len = n;

    int e = check_quantity(root, body, len, max_quantity, &out->quantity, msg,
                           msglen);
    if (e < 0)
        return e;

    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "customer");
    out->has_customer = false;
    if (c == NULL || cJSON_IsNull(c))
        return 0;
    if (!cJSON_IsString(c) || c->valuestring == NULL)
        return field_error(msg, msglen, "field 'customer' must be a string");
    n = strlen(c->valuestring);
    if (has_escaped_nul(root, c, body, len))
        return field_error(msg, msglen,
                           "field 'customer' must not contain NUL");
    if (n > SHOP_CUSTOMER_MAX)
        return field_error(msg, msglen,
                           "field 'customer' must be at most " SHOPD_STR(
                               SHOP_CUSTOMER_MAX) " bytes");
    if (!utf8_valid(c->valuestring, n))
        return field_error(msg, msglen, "field 'customer' must be valid UTF-8");
    memcpy(out->customer, c->valuestring, n + 1);
    out->has_customer = true;
    return 0;
}

/* Objects with at most this many members are checked pairwise, without
 * an allocation; larger ones are sorted. */
#define DUP_PAIRWISE_MAX 16

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice among `obj`'s members, or NULL. Sets
 * `*oom` when the names could not be sorted. */
static const char *object_duplicate(const cJSON *obj, bool *oom)
{
    size_t n = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next)
        n++;
    if (n <= DUP_PAIRWISE_MAX) {
        for (const cJSON *a = obj->child; a != NULL; a = a->next)
            for (const cJSON *b = a->next; b != NULL; b = b->next)
                if (a->string != NULL && b->string != NULL &&
                    strcmp(a->string, b->string) == 0)
                    return a->string;
        return NULL;
    }
    const char **names = malloc(n * sizeof(*names));
    if (names == NULL) {
        *oom = true;
        return NULL;
    }
    size_t i = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next)
        names[i++] = c->string != NULL ? c->string : "";
    qsort(names, n, sizeof(*names), cmp_names);
    const char *dup = NULL;
    for (i = 1; i < n && dup == NULL; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            dup = names[i];
    free(names);
    return dup;
}

/* The first duplicate key found in any object of the tree under `item`, or
 * NULL. Recursion is bounded by cJSON's nesting limit (1000). */
static const char *find_duplicate(const cJSON *item, bool *oom)
{
    if (cJSON_IsObject(item)) {
        const char *dup = object_duplicate(item, oom);
        if (dup != NULL || *oom)
            return dup;
    }
    if (cJSON_IsObject(item) || cJSON_IsArray(item))
        for (const cJSON *c = item->child; c != NULL; c = c->next) {
            const char *dup = find_duplicate(c, oom);
            if (dup != NULL || *oom)
                return dup;
        }
    return NULL;
}

/* Write the duplicate-key message, naming the key when it is short and
 * plain (it is echoed in the error body). */
static void duplicate_message(const char *key, bool oom, char *msg,
                              size_t msglen)
{
    if (oom) {
        snprintf(msg, msglen,
                 "request body could not be checked for "
                 "duplicate keys (out of memory)");
        return;
    }
    size_t n = strlen(key);
    bool plain = n >= 1 && n <= 32;
    for (size_t i = 0; plain && i < n; i++)
        plain =
            isprint((unsigned char)key[i]) && key[i] != '\\' && key[i] != '\'';
    if (plain)
        snprintf(msg, msglen, "key '%s' appears twice in one object", key);
    else
        snprintf(msg, msglen, "a key appears twice in one object");
}

/*
 * The part both bodies share: not empty, no NUL, valid JSON, one object,
 * no member named twice anywhere. Returns 0 and the tree in `*root` (the
 * caller deletes it), or -EBADMSG with a message.
 */
static int parse_object(const char *body, size_t len, cJSON **root, char *msg,
                        size_t msglen)
{
    *root = NULL;
    if (body == NULL || len == 0) {
        snprintf(msg, msglen, "request body is empty; expected a JSON object");
        return -EBADMSG;
    }
    if (memchr(body, '\0', len) != NULL) {
        snprintf(msg, msglen, "request body must not contain NUL bytes");
        return -EBADMSG;
    }
    /* The body is NUL-terminated: counting the NUL makes cJSON reject
     * trailing garbage and keeps any read past the end on the NUL. */
    const char *end = NULL;
    cJSON *tree = cJSON_ParseWithLengthOpts(body, len + 1, &end, 1);
    if (tree == NULL) {
        snprintf(msg, msglen, "request body is not valid JSON");
        return -EBADMSG;
    }
    bool oom = false;
    const char *dup = NULL;
    if (!cJSON_IsObject(tree)) {
        snprintf(msg, msglen, "request body must be one JSON object");
    } else if ((dup = find_duplicate(tree, &oom)) != NULL || oom) {
        duplicate_message(dup, oom, msg, msglen);
    } else {
        *root = tree;
        return 0;
    }
    cJSON_Delete(tree);
    return -EBADMSG;
}

int buy_parse(const char *body, size_t len, unsigned max_quantity,
              struct buy_order *out, char *sku_buf, char *msg, size_t msglen)
{
    cJSON *root;
    int e = parse_object(body, len, &root, msg, msglen);

    if (e == 0)
        e = check_fields(root, body, len, max_quantity, out, sku_buf, msg,
                         msglen);
    cJSON_Delete(root);
    return e;
}

int restock_parse(const char *body, size_t len, unsigned *quantity, char *msg,
                  size_t msglen)
{
    cJSON *root;
    int e = parse_object(body, len, &root, msg, msglen);

    if (e == 0)
        e = check_quantity(root, body, len, SHOP_RESTOCK_MAX, quantity, msg,
                           msglen);
    cJSON_Delete(root);
    return e;
}

/* --- for other parsers of api/ (floor.c) ------------------------------ */

int parse_json_object(const char *body, size_t len, struct cJSON **root,
                      char *msg, size_t msglen)
{
    return parse_object(body, len, root, msg, msglen);
}

bool parse_member_is_integer(const struct cJSON *obj, const struct cJSON *item,
                             const char *text, size_t len)
{
    size_t toklen = 0;
    const char *tok = raw_value(obj, item, text, len, &toklen);

    return tok != NULL && is_integer_token(tok, toklen);
}

const char *parse_member_raw(const struct cJSON *obj, const struct cJSON *item,
                             const char *text, size_t len, size_t *toklen)
{
    return raw_value(obj, item, text, len, toklen);
}
