/* storage/storage_int.h: what the storage files share: the store and collection structs, the
 * transaction handle, and the internals of each file, grouped by the file that defines them.
 * The byte layout of records is records.h's alone. Nothing here is public.
 *
 * Files, from the bottom up; each calls only files listed before it, never back (no two call
 * each other: tests/layout/check_layout.py):
 *   names.c    name rules: collections, string ids, payload field paths,  } pure: no LMDB,
 *              index kinds; the one check of collection parameters        } the fuzz
 *   json.c     JSON payloads parsed (jansson) and checked                } targets
 *   records.c  the record codec (records.h)                              } link them
 *   filter.c   the filter grammar; filters and field values on a payload }
 *   pindex.c   a payload index's postings in memory (CRoaring bitmaps)   }
 *   lock.c     one writing process per directory, one open per process, the holder's pid
 *   env.c      the LMDB environment: errors, precheck, open, reader gate, map growth, retry
 *   db.c       the databases: handles, identification, get/put/del of each record kind
 *   catalog.c  the in-memory collections: reference counts, the sorted list, info
 *   load.c     a collection from LMDB into a fresh index and its payload indexes; all at open
 *   fcompile.c a filter into the set of matching slots (indexes, stored payloads)
 *   pwrite.c   payload indexes in a write group: values maintained, create, drop, builds
 *   points.c   the one path of payload changes in a write group
 *   strids.c   string ids in a write group: keys, mappings, the sequence, reaping
 *   persist.c  an index's changes into records, which slot holds an id, the flush at close
 *   write.c    the group commit (vd_store_write)    import.c    vd_store_import
 *   snapshot.c read views (vd_snapshot_*)           fquery.c    filtered reads (vd_filtered_*)
 *   check.c    vd_store_check                       backup.c    vd_store_backup
 *   store.c    vd_store_open/close/info */
#ifndef VD_STORAGE_INT_H
#define VD_STORAGE_INT_H

#include <jansson.h>
#include <lmdb.h>
#include <pthread.h>
#include <roaring/roaring.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "storage/records.h"

#define VD_STORE_MAX_DBS 16
_Static_assert(VD_DB_COUNT <= VD_STORE_MAX_DBS, "raise VD_STORE_MAX_DBS with the table");

/* ---- Payload indexes in memory (pindex.c) ------------------------------------------------- */
typedef struct vd_pidx vd_pidx; /* one index's postings */

typedef struct vd_pdef { /* one payload index of a collection */
    uint32_t no;         /* its field number in keys */
    vd_pindex_kind kind;
    int ready;                  /* built over every point: filters use it */
    uint64_t resume, scanned;   /* building: next id to scan, points scanned */
    uint64_t end;               /* building: the scan stops below this id (records.h) */
    char path[VD_FILTER_MAX_PATH_BYTES + 1];
    size_t path_len;
    vd_pidx *idx;               /* ready: its postings; NULL while building */
    uint64_t build_start_ns, build_log_ns; /* writer: progress lines */
} vd_pdef;

/* A collection's payload indexes; exists iff it has at least one. Mutated by the writer with
 * the collection's filter lock held exclusively (only the lock makes changes visible:
 * between groups, the writer reads it without the lock). */
typedef struct vd_pset {
    vd_pdef *defs[VD_FILTER_MAX_PINDEXES];
    size_t n;
    roaring_bitmap_t *live; /* the slots of every stored point */
} vd_pset;

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
    /* Filters (fquery.c, write.c). flock: readers hold it shared from compiling a filter to
     * the end of the search over its set; the writer holds it exclusively while it makes a
     * committed group visible (payload index changes, then vd_index_publish), so a filtered
     * read sees one state of both. committing: set by the writer before a group touching this
     * collection commits, cleared with the publish: a reader that reads stored payloads opens
     * its LMDB snapshot only while it is clear, so the snapshot is the published state.
     * retired: replaced in the catalog by a reload; nothing will publish on it again. */
    vd_pset *pset;
    pthread_rwlock_t flock;
    atomic_int committing;
    atomic_int retired;
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
/* ---- json.c ------------------------------------------------------------------------------- */
/* Parses payload bytes [p, p+n) into *out (release with json_decref) after the checks of
 * vd_json_check_object; VD_NOMEM when jansson ran out of memory, else VD_INVALID naming the
 * fault. Any thread. */
vd_status vd_storage__json_parse(const uint8_t *p, size_t n, json_t **out, vd_err *err);

/* ---- names.c (the rest is in records.h) ------------------------------------------------ */
/* A field path: 1..VD_FILTER_MAX_PATH_BYTES bytes of UTF-8, no NUL, no empty segment. */
vd_status vd_storage__path_check(const char *p, size_t n, vd_err *err);
int vd_storage__utf8_valid(const uint8_t *s, size_t n); /* strict: no overlong, no surrogate */

/* ---- filter.c ----------------------------------------------------------------------------- */
/* Calls fn(ctx, v) on each value the path finds in root (NULL: none) until fn returns non-zero
 * (returned); *present = 1 when the path finds anything. */
int vd_storage__path_visit(const json_t *root, const char *path, size_t n,
                           int (*fn)(void *ctx, const json_t *v), void *ctx, int *present);
/* Whether a checked filter (or one condition) holds on a payload (NULL: a point without). */
int vd_storage__filter_match(const vd_filter *f, const json_t *payload);
int vd_storage__condition_match(const vd_filter *c, const json_t *payload);
/* The values record of field `path` of a payload for an index of `kind` into out (*len = 0
 * when the path finds nothing: no record). */
vd_status vd_storage__pvals_extract(vd_pindex_kind kind, const char *path, size_t path_len,
                                    const json_t *payload, vd_buf *out, size_t *len,
                                    vd_err *err);

/* ---- pindex.c ----------------------------------------------------------------------------- */
vd_pidx *vd_pidx_new(vd_pindex_kind kind); /* NULL: out of memory */
void vd_pidx_free(vd_pidx *x);             /* NULL is a no-op */
vd_pindex_kind vd_pidx_kind(const vd_pidx *x);
/* A slot's decoded values record in or out (out: the record it went in with). */
vd_status vd_pidx_add(vd_pidx *x, uint32_t slot, const vd_pvals *r, vd_err *err);
void vd_pidx_remove(vd_pidx *x, uint32_t slot, const vd_pvals *r);
/* Loading: records in any order, then finish once (sorts numeric keys into buckets). */
vd_status vd_pidx_load_add(vd_pidx *x, uint32_t slot, const vd_pvals *r, vd_err *err);
vd_status vd_pidx_load_finish(vd_pidx *x, vd_err *err);
/* Queries OR their slots into out: one value; numeric keys lo..hi (inclusive); keyword values
 * between two bounds (NULL: open). */
vd_status vd_pidx_eq(const vd_pidx *x, const vd_pval_item *v, roaring_bitmap_t *out,
                     vd_err *err);
vd_status vd_pidx_range(const vd_pidx *x, uint64_t lo, uint64_t hi, roaring_bitmap_t *out,
                        vd_err *err);
vd_status vd_pidx_string_range(const vd_pidx *x, const vd_pval_item *lo, int lo_incl,
                               const vd_pval_item *hi, int hi_incl, roaring_bitmap_t *out);
const roaring_bitmap_t *vd_pidx_present(const vd_pidx *x);
const roaring_bitmap_t *vd_pidx_fallback(const vd_pidx *x);
uint64_t vd_pidx_points(const vd_pidx *x); /* points with at least one key */
size_t vd_pidx_bytes(const vd_pidx *x);
/* 1 if a and b hold the same postings and both are internally consistent (check). */
int vd_pidx_same(const vd_pidx *a, const vd_pidx *b);

vd_pset *vd_pset_new(void); /* with an empty live bitmap; NULL: out of memory */
void vd_pset_free(vd_pset *p);
/* The index on exactly this path, or NULL. */
vd_pdef *vd_pset_find(const vd_pset *p, const char *path, size_t len);
void vd_pdef_free(vd_pdef *d);

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

/* Payload index definitions and values (a table absent from an old read-only directory reads
 * as empty: vd_storage__db_present). */
vd_status vd_storage__pdef_put(vd_txn *t, uint32_t cid, uint32_t no, const vd_pdef_rec *r,
                               vd_err *err);
vd_status vd_storage__pdef_del(vd_txn *t, uint32_t cid, uint32_t no, vd_err *err);
vd_status vd_storage__pval_get(vd_txn *t, uint32_t cid, uint32_t no, vd_pindex_kind kind,
                               uint32_t slot, vd_pvals *r, int *found, vd_err *err);
vd_status vd_storage__pval_put(vd_txn *t, uint32_t cid, uint32_t no, uint32_t slot,
                               const uint8_t *rec, size_t len, vd_err *err);
vd_status vd_storage__pval_del(vd_txn *t, uint32_t cid, uint32_t no, uint32_t slot,
                               vd_err *err);
/* Deletes every values record of index `no` of collection cid. */
vd_status vd_storage__pvals_del_all(vd_txn *t, uint32_t cid, uint32_t no, vd_err *err);
/* A cursor on db positioned at the first key >= key[0..n) (*rc: MDB_NOTFOUND when none, or
 * the table is absent). The caller closes a non-NULL *cur. */
vd_status vd_storage__cursor_at(vd_txn *t, vd_db db, const void *key, size_t n,
                                MDB_cursor **cur, MDB_val *k, MDB_val *v, int *rc,
                                vd_err *err);

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
/* The postings of index `no` of collection cid from its values records, into *out. */
vd_status vd_storage__pidx_load(vd_txn *t, const vd_collection_params *p, uint32_t cid,
                                uint32_t no, vd_pindex_kind kind, vd_pidx **out, vd_err *err);
/* The slots named by collection cid's points records, into a new bitmap *out. */
vd_status vd_storage__live_load(vd_txn *t, uint32_t cid, roaring_bitmap_t **out, vd_err *err);

/* ---- fcompile.c --------------------------------------------------------------------------- */
/* The slots of c's points that checked filter f matches, into a new bitmap *out: conditions
 * a ready index answers from it (values it could not key checked in their payloads), the
 * others by one pass over the collection's payloads in t. The caller keeps c's payload
 * indexes from changing (the filter lock, or being the writer); stats may be NULL. */
vd_status vd_storage__filter_compile(vd_txn *t, const vd_collection *c, const vd_filter *f,
                                     roaring_bitmap_t **out, vd_filtered_stats *stats,
                                     vd_err *err);
/* 1 if compiling f reads stored payloads (a condition no ready index answers, or an index
 * holding values it could not key). */
int vd_storage__filter_reads_payloads(const vd_collection *c, const vd_filter *f);
/* 1 if every condition of f is answered by a ready index of c. */
int vd_storage__filter_indexed(const vd_collection *c, const vd_filter *f);

/* ---- persist.c ---------------------------------------------------------------------------- */
/* A write group's view of one collection (write.c; persist.c and the flush use the fields
 * that say what to persist). */
typedef struct vd_wcoll {
    vd_collection *c;   /* working object; one reference owned */
    vd_collection *old; /* catalog object c replaces (reloaded first), reference owned */
    int created, dropped, mutated;
    uint64_t *pending; /* ids whose payload changed in this group (may repeat) */
    size_t n_pending, cap_pending;
    uint64_t count, payload_bytes; /* working values */
    /* String ids (strids.c): the sequence as this group leaves it, read on first use. */
    vd_sidseq seq;
    uint64_t seq_base; /* next_key as committed: keys below it may have been searched */
    int seq_loaded, seq_dirty;
    uint64_t *deleted; /* keys below seq_base deleted in this group: not reaped now */
    size_t n_deleted, cap_deleted;
    /* payload indexes (pwrite.c) */
    uint32_t *dead; /* slots whose payload-index values go (old versions), may repeat */
    size_t n_dead, cap_dead;
    vd_buf plog;    /* in-memory changes to apply once the group is committed */
    size_t plog_len;
    vd_pdef *pcreated;             /* PINDEX_CREATE: the new definition, not in pset yet */
    vd_pset *pnewset;  /* with pcreated on a collection without any: its set, live loaded */
    uint32_t pdropped[VD_FILTER_MAX_PINDEXES]; /* PINDEX_DROP: field numbers dropped */
    size_t n_pdropped;
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

/* ---- pwrite.c ----------------------------------------------------------------------------- */
/* The one path of every payload change (upsert, delete, payload update): point `id` changed
 * its payload in this group and old_slot (VD_SLOT_UNRESOLVED: none) held its previous
 * version. The old slot's payload-index values go; the id's record as it stands when the
 * group persists is indexed then (vd_storage__ppersist). Also what slot resolution reads. */
vd_status vd_storage__payload_changed(vd_wcoll *w, uint64_t id, uint32_t old_slot,
                                      vd_err *err);
/* After vd_storage__persist resolved the slots: the values records of every changed point,
 * and the in-memory changes to apply at finish. */
vd_status vd_storage__ppersist(vd_txn *t, vd_wcoll *w, vd_err *err);
/* After every op and persist of the group: the live slots of a collection getting its first
 * payload index (the points records name their final slots only then). */
vd_status vd_storage__plive(vd_txn *t, vd_wcoll *w, vd_err *err);
/* After the commit, with c->flock held exclusively: the in-memory changes. VD_NOMEM leaves
 * the postings short of the commit: the caller marks the collection for reload. */
vd_status vd_storage__pfinish(vd_wcoll *w, vd_err *err);
/* Frees what the group allocated for payload indexes. */
void vd_storage__prelease(vd_wcoll *w);
/* The ops (write.c has found the collection): create and drop a payload index; delete by
 * filter collects the ids to delete into *ids (vd_free). VD_OK with op->status set when the
 * op is refused. */
vd_status vd_storage__op_pindex_create(vd_txn *t, vd_wcoll *w, vd_op *op, vd_err *err);
vd_status vd_storage__op_pindex_drop(vd_txn *t, vd_wcoll *w, vd_op *op, vd_err *err);
vd_status vd_storage__filter_ids(vd_txn *t, vd_wcoll *w, const vd_filter *f, uint64_t **ids,
                                 size_t *n, vd_err *err);

#endif
