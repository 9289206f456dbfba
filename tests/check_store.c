/*
 * check_store.c - Check suite of the store module (the SQLite backend on a
 * real temporary file) and of a shop over it.
 *
 * Failures are real: a test VFS wraps SQLite's default one and fails every
 * write and sync while `fail_writes` is set, the way SQLite's own test
 * suite injects I/O errors. Nothing is mocked: the file, the WAL and the
 * locks are SQLite's own.
 */
#include "store/store.h"
#include "common/time.h"

#include <check.h>

#include "tests/suites.h"
#include <errno.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shop/shop.h"

/* ---- a VFS that fails writes on demand ---------------------------------- */

static _Atomic bool fail_writes;
static sqlite3_vfs faulty_vfs;
static sqlite3_vfs *real_vfs;

struct faulty_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
};

#define REAL(f) (((struct faulty_file *)(f))->real)

static int ff_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int ff_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int ff_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    if (atomic_load(&fail_writes))
        return SQLITE_IOERR_WRITE;
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (atomic_load(&fail_writes))
        return SQLITE_IOERR_TRUNCATE;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int ff_sync(sqlite3_file *f, int flags)
{
    if (atomic_load(&fail_writes))
        return SQLITE_IOERR_FSYNC;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int ff_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int ff_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int ff_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int ff_check(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int ff_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int ff_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int ff_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int ff_shmmap(sqlite3_file *f, int pg, int sz, int ext,
                     void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int ff_shmlock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void ff_shmbarrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int ff_shmunmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static const sqlite3_io_methods faulty_io = {
    .iVersion = 2,
    .xClose = ff_close,
    .xRead = ff_read,
    .xWrite = ff_write,
    .xTruncate = ff_truncate,
    .xSync = ff_sync,
    .xFileSize = ff_size,
    .xLock = ff_lock,
    .xUnlock = ff_unlock,
    .xCheckReservedLock = ff_check,
    .xFileControl = ff_fcntl,
    .xSectorSize = ff_sector,
    .xDeviceCharacteristics = ff_devchar,
    .xShmMap = ff_shmmap,
    .xShmLock = ff_shmlock,
    .xShmBarrier = ff_shmbarrier,
    .xShmUnmap = ff_shmunmap,
};

static int ff_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
                   int flags, int *out_flags)
{
    (void)vfs;
    struct faulty_file *ff = (struct faulty_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
    f->pMethods = ff->real->pMethods != NULL ? &faulty_io : NULL;
    return rc;
}

static void faulty_register(void)
{
    if (real_vfs != NULL)
        return;
    real_vfs = sqlite3_vfs_find(NULL);
    faulty_vfs = *real_vfs;
    faulty_vfs.zName = "shopd-faulty";
    faulty_vfs.szOsFile = (int)sizeof(struct faulty_file) + real_vfs->szOsFile;
    faulty_vfs.xOpen = ff_open;
    faulty_vfs.pNext = NULL;
    sqlite3_vfs_register(&faulty_vfs, 0);
}

/* ---- fixtures ---------------------------------------------------------- */

static char dir[64];
static char path[128];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/shopd-store-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/shop.db", dir);
    atomic_store(&fail_writes, false);
}

static void teardown(void)
{
    char p[160];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
    snprintf(p, sizeof(p), "%s/.shop.db.shopd-lock", dir);
    unlink(p);
    rmdir(dir);
}

static const struct store_product catalog[] = {
    {.sku = "apple",
     .name = "Apple",
     .price_cents = 50,
     .initial = 100,
     .stock = 100},
    {.sku = "banana",
     .name = "Banana",
     .price_cents = 25,
     .initial = 5,
     .stock = 5},
};
#define NCAT (sizeof(catalog) / sizeof(catalog[0]))

static struct store *open_sqlite(const char *vfs)
{
    struct store_options o = {
        .kind = STORE_SQLITE,
        .path = path,
        .sync = STORE_SYNC_NORMAL,
        .vfs = vfs,
    };
    struct store *st = NULL;
    char err[256] = "";
    int rc = store_open(&o, &st, err, sizeof(err));
    ck_assert_msg(rc == 0, "store_open: %d %s", rc, err);
    return st;
}

static struct store *open_loaded(const struct store_product *cat, size_t n,
                                 struct store_state *state)
{
    struct store *st = open_sqlite(NULL);
    char err[256] = "";
    int rc = store_load(st, cat, n, state, err, sizeof(err));
    ck_assert_msg(rc == 0, "store_load: %d %s", rc, err);
    return st;
}

static struct store_accept accept_of(uint32_t product, uint32_t qty,
                                     const char *customer)
{
    struct store_accept a;
    memset(&a, 0, sizeof(a));
    a.order.product = product;
    a.order.quantity = qty;
    a.order.accepted_ns = 1000;
    if (customer != NULL) {
        a.order.has_customer = true;
        snprintf(a.order.customer, sizeof(a.order.customer), "%s", customer);
    }
    return a;
}

static struct store_result result_of(uint64_t id, uint32_t product,
                                     uint32_t qty, enum store_status st)
{
    struct store_result r = {
        .id = id,
        .product = product,
        .quantity = qty,
        .status = st,
        .worker = 1,
        .processed_ns = 2000,
    };
    return r;
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(test_store_sqlite_seeds_and_numbers_orders)
{
    struct store_state s;
    struct store *st = open_loaded(catalog, NCAT, &s);
    ck_assert(s.seeded);
    ck_assert_uint_eq(s.nproducts, 2);
    ck_assert_uint_eq(s.nadded, 0);
    ck_assert_uint_eq(s.next_id, 1);
    ck_assert_int_eq(s.products[0].stock, 100);
    ck_assert_uint_eq(s.nunfinished, 0);
    store_state_free(&s);

    struct store_accept a[3] = {accept_of(0, 2, "ann"), accept_of(1, 1, NULL),
                                accept_of(0, 3, NULL)};
    struct store_batch b = {.accepts = a, .naccepts = 3};
    ck_assert_int_eq(store_commit(st, &b), 0);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(a[i].result, STORE_ACCEPTED);
        ck_assert_uint_eq(a[i].order.id, i + 1);
    }
    struct store_order o;
    ck_assert_int_eq(store_order_get(st, 1, &o), 0);
    ck_assert_uint_eq(o.product, 0);
    ck_assert_uint_eq(o.quantity, 2);
    ck_assert(o.has_customer);
    ck_assert_str_eq(o.customer, "ann");
    ck_assert_int_eq(o.status, STORE_QUEUED);
    ck_assert_int_eq(o.worker, -1);
    ck_assert_int_eq(store_order_get(st, 4, &o), -ENOENT);
    ck_assert(store_available(st));
    store_close(st);
}
END_TEST

START_TEST(test_store_sqlite_results_apply_once_and_reload)
{
    struct store_state s;
    struct store *st = open_loaded(catalog, NCAT, &s);
    store_state_free(&s);
    struct store_accept a[3] = {accept_of(0, 10, NULL), accept_of(1, 9, NULL),
                                accept_of(0, 1, NULL)};
    struct store_batch b = {.accepts = a, .naccepts = 3};
    ck_assert_int_eq(store_commit(st, &b), 0);

    /* Order 1 fulfilled, order 2 out of stock; order 3 stays queued. */
    struct store_result r[2] = {result_of(1, 0, 10, STORE_FULFILLED),
                                result_of(2, 1, 9, STORE_OUT_OF_STOCK)};
    struct store_batch rb = {.results = r, .nresults = 2};
    ck_assert_int_eq(store_commit(st, &rb), 0);
    ck_assert(r[0].applied && r[1].applied);

    /* A second delivery of the same result changes nothing. */
    struct store_result again = result_of(1, 0, 10, STORE_FULFILLED);
    struct store_batch ab = {.results = &again, .nresults = 1};
    ck_assert_int_eq(store_commit(st, &ab), 0);
    ck_assert(!again.applied);
    struct store_stats stats;
    store_stats(st, &stats);
    ck_assert_uint_eq(stats.duplicates, 1);

    struct store_order o;
    ck_assert_int_eq(store_order_get(st, 1, &o), 0);
    ck_assert_int_eq(o.status, STORE_FULFILLED);
    ck_assert_int_eq(o.worker, 1);
    ck_assert_int_eq(o.processed_ns, 2000);
    store_close(st);

    /* Reload: stock and sold carry on, ids continue, order 3 is back. */
    st = open_loaded(catalog, NCAT, &s);
    ck_assert(!s.seeded);
    ck_assert_int_eq(s.products[0].stock, 90);
    ck_assert_int_eq(s.products[0].sold, 10);
    ck_assert_int_eq(s.products[1].stock, 5);
    ck_assert_int_eq(s.products[1].sold, 0);
    ck_assert_uint_eq(s.next_id, 4);
    ck_assert_uint_eq(s.nunfinished, 1);
    ck_assert_uint_eq(s.unfinished[0].id, 3);
    ck_assert_uint_eq(s.unfinished[0].quantity, 1);
    store_state_free(&s);
    struct store_accept more = accept_of(1, 1, NULL);
    struct store_batch mb = {.accepts = &more, .naccepts = 1};
    ck_assert_int_eq(store_commit(st, &mb), 0);
    ck_assert_uint_eq(more.order.id, 4);
    store_close(st);
}
END_TEST

START_TEST(test_store_sqlite_second_open_is_refused)
{
    struct store *st = open_sqlite(NULL);
    struct store_options o = {.kind = STORE_SQLITE, .path = path};
    struct store *second = NULL;
    char err[256] = "";
    ck_assert_int_eq(store_open(&o, &second, err, sizeof(err)), -EBUSY);
    ck_assert_ptr_null(second);
    ck_assert_msg(strstr(err, "in use by another shopd") != NULL, "%s", err);
    ck_assert_msg(strstr(err, path) != NULL, "%s", err);
    store_close(st);
    /* Once closed, the file can be opened again. */
    st = open_sqlite(NULL);
    store_close(st);
}
END_TEST

/* SPEC §7: a file deleted, moved or replaced under the store is never
 * written as if it were the shop, nor re-created; the same file back at
 * its path is the shop again. */
START_TEST(test_store_sqlite_vanished_file_refuses_writes_until_back)
{
    struct store_state s;
    struct store *st = open_loaded(catalog, NCAT, &s);
    store_state_free(&s);
    struct store_accept a = accept_of(0, 1, NULL);
    struct store_batch b = {.accepts = &a, .naccepts = 1};
    ck_assert_int_eq(store_commit(st, &b), 0);
    ck_assert_uint_eq(a.order.id, 1);

    char away[160];
    snprintf(away, sizeof(away), "%s.away", path);
    ck_assert_int_eq(rename(path, away), 0);
    a = accept_of(0, 1, NULL);
    ck_assert_int_eq(store_commit(st, &b), -EIO);
    ck_assert(!store_available(st));
    struct store_stats ss;
    store_stats(st, &ss);
    ck_assert(ss.vanished);
    ck_assert_msg(strstr(ss.reason, "moved") != NULL, "%s", ss.reason);

    /* Nobody else may start a shop at the path meanwhile. */
    struct store_options o = {.kind = STORE_SQLITE, .path = path};
    struct store *second = NULL;
    char err[256] = "";
    ck_assert_int_eq(store_open(&o, &second, err, sizeof(err)), -EBUSY);
    ck_assert_msg(strstr(err, "in use by another shopd") != NULL, "%s", err);
    ck_assert_int_ne(access(path, F_OK), 0);

    /* Back: it serves again; the refused accept's id was not used. */
    ck_assert_int_eq(rename(away, path), 0);
    struct store_batch probe = {0};
    ck_assert_int_eq(store_commit(st, &probe), 0);
    ck_assert(store_available(st));
    store_stats(st, &ss);
    ck_assert(!ss.vanished);
    ck_assert_int_eq(store_commit(st, &b), 0);
    ck_assert_uint_eq(a.order.id, 2);

    /* Deleted: said so, and nothing is written. */
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(store_commit(st, &probe), -EIO);
    store_stats(st, &ss);
    ck_assert(ss.vanished && !ss.available);
    ck_assert_msg(strstr(ss.reason, "deleted") != NULL, "%s", ss.reason);
    store_close(st);
}
END_TEST

START_TEST(test_store_sqlite_adds_unknown_catalog_products)
{
    struct store_state s;
    struct store *st = open_loaded(catalog, NCAT, &s);
    store_state_free(&s);
    store_close(st);

    /* A catalog with other stock for apple and a new product. */
    struct store_product cat2[3] = {catalog[0], catalog[1]};
    cat2[0].initial = cat2[0].stock = 7;
    snprintf(cat2[2].sku, sizeof(cat2[2].sku), "cherry");
    snprintf(cat2[2].name, sizeof(cat2[2].name), "Cherry");
    cat2[2].initial = cat2[2].stock = 30;
    st = open_loaded(cat2, 3, &s);
    ck_assert(!s.seeded);
    ck_assert_uint_eq(s.nproducts, 3);
    ck_assert_uint_eq(s.nadded, 1);
    ck_assert(!s.products[0].added);
    ck_assert_int_eq(s.products[0].stock, 100); /* the store's, kept */
    ck_assert(s.products[2].added);
    ck_assert_str_eq(s.products[2].sku, "cherry");
    ck_assert_int_eq(s.products[2].stock, 30);
    store_state_free(&s);
    store_close(st);
}
END_TEST

START_TEST(test_store_sqlite_failed_commit_keeps_nothing_and_recovers)
{
    faulty_register();
    struct store *st = open_sqlite("shopd-faulty");
    struct store_state s;
    char err[256];
    ck_assert_int_eq(store_load(st, catalog, NCAT, &s, err, sizeof(err)), 0);
    store_state_free(&s);

    struct store_accept a = accept_of(0, 1, NULL);
    struct store_batch b = {.accepts = &a, .naccepts = 1};
    ck_assert_int_eq(store_commit(st, &b), 0);
    ck_assert_uint_eq(a.order.id, 1);

    atomic_store(&fail_writes, true);
    struct store_accept lost[2] = {accept_of(0, 1, NULL),
                                   accept_of(1, 1, NULL)};
    struct store_result r = result_of(1, 0, 1, STORE_FULFILLED);
    struct store_batch fb = {
        .accepts = lost, .naccepts = 2, .results = &r, .nresults = 1};
    ck_assert_int_eq(store_commit(st, &fb), -EIO);
    ck_assert(!store_available(st));
    struct store_batch probe = {0};
    ck_assert_int_eq(store_commit(st, &probe), -EIO);
    /* Reads keep working while writes fail. */
    struct store_order o;
    ck_assert_int_eq(store_order_get(st, 1, &o), 0);
    ck_assert_int_eq(o.status, STORE_QUEUED);
    ck_assert_int_eq(store_order_get(st, 2, &o), -ENOENT);

    atomic_store(&fail_writes, false);
    ck_assert_int_eq(store_commit(st, &probe), 0);
    ck_assert(store_available(st));
    /* The failed batch kept nothing: its ids are given again. */
    struct store_accept next = accept_of(1, 1, NULL);
    struct store_batch nb = {
        .accepts = &next, .naccepts = 1, .results = &r, .nresults = 1};
    ck_assert_int_eq(store_commit(st, &nb), 0);
    ck_assert_uint_eq(next.order.id, 2);
    ck_assert(r.applied);
    store_close(st);

    st = open_loaded(catalog, NCAT, &s);
    ck_assert_int_eq(s.products[0].stock, 99);
    ck_assert_int_eq(s.products[0].sold, 1);
    ck_assert_uint_eq(s.next_id, 3);
    store_state_free(&s);
    store_close(st);
}
END_TEST

START_TEST(test_store_sqlite_idempotency_key_commits_with_its_order)
{
    struct store_state s;
    struct store *st = open_loaded(catalog, NCAT, &s);
    store_state_free(&s);
    struct store_idem k = {
        .endpoint = "buy",
        .key = "key-1",
        .key_len = 5,
        /* The canonical request; any byte is kept as is. */
        .fingerprint = "apple|1|\"a\x01|\"",
        .fingerprint_len = 13,
    };
    struct store_answer existing;
    struct store_accept a = accept_of(0, 1, NULL);
    a.idem = &k;
    a.existing = &existing;
    struct store_batch b = {.accepts = &a, .naccepts = 1};
    ck_assert_int_eq(store_commit(st, &b), 0);
    ck_assert_int_eq(a.result, STORE_ACCEPTED);
    ck_assert_uint_eq(a.order.id, 1);

    struct store_answer ans;
    ck_assert_int_eq(store_idem_get(st, "buy", "key-1", 5, &ans), 0);
    ck_assert_uint_eq(ans.order_id, 1);
    ck_assert_uint_eq(ans.fingerprint_len, 13);
    ck_assert_mem_eq(ans.fingerprint, "apple|1|\"a\x01|\"", 13);
    ck_assert_int_eq(store_idem_get(st, "restock", "key-1", 5, &ans), -ENOENT);

    /* The same key again: no order, the first outcome. */
    struct store_accept again = accept_of(0, 1, NULL);
    again.idem = &k;
    again.existing = &existing;
    struct store_batch b2 = {.accepts = &again, .naccepts = 1};
    ck_assert_int_eq(store_commit(st, &b2), 0);
    ck_assert_int_eq(again.result, STORE_KEY_EXISTS);
    ck_assert_uint_eq(existing.order_id, 1);
    ck_assert_mem_eq(existing.fingerprint, ans.fingerprint, 13);
    struct store_order o;
    ck_assert_int_eq(store_order_get(st, 2, &o), -ENOENT);
    store_close(st);
}
END_TEST

START_TEST(test_store_sqlite_drops_digest_keys_of_an_older_file_once)
{
    /* A file written by a shopd that kept SHA-256 digests (32-byte BLOBs)
     * as fingerprints: those keys can never match, and are dropped when
     * the file is first opened; canonical ones are kept. */
    struct store_state s;
    struct store *st = open_loaded(catalog, NCAT, &s);
    store_state_free(&s);
    struct store_idem k = {
        .endpoint = "buy",
        .key = "new",
        .key_len = 3,
        .fingerprint = "apple|1|null",
        .fingerprint_len = 12,
    };
    struct store_accept a = accept_of(0, 1, NULL);
    a.idem = &k;
    struct store_batch b = {.accepts = &a, .naccepts = 1};
    ck_assert_int_eq(store_commit(st, &b), 0);
    store_close(st);

    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    const char *old_file =
        "INSERT INTO idempotency_keys SELECT endpoint, 'old', zeroblob(32),"
        " status, body, order_id, created_ns FROM idempotency_keys;"
        "DELETE FROM meta WHERE key = 'fingerprint';";
    ck_assert_int_eq(sqlite3_exec(db, old_file, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    st = open_sqlite(NULL);
    struct store_answer ans;
    ck_assert_int_eq(store_idem_get(st, "buy", "old", 3, &ans), -ENOENT);
    ck_assert_int_eq(store_idem_get(st, "buy", "new", 3, &ans), 0);
    ck_assert_uint_eq(ans.fingerprint_len, 12);
    ck_assert_mem_eq(ans.fingerprint, "apple|1|null", 12);
    store_close(st);
}
END_TEST

START_TEST(test_store_sqlite_restock_key_remembers_the_numbers)
{
    struct store_state s;
    struct store *st = open_loaded(catalog, NCAT, &s);
    store_state_free(&s);
    struct store_idem k = {
        .endpoint = "restock",
        .key = "r-1",
        .key_len = 3,
        .fingerprint = "pear|4",
        .fingerprint_len = 6,
    };
    struct store_answer existing;
    struct store_restock r = {
        .product = 1, .quantity = 4, .idem = &k, .existing = &existing};
    struct store_batch b = {.restocks = &r, .nrestocks = 1};
    ck_assert_int_eq(store_commit(st, &b), 0);
    ck_assert_int_eq(r.result, STORE_ACCEPTED);
    ck_assert_int_eq(r.stock, 9);
    ck_assert_int_eq(r.restocked, 4);
    struct store_answer ans;
    ck_assert_int_eq(store_idem_get(st, "restock", "r-1", 3, &ans), 0);
    ck_assert_uint_eq(ans.order_id, 0);
    ck_assert_int_eq(ans.stock, 9);
    ck_assert_int_eq(ans.sold, 0);
    ck_assert_int_eq(ans.restocked, 4);

    /* The same key again: no second restock, the kept numbers. */
    struct store_restock again = {
        .product = 1, .quantity = 4, .idem = &k, .existing = &existing};
    struct store_batch b2 = {.restocks = &again, .nrestocks = 1};
    ck_assert_int_eq(store_commit(st, &b2), 0);
    ck_assert_int_eq(again.result, STORE_KEY_EXISTS);
    ck_assert_int_eq(existing.stock, 9);
    ck_assert_int_eq(existing.restocked, 4);
    store_close(st);
    st = open_loaded(catalog, NCAT, &s);
    ck_assert_int_eq(s.products[1].stock, 9);
    ck_assert_int_eq(s.products[1].restocked, 4);
    store_state_free(&s);
    store_close(st);
}
END_TEST

START_TEST(test_store_sqlite_reads_keys_of_the_previous_build)
{
    /* A file from the build before kept the HTTP answer of each key
     * (status and JSON body); its keys still give their outcome. */
    struct store_state s;
    struct store *st = open_loaded(catalog, NCAT, &s);
    store_state_free(&s);
    store_close(st);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "INSERT INTO idempotency_keys VALUES ('buy', 'old-buy',"
             " 'apple|2|null', 202, '{\"order_id\":7,\"status\":\"queued\"}',"
             " 7, %lld);"
             "INSERT INTO idempotency_keys VALUES ('restock', 'old-rs',"
             " 'pear|4', 200, '{\"sku\":\"pear\",\"name\":\"\\\"stock\\\":1\","
             "\"price_cents\":50,\"stock\":9,\"sold\":2,\"restocked\":4}',"
             " NULL, %lld);",
             (long long)time_now_ns(CLOCK_REALTIME),
             (long long)time_now_ns(CLOCK_REALTIME));
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    st = open_loaded(catalog, NCAT, &s);
    store_state_free(&s);
    struct store_answer ans;
    ck_assert_int_eq(store_idem_get(st, "buy", "old-buy", 7, &ans), 0);
    ck_assert_uint_eq(ans.order_id, 7);
    ck_assert_uint_eq(ans.fingerprint_len, 12);
    ck_assert_mem_eq(ans.fingerprint, "apple|2|null", 12);
    ck_assert_int_eq(store_idem_get(st, "restock", "old-rs", 6, &ans), 0);
    ck_assert_uint_eq(ans.order_id, 0);
    ck_assert_int_eq(ans.stock, 9);
    ck_assert_int_eq(ans.sold, 2);
    ck_assert_int_eq(ans.restocked, 4);
    /* And a commit that meets an old key refuses it with its outcome. */
    struct store_idem k = {.endpoint = "buy",
                           .key = "old-buy",
                           .key_len = 7,
                           .fingerprint = "apple|2|null",
                           .fingerprint_len = 12};
    struct store_answer existing;
    struct store_accept a = accept_of(0, 2, NULL);
    a.idem = &k;
    a.existing = &existing;
    struct store_batch b = {.accepts = &a, .naccepts = 1};
    ck_assert_int_eq(store_commit(st, &b), 0);
    ck_assert_int_eq(a.result, STORE_KEY_EXISTS);
    ck_assert_uint_eq(existing.order_id, 7);
    store_close(st);
}
END_TEST

START_TEST(test_store_sqlite_refuses_a_file_that_is_not_a_database)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database\n", f);
    fclose(f);
    struct store_options o = {.kind = STORE_SQLITE, .path = path};
    struct store *st = NULL;
    char err[256] = "";
    ck_assert_int_lt(store_open(&o, &st, err, sizeof(err)), 0);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(err, path) != NULL, "%s", err);
}
END_TEST

/* ---- a shop over the SQLite store -------------------------------------- */

/* A millisecond's pause while polling a condition another thread sets. */
static void nap(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

struct verdicts {
    _Atomic int ok, failed;
};

static void count_verdict(void *arg, int rc, uint64_t id)
{
    struct verdicts *v = arg;
    (void)id;
    if (rc == 0)
        atomic_fetch_add(&v->ok, 1);
    else
        atomic_fetch_add(&v->failed, 1);
}

static struct shop *stored_shop(struct store *st, size_t capacity,
                                const struct store_state *s)
{
    struct shop_config cfg = {
        .workers = 2,
        .queue_capacity = capacity,
        .order_history = 4, /* small: older orders come from the store */
        .store = st,
    };
    struct shop *shop = NULL;
    ck_assert_int_eq(shop_create_stored(&cfg, s, &shop), 0);
    ck_assert(shop_durable(shop));
    ck_assert_int_eq(shop_start(shop), 0);
    return shop;
}

START_TEST(test_store_shop_restart_backlog_larger_than_the_belt)
{
    /* 20 orders committed, never processed (as after a kill -9). */
    struct store_state s;
    struct store *st = open_loaded(catalog, NCAT, &s);
    store_state_free(&s);
    struct store_accept a[20];
    for (size_t i = 0; i < 20; i++)
        a[i] = accept_of(i % 2, 1, NULL);
    struct store_batch b = {.accepts = a, .naccepts = 20};
    ck_assert_int_eq(store_commit(st, &b), 0);
    store_close(st);

    st = open_loaded(catalog, NCAT, &s);
    ck_assert_uint_eq(s.nunfinished, 20);
    struct shop *shop = stored_shop(st, 3, &s);
    store_state_free(&s);
    /* The belt is full of the backlog: a new order waits its turn. */
    struct order o = {.product = 0, .quantity = 1};
    struct verdicts v = {0};
    int rc;
    do
        rc = shop_submit_async(shop, &o, count_verdict, &v);
    while (rc == -EAGAIN);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(shop_drain(shop, NULL), 0);
    ck_assert_int_eq(atomic_load(&v.ok), 1);
    shop_destroy(shop);

    /* Every order is final on disk; banana sold out after 5. */
    struct store_order so;
    for (uint64_t id = 1; id <= 21; id++) {
        ck_assert_int_eq(store_order_get(st, id, &so), 0);
        ck_assert_int_ne(so.status, STORE_QUEUED);
    }
    store_close(st);
    st = open_loaded(catalog, NCAT, &s);
    ck_assert_uint_eq(s.nunfinished, 0);
    ck_assert_uint_eq(s.next_id, 22);
    ck_assert_int_eq(s.products[0].sold, 11);
    ck_assert_int_eq(s.products[0].stock, 89);
    ck_assert_int_eq(s.products[1].sold, 5);
    ck_assert_int_eq(s.products[1].stock, 0);
    store_state_free(&s);
    store_close(st);
}
END_TEST

START_TEST(test_store_shop_failing_disk_answers_then_recovers)
{
    faulty_register();
    struct store *st = open_sqlite("shopd-faulty");
    struct store_state s;
    char err[256];
    ck_assert_int_eq(store_load(st, catalog, NCAT, &s, err, sizeof(err)), 0);
    struct shop *shop = stored_shop(st, 16, &s);
    store_state_free(&s);

    struct order o = {.product = 0, .quantity = 1};
    struct verdicts v = {0};
    atomic_store(&fail_writes, true);
    ck_assert_int_eq(shop_submit_async(shop, &o, count_verdict, &v), 0);
    /* The verdict comes from the committer thread: wait for it. */
    while (atomic_load(&v.ok) + atomic_load(&v.failed) < 1)
        nap();
    ck_assert_int_eq(atomic_load(&v.failed), 1);
    ck_assert(!shop_store_ok(shop));

    atomic_store(&fail_writes, false);
    /* The committer probes the store by itself and recovers. */
    while (!shop_store_ok(shop))
        nap();
    ck_assert_int_eq(shop_submit_async(shop, &o, count_verdict, &v), 0);
    ck_assert_int_eq(shop_drain(shop, NULL), 0);
    ck_assert_int_eq(atomic_load(&v.ok), 1);
    struct order got;
    ck_assert_int_eq(shop_order(shop, 1, &got), 0);
    ck_assert_int_eq(got.status, ORDER_FULFILLED);
    shop_destroy(shop);
    store_close(st);
}
END_TEST

/* The verdict of the first order: 202, and from then on the disk fails
 * (set on the committer thread, before the order's result can commit). */
static void accept_then_fail(void *arg, int rc, uint64_t id)
{
    struct verdicts *v = arg;
    (void)id;
    if (rc == 0)
        atomic_store(&fail_writes, true);
    count_verdict(v, rc, id);
}

START_TEST(test_store_shop_result_waits_for_the_disk_and_applies_once)
{
    faulty_register();
    struct store *st = open_sqlite("shopd-faulty");
    struct store_state s;
    char err[256];
    ck_assert_int_eq(store_load(st, catalog, NCAT, &s, err, sizeof(err)), 0);
    struct shop *shop = stored_shop(st, 16, &s);
    store_state_free(&s);

    struct order o = {.product = 1, .quantity = 2};
    struct verdicts v = {0};
    ck_assert_int_eq(shop_submit_async(shop, &o, accept_then_fail, &v), 0);
    while (atomic_load(&v.ok) == 0)
        nap();
    /* The worker decided, but the result cannot be committed: the order
     * is not shown final, and the store is reported down. */
    while (shop_store_ok(shop))
        nap();
    struct order got;
    ck_assert_int_eq(shop_order(shop, 1, &got), 0);
    ck_assert_int_eq(got.status, ORDER_QUEUED);

    atomic_store(&fail_writes, false);
    /* The committer retries the kept result by itself. */
    do {
        nap();
        ck_assert_int_eq(shop_order(shop, 1, &got), 0);
    } while (got.status == ORDER_QUEUED);
    ck_assert_int_eq(got.status, ORDER_FULFILLED);
    ck_assert_int_eq(shop_drain(shop, NULL), 0);
    shop_destroy(shop);

    struct store_order so;
    ck_assert_int_eq(store_order_get(st, 1, &so), 0);
    ck_assert_int_eq(so.status, STORE_FULFILLED);
    store_close(st);
    st = open_loaded(catalog, NCAT, &s);
    ck_assert_int_eq(s.products[1].stock, 3); /* taken once */
    ck_assert_int_eq(s.products[1].sold, 2);
    ck_assert_uint_eq(s.nunfinished, 0);
    store_state_free(&s);
    store_close(st);
}
END_TEST

struct restock_verdict {
    _Atomic int calls;
    int rc;
    struct shop_stock st;
};

static void note_restock(void *arg, int rc, const struct shop_stock *st)
{
    struct restock_verdict *v = arg;
    v->rc = rc;
    if (st != NULL)
        v->st = *st;
    atomic_fetch_add(&v->calls, 1); /* last: the test thread polls it */
}

START_TEST(test_store_shop_restock_commits_before_it_counts)
{
    faulty_register();
    struct store *st = open_sqlite("shopd-faulty");
    struct store_state s;
    char err[256];
    ck_assert_int_eq(store_load(st, catalog, NCAT, &s, err, sizeof(err)), 0);
    struct shop *shop = stored_shop(st, 16, &s);
    store_state_free(&s);
    struct shop_stock now;
    /* The memory path's restock is refused: it would bypass the store. */
    ck_assert_int_eq(shop_restock(shop, 1, 1, &now), -EINVAL);

    /* A failing disk: the restock is refused and changes nothing. */
    atomic_store(&fail_writes, true);
    struct restock_verdict v = {0};
    ck_assert_int_eq(shop_restock_async(shop, 1, 10, NULL, note_restock, &v),
                     0);
    while (atomic_load(&v.calls) == 0)
        nap();
    ck_assert_int_eq(v.rc, -EIO);
    struct shop_stock all[NCAT];
    shop_stock_all(shop, all);
    ck_assert_int_eq(all[1].stock, 5);
    ck_assert_int_eq(all[1].restocked, 0);

    atomic_store(&fail_writes, false);
    struct restock_verdict ok = {0};
    ck_assert_int_eq(shop_restock_async(shop, 1, 10, NULL, note_restock, &ok),
                     0);
    while (atomic_load(&ok.calls) == 0)
        nap();
    ck_assert_int_eq(ok.rc, 0);
    ck_assert_int_eq(ok.st.stock, 15);
    ck_assert_int_eq(ok.st.restocked, 10);
    ck_assert_int_eq(shop_drain(shop, NULL), 0);
    shop_destroy(shop);
    store_close(st);

    st = open_loaded(catalog, NCAT, &s);
    ck_assert_int_eq(s.products[1].stock, 15);
    ck_assert_int_eq(s.products[1].restocked, 10);
    store_state_free(&s);
    store_close(st);
}
END_TEST

Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("sqlite");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_store_sqlite_seeds_and_numbers_orders);
    tcase_add_test(tc, test_store_sqlite_results_apply_once_and_reload);
    tcase_add_test(tc, test_store_sqlite_second_open_is_refused);
    tcase_add_test(tc,
                   test_store_sqlite_vanished_file_refuses_writes_until_back);
    tcase_add_test(tc, test_store_sqlite_adds_unknown_catalog_products);
    tcase_add_test(tc,
                   test_store_sqlite_failed_commit_keeps_nothing_and_recovers);
    tcase_add_test(tc,
                   test_store_sqlite_idempotency_key_commits_with_its_order);
    tcase_add_test(tc, test_store_sqlite_restock_key_remembers_the_numbers);
    tcase_add_test(tc, test_store_sqlite_reads_keys_of_the_previous_build);
    tcase_add_test(tc,
                   test_store_sqlite_drops_digest_keys_of_an_older_file_once);
    tcase_add_test(tc, test_store_sqlite_refuses_a_file_that_is_not_a_database);
    tcase_add_test(tc, test_store_shop_restart_backlog_larger_than_the_belt);
    tcase_add_test(tc, test_store_shop_failing_disk_answers_then_recovers);
    tcase_add_test(tc,
                   test_store_shop_result_waits_for_the_disk_and_applies_once);
    tcase_add_test(tc, test_store_shop_restock_commits_before_it_counts);
    suite_add_tcase(s, tc);
    return s;
}
