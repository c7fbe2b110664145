/* storage/check.c: the integrity check, vd_store_check.
 *
 * It reads everything stored in one read transaction, decoding every record with the codec
 * (the same length rules as load and the write group), and compares it three ways:
 *  - records with records: every points record names a slot whose vector record carries the
 *    same id; every vector record has a links record and vice versa; slots lie below the
 *    graph header's high-water mark; catalog counts equal the points records; no record of
 *    any collection-keyed table belongs to a collection id the catalog does not know;
 *    payloads are JSON objects; string ids map both ways (check_str_ids);
 *  - records with the loaded graph: each stored point is live in the index with exactly the
 *    stored vector (an int8 index: the codes it encodes to), each links record is what the index would write (unless the slot changed
 *    in memory since the last commit: publish-time repairs are persisted by the next group),
 *    and the index holds as many live points as are stored;
 *  - the graph with itself: vd_index_validate (links in range and to used slots, no self or
 *    duplicate links, reachability from the entry point). The links record's byte format is
 *    the index's, so link targets are checked through the graph the records loaded into
 *    (vd_index_load_slot validated each record, load_finish and vd_index_validate the whole),
 *    not by parsing them here.
 * Each problem is one report line; at most REPORT_MAX lines per collection and kind, then a
 * count. A damaged record is a problem reported, an LMDB failure ends the check with its
 * status. Because it calls writer-only index functions (vd_index_vector_matches,
 * vd_index_changes, vd_index_validate), vd_store_check runs on the writer thread or with no
 * writer at all (vectord check). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/storage_int.h"

#define REPORT_MAX 20

typedef struct checker {
    vd_store *st;
    vd_txn t;
    vd_report_fn report;
    void *ctx;
    uint64_t n_problems;
    vd_err *err; /* the fatal error, when a step returns one */
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
static void capped_end(checker *k, const char *coll, const capped *c)
{
    if (c->n > REPORT_MAX && k->report) {
        char line[256];
        snprintf(line, sizeof line, "collection %s: ... and %" PRIu64 " more: %s", coll,
                 c->n - REPORT_MAX, c->what);
        k->report(k->ctx, line);
    }
}

/* A payload index as stored, with what the points walk found. */
typedef struct pcheck {
    uint32_t no;
    vd_pdef_rec r;
    char path[VD_FILTER_MAX_PATH_BYTES + 1];
    uint64_t n_records; /* values records the points walk found where expected */
} pcheck;

/* What one collection's check carries from step to step. */
typedef struct ccheck {
    const vd_catalog_rec *r;
    vd_collection *c; /* the loaded collection, or NULL */
    float *vbuf;      /* dim floats */
    uint8_t *dirty;   /* per slot: changed in memory since the last commit */
    size_t n_dirty_cap, n_dirty;
    uint64_t n_points, n_vectors;
    capped bad_point, not_in_graph, bad_payload, bad_slot, bad_sid, bad_pvals;
    uint64_t *vec_ids; /* string ids: the key of every stored vector record, for check_skeys */
    size_t n_vec_ids, cap_vec_ids;
    pcheck pdefs[VD_FILTER_MAX_PINDEXES];
    size_t n_pdefs;
    vd_buf pbuf;
} ccheck;

/* A failed read: VD_OK (a damaged record, reported by the caller) or the fatal status. */
static vd_status read_failed(checker *k, vd_status s, const vd_err *e)
{
    if (s == VD_OK || !k->t.mdb_rc) return VD_OK;
    if (k->err) *k->err = *e;
    return s;
}

/* ---- string ids ----------------------------------------------------------------------------
 * A collection of string ids also holds, in sids, id -> key for every point and the sequence
 * record, and in skeys key -> id for every point plus the keys of deleted points whose last
 * slot is not freed yet (storage/strids.c). Checked: the point's key maps to an id that maps
 * back to it; every id maps to a key below the sequence's next key whose point exists; the
 * ids are as many as the points and sum to the sequence's bytes; every key -> id record
 * holds a valid id below the next key and is a live point's or a stored slot's. */
/* The key of a stored point: key -> id -> key. */
static vd_status check_key_maps(checker *k, ccheck *x, uint64_t key)
{
    const char *name = x->r->params.name;
    const uint8_t *id;
    size_t len;
    uint64_t back = 0;
    int found;
    vd_err e;
    vd_status s = vd_storage__skey_get(&k->t, x->r->cid, &x->r->params, key, &id, &len, &found,
                                       &e);
    if (s != VD_OK || !found) {
        CAPPED(k, &x->bad_sid, "collection %s: point of key %" PRIu64 " has no string id%s%s",
               name, key, s != VD_OK ? ": " : "", s != VD_OK ? e.msg : "");
        return read_failed(k, s, &e);
    }
    s = vd_storage__sid_get(&k->t, x->r->cid, &x->r->params, id, len, &back, &found, &e);
    if (s != VD_OK || !found || back != key) {
        char label[64];
        vd_str_id_label(id, len, label, sizeof label);
        CAPPED(k, &x->bad_sid, "collection %s: string id %s of key %" PRIu64 " maps to %s",
               name, label, key, s != VD_OK ? e.msg : found ? "another key" : "nothing");
    }
    return read_failed(k, s, &e);
}

/* One id -> key mapping (the key decoded, or pk_err set when it could not be). */
static vd_status check_sid(checker *k, ccheck *x, const vd_sidseq *seq, const uint8_t *id,
                           size_t len, uint64_t pk, const vd_err *pk_err)
{
    const char *name = x->r->params.name;
    vd_point_rec pr;
    int found = 0;
    char label[64];
    vd_err e;
    vd_status s = VD_OK;
    vd_str_id_label(id, len, label, sizeof label);
    if (pk_err || vd_str_id_check(id, len, &e) != VD_OK)
        CAPPED(k, &x->bad_sid, "collection %s: string id %s: %s", name, label,
               pk_err ? pk_err->msg : e.msg);
    else if (pk >= seq->next_key)
        CAPPED(k, &x->bad_sid, "collection %s: string id %s maps to key %" PRIu64 ", not "
               "below the sequence's %" PRIu64, name, label, pk, seq->next_key);
    else if ((s = vd_storage__point_get(&k->t, x->r->cid, &x->r->params, pk, &pr, &found, &e)),
             s == VD_OK && !found)
        CAPPED(k, &x->bad_sid, "collection %s: string id %s maps to key %" PRIu64 ", which "
               "has no point", name, label, pk);
    return read_failed(k, s, &e);
}

/* One sids record: a plain id, or each id of a bucket. */
static vd_status check_sid_record(checker *k, ccheck *x, const vd_sidseq *seq,
                                  const MDB_val *key, const MDB_val *val, uint64_t *n,
                                  uint64_t *bytes)
{
    const uint8_t *id, *rest;
    size_t len, off = 0, rl;
    int bucket;
    uint64_t pk = 0;
    vd_err e;
    vd_storage__key_sid_decode(key->mv_data, key->mv_size, x->r->cid, &id, &len, &bucket);
    if (!bucket) {
        (*n)++;
        *bytes += len;
        vd_status ds = vd_storage__sid_decode(val->mv_data, val->mv_size, &pk, &e);
        return check_sid(k, x, seq, id, len, pk, ds == VD_OK ? NULL : &e);
    }
    if (vd_storage__sid_bucket_decode(val->mv_data, val->mv_size, &e) != VD_OK) {
        CAPPED(k, &x->bad_sid, "collection %s: %s", x->r->params.name, e.msg);
        return VD_OK;
    }
    uint8_t full[VD_STR_ID_MAX];
    memcpy(full, id, VD_SID_SPLIT);
    vd_status s = VD_OK;
    while (s == VD_OK && vd_storage__sid_bucket_next(val->mv_data, val->mv_size, &off, &rest,
                                                     &rl, &pk)) {
        if (rl) memcpy(full + VD_SID_SPLIT, rest, rl);
        (*n)++;
        *bytes += VD_SID_SPLIT + rl;
        s = check_sid(k, x, seq, full, VD_SID_SPLIT + rl, pk, NULL);
    }
    return s;
}

static vd_status check_sids(checker *k, ccheck *x, vd_sidseq *seq)
{
    const char *name = x->r->params.name;
    uint32_t cid = x->r->cid;
    MDB_cursor *cur = NULL;
    uint8_t kb[VD_KEY_CID_BYTES];
    vd_storage__key_cid(kb, cid);
    MDB_val key = {sizeof kb, kb}, val;
    uint64_t n = 0, bytes = 0;
    const uint8_t *id;
    size_t len;
    int bucket;
    vd_err e;
    vd_status s = vd_storage__sidseq_get(&k->t, cid, &x->r->params, seq, &e);
    if (s != VD_OK) {
        problem(k, "collection %s: %s", name, e.msg);
        return read_failed(k, s, &e);
    }
    int rc = mdb_cursor_open(k->t.txn, k->st->dbi[VD_DB_SIDS], &cur);
    if (rc) return vd_storage__txn_fail(&k->t, rc, k->err, "checking");
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (rc == 0 && key.mv_size == VD_KEY_CID_BYTES && vd_get_u32be(key.mv_data) == cid)
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    while (s == VD_OK && rc == 0 &&
           vd_storage__key_sid_decode(key.mv_data, key.mv_size, cid, &id, &len, &bucket)) {
        s = check_sid_record(k, x, seq, &key, &val, &n, &bytes);
        if (s == VD_OK) rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (s == VD_OK && rc && rc != MDB_NOTFOUND)
        return vd_storage__txn_fail(&k->t, rc, k->err, "checking");
    if (s != VD_OK) return s;
    if (n != x->n_points)
        problem(k, "collection %s: %" PRIu64 " string ids for %" PRIu64 " points", name, n,
                x->n_points);
    if (bytes != seq->id_bytes)
        problem(k, "collection %s: the string ids hold %" PRIu64 " bytes, the sequence record "
                "says %" PRIu64, name, bytes, seq->id_bytes);
    return VD_OK;
}

static vd_status check_skeys(checker *k, ccheck *x, const vd_sidseq *seq)
{
    const char *name = x->r->params.name;
    uint32_t cid = x->r->cid;
    MDB_cursor *cur = NULL;
    uint8_t kb[VD_KEY_POINT_BYTES];
    vd_storage__key_point(kb, cid, 0);
    MDB_val key = {sizeof kb, kb}, val;
    uint64_t pk;
    int sorted = x->cap_vec_ids != SIZE_MAX;
    if (sorted && x->n_vec_ids > 1)
        qsort(x->vec_ids, x->n_vec_ids, sizeof *x->vec_ids, vd_storage__cmp_u64);
    int rc = mdb_cursor_open(k->t.txn, k->st->dbi[VD_DB_SKEYS], &cur);
    if (rc) return vd_storage__txn_fail(&k->t, rc, k->err, "checking");
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    vd_status s = VD_OK;
    while (rc == 0 && vd_storage__key_point_decode(key.mv_data, key.mv_size, cid, &pk)) {
        vd_point_rec pr;
        int found = 0;
        vd_err e;
        if (vd_storage__skey_decode(val.mv_data, val.mv_size, &e) != VD_OK)
            CAPPED(k, &x->bad_sid, "collection %s: key %" PRIu64 ": %s", name, pk, e.msg);
        else if (pk >= seq->next_key)
            CAPPED(k, &x->bad_sid, "collection %s: key %" PRIu64 " has a string id but is not "
                   "below the sequence's %" PRIu64, name, pk, seq->next_key);
        else if ((s = vd_storage__point_get(&k->t, cid, &x->r->params, pk, &pr, &found, &e)),
                 s == VD_OK && !found && sorted &&
                     !bsearch(&pk, x->vec_ids, x->n_vec_ids, sizeof pk, vd_storage__cmp_u64))
            CAPPED(k, &x->bad_sid, "collection %s: key %" PRIu64 " of a deleted point keeps "
                   "its string id with no slot holding it", name, pk);
        if ((s = read_failed(k, s, &e)) != VD_OK) break;
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (s == VD_OK && rc && rc != MDB_NOTFOUND)
        return vd_storage__txn_fail(&k->t, rc, k->err, "checking");
    return s;
}

static vd_status check_str_ids(checker *k, ccheck *x)
{
    vd_sidseq seq;
    if (x->r->params.id_type != VD_ID_STR) return VD_OK;
    if (!vd_storage__db_present(k->st, VD_DB_SIDS) || !vd_storage__db_present(k->st, VD_DB_SKEYS)) {
        if (x->n_points) problem(k, "collection %s has string ids but no id tables",
                                 x->r->params.name);
        return VD_OK;
    }
    vd_status s = check_sids(k, x, &seq);
    return s == VD_OK ? check_skeys(k, x, &seq) : s;
}

/* ---- payload indexes ------------------------------------------------------------------ */
/* Every definition stored for the collection into x->pdefs. */
static vd_status read_pdefs(checker *k, ccheck *x)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    uint8_t kb[VD_KEY_PDEF_BYTES];
    uint32_t no;
    int rc;
    vd_err e;
    vd_storage__key_pdef(kb, x->r->cid, 0);
    vd_status s = vd_storage__cursor_at(&k->t, VD_DB_PINDEXES, kb, sizeof kb, &cur, &key, &val,
                                        &rc, k->err);
    while (s == VD_OK && rc == 0 &&
           vd_storage__key_pdef_decode(key.mv_data, key.mv_size, x->r->cid, &no)) {
        pcheck p = {.no = no};
        if (vd_storage__pdef_decode(val.mv_data, val.mv_size, &p.r, &e) != VD_OK) {
            problem(k, "collection %s: payload index %u: %s", x->r->params.name, no, e.msg);
        } else if (x->n_pdefs == VD_FILTER_MAX_PINDEXES) {
            problem(k, "collection %s: more than %d payload indexes", x->r->params.name,
                    VD_FILTER_MAX_PINDEXES);
        } else {
            memcpy(p.path, p.r.path, p.r.path_len);
            p.r.path = p.path;
            for (size_t i = 0; i < x->n_pdefs; i++)
                if (!strcmp(x->pdefs[i].path, p.path))
                    problem(k, "collection %s: two payload indexes on field %s",
                            x->r->params.name, p.path);
            x->pdefs[x->n_pdefs++] = p;
        }
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    if (cur) mdb_cursor_close(cur);
    if (s == VD_OK && rc && rc != MDB_NOTFOUND)
        s = vd_storage__txn_fail(&k->t, rc, k->err, "checking");
    return s;
}

/* Each index's values record of point id (in slot) against its payload j. */
static vd_status check_point_pvals(checker *k, ccheck *x, uint64_t id, uint32_t slot,
                                   const json_t *j)
{
    const char *name = x->r->params.name;
    for (size_t i = 0; i < x->n_pdefs; i++) {
        pcheck *p = &x->pdefs[i];
        size_t len = 0;
        vd_pvals have;
        int found;
        vd_err e;
        vd_status s = vd_storage__pvals_extract(p->r.kind, p->path, p->r.path_len, j, &x->pbuf,
                                                &len, k->err);
        if (s != VD_OK) return s;
        s = vd_storage__pval_get(&k->t, x->r->cid, p->no, p->r.kind, slot, &have, &found, &e);
        if (s != VD_OK && k->t.mdb_rc) return read_failed(k, s, &e);
        if (s != VD_OK) {
            CAPPED(k, &x->bad_pvals, "collection %s: point %" PRIu64 ": %s", name, id, e.msg);
            continue;
        }
        p->n_records += found;
        const uint8_t *w = x->pbuf.p;
        if (!found && len && (p->r.ready || id < p->r.resume))
            CAPPED(k, &x->bad_pvals, "collection %s: point %" PRIu64 ": payload index on %s "
                   "has no values for it", name, id, p->path);
        else if (found && !len)
            CAPPED(k, &x->bad_pvals, "collection %s: point %" PRIu64 ": payload index on %s "
                   "holds values the payload does not have", name, id, p->path);
        else if (found && (have.flags != w[2] || have.n != vd_get_u32le(w + 4) ||
                           have.vals_len != len - VD_PVAL_REC_MIN ||
                           memcmp(have.vals, w + VD_PVAL_REC_MIN, have.vals_len) != 0))
            CAPPED(k, &x->bad_pvals, "collection %s: point %" PRIu64 ": payload index on %s "
                   "holds other values than the payload", name, id, p->path);
    }
    return VD_OK;
}

/* After the points walk: records of no point, and the postings in memory. */
static vd_status check_pindexes(checker *k, ccheck *x)
{
    const char *name = x->r->params.name;
    vd_status s = VD_OK;
    for (size_t i = 0; i < x->n_pdefs && s == VD_OK; i++) {
        pcheck *p = &x->pdefs[i];
        MDB_cursor *cur = NULL;
        MDB_val key, val;
        uint8_t kb[VD_KEY_PVAL_BYTES];
        uint32_t slot;
        uint64_t n = 0;
        int rc;
        vd_storage__key_pval(kb, x->r->cid, p->no, 0);
        s = vd_storage__cursor_at(&k->t, VD_DB_PVALUES, kb, sizeof kb, &cur, &key, &val, &rc,
                                  k->err);
        while (s == VD_OK && rc == 0 &&
               vd_storage__key_pval_decode(key.mv_data, key.mv_size, x->r->cid, p->no, &slot)) {
            n++;
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }
        if (cur) mdb_cursor_close(cur);
        if (s != VD_OK) break;
        if (n != p->n_records)
            problem(k, "collection %s: payload index on %s has %" PRIu64 " values records, %"
                    PRIu64 " of them for stored points", name, p->path, n, p->n_records);
        const vd_pdef *d = x->c ? vd_pset_find(x->c->pset, p->path, p->r.path_len) : NULL;
        if (x->c && (!d || d->no != p->no || d->ready != p->r.ready || d->kind != p->r.kind)) {
            problem(k, "collection %s: payload index on %s is stored %s but loaded otherwise",
                    name, p->path, p->r.ready ? "ready" : "building");
            continue;
        }
        if (!d || !d->ready) continue;
        vd_pidx *fresh = NULL;
        if ((s = vd_storage__pidx_load(&k->t, &x->r->params, x->r->cid, p->no, p->r.kind,
                                       &fresh, k->err)) != VD_OK)
            break;
        if (!vd_pidx_same(d->idx, fresh))
            problem(k, "collection %s: payload index on %s: the postings in memory differ from "
                    "its values records", name, p->path);
        vd_pidx_free(fresh);
    }
    if (s != VD_OK || !x->c) return s;
    if (x->c->pset && x->c->pset->n != x->n_pdefs)
        problem(k, "collection %s: %zu payload indexes loaded, %zu stored", name,
                x->c->pset->n, x->n_pdefs);
    if (x->c->pset) {
        roaring_bitmap_t *live = NULL;
        if ((s = vd_storage__live_load(&k->t, x->r->cid, &live, k->err)) != VD_OK) return s;
        if (!roaring_bitmap_equals(live, x->c->pset->live))
            problem(k, "collection %s: the payload indexes' live slots differ from the points",
                    name);
        roaring_bitmap_free(live);
    }
    return VD_OK;
}

/* One points record: payload, vector record, graph. */
static vd_status check_point(checker *k, ccheck *x, uint64_t id, const MDB_val *val)
{
    const char *name = x->r->params.name;
    vd_point_rec pr;
    vd_vector_rec vr;
    vd_err e;
    int found = 0;
    if (vd_storage__point_decode(val->mv_data, val->mv_size, &pr, &e) != VD_OK) {
        CAPPED(k, &x->bad_point, "collection %s: point %" PRIu64 ": %s", name, id, e.msg);
        return VD_OK;
    }
    json_t *j = NULL;
    if (pr.payload && vd_storage__json_parse(pr.payload, pr.payload_len, &j, &e) != VD_OK)
        CAPPED(k, &x->bad_payload, "collection %s: point %" PRIu64 ": %s", name, id, e.msg);
    vd_status s = check_point_pvals(k, x, id, pr.slot, j);
    json_decref(j);
    if (s != VD_OK) return s;
    s = vd_storage__vector_get(&k->t, x->r->cid, &x->r->params, pr.slot, &vr, &found, &e);
    if (s != VD_OK || !found || vr.id != id) {
        CAPPED(k, &x->bad_point, "collection %s: point %" PRIu64 " names slot %u, which holds "
               "no vector record for it", name, id, pr.slot);
        return read_failed(k, s, &e);
    }
    if (x->r->params.id_type == VD_ID_STR && (s = check_key_maps(k, x, id)) != VD_OK) return s;
    if (!x->c) return VD_OK;
    /* The stored floats against what the graph holds: the same floats, or (int8) the codes
     * they encode to. */
    const float *sv = vd_storage__vector_floats(&vr, x->r->params.dim, x->vbuf);
    vd_status m = vd_index_vector_matches(x->c->ix, id, sv, NULL);
    if (m == VD_NOTFOUND)
        CAPPED(k, &x->not_in_graph, "collection %s: point %" PRIu64 " is not in the graph",
               name, id);
    else if (m != VD_OK)
        CAPPED(k, &x->not_in_graph, "collection %s: point %" PRIu64 " has a different vector "
               "in the graph than on disk", name, id);
    return VD_OK;
}

static vd_status check_points(checker *k, ccheck *x)
{
    MDB_cursor *cur = NULL;
    uint8_t kb[VD_KEY_POINT_BYTES];
    vd_storage__key_point(kb, x->r->cid, 0);
    MDB_val key = {sizeof kb, kb}, val;
    vd_status s = VD_OK;
    uint64_t id;
    int rc = mdb_cursor_open(k->t.txn, k->st->dbi[VD_DB_POINTS], &cur);
    if (rc) return vd_storage__txn_fail(&k->t, rc, k->err, "checking");
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (s == VD_OK && rc == 0 &&
           vd_storage__key_point_decode(key.mv_data, key.mv_size, x->r->cid, &id)) {
        x->n_points++;
        s = check_point(k, x, id, &val);
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (s == VD_OK && rc && rc != MDB_NOTFOUND)
        s = vd_storage__txn_fail(&k->t, rc, k->err, "checking");
    return s;
}

static int mark_dirty(void *ctx, uint32_t slot, vd_change_kind kind)
{
    ccheck *x = ctx;
    (void)kind;
    if (slot < x->n_dirty_cap) x->dirty[slot] = 1;
    x->n_dirty++;
    return 0;
}

/* 1 if the stored links record of `slot` is not what the loaded graph would write. */
static int links_differ(checker *k, const ccheck *x, uint32_t slot, const MDB_val *vl)
{
    size_t len = 0;
    vd_buf *b = &k->st->buf;
    vd_status s = vd_storage__links_encode(x->c->ix, slot, b, &len, NULL);
    return s != VD_OK || len != vl->mv_size || memcmp(b->p, vl->mv_data, len) != 0;
}

/* Remembers a vector record's key (string ids); on allocation failure the dead-key check is
 * skipped rather than wrong. */
static void note_vec_id(ccheck *x, uint64_t id)
{
    if (x->n_vec_ids == x->cap_vec_ids) {
        size_t cap = x->cap_vec_ids ? 2 * x->cap_vec_ids : 1024;
        uint64_t *a = vd_realloc(x->vec_ids, cap * sizeof *a);
        if (!a) {
            x->cap_vec_ids = SIZE_MAX; /* stop collecting */
            return;
        }
        x->vec_ids = a;
        x->cap_vec_ids = cap;
    }
    if (x->cap_vec_ids != SIZE_MAX) x->vec_ids[x->n_vec_ids++] = id;
}

/* One slot with both records. */
static void check_slot(checker *k, ccheck *x, uint32_t slot, const MDB_val *vv,
                       const MDB_val *vl)
{
    const char *name = x->r->params.name;
    vd_vector_rec vr;
    vd_err e;
    x->n_vectors++;
    if (vd_storage__vector_decode(vv->mv_data, vv->mv_size, x->r->params.dim, &vr, &e))
        CAPPED(k, &x->bad_slot, "collection %s: slot %u: %s", name, slot, e.msg);
    else if (x->r->params.id_type == VD_ID_STR)
        note_vec_id(x, vr.id);
    if (slot >= x->r->hdr.n_slots)
        CAPPED(k, &x->bad_slot, "collection %s: slot %u lies beyond the graph header's %u "
               "slots", name, slot, x->r->hdr.n_slots);
    if (x->c && !(slot < x->n_dirty_cap && x->dirty[slot]) && links_differ(k, x, slot, vl))
        CAPPED(k, &x->bad_slot, "collection %s: the links record of slot %u differs from the "
               "graph in memory", name, slot);
}

#define NO_SLOT UINT64_MAX
static uint64_t cursor_slot(int rc, const MDB_val *key, uint32_t cid)
{
    uint32_t slot;
    if (rc == 0 && vd_storage__key_slot_decode(key->mv_data, key->mv_size, cid, &slot))
        return slot;
    return NO_SLOT;
}

/* vectors <-> links, walked side by side in slot order. */
static vd_status check_slots(checker *k, ccheck *x)
{
    const char *name = x->r->params.name;
    uint32_t cid = x->r->cid;
    MDB_cursor *cv = NULL, *cl = NULL;
    uint8_t k0[VD_KEY_SLOT_BYTES];
    vd_storage__key_slot(k0, cid, 0);
    MDB_val kv = {sizeof k0, k0}, vv, kl = {sizeof k0, k0}, vl;
    int rc, rv = 0, rl = 0;
    if ((rc = mdb_cursor_open(k->t.txn, k->st->dbi[VD_DB_VECTORS], &cv)) ||
        (rc = mdb_cursor_open(k->t.txn, k->st->dbi[VD_DB_LINKS], &cl)))
        goto out;
    rv = mdb_cursor_get(cv, &kv, &vv, MDB_SET_RANGE);
    rl = mdb_cursor_get(cl, &kl, &vl, MDB_SET_RANGE);
    while ((rv == 0 || rv == MDB_NOTFOUND) && (rl == 0 || rl == MDB_NOTFOUND)) {
        uint64_t sv = cursor_slot(rv, &kv, cid), sl = cursor_slot(rl, &kl, cid);
        if (sv == NO_SLOT && sl == NO_SLOT) break;
        if (sv == sl) check_slot(k, x, (uint32_t)sv, &vv, &vl);
        else if (sv < sl)
            CAPPED(k, &x->bad_slot, "collection %s: slot %" PRIu64 " has a vector record but "
                   "no links record", name, sv);
        else
            CAPPED(k, &x->bad_slot, "collection %s: slot %" PRIu64 " has a links record but "
                   "no vector record", name, sl);
        if (sv <= sl) rv = mdb_cursor_get(cv, &kv, &vv, MDB_NEXT);
        if (sl <= sv) rl = mdb_cursor_get(cl, &kl, &vl, MDB_NEXT);
    }
    rc = rv && rv != MDB_NOTFOUND ? rv : rl && rl != MDB_NOTFOUND ? rl : 0;
out:
    if (cv) mdb_cursor_close(cv);
    if (cl) mdb_cursor_close(cl);
    return rc ? vd_storage__txn_fail(&k->t, rc, k->err, "checking") : VD_OK;
}

/* Counts against the catalog and the loaded graph, and the graph's own invariants. */
static void check_counts(checker *k, const ccheck *x)
{
    const char *name = x->r->params.name;
    if (x->n_points != x->r->count)
        problem(k, "collection %s: the catalog counts %" PRIu64 " points, %" PRIu64 " are stored",
                name, x->r->count, x->n_points);
    if (x->n_vectors < x->n_points)
        problem(k, "collection %s: %" PRIu64 " vector records for %" PRIu64 " points", name,
                x->n_vectors, x->n_points);
    if (!x->c) return;
    vd_index_header h;
    vd_index_header_get(x->c->ix, &h);
    uint64_t n_filled = 0;
    for (uint32_t slot = 0; slot < h.n_slots; slot++) {
        uint64_t id;
        const float *v;
        if (vd_index_slot_vector(x->c->ix, slot, &id, &v, NULL) == VD_OK) n_filled++;
    }
    if (x->n_dirty == 0 && n_filled != x->n_vectors)
        problem(k, "collection %s: the graph fills %" PRIu64 " slots, %" PRIu64 " are stored",
                name, n_filled, x->n_vectors);
    if (vd_index_count(x->c->ix) != x->n_points)
        problem(k, "collection %s: the graph holds %zu live points, %" PRIu64 " are stored",
                name, vd_index_count(x->c->ix), x->n_points);
    vd_err e;
    if (vd_index_validate(x->c->ix, &e) != VD_OK)
        problem(k, "collection %s: graph: %s", name, e.msg);
}

static vd_status check_collection(checker *k, const vd_catalog_rec *r, float *vbuf)
{
    ccheck x = {.r = r, .vbuf = vbuf,
                .bad_point = {"points records without a matching vector record", 0},
                .not_in_graph = {"points missing from the graph or with a different vector", 0},
                .bad_payload = {"payloads that are not JSON objects", 0},
                .bad_slot = {"vector/links record mismatches", 0},
                .bad_sid = {"string id problems", 0},
                .bad_pvals = {"payload index values that differ from the payloads", 0}};
    vd_status s = VD_OK;
    const char *name = r->params.name;
    x.c = vd_storage__catalog_find(k->st, name);
    if (!x.c) problem(k, "collection %s is stored but was not loaded", name);
    else if (x.c->cid != r->cid)
        problem(k, "collection %s: loaded with id %u, stored with id %u", name, x.c->cid, r->cid);
    if (x.c) {
        /* Slots changed in memory since the last commit (publish-time repairs) legitimately
         * differ from their records until the next group or the flush at close. */
        vd_index_header h;
        vd_index_header_get(x.c->ix, &h);
        x.n_dirty_cap = h.n_slots;
        if (!(x.dirty = vd_calloc(x.n_dirty_cap + 1, 1))) {
            s = vd_err_set(k->err, VD_NOMEM, "out of memory checking %s", k->st->dir);
            goto out;
        }
        vd_storage__changes(x.c->ix, mark_dirty, &x);
    }
    if ((s = read_pdefs(k, &x)) != VD_OK || (s = check_points(k, &x)) != VD_OK ||
        (s = check_slots(k, &x)) != VD_OK || (s = check_str_ids(k, &x)) != VD_OK ||
        (s = check_pindexes(k, &x)) != VD_OK)
        goto out;
    check_counts(k, &x);
    capped_end(k, name, &x.bad_point);
    capped_end(k, name, &x.not_in_graph);
    capped_end(k, name, &x.bad_payload);
    capped_end(k, name, &x.bad_slot);
    capped_end(k, name, &x.bad_sid);
    capped_end(k, name, &x.bad_pvals);
out:
    vd_storage__buf_free(&x.pbuf);
    vd_free(x.dirty);
    vd_free(x.vec_ids);
    vd_collection_release(x.c);
    return s;
}

/* ---- the whole store --------------------------------------------------------------------- */
static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Records of table db whose collection id the catalog does not know, one line per id. */
static vd_status check_orphans(checker *k, vd_db db, const uint32_t *cids, size_t n_cids)
{
    const vd_db_info *d = vd_storage__db_info(db);
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    uint32_t cid;
    int rc = mdb_cursor_open(k->t.txn, k->st->dbi[db], &cur);
    if (rc) return vd_storage__txn_fail(&k->t, rc, k->err, "checking");
    rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    while (rc == 0) {
        if (!vd_storage__key_cid_decode(db, key.mv_data, key.mv_size, &cid)) {
            if (d->cid_key_bytes == VD_KEY_VARIABLE)
                problem(k, "%s: a record has a %zu-byte key, shorter than a collection id",
                        d->name, key.mv_size);
            else
                problem(k, "%s: a record has a %zu-byte key, expected %zu", d->name,
                        key.mv_size, d->cid_key_bytes);
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
            continue;
        }
        if (n_cids && bsearch(&cid, cids, n_cids, sizeof *cids, cmp_u32)) {
            /* Skip the whole known range at once. */
            if (cid == UINT32_MAX) break;
            uint8_t next[VD_KEY_CID_BYTES];
            vd_storage__key_cid(next, cid + 1);
            key = (MDB_val){sizeof next, next};
            rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
            continue;
        }
        uint64_t n = 0;
        uint32_t c2;
        while (rc == 0 && vd_storage__key_cid_decode(db, key.mv_data, key.mv_size, &c2) &&
               c2 == cid) {
            n++;
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }
        problem(k, "%s: %" PRIu64 " records belong to collection id %u, which the catalog does "
                "not know", d->name, n, cid);
    }
    mdb_cursor_close(cur);
    return rc && rc != MDB_NOTFOUND ? vd_storage__txn_fail(&k->t, rc, k->err, "checking") : VD_OK;
}

/* Walks the catalog, checking each collection; *cids gets their ids, sorted. */
static vd_status check_catalog(checker *k, float *vbuf, uint32_t **cids, size_t *n_cids)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    uint32_t next_cid = 0;
    size_t cap = 0;
    vd_err e;
    vd_status s = vd_storage__next_cid_get(&k->t, &next_cid, &e);
    if ((s = read_failed(k, s, &e)) != VD_OK) return s;
    if (next_cid == 0) problem(k, "meta: %s", e.msg);
    int rc = mdb_cursor_open(k->t.txn, k->st->dbi[VD_DB_CATALOG], &cur);
    if (rc) return vd_storage__txn_fail(&k->t, rc, k->err, "checking");
    while (s == VD_OK && (rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
        vd_catalog_rec r;
        if (vd_storage__catalog_decode(key.mv_data, key.mv_size, val.mv_data, val.mv_size, &r,
                                       &e) != VD_OK) {
            problem(k, "catalog: %s", e.msg);
            continue;
        }
        if (r.cid == 0 || r.cid >= next_cid)
            problem(k, "collection %s: id %u is not below the next collection id %u",
                    r.params.name, r.cid, next_cid);
        if (*n_cids == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *a = vd_realloc(*cids, cap * sizeof *a);
            if (!a) {
                s = vd_err_set(k->err, VD_NOMEM, "out of memory checking %s", k->st->dir);
                break;
            }
            *cids = a;
        }
        (*cids)[(*n_cids)++] = r.cid;
        s = check_collection(k, &r, vbuf);
    }
    mdb_cursor_close(cur);
    if (s == VD_OK && rc != MDB_NOTFOUND) s = vd_storage__txn_fail(&k->t, rc, k->err, "checking");
    if (*n_cids > 1) qsort(*cids, *n_cids, sizeof **cids, cmp_u32);
    return s;
}

/* Collections loaded in memory that the stored catalog does not have. */
static void check_loaded(checker *k)
{
    vd_store *st = k->st;
    pthread_mutex_lock(&st->cat_mu);
    for (size_t i = 0; i < st->n_colls; i++) {
        vd_catalog_rec r;
        int found = 1;
        vd_storage__catalog_get(&k->t, st->colls[i]->params.name, &r, &found, NULL);
        if (!found) problem(k, "collection %s is loaded but not stored", st->colls[i]->params.name);
    }
    pthread_mutex_unlock(&st->cat_mu);
}

vd_status vd_store_check(vd_store *st, vd_report_fn report, void *ctx, vd_err *err)
{
    checker k = {.st = st, .report = report, .ctx = ctx, .err = err};
    uint32_t *cids = NULL;
    size_t n_cids = 0;
    if (st->catalog_only)
        return vd_err_set(err, VD_INVALID, "%s was opened catalog-only: check needs the graphs",
                          st->dir);
    float *vbuf = vd_malloc(VD_DIM_MAX * sizeof *vbuf);
    if (!vbuf) return vd_err_set(err, VD_NOMEM, "out of memory checking %s", st->dir);
    vd_status s = vd_storage__read_begin(st, &k.t, err, "checking");
    if (s == VD_OK) s = check_catalog(&k, vbuf, &cids, &n_cids);
    for (size_t i = 1; s == VD_OK && i < n_cids; i++)
        if (cids[i] == cids[i - 1]) problem(&k, "catalog: two collections share id %u", cids[i]);
    for (int db = 0; s == VD_OK && db < VD_DB_COUNT; db++)
        if (vd_storage__db_info((vd_db)db)->cid_key_bytes && vd_storage__db_present(st, db))
            s = check_orphans(&k, (vd_db)db, cids, n_cids);
    if (s == VD_OK) check_loaded(&k);
    vd_storage__read_end(&k.t);
    vd_free(cids);
    vd_free(vbuf);
    if (s == VD_OK && k.n_problems)
        s = vd_err_set(err, VD_CORRUPT, "%s: %" PRIu64 " problem%s found", st->dir, k.n_problems,
                       k.n_problems == 1 ? "" : "s");
    return s;
}
