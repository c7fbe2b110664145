/* index/search.c: traversing the graph: greedy descent, the layer beam search (used by
 * queries, inserts and reconnections alike) and the filtered traversal; query.c drives them.
 *
 * The beam: a min-heap of candidates and a bounded max-heap of results (ef). Only accepted
 * nodes (visible ones for a query, live ones for a build) enter the results; the others are
 * still expanded, so a removed or unpublished node never cuts a path. Neighbours are
 * filtered through the visited tags first, their node headers prefetched, then distances
 * computed while the vectors some neighbours later are prefetched (pf_ahead); the next
 * candidate's link list, every line of it, is prefetched when one is popped (its first line
 * alone: GloVe 3-5 % fewer QPS, its last link a miss). The tags of a list are prefetched in
 * a loop of their own before they are tested: tested at once, each miss waited behind the
 * branch on the one before (GloVe's 340k tags are 680 KB; float +3-10 %, int8 +1-4 %;
 * fashion-mnist's 40 KB and 100k x 128 within the noise). Prefetching the node headers in
 * that loop as well, visited or not, cost 5-8 %.
 *
 * The filtered traversal (after ACORN-1, Patel et al. 2024, and Qdrant's filterable HNSW)
 * keeps the beam on allowed nodes: only they get a distance. Rejected neighbours of an
 * expanded node (not allowed, or not visible) are hops: their own links are scanned for
 * allowed nodes, so a filter that allows 1 % of the points still sees a connected graph
 * (two hops reach ~M^2 nodes). The new allowed nodes of one expansion are truncated at 2M,
 * direct neighbours first. Two more things keep selective and anti-correlated filters
 * connected: the descent through the upper levels checks every node it measures and seeds
 * the beam with the allowed ones (the upper levels are a sample of the whole set, so they
 * pass matches far from the query's own cluster), and when the beam runs dry with fewer
 * than k results the rejected nodes seen so far are measured and traversed as bridges. An
 * effort cap (query.c's cost model) ends a traversal that would cost more than the exact
 * scan. Dense filters (30 % and more) take the one-hop traversal instead: the unfiltered
 * beam (every neighbour measured, rejected nodes navigated, the beam counting them) with the
 * allowed nodes met collected into a second heap - at high selectivity the hops and checks
 * cost more than the distances they save. Rejected: ACORN-gamma's denser build (M x gamma links per node: memory for every
 * query's sake, and our filters are not known at build time); computing distances for
 * rejected nodes (hnswlib's filtered search: cost grows as 1/selectivity).
 *
 * Speed. The beam loops (search_layer_m, search_filtered_m) are always inlined into one copy
 * per metric, so the kernel is inlined without a switch per distance; under l2 every
 * distance is bounded by the one a candidate must beat (vd_kern_l2sq_below: most 784-dim
 * candidates are rejected after a fraction of their vector). The heaps, tags, node
 * addressing and kernels are static inline in index_int.h for the same reason.
 *
 * Rejected: 32-bit visited tags (twice the cache footprint, to save one memset every 65535
 * traversals). */
#include <stdlib.h>

#include "index/index_int.h"

/* The beams prefetch vectors ahead of the one being computed, about PF_LINES cache lines in
 * flight counting at most 12 lines a vector (GloVe's 7-line vectors: 8 ahead), the filtered
 * traversal PF_LINES_FILTERED (16 ahead: its batch of allowed nodes is known once the hops
 * are read). GloVe, medians of 4 alternating passes in one process (bench-filter):
 * unfiltered at ef 192 4,791 QPS 2 ahead (the old constant), 5,200-5,494 4 ahead, 5,684 6,
 * 5,805 8, 5,554 12; the traversal at 10 %, ef 128, 2,105 at 2, 2,564 at 8, 2,649 at 16,
 * 2,669 at 24. fashion-mnist's 49-line vectors (4 ahead, each prefetched whole) were flat
 * from 2 to 6 ahead, with their prefetch capped at 11 lines and again whole. */
#define PF_LINES 56u
#define PF_LINES_FILTERED 112u

static inline uint32_t pf_ahead(const vd_index *ix, uint32_t lines_in_flight)
{
    size_t lines = (ix->rep_bytes + 63) / 64;
    size_t a = lines_in_flight / (lines < 12 ? lines : 12);
    return a < 2 ? 2 : a > 16 ? 16 : (uint32_t)a;
}

/* The visited tags of the n links of list, prefetched before any is tested (top note). */
static inline void prefetch_tags(const vd_scratch *sc, const uint32_t *list, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t x = LD_RLX(&list[1 + i]);
        if (x < sc->n_tags) __builtin_prefetch(&sc->tags[x]);
    }
}

static inline int accept(const vd_node *nd, int mode, uint64_t v)
{
    if (mode == VD_MODE_BUILD) return LD_RLX(&nd->died) == VD_EPOCH_NEVER;
    return LD_ACQ(&nd->born) <= v && v < LD_ACQ(&nd->died);
}

vd_cand vd_index__greedy(const vd_index *ix, const void *q, vd_cand cur, unsigned from,
                         unsigned to, vd_search_counts *cnt)
{
    for (unsigned l = from; l > to; l--) {
        int changed = 1;
        while (changed) {
            changed = 0;
            const uint32_t *list = vd_index__list(ix, cur.slot, l);
            uint32_t n = LD_ACQ(&list[0]);
            if (n > ix->m) n = ix->m;
            if (cnt) {
                cnt->expanded++;
                cnt->distances += n;
            }
            for (uint32_t i = 0; i < n; i++) {
                uint32_t x = LD_ACQ(&list[1 + i]);
                float d = vd_index__dist_below(ix, q, vd_index__rep(ix, x), cur.d);
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

/* Visits the entries of a beam search: every one becomes a candidate, the accepted ones
 * results (the ef nearest). */
static inline __attribute__((always_inline)) vd_status
seed_beam(const vd_index *ix, vd_scratch *sc, const vd_cand *ent, size_t n_ent, uint32_t ef,
          int mode, uint64_t v, size_t *nc, size_t *nw)
{
    for (size_t i = 0; i < n_ent; i++) {
        uint32_t s = ent[i].slot;
        if (vd_scratch_tags(sc, (size_t)s + 1)) return VD_NOMEM;
        if (sc->tags[s] == sc->gen) continue;
        sc->tags[s] = sc->gen;
        vd_minheap_push(sc->c, nc, ent[i]);
        if (accept(vd_index__node(ix, s), mode, v)) {
            vd_maxheap_push(sc->w, nw, ent[i]);
            if (*nw > ef) vd_maxheap_pop(sc->w, nw);
        }
    }
    return VD_OK;
}

/* vd_index__search_layer for one metric. Always inlined into one copy per metric so the
 * kernel is inlined without a switch per distance. */
static inline __attribute__((always_inline)) vd_status
search_layer_m(const vd_index *ix, vd_scratch *sc, const void *q, const vd_cand *ent,
               size_t n_ent, unsigned level, uint32_t ef, int mode, uint64_t v, uint32_t skip,
               size_t *n_w, vd_search_counts *cnt, int metric, int quant)
{
    size_t nc = 0, nw = 0, n_exp = 0, n_dist = 0;
    const uint32_t dim = ix->dim, maxl = vd_index__max_links(ix, level);
    const size_t hdr_off = ix->hdr_off, vec_off = ix->vec_off;
    const uint32_t ahead = pf_ahead(ix, PF_LINES);
    if (vd_cands_reserve(&sc->w, &sc->cap_w, (size_t)ef + 1) ||
        vd_cands_reserve(&sc->c, &sc->cap_c, (size_t)ef + n_ent + maxl + 1))
        return VD_NOMEM;
    vd_scratch_visit_begin(sc);
    if (skip != VD_SLOT_NONE && skip < sc->n_tags) sc->tags[skip] = sc->gen;
    if (seed_beam(ix, sc, ent, n_ent, ef, mode, v, &nc, &nw)) return VD_NOMEM;
    uint16_t *tags = sc->tags, gen = sc->gen;
    float bound = nw >= ef ? sc->w[0].d : INFINITY;
    uint32_t nb[2 * VD_M_MAX];
    const uint8_t *bp[2 * VD_M_MAX];

    while (nc) {
        vd_cand c = sc->c[0];
        if (c.d > bound) break;
        vd_minheap_pop(sc->c, &nc);
        if (nc && level == 0) vd_index__prefetch_list0(ix, sc->c[0].slot);
        const uint32_t *list = vd_index__list(ix, c.slot, level);
        uint32_t n = LD_ACQ(&list[0]), k = 0;
        if (n > maxl) n = maxl;
        prefetch_tags(sc, list, n);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t x = LD_ACQ(&list[1 + i]);
            if (x >= sc->n_tags) { /* a slot added since the search began */
                if (vd_scratch_grow_tags(sc, (size_t)x + 1)) return VD_NOMEM;
                tags = sc->tags;
            }
            if (tags[x] == gen) continue;
            tags[x] = gen;
            nb[k] = x;
            bp[k] = vd_arena_at(&ix->nodes, x);
            __builtin_prefetch(bp[k] + hdr_off);
            k++;
        }
        if (vd_cands_reserve(&sc->c, &sc->cap_c, nc + k)) return VD_NOMEM;
        n_exp++;
        n_dist += k;
        for (uint32_t i = 0; i < k && i < ahead; i++) vd_index__prefetch_rep_rest(ix, bp[i]);
        for (uint32_t i = 0; i < k; i++) {
            if (i + ahead < k) /* the rest of a later vector while this one is computed */
                vd_index__prefetch_rep_rest(ix, bp[i + ahead]);
            float d = vd_index__rdist_m(metric, quant, dim, q, bp[i] + vec_off, bound);
            if (nw < ef || d < bound) {
                vd_cand e = {d, nb[i]};
                vd_minheap_push(sc->c, &nc, e);
                if (accept((const vd_node *)(bp[i] + hdr_off), mode, v)) {
                    vd_maxheap_push(sc->w, &nw, e);
                    if (nw > ef) vd_maxheap_pop(sc->w, &nw);
                    if (nw >= ef) bound = sc->w[0].d;
                }
            }
        }
    }
    *n_w = nw;
    if (cnt) {
        cnt->expanded += n_exp;
        cnt->distances += n_dist + n_ent;
    }
    return VD_OK;
}

vd_status vd_index__search_layer(const vd_index *ix, vd_scratch *sc, const void *q,
                                 const vd_cand *ent, size_t n_ent, unsigned level, uint32_t ef,
                                 int mode, uint64_t v, uint32_t skip, size_t *n_w,
                                 vd_search_counts *cnt)
{
    vd_status st;
#define LAYER(metric, quant) \
    st = search_layer_m(ix, sc, q, ent, n_ent, level, ef, mode, v, skip, n_w, cnt, metric, quant)
    VD_INDEX_SPECIALISE(ix, LAYER)
#undef LAYER
    return st;
}

/* ---- filtered traversal ------------------------------------------------------------------ */

/* Appends x to the frontier of rejected nodes (sc->fr) a dry beam may bridge through. */
static inline vd_status fr_append(vd_scratch *sc, vd_fsearch *fs, uint32_t x)
{
    if (fs->n_fr == sc->cap_fr) {
        size_t cap = sc->cap_fr;
        if (vd_index__grow_u32(&sc->fr, &cap, fs->n_fr + 1)) return VD_NOMEM;
        sc->cap_fr = cap;
    }
    sc->fr[fs->n_fr++] = x;
    return VD_OK;
}

/* The allowed visible node e enters the beam (candidates and results) unless the results
 * are full of nearer ones. sc->w has room for ef + 1. */
static inline vd_status fs_push(vd_scratch *sc, vd_fsearch *fs, vd_cand e, uint32_t ef)
{
    if (fs->nw >= ef && e.d >= sc->w[0].d) return VD_OK;
    if (vd_cands_reserve(&sc->c, &sc->cap_c, fs->nc + 1)) return VD_NOMEM;
    vd_minheap_push(sc->c, &fs->nc, e);
    vd_maxheap_push(sc->w, &fs->nw, e);
    if (fs->nw > ef) vd_maxheap_pop(sc->w, &fs->nw);
    return VD_OK;
}

/* Tags cover slot x (a slot added since the search began may be past them). */
static inline vd_status fs_cover(vd_scratch *sc, uint32_t x)
{
    return x < sc->n_tags ? VD_OK : vd_scratch_grow_tags(sc, (size_t)x + 1);
}

/* Whether the unseen node x, whose vector is being read anyway, may be returned: allowed,
 * then visible. Sets its tag. */
static inline int fs_check(const vd_index *ix, vd_scratch *sc, vd_fsearch *fs, uint32_t x)
{
    if (!vd_index__fs_allow(sc, fs, x)) return 0;
    if (vd_index__fs_visible(vd_index__node(ix, x), fs)) return 1;
    sc->tags[x] = (uint16_t)(fs->g + VD_TAG_REJ);
    return 0;
}

vd_cand vd_index__greedy_filtered(const vd_index *ix, vd_scratch *sc, const void *q,
                                  vd_cand cur, unsigned from, uint32_t ef, vd_fsearch *fs,
                                  vd_status *st)
{
    *st = VD_OK;
    if (vd_cands_reserve(&sc->w, &sc->cap_w, (size_t)ef + 1) || fs_cover(sc, cur.slot)) {
        *st = VD_NOMEM;
        return cur;
    }
    if (vd_index__fs_tag(sc, fs, cur.slot) >= VD_TAG_STATES) {
        if (fs_check(ix, sc, fs, cur.slot)) *st = fs_push(sc, fs, cur, ef);
        else *st = fr_append(sc, fs, cur.slot);
    }
    for (unsigned l = from; l > 0 && !*st; l--) {
        int changed = 1;
        while (changed && !*st) {
            changed = 0;
            const uint32_t *list = vd_index__list(ix, cur.slot, l);
            uint32_t n = LD_ACQ(&list[0]);
            if (n > ix->m) n = ix->m;
            fs->cnt.expanded++;
            fs->cnt.distances += n;
            for (uint32_t i = 0; i < n && !*st; i++) {
                uint32_t x = LD_ACQ(&list[1 + i]);
                if ((*st = fs_cover(sc, x))) break;
                const void *xv = vd_index__rep(ix, x);
                /* A newly allowed node needs its exact distance to enter the beam; any other
                 * only has to beat the current one. */
                float d;
                if (vd_index__fs_tag(sc, fs, x) >= VD_TAG_STATES && fs_check(ix, sc, fs, x)) {
                    d = vd_index__dist(ix, q, xv);
                    *st = fs_push(sc, fs, (vd_cand){d, x}, ef);
                } else {
                    d = vd_index__dist_below(ix, q, xv, cur.d);
                }
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

/* The beam ran dry with too few results: every rejected node seen so far (the frontier)
 * is measured and becomes a bridge candidate, so the traversal can cross a region where
 * nothing matches. Returns how many were added. */
static size_t fs_bridge(const vd_index *ix, vd_scratch *sc, const void *q, vd_fsearch *fs,
                        vd_status *st)
{
    size_t added = 0;
    for (size_t i = 0; i < fs->n_fr; i++) {
        uint32_t x = sc->fr[i];
        unsigned t = vd_index__fs_tag(sc, fs, x);
        if (t != VD_TAG_REJ && t != VD_TAG_HOP) continue;
        if (vd_cands_reserve(&sc->c, &sc->cap_c, fs->nc + 1)) {
            *st = VD_NOMEM;
            break;
        }
        sc->tags[x] = (uint16_t)(fs->g + VD_TAG_BRIDGE);
        vd_cand e = {vd_index__dist(ix, q, vd_index__rep(ix, x)), x};
        vd_minheap_push(sc->c, &fs->nc, e);
        fs->cnt.distances++;
        added++;
    }
    fs->n_fr = 0;
    return added;
}

/* Collects the new allowed neighbours of candidate c into nb (returns how many, at most
 * maxl): its direct neighbours first, then, through each rejected one (a hop), that node's
 * own neighbours (vd_index__hop_links of them). Every hop list is prefetched before the
 * first is read. Rejected direct neighbours join the frontier. Visibility is checked later,
 * with the distance. */
static inline uint32_t fs_expand(const vd_index *ix, vd_scratch *sc, vd_fsearch *fs,
                                 uint32_t c, uint32_t *nb, uint32_t *checked, vd_status *st)
{
    const uint32_t maxl = ix->m0;
    const uint32_t *list = vd_index__list0(ix, c);
    uint32_t n = LD_ACQ(&list[0]), k = 0, h = 0, hop[2 * VD_M_MAX], seen = 0;
    if (n > maxl) n = maxl;
    fs->cnt.expanded++;
    prefetch_tags(sc, list, n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t x = LD_ACQ(&list[1 + i]);
        if ((*st = fs_cover(sc, x))) return 0;
        unsigned t = vd_index__fs_tag(sc, fs, x);
        if (t >= VD_TAG_STATES) {
            seen++;
            if (vd_index__fs_allow(sc, fs, x)) {
                nb[k++] = x;
                continue;
            }
            if ((*st = fr_append(sc, fs, x))) return 0;
        } else if (t != VD_TAG_REJ) {
            continue;
        }
        hop[h++] = x;
        vd_index__prefetch_hop(ix, x);
    }
    for (uint32_t j = 0; j < h && k < fs->want; j++) {
        uint32_t x = hop[j];
        sc->tags[x] = (uint16_t)(fs->g + VD_TAG_HOP);
        const uint32_t *xl = vd_index__list0(ix, x);
        uint32_t xn = LD_ACQ(&xl[0]), xcap = vd_index__hop_links(ix, xl);
        if (xn > xcap) xn = xcap;
        fs->cnt.expanded++;
        seen += xn;
        for (uint32_t i = 0; i < xn && k < fs->want; i++) {
            uint32_t y = LD_ACQ(&xl[1 + i]);
            /* With a bitmap, a rejected second hop costs one bit test and no tag: testing it
             * again later is as cheap as remembering it. */
            if (fs->f->bits && !vd_index__fs_bit(fs->f, y)) continue;
            if ((*st = fs_cover(sc, y))) return 0;
            if (vd_index__fs_tag(sc, fs, y) >= VD_TAG_STATES && vd_index__fs_allow(sc, fs, y))
                nb[k++] = y;
        }
    }
    *checked = seen;
    return k;
}

/* Probe for an anti-correlated filter, on the first expansion of the traversal's rejected
 * start (the node nearest the query the descent found): if its two-hop neighbourhood holds
 * far fewer allowed nodes than the filter's share predicts, the allowed points lie away
 * from the query's neighbourhood, where a graph search for them is an out-of-distribution
 * search (recall 0.5-0.85 at any ef measured on clustered data). The beam then widens to
 * fs->ef_wide when the planner found that cheaper than the exact scan, which otherwise
 * answers instead. A random filter at 1 % meets the probe's floor of 2 expected matches
 * among 200+
 * checked slots; the threshold (a quarter of the expected count) misfires for it with
 * probability < 1e-3. */
#define PROBE_MIN_CHECKED 200u
static inline int fs_anti_correlated(const vd_fsearch *fs, uint32_t found, uint32_t checked)
{
    return checked >= PROBE_MIN_CHECKED && (double)found < 0.25 * fs->sel * (double)checked &&
           found < fs->want;
}

/* vd_index__search_filtered for one metric (inlined once per metric, as search_layer_m). */
static inline __attribute__((always_inline)) vd_status
search_filtered_m(const vd_index *ix, vd_scratch *sc, const void *q, vd_cand bridge,
                  uint32_t ef, vd_fsearch *fs, int metric, int quant)
{
    const uint32_t dim = ix->dim;
    const size_t hdr_off = ix->hdr_off, vec_off = ix->vec_off;
    const size_t lines = vd_index__node_lines(ix);
    const uint32_t ahead = pf_ahead(ix, PF_LINES_FILTERED);
    vd_status st = VD_OK;
    if (vd_cands_reserve(&sc->w, &sc->cap_w, (size_t)ef + 1)) return VD_NOMEM;
    if (bridge.slot != VD_SLOT_NONE) {
        if (vd_cands_reserve(&sc->c, &sc->cap_c, fs->nc + 1)) return VD_NOMEM;
        sc->tags[bridge.slot] = (uint16_t)(fs->g + VD_TAG_BRIDGE);
        vd_minheap_push(sc->c, &fs->nc, bridge);
    }
    float bound = fs->nw >= ef ? sc->w[0].d : INFINITY;
    uint32_t nb[2 * VD_M_MAX];
    for (;;) {
        if (fs->nc == 0 && (fs->nw >= fs->k || fs_bridge(ix, sc, q, fs, &st) == 0)) break;
        if (st) return st;
        vd_cand c = sc->c[0];
        if (c.d > bound) break;
        if (vd_fsearch_effort(fs) > fs->cap) {
            fs->aborted = VD_FALLBACK_EFFORT;
            break;
        }
        vd_minheap_pop(sc->c, &fs->nc);
        if (fs->nc) vd_index__prefetch_list0(ix, sc->c[0].slot);
        uint32_t checked = 0, k = fs_expand(ix, sc, fs, c.slot, nb, &checked, &st);
        if (st) return st;
        if (c.slot == bridge.slot && !fs->probed) {
            fs->probed = 1;
            if (fs_anti_correlated(fs, k, checked)) {
                if (fs->ef_wide <= ef) {
                    fs->aborted = VD_FALLBACK_LOCAL;
                    break;
                }
                ef = fs->ef_wide; /* the planner found a wider beam cheaper than the scan */
                fs->widened = 1;
                if (vd_cands_reserve(&sc->w, &sc->cap_w, (size_t)ef + 1)) return VD_NOMEM;
                bound = fs->nw >= ef ? sc->w[0].d : INFINITY;
            }
        }
        if (vd_cands_reserve(&sc->c, &sc->cap_c, fs->nc + k)) return VD_NOMEM;
        /* Header and vector of each allowed node, `ahead` ahead of the one computed. */
        for (uint32_t i = 0; i < k && i < ahead; i++) vd_index__prefetch_node(ix, nb[i], lines);
        for (uint32_t i = 0; i < k; i++) {
            if (i + ahead < k) vd_index__prefetch_node(ix, nb[i + ahead], lines);
            const uint8_t *blk = vd_arena_at(&ix->nodes, nb[i]);
            if (!vd_index__fs_visible((const vd_node *)(blk + hdr_off), fs)) {
                sc->tags[nb[i]] = (uint16_t)(fs->g + VD_TAG_REJ); /* a hop another time */
                continue;
            }
            fs->cnt.distances++;
            float d = vd_index__rdist_m(metric, quant, dim, q, blk + vec_off, bound);
            if (fs->nw < ef || d < bound) {
                vd_cand e = {d, nb[i]};
                vd_minheap_push(sc->c, &fs->nc, e);
                vd_maxheap_push(sc->w, &fs->nw, e);
                if (fs->nw > ef) vd_maxheap_pop(sc->w, &fs->nw);
                if (fs->nw >= ef) bound = sc->w[0].d;
            }
        }
    }
    return st;
}

/* Offers the allowed visible node e to the one-hop traversal's results: a max-heap of the
 * r nearest in sc->s (fs->nw of them). */
static inline void oh_offer(vd_scratch *sc, vd_fsearch *fs, vd_cand e, uint32_t r)
{
    if (fs->nw >= r && e.d >= sc->s[0].d) return;
    vd_maxheap_push(sc->s, &fs->nw, e);
    if (fs->nw > r) vd_maxheap_pop(sc->s, &fs->nw);
}

/* Visits x (the caller checked it was not visited): whether the filter allows it; tags it
 * MET_OK or MET_REJ. The planner's sample may have classified it already (OK or REJ): then
 * allow() is not asked again. Visibility is checked with the distance (MET_OK then turns
 * MET_REJ when x is not visible). */
static inline int oh_visit(vd_scratch *sc, vd_fsearch *fs, uint32_t x)
{
    unsigned t = vd_index__fs_tag(sc, fs, x);
    int ok = t == VD_TAG_OK;
    if (t >= VD_TAG_STATES) {
        if (fs->f->bits) {
            ok = vd_index__fs_bit(fs->f, x);
        } else {
            fs->cnt.allows++;
            ok = fs->f->allow(fs->f->ctx, x) != 0;
        }
    }
    sc->tags[x] = (uint16_t)(fs->g + (ok ? VD_TAG_MET_OK : VD_TAG_MET_REJ));
    return ok;
}

/* The one-hop traversal has visited x. */
static inline int oh_visited(const vd_scratch *sc, const vd_fsearch *fs, uint32_t x)
{
    unsigned t = vd_index__fs_tag(sc, fs, x);
    return t == VD_TAG_MET_OK || t == VD_TAG_MET_REJ;
}

/* vd_index__search_onehop for one metric: search_layer_m's level-0 loop (every neighbour
 * measured, every node in the beam), plus the results heap of allowed nodes. */
static inline __attribute__((always_inline)) vd_status
search_onehop_m(const vd_index *ix, vd_scratch *sc, const void *q, vd_cand ent, uint32_t ef,
                uint32_t r, vd_fsearch *fs, int metric, int quant)
{
    const uint32_t dim = ix->dim, maxl = ix->m0;
    const size_t hdr_off = ix->hdr_off, vec_off = ix->vec_off;
    const uint32_t ahead = pf_ahead(ix, PF_LINES);
    size_t nc = 0, nw = 0;
    if (vd_cands_reserve(&sc->w, &sc->cap_w, (size_t)ef + 1) ||
        vd_cands_reserve(&sc->c, &sc->cap_c, (size_t)ef + maxl + 2) ||
        vd_cands_reserve(&sc->s, &sc->cap_s, (size_t)r + 1) || fs_cover(sc, ent.slot))
        return VD_NOMEM;
    fs->nw = 0;
    if (oh_visit(sc, fs, ent.slot)) {
        if (vd_index__fs_visible(vd_index__node(ix, ent.slot), fs)) {
            fs->n_ok++;
            oh_offer(sc, fs, ent, r);
        } else {
            sc->tags[ent.slot] = (uint16_t)(fs->g + VD_TAG_MET_REJ);
        }
    }
    vd_minheap_push(sc->c, &nc, ent);
    vd_maxheap_push(sc->w, &nw, ent);
    float bound = nw >= ef ? sc->w[0].d : INFINITY;
    uint32_t nb[2 * VD_M_MAX];
    const uint8_t *bp[2 * VD_M_MAX];
    uint8_t okb[2 * VD_M_MAX];
    while (nc) {
        vd_cand c = sc->c[0];
        if (c.d > bound) break;
        if (vd_fsearch_effort(fs) > fs->cap) {
            fs->aborted = VD_FALLBACK_EFFORT;
            break;
        }
        vd_minheap_pop(sc->c, &nc);
        if (nc) vd_index__prefetch_list0(ix, sc->c[0].slot);
        const uint32_t *list = vd_index__list0(ix, c.slot);
        uint32_t n = LD_ACQ(&list[0]), k = 0;
        if (n > maxl) n = maxl;
        prefetch_tags(sc, list, n);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t x = LD_ACQ(&list[1 + i]);
            if (fs_cover(sc, x)) return VD_NOMEM;
            if (oh_visited(sc, fs, x)) continue;
            okb[k] = (uint8_t)oh_visit(sc, fs, x);
            nb[k] = x;
            bp[k] = vd_arena_at(&ix->nodes, x);
            __builtin_prefetch(bp[k] + hdr_off);
            k++;
        }
        if (vd_cands_reserve(&sc->c, &sc->cap_c, nc + k)) return VD_NOMEM;
        fs->cnt.expanded++;
        fs->cnt.distances += k;
        for (uint32_t i = 0; i < k && i < ahead; i++) vd_index__prefetch_rep_rest(ix, bp[i]);
        for (uint32_t i = 0; i < k; i++) {
            if (i + ahead < k) vd_index__prefetch_rep_rest(ix, bp[i + ahead]);
            /* Unbounded when the results may still want it, else bounded by the beam. */
            float rb = fs->nw >= r ? sc->s[0].d : INFINITY, lim = rb > bound ? rb : bound;
            float d = vd_index__rdist_m(metric, quant, dim, q, bp[i] + vec_off, lim);
            vd_cand e = {d, nb[i]};
            if (okb[i]) {
                if (vd_index__fs_visible((const vd_node *)(bp[i] + hdr_off), fs)) {
                    fs->n_ok++;
                    if (d < rb) oh_offer(sc, fs, e, r);
                } else {
                    sc->tags[nb[i]] = (uint16_t)(fs->g + VD_TAG_MET_REJ);
                }
            }
            if (nw < ef || d < bound) {
                vd_minheap_push(sc->c, &nc, e);
                vd_maxheap_push(sc->w, &nw, e);
                if (nw > ef) vd_maxheap_pop(sc->w, &nw);
                if (nw >= ef) bound = sc->w[0].d;
            }
        }
    }
    /* The query's neighbourhood held far fewer matches than the filter's share predicts:
     * anti-correlated, the matches lie elsewhere and those met are not the nearest. */
    double measured = (double)fs->cnt.distances;
    if (!fs->aborted && measured >= PROBE_MIN_CHECKED &&
        (double)fs->n_ok < 0.25 * fs->sel * measured)
        fs->aborted = VD_FALLBACK_LOCAL;
    return VD_OK;
}

vd_status vd_index__search_onehop(const vd_index *ix, vd_scratch *sc, const void *q,
                                  vd_cand ent, uint32_t ef, uint32_t r, vd_fsearch *fs)
{
    vd_status st;
#define ONEHOP(metric, quant) st = search_onehop_m(ix, sc, q, ent, ef, r, fs, metric, quant)
    VD_INDEX_SPECIALISE(ix, ONEHOP)
#undef ONEHOP
    return st;
}

vd_status vd_index__search_filtered(const vd_index *ix, vd_scratch *sc, const void *q,
                                    vd_cand bridge, uint32_t ef, vd_fsearch *fs)
{
    vd_status st;
#define FILTERED(metric, quant) st = search_filtered_m(ix, sc, q, bridge, ef, fs, metric, quant)
    VD_INDEX_SPECIALISE(ix, FILTERED)
#undef FILTERED
    return st;
}
