/* daemon/reader_pool.c: the reader threads - search, get, list, info, count, stats.
 *
 * Each reader pops one job at a time from srv->readq and answers it against the store
 * without any server-wide lock: a search takes a reference on its collection
 * (vd_store_acquire), runs vd_index_search per query straight on the in-memory index, and
 * only when payloads are asked for opens an LMDB snapshot to fetch them. The reference keeps
 * the collection alive even if the writer drops it meanwhile; the snapshot keeps payload
 * pointers valid until the response is packed, then both are released - never held across
 * requests, so readers never pin old LMDB pages for long.
 *
 * Result buffers (ids, distances, vectors) are allocated per request and sized after the
 * request has passed the max_frame precheck, so a hostile nq x k cannot make a reader
 * allocate gigabytes before the response size is known to be sendable.
 * Rejected: per-thread reusable scratch - allocation is small next to the search itself
 * and per-request buffers keep the threads free of state. */
#include "daemon/server_int.h"

#include <inttypes.h>
#include <math.h>

#include "daemon/daemon_int.h"

/* Frame bytes a response needs beyond its bulk arrays (status, tags, lengths). */
#define RESPONSE_SLACK 1024u

static int too_big(vd_server *srv, vd_job *j, uint64_t bytes, const char *what)
{
    uint64_t max = srv->cfg.limits.max_frame_bytes;
    if (bytes + RESPONSE_SLACK <= max) return 0;
    vd_reply_error(srv, j, VECTORD__V1__CODE__RESOURCE_EXHAUSTED,
                   "%s: the response would hold %" PRIu64 " bytes, over max_frame_bytes %" PRIu64
                   "; ask for less per request",
                   what, bytes, max);
    return 1;
}

static int acquire(vd_server *srv, vd_job *j, const char *name, vd_collection **c)
{
    vd_err err;
    if (vd_store_acquire(srv->store, name, c, &err) == VD_OK) return 1;
    vd_reply_status(srv, j, &err);
    return 0;
}

static void do_search(vd_server *srv, vd_job *j)
{
    const Vectord__V1__SearchRequest *s = j->req->search;
    vd_collection *c = NULL;
    vd_snapshot *snap = NULL;
    vd_floats q = {0};
    uint64_t *ids = NULL;
    float *dists = NULL;
    vd_hit *hits = NULL;
    ProtobufCBinaryData *payloads = NULL;
    vd_err err;

    if (vd_proto_check_k(s->k, srv->cfg.limits.max_k, &err) != VD_OK) goto bad;
    if (!acquire(srv, j, s->collection, &c)) goto done;
    const vd_collection_params *p = vd_collection_params_of(c);
    if (vd_proto_queries(&s->queries, p->dim, p->name, srv->cfg.limits.max_batch, &q, &err))
        goto bad;
    size_t nq = q.n_rows, k = s->k, n = nq * k;
    if (too_big(srv, j, (uint64_t)n * 12, "search")) goto done;
    ids = vd_malloc(n * sizeof *ids);
    dists = vd_malloc(n * sizeof *dists);
    hits = vd_malloc(k * sizeof *hits);
    if (s->with_payloads) payloads = vd_calloc(n, sizeof *payloads);
    if (!ids || !dists || !hits || (s->with_payloads && !payloads)) {
        vd_err_set(&err, VD_NOMEM, "search: out of memory for %zu results", n);
        goto bad;
    }
    vd_index *ix = vd_collection_index(c);
    for (size_t i = 0; i < nq; i++) {
        uint32_t got = 0;
        if (vd_index_search(ix, q.v + i * p->dim, s->k, s->ef, hits, &got, &err) != VD_OK) {
            if (nq > 1)
                vd_err_prefix(&err, "search %s: query %zu", p->name, i);
            else
                vd_err_prefix(&err, "search %s", p->name);
            goto bad;
        }
        for (size_t h = 0; h < k; h++) {
            ids[i * k + h] = h < got ? hits[h].id : VD_ID_NONE;
            dists[i * k + h] = h < got ? hits[h].distance : INFINITY;
        }
    }
    if (s->with_payloads) {
        if (vd_snapshot_begin(srv->store, &snap, &err) != VD_OK) goto bad;
        for (size_t i = 0; i < n; i++) {
            if (ids[i] == VD_ID_NONE) continue;
            int found = 0;
            const uint8_t *pl = NULL;
            size_t plen = 0;
            if (vd_snapshot_get(snap, c, ids[i], &found, NULL, &pl, &plen, &err) != VD_OK) goto bad;
            if (found && pl) {
                payloads[i].data = (uint8_t *)pl;
                payloads[i].len = plen;
            }
        }
    }
    /* Little-endian on the wire: convert in place (a no-op on little-endian hosts). */
    for (size_t i = 0; i < n; i++) {
        uint64_t v = ids[i];
        vd_put_u64le((uint8_t *)&ids[i], v);
        uint32_t u;
        memcpy(&u, &dists[i], 4);
        vd_put_u32le((uint8_t *)&dists[i], u);
    }
    Vectord__V1__SearchResponse sr = VECTORD__V1__SEARCH_RESPONSE__INIT;
    Vectord__V1__Response r = VECTORD__V1__RESPONSE__INIT;
    sr.nq = (uint32_t)nq;
    sr.k = s->k;
    sr.ids.data = (uint8_t *)ids;
    sr.ids.len = n * 8;
    sr.distances.data = (uint8_t *)dists;
    sr.distances.len = n * 4;
    if (s->with_payloads) {
        sr.payloads = payloads;
        sr.n_payloads = n;
    }
    r.result_case = VECTORD__V1__RESPONSE__RESULT_SEARCH;
    r.search = &sr;
    vd_reply(srv, j, &r);
    goto done;
bad:
    vd_reply_status(srv, j, &err);
done:
    vd_snapshot_end(snap);
    vd_collection_release(c);
    vd_floats_free(&q);
    vd_free(ids);
    vd_free(dists);
    vd_free(hits);
    vd_free(payloads);
}

static void do_get(vd_server *srv, vd_job *j)
{
    const Vectord__V1__GetRequest *g = j->req->get;
    vd_collection *c = NULL;
    vd_snapshot *snap = NULL;
    uint64_t *ids = NULL;
    size_t n = 0;
    protobuf_c_boolean *found = NULL;
    float *vecs = NULL;
    ProtobufCBinaryData *payloads = NULL;
    vd_err err;

    if (vd_proto_ids(&g->ids, "get", srv->cfg.limits.max_batch, &ids, &n, &err)) goto bad;
    if (!acquire(srv, j, g->collection, &c)) goto done;
    uint32_t dim = vd_collection_params_of(c)->dim;
    if (g->with_vectors && too_big(srv, j, (uint64_t)n * dim * 4, "get")) goto done;
    found = vd_calloc(n, sizeof *found);
    if (g->with_vectors) vecs = vd_calloc(n * dim, sizeof *vecs);
    if (g->with_payloads) payloads = vd_calloc(n, sizeof *payloads);
    if (!found || (g->with_vectors && !vecs) || (g->with_payloads && !payloads)) {
        vd_err_set(&err, VD_NOMEM, "get: out of memory for %zu points", n);
        goto bad;
    }
    if (vd_snapshot_begin(srv->store, &snap, &err) != VD_OK) goto bad;
    for (size_t i = 0; i < n; i++) {
        int f = 0;
        const float *v = NULL;
        const uint8_t *pl = NULL;
        size_t plen = 0;
        if (vd_snapshot_get(snap, c, ids[i], &f, g->with_vectors ? &v : NULL,
                            g->with_payloads ? &pl : NULL, g->with_payloads ? &plen : NULL,
                            &err) != VD_OK)
            goto bad;
        found[i] = f != 0;
        if (!f) continue;
        if (vecs && v)
            for (uint32_t d = 0; d < dim; d++) {
                uint32_t u;
                memcpy(&u, &v[d], 4);
                vd_put_u32le((uint8_t *)&vecs[i * dim + d], u);
            }
        if (payloads && pl) {
            payloads[i].data = (uint8_t *)pl;
            payloads[i].len = plen;
        }
    }
    Vectord__V1__GetResponse gr = VECTORD__V1__GET_RESPONSE__INIT;
    Vectord__V1__Response r = VECTORD__V1__RESPONSE__INIT;
    gr.n_found = n;
    gr.found = found;
    if (vecs) {
        gr.vectors.data = (uint8_t *)vecs;
        gr.vectors.len = n * dim * 4;
    }
    if (payloads) {
        gr.n_payloads = n;
        gr.payloads = payloads;
    }
    r.result_case = VECTORD__V1__RESPONSE__RESULT_GET;
    r.get = &gr;
    vd_reply(srv, j, &r);
    goto done;
bad:
    vd_reply_status(srv, j, &err);
done:
    vd_snapshot_end(snap);
    vd_collection_release(c);
    vd_free(ids);
    vd_free(found);
    vd_free(vecs);
    vd_free(payloads);
}

static void do_info(vd_server *srv, vd_job *j, const char *name, int count_only)
{
    vd_collection *c = NULL;
    if (!acquire(srv, j, name, &c)) return;
    vd_collection_info info;
    vd_collection_info_get(c, &info);
    Vectord__V1__Response r = VECTORD__V1__RESPONSE__INIT;
    Vectord__V1__CollectionInfo ci;
    Vectord__V1__CollectionInfoResponse ir = VECTORD__V1__COLLECTION_INFO_RESPONSE__INIT;
    Vectord__V1__CountResponse cr = VECTORD__V1__COUNT_RESPONSE__INIT;
    if (count_only) {
        cr.count = info.count;
        r.result_case = VECTORD__V1__RESPONSE__RESULT_COUNT;
        r.count = &cr;
    } else {
        vd_info_to_wire(&info, &ci);
        ir.info = &ci;
        r.result_case = VECTORD__V1__RESPONSE__RESULT_COLLECTION_INFO;
        r.collection_info = &ir;
    }
    vd_reply(srv, j, &r);
    vd_collection_release(c);
}

static void do_list(vd_server *srv, vd_job *j, int stats)
{
    vd_collection_info *list = NULL;
    size_t n = 0;
    Vectord__V1__CollectionInfo *infos = NULL, **ptrs = NULL;
    vd_err err;
    if (vd_store_list(srv->store, &list, &n, &err) != VD_OK) {
        vd_reply_status(srv, j, &err);
        return;
    }
    Vectord__V1__Response r = VECTORD__V1__RESPONSE__INIT;
    if (stats) {
        Vectord__V1__StatsResponse st = VECTORD__V1__STATS_RESPONSE__INIT;
        vd_store_info si = {0};
        if (vd_store_info_get(srv->store, &si, &err) != VD_OK) {
            vd_reply_status(srv, j, &err);
            goto done;
        }
        uint64_t points = 0;
        for (size_t i = 0; i < n; i++)
            points += list[i].count;
        st.server_version = VD_VERSION_STRING;
        st.uptime_s = (vd_now_ns() - srv->start_ns) / 1000000000u;
        st.connections = (uint32_t)atomic_load(&srv->connections);
        st.requests_total = atomic_load(&srv->requests_total);
        st.errors_total = atomic_load(&srv->errors_total);
        st.writes_committed = atomic_load(&srv->writes_committed);
        st.ops_committed = atomic_load(&srv->ops_committed);
        st.collections = (uint32_t)n;
        st.points = points;
        st.map_bytes = si.map_bytes;
        st.file_bytes = si.file_bytes;
        st.reader_threads = srv->n_readers;
        r.result_case = VECTORD__V1__RESPONSE__RESULT_STATS;
        r.stats = &st;
        vd_reply(srv, j, &r);
        goto done;
    }
    infos = vd_calloc(n, sizeof *infos);
    ptrs = vd_calloc(n, sizeof *ptrs);
    if (!infos || !ptrs) {
        vd_reply_error(srv, j, VECTORD__V1__CODE__RESOURCE_EXHAUSTED,
                       "list_collections: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        vd_info_to_wire(&list[i], &infos[i]);
        ptrs[i] = &infos[i];
    }
    Vectord__V1__ListCollectionsResponse lr = VECTORD__V1__LIST_COLLECTIONS_RESPONSE__INIT;
    lr.n_collections = n;
    lr.collections = ptrs;
    r.result_case = VECTORD__V1__RESPONSE__RESULT_LIST_COLLECTIONS;
    r.list_collections = &lr;
    vd_reply(srv, j, &r);
done:
    vd_free(infos);
    vd_free(ptrs);
    vd_free(list);
}

void vd_reader__execute(vd_server *srv, vd_job *j)
{
    const vd_pb_request *q = j->req;
    switch (q->op_case) {
    case VECTORD__V1__REQUEST__OP_SEARCH:
        do_search(srv, j);
        break;
    case VECTORD__V1__REQUEST__OP_GET:
        do_get(srv, j);
        break;
    case VECTORD__V1__REQUEST__OP_COLLECTION_INFO:
        do_info(srv, j, q->collection_info->name, 0);
        break;
    case VECTORD__V1__REQUEST__OP_COUNT:
        do_info(srv, j, q->count->collection, 1);
        break;
    case VECTORD__V1__REQUEST__OP_LIST_COLLECTIONS:
        do_list(srv, j, 0);
        break;
    case VECTORD__V1__REQUEST__OP_STATS:
        do_list(srv, j, 1);
        break;
    default:
        vd_reply_error(srv, j, VECTORD__V1__CODE__INTERNAL, "%s is not a read operation",
                       vd_proto_op_name(q->op_case));
    }
}

void *vd_reader__main(void *arg)
{
    vd_server *srv = arg;
    vd_job *j;
    while ((j = vd_jobq_pop(&srv->readq)) != NULL) {
        vd_reader__execute(srv, j);
        vd_proto_request_free(j->req);
        j->req = NULL;
        vd_server__complete(srv, j);
    }
    return NULL;
}
