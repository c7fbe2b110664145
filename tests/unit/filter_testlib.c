/* tests/unit/filter_testlib.c: see filter_testlib.h. */
#include "tests/unit/filter_testlib.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct ft_arena {
    void **blocks;
    size_t n, cap;
};

ft_arena *ft_new(void) { return calloc(1, sizeof(ft_arena)); }

static void *take(ft_arena *a, size_t bytes)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->blocks = realloc(a->blocks, a->cap * sizeof *a->blocks);
    }
    void *p = calloc(1, bytes ? bytes : 1);
    a->blocks[a->n++] = p;
    return p;
}

void ft_free(ft_arena *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) free(a->blocks[i]);
    free(a->blocks);
    free(a);
}

static vd_fval value_of(ft_arena *a, const json_t *v)
{
    vd_fval f = {0};
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        char *s = take(a, n);
        memcpy(s, json_string_value(v), n);
        f.type = VD_FVAL_STRING;
        f.s.p = s;
        f.s.len = n;
    } else if (json_is_integer(v)) {
        f.type = VD_FVAL_INT;
        f.i = json_integer_value(v);
    } else if (json_is_real(v)) {
        f.type = VD_FVAL_FLOAT;
        f.f = json_real_value(v);
    } else {
        ck_assert_msg(json_is_boolean(v), "filter_testlib: unsupported operand");
        f.type = VD_FVAL_BOOL;
        f.b = json_is_true(v);
    }
    return f;
}

static const struct {
    const char *name;
    vd_filter_op op;
} ops[] = {{"$eq", VD_FOP_EQ},   {"$ne", VD_FOP_NE},   {"$gt", VD_FOP_GT},
           {"$gte", VD_FOP_GTE}, {"$lt", VD_FOP_LT},   {"$lte", VD_FOP_LTE},
           {"$in", VD_FOP_IN},   {"$nin", VD_FOP_NIN}, {"$exists", VD_FOP_EXISTS}};

static void fill_dict(ft_arena *a, const json_t *d, vd_filter *out);

/* One field condition with operator name op (NULL: plain equality). */
static void condition(ft_arena *a, const char *field, const char *op, const json_t *v,
                      vd_filter *out)
{
    size_t fl = strlen(field);
    char *f = take(a, fl);
    memcpy(f, field, fl);
    out->field = f;
    out->field_len = fl;
    out->op = VD_FOP_EQ;
    for (size_t i = 0; op && i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(op, ops[i].name)) out->op = ops[i].op;
    if (json_is_array(v)) {
        vd_fval *vals = take(a, json_array_size(v) * sizeof *vals);
        for (size_t i = 0; i < json_array_size(v); i++) vals[i] = value_of(a, json_array_get(v, i));
        out->values = vals;
        out->n_values = json_array_size(v);
    } else {
        vd_fval *val = take(a, sizeof *val);
        *val = value_of(a, v);
        out->values = val;
        out->n_values = 1;
    }
}

/* One key of a dict. */
static void key_node(ft_arena *a, const char *key, const json_t *v, vd_filter *out)
{
    if (!strcmp(key, "$and") || !strcmp(key, "$or")) {
        out->op = key[1] == 'a' ? VD_FOP_AND : VD_FOP_OR;
        vd_filter *ch = take(a, json_array_size(v) * sizeof *ch);
        for (size_t i = 0; i < json_array_size(v); i++) fill_dict(a, json_array_get(v, i), &ch[i]);
        out->children = ch;
        out->n_children = json_array_size(v);
    } else if (!strcmp(key, "$not")) {
        out->op = VD_FOP_NOT;
        vd_filter *ch = take(a, sizeof *ch);
        fill_dict(a, v, ch);
        out->children = ch;
        out->n_children = 1;
    } else if (json_is_object(v)) {
        size_t n = json_object_size(v);
        const char *op;
        json_t *val;
        if (n == 1) {
            json_object_foreach((json_t *)v, op, val) condition(a, key, op, val, out);
            return;
        }
        vd_filter *ch = take(a, n * sizeof *ch);
        size_t i = 0;
        json_object_foreach((json_t *)v, op, val) condition(a, key, op, val, &ch[i++]);
        *out = (vd_filter){.op = VD_FOP_AND, .children = ch, .n_children = n, .implicit = 1};
    } else {
        condition(a, key, NULL, v, out);
    }
}

static void fill_dict(ft_arena *a, const json_t *d, vd_filter *out)
{
    ck_assert_msg(json_is_object(d), "filter_testlib: a filter is a dict");
    size_t n = json_object_size(d);
    const char *key;
    json_t *v;
    if (n == 1) {
        json_object_foreach((json_t *)d, key, v) key_node(a, key, v, out);
        return;
    }
    vd_filter *ch = take(a, n * sizeof *ch);
    size_t i = 0;
    json_object_foreach((json_t *)d, key, v) key_node(a, key, v, &ch[i++]);
    *out = (vd_filter){.op = VD_FOP_AND, .children = ch, .n_children = n, .implicit = 1};
}

const vd_filter *ft_parse(ft_arena *a, const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_PRESERVE_ORDER, &e);
    ck_assert_msg(j != NULL, "filter_testlib: %s: %s", text, e.text);
    vd_filter *f = take(a, sizeof *f);
    fill_dict(a, j, f);
    json_decref(j);
    return f;
}

uint64_t ft_count(vd_store *st, const char *collection, const char *json)
{
    ft_arena *a = ft_new();
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, collection, &c, NULL), VD_OK);
    vd_filtered *v = NULL;
    vd_err e = {0};
    ck_assert_msg(vd_filtered_begin(st, c, ft_parse(a, json), &v, &e) == VD_OK, "%s: %s", json,
                  e.msg);
    vd_filtered_stats fs;
    vd_filtered_stats_get(v, &fs);
    vd_filtered_end(v);
    vd_collection_release(c);
    ft_free(a);
    return fs.matching;
}
