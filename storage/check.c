/* storage/check.c: the integrity check and the consistent backup.
 *
 * vd_store_check reads everything stored in one read transaction and compares it three ways:
 *  - records with records: every points record names a slot whose vector record carries the
 *    same id; every vector record has a links record and vice versa; slots lie below the
 *    graph header's high-water mark; catalog counts equal the points records; no record
 *    belongs to a collection id the catalog does not know; payloads are JSON objects;
 *  - records with the loaded graph: each stored point is live in the index with exactly the
 *    stored vector, and the index holds as many live points as are stored;
 *  - the graph with itself: vd_index_validate (links in range and to used slots, no self or
 *    duplicate links, reachability from the entry point). The links record's byte format is
 *    the index's (VD_INDEX_LINKS_FORMAT), so link targets are checked through the graph the
 *    records loaded into (vd_index_load_slot validates each record, load_finish and
 *    vd_index_validate the whole), not by parsing them here.
 * Each problem is one report line; at most REPORT_MAX lines per collection and kind, then a
 * count. Because it calls writer-only index functions (vd_index_get, vd_index_validate),
 * vd_store_check runs on the writer thread or with no writer at all (vectord check).
 *
 * vd_store_backup opens the source read-only in its own environment handle and lets
 * mdb_env_copy2(MDB_CP_COMPACT) write a compacted copy from one read transaction: a
 * consistent snapshot even while another process commits. It must not run in a process that
 * has the same directory open as a vd_store (LMDB forbids opening one environment twice in a
 * process: closing one handle would drop the other's file locks). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage_int.h"

#define REPORT_MAX 20

typedef struct checker {
    vd_store *st;
    MDB_txn *txn;
    vd_report_fn report;
    void *ctx;
    uint64_t n_problems;
} checker;

static void problem(checker *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(checker *k, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    k->n_problems++;
    if (k->report) k->report(k->ctx, line);
}

/* Reports a capped kind of problem: the first REPORT_MAX, then one summary at the end. */
typedef struct capped {
    const char *what;
    uint64_t n;
} capped;
#define CAPPED(k, cap, ...)                                                                   \
    do {                                                                                      \
        if ((cap)->n++ < REPORT_MAX) problem(k, __VA_ARGS__);                                \
        else (k)->n_problems++;                                                              \
    } while (0)
static void capped_end(checker *k, const char *coll, capped *c)
{
    if (c->n > REPORT_MAX && k->report) {
        char line[256];
        snprintf(line, sizeof line, "collection %s: ... and %" PRIu64 " more: %s", coll,
                 c->n - REPORT_MAX, c->what);
        k->report(k->ctx, line);
    }
}

static int has_prefix(const MDB_val *key, size_t len, uint32_t cid)
{
    return key->mv_size == len && vd_get_u32be(key->mv_data) == cid;
}

typedef struct dirty_ctx {
    uint8_t *map;
    size_t cap, n;
} dirty_ctx;

static int mark_dirty(void *ctx, uint32_t slot, vd_change_kind kind)
{
    dirty_ctx *d = ctx;
    (void)kind;
    if (slot < d->cap) d->map[slot] = 1;
    d->n++;
    return 0;
}

/* 1 if the stored links record of `slot` is not what the loaded graph would write. */
static int links_differ(vd_store *st, const vd_collection *c, uint32_t slot, const MDB_val *vl)
{
    size_t len = 0;
    uint8_t *buf = vd_storage__scratch(st, 1024);
    if (!buf) return 0;
    vd_status s = vd_index_slot_links(c->ix, slot, buf, st->buf_cap, &len, NULL);
    if (s == VD_FULL && (buf = vd_storage__scratch(st, len)))
        s = vd_index_slot_links(c->ix, slot, buf, st->buf_cap, &len, NULL);
    return s != VD_OK || len != vl->mv_size || memcmp(buf, vl->mv_data, len) != 0;
}

static int check_collection(checker *k, const vd_catalog_rec *r, float *vbuf)
{
    vd_store *st = k->st;
    const char *name = r->params.name;
    uint32_t cid = r->cid, dim = r->params.dim;
    size_t vb = (size_t)dim * sizeof(float);
    MDB_cursor *cur = NULL, *cl = NULL;
    capped bad_point = {"points records without a matching vector record", 0};
    capped not_in_graph = {"points missing from the graph or with a different vector", 0};
    capped bad_payload = {"payloads that are not JSON objects", 0};
    capped bad_slot = {"vector/links record mismatches", 0};
    int rc;
    uint8_t *dirty = NULL;
    size_t n_dirty_cap = 0, n_dirty = 0;
    vd_collection *c = vd_storage__catalog_find(st, name);
    if (!c) problem(k, "collection %s is stored but was not loaded", name);
    else if (c->cid != cid)
        problem(k, "collection %s: loaded with id %u, stored with id %u", name, c->cid, cid);

    /* points -> vectors, and -> graph */
    uint8_t kb[12];
    vd_key_point(kb, cid, 0);
    MDB_val key = {12, kb}, val;
    uint64_t n_points = 0;
    if ((rc = mdb_cursor_open(k->txn, st->dbi_points, &cur))) goto fail;
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && has_prefix(&key, 12, cid)) {
        uint64_t id = vd_get_u64be((uint8_t *)key.mv_data + 4);
        n_points++;
        if (val.mv_size < 4) {
            CAPPED(k, &bad_point, "collection %s: point %" PRIu64 " record is malformed", name,
                   id);
            goto next_point;
        }
        uint32_t slot = vd_get_u32le(val.mv_data);
        if (val.mv_size > 4) {
            vd_err e;
            if (vd_json_check_object((uint8_t *)val.mv_data + 4, val.mv_size - 4, &e) != VD_OK)
                CAPPED(k, &bad_payload, "collection %s: point %" PRIu64 ": %s", name, id,
                       e.msg);
        }
        uint8_t ks[8];
        vd_key_slot(ks, cid, slot);
        MDB_val k2 = {8, ks}, v2;
        int r2 = mdb_get(k->txn, st->dbi_vectors, &k2, &v2);
        if (r2 == MDB_NOTFOUND || (r2 == 0 && (v2.mv_size != 8 + vb ||
                                               vd_get_u64le(v2.mv_data) != id))) {
            CAPPED(k, &bad_point, "collection %s: point %" PRIu64 " names slot %u, which holds "
                   "no vector record for it", name, id, slot);
            goto next_point;
        }
        if (r2) {
            rc = r2;
            goto fail;
        }
        if (c) {
            if (vd_index_get(c->ix, id, vbuf, NULL) != VD_OK)
                CAPPED(k, &not_in_graph, "collection %s: point %" PRIu64 " is not in the graph",
                       name, id);
            else if (memcmp(vbuf, (uint8_t *)v2.mv_data + 8, vb) != 0)
                CAPPED(k, &not_in_graph, "collection %s: point %" PRIu64 " has a different "
                       "vector in the graph than on disk", name, id);
        }
    next_point:
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    if (rc && rc != MDB_NOTFOUND) goto fail;
    mdb_cursor_close(cur);
    cur = NULL;

    /* Slots changed in memory since the last commit (publish-time repairs) legitimately
     * differ from their records until the next group or the flush at close. */
    if (c) {
        vd_index_header h;
        vd_index_header_get(c->ix, &h);
        n_dirty_cap = h.n_slots;
        dirty = vd_calloc(n_dirty_cap + 1, 1);
        if (!dirty) {
            rc = ENOMEM;
            goto fail;
        }
        dirty_ctx dc = {dirty, n_dirty_cap, 0};
        vd_storage__changes(c->ix, mark_dirty, &dc);
        n_dirty = dc.n;
    }

    /* vectors <-> links */
    uint8_t k0[8];
    vd_key_slot(k0, cid, 0);
    MDB_val kv = {8, k0}, vv, kl = {8, k0}, vl;
    if ((rc = mdb_cursor_open(k->txn, st->dbi_vectors, &cur)) ||
        (rc = mdb_cursor_open(k->txn, st->dbi_links, &cl)))
        goto fail;
    int rv = mdb_cursor_get(cur, &kv, &vv, MDB_SET_RANGE);
    int rl = mdb_cursor_get(cl, &kl, &vl, MDB_SET_RANGE);
    uint64_t n_vectors = 0;
    for (;;) {
        int hv = rv == 0 && has_prefix(&kv, 8, cid), hl = rl == 0 && has_prefix(&kl, 8, cid);
        if (!hv && !hl) break;
        uint32_t sv = hv ? vd_get_u32be((uint8_t *)kv.mv_data + 4) : UINT32_MAX;
        uint32_t sl = hl ? vd_get_u32be((uint8_t *)kl.mv_data + 4) : UINT32_MAX;
        if (sv == sl) {
            n_vectors++;
            if (vv.mv_size != 8 + vb)
                CAPPED(k, &bad_slot, "collection %s: vector record of slot %u has %zu bytes, "
                       "expected %zu", name, sv, vv.mv_size, 8 + vb);
            if (sv >= r->hdr.n_slots)
                CAPPED(k, &bad_slot, "collection %s: slot %u lies beyond the graph header's %u "
                       "slots", name, sv, r->hdr.n_slots);
            if (c && !(dirty && sv < n_dirty_cap && dirty[sv]) && links_differ(st, c, sv, &vl))
                CAPPED(k, &bad_slot, "collection %s: the links record of slot %u differs from "
                       "the graph in memory", name, sv);
            rv = mdb_cursor_get(cur, &kv, &vv, MDB_NEXT);
            rl = mdb_cursor_get(cl, &kl, &vl, MDB_NEXT);
        } else if (sv < sl) {
            CAPPED(k, &bad_slot, "collection %s: slot %u has a vector record but no links record",
                   name, sv);
            rv = mdb_cursor_get(cur, &kv, &vv, MDB_NEXT);
        } else {
            CAPPED(k, &bad_slot, "collection %s: slot %u has a links record but no vector record",
                   name, sl);
            rl = mdb_cursor_get(cl, &kl, &vl, MDB_NEXT);
        }
    }
    if (rv && rv != MDB_NOTFOUND) { rc = rv; goto fail; }
    if (rl && rl != MDB_NOTFOUND) { rc = rl; goto fail; }
    mdb_cursor_close(cur);
    mdb_cursor_close(cl);
    cur = cl = NULL;

    if (n_points != r->count)
        problem(k, "collection %s: the catalog counts %" PRIu64 " points, %" PRIu64 " are stored",
                name, r->count, n_points);
    if (n_vectors < n_points)
        problem(k, "collection %s: %" PRIu64 " vector records for %" PRIu64 " points", name,
                n_vectors, n_points);
    if (c) {
        vd_index_header h;
        vd_index_header_get(c->ix, &h);
        uint64_t n_filled = 0;
        for (uint32_t slot = 0; slot < h.n_slots; slot++) {
            uint64_t id;
            const float *v;
            if (vd_index_slot_vector(c->ix, slot, &id, &v, NULL) == VD_OK) n_filled++;
        }
        if (n_dirty == 0 && n_filled != n_vectors)
            problem(k, "collection %s: the graph fills %" PRIu64 " slots, %" PRIu64 " are stored",
                    name, n_filled, n_vectors);
        if (vd_index_count(c->ix) != n_points)
            problem(k, "collection %s: the graph holds %zu live points, %" PRIu64 " are stored",
                    name, vd_index_count(c->ix), n_points);
        vd_err e;
        if (vd_index_validate(c->ix, &e) != VD_OK)
            problem(k, "collection %s: graph: %s", name, e.msg);
    }
    vd_free(dirty);
    capped_end(k, name, &bad_point);
    capped_end(k, name, &not_in_graph);
    capped_end(k, name, &bad_payload);
    capped_end(k, name, &bad_slot);
    vd_collection_release(c);
    return 0;
fail:
    if (cur) mdb_cursor_close(cur);
    if (cl) mdb_cursor_close(cl);
    vd_free(dirty);
    vd_collection_release(c);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Records whose collection id the catalog does not know, one line per (database, id). */
static int check_orphans(checker *k, MDB_dbi dbi, const char *db, size_t key_len,
                         const uint32_t *cids, size_t n_cids)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    int rc = mdb_cursor_open(k->txn, dbi, &cur);
    if (rc) return rc;
    rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    while (rc == 0) {
        if (key.mv_size != key_len) {
            problem(k, "%s: a record has a %zu-byte key, expected %zu", db, key.mv_size,
                    key_len);
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
            continue;
        }
        uint32_t cid = vd_get_u32be(key.mv_data);
        uint64_t n = 0;
        int known = n_cids && bsearch(&cid, cids, n_cids, sizeof *cids, cmp_u32) != NULL;
        if (known) {
            /* Skip the whole known range at once. */
            if (cid == UINT32_MAX) break;
            uint8_t next[4];
            vd_put_u32be(next, cid + 1);
            key.mv_size = 4;
            key.mv_data = next;
            rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
            continue;
        }
        while (rc == 0 && key.mv_size == key_len && vd_get_u32be(key.mv_data) == cid) {
            n++;
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }
        problem(k, "%s: %" PRIu64 " records belong to collection id %u, which the catalog does "
                "not know", db, n, cid);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

vd_status vd_store_check(vd_store *st, vd_report_fn report, void *ctx, vd_err *err)
{
    checker k = {.st = st, .report = report, .ctx = ctx};
    MDB_cursor *cur = NULL;
    if (st->catalog_only)
        return vd_err_set(err, VD_INVALID, "%s was opened catalog-only: check needs the graphs",
                          st->dir);
    uint32_t *cids = NULL;
    size_t n_cids = 0, cap = 0;
    float *vbuf = NULL;
    int rc = vd_storage__read_begin(st, &k.txn);
    if (rc) return vd_storage__mdb_err(st, rc, err, "checking");
    vbuf = vd_malloc(VD_DIM_MAX * sizeof *vbuf);
    if (!vbuf) {
        vd_storage__read_end(st, k.txn);
        return vd_err_set(err, VD_NOMEM, "out of memory checking %s", st->dir);
    }
    uint32_t next_cid = 0;
    MDB_val key = {15, "next_collection"}, val;
    rc = mdb_get(k.txn, st->dbi_meta, &key, &val);
    if (rc == 0 && val.mv_size == 4) next_cid = vd_get_u32le(val.mv_data);
    else if (rc == 0 || rc == MDB_NOTFOUND) problem(&k, "meta: next collection id is missing");
    else goto fail;

    if ((rc = mdb_cursor_open(k.txn, st->dbi_catalog, &cur))) goto fail;
    while ((rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
        vd_catalog_rec r;
        vd_err e;
        if (vd_storage__catalog_decode(key.mv_data, key.mv_size, val.mv_data, val.mv_size, &r,
                                       &e) != VD_OK) {
            problem(&k, "catalog: %s", e.msg);
            continue;
        }
        if (r.cid == 0 || r.cid >= next_cid)
            problem(&k, "collection %s: id %u is not below the next collection id %u",
                    r.params.name, r.cid, next_cid);
        if (n_cids == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *a = vd_realloc(cids, cap * sizeof *a);
            if (!a) {
                rc = ENOMEM;
                goto fail;
            }
            cids = a;
        }
        cids[n_cids++] = r.cid;
        if ((rc = check_collection(&k, &r, vbuf))) goto fail;
    }
    if (rc != MDB_NOTFOUND) goto fail;
    mdb_cursor_close(cur);
    cur = NULL;
    if (n_cids > 1) qsort(cids, n_cids, sizeof *cids, cmp_u32);
    for (size_t i = 1; i < n_cids; i++)
        if (cids[i] == cids[i - 1]) problem(&k, "catalog: two collections share id %u", cids[i]);
    if ((rc = check_orphans(&k, st->dbi_points, "points", 12, cids, n_cids)) ||
        (rc = check_orphans(&k, st->dbi_vectors, "vectors", 8, cids, n_cids)) ||
        (rc = check_orphans(&k, st->dbi_links, "links", 8, cids, n_cids)))
        goto fail;
    /* Collections loaded in memory that the stored catalog does not have. */
    pthread_mutex_lock(&st->cat_mu);
    size_t n_mem = st->n_colls;
    for (size_t i = 0; i < n_mem; i++) {
        MDB_val kn = {strlen(st->colls[i]->params.name), st->colls[i]->params.name}, vn;
        if (mdb_get(k.txn, st->dbi_catalog, &kn, &vn) == MDB_NOTFOUND)
            problem(&k, "collection %s is loaded but not stored", st->colls[i]->params.name);
    }
    pthread_mutex_unlock(&st->cat_mu);
    vd_storage__read_end(st, k.txn);
    vd_free(cids);
    vd_free(vbuf);
    if (k.n_problems)
        return vd_err_set(err, VD_CORRUPT, "%s: %" PRIu64 " problem%s found", st->dir,
                          k.n_problems, k.n_problems == 1 ? "" : "s");
    return VD_OK;
fail:
    if (cur) mdb_cursor_close(cur);
    vd_storage__read_end(st, k.txn);
    vd_free(cids);
    vd_free(vbuf);
    if (rc == ENOMEM) return vd_err_set(err, VD_NOMEM, "out of memory checking %s", st->dir);
    return vd_storage__mdb_err(st, rc, err, "checking");
}

/* ---- backup ------------------------------------------------------------------------------ */
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

vd_status vd_store_backup(const char *dir, const char *to_dir, vd_err *err)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    vd_status s = VD_OK;
    int rc = 0, made_dir = 0;
    char src[4096], dst[4096];
    if (!dir || !to_dir || !*dir || !*to_dir)
        return vd_err_set(err, VD_INVALID, "backup needs a source and a target directory");
    snprintf(src, sizeof src, "%s/data.mdb", dir);
    snprintf(dst, sizeof dst, "%s/data.mdb", to_dir);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return vd_err_set(err, VD_NOTFOUND, "data directory %s does not exist", dir);
    if ((s = vd_storage__precheck_file(src, err)) != VD_OK) {
        if (s == VD_NOTFOUND)
            return vd_err_set(err, VD_NOTFOUND, "%s is not a vectord data directory (no "
                              "data.mdb)", dir);
        return s;
    }
    if (stat(to_dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return vd_err_set(err, VD_INVALID, "backup target %s is not a directory", to_dir);
        if (!dir_is_empty(to_dir))
            return vd_err_set(err, VD_EXISTS, "backup target %s is not empty", to_dir);
    } else {
        if (mkdir(to_dir, 0755) != 0)
            return vd_err_set(err, errno == ENOENT ? VD_NOTFOUND : VD_IO,
                              "cannot create backup directory %s: %s", to_dir, strerror(errno));
        made_dir = 1;
    }
    snprintf(dst, sizeof dst, "%s/lock.mdb", dir);
    unsigned flags = MDB_RDONLY | MDB_NOTLS;
    if (stat(dst, &sb) != 0) flags |= MDB_NOLOCK; /* nobody has it open */
    snprintf(dst, sizeof dst, "%s/data.mdb", to_dir);
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, VD_STORE_MAX_DBS)))
        goto fail_mdb;
    if ((rc = mdb_env_open(env, dir, flags, 0644))) goto fail_mdb;
    /* Ours, and a version we know? */
    MDB_dbi meta;
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == MDB_MAP_RESIZED) {
        mdb_env_set_mapsize(env, 0);
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    }
    if (rc) goto fail_mdb;
    rc = mdb_dbi_open(txn, "meta", 0, &meta);
    MDB_val k = {5, "magic"}, v;
    if (rc == 0) rc = mdb_get(txn, meta, &k, &v);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE ||
        (rc == 0 && (v.mv_size != sizeof VD_STORE_MAGIC ||
                     memcmp(v.mv_data, VD_STORE_MAGIC, v.mv_size)))) {
        s = vd_err_set(err, VD_CORRUPT, "%s is not a vectord data directory", dir);
        goto fail;
    }
    if (rc) goto fail_mdb;
    MDB_val kf = {6, "format"};
    if ((rc = mdb_get(txn, meta, &kf, &v))) goto fail_mdb;
    if (v.mv_size != 4 || vd_get_u32le(v.mv_data) > VD_STORAGE_FORMAT_VERSION) {
        s = vd_err_set(err, VD_VERSION, "%s was written in a newer storage format; this "
                       "vectord cannot back it up", dir);
        goto fail;
    }
    mdb_txn_abort(txn);
    txn = NULL;
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
    if (txn) mdb_txn_abort(txn);
    if (env) mdb_env_close(env);
    unlink(dst);
    if (made_dir) rmdir(to_dir);
    return s;
}
