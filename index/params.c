/* index/params.c: the one table of collection parameter limits and defaults
 * (VD_PARAM_MAP in vd_index.h) and the metric names.
 *
 * Why here: dim, m, ef and k are the index's contract (its arrays are sized by VD_M_MAX, its
 * kernels by VD_DIM_MAX), so the index owns their ranges; storage owns only the name rule.
 * Rejected: a check per entry point (the CLI, the decoder and storage each had their own
 * copy, and the copies disagreed: `vectord build --ef-construction 20000` built the whole
 * index before storage refused what the index had accepted). */
#include <inttypes.h>

#include "index/vd_index.h"

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
    if ((s = vd_param_resolve(VD_PARAM_M, p->m, &p->m, err)) != VD_OK) return s;
    return vd_param_resolve(VD_PARAM_EF_CONSTRUCTION, p->ef_construction, &p->ef_construction,
                            err);
}

const char *vd_metric_name(vd_metric m)
{
    switch (m) {
    case VD_METRIC_L2: return "l2";
    case VD_METRIC_COSINE: return "cosine";
    case VD_METRIC_IP: return "ip";
    }
    return "unknown";
}

vd_status vd_metric_parse(const char *s, vd_metric *out)
{
    static const vd_metric all[] = {VD_METRIC_L2, VD_METRIC_COSINE, VD_METRIC_IP};
    for (size_t i = 0; s && i < VD_ARRAY_LEN(all); i++)
        if (strcmp(s, vd_metric_name(all[i])) == 0) {
            *out = all[i];
            return VD_OK;
        }
    return VD_INVALID;
}
