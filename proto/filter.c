/* proto/filter.c: the wire's Filter tree into the storage filter tree (vd_filter), and the
 * guard that lets a hostile frame reach protobuf-c at all.
 *
 * The guard: Filter is recursive, and protobuf-c (1.4) unpacks nested messages by recursion
 * with no depth limit, so a 64 MiB frame of nested filters (a few bytes per level) would
 * overflow the loop thread's stack before anything could refuse it. vd_proto__filter_prescan
 * walks the raw bytes of the fields that can hold a filter (Request.search/count/delete/scroll ->
 * .filter -> Filter.all/any/negate -> FilterList.filters ...) iteratively, with its own
 * bounded stack, and refuses nesting deeper than WIRE_DEPTH_MAX Filter messages. The
 * grammar's real limit (16 levels, vd_filter_check in storage) is far below it and names
 * the path; this cap only has to keep protobuf-c's recursion short. Anything the scan cannot
 * parse it leaves to protobuf-c, which refuses it whole.
 *
 * The tree: after unpacking, each Filter becomes one vd_filter node in arrays owned by the
 * decoded request (one allocation for nodes, one for values); strings and paths borrow the
 * unpacked message. Only the wire's own shape is checked here (an empty node becomes op 0,
 * refused by the grammar check with its path); everything else is vd_filter_check's, which
 * the engine runs for every request, whichever module built the tree.
 * vd_proto_filter_decode is the same path for a bare Filter message (the embedded module's
 * filters, encoded by the Python client as for a Request): guard, unpack, tree.
 * Rejected: a flat node list on the wire (no recursion to guard, but clients would have to
 * serialize a tree in prefix order); a filter as a string to parse (a second grammar). */
#include "proto/proto_int.h"

#define WIRE_DEPTH_MAX 64

_Static_assert((int)VD_FOP_EQ == VECTORD__V1__FILTER_OP__FILTER_EQ &&
                   (int)VD_FOP_NE == VECTORD__V1__FILTER_OP__FILTER_NE &&
                   (int)VD_FOP_GT == VECTORD__V1__FILTER_OP__FILTER_GT &&
                   (int)VD_FOP_GTE == VECTORD__V1__FILTER_OP__FILTER_GTE &&
                   (int)VD_FOP_LT == VECTORD__V1__FILTER_OP__FILTER_LT &&
                   (int)VD_FOP_LTE == VECTORD__V1__FILTER_OP__FILTER_LTE &&
                   (int)VD_FOP_IN == VECTORD__V1__FILTER_OP__FILTER_IN &&
                   (int)VD_FOP_NIN == VECTORD__V1__FILTER_OP__FILTER_NIN &&
                   (int)VD_FOP_EXISTS == VECTORD__V1__FILTER_OP__FILTER_EXISTS,
               "FilterOp and vd_filter_op agree");
#define PK(x) VECTORD__V1__PAYLOAD_INDEX_KIND__PAYLOAD_INDEX_##x
_Static_assert((int)VD_PINDEX_KEYWORD == PK(KEYWORD) && (int)VD_PINDEX_INTEGER == PK(INTEGER) &&
                   (int)VD_PINDEX_FLOAT == PK(FLOAT) && (int)VD_PINDEX_BOOL == PK(BOOL),
               "PayloadIndexKind and vd_pindex_kind agree");
#undef PK

/* ---- the guard --------------------------------------------------------------------------- */
typedef struct span {
    const uint8_t *p, *end;
} span;

static int varint(span *s, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && s->p < s->end; shift += 7) {
        uint8_t b = *s->p++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

/* The next field of a message: its number, and for length-delimited ones the bytes. 0 at
 * the end or on bytes that do not parse (protobuf-c gets to refuse those). */
static int next_field(span *s, uint32_t *field, int *delimited, span *body)
{
    uint64_t key, len;
    if (s->p >= s->end || !varint(s, &key)) return 0;
    *field = (uint32_t)(key >> 3);
    *delimited = (key & 7) == 2;
    switch (key & 7) {
    case 0: return varint(s, &len);
    case 1: if (s->end - s->p < 8) return 0; s->p += 8; return 1;
    case 5: if (s->end - s->p < 4) return 0; s->p += 4; return 1;
    case 2:
        if (!varint(s, &len) || len > (uint64_t)(s->end - s->p)) return 0;
        *body = (span){s->p, s->p + len};
        s->p += len;
        return 1;
    default: return 0;
    }
}

/* Depth of the deepest Filter inside `f` (a Filter message's bytes), 0 when deeper than the
 * cap. An explicit stack of spans: entries are Filter or FilterList messages. */
static int filter_depth_ok(span f)
{
    struct { span s; int list; int depth; } st[2 * WIRE_DEPTH_MAX + 2];
    int top = 0;
    st[0].s = f;
    st[0].list = 0;
    st[0].depth = 1;
    while (top >= 0) {
        uint32_t field;
        int delimited;
        span body;
        if (!next_field(&st[top].s, &field, &delimited, &body)) {
            top--;
            continue;
        }
        if (!delimited) continue;
        int list = st[top].list, depth = st[top].depth;
        /* Filter: all (2) and any (3) hold a FilterList, negate (4) a Filter; FilterList:
         * filters (1) hold Filters. */
        int child_list = !list && (field == 2 || field == 3);
        int child_filter = (!list && field == 4) || (list && field == 1);
        if (!child_list && !child_filter) continue;
        int d = child_filter ? depth + 1 : depth;
        if (d > WIRE_DEPTH_MAX) return 0;
        top++;
        st[top].s = body;
        st[top].list = child_list;
        st[top].depth = d;
    }
    return 1;
}

vd_status vd_proto__filter_prescan(const uint8_t *body, size_t len, uint64_t *request_id,
                                   vd_request_kind *kind, vd_err *err)
{
    span req = {body, body + len}, op = {0};
    const uint8_t *at = body;
    uint32_t field;
    int delimited;
    *request_id = 0;
    *kind = VD_REQ_NONE;
    while (next_field(&req, &field, &delimited, &op)) {
        if (field == 1 && !delimited) { /* request_id: re-read the varint for the caller */
            span v = {at, req.p};
            uint64_t key;
            varint(&v, &key);
            varint(&v, request_id);
        }
        at = req.p;
        /* Request.delete (16): filter 3; search (18): filter 7; count (19): filter 2; scroll
         * (23): filter 6. */
        uint32_t want = field == 16 ? 3 : field == 18 ? 7 : field == 19 ? 2 : field == 23 ? 6 : 0;
        if (!delimited || !want) continue;
        span f = {0};
        uint32_t ff;
        int fd;
        while (next_field(&op, &ff, &fd, &f))
            if (fd && ff == want && !filter_depth_ok(f)) {
                *kind = field == 16   ? VD_REQ_DELETE
                        : field == 18 ? VD_REQ_SEARCH
                        : field == 19 ? VD_REQ_COUNT
                                      : VD_REQ_SCROLL;
                return vd_err_set(err, VD_INVALID, "%s: filter: nesting deeper than %d levels",
                                  vd_request_name(*kind), VD_FILTER_MAX_DEPTH);
            }
    }
    return VD_OK;
}

/* ---- the tree ------------------------------------------------------------------------------ */
typedef struct counts {
    size_t nodes, values;
} counts;

static void count_nodes(const Vectord__V1__Filter *f, counts *c)
{
    c->nodes++;
    const Vectord__V1__FilterList *l = NULL;
    switch (f->node_case) {
    case VECTORD__V1__FILTER__NODE_CONDITION: c->values += f->condition->n_values; return;
    case VECTORD__V1__FILTER__NODE_ALL: l = f->all; break;
    case VECTORD__V1__FILTER__NODE_ANY: l = f->any; break;
    case VECTORD__V1__FILTER__NODE_NEGATE: count_nodes(f->negate, c); return;
    default: return;
    }
    for (size_t i = 0; i < l->n_filters; i++) count_nodes(l->filters[i], c);
}

typedef struct arena {
    vd_filter *nodes;
    vd_fval *values;
    size_t n_nodes, n_values;
} arena;

static vd_fval value_of(const Vectord__V1__FilterValue *v)
{
    vd_fval o = {0};
    switch (v->value_case) {
    case VECTORD__V1__FILTER_VALUE__VALUE_S:
        o.type = VD_FVAL_STRING;
        o.s.p = (const char *)v->s.data;
        o.s.len = v->s.len;
        break;
    case VECTORD__V1__FILTER_VALUE__VALUE_I: o.type = VD_FVAL_INT; o.i = v->i; break;
    case VECTORD__V1__FILTER_VALUE__VALUE_F: o.type = VD_FVAL_FLOAT; o.f = v->f; break;
    case VECTORD__V1__FILTER_VALUE__VALUE_B: o.type = VD_FVAL_BOOL; o.b = v->b; break;
    default: break; /* type 0: refused by vd_filter_check */
    }
    return o;
}

/* Fills *out from f; children go to the next free nodes of the arena. */
static void fill(arena *a, const Vectord__V1__Filter *f, vd_filter *out)
{
    const Vectord__V1__FilterList *l = NULL;
    memset(out, 0, sizeof *out);
    switch (f->node_case) {
    case VECTORD__V1__FILTER__NODE_CONDITION: {
        const Vectord__V1__Condition *c = f->condition;
        out->op = (vd_filter_op)c->op; /* the numbers agree (asserted above) */
        out->field = c->field ? c->field : "";
        out->field_len = strlen(out->field);
        out->values = a->values + a->n_values;
        out->n_values = c->n_values;
        for (size_t i = 0; i < c->n_values; i++) a->values[a->n_values++] = value_of(c->values[i]);
        return;
    }
    case VECTORD__V1__FILTER__NODE_ALL: out->op = VD_FOP_AND; l = f->all; break;
    case VECTORD__V1__FILTER__NODE_ANY: out->op = VD_FOP_OR; l = f->any; break;
    case VECTORD__V1__FILTER__NODE_NEGATE:
        out->op = VD_FOP_NOT;
        out->children = a->nodes + a->n_nodes++;
        out->n_children = 1;
        fill(a, f->negate, (vd_filter *)out->children);
        return;
    default: return; /* op 0: an empty node */
    }
    out->implicit = l->implicit && out->op == VD_FOP_AND;
    vd_filter *ch = a->nodes + a->n_nodes;
    a->n_nodes += l->n_filters;
    out->children = ch;
    out->n_children = l->n_filters;
    for (size_t i = 0; i < l->n_filters; i++) fill(a, l->filters[i], &ch[i]);
}

vd_status vd_proto__filter_of(const Vectord__V1__Filter *f, vd_request_kind k,
                              const vd_filter **out, void **mem, vd_err *err)
{
    counts c = {0};
    *out = NULL;
    *mem = NULL;
    if (!f) return VD_OK;
    count_nodes(f, &c);
    /* One block: nodes, then values. */
    size_t nb = c.nodes * sizeof(vd_filter), vb = c.values * sizeof(vd_fval);
    uint8_t *block = vd_malloc(nb + vb);
    if (!block)
        return vd_err_set(err, VD_NOMEM, "%s: out of memory for a filter of %zu nodes",
                          vd_request_name(k), c.nodes);
    arena a = {.nodes = (vd_filter *)block, .values = (vd_fval *)(block + nb), .n_nodes = 1};
    fill(&a, f, a.nodes);
    *out = a.nodes;
    *mem = block;
    return VD_OK;
}

/* ---- a bare Filter message (vd_proto_filter_decode) -------------------------------------- */
typedef struct bare_filter {
    Vectord__V1__Filter *pb; /* the unpacked message the tree borrows strings from */
    void *tree;
} bare_filter;

vd_status vd_proto_filter_decode(const uint8_t *bytes, size_t len, vd_request_kind kind,
                                 const vd_filter **out, void **mem, vd_err *err)
{
    *out = NULL;
    *mem = NULL;
    if (!filter_depth_ok((span){bytes, bytes + len}))
        return vd_err_set(err, VD_INVALID, "%s: filter: nesting deeper than %d levels",
                          vd_request_name(kind), VD_FILTER_MAX_DEPTH);
    bare_filter *b = vd_calloc(1, sizeof *b);
    if (!b) return vd_err_set(err, VD_NOMEM, "%s: out of memory decoding a filter",
                              vd_request_name(kind));
    vd_proto__alloc_failed = 0;
    b->pb = vectord__v1__filter__unpack(&vd_proto_allocator, len, bytes);
    vd_status s = VD_OK;
    if (!b->pb && vd_proto__alloc_failed)
        s = vd_err_set(err, VD_NOMEM, "%s: out of memory decoding a filter of %zu bytes",
                       vd_request_name(kind), len);
    else if (!b->pb)
        s = vd_err_set(err, VD_INVALID, "%s: filter of %zu bytes is not a valid "
                       "vectord.v1.Filter", vd_request_name(kind), len);
    else
        s = vd_proto__filter_of(b->pb, kind, out, &b->tree, err);
    if (s != VD_OK) {
        vd_proto_filter_free(b);
        *out = NULL;
        return s;
    }
    *mem = b;
    return VD_OK;
}

void vd_proto_filter_free(void *mem)
{
    bare_filter *b = mem;
    if (!b) return;
    if (b->pb) vectord__v1__filter__free_unpacked(b->pb, &vd_proto_allocator);
    vd_free(b->tree);
    vd_free(b);
}
