/* storage/json.c: JSON payloads, parsed by jansson (Debian's libjansson).
 *
 * Payloads are stored byte for byte as given; what storage promises about them is that each
 * is exactly one JSON object per RFC 8259 - strict grammar, valid UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF; \u escapes pair their surrogates) - nested at most 64
 * deep, the top-level object counting as 1, so that no reader of a payload can be driven into
 * deep recursion. Filters and payload indexes read the parsed tree (vd_storage__json_parse).
 *
 * jansson does the grammar and the UTF-8; this file adds what it does not: the depth limit
 * (a linear scan of the bytes after a successful parse finds the offset of the 65th level,
 * which jansson's tree does not keep), the object-only rule with a message naming what the
 * payload is instead, and error codes that tell allocation failure (VD_NOMEM) from bad input.
 * Every message names the fault and its byte offset (jansson's position: the byte after the
 * token that went wrong).
 *
 * Where jansson differs from RFC 8259's permissiveness, the limits are documented
 * (docs/protocol.md): an object key may not contain \u0000 (jansson keys are C strings); a
 * number beyond a double's range (1e400) is refused; an integer beyond int64 is read as a
 * double (a second parse with JSON_DECODE_INT_AS_REAL, only for such payloads); of duplicate
 * keys the last one counts for filters.
 *
 * Allocation goes through vd_malloc (json_set_alloc_funcs, once per process), so the
 * allocation-failure tests reach jansson too. Rejected: keeping the hand-written validator
 * next to a parser (two grammars to agree); a streaming validator without a tree (filters
 * need the values). */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>

#include "storage/storage_int.h"

#define JSON_MAX_DEPTH 64

static pthread_once_t alloc_once = PTHREAD_ONCE_INIT;
/* jansson reports some allocation failures as syntax errors (a token it could not copy), so
 * the allocator itself notes them, per thread, for parse to tell VD_NOMEM from bad input. */
static _Thread_local int alloc_failed;
static void *json_alloc(size_t n)
{
    void *p = vd_malloc(n);
    if (!p) alloc_failed = 1;
    return p;
}
static void set_alloc(void) { json_set_alloc_funcs(json_alloc, vd_free); }

/* The offset of the first '{' or '[' at depth > JSON_MAX_DEPTH in valid JSON, or n if none. */
static size_t too_deep_at(const uint8_t *p, size_t n)
{
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_string) {
            if (c == '\\') i++; /* the escaped byte cannot end the string */
            else if (c == '"') in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > JSON_MAX_DEPTH) return i;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return n;
}

static const char *type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_ARRAY: return "a JSON array";
    case JSON_STRING: return "a JSON string";
    case JSON_INTEGER: case JSON_REAL: return "a JSON number";
    case JSON_TRUE: case JSON_FALSE: return "a JSON boolean";
    case JSON_NULL: return "JSON null";
    default: return "not an object";
    }
}

static json_t *load(const uint8_t *p, size_t n, size_t flags, json_error_t *e)
{
    return json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL | flags, e);
}

vd_status vd_storage__json_parse(const uint8_t *p, size_t n, json_t **out, vd_err *err)
{
    json_error_t e;
    *out = NULL;
    pthread_once(&alloc_once, set_alloc);
    if (!p && n) return vd_err_set(err, VD_INVALID, "payload pointer is NULL");
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
    if (i == n) return vd_err_set(err, VD_INVALID, "payload is empty; a JSON object is expected");
    alloc_failed = 0;
    json_t *j = load(p, n, 0, &e);
    if (!j && json_error_code(&e) == json_error_numeric_overflow)
        j = load(p, n, JSON_DECODE_INT_AS_REAL, &e); /* integers beyond int64 as doubles */
    if (!j) {
        if (alloc_failed || json_error_code(&e) == json_error_out_of_memory)
            return vd_err_set(err, VD_NOMEM, "out of memory parsing a payload of %zu bytes", n);
        return vd_err_set(err, VD_INVALID, "payload is not valid JSON: %s at byte %d", e.text,
                          e.position);
    }
    if (!json_is_object(j)) {
        vd_status s = vd_err_set(err, VD_INVALID, "payload is %s; a payload must be an object",
                                 type_name(j));
        json_decref(j);
        return s;
    }
    size_t deep = too_deep_at(p, n);
    if (deep < n) {
        json_decref(j);
        return vd_err_set(err, VD_INVALID, "payload is not valid JSON: nesting deeper than %d "
                          "levels at byte %zu", JSON_MAX_DEPTH, deep);
    }
    *out = j;
    return VD_OK;
}

vd_status vd_json_check_object(const uint8_t *p, size_t n, vd_err *err)
{
    json_t *j = NULL;
    vd_status s = vd_storage__json_parse(p, n, &j, err);
    json_decref(j);
    return s;
}
