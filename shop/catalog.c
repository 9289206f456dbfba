/*
 * catalog.c - the built-in demo catalog, the SKU rule and the names of
 * order states.
 *
 * Plain constant data: nothing here changes after load, so nothing needs a
 * lock. The stocks are large enough to take a short load test and small
 * enough (the truffles) that out_of_stock shows up in the demo.
 */
#include "shop/internal.h"

static const struct product demo_catalog[] = {
    {"apple", "Apple", 50, 1000},
    {"banana", "Banana", 25, 1500},
    {"cherry", "Cherries (250 g)", 399, 400},
    {"date", "Medjool dates (200 g)", 450, 300},
    {"elderberry", "Elderberries (125 g)", 600, 200},
    {"fig", "Fig", 120, 500},
    {"grape", "Grapes (500 g)", 275, 800},
    {"honeydew", "Honeydew melon", 399, 250},
    {"kiwi", "Kiwi", 60, 1200},
    {"lemon", "Lemon", 40, 900},
    {"mango", "Mango", 150, 600},
    {"truffle", "Black truffle (50 g)", 4999, 20},
};

const struct product *shop_demo_catalog(size_t *n)
{
    *n = sizeof(demo_catalog) / sizeof(demo_catalog[0]);
    return demo_catalog;
}

bool shop_sku_valid(const char *sku, size_t n)
{
    if (n < 1 || n > SHOP_SKU_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = sku[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

const char *shop_status_name(enum order_status st)
{
    switch (st) {
    case ORDER_QUEUED:
        return "queued";
    case ORDER_FULFILLED:
        return "fulfilled";
    case ORDER_OUT_OF_STOCK:
        return "out_of_stock";
    }
    return "unknown";
}
