/*
 * macros.h - the few macros every module may use.
 *
 * Thread safety: compile-time only.
 */
#ifndef SHOPD_COMMON_MACROS_H
#define SHOPD_COMMON_MACROS_H

/* The decimal text of a numeric macro, for messages built at compile
 * time: "1-" SHOPD_STR(SHOP_SKU_MAX) is "1-64". */
#define SHOPD_STR_(x) #x
#define SHOPD_STR(x)  SHOPD_STR_(x)

#endif /* SHOPD_COMMON_MACROS_H */
