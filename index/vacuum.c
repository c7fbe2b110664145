/* index/vacuum.c: removal, publish, the repairs a publish makes, vacuum and grace periods.
 *
 * Deletion, in passes (as pgvector's hnswvacuum.c): remove() marks the node died, flags it a
 * tombstone and queues it; the next publish repairs, at once, every out-neighbour that links
 * back to it: it keeps its other links and the dead one is replaced from the removed node's
 * links (through removed neighbours one hop further, so that a run of removals cannot cut a
 * path) and the nodes a beam from the removed node finds (ef_construction / 4, a quarter of
 * an insert's beam at that place); the removed node's out-neighbours left with
 * few in-links get one back, and each replacement links back to the node it now serves
 * (neighbors.c). Repairs wait for the publish so that a removed or replaced point stays
 * exactly as findable as before until the change becomes visible. The removed node stays a
 * traversable tombstone. When tombstones exceed 10% of the nodes (and VACUUM_MIN), vacuum
 * rebuilds every list that still points at one, moves the entry point to the highest live
 * node if it was removed, waits for a grace period and only then frees the slots for reuse
 * (reported as VD_CHANGE_FREED, reused lowest first).
 *
 * Publish lives here because publishing is where repairs happen: it makes the write epoch
 * visible (one release store, so a whole group commit appears at once), then repairs around
 * the removed nodes, vacuums when due and reconnects orphans (reach.c). add and remove
 * without deferred_publish call it themselves.
 *
 * Grace periods. Slot reuse is the one hazard lock-free readers add: a search may hold a slot
 * number while vacuum frees it. Searches count themselves into one of two phase counters for
 * their duration (vd_index__reader_enter/exit in index_int.h); vacuum unlinks the tombstones,
 * flips the phase and waits until the old phase's count drains before freeing anything (an
 * RCU-style grace period). A search that started after the flip cannot reach an unlinked
 * tombstone. Nothing else waits for readers.
 *
 * Rejected: rebuilding a repaired list by the heuristic from its live links and the removed
 * node's (the list shrinks and turns towards the removed node's neighbourhood: after removing
 * half of clustered 40k x 128, recall@10 at ef 12 was 0.884 against 0.932 for a fresh build
 * of the survivors, 0.945 patched from the beam; bench-churn, issue 13); lazy deletion
 * (tombstones pile up and recall decays); repairing at remove time (the old version of an
 * upserted point would become harder to find before the new one is visible); per-node
 * reference counts (an atomic per visited node on the search path). */
#include <inttypes.h>
#include <sched.h>

#include "index/index_int.h"

#define VACUUM_MIN 64u     /* vacuum waits for this many tombstones (and 10% of the nodes) */
/* A reachability pass every n / REACH_EVERY mutations, removals and replacing upserts
 * included: at 50k points a pass costs ~1.8 ms, about 2 us per mutation amortized, ~1.5 % of
 * an insert. Every n / 8 let a group cut off by inserts wait for 8x as long, and repairs that
 * link back (neighbors.c) fill lists, which makes inserts' evictions, and so such cuts, more
 * frequent. Rejected: a pass after every removal up to 50k points (the rule until bench-storage
 * delete measured it: one delete per write group at 40k clustered points cost 2.8-4.2 ms in a
 * bare index, where its repair costs ~0.15 ms, and a durable one-point delete 5.9-6.2 ms, now
 * 1.0-1.2 ms; recall after bench-churn's deletes unchanged). */
#define REACH_EVERY 64u

void vd_index__kill_node(vd_index *ix, uint32_t slot)
{
    vd_node *nd = vd_index__node(ix, slot);
    ST_REL(&nd->died, ix->write_epoch);
    nd->flags |= NODE_TOMB;
    ST_RLX(&ix->n_tomb, LD_RLX(&ix->n_tomb) + 1);
    ix->pending[ix->n_pending++] = slot;
    vd_index__mark(ix, slot, VD_CHANGE_LINKS);
}

vd_status vd_index_remove(vd_index *ix, uint64_t id, vd_err *err)
{
    uint32_t slot;
    if (!ix) return vd_err_set(err, VD_INVALID, "index is required");
    if (!vd_idmap_get(&ix->map, id, &slot))
        return vd_err_set(err, VD_NOTFOUND, "id %" PRIu64 " not found", id);
    if (vd_index__grow_u32(&ix->pending, &ix->cap_pending, ix->n_pending + 1))
        return vd_err_set(err, VD_NOMEM, "out of memory removing id %" PRIu64, id);
    vd_index__kill_node(ix, slot);
    vd_idmap_del(&ix->map, id);
    ix->n_live--;
    ix->ops_since_check++;
    if (!ix->p.deferred_publish) vd_index__publish(ix);
    return VD_OK;
}

/* Appends x's links at `level` to buf (*n entries, at most cap). */
static void append_links(const vd_index *ix, uint32_t x, unsigned level, uint32_t *buf,
                         size_t *n, size_t cap)
{
    const uint32_t *xl = vd_index__list(ix, x, level);
    uint32_t xc = LD_RLX(&xl[0]);
    for (uint32_t j = 0; j < xc && *n < cap; j++) buf[(*n)++] = LD_RLX(&xl[1 + j]);
}

/* The beam of a repair: a quarter of an insert's (ef_construction / 4, at least 2M). The
 * pool is where the dead links' replacements come from, and every patch measures its
 * candidates, so a smaller pool cuts both. bench-churn, groups of 256, us per delete after 50 %
 * deletes / 10 x 10 % churn and recall against a fresh build, half a beam -> a quarter
 * (alternating runs, one machine): clustered 40k x 128 ef 12 140-155 / 143-156 -> 100-101 /
 * 103-108, +0.041 / +0.009 -> +0.051 / -0.005..+0.001; random 20k x 300 cosine ef 100
 * 313-362 / 364-379 -> 205-233 / 225-263, +0.045 / +0.009..+0.013 -> +0.026..+0.030 /
 * -0.006..0.000; GloVe 100k ef 100 229 / 235 -> 191 / 183, +0.004 / -0.003 -> +0.002 / -0.005;
 * at ef 20 267 / 239 -> 172 / 164, +0.017 / -0.003 -> +0.013 / +0.015. An earlier stop went
 * from the full beam to half (random 300-d 2289 -> 1529 us per delete, recall within the
 * noise).
 * Rejected: patching from only the pool's nearest 2M (candidates nearest the removed node are
 * not those nearest its neighbours in 300 dims: -0.021 / -0.044 on that set, though
 * clustered 40k x 128 and GloVe held). */
static uint32_t repair_ef(const vd_index *ix)
{
    uint32_t ef = ix->efc / 4;
    return ef < ix->m0 ? ix->m0 : ef;
}

/* The live nodes nearest the removed node r at `level`: a repair_ef beam from r's links,
 * about what an insert of r would see, appended to buf[*n] nearest first. Returns where
 * they start. */
static size_t repair_pool(vd_index *ix, vd_scratch *sc, uint32_t r, unsigned level,
                          uint32_t *buf, size_t *n, size_t rc)
{
    vd_cand *ent = ix->rbuf;
    const void *rv = vd_index__rep(ix, r);
    size_t start = *n, nw = 0;
    for (size_t i = 0; i < rc; i++)
        ent[i] = (vd_cand){vd_index__dist(ix, rv, vd_index__rep(ix, buf[i])), buf[i]};
    if (!rc || vd_index__search_layer(ix, sc, rv, ent, rc, level, repair_ef(ix), VD_MODE_BUILD,
                                      0, r, &nw, NULL))
        return start; /* out of scratch memory: the repair uses r's links alone */
    size_t cap = VD_REPAIR_CAP(ix) - start;
    if (nw > cap) nw = cap;
    for (size_t i = nw; i-- > 0;) { /* the farthest first, into place */
        buf[start + i] = sc->w[0].slot;
        size_t m = i + 1;
        vd_maxheap_pop(sc->w, &m);
    }
    *n = start + nw;
    return start;
}

/* r's live out-neighbours at level 0 that the removal left with few in-links (below M/2)
 * get one from the nearest of the pool's first 2M nodes with room: a node's in-links are how
 * searches reach it, and r's were some of them. */
static void restore_in_links(vd_index *ix, const uint32_t *links, size_t rc, const uint32_t *pool,
                             size_t n_pool)
{
    uint32_t floor = ix->m / 2;
    if (n_pool > ix->m0) n_pool = ix->m0;
    for (size_t i = 0; i < rc; i++) {
        uint32_t x = links[i], best = VD_SLOT_NONE;
        if (!vd_index__alive(vd_index__node(ix, x)) || LD_RLX(&ix->indeg[x]) >= floor) continue;
        const void *xv = vd_index__rep(ix, x);
        float bd = INFINITY;
        for (size_t j = 0; j < n_pool; j++) {
            uint32_t p = pool[j];
            const uint32_t *pl = vd_index__list0(ix, p);
            uint32_t pc = LD_RLX(&pl[0]), t = 0;
            if (p == x || pc >= ix->m0) continue;
            while (t < pc && LD_RLX(&pl[1 + t]) != x) t++;
            if (t < pc) continue;
            float d = vd_index__dist(ix, xv, vd_index__rep(ix, p));
            if (d < bd) {
                bd = d;
                best = p;
            }
        }
        if (best != VD_SLOT_NONE) vd_index__append_link(ix, best, 0, x);
    }
}

/* Repairs around the removed node r at every level it had: each node that links to it and
 * that it links back to (nine in ten of its in-links; vacuum catches the rest) keeps its other
 * links and replaces the dead one from r's links and r's pool (vd_index__patch_list); then
 * the in-links r's neighbours lost. */
static void repair_removed(vd_index *ix, vd_scratch *sc, uint32_t r)
{
    const vd_node *rn = vd_index__node(ix, r);
    uint32_t *links = ix->rslots;
    for (unsigned l = 0; l <= rn->level; l++) {
        size_t n_links = 0, cap = 3 * (size_t)ix->m0;
        append_links(ix, r, l, links, &n_links, cap);
        uint32_t rc = (uint32_t)n_links; /* r's own links come first */
        /* Through removed neighbours one hop further, so that a run of removals does not
         * cut the graph. */
        for (uint32_t i = 0; i < rc && n_links < cap; i++)
            if (!vd_index__alive(vd_index__node(ix, links[i])))
                append_links(ix, links[i], l, links, &n_links, cap);
        size_t pool = repair_pool(ix, sc, r, l, links, &n_links, rc);
        if (l == 0) restore_in_links(ix, links, rc, links + pool, n_links - pool);
        for (uint32_t i = 0; i < rc; i++) {
            uint32_t n = links[i];
            const vd_node *nn = vd_index__node(ix, n);
            if (!vd_index__alive(nn) || nn->level < l) continue;
            const uint32_t *nl = vd_index__list(ix, n, l);
            uint32_t nc = LD_RLX(&nl[0]);
            for (uint32_t j = 0; j < nc; j++)
                if (LD_RLX(&nl[1 + j]) == r) {
                    vd_index__patch_list(ix, sc, n, l, links, n_links);
                    break;
                }
        }
    }
}

/* Returns once every search that might still hold a slot unlinked before the call ended. */
static void wait_for_readers(vd_index *ix)
{
    unsigned old = __atomic_load_n(&ix->phase, __ATOMIC_RELAXED) & 1u;
    __atomic_store_n(&ix->phase, old ^ 1u, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&ix->readers[old], __ATOMIC_SEQ_CST) != 0) sched_yield();
}

static void free_slot(vd_index *ix, uint32_t s)
{
    vd_node *nd = vd_index__node(ix, s);
    ST_REL(&nd->born, VD_EPOCH_NEVER);
    ST_REL(&nd->died, (uint64_t)0);
    uint32_t *l0 = vd_index__list0(ix, s);
    for (uint32_t i = 0; i < l0[0]; i++) vd_index__indeg_dec(ix, l0[1 + i]);
    vd_index__free_upper_chain(ix, nd->upper);
    nd->upper = VD_SLOT_NONE;
    nd->flags = 0;
    nd->level = 0;
    ST_RLX(&l0[0], 0u);
    ix->free_slots[ix->n_free++] = s;
    vd_index__mark(ix, s, VD_CHANGE_FREED);
}

/* Rebuilds every live list that links to a tombstone, from its live links plus the
 * tombstones' links. VD_NOMEM (nothing done) when out of memory. About one list per freed
 * slot on random 300-d data. Rejected: adding a repair beam around each such list (recall
 * after 50 % deletes / churn -0.017 / -0.015 against -0.020 / -0.021 over 3 and 4 runs, at
 * 1.8x the cost per delete). */
static vd_status unlink_tombstones(vd_index *ix, vd_scratch *sc)
{
    size_t cap = 3 * (size_t)ix->m0;
    uint32_t *extra = vd_malloc(cap * sizeof(uint32_t));
    if (!extra) return VD_NOMEM;
    for (uint32_t s = 0; s < ix->n_slots; s++) {
        const vd_node *nd = vd_index__node(ix, s);
        if (!vd_index__alive(nd)) continue;
        for (unsigned l = 0; l <= nd->level; l++) {
            const uint32_t *list = vd_index__list(ix, s, l);
            uint32_t c = LD_RLX(&list[0]);
            size_t ne = 0;
            int dead = 0;
            for (uint32_t i = 0; i < c; i++) {
                uint32_t x = LD_RLX(&list[1 + i]);
                if (vd_index__alive(vd_index__node(ix, x))) continue;
                dead = 1;
                append_links(ix, x, l, extra, &ne, cap);
            }
            if (dead) vd_index__patch_list(ix, sc, s, l, extra, ne);
        }
    }
    vd_free(extra);
    return VD_OK;
}

/* A removed entry point gives way to the highest live node (the lowest slot among equals). */
static void move_entry_off_tombstones(vd_index *ix)
{
    uint32_t ep = ix->entry;
    if (ep == VD_SLOT_NONE || vd_index__alive(vd_index__node(ix, ep))) return;
    uint32_t best = VD_SLOT_NONE;
    unsigned best_level = 0;
    for (uint32_t s = 0; s < ix->n_slots; s++) {
        const vd_node *nd = vd_index__node(ix, s);
        if (vd_index__alive(nd) && (best == VD_SLOT_NONE || nd->level > best_level)) {
            best = s;
            best_level = nd->level;
        }
    }
    ST_REL(&ix->max_level, best_level);
    ST_REL(&ix->entry, best);
}

/* Unlinks every tombstone, moves the entry point off them, waits out the readers, frees. */
static void vacuum(vd_index *ix, vd_scratch *sc)
{
    if (vd_index__grow_u32(&ix->free_slots, &ix->cap_free, ix->n_free + LD_RLX(&ix->n_tomb)) ||
        unlink_tombstones(ix, sc))
        return; /* out of memory: the next publish tries again */
    move_entry_off_tombstones(ix);
    wait_for_readers(ix);
    size_t freed = 0;
    for (uint32_t s = ix->n_slots; s-- > 0;) { /* downwards: the lowest ends on top */
        const vd_node *nd = vd_index__node(ix, s);
        if ((nd->flags & NODE_USED) && (nd->flags & NODE_TOMB)) {
            free_slot(ix, s);
            freed++;
        }
    }
    ST_RLX(&ix->n_tomb, LD_RLX(&ix->n_tomb) - freed);
    vd_index__fix_reachability(ix, sc);
}

void vd_index__publish(vd_index *ix)
{
    vd_index__account(ix);
    ST_RLX(&ix->n_visible, ix->n_live);
    ST_REL(&ix->visible_epoch, ix->write_epoch);
    ix->write_epoch++;
    vd_scratch *sc = vd_scratch_get();
    if (!sc || vd_scratch_tags(sc, ix->n_slots)) return; /* repairs wait for the next publish */
    for (size_t i = 0; i < ix->n_pending; i++) repair_removed(ix, sc, ix->pending[i]);
    ix->n_pending = 0;
    if (ix->cap_pending > 4096) { /* add_batch reserved one per point of a large batch */
        vd_free(ix->pending);
        ix->pending = NULL;
        ix->cap_pending = 0;
        vd_index__account(ix);
    }
    size_t tomb = LD_RLX(&ix->n_tomb);
    if (tomb >= VACUUM_MIN && tomb * 10 >= ix->n_live + tomb) vacuum(ix, sc);
    vd_index__reconnect_orphans(ix, sc);
    /* In-degrees miss one case, a group of nodes linking only to each other (removals can
     * cut a graph in two): a breadth-first pass catches it, amortized over n / REACH_EVERY
     * mutations. */
    if (ix->ops_since_check && ix->ops_since_check * REACH_EVERY >= ix->n_live)
        vd_index__fix_reachability(ix, sc);
}

void vd_index_publish(vd_index *ix)
{
    if (ix && ix->p.deferred_publish) vd_index__publish(ix);
}
