/*
 * harness.c - start the real shopd, talk HTTP/1.1 to it, read its JSON.
 *
 * Design: a shopd child gets two pipes (stdout, stderr); one reader thread
 * per child drains both into growing buffers under a mutex and signals a
 * condition variable, so waiting for a log line is a condition wait with a
 * deadline, never a sleep. The process is reaped with waitpid(WNOHANG)
 * polled with a small back-off up to a deadline. Sockets are non-blocking
 * and every read and write goes through poll() with a deadline, so a
 * server that hangs fails the test instead of hanging it.
 *
 * The registry of running children is the one piece of global state: it
 * lets e2e_teardown() kill what a failed test left behind (in CK_NOFORK
 * mode; in fork mode PR_SET_PDEATHSIG does it when the test process exits).
 */
#include "tests/e2e/harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- small utilities --------------------------------------------------- */

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

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("e2e: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fputs("e2e: out of memory\n", stderr);
        abort();
    }
    return q;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* A growing byte buffer, always NUL-terminated. */
struct buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_fmt(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void buf_fmt(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        buf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, big, (size_t)n);
    free(big);
}

static char *buf_copy(const struct buf *b)
{
    return b->p ? xstrndup(b->p, b->len) : xstrdup("");
}

/* The run's scratch directory (set by the runner before any fork). */
static char tmp_dir[64];

int e2e_tmpdir_create(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/shopd-e2e-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        tmp_dir[0] = '\0';
        return -errno;
    }
    return 0;
}

void e2e_tmpdir_remove(void)
{
    if (!tmp_dir[0])
        return;
    DIR *d = opendir(tmp_dir);
    if (d) {
        const struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char path[sizeof tmp_dir + 256];
            snprintf(path, sizeof path, "%s/%s", tmp_dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(tmp_dir);
    tmp_dir[0] = '\0';
}

char *write_tmp(const char *content)
{
    char tmpl[sizeof tmp_dir + 16];
    snprintf(tmpl, sizeof tmpl, "%s/f-XXXXXX", tmp_dir[0] ? tmp_dir : "/tmp");
    int fd = mkstemp(tmpl);
    ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
    size_t len = strlen(content), off = 0;
    while (off < len) {
        ssize_t n = write(fd, content + off, len - off);
        ck_assert_msg(n > 0, "write tmp: %s", strerror(errno));
        off += (size_t)n;
    }
    close(fd);
    return xstrdup(tmpl);
}

struct shopd *shopd_start_catalog(const char *catalog_json, char **path,
                                  const char *const *extra)
{
    const char *args[24];
    size_t n = 0;
    *path = write_tmp(catalog_json);
    args[n++] = "--catalog";
    args[n++] = *path;
    while (extra && *extra && n < 23)
        args[n++] = *extra++;
    args[n] = NULL;
    return shopd_start(args, NULL);
}

void shopd_stop_catalog(struct shopd *s, char *path)
{
    shopd_destroy(s);
    unlink(path);
    free(path);
}

int listen_any(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
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

/* Reset the signal state a test process may have changed, in a child. */
static void child_reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Wait for `pid` with WNOHANG and a small back-off until `deadline`. */
static int reap_until(pid_t pid, int64_t deadline, int *status)
{
    int delay = 1;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() >= deadline)
            return -1;
        backoff_ms(delay);
        if (delay < 20)
            delay *= 2;
    }
}

/* ---- the shopd process ------------------------------------------------ */

struct shopd {
    pid_t pid;
    bool reaped;
    int status;
    unsigned port;
    int out_fd, err_fd; /* read ends, owned by the reader thread */
    pthread_t reader;
    bool reader_started;
    pthread_mutex_t mu; /* guards out, err, eof */
    pthread_cond_t cond;
    struct buf out, err;
    bool eof;
};

#define REGISTRY_MAX 64
static struct shopd *registry[REGISTRY_MAX];

static void registry_add(struct shopd *s)
{
    for (size_t i = 0; i < REGISTRY_MAX; i++) {
        if (!registry[i]) {
            registry[i] = s;
            return;
        }
    }
}

static void registry_remove(const struct shopd *s)
{
    for (size_t i = 0; i < REGISTRY_MAX; i++)
        if (registry[i] == s)
            registry[i] = NULL;
}

void e2e_teardown(void)
{
    for (size_t i = 0; i < REGISTRY_MAX; i++)
        if (registry[i])
            shopd_destroy(registry[i]);
}

static void *reader_main(void *arg)
{
    struct shopd *s = arg;
    int fds[2] = {s->out_fd, s->err_fd};
    char chunk[4096];

    while (fds[0] >= 0 || fds[1] >= 0) {
        struct pollfd pfd[2];
        nfds_t n = 0;
        int which[2];
        for (int i = 0; i < 2; i++) {
            if (fds[i] >= 0) {
                pfd[n].fd = fds[i];
                pfd[n].events = POLLIN;
                pfd[n].revents = 0;
                which[n] = i;
                n++;
            }
        }
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (nfds_t k = 0; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            int i = which[k];
            ssize_t got = read(fds[i], chunk, sizeof chunk);
            if (got < 0 && errno == EINTR)
                continue;
            pthread_mutex_lock(&s->mu);
            if (got > 0)
                buf_add(i == 0 ? &s->out : &s->err, chunk, (size_t)got);
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->mu);
            if (got <= 0) {
                close(fds[i]);
                fds[i] = -1;
            }
        }
    }
    pthread_mutex_lock(&s->mu);
    s->eof = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static const char *shopd_bin(void)
{
    const char *b = getenv("SHOPD_BIN");
    return b && *b ? b : "./shopd";
}

struct shopd *shopd_spawn(const char *const *args, const char *const *env,
                          bool no_defaults)
{
    static const char *const defaults[] = {"--bind", "127.0.0.1", "--port",
                                           "0"};
    size_t nargs = 0, nenv = 0, nenviron = 0;
    while (args && args[nargs])
        nargs++;
    while (env && env[nenv])
        nenv++;
    while (environ && environ[nenviron])
        nenviron++;

    /* Everything the child needs is built before fork. */
    const char **argv = xmalloc((nargs + 6) * sizeof *argv);
    size_t a = 0;
    argv[a++] = shopd_bin();
    if (!no_defaults)
        for (size_t i = 0; i < 4; i++)
            argv[a++] = defaults[i];
    for (size_t i = 0; i < nargs; i++)
        argv[a++] = args[i];
    argv[a] = NULL;

    const char **envp = xmalloc((nenviron + nenv + 1) * sizeof *envp);
    size_t e = 0;
    for (size_t i = 0; i < nenviron; i++)
        if (strncmp(environ[i], "SHOPD_", 6) != 0)
            envp[e++] = environ[i];
    for (size_t i = 0; i < nenv; i++)
        envp[e++] = env[i];
    envp[e] = NULL;

    struct shopd *s = calloc(1, sizeof *s);
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    if (!s || pipe(outp) != 0 || pipe(errp) != 0)
        goto fail;
    fcntl(outp[0], F_SETFD, FD_CLOEXEC);
    fcntl(errp[0], F_SETFD, FD_CLOEXEC);
    s->pid = -1;
    s->out_fd = outp[0];
    s->err_fd = errp[0];
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        goto fail;
    if (pid == 0) {
        /* Only async-signal-safe calls until execve. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        child_reset_signals();
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
            if (devnull > 2)
                close(devnull);
        }
        dup2(outp[1], 1);
        dup2(errp[1], 2);
        close(outp[0]);
        close(outp[1]);
        close(errp[0]);
        close(errp[1]);
        execve(argv[0], (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    s->pid = pid;
    close(outp[1]);
    close(errp[1]);
    free(argv);
    free(envp);
    if (pthread_create(&s->reader, NULL, reader_main, s) == 0)
        s->reader_started = true;
    else {
        close(s->out_fd);
        close(s->err_fd);
        s->eof = true;
    }
    registry_add(s);
    return s;

fail:
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0)
            close(outp[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    free(s);
    free(argv);
    free(envp);
    return NULL;
}

static void deadline_ts(struct timespec *ts, int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left < 0)
        left = 0;
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(left / 1000);
    ts->tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Find the port in "listening on 127.0.0.1:PORT<non-digit>"; 0 if none. */
static unsigned parse_listening(const char *text)
{
    static const char needle[] = "listening on 127.0.0.1:";
    const char *p = text ? strstr(text, needle) : NULL;
    if (!p)
        return 0;
    p += sizeof needle - 1;
    unsigned port = 0;
    const char *q = p;
    while (*q >= '0' && *q <= '9' && q - p < 6)
        port = port * 10 + (unsigned)(*q++ - '0');
    if (q == p || *q == '\0') /* line not complete yet */
        return 0;
    return port <= 65535 ? port : 0;
}

int e2e_slow(void)
{
    const char *v = getenv("E2E_SLOW");
    long n = v != NULL ? strtol(v, NULL, 10) : 1;
    return n >= 1 && n <= 50 ? (int)n : 1;
}

struct shopd *shopd_start(const char *const *args, const char *const *env)
{
    struct shopd *s = shopd_spawn(args, env, false);
    ck_assert_msg(s != NULL, "cannot spawn %s: %s", shopd_bin(),
                  strerror(errno));
    int64_t deadline = now_ms() + (int64_t)E2E_START_TIMEOUT_MS * e2e_slow();
    unsigned port = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        port = parse_listening(s->err.p);
        if (!port)
            port = parse_listening(s->out.p);
        if (port || s->eof || now_ms() >= deadline)
            break;
        struct timespec ts;
        deadline_ts(&ts, deadline);
        pthread_cond_timedwait(&s->cond, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    if (!port) {
        shopd_signal(s, SIGKILL);
        shopd_wait_exit(s, 5000);
        char *err = shopd_stderr(s), *out = shopd_stdout(s);
        char msg[2048];
        snprintf(msg, sizeof msg,
                 "%s did not log 'listening on 127.0.0.1:PORT' "
                 "(status %d); stderr: %.900s stdout: %.400s",
                 shopd_bin(), s->status, err, out);
        free(err);
        free(out);
        shopd_destroy(s);
        ck_abort_msg("%s", msg);
    }
    s->port = port;
    return s;
}

unsigned shopd_port(const struct shopd *s)
{
    return s->port;
}

pid_t shopd_pid(const struct shopd *s)
{
    return s->pid;
}

void shopd_signal(struct shopd *s, int sig)
{
    if (s && !s->reaped && s->pid > 0)
        kill(s->pid, sig);
}

bool shopd_wait_output(struct shopd *s, const char *needle, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    bool found = false;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        found = (s->err.p && strstr(s->err.p, needle)) ||
                (s->out.p && strstr(s->out.p, needle));
        if (found || s->eof || now_ms() >= deadline)
            break;
        struct timespec ts;
        deadline_ts(&ts, deadline);
        pthread_cond_timedwait(&s->cond, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

/* After the process is gone, wait (bounded) for the pipes to drain. */
static void wait_eof(struct shopd *s, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&s->mu);
    while (!s->eof && now_ms() < deadline) {
        struct timespec ts;
        deadline_ts(&ts, deadline);
        pthread_cond_timedwait(&s->cond, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
}

int shopd_wait_exit(struct shopd *s, int timeout_ms)
{
    if (!s->reaped) {
        int st = 0;
        if (reap_until(s->pid, now_ms() + timeout_ms, &st) != 0)
            return -1;
        s->reaped = true;
        s->status = st;
    }
    wait_eof(s, 5000);
    return s->status;
}

bool shopd_running(struct shopd *s)
{
    if (s->reaped)
        return false;
    int st = 0;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
        s->reaped = true;
        s->status = st;
        return false;
    }
    return true;
}

char *shopd_stderr(struct shopd *s)
{
    pthread_mutex_lock(&s->mu);
    char *c = buf_copy(&s->err);
    pthread_mutex_unlock(&s->mu);
    return c;
}

char *shopd_stdout(struct shopd *s)
{
    pthread_mutex_lock(&s->mu);
    char *c = buf_copy(&s->out);
    pthread_mutex_unlock(&s->mu);
    return c;
}

void shopd_destroy(struct shopd *s)
{
    if (!s)
        return;
    registry_remove(s);
    if (!s->reaped && s->pid > 0) {
        kill(s->pid, SIGKILL);
        int st;
        while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
            ;
        s->reaped = true;
    }
    if (s->reader_started)
        pthread_join(s->reader, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s->out.p);
    free(s->err.p);
    free(s);
}

int shopd_run(const char *const *args, const char *const *env, int timeout_ms,
              char **out, char **err)
{
    struct shopd *s = shopd_spawn(args, env, true);
    ck_assert_msg(s != NULL, "cannot spawn %s", shopd_bin());
    int st = shopd_wait_exit(s, timeout_ms);
    if (st == -1) {
        shopd_signal(s, SIGKILL);
        shopd_wait_exit(s, 5000);
        st = -1;
    }
    if (out)
        *out = shopd_stdout(s);
    if (err)
        *err = shopd_stderr(s);
    shopd_destroy(s);
    return st;
}

/* ---- external commands -------------------------------------------------- */

/* Find `name` in PATH; returns a malloc'd path or NULL. */
static char *find_in_path(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t dl = colon ? (size_t)(colon - path) : strlen(path);
        struct buf b = {0};
        buf_add(&b, dl ? path : ".", dl ? dl : 1);
        buf_str(&b, "/");
        buf_str(&b, name);
        struct stat st;
        if (stat(b.p, &st) == 0 && S_ISREG(st.st_mode) &&
            access(b.p, X_OK) == 0)
            return b.p;
        free(b.p);
        if (!colon)
            break;
        path = colon + 1;
    }
    return NULL;
}

int run_cmd(const char *const *argv, const char *input, size_t input_len,
            char **out, int timeout_ms)
{
    *out = xstrdup("");
    char *prog = find_in_path(argv[0]);
    if (!prog)
        return -3;
    int inp[2], outp[2];
    if (pipe(inp) != 0)
        return -2;
    if (pipe(outp) != 0) {
        close(inp[0]);
        close(inp[1]);
        return -2;
    }
    fcntl(inp[1], F_SETFD, FD_CLOEXEC);
    fcntl(outp[0], F_SETFD, FD_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(inp[0]);
        close(inp[1]);
        close(outp[0]);
        close(outp[1]);
        free(prog);
        return -2;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        child_reset_signals();
        dup2(inp[0], 0);
        dup2(outp[1], 1);
        dup2(outp[1], 2);
        close(inp[0]);
        close(inp[1]);
        close(outp[0]);
        close(outp[1]);
        execve(prog, (char *const *)argv, environ);
        _exit(127);
    }
    free(prog);
    close(inp[0]);
    close(outp[1]);
    fcntl(inp[1], F_SETFL, O_NONBLOCK);
    int wfd = inp[1], rfd = outp[0];
    if (input_len == 0) {
        close(wfd);
        wfd = -1;
    }
    size_t off = 0;
    struct buf b = {0};
    int64_t deadline = now_ms() + timeout_ms;
    bool timed_out = false;
    while (rfd >= 0) {
        struct pollfd pfd[2];
        nfds_t n = 0;
        pfd[n++] = (struct pollfd){.fd = rfd, .events = POLLIN};
        if (wfd >= 0)
            pfd[n++] = (struct pollfd){.fd = wfd, .events = POLLOUT};
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int r = poll(pfd, n, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        if (n == 2 && (pfd[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(wfd, input + off, input_len - off);
            if (w > 0)
                off += (size_t)w;
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                off = input_len;
            if (off >= input_len) {
                close(wfd);
                wfd = -1;
            }
        }
        if (pfd[0].revents) {
            char chunk[4096];
            ssize_t got = read(rfd, chunk, sizeof chunk);
            if (got > 0)
                buf_add(&b, chunk, (size_t)got);
            else if (got == 0 || errno != EINTR) {
                close(rfd);
                rfd = -1;
            }
        }
    }
    if (wfd >= 0)
        close(wfd);
    if (rfd >= 0)
        close(rfd);
    int st = 0;
    if (timed_out || reap_until(pid, deadline + 1000, &st) != 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        st = -1;
    }
    free(*out);
    *out = buf_copy(&b);
    free(b.p);
    if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return -3;
    return st;
}

/* ---- HTTP client -------------------------------------------------------- */

int http_connect(struct http_conn *c, unsigned port)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->port = port;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
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

static void consume(struct http_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    if (c->buf)
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

static int read_chunked(struct http_conn *c, struct buf *body, int64_t deadline)
{
    for (;;) {
        const char *eol;
        while (!(eol = find_bytes(c, "\r\n"))) {
            ssize_t n = fill(c, deadline);
            if (n <= 0)
                return n < 0 ? (int)n : -EPROTO;
        }
        char *endp;
        errno = 0;
        unsigned long long size = strtoull(c->buf, &endp, 16);
        if (endp == c->buf || errno || size > (64ull << 20))
            return -EPROTO;
        consume(c, (size_t)(eol - c->buf) + 2);
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
            char *endp;
            errno = 0;
            unsigned long long size = strtoull(c->buf, &endp, 16);
            if (endp == c->buf || errno)
                return -EPROTO;
            consume(c, (size_t)(eol - c->buf) + 2);
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

/* ---- JSON and assertions ------------------------------------------------ */

cJSON *resp_json(const struct http_resp *r)
{
    if (!r->body)
        return NULL;
    return cJSON_ParseWithLength(r->body, r->body_len);
}

const cJSON *json_at(const cJSON *root, const char *path)
{
    const cJSON *node = root;
    char key[128];
    while (node && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        node = cJSON_IsObject(node)
                   ? cJSON_GetObjectItemCaseSensitive(node, key)
                   : NULL;
        path += n + (dot ? 1 : 0);
        if (!dot)
            break;
    }
    return node;
}

double jnum(const cJSON *root, const char *path)
{
    const cJSON *n = json_at(root, path);
    ck_assert_msg(n && cJSON_IsNumber(n),
                  "JSON field %s missing or not a "
                  "number",
                  path);
    return n->valuedouble;
}

const char *jstr(const cJSON *root, const char *path)
{
    const cJSON *n = json_at(root, path);
    ck_assert_msg(n && cJSON_IsString(n),
                  "JSON field %s missing or not a "
                  "string",
                  path);
    return n->valuestring;
}

const char *expect_error(const struct http_resp *r, int status,
                         const char *code)
{
    static char msg[512];
    ck_assert_msg(r->status == status,
                  "expected status %d (%s), got %d; body: %.300s", status, code,
                  r->status, r->body ? r->body : "");
    const char *ct = http_header(r, "Content-Type");
    ck_assert_msg(header_starts(ct, "application/json"),
                  "error %d %s: Content-Type is %s, not application/json",
                  status, code, ct ? ct : "(none)");
    cJSON *j = resp_json(r);
    ck_assert_msg(j && cJSON_IsObject(j),
                  "error %d %s: body is not a JSON "
                  "object: %.300s",
                  status, code, r->body ? r->body : "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    ck_assert_msg(cJSON_IsString(e) && cJSON_IsString(m),
                  "error body lacks string error/message: %.300s", r->body);
    ck_assert_msg(cJSON_GetArraySize(j) == 2,
                  "error body has fields beyond error/message: %.300s",
                  r->body);
    ck_assert_msg(strcmp(e->valuestring, code) == 0,
                  "expected error code %s, got %s (status %d, message %s)",
                  code, e->valuestring, r->status, m->valuestring);
    ck_assert_msg(m->valuestring[0] != '\0', "error %s: empty message", code);
    snprintf(msg, sizeof msg, "%s", m->valuestring);
    cJSON_Delete(j);
    return msg;
}

cJSON *get_json_ok(unsigned port, const char *path)
{
    struct http_resp r;
    int e = http_do(port, "GET", path, NULL, NULL, 0, &r);
    ck_assert_msg(e == 0, "GET %s: %s", path, strerror(-e));
    ck_assert_msg(r.status == 200, "GET %s: status %d, body %.300s", path,
                  r.status, r.body);
    const char *ct = http_header(&r, "Content-Type");
    ck_assert_msg(header_starts(ct, "application/json"),
                  "GET %s: Content-Type %s", path, ct ? ct : "(none)");
    cJSON *j = resp_json(&r);
    ck_assert_msg(j != NULL, "GET %s: body is not JSON: %.300s", path, r.body);
    http_resp_free(&r);
    return j;
}

uint64_t buy_ok(struct http_conn *c, const char *json)
{
    struct http_resp r;
    int e =
        http_roundtrip(c, "POST", "/buy", "Content-Type: application/json\r\n",
                       json, strlen(json), &r);
    ck_assert_msg(e == 0, "POST /buy %s: %s", json, strerror(-e));
    ck_assert_msg(r.status == 202, "POST /buy %s: status %d, body %.300s", json,
                  r.status, r.body);
    cJSON *j = resp_json(&r);
    ck_assert_msg(j != NULL, "202 body not JSON: %s", r.body);
    double id = jnum(j, "order_id");
    ck_assert_msg(id >= 1 && id == (double)(uint64_t)id, "bad order_id %s",
                  r.body);
    uint64_t oid = (uint64_t)id;
    char want[96];
    snprintf(want, sizeof want, "{\"order_id\":%llu,\"status\":\"queued\"}",
             (unsigned long long)oid);
    ck_assert_msg(strcmp(r.body, want) == 0, "202 body is '%s', want '%s'",
                  r.body, want);
    snprintf(want, sizeof want, "/orders/%llu", (unsigned long long)oid);
    const char *loc = http_header(&r, "Location");
    ck_assert_msg(loc && strcmp(loc, want) == 0, "Location is %s, want %s",
                  loc ? loc : "(none)", want);
    ck_assert_msg(
        header_starts(http_header(&r, "Content-Type"), "application/json"),
        "202 Content-Type is not application/json");
    cJSON_Delete(j);
    http_resp_free(&r);
    return oid;
}

cJSON *wait_idle_ok(unsigned port, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int delay = 2;
    for (;;) {
        cJSON *s = get_json_ok(port, "/stats");
        double depth = jnum(s, "queue.depth");
        double infl = jnum(s, "orders.in_flight");
        double acc = jnum(s, "orders.accepted");
        double proc = jnum(s, "orders.processed");
        if (depth == 0 && infl == 0 && acc == proc)
            return s;
        if (now_ms() >= deadline) {
            char *txt = cJSON_PrintUnformatted(s);
            char msg[1024];
            snprintf(msg, sizeof msg, "belt not idle after %d ms: %.800s",
                     timeout_ms, txt);
            free(txt);
            cJSON_Delete(s);
            ck_abort_msg("%s", msg);
        }
        cJSON_Delete(s);
        backoff_ms(delay);
        if (delay < 50)
            delay *= 2;
    }
}

cJSON *wait_order_final_ok(unsigned port, uint64_t id, int timeout_ms)
{
    char path[64];
    snprintf(path, sizeof path, "/orders/%llu", (unsigned long long)id);
    int64_t deadline = now_ms() + timeout_ms;
    int delay = 2;
    for (;;) {
        cJSON *o = get_json_ok(port, path);
        const char *st = jstr(o, "status");
        if (strcmp(st, "queued") != 0)
            return o;
        cJSON_Delete(o);
        ck_assert_msg(now_ms() < deadline,
                      "order %llu still queued after %d ms",
                      (unsigned long long)id, timeout_ms);
        backoff_ms(delay);
        if (delay < 50)
            delay *= 2;
    }
}

bool is_rfc3339_utc(const char *s)
{
    regex_t re;
    if (!s || regcomp(&re,
                      "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T"
                      "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                      "(\\.[0-9]+)?Z$",
                      REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok && strncmp(s, "2020", 4) >= 0;
}
