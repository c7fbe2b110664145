/* engine/build.c: the bulk build - n rows become a new collection in the offline order:
 * the index is built in memory on n threads, then written with its points and payloads in
 * ONE transaction (vd_store_import), so the collection appears complete or not at all.
 * `vectord build` (rows from a file reader, daemon/cmd_build.c) and the embedded db.build
 * (rows from a numpy array) both call vd_engine_build: one owner for the chunking, the
 * seed, the parameter resolution and the order of the steps.
 *
 * Steps: parameters through the table (vd_index_params_check) and the ids through the point
 * rule (vd_ids_check_distinct, over all n: chunks only check themselves; string ids through
 * storage's vd_str_ids_check, the index then built under the internal keys 0..n-1 that
 * vd_store_import_str maps them to), an existing collection refused unless `replace` - all
 * before the long part; then chunks of
 * CHUNK_BYTES, each read (checked, converted or in place) and linked by vd_index_add_batch
 * on the caller's threads, the rows released behind it; then the import. Nothing is written
 * before the import's commit, so a failure anywhere leaves the directory as it was.
 *
 * The seed is fixed (docs/architecture.md "Bulk build": the built graph does not depend on
 * where the rows came from). The index publishes each add_batch itself (no reader can see
 * it before the import), and the store adopts it on success.
 * Rejected: one add_batch over all rows (with converted input the whole converted copy sits
 * next to the index; with a mapped file the whole mapping becomes resident); building inside
 * storage (storage knows nothing of row sources, threads' progress or the chunk policy). */
#include <inttypes.h>
#include <stdio.h>

#include "engine/engine_int.h"

/* Rows per add_batch call: big enough that thread start/join at chunk edges is noise, small
 * enough that one chunk of converted input is small next to the index. */
#define CHUNK_BYTES ((size_t)8 << 20)
#define BUILD_SEED 0x5eedb011dull /* docs/architecture.md "Bulk build" */

typedef struct build_run {
    const vd_build_req *b;
    const uint64_t *ids; /* b->ids, or the internal keys 0..n-1 of a string-id build */
    uint64_t *keys;      /* owned: those keys */
    vd_collection_params cp; /* defaults resolved */
    vd_index_params ip;
    vd_index *ix; /* until the store adopts it */
    float *chunk; /* converted rows, when the source is not in place */
    size_t chunk_rows;
    size_t base; /* rows linked before the current chunk (progress) */
} build_run;

size_t vd_build_chunk_rows(uint32_t dim, size_t n)
{
    size_t rows = CHUNK_BYTES / ((size_t)(dim ? dim : 1) * sizeof(float));
    if (rows == 0) rows = 1;
    return rows < n ? rows : (n ? n : 1);
}

/* Rows from req->vectors: checked with the point rule, naming the row in the whole input. */
static vd_status array_rows(const build_run *r, size_t first, size_t n, const float **out,
                            vd_err *err)
{
    const vd_build_req *b = r->b;
    const float *v = b->vectors + first * b->params.dim;
    for (size_t i = 0; i < n; i++) {
        vd_status s = vd_vector_check(b->params.metric, v + i * b->params.dim, b->params.dim, err);
        if (s != VD_OK) return vd_err_prefix(err, "row %zu", first + i);
    }
    *out = v;
    return VD_OK;
}

static void on_link_progress(void *ctx, size_t done, size_t total)
{
    build_run *r = ctx;
    (void)total; /* the chunk's; the build reports the whole input */
    r->b->progress(r->b->progress_ctx, VD_BUILD_LINKING, r->base + done, r->b->n);
}

static void on_write_progress(void *ctx, size_t done, size_t total)
{
    build_run *r = ctx;
    r->b->progress(r->b->progress_ctx, VD_BUILD_WRITING, done, total);
}

/* What is refused before the long part: parameters, ids, an existing name. */
static vd_status check(vd_engine *e, build_run *r, vd_err *err)
{
    const vd_build_req *b = r->b;
    vd_status s;
    r->cp = b->params;
    r->cp.name[VD_NAME_MAX] = 0;
    if ((s = vd_name_check(r->cp.name, err)) != VD_OK) /* no name to put in the prefix */
        return err ? vd_err_prefix(err, "build") : s;
    if (b->n == 0) return vd_err_set(err, VD_INVALID, "no vectors to build from");
    int str = b->params.id_type == VD_ID_STR;
    if (str ? !b->str_ids || b->ids : !b->ids || b->str_ids)
        return vd_err_set(err, VD_INVALID, "a collection with %s ids needs %s ids",
                          vd_id_type_name(b->params.id_type), str ? "string" : "integer");
    if (str && b->str_ids->n != b->n)
        return vd_err_set(err, VD_INVALID, "%zu string ids for %zu vectors", b->str_ids->n,
                          b->n);
    if (!b->vectors && !b->rows.read) return vd_err_set(err, VD_INVALID, "no vectors given");
    if (b->params.dim > e->limits.max_dim)
        return vd_err_set(err, VD_INVALID, "dim %" PRIu32 " is outside 1..%" PRIu32, b->params.dim,
                          e->limits.max_dim);
    r->ip = (vd_index_params){.dim = r->cp.dim,
                              .metric = r->cp.metric,
                              .m = r->cp.m,
                              .ef_construction = r->cp.ef_construction,
                              .seed = BUILD_SEED,
                              .capacity_hint = b->n > UINT32_MAX ? UINT32_MAX : (uint32_t)b->n,
                              .quantization = r->cp.quantization};
    if ((s = vd_index_params_check(&r->ip, err)) != VD_OK ||
        (s = vd_param_resolve(VD_PARAM_EF_SEARCH, r->cp.ef_search, &r->cp.ef_search, err)) != VD_OK)
        return s;
    r->cp.m = r->ip.m;
    r->cp.ef_construction = r->ip.ef_construction;
    if (str) {
        /* The index is built under internal keys 0..n-1; the import maps them to the ids. */
        if ((s = vd_str_ids_check(b->str_ids, 1, err)) != VD_OK) return s;
        if (!(r->keys = vd_malloc(b->n * sizeof *r->keys)))
            return vd_err_set(err, VD_NOMEM, "out of memory for %zu keys", b->n);
        for (size_t i = 0; i < b->n; i++) r->keys[i] = i;
        r->ids = r->keys;
    } else if ((s = vd_ids_check_distinct(b->ids, b->n, err)) != VD_OK) {
        return s;
    } else {
        r->ids = b->ids;
    }
    vd_collection *c = NULL;
    int exists = vd_store_acquire(e->store, r->cp.name, &c, NULL) == VD_OK;
    vd_collection_release(c);
    if (exists && !b->replace)
        return vd_err_set(err, VD_EXISTS,
                          "collection %s already exists (--replace, or replace=True in "
                          "Python, builds it anew)",
                          r->cp.name);
    return VD_OK;
}

/* The index, chunk by chunk; the source is finished afterwards. */
static vd_status link_rows(build_run *r, vd_err *err)
{
    const vd_build_req *b = r->b;
    const vd_build_rows *src = &b->rows;
    vd_status s = vd_index_open(&r->ip, &r->ix, err);
    if (s != VD_OK) return s;
    vd_index_set_ef_search(r->ix, r->cp.ef_search);
    r->chunk_rows = vd_build_chunk_rows(r->ip.dim, b->n);
    if (src->read && !src->in_place &&
        !(r->chunk = vd_malloc(r->chunk_rows * r->ip.dim * sizeof(float))))
        return vd_err_set(err, VD_NOMEM, "out of memory for a %zu-row input chunk", r->chunk_rows);
    if (b->progress) b->progress(b->progress_ctx, VD_BUILD_LINKING, 0, b->n);
    for (size_t first = 0; first < b->n; first += r->chunk_rows) {
        size_t rows = b->n - first < r->chunk_rows ? b->n - first : r->chunk_rows;
        const float *v = NULL;
        s = src->read ? src->read(src->ctx, first, rows, r->chunk, &v, err)
                      : array_rows(r, first, rows, &v, err);
        if (s != VD_OK) return s;
        /* Converted rows live in the chunk now; in-place rows are needed until linked. */
        if (v == r->chunk && src->release) src->release(src->ctx, first, rows);
        r->base = first;
        s = vd_index_add_batch(r->ix, r->ids + first, v, rows, b->threads,
                               b->progress ? on_link_progress : NULL, r, err);
        if (s != VD_OK) return s;
        if (src->release) src->release(src->ctx, first, rows);
        if (b->progress) b->progress(b->progress_ctx, VD_BUILD_LINKING, first + rows, b->n);
    }
    /* The index holds its own copy now: let the source go before the write phase. */
    vd_free(r->chunk);
    r->chunk = NULL;
    if (src->finish) src->finish(src->ctx);
    return VD_OK;
}

vd_status vd_engine_build(vd_engine *e, const vd_build_req *b, vd_build_result *out, vd_err *err)
{
    build_run r = {.b = b};
    memset(out, 0, sizeof *out);
    uint64_t t0 = vd_now_ns();
    vd_status s = check(e, &r, err);
    if (s == VD_OK) s = link_rows(&r, err);
    uint64_t t1 = vd_now_ns();
    vd_progress_fn wp = b->progress ? on_write_progress : NULL;
    if (s == VD_OK && b->str_ids)
        s = vd_store_import_str(e->store, &r.cp, r.ix, b->str_ids, b->payloads, b->payload_lens,
                                b->replace, wp, &r, err);
    else if (s == VD_OK)
        s = vd_store_import(e->store, &r.cp, r.ix, b->n, b->ids, b->payloads, b->payload_lens,
                            b->replace, wp, &r, err);
    if (s == VD_OK) {
        r.ix = NULL; /* the store's now */
        out->link_ns = t1 - t0;
        out->write_ns = vd_now_ns() - t1;
        vd_collection *c = NULL;
        out->info.params = r.cp;
        if (vd_store_acquire(e->store, r.cp.name, &c, NULL) == VD_OK)
            vd_collection_info_get(c, &out->info);
        vd_collection_release(c);
    }
    vd_index_close(r.ix);
    vd_free(r.chunk);
    vd_free(r.keys);
    if (s != VD_OK && err && strncmp(err->msg, "build", 5) != 0)
        vd_err_prefix(err, "build %.*s", VD_NAME_MAX, b->params.name);
    return s;
}
