/*
 * http.c - the raw HTTP/1.1 test client.
 *
 * Design: bytes read from the socket collect in c->buf until a whole head,
 * chunk or body is there; what is parsed is consumed from the front. A
 * streamed body (http_read_head + http_read_until) is decoded chunk by
 * chunk into c->sbuf as it arrives, so a marker split across chunks is
 * still found. Every wait is a poll() up to the caller's deadline.
 */
#include "tests/lib/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lib/buf.h"
#include "tests/lib/clock.h"

/* 127.0.0.1:port. */
static struct sockaddr_in loopback(unsigned port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    return sa;
}

int http_connect(struct http_conn *c, unsigned port)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->port = port;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    struct sockaddr_in sa = loopback(port);
    int r;
    do {
        r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->fd = fd;
    return 0;
}

void http_close(struct http_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    free(c->sbuf);
    c->sbuf = NULL;
    c->slen = 0;
}

int http_send_raw(struct http_conn *c, const void *data, size_t len)
{
    const char *p = data;
    size_t off = 0;
    int64_t deadline = now_ms() + E2E_IO_TIMEOUT_MS;
    if (c->fd < 0)
        return -EBADF;
    while (off < len) {
        ssize_t n = send(c->fd, p + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            return -errno;
    }
    return 0;
}

static void build_head(struct buf *b, const struct http_conn *c,
                       const char *method, const char *path,
                       const char *headers)
{
    buf_fmt(b, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", method, path,
            c->port);
    if (headers)
        buf_str(b, headers);
}

int http_send(struct http_conn *c, const char *method, const char *path,
              const char *headers, const void *body, size_t len)
{
    struct buf b = {0};
    build_head(&b, c, method, path, headers);
    if (body)
        buf_fmt(&b, "Content-Length: %zu\r\n", len);
    buf_str(&b, "\r\n");
    if (body)
        buf_add(&b, body, len);
    int r = http_send_raw(c, b.p, b.len);
    free(b.p);
    return r;
}

int http_send_chunked(struct http_conn *c, const char *method, const char *path,
                      const char *headers, const void *body, size_t len,
                      size_t chunk)
{
    struct buf b = {0};
    const char *p = body;
    build_head(&b, c, method, path, headers);
    buf_str(&b, "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        buf_fmt(&b, "%zx\r\n", n);
        buf_add(&b, p + off, n);
        buf_str(&b, "\r\n");
    }
    buf_str(&b, "0\r\n\r\n");
    int r = http_send_raw(c, b.p, b.len);
    free(b.p);
    return r;
}

/* Read more bytes into c->buf. Returns bytes read, 0 on EOF, -errno. */
static ssize_t fill(struct http_conn *c, int64_t deadline)
{
    if (c->fd < 0)
        return 0;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left < 0)
            left = 0;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        if (c->len + 4096 + 1 > c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 16384;
            while (cap < c->len + 4096 + 1)
                cap *= 2;
            c->buf = xrealloc(c->buf, cap);
            c->cap = cap;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -errno;
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
        return n;
    }
}

/* Drop the first `n` unconsumed bytes (nothing to do on an empty buffer,
 * which may still be NULL). */
static void consume(struct http_conn *c, size_t n)
{
    if (c->buf == NULL)
        return;
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->buf[c->len] = '\0';
}

/* Find `needle` in the unconsumed bytes (which may contain NULs). */
static const char *find_bytes(const struct http_conn *c, const char *needle)
{
    size_t nl = strlen(needle);
    if (c->len < nl)
        return NULL;
    for (size_t i = 0; i + nl <= c->len; i++)
        if (c->buf[i] == needle[0] && memcmp(c->buf + i, needle, nl) == 0)
            return c->buf + i;
    return NULL;
}

void http_resp_free(struct http_resp *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->body);
    memset(r, 0, sizeof *r);
}

const char *http_header(const struct http_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

bool header_starts(const char *value, const char *prefix)
{
    return value && strncasecmp(value, prefix, strlen(prefix)) == 0;
}

bool http_says_close(const struct http_resp *r)
{
    const char *v = http_header(r, "Connection");
    return v && strcasecmp(v, "close") == 0;
}

/* Parse the head in c->buf[0..end) into r. Returns 0 or -EPROTO. */
static int parse_head(const char *head, size_t end, struct http_resp *r)
{
    if (end < 12 || strncmp(head, "HTTP/1.", 7) != 0)
        return -EPROTO;
    const char *sp = memchr(head, ' ', end);
    if (!sp || sp + 4 > head + end)
        return -EPROTO;
    int status = 0;
    for (int i = 1; i <= 3; i++) {
        if (sp[i] < '0' || sp[i] > '9')
            return -EPROTO;
        status = status * 10 + (sp[i] - '0');
    }
    r->status = status;
    const char *line = memchr(head, '\n', end);
    while (line && line + 1 < head + end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(head + end - line));
        if (!eol)
            break;
        size_t ll = (size_t)(eol - line);
        if (ll && line[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            break;
        const char *colon = memchr(line, ':', ll);
        if (colon && r->nheaders < HTTP_MAX_RESP_HEADERS) {
            const char *v = colon + 1;
            const char *ve = line + ll;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            r->headers[r->nheaders].name =
                xstrndup(line, (size_t)(colon - line));
            r->headers[r->nheaders].value = xstrndup(v, (size_t)(ve - v));
            r->nheaders++;
        }
        line = eol;
    }
    return 0;
}

/* Read and parse a head (skipping 1xx answers). */
static int read_head(struct http_conn *c, struct http_resp *r, int64_t deadline)
{
    memset(r, 0, sizeof *r);
    for (;;) {
        const char *end = find_bytes(c, "\r\n\r\n");
        if (!end) {
            if (c->len > (8u << 20))
                return -EPROTO;
            ssize_t n = fill(c, deadline);
            if (n < 0)
                return (int)n;
            if (n == 0)
                return c->len == 0 ? -EPIPE : -EPROTO;
            continue;
        }
        size_t hl = (size_t)(end - c->buf) + 4;
        int e = parse_head(c->buf, hl, r);
        consume(c, hl);
        if (e)
            return e;
        if (r->status >= 100 && r->status < 200) {
            http_resp_free(r);
            continue;
        }
        return 0;
    }
}

/*
 * Parse and consume the chunk-size line that ends at `eol` (chunk
 * extensions are ignored). Returns 0 or -EPROTO.
 */
static int take_chunk_size(struct http_conn *c, const char *eol,
                           unsigned long long *size)
{
    char *endp;
    errno = 0;
    *size = strtoull(c->buf, &endp, 16);
    if (endp == c->buf || errno || *size > (64ull << 20))
        return -EPROTO;
    consume(c, (size_t)(eol - c->buf) + 2);
    return 0;
}

static int read_chunked(struct http_conn *c, struct buf *body, int64_t deadline)
{
    for (;;) {
        const char *eol;
        while (!(eol = find_bytes(c, "\r\n"))) {
            ssize_t n = fill(c, deadline);
            if (n <= 0)
                return n < 0 ? (int)n : -EPROTO;
        }
        unsigned long long size;
        if (take_chunk_size(c, eol, &size) != 0)
            return -EPROTO;
        if (size == 0) {
            /* Trailers until an empty line. */
            for (;;) {
                while (!(eol = find_bytes(c, "\r\n"))) {
                    ssize_t n = fill(c, deadline);
                    if (n <= 0)
                        return n < 0 ? (int)n : -EPROTO;
                }
                size_t ll = (size_t)(eol - c->buf);
                consume(c, ll + 2);
                if (ll == 0)
                    return 0;
            }
        }
        while (c->len < size + 2) {
            ssize_t n = fill(c, deadline);
            if (n <= 0)
                return n < 0 ? (int)n : -EPROTO;
        }
        buf_add(body, c->buf, (size_t)size);
        consume(c, (size_t)size + 2);
    }
}

int http_read_head(struct http_conn *c, struct http_resp *r, int timeout_ms)
{
    int e = read_head(c, r, now_ms() + timeout_ms);
    if (e == 0) {
        const char *te = http_header(r, "Transfer-Encoding");
        c->stream_chunked = te && strcasecmp(te, "chunked") == 0;
        c->stream_end = false;
        c->chunk_left = 0;
        c->need_crlf = false;
        free(c->sbuf);
        c->sbuf = NULL;
        c->slen = 0;
    }
    return e;
}

/* Move what can be decoded from c->buf (chunked) to c->sbuf. */
static int dechunk(struct http_conn *c)
{
    for (;;) {
        if (c->stream_end)
            return 0;
        if (c->need_crlf) {
            if (c->len < 2)
                return 0;
            if (c->buf[0] != '\r' || c->buf[1] != '\n')
                return -EPROTO;
            consume(c, 2);
            c->need_crlf = false;
        }
        if (c->chunk_left == 0) {
            const char *eol = find_bytes(c, "\r\n");
            if (!eol)
                return 0;
            unsigned long long size;
            if (take_chunk_size(c, eol, &size) != 0)
                return -EPROTO;
            if (size == 0) {
                c->stream_end = true;
                return 0;
            }
            c->chunk_left = size;
        }
        if (c->len == 0)
            return 0;
        size_t n = c->len < c->chunk_left ? c->len : (size_t)c->chunk_left;
        c->sbuf = xrealloc(c->sbuf, c->slen + n + 1);
        memcpy(c->sbuf + c->slen, c->buf, n);
        c->slen += n;
        c->sbuf[c->slen] = '\0';
        consume(c, n);
        c->chunk_left -= n;
        if (c->chunk_left == 0)
            c->need_crlf = true;
    }
}

int http_read(struct http_conn *c, struct http_resp *r, bool head,
              int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int e = read_head(c, r, deadline);
    if (e)
        return e;
    struct buf body = {0};
    const char *te = http_header(r, "Transfer-Encoding");
    const char *cl = http_header(r, "Content-Length");
    if (head || r->status == 204 || r->status == 304) {
        /* no body */
    } else if (te && strcasecmp(te, "chunked") == 0) {
        r->chunked = true;
        e = read_chunked(c, &body, deadline);
    } else if (cl) {
        char *endp;
        errno = 0;
        unsigned long long n = strtoull(cl, &endp, 10);
        if (endp == cl || errno || n > (64ull << 20)) {
            e = -EPROTO;
        } else {
            while (c->len < n) {
                ssize_t got = fill(c, deadline);
                if (got <= 0) {
                    e = got < 0 ? (int)got : -EPROTO;
                    break;
                }
            }
            if (!e) {
                buf_add(&body, c->buf, (size_t)n);
                consume(c, (size_t)n);
            }
        }
    } else {
        for (;;) {
            ssize_t got = fill(c, deadline);
            if (got < 0) {
                e = (int)got;
                break;
            }
            if (got == 0)
                break;
        }
        buf_add(&body, c->buf ? c->buf : "", c->len);
        consume(c, c->len);
    }
    if (!body.p)
        buf_add(&body, "", 0);
    r->body = body.p;
    r->body_len = body.len;
    return e;
}

int http_read_until(struct http_conn *c, const char *needle, char **out,
                    int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    size_t nl = strlen(needle);
    *out = NULL;
    for (;;) {
        if (c->stream_chunked) {
            int e = dechunk(c);
            if (e)
                return e;
        } else if (c->len) {
            /* Plain stream: everything read is body. */
            c->sbuf = xrealloc(c->sbuf, c->slen + c->len + 1);
            memcpy(c->sbuf + c->slen, c->buf, c->len);
            c->slen += c->len;
            c->sbuf[c->slen] = '\0';
            consume(c, c->len);
        }
        for (size_t i = 0; c->sbuf && i + nl <= c->slen; i++) {
            if (memcmp(c->sbuf + i, needle, nl) == 0) {
                size_t n = i + nl;
                *out = xstrndup(c->sbuf, n);
                memmove(c->sbuf, c->sbuf + n, c->slen - n);
                c->slen -= n;
                c->sbuf[c->slen] = '\0';
                return 0;
            }
        }
        if (c->stream_end)
            return -EPIPE;
        ssize_t n = fill(c, deadline);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EPIPE;
    }
}

int http_wait_closed(struct http_conn *c, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        ssize_t n = fill(c, deadline);
        if (n == 0 || n == -ECONNRESET)
            return 0;
        if (n < 0)
            return (int)n;
        consume(c, c->len); /* discard whatever arrives */
    }
}

int http_roundtrip(struct http_conn *c, const char *method, const char *path,
                   const char *headers, const void *body, size_t len,
                   struct http_resp *r)
{
    memset(r, 0, sizeof *r);
    int e = http_send(c, method, path, headers, body, len);
    if (e)
        return e;
    return http_read(c, r, strcmp(method, "HEAD") == 0, E2E_IO_TIMEOUT_MS);
}

int http_do(unsigned port, const char *method, const char *path,
            const char *headers, const void *body, size_t len,
            struct http_resp *r)
{
    struct http_conn c;
    memset(r, 0, sizeof *r);
    int e = http_connect(&c, port);
    if (e)
        return e;
    e = http_roundtrip(&c, method, path, headers, body, len, r);
    http_close(&c);
    return e;
}

int listen_any(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = loopback(0);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}
