/* index/neighbors.c: choosing a node's neighbours and writing its link lists; shared by
 * insertion (insert.c), repairs and vacuum (vacuum.c) and reconnection (reach.c).
 *
 * Selection is the heuristic of the HNSW paper (Malkov & Yashunin, algorithm 4, without
 * extending the candidates or keeping pruned ones): candidates nearest first, one is kept
 * only if it is closer to the base than to every neighbour kept so far, which spreads links
 * over directions instead of spending them all on one dense cluster. Candidates are sorted
 * by (distance, slot), so equal distances give the same graph every time. Rejected: the
 * paper's simple selection of the M nearest (its authors show it loses recall on clustered
 * data).
 *
 * Writes. A list is rewritten entry by entry with release stores, then its count: a reader
 * may see a mix of old and new links, every one of them a fully initialized node, which is
 * harmless (see hnsw.c). Between inserter threads the node's stripe guards the rewrite.
 * At level 0 every write adjusts the in-degrees of the links that come and go, so that a
 * node losing its last in-link is queued for reconnection (reach.c).
 *
 * This file sits below vacuum.c and reach.c (both call it, it calls neither), which is why
 * the list patch used by repairs and vacuum lives here. */
#include <stdlib.h>
#include <string.h>

#include "index/index_int.h"

/* (distance, slot) as one integer whose order is theirs: the float's bits made monotone
 * (negative distances occur under cosine and ip; -0 counts as +0), the slot below. */
static inline uint64_t cand_key(vd_cand c)
{
    float d = c.d + 0.0f;
    uint32_t u;
    memcpy(&u, &d, sizeof u);
    u ^= (u & 0x80000000u) ? 0xffffffffu : 0x80000000u;
    return (uint64_t)u << 32 | c.slot;
}

static inline void cand_swap(vd_cand *a, size_t i, size_t j)
{
    vd_cand t = a[i];
    a[i] = a[j];
    a[j] = t;
}

static void insertion_sort(vd_cand *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        vd_cand x = a[i];
        uint64_t kx = cand_key(x);
        size_t j = i;
        while (j && cand_key(a[j - 1]) > kx) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* Quicksort with the compare inlined (qsort's indirect calls and merge sort were a third of
 * a delete's patch and a tenth of bench-churn's profile), median-of-three pivots,
 * recursion on the smaller side only (depth log n), insertion sort below 24. Only the
 * partitions that reach into the first `first` places are sorted on: a patch needs its 2M
 * nearest candidates in order out of 100-300. */
void vd_index__cands_sort_first(vd_cand *a, size_t n, size_t first)
{
    while (n > 24 && first) {
        size_t mid = n / 2;
        if (cand_key(a[mid]) < cand_key(a[0])) cand_swap(a, mid, 0);
        if (cand_key(a[n - 1]) < cand_key(a[0])) cand_swap(a, n - 1, 0);
        if (cand_key(a[n - 1]) < cand_key(a[mid])) cand_swap(a, n - 1, mid);
        uint64_t pivot = cand_key(a[mid]);
        size_t i = 0, j = n - 1;
        for (;;) { /* Hoare partition: keys are distinct (slots are), so it terminates */
            while (cand_key(a[i]) < pivot) i++;
            while (cand_key(a[j]) > pivot) j--;
            if (i >= j) break;
            cand_swap(a, i, j);
            i++;
            j--;
        }
        /* [0, j] <= pivot <= [j + 1, n) */
        size_t left = j + 1;
        if (left >= first) { /* the right side is past the first places */
            n = left;
        } else if (left < n - left) {
            vd_index__cands_sort_first(a, left, left);
            a += left;
            n -= left;
            first -= left;
        } else {
            vd_index__cands_sort_first(a + left, n - left, first - left);
            n = left;
            first = left;
        }
    }
    if (first) insertion_sort(a, n);
}

void vd_index__cands_sort(vd_cand *a, size_t n)
{
    vd_index__cands_sort_first(a, n, n);
}

/* `c` sorted ascending; when it already fits, it is kept whole. */
size_t vd_index__select_neighbors(const vd_index *ix, const vd_cand *c, size_t n, size_t mmax,
                                  vd_cand *out)
{
    if (n <= mmax) {
        memcpy(out, c, n * sizeof *c);
        return n;
    }
    size_t k = 0;
    for (size_t i = 0; i < n && k < mmax; i++) {
        const void *v = vd_index__rep(ix, c[i].slot);
        int good = 1;
        for (size_t j = 0; j < k; j++)
            if (vd_index__dist_below(ix, v, vd_index__rep(ix, out[j].slot), c[i].d) < c[i].d) {
                good = 0;
                break;
            }
        if (good) out[k++] = c[i];
    }
    return k;
}

void vd_index__write_list(vd_index *ix, unsigned level, uint32_t *list, const vd_cand *c,
                          size_t n)
{
    if (level == 0) {
        uint32_t old = LD_RLX(&list[0]);
        for (size_t i = 0; i < n; i++) {
            uint32_t y = c[i].slot, j = 0;
            while (j < old && LD_RLX(&list[1 + j]) != y) j++;
            if (j == old) vd_index__indeg_inc(ix, y);
        }
        for (uint32_t j = 0; j < old; j++) {
            uint32_t x = LD_RLX(&list[1 + j]);
            size_t i = 0;
            while (i < n && c[i].slot != x) i++;
            if (i == n) vd_index__indeg_dec(ix, x);
        }
    }
    for (size_t i = 0; i < n; i++) ST_REL(&list[1 + i], c[i].slot);
    ST_REL(&list[0], (uint32_t)n);
}

int vd_index__add_link(vd_index *ix, uint32_t n, unsigned level, uint32_t q, float d)
{
    uint32_t maxl = vd_index__max_links(ix, level);
    vd_cand buf[2 * VD_M_MAX + 1], sel[2 * VD_M_MAX + 1];
    int kept = 0;
    vd_index__stripe_lock(ix, n);
    uint32_t *list = vd_index__list(ix, n, level);
    uint32_t cnt = LD_RLX(&list[0]);
    for (uint32_t i = 0; i < cnt; i++)
        if (LD_RLX(&list[1 + i]) == q) {
            vd_index__stripe_unlock(ix, n);
            return 1;
        }
    if (cnt < maxl) {
        ST_REL(&list[1 + cnt], q);
        ST_REL(&list[0], cnt + 1);
        if (level == 0) vd_index__indeg_inc(ix, q);
        kept = 1;
    } else {
        const void *v = vd_index__rep(ix, n);
        size_t nb = 0;
        uint64_t vis = LD_RLX(&ix->visible_epoch);
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t x = LD_RLX(&list[1 + i]);
            /* A link to a published removal gives way first (it was repaired around at that
             * publish): kept in the contest for the room, it could push out a live neighbour.
             * An unpublished removal stays: the old version stays as findable as before. */
            if (LD_RLX(&vd_index__node(ix, x)->died) <= vis) continue;
            buf[nb].slot = x;
            buf[nb++].d = vd_index__dist(ix, v, vd_index__rep(ix, x));
        }
        buf[nb].slot = q;
        buf[nb++].d = d;
        vd_index__cands_sort(buf, nb);
        size_t k = vd_index__select_neighbors(ix, buf, nb, maxl, sel);
        for (size_t i = 0; i < k; i++) kept |= sel[i].slot == q;
        vd_index__write_list(ix, level, list, sel, k);
    }
    vd_index__mark(ix, n, VD_CHANGE_LINKS);
    vd_index__stripe_unlock(ix, n);
    return kept;
}

int vd_index__append_link(vd_index *ix, uint32_t n, unsigned level, uint32_t q)
{
    uint32_t *list = vd_index__list(ix, n, level);
    uint32_t cnt = LD_RLX(&list[0]);
    if (cnt >= vd_index__max_links(ix, level) || q == n) return 0;
    for (uint32_t i = 0; i < cnt; i++)
        if (LD_RLX(&list[1 + i]) == q) return 0;
    ST_REL(&list[1 + cnt], q);
    ST_REL(&list[0], cnt + 1);
    if (level == 0) vd_index__indeg_inc(ix, q);
    vd_index__mark(ix, n, VD_CHANGE_LINKS);
    return 1;
}

/* Whether candidate c may join the kept links by the heuristic: it is nearer n than it is to
 * every one of them. */
static int diverse(const vd_index *ix, vd_cand c, const vd_cand *kept, size_t nk)
{
    const void *v = vd_index__rep(ix, c.slot);
    for (size_t j = 0; j < nk; j++)
        if (vd_index__dist_below(ix, v, vd_index__rep(ix, kept[j].slot), c.d) < c.d) return 0;
    return 1;
}

void vd_index__patch_list(vd_index *ix, vd_scratch *sc, uint32_t n, unsigned level,
                          const uint32_t *extra, size_t n_extra)
{
    uint32_t maxl = vd_index__max_links(ix, level);
    vd_cand keep[2 * VD_M_MAX], *cand = ix->rbuf;
    const void *v = vd_index__rep(ix, n);
    uint32_t *list = vd_index__list(ix, n, level);
    uint32_t cnt = LD_RLX(&list[0]);
    size_t nk = 0, nc = 0, dead = 0, cap = VD_REPAIR_CAP(ix);
    vd_scratch_visit_begin(sc);
    sc->tags[n] = sc->gen;
    for (uint32_t i = 0; i < cnt; i++) {
        uint32_t x = LD_RLX(&list[1 + i]);
        sc->tags[x] = sc->gen;
        if (!vd_index__alive(vd_index__node(ix, x))) {
            dead++;
            continue;
        }
        /* No distance: the heuristic below compares a candidate's distance to n with its
         * distance to each kept link, never a kept link's own (about 30 distances per
         * patch, a tenth to a sixth of them, went here). */
        keep[nk++] = (vd_cand){0, x};
    }
    if (!dead) return;
    const size_t n_live = nk; /* keep[n_live..] are the replacements */
    for (size_t i = 0; i < n_extra && nc < cap; i++) {
        uint32_t x = extra[i];
        if (sc->tags[x] == sc->gen) continue;
        sc->tags[x] = sc->gen;
        const vd_node *xn = vd_index__node(ix, x);
        if (!vd_index__alive(xn) || xn->level < level) continue;
        cand[nc++] = (vd_cand){vd_index__dist(ix, v, vd_index__rep(ix, x)), x};
    }
    const size_t n_diverse = nc < ix->m0 ? nc : ix->m0;
    vd_index__cands_sort_first(cand, nc, n_diverse);
    /* One replacement per dead link: the nearest of the 2M nearest candidates that the
     * heuristic keeps, else the nearest left. Taken ones are marked by a slot of
     * VD_SLOT_NONE. Past the nearest a candidate that passes is rare, and each one that
     * fails costs up to a distance per kept link: scanning all ~100 was 60 % of a patch's
     * distances on GloVe (bench-churn, same-time runs, us per delete after 50 % deletes /
     * 10 x 10 % churn, with the change above: clustered 128-d 193 / 204 -> 164 / 168, GloVe
     * 100k 392 / 406 -> 343 / 321, random 300-d within the noise; recall against a fresh
     * build after 50 % deletes / churn: clustered +0.049 / +0.028 -> +0.041 / +0.005, the
     * others within 0.003). Rejected:
     * the M nearest (a little cheaper; the churn test -0.006 -> -0.014 against its 0.02,
     * where the 2M nearest give +0.009); cutting the pool to its 48 nearest
     * (-0.005 to -0.007 after churn on every set). */
    for (; dead && nk < maxl; dead--) {
        size_t pick = nc;
        for (size_t i = 0; i < n_diverse && pick == nc; i++)
            if (cand[i].slot != VD_SLOT_NONE && diverse(ix, cand[i], keep, nk)) pick = i;
        for (size_t i = 0; i < n_diverse && pick == nc; i++)
            if (cand[i].slot != VD_SLOT_NONE) pick = i;
        for (size_t i = n_diverse; i < nc && pick >= n_diverse; i++) /* the unsorted rest */
            if (cand[i].slot != VD_SLOT_NONE &&
                (pick == nc || cand_key(cand[i]) < cand_key(cand[pick])))
                pick = i;
        if (pick == nc) break;
        keep[nk++] = cand[pick];
        cand[pick].slot = VD_SLOT_NONE;
    }
    vd_index__write_list(ix, level, list, keep, nk);
    vd_index__mark(ix, n, VD_CHANGE_LINKS);
    /* The link back, only into room (no eviction, so no distances): n lost in-links with
     * its dead neighbours, and in-links are how searches reach a node. Without it a
     * repaired graph stayed 0.02 below a fresh build on random 300-d data (bench-churn,
     * 1,000 queries, recall@10 at ef 100 after 50 % deletes / 10 x 10 % churn: -0.021 /
     * -0.022, medians of 5 runs; with it +0.045 / +0.017 and +0.049 / +0.011). The repaired
     * lists are fuller than a fresh build's: 17 % more distances per query at the same ef;
     * at ef 85, about the fresh build's distances at ef 100, it is 0.016 below. Rejected:
     * add_link's heuristic eviction when full (no better, 25 % more per delete); more
     * in-links for r's out-neighbours alone, in restore_in_links (+0.035 / -0.005 only when
     * every list is filled, 18 % more distances); candidates from n's neighbours' lists
     * (no better). */
    for (size_t i = n_live; i < nk; i++) vd_index__append_link(ix, keep[i].slot, level, n);
}
