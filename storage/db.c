/* storage/db.c: the databases of a data directory as typed tables. Opening identifies the
 * environment and opens a handle per entry of VD_STORAGE_DB_MAP; then every record is read
 * and written here, inside the caller's transaction, through the codec (records.c): a get
 * decodes (a record that breaks its length rule is VD_CORRUPT naming the collection and
 * key, whichever file asked), a put encodes. So the write group, import, snapshots and
 * reloads read the same record the same way; cursor walks (load, check) use the codec
 * directly.
 *
 * Identification runs in a read transaction before anything is written, so a refused
 * directory is left byte for byte as it was: the `meta` database must carry our magic (else
 * VD_CORRUPT: a foreign LMDB file) and a format version we know (else VD_VERSION). An empty
 * environment (a fresh one, or one whose creation was interrupted before its first commit)
 * holds nobody's data and is initialized in one transaction when the open may create.
 *
 * Failures inside a transaction go through vd_storage__txn_fail, which keeps the LMDB code
 * in the vd_txn: the write-transaction driver retries after MDB_MAP_FULL. Values returned
 * borrow LMDB's pages, valid until the transaction ends or writes again. */
#include <inttypes.h>
#include <stdio.h>

#include "storage/storage_int.h"

static MDB_dbi dbi(const vd_txn *t, vd_db db) { return t->st->dbi[db]; }

int vd_storage__db_present(const vd_store *st, vd_db db) { return !st->db_absent[db]; }

/* ---- raw access: one database, one key ---------------------------------------------------- */
/* The value of `key` in db into *v; *found = 0 when absent (then VD_OK). */
static vd_status get(vd_txn *t, vd_db db, const void *key, size_t klen, MDB_val *v, int *found,
                     vd_err *err, const char *what)
{
    MDB_val k = {klen, (void *)key};
    if (t->st->db_absent[db]) { /* a table an older vectord did not write: empty */
        *found = 0;
        *v = (MDB_val){0, NULL};
        return VD_OK;
    }
    int rc = mdb_get(t->txn, dbi(t, db), &k, v);
    *found = rc == 0;
    if (rc && rc != MDB_NOTFOUND) return vd_storage__txn_fail(t, rc, err, what);
    if (rc) *v = (MDB_val){0, NULL};
    return VD_OK;
}

/* Puts v->mv_size bytes at `key`: from v->mv_data, or with MDB_RESERVE into the space LMDB
 * returns in v->mv_data, for the caller to encode into. */
static vd_status put(vd_txn *t, vd_db db, const void *key, size_t klen, MDB_val *v,
                     unsigned flags, vd_err *err, const char *what)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_put(t->txn, dbi(t, db), &k, v, flags);
    return rc ? vd_storage__txn_fail(t, rc, err, what) : VD_OK;
}

static vd_status del(vd_txn *t, vd_db db, const void *key, size_t klen, int absent_ok,
                     vd_err *err, const char *what)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(t->txn, dbi(t, db), &k, NULL);
    if (rc == MDB_NOTFOUND && absent_ok) rc = 0;
    return rc ? vd_storage__txn_fail(t, rc, err, what) : VD_OK;
}

/* ---- identification and opening ---------------------------------------------------------- */
static int meta_put_u32(MDB_txn *txn, MDB_dbi d, const char *key, uint32_t val)
{
    uint8_t b[VD_META_U32_BYTES];
    vd_storage__meta_u32_encode(b, val);
    MDB_val k = {strlen(key), (void *)key}, v = {sizeof b, b};
    return mdb_put(txn, d, &k, &v, 0);
}

/* Creates the databases and the meta records of a new data directory in one transaction. */
static vd_status init_new(vd_store *st, vd_err *err)
{
    MDB_txn *txn = NULL;
    MDB_dbi d;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) goto fail;
    for (int i = 0; i < VD_DB_COUNT; i++)
        if ((rc = mdb_dbi_open(txn, vd_storage__db_info((vd_db)i)->name, MDB_CREATE, &d)))
            goto fail;
    if ((rc = mdb_dbi_open(txn, vd_storage__db_info(VD_DB_META)->name, 0, &d))) goto fail;
    MDB_val k = {strlen(VD_META_MAGIC), VD_META_MAGIC};
    MDB_val v = {sizeof VD_STORE_MAGIC, VD_STORE_MAGIC};
    if ((rc = mdb_put(txn, d, &k, &v, 0)) ||
        (rc = meta_put_u32(txn, d, VD_META_FORMAT, VD_STORAGE_FORMAT_VERSION)) ||
        (rc = meta_put_u32(txn, d, VD_META_NEXT_CID, 1)))
        goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) goto fail;
    return VD_OK;
fail:
    if (txn) mdb_txn_abort(txn);
    return vd_storage__mdb_err(st, rc, err, "creating the data directory");
}

/* Magic and format of an open `meta` database (VD_OK: ours, and a version we read). */
static vd_status identify_meta(vd_txn *t, vd_err *err)
{
    const char *dir = t->st->dir;
    MDB_val v;
    int found;
    vd_status s = get(t, VD_DB_META, VD_META_MAGIC, strlen(VD_META_MAGIC), &v, &found, err,
                      "opening");
    if (s != VD_OK) return s;
    if (vd_storage__magic_decode(v.mv_data, v.mv_size, NULL) != VD_OK)
        return vd_err_set(err, VD_CORRUPT, "%s/data.mdb is an LMDB file but not a vectord "
                          "data directory (no vectord magic); refusing to touch it", dir);
    uint32_t ver;
    s = vd_storage__format_get(t, &ver, err);
    if (s != VD_OK && !t->mdb_rc) vd_err_prefix(err, "%s", dir);
    return s;
}

/* Identifies the environment and opens the database handles (read transaction only). */
static vd_status identify(vd_store *st, int *is_empty, vd_err *err)
{
    vd_txn t = {.st = st};
    vd_status s = VD_OK;
    MDB_stat ms;
    *is_empty = 0;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &t.txn);
    if (rc) return vd_storage__mdb_err(st, rc, err, "opening");
    if ((rc = mdb_dbi_open(t.txn, NULL, 0, &st->dbi[VD_DB_META])) ||
        (rc = mdb_stat(t.txn, st->dbi[VD_DB_META], &ms)))
        goto fail_mdb;
    if (ms.ms_entries == 0) {
        *is_empty = 1;
        goto out;
    }
    rc = mdb_dbi_open(t.txn, vd_storage__db_info(VD_DB_META)->name, 0, &st->dbi[VD_DB_META]);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
        s = vd_err_set(err, VD_CORRUPT, "%s/data.mdb is an LMDB file but not a vectord data "
                       "directory (no vectord metadata); refusing to touch it", st->dir);
        goto out;
    }
    if (rc) goto fail_mdb;
    if ((s = identify_meta(&t, err)) != VD_OK) goto out;
    for (int i = 0; i < VD_DB_COUNT && s == VD_OK; i++) {
        rc = mdb_dbi_open(t.txn, vd_storage__db_info((vd_db)i)->name, 0, &st->dbi[i]);
        st->db_absent[i] = rc == MDB_NOTFOUND;
        if (rc == MDB_NOTFOUND && i <= VD_DB_LAST_ORIGINAL)
            s = vd_err_set(err, VD_CORRUPT, "%s: the vectord database %s is missing", st->dir,
                           vd_storage__db_info((vd_db)i)->name);
        else if (rc && rc != MDB_NOTFOUND)
            goto fail_mdb;
    }
out:
    /* Handles opened in a read transaction stay valid after it ends (when it ends by
     * commit): commit, not abort, keeps them. */
    rc = mdb_txn_commit(t.txn);
    if (rc && s == VD_OK) return vd_storage__mdb_err(st, rc, err, "opening");
    return s;
fail_mdb:
    mdb_txn_abort(t.txn);
    return vd_storage__mdb_err(st, rc, err, "opening");
}

/* Creates the tables an older vectord did not write (read-write opens only), so that every
 * later transaction finds every handle. */
static vd_status add_missing(vd_store *st, vd_err *err)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    for (int i = 0; rc == 0 && i < VD_DB_COUNT; i++)
        if (st->db_absent[i])
            rc = mdb_dbi_open(txn, vd_storage__db_info((vd_db)i)->name, MDB_CREATE,
                              &st->dbi[i]);
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn) mdb_txn_abort(txn);
    if (rc) return vd_storage__mdb_err(st, rc, err, "adding the newer tables");
    memset(st->db_absent, 0, sizeof st->db_absent);
    return VD_OK;
}

vd_status vd_storage__db_open(vd_store *st, int create, vd_err *err)
{
    int is_empty = 0;
    vd_status s = identify(st, &is_empty, err);
    if (s == VD_OK && !is_empty && !st->read_only &&
        memchr(st->db_absent, 1, sizeof st->db_absent))
        s = add_missing(st, err);
    if (s != VD_OK || !is_empty) return s;
    if (!create)
        return vd_err_set(err, VD_CORRUPT, "%s holds an empty LMDB environment, not a vectord "
                          "data directory", st->dir);
    if ((s = init_new(st, err)) != VD_OK) return s;
    s = identify(st, &is_empty, err);
    if (s == VD_OK && is_empty)
        s = vd_err_set(err, VD_INTERNAL, "%s: initializing the data directory wrote nothing",
                       st->dir);
    return s;
}

/* ---- meta -------------------------------------------------------------------------------- */
vd_status vd_storage__format_get(vd_txn *t, uint32_t *ver, vd_err *err)
{
    MDB_val v;
    int found;
    vd_status s = get(t, VD_DB_META, VD_META_FORMAT, strlen(VD_META_FORMAT), &v, &found, err,
                      "reading meta");
    return s != VD_OK ? s : vd_storage__format_decode(v.mv_data, v.mv_size, ver, err);
}

vd_status vd_storage__next_cid_get(vd_txn *t, uint32_t *cid, vd_err *err)
{
    MDB_val v;
    int found;
    vd_status s = get(t, VD_DB_META, VD_META_NEXT_CID, strlen(VD_META_NEXT_CID), &v, &found,
                      err, "reading meta");
    return s != VD_OK ? s : vd_storage__next_cid_decode(v.mv_data, v.mv_size, cid, err);
}

vd_status vd_storage__cid_take(vd_txn *t, uint32_t *cid, vd_err *err)
{
    vd_status s = vd_storage__next_cid_get(t, cid, err);
    if (s != VD_OK) {
        if (!t->mdb_rc) vd_err_prefix(err, "%s", t->st->dir);
        return s;
    }
    if (*cid == UINT32_MAX)
        return vd_err_set(err, VD_FULL, "collection ids exhausted in %s", t->st->dir);
    int rc = meta_put_u32(t->txn, dbi(t, VD_DB_META), VD_META_NEXT_CID, *cid + 1);
    return rc ? vd_storage__txn_fail(t, rc, err, "taking a collection id") : VD_OK;
}

/* ---- catalog ----------------------------------------------------------------------------- */
vd_status vd_storage__catalog_get(vd_txn *t, const char *name, vd_catalog_rec *r, int *found,
                                  vd_err *err)
{
    MDB_val v;
    size_t n = strlen(name);
    vd_status s = get(t, VD_DB_CATALOG, name, n, &v, found, err, "reading the catalog");
    if (s != VD_OK || !*found) return s;
    return vd_storage__catalog_decode(name, n, v.mv_data, v.mv_size, r, err);
}

vd_status vd_storage__catalog_store(vd_txn *t, const vd_collection *c, uint64_t count,
                                    uint64_t payload_bytes, vd_err *err)
{
    vd_catalog_rec r = {.cid = c->cid, .params = c->params, .created_unix_s = c->created_unix_s,
                        .count = count, .payload_bytes = payload_bytes, .seed = c->seed};
    vd_index_header_get(c->ix, &r.hdr);
    uint8_t b[VD_CATALOG_REC_BYTES];
    vd_storage__catalog_encode(&r, b);
    MDB_val v = {sizeof b, b};
    return put(t, VD_DB_CATALOG, c->params.name, strlen(c->params.name), &v, 0, err,
               "writing the catalog");
}

vd_status vd_storage__catalog_del(vd_txn *t, const char *name, vd_err *err)
{
    return del(t, VD_DB_CATALOG, name, strlen(name), 0, err, "dropping a collection");
}

/* ---- points ------------------------------------------------------------------------------ */
vd_status vd_storage__point_get(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                                uint64_t id, vd_point_rec *r, int *found, vd_err *err)
{
    uint8_t kb[VD_KEY_POINT_BYTES];
    MDB_val v;
    vd_storage__key_point(kb, cid, id);
    vd_status s = get(t, VD_DB_POINTS, kb, sizeof kb, &v, found, err, "reading a point");
    if (s != VD_OK || !*found) return s;
    if ((s = vd_storage__point_decode(v.mv_data, v.mv_size, r, err)) != VD_OK)
        vd_err_prefix(err, "collection %s: point %" PRIu64, p->name, id);
    return s;
}

vd_status vd_storage__point_put(vd_txn *t, uint32_t cid, uint64_t id, uint32_t slot,
                                const uint8_t *payload, size_t len, unsigned flags, vd_err *err)
{
    uint8_t kb[VD_KEY_POINT_BYTES];
    MDB_val v = {vd_storage__point_size(len), NULL};
    vd_storage__key_point(kb, cid, id);
    vd_status s = put(t, VD_DB_POINTS, kb, sizeof kb, &v, flags | MDB_RESERVE, err,
                      "writing a point");
    if (s == VD_OK) vd_storage__point_encode(v.mv_data, slot, payload, len);
    return s;
}

vd_status vd_storage__point_del(vd_txn *t, uint32_t cid, uint64_t id, vd_err *err)
{
    uint8_t kb[VD_KEY_POINT_BYTES];
    vd_storage__key_point(kb, cid, id);
    return del(t, VD_DB_POINTS, kb, sizeof kb, 0, err, "deleting a point");
}

/* ---- vectors and links ------------------------------------------------------------------- */
vd_status vd_storage__vector_get(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                                 uint32_t slot, vd_vector_rec *r, int *found, vd_err *err)
{
    uint8_t kb[VD_KEY_SLOT_BYTES];
    MDB_val v;
    vd_storage__key_slot(kb, cid, slot);
    vd_status s = get(t, VD_DB_VECTORS, kb, sizeof kb, &v, found, err, "reading a vector");
    if (s != VD_OK || !*found) return s;
    if ((s = vd_storage__vector_decode(v.mv_data, v.mv_size, p->dim, r, err)) != VD_OK)
        vd_err_prefix(err, "collection %s: slot %u", p->name, slot);
    return s;
}

vd_status vd_storage__vector_put(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                                 uint32_t slot, uint64_t id, const float *vec, unsigned flags,
                                 vd_err *err)
{
    uint8_t kb[VD_KEY_SLOT_BYTES];
    MDB_val v = {vd_storage__vector_size(p->dim), NULL};
    vd_storage__key_slot(kb, cid, slot);
    vd_status s = put(t, VD_DB_VECTORS, kb, sizeof kb, &v, flags | MDB_RESERVE, err,
                      "writing a vector");
    if (s == VD_OK) vd_storage__vector_encode(v.mv_data, id, vec, p->dim);
    return s;
}

vd_status vd_storage__links_put(vd_txn *t, uint32_t cid, uint32_t slot, const uint8_t *rec,
                                size_t len, unsigned flags, vd_err *err)
{
    uint8_t kb[VD_KEY_SLOT_BYTES];
    MDB_val v = {len, (void *)rec};
    vd_storage__key_slot(kb, cid, slot);
    return put(t, VD_DB_LINKS, kb, sizeof kb, &v, flags, err, "writing the graph");
}

vd_status vd_storage__slot_del(vd_txn *t, uint32_t cid, uint32_t slot, vd_err *err)
{
    uint8_t kb[VD_KEY_SLOT_BYTES];
    vd_storage__key_slot(kb, cid, slot);
    vd_status s = del(t, VD_DB_VECTORS, kb, sizeof kb, 1, err, "writing the graph");
    return s != VD_OK ? s : del(t, VD_DB_LINKS, kb, sizeof kb, 1, err, "writing the graph");
}

/* ---- string ids -------------------------------------------------------------------------- */
vd_status vd_storage__sid_get(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                              const uint8_t *id, size_t len, uint64_t *key, int *found,
                              vd_err *err)
{
    uint8_t kb[VD_KEY_SID_MAX];
    MDB_val v;
    *key = 0;
    size_t kn = vd_storage__key_sid(kb, cid, id, len);
    vd_status s = get(t, VD_DB_SIDS, kb, kn, &v, found, err, "reading a string id");
    if (s != VD_OK || !*found) return s;
    if (len < VD_SID_SPLIT) {
        s = vd_storage__sid_decode(v.mv_data, v.mv_size, key, err);
    } else if ((s = vd_storage__sid_bucket_decode(v.mv_data, v.mv_size, err)) == VD_OK) {
        *found = vd_storage__sid_bucket_find(v.mv_data, v.mv_size, id + VD_SID_SPLIT,
                                             len - VD_SID_SPLIT, key);
    }
    if (s != VD_OK) vd_err_prefix(err, "collection %s", p->name);
    return s;
}

/* A long id's entry set (key) or removed (VD_ID_NONE) in its bucket record. */
static vd_status bucket_edit(vd_txn *t, uint32_t cid, const uint8_t *id, size_t len,
                             uint64_t key, vd_err *err)
{
    uint8_t kb[VD_KEY_SID_MAX];
    size_t kn = vd_storage__key_sid(kb, cid, id, len);
    MDB_val v;
    int found;
    vd_status s = get(t, VD_DB_SIDS, kb, kn, &v, &found, err, "reading a string id");
    if (s == VD_OK && found && (s = vd_storage__sid_bucket_decode(v.mv_data, v.mv_size, err)))
        vd_err_prefix(err, "collection id %u", cid);
    if (s != VD_OK) return s;
    uint8_t *out = vd_malloc(v.mv_size + VD_SID_ENTRY_MAX);
    if (!out) return vd_err_set(err, VD_NOMEM, "out of memory writing a string id");
    MDB_val nv = {vd_storage__sid_bucket_edit(v.mv_data, v.mv_size, id + VD_SID_SPLIT,
                                              len - VD_SID_SPLIT, key, out),
                  out};
    if (nv.mv_size) s = put(t, VD_DB_SIDS, kb, kn, &nv, 0, err, "writing a string id");
    else if (found) s = del(t, VD_DB_SIDS, kb, kn, 0, err, "deleting a string id");
    vd_free(out);
    return s;
}

vd_status vd_storage__sid_put(vd_txn *t, uint32_t cid, const uint8_t *id, size_t len,
                              uint64_t key, vd_err *err)
{
    if (len >= VD_SID_SPLIT) return bucket_edit(t, cid, id, len, key, err);
    uint8_t kb[VD_KEY_SID_MAX], vb[VD_SID_REC_BYTES];
    size_t kn = vd_storage__key_sid(kb, cid, id, len);
    vd_storage__sid_encode(vb, key);
    MDB_val v = {sizeof vb, vb};
    return put(t, VD_DB_SIDS, kb, kn, &v, 0, err, "writing a string id");
}

vd_status vd_storage__sid_del(vd_txn *t, uint32_t cid, const uint8_t *id, size_t len,
                              vd_err *err)
{
    if (len >= VD_SID_SPLIT) return bucket_edit(t, cid, id, len, VD_ID_NONE, err);
    uint8_t kb[VD_KEY_SID_MAX];
    size_t kn = vd_storage__key_sid(kb, cid, id, len);
    return del(t, VD_DB_SIDS, kb, kn, 0, err, "deleting a string id");
}

vd_status vd_storage__skey_get(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                               uint64_t key, const uint8_t **id, size_t *len, int *found,
                               vd_err *err)
{
    uint8_t kb[VD_KEY_POINT_BYTES];
    MDB_val v;
    vd_storage__key_point(kb, cid, key);
    vd_status s = get(t, VD_DB_SKEYS, kb, sizeof kb, &v, found, err, "reading a string id");
    *id = v.mv_data;
    *len = v.mv_size;
    if (s != VD_OK || !*found) return s;
    if ((s = vd_storage__skey_decode(v.mv_data, v.mv_size, err)) != VD_OK)
        vd_err_prefix(err, "collection %s: key %" PRIu64, p->name, key);
    return s;
}

vd_status vd_storage__skey_put(vd_txn *t, uint32_t cid, uint64_t key, const uint8_t *id,
                               size_t len, unsigned flags, vd_err *err)
{
    uint8_t kb[VD_KEY_POINT_BYTES];
    vd_storage__key_point(kb, cid, key);
    MDB_val v = {len, (void *)id};
    return put(t, VD_DB_SKEYS, kb, sizeof kb, &v, flags, err, "writing a string id");
}

vd_status vd_storage__skey_del(vd_txn *t, uint32_t cid, uint64_t key, vd_err *err)
{
    uint8_t kb[VD_KEY_POINT_BYTES];
    vd_storage__key_point(kb, cid, key);
    return del(t, VD_DB_SKEYS, kb, sizeof kb, 1, err, "deleting a string id");
}

vd_status vd_storage__sidseq_get(vd_txn *t, uint32_t cid, const vd_collection_params *p,
                                 vd_sidseq *q, vd_err *err)
{
    uint8_t kb[VD_KEY_CID_BYTES];
    MDB_val v;
    int found;
    memset(q, 0, sizeof *q);
    vd_storage__key_cid(kb, cid);
    vd_status s = get(t, VD_DB_SIDS, kb, sizeof kb, &v, &found, err, "reading a string id");
    if (s != VD_OK || !found) return s;
    if ((s = vd_storage__sidseq_decode(v.mv_data, v.mv_size, q, err)) != VD_OK)
        vd_err_prefix(err, "collection %s", p->name);
    return s;
}

vd_status vd_storage__sidseq_put(vd_txn *t, uint32_t cid, const vd_sidseq *q, vd_err *err)
{
    uint8_t kb[VD_KEY_CID_BYTES], vb[VD_SIDSEQ_REC_BYTES];
    vd_storage__key_cid(kb, cid);
    vd_storage__sidseq_encode(vb, q);
    MDB_val v = {sizeof vb, vb};
    return put(t, VD_DB_SIDS, kb, sizeof kb, &v, 0, err, "writing a string id");
}

/* ---- a whole collection ------------------------------------------------------------------ */
static int del_prefix(MDB_txn *txn, MDB_dbi d, uint32_t cid)
{
    MDB_cursor *cur = NULL;
    uint8_t kb[VD_KEY_CID_BYTES];
    vd_storage__key_cid(kb, cid);
    MDB_val k = {sizeof kb, kb}, v;
    int rc = mdb_cursor_open(txn, d, &cur);
    if (rc) return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= VD_KEY_CID_BYTES && vd_get_u32be(k.mv_data) == cid) {
        if ((rc = mdb_cursor_del(cur, 0))) break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

vd_status vd_storage__collection_del(vd_txn *t, uint32_t cid, vd_err *err)
{
    for (int i = 0; i < VD_DB_COUNT; i++) {
        if (!vd_storage__db_info((vd_db)i)->cid_key_bytes || t->st->db_absent[i]) continue;
        int rc = del_prefix(t->txn, dbi(t, (vd_db)i), cid);
        if (rc) return vd_storage__txn_fail(t, rc, err, "dropping a collection");
    }
    return VD_OK;
}

/* ---- payload indexes --------------------------------------------------------------------- */
vd_status vd_storage__pdef_put(vd_txn *t, uint32_t cid, uint32_t no, const vd_pdef_rec *r,
                               vd_err *err)
{
    uint8_t kb[VD_KEY_PDEF_BYTES];
    MDB_val v = {vd_storage__pdef_size(r->path_len), NULL};
    vd_storage__key_pdef(kb, cid, no);
    vd_status s = put(t, VD_DB_PINDEXES, kb, sizeof kb, &v, MDB_RESERVE, err,
                      "writing a payload index");
    if (s == VD_OK) vd_storage__pdef_encode(v.mv_data, r);
    return s;
}

vd_status vd_storage__pdef_del(vd_txn *t, uint32_t cid, uint32_t no, vd_err *err)
{
    uint8_t kb[VD_KEY_PDEF_BYTES];
    vd_storage__key_pdef(kb, cid, no);
    return del(t, VD_DB_PINDEXES, kb, sizeof kb, 1, err, "dropping a payload index");
}

vd_status vd_storage__pval_get(vd_txn *t, uint32_t cid, uint32_t no, vd_pindex_kind kind,
                               uint32_t slot, vd_pvals *r, int *found, vd_err *err)
{
    uint8_t kb[VD_KEY_PVAL_BYTES];
    MDB_val v;
    *found = 0;
    if (t->st->db_absent[VD_DB_PVALUES]) return VD_OK;
    vd_storage__key_pval(kb, cid, no, slot);
    vd_status s = get(t, VD_DB_PVALUES, kb, sizeof kb, &v, found, err,
                      "reading payload index values");
    if (s != VD_OK || !*found) return s;
    if ((s = vd_storage__pvals_decode(v.mv_data, v.mv_size, kind, r, err)) != VD_OK)
        vd_err_prefix(err, "payload index %u, slot %u", no, slot);
    return s;
}

vd_status vd_storage__pval_put(vd_txn *t, uint32_t cid, uint32_t no, uint32_t slot,
                               const uint8_t *rec, size_t len, vd_err *err)
{
    uint8_t kb[VD_KEY_PVAL_BYTES];
    MDB_val v = {len, (void *)rec};
    vd_storage__key_pval(kb, cid, no, slot);
    return put(t, VD_DB_PVALUES, kb, sizeof kb, &v, 0, err, "writing payload index values");
}

vd_status vd_storage__pval_del(vd_txn *t, uint32_t cid, uint32_t no, uint32_t slot,
                               vd_err *err)
{
    uint8_t kb[VD_KEY_PVAL_BYTES];
    vd_storage__key_pval(kb, cid, no, slot);
    return del(t, VD_DB_PVALUES, kb, sizeof kb, 1, err, "deleting payload index values");
}

vd_status vd_storage__pvals_del_all(vd_txn *t, uint32_t cid, uint32_t no, vd_err *err)
{
    MDB_cursor *cur = NULL;
    uint8_t kb[VD_KEY_PVAL_BYTES];
    vd_storage__key_pval(kb, cid, no, 0);
    MDB_val k = {sizeof kb, kb}, v;
    uint32_t slot;
    int rc = mdb_cursor_open(t->txn, dbi(t, VD_DB_PVALUES), &cur);
    if (rc == 0) rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && vd_storage__key_pval_decode(k.mv_data, k.mv_size, cid, no, &slot) &&
           (rc = mdb_cursor_del(cur, 0)) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    if (cur) mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) rc = 0;
    return rc ? vd_storage__txn_fail(t, rc, err, "dropping a payload index") : VD_OK;
}

vd_status vd_storage__cursor_at(vd_txn *t, vd_db db, const void *key, size_t n,
                                MDB_cursor **cur, MDB_val *k, MDB_val *v, int *rc,
                                vd_err *err)
{
    *cur = NULL;
    *rc = MDB_NOTFOUND;
    if (t->st->db_absent[db]) return VD_OK;
    int r = mdb_cursor_open(t->txn, dbi(t, db), cur);
    if (r) {
        *cur = NULL;
        return vd_storage__txn_fail(t, r, err, "opening a cursor");
    }
    *k = (MDB_val){n, (void *)key};
    *rc = mdb_cursor_get(*cur, k, v, MDB_SET_RANGE);
    if (*rc && *rc != MDB_NOTFOUND) {
        r = *rc;
        mdb_cursor_close(*cur);
        *cur = NULL;
        return vd_storage__txn_fail(t, r, err, "reading");
    }
    return VD_OK;
}
