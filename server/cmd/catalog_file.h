/*
 * catalog_file.h - read a catalog file (--catalog) into products.
 *
 * Thread safety: touches only its arguments; callable from any thread.
 */
#ifndef SHOPD_CATALOG_FILE_H
#define SHOPD_CATALOG_FILE_H

#include <stddef.h>

#include "shop/shop.h"

/*
 * Parse a catalog file ({"products":[{"sku","name","price_cents",
 * "stock"}]}). On success stores a malloc'd array (caller frees) and its
 * length and returns 0; otherwise writes one line into `err` and returns a
 * negative errno.
 */
int catalog_load_file(const char *path, struct product **out, size_t *n,
                      char *err, size_t errlen);

#endif /* SHOPD_CATALOG_FILE_H */
