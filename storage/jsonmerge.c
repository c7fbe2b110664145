/* storage/jsonmerge.c: set_payload's merge of two JSON objects - the stored payload and the
 * update - by top-level key: the stored members whose key the update does not name, in
 * their order, then the update's members, in theirs.
 *
 * Both inputs have passed vd_json_check_object, so this is a scanner, not a parser: it finds
 * each top-level member's span (key through value) and copies spans verbatim. Nothing is
 * re-serialized, so values keep their exact bytes (numbers beyond double precision, escapes,
 * key order), and the result is valid JSON by construction. Keys are compared decoded
 * ("a" and "\u0061" are one key); raw bytes when neither holds an escape. The update's keys
 * are sorted once, so merging m members into n costs O((m + n) log n), whatever a hostile
 * payload holds.
 * Rejected: parsing both into a JSON library's tree and dumping the merge (rewrites every
 * untouched number, e.g. 0.1 as 0.10000000000000001, and refuses integers past 64 bits);
 * RFC 7386 merge patch (recursive, and null deletes: RAG tools' set_payload - Qdrant's,
 * Chroma's update - merge the top level only). Pure: any thread. */
#include <stdlib.h>
#include <string.h>

#include "storage/records.h"

typedef struct span {
    size_t a, b; /* [a, b) of the member: key through value */
    size_t ka, kb; /* the key's bytes between its quotes */
} span;

typedef struct member_key {
    const uint8_t *p; /* decoded key */
    size_t n;
} member_key;

static size_t skip_ws(const uint8_t *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
    return i;
}

/* i at an opening quote; returns the index after the closing one. */
static size_t skip_string(const uint8_t *p, size_t n, size_t i)
{
    for (i++; i < n && p[i] != '"'; i++)
        if (p[i] == '\\') i++;
    return i < n ? i + 1 : n;
}

static size_t skip_value(const uint8_t *p, size_t n, size_t i)
{
    if (i < n && p[i] == '"') return skip_string(p, n, i);
    if (i < n && (p[i] == '{' || p[i] == '[')) {
        size_t depth = 0;
        while (i < n) {
            uint8_t c = p[i];
            if (c == '"') {
                i = skip_string(p, n, i);
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
            i++;
        }
        return n;
    }
    while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' &&
           p[i] != '\n' && p[i] != '\r')
        i++;
    return i;
}

/* The top-level members of object p[0..n) into *out (a new array of *n_out). */
static vd_status members(const uint8_t *p, size_t n, span **out, size_t *n_out, vd_err *err)
{
    size_t cap = 8, m = 0;
    span *s = vd_malloc(cap * sizeof *s);
    if (!s) return vd_err_set(err, VD_NOMEM, "out of memory merging a payload");
    size_t i = skip_ws(p, n, 0) + 1; /* past '{' */
    for (;;) {
        i = skip_ws(p, n, i);
        if (i >= n || p[i] != '"') break; /* '}' */
        if (m == cap) {
            span *t = vd_realloc(s, 2 * cap * sizeof *s);
            if (!t) {
                vd_free(s);
                return vd_err_set(err, VD_NOMEM, "out of memory merging a payload");
            }
            s = t;
            cap *= 2;
        }
        span *e = &s[m++];
        e->a = i;
        e->ka = i + 1;
        i = skip_string(p, n, i);
        e->kb = i - 1;
        i = skip_ws(p, n, skip_ws(p, n, i) + 1); /* past ':' */
        e->b = i = skip_value(p, n, i);
        i = skip_ws(p, n, i);
        if (i < n && p[i] == ',') i++;
    }
    *out = s;
    *n_out = m;
    return VD_OK;
}

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) return o[0] = (uint8_t)cp, 1;
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

static uint32_t hex4(const uint8_t *h)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = h[k];
        v = v << 4 | (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* The key's bytes with escapes decoded into out (room for len bytes: decoding never grows a
 * key); returns the decoded length. A lone surrogate decodes to its 3-byte form, which is
 * only ever compared, never stored. */
static size_t decode_key(const uint8_t *p, size_t len, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '\\' || i + 1 >= len) {
            out[o++] = p[i];
            continue;
        }
        uint8_t c = p[++i];
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *f = c != 'u' ? strchr(from, c) : NULL;
        if (f) {
            out[o++] = (uint8_t)to[f - from];
        } else if (c == 'u' && i + 4 < len) {
            uint32_t cp = hex4(p + i + 1);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < len && p[i + 1] == '\\' &&
                p[i + 2] == 'u') {
                uint32_t lo = hex4(p + i + 3);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            o += put_utf8(out + o, cp);
        } else {
            out[o++] = c;
        }
    }
    return o;
}

static int cmp_key(const void *x, const void *y)
{
    const member_key *a = x, *b = y;
    int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* Decoded keys of the members of p into keys[] (their bytes in buf, room for n bytes). */
static void member_keys(const uint8_t *p, const span *s, size_t m, member_key *keys,
                        uint8_t *buf)
{
    size_t used = 0;
    for (size_t i = 0; i < m; i++) {
        const uint8_t *k = p + s[i].ka;
        size_t kn = s[i].kb - s[i].ka;
        if (!memchr(k, '\\', kn)) {
            keys[i] = (member_key){k, kn};
            continue;
        }
        size_t dn = decode_key(k, kn, buf + used);
        keys[i] = (member_key){buf + used, dn};
        used += dn;
    }
}

static size_t append(uint8_t *out, size_t o, const uint8_t *p, const span *e, int *first)
{
    if (!*first) out[o++] = ',';
    *first = 0;
    memcpy(out + o, p + e->a, e->b - e->a);
    return o + (e->b - e->a);
}

vd_status vd_storage__json_merge(const uint8_t *base, size_t bn, const uint8_t *upd, size_t un,
                                 uint8_t *out, size_t *out_len, vd_err *err)
{
    span *bs = NULL, *us = NULL;
    member_key *keys = NULL;
    uint8_t *kbuf = NULL;
    size_t nb = 0, nu = 0, o = 0;
    int first = 1;
    vd_status s = members(base, bn, &bs, &nb, err);
    if (s == VD_OK) s = members(upd, un, &us, &nu, err);
    if (s != VD_OK) goto out;
    keys = vd_malloc((nu + 1) * sizeof *keys);
    kbuf = vd_malloc(un + bn + 1);
    if (!keys || !kbuf) {
        s = vd_err_set(err, VD_NOMEM, "out of memory merging a payload");
        goto out;
    }
    member_keys(upd, us, nu, keys, kbuf);
    qsort(keys, nu, sizeof *keys, cmp_key);
    out[o++] = '{';
    for (size_t i = 0; i < nb; i++) {
        member_key k;
        member_keys(base, &bs[i], 1, &k, kbuf + un);
        if (!nu || !bsearch(&k, keys, nu, sizeof *keys, cmp_key))
            o = append(out, o, base, &bs[i], &first);
    }
    for (size_t i = 0; i < nu; i++) o = append(out, o, upd, &us[i], &first);
    out[o++] = '}';
    *out_len = o;
out:
    vd_free(bs);
    vd_free(us);
    vd_free(keys);
    vd_free(kbuf);
    return s;
}
