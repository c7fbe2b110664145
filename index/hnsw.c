/* index/hnsw.c: the HNSW index object (Malkov & Yashunin): open/close, the node arenas and
 * slots, the level generator, the per-thread search scratch, vector checks and stats. The
 * phases live in files of their own (pgvector's split): insert.c, search.c, vacuum.c
 * (remove, publish, repair, vacuum), reach.c, validate.c, persist.c, changes.c; the table in
 * docs/architecture.md ("Index") says which file owns what.
 *
 * Layout. Every point occupies a dense uint32 "slot". Slot s owns one level-0 block of fixed
 * stride: the link count and 2*M uint32 links, a 32-byte header (born/died epochs, id, first
 * upper block, level, flags) placed right before the vector so that a candidate's visibility
 * check hits the cache line its distance loads anyway, then the vector; padded to 64 bytes.
 * An int8 block is [header][codes][links] padded to 8 (vd_index_open says why).
 * Blocks live in a segmented arena (index_int.h): segment k holds B << k blocks and is
 * mmap'ed once, so growth never moves a node and a reader holding a slot number can always
 * find it without a lock. The ~1/M nodes with level >= 1 chain fixed-size upper blocks
 * ([count][M links][next]) from a second arena with a free list; upper levels only see
 * greedy descent, so the chain walk is off the hot path. Links are slot numbers, never
 * pointers: storage writes them as-is and a load needs no fix-up pass. Per-slot side tables
 * (change marks, level-0 in-degrees, the orphan queue) are plain arrays grown together by
 * vd_index__reserve_slots, touched by the writer and by add_batch's inserters (atomics).
 *
 * Concurrency. Searches take no lock. Writers publish link entries and counts with release
 * stores and readers use acquire loads (plain movs on x86, TSan-clean). A reader may see a
 * mix of the old and new neighbours of a node mid-rewrite; that is harmless because every
 * slot it can see is a fully initialized node: a node's vector and header are written before
 * any link to it is stored. Multi-threaded add_batch guards link-list rewrites between
 * inserter threads with a table of 4096 striped mutexes (one held at a time, so no lock
 * order among them), and the entry point with ep_lock (taken before a stripe, never after);
 * dirty_lock is innermost (change marks and the orphan queue, appended under a stripe). The
 * public writer API is for one thread at a time. The one hazard lock-free readers add is
 * slot reuse; vacuum.c's grace periods handle it.
 *
 * Visibility (MVCC-lite). Mutations are stamped with write_epoch = visible_epoch + 1; a node
 * is returned iff born <= visible_epoch < died but can always be traversed. Publishing
 * (vacuum.c) stores visible_epoch = write_epoch (release), so a whole write batch appears at
 * once. An upsert never rewrites a vector in place (a reader may be reading it): it kills the
 * old slot and fills a new one. Epochs are 64-bit, not 32: a daemon publishing per write
 * would wrap 32 bits in weeks.
 *
 * Scratch. Search scratch (visited tags, heaps, hits, the normalized query) hangs off a
 * _Thread_local pointer, shared by every index the thread touches and freed by a pthread key
 * destructor. Visited tags are 16-bit generation stamps: a new search costs nothing to reset,
 * a wrap costs one memset.
 *
 * Rejected: per-node malloc (pointer chasing, no stable persisted layout); realloc of one big
 * array (moves nodes under readers); seqlocks on link lists (readers would retry under write
 * load, and a torn list is already harmless here); hnswlib-style unlocked plain reads (data
 * races, not TSan-clean); 32-bit epochs (wrap). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "index/index_int.h"

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

/* Grows the array *p (capacity *cap items of `size` bytes) to hold `want`, doubling from
 * `first`. VD_NOMEM leaves it as it was. The growable side arrays and scratch all use it. */
static vd_status grow_array(void **p, size_t *cap, size_t want, size_t size, size_t first)
{
    if (*cap >= want) return VD_OK;
    size_t n = *cap ? *cap : first;
    while (n < want) n *= 2;
    void *q = vd_realloc(*p, n * size);
    if (!q) return VD_NOMEM;
    *p = q;
    *cap = n;
    return VD_OK;
}

vd_status vd_index__grow_u32(uint32_t **a, size_t *cap, size_t want)
{
    void *p = *a;
    vd_status st = grow_array(&p, cap, want, sizeof **a, 64);
    *a = p;
    return st;
}

/* The per-slot side tables are anonymous mappings, not heap arrays: mremap grows them
 * without a copy through the heap and the pages past the slots in use stay untouched (fresh
 * pages read as zero, so nothing is memset), which the accounting relies on: a table costs
 * the entries written, not its power-of-two capacity (that slack was 9-14 B/vector of an int8
 * index's 346 at 340k points). Bytes of a table of n entries of `size` bytes: */
static size_t table_bytes(size_t n, size_t size)
{
    size_t page = 4096;
    return (n * size + page - 1) & ~(page - 1);
}

/* Grows *p from `old` to `want` bytes (table_bytes sizes); the new bytes read as zero. */
static int table_grow(void *pp, size_t old, size_t want)
{
    void **p = pp;
    void *q = old ? mremap(*p, old, want, MREMAP_MAYMOVE)
                  : mmap(NULL, want, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (q == MAP_FAILED) return -1;
    *p = q;
    return 0;
}

static void table_free(void *p, size_t n, size_t size)
{
    if (p) munmap(p, table_bytes(n, size));
}

/* Entry sizes of the side tables, in the order grow_side_tables grows them: dirty, omark,
 * indeg, dirty_list (2 per slot), orphans. */
static const size_t side_size[5] = {1, 1, sizeof(uint32_t), 2 * sizeof(uint32_t),
                                    sizeof(uint32_t)};

/* Grows the per-slot side tables to at least `want` entries each. */
static vd_status grow_side_tables(vd_index *ix, uint64_t want, vd_err *err)
{
    size_t n = ix->cap_dirty ? ix->cap_dirty : 256;
    while (n < want) n *= 2;
    void *t[5] = {&ix->dirty, &ix->omark, &ix->indeg, &ix->dirty_list, &ix->orphans};
    /* Whatever grew stays grown; cap_dirty moves only when all did. */
    for (int i = 0; i < 5; i++) {
        if (ix->cap_side[i] >= n) continue;
        if (table_grow(t[i], table_bytes(ix->cap_side[i], side_size[i]),
                       table_bytes(n, side_size[i])))
            return vd_err_set(err, VD_NOMEM, "out of memory for per-slot tables");
        ix->cap_side[i] = n;
    }
    ix->cap_dirty = n;
    return VD_OK;
}

vd_status vd_index__reserve_slots(vd_index *ix, uint64_t want, vd_err *err)
{
    if (want >= VD_SLOT_NONE - 1)
        return vd_err_set(err, VD_FULL, "index holds at most %u points", VD_SLOT_NONE - 2);
    vd_status st = arena_grow(&ix->nodes, want, "node", err);
    if (st) return st;
    return ix->cap_dirty < want ? grow_side_tables(ix, want, err) : VD_OK;
}

vd_status vd_index__reserve_upper(vd_index *ix, uint64_t n_blocks, vd_err *err)
{
    if (n_blocks <= ix->n_upper_free) return VD_OK;
    uint64_t want = (uint64_t)ix->n_upper + (n_blocks - ix->n_upper_free);
    if (want >= VD_SLOT_NONE) return vd_err_set(err, VD_FULL, "too many upper-level blocks");
    return arena_grow(&ix->upper, want, "upper-level", err);
}

uint32_t vd_index__alloc_upper_chain(vd_index *ix, unsigned level)
{
    uint32_t first = VD_SLOT_NONE, *prev = NULL;
    for (unsigned l = 1; l <= level; l++) {
        uint32_t b;
        if (ix->upper_free != VD_SLOT_NONE) {
            b = ix->upper_free;
            ix->upper_free = VD_UPPER_NEXT(ix, (uint32_t *)vd_arena_at(&ix->upper, b));
            ix->n_upper_free--;
        } else {
            b = ix->n_upper;
            ST_RLX(&ix->n_upper, b + 1);
        }
        uint32_t *blk = (uint32_t *)vd_arena_at(&ix->upper, b);
        ST_RLX(&blk[0], 0u);
        VD_UPPER_NEXT(ix, blk) = VD_SLOT_NONE;
        if (prev) VD_UPPER_NEXT(ix, prev) = b;
        else first = b;
        prev = blk;
    }
    return first;
}

void vd_index__free_upper_chain(vd_index *ix, uint32_t b)
{
    while (b != VD_SLOT_NONE) {
        uint32_t *blk = (uint32_t *)vd_arena_at(&ix->upper, b);
        uint32_t next = VD_UPPER_NEXT(ix, blk);
        ST_RLX(&blk[0], 0u);
        VD_UPPER_NEXT(ix, blk) = ix->upper_free;
        ix->upper_free = b;
        ix->n_upper_free++;
        b = next;
    }
}

uint32_t vd_index__take_slot(vd_index *ix)
{
    if (ix->n_free) return ix->free_slots[--ix->n_free];
    uint32_t s = ix->n_slots;
    ST_REL(&ix->n_slots, s + 1);
    return s;
}

/* Writer and inserters: the orphan queue has room for every slot (reserve_slots). */
void vd_index__queue_orphan(vd_index *ix, uint32_t x)
{
    uint8_t expect = 0;
    if (!__atomic_compare_exchange_n(&ix->omark[x], &expect, (uint8_t)1, 0, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
        return;
    if (ix->mt) pthread_mutex_lock(&ix->dirty_lock);
    ix->orphans[ix->n_orphans++] = x;
    if (ix->n_orphans > ix->hw_orphans) ST_RLX(&ix->hw_orphans, ix->n_orphans);
    if (ix->mt) pthread_mutex_unlock(&ix->dirty_lock);
}

void vd_index__trim_lists(vd_index *ix)
{
    /* Below 64 KB the pages stay: a daemon clears after every group of writes. */
    size_t keep = table_bytes(ix->n_dirty, sizeof(uint32_t));
    size_t used = table_bytes(ix->hw_dirty, sizeof(uint32_t));
    if (used <= keep + ((size_t)64 << 10)) return;
    madvise((uint8_t *)ix->dirty_list + keep, used - keep, MADV_DONTNEED);
    ST_RLX(&ix->hw_dirty, ix->n_dirty);
}

/* ---- level generator ---------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* floor(-ln(u) / ln(M)) for u uniform in (0, 1], capped at VD_LEVEL_MAX: the paper's level
 * distribution, P(level >= l) = M^-l. */
unsigned vd_index__random_level(vd_index *ix)
{
    double u = (double)((splitmix64(&ix->rng) >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    double l = -log(u) * ix->level_mult;
    return l >= VD_LEVEL_MAX ? VD_LEVEL_MAX : (unsigned)l;
}

/* ---- per-thread scratch ------------------------------------------------------------------ */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local vd_scratch *tls_scratch;

static void scratch_destroy(void *p)
{
    vd_scratch *sc = p;
    if (!sc) return;
    vd_free(sc->tags);
    vd_free(sc->c);
    vd_free(sc->w);
    vd_free(sc->s);
    vd_free(sc->h);
    vd_free(sc->q);
    vd_free(sc->q8);
    vd_free(sc->fr);
    vd_free(sc);
}

static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_destroy); }

vd_scratch *vd_scratch_get(void)
{
    if (tls_scratch) return tls_scratch;
    pthread_once(&scratch_once, scratch_key_init);
    vd_scratch *sc = vd_calloc(1, sizeof *sc);
    if (!sc) return NULL;
    tls_scratch = sc;
    pthread_setspecific(scratch_key, sc);
    return sc;
}

vd_status vd_scratch_grow_tags(vd_scratch *sc, size_t n)
{
    size_t old = sc->n_tags;
    void *p = sc->tags;
    if (grow_array(&p, &sc->n_tags, n, sizeof(uint16_t), 1024)) return VD_NOMEM;
    sc->tags = p;
    memset(sc->tags + old, 0, (sc->n_tags - old) * sizeof(uint16_t)); /* new tags: unvisited */
    return VD_OK;
}

vd_status vd_cands_grow(vd_cand **a, size_t *cap, size_t want)
{
    void *p = *a;
    vd_status st = grow_array(&p, cap, want, sizeof **a, 256);
    *a = p;
    return st;
}

/* ---- open / close ------------------------------------------------------------------------ */

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
    /* The beam of an insert holds at least m candidates, as hnswlib's: with fewer, a node
     * cannot get its m links, lists stay near-empty and reconnection has no candidates with
     * room (m 2 with ef_construction 1 left a quarter of the points unreachable). The
     * parameter is kept as given (stored, reported); only the beam is widened. */
    ix->efc = efc > m ? efc : m;
    ix->level_mult = 1.0 / log((double)m);
    ix->quant = q.quantization == VD_QUANT_INT8;
    ix->rep_bytes = ix->quant ? sizeof(vd_q8) + ix->dim : 4 * (size_t)ix->dim;
    size_t links = 4 + 4 * (size_t)ix->m0, rep = ix->rep_bytes;
    if (!ix->quant) {
        /* Float: [links][header][pad to 16][vector], padded to cache lines (a 128-d block is
         * 704 bytes either way); the header right before the vector. */
        ix->list_off = 0;
        ix->hdr_off = (links + 7) & ~(size_t)7;
        ix->vec_off = (ix->hdr_off + sizeof(vd_node) + 15) & ~(size_t)15;
        ix->nodes.stride = (ix->vec_off + rep + 63) & ~(size_t)63;
    } else {
        /* int8: [header][codes][links], padded to 8 (the header's alignment; the kernels load
         * unaligned). The header still touches the codes' first line, and the 4-byte links
         * need no pad after a 4-byte-multiple vd_q8: at 100 dims 272 bytes where [links]
         * [header][codes] took 280 (a pad after the 132-byte links), 288 with 16-byte and 320
         * with 64-byte alignment - 3-15 % of the memory int8 exists to save, for a block
         * that spans as many lines where the search reads it. */
        ix->hdr_off = 0;
        ix->vec_off = sizeof(vd_node);
        ix->list_off = (ix->vec_off + rep + 3) & ~(size_t)3;
        ix->nodes.stride = (ix->list_off + links + 7) & ~(size_t)7;
    }
    unsigned shift = 10;
    while (shift < 24 && ((uint64_t)1 << shift) < p->capacity_hint) shift++;
    ix->nodes.shift = shift;
    ix->upper.stride = ((size_t)ix->m + 2) * sizeof(uint32_t); /* [count][m links][next] */
    ix->upper.shift = shift > 14 ? shift - 4 : 10;
    ix->upper_free = VD_SLOT_NONE;
    ix->entry = VD_SLOT_NONE;
    ix->visible_epoch = 0;
    ix->write_epoch = 1;
    ix->ef_search = vd_param_info_of(VD_PARAM_EF_SEARCH)->def;
    ix->effort_per_ef = 20.0f; /* query.c: the priors until searches measure them */
    ix->effort_descent = 0.0f;
    ix->effort_hops = 1.2f;
    ix->rng = p->seed;
    ix->map.ix = ix;
    ix->stripes = vd_malloc(VD_N_STRIPES * sizeof(pthread_mutex_t));
    ix->rbuf = vd_malloc(VD_REPAIR_CAP(ix) * sizeof(vd_cand));
    ix->rslots = vd_malloc(VD_REPAIR_CAP(ix) * sizeof(uint32_t));
    /* Sized for the hint at once: a load of n points then never rehashes. */
    if (!ix->stripes || !ix->rbuf || !ix->rslots ||
        vd_idmap_reserve(&ix->map, p->capacity_hint > 16 ? p->capacity_hint : 16)) {
        vd_err_set(err, VD_NOMEM, "out of memory for the index");
        goto fail;
    }
    for (unsigned i = 0; i < VD_N_STRIPES; i++) pthread_mutex_init(&ix->stripes[i], NULL);
    *out = ix;
    return VD_OK;
fail:
    if (ix && ix->stripes) { /* not initialized yet: close must not destroy them */
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
    vd_idmap_free(&ix->map);
    if (ix->stripes) {
        for (unsigned i = 0; i < VD_N_STRIPES; i++) pthread_mutex_destroy(&ix->stripes[i]);
        vd_free(ix->stripes);
    }
    pthread_mutex_destroy(&ix->ep_lock);
    pthread_mutex_destroy(&ix->dirty_lock);
    vd_free(ix->free_slots);
    vd_free(ix->pending);
    void *t[5] = {ix->dirty, ix->omark, ix->indeg, ix->dirty_list, ix->orphans};
    for (int i = 0; i < 5; i++) table_free(t[i], ix->cap_side[i], side_size[i]);
    vd_free(ix->rbuf);
    vd_free(ix->rslots);
    vd_free(ix->pend_vec);
    vd_free(ix->pend_slot);
    vd_free(ix->pend_map);
    vd_free(ix);
}

const vd_index_params *vd_index_params_of(const vd_index *ix) { return &ix->p; }

void vd_index_set_ef_search(vd_index *ix, uint32_t ef)
{
    ST_RLX(&ix->ef_search, ef ? ef : vd_param_info_of(VD_PARAM_EF_SEARCH)->def);
}

size_t vd_index_count(const vd_index *ix) { return LD_ACQ(&ix->n_visible); }

vd_status vd_index_get(const vd_index *ix, uint64_t id, float *out, vd_err *err)
{
    uint32_t slot;
    if (!ix || !out) return vd_err_set(err, VD_INVALID, "index and out are required");
    if (!vd_idmap_get(&ix->map, id, &slot))
        return vd_err_set(err, VD_NOTFOUND, "id %" PRIu64 " not found", id);
    const float *v = ix->quant ? vd_index__pend_get(ix, slot) : vd_index__rep(ix, slot);
    if (!v)
        return vd_err_set(err, VD_NOTFOUND, "id %" PRIu64 ": the int8 index keeps no float "
                          "vector", id);
    memcpy(out, v, ix->dim * sizeof(float));
    return VD_OK;
}

vd_status vd_index_vector_matches(const vd_index *ix, uint64_t id, const float *vec,
                                  vd_err *err)
{
    uint32_t slot;
    if (!ix || !vec) return vd_err_set(err, VD_INVALID, "index and vector are required");
    if (!vd_idmap_get(&ix->map, id, &slot))
        return vd_err_set(err, VD_NOTFOUND, "id %" PRIu64 " not found", id);
    int same;
    if (ix->quant) {
        uint8_t buf[sizeof(vd_q8) + VD_DIM_MAX];
        vd_index__encode(ix, buf, vec);
        same = memcmp(buf, vd_index__rep(ix, slot), ix->rep_bytes) == 0;
    } else {
        same = memcmp(vec, vd_index__rep(ix, slot), ix->rep_bytes) == 0;
    }
    if (!same)
        return vd_err_set(err, VD_CORRUPT, "id %" PRIu64 ": the vector differs from the %s the "
                          "index holds", id, ix->quant ? "codes" : "vector");
    return VD_OK;
}

/* ---- vector checks ----------------------------------------------------------------------- */

vd_status vd_index__check_vector(const vd_index *ix, const float *v, const char *what,
                                 double *inv, vd_err *err)
{
    uint32_t bad;
    double s = vd_index__norm2(v, ix->dim, &bad);
    if (bad < ix->dim || (ix->metric == VD_METRIC_COSINE && s == 0)) {
        vd_vector_check((vd_metric)ix->metric, v, ix->dim, err); /* the message, off the hot path */
        return vd_err_prefix(err, "%s", what);
    }
    *inv = ix->metric == VD_METRIC_COSINE ? 1.0 / sqrt(s) : 1.0;
    return VD_OK;
}

void vd_index__store_vector(const vd_index *ix, float *dst, const float *src, double inv)
{
    if (ix->metric != VD_METRIC_COSINE) {
        memcpy(dst, src, ix->dim * sizeof(float));
        return;
    }
    for (uint32_t i = 0; i < ix->dim; i++) dst[i] = (float)(src[i] * inv);
}

void vd_quantize_i8(const float *v, size_t dim, int8_t *codes, float *scale)
{
    float mx = 0;
    for (size_t i = 0; i < dim; i++) mx = fmaxf(mx, fabsf(v[i]));
    float s = mx / 127.0f, inv = mx > 0 ? 127.0f / mx : 0;
    for (size_t i = 0; i < dim; i++) {
        long c = lrintf(v[i] * inv); /* |v[i] x inv| <= 127, so never beyond +-127 */
        codes[i] = (int8_t)(c > 127 ? 127 : c < -127 ? -127 : c);
    }
    *scale = s;
}

void vd_index__encode(const vd_index *ix, void *dst, const float *v)
{
    if (!ix->quant) {
        memcpy(dst, v, ix->dim * sizeof(float));
        return;
    }
    vd_q8 *r = dst;
    vd_quantize_i8(v, ix->dim, r->c, &r->scale);
    r->norm2 = r->scale * r->scale * (float)vd_kern_dot_i8(r->c, r->c, ix->dim);
}

/* ---- pending floats (int8) -----------------------------------------------------------------
 * An int8 index keeps no float vectors, but storage writes a new slot's vector record from
 * vd_index_slot_vector after the insert. So the normalized floats of each slot filled since
 * the last vd_index_changes_clear are held here, found through a small open-addressing map,
 * and dropped when the clear says storage has them (a bulk build holds them all until its
 * import: the memory the float index would have held anyway). */

static size_t pmap_home(uint32_t slot, size_t cap)
{
    return (size_t)((slot * 0x9e3779b1u) >> 8) & (cap - 1);
}

/* Rebuilds the map for the n_pend entries at capacity cap (a power of two). */
static vd_status pmap_build(vd_index *ix, size_t cap)
{
    uint32_t *m = vd_calloc(2 * cap, sizeof(uint32_t)); /* keys, then values */
    if (!m) return VD_NOMEM;
    for (size_t e = 0; e < ix->n_pend; e++) {
        size_t h = pmap_home(ix->pend_slot[e], cap);
        while (m[h]) h = (h + 1) & (cap - 1);
        m[h] = ix->pend_slot[e] + 1;
        m[cap + h] = (uint32_t)e;
    }
    vd_free(ix->pend_map);
    ix->pend_map = m;
    ix->cap_pmap = cap;
    return VD_OK;
}

vd_status vd_index__pend_reserve(vd_index *ix, size_t n)
{
    size_t want = ix->n_pend + n;
    if (!ix->quant || want <= ix->cap_pend) return VD_OK;
    size_t cap = ix->cap_pend ? ix->cap_pend : 64;
    while (cap < want) cap *= 2;
    float *v = vd_realloc(ix->pend_vec, cap * ix->dim * sizeof(float));
    if (!v) return VD_NOMEM;
    ix->pend_vec = v;
    uint32_t *sl = vd_realloc(ix->pend_slot, cap * sizeof(uint32_t));
    if (!sl) return VD_NOMEM;
    ix->pend_slot = sl;
    ix->cap_pend = cap;
    return pmap_build(ix, 2 * cap);
}

float *vd_index__pend_add(vd_index *ix, uint32_t slot)
{
    size_t cap = ix->cap_pmap, h = pmap_home(slot, cap);
    while (ix->pend_map[h] && ix->pend_map[h] != slot + 1) h = (h + 1) & (cap - 1);
    if (ix->pend_map[h]) /* a slot freed and refilled before a clear: its entry again */
        return ix->pend_vec + (size_t)ix->pend_map[cap + h] * ix->dim;
    size_t e = ix->n_pend++;
    ix->pend_map[h] = slot + 1;
    ix->pend_map[cap + h] = (uint32_t)e;
    ix->pend_slot[e] = slot;
    return ix->pend_vec + e * ix->dim;
}

const float *vd_index__pend_get(const vd_index *ix, uint32_t slot)
{
    if (!ix->n_pend) return NULL;
    size_t cap = ix->cap_pmap;
    for (size_t h = pmap_home(slot, cap); ix->pend_map[h]; h = (h + 1) & (cap - 1))
        if (ix->pend_map[h] == slot + 1) return ix->pend_vec + ix->pend_map[cap + h] * ix->dim;
    return NULL;
}

void vd_index__pend_prune(vd_index *ix)
{
    size_t n = 0;
    for (size_t e = 0; e < ix->n_pend; e++) {
        uint32_t s = ix->pend_slot[e];
        if ((ix->dirty[s] & 3) != VD_CHANGE_NEW) continue;
        if (n != e) {
            ix->pend_slot[n] = s;
            memcpy(ix->pend_vec + n * ix->dim, ix->pend_vec + e * ix->dim,
                   ix->dim * sizeof(float));
        }
        n++;
    }
    ix->n_pend = n;
    if (n == 0) { /* the common case after every write group: give the memory back */
        vd_free(ix->pend_vec);
        vd_free(ix->pend_slot);
        vd_free(ix->pend_map);
        ix->pend_vec = NULL;
        ix->pend_slot = NULL;
        ix->pend_map = NULL;
        ix->cap_pend = ix->cap_pmap = 0;
        vd_index__account(ix);
        return;
    }
    if (pmap_build(ix, ix->cap_pmap)) { /* no memory for a new map: drop it in place */
        memset(ix->pend_map, 0, 2 * ix->cap_pmap * sizeof(uint32_t));
        for (size_t e = 0; e < n; e++) {
            size_t h = pmap_home(ix->pend_slot[e], ix->cap_pmap);
            while (ix->pend_map[h]) h = (h + 1) & (ix->cap_pmap - 1);
            ix->pend_map[h] = ix->pend_slot[e] + 1;
            ix->pend_map[ix->cap_pmap + h] = (uint32_t)e;
        }
    }
}

/* ---- memory accounting, stats ------------------------------------------------------------- */

void vd_index__account(vd_index *ix)
{
    size_t b = sizeof *ix + VD_N_STRIPES * sizeof(pthread_mutex_t) +
               ix->map.cap * sizeof(uint32_t) +
               (ix->cap_free + ix->cap_pending) * sizeof(uint32_t) +
               ix->cap_pend * (ix->dim * sizeof(float) + sizeof(uint32_t)) +
               ix->cap_pmap * 2 * sizeof(uint32_t);
    ST_RLX(&ix->bytes_aux, b);
    ST_RLX(&ix->bytes_map, ix->map.cap * sizeof(uint32_t));
}

void vd_index_stats_get(const vd_index *ix, vd_index_stats *out)
{
    memset(out, 0, sizeof *out);
    size_t visible = LD_RLX(&ix->n_visible);
    out->n_visible = visible;
    out->n_slots = LD_ACQ(&ix->n_slots);
    out->n_deleted = LD_RLX(&ix->n_tomb);
    uint32_t ep = LD_ACQ(&ix->entry);
    out->max_level = ep == VD_SLOT_NONE ? 0 : LD_RLX(&ix->max_level);
    out->bytes_vectors = visible * ix->rep_bytes;
    /* Level-0 lists of live points plus their share of upper blocks (~1/(M-1) of them). */
    out->bytes_links = visible * (4 + 4 * (size_t)ix->m0) +
                       visible / (ix->m > 1 ? ix->m - 1 : 1) * (4 + 4 * (size_t)ix->m);
    /* What is resident: blocks and side-table entries up to the high-water slot (the arenas
     * and tables map more, untouched), the lists' entries written since their last trim. */
    out->bytes_blocks = out->n_slots * ix->nodes.stride;
    out->bytes_upper = (size_t)LD_RLX(&ix->n_upper) * ix->upper.stride;
    out->bytes_slot_tables = out->n_slots * (side_size[0] + side_size[1] + side_size[2]) +
                             (LD_RLX(&ix->hw_dirty) + LD_RLX(&ix->hw_orphans)) * sizeof(uint32_t);
    out->bytes_id_map = LD_RLX(&ix->bytes_map);
    out->bytes_other = LD_RLX(&ix->bytes_aux) - out->bytes_id_map;
    out->block_stride = ix->nodes.stride;
    out->block_header = sizeof(vd_node);
    out->block_links = 4 + 4 * (size_t)ix->m0;
    out->block_pad = ix->nodes.stride - out->block_links - out->block_header - ix->rep_bytes;
    out->bytes_total = out->bytes_blocks + out->bytes_upper + out->bytes_slot_tables +
                       LD_RLX(&ix->bytes_aux);
    out->simd = vd_dist_simd_name();
    out->simd_int8 = vd_dist_simd_int8_name();
    out->quantization = ix->quant ? VD_QUANT_INT8 : VD_QUANT_NONE;
}
