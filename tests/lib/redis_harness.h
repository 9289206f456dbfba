/*
 * redis_harness.h - a real redis-server for tests, started by the test
 * itself in a fresh temporary directory, listening only on a unix socket
 * there (--port 0), and stopped by its PID. Never a system service.
 *
 * The server gets PR_SET_PDEATHSIG(SIGKILL), so a test process that dies
 * takes its Redis with it. Used by the unit suite (tests/check_redis.c)
 * and the end-to-end suite (tests/e2e/e2e_redis.c).
 *
 * Thread safety: for the test's own thread only.
 */
#ifndef SHOPD_TESTS_LIB_REDIS_HARNESS_H
#define SHOPD_TESTS_LIB_REDIS_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

struct redis_server {
    pid_t pid; /* 0 when not running */
    bool aof;  /* appendonly yes, appendfsync always */
    char dir[128];
    char sock[160];
    char url[192]; /* "unix://<sock>" */
};

/*
 * Make a temporary directory and start redis-server in it, with the
 * append-only file (fsync on every write) when `aof` is set, else with no
 * persistence. Waits until it answers PING (up to 10 s). Returns 0 or a
 * negative errno (-ENOENT: no redis-server on PATH).
 */
int redis_server_start(struct redis_server *r, bool aof);

/*
 * Start the server again on the same directory and socket (after
 * redis_server_stop or _kill), so it reloads its append-only file.
 */
int redis_server_restart(struct redis_server *r);

/* SIGTERM the server and reap it (Redis writes its files first). */
void redis_server_stop(struct redis_server *r);

/* SIGKILL the server and reap it. */
void redis_server_kill(struct redis_server *r);

/* Stop the server if it runs and remove its directory. */
void redis_server_destroy(struct redis_server *r);

/*
 * Send one inline command (e.g. "FLUSHALL") over the socket and store the
 * first line of the reply in `out`. Returns 0 or a negative errno.
 */
int redis_server_command(const struct redis_server *r, const char *cmd,
                         char *out, size_t outlen);

#endif /* SHOPD_TESTS_LIB_REDIS_HARNESS_H */
