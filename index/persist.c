/* index/persist.c: what storage/ needs to keep the graph on disk, plus the validator and
 * stats.
 *
 * Change tracking. Every slot whose persisted records must be rewritten is marked in a
 * per-slot byte (NEW / LINKS / FREED) and listed once in dirty_list; vd_index_changes sorts
 * the list and walks it in ascending slot order. Inserter threads mark with a CAS on the
 * byte and append under dirty_lock; both arrays are sized before any insertion starts.
 *
 * Links record (VD_INDEX_LINKS_FORMAT 1), little-endian:
 *     u8 format, u8 level, u8 flags (bit 0: tombstone), u8 zero,
 *     then for each level 0..level: u32 count, count x u32 slot.
 * Vectors and ids are not in it: storage keeps them in the immutable vector record. Epochs
 * are not persisted: after a load every non-tombstone node is visible and epochs restart.
 *
 * Loading treats every byte as hostile: a record is checked on its own in
 * vd_index_load_slot (format, lengths, level <= 32, counts within M limits, no self or
 * duplicate links), and the cross-record invariants (targets in range and filled, target
 * levels, id map, entry point) are checked by vd_index_validate from vd_index_load_finish.
 * Nothing is dereferenced through a stored link before that check passed. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "index/index_int.h"

#define LD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ST_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

#define LINKS_FLAG_TOMB 1u

/* ---- changes ----------------------------------------------------------------------------- */

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
     * report since the last clear, forget everything. */
    if (!ix->reported) {
        for (size_t i = 0; i < ix->n_dirty; i++) ix->dirty[ix->dirty_list[i]] = 0;
        ix->n_dirty = 0;
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
}

void vd_index_header_get(const vd_index *ix, vd_index_header *out)
{
    out->entry_slot = ix->entry;
    out->max_level = ix->entry == VD_SLOT_NONE ? 0 : ix->max_level;
    out->n_slots = ix->n_slots;
}

/* ---- export ------------------------------------------------------------------------------ */

static vd_status filled(const vd_index *ix, uint32_t slot, vd_err *err)
{
    if (slot >= ix->n_slots || !(vd_index__node(ix, slot)->flags & NODE_USED))
        return vd_err_set(err, VD_NOTFOUND, "slot %u is not filled", slot);
    return VD_OK;
}

vd_status vd_index_slot_vector(const vd_index *ix, uint32_t slot, uint64_t *id_out,
                               const float **vec_out, vd_err *err)
{
    vd_status st = filled(ix, slot, err);
    if (st) return st;
    *id_out = vd_index__node(ix, slot)->id;
    *vec_out = vd_index__vec(ix, slot);
    return VD_OK;
}

vd_status vd_index_slot_links(const vd_index *ix, uint32_t slot, uint8_t *buf, size_t cap,
                              size_t *len_out, vd_err *err)
{
    vd_status st = filled(ix, slot, err);
    if (st) return st;
    const vd_node *nd = vd_index__node(ix, slot);
    size_t need = 4;
    for (unsigned l = 0; l <= nd->level; l++)
        need += 4 + 4 * (size_t)LD_RLX(&vd_index__list(ix, slot, l)[0]);
    *len_out = need;
    if (!buf || cap < need)
        return vd_err_set(err, VD_FULL, "links record of slot %u needs %zu bytes", slot, need);
    buf[0] = VD_INDEX_LINKS_FORMAT;
    buf[1] = nd->level;
    buf[2] = (nd->flags & NODE_TOMB) ? LINKS_FLAG_TOMB : 0;
    buf[3] = 0;
    uint8_t *p = buf + 4;
    for (unsigned l = 0; l <= nd->level; l++) {
        const uint32_t *list = vd_index__list(ix, slot, l);
        uint32_t c = LD_RLX(&list[0]);
        vd_put_u32le(p, c);
        p += 4;
        for (uint32_t i = 0; i < c; i++, p += 4) vd_put_u32le(p, LD_RLX(&list[1 + i]));
    }
    return VD_OK;
}

/* ---- load -------------------------------------------------------------------------------- */

vd_status vd_index_load_slot(vd_index *ix, uint32_t slot, uint64_t id, const float *vec,
                             const uint8_t *links, size_t links_len, vd_err *err)
{
    if (!ix || !vec || (!links && links_len))
        return vd_err_set(err, VD_INVALID, "index, vector and links are required");
    if (ix->n_free || ix->n_pending || ix->entry != VD_SLOT_NONE)
        return vd_err_set(err, VD_INVALID, "slot %u: load into an index that is not empty", slot);
    if (slot >= VD_SLOT_NONE - 2)
        return vd_err_set(err, VD_CORRUPT, "slot %u is out of range", slot);
    if (links_len < 4)
        return vd_err_set(err, VD_CORRUPT, "slot %u: links record of %zu bytes is truncated",
                          slot, links_len);
    if (links[0] != VD_INDEX_LINKS_FORMAT)
        return vd_err_set(err, links[0] > VD_INDEX_LINKS_FORMAT ? VD_VERSION : VD_CORRUPT,
                          "slot %u: links record format %u, this build reads %u", slot,
                          links[0], VD_INDEX_LINKS_FORMAT);
    unsigned level = links[1], flags = links[2];
    if (level > VD_LEVEL_MAX)
        return vd_err_set(err, VD_CORRUPT, "slot %u: level %u is above %u", slot, level,
                          VD_LEVEL_MAX);
    if ((flags & ~LINKS_FLAG_TOMB) || links[3])
        return vd_err_set(err, VD_CORRUPT, "slot %u: unknown flags 0x%02x%02x", slot, links[3],
                          flags);
    /* Walk the record once to check its shape before touching the index. */
    size_t off = 4;
    for (unsigned l = 0; l <= level; l++) {
        if (links_len - off < 4)
            return vd_err_set(err, VD_CORRUPT, "slot %u: links record truncated at level %u",
                              slot, l);
        uint32_t c = vd_get_u32le(links + off);
        off += 4;
        if (c > vd_index__max_links(ix, l))
            return vd_err_set(err, VD_CORRUPT, "slot %u: %u links at level %u, limit %u", slot,
                              c, l, vd_index__max_links(ix, l));
        if ((links_len - off) / 4 < c)
            return vd_err_set(err, VD_CORRUPT, "slot %u: links record truncated at level %u",
                              slot, l);
        /* Links to other slots (range, level, duplicates) are checked by load_finish's
         * validation, once every slot is known and before anything may search. */
        for (uint32_t i = 0; i < c; i++)
            if (vd_get_u32le(links + off + 4 * (size_t)i) == slot)
                return vd_err_set(err, VD_CORRUPT, "slot %u links to itself at level %u", slot,
                                  l);
        off += 4 * (size_t)c;
    }
    if (off != links_len)
        return vd_err_set(err, VD_CORRUPT, "slot %u: %zu trailing bytes after the links record",
                          slot, links_len - off);
    int tomb = flags & LINKS_FLAG_TOMB;
    if (id == VD_ID_NONE)
        return vd_err_set(err, VD_CORRUPT, "slot %u: id 2^64-1 is reserved", slot);
    uint32_t bad;
    double s = vd_index__norm2(ix, vec, &bad);
    if (bad < ix->dim)
        return vd_err_set(err, VD_CORRUPT, "slot %u (id %" PRIu64 "): component %u is not finite",
                          slot, id, bad);
    if (ix->metric == VD_METRIC_COSINE && s == 0)
        return vd_err_set(err, VD_CORRUPT, "slot %u (id %" PRIu64 "): zero vector under cosine",
                          slot, id);
    vd_status st = vd_index__reserve_slots(ix, (uint64_t)slot + 1, err);
    if (st) return st;
    vd_node *nd = vd_index__node(ix, slot);
    if (slot < ix->n_slots && (nd->flags & NODE_USED))
        return vd_err_set(err, VD_CORRUPT, "slot %u is stored twice", slot);
    if ((st = vd_index__reserve_upper(ix, level, err))) return st;
    uint32_t other;
    if (!tomb && vd_idmap_reserve(&ix->map, ix->map.n + 1))
        return vd_err_set(err, VD_NOMEM, "out of memory loading slot %u", slot);
    if (!tomb && vd_idmap_add(&ix->map, id, slot, &other))
        return vd_err_set(err, VD_CORRUPT, "id %" PRIu64 " is stored in slots %u and %u", id,
                          other, slot);

    memcpy(vd_index__vec(ix, slot), vec, ix->dim * sizeof(float));
    nd->id = id;
    nd->level = (uint8_t)level;
    nd->flags = NODE_USED | (tomb ? NODE_TOMB : 0);
    nd->upper = level ? vd_index__alloc_upper_chain(ix, level) : VD_SLOT_NONE;
    off = 4;
    for (unsigned l = 0; l <= level; l++) {
        uint32_t c = vd_get_u32le(links + off), *list = vd_index__list(ix, slot, l);
        off += 4;
        for (uint32_t i = 0; i < c; i++, off += 4) ST_RLX(&list[1 + i], vd_get_u32le(links + off));
        ST_RLX(&list[0], c);
    }
    /* Loaded live nodes are born in the current write epoch: visible at load_finish. */
    ST_REL(&nd->died, tomb ? (uint64_t)0 : VD_EPOCH_NEVER);
    ST_REL(&nd->born, tomb ? VD_EPOCH_NEVER : ix->write_epoch);
    if (tomb) ST_RLX(&ix->n_tomb, LD_RLX(&ix->n_tomb) + 1);
    else ix->n_live++;
    if (slot >= ix->n_slots) ST_REL(&ix->n_slots, slot + 1);
    return VD_OK;
}

static vd_status validate(const vd_index *ix, unsigned what, vd_err *err);

static int free_desc_cmp(const void *a, const void *b) { return u32_cmp(b, a); }

vd_status vd_index_load_finish(vd_index *ix, const vd_index_header *h, vd_err *err)
{
    if (!ix || !h) return vd_err_set(err, VD_INVALID, "index and header are required");
    if (h->n_slots < ix->n_slots)
        return vd_err_set(err, VD_CORRUPT, "header says %u slots but slot %u is stored",
                          h->n_slots, ix->n_slots - 1);
    if (h->n_slots >= VD_SLOT_NONE - 2)
        return vd_err_set(err, VD_CORRUPT, "header n_slots %u is out of range", h->n_slots);
    size_t used = ix->n_live + LD_RLX(&ix->n_tomb);
    if (used == 0) {
        if (h->entry_slot != VD_SLOT_NONE)
            return vd_err_set(err, VD_CORRUPT, "entry slot %u in an empty graph", h->entry_slot);
    } else {
        if (h->entry_slot >= ix->n_slots ||
            !(vd_index__node(ix, h->entry_slot)->flags & NODE_USED))
            return vd_err_set(err, VD_CORRUPT, "entry slot %u is not a stored node",
                              h->entry_slot);
        if (vd_index__node(ix, h->entry_slot)->level != h->max_level)
            return vd_err_set(err, VD_CORRUPT, "entry slot %u has level %u, header says %u",
                              h->entry_slot, vd_index__node(ix, h->entry_slot)->level,
                              h->max_level);
    }
    vd_status st = vd_index__reserve_slots(ix, h->n_slots, err);
    if (st) return st;
    size_t n_free = h->n_slots - used;
    size_t cap = ix->cap_free;
    if (cap < n_free) {
        uint32_t *f = vd_realloc(ix->free_slots, (n_free + 1) * sizeof(uint32_t));
        if (!f) return vd_err_set(err, VD_NOMEM, "out of memory for %zu free slots", n_free);
        ix->free_slots = f;
        ix->cap_free = n_free + 1;
    }
    size_t n_tomb = LD_RLX(&ix->n_tomb);
    if (ix->cap_pending < n_tomb) {
        uint32_t *p = vd_realloc(ix->pending, (n_tomb + 1) * sizeof(uint32_t));
        if (!p) return vd_err_set(err, VD_NOMEM, "out of memory for %zu tombstones", n_tomb);
        ix->pending = p;
        ix->cap_pending = n_tomb + 1;
    }
    ST_REL(&ix->n_slots, h->n_slots);
    ix->max_level = used ? h->max_level : 0;
    ix->entry = used ? h->entry_slot : VD_SLOT_NONE;
    /* The id map is consistent by construction (load_slot refused repeated ids) and
     * reachability is restored below rather than refused: a graph stored between two
     * reachability passes is still a valid graph. */
    st = validate(ix, 0, err);
    if (st) {
        ix->entry = VD_SLOT_NONE; /* nothing may search a graph that failed validation */
        return st;
    }
    ix->n_free = 0;
    for (uint32_t s = 0; s < h->n_slots; s++) {
        const vd_node *nd = vd_index__node(ix, s);
        if (!(nd->flags & NODE_USED)) ix->free_slots[ix->n_free++] = s;
        else if (nd->flags & NODE_TOMB) ix->pending[ix->n_pending++] = s;
    }
    if (ix->n_free) qsort(ix->free_slots, ix->n_free, sizeof(uint32_t), free_desc_cmp);
    /* In-degrees are not stored: count them, which also queues nodes without in-links for the
     * publish to reconnect. The publish repairs around stored tombstones. */
    vd_index__recount_indeg(ix);
    vd_index__publish(ix);
    /* The stored graph may predate a reachability pass (a crash between commits): run one. A
     * point it cannot reconnect is a search-quality problem, not corrupt data: refusing to
     * open the collection over it would be far worse. */
    size_t lost = vd_index__restore_reachability(ix);
    if (lost)
        vd_log(VD_LOG_WARN, "index load: %zu point(s) not reachable from the entry point", lost);
    return VD_OK;
}

/* ---- validation -------------------------------------------------------------------------- */

/* Checks the graph's structure: levels, link counts, every link in range, to a used slot of a
 * high enough level, no self or duplicate links; counts, free slots and the entry point.
 * With VALIDATE_MAP also that every live node is the id map's slot for its id, with
 * VALIDATE_INDEG that the level-0 in-degrees are exact, with VALIDATE_REACH that every live
 * node is reachable from the entry point. Link targets are checked against a byte per slot
 * (its level + 1, 0 when empty) and duplicates by stamping targets with the list's number,
 * so the cost is a sequential pass plus cache-resident lookups, not a random read of every
 * link's node block (which made validation most of the time of opening 1M points). */
enum { VALIDATE_MAP = 1, VALIDATE_INDEG = 2, VALIDATE_REACH = 4 };

static vd_status validate(const vd_index *ix, unsigned what, vd_err *err)
{
    uint32_t ns = ix->n_slots;
    size_t n_used = 0, n_alive = 0, n_tomb = 0;
    uint8_t *lvl = NULL, *seen = NULL;
    uint32_t *stamp = NULL, *indeg = NULL, list_no = 0;
    vd_status st = VD_OK;
#define FAIL(...)                                                                               \
    do {                                                                                        \
        st = vd_err_set(err, VD_CORRUPT, __VA_ARGS__);                                          \
        goto done;                                                                              \
    } while (0)
    lvl = vd_malloc((size_t)ns + 1);
    stamp = vd_calloc((size_t)ns + 1, sizeof *stamp);
    if (what & VALIDATE_INDEG) indeg = vd_calloc((size_t)ns + 1, sizeof *indeg);
    if (!lvl || !stamp || ((what & VALIDATE_INDEG) && !indeg)) {
        st = vd_err_set(err, VD_NOMEM, "out of memory validating %u slots", ns);
        goto done;
    }
    for (uint32_t s = 0; s < ns; s++) {
        const vd_node *nd = vd_index__node(ix, s);
        lvl[s] = 0;
        if (!(nd->flags & NODE_USED)) continue;
        n_used++;
        if (nd->level > VD_LEVEL_MAX || nd->level > ix->max_level)
            FAIL("slot %u has level %u above the max level %u", s, nd->level, ix->max_level);
        lvl[s] = (uint8_t)(nd->level + 1);
        uint32_t mapped;
        int in_map = (what & VALIDATE_MAP) && vd_idmap_get(&ix->map, nd->id, &mapped);
        if (nd->flags & NODE_TOMB) {
            n_tomb++;
            if (in_map && mapped == s)
                FAIL("removed slot %u is still mapped from id %" PRIu64, s, nd->id);
        } else {
            n_alive++;
            if ((what & VALIDATE_MAP) && (!in_map || mapped != s))
                FAIL("id %" PRIu64 " in slot %u is not mapped to it", nd->id, s);
        }
    }
    for (uint32_t s = 0; s < ns; s++) {
        if (!lvl[s]) continue;
        for (unsigned l = 0; l < lvl[s]; l++) {
            const uint32_t *list = vd_index__list(ix, s, l);
            uint32_t c = LD_RLX(&list[0]);
            if (c > vd_index__max_links(ix, l))
                FAIL("slot %u has %u links at level %u, limit %u", s, c, l,
                     vd_index__max_links(ix, l));
            if (++list_no == 0) { /* wrapped (over 4G lists): restart the stamps */
                memset(stamp, 0, ((size_t)ns + 1) * sizeof *stamp);
                list_no = 1;
            }
            for (uint32_t i = 0; i < c; i++) {
                uint32_t x = LD_RLX(&list[1 + i]);
                if (x >= ns)
                    FAIL("slot %u links to slot %u at level %u, beyond %u slots", s, x, l, ns);
                if (x == s) FAIL("slot %u links to itself at level %u", s, l);
                if (!lvl[x]) FAIL("slot %u links to empty slot %u at level %u", s, x, l);
                if (lvl[x] <= l)
                    FAIL("slot %u links at level %u to slot %u of level %u", s, l, x, lvl[x] - 1);
                if (stamp[x] == list_no)
                    FAIL("slot %u links twice to slot %u at level %u", s, x, l);
                stamp[x] = list_no;
                if (indeg && l == 0) indeg[x]++;
            }
        }
    }
    if (n_alive != ix->map.n || n_alive != ix->n_live)
        FAIL("%zu live nodes but the id map holds %zu", n_alive, ix->map.n);
    if (n_tomb != LD_RLX(&ix->n_tomb))
        FAIL("%zu tombstones, counter says %zu", n_tomb, LD_RLX(&ix->n_tomb));
    for (size_t i = 0; i < ix->n_free; i++) {
        uint32_t f = ix->free_slots[i];
        if (f >= ns || lvl[f]) FAIL("free slot %u is in use", f);
    }
    for (uint32_t s = 0; indeg && s < ns; s++)
        if (lvl[s] && LD_RLX(&ix->indeg[s]) != indeg[s])
            FAIL("slot %u has %u level-0 in-links, its count says %u", s, indeg[s],
                 LD_RLX(&ix->indeg[s]));
    if (n_used == 0) {
        if (ix->entry != VD_SLOT_NONE) FAIL("entry slot %u in an empty graph", ix->entry);
        goto done;
    }
    if (ix->entry >= ns || !lvl[ix->entry]) FAIL("entry slot %u is not a node", ix->entry);
    if (lvl[ix->entry] - 1u != ix->max_level)
        FAIL("entry slot %u has level %u, not the top level %u", ix->entry,
             lvl[ix->entry] - 1u, ix->max_level);
    if (!(what & VALIDATE_REACH)) goto done;
    seen = vd_calloc(ns, 1);
    if (!seen || vd_index__reach_mark(ix, ix->entry, seen) == SIZE_MAX) {
        st = vd_err_set(err, VD_NOMEM, "out of memory validating %u slots", ns);
        goto done;
    }
    for (uint32_t s = 0; s < ns; s++) {
        const vd_node *nd = vd_index__node(ix, s);
        if ((nd->flags & (NODE_USED | NODE_TOMB)) == NODE_USED && !seen[s])
            FAIL("slot %u (id %" PRIu64 ") is not reachable from the entry point", s, nd->id);
    }
#undef FAIL
done:
    vd_free(lvl);
    vd_free(stamp);
    vd_free(indeg);
    vd_free(seen);
    return st;
}

vd_status vd_index_validate(const vd_index *ix, vd_err *err)
{
    return validate(ix, VALIDATE_MAP | VALIDATE_INDEG | VALIDATE_REACH, err);
}

/* ---- stats ------------------------------------------------------------------------------- */

void vd_index_stats_get(const vd_index *ix, vd_index_stats *out)
{
    memset(out, 0, sizeof *out);
    size_t visible = LD_RLX(&ix->n_visible);
    out->n_visible = visible;
    out->n_slots = __atomic_load_n(&ix->n_slots, __ATOMIC_ACQUIRE);
    out->n_deleted = LD_RLX(&ix->n_tomb);
    uint32_t ep = __atomic_load_n(&ix->entry, __ATOMIC_ACQUIRE);
    out->max_level = ep == VD_SLOT_NONE ? 0 : LD_RLX(&ix->max_level);
    out->bytes_vectors = visible * ix->dim * sizeof(float);
    /* Level-0 lists of live points plus their share of upper blocks (~1/(M-1) of them). */
    out->bytes_links = visible * (4 + 4 * (size_t)ix->m0) +
                       visible / (ix->m > 1 ? ix->m - 1 : 1) * (4 + 4 * (size_t)ix->m);
    out->bytes_total = out->n_slots * ix->nodes.stride +
                       (size_t)LD_RLX(&ix->n_upper) * ix->upper.stride + LD_RLX(&ix->bytes_aux);
    out->simd = vd_dist_simd_name();
}
