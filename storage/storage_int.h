/* storage/storage_int.h: what the storage files share: the store and collection structs, the
 * on-disk record layouts, key encoders and the reader gate. Nothing here is public. */
#ifndef VD_STORAGE_INT_H
#define VD_STORAGE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "storage/vd_storage.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "stored float32 vectors are written in host order, which must be little-endian"
#endif

/* ---- On-disk layout (format 1) -----------------------------------------------------------
 * meta     "magic" -> VD_STORE_MAGIC, "format" -> u32 LE, "next_collection" -> u32 LE
 * catalog  name bytes -> catalog record (VD_CATALOG_REC_BYTES, little-endian, see below)
 * points   cid u32 BE | id u64 BE        -> slot u32 LE | payload JSON bytes (none: empty)
 * vectors  cid u32 BE | slot u32 BE      -> id u64 LE | float32[dim] (host = LE)
 * links    cid u32 BE | slot u32 BE      -> the index's links record (vd_index_slot_links)
 * Big-endian keys sort by collection, then numerically, so a collection is one key range and
 * reopening reads vectors and links in slot order with two parallel cursors. */
#define VD_STORE_MAGIC "vectord-data"
#define VD_STORE_MAX_DBS 8
#define VD_CATALOG_REC_VERSION 1
#define VD_CATALOG_REC_BYTES 72

typedef struct vd_catalog_rec {
    uint32_t cid;
    vd_collection_params params;
    vd_index_header hdr;
    uint64_t created_unix_s;
    uint64_t count;         /* points records */
    uint64_t payload_bytes; /* sum of stored payload lengths */
    uint64_t seed;          /* index level-generator seed */
} vd_catalog_rec;

void vd_storage__catalog_encode(const vd_catalog_rec *r, uint8_t out[VD_CATALOG_REC_BYTES]);
vd_status vd_storage__catalog_decode(const char *name, size_t name_len, const uint8_t *p,
                                     size_t n, vd_catalog_rec *r, vd_err *err);

static inline void vd_key_point(uint8_t k[12], uint32_t cid, uint64_t id)
{
    vd_put_u32be(k, cid);
    vd_put_u64be(k + 4, id);
}
static inline void vd_key_slot(uint8_t k[8], uint32_t cid, uint32_t slot)
{
    vd_put_u32be(k, cid);
    vd_put_u32be(k + 4, slot);
}

/* ---- In-memory structures --------------------------------------------------------------- */
struct vd_collection {
    atomic_int refs;
    uint32_t cid;
    vd_collection_params params;
    uint64_t created_unix_s;
    uint64_t seed;
    vd_index *ix;
    /* Writer-only (the writer thread owns these between groups): */
    uint64_t count;         /* committed points */
    uint64_t payload_bytes; /* committed payload bytes */
    int needs_reload;       /* index holds state that is not LMDB's: reload before writing */
    /* Readers see this for info: an estimate of stored bytes, updated after each commit. */
    _Atomic uint64_t bytes_disk;
};

struct vd_store {
    char *dir;
    MDB_env *env;
    MDB_dbi dbi_meta, dbi_catalog, dbi_points, dbi_vectors, dbi_links;
    int read_only;
    int opened; /* open completed: close may flush */
    int catalog_only;
    uint32_t n_threads;
    /* Reader gate: mdb_env_set_mapsize() needs no transaction alive in this process, but a
     * snapshot may be ended on another thread than the one that began it, which a pthread
     * rwlock forbids; a counter under a mutex allows it. Writer-preferring. */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    long n_readers;
    int resizing;
    size_t map_bytes; /* guarded by gate_mu */
    /* Catalog: live collections sorted by name; the mutex is held only to look up or swap. */
    pthread_mutex_t cat_mu;
    vd_collection **colls;
    size_t n_colls, cap_colls;
    /* Writer scratch. */
    uint8_t *buf;
    size_t buf_cap;
};

/* Test hooks (tests/unit only): the initial map size (0 = the normal policy) and whether the
 * writer grows the map ahead of a group (1, default) or only after MDB_MAP_FULL (0). */
extern size_t vd_storage__test_initial_map;
extern int vd_storage__pregrow;
/* Counters for tests: map growths and group retries since the process started. */
extern _Atomic long vd_storage__n_grows;
extern _Atomic long vd_storage__n_retries;

/* LMDB / errno code -> status; the message says what was being done and where. */
vd_status vd_storage__mdb_err(vd_store *st, int rc, vd_err *err, const char *what);
vd_status vd_storage__mdb_status(int rc);

/* The gate around every read transaction of this process, and the resize it protects. */
void vd_storage__gate_enter(vd_store *st);
void vd_storage__gate_leave(vd_store *st);
int vd_storage__read_begin(vd_store *st, MDB_txn **out); /* gate entered on success */
void vd_storage__read_end(vd_store *st, MDB_txn *txn);
vd_status vd_storage__grow(vd_store *st, size_t need_bytes, vd_err *err);
size_t vd_storage__used_bytes(vd_store *st);

/* Loads one collection (catalog record `r`) from `txn` into a new collection object with a
 * fresh deferred-publish index. *out has one reference. */
vd_status vd_storage__load(vd_store *st, MDB_txn *txn, const vd_catalog_rec *r,
                           size_t *progress_done, size_t progress_total,
                           const vd_store_options *opt, vd_collection **out, vd_err *err);

vd_collection *vd_storage__coll_new(void); /* refs = 1 */
void vd_storage__coll_ref(vd_collection *c);
/* Catalog edits (writer): put replaces a same-named entry (releasing it) and takes over the
 * caller's reference; remove drops `c` if it is still the entry for its name. */
vd_status vd_storage__catalog_put(vd_store *st, vd_collection *c, vd_err *err);
void vd_storage__catalog_remove(vd_store *st, vd_collection *c);
vd_collection *vd_storage__catalog_find(vd_store *st, const char *name); /* +1 ref or NULL */

/* Validates collection parameters and fills defaults in place. */
vd_status vd_storage__params_check(vd_collection_params *p, vd_err *err);
/* Refreshes c->bytes_disk from count, payload bytes and the index's link bytes. */
void vd_storage__update_bytes(vd_collection *c);

/* Persists the changes publish made after the last group (repairs, vacuum) in one synced
 * transaction; called by vd_store_close. On failure disk keeps the last group's state, which
 * is consistent. */
vd_status vd_storage__flush(vd_store *st, vd_err *err);
int vd_storage__has_changes(const vd_index *ix);
/* vd_index_changes, skipped for an index that never held a slot (nothing to report). */
int vd_storage__changes(const vd_index *ix, vd_change_fn fn, void *ctx);

/* Writer scratch buffer of at least n bytes. */
uint8_t *vd_storage__scratch(vd_store *st, size_t n);

/* Checks the two LMDB meta pages of `path` before LMDB maps it: magic, version, page size,
 * and that the file holds every page the newest meta page claims (a truncated file would
 * otherwise fault). VD_NOTFOUND if absent, VD_CORRUPT with the path otherwise. */
vd_status vd_storage__precheck_file(const char *path, vd_err *err);

/* Resolves which filled slot holds the live version of each id among candidate (id, slot)
 * pairs, see write.c. */
typedef struct vd_id_slot {
    uint64_t id;
    uint32_t slot;
} vd_id_slot;
void vd_storage__sort_pairs(vd_id_slot *p, size_t n);
vd_status vd_storage__resolve_slot(const vd_index *ix, const vd_id_slot *pairs, size_t n_pairs,
                                   uint64_t id, uint32_t *slot_out, float *scratch, vd_err *err);

#endif
