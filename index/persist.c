/* index/persist.c: what storage/ needs to keep the graph on disk: the graph header, the
 * per-slot export (vector view and links record) and the load of a stored graph.
 *
 * Links record (VD_INDEX_LINKS_FORMAT 1), little-endian:
 *     u8 format, u8 level, u8 flags (bit 0: tombstone), u8 zero,
 *     then for each level 0..level: u32 count, count x u32 slot.
 * Vectors and ids are not in it: storage keeps them in the immutable vector record. Epochs
 * are not persisted: after a load every non-tombstone node is visible and epochs restart.
 * What to rewrite after a group of mutations is change tracking's business (changes.c).
 *
 * Loading treats every byte as hostile: a record is checked on its own in
 * vd_index_load_slot (format - a newer one is VD_VERSION -, exact length, level <= 32, counts
 * within M limits, no self links, finite vector, non-zero under cosine, one live slot per id)
 * before touching the index, and the cross-record invariants (targets in range and filled,
 * target levels, no duplicate links, counters, entry point) are checked by the validator
 * (validate.c) from vd_index_load_finish. Nothing is dereferenced through a stored link
 * before that check passed. */
#include <inttypes.h>
#include <stdlib.h>

#include "index/index_int.h"

#define LINKS_FLAG_TOMB 1u

/* ---- export ------------------------------------------------------------------------------ */

void vd_index_header_get(const vd_index *ix, vd_index_header *out)
{
    out->entry_slot = ix->entry;
    out->max_level = ix->entry == VD_SLOT_NONE ? 0 : ix->max_level;
    out->n_slots = ix->n_slots;
}

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
    *vec_out = ix->quant ? vd_index__pend_get(ix, slot) : (const float *)vd_index__rep(ix, slot);
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

/* A links record on its own: header, shape and lengths, no self links. *level_out and
 * *tomb_out on VD_OK. Links to other slots are checked by load_finish's validation, once
 * every slot is known and before anything may search. */
static vd_status check_links_record(const vd_index *ix, uint32_t slot, const uint8_t *links,
                                    size_t links_len, unsigned *level_out, int *tomb_out,
                                    vd_err *err)
{
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
        for (uint32_t i = 0; i < c; i++)
            if (vd_get_u32le(links + off + 4 * (size_t)i) == slot)
                return vd_err_set(err, VD_CORRUPT, "slot %u links to itself at level %u", slot,
                                  l);
        off += 4 * (size_t)c;
    }
    if (off != links_len)
        return vd_err_set(err, VD_CORRUPT, "slot %u: %zu trailing bytes after the links record",
                          slot, links_len - off);
    *level_out = level;
    *tomb_out = flags & LINKS_FLAG_TOMB;
    return VD_OK;
}

/* A stored id and vector: the same checks as an insert (vd_index__norm2), as VD_CORRUPT. */
static vd_status check_stored_vector(const vd_index *ix, uint32_t slot, uint64_t id,
                                     const float *vec, vd_err *err)
{
    if (id == VD_ID_NONE)
        return vd_err_set(err, VD_CORRUPT, "slot %u: id 2^64-1 is reserved", slot);
    uint32_t bad;
    double s = vd_index__norm2(vec, ix->dim, &bad);
    if (bad < ix->dim)
        return vd_err_set(err, VD_CORRUPT, "slot %u (id %" PRIu64 "): component %u is not finite",
                          slot, id, bad);
    if (ix->metric == VD_METRIC_COSINE && s == 0)
        return vd_err_set(err, VD_CORRUPT, "slot %u (id %" PRIu64 "): zero vector under cosine",
                          slot, id);
    return VD_OK;
}

/* Fills the checked slot from its record (room for it and its upper blocks reserved). */
static void fill_slot(vd_index *ix, uint32_t slot, uint64_t id, const float *vec,
                      const uint8_t *links, unsigned level, int tomb)
{
    vd_node *nd = vd_index__node(ix, slot);
    vd_index__encode(ix, vd_index__rep(ix, slot), vec); /* int8: the codes, from the floats */
    nd->id = id;
    nd->level = (uint8_t)level;
    nd->flags = NODE_USED | (tomb ? NODE_TOMB : 0);
    nd->upper = level ? vd_index__alloc_upper_chain(ix, level) : VD_SLOT_NONE;
    size_t off = 4;
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
}

vd_status vd_index_load_slot(vd_index *ix, uint32_t slot, uint64_t id, const float *vec,
                             const uint8_t *links, size_t links_len, vd_err *err)
{
    if (!ix || !vec || (!links && links_len))
        return vd_err_set(err, VD_INVALID, "index, vector and links are required");
    if (ix->n_free || ix->n_pending || ix->entry != VD_SLOT_NONE)
        return vd_err_set(err, VD_INVALID, "slot %u: load into an index that is not empty", slot);
    if (slot >= VD_SLOT_NONE - 2)
        return vd_err_set(err, VD_CORRUPT, "slot %u is out of range", slot);
    unsigned level = 0;
    int tomb = 0;
    vd_status st = check_links_record(ix, slot, links, links_len, &level, &tomb, err);
    if (st || (st = check_stored_vector(ix, slot, id, vec, err))) return st;
    if ((st = vd_index__reserve_slots(ix, (uint64_t)slot + 1, err))) return st;
    if (slot < ix->n_slots && (vd_index__node(ix, slot)->flags & NODE_USED))
        return vd_err_set(err, VD_CORRUPT, "slot %u is stored twice", slot);
    if ((st = vd_index__reserve_upper(ix, level, err))) return st;
    uint32_t other;
    if (!tomb && vd_idmap_reserve(&ix->map, ix->map.n + 1))
        return vd_err_set(err, VD_NOMEM, "out of memory loading slot %u", slot);
    if (!tomb) vd_index__node(ix, slot)->id = id; /* the map's key (idmap.c) */
    if (!tomb && vd_idmap_add(&ix->map, id, slot, &other))
        return vd_err_set(err, VD_CORRUPT, "id %" PRIu64 " is stored in slots %u and %u", id,
                          other, slot);
    fill_slot(ix, slot, id, vec, links, level, tomb);
    return VD_OK;
}

/* The stored header against the loaded slots: n_slots, and an entry point that is a stored
 * node at the top level (none in an empty graph). */
static vd_status check_header(const vd_index *ix, const vd_index_header *h, size_t used,
                              vd_err *err)
{
    if (h->n_slots < ix->n_slots)
        return vd_err_set(err, VD_CORRUPT, "header says %u slots but slot %u is stored",
                          h->n_slots, ix->n_slots - 1);
    if (h->n_slots >= VD_SLOT_NONE - 2)
        return vd_err_set(err, VD_CORRUPT, "header n_slots %u is out of range", h->n_slots);
    if (used == 0) {
        if (h->entry_slot != VD_SLOT_NONE)
            return vd_err_set(err, VD_CORRUPT, "entry slot %u in an empty graph", h->entry_slot);
        return VD_OK;
    }
    if (h->entry_slot >= ix->n_slots || !(vd_index__node(ix, h->entry_slot)->flags & NODE_USED))
        return vd_err_set(err, VD_CORRUPT, "entry slot %u is not a stored node", h->entry_slot);
    if (vd_index__node(ix, h->entry_slot)->level != h->max_level)
        return vd_err_set(err, VD_CORRUPT, "entry slot %u has level %u, header says %u",
                          h->entry_slot, vd_index__node(ix, h->entry_slot)->level, h->max_level);
    return VD_OK;
}

/* Room for n entries in *a (capacity *cap), exactly: a load knows its sizes. */
static vd_status reserve_exact(uint32_t **a, size_t *cap, size_t n, const char *what,
                               vd_err *err)
{
    if (*cap >= n) return VD_OK;
    uint32_t *p = vd_realloc(*a, (n + 1) * sizeof(uint32_t));
    if (!p) return vd_err_set(err, VD_NOMEM, "out of memory for %zu %s", n, what);
    *a = p;
    *cap = n + 1;
    return VD_OK;
}

static int u32_desc_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x < y) - (x > y);
}

vd_status vd_index_load_finish(vd_index *ix, const vd_index_header *h, vd_err *err)
{
    if (!ix || !h) return vd_err_set(err, VD_INVALID, "index and header are required");
    size_t used = ix->n_live + LD_RLX(&ix->n_tomb);
    vd_status st = check_header(ix, h, used, err);
    if (st || (st = vd_index__reserve_slots(ix, h->n_slots, err)) ||
        (st = reserve_exact(&ix->free_slots, &ix->cap_free, h->n_slots - used, "free slots",
                            err)) ||
        (st = reserve_exact(&ix->pending, &ix->cap_pending, LD_RLX(&ix->n_tomb), "tombstones",
                            err)))
        return st;
    ST_REL(&ix->n_slots, h->n_slots);
    ix->max_level = used ? h->max_level : 0;
    ix->entry = used ? h->entry_slot : VD_SLOT_NONE;
    /* The id map is consistent by construction (load_slot refused repeated ids) and
     * reachability is restored below rather than refused: a graph stored between two
     * reachability passes is still a valid graph. */
    st = vd_index__validate(ix, 0, err);
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
    /* Descending, so that the lowest free slot is on top of the stack: reused first. */
    if (ix->n_free) qsort(ix->free_slots, ix->n_free, sizeof(uint32_t), u32_desc_cmp);
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
