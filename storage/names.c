/* storage/names.c: the rules storage owns for what users name: collection names
 * ([A-Za-z0-9_-]{1,64}: safe in keys, file names, logs and URLs without escaping), and the one
 * check of collection parameters in storage, vd_storage__params_check.
 *
 * Parameter limits and defaults are not restated here: they are the index's table
 * (VD_PARAM_MAP in index/vd_index.h, checked by vd_index_params_check and vd_param_resolve),
 * so create, import and the decoder of a stored catalog record accept exactly what
 * `vectord build`, the request decoder and the index accept. Pure: no LMDB, no state. */
#include "storage/records.h"

vd_status vd_name_check(const char *name, vd_err *err)
{
    if (!name || !*name) return vd_err_set(err, VD_INVALID, "collection name is empty");
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
        if (!ok)
            return vd_err_set(err, VD_INVALID,
                              "collection name has character 0x%02x at position %zu; "
                              "allowed: A-Z a-z 0-9 _ -",
                              (unsigned)(unsigned char)ch, n);
        if (n >= VD_NAME_MAX)
            return vd_err_set(err, VD_INVALID, "collection name is longer than %d characters",
                              VD_NAME_MAX);
    }
    return VD_OK;
}

const char *vd_id_type_name(vd_id_type t)
{
    switch (t) {
    case VD_ID_INT: return "int";
    case VD_ID_STR: return "str";
    }
    return "unknown";
}

vd_status vd_id_type_parse(const char *s, vd_id_type *out)
{
    static const vd_id_type all[] = {VD_ID_INT, VD_ID_STR};
    for (size_t i = 0; s && i < VD_ARRAY_LEN(all); i++)
        if (strcmp(s, vd_id_type_name(all[i])) == 0) {
            *out = all[i];
            return VD_OK;
        }
    return VD_INVALID;
}

vd_status vd_storage__params_check(vd_collection_params *p, vd_err *err)
{
    vd_status s = vd_name_check(p->name, err);
    if (s != VD_OK) return s;
    if (p->id_type != VD_ID_INT && p->id_type != VD_ID_STR)
        return vd_err_set(err, VD_INVALID, "collection %s: unknown id type %d", p->name,
                          (int)p->id_type);
    if (p->quantization != VD_QUANT_NONE && p->quantization != VD_QUANT_INT8)
        return vd_err_set(err, VD_INVALID, "collection %s: unknown quantization %d", p->name,
                          (int)p->quantization);
    vd_index_params ip = {.dim = p->dim, .metric = p->metric, .m = p->m,
                          .ef_construction = p->ef_construction,
                          .quantization = p->quantization};
    if ((s = vd_index_params_check(&ip, err)) != VD_OK ||
        (s = vd_param_resolve(VD_PARAM_EF_SEARCH, p->ef_search, &p->ef_search, err)) != VD_OK) {
        vd_err_prefix(err, "collection %s", p->name);
        return s;
    }
    p->m = ip.m;
    p->ef_construction = ip.ef_construction;
    return VD_OK;
}
