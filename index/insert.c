/* index/insert.c: upserts, one point or a batch on several threads.
 *
 * A batch goes in phases, so that a failure leaves no visible trace: (1) every id and
 * vector is checked (reserved id, ids repeated in the batch, NaN/Inf, zero under cosine)
 * before anything changes; (2) levels are drawn from the seeded generator in input order and
 * every resource is reserved (slots, upper blocks, id map, repair queue, scratch), so that
 * nothing below can fail half-way but the linking threads' search scratch; (3) the calling
 * thread fills every new slot (vector, header, level) in input order: each node is complete
 * before any link to it exists, invisible until published and unreachable until linked;
 * (4) n threads link them, taking the next row from an atomic counter; (5) only then are the
 * ids swapped over: an old version dies in the same epoch its replacement is born, so an
 * upsert never rewrites a vector a reader may be reading, and exactly one version is visible
 * at any epoch. Without deferred publish the batch then publishes itself (vacuum.c).
 *
 * Linking a node (insert_node) is the paper's algorithm 1: greedy descent to the node's top
 * level, then at each level down to 0 a beam search with ef_construction, the heuristic
 * selection of M neighbours (neighbors.c) as the node's own list, and a back link from each
 * of them (its list shrunk by the heuristic when full). Lists hold up to M links on upper
 * levels and 2*M on level 0, which back links fill.
 *
 * Threads. Link-list rewrites hold the node's stripe (one at a time); a node that raises the
 * top level holds ep_lock until it is linked (rare: ~1/M^L), so the entry point never names
 * a node without links. With one thread, the same seed and the same input order give the
 * same graph (the determinism test in tests/unit/test_index_recall.c). If a worker runs out
 * of scratch memory mid-way, the batch's nodes become tombstones that were never visible
 * (died == born); the next publish repairs around them and vacuum reclaims them. */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "index/index_int.h"

/* Empties the max-heap h (n entries) into out[0..n) ascending: n pops, no comparator calls.
 * Equal distances come out in an order fixed by the heap's history (deterministic). */
static void maxheap_drain(vd_cand *h, size_t n, vd_cand *out)
{
    while (n) {
        out[n - 1] = h[0];
        vd_maxheap_pop(h, &n);
    }
}

/* Sets q's own list at `level` to `sel`, merging links other inserter threads may already
 * have added to it. */
static void set_own_list(vd_index *ix, uint32_t q, unsigned level, const vd_cand *sel, size_t k)
{
    uint32_t maxl = vd_index__max_links(ix, level);
    vd_cand buf[4 * VD_M_MAX + 1], out[2 * VD_M_MAX + 1];
    vd_index__stripe_lock(ix, q);
    uint32_t *list = vd_index__list(ix, q, level);
    uint32_t cnt = LD_RLX(&list[0]);
    if (cnt == 0) {
        vd_index__write_list(ix, level, list, sel, k);
    } else {
        const void *v = vd_index__rep(ix, q);
        size_t n = 0;
        for (size_t i = 0; i < k; i++) buf[n++] = sel[i];
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t x = LD_RLX(&list[1 + i]);
            int dup = 0;
            for (size_t j = 0; j < k; j++) dup |= sel[j].slot == x;
            if (dup) continue;
            buf[n].slot = x;
            buf[n++].d = vd_index__dist(ix, v, vd_index__rep(ix, x));
        }
        vd_index__cands_sort(buf, n);
        vd_index__write_list(ix, level, list, out,
                             vd_index__select_neighbors(ix, buf, n, maxl, out));
    }
    vd_index__stripe_unlock(ix, q);
}

/* Links the initialized node `slot` into the graph. On failure (out of memory for search
 * scratch) the node may be partially linked; the caller turns it into a tombstone. */
static vd_status insert_node(vd_index *ix, vd_scratch *sc, uint32_t slot)
{
    vd_node *nd = vd_index__node(ix, slot);
    unsigned level = nd->level;
    const void *q = vd_index__rep(ix, slot);
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

    vd_cand cur = {vd_index__dist(ix, q, vd_index__rep(ix, ep)), ep};
    cur = vd_index__greedy(ix, q, cur, maxl, level < maxl ? level : maxl, NULL);
    const vd_cand *ent = &cur;
    size_t n_ent = 1;
    for (int l = (int)(level < maxl ? level : maxl); l >= 0; l--) {
        size_t nw = 0;
        st = vd_index__search_layer(ix, sc, q, ent, n_ent, (unsigned)l, ix->efc, VD_MODE_BUILD,
                                    0, slot, &nw, NULL);
        if (st) goto done;
        if (nw == 0) continue; /* only tombstones around: keep the previous entries */
        if (vd_cands_reserve(&sc->s, &sc->cap_s, nw)) {
            st = VD_NOMEM;
            goto done;
        }
        maxheap_drain(sc->w, nw, sc->s);
        size_t k = vd_index__select_neighbors(ix, sc->s, nw, ix->m, sel);
        set_own_list(ix, slot, (unsigned)l, sel, k);
        for (size_t i = 0; i < k; i++)
            vd_index__add_link(ix, sel[i].slot, (unsigned)l, slot, sel[i].d);
        ent = sc->s;
        n_ent = nw;
    }
    if (hold) {
        ST_REL(&ix->max_level, level);
        ST_REL(&ix->entry, slot);
        vd_index__queue_orphan(ix, ep); /* the old entry may have no in-link */
    }
    if (LD_RLX(&ix->indeg[slot]) == 0) vd_index__queue_orphan(ix, slot);
done:
    if (ix->mt && hold) pthread_mutex_unlock(&ix->ep_lock);
    return st;
}

/* Writes a node into a free slot (capacity reserved). Unreachable until linked. */
static void init_node(vd_index *ix, uint32_t slot, uint64_t id, const float *vec, double inv,
                      unsigned level, uint64_t born)
{
    vd_node *nd = vd_index__node(ix, slot);
    if (ix->quant) { /* the floats wait for storage; the node keeps their codes */
        float *f = vd_index__pend_add(ix, slot);
        vd_index__store_vector(ix, f, vec, inv);
        vd_index__encode(ix, vd_index__rep(ix, slot), f);
    } else {
        vd_index__store_vector(ix, vd_index__rep(ix, slot), vec, inv);
    }
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

/* ---- the batch ----------------------------------------------------------------------------- */

/* What one add_batch call allocates for itself. */
typedef struct batch {
    double *inv;     /* per vector: vd_index__check_vector's inverse norm */
    uint8_t *levels; /* per vector: drawn in input order */
    uint32_t *slots; /* per vector: where it went */
} batch;

static void batch_free(batch *b)
{
    vd_free(b->inv);
    vd_free(b->levels);
    vd_free(b->slots);
}

/* Phase 1: every id and vector, before anything changes. */
static vd_status batch_check(const vd_index *ix, batch *b, const uint64_t *ids,
                             const float *vecs, size_t n, vd_err *err)
{
    vd_status st = vd_ids_check_distinct(ids, n, err);
    if (st) return st;
    b->inv = vd_malloc(n * sizeof(double));
    if (!b->inv) return vd_err_set(err, VD_NOMEM, "out of memory validating a batch of %zu", n);
    for (size_t i = 0; i < n; i++) {
        char what[48];
        snprintf(what, sizeof what, "vector %zu (id %" PRIu64 ")", i, ids[i]);
        if ((st = vd_index__check_vector(ix, vecs + i * ix->dim, what, &b->inv[i], err)))
            return st;
    }
    return VD_OK;
}

/* Phase 2: levels drawn, every resource reserved, so that nothing below can fail half-way. */
static vd_status batch_reserve(vd_index *ix, batch *b, size_t n, vd_err *err)
{
    b->levels = vd_malloc(n);
    b->slots = vd_malloc(n * sizeof(uint32_t));
    if (!b->levels || !b->slots)
        return vd_err_set(err, VD_NOMEM, "out of memory for a batch of %zu", n);
    uint64_t n_upper = 0;
    for (size_t i = 0; i < n; i++) {
        b->levels[i] = (uint8_t)vd_index__random_level(ix);
        n_upper += b->levels[i];
    }
    size_t n_new_slots = n > ix->n_free ? n - ix->n_free : 0;
    vd_scratch *sc = vd_scratch_get();
    if (!sc) return vd_err_set(err, VD_NOMEM, "out of memory for search scratch");
    vd_status st;
    if ((st = vd_index__reserve_slots(ix, (uint64_t)ix->n_slots + n_new_slots, err)) ||
        (st = vd_index__reserve_upper(ix, n_upper, err)))
        return st;
    if (vd_idmap_reserve(&ix->map, ix->map.n + n) || vd_index__pend_reserve(ix, n) ||
        vd_index__grow_u32(&ix->pending, &ix->cap_pending, ix->n_pending + n) ||
        vd_scratch_tags(sc, (size_t)ix->n_slots + n_new_slots) ||
        vd_cands_reserve(&sc->s, &sc->cap_s, (size_t)ix->efc + 1))
        return vd_err_set(err, VD_NOMEM, "out of memory for a batch of %zu", n);
    return VD_OK;
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
    vd_scratch *sc = vd_scratch_get();
    if (!sc || vd_scratch_tags(sc, LD_RLX(&job->ix->n_slots))) {
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

/* Phase 4: links the filled slots on n_threads threads (this one included; 0 = the cores).
 * Returns VD_NOMEM if a thread ran out of memory (then some nodes are partly linked). A
 * thread that cannot start leaves its share to the others. */
static vd_status batch_link(vd_index *ix, const uint32_t *slots, size_t n, uint32_t n_threads,
                            vd_progress_fn progress, void *progress_ctx)
{
    if (n_threads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (uint32_t)c : 1;
    }
    if (n_threads > n) n_threads = (uint32_t)n;
    if (n_threads > 256) n_threads = 256;
    batch_job job = {ix, slots, n, 0, 0, 0};
    pthread_t *th = n_threads > 1 ? vd_malloc(n_threads * sizeof(pthread_t)) : NULL;
    uint32_t started = 0;
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
    vd_free(th);
    return job.failed ? VD_NOMEM : VD_OK;
}

vd_status vd_index_add_batch(vd_index *ix, const uint64_t *ids, const float *vecs, size_t n,
                             uint32_t n_threads, vd_progress_fn progress, void *progress_ctx,
                             vd_err *err)
{
    batch b = {0};
    if (!ix || (n && (!ids || !vecs)))
        return vd_err_set(err, VD_INVALID, "index, ids and vectors are required");
    if (n == 0) return VD_OK;
    if (n >= VD_SLOT_NONE - 2)
        return vd_err_set(err, VD_INVALID, "batch of %zu points is too large", n);
    uint64_t rng0 = ix->rng;
    vd_status st = batch_check(ix, &b, ids, vecs, n, err);
    if (st || (st = batch_reserve(ix, &b, n, err))) goto fail;

    /* Phase 3: fill the slots (invisible until published, unreachable until linked). */
    uint64_t w = ix->write_epoch;
    for (size_t i = 0; i < n; i++) {
        b.slots[i] = vd_index__take_slot(ix);
        init_node(ix, b.slots[i], ids[i], vecs + i * ix->dim, b.inv[i], b.levels[i], w);
    }
    if (batch_link(ix, b.slots, n, n_threads, progress, progress_ctx)) {
        /* The batch must have no visible effect. Its nodes become tombstones that were never
         * visible (died == born); repairs and vacuum reclaim them. */
        for (size_t i = 0; i < n; i++) vd_index__kill_node(ix, b.slots[i]);
        st = vd_err_set(err, VD_NOMEM, "out of memory while linking a batch of %zu", n);
    } else {
        /* Phase 5: only now swap ids over: old versions die in the epoch the new are born. */
        for (size_t i = 0; i < n; i++) {
            uint32_t old;
            if (vd_idmap_get(&ix->map, ids[i], &old)) vd_index__kill_node(ix, old);
            else ix->n_live++;
            vd_idmap_put(&ix->map, ids[i], b.slots[i]);
        }
        ix->ops_since_check += n;
        if (progress) progress(progress_ctx, n, n);
    }
    if (!ix->p.deferred_publish) vd_index__publish(ix);
    batch_free(&b);
    return st;
fail:
    ix->rng = rng0; /* nothing changed: the next batch draws the same levels */
    batch_free(&b);
    return st;
}

vd_status vd_index_add(vd_index *ix, uint64_t id, const float *vec, vd_err *err)
{
    return vd_index_add_batch(ix, &id, vec, 1, 1, NULL, NULL, err);
}
