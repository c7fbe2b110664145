/* storage/filter.c: the filter grammar (vd_filter_check) and the meaning of a filter on one
 * payload: evaluation against a parsed JSON object, and the extraction of a field's values
 * for a payload index. Pure (jansson, no LMDB).
 *
 * This file is the reference semantics. A payload index answers a condition only for
 * operands of its own type and keys its values exactly as `values_of` below reads them, so
 * a filter gives the same answer whichever way a condition is evaluated (the unit tests
 * compare both ways on random payloads and filters).
 *
 * Paths: a dotted path walks nested objects one key per segment; an array met on the way
 * fans out over its object elements; an array at the end contributes its elements (one
 * level: an array inside it matches no scalar). Numbers compare exactly across integers and
 * doubles (1 == 1.0; 2^63 - 1 vs 9.223372036854775807e18): both are converted to long double,
 * whose 64-bit mantissa holds every int64 and every double (checked below).
 *
 * The grammar check names the fault and where it is, spelling the path the way the dict
 * grammar writes it ("filter.$or[1].year"), so a client can point at the part of its dict:
 * an explicit $and/$or child adds "$and[i]", a child of an implicit AND (a dict with several
 * keys) adds nothing, $not adds "$not", a condition adds ".<field>". Recursion is bounded by
 * VD_FILTER_MAX_DEPTH: the check stops descending at the first level too deep, and the
 * evaluators run only on checked trees. Rejected: evaluating a filter compiled to bytecode
 * (a tree of at most 1,024 terms is small, and evaluation on a payload is dominated by
 * parsing it). */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "storage/storage_int.h"

_Static_assert(LDBL_MANT_DIG >= 64, "exact int64/double comparison needs a 64-bit mantissa");

static const struct {
    const char *name;
    size_t n;
} filter_limits[] = {
#define X(id, what, n) {what, n},
    VD_FILTER_LIMIT_MAP(X)
#undef X
};

const char *vd_filter_op_name(vd_filter_op op)
{
    static const char *const names[] = {
        [VD_FOP_EQ] = "$eq",   [VD_FOP_NE] = "$ne",   [VD_FOP_GT] = "$gt",
        [VD_FOP_GTE] = "$gte", [VD_FOP_LT] = "$lt",   [VD_FOP_LTE] = "$lte",
        [VD_FOP_IN] = "$in",   [VD_FOP_NIN] = "$nin", [VD_FOP_EXISTS] = "$exists",
        [VD_FOP_AND] = "$and", [VD_FOP_OR] = "$or",   [VD_FOP_NOT] = "$not",
    };
    return (unsigned)op < VD_ARRAY_LEN(names) && names[op] ? names[op] : "$?";
}

/* ---- the grammar ------------------------------------------------------------------------- */
/* The path as a message shows it: whole up to 72 bytes, else its head and tail, so that the
 * message after it survives the 200-byte error record (and "count: " before it). */
static const char *show(const char *path, char buf[80])
{
    size_t n = strlen(path);
    if (n <= 72) return path;
    snprintf(buf, 80, "%.16s...%s", path, path + n - 52);
    return buf;
}

typedef struct gcheck {
    size_t terms;
    vd_err *err;
} gcheck;

static const char *fval_type_name(vd_fval_type t)
{
    switch (t) {
    case VD_FVAL_STRING: return "string";
    case VD_FVAL_INT: case VD_FVAL_FLOAT: return "number";
    case VD_FVAL_BOOL: return "bool";
    }
    return "unknown value";
}

/* One operand of condition c at `path`. */
static vd_status check_value(const vd_filter *c, const vd_fval *v, const char *path, vd_err *err)
{
    const char *op = vd_filter_op_name(c->op);
    int range = c->op >= VD_FOP_GT && c->op <= VD_FOP_LTE;
    if (v->type < VD_FVAL_STRING || v->type > VD_FVAL_BOOL)
        return vd_err_set(err, VD_INVALID, "%s: %s has a value of unknown type %d", path, op,
                          (int)v->type);
    if (c->op == VD_FOP_EXISTS && v->type != VD_FVAL_BOOL)
        return vd_err_set(err, VD_INVALID, "%s: $exists expects true or false, got %s", path,
                          fval_type_name(v->type));
    if (range && v->type == VD_FVAL_BOOL)
        return vd_err_set(err, VD_INVALID, "%s: %s expects a number or string, got bool", path,
                          op);
    if (v->type == VD_FVAL_FLOAT && !isfinite(v->f))
        return vd_err_set(err, VD_INVALID, "%s: %s expects a finite number, got %s", path, op,
                          isnan(v->f) ? "nan" : v->f > 0 ? "inf" : "-inf");
    if (v->type == VD_FVAL_STRING && (!v->s.p && v->s.len))
        return vd_err_set(err, VD_INVALID, "%s: %s has a string without bytes", path, op);
    if (v->type == VD_FVAL_STRING && !vd_storage__utf8_valid((const uint8_t *)v->s.p, v->s.len))
        return vd_err_set(err, VD_INVALID, "%s: %s expects valid UTF-8 strings", path, op);
    return VD_OK;
}

static vd_status check_condition(gcheck *g, const vd_filter *c, char *path, size_t plen,
                                 size_t cap)
{
    vd_err e;
    const char *op = vd_filter_op_name(c->op);
    /* A long path is cut in the message's path (the message says how long it is). */
    snprintf(path + plen, cap - plen, ".%.*s%s", (int)(c->field_len < 40 ? c->field_len : 40),
             c->field ? c->field : "", c->field_len > 40 ? "..." : "");
    char sp[80];
    const char *shown = show(path, sp);
    if (vd_storage__path_check(c->field, c->field_len, &e) != VD_OK)
        return vd_err_set(g->err, VD_INVALID, "%s: %s", shown, e.msg);
    if (c->n_children)
        return vd_err_set(g->err, VD_INVALID, "%s: %s takes values, not filters", shown, op);
    int list = c->op == VD_FOP_IN || c->op == VD_FOP_NIN;
    if (!list && c->n_values != 1)
        return vd_err_set(g->err, VD_INVALID, "%s: %s expects one value, got %zu", shown, op,
                          c->n_values);
    if (c->n_values && !c->values)
        return vd_err_set(g->err, VD_INVALID, "%s: %s has no values", shown, op);
    g->terms += list ? c->n_values : 0;
    if (g->terms > VD_FILTER_MAX_TERMS)
        return vd_err_set(g->err, VD_INVALID, "filter: more than %d terms", VD_FILTER_MAX_TERMS);
    for (size_t i = 0; i < c->n_values; i++) {
        vd_status s = check_value(c, &c->values[i], shown, g->err);
        if (s != VD_OK) return s;
    }
    return VD_OK;
}

/* Node f at `path` (path[0..plen) written), `depth` logical levels above it. */
static vd_status check_node(gcheck *g, const vd_filter *f, int depth, char *path, size_t plen,
                            size_t cap)
{
    path[plen] = 0;
    if (++g->terms > VD_FILTER_MAX_TERMS)
        return vd_err_set(g->err, VD_INVALID, "filter: more than %d terms", VD_FILTER_MAX_TERMS);
    if (f->op >= VD_FOP_EQ && f->op <= VD_FOP_EXISTS) return check_condition(g, f, path, plen, cap);
    if (f->op == 0 && f->field_len)
        return vd_err_set(g->err, VD_INVALID, "%s.%.*s: a condition without an operator",
                          show(path, (char[80]){0}), (int)(f->field_len < 40 ? f->field_len : 40),
                          f->field ? f->field : "");
    if (f->op == 0)
        return vd_err_set(g->err, VD_INVALID, "%s: an empty filter (no condition, $and, $or "
                          "or $not)", show(path, (char[80]){0}));
    if (f->op < VD_FOP_AND || f->op > VD_FOP_NOT)
        return vd_err_set(g->err, VD_INVALID, "%s: unknown operator %d", show(path, (char[80]){0}),
                          (int)f->op);
    const char *op = vd_filter_op_name(f->op);
    char sp[80];
    const char *shown = show(path, sp);
    if (depth + 1 > VD_FILTER_MAX_DEPTH)
        return vd_err_set(g->err, VD_INVALID, "%s: nesting deeper than %d levels", shown,
                          VD_FILTER_MAX_DEPTH);
    if (f->n_values || f->field_len)
        return vd_err_set(g->err, VD_INVALID, "%s: %s takes filters, not a field or values",
                          shown, op);
    if (f->op == VD_FOP_NOT && f->n_children != 1)
        return vd_err_set(g->err, VD_INVALID, "%s: $not expects one filter, got %zu", shown,
                          f->n_children);
    if (f->n_children == 0 || !f->children)
        return vd_err_set(g->err, VD_INVALID, "%s: %s expects a non-empty list of filters",
                          shown, op);
    for (size_t i = 0; i < f->n_children; i++) {
        size_t n = plen;
        if (f->op == VD_FOP_NOT) n += (size_t)snprintf(path + n, cap - n, ".$not");
        else if (!f->implicit || f->op != VD_FOP_AND)
            n += (size_t)snprintf(path + n, cap - n, ".%s[%zu]", op, i);
        if (n >= cap) n = cap - 1; /* a truncated path still names the start */
        vd_status s = check_node(g, &f->children[i], depth + 1, path, n, cap);
        if (s != VD_OK) return s;
    }
    return VD_OK;
}

vd_status vd_filter_check(const vd_filter *f, vd_err *err)
{
    char path[512] = "filter";
    gcheck g = {.err = err};
    if (!f) return vd_err_set(err, VD_INVALID, "filter: missing");
    (void)filter_limits;
    return check_node(&g, f, 0, path, strlen(path), sizeof path);
}

/* ---- walking a path ---------------------------------------------------------------------- */
/* Calls fn(ctx, v) for every value path[0..n) finds under root (see the note at the top);
 * stops when fn returns non-zero and returns that. *present = 1 when the path finds anything. */
typedef int (*value_fn)(void *ctx, const json_t *v);

static int walk(const json_t *v, const char *p, const char *end, value_fn fn, void *ctx,
                int *present)
{
    if (p == end) {
        *present = 1;
        if (!json_is_array(v)) return fn(ctx, v);
        for (size_t i = 0; i < json_array_size(v); i++) {
            int r = fn(ctx, json_array_get(v, i));
            if (r) return r;
        }
        return 0;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *e = json_array_get(v, i);
            int r = json_is_object(e) ? walk(e, p, end, fn, ctx, present) : 0;
            if (r) return r;
        }
        return 0;
    }
    if (!json_is_object(v)) return 0;
    const char *dot = memchr(p, '.', (size_t)(end - p));
    const char *seg_end = dot ? dot : end;
    const json_t *c = json_object_getn(v, p, (size_t)(seg_end - p));
    return c ? walk(c, dot ? dot + 1 : end, end, fn, ctx, present) : 0;
}

int vd_storage__path_visit(const json_t *root, const char *path, size_t n,
                           int (*fn)(void *ctx, const json_t *v), void *ctx, int *present)
{
    *present = 0;
    return root ? walk(root, path, path + n, fn, ctx, present) : 0;
}

/* ---- comparing one value with an operand ------------------------------------------------- */
static int num_of(const json_t *v, long double *out)
{
    if (json_is_integer(v)) *out = (long double)json_integer_value(v);
    else if (json_is_real(v)) *out = (long double)json_real_value(v);
    else return 0;
    return 1;
}

static long double num_of_fval(const vd_fval *o)
{
    return o->type == VD_FVAL_INT ? (long double)o->i : (long double)o->f;
}

/* -2, never equal or ordered (a type mismatch); else the sign of v - o. */
static int cmp_value(const json_t *v, const vd_fval *o)
{
    long double a;
    switch (o->type) {
    case VD_FVAL_INT: case VD_FVAL_FLOAT: {
        if (!num_of(v, &a)) return -2;
        long double b = num_of_fval(o);
        return a < b ? -1 : a > b;
    }
    case VD_FVAL_STRING: {
        if (!json_is_string(v)) return -2;
        size_t la = json_string_length(v), lb = o->s.len, m = la < lb ? la : lb;
        int c = m ? memcmp(json_string_value(v), o->s.p, m) : 0;
        if (c) return c < 0 ? -1 : 1;
        return la < lb ? -1 : la > lb;
    }
    case VD_FVAL_BOOL:
        if (!json_is_boolean(v)) return -2;
        return json_is_true(v) == (o->b != 0) ? 0 : -2;
    }
    return -2;
}

/* Whether one value satisfies condition c (EQ, IN and the ranges; NE and NIN are negated by
 * the caller). */
static int value_holds(void *ctx, const json_t *v)
{
    const vd_filter *c = ctx;
    int r;
    switch (c->op) {
    case VD_FOP_EQ: case VD_FOP_NE: return cmp_value(v, &c->values[0]) == 0;
    case VD_FOP_IN: case VD_FOP_NIN:
        for (size_t i = 0; i < c->n_values; i++)
            if (cmp_value(v, &c->values[i]) == 0) return 1;
        return 0;
    case VD_FOP_GT: return (r = cmp_value(v, &c->values[0])) != -2 && r > 0;
    case VD_FOP_GTE: return (r = cmp_value(v, &c->values[0])) != -2 && r >= 0;
    case VD_FOP_LT: return cmp_value(v, &c->values[0]) == -1;
    case VD_FOP_LTE: return (r = cmp_value(v, &c->values[0])) == -1 || r == 0;
    default: return 0;
    }
}

int vd_storage__condition_match(const vd_filter *c, const json_t *payload)
{
    int present;
    int any = vd_storage__path_visit(payload, c->field, c->field_len, value_holds, (void *)c,
                                     &present);
    switch (c->op) {
    case VD_FOP_EXISTS: return present == (c->values[0].b != 0);
    case VD_FOP_NE: case VD_FOP_NIN: return !any;
    default: return any;
    }
}

int vd_storage__filter_match(const vd_filter *f, const json_t *payload)
{
    switch (f->op) {
    case VD_FOP_AND:
        for (size_t i = 0; i < f->n_children; i++)
            if (!vd_storage__filter_match(&f->children[i], payload)) return 0;
        return 1;
    case VD_FOP_OR:
        for (size_t i = 0; i < f->n_children; i++)
            if (vd_storage__filter_match(&f->children[i], payload)) return 1;
        return 0;
    case VD_FOP_NOT: return !vd_storage__filter_match(&f->children[0], payload);
    default: return vd_storage__condition_match(f, payload);
    }
}

/* ---- a field's values for a payload index ------------------------------------------------- */
typedef struct extract {
    vd_pindex_kind kind;
    vd_pval_item *items;
    size_t n, cap;
    unsigned flags;
    int nomem;
} extract;

#define TWO_53 9007199254740992.0

/* The key of a number for an integer or float index; 0 when it has none (FALLBACK). */
static int number_key(vd_pindex_kind kind, const json_t *v, uint64_t *key)
{
    if (kind == VD_PINDEX_INTEGER) {
        if (json_is_integer(v)) {
            *key = vd_storage__key_of_int(json_integer_value(v));
            return 1;
        }
        double d = json_real_value(v);
        if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0) return 0;
        *key = vd_storage__key_of_int((int64_t)d);
        return 1;
    }
    if (json_is_real(v)) {
        *key = vd_storage__key_of_double(json_real_value(v));
        return 1;
    }
    json_int_t i = json_integer_value(v);
    if (i < -(json_int_t)TWO_53 || i > (json_int_t)TWO_53) return 0;
    *key = vd_storage__key_of_double((double)i);
    return 1;
}

static int collect(void *ctx, const json_t *v)
{
    extract *x = ctx;
    vd_pval_item it = {0};
    switch (x->kind) {
    case VD_PINDEX_KEYWORD:
        if (!json_is_string(v)) return 0;
        it.s = json_string_value(v);
        it.len = json_string_length(v);
        break;
    case VD_PINDEX_BOOL:
        if (!json_is_boolean(v)) return 0;
        it.key = json_is_true(v);
        break;
    default:
        if (!json_is_number(v)) return 0;
        if (!number_key(x->kind, v, &it.key)) {
            x->flags |= VD_PVAL_FALLBACK;
            return 0;
        }
        break;
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 8;
        vd_pval_item *a = vd_realloc(x->items, cap * sizeof *a);
        if (!a) {
            x->nomem = 1;
            return 1;
        }
        x->items = a;
        x->cap = cap;
    }
    x->items[x->n++] = it;
    return 0;
}

vd_status vd_storage__pvals_extract(vd_pindex_kind kind, const char *path, size_t path_len,
                                    const json_t *payload, vd_buf *out, size_t *len,
                                    vd_err *err)
{
    extract x = {.kind = kind};
    int present;
    *len = 0;
    vd_storage__path_visit(payload, path, path_len, collect, &x, &present);
    vd_status s = VD_OK;
    if (x.nomem) s = vd_err_set(err, VD_NOMEM, "out of memory indexing a payload");
    else if (present) {
        x.n = vd_storage__pvals_sort(kind, x.items, x.n);
        s = vd_storage__pvals_encode(out, kind, x.flags | VD_PVAL_PRESENT, x.items, x.n, len,
                                     err);
    }
    vd_free(x.items);
    return s;
}
