/* storage/load.c: a collection from LMDB into a fresh in-memory index, and every collection of
 * the catalog when a store opens.
 *
 * The index is loaded, not rebuilt: two cursors walk the collection's `vectors` and `links`
 * records side by side in slot order (sequential reads of the map; big-endian slot keys make
 * LMDB's order the slot order), and each slot goes to vd_index_load_slot through the codec
 * (vd_storage__slot_load: the vector record's exact length, then the index's own checks of
 * the links record). vd_index_load_finish then validates the whole graph against the
 * catalog's header. Stored bytes are hostile: every mismatch between the two databases, a
 * slot past the header's high-water mark, fewer vector records than points, or a live count
 * other than the catalog's is VD_CORRUPT naming the collection and the slot. Nothing is
 * re-inserted. Indexes are opened with deferred_publish, as the write group needs.
 *
 * What load_finish's publish changes (reachability fixes, repairs of stored tombstones) is
 * not cleared: it stays marked and is persisted by the next write group or the flush at
 * close, so the stored graph is always one the index was in.
 *
 * Loading reads every vector and links record through LMDB's read-only map, and those pages
 * stay mapped into the process: resident memory would count the file on top of the index's
 * own copy. After the open's load, MADV_DONTNEED on the data file's mapping drops only this
 * process's page table entries (the page cache keeps the data; later reads fault it back):
 * 1M x 128 resident 1.4 GB -> 0.72 GB, the index only. */
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "storage/storage_int.h"

/* A new collection object for r with an empty deferred-publish index sized for it. */
static vd_status open_collection(const vd_catalog_rec *r, vd_collection **out, vd_err *err)
{
    vd_collection *c = vd_storage__coll_from_rec(r);
    if (!c) return vd_err_set(err, VD_NOMEM, "out of memory loading collection %s",
                              r->params.name);
    vd_index_params ip = {.dim = r->params.dim, .metric = r->params.metric, .m = r->params.m,
                          .ef_construction = r->params.ef_construction, .seed = r->seed,
                          .capacity_hint = r->hdr.n_slots, .deferred_publish = 1,
                          .quantization = r->params.quantization};
    vd_status s = vd_index_open(&ip, &c->ix, err);
    if (s != VD_OK) {
        vd_collection_release(c);
        vd_err_prefix(err, "collection %s", r->params.name);
        return s;
    }
    vd_index_set_ef_search(c->ix, r->params.ef_search);
    *out = c;
    return VD_OK;
}

#define NO_SLOT UINT64_MAX

/* The slot of the record under a cursor if it belongs to collection cid, else NO_SLOT. */
static uint64_t cursor_slot(int rc, const MDB_val *k, uint32_t cid)
{
    uint32_t slot;
    if (rc == 0 && vd_storage__key_slot_decode(k->mv_data, k->mv_size, cid, &slot)) return slot;
    return NO_SLOT;
}

static void progress_step(vd_load_progress *pr)
{
    if (!pr) return;
    pr->done++;
    if (pr->fn && (pr->done & 0xFFF) == 0) /* every 4096 points: cheap, and live */ pr->fn(pr->ctx, pr->done, pr->total);
}

/* Every (vector, links) pair of r's slots into c's index; *n_loaded counts them. */
static vd_status load_slots(vd_txn *t, vd_collection *c, const vd_catalog_rec *r,
                            vd_load_progress *pr, uint64_t *n_loaded, vd_err *err)
{
    const char *name = r->params.name;
    MDB_cursor *cv = NULL, *cl = NULL;
    float *scratch = vd_malloc((size_t)r->params.dim * sizeof(float));
    vd_status s = VD_OK;
    int rc = 0;
    if (!scratch) return vd_err_set(err, VD_NOMEM, "out of memory loading collection %s", name);
    if ((rc = mdb_cursor_open(t->txn, t->st->dbi[VD_DB_VECTORS], &cv)) ||
        (rc = mdb_cursor_open(t->txn, t->st->dbi[VD_DB_LINKS], &cl)))
        goto fail_mdb;
    uint8_t key0[VD_KEY_SLOT_BYTES];
    vd_storage__key_slot(key0, r->cid, 0);
    MDB_val kv = {sizeof key0, key0}, vv, kl = {sizeof key0, key0}, vl;
    int rv = mdb_cursor_get(cv, &kv, &vv, MDB_SET_RANGE);
    int rl = mdb_cursor_get(cl, &kl, &vl, MDB_SET_RANGE);
    while ((rv == 0 || rv == MDB_NOTFOUND) && (rl == 0 || rl == MDB_NOTFOUND)) {
        uint64_t vs = cursor_slot(rv, &kv, r->cid), ls = cursor_slot(rl, &kl, r->cid);
        if (vs == NO_SLOT && ls == NO_SLOT) break;
        if (vs < ls) {
            s = vd_err_set(err, VD_CORRUPT, "collection %s: slot %" PRIu64 " has a vector "
                           "record but no links record", name, vs);
            goto out;
        }
        if (ls < vs) {
            s = vd_err_set(err, VD_CORRUPT, "collection %s: links record of slot %" PRIu64
                           " has no vector record", name, ls);
            goto out;
        }
        uint32_t slot = (uint32_t)vs;
        if (slot >= r->hdr.n_slots) {
            s = vd_err_set(err, VD_CORRUPT, "collection %s: vector record for slot %u beyond "
                           "the %u slots of the graph header", name, slot, r->hdr.n_slots);
            goto out;
        }
        s = vd_storage__slot_load(c->ix, slot, vv.mv_data, vv.mv_size, vl.mv_data, vl.mv_size,
                                  scratch, err);
        if (s != VD_OK) {
            vd_err_prefix(err, "collection %s: slot %u", name, slot);
            goto out;
        }
        (*n_loaded)++;
        progress_step(pr);
        rv = mdb_cursor_get(cv, &kv, &vv, MDB_NEXT);
        rl = mdb_cursor_get(cl, &kl, &vl, MDB_NEXT);
    }
    rc = rv && rv != MDB_NOTFOUND ? rv : rl && rl != MDB_NOTFOUND ? rl : 0;
    if (rc) goto fail_mdb;
    goto out;
fail_mdb:
    s = vd_storage__txn_fail(t, rc, err, "reading collection");
out:
    if (cv) mdb_cursor_close(cv);
    if (cl) mdb_cursor_close(cl);
    vd_free(scratch);
    return s;
}

/* A string-id collection's bytes of ids, from its sequence record (nothing else of the
 * mapping is loaded: it is read in place, from LMDB, when ids are mapped). */
static vd_status load_str_bytes(vd_txn *t, vd_collection *c, vd_err *err)
{
    vd_sidseq q;
    if (c->params.id_type != VD_ID_STR) return VD_OK;
    vd_status s = vd_storage__sidseq_get(t, c->cid, &c->params, &q, err);
    c->str_id_bytes = q.id_bytes;
    return s;
}

/* ---- payload indexes ---------------------------------------------------------------------- */
vd_status vd_storage__live_load(vd_txn *t, uint32_t cid, roaring_bitmap_t **out, vd_err *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t kb[VD_KEY_POINT_BYTES];
    uint64_t id;
    int rc;
    *out = roaring_bitmap_create();
    if (!*out) return vd_err_set(err, VD_NOMEM, "out of memory loading payload indexes");
    vd_storage__key_point(kb, cid, 0);
    vd_status s = vd_storage__cursor_at(t, VD_DB_POINTS, kb, sizeof kb, &cur, &k, &v, &rc, err);
    while (s == VD_OK && rc == 0 && vd_storage__key_point_decode(k.mv_data, k.mv_size, cid, &id)) {
        vd_point_rec pr;
        if ((s = vd_storage__point_decode(v.mv_data, v.mv_size, &pr, err)) != VD_OK) {
            vd_err_prefix(err, "point %" PRIu64, id);
            break;
        }
        roaring_bitmap_add(*out, pr.slot);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur) mdb_cursor_close(cur);
    if (s == VD_OK && rc && rc != MDB_NOTFOUND) s = vd_storage__txn_fail(t, rc, err, "reading");
    if (s != VD_OK) {
        roaring_bitmap_free(*out);
        *out = NULL;
    }
    return s;
}

vd_status vd_storage__pidx_load(vd_txn *t, const vd_collection_params *p, uint32_t cid,
                                uint32_t no, vd_pindex_kind kind, vd_pidx **out, vd_err *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t kb[VD_KEY_PVAL_BYTES];
    uint32_t slot;
    int rc;
    vd_pidx *x = vd_pidx_new(kind);
    if (!x) return vd_err_set(err, VD_NOMEM, "out of memory loading payload indexes");
    vd_storage__key_pval(kb, cid, no, 0);
    vd_status s = vd_storage__cursor_at(t, VD_DB_PVALUES, kb, sizeof kb, &cur, &k, &v, &rc, err);
    while (s == VD_OK && rc == 0 &&
           vd_storage__key_pval_decode(k.mv_data, k.mv_size, cid, no, &slot)) {
        vd_pvals r;
        if ((s = vd_storage__pvals_decode(v.mv_data, v.mv_size, kind, &r, err)) == VD_OK)
            s = vd_pidx_load_add(x, slot, &r, err);
        else
            vd_err_prefix(err, "collection %s: payload index %u, slot %u", p->name, no, slot);
        if (s == VD_OK) rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur) mdb_cursor_close(cur);
    if (s == VD_OK && rc && rc != MDB_NOTFOUND) s = vd_storage__txn_fail(t, rc, err, "reading");
    if (s == VD_OK) s = vd_pidx_load_finish(x, err);
    if (s != VD_OK) {
        vd_pidx_free(x);
        return s;
    }
    *out = x;
    return VD_OK;
}

/* One definition record into a new vd_pdef (its postings loaded when it is ready). */
static vd_status load_pdef(vd_txn *t, vd_collection *c, uint32_t no, const MDB_val *v,
                           vd_pdef **out, vd_err *err)
{
    vd_pdef_rec r;
    vd_status s = vd_storage__pdef_decode(v->mv_data, v->mv_size, &r, err);
    if (s != VD_OK) {
        vd_err_prefix(err, "collection %s: payload index %u", c->params.name, no);
        return s;
    }
    vd_pdef *d = vd_calloc(1, sizeof *d);
    if (!d) return vd_err_set(err, VD_NOMEM, "out of memory loading payload indexes");
    d->no = no;
    d->kind = r.kind;
    d->ready = r.ready;
    d->resume = r.resume;
    d->scanned = r.scanned;
    d->end = r.end;
    memcpy(d->path, r.path, r.path_len);
    d->path_len = r.path_len;
    if (d->ready && (s = vd_storage__pidx_load(t, &c->params, c->cid, no, d->kind, &d->idx,
                                               err)) != VD_OK) {
        vd_free(d);
        return s;
    }
    *out = d;
    return VD_OK;
}

/* Every payload index of c (none: no pset), and the live slots when there is one. */
static vd_status load_pindexes(vd_txn *t, vd_collection *c, vd_err *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t kb[VD_KEY_PDEF_BYTES];
    uint32_t no;
    int rc;
    vd_storage__key_pdef(kb, c->cid, 0);
    vd_status s = vd_storage__cursor_at(t, VD_DB_PINDEXES, kb, sizeof kb, &cur, &k, &v, &rc, err);
    while (s == VD_OK && rc == 0 && vd_storage__key_pdef_decode(k.mv_data, k.mv_size, c->cid,
                                                                &no)) {
        vd_pdef *d = NULL;
        if (!c->pset && !(c->pset = vd_pset_new()))
            s = vd_err_set(err, VD_NOMEM, "out of memory loading payload indexes");
        else if (c->pset->n == VD_FILTER_MAX_PINDEXES)
            s = vd_err_set(err, VD_CORRUPT, "collection %s has more than %d payload indexes",
                           c->params.name, VD_FILTER_MAX_PINDEXES);
        else if ((s = load_pdef(t, c, no, &v, &d, err)) == VD_OK)
            c->pset->defs[c->pset->n++] = d;
        if (s == VD_OK) rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur) mdb_cursor_close(cur);
    if (s == VD_OK && rc && rc != MDB_NOTFOUND) s = vd_storage__txn_fail(t, rc, err, "reading");
    if (s == VD_OK && c->pset) {
        roaring_bitmap_free(c->pset->live);
        c->pset->live = NULL;
        s = vd_storage__live_load(t, c->cid, &c->pset->live, err);
        if (s != VD_OK) vd_err_prefix(err, "collection %s", c->params.name);
    }
    return s;
}

vd_status vd_storage__load(vd_txn *t, const vd_catalog_rec *r, vd_load_progress *progress,
                           vd_collection **out, vd_err *err)
{
    vd_collection *c = NULL;
    const char *name = r->params.name;
    uint64_t n_loaded = 0;
    *out = NULL;
    vd_status s = open_collection(r, &c, err);
    if (s != VD_OK) return s;
    if ((s = load_str_bytes(t, c, err)) != VD_OK) goto fail;
    if ((s = load_slots(t, c, r, progress, &n_loaded, err)) != VD_OK) goto fail;
    if (n_loaded < r->count) {
        s = vd_err_set(err, VD_CORRUPT, "collection %s: %" PRIu64 " vector records for %"
                       PRIu64 " points", name, n_loaded, r->count);
        goto fail;
    }
    s = vd_index_load_finish(c->ix, &r->hdr, err);
    if (s != VD_OK) {
        if (s != VD_NOMEM) s = VD_CORRUPT;
        vd_err_prefix(err, "collection %s", name);
        if (err) err->code = s;
        goto fail;
    }
    if (vd_index_count(c->ix) != r->count) {
        s = vd_err_set(err, VD_CORRUPT, "collection %s: the graph holds %zu live points, the "
                       "catalog counts %" PRIu64, name, vd_index_count(c->ix), r->count);
        goto fail;
    }
    if ((s = load_pindexes(t, c, err)) != VD_OK) goto fail;
    vd_storage__update_bytes(c); /* no changes_clear: see the note at the top */
    *out = c;
    return VD_OK;
fail:
    vd_collection_release(c);
    return s;
}

/* ---- every collection at open ------------------------------------------------------------ */
/* Drops this process's mappings of the data file's pages (see the note at the top). LMDB
 * does not tell where its map is (me_mapaddr is for fixed maps only), so the mapping of the
 * data file's inode is looked up in /proc/self/maps. Best effort: nothing fails without it.
 * Called before any other thread uses the environment. */
static void unmap_loaded_pages(vd_store *st)
{
    int fd;
    struct stat sb;
    if (mdb_env_get_fd(st->env, &fd) || fstat(fd, &sb)) return;
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi, ino;
        unsigned dev_major, dev_minor;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %*s %x:%x %lu", &lo, &hi, perms, &dev_major, &dev_minor,
                   &ino) == 6 &&
            ino == (unsigned long)sb.st_ino && dev_major == major(sb.st_dev) &&
            dev_minor == minor(sb.st_dev) && perms[1] == '-' && perms[3] == 's')
            madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    if (f) fclose(f);
}

/* One pass over the catalog: counting slots (load == 0) or loading into the catalog. */
static vd_status catalog_pass(vd_txn *t, const vd_store_options *opt, int load,
                              vd_load_progress *pr, vd_err *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    vd_status s = VD_OK;
    int rc = mdb_cursor_open(t->txn, t->st->dbi[VD_DB_CATALOG], &cur);
    if (rc) return vd_storage__txn_fail(t, rc, err, "reading the catalog");
    while (s == VD_OK && (rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        vd_catalog_rec r;
        vd_collection *c = NULL;
        if ((s = vd_storage__catalog_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &r,
                                            err)) != VD_OK) {
            vd_err_prefix(err, "%s", t->st->dir);
            break;
        }
        if (!load) {
            pr->total += r.hdr.n_slots;
            continue;
        }
        if (opt->catalog_only) {
            if (!(c = vd_storage__coll_from_rec(&r)))
                s = vd_err_set(err, VD_NOMEM, "out of memory reading the catalog");
            else if ((s = load_str_bytes(t, c, err)) == VD_OK)
                vd_storage__update_bytes(c);
        } else {
            s = vd_storage__load(t, &r, pr, &c, err);
        }
        if (s != VD_OK || (s = vd_storage__catalog_put(t->st, c, err)) != VD_OK)
            vd_collection_release(c);
    }
    mdb_cursor_close(cur);
    if (s == VD_OK && rc != MDB_NOTFOUND)
        s = vd_storage__txn_fail(t, rc, err, "reading the catalog");
    return s;
}

vd_status vd_storage__load_all(vd_store *st, const vd_store_options *opt, vd_err *err)
{
    vd_txn t;
    vd_load_progress pr = {.fn = opt->load_progress, .ctx = opt->load_progress_ctx};
    vd_status s = vd_storage__read_begin(st, &t, err, "reading the catalog");
    if (s != VD_OK) return s;
    if ((s = catalog_pass(&t, opt, 0, &pr, err)) == VD_OK && pr.fn)
        pr.fn(pr.ctx, 0, pr.total); /* the total, before the first point */
    if (s == VD_OK && (s = catalog_pass(&t, opt, 1, &pr, err)) == VD_OK && pr.fn)
        pr.fn(pr.ctx, pr.done, pr.total);
    vd_storage__read_end(&t);
    if (s == VD_OK && !opt->catalog_only) unmap_loaded_pages(st);
    return s;
}
