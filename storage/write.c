/* storage/write.c: the group commit. vd_store_write applies a group of operations (create,
 * drop, upsert, delete, set_payload) in ONE LMDB transaction and commits once.
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
 * String ids: an op of a collection with id_type "str" names its points by string id; the
 * group maps them to internal keys first (strids.c: existing ids through sids, new ones from
 * the sequence, written only once the op is applied) and from then on the op runs exactly
 * as an integer one under those keys. Every payload change - upsert, delete, set_payload -
 * goes through vd_storage__point_set / _remove (points.c) with the old record in hand.
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
    vd_buf merged; /* set_payload: a merged payload, built before its put */
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

/* What points_op and check_batch check besides the ids. */
#define CHECK_PAYLOADS 1 /* each non-NULL payload is a JSON object */
#define CHECK_DISTINCT 2 /* integer ids distinct here (upserts leave it to the index) */
#define NEED_VECTORS 4   /* upsert: vectors (and payload lengths with payloads) given */
#define NEED_PAYLOADS 8  /* set_payload: one payload per id given */

/* A printable id of row i for messages: the integer, or the quoted string id. */
static const char *id_label(const vd_op *op, size_t i, char *buf, size_t len)
{
    if (op->ids) {
        snprintf(buf, len, "%" PRIu64, op->ids[i]);
    } else {
        size_t a = vd_str_ids_start(&op->str_ids, i);
        vd_str_id_label(op->str_ids.bytes + a, op->str_ids.ends[i] - a, buf, len);
    }
    return buf;
}

/* The checks an op makes before touching anything: VD_OK with op->status set when the op is
 * rejected, a group failure otherwise. */
static vd_status check_batch(const vd_wcoll *w, vd_op *op, const char *what, int checks,
                             vd_err *err)
{
    /* The ids against the collection's id type (string ids: distinct too). Upserts leave the
     * integer id rule to the index, which checks the whole batch before anything changes. */
    vd_status s = vd_point_ids_check(&w->c->params, op->ids, &op->str_ids, op->n, 1, &op->err);
    if (s == VD_OK && op->ids && (checks & CHECK_DISTINCT))
        s = vd_ids_check_distinct(op->ids, op->n, &op->err);
    if (s == VD_NOMEM) return vd_err_set(err, VD_NOMEM, "%s", op->err.msg);
    if (s != VD_OK) return reject(op, vd_err_prefix(&op->err, "%s %s", what, op->collection));
    if (!(checks & CHECK_PAYLOADS) || !op->payloads) return VD_OK;
    char label[64];
    for (size_t i = 0; i < op->n; i++)
        if (op->payloads[i] &&
            vd_json_check_object(op->payloads[i], op->payload_lens[i], &op->err) != VD_OK)
            return reject(op, vd_err_prefix(&op->err, "%s %s: point %zu (id %s)", what,
                                            op->collection, i,
                                            id_label(op, i, label, sizeof label)));
    return VD_OK;
}

/* The target and the checks of every op naming points, before anything is touched: *out
 * NULL (and VD_OK) when the op was rejected (op->status says why), a group failure
 * otherwise. */
static vd_status points_op(group *g, vd_op *op, const char *what, int checks, vd_wcoll **out,
                           vd_err *err)
{
    vd_wcoll *w;
    *out = NULL;
    vd_status s = op_target(g, op, &w, err);
    if (s != VD_OK || !w) return s;
    int no_ids = !op->ids && !op->str_ids.ends;
    if (op->n == 0 || (no_ids && !(checks & NEED_VECTORS)))
        return reject(op, vd_err_set(&op->err, VD_INVALID, "%s %s: empty batch", what,
                                     op->collection));
    if ((checks & NEED_VECTORS) && (no_ids || !op->vectors || (op->payloads && !op->payload_lens)))
        return reject(op, vd_err_set(&op->err, VD_INVALID, "%s %s: ids, vectors or payload "
                                     "lengths missing", what, op->collection));
    if ((checks & NEED_PAYLOADS) && (!op->payloads || !op->payload_lens))
        return reject(op, vd_err_set(&op->err, VD_INVALID, "%s %s: payloads missing (one per "
                                     "id)", what, op->collection));
    if ((s = check_batch(w, op, what, checks, err)) != VD_OK || op->status != VD_OK) return s;
    *out = w;
    return VD_OK;
}

/* The internal keys of an op's points: op->ids, or for string ids their keys (absent ones
 * VD_ID_NONE, or with `assign` new keys marked in *fresh) in a new array *keys. */
static vd_status op_keys(group *g, vd_wcoll *w, const vd_op *op, int assign, uint64_t **keys,
                         uint8_t **fresh, vd_err *err)
{
    *keys = NULL;
    *fresh = NULL;
    if (op->ids) return VD_OK;
    *keys = vd_malloc(op->n * sizeof **keys);
    if (assign) *fresh = vd_malloc(op->n);
    if (!*keys || (assign && !*fresh))
        return vd_err_set(err, VD_NOMEM, "out of memory for %zu string ids", op->n);
    return vd_storage__sids_keys(g->t, w, &op->str_ids, assign, *keys, *fresh, err);
}

/* String-id upserts check vectors before the index sees them: its messages would name the
 * internal keys. The rule is the index's own (vd_vector_check). */
static vd_status check_vectors(const vd_wcoll *w, vd_op *op)
{
    const vd_collection_params *p = &w->c->params;
    for (size_t i = 0; i < op->n; i++) {
        vd_err e;
        char label[64];
        if (vd_vector_check(p->metric, op->vectors + i * p->dim, p->dim, &e) != VD_OK)
            return reject(op, vd_err_set(&op->err, VD_INVALID, "upsert into %s: vector %zu "
                                         "(id %s): %s", op->collection, i,
                                         id_label(op, i, label, sizeof label), e.msg));
    }
    return VD_OK;
}

/* Points records of an applied upsert: the slot is resolved by persist. */
static vd_status upsert_points(group *g, vd_wcoll *w, const vd_op *op, const uint64_t *keys,
                               vd_err *err)
{
    vd_collection *c = w->c;
    for (size_t i = 0; i < op->n; i++) {
        vd_point_rec r;
        int found;
        vd_status s = vd_storage__point_get(g->t, c->cid, &c->params, keys[i], &r, &found, err);
        if (s != VD_OK) return s;
        size_t plen = op->payloads && op->payloads[i] ? op->payload_lens[i] : 0;
        s = vd_storage__point_set(g->t, w, keys[i], found ? &r : NULL,
                                  found ? r.slot : VD_SLOT_UNRESOLVED,
                                  plen ? op->payloads[i] : NULL, plen, err);
        if (s != VD_OK) return s;
    }
    return VD_OK;
}

/* The index part of an upsert of n points under keys: VD_OK with op->status set when the
 * index refused the batch (before changing anything), a group failure otherwise. */
static vd_status upsert_index(group *g, vd_wcoll *w, vd_op *op, const uint64_t *keys,
                              vd_err *err)
{
    vd_status s = vd_index_add_batch(w->c->ix, keys, op->vectors, op->n, g->st->n_threads,
                                     NULL, NULL, &op->err);
    /* VD_INVALID is raised before anything changes; anything else may have changed it. */
    if (s == VD_INVALID)
        return reject(op, vd_err_prefix(&op->err, "upsert into %s", op->collection));
    w->mutated = 1;
    if (s != VD_OK) {
        vd_err_set(err, s, "upsert into %s: %s", op->collection, op->err.msg);
        op->err.code = VD_OK;
        op->err.msg[0] = 0;
    }
    return s;
}

static vd_status op_upsert(group *g, vd_op *op, vd_err *err)
{
    vd_wcoll *w;
    uint64_t *owned = NULL;
    uint8_t *fresh = NULL;
    vd_status s = points_op(g, op, "upsert into", NEED_VECTORS | CHECK_PAYLOADS, &w, err);
    if (s != VD_OK || !w) return s;
    if (!op->ids && ((s = check_vectors(w, op)) != VD_OK || op->status != VD_OK)) return s;
    if ((s = op_keys(g, w, op, 1, &owned, &fresh, err)) != VD_OK) goto out;
    const uint64_t *keys = owned ? owned : op->ids;
    if ((s = upsert_index(g, w, op, keys, err)) != VD_OK || op->status != VD_OK) goto out;
    if ((fresh && (s = vd_storage__sids_add(g->t, w, &op->str_ids, keys, fresh, err))) ||
        (s = upsert_points(g, w, op, keys, err)) != VD_OK)
        goto out;
    op->n_done = op->n;
out:
    vd_free(owned);
    vd_free(fresh);
    return s;
}

/* The point under key (its record r) out of the index and the points table, and for string
 * ids (sid: the id's bytes) its id -> key mapping. `label` names the point in messages. */
static vd_status remove_point(group *g, vd_wcoll *w, vd_op *op, uint64_t key,
                              const vd_point_rec *r, const uint8_t *sid, size_t sid_len,
                              const char *label, vd_err *err)
{
    w->mutated = 1;
    vd_status s = vd_index_remove(w->c->ix, key, err);
    if (s == VD_NOTFOUND)
        return vd_err_set(err, VD_CORRUPT, "delete from %s: id %s is stored but not in the "
                          "index", op->collection, label);
    if (s == VD_OK) s = vd_storage__point_remove(g->t, w, key, r, err);
    if (s == VD_OK && sid) s = vd_storage__sids_forget(g->t, w, sid, sid_len, key, err);
    if (s == VD_OK) op->n_done++;
    return s;
}

/* Row i of a delete: the point under key, if any. */
static vd_status delete_point(group *g, vd_wcoll *w, vd_op *op, size_t i, uint64_t key,
                              vd_err *err)
{
    vd_collection *c = w->c;
    vd_point_rec r;
    int found;
    char label[64];
    if (key == VD_ID_NONE) return VD_OK; /* a string id that does not exist */
    vd_status s = vd_storage__point_get(g->t, c->cid, &c->params, key, &r, &found, err);
    if (s != VD_OK) return s;
    if (!found)
        return op->ids ? VD_OK
                       : vd_err_set(err, VD_CORRUPT, "delete from %s: string id %s maps to key "
                                    "%" PRIu64 ", which has no point", op->collection,
                                    id_label(op, i, label, sizeof label), key);
    id_label(op, i, label, sizeof label);
    if (op->ids) return remove_point(g, w, op, key, &r, NULL, 0, label, err);
    size_t a = vd_str_ids_start(&op->str_ids, i);
    return remove_point(g, w, op, key, &r, op->str_ids.bytes + a, op->str_ids.ends[i] - a, label,
                        err);
}

/* The point under key, found by a filter: for string ids its id is read from skeys (and
 * copied: the deletes below write to the pages it lies in). */
static vd_status delete_key(group *g, vd_wcoll *w, vd_op *op, uint64_t key, vd_err *err)
{
    vd_collection *c = w->c;
    vd_point_rec r;
    int found;
    uint8_t sid[VD_STR_ID_MAX];
    size_t len = 0;
    char label[64];
    vd_status s = vd_storage__point_get(g->t, c->cid, &c->params, key, &r, &found, err);
    if (s != VD_OK || !found) return s;
    if (c->params.id_type == VD_ID_STR) {
        const uint8_t *id;
        s = vd_storage__skey_get(g->t, c->cid, &c->params, key, &id, &len, &found, err);
        if (s != VD_OK) return s;
        if (!found)
            return vd_err_set(err, VD_CORRUPT, "delete from %s: the point of key %" PRIu64
                              " has no string id", op->collection, key);
        memcpy(sid, id, len);
        vd_str_id_label(sid, len, label, sizeof label);
    } else {
        snprintf(label, sizeof label, "%" PRIu64, key);
    }
    return remove_point(g, w, op, key, &r, len ? sid : NULL, len, label, err);
}

/* Every point the filter matches, as the group stands, in one op (one transaction). */
static vd_status delete_filtered(group *g, vd_op *op, vd_err *err)
{
    vd_wcoll *w;
    uint64_t *keys = NULL;
    size_t n = 0;
    vd_status s = op_target(g, op, &w, err);
    if (s != VD_OK || !w) return s;
    if (op->ids || op->n || op->str_ids.ends)
        return reject(op, vd_err_set(&op->err, VD_INVALID, "delete from %s: give ids or a "
                                     "filter, not both", op->collection));
    if (vd_filter_check(op->filter, &op->err) != VD_OK)
        return reject(op, vd_err_prefix(&op->err, "delete from %s", op->collection));
    s = vd_storage__filter_ids(g->t, w, op->filter, &keys, &n, err);
    for (size_t i = 0; i < n && s == VD_OK; i++) s = delete_key(g, w, op, keys[i], err);
    vd_free(keys);
    return s;
}

static vd_status op_delete(group *g, vd_op *op, vd_err *err)
{
    vd_wcoll *w;
    uint64_t *keys = NULL;
    uint8_t *fresh = NULL;
    if (op->filter) return delete_filtered(g, op, err);
    vd_status s = points_op(g, op, "delete from", CHECK_DISTINCT, &w, err);
    if (s != VD_OK || !w) return s;
    if ((s = op_keys(g, w, op, 0, &keys, &fresh, err)) != VD_OK) goto out;
    for (size_t i = 0; i < op->n && s == VD_OK; i++)
        s = delete_point(g, w, op, i, keys ? keys[i] : op->ids[i], err);
out:
    vd_free(keys);
    return s;
}

/* Row i of a set_payload: the stored payload replaced, or merged into. */
static vd_status set_point_payload(group *g, vd_wcoll *w, const vd_op *op, size_t i,
                                   uint64_t key, int *updated, vd_err *err)
{
    vd_collection *c = w->c;
    vd_point_rec r;
    int found;
    *updated = 0;
    if (key == VD_ID_NONE) return VD_OK;
    vd_status s = vd_storage__point_get(g->t, c->cid, &c->params, key, &r, &found, err);
    if (s != VD_OK || !found) return s;
    *updated = 1;
    const uint8_t *p = op->payloads[i];
    size_t len = p ? op->payload_lens[i] : 0;
    if (op->merge && !p) return VD_OK; /* nothing to merge */
    if (op->merge && r.payload) {
        uint8_t *out = vd_storage__buf_reserve(&g->merged, r.payload_len + len + 1);
        if (!out) return vd_err_set(err, VD_NOMEM, "out of memory merging a payload");
        if ((s = vd_storage__json_merge(r.payload, r.payload_len, p, len, out, &len, err)))
            return s;
        p = out;
    }
    return vd_storage__point_set(g->t, w, key, &r, r.slot, len ? p : NULL, len, err);
}

static vd_status op_set_payload(group *g, vd_op *op, vd_err *err)
{
    vd_wcoll *w;
    uint64_t *keys = NULL;
    uint8_t *fresh = NULL;
    vd_status s = points_op(g, op, "set_payload", NEED_PAYLOADS | CHECK_PAYLOADS | CHECK_DISTINCT,
                            &w, err);
    if (s != VD_OK || !w) return s;
    if ((s = op_keys(g, w, op, 0, &keys, &fresh, err)) != VD_OK) goto out;
    for (size_t i = 0; i < op->n && s == VD_OK; i++) {
        int updated;
        s = set_point_payload(g, w, op, i, keys ? keys[i] : op->ids[i], &updated, err);
        op->n_done += (uint64_t)updated;
    }
    w->mutated = 1; /* the catalog record carries the payload bytes */
out:
    vd_free(keys);
    return s;
}

static vd_status op_pindex(group *g, vd_op *op, vd_err *err)
{
    vd_wcoll *w;
    vd_status s = op_target(g, op, &w, err);
    if (s != VD_OK || !w) return s;
    return op->kind == VD_OP_PINDEX_CREATE ? vd_storage__op_pindex_create(g->t, w, op, err)
                                           : vd_storage__op_pindex_drop(g->t, w, op, err);
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
    case VD_OP_SET_PAYLOAD: return op_set_payload(g, op, err);
    case VD_OP_PINDEX_CREATE: case VD_OP_PINDEX_DROP: return op_pindex(g, op, err);
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
        if (!g->w[i].dropped && (g->w[i].mutated || g->w[i].old) &&
            (s = vd_storage__persist(t, &g->w[i], err)) == VD_OK)
            s = vd_storage__ppersist(t, &g->w[i], err);
    for (size_t i = 0; i < g->n_w && s == VD_OK; i++)
        if (!g->w[i].dropped) s = vd_storage__plive(t, &g->w[i], err);
    /* Room for what group_finish adds, so that making the commit visible cannot fail. */
    if (s == VD_OK) s = vd_storage__catalog_reserve(g->st, n_created + g->n_w, err);
    /* The commit follows: readers of stored payloads wait for its publish (fquery.c). */
    for (size_t i = 0; i < g->n_w && s == VD_OK; i++) {
        if (g->w[i].dropped) continue;
        atomic_store(&g->w[i].c->committing, 1);
        if (g->w[i].old) atomic_store(&g->w[i].old->committing, 1);
    }
    return s;
}

static void group_release(group *g)
{
    for (size_t i = 0; i < g->n_w; i++) {
        vd_collection_release(g->w[i].c);
        vd_collection_release(g->w[i].old);
        vd_free(g->w[i].pending);
        vd_free(g->w[i].deleted);
        vd_storage__prelease(&g->w[i]);
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
        if (w->seq_loaded) c->str_id_bytes = w->seq.id_bytes;
        c->needs_reload = 0;
        /* Payload indexes and the index become visible together to filtered reads. Clear
         * first: publish itself repairs around removed nodes and may vacuum; those changes
         * stay marked and are persisted by the next group (or the flush at close). */
        vd_err e;
        pthread_rwlock_wrlock(&c->flock);
        if (vd_storage__pfinish(w, &e) != VD_OK) {
            vd_log(VD_LOG_ERROR, "storage: collection %s: payload indexes: %s; reloading them "
                   "with the next write", c->params.name, e.msg);
            c->needs_reload = 1;
        }
        /* Only what this group's persist walked may be forgotten: a group that changed
         * nothing here (a refused op) walked nothing, and a clear then would forget every
         * repair the last publish marked, leaving stale links records. */
        if (w->mutated || w->old) vd_index_changes_clear(c->ix);
        vd_index_publish(c->ix);
        atomic_store(&c->committing, 0);
        pthread_rwlock_unlock(&c->flock);
        if (w->old) { /* nothing publishes on it again; readers still holding it go on */
            atomic_store(&w->old->retired, 1);
            atomic_store(&w->old->committing, 0);
        }
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
        atomic_store(&w->c->committing, 0);
        if (w->old) atomic_store(&w->old->committing, 0);
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
            if (op->str_ids.ends && op->n) need += 4 * (size_t)op->str_ids.ends[op->n - 1];
        } else if (op->kind == VD_OP_DELETE && op->filter) {
            vd_collection *c = op->collection ? vd_storage__catalog_find(st, op->collection) : NULL;
            need += (c ? c->count : 0) * 1024; /* at worst every point */
            vd_collection_release(c);
        } else if (op->kind == VD_OP_DELETE) {
            need += op->n * 2048;
        } else if (op->kind == VD_OP_SET_PAYLOAD) {
            /* the new payload, a merge with the old one, copied pages */
            for (size_t j = 0; op->payload_lens && j < op->n; j++)
                need += 3 * (size_t)op->payload_lens[j] + 256;
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
    vd_storage__buf_free(&g.merged);
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
