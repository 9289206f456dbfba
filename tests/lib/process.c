/*
 * process.c - start, watch and stop the real shopd; the scratch directory;
 * other programs run to completion.
 *
 * Design: a shopd child gets two pipes (stdout, stderr); one reader thread
 * per child drains both into growing buffers under a mutex and signals a
 * condition variable, so waiting for a log line is a condition wait with a
 * deadline, never a sleep. The process is reaped with waitpid(WNOHANG)
 * polled with a small back-off up to a deadline.
 *
 * The registry of running children is the one piece of global state: it
 * lets e2e_teardown() kill what a failed test left behind (in CK_NOFORK
 * mode; in fork mode PR_SET_PDEATHSIG does it when the test process exits).
 * The scratch directory's name is set by the runner before any fork.
 */
#include "tests/lib/process.h"

#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/buf.h"
#include "tests/lib/clock.h"

extern char **environ;

/* ---- scratch files ---------------------------------------------------- */

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

char *catalog_json_of(size_t n)
{
    size_t cap = 64 + n * 80, len = 0;
    char *json = malloc(cap);
    ck_assert_ptr_nonnull(json);
    len += (size_t)snprintf(json, cap, "{\"products\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(json + len, cap - len,
                                "%s{\"sku\":\"p%06zu\",\"name\":\"P %zu\","
                                "\"price_cents\":%zu,\"stock\":10}",
                                i ? "," : "", i, i, 100 + i % 50);
    snprintf(json + len, cap - len, "]}");
    return json;
}

/* ---- children --------------------------------------------------------- */

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

/*
 * In a child after fork(): die with `parent`, default signal state, `in`
 * (or /dev/null when negative), `out` and `err` as descriptors 0 to 2, the
 * four pipe ends `pipes` closed, then exec `path`. Only async-signal-safe
 * calls. Never returns.
 */
_Noreturn static void child_exec(pid_t parent, int in, int out, int err,
                                 const int pipes[4], const char *path,
                                 const char *const *argv,
                                 const char *const *envp)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    child_reset_signals();
    int devnull = in < 0 ? open("/dev/null", O_RDONLY) : -1;
    if (devnull >= 0) {
        dup2(devnull, 0);
        if (devnull > 2)
            close(devnull);
    } else if (in >= 0) {
        dup2(in, 0);
    }
    dup2(out, 1);
    dup2(err, 2);
    for (int i = 0; i < 4; i++)
        close(pipes[i]);
    execve(path, (char *const *)argv, (char *const *)envp);
    _exit(127);
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
        backoff_step(&delay, 20);
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
        const int pipes[4] = {outp[0], outp[1], errp[0], errp[1]};
        child_exec(parent, -1, outp[1], errp[1], pipes, argv[0], argv, envp);
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

/*
 * Wait until `seen(s, arg)` holds (it is called under s->mu with the output
 * captured so far; NULL never holds), the pipes are closed or `deadline`
 * passed. Returns what `seen` said last.
 */
static bool wait_output_until(struct shopd *s, int64_t deadline,
                              bool (*seen)(const struct shopd *, const void *),
                              const void *arg)
{
    bool ok;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        ok = seen != NULL && seen(s, arg);
        if (ok || s->eof || now_ms() >= deadline)
            break;
        struct timespec ts;
        deadline_ts(&ts, deadline);
        pthread_cond_timedwait(&s->cond, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* The port of the listening line logged so far, or 0 (under s->mu). */
static unsigned logged_port(const struct shopd *s)
{
    unsigned port = parse_listening(s->err.p);
    return port ? port : parse_listening(s->out.p);
}

static bool port_logged(const struct shopd *s, const void *unused)
{
    (void)unused;
    return logged_port(s) != 0;
}

/* Whether the string `needle` was logged on either stream (under s->mu). */
static bool needle_logged(const struct shopd *s, const void *needle)
{
    return (s->err.p && strstr(s->err.p, needle)) ||
           (s->out.p && strstr(s->out.p, needle));
}

struct shopd *shopd_start(const char *const *args, const char *const *env)
{
    struct shopd *s = shopd_spawn(args, env, false);
    ck_assert_msg(s != NULL, "cannot spawn %s: %s", shopd_bin(),
                  strerror(errno));
    int64_t deadline = now_ms() + e2e_slow_ms(E2E_START_TIMEOUT_MS);
    wait_output_until(s, deadline, port_logged, NULL);
    pthread_mutex_lock(&s->mu);
    unsigned port = logged_port(s);
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
    return wait_output_until(s, now_ms() + e2e_slow_ms(timeout_ms),
                             needle_logged, needle);
}

int shopd_wait_exit(struct shopd *s, int timeout_ms)
{
    if (!s->reaped) {
        int st = 0;
        if (reap_until(s->pid, now_ms() + e2e_slow_ms(timeout_ms), &st) != 0)
            return -1;
        s->reaped = true;
        s->status = st;
    }
    /* The process is gone: wait (bounded) for the pipes to drain. */
    wait_output_until(s, now_ms() + 5000, NULL, NULL);
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

void expect_exit_code(int st, int code, const char *what, const char *err)
{
    /* The end of stderr: where the reason for an exit is. */
    size_t n = err ? strlen(err) : 0;
    const char *tail = n > 1200 ? err + n - 1200 : n ? err : "";
    ck_assert_msg(st != -1, "%s: still running; stderr: %s", what, tail);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == code,
                  "%s: exit status %d (signal %d), want %d; stderr: %s", what,
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                  WIFSIGNALED(st) ? WTERMSIG(st) : 0, code, tail);
}

char *shopd_expect_exit(struct shopd *s, int timeout_ms, int code,
                        const char *what)
{
    int st = shopd_wait_exit(s, timeout_ms);
    char *err = shopd_stderr(s);
    expect_exit_code(st, code, what, err);
    return err;
}

long log_field(const char *text, const char *key)
{
    long val = -1;
    size_t kl = strlen(key);
    for (const char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
            continue;
        char *end;
        long v = strtol(p + kl, &end, 10);
        if (end != p + kl)
            val = v;
    }
    return val;
}

/* A copy of one of the captured streams (`b` is s->out or s->err). */
static char *copy_output(struct shopd *s, const struct buf *b)
{
    pthread_mutex_lock(&s->mu);
    char *c = buf_copy(b);
    pthread_mutex_unlock(&s->mu);
    return c;
}

char *shopd_stderr(struct shopd *s)
{
    return copy_output(s, &s->err);
}

char *shopd_stdout(struct shopd *s)
{
    return copy_output(s, &s->out);
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

/* ---- external commands ------------------------------------------------ */

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
        const int pipes[4] = {inp[0], inp[1], outp[0], outp[1]};
        child_exec(parent, inp[0], outp[1], outp[1], pipes, prog, argv,
                   (const char *const *)environ);
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
