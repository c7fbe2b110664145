/* storage/fcompile.c: a filter into the set of slots of the points it matches, as one CRoaring
 * bitmap: what filtered searches hand the index, what count by filter counts and what delete
 * by filter deletes.
 *
 * Each condition is answered one of two ways:
 *  - by a ready payload index on its exact path whose kind matches every operand's type
 *    (keyword: strings; integer, float: numbers; bool: bools; $exists: any kind): the
 *    postings of the operand values or key range, plus the index's FALLBACK slots (values of
 *    the kind's type it could not key) checked one by one in their payloads;
 *  - otherwise by one pass over the collection's stored payloads, shared by every such
 *    condition of the filter: each payload is parsed once and each condition evaluated on it
 *    (filter.c's reference semantics). Slower - about a microsecond per point - but correct.
 * Then the tree combines the sets: AND intersects (smallest first), OR unites, NOT, $ne, $nin
 * and $exists false subtract from the universe: the slots of every stored point (the
 * payload index set's live bitmap, or the pass over the payloads when the collection has no
 * payload index at all). Every set is a subset of the universe, so a count is a cardinality.
 *
 * Number bounds: an operand (int64 or double) is turned into the key range the index stores
 * through long double (exact for both), rounding the way the comparison needs (x > 2.5 on
 * an integer index is x >= 3; on a float index, x > 2^53 + 1 starts at the next double
 * above it), so index and payload evaluation agree exactly (filter.c).
 *
 * The caller guarantees the postings do not change during the call: readers hold the
 * collection's filter lock (fquery.c), the writer owns them. Recursion follows the tree,
 * which vd_filter_check bounded to VD_FILTER_MAX_DEPTH levels. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "storage/storage_int.h"

typedef struct fc {
    vd_txn *t;
    const vd_collection *c;
    const vd_pset *ps;
    const vd_filter **scan;      /* conditions answered by the pass over payloads */
    roaring_bitmap_t **scan_set; /* ... and their sets */
    size_t n_scan, cap_scan;
    const roaring_bitmap_t *universe;
    roaring_bitmap_t *scan_universe; /* no payload index: every point the pass saw */
    vd_filtered_stats *stats;
    vd_err *err;
} fc;

static vd_status nomem(fc *x)
{
    return vd_err_set(x->err, VD_NOMEM, "out of memory compiling a filter on collection %s",
                      x->c->params.name);
}

/* ---- which index answers a condition ----------------------------------------------------- */
static int operand_fits(vd_pindex_kind k, const vd_fval *v)
{
    switch (k) {
    case VD_PINDEX_KEYWORD: return v->type == VD_FVAL_STRING;
    case VD_PINDEX_BOOL: return v->type == VD_FVAL_BOOL;
    default: return v->type == VD_FVAL_INT || v->type == VD_FVAL_FLOAT;
    }
}

static const vd_pdef *index_for(const vd_pset *ps, const vd_filter *c)
{
    const vd_pdef *d = vd_pset_find(ps, c->field, c->field_len);
    if (!d || !d->ready) return NULL;
    if (c->op == VD_FOP_EXISTS) return d;
    for (size_t i = 0; i < c->n_values; i++)
        if (!operand_fits(d->kind, &c->values[i])) return NULL;
    return d;
}

static int is_condition(const vd_filter *f) { return f->op >= VD_FOP_EQ && f->op <= VD_FOP_EXISTS; }

/* Calls fn on every condition of f until it returns non-zero (returned). */
static int each_condition(const vd_filter *f, int (*fn)(void *ctx, const vd_filter *c),
                          void *ctx)
{
    if (is_condition(f)) return fn(ctx, f);
    for (size_t i = 0; i < f->n_children; i++) {
        int r = each_condition(&f->children[i], fn, ctx);
        if (r) return r;
    }
    return 0;
}

static int unindexed(void *ctx, const vd_filter *c) { return !index_for(ctx, c); }

static int reads_payloads(void *ctx, const vd_filter *c)
{
    const vd_pdef *d = index_for(ctx, c);
    return !d || (c->op != VD_FOP_EXISTS && !roaring_bitmap_is_empty(vd_pidx_fallback(d->idx)));
}

int vd_storage__filter_indexed(const vd_collection *c, const vd_filter *f)
{
    return c->pset && !each_condition(f, unindexed, c->pset);
}

int vd_storage__filter_reads_payloads(const vd_collection *c, const vd_filter *f)
{
    return !c->pset || each_condition(f, reads_payloads, c->pset);
}

/* ---- the pass over stored payloads ------------------------------------------------------- */
static int add_scan(void *ctx, const vd_filter *c)
{
    fc *x = ctx;
    if (x->ps && index_for(x->ps, c)) return 0;
    if (x->n_scan == x->cap_scan) {
        size_t cap = x->cap_scan ? x->cap_scan * 2 : 8;
        const vd_filter **a = vd_realloc(x->scan, cap * sizeof *a);
        if (!a) return 1;
        x->scan = a;
        roaring_bitmap_t **b = vd_realloc(x->scan_set, cap * sizeof *b);
        if (!b) return 1;
        x->scan_set = b;
        x->cap_scan = cap;
    }
    x->scan_set[x->n_scan] = roaring_bitmap_create();
    if (!x->scan_set[x->n_scan]) return 1;
    x->scan[x->n_scan++] = c;
    return 0;
}

static vd_status scan_point(fc *x, uint64_t id, const MDB_val *v)
{
    vd_point_rec pr;
    json_t *j = NULL;
    vd_status s = vd_storage__point_decode(v->mv_data, v->mv_size, &pr, x->err);
    if (s == VD_OK && pr.payload) {
        s = vd_storage__json_parse(pr.payload, pr.payload_len, &j, x->err);
        if (s == VD_INVALID) s = VD_CORRUPT;
        if (x->stats) x->stats->payloads_read++;
    }
    if (s != VD_OK) {
        if (x->err) x->err->code = s;
        vd_err_prefix(x->err, "collection %s: point %" PRIu64, x->c->params.name, id);
        return s;
    }
    for (size_t i = 0; i < x->n_scan; i++)
        if (vd_storage__condition_match(x->scan[i], j)) roaring_bitmap_add(x->scan_set[i], pr.slot);
    if (x->scan_universe) roaring_bitmap_add(x->scan_universe, pr.slot);
    json_decref(j);
    return VD_OK;
}

static vd_status scan_payloads(fc *x)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t kb[VD_KEY_POINT_BYTES];
    uint64_t id;
    int rc;
    vd_storage__key_point(kb, x->c->cid, 0);
    vd_status s = vd_storage__cursor_at(x->t, VD_DB_POINTS, kb, sizeof kb, &cur, &k, &v, &rc,
                                        x->err);
    while (s == VD_OK && rc == 0 &&
           vd_storage__key_point_decode(k.mv_data, k.mv_size, x->c->cid, &id)) {
        s = scan_point(x, id, &v);
        if (s == VD_OK) rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur) mdb_cursor_close(cur);
    if (s == VD_OK && rc && rc != MDB_NOTFOUND)
        s = vd_storage__txn_fail(x->t, rc, x->err, "reading payloads");
    return s;
}

/* ---- one condition from its index --------------------------------------------------------- */
/* The index keys k of numbers x with `x op v`, as lo..hi; 0 when no x can. */
static int key_range(vd_pindex_kind kind, vd_filter_op op, const vd_fval *v, uint64_t *lo,
                     uint64_t *hi)
{
    long double L = v->type == VD_FVAL_INT ? (long double)v->i : (long double)v->f;
    if (kind == VD_PINDEX_INTEGER) {
        const long double min = -9223372036854775808.0L, max = 9223372036854775807.0L;
        long double l = min, h = max;
        switch (op) {
        case VD_FOP_EQ: case VD_FOP_IN:
            if (floorl(L) != L) return 0;
            l = h = L;
            break;
        case VD_FOP_GT: l = floorl(L) + 1; break;
        case VD_FOP_GTE: l = ceill(L); break;
        case VD_FOP_LT: h = ceill(L) - 1; break;
        case VD_FOP_LTE: h = floorl(L); break;
        default: return 0;
        }
        if (l < min) l = min;
        if (h > max) h = max;
        if (l > h) return 0;
        *lo = vd_storage__key_of_int((int64_t)l);
        *hi = vd_storage__key_of_int((int64_t)h);
        return 1;
    }
    double d = (double)L; /* the nearest double; stepped to the bound the comparison needs */
    *lo = 0;
    *hi = UINT64_MAX;
    switch (op) {
    case VD_FOP_EQ: case VD_FOP_IN:
        if ((long double)d != L) return 0;
        *lo = *hi = vd_storage__key_of_double(d);
        return 1;
    case VD_FOP_GT: if ((long double)d <= L) d = nextafter(d, INFINITY); break;
    case VD_FOP_GTE: if ((long double)d < L) d = nextafter(d, INFINITY); break;
    case VD_FOP_LT: if ((long double)d >= L) d = nextafter(d, -INFINITY); break;
    case VD_FOP_LTE: if ((long double)d > L) d = nextafter(d, -INFINITY); break;
    default: return 0;
    }
    if (isinf(d)) return 0;
    if (op == VD_FOP_GT || op == VD_FOP_GTE) *lo = vd_storage__key_of_double(d);
    else *hi = vd_storage__key_of_double(d);
    return 1;
}

static vd_pval_item item_of(const vd_fval *v)
{
    vd_pval_item it = {0};
    if (v->type == VD_FVAL_STRING) {
        it.s = v->s.p;
        it.len = v->s.len;
    } else if (v->type == VD_FVAL_BOOL) {
        it.key = v->b != 0;
    }
    return it;
}

/* The postings of condition c (in its positive form: EQ, IN, or a range) into out. */
static vd_status postings(fc *x, const vd_filter *c, vd_filter_op op, const vd_pidx *idx,
                          roaring_bitmap_t *out)
{
    vd_pindex_kind kind = vd_pidx_kind(idx);
    vd_status s = VD_OK;
    if (op == VD_FOP_EQ || op == VD_FOP_IN) {
        for (size_t i = 0; i < c->n_values && s == VD_OK; i++) {
            uint64_t lo, hi;
            vd_pval_item it = item_of(&c->values[i]);
            if (kind == VD_PINDEX_KEYWORD || kind == VD_PINDEX_BOOL)
                s = vd_pidx_eq(idx, &it, out, x->err);
            else if (key_range(kind, op, &c->values[i], &lo, &hi))
                s = vd_pidx_range(idx, lo, hi, out, x->err);
        }
        return s;
    }
    uint64_t lo, hi;
    if (kind != VD_PINDEX_KEYWORD)
        return key_range(kind, op, &c->values[0], &lo, &hi)
                   ? vd_pidx_range(idx, lo, hi, out, x->err)
                   : VD_OK;
    vd_pval_item it = item_of(&c->values[0]);
    int low = op == VD_FOP_GT || op == VD_FOP_GTE, incl = op == VD_FOP_GTE || op == VD_FOP_LTE;
    return vd_pidx_string_range(idx, low ? &it : NULL, incl, low ? NULL : &it, incl, out);
}

/* The payload of the point in `slot`, parsed, or *j = NULL (none, or the slot is no longer
 * the point's: skipped). */
static vd_status slot_payload(fc *x, uint32_t slot, json_t **j)
{
    vd_vector_rec vr;
    vd_point_rec pr;
    int found;
    *j = NULL;
    vd_status s = vd_storage__vector_get(x->t, x->c->cid, &x->c->params, slot, &vr, &found,
                                         x->err);
    if (s != VD_OK || !found) return s;
    s = vd_storage__point_get(x->t, x->c->cid, &x->c->params, vr.id, &pr, &found, x->err);
    if (s != VD_OK || !found || pr.slot != slot || !pr.payload) return s;
    if (x->stats) x->stats->payloads_read++;
    s = vd_storage__json_parse(pr.payload, pr.payload_len, j, x->err);
    if (s == VD_INVALID) { /* it was checked when written: this is damage */
        s = VD_CORRUPT;
        if (x->err) x->err->code = s;
        vd_err_prefix(x->err, "collection %s: point %" PRIu64, x->c->params.name, vr.id);
    }
    return s;
}

/* Condition c from index d into a new *out. */
static vd_status eval_indexed(fc *x, const vd_filter *c, const vd_pdef *d, roaring_bitmap_t **out)
{
    vd_filter_op op = c->op == VD_FOP_NE ? VD_FOP_EQ : c->op == VD_FOP_NIN ? VD_FOP_IN : c->op;
    roaring_bitmap_t *bm = roaring_bitmap_create();
    vd_status s = VD_OK;
    if (!bm) return nomem(x);
    if (x->stats) x->stats->conditions_indexed++;
    if (op == VD_FOP_EXISTS) {
        roaring_bitmap_or_inplace(bm, vd_pidx_present(d->idx));
        if (!c->values[0].b) op = VD_FOP_NE; /* subtract below */
    } else {
        s = postings(x, c, op, d->idx, bm);
        const roaring_bitmap_t *fb = vd_pidx_fallback(d->idx);
        if (s == VD_OK && !roaring_bitmap_is_empty(fb)) {
            vd_filter pos = *c;
            pos.op = op;
            roaring_uint32_iterator_t *it = roaring_create_iterator(fb);
            for (; s == VD_OK && it && it->has_value; roaring_advance_uint32_iterator(it)) {
                json_t *j = NULL;
                s = slot_payload(x, it->current_value, &j);
                if (s == VD_OK && j && vd_storage__condition_match(&pos, j))
                    roaring_bitmap_add(bm, it->current_value);
                json_decref(j);
            }
            if (!it) s = nomem(x);
            roaring_free_uint32_iterator(it);
        }
    }
    if (s == VD_OK && (c->op == VD_FOP_NE || c->op == VD_FOP_NIN || op == VD_FOP_NE)) {
        roaring_bitmap_t *neg = roaring_bitmap_andnot(x->universe, bm);
        roaring_bitmap_free(bm);
        if (!(bm = neg)) return nomem(x);
    }
    if (s != VD_OK) {
        roaring_bitmap_free(bm);
        return s;
    }
    *out = bm;
    return VD_OK;
}

/* ---- the tree --------------------------------------------------------------------------- */
static vd_status eval(fc *x, const vd_filter *f, roaring_bitmap_t **out);

static int by_cardinality(const void *a, const void *b)
{
    uint64_t x = roaring_bitmap_get_cardinality(*(roaring_bitmap_t *const *)a);
    uint64_t y = roaring_bitmap_get_cardinality(*(roaring_bitmap_t *const *)b);
    return x < y ? -1 : x > y;
}

static vd_status eval_children(fc *x, const vd_filter *f, roaring_bitmap_t **out)
{
    roaring_bitmap_t **sets = vd_calloc(f->n_children, sizeof *sets);
    vd_status s = sets ? VD_OK : nomem(x);
    for (size_t i = 0; i < f->n_children && s == VD_OK; i++) s = eval(x, &f->children[i], &sets[i]);
    if (s == VD_OK && f->op == VD_FOP_AND) {
        qsort(sets, f->n_children, sizeof *sets, by_cardinality);
        for (size_t i = 1; i < f->n_children && !roaring_bitmap_is_empty(sets[0]); i++)
            roaring_bitmap_and_inplace(sets[0], sets[i]);
    } else if (s == VD_OK) {
        for (size_t i = 1; i < f->n_children; i++) roaring_bitmap_or_inplace(sets[0], sets[i]);
    }
    for (size_t i = s == VD_OK; sets && i < f->n_children; i++)
        if (sets[i]) roaring_bitmap_free(sets[i]);
    if (s == VD_OK) *out = sets[0];
    vd_free(sets);
    return s;
}

static vd_status eval(fc *x, const vd_filter *f, roaring_bitmap_t **out)
{
    *out = NULL;
    if (f->op == VD_FOP_AND || f->op == VD_FOP_OR) return eval_children(x, f, out);
    if (f->op == VD_FOP_NOT) {
        roaring_bitmap_t *inner = NULL;
        vd_status s = eval(x, &f->children[0], &inner);
        if (s != VD_OK) return s;
        *out = roaring_bitmap_andnot(x->universe, inner);
        roaring_bitmap_free(inner);
        return *out ? VD_OK : nomem(x);
    }
    const vd_pdef *d = x->ps ? index_for(x->ps, f) : NULL;
    if (d) return eval_indexed(x, f, d, out);
    for (size_t i = 0; i < x->n_scan; i++)
        if (x->scan[i] == f) {
            *out = x->scan_set[i]; /* handed over: each condition is evaluated once */
            x->scan_set[i] = NULL;
            return *out ? VD_OK : vd_err_set(x->err, VD_INTERNAL, "filter condition reused");
        }
    return vd_err_set(x->err, VD_INTERNAL, "filter condition not prepared");
}

vd_status vd_storage__filter_compile(vd_txn *t, const vd_collection *c, const vd_filter *f,
                                     roaring_bitmap_t **out, vd_filtered_stats *stats,
                                     vd_err *err)
{
    fc x = {.t = t, .c = c, .ps = c->pset, .stats = stats, .err = err};
    uint64_t t0 = vd_now_ns();
    vd_status s = VD_OK;
    *out = NULL;
    if (each_condition(f, add_scan, &x)) s = nomem(&x);
    if (s == VD_OK && !x.ps && !(x.scan_universe = roaring_bitmap_create())) s = nomem(&x);
    x.universe = x.ps ? x.ps->live : x.scan_universe;
    if (stats) stats->conditions_scanned += (uint32_t)x.n_scan;
    if (s == VD_OK && (x.n_scan || x.scan_universe)) s = scan_payloads(&x);
    if (s == VD_OK) s = eval(&x, f, out);
    for (size_t i = 0; i < x.n_scan; i++)
        if (x.scan_set[i]) roaring_bitmap_free(x.scan_set[i]);
    vd_free(x.scan);
    vd_free(x.scan_set);
    if (x.scan_universe) roaring_bitmap_free(x.scan_universe);
    if (s == VD_OK && stats) {
        stats->matching = roaring_bitmap_get_cardinality(*out);
        stats->compile_ns += vd_now_ns() - t0;
    }
    return s;
}
