/*
 * time.h - clock readings and deadlines, the one copy of the timespec
 * arithmetic that pthread_cond_timedwait() and friends need.
 *
 * Thread safety: every function touches only its arguments.
 */
#ifndef SHOPD_TIME_H
#define SHOPD_TIME_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

#define NS_PER_S  INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)

/* Now on clock `clk`, in nanoseconds. */
static inline int64_t time_now_ns(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* Now on clock `clk`, in milliseconds. */
static inline int64_t time_now_ms(clockid_t clk)
{
    return time_now_ns(clk) / NS_PER_MS;
}

/* The timespec of `ns` nanoseconds on a clock (ns >= 0). */
static inline struct timespec time_from_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / NS_PER_S),
                          .tv_nsec = (long)(ns % NS_PER_S)};
    return ts;
}

/* The absolute time `ms` milliseconds from now on clock `clk`, as a
 * pthread_cond_timedwait() deadline (the condition variable must use the
 * same clock). */
static inline struct timespec time_deadline_ms(clockid_t clk, int64_t ms)
{
    return time_from_ns(time_now_ns(clk) + ms * NS_PER_MS);
}

/* Sleep `ms` milliseconds, through signal interruptions. */
static inline void time_sleep_ms(unsigned ms)
{
    struct timespec req = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&req, &req) == -1 && errno == EINTR)
        ;
}

#endif /* SHOPD_TIME_H */
