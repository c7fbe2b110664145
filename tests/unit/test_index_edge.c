/* tests/unit/test_index_edge.c: edge cases and bad input: parameters, empty index, k > count,
 * dim 1, duplicate vectors, zero vectors under cosine, NaN/Inf, k == 0, reserved and
 * duplicate ids (refused before anything changes). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/index_int.h" /* vd_index__cands_sort */
#include "index/vd_index.h"
#include "tests/unit/index_testutil.h"

START_TEST(open_refuses_bad_params)
{
    vd_index *ix = (vd_index *)1;
    vd_err e = {0};
    vd_index_params p = {.dim = 0, .metric = VD_METRIC_L2};
    ck_assert_int_eq(vd_index_open(&p, &ix, &e), VD_INVALID);
    ck_assert_ptr_null(ix);
    ck_assert_ptr_nonnull(strstr(e.msg, "dim 0 is outside 1..4096"));
    p.dim = VD_DIM_MAX + 1;
    ck_assert_int_eq(vd_index_open(&p, &ix, &e), VD_INVALID);
    p.dim = 8;
    p.metric = (vd_metric)7;
    ck_assert_int_eq(vd_index_open(&p, &ix, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "metric"));
    p.metric = VD_METRIC_IP;
    p.m = 1;
    ck_assert_int_eq(vd_index_open(&p, &ix, &e), VD_INVALID);
    p.m = VD_M_MAX + 1;
    ck_assert_int_eq(vd_index_open(&p, &ix, &e), VD_INVALID);
    p.m = 4;
    p.ef_construction = 1000000;
    ck_assert_int_eq(vd_index_open(&p, &ix, &e), VD_INVALID);
    ck_assert_int_eq(vd_index_open(NULL, &ix, &e), VD_INVALID);
}
END_TEST

START_TEST(params_get_defaults)
{
    vd_index *ix = vt_open(8, VD_METRIC_L2, 0, 0, 0);
    const vd_index_params *p = vd_index_params_of(ix);
    ck_assert_uint_eq(p->m, 16);
    ck_assert_uint_eq(p->ef_construction, 200);
    ck_assert_uint_eq(p->dim, 8);
    vd_index_close(ix);
    vd_index_close(NULL);
}
END_TEST

START_TEST(metric_names_round_trip)
{
    vd_metric m;
    ck_assert_int_eq(vd_metric_parse("cosine", &m), VD_OK);
    ck_assert_int_eq(m, VD_METRIC_COSINE);
    ck_assert_int_eq(vd_metric_parse("ip", &m), VD_OK);
    ck_assert_int_eq(m, VD_METRIC_IP);
    ck_assert_int_eq(vd_metric_parse("l2", &m), VD_OK);
    ck_assert_int_eq(m, VD_METRIC_L2);
    ck_assert_int_eq(vd_metric_parse("L2x", &m), VD_INVALID);
    ck_assert_int_eq(vd_metric_parse(NULL, &m), VD_INVALID);
    ck_assert_str_eq(vd_metric_name(VD_METRIC_COSINE), "cosine");
}
END_TEST

START_TEST(search_on_empty_index_returns_no_hits)
{
    vd_index *ix = vt_open(8, VD_METRIC_L2, 8, 32, 1);
    float q[8] = {0};
    vd_hit hits[4];
    uint32_t n = 99;
    ck_assert_int_eq(vd_index_search(ix, q, 4, 16, hits, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 0);
    n = 99;
    ck_assert_int_eq(vd_index_search_exact(ix, q, 4, hits, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(vd_index_count(ix), 0);
    vt_assert_valid(ix);
    vd_index_stats st;
    vd_index_stats_get(ix, &st);
    ck_assert_uint_eq(st.n_visible, 0);
    ck_assert_uint_eq(st.n_slots, 0);
    vd_index_header h;
    vd_index_header_get(ix, &h);
    ck_assert_uint_eq(h.entry_slot, UINT32_MAX);
    ck_assert_int_eq(vd_index_remove(ix, 5, NULL), VD_NOTFOUND);
    float out[8];
    ck_assert_int_eq(vd_index_get(ix, 5, out, NULL), VD_NOTFOUND);
    ck_assert_int_eq(vd_index_add_batch(ix, NULL, NULL, 0, 1, NULL, NULL, NULL), VD_OK);
    vd_index_close(ix);
}
END_TEST

START_TEST(k_above_count_returns_what_exists_sorted)
{
    vd_index *ix = vt_open(2, VD_METRIC_L2, 4, 16, 1);
    for (uint64_t i = 0; i < 5; i++) {
        float v[2] = {(float)i, 0};
        ck_assert_int_eq(vd_index_add(ix, 100 - i, v, NULL), VD_OK);
    }
    float q[2] = {0.1f, 0};
    vd_hit hits[10];
    uint32_t n = 0;
    ck_assert_int_eq(vd_index_search(ix, q, 10, 0, hits, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 5);
    for (uint32_t i = 0; i < n; i++) ck_assert_uint_eq(hits[i].id, 100 - i);
    for (uint32_t i = 1; i < n; i++) ck_assert(hits[i - 1].distance <= hits[i].distance);
    ck_assert_float_eq_tol(hits[0].distance, 0.01f, 1e-6f);
    vd_index_close(ix);
}
END_TEST

START_TEST(dim_one_works)
{
    vd_index *ix = vt_open(1, VD_METRIC_L2, 4, 32, 1);
    size_t n = 500;
    for (size_t i = 0; i < n; i++) {
        float v = (float)i;
        ck_assert_int_eq(vd_index_add(ix, i, &v, NULL), VD_OK);
    }
    vt_assert_valid(ix);
    float q = 250.2f;
    vd_hit hits[3];
    uint32_t nh;
    ck_assert_int_eq(vd_index_search(ix, &q, 3, 32, hits, &nh, NULL), VD_OK);
    ck_assert_uint_eq(nh, 3);
    ck_assert_uint_eq(hits[0].id, 250);
    ck_assert_uint_eq(hits[1].id, 251);
    ck_assert_uint_eq(hits[2].id, 249);
    vd_index_close(ix);
}
END_TEST

START_TEST(duplicate_vectors_tie_by_id)
{
    vd_index *ix = vt_open(4, VD_METRIC_L2, 4, 32, 1);
    float v[4] = {1, 2, 3, 4};
    for (uint64_t i = 0; i < 50; i++) ck_assert_int_eq(vd_index_add(ix, 1000 - i, v, NULL), VD_OK);
    vt_assert_valid(ix);
    vd_hit hits[50];
    uint32_t n;
    ck_assert_int_eq(vd_index_search(ix, v, 50, 64, hits, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 50);
    for (uint32_t i = 0; i < n; i++) {
        ck_assert_float_eq(hits[i].distance, 0.0f);
        if (i) ck_assert_uint_lt(hits[i - 1].id, hits[i].id);
    }
    ck_assert_int_eq(vd_index_search_exact(ix, v, 5, hits, &n, NULL), VD_OK);
    ck_assert_uint_eq(hits[0].id, 951);
    ck_assert_uint_eq(hits[4].id, 955);
    vd_index_close(ix);
}
END_TEST

START_TEST(cosine_refuses_zero_and_normalizes)
{
    vd_index *ix = vt_open(3, VD_METRIC_COSINE, 4, 16, 1);
    float z[3] = {0, 0, 0}, v[3] = {3, 0, 4}, out[3];
    vd_err e = {0};
    ck_assert_int_eq(vd_index_add(ix, 1, z, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "zero"));
    ck_assert_uint_eq(vd_index_count(ix), 0);
    ck_assert_int_eq(vd_index_add(ix, 1, v, &e), VD_OK);
    ck_assert_int_eq(vd_index_get(ix, 1, out, &e), VD_OK);
    ck_assert_float_eq_tol(out[0], 0.6f, 1e-6f);
    ck_assert_float_eq_tol(out[2], 0.8f, 1e-6f);
    vd_hit h[1];
    uint32_t n;
    ck_assert_int_eq(vd_index_search(ix, z, 1, 0, h, &n, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "zero"));
    float q[3] = {30, 0, 40}; /* any length: the query is normalized too */
    ck_assert_int_eq(vd_index_search(ix, q, 1, 0, h, &n, &e), VD_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_float_eq_tol(h[0].distance, 0.0f, 1e-6f);
    vd_index_close(ix);
}
END_TEST

START_TEST(extreme_magnitudes_are_handled)
{
    vd_index *ix = vt_open(3, VD_METRIC_COSINE, 4, 16, 1);
    float tiny[3] = {3e-30f, 0, 4e-30f}, huge[3] = {3e30f, 4e30f, 0}, out[3];
    vd_err e = {0};
    /* Squares underflow / overflow a float: still normalized exactly, not refused. */
    ck_assert_int_eq(vd_index_add(ix, 1, tiny, &e), VD_OK);
    ck_assert_int_eq(vd_index_get(ix, 1, out, NULL), VD_OK);
    ck_assert_float_eq_tol(out[0], 0.6f, 1e-6f);
    ck_assert_float_eq_tol(out[2], 0.8f, 1e-6f);
    ck_assert_int_eq(vd_index_add(ix, 2, huge, &e), VD_OK);
    ck_assert_int_eq(vd_index_get(ix, 2, out, NULL), VD_OK);
    ck_assert_float_eq_tol(out[1], 0.8f, 1e-6f);
    vd_hit h[2];
    uint32_t n;
    ck_assert_int_eq(vd_index_search(ix, tiny, 2, 0, h, &n, &e), VD_OK);
    ck_assert_uint_eq(h[0].id, 1);
    float sub[3] = {1e-45f, 0, 0}; /* the smallest subnormal */
    ck_assert_int_eq(vd_index_add(ix, 3, sub, &e), VD_OK);
    vd_index_close(ix);
}
END_TEST

START_TEST(ip_distance_is_negative_dot)
{
    vd_index *ix = vt_open(2, VD_METRIC_IP, 4, 16, 1);
    float a[2] = {1, 2}, b[2] = {3, 1}, q[2] = {1, 1};
    ck_assert_int_eq(vd_index_add(ix, 1, a, NULL), VD_OK);
    ck_assert_int_eq(vd_index_add(ix, 2, b, NULL), VD_OK);
    vd_hit h[2];
    uint32_t n;
    ck_assert_int_eq(vd_index_search(ix, q, 2, 0, h, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(h[0].id, 2);
    ck_assert_float_eq(h[0].distance, -4.0f);
    ck_assert_float_eq(h[1].distance, -3.0f);
    vd_index_close(ix);
}
END_TEST

START_TEST(nan_and_inf_refused_with_component)
{
    vd_index *ix = vt_open(4, VD_METRIC_L2, 4, 16, 1);
    float v[4] = {1, 2, NAN, 4};
    vd_err e = {0};
    ck_assert_int_eq(vd_index_add(ix, 1, v, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "component 2"));
    ck_assert_ptr_nonnull(strstr(e.msg, "NaN"));
    v[2] = 0;
    v[3] = INFINITY;
    ck_assert_int_eq(vd_index_add(ix, 1, v, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "component 3"));
    ck_assert_uint_eq(vd_index_count(ix), 0);
    vd_hit h[1];
    uint32_t n = 7;
    ck_assert_int_eq(vd_index_search(ix, v, 1, 0, h, &n, &e), VD_INVALID);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(vd_index_search_exact(ix, v, 1, h, &n, &e), VD_INVALID);
    vd_index_close(ix);
}
END_TEST

START_TEST(k_zero_and_missing_args_refused)
{
    vd_index *ix = vt_open(2, VD_METRIC_L2, 4, 16, 1);
    float v[2] = {1, 2};
    ck_assert_int_eq(vd_index_add(ix, 1, v, NULL), VD_OK);
    vd_hit h[1];
    uint32_t n;
    vd_err e = {0};
    ck_assert_int_eq(vd_index_search(ix, v, 0, 10, h, &n, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "k must"));
    ck_assert_int_eq(vd_index_search_exact(ix, v, 0, h, &n, &e), VD_INVALID);
    ck_assert_int_eq(vd_index_search(ix, NULL, 1, 10, h, &n, &e), VD_INVALID);
    ck_assert_int_eq(vd_index_search(ix, v, 1, 10, NULL, &n, &e), VD_INVALID);
    ck_assert_int_eq(vd_index_add_batch(ix, NULL, v, 1, 1, NULL, NULL, &e), VD_INVALID);
    ck_assert_int_eq(vd_index_get(ix, 1, NULL, &e), VD_INVALID);
    vd_index_close(ix);
}
END_TEST

START_TEST(bad_batches_change_nothing)
{
    vd_index *ix = vt_open(2, VD_METRIC_L2, 4, 16, 1);
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint64_t dup[4] = {10, 11, 12, 11};
    vd_err e = {0};
    ck_assert_int_eq(vd_index_add_batch(ix, dup, v, 4, 1, NULL, NULL, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "id 11 appears more than once"));
    ck_assert_uint_eq(vd_index_count(ix), 0);
    uint64_t ids[4] = {10, 11, 12, 13};
    v[5] = NAN;
    ck_assert_int_eq(vd_index_add_batch(ix, ids, v, 4, 1, NULL, NULL, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "vector 2"));
    v[5] = 6;
    uint64_t reserved[4] = {1, 2, VD_ID_NONE, 3};
    ck_assert_int_eq(vd_index_add_batch(ix, reserved, v, 4, 1, NULL, NULL, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "reserved"));
    vd_index_stats st;
    vd_index_stats_get(ix, &st);
    ck_assert_uint_eq(st.n_slots, 0);
    ck_assert_uint_eq(vd_index_count(ix), 0);
    float out[2];
    ck_assert_int_eq(vd_index_get(ix, 10, out, NULL), VD_NOTFOUND);
    /* The same good batch now goes in. */
    ck_assert_int_eq(vd_index_add_batch(ix, ids, v, 4, 1, NULL, NULL, &e), VD_OK);
    ck_assert_uint_eq(vd_index_count(ix), 4);
    vt_assert_valid(ix);
    vd_index_close(ix);
}
END_TEST

START_TEST(null_and_oversized_arguments_refused)
{
    vd_index *ix = vt_open(2, VD_METRIC_L2, 4, 16, 1);
    uint64_t id = 1;
    float v[2] = {1, 2};
    vd_err e = {0};
    /* Refused on the count alone, before the (absent) data is read. */
    ck_assert_int_eq(vd_index_add_batch(ix, &id, v, (size_t)UINT32_MAX, 1, NULL, NULL, &e),
                     VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "too large"));
    ck_assert_int_eq(vd_index_add(NULL, 1, v, &e), VD_INVALID);
    ck_assert_int_eq(vd_index_remove(NULL, 1, &e), VD_INVALID);
    vd_hit h[1];
    uint32_t n = 5;
    ck_assert_int_eq(vd_index_search(NULL, v, 1, 0, h, &n, &e), VD_INVALID);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(vd_index_search_exact(ix, v, 1, h, NULL, &e), VD_INVALID);
    ck_assert_int_eq(vd_index_load_slot(NULL, 0, 1, v, NULL, 0, &e), VD_INVALID);
    ck_assert_int_eq(vd_index_load_finish(ix, NULL, &e), VD_INVALID);
    /* Export of slots that hold nothing. */
    uint64_t got;
    const float *vec;
    size_t len;
    uint8_t buf[64];
    ck_assert_int_eq(vd_index_slot_vector(ix, 0, &got, &vec, &e), VD_NOTFOUND);
    ck_assert_int_eq(vd_index_slot_links(ix, 0, buf, sizeof buf, &len, &e), VD_NOTFOUND);
    ck_assert_int_eq(vd_index_add(ix, 1, v, NULL), VD_OK);
    ck_assert_int_eq(vd_index_slot_vector(ix, 7, &got, &vec, &e), VD_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "slot 7"));
    ck_assert_int_eq(vd_index_slot_vector(ix, 0, &got, &vec, &e), VD_OK);
    ck_assert_uint_eq(got, 1);
    ck_assert_int_eq(vd_index_slot_links(ix, 0, buf, 3, &len, &e), VD_FULL);
    ck_assert_uint_eq(len, 8); /* 4-byte head + level 0 count, no links */
    vd_index_close(ix);
}
END_TEST

START_TEST(ef_search_default_is_settable)
{
    vd_index *ix = vt_open(2, VD_METRIC_L2, 4, 16, 1);
    for (uint64_t i = 0; i < 30; i++) {
        float v[2] = {(float)i, (float)(i % 3)};
        ck_assert_int_eq(vd_index_add(ix, i, v, NULL), VD_OK);
    }
    vd_index_set_ef_search(ix, 1);
    float q[2] = {3, 0};
    vd_hit h[5];
    uint32_t n;
    ck_assert_int_eq(vd_index_search(ix, q, 5, 0, h, &n, NULL), VD_OK); /* ef = max(1, k) */
    ck_assert_uint_eq(n, 5);
    vd_index_set_ef_search(ix, 0); /* back to the default */
    ck_assert_int_eq(vd_index_search(ix, q, 5, 0, h, &n, NULL), VD_OK);
    ck_assert_uint_eq(h[0].id, 3);
    vd_index_stats st;
    vd_index_stats_get(ix, &st);
    ck_assert_uint_eq(st.n_visible, 30);
    ck_assert_uint_eq(st.bytes_vectors, 30 * 2 * sizeof(float));
    ck_assert_uint_ge(st.bytes_total, st.bytes_vectors + st.bytes_links);
    ck_assert_str_eq(st.simd, vd_dist_simd_name());
    vd_index_close(ix);
}
END_TEST

static int ref_cmp(const void *a, const void *b)
{
    const vd_cand *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1; /* -0 == +0: the slot decides */
    return (x->slot > y->slot) - (x->slot < y->slot);
}

static int slot_cmp(const void *a, const void *b)
{
    const vd_cand *x = a, *y = b;
    return (x->slot > y->slot) - (x->slot < y->slot);
}

/* The candidate sort (inlined quicksort) orders by (distance, slot) exactly as qsort with the
 * plain comparison: every size around the insertion-sort cutoff and up to a repair's pool,
 * with ties, negative distances (cosine, ip), -0 next to +0, sorted and reversed inputs. The
 * partial sort (a patch's 2M nearest) puts the same first places in the same order and keeps
 * every other candidate behind them. */
START_TEST(cands_sort_matches_reference)
{
    uint64_t rng = 7;
    vd_cand a[700], b[700], c[700], rest[700];
    static const size_t firsts[] = {0, 1, 5, 24, 25, 32, 64, 699};
    for (size_t n = 0; n <= 700; n += n < 64 ? 1 : 37) {
        for (int kind = 0; kind < 4; kind++) {
            for (size_t i = 0; i < n; i++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                float d = (float)(int)((rng >> 40) % 64) - 20.0f; /* many ties */
                if (kind == 1) d = (float)i;
                if (kind == 2) d = (float)(n - i);
                if (kind == 3) d = (rng >> 33) & 1 ? -0.0f : 0.0f;
                a[i] = (vd_cand){d, (uint32_t)((rng >> 20) % 100000u + i * 100000u)};
            }
            memcpy(b, a, n * sizeof *a);
            vd_index__cands_sort(a, n);
            qsort(b, n, sizeof *b, ref_cmp);
            for (size_t i = 0; i < n; i++) {
                ck_assert_uint_eq(a[i].slot, b[i].slot);
                ck_assert(a[i].d == b[i].d);
            }
            for (size_t f = 0; f < VD_ARRAY_LEN(firsts); f++) {
                size_t first = firsts[f] < n ? firsts[f] : n;
                memcpy(c, a, n * sizeof *a);
                for (size_t i = n; i > 1; i--) { /* shuffled */
                    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                    size_t j = (size_t)(rng >> 33) % i;
                    vd_cand t = c[i - 1];
                    c[i - 1] = c[j];
                    c[j] = t;
                }
                vd_index__cands_sort_first(c, n, first);
                for (size_t i = 0; i < first; i++) ck_assert_uint_eq(c[i].slot, b[i].slot);
                qsort(c + first, n - first, sizeof *c, slot_cmp);
                memcpy(rest, b + first, (n - first) * sizeof *b);
                qsort(rest, n - first, sizeof *rest, slot_cmp);
                for (size_t i = 0; i < n - first; i++)
                    ck_assert_uint_eq(c[first + i].slot, rest[i].slot);
            }
        }
    }
}
END_TEST

Suite *index_edge_suite(void)
{
    Suite *s = suite_create("index_edge");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, open_refuses_bad_params);
    tcase_add_test(tc, cands_sort_matches_reference);
    tcase_add_test(tc, params_get_defaults);
    tcase_add_test(tc, metric_names_round_trip);
    tcase_add_test(tc, search_on_empty_index_returns_no_hits);
    tcase_add_test(tc, k_above_count_returns_what_exists_sorted);
    tcase_add_test(tc, dim_one_works);
    tcase_add_test(tc, duplicate_vectors_tie_by_id);
    tcase_add_test(tc, cosine_refuses_zero_and_normalizes);
    tcase_add_test(tc, extreme_magnitudes_are_handled);
    tcase_add_test(tc, ip_distance_is_negative_dot);
    tcase_add_test(tc, nan_and_inf_refused_with_component);
    tcase_add_test(tc, k_zero_and_missing_args_refused);
    tcase_add_test(tc, bad_batches_change_nothing);
    tcase_add_test(tc, null_and_oversized_arguments_refused);
    tcase_add_test(tc, ef_search_default_is_settable);
    suite_add_tcase(s, tc);
    return s;
}
