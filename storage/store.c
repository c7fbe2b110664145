/* storage/store.c: the data directory: opening the LMDB environment, refusing what is not
 * ours, loading every collection into its in-memory index, the collections catalog, read
 * snapshots and map growth.
 *
 * Layout: one LMDB environment per directory (DIR/data.mdb + DIR/lock.mdb) with five named
 * databases (storage_int.h lists the records). Collections share the databases and are told
 * apart by a 4-byte big-endian collection id prefix, so any number of collections fit in a
 * fixed, small maxdbs; a collection is one contiguous key range in each database.
 *
 * Opening: before LMDB maps data.mdb we read its two meta pages ourselves (precheck): random
 * bytes, a foreign format or a truncated file are refused with VD_CORRUPT without LMDB ever
 * touching them (LMDB would fault on pages missing past the end of a truncated file). Then
 * the "meta" database must carry our magic (else VD_CORRUPT: a foreign LMDB) and a format
 * version we know (else VD_VERSION). Both checks run in a read transaction, before anything is
 * written, so a refused directory is left byte for byte as it was. read_only opens
 * (info, check) use MDB_RDONLY, and MDB_NOLOCK when lock.mdb is absent (nobody has the
 * environment open then), so they create nothing.
 *
 * Loading: for each catalog record, two cursors walk `vectors` and `links` of the collection
 * in slot order (sequential reads of the map) and hand each slot to vd_index_load_slot, then
 * vd_index_load_finish validates the graph. Nothing is re-inserted.
 *
 * Threads and locks:
 *  - cat_mu guards the sorted array of live collections; held only to look up or swap an
 *    entry, never while searching or doing I/O. Collections are reference counted: the
 *    catalog holds one reference, each acquirer one more; the last release closes the index.
 *  - gate_mu/gate_cv: a reader gate around every read transaction of this process, because
 *    mdb_env_set_mapsize() requires that no transaction is alive in the process. The writer
 *    sets `resizing`, waits for the count to drain, resizes, and lets readers in again.
 *    Lock order: gate_mu and cat_mu are never held together.
 *
 * Map size: LMDB reserves address space, not disk, so the map starts at max(256 MiB, 2x the
 * file) and grows by doubling (write.c grows ahead of a group from an estimate, and after
 * MDB_MAP_FULL as a fallback). Rejected: a fixed huge map (readers in other processes - backup,
 * info - would map the same size, and the design asks for growth), MDB_WRITEMAP (it
 * ftruncates the file to the map size and lets stray writes corrupt the map). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage_int.h"

#define MIB ((size_t)1 << 20)
#define DEFAULT_MAP (256 * MIB)

size_t vd_storage__test_initial_map = 0;
int vd_storage__pregrow = 1;
_Atomic long vd_storage__n_grows = 0;
_Atomic long vd_storage__n_retries = 0;

/* ---- errors ------------------------------------------------------------------------------ */
vd_status vd_storage__mdb_status(int rc)
{
    switch (rc) {
    case 0: return VD_OK;
    case ENOMEM: return VD_NOMEM;
    case ENOSPC: case EFBIG: case EDQUOT: case MDB_MAP_FULL: case MDB_TXN_FULL:
        return VD_FULL;
    case MDB_INVALID: case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_BAD_VALSIZE:
        return VD_CORRUPT;
    case MDB_VERSION_MISMATCH: return VD_VERSION;
    case MDB_NOTFOUND: case ENOENT: return VD_NOTFOUND;
    case EACCES: case EROFS: case EAGAIN: case MDB_READERS_FULL: return VD_UNAVAILABLE;
    default: return VD_IO;
    }
}

vd_status vd_storage__mdb_err(vd_store *st, int rc, vd_err *err, const char *what)
{
    vd_status s = vd_storage__mdb_status(rc);
    const char *dir = st ? st->dir : "?";
    if (rc == ENOSPC || rc == EFBIG || rc == EDQUOT)
        return vd_err_set(err, s, "%s: disk full in %s (%s); nothing of this write was "
                                  "committed", what, dir, mdb_strerror(rc));
    if (rc == MDB_PANIC)
        return vd_err_set(err, VD_IO, "%s: the LMDB environment in %s failed earlier and "
                                      "must be reopened (restart vectord)", what, dir);
    return vd_err_set(err, s, "%s in %s: %s", what, dir, mdb_strerror(rc));
}

/* ---- catalog records --------------------------------------------------------------------- */
void vd_storage__catalog_encode(const vd_catalog_rec *r, uint8_t out[VD_CATALOG_REC_BYTES])
{
    memset(out, 0, VD_CATALOG_REC_BYTES);
    vd_put_u32le(out + 0, VD_CATALOG_REC_VERSION);
    vd_put_u32le(out + 4, r->cid);
    vd_put_u32le(out + 8, r->params.dim);
    vd_put_u32le(out + 12, (uint32_t)r->params.metric);
    vd_put_u32le(out + 16, r->params.m);
    vd_put_u32le(out + 20, r->params.ef_construction);
    vd_put_u32le(out + 24, r->params.ef_search);
    vd_put_u32le(out + 28, r->hdr.entry_slot);
    vd_put_u32le(out + 32, r->hdr.max_level);
    vd_put_u32le(out + 36, r->hdr.n_slots);
    vd_put_u64le(out + 40, r->created_unix_s);
    vd_put_u64le(out + 48, r->count);
    vd_put_u64le(out + 56, r->payload_bytes);
    vd_put_u64le(out + 64, r->seed);
}

vd_status vd_storage__catalog_decode(const char *name, size_t name_len, const uint8_t *p,
                                     size_t n, vd_catalog_rec *r, vd_err *err)
{
    memset(r, 0, sizeof *r);
    if (name_len == 0 || name_len > VD_NAME_MAX)
        return vd_err_set(err, VD_CORRUPT, "catalog key of %zu bytes is not a collection name",
                          name_len);
    memcpy(r->params.name, name, name_len);
    r->params.name[name_len] = 0;
    if (vd_name_check(r->params.name, NULL) != VD_OK)
        return vd_err_set(err, VD_CORRUPT, "catalog key is not a valid collection name");
    if (n != VD_CATALOG_REC_BYTES || vd_get_u32le(p) != VD_CATALOG_REC_VERSION)
        return vd_err_set(err, VD_CORRUPT, "catalog record of collection %s is malformed "
                                           "(%zu bytes)", r->params.name, n);
    r->cid = vd_get_u32le(p + 4);
    r->params.dim = vd_get_u32le(p + 8);
    r->params.metric = (vd_metric)vd_get_u32le(p + 12);
    r->params.m = vd_get_u32le(p + 16);
    r->params.ef_construction = vd_get_u32le(p + 20);
    r->params.ef_search = vd_get_u32le(p + 24);
    r->hdr.entry_slot = vd_get_u32le(p + 28);
    r->hdr.max_level = vd_get_u32le(p + 32);
    r->hdr.n_slots = vd_get_u32le(p + 36);
    r->created_unix_s = vd_get_u64le(p + 40);
    r->count = vd_get_u64le(p + 48);
    r->payload_bytes = vd_get_u64le(p + 56);
    r->seed = vd_get_u64le(p + 64);
    vd_collection_params q = r->params;
    vd_err e2;
    if (vd_storage__params_check(&q, &e2) != VD_OK || q.m != r->params.m ||
        q.ef_construction != r->params.ef_construction || q.ef_search != r->params.ef_search)
        return vd_err_set(err, VD_CORRUPT, "catalog record of collection %s has invalid "
                                           "parameters", r->params.name);
    if (r->count > r->hdr.n_slots)
        return vd_err_set(err, VD_CORRUPT, "catalog record of collection %s counts %" PRIu64
                          " points in %u slots", r->params.name, r->count, r->hdr.n_slots);
    return VD_OK;
}

vd_status vd_storage__params_check(vd_collection_params *p, vd_err *err)
{
    vd_status s = vd_name_check(p->name, err);
    if (s != VD_OK) return s;
    vd_index_params ip = {.dim = p->dim, .metric = p->metric, .m = p->m,
                          .ef_construction = p->ef_construction};
    if ((s = vd_index_params_check(&ip, err)) != VD_OK ||
        (s = vd_param_resolve(VD_PARAM_EF_SEARCH, p->ef_search, &p->ef_search, err)) != VD_OK)
        return vd_err_prefix(err, "collection %s", p->name);
    p->m = ip.m;
    p->ef_construction = ip.ef_construction;
    return VD_OK;
}

/* ---- precheck of data.mdb ----------------------------------------------------------------
 * LMDB 0.9 on 64-bit: each meta page is a 16-byte page header, then MDB_meta: magic u32,
 * version u32, address, mapsize, two 48-byte MDB_db (the first one's md_pad is the page
 * size; the second is the main DB with its root at +40), last_pg u64, txnid u64. */
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_DATA_VERSION 1u

typedef struct lmdb_meta {
    uint32_t psize;
    uint64_t last_pg, txnid, main_root;
} lmdb_meta;

static int parse_meta(const uint8_t *pg, lmdb_meta *m)
{
    const uint8_t *mm = pg + 16;
    if (vd_get_u32le(mm) != LMDB_MAGIC || vd_get_u32le(mm + 4) != LMDB_DATA_VERSION) return 0;
    if ((pg[10] & 0x08) == 0) return 0; /* mp_flags & P_META */
    m->psize = vd_get_u32le(mm + 24);
    m->main_root = vd_get_u64le(mm + 24 + 48 + 40);
    m->last_pg = vd_get_u64le(mm + 120);
    m->txnid = vd_get_u64le(mm + 128);
    return 1;
}

vd_status vd_storage__precheck_file(const char *path, vd_err *err)
{
    uint8_t pg[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return vd_err_set(err, VD_NOTFOUND, "%s does not exist", path);
        return vd_err_set(err, VD_UNAVAILABLE, "cannot read %s: %s", path, strerror(errno));
    }
    vd_status s = VD_OK;
    struct stat sb;
    lmdb_meta m0, m1;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        s = vd_err_set(err, VD_CORRUPT, "%s is not a regular file", path);
        goto out;
    }
    if (pread(fd, pg, sizeof pg, 0) != (ssize_t)sizeof pg || !parse_meta(pg, &m0)) {
        s = vd_err_set(err, VD_CORRUPT, "%s is not an LMDB data file of a vectord data "
                                        "directory (bad or missing header)", path);
        goto out;
    }
    if (m0.psize < 512 || m0.psize > 65536 || (m0.psize & (m0.psize - 1))) {
        s = vd_err_set(err, VD_CORRUPT, "%s: invalid page size %u in the LMDB header", path,
                       m0.psize);
        goto out;
    }
    if (pread(fd, pg, sizeof pg, m0.psize) != (ssize_t)sizeof pg || !parse_meta(pg, &m1) ||
        m1.psize != m0.psize) {
        s = vd_err_set(err, VD_CORRUPT, "%s: the second LMDB meta page is damaged or missing",
                       path);
        goto out;
    }
    const lmdb_meta *m = m1.txnid > m0.txnid ? &m1 : &m0;
    uint64_t need = (m->last_pg + 1) * (uint64_t)m->psize;
    if ((uint64_t)sb.st_size < need) {
        s = vd_err_set(err, VD_CORRUPT, "%s is truncated: %lld bytes, the last committed "
                       "transaction needs %" PRIu64, path, (long long)sb.st_size, need);
        goto out;
    }
    if (m->main_root != UINT64_MAX && m->main_root > m->last_pg) {
        s = vd_err_set(err, VD_CORRUPT, "%s: main database root page %" PRIu64 " is past "
                       "the last page %" PRIu64, path, m->main_root, m->last_pg);
        goto out;
    }
out:
    close(fd);
    return s;
}

/* ---- reader gate and map growth ---------------------------------------------------------- */
void vd_storage__gate_enter(vd_store *st)
{
    pthread_mutex_lock(&st->gate_mu);
    while (st->resizing) pthread_cond_wait(&st->gate_cv, &st->gate_mu);
    st->n_readers++;
    pthread_mutex_unlock(&st->gate_mu);
}

void vd_storage__gate_leave(vd_store *st)
{
    pthread_mutex_lock(&st->gate_mu);
    if (--st->n_readers == 0) pthread_cond_broadcast(&st->gate_cv);
    pthread_mutex_unlock(&st->gate_mu);
}

/* Exclusive section: no read transaction of this process is alive inside. */
static void gate_lock(vd_store *st)
{
    pthread_mutex_lock(&st->gate_mu);
    while (st->resizing) pthread_cond_wait(&st->gate_cv, &st->gate_mu);
    st->resizing = 1;
    while (st->n_readers > 0) pthread_cond_wait(&st->gate_cv, &st->gate_mu);
}

static void gate_unlock(vd_store *st)
{
    st->resizing = 0;
    pthread_cond_broadcast(&st->gate_cv);
    pthread_mutex_unlock(&st->gate_mu);
}

int vd_storage__read_begin(vd_store *st, MDB_txn **out)
{
    for (int attempt = 0;; attempt++) {
        vd_storage__gate_enter(st);
        int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, out);
        if (rc == 0) return 0;
        vd_storage__gate_leave(st);
        if (rc != MDB_MAP_RESIZED || attempt > 3) return rc;
        /* Another process grew the map: adopt its size (no txn of ours may be alive). */
        gate_lock(st);
        rc = mdb_env_set_mapsize(st->env, 0);
        if (rc == 0) {
            MDB_envinfo ei;
            mdb_env_info(st->env, &ei);
            st->map_bytes = ei.me_mapsize;
        }
        gate_unlock(st);
        if (rc) return rc;
    }
}

void vd_storage__read_end(vd_store *st, MDB_txn *txn)
{
    if (!txn) return;
    mdb_txn_abort(txn);
    vd_storage__gate_leave(st);
}

size_t vd_storage__used_bytes(vd_store *st)
{
    MDB_envinfo ei;
    MDB_stat ms;
    mdb_env_info(st->env, &ei);
    mdb_env_stat(st->env, &ms);
    return (ei.me_last_pgno + 1) * (size_t)ms.ms_psize;
}

vd_status vd_storage__grow(vd_store *st, size_t need_bytes, vd_err *err)
{
    size_t used = vd_storage__used_bytes(st);
    gate_lock(st);
    size_t cur = st->map_bytes;
    size_t target = cur * 2;
    if (target < used + 2 * need_bytes) target = used + 2 * need_bytes;
    target = (target + MIB - 1) / MIB * MIB;
    int rc = mdb_env_set_mapsize(st->env, target);
    if (rc == 0) st->map_bytes = target;
    gate_unlock(st);
    if (rc) return vd_storage__mdb_err(st, rc, err, "growing the LMDB map");
    atomic_fetch_add(&vd_storage__n_grows, 1);
    vd_log(VD_LOG_INFO, "storage: map of %s grown from %zu to %zu MiB", st->dir, cur / MIB,
           target / MIB);
    return VD_OK;
}

uint8_t *vd_storage__scratch(vd_store *st, size_t n)
{
    if (n <= st->buf_cap) return st->buf;
    size_t cap = st->buf_cap ? st->buf_cap : 4096;
    while (cap < n) cap *= 2;
    uint8_t *b = vd_realloc(st->buf, cap);
    if (!b) return NULL;
    st->buf = b;
    st->buf_cap = cap;
    return b;
}

/* ---- collections ------------------------------------------------------------------------- */
vd_collection *vd_storage__coll_new(void)
{
    vd_collection *c = vd_calloc(1, sizeof *c);
    if (c) atomic_init(&c->refs, 1);
    return c;
}

void vd_storage__coll_ref(vd_collection *c) { atomic_fetch_add(&c->refs, 1); }

void vd_collection_release(vd_collection *c)
{
    if (!c) return;
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    vd_index_close(c->ix);
    vd_free(c);
}

vd_index *vd_collection_index(const vd_collection *c) { return c->ix; }
const vd_collection_params *vd_collection_params_of(const vd_collection *c)
{
    return &c->params;
}

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
    atomic_store(&c->bytes_disk, b);
}

void vd_collection_info_get(const vd_collection *c, vd_collection_info *out)
{
    memset(out, 0, sizeof *out);
    out->params = c->params;
    out->created_unix_s = c->created_unix_s;
    out->bytes_disk = atomic_load(&((vd_collection *)c)->bytes_disk);
    if (!c->ix) { /* catalog-only open */
        out->count = c->count;
        return;
    }
    vd_index_stats s;
    vd_index_stats_get(c->ix, &s);
    out->count = vd_index_count(c->ix);
    out->bytes_memory = s.bytes_total;
}

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
        if (st->n_colls == st->cap_colls) {
            size_t cap = st->cap_colls ? st->cap_colls * 2 : 8;
            vd_collection **a = vd_realloc(st->colls, cap * sizeof *a);
            if (!a) {
                pthread_mutex_unlock(&st->cat_mu);
                return vd_err_set(err, VD_NOMEM, "out of memory growing the catalog");
            }
            st->colls = a;
            st->cap_colls = cap;
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

/* ---- loading ----------------------------------------------------------------------------- */
static int prefix_is(const MDB_val *k, uint32_t cid)
{
    return k->mv_size == 8 && vd_get_u32be(k->mv_data) == cid;
}

vd_status vd_storage__load(vd_store *st, MDB_txn *txn, const vd_catalog_rec *r,
                           size_t *progress_done, size_t progress_total,
                           const vd_store_options *opt, vd_collection **out, vd_err *err)
{
    vd_collection *c = NULL;
    MDB_cursor *cv = NULL, *cl = NULL;
    float *aligned = NULL;
    vd_status s = VD_OK;
    int rc = 0;
    const char *name = r->params.name;
    *out = NULL;

    c = vd_storage__coll_new();
    if (!c) {
        s = vd_err_set(err, VD_NOMEM, "out of memory loading collection %s", name);
        goto fail;
    }
    c->cid = r->cid;
    c->params = r->params;
    c->created_unix_s = r->created_unix_s;
    c->seed = r->seed;
    c->count = r->count;
    c->payload_bytes = r->payload_bytes;
    vd_index_params ip = {.dim = r->params.dim, .metric = r->params.metric, .m = r->params.m,
                          .ef_construction = r->params.ef_construction, .seed = r->seed,
                          .capacity_hint = r->hdr.n_slots, .deferred_publish = 1};
    s = vd_index_open(&ip, &c->ix, err);
    if (s != VD_OK) goto fail_prefix;
    vd_index_set_ef_search(c->ix, r->params.ef_search);
    aligned = vd_malloc((size_t)r->params.dim * sizeof(float));
    if (!aligned) {
        s = vd_err_set(err, VD_NOMEM, "out of memory loading collection %s", name);
        goto fail;
    }
    if ((rc = mdb_cursor_open(txn, st->dbi_vectors, &cv)) ||
        (rc = mdb_cursor_open(txn, st->dbi_links, &cl)))
        goto fail_mdb;

    uint8_t key0[8];
    vd_key_slot(key0, r->cid, 0);
    MDB_val kv = {8, key0}, vv, kl = {8, key0}, vl;
    int rv = mdb_cursor_get(cv, &kv, &vv, MDB_SET_RANGE);
    int rl = mdb_cursor_get(cl, &kl, &vl, MDB_SET_RANGE);
    size_t vec_bytes = (size_t)r->params.dim * sizeof(float);
    uint64_t n_loaded = 0;
    while (rv == 0 && prefix_is(&kv, r->cid)) {
        uint32_t slot = vd_get_u32be((uint8_t *)kv.mv_data + 4);
        if (slot >= r->hdr.n_slots) {
            s = vd_err_set(err, VD_CORRUPT, "collection %s: vector record for slot %u beyond "
                           "the %u slots of the graph header", name, slot, r->hdr.n_slots);
            goto fail;
        }
        if (vv.mv_size != 8 + vec_bytes) {
            s = vd_err_set(err, VD_CORRUPT, "collection %s: vector record of slot %u has %zu "
                           "bytes, expected %zu", name, slot, vv.mv_size, 8 + vec_bytes);
            goto fail;
        }
        if (rl != 0 || !prefix_is(&kl, r->cid) ||
            vd_get_u32be((uint8_t *)kl.mv_data + 4) != slot) {
            uint32_t lslot = (rl == 0 && prefix_is(&kl, r->cid))
                                 ? vd_get_u32be((uint8_t *)kl.mv_data + 4) : UINT32_MAX;
            if (lslot < slot)
                s = vd_err_set(err, VD_CORRUPT, "collection %s: links record of slot %u has "
                               "no vector record", name, lslot);
            else
                s = vd_err_set(err, VD_CORRUPT, "collection %s: slot %u has a vector record "
                               "but no links record", name, slot);
            goto fail;
        }
        const uint8_t *vp = vv.mv_data;
        uint64_t id = vd_get_u64le(vp);
        const float *vec = (const float *)(vp + 8);
        /* LMDB only aligns nodes to 2 bytes: copy when the floats are not 4-aligned. */
        if ((uintptr_t)vec & (sizeof(float) - 1)) {
            memcpy(aligned, vp + 8, vec_bytes);
            vec = aligned;
        }
        s = vd_index_load_slot(c->ix, slot, id, vec, vl.mv_data, vl.mv_size, err);
        if (s != VD_OK) {
            if (s != VD_NOMEM) s = VD_CORRUPT;
            vd_err_prefix(err, "collection %s: slot %u", name, slot);
            if (err) err->code = s;
            goto fail;
        }
        n_loaded++;
        if (progress_done) {
            (*progress_done)++;
            if (opt && opt->load_progress && (*progress_done & 0xFFFF) == 0)
                opt->load_progress(opt->load_progress_ctx, *progress_done, progress_total);
        }
        rv = mdb_cursor_get(cv, &kv, &vv, MDB_NEXT);
        rl = mdb_cursor_get(cl, &kl, &vl, MDB_NEXT);
    }
    if (rv != 0 && rv != MDB_NOTFOUND) { rc = rv; goto fail_mdb; }
    if (rl != 0 && rl != MDB_NOTFOUND) { rc = rl; goto fail_mdb; }
    if (rl == 0 && prefix_is(&kl, r->cid)) {
        s = vd_err_set(err, VD_CORRUPT, "collection %s: links record of slot %u has no "
                       "vector record", name, vd_get_u32be((uint8_t *)kl.mv_data + 4));
        goto fail;
    }
    if (n_loaded < r->count) {
        s = vd_err_set(err, VD_CORRUPT, "collection %s: %" PRIu64 " vector records for %"
                       PRIu64 " points", name, n_loaded, r->count);
        goto fail;
    }
    mdb_cursor_close(cv);
    mdb_cursor_close(cl);
    cv = cl = NULL;
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
    /* No clear here: whatever load_finish's publish changed (reachability fixes) stays
     * marked and is persisted by the next group. */
    vd_storage__update_bytes(c);
    vd_free(aligned);
    *out = c;
    return VD_OK;

fail_mdb:
    s = vd_storage__mdb_err(st, rc, err, "reading collection");
    goto fail;
fail_prefix:
    vd_err_prefix(err, "collection %s", name);
fail:
    if (cv) mdb_cursor_close(cv);
    if (cl) mdb_cursor_close(cl);
    vd_free(aligned);
    vd_collection_release(c);
    return s;
}

/* ---- open / close ------------------------------------------------------------------------ */
static int meta_get_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t *out)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc) return rc;
    if (v.mv_size != 4) return MDB_CORRUPTED;
    *out = vd_get_u32le(v.mv_data);
    return 0;
}

static int meta_put_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t val)
{
    uint8_t b[4];
    vd_put_u32le(b, val);
    MDB_val k = {strlen(key), (void *)key}, v = {4, b};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* Creates the databases and the meta records of a new data directory in one transaction. */
static vd_status init_new(vd_store *st, vd_err *err)
{
    MDB_txn *txn = NULL;
    MDB_dbi d;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) goto fail;
    const char *names[] = {"meta", "catalog", "points", "vectors", "links"};
    for (size_t i = 0; i < VD_ARRAY_LEN(names); i++)
        if ((rc = mdb_dbi_open(txn, names[i], MDB_CREATE, &d))) goto fail;
    if ((rc = mdb_dbi_open(txn, "meta", 0, &d))) goto fail;
    MDB_val k = {5, "magic"}, v = {sizeof VD_STORE_MAGIC, VD_STORE_MAGIC};
    if ((rc = mdb_put(txn, d, &k, &v, 0)) ||
        (rc = meta_put_u32(txn, d, "format", VD_STORAGE_FORMAT_VERSION)) ||
        (rc = meta_put_u32(txn, d, "next_collection", 1)))
        goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) goto fail;
    return VD_OK;
fail:
    if (txn) mdb_txn_abort(txn);
    return vd_storage__mdb_err(st, rc, err, "creating the data directory");
}

/* Identifies the environment and opens the database handles (read transaction only). */
static vd_status identify(vd_store *st, int *is_empty, vd_err *err)
{
    MDB_txn *txn = NULL;
    vd_status s = VD_OK;
    *is_empty = 0;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc) return vd_storage__mdb_err(st, rc, err, "opening");
    MDB_stat ms;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &st->dbi_meta)) ||
        (rc = mdb_stat(txn, st->dbi_meta, &ms)))
        goto fail_mdb;
    if (ms.ms_entries == 0) {
        *is_empty = 1;
        goto out;
    }
    rc = mdb_dbi_open(txn, "meta", 0, &st->dbi_meta);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
        s = vd_err_set(err, VD_CORRUPT, "%s/data.mdb is an LMDB file but not a vectord data "
                       "directory (no vectord metadata); refusing to touch it", st->dir);
        goto out;
    }
    if (rc) goto fail_mdb;
    MDB_val k = {5, "magic"}, v;
    rc = mdb_get(txn, st->dbi_meta, &k, &v);
    if (rc == MDB_NOTFOUND || (rc == 0 && (v.mv_size != sizeof VD_STORE_MAGIC ||
                                           memcmp(v.mv_data, VD_STORE_MAGIC, v.mv_size)))) {
        s = vd_err_set(err, VD_CORRUPT, "%s/data.mdb is an LMDB file but not a vectord data "
                       "directory (no vectord magic); refusing to touch it", st->dir);
        goto out;
    }
    if (rc) goto fail_mdb;
    uint32_t ver = 0;
    rc = meta_get_u32(txn, st->dbi_meta, "format", &ver);
    if (rc == MDB_NOTFOUND || rc == MDB_CORRUPTED || (rc == 0 && ver == 0)) {
        s = vd_err_set(err, VD_CORRUPT, "%s: the format version record is missing or "
                       "malformed", st->dir);
        goto out;
    }
    if (rc) goto fail_mdb;
    if (ver > VD_STORAGE_FORMAT_VERSION) {
        s = vd_err_set(err, VD_VERSION, "%s was written in storage format %u; this vectord "
                       "reads format %u at most: upgrade vectord (nothing was changed)",
                       st->dir, ver, VD_STORAGE_FORMAT_VERSION);
        goto out;
    }
    if ((rc = mdb_dbi_open(txn, "catalog", 0, &st->dbi_catalog)) ||
        (rc = mdb_dbi_open(txn, "points", 0, &st->dbi_points)) ||
        (rc = mdb_dbi_open(txn, "vectors", 0, &st->dbi_vectors)) ||
        (rc = mdb_dbi_open(txn, "links", 0, &st->dbi_links))) {
        if (rc == MDB_NOTFOUND) {
            s = vd_err_set(err, VD_CORRUPT, "%s: a vectord database is missing", st->dir);
            goto out;
        }
        goto fail_mdb;
    }
out:
    /* Handles opened in a read transaction stay valid after it ends (when it ends by
     * commit): commit, not abort, keeps them. */
    rc = mdb_txn_commit(txn);
    if (rc && s == VD_OK) return vd_storage__mdb_err(st, rc, err, "opening");
    return s;
fail_mdb:
    mdb_txn_abort(txn);
    return vd_storage__mdb_err(st, rc, err, "opening");
}

/* Loading reads every vector and links record through LMDB's read-only map, and those pages
 * stay mapped into the process: resident memory would count the file on top of the index's
 * own copy. MADV_DONTNEED on a read-only shared file mapping drops only this process's page
 * table entries; the page cache keeps the data and later reads fault it back in. LMDB does
 * not tell where its map is (me_mapaddr is for fixed maps only), so the mapping of the data
 * file's inode is looked up in /proc/self/maps. Best effort: nothing fails without it.
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

static vd_status load_all(vd_store *st, const vd_store_options *opt, vd_err *err)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    vd_status s = VD_OK;
    int rc = vd_storage__read_begin(st, &txn);
    if (rc) return vd_storage__mdb_err(st, rc, err, "reading the catalog");
    size_t total = 0, done = 0;
    MDB_val k, v;
    for (int pass = 0; pass < 2; pass++) {
        if ((rc = mdb_cursor_open(txn, st->dbi_catalog, &cur))) goto fail_mdb;
        while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
            vd_catalog_rec r;
            s = vd_storage__catalog_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &r, err);
            if (s != VD_OK) {
                vd_err_prefix(err, "%s", st->dir);
                goto fail;
            }
            if (pass == 0) {
                total += r.hdr.n_slots;
                continue;
            }
            vd_collection *c = NULL;
            if (opt && opt->catalog_only) {
                if (!(c = vd_storage__coll_new())) {
                    s = vd_err_set(err, VD_NOMEM, "out of memory reading the catalog");
                    goto fail;
                }
                c->cid = r.cid;
                c->params = r.params;
                c->created_unix_s = r.created_unix_s;
                c->seed = r.seed;
                c->count = r.count;
                c->payload_bytes = r.payload_bytes;
                vd_storage__update_bytes(c);
            } else {
                s = vd_storage__load(st, txn, &r, &done, total, opt, &c, err);
                if (s != VD_OK) goto fail;
            }
            if ((s = vd_storage__catalog_put(st, c, err)) != VD_OK) {
                vd_collection_release(c);
                goto fail;
            }
        }
        if (rc != MDB_NOTFOUND) goto fail_mdb;
        mdb_cursor_close(cur);
        cur = NULL;
    }
    if (opt && opt->load_progress) opt->load_progress(opt->load_progress_ctx, done, total);
    vd_storage__read_end(st, txn);
    if (!(opt && opt->catalog_only)) unmap_loaded_pages(st);
    return VD_OK;
fail_mdb:
    s = vd_storage__mdb_err(st, rc, err, "reading the catalog");
fail:
    if (cur) mdb_cursor_close(cur);
    vd_storage__read_end(st, txn);
    return s;
}

static int path_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

vd_status vd_store_open(const char *dir, const vd_store_options *opt, vd_store **out,
                        vd_err *err)
{
    vd_store *st = NULL;
    char *path = NULL;
    vd_status s = VD_OK;
    int rc = 0, gate_init = 0;
    vd_store_options none = {0};
    if (!opt) opt = &none;
    *out = NULL;
    if (!dir || !*dir) return vd_err_set(err, VD_INVALID, "no data directory given");
    if (opt->catalog_only && !opt->read_only)
        return vd_err_set(err, VD_INVALID, "a catalog-only open must be read-only");

    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT || !opt->create || opt->read_only)
            return vd_err_set(err, errno == ENOENT ? VD_NOTFOUND : VD_UNAVAILABLE,
                              "data directory %s: %s", dir, strerror(errno));
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return vd_err_set(err, VD_IO, "cannot create data directory %s: %s", dir,
                              strerror(errno));
    } else if (!S_ISDIR(sb.st_mode)) {
        return vd_err_set(err, VD_INVALID, "data directory %s is not a directory", dir);
    }

    size_t plen = strlen(dir) + 16;
    path = vd_malloc(plen);
    st = vd_calloc(1, sizeof *st);
    if (!path || !st || !(st->dir = vd_strdup(dir))) {
        s = vd_err_set(err, VD_NOMEM, "out of memory opening %s", dir);
        goto fail;
    }
    st->read_only = opt->read_only;
    st->catalog_only = opt->catalog_only;
    st->n_threads = opt->n_threads;
    pthread_mutex_init(&st->gate_mu, NULL);
    pthread_cond_init(&st->gate_cv, NULL);
    pthread_mutex_init(&st->cat_mu, NULL);
    gate_init = 1;

    snprintf(path, plen, "%s/data.mdb", dir);
    int had_data = path_exists(path);
    if (had_data) {
        s = vd_storage__precheck_file(path, err);
        if (s != VD_OK) goto fail;
    } else if (!opt->create || opt->read_only) {
        s = vd_err_set(err, VD_NOTFOUND, "%s is not a vectord data directory (no data.mdb)",
                       dir);
        goto fail;
    }
    snprintf(path, plen, "%s/lock.mdb", dir);
    unsigned flags = MDB_NOTLS;
    if (opt->read_only) {
        flags |= MDB_RDONLY;
        if (!path_exists(path)) flags |= MDB_NOLOCK; /* nobody has it open: create nothing */
    }
    if ((rc = mdb_env_create(&st->env)) || (rc = mdb_env_set_maxdbs(st->env, VD_STORE_MAX_DBS)))
        goto fail_mdb;
    size_t map = vd_storage__test_initial_map ? vd_storage__test_initial_map : DEFAULT_MAP;
    if (had_data) {
        snprintf(path, plen, "%s/data.mdb", dir);
        if (stat(path, &sb) == 0 && (size_t)sb.st_size * 2 > map)
            map = ((size_t)sb.st_size * 2 + MIB - 1) / MIB * MIB;
    }
    if ((rc = mdb_env_set_mapsize(st->env, map))) goto fail_mdb;
    if ((rc = mdb_env_open(st->env, dir, flags, 0644))) {
        mdb_env_close(st->env);
        st->env = NULL;
        goto fail_mdb;
    }
    MDB_envinfo ei;
    mdb_env_info(st->env, &ei);
    st->map_bytes = ei.me_mapsize;
    if (!opt->read_only) {
        /* One writing process per directory: two would each keep an index that the other's
         * commits bypass. flock on LMDB's own data-file descriptor (LMDB takes no lock on
         * data.mdb, and closing this fd never drops LMDB's fcntl locks on lock.mdb); it goes
         * away with the process, also after kill -9. Readers (info, check, backup) do not
         * take it. */
        int fd = -1;
        if (mdb_env_get_fd(st->env, &fd) == 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
            s = vd_err_set(err, VD_UNAVAILABLE, "data directory %s is in use by another "
                           "vectord process (only one may write it)", dir);
            goto fail;
        }
    }

    int is_empty = 0;
    if ((s = identify(st, &is_empty, err)) != VD_OK) goto fail;
    if (is_empty) {
        /* A fresh environment (or one whose creation was interrupted before its first
         * commit): nothing in it can be anyone's data. */
        if (opt->read_only || !opt->create) {
            s = vd_err_set(err, VD_CORRUPT, "%s holds an empty LMDB environment, not a "
                           "vectord data directory", dir);
            goto fail;
        }
        if ((s = init_new(st, err)) != VD_OK) goto fail;
        if ((s = identify(st, &is_empty, err)) != VD_OK) goto fail;
    }
    if ((s = load_all(st, opt, err)) != VD_OK) goto fail;
    st->opened = 1;
    vd_free(path);
    *out = st;
    return VD_OK;

fail_mdb:
    s = vd_storage__mdb_err(st, rc, err, "opening the LMDB environment");
fail:
    vd_free(path);
    if (st) {
        if (!gate_init) {
            vd_free(st->dir);
            vd_free(st);
        } else {
            vd_store_close(st);
        }
    }
    return s;
}

void vd_store_close(vd_store *st)
{
    if (!st) return;
    vd_err e;
    if (st->opened && st->n_colls && vd_storage__flush(st, &e) != VD_OK)
        vd_log(VD_LOG_WARN, "storage: closing %s: %s", st->dir, e.msg);
    for (size_t i = 0; i < st->n_colls; i++) vd_collection_release(st->colls[i]);
    vd_free(st->colls);
    if (st->env) mdb_env_close(st->env);
    pthread_mutex_destroy(&st->gate_mu);
    pthread_cond_destroy(&st->gate_cv);
    pthread_mutex_destroy(&st->cat_mu);
    vd_free(st->buf);
    vd_free(st->dir);
    vd_free(st);
}

/* ---- snapshots --------------------------------------------------------------------------- */
typedef struct snap_copy {
    struct snap_copy *next;
    float v[];
} snap_copy;

struct vd_snapshot {
    vd_store *st;
    MDB_txn *txn;
    snap_copy *copies; /* aligned copies of vectors LMDB stored at odd addresses */
};

vd_status vd_snapshot_begin(vd_store *st, vd_snapshot **out, vd_err *err)
{
    *out = NULL;
    vd_snapshot *s = vd_calloc(1, sizeof *s);
    if (!s) return vd_err_set(err, VD_NOMEM, "out of memory beginning a snapshot");
    int rc = vd_storage__read_begin(st, &s->txn);
    if (rc) {
        vd_free(s);
        return vd_storage__mdb_err(st, rc, err, "beginning a read snapshot");
    }
    s->st = st;
    *out = s;
    return VD_OK;
}

void vd_snapshot_end(vd_snapshot *s)
{
    if (!s) return;
    vd_storage__read_end(s->st, s->txn);
    while (s->copies) {
        snap_copy *n = s->copies->next;
        vd_free(s->copies);
        s->copies = n;
    }
    vd_free(s);
}

vd_status vd_snapshot_get(vd_snapshot *s, const vd_collection *c, uint64_t id, int *found_out,
                          const float **vec_out, const uint8_t **payload_out,
                          size_t *payload_len_out, vd_err *err)
{
    vd_store *st = s->st;
    uint8_t kp[12], ks[8];
    *found_out = 0;
    if (vec_out) *vec_out = NULL;
    if (payload_out) *payload_out = NULL;
    if (payload_len_out) *payload_len_out = 0;
    vd_key_point(kp, c->cid, id);
    MDB_val k = {12, kp}, v;
    int rc = mdb_get(s->txn, st->dbi_points, &k, &v);
    if (rc == MDB_NOTFOUND) return VD_OK;
    if (rc) return vd_storage__mdb_err(st, rc, err, "reading a point");
    if (v.mv_size < 4)
        return vd_err_set(err, VD_CORRUPT, "collection %s: point %" PRIu64 " record is "
                          "malformed", c->params.name, id);
    const uint8_t *pv = v.mv_data;
    uint32_t slot = vd_get_u32le(pv);
    if (vec_out) {
        vd_key_slot(ks, c->cid, slot);
        MDB_val k2 = {8, ks}, v2;
        rc = mdb_get(s->txn, st->dbi_vectors, &k2, &v2);
        if (rc && rc != MDB_NOTFOUND) return vd_storage__mdb_err(st, rc, err, "reading a vector");
        size_t vb = (size_t)c->params.dim * sizeof(float);
        if (rc == MDB_NOTFOUND || v2.mv_size != 8 + vb || vd_get_u64le(v2.mv_data) != id)
            return vd_err_set(err, VD_CORRUPT, "collection %s: point %" PRIu64 " has no "
                              "matching vector record (slot %u)", c->params.name, id, slot);
        const uint8_t *fp = (const uint8_t *)v2.mv_data + 8;
        if ((uintptr_t)fp & (sizeof(float) - 1)) {
            snap_copy *cp = vd_malloc(sizeof *cp + vb);
            if (!cp) return vd_err_set(err, VD_NOMEM, "out of memory reading a vector");
            memcpy(cp->v, fp, vb);
            cp->next = s->copies;
            s->copies = cp;
            *vec_out = cp->v;
        } else {
            *vec_out = (const float *)fp;
        }
    }
    if (payload_out && v.mv_size > 4) *payload_out = pv + 4;
    if (payload_len_out) *payload_len_out = v.mv_size - 4;
    *found_out = 1;
    return VD_OK;
}

/* ---- info -------------------------------------------------------------------------------- */
vd_status vd_store_info_get(vd_store *st, vd_store_info *out, vd_err *err)
{
    memset(out, 0, sizeof *out);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = vd_storage__read_begin(st, &txn);
    if (rc) return vd_storage__mdb_err(st, rc, err, "reading info");
    MDB_envinfo ei;
    MDB_stat ms;
    mdb_env_info(st->env, &ei);
    mdb_env_stat(st->env, &ms);
    uint32_t ver = 0;
    if ((rc = meta_get_u32(txn, st->dbi_meta, "format", &ver))) goto fail;
    /* Free pages: the free DB (handle 0) maps txn ids to page lists whose first word is
     * the list's length. */
    uint64_t n_free = 0;
    if ((rc = mdb_cursor_open(txn, 0, &cur))) goto fail;
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        if (v.mv_size >= sizeof(size_t)) {
            size_t n;
            memcpy(&n, v.mv_data, sizeof n);
            n_free += n;
        }
    mdb_cursor_close(cur);
    cur = NULL;
    vd_storage__read_end(st, txn);
    txn = NULL;
    out->format_version = ver;
    out->map_bytes = ei.me_mapsize;
    uint64_t pages = ei.me_last_pgno + 1;
    out->used_bytes = (pages > n_free ? pages - n_free : 0) * ms.ms_psize;
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", st->dir);
    struct stat sb;
    if (stat(path, &sb) == 0) out->file_bytes = (uint64_t)sb.st_size;
    return VD_OK;
fail:
    if (cur) mdb_cursor_close(cur);
    vd_storage__read_end(st, txn);
    return vd_storage__mdb_err(st, rc, err, "reading info");
}
