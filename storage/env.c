/* storage/env.c: the LMDB environment of a data directory: error translation, the precheck of
 * data.mdb, opening the environment, the reader gate, map growth and the one write-transaction
 * driver that retries after MDB_MAP_FULL.
 *
 * One environment per directory (DIR/data.mdb + DIR/lock.mdb) holds a fixed set of named
 * databases (records.h). Rejected: one LMDB database per collection (maxdbs is fixed at open
 * and LMDB scans the handles linearly); MDB_WRITEMAP (it extends the file to the map size
 * and lets stray writes corrupt the map); MDB_NOSYNC with a periodic sync (an acknowledged
 * write must survive power loss, so every commit is synced).
 *
 * Precheck: before LMDB maps data.mdb we read its two meta pages ourselves: random bytes, a
 * foreign format or a truncated file are refused with VD_CORRUPT without LMDB touching them
 * (LMDB would fault on pages missing past the end of a truncated file). Read-only opens
 * (info, check, backup) use MDB_RDONLY, and MDB_NOLOCK when lock.mdb is absent (nobody has
 * the environment open then), so they create nothing.
 *
 * Map size: LMDB reserves address space, not disk, so the map starts at max(256 MiB, 2x the
 * file) and doubles: ahead of a write when its estimate of the bytes it will dirty does not
 * fit, and after MDB_MAP_FULL as a fallback (the attempt is discarded, the map grown and the
 * transaction re-run from LMDB's state - vd_storage__write_txn, used by the write group,
 * import and the flush at close). Rejected: a fixed huge map (readers in other processes -
 * backup, info - map the same size, and the design asks for growth).
 *
 * Locks: mdb_env_set_mapsize() requires that no transaction is alive in the process, so
 * every read transaction passes the reader gate (gate_mu/gate_cv, a count: a snapshot may end
 * on another thread, which a rwlock forbids). A resize sets `resizing`, waits for the count
 * to drain, resizes and lets readers in again; the writer's own transaction is never alive
 * then (the driver grows between attempts). gate_mu is never held with cat_mu. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "storage/storage_int.h"

#define MIB ((size_t)1 << 20)
#define DEFAULT_MAP (256 * MIB)
#define MAX_ATTEMPTS 12

size_t vd_storage__test_initial_map = 0;
int vd_storage__pregrow = 1;
_Atomic long vd_storage__n_grows = 0;
_Atomic long vd_storage__n_retries = 0;

/* ---- errors ------------------------------------------------------------------------------ */
vd_status vd_storage__mdb_status(int rc)
{
    switch (rc) {
    case 0: return VD_OK;
    case ENOMEM: return VD_NOMEM;
    case ENOSPC: case EFBIG: case EDQUOT: case MDB_MAP_FULL: case MDB_TXN_FULL:
        return VD_FULL;
    case MDB_INVALID: case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_BAD_VALSIZE:
        return VD_CORRUPT;
    case MDB_VERSION_MISMATCH: return VD_VERSION;
    case MDB_NOTFOUND: case ENOENT: return VD_NOTFOUND;
    case EACCES: case EROFS: case EAGAIN: case MDB_READERS_FULL: return VD_UNAVAILABLE;
    default: return VD_IO;
    }
}

/* LMDB reports a short write as EIO; when the disk is nearly full or the data file is at
 * the process's file size limit, that EIO is really a full disk. */
static int refine_io(const vd_store *st, int rc)
{
    if (rc != EIO || !st) return rc;
    char path[4096];
    struct statvfs vfs;
    struct stat sb;
    if (statvfs(st->dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < (16u << 20))
        return ENOSPC;
    struct rlimit rl;
    snprintf(path, sizeof path, "%s/data.mdb", st->dir);
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        stat(path, &sb) == 0 && (uint64_t)sb.st_size + (4u << 20) >= (uint64_t)rl.rlim_cur)
        return EFBIG;
    return rc;
}

vd_status vd_storage__mdb_err(vd_store *st, int rc, vd_err *err, const char *what)
{
    vd_status s = vd_storage__mdb_status(rc);
    const char *dir = st ? st->dir : "?";
    if (rc == ENOSPC || rc == EFBIG || rc == EDQUOT)
        return vd_err_set(err, s, "%s: disk full in %s (%s); nothing of this write was "
                                  "committed", what, dir, mdb_strerror(rc));
    if (rc == MDB_PANIC)
        return vd_err_set(err, VD_IO, "%s: the LMDB environment in %s failed earlier and "
                                      "must be reopened (restart vectord)", what, dir);
    return vd_err_set(err, s, "%s in %s: %s", what, dir, mdb_strerror(rc));
}

vd_status vd_storage__txn_fail(vd_txn *t, int rc, vd_err *err, const char *what)
{
    if (t->write) rc = refine_io(t->st, rc);
    t->mdb_rc = rc;
    return vd_storage__mdb_err(t->st, rc, err, what);
}

/* ---- precheck of data.mdb ----------------------------------------------------------------
 * LMDB 0.9 on 64-bit: each meta page is a 16-byte page header, then MDB_meta: magic u32,
 * version u32, address, mapsize, two 48-byte MDB_db (the first one's md_pad is the page
 * size; the second is the main DB with its root at +40), last_pg u64, txnid u64. */
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_DATA_VERSION 1u

typedef struct lmdb_meta {
    uint32_t psize;
    uint64_t last_pg, txnid, main_root;
} lmdb_meta;

static int parse_meta(const uint8_t *pg, lmdb_meta *m)
{
    const uint8_t *mm = pg + 16;
    if (vd_get_u32le(mm) != LMDB_MAGIC || vd_get_u32le(mm + 4) != LMDB_DATA_VERSION) return 0;
    if ((pg[10] & 0x08) == 0) return 0; /* mp_flags & P_META */
    m->psize = vd_get_u32le(mm + 24);
    m->main_root = vd_get_u64le(mm + 24 + 48 + 40);
    m->last_pg = vd_get_u64le(mm + 120);
    m->txnid = vd_get_u64le(mm + 128);
    return 1;
}

/* The checks on the two meta pages of an open file of sb.st_size bytes. */
static vd_status check_metas(int fd, const char *path, const struct stat *sb, vd_err *err)
{
    uint8_t pg[256];
    lmdb_meta m0, m1;
    if (pread(fd, pg, sizeof pg, 0) != (ssize_t)sizeof pg || !parse_meta(pg, &m0))
        return vd_err_set(err, VD_CORRUPT, "%s is not an LMDB data file of a vectord data "
                                           "directory (bad or missing header)", path);
    if (m0.psize < 512 || m0.psize > 65536 || (m0.psize & (m0.psize - 1)))
        return vd_err_set(err, VD_CORRUPT, "%s: invalid page size %u in the LMDB header", path,
                          m0.psize);
    if (pread(fd, pg, sizeof pg, m0.psize) != (ssize_t)sizeof pg || !parse_meta(pg, &m1) ||
        m1.psize != m0.psize)
        return vd_err_set(err, VD_CORRUPT, "%s: the second LMDB meta page is damaged or "
                                           "missing", path);
    const lmdb_meta *m = m1.txnid > m0.txnid ? &m1 : &m0;
    uint64_t need = (m->last_pg + 1) * (uint64_t)m->psize;
    if ((uint64_t)sb->st_size < need)
        return vd_err_set(err, VD_CORRUPT, "%s is truncated: %lld bytes, the last committed "
                          "transaction needs %" PRIu64, path, (long long)sb->st_size, need);
    if (m->main_root != UINT64_MAX && m->main_root > m->last_pg)
        return vd_err_set(err, VD_CORRUPT, "%s: main database root page %" PRIu64 " is past "
                          "the last page %" PRIu64, path, m->main_root, m->last_pg);
    return VD_OK;
}

vd_status vd_storage__precheck_file(const char *path, vd_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return vd_err_set(err, VD_NOTFOUND, "%s does not exist", path);
        return vd_err_set(err, VD_UNAVAILABLE, "cannot read %s: %s", path, strerror(errno));
    }
    struct stat sb;
    vd_status s;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        s = vd_err_set(err, VD_CORRUPT, "%s is not a regular file", path);
    else
        s = check_metas(fd, path, &sb, err);
    close(fd);
    return s;
}

/* ---- opening ----------------------------------------------------------------------------- */
int vd_storage__env_create(const char *dir, int read_only, size_t map_bytes, MDB_env **out)
{
    char lock[4096];
    struct stat sb;
    unsigned flags = MDB_NOTLS; /* a snapshot may end on another thread than its own */
    if (read_only) {
        flags |= MDB_RDONLY;
        snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
        if (stat(lock, &sb) != 0) flags |= MDB_NOLOCK; /* nobody has it open: create nothing */
    }
    MDB_env *env = NULL;
    int rc = mdb_env_create(&env);
    if (!rc) rc = mdb_env_set_maxdbs(env, VD_STORE_MAX_DBS);
    if (!rc && map_bytes) rc = mdb_env_set_mapsize(env, map_bytes);
    if (!rc) rc = mdb_env_open(env, dir, flags, 0644);
    /* The format's longest key must fit (records.h, VD_KEY_MAX): an LMDB built for shorter
     * keys could not hold the sids table. */
    if (!rc && mdb_env_get_maxkeysize(env) < VD_KEY_MAX) rc = MDB_BAD_VALSIZE;
    if (rc && env) mdb_env_close(env);
    *out = rc ? NULL : env;
    return rc;
}

vd_status vd_storage__env_open(vd_store *st, int create, vd_err *err)
{
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data.mdb", st->dir);
    size_t map = vd_storage__test_initial_map ? vd_storage__test_initial_map : DEFAULT_MAP;
    if (stat(path, &sb) == 0) {
        vd_status s = vd_storage__precheck_file(path, err);
        if (s != VD_OK) return s;
        if ((size_t)sb.st_size * 2 > map) map = ((size_t)sb.st_size * 2 + MIB - 1) / MIB * MIB;
    } else if (!create || st->read_only) {
        return vd_err_set(err, VD_NOTFOUND, "%s is not a vectord data directory (no data.mdb)",
                          st->dir);
    }
    int rc = vd_storage__env_create(st->dir, st->read_only, map, &st->env);
    if (rc) return vd_storage__mdb_err(st, rc, err, "opening the LMDB environment");
    MDB_envinfo ei;
    mdb_env_info(st->env, &ei);
    st->map_bytes = ei.me_mapsize;
    if (st->read_only) return VD_OK;
    /* One writing process per directory: two would each keep an index that the other's
     * commits bypass (lock.c). */
    int fd = -1;
    int rc2 = mdb_env_get_fd(st->env, &fd);
    if (rc2) return vd_storage__mdb_err(st, rc2, err, "locking the data directory");
    return vd_storage__writer_lock(st, fd, err);
}

/* ---- reader gate and map growth ---------------------------------------------------------- */
void vd_storage__gate_enter(vd_store *st)
{
    pthread_mutex_lock(&st->gate_mu);
    while (st->resizing) pthread_cond_wait(&st->gate_cv, &st->gate_mu);
    st->n_readers++;
    pthread_mutex_unlock(&st->gate_mu);
}

void vd_storage__gate_leave(vd_store *st)
{
    pthread_mutex_lock(&st->gate_mu);
    if (--st->n_readers == 0) pthread_cond_broadcast(&st->gate_cv);
    pthread_mutex_unlock(&st->gate_mu);
}

/* Exclusive section: no read transaction of this process is alive inside. */
static void gate_lock(vd_store *st)
{
    pthread_mutex_lock(&st->gate_mu);
    while (st->resizing) pthread_cond_wait(&st->gate_cv, &st->gate_mu);
    st->resizing = 1;
    while (st->n_readers > 0) pthread_cond_wait(&st->gate_cv, &st->gate_mu);
}

static void gate_unlock(vd_store *st)
{
    st->resizing = 0;
    pthread_cond_broadcast(&st->gate_cv);
    pthread_mutex_unlock(&st->gate_mu);
}

vd_status vd_storage__read_begin(vd_store *st, vd_txn *t, vd_err *err, const char *what)
{
    *t = (vd_txn){.st = st};
    for (int attempt = 0;; attempt++) {
        vd_storage__gate_enter(st);
        int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &t->txn);
        if (rc == 0) return VD_OK;
        t->txn = NULL;
        vd_storage__gate_leave(st);
        if (rc == MDB_MAP_RESIZED && attempt <= 3) {
            /* Another process grew the map: adopt its size (no txn of ours may be alive). */
            gate_lock(st);
            rc = mdb_env_set_mapsize(st->env, 0);
            if (rc == 0) {
                MDB_envinfo ei;
                mdb_env_info(st->env, &ei);
                st->map_bytes = ei.me_mapsize;
            }
            gate_unlock(st);
        }
        if (rc) return vd_storage__txn_fail(t, rc, err, what);
    }
}

void vd_storage__read_end(vd_txn *t)
{
    if (!t->txn) return;
    mdb_txn_abort(t->txn);
    t->txn = NULL;
    vd_storage__gate_leave(t->st);
}

size_t vd_storage__used_bytes(vd_store *st)
{
    MDB_envinfo ei;
    MDB_stat ms;
    mdb_env_info(st->env, &ei);
    mdb_env_stat(st->env, &ms);
    return (ei.me_last_pgno + 1) * (size_t)ms.ms_psize;
}

vd_status vd_storage__grow(vd_store *st, size_t need_bytes, vd_err *err)
{
    size_t used = vd_storage__used_bytes(st);
    gate_lock(st);
    size_t cur = st->map_bytes;
    size_t target = cur * 2;
    if (target < used + 2 * need_bytes) target = used + 2 * need_bytes;
    target = (target + MIB - 1) / MIB * MIB;
    int rc = mdb_env_set_mapsize(st->env, target);
    if (rc == 0) st->map_bytes = target;
    gate_unlock(st);
    if (rc) return vd_storage__mdb_err(st, rc, err, "growing the LMDB map");
    atomic_fetch_add(&vd_storage__n_grows, 1);
    vd_log(VD_LOG_INFO, "storage: map of %s grown from %zu to %zu MiB", st->dir, cur / MIB,
           target / MIB);
    return VD_OK;
}

/* ---- the write-transaction driver -------------------------------------------------------- */
static vd_status write_attempt(vd_store *st, vd_txn *t, vd_txn_fill_fn fill, void *ctx,
                               vd_err *err)
{
    int rc = mdb_txn_begin(st->env, NULL, 0, &t->txn);
    if (rc) {
        t->txn = NULL;
        return vd_storage__txn_fail(t, rc, err, "beginning a write transaction");
    }
    vd_status s = fill(ctx, t, err);
    if (s != VD_OK) {
        mdb_txn_abort(t->txn);
        t->txn = NULL;
        return s;
    }
    uint64_t t0 = vd_now_ns();
    rc = mdb_txn_commit(t->txn); /* synced: the environment has no MDB_NOSYNC; frees txn */
    t->txn = NULL;
    if (rc) return vd_storage__txn_fail(t, rc, err, "committing");
    uint64_t dt = vd_now_ns() - t0;
    atomic_store(&st->last_commit_ns, dt);
    atomic_fetch_add(&st->commit_ns, dt);
    atomic_fetch_add(&st->n_commits, 1);
    return VD_OK;
}

vd_status vd_storage__write_txn(vd_store *st, size_t need_bytes, vd_txn_fill_fn fill,
                                vd_txn_end_fn end, void *ctx, vd_err *err)
{
    for (int attempt = 0;; attempt++) {
        if (attempt > 0 || (vd_storage__pregrow && need_bytes &&
                            vd_storage__used_bytes(st) + need_bytes > st->map_bytes)) {
            vd_status gs = vd_storage__grow(st, need_bytes, err);
            if (gs != VD_OK) return gs;
        }
        vd_txn t = {.st = st, .write = 1};
        vd_status s = write_attempt(st, &t, fill, ctx, err);
        if (end) end(ctx, s);
        if (s == VD_OK) return VD_OK;
        if (t.mdb_rc != MDB_MAP_FULL || attempt + 1 >= MAX_ATTEMPTS) return s;
        atomic_fetch_add(&vd_storage__n_retries, 1);
        vd_log(VD_LOG_INFO, "storage: map full in %s; growing and re-running the transaction",
               st->dir);
    }
}
