/*
 * sqlite.c - the SQLite store: one database file in WAL mode.
 *
 * Schema (stable; users may read it with the sqlite3 CLI, see
 * docs/durability.md, "The schema"):
 *   meta(key, value)             schema_version = 1, unfinished_from
 *                                (every order below it is final),
 *                                last_probe
 *   products(id, sku, name, price_cents, initial, stock, sold, restocked)
 *   orders(id, sku, quantity, customer, status, accepted_ns, processed_ns,
 *          worker)               status is 'queued', 'fulfilled' or
 *                                'out_of_stock'; no index on status (it
 *                                would cost every write): the load scans
 *                                from unfinished_from
 *   idempotency_keys(endpoint, key, fingerprint, status, body, order_id,
 *                    created_ns)  fingerprint is the canonical request as
 *                                TEXT ("apple|2|null"); a file written
 *                                before held 32-byte SHA-256 BLOBs there:
 *                                those keys are dropped once at open
 *                                (meta fingerprint = 'canonical' marks it).
 *                                A key's record is {endpoint, key,
 *                                fingerprint, outcome}: status 0 marks a
 *                                row of this form, its outcome order_id
 *                                (buy) or body "<stock> <sold>
 *                                <restocked>" (restock). A row written
 *                                before holds its HTTP status (202, 200)
 *                                and JSON answer: its outcome is read from
 *                                order_id, or from the body's numbers.
 *
 * Two connections. The writer belongs to the shop's committer thread (and
 * to store_load() before it starts): each store_commit() is one
 * BEGIN IMMEDIATE ... COMMIT with cached statements. The reader serves
 * store_order_get() and store_idem_get() from any thread, one at a time
 * under `read_lock`; in WAL mode a reader never waits for the writer.
 *
 * An order is applied once: a result updates its order only WHERE status =
 * 'queued', and only when that changed a row is the product's stock
 * changed, in the same transaction. Stock changes of one batch are summed
 * per product first (one UPDATE per product touched).
 *
 * One shopd per file: open() takes flock(LOCK_EX | LOCK_NB) on the file
 * itself and holds it until close. flock locks are separate from the POSIX
 * locks SQLite uses, so the two do not interfere; the descriptor is closed
 * only after both connections, since closing any descriptor of a file
 * drops the process's POSIX locks on it. A lock on the file alone dies
 * with the file: once it is deleted or replaced, a second shopd would
 * create a new file at the path and lock that. So open() first takes the
 * same lock on a lock file beside it, DIR/.NAME.shopd-lock, which shopd
 * creates once and never deletes (deleting it would let a second process
 * lock a new one while the first still holds the old): one shopd per path
 * as long as that file stays, one per database file always. The lock file
 * is hidden so that `rm shop.db*` leaves it.
 *
 * A shop never vanishes silently (SPEC §7). open() records the device and
 * inode of the file it opened; `path_moved()` compares them with stat(2)
 * of the path. Every commit checks right before its COMMIT, and a commit
 * into a file that no longer is the shop at the path is rolled back and
 * fails (-EIO: the accepts get 503, the results are retried), so nothing
 * gets a 202 for a write into a deleted or moved file. (The check is not
 * atomic with another process's unlink: a file deleted during the COMMIT
 * itself takes that one batch with it. After the COMMIT it is too late to
 * refuse: a moved file may come back with the batch in it, and a 503 would
 * then be a false answer.) store_available() re-checks at most every
 * STORE_WATCH_MS, so /readyz and the outage log see an idle shop vanish
 * within that. When the same file is back at the path (moved back), the
 * checks pass and the shop serves again; a new file at the path never
 * does: shopd never re-creates a shop while it runs.
 *
 * Memory: each connection's page cache is bounded (cache_kib, 2 MiB by
 * default) and memory mapping is off, so RSS does not grow with the file.
 *
 * Lock order: `read_lock` only, never held with another lock of shopd.
 */
#include "store/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <cJSON.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SQ_DEFAULT_CACHE_KIB 2048
#define SQ_SCHEMA_VERSION    "1"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta ("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES ('schema_version', '1');"
    "CREATE TABLE IF NOT EXISTS products ("
    " id INTEGER PRIMARY KEY,"
    " sku TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " price_cents INTEGER NOT NULL,"
    " initial INTEGER NOT NULL,"
    " stock INTEGER NOT NULL CHECK (stock >= 0),"
    " sold INTEGER NOT NULL DEFAULT 0,"
    " restocked INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS orders ("
    " id INTEGER PRIMARY KEY,"
    " sku TEXT NOT NULL,"
    " quantity INTEGER NOT NULL,"
    " customer TEXT,"
    " status TEXT NOT NULL"
    /* Written with OR, not IN: an IN list makes SQLite build an
     * ephemeral table on every INSERT and UPDATE (twice the work). */
    "  CHECK (status = 'queued' OR status = 'fulfilled'"
    "   OR status = 'out_of_stock'),"
    " accepted_ns INTEGER NOT NULL,"
    " processed_ns INTEGER,"
    " worker INTEGER);"

    "CREATE TABLE IF NOT EXISTS idempotency_keys ("
    " endpoint TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL,"
    " status INTEGER NOT NULL,"
    " body TEXT NOT NULL,"
    " order_id INTEGER,"
    " created_ns INTEGER NOT NULL,"
    " PRIMARY KEY (endpoint, key));";

/* The writer's cached statements. */
enum {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_INSERT_ORDER,
    W_FINISH_ORDER,
    W_TAKE_STOCK,
    W_RESTOCK,
    W_READ_PRODUCT,
    W_INSERT_KEY,
    W_PROBE,
    W_COUNT
};

static const char *const writer_sql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_INSERT_ORDER] = "INSERT INTO orders (id, sku, quantity, customer,"
                       " status, accepted_ns) VALUES (?, ?, ?, ?, 'queued', ?)",
    [W_FINISH_ORDER] = "UPDATE orders SET status = ?, processed_ns = ?,"
                       " worker = ? WHERE id = ? AND status = 'queued'",
    [W_TAKE_STOCK] = "UPDATE products SET stock = stock - ?1,"
                     " sold = sold + ?1 WHERE id = ?2",
    [W_RESTOCK] = "UPDATE products SET stock = stock + ?1,"
                  " restocked = restocked + ?1 WHERE id = ?2",
    [W_READ_PRODUCT] = "SELECT stock, sold, restocked FROM products"
                       " WHERE id = ?",
    /* A key is new, or replaces one older than the ttl. */
    [W_INSERT_KEY] = "INSERT INTO idempotency_keys (endpoint, key,"
                     " fingerprint, status, body, order_id, created_ns)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                     " ON CONFLICT (endpoint, key) DO UPDATE SET"
                     " fingerprint = ?3, status = ?4, body = ?5,"
                     " order_id = ?6, created_ns = ?7"
                     " WHERE created_ns <= ?8",
    [W_PROBE] = "INSERT OR REPLACE INTO meta VALUES ('last_probe', ?)",
};

enum { R_ORDER, R_KEY, R_COUNT };

static const char *const reader_sql[R_COUNT] = {
    [R_ORDER] = "SELECT id, sku, quantity, customer, status, accepted_ns,"
                " processed_ns, worker FROM orders WHERE id = ?",
    [R_KEY] = "SELECT fingerprint, status, body, order_id, created_ns"
              " FROM idempotency_keys WHERE endpoint = ? AND key = ?",
};

/* A product's SKU and row id, sorted by SKU for the order loader. */
struct sku_entry {
    const char *sku;
    uint32_t index;
};

/* Why the path no longer names the shop's file (path_moved()). */
enum sq_gone {
    SQ_HERE = 0,
    SQ_DELETED,  /* the file has no name left */
    SQ_MOVED,    /* nothing at the path; the file lives on elsewhere */
    SQ_REPLACED, /* another file is at the path */
};

struct sqlite_store {
    struct store base;
    char *path;
    int lock_fd;      /* flock'd for the store's life */
    int path_lock_fd; /* the lock file's, flock'd for the store's life */
    dev_t dev;        /* the opened file's device and inode, read-only */
    ino_t ino;
    _Atomic int gone;              /* enum sq_gone, as last checked */
    _Atomic int64_t next_watch_ms; /* when store_available() looks again */
    _Atomic int last_error;        /* SQLite code of the last failed commit */
    enum store_sync sync;          /* read-only */
    int64_t ttl_ns;                /* idempotency key lifetime, read-only */
    sqlite3 *w;                    /* writer: committer thread only */
    sqlite3_stmt *ws[W_COUNT];
    sqlite3 *r;                /* reader: under read_lock */
    sqlite3_stmt *rs[R_COUNT]; /* guarded by read_lock */
    pthread_mutex_t read_lock; /* guards r and rs */
    /* Products as loaded; read-only after store_load(), which runs before
     * any reader call. Index = position; rowid[i] is the row's id. */
    size_t nproducts;
    int64_t *rowid;
    char (*sku)[STORE_SKU_MAX + 1];
    struct sku_entry *by_sku;
    int64_t *delta;   /* committer scratch: units taken per product */
    uint64_t next_id; /* committer thread only */
    _Atomic bool available;
    _Atomic uint64_t transactions, failures, duplicates;
};

static int64_t now_ns(void)
{
    return time_now_ns(CLOCK_REALTIME);
}

/* Map an SQLite result code to a negative errno. */
static int sq_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return -EINVAL;
    default:
        return -EIO;
    }
}

static const char *status_text(enum store_status s)
{
    switch (s) {
    case STORE_FULFILLED:
        return "fulfilled";
    case STORE_OUT_OF_STOCK:
        return "out_of_stock";
    case STORE_QUEUED:
        break;
    }
    return "queued";
}

static enum store_status status_parse(const unsigned char *t)
{
    if (t != NULL && strcmp((const char *)t, "fulfilled") == 0)
        return STORE_FULFILLED;
    if (t != NULL && strcmp((const char *)t, "out_of_stock") == 0)
        return STORE_OUT_OF_STOCK;
    return STORE_QUEUED;
}

static int sku_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sku_entry *)a)->sku,
                  ((const struct sku_entry *)b)->sku);
}

/* The product index of `sku`, or -1. */
static long sku_index(const struct sqlite_store *s, const char *sku)
{
    struct sku_entry key = {.sku = sku};
    const struct sku_entry *e =
        bsearch(&key, s->by_sku, s->nproducts, sizeof(*s->by_sku), sku_cmp);
    return e ? (long)e->index : -1;
}

/* Whether `path` still names the file the store opened: SQ_HERE, or why
 * not. One stat(2) and one fstat(2); any thread. */
static enum sq_gone path_moved(const struct sqlite_store *s)
{
    struct stat at, opened;
    if (stat(s->path, &at) == 0 && at.st_dev == s->dev && at.st_ino == s->ino)
        return SQ_HERE;
    bool named = fstat(s->lock_fd, &opened) != 0 || opened.st_nlink > 0;
    if (stat(s->path, &at) == 0)
        return SQ_REPLACED;
    return named ? SQ_MOVED : SQ_DELETED;
}

/* Check the path now and remember the answer. Returns whether the shop
 * is still at its path. */
static bool watch_now(struct sqlite_store *s)
{
    enum sq_gone g = path_moved(s);
    atomic_store_explicit(&s->gone, (int)g, memory_order_release);
    return g == SQ_HERE;
}

/* As watch_now(), at most every STORE_WATCH_MS (the callers in between
 * get the last answer). */
static bool watch(struct sqlite_store *s)
{
    int64_t now = time_now_ns(CLOCK_MONOTONIC) / 1000000;
    int64_t due = atomic_load_explicit(&s->next_watch_ms, memory_order_relaxed);
    if (now >= due && atomic_compare_exchange_strong_explicit(
                          &s->next_watch_ms, &due, now + STORE_WATCH_MS,
                          memory_order_relaxed, memory_order_relaxed))
        return watch_now(s);
    return atomic_load_explicit(&s->gone, memory_order_acquire) == SQ_HERE;
}

static const char *gone_text(enum sq_gone g)
{
    switch (g) {
    case SQ_DELETED:
        return "the database file was deleted";
    case SQ_MOVED:
        return "the database file was moved or renamed away";
    case SQ_REPLACED:
        return "another file took the database file's place";
    case SQ_HERE:
        break;
    }
    return "";
}

static void close_conns(struct sqlite_store *s)
{
    for (int i = 0; i < W_COUNT; i++)
        sqlite3_finalize(s->ws[i]);
    for (int i = 0; i < R_COUNT; i++)
        sqlite3_finalize(s->rs[i]);
    sqlite3_close(s->w);
    sqlite3_close(s->r);
    s->w = s->r = NULL;
}

static void sq_free(struct sqlite_store *s)
{
    if (s == NULL)
        return;
    close_conns(s);
    /* Only now: closing it earlier would drop SQLite's POSIX locks. */
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    if (s->path_lock_fd >= 0)
        close(s->path_lock_fd);
    pthread_mutex_destroy(&s->read_lock);
    free(s->rowid);
    free(s->sku);
    free(s->by_sku);
    free(s->delta);
    free(s->path);
    free(s);
}

/* Open one connection with the pragmas every connection needs. */
static int open_conn(struct sqlite_store *s, const struct store_options *opt,
                     sqlite3 **db, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(s->path, db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX,
                             opt->vfs);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "store sqlite:%s: cannot open: %s", s->path,
                 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        return sq_errno(rc) ? sq_errno(rc) : -EIO;
    }
    sqlite3_extended_result_codes(*db, 1);
    sqlite3_busy_timeout(*db, 5000);
    char sql[256];
    size_t kib = opt->cache_kib ? opt->cache_kib : SQ_DEFAULT_CACHE_KIB;
    snprintf(sql, sizeof(sql),
             "PRAGMA cache_size = -%zu; PRAGMA mmap_size = 0;"
             " PRAGMA synchronous = %s; PRAGMA temp_store = MEMORY;"
             " PRAGMA journal_size_limit = 67108864;",
             kib, opt->sync == STORE_SYNC_NORMAL ? "NORMAL" : "FULL");
    rc = sqlite3_exec(*db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "store sqlite:%s: %s", s->path,
                 sqlite3_errmsg(*db));
        return sq_errno(rc) ? sq_errno(rc) : -EIO;
    }
    return 0;
}

/*
 * Keys written by a shopd that kept a SHA-256 digest as the fingerprint
 * (a 32-byte BLOB) can never match a canonical request: drop them, once
 * per file (the meta row 'fingerprint' marks it done). In the schema's
 * transaction.
 */
static int drop_digest_keys(struct sqlite_store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        s->w, "SELECT 1 FROM meta WHERE key = 'fingerprint'", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return SQLITE_OK;
    if (rc != SQLITE_DONE)
        return rc;
    return sqlite3_exec(s->w,
                        "DELETE FROM idempotency_keys"
                        " WHERE typeof(fingerprint) = 'blob';"
                        "INSERT INTO meta VALUES ('fingerprint', 'canonical');",
                        NULL, NULL, NULL);
}

/* WAL mode and the schema, on the writer. */
static int init_schema(struct sqlite_store *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(s->w, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    const unsigned char *mode =
        rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    bool wal = mode != NULL && strcmp((const char *)mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal) {
        snprintf(err, errlen,
                 "store sqlite:%s: cannot switch to WAL mode: %s (is it a "
                 "SQLite database?)",
                 s->path, sqlite3_errmsg(s->w));
        return -EIO;
    }
    rc = sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->w, schema_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = drop_digest_keys(s);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "store sqlite:%s: cannot create the schema: %s",
                 s->path, sqlite3_errmsg(s->w));
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
        return sq_errno(rc) ? sq_errno(rc) : -EIO;
    }
    /* A file written by a future shopd with another schema is refused. */
    rc = sqlite3_prepare_v2(
        s->w, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st,
        NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    const unsigned char *ver =
        rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    bool ok = ver != NULL && strcmp((const char *)ver, SQ_SCHEMA_VERSION) == 0;
    if (!ok)
        snprintf(err, errlen,
                 "store sqlite:%s: schema version %s, this shopd knows %s",
                 s->path, ver ? (const char *)ver : "(none)",
                 SQ_SCHEMA_VERSION);
    sqlite3_finalize(st);
    return ok ? 0 : -EINVAL;
}

static int prepare_all(struct sqlite_store *s, char *err, size_t errlen)
{
    for (int i = 0; i < W_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->w, writer_sql[i], -1,
                                    SQLITE_PREPARE_PERSISTENT, &s->ws[i], NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "store sqlite:%s: %s", s->path,
                     sqlite3_errmsg(s->w));
            return -EIO;
        }
    }
    for (int i = 0; i < R_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->r, reader_sql[i], -1,
                                    SQLITE_PREPARE_PERSISTENT, &s->rs[i], NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "store sqlite:%s: %s", s->path,
                     sqlite3_errmsg(s->r));
            return -EIO;
        }
    }
    return 0;
}

/* Process-wide SQLite settings, before its first use: no memory
 * statistics (they cost a global mutex per allocation). If something else
 * used SQLite first, the call fails harmlessly and the default stays. */
/*
 * The message for a file that open() refused: when the directory it
 * should be created in does not exist (ENOENT with O_CREAT), name that
 * directory, since "No such file or directory" reads as if the file were
 * expected to exist.
 */
static void open_failed(const char *path, int e, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    if (e == ENOENT && slash != NULL && slash != path) {
        char *dir = strndup(path, (size_t)(slash - path));
        struct stat st;
        if (dir != NULL && stat(dir, &st) != 0 && errno == ENOENT) {
            snprintf(err, errlen,
                     "store sqlite:%s: cannot open: directory %s does not "
                     "exist",
                     path, dir);
            free(dir);
            return;
        }
        free(dir);
    }
    char why[128];
    strerror_r(e, why, sizeof(why));
    snprintf(err, errlen, "store sqlite:%s: cannot open: %s", path, why);
}

static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/*
 * Lock DIR/.NAME.shopd-lock (created if absent, never deleted): one shopd
 * per path, even after the database file itself was deleted or replaced.
 * A directory that does not exist is left for the database's own open to
 * report. Returns 0 or a negative errno with a line in `err`.
 */
static int lock_path(struct sqlite_store *s, char *err, size_t errlen)
{
    const char *slash = strrchr(s->path, '/');
    size_t dirlen = slash ? (size_t)(slash - s->path) + 1 : 0;
    size_t n = strlen(s->path) + 16;
    char *lock = malloc(n);
    if (lock == NULL) {
        snprintf(err, errlen, "store sqlite: out of memory");
        return -ENOMEM;
    }
    snprintf(lock, n, "%.*s.%s.shopd-lock", (int)dirlen, s->path,
             s->path + dirlen);
    int rc = 0;
    char why[128];
    s->path_lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->path_lock_fd < 0) {
        rc = errno == ENOENT ? 0 : -errno;
        strerror_r(errno, why, sizeof(why));
        if (rc)
            snprintf(err, errlen,
                     "store sqlite:%s: cannot open its lock file %s: %s",
                     s->path, lock, why);
    } else if (flock(s->path_lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        strerror_r(errno, why, sizeof(why));
        if (rc == -EBUSY)
            snprintf(err, errlen,
                     "store sqlite:%s: the file is in use by another shopd "
                     "(it holds the lock file %s, even if the database "
                     "file was deleted or replaced); one shopd per file",
                     s->path, lock);
        else
            snprintf(err, errlen, "store sqlite:%s: cannot lock %s: %s",
                     s->path, lock, why);
    }
    free(lock);
    return rc;
}

/* Record the device and inode of the file opened, for path_moved(). */
static int remember_file(struct sqlite_store *s, char *err, size_t errlen)
{
    struct stat opened;
    if (fstat(s->lock_fd, &opened) != 0) {
        int rc = -errno;
        snprintf(err, errlen, "store sqlite:%s: cannot stat the file", s->path);
        return rc;
    }
    s->dev = opened.st_dev;
    s->ino = opened.st_ino;
    return 0;
}

/* Open the database file itself (creating it) and hold its lock: a second
 * shopd on the same file, even by another path to it, is refused. */
static int lock_file(struct sqlite_store *s, char *err, size_t errlen)
{
    s->lock_fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        int rc = -errno;
        open_failed(s->path, errno, err, errlen);
        return rc;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
    char why[128];
    strerror_r(errno, why, sizeof(why));
    if (rc == -EBUSY)
        snprintf(err, errlen,
                 "store sqlite:%s: the file is in use by another shopd "
                 "(it holds the lock); one shopd per file",
                 s->path);
    else
        snprintf(err, errlen, "store sqlite:%s: cannot lock: %s", s->path, why);
    return rc;
}

static int sq_open(const struct store_options *opt, struct store **out,
                   char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
    *out = NULL;
    if (opt->path == NULL || opt->path[0] == '\0') {
        snprintf(err, errlen, "store sqlite: the file name is empty");
        return -EINVAL;
    }
    struct sqlite_store *s = calloc(1, sizeof(*s));
    int rc = -ENOMEM;
    if (s == NULL || (s->path = strdup(opt->path)) == NULL) {
        snprintf(err, errlen, "store sqlite: out of memory");
        free(s);
        return -ENOMEM;
    }
    s->lock_fd = s->path_lock_fd = -1;
    s->sync = opt->sync;
    s->ttl_ns = (int64_t)(opt->idempotency_ttl ? opt->idempotency_ttl : 86400) *
                NS_PER_S;
    atomic_init(&s->available, true);
    atomic_init(&s->transactions, 0);
    atomic_init(&s->failures, 0);
    atomic_init(&s->duplicates, 0);
    atomic_init(&s->gone, SQ_HERE);
    atomic_init(&s->next_watch_ms, 0);
    atomic_init(&s->last_error, SQLITE_OK);
    rc = -pthread_mutex_init(&s->read_lock, NULL);
    if (rc) {
        snprintf(err, errlen, "store sqlite: cannot create a mutex");
        free(s->path);
        free(s);
        return rc;
    }

    rc = lock_path(s, err, errlen);
    if (rc)
        goto fail;
    rc = lock_file(s, err, errlen);
    if (rc)
        goto fail;
    rc = remember_file(s, err, errlen);
    if (rc)
        goto fail;
    rc = open_conn(s, opt, &s->w, err, errlen);
    if (rc)
        goto fail;
    rc = init_schema(s, err, errlen);
    if (rc)
        goto fail;
    rc = open_conn(s, opt, &s->r, err, errlen);
    if (rc)
        goto fail;
    sqlite3_exec(s->r, "PRAGMA query_only = 1", NULL, NULL, NULL);
    rc = prepare_all(s, err, errlen);
    if (rc)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    sq_free(s);
    return rc;
}

static void close_watermark(struct sqlite_store *s);

static void sq_close(struct store *st)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    if (s->w != NULL && s->nproducts > 0)
        close_watermark(s);
    /* A last checkpoint folds the WAL into the file (best effort). */
    if (s->w != NULL)
        sqlite3_wal_checkpoint_v2(s->w, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                  NULL);
    sq_free(s);
}

/* Step a statement that returns no row; reset it. Returns an SQLite code. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Add the catalog products the store lacks; `added[i]` tells which. */
static int seed(struct sqlite_store *s, const struct store_product *catalog,
                size_t n, bool *seeded, bool *added)
{
    sqlite3_stmt *cnt = NULL, *ins = NULL;
    int rc = sqlite3_prepare_v2(s->w, "SELECT count(*) FROM products", -1, &cnt,
                                NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            s->w,
            "INSERT OR IGNORE INTO products (sku, name, price_cents, initial,"
            " stock) VALUES (?, ?, ?, ?, ?)",
            -1, &ins, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto out;
    rc = sqlite3_step(cnt);
    if (rc != SQLITE_ROW)
        goto rollback;
    *seeded = sqlite3_column_int64(cnt, 0) == 0;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(ins, 1, catalog[i].sku, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, catalog[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, catalog[i].price_cents);
        sqlite3_bind_int64(ins, 4, catalog[i].initial);
        sqlite3_bind_int64(ins, 5, catalog[i].initial);
        rc = run(ins);
        if (rc != SQLITE_OK)
            goto rollback;
        added[i] = sqlite3_changes(s->w) == 1 && !*seeded;
    }
    rc = sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        goto out;
rollback:
    sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_finalize(cnt);
    sqlite3_finalize(ins);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Read the products (in row order) into the store and into `out`. */
static int read_products(struct sqlite_store *s,
                         const struct store_product *catalog, size_t n,
                         const bool *added, struct store_state *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->w, "SELECT count(*) FROM products", -1, &st,
                                NULL);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_OK ? SQLITE_ERROR : rc;
    }
    size_t count = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (count == 0 || count > UINT32_MAX)
        return SQLITE_CORRUPT;

    out->products = calloc(count, sizeof(*out->products));
    s->rowid = calloc(count, sizeof(*s->rowid));
    s->sku = calloc(count, sizeof(*s->sku));
    s->by_sku = calloc(count, sizeof(*s->by_sku));
    s->delta = calloc(count, sizeof(*s->delta));
    if (!out->products || !s->rowid || !s->sku || !s->by_sku || !s->delta)
        return SQLITE_NOMEM;
    rc = sqlite3_prepare_v2(s->w,
                            "SELECT id, sku, name, price_cents, initial, stock,"
                            " sold, restocked FROM products ORDER BY id",
                            -1, &st, NULL);
    size_t i = 0;
    while (rc == SQLITE_OK && i < count) {
        int step = sqlite3_step(st);
        if (step != SQLITE_ROW) {
            rc = step == SQLITE_DONE ? SQLITE_CORRUPT : step;
            break;
        }
        struct store_product *p = &out->products[i];
        s->rowid[i] = sqlite3_column_int64(st, 0);
        snprintf(p->sku, sizeof(p->sku), "%s",
                 (const char *)sqlite3_column_text(st, 1));
        snprintf(p->name, sizeof(p->name), "%s",
                 (const char *)sqlite3_column_text(st, 2));
        p->price_cents = sqlite3_column_int64(st, 3);
        p->initial = sqlite3_column_int64(st, 4);
        p->stock = sqlite3_column_int64(st, 5);
        p->sold = sqlite3_column_int64(st, 6);
        p->restocked = sqlite3_column_int64(st, 7);
        memcpy(s->sku[i], p->sku, sizeof(p->sku));
        s->by_sku[i].sku = s->sku[i];
        s->by_sku[i].index = (uint32_t)i;
        i++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return rc;
    s->nproducts = count;
    qsort(s->by_sku, count, sizeof(*s->by_sku), sku_cmp);
    for (size_t k = 0; k < n; k++) {
        long idx = added[k] ? sku_index(s, catalog[k].sku) : -1;
        if (idx >= 0) {
            out->products[idx].added = true;
            out->nadded++;
        }
    }
    out->nproducts = count;
    return SQLITE_OK;
}

/* Fill `o` from a row of (id, sku, quantity, customer, status, accepted_ns,
 * processed_ns, worker). Returns false if its SKU is unknown. */
static bool order_from_row(const struct sqlite_store *s, sqlite3_stmt *st,
                           struct store_order *o)
{
    memset(o, 0, sizeof(*o));
    const unsigned char *sku = sqlite3_column_text(st, 1);
    long idx = sku ? sku_index(s, (const char *)sku) : -1;
    if (idx < 0)
        return false;
    o->id = (uint64_t)sqlite3_column_int64(st, 0);
    o->product = (uint32_t)idx;
    o->quantity = (uint32_t)sqlite3_column_int64(st, 2);
    if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
        o->has_customer = true;
        snprintf(o->customer, sizeof(o->customer), "%s",
                 (const char *)sqlite3_column_text(st, 3));
    }
    o->status = status_parse(sqlite3_column_text(st, 4));
    o->accepted_ns = sqlite3_column_int64(st, 5);
    o->processed_ns = sqlite3_column_int64(st, 6);
    o->worker = sqlite3_column_type(st, 7) == SQLITE_NULL
                    ? -1
                    : (int32_t)sqlite3_column_int(st, 7);
    return true;
}

/*
 * Remember that every order below `id` is final, so the next start scans
 * only from there (orders have no index on status: it would cost every
 * INSERT and UPDATE). Set at load, and at close when nothing is queued.
 */
static int set_watermark(struct sqlite_store *s, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->w,
                                "INSERT OR REPLACE INTO meta"
                                " VALUES ('unfinished_from', ?)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc;
}

/* At close: if no order from this run is left queued, move the watermark
 * to the next id (best effort; a crash leaves the load's watermark). */
static void close_watermark(struct sqlite_store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        s->w,
        "SELECT count(*) FROM orders WHERE status = 'queued' AND id >="
        " (SELECT value FROM meta WHERE key = 'unfinished_from')",
        -1, &st, NULL);
    bool none = rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
                sqlite3_column_int64(st, 0) == 0;
    sqlite3_finalize(st);
    if (none && s->next_id > 0)
        set_watermark(s, (int64_t)s->next_id);
}

static int read_orders(struct sqlite_store *s, struct store_state *out)
{
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(s->w, "SELECT max(id) FROM orders", -1, &st, NULL);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_OK ? SQLITE_ERROR : rc;
    }
    s->next_id = (uint64_t)sqlite3_column_int64(st, 0) + 1;
    out->next_id = s->next_id;
    sqlite3_finalize(st);

    /* Orders below the watermark are all final: scan from it only. */
    int64_t from = 1;
    rc = sqlite3_prepare_v2(s->w,
                            "SELECT value FROM meta"
                            " WHERE key = 'unfinished_from'",
                            -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        from = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    rc = sqlite3_prepare_v2(s->w,
                            "SELECT count(*) FROM orders"
                            " WHERE id >= ? AND status = 'queued'",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        sqlite3_bind_int64(st, 1, from);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_OK ? SQLITE_ERROR : rc;
    }
    size_t count = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (count == 0)
        return set_watermark(s, (int64_t)s->next_id);
    out->unfinished = calloc(count, sizeof(*out->unfinished));
    if (out->unfinished == NULL)
        return SQLITE_NOMEM;
    rc = sqlite3_prepare_v2(s->w,
                            "SELECT id, sku, quantity, customer, status,"
                            " accepted_ns, processed_ns, worker FROM orders"
                            " WHERE id >= ? AND status = 'queued'"
                            " ORDER BY id",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        sqlite3_bind_int64(st, 1, from);
    size_t i = 0;
    while (rc == SQLITE_OK && i < count) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE)
            break;
        if (step != SQLITE_ROW) {
            rc = step;
            break;
        }
        if (!order_from_row(s, st, &out->unfinished[i]))
            rc = SQLITE_CORRUPT;
        i++;
    }
    out->nunfinished = i;
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && i > 0)
        rc = set_watermark(s, (int64_t)out->unfinished[0].id);
    return rc;
}

static int sq_load(struct store *st, const struct store_product *catalog,
                   size_t n, struct store_state *out, char *err, size_t errlen)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    bool *added = calloc(n, sizeof(*added));
    if (added == NULL) {
        snprintf(err, errlen, "store sqlite: out of memory");
        return -ENOMEM;
    }
    bool seeded = false;
    int rc = seed(s, catalog, n, &seeded, added);
    out->seeded = seeded;
    if (rc == SQLITE_OK)
        rc = read_products(s, catalog, n, added, out);
    if (rc == SQLITE_OK)
        rc = read_orders(s, out);
    free(added);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "store sqlite:%s: cannot load the shop: %s",
                 s->path,
                 rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(s->w));
        store_state_free(out);
        return sq_errno(rc) ? sq_errno(rc) : -EIO;
    }
    return 0;
}

/* The numbers of a restock row's body into `out`: "<stock> <sold>
 * <restocked>", or (a row written by a build before) the JSON answer that
 * showed the product. */
static void read_numbers(const char *body, bool old, struct store_answer *out)
{
    if (!old) {
        if (sscanf(body, "%" SCNd64 " %" SCNd64 " %" SCNd64, &out->stock,
                   &out->sold, &out->restocked) != 3)
            out->stock = out->sold = out->restocked = 0;
        return;
    }
    cJSON *j = cJSON_Parse(body);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stock");
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "sold");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(j, "restocked");
    if (cJSON_IsNumber(st) && cJSON_IsNumber(so) && cJSON_IsNumber(re)) {
        out->stock = (int64_t)st->valuedouble;
        out->sold = (int64_t)so->valuedouble;
        out->restocked = (int64_t)re->valuedouble;
    }
    cJSON_Delete(j);
}

/* A row of R_KEY (fingerprint, status, body, order_id) into `out`: its
 * outcome, from a row of either form (see the schema above). */
static void read_answer(sqlite3_stmt *q, struct store_answer *out)
{
    memset(out, 0, sizeof(*out));
    const void *fp = sqlite3_column_blob(q, 0);
    int n = sqlite3_column_bytes(q, 0);
    if (fp != NULL && n > 0 && n <= STORE_FINGERPRINT_MAX) {
        memcpy(out->fingerprint, fp, (size_t)n);
        out->fingerprint_len = (size_t)n;
    }
    bool old = sqlite3_column_int(q, 1) != 0;
    out->order_id = (uint64_t)sqlite3_column_int64(q, 3);
    const unsigned char *body = sqlite3_column_text(q, 2);
    if (out->order_id == 0 && body != NULL)
        read_numbers((const char *)body, old, out);
}

/* Store the key of an accept (order `id`) or restock (`r`, its numbers
 * after it); `existing` gets the stored record when the key is taken.
 * Returns an SQLite code; `*taken` tells. */
static int put_key(struct sqlite_store *s, const struct store_idem *k,
                   uint64_t id, const struct store_restock *r, int64_t now,
                   bool *taken, struct store_answer *existing)
{
    char body[80] = "";
    if (r != NULL)
        snprintf(body, sizeof(body), "%" PRId64 " %" PRId64 " %" PRId64,
                 r->stock, r->sold, r->restocked);
    sqlite3_stmt *st = s->ws[W_INSERT_KEY];
    sqlite3_bind_text(st, 1, k->endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->key, (int)k->key_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, k->fingerprint, (int)k->fingerprint_len,
                      SQLITE_STATIC);
    sqlite3_bind_int(st, 4, 0); /* a record of this form (see the schema) */
    sqlite3_bind_text(st, 5, body, -1, SQLITE_TRANSIENT);
    if (id)
        sqlite3_bind_int64(st, 6, (int64_t)id);
    sqlite3_bind_int64(st, 7, now);
    sqlite3_bind_int64(st, 8, now - s->ttl_ns);
    int rc = run(st);
    if (rc != SQLITE_OK)
        return rc;
    *taken = sqlite3_changes(s->w) == 0;
    if (*taken && existing != NULL) {
        /* Read it through the writer: it may be part of this very batch. */
        sqlite3_stmt *q = NULL;
        rc = sqlite3_prepare_v2(s->w, reader_sql[R_KEY], -1, &q, NULL);
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_bind_text(q, 1, k->endpoint, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, k->key, (int)k->key_len, SQLITE_STATIC);
        memset(existing, 0, sizeof(*existing));
        if (sqlite3_step(q) == SQLITE_ROW) {
            read_answer(q, existing);
        }
        sqlite3_finalize(q);
    }
    return SQLITE_OK;
}

/* Whether key `k` is kept and unexpired (through the writer: it may be
 * part of this very batch). SQLITE_ROW and `existing` (may be NULL)
 * filled if so, SQLITE_DONE if not, else an error. */
static int key_kept(struct sqlite_store *s, const struct store_idem *k,
                    int64_t now, struct store_answer *existing)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->w, reader_sql[R_KEY], -1, &q, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(q, 1, k->endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, k->key, (int)k->key_len, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_int64(q, 4) <= now - s->ttl_ns)
        rc = SQLITE_DONE; /* expired: free again */
    if (rc == SQLITE_ROW && existing != NULL) {
        read_answer(q, existing);
    }
    sqlite3_finalize(q);
    return rc;
}

static int commit_accepts(struct sqlite_store *s, struct store_batch *b,
                          int64_t now)
{
    sqlite3_stmt *ins = s->ws[W_INSERT_ORDER];
    for (size_t i = 0; i < b->naccepts; i++) {
        struct store_accept *a = &b->accepts[i];
        struct store_order *o = &a->order;
        if (o->product >= s->nproducts || o->quantity == 0)
            return SQLITE_MISUSE;
        uint64_t id = s->next_id;
        if (a->idem != NULL) {
            bool taken = false;
            int rc = put_key(s, a->idem, id, NULL, now, &taken, a->existing);
            if (rc != SQLITE_OK)
                return rc;
            if (taken) {
                a->result = STORE_KEY_EXISTS;
                continue;
            }
        }
        sqlite3_bind_int64(ins, 1, (int64_t)id);
        sqlite3_bind_text(ins, 2, s->sku[o->product], -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, o->quantity);
        if (o->has_customer)
            sqlite3_bind_text(ins, 4, o->customer, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, o->accepted_ns);
        int rc = run(ins);
        if (rc != SQLITE_OK)
            return rc;
        s->next_id++;
        o->id = id;
        o->status = STORE_QUEUED;
        a->result = STORE_ACCEPTED;
    }
    return SQLITE_OK;
}

static int commit_results(struct sqlite_store *s, struct store_batch *b,
                          uint64_t *dups)
{
    sqlite3_stmt *fin = s->ws[W_FINISH_ORDER];
    bool any = false;
    for (size_t i = 0; i < b->nresults; i++) {
        struct store_result *r = &b->results[i];
        /* This backend records what the shop decided. */
        if (r->product >= s->nproducts || r->status == STORE_QUEUED)
            return SQLITE_MISUSE;
        sqlite3_bind_text(fin, 1, status_text(r->status), -1, SQLITE_STATIC);
        sqlite3_bind_int64(fin, 2, r->processed_ns);
        sqlite3_bind_int(fin, 3, r->worker);
        sqlite3_bind_int64(fin, 4, (int64_t)r->id);
        int rc = run(fin);
        if (rc != SQLITE_OK)
            return rc;
        r->applied = sqlite3_changes(s->w) == 1;
        if (!r->applied)
            (*dups)++;
        else if (r->status == STORE_FULFILLED) {
            s->delta[r->product] += r->quantity;
            any = true;
        }
    }
    if (!any)
        return SQLITE_OK;
    sqlite3_stmt *take = s->ws[W_TAKE_STOCK];
    int rc = SQLITE_OK;
    for (size_t p = 0; p < s->nproducts; p++) {
        if (s->delta[p] == 0)
            continue;
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(take, 1, s->delta[p]);
            sqlite3_bind_int64(take, 2, s->rowid[p]);
            rc = run(take);
        }
        s->delta[p] = 0;
    }
    return rc;
}

static int commit_restocks(struct sqlite_store *s, struct store_batch *b,
                           int64_t now)
{
    for (size_t i = 0; i < b->nrestocks; i++) {
        struct store_restock *r = &b->restocks[i];
        if (r->product >= s->nproducts || r->quantity <= 0)
            return SQLITE_MISUSE;
        r->result = STORE_ACCEPTED;
        /* A key already kept answers instead of a second restock. Its
         * answer holds the numbers after the restock, so the key is stored
         * after the update (it is known to be free then). */
        if (r->idem != NULL) {
            int rc = key_kept(s, r->idem, now, r->existing);
            if (rc == SQLITE_ROW) {
                r->result = STORE_KEY_EXISTS;
                continue;
            }
            if (rc != SQLITE_DONE)
                return rc;
        }
        sqlite3_stmt *st = s->ws[W_RESTOCK];
        sqlite3_bind_int64(st, 1, r->quantity);
        sqlite3_bind_int64(st, 2, s->rowid[r->product]);
        int rc = run(st);
        if (rc != SQLITE_OK)
            return rc;
        st = s->ws[W_READ_PRODUCT];
        sqlite3_bind_int64(st, 1, s->rowid[r->product]);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            r->stock = sqlite3_column_int64(st, 0);
            r->sold = sqlite3_column_int64(st, 1);
            r->restocked = sqlite3_column_int64(st, 2);
            rc = SQLITE_OK;
        }
        sqlite3_reset(st);
        if (rc != SQLITE_OK)
            return rc;
        if (r->idem != NULL) {
            bool taken = false;
            rc = put_key(s, r->idem, 0, r, now, &taken, NULL);
            if (rc != SQLITE_OK)
                return rc;
        }
    }
    return SQLITE_OK;
}

static int sq_commit(struct store *st, struct store_batch *b)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    uint64_t first_id = s->next_id, dups = 0;
    int64_t now = now_ns();
    int rc = run(s->ws[W_BEGIN]);
    if (rc == SQLITE_OK)
        rc = commit_accepts(s, b, now);
    if (rc == SQLITE_OK)
        rc = commit_results(s, b, &dups);
    if (rc == SQLITE_OK)
        rc = commit_restocks(s, b, now);
    if (rc == SQLITE_OK && b->naccepts + b->nresults + b->nrestocks == 0) {
        /* A probe: a real write, so a full or failing disk shows. */
        sqlite3_bind_int64(s->ws[W_PROBE], 1, now);
        rc = run(s->ws[W_PROBE]);
    }
    /* Last, as close to the COMMIT as can be: is the file still the shop
     * at its path? (Never after it: see the design note.) */
    bool here = true;
    if (rc == SQLITE_OK && !(here = watch_now(s)))
        rc = SQLITE_IOERR;
    if (rc == SQLITE_OK)
        rc = run(s->ws[W_COMMIT]);
    atomic_fetch_add_explicit(&s->transactions, 1, memory_order_relaxed);
    if (rc == SQLITE_OK) {
        atomic_fetch_add_explicit(&s->duplicates, dups, memory_order_relaxed);
        atomic_store_explicit(&s->available, true, memory_order_release);
        return 0;
    }
    if (here)
        atomic_store_explicit(&s->last_error, rc, memory_order_relaxed);
    /* All or nothing: undo, and give the ids back. */
    if (!sqlite3_get_autocommit(s->w))
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
    for (size_t p = 0; p < s->nproducts; p++)
        s->delta[p] = 0;
    s->next_id = first_id;
    atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
    int e = sq_errno(rc);
    if (e == -EINVAL)
        return e; /* the caller's mistake, not the disk's */
    atomic_store_explicit(&s->available, false, memory_order_release);
    return e == -ENOMEM ? e : -EIO;
}

static int sq_order_get(struct store *st, uint64_t id, struct store_order *out)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    if (id > INT64_MAX)
        return -ENOENT;
    pthread_mutex_lock(&s->read_lock);
    sqlite3_stmt *q = s->rs[R_ORDER];
    sqlite3_bind_int64(q, 1, (int64_t)id);
    int rc = sqlite3_step(q);
    int ret;
    if (rc == SQLITE_ROW)
        ret = order_from_row(s, q, out) ? 0 : -EIO;
    else if (rc == SQLITE_DONE)
        ret = -ENOENT;
    else
        ret = -EIO;
    sqlite3_reset(q);
    pthread_mutex_unlock(&s->read_lock);
    return ret;
}

static int sq_idem_get(struct store *st, const char *endpoint, const char *key,
                       size_t key_len, struct store_answer *out)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    int64_t oldest = now_ns() - s->ttl_ns;
    pthread_mutex_lock(&s->read_lock);
    sqlite3_stmt *q = s->rs[R_KEY];
    sqlite3_bind_text(q, 1, endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, (int)key_len, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    int ret = -ENOENT;
    if (rc == SQLITE_ROW && sqlite3_column_int64(q, 4) > oldest) {
        read_answer(q, out);
        ret = 0;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = -EIO;
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    pthread_mutex_unlock(&s->read_lock);
    return ret;
}

static bool sq_available(struct store *st)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    bool here = watch(s);
    return here && atomic_load_explicit(&s->available, memory_order_acquire);
}

static void sq_stats(struct store *st, struct store_stats *out)
{
    struct sqlite_store *s = (struct sqlite_store *)st;
    out->available = sq_available(st);
    enum sq_gone g = atomic_load_explicit(&s->gone, memory_order_acquire);
    out->vanished = g != SQ_HERE;
    if (out->vanished)
        snprintf(out->reason, sizeof(out->reason), "%s", gone_text(g));
    else if (!out->available)
        snprintf(out->reason, sizeof(out->reason), "%s",
                 sqlite3_errstr(atomic_load_explicit(&s->last_error,
                                                     memory_order_relaxed)));
    out->round_trips =
        atomic_load_explicit(&s->transactions, memory_order_relaxed);
    out->failures = atomic_load_explicit(&s->failures, memory_order_relaxed);
    out->duplicates =
        atomic_load_explicit(&s->duplicates, memory_order_relaxed);
    snprintf(out->describe, sizeof(out->describe), "sqlite:%s sync=%s", s->path,
             s->sync == STORE_SYNC_NORMAL ? "normal" : "full");
}

const struct store_backend store_sqlite_backend = {
    .kind = STORE_SQLITE,
    .caps = STORE_CAP_DURABLE,
    .open = sq_open,
    .close = sq_close,
    .load = sq_load,
    .commit = sq_commit,
    .order_get = sq_order_get,
    .idem_get = sq_idem_get,
    .take = NULL,
    .available = sq_available,
    .stats = sq_stats,
};
