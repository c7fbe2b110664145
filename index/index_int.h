/* index/index_int.h: internals shared by the files of index/ (see the table in
 * docs/architecture.md, "Index"). Nothing here is visible outside index/.
 *
 * What lives here: the data layout (node blocks, arenas, the index struct), the few
 * cross-file functions as vd_index__name / vd_idmap_name, and every helper the hot loops
 * need as `static inline`, so that splitting index/ into files by phase costs no inlining:
 * node and link addressing, distances (the per-metric switch over the SIMD kernels), the
 * candidate heaps, visited tags, reader counters, stripe locks and in-degree updates. Each
 * declaration says which file defines it; the design note of that file says why. */
#ifndef VD_INDEX_INT_H
#define VD_INDEX_INT_H

#include <pthread.h>
#include <simde/x86/avx2.h>
#include <simde/x86/fma.h>
/* The 512-bit kernels only where they run natively, or in distance.c, which compiles every
 * int8 variant (VD_KERNELS_ALL) so the tests can check each against the scalar reference. */
#if defined(__AVX512F__) || defined(VD_KERNELS_ALL)
#include <simde/x86/avx512.h>
#endif
#if (defined(__ARM_NEON) && defined(__ARM_FEATURE_DOTPROD)) || defined(VD_KERNELS_ALL)
#include <simde/arm/neon.h>
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
/* Candidates a repair may consider: the removed node's links, one hop further through
 * removed ones, and its ef_construction pool (vacuum.c). */
#define VD_REPAIR_CAP(ix) (4 * (size_t)(ix)->m0 + 2 + (size_t)(ix)->efc)

#define VD_DIRTY_REPORTED 0x80u /* dirty byte: kind already passed to vd_index_changes */

#define NODE_USED 1u /* slot holds a node (live or tombstone) */
#define NODE_TOMB 2u /* removed (writer view); traversable until vacuum frees the slot */

/* Level-0 block, float: [uint32 count][uint32 links[m0]][vd_node header][pad to 16][float
 * vec[dim]], padded to a multiple of 64 bytes; int8: [vd_node header][vd_q8 codes][uint32
 * count][uint32 links[m0]], padded to 8 (hnsw.c, vd_index_open, says why). Either way the
 * header sits right before the vector so that the visibility check of a candidate touches
 * the cache line its distance loads anyway. born/died, count and links are accessed
 * atomically. */
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
 * Writer only; readers never touch it. vals hold slot + 1 (0 = empty); an entry's key is
 * the id in that slot's node header (idmap.c), so a slot's id is written before it is mapped. */
typedef struct vd_idmap {
    const struct vd_index *ix; /* whose node headers hold the keys */
    uint32_t *vals;
    size_t cap; /* power of two */
    size_t n;
} vd_idmap;

typedef struct vd_cand {
    float d;
    uint32_t slot;
} vd_cand;

/* An int8 node's rep (quantization int8): per-vector scaling, x ~ scale x c, with the
 * squared norm of that decoded vector (l2 distances are norms minus twice the dot). */
typedef struct vd_q8 {
    float scale;
    float norm2;
    int8_t c[]; /* dim codes in [-127, 127] */
} vd_q8;

struct vd_index {
    vd_index_params p; /* with defaults filled in */
    uint32_t dim, m, m0, efc;
    int quant;        /* 1: reps are vd_q8 (quantization int8), 0: float[dim] */
    size_t rep_bytes; /* bytes of a rep */
    double level_mult;
    int metric;
    size_t hdr_off;  /* byte offset of the vd_node header inside a level-0 block */
    size_t vec_off;  /* byte offset of the vector */
    size_t list_off; /* byte offset of the level-0 link list */
    vd_arena nodes; /* level-0 blocks */
    vd_arena upper; /* upper-level blocks: [count][links m][next] */

    uint32_t n_slots;   /* high-water mark of slots (atomic: readers bound scans by it) */
    uint32_t *free_slots; /* stack of reclaimed slots, each vacuum's lowest on top */
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
    /* query.c's learned cost model (atomic, relaxed, racy updates): a search's effort per
     * unit of ef, its descent's effort, a filter's hop factor */
    float effort_per_ef, effort_descent, effort_hops;
    uint64_t rng;
    size_t ops_since_check; /* mutations since the last reachability check */

    vd_idmap map;

    uint32_t *pending; /* removed slots whose neighbours are repaired at the next publish */
    size_t n_pending, cap_pending;

    uint8_t *dirty;      /* per-slot vd_change_kind since changes_clear (atomic bytes) */
    uint32_t *dirty_list; /* a slot appears at most twice: reported, then changed again */
    size_t n_dirty, n_reported, cap_dirty; /* every per-slot side array has cap_dirty entries */
    size_t cap_side[5]; /* entries of dirty, omark, indeg, dirty_list (in pairs), orphans */
    /* Atomic (stats): the most entries dirty_list / orphans held since their pages were last
     * released (vd_index__trim_lists); what of them is resident. */
    size_t hw_dirty, hw_orphans;
    int reported; /* vd_index_changes ran since the last clear */
    pthread_mutex_t dirty_lock;

    /* Level-0 in-degree per slot (atomic), so that a node losing its last in-link is
     * queued (orphans, once per slot thanks to omark) and reconnected at the next publish. */
    uint32_t *indeg;
    uint8_t *omark;
    uint32_t *orphans;
    size_t n_orphans;

    /* Writer scratch for repairs (vacuum.c, neighbors.c): VD_REPAIR_CAP(ix) entries each. */
    vd_cand *rbuf;
    uint32_t *rslots;

    /* int8: the normalized floats of slots filled since the last vd_index_changes_clear,
     * held until storage wrote them (vd_index_slot_vector), then dropped (hnsw.c). */
    float *pend_vec;    /* n_pend x dim */
    uint32_t *pend_slot; /* n_pend */
    size_t n_pend, cap_pend;
    uint32_t *pend_map; /* open addressing: slot + 1 -> entry + 1 in the upper half */
    size_t cap_pmap;
    size_t bytes_aux; /* atomic: heap side tables (id map, lists, pending floats), for stats */
    size_t bytes_map; /* atomic: the id map's part of bytes_aux */

    /* Grace periods: readers count themselves into readers[phase] for the duration of a
     * search; vacuum flips the phase and waits for the old count to drain before freeing. */
    unsigned phase;
    /* Padded off the fields searches only read: every search adds and subtracts here.
     * (Not _Alignas: the struct comes from vd_calloc, 16-byte aligned.) */
    char pad0[64];
    unsigned long readers[2];
    char pad1[64];
};

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


/* ---- int8 kernels (see the essay in distance.c) -------------------------------------------
 * Dot products of int8 codes in [-127, 127] into int32. Never -128: the x86 paths take
 * |a| as unsigned (maddubs and VNNI multiply unsigned by signed bytes), and with both sides
 * within 127 a pair of products, 2 x 127 x 127 = 32258, fits maddubs' saturating int16.
 * Tails as for floats: the last dim % W bytes come from one load that ends at dim, with the
 * lanes already summed masked off; shorter codes go through a zeroed buffer. */

/* 64 zero bytes then 64 0xff: W bytes loaded from vd_kern_tail_mask8 + 64 - W + t keep the
 * last t lanes. */
extern const uint8_t vd_kern_tail_mask8[128];

/* 128-bit: SSSE3 on x86, NEON or portable code elsewhere through SIMDe. */
static inline simde__m128i vd_i8_128_step(simde__m128i acc, simde__m128i x, simde__m128i y)
{
    simde__m128i p = simde_mm_maddubs_epi16(simde_mm_sign_epi8(x, x), simde_mm_sign_epi8(y, x));
    return simde_mm_add_epi32(acc, simde_mm_madd_epi16(p, simde_mm_set1_epi16(1)));
}
static inline int32_t vd_i8_hsum128(simde__m128i v)
{
    v = simde_mm_add_epi32(v, simde_mm_shuffle_epi32(v, SIMDE_MM_SHUFFLE(1, 0, 3, 2)));
    v = simde_mm_add_epi32(v, simde_mm_shuffle_epi32(v, SIMDE_MM_SHUFFLE(2, 3, 0, 1)));
    return simde_mm_cvtsi128_si32(v);
}
static inline int32_t vd_kern_dot_i8_128(const int8_t *a, const int8_t *b, size_t n)
{
    simde__m128i s0 = simde_mm_setzero_si128(), s1 = simde_mm_setzero_si128();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = vd_i8_128_step(s0, simde_mm_loadu_si128((const void *)(a + i)),
                            simde_mm_loadu_si128((const void *)(b + i)));
        s1 = vd_i8_128_step(s1, simde_mm_loadu_si128((const void *)(a + i + 16)),
                            simde_mm_loadu_si128((const void *)(b + i + 16)));
    }
    for (; i + 16 <= n; i += 16)
        s0 = vd_i8_128_step(s0, simde_mm_loadu_si128((const void *)(a + i)),
                            simde_mm_loadu_si128((const void *)(b + i)));
    if (i < n) {
        size_t t = n - i;
        simde__m128i x, y;
        if (n >= 16) {
            simde__m128i m = simde_mm_loadu_si128((const void *)(vd_kern_tail_mask8 + 48 + t));
            x = simde_mm_and_si128(simde_mm_loadu_si128((const void *)(a + n - 16)), m);
            y = simde_mm_loadu_si128((const void *)(b + n - 16));
        } else {
            int8_t xa[16] = {0}, ya[16] = {0};
            memcpy(xa, a + i, t);
            memcpy(ya, b + i, t);
            x = simde_mm_loadu_si128((const void *)xa);
            y = simde_mm_loadu_si128((const void *)ya);
        }
        s1 = vd_i8_128_step(s1, x, y);
    }
    return vd_i8_hsum128(simde_mm_add_epi32(s0, s1));
}

/* 256-bit: AVX2's maddubs. */
static inline simde__m256i vd_i8_256_step(simde__m256i acc, simde__m256i x, simde__m256i y)
{
    simde__m256i p = simde_mm256_maddubs_epi16(simde_mm256_sign_epi8(x, x),
                                               simde_mm256_sign_epi8(y, x));
    return simde_mm256_add_epi32(acc, simde_mm256_madd_epi16(p, simde_mm256_set1_epi16(1)));
}
static inline int32_t vd_i8_hsum256(simde__m256i v)
{
    return vd_i8_hsum128(simde_mm_add_epi32(simde_mm256_castsi256_si128(v),
                                            simde_mm256_extracti128_si256(v, 1)));
}
static inline int32_t vd_kern_dot_i8_256(const int8_t *a, const int8_t *b, size_t n)
{
    simde__m256i s0 = simde_mm256_setzero_si256(), s1 = simde_mm256_setzero_si256();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = vd_i8_256_step(s0, simde_mm256_loadu_si256((const void *)(a + i)),
                            simde_mm256_loadu_si256((const void *)(b + i)));
        s1 = vd_i8_256_step(s1, simde_mm256_loadu_si256((const void *)(a + i + 32)),
                            simde_mm256_loadu_si256((const void *)(b + i + 32)));
    }
    for (; i + 32 <= n; i += 32)
        s0 = vd_i8_256_step(s0, simde_mm256_loadu_si256((const void *)(a + i)),
                            simde_mm256_loadu_si256((const void *)(b + i)));
    if (i < n) {
        if (n < 32) return vd_kern_dot_i8_128(a, b, n);
        size_t t = n - i;
        simde__m256i m = simde_mm256_loadu_si256((const void *)(vd_kern_tail_mask8 + 32 + t));
        simde__m256i x = simde_mm256_and_si256(simde_mm256_loadu_si256((const void *)(a + n - 32)),
                                               m);
        s1 = vd_i8_256_step(s1, x, simde_mm256_loadu_si256((const void *)(b + n - 32)));
    }
    return vd_i8_hsum256(simde_mm256_add_epi32(s0, s1));
}

#if defined(__AVX512F__) || defined(VD_KERNELS_ALL)
/* 512-bit: AVX-512BW has no sign_epi8; |a| and b negated where a < 0 do the same. With
 * AVX-512 VNNI one dpbusd replaces maddubs + madd + add. */
static inline void vd_i8_512_prep(simde__m512i x, simde__m512i y, simde__m512i *ux,
                                  simde__m512i *sy)
{
    *ux = simde_mm512_abs_epi8(x);
    *sy = simde_mm512_mask_sub_epi8(y, simde_mm512_movepi8_mask(x), simde_mm512_setzero_si512(),
                                    y);
}
static inline int32_t vd_i8_hsum512(simde__m512i v)
{
    return vd_i8_hsum256(simde_mm256_add_epi32(simde_mm512_castsi512_si256(v),
                                               simde_mm512_extracti64x4_epi64(v, 1)));
}
static inline simde__m512i vd_i8_512_step(simde__m512i acc, simde__m512i x, simde__m512i y,
                                          int vnni)
{
    simde__m512i ux, sy;
    vd_i8_512_prep(x, y, &ux, &sy);
    if (vnni) return simde_mm512_dpbusd_epi32(acc, ux, sy);
    simde__m512i p = simde_mm512_maddubs_epi16(ux, sy);
    return simde_mm512_add_epi32(acc, simde_mm512_madd_epi16(p, simde_mm512_set1_epi16(1)));
}
static inline __attribute__((always_inline)) int32_t
vd_i8_512(const int8_t *a, const int8_t *b, size_t n, int vnni)
{
    simde__m512i s0 = simde_mm512_setzero_si512(), s1 = simde_mm512_setzero_si512();
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        s0 = vd_i8_512_step(s0, simde_mm512_loadu_si512((const void *)(a + i)),
                            simde_mm512_loadu_si512((const void *)(b + i)), vnni);
        s1 = vd_i8_512_step(s1, simde_mm512_loadu_si512((const void *)(a + i + 64)),
                            simde_mm512_loadu_si512((const void *)(b + i + 64)), vnni);
    }
    for (; i + 64 <= n; i += 64)
        s0 = vd_i8_512_step(s0, simde_mm512_loadu_si512((const void *)(a + i)),
                            simde_mm512_loadu_si512((const void *)(b + i)), vnni);
    if (i < n) {
        if (n < 64) return vd_kern_dot_i8_256(a, b, n);
        size_t t = n - i;
        simde__m512i m = simde_mm512_loadu_si512((const void *)(vd_kern_tail_mask8 + t));
        simde__m512i x = simde_mm512_and_si512(simde_mm512_loadu_si512((const void *)(a + n - 64)),
                                               m);
        s1 = vd_i8_512_step(s1, x, simde_mm512_loadu_si512((const void *)(b + n - 64)), vnni);
    }
    return vd_i8_hsum512(simde_mm512_add_epi32(s0, s1));
}
static inline int32_t vd_kern_dot_i8_512(const int8_t *a, const int8_t *b, size_t n)
{
    return vd_i8_512(a, b, n, 0);
}
static inline int32_t vd_kern_dot_i8_vnni(const int8_t *a, const int8_t *b, size_t n)
{
    return vd_i8_512(a, b, n, 1);
}
#endif

#if (defined(__ARM_NEON) && defined(__ARM_FEATURE_DOTPROD)) || defined(VD_KERNELS_ALL)
/* NEON with the dot-product extension: sdot takes signed bytes on both sides. */
static inline int32_t vd_kern_dot_i8_neon(const int8_t *a, const int8_t *b, size_t n)
{
    simde_int32x4_t s0 = simde_vdupq_n_s32(0), s1 = simde_vdupq_n_s32(0);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = simde_vdotq_s32(s0, simde_vld1q_s8(a + i), simde_vld1q_s8(b + i));
        s1 = simde_vdotq_s32(s1, simde_vld1q_s8(a + i + 16), simde_vld1q_s8(b + i + 16));
    }
    for (; i + 16 <= n; i += 16)
        s0 = simde_vdotq_s32(s0, simde_vld1q_s8(a + i), simde_vld1q_s8(b + i));
    if (i < n) {
        size_t t = n - i;
        simde_int8x16_t x, y;
        if (n >= 16) {
            simde_int8x16_t m = simde_vreinterpretq_s8_u8(simde_vld1q_u8(vd_kern_tail_mask8 + 48 + t));
            x = simde_vandq_s8(simde_vld1q_s8(a + n - 16), m);
            y = simde_vld1q_s8(b + n - 16);
        } else {
            int8_t xa[16] = {0}, ya[16] = {0};
            memcpy(xa, a + i, t);
            memcpy(ya, b + i, t);
            x = simde_vld1q_s8(xa);
            y = simde_vld1q_s8(ya);
        }
        s1 = simde_vdotq_s32(s1, x, y);
    }
    return simde_vaddvq_s32(simde_vaddq_s32(s0, s1));
}
#endif

/* The int8 kernel this build runs: the widest the target has natively. */
#if defined(SIMDE_X86_AVX512VNNI_NATIVE) && defined(SIMDE_X86_AVX512BW_NATIVE)
#define vd_kern_dot_i8 vd_kern_dot_i8_vnni
#define VD_KERN_I8_NAME "avx512-vnni"
#elif defined(SIMDE_X86_AVX512BW_NATIVE)
#define vd_kern_dot_i8 vd_kern_dot_i8_512
#define VD_KERN_I8_NAME "avx512bw"
#elif defined(SIMDE_X86_AVX2_NATIVE)
#define vd_kern_dot_i8 vd_kern_dot_i8_256
#define VD_KERN_I8_NAME "avx2"
#elif defined(__ARM_NEON) && defined(__ARM_FEATURE_DOTPROD)
#define vd_kern_dot_i8 vd_kern_dot_i8_neon
#define VD_KERN_I8_NAME "neon-dotprod"
#else
#define vd_kern_dot_i8 vd_kern_dot_i8_128
#if defined(SIMDE_X86_SSSE3_NATIVE)
#define VD_KERN_I8_NAME "ssse3"
#elif defined(SIMDE_ARM_NEON_A32V7_NATIVE)
#define VD_KERN_I8_NAME "neon"
#else
#define VD_KERN_I8_NAME "portable"
#endif
#endif

/* ---- atomics, addressing, small predicates ----------------------------------------------- */

#define LD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ST_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static inline vd_node *vd_index__node(const vd_index *ix, uint32_t slot)
{
    return (vd_node *)(vd_arena_at(&ix->nodes, slot) + ix->hdr_off);
}
static inline uint32_t *vd_index__list0(const vd_index *ix, uint32_t slot)
{
    return (uint32_t *)(vd_arena_at(&ix->nodes, slot) + ix->list_off);
}
/* Prefetches every cache line of slot's level-0 list (count and m0 links: 132 bytes at M 16,
 * three lines, four for an int8 block's unaligned list). A list read in full whose first
 * line alone was prefetched misses on the rest: the filtered traversal's hop lists, read
 * in a row, took 200 ns each that way and 80-95 ns with every line prefetched (GloVe, 10 %
 * filter: 1.7x the traversal's QPS at the same ef). */
/* Prefetches the lines holding a list's count and its first n links. */
static inline void vd_index__prefetch_links(const uint32_t *list, uint32_t n)
{
    uintptr_t a = (uintptr_t)list, end = a + 4 * ((uintptr_t)n + 1);
    for (a &= ~(uintptr_t)63; a < end; a += 64) __builtin_prefetch((const void *)a);
}
static inline void vd_index__prefetch_list0(const vd_index *ix, uint32_t slot)
{
    vd_index__prefetch_links(vd_index__list0(ix, slot), ix->m0);
}
/* A hop (search.c's filtered traversal) skips the links in its level-0 list's last cache
 * line when they are a sixteenth of the list or less: at M 16 a line-aligned list (every
 * float block's) has its count and 31 links in two lines and the 32nd alone in a third, a
 * third of the hop's memory traffic for one link of 32. GloVe, the traversal forced, medians
 * of 4 alternating passes in one process (bench-filter): 10 % keyword at ef 384 651 -> 697
 * QPS, len >= 12 at ef 384 763 -> 802, recall unchanged (0.993 / 0.992, 0.991); at small ef
 * (128, 96, 16) within +-4 %. The lines are fetched in parallel, so the third cost bandwidth,
 * not a wait. Skipping a larger tail costs recall: at M 12 (a 100-byte list, 9 of its 24
 * links in the second line) reading 15 links per hop took an anti-correlated 30 % filter
 * from recall 0.95+ to 0.92 (tests/unit/test_index_filter.c); 20 of 24 held. */
static inline uint32_t vd_index__hop_links(const vd_index *ix, const uint32_t *list)
{
    uintptr_t a = (uintptr_t)list, end = a + 4 * ((uintptr_t)ix->m0 + 1);
    uintptr_t last = (end - 1) & ~(uintptr_t)63; /* where the last line starts */
    uint32_t tail = last > a ? (uint32_t)((end - last) / 4) : ix->m0;
    return 16 * tail <= ix->m0 ? ix->m0 - tail : ix->m0;
}
static inline void vd_index__prefetch_hop(const vd_index *ix, uint32_t slot)
{
    const uint32_t *l = vd_index__list0(ix, slot);
    vd_index__prefetch_links(l, vd_index__hop_links(ix, l));
}
/* The node's vector region ("rep"): float[dim], or with quantization int8 a vd_q8. Every
 * distance between nodes, and between a query and a node, reads reps of the same kind. */
static inline void *vd_index__rep(const vd_index *ix, uint32_t slot)
{
    return vd_arena_at(&ix->nodes, slot) + ix->vec_off;
}
/* The cache lines from a node's header to its rep's end: what the filtered traversal
 * prefetches of a node it will measure (the exact scan caps them for small sets, query.c).
 * At most 12 cost fashion-mnist's 52-line nodes a fifth to a quarter of the traversal's QPS
 * (bench-filter, label == own 18,140 -> 22,829-23,294, label == other 3,846 -> 4,257). */
static inline size_t vd_index__node_lines(const vd_index *ix)
{
    return (ix->vec_off - ix->hdr_off + ix->rep_bytes + 63) / 64;
}
static inline void vd_index__prefetch_node(const vd_index *ix, uint32_t slot, size_t lines)
{
    const uint8_t *p = vd_arena_at(&ix->nodes, slot) + ix->hdr_off;
    for (size_t l = 0; l < lines; l++) __builtin_prefetch(p + 64 * l);
}
/* Prefetches every line of the rep in node block blk after its first (the header's line,
 * which the beams prefetch with the header). Counted from the rep's own start: a count of
 * ceil(rep_bytes / 64) lines past the first reached one line into the next block for GloVe's
 * 400-byte vectors at offset 176 (a line not read, one in eight prefetched). Rejected: a cap
 * of 11 lines, for the bounded l2 distances that stop early - fashion-mnist's 49-line
 * vectors ran 30-50 % slower with it (one process, alternating passes, medians of 5, two
 * runs: ef 10 / 24 / 64 24.5-32.6k / 14.8-14.9k / 9.4-9.5k QPS capped, 34.5-42.9k /
 * 20.9-22.1k / 12.5-12.6k whole): the vectors that do get their full distance are the
 * ones the beam keeps. */
static inline void vd_index__prefetch_rep_rest(const vd_index *ix, const uint8_t *blk)
{
    uintptr_t a = (uintptr_t)(blk + ix->vec_off), end = a + ix->rep_bytes;
    for (a = (a | 63) + 1; a < end; a += 64) __builtin_prefetch((const void *)a);
}

/* An upper-level block is [count][m links][next]: `next` chains the node's next level. */
#define VD_UPPER_NEXT(ix, blk) ((blk)[1 + (ix)->m])

/* The link list of `slot` at `level`: list[0] is the count, links follow. Upper levels walk
 * the node's chain of blocks (only greedy descent goes there, so the walk is off the hot
 * path; inline all the same, the descent runs once per search). */
static inline uint32_t *vd_index__list(const vd_index *ix, uint32_t slot, unsigned level)
{
    if (level == 0) return vd_index__list0(ix, slot);
    uint32_t *blk = (uint32_t *)vd_arena_at(&ix->upper, vd_index__node(ix, slot)->upper);
    for (unsigned l = 1; l < level; l++)
        blk = (uint32_t *)vd_arena_at(&ix->upper, VD_UPPER_NEXT(ix, blk));
    return blk;
}

static inline uint32_t vd_index__max_links(const vd_index *ix, unsigned level)
{
    return level == 0 ? ix->m0 : ix->m;
}

/* Filled and not removed (writer view). */
static inline int vd_index__alive(const vd_node *nd)
{
    return (nd->flags & (NODE_USED | NODE_TOMB)) == NODE_USED;
}

/* Distance under metric `metric`; when it is l2, the computation may stop once it is known to
 * exceed `bound`, returning some value > bound (vd_kern_l2sq_below). So `result < bound` is
 * always the exact test, and a result <= bound is the exact distance. Dot products are not
 * monotonic along the vector and are always computed whole. */
static inline float vd_index__dist_below_m(int metric, uint32_t dim, const float *a,
                                           const float *b, float bound)
{
    switch (metric) {
    case VD_METRIC_L2: return vd_kern_l2sq_below(a, b, dim, bound);
    case VD_METRIC_COSINE: return 1.0f - vd_kern_dot(a, b, dim);
    default: return -vd_kern_dot(a, b, dim);
    }
}
/* The distance of two int8 reps: exactly that of the decoded vectors (scale x codes), so
 * l2 is never negative beyond rounding and a code's distance to itself is 0. */
static inline float vd_index__dist_q8_m(int metric, uint32_t dim, const vd_q8 *a,
                                        const vd_q8 *b)
{
    float dot = a->scale * b->scale * (float)vd_kern_dot_i8(a->c, b->c, dim);
    switch (metric) {
    case VD_METRIC_L2: return a->norm2 + b->norm2 - 2.0f * dot;
    case VD_METRIC_COSINE: return 1.0f - dot;
    default: return -dot;
    }
}
/* The distance of two reps of kind `quant` (a compile-time constant in the hot loops, like
 * metric); `bound` as for vd_index__dist_below_m (int8 distances are dot products: whole). */
static inline float vd_index__rdist_m(int metric, int quant, uint32_t dim, const void *a,
                                      const void *b, float bound)
{
    if (quant) return vd_index__dist_q8_m(metric, dim, a, b);
    return vd_index__dist_below_m(metric, dim, a, b, bound);
}
static inline float vd_index__dist_below(const vd_index *ix, const void *a, const void *b,
                                         float bound)
{
    return vd_index__rdist_m(ix->metric, ix->quant, ix->dim, a, b, bound);
}
static inline float vd_index__dist(const vd_index *ix, const void *a, const void *b)
{
    return vd_index__dist_below(ix, a, b, INFINITY);
}

/* Runs the statement CALL(metric, quant) with both compile-time constants, those of ix: the
 * one dispatch of the hot loops (search.c's beams, query.c's exact scan), each an
 * always-inline body specialised per pair, so no distance pays a switch. */
#define VD_INDEX_SPECIALISE(ix, CALL)                                                       \
    switch ((ix)->metric * 2 + (ix)->quant) {                                               \
    case VD_METRIC_L2 * 2: CALL(VD_METRIC_L2, 0); break;                                    \
    case VD_METRIC_L2 * 2 + 1: CALL(VD_METRIC_L2, 1); break;                                \
    case VD_METRIC_COSINE * 2: CALL(VD_METRIC_COSINE, 0); break;                            \
    case VD_METRIC_COSINE * 2 + 1: CALL(VD_METRIC_COSINE, 1); break;                        \
    case VD_METRIC_IP * 2: CALL(VD_METRIC_IP, 0); break;                                    \
    default: CALL(VD_METRIC_IP, 1); break;                                                  \
    }

/* ---- candidate heaps ---------------------------------------------------------------------
 * One binary heap over vd_cand serves both orders: `max` (a compile-time constant at every
 * call, so each use compiles to the plain loop) puts the farthest on top, else the nearest.
 * The search beam keeps candidates in a min-heap and results in a bounded max-heap. */

/* a belongs strictly above b. */
static inline int vd_heap_above(float a, float b, int max) { return max ? a > b : a < b; }
/* a may stay above b (ties keep their place). */
static inline int vd_heap_keeps(float a, float b, int max) { return max ? a >= b : a <= b; }

static inline void vd_heap_push(vd_cand *h, size_t *n, vd_cand x, int max)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (vd_heap_keeps(h[p].d, x.d, max)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline void vd_heap_pop(vd_cand *h, size_t *n, int max)
{
    vd_cand x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && vd_heap_above(h[c + 1].d, h[c].d, max)) c++;
        if (vd_heap_keeps(x.d, h[c].d, max)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static inline void vd_minheap_push(vd_cand *h, size_t *n, vd_cand x) { vd_heap_push(h, n, x, 0); }
static inline void vd_minheap_pop(vd_cand *h, size_t *n) { vd_heap_pop(h, n, 0); }
static inline void vd_maxheap_push(vd_cand *h, size_t *n, vd_cand x) { vd_heap_push(h, n, x, 1); }
static inline void vd_maxheap_pop(vd_cand *h, size_t *n) { vd_heap_pop(h, n, 1); }

/* ---- hnsw.c: the index object, arenas, slots, level generator, scratch, vectors ---------- */

/* Per-thread search scratch: visited tags with a generation counter (a new search costs
 * nothing to reset), the two candidate heaps, a sorted copy for construction, hits and the
 * normalized query. One per thread, shared by every index the thread touches. */
/* A hit inside a search: its slot travels with it (an int8 re-rank asks the source by slot). */
typedef struct vd_rhit {
    uint64_t id;
    float d;
    uint32_t slot;
} vd_rhit;

typedef struct vd_scratch {
    uint16_t *tags; /* 16 bits, not 32: half the cache footprint; a wrap costs one memset */
    size_t n_tags;
    uint16_t gen;
    vd_cand *c, *w, *s; /* candidates (min-heap), results (max-heap), sorted selection (also
                         * the one-hop filtered search's allowed results) */
    size_t cap_c, cap_w, cap_s;
    vd_rhit *h;
    size_t cap_h;
    float *q;
    size_t cap_q;
    void *q8; /* an int8 index's query codes (a vd_q8) */
    size_t cap_q8;
    uint32_t *fr; /* filtered search: rejected nodes a dry traversal may bridge through */
    size_t cap_fr;
} vd_scratch;

/* This thread's scratch (created on first use, freed by a pthread key destructor when the
 * thread exits); NULL when out of memory. */
vd_scratch *vd_scratch_get(void);
vd_status vd_scratch_grow_tags(vd_scratch *sc, size_t n); /* n_tags >= n afterwards */
vd_status vd_cands_grow(vd_cand **a, size_t *cap, size_t want); /* *cap >= want afterwards */

/* Room for visited tags of slots [0, n). */
static inline vd_status vd_scratch_tags(vd_scratch *sc, size_t n)
{
    return sc->n_tags >= n ? VD_OK : vd_scratch_grow_tags(sc, n);
}
/* Room for `want` candidates in *a (capacity *cap). */
static inline vd_status vd_cands_reserve(vd_cand **a, size_t *cap, size_t want)
{
    return *cap >= want ? VD_OK : vd_cands_grow(a, cap, want);
}
/* Starts a traversal: every tag becomes unvisited. */
static inline void vd_scratch_visit_begin(vd_scratch *sc)
{
    if (++sc->gen == 0) {
        memset(sc->tags, 0, sc->n_tags * sizeof(uint16_t));
        sc->gen = 1;
    }
}
/* Starts a traversal whose tags hold n states: g .. g + n - 1 (returns g), all fresh. */
static inline uint16_t vd_scratch_visit_begin_n(vd_scratch *sc, unsigned n)
{
    if (sc->gen > UINT16_MAX - n) {
        memset(sc->tags, 0, sc->n_tags * sizeof(uint16_t));
        sc->gen = 0;
    }
    uint16_t g = (uint16_t)(sc->gen + 1);
    sc->gen = (uint16_t)(sc->gen + n);
    return g;
}

vd_status vd_index__grow_u32(uint32_t **a, size_t *cap, size_t want); /* VD_NOMEM or VD_OK */
/* Makes room for slots [0, want) and the per-slot side tables of each. */
vd_status vd_index__reserve_slots(vd_index *ix, uint64_t want, vd_err *err);
/* Makes room for n_blocks more upper-level blocks (free ones count). */
vd_status vd_index__reserve_upper(vd_index *ix, uint64_t n_blocks, vd_err *err);
/* Allocates `level` chained upper blocks (reserved beforehand) and returns the first. */
uint32_t vd_index__alloc_upper_chain(vd_index *ix, unsigned level);
void vd_index__free_upper_chain(vd_index *ix, uint32_t first); /* back to the free list */
/* The next slot to fill: the top of the free stack (vacuum and load push freed slots highest
 * first, so the lowest is reused first), else a new one. Capacity reserved by the caller. */
uint32_t vd_index__take_slot(vd_index *ix);
unsigned vd_index__random_level(vd_index *ix); /* from the seeded generator: ix->rng */
void vd_index__account(vd_index *ix); /* refreshes bytes_aux after side tables changed */
/* Releases the pages of dirty_list past its n_dirty entries (after a clear); writer only. */
void vd_index__trim_lists(vd_index *ix);

/* Sum of the squares of v's components, in double; with a NaN or infinite component, NAN and
 * its index in *bad (else *bad = dim). One SIMD pass unless the exact pass is needed
 * (params.c, beside vd_vector_check, whose rule it implements). */
double vd_index__norm2(const float *v, uint32_t dim, uint32_t *bad);
/* Checks a vector to insert or search for (VD_INVALID naming `what` and the component:
 * "query: component 3 is NaN", or a zero vector under cosine); *inv is the inverse of its
 * norm under cosine, 1 otherwise. */
vd_status vd_index__check_vector(const vd_index *ix, const float *v, const char *what,
                                 double *inv, vd_err *err);
/* Copies dim floats, scaled by inv under cosine (vd_index__check_vector's *inv). */
void vd_index__store_vector(const vd_index *ix, float *dst, const float *src, double inv);
/* Writes the rep of the normalized float vector v (as stored) into dst: a copy, or its int8
 * codes (per-vector scale: max |v_i| / 127, codes rounded to nearest). */
void vd_index__encode(const vd_index *ix, void *dst, const float *v);
/* int8: room for n more pending float vectors; the entry of slot (new, or NULL: none). */
vd_status vd_index__pend_reserve(vd_index *ix, size_t n);
float *vd_index__pend_add(vd_index *ix, uint32_t slot); /* room reserved */
const float *vd_index__pend_get(const vd_index *ix, uint32_t slot);
/* Drops the pending floats of slots no longer marked NEW (changes.c, after a clear). */
void vd_index__pend_prune(vd_index *ix);

/* Queues x for reconnection at the next publish (once until the publish takes it). Callable
 * from inserter threads: the mark is a CAS, the append is under dirty_lock. */
void vd_index__queue_orphan(vd_index *ix, uint32_t x);

/* Level-0 in-degrees (atomic: inserter threads update the lists of different nodes). A
 * node whose count drops to zero is queued for reconnection. */
static inline void vd_index__indeg_inc(vd_index *ix, uint32_t x)
{
    __atomic_fetch_add(&ix->indeg[x], 1u, __ATOMIC_RELAXED);
}
static inline void vd_index__indeg_dec(vd_index *ix, uint32_t x)
{
    if (__atomic_sub_fetch(&ix->indeg[x], 1u, __ATOMIC_RELAXED) == 0)
        vd_index__queue_orphan(ix, x);
}

/* Link-list rewrites between inserter threads: the node's stripe (only while ix->mt). At most
 * one stripe is held at a time, so stripes need no order among themselves. */
static inline void vd_index__stripe_lock(vd_index *ix, uint32_t slot)
{
    if (ix->mt) pthread_mutex_lock(&ix->stripes[slot & (VD_N_STRIPES - 1)]);
}
static inline void vd_index__stripe_unlock(vd_index *ix, uint32_t slot)
{
    if (ix->mt) pthread_mutex_unlock(&ix->stripes[slot & (VD_N_STRIPES - 1)]);
}

/* Grace periods (see vacuum.c): a search counts itself into readers[phase] from before it
 * reads the entry point until it has read its last node. One atomic add and one subtract. */
static inline unsigned vd_index__reader_enter(const vd_index *cix)
{
    vd_index *ix = (vd_index *)cix; /* the reader counters are the one thing readers write */
    for (;;) {
        unsigned p = __atomic_load_n(&ix->phase, __ATOMIC_SEQ_CST) & 1u;
        __atomic_fetch_add(&ix->readers[p], 1, __ATOMIC_SEQ_CST);
        if ((__atomic_load_n(&ix->phase, __ATOMIC_SEQ_CST) & 1u) == p) return p;
        __atomic_fetch_sub(&ix->readers[p], 1, __ATOMIC_SEQ_CST);
    }
}
static inline void vd_index__reader_exit(const vd_index *cix, unsigned p)
{
    vd_index *ix = (vd_index *)cix;
    __atomic_fetch_sub(&ix->readers[p], 1, __ATOMIC_RELEASE);
}

/* ---- idmap.c: id -> slot (writer only) --------------------------------------------------- */

int vd_idmap_get(const vd_idmap *m, uint64_t id, uint32_t *slot); /* 1 and *slot if mapped */
vd_status vd_idmap_reserve(vd_idmap *m, size_t n); /* room for n ids without a rehash */
void vd_idmap_put(vd_idmap *m, uint64_t id, uint32_t slot); /* insert or replace; reserved */
/* Inserts id -> slot unless id is mapped already: then returns 1 with its slot in *existing.
 * One probe (a load's check for repeated ids and its insert). Capacity reserved. */
int vd_idmap_add(vd_idmap *m, uint64_t id, uint32_t slot, uint32_t *existing);
void vd_idmap_del(vd_idmap *m, uint64_t id); /* no-op when absent */
void vd_idmap_free(vd_idmap *m);             /* leaves an empty map */

/* ---- changes.c: change tracking ---------------------------------------------------------- */

/* Records that `slot` changed. LINKS is callable from inserter threads; NEW and FREED only
 * from the writer. */
void vd_index__mark(vd_index *ix, uint32_t slot, vd_change_kind kind);

/* ---- search.c: layer search ---------------------------------------------------------------- */

/* MODE_READ returns visible nodes (born <= v < died); MODE_BUILD, used by the writer and
 * inserters, every node not removed in the writer's view. Both traverse every node. */
enum { VD_MODE_READ, VD_MODE_BUILD };

/* What a search did, for vd_search_explain (searches add to it; callers zero it). */
typedef struct vd_search_counts {
    uint64_t expanded;  /* link lists read */
    uint64_t distances;
    uint64_t allows;    /* filter calls */
    uint64_t reranked;  /* int8: float distances of re-ranking */
} vd_search_counts;

/* Greedy descent from `cur` through levels from .. to+1 (every node is traversable).
 * Distances and lists read are added to *cnt when it is not NULL. */
vd_cand vd_index__greedy(const vd_index *ix, const void *q, vd_cand cur, unsigned from,
                         unsigned to, vd_search_counts *cnt);
/* Beam search of one level from the n_ent entries; leaves up to ef accepted nodes as a
 * max-heap in sc->w (*n_w of them). `skip` is never visited (the node being connected;
 * VD_SLOT_NONE for none). Adds to *cnt when not NULL. VD_NOMEM when the scratch cannot
 * grow. */
vd_status vd_index__search_layer(const vd_index *ix, vd_scratch *sc, const void *q,
                                 const vd_cand *ent, size_t n_ent, unsigned level, uint32_t ef,
                                 int mode, uint64_t v, uint32_t skip, size_t *n_w,
                                 vd_search_counts *cnt);

/* A filtered traversal (search.c, driven by query.c). Tags hold six states from base g:
 * g allowed (in the beam), g+1 rejected (not allowed or not visible), g+2 rejected and its
 * links scanned for a second hop, g+3 rejected and pushed as a bridge; the one-hop
 * traversal's g+4 allowed and g+5 rejected, both measured (visited: the planner's sample
 * classifies slots it does not visit). The state lives in the scratch from the descent to
 * the exact scan that may follow, so that allow() runs at most once per slot. */
enum { VD_TAG_OK = 0, VD_TAG_REJ = 1, VD_TAG_HOP = 2, VD_TAG_BRIDGE = 3, VD_TAG_MET_OK = 4,
       VD_TAG_MET_REJ = 5, VD_TAG_STATES = 6 };
typedef struct vd_fsearch {
    const vd_slot_filter *f;
    uint64_t v;           /* the visible epoch of the search */
    uint16_t g;           /* tag base */
    uint32_t k;           /* bridging continues while fewer than k allowed points are found */
    uint32_t want;        /* hops stop once an expansion has this many new allowed nodes */
    double cap;           /* effort cap, in distances (see vd_fsearch_effort) */
    double w_hop, w_allow; /* the cost model's weights of a second-hop list and a filter call */
    int aborted;          /* a VD_FALLBACK_* reason to end in the exact scan, or 0 */
    uint32_t ef_wide;     /* the beam an anti-correlated probe widens to; 0: the scan answers */
    int widened;          /* the probe widened the beam to ef_wide */
    double sel;           /* the share of visible points allowed (the planner's estimate) */
    int probed;           /* the query's neighbourhood was sampled (search.c) */
    uint64_t n_ok;        /* one-hop: allowed visible nodes measured */
    size_t nc, nw;        /* entries in sc->c (candidates) and sc->w (results) */
    size_t n_fr;          /* entries in sc->fr */
    vd_search_counts cnt;
} vd_fsearch;

/* The effort of counts c under fs's weights: distances + w_hop x lists + w_allow x calls. */
static inline double vd_fsearch_effort_of(const vd_fsearch *fs, const vd_search_counts *c)
{
    return (double)c->distances + fs->w_hop * (double)c->expanded +
           fs->w_allow * (double)c->allows;
}

static inline double vd_fsearch_effort(const vd_fsearch *fs)
{
    return vd_fsearch_effort_of(fs, &fs->cnt);
}

/* Greedy descent through levels from .. 1 that also checks every node it measures against
 * the filter: allowed ones enter the beam (sc->c and sc->w, fs->nc / fs->nw) as seeds, so an
 * anti-correlated filter starts level 0 next to matches the upper levels passed. Returns the
 * nearest node of the descent, allowed or not. VD_NOMEM via *st. */
vd_cand vd_index__greedy_filtered(const vd_index *ix, vd_scratch *sc, const void *q,
                                  vd_cand cur, unsigned from, uint32_t ef, vd_fsearch *fs,
                                  vd_status *st);
/* The level-0 filtered beam search from what the descent left in the beam plus `bridge`
 * (a rejected start, VD_SLOT_NONE for none): only allowed visible nodes get a distance and
 * enter the beam; rejected neighbours of an expanded node are hops whose links are scanned
 * for allowed nodes (ACORN's two-hop expansion, truncated at 2M new nodes per expansion);
 * when the beam runs dry with fewer than fs->k results, rejected neighbours seen so far are
 * measured and traversed as bridges. Leaves the results as a max-heap in sc->w. Stops early
 * with fs->aborted once the effort passes fs->cap. */
vd_status vd_index__search_filtered(const vd_index *ix, vd_scratch *sc, const void *q,
                                    vd_cand bridge, uint32_t ef, vd_fsearch *fs);
/* The one-hop filtered traversal at level 0 from ent (the unfiltered descent's end): the
 * unfiltered beam (every neighbour measured, every node in the beam of ef, rejected ones
 * navigated), and every allowed visible node measured on the way offered to the results, a
 * max-heap of the r nearest in sc->s (fs->nw of them). Tags every node it measures OK
 * (allowed, visible) or REJ. Stops early with fs->aborted once the effort passes fs->cap. */
vd_status vd_index__search_onehop(const vd_index *ix, vd_scratch *sc, const void *q,
                                  vd_cand ent, uint32_t ef, uint32_t r, vd_fsearch *fs);
/* Asks the filter about the unseen slot x once: sets its tag to OK or REJ. Visibility is
 * the caller's to check where it reads the node anyway (an allowed node that turns out
 * invisible becomes REJ); the caller checked that the tag was unseen (tags cover x). */
static inline int vd_index__fs_bit(const vd_slot_filter *f, uint32_t x)
{
    return x < f->n_bits && (f->bits[x >> 6] >> (x & 63)) & 1;
}
static inline int vd_index__fs_allow(vd_scratch *sc, vd_fsearch *fs, uint32_t x)
{
    const vd_slot_filter *f = fs->f;
    int ok;
    if (f->bits) {
        ok = vd_index__fs_bit(f, x);
    } else {
        fs->cnt.allows++;
        ok = f->allow(f->ctx, x) != 0;
    }
    sc->tags[x] = (uint16_t)(fs->g + (ok ? VD_TAG_OK : VD_TAG_REJ));
    return ok;
}
static inline int vd_index__fs_visible(const vd_node *nd, const vd_fsearch *fs)
{
    return LD_ACQ(&nd->born) <= fs->v && fs->v < LD_ACQ(&nd->died);
}
/* x's tag relative to fs->g: VD_TAG_* or VD_TAG_STATES and above for unseen. */
static inline unsigned vd_index__fs_tag(const vd_scratch *sc, const vd_fsearch *fs, uint32_t x)
{
    return (uint16_t)(sc->tags[x] - fs->g);
}

/* ---- neighbors.c: neighbour selection and link writes ------------------------------------ */

void vd_index__cands_sort(vd_cand *a, size_t n); /* ascending distance, ties by slot */
/* The `first` smallest of a[0..n) into a[0..first), in the order above; the rest unordered. */
void vd_index__cands_sort_first(vd_cand *a, size_t n, size_t first);
/* The paper's heuristic: up to mmax of the n candidates `c` (sorted ascending) into out. */
size_t vd_index__select_neighbors(const vd_index *ix, const vd_cand *c, size_t n, size_t mmax,
                                  vd_cand *out);
/* Replaces a link list with c[0..n) (caller holds the node's stripe, or is the writer alone).
 * At level 0 the in-degrees of the links that come and go are adjusted. */
void vd_index__write_list(vd_index *ix, unsigned level, uint32_t *list, const vd_cand *c,
                          size_t n);
/* Adds the link n -> q at `level` (d = their distance), shrinking n's list with the
 * heuristic when full. Takes n's stripe. Returns 1 if q is in n's list afterwards. */
int vd_index__add_link(vd_index *ix, uint32_t n, unsigned level, uint32_t q, float d);
/* Appends the link n -> q at `level` if n's list has room and lacks it (writer only, or
 * the caller holds n's stripe). Returns 1 if it was appended. */
int vd_index__append_link(vd_index *ix, uint32_t n, unsigned level, uint32_t q);
/* Repairs n's list at `level` after some of its links died: its live links stay, and each
 * dead one is replaced by the nearest of the `extra` candidates that the heuristic would keep
 * next to them (the nearest candidate when none would), so n keeps its degree and its links'
 * directions; each replacement links back to n when its own list has room, as an insert's
 * neighbours do. Writer thread only (the writer's scratch tags and ix->rbuf). */
void vd_index__patch_list(vd_index *ix, vd_scratch *sc, uint32_t n, unsigned level,
                          const uint32_t *extra, size_t n_extra);

/* ---- vacuum.c: removal, publish, repairs, vacuum ----------------------------------------- */

/* Marks a node removed (writer view) with the current write epoch and queues its repair.
 * Room in `pending` is reserved by the caller. */
void vd_index__kill_node(vd_index *ix, uint32_t slot);
void vd_index__publish(vd_index *ix); /* publish + repairs + vacuum, whatever the mode */

/* ---- reach.c: in-degrees, orphans, reachability ------------------------------------------ */

void vd_index__recount_indeg(vd_index *ix); /* after a load; queues nodes without in-links */
/* Reconnects the queued nodes whose level-0 in-degree dropped to zero. Writer only. */
void vd_index__reconnect_orphans(vd_index *ix, vd_scratch *sc);
/* A reachability pass: reconnects live nodes not reachable from the entry point; returns how
 * many are left unreachable (0 also when out of memory). Writer only; sc's tags must cover
 * n_slots. vd_index__restore_reachability takes this thread's scratch itself (for a load). */
size_t vd_index__fix_reachability(vd_index *ix, vd_scratch *sc);
size_t vd_index__restore_reachability(vd_index *ix);
/* Marks seen[] for every node reachable at level 0 from `from`; returns how many were newly
 * marked, SIZE_MAX when out of memory. */
size_t vd_index__reach_mark(const vd_index *ix, uint32_t from, uint8_t *seen);

/* ---- validate.c -------------------------------------------------------------------------- */

/* What vd_index__validate checks beyond the structure (see validate.c). */
enum { VD_VALIDATE_MAP = 1, VD_VALIDATE_INDEG = 2, VD_VALIDATE_REACH = 4 };
vd_status vd_index__validate(const vd_index *ix, unsigned what, vd_err *err);


#endif
