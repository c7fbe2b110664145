/* storage/catalog.c: the collections in memory: reference-counted collection objects and the
 * store's sorted list of the live ones (vd_store_acquire, vd_store_list, info).
 *
 * Layout: st->colls is an array of pointers sorted by name (binary search; a daemon holds
 * few collections, so a hash table would buy nothing). Each object carries what readers need
 * (params, index, created time, the bytes_disk estimate) and the writer's committed counts.
 *
 * Lifetimes: the catalog holds one reference to each entry, every acquirer one more; the
 * last release closes the index. So a search holding a collection keeps it alive through a
 * concurrent drop, and a reload swaps a fresh object in while readers finish on the old one.
 *
 * Locks: cat_mu guards the array only: it is held to look up, insert or swap an entry, never
 * while searching or doing I/O, and never together with the reader gate. Only the writer
 * edits the list; it reserves room before a commit (vd_storage__catalog_reserve) so that
 * making a committed collection visible cannot fail. */
#include <stdio.h>

#include "storage/storage_int.h"

vd_collection *vd_storage__coll_new(void)
{
    vd_collection *c = vd_calloc(1, sizeof *c);
    if (!c) return NULL;
    atomic_init(&c->refs, 1);
    atomic_init(&c->committing, 0);
    atomic_init(&c->retired, 0);
    /* Writer-preferring: a steady stream of filtered searches must not keep a commit from
     * becoming visible; readers never take it twice (no recursion to deadlock). */
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&c->flock, &a);
    pthread_rwlockattr_destroy(&a);
    if (rc) {
        vd_free(c);
        return NULL;
    }
    return c;
}

vd_collection *vd_storage__coll_from_rec(const vd_catalog_rec *r)
{
    vd_collection *c = vd_storage__coll_new();
    if (!c) return NULL;
    c->cid = r->cid;
    c->params = r->params;
    c->created_unix_s = r->created_unix_s;
    c->seed = r->seed;
    c->count = r->count;
    c->payload_bytes = r->payload_bytes;
    return c;
}

void vd_storage__coll_ref(vd_collection *c) { atomic_fetch_add(&c->refs, 1); }

void vd_collection_release(vd_collection *c)
{
    if (!c) return;
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    vd_index_close(c->ix);
    vd_pset_free(c->pset);
    pthread_rwlock_destroy(&c->flock);
    vd_free(c);
}

vd_index *vd_collection_index(const vd_collection *c) { return c->ix; }

const vd_collection_params *vd_collection_params_of(const vd_collection *c)
{
    return &c->params;
}

uint32_t vd_collection_id(const vd_collection *c) { return c->cid; }

void vd_storage__update_bytes(vd_collection *c)
{
    /* vectors record + its key, links bytes as the index counts them (without an index: a
     * level-0 list about 1.5 m long), points record + key, plus LMDB's per-node header on
     * each of the three records. */
    uint64_t links = c->count * (4 + 4 + 6 * (uint64_t)c->params.m);
    if (c->ix) {
        vd_index_stats s;
        vd_index_stats_get(c->ix, &s);
        links = s.bytes_links;
    }
    uint64_t per_point = 8 + 8 + (uint64_t)c->params.dim * 4 + 12 + 4 + 3 * 8 + 8;
    uint64_t b = c->count * per_point + c->payload_bytes + links;
    /* String ids: each id twice (a sids key, a skeys value), a key in each record, two more
     * LMDB node headers. */
    if (c->params.id_type == VD_ID_STR)
        b += 2 * c->str_id_bytes + c->count * (4 + 8 + 12 + 2 * 8);
    atomic_store(&c->bytes_disk, b);
}

/* The payload indexes, under the filter lock: the writer changes them only with it held. */
static void pindex_infos(vd_collection *c, vd_collection_info *out)
{
    pthread_rwlock_rdlock(&c->flock);
    for (size_t i = 0; c->pset && i < c->pset->n && i < VD_FILTER_MAX_PINDEXES; i++) {
        const vd_pdef *d = c->pset->defs[i];
        vd_pindex_info *p = &out->pindexes[out->n_pindexes++];
        memcpy(p->field, d->path, d->path_len);
        p->field[d->path_len] = 0;
        p->kind = d->kind;
        p->building = !d->ready;
        p->points = d->idx ? vd_pidx_points(d->idx) : d->scanned;
        p->bytes_memory = d->idx ? vd_pidx_bytes(d->idx) : 0;
    }
    pthread_rwlock_unlock(&c->flock);
}

void vd_collection_info_get(const vd_collection *c, vd_collection_info *out)
{
    memset(out, 0, sizeof *out);
    out->params = c->params;
    out->created_unix_s = c->created_unix_s;
    out->bytes_disk = atomic_load(&((vd_collection *)c)->bytes_disk);
    if (!c->ix) { /* catalog-only open: no writer, the stored count is the count */
        out->count = c->count;
        return;
    }
    vd_index_stats s;
    vd_index_stats_get(c->ix, &s);
    out->count = vd_index_count(c->ix);
    out->bytes_memory = s.bytes_total;
    pindex_infos((vd_collection *)c, out);
}

/* ---- the sorted list --------------------------------------------------------------------- */
static size_t cat_pos(vd_store *st, const char *name, int *found)
{
    size_t lo = 0, hi = st->n_colls;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(st->colls[mid]->params.name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = 0;
    return lo;
}

/* Room for `extra` more entries; cat_mu held. */
static int reserve_locked(vd_store *st, size_t extra)
{
    if (st->n_colls + extra <= st->cap_colls) return 1;
    size_t cap = st->cap_colls ? st->cap_colls : 8;
    while (cap < st->n_colls + extra) cap *= 2;
    vd_collection **a = vd_realloc(st->colls, cap * sizeof *a);
    if (!a) return 0;
    st->colls = a;
    st->cap_colls = cap;
    return 1;
}

vd_status vd_storage__catalog_reserve(vd_store *st, size_t extra, vd_err *err)
{
    pthread_mutex_lock(&st->cat_mu);
    int ok = reserve_locked(st, extra);
    pthread_mutex_unlock(&st->cat_mu);
    return ok ? VD_OK : vd_err_set(err, VD_NOMEM, "out of memory growing the catalog");
}

vd_collection *vd_storage__catalog_find(vd_store *st, const char *name)
{
    vd_collection *c = NULL;
    int found;
    pthread_mutex_lock(&st->cat_mu);
    size_t i = cat_pos(st, name, &found);
    if (found) {
        c = st->colls[i];
        vd_storage__coll_ref(c);
    }
    pthread_mutex_unlock(&st->cat_mu);
    return c;
}

vd_status vd_storage__catalog_put(vd_store *st, vd_collection *c, vd_err *err)
{
    vd_collection *old = NULL;
    int found;
    pthread_mutex_lock(&st->cat_mu);
    size_t i = cat_pos(st, c->params.name, &found);
    if (found) {
        old = st->colls[i];
        st->colls[i] = c;
    } else {
        if (!reserve_locked(st, 1)) {
            pthread_mutex_unlock(&st->cat_mu);
            return vd_err_set(err, VD_NOMEM, "out of memory growing the catalog");
        }
        memmove(st->colls + i + 1, st->colls + i, (st->n_colls - i) * sizeof *st->colls);
        st->colls[i] = c;
        st->n_colls++;
    }
    pthread_mutex_unlock(&st->cat_mu);
    vd_collection_release(old);
    return VD_OK;
}

void vd_storage__catalog_remove(vd_store *st, vd_collection *c)
{
    int found;
    vd_collection *old = NULL;
    pthread_mutex_lock(&st->cat_mu);
    size_t i = cat_pos(st, c->params.name, &found);
    if (found && st->colls[i] == c) {
        old = c;
        memmove(st->colls + i, st->colls + i + 1, (st->n_colls - i - 1) * sizeof *st->colls);
        st->n_colls--;
    }
    pthread_mutex_unlock(&st->cat_mu);
    vd_collection_release(old);
}

void vd_storage__catalog_clear(vd_store *st)
{
    for (size_t i = 0; i < st->n_colls; i++) vd_collection_release(st->colls[i]);
    vd_free(st->colls);
    st->colls = NULL;
    st->n_colls = st->cap_colls = 0;
}

/* ---- public lookups ---------------------------------------------------------------------- */
vd_status vd_store_acquire(vd_store *st, const char *name, vd_collection **out, vd_err *err)
{
    *out = NULL;
    if (!name) return vd_err_set(err, VD_INVALID, "collection name is missing");
    vd_collection *c = vd_storage__catalog_find(st, name);
    if (!c) return vd_err_set(err, VD_NOTFOUND, "collection %s does not exist", name);
    *out = c;
    return VD_OK;
}

vd_status vd_store_list(vd_store *st, vd_collection_info **out, size_t *n_out, vd_err *err)
{
    *out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&st->cat_mu);
    size_t n = st->n_colls;
    vd_collection **refs = vd_malloc((n ? n : 1) * sizeof *refs);
    if (refs) {
        for (size_t i = 0; i < n; i++) {
            refs[i] = st->colls[i];
            vd_storage__coll_ref(refs[i]);
        }
    }
    pthread_mutex_unlock(&st->cat_mu);
    if (!refs) return vd_err_set(err, VD_NOMEM, "out of memory listing collections");
    vd_collection_info *a = vd_calloc(n ? n : 1, sizeof *a);
    for (size_t i = 0; i < n; i++) {
        if (a) vd_collection_info_get(refs[i], &a[i]);
        vd_collection_release(refs[i]);
    }
    vd_free(refs);
    if (!a) return vd_err_set(err, VD_NOMEM, "out of memory listing collections");
    *out = a;
    *n_out = n;
    return VD_OK;
}
