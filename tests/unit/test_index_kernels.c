/* tests/unit/test_index_kernels.c: the SIMD distance kernels against the scalar references,
 * for every dimension 1..300 (every tail length of every loop) and random ones up to 4096;
 * the int8 kernels (every variant: AVX-512 VNNI, AVX-512BW, AVX2, NEON dotprod, 128-bit,
 * the ones this CPU lacks emulated by SIMDe) for every dimension 1..4096, at saturation
 * (+-127 everywhere) and on zeros; the int8 encoder. */
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

/* Exact-length code buffers (ASan catches any read past dim bytes). */
static void check_i8(const int8_t *a, const int8_t *b, size_t dim)
{
    int32_t want = vd_dist_dot_i8_ref(a, b, dim);
    for (int k = 0; k < VD_I8_COUNT; k++)
        ck_assert_msg(vd_dist_dot_i8((vd_i8_kernel)k, a, b, dim) == want,
                      "int8 kernel %d dim %zu: %d, reference %d", k, dim,
                      vd_dist_dot_i8((vd_i8_kernel)k, a, b, dim), want);
}

START_TEST(int8_kernels_match_reference_for_every_dim_to_4096)
{
    uint64_t s = 3;
    for (size_t dim = 1; dim <= VD_DIM_MAX; dim++) {
        int8_t *a = malloc(dim), *b = malloc(dim);
        for (size_t i = 0; i < dim; i++) {
            a[i] = (int8_t)((int)(vt_rand(&s) % 255) - 127);
            b[i] = (int8_t)((int)(vt_rand(&s) % 255) - 127);
        }
        check_i8(a, b, dim);
        free(a);
        free(b);
    }
}
END_TEST

START_TEST(int8_kernels_saturate_and_zero)
{
    static const size_t dims[] = {1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 784,
                                  4095, 4096};
    for (size_t d = 0; d < VD_ARRAY_LEN(dims); d++) {
        size_t dim = dims[d];
        int8_t *a = malloc(dim), *b = malloc(dim);
        /* Every product 127 x 127 or -127 x 127 (maddubs' int16 pairs at their widest). */
        for (int sa = -1; sa <= 1; sa += 2)
            for (int sb = -1; sb <= 1; sb += 2) {
                memset(a, sa * 127, dim);
                memset(b, sb * 127, dim);
                check_i8(a, b, dim);
                ck_assert_int_eq(vd_dist_dot_i8(VD_I8_NATIVE, a, b, dim),
                                 sa * sb * 16129 * (int32_t)dim);
            }
        for (size_t i = 0; i < dim; i++) a[i] = (int8_t)(i % 2 ? 127 : -127);
        memset(b, -127, dim);
        check_i8(a, b, dim);
        memset(a, 0, dim);
        check_i8(a, b, dim);
        ck_assert_int_eq(vd_dist_dot_i8(VD_I8_NATIVE, a, b, dim), 0);
        free(a);
        free(b);
    }
}
END_TEST

START_TEST(int8_encoder_scales_per_vector)
{
    float v[5] = {0.5f, -2.0f, 1.0f, 0.0f, 2.0f}, scale = -1;
    int8_t c[5];
    vd_quantize_i8(v, 5, c, &scale);
    ck_assert_float_eq_tol(scale, 2.0f / 127.0f, 1e-9f);
    ck_assert_int_eq(c[1], -127);
    ck_assert_int_eq(c[4], 127);
    ck_assert_int_eq(c[3], 0);
    ck_assert_int_eq(c[2], 64); /* 63.5 rounds to even */
    for (int i = 0; i < 5; i++) ck_assert(fabsf(c[i] * scale - v[i]) <= scale / 2 + 1e-7f);
    float z[3] = {0, 0, 0};
    vd_quantize_i8(z, 3, c, &scale);
    ck_assert_float_eq(scale, 0.0f);
    ck_assert(c[0] == 0 && c[1] == 0 && c[2] == 0);
    ck_assert_ptr_nonnull(vd_dist_simd_int8_name());
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
    tcase_add_test(tc, int8_kernels_match_reference_for_every_dim_to_4096);
    tcase_add_test(tc, int8_kernels_saturate_and_zero);
    tcase_add_test(tc, int8_encoder_scales_per_vector);
    tcase_add_test(tc, simd_name_reports_a_known_path);
    suite_add_tcase(s, tc);
    return s;
}
