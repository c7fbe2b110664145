/* storage/write.c: the group commit. vd_store_write applies a group of operations (create,
 * drop, upsert, delete) in ONE LMDB transaction and commits once.
 *
 * How memory and disk stay in step: every index is opened with deferred_publish, so the
 * writer mutates it freely while readers keep seeing the last published state. A group
 *  1. applies each op to the in-memory index (validating first: an invalid op gets its own
 *     status and touches neither the index nor the transaction) and writes its points
 *     records (payload, slot) into the transaction;
 *  2. persists every touched index (persist.c: NEW / LINKS / FREED slot records, each
 *     upserted id pointed at the slot that holds it, the catalog record);
 *  3. commits (synced). Only then are the indexes published, their change sets cleared and
 *     created/dropped collections made visible/invisible in the catalog.
 * If anything fails before the commit is durable, nothing is published: the touched indexes
 * hold unpublished changes no reader has seen, LMDB holds the last committed state, so the
 * collection is marked needs_reload and the next group that touches it first reloads it
 * from LMDB into a fresh index (swapped into the catalog when that group commits). On
 * MDB_MAP_FULL the group is discarded this way and re-run by vd_storage__write_txn after the
 * map grew: the retry starts from LMDB's state, never from half-applied memory.
 *
 * Map growth: before a group, the writer estimates the bytes it will dirty and the driver
 * grows the map ahead when the free room is short (no retry needed in the common case).
 *
 * Threads: one writer thread; the work inside an upsert fans out to st->n_threads index
 * workers (vd_index_add_batch), the order and the commit stay on this thread. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "storage/storage_int.h"

typedef struct group {
    vd_store *st;
    vd_txn *t; /* the current attempt's transaction */
    vd_op *ops;
    size_t n_ops;
    vd_wcoll *w;
    size_t n_w, cap_w;
} group;

/* ---- the group's view of collections ------------------------------------------------------ */
static vd_wcoll *wadd(group *g, vd_err *err)
{
    if (g->n_w == g->cap_w) {
        size_t cap = g->cap_w ? g->cap_w * 2 : 4;
        vd_wcoll *a = vd_realloc(g->w, cap * sizeof *a);
        if (!a) {
            vd_err_set(err, VD_NOMEM, "out of memory in a write group");
            return NULL;
        }
        g->w = a;
        g->cap_w = cap;
    }
    vd_wcoll *w = &g->w[g->n_w++];
    memset(w, 0, sizeof *w);
    return w;
}

/* A fresh copy of catalog object c from the group's transaction (the last committed state),
 * for a collection whose index may hold changes of a failed group. */
static vd_status reload(group *g, const vd_collection *c, vd_collection **out, vd_err *err)
{
    vd_catalog_rec r;
    int found;
    vd_status s = vd_storage__catalog_get(g->t, c->params.name, &r, &found, err);
    if (s == VD_OK && !found)
        s = vd_err_set(err, VD_INTERNAL, "collection %s is loaded but not stored",
                       c->params.name);
    return s == VD_OK ? vd_storage__load(g->t, &r, NULL, out, err) : s;
}

/* Finds `name` as this group sees it. *out NULL (and VD_OK) when absent. */
static vd_status gfind(group *g, const char *name, vd_wcoll **out, vd_err *err)
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
    vd_status s = c->needs_reload ? reload(g, c, &fresh, err) : VD_OK;
    vd_wcoll *w = s == VD_OK ? wadd(g, err) : NULL;
    if (!w) {
        vd_collection_release(fresh);
        vd_collection_release(c);
        return s != VD_OK ? s : VD_NOMEM;
    }
    w->c = fresh ? fresh : c;
    w->old = fresh ? c : NULL;
    w->count = w->c->count;
    w->payload_bytes = w->c->payload_bytes;
    *out = w;
    return VD_OK;
}

static vd_status pending_add(vd_wcoll *w, const uint64_t *ids, size_t n, vd_err *err)
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

/* ---- operations --------------------------------------------------------------------------
 * Each returns VD_OK when the op was applied or rejected (op->status tells), or a group
 * failure (NOMEM, LMDB, damage) with err set. */
/* Sets the op's own status; the group goes on (VD_OK). */
static vd_status reject(vd_op *op, vd_status s)
{
    op->status = s;
    return VD_OK;
}

static vd_status op_create(group *g, vd_op *op, vd_err *err)
{
    vd_collection_params p = op->params;
    p.name[VD_NAME_MAX] = 0;
    if (vd_storage__params_check(&p, &op->err) != VD_OK) return reject(op, op->err.code);
    vd_wcoll *w;
    vd_status s = gfind(g, p.name, &w, err);
    if (s != VD_OK) return s;
    if (w) return reject(op, vd_err_set(&op->err, VD_EXISTS, "collection %s already exists",
                                        p.name));
    vd_collection *c = vd_storage__coll_new();
    if (!c) return vd_err_set(err, VD_NOMEM, "out of memory creating collection %s", p.name);
    if ((s = vd_storage__cid_take(g->t, &c->cid, err)) != VD_OK) goto fail;
    c->params = p;
    c->created_unix_s = (uint64_t)time(NULL);
    /* A function of the collection id only: the same writes into a fresh directory build the
     * same graph (reproducible bugs, comparable benchmarks). */
    c->seed = 0x9E3779B97F4A7C15ull * c->cid + 0x632BE59BD9B4E019ull;
    vd_index_params ip = {.dim = p.dim, .metric = p.metric, .m = p.m,
                          .ef_construction = p.ef_construction, .seed = c->seed,
                          .deferred_publish = 1, .quantization = p.quantization};
    if ((s = vd_index_open(&ip, &c->ix, &op->err)) != VD_OK) {
        vd_collection_release(c);
        if (s == VD_NOMEM) return vd_err_set(err, VD_NOMEM, "%s", op->err.msg);
        return reject(op, s);
    }
    vd_index_set_ef_search(c->ix, p.ef_search);
    if (!(w = wadd(g, err))) {
        s = VD_NOMEM;
        goto fail;
    }
    w->c = c;
    w->created = w->mutated = 1;
    return vd_storage__catalog_store(g->t, c, 0, 0, err);
fail:
    vd_collection_release(c);
    return s;
}

/* The collection an op names, validated: *out NULL (and VD_OK) when the op was rejected. */
static vd_status op_target(group *g, vd_op *op, vd_wcoll **out, vd_err *err)
{
    *out = NULL;
    if (!op->collection)
        return reject(op, vd_err_set(&op->err, VD_INVALID, "no collection named"));
    if (vd_name_check(op->collection, &op->err) != VD_OK) return reject(op, op->err.code);
    vd_status s = gfind(g, op->collection, out, err);
    if (s == VD_OK && !*out)
        reject(op, vd_err_set(&op->err, VD_NOTFOUND, "collection %s does not exist",
                              op->collection));
    return s;
}

static vd_status op_drop(group *g, vd_op *op, vd_err *err)
{
    vd_wcoll *w;
    vd_status s = op_target(g, op, &w, err);
    if (s != VD_OK || !w) return s;
    if ((s = vd_storage__collection_del(g->t, w->c->cid, err)) != VD_OK ||
        (s = vd_storage__catalog_del(g->t, op->collection, err)) != VD_OK)
        return s;
    w->dropped = 1;
    return VD_OK;
}

/* The checks an upsert (with_payloads) or delete makes before touching anything: VD_OK with
 * op->status set when the op is rejected, a group failure otherwise. */
static vd_status check_batch(vd_op *op, const char *what, int with_payloads, vd_err *err)
{
    /* Upserts leave the id rule to the index, which checks the whole batch before anything
     * changes; deletes never reach the index with a batch. */
    vd_status s = with_payloads ? VD_OK : vd_ids_check_distinct(op->ids, op->n, &op->err);
    if (s == VD_NOMEM) return vd_err_set(err, VD_NOMEM, "%s", op->err.msg);
    if (s != VD_OK) return reject(op, vd_err_prefix(&op->err, "%s %s", what, op->collection));
    if (!with_payloads || !op->payloads) return VD_OK;
    for (size_t i = 0; i < op->n; i++)
        if (op->payloads[i] &&
            vd_json_check_object(op->payloads[i], op->payload_lens[i], &op->err) != VD_OK)
            return reject(op, vd_err_prefix(&op->err, "%s %s: point %zu (id %" PRIu64 ")",
                                            what, op->collection, i, op->ids[i]));
    return VD_OK;
}

/* Points records of an applied upsert: the slot is resolved by persist. */
static vd_status upsert_points(group *g, vd_wcoll *w, const vd_op *op, vd_err *err)
{
    vd_collection *c = w->c;
    for (size_t i = 0; i < op->n; i++) {
        vd_point_rec r;
        int found;
        vd_status s = vd_storage__point_get(g->t, c->cid, &c->params, op->ids[i], &r, &found,
                                            err);
        if (s != VD_OK) return s;
        if (found) w->payload_bytes -= r.payload_len;
        else w->count++;
        size_t plen = op->payloads && op->payloads[i] ? op->payload_lens[i] : 0;
        s = vd_storage__point_put(g->t, c->cid, op->ids[i],
                                  found ? r.slot : VD_SLOT_UNRESOLVED,
                                  plen ? op->payloads[i] : NULL, plen, 0, err);
        if (s != VD_OK) return s;
        w->payload_bytes += plen;
    }
    return VD_OK;
}

static vd_status op_upsert(group *g, vd_op *op, vd_err *err)
{
    vd_wcoll *w;
    vd_status s = op_target(g, op, &w, err);
    if (s != VD_OK || !w) return s;
    if (op->n == 0)
        return reject(op, vd_err_set(&op->err, VD_INVALID, "upsert into %s: empty batch",
                                     op->collection));
    if (!op->ids || !op->vectors || (op->payloads && !op->payload_lens))
        return reject(op, vd_err_set(&op->err, VD_INVALID, "upsert into %s: ids, vectors or "
                                     "payload lengths missing", op->collection));
    if ((s = check_batch(op, "upsert into", 1, err)) != VD_OK || op->status != VD_OK) return s;
    s = vd_index_add_batch(w->c->ix, op->ids, op->vectors, op->n, g->st->n_threads, NULL, NULL,
                           &op->err);
    /* VD_INVALID is raised before anything changes; anything else may have changed it. */
    if (s == VD_INVALID)
        return reject(op, vd_err_prefix(&op->err, "upsert into %s", op->collection));
    w->mutated = 1;
    if (s != VD_OK) {
        vd_err_set(err, s, "upsert into %s: %s", op->collection, op->err.msg);
        op->err.code = VD_OK;
        op->err.msg[0] = 0;
        return s;
    }
    if ((s = pending_add(w, op->ids, op->n, err)) != VD_OK ||
        (s = upsert_points(g, w, op, err)) != VD_OK)
        return s;
    op->n_done = op->n;
    return VD_OK;
}

static vd_status op_delete(group *g, vd_op *op, vd_err *err)
{
    vd_wcoll *w;
    vd_status s = op_target(g, op, &w, err);
    if (s != VD_OK || !w) return s;
    if (op->n == 0 || !op->ids)
        return reject(op, vd_err_set(&op->err, VD_INVALID, "delete from %s: empty batch",
                                     op->collection));
    if ((s = check_batch(op, "delete from", 0, err)) != VD_OK || op->status != VD_OK) return s;
    vd_collection *c = w->c;
    for (size_t i = 0; i < op->n; i++) {
        vd_point_rec r;
        int found;
        s = vd_storage__point_get(g->t, c->cid, &c->params, op->ids[i], &r, &found, err);
        if (s != VD_OK) return s;
        if (!found) continue;
        w->mutated = 1;
        s = vd_index_remove(c->ix, op->ids[i], err);
        if (s == VD_NOTFOUND)
            return vd_err_set(err, VD_CORRUPT, "delete from %s: id %" PRIu64 " is stored but "
                              "not in the index", op->collection, op->ids[i]);
        if (s != VD_OK ||
            (s = vd_storage__point_del(g->t, c->cid, op->ids[i], err)) != VD_OK)
            return s;
        w->count--;
        w->payload_bytes -= r.payload_len;
        op->n_done++;
    }
    return VD_OK;
}

/* ---- the group --------------------------------------------------------------------------- */
static vd_status apply(group *g, vd_op *op, vd_err *err)
{
    op->status = VD_OK;
    op->err.code = VD_OK;
    op->err.msg[0] = 0;
    op->n_done = 0;
    switch (op->kind) {
    case VD_OP_CREATE: return op_create(g, op, err);
    case VD_OP_DROP: return op_drop(g, op, err);
    case VD_OP_UPSERT: return op_upsert(g, op, err);
    case VD_OP_DELETE: return op_delete(g, op, err);
    }
    return reject(op, vd_err_set(&op->err, VD_INVALID, "unknown operation kind %d",
                                 (int)op->kind));
}

/* One attempt: every op, then every touched index persisted (vd_storage__write_txn commits). */
static vd_status group_fill(void *ctx, vd_txn *t, vd_err *err)
{
    group *g = ctx;
    vd_status s = VD_OK;
    size_t n_created = 0;
    g->t = t;
    for (size_t i = 0; i < g->n_ops && s == VD_OK; i++) {
        n_created += g->ops[i].kind == VD_OP_CREATE;
        s = apply(g, &g->ops[i], err);
    }
    for (size_t i = 0; i < g->n_w && s == VD_OK; i++)
        if (!g->w[i].dropped && (g->w[i].mutated || g->w[i].old))
            s = vd_storage__persist(t, &g->w[i], err);
    /* Room for what group_finish adds, so that making the commit visible cannot fail. */
    if (s == VD_OK) s = vd_storage__catalog_reserve(g->st, n_created + g->n_w, err);
    return s;
}

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

/* After a durable commit: publish, and make created/dropped collections (in)visible. */
static void group_finish(group *g)
{
    vd_store *st = g->st;
    for (size_t i = 0; i < g->n_w; i++) {
        vd_wcoll *w = &g->w[i];
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
            vd_storage__catalog_put(st, c, NULL); /* room reserved before the commit */
        }
    }
    group_release(g);
}

/* The commit failed or never happened: nothing may become visible. Catalog collections
 * whose index was mutated in place are marked for reload (see the note at the top). */
static void group_end(void *ctx, vd_status s)
{
    group *g = ctx;
    if (s == VD_OK) {
        group_finish(g);
        return;
    }
    for (size_t i = 0; i < g->n_w; i++) {
        vd_wcoll *w = &g->w[i];
        if (!w->created && !w->old && w->mutated) w->c->needs_reload = 1;
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
            uint32_t dim = c ? c->params.dim : VD_DIM_MAX, m = c ? c->params.m : 16;
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

vd_status vd_store_write(vd_store *st, vd_op *ops, size_t n_ops, vd_err *err)
{
    if (st->read_only) return vd_err_set(err, VD_INVALID, "%s is open read-only", st->dir);
    if (n_ops == 0) return VD_OK;
    group g = {.st = st, .ops = ops, .n_ops = n_ops};
    vd_status s = vd_storage__write_txn(st, estimate_bytes(st, ops, n_ops), group_fill,
                                        group_end, &g, err);
    if (s == VD_OK) return VD_OK;
    for (size_t i = 0; i < n_ops; i++) {
        ops[i].n_done = 0;
        if (ops[i].status == VD_OK) {
            ops[i].status = s;
            vd_err_set(&ops[i].err, s, "not applied: the group failed");
        }
    }
    return s;
}
