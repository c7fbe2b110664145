/* storage/strids.c: string ids inside a write group - the user's ids of a collection with
 * id_type "str" mapped to the internal keys its points, vectors and index use.
 *
 * Layout (records.h): `sids` maps id -> key and holds the collection's sequence record
 * (next key, bytes of live ids) under the collection id alone; `skeys` maps key -> id. Both
 * are written in the group's transaction with the point, so a committed point always has its
 * mapping and a crash leaves neither.
 *
 * Keys: a new id takes the sequence's next key; keys are never reused. An upsert of an
 * existing id keeps its key (the index replaces the point's vector under it). A delete
 * removes id -> key at once (the id is free to come back, under a new key) but keeps
 * key -> id until the last slot of the index holding the key is freed (persist.c calls
 * vd_storage__sids_reap for the old occupants of freed slots): a reader that searched the
 * index before the delete became visible can still name the hit, and since keys are never
 * reused the name is the right one (engine/read.c). A key deleted in this very group is not
 * reaped even if a slot of it is freed now: the delete is not visible yet, searches still
 * return the key, and its last slot (the one the delete marked) is freed by a later vacuum,
 * which reaps it then - unless the key itself is new in this group (no reader ever saw it).
 * Rejected: deleting key -> id with the
 * point (a search that started before the delete was published would find a key nobody can
 * name); reusing the keys of deleted ids (such a search could then name the wrong point).
 *
 * Within a group: the sequence is read once per collection (vd_wcoll.seq), advanced as ids
 * are added and written back by vd_storage__persist. Keys for an op are taken from a copy
 * first and the sequence advanced only when the op is applied, so a rejected op leaves no
 * trace. Writer thread only. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/storage_int.h"

static vd_status seq_load(vd_txn *t, vd_wcoll *w, vd_err *err)
{
    if (w->seq_loaded) return VD_OK;
    vd_status s = vd_storage__sidseq_get(t, w->c->cid, &w->c->params, &w->seq, err);
    if (s == VD_OK) w->seq_loaded = 1;
    w->seq_base = w->seq.next_key;
    return s;
}

vd_status vd_storage__sids_keys(vd_txn *t, vd_wcoll *w, const vd_str_ids *ids, int assign,
                                uint64_t *keys, uint8_t *fresh, vd_err *err)
{
    const vd_collection *c = w->c;
    vd_status s = seq_load(t, w, err);
    uint64_t next = w->seq.next_key;
    for (size_t i = 0; i < ids->n && s == VD_OK; i++) {
        size_t a = vd_str_ids_start(ids, i);
        int found;
        s = vd_storage__sid_get(t, c->cid, &c->params, ids->bytes + a, ids->ends[i] - a,
                                &keys[i], &found, err);
        if (fresh) fresh[i] = !found && assign;
        if (s != VD_OK || found) continue;
        if (!assign) {
            keys[i] = VD_ID_NONE;
        } else if (next >= VD_ID_NONE - 1) {
            s = vd_err_set(err, VD_FULL, "collection %s: string id keys exhausted",
                           c->params.name);
        } else {
            keys[i] = next++;
        }
    }
    return s;
}

vd_status vd_storage__sids_add(vd_txn *t, vd_wcoll *w, const vd_str_ids *ids,
                               const uint64_t *keys, const uint8_t *fresh, vd_err *err)
{
    const vd_collection *c = w->c;
    vd_status s = seq_load(t, w, err);
    for (size_t i = 0; i < ids->n && s == VD_OK; i++) {
        if (!fresh[i]) continue;
        size_t a = vd_str_ids_start(ids, i), len = ids->ends[i] - a;
        if ((s = vd_storage__sid_put(t, c->cid, ids->bytes + a, len, keys[i], err)) != VD_OK ||
            (s = vd_storage__skey_put(t, c->cid, keys[i], ids->bytes + a, len, 0, err)) != VD_OK)
            break;
        if (keys[i] >= w->seq.next_key) w->seq.next_key = keys[i] + 1;
        w->seq.id_bytes += len;
        w->seq_dirty = 1;
    }
    return s;
}

vd_status vd_storage__sids_forget(vd_txn *t, vd_wcoll *w, const uint8_t *id, size_t len,
                                  uint64_t key, vd_err *err)
{
    vd_status s = seq_load(t, w, err);
    if (s == VD_OK) s = vd_storage__sid_del(t, w->c->cid, id, len, err);
    if (s != VD_OK) return s;
    if (key < w->seq_base) {
        if (w->n_deleted == w->cap_deleted) {
            size_t cap = w->cap_deleted ? 2 * w->cap_deleted : 64;
            uint64_t *a = vd_realloc(w->deleted, cap * sizeof *a);
            if (!a) return vd_err_set(err, VD_NOMEM, "out of memory in a write group");
            w->deleted = a;
            w->cap_deleted = cap;
        }
        w->deleted[w->n_deleted++] = key;
    }
    w->seq.id_bytes -= w->seq.id_bytes < len ? w->seq.id_bytes : len;
    w->seq_dirty = 1;
    return VD_OK;
}

vd_status vd_storage__sids_store(vd_txn *t, vd_wcoll *w, vd_err *err)
{
    if (!w->seq_dirty) return VD_OK;
    return vd_storage__sidseq_put(t, w->c->cid, &w->seq, err);
}

vd_status vd_storage__sids_reap(vd_txn *t, vd_wcoll *w, const uint64_t *keys, size_t n,
                                vd_err *err)
{
    const vd_collection *c = w->c;
    if (c->params.id_type != VD_ID_STR) return VD_OK;
    if (w->n_deleted > 1)
        qsort(w->deleted, w->n_deleted, sizeof *w->deleted, vd_storage__cmp_u64);
    for (size_t i = 0; i < n; i++) {
        vd_point_rec r;
        int found;
        if (w->n_deleted &&
            bsearch(&keys[i], w->deleted, w->n_deleted, sizeof *keys, vd_storage__cmp_u64))
            continue; /* deleted in this group: see the note at the top */
        vd_status s = vd_storage__point_get(t, c->cid, &c->params, keys[i], &r, &found, err);
        if (s == VD_OK && !found) s = vd_storage__skey_del(t, c->cid, keys[i], err);
        if (s != VD_OK) return s;
    }
    return VD_OK;
}
