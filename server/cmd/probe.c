/*
 * probe.c - a tiny HTTP/1.0 client for `shopd --probe`, the container
 * HEALTHCHECK, so the runtime image needs no curl or wget.
 *
 * It does one thing: GET a path on an IP literal and report whether the
 * status line says 2xx. It resolves no names (a health check of the local
 * process has no business waiting on DNS), follows no redirects, reads
 * nothing past the status line and never blocks past its deadline: the
 * socket is non-blocking and every wait is a poll() bounded by the time
 * left until one monotonic deadline, which covers connect, send and
 * receive together.
 *
 * No shared state: everything lives on the caller's stack, so probes may
 * run from any thread at once. SIGPIPE is avoided per call (MSG_NOSIGNAL),
 * because `shopd --probe` runs before main installs any signal handling.
 */
#include "server/cmd/probe.h"

#include "common/time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROBE_HOST_MAX 64   /* an IPv6 literal is at most 45 chars */
#define PROBE_PATH_MAX 1024 /* longer paths are refused, not truncated */
#define PROBE_LINE_MAX 256  /* bytes read looking for the status line */

struct target {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[PROBE_HOST_MAX + 8]; /* Host header: "[::1]:8080" */
    const char *path;              /* points into the caller's URL */
    size_t path_len;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Fill `err` with the text of errno value `code` (positive). */
static void set_errno_text(char *err, size_t errlen, const char *what, int code)
{
    char text[128];
    if (strerror_r(code, text, sizeof(text)) != 0)
        snprintf(text, sizeof(text), "error %d", code);
    set_err(err, errlen, "%s: %s", what, text);
}

/* Parse a decimal TCP port, 1..65535, exactly `n` digits long. */
static int parse_port(const char *s, size_t n, unsigned *port)
{
    if (n == 0 || n > 5)
        return -EINVAL;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -EINVAL;
    *port = v;
    return 0;
}

/* The request path: bounded, and without bytes that would let it rewrite
 * the request line. */
static int set_path(struct target *t, const char *path, char *err,
                    size_t errlen)
{
    t->path = path;
    t->path_len = strlen(path);
    if (t->path_len > PROBE_PATH_MAX) {
        set_err(err, errlen, "path longer than %d bytes", PROBE_PATH_MAX);
        return -EINVAL;
    }
    /* Spaces or control bytes would let the path rewrite the request. */
    for (size_t i = 0; i < t->path_len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c <= ' ' || c == 0x7f) {
            set_err(err, errlen, "path contains a space or control byte");
            return -EINVAL;
        }
    }
    return 0;
}

/* The address to connect to, from an IP literal (no name is resolved),
 * and the Host header's value. */
static int set_addr(struct target *t, const char *hostbuf, bool v6,
                    unsigned port, char *err, size_t errlen)
{
    memset(&t->addr, 0, sizeof(t->addr));
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&t->addr;
        if (inet_pton(AF_INET6, hostbuf, &a->sin6_addr) != 1) {
            set_err(err, errlen, "'%s' is not an IPv6 address", hostbuf);
            return -EINVAL;
        }
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        t->addrlen = sizeof(*a);
        snprintf(t->host, sizeof(t->host), "[%s]:%u", hostbuf, port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&t->addr;
        if (inet_pton(AF_INET, hostbuf, &a->sin_addr) != 1) {
            set_err(err, errlen,
                    "'%s' is not an IP address (names are not resolved)",
                    hostbuf);
            return -EINVAL;
        }
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        t->addrlen = sizeof(*a);
        snprintf(t->host, sizeof(t->host), "%s:%u", hostbuf, port);
    }
    return 0;
}

/*
 * Split "http://HOST[:PORT][/PATH]" where HOST is an IPv4 literal or a
 * bracketed IPv6 literal. The port defaults to 80 and the path to "/".
 */
static int parse_url(const char *url, struct target *t, char *err,
                     size_t errlen)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        set_err(err, errlen, "only http:// URLs are supported");
        return -EINVAL;
    }
    const char *p = url + sizeof(scheme) - 1;
    const char *host = p, *host_end;
    bool v6 = false;
    if (*p == '[') {
        v6 = true;
        host = p + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL) {
            set_err(err, errlen, "missing ']' after the IPv6 address");
            return -EINVAL;
        }
        p = host_end + 1;
    } else {
        host_end = host + strcspn(host, ":/");
        p = host_end;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0 || host_len >= PROBE_HOST_MAX) {
        set_err(err, errlen, "missing or overlong host");
        return -EINVAL;
    }
    char hostbuf[PROBE_HOST_MAX];
    memcpy(hostbuf, host, host_len);
    hostbuf[host_len] = '\0';

    unsigned port = 80;
    if (*p == ':') {
        p++;
        size_t n = strcspn(p, "/");
        if (parse_port(p, n, &port) < 0) {
            set_err(err, errlen, "bad port (want 1-65535)");
            return -EINVAL;
        }
        p += n;
    }
    if (*p != '\0' && *p != '/') {
        set_err(err, errlen, "unexpected '%c' after the host", *p);
        return -EINVAL;
    }
    int rc = set_path(t, *p == '\0' ? "/" : p, err, errlen);
    if (rc < 0)
        return rc;
    return set_addr(t, hostbuf, v6, port, err, errlen);
}

static long long now_ms(void)
{
    return (long long)time_now_ms(CLOCK_MONOTONIC);
}

/*
 * Wait until `fd` is ready for `events` or the deadline passes. Returns 0
 * when ready, -ETIMEDOUT at the deadline, another negative errno on error.
 */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int do_connect(int fd, const struct target *t, long long deadline)
{
    if (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -errno;
    int rc = wait_fd(fd, POLLOUT, deadline);
    if (rc < 0)
        return rc;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        return -errno;
    return soerr == 0 ? 0 : -soerr;
}

static int send_all(int fd, const char *buf, size_t len, long long deadline)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/*
 * Read until the first line is complete (or `cap - 1` bytes arrived, or
 * the peer closed). Returns the bytes read, NUL-terminated in `buf`, or a
 * negative errno.
 */
static ssize_t read_status_line(int fd, char *buf, size_t cap,
                                long long deadline)
{
    size_t len = 0;
    buf[0] = '\0';
    while (len + 1 < cap && memchr(buf, '\n', len) == NULL) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)len;
}

/* "HTTP/1.x NNN reason": return 100..599 or -EPROTO. */
static int parse_status(const char *line)
{
    if (strncmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' ||
        line[8] != ' ')
        return -EPROTO;
    const char *s = line + 9;
    for (int i = 0; i < 3; i++)
        if (s[i] < '0' || s[i] > '9')
            return -EPROTO;
    if (s[3] != ' ' && s[3] != '\r' && s[3] != '\n' && s[3] != '\0')
        return -EPROTO;
    int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    return code >= 100 && code <= 599 ? code : -EPROTO;
}

static int probe_fd(int fd, const struct target *t, unsigned timeout_ms,
                    long long deadline, char *err, size_t errlen)
{
    int rc = do_connect(fd, t, deadline);
    if (rc == -ETIMEDOUT) {
        set_err(err, errlen, "connect to %s timed out after %u ms", t->host,
                timeout_ms);
        return rc;
    }
    if (rc < 0) {
        char what[PROBE_HOST_MAX + 32];
        snprintf(what, sizeof(what), "connect to %s", t->host);
        set_errno_text(err, errlen, what, -rc);
        return rc;
    }

    char req[PROBE_PATH_MAX + 160];
    int n = snprintf(req, sizeof(req),
                     "GET %.*s HTTP/1.0\r\nHost: %s\r\n"
                     "User-Agent: shopd-probe\r\nConnection: close\r\n\r\n",
                     (int)t->path_len, t->path, t->host);
    if (n < 0 || (size_t)n >= sizeof(req)) {
        set_err(err, errlen, "request too long");
        return -EINVAL;
    }
    rc = send_all(fd, req, (size_t)n, deadline);
    if (rc < 0) {
        if (rc == -ETIMEDOUT)
            set_err(err, errlen, "sending the request timed out after %u ms",
                    timeout_ms);
        else
            set_errno_text(err, errlen, "sending the request", -rc);
        return rc;
    }

    char line[PROBE_LINE_MAX];
    ssize_t got = read_status_line(fd, line, sizeof(line), deadline);
    if (got == -ETIMEDOUT) {
        set_err(err, errlen, "no answer within %u ms", timeout_ms);
        return -ETIMEDOUT;
    }
    if (got < 0) {
        set_errno_text(err, errlen, "reading the answer", (int)-got);
        return (int)got;
    }
    if (got == 0) {
        set_err(err, errlen, "connection closed before any answer");
        return -EPROTO;
    }
    line[strcspn(line, "\r\n")] = '\0';
    int status = parse_status(line);
    if (status < 0) {
        set_err(err, errlen, "not an HTTP status line: \"%.60s\"", line);
        return -EPROTO;
    }
    if (status < 200 || status > 299) {
        set_err(err, errlen, "unhealthy: %.100s", line + 9);
        return -EPROTO;
    }
    return 0;
}

int probe_url(const char *url, unsigned timeout_ms, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (url == NULL || timeout_ms == 0) {
        set_err(err, errlen, "no URL or zero timeout");
        return -EINVAL;
    }
    struct target t;
    int rc = parse_url(url, &t, err, errlen);
    if (rc < 0)
        return rc;

    long long deadline = now_ms() + timeout_ms;
    int fd = socket(t.addr.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        rc = -errno;
        set_errno_text(err, errlen, "socket", -rc);
        return rc;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        rc = -errno;
        set_errno_text(err, errlen, "fcntl", -rc);
        goto fail;
    }
    rc = probe_fd(fd, &t, timeout_ms, deadline, err, errlen);
fail:
    close(fd);
    return rc;
}
