/*
 * baseline.c - the libmicrohttpd ceiling for POST /buy.
 *
 * A bare libmicrohttpd server run in exactly the daemon mode shopd uses
 * (server/http/httpd.c): internal polling thread(s) with poll(2), a thread pool
 * when --threads is 2 or more, the same connection limit, idle timeout and
 * per-connection memory limit, and MHD_ALLOW_SUSPEND_RESUME (which adds an
 * inter-thread channel to every poll set). It reads the request body
 * (consumes it without keeping it) and answers every request with
 * a fixed 202 `{"order_id":1,"status":"queued"}` carrying the same headers
 * as shopd's answer (Content-Type, Location), so the bytes on the wire match.
 * Whatever shopd does on top of this - parsing, validating, the channel, the
 * counters - is the cost the benchmark measures against this server.
 *
 * The response is built per request from a constant buffer, as a handler
 * that must add a per-request header has to. --shared-response queues one
 * pre-built response object instead (the ceiling of the ceiling).
 *
 * Usage: baseline [--bind ADDR] [--port P] [--threads N]
 *                 [--max-connections N] [--conn-timeout S] [--shared-response]
 * With --port 0 the kernel picks a port. Prints
 * "baseline listening on ADDR:PORT" to stderr once it serves; SIGINT or
 * SIGTERM stop it with status 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char BODY[] = "{\"order_id\":1,\"status\":\"queued\"}";

struct options {
    const char *bind;
    unsigned port;
    unsigned threads;
    unsigned max_connections;
    unsigned conn_timeout;
    bool shared;
};

struct server {
    struct MHD_Response *shared; /* NULL unless --shared-response */
};

/* Marks a request whose headers were seen; the body is never kept, so no
 * per-request allocation is needed. */
static char headers_seen;

static enum MHD_Result answer(const struct server *srv,
                              struct MHD_Connection *c)
{
    if (srv->shared != NULL)
        return MHD_queue_response(c, MHD_HTTP_ACCEPTED, srv->shared);

    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof(BODY) - 1, (void *)BODY, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, "/orders/1");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_ACCEPTED, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *c,
                                      const char *url, const char *method,
                                      const char *version,
                                      const char *upload_data,
                                      size_t *upload_data_size, void **con_cls)
{
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    const struct server *srv = cls;

    if (*con_cls == NULL) {
        /* Headers only: say we want the body. */
        *con_cls = &headers_seen;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        /* libmicrohttpd has read the chunk off the socket; consume it. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    return answer(srv, c);
}

static bool parse_uint(const char *s, unsigned long max, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--bind ADDR] [--port P] [--threads N] "
            "[--max-connections N] [--conn-timeout S] [--shared-response]\n",
            prog);
    return 2;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    o->bind = "127.0.0.1";
    o->port = 0;
    o->threads = ncpu > 0 ? (unsigned)ncpu : 1;
    o->max_connections = 10000;
    o->conn_timeout = 30;
    o->shared = false;
    int i = 1;
    while (i < argc) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "--shared-response") == 0) {
            o->shared = true;
            i++;
            continue;
        }
        if (v == NULL)
            return -1;
        if (strcmp(a, "--bind") == 0)
            o->bind = v;
        else if (strcmp(a, "--port") == 0)
            ok = parse_uint(v, 65535, &o->port);
        else if (strcmp(a, "--threads") == 0)
            ok = parse_uint(v, 1024, &o->threads) && o->threads > 0;
        else if (strcmp(a, "--max-connections") == 0)
            ok = parse_uint(v, INT_MAX, &o->max_connections) &&
                 o->max_connections > 0;
        else if (strcmp(a, "--conn-timeout") == 0)
            ok = parse_uint(v, 86400, &o->conn_timeout);
        else
            return -1;
        if (!ok)
            return -1;
        i += 2;
    }
    return 0;
}

/* Bind and listen as shopd does; returns the fd or -errno. */
static int listen_on(const char *addr, unsigned port, unsigned *bound)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    struct options o;
    struct server srv = {NULL};
    sigset_t sigs;
    int sig = 0;

    if (parse_args(argc, argv, &o) != 0)
        return usage(argv[0]);

    /* Block the stop signals before libmicrohttpd starts its threads, so
     * sigwait() below receives them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (o.shared) {
        srv.shared = MHD_create_response_from_buffer(
            sizeof(BODY) - 1, (void *)BODY, MHD_RESPMEM_PERSISTENT);
        if (srv.shared == NULL) {
            fprintf(stderr, "baseline: cannot create the response\n");
            return 1;
        }
        MHD_add_response_header(srv.shared, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json");
        MHD_add_response_header(srv.shared, MHD_HTTP_HEADER_LOCATION,
                                "/orders/1");
    }

    unsigned port = 0;
    int fd = listen_on(o.bind, o.port, &port);
    if (fd < 0) {
        fprintf(stderr, "baseline: cannot listen on %s:%u: %s\n", o.bind,
                o.port, strerror(-fd));
        return 1;
    }

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    unsigned pool = o.threads >= 2 ? o.threads : 0;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, access_handler, &srv, MHD_OPTION_LISTEN_SOCKET,
        (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT, o.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, o.conn_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
        pool ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, pool,
        MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "baseline: libmicrohttpd failed to start\n");
        close(fd);
        return 1;
    }
    fprintf(stderr,
            "baseline listening on %s:%u threads=%u max_connections=%u "
            "conn_timeout=%u shared_response=%s\n",
            o.bind, port, o.threads, o.max_connections, o.conn_timeout,
            o.shared ? "yes" : "no");

    sigwait(&sigs, &sig);
    MHD_stop_daemon(d);
    if (srv.shared != NULL)
        MHD_destroy_response(srv.shared);
    return 0;
}
