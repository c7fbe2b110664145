/* storage/store.c: opening and closing a data directory (vd_store_open, vd_store_close) and
 * its figures (vd_store_info_get). The steps live in the files that own them; this file
 * only orders them:
 *   the directory (created with opt->create) -> not open in this process already (lock.c)
 *   -> the environment, data.mdb prechecked first, the writer lock (env.c, lock.c) -> identification and the database handles, a new directory initialized
 *   (db.c) -> every collection loaded into the catalog (load.c).
 * Every refusal happens before anything is written, so a directory that is not ours, or of a
 * newer format, is left byte for byte as it was. Closing flushes what publish changed after
 * the last group (persist.c), releases the catalog and closes the environment; a failed open
 * undoes what it did through the same close.
 *
 * Threads: open and close with no other call on the store running; close releases the
 * catalog's references (a collection still acquired elsewhere lives on until released). */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "storage/storage_int.h"

/* The data directory: it must exist (or be created when allowed) and be a directory. */
static vd_status open_dir(const char *dir, const vd_store_options *opt, vd_err *err)
{
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return vd_err_set(err, VD_INVALID, "data directory %s is not a directory", dir);
        return VD_OK;
    }
    if (errno != ENOENT || !opt->create || opt->read_only)
        return vd_err_set(err, errno == ENOENT ? VD_NOTFOUND : VD_UNAVAILABLE,
                          "data directory %s: %s", dir, strerror(errno));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return vd_err_set(err, VD_IO, "cannot create data directory %s: %s", dir,
                          strerror(errno));
    return VD_OK;
}

static vd_store *store_new(const char *dir, const vd_store_options *opt)
{
    vd_store *st = vd_calloc(1, sizeof *st);
    if (!st) return NULL;
    if (!(st->dir = vd_strdup(dir))) {
        vd_free(st);
        return NULL;
    }
    st->read_only = opt->read_only;
    st->catalog_only = opt->catalog_only;
    st->n_threads = opt->n_threads;
    pthread_mutex_init(&st->gate_mu, NULL);
    pthread_cond_init(&st->gate_cv, NULL);
    pthread_mutex_init(&st->cat_mu, NULL);
    return st;
}

vd_status vd_store_open(const char *dir, const vd_store_options *opt, vd_store **out,
                        vd_err *err)
{
    vd_store_options none = {0};
    vd_store *st = NULL;
    vd_status s;
    if (!opt) opt = &none;
    *out = NULL;
    if (!dir || !*dir) return vd_err_set(err, VD_INVALID, "no data directory given");
    if (opt->catalog_only && !opt->read_only)
        return vd_err_set(err, VD_INVALID, "a catalog-only open must be read-only");
    if ((s = open_dir(dir, opt, err)) != VD_OK) return s;
    if (!(st = store_new(dir, opt))) return vd_err_set(err, VD_NOMEM, "out of memory opening %s",
                                                       dir);
    int create = opt->create && !opt->read_only;
    if ((s = vd_storage__register_dir(st, err)) != VD_OK ||
        (s = vd_storage__env_open(st, create, err)) != VD_OK ||
        (s = vd_storage__db_open(st, create, err)) != VD_OK ||
        (s = vd_storage__load_all(st, opt, err)) != VD_OK) {
        vd_store_close(st);
        return s;
    }
    st->opened = 1;
    *out = st;
    return VD_OK;
}

void vd_store_close(vd_store *st)
{
    if (!st) return;
    vd_err e;
    if (st->opened && st->n_colls && vd_storage__flush(st, &e) != VD_OK)
        vd_log(VD_LOG_WARN, "storage: closing %s: %s", st->dir, e.msg);
    vd_storage__catalog_clear(st);
    vd_storage__writer_unlock(st);
    if (st->env) mdb_env_close(st->env); /* releases the flock */
    vd_storage__unregister_dir(st);     /* only now may this process open it again */
    pthread_mutex_destroy(&st->gate_mu);
    pthread_cond_destroy(&st->gate_cv);
    pthread_mutex_destroy(&st->cat_mu);
    vd_storage__buf_free(&st->buf);
    vd_free(st->dir);
    vd_free(st);
}

void vd_store_counters_get(vd_store *st, vd_store_counters *out)
{
    out->commits = atomic_load(&st->n_commits);
    out->commit_ns = atomic_load(&st->commit_ns);
    out->last_commit_ns = atomic_load(&st->last_commit_ns);
}

/* Pages on LMDB's free list: the free DB (handle 0) maps txn ids to page lists whose first
 * word is the list's length. */
static int free_pages(MDB_txn *txn, uint64_t *n_free)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    *n_free = 0;
    int rc = mdb_cursor_open(txn, 0, &cur);
    if (rc) return rc;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        if (v.mv_size >= sizeof(size_t)) {
            size_t n;
            memcpy(&n, v.mv_data, sizeof n);
            *n_free += n;
        }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

vd_status vd_store_info_get(vd_store *st, vd_store_info *out, vd_err *err)
{
    memset(out, 0, sizeof *out);
    vd_txn t;
    uint32_t ver = 0;
    uint64_t n_free = 0;
    vd_status s = vd_storage__read_begin(st, &t, err, "reading info");
    if (s != VD_OK) return s;
    MDB_envinfo ei;
    MDB_stat ms;
    mdb_env_info(st->env, &ei);
    mdb_env_stat(st->env, &ms);
    s = vd_storage__format_get(&t, &ver, err);
    int rc = s == VD_OK ? free_pages(t.txn, &n_free) : 0;
    vd_storage__read_end(&t);
    if (rc) return vd_storage__mdb_err(st, rc, err, "reading info");
    if (s != VD_OK) return s;
    out->format_version = ver;
    out->map_bytes = ei.me_mapsize;
    uint64_t pages = ei.me_last_pgno + 1;
    out->used_bytes = (pages > n_free ? pages - n_free : 0) * ms.ms_psize;
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", st->dir);
    struct stat sb;
    if (stat(path, &sb) == 0) out->file_bytes = (uint64_t)sb.st_size;
    return VD_OK;
}
