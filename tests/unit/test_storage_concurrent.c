/* tests/unit/test_storage_concurrent.c: readers racing the writer (also run under TSan).
 * Reader threads acquire collections, search them and read points through snapshots while
 * the writer upserts, deletes, drops and re-creates collections and the map is grown under
 * them (a tiny initial map forces resizes through the reader gate). Every acknowledged point
 * must be readable by a snapshot begun after the acknowledgement. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/storage_int.h"
#include "tests/unit/storage_testlib.h"

#define DIM 8

static vd_store *g_st;
static atomic_int g_stop;
static _Atomic uint64_t g_acked; /* ids [0, g_acked) of "live" are committed */
static atomic_long g_reads;

static void *reader(void *arg)
{
    (void)arg;
    float q[DIM];
    vd_hit hits[10];
    uint64_t seed = 1;
    while (!atomic_load(&g_stop)) {
        uint64_t acked = atomic_load(&g_acked);
        vd_collection *c = NULL;
        if (vd_store_acquire(g_st, "live", &c, NULL) == VD_OK) {
            st_fill(q, DIM, seed++);
            uint32_t n = 0;
            vd_err e;
            ck_assert_int_eq(vd_index_search(vd_collection_index(c), q, 10, 20, hits, &n, &e),
                             VD_OK);
            ck_assert(n <= 10);
            vd_snapshot *s = NULL;
            ck_assert_int_eq(vd_snapshot_begin(g_st, &s, NULL), VD_OK);
            if (acked) {
                uint64_t id = seed % acked;
                int found = 0;
                const float *v = NULL;
                ck_assert_int_eq(vd_snapshot_get(s, c, id, &found, &v, NULL, NULL, &e), VD_OK);
                ck_assert_msg(found, "acknowledged id %llu not found", (unsigned long long)id);
                float want[DIM];
                st_vector_of(id, DIM, want);
                ck_assert(memcmp(v, want, sizeof want) == 0);
            }
            vd_snapshot_end(s);
            vd_collection_release(c);
        }
        /* A collection that is dropped and re-created all the time. */
        if (vd_store_acquire(g_st, "churn", &c, NULL) == VD_OK) {
            uint32_t n = 0;
            st_fill(q, DIM, seed++);
            ck_assert_int_eq(vd_index_search(vd_collection_index(c), q, 5, 20, hits, &n, NULL),
                             VD_OK);
            vd_collection_info info;
            vd_collection_info_get(c, &info);
            vd_collection_release(c);
        }
        vd_collection_info *all = NULL;
        size_t n_all = 0;
        ck_assert_int_eq(vd_store_list(g_st, &all, &n_all, NULL), VD_OK);
        vd_free(all);
        atomic_fetch_add(&g_reads, 1);
    }
    return NULL;
}

START_TEST(readers_race_writer_drops_and_map_resizes)
{
    char dir[64];
    st_tmpdir(dir);
    vd_storage__test_initial_map = 1u << 20;
    g_st = st_open(dir);
    ck_assert_int_eq(st_create(g_st, "live", DIM, VD_METRIC_L2), VD_OK);
    atomic_store(&g_stop, 0);
    atomic_store(&g_acked, 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, reader, NULL), 0);
    long grows0 = vd_storage__n_grows;
    size_t rounds = st_scale(60, 20), batch = 250;
    for (size_t r = 0; r < rounds; r++) {
        ck_assert_int_eq(st_upsert_range(g_st, "live", r * batch, batch, DIM, 1), VD_OK);
        atomic_store(&g_acked, (r + 1) * batch);
        if (r % 3 == 0) ck_assert_int_eq(st_create(g_st, "churn", DIM, VD_METRIC_IP), VD_OK);
        if (r % 3 == 1) ck_assert_int_eq(st_upsert_range(g_st, "churn", 0, 50, DIM, 0), VD_OK);
        if (r % 3 == 2) {
            vd_op drop = {.kind = VD_OP_DROP, .collection = "churn"};
            ck_assert_int_eq(vd_store_write(g_st, &drop, 1, NULL), VD_OK);
            ck_assert_int_eq(drop.status, VD_OK);
        }
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    ck_assert(vd_storage__n_grows > grows0);
    ck_assert(atomic_load(&g_reads) > 0);
    st_report rep = {0};
    vd_err e = {0};
    ck_assert_msg(vd_store_check(g_st, st_report_line, &rep, &e) == VD_OK, "%s: %s", e.msg,
                  rep.first);
    vd_store_close(g_st);
    st_rmtree(dir);
}
END_TEST

Suite *storage_concurrent_suite(void)
{
    Suite *s = suite_create("storage_concurrent");
    TCase *tc = tcase_create("concurrent");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, readers_race_writer_drops_and_map_resizes);
    suite_add_tcase(s, tc);
    return s;
}
