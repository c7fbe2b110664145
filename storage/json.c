/* storage/json.c: validation of JSON payloads, kept on its own: a later issue replaces this
 * hand-written checker with a library, and nothing else in storage depends on how it works.
 *
 * Payloads are stored byte for byte as given, so the only thing storage promises is that
 * they are exactly one JSON object per RFC 8259: strict grammar (no trailing commas, no
 * comments, no NaN, no leading zeros, no control characters in strings), valid UTF-8
 * (no overlongs, no surrogates, nothing above U+10FFFF; \u escapes must pair surrogates),
 * and nesting at most 64 deep so that no reader of the payload can be driven into deep
 * recursion. Duplicate keys are allowed, as RFC 8259 allows them.
 *
 * A recursive-descent checker: depth is bounded by the 64-level limit, so the C stack use is
 * bounded too. Rejected alternative: a full parser building a tree (allocation, and nothing
 * here needs the values). Each error names the byte offset where the input went wrong. */
#include <stdio.h>
#include <string.h>

#include "storage/records.h"

#define JSON_MAX_DEPTH 64

typedef struct jp {
    const uint8_t *p;
    size_t n, i;
    vd_err *err;
} jp;

static vd_status jfail(jp *j, const char *what)
{
    if (j->i >= j->n)
        return vd_err_set(j->err, VD_INVALID, "payload is not valid JSON: %s at end of input "
                                              "(byte %zu)", what, j->i);
    return vd_err_set(j->err, VD_INVALID, "payload is not valid JSON: %s at byte %zu",
                      what, j->i);
}

static void skip_ws(jp *j)
{
    while (j->i < j->n) {
        uint8_t c = j->p[j->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        j->i++;
    }
}

/* One UTF-8 sequence starting at j->i (first byte >= 0x80). */
static vd_status utf8_seq(jp *j)
{
    const char *why = "";
    int len = vd_storage__utf8_seq(j->p + j->i, j->n - j->i, &why);
    if (!len) return jfail(j, why);
    j->i += (size_t)len;
    return VD_OK;
}

static int hex4(const uint8_t *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static vd_status jstring(jp *j)
{
    j->i++; /* opening quote */
    while (j->i < j->n) {
        uint8_t c = j->p[j->i];
        if (c == '"') {
            j->i++;
            return VD_OK;
        }
        if (c < 0x20) return jfail(j, "control character in string");
        if (c >= 0x80) {
            vd_status s = utf8_seq(j);
            if (s != VD_OK) return s;
            continue;
        }
        if (c != '\\') {
            j->i++;
            continue;
        }
        if (j->i + 1 >= j->n) break;
        uint8_t e = j->p[j->i + 1];
        if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
            e == 'r' || e == 't') {
            j->i += 2;
            continue;
        }
        if (e != 'u') return jfail(j, "invalid escape in string");
        uint32_t u;
        if (j->i + 6 > j->n || !hex4(j->p + j->i + 2, &u)) return jfail(j, "invalid \\u escape");
        if (u >= 0xDC00 && u <= 0xDFFF) return jfail(j, "unpaired low surrogate escape");
        if (u >= 0xD800 && u <= 0xDBFF) {
            uint32_t lo;
            if (j->i + 12 > j->n || j->p[j->i + 6] != '\\' || j->p[j->i + 7] != 'u' ||
                !hex4(j->p + j->i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return jfail(j, "unpaired high surrogate escape");
            j->i += 12;
        } else {
            j->i += 6;
        }
    }
    return jfail(j, "unterminated string");
}

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static vd_status jnumber(jp *j)
{
    if (j->p[j->i] == '-') j->i++;
    if (j->i >= j->n || !is_digit(j->p[j->i])) return jfail(j, "invalid number");
    if (j->p[j->i] == '0') {
        j->i++;
        if (j->i < j->n && is_digit(j->p[j->i])) return jfail(j, "leading zero in number");
    } else {
        while (j->i < j->n && is_digit(j->p[j->i])) j->i++;
    }
    if (j->i < j->n && j->p[j->i] == '.') {
        j->i++;
        if (j->i >= j->n || !is_digit(j->p[j->i])) return jfail(j, "digit expected after '.'");
        while (j->i < j->n && is_digit(j->p[j->i])) j->i++;
    }
    if (j->i < j->n && (j->p[j->i] == 'e' || j->p[j->i] == 'E')) {
        j->i++;
        if (j->i < j->n && (j->p[j->i] == '+' || j->p[j->i] == '-')) j->i++;
        if (j->i >= j->n || !is_digit(j->p[j->i])) return jfail(j, "digit expected in exponent");
        while (j->i < j->n && is_digit(j->p[j->i])) j->i++;
    }
    return VD_OK;
}

static vd_status jliteral(jp *j, const char *word)
{
    size_t len = strlen(word);
    if (j->n - j->i < len || memcmp(j->p + j->i, word, len) != 0)
        return jfail(j, "unexpected character");
    j->i += len;
    return VD_OK;
}

static vd_status jvalue(jp *j, int depth);

static vd_status jcontainer(jp *j, int depth, int object)
{
    if (depth > JSON_MAX_DEPTH) return jfail(j, "nesting deeper than 64 levels");
    uint8_t close = object ? '}' : ']';
    j->i++;
    skip_ws(j);
    if (j->i < j->n && j->p[j->i] == close) {
        j->i++;
        return VD_OK;
    }
    for (;;) {
        vd_status s;
        if (object) {
            if (j->i >= j->n || j->p[j->i] != '"') return jfail(j, "object key expected");
            if ((s = jstring(j)) != VD_OK) return s;
            skip_ws(j);
            if (j->i >= j->n || j->p[j->i] != ':') return jfail(j, "':' expected");
            j->i++;
            skip_ws(j);
        }
        if ((s = jvalue(j, depth)) != VD_OK) return s;
        skip_ws(j);
        if (j->i >= j->n) return jfail(j, object ? "'}' expected" : "']' expected");
        if (j->p[j->i] == close) {
            j->i++;
            return VD_OK;
        }
        if (j->p[j->i] != ',') return jfail(j, object ? "',' or '}' expected" :
                                                        "',' or ']' expected");
        j->i++;
        skip_ws(j);
    }
}

static vd_status jvalue(jp *j, int depth)
{
    if (j->i >= j->n) return jfail(j, "value expected");
    switch (j->p[j->i]) {
    case '{': return jcontainer(j, depth + 1, 1);
    case '[': return jcontainer(j, depth + 1, 0);
    case '"': return jstring(j);
    case 't': return jliteral(j, "true");
    case 'f': return jliteral(j, "false");
    case 'n': return jliteral(j, "null");
    default:
        if (j->p[j->i] == '-' || is_digit(j->p[j->i])) return jnumber(j);
        return jfail(j, "unexpected character");
    }
}

vd_status vd_json_check_object(const uint8_t *p, size_t n, vd_err *err)
{
    jp j = {p, n, 0, err};
    if (!p && n) return vd_err_set(err, VD_INVALID, "payload pointer is NULL");
    skip_ws(&j);
    if (j.i >= j.n) return vd_err_set(err, VD_INVALID, "payload is empty; a JSON object "
                                                       "is expected");
    if (p[j.i] != '{') return jfail(&j, "payload must be a JSON object; '{' expected");
    vd_status s = jcontainer(&j, 1, 1);
    if (s != VD_OK) return s;
    skip_ws(&j);
    if (j.i != j.n) return jfail(&j, "trailing data after the JSON object");
    return VD_OK;
}
