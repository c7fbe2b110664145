/* index/params.c: the rules every entry point checks - the one table of collection
 * parameter limits and defaults (VD_PARAM_MAP in vd_index.h), the point rules (distinct,
 * unreserved ids; finite vectors, non-zero under cosine) - and the metric names.
 *
 * Why here: dim, m, ef and k are the index's contract (its arrays are sized by VD_M_MAX, its
 * kernels by VD_DIM_MAX), so the index owns their ranges; storage owns only the name rule.
 * Rejected: a check per entry point (the CLI, the decoder and storage each had their own
 * copy, and the copies disagreed: `vectord build --ef-construction 20000` built the whole
 * index before storage refused what the index had accepted). */
#include <inttypes.h>
#include <stdlib.h>

#include "index/index_int.h"

static const vd_param_info params[VD_PARAM_COUNT] = {
#define X(id, nm, lo, hi, def) [VD_PARAM_##id] = {nm, lo, hi, def},
    VD_PARAM_MAP(X)
#undef X
};

const vd_param_info *vd_param_info_of(vd_param p)
{
    return (unsigned)p < VD_PARAM_COUNT ? &params[p] : NULL;
}

vd_status vd_param_resolve(vd_param p, uint32_t value, uint32_t *out, vd_err *err)
{
    const vd_param_info *pi = vd_param_info_of(p);
    if (!pi) return vd_err_set(err, VD_INTERNAL, "unknown parameter %d", (int)p);
    if (value == 0 && (pi->def || p == VD_PARAM_EF)) {
        if (out) *out = pi->def;
        return VD_OK;
    }
    if (value < pi->min || value > pi->max)
        return vd_err_set(err, VD_INVALID, "%s %" PRIu32 " is outside %" PRIu32 "..%" PRIu32,
                          pi->name, value, pi->min, pi->max);
    if (out) *out = value;
    return VD_OK;
}

vd_status vd_index_params_check(vd_index_params *p, vd_err *err)
{
    vd_status s;
    if ((s = vd_param_resolve(VD_PARAM_DIM, p->dim, &p->dim, err)) != VD_OK) return s;
    if (p->metric != VD_METRIC_L2 && p->metric != VD_METRIC_COSINE && p->metric != VD_METRIC_IP)
        return vd_err_set(err, VD_INVALID, "unknown metric %d", (int)p->metric);
    if (p->quantization != VD_QUANT_NONE && p->quantization != VD_QUANT_INT8)
        return vd_err_set(err, VD_INVALID, "unknown quantization %d", (int)p->quantization);
    if ((s = vd_param_resolve(VD_PARAM_M, p->m, &p->m, err)) != VD_OK) return s;
    return vd_param_resolve(VD_PARAM_EF_CONSTRUCTION, p->ef_construction, &p->ef_construction,
                            err);
}

/* ---- point rules ------------------------------------------------------------------------ */

double vd_index__norm2(const float *v, uint32_t dim, uint32_t *bad)
{
    /* Fast path: one SIMD pass. A finite sum of squares proves every component finite (a NaN
     * or an infinity would propagate). Otherwise (or when float squares overflow or underflow)
     * the exact per-component pass in double. */
    double s = vd_kern_dot(v, v, dim);
    *bad = dim;
    if (!isfinite(s) || !(s >= 1e-30)) { /* also tiny norms: float squares underflow */
        s = 0;
        for (uint32_t i = 0; i < dim; i++) {
            if (!isfinite(v[i])) {
                *bad = i;
                return NAN;
            }
            s += (double)v[i] * v[i];
        }
    }
    return s;
}

vd_status vd_vector_check(vd_metric metric, const float *v, uint32_t dim, vd_err *err)
{
    uint32_t bad;
    double s = vd_index__norm2(v, dim, &bad);
    if (bad < dim)
        return vd_err_set(err, VD_INVALID, "component %u is %s", bad,
                          isnan(v[bad]) ? "NaN" : "infinite");
    if (metric == VD_METRIC_COSINE && s == 0)
        return vd_err_set(err, VD_INVALID, "zero vector has no direction for cosine");
    return VD_OK;
}

typedef struct id_row {
    uint64_t id;
    uint64_t row;
} id_row;

static int cmp_id_row(const void *a, const void *b)
{
    const id_row *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

vd_status vd_ids_check_distinct(const uint64_t *ids, size_t n, vd_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == VD_ID_NONE)
            return vd_err_set(err, VD_INVALID, "row %zu: id %" PRIu64 " is reserved for padding",
                              i, ids[i]);
    /* Ascending ids (the bulk build's default, most batches) need no copy. */
    size_t i = 1;
    while (i < n && ids[i - 1] < ids[i]) i++;
    if (i >= n) return VD_OK;
    id_row *t = vd_malloc(n * sizeof *t);
    if (!t) return vd_err_set(err, VD_NOMEM, "out of memory checking %zu ids", n);
    for (size_t k = 0; k < n; k++) t[k] = (id_row){ids[k], k};
    qsort(t, n, sizeof *t, cmp_id_row);
    vd_status s = VD_OK;
    for (size_t k = 1; k < n; k++)
        if (t[k].id == t[k - 1].id) {
            s = vd_err_set(err, VD_INVALID, "id %" PRIu64 " appears more than once (rows %" PRIu64
                           " and %" PRIu64 ")", t[k].id, t[k - 1].row, t[k].row);
            break;
        }
    vd_free(t);
    return s;
}

/* ---- names ---------------------------------------------------------------------------------
 * Indexed by the enum values, which are stored and sent on the wire (see vd_index.h). */
static const char *const metric_names[] = {[VD_METRIC_L2] = "l2", [VD_METRIC_COSINE] = "cosine",
                                           [VD_METRIC_IP] = "ip"};
static const char *const quant_names[] = {[VD_QUANT_NONE] = "none", [VD_QUANT_INT8] = "int8"};

const char *vd_metric_name(vd_metric m)
{
    return vd_enum_name(metric_names, VD_ARRAY_LEN(metric_names), (int)m);
}

vd_status vd_metric_parse(const char *s, vd_metric *out)
{
    int v = vd_enum_parse(metric_names, VD_ARRAY_LEN(metric_names), s);
    if (v < 0) return VD_INVALID;
    *out = (vd_metric)v;
    return VD_OK;
}

const char *vd_quantization_name(vd_quantization q)
{
    return vd_enum_name(quant_names, VD_ARRAY_LEN(quant_names), (int)q);
}

vd_status vd_quantization_parse(const char *s, vd_quantization *out)
{
    int v = vd_enum_parse(quant_names, VD_ARRAY_LEN(quant_names), s);
    if (v < 0) return VD_INVALID;
    *out = (vd_quantization)v;
    return VD_OK;
}
