/* index/reach.c: keeping every live node reachable from the entry point.
 *
 * Heuristic pruning can leave a node with no in-links: a neighbour that shrinks its list for
 * a newcomer may drop the only link to it, and a removed node's links go with its slot.
 * Such a node is still stored and still visible, but no search can find it. Two mechanisms:
 *
 * - In-degrees. The writer (and add_batch's inserters, atomically) keeps a level-0 in-degree
 *   per slot, adjusted by every list write (neighbors.c). A node whose count drops to zero is
 *   queued (the orphan queue, a stack holding each marked node once) and reconnected at the
 *   next publish: searched for from the entry point and linked from reachable nodes with
 *   room, or, when every list around is full, by one link giving way (replace_link). In-
 *   degrees are not stored: a load recounts them.
 * - Reachability passes. In-degrees miss a group of nodes that only link to each other
 *   (removals can cut the graph in two). A breadth-first pass from the entry point over level
 *   0 finds every node it cannot reach and reconnects it. Publish runs one every n/64
 *   mutations, removals included (vacuum.c), vacuum one after freeing slots, a load one
 *   after its publish. Between passes a cut-off group may wait up to n/64 mutations (a pass
 *   at every publish costs ~1.8 ms at 50k points, 12x an insert).
 *
 * A pass only grows what is reachable: reconnection prunes nothing (links are appended into
 * room), and when every list is full the link that gives way is one the pass's breadth-first
 * tree does not use (or one u takes over: c -> w becomes c -> u -> w), so no reconnection can
 * cut off what an earlier one joined. With the smallest parameters (m 2, ef_construction 1)
 * a pass restores every node in one round; evicting the farthest link instead let two nodes
 * take each other's only in-link round after round, and a quarter of the points stayed
 * unreachable.
 *
 * Rejected: reconnecting by shrinking a full list with the heuristic (it orphans other nodes
 * in turn); a pass at every publish (above). */
#include "index/index_int.h"

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
        if (ix->indeg[s] == 0 && (vd_index__node(ix, s)->flags & NODE_USED))
            vd_index__queue_orphan(ix, s);
}

/* Breadth-first over level-0 links from `from`, marking seen[]; returns nodes newly marked.
 * With parent[] (else NULL), each newly marked node other than `from` gets the node it was
 * reached from: the tree's edges. `queue` has room for n_slots entries. */
static size_t reach_bfs(const vd_index *ix, uint32_t from, uint8_t *seen, uint32_t *parent,
                        uint32_t *queue)
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
                if (parent) parent[x] = s;
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
    size_t n = reach_bfs(ix, from, seen, NULL, queue);
    vd_free(queue);
    return n;
}

/* Searches level 0 for u's neighbours into sc->s (sorted, *n of them), keeping only nodes
 * known to be reachable (seen[] when given). Returns 0 when none was found. */
static int orphan_candidates(vd_index *ix, vd_scratch *sc, uint32_t u, const uint8_t *seen,
                             vd_cand start, size_t *n)
{
    size_t nw = 0, k = 0;
    const void *q = vd_index__rep(ix, u);
    /* At least 2M candidates: the ones with room in their lists are what reconnects u. */
    uint32_t ef = ix->efc > ix->m0 ? ix->efc : ix->m0;
    if (vd_index__search_layer(ix, sc, q, &start, 1, 0, ef, VD_MODE_BUILD, 0, u, &nw, NULL) ||
        nw == 0 || vd_cands_reserve(&sc->s, &sc->cap_s, nw))
        return 0;
    for (size_t i = 0; i < nw; i++)
        if (!seen || seen[sc->w[i].slot]) sc->s[k++] = sc->w[i];
    vd_index__cands_sort(sc->s, k);
    *n = k;
    return k > 0;
}

/* Whether the link c -> w may give way to c -> u without cutting anything off. With the
 * reachability pass's tree (parent[], else NULL): when it is not w's tree edge, or u links
 * to w (c -> w becomes c -> u -> w). Without the tree (a publish reconnecting in-degree
 * orphans): when w keeps another in-link, a guess the next pass checks. */
static int may_evict(const vd_index *ix, uint32_t c, uint32_t w, uint32_t u,
                     const uint32_t *parent)
{
    if (w == u) return 0;
    const uint32_t *ul = vd_index__list0(ix, u);
    uint32_t uc = LD_RLX(&ul[0]);
    for (uint32_t t = 0; t < uc; t++)
        if (LD_RLX(&ul[1 + t]) == w) return 1;
    return parent ? parent[w] != c : LD_RLX(&ix->indeg[w]) >= 2;
}

/* The last resort of connect_orphan, when every list around u is full: the nearest of the
 * reachable candidates c[0..n) that has a link may_evict allows gives up its farthest such
 * link for u. Returns that candidate, or VD_SLOT_NONE. Evicting blindly (the farthest link
 * of the nearest candidate) let two nodes of a graph with m 2 take each other's only
 * in-link round after round. */
static uint32_t replace_link(vd_index *ix, const vd_cand *c, size_t n, uint32_t u,
                             uint32_t *parent)
{
    for (size_t j = 0; j < n; j++) {
        uint32_t cs = c[j].slot, *list = vd_index__list0(ix, cs), cnt = LD_RLX(&list[0]);
        const void *v = vd_index__rep(ix, cs);
        uint32_t best = UINT32_MAX;
        float best_d = -INFINITY;
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t w = LD_RLX(&list[1 + i]);
            float d = vd_index__dist(ix, v, vd_index__rep(ix, w));
            if (d > best_d && may_evict(ix, cs, w, u, parent)) {
                best_d = d;
                best = i;
            }
        }
        if (best == UINT32_MAX) continue;
        uint32_t w = LD_RLX(&list[1 + best]);
        if (parent && parent[w] == cs) parent[w] = u; /* c -> u -> w is w's tree path now */
        vd_index__indeg_dec(ix, w);
        ST_REL(&list[1 + best], u);
        vd_index__indeg_inc(ix, u);
        vd_index__mark(ix, cs, VD_CHANGE_LINKS);
        return cs;
    }
    return VD_SLOT_NONE;
}

/* Links the unreachable live node u into the graph at level 0, making sure at least one
 * node known to be reachable (seen[], or any node when seen is NULL) keeps a link to it.
 * Nothing is pruned: u's links and the candidates' grow into the room their lists have,
 * and only when every list is full does one link give way (replace_link, with the pass's
 * tree when parent is not NULL). Returns the reachable node now linking to u, or
 * VD_SLOT_NONE. */
static uint32_t connect_orphan(vd_index *ix, vd_scratch *sc, uint32_t u, const uint8_t *seen,
                               uint32_t *parent)
{
    uint32_t ep = LD_RLX(&ix->entry);
    if (ep == VD_SLOT_NONE || ep == u) return VD_SLOT_NONE;
    const void *q = vd_index__rep(ix, u);
    vd_cand at_ep = {vd_index__dist(ix, q, vd_index__rep(ix, ep)), ep}, sel[2 * VD_M_MAX];
    /* The descent finds better neighbours, but upper-level links may lead into the very
     * component that is cut off at level 0: then the level-0 search from the entry point,
     * which only sees reachable nodes. */
    vd_cand cur = vd_index__greedy(ix, q, at_ep, vd_index__node(ix, ep)->level, 0, NULL);
    size_t nw = 0;
    if (cur.slot == u || !orphan_candidates(ix, sc, u, seen, cur, &nw))
        if (!orphan_candidates(ix, sc, u, seen, at_ep, &nw)) return VD_SLOT_NONE;
    size_t k = vd_index__select_neighbors(ix, sc->s, nw, ix->m, sel);
    /* u's own links are never pruned here: they may be the only way into the rest of u's
     * cut-off group, which reconnecting u reconnects. */
    for (size_t i = 0; i < k; i++) vd_index__append_link(ix, u, 0, sel[i].slot);
    for (size_t i = 0; i < k; i++)
        if (vd_index__append_link(ix, sel[i].slot, 0, u)) return sel[i].slot;
    /* No selected neighbour had room: the nearest reachable node with room. */
    for (size_t i = 0; i < nw; i++)
        if (vd_index__append_link(ix, sc->s[i].slot, 0, u)) return sc->s[i].slot;
    return replace_link(ix, sc->s, nw, u, parent); /* every list around is full */
}

/* Reconnects the live nodes not reachable from the entry point: up to 4 rounds (a
 * reconnection can evict a link and cut off another node), then one that only counts.
 * Returns how many live nodes are still unreachable after the last round; 0 also when out of
 * memory, when nothing is done or known (the graph stays valid, only less reachable). Resets
 * the mutation counters that schedule the pass. */
size_t vd_index__fix_reachability(vd_index *ix, vd_scratch *sc)
{
    uint32_t ns = ix->n_slots, ep = ix->entry;
    size_t left = 0;
    ix->ops_since_check = 0;
    if (ep == VD_SLOT_NONE || ns == 0) return 0;
    uint8_t *seen = vd_calloc(ns, 1);
    uint32_t *queue = vd_malloc((size_t)ns * sizeof(uint32_t));
    uint32_t *parent = vd_malloc((size_t)ns * sizeof(uint32_t));
    for (int round = 0; seen && queue && parent; round++) {
        memset(seen, 0, ns);
        size_t reached = reach_bfs(ix, ep, seen, parent, queue);
        left = 0;
        if (reached == ix->n_live + LD_RLX(&ix->n_tomb)) break;
        for (uint32_t s = 0; s < ns; s++) {
            if (seen[s] || !vd_index__alive(vd_index__node(ix, s))) continue;
            left++;
            if (round == 4) continue; /* only counting */
            uint32_t by = connect_orphan(ix, sc, s, seen, parent);
            if (by == VD_SLOT_NONE) continue;
            reach_bfs(ix, s, seen, parent, queue); /* s and the group behind it */
            parent[s] = by;
        }
        if (!left || round == 4) break;
    }
    vd_free(seen);
    vd_free(queue);
    vd_free(parent);
    return left;
}

size_t vd_index__restore_reachability(vd_index *ix)
{
    vd_scratch *sc = vd_scratch_get();
    if (!sc || vd_scratch_tags(sc, ix->n_slots)) return 0;
    return vd_index__fix_reachability(ix, sc);
}

void vd_index__reconnect_orphans(vd_index *ix, vd_scratch *sc)
{
    /* Reconnecting may evict a link (when every list around is full), queueing another node:
     * bounded by the budget; what it leaves stays queued for the next publish. The queue is
     * a stack and a node leaves it before it is processed, so a node queued again while
     * others are processed takes the place it freed: the queue never holds more than the
     * marked nodes, one entry each (it has room for every slot). */
    size_t budget = 4 * ix->n_orphans + 64;
    while (ix->n_orphans && budget) {
        uint32_t x = ix->orphans[--ix->n_orphans];
        ix->omark[x] = 0;
        const vd_node *nd = vd_index__node(ix, x);
        if (LD_RLX(&ix->indeg[x]) != 0 || x == ix->entry || !(nd->flags & NODE_USED)) continue;
        if (nd->flags & NODE_TOMB) {
            /* An unreachable tombstone no longer carries anyone: drop its links so that the
             * nodes only it pointed to are queued in turn. Only at level 0 (upper-level links
             * are not counted: a tombstone of higher level may still be a descent waypoint). */
            if (nd->level) continue;
            vd_index__write_list(ix, 0, vd_index__list0(ix, x), NULL, 0);
            vd_index__mark(ix, x, VD_CHANGE_LINKS);
            continue;
        }
        budget--;
        connect_orphan(ix, sc, x, NULL, NULL);
    }
}
