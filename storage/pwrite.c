/* storage/pwrite.c: payload indexes on the writer's side - their values kept in step with
 * every payload change inside the write group's transaction, creating and dropping them,
 * building a new one over the points already stored, and the ids a delete by filter takes.
 *
 * Durability: an index is its definition record (pindexes) plus one values record per point
 * slot that has the field (pvalues, keyed by index and slot: records.h). Every payload
 * change goes through vd_storage__payload_changed: upserts, deletes, and any later payload
 * update. It notes the point's old slot as dead and the id for re-indexing; once the group's
 * slots are resolved (persist.c), vd_storage__ppersist deletes the dead slots' values records
 * and writes the changed points' new ones, in the same transaction as the points themselves:
 * what commits together survives a crash together, and a restart loads the postings from the
 * values records (load.c) without reading a payload. The in-memory postings change only
 * after the commit (vd_storage__pfinish, from a log kept during the group), under the
 * collection's filter lock together with the index's publish.
 *
 * Building: a new index's definition commits first ("building"), and from that group on
 * every write maintains its values records like any index's; the points stored before are
 * indexed by vd_store_pindex_step in id order, one bounded transaction per step, so writes
 * run between steps and searches never wait. A point the step meets that already has a
 * values record was indexed by a write and is skipped. The last step loads the postings from
 * the values records and marks the index ready in the same transaction; filters use it from
 * then on (until then its conditions are evaluated on the payloads). A crash mid-build
 * leaves the definition with its resume id: the build continues at the next open.
 * Rejected: one transaction over all points (writes would stall for seconds on a million
 * points); building in memory on another thread and catching up (the values records must
 * be written by the writer anyway); maintaining a building index's postings in memory (the
 * final load from the records is one code path with the open). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/storage_int.h"

enum { LOG_ADD = 1, LOG_REMOVE = 2, LOG_LIVE_ADD = 3, LOG_LIVE_REMOVE = 4 };
#define LOG_HEAD 18 /* u8 op | u32 no | u32 slot | u8 flags | u32 n | u32 vals_len */

static vd_status nomem(vd_err *err)
{
    return vd_err_set(err, VD_NOMEM, "out of memory maintaining payload indexes");
}

static int dropped_here(const vd_wcoll *w, uint32_t no)
{
    for (size_t i = 0; i < w->n_pdropped; i++)
        if (w->pdropped[i] == no) return 1;
    return 0;
}

/* ---- the one path of payload changes ------------------------------------------------------ */
vd_status vd_storage__payload_changed(vd_wcoll *w, uint64_t id, uint32_t old_slot, vd_err *err)
{
    if (w->n_pending == w->cap_pending) {
        size_t cap = w->cap_pending ? w->cap_pending * 2 : 64;
        uint64_t *a = vd_realloc(w->pending, cap * sizeof *a);
        if (!a) return vd_err_set(err, VD_NOMEM, "out of memory in a write group");
        w->pending = a;
        w->cap_pending = cap;
    }
    w->pending[w->n_pending++] = id;
    if (old_slot == VD_SLOT_UNRESOLVED || !w->c->pset) return VD_OK;
    if (w->n_dead == w->cap_dead) {
        size_t cap = w->cap_dead ? w->cap_dead * 2 : 64;
        uint32_t *a = vd_realloc(w->dead, cap * sizeof *a);
        if (!a) return nomem(err);
        w->dead = a;
        w->cap_dead = cap;
    }
    w->dead[w->n_dead++] = old_slot;
    return VD_OK;
}

/* Appends a change for pfinish; r may be NULL (live changes). */
static vd_status log_change(vd_wcoll *w, int op, uint32_t no, uint32_t slot, const vd_pvals *r,
                            vd_err *err)
{
    size_t vl = r ? r->vals_len : 0;
    uint8_t *b = vd_storage__buf_reserve(&w->plog, w->plog_len + LOG_HEAD + vl);
    if (!b) return nomem(err);
    b += w->plog_len;
    b[0] = (uint8_t)op;
    vd_put_u32le(b + 1, no);
    vd_put_u32le(b + 5, slot);
    b[9] = r ? (uint8_t)r->flags : 0;
    vd_put_u32le(b + 10, r ? r->n : 0);
    vd_put_u32le(b + 14, (uint32_t)vl);
    if (vl) memcpy(b + LOG_HEAD, r->vals, vl);
    w->plog_len += LOG_HEAD + vl;
    return VD_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The dead slots' values records go (and their postings, at finish). */
static vd_status persist_dead(vd_txn *t, vd_wcoll *w, vd_err *err)
{
    const vd_pset *ps = w->c->pset;
    if (w->n_dead > 1) qsort(w->dead, w->n_dead, sizeof *w->dead, cmp_u32);
    vd_status s = VD_OK;
    for (size_t i = 0; i < w->n_dead && s == VD_OK; i++) {
        uint32_t slot = w->dead[i];
        if (i && slot == w->dead[i - 1]) continue;
        s = log_change(w, LOG_LIVE_REMOVE, 0, slot, NULL, err);
        for (size_t k = 0; k < ps->n && s == VD_OK; k++) {
            const vd_pdef *d = ps->defs[k];
            vd_pvals r;
            int found;
            if (dropped_here(w, d->no)) continue;
            s = vd_storage__pval_get(t, w->c->cid, d->no, d->kind, slot, &r, &found, err);
            if (s != VD_OK || !found) continue;
            if (d->ready) s = log_change(w, LOG_REMOVE, d->no, slot, &r, err);
            if (s == VD_OK) s = vd_storage__pval_del(t, w->c->cid, d->no, slot, err);
        }
    }
    return s;
}

/* The values records of one point's payload in slot, for every index of the collection. */
static vd_status index_point(vd_txn *t, vd_wcoll *w, uint32_t slot, const json_t *j,
                             vd_buf *b, vd_err *err)
{
    const vd_pset *ps = w->c->pset;
    vd_status s = VD_OK;
    for (size_t k = 0; k < ps->n && s == VD_OK; k++) {
        const vd_pdef *d = ps->defs[k];
        size_t len;
        vd_pvals r;
        if (dropped_here(w, d->no)) continue;
        s = vd_storage__pvals_extract(d->kind, d->path, d->path_len, j, b, &len, err);
        if (s != VD_OK || !len) continue;
        s = vd_storage__pval_put(t, w->c->cid, d->no, slot, b->p, len, err);
        if (s == VD_OK && d->ready && (s = vd_storage__pvals_decode(b->p, len, d->kind, &r, err)))
            return s;
        if (s == VD_OK && d->ready) s = log_change(w, LOG_ADD, d->no, slot, &r, err);
    }
    return s;
}

/* A stored payload, parsed; VD_CORRUPT if it no longer parses (it did when written). */
static vd_status stored_json(const vd_collection *c, uint64_t id, const vd_point_rec *pr,
                             json_t **j, vd_err *err)
{
    *j = NULL;
    if (!pr->payload) return VD_OK;
    vd_status s = vd_storage__json_parse(pr->payload, pr->payload_len, j, err);
    if (s == VD_INVALID) {
        s = VD_CORRUPT;
        if (err) err->code = s;
        vd_err_prefix(err, "collection %s: point %" PRIu64 ": stored payload", c->params.name,
                      id);
    }
    return s;
}

vd_status vd_storage__plive(vd_txn *t, vd_wcoll *w, vd_err *err)
{
    if (!w->pnewset) return VD_OK;
    roaring_bitmap_free(w->pnewset->live);
    w->pnewset->live = NULL;
    return vd_storage__live_load(t, w->c->cid, &w->pnewset->live, err);
}

vd_status vd_storage__ppersist(vd_txn *t, vd_wcoll *w, vd_err *err)
{
    vd_collection *c = w->c;
    if (!c->pset) return VD_OK;
    vd_buf b = {0};
    vd_status s = persist_dead(t, w, err);
    /* w->pending is sorted: persist.c resolved the slots first. */
    for (size_t i = 0; i < w->n_pending && s == VD_OK; i++) {
        uint64_t id = w->pending[i];
        vd_point_rec pr;
        int found;
        json_t *j = NULL;
        if (i && id == w->pending[i - 1]) continue;
        s = vd_storage__point_get(t, c->cid, &c->params, id, &pr, &found, err);
        if (s != VD_OK || !found) continue; /* deleted later in the group */
        if ((s = log_change(w, LOG_LIVE_ADD, 0, pr.slot, NULL, err)) != VD_OK) break;
        /* The put below may move the page under pr.payload: parse before writing. */
        if ((s = stored_json(c, id, &pr, &j, err)) == VD_OK)
            s = index_point(t, w, pr.slot, j, &b, err);
        json_decref(j);
    }
    vd_storage__buf_free(&b);
    return s;
}

/* ---- after the commit ---------------------------------------------------------------------- */
static vd_pdef *def_of(const vd_pset *ps, uint32_t no)
{
    for (size_t i = 0; ps && i < ps->n; i++)
        if (ps->defs[i]->no == no) return ps->defs[i];
    return NULL;
}

static vd_status apply_log(vd_wcoll *w, vd_err *err)
{
    vd_pset *ps = w->c->pset;
    vd_status s = VD_OK;
    for (size_t at = 0; at < w->plog_len && s == VD_OK;) {
        const uint8_t *e = w->plog.p + at;
        uint32_t no = vd_get_u32le(e + 1), slot = vd_get_u32le(e + 5);
        vd_pdef *d = def_of(ps, no);
        vd_pvals r = {.flags = e[9], .n = vd_get_u32le(e + 10), .vals = e + LOG_HEAD,
                      .vals_len = vd_get_u32le(e + 14)};
        at += LOG_HEAD + r.vals_len;
        switch (e[0]) {
        case LOG_LIVE_ADD: roaring_bitmap_add(ps->live, slot); break;
        case LOG_LIVE_REMOVE: roaring_bitmap_remove(ps->live, slot); break;
        case LOG_ADD:
            if (d && d->idx) r.kind = d->kind, s = vd_pidx_add(d->idx, slot, &r, err);
            break;
        case LOG_REMOVE:
            if (d && d->idx) r.kind = d->kind, vd_pidx_remove(d->idx, slot, &r);
            break;
        }
    }
    return s;
}

vd_status vd_storage__pfinish(vd_wcoll *w, vd_err *err)
{
    vd_collection *c = w->c;
    vd_status s = c->pset ? apply_log(w, err) : VD_OK;
    for (size_t i = 0; c->pset && i < w->n_pdropped; i++) {
        vd_pset *ps = c->pset;
        for (size_t k = 0; k < ps->n; k++)
            if (ps->defs[k]->no == w->pdropped[i]) {
                vd_pdef_free(ps->defs[k]);
                memmove(&ps->defs[k], &ps->defs[k + 1], (ps->n - k - 1) * sizeof *ps->defs);
                ps->n--;
                break;
            }
    }
    if (w->pcreated) {
        if (!c->pset) { /* the set was made with the op: nothing here can fail */
            c->pset = w->pnewset;
            w->pnewset = NULL;
        }
        c->pset->defs[c->pset->n++] = w->pcreated;
        w->pcreated = NULL;
    }
    if (c->pset && c->pset->n == 0) {
        vd_pset_free(c->pset);
        c->pset = NULL;
    }
    return s;
}

void vd_storage__prelease(vd_wcoll *w)
{
    vd_free(w->dead);
    w->dead = NULL;
    w->n_dead = w->cap_dead = 0;
    vd_storage__buf_free(&w->plog);
    w->plog_len = 0;
    vd_pdef_free(w->pcreated);
    w->pcreated = NULL;
    vd_pset_free(w->pnewset);
    w->pnewset = NULL;
}

/* ---- create and drop ----------------------------------------------------------------------- */
static vd_status reject(vd_op *op, vd_status s)
{
    op->status = s;
    return VD_OK;
}

/* The index on `path` as this group sees it (dropped ones gone, the created one there). */
static const vd_pdef *group_find(const vd_wcoll *w, const char *path, size_t len)
{
    const vd_pdef *d = vd_pset_find(w->c->pset, path, len);
    if (d && !dropped_here(w, d->no)) return d;
    d = w->pcreated;
    return d && d->path_len == len && !memcmp(d->path, path, len) ? d : NULL;
}

/* One past the largest point id of collection cid (0: none): where a new index's scan may
 * stop, since every point written after the index's creation indexes itself. */
static vd_status scan_end(vd_txn *t, uint32_t cid, uint64_t *end, vd_err *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t kb[VD_KEY_POINT_BYTES];
    uint64_t id;
    int rc;
    *end = 0;
    vd_storage__key_point(kb, cid + 1, 0); /* cid UINT32_MAX is never taken (db.c) */
    vd_status s = vd_storage__cursor_at(t, VD_DB_POINTS, kb, sizeof kb, &cur, &k, &v, &rc, err);
    if (s != VD_OK || !cur) return s;
    rc = mdb_cursor_get(cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    if (rc == 0 && vd_storage__key_point_decode(k.mv_data, k.mv_size, cid, &id)) *end = id + 1;
    mdb_cursor_close(cur);
    return rc && rc != MDB_NOTFOUND ? vd_storage__txn_fail(t, rc, err, "reading") : VD_OK;
}

vd_status vd_storage__op_pindex_create(vd_txn *t, vd_wcoll *w, vd_op *op, vd_err *err)
{
    vd_collection *c = w->c;
    const char *name = c->params.name, *field = op->field ? op->field : "";
    size_t len = strlen(field);
    if (vd_storage__path_check(field, len, &op->err) != VD_OK)
        return reject(op, vd_err_prefix(&op->err, "create_payload_index %s", name));
    if (!vd_pindex_kind_name(op->pindex_kind)[0])
        return reject(op, vd_err_set(&op->err, VD_INVALID, "create_payload_index %s.%s: "
                                     "unknown kind %d", name, field, (int)op->pindex_kind));
    const vd_pdef *same = group_find(w, field, len);
    if (same)
        return reject(op, vd_err_set(&op->err, VD_EXISTS, "create_payload_index %s.%s: the "
                                     "field has a %s index already", name, field,
                                     vd_pindex_kind_name(same->kind)));
    size_t n = (c->pset ? c->pset->n : 0) - w->n_pdropped;
    if (w->pcreated || n >= VD_FILTER_MAX_PINDEXES)
        return reject(op, vd_err_set(&op->err, VD_FULL, "create_payload_index %s.%s: "
                                     "collection %s has %zu payload indexes, the most allowed "
                                     "is %d", name, field, name, n + (w->pcreated != NULL),
                                     VD_FILTER_MAX_PINDEXES));
    uint32_t no = 1;
    for (size_t i = 0; c->pset && i < c->pset->n; i++)
        if (c->pset->defs[i]->no >= no) no = c->pset->defs[i]->no + 1;
    for (size_t i = 0; i < w->n_pdropped; i++)
        if (w->pdropped[i] >= no) no = w->pdropped[i] + 1;
    uint64_t end;
    vd_status s = scan_end(t, c->cid, &end, err);
    vd_pdef *d = s == VD_OK ? vd_calloc(1, sizeof *d) : NULL;
    if (!d) return s != VD_OK ? s : nomem(err);
    *d = (vd_pdef){.no = no, .kind = op->pindex_kind, .path_len = len, .end = end};
    memcpy(d->path, field, len);
    vd_pdef_rec r = {.kind = d->kind, .path = d->path, .path_len = len, .end = end};
    s = vd_storage__pdef_put(t, c->cid, no, &r, err);
    /* The collection's first index: its set now, so the finish cannot fail; its live slots
     * once the group's slots are resolved (vd_storage__plive). */
    if (s == VD_OK && !c->pset && !(w->pnewset = vd_pset_new())) s = nomem(err);
    if (s != VD_OK) {
        vd_pdef_free(d);
        return s;
    }
    w->pcreated = d;
    return VD_OK;
}

vd_status vd_storage__op_pindex_drop(vd_txn *t, vd_wcoll *w, vd_op *op, vd_err *err)
{
    const char *name = w->c->params.name, *field = op->field ? op->field : "";
    size_t len = strlen(field);
    const vd_pdef *d = group_find(w, field, len);
    if (!d)
        return reject(op, vd_err_set(&op->err, VD_NOTFOUND, "drop_payload_index %s: no "
                                     "payload index on field %.*s", name,
                                     (int)(len < 200 ? len : 200), field));
    uint32_t no = d->no;
    vd_status s = vd_storage__pdef_del(t, w->c->cid, no, err);
    if (s == VD_OK) s = vd_storage__pvals_del_all(t, w->c->cid, no, err);
    if (s != VD_OK) return s;
    if (d == w->pcreated) {
        vd_pdef_free(w->pcreated);
        w->pcreated = NULL;
        vd_pset_free(w->pnewset);
        w->pnewset = NULL;
    } else {
        w->pdropped[w->n_pdropped++] = no;
    }
    return VD_OK;
}

/* ---- delete by filter ---------------------------------------------------------------------- */
static int id_in(const uint64_t *sorted, size_t n, uint64_t id)
{
    return n && bsearch(&id, sorted, n, sizeof id, vd_storage__cmp_u64) != NULL;
}

static vd_status push_id(uint64_t **ids, size_t *n, size_t *cap, uint64_t id)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        uint64_t *a = vd_realloc(*ids, c * sizeof *a);
        if (!a) return VD_NOMEM;
        *ids = a;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return VD_OK;
}

/* The ids f matches as the group stands: the compiled set (postings as committed, payloads
 * as the transaction holds them) for every point this group has not changed, and the
 * changed ones evaluated on their payloads now. */
vd_status vd_storage__filter_ids(vd_txn *t, vd_wcoll *w, const vd_filter *f, uint64_t **ids,
                                 size_t *n_ids, vd_err *err)
{
    vd_collection *c = w->c;
    roaring_bitmap_t *set = NULL;
    roaring_uint32_iterator_t *it = NULL;
    size_t n = 0, cap = 0, n_changed = 0;
    uint64_t *out = NULL, *changed = NULL;
    *ids = NULL;
    *n_ids = 0;
    vd_status s = vd_storage__filter_compile(t, c, f, &set, NULL, err);
    if (s == VD_OK && w->n_pending) {
        if (!(changed = vd_malloc(w->n_pending * sizeof *changed))) s = nomem(err);
        else memcpy(changed, w->pending, w->n_pending * sizeof *changed);
        n_changed = w->n_pending;
        qsort(changed, n_changed, sizeof *changed, vd_storage__cmp_u64);
    }
    if (s == VD_OK && !(it = roaring_create_iterator(set))) s = nomem(err);
    for (; s == VD_OK && it->has_value; roaring_advance_uint32_iterator(it)) {
        uint32_t slot = it->current_value;
        uint64_t id;
        const float *v;
        vd_point_rec pr;
        int found;
        if (vd_index_slot_vector(c->ix, slot, &id, &v, NULL) != VD_OK ||
            id_in(changed, n_changed, id))
            continue;
        s = vd_storage__point_get(t, c->cid, &c->params, id, &pr, &found, err);
        if (s == VD_OK && found && pr.slot == slot && push_id(&out, &n, &cap, id)) s = nomem(err);
    }
    for (size_t i = 0; s == VD_OK && i < n_changed; i++) {
        vd_point_rec pr;
        int found;
        json_t *j = NULL;
        if (i && changed[i] == changed[i - 1]) continue;
        s = vd_storage__point_get(t, c->cid, &c->params, changed[i], &pr, &found, err);
        if (s == VD_OK && found && (s = stored_json(c, changed[i], &pr, &j, err)) == VD_OK &&
            vd_storage__filter_match(f, j) && push_id(&out, &n, &cap, changed[i]))
            s = nomem(err);
        json_decref(j);
    }
    roaring_free_uint32_iterator(it);
    if (set) roaring_bitmap_free(set);
    vd_free(changed);
    if (s != VD_OK) {
        vd_free(out);
        return s;
    }
    if (n > 1) qsort(out, n, sizeof *out, vd_storage__cmp_u64);
    *ids = out;
    *n_ids = n;
    return VD_OK;
}

/* ---- building over the stored points ------------------------------------------------------ */
typedef struct build {
    vd_collection *c;
    vd_pdef *d;
    size_t max_points;
    uint64_t resume, scanned; /* after this step */
    int finished;
    vd_pidx *idx; /* finished: the postings */
} build;

/* One point of the scan: indexed unless a write did it already. */
static vd_status build_point(vd_txn *t, build *b, uint64_t id, const MDB_val *v, vd_buf *buf,
                             vd_err *err)
{
    const vd_collection *c = b->c;
    vd_point_rec pr;
    vd_pvals r;
    int found;
    json_t *j = NULL;
    size_t len;
    vd_status s = vd_storage__point_decode(v->mv_data, v->mv_size, &pr, err);
    if (s == VD_OK)
        s = vd_storage__pval_get(t, c->cid, b->d->no, b->d->kind, pr.slot, &r, &found, err);
    if (s != VD_OK || found || !pr.payload) return s;
    if ((s = stored_json(c, id, &pr, &j, err)) == VD_OK)
        s = vd_storage__pvals_extract(b->d->kind, b->d->path, b->d->path_len, j, buf, &len, err);
    json_decref(j);
    if (s == VD_OK && len) s = vd_storage__pval_put(t, c->cid, b->d->no, pr.slot, buf->p, len, err);
    return s;
}

static vd_status build_fill(void *ctx, vd_txn *t, vd_err *err)
{
    build *b = ctx;
    const vd_collection *c = b->c;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t kb[VD_KEY_POINT_BYTES];
    uint64_t id, n = 0;
    vd_buf buf = {0};
    int rc;
    vd_pidx_free(b->idx); /* a retry after MDB_MAP_FULL starts over */
    b->idx = NULL;
    b->finished = 0;
    b->resume = b->d->resume;
    vd_storage__key_point(kb, c->cid, b->d->resume);
    vd_status s = vd_storage__cursor_at(t, VD_DB_POINTS, kb, sizeof kb, &cur, &k, &v, &rc, err);
    while (s == VD_OK && rc == 0 && n < b->max_points &&
           vd_storage__key_point_decode(k.mv_data, k.mv_size, c->cid, &id) && id < b->d->end) {
        /* The cursor stays valid across the puts of other tables. */
        if ((s = build_point(t, b, id, &v, &buf, err)) != VD_OK) break;
        n++;
        b->resume = id + 1;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (s == VD_OK && rc && rc != MDB_NOTFOUND) s = vd_storage__txn_fail(t, rc, err, "reading");
    b->finished = s == VD_OK &&
                  (rc != 0 || !vd_storage__key_point_decode(k.mv_data, k.mv_size, c->cid, &id) ||
                   id >= b->d->end);
    if (cur) mdb_cursor_close(cur);
    vd_storage__buf_free(&buf);
    b->scanned = b->d->scanned + n;
    if (s == VD_OK && b->finished)
        s = vd_storage__pidx_load(t, &c->params, c->cid, b->d->no, b->d->kind, &b->idx, err);
    vd_pdef_rec r = {.kind = b->d->kind, .ready = b->finished, .resume = b->resume,
                     .scanned = b->scanned, .end = b->d->end, .path = b->d->path,
                     .path_len = b->d->path_len};
    if (s == VD_OK) s = vd_storage__pdef_put(t, c->cid, b->d->no, &r, err);
    return s;
}

static void build_log(const build *b, uint64_t now)
{
    const vd_pdef *d = b->d;
    double secs = (double)(now - d->build_start_ns) / 1e9;
    if (b->finished)
        vd_log(VD_LOG_INFO, "payload index %s.%s (%s) ready: %" PRIu64 " points indexed of %"
               PRIu64 " scanned in %.1f s (%.0f points/s)", b->c->params.name, d->path,
               vd_pindex_kind_name(d->kind), vd_pidx_points(b->idx), b->scanned, secs,
               secs > 0 ? (double)b->scanned / secs : 0.0);
    else
        vd_log(VD_LOG_INFO, "payload index %s.%s (%s): %" PRIu64 " of %" PRIu64 " points "
               "scanned", b->c->params.name, d->path, vd_pindex_kind_name(d->kind), b->scanned,
               b->c->count);
}

static void build_end(void *ctx, vd_status s)
{
    build *b = ctx;
    if (s != VD_OK) {
        vd_pidx_free(b->idx);
        b->idx = NULL;
        return;
    }
    uint64_t now = vd_now_ns();
    pthread_rwlock_wrlock(&b->c->flock);
    b->d->resume = b->resume;
    b->d->scanned = b->scanned;
    if (b->finished) {
        b->d->idx = b->idx;
        b->d->ready = 1;
    }
    pthread_rwlock_unlock(&b->c->flock);
    if (b->finished || now - b->d->build_log_ns > 2000000000ull) {
        build_log(b, now);
        b->d->build_log_ns = now;
    }
}

/* The oldest index still building (lowest collection id, then field number), referenced. */
static vd_collection *next_build(vd_store *st, vd_pdef **def)
{
    vd_collection *best = NULL;
    *def = NULL;
    pthread_mutex_lock(&st->cat_mu);
    for (size_t i = 0; i < st->n_colls; i++) {
        vd_collection *c = st->colls[i];
        for (size_t k = 0; c->pset && k < c->pset->n; k++) {
            vd_pdef *d = c->pset->defs[k];
            if (d->ready || (best && (c->cid > best->cid ||
                                      (c->cid == best->cid && d->no > (*def)->no))))
                continue;
            best = c;
            *def = d;
        }
    }
    if (best) vd_storage__coll_ref(best);
    pthread_mutex_unlock(&st->cat_mu);
    return best;
}

vd_status vd_store_pindex_step(vd_store *st, size_t max_points, int *more, vd_err *err)
{
    build b = {.max_points = max_points ? max_points : 1};
    *more = 0;
    if (st->read_only) return vd_err_set(err, VD_INVALID, "%s is open read-only", st->dir);
    if (!(b.c = next_build(st, &b.d))) return VD_OK;
    if (!b.d->build_start_ns) {
        b.d->build_start_ns = b.d->build_log_ns = vd_now_ns();
        vd_log(VD_LOG_INFO, "payload index %s.%s (%s): building over %" PRIu64 " points%s",
               b.c->params.name, b.d->path, vd_pindex_kind_name(b.d->kind), b.c->count,
               b.d->resume ? " (resumed)" : "");
    }
    size_t need = ((size_t)1 << 20) + b.max_points * 512;
    vd_status s = vd_storage__write_txn(st, need, build_fill, build_end, &b, err);
    if (s != VD_OK) vd_err_prefix(err, "building payload index %s.%s", b.c->params.name,
                                  b.d->path);
    vd_collection_release(b.c);
    vd_pdef *d;
    vd_collection *c = next_build(st, &d);
    *more = c != NULL;
    vd_collection_release(c);
    return s;
}

vd_status vd_store_pindex_state(vd_store *st, const char *collection, const char *field,
                                int *building, vd_err *err)
{
    vd_collection *c = NULL;
    vd_status s = vd_store_acquire(st, collection, &c, err);
    if (s != VD_OK) return s;
    pthread_rwlock_rdlock(&c->flock);
    const vd_pdef *d = field ? vd_pset_find(c->pset, field, strlen(field)) : NULL;
    *building = d && !d->ready;
    pthread_rwlock_unlock(&c->flock);
    if (!d) s = vd_err_set(err, VD_NOTFOUND, "collection %s has no payload index on field %s",
                           collection, field ? field : "");
    vd_collection_release(c);
    return s;
}
