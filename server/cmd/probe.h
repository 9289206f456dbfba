/*
 * probe.h - `shopd --probe [URL]`: a tiny HTTP client for a container's
 * HEALTHCHECK, so the image needs no curl.
 */
#ifndef SHOPD_PROBE_H
#define SHOPD_PROBE_H

#include <stddef.h>

/*
 * GET `url` (http://HOST:PORT/PATH, HOST an IP literal) with a timeout and
 * return 0 if it answered 2xx; otherwise write the reason into `err` and
 * return a negative errno (-EPROTO for a non-2xx answer). Blocks up to
 * `timeout_ms`. Thread-safe.
 */
int probe_url(const char *url, unsigned timeout_ms, char *err, size_t errlen);

#endif /* SHOPD_PROBE_H */
