/* index/query.c: the query entry points - vd_index_search, vd_index_search_opts (the
 * filtered search and its planner), vd_index_search_exact - over the traversals of search.c.
 *
 * Unfiltered: greedy descent, the level-0 beam (search.c), the k nearest out of the beam; if
 * it comes back with fewer than k visible points while more exist (a large unpublished batch
 * or many tombstones around the query), the exact scan, so n_out < k only when fewer points
 * are visible.
 *
 * Filtered. A filter names the slots that may be returned (vd_slot_filter). The planner
 * picks per query, from the share s of visible points the filter allows (its count, a
 * popcount of its bitmap, or a sample of 64 visible slots):
 *   - EXACT: scan the allowed slots (the bitmap's bits, next(), or every visible slot through
 *     allow()) when that costs less than the traversal is expected to. Both are counted in
 *     traversal distances: an exact-scan distance costs W_SCAN of one (ascending slots
 *     prefetch well: GloVe 19 vs 70 ns, fashion-mnist 51 vs 200 ns), so cost_exact =
 *     W_SCAN x n_allowed (+ the allow() calls of a scan without bitmap or next()).
 *   - GRAPH: the filtered traversal of search.c with ef scaled by mu(s) = 1 + (SEL_S0/s)^2 (a
 *     thin predicate subgraph needs a wider beam for the accuracy the unfiltered search has at
 *     ef: GloVe 200k at 1 %, recall 0.77 at ef 64 and 0.94 at 256 against 0.97 unfiltered at
 *     64), expected to cost D + ef' x e x (1 + h x (1 - s)): D the descent's effort, e the
 *     beam's per unit of ef, h what a filter's hops add, all three learned from the index's
 *     own searches (learn_effort). An effort cap of
 *     cost_exact ends a traversal that costs more than the scan would have: a wrong estimate
 *     costs at most twice the scan.
 *   - ONE_HOP: from s >= ONEHOP_MIN_S, when cheaper than both: the unfiltered descent and
 *     beam (every neighbour measured, every node in the beam of ef' = max(ef, ONEHOP_C ef / s)),
 *     the allowed visible nodes met collected (search.c). Expected to cost D + ef' x e, what the
 *     unfiltered search costs at ef': the two-hop traversal's lists and checks are what kept
 *     a 50 % filter at 0.2-0.37x the unfiltered QPS at twice its ef.
 *   - GRAPH_THEN_EXACT: a traversal hit the cap, found fewer than k allowed points, or met an
 *     anti-correlated filter (search.c's probes) where a WIDEN-fold beam would cost more than
 *     the scan: the exact scan answers, so the answer always
 *     has exactly min(k, allowed visible points) hits, whatever the estimates said.
 * The figures come from sweeps of selectivity (100 %, 50 %, 10 %, 1 %, 0.1 %) and ef (16-512)
 * on GloVe (200k), fashion-mnist and clustered synthetic data, recording recall, distances,
 * lists read and thread CPU time per query for each plan (docs/architecture.md, "Filtered
 * search").
 *
 * allow() runs at most once per slot per search: its answer is kept in the visited tags
 * (four states, index_int.h), which the exact scan after a traversal reads too.
 *
 * Rejected: post-filtering an unfiltered search with a larger k (the answer is short as
 * soon as the filter is selective, and anti-correlated filters return nothing); a fixed
 * "scan below N matches" threshold (the break-even moves with ef, selectivity and data: the
 * effort per ef differs 2.7x between fashion-mnist and GloVe); a constant effort per ef for
 * the same reason; traversing every rejected node with a distance while only allowed ones
 * fill the beam (hnswlib's filter: the cost grows as 1/s); the one-hop plan below 30 % (forced
 * at 10 % on fashion-mnist it hit its effort cap on half the queries: 0.12-0.19x the
 * unfiltered QPS, against 0.30x for the two-hop traversal); at 50 %, the traversal of the
 * allowed nodes alone, no hop lists (GloVe's k50, medians of 3 alternating passes: recall
 * 0.950 at ef 384 and 1,275 QPS, where the one-hop plan gives 0.950 at ef 192 and 2,025 QPS;
 * hops for 8, 16 or 32 new allowed nodes per expansion, the two-hop's, 1,140-1,200). */
#include <math.h>
#include <stdlib.h>

#include "index/index_int.h"

/* ---- the cost model (see the note above) -------------------------------------------------- */
#define W_SCAN 0.25      /* a distance of the exact scan, in traversal distances */
#define W_ALLOW 0.1      /* an allow() call (a bitmap test costs nothing: it is not counted) */
#define W_SLOT 0.02      /* a visibility check of the exact scan without next() or bits */
#define SEL_S0 0.03      /* ef is scaled by mu(s) = 1 + (SEL_S0 / s)^2 */
#define LEARN_EVERY 16   /* a thread feeds one search in this many to the learned effort */
#define SAMPLE 64        /* slots sampled when the filter cannot count */
#define SEEDS 32         /* allowed slots a bitmap or next() gives the traversal as entries */
#define ONEHOP_MIN_S 0.3 /* the one-hop traversal is considered from this share up */
#define ONEHOP_C 0.5     /* its beam is ef x ONEHOP_C / s (onehop_ef) */
/* An anti-correlated probe (search.c) widens the traversal's beam WIDEN-fold when that is
 * expected to cost less than the exact scan. GloVe's rank < 34048 (the 10 % most frequent
 * words), where the probe fires on 302 of 500 queries: at ef 16, recall 0.966 at 1,014-1,160
 * QPS answering them by the scan, 0.958 at 3,507 widened 8-fold, 0.942 at 5,549 4-fold (the
 * bench's scan of a contiguous copy: 2,439). fashion-mnist's label == other costs more to
 * widen than to scan and keeps the scan. */
#define WIDEN 8u

/* A link list read, in traversal distances: a cache miss (~80 ns) against a distance of
 * ~51 + 0.19 x dim ns (GloVe 100-d: 70 ns, fashion-mnist 784-d: 200 ns). */
static double w_hop(uint32_t dim)
{
    return 80.0 / (51.0 + 0.19 * (double)dim);
}

static inline double learned(const float *v)
{
    float e;
    __atomic_load(v, &e, __ATOMIC_RELAXED);
    return e;
}

/* Moves *v 1/32 of the way to obs when obs is within [lo, hi). Like the reader counters, a
 * statistic readers write: racing updates lose one another, which only slows learning. */
static void learn(const float *cv, double obs, double lo, double hi)
{
    if (!(obs >= lo && obs < hi)) return;
    float *v = (float *)cv, now = (float)(learned(v) + (obs - learned(v)) / 32.0);
    __atomic_store(v, &now, __ATOMIC_RELAXED);
}

/* What a search costs, in effort (distances + w_hop x lists read), learned from the index's
 * own searches, one in LEARN_EVERY per thread: `total` of which `descent` went to the greedy
 * descent (0 when not measured: the learned D is taken off), at ef, share s (1 unfiltered),
 * `hops` set for a two-hop traversal. The descent (D) does not grow with ef and the beam
 * (e per unit of ef) does. All three differ by data more than any constant could hide: as
 * learned over bench-filter's runs, fashion-mnist D 60, e 11, h 0.39; GloVe D 112, e 17,
 * h 2.0. h, what a filter's hops add per unit of ef', is (beam effort / (ef' e) - 1) /
 * (1 - s). At fashion-mnist's ef 10, D is a third of a search. The model this replaced,
 * ef' x e x (1 + 1.2 (1 - s)) with e learned from whole searches, sent fashion-mnist's 10 %
 * filter at twice the unfiltered ef to the exact scan, at 0.55x the traversal's speed. */
static void learn_effort(const vd_index *ix, double total, double descent, uint32_t ef,
                         double s, int hops)
{
    static _Thread_local unsigned tick;
    if (++tick % LEARN_EVERY || ef == 0) return;
    if (descent > 0) learn(&ix->effort_descent, descent, 0.0, 1e6);
    double beam_effort = total - (descent > 0 ? descent : learned(&ix->effort_descent));
    if (!hops) {
        learn(&ix->effort_per_ef, beam_effort / ef, 0.5, 1e6);
        return;
    }
    double e = learned(&ix->effort_per_ef);
    if (1.0 - s >= 0.2 && e > 0) /* else too little signal */
        learn(&ix->effort_hops, (beam_effort / ((double)ef * e) - 1.0) / (1.0 - s), 0.0, 50.0);
}

static inline double effort_per_ef(const vd_index *ix) { return learned(&ix->effort_per_ef); }

const char *vd_search_plan_name(vd_search_plan p)
{
    switch (p) {
    case VD_PLAN_GRAPH: return "graph";
    case VD_PLAN_EXACT: return "exact";
    case VD_PLAN_GRAPH_THEN_EXACT: return "graph_then_exact";
    case VD_PLAN_ONE_HOP: return "one_hop";
    }
    return "unknown";
}

/* ---- hits -------------------------------------------------------------------------------- */

static int hit_cmp(const vd_rhit *x, const vd_rhit *y)
{
    if (x->d < y->d) return -1;
    if (x->d > y->d) return 1;
    return (x->id > y->id) - (x->id < y->id);
}
static int hit_qcmp(const void *a, const void *b) { return hit_cmp(a, b); }

/* Room for n hits in the scratch. */
static vd_status hits_reserve(vd_scratch *sc, size_t n, vd_err *err)
{
    if (sc->cap_h >= n) return VD_OK;
    vd_rhit *h = vd_realloc(sc->h, n * sizeof(vd_rhit));
    if (!h) return vd_err_set(err, VD_NOMEM, "out of memory for %zu hits", n);
    sc->h = h;
    sc->cap_h = n;
    return VD_OK;
}

/* The k nearest hits so far of an exact scan: a max-heap by (distance, id) in sc->h. */
typedef struct topk {
    vd_rhit *h;
    size_t n;
    uint32_t k;
} topk;

static void topk_offer(topk *t, vd_rhit x)
{
    vd_rhit *h = t->h;
    if (t->n < t->k) { /* sift up */
        size_t i = t->n++;
        while (i) {
            size_t pa = (i - 1) / 2;
            if (hit_cmp(&h[pa], &x) >= 0) break;
            h[i] = h[pa];
            i = pa;
        }
        h[i] = x;
        return;
    }
    if (hit_cmp(&x, &h[0]) >= 0) return;
    size_t i = 0; /* x replaces the farthest: sift down */
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= t->n) break;
        if (c + 1 < t->n && hit_cmp(&h[c + 1], &h[c]) > 0) c++;
        if (hit_cmp(&x, &h[c]) >= 0) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* What a distance must not exceed to matter (bounded l2 distances stop past it). */
static inline float topk_bound(const topk *t)
{
    return t->n < t->k ? INFINITY : t->h[0].d;
}

/* ---- the query ------------------------------------------------------------------------ */

/* A query made ready: the float vector (normalized under cosine) and the rep the traversals
 * compare with nodes (the same floats, or their int8 codes); hits wanted and the number of
 * candidates to re-rank (int8 with a source: rerank x k, else k). */
typedef struct prepared {
    const float *f;
    const void *rep;
    uint32_t k, n_rerank;
    const vd_vector_source *source;
} prepared;

/* Common argument checks; on success *qy is ready. */
static vd_status prepare_query(const vd_index *ix, vd_scratch **scp, const float *query_vec,
                               uint32_t k, const vd_hit *hits, uint32_t *n_out, prepared *qy,
                               vd_err *err)
{
    if (n_out) *n_out = 0;
    if (!ix || !query_vec || !hits || !n_out)
        return vd_err_set(err, VD_INVALID, "index, query, hits and n_out are required");
    if (k == 0) return vd_err_set(err, VD_INVALID, "k must be at least 1");
    double inv;
    vd_status st = vd_index__check_vector(ix, query_vec, "query", &inv, err);
    if (st) return st;
    vd_scratch *sc = vd_scratch_get();
    if (!sc) return vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
    *scp = sc;
    qy->f = query_vec;
    qy->k = qy->n_rerank = k;
    if (ix->metric == VD_METRIC_COSINE) {
        if (sc->cap_q < ix->dim) {
            float *q = vd_realloc(sc->q, ix->dim * sizeof(float));
            if (!q) return vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
            sc->q = q;
            sc->cap_q = ix->dim;
        }
        vd_index__store_vector(ix, sc->q, query_vec, inv);
        qy->f = sc->q;
    }
    qy->rep = qy->f;
    if (ix->quant) {
        if (sc->cap_q8 < ix->rep_bytes) {
            void *q8 = vd_realloc(sc->q8, ix->rep_bytes);
            if (!q8) return vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
            sc->q8 = q8;
            sc->cap_q8 = ix->rep_bytes;
        }
        vd_index__encode(ix, sc->q8, qy->f);
        qy->rep = sc->q8;
    }
    return VD_OK;
}

/* The float distance of the query to a stored vector (the kernel under the metric). */
static inline float float_dist(const vd_index *ix, const float *q, const float *v)
{
    return vd_index__dist_below_m(ix->metric, ix->dim, q, v, INFINITY);
}

/* int8: re-scores the n hits of sc->h with the exact float distance of each vector the source
 * has (the others keep their code distance), sorts them and keeps the k nearest. Float
 * indexes and int8 without a source only sort. */
static size_t finish_hits(const vd_index *ix, vd_scratch *sc, const prepared *qy, size_t n,
                          vd_search_counts *cnt)
{
    if (ix->quant && qy->source)
        for (size_t i = 0; i < n; i++) {
            const float *v = qy->source->get(qy->source->ctx, sc->h[i].slot, sc->h[i].id);
            if (!v) continue;
            sc->h[i].d = float_dist(ix, qy->f, v);
            cnt->reranked++;
        }
    if (n > 32) {
        qsort(sc->h, n, sizeof *sc->h, hit_qcmp);
    } else { /* k hits, most often 10: an insertion sort without qsort's calls */
        for (size_t i = 1; i < n; i++) {
            vd_rhit x = sc->h[i];
            size_t j = i;
            for (; j > 0 && hit_cmp(&sc->h[j - 1], &x) > 0; j--) sc->h[j] = sc->h[j - 1];
            sc->h[j] = x;
        }
    }
    return n < qy->k ? n : qy->k;
}

/* ---- exact scans ------------------------------------------------------------------------- */

static inline int visible(const vd_node *nd, uint64_t v)
{
    return LD_ACQ(&nd->born) <= v && v < LD_ACQ(&nd->died);
}

/* Offers slot s (visibility already checked: nd) to the scan's heap. */
static inline void scan_take(const vd_index *ix, const prepared *qy, uint32_t s, const vd_node *nd,
                             topk *t, vd_search_counts *cnt)
{
    cnt->distances++;
    float d = vd_index__dist_below(ix, qy->rep, vd_index__rep(ix, s), topk_bound(t));
    topk_offer(t, (vd_rhit){nd->id, d, s});
}

/* Every visible point: the n_rerank nearest into sc->h (*n of them), finished. */
static vd_status exact_scan(const vd_index *ix, vd_scratch *sc, const prepared *qy, size_t *n,
                            vd_search_counts *cnt, vd_err *err)
{
    vd_status st = hits_reserve(sc, qy->n_rerank, err);
    if (st) return st;
    topk t = {sc->h, 0, qy->n_rerank};
    unsigned p = vd_index__reader_enter(ix);
    uint64_t v = LD_ACQ(&ix->visible_epoch);
    uint32_t ns = LD_ACQ(&ix->n_slots);
    for (uint32_t s = 0; s < ns; s++) {
        const vd_node *nd = vd_index__node(ix, s);
        if (visible(nd, v)) scan_take(ix, qy, s, nd, &t, cnt);
    }
    *n = finish_hits(ix, sc, qy, t.n, cnt);
    vd_index__reader_exit(ix, p);
    return VD_OK;
}

/* Up to cap allowed slots >= from, ascending, into out: from the bitmap, or next(). */
static size_t next_allowed(const vd_slot_filter *f, uint32_t from, uint32_t *out, size_t cap)
{
    if (!f->bits) {
        size_t got = f->next(f->ctx, from, out, cap);
        return got > cap ? cap : got; /* a broken filter */
    }
    size_t n = 0;
    for (uint64_t w = from >> 6; w < ((uint64_t)f->n_bits + 63) >> 6 && n < cap; w++) {
        uint64_t b = f->bits[w];
        if (w == from >> 6) b &= ~(uint64_t)0 << (from & 63);
        while (b && n < cap) {
            uint64_t s = w * 64 + (uint64_t)__builtin_ctzll(b);
            if (s >= f->n_bits) break;
            out[n++] = (uint32_t)s;
            b &= b - 1;
        }
    }
    return n;
}

/* The exact scan prefetches node header and vector this many slots ahead when the slot is
 * not the one after its predecessor: scattered ascending slots defeat the hardware
 * prefetcher, consecutive ones it streams itself, and prefetching those as well costs (GloVe
 * in one run, against the bench's scan of a contiguous copy: 1 % random slots 0.97x without
 * prefetch, 1.2x with; rank < 3405, slots 0..3404, 0.88x without, 0.64x with). */
#define SCAN_AHEAD 4
/* ... and further ahead, SCAN_DEEP_LINES lines in flight (16 GloVe nodes, 9 of fashion-
 * mnist's), when the lines the scan reads exceed SCAN_DEEP_BYTES: such a set is not cache
 * resident, its scan waits on memory, and 4 nodes in flight are too few to hide that. GloVe,
 * the exact plan forced, medians of 4 alternating passes in one process (bench-filter):
 * 10 % keyword (34k scattered slots, 15 MB of lines) 957 -> 1,728 QPS at 16 nodes ahead
 * (1,809 at 24, 1,742 at 32), len >= 12 (27k, 12 MB) 1,578 -> 2,284. Small sets lose by it:
 * GloVe's 1 % (1.6 MB) -2 % at 16, fashion-mnist's 1 % and 0.1 % (191 and 27 nodes) -10 %,
 * hence the threshold. */
#define SCAN_DEEP_LINES 112u
#define SCAN_DEEP_BYTES ((double)(4u << 20))

/* How the scan prefetches: `ahead` nodes ahead, `lines` lines of each. A set past
 * SCAN_DEEP_BYTES gets whole nodes; a smaller one at most SCAN_NODE_LINES of each (the rest
 * streams). Whole nodes everywhere cost fashion-mnist's small sets 8-9 % (bench-filter's 1 %
 * keyword 91,298 -> 83,650 QPS, 0.1 % 512,697 -> 480,094); capped everywhere, its
 * label == other (2,000 nodes of 52 lines, 6.6 MB) ran at 4,257 QPS against 5,346 whole. */
#define SCAN_NODE_LINES 12u
typedef struct scan_prefetch {
    size_t ahead, lines;
} scan_prefetch;

static scan_prefetch scan_prefetch_for(const vd_index *ix, double n_allowed)
{
    size_t all = vd_index__node_lines(ix), lines = all > SCAN_NODE_LINES ? SCAN_NODE_LINES : all;
    if (n_allowed * (double)all * 64.0 < SCAN_DEEP_BYTES) return (scan_prefetch){SCAN_AHEAD, lines};
    size_t a = SCAN_DEEP_LINES / all;
    return (scan_prefetch){a < SCAN_AHEAD ? SCAN_AHEAD : a > 16 ? 16 : a, all};
}

/* Offers the visible ones of n allowed slots (ascending, from the bitmap or next()) to the
 * scan's heap; for one metric (always inlined, as search.c's beam loops: no switch per
 * distance). A slot past ns (added since the search began) is skipped. */
static inline __attribute__((always_inline)) void
scan_slots_m(const vd_index *ix, const void *q, const uint32_t *sl, size_t n, uint32_t ns,
             scan_prefetch pf, uint64_t v, topk *t, vd_search_counts *cnt, int metric, int quant)
{
    const uint32_t dim = ix->dim;
    const size_t hdr_off = ix->hdr_off, vec_off = ix->vec_off, ahead = pf.ahead, lines = pf.lines;
    float bound = topk_bound(t);
    for (size_t i = 0; i < n && i < ahead; i++)
        if (sl[i] < ns && (i == 0 || sl[i] != sl[i - 1] + 1))
            vd_index__prefetch_node(ix, sl[i], lines);
    for (size_t i = 0; i < n; i++) {
        size_t j = i + ahead;
        if (j < n && sl[j] < ns && sl[j] != sl[j - 1] + 1)
            vd_index__prefetch_node(ix, sl[j], lines);
        if (sl[i] >= ns) continue;
        const uint8_t *blk = vd_arena_at(&ix->nodes, sl[i]);
        const vd_node *nd = (const vd_node *)(blk + hdr_off);
        if (!visible(nd, v)) continue;
        cnt->distances++;
        float d = vd_index__rdist_m(metric, quant, dim, q, blk + vec_off, bound);
        if (d > bound) continue; /* ties go to the heap: it orders them by id */
        topk_offer(t, (vd_rhit){nd->id, d, sl[i]});
        bound = topk_bound(t);
    }
}

static void scan_slots(const vd_index *ix, const void *q, const uint32_t *sl, size_t n,
                       uint32_t ns, scan_prefetch pf, uint64_t v, topk *t, vd_search_counts *cnt)
{
#define SCAN(metric, quant) scan_slots_m(ix, q, sl, n, ns, pf, v, t, cnt, metric, quant)
    VD_INDEX_SPECIALISE(ix, SCAN)
#undef SCAN
}

/* The n_rerank nearest allowed visible points into sc->h (*n of them, finished), inside the
 * caller's grace period, at the traversal's epoch. Through the bitmap or next() when the
 * filter has one (the set enumerated in batches, each scanned with prefetch); otherwise
 * every visible slot, asking allow() only for those the traversal (same tags) has not
 * already classified. */
static vd_status exact_filtered(const vd_index *ix, vd_scratch *sc, const prepared *qy,
                                vd_fsearch *fs, double n_allowed, size_t *n, vd_err *err)
{
    vd_status st = hits_reserve(sc, qy->n_rerank, err);
    if (st) return st;
    topk t = {sc->h, 0, qy->n_rerank};
    const vd_slot_filter *f = fs->f;
    uint32_t ns = LD_ACQ(&ix->n_slots);
    if (f->next || f->bits) {
        uint32_t buf[512], from = 0;
        scan_prefetch pf = scan_prefetch_for(ix, n_allowed);
        for (;;) {
            size_t got = next_allowed(f, from, buf, VD_ARRAY_LEN(buf));
            if (got == 0) break;
            uint32_t last = buf[got - 1];
            size_t keep = 0; /* a broken next() may go backwards: only slots >= from count */
            for (size_t i = 0; i < got; i++)
                if (buf[i] >= from) buf[keep++] = buf[i];
            scan_slots(ix, qy->rep, buf, keep, ns, pf, fs->v, &t, &fs->cnt);
            if (last < from || (uint64_t)last + 1 >= ns) break; /* done, or not ascending */
            from = last + 1;
        }
    } else {
        for (uint32_t s = 0; s < ns; s++) {
            const vd_node *nd = vd_index__node(ix, s);
            if (!visible(nd, fs->v)) continue;
            if ((st = vd_scratch_tags(sc, (size_t)s + 1)))
                return vd_err_set(err, st, "out of memory for search scratch");
            unsigned tag = vd_index__fs_tag(sc, fs, s);
            if (tag >= VD_TAG_STATES ? vd_index__fs_allow(sc, fs, s)
                                     : tag == VD_TAG_OK || tag == VD_TAG_MET_OK)
                scan_take(ix, qy, s, nd, &t, &fs->cnt);
        }
    }
    *n = finish_hits(ix, sc, qy, t.n, &fs->cnt);
    return VD_OK;
}

vd_status vd_index_search_exact(const vd_index *ix, const float *query_vec, uint32_t k,
                                vd_hit *hits, uint32_t *n_out, vd_err *err)
{
    vd_scratch *sc = NULL;
    prepared qy = {0};
    vd_search_counts cnt = {0};
    size_t n = 0;
    vd_status st = prepare_query(ix, &sc, query_vec, k, hits, n_out, &qy, err);
    if (st || (st = exact_scan(ix, sc, &qy, &n, &cnt, err))) return st;
    for (size_t i = 0; i < n; i++) hits[i] = (vd_hit){sc->h[i].id, sc->h[i].d};
    *n_out = (uint32_t)n;
    return VD_OK;
}

/* ---- graph searches ---------------------------------------------------------------------- */

/* Moves the r nearest of a traversal's results w (nw entries, any order; reordered) into
 * sc->h and finishes them (the k nearest, sorted; int8 re-ranked); their number into *n. A
 * partial quicksort picks them: popping the max-heap down to r, then r more, was 12 % of an
 * int8 GloVe query in perf (ef 192, r 20). */
static vd_status take_nearest(const vd_index *ix, vd_scratch *sc, const prepared *qy, vd_cand *w,
                              size_t nw, size_t *n, vd_search_counts *cnt, vd_err *err)
{
    size_t r = nw < qy->n_rerank ? nw : qy->n_rerank;
    vd_status st = hits_reserve(sc, r, err);
    if (st) return st;
    vd_index__cands_sort_first(w, nw, r);
    for (size_t i = 0; i < r; i++)
        sc->h[i] = (vd_rhit){vd_index__node(ix, w[i].slot)->id, w[i].d, w[i].slot};
    *n = finish_hits(ix, sc, qy, r, cnt);
    return VD_OK;
}

/* Beam search from the entry point into sc->h: the k nearest visible points (finished), their
 * number into *n; *descent the counts as the descent left them. Inside the reader's grace
 * period. */
static vd_status beam(const vd_index *ix, vd_scratch *sc, const prepared *qy, uint32_t ef,
                      size_t *n, vd_search_counts *cnt, vd_search_counts *descent, vd_err *err)
{
    uint64_t v = LD_ACQ(&ix->visible_epoch);
    uint32_t ep = LD_ACQ(&ix->entry);
    size_t nw = 0;
    *n = 0;
    if (ep == VD_SLOT_NONE) return VD_OK;
    if (vd_scratch_tags(sc, LD_ACQ(&ix->n_slots)))
        return vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
    vd_cand cur = {vd_index__dist(ix, qy->rep, vd_index__rep(ix, ep)), ep};
    cnt->distances++;
    cur = vd_index__greedy(ix, qy->rep, cur, vd_index__node(ix, ep)->level, 0, cnt);
    *descent = *cnt;
    vd_status st = vd_index__search_layer(ix, sc, qy->rep, &cur, 1, 0, ef, VD_MODE_READ, v,
                                          VD_SLOT_NONE, &nw, cnt);
    if (st) return vd_err_set(err, st, "out of memory for search scratch");
    return take_nearest(ix, sc, qy, sc->w, nw, n, cnt, err);
}

/* Allowed visible slots spread over the slot range, up to SEEDS more of them, appended to
 * seeds[*n] (room for SEEDS more): the first allowed slot at or after each of SEEDS evenly
 * spaced positions, through the bitmap or next(), so without any allow() call. Without
 * either, the seeds are the allowed slots of the sample selectivity() took. Tags them OK. */
static void collect_seeds(const vd_index *ix, vd_scratch *sc, vd_fsearch *fs, uint32_t *seeds,
                          size_t *n)
{
    const vd_slot_filter *f = fs->f;
    uint32_t ns = LD_ACQ(&ix->n_slots);
    if ((!f->next && !f->bits) || ns == 0) return;
    for (uint32_t i = 0; i < SEEDS; i++) {
        uint32_t from = (uint32_t)(((uint64_t)2 * i + 1) * ns / (2 * SEEDS)), x = 0;
        if (next_allowed(f, from, &x, 1) != 1 || x < from || x >= ns) continue;
        if (vd_index__fs_tag(sc, fs, x) < VD_TAG_STATES) continue;
        int ok = visible(vd_index__node(ix, x), fs->v);
        sc->tags[x] = (uint16_t)(fs->g + (ok ? VD_TAG_OK : VD_TAG_REJ));
        if (ok) seeds[(*n)++] = x;
    }
}

/* The filtered traversal (search.c) into sc->h, from the seeds (allowed, tagged OK) and the
 * descent; fs set up by the caller. Inside the reader's grace period. */
static vd_status filtered_beam(const vd_index *ix, vd_scratch *sc, const prepared *qy,
                               uint32_t ef, vd_fsearch *fs, const uint32_t *seeds,
                               size_t n_seeds, size_t *n, vd_err *err)
{
    uint32_t ep = LD_ACQ(&ix->entry);
    *n = 0;
    if (ep == VD_SLOT_NONE) return VD_OK;
    vd_status st = VD_OK;
    if (vd_cands_reserve(&sc->w, &sc->cap_w, (size_t)ef + 1) ||
        vd_cands_reserve(&sc->c, &sc->cap_c, n_seeds + 1))
        return vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
    for (size_t i = 0; i < n_seeds; i++) {
        vd_cand e = {vd_index__dist(ix, qy->rep, vd_index__rep(ix, seeds[i])), seeds[i]};
        fs->cnt.distances++;
        vd_minheap_push(sc->c, &fs->nc, e);
        vd_maxheap_push(sc->w, &fs->nw, e);
        if (fs->nw > ef) vd_maxheap_pop(sc->w, &fs->nw);
    }
    vd_cand cur = {vd_index__dist(ix, qy->rep, vd_index__rep(ix, ep)), ep};
    fs->cnt.distances++;
    cur = vd_index__greedy_filtered(ix, sc, qy->rep, cur, vd_index__node(ix, ep)->level, ef, fs,
                                    &st);
    if (!st) {
        vd_cand bridge = cur;
        if (vd_index__fs_tag(sc, fs, cur.slot) == VD_TAG_OK) bridge.slot = VD_SLOT_NONE;
        st = vd_index__search_filtered(ix, sc, qy->rep, bridge, ef, fs);
    }
    if (st) return vd_err_set(err, st, "out of memory for search scratch");
    return take_nearest(ix, sc, qy, sc->w, fs->nw, n, &fs->cnt, err);
}
/* The one-hop traversal (search.c) into sc->h: the unfiltered descent, then the level-0 beam
 * of ef over every node, the allowed ones met returned. Inside the reader's grace period. */
static vd_status onehop_beam(const vd_index *ix, vd_scratch *sc, const prepared *qy,
                             uint32_t ef, vd_fsearch *fs, size_t *n, vd_err *err)
{
    uint32_t ep = LD_ACQ(&ix->entry);
    *n = 0;
    if (ep == VD_SLOT_NONE) return VD_OK;
    vd_cand cur = {vd_index__dist(ix, qy->rep, vd_index__rep(ix, ep)), ep};
    fs->cnt.distances++;
    cur = vd_index__greedy(ix, qy->rep, cur, vd_index__node(ix, ep)->level, 0, &fs->cnt);
    vd_status st = vd_index__search_onehop(ix, sc, qy->rep, cur, ef, qy->n_rerank, fs);
    if (st) return vd_err_set(err, st, "out of memory for search scratch");
    return take_nearest(ix, sc, qy, sc->s, fs->nw, n, &fs->cnt, err); /* its results heap */
}

/* ---- the planner ------------------------------------------------------------------------- */

/* The share of visible points the filter allows: its count, or a sample of SAMPLE visible
 * slots spread over the slot range (their answers stay in the tags; the allowed ones are
 * appended to seeds[*n_seeds], room for SAMPLE). */
static double selectivity(const vd_index *ix, vd_scratch *sc, vd_fsearch *fs, size_t n_vis,
                          uint32_t *seeds, size_t *n_seeds)
{
    const vd_slot_filter *f = fs->f;
    if (n_vis == 0) return 0;
    uint64_t n_allowed = f->n_allowed;
    if (n_allowed == VD_FILTER_COUNT_UNKNOWN && f->bits) { /* 1M slots: ~16k words, a few us */
        n_allowed = 0;
        for (uint32_t w = 0; w < ((uint64_t)f->n_bits + 63) >> 6; w++) {
            uint64_t b = f->bits[w];
            if ((uint64_t)w * 64 + 64 > f->n_bits) b &= ~(~(uint64_t)0 << (f->n_bits & 63));
            n_allowed += (uint64_t)__builtin_popcountll(b);
        }
    }
    if (n_allowed != VD_FILTER_COUNT_UNKNOWN)
        return n_allowed >= n_vis ? 1.0 : (double)n_allowed / (double)n_vis;
    uint32_t ns = LD_ACQ(&ix->n_slots), seen = 0, yes = 0;
    uint64_t step = ns > SAMPLE ? (uint64_t)ns / SAMPLE : 1;
    for (uint64_t s = step / 2; s < ns && seen < SAMPLE; s += step) {
        const vd_node *nd = vd_index__node(ix, (uint32_t)s);
        if (!visible(nd, fs->v)) continue;
        seen++;
        if (vd_index__fs_tag(sc, fs, (uint32_t)s) >= VD_TAG_STATES &&
            vd_index__fs_allow(sc, fs, (uint32_t)s)) {
            seeds[(*n_seeds)++] = (uint32_t)s;
            yes++;
        }
    }
    return (yes + 0.5) / (seen + 1.0); /* never 0 or 1 from a sample */
}

/* A beam width the planner computed, clamped to VD_EF_MAX. */
static uint32_t ef_clamp(double e)
{
    return e >= VD_EF_MAX ? VD_EF_MAX : (uint32_t)e;
}

/* The ef a filtered traversal needs for the accuracy the unfiltered search has at ef: below
 * a few percent, the predicate subgraph thins out and recall at a given ef drops (GloVe
 * 200k at 1 %: 0.77 at ef 64, 0.94 at ef 256, against 0.97 unfiltered at ef 64). */
static uint32_t scaled_ef(uint32_t ef, double s)
{
    double r = SEL_S0 / (s > 1e-6 ? s : 1e-6);
    return ef_clamp((double)ef * (1.0 + r * r));
}

/* The one-hop traversal's beam for ef at selectivity s: ef x ONEHOP_C / s, at least ef. The
 * beam holds about s x its width allowed points; ONEHOP_C / s makes that ef x ONEHOP_C,
 * which at 50 % is the beam itself (fashion-mnist at 2x the unfiltered ef of recall 0.95:
 * recall 0.98; at ef, GloVe 0.950, fashion-mnist 0.966 one step up the sweep). */
static uint32_t onehop_ef(uint32_t ef, double s)
{
    double e = (double)ef * ONEHOP_C / (s > 1e-6 ? s : 1e-6);
    return ef_clamp(e < ef ? ef : e);
}

/* The expected effort of a filtered traversal with ef at selectivity s, in distances. */
static double graph_cost(const vd_index *ix, uint32_t ef, double s)
{
    return learned(&ix->effort_descent) +
           (double)ef * effort_per_ef(ix) * (1.0 + learned(&ix->effort_hops) * (1.0 - s));
}

/* The filtered search under the planner (or the plan forced), inside the grace period:
 * hits into sc->h. */
static vd_status filtered(const vd_index *ix, vd_scratch *sc, const prepared *qy, uint32_t ef,
                          vd_search_plan force, vd_fsearch *fs, vd_search_explain *ex,
                          size_t *n, vd_err *err)
{
    size_t n_vis = vd_index_count(ix), n_seeds = 0;
    uint32_t ns = LD_ACQ(&ix->n_slots), seeds[SAMPLE + SEEDS];
    double s = selectivity(ix, sc, fs, n_vis, seeds, &n_seeds), n_allowed = s * (double)n_vis;
    double cost_exact = n_allowed * W_SCAN;
    if (!fs->f->next && !fs->f->bits) cost_exact += (double)ns * W_SLOT + (double)n_vis * W_ALLOW;
    uint32_t ef_graph = scaled_ef(ef, s);
    double cost_graph = graph_cost(ix, ef_graph, s);
    ex->selectivity = s;
    ex->cost_exact = cost_exact;
    ex->cost_graph = cost_graph;
    *n = 0;
    ex->plan = VD_PLAN_EXACT;
    if (fs->f->n_allowed == 0) return VD_OK;
    uint32_t ef_one = onehop_ef(ef, s);
    double cost_one = learned(&ix->effort_descent) + (double)ef_one * effort_per_ef(ix);
    if (force == VD_PLAN_ONE_HOP ||
        (!force && s >= ONEHOP_MIN_S && cost_one < cost_graph && cost_one < cost_exact)) {
        ex->plan = VD_PLAN_ONE_HOP;
        ex->ef = ef_one;
        ex->cost_graph = cost_one;
        fs->cap = force ? INFINITY : cost_exact;
        fs->sel = s;
        vd_status st = onehop_beam(ix, sc, qy, ef_one, fs, n, err);
        if (st) return st;
        if (!fs->aborted && *n >= qy->k) {
            learn_effort(ix, vd_fsearch_effort(fs), 0, ef_one, s, 0);
            return VD_OK;
        }
        ex->plan = VD_PLAN_GRAPH_THEN_EXACT;
        ex->fallback = fs->aborted ? (vd_search_fallback)fs->aborted : VD_FALLBACK_SHORT;
        return exact_filtered(ix, sc, qy, fs, n_allowed, n, err);
    }
    if (force == VD_PLAN_GRAPH || (!force && cost_graph < cost_exact)) {
        ex->plan = VD_PLAN_GRAPH;
        ex->ef = ef_graph;
        fs->cap = force ? INFINITY : cost_exact;
        fs->sel = s;
        uint32_t ef_wide = ef_clamp((double)ef_graph * WIDEN);
        if (graph_cost(ix, ef_wide, s) < cost_exact) fs->ef_wide = ef_wide;
        collect_seeds(ix, sc, fs, seeds, &n_seeds); /* after the sample's */
        vd_status st = filtered_beam(ix, sc, qy, ef_graph, fs, seeds, n_seeds, n, err);
        if (st) return st;
        if (fs->widened) ex->ef = fs->ef_wide; /* the beam the traversal ended with */
        if (!fs->aborted && *n >= qy->k) {
            learn_effort(ix, vd_fsearch_effort(fs), 0, ex->ef, s, 1);
            return VD_OK;
        }
        ex->plan = VD_PLAN_GRAPH_THEN_EXACT;
        ex->fallback = fs->aborted ? (vd_search_fallback)fs->aborted : VD_FALLBACK_SHORT;
    }
    return exact_filtered(ix, sc, qy, fs, n_allowed, n, err);
}

/* ---- entry points ------------------------------------------------------------------------ */

vd_status vd_index_search_opts(const vd_index *ix, const float *query_vec, const vd_search_opts *o,
                               vd_hit *hits, uint32_t *n_out, vd_err *err)
{
    vd_scratch *sc = NULL;
    prepared qy = {0};
    vd_search_explain ex_local, *ex = o && o->explain ? o->explain : &ex_local;
    memset(ex, 0, sizeof *ex);
    if (n_out) *n_out = 0;
    if (!o) return vd_err_set(err, VD_INVALID, "search options are required");
    if (o->filter && !o->filter->allow && !o->filter->bits)
        return vd_err_set(err, VD_INVALID, "search filter has neither allow() nor bits");
    if (o->plan && o->plan != VD_PLAN_GRAPH && o->plan != VD_PLAN_EXACT &&
        o->plan != VD_PLAN_ONE_HOP)
        return vd_err_set(err, VD_INVALID, "search plan %d cannot be forced", (int)o->plan);
    uint32_t rerank = 0;
    vd_status st = vd_param_resolve(VD_PARAM_RERANK, o->rerank, &rerank, err);
    if (st || (st = prepare_query(ix, &sc, query_vec, o->k, hits, n_out, &qy, err))) return st;
    uint32_t k = o->k, ef = o->ef;
    if (ef == 0) ef = LD_RLX(&ix->ef_search);
    if (ef < k) ef = k;
    if (ix->quant && o->source) {
        /* int8: the best rerank x k by code distance get their float distance (at most ef of
         * them from a traversal: the beam holds ef). */
        qy.source = o->source;
        uint64_t r = (uint64_t)rerank * k;
        qy.n_rerank = r > UINT32_MAX ? UINT32_MAX : (uint32_t)r;
    }
    size_t n = 0;
    vd_search_counts cnt = {0};
    vd_fsearch fs = {.f = o->filter, .k = k, .w_hop = w_hop(ix->dim), .w_allow = W_ALLOW,
                     .want = ix->m0};
    unsigned p = vd_index__reader_enter(ix);
    if (!o->filter) {
        ex->plan = VD_PLAN_GRAPH;
        ex->ef = ef;
        ex->selectivity = 1;
        vd_search_counts dc = {0};
        st = beam(ix, sc, &qy, ef, &n, &cnt, &dc, err);
        if (!st)
            learn_effort(ix, vd_fsearch_effort_of(&fs, &cnt), vd_fsearch_effort_of(&fs, &dc),
                         ef, 1.0, 0);
    } else if (vd_scratch_tags(sc, LD_ACQ(&ix->n_slots))) {
        st = vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
    } else {
        fs.v = LD_ACQ(&ix->visible_epoch);
        fs.g = vd_scratch_visit_begin_n(sc, VD_TAG_STATES);
        st = filtered(ix, sc, &qy, ef, o->plan, &fs, ex, &n, err);
        cnt = fs.cnt;
    }
    vd_index__reader_exit(ix, p);
    /* Unfiltered, the beam can come back short when most nodes around are invisible (a large
     * unpublished batch, many tombstones): then the scan keeps the "fewer than k only when
     * fewer points are visible" promise. */
    if (!st && !o->filter && n < k && n < vd_index_count(ix)) {
        ex->plan = VD_PLAN_GRAPH_THEN_EXACT;
        ex->fallback = VD_FALLBACK_SHORT;
        st = exact_scan(ix, sc, &qy, &n, &cnt, err);
    }
    if (st) return st;
    for (size_t i = 0; i < n; i++) hits[i] = (vd_hit){sc->h[i].id, sc->h[i].d};
    *n_out = (uint32_t)n;
    ex->nodes_visited = cnt.expanded;
    ex->distances = cnt.distances;
    ex->filter_calls = cnt.allows;
    ex->reranked = cnt.reranked;
    return VD_OK;
}

vd_status vd_index_search(const vd_index *ix, const float *query_vec, uint32_t k, uint32_t ef,
                          vd_hit *hits, uint32_t *n_out, vd_err *err)
{
    vd_search_opts o = {.k = k, .ef = ef};
    return vd_index_search_opts(ix, query_vec, &o, hits, n_out, err);
}

uint64_t vd_index_slot_id(const vd_index *ix, uint32_t slot)
{
    if (!ix || slot >= LD_ACQ(&ix->n_slots)) return VD_ID_NONE;
    const vd_node *nd = vd_index__node(ix, slot);
    if (LD_ACQ(&nd->born) == VD_EPOCH_NEVER) return VD_ID_NONE;
    return nd->id;
}
