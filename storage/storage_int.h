/* storage/storage_int.h: what the storage files share: the store and collection structs, the
 * transaction handle, and the internals of each file, grouped by the file that defines them.
 * The byte layout of records is records.h's alone. Nothing here is public.
 *
 * Files, from the bottom up; each calls only files listed before it, never back (no two call
 * each other: tests/layout/check_layout.py):
 *   names.c    the name rule and the one check of collection parameters  } pure: no LMDB,
 *   json.c     the JSON payload validator                                } the fuzz target
 *   records.c  the record codec (records.h)                              } links them
 *   lock.c     one writing process per directory, one open per process, the holder's pid
 *   env.c      the LMDB environment: errors, precheck, open, reader gate, map growth, retry
 *   db.c       the databases: handles, identification, get/put/del of each record kind
 *   catalog.c  the in-memory collections: reference counts, the sorted list, info
 *   load.c     a collection from LMDB into a fresh index; every collection at open
 *   points.c   the one path of payload changes in a write group
 *   strids.c   string ids in a write group: keys, mappings, the sequence, reaping
 *   persist.c  an index's changes into records, which slot holds an id, the flush at close
 *   write.c    the group commit (vd_store_write)    import.c    vd_store_import
 *   snapshot.c read views (vd_snapshot_*)           check.c     vd_store_check
 *   backup.c   vd_store_backup                      store.c     vd_store_open/close/info */
#ifndef VD_STORAGE_INT_H
#define VD_STORAGE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "storage/records.h"

#define VD_STORE_MAX_DBS 8
_Static_assert(VD_DB_COUNT <= VD_STORE_MAX_DBS, "raise VD_STORE_MAX_DBS with the table");

/* ---- In-memory structures --------------------------------------------------------------- */
struct vd_collection {
    atomic_int refs;
    uint32_t cid;
    vd_collection_params params;
    uint64_t created_unix_s;
    uint64_t seed;
    vd_index *ix; /* NULL in a catalog-only store */
    /* Writer-only (the writer thread owns these between groups): */
    uint64_t count;         /* committed points */
    uint64_t payload_bytes; /* committed payload bytes */
    uint64_t str_id_bytes;  /* committed bytes of string ids (the sequence record's) */
    int needs_reload;       /* index holds state that is not LMDB's: reload before writing */
    /* Readers see this for info: an estimate of stored bytes, updated after each commit. */
    _Atomic uint64_t bytes_disk;
};

struct vd_store {
    char *dir;
    MDB_env *env;
    MDB_dbi dbi[VD_DB_COUNT];
    /* Tables a read-only open found missing (written by an older vectord): they read as
     * empty. A read-write open creates them, so this is all zero then. */
    unsigned char db_absent[VD_DB_COUNT];
    int read_only;
    int opened; /* open completed: close may flush */
    int catalog_only;
    uint32_t n_threads;
    /* lock.c: in this process's registry of open directories; holding the writer flock */
    int registered, locked;
    dev_t dir_dev;
    ino_t dir_ino;
    /* Reader gate (env.c): mdb_env_set_mapsize() needs no transaction alive in this process,
     * but a snapshot may be ended on another thread than the one that began it, which a
     * pthread rwlock forbids; a counter under a mutex allows it. Writer-preferring. */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    long n_readers;
    int resizing;
    size_t map_bytes; /* guarded by gate_mu */
    /* Catalog (catalog.c): live collections sorted by name; the mutex is held only to look
     * up or swap an entry. */
    pthread_mutex_t cat_mu;
    vd_collection **colls;
    size_t n_colls, cap_colls;
    /* Writer scratch for records built before a put (links records, re-pointed points). */
    vd_buf buf;
    /* vd_store_counters (env.c writes them on the writer thread, any thread reads). */
    _Atomic uint64_t n_commits, commit_ns, last_commit_ns;
};

/* A transaction of the store, read or write. */
typedef struct vd_txn {
    vd_store *st;
    MDB_txn *txn;
    int write;  /* a write transaction (vd_storage__write_txn) */
    int mdb_rc; /* LMDB code behind the last failure, 0 if none (MDB_MAP_FULL: grow, retry) */
} vd_txn;

/* ---- lock.c ------------------------------------------------------------------------------
 * Refuses (VD_PRECONDITION) a directory this process has open already, before LMDB opens it,
 * else enters it in the process's registry; unregister after the environment is closed. */
vd_status vd_storage__register_dir(vd_store *st, vd_err *err);
void vd_storage__unregister_dir(vd_store *st); /* no-op unless registered */
/* The one-writer lock on the environment's data.mdb descriptor `fd`, recording this
 * process's pid in DIR/writer.pid; VD_PRECONDITION naming the holder's pid if another process
 * has it. writer_unlock removes the pid file; the flock itself goes with the environment. */
vd_status vd_storage__writer_lock(vd_store *st, int fd, vd_err *err);
void vd_storage__writer_unlock(vd_store *st); /* no-op unless locked */

/* ---- env.c -------------------------------------------------------------------------------- */
/* Test hooks (tests/unit only): the initial map size (0 = the normal policy) and whether
 * writes grow the map ahead (1, default) or only after MDB_MAP_FULL (0). */
extern size_t vd_storage__test_initial_map;
extern int vd_storage__pregrow;
/* Counters for tests: map growths and transaction retries since the process started. */
extern _Atomic long vd_storage__n_grows;
extern _Atomic long vd_storage__n_retries;

/* LMDB / errno code -> status. */
vd_status vd_storage__mdb_status(int rc);
/* The status of rc with a message saying what was being done and where (st may be NULL). */
vd_status vd_storage__mdb_err(vd_store *st, int rc, vd_err *err, const char *what);
/* The same for a failure inside t, remembering rc in t->mdb_rc; in a write transaction an
 * EIO of a nearly full disk or of the file size limit is reported as the full disk it is. */
vd_status vd_storage__txn_fail(vd_txn *t, int rc, vd_err *err, const char *what);

/* Checks the two LMDB meta pages of `path` before LMDB maps it: magic, version, page size,
 * and that the file holds every page the newest meta page claims (a truncated file would
 * otherwise fault). VD_NOTFOUND if absent, VD_CORRUPT with the path otherwise. */
vd_status vd_storage__precheck_file(const char *path, vd_err *err);
/* A new environment handle on `dir`, opened (maxdbs from the table, map size, MDB_NOTLS;
 * read_only: MDB_RDONLY, and MDB_NOLOCK when lock.mdb is absent, so nothing is created).
 * Returns the LMDB code; on failure *out is NULL. */
int vd_storage__env_create(const char *dir, int read_only, size_t map_bytes, MDB_env **out);
/* Prechecks data.mdb (absent: VD_NOTFOUND unless `create`), opens st->env with the initial
 * map size and, unless read-only, takes the one-writer lock on the directory. */
vd_status vd_storage__env_open(vd_store *st, int create, vd_err *err);

/* The gate around every read transaction of this process (see struct vd_store). */
void vd_storage__gate_enter(vd_store *st);
void vd_storage__gate_leave(vd_store *st);
/* A read transaction in t (gate entered; a map another process grew is adopted). */
vd_status vd_storage__read_begin(vd_store *st, vd_txn *t, vd_err *err, const char *what);
void vd_storage__read_end(vd_txn *t); /* no-op if t holds no transaction */
size_t vd_storage__used_bytes(vd_store *st);
/* Grows the map to max(2x, used + 2 * need_bytes); waits until no read transaction is alive.
 * The calling thread must hold none. */
vd_status vd_storage__grow(vd_store *st, size_t need_bytes, vd_err *err);

/* The one write-transaction driver with map growth, for the write group, import and the
 * flush at close. Per attempt: grow ahead if `need_bytes` does not fit (or after a
 * MDB_MAP_FULL), begin, fill(ctx, t, err), commit if it returned VD_OK (synced), else abort;
 * then end(ctx, status) - with VD_OK the commit is durable - and retry from LMDB's state
 * while an attempt failed with MDB_MAP_FULL (at most 12 attempts). */
typedef vd_status (*vd_txn_fill_fn)(void *ctx, vd_txn *t, vd_err *err);
typedef void (*vd_txn_end_fn)(void *ctx, vd_status s);
vd_status vd_storage__write_txn(vd_store *st, size_t need_bytes, vd_txn_fill_fn fill,
                                vd_txn_end_fn end, void *ctx, vd_err *err);

/* ---- db.c -------------------------------------------------------------------------------
 * Typed access to the databases inside a transaction: each get decodes with records.c (a
 * record that fails its length rule is VD_CORRUPT naming the collection and key); each put
 * encodes. Results borrow LMDB's memory: valid until the transaction ends or writes again.
 * `found` may not be NULL; absent is VD_OK with *found = 0. `flags` are mdb_put flags
 * (MDB_APPEND for ascending keys). A collection is its cid; getters also take its params,
 * for the decoder (dim) and the message (name). */
/* Identifies the environment (magic, format) and opens every database of the table; an
 * empty environment is initialized when `create` (else VD_CORRUPT). */
vd_status vd_storage__db_open(vd_store *st, int create, vd_err *err);

/* 0 for a table this read-only store found missing (see db_absent); cursor walks skip it. */
int vd_storage__db_present(const vd_store *st, vd_db db);

vd_status vd_storage__format_get(vd_txn *t, uint32_t *ver, vd_err *err);
/* Takes the next collection id (VD_FULL when exhausted) and stores its successor. */
vd_status vd_storage__cid_take(vd_txn *t, uint32_t *cid, vd_err *err);
vd_status vd_storage__next_cid_get(vd_txn *t, uint32_t *cid, vd_err *err);

vd_status vd_storage__catalog_get(vd_txn *t, const char *name, vd_catalog_rec *r, int *found,
                                  vd_err *err);
/* Writes c's catalog record with these counts and c's index header. */
vd_status vd_storage__catalog_store(vd_txn *t, const vd_collection *c, uint64_t count,
                                    uint64_t payload_bytes, vd_err *err);
vd_status vd_storage__catalog_del(vd_txn *t, const char *name, vd_err *err);

vd_status vd_storage__point_get(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                                uint64_t id, vd_point_rec *r, int *found, vd_err *err);
/* `payload` must not point into the database (the put may move pages under it). */
vd_status vd_storage__point_put(vd_txn *t, uint32_t cid, uint64_t id, uint32_t slot,
                                const uint8_t *payload, size_t len, unsigned flags, vd_err *err);
vd_status vd_storage__point_del(vd_txn *t, uint32_t cid, uint64_t id, vd_err *err);

vd_status vd_storage__vector_get(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                                 uint32_t slot, vd_vector_rec *r, int *found, vd_err *err);
vd_status vd_storage__vector_put(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                                 uint32_t slot, uint64_t id, const float *vec, unsigned flags,
                                 vd_err *err);
vd_status vd_storage__links_put(vd_txn *t, uint32_t cid, uint32_t slot, const uint8_t *rec,
                                size_t len, unsigned flags, vd_err *err);
/* Deletes the vector and links records of a slot (absent ones are fine). */
vd_status vd_storage__slot_del(vd_txn *t, uint32_t cid, uint32_t slot, vd_err *err);
/* String ids (records.h): id -> key, key -> id, the sequence record (absent: {0, 0}).
 * skey_get's id borrows LMDB's memory; skey_del accepts an absent record. */
vd_status vd_storage__sid_get(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                              const uint8_t *id, size_t len, uint64_t *key, int *found,
                              vd_err *err);
vd_status vd_storage__sid_put(vd_txn *t, uint32_t cid, const uint8_t *id, size_t len,
                              uint64_t key, vd_err *err);
vd_status vd_storage__sid_del(vd_txn *t, uint32_t cid, const uint8_t *id, size_t len,
                              vd_err *err);
vd_status vd_storage__skey_get(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                               uint64_t key, const uint8_t **id, size_t *len, int *found,
                               vd_err *err);
vd_status vd_storage__skey_put(vd_txn *t, uint32_t cid, uint64_t key, const uint8_t *id,
                               size_t len, unsigned flags, vd_err *err);
vd_status vd_storage__skey_del(vd_txn *t, uint32_t cid, uint64_t key, vd_err *err);
vd_status vd_storage__sidseq_get(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                                 vd_sidseq *q, vd_err *err);
vd_status vd_storage__sidseq_put(vd_txn *t, uint32_t cid, const vd_sidseq *q, vd_err *err);
/* Deletes every record of collection cid from every collection-keyed database. */
vd_status vd_storage__collection_del(vd_txn *t, uint32_t cid, vd_err *err);

/* ---- catalog.c ---------------------------------------------------------------------------- */
vd_collection *vd_storage__coll_new(void); /* refs = 1 */
void vd_storage__coll_ref(vd_collection *c);
/* A collection object carrying a catalog record's identity and counts (no index yet). */
vd_collection *vd_storage__coll_from_rec(const vd_catalog_rec *r);
/* Catalog edits (writer): put replaces a same-named entry (releasing it) and takes over the
 * caller's reference; it cannot fail after vd_storage__catalog_reserve made room for it.
 * remove drops `c` if it is still the entry for its name. */
vd_status vd_storage__catalog_put(vd_store *st, vd_collection *c, vd_err *err);
vd_status vd_storage__catalog_reserve(vd_store *st, size_t extra, vd_err *err);
void vd_storage__catalog_remove(vd_store *st, vd_collection *c);
vd_collection *vd_storage__catalog_find(vd_store *st, const char *name); /* +1 ref or NULL */
/* Releases every entry (close). */
void vd_storage__catalog_clear(vd_store *st);
/* Refreshes c->bytes_disk from count, payload bytes and the index's link bytes. */
void vd_storage__update_bytes(vd_collection *c);

/* ---- load.c ------------------------------------------------------------------------------- */
typedef struct vd_load_progress {
    size_t done, total; /* slots */
    vd_progress_fn fn;  /* may be NULL */
    void *ctx;
} vd_load_progress;
/* Loads collection `r` from t into a new collection object with a fresh deferred-publish
 * index. *out has one reference. progress may be NULL. */
vd_status vd_storage__load(vd_txn *t, const vd_catalog_rec *r, vd_load_progress *progress,
                           vd_collection **out, vd_err *err);
/* Open: every catalog record into the catalog (catalog_only: records only, no index). */
vd_status vd_storage__load_all(vd_store *st, const vd_store_options *opt, vd_err *err);

/* ---- persist.c ---------------------------------------------------------------------------- */
/* A write group's view of one collection (write.c; persist.c and the flush use the fields
 * that say what to persist). */
typedef struct vd_wcoll {
    vd_collection *c;   /* working object; one reference owned */
    vd_collection *old; /* catalog object c replaces (reloaded first), reference owned */
    int created, dropped, mutated;
    uint64_t *pending; /* ids upserted in this group (may repeat) */
    size_t n_pending, cap_pending;
    uint64_t count, payload_bytes; /* working values */
    /* String ids (strids.c): the sequence as this group leaves it, read on first use. */
    vd_sidseq seq;
    uint64_t seq_base; /* next_key as committed: keys below it may have been searched */
    int seq_loaded, seq_dirty;
    uint64_t *deleted; /* keys below seq_base deleted in this group: not reaped now */
    size_t n_deleted, cap_deleted;
} vd_wcoll;
/* Writes w->c's index changes, points every pending id at the slot holding it and rewrites
 * the catalog record with w's counts, in t. */
vd_status vd_storage__persist(vd_txn *t, vd_wcoll *w, vd_err *err);
/* vd_index_changes, skipped for an index that never held a slot (nothing to report). */
int vd_storage__changes(const vd_index *ix, vd_change_fn fn, void *ctx);
/* Persists the changes publish made after the last group (repairs, vacuum) in one synced
 * transaction; called by vd_store_close. On failure disk keeps the last group's state, which
 * is consistent. */
vd_status vd_storage__flush(vd_store *st, vd_err *err);

/* Which filled slot holds the live version of an id, among candidate (id, slot) pairs. */
typedef struct vd_id_slot {
    uint64_t id;
    uint32_t slot;
} vd_id_slot;
void vd_storage__sort_pairs(vd_id_slot *p, size_t n);
/* pairs sorted by vd_storage__sort_pairs; VD_NOTFOUND if id has none. `scratch` holds dim
 * floats. */
vd_status vd_storage__resolve_slot(const vd_index *ix, const vd_id_slot *pairs, size_t n_pairs,
                                   uint64_t id, uint32_t *slot_out, float *scratch, vd_err *err);

/* ---- points.c: the one path of payload changes ---------------------------------------------
 * A point's record written with a new payload (old: its record before, NULL for a new point;
 * payload must not point into the database), or removed; the group's counts follow. */
vd_status vd_storage__point_set(vd_txn *t, vd_wcoll *w, uint64_t key, const vd_point_rec *old,
                                uint32_t slot, const uint8_t *payload, size_t len, vd_err *err);
vd_status vd_storage__point_remove(vd_txn *t, vd_wcoll *w, uint64_t key, const vd_point_rec *old,
                                   vd_err *err);

/* ---- strids.c: string ids in a write group -----------------------------------------------
 * The keys of ids[0..n) into keys (VD_ID_NONE for an absent id unless `assign`, which gives
 * it the sequence's next key without taking it; fresh[i] = 1 then; fresh may be NULL). */
vd_status vd_storage__sids_keys(vd_txn *t, vd_wcoll *w, const vd_str_ids *ids, int assign,
                                uint64_t *keys, uint8_t *fresh, vd_err *err);
/* Writes the mapping of every fresh id and takes its key from the sequence. */
vd_status vd_storage__sids_add(vd_txn *t, vd_wcoll *w, const vd_str_ids *ids,
                               const uint64_t *keys, const uint8_t *fresh, vd_err *err);
/* Removes id -> key of a deleted point (key -> id stays: see strids.c). */
vd_status vd_storage__sids_forget(vd_txn *t, vd_wcoll *w, const uint8_t *id, size_t len,
                                  uint64_t key, vd_err *err);
/* Writes the sequence record if the group changed it (vd_storage__persist). */
vd_status vd_storage__sids_store(vd_txn *t, vd_wcoll *w, vd_err *err);
/* key -> id of each key without a points record (old occupants of freed slots), but for
 * keys deleted in this group. A no-op for integer ids. */
vd_status vd_storage__sids_reap(vd_txn *t, vd_wcoll *w, const uint64_t *keys, size_t n,
                                vd_err *err);

#endif
