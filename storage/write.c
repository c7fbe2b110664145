/* storage/write.c: the one writer. vd_store_write applies a group of operations in ONE LMDB
 * transaction and commits once; vd_store_import writes a prebuilt index the same way.
 *
 * How memory and disk stay in step: every index is opened with deferred_publish, so the
 * writer mutates it freely while readers keep seeing the last published state. A group
 *  1. applies each op to the in-memory index (validating first: an invalid op gets its own
 *     status and touches neither the index nor the transaction) and writes its points
 *     records (payload, slot) into the transaction;
 *  2. walks vd_index_changes of every touched index and writes NEW (vector + links),
 *     LINKS (links) and FREED (delete both) slot records, then points each upserted id at
 *     the slot that now holds it, and rewrites the catalog record (count, graph header);
 *  3. commits (synced). Only then are the indexes published, their change sets cleared and
 *     created/dropped collections made visible/invisible in the catalog.
 * If anything fails before the commit is durable, nothing is published: the touched indexes
 * hold unpublished changes no reader has seen, LMDB holds the last committed state, so the
 * collection is marked needs_reload and the next group that touches it first reloads it
 * from LMDB into a fresh index (swapped into the catalog when that group commits). On
 * MDB_MAP_FULL the group is discarded this way, the map grown and the whole group re-run:
 * the retry starts from LMDB's state, never from half-applied memory.
 *
 * Which slot holds an id: the index reports changes by slot; an upsert of an existing id
 * fills a new slot and leaves the old one (marked deleted) until it is reclaimed. The slot of
 * an id upserted in this group is the NEW slot carrying that id; if several do (the id was
 * upserted twice in the group), the one whose vector equals vd_index_get(id) (identical
 * vectors are interchangeable for reads). When a slot is freed or refilled with another id
 * while a points record still names it, the id is re-pointed at another slot holding it
 * (found among this group's NEW slots, else by one scan of the collection's vectors).
 * Rejected: storing each vector twice (in points and vectors) to avoid this bookkeeping: it
 * would cost dim * 4 bytes more per point on disk.
 *
 * Map growth: before a group, the writer estimates the bytes it will dirty and grows the
 * map ahead when the free room is short (no retry needed in the common case). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "storage/storage_int.h"

#define MAX_ATTEMPTS 12

typedef struct wcoll {
    vd_collection *c;   /* working object; the group owns one reference */
    vd_collection *old; /* catalog object c replaces (reloaded first), reference owned */
    int created, dropped, mutated;
    uint64_t *pending; /* ids upserted in this group */
    size_t n_pending, cap_pending;
    uint64_t count, payload_bytes; /* working values */
} wcoll;

typedef struct group {
    vd_store *st;
    MDB_txn *txn;
    wcoll *w;
    size_t n_w, cap_w;
    uint32_t next_cid; /* 0 until read from meta */
    int mdb_rc;        /* the LMDB code behind a group failure, for MAP_FULL retries */
    float *vscratch;   /* dim floats for slot resolution */
    size_t vscratch_cap;
} group;

/* LMDB reports a short write as EIO; when the disk is nearly full or the data file is at
 * the process's file size limit, that EIO is really a full disk. */
static int refine_io(vd_store *st, int rc)
{
    if (rc != EIO) return rc;
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

static vd_status gfail(group *g, int rc, vd_err *err, const char *what)
{
    rc = refine_io(g->st, rc);
    g->mdb_rc = rc;
    return vd_storage__mdb_err(g->st, rc, err, what);
}

/* ---- small helpers ----------------------------------------------------------------------- */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_pair(const void *a, const void *b)
{
    const vd_id_slot *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

void vd_storage__sort_pairs(vd_id_slot *p, size_t n)
{
    if (n > 1) qsort(p, n, sizeof *p, cmp_pair);
}

vd_status vd_storage__resolve_slot(const vd_index *ix, const vd_id_slot *pairs, size_t n_pairs,
                                   uint64_t id, uint32_t *slot_out, float *scratch, vd_err *err)
{
    size_t lo = 0, hi = n_pairs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (pairs[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    if (lo >= n_pairs || pairs[lo].id != id) return VD_NOTFOUND;
    size_t end = lo;
    while (end < n_pairs && pairs[end].id == id) end++;
    *slot_out = pairs[lo].slot;
    if (end - lo == 1) return VD_OK;
    vd_status s = vd_index_get(ix, id, scratch, err);
    if (s != VD_OK) return s == VD_NOTFOUND ? VD_OK : s;
    size_t vb = (size_t)vd_index_params_of(ix)->dim * sizeof(float);
    for (size_t i = lo; i < end; i++) {
        uint64_t sid;
        const float *v;
        if (vd_index_slot_vector(ix, pairs[i].slot, &sid, &v, NULL) == VD_OK && sid == id &&
            memcmp(v, scratch, vb) == 0) {
            *slot_out = pairs[i].slot;
            break;
        }
    }
    return VD_OK;
}

/* Sorted copy of ids; VD_INVALID naming a repeated id. */
static vd_status check_distinct(const uint64_t *ids, size_t n, vd_err *err)
{
    uint64_t *s = vd_malloc(n * sizeof *s);
    if (!s) return vd_err_set(err, VD_NOMEM, "out of memory checking ids");
    memcpy(s, ids, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_u64);
    vd_status st = VD_OK;
    for (size_t i = 1; i < n; i++)
        if (s[i] == s[i - 1]) {
            st = vd_err_set(err, VD_INVALID, "id %" PRIu64 " appears more than once in the "
                            "batch", s[i]);
            break;
        }
    vd_free(s);
    return st;
}

static int put_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t val)
{
    uint8_t b[4];
    vd_put_u32le(b, val);
    MDB_val k = {strlen(key), (void *)key}, v = {4, b};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* Deletes every record of collection `cid` from one database. */
static int del_prefix(MDB_txn *txn, MDB_dbi dbi, uint32_t cid)
{
    MDB_cursor *cur = NULL;
    uint8_t kb[4];
    vd_put_u32be(kb, cid);
    MDB_val k = {4, kb}, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc) return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 4 && vd_get_u32be(k.mv_data) == cid) {
        if ((rc = mdb_cursor_del(cur, 0))) break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int put_catalog(vd_store *st, MDB_txn *txn, const vd_collection *c, uint64_t count,
                       uint64_t payload_bytes)
{
    vd_catalog_rec r = {.cid = c->cid, .params = c->params, .created_unix_s = c->created_unix_s,
                        .count = count, .payload_bytes = payload_bytes, .seed = c->seed};
    vd_index_header_get(c->ix, &r.hdr);
    uint8_t b[VD_CATALOG_REC_BYTES];
    vd_storage__catalog_encode(&r, b);
    MDB_val k = {strlen(c->params.name), (void *)c->params.name}, v = {sizeof b, b};
    return mdb_put(txn, st->dbi_catalog, &k, &v, 0);
}

static float *vscratch(group *g, uint32_t dim)
{
    if (dim <= g->vscratch_cap) return g->vscratch;
    float *f = vd_realloc(g->vscratch, dim * sizeof *f);
    if (!f) return NULL;
    g->vscratch = f;
    g->vscratch_cap = dim;
    return f;
}

/* ---- the group's view of collections ------------------------------------------------------ */
static wcoll *wadd(group *g, vd_err *err)
{
    if (g->n_w == g->cap_w) {
        size_t cap = g->cap_w ? g->cap_w * 2 : 4;
        wcoll *a = vd_realloc(g->w, cap * sizeof *a);
        if (!a) {
            vd_err_set(err, VD_NOMEM, "out of memory in a write group");
            return NULL;
        }
        g->w = a;
        g->cap_w = cap;
    }
    wcoll *w = &g->w[g->n_w++];
    memset(w, 0, sizeof *w);
    return w;
}

/* Finds `name` as this group sees it. *out NULL (and VD_OK) when absent. */
static vd_status gfind(group *g, const char *name, wcoll **out, vd_err *err)
{
    *out = NULL;
    for (size_t i = g->n_w; i-- > 0;)
        if (!strcmp(g->w[i].c->params.name, name)) {
            if (!g->w[i].dropped) *out = &g->w[i];
            return VD_OK;
        }
    vd_collection *c = vd_storage__catalog_find(g->st, name);
    if (!c) return VD_OK;
    vd_collection *fresh = NULL;
    if (c->needs_reload) {
        /* Its index may hold changes of a failed group: start from what LMDB holds. */
        MDB_val k = {strlen(name), (void *)name}, v;
        vd_catalog_rec r;
        int rc = mdb_get(g->txn, g->st->dbi_catalog, &k, &v);
        if (rc) {
            vd_collection_release(c);
            return gfail(g, rc, err, "reloading a collection");
        }
        vd_status s = vd_storage__catalog_decode(name, k.mv_size, v.mv_data, v.mv_size, &r, err);
        if (s == VD_OK) s = vd_storage__load(g->st, g->txn, &r, NULL, 0, NULL, &fresh, err);
        if (s != VD_OK) {
            vd_collection_release(c);
            return s;
        }
    }
    wcoll *w = wadd(g, err);
    if (!w) {
        vd_collection_release(fresh);
        vd_collection_release(c);
        return VD_NOMEM;
    }
    if (fresh) {
        w->c = fresh;
        w->old = c;
    } else {
        w->c = c;
    }
    w->count = w->c->count;
    w->payload_bytes = w->c->payload_bytes;
    *out = w;
    return VD_OK;
}

/* ---- operations --------------------------------------------------------------------------
 * Each returns VD_OK when the op was applied or rejected (op->status tells), or a group
 * failure (NOMEM, LMDB) with err set. */
static vd_status op_create(group *g, vd_op *op, vd_err *err)
{
    vd_store *st = g->st;
    vd_collection_params p = op->params;
    p.name[VD_NAME_MAX] = 0;
    if (vd_storage__params_check(&p, &op->err) != VD_OK) {
        op->status = op->err.code;
        return VD_OK;
    }
    wcoll *w;
    vd_status s = gfind(g, p.name, &w, err);
    if (s != VD_OK) return s;
    if (w) {
        op->status = vd_err_set(&op->err, VD_EXISTS, "collection %s already exists", p.name);
        return VD_OK;
    }
    if (g->next_cid == 0) {
        MDB_val k = {15, "next_collection"}, v;
        int rc = mdb_get(g->txn, st->dbi_meta, &k, &v);
        if (rc) return gfail(g, rc, err, "reading the next collection id");
        if (v.mv_size != 4) return vd_err_set(err, VD_CORRUPT, "next collection id malformed");
        g->next_cid = vd_get_u32le(v.mv_data);
    }
    if (g->next_cid == UINT32_MAX)
        return vd_err_set(err, VD_FULL, "collection ids exhausted in %s", st->dir);
    vd_collection *c = vd_storage__coll_new();
    if (!c) return vd_err_set(err, VD_NOMEM, "out of memory creating collection %s", p.name);
    c->cid = g->next_cid;
    c->params = p;
    c->created_unix_s = (uint64_t)time(NULL);
    /* A function of the collection id only: the same writes into a fresh directory build the
     * same graph (reproducible bugs, comparable benchmarks). */
    c->seed = 0x9E3779B97F4A7C15ull * c->cid + 0x632BE59BD9B4E019ull;
    vd_index_params ip = {.dim = p.dim, .metric = p.metric, .m = p.m,
                          .ef_construction = p.ef_construction, .seed = c->seed,
                          .deferred_publish = 1};
    s = vd_index_open(&ip, &c->ix, &op->err);
    if (s != VD_OK) {
        vd_collection_release(c);
        if (s == VD_NOMEM) return vd_err_set(err, VD_NOMEM, "%s", op->err.msg);
        op->status = s;
        return VD_OK;
    }
    vd_index_set_ef_search(c->ix, p.ef_search);
    w = wadd(g, err);
    if (!w) {
        vd_collection_release(c);
        return VD_NOMEM;
    }
    w->c = c;
    w->created = w->mutated = 1;
    int rc = put_catalog(st, g->txn, c, 0, 0);
    if (!rc) rc = put_u32(g->txn, st->dbi_meta, "next_collection", c->cid + 1);
    if (rc) return gfail(g, rc, err, "creating a collection");
    g->next_cid++;
    return VD_OK;
}

static vd_status op_drop(group *g, vd_op *op, vd_err *err)
{
    vd_store *st = g->st;
    if (vd_name_check(op->collection, &op->err) != VD_OK) {
        op->status = op->err.code;
        return VD_OK;
    }
    wcoll *w;
    vd_status s = gfind(g, op->collection, &w, err);
    if (s != VD_OK) return s;
    if (!w) {
        op->status = vd_err_set(&op->err, VD_NOTFOUND, "collection %s does not exist",
                                op->collection);
        return VD_OK;
    }
    uint32_t cid = w->c->cid;
    MDB_val k = {strlen(op->collection), (void *)op->collection};
    int rc;
    if ((rc = del_prefix(g->txn, st->dbi_points, cid)) ||
        (rc = del_prefix(g->txn, st->dbi_vectors, cid)) ||
        (rc = del_prefix(g->txn, st->dbi_links, cid)) ||
        (rc = mdb_del(g->txn, st->dbi_catalog, &k, NULL)))
        return gfail(g, rc, err, "dropping a collection");
    w->dropped = 1;
    return VD_OK;
}

static vd_status pending_add(wcoll *w, const uint64_t *ids, size_t n, vd_err *err)
{
    if (w->n_pending + n > w->cap_pending) {
        size_t cap = w->cap_pending ? w->cap_pending : 64;
        while (cap < w->n_pending + n) cap *= 2;
        uint64_t *a = vd_realloc(w->pending, cap * sizeof *a);
        if (!a) return vd_err_set(err, VD_NOMEM, "out of memory in a write group");
        w->pending = a;
        w->cap_pending = cap;
    }
    memcpy(w->pending + w->n_pending, ids, n * sizeof *ids);
    w->n_pending += n;
    return VD_OK;
}

static vd_status op_upsert(group *g, vd_op *op, vd_err *err)
{
    vd_store *st = g->st;
    wcoll *w;
    if (!op->collection || vd_name_check(op->collection, &op->err) != VD_OK) {
        op->status = op->collection ? op->err.code
                                    : vd_err_set(&op->err, VD_INVALID, "no collection named");
        return VD_OK;
    }
    vd_status s = gfind(g, op->collection, &w, err);
    if (s != VD_OK) return s;
    if (!w) {
        op->status = vd_err_set(&op->err, VD_NOTFOUND, "collection %s does not exist",
                                op->collection);
        return VD_OK;
    }
    if (op->n == 0) {
        op->status = vd_err_set(&op->err, VD_INVALID, "upsert into %s: empty batch",
                                op->collection);
        return VD_OK;
    }
    if (!op->ids || !op->vectors || (op->payloads && !op->payload_lens)) {
        op->status = vd_err_set(&op->err, VD_INVALID, "upsert into %s: ids, vectors or "
                                "payload lengths missing", op->collection);
        return VD_OK;
    }
    s = check_distinct(op->ids, op->n, &op->err);
    if (s == VD_NOMEM) return vd_err_set(err, VD_NOMEM, "%s", op->err.msg);
    if (s != VD_OK) {
        op->status = vd_err_prefix(&op->err, "upsert into %s", op->collection);
        return VD_OK;
    }
    if (op->payloads)
        for (size_t i = 0; i < op->n; i++) {
            if (!op->payloads[i]) continue;
            if (vd_json_check_object(op->payloads[i], op->payload_lens[i], &op->err) != VD_OK) {
                op->status = vd_err_prefix(&op->err, "upsert into %s: point %zu (id %" PRIu64
                                           ")", op->collection, i, op->ids[i]);
                return VD_OK;
            }
        }
    vd_collection *c = w->c;
    s = vd_index_add_batch(c->ix, op->ids, op->vectors, op->n, st->n_threads ? st->n_threads : 0,
                           NULL, NULL, &op->err);
    /* VD_INVALID is raised before anything changes; anything else may have changed it. */
    if (s != VD_INVALID) w->mutated = 1;
    if (s == VD_INVALID) {
        op->status = vd_err_prefix(&op->err, "upsert into %s", op->collection);
        return VD_OK;
    }
    if (s != VD_OK) {
        vd_err_set(err, s, "upsert into %s: %s", op->collection, op->err.msg);
        op->err.code = VD_OK;
        op->err.msg[0] = 0;
        return s;
    }
    if ((s = pending_add(w, op->ids, op->n, err)) != VD_OK) return s;
    for (size_t i = 0; i < op->n; i++) {
        uint8_t kb[12];
        vd_key_point(kb, c->cid, op->ids[i]);
        MDB_val k = {12, kb}, v;
        uint32_t slot = UINT32_MAX;
        int rc = mdb_get(g->txn, st->dbi_points, &k, &v);
        if (rc == 0 && v.mv_size >= 4) {
            slot = vd_get_u32le(v.mv_data);
            w->payload_bytes -= v.mv_size - 4;
        } else if (rc == MDB_NOTFOUND) {
            w->count++;
        } else {
            return gfail(g, rc ? rc : MDB_CORRUPTED, err, "reading a point");
        }
        size_t plen = op->payloads && op->payloads[i] ? op->payload_lens[i] : 0;
        v.mv_size = 4 + plen;
        if ((rc = mdb_put(g->txn, st->dbi_points, &k, &v, MDB_RESERVE)))
            return gfail(g, rc, err, "writing a point");
        vd_put_u32le(v.mv_data, slot);
        if (plen) memcpy((uint8_t *)v.mv_data + 4, op->payloads[i], plen);
        w->payload_bytes += plen;
    }
    op->n_done = op->n;
    return VD_OK;
}

static vd_status op_delete(group *g, vd_op *op, vd_err *err)
{
    vd_store *st = g->st;
    wcoll *w;
    if (!op->collection || vd_name_check(op->collection, &op->err) != VD_OK) {
        op->status = op->collection ? op->err.code
                                    : vd_err_set(&op->err, VD_INVALID, "no collection named");
        return VD_OK;
    }
    vd_status s = gfind(g, op->collection, &w, err);
    if (s != VD_OK) return s;
    if (!w) {
        op->status = vd_err_set(&op->err, VD_NOTFOUND, "collection %s does not exist",
                                op->collection);
        return VD_OK;
    }
    if (op->n == 0 || !op->ids) {
        op->status = vd_err_set(&op->err, VD_INVALID, "delete from %s: empty batch",
                                op->collection);
        return VD_OK;
    }
    s = check_distinct(op->ids, op->n, &op->err);
    if (s == VD_NOMEM) return vd_err_set(err, VD_NOMEM, "%s", op->err.msg);
    if (s != VD_OK) {
        op->status = vd_err_prefix(&op->err, "delete from %s", op->collection);
        return VD_OK;
    }
    vd_collection *c = w->c;
    for (size_t i = 0; i < op->n; i++) {
        uint8_t kb[12];
        vd_key_point(kb, c->cid, op->ids[i]);
        MDB_val k = {12, kb}, v;
        int rc = mdb_get(g->txn, st->dbi_points, &k, &v);
        if (rc == MDB_NOTFOUND) continue;
        if (rc) return gfail(g, rc, err, "reading a point");
        size_t plen = v.mv_size >= 4 ? v.mv_size - 4 : 0;
        w->mutated = 1;
        s = vd_index_remove(c->ix, op->ids[i], err);
        if (s == VD_NOTFOUND)
            return vd_err_set(err, VD_CORRUPT, "delete from %s: id %" PRIu64 " is stored but "
                              "not in the index", op->collection, op->ids[i]);
        if (s != VD_OK) return s;
        if ((rc = mdb_del(g->txn, st->dbi_points, &k, NULL)))
            return gfail(g, rc, err, "deleting a point");
        w->count--;
        w->payload_bytes -= plen;
        op->n_done++;
    }
    return VD_OK;
}

/* ---- persisting an index's changes ------------------------------------------------------- */
typedef struct pctx {
    group *g;
    wcoll *w;
    vd_id_slot *pairs; /* NEW filled slots */
    size_t n_pairs, cap_pairs;
    uint64_t *repoint; /* ids whose points record may name a slot just freed or refilled */
    size_t n_repoint, cap_repoint;
    vd_status s;
    vd_err *err;
} pctx;

static int grow_arr(void **a, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return 1;
    size_t c = *cap ? *cap * 2 : 256;
    void *p = vd_realloc(*a, c * elem);
    if (!p) return 0;
    *a = p;
    *cap = c;
    return 1;
}

/* If the vectors record of `slot` exists and holds an id other than `new_id`, remember that
 * id: its points record may name this slot. */
static int note_old_occupant(pctx *x, const MDB_val *k, uint64_t new_id)
{
    vd_store *st = x->g->st;
    MDB_val v;
    int rc = mdb_get(x->g->txn, st->dbi_vectors, (MDB_val *)k, &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    if (v.mv_size < 8) return 0;
    uint64_t old = vd_get_u64le(v.mv_data);
    if (old == new_id) return 0;
    if (!grow_arr((void **)&x->repoint, &x->cap_repoint, x->n_repoint, sizeof(uint64_t)))
        return ENOMEM;
    x->repoint[x->n_repoint++] = old;
    return 0;
}

static int on_change(void *ctx, uint32_t slot, vd_change_kind kind)
{
    pctx *x = ctx;
    group *g = x->g;
    vd_store *st = g->st;
    vd_collection *c = x->w->c;
    uint8_t kb[8];
    vd_key_slot(kb, c->cid, slot);
    MDB_val k = {8, kb}, v;
    uint64_t id = 0;
    const float *vec = NULL;
    int rc = 0;
    int filled = kind != VD_CHANGE_FREED &&
                 vd_index_slot_vector(c->ix, slot, &id, &vec, NULL) == VD_OK;
    if (!filled) {
        if ((rc = note_old_occupant(x, &k, UINT64_MAX))) goto fail;
        rc = mdb_del(g->txn, st->dbi_vectors, &k, NULL);
        if (rc && rc != MDB_NOTFOUND) goto fail;
        rc = mdb_del(g->txn, st->dbi_links, &k, NULL);
        if (rc && rc != MDB_NOTFOUND) goto fail;
        return 0;
    }
    if (kind == VD_CHANGE_NEW) {
        if ((rc = note_old_occupant(x, &k, id))) goto fail;
        size_t vb = (size_t)c->params.dim * sizeof(float);
        v.mv_size = 8 + vb;
        if ((rc = mdb_put(g->txn, st->dbi_vectors, &k, &v, MDB_RESERVE))) goto fail;
        vd_put_u64le(v.mv_data, id);
        memcpy((uint8_t *)v.mv_data + 8, vec, vb);
        if (!grow_arr((void **)&x->pairs, &x->cap_pairs, x->n_pairs, sizeof(vd_id_slot))) {
            rc = ENOMEM;
            goto fail;
        }
        x->pairs[x->n_pairs++] = (vd_id_slot){id, slot};
    }
    size_t len = 0;
    uint8_t *buf = vd_storage__scratch(st, 1024);
    if (!buf) {
        rc = ENOMEM;
        goto fail;
    }
    vd_status s = vd_index_slot_links(c->ix, slot, buf, st->buf_cap, &len, x->err);
    if (s == VD_FULL) {
        if (!(buf = vd_storage__scratch(st, len))) {
            rc = ENOMEM;
            goto fail;
        }
        s = vd_index_slot_links(c->ix, slot, buf, st->buf_cap, &len, x->err);
    }
    if (s != VD_OK) {
        x->s = s;
        vd_err_prefix(x->err, "collection %s: serializing slot %u", c->params.name, slot);
        return 1;
    }
    v.mv_size = len;
    v.mv_data = buf;
    if ((rc = mdb_put(g->txn, st->dbi_links, &k, &v, 0))) goto fail;
    return 0;
fail:
    if (rc == ENOMEM) {
        x->s = vd_err_set(x->err, VD_NOMEM, "out of memory persisting collection %s",
                          c->params.name);
    } else {
        x->s = gfail(g, rc, x->err, "writing the graph");
    }
    return 1;
}

/* Collects (id, slot) pairs of the collection's stored vectors for the ids in sorted `want`. */
static vd_status scan_slots(group *g, wcoll *w, const uint64_t *want, size_t n_want,
                            vd_id_slot **out, size_t *n_out, vd_err *err)
{
    MDB_cursor *cur = NULL;
    vd_id_slot *a = NULL;
    size_t n = 0, cap = 0;
    uint8_t kb[8];
    vd_key_slot(kb, w->c->cid, 0);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_open(g->txn, g->st->dbi_vectors, &cur);
    if (rc) return gfail(g, rc, err, "scanning vectors");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == 8 && vd_get_u32be(k.mv_data) == w->c->cid) {
        if (v.mv_size >= 8) {
            uint64_t id = vd_get_u64le(v.mv_data);
            if (bsearch(&id, want, n_want, sizeof *want, cmp_u64)) {
                if (!grow_arr((void **)&a, &cap, n, sizeof *a)) {
                    mdb_cursor_close(cur);
                    vd_free(a);
                    return vd_err_set(err, VD_NOMEM, "out of memory scanning vectors");
                }
                a[n++] = (vd_id_slot){id, vd_get_u32be((uint8_t *)k.mv_data + 4)};
            }
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        vd_free(a);
        return gfail(g, rc, err, "scanning vectors");
    }
    vd_storage__sort_pairs(a, n);
    *out = a;
    *n_out = n;
    return VD_OK;
}

/* Rewrites the slot of the points record of `id` if it differs. */
static int set_point_slot(group *g, wcoll *w, uint64_t id, uint32_t slot)
{
    vd_store *st = g->st;
    uint8_t kb[12];
    vd_key_point(kb, w->c->cid, id);
    MDB_val k = {12, kb}, v;
    int rc = mdb_get(g->txn, st->dbi_points, &k, &v);
    if (rc) return rc;
    if (v.mv_size < 4 || vd_get_u32le(v.mv_data) == slot) return 0;
    uint8_t *buf = vd_storage__scratch(st, v.mv_size);
    if (!buf) return ENOMEM;
    memcpy(buf, v.mv_data, v.mv_size);
    vd_put_u32le(buf, slot);
    v.mv_data = buf;
    return mdb_put(g->txn, st->dbi_points, &k, &v, 0);
}

static vd_status persist(group *g, wcoll *w, vd_err *err)
{
    vd_store *st = g->st;
    vd_collection *c = w->c;
    vd_id_slot *scan = NULL;
    size_t n_scan = 0;
    pctx x = {.g = g, .w = w, .s = VD_OK, .err = err};
    vd_status s = VD_OK;
    int rc = 0;
    float *scratch = vscratch(g, c->params.dim);
    if (!scratch) return vd_err_set(err, VD_NOMEM, "out of memory persisting %s",
                                    c->params.name);
    if (vd_storage__changes(c->ix, on_change, &x) != 0) {
        s = x.s != VD_OK ? x.s : vd_err_set(err, VD_INTERNAL, "persisting %s failed",
                                             c->params.name);
        goto out;
    }
    vd_storage__sort_pairs(x.pairs, x.n_pairs);

    /* Point every id upserted in this group at the slot that holds it now. */
    if (w->n_pending > 1) qsort(w->pending, w->n_pending, sizeof *w->pending, cmp_u64);
    for (size_t i = 0; i < w->n_pending; i++) {
        uint64_t id = w->pending[i];
        if (i && id == w->pending[i - 1]) continue;
        uint8_t kb[12];
        vd_key_point(kb, c->cid, id);
        MDB_val k = {12, kb}, v;
        rc = mdb_get(g->txn, st->dbi_points, &k, &v);
        if (rc == MDB_NOTFOUND) continue; /* deleted later in the group */
        if (rc) goto fail_mdb;
        uint32_t slot;
        s = vd_storage__resolve_slot(c->ix, x.pairs, x.n_pairs, id, &slot, scratch, err);
        if (s == VD_NOTFOUND) {
            s = VD_OK;
            if (v.mv_size >= 4 && vd_get_u32le(v.mv_data) != UINT32_MAX) continue;
            s = vd_err_set(err, VD_INTERNAL, "collection %s: the index reported no slot for "
                           "upserted id %" PRIu64, c->params.name, id);
            goto out;
        }
        if (s != VD_OK) goto out;
        if ((rc = set_point_slot(g, w, id, slot))) goto fail_mdb;
    }

    /* Ids whose slot was freed or refilled under them (see the essay). */
    if (x.n_repoint) {
        qsort(x.repoint, x.n_repoint, sizeof *x.repoint, cmp_u64);
        int scanned = 0;
        for (size_t i = 0; i < x.n_repoint; i++) {
            uint64_t id = x.repoint[i];
            if (i && id == x.repoint[i - 1]) continue;
            uint8_t kb[12], ks[8];
            vd_key_point(kb, c->cid, id);
            MDB_val k = {12, kb}, v;
            rc = mdb_get(g->txn, st->dbi_points, &k, &v);
            if (rc == MDB_NOTFOUND) continue;
            if (rc) goto fail_mdb;
            uint32_t cur_slot = vd_get_u32le(v.mv_data);
            vd_key_slot(ks, c->cid, cur_slot);
            MDB_val k2 = {8, ks}, v2;
            rc = mdb_get(g->txn, st->dbi_vectors, &k2, &v2);
            if (rc == 0 && v2.mv_size >= 8 && vd_get_u64le(v2.mv_data) == id) continue;
            if (rc && rc != MDB_NOTFOUND) goto fail_mdb;
            uint32_t slot;
            s = vd_storage__resolve_slot(c->ix, x.pairs, x.n_pairs, id, &slot, scratch, err);
            if (s == VD_NOTFOUND) {
                if (!scanned) {
                    s = scan_slots(g, w, x.repoint, x.n_repoint, &scan, &n_scan, err);
                    if (s != VD_OK) goto out;
                    scanned = 1;
                }
                s = vd_storage__resolve_slot(c->ix, scan, n_scan, id, &slot, scratch, err);
            }
            if (s == VD_NOTFOUND) {
                s = vd_err_set(err, VD_INTERNAL, "collection %s: no stored slot holds live "
                               "id %" PRIu64, c->params.name, id);
                goto out;
            }
            if (s != VD_OK) goto out;
            if ((rc = set_point_slot(g, w, id, slot))) goto fail_mdb;
        }
    }
    if ((rc = put_catalog(st, g->txn, c, w->count, w->payload_bytes))) goto fail_mdb;
    goto out;
fail_mdb:
    s = rc == ENOMEM ? vd_err_set(err, VD_NOMEM, "out of memory persisting %s", c->params.name)
                     : gfail(g, rc, err, "writing points");
out:
    vd_free(x.pairs);
    vd_free(x.repoint);
    vd_free(scan);
    return s;
}

/* ---- the group --------------------------------------------------------------------------- */
static void group_release(group *g)
{
    for (size_t i = 0; i < g->n_w; i++) {
        vd_collection_release(g->w[i].c);
        vd_collection_release(g->w[i].old);
        vd_free(g->w[i].pending);
    }
    vd_free(g->w);
    g->w = NULL;
    g->n_w = g->cap_w = 0;
}

/* The commit failed or never happened: nothing may become visible. Catalog collections
 * whose index was mutated in place are marked for reload (see the essay). */
static void group_discard(group *g)
{
    for (size_t i = 0; i < g->n_w; i++) {
        wcoll *w = &g->w[i];
        if (!w->created && !w->old && w->mutated) w->c->needs_reload = 1;
    }
    group_release(g);
}

static vd_status catalog_reserve(vd_store *st, size_t extra, vd_err *err)
{
    pthread_mutex_lock(&st->cat_mu);
    vd_status s = VD_OK;
    if (st->n_colls + extra > st->cap_colls) {
        size_t cap = st->cap_colls ? st->cap_colls : 8;
        while (cap < st->n_colls + extra) cap *= 2;
        vd_collection **a = vd_realloc(st->colls, cap * sizeof *a);
        if (a) {
            st->colls = a;
            st->cap_colls = cap;
        } else {
            s = vd_err_set(err, VD_NOMEM, "out of memory growing the catalog");
        }
    }
    pthread_mutex_unlock(&st->cat_mu);
    return s;
}

/* After a durable commit: publish, and make created/dropped collections (in)visible. */
static void group_finish(group *g)
{
    vd_store *st = g->st;
    for (size_t i = 0; i < g->n_w; i++) {
        wcoll *w = &g->w[i];
        vd_collection *c = w->c;
        if (w->dropped) {
            if (w->old) vd_storage__catalog_remove(st, w->old);
            else if (!w->created) vd_storage__catalog_remove(st, c);
            continue;
        }
        c->count = w->count;
        c->payload_bytes = w->payload_bytes;
        c->needs_reload = 0;
        /* Clear first: publish itself repairs around removed nodes and may vacuum; those
         * changes stay marked and are persisted by the next group (or the flush at close). */
        vd_index_changes_clear(c->ix);
        vd_index_publish(c->ix);
        vd_storage__update_bytes(c);
        if (w->created || w->old) {
            vd_storage__coll_ref(c);
            /* Room was reserved before the commit, so this cannot fail. */
            vd_storage__catalog_put(st, c, NULL);
        }
    }
    group_release(g);
}

static size_t estimate_bytes(vd_store *st, const vd_op *ops, size_t n_ops)
{
    size_t need = (size_t)1 << 20;
    for (size_t i = 0; i < n_ops; i++) {
        const vd_op *op = &ops[i];
        if (op->kind == VD_OP_CREATE) {
            need += 16384;
        } else if (op->kind == VD_OP_UPSERT) {
            vd_collection *c = op->collection ? vd_storage__catalog_find(st, op->collection) : NULL;
            uint32_t dim = c ? c->params.dim : 4096, m = c ? c->params.m : 16;
            vd_collection_release(c);
            size_t per = (size_t)dim * 4 + 8 * (size_t)m * 4 + 160;
            if (op->payloads && op->payload_lens)
                for (size_t j = 0; j < op->n; j++) need += op->payload_lens[j];
            need += op->n * per * 3; /* new records, rewritten neighbours, copied pages */
        } else if (op->kind == VD_OP_DELETE) {
            need += op->n * 2048;
        } else {
            need += 65536;
        }
    }
    return need;
}

static vd_status write_once(vd_store *st, vd_op *ops, size_t n_ops, group *g, vd_err *err)
{
    vd_status s = VD_OK;
    int rc = mdb_txn_begin(st->env, NULL, 0, &g->txn);
    if (rc) return gfail(g, rc, err, "beginning a write transaction");
    size_t n_created = 0;
    for (size_t i = 0; i < n_ops && s == VD_OK; i++) {
        vd_op *op = &ops[i];
        op->status = VD_OK;
        op->err.code = VD_OK;
        op->err.msg[0] = 0;
        op->n_done = 0;
        switch (op->kind) {
        case VD_OP_CREATE: s = op_create(g, op, err); n_created++; break;
        case VD_OP_DROP: s = op_drop(g, op, err); break;
        case VD_OP_UPSERT: s = op_upsert(g, op, err); break;
        case VD_OP_DELETE: s = op_delete(g, op, err); break;
        default:
            op->status = vd_err_set(&op->err, VD_INVALID, "unknown operation kind %d",
                                    (int)op->kind);
        }
    }
    for (size_t i = 0; i < g->n_w && s == VD_OK; i++)
        if (!g->w[i].dropped && (g->w[i].mutated || g->w[i].old))
            s = persist(g, &g->w[i], err);
    if (s == VD_OK) s = catalog_reserve(st, n_created + g->n_w, err);
    if (s != VD_OK) {
        mdb_txn_abort(g->txn);
        g->txn = NULL;
        return s;
    }
    rc = mdb_txn_commit(g->txn); /* synced: the environment has no MDB_NOSYNC */
    g->txn = NULL;
    if (rc) return gfail(g, rc, err, "committing");
    return VD_OK;
}

vd_status vd_store_write(vd_store *st, vd_op *ops, size_t n_ops, vd_err *err)
{
    if (st->read_only)
        return vd_err_set(err, VD_INVALID, "%s is open read-only", st->dir);
    if (n_ops == 0) return VD_OK;
    size_t need = estimate_bytes(st, ops, n_ops);
    for (int attempt = 0;; attempt++) {
        if (vd_storage__pregrow || attempt > 0) {
            size_t used = vd_storage__used_bytes(st);
            if (attempt > 0 || used + need > st->map_bytes) {
                vd_status gs = vd_storage__grow(st, need, err);
                if (gs != VD_OK) return gs;
            }
        }
        group g = {.st = st};
        vd_status s = write_once(st, ops, n_ops, &g, err);
        vd_free(g.vscratch);
        if (s == VD_OK) {
            group_finish(&g);
            return VD_OK;
        }
        group_discard(&g);
        if (g.mdb_rc != MDB_MAP_FULL || attempt + 1 >= MAX_ATTEMPTS) {
            for (size_t i = 0; i < n_ops; i++) {
                ops[i].n_done = 0;
                if (ops[i].status == VD_OK) {
                    ops[i].status = s;
                    vd_err_set(&ops[i].err, s, "not applied: the group failed");
                }
            }
            return s;
        }
        atomic_fetch_add(&vd_storage__n_retries, 1);
        vd_log(VD_LOG_INFO, "storage: map full in %s; growing and re-running the group", st->dir);
    }
}

/* ---- import ------------------------------------------------------------------------------ */
static int skip_change(void *ctx, uint32_t slot, vd_change_kind kind)
{
    (void)ctx; (void)slot; (void)kind;
    return 0;
}

static vd_status import_once(vd_store *st, const vd_collection_params *p, vd_index *ix,
                             size_t n, const uint64_t *ids, const uint32_t *slots,
                             const uint8_t *const *payloads, const uint32_t *payload_lens,
                             int replace, vd_progress_fn progress, void *ctx, vd_collection *c,
                             int *mdb_rc, vd_err *err)
{
    MDB_txn *txn = NULL;
    vd_status s = VD_OK;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    vd_index_header hdr;
    vd_index_header_get(ix, &hdr);
    size_t total = (size_t)hdr.n_slots + n, done = 0;
    uint64_t t_last = vd_now_ns();
    if (rc) goto fail_mdb;
    MDB_val k = {strlen(p->name), (void *)p->name}, v;
    rc = mdb_get(txn, st->dbi_catalog, &k, &v);
    if (rc == 0) {
        if (!replace) {
            s = vd_err_set(err, VD_EXISTS, "collection %s already exists", p->name);
            goto fail;
        }
        vd_catalog_rec r;
        if ((s = vd_storage__catalog_decode(p->name, k.mv_size, v.mv_data, v.mv_size, &r, err)))
            goto fail;
        if ((rc = del_prefix(txn, st->dbi_points, r.cid)) ||
            (rc = del_prefix(txn, st->dbi_vectors, r.cid)) ||
            (rc = del_prefix(txn, st->dbi_links, r.cid)))
            goto fail_mdb;
    } else if (rc != MDB_NOTFOUND) {
        goto fail_mdb;
    }
    MDB_val km = {15, "next_collection"}, vm;
    if ((rc = mdb_get(txn, st->dbi_meta, &km, &vm))) goto fail_mdb;
    if (vm.mv_size != 4 || vd_get_u32le(vm.mv_data) == UINT32_MAX) {
        s = vd_err_set(err, VD_CORRUPT, "%s: next collection id malformed", st->dir);
        goto fail;
    }
    c->cid = vd_get_u32le(vm.mv_data);
    if ((rc = put_u32(txn, st->dbi_meta, "next_collection", c->cid + 1))) goto fail_mdb;
    size_t vb = (size_t)p->dim * sizeof(float);
    for (uint32_t slot = 0; slot < hdr.n_slots; slot++, done++) {
        uint64_t id;
        const float *vec;
        if (vd_index_slot_vector(ix, slot, &id, &vec, NULL) != VD_OK) continue;
        uint8_t kb[8];
        vd_key_slot(kb, c->cid, slot);
        MDB_val ks = {8, kb}, vs = {8 + vb, NULL};
        /* Slots ascend, so MDB_APPEND fills pages sequentially without searching. */
        if ((rc = mdb_put(txn, st->dbi_vectors, &ks, &vs, MDB_RESERVE | MDB_APPEND)))
            goto fail_mdb;
        vd_put_u64le(vs.mv_data, id);
        memcpy((uint8_t *)vs.mv_data + 8, vec, vb);
        size_t len = 0;
        uint8_t *buf = vd_storage__scratch(st, 1024);
        s = buf ? vd_index_slot_links(ix, slot, buf, st->buf_cap, &len, err) : VD_NOMEM;
        if (s == VD_FULL) {
            buf = vd_storage__scratch(st, len);
            s = buf ? vd_index_slot_links(ix, slot, buf, st->buf_cap, &len, err) : VD_NOMEM;
        }
        if (s == VD_NOMEM) s = vd_err_set(err, VD_NOMEM, "out of memory importing %s", p->name);
        if (s != VD_OK) goto fail;
        MDB_val vl = {len, buf};
        if ((rc = mdb_put(txn, st->dbi_links, &ks, &vl, MDB_APPEND))) goto fail_mdb;
        if (progress && (done & 0xFFF) == 0 && vd_now_ns() - t_last > 500000000ull) {
            t_last = vd_now_ns();
            progress(ctx, done, total);
        }
    }
    uint64_t payload_bytes = 0;
    for (size_t i = 0; i < n; i++, done++) {
        uint8_t kb[12];
        vd_key_point(kb, c->cid, ids[i]);
        size_t plen = payloads && payloads[i] ? payload_lens[i] : 0;
        MDB_val kp = {12, kb}, vp = {4 + plen, NULL};
        if ((rc = mdb_put(txn, st->dbi_points, &kp, &vp, MDB_RESERVE))) goto fail_mdb;
        vd_put_u32le(vp.mv_data, slots[i]);
        if (plen) memcpy((uint8_t *)vp.mv_data + 4, payloads[i], plen);
        payload_bytes += plen;
        if (progress && (done & 0xFFF) == 0 && vd_now_ns() - t_last > 500000000ull) {
            t_last = vd_now_ns();
            progress(ctx, done, total);
        }
    }
    c->count = n;
    c->payload_bytes = payload_bytes;
    if ((rc = put_catalog(st, txn, c, n, payload_bytes))) goto fail_mdb;
    if ((s = catalog_reserve(st, 1, err)) != VD_OK) goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) goto fail_mdb;
    if (progress) progress(ctx, total, total);
    return VD_OK;
fail_mdb:
    *mdb_rc = rc;
    s = vd_storage__mdb_err(st, rc, err, "importing a collection");
fail:
    if (txn) mdb_txn_abort(txn);
    return s;
}

vd_status vd_store_import(vd_store *st, const vd_collection_params *p, vd_index *ix, size_t n,
                          const uint64_t *ids, const uint8_t *const *payloads,
                          const uint32_t *payload_lens, int replace, vd_progress_fn progress,
                          void *progress_ctx, vd_err *err)
{
    vd_collection *c = NULL;
    vd_id_slot *pairs = NULL;
    uint32_t *slots = NULL;
    float *scratch = NULL;
    vd_status s = VD_OK;
    if (st->read_only) return vd_err_set(err, VD_INVALID, "%s is open read-only", st->dir);
    if (!p || !ix) return vd_err_set(err, VD_INVALID, "import: parameters or index missing");
    vd_collection_params q = *p;
    q.name[VD_NAME_MAX] = 0;
    if ((s = vd_storage__params_check(&q, err)) != VD_OK) return s;
    const vd_index_params *ip = vd_index_params_of(ix);
    if (ip->dim != q.dim || ip->metric != q.metric || ip->m != q.m ||
        ip->ef_construction != q.ef_construction)
        return vd_err_set(err, VD_INVALID, "import %s: the index was built with dim %u, %s, "
                          "m %u, ef_construction %u; the collection asks for dim %u, %s, m %u, "
                          "ef_construction %u", q.name, ip->dim, vd_metric_name(ip->metric),
                          ip->m, ip->ef_construction, q.dim, vd_metric_name(q.metric), q.m,
                          q.ef_construction);
    if (n && !ids) return vd_err_set(err, VD_INVALID, "import %s: ids missing", q.name);
    if (payloads && !payload_lens)
        return vd_err_set(err, VD_INVALID, "import %s: payload lengths missing", q.name);
    if (vd_index_count(ix) != n)
        return vd_err_set(err, VD_INVALID, "import %s: the index holds %zu points, %zu ids "
                          "given", q.name, vd_index_count(ix), n);
    if (payloads)
        for (size_t i = 0; i < n; i++)
            if (payloads[i] &&
                vd_json_check_object(payloads[i], payload_lens[i], err) != VD_OK)
                return vd_err_prefix(err, "import %s: point %zu (id %" PRIu64 ")", q.name, i,
                                     ids[i]);
    vd_index_header hdr;
    vd_index_header_get(ix, &hdr);
    size_t n_pairs = 0;
    pairs = vd_malloc(((size_t)hdr.n_slots + 1) * sizeof *pairs);
    slots = vd_malloc((n + 1) * sizeof *slots);
    scratch = vd_malloc((size_t)q.dim * sizeof *scratch);
    c = vd_storage__coll_new();
    if (!pairs || !slots || !scratch || !c) {
        s = vd_err_set(err, VD_NOMEM, "out of memory importing %s", q.name);
        goto out;
    }
    for (uint32_t slot = 0; slot < hdr.n_slots; slot++) {
        uint64_t id;
        const float *vec;
        if (vd_index_slot_vector(ix, slot, &id, &vec, NULL) == VD_OK)
            pairs[n_pairs++] = (vd_id_slot){id, slot};
    }
    vd_storage__sort_pairs(pairs, n_pairs);
    for (size_t i = 0; i < n; i++) {
        s = vd_storage__resolve_slot(ix, pairs, n_pairs, ids[i], &slots[i], scratch, err);
        if (s == VD_NOTFOUND)
            s = vd_err_set(err, VD_INVALID, "import %s: id %" PRIu64 " is not in the index",
                           q.name, ids[i]);
        if (s != VD_OK) goto out;
    }
    c->params = q;
    c->created_unix_s = (uint64_t)time(NULL);
    c->seed = ip->seed;
    c->ix = ix;
    size_t per = (size_t)q.dim * 4 + 8 * (size_t)q.m * 4 + 160;
    size_t need = (size_t)hdr.n_slots * per + ((size_t)1 << 20);
    if (payloads)
        for (size_t i = 0; i < n; i++) need += payload_lens[i];
    for (int attempt = 0;; attempt++) {
        size_t used = vd_storage__used_bytes(st);
        if (attempt > 0 || (vd_storage__pregrow && used + need * 2 > st->map_bytes))
            if ((s = vd_storage__grow(st, need, err)) != VD_OK) goto out;
        int mdb_rc = 0;
        s = import_once(st, &q, ix, n, ids, slots, payloads, payload_lens, replace, progress,
                        progress_ctx, c, &mdb_rc, err);
        if (s == VD_OK || mdb_rc != MDB_MAP_FULL || attempt + 1 >= MAX_ATTEMPTS) break;
        atomic_fetch_add(&vd_storage__n_retries, 1);
    }
    if (s != VD_OK) goto out;
    /* The store adopts ix. A non-deferred index would publish a later group's changes before
     * its commit, so such an index is reloaded (deferred) before its first write. */
    c->needs_reload = !ip->deferred_publish;
    vd_index_set_ef_search(ix, q.ef_search);
    vd_storage__changes(ix, skip_change, NULL); /* clear forgets what a walk reported */
    vd_index_changes_clear(ix);
    vd_index_publish(ix);
    vd_storage__update_bytes(c);
    vd_storage__catalog_put(st, c, NULL); /* room reserved inside the transaction */
    c = NULL;
out:
    if (c) {
        c->ix = NULL; /* on failure the caller keeps the index */
        vd_collection_release(c);
    }
    vd_free(pairs);
    vd_free(slots);
    vd_free(scratch);
    return s;
}

/* ---- flush at close ---------------------------------------------------------------------- */
static int any_change(void *ctx, uint32_t slot, vd_change_kind kind)
{
    (void)ctx; (void)slot; (void)kind;
    return 1;
}

int vd_storage__changes(const vd_index *ix, vd_change_fn fn, void *ctx)
{
    vd_index_header h;
    vd_index_header_get(ix, &h);
    return h.n_slots ? vd_index_changes(ix, fn, ctx) : 0;
}

int vd_storage__has_changes(const vd_index *ix)
{
    return vd_storage__changes(ix, any_change, NULL);
}

vd_status vd_storage__flush(vd_store *st, vd_err *err)
{
    if (st->read_only || !st->env) return VD_OK;
    for (int attempt = 0;; attempt++) {
        group g = {.st = st};
        vd_status s = VD_OK;
        int rc = mdb_txn_begin(st->env, NULL, 0, &g.txn);
        if (rc) return vd_storage__mdb_err(st, rc, err, "flushing the graph");
        pthread_mutex_lock(&st->cat_mu);
        for (size_t i = 0; i < st->n_colls && s == VD_OK; i++) {
            vd_collection *c = st->colls[i];
            if (c->needs_reload || !vd_storage__has_changes(c->ix)) continue;
            wcoll *w = wadd(&g, err);
            if (!w) {
                s = VD_NOMEM;
                break;
            }
            vd_storage__coll_ref(c);
            w->c = c;
            w->mutated = 1;
            w->count = c->count;
            w->payload_bytes = c->payload_bytes;
        }
        pthread_mutex_unlock(&st->cat_mu);
        for (size_t i = 0; i < g.n_w && s == VD_OK; i++) s = persist(&g, &g.w[i], err);
        if (s == VD_OK && g.n_w) {
            rc = mdb_txn_commit(g.txn);
            g.txn = NULL;
            if (rc) s = gfail(&g, rc, err, "flushing the graph");
        }
        if (g.txn) mdb_txn_abort(g.txn);
        if (s == VD_OK)
            for (size_t i = 0; i < g.n_w; i++) vd_index_changes_clear(g.w[i].c->ix);
        vd_free(g.vscratch);
        group_release(&g);
        if (s == VD_OK || g.mdb_rc != MDB_MAP_FULL || attempt + 1 >= MAX_ATTEMPTS) return s;
        if ((s = vd_storage__grow(st, (size_t)1 << 24, err)) != VD_OK) return s;
    }
}
