/* storage/snapshot.c: read views of what is committed (vd_snapshot_*), for `get`, the
 * payloads of search hits and an int8 index's re-ranking (vectors by slot).
 *
 * A snapshot is one MDB_RDONLY transaction (the environment is MDB_NOTLS, so any thread may
 * begin it and another end it) that passed the reader gate (env.c): a map resize waits for
 * it to end, which is why a thread must not begin a second one while it holds one. Reads
 * decode through db.c like every other reader: a points record shorter than its slot, a
 * vector record of the wrong length or carrying another id is VD_CORRUPT, never trusted.
 *
 * Pointers returned stay valid until vd_snapshot_end: payloads and aligned vectors point
 * into LMDB's map; a vector LMDB stored at an address not 4-aligned (it aligns values to 2
 * bytes) is copied into a list of copies owned by the snapshot (or, by slot, into the
 * caller's scratch: a re-rank reads dozens per query and keeps none). Float searches do not
 * need a snapshot: they run on the in-memory index. */
#include <inttypes.h>
#include <stdio.h>

#include "storage/storage_int.h"

typedef struct snap_copy {
    struct snap_copy *next;
    float v[];
} snap_copy;

struct vd_snapshot {
    vd_txn t;
    snap_copy *copies; /* aligned copies of vectors LMDB stored at odd addresses */
};

vd_status vd_snapshot_begin(vd_store *st, vd_snapshot **out, vd_err *err)
{
    *out = NULL;
    vd_snapshot *s = vd_calloc(1, sizeof *s);
    if (!s) return vd_err_set(err, VD_NOMEM, "out of memory beginning a snapshot");
    vd_status rs = vd_storage__read_begin(st, &s->t, err, "beginning a read snapshot");
    if (rs != VD_OK) {
        vd_free(s);
        return rs;
    }
    *out = s;
    return VD_OK;
}

void vd_snapshot_end(vd_snapshot *s)
{
    if (!s) return;
    vd_storage__read_end(&s->t);
    while (s->copies) {
        snap_copy *n = s->copies->next;
        vd_free(s->copies);
        s->copies = n;
    }
    vd_free(s);
}

/* The vector of `id` stored in `slot`, aligned and valid until the snapshot ends. */
static vd_status snap_vector(vd_snapshot *s, const vd_collection *c, uint64_t id,
                             uint32_t slot, const float **out, vd_err *err)
{
    vd_vector_rec vr;
    int found;
    vd_status st = vd_storage__vector_get(&s->t, c->cid, &c->params, slot, &vr, &found, err);
    if (st != VD_OK) return st;
    if (!found || vr.id != id)
        return vd_err_set(err, VD_CORRUPT, "collection %s: point %" PRIu64 " has no matching "
                          "vector record (slot %u)", c->params.name, id, slot);
    size_t vb = (size_t)c->params.dim * sizeof(float);
    snap_copy *cp = NULL;
    if ((uintptr_t)vr.vec & (sizeof(float) - 1)) {
        if (!(cp = vd_malloc(sizeof *cp + vb)))
            return vd_err_set(err, VD_NOMEM, "out of memory reading a vector");
        cp->next = s->copies;
        s->copies = cp;
    }
    *out = vd_storage__vector_floats(&vr, c->params.dim, cp ? cp->v : NULL);
    return VD_OK;
}

vd_status vd_snapshot_get(vd_snapshot *s, const vd_collection *c, uint64_t id, int *found_out,
                          const float **vec_out, const uint8_t **payload_out,
                          size_t *payload_len_out, vd_err *err)
{
    vd_point_rec r;
    *found_out = 0;
    if (vec_out) *vec_out = NULL;
    if (payload_out) *payload_out = NULL;
    if (payload_len_out) *payload_len_out = 0;
    vd_status st = vd_storage__point_get(&s->t, c->cid, &c->params, id, &r, found_out, err);
    if (st != VD_OK || !*found_out) {
        *found_out = 0;
        return st;
    }
    if (vec_out && (st = snap_vector(s, c, id, r.slot, vec_out, err)) != VD_OK) {
        *found_out = 0;
        return st;
    }
    if (payload_out) *payload_out = r.payload;
    if (payload_len_out) *payload_len_out = r.payload_len;
    return VD_OK;
}

const float *vd_snapshot_slot_vector(vd_snapshot *s, const vd_collection *c, uint32_t slot,
                                     uint64_t id, float *scratch, vd_err *err)
{
    vd_vector_rec vr;
    int found = 0;
    if (vd_storage__vector_get(&s->t, c->cid, &c->params, slot, &vr, &found, err) != VD_OK ||
        !found || vr.id != id)
        return NULL;
    return vd_storage__vector_floats(&vr, c->params.dim, scratch);
}
