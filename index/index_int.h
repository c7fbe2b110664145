/* index/index_int.h: internals shared by the files of index/ (hnsw.c, persist.c, distance.c).
 * Nothing here is visible outside index/. Layout, invariants and locking are explained in
 * the essay at the top of index/hnsw.c. */
#ifndef VD_INDEX_INT_H
#define VD_INDEX_INT_H

#include <pthread.h>
#include <simde/x86/fma.h>
#if defined(__AVX512F__) /* the 512-bit kernels: only where they run natively */
#include <simde/x86/avx512.h>
#endif
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "index/vd_index.h"

#define VD_LEVEL_MAX 32u         /* highest level a node may have (stored records too) */
#define VD_EPOCH_NEVER UINT64_MAX /* died of a live node; born of a free slot */
#define VD_SLOT_NONE UINT32_MAX
#define VD_ARENA_SEGS 32
#define VD_N_STRIPES 4096u /* striped link locks for multi-threaded add_batch */

#define VD_DIRTY_REPORTED 0x80u /* dirty byte: kind already passed to vd_index_changes */

#define NODE_USED 1u /* slot holds a node (live or tombstone) */
#define NODE_TOMB 2u /* removed (writer view); traversable until vacuum frees the slot */

/* Level-0 block: [uint32 count][uint32 links[m0]][vd_node header][pad to 16][float vec[dim]],
 * padded to a multiple of 64 bytes. The header sits right before the vector so that the
 * visibility check of a candidate touches the cache line its distance loads anyway.
 * born/died, count and links are accessed atomically. */
typedef struct vd_node {
    uint64_t born;  /* epoch from which searches return it; NEVER for a free slot */
    uint64_t died;  /* epoch from which searches no longer return it; NEVER while live */
    uint64_t id;
    uint32_t upper; /* first upper-level block (level 1), VD_SLOT_NONE when level == 0 */
    uint8_t level;
    uint8_t flags;  /* NODE_*; writer-side bookkeeping, readers use born/died */
    uint16_t pad;
} vd_node;

/* Segmented arena: segment s holds (1 << shift) << s items of `stride` bytes, so item i lives
 * in segment floor(log2(i + B)) - log2(B). Segments are mmap'ed, never moved, and published
 * with release stores before any item in them is reachable. */
typedef struct vd_arena {
    uint8_t *seg[VD_ARENA_SEGS];
    size_t seg_bytes[VD_ARENA_SEGS];
    size_t stride;
    uint32_t shift;  /* log2 of the first segment's item count */
    uint32_t n_segs; /* writer only */
    uint64_t cap;    /* items addressable in the mapped segments (writer only) */
    size_t mapped;   /* bytes mapped (atomic, read by stats) */
} vd_arena;

static inline uint8_t *vd_arena_at(const vd_arena *a, uint32_t i)
{
    uint64_t x = (uint64_t)i + ((uint64_t)1 << a->shift);
    unsigned top = 63u - (unsigned)__builtin_clzll(x);
    unsigned s = top - a->shift;
    uint8_t *base = __atomic_load_n(&a->seg[s], __ATOMIC_RELAXED);
    return base + (x - ((uint64_t)1 << top)) * a->stride;
}

/* id -> slot open-addressing table with linear probing and backward-shift deletion.
 * Writer only; readers never touch it. vals hold slot + 1 (0 = empty). */
typedef struct vd_idmap {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap; /* power of two */
    size_t n;
} vd_idmap;

typedef struct vd_cand {
    float d;
    uint32_t slot;
} vd_cand;

struct vd_index {
    vd_index_params p; /* with defaults filled in */
    uint32_t dim, m, m0, efc;
    double level_mult;
    int metric;
    size_t hdr_off; /* byte offset of the vd_node header inside a level-0 block */
    size_t vec_off; /* byte offset of the vector */
    vd_arena nodes; /* level-0 blocks */
    vd_arena upper; /* upper-level blocks: [count][links m][next] */

    uint32_t n_slots;   /* high-water mark of slots (atomic: readers bound scans by it) */
    uint32_t *free_slots; /* stack of reclaimed slots, lowest on top */
    size_t n_free, cap_free;
    uint32_t upper_free; /* free list of upper blocks, linked through `next` */
    uint32_t n_upper;    /* high-water mark of upper blocks */
    size_t n_upper_free;

    uint32_t entry;     /* atomic; VD_SLOT_NONE when empty */
    uint32_t max_level; /* atomic */
    pthread_mutex_t ep_lock;
    pthread_mutex_t *stripes; /* VD_N_STRIPES, used only while mt is set */
    int mt;                   /* multi-threaded insertion in progress */

    uint64_t visible_epoch; /* atomic: searches return nodes with born <= v < died */
    uint64_t write_epoch;   /* writer only: stamp of unpublished mutations */
    size_t n_live;          /* writer view: live nodes (including unpublished) */
    size_t n_visible;       /* atomic: n_live as of the last publish */
    size_t n_tomb;          /* atomic: tombstones not reclaimed yet */
    uint32_t ef_search;     /* atomic */
    uint64_t rng;
    size_t ops_since_check; /* mutations since the last reachability check */
    size_t removes_since_check;

    vd_idmap map;

    uint32_t *pending; /* removed slots whose neighbours are repaired at the next publish */
    size_t n_pending, cap_pending;

    uint8_t *dirty;      /* per-slot vd_change_kind since changes_clear (atomic bytes) */
    uint32_t *dirty_list; /* a slot appears at most twice: reported, then changed again */
    size_t n_dirty, n_reported, cap_dirty; /* every per-slot side array has cap_dirty entries */
    int reported; /* vd_index_changes ran since the last clear */
    pthread_mutex_t dirty_lock;

    /* Level-0 in-degree per slot (atomic), so that a node losing its last in-link is
     * queued (orphans, once per slot thanks to omark) and reconnected at the next publish. */
    uint32_t *indeg;
    uint8_t *omark;
    uint32_t *orphans;
    size_t n_orphans;

    vd_cand *rbuf; /* writer scratch for repairs: 4 * m0 + 2 candidates */

    /* Grace periods: readers count themselves into readers[phase] for the duration of a
     * search; vacuum flips the phase and waits for the old count to drain before freeing. */
    size_t bytes_aux; /* atomic: side tables (id map, change tracking, lists), for stats */
    unsigned phase;
    /* Padded off the fields searches only read: every search adds and subtracts here.
     * (Not _Alignas: the struct comes from vd_calloc, 16-byte aligned.) */
    char pad0[64];
    unsigned long readers[2];
    char pad1[64];
};

/* hnsw.c internals used by persist.c */
static inline vd_node *vd_index__node(const vd_index *ix, uint32_t slot)
{
    return (vd_node *)(vd_arena_at(&ix->nodes, slot) + ix->hdr_off);
}
static inline uint32_t *vd_index__list0(const vd_index *ix, uint32_t slot)
{
    return (uint32_t *)vd_arena_at(&ix->nodes, slot);
}
static inline float *vd_index__vec(const vd_index *ix, uint32_t slot)
{
    return (float *)(vd_arena_at(&ix->nodes, slot) + ix->vec_off);
}
/* The link list of `slot` at `level`: list[0] is the count, links follow. */
uint32_t *vd_index__list(const vd_index *ix, uint32_t slot, unsigned level);
static inline uint32_t vd_index__max_links(const vd_index *ix, unsigned level)
{
    return level == 0 ? ix->m0 : ix->m;
}
vd_status vd_index__reserve_slots(vd_index *ix, uint64_t want, vd_err *err);
vd_status vd_index__reserve_upper(vd_index *ix, uint64_t n_blocks, vd_err *err);
uint32_t vd_index__alloc_upper_chain(vd_index *ix, unsigned level);
void vd_index__mark(vd_index *ix, uint32_t slot, vd_change_kind kind);
int vd_idmap_get(const vd_idmap *m, uint64_t id, uint32_t *slot);
vd_status vd_idmap_reserve(vd_idmap *m, size_t n);
void vd_idmap_put(vd_idmap *m, uint64_t id, uint32_t slot); /* capacity reserved */
/* Inserts id -> slot unless id is mapped already: then returns 1 with its slot in *existing.
 * One probe (a load's check for repeated ids and its insert). Capacity reserved. */
int vd_idmap_add(vd_idmap *m, uint64_t id, uint32_t slot, uint32_t *existing);
void vd_idmap_del(vd_idmap *m, uint64_t id);
void vd_index__publish(vd_index *ix); /* publish + repairs + vacuum, whatever the mode */
void vd_index__account(vd_index *ix); /* refreshes bytes_aux after side tables changed */
/* Sum of the squares of v's components, in double; with a NaN or infinite component, NAN and
 * its index in *bad (else *bad = dim). One SIMD pass unless the exact pass is needed. */
double vd_index__norm2(const vd_index *ix, const float *v, uint32_t *bad);
void vd_index__recount_indeg(vd_index *ix); /* after a load; queues nodes without in-links */
/* A reachability pass now (see fix_reachability): live nodes left unreachable. */
size_t vd_index__restore_reachability(vd_index *ix);
size_t vd_index__reach_mark(const vd_index *ix, uint32_t from, uint8_t *seen); /* BFS level 0 */

/* ---- distance kernels (see the essay in distance.c) ----------------------------------- */

/* The vector type is the widest the target runs natively: SIMDe's emulation of a wider type
 * (512-bit on AVX2) goes through memory and costs up to 9x. VD_VW floats per vector. */
#if defined(SIMDE_X86_AVX512F_NATIVE)
#define VD_VW 16
typedef simde__m512 vd_vf;
#define vd_vf_zero() simde_mm512_setzero_ps()
#define vd_vf_load(p) simde_mm512_loadu_ps(p)
#define vd_vf_sub(a, b) simde_mm512_sub_ps(a, b)
#define vd_vf_add(a, b) simde_mm512_add_ps(a, b)
#define vd_vf_fmadd(a, b, c) simde_mm512_fmadd_ps(a, b, c)
#define vd_vf_mask(v, m) simde_mm512_castsi512_ps(simde_mm512_and_si512(  \
    simde_mm512_castps_si512(v), simde_mm512_loadu_si512((const void *)(m))))
#define vd_vf_hsum(v) _mm512_reduce_add_ps(v) /* native only: not in SIMDe 0.7.4 */
#elif defined(SIMDE_X86_AVX_NATIVE)
#define VD_VW 8
typedef simde__m256 vd_vf;
#define vd_vf_zero() simde_mm256_setzero_ps()
#define vd_vf_load(p) simde_mm256_loadu_ps(p)
#define vd_vf_sub(a, b) simde_mm256_sub_ps(a, b)
#define vd_vf_add(a, b) simde_mm256_add_ps(a, b)
#define vd_vf_fmadd(a, b, c) simde_mm256_fmadd_ps(a, b, c)
#define vd_vf_mask(v, m) simde_mm256_and_ps(v, simde_mm256_loadu_ps((const float *)(m)))
static inline float vd_vf_hsum(simde__m256 v)
{
    simde__m128 h = simde_mm_add_ps(simde_mm256_castps256_ps128(v),
                                    simde_mm256_extractf128_ps(v, 1));
    h = simde_mm_add_ps(h, simde_mm_movehl_ps(h, h));
    return simde_mm_cvtss_f32(simde_mm_add_ss(h, simde_mm_movehdup_ps(h)));
}
#else /* SSE2 (the x86-64 baseline), NEON, or SIMDe's portable code */
#define VD_VW 4
typedef simde__m128 vd_vf;
#define vd_vf_zero() simde_mm_setzero_ps()
#define vd_vf_load(p) simde_mm_loadu_ps(p)
#define vd_vf_sub(a, b) simde_mm_sub_ps(a, b)
#define vd_vf_add(a, b) simde_mm_add_ps(a, b)
#define vd_vf_fmadd(a, b, c) simde_mm_fmadd_ps(a, b, c)
#define vd_vf_mask(v, m) simde_mm_and_ps(v, simde_mm_loadu_ps((const float *)(m)))
static inline float vd_vf_hsum(simde__m128 v)
{
    simde__m128 h = simde_mm_add_ps(v, simde_mm_movehl_ps(v, v));
    return simde_mm_cvtss_f32(simde_mm_add_ss(h, simde_mm_shuffle_ps(h, h, 1)));
}
#endif

/* VD_VW zero words then VD_VW all-ones words: loaded from vd_kern_tail_mask + t, a lane
 * mask that keeps the last t lanes of a vector. */
extern const uint32_t vd_kern_tail_mask[2 * VD_VW];

/* The last dim % VD_VW floats of a and b, as vectors whose other lanes are zero. When dim >=
 * VD_VW the load ends exactly at dim (it overlaps floats already summed, which the mask
 * clears): no read past the end and no store-to-load stall. Shorter vectors go through a
 * zeroed buffer. */
static inline void vd_kern_tail(const float *a, const float *b, size_t dim, vd_vf *ta, vd_vf *tb)
{
    size_t t = dim % VD_VW;
    if (dim >= VD_VW) {
        const uint32_t *m = vd_kern_tail_mask + t;
        *ta = vd_vf_mask(vd_vf_load(a + dim - VD_VW), m);
        *tb = vd_vf_mask(vd_vf_load(b + dim - VD_VW), m);
    } else {
        float x[VD_VW] = {0}, y[VD_VW] = {0};
        memcpy(x, a + dim - t, t * sizeof(float));
        memcpy(y, b + dim - t, t * sizeof(float));
        *ta = vd_vf_load(x);
        *tb = vd_vf_load(y);
    }
}

/* Floats summed between two checks of vd_kern_l2sq_below: a check is a horizontal sum and a
 * branch, a few percent of 128 floats' work. */
#define VD_L2_CHECK_FLOATS 128
_Static_assert(VD_L2_CHECK_FLOATS % (4 * VD_VW) == 0, "checks fall on loop iterations");

/* Squared L2 distance that gives up once a partial sum exceeds `bound` and returns that
 * partial sum. Partial sums never decrease, so `result < bound` answers exactly as the full
 * distance would, and a result <= bound is the full distance. Searches pass the distance a
 * candidate must beat: at 784 dims most candidates are rejected after a fraction of the
 * vector (less arithmetic and fewer cache lines). INFINITY gives the plain distance. */
static inline float vd_kern_l2sq_below(const float *a, const float *b, size_t dim, float bound)
{
    vd_vf s0 = vd_vf_zero(), s1 = vd_vf_zero(), s2 = vd_vf_zero(), s3 = vd_vf_zero();
    size_t i = 0, check = VD_L2_CHECK_FLOATS;
    for (; i + 4 * VD_VW <= dim; i += 4 * VD_VW) {
        if (i == check) {
            check += VD_L2_CHECK_FLOATS;
            float part = vd_vf_hsum(vd_vf_add(vd_vf_add(s0, s1), vd_vf_add(s2, s3)));
            if (part > bound) return part;
        }
        vd_vf d0 = vd_vf_sub(vd_vf_load(a + i), vd_vf_load(b + i));
        vd_vf d1 = vd_vf_sub(vd_vf_load(a + i + VD_VW), vd_vf_load(b + i + VD_VW));
        vd_vf d2 = vd_vf_sub(vd_vf_load(a + i + 2 * VD_VW), vd_vf_load(b + i + 2 * VD_VW));
        vd_vf d3 = vd_vf_sub(vd_vf_load(a + i + 3 * VD_VW), vd_vf_load(b + i + 3 * VD_VW));
        s0 = vd_vf_fmadd(d0, d0, s0);
        s1 = vd_vf_fmadd(d1, d1, s1);
        s2 = vd_vf_fmadd(d2, d2, s2);
        s3 = vd_vf_fmadd(d3, d3, s3);
    }
    for (; i + VD_VW <= dim; i += VD_VW) {
        vd_vf d = vd_vf_sub(vd_vf_load(a + i), vd_vf_load(b + i));
        s0 = vd_vf_fmadd(d, d, s0);
    }
    if (i < dim) {
        vd_vf ta, tb;
        vd_kern_tail(a, b, dim, &ta, &tb);
        vd_vf d = vd_vf_sub(ta, tb);
        s1 = vd_vf_fmadd(d, d, s1);
    }
    return vd_vf_hsum(vd_vf_add(vd_vf_add(s0, s1), vd_vf_add(s2, s3)));
}

static inline float vd_kern_l2sq(const float *a, const float *b, size_t dim)
{
    return vd_kern_l2sq_below(a, b, dim, INFINITY);
}

static inline float vd_kern_dot(const float *a, const float *b, size_t dim)
{
    vd_vf s0 = vd_vf_zero(), s1 = vd_vf_zero(), s2 = vd_vf_zero(), s3 = vd_vf_zero();
    size_t i = 0;
    for (; i + 4 * VD_VW <= dim; i += 4 * VD_VW) {
        s0 = vd_vf_fmadd(vd_vf_load(a + i), vd_vf_load(b + i), s0);
        s1 = vd_vf_fmadd(vd_vf_load(a + i + VD_VW), vd_vf_load(b + i + VD_VW), s1);
        s2 = vd_vf_fmadd(vd_vf_load(a + i + 2 * VD_VW), vd_vf_load(b + i + 2 * VD_VW), s2);
        s3 = vd_vf_fmadd(vd_vf_load(a + i + 3 * VD_VW), vd_vf_load(b + i + 3 * VD_VW), s3);
    }
    for (; i + VD_VW <= dim; i += VD_VW)
        s0 = vd_vf_fmadd(vd_vf_load(a + i), vd_vf_load(b + i), s0);
    if (i < dim) {
        vd_vf ta, tb;
        vd_kern_tail(a, b, dim, &ta, &tb);
        s1 = vd_vf_fmadd(ta, tb, s1);
    }
    return vd_vf_hsum(vd_vf_add(vd_vf_add(s0, s1), vd_vf_add(s2, s3)));
}

#endif
