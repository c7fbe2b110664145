/* storage/import.c: vd_store_import, adopting an index built offline (`vectord build`) as a
 * new collection, written in ONE transaction: after a crash or a failure the collection is
 * either complete or absent, and readers in other processes see the old collection or the
 * new one. With replace, the old collection's records are deleted in the same transaction.
 *
 * Order: everything that can be refused is checked before the transaction begins (parameters
 * through vd_storage__params_check, the index's parameters against them, ids, payload JSON),
 * and each id's slot is resolved in memory (persist.c's rule: the filled slot carrying the
 * id; among several, the one holding vd_index_get's vector). Then the transaction writes the
 * vector and links records in ascending slot order with MDB_APPEND (pages fill sequentially,
 * no searching), the points records, the catalog record and the next collection id; the map
 * is grown ahead from an estimate (2x the raw bytes: B-tree pages are not full) and the
 * whole transaction re-run after MDB_MAP_FULL (vd_storage__write_txn).
 *
 * After the commit the store owns the index. Its change set is cleared without a walk: the
 * records just written are its whole state, and vd_index_changes_clear forgets everything
 * when vd_index_changes was not called since the last clear (index/vd_index.h) - the index
 * came from vd_index_add_batch, which never walks it. Writer thread only.
 *
 * String ids (vd_store_import_str): the index is built under the row numbers, which become
 * the internal keys; the mapping of every row is written in the same transaction, and the
 * sequence record starts after the last row.
 *
 * Rejected: several transactions (a smaller peak of dirty pages, but a crash could leave a
 * partial collection visible). */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "storage/storage_int.h"

typedef struct import_job {
    vd_collection *c; /* the new collection (params, seed, ix); cid set by the transaction */
    size_t n;
    const uint64_t *ids;
    const uint32_t *slots; /* slot of ids[i] */
    const uint8_t *const *payloads;
    const uint32_t *payload_lens;
    const vd_str_ids *str_ids; /* string ids: row i's id; ids[i] == i is its key */
    int replace;
    vd_progress_fn progress;
    void *progress_ctx;
    size_t done, total;
    uint64_t t_last_ns;
} import_job;

/* Everything vd_store_import refuses before writing, with the parameters resolved into q. */
static vd_status check_args(const vd_collection_params *p, const vd_index *ix, size_t n,
                            const uint64_t *ids, const uint8_t *const *payloads,
                            const uint32_t *payload_lens, vd_collection_params *q, vd_err *err)
{
    if (!p || !ix) return vd_err_set(err, VD_INVALID, "import: parameters or index missing");
    *q = *p;
    q->name[VD_NAME_MAX] = 0;
    vd_status s = vd_storage__params_check(q, err);
    if (s != VD_OK) return s;
    const vd_index_params *ip = vd_index_params_of(ix);
    if (ip->dim != q->dim || ip->metric != q->metric || ip->m != q->m ||
        ip->ef_construction != q->ef_construction)
        return vd_err_set(err, VD_INVALID, "import %s: the index was built with dim %u, %s, "
                          "m %u, ef_construction %u; the collection asks for dim %u, %s, m %u, "
                          "ef_construction %u", q->name, ip->dim, vd_metric_name(ip->metric),
                          ip->m, ip->ef_construction, q->dim, vd_metric_name(q->metric), q->m,
                          q->ef_construction);
    if (ip->quantization != q->quantization)
        return vd_err_set(err, VD_INVALID, "import %s: the index was built with quantization "
                          "%s; the collection asks for %s", q->name,
                          vd_quantization_name(ip->quantization),
                          vd_quantization_name(q->quantization));
    if (n && !ids) return vd_err_set(err, VD_INVALID, "import %s: ids missing", q->name);
    if (payloads && !payload_lens)
        return vd_err_set(err, VD_INVALID, "import %s: payload lengths missing", q->name);
    if (vd_index_count(ix) != n)
        return vd_err_set(err, VD_INVALID, "import %s: the index holds %zu points, %zu ids "
                          "given", q->name, vd_index_count(ix), n);
    for (size_t i = 0; payloads && i < n; i++)
        if (payloads[i] && (s = vd_json_check_object(payloads[i], payload_lens[i], err))) {
            vd_err_prefix(err, "import %s: point %zu (id %" PRIu64 ")", q->name, i, ids[i]);
            return s;
        }
    return VD_OK;
}

/* String ids: the collection's type, one valid distinct id per row. */
static vd_status check_str_ids(const vd_collection_params *q, const vd_str_ids *str, size_t n,
                               vd_err *err)
{
    if ((q->id_type == VD_ID_STR) != (str != NULL))
        return vd_err_set(err, VD_INVALID, "import %s: a collection of %s ids needs %s", q->name,
                          vd_id_type_name(q->id_type),
                          str ? "integer ids (vd_store_import)" : "string ids "
                                "(vd_store_import_str)");
    if (!str) return VD_OK;
    if (str->n != n)
        return vd_err_set(err, VD_INVALID, "import %s: %zu string ids for %zu points", q->name,
                          str->n, n);
    vd_status s = vd_str_ids_check(str, 1, err);
    if (s != VD_OK) vd_err_prefix(err, "import %s", q->name);
    return s;
}

/* slots[i] = the slot holding ids[i] (VD_INVALID for an id the index does not hold). */
static vd_status resolve_slots(const vd_index *ix, const char *name, size_t n,
                               const uint64_t *ids, uint32_t *slots, vd_err *err)
{
    vd_index_header hdr;
    vd_index_header_get(ix, &hdr);
    size_t n_pairs = 0;
    vd_id_slot *pairs = vd_malloc(((size_t)hdr.n_slots + 1) * sizeof *pairs);
    float *scratch = vd_malloc((size_t)vd_index_params_of(ix)->dim * sizeof *scratch);
    vd_status s = VD_OK;
    if (!pairs || !scratch) {
        s = vd_err_set(err, VD_NOMEM, "out of memory importing %s", name);
        goto out;
    }
    for (uint32_t slot = 0; slot < hdr.n_slots; slot++) {
        uint64_t id;
        const float *vec;
        if (vd_index_slot_vector(ix, slot, &id, &vec, NULL) == VD_OK)
            pairs[n_pairs++] = (vd_id_slot){id, slot};
    }
    vd_storage__sort_pairs(pairs, n_pairs);
    for (size_t i = 0; i < n && s == VD_OK; i++) {
        s = vd_storage__resolve_slot(ix, pairs, n_pairs, ids[i], &slots[i], scratch, err);
        if (s == VD_NOTFOUND)
            s = vd_err_set(err, VD_INVALID, "import %s: id %" PRIu64 " is not in the index",
                           name, ids[i]);
    }
out:
    vd_free(pairs);
    vd_free(scratch);
    return s;
}

static void tick(import_job *j)
{
    j->done++;
    if (j->progress && (j->done & 0xFFF) == 0 && vd_now_ns() - j->t_last_ns > 500000000ull) {
        j->t_last_ns = vd_now_ns();
        j->progress(j->progress_ctx, j->done, j->total);
    }
}

/* Vector and links records of every filled slot, in ascending slot order. */
static vd_status write_slots(import_job *j, vd_txn *t, vd_err *err)
{
    vd_collection *c = j->c;
    vd_index_header hdr;
    vd_index_header_get(c->ix, &hdr);
    for (uint32_t slot = 0; slot < hdr.n_slots; slot++, tick(j)) {
        uint64_t id;
        const float *vec;
        size_t len;
        if (vd_index_slot_vector(c->ix, slot, &id, &vec, NULL) != VD_OK) continue;
        vd_status s = vd_storage__vector_put(t, c->cid, &c->params, slot, id, vec, MDB_APPEND,
                                             err);
        if (s == VD_OK) s = vd_storage__links_encode(c->ix, slot, &t->st->buf, &len, err);
        if (s == VD_OK)
            s = vd_storage__links_put(t, c->cid, slot, t->st->buf.p, len,
                                      MDB_APPEND, err);
        if (s != VD_OK) return s;
    }
    return VD_OK;
}

/* String ids: both directions of every row's mapping, and the sequence after them. Keys are
 * the row numbers, ascending in a collection id taken just now (the last range of skeys). */
static vd_status write_str_ids(import_job *j, vd_txn *t, vd_err *err)
{
    const vd_str_ids *str = j->str_ids;
    vd_collection *c = j->c;
    vd_sidseq q = {.next_key = j->n};
    vd_status s = VD_OK;
    for (size_t i = 0; i < j->n && s == VD_OK; i++) {
        size_t a = vd_str_ids_start(str, i), len = str->ends[i] - a;
        s = vd_storage__sid_put(t, c->cid, str->bytes + a, len, i, err);
        if (s == VD_OK)
            s = vd_storage__skey_put(t, c->cid, i, str->bytes + a, len, MDB_APPEND, err);
        q.id_bytes += len;
    }
    if (s == VD_OK) s = vd_storage__sidseq_put(t, c->cid, &q, err);
    c->str_id_bytes = q.id_bytes;
    return s;
}

static vd_status write_points(import_job *j, vd_txn *t, vd_err *err)
{
    vd_collection *c = j->c;
    uint64_t payload_bytes = 0;
    for (size_t i = 0; i < j->n; i++, tick(j)) {
        size_t plen = j->payloads && j->payloads[i] ? j->payload_lens[i] : 0;
        vd_status s = vd_storage__point_put(t, c->cid, j->ids[i], j->slots[i],
                                            plen ? j->payloads[i] : NULL, plen, 0, err);
        if (s != VD_OK) return s;
        payload_bytes += plen;
    }
    c->count = j->n;
    c->payload_bytes = payload_bytes;
    return j->str_ids ? write_str_ids(j, t, err) : VD_OK;
}

static vd_status import_fill(void *ctx, vd_txn *t, vd_err *err)
{
    import_job *j = ctx;
    vd_collection *c = j->c;
    vd_catalog_rec old;
    int exists;
    j->done = 0;
    j->t_last_ns = vd_now_ns();
    vd_status s = vd_storage__catalog_get(t, c->params.name, &old, &exists, err);
    if (s != VD_OK) return s;
    if (exists && !j->replace)
        return vd_err_set(err, VD_EXISTS, "collection %s already exists", c->params.name);
    if ((exists && (s = vd_storage__collection_del(t, old.cid, err)) != VD_OK) ||
        (s = vd_storage__cid_take(t, &c->cid, err)) != VD_OK ||
        (s = write_slots(j, t, err)) != VD_OK || (s = write_points(j, t, err)) != VD_OK ||
        (s = vd_storage__catalog_store(t, c, c->count, c->payload_bytes, err)) != VD_OK)
        return s;
    /* Room for the catalog entry, so that adopting the committed collection cannot fail. */
    return vd_storage__catalog_reserve(t->st, 1, err);
}

/* Bytes the transaction may dirty, doubled: pages are not full. */
static size_t estimate_bytes(const vd_collection_params *q, const vd_index *ix, size_t n,
                             const uint8_t *const *payloads, const uint32_t *payload_lens)
{
    vd_index_header hdr;
    vd_index_header_get(ix, &hdr);
    size_t per = (size_t)q->dim * 4 + 8 * (size_t)q->m * 4 + 160;
    size_t need = (size_t)hdr.n_slots * per + ((size_t)1 << 20);
    for (size_t i = 0; payloads && i < n; i++) need += payload_lens[i];
    return 2 * need;
}

static vd_status import_any(vd_store *st, const vd_collection_params *p, vd_index *ix,
                            size_t n, const uint64_t *ids, const vd_str_ids *str_ids,
                            const uint8_t *const *payloads, const uint32_t *payload_lens,
                            int replace, vd_progress_fn progress, void *progress_ctx,
                            vd_err *err)
{
    vd_collection_params q;
    uint32_t *slots = NULL;
    vd_collection *c = NULL;
    vd_status s;
    if (st->read_only) return vd_err_set(err, VD_INVALID, "%s is open read-only", st->dir);
    if ((s = check_args(p, ix, n, ids, payloads, payload_lens, &q, err)) != VD_OK ||
        (s = check_str_ids(&q, str_ids, n, err)) != VD_OK)
        return s;
    slots = vd_malloc((n + 1) * sizeof *slots);
    c = vd_storage__coll_new();
    if (!slots || !c) {
        s = vd_err_set(err, VD_NOMEM, "out of memory importing %s", q.name);
        goto out;
    }
    if ((s = resolve_slots(ix, q.name, n, ids, slots, err)) != VD_OK) goto out;
    c->params = q;
    c->created_unix_s = (uint64_t)time(NULL);
    c->seed = vd_index_params_of(ix)->seed;
    c->ix = ix;
    vd_index_header hdr;
    vd_index_header_get(ix, &hdr);
    import_job j = {.c = c, .n = n, .ids = ids, .slots = slots, .payloads = payloads,
                    .payload_lens = payload_lens, .str_ids = str_ids, .replace = replace,
                    .progress = progress, .progress_ctx = progress_ctx,
                    .total = (size_t)hdr.n_slots + n};
    size_t need = estimate_bytes(&q, ix, n, payloads, payload_lens);
    if (str_ids && n) need += 6 * (size_t)str_ids->ends[n - 1] + 96 * n;
    s = vd_storage__write_txn(st, need, import_fill, NULL, &j, err);
    if (s != VD_OK) goto out;
    if (progress) progress(progress_ctx, j.total, j.total);
    /* The store adopts ix. A non-deferred index would publish a later group's changes before
     * its commit, so such an index is reloaded (deferred) before its first write. */
    c->needs_reload = !vd_index_params_of(ix)->deferred_publish;
    vd_index_set_ef_search(ix, q.ef_search);
    vd_index_changes_clear(ix); /* forgets everything: see the note at the top */
    vd_index_publish(ix);
    vd_storage__update_bytes(c);
    vd_storage__catalog_put(st, c, NULL); /* room reserved inside the transaction */
    c = NULL;
out:
    if (c) {
        c->ix = NULL; /* on failure the caller keeps the index */
        vd_collection_release(c);
    }
    vd_free(slots);
    return s;
}

vd_status vd_store_import(vd_store *st, const vd_collection_params *p, vd_index *ix, size_t n,
                          const uint64_t *ids, const uint8_t *const *payloads,
                          const uint32_t *payload_lens, int replace, vd_progress_fn progress,
                          void *progress_ctx, vd_err *err)
{
    return import_any(st, p, ix, n, ids, NULL, payloads, payload_lens, replace, progress,
                      progress_ctx, err);
}

vd_status vd_store_import_str(vd_store *st, const vd_collection_params *p, vd_index *ix,
                              const vd_str_ids *str_ids, const uint8_t *const *payloads,
                              const uint32_t *payload_lens, int replace,
                              vd_progress_fn progress, void *progress_ctx, vd_err *err)
{
    size_t n = str_ids ? str_ids->n : 0;
    uint64_t *keys = vd_malloc((n + 1) * sizeof *keys);
    if (!keys) return vd_err_set(err, VD_NOMEM, "out of memory importing %zu points", n);
    for (size_t i = 0; i < n; i++) keys[i] = i;
    vd_status s = import_any(st, p, ix, n, keys, str_ids ? str_ids : &(vd_str_ids){0},
                             payloads, payload_lens, replace, progress, progress_ctx, err);
    vd_free(keys);
    return s;
}
