/* tests/unit/test_index_oom.c: every allocation of open, add_batch, add, remove, publish and
 * search failing in turn (vd_alloc_fail_after): each call either succeeds or returns VD_NOMEM
 * with no visible effect, the index stays valid, and nothing leaks (ASan checks at exit). */
#include <check.h>
#include <stdlib.h>

#include "common/vd_common.h"
#include "index/vd_index.h"
#include "tests/unit/index_testutil.h"

static int ok_or_nomem(vd_status st) { return st == VD_OK || st == VD_NOMEM; }

START_TEST(every_allocation_failure_is_clean)
{
    size_t n = 300;
    float *v = vt_clustered(n + 1, 8, 6, 111);
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) ids[i] = i;
    vd_index_params p = {.dim = 8, .metric = VD_METRIC_COSINE, .m = 6, .ef_construction = 32};
    int completed = 0;
    for (long k = 0; k < 2000 && !completed; k++) {
        vd_index *ix = NULL;
        vd_err e = {0};
        vd_alloc_fail_after(k);
        vd_status st = vd_index_open(&p, &ix, &e);
        if (st != VD_OK) {
            vd_alloc_fail_after(-1);
            ck_assert_int_eq(st, VD_NOMEM);
            ck_assert_ptr_null(ix);
            continue;
        }
        int all_ok = 1;
        st = vd_index_add_batch(ix, ids, v, n, 1, NULL, NULL, &e);
        ck_assert_msg(ok_or_nomem(st), "add_batch: %s", e.msg);
        all_ok &= st == VD_OK;
        size_t expect = st == VD_OK ? n : 0;
        ck_assert_uint_eq(vd_index_count(ix), expect);
        st = vd_index_add(ix, 9999, v + n * 8, &e);
        ck_assert(ok_or_nomem(st));
        all_ok &= st == VD_OK;
        expect += st == VD_OK;
        ck_assert_uint_eq(vd_index_count(ix), expect);
        st = vd_index_remove(ix, 9999, &e);
        ck_assert(st == VD_OK || st == VD_NOMEM || st == VD_NOTFOUND);
        all_ok &= st == VD_OK;
        expect -= st == VD_OK;
        vd_hit h[10];
        uint32_t nh;
        st = vd_index_search(ix, v, 10, 32, h, &nh, &e);
        ck_assert(ok_or_nomem(st));
        all_ok &= st == VD_OK;
        vd_alloc_fail_after(-1);
        ck_assert_uint_eq(vd_index_count(ix), expect);
        vt_assert_valid(ix);
        /* Once memory is back, the same index accepts the same work. */
        ck_assert_int_eq(vd_index_add_batch(ix, ids, v, n, 1, NULL, NULL, NULL), VD_OK);
        ck_assert_uint_eq(vd_index_count(ix), n);
        vd_index_close(ix);
        completed = all_ok;
    }
    ck_assert_msg(completed, "the sequence never completed within the allocation budget");
    free(ids);
    free(v);
}
END_TEST

START_TEST(load_allocation_failures_are_clean)
{
    vd_index *a = vt_open(4, VD_METRIC_L2, 4, 16, 1);
    float *v = vt_clustered(50, 4, 3, 121);
    for (uint64_t i = 0; i < 50; i++) ck_assert_int_eq(vd_index_add(a, i, v + i * 4, NULL), VD_OK);
    vd_index_header h;
    vd_index_header_get(a, &h);
    uint8_t rec[512];
    int completed = 0;
    for (long k = 0; k < 500 && !completed; k++) {
        vd_index *b = vt_open(4, VD_METRIC_L2, 4, 16, 1);
        vd_err e = {0};
        vd_alloc_fail_after(k);
        vd_status st = VD_OK;
        for (uint32_t s = 0; s < h.n_slots && st == VD_OK; s++) {
            uint64_t id;
            const float *vec;
            size_t len;
            ck_assert_int_eq(vd_index_slot_vector(a, s, &id, &vec, NULL), VD_OK);
            ck_assert_int_eq(vd_index_slot_links(a, s, rec, sizeof rec, &len, NULL), VD_OK);
            st = vd_index_load_slot(b, s, id, vec, rec, len, k % 2 ? &e : NULL);
        }
        if (st == VD_OK) st = vd_index_load_finish(b, &h, k % 2 ? &e : NULL);
        vd_alloc_fail_after(-1);
        ck_assert_msg(ok_or_nomem(st), "load with %ld allocations: %s", k, e.msg);
        completed = st == VD_OK;
        if (completed) vt_assert_valid(b);
        vd_index_close(b);
    }
    ck_assert(completed);
    free(v);
    vd_index_close(a);
}
END_TEST

Suite *index_oom_suite(void)
{
    Suite *s = suite_create("index_oom");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_allocation_failure_is_clean);
    tcase_add_test(tc, load_allocation_failures_are_clean);
    suite_add_tcase(s, tc);
    return s;
}
