/* index/hnsw.c: the HNSW graph (Malkov & Yashunin): insert, search, remove, repair, vacuum.
 *
 * Layout. Every point occupies a dense uint32 "slot". Slot s owns one level-0 block of fixed
 * stride: the link count and 2*M uint32 links, a 32-byte header (born/died epochs, id, first
 * upper block, level, flags) placed right before the vector so that a candidate's visibility
 * check hits the cache line its distance loads anyway, then the vector; padded to 64 bytes.
 * Blocks live in a segmented arena (index_int.h): segment k holds B << k blocks and is
 * mmap'ed once, so growth never moves a node and a reader holding a slot number can always
 * find it without a lock. The ~1/M nodes with level >= 1 chain fixed-size upper blocks
 * ([count][M links][next]) from a second arena with a free list; upper levels only see
 * greedy descent, so the chain walk is off the hot path. Links are slot numbers, never
 * pointers: storage writes them as-is and a load needs no fix-up pass.
 *
 * Concurrency. Searches take no lock. Writers publish link entries and counts with release
 * stores and readers use acquire loads (plain movs on x86, TSan-clean). A reader may see a
 * mix of the old and new neighbours of a node mid-rewrite; that is harmless because every
 * slot it can see is a fully initialized node: a node's vector and header are written before
 * any link to it is stored. Multi-threaded add_batch guards link-list rewrites between
 * inserter threads with a table of 4096 striped mutexes (one held at a time, so no lock
 * order), and the entry point with ep_lock (taken before a stripe, never after). The public
 * writer API is for one thread at a time.
 *
 * Visibility (MVCC-lite). Mutations are stamped with write_epoch = visible_epoch + 1; a node
 * is returned iff born <= visible_epoch < died but can always be traversed. Publishing
 * stores visible_epoch = write_epoch (release), so a whole write batch appears at once. An
 * upsert never rewrites a vector in place (a reader may be reading it): it kills the old slot
 * and fills a new one. Epochs are 64-bit, not 32: a daemon publishing per write would wrap
 * 32 bits in weeks.
 *
 * Deletion. remove() marks the node died and queues it; the next publish repairs, at once,
 * every out-neighbour that links to it (its list is rebuilt by the heuristic from its other
 * links plus the removed node's links). Repairs wait for the publish so that a removed or
 * replaced point stays exactly as findable as before until the change becomes visible. The
 * removed node stays a traversable tombstone. When tombstones exceed 10% of the nodes (and
 * 64), vacuum rebuilds every list that still points at a tombstone, moves the entry point
 * off tombstones, waits for a grace period (readers count themselves into one of two phase
 * counters; vacuum flips the phase and waits for the old one to drain) and only then frees
 * the slots for reuse. Freed slots are reported as VD_CHANGE_FREED.
 *
 * Reachability. Heuristic pruning can leave a node with no in-links. The writer keeps level-0
 * in-degrees; a live node whose in-degree drops to zero is queued and reconnected at publish.
 * Groups that only link to each other are caught by a breadth-first pass from the entry
 * point (amortized over n/8 mutations, after vacuum, after removals in small indexes).
 *
 * Rejected: per-node malloc (pointer chasing, no stable persisted layout); realloc of one big
 * array (moves nodes under readers); seqlocks on link lists (readers would retry under write
 * load, and a torn list is already harmless here); hnswlib-style unlocked plain reads (data
 * races, not TSan-clean); lazy repair of deletions (tombstones pile up, recall decays). */
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <inttypes.h>

#include "index/index_int.h"

#define LD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ST_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

#define VACUUM_MIN 64u
#define SMALL_INDEX 50000u
/* Search prefetches whole vectors this many neighbours ahead of the one being computed (one
 * ahead is too late to hide a miss at 100 dims; three ahead starts evicting). */
#define PF_AHEAD 2

enum { MODE_READ, MODE_BUILD };

/* Distance under metric `metric`; when it is l2, the computation may stop once it is known to
 * exceed `bound`, returning some value > bound (vd_kern_l2sq_below). So `result < bound` is
 * always the exact test, and a result <= bound is the exact distance. Dot products are not
 * monotonic along the vector and are always computed whole. */
static inline float vdist_below_m(int metric, uint32_t dim, const float *a, const float *b,
                                  float bound)
{
    switch (metric) {
    case VD_METRIC_L2: return vd_kern_l2sq_below(a, b, dim, bound);
    case VD_METRIC_COSINE: return 1.0f - vd_kern_dot(a, b, dim);
    default: return -vd_kern_dot(a, b, dim);
    }
}

static inline float vdist_below(const vd_index *ix, const float *a, const float *b, float bound)
{
    return vdist_below_m(ix->metric, ix->dim, a, b, bound);
}

static inline float vdist(const vd_index *ix, const float *a, const float *b)
{
    return vdist_below_m(ix->metric, ix->dim, a, b, INFINITY);
}

/* ---- arenas ------------------------------------------------------------------------------ */

static vd_status arena_grow(vd_arena *a, uint64_t want, const char *what, vd_err *err)
{
    while (a->cap < want) {
        if (a->n_segs == VD_ARENA_SEGS)
            return vd_err_set(err, VD_FULL, "index %s arena is full", what);
        unsigned s = a->n_segs;
        uint64_t items = (uint64_t)1 << (a->shift + s);
        size_t bytes = (size_t)(items * a->stride);
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return vd_err_set(err, VD_NOMEM, "cannot map %zu bytes for index %s", bytes, what);
#ifdef MADV_HUGEPAGE
        if (bytes >= ((size_t)4 << 20)) madvise(p, bytes, MADV_HUGEPAGE);
#endif
        a->seg_bytes[s] = bytes;
        ST_REL(&a->seg[s], (uint8_t *)p);
        a->n_segs++;
        a->cap += items;
        ST_RLX(&a->mapped, LD_RLX(&a->mapped) + bytes);
    }
    return VD_OK;
}

static void arena_free(vd_arena *a)
{
    for (unsigned s = 0; s < a->n_segs; s++)
        if (a->seg[s]) munmap(a->seg[s], a->seg_bytes[s]);
}

static size_t upper_stride(const vd_index *ix) { return ((size_t)ix->m + 2) * sizeof(uint32_t); }
#define UPPER_NEXT(ix, blk) ((blk)[1 + (ix)->m])

uint32_t *vd_index__list(const vd_index *ix, uint32_t slot, unsigned level)
{
    vd_node *nd = vd_index__node(ix, slot);
    if (level == 0) return vd_index__list0(ix, slot);
    uint32_t b = nd->upper;
    uint32_t *blk = (uint32_t *)vd_arena_at(&ix->upper, b);
    for (unsigned l = 1; l < level; l++)
        blk = (uint32_t *)vd_arena_at(&ix->upper, UPPER_NEXT(ix, blk));
    return blk;
}

static vd_status grow_u32(uint32_t **a, size_t *cap, size_t want)
{
    if (*cap >= want) return VD_OK;
    size_t n = *cap ? *cap : 64;
    while (n < want) n *= 2;
    uint32_t *p = vd_realloc(*a, n * sizeof(uint32_t));
    if (!p) return VD_NOMEM;
    *a = p;
    *cap = n;
    return VD_OK;
}

/* Makes room for slots [0, want) and the per-slot change tracking of each. */
vd_status vd_index__reserve_slots(vd_index *ix, uint64_t want, vd_err *err)
{
    if (want >= VD_SLOT_NONE - 1)
        return vd_err_set(err, VD_FULL, "index holds at most %u points", VD_SLOT_NONE - 2);
    vd_status st = arena_grow(&ix->nodes, want, "node", err);
    if (st) return st;
    if (ix->cap_dirty < want) {
        size_t n = ix->cap_dirty ? ix->cap_dirty : 256, old = ix->cap_dirty;
        while (n < want) n *= 2;
        uint8_t *d = vd_realloc(ix->dirty, n);
        if (d) ix->dirty = d;
        uint8_t *om = d ? vd_realloc(ix->omark, n) : NULL;
        if (om) ix->omark = om;
        uint32_t *deg = om ? vd_realloc(ix->indeg, n * sizeof(uint32_t)) : NULL;
        if (deg) ix->indeg = deg;
        uint32_t *l = deg ? vd_realloc(ix->dirty_list, 2 * n * sizeof(uint32_t)) : NULL;
        if (l) ix->dirty_list = l;
        uint32_t *o = l ? vd_realloc(ix->orphans, n * sizeof(uint32_t)) : NULL;
        if (o) ix->orphans = o;
        /* Whatever grew stays grown (and zeroed); cap_dirty moves only when all did. */
        if (d) memset(d + old, 0, n - old);
        if (om) memset(om + old, 0, n - old);
        if (deg) memset(deg + old, 0, (n - old) * sizeof(uint32_t));
        if (!o) return vd_err_set(err, VD_NOMEM, "out of memory for per-slot tables");
        ix->cap_dirty = n;
    }
    return VD_OK;
}

vd_status vd_index__reserve_upper(vd_index *ix, uint64_t n_blocks, vd_err *err)
{
    if (n_blocks <= ix->n_upper_free) return VD_OK;
    uint64_t want = (uint64_t)ix->n_upper + (n_blocks - ix->n_upper_free);
    if (want >= VD_SLOT_NONE) return vd_err_set(err, VD_FULL, "too many upper-level blocks");
    return arena_grow(&ix->upper, want, "upper-level", err);
}

/* Allocates `level` chained upper blocks (reserved beforehand) and returns the first. */
uint32_t vd_index__alloc_upper_chain(vd_index *ix, unsigned level)
{
    uint32_t first = VD_SLOT_NONE, *prev = NULL;
    for (unsigned l = 1; l <= level; l++) {
        uint32_t b;
        if (ix->upper_free != VD_SLOT_NONE) {
            b = ix->upper_free;
            ix->upper_free = UPPER_NEXT(ix, (uint32_t *)vd_arena_at(&ix->upper, b));
            ix->n_upper_free--;
        } else {
            b = ix->n_upper;
            ST_RLX(&ix->n_upper, b + 1);
        }
        uint32_t *blk = (uint32_t *)vd_arena_at(&ix->upper, b);
        ST_RLX(&blk[0], 0u);
        UPPER_NEXT(ix, blk) = VD_SLOT_NONE;
        if (prev) UPPER_NEXT(ix, prev) = b;
        else first = b;
        prev = blk;
    }
    return first;
}

static void free_upper_chain(vd_index *ix, uint32_t b)
{
    while (b != VD_SLOT_NONE) {
        uint32_t *blk = (uint32_t *)vd_arena_at(&ix->upper, b);
        uint32_t next = UPPER_NEXT(ix, blk);
        ST_RLX(&blk[0], 0u);
        UPPER_NEXT(ix, blk) = ix->upper_free;
        ix->upper_free = b;
        ix->n_upper_free++;
        b = next;
    }
}

/* ---- change tracking --------------------------------------------------------------------- */

/* Records that `slot` changed. Callable from inserter threads (the byte is claimed with a
 * CAS, the list append is under dirty_lock); NEW and FREED only from the writer. A slot
 * already reported by vd_index_changes (VD_DIRTY_REPORTED) is listed again, so that
 * vd_index_changes_clear cannot drop a change made after the report. */
void vd_index__mark(vd_index *ix, uint32_t slot, vd_change_kind kind)
{
    uint8_t *d = &ix->dirty[slot];
    uint8_t old = LD_RLX(d);
    if (kind == VD_CHANGE_LINKS) {
        for (;;) {
            /* NEW stays NEW and LINKS stays LINKS until reported; FREED slots have no links */
            if (old != 0 && !(old & VD_DIRTY_REPORTED)) return;
            /* A reported NEW stays NEW: if the caller never cleared (its write failed), the
             * vector record still has to be written. */
            uint8_t want = (old & 3) == VD_CHANGE_NEW ? VD_CHANGE_NEW : VD_CHANGE_LINKS;
            if (__atomic_compare_exchange_n(d, &old, want, 0, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED))
                break;
        }
    } else {
        ST_RLX(d, (uint8_t)kind);
        if (old != 0 && !(old & VD_DIRTY_REPORTED)) return;
    }
    if (ix->mt) pthread_mutex_lock(&ix->dirty_lock);
    ix->dirty_list[ix->n_dirty++] = slot;
    if (ix->mt) pthread_mutex_unlock(&ix->dirty_lock);
}

/* ---- level-0 in-degrees ------------------------------------------------------------------- */

static void queue_orphan(vd_index *ix, uint32_t x)
{
    uint8_t expect = 0;
    if (!__atomic_compare_exchange_n(&ix->omark[x], &expect, (uint8_t)1, 0, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
        return;
    if (ix->mt) pthread_mutex_lock(&ix->dirty_lock);
    ix->orphans[ix->n_orphans++] = x;
    if (ix->mt) pthread_mutex_unlock(&ix->dirty_lock);
}

static inline void indeg_inc(vd_index *ix, uint32_t x)
{
    __atomic_fetch_add(&ix->indeg[x], 1u, __ATOMIC_RELAXED);
}

static inline void indeg_dec(vd_index *ix, uint32_t x)
{
    if (__atomic_sub_fetch(&ix->indeg[x], 1u, __ATOMIC_RELAXED) == 0) queue_orphan(ix, x);
}

void vd_index__recount_indeg(vd_index *ix)
{
    if (ix->n_slots == 0) return; /* indeg may still be NULL */
    memset(ix->indeg, 0, ix->n_slots * sizeof(uint32_t));
    for (uint32_t s = 0; s < ix->n_slots; s++) {
        const vd_node *nd = vd_index__node(ix, s);
        if (!(nd->flags & NODE_USED)) continue;
        const uint32_t *l0 = vd_index__list0(ix, s);
        for (uint32_t i = 0; i < l0[0]; i++) ix->indeg[l0[1 + i]]++;
    }
    for (uint32_t s = 0; s < ix->n_slots; s++)
        if (ix->indeg[s] == 0 && (vd_index__node(ix, s)->flags & NODE_USED)) queue_orphan(ix, s);
}

/* ---- id map ------------------------------------------------------------------------------ */

static inline size_t id_hash(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x;
}

int vd_idmap_get(const vd_idmap *m, uint64_t id, uint32_t *slot)
{
    if (!m->cap) return 0;
    size_t mask = m->cap - 1;
    for (size_t i = id_hash(id) & mask;; i = (i + 1) & mask) {
        if (!m->vals[i]) return 0;
        if (m->keys[i] == id) {
            if (slot) *slot = m->vals[i] - 1;
            return 1;
        }
    }
}

static void idmap_insert_raw(uint64_t *keys, uint32_t *vals, size_t cap, uint64_t id, uint32_t v)
{
    size_t mask = cap - 1;
    size_t i = id_hash(id) & mask;
    while (vals[i] && keys[i] != id) i = (i + 1) & mask;
    keys[i] = id;
    vals[i] = v;
}

vd_status vd_idmap_reserve(vd_idmap *m, size_t n)
{
    if (n * 10 < m->cap * 7) return VD_OK;
    size_t cap = m->cap ? m->cap : 16;
    while (n * 10 >= cap * 7) cap *= 2;
    uint64_t *keys = vd_malloc(cap * sizeof(uint64_t));
    uint32_t *vals = vd_calloc(cap, sizeof(uint32_t));
    if (!keys || !vals) {
        vd_free(keys);
        vd_free(vals);
        return VD_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->vals[i]) idmap_insert_raw(keys, vals, cap, m->keys[i], m->vals[i]);
    vd_free(m->keys);
    vd_free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return VD_OK;
}

int vd_idmap_add(vd_idmap *m, uint64_t id, uint32_t slot, uint32_t *existing)
{
    size_t mask = m->cap - 1, i = id_hash(id) & mask;
    for (; m->vals[i]; i = (i + 1) & mask)
        if (m->keys[i] == id) {
            *existing = m->vals[i] - 1;
            return 1;
        }
    m->keys[i] = id;
    m->vals[i] = slot + 1;
    m->n++;
    return 0;
}

void vd_idmap_put(vd_idmap *m, uint64_t id, uint32_t slot)
{
    if (!vd_idmap_get(m, id, NULL)) m->n++;
    idmap_insert_raw(m->keys, m->vals, m->cap, id, slot + 1);
}

void vd_idmap_del(vd_idmap *m, uint64_t id)
{
    if (!m->cap) return;
    size_t mask = m->cap - 1, i = id_hash(id) & mask;
    while (m->vals[i] && m->keys[i] != id) i = (i + 1) & mask;
    if (!m->vals[i]) return;
    m->vals[i] = 0;
    m->n--;
    /* Backward-shift deletion: no tombstones, probe chains stay short. */
    for (size_t j = (i + 1) & mask; m->vals[j]; j = (j + 1) & mask) {
        size_t home = id_hash(m->keys[j]) & mask;
        /* Move j into the hole i unless its home lies cyclically in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->vals[j] = 0;
            i = j;
        }
    }
}

static void idmap_free(vd_idmap *m)
{
    vd_free(m->keys);
    vd_free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- per-thread scratch ------------------------------------------------------------------ */

/* Visited tags with a generation counter (a new search costs nothing to reset), the two
 * candidate heaps, a sorted copy for construction and the normalized query. One per thread,
 * shared by every index the thread touches, freed by a pthread key destructor. */
typedef struct scratch {
    uint16_t *tags; /* 16 bits, not 32: half the cache footprint; a wrap costs one memset */
    size_t n_tags;
    uint16_t gen;
    vd_cand *c, *w, *s;
    size_t cap_c, cap_w, cap_s;
    vd_hit *h;
    size_t cap_h;
    float *q;
    size_t cap_q;
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local scratch *tls_scratch;

static void scratch_destroy(void *p)
{
    scratch *sc = p;
    if (!sc) return;
    vd_free(sc->tags);
    vd_free(sc->c);
    vd_free(sc->w);
    vd_free(sc->s);
    vd_free(sc->h);
    vd_free(sc->q);
    vd_free(sc);
}

static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_destroy); }

static scratch *scratch_get(void)
{
    if (tls_scratch) return tls_scratch;
    pthread_once(&scratch_once, scratch_key_init);
    scratch *sc = vd_calloc(1, sizeof *sc);
    if (!sc) return NULL;
    tls_scratch = sc;
    pthread_setspecific(scratch_key, sc);
    return sc;
}

static vd_status tags_reserve(scratch *sc, size_t n)
{
    if (sc->n_tags >= n) return VD_OK;
    size_t cap = sc->n_tags ? sc->n_tags : 1024;
    while (cap < n) cap *= 2;
    uint16_t *t = vd_realloc(sc->tags, cap * sizeof(uint16_t));
    if (!t) return VD_NOMEM;
    memset(t + sc->n_tags, 0, (cap - sc->n_tags) * sizeof(uint16_t));
    sc->tags = t;
    sc->n_tags = cap;
    return VD_OK;
}

static inline void visit_begin(scratch *sc)
{
    if (++sc->gen == 0) {
        memset(sc->tags, 0, sc->n_tags * sizeof(uint16_t));
        sc->gen = 1;
    }
}

static vd_status cands_reserve(vd_cand **a, size_t *cap, size_t want)
{
    if (*cap >= want) return VD_OK;
    size_t n = *cap ? *cap : 256;
    while (n < want) n *= 2;
    vd_cand *p = vd_realloc(*a, n * sizeof(vd_cand));
    if (!p) return VD_NOMEM;
    *a = p;
    *cap = n;
    return VD_OK;
}

/* ---- heaps ------------------------------------------------------------------------------- */

static inline void minheap_push(vd_cand *h, size_t *n, vd_cand x)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p].d <= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline void minheap_pop(vd_cand *h, size_t *n)
{
    vd_cand x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1].d < h[c].d) c++;
        if (x.d <= h[c].d) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static inline void maxheap_push(vd_cand *h, size_t *n, vd_cand x)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p].d >= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline void maxheap_pop(vd_cand *h, size_t *n)
{
    vd_cand x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1].d > h[c].d) c++;
        if (x.d >= h[c].d) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static int cand_cmp(const void *a, const void *b)
{
    const vd_cand *x = a, *y = b;
    if (x->d < y->d) return -1;
    if (x->d > y->d) return 1;
    return (x->slot > y->slot) - (x->slot < y->slot);
}

static void cands_sort(vd_cand *a, size_t n)
{
    if (n > 32) {
        qsort(a, n, sizeof *a, cand_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        vd_cand x = a[i];
        size_t j = i;
        while (j && cand_cmp(&a[j - 1], &x) > 0) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* Empties the max-heap h (n entries) into out[0..n) ascending: n pops, no comparator calls.
 * Equal distances come out in an order fixed by the heap's history (deterministic). */
static void maxheap_drain(vd_cand *h, size_t n, vd_cand *out)
{
    while (n) {
        out[n - 1] = h[0];
        maxheap_pop(h, &n);
    }
}

/* ---- search primitives ------------------------------------------------------------------- */

static inline int accept(const vd_node *nd, int mode, uint64_t v)
{
    if (mode == MODE_BUILD) return LD_RLX(&nd->died) == VD_EPOCH_NEVER;
    return LD_ACQ(&nd->born) <= v && v < LD_ACQ(&nd->died);
}

/* Greedy descent from `cur` through levels from .. to+1 (every node is traversable). */
static vd_cand greedy(const vd_index *ix, const float *q, vd_cand cur, unsigned from, unsigned to)
{
    for (unsigned l = from; l > to; l--) {
        int changed = 1;
        while (changed) {
            changed = 0;
            const uint32_t *list = vd_index__list(ix, cur.slot, l);
            uint32_t n = LD_ACQ(&list[0]);
            if (n > ix->m) n = ix->m;
            for (uint32_t i = 0; i < n; i++) {
                uint32_t x = LD_ACQ(&list[1 + i]);
                float d = vdist_below(ix, q, vd_index__vec(ix, x), cur.d);
                if (d < cur.d) {
                    cur.d = d;
                    cur.slot = x;
                    changed = 1;
                }
            }
        }
    }
    return cur;
}

/* Beam search of one level from the entries; leaves up to ef accepted nodes as a max-heap in
 * sc->w (*n_w of them). `skip` is never visited (the node being connected). Always inlined
 * into one copy per metric so the kernel is inlined without a switch per distance. */
static inline __attribute__((always_inline)) vd_status
search_layer_m(const vd_index *ix, scratch *sc, const float *q, const vd_cand *ent, size_t n_ent,
               unsigned level, uint32_t ef, int mode, uint64_t v, uint32_t skip, size_t *n_w,
               int metric)
{
    size_t nc = 0, nw = 0;
    const uint32_t dim = ix->dim, maxl = vd_index__max_links(ix, level);
    const size_t hdr_off = ix->hdr_off, vec_off = ix->vec_off;
    const size_t vec_lines = (dim * sizeof(float) + 63) / 64;
    if (cands_reserve(&sc->w, &sc->cap_w, (size_t)ef + 1) ||
        cands_reserve(&sc->c, &sc->cap_c, (size_t)ef + n_ent + maxl + 1))
        return VD_NOMEM;
    visit_begin(sc);
    uint16_t *tags = sc->tags, gen = sc->gen;
    if (skip != VD_SLOT_NONE && skip < sc->n_tags) tags[skip] = gen;
    for (size_t i = 0; i < n_ent; i++) {
        uint32_t s = ent[i].slot;
        if (s >= sc->n_tags) {
            if (tags_reserve(sc, (size_t)s + 1)) return VD_NOMEM;
            tags = sc->tags;
        }
        if (tags[s] == gen) continue;
        tags[s] = gen;
        minheap_push(sc->c, &nc, ent[i]);
        if (accept(vd_index__node(ix, s), mode, v)) {
            maxheap_push(sc->w, &nw, ent[i]);
            if (nw > ef) maxheap_pop(sc->w, &nw);
        }
    }
    float bound = nw >= ef ? sc->w[0].d : INFINITY;
    uint32_t nb[2 * VD_M_MAX];
    const uint8_t *bp[2 * VD_M_MAX];

    while (nc) {
        vd_cand c = sc->c[0];
        if (c.d > bound) break;
        minheap_pop(sc->c, &nc);
        if (nc && level == 0) __builtin_prefetch(vd_index__list0(ix, sc->c[0].slot));
        const uint32_t *list = level ? vd_index__list(ix, c.slot, level)
                                     : vd_index__list0(ix, c.slot);
        uint32_t n = LD_ACQ(&list[0]), k = 0;
        if (n > maxl) n = maxl;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t x = LD_ACQ(&list[1 + i]);
            if (x >= sc->n_tags) {
                if (tags_reserve(sc, (size_t)x + 1)) return VD_NOMEM;
                tags = sc->tags;
            }
            if (tags[x] == gen) continue;
            tags[x] = gen;
            nb[k] = x;
            bp[k] = vd_arena_at(&ix->nodes, x);
            __builtin_prefetch(bp[k] + hdr_off);
            k++;
        }
        if (nc + k > sc->cap_c) {
            if (cands_reserve(&sc->c, &sc->cap_c, nc + k)) return VD_NOMEM;
        }
        for (uint32_t i = 0; i < k && i < PF_AHEAD; i++)
            for (size_t l = 1; l <= vec_lines && l < 12; l++)
                __builtin_prefetch(bp[i] + vec_off + 64 * l);
        for (uint32_t i = 0; i < k; i++) {
            if (i + PF_AHEAD < k) /* the rest of a later vector while this one is computed */
                for (size_t l = 1; l <= vec_lines && l < 12; l++)
                    __builtin_prefetch(bp[i + PF_AHEAD] + vec_off + 64 * l);
            float d = vdist_below_m(metric, dim, q, (const float *)(bp[i] + vec_off), bound);
            if (nw < ef || d < bound) {
                vd_cand e = {d, nb[i]};
                minheap_push(sc->c, &nc, e);
                if (accept((const vd_node *)(bp[i] + hdr_off), mode, v)) {
                    maxheap_push(sc->w, &nw, e);
                    if (nw > ef) maxheap_pop(sc->w, &nw);
                    if (nw >= ef) bound = sc->w[0].d;
                }
            }
        }
    }
    *n_w = nw;
    return VD_OK;
}

static vd_status search_layer(const vd_index *ix, scratch *sc, const float *q, const vd_cand *ent,
                              size_t n_ent, unsigned level, uint32_t ef, int mode, uint64_t v,
                              uint32_t skip, size_t *n_w)
{
    switch (ix->metric) {
    case VD_METRIC_L2:
        return search_layer_m(ix, sc, q, ent, n_ent, level, ef, mode, v, skip, n_w, VD_METRIC_L2);
    case VD_METRIC_COSINE:
        return search_layer_m(ix, sc, q, ent, n_ent, level, ef, mode, v, skip, n_w,
                              VD_METRIC_COSINE);
    default:
        return search_layer_m(ix, sc, q, ent, n_ent, level, ef, mode, v, skip, n_w, VD_METRIC_IP);
    }
}

/* The heuristic of the HNSW paper: walk candidates nearest first and keep one only if it is
 * closer to the base than to every neighbour kept so far, which spreads links over
 * directions. `c` sorted ascending; when it already fits, it is kept whole. */
static size_t select_neighbors(const vd_index *ix, const vd_cand *c, size_t n, size_t mmax,
                               vd_cand *out)
{
    if (n <= mmax) {
        memcpy(out, c, n * sizeof *c);
        return n;
    }
    size_t k = 0;
    for (size_t i = 0; i < n && k < mmax; i++) {
        const float *v = vd_index__vec(ix, c[i].slot);
        int good = 1;
        for (size_t j = 0; j < k; j++)
            if (vdist_below(ix, v, vd_index__vec(ix, out[j].slot), c[i].d) < c[i].d) {
                good = 0;
                break;
            }
        if (good) out[k++] = c[i];
    }
    return k;
}

/* Replaces a link list (caller holds the node's stripe). At level 0 the in-degrees of the
 * links that come and go are adjusted. */
static void write_list(vd_index *ix, unsigned level, uint32_t *list, const vd_cand *c, size_t n)
{
    if (level == 0) {
        uint32_t old = LD_RLX(&list[0]);
        for (size_t i = 0; i < n; i++) {
            uint32_t y = c[i].slot, j = 0;
            while (j < old && LD_RLX(&list[1 + j]) != y) j++;
            if (j == old) indeg_inc(ix, y);
        }
        for (uint32_t j = 0; j < old; j++) {
            uint32_t x = LD_RLX(&list[1 + j]);
            size_t i = 0;
            while (i < n && c[i].slot != x) i++;
            if (i == n) indeg_dec(ix, x);
        }
    }
    for (size_t i = 0; i < n; i++) ST_REL(&list[1 + i], c[i].slot);
    ST_REL(&list[0], (uint32_t)n);
}

static inline void stripe_lock(vd_index *ix, uint32_t slot)
{
    if (ix->mt) pthread_mutex_lock(&ix->stripes[slot & (VD_N_STRIPES - 1)]);
}
static inline void stripe_unlock(vd_index *ix, uint32_t slot)
{
    if (ix->mt) pthread_mutex_unlock(&ix->stripes[slot & (VD_N_STRIPES - 1)]);
}

/* Adds the link n -> q at `level` (d = their distance), shrinking n's list with the
 * heuristic when full. Returns 1 if q is in n's list afterwards. */
static int add_link(vd_index *ix, uint32_t n, unsigned level, uint32_t q, float d)
{
    uint32_t maxl = vd_index__max_links(ix, level);
    vd_cand buf[2 * VD_M_MAX + 1], sel[2 * VD_M_MAX + 1];
    int kept = 0;
    stripe_lock(ix, n);
    uint32_t *list = vd_index__list(ix, n, level);
    uint32_t cnt = LD_RLX(&list[0]);
    for (uint32_t i = 0; i < cnt; i++)
        if (LD_RLX(&list[1 + i]) == q) {
            stripe_unlock(ix, n);
            return 1;
        }
    if (cnt < maxl) {
        ST_REL(&list[1 + cnt], q);
        ST_REL(&list[0], cnt + 1);
        if (level == 0) indeg_inc(ix, q);
        kept = 1;
    } else {
        const float *v = vd_index__vec(ix, n);
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t x = LD_RLX(&list[1 + i]);
            buf[i].slot = x;
            buf[i].d = vdist(ix, v, vd_index__vec(ix, x));
        }
        buf[cnt].slot = q;
        buf[cnt].d = d;
        cands_sort(buf, cnt + 1);
        size_t k = select_neighbors(ix, buf, cnt + 1, maxl, sel);
        for (size_t i = 0; i < k; i++) kept |= sel[i].slot == q;
        write_list(ix, level, list, sel, k);
    }
    vd_index__mark(ix, n, VD_CHANGE_LINKS);
    stripe_unlock(ix, n);
    return kept;
}

/* Sets q's own list at `level` to `sel`, merging links other inserter threads may already
 * have added to it. */
static void set_own_list(vd_index *ix, uint32_t q, unsigned level, const vd_cand *sel, size_t k)
{
    uint32_t maxl = vd_index__max_links(ix, level);
    vd_cand buf[4 * VD_M_MAX + 1], out[2 * VD_M_MAX + 1];
    stripe_lock(ix, q);
    uint32_t *list = vd_index__list(ix, q, level);
    uint32_t cnt = LD_RLX(&list[0]);
    if (cnt == 0) {
        write_list(ix, level, list, sel, k);
    } else {
        const float *v = vd_index__vec(ix, q);
        size_t n = 0;
        for (size_t i = 0; i < k; i++) buf[n++] = sel[i];
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t x = LD_RLX(&list[1 + i]);
            int dup = 0;
            for (size_t j = 0; j < k; j++) dup |= sel[j].slot == x;
            if (dup) continue;
            buf[n].slot = x;
            buf[n++].d = vdist(ix, v, vd_index__vec(ix, x));
        }
        cands_sort(buf, n);
        write_list(ix, level, list, out, select_neighbors(ix, buf, n, maxl, out));
    }
    stripe_unlock(ix, q);
}

/* Links the initialized node `slot` into the graph. On failure (out of memory for search
 * scratch) the node may be partially linked; the caller turns it into a tombstone. */
static vd_status insert_node(vd_index *ix, scratch *sc, uint32_t slot)
{
    vd_node *nd = vd_index__node(ix, slot);
    unsigned level = nd->level;
    const float *q = vd_index__vec(ix, slot);
    vd_cand sel[2 * VD_M_MAX];
    vd_status st = VD_OK;

    if (ix->mt) pthread_mutex_lock(&ix->ep_lock);
    uint32_t ep = LD_RLX(&ix->entry);
    unsigned maxl = LD_RLX(&ix->max_level);
    if (ep == VD_SLOT_NONE) {
        ST_REL(&ix->max_level, level);
        ST_REL(&ix->entry, slot);
        if (ix->mt) pthread_mutex_unlock(&ix->ep_lock);
        return VD_OK;
    }
    /* A node that raises the top level holds ep_lock until it is linked (rare: ~1/M^L). */
    int hold = level > maxl;
    if (ix->mt && !hold) pthread_mutex_unlock(&ix->ep_lock);

    vd_cand cur = {vdist(ix, q, vd_index__vec(ix, ep)), ep};
    cur = greedy(ix, q, cur, maxl, level < maxl ? level : maxl);
    const vd_cand *ent = &cur;
    size_t n_ent = 1;
    for (int l = (int)(level < maxl ? level : maxl); l >= 0; l--) {
        size_t nw = 0;
        st = search_layer(ix, sc, q, ent, n_ent, (unsigned)l, ix->efc, MODE_BUILD, 0, slot, &nw);
        if (st) goto done;
        if (nw == 0) continue; /* only tombstones around: keep the previous entries */
        if (cands_reserve(&sc->s, &sc->cap_s, nw)) {
            st = VD_NOMEM;
            goto done;
        }
        maxheap_drain(sc->w, nw, sc->s);
        size_t k = select_neighbors(ix, sc->s, nw, ix->m, sel);
        set_own_list(ix, slot, (unsigned)l, sel, k);
        for (size_t i = 0; i < k; i++) add_link(ix, sel[i].slot, (unsigned)l, slot, sel[i].d);
        ent = sc->s;
        n_ent = nw;
    }
    if (hold) {
        ST_REL(&ix->max_level, level);
        ST_REL(&ix->entry, slot);
        queue_orphan(ix, ep); /* the old entry may have no in-link */
    }
    if (LD_RLX(&ix->indeg[slot]) == 0) queue_orphan(ix, slot);
done:
    if (ix->mt && hold) pthread_mutex_unlock(&ix->ep_lock);
    return st;
}

/* ---- open / close ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned random_level(vd_index *ix)
{
    double u = (double)((splitmix64(&ix->rng) >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    double l = -log(u) * ix->level_mult;
    return l >= VD_LEVEL_MAX ? VD_LEVEL_MAX : (unsigned)l;
}

vd_status vd_index_open(const vd_index_params *p, vd_index **out, vd_err *err)
{
    vd_index *ix = NULL;
    if (!p || !out) return vd_err_set(err, VD_INVALID, "index params and out are required");
    *out = NULL;
    vd_index_params q = *p;
    vd_status s = vd_index_params_check(&q, err);
    if (s != VD_OK) return s;
    uint32_t m = q.m, efc = q.ef_construction;

    ix = vd_calloc(1, sizeof *ix);
    if (!ix) return vd_err_set(err, VD_NOMEM, "out of memory for the index");
    pthread_mutex_init(&ix->ep_lock, NULL);
    pthread_mutex_init(&ix->dirty_lock, NULL);
    ix->p = q;
    ix->dim = p->dim;
    ix->metric = (int)p->metric;
    ix->m = m;
    ix->m0 = 2 * m;
    ix->efc = efc;
    ix->level_mult = 1.0 / log((double)m);
    ix->hdr_off = (4 + 4 * (size_t)ix->m0 + 7) & ~(size_t)7;
    ix->vec_off = (ix->hdr_off + sizeof(vd_node) + 15) & ~(size_t)15;
    ix->nodes.stride = (ix->vec_off + 4 * (size_t)ix->dim + 63) & ~(size_t)63;
    unsigned shift = 10;
    while (shift < 24 && ((uint64_t)1 << shift) < p->capacity_hint) shift++;
    ix->nodes.shift = shift;
    ix->upper.stride = upper_stride(ix);
    ix->upper.shift = shift > 14 ? shift - 4 : 10;
    ix->upper_free = VD_SLOT_NONE;
    ix->entry = VD_SLOT_NONE;
    ix->visible_epoch = 0;
    ix->write_epoch = 1;
    ix->ef_search = vd_param_info_of(VD_PARAM_EF_SEARCH)->def;
    ix->rng = p->seed;
    ix->stripes = vd_malloc(VD_N_STRIPES * sizeof(pthread_mutex_t));
    ix->rbuf = vd_malloc((4 * (size_t)ix->m0 + 2) * sizeof(vd_cand));
    /* Sized for the hint at once: a load of n points then never rehashes. */
    if (!ix->stripes || !ix->rbuf ||
        vd_idmap_reserve(&ix->map, p->capacity_hint > 16 ? p->capacity_hint : 16)) {
        vd_err_set(err, VD_NOMEM, "out of memory for the index");
        goto fail;
    }
    for (unsigned i = 0; i < VD_N_STRIPES; i++) pthread_mutex_init(&ix->stripes[i], NULL);
    *out = ix;
    return VD_OK;
fail:
    if (ix && ix->stripes) {
        vd_free(ix->stripes);
        ix->stripes = NULL;
    }
    vd_index_close(ix);
    return VD_NOMEM;
}

void vd_index_close(vd_index *ix)
{
    if (!ix) return;
    arena_free(&ix->nodes);
    arena_free(&ix->upper);
    idmap_free(&ix->map);
    if (ix->stripes) {
        for (unsigned i = 0; i < VD_N_STRIPES; i++) pthread_mutex_destroy(&ix->stripes[i]);
        vd_free(ix->stripes);
    }
    pthread_mutex_destroy(&ix->ep_lock);
    pthread_mutex_destroy(&ix->dirty_lock);
    vd_free(ix->free_slots);
    vd_free(ix->pending);
    vd_free(ix->dirty);
    vd_free(ix->dirty_list);
    vd_free(ix->indeg);
    vd_free(ix->omark);
    vd_free(ix->orphans);
    vd_free(ix->rbuf);
    vd_free(ix);
}

const vd_index_params *vd_index_params_of(const vd_index *ix) { return &ix->p; }

void vd_index_set_ef_search(vd_index *ix, uint32_t ef)
{
    ST_RLX(&ix->ef_search, ef ? ef : vd_param_info_of(VD_PARAM_EF_SEARCH)->def);
}

size_t vd_index_count(const vd_index *ix) { return LD_ACQ(&ix->n_visible); }

/* ---- vector checks ----------------------------------------------------------------------- */

/* Checks a vector; for cosine stores its norm's inverse in *inv (1 otherwise). `what`
 * names the vector in messages ("id 7", "query"). */
double vd_index__norm2(const vd_index *ix, const float *v, uint32_t *bad)
{
    /* Fast path: one SIMD pass. A finite sum of squares proves every component finite (a NaN
     * or an infinity would propagate). Otherwise (or when float squares overflow or underflow)
     * the exact per-component pass in double. */
    double s = vd_kern_dot(v, v, ix->dim);
    *bad = ix->dim;
    if (!isfinite(s) || !(s >= 1e-30)) { /* also tiny norms: float squares underflow */
        s = 0;
        for (uint32_t i = 0; i < ix->dim; i++) {
            if (!isfinite(v[i])) {
                *bad = i;
                return NAN;
            }
            s += (double)v[i] * v[i];
        }
    }
    return s;
}

static vd_status check_vector(const vd_index *ix, const float *v, const char *what, double *inv,
                              vd_err *err)
{
    uint32_t bad;
    double s = vd_index__norm2(ix, v, &bad);
    if (bad < ix->dim)
        return vd_err_set(err, VD_INVALID, "%s: component %u is %s", what, bad,
                          isnan(v[bad]) ? "NaN" : "infinite");
    *inv = 1.0;
    if (ix->metric == VD_METRIC_COSINE) {
        if (s == 0)
            return vd_err_set(err, VD_INVALID, "%s: zero vector has no direction for cosine",
                              what);
        *inv = 1.0 / sqrt(s);
    }
    return VD_OK;
}

static void store_vector(const vd_index *ix, float *dst, const float *src, double inv)
{
    if (ix->metric != VD_METRIC_COSINE) {
        memcpy(dst, src, ix->dim * sizeof(float));
        return;
    }
    for (uint32_t i = 0; i < ix->dim; i++) dst[i] = (float)(src[i] * inv);
}

/* ---- add --------------------------------------------------------------------------------- */

static uint32_t take_slot(vd_index *ix)
{
    if (ix->n_free) return ix->free_slots[--ix->n_free];
    uint32_t s = ix->n_slots;
    ST_REL(&ix->n_slots, s + 1);
    return s;
}

/* Writes a node into a free slot (capacity reserved). Unreachable until linked. */
static void init_node(vd_index *ix, uint32_t slot, uint64_t id, const float *vec, double inv,
                      unsigned level, uint64_t born)
{
    vd_node *nd = vd_index__node(ix, slot);
    store_vector(ix, vd_index__vec(ix, slot), vec, inv);
    nd->id = id;
    nd->level = (uint8_t)level;
    nd->flags = NODE_USED;
    nd->upper = level ? vd_index__alloc_upper_chain(ix, level) : VD_SLOT_NONE;
    ST_RLX(vd_index__list0(ix, slot), 0u);
    ST_RLX(&ix->indeg[slot], 0u);
    ST_REL(&nd->died, VD_EPOCH_NEVER);
    ST_REL(&nd->born, born);
    vd_index__mark(ix, slot, VD_CHANGE_NEW);
}

/* Marks a node removed (writer view) with the current write epoch and queues its repair.
 * Room in `pending` is reserved by the caller. */
static void kill_node(vd_index *ix, uint32_t slot)
{
    vd_node *nd = vd_index__node(ix, slot);
    ST_REL(&nd->died, ix->write_epoch);
    nd->flags |= NODE_TOMB;
    ST_RLX(&ix->n_tomb, LD_RLX(&ix->n_tomb) + 1);
    ix->pending[ix->n_pending++] = slot;
    vd_index__mark(ix, slot, VD_CHANGE_LINKS);
}

typedef struct batch_job {
    vd_index *ix;
    const uint32_t *slots;
    size_t n;
    size_t next, done; /* atomic */
    int failed;        /* atomic */
} batch_job;

static void run_job(batch_job *job, vd_progress_fn progress, void *ctx)
{
    scratch *sc = scratch_get();
    if (!sc || tags_reserve(sc, LD_RLX(&job->ix->n_slots))) {
        ST_RLX(&job->failed, 1);
        return;
    }
    uint64_t last = progress ? vd_now_ns() : 0;
    while (!LD_RLX(&job->failed)) {
        size_t i = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (i >= job->n) break;
        if (insert_node(job->ix, sc, job->slots[i])) ST_RLX(&job->failed, 1);
        size_t done = __atomic_add_fetch(&job->done, 1, __ATOMIC_RELAXED);
        if (progress) {
            uint64_t now = vd_now_ns();
            if (now - last >= 500000000ull) {
                progress(ctx, done, job->n);
                last = now;
            }
        }
    }
}

static void *job_thread(void *arg)
{
    run_job(arg, NULL, NULL);
    return NULL;
}

vd_status vd_index_add_batch(vd_index *ix, const uint64_t *ids, const float *vecs, size_t n,
                             uint32_t n_threads, vd_progress_fn progress, void *progress_ctx,
                             vd_err *err)
{
    uint8_t *levels = NULL;
    uint32_t *slots = NULL;
    double *inv = NULL;
    vd_idmap seen = {0};
    pthread_t *th = NULL;
    vd_status st = VD_OK;
    uint64_t rng0 = ix ? ix->rng : 0;

    if (!ix || (n && (!ids || !vecs)))
        return vd_err_set(err, VD_INVALID, "index, ids and vectors are required");
    if (n == 0) return VD_OK;
    if (n >= VD_SLOT_NONE - 2)
        return vd_err_set(err, VD_INVALID, "batch of %zu points is too large", n);

    /* 1. Validate everything before anything changes. */
    inv = vd_malloc(n * sizeof(double));
    if (!inv || vd_idmap_reserve(&seen, n)) {
        st = vd_err_set(err, VD_NOMEM, "out of memory validating a batch of %zu", n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        char what[48];
        if (ids[i] == VD_ID_NONE) {
            st = vd_err_set(err, VD_INVALID, "vector %zu: id 18446744073709551615 is reserved", i);
            goto fail;
        }
        uint32_t prev;
        if (vd_idmap_get(&seen, ids[i], &prev)) {
            st = vd_err_set(err, VD_INVALID, "id %" PRIu64 " appears twice in the batch "
                            "(vectors %u and %zu)", ids[i], prev, i);
            goto fail;
        }
        vd_idmap_put(&seen, ids[i], (uint32_t)i);
        snprintf(what, sizeof what, "vector %zu (id %" PRIu64 ")", i, ids[i]);
        st = check_vector(ix, vecs + i * ix->dim, what, &inv[i], err);
        if (st) goto fail;
    }

    /* 2. Reserve every resource, so that nothing below can fail half-way. */
    levels = vd_malloc(n);
    slots = vd_malloc(n * sizeof(uint32_t));
    if (!levels || !slots) {
        st = vd_err_set(err, VD_NOMEM, "out of memory for a batch of %zu", n);
        goto fail;
    }
    uint64_t n_upper = 0;
    for (size_t i = 0; i < n; i++) {
        levels[i] = (uint8_t)random_level(ix);
        n_upper += levels[i];
    }
    size_t n_new_slots = n > ix->n_free ? n - ix->n_free : 0;
    scratch *sc = scratch_get();
    if (!sc) {
        st = vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
        goto fail;
    }
    if ((st = vd_index__reserve_slots(ix, (uint64_t)ix->n_slots + n_new_slots, err)) ||
        (st = vd_index__reserve_upper(ix, n_upper, err)))
        goto fail;
    if (vd_idmap_reserve(&ix->map, ix->map.n + n) ||
        grow_u32(&ix->pending, &ix->cap_pending, ix->n_pending + n) ||
        tags_reserve(sc, (size_t)ix->n_slots + n_new_slots) ||
        cands_reserve(&sc->s, &sc->cap_s, (size_t)ix->efc + 1)) {
        st = vd_err_set(err, VD_NOMEM, "out of memory for a batch of %zu", n);
        goto fail;
    }

    /* 3. Fill the slots (invisible until published, unreachable until linked). */
    uint64_t w = ix->write_epoch;
    for (size_t i = 0; i < n; i++) {
        slots[i] = take_slot(ix);
        init_node(ix, slots[i], ids[i], vecs + i * ix->dim, inv[i], levels[i], w);
    }

    /* 4. Link them, on n_threads threads (this one included). */
    if (n_threads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (uint32_t)c : 1;
    }
    if (n_threads > n) n_threads = (uint32_t)n;
    if (n_threads > 256) n_threads = 256;
    batch_job job = {ix, slots, n, 0, 0, 0};
    uint32_t started = 0;
    if (n_threads > 1) th = vd_malloc(n_threads * sizeof(pthread_t));
    if (th) {
        ix->mt = 1;
        for (uint32_t t = 1; t < n_threads; t++) {
            if (pthread_create(&th[started], NULL, job_thread, &job) != 0) break;
            started++;
        }
        if (!started) ix->mt = 0;
    }
    run_job(&job, progress, progress_ctx);
    for (uint32_t t = 0; t < started; t++) pthread_join(th[t], NULL);
    ix->mt = 0;

    if (job.failed) {
        /* Out of memory mid-way: the batch must have no visible effect. Its nodes become
         * tombstones that were never visible (died == born); repairs and vacuum reclaim. */
        for (size_t i = 0; i < n; i++) kill_node(ix, slots[i]);
        st = vd_err_set(err, VD_NOMEM, "out of memory while linking a batch of %zu", n);
    } else {
        /* 5. Only now swap ids over: old versions die in the same epoch the new are born. */
        for (size_t i = 0; i < n; i++) {
            uint32_t old;
            if (vd_idmap_get(&ix->map, ids[i], &old)) {
                kill_node(ix, old);
                ix->removes_since_check++;
            } else {
                ix->n_live++;
            }
            vd_idmap_put(&ix->map, ids[i], slots[i]);
        }
        ix->ops_since_check += n;
    }
    if (progress && !job.failed) progress(progress_ctx, n, n);
    if (!ix->p.deferred_publish) vd_index__publish(ix);
    vd_free(th);
    vd_free(levels);
    vd_free(slots);
    vd_free(inv);
    idmap_free(&seen);
    return st;
fail:
    ix->rng = rng0;
    vd_free(th);
    vd_free(levels);
    vd_free(slots);
    vd_free(inv);
    idmap_free(&seen);
    return st;
}

vd_status vd_index_add(vd_index *ix, uint64_t id, const float *vec, vd_err *err)
{
    return vd_index_add_batch(ix, &id, vec, 1, 1, NULL, NULL, err);
}

/* ---- remove, repair, publish, vacuum ----------------------------------------------------- */

vd_status vd_index_remove(vd_index *ix, uint64_t id, vd_err *err)
{
    uint32_t slot;
    if (!ix) return vd_err_set(err, VD_INVALID, "index is required");
    if (!vd_idmap_get(&ix->map, id, &slot))
        return vd_err_set(err, VD_NOTFOUND, "id %" PRIu64 " not found", id);
    if (grow_u32(&ix->pending, &ix->cap_pending, ix->n_pending + 1))
        return vd_err_set(err, VD_NOMEM, "out of memory removing id %" PRIu64, id);
    kill_node(ix, slot);
    vd_idmap_del(&ix->map, id);
    ix->n_live--;
    ix->ops_since_check++;
    ix->removes_since_check++;
    if (!ix->p.deferred_publish) vd_index__publish(ix);
    return VD_OK;
}

static inline int node_alive(const vd_node *nd)
{
    return (nd->flags & (NODE_USED | NODE_TOMB)) == NODE_USED;
}

/* Rebuilds n's list at `level` from its live links plus `extra` candidates, with the
 * heuristic. Writer thread only (uses the writer's scratch tags and ix->rbuf). */
static void rebuild_list(vd_index *ix, scratch *sc, uint32_t n, unsigned level,
                         const uint32_t *extra, size_t n_extra)
{
    uint32_t maxl = vd_index__max_links(ix, level);
    size_t cap = 4 * (size_t)ix->m0 + 2, k = 0;
    vd_cand *buf = ix->rbuf, out[2 * VD_M_MAX];
    const float *v = vd_index__vec(ix, n);
    uint32_t *list = vd_index__list(ix, n, level);
    uint32_t cnt = LD_RLX(&list[0]);
    visit_begin(sc);
    sc->tags[n] = sc->gen;
    for (size_t i = 0; i < cnt + n_extra && k < cap; i++) {
        uint32_t x = i < cnt ? LD_RLX(&list[1 + i]) : extra[i - cnt];
        if (sc->tags[x] == sc->gen) continue;
        sc->tags[x] = sc->gen;
        const vd_node *xn = vd_index__node(ix, x);
        if (!node_alive(xn) || xn->level < level) continue;
        buf[k].slot = x;
        buf[k++].d = vdist(ix, v, vd_index__vec(ix, x));
    }
    cands_sort(buf, k);
    write_list(ix, level, list, out, select_neighbors(ix, buf, k, maxl, out));
    vd_index__mark(ix, n, VD_CHANGE_LINKS);
}

/* Repairs the out-neighbours of the removed node r that link back to it. */
static void repair_removed(vd_index *ix, scratch *sc, uint32_t r)
{
    const vd_node *rn = vd_index__node(ix, r);
    uint32_t links[6 * VD_M_MAX];
    for (unsigned l = 0; l <= rn->level; l++) {
        const uint32_t *rl = vd_index__list(ix, r, l);
        uint32_t rc = LD_RLX(&rl[0]), n_links = rc;
        for (uint32_t i = 0; i < rc; i++) links[i] = LD_RLX(&rl[1 + i]);
        /* Through removed neighbours one hop further, so that a run of removals does not
         * cut the graph. */
        for (uint32_t i = 0; i < rc && n_links < 3 * ix->m0; i++) {
            if (node_alive(vd_index__node(ix, links[i]))) continue;
            const uint32_t *xl = vd_index__list(ix, links[i], l);
            uint32_t xc = LD_RLX(&xl[0]);
            for (uint32_t j = 0; j < xc && n_links < 3 * ix->m0; j++)
                links[n_links++] = LD_RLX(&xl[1 + j]);
        }
        for (uint32_t i = 0; i < rc; i++) {
            uint32_t n = links[i];
            const vd_node *nn = vd_index__node(ix, n);
            if (!node_alive(nn) || nn->level < l) continue;
            const uint32_t *nl = vd_index__list(ix, n, l);
            uint32_t nc = LD_RLX(&nl[0]);
            for (uint32_t j = 0; j < nc; j++)
                if (LD_RLX(&nl[1 + j]) == r) {
                    rebuild_list(ix, sc, n, l, links, n_links);
                    break;
                }
        }
    }
}

static unsigned reader_enter(const vd_index *cix)
{
    vd_index *ix = (vd_index *)cix; /* the reader counters are the one thing readers write */
    for (;;) {
        unsigned p = __atomic_load_n(&ix->phase, __ATOMIC_SEQ_CST) & 1u;
        __atomic_fetch_add(&ix->readers[p], 1, __ATOMIC_SEQ_CST);
        if ((__atomic_load_n(&ix->phase, __ATOMIC_SEQ_CST) & 1u) == p) return p;
        __atomic_fetch_sub(&ix->readers[p], 1, __ATOMIC_SEQ_CST);
    }
}

static void reader_exit(const vd_index *cix, unsigned p)
{
    vd_index *ix = (vd_index *)cix;
    __atomic_fetch_sub(&ix->readers[p], 1, __ATOMIC_RELEASE);
}

/* Returns once every search that might still hold a slot unlinked before the call ended. */
static void wait_for_readers(vd_index *ix)
{
    unsigned old = __atomic_load_n(&ix->phase, __ATOMIC_RELAXED) & 1u;
    __atomic_store_n(&ix->phase, old ^ 1u, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&ix->readers[old], __ATOMIC_SEQ_CST) != 0) sched_yield();
}

/* Breadth-first over level-0 links from `from`, marking seen[]; returns nodes newly marked.
 * `queue` has room for n_slots entries. */
static size_t reach_bfs(const vd_index *ix, uint32_t from, uint8_t *seen, uint32_t *queue)
{
    uint32_t ns = LD_RLX(&ix->n_slots);
    size_t head = 0, tail = 0, marked = 0;
    if (from >= ns || seen[from]) return 0;
    seen[from] = 1;
    queue[tail++] = from;
    while (head < tail) {
        if (head + 8 < tail) __builtin_prefetch(vd_index__list0(ix, queue[head + 8]));
        uint32_t s = queue[head++];
        marked++;
        const uint32_t *list = vd_index__list0(ix, s);
        uint32_t c = LD_RLX(&list[0]);
        if (c > ix->m0) c = ix->m0;
        for (uint32_t i = 0; i < c; i++) {
            uint32_t x = LD_RLX(&list[1 + i]);
            if (x < ns && !seen[x] && (vd_index__node(ix, x)->flags & NODE_USED)) {
                seen[x] = 1;
                queue[tail++] = x;
            }
        }
    }
    return marked;
}

size_t vd_index__reach_mark(const vd_index *ix, uint32_t from, uint8_t *seen)
{
    uint32_t *queue = vd_malloc(((size_t)LD_RLX(&ix->n_slots) + 1) * sizeof(uint32_t));
    if (!queue) return SIZE_MAX;
    size_t n = reach_bfs(ix, from, seen, queue);
    vd_free(queue);
    return n;
}

/* Links the unreachable live node u into the graph at level 0, making sure at least one
 * reachable node keeps a link to it. */
/* Searches level 0 for u's neighbours into sc->s (sorted, *n of them), keeping only nodes
 * known to be reachable (seen[] when given). Returns 0 when none was found. */
static int orphan_candidates(vd_index *ix, scratch *sc, uint32_t u, const uint8_t *seen,
                             vd_cand start, size_t *n)
{
    size_t nw = 0, k = 0;
    const float *q = vd_index__vec(ix, u);
    if (search_layer(ix, sc, q, &start, 1, 0, ix->efc, MODE_BUILD, 0, u, &nw) || nw == 0 ||
        cands_reserve(&sc->s, &sc->cap_s, nw))
        return 0;
    for (size_t i = 0; i < nw; i++)
        if (!seen || seen[sc->w[i].slot]) sc->s[k++] = sc->w[i];
    cands_sort(sc->s, k);
    *n = k;
    return k > 0;
}

/* Links the unreachable live node u into the graph at level 0, making sure at least one
 * node known to be reachable (seen[], or any node when seen is NULL) keeps a link to it. */
static void connect_orphan(vd_index *ix, scratch *sc, uint32_t u, const uint8_t *seen)
{
    uint32_t ep = LD_RLX(&ix->entry);
    if (ep == VD_SLOT_NONE || ep == u) return;
    const float *q = vd_index__vec(ix, u);
    vd_cand at_ep = {vdist(ix, q, vd_index__vec(ix, ep)), ep}, sel[2 * VD_M_MAX];
    /* The descent finds better neighbours, but upper-level links may lead into the very
     * component that is cut off at level 0: then the level-0 search from the entry point,
     * which only sees reachable nodes. */
    vd_cand cur = greedy(ix, q, at_ep, vd_index__node(ix, ep)->level, 0);
    size_t nw = 0;
    if (cur.slot == u || !orphan_candidates(ix, sc, u, seen, cur, &nw))
        if (!orphan_candidates(ix, sc, u, seen, at_ep, &nw)) return;
    size_t k = select_neighbors(ix, sc->s, nw, ix->m, sel);
    uint32_t extra[2 * VD_M_MAX] = {0};
    for (size_t i = 0; i < k; i++) extra[i] = sel[i].slot;
    rebuild_list(ix, sc, u, 0, extra, k);
    /* Only lists with room take u: shrinking a full one could orphan another node. */
    int kept = 0;
    for (size_t i = 0; i < k; i++)
        if (LD_RLX(&vd_index__list(ix, sel[i].slot, 0)[0]) < ix->m0)
            kept |= add_link(ix, sel[i].slot, 0, u, sel[i].d);
    /* No selected neighbour had room: append to the nearest reachable node with room. */
    for (size_t i = 0; i < nw && !kept; i++) {
        const uint32_t *list = vd_index__list(ix, sc->s[i].slot, 0);
        if (LD_RLX(&list[0]) < ix->m0) kept = add_link(ix, sc->s[i].slot, 0, u, sc->s[i].d);
    }
    if (!kept) {
        /* Every list around is full: replace the farthest link of the nearest node. Whatever
         * that drops is caught by the next round of the reachability pass. */
        uint32_t n = sel[0].slot, *list = vd_index__list(ix, n, 0);
        uint32_t c = LD_RLX(&list[0]), worst = 0;
        float wd = -INFINITY;
        const float *v = vd_index__vec(ix, n);
        for (uint32_t i = 0; i < c; i++) {
            float d = vdist(ix, v, vd_index__vec(ix, LD_RLX(&list[1 + i])));
            if (d > wd) {
                wd = d;
                worst = i;
            }
        }
        if (c == 0) {
            ST_REL(&list[1], u);
            ST_REL(&list[0], 1u);
        } else {
            indeg_dec(ix, LD_RLX(&list[1 + worst]));
            ST_REL(&list[1 + worst], u);
        }
        indeg_inc(ix, u);
        vd_index__mark(ix, n, VD_CHANGE_LINKS);
    }
}

/* Reconnects every live node not reachable from the entry point. Best effort: skipped when
 * out of memory (the graph stays valid, only less reachable). */
/* Reconnects live nodes not reachable from the entry point, in up to 4 rounds (a
 * reconnection can evict a link and cut off another node). Returns how many live nodes are
 * still unreachable after the last round (0 also when out of memory: nothing is known). */
static size_t fix_reachability(vd_index *ix, scratch *sc)
{
    uint32_t ns = ix->n_slots, ep = ix->entry;
    size_t left = 0;
    ix->ops_since_check = ix->removes_since_check = 0;
    if (ep == VD_SLOT_NONE || ns == 0) return 0;
    uint8_t *seen = vd_calloc(ns, 1);
    uint32_t *queue = vd_malloc((size_t)ns * sizeof(uint32_t));
    for (int round = 0; seen && queue; round++) {
        memset(seen, 0, ns);
        size_t reached = reach_bfs(ix, ep, seen, queue);
        left = 0;
        if (reached == ix->n_live + LD_RLX(&ix->n_tomb)) break;
        for (uint32_t s = 0; s < ns; s++) {
            if (seen[s] || !node_alive(vd_index__node(ix, s))) continue;
            left++;
            if (round == 4) continue; /* only counting */
            connect_orphan(ix, sc, s, seen);
            reach_bfs(ix, s, seen, queue);
        }
        if (!left || round == 4) break;
    }
    vd_free(seen);
    vd_free(queue);
    return left;
}

size_t vd_index__restore_reachability(vd_index *ix)
{
    scratch *sc = scratch_get();
    if (!sc || tags_reserve(sc, ix->n_slots)) return 0;
    return fix_reachability(ix, sc);
}

/* Reconnects the live nodes whose level-0 in-degree dropped to zero. Reconnecting may
 * evict a link (when every list around is full), queueing another node: bounded. */
static void reconnect_orphans(vd_index *ix, scratch *sc)
{
    size_t budget = 4 * ix->n_orphans + 64;
    for (size_t i = 0; i < ix->n_orphans; i++) {
        uint32_t x = ix->orphans[i];
        ix->omark[x] = 0;
        const vd_node *nd = vd_index__node(ix, x);
        if (LD_RLX(&ix->indeg[x]) != 0 || x == ix->entry || !(nd->flags & NODE_USED)) continue;
        if (nd->flags & NODE_TOMB) {
            /* An unreachable tombstone no longer carries anyone: drop its links so that the
             * nodes only it pointed to are queued in turn. Only at level 0 (upper-level links
             * are not counted: a tombstone of higher level may still be a descent waypoint). */
            if (nd->level) continue;
            write_list(ix, 0, vd_index__list0(ix, x), NULL, 0);
            vd_index__mark(ix, x, VD_CHANGE_LINKS);
            continue;
        }
        if (budget == 0) continue;
        budget--;
        connect_orphan(ix, sc, x, NULL);
    }
    ix->n_orphans = 0;
}

static void free_slot(vd_index *ix, uint32_t s)
{
    vd_node *nd = vd_index__node(ix, s);
    ST_REL(&nd->born, VD_EPOCH_NEVER);
    ST_REL(&nd->died, (uint64_t)0);
    uint32_t *l0 = vd_index__list0(ix, s);
    for (uint32_t i = 0; i < l0[0]; i++) indeg_dec(ix, l0[1 + i]);
    free_upper_chain(ix, nd->upper);
    nd->upper = VD_SLOT_NONE;
    nd->flags = 0;
    nd->level = 0;
    ST_RLX(&l0[0], 0u);
    ix->free_slots[ix->n_free++] = s;
    vd_index__mark(ix, s, VD_CHANGE_FREED);
}

/* Unlinks every tombstone, moves the entry point off them, waits out the readers, frees. */
static void vacuum(vd_index *ix, scratch *sc)
{
    uint32_t ns = ix->n_slots;
    size_t n_tomb = LD_RLX(&ix->n_tomb);
    if (grow_u32(&ix->free_slots, &ix->cap_free, ix->n_free + n_tomb)) return;
    uint32_t *extra = vd_malloc(3 * (size_t)ix->m0 * sizeof(uint32_t));
    if (!extra) return;
    for (uint32_t s = 0; s < ns; s++) {
        const vd_node *nd = vd_index__node(ix, s);
        if (!node_alive(nd)) continue;
        for (unsigned l = 0; l <= nd->level; l++) {
            const uint32_t *list = vd_index__list(ix, s, l);
            uint32_t c = LD_RLX(&list[0]);
            size_t ne = 0;
            int dead = 0;
            for (uint32_t i = 0; i < c; i++) {
                uint32_t x = LD_RLX(&list[1 + i]);
                if (node_alive(vd_index__node(ix, x))) continue;
                dead = 1;
                const uint32_t *xl = vd_index__list(ix, x, l);
                uint32_t xc = LD_RLX(&xl[0]);
                for (uint32_t j = 0; j < xc && ne < 3 * (size_t)ix->m0; j++)
                    extra[ne++] = LD_RLX(&xl[1 + j]);
            }
            if (dead) rebuild_list(ix, sc, s, l, extra, ne);
        }
    }
    vd_free(extra);
    uint32_t ep = ix->entry;
    if (ep != VD_SLOT_NONE && !node_alive(vd_index__node(ix, ep))) {
        uint32_t best = VD_SLOT_NONE;
        unsigned best_level = 0;
        for (uint32_t s = 0; s < ns; s++) {
            const vd_node *nd = vd_index__node(ix, s);
            if (node_alive(nd) && (best == VD_SLOT_NONE || nd->level > best_level)) {
                best = s;
                best_level = nd->level;
            }
        }
        ST_REL(&ix->max_level, best_level);
        ST_REL(&ix->entry, best);
    }

    wait_for_readers(ix);
    size_t freed = 0;
    for (uint32_t s = ns; s-- > 0;) {
        const vd_node *nd = vd_index__node(ix, s);
        if ((nd->flags & NODE_USED) && (nd->flags & NODE_TOMB)) {
            free_slot(ix, s);
            freed++;
        }
    }
    ST_RLX(&ix->n_tomb, LD_RLX(&ix->n_tomb) - freed);
    fix_reachability(ix, sc);
}

void vd_index__account(vd_index *ix)
{
    size_t b = sizeof *ix + VD_N_STRIPES * sizeof(pthread_mutex_t) +
               ix->map.cap * (sizeof(uint64_t) + sizeof(uint32_t)) +
               ix->cap_dirty * (2 + 4 * sizeof(uint32_t)) +
               (ix->cap_free + ix->cap_pending) * sizeof(uint32_t);
    ST_RLX(&ix->bytes_aux, b);
}

void vd_index__publish(vd_index *ix)
{
    vd_index__account(ix);
    ST_RLX(&ix->n_visible, ix->n_live);
    ST_REL(&ix->visible_epoch, ix->write_epoch);
    ix->write_epoch++;
    scratch *sc = scratch_get();
    if (!sc || tags_reserve(sc, ix->n_slots)) return; /* repairs wait for the next publish */
    for (size_t i = 0; i < ix->n_pending; i++) repair_removed(ix, sc, ix->pending[i]);
    ix->n_pending = 0;
    size_t tomb = LD_RLX(&ix->n_tomb);
    if (tomb >= VACUUM_MIN && tomb * 10 >= ix->n_live + tomb) vacuum(ix, sc);
    reconnect_orphans(ix, sc);
    /* In-degrees miss one case, a group of nodes linking only to each other (removals can
     * cut a graph in two): a breadth-first pass catches it, amortized over n/8 mutations, and
     * after every removal while the index is small enough for that to be cheap. */
    if ((ix->ops_since_check && ix->ops_since_check * 8 >= ix->n_live) ||
        (ix->removes_since_check && ix->n_live <= SMALL_INDEX))
        fix_reachability(ix, sc);
}

void vd_index_publish(vd_index *ix)
{
    if (ix && ix->p.deferred_publish) vd_index__publish(ix);
}

/* ---- search ------------------------------------------------------------------------------ */

static int hit_cmp(const void *a, const void *b)
{
    const vd_hit *x = a, *y = b;
    if (x->distance < y->distance) return -1;
    if (x->distance > y->distance) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Common argument checks; on success *qp is the query to use (normalized under cosine). */
static vd_status prepare_query(const vd_index *ix, scratch **scp, const float *query, uint32_t k,
                               const vd_hit *hits, uint32_t *n_out, const float **qp, vd_err *err)
{
    if (n_out) *n_out = 0;
    if (!ix || !query || !hits || !n_out)
        return vd_err_set(err, VD_INVALID, "index, query, hits and n_out are required");
    if (k == 0) return vd_err_set(err, VD_INVALID, "k must be at least 1");
    double inv;
    vd_status st = check_vector(ix, query, "query", &inv, err);
    if (st) return st;
    scratch *sc = scratch_get();
    if (!sc) return vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
    *scp = sc;
    *qp = query;
    if (ix->metric == VD_METRIC_COSINE) {
        if (sc->cap_q < ix->dim) {
            float *q = vd_realloc(sc->q, ix->dim * sizeof(float));
            if (!q) return vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
            sc->q = q;
            sc->cap_q = ix->dim;
        }
        store_vector(ix, sc->q, query, inv);
        *qp = sc->q;
    }
    return VD_OK;
}

static vd_status exact_scan(const vd_index *ix, scratch *sc, const float *q, uint32_t k,
                            vd_hit *hits, uint32_t *n_out, vd_err *err)
{
    if (sc->cap_h < k) {
        vd_hit *h = vd_realloc(sc->h, (size_t)k * sizeof(vd_hit));
        if (!h) return vd_err_set(err, VD_NOMEM, "out of memory for %u hits", k);
        sc->h = h;
        sc->cap_h = k;
    }
    vd_hit *h = sc->h;
    size_t nh = 0;
    unsigned p = reader_enter(ix);
    uint64_t v = LD_ACQ(&ix->visible_epoch);
    uint32_t ns = LD_ACQ(&ix->n_slots);
    for (uint32_t s = 0; s < ns; s++) {
        const vd_node *nd = vd_index__node(ix, s);
        if (!accept(nd, MODE_READ, v)) continue;
        vd_hit x = {nd->id, vdist(ix, q, vd_index__vec(ix, s))};
        if (nh == k && hit_cmp(&x, &h[0]) >= 0) continue;
        if (nh == k) { /* replace the max and sift down */
            size_t i = 0;
            for (;;) {
                size_t c = 2 * i + 1;
                if (c >= nh) break;
                if (c + 1 < nh && hit_cmp(&h[c + 1], &h[c]) > 0) c++;
                if (hit_cmp(&x, &h[c]) >= 0) break;
                h[i] = h[c];
                i = c;
            }
            h[i] = x;
        } else {
            size_t i = nh++;
            while (i) {
                size_t pa = (i - 1) / 2;
                if (hit_cmp(&h[pa], &x) >= 0) break;
                h[i] = h[pa];
                i = pa;
            }
            h[i] = x;
        }
    }
    reader_exit(ix, p);
    if (nh) {
        qsort(h, nh, sizeof *h, hit_cmp);
        memcpy(hits, h, nh * sizeof *h);
    }
    *n_out = (uint32_t)nh;
    return VD_OK;
}

vd_status vd_index_search_exact(const vd_index *ix, const float *query, uint32_t k,
                                vd_hit *hits, uint32_t *n_out, vd_err *err)
{
    scratch *sc = NULL;
    const float *q = NULL;
    vd_status st = prepare_query(ix, &sc, query, k, hits, n_out, &q, err);
    if (st) return st;
    return exact_scan(ix, sc, q, k, hits, n_out, err);
}

vd_status vd_index_search(const vd_index *ix, const float *query, uint32_t k, uint32_t ef,
                          vd_hit *hits, uint32_t *n_out, vd_err *err)
{
    scratch *sc = NULL;
    const float *q = NULL;
    vd_status st = prepare_query(ix, &sc, query, k, hits, n_out, &q, err);
    if (st) return st;
    if (ef == 0) ef = LD_RLX(&ix->ef_search);
    if (ef < k) ef = k;
    unsigned p = reader_enter(ix);
    uint64_t v = LD_ACQ(&ix->visible_epoch);
    uint32_t ep = LD_ACQ(&ix->entry);
    size_t nw = 0;
    if (ep != VD_SLOT_NONE) {
        if (tags_reserve(sc, LD_ACQ(&ix->n_slots))) {
            reader_exit(ix, p);
            return vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
        }
        vd_cand cur = {vdist(ix, q, vd_index__vec(ix, ep)), ep};
        cur = greedy(ix, q, cur, vd_index__node(ix, ep)->level, 0);
        st = search_layer(ix, sc, q, &cur, 1, 0, ef, MODE_READ, v, VD_SLOT_NONE, &nw);
        if (st) {
            reader_exit(ix, p);
            return vd_err_set(err, st, "out of memory for search scratch");
        }
        if (sc->cap_h < nw) {
            vd_hit *h = vd_realloc(sc->h, nw * sizeof(vd_hit));
            if (!h) {
                reader_exit(ix, p);
                return vd_err_set(err, VD_NOMEM, "out of memory for %zu hits", nw);
            }
            sc->h = h;
            sc->cap_h = nw;
        }
        /* Drop the ef - k farthest, then pop the k nearest into place, farthest first. */
        while (nw > k) maxheap_pop(sc->w, &nw);
        for (size_t i = nw; i-- > 0;) {
            sc->h[i].id = vd_index__node(ix, sc->w[0].slot)->id;
            sc->h[i].distance = sc->w[0].d;
            size_t m = i + 1;
            maxheap_pop(sc->w, &m);
        }
    }
    reader_exit(ix, p);
    uint32_t n = (uint32_t)nw;
    /* Ties by id: an insertion pass, a no-op unless distances repeat. */
    for (uint32_t i = 1; i < n; i++) {
        vd_hit x = sc->h[i];
        uint32_t j = i;
        while (j && hit_cmp(&sc->h[j - 1], &x) > 0) {
            sc->h[j] = sc->h[j - 1];
            j--;
        }
        sc->h[j] = x;
    }
    if (n) memcpy(hits, sc->h, n * sizeof(vd_hit));
    *n_out = n;
    /* The beam can come back short when most nodes around are invisible (a large unpublished
     * batch, many tombstones): then the scan keeps the "fewer than k only when fewer points
     * are visible" promise. */
    if (n < k && n < vd_index_count(ix)) return exact_scan(ix, sc, q, k, hits, n_out, err);
    return VD_OK;
}

vd_status vd_index_get(const vd_index *ix, uint64_t id, float *out, vd_err *err)
{
    uint32_t slot;
    if (!ix || !out) return vd_err_set(err, VD_INVALID, "index and out are required");
    if (!vd_idmap_get(&ix->map, id, &slot))
        return vd_err_set(err, VD_NOTFOUND, "id %" PRIu64 " not found", id);
    memcpy(out, vd_index__vec(ix, slot), ix->dim * sizeof(float));
    return VD_OK;
}
