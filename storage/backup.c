/* storage/backup.c: vd_store_backup, a consistent compacted copy of a data directory.
 *
 * It opens the source read-only in an environment handle of its own and lets
 * mdb_env_copy2(MDB_CP_COMPACT) write the copy from one read transaction: a consistent
 * snapshot even while another process commits (a map that process grew meanwhile is adopted
 * and the copy restarted). The source is identified first like any open: the precheck of
 * data.mdb, then the meta values through the codec (magic, and a format this build reads),
 * so a foreign or newer directory is refused before anything is written. The target must be
 * empty or absent; on failure nothing of the copy is left behind. The copy is fsynced, file
 * and directory, before VD_OK.
 *
 * It must not run in a process that has the same directory open as a vd_store: LMDB forbids
 * opening one environment twice in a process (closing one handle would drop the other's
 * file locks). Rejected: copying the files (torn under a concurrent commit). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage_int.h"

static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

static void fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* A meta value; an absent one reads as empty (the codec refuses it). */
static int meta_value(MDB_txn *txn, MDB_dbi meta, const char *key, MDB_val *v)
{
    MDB_val k = {strlen(key), (void *)key};
    int rc = mdb_get(txn, meta, &k, v);
    if (rc == MDB_NOTFOUND) *v = (MDB_val){0, NULL};
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The source must be a vectord directory in a format this build reads. *rc: an LMDB failure. */
static vd_status identify(MDB_env *env, const char *dir, int *rc, vd_err *err)
{
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    MDB_val v = {0, NULL};
    uint32_t ver;
    vd_status s = VD_OK;
    if ((*rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == MDB_MAP_RESIZED) {
        mdb_env_set_mapsize(env, 0);
        *rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    }
    if (*rc) return VD_IO;
    *rc = mdb_dbi_open(txn, vd_storage__db_info(VD_DB_META)->name, 0, &meta);
    if (*rc == MDB_NOTFOUND || *rc == MDB_INCOMPATIBLE) *rc = 0; /* no meta: v stays empty */
    else if (*rc == 0) *rc = meta_value(txn, meta, VD_META_MAGIC, &v);
    if (*rc == 0 && vd_storage__magic_decode(v.mv_data, v.mv_size, NULL) != VD_OK)
        s = vd_err_set(err, VD_CORRUPT, "%s is not a vectord data directory", dir);
    if (*rc == 0 && s == VD_OK && (*rc = meta_value(txn, meta, VD_META_FORMAT, &v)) == 0 &&
        (s = vd_storage__format_decode(v.mv_data, v.mv_size, &ver, err)) != VD_OK)
        vd_err_prefix(err, "backup of %s", dir);
    mdb_txn_abort(txn);
    return *rc ? VD_IO : s;
}

/* Checks the source and prepares an empty target; *made_dir when it was created here. */
static vd_status prepare(const char *dir, const char *to_dir, int *made_dir, vd_err *err)
{
    char src[4096];
    struct stat sb;
    snprintf(src, sizeof src, "%s/data.mdb", dir);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return vd_err_set(err, VD_NOTFOUND, "data directory %s does not exist", dir);
    vd_status s = vd_storage__precheck_file(src, err);
    if (s == VD_NOTFOUND)
        return vd_err_set(err, VD_NOTFOUND, "%s is not a vectord data directory (no data.mdb)",
                          dir);
    if (s != VD_OK) return s;
    if (stat(to_dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return vd_err_set(err, VD_INVALID, "backup target %s is not a directory", to_dir);
        if (!dir_is_empty(to_dir))
            return vd_err_set(err, VD_EXISTS, "backup target %s is not empty", to_dir);
        return VD_OK;
    }
    if (mkdir(to_dir, 0755) != 0)
        return vd_err_set(err, errno == ENOENT ? VD_NOTFOUND : VD_IO,
                          "cannot create backup directory %s: %s", to_dir, strerror(errno));
    *made_dir = 1;
    return VD_OK;
}

vd_status vd_store_backup(const char *dir, const char *to_dir, vd_err *err)
{
    MDB_env *env = NULL;
    int rc = 0, made_dir = 0;
    char dst[4096];
    if (!dir || !to_dir || !*dir || !*to_dir)
        return vd_err_set(err, VD_INVALID, "backup needs a source and a target directory");
    vd_status s = prepare(dir, to_dir, &made_dir, err);
    if (s != VD_OK) return s;
    snprintf(dst, sizeof dst, "%s/data.mdb", to_dir);
    if ((rc = vd_storage__env_create(dir, 1, 0, &env))) goto fail_mdb;
    if ((s = identify(env, dir, &rc, err)) != VD_OK) {
        if (rc) goto fail_mdb;
        goto fail;
    }
    for (int attempt = 0;; attempt++) {
        rc = mdb_env_copy2(env, to_dir, MDB_CP_COMPACT);
        if (rc != MDB_MAP_RESIZED || attempt > 3) break;
        unlink(dst);
        if ((rc = mdb_env_set_mapsize(env, 0))) break;
    }
    if (rc) goto fail_mdb;
    mdb_env_close(env);
    fsync_path(dst, 0);
    fsync_path(to_dir, 1);
    return VD_OK;
fail_mdb:
    s = vd_err_set(err, vd_storage__mdb_status(rc), "backup %s -> %s: %s", dir, to_dir,
                   mdb_strerror(rc));
fail:
    if (env) mdb_env_close(env);
    unlink(dst);
    if (made_dir) rmdir(to_dir);
    return s;
}
