/* storage/snapshot.c: read views of what is committed (vd_snapshot_*), for `get`, the
 * payloads of search hits, string ids (id -> key, key -> id), scrolling and an int8 index's
 * re-ranking (vectors by slot).
 *
 * A snapshot is one MDB_RDONLY transaction (the environment is MDB_NOTLS, so any thread may
 * begin it and another end it) that passed the reader gate (env.c): a map resize waits for
 * it to end, which is why a thread must not begin a second one while it holds one. Reads
 * decode through db.c like every other reader: a points record shorter than its slot, a
 * vector record of the wrong length or carrying another id is VD_CORRUPT, never trusted.
 *
 * Pointers returned stay valid until vd_snapshot_end: payloads and aligned vectors point
 * into LMDB's map; a vector LMDB stored at an address not 4-aligned (it aligns values to 2
 * bytes) is copied into a list of copies owned by the snapshot (or, by slot, into the
 * caller's scratch: a re-rank reads dozens per query and keeps none). Float searches do not
 * need a snapshot: they run on the in-memory index. */
#include <inttypes.h>
#include <stdio.h>

#include "storage/storage_int.h"

typedef struct snap_copy {
    struct snap_copy *next;
    float v[];
} snap_copy;

struct vd_snapshot {
    vd_txn t;
    snap_copy *copies; /* aligned copies of vectors LMDB stored at odd addresses */
};

vd_status vd_snapshot_begin(vd_store *st, vd_snapshot **out, vd_err *err)
{
    *out = NULL;
    vd_snapshot *s = vd_calloc(1, sizeof *s);
    if (!s) return vd_err_set(err, VD_NOMEM, "out of memory beginning a snapshot");
    vd_status rs = vd_storage__read_begin(st, &s->t, err, "beginning a read snapshot");
    if (rs != VD_OK) {
        vd_free(s);
        return rs;
    }
    *out = s;
    return VD_OK;
}

void vd_snapshot_end(vd_snapshot *s)
{
    if (!s) return;
    vd_storage__read_end(&s->t);
    while (s->copies) {
        snap_copy *n = s->copies->next;
        vd_free(s->copies);
        s->copies = n;
    }
    vd_free(s);
}

/* The vector of `id` stored in `slot`, aligned and valid until the snapshot ends. */
static vd_status snap_vector(vd_snapshot *s, const vd_collection *c, uint64_t id,
                             uint32_t slot, const float **out, vd_err *err)
{
    vd_vector_rec vr;
    int found;
    vd_status st = vd_storage__vector_get(&s->t, c->cid, &c->params, slot, &vr, &found, err);
    if (st != VD_OK) return st;
    if (!found || vr.id != id)
        return vd_err_set(err, VD_CORRUPT, "collection %s: point %" PRIu64 " has no matching "
                          "vector record (slot %u)", c->params.name, id, slot);
    size_t vb = (size_t)c->params.dim * sizeof(float);
    snap_copy *cp = NULL;
    if ((uintptr_t)vr.vec & (sizeof(float) - 1)) {
        if (!(cp = vd_malloc(sizeof *cp + vb)))
            return vd_err_set(err, VD_NOMEM, "out of memory reading a vector");
        cp->next = s->copies;
        s->copies = cp;
    }
    *out = vd_storage__vector_floats(&vr, c->params.dim, cp ? cp->v : NULL);
    return VD_OK;
}

vd_status vd_snapshot_get(vd_snapshot *s, const vd_collection *c, uint64_t id, int *found_out,
                          const float **vec_out, const uint8_t **payload_out,
                          size_t *payload_len_out, vd_err *err)
{
    vd_point_rec r;
    *found_out = 0;
    if (vec_out) *vec_out = NULL;
    if (payload_out) *payload_out = NULL;
    if (payload_len_out) *payload_len_out = 0;
    vd_status st = vd_storage__point_get(&s->t, c->cid, &c->params, id, &r, found_out, err);
    if (st != VD_OK || !*found_out) {
        *found_out = 0;
        return st;
    }
    if (vec_out && (st = snap_vector(s, c, id, r.slot, vec_out, err)) != VD_OK) {
        *found_out = 0;
        return st;
    }
    if (payload_out) *payload_out = r.payload;
    if (payload_len_out) *payload_len_out = r.payload_len;
    return VD_OK;
}

/* ---- string ids -------------------------------------------------------------------------- */
vd_status vd_snapshot_str_key(vd_snapshot *s, const vd_collection *c, const uint8_t *id,
                              size_t len, uint64_t *key_out, int *found_out, vd_err *err)
{
    *found_out = 0;
    *key_out = VD_ID_NONE;
    if (len == 0 || len > VD_STR_ID_MAX) return VD_OK; /* no such key can be stored */
    vd_status st = vd_storage__sid_get(&s->t, c->cid, &c->params, id, len, key_out, found_out,
                                       err);
    if (st != VD_OK || !*found_out) *key_out = VD_ID_NONE;
    return st;
}

vd_status vd_snapshot_key_str(vd_snapshot *s, const vd_collection *c, uint64_t key,
                              const uint8_t **id_out, size_t *len_out, int *found_out,
                              vd_err *err)
{
    vd_status st = vd_storage__skey_get(&s->t, c->cid, &c->params, key, id_out, len_out,
                                        found_out, err);
    if (st != VD_OK || !*found_out) {
        *found_out = 0;
        *id_out = NULL;
        *len_out = 0;
    }
    return st;
}

/* ---- scrolling -----------------------------------------------------------------------------
 * Integer ids walk `points` (its keys are cid | id big-endian: numeric order); string ids walk
 * `sids` (cid | id bytes: bytewise order, the sequence record first and skipped), each id
 * looked up in `points` by its key. Either way one cursor, positioned after the last id
 * seen, in a snapshot: the caller opens one per page, so a long walk pins no old pages. */
typedef struct scroll_walk {
    vd_snapshot *s;
    const vd_collection *c;
    int with_vectors;
    const vd_filter *filter; /* NULL, or the points to hand over */
    vd_scroll_fn fn;
    void *ctx;
} scroll_walk;

/* Whether the point's payload (NULL: none) matches the walk's filter. Evaluated on the
 * snapshot's own record rather than a vd_filtered set: a page then needs no second read
 * view, and a walk reads every payload it passes anyway. */
static vd_status scroll_match(const scroll_walk *w, const vd_point_rec *r, uint64_t id,
                              int *match, vd_err *err)
{
    json_t *j = NULL;
    *match = 1;
    if (!w->filter) return VD_OK;
    if (r->payload) {
        vd_status st = vd_storage__json_parse(r->payload, r->payload_len, &j, err);
        if (st != VD_OK) { /* it was checked when written: this is damage */
            if (st == VD_INVALID && err) err->code = VD_CORRUPT;
            vd_err_prefix(err, "collection %s: point %" PRIu64, w->c->params.name, id);
            return st == VD_INVALID ? VD_CORRUPT : st;
        }
    }
    *match = vd_storage__filter_match(w->filter, j);
    json_decref(j);
    return VD_OK;
}

/* Hands one point (its points record in v) to the callback: 1 when it said stop. */
static vd_status scroll_one(scroll_walk *w, vd_scroll_point *pt, const MDB_val *v, int *stop,
                            vd_err *err)
{
    vd_point_rec r;
    vd_status st = vd_storage__point_decode(v->mv_data, v->mv_size, &r, err);
    if (st != VD_OK) {
        vd_err_prefix(err, "collection %s: point %" PRIu64, w->c->params.name, pt->id);
        return st;
    }
    int match;
    if ((st = scroll_match(w, &r, pt->id, &match, err)) != VD_OK || !match) return st;
    if (w->with_vectors && (st = snap_vector(w->s, w->c, pt->id, r.slot, &pt->vec, err)))
        return st;
    pt->payload = r.payload;
    pt->payload_len = r.payload_len;
    *stop = w->fn(w->ctx, pt) != 0;
    return VD_OK;
}

/* A string id's point, by its key. */
static vd_status scroll_key(scroll_walk *w, uint64_t key, const uint8_t *id, size_t len,
                            int *stop, vd_err *err)
{
    const vd_collection *c = w->c;
    uint8_t pk[VD_KEY_POINT_BYTES];
    vd_storage__key_point(pk, c->cid, key);
    MDB_val k = {sizeof pk, pk}, v;
    int rc = mdb_get(w->s->t.txn, w->s->t.st->dbi[VD_DB_POINTS], &k, &v);
    if (rc == MDB_NOTFOUND)
        return vd_err_set(err, VD_CORRUPT, "collection %s: string id maps to key %" PRIu64
                          ", which has no point", c->params.name, key);
    if (rc) return vd_storage__txn_fail(&w->s->t, rc, err, "scrolling");
    vd_scroll_point pt = {.id = key, .str_id = id, .str_len = len};
    return scroll_one(w, &pt, &v, stop, err);
}

static vd_status scroll_int(scroll_walk *w, const vd_scroll_from *from, MDB_cursor *cur,
                            int *at_end, vd_err *err)
{
    uint32_t cid = w->c->cid;
    uint8_t kb[VD_KEY_POINT_BYTES];
    int skip = !from->start;
    if (skip && from->id == UINT64_MAX) return *at_end = 1, VD_OK;
    vd_storage__key_point(kb, cid, skip ? from->id + 1 : 0);
    MDB_val k = {sizeof kb, kb}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE), stop = 0;
    vd_status st = VD_OK;
    vd_scroll_point pt;
    while (rc == 0 && !stop && st == VD_OK &&
           vd_storage__key_point_decode(k.mv_data, k.mv_size, cid, &pt.id)) {
        pt = (vd_scroll_point){.id = pt.id};
        if ((st = scroll_one(w, &pt, &v, &stop, err)) == VD_OK && !stop)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (st != VD_OK) return st;
    if (rc && rc != MDB_NOTFOUND) return vd_storage__txn_fail(&w->s->t, rc, err, "scrolling");
    *at_end = !stop;
    return VD_OK;
}

/* One sids record at the cursor: a plain id, or every entry of a bucket after `after`
 * (rest bytes of the position when it lies in this bucket, else NULL). */
static vd_status scroll_sid(scroll_walk *w, const MDB_val *k, const MDB_val *v,
                            const uint8_t *after, size_t after_len, int *stop, vd_err *err)
{
    const vd_collection *c = w->c;
    const uint8_t *id;
    size_t len;
    int bucket;
    vd_status st;
    vd_storage__key_sid_decode(k->mv_data, k->mv_size, c->cid, &id, &len, &bucket);
    if (!bucket) {
        uint64_t key;
        if ((st = vd_storage__sid_decode(v->mv_data, v->mv_size, &key, err)) != VD_OK)
            return vd_err_prefix(err, "collection %s", c->params.name);
        return scroll_key(w, key, id, len, stop, err);
    }
    if ((st = vd_storage__sid_bucket_decode(v->mv_data, v->mv_size, err)) != VD_OK)
        return vd_err_prefix(err, "collection %s", c->params.name);
    uint8_t full[VD_STR_ID_MAX];
    const uint8_t *rest;
    size_t off = 0, rl;
    uint64_t key;
    memcpy(full, id, VD_SID_SPLIT);
    while (!*stop && vd_storage__sid_bucket_next(v->mv_data, v->mv_size, &off, &rest, &rl, &key)) {
        if (after) { /* resume inside this bucket: only rests past the position's */
            int cmp = memcmp(rest, after, rl < after_len ? rl : after_len);
            if (cmp < 0 || (cmp == 0 && rl <= after_len)) continue;
        }
        if (rl) memcpy(full + VD_SID_SPLIT, rest, rl);
        if ((st = scroll_key(w, key, full, VD_SID_SPLIT + rl, stop, err)) != VD_OK) return st;
    }
    return VD_OK;
}

static vd_status scroll_str(scroll_walk *w, const vd_scroll_from *from, MDB_cursor *cur,
                            int *at_end, vd_err *err)
{
    const vd_collection *c = w->c;
    uint8_t kb[VD_KEY_SID_MAX];
    size_t after = from->start ? 0 : from->str_len > VD_STR_ID_MAX ? VD_STR_ID_MAX
                                                                   : from->str_len;
    size_t kn = vd_storage__key_sid(kb, c->cid, from->str, after);
    MDB_val k = {kn, kb}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE), stop = 0;
    vd_status st = VD_OK;
    const uint8_t *id;
    size_t len;
    int bucket;
    /* SET_RANGE lands on the sequence record (key = cid alone) at the start, and on the
     * position's own record when it still exists: a plain id is skipped, a bucket resumes
     * after the position's rest. */
    if (rc == 0 && k.mv_size == VD_KEY_CID_BYTES && vd_get_u32be(k.mv_data) == c->cid)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    int at_pos = rc == 0 && !from->start && k.mv_size == kn && memcmp(k.mv_data, kb, kn) == 0;
    if (at_pos && after < VD_SID_SPLIT) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        at_pos = 0;
    }
    while (rc == 0 && !stop && st == VD_OK &&
           vd_storage__key_sid_decode(k.mv_data, k.mv_size, c->cid, &id, &len, &bucket)) {
        st = scroll_sid(w, &k, &v, at_pos ? from->str + VD_SID_SPLIT : NULL,
                        at_pos ? after - VD_SID_SPLIT : 0, &stop, err);
        at_pos = 0;
        if (st == VD_OK && !stop) rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (st != VD_OK) return st;
    if (rc && rc != MDB_NOTFOUND) return vd_storage__txn_fail(&w->s->t, rc, err, "scrolling");
    *at_end = !stop;
    return VD_OK;
}

vd_status vd_snapshot_scroll(vd_snapshot *s, const vd_collection *c, const vd_scroll_from *from,
                             int with_vectors, const vd_filter *filter, vd_scroll_fn fn,
                             void *ctx, int *at_end, vd_err *err)
{
    int str = c->params.id_type == VD_ID_STR;
    vd_db db = str ? VD_DB_SIDS : VD_DB_POINTS;
    MDB_cursor *cur = NULL;
    *at_end = 1;
    if (!vd_storage__db_present(s->t.st, db)) return VD_OK;
    int rc = mdb_cursor_open(s->t.txn, s->t.st->dbi[db], &cur);
    if (rc) return vd_storage__txn_fail(&s->t, rc, err, "scrolling");
    scroll_walk w = {
        .s = s, .c = c, .with_vectors = with_vectors, .filter = filter, .fn = fn, .ctx = ctx};
    vd_status st = str ? scroll_str(&w, from, cur, at_end, err)
                       : scroll_int(&w, from, cur, at_end, err);
    mdb_cursor_close(cur);
    return st;
}

/* ---- an int8 index's re-ranking ---------------------------------------------------------- */
const float *vd_snapshot_slot_vector(vd_snapshot *s, const vd_collection *c, uint32_t slot,
                                     uint64_t id, float *scratch, vd_err *err)
{
    vd_vector_rec vr;
    int found = 0;
    if (vd_storage__vector_get(&s->t, c->cid, &c->params, slot, &vr, &found, err) != VD_OK ||
        !found || vr.id != id)
        return NULL;
    return vd_storage__vector_floats(&vr, c->params.dim, scratch);
}
