/* engine/read.c: the reads - list, info, count, stats, get, search - on any thread.
 *
 * No lock of our own: a read takes a reference on its collection (vd_store_acquire), which
 * keeps the collection and its index alive through a concurrent drop, searches the in-memory
 * index directly, and opens an LMDB snapshot only when it must read stored records (get;
 * search with payloads). The collection reference is dropped before returning; the snapshot
 * stays with the result when payload bytes borrow from it, so an encoder can copy them into
 * a frame without an intermediate copy, and ends with vd_result_free - never held across
 * requests, so no reader pins old LMDB pages for long.
 *
 * Result arrays are allocated per request, after the request passed the response-size
 * check, so a hostile nq x k cannot make a reader allocate gigabytes for an answer that
 * could never be sent. They are plain host-order arrays, row-major, the layout both the wire
 * encoder and numpy take as they are.
 * Rejected: per-thread reusable result buffers (results outlive the call, and allocation is
 * small next to a search); writing hits straight into the caller's arrays from the index
 * (vd_index_search fills vd_hit pairs; one row of them is cheap to split). */
#include "engine/engine_int.h"

#include <math.h>

/* ---- list, info, count, stats -------------------------------------------------------- */

static vd_status read_info(vd_engine *e, const vd_request *req, vd_result *out, vd_err *err)
{
    vd_collection *c = NULL;
    vd_status s = vd_store_acquire(e->store, req->name, &c, err);
    if (s != VD_OK) return s;
    vd_collection_info info;
    vd_collection_info_get(c, &info);
    vd_collection_release(c);
    if (req->kind == VD_REQ_COUNT)
        out->n = info.count;
    else
        out->info = info;
    return VD_OK;
}

static vd_status read_stats(vd_engine *e, vd_result *out, vd_err *err)
{
    vd_collection_info *list = NULL;
    size_t n = 0;
    vd_store_info si = {0};
    vd_status s = vd_store_list(e->store, &list, &n, err);
    if (s == VD_OK) s = vd_store_info_get(e->store, &si, err);
    if (s == VD_OK) {
        out->stats.collections = (uint32_t)n;
        for (size_t i = 0; i < n; i++)
            out->stats.points += list[i].count;
        out->stats.map_bytes = si.map_bytes;
        out->stats.file_bytes = si.file_bytes;
    }
    vd_free(list);
    return s;
}

/* ---- get ------------------------------------------------------------------------------- */

static vd_status read_get(vd_engine *e, const vd_get_req *g, vd_result *out, vd_err *err)
{
    vd_get_result *r = &out->get;
    vd_collection *c = NULL;
    vd_status s = vd_engine__check_batch(e, VD_REQ_GET, g->n_ids, err);
    if (s == VD_OK) s = vd_store_acquire(e->store, g->collection, &c, err);
    if (s != VD_OK) return s;
    size_t n = g->n_ids;
    uint32_t dim = vd_collection_params_of(c)->dim;
    r->n = n;
    r->dim = dim;
    if (g->with_vectors &&
        (s = vd_engine__check_response(e, VD_REQ_GET, (uint64_t)n * dim * 4, err)) != VD_OK)
        goto done;
    r->found = vd_calloc(n, sizeof *r->found);
    if (g->with_vectors) r->vectors = vd_calloc(n * dim, sizeof *r->vectors);
    if (g->with_payloads) r->payloads = vd_calloc(n, sizeof *r->payloads);
    if (!r->found || (g->with_vectors && !r->vectors) || (g->with_payloads && !r->payloads)) {
        s = vd_err_set(err, VD_NOMEM, "get: out of memory for %zu points", n);
        goto done;
    }
    if ((s = vd_snapshot_begin(e->store, &out->snapshot, err)) != VD_OK) goto done;
    for (size_t i = 0; i < n && s == VD_OK; i++) {
        int found = 0;
        const float *v = NULL;
        const uint8_t *pl = NULL;
        size_t plen = 0;
        s = vd_snapshot_get(out->snapshot, c, g->ids[i], &found, r->vectors ? &v : NULL,
                            r->payloads ? &pl : NULL, r->payloads ? &plen : NULL, err);
        if (s != VD_OK || !found) continue;
        r->found[i] = 1;
        if (v) memcpy(r->vectors + i * dim, v, (size_t)dim * sizeof *v);
        if (pl) r->payloads[i] = (vd_bytes){plen, pl};
    }
    if (s == VD_OK && !r->payloads) { /* nothing borrows from the snapshot: end it now */
        vd_snapshot_end(out->snapshot);
        out->snapshot = NULL;
    }
done:
    vd_collection_release(c);
    return s;
}

/* ---- search ---------------------------------------------------------------------------- */

/* k, ef, rerank: the request alone. */
static vd_status check_k(const vd_engine *e, const vd_search_req *r, vd_err *err)
{
    uint32_t max_k = e->limits.max_k;
    if (r->k == 0)
        return vd_err_set(err, VD_INVALID, "search: k is 0; k must be 1..%" PRIu32, max_k);
    if (r->k > max_k)
        return vd_err_set(err, VD_INVALID, "search: k %" PRIu32 " exceeds max_k %" PRIu32, r->k,
                          max_k);
    vd_status s = vd_param_resolve(VD_PARAM_EF, r->ef, NULL, err);
    return s == VD_OK ? vd_param_resolve(VD_PARAM_RERANK, r->rerank, NULL, err) : s;
}

/* An int8 collection re-ranks with the vectors LMDB holds, read through a snapshot begun at
 * the first vector the index asks for: after the search read the index's visible epoch, so
 * every point it can return was committed before the snapshot began and has its record
 * there; a slot refilled since (the record names another id) or a failure makes the source
 * answer NULL and that hit keep its code distance. The snapshot stays with the result for
 * the payloads, so both come from one view. */
typedef struct rerank_src {
    vd_store *st;
    const vd_collection *c;
    vd_snapshot **snap;
    float *scratch; /* dim floats */
} rerank_src;

static const float *rerank_get(void *ctx, uint32_t slot, uint64_t id)
{
    rerank_src *r = ctx;
    if (!*r->snap && vd_snapshot_begin(r->st, r->snap, NULL) != VD_OK) return NULL;
    return vd_snapshot_slot_vector(*r->snap, r->c, slot, id, r->scratch, NULL);
}

/* The number of queries, as rows of the collection's dim; a dim the request states must be
 * the collection's, so a query of twice the dim is an error rather than two queries. */
static vd_status query_rows(const vd_engine *e, const vd_search_req *r,
                            const vd_collection_params *p, size_t *nq, vd_err *err)
{
    if (r->n_floats == 0)
        return vd_err_set(err, VD_INVALID, "search: no queries (the queries array is empty)");
    if (r->dim && r->dim != p->dim)
        return vd_err_set(err, VD_INVALID,
                          "search: query has %" PRIu32 " dims, collection %s expects %" PRIu32,
                          r->dim, p->name, p->dim);
    if (r->n_floats % p->dim != 0)
        return vd_err_set(err, VD_INVALID,
                          "search: queries hold %zu bytes, not a multiple of %zu (%" PRIu32
                          " dims x 4 bytes, collection %s)",
                          r->n_floats * 4, (size_t)p->dim * 4, p->dim, p->name);
    *nq = r->n_floats / p->dim;
    if (e->limits.max_batch && *nq > e->limits.max_batch)
        return vd_err_set(err, VD_INVALID, "search: %zu queries exceed max_batch %" PRIu32, *nq,
                          e->limits.max_batch);
    return VD_OK;
}

/* Runs every query into the result rows; `hits` has room for k. `src` re-ranks an int8
 * collection (NULL otherwise). */
static vd_status run_queries(const vd_collection *c, const vd_search_req *r, vd_hit *hits,
                             const vd_vector_source *src, vd_search_result *out, vd_err *err)
{
    const vd_collection_params *p = vd_collection_params_of(c);
    const vd_index *ix = vd_collection_index(c);
    size_t k = out->k;
    vd_search_opts o = {.k = out->k, .ef = r->ef, .rerank = r->rerank, .source = src};
    for (size_t i = 0; i < out->nq; i++) {
        uint32_t got = 0;
        vd_status s = vd_index_search_opts(ix, r->queries + i * p->dim, &o, hits, &got, err);
        if (s != VD_OK) {
            if (out->nq > 1)
                vd_err_prefix(err, "search %s: query %zu", p->name, i);
            else
                vd_err_prefix(err, "search %s", p->name);
            return s;
        }
        uint64_t *ids = out->ids + i * k;
        float *dists = out->distances + i * k;
        for (size_t h = 0; h < k; h++) {
            ids[h] = h < got ? hits[h].id : VD_ID_NONE;
            dists[h] = h < got ? hits[h].distance : INFINITY;
        }
    }
    return VD_OK;
}

/* Payloads of every hit, borrowed from a snapshot the result keeps. */
static vd_status fetch_payloads(vd_engine *e, const vd_collection *c, vd_result *out, vd_err *err)
{
    vd_search_result *r = &out->search;
    size_t n = (size_t)r->nq * r->k;
    vd_status s = out->snapshot ? VD_OK : vd_snapshot_begin(e->store, &out->snapshot, err);
    for (size_t i = 0; i < n && s == VD_OK; i++) {
        if (r->ids[i] == VD_ID_NONE) continue;
        int found = 0;
        const uint8_t *pl = NULL;
        size_t plen = 0;
        s = vd_snapshot_get(out->snapshot, c, r->ids[i], &found, NULL, &pl, &plen, err);
        if (s == VD_OK && found && pl) r->payloads[i] = (vd_bytes){plen, pl};
    }
    return s;
}

static vd_status read_search(vd_engine *e, const vd_search_req *q, vd_result *out, vd_err *err)
{
    vd_search_result *r = &out->search;
    vd_collection *c = NULL;
    vd_hit *hits = NULL;
    size_t nq = 0;
    rerank_src rs = {e->store, NULL, &out->snapshot, NULL};
    vd_vector_source src = {rerank_get, &rs};
    vd_status s = check_k(e, q, err);
    if (s == VD_OK) s = vd_store_acquire(e->store, q->collection, &c, err);
    if (s != VD_OK) return s;
    rs.c = c;
    if ((s = query_rows(e, q, vd_collection_params_of(c), &nq, err)) != VD_OK) goto done;
    size_t n = nq * q->k;
    if ((s = vd_engine__check_response(e, VD_REQ_SEARCH, (uint64_t)n * 12, err)) != VD_OK)
        goto done;
    r->nq = (uint32_t)nq;
    r->k = q->k;
    r->ids = vd_malloc(n * sizeof *r->ids);
    r->distances = vd_malloc(n * sizeof *r->distances);
    hits = vd_malloc(q->k * sizeof *hits);
    if (q->with_payloads) r->payloads = vd_calloc(n, sizeof *r->payloads);
    if (!r->ids || !r->distances || !hits || (q->with_payloads && !r->payloads)) {
        s = vd_err_set(err, VD_NOMEM, "search: out of memory for %zu results", n);
        goto done;
    }
    const vd_collection_params *cp = vd_collection_params_of(c);
    if (cp->quantization == VD_QUANT_INT8 &&
        !(rs.scratch = vd_malloc((size_t)cp->dim * sizeof(float)))) {
        s = vd_err_set(err, VD_NOMEM, "search: out of memory for %zu results", n);
        goto done;
    }
    s = run_queries(c, q, hits, rs.scratch ? &src : NULL, r, err);
    if (s == VD_OK && q->with_payloads) s = fetch_payloads(e, c, out, err);
    if (s == VD_OK && !q->with_payloads && out->snapshot) { /* the re-rank's, done with */
        vd_snapshot_end(out->snapshot);
        out->snapshot = NULL;
    }
done:
    vd_free(rs.scratch);
    vd_free(hits);
    vd_collection_release(c);
    return s;
}

/* ---- dispatch --------------------------------------------------------------------------- */

vd_status vd_engine_read(vd_engine *e, const vd_request *req, vd_result *out, vd_err *err)
{
    vd_status s;
    memset(out, 0, sizeof *out);
    out->kind = req->kind;
    switch (req->kind) {
    case VD_REQ_LIST:
        s = vd_store_list(e->store, &out->list.items, &out->list.n, err);
        break;
    case VD_REQ_INFO:
    case VD_REQ_COUNT:
        s = read_info(e, req, out, err);
        break;
    case VD_REQ_STATS:
        s = read_stats(e, out, err);
        break;
    case VD_REQ_GET:
        s = read_get(e, &req->get, out, err);
        break;
    case VD_REQ_SEARCH:
        s = read_search(e, &req->search, out, err);
        break;
    default:
        s = vd_err_set(err, VD_INTERNAL, "%s is not a read operation", vd_request_name(req->kind));
        break;
    }
    if (s == VD_OK) return VD_OK;
    vd_result_free(out);
    return vd_engine__fail(s, err, req->kind);
}
