/* storage/names.c: the rules storage owns for what users name: collection names
 * ([A-Za-z0-9_-]{1,64}: safe in keys, file names, logs and URLs without escaping), the one
 * check of collection parameters in storage, vd_storage__params_check, and payload field
 * paths (1..256 bytes of UTF-8 in non-empty dot-separated segments: filters and payload
 * indexes name fields the same way) and payload index kinds.
 *
 * Parameter limits and defaults are not restated here: they are the index's table
 * (VD_PARAM_MAP in index/vd_index.h, checked by vd_index_params_check and vd_param_resolve),
 * so create, import and the decoder of a stored catalog record accept exactly what
 * `vectord build`, the request decoder and the index accept. Pure: no LMDB, no state. */
#include <stdio.h>

#include "storage/storage_int.h"

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
                          .ef_construction = p->ef_construction};
    if ((s = vd_index_params_check(&ip, err)) != VD_OK ||
        (s = vd_param_resolve(VD_PARAM_EF_SEARCH, p->ef_search, &p->ef_search, err)) != VD_OK) {
        vd_err_prefix(err, "collection %s", p->name);
        return s;
    }
    p->m = ip.m;
    p->ef_construction = ip.ef_construction;
    return VD_OK;
}

/* ---- payload fields: their paths and index kinds --------------------------------------- */
int vd_storage__utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 :
                     c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!len || n - i < len) return 0;
        uint32_t cp = len == 1 ? c : (uint32_t)(c & (0x7F >> len));
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return 0;
        i += len;
    }
    return 1;
}

vd_status vd_storage__path_check(const char *p, size_t n, vd_err *err)
{
    size_t max = VD_FILTER_MAX_PATH_BYTES;
    if (n == 0 || !p) return vd_err_set(err, VD_INVALID, "the field path is empty");
    if (n > max)
        return vd_err_set(err, VD_INVALID, "the field path has %zu bytes, over the %zu allowed",
                          n, max);
    if (memchr(p, 0, n)) return vd_err_set(err, VD_INVALID, "the field path holds a NUL byte");
    if (p[0] == '.' || p[n - 1] == '.' || memmem(p, n, "..", 2))
        return vd_err_set(err, VD_INVALID, "the field path \"%.*s\" has an empty segment",
                          (int)n, p);
    if (!vd_storage__utf8_valid((const uint8_t *)p, n))
        return vd_err_set(err, VD_INVALID, "the field path is not valid UTF-8");
    return VD_OK;
}

const char *vd_pindex_kind_name(vd_pindex_kind k)
{
    switch (k) {
    case VD_PINDEX_KEYWORD: return "keyword";
    case VD_PINDEX_INTEGER: return "integer";
    case VD_PINDEX_FLOAT: return "float";
    case VD_PINDEX_BOOL: return "bool";
    }
    return "";
}

vd_status vd_pindex_kind_parse(const char *s, vd_pindex_kind *out)
{
    for (int k = VD_PINDEX_KEYWORD; k <= VD_PINDEX_BOOL; k++)
        if (s && !strcmp(s, vd_pindex_kind_name((vd_pindex_kind)k))) {
            *out = (vd_pindex_kind)k;
            return VD_OK;
        }
    return VD_INVALID;
}
