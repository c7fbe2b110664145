/* tests/unit/test_storage_codec.c: the record codec (storage/records.h) and that every reader
 * of stored bytes applies its rules: each decoder's length rule and version rule, round
 * trips, and the same damaged record refused by the write group, snapshots, check and backup
 * alike. Also: an import leaves no change set behind (it is cleared without a walk). */
#include <check.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/storage_int.h"
#include "tests/unit/storage_testlib.h"

START_TEST(each_decoder_enforces_its_length_rule)
{
    uint8_t b[VD_CATALOG_REC_BYTES + 8] = {0};
    vd_point_rec pr;
    vd_vector_rec vr;
    uint32_t v;
    vd_err e;
    for (size_t n = 0; n < VD_POINT_REC_MIN; n++)
        ck_assert_int_eq(vd_storage__point_decode(b, n, &pr, &e), VD_CORRUPT);
    ck_assert_int_eq(vd_storage__point_decode(b, 4, &pr, NULL), VD_OK);
    ck_assert_ptr_null(pr.payload);
    ck_assert_uint_eq(pr.payload_len, 0);
    /* A vector record is exactly 8 + 4 * dim bytes: no more, no less. */
    for (size_t n = 0; n < sizeof b; n++)
        ck_assert_int_eq(vd_storage__vector_decode(b, n, 3, &vr, &e),
                         n == 20 ? VD_OK : VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "expected 20"));
    for (size_t n = 0; n < 8; n++) {
        ck_assert_int_eq(vd_storage__format_decode(b, n, &v, NULL), VD_CORRUPT);
        ck_assert_int_eq(vd_storage__next_cid_decode(b, n, &v, NULL), VD_CORRUPT);
    }
    /* Format 0 and collection id 0 are damage; a newer format is VD_VERSION. */
    vd_storage__meta_u32_encode(b, 0);
    ck_assert_int_eq(vd_storage__format_decode(b, 4, &v, NULL), VD_CORRUPT);
    ck_assert_int_eq(vd_storage__next_cid_decode(b, 4, &v, NULL), VD_CORRUPT);
    vd_storage__meta_u32_encode(b, VD_STORAGE_FORMAT_VERSION + 1);
    ck_assert_int_eq(vd_storage__format_decode(b, 4, &v, &e), VD_VERSION);
    ck_assert_ptr_nonnull(strstr(e.msg, "was written in storage format 2"));
    ck_assert_int_eq(vd_storage__magic_decode(VD_STORE_MAGIC, sizeof VD_STORE_MAGIC, NULL),
                     VD_OK);
    ck_assert_int_eq(vd_storage__magic_decode(VD_STORE_MAGIC, strlen(VD_STORE_MAGIC), NULL),
                     VD_CORRUPT);
}
END_TEST

static vd_catalog_rec sample_catalog(void)
{
    vd_catalog_rec r = {0};
    r.cid = 3;
    strcpy(r.params.name, "docs");
    r.params.dim = 8;
    r.params.metric = VD_METRIC_IP;
    r.params.m = 16;
    r.params.ef_construction = 200;
    r.params.ef_search = 100;
    r.hdr = (vd_index_header){.entry_slot = 4, .max_level = 2, .n_slots = 10};
    r.created_unix_s = 1700000000;
    r.count = 7;
    r.payload_bytes = 99;
    r.seed = 0x1234567890ull;
    return r;
}

static int same_catalog(const vd_catalog_rec *a, const vd_catalog_rec *b)
{
    return a->cid == b->cid && !strcmp(a->params.name, b->params.name) &&
           a->params.dim == b->params.dim && a->params.metric == b->params.metric &&
           a->params.m == b->params.m && a->params.ef_construction == b->params.ef_construction &&
           a->params.ef_search == b->params.ef_search && a->hdr.entry_slot == b->hdr.entry_slot &&
           a->hdr.max_level == b->hdr.max_level && a->hdr.n_slots == b->hdr.n_slots &&
           a->created_unix_s == b->created_unix_s && a->count == b->count &&
           a->payload_bytes == b->payload_bytes && a->seed == b->seed &&
           a->params.id_type == b->params.id_type &&
           a->params.quantization == b->params.quantization;
}

START_TEST(catalog_records_round_trip_and_refuse_damage)
{
    vd_catalog_rec r = sample_catalog(), d;
    uint8_t b[VD_CATALOG_REC_BYTES + 1];
    vd_storage__catalog_encode(&r, b);
    ck_assert_int_eq(vd_storage__catalog_decode("docs", 4, b, VD_CATALOG_REC_BYTES, &d, NULL),
                     VD_OK);
    ck_assert(same_catalog(&r, &d));
    for (size_t n = 0; n <= sizeof b; n++)
        if (n != VD_CATALOG_REC_BYTES)
            ck_assert_int_eq(vd_storage__catalog_decode("docs", 4, b, n, &d, NULL), VD_CORRUPT);
    /* Names: the rule, and no NUL that would cut the name short of its key. */
    ck_assert_int_eq(vd_storage__catalog_decode("do\0s", 4, b, VD_CATALOG_REC_BYTES, &d, NULL),
                     VD_CORRUPT);
    ck_assert_int_eq(vd_storage__catalog_decode("do s", 4, b, VD_CATALOG_REC_BYTES, &d, NULL),
                     VD_CORRUPT);
    ck_assert_int_eq(vd_storage__catalog_decode("", 0, b, VD_CATALOG_REC_BYTES, &d, NULL),
                     VD_CORRUPT);
    /* Parameters go through the one check: out of the table, or 0 where a default would
     * fill in, is damage; so is counting more points than slots. */
    vd_catalog_rec bad[4] = {r, r, r, r};
    bad[0].params.dim = VD_DIM_MAX + 1;
    bad[1].params.m = 0;
    bad[2].params.ef_search = VD_EF_MAX + 1;
    bad[3].count = r.hdr.n_slots + 1;
    for (int i = 0; i < 4; i++) {
        vd_storage__catalog_encode(&bad[i], b);
        ck_assert_int_eq(vd_storage__catalog_decode("docs", 4, b, VD_CATALOG_REC_BYTES, &d,
                                                    NULL), VD_CORRUPT);
    }
    /* Version 2 carries the id type and the quantization; unknown values are damage. */
    vd_catalog_rec q = r;
    q.params.id_type = VD_ID_STR;
    q.params.quantization = VD_QUANT_INT8;
    vd_storage__catalog_encode(&q, b);
    ck_assert_int_eq(vd_storage__catalog_decode("docs", 4, b, VD_CATALOG_REC_BYTES, &d, NULL),
                     VD_OK);
    ck_assert(same_catalog(&q, &d));
    ck_assert_int_eq(d.params.id_type, VD_ID_STR);
    ck_assert_int_eq(d.params.quantization, VD_QUANT_INT8);
    vd_put_u32le(b + 72, 7);
    ck_assert_int_eq(vd_storage__catalog_decode("docs", 4, b, VD_CATALOG_REC_BYTES, &d, NULL),
                     VD_CORRUPT);
    /* A version 1 record (72 bytes, from before those fields) reads as int ids, no
     * quantization; at any other size it is damage. */
    vd_storage__catalog_encode(&q, b);
    vd_put_u32le(b, 1);
    ck_assert_int_eq(vd_storage__catalog_decode("docs", 4, b, VD_CATALOG_REC_V1_BYTES, &d, NULL),
                     VD_OK);
    ck_assert_int_eq(d.params.id_type, VD_ID_INT);
    ck_assert_int_eq(d.params.quantization, VD_QUANT_NONE);
    ck_assert_int_eq(d.params.dim, r.params.dim);
    ck_assert_int_eq(vd_storage__catalog_decode("docs", 4, b, VD_CATALOG_REC_BYTES, &d, NULL),
                     VD_CORRUPT);
    /* A newer record version is VD_VERSION, whatever its size. */
    vd_put_u32le(b, VD_CATALOG_REC_VERSION + 1);
    ck_assert_int_eq(vd_storage__catalog_decode("docs", 4, b, 40, &d, NULL), VD_VERSION);
    vd_put_u32le(b, 0);
    ck_assert_int_eq(vd_storage__catalog_decode("docs", 4, b, VD_CATALOG_REC_BYTES, &d, NULL),
                     VD_CORRUPT);
}
END_TEST

START_TEST(points_vectors_and_keys_round_trip)
{
    uint8_t b[64], k[VD_KEY_POINT_BYTES];
    const uint8_t pl[] = "{\"a\":1}";
    vd_storage__point_encode(b, 77, pl, 7);
    vd_point_rec pr;
    ck_assert_int_eq(vd_storage__point_decode(b, vd_storage__point_size(7), &pr, NULL), VD_OK);
    ck_assert_uint_eq(pr.slot, 77);
    ck_assert_uint_eq(pr.payload_len, 7);
    ck_assert(memcmp(pr.payload, pl, 7) == 0);
    float v[3] = {1.5f, -2, 3}, scratch[3];
    /* At an address that is 2 mod 4, as LMDB may place a value: floats come back aligned. */
    vd_storage__vector_encode(b + 2, 42, v, 3);
    vd_vector_rec vr;
    ck_assert_int_eq(vd_storage__vector_decode(b + 2, vd_storage__vector_size(3), 3, &vr, NULL),
                     VD_OK);
    ck_assert_uint_eq(vr.id, 42);
    const float *f = vd_storage__vector_floats(&vr, 3, scratch);
    ck_assert_ptr_eq(f, scratch);
    ck_assert(memcmp(f, v, sizeof v) == 0);
    uint64_t id;
    uint32_t slot, cid;
    vd_storage__key_point(k, 9, 0x0102030405060708ull);
    ck_assert(vd_storage__key_point_decode(k, sizeof k, 9, &id));
    ck_assert_uint_eq(id, 0x0102030405060708ull);
    ck_assert(!vd_storage__key_point_decode(k, sizeof k, 8, &id));
    ck_assert(!vd_storage__key_point_decode(k, sizeof k - 1, 9, &id));
    ck_assert(vd_storage__key_cid_decode(VD_DB_POINTS, k, sizeof k, &cid) && cid == 9);
    ck_assert(!vd_storage__key_cid_decode(VD_DB_VECTORS, k, sizeof k, &cid));
    ck_assert(!vd_storage__key_cid_decode(VD_DB_CATALOG, k, sizeof k, &cid));
    vd_storage__key_slot(k, 9, 513);
    ck_assert(vd_storage__key_slot_decode(k, VD_KEY_SLOT_BYTES, 9, &slot) && slot == 513);
    /* Big-endian keys: numeric order is byte order. */
    uint8_t k1[VD_KEY_SLOT_BYTES], k2[VD_KEY_SLOT_BYTES];
    vd_storage__key_slot(k1, 1, 255);
    vd_storage__key_slot(k2, 1, 256);
    ck_assert_int_lt(memcmp(k1, k2, sizeof k1), 0);
}
END_TEST

/* Replaces the value of `key` in database `db` of the (closed) store in dir. */
static void poke(const char *dir, const char *db, const void *key, size_t klen,
                 const void *val, size_t vlen)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, VD_STORE_MAX_DBS), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, db, 0, &dbi), 0);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

START_TEST(a_short_points_record_is_refused_by_every_reader)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "a", 4, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "a", 0, 20, 4, 1), VD_OK);
    vd_store_close(st);
    uint8_t key[VD_KEY_POINT_BYTES], two[2] = {0, 0};
    vd_storage__key_point(key, 1, 5);
    poke(dir, "points", key, sizeof key, two, sizeof two);
    st = st_open(dir); /* load reads vectors and links only */
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "a", &c, NULL), VD_OK);
    vd_snapshot *sn = NULL;
    ck_assert_int_eq(vd_snapshot_begin(st, &sn, NULL), VD_OK);
    int found;
    vd_err e;
    ck_assert_int_eq(vd_snapshot_get(sn, c, 5, &found, NULL, NULL, NULL, &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "collection a: point 5"));
    ck_assert_int_eq(found, 0);
    vd_snapshot_end(sn);
    vd_collection_release(c);
    /* The write group reads it too (delete, upsert, re-pointing): refused, nothing changes. */
    uint64_t id = 5;
    ck_assert_int_eq(st_delete(st, "a", &id, 1, NULL), VD_CORRUPT);
    ck_assert_int_eq(st_upsert_range(st, "a", 5, 1, 4, 0), VD_CORRUPT);
    ck_assert_int_eq(st_upsert_range(st, "a", 100, 3, 4, 0), VD_OK); /* others still work */
    st_report r = {0};
    ck_assert_int_eq(vd_store_check(st, st_report_line, &r, &e), VD_CORRUPT);
    ck_assert_msg(strstr(r.first, "point 5: points record of 2 bytes"), "%s", r.first);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(a_vector_record_of_the_wrong_length_is_refused_by_load_and_check)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "a", 4, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "a", 0, 20, 4, 0), VD_OK);
    vd_store_close(st);
    /* Longer than 8 + 4 * dim: the write path once took anything of 8 bytes or more. */
    uint8_t key[VD_KEY_SLOT_BYTES], val[8 + 16 + 4] = {0};
    vd_storage__key_slot(key, 1, 3);
    poke(dir, "vectors", key, sizeof key, val, sizeof val);
    vd_store *bad = NULL;
    vd_err e;
    vd_store_options opt = {.n_threads = 1};
    ck_assert_int_eq(vd_store_open(dir, &opt, &bad, &e), VD_CORRUPT);
    ck_assert_msg(strstr(e.msg, "slot 3") && strstr(e.msg, "expected 24"), "%s", e.msg);
    st_rmtree(dir);
}
END_TEST

START_TEST(format_zero_is_refused_by_open_and_backup_alike)
{
    char dir[64], to[128];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    vd_store_close(st);
    uint8_t zero[4] = {0};
    poke(dir, "meta", VD_META_FORMAT, strlen(VD_META_FORMAT), zero, sizeof zero);
    vd_store *bad = NULL;
    vd_err e;
    vd_store_options opt = {.read_only = 1};
    ck_assert_int_eq(vd_store_open(dir, &opt, &bad, &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "format version"));
    snprintf(to, sizeof to, "%s/copy", dir);
    ck_assert_int_eq(vd_store_backup(dir, to, &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "format version"));
    st_rmtree(dir);
}
END_TEST

static int count_change(void *ctx, uint32_t slot, vd_change_kind kind)
{
    (void)slot; (void)kind;
    (*(size_t *)ctx)++;
    return 0;
}

START_TEST(import_leaves_no_change_set)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    uint32_t dim = 6;
    size_t n = 300;
    vd_index_params ip = {.dim = dim, .metric = VD_METRIC_L2, .m = 8, .ef_construction = 40};
    vd_index *ix = NULL;
    ck_assert_int_eq(vd_index_open(&ip, &ix, NULL), VD_OK);
    uint64_t *ids = malloc(n * sizeof *ids);
    float *vecs = malloc(n * dim * sizeof *vecs);
    for (size_t i = 0; i < n; i++) {
        ids[i] = i + 10;
        st_vector_of(ids[i], dim, vecs + i * dim);
    }
    ck_assert_int_eq(vd_index_add_batch(ix, ids, vecs, n, 1, NULL, NULL, NULL), VD_OK);
    vd_collection_params p = {.name = "imp", .dim = dim, .metric = VD_METRIC_L2, .m = 8,
                              .ef_construction = 40};
    vd_err e;
    ck_assert_msg(vd_store_import(st, &p, ix, n, ids, NULL, NULL, 0, NULL, NULL, &e) == VD_OK,
                  "%s", e.msg);
    size_t n_changes = 0;
    vd_index_changes(ix, count_change, &n_changes);
    ck_assert_uint_eq(n_changes, 0);
    st_report r = {0};
    ck_assert_msg(vd_store_check(st, st_report_line, &r, &e) == VD_OK, "%s", r.first);
    vd_store_close(st);
    st = st_open(dir);
    ck_assert_int_eq(vd_store_check(st, st_report_line, &r, &e), VD_OK);
    vd_store_close(st);
    free(ids);
    free(vecs);
    st_rmtree(dir);
}
END_TEST

Suite *storage_codec_suite(void)
{
    Suite *s = suite_create("storage_codec");
    TCase *tc = tcase_create("codec");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, each_decoder_enforces_its_length_rule);
    tcase_add_test(tc, catalog_records_round_trip_and_refuse_damage);
    tcase_add_test(tc, points_vectors_and_keys_round_trip);
    tcase_add_test(tc, a_short_points_record_is_refused_by_every_reader);
    tcase_add_test(tc, a_vector_record_of_the_wrong_length_is_refused_by_load_and_check);
    tcase_add_test(tc, format_zero_is_refused_by_open_and_backup_alike);
    tcase_add_test(tc, import_leaves_no_change_set);
    suite_add_tcase(s, tc);
    return s;
}
