/* engine/ids.c: string ids on the read side - the ids a get names turned into the internal
 * keys a collection of string ids stores its points under, the keys a search returns turned
 * back into ids - and the packed arrays (bytes + end offsets) results carry them in.
 *
 * Naming search hits: the index keeps dense internal keys, so searching a collection of
 * string ids costs what searching integer ids costs; each hit is then named through the
 * key -> id table, one LMDB lookup per hit (~1 us next to ~100 us of search per query). The
 * snapshot used for that is begun BEFORE the search: storage keeps a key's name until the
 * last slot holding the key is freed, which waits for searches in progress, and never gives
 * a key to another id (storage/strids.c), so that snapshot names every hit the search could
 * return, but those committed after it began; a second snapshot, begun after the search,
 * names those. A hit neither names is a point added and deleted and reclaimed during the
 * search: it is left out, as if the search had run a moment later.
 * Rejected: an in-memory key -> id array beside the index (memory per point, a load at open,
 * and a reader/writer protocol of its own, for lookups LMDB serves from the page cache);
 * naming in key order through one LMDB cursor (which finds a key on the leaf page of the key
 * before without descending the tree): a frame's hits (<= 128 queries x k) land on about as
 * many leaf pages as there are hits, so on 100k 128-d points at ef 64 it cut the lookups'
 * share of the daemon's CPU from ~6.3 % to ~5.3 % only, for a sort and a second storage
 * entry point. What a lookup costs is mostly cache misses in its leaf page's binary search
 * (perf: ~0.6 us per hit). */
#include "engine/engine_int.h"

#include <math.h>

vd_status vd_engine__pack_init(vd_engine__pack *pk, size_t n, vd_err *err)
{
    memset(pk, 0, sizeof *pk);
    pk->ends = vd_malloc((n ? n : 1) * sizeof *pk->ends);
    if (!pk->ends) return vd_err_set(err, VD_NOMEM, "out of memory for %zu string ids", n);
    return VD_OK;
}

vd_status vd_engine__pack_add(vd_engine__pack *pk, const uint8_t *p, size_t n, vd_err *err)
{
    if (pk->len + n > pk->cap) {
        size_t cap = pk->cap ? pk->cap : 1024;
        while (cap < pk->len + n) cap *= 2;
        uint8_t *b = vd_realloc(pk->bytes, cap);
        if (!b) return vd_err_set(err, VD_NOMEM, "out of memory for string ids");
        pk->bytes = b;
        pk->cap = cap;
    }
    if (n) memcpy(pk->bytes + pk->len, p, n);
    pk->len += n;
    pk->ends[pk->n++] = (uint32_t)pk->len;
    return VD_OK;
}

void vd_engine__pack_take(vd_engine__pack *pk, uint8_t **bytes, uint32_t **ends)
{
    /* A page of no ids still carries a (0-byte) array, so "string ids" stays visible. */
    if (!pk->bytes) pk->bytes = vd_malloc(1);
    *bytes = pk->bytes;
    *ends = pk->ends;
    memset(pk, 0, sizeof *pk);
}

void vd_engine__pack_free(vd_engine__pack *pk)
{
    vd_free(pk->bytes);
    vd_free(pk->ends);
    memset(pk, 0, sizeof *pk);
}

vd_status vd_engine__str_keys(vd_snapshot *snap, const vd_collection *c, const vd_str_ids *ids,
                              uint64_t *keys, vd_err *err)
{
    for (size_t i = 0; i < ids->n; i++) {
        size_t a = vd_str_ids_start(ids, i);
        int found;
        vd_status s = vd_snapshot_str_key(snap, c, ids->bytes + a, ids->ends[i] - a, &keys[i],
                                          &found, err);
        if (s != VD_OK) return s;
    }
    return VD_OK;
}

/* A hit's name while the hits are being named: bytes in one of two packs, or none yet. */
typedef struct hit_name {
    uint32_t off, len;
    uint8_t named, late; /* late: found by the second snapshot, in the second pack */
} hit_name;

/* Names the still unnamed hits of r through snap into pk. The first pass (every hit
 * unnamed) adds one entry per hit, in hit order, empty for padding and for hits it cannot
 * name, so that usually pk is already the result; a later pass adds only what it finds. */
static vd_status name_pass(vd_snapshot *snap, const vd_collection *c, const vd_search_result *r,
                           hit_name *hn, vd_engine__pack *pk, int late, size_t *n_unnamed,
                           vd_err *err)
{
    size_t n = (size_t)r->nq * r->k;
    *n_unnamed = 0;
    for (size_t i = 0; i < n; i++) {
        if (hn[i].named) continue;
        const uint8_t *id = NULL;
        size_t len = 0;
        int found = 0;
        vd_status s = r->ids[i] == VD_ID_NONE
                          ? VD_OK
                          : vd_snapshot_key_str(snap, c, r->ids[i], &id, &len, &found, err);
        if (s != VD_OK) return s;
        if (r->ids[i] != VD_ID_NONE && !found) (*n_unnamed)++;
        if (found) hn[i] = (hit_name){(uint32_t)pk->len, (uint32_t)len, 1, (uint8_t)late};
        if ((found || !late) && (s = vd_engine__pack_add(pk, id, len, err)) != VD_OK) return s;
    }
    return VD_OK;
}

/* Leaves out the hits nobody could name: each row keeps its order, padded at its end. */
static void drop_unnamed(vd_search_result *r, hit_name *hn)
{
    for (size_t q = 0; q < r->nq; q++) {
        size_t base = q * r->k, w = 0;
        for (size_t h = 0; h < r->k; h++) {
            size_t i = base + h;
            if (r->ids[i] != VD_ID_NONE && !hn[i].named) continue;
            size_t o = base + w++;
            r->ids[o] = r->ids[i];
            r->distances[o] = r->distances[i];
            hn[o] = hn[i];
        }
        for (; w < r->k; w++) {
            r->ids[base + w] = VD_ID_NONE;
            r->distances[base + w] = INFINITY;
            hn[base + w] = (hit_name){0, 0, 0, 0};
        }
    }
}

/* The rare path: some hits were named by the second snapshot or dropped; the result is
 * rebuilt from both packs in hit order. */
static vd_status repack(vd_search_result *r, const hit_name *hn, const vd_engine__pack *first,
                        const vd_engine__pack *late, vd_engine__pack *out, vd_err *err)
{
    size_t n = (size_t)r->nq * r->k;
    vd_status s = vd_engine__pack_init(out, n, err);
    for (size_t i = 0; i < n && s == VD_OK; i++) {
        const vd_engine__pack *src = hn[i].late ? late : first;
        s = hn[i].named ? vd_engine__pack_add(out, src->bytes + hn[i].off, hn[i].len, err)
                        : vd_engine__pack_add(out, NULL, 0, err);
    }
    return s;
}

vd_status vd_engine__name_hits(vd_engine *e, const vd_collection *c, vd_search_result *r,
                               vd_snapshot **snap, vd_err *err)
{
    size_t n = (size_t)r->nq * r->k, n_unnamed = 0;
    vd_engine__pack names, late, out;
    hit_name *hn = vd_calloc(n ? n : 1, sizeof *hn);
    memset(&late, 0, sizeof late);
    memset(&out, 0, sizeof out);
    vd_status s = vd_engine__pack_init(&names, n, err);
    if (s == VD_OK && !hn) s = vd_err_set(err, VD_NOMEM, "search: out of memory for %zu hits", n);
    if (s == VD_OK) s = name_pass(*snap, c, r, hn, &names, 0, &n_unnamed, err);
    if (s == VD_OK && !n_unnamed) {
        vd_engine__pack_take(&names, &r->str_ids, &r->str_id_ends);
    } else if (s == VD_OK) { /* committed after the first snapshot began: see the top */
        vd_snapshot_end(*snap);
        *snap = NULL;
        if ((s = vd_snapshot_begin(e->store, snap, err)) == VD_OK &&
            (s = vd_engine__pack_init(&late, n, err)) == VD_OK)
            s = name_pass(*snap, c, r, hn, &late, 1, &n_unnamed, err);
        if (s == VD_OK && n_unnamed) drop_unnamed(r, hn);
        if (s == VD_OK && (s = repack(r, hn, &names, &late, &out, err)) == VD_OK)
            vd_engine__pack_take(&out, &r->str_ids, &r->str_id_ends);
    }
    vd_engine__pack_free(&out);
    vd_engine__pack_free(&late);
    vd_engine__pack_free(&names);
    vd_free(hn);
    return s;
}
