/* index/search.c: searching the graph: greedy descent, the layer beam search (used by
 * queries, inserts and reconnections alike), vd_index_search and the exact scan.
 *
 * A query descends greedily through the upper levels from the entry point, then runs a beam
 * search of level 0 with ef = max(ef, k): a min-heap of candidates and a bounded max-heap of
 * results. Only visible nodes (born <= visible_epoch < died) enter the results; invisible
 * ones are still expanded, so a removed or unpublished node never cuts a path. Neighbours are
 * filtered through the visited tags first, their node headers prefetched, then distances
 * computed while the vectors PF_AHEAD neighbours later are prefetched; the next candidate's
 * link list is prefetched when one is popped. Results are sorted by (distance, id).
 *
 * Speed. The beam loop (search_layer_m) is always inlined into one copy per metric, so the
 * kernel is inlined without a switch per distance; under l2 every distance is bounded by the
 * one a candidate must beat (vd_kern_l2sq_below: most 784-dim candidates are rejected after
 * a fraction of their vector). The heaps, tags, node addressing and kernels are static
 * inline in index_int.h for the same reason: this file's loops must not call across files.
 *
 * Readers. A search takes no lock. It counts itself into one of the two grace-period
 * counters (vd_index__reader_enter, see vacuum.c) from before it reads the entry point until
 * it has read its last node, so vacuum never frees a slot it may still hold. If the beam
 * comes back with fewer than k visible points while more exist (a large unpublished batch
 * or many tombstones all around the query), the search falls back to the exact scan, so
 * n_out < k only when fewer points are visible.
 *
 * Rejected: 32-bit visited tags (twice the cache footprint, to save one memset every 65535
 * traversals). */
#include <stdlib.h>

#include "index/index_int.h"

/* Search prefetches whole vectors this many neighbours ahead of the one being computed (one
 * ahead is too late to hide a miss at 100 dims; three ahead starts evicting). */
#define PF_AHEAD 2

static inline int accept(const vd_node *nd, int mode, uint64_t v)
{
    if (mode == VD_MODE_BUILD) return LD_RLX(&nd->died) == VD_EPOCH_NEVER;
    return LD_ACQ(&nd->born) <= v && v < LD_ACQ(&nd->died);
}

vd_cand vd_index__greedy(const vd_index *ix, const float *q, vd_cand cur, unsigned from,
                         unsigned to)
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
                float d = vd_index__dist_below(ix, q, vd_index__vec(ix, x), cur.d);
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
search_layer_m(const vd_index *ix, vd_scratch *sc, const float *q, const vd_cand *ent,
               size_t n_ent, unsigned level, uint32_t ef, int mode, uint64_t v, uint32_t skip,
               size_t *n_w, int metric)
{
    size_t nc = 0, nw = 0;
    const uint32_t dim = ix->dim, maxl = vd_index__max_links(ix, level);
    const size_t hdr_off = ix->hdr_off, vec_off = ix->vec_off;
    const size_t vec_lines = (dim * sizeof(float) + 63) / 64;
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
        if (nc && level == 0) __builtin_prefetch(vd_index__list0(ix, sc->c[0].slot));
        const uint32_t *list = vd_index__list(ix, c.slot, level);
        uint32_t n = LD_ACQ(&list[0]), k = 0;
        if (n > maxl) n = maxl;
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
        for (uint32_t i = 0; i < k && i < PF_AHEAD; i++)
            for (size_t l = 1; l <= vec_lines && l < 12; l++)
                __builtin_prefetch(bp[i] + vec_off + 64 * l);
        for (uint32_t i = 0; i < k; i++) {
            if (i + PF_AHEAD < k) /* the rest of a later vector while this one is computed */
                for (size_t l = 1; l <= vec_lines && l < 12; l++)
                    __builtin_prefetch(bp[i + PF_AHEAD] + vec_off + 64 * l);
            float d = vd_index__dist_below_m(metric, dim, q, (const float *)(bp[i] + vec_off),
                                             bound);
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
    return VD_OK;
}

vd_status vd_index__search_layer(const vd_index *ix, vd_scratch *sc, const float *q,
                                 const vd_cand *ent, size_t n_ent, unsigned level, uint32_t ef,
                                 int mode, uint64_t v, uint32_t skip, size_t *n_w)
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

/* ---- queries ------------------------------------------------------------------------------ */

static int hit_cmp(const void *a, const void *b)
{
    const vd_hit *x = a, *y = b;
    if (x->distance < y->distance) return -1;
    if (x->distance > y->distance) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Room for n hits in the scratch. */
static vd_status hits_reserve(vd_scratch *sc, size_t n, vd_err *err)
{
    if (sc->cap_h >= n) return VD_OK;
    vd_hit *h = vd_realloc(sc->h, n * sizeof(vd_hit));
    if (!h) return vd_err_set(err, VD_NOMEM, "out of memory for %zu hits", n);
    sc->h = h;
    sc->cap_h = n;
    return VD_OK;
}

/* Common argument checks; on success *qp is the query to use (normalized under cosine). */
static vd_status prepare_query(const vd_index *ix, vd_scratch **scp, const float *query,
                               uint32_t k, const vd_hit *hits, uint32_t *n_out, const float **qp,
                               vd_err *err)
{
    if (n_out) *n_out = 0;
    if (!ix || !query || !hits || !n_out)
        return vd_err_set(err, VD_INVALID, "index, query, hits and n_out are required");
    if (k == 0) return vd_err_set(err, VD_INVALID, "k must be at least 1");
    double inv;
    vd_status st = vd_index__check_vector(ix, query, "query", &inv, err);
    if (st) return st;
    vd_scratch *sc = vd_scratch_get();
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
        vd_index__store_vector(ix, sc->q, query, inv);
        *qp = sc->q;
    }
    return VD_OK;
}

/* Sifts x down from the root of the max-heap h (n hits, by hit_cmp) into its place. */
static void hits_sift_down(vd_hit *h, size_t n, vd_hit x)
{
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hit_cmp(&h[c + 1], &h[c]) > 0) c++;
        if (hit_cmp(&x, &h[c]) >= 0) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Adds x to the max-heap h of hits (room for one more). */
static void hits_push(vd_hit *h, size_t *n, vd_hit x)
{
    size_t i = (*n)++;
    while (i) {
        size_t pa = (i - 1) / 2;
        if (hit_cmp(&h[pa], &x) >= 0) break;
        h[i] = h[pa];
        i = pa;
    }
    h[i] = x;
}

static vd_status exact_scan(const vd_index *ix, vd_scratch *sc, const float *q, uint32_t k,
                            vd_hit *hits, uint32_t *n_out, vd_err *err)
{
    vd_status st = hits_reserve(sc, k, err);
    if (st) return st;
    vd_hit *h = sc->h; /* a max-heap by (distance, id) of the k nearest so far */
    size_t nh = 0;
    unsigned p = vd_index__reader_enter(ix);
    uint64_t v = LD_ACQ(&ix->visible_epoch);
    uint32_t ns = LD_ACQ(&ix->n_slots);
    for (uint32_t s = 0; s < ns; s++) {
        const vd_node *nd = vd_index__node(ix, s);
        if (!accept(nd, VD_MODE_READ, v)) continue;
        vd_hit x = {nd->id, vd_index__dist(ix, q, vd_index__vec(ix, s))};
        if (nh < k) hits_push(h, &nh, x);
        else if (hit_cmp(&x, &h[0]) < 0) hits_sift_down(h, nh, x); /* replaces the farthest */
    }
    vd_index__reader_exit(ix, p);
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
    vd_scratch *sc = NULL;
    const float *q = NULL;
    vd_status st = prepare_query(ix, &sc, query, k, hits, n_out, &q, err);
    if (st) return st;
    return exact_scan(ix, sc, q, k, hits, n_out, err);
}

/* Beam search from the entry point into sc->h: the k nearest visible points by distance
 * (ties in heap order), their number into *n. Inside the reader's grace period. */
static vd_status beam(const vd_index *ix, vd_scratch *sc, const float *q, uint32_t k,
                      uint32_t ef, size_t *n, vd_err *err)
{
    uint64_t v = LD_ACQ(&ix->visible_epoch);
    uint32_t ep = LD_ACQ(&ix->entry);
    size_t nw = 0;
    *n = 0;
    if (ep == VD_SLOT_NONE) return VD_OK;
    if (vd_scratch_tags(sc, LD_ACQ(&ix->n_slots)))
        return vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
    vd_cand cur = {vd_index__dist(ix, q, vd_index__vec(ix, ep)), ep};
    cur = vd_index__greedy(ix, q, cur, vd_index__node(ix, ep)->level, 0);
    vd_status st = vd_index__search_layer(ix, sc, q, &cur, 1, 0, ef, VD_MODE_READ, v,
                                          VD_SLOT_NONE, &nw);
    if (st) return vd_err_set(err, st, "out of memory for search scratch");
    if ((st = hits_reserve(sc, nw, err))) return st;
    /* Drop the ef - k farthest, then pop the k nearest into place, farthest first. */
    while (nw > k) vd_maxheap_pop(sc->w, &nw);
    *n = nw;
    for (size_t i = nw; i-- > 0;) {
        sc->h[i].id = vd_index__node(ix, sc->w[0].slot)->id;
        sc->h[i].distance = sc->w[0].d;
        size_t m = i + 1;
        vd_maxheap_pop(sc->w, &m);
    }
    return VD_OK;
}

vd_status vd_index_search(const vd_index *ix, const float *query, uint32_t k, uint32_t ef,
                          vd_hit *hits, uint32_t *n_out, vd_err *err)
{
    vd_scratch *sc = NULL;
    const float *q = NULL;
    vd_status st = prepare_query(ix, &sc, query, k, hits, n_out, &q, err);
    if (st) return st;
    if (ef == 0) ef = LD_RLX(&ix->ef_search);
    if (ef < k) ef = k;
    size_t nw = 0;
    unsigned p = vd_index__reader_enter(ix);
    st = beam(ix, sc, q, k, ef, &nw, err);
    vd_index__reader_exit(ix, p);
    if (st) return st;
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
