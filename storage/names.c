/* storage/names.c: the rules storage owns for what users name: collection names
 * ([A-Za-z0-9_-]{1,64}: safe in keys, file names, logs and URLs without escaping), string
 * point ids (1..512 bytes of UTF-8, compared bytewise: what RAG tools use - file names with
 * a chunk number, hashes, UUIDs - and short enough to sit in an LMDB key), payload field
 * paths (1..256 bytes of UTF-8 in non-empty dot-separated segments: filters and payload
 * indexes name fields the same way), payload index kinds, and the one check of collection
 * parameters in storage, vd_storage__params_check.
 *
 * String ids are checked as bytes, not normalized: two spellings of one character (NFC and
 * NFD) are two ids, as in Chroma, Qdrant and Redis. Rejected: forbidding NUL or control
 * characters (the packed wire format needs no separator, and refusing ids that other
 * systems accept breaks migrations); a limit in characters (an LMDB key is bytes).
 *
 * Parameter limits and defaults are not restated here: they are the index's table
 * (VD_PARAM_MAP in index/vd_index.h, checked by vd_index_params_check and vd_param_resolve),
 * so create, import and the decoder of a stored catalog record accept exactly what
 * `vectord build`, the request decoder and the index accept. Pure: no LMDB, no state. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

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

static const char *const id_type_names[] = {[VD_ID_INT] = "int", [VD_ID_STR] = "str"};

const char *vd_id_type_name(vd_id_type t)
{
    return vd_enum_name(id_type_names, VD_ARRAY_LEN(id_type_names), (int)t);
}

vd_status vd_id_type_parse(const char *s, vd_id_type *out)
{
    int v = vd_enum_parse(id_type_names, VD_ARRAY_LEN(id_type_names), s);
    if (v < 0) return VD_INVALID;
    *out = (vd_id_type)v;
    return VD_OK;
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

/* ---- string ids ------------------------------------------------------------------------- */
int vd_storage__utf8_seq(const uint8_t *s, size_t left, const char **why)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return *why = "invalid UTF-8 lead byte", 0;
    if (left < len) return *why = "truncated UTF-8 sequence", 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return *why = "invalid UTF-8 continuation byte", 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
        return *why = "overlong UTF-8 sequence", 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return *why = "UTF-8 encoded surrogate", 0;
    if (cp > 0x10FFFF) return *why = "code point above U+10FFFF", 0;
    return (int)len;
}

vd_status vd_str_id_check(const uint8_t *p, size_t n, vd_err *err)
{
    if (n == 0) return vd_err_set(err, VD_INVALID, "string id is empty");
    if (n > VD_STR_ID_MAX)
        return vd_err_set(err, VD_INVALID, "string id of %zu bytes is longer than %d", n,
                          VD_STR_ID_MAX);
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        const char *why = "";
        int len = vd_storage__utf8_seq(p + i, n - i, &why);
        if (!len)
            return vd_err_set(err, VD_INVALID, "string id is not valid UTF-8 (byte %zu: %s)",
                              i, why);
        i += (size_t)len;
    }
    return VD_OK;
}

void vd_str_id_label(const uint8_t *p, size_t n, char *out, size_t out_len)
{
    /* Room for the worst escape (4 bytes), a whole UTF-8 sequence, "...", the quote, NUL. */
    const size_t show = 40;
    size_t o = 0;
    if (out_len < 16) {
        if (out_len) out[0] = 0;
        return;
    }
    out[o++] = '"';
    size_t i = 0;
    while (i < n && i < show && o + 12 < out_len) {
        uint8_t c = p[i];
        const char *why;
        int len = c < 0x80 ? 1 : vd_storage__utf8_seq(p + i, n - i, &why);
        if (len <= 0) len = 1; /* not UTF-8: shown escaped below */
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && len == 1)) {
            o += (size_t)snprintf(out + o, out_len - o, "\\x%02x", c);
        } else {
            memcpy(out + o, p + i, (size_t)len);
            o += (size_t)len;
        }
        i += (size_t)len;
    }
    if (i < n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = 0;
}

typedef struct sid_row {
    const uint8_t *p;
    uint32_t len, row;
} sid_row;

static int cmp_bytes(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

static int cmp_sid_row(const void *a, const void *b)
{
    const sid_row *x = a, *y = b;
    int c = cmp_bytes(x->p, x->len, y->p, y->len);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

static vd_status dup_error(const sid_row *a, const sid_row *b, vd_err *err)
{
    char label[64];
    vd_str_id_label(a->p, a->len, label, sizeof label);
    return vd_err_set(err, VD_INVALID, "string id %s appears more than once (rows %u and %u)",
                      label, a->row, b->row);
}

/* No id twice: one scan when they ascend already, else a sorted copy. */
static vd_status check_distinct(const vd_str_ids *s, vd_err *err)
{
    size_t i = 1;
    for (; i < s->n; i++) {
        size_t a = vd_str_ids_start(s, i - 1), b = s->ends[i - 1];
        if (cmp_bytes(s->bytes + a, b - a, s->bytes + b, s->ends[i] - b) >= 0) break;
    }
    if (i >= s->n) return VD_OK;
    sid_row *t = vd_malloc(s->n * sizeof *t);
    if (!t) return vd_err_set(err, VD_NOMEM, "out of memory checking %zu string ids", s->n);
    for (size_t k = 0; k < s->n; k++) {
        size_t a = vd_str_ids_start(s, k);
        t[k] = (sid_row){s->bytes + a, (uint32_t)(s->ends[k] - a), (uint32_t)k};
    }
    qsort(t, s->n, sizeof *t, cmp_sid_row);
    vd_status st = VD_OK;
    for (size_t k = 1; k < s->n && st == VD_OK; k++)
        if (t[k].len == t[k - 1].len && memcmp(t[k].p, t[k - 1].p, t[k].len) == 0)
            st = dup_error(&t[k - 1], &t[k], err);
    vd_free(t);
    return st;
}

vd_status vd_str_ids_check(const vd_str_ids *s, int distinct, vd_err *err)
{
    if (s->n && (!s->ends || (!s->bytes && s->n_bytes)))
        return vd_err_set(err, VD_INVALID, "string ids: %zu ends but no bytes", s->n);
    if (s->n > UINT32_MAX)
        return vd_err_set(err, VD_INVALID, "%zu string ids: too many", s->n);
    for (size_t i = 0; i < s->n; i++) {
        size_t a = vd_str_ids_start(s, i);
        if (s->ends[i] < a || s->ends[i] > s->n_bytes)
            return vd_err_set(err, VD_INVALID, "row %zu: string id ends at byte %u, outside "
                              "%zu..%zu (ends must ascend within the %zu bytes of ids)", i,
                              s->ends[i], a, s->n_bytes, s->n_bytes);
        if (vd_str_id_check(s->n_bytes ? s->bytes + a : (const uint8_t *)"", s->ends[i] - a,
                            err) != VD_OK)
            return vd_err_prefix(err, "row %zu", i);
    }
    if (s->n && s->ends[s->n - 1] != s->n_bytes)
        return vd_err_set(err, VD_INVALID, "string ids: %zu bytes after the last id (it ends "
                          "at byte %u)", s->n_bytes - s->ends[s->n - 1], s->ends[s->n - 1]);
    return distinct ? check_distinct(s, err) : VD_OK;
}

vd_status vd_point_ids_check(const vd_collection_params *p, const uint64_t *ids,
                             const vd_str_ids *str, size_t n, int distinct, vd_err *err)
{
    int has_str = str && str->ends;
    if (ids && has_str)
        return vd_err_set(err, VD_INVALID, "both integer ids and string ids given; give one");
    if (has_str && str->n != n)
        return vd_err_set(err, VD_INVALID, "%zu string ids for a batch of %zu", str->n, n);
    if (p->id_type == VD_ID_STR) {
        if (!has_str && ids && n)
            return vd_err_set(err, VD_INVALID, "collection %s has string ids; row 0 is an "
                              "integer id (%" PRIu64 ")", p->name, ids[0]);
        return has_str ? vd_str_ids_check(str, distinct, err) : VD_OK;
    }
    if (has_str && str->n) {
        char label[64];
        vd_str_id_label(str->bytes, str->ends[0], label, sizeof label);
        return vd_err_set(err, VD_INVALID, "collection %s has integer ids; row 0 is a string "
                          "id (%s)", p->name, label);
    }
    return VD_OK;
}

/* ---- payload fields: their paths and index kinds --------------------------------------- */
int vd_storage__utf8_valid(const uint8_t *s, size_t n)
{
    const char *why;
    for (size_t i = 0; i < n;) {
        int len = vd_storage__utf8_seq(s + i, n - i, &why);
        if (!len) return 0;
        i += (size_t)len;
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
