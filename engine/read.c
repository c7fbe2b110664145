/* engine/read.c: the reads - list, info, count, stats, get, search - on any thread, and the
 * dispatch of every read (scroll is scroll.c's).
 *
 * Parallel search: a host that lends its threads (vd_engine_set_parallel: the embedded
 * module's pool) gets one task per thread, each taking queries one at a time from a shared
 * counter and writing their rows of the one result; the daemon lends none (each reader
 * thread runs whole requests, and its requests are many and small). Rejected: a task per
 * slice of queries (a thread that drew a slow slice finishes alone: on fashion-mnist at ef
 * 10, 62-query slices cost a few percent at the end of every call).
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
 * (vd_index_search fills vd_hit pairs; one row of them is cheap to split).
 * String ids: a get maps each id to its internal key in the snapshot it reads from; a
 * search runs on the keys and names its hits afterwards (engine/ids.c says why the snapshot
 * doing that begins before the search). */
#include "engine/engine_int.h"

#include <math.h>
#include <stdatomic.h>

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

/* The keys to look up: the ids, or for string ids their internal keys in a new *owned. */
static vd_status get_keys(vd_snapshot *snap, const vd_collection *c, const vd_get_req *g,
                          const uint64_t **keys, uint64_t **owned, vd_err *err)
{
    *keys = g->ids;
    if (g->ids) return VD_OK;
    if (!(*owned = vd_malloc(g->str_ids.n * sizeof **owned)))
        return vd_err_set(err, VD_NOMEM, "get: out of memory for %zu ids", g->str_ids.n);
    *keys = *owned;
    return vd_engine__str_keys(snap, c, &g->str_ids, *owned, err);
}

static vd_status read_get(vd_engine *e, const vd_get_req *g, vd_result *out, vd_err *err)
{
    vd_get_result *r = &out->get;
    vd_collection *c = NULL;
    uint64_t *owned = NULL;
    const uint64_t *keys = NULL;
    size_t n = g->ids || !g->str_ids.ends ? g->n_ids : g->str_ids.n;
    vd_status s = vd_engine__check_batch(e, VD_REQ_GET, n, err);
    if (s == VD_OK) s = vd_store_acquire(e->store, g->collection, &c, err);
    if (s != VD_OK) return s;
    if ((s = vd_point_ids_check(vd_collection_params_of(c), g->ids, &g->str_ids, n, 0, err))) {
        vd_err_prefix(err, "get %s", g->collection);
        goto done;
    }
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
    if ((s = vd_snapshot_begin(e->store, &out->snapshot, err)) != VD_OK ||
        (s = get_keys(out->snapshot, c, g, &keys, &owned, err)) != VD_OK)
        goto done;
    for (size_t i = 0; i < n && s == VD_OK; i++) {
        int found = 0;
        const float *v = NULL;
        const uint8_t *pl = NULL;
        size_t plen = 0;
        if (keys[i] == VD_ID_NONE) continue; /* a string id that does not exist */
        s = vd_snapshot_get(out->snapshot, c, keys[i], &found, r->vectors ? &v : NULL,
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
    vd_free(owned);
    vd_collection_release(c);
    return s;
}

/* ---- search ---------------------------------------------------------------------------- */

void (*vd_engine__test_after_snapshot)(void);

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
 * answer NULL and that hit keep its code distance. Each thread running queries has its own
 * source (its snapshot and scratch: a transaction is one thread's at a time), ended when its
 * queries are done; payloads and string ids come from the result's own snapshot. */
typedef struct rerank_src {
    vd_store *st;
    const vd_collection *c;
    vd_snapshot *snap;
    float *scratch; /* dim floats; NULL: a float collection, nothing to re-rank */
} rerank_src;

static const float *rerank_get(void *ctx, uint32_t slot, uint64_t id)
{
    rerank_src *r = ctx;
    if (!r->snap && vd_snapshot_begin(r->st, &r->snap, NULL) != VD_OK) return NULL;
    return vd_snapshot_slot_vector(r->snap, r->c, slot, id, r->scratch, NULL);
}

static vd_status rerank_init(rerank_src *r, vd_store *st, const vd_collection *c, vd_err *err)
{
    const vd_collection_params *p = vd_collection_params_of(c);
    *r = (rerank_src){.st = st, .c = c};
    if (p->quantization != VD_QUANT_INT8) return VD_OK;
    if (!(r->scratch = vd_malloc((size_t)p->dim * sizeof(float))))
        return vd_err_set(err, VD_NOMEM, "search: out of memory for re-ranking");
    return VD_OK;
}

static void rerank_end(rerank_src *r)
{
    vd_snapshot_end(r->snap);
    vd_free(r->scratch);
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

/* Runs queries [lo, hi) into the result rows; `hits` has room for k; filter may be NULL, and
 * rr re-ranks an int8 collection (rerank_init). */
static vd_status run_rows(const vd_collection *c, const vd_search_req *r,
                          const vd_slot_filter *filter, rerank_src *rr, size_t lo, size_t hi,
                          vd_hit *hits, vd_search_result *out, vd_err *err)
{
    const vd_collection_params *p = vd_collection_params_of(c);
    const vd_index *ix = vd_collection_index(c);
    size_t k = out->k;
    vd_vector_source src = {rerank_get, rr};
    for (size_t i = lo; i < hi; i++) {
        uint32_t got = 0;
        vd_search_opts o = {.k = out->k,
                            .ef = r->ef,
                            .filter = filter,
                            .explain = out->explain ? &out->explain[i] : NULL,
                            .rerank = r->rerank,
                            .source = rr->scratch ? &src : NULL};
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

/* One search on the host's parallel-for: `width` tasks, each taking the next query from a
 * shared counter (so the threads finish within one query of each other) with a hits buffer
 * of its own. Each task stops at its first error; every query below the lowest failing one
 * was taken, and so run, by some task, so that query's error is the one a serial run
 * would report. */
typedef struct search_tasks {
    vd_store *st;
    const vd_collection *c;
    const vd_search_req *r;
    const vd_slot_filter *filter; /* read-only: shared by the tasks */
    vd_search_result *out;
    atomic_size_t next;
    vd_status *status;
    size_t *failed_at; /* per task: the query that failed */
    vd_err *errs;
} search_tasks;

static void search_task(void *ctx, size_t t)
{
    search_tasks *st = ctx;
    vd_hit *hits = vd_malloc(st->out->k * sizeof *hits);
    rerank_src rr;
    st->failed_at[t] = SIZE_MAX;
    st->status[t] = rerank_init(&rr, st->st, st->c, &st->errs[t]);
    if (!hits && st->status[t] == VD_OK)
        st->status[t] = vd_err_set(&st->errs[t], VD_NOMEM,
                                   "search: out of memory for %" PRIu32 " hits", st->out->k);
    if (st->status[t] != VD_OK) {
        st->failed_at[t] = 0;
    } else {
        for (size_t i; (i = atomic_fetch_add(&st->next, 1)) < st->out->nq;)
            if ((st->status[t] = run_rows(st->c, st->r, st->filter, &rr, i, i + 1, hits, st->out,
                                          &st->errs[t]))) {
                st->failed_at[t] = i;
                break;
            }
    }
    rerank_end(&rr);
    vd_free(hits);
}

/* Every query into the result rows: on the host's threads when it lent them and there is
 * more than one query, else here. `hits` has room for k. */
static vd_status run_queries(const vd_engine *e, const vd_collection *c, const vd_search_req *r,
                             const vd_slot_filter *filter, vd_hit *hits, vd_search_result *out,
                             vd_err *err)
{
    size_t width = e->par.width < out->nq ? e->par.width : out->nq;
    if (!e->par.fn || width < 2) {
        rerank_src rr;
        vd_status s = rerank_init(&rr, e->store, c, err);
        if (s == VD_OK) s = run_rows(c, r, filter, &rr, 0, out->nq, hits, out, err);
        rerank_end(&rr);
        return s;
    }
    search_tasks st = {.st = e->store, .c = c, .r = r, .filter = filter, .out = out};
    atomic_init(&st.next, 0);
    st.status = vd_calloc(width, sizeof *st.status);
    st.failed_at = vd_malloc(width * sizeof *st.failed_at);
    st.errs = vd_malloc(width * sizeof *st.errs);
    vd_status s = VD_OK;
    if (!st.status || !st.failed_at || !st.errs) {
        s = vd_err_set(err, VD_NOMEM, "search: out of memory for %zu tasks", width);
    } else {
        e->par.fn(e->par.host, width, search_task, &st);
        size_t first = SIZE_MAX;
        for (size_t t = 0; t < width; t++)
            if (st.status[t] != VD_OK && st.failed_at[t] < first) {
                first = st.failed_at[t];
                s = st.status[t];
                if (err) *err = st.errs[t];
            }
    }
    vd_free(st.status);
    vd_free(st.failed_at);
    vd_free(st.errs);
    return s;
}

/* Payloads of every hit, borrowed from a snapshot the result keeps (the one that named
 * string ids, else a new one). */
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

/* The queries, under the filter's set when there is one: the index gets it with its exact
 * size, so the planner knows the selectivity (vd_filtered_slot_filter: a dense bitmap tested
 * inline on the traversal, or lookups for a small set). For string ids the snapshot that
 * names the hits begins after the filter is compiled (a compile may wait for a commit, which
 * must not wait for a snapshot this thread holds: storage/fquery.c) and before the search
 * (engine/ids.c). The set is released before the hits are named and payloads fetched. */
static vd_status filtered_queries(vd_engine *e, vd_collection *c, const vd_search_req *q,
                                  vd_hit *hits, vd_result *out, vd_err *err)
{
    vd_search_result *r = &out->search;
    vd_filtered *fv = NULL;
    vd_slot_filter sf;
    vd_status s = VD_OK;
    if (q->filter) {
        if ((s = vd_filtered_begin(e->store, c, q->filter, &fv, err)) != VD_OK) return s;
        vd_filtered_stats_get(fv, &r->filter);
        r->filtered = 1;
        s = vd_filtered_slot_filter(fv, &sf, err);
    }
    if (s == VD_OK && vd_collection_params_of(c)->id_type == VD_ID_STR) {
        s = vd_snapshot_begin(e->store, &out->snapshot, err);
        if (s == VD_OK && vd_engine__test_after_snapshot) vd_engine__test_after_snapshot();
    }
    if (s == VD_OK) s = run_queries(e, c, q, fv ? &sf : NULL, hits, r, err);
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
    int str = vd_collection_params_of(c)->id_type == VD_ID_STR;
    s = filtered_queries(e, c, q, hits, out, err);
    if (s == VD_OK && str) s = vd_engine__name_hits(e, c, r, &out->snapshot, err);
    if (s == VD_OK && q->with_payloads) s = fetch_payloads(e, c, out, err);
    if (s == VD_OK && str) { /* the internal keys are nobody's business past this point */
        vd_free(r->ids);
        r->ids = NULL;
        if (!q->with_payloads) {
            vd_snapshot_end(out->snapshot);
            out->snapshot = NULL;
        }
    }
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
    case VD_REQ_SCROLL:
        s = vd_engine__read_scroll(e, &req->scroll, out, err);
        break;
    default:
        s = vd_err_set(err, VD_INTERNAL, "%s is not a read operation", vd_request_name(req->kind));
        break;
    }
    if (s == VD_OK) return VD_OK;
    vd_result_free(out);
    return vd_engine__fail(s, err, req->kind);
}
