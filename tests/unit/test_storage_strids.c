/* tests/unit/test_storage_strids.c: string ids inside storage - the bucket records of long
 * ids and the JSON merge as pure codecs; the lifetime of key -> id records (kept after a
 * delete until the key's last slot is freed, then reaped); a data directory written before
 * the string id tables existed (read-only: empty; read-write: created); vd_store_check
 * finding every kind of damaged mapping; vd_store_import_str. */
#include <check.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/vd_index.h"
#include "storage/records.h"
#include "tests/unit/storage_testlib.h"

#define DIM 8

/* ---- pure codecs ------------------------------------------------------------------------- */
START_TEST(buckets_keep_their_entries_sorted_and_decode_only_what_they_wrote)
{
    uint8_t a[256], b[256];
    size_t n = vd_storage__sid_bucket_edit(NULL, 0, (const uint8_t *)"b", 1, 7, a);
    n = vd_storage__sid_bucket_edit(a, n, (const uint8_t *)"", 0, 8, b);
    n = vd_storage__sid_bucket_edit(b, n, (const uint8_t *)"ab", 2, 9, a);
    n = vd_storage__sid_bucket_edit(a, n, (const uint8_t *)"b", 1, 70, b); /* replace */
    ck_assert_int_eq(vd_storage__sid_bucket_decode(b, n, NULL), VD_OK);
    const char *want[] = {"", "ab", "b"};
    uint64_t keys[] = {8, 9, 70};
    size_t off = 0, rl, i = 0;
    const uint8_t *r;
    uint64_t k;
    while (vd_storage__sid_bucket_next(b, n, &off, &r, &rl, &k)) {
        ck_assert_uint_eq(rl, strlen(want[i]));
        ck_assert(memcmp(r, want[i], rl) == 0);
        ck_assert_uint_eq(k, keys[i++]);
    }
    ck_assert_uint_eq(i, 3);
    ck_assert(vd_storage__sid_bucket_find(b, n, (const uint8_t *)"ab", 2, &k) && k == 9);
    ck_assert(!vd_storage__sid_bucket_find(b, n, (const uint8_t *)"a", 1, &k));
    n = vd_storage__sid_bucket_edit(b, n, (const uint8_t *)"", 0, VD_ID_NONE, a);
    n = vd_storage__sid_bucket_edit(a, n, (const uint8_t *)"ab", 2, VD_ID_NONE, b);
    n = vd_storage__sid_bucket_edit(b, n, (const uint8_t *)"b", 1, VD_ID_NONE, a);
    ck_assert_uint_eq(n, 0);
    /* hostile buckets */
    const uint8_t bad_len[] = {6, 'a', 'b', 'c', 'd', 'e', 'f', 1, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t unsorted[] = {1, 'b', 1, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 2, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t short_key[] = {1, 'b', 1, 0, 0};
    ck_assert_int_eq(vd_storage__sid_bucket_decode(bad_len, sizeof bad_len, NULL), VD_CORRUPT);
    ck_assert_int_eq(vd_storage__sid_bucket_decode(unsorted, sizeof unsorted, NULL), VD_CORRUPT);
    ck_assert_int_eq(vd_storage__sid_bucket_decode(short_key, sizeof short_key, NULL), VD_CORRUPT);
    ck_assert_int_eq(vd_storage__sid_bucket_decode(a, 0, NULL), VD_CORRUPT);
}
END_TEST

static void merged(const char *base, const char *upd, const char *want)
{
    uint8_t out[512];
    size_t n = 0;
    ck_assert_int_eq(vd_json_check_object((const uint8_t *)base, strlen(base), NULL), VD_OK);
    ck_assert_int_eq(vd_json_check_object((const uint8_t *)upd, strlen(upd), NULL), VD_OK);
    ck_assert_int_eq(vd_storage__json_merge((const uint8_t *)base, strlen(base),
                                            (const uint8_t *)upd, strlen(upd), out, &n, NULL),
                     VD_OK);
    ck_assert_msg(n == strlen(want) && memcmp(out, want, n) == 0, "%s + %s = %.*s, want %s",
                  base, upd, (int)n, out, want);
    ck_assert_int_eq(vd_json_check_object(out, n, NULL), VD_OK);
}

START_TEST(merge_replaces_top_level_keys_and_keeps_bytes_verbatim)
{
    merged("{}", "{}", "{}");
    merged("{\"a\":1}", "{}", "{\"a\":1}");
    merged("{}", "{\"a\":1}", "{\"a\":1}");
    merged("{\"a\":1,\"b\":2}", "{\"b\":3,\"c\":4}", "{\"a\":1,\"b\":3,\"c\":4}");
    /* nested values are replaced whole, not merged (top level only) */
    merged("{\"m\":{\"x\":1,\"y\":2}}", "{\"m\":{\"x\":9}}", "{\"m\":{\"x\":9}}");
    /* keys compare decoded: \u0061 is a, \/ is / ; surrogate pairs */
    merged("{\"a\":1,\"a/b\":2,\"\xf0\x9f\x9a\x80\":3}",
           "{\"\\u0061\":5,\"a\\/b\":6,\"\\ud83d\\ude80\":7}",
           "{\"\\u0061\":5,\"a\\/b\":6,\"\\ud83d\\ude80\":7}");
    /* untouched values keep their bytes: big integers, exponents, escapes, whitespace */
    merged(" {\n \"n\" : 123456789012345678901234567890 , \"f\":1.0e-3,\"s\":\"x\\\"y,}\" } ",
           "{\"t\":[1,{\"a\":\"}\"}]}",
           "{\"n\" : 123456789012345678901234567890,\"f\":1.0e-3,\"s\":\"x\\\"y,}\","
           "\"t\":[1,{\"a\":\"}\"}]}");
    /* a key repeated in the update is kept as sent; every stored copy of it goes */
    merged("{\"k\":1,\"k\":2,\"j\":0}", "{\"k\":3,\"k\":4}", "{\"j\":0,\"k\":3,\"k\":4}");
}
END_TEST

/* ---- stores ------------------------------------------------------------------------------ */
typedef struct sids {
    uint8_t bytes[16384];
    uint32_t ends[1024];
    vd_str_ids v;
} sids;

/* ids "<prefix><i>" for i in [first, first + n). */
static void make_ids(sids *s, const char *prefix, size_t first, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        off += (size_t)sprintf((char *)s->bytes + off, "%s%zu", prefix, first + i);
        s->ends[i] = (uint32_t)off;
    }
    s->v = (vd_str_ids){.bytes = s->bytes, .ends = s->ends, .n = n, .n_bytes = off};
}

static vd_status create_str(vd_store *st, const char *name)
{
    vd_op op = {.kind = VD_OP_CREATE};
    snprintf(op.params.name, sizeof op.params.name, "%s", name);
    op.params.dim = DIM;
    op.params.metric = VD_METRIC_L2;
    op.params.m = 8;
    op.params.ef_construction = 32;
    op.params.id_type = VD_ID_STR;
    vd_status s = vd_store_write(st, &op, 1, NULL);
    return s != VD_OK ? s : op.status;
}

static vd_status write_str(vd_store *st, vd_op_kind kind, const char *name, const sids *s,
                           uint64_t seed)
{
    float *v = calloc(s->v.n * DIM + 1, sizeof *v);
    for (size_t i = 0; i < s->v.n; i++) st_vector_of(seed + i, DIM, v + i * DIM);
    vd_op op = {.kind = kind, .collection = name, .n = s->v.n, .str_ids = s->v,
                .vectors = kind == VD_OP_UPSERT ? v : NULL};
    vd_err e;
    vd_status r = vd_store_write(st, &op, 1, &e);
    free(v);
    ck_assert_msg(r == VD_OK && op.status == VD_OK, "%s", r == VD_OK ? op.err.msg : e.msg);
    return VD_OK;
}

static void check_ok(vd_store *st)
{
    st_report rep = {0};
    vd_err e;
    ck_assert_msg(vd_store_check(st, st_report_line, &rep, &e) == VD_OK, "%s (first: %s)", e.msg,
                  rep.first);
}

/* The key of id i of s, or VD_ID_NONE. */
static uint64_t key_of(vd_store *st, vd_collection *c, const sids *s, size_t i)
{
    vd_snapshot *snap;
    uint64_t key;
    int found;
    ck_assert(vd_snapshot_begin(st, &snap, NULL) == VD_OK);
    size_t a = vd_str_ids_start(&s->v, i);
    ck_assert(vd_snapshot_str_key(snap, c, s->bytes + a, s->ends[i] - a, &key, &found, NULL) ==
              VD_OK);
    vd_snapshot_end(snap);
    return found ? key : VD_ID_NONE;
}

static int key_named(vd_store *st, vd_collection *c, uint64_t key)
{
    vd_snapshot *snap;
    const uint8_t *id;
    size_t len;
    int found;
    ck_assert(vd_snapshot_begin(st, &snap, NULL) == VD_OK);
    ck_assert(vd_snapshot_key_str(snap, c, key, &id, &len, &found, NULL) == VD_OK);
    vd_snapshot_end(snap);
    return found;
}

START_TEST(a_deleted_key_keeps_its_name_until_its_last_slot_is_freed)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(create_str(st, "s"), VD_OK);
    sids all, gone;
    make_ids(&all, "doc-", 0, 400);
    make_ids(&gone, "doc-", 0, 200);
    write_str(st, VD_OP_UPSERT, "s", &all, 1);
    vd_collection *c;
    ck_assert(vd_store_acquire(st, "s", &c, NULL) == VD_OK);
    uint64_t k0 = key_of(st, c, &all, 0);
    ck_assert_uint_ne(k0, VD_ID_NONE);
    write_str(st, VD_OP_DELETE, "s", &gone, 0);
    check_ok(st);
    ck_assert_uint_eq(key_of(st, c, &all, 0), VD_ID_NONE); /* the id is free */
    /* half the points are tombstones: the publish after that delete vacuumed them; their
     * slots are persisted as freed, and the names reaped, by the next group */
    sids one;
    make_ids(&one, "new-", 0, 1);
    write_str(st, VD_OP_UPSERT, "s", &one, 9);
    check_ok(st);
    ck_assert(!key_named(st, c, k0));
    /* upserting a deleted id again gives it a new key */
    sids again;
    make_ids(&again, "doc-", 0, 1);
    write_str(st, VD_OP_UPSERT, "s", &again, 5);
    ck_assert_uint_gt(key_of(st, c, &again, 0), k0);
    vd_collection_release(c);
    check_ok(st);
    vd_store_close(st);
    st = st_open(dir);
    check_ok(st);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(ids_added_and_deleted_in_one_group_leave_nothing_behind)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(create_str(st, "s"), VD_OK);
    sids keep, brief, one;
    make_ids(&keep, "keep-", 0, 100);
    make_ids(&brief, "brief-", 0, 30);
    make_ids(&one, "keep-", 0, 1);
    write_str(st, VD_OP_UPSERT, "s", &keep, 1);
    float v[30 * DIM];
    for (size_t i = 0; i < 30; i++) st_vector_of(500 + i, DIM, v + i * DIM);
    for (int round = 0; round < 4; round++) { /* new ids upserted, then deleted, one group */
        vd_op ops[3] = {
            {.kind = VD_OP_UPSERT, .collection = "s", .n = 30, .str_ids = brief.v, .vectors = v},
            {.kind = VD_OP_DELETE, .collection = "s", .n = 30, .str_ids = brief.v},
            {.kind = VD_OP_UPSERT, .collection = "s", .n = 1, .str_ids = one.v, .vectors = v},
        };
        vd_err e;
        ck_assert(vd_store_write(st, ops, 3, &e) == VD_OK);
        for (int i = 0; i < 3; i++) ck_assert_msg(ops[i].status == VD_OK, "%s", ops[i].err.msg);
        ck_assert_uint_eq(ops[1].n_done, 30);
        check_ok(st);
    }
    vd_op mismatched = {.kind = VD_OP_UPSERT, .collection = "s", .n = 1, .str_ids = brief.v,
                        .vectors = v};
    ck_assert(vd_store_write(st, &mismatched, 1, NULL) == VD_OK);
    ck_assert_int_eq(mismatched.status, VD_INVALID);
    ck_assert_msg(strstr(mismatched.err.msg, "30 string ids for a batch of 1"), "%s",
                  mismatched.err.msg);
    vd_store_close(st);
    st = st_open(dir);
    check_ok(st);
    vd_collection *c;
    ck_assert(vd_store_acquire(st, "s", &c, NULL) == VD_OK);
    ck_assert_uint_eq(vd_index_count(vd_collection_index(c)), 100);
    ck_assert_uint_eq(key_of(st, c, &brief, 0), VD_ID_NONE);
    vd_collection_release(c);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

/* Opens dir's environment directly (no vd_store), for damage. */
static MDB_env *raw_env(const char *dir)
{
    MDB_env *env;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(env, (size_t)1 << 28), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
    return env;
}

START_TEST(a_directory_without_the_string_id_tables_opens_and_gains_them)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "old", DIM, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "old", 0, 50, DIM, 1), VD_OK);
    vd_store_close(st);
    MDB_env *env = raw_env(dir);
    MDB_txn *txn;
    MDB_dbi d;
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    for (int i = VD_DB_LAST_ORIGINAL + 1; i < VD_DB_COUNT; i++) {
        ck_assert_int_eq(mdb_dbi_open(txn, vd_storage__db_info((vd_db)i)->name, 0, &d), 0);
        ck_assert_int_eq(mdb_drop(txn, d, 1), 0);
    }
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    /* read-only: served and checked as before, nothing created */
    vd_store_options ro = {.read_only = 1, .n_threads = 1};
    vd_err e;
    ck_assert_msg(vd_store_open(dir, &ro, &st, &e) == VD_OK, "%s", e.msg);
    check_ok(st);
    vd_store_close(st);
    env = raw_env(dir);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "sids", 0, &d), MDB_NOTFOUND);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    /* read-write: the tables appear and string ids work */
    st = st_open(dir);
    ck_assert_int_eq(create_str(st, "new"), VD_OK);
    sids s;
    make_ids(&s, "x", 0, 10);
    write_str(st, VD_OP_UPSERT, "new", &s, 1);
    check_ok(st);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

/* Applies fn to dir's raw environment in one write transaction. */
static void damage(const char *dir, void (*fn)(MDB_txn *, MDB_dbi, MDB_dbi))
{
    MDB_env *env = raw_env(dir);
    MDB_txn *txn;
    MDB_dbi sids_db, skeys_db;
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "sids", 0, &sids_db), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "skeys", 0, &skeys_db), 0);
    fn(txn, sids_db, skeys_db);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* cid 1 is the first collection created in a directory */
static void drop_one_sid(MDB_txn *t, MDB_dbi s, MDB_dbi k)
{
    (void)k;
    uint8_t kb[VD_KEY_SID_MAX];
    size_t n = vd_storage__key_sid(kb, 1, (const uint8_t *)"id3", 3);
    MDB_val key = {n, kb};
    ck_assert_int_eq(mdb_del(t, s, &key, NULL), 0);
}

static void drop_one_skey(MDB_txn *t, MDB_dbi s, MDB_dbi k)
{
    (void)s;
    uint8_t kb[VD_KEY_POINT_BYTES];
    vd_storage__key_point(kb, 1, 4);
    MDB_val key = {sizeof kb, kb};
    ck_assert_int_eq(mdb_del(t, k, &key, NULL), 0);
}

static void swap_names(MDB_txn *t, MDB_dbi s, MDB_dbi k)
{
    (void)s;
    uint8_t kb[VD_KEY_POINT_BYTES];
    vd_storage__key_point(kb, 1, 5);
    MDB_val key = {sizeof kb, kb}, val = {3, "id6"};
    ck_assert_int_eq(mdb_put(t, k, &key, &val, 0), 0);
}

static void bad_utf8_name(MDB_txn *t, MDB_dbi s, MDB_dbi k)
{
    (void)s;
    uint8_t kb[VD_KEY_POINT_BYTES];
    vd_storage__key_point(kb, 1, 2);
    MDB_val key = {sizeof kb, kb}, val = {2, "\xff\xfe"};
    ck_assert_int_eq(mdb_put(t, k, &key, &val, 0), 0);
}

static void key_past_sequence(MDB_txn *t, MDB_dbi s, MDB_dbi k)
{
    (void)k;
    uint8_t kb[VD_KEY_SID_MAX], vb[VD_SID_REC_BYTES];
    size_t n = vd_storage__key_sid(kb, 1, (const uint8_t *)"zz", 2);
    vd_storage__sid_encode(vb, 99999);
    MDB_val key = {n, kb}, val = {sizeof vb, vb};
    ck_assert_int_eq(mdb_put(t, s, &key, &val, 0), 0);
}

static void orphan_records(MDB_txn *t, MDB_dbi s, MDB_dbi k)
{
    uint8_t kb[VD_KEY_SID_MAX], vb[VD_SID_REC_BYTES];
    size_t n = vd_storage__key_sid(kb, 77, (const uint8_t *)"zz", 2);
    vd_storage__sid_encode(vb, 1);
    MDB_val key = {n, kb}, val = {sizeof vb, vb};
    ck_assert_int_eq(mdb_put(t, s, &key, &val, 0), 0);
    MDB_val shorty = {2, "ab"};
    ck_assert_int_eq(mdb_put(t, k, &shorty, &val, 0), 0);
}

START_TEST(check_reports_every_kind_of_damaged_mapping)
{
    struct {
        void (*fn)(MDB_txn *, MDB_dbi, MDB_dbi);
        const char *has;
    } cases[] = {
        {drop_one_sid, "string id \"id3\" of key 3 maps to nothing"},
        {drop_one_skey, "point of key 4 has no string id"},
        {swap_names, "string id \"id6\" of key 5 maps to another key"},
        {bad_utf8_name, "key 2: key record holds no valid string id"},
        {key_past_sequence, "maps to key 99999, not below the sequence's 10"},
        {orphan_records, "belong to collection id 77"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dir[64];
        st_tmpdir(dir);
        vd_store *st = st_open(dir);
        ck_assert_int_eq(create_str(st, "s"), VD_OK);
        sids s;
        make_ids(&s, "id", 0, 10);
        write_str(st, VD_OP_UPSERT, "s", &s, 1);
        check_ok(st);
        vd_store_close(st);
        damage(dir, cases[i].fn);
        vd_store_options ro = {.read_only = 1, .n_threads = 1};
        vd_err e;
        ck_assert_msg(vd_store_open(dir, &ro, &st, &e) == VD_OK, "%s", e.msg);
        st_report rep = {0};
        ck_assert_int_eq(vd_store_check(st, st_report_line, &rep, &e), VD_CORRUPT);
        ck_assert_msg(strstr(rep.first, cases[i].has), "case %zu: '%s' lacks '%s'", i, rep.first,
                      cases[i].has);
        vd_store_close(st);
        st_rmtree(dir);
    }
}
END_TEST

START_TEST(import_str_writes_every_mapping_in_the_one_transaction)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    vd_index_params ip = {.dim = DIM, .metric = VD_METRIC_L2, .m = 8, .ef_construction = 32,
                          .seed = 1};
    vd_index *ix;
    ck_assert(vd_index_open(&ip, &ix, NULL) == VD_OK);
    sids s;
    make_ids(&s, "row-", 0, 300);
    uint64_t rows[300];
    float v[300 * DIM];
    for (size_t i = 0; i < 300; i++) {
        rows[i] = i;
        st_vector_of(i, DIM, v + i * DIM);
    }
    ck_assert(vd_index_add_batch(ix, rows, v, 300, 1, NULL, NULL, NULL) == VD_OK);
    vd_collection_params p = {.dim = DIM, .metric = VD_METRIC_L2, .m = 8, .ef_construction = 32,
                              .id_type = VD_ID_STR};
    strcpy(p.name, "imp");
    vd_err e;
    /* the wrong entry point, duplicate ids: refused, nothing written */
    ck_assert_int_eq(vd_store_import(st, &p, ix, 300, rows, NULL, NULL, 0, NULL, NULL, &e),
                     VD_INVALID);
    ck_assert_msg(strstr(e.msg, "needs string ids"), "%s", e.msg);
    sids dup;
    make_ids(&dup, "row-", 0, 300);
    memcpy(dup.bytes, "row-1", 5); /* "row-0" -> "row-1": twice */
    ck_assert_int_eq(vd_store_import_str(st, &p, ix, &dup.v, NULL, NULL, 0, NULL, NULL, &e),
                     VD_INVALID);
    ck_assert_msg(strstr(e.msg, "\"row-1\" appears more than once (rows 0 and 1)"), "%s", e.msg);
    ck_assert_msg(vd_store_import_str(st, &p, ix, &s.v, NULL, NULL, 0, NULL, NULL, &e) == VD_OK,
                  "%s", e.msg);
    vd_collection *c;
    ck_assert(vd_store_acquire(st, "imp", &c, NULL) == VD_OK);
    for (size_t i = 0; i < 300; i += 37) ck_assert_uint_eq(key_of(st, c, &s, i), i);
    vd_collection_release(c);
    check_ok(st);
    sids more;
    make_ids(&more, "late-", 0, 5); /* new ids take keys after the imported rows */
    write_str(st, VD_OP_UPSERT, "imp", &more, 1000);
    ck_assert(vd_store_acquire(st, "imp", &c, NULL) == VD_OK);
    ck_assert_uint_eq(key_of(st, c, &more, 0), 300);
    vd_collection_release(c);
    check_ok(st);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

Suite *storage_strids_suite(void)
{
    Suite *s = suite_create("storage_strids");
    TCase *tc = tcase_create("storage_strids");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, buckets_keep_their_entries_sorted_and_decode_only_what_they_wrote);
    tcase_add_test(tc, merge_replaces_top_level_keys_and_keeps_bytes_verbatim);
    tcase_add_test(tc, a_deleted_key_keeps_its_name_until_its_last_slot_is_freed);
    tcase_add_test(tc, ids_added_and_deleted_in_one_group_leave_nothing_behind);
    tcase_add_test(tc, a_directory_without_the_string_id_tables_opens_and_gains_them);
    tcase_add_test(tc, check_reports_every_kind_of_damaged_mapping);
    tcase_add_test(tc, import_str_writes_every_mapping_in_the_one_transaction);
    suite_add_tcase(s, tc);
    return s;
}
