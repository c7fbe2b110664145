/* storage/vd_storage.h: the data directory. One LMDB environment holds the collections
 * catalog, every point (id, vector, JSON payload) and each collection's HNSW graph, so that
 * LMDB is the source of truth and reopening loads the graph without re-inserting anything.
 *
 * Threads (each function repeats its rule where it is declared):
 *  - writer-only: vd_store_write(), vd_store_import() and vd_store_check(), from ONE thread
 *    at a time (the daemon's writer thread; `vectord build` and `vectord check` have no
 *    other), and every vd_index call but searches; write may fan index work out to
 *    n_threads;
 *  - any thread, concurrently with the writer and each other: vd_store_acquire(),
 *    vd_collection_*(), vd_store_list(), vd_snapshot_*(), vd_store_info_get(), searches on
 *    a collection's index, vd_name_check(), vd_json_check_object(), vd_store_backup();
 *  - vd_store_open() and vd_store_close(): with no other call on the store running.
 *
 * Write contract: vd_store_write() applies a group of operations in one LMDB transaction and
 * commits once (group commit). When it returns VD_OK the commit is durable (synced) and every
 * operation's effect is visible to every later read; operations that failed validation are
 * reported in their own `status` and changed nothing. When it returns an error the commit
 * failed: nothing changed on disk nor in memory. */
#ifndef VD_STORAGE_H
#define VD_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/vd_common.h"
#include "index/vd_index.h"

#define VD_STORAGE_FORMAT_VERSION 1
#define VD_NAME_MAX 64 /* collection names: [A-Za-z0-9_-]{1,64} */

typedef struct vd_store vd_store;           /* opaque: one open data directory */
typedef struct vd_collection vd_collection; /* opaque, reference counted */
typedef struct vd_snapshot vd_snapshot;     /* opaque: a consistent read view (LMDB read txn) */

typedef struct vd_store_options {
    int create;          /* create the directory if missing (serve, build); 0 for info/check */
    int read_only;       /* open without writing anything (info, check) */
    uint32_t n_threads;  /* index worker threads for writes; 0 = cores */
    vd_progress_fn load_progress; /* optional, called while collections load */
    void *load_progress_ctx;
    int catalog_only;    /* with read_only: read the catalog, load no index (vectord info);
                          * vd_collection_index() is NULL then and only listing and info work */
} vd_store_options;

/* Opens (and with opt->create, creates) the data directory `dir` and loads every collection
 * into memory. Refuses, touching nothing, a directory written by a newer format
 * (VD_VERSION) or holding files that are not ours (VD_CORRUPT), with the path in the message.
 * On VD_OK *out owns the store; release with vd_store_close(). Any thread. */
vd_status vd_store_open(const char *dir, const vd_store_options *opt, vd_store **out,
                        vd_err *err);
/* Flushes what publishing changed since the last write (so the stored graph is the one in
 * memory), releases the catalog's references and closes. No other call on `st` may be
 * running; a collection still acquired stays valid until its vd_collection_release(). */
void vd_store_close(vd_store *st);

/* Validates a collection name: [A-Za-z0-9_-]{1,64}. Any thread (pure). */
vd_status vd_name_check(const char *name, vd_err *err);
/* Validates that bytes [p, p+n) hold exactly one JSON object (RFC 8259, UTF-8, nesting
 * depth <= 64). The message names the byte offset of the first problem. Any thread (pure). */
vd_status vd_json_check_object(const uint8_t *p, size_t n, vd_err *err);

/* ---- Collections ------------------------------------------------------------------------ */
/* What a collection's point ids are, fixed at creation. Inside, the index keeps dense
 * internal ids either way. Stored in catalog records: values never change. */
typedef enum vd_id_type {
    VD_ID_INT = 0, /* unsigned 64-bit integers chosen by the user */
    VD_ID_STR = 1, /* UTF-8 strings of 1..512 bytes, compared bytewise */
} vd_id_type;
const char *vd_id_type_name(vd_id_type t);                 /* "int", "str" */
vd_status vd_id_type_parse(const char *s, vd_id_type *out); /* VD_INVALID if unknown */

typedef struct vd_collection_params {
    char name[VD_NAME_MAX + 1];
    uint32_t dim;             /* VD_PARAM_DIM (index/vd_index.h's table, as are the others) */
    vd_metric metric;
    uint32_t m;               /* 0 -> the table's default */
    uint32_t ef_construction; /* 0 -> the table's default */
    uint32_t ef_search;       /* 0 -> the table's default */
    vd_id_type id_type;       /* 0 = VD_ID_INT */
    vd_quantization quantization; /* 0 = VD_QUANT_NONE */
} vd_collection_params;

typedef struct vd_collection_info {
    vd_collection_params params; /* defaults filled in */
    uint64_t count;              /* points */
    uint64_t created_unix_s;
    uint64_t bytes_disk;         /* bytes of stored records (approximate) */
    uint64_t bytes_memory;       /* bytes the in-memory index holds */
} vd_collection_info;

/* Finds a live collection and takes a reference: the collection, its index and its params
 * stay valid until vd_collection_release(), even if it is dropped meanwhile (a dropped
 * collection keeps answering the searches already holding it). VD_NOTFOUND otherwise.
 * Any thread; the catalog's lock is held for the lookup only. */
vd_status vd_store_acquire(vd_store *st, const char *name, vd_collection **out, vd_err *err);
void vd_collection_release(vd_collection *c); /* NULL is a no-op */

/* Borrowed until release; any thread. Searches go straight to the index (vd_index_search,
 * any thread); every other vd_index call on it belongs to the store's writer. */
vd_index *vd_collection_index(const vd_collection *c);
const vd_collection_params *vd_collection_params_of(const vd_collection *c);
void vd_collection_info_get(const vd_collection *c, vd_collection_info *out);

/* All live collections, sorted by name, into a new array *out of *n_out entries; free it
 * with vd_free(). Any thread. */
vd_status vd_store_list(vd_store *st, vd_collection_info **out, size_t *n_out, vd_err *err);

/* ---- Reads from LMDB ---------------------------------------------------------------------
 * A snapshot is a consistent read view of what is committed; any thread may open one and
 * another thread may end it. Pointers it returns are valid until vd_snapshot_end(). Keep
 * snapshots short: a long one pins old pages and makes the file grow. A thread must not begin
 * a second snapshot while it holds one (a map resize waiting between the two would deadlock). */
vd_status vd_snapshot_begin(vd_store *st, vd_snapshot **out, vd_err *err);
void vd_snapshot_end(vd_snapshot *s); /* NULL is a no-op */

/* Point `id` of collection c: *found_out = 0 if absent (then VD_OK). vec_out (may be NULL)
 * gets dim floats (normalized under cosine), payload_out/payload_len_out (may be NULL) the
 * stored JSON bytes or NULL/0 when the point has no payload. */
vd_status vd_snapshot_get(vd_snapshot *s, const vd_collection *c, uint64_t id, int *found_out,
                          const float **vec_out, const uint8_t **payload_out,
                          size_t *payload_len_out, vd_err *err);

/* The stored vector of `slot` of collection c (dim floats, normalized under cosine) if that
 * slot holds point `id` in this snapshot, else NULL - also when the record is damaged or
 * LMDB fails (*err says which, when err is not NULL). In LMDB's map when it is 4-aligned,
 * else copied into caller-owned `scratch` (dim floats): valid until the snapshot ends or
 * scratch is reused. For an int8 index's re-ranking (vd_vector_source). */
const float *vd_snapshot_slot_vector(vd_snapshot *s, const vd_collection *c, uint32_t slot,
                                     uint64_t id, float *scratch, vd_err *err);

/* ---- Writes: one writer, grouped ------------------------------------------------------- */
typedef enum vd_op_kind {
    VD_OP_CREATE = 1, /* params */
    VD_OP_DROP = 2,   /* collection */
    VD_OP_UPSERT = 3, /* collection, ids, vectors, payloads */
    VD_OP_DELETE = 4, /* collection, ids */
} vd_op_kind;

typedef struct vd_op {
    vd_op_kind kind;
    const char *collection;        /* DROP, UPSERT, DELETE (borrowed for the call) */
    vd_collection_params params;   /* CREATE */
    const uint64_t *ids;           /* UPSERT, DELETE: n ids, distinct (borrowed) */
    size_t n;
    const float *vectors;          /* UPSERT: n * dim floats, row-major (borrowed) */
    const uint8_t *const *payloads; /* UPSERT: NULL, or n pointers (NULL = no payload) */
    const uint32_t *payload_lens;  /* UPSERT: n lengths when payloads != NULL */
    /* results, filled by vd_store_write */
    vd_status status;
    vd_err err;
    uint64_t n_done; /* UPSERT: points written; DELETE: points that existed and were deleted */
} vd_op;

/* Writer thread only. Applies ops[0..n_ops) in order, in one LMDB transaction, and commits
 * once; see the write contract at the top. Each op is validated on its own (name, dims,
 * NaN/Inf, duplicate ids, empty batch, payload JSON, existence) and an invalid op is skipped
 * with its status set. Later ops see earlier ones (create then upsert in one group works).
 * Returns VD_FULL for a full disk, VD_IO for other commit failures; nothing is changed then.
 * The calling thread must not hold a snapshot: growing the map waits until every snapshot
 * has ended. */
vd_status vd_store_write(vd_store *st, vd_op *ops, size_t n_ops, vd_err *err);

/* Writer thread only. Adopts a fully built index (vd_index_add_batch, with
 * params.deferred_publish == 0) as the new collection `p->name`, writing its points,
 * payloads and graph in ONE transaction: after a crash or failure the collection is either
 * complete or absent. payloads is NULL or holds one entry per id of ids[0..n) (the ids the
 * index was built from; NULL entry = none), validated as JSON objects. With replace == 0 an
 * existing collection of that name is VD_EXISTS; with replace != 0 it is dropped in the same
 * transaction. On VD_OK the store takes ownership of `ix`; otherwise the caller keeps it. As
 * for vd_store_write, the calling thread must not hold a snapshot. */
vd_status vd_store_import(vd_store *st, const vd_collection_params *p, vd_index *ix, size_t n,
                          const uint64_t *ids, const uint8_t *const *payloads,
                          const uint32_t *payload_lens, int replace, vd_progress_fn progress,
                          void *progress_ctx, vd_err *err);

/* ---- Operations ------------------------------------------------------------------------- */
typedef struct vd_store_info {
    uint32_t format_version;
    uint64_t map_bytes;  /* current LMDB map size */
    uint64_t file_bytes; /* data file size */
    uint64_t used_bytes; /* pages in use */
} vd_store_info;
vd_status vd_store_info_get(vd_store *st, vd_store_info *out, vd_err *err); /* any thread */

/* Integrity check of everything stored: every point has a vector and a graph node and vice
 * versa, every link points at a live node, counts agree, the graph validates. Writes a
 * report line per problem to `report` (may be NULL), on the calling thread. VD_CORRUPT if
 * anything is wrong. Writer thread only (it reads the indexes' writer-side state), or with
 * no writer running; not on a catalog-only store (VD_INVALID). */
typedef void (*vd_report_fn)(void *ctx, const char *line);
vd_status vd_store_check(vd_store *st, vd_report_fn report, void *ctx, vd_err *err);

/* Consistent compacted copy of the data directory into `to_dir` (created; must be empty or
 * absent), safe while another process serves and writes `dir`. Needs no vd_store: it opens
 * the environment read-only on its own, so it must not run in a process that has `dir` open
 * as a vd_store (LMDB forbids one environment opened twice in a process). Any thread. */
vd_status vd_store_backup(const char *dir, const char *to_dir, vd_err *err);

#endif
