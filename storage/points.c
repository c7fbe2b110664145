/* storage/points.c: the one path of a point's payload changes inside a write group.
 *
 * Every write that changes what is stored for a point's payload - an upsert (new point or
 * replaced), a set_payload (merged or replaced), a delete - goes through these two
 * functions, in the group's transaction, with the old points record in hand (its payload
 * borrowed from LMDB, valid until the put or delete below). So the group's working counts
 * (points, payload bytes) are kept in one place, and so is anything that must follow a
 * payload from its old value to its new one: the payload indexes' maintenance
 * (vd_storage__payload_changed: the old slot's values go, the new record is indexed at
 * persist), which also lists the key for slot resolution.
 * Rejected: each op writing points records itself (three copies of the counting, and three
 * places for index maintenance to miss one). Not here: re-pointing a record at another slot
 * (persist.c), which changes no payload, and the bulk import, which writes a new collection
 * whole. Writer thread only. */
#include "storage/storage_int.h"

vd_status vd_storage__point_set(vd_txn *t, vd_wcoll *w, uint64_t key, const vd_point_rec *old,
                                uint32_t slot, const uint8_t *payload, size_t len, vd_err *err)
{
    vd_status s = vd_storage__payload_changed(w, key, old ? old->slot : VD_SLOT_UNRESOLVED, err);
    if (s == VD_OK) s = vd_storage__point_put(t, w->c->cid, key, slot, payload, len, 0, err);
    if (s != VD_OK) return s;
    if (old) w->payload_bytes -= old->payload_len;
    else w->count++;
    w->payload_bytes += len;
    return VD_OK;
}

vd_status vd_storage__point_remove(vd_txn *t, vd_wcoll *w, uint64_t key, const vd_point_rec *old,
                                   vd_err *err)
{
    vd_status s = vd_storage__payload_changed(w, key, old->slot, err);
    if (s == VD_OK) s = vd_storage__point_del(t, w->c->cid, key, err);
    if (s != VD_OK) return s;
    w->count--;
    w->payload_bytes -= old->payload_len;
    return VD_OK;
}
