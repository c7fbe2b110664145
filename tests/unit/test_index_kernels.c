/* tests/unit/test_index_kernels.c: the SIMD distance kernels against the scalar references,
 * for every dimension 1..300 (every tail length of every loop) and random ones up to 4096. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/vd_index.h"
#include "tests/unit/index_testutil.h"

static void check_dim(uint64_t *s, size_t dim)
{
    /* Exact-length buffers: ASan catches any read past dim floats. */
    float *a = malloc(dim * sizeof(float)), *b = malloc(dim * sizeof(float));
    ck_assert(a && b);
    for (size_t i = 0; i < dim; i++) {
        a[i] = vt_randf(s) * 3.0f;
        b[i] = vt_randf(s) * 3.0f;
    }
    float l2 = vd_dist_l2sq(a, b, dim), l2r = vd_dist_l2sq_ref(a, b, dim);
    float dot = vd_dist_dot(a, b, dim), dotr = vd_dist_dot_ref(a, b, dim);
    /* Relative to the magnitude of the summed terms (a dot product may cancel to ~0). */
    double scale = 0;
    for (size_t i = 0; i < dim; i++) scale += fabs((double)a[i] * b[i]);
    ck_assert_msg(fabs(l2 - l2r) <= 1e-5 * l2r + 1e-6, "l2 dim %zu: %g vs %g", dim, l2, l2r);
    ck_assert_msg(fabs(dot - dotr) <= 1e-5 * scale + 1e-6, "dot dim %zu: %g vs %g", dim, dot,
                  dotr);
    ck_assert_float_eq(vd_dist_l2sq(a, a, dim), 0.0f);
    /* The bounded kernel answers "below bound?" exactly, is exact when it does not give up,
     * and gives up only with a partial sum in (bound, full distance]. */
    static const float fractions[] = {0.0f, 0.05f, 0.3f, 0.9f, 1.0f, 1.1f, 3.0f};
    for (size_t f = 0; f < sizeof fractions / sizeof *fractions; f++) {
        float bound = l2 * fractions[f], r = vd_dist_l2sq_below(a, b, dim, bound);
        ck_assert_msg((r < bound) == (l2 < bound), "dim %zu bound %g: %g vs %g", dim, bound, r,
                      l2);
        if (r <= bound) ck_assert_msg(r == l2, "dim %zu: %g, full %g", dim, r, l2);
        else ck_assert_msg(r <= l2, "dim %zu: partial %g above full %g", dim, r, l2);
    }
    ck_assert_msg(vd_dist_l2sq_below(a, b, dim, INFINITY) == l2, "dim %zu", dim);
    free(a);
    free(b);
}

START_TEST(kernels_match_reference_for_every_dim_to_300)
{
    uint64_t s = 1;
    for (size_t dim = 1; dim <= 300; dim++) check_dim(&s, dim);
}
END_TEST

START_TEST(kernels_match_reference_for_random_dims_to_4096)
{
    uint64_t s = 2;
    check_dim(&s, 4096);
    check_dim(&s, 4095);
    for (int i = 0; i < 60; i++) check_dim(&s, 1 + vt_rand(&s) % 4096);
}
END_TEST

START_TEST(kernels_known_values)
{
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {5, 4, 3, 2, 1};
    ck_assert_float_eq(vd_dist_l2sq(a, b, 5), 16 + 4 + 0 + 4 + 16);
    ck_assert_float_eq(vd_dist_dot(a, b, 5), 5 + 8 + 9 + 8 + 5);
    ck_assert_float_eq(vd_dist_l2sq_ref(a, b, 5), 40);
    ck_assert_float_eq(vd_dist_dot_ref(a, b, 5), 35);
}
END_TEST

START_TEST(simd_name_reports_a_known_path)
{
    const char *n = vd_dist_simd_name();
    const char *known[] = {"avx512", "avx2", "sse2", "neon", "neon32", "scalar"};
    int ok = 0;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) ok |= strcmp(n, known[i]) == 0;
    ck_assert_msg(ok, "unknown simd name %s", n);
}
END_TEST

Suite *index_kernels_suite(void)
{
    Suite *s = suite_create("index_kernels");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, kernels_match_reference_for_every_dim_to_300);
    tcase_add_test(tc, kernels_match_reference_for_random_dims_to_4096);
    tcase_add_test(tc, kernels_known_values);
    tcase_add_test(tc, simd_name_reports_a_known_path);
    suite_add_tcase(s, tc);
    return s;
}
