/* engine/vd_engine.h: the operations of a data directory on domain values - create, drop,
 * list, info, count, stats, upsert, delete, get, search, scroll, set_payload - checked
 * against the limits and the collection, and executed against a vd_store.
 *
 * The engine knows nothing of threads, sockets or the wire format: the daemon's reader
 * threads and writer thread call it on requests proto/ decoded, and the embedded Python
 * module calls the very same functions on numpy arrays. Arrays travel in host order, row
 * major; a result owns its arrays, so a caller may hand them on (to an encoder, to numpy)
 * without a copy.
 *
 * Threads: vd_engine_read() from any number of threads at once, concurrently with writes;
 * the write functions and vd_engine_build from ONE thread at a time (vd_store_write's
 * rule). The engine itself keeps no state that changes after vd_engine_new() (and
 * vd_engine_set_parallel, before it is shared).
 *
 * Messages: every error of a request begins with the operation's name ("search: k is 0...",
 * "upsert into docs: ..."), and a missing collection is always VD_NOTFOUND
 * "<op>: collection NAME does not exist". */
#ifndef VD_ENGINE_H
#define VD_ENGINE_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>

#include "common/vd_common.h"
#include "index/vd_index.h"
#include "storage/vd_storage.h"

typedef struct vd_engine vd_engine; /* opaque */

/* ---- Request kinds: one table (id, name as the protocol spells it, is a write) ---------- */
/* clang-format off */
#define VD_REQUEST_MAP(X)                 \
    X(CREATE, "create_collection", 1)     \
    X(DROP, "drop_collection", 1)         \
    X(LIST, "list_collections", 0)        \
    X(INFO, "collection_info", 0)         \
    X(UPSERT, "upsert", 1)                \
    X(DELETE, "delete", 1)                \
    X(GET, "get", 0)                      \
    X(SEARCH, "search", 0)                \
    X(COUNT, "count", 0)                  \
    X(STATS, "stats", 0)                  \
    X(SCROLL, "scroll", 0)                \
    X(SET_PAYLOAD, "set_payload", 1)      \
    X(CREATE_PINDEX, "create_payload_index", 1) \
    X(DROP_PINDEX, "drop_payload_index", 1)

typedef enum vd_request_kind {
    VD_REQ_NONE = 0, /* no operation (a protocol-level message, or one unknown to this version) */
#define X(id, name, write) VD_REQ_##id,
    VD_REQUEST_MAP(X)
#undef X
    VD_REQ_KINDS /* number of kinds, NONE included */
} vd_request_kind;

/* "search"; "none" for VD_REQ_NONE and unknown values. */
static inline const char *vd_request_name(vd_request_kind k)
{
    static const char *const names[VD_REQ_KINDS] = {
        "none",
#define X(id, name, write) name,
        VD_REQUEST_MAP(X)
#undef X
    };
    return (unsigned)k < VD_REQ_KINDS ? names[k] : "none";
}

/* 1 for create, drop, upsert, delete, set_payload and the payload index writes: they go
 * through vd_engine_write*. */
static inline int vd_request_is_write(vd_request_kind k)
{
    static const unsigned char writes[VD_REQ_KINDS] = {
        0,
#define X(id, name, write) write,
        VD_REQUEST_MAP(X)
#undef X
    };
    return (unsigned)k < VD_REQ_KINDS && writes[k];
}
/* clang-format on */

/* A borrowed byte string. Same layout as protobuf-c's ProtobufCBinaryData (proto/ checks
 * it), so payload arrays cross the codec without being rebuilt. len 0 means "none". */
typedef struct vd_bytes {
    size_t len;
    const uint8_t *data;
} vd_bytes;

/* ---- Requests: one struct per kind. Everything is borrowed for the call (and, for writes,
 * until vd_write_release). Later fields get added at the end; zero means "not given". ---- */
typedef struct vd_create_req {
    const char *name;
    uint32_t dim;
    vd_metric metric;
    uint32_t m, ef_construction, ef_search; /* 0 -> the defaults of VD_PARAM_MAP */
    vd_id_type id_type;                     /* 0 = VD_ID_INT */
    vd_quantization quantization;           /* 0 = VD_QUANT_NONE */
} vd_create_req;

typedef struct vd_upsert_req {
    const char *collection;
    const uint64_t *ids; /* n_ids distinct ids */
    size_t n_ids;
    const float *vectors; /* n_floats = n_ids x dim, row-major */
    size_t n_floats;
    uint32_t dim;             /* dims per vector as the caller means them; 0 = not said */
    const vd_bytes *payloads; /* NULL, or n_payloads (== n_ids) JSON objects; len 0 = none */
    size_t n_payloads;
    /* A collection of string ids takes its ids here instead (ids NULL, n_ids 0); the other
     * kind, or both, is VD_INVALID naming the row (vd_point_ids_check). The same for the
     * requests below. */
    vd_str_ids str_ids;
} vd_upsert_req;

typedef struct vd_delete_req {
    const char *collection;
    const uint64_t *ids;
    size_t n_ids;
    vd_str_ids str_ids;
    const vd_filter *filter; /* instead of ids (either kind): every point it matches, in one
                              * write */
} vd_delete_req;

typedef struct vd_get_req {
    const char *collection;
    const uint64_t *ids; /* duplicates allowed: each gets its own entry */
    size_t n_ids;
    int with_vectors, with_payloads;
    vd_str_ids str_ids;
} vd_get_req;

/* The points of a collection in id order (numeric for int ids, bytewise for string ids), a
 * page at a time: each page starts after the last id of the previous one (cursor), so a walk
 * visits every point present throughout exactly once, while writes go on; points added or
 * deleted meanwhile may or may not appear, none twice. */
typedef struct vd_scroll_req {
    const char *collection;
    uint32_t limit;   /* points per page, 1..max_batch; 0 -> VD_SCROLL_LIMIT_DEFAULT */
    vd_bytes cursor;  /* len 0: from the first point; else a next_cursor this server gave */
    int with_vectors, with_payloads;
    const vd_filter *filter; /* NULL, or only the points it matches (pages may then be short) */
} vd_scroll_req;
#define VD_SCROLL_LIMIT_DEFAULT 100u

/* Replaces or merges (top-level keys) the payloads of existing points; vectors untouched.
 * Ids that do not exist are skipped: the result counts the points updated. */
typedef struct vd_set_payload_req {
    const char *collection;
    const uint64_t *ids; /* n_ids distinct ids, or str_ids */
    size_t n_ids;
    vd_str_ids str_ids;
    const vd_bytes *payloads; /* one JSON object per id; len 0 = none (clears under replace,
                               * changes nothing under merge) */
    size_t n_payloads;
    int merge;
} vd_set_payload_req;

typedef struct vd_search_req {
    const char *collection;
    const float *queries; /* nq x dim floats, row-major */
    size_t n_floats;
    /* Dims per query as the caller means them. 0 = not said: the queries are read as rows
     * of the collection's dim (protocol clients from before the field existed). */
    uint32_t dim;
    uint32_t k;  /* 1..max_k */
    uint32_t ef; /* 0 -> the collection's ef_search, else VD_PARAM_EF's range; the
                  * effective ef is max(ef, k) */
    int with_payloads;
    const vd_filter *filter; /* one filter for every query: only matching points are hits */
    int explain;             /* fill vd_search_result.explain */
    uint32_t rerank; /* int8 collections: 0 -> VD_PARAM_RERANK's default, else its range */
} vd_search_req;

typedef struct vd_count_req {
    const char *collection;
    const vd_filter *filter; /* NULL: every point */
} vd_count_req;

typedef struct vd_pindex_req { /* CREATE_PINDEX, DROP_PINDEX */
    const char *collection;
    const char *field;   /* dotted path */
    vd_pindex_kind kind; /* CREATE_PINDEX */
} vd_pindex_req;

typedef struct vd_request {
    vd_request_kind kind;
    union {
        vd_create_req create; /* CREATE */
        const char *name;     /* DROP, INFO: the collection */
        vd_upsert_req upsert;
        vd_delete_req del;
        vd_get_req get;
        vd_search_req search;
        vd_scroll_req scroll;
        vd_set_payload_req set_payload;
        vd_count_req count;
        vd_pindex_req pindex; /* CREATE_PINDEX, DROP_PINDEX */
    }; /* LIST and STATS carry nothing */
} vd_request;

/* ---- Results ------------------------------------------------------------------------------
 * Every non-NULL array belongs to the result and is freed by vd_result_free(). A caller may
 * take one (copy the pointer, set the field to NULL) and free it later with vd_free(). */
typedef struct vd_search_result {
    uint32_t nq, k;
    uint64_t *ids;      /* nq x k, row-major; rows with fewer hits padded with VD_ID_NONE */
    float *distances;   /* nq x k; padding +inf */
    vd_bytes *payloads; /* with_payloads: nq x k entries (len 0: none or padding), else NULL;
                         * the bytes borrow from `snapshot` */
    /* String ids: the hits' ids instead of `ids` (which is NULL then), nq x k entries packed
     * (see vd_str_ids); padding entries are empty. */
    uint8_t *str_ids;
    uint32_t *str_id_ends;
    vd_search_explain *explain; /* with explain: nq entries, how each query ran, else NULL */
    vd_filtered_stats filter;   /* with a filter: what compiling it cost, and its matches */
    int filtered;
} vd_search_result;

typedef struct vd_get_result {
    size_t n;
    uint32_t dim;
    uint8_t *found;     /* n flags, in request order */
    float *vectors;     /* with_vectors: n x dim (zeros for missing ids), else NULL */
    vd_bytes *payloads; /* with_payloads: n entries (len 0: none or missing), else NULL;
                         * the bytes borrow from `snapshot` */
} vd_get_result;

typedef struct vd_scroll_result {
    size_t n;           /* points in this page (fewer than the limit when the response would
                         * otherwise outgrow max_response_bytes, or at the end) */
    uint32_t dim;
    uint64_t *ids;      /* int ids: n ids, ascending; NULL for string ids */
    uint8_t *str_ids;   /* string ids: n ids packed (str_id_ends), ascending bytewise */
    uint32_t *str_id_ends;
    float *vectors;     /* with_vectors: n x dim, else NULL */
    vd_bytes *payloads; /* with_payloads: n entries (len 0: none), borrowed from `snapshot` */
    uint8_t *next_cursor; /* the next page's cursor; NULL when the walk is done */
    size_t next_cursor_len;
} vd_scroll_result;

typedef struct vd_engine_stats {
    uint32_t collections;
    uint64_t points;
    uint64_t map_bytes, file_bytes; /* the LMDB map and the data file */
} vd_engine_stats;

typedef struct vd_result {
    vd_request_kind kind;
    union {
        vd_search_result search;
        vd_get_result get;
        vd_scroll_result scroll;
        vd_collection_info info; /* CREATE, INFO */
        struct {
            vd_collection_info *items; /* sorted by name */
            size_t n;
        } list;
        uint64_t n;            /* COUNT: points; UPSERT: written; DELETE: ids that existed;
                                * SET_PAYLOAD: points updated */
        vd_engine_stats stats; /* STATS */
        vd_pindex_info pindex; /* CREATE_PINDEX */
    };                         /* DROP, DROP_PINDEX carry nothing */
    /* Held until vd_result_free(): the payload bytes borrow from it. Ending it early (say,
     * once the bytes are encoded) is the caller's business: vd_snapshot_end, then NULL. */
    vd_snapshot *snapshot;
} vd_result;

/* Releases the arrays and the snapshot; leaves *r zeroed. A zeroed result is a no-op. */
void vd_result_free(vd_result *r);

/* ---- The engine ------------------------------------------------------------------------- */
typedef struct vd_engine_limits {
    uint32_t max_batch; /* ids per upsert/delete/get/set_payload, queries per search, points
                         * per scroll page; 0 = no limit */
    uint32_t max_k;     /* 0 -> VD_K_MAX */
    uint32_t max_dim;   /* dims of a new collection; 0 -> VD_DIM_MAX */
    /* The largest response the caller can deliver (the server: its max_frame_bytes); 0 = no
     * limit. A read whose result arrays alone would not fit is refused before any work. */
    uint32_t max_response_bytes;
} vd_engine_limits;

/* `st` is borrowed and must outlive the engine; the limits are copied. */
vd_status vd_engine_new(vd_store *st, const vd_engine_limits *limits, vd_engine **out, vd_err *err);
void vd_engine_free(vd_engine *e);                               /* NULL is a no-op */
const vd_engine_limits *vd_engine_limits_of(const vd_engine *e); /* defaults filled in */

/* A host's parallel-for: runs task(ctx, i) for every i in [0, n), on whatever threads it
 * likes (the caller's included), and returns once all have returned. Tasks never block on
 * each other. */
typedef void (*vd_parallel_fn)(void *host, size_t n, void (*task)(void *ctx, size_t i),
                               void *ctx);
/* Lends the engine `width` threads through fn for the queries of one search (the embedded
 * module's pool); without it, every read runs on its caller's thread (the daemon, whose
 * reader threads take whole requests). Call before the engine is shared; fn NULL undoes. */
void vd_engine_set_parallel(vd_engine *e, vd_parallel_fn fn, void *host, size_t width);

/* Executes a read (LIST, INFO, COUNT, STATS, GET, SEARCH, SCROLL) into *out, which the caller
 * releases with vd_result_free() whatever the status (zeroed on error). Search: the
 * collection is referenced only for the call, so a concurrent drop lets it finish. */
vd_status vd_engine_read(vd_engine *e, const vd_request *req, vd_result *out, vd_err *err);

/* ---- Writes: prepared one by one, committed in groups (vd_store_write) -----------------
 * prepare checks a request against the limits and its collection and turns it into a
 * vd_op; commit applies a group in one transaction; result turns each op's outcome into a
 * result or its own error. A CREATE or DROP must end its group (vd_write_ends_group): the
 * requests prepared after it have to see the collections as that commit leaves them. */
typedef struct vd_write {
    vd_request_kind kind;
    vd_op op; /* what vd_store_write applies; its outcome after vd_engine_write_commit */
    /* scratch the op borrows, released by vd_write_release */
    const uint8_t **payload_ptrs;
    uint32_t *payload_lens;
} vd_write;

/* On VD_OK *w holds the op (borrowing from req until vd_write_release). On error *w needs
 * no release and the request is answered by err alone. */
vd_status vd_engine_write_prepare(vd_engine *e, const vd_request *req, vd_write *w, vd_err *err);
static inline int vd_write_ends_group(const vd_write *w)
{
    return w->kind == VD_REQ_CREATE || w->kind == VD_REQ_DROP ||
           w->kind == VD_REQ_CREATE_PINDEX || w->kind == VD_REQ_DROP_PINDEX;
}
/* Commits ws[0..n) (all prepared) in one transaction and one sync. Returns the commit's
 * status: on failure nothing changed and every write carries "commit failed, nothing
 * written: ...". Either way each write then goes to vd_engine_write_result. */
vd_status vd_engine_write_commit(vd_engine *e, vd_write *const *ws, size_t n, vd_err *err);
/* The outcome of a committed write: VD_OK with *out (UPSERT/DELETE: n; CREATE: info), or
 * the write's own error. Releases w. *out is released with vd_result_free either way. */
vd_status vd_engine_write_result(vd_engine *e, vd_write *w, vd_result *out, vd_err *err);
void vd_write_release(vd_write *w); /* idempotent */

/* Work a committed write leaves to the background: a CREATE_PINDEX is committed as a
 * definition, then its index is built over the stored points by vd_engine_background
 * steps; its result waits until then. 1 while the write's work goes on (call
 * vd_engine_write_result once it is 0, or to give up waiting: the build goes on). */
int vd_engine_write_pending(vd_engine *e, const vd_write *w);
/* One bounded step of background work (a payload index build: one transaction of at most
 * VD_ENGINE_BUILD_STEP points), between write groups, on the writing thread. *more = 1
 * while any work remains (a build left by a crash counts: call it when idle). */
#define VD_ENGINE_BUILD_STEP 16384
vd_status vd_engine_background(vd_engine *e, int *more, vd_err *err);

/* One write on its own: prepare, commit, background work until done, result. */
vd_status vd_engine_write(vd_engine *e, const vd_request *req, vd_result *out, vd_err *err);

/* Any request: the read or the single write. */
static inline vd_status vd_engine_execute(vd_engine *e, const vd_request *req, vd_result *out,
                                          vd_err *err)
{
    return vd_request_is_write(req->kind) ? vd_engine_write(e, req, out, err)
                                          : vd_engine_read(e, req, out, err);
}

/* ---- The bulk build (the writing thread, like the writes) --------------------------------
 * n rows become a new collection in the offline order: the index built in memory on
 * `threads` workers, chunk by chunk, then written with its points and payloads in ONE
 * transaction (vd_store_import), so the collection appears complete or not at all and a
 * failure at any step leaves the directory as it was. `vectord build` feeds rows from a file
 * reader, the embedded module from a numpy array. Messages begin "build NAME: ". */
typedef enum vd_build_phase {
    VD_BUILD_LINKING = 1, /* done/total: rows in the index */
    VD_BUILD_WRITING = 2, /* done/total: records written (storage's count) */
} vd_build_phase;
typedef void (*vd_build_progress_fn)(void *ctx, vd_build_phase phase, size_t done, size_t total);

/* A source of rows, read chunk by chunk in ascending order. */
typedef struct vd_build_rows {
    /* Rows [first, first + n) as row-major float32 with their values checked (finite, not
     * zero under cosine), into *out: either the caller's memory (in place, valid until those
     * rows are released) or `buf` (room for n x dim floats; NULL when in_place). */
    vd_status (*read)(void *ctx, size_t first, size_t n, float *buf, const float **out,
                      vd_err *err);
    void (*release)(void *ctx, size_t first, size_t n); /* optional: those rows are done */
    void (*finish)(void *ctx); /* optional: once every row is in the index, before writing */
    void *ctx;
    int in_place; /* read never writes buf: no chunk buffer is allocated */
} vd_build_rows;

typedef struct vd_build_req {
    vd_collection_params params; /* name, dim, metric; m, ef_construction, ef_search 0 = default */
    size_t n;                    /* rows, >= 1 */
    const uint64_t *ids;         /* int collections: n distinct ids (checked here), borrowed */
    const vd_str_ids *str_ids;   /* str collections (params.id_type VD_ID_STR): n distinct
                                  * string ids (checked here), borrowed; ids is NULL then */
    const uint8_t *const *payloads; /* NULL, or n JSON objects (NULL entry: none), borrowed */
    const uint32_t *payload_lens;
    const float *vectors; /* n x dim floats, row-major, borrowed; used when rows.read is NULL
                           * (then every row is checked here with vd_vector_check) */
    vd_build_rows rows;
    uint32_t threads; /* linking workers; 0 = cores */
    int replace;      /* an existing collection of that name is dropped in the same commit;
                       * without it VD_EXISTS before any work */
    vd_build_progress_fn progress; /* optional, on the calling thread, about twice a second */
    void *progress_ctx;
} vd_build_req;

typedef struct vd_build_result {
    vd_collection_info info;   /* of the new collection */
    uint64_t link_ns, write_ns; /* the two phases' wall time */
} vd_build_result;

/* Rows per chunk of a build of n rows of `dim` floats (>= 1, <= n): what `read` is asked
 * for at a time, and the size of its `buf`. */
size_t vd_build_chunk_rows(uint32_t dim, size_t n);

/* The writing thread only (vd_store_import's rule), with no snapshot held by it. */
vd_status vd_engine_build(vd_engine *e, const vd_build_req *b, vd_build_result *out,
                          vd_err *err);

/* The one message for a response too large to deliver, shared by the engine's check before
 * the work and the encoder's check after it (proto/): VD_FULL "search: the response would
 * hold N bytes, over max_frame_bytes M; ask for less per request". The limit is named as
 * the server's clients know it: the server is the only caller that sets one. */
static inline vd_status vd_engine_err_too_big(vd_err *err, vd_request_kind k, uint64_t bytes,
                                              uint64_t max)
{
    return vd_err_set(err, VD_FULL,
                      "%s: the response would hold %" PRIu64 " bytes, over max_frame_bytes %" PRIu64
                      "; ask for less per request",
                      vd_request_name(k), bytes, max);
}

#endif
