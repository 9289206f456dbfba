/*
 * clock.c - monotonic milliseconds, back-off pauses, the slow-down factor.
 */
#include "tests/lib/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void backoff_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void backoff_step(int *delay_ms, int max_ms)
{
    backoff_ms(*delay_ms);
    if (*delay_ms < max_ms)
        *delay_ms *= 2;
}

int e2e_slow(void)
{
    const char *s = getenv("E2E_SLOW");
    if (s == NULL || *s == '\0')
        return 1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 100)
        return 1;
    return (int)v;
}

int e2e_slow_ms(int ms)
{
    return ms * e2e_slow();
}
