/* index/vd_index.h: HNSW approximate nearest-neighbour index (Malkov & Yashunin), in memory.
 *
 * Knows nothing of storage or the network. Points are (uint64 id, float32[dim] vector);
 * inside, each point lives in a dense uint32 "slot". The index never moves a node once
 * placed, so slots and links persist as-is (storage/ writes them, see vd_index_changes).
 *
 * Threads: any number of threads may call vd_index_search() / vd_index_search_exact() /
 * vd_index_count() / vd_index_stats_get() concurrently with ONE writer thread calling
 * everything else. The writer may itself fan work out (vd_index_add_batch with n_threads > 1).
 * No global lock on the search path: see docs/architecture.md, "Index", "Concurrency".
 *
 * Visibility: every mutation is stamped with the index's write epoch. With
 * params.deferred_publish == 0 (the default) each call publishes its own change before it
 * returns. With deferred_publish == 1 (storage's mode) mutations stay invisible to searches
 * until vd_index_publish(), which makes everything since the previous publish visible at
 * once; a removed point stays visible until then too. */
#ifndef VD_INDEX_H
#define VD_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "common/vd_common.h"

typedef struct vd_index vd_index; /* opaque */

typedef enum vd_metric {
    VD_METRIC_L2 = 0,     /* squared Euclidean distance */
    VD_METRIC_COSINE = 1, /* 1 - cos(a, b); vectors normalized at insert, zero vector refused */
    VD_METRIC_IP = 2,     /* -dot(a, b) */
} vd_metric;

const char *vd_metric_name(vd_metric m);                 /* "l2", "cosine", "ip" */
vd_status vd_metric_parse(const char *s, vd_metric *out); /* VD_INVALID if unknown */

/* How the graph stores the vectors it is searched over. The float vectors stay the source
 * of truth either way (storage keeps them); INT8 keeps int8 codes in the graph and re-ranks
 * the best candidates with the floats. Stored in catalog records: values never change. */
typedef enum vd_quantization {
    VD_QUANT_NONE = 0,
    VD_QUANT_INT8 = 1,
} vd_quantization;
const char *vd_quantization_name(vd_quantization q);                 /* "none", "int8" */
vd_status vd_quantization_parse(const char *s, vd_quantization *out); /* VD_INVALID if unknown */

#define VD_ID_NONE UINT64_MAX /* padding id for rows with fewer than k hits */

/* ---- Parameter limits and defaults: the one table ---------------------------------------
 * Every collection parameter's range and default, checked by vd_param_resolve (and
 * vd_index_params_check). Every entry point - CLI flags, `vectord build` before it reads
 * its input, the request decoder, storage on create and on reading a catalog record - calls
 * it first, and help texts print these numbers (vd_param_info_of), so they cannot disagree.
 * Columns: id, name as users spell it, min, max, default (0: no default, the value is
 * required). A value of 0 means "the default" wherever the parameter has one.
 * VD_K_MAX bounds k everywhere; a server may announce a lower max_k (its --max-k). */
#define VD_DIM_MAX 4096u
#define VD_M_MAX 128u
#define VD_EF_MAX 10000u
#define VD_K_MAX 1000000u
#define VD_PARAM_MAP(X)                                          \
    X(DIM, "dim", 1, VD_DIM_MAX, 0)                              \
    X(M, "m", 2, VD_M_MAX, 16)                                   \
    X(EF_CONSTRUCTION, "ef_construction", 1, VD_EF_MAX, 200)     \
    X(EF_SEARCH, "ef_search", 1, VD_EF_MAX, 100)                 \
    X(EF, "ef", 1, VD_EF_MAX, 0) /* per query; 0 = the collection's ef_search */ \
    X(K, "k", 1, VD_K_MAX, 0)                                    \
    X(RERANK, "rerank", 1, 64, 2) /* per query, int8: re-rank rerank x k by floats */

typedef enum vd_param {
#define X(id, name, lo, hi, def) VD_PARAM_##id,
    VD_PARAM_MAP(X)
#undef X
    VD_PARAM_COUNT
} vd_param;

typedef struct vd_param_info {
    const char *name; /* "ef_construction" */
    uint32_t min, max;
    uint32_t def;     /* 0: none (required, or for EF: the collection's ef_search) */
} vd_param_info;

const vd_param_info *vd_param_info_of(vd_param p); /* static storage; NULL if p is unknown */

/* Checks `value` against the table: 0 becomes the default where there is one (*out = def;
 * for EF it stays 0), otherwise value must be in min..max. VD_INVALID names the parameter
 * and the range: "ef_construction 20000 is outside 1..10000". `out` may alias nothing or be
 * NULL. */
vd_status vd_param_resolve(vd_param p, uint32_t value, uint32_t *out, vd_err *err);

/* ---- Point rules: the one check of ids and vectors ---------------------------------------
 * Every entry point that takes points - the index itself, storage's deletes, the bulk
 * build's file readers - checks them here, so the rules and their messages have one owner. */

/* VD_OK when ids[0..n) are distinct and none is VD_ID_NONE; else VD_INVALID naming the
 * smallest repeated id and two rows holding it ("id 7 appears more than once (rows 2 and
 * 5)") or the reserved one ("row 3: id 18446744073709551615 is reserved for padding").
 * Ascending ids cost one scan; otherwise a sorted copy of 16 bytes per id. */
vd_status vd_ids_check_distinct(const uint64_t *ids, size_t n, vd_err *err);

/* VD_OK when every component of v[0..dim) is finite and, under cosine, v is not zero; else
 * VD_INVALID "component 2 is NaN" (or "is infinite"), "zero vector has no direction for
 * cosine". One SIMD pass unless a component is bad or the norm is extreme. */
vd_status vd_vector_check(vd_metric metric, const float *v, uint32_t dim, vd_err *err);

typedef struct vd_index_params {
    uint32_t dim;             /* VD_PARAM_DIM */
    vd_metric metric;
    uint32_t m;               /* max links per node on upper levels, 2*m on level 0; 0 -> default */
    uint32_t ef_construction; /* 0 -> default */
    uint64_t seed;            /* level generator seed; same seed + one thread = same graph */
    uint32_t capacity_hint;   /* expected number of points; arrays still grow past it */
    int deferred_publish;     /* see "Visibility" above */
    /* VD_QUANT_INT8: the graph keeps int8 codes (per-vector scale) and no float vectors,
     * builds and searches over the codes, and re-ranks the best candidates with exact float
     * distances read from a vd_vector_source. Float vectors stay with the caller: the index
     * holds those of new slots only until vd_index_changes_clear (vd_index_slot_vector). */
    vd_quantization quantization;
} vd_index_params;

typedef struct vd_hit {
    uint64_t id;
    float distance; /* smaller is closer for every metric */
} vd_hit;

/* Checks dim, metric, m and ef_construction against the table and fills defaults in place
 * (the message names the first bad one). vd_index_open calls it too. */
vd_status vd_index_params_check(vd_index_params *p, vd_err *err);

/* On VD_OK, *out owns a new empty index; release it with vd_index_close(). Params are
 * copied. */
vd_status vd_index_open(const vd_index_params *p, vd_index **out, vd_err *err);
void vd_index_close(vd_index *ix); /* NULL is a no-op; no other call may be running */

const vd_index_params *vd_index_params_of(const vd_index *ix); /* with defaults filled in */

/* Upsert: adds `id`, or replaces its vector if present (the old version stays visible until
 * the new one is published). `vec` is read during the call only. Errors: VD_INVALID for
 * NaN/Inf components or a zero vector under cosine (message names the component); VD_NOMEM. */
vd_status vd_index_add(vd_index *ix, uint64_t id, const float *vec, vd_err *err);

/* Upserts n points: ids[i] with vecs[i*dim .. i*dim+dim). Ids must be distinct (VD_INVALID
 * naming the repeated id otherwise, before anything changes). Vectors are validated before
 * any is inserted. Uses n_threads worker threads (0 = number of cores, 1 = this thread
 * only); deterministic for a fixed seed when n_threads == 1. `progress`, if not NULL, is
 * called from the calling thread about every 0.5 s with the count done so far. */
typedef void (*vd_progress_fn)(void *ctx, size_t done, size_t total);
vd_status vd_index_add_batch(vd_index *ix, const uint64_t *ids, const float *vecs, size_t n,
                             uint32_t n_threads, vd_progress_fn progress, void *progress_ctx,
                             vd_err *err);

/* Removes `id`: it is gone from search results once published, and the graph around it is
 * repaired so recall holds after heavy deletion. VD_NOTFOUND if absent. */
vd_status vd_index_remove(vd_index *ix, uint64_t id, vd_err *err);

/* Up to k nearest visible points, nearest first (ties by id), into caller-owned `hits`
 * (room for k); their number into *n_out (< k only when fewer points are visible).
 * Effective ef is max(ef, k); ef == 0 means the index default (vd_index_set_ef_search).
 * `query` is read during the call only. Errors: VD_INVALID for k == 0, NaN/Inf query, or a
 * zero query under cosine. Safe to call from many threads concurrently with the writer. */
vd_status vd_index_search(const vd_index *ix, const float *query, uint32_t k, uint32_t ef,
                          vd_hit *hits, uint32_t *n_out, vd_err *err);

/* Exact search by scanning every visible point: the oracle for tests and the fallback for
 * tiny indexes. Same contract as vd_index_search. */
vd_status vd_index_search_exact(const vd_index *ix, const float *query, uint32_t k,
                                vd_hit *hits, uint32_t *n_out, vd_err *err);

/* ---- Filtered search ---------------------------------------------------------------------
 * The index filters by slot: slots are its dense internal ids, and a reader has no id ->
 * slot map (the caller knows each point's slot from storage's points records, and the id
 * of a slot from vd_index_slot_id). A filter says which slots may be returned.
 *
 * Callbacks run on the searching thread, during the search call only, and must not call
 * back into the index except vd_index_slot_id. allow() is asked at most once per slot per
 * search, about any slot below the index's slot count - including slots of removed,
 * unpublished or free points: the index checks the visibility of the allowed ones itself
 * (where it reads their vector anyway; checking first would cost a cache miss per rejected
 * node). So allow() must be cheap and total: a bitmap or a set lookup by slot. next() may
 * hand out any slots too, but must agree with allow(). */
#define VD_FILTER_COUNT_UNKNOWN UINT64_MAX
typedef struct vd_slot_filter {
    /* Non-zero when slot may be returned. Required unless `bits` is given. */
    int (*allow)(void *ctx, uint32_t slot);
    /* Optional: writes the allowed slots >= from, ascending, up to cap of them, into slots;
     * returns how many (0: none left). Lets the exact scan visit only the matches. */
    size_t (*next)(void *ctx, uint32_t from, uint32_t *slots, size_t cap);
    void *ctx;
    uint64_t n_allowed; /* the number of allowed points, or VD_FILTER_COUNT_UNKNOWN */
    /* Optional, and then allow() and next() are not called: slot s is allowed when s <
     * n_bits and bit s % 64 of bits[s / 64] is set. The index tests bits inline, which at
     * 1 % selectivity is most of the traversal's saving over a callback (a two-hop
     * expansion looks at ~M^2 slots). Borrowed for the call. */
    const uint64_t *bits;
    uint32_t n_bits;
} vd_slot_filter;

/* How a search ran (the planner's choice, see docs/architecture.md "Filtered search"). */
typedef enum vd_search_plan {
    VD_PLAN_GRAPH = 1,            /* the graph alone */
    VD_PLAN_EXACT = 2,            /* an exact scan over the allowed slots, chosen up front */
    VD_PLAN_GRAPH_THEN_EXACT = 3, /* the graph, then the exact scan: the traversal hit its
                                   * effort cap or came back with fewer than k hits */
    VD_PLAN_ONE_HOP = 4,          /* the graph, every node in the beam, the allowed ones
                                   * returned (dense filters) */
} vd_search_plan;
const char *vd_search_plan_name(vd_search_plan p); /* "graph", "exact", "graph_then_exact",
                                                    * "one_hop" */

/* Why a traversal ended in the exact scan (vd_search_explain.fallback). */
typedef enum vd_search_fallback {
    VD_FALLBACK_NONE = 0,
    VD_FALLBACK_EFFORT = 1, /* it cost more than the scan would have */
    VD_FALLBACK_SHORT = 2,  /* it found fewer than k allowed points */
    VD_FALLBACK_LOCAL = 3,  /* anti-correlated: the query's neighbourhood holds under a
                             * quarter of the matches the filter's share predicts */
} vd_search_fallback;

typedef struct vd_search_explain {
    vd_search_plan plan;
    vd_search_fallback fallback;
    uint32_t ef;            /* the ef the traversal ran with (scaled up for selective filters) */
    uint64_t nodes_visited; /* nodes whose link lists were read, every level */
    uint64_t distances;     /* distance computations, the exact scan's included */
    uint64_t filter_calls;  /* allow() calls */
    uint64_t reranked;      /* int8: candidates re-scored with float vectors */
    double selectivity;     /* allowed / visible points the planner assumed (1 unfiltered) */
    double cost_graph;      /* the planner's estimates, in distance computations (for
                             * one_hop, cost_graph is the one-hop traversal's) */
    double cost_exact;
} vd_search_explain;

/* Where an int8 index reads the exact float vectors it re-ranks with (it keeps codes only):
 * storage from its LMDB snapshot, a benchmark from its array. get() returns the stored
 * vector of `slot` (normalized under cosine) if it holds point `id`, valid until the next
 * get() on the same source, or NULL (then that candidate keeps its code distance). Called
 * on the searching thread during the search call only. */
typedef struct vd_vector_source {
    const float *(*get)(void *ctx, uint32_t slot, uint64_t id);
    void *ctx;
} vd_vector_source;

typedef struct vd_search_opts {
    uint32_t k;                   /* hits wanted, >= 1 */
    uint32_t ef;                  /* 0: the index default; effective ef is max(ef, k) */
    const vd_slot_filter *filter; /* NULL: every visible point may be returned */
    vd_search_explain *explain;   /* NULL, or filled with how the search ran */
    /* 0: the planner chooses. VD_PLAN_EXACT, VD_PLAN_GRAPH or VD_PLAN_ONE_HOP forces a plan
     * (tests and benchmarks); a forced traversal has no effort cap but still ends in the
     * exact scan when it finds fewer than k allowed points (or, one-hop, meets an
     * anti-correlated filter). */
    vd_search_plan plan;
    /* int8 only (ignored otherwise): the best min(ef, rerank x k) candidates by code
     * distance are re-ranked by exact float distance read from `source`; 0 = VD_PARAM_RERANK's
     * default. Without a source, hits come back by code distance. */
    uint32_t rerank;
    const vd_vector_source *source;
} vd_search_opts;

/* Up to o->k nearest visible points that the filter allows, nearest first (ties by id):
 * exactly min(k, allowed visible points) of them, whatever the plan. The planner scans the
 * allowed slots exactly when that costs fewer distance computations than the graph would,
 * otherwise it traverses the graph through non-matching nodes (two-hop expansion, so
 * selective and anti-correlated filters stay connected) under an effort cap, falling back to
 * the exact scan. Without a filter it is vd_index_search. Same errors and threads as
 * vd_index_search; `o` and the filter are read during the call only. */
vd_status vd_index_search_opts(const vd_index *ix, const float *query, const vd_search_opts *o,
                               vd_hit *hits, uint32_t *n_out, vd_err *err);

/* The id of a filled slot; for filter callbacks (from inside a search the slot stays valid
 * for the whole call) and the writer. VD_ID_NONE for a slot that is not filled. */
uint64_t vd_index_slot_id(const vd_index *ix, uint32_t slot);

void vd_index_set_ef_search(vd_index *ix, uint32_t ef); /* 0: the table's default */

/* Number of visible points (readers) - O(1). */
size_t vd_index_count(const vd_index *ix);

/* Writer thread only: copies the stored vector of `id` (normalized under cosine) into
 * caller-owned `out` (dim floats). VD_NOTFOUND if absent - and, for an int8 index, once the
 * point's floats are no longer held (after the vd_index_changes_clear that followed its
 * insert: storage has them). The writer sees its own unpublished writes. */
vd_status vd_index_get(const vd_index *ix, uint64_t id, float *out, vd_err *err);

/* Writer thread only: VD_OK when the index holds `id` with exactly the vector `vec` (as
 * stored: normalized under cosine) - the same floats, or for an int8 index the same codes
 * and scale `vec` encodes to; VD_NOTFOUND if id is absent; VD_CORRUPT "differs" otherwise.
 * For integrity checks against stored vectors. */
vd_status vd_index_vector_matches(const vd_index *ix, uint64_t id, const float *vec,
                                  vd_err *err);

/* Makes every mutation since the last publish visible to searches, atomically.
 * Writer thread only. A no-op without deferred_publish (each call publishes itself).
 * Publishing also repairs the neighbours of the points removed or replaced since the last
 * publish (until then the graph around them is untouched, so the old versions stay exactly
 * as findable), reconnects orphaned nodes and, when removed points exceed 10% of the index,
 * vacuums: their slots are freed for reuse once no search can still be reading them. Those
 * link changes are tracked like any other (see vd_index_changes). */
void vd_index_publish(vd_index *ix);

typedef struct vd_index_stats {
    size_t n_visible;   /* points searches return */
    size_t n_slots;     /* slots ever used (high-water mark) */
    size_t n_deleted;   /* removed points whose slot is not reclaimed yet */
    uint32_t max_level;
    size_t bytes_vectors; /* raw vector bytes of live points */
    size_t bytes_links;   /* link bytes of live points */
    size_t bytes_total;   /* everything the index has allocated */
    const char *simd;     /* the distance kernel in use: "avx512", "avx2", "neon", "scalar"... */
    const char *simd_int8; /* the int8 kernel: "avx512-vnni", "avx512bw", "avx2", ... */
    vd_quantization quantization;
    /* Where bytes_total goes (their sum): level-0 blocks, upper-level blocks, per-slot side
     * tables (change marks, in-degrees, change and orphan lists), the id map, the rest (list
     * buffers, an int8 index's floats pending for storage, the index object). */
    size_t bytes_blocks, bytes_upper, bytes_slot_tables, bytes_id_map, bytes_other;
    /* A level-0 block: its stride = header + links + vector (rep) + pad, in bytes. */
    size_t block_stride, block_header, block_links, block_pad;
} vd_index_stats;
void vd_index_stats_get(const vd_index *ix, vd_index_stats *out);

/* Checks every invariant of the graph (links in range and to used slots of a high enough
 * level, no self links, no duplicates, counts within limits, id map consistent, level-0
 * in-degrees exact, entry point at the top level, every live point reachable from the entry
 * point). Writer thread only. VD_CORRUPT with the first violation in the message. */
vd_status vd_index_validate(const vd_index *ix, vd_err *err);

/* ---- Persistence (used by storage/; writer thread only) ----------------------------------
 * Storage keeps, per slot, an immutable "vector record" (id + vector, written once when the
 * slot is filled) and a mutable "links record" (level, flags and link lists, rewritten
 * whenever they change), plus the small graph header. The index owns the links record's
 * byte format (versioned by VD_INDEX_LINKS_FORMAT). */
#define VD_INDEX_LINKS_FORMAT 1

typedef enum vd_change_kind {
    VD_CHANGE_NEW = 1,   /* slot filled: write vector record and links record */
    VD_CHANGE_LINKS = 2, /* links or flags changed: rewrite links record */
    VD_CHANGE_FREED = 3, /* slot reclaimed: delete both records */
} vd_change_kind;

/* Calls fn(ctx, slot, kind) once per slot changed since the last vd_index_changes_clear(),
 * in ascending slot order. A NEW slot is reported as NEW even if its links changed since. If
 * fn returns non-zero, iteration stops and that value is returned.
 * vd_index_changes_clear() forgets exactly what the last vd_index_changes() reported (or
 * everything, if it was not called since the last clear): a slot changed after that call is
 * reported again next time (vd_index_publish repairs the neighbours of removed points and may
 * vacuum, changing links and freeing slots). So both orders work: changes -> write ->
 * commit -> publish -> clear, or publish before changes. */
typedef int (*vd_change_fn)(void *ctx, uint32_t slot, vd_change_kind kind);
int vd_index_changes(const vd_index *ix, vd_change_fn fn, void *ctx);
void vd_index_changes_clear(vd_index *ix);

/* The graph header: entry point slot, max level, number of slots. */
typedef struct vd_index_header {
    uint32_t entry_slot; /* UINT32_MAX when empty */
    uint32_t max_level;
    uint32_t n_slots;    /* high-water mark; slots >= n_slots are unused */
} vd_index_header;
void vd_index_header_get(const vd_index *ix, vd_index_header *out);

/* Borrowed view of a filled slot: valid until the next mutating call. *vec_out is the
 * float vector; for an int8 index only while the index holds it (the slot was filled since
 * the last vd_index_changes_clear, i.e. it is reported NEW), else NULL. */
vd_status vd_index_slot_vector(const vd_index *ix, uint32_t slot, uint64_t *id_out,
                               const float **vec_out, vd_err *err);
/* Serializes the links record of a filled slot into caller-owned `buf` of `cap` bytes; the
 * size into *len_out. VD_FULL if cap is too small (then *len_out is the size needed). */
vd_status vd_index_slot_links(const vd_index *ix, uint32_t slot, uint8_t *buf, size_t cap,
                              size_t *len_out, vd_err *err);

/* Loading a stored graph: on an EMPTY index, call vd_index_load_slot for every filled slot
 * (any order; `links` as produced by vd_index_slot_links, treated as hostile input and
 * validated), then vd_index_load_finish with the stored header. No re-insertion happens; an
 * int8 index encodes each vector as it loads (the codes are a function of the floats, so
 * nothing else is stored), and keeps none of them.
 * vd_index_load_finish validates the whole graph (VD_CORRUPT on any inconsistency) and
 * publishes it. */
vd_status vd_index_load_slot(vd_index *ix, uint32_t slot, uint64_t id, const float *vec,
                             const uint8_t *links, size_t links_len, vd_err *err);
vd_status vd_index_load_finish(vd_index *ix, const vd_index_header *h, vd_err *err);

/* ---- Distance kernels (exposed for tests and benchmarks) -------------------------------- */
float vd_dist_l2sq(const float *a, const float *b, size_t dim);
/* Some value > bound once the distance is known to exceed bound; else the exact distance. */
float vd_dist_l2sq_below(const float *a, const float *b, size_t dim, float bound);
float vd_dist_dot(const float *a, const float *b, size_t dim);
float vd_dist_l2sq_ref(const float *a, const float *b, size_t dim); /* scalar reference */
float vd_dist_dot_ref(const float *a, const float *b, size_t dim);
const char *vd_dist_simd_name(void);
/* int8 codes in [-127, 127]: the kernel this build runs, each variant (compiled with SIMDe,
 * emulated where the CPU lacks it: for tests), and the scalar reference. */
typedef enum vd_i8_kernel {
    VD_I8_NATIVE, VD_I8_128, VD_I8_256, VD_I8_512, VD_I8_VNNI, VD_I8_NEON, VD_I8_COUNT
} vd_i8_kernel;
int32_t vd_dist_dot_i8(vd_i8_kernel which, const int8_t *a, const int8_t *b, size_t dim);
int32_t vd_dist_dot_i8_ref(const int8_t *a, const int8_t *b, size_t dim);
const char *vd_dist_simd_int8_name(void);
/* The int8 encoding of dim floats: codes[i] = round(v[i] / scale), scale = max |v[i]| / 127
 * (0 for a zero vector, whose codes are all 0). */
void vd_quantize_i8(const float *v, size_t dim, int8_t *codes, float *scale);

#endif
