/* storage/persist.c: an index's changes into records, inside the caller's write transaction:
 * the write group after its operations, and the flush at close.
 *
 * vd_storage__persist walks vd_index_changes of one collection (ascending slots) and writes
 * NEW slots (vector record once, then links), LINKS (links record rewritten) and FREED
 * (both records deleted); then it points each id upserted in the group at the slot that now
 * holds it, re-points ids whose slot was freed or refilled under them, and rewrites the
 * catalog record (counts, graph header). Clearing the change set is the caller's, after the
 * commit is durable (vd_index_changes_clear forgets exactly what this walk reported; what
 * publish changes later stays marked for the next round).
 *
 * Which slot holds an id: the index reports changes by slot; an upsert of an existing id
 * fills a new slot and leaves the old one (marked deleted) until vacuum reclaims it. The slot
 * of an id upserted in this group is the NEW slot carrying that id; if several do (the id
 * was upserted twice in the group), the one whose vector equals vd_index_get(id) (identical
 * vectors are interchangeable for reads). When a slot is freed or refilled with another id
 * while a points record still names it, the id is re-pointed at another slot holding it
 * (found among this group's NEW slots, else by one scan of the collection's vectors).
 * Rejected: storing each vector in the points record too, to avoid this bookkeeping (dim * 4
 * bytes more per point on disk).
 *
 * String ids: an old occupant of a freed or refilled slot whose point is gone has its
 * key -> id record reaped here (strids.c says when that is safe).
 *
 * The flush: publish repairs the graph around removed nodes and may vacuum after a group
 * committed; those changes are persisted by the next group touching the collection, or here
 * when the store closes, so the stored graph is always one the index was in. A collection
 * marked needs_reload is skipped: its index is not LMDB's state. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/storage_int.h"

/* ---- slot resolution --------------------------------------------------------------------- */
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

/* ---- the changes walk -------------------------------------------------------------------- */
typedef struct pctx {
    vd_txn *t;
    vd_collection *c;
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

static vd_status nomem(pctx *x)
{
    return vd_err_set(x->err, VD_NOMEM, "out of memory persisting collection %s",
                      x->c->params.name);
}

/* If the vector record of `slot` exists and holds an id other than `new_id`, remember that
 * id: its points record may name this slot. */
static vd_status note_old_occupant(pctx *x, uint32_t slot, uint64_t new_id)
{
    vd_vector_rec vr;
    int found;
    vd_status s = vd_storage__vector_get(x->t, x->c->cid, &x->c->params, slot, &vr, &found,
                                         x->err);
    if (s != VD_OK || !found || vr.id == new_id) return s;
    if (!grow_arr((void **)&x->repoint, &x->cap_repoint, x->n_repoint, sizeof(uint64_t)))
        return nomem(x);
    x->repoint[x->n_repoint++] = vr.id;
    return VD_OK;
}

static vd_status write_slot(pctx *x, uint32_t slot, vd_change_kind kind)
{
    vd_collection *c = x->c;
    vd_txn *t = x->t;
    uint64_t id = 0;
    const float *vec = NULL;
    vd_status s;
    if (kind == VD_CHANGE_FREED || vd_index_slot_vector(c->ix, slot, &id, &vec, NULL) != VD_OK) {
        if ((s = note_old_occupant(x, slot, UINT64_MAX)) != VD_OK) return s;
        return vd_storage__slot_del(t, c->cid, slot, x->err);
    }
    if (kind == VD_CHANGE_NEW) {
        if ((s = note_old_occupant(x, slot, id)) != VD_OK ||
            (s = vd_storage__vector_put(t, c->cid, &c->params, slot, id, vec, 0, x->err)))
            return s;
        if (!grow_arr((void **)&x->pairs, &x->cap_pairs, x->n_pairs, sizeof(vd_id_slot)))
            return nomem(x);
        x->pairs[x->n_pairs++] = (vd_id_slot){id, slot};
    }
    size_t len;
    if ((s = vd_storage__links_encode(c->ix, slot, &t->st->buf, &len, x->err)) != VD_OK) {
        vd_err_prefix(x->err, "collection %s: serializing slot %u", c->params.name, slot);
        return s;
    }
    return vd_storage__links_put(t, c->cid, slot, t->st->buf.p, len, 0, x->err);
}

static int on_change(void *ctx, uint32_t slot, vd_change_kind kind)
{
    pctx *x = ctx;
    x->s = write_slot(x, slot, kind);
    return x->s != VD_OK;
}

/* ---- re-pointing ids --------------------------------------------------------------------- */
/* Rewrites the slot of the points record of `id` if it differs. */
static vd_status reslot_point(pctx *x, uint64_t id, uint32_t slot)
{
    vd_collection *c = x->c;
    vd_point_rec r;
    int found;
    vd_status s = vd_storage__point_get(x->t, c->cid, &c->params, id, &r, &found, x->err);
    if (s != VD_OK || !found || r.slot == slot) return s;
    /* The payload lives in the page the put rewrites: copy it out first. */
    uint8_t *buf = vd_storage__buf_reserve(&x->t->st->buf, r.payload_len);
    if (!buf) return nomem(x);
    if (r.payload_len) memcpy(buf, r.payload, r.payload_len);
    return vd_storage__point_put(x->t, c->cid, id, slot, buf, r.payload_len, 0,
                                 x->err);
}

/* Point every id upserted in this group at the slot that holds it now. */
static vd_status repoint_pending(pctx *x, vd_wcoll *w, float *scratch)
{
    vd_collection *c = x->c;
    if (w->n_pending > 1) qsort(w->pending, w->n_pending, sizeof *w->pending, vd_storage__cmp_u64);
    for (size_t i = 0; i < w->n_pending; i++) {
        uint64_t id = w->pending[i];
        if (i && id == w->pending[i - 1]) continue;
        vd_point_rec r;
        int found;
        uint32_t slot;
        vd_status s = vd_storage__point_get(x->t, c->cid, &c->params, id, &r, &found, x->err);
        if (s != VD_OK) return s;
        if (!found) continue; /* deleted later in the group */
        s = vd_storage__resolve_slot(c->ix, x->pairs, x->n_pairs, id, &slot, scratch, x->err);
        if (s == VD_NOTFOUND) {
            if (r.slot != VD_SLOT_UNRESOLVED) continue; /* its record names a slot already */
            return vd_err_set(x->err, VD_INTERNAL, "collection %s: the index reported no slot "
                              "for upserted id %" PRIu64, c->params.name, id);
        }
        if (s != VD_OK || (s = reslot_point(x, id, slot)) != VD_OK) return s;
    }
    return VD_OK;
}

/* (id, slot) pairs of the collection's stored vectors for the ids in sorted `want`. */
static vd_status scan_slots(pctx *x, const uint64_t *want, size_t n_want, vd_id_slot **out,
                            size_t *n_out)
{
    vd_collection *c = x->c;
    MDB_cursor *cur = NULL;
    vd_id_slot *a = NULL;
    size_t n = 0, cap = 0;
    uint8_t kb[VD_KEY_SLOT_BYTES];
    vd_storage__key_slot(kb, c->cid, 0);
    MDB_val k = {sizeof kb, kb}, v;
    vd_status s = VD_OK;
    uint32_t slot;
    int rc = mdb_cursor_open(x->t->txn, x->t->st->dbi[VD_DB_VECTORS], &cur);
    if (rc) return vd_storage__txn_fail(x->t, rc, x->err, "scanning vectors");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (s == VD_OK && rc == 0 && vd_storage__key_slot_decode(k.mv_data, k.mv_size, c->cid,
                                                                 &slot)) {
        vd_vector_rec vr;
        if ((s = vd_storage__vector_decode(v.mv_data, v.mv_size, c->params.dim, &vr, x->err))) {
            vd_err_prefix(x->err, "collection %s: slot %u", c->params.name, slot);
        } else if (bsearch(&vr.id, want, n_want, sizeof *want, vd_storage__cmp_u64)) {
            if (!grow_arr((void **)&a, &cap, n, sizeof *a)) s = nomem(x);
            else a[n++] = (vd_id_slot){vr.id, slot};
        }
        if (s == VD_OK) rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (s == VD_OK && rc && rc != MDB_NOTFOUND)
        s = vd_storage__txn_fail(x->t, rc, x->err, "scanning vectors");
    if (s != VD_OK) {
        vd_free(a);
        return s;
    }
    vd_storage__sort_pairs(a, n);
    *out = a;
    *n_out = n;
    return VD_OK;
}

/* 1 if id's points record is absent or names a slot whose vector record carries id. */
static vd_status points_home(pctx *x, uint64_t id, int *home)
{
    vd_collection *c = x->c;
    vd_point_rec r;
    vd_vector_rec vr;
    int found;
    vd_status s = vd_storage__point_get(x->t, c->cid, &c->params, id, &r, &found, x->err);
    *home = 1;
    if (s != VD_OK || !found) return s;
    s = vd_storage__vector_get(x->t, c->cid, &c->params, r.slot, &vr, &found, x->err);
    *home = s == VD_OK && found && vr.id == id;
    return s;
}

/* Ids whose slot was freed or refilled under them (see the note at the top). */
static vd_status repoint_orphans(pctx *x, float *scratch)
{
    vd_collection *c = x->c;
    vd_id_slot *scan = NULL;
    size_t n_scan = 0;
    int scanned = 0;
    vd_status s = VD_OK;
    if (x->n_repoint > 1) qsort(x->repoint, x->n_repoint, sizeof *x->repoint, vd_storage__cmp_u64);
    for (size_t i = 0; i < x->n_repoint && s == VD_OK; i++) {
        uint64_t id = x->repoint[i];
        uint32_t slot;
        int home;
        if (i && id == x->repoint[i - 1]) continue;
        if ((s = points_home(x, id, &home)) != VD_OK) break;
        if (home) continue;
        s = vd_storage__resolve_slot(c->ix, x->pairs, x->n_pairs, id, &slot, scratch, x->err);
        if (s == VD_NOTFOUND) {
            if (!scanned && (s = scan_slots(x, x->repoint, x->n_repoint, &scan, &n_scan)))
                break;
            scanned = 1;
            s = vd_storage__resolve_slot(c->ix, scan, n_scan, id, &slot, scratch, x->err);
        }
        if (s == VD_NOTFOUND)
            s = vd_err_set(x->err, VD_INTERNAL, "collection %s: no stored slot holds live id %"
                           PRIu64, c->params.name, id);
        if (s == VD_OK) s = reslot_point(x, id, slot);
    }
    vd_free(scan);
    return s;
}

vd_status vd_storage__persist(vd_txn *t, vd_wcoll *w, vd_err *err)
{
    vd_collection *c = w->c;
    pctx x = {.t = t, .c = c, .s = VD_OK, .err = err};
    vd_status s = VD_OK;
    float *scratch = vd_malloc((size_t)c->params.dim * sizeof *scratch);
    if (!scratch) return nomem(&x);
    if (vd_storage__changes(c->ix, on_change, &x) != 0) {
        s = x.s != VD_OK ? x.s : vd_err_set(err, VD_INTERNAL, "persisting %s failed",
                                             c->params.name);
        goto out;
    }
    vd_storage__sort_pairs(x.pairs, x.n_pairs);
    if ((s = repoint_pending(&x, w, scratch)) == VD_OK &&
        (s = repoint_orphans(&x, scratch)) == VD_OK &&
        (s = vd_storage__sids_reap(t, w, x.repoint, x.n_repoint, err)) == VD_OK &&
        (s = vd_storage__sids_store(t, w, err)) == VD_OK)
        s = vd_storage__catalog_store(t, c, w->count, w->payload_bytes, err);
out:
    vd_free(x.pairs);
    vd_free(x.repoint);
    vd_free(scratch);
    return s;
}

/* ---- the flush at close ------------------------------------------------------------------ */
int vd_storage__changes(const vd_index *ix, vd_change_fn fn, void *ctx)
{
    vd_index_header h;
    vd_index_header_get(ix, &h);
    return h.n_slots ? vd_index_changes(ix, fn, ctx) : 0;
}

static int any_change(void *ctx, uint32_t slot, vd_change_kind kind)
{
    (void)ctx; (void)slot; (void)kind;
    return 1;
}

typedef struct flush_ctx {
    vd_store *st;
    vd_collection **cs; /* the collections this attempt persists, one reference each */
    size_t n;
} flush_ctx;

static vd_status flush_fill(void *ctx, vd_txn *t, vd_err *err)
{
    flush_ctx *f = ctx;
    vd_store *st = f->st;
    pthread_mutex_lock(&st->cat_mu);
    f->cs = vd_malloc((st->n_colls + 1) * sizeof *f->cs);
    for (size_t i = 0; f->cs && i < st->n_colls; i++) {
        vd_collection *c = st->colls[i];
        if (c->needs_reload || !vd_storage__changes(c->ix, any_change, NULL)) continue;
        vd_storage__coll_ref(c);
        f->cs[f->n++] = c;
    }
    pthread_mutex_unlock(&st->cat_mu);
    if (!f->cs) return vd_err_set(err, VD_NOMEM, "out of memory flushing the graph");
    vd_status s = VD_OK;
    for (size_t i = 0; i < f->n && s == VD_OK; i++) {
        vd_wcoll w = {.c = f->cs[i], .mutated = 1, .count = f->cs[i]->count,
                      .payload_bytes = f->cs[i]->payload_bytes};
        s = vd_storage__persist(t, &w, err);
    }
    return s;
}

static void flush_end(void *ctx, vd_status s)
{
    flush_ctx *f = ctx;
    for (size_t i = 0; i < f->n; i++) {
        if (s == VD_OK) vd_index_changes_clear(f->cs[i]->ix);
        vd_collection_release(f->cs[i]);
    }
    vd_free(f->cs);
    f->cs = NULL;
    f->n = 0;
}

vd_status vd_storage__flush(vd_store *st, vd_err *err)
{
    if (st->read_only || !st->env) return VD_OK;
    flush_ctx f = {.st = st};
    return vd_storage__write_txn(st, (size_t)1 << 24, flush_fill, flush_end, &f, err);
}
