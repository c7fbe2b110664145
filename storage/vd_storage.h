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
#define VD_STR_ID_MAX 512 /* string ids: 1..512 bytes of UTF-8 */

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

/* ---- Filters and payload indexes: the limits ---------------------------------------------
 * The one table of what a filter and a payload index may hold, checked by vd_filter_check
 * and by the payload-index operations (columns: id, what it counts, limit). A filter's depth
 * counts $and, $or and $not levels, the top level as 1 (the implicit AND of a dict's several
 * keys adds none); its terms are its conditions, its $and/$or/$not nodes and every value of
 * an $in/$nin list. */
#define VD_FILTER_LIMIT_MAP(X)                                                                 \
    X(DEPTH, "levels of nesting", 16)                                                          \
    X(TERMS, "terms", 1024)                                                                    \
    X(PATH_BYTES, "bytes in a field path", 256)                                                \
    X(PINDEXES, "payload indexes per collection", 16)
typedef enum vd_filter_limit {
#define X(id, what, n) VD_FILTER_LIMIT_##id,
    VD_FILTER_LIMIT_MAP(X)
#undef X
} vd_filter_limit;
enum {
#define X(id, what, n) VD_FILTER_MAX_##id = n,
    VD_FILTER_LIMIT_MAP(X)
#undef X
};

/* ---- Payload indexes -------------------------------------------------------------------- */
/* What a payload index on a field holds: the field's values of one type. Stored in records:
 * values never change. */
typedef enum vd_pindex_kind {
    VD_PINDEX_KEYWORD = 1, /* strings, compared exactly (byte for byte) */
    VD_PINDEX_INTEGER = 2, /* integral numbers within int64 */
    VD_PINDEX_FLOAT = 3,   /* numbers (as doubles) */
    VD_PINDEX_BOOL = 4,
} vd_pindex_kind;
const char *vd_pindex_kind_name(vd_pindex_kind k);                 /* "keyword"... */
vd_status vd_pindex_kind_parse(const char *s, vd_pindex_kind *out); /* VD_INVALID if unknown */

typedef struct vd_pindex_info {
    char field[VD_FILTER_MAX_PATH_BYTES + 1]; /* dotted path, NUL-terminated */
    vd_pindex_kind kind;
    int building;          /* still being created over the existing points: not used yet */
    uint64_t points;       /* points with a value of the kind (building: points scanned) */
    uint64_t bytes_memory; /* bytes its in-memory postings hold */
} vd_pindex_info;

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

/* ---- Point ids ------------------------------------------------------------------------------
 * String ids travel packed: n ids back to back in `bytes`, id i is
 * bytes[i ? ends[i-1] : 0 .. ends[i]). The arrays are borrowed. */
typedef struct vd_str_ids {
    const uint8_t *bytes;
    const uint32_t *ends; /* n end offsets; NULL (with n 0) when the request has none */
    size_t n;
    size_t n_bytes;       /* bytes of `bytes`: the last end */
} vd_str_ids;

static inline size_t vd_str_ids_start(const vd_str_ids *s, size_t i)
{
    return i ? s->ends[i - 1] : 0;
}

/* The string id rule: 1..VD_STR_ID_MAX bytes of valid UTF-8 (bytewise; any code point, NUL
 * included). VD_INVALID "string id is empty", "string id of 513 bytes is longer than 512",
 * "string id is not valid UTF-8 (byte 3: invalid continuation byte)". Any thread (pure). */
vd_status vd_str_id_check(const uint8_t *p, size_t n, vd_err *err);
/* Every id of s: the packing (ends ascending, the last one at n_bytes), each id by vd_str_id_check
 * ("row 3: string id is empty"), and with `distinct` none twice ("string id \"a\" appears
 * more than once (rows 2 and 5)"). A sorted copy of 8 bytes per id when distinct. Any
 * thread (pure). */
vd_status vd_str_ids_check(const vd_str_ids *s, int distinct, vd_err *err);
/* The ids of a batch against its collection's id type: an int collection takes `ids`, a
 * str collection `str` (with str->ends set), never both nor the other kind ("collection
 * chunks has string ids; row 0 is an integer id (7)"); string ids pass vd_str_ids_check.
 * Integer ids are not checked further here (vd_ids_check_distinct is the index's). n is the
 * batch's size. Any thread (pure). */
vd_status vd_point_ids_check(const vd_collection_params *p, const uint64_t *ids,
                             const vd_str_ids *str, size_t n, int distinct, vd_err *err);
/* Writes a printable form of string id p[0..n) into out (at most out_len bytes, NUL
 * included): quoted, with control characters and quotes escaped, cut with "..." past about
 * 40 bytes. For messages. */
void vd_str_id_label(const uint8_t *p, size_t n, char *out, size_t out_len);

typedef struct vd_collection_info {
    vd_collection_params params; /* defaults filled in */
    uint64_t count;              /* points */
    uint64_t created_unix_s;
    uint64_t bytes_disk;         /* bytes of stored records (approximate) */
    uint64_t bytes_memory;       /* bytes the in-memory index holds */
    uint32_t n_pindexes;         /* payload indexes, by field */
    vd_pindex_info pindexes[VD_FILTER_MAX_PINDEXES];
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
/* The collection's id inside the data directory: never reused, so a dropped and recreated
 * collection of the same name has another (scroll cursors name it). Any thread. */
uint32_t vd_collection_id(const vd_collection *c);
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

/* ---- Filters ----------------------------------------------------------------------------
 * A filter selects points by payload: a tree of conditions on dotted field paths joined by
 * AND, OR and NOT (the Mongo-style dict grammar of docs/protocol.md, decoded by proto/ or
 * built by a caller). Semantics, on the values V a path finds in a payload (the path walks
 * nested objects and fans out over arrays of objects; a final array contributes its
 * elements): EQ holds when some value equals the operand (numbers compare as numbers, 1 ==
 * 1.0; a string, number or bool only ever equals its own type); GT/GTE/LT/LTE when some number
 * or string compares so with a number or string operand; IN when some value equals some
 * operand; NE is NOT EQ and NIN is NOT IN (so both hold on a point without the field);
 * EXISTS true when the path finds anything, null included. A tree is borrowed: every pointer
 * in it must stay valid for the call it is passed to. */
typedef enum vd_filter_op {
    VD_FOP_EQ = 1, VD_FOP_NE = 2, VD_FOP_GT = 3, VD_FOP_GTE = 4, VD_FOP_LT = 5, VD_FOP_LTE = 6,
    VD_FOP_IN = 7, VD_FOP_NIN = 8, VD_FOP_EXISTS = 9,            /* conditions */
    VD_FOP_AND = 10, VD_FOP_OR = 11, VD_FOP_NOT = 12,            /* logical nodes */
} vd_filter_op;
const char *vd_filter_op_name(vd_filter_op op); /* "$gte"; "$?" for unknown values */

typedef enum vd_fval_type {
    VD_FVAL_STRING = 1, VD_FVAL_INT = 2, VD_FVAL_FLOAT = 3, VD_FVAL_BOOL = 4,
} vd_fval_type;

typedef struct vd_fval { /* an operand */
    vd_fval_type type;
    union {
        struct {
            const char *p; /* UTF-8, not NUL-terminated */
            size_t len;
        } s;
        int64_t i;
        double f;
        int b;
    };
} vd_fval;

typedef struct vd_filter {
    vd_filter_op op;
    /* conditions: */
    const char *field; /* dotted path, field_len bytes (not NUL-terminated) */
    size_t field_len;
    const vd_fval *values; /* EQ..LTE: 1 (EXISTS: 1 bool); IN, NIN: n_values >= 0 */
    size_t n_values;
    /* logical nodes: */
    const struct vd_filter *children; /* AND, OR: n_children >= 1; NOT: exactly 1 */
    size_t n_children;
    int implicit; /* AND: the several keys of one dict, not an explicit $and (only changes how
                   * messages name a child's path) */
} vd_filter;

/* Validates a tree against the grammar and VD_FILTER_LIMIT_MAP: known ops, the operand count
 * and types of each op (EQ/NE/IN/NIN: any operand type; GT..LTE: a number or a string;
 * EXISTS: one bool), finite numbers, valid UTF-8 strings, paths of 1..256 bytes without
 * empty segments, non-empty AND/OR, depth and terms. VD_INVALID naming the fault and where,
 * the path written as the dict grammar spells it: "filter.$or[1].year: $gte expects a
 * finite number, got nan". Any thread (pure). */
vd_status vd_filter_check(const vd_filter *f, vd_err *err);

/* A filter compiled against one collection for a read: the set of its points that match, as
 * of the published state the searches see. Begin holds the collection's filter lock (shared)
 * until end, so no write group becomes visible in between: a search run meanwhile on the
 * collection's index sees exactly the points the set was computed for. Conditions on fields
 * with a payload index of the operand's type are answered from the index; the others from
 * the stored payloads (one pass over the collection's payloads per compile). The caller
 * holds `c` (acquired) until end; f is read during begin only. Any thread; a thread must end
 * one before it begins another, and must not begin one while it holds a snapshot (begin may
 * wait for a commit, and a commit that grows the map waits for every snapshot to end);
 * snapshots begun after begin are fine. */
typedef struct vd_filtered vd_filtered; /* opaque */
typedef struct vd_filtered_stats {
    uint64_t matching;        /* points in the set */
    uint32_t conditions_indexed, conditions_scanned; /* by payload index / by payload */
    uint64_t payloads_read;   /* payloads parsed to compile it */
    uint64_t compile_ns;
} vd_filtered_stats;
vd_status vd_filtered_begin(vd_store *st, vd_collection *c, const vd_filter *f,
                            vd_filtered **out, vd_err *err);
void vd_filtered_end(vd_filtered *v); /* NULL is a no-op */
void vd_filtered_stats_get(const vd_filtered *v, vd_filtered_stats *out);
/* 1 if slot (the index's slot) is in the set. */
int vd_filtered_allows(const vd_filtered *v, uint32_t slot);
/* The slots of the set in ascending order from `from`, up to cap; returns how many. */
size_t vd_filtered_next(const vd_filtered *v, uint32_t from, uint32_t *slots, size_t cap);
/* The set as a dense bitmap (bit s of word s / 64), made on the first call and owned by v;
 * *n_bits covers every slot of the set. NULL (VD_NOMEM) on allocation failure. The thread
 * that began v. */
const uint64_t *vd_filtered_bits(vd_filtered *v, uint32_t *n_bits, vd_err *err);
/* The set as the index's search filter (vd_index_search_opts), valid until vd_filtered_end:
 * its exact size, and a dense bitmap when it is large or set-lookup callbacks when it is
 * small (the exact scan then walks the set, not the slots). VD_NOMEM. */
vd_status vd_filtered_slot_filter(vd_filtered *v, vd_slot_filter *out, vd_err *err);

/* String ids (collections with id_type VD_ID_STR): the collection's internal key of `id`
 * (points, vectors and searches are keyed by it), or *found_out = 0. Ids are not checked
 * here (vd_str_ids_check). */
vd_status vd_snapshot_str_key(vd_snapshot *s, const vd_collection *c, const uint8_t *id,
                              size_t len, uint64_t *key_out, int *found_out, vd_err *err);
/* The string id of internal key `key`, borrowed until vd_snapshot_end, or *found_out = 0.
 * A key stays mapped after its point is deleted, until the last slot of the index holding
 * it is freed (vacuum, which waits for searches in progress), and keys are never reused: a
 * snapshot begun before a search maps every key the search returns but those committed
 * after the snapshot began, which a snapshot begun after the search maps. */
vd_status vd_snapshot_key_str(vd_snapshot *s, const vd_collection *c, uint64_t key,
                              const uint8_t **id_out, size_t *len_out, int *found_out,
                              vd_err *err);

/* Scrolling: the points of c in id order (numeric for int ids, bytewise for string ids),
 * starting after a position. Each is handed to fn: vec and payload borrowed until
 * vd_snapshot_end, str_id only until fn returns; fn returns nonzero to stop. vec is NULL
 * unless with_vectors. */
typedef struct vd_scroll_point {
    uint64_t id;             /* int ids: the id; string ids: the internal key */
    const uint8_t *str_id;   /* string ids: the id, else NULL */
    size_t str_len;
    const float *vec;        /* with_vectors: dim floats (normalized under cosine) */
    const uint8_t *payload;  /* NULL when the point has none */
    size_t payload_len;
} vd_scroll_point;
typedef int (*vd_scroll_fn)(void *ctx, const vd_scroll_point *pt);
typedef struct vd_scroll_from {
    int start;            /* 1: from the first point; else after the position below */
    uint64_t id;          /* int ids: the last id seen */
    const uint8_t *str;   /* string ids: the last id seen (any bytes; need not exist) */
    size_t str_len;
} vd_scroll_from;
/* Walks until fn stops it or the collection ends (*at_end = 1 then). With a filter (checked
 * by the caller, vd_filter_check) only the points it matches reach fn; the others are
 * passed over, so one call may read many records for few points. */
vd_status vd_snapshot_scroll(vd_snapshot *s, const vd_collection *c, const vd_scroll_from *from,
                             int with_vectors, const vd_filter *filter, vd_scroll_fn fn,
                             void *ctx, int *at_end, vd_err *err);
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
    VD_OP_DELETE = 4, /* collection, ids; or collection, filter */
    VD_OP_SET_PAYLOAD = 5,   /* collection, ids, payloads, merge */
    VD_OP_PINDEX_CREATE = 6, /* collection, field, pindex_kind */
    VD_OP_PINDEX_DROP = 7,   /* collection, field */
} vd_op_kind;

typedef struct vd_op {
    vd_op_kind kind;
    const char *collection;        /* DROP, UPSERT, DELETE (borrowed for the call) */
    vd_collection_params params;   /* CREATE */
    const uint64_t *ids;           /* UPSERT, DELETE, SET_PAYLOAD: n ids, distinct (borrowed);
                                    * NULL when str_ids names the points */
    size_t n;
    const float *vectors;          /* UPSERT: n * dim floats, row-major (borrowed) */
    const uint8_t *const *payloads; /* UPSERT: NULL, or n pointers (NULL = no payload);
                                     * SET_PAYLOAD: n pointers (NULL = none: clears under
                                     * replace, changes nothing under merge) */
    const uint32_t *payload_lens;  /* n lengths when payloads != NULL */
    /* results, filled by vd_store_write */
    vd_status status;
    vd_err err;
    uint64_t n_done; /* UPSERT: points written; DELETE: points that existed and were deleted;
                      * SET_PAYLOAD: points that existed and were updated */
    /* Appended for string ids and set_payload: */
    vd_str_ids str_ids; /* UPSERT, DELETE, SET_PAYLOAD of a str collection: the n ids */
    int merge;          /* SET_PAYLOAD: 1 merges top-level keys into the stored object, 0
                         * replaces it */
    /* added by payload indexes and filters (zero: not given) */
    const vd_filter *filter;    /* DELETE: instead of ids, every point it matches (checked) */
    const char *field;          /* PINDEX_*: the dotted path, NUL-terminated (borrowed) */
    vd_pindex_kind pindex_kind; /* PINDEX_CREATE */
} vd_op;

/* Writer thread only. Applies ops[0..n_ops) in order, in one LMDB transaction, and commits
 * once; see the write contract at the top. Each op is validated on its own (name, dims,
 * NaN/Inf, duplicate ids, empty batch, payload JSON, existence) and an invalid op is skipped
 * with its status set. Later ops see earlier ones (create then upsert in one group works).
 * Returns VD_FULL for a full disk, VD_IO for other commit failures; nothing is changed then.
 * The calling thread must not hold a snapshot: growing the map waits until every snapshot
 * has ended. */
vd_status vd_store_write(vd_store *st, vd_op *ops, size_t n_ops, vd_err *err);

/* Payload indexes over existing points. VD_OP_PINDEX_CREATE commits an index's definition;
 * from then on every write maintains it, and its postings over the points stored before are
 * built by steps, each one transaction of at most max_points points, so that write groups
 * run between steps and searches never wait for a build. Filters use the index once its last
 * step has committed. vd_store_pindex_step advances the oldest index still building (one
 * left half-built by a crash resumes where it stopped); *more = 1 while any index builds.
 * Progress goes to the log. Writer thread only, as vd_store_write. */
vd_status vd_store_pindex_step(vd_store *st, size_t max_points, int *more, vd_err *err);
/* Whether collection/field has a payload index (VD_NOTFOUND otherwise) and, if so, whether
 * it is still building. Any thread. */
vd_status vd_store_pindex_state(vd_store *st, const char *collection, const char *field,
                                int *building, vd_err *err);

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

/* The same for a collection of string ids (p->id_type VD_ID_STR): ix was built with the ids
 * 0..n-1 (row numbers), which become the internal keys, and str_ids names row i's point
 * (n ids, distinct, each by vd_str_id_check). Writer thread only. */
vd_status vd_store_import_str(vd_store *st, const vd_collection_params *p, vd_index *ix,
                              const vd_str_ids *str_ids, const uint8_t *const *payloads,
                              const uint32_t *payload_lens, int replace,
                              vd_progress_fn progress, void *progress_ctx, vd_err *err);

/* ---- Operations ------------------------------------------------------------------------- */
typedef struct vd_store_info {
    uint32_t format_version;
    uint64_t map_bytes;  /* current LMDB map size */
    uint64_t file_bytes; /* data file size */
    uint64_t used_bytes; /* pages in use */
} vd_store_info;
vd_status vd_store_info_get(vd_store *st, vd_store_info *out, vd_err *err); /* any thread */

/* What the write transactions cost, for monitoring (the daemon's metrics): plain counters
 * since open, read with no lock. `last_commit_ns` is the latest mdb_txn_commit (page writes
 * and the fsync that makes a group durable); read right after vd_store_write on the writer
 * thread it is that group's. Any thread. */
typedef struct vd_store_counters {
    uint64_t commits;        /* write transactions committed (groups, imports, the flush) */
    uint64_t commit_ns;      /* their total time in mdb_txn_commit */
    uint64_t last_commit_ns; /* the latest one */
} vd_store_counters;
void vd_store_counters_get(vd_store *st, vd_store_counters *out);

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
