/*
 * catalog_file.c - read a catalog file into plain struct products.
 *
 * The file is {"products":[{"sku","name","price_cents","stock"},...]}.
 * Every product is checked: SKU 1-64 chars of [A-Za-z0-9_-] and unique,
 * name a string of at most SHOP_NAME_MAX bytes, price_cents and stock whole
 * numbers >= 0, at least one product. The first problem found is reported
 * as one line naming the file, the product and the field.
 */
#include "server/cmd/catalog_file.h"

#include "common/jbuf.h"

#include "common/file.h"
#include "common/macros.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CATALOG_FILE_MAX (16u << 20) /* refuse catalog files over 16 MiB */
/* 2^53 - 1: the largest whole number a JSON parser reads exactly. */
#define JSON_INT_MAX      9007199254740991.0
#define JSON_INT_MAX_TEXT "9007199254740991 (2^53 - 1)"

/* Read the whole file, with errors worded for --catalog. */
static int read_file(const char *path, char **out, size_t *len, char *err,
                     size_t errlen)
{
    int rc = file_read_all(path, CATALOG_FILE_MAX, out, len);
    char why[128];

    if (rc == -EFBIG) {
        snprintf(err, errlen, "--catalog: \"%s\" is over 16 MiB", path);
    } else if (rc == -ENOMEM) {
        snprintf(err, errlen, "--catalog: out of memory reading \"%s\"", path);
    } else if (rc == FILE_NOT_REGULAR) {
        snprintf(err, errlen, "--catalog: \"%s\" is " FILE_NOT_REGULAR_TEXT,
                 path);
    } else if (rc < 0) {
        if (strerror_r(-rc, why, sizeof(why)) != 0)
            snprintf(why, sizeof(why), "error %d", -rc);
        snprintf(err, errlen, "--catalog: cannot read \"%s\": %s", path, why);
    }
    return rc;
}

/* A whole JSON number in 0 .. 2^53-1. */
static bool whole_nonneg(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0 || d > JSON_INT_MAX || d != floor(d))
        return false;
    *out = (int64_t)d;
    return true;
}

static int check_product(const cJSON *item, size_t i, struct product *p,
                         const char *path, char *err, size_t errlen)
{
    if (!cJSON_IsObject(item)) {
        snprintf(err, errlen,
                 "--catalog: \"%s\": products[%zu] is not an "
                 "object",
                 path, i);
        return -EINVAL;
    }
    const cJSON *sku = cJSON_GetObjectItemCaseSensitive(item, "sku");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
    const cJSON *price = cJSON_GetObjectItemCaseSensitive(item, "price_cents");
    const cJSON *stock = cJSON_GetObjectItemCaseSensitive(item, "stock");
    const char *bad = NULL;
    if (!cJSON_IsString(sku) ||
        !shop_sku_valid(sku->valuestring, strlen(sku->valuestring)))
        bad = "sku must be " SHOP_SKU_RULE;
    else if (!cJSON_IsString(name) || strlen(name->valuestring) == 0 ||
             strlen(name->valuestring) > SHOP_NAME_MAX ||
             !utf8_valid(name->valuestring, strlen(name->valuestring)))
        bad = "name must be a UTF-8 string of 1-" SHOPD_STR(
            SHOP_NAME_MAX) " bytes";
    else if (!whole_nonneg(price, &p->price_cents))
        bad = "price_cents must be a whole number from 0 to " JSON_INT_MAX_TEXT;
    else if (!whole_nonneg(stock, &p->stock))
        bad = "stock must be a whole number from 0 to " JSON_INT_MAX_TEXT;
    if (bad != NULL) {
        snprintf(err, errlen, "--catalog: \"%s\": products[%zu]: %s", path, i,
                 bad);
        return -EINVAL;
    }
    snprintf(p->sku, sizeof(p->sku), "%s", sku->valuestring);
    snprintf(p->name, sizeof(p->name), "%s", name->valuestring);
    return 0;
}

/* A product's SKU and its place in the file, for the duplicate check. */
struct sku_at {
    const char *sku;
    size_t i;
};

static int by_sku_then_index(const void *a, const void *b)
{
    const struct sku_at *x = a;
    const struct sku_at *y = b;
    int c = strcmp(x->sku, y->sku);
    return c != 0 ? c : (x->i < y->i ? -1 : x->i > y->i);
}

/*
 * The index of the first product in list[0..n) whose SKU an earlier one
 * already has, or n if none: the products sorted by SKU (then position),
 * each run of equal SKUs names its second member. O(n log n), so a catalog
 * of 100,000 products is checked in milliseconds.
 */
static size_t first_duplicate(const struct product *list, size_t n)
{
    if (n < 2)
        return n;
    struct sku_at *by = calloc(n, sizeof(struct sku_at));
    if (by == NULL) {
        /* Out of memory for the index: fall back to pairwise. */
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (strcmp(list[i].sku, list[j].sku) == 0)
                    return i;
        return n;
    }
    for (size_t i = 0; i < n; i++)
        by[i] = (struct sku_at){list[i].sku, i};
    qsort(by, n, sizeof(struct sku_at), by_sku_then_index);
    size_t first = n;
    for (size_t k = 1; k < n; k++)
        if (strcmp(by[k].sku, by[k - 1].sku) == 0 && by[k].i < first)
            first = by[k].i;
    free(by);
    return first;
}

int catalog_load_file(const char *path, struct product **out, size_t *n,
                      char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    struct product *list = NULL;
    cJSON *root = NULL;
    int rc = read_file(path, &text, &len, err, errlen);
    if (rc < 0)
        return rc;

    rc = -EINVAL;
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    const cJSON *products =
        cJSON_IsObject(root)
            ? cJSON_GetObjectItemCaseSensitive(root, "products")
            : NULL;
    if (root == NULL) {
        size_t line, col;

        text_line_col(text, len, end, &line, &col);
        snprintf(err, errlen,
                 "--catalog: \"%s\" is not valid JSON (line %zu, column %zu)",
                 path, line, col);
        goto fail;
    }
    if (!cJSON_IsArray(products) || cJSON_GetArraySize(products) < 1) {
        snprintf(err, errlen,
                 "--catalog: \"%s\" must be {\"products\": [ ... ]} with at "
                 "least one product",
                 path);
        goto fail;
    }
    size_t count = (size_t)cJSON_GetArraySize(products);
    list = calloc(count, sizeof(*list));
    if (list == NULL) {
        snprintf(err, errlen, "--catalog: out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    /* The first problem in file order: a bad product, or a duplicate SKU
     * before it. */
    size_t i = 0;
    const cJSON *item;
    char bad[512] = "";
    cJSON_ArrayForEach(item, products)
    {
        if (check_product(item, i, &list[i], path, bad, sizeof(bad)) < 0)
            break;
        i++;
    }
    size_t dup = first_duplicate(list, i);
    if (dup < i) {
        snprintf(err, errlen,
                 "--catalog: \"%s\": products[%zu]: duplicate sku \"%s\"", path,
                 dup, list[dup].sku);
        goto fail;
    }
    if (i < count) {
        snprintf(err, errlen, "%s", bad);
        goto fail;
    }
    cJSON_Delete(root);
    free(text);
    *out = list;
    *n = count;
    return 0;
fail:
    free(list);
    cJSON_Delete(root);
    free(text);
    return rc;
}
