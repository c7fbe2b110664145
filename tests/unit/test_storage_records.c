/* tests/unit/test_storage_records.c: stored records are hostile input. A small data directory
 * is damaged one record at a time through LMDB itself (so LMDB's own pages stay valid and
 * only our records are wrong): values truncated, extended, overwritten with random bytes,
 * single bytes flipped, records deleted. Each damaged copy must open with VD_OK, VD_CORRUPT,
 * VD_VERSION or VD_NOMEM - never crash (this suite also runs under ASan+UBSan) - and when it
 * opens, vd_store_check must answer VD_OK or VD_CORRUPT and searches must work. */
#include <check.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "storage/vd_storage.h"
#include "tests/unit/storage_testlib.h"

static const char *dbs[] = {"meta", "catalog", "points", "vectors", "links"};

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Damages one random record of one database; returns a short description. */
static void damage(const char *dir, char *what, size_t what_len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    const char *db = dbs[next_rand() % VD_ARRAY_LEN(dbs)];
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, db, 0, &dbi), 0);
    MDB_stat ms;
    ck_assert_int_eq(mdb_stat(txn, dbi, &ms), 0);
    ck_assert_int_gt(ms.ms_entries, 0);
    size_t target = next_rand() % ms.ms_entries;
    ck_assert_int_eq(mdb_cursor_open(txn, dbi, &cur), 0);
    for (size_t i = 0; i <= target; i++)
        ck_assert_int_eq(mdb_cursor_get(cur, &k, &v, MDB_NEXT), 0);
    uint8_t key[128], val[8192];
    size_t klen = k.mv_size < sizeof key ? k.mv_size : sizeof key;
    size_t vlen = v.mv_size < sizeof val ? v.mv_size : sizeof val;
    memcpy(key, k.mv_data, klen);
    memcpy(val, v.mv_data, vlen);
    mdb_cursor_close(cur);
    MDB_val kk = {klen, key};
    int how = (int)(next_rand() % 5);
    size_t nlen = vlen;
    switch (how) {
    case 0: /* truncate */
        nlen = vlen ? next_rand() % vlen : 0;
        break;
    case 1: /* extend with random bytes */
        nlen = vlen + 1 + next_rand() % 64;
        if (nlen > sizeof val) nlen = sizeof val;
        for (size_t i = vlen; i < nlen; i++) val[i] = (uint8_t)next_rand();
        break;
    case 2: /* flip bytes */
        for (int i = 0; i < 1 + (int)(next_rand() % 3) && vlen; i++)
            val[next_rand() % vlen] ^= (uint8_t)(1u << (next_rand() % 8));
        break;
    case 3: /* random contents, same length */
        for (size_t i = 0; i < vlen; i++) val[i] = (uint8_t)next_rand();
        break;
    default:
        break;
    }
    if (how == 4) {
        ck_assert_int_eq(mdb_del(txn, dbi, &kk, NULL), 0);
    } else {
        MDB_val nv = {nlen, val};
        ck_assert_int_eq(mdb_put(txn, dbi, &kk, &nv, 0), 0);
    }
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    static const char *hows[] = {"truncated", "extended", "flipped", "randomized", "deleted"};
    snprintf(what, what_len, "%s record %zu of %s", hows[how], target, db);
}

START_TEST(damaged_records_are_refused_or_reported_never_trusted)
{
    char dir[64], path[128];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "a", 6, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_create(st, "b", 3, VD_METRIC_COSINE), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "a", 0, 150, 6, 1), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "b", 0, 40, 3, 0), VD_OK);
    uint64_t del[60];
    for (int i = 0; i < 60; i++) del[i] = (uint64_t)i * 2;
    ck_assert_int_eq(st_delete(st, "a", del, 60, NULL), VD_OK);
    vd_store_close(st);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    size_t len;
    uint8_t *pristine = st_read_file(path, &len);
    ck_assert_ptr_nonnull(pristine);
    int n = (int)st_scale(300, 80), n_ok = 0, n_corrupt = 0, n_found = 0;
    const char *seed = getenv("VD_TEST_SEED"); /* explore other damage sequences */
    if (seed) rng = strtoull(seed, NULL, 10) | 1;
    for (int it = 0; it < n; it++) {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(pristine, 1, len, f), len);
        fclose(f);
        char what[96];
        damage(dir, what, sizeof what);
        vd_store_options opt = {.read_only = it % 2, .n_threads = 1};
        vd_err e = {0};
        st = NULL;
        vd_status s = vd_store_open(dir, &opt, &st, &e);
        ck_assert_msg(s == VD_OK || s == VD_CORRUPT || s == VD_VERSION || s == VD_NOMEM,
                      "%s: open gave %s: %s", what, vd_status_name(s), e.msg);
        if (s != VD_OK) {
            n_corrupt++;
            continue;
        }
        n_ok++;
        st_report r = {0};
        s = vd_store_check(st, st_report_line, &r, &e);
        ck_assert_msg(s == VD_OK || s == VD_CORRUPT, "%s: check gave %s", what,
                      vd_status_name(s));
        if (s == VD_CORRUPT) n_found++;
        const char *names[2] = {"a", "b"};
        for (int c = 0; c < 2; c++) {
            vd_collection *col = NULL;
            if (vd_store_acquire(st, names[c], &col, NULL) != VD_OK) continue;
            float q[6] = {0.5f, -0.25f, 1, 0.1f, 0.2f, 0.3f};
            vd_hit h[5];
            uint32_t nh;
            ck_assert_int_eq(vd_index_search(vd_collection_index(col), q, 5, 20, h, &nh, NULL),
                             VD_OK);
            vd_snapshot *sn = NULL;
            ck_assert_int_eq(vd_snapshot_begin(st, &sn, NULL), VD_OK);
            for (uint64_t id = 0; id < 150; id += 7) {
                int found;
                const float *v;
                const uint8_t *p;
                size_t pl;
                vd_status g = vd_snapshot_get(sn, col, id, &found, &v, &p, &pl, NULL);
                ck_assert(g == VD_OK || g == VD_CORRUPT);
            }
            vd_snapshot_end(sn);
            vd_collection_release(col);
        }
        vd_store_close(st);
    }
    fprintf(stderr, "storage records: %d damaged copies: %d refused at open, %d opened "
            "(%d of them reported by check)\n", n, n_corrupt, n_ok, n_found);
    ck_assert_int_gt(n_corrupt, 0);
    vd_free(pristine);
    st_rmtree(dir);
}
END_TEST

Suite *storage_records_suite(void)
{
    Suite *s = suite_create("storage_records");
    TCase *tc = tcase_create("records");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, damaged_records_are_refused_or_reported_never_trusted);
    suite_add_tcase(s, tc);
    return s;
}
