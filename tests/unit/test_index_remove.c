/* tests/unit/test_index_remove.c: removal (gone at once, never back, recall holds after
 * removing half, the graph validates), re-adding, vacuum reclaiming slots, upsert, and
 * deferred publish (nothing new visible before vd_index_publish, the old version until). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "index/vd_index.h"
#include "tests/unit/index_testutil.h"

static int has_id(const vd_hit *h, uint32_t n, uint64_t id)
{
    for (uint32_t i = 0; i < n; i++)
        if (h[i].id == id) return 1;
    return 0;
}

START_TEST(removed_id_never_comes_back)
{
    vd_index *ix = vt_open(8, VD_METRIC_L2, 8, 64, 1);
    size_t n = vt_scale(600, 2);
    float *v = vt_clustered(n, 8, 10, 41);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(vd_index_add(ix, i, v + i * 8, NULL), VD_OK);
    vd_err e = {0};
    for (size_t i = 0; i < n; i += 3) {
        ck_assert_int_eq(vd_index_remove(ix, i, &e), VD_OK);
        ck_assert_int_eq(vd_index_remove(ix, i, &e), VD_NOTFOUND);
        ck_assert_ptr_nonnull(strstr(e.msg, "not found"));
    }
    vt_assert_valid(ix);
    ck_assert_uint_eq(vd_index_count(ix), n - (n + 2) / 3);
    vd_hit h[20];
    uint32_t nh;
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(vd_index_search(ix, v + i * 8, 20, 100, h, &nh, NULL), VD_OK);
        for (uint32_t j = 0; j < nh; j++) ck_assert_msg(h[j].id % 3 != 0, "removed id %llu came "
                                                        "back", (unsigned long long)h[j].id);
        ck_assert_int_eq(vd_index_search_exact(ix, v + i * 8, 20, h, &nh, NULL), VD_OK);
        for (uint32_t j = 0; j < nh; j++) ck_assert(h[j].id % 3 != 0);
        if (i % 3) ck_assert_uint_eq(h[0].id, i);
    }
    float out[8];
    ck_assert_int_eq(vd_index_get(ix, 3, out, NULL), VD_NOTFOUND);
    free(v);
    vd_index_close(ix);
}
END_TEST

START_TEST(recall_holds_after_removing_half)
{
    size_t n = vt_scale(4000, 4), nq = vt_scale(100, 2);
    uint32_t dim = 32;
    float *v = vt_clustered(n, dim, 40, 51), *q = vt_clustered(nq, dim, 40, 1051);
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) ids[i] = i;
    vd_index *ix = vt_open(dim, VD_METRIC_L2, 16, 100, 2);
    ck_assert_int_eq(vd_index_add_batch(ix, ids, v, n, 1, NULL, NULL, NULL), VD_OK);
    uint64_t s = 7;
    size_t removed = 0;
    for (size_t i = 0; i < n; i++) { /* a random half, in random-ish order */
        size_t j = vt_rand(&s) % n;
        if (vd_index_remove(ix, j, NULL) == VD_OK) removed++;
        if (removed == n / 2) break;
    }
    for (size_t i = 0; removed < n / 2 && i < n; i += 2)
        if (vd_index_remove(ix, i, NULL) == VD_OK) removed++;
    ck_assert_uint_eq(vd_index_count(ix), n - n / 2);
    vt_assert_valid(ix);
    vd_index_stats st;
    vd_index_stats_get(ix, &st);
    ck_assert_uint_lt(st.n_deleted, n / 10 + 64); /* vacuum kept up */
    double r = vt_recall(ix, q, nq, 10, 64);
    ck_assert_msg(r >= 0.95, "recall after removing half %.4f < 0.95", r);
    free(ids);
    free(v);
    free(q);
    vd_index_close(ix);
}
END_TEST

START_TEST(readding_removed_ids_works)
{
    vd_index *ix = vt_open(4, VD_METRIC_COSINE, 4, 32, 1);
    size_t n = 200;
    float *v = vt_clustered(n, 4, 5, 61);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(vd_index_add(ix, i, v + i * 4, NULL), VD_OK);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(vd_index_remove(ix, i, NULL), VD_OK);
    ck_assert_uint_eq(vd_index_count(ix), 0);
    vt_assert_valid(ix);
    vd_hit h[5];
    uint32_t nh = 9;
    ck_assert_int_eq(vd_index_search(ix, v, 5, 0, h, &nh, NULL), VD_OK);
    ck_assert_uint_eq(nh, 0);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(vd_index_add(ix, i, v + i * 4, NULL), VD_OK);
    ck_assert_uint_eq(vd_index_count(ix), n);
    vt_assert_valid(ix);
    for (size_t i = 0; i < n; i += 7) {
        ck_assert_int_eq(vd_index_search(ix, v + i * 4, 1, 64, h, &nh, NULL), VD_OK);
        ck_assert_uint_eq(nh, 1);
        ck_assert_float_eq_tol(h[0].distance, 0.0f, 1e-5f);
    }
    free(v);
    vd_index_close(ix);
}
END_TEST

static int count_kind(void *ctx, uint32_t slot, vd_change_kind kind)
{
    size_t *c = ctx;
    (void)slot;
    c[kind]++;
    return 0;
}

START_TEST(vacuum_reclaims_slots)
{
    vd_index *ix = vt_open(8, VD_METRIC_L2, 8, 64, 1);
    size_t n = 1000;
    float *v = vt_clustered(n, 8, 10, 71);
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) ids[i] = i;
    ck_assert_int_eq(vd_index_add_batch(ix, ids, v, n, 1, NULL, NULL, NULL), VD_OK);
    vd_index_changes_clear(ix);
    for (size_t i = 0; i < 300; i++) ck_assert_int_eq(vd_index_remove(ix, i, NULL), VD_OK);
    vd_index_stats st;
    vd_index_stats_get(ix, &st);
    ck_assert_uint_lt(st.n_deleted, 300); /* at least one vacuum ran */
    size_t kinds[4] = {0};
    vd_index_changes(ix, count_kind, kinds);
    ck_assert_uint_ge(kinds[VD_CHANGE_FREED], 300 - st.n_deleted);
    ck_assert_uint_gt(kinds[VD_CHANGE_LINKS], 0);
    vt_assert_valid(ix);
    /* New points reuse the freed slots: the high-water mark does not move. */
    ck_assert_int_eq(vd_index_add_batch(ix, ids, v, 200, 1, NULL, NULL, NULL), VD_OK);
    vd_index_stats st2;
    vd_index_stats_get(ix, &st2);
    ck_assert_uint_eq(st2.n_slots, n);
    ck_assert_uint_eq(st2.n_visible, 900);
    vt_assert_valid(ix);
    free(ids);
    free(v);
    vd_index_close(ix);
}
END_TEST

START_TEST(upsert_replaces_the_vector)
{
    vd_index *ix = vt_open(2, VD_METRIC_L2, 4, 32, 1);
    for (uint64_t i = 0; i < 100; i++) {
        float v[2] = {(float)i, 0};
        ck_assert_int_eq(vd_index_add(ix, i, v, NULL), VD_OK);
    }
    float nv[2] = {1000, 1000}, out[2];
    ck_assert_int_eq(vd_index_add(ix, 42, nv, NULL), VD_OK);
    ck_assert_uint_eq(vd_index_count(ix), 100);
    ck_assert_int_eq(vd_index_get(ix, 42, out, NULL), VD_OK);
    ck_assert_float_eq(out[0], 1000);
    vd_hit h[3];
    uint32_t n;
    float q[2] = {42, 0};
    ck_assert_int_eq(vd_index_search(ix, q, 3, 0, h, &n, NULL), VD_OK);
    ck_assert(!has_id(h, n, 42));
    ck_assert_int_eq(vd_index_search(ix, nv, 1, 0, h, &n, NULL), VD_OK);
    ck_assert_uint_eq(h[0].id, 42);
    ck_assert_float_eq(h[0].distance, 0);
    /* Upsert in a batch too. */
    uint64_t ids[2] = {42, 500};
    float vs[4] = {-5, -5, -6, -6};
    ck_assert_int_eq(vd_index_add_batch(ix, ids, vs, 2, 1, NULL, NULL, NULL), VD_OK);
    ck_assert_uint_eq(vd_index_count(ix), 101);
    ck_assert_int_eq(vd_index_search_exact(ix, vs, 2, h, &n, NULL), VD_OK);
    ck_assert_uint_eq(h[0].id, 42);
    ck_assert_uint_eq(h[1].id, 500);
    vt_assert_valid(ix);
    vd_index_close(ix);
}
END_TEST

START_TEST(deferred_publish_makes_a_batch_visible_at_once)
{
    vd_index_params p = {.dim = 2, .metric = VD_METRIC_L2, .m = 4, .ef_construction = 32,
                         .deferred_publish = 1};
    vd_index *ix = NULL;
    ck_assert_int_eq(vd_index_open(&p, &ix, NULL), VD_OK);
    for (uint64_t i = 0; i < 50; i++) {
        float v[2] = {(float)i, 1};
        ck_assert_int_eq(vd_index_add(ix, i, v, NULL), VD_OK);
    }
    vd_hit h[60];
    uint32_t n = 9;
    float q[2] = {10, 1};
    ck_assert_uint_eq(vd_index_count(ix), 0);
    ck_assert_int_eq(vd_index_search(ix, q, 5, 0, h, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(vd_index_search_exact(ix, q, 5, h, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 0);
    float out[2];
    ck_assert_int_eq(vd_index_get(ix, 10, out, NULL), VD_OK); /* the writer sees its own */
    vd_index_publish(ix);
    ck_assert_uint_eq(vd_index_count(ix), 50);
    ck_assert_int_eq(vd_index_search(ix, q, 60, 0, h, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 50);
    ck_assert_uint_eq(h[0].id, 10);

    /* Upsert 10 and remove 11: the old state stays visible until the publish. */
    float nv[2] = {-100, -100};
    ck_assert_int_eq(vd_index_add(ix, 10, nv, NULL), VD_OK);
    ck_assert_int_eq(vd_index_remove(ix, 11, NULL), VD_OK);
    ck_assert_int_eq(vd_index_get(ix, 10, out, NULL), VD_OK);
    ck_assert_float_eq(out[0], -100);
    ck_assert_int_eq(vd_index_get(ix, 11, out, NULL), VD_NOTFOUND);
    ck_assert_uint_eq(vd_index_count(ix), 50);
    ck_assert_int_eq(vd_index_search(ix, q, 3, 0, h, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(h[0].id, 10);
    ck_assert_float_eq(h[0].distance, 0);
    ck_assert(has_id(h, n, 11));
    ck_assert_int_eq(vd_index_search(ix, nv, 1, 0, h, &n, NULL), VD_OK);
    ck_assert(h[0].id != 10 || h[0].distance > 0);
    vd_index_publish(ix);
    ck_assert_uint_eq(vd_index_count(ix), 49);
    ck_assert_int_eq(vd_index_search(ix, q, 3, 0, h, &n, NULL), VD_OK);
    ck_assert(!has_id(h, n, 10) && !has_id(h, n, 11));
    ck_assert_int_eq(vd_index_search(ix, nv, 1, 0, h, &n, NULL), VD_OK);
    ck_assert_uint_eq(h[0].id, 10);
    ck_assert_float_eq(h[0].distance, 0);
    vt_assert_valid(ix);
    vd_index_close(ix);
}
END_TEST

START_TEST(random_mutations_keep_the_graph_valid)
{
    /* Adds, upserts and removes over a small id space, published in random-sized groups,
     * validated after every publish: the repairs, orphan reconnection and vacuum all run. */
    vd_index_params p = {.dim = 8, .metric = VD_METRIC_L2, .m = 4, .ef_construction = 24,
                         .seed = 4, .deferred_publish = 1};
    vd_index *ix = NULL;
    ck_assert_int_eq(vd_index_open(&p, &ix, NULL), VD_OK);
    size_t n_ops = vt_scale(6000, 4), n_ids = 400;
    float *v = vt_clustered(n_ops, 8, 6, 131);
    char *live = calloc(n_ids, 1);
    size_t n_live = 0;
    uint64_t s = 99;
    for (size_t op = 0; op < n_ops; op++) {
        uint64_t id = vt_rand(&s) % n_ids;
        if (vt_rand(&s) % 3 == 0) {
            vd_status st = vd_index_remove(ix, id, NULL);
            ck_assert_int_eq(st, live[id] ? VD_OK : VD_NOTFOUND);
            n_live -= live[id];
            live[id] = 0;
        } else {
            ck_assert_int_eq(vd_index_add(ix, id, v + op * 8, NULL), VD_OK);
            n_live += !live[id];
            live[id] = 1;
        }
        if (vt_rand(&s) % 16 == 0) {
            vd_index_publish(ix);
            ck_assert_uint_eq(vd_index_count(ix), n_live);
            vt_assert_valid(ix);
        }
    }
    vd_index_publish(ix);
    vt_assert_valid(ix);
    vd_hit h[400];
    uint32_t nh;
    ck_assert_int_eq(vd_index_search(ix, v, 400, 400, h, &nh, NULL), VD_OK);
    ck_assert_uint_eq(nh, n_live);
    for (uint32_t i = 0; i < nh; i++) ck_assert(live[h[i].id]);
    free(live);
    free(v);
    vd_index_close(ix);
}
END_TEST

Suite *index_remove_suite(void)
{
    Suite *s = suite_create("index_remove");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, removed_id_never_comes_back);
    tcase_add_test(tc, recall_holds_after_removing_half);
    tcase_add_test(tc, readding_removed_ids_works);
    tcase_add_test(tc, vacuum_reclaims_slots);
    tcase_add_test(tc, upsert_replaces_the_vector);
    tcase_add_test(tc, deferred_publish_makes_a_batch_visible_at_once);
    tcase_add_test(tc, random_mutations_keep_the_graph_valid);
    suite_add_tcase(s, tc);
    return s;
}
