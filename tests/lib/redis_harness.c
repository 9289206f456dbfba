/*
 * redis_harness.c - start and stop a real redis-server for tests.
 *
 * Readiness is a PING answered +PONG on the unix socket (not a sleep):
 * while Redis loads its append-only file it answers -LOADING, and before
 * it listens the connect fails; both are retried every 10 ms up to 10 s.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/lib/redis_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int redis_server_command(const struct redis_server *r, const char *cmd,
                         char *out, size_t outlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ret = -errno;

    if (fd < 0)
        return ret;
    if (strlen(r->sock) >= sizeof(sa.sun_path)) {
        close(fd);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, r->sock, strlen(r->sock) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        ret = -errno;
        goto out;
    }
    char line[512];
    int n = snprintf(line, sizeof(line), "%s\r\n", cmd);
    if (write(fd, line, (size_t)n) != n) {
        ret = -EIO;
        goto out;
    }
    size_t got = 0;
    ret = -ETIMEDOUT;
    while (got + 1 < sizeof(line)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            goto out;
        ssize_t k = read(fd, line + got, sizeof(line) - 1 - got);
        if (k <= 0) {
            ret = -EPIPE;
            goto out;
        }
        got += (size_t)k;
        line[got] = '\0';
        char *nl = strstr(line, "\r\n");
        if (nl) {
            *nl = '\0';
            snprintf(out, outlen, "%s", line);
            ret = 0;
            goto out;
        }
    }
out:
    close(fd);
    return ret;
}

static int spawn(struct redis_server *r)
{
    char log[200];
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket",
               r->sock, "--unixsocketperm", "700", "--save", "", "--appendonly",
               r->aof ? "yes" : "no", "--appendfsync", "always", "--dir",
               r->dir, "--daemonize", "no", "--logfile", "", (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 1000; i++) {
        char reply[64];
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = 0;
            return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT
                                                                   : -EIO;
        }
        if (redis_server_command(r, "PING", reply, sizeof(reply)) == 0 &&
            strcmp(reply, "+PONG") == 0)
            return 0;
        pause_ms(10);
    }
    redis_server_kill(r);
    return -ETIMEDOUT;
}

int redis_server_start(struct redis_server *r, bool aof)
{
    memset(r, 0, sizeof(*r));
    r->aof = aof;
    const char *tmp = getenv("TMPDIR");
    snprintf(r->dir, sizeof(r->dir), "%s/shopd-redis-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(r->dir) == NULL)
        return -errno;
    snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
    snprintf(r->url, sizeof(r->url), "unix://%s", r->sock);
    return spawn(r);
}

int redis_server_restart(struct redis_server *r)
{
    if (r->pid > 0)
        return -EBUSY;
    return spawn(r);
}

static void end(struct redis_server *r, int sig)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    r->pid = 0;
}

void redis_server_stop(struct redis_server *r)
{
    end(r, SIGTERM);
}

void redis_server_kill(struct redis_server *r)
{
    end(r, SIGKILL);
}

static int remove_one(const char *path, const struct stat *sb, int type,
                      struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

void redis_server_destroy(struct redis_server *r)
{
    redis_server_kill(r);
    if (r->dir[0] == '\0')
        return;
    /* Depth first: the socket, the log and appendonlydir/ go first. */
    nftw(r->dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
    r->dir[0] = '\0';
}
