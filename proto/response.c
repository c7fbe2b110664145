/* proto/response.c: domain results -> Response frames, and Response frames -> the generated
 * struct for clients and tests.
 *
 * An encoder points the generated message at the result's own arrays - ids, distances and
 * vectors as bytes fields, payload entries as they are (vd_bytes is ProtobufCBinaryData's
 * layout) - and packs header + body into one allocation, so the only copy of the bulk data
 * is the one into the frame. The wire is little-endian: on other hosts the arrays are
 * converted in place first, which is why encoders take the result non-const.
 *
 * Every response passes the max_frame check after its size is known: the client was told
 * that limit in Hello and may rely on it, so a result that does not fit becomes the
 * engine's one "response would hold N bytes" error instead of a frame the client would
 * refuse. (The engine checks the arrays before computing them; payloads are only known
 * here.) Only list and get need scratch: the generated list holds pointers to infos, and
 * found flags are protobuf_c_boolean, not bytes. */
#include "proto/proto_int.h"

/* The messages one response may need, on the stack. */
typedef struct response_msg {
    Vectord__V1__Response r;
    Vectord__V1__Status st;
    union {
        Vectord__V1__SearchResponse search;
        Vectord__V1__GetResponse get;
        Vectord__V1__ListCollectionsResponse list;
        Vectord__V1__CollectionInfoResponse info;
        Vectord__V1__CreateCollectionResponse create;
        Vectord__V1__DropCollectionResponse drop;
        Vectord__V1__UpsertResponse upsert;
        Vectord__V1__DeleteResponse del;
        Vectord__V1__CountResponse count;
        Vectord__V1__StatsResponse stats;
        Vectord__V1__HelloResponse hello;
        Vectord__V1__ScrollResponse scroll;
        Vectord__V1__SetPayloadResponse set_payload;
        Vectord__V1__CreatePayloadIndexResponse create_pindex;
        Vectord__V1__DropPayloadIndexResponse drop_pindex;
    } m;
    Vectord__V1__CollectionInfo ci;
    Vectord__V1__Limits limits;
    Vectord__V1__StrIds str_ids;
    Vectord__V1__PayloadIndexInfo pi;
    Vectord__V1__SearchExplain explain;
    void *scratch[4]; /* freed after packing */
} response_msg;

/* Points the response's oneof at its sub-message m->m.member (generated type `type`), after
 * the generated init that packing relies on. */
#define SET_RESULT(msg, CASE, field, member, type)                                                 \
    (vectord__v1__##type##__init(&(msg)->m.member),                                                \
     (msg)->r.result_case = VECTORD__V1__RESPONSE__RESULT_##CASE,                                  \
     (msg)->r.field = &(msg)->m.member)

static void msg_init(response_msg *m, uint64_t request_id)
{
    memset(m, 0, sizeof *m);
    vectord__v1__response__init(&m->r);
    vectord__v1__status__init(&m->st);
    m->r.request_id = request_id;
    m->r.status = &m->st;
}

/* Packs m into a new frame; VD_FULL (nothing allocated) when the body exceeds max_frame. */
static vd_status pack(response_msg *m, vd_request_kind k, uint32_t max_frame, uint8_t **frame,
                      size_t *len, vd_err *err)
{
    *frame = NULL;
    *len = 0;
    size_t body = vectord__v1__response__get_packed_size(&m->r);
    if (body > max_frame) return vd_engine_err_too_big(err, k, body, max_frame);
    uint8_t *buf = vd_malloc(VD_FRAME_HEADER_BYTES + body);
    if (!buf) return vd_err_set(err, VD_NOMEM, "response of %zu bytes: out of memory", body);
    size_t packed = vectord__v1__response__pack(&m->r, buf + VD_FRAME_HEADER_BYTES);
    vd_frame_header_put(buf, (uint32_t)packed);
    *frame = buf;
    *len = VD_FRAME_HEADER_BYTES + packed;
    return VD_OK;
}

/* ---- little-endian arrays ------------------------------------------------------------------ */

static ProtobufCBinaryData le_u64s(uint64_t *a, size_t n)
{
    if (!vd_proto__host_is_le())
        for (size_t i = 0; i < n; i++) {
            uint64_t v = a[i];
            vd_put_u64le((uint8_t *)&a[i], v);
        }
    return (ProtobufCBinaryData){n * 8, (uint8_t *)a};
}

static ProtobufCBinaryData le_u32s(uint32_t *a, size_t n)
{
    if (!vd_proto__host_is_le())
        for (size_t i = 0; i < n; i++) {
            uint32_t v = a[i];
            vd_put_u32le((uint8_t *)&a[i], v);
        }
    return (ProtobufCBinaryData){n * 4, (uint8_t *)a};
}

/* m->str_ids pointing at n packed string ids (ends converted in place). */
static Vectord__V1__StrIds *str_ids_to_wire(response_msg *m, uint8_t *bytes, uint32_t *ends,
                                            size_t n)
{
    vectord__v1__str_ids__init(&m->str_ids);
    m->str_ids.data = (ProtobufCBinaryData){n ? ends[n - 1] : 0, bytes};
    m->str_ids.ends = le_u32s(ends, n);
    return &m->str_ids;
}

static ProtobufCBinaryData le_floats(float *a, size_t n)
{
    if (!vd_proto__host_is_le())
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &a[i], 4);
            vd_put_u32le((uint8_t *)&a[i], u);
        }
    return (ProtobufCBinaryData){n * 4, (uint8_t *)a};
}

/* ---- one filler per result kind ------------------------------------------------------------- */

/* `out` borrows the field from `in`. */
static void pindex_to_wire(const vd_pindex_info *in, Vectord__V1__PayloadIndexInfo *out)
{
    vectord__v1__payload_index_info__init(out);
    out->field = (char *)in->field;
    out->kind = (Vectord__V1__PayloadIndexKind)in->kind; /* the numbers agree (filter.c) */
    out->building = in->building != 0;
    out->points = in->points;
    out->bytes_memory = in->bytes_memory;
}

/* The payload index messages of infos[0..n) in one scratch block (m->scratch[slot]), each
 * info's pointers set. */
static vd_status pindexes_to_wire(response_msg *m, int slot, const vd_collection_info *in,
                                  Vectord__V1__CollectionInfo *out, size_t n, vd_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += in[i].n_pindexes;
    if (!total) return VD_OK;
    uint8_t *b = vd_malloc(total * (sizeof(Vectord__V1__PayloadIndexInfo) +
                                    sizeof(Vectord__V1__PayloadIndexInfo *)));
    if (!b) return vd_err_set(err, VD_NOMEM, "out of memory encoding payload indexes");
    m->scratch[slot] = b;
    Vectord__V1__PayloadIndexInfo *msgs = (Vectord__V1__PayloadIndexInfo *)b;
    Vectord__V1__PayloadIndexInfo **ptrs = (Vectord__V1__PayloadIndexInfo **)(msgs + total);
    for (size_t i = 0; i < n; i++) {
        out[i].payload_indexes = ptrs;
        out[i].n_payload_indexes = in[i].n_pindexes;
        for (uint32_t k = 0; k < in[i].n_pindexes; k++) {
            pindex_to_wire(&in[i].pindexes[k], msgs);
            *ptrs++ = msgs++;
        }
    }
    return VD_OK;
}

/* `out` borrows the name from `in`. */
static void info_to_wire(const vd_collection_info *in, Vectord__V1__CollectionInfo *out)
{
    vectord__v1__collection_info__init(out);
    out->name = (char *)in->params.name;
    out->dim = in->params.dim;
    out->metric = vd_proto__metric_to_wire(in->params.metric);
    out->m = in->params.m;
    out->ef_construction = in->params.ef_construction;
    out->ef_search = in->params.ef_search;
    out->count = in->count;
    out->created_unix_s = in->created_unix_s;
    out->bytes_disk = in->bytes_disk;
    out->bytes_memory = in->bytes_memory;
    out->id_type = vd_proto__id_type_to_wire(in->params.id_type);
    out->quantization = vd_proto__quant_to_wire(in->params.quantization);
}

static const char *fallback_name(vd_search_fallback f)
{
    switch (f) {
    case VD_FALLBACK_EFFORT: return "effort";
    case VD_FALLBACK_SHORT: return "short";
    case VD_FALLBACK_LOCAL: return "local";
    default: return "";
    }
}

/* SearchExplain: the filter's figures and one QueryPlan per query (scratch[0]). */
static vd_status fill_explain(response_msg *m, const vd_search_result *s, vd_err *err)
{
    Vectord__V1__SearchExplain *x = &m->explain;
    vectord__v1__search_explain__init(x);
    x->filtered = s->filtered != 0;
    x->matching = s->filter.matching;
    x->conditions_indexed = s->filter.conditions_indexed;
    x->conditions_scanned = s->filter.conditions_scanned;
    x->payloads_read = s->filter.payloads_read;
    x->filter_us = s->filter.compile_ns / 1000;
    size_t nq = s->nq;
    uint8_t *b = vd_malloc((nq ? nq : 1) * (sizeof(Vectord__V1__QueryPlan) +
                                            sizeof(Vectord__V1__QueryPlan *)));
    if (!b) return vd_err_set(err, VD_NOMEM, "search: out of memory encoding %zu plans", nq);
    m->scratch[0] = b;
    Vectord__V1__QueryPlan *plans = (Vectord__V1__QueryPlan *)b;
    x->queries = (Vectord__V1__QueryPlan **)(plans + (nq ? nq : 1));
    x->n_queries = nq;
    for (size_t i = 0; i < nq; i++) {
        const vd_search_explain *e = &s->explain[i];
        Vectord__V1__QueryPlan *p = &plans[i];
        vectord__v1__query_plan__init(p);
        p->plan = (char *)vd_search_plan_name(e->plan);
        p->fallback = (char *)fallback_name(e->fallback);
        p->ef = e->ef;
        p->nodes_visited = e->nodes_visited;
        p->distances = e->distances;
        p->filter_calls = e->filter_calls;
        p->selectivity = e->selectivity;
        p->cost_graph = e->cost_graph;
        p->cost_exact = e->cost_exact;
        x->queries[i] = p;
    }
    m->m.search.explain = x;
    return VD_OK;
}

static vd_status fill_search(response_msg *m, vd_search_result *s, vd_err *err)
{
    Vectord__V1__SearchResponse *sr = &m->m.search;
    size_t n = (size_t)s->nq * s->k;
    SET_RESULT(m, SEARCH, search, search, search_response);
    sr->nq = s->nq;
    sr->k = s->k;
    if (s->str_id_ends) sr->str_ids = str_ids_to_wire(m, s->str_ids, s->str_id_ends, n);
    else sr->ids = le_u64s(s->ids, n);
    sr->distances = le_floats(s->distances, n);
    if (s->payloads) {
        sr->payloads = (ProtobufCBinaryData *)s->payloads;
        sr->n_payloads = n;
    }
    return s->explain ? fill_explain(m, s, err) : VD_OK;
}

static vd_status fill_get(response_msg *m, vd_get_result *g, vd_err *err)
{
    Vectord__V1__GetResponse *gr = &m->m.get;
    SET_RESULT(m, GET, get, get, get_response);
    protobuf_c_boolean *found = vd_malloc((g->n ? g->n : 1) * sizeof *found);
    if (!found) return vd_err_set(err, VD_NOMEM, "get: out of memory for %zu flags", g->n);
    for (size_t i = 0; i < g->n; i++)
        found[i] = g->found[i] != 0;
    m->scratch[0] = found;
    gr->n_found = g->n;
    gr->found = found;
    if (g->vectors) gr->vectors = le_floats(g->vectors, g->n * g->dim);
    if (g->payloads) {
        gr->payloads = (ProtobufCBinaryData *)g->payloads;
        gr->n_payloads = g->n;
    }
    return VD_OK;
}

static void fill_scroll(response_msg *m, vd_scroll_result *r)
{
    Vectord__V1__ScrollResponse *sr = &m->m.scroll;
    SET_RESULT(m, SCROLL, scroll, scroll, scroll_response);
    if (r->str_id_ends) sr->str_ids = str_ids_to_wire(m, r->str_ids, r->str_id_ends, r->n);
    else if (r->ids) sr->ids = le_u64s(r->ids, r->n);
    if (r->vectors) sr->vectors = le_floats(r->vectors, r->n * r->dim);
    if (r->payloads) {
        sr->payloads = (ProtobufCBinaryData *)r->payloads;
        sr->n_payloads = r->n;
    }
    if (r->next_cursor) sr->next_cursor = (ProtobufCBinaryData){r->next_cursor_len, r->next_cursor};
}

static vd_status fill_list(response_msg *m, const vd_result *res, vd_err *err)
{
    size_t n = res->list.n, n_alloc = n ? n : 1;
    Vectord__V1__CollectionInfo *infos = vd_malloc(n_alloc * sizeof *infos);
    Vectord__V1__CollectionInfo **ptrs = vd_malloc(n_alloc * sizeof *ptrs);
    m->scratch[0] = infos;
    m->scratch[1] = ptrs;
    if (!infos || !ptrs) return vd_err_set(err, VD_NOMEM, "list_collections: out of memory");
    for (size_t i = 0; i < n; i++) {
        info_to_wire(&res->list.items[i], &infos[i]);
        ptrs[i] = &infos[i];
    }
    vd_status s = pindexes_to_wire(m, 2, res->list.items, infos, n, err);
    if (s != VD_OK) return s;
    SET_RESULT(m, LIST_COLLECTIONS, list_collections, list, list_collections_response);
    m->m.list.n_collections = n;
    m->m.list.collections = ptrs;
    return VD_OK;
}

static void fill_stats(response_msg *m, const vd_engine_stats *e, const vd_server_stats *s)
{
    Vectord__V1__StatsResponse *st = &m->m.stats;
    SET_RESULT(m, STATS, stats, stats, stats_response);
    if (s) {
        st->server_version = (char *)(s->server_version ? s->server_version : "");
        st->uptime_s = s->uptime_s;
        st->connections = s->connections;
        st->requests_total = s->requests_total;
        st->errors_total = s->errors_total;
        st->writes_committed = s->writes_committed;
        st->ops_committed = s->ops_committed;
        st->reader_threads = s->reader_threads;
    }
    st->collections = e->collections;
    st->points = e->points;
    st->map_bytes = e->map_bytes;
    st->file_bytes = e->file_bytes;
}

/* The small results: a count, a collection info, nothing. */
static vd_status fill_plain(response_msg *m, const vd_result *res, vd_err *err)
{
    switch (res->kind) {
    case VD_REQ_INFO:
        SET_RESULT(m, COLLECTION_INFO, collection_info, info, collection_info_response);
        m->m.info.info = &m->ci;
        break;
    case VD_REQ_CREATE:
        SET_RESULT(m, CREATE_COLLECTION, create_collection, create, create_collection_response);
        m->m.create.info = &m->ci;
        break;
    case VD_REQ_DROP:
        SET_RESULT(m, DROP_COLLECTION, drop_collection, drop, drop_collection_response);
        return VD_OK;
    case VD_REQ_UPSERT:
        SET_RESULT(m, UPSERT, upsert, upsert, upsert_response)->written = res->n;
        return VD_OK;
    case VD_REQ_DELETE:
        SET_RESULT(m, DELETE, delete_, del, delete_response)->deleted = res->n;
        return VD_OK;
    case VD_REQ_COUNT:
        SET_RESULT(m, COUNT, count, count, count_response)->count = res->n;
        return VD_OK;
    case VD_REQ_SET_PAYLOAD:
        SET_RESULT(m, SET_PAYLOAD, set_payload, set_payload, set_payload_response)->updated =
            res->n;
        return VD_OK;
    case VD_REQ_CREATE_PINDEX:
        SET_RESULT(m, CREATE_PAYLOAD_INDEX, create_payload_index, create_pindex,
                   create_payload_index_response);
        pindex_to_wire(&res->pindex, &m->pi);
        m->m.create_pindex.info = &m->pi;
        return VD_OK;
    case VD_REQ_DROP_PINDEX:
        SET_RESULT(m, DROP_PAYLOAD_INDEX, drop_payload_index, drop_pindex,
                   drop_payload_index_response);
        return VD_OK;
    default:
        return vd_err_set(err, VD_INTERNAL, "no response encoding for %s",
                          vd_request_name(res->kind));
    }
    info_to_wire(&res->info, &m->ci); /* INFO, CREATE */
    return pindexes_to_wire(m, 2, &res->info, &m->ci, 1, err);
}

vd_status vd_proto_encode_result(uint64_t request_id, vd_result *res, const vd_server_stats *srv,
                                 uint32_t max_frame, uint8_t **frame, size_t *len, vd_err *err)
{
    response_msg m;
    vd_status s = VD_OK;
    msg_init(&m, request_id);
    *frame = NULL;
    *len = 0;
    switch (res->kind) {
    case VD_REQ_SEARCH:
        s = fill_search(&m, &res->search, err);
        break;
    case VD_REQ_GET:
        s = fill_get(&m, &res->get, err);
        break;
    case VD_REQ_LIST:
        s = fill_list(&m, res, err);
        break;
    case VD_REQ_STATS:
        fill_stats(&m, &res->stats, srv);
        break;
    case VD_REQ_SCROLL:
        fill_scroll(&m, &res->scroll);
        break;
    default:
        s = fill_plain(&m, res, err);
        break;
    }
    if (s == VD_OK) s = pack(&m, res->kind, max_frame, frame, len, err);
    for (size_t i = 0; i < VD_ARRAY_LEN(m.scratch); i++) vd_free(m.scratch[i]);
    return s;
}

vd_status vd_proto_encode_hello(uint64_t request_id, const vd_limits *l, const char *server_version,
                                uint8_t **frame, size_t *len, vd_err *err)
{
    response_msg m;
    msg_init(&m, request_id);
    vectord__v1__limits__init(&m.limits);
    m.limits.max_frame_bytes = l->max_frame_bytes;
    m.limits.max_batch = l->max_batch;
    m.limits.max_k = l->max_k;
    m.limits.max_dim = l->max_dim;
    m.limits.max_connections = l->max_connections;
    m.limits.idle_timeout_ms = l->idle_timeout_ms;
    SET_RESULT(&m, HELLO, hello, hello, hello_response);
    m.m.hello.protocol_version = VD_PROTOCOL_VERSION;
    m.m.hello.server_version = (char *)(server_version ? server_version : "");
    m.m.hello.limits = &m.limits;
    return pack(&m, VD_REQ_NONE, UINT32_MAX, frame, len, err);
}

uint8_t *vd_proto_error_frame(uint64_t request_id, vd_code code, const char *msg, size_t *len)
{
    response_msg m;
    uint8_t *frame = NULL;
    msg_init(&m, request_id);
    m.st.code = (Vectord__V1__Code)code;
    m.st.message = (char *)(msg ? msg : "");
    if (pack(&m, VD_REQ_NONE, UINT32_MAX, &frame, len, NULL) != VD_OK) return NULL;
    return frame;
}

/* ---- decoding responses (clients and tests) ------------------------------------------------- */

vd_status vd_proto_response_decode(const uint8_t *body, size_t len, vd_pb_response **out,
                                   vd_err *err)
{
    *out = vectord__v1__response__unpack(&vd_proto_allocator, len, body);
    if (!*out)
        return vd_err_set(err, VD_INVALID, "frame of %zu bytes is not a valid vectord.v1.Response",
                          len);
    return VD_OK;
}

void vd_proto_response_free(vd_pb_response *r)
{
    if (r) vectord__v1__response__free_unpacked(r, &vd_proto_allocator);
}
