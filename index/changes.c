/* index/changes.c: change tracking, what storage/ must rewrite after a group of mutations.
 *
 * Every slot whose persisted records must be rewritten is marked in a per-slot byte (NEW /
 * LINKS / FREED, plus VD_DIRTY_REPORTED once vd_index_changes has passed it on) and listed in
 * dirty_list; vd_index_changes sorts and de-duplicates the list and walks it in ascending
 * slot order. Inserter threads mark with a CAS on the byte and append under dirty_lock (the
 * innermost lock); both arrays are sized by vd_index__reserve_slots before any insertion.
 *
 * A slot is listed at most twice between two reports: once when first marked, once more
 * when it changes after being reported, so that vd_index_changes_clear (which forgets exactly
 * what was reported) cannot drop a change made in between - the repairs a publish makes
 * after storage wrote its group. dirty_list has room for 2 entries per slot.
 *
 * Rejected: a bitmap scanned at report time (every report would cost O(n_slots) for a group
 * that touched a few hundred slots). */
#include <stdlib.h>

#include "index/index_int.h"

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
    if (ix->n_dirty > ix->hw_dirty) ST_RLX(&ix->hw_dirty, ix->n_dirty);
    if (ix->mt) pthread_mutex_unlock(&ix->dirty_lock);
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int vd_index_changes(const vd_index *cix, vd_change_fn fn, void *ctx)
{
    /* Sorting and de-duplicating the list, and flagging what was reported, change nothing a
     * caller can observe except what vd_index_changes_clear will forget. */
    vd_index *ix = (vd_index *)cix;
    if (ix->n_dirty) qsort(ix->dirty_list, ix->n_dirty, sizeof(uint32_t), u32_cmp);
    size_t n = 0;
    for (size_t i = 0; i < ix->n_dirty; i++)
        if (n == 0 || ix->dirty_list[n - 1] != ix->dirty_list[i])
            ix->dirty_list[n++] = ix->dirty_list[i];
    ix->n_dirty = n;
    for (size_t i = 0; i < n; i++) ix->dirty[ix->dirty_list[i]] |= VD_DIRTY_REPORTED;
    ix->n_reported = n;
    ix->reported = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t s = ix->dirty_list[i];
        int rc = fn(ctx, s, (vd_change_kind)(ix->dirty[s] & ~VD_DIRTY_REPORTED));
        if (rc) return rc;
    }
    return 0;
}

void vd_index_changes_clear(vd_index *ix)
{
    /* Forget what the last vd_index_changes reported; slots changed since (listed again
     * after n_reported, their REPORTED flag cleared) stay for the next round. Without a
     * report since the last clear, forget everything. An int8 index then drops the floats
     * of the slots no longer NEW: storage has written them. */
    if (!ix->reported) {
        for (size_t i = 0; i < ix->n_dirty; i++) ix->dirty[ix->dirty_list[i]] = 0;
        ix->n_dirty = 0;
        vd_index__trim_lists(ix);
        if (ix->quant) vd_index__pend_prune(ix);
        return;
    }
    ix->reported = 0;
    for (size_t i = 0; i < ix->n_reported; i++) {
        uint32_t s = ix->dirty_list[i];
        if (ix->dirty[s] & VD_DIRTY_REPORTED) ix->dirty[s] = 0;
    }
    memmove(ix->dirty_list, ix->dirty_list + ix->n_reported,
            (ix->n_dirty - ix->n_reported) * sizeof(uint32_t));
    ix->n_dirty -= ix->n_reported;
    ix->n_reported = 0;
    vd_index__trim_lists(ix);
    if (ix->quant) vd_index__pend_prune(ix);
}
