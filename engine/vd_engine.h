/* engine/vd_engine.h: the operations of a data directory on domain values - create, drop,
 * list, info, count, stats, upsert, delete, get, search - checked against the limits and the
 * collection, and executed against a vd_store.
 *
 * The engine knows nothing of threads, sockets or the wire format: the daemon's reader
 * threads and writer thread call it on requests proto/ decoded, and the embedded Python
 * module calls the very same functions on numpy arrays. Arrays travel in host order, row
 * major; a result owns its arrays, so a caller may hand them on (to an encoder, to numpy)
 * without a copy.
 *
 * Threads: vd_engine_read() from any number of threads at once, concurrently with writes;
 * the write functions from ONE thread at a time (vd_store_write's rule). The engine itself
 * keeps no state that changes after vd_engine_new().
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
    X(STATS, "stats", 0)

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

/* 1 for create, drop, upsert and delete: they go through vd_engine_write*. */
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
} vd_upsert_req;

typedef struct vd_delete_req {
    const char *collection;
    const uint64_t *ids;
    size_t n_ids;
} vd_delete_req;

typedef struct vd_get_req {
    const char *collection;
    const uint64_t *ids; /* duplicates allowed: each gets its own entry */
    size_t n_ids;
    int with_vectors, with_payloads;
} vd_get_req;

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
    uint32_t rerank; /* int8 collections: 0 -> VD_PARAM_RERANK's default, else its range */
} vd_search_req;

typedef struct vd_request {
    vd_request_kind kind;
    union {
        vd_create_req create; /* CREATE */
        const char *name;     /* DROP, INFO, COUNT: the collection */
        vd_upsert_req upsert;
        vd_delete_req del;
        vd_get_req get;
        vd_search_req search;
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
} vd_search_result;

typedef struct vd_get_result {
    size_t n;
    uint32_t dim;
    uint8_t *found;     /* n flags, in request order */
    float *vectors;     /* with_vectors: n x dim (zeros for missing ids), else NULL */
    vd_bytes *payloads; /* with_payloads: n entries (len 0: none or missing), else NULL;
                         * the bytes borrow from `snapshot` */
} vd_get_result;

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
        vd_collection_info info; /* CREATE, INFO */
        struct {
            vd_collection_info *items; /* sorted by name */
            size_t n;
        } list;
        uint64_t n;            /* COUNT: points; UPSERT: written; DELETE: ids that existed */
        vd_engine_stats stats; /* STATS */
    };                         /* DROP carries nothing */
    /* Held until vd_result_free(): the payload bytes borrow from it. Ending it early (say,
     * once the bytes are encoded) is the caller's business: vd_snapshot_end, then NULL. */
    vd_snapshot *snapshot;
} vd_result;

/* Releases the arrays and the snapshot; leaves *r zeroed. A zeroed result is a no-op. */
void vd_result_free(vd_result *r);

/* ---- The engine ------------------------------------------------------------------------- */
typedef struct vd_engine_limits {
    uint32_t max_batch; /* ids per upsert/delete/get, queries per search; 0 = no limit */
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

/* Executes a read (LIST, INFO, COUNT, STATS, GET, SEARCH) into *out, which the caller
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
    return w->kind == VD_REQ_CREATE || w->kind == VD_REQ_DROP;
}
/* Commits ws[0..n) (all prepared) in one transaction and one sync. Returns the commit's
 * status: on failure nothing changed and every write carries "commit failed, nothing
 * written: ...". Either way each write then goes to vd_engine_write_result. */
vd_status vd_engine_write_commit(vd_engine *e, vd_write *const *ws, size_t n, vd_err *err);
/* The outcome of a committed write: VD_OK with *out (UPSERT/DELETE: n; CREATE: info), or
 * the write's own error. Releases w. *out is released with vd_result_free either way. */
vd_status vd_engine_write_result(vd_engine *e, vd_write *w, vd_result *out, vd_err *err);
void vd_write_release(vd_write *w); /* idempotent */

/* One write on its own: prepare, commit, result. */
vd_status vd_engine_write(vd_engine *e, const vd_request *req, vd_result *out, vd_err *err);

/* Any request: the read or the single write. */
static inline vd_status vd_engine_execute(vd_engine *e, const vd_request *req, vd_result *out,
                                          vd_err *err)
{
    return vd_request_is_write(req->kind) ? vd_engine_write(e, req, out, err)
                                          : vd_engine_read(e, req, out, err);
}

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
