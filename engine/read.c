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
    vd_collection_info_get(c, &out->info);
    vd_collection_release(c);
    return VD_OK;
}

/* Every point, or the points a filter matches: the size of its set (fquery.c). */
static vd_status read_count(vd_engine *e, const vd_count_req *q, vd_result *out, vd_err *err)
{
    vd_collection *c = NULL;
    vd_filtered *fv = NULL;
    vd_status s = q->filter ? vd_filter_check(q->filter, err) : VD_OK;
    if (s == VD_OK) s = vd_store_acquire(e->store, q->collection, &c, err);
    if (s != VD_OK) return s;
    if (!q->filter) {
        vd_collection_info info;
        vd_collection_info_get(c, &info);
        out->n = info.count;
    } else if ((s = vd_filtered_begin(e->store, c, q->filter, &fv, err)) == VD_OK) {
        vd_filtered_stats fs;
        vd_filtered_stats_get(fv, &fs);
        out->n = fs.matching;
        vd_filtered_end(fv);
    }
    vd_collection_release(c);
    return s;
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

/* k, ef: the request alone. */
static vd_status check_k(const vd_engine *e, const vd_search_req *r, vd_err *err)
{
    uint32_t max_k = e->limits.max_k;
    if (r->k == 0)
        return vd_err_set(err, VD_INVALID, "search: k is 0; k must be 1..%" PRIu32, max_k);
    if (r->k > max_k)
        return vd_err_set(err, VD_INVALID, "search: k %" PRIu32 " exceeds max_k %" PRIu32, r->k,
                          max_k);
    return vd_param_resolve(VD_PARAM_EF, r->ef, NULL, err);
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

/* Runs every query into the result rows; `hits` has room for k; filter may be NULL. */
static vd_status run_queries(const vd_collection *c, const vd_search_req *r,
                             const vd_slot_filter *filter, vd_hit *hits, vd_search_result *out,
                             vd_err *err)
{
    const vd_collection_params *p = vd_collection_params_of(c);
    const vd_index *ix = vd_collection_index(c);
    size_t k = out->k;
    for (size_t i = 0; i < out->nq; i++) {
        uint32_t got = 0;
        vd_search_opts o = {.k = out->k, .ef = r->ef, .filter = filter,
                            .explain = out->explain ? &out->explain[i] : NULL};
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
    vd_status s = vd_snapshot_begin(e->store, &out->snapshot, err);
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

/* The queries, under the filter's set when there is one: the index gets it with its exact
 * size, so the planner knows the selectivity (vd_filtered_slot_filter: a dense bitmap tested
 * inline on the traversal, or lookups for a small set). The set is released before payloads
 * are fetched. */
static vd_status filtered_queries(vd_engine *e, vd_collection *c, const vd_search_req *q,
                                  vd_hit *hits, vd_search_result *r, vd_err *err)
{
    if (!q->filter) return run_queries(c, q, NULL, hits, r, err);
    vd_filtered *fv = NULL;
    vd_status s = vd_filtered_begin(e->store, c, q->filter, &fv, err);
    if (s != VD_OK) return s;
    vd_slot_filter sf;
    vd_filtered_stats_get(fv, &r->filter);
    r->filtered = 1;
    s = vd_filtered_slot_filter(fv, &sf, err);
    if (s == VD_OK) s = run_queries(c, q, &sf, hits, r, err);
    vd_filtered_end(fv);
    return s;
}

static vd_status read_search(vd_engine *e, const vd_search_req *q, vd_result *out, vd_err *err)
{
    vd_search_result *r = &out->search;
    vd_collection *c = NULL;
    vd_hit *hits = NULL;
    size_t nq = 0;
    vd_status s = check_k(e, q, err);
    if (s == VD_OK && q->filter) s = vd_filter_check(q->filter, err);
    if (s == VD_OK) s = vd_store_acquire(e->store, q->collection, &c, err);
    if (s != VD_OK) return s;
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
    if (q->explain && !(r->explain = vd_calloc(nq, sizeof *r->explain))) {
        s = vd_err_set(err, VD_NOMEM, "search: out of memory for %zu plans", nq);
        goto done;
    }
    s = filtered_queries(e, c, q, hits, r, err);
    if (s == VD_OK && q->with_payloads) s = fetch_payloads(e, c, out, err);
done:
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
        s = read_info(e, req, out, err);
        break;
    case VD_REQ_COUNT:
        s = read_count(e, &req->count, out, err);
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
