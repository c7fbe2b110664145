/* storage/records.c: the record codec (records.h has the layout).
 *
 * Why one codec: a record's offsets written in several files drift apart, and the copies
 * disagree on what they accept (a points record read with a size check in one place and
 * without in another; a vector record exact in one, ">= 8 bytes" in another). Here every kind
 * has one encoder, one decoder and one length rule, and every reader of stored bytes - open
 * and reload, the write group, snapshots, check, import, backup - goes through them. Stored
 * bytes are hostile input: a decoder checks the length before it reads a byte, and a decoded
 * view never points past the record.
 *
 * Choices:
 *  - Keys are big-endian with the collection id first (records.h), so that LMDB's byte order
 *    is numeric order and a collection is one contiguous range; values are little-endian
 *    like the hosts we run on, so a vector record's floats are used in place.
 *  - Payloads live in the points record, not a table of their own: `get` costs one lookup for
 *    the payload and one for the vector, and a payload-less point costs 4 bytes.
 *  - Vectors are stored once, in `vectors`, written when a slot is filled; `points` names
 *    the slot. Rejected: the vector in the points record as well (dim * 4 bytes more per
 *    point, to save the id -> slot bookkeeping of persist.c).
 *  - The links record is the index's bytes verbatim: the index owns its format and decodes
 *    it (vd_index_load_slot), so this file frames nothing and knows no offset inside it.
 *  - Rejected: structs written with memcpy (padding and endianness become the format);
 *    a serialization library for fixed records of a few integers (a dependency and a
 *    per-record header for nothing).
 *
 * String ids: sids maps an id to its internal key (the key a collection's points, vectors
 * and index use), skeys maps back; both are written with the point, in the same transaction
 * (storage/strids.c). The sequence record hands out keys in order and never twice, so a key
 * names one id for the life of the collection. Rejected: a hash of the id as the key
 * (collisions would need probing, and then the key is not a function of the id anyway); the
 * id inside the points record (readers map a search hit's key to its id, which needs a
 * table keyed by key either way; payload code would have to skip it); an in-memory map
 * (memory per point, a load at open, and its own reader/writer synchronization).
 *
 * Adding a record kind (payload postings, a string-id map, int8 codes): one line in
 * VD_STORAGE_DB_MAP, a key encoder/decoder and an encode/decode pair with its length rule
 * here, and db.c accessors on top. Opening, dropping a collection and the orphan check of
 * vd_store_check pick the table up from the map. */
#include <inttypes.h>
#include <string.h>
#include <stdlib.h>

#include "storage/storage_int.h"

static const vd_db_info db_table[VD_DB_COUNT] = {
#define X(id, name, key_bytes) [VD_DB_##id] = {name, key_bytes},
    VD_STORAGE_DB_MAP(X)
#undef X
};

const vd_db_info *vd_storage__db_info(vd_db db)
{
    return (unsigned)db < VD_DB_COUNT ? &db_table[db] : NULL;
}

int vd_storage__cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- keys -------------------------------------------------------------------------------- */
void vd_storage__key_cid(uint8_t k[VD_KEY_CID_BYTES], uint32_t cid) { vd_put_u32be(k, cid); }

void vd_storage__key_point(uint8_t k[VD_KEY_POINT_BYTES], uint32_t cid, uint64_t id)
{
    vd_put_u32be(k, cid);
    vd_put_u64be(k + 4, id);
}

void vd_storage__key_slot(uint8_t k[VD_KEY_SLOT_BYTES], uint32_t cid, uint32_t slot)
{
    vd_put_u32be(k, cid);
    vd_put_u32be(k + 4, slot);
}

int vd_storage__key_point_decode(const void *k, size_t n, uint32_t cid, uint64_t *id)
{
    if (n != VD_KEY_POINT_BYTES || vd_get_u32be(k) != cid) return 0;
    *id = vd_get_u64be((const uint8_t *)k + 4);
    return 1;
}

int vd_storage__key_slot_decode(const void *k, size_t n, uint32_t cid, uint32_t *slot)
{
    if (n != VD_KEY_SLOT_BYTES || vd_get_u32be(k) != cid) return 0;
    *slot = vd_get_u32be((const uint8_t *)k + 4);
    return 1;
}

int vd_storage__key_cid_decode(vd_db db, const void *k, size_t n, uint32_t *cid)
{
    const vd_db_info *d = vd_storage__db_info(db);
    if (!d || !d->cid_key_bytes) return 0;
    if (d->cid_key_bytes == VD_KEY_VARIABLE ? n < VD_KEY_CID_BYTES : n != d->cid_key_bytes)
        return 0;
    *cid = vd_get_u32be(k);
    return 1;
}

size_t vd_storage__key_sid(uint8_t k[VD_KEY_SID_MAX], uint32_t cid, const uint8_t *id,
                           size_t len)
{
    if (len > VD_SID_SPLIT) len = VD_SID_SPLIT;
    vd_put_u32be(k, cid);
    if (len) memcpy(k + VD_KEY_CID_BYTES, id, len);
    return VD_KEY_CID_BYTES + len;
}

int vd_storage__key_sid_decode(const void *k, size_t n, uint32_t cid, const uint8_t **id,
                               size_t *len, int *bucket)
{
    if (n <= VD_KEY_CID_BYTES || n > VD_KEY_SID_MAX || vd_get_u32be(k) != cid) return 0;
    *id = (const uint8_t *)k + VD_KEY_CID_BYTES;
    *len = n - VD_KEY_CID_BYTES;
    *bucket = *len == VD_SID_SPLIT;
    return 1;
}

/* ---- meta values ------------------------------------------------------------------------- */
void vd_storage__meta_u32_encode(uint8_t out[VD_META_U32_BYTES], uint32_t v)
{
    vd_put_u32le(out, v);
}

vd_status vd_storage__magic_decode(const void *p, size_t n, vd_err *err)
{
    if (n != sizeof VD_STORE_MAGIC || memcmp(p, VD_STORE_MAGIC, n) != 0)
        return vd_err_set(err, VD_CORRUPT, "no vectord magic");
    return VD_OK;
}

vd_status vd_storage__format_decode(const void *p, size_t n, uint32_t *ver, vd_err *err)
{
    *ver = 0;
    if (n != VD_META_U32_BYTES || (*ver = vd_get_u32le(p)) == 0)
        return vd_err_set(err, VD_CORRUPT, "the format version record is missing or malformed");
    if (*ver > VD_STORAGE_FORMAT_VERSION)
        return vd_err_set(err, VD_VERSION, "was written in storage format %u; this vectord "
                          "reads format %u at most: upgrade vectord", *ver,
                          VD_STORAGE_FORMAT_VERSION);
    return VD_OK;
}

vd_status vd_storage__next_cid_decode(const void *p, size_t n, uint32_t *cid, vd_err *err)
{
    *cid = 0;
    if (n != VD_META_U32_BYTES || (*cid = vd_get_u32le(p)) == 0)
        return vd_err_set(err, VD_CORRUPT, "the next collection id is malformed (%zu bytes)", n);
    return VD_OK;
}

/* ---- catalog record ----------------------------------------------------------------------
 * u32 version | cid | dim | metric | m | ef_construction | ef_search | entry_slot |
 * max_level | n_slots (u32 each) | created_unix_s | count | payload_bytes | seed (u64 each)
 * then, from version 2: id_type | quantization (u32 each). Version 1 (72 bytes, written
 * before string ids and quantization existed) still decodes: int ids, no quantization.
 * Always written as the newest version. */
void vd_storage__catalog_encode(const vd_catalog_rec *r, uint8_t out[VD_CATALOG_REC_BYTES])
{
    vd_put_u32le(out + 0, VD_CATALOG_REC_VERSION);
    vd_put_u32le(out + 4, r->cid);
    vd_put_u32le(out + 8, r->params.dim);
    vd_put_u32le(out + 12, (uint32_t)r->params.metric);
    vd_put_u32le(out + 16, r->params.m);
    vd_put_u32le(out + 20, r->params.ef_construction);
    vd_put_u32le(out + 24, r->params.ef_search);
    vd_put_u32le(out + 28, r->hdr.entry_slot);
    vd_put_u32le(out + 32, r->hdr.max_level);
    vd_put_u32le(out + 36, r->hdr.n_slots);
    vd_put_u64le(out + 40, r->created_unix_s);
    vd_put_u64le(out + 48, r->count);
    vd_put_u64le(out + 56, r->payload_bytes);
    vd_put_u64le(out + 64, r->seed);
    vd_put_u32le(out + 72, (uint32_t)r->params.id_type);
    vd_put_u32le(out + 76, (uint32_t)r->params.quantization);
}

static vd_status catalog_name(const void *name, size_t name_len, vd_catalog_rec *r, vd_err *err)
{
    /* A NUL inside would cut the name short of its key: the store would write it back under
     * another key. */
    if (name_len == 0 || name_len > VD_NAME_MAX || memchr(name, 0, name_len))
        return vd_err_set(err, VD_CORRUPT, "catalog key of %zu bytes is not a collection name",
                          name_len);
    memcpy(r->params.name, name, name_len);
    r->params.name[name_len] = 0;
    if (vd_name_check(r->params.name, NULL) != VD_OK)
        return vd_err_set(err, VD_CORRUPT, "catalog key is not a valid collection name");
    return VD_OK;
}

vd_status vd_storage__catalog_decode(const void *name, size_t name_len, const void *p, size_t n,
                                     vd_catalog_rec *r, vd_err *err)
{
    memset(r, 0, sizeof *r);
    vd_status s = catalog_name(name, name_len, r, err);
    if (s != VD_OK) return s;
    const uint8_t *b = p;
    uint32_t version = n >= 4 ? vd_get_u32le(b) : 0;
    if (version > VD_CATALOG_REC_VERSION)
        return vd_err_set(err, VD_VERSION, "catalog record of collection %s has version %u; "
                          "this vectord reads %u", r->params.name, version,
                          VD_CATALOG_REC_VERSION);
    size_t want = version == 1 ? VD_CATALOG_REC_V1_BYTES : VD_CATALOG_REC_BYTES;
    if (version == 0 || n != want)
        return vd_err_set(err, VD_CORRUPT, "catalog record of collection %s is malformed "
                          "(%zu bytes)", r->params.name, n);
    r->cid = vd_get_u32le(b + 4);
    r->params.dim = vd_get_u32le(b + 8);
    r->params.metric = (vd_metric)vd_get_u32le(b + 12);
    r->params.m = vd_get_u32le(b + 16);
    r->params.ef_construction = vd_get_u32le(b + 20);
    r->params.ef_search = vd_get_u32le(b + 24);
    r->hdr.entry_slot = vd_get_u32le(b + 28);
    r->hdr.max_level = vd_get_u32le(b + 32);
    r->hdr.n_slots = vd_get_u32le(b + 36);
    r->created_unix_s = vd_get_u64le(b + 40);
    r->count = vd_get_u64le(b + 48);
    r->payload_bytes = vd_get_u64le(b + 56);
    r->seed = vd_get_u64le(b + 64);
    if (version >= 2) {
        r->params.id_type = (vd_id_type)vd_get_u32le(b + 72);
        r->params.quantization = (vd_quantization)vd_get_u32le(b + 76);
    }
    /* Stored parameters were checked with defaults filled in: a 0 that would now default
     * (or any value the table refuses) is damage. */
    vd_collection_params q = r->params;
    if (vd_storage__params_check(&q, NULL) != VD_OK || q.m != r->params.m ||
        q.ef_construction != r->params.ef_construction || q.ef_search != r->params.ef_search)
        return vd_err_set(err, VD_CORRUPT, "catalog record of collection %s has invalid "
                          "parameters", r->params.name);
    if (r->count > r->hdr.n_slots)
        return vd_err_set(err, VD_CORRUPT, "catalog record of collection %s counts %" PRIu64
                          " points in %u slots", r->params.name, r->count, r->hdr.n_slots);
    return VD_OK;
}

/* ---- points record: slot u32 | payload bytes --------------------------------------------- */
size_t vd_storage__point_size(size_t payload_len) { return VD_POINT_REC_MIN + payload_len; }

void vd_storage__point_encode(uint8_t *out, uint32_t slot, const uint8_t *payload, size_t len)
{
    vd_put_u32le(out, slot);
    if (len) memcpy(out + VD_POINT_REC_MIN, payload, len);
}

vd_status vd_storage__point_decode(const void *p, size_t n, vd_point_rec *r, vd_err *err)
{
    memset(r, 0, sizeof *r);
    if (n < VD_POINT_REC_MIN)
        return vd_err_set(err, VD_CORRUPT, "points record of %zu bytes is malformed (at least "
                          "%d)", n, VD_POINT_REC_MIN);
    r->slot = vd_get_u32le(p);
    r->payload_len = n - VD_POINT_REC_MIN;
    if (r->payload_len) r->payload = (const uint8_t *)p + VD_POINT_REC_MIN;
    return VD_OK;
}

/* ---- vector record: id u64 | float32[dim] ------------------------------------------------ */
size_t vd_storage__vector_size(uint32_t dim) { return 8 + (size_t)dim * sizeof(float); }

void vd_storage__vector_encode(uint8_t *out, uint64_t id, const float *vec, uint32_t dim)
{
    vd_put_u64le(out, id);
    memcpy(out + 8, vec, (size_t)dim * sizeof(float));
}

vd_status vd_storage__vector_decode(const void *p, size_t n, uint32_t dim, vd_vector_rec *r,
                                    vd_err *err)
{
    memset(r, 0, sizeof *r);
    if (n != vd_storage__vector_size(dim))
        return vd_err_set(err, VD_CORRUPT, "vector record has %zu bytes, expected %zu", n,
                          vd_storage__vector_size(dim));
    r->id = vd_get_u64le(p);
    r->vec = (const uint8_t *)p + 8;
    return VD_OK;
}

const float *vd_storage__vector_floats(const vd_vector_rec *r, uint32_t dim, float *scratch)
{
    if (((uintptr_t)r->vec & (sizeof(float) - 1)) == 0) return (const float *)r->vec;
    memcpy(scratch, r->vec, (size_t)dim * sizeof(float));
    return scratch;
}

/* ---- string ids: sids value, skeys value, the sequence record ---------------------------- */
void vd_storage__sid_encode(uint8_t out[VD_SID_REC_BYTES], uint64_t key)
{
    vd_put_u64le(out, key);
}

vd_status vd_storage__sid_decode(const void *p, size_t n, uint64_t *key, vd_err *err)
{
    *key = 0;
    if (n != VD_SID_REC_BYTES)
        return vd_err_set(err, VD_CORRUPT, "string id record has %zu bytes, expected %d", n,
                          VD_SID_REC_BYTES);
    *key = vd_get_u64le(p);
    if (*key == VD_ID_NONE)
        return vd_err_set(err, VD_CORRUPT, "string id record names the reserved key");
    return VD_OK;
}

/* Buckets: see records.h. Rests are at most 5 bytes, so a bucket stays small unless a
 * client makes many ids that differ only in their last bytes past the 507th. */
static int cmp_rest(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

vd_status vd_storage__sid_bucket_decode(const void *p, size_t n, vd_err *err)
{
    const uint8_t *b = p, *prev = NULL;
    size_t off = 0, prev_len = 0;
    while (off < n) {
        size_t rl = b[off];
        if (rl > VD_SID_REST_MAX || n - off < 1 + rl + 8)
            return vd_err_set(err, VD_CORRUPT, "string id bucket of %zu bytes is malformed at "
                              "byte %zu", n, off);
        const uint8_t *rest = b + off + 1;
        if (prev && cmp_rest(prev, prev_len, rest, rl) >= 0)
            return vd_err_set(err, VD_CORRUPT, "string id bucket: entries out of order at byte "
                              "%zu", off);
        if (vd_get_u64le(rest + rl) == VD_ID_NONE)
            return vd_err_set(err, VD_CORRUPT, "string id bucket names the reserved key");
        prev = rest;
        prev_len = rl;
        off += 1 + rl + 8;
    }
    if (!prev) return vd_err_set(err, VD_CORRUPT, "string id bucket is empty");
    return VD_OK;
}

int vd_storage__sid_bucket_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **rest,
                                size_t *rest_len, uint64_t *key)
{
    if (*off >= n) return 0;
    *rest_len = p[*off];
    *rest = p + *off + 1;
    *key = vd_get_u64le(*rest + *rest_len);
    *off += 1 + *rest_len + 8;
    return 1;
}

int vd_storage__sid_bucket_find(const uint8_t *p, size_t n, const uint8_t *rest,
                                size_t rest_len, uint64_t *key)
{
    size_t off = 0, rl;
    const uint8_t *r;
    uint64_t k;
    while (vd_storage__sid_bucket_next(p, n, &off, &r, &rl, &k)) {
        int c = cmp_rest(r, rl, rest, rest_len);
        if (c == 0) return *key = k, 1;
        if (c > 0) break;
    }
    return 0;
}

size_t vd_storage__sid_bucket_edit(const uint8_t *p, size_t n, const uint8_t *rest,
                                   size_t rest_len, uint64_t key, uint8_t *out)
{
    size_t off = 0, o = 0, rl, at;
    const uint8_t *r;
    uint64_t k;
    int placed = key == VD_ID_NONE;
    for (at = off; vd_storage__sid_bucket_next(p, n, &off, &r, &rl, &k); at = off) {
        int c = cmp_rest(r, rl, rest, rest_len);
        if (c >= 0 && !placed) {
            out[o++] = (uint8_t)rest_len;
            if (rest_len) memcpy(out + o, rest, rest_len);
            vd_put_u64le(out + o + rest_len, key);
            o += rest_len + 8;
            placed = 1;
        }
        if (c == 0) continue; /* replaced or removed */
        memcpy(out + o, p + at, off - at);
        o += off - at;
    }
    if (!placed) {
        out[o++] = (uint8_t)rest_len;
        if (rest_len) memcpy(out + o, rest, rest_len);
        vd_put_u64le(out + o + rest_len, key);
        o += rest_len + 8;
    }
    return o;
}

vd_status vd_storage__skey_decode(const void *p, size_t n, vd_err *err)
{
    vd_err e;
    if (vd_str_id_check(p, n, &e) != VD_OK)
        return vd_err_set(err, VD_CORRUPT, "key record holds no valid string id: %s", e.msg);
    return VD_OK;
}

void vd_storage__sidseq_encode(uint8_t out[VD_SIDSEQ_REC_BYTES], const vd_sidseq *q)
{
    vd_put_u64le(out, q->next_key);
    vd_put_u64le(out + 8, q->id_bytes);
}

vd_status vd_storage__sidseq_decode(const void *p, size_t n, vd_sidseq *q, vd_err *err)
{
    memset(q, 0, sizeof *q);
    if (n != VD_SIDSEQ_REC_BYTES)
        return vd_err_set(err, VD_CORRUPT, "string id sequence record has %zu bytes, expected "
                          "%d", n, VD_SIDSEQ_REC_BYTES);
    q->next_key = vd_get_u64le(p);
    q->id_bytes = vd_get_u64le((const uint8_t *)p + 8);
    if (q->next_key == VD_ID_NONE)
        return vd_err_set(err, VD_CORRUPT, "string id sequence record is exhausted");
    return VD_OK;
}

/* ---- links record ------------------------------------------------------------------------ */
uint8_t *vd_storage__buf_reserve(vd_buf *b, size_t n)
{
    if (n <= b->cap) return b->p;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < n) cap *= 2;
    uint8_t *p = vd_realloc(b->p, cap);
    if (!p) return NULL;
    b->p = p;
    b->cap = cap;
    return p;
}

void vd_storage__buf_free(vd_buf *b)
{
    vd_free(b->p);
    b->p = NULL;
    b->cap = 0;
}

vd_status vd_storage__links_encode(const vd_index *ix, uint32_t slot, vd_buf *b, size_t *len,
                                   vd_err *err)
{
    /* One try at the buffer's size; VD_FULL tells the size needed (rare: a slot whose lists
     * outgrew every earlier one). */
    *len = 0;
    if (!vd_storage__buf_reserve(b, 1024)) goto nomem;
    vd_status s = vd_index_slot_links(ix, slot, b->p, b->cap, len, err);
    if (s != VD_FULL) return s;
    if (!vd_storage__buf_reserve(b, *len)) goto nomem;
    return vd_index_slot_links(ix, slot, b->p, b->cap, len, err);
nomem:
    return vd_err_set(err, VD_NOMEM, "out of memory serializing the links of slot %u", slot);
}

vd_status vd_storage__slot_load(vd_index *ix, uint32_t slot, const void *v, size_t vn,
                                const void *l, size_t ln, float *scratch, vd_err *err)
{
    uint32_t dim = vd_index_params_of(ix)->dim;
    vd_vector_rec vr;
    vd_status s = vd_storage__vector_decode(v, vn, dim, &vr, err);
    if (s != VD_OK) return s;
    s = vd_index_load_slot(ix, slot, vr.id, vd_storage__vector_floats(&vr, dim, scratch), l, ln,
                           err);
    /* The index says VD_INVALID for what it was handed; from disk, that is damage. */
    if (s != VD_OK && s != VD_NOMEM && s != VD_VERSION) {
        s = VD_CORRUPT;
        if (err) err->code = s;
    }
    return s;
}

/* ---- payload index keys ------------------------------------------------------------------ */
void vd_storage__key_pdef(uint8_t k[VD_KEY_PDEF_BYTES], uint32_t cid, uint32_t no)
{
    vd_put_u32be(k, cid);
    vd_put_u32be(k + 4, no);
}

void vd_storage__key_pval(uint8_t k[VD_KEY_PVAL_BYTES], uint32_t cid, uint32_t no,
                          uint32_t slot)
{
    vd_put_u32be(k, cid);
    vd_put_u32be(k + 4, no);
    vd_put_u32be(k + 8, slot);
}

int vd_storage__key_pdef_decode(const void *k, size_t n, uint32_t cid, uint32_t *no)
{
    if (n != VD_KEY_PDEF_BYTES || vd_get_u32be(k) != cid) return 0;
    *no = vd_get_u32be((const uint8_t *)k + 4);
    return 1;
}

int vd_storage__key_pval_decode(const void *k, size_t n, uint32_t cid, uint32_t no,
                                uint32_t *slot)
{
    const uint8_t *b = k;
    if (n != VD_KEY_PVAL_BYTES || vd_get_u32be(b) != cid || vd_get_u32be(b + 4) != no) return 0;
    *slot = vd_get_u32be(b + 8);
    return 1;
}

/* ---- payload index definition ------------------------------------------------------------ */
size_t vd_storage__pdef_size(size_t path_len) { return VD_PDEF_REC_MIN + path_len; }

void vd_storage__pdef_encode(uint8_t *out, const vd_pdef_rec *r)
{
    out[0] = VD_PDEF_REC_VERSION;
    out[1] = (uint8_t)r->kind;
    out[2] = (uint8_t)(r->ready != 0);
    out[3] = 0;
    vd_put_u64le(out + 4, r->resume);
    vd_put_u64le(out + 12, r->scanned);
    vd_put_u64le(out + 20, r->end);
    vd_put_u32le(out + 28, (uint32_t)r->path_len);
    memcpy(out + VD_PDEF_REC_MIN, r->path, r->path_len);
}

vd_status vd_storage__pdef_decode(const void *p, size_t n, vd_pdef_rec *r, vd_err *err)
{
    const uint8_t *b = p;
    memset(r, 0, sizeof *r);
    if (n >= 1 && b[0] > VD_PDEF_REC_VERSION)
        return vd_err_set(err, VD_VERSION, "payload index definition has version %u; this "
                          "vectord reads %u", b[0], VD_PDEF_REC_VERSION);
    if (n < VD_PDEF_REC_MIN || b[0] == 0 || n != VD_PDEF_REC_MIN + vd_get_u32le(b + 28) ||
        b[2] > 1 || b[3] != 0)
        return vd_err_set(err, VD_CORRUPT, "payload index definition of %zu bytes is "
                          "malformed", n);
    r->kind = (vd_pindex_kind)b[1];
    if (!vd_pindex_kind_name(r->kind)[0])
        return vd_err_set(err, VD_CORRUPT, "payload index definition has unknown kind %u", b[1]);
    r->ready = b[2];
    r->resume = vd_get_u64le(b + 4);
    r->scanned = vd_get_u64le(b + 12);
    r->end = vd_get_u64le(b + 20);
    r->path = (const char *)b + VD_PDEF_REC_MIN;
    r->path_len = n - VD_PDEF_REC_MIN;
    vd_err e;
    if (vd_storage__path_check(r->path, r->path_len, &e) != VD_OK)
        return vd_err_set(err, VD_CORRUPT, "payload index definition: %s", e.msg);
    return VD_OK;
}

/* ---- a slot's values --------------------------------------------------------------------- */
uint64_t vd_storage__key_of_double(double d)
{
    uint64_t b;
    if (d == 0) d = 0; /* -0.0 == 0.0: one key */
    memcpy(&b, &d, 8);
    return b >> 63 ? ~b : b | (1ull << 63);
}

double vd_storage__double_of_key(uint64_t k)
{
    uint64_t b = k >> 63 ? k & ~(1ull << 63) : ~k;
    double d;
    memcpy(&d, &b, 8);
    return d;
}

int vd_storage__item_cmp(vd_pindex_kind kind, const vd_pval_item *a, const vd_pval_item *b)
{
    if (kind != VD_PINDEX_KEYWORD) return a->key < b->key ? -1 : a->key > b->key;
    size_t m = a->len < b->len ? a->len : b->len;
    int c = m ? memcmp(a->s, b->s, m) : 0;
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int cmp_key_item(const void *a, const void *b)
{
    return vd_storage__item_cmp(VD_PINDEX_INTEGER, a, b);
}

static int cmp_str_item(const void *a, const void *b)
{
    return vd_storage__item_cmp(VD_PINDEX_KEYWORD, a, b);
}

size_t vd_storage__pvals_sort(vd_pindex_kind kind, vd_pval_item *items, size_t n)
{
    if (n < 2) return n;
    qsort(items, n, sizeof *items, kind == VD_PINDEX_KEYWORD ? cmp_str_item : cmp_key_item);
    size_t m = 1;
    for (size_t i = 1; i < n; i++)
        if (vd_storage__item_cmp(kind, &items[i], &items[m - 1]) != 0) items[m++] = items[i];
    return m;
}

static size_t item_bytes(vd_pindex_kind kind, const vd_pval_item *it)
{
    switch (kind) {
    case VD_PINDEX_KEYWORD: return 4 + it->len;
    case VD_PINDEX_BOOL: return 1;
    default: return 8;
    }
}

vd_status vd_storage__pvals_encode(vd_buf *b, vd_pindex_kind kind, unsigned flags,
                                   vd_pval_item *items, size_t n, size_t *len, vd_err *err)
{
    size_t total = VD_PVAL_REC_MIN;
    for (size_t i = 0; i < n; i++) total += item_bytes(kind, &items[i]);
    uint8_t *o = vd_storage__buf_reserve(b, total);
    if (!o) return vd_err_set(err, VD_NOMEM, "out of memory encoding payload index values");
    o[0] = VD_PVAL_REC_VERSION;
    o[1] = (uint8_t)kind;
    o[2] = (uint8_t)flags;
    o[3] = 0;
    vd_put_u32le(o + 4, (uint32_t)n);
    uint8_t *w = o + VD_PVAL_REC_MIN;
    for (size_t i = 0; i < n; i++) {
        if (kind == VD_PINDEX_KEYWORD) {
            vd_put_u32le(w, (uint32_t)items[i].len);
            if (items[i].len) memcpy(w + 4, items[i].s, items[i].len);
        } else if (kind == VD_PINDEX_BOOL) {
            w[0] = (uint8_t)(items[i].key != 0);
        } else {
            vd_put_u64le(w, items[i].key);
        }
        w += item_bytes(kind, &items[i]);
    }
    *len = total;
    return VD_OK;
}

int vd_storage__pvals_next(const vd_pvals *r, size_t *it, vd_pval_item *item)
{
    if (*it >= r->vals_len) return 0;
    const uint8_t *p = r->vals + *it;
    memset(item, 0, sizeof *item);
    if (r->kind == VD_PINDEX_KEYWORD) {
        item->len = vd_get_u32le(p);
        item->s = (const char *)p + 4;
    } else if (r->kind == VD_PINDEX_BOOL) {
        item->key = p[0];
    } else {
        item->key = vd_get_u64le(p);
    }
    *it += item_bytes(r->kind, item);
    return 1;
}

vd_status vd_storage__pvals_decode(const void *p, size_t n, vd_pindex_kind kind, vd_pvals *r,
                                   vd_err *err)
{
    const uint8_t *b = p;
    memset(r, 0, sizeof *r);
    if (n >= 1 && b[0] > VD_PVAL_REC_VERSION)
        return vd_err_set(err, VD_VERSION, "payload index values have version %u; this "
                          "vectord reads %u", b[0], VD_PVAL_REC_VERSION);
    if (n < VD_PVAL_REC_MIN || b[0] == 0 || b[1] != (uint8_t)kind || b[3] != 0 ||
        !(b[2] & VD_PVAL_PRESENT) || (b[2] & ~(VD_PVAL_PRESENT | VD_PVAL_FALLBACK)))
        return vd_err_set(err, VD_CORRUPT, "payload index values record of %zu bytes is "
                          "malformed", n);
    r->kind = kind;
    r->flags = b[2];
    r->n = vd_get_u32le(b + 4);
    r->vals = b + VD_PVAL_REC_MIN;
    r->vals_len = n - VD_PVAL_REC_MIN;
    /* Walk with bounds before anything trusts the record: each value fits, the count is
     * exact, values ascend strictly. */
    size_t off = 0, count = 0;
    vd_pval_item prev = {0}, cur;
    while (off < r->vals_len) {
        size_t left = r->vals_len - off;
        size_t need = kind == VD_PINDEX_KEYWORD ? 4 : kind == VD_PINDEX_BOOL ? 1 : 8;
        if (left < need || (kind == VD_PINDEX_KEYWORD && left - 4 < vd_get_u32le(r->vals + off)))
            goto bad;
        vd_storage__pvals_next(r, &off, &cur);
        if ((kind == VD_PINDEX_BOOL && cur.key > 1) ||
            (count && vd_storage__item_cmp(kind, &prev, &cur) >= 0))
            goto bad;
        prev = cur;
        count++;
    }
    if (count != r->n) goto bad;
    return VD_OK;
bad:
    return vd_err_set(err, VD_CORRUPT, "payload index values record of %zu bytes is malformed "
                      "(values truncated, out of order or miscounted)", n);
}
