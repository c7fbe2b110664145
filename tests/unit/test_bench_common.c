/* tests/unit/test_bench_common.c: the benchmark harness's shared code (bench/bench_common.c).
 * Loaders read back what was written and refuse every malformed file with a message naming
 * the record; the synthetic generator is a pure function of its seed; the brute-force
 * ground truth equals a naive full sort (ties to the smaller row) for every metric; the
 * statistics and JSON helpers give exact values. Files go to a fresh mkdtemp directory. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench_common.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/vd-bench-common-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *path_of(const char *name)
{
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n)
        ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Appends one texmex record (dim header + dim values of elem bytes) to a buffer. */
static size_t put_record(uint8_t *buf, size_t off, uint32_t dim, const void *vals, size_t elem)
{
    vd_put_u32le(buf + off, dim);
    memcpy(buf + off + 4, vals, dim * elem);
    return off + 4 + dim * elem;
}

START_TEST(fvecs_round_trip_and_prefix)
{
    uint8_t buf[256];
    size_t off = 0;
    for (int r = 0; r < 3; r++) {
        float v[4] = {(float)r, r + 0.5f, -1.0f * r, 1e-3f};
        off = put_record(buf, off, 4, v, 4);
    }
    write_bytes(path_of("a.fvecs"), buf, off);
    vd_bench_fmat m;
    vd_err err = {0};
    ck_assert_int_eq(vd_bench_load_fvecs(path_of("a.fvecs"), 0, &m, &err), VD_OK);
    ck_assert_uint_eq(m.n, 3);
    ck_assert_uint_eq(m.dim, 4);
    ck_assert_float_eq(m.data[2 * 4 + 1], 2.5f);
    ck_assert_float_eq(m.data[2 * 4 + 2], -2.0f);
    vd_bench_fmat_free(&m);
    ck_assert_ptr_null(m.data);
    ck_assert_int_eq(vd_bench_load_vectors(path_of("a.fvecs"), 2, &m, &err), VD_OK);
    ck_assert_uint_eq(m.n, 2);
    vd_bench_fmat_free(&m);
}
END_TEST

START_TEST(bvecs_widened_to_float)
{
    uint8_t buf[64];
    uint8_t v0[3] = {0, 128, 255}, v1[3] = {1, 2, 3};
    size_t off = put_record(buf, 0, 3, v0, 1);
    off = put_record(buf, off, 3, v1, 1);
    write_bytes(path_of("b.bvecs"), buf, off);
    vd_bench_fmat m;
    ck_assert_int_eq(vd_bench_load_vectors(path_of("b.bvecs"), 0, &m, NULL), VD_OK);
    ck_assert_uint_eq(m.n, 2);
    ck_assert_uint_eq(m.dim, 3);
    ck_assert_float_eq(m.data[2], 255.0f);
    ck_assert_float_eq(m.data[5], 3.0f);
    vd_bench_fmat_free(&m);
}
END_TEST

START_TEST(fvecs_malformed_refused)
{
    vd_bench_fmat m;
    vd_err err = {0};
    uint8_t buf[256];
    float v[4] = {1, 2, 3, 4};

    write_bytes(path_of("empty.fvecs"), buf, 0);
    ck_assert_int_eq(vd_bench_load_fvecs(path_of("empty.fvecs"), 0, &m, &err), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "too short"));

    size_t off = put_record(buf, 0, 4, v, 4);
    write_bytes(path_of("trunc.fvecs"), buf, off - 3);
    ck_assert_int_eq(vd_bench_load_fvecs(path_of("trunc.fvecs"), 0, &m, &err), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "whole number"));

    /* Record 1 claims dim 3 but is padded to the same length: caught by the header check. */
    off = put_record(buf, 0, 4, v, 4);
    off = put_record(buf, off, 4, v, 4);
    vd_put_u32le(buf + 20, 3);
    write_bytes(path_of("mixed.fvecs"), buf, off);
    ck_assert_int_eq(vd_bench_load_fvecs(path_of("mixed.fvecs"), 0, &m, &err), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "record 1 has dim 3"));

    vd_put_u32le(buf, 0);
    write_bytes(path_of("zero.fvecs"), buf, 8);
    ck_assert_int_eq(vd_bench_load_fvecs(path_of("zero.fvecs"), 0, &m, &err), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "dim 0"));

    float bad[4] = {1, 2, NAN, 4};
    off = put_record(buf, 0, 4, v, 4);
    off = put_record(buf, off, 4, bad, 4);
    write_bytes(path_of("nan.fvecs"), buf, off);
    ck_assert_int_eq(vd_bench_load_fvecs(path_of("nan.fvecs"), 0, &m, &err), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "record 1 component 2"));
    bad[2] = INFINITY;
    put_record(buf, 20, 4, bad, 4);
    write_bytes(path_of("inf.fvecs"), buf, off);
    ck_assert_int_eq(vd_bench_load_fvecs(path_of("inf.fvecs"), 0, &m, &err), VD_CORRUPT);

    ck_assert_int_eq(vd_bench_load_fvecs(path_of("missing.fvecs"), 0, &m, &err), VD_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing.fvecs"));
    ck_assert_int_eq(vd_bench_load_fvecs(dir, 0, &m, &err), VD_INVALID);
    ck_assert_int_eq(vd_bench_load_vectors(path_of("a.npy"), 0, &m, &err), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, ".fvecs or .bvecs"));
    ck_assert_ptr_null(m.data);
}
END_TEST

START_TEST(ivecs_ids_checked_and_saved)
{
    int32_t rows[2][3] = {{0, 4, 2}, {1, 3, 0}};
    vd_bench_imat m = {.data = &rows[0][0], .n = 2, .dim = 3}, back;
    vd_err err = {0};
    ck_assert_int_eq(vd_bench_save_ivecs(path_of("gt.ivecs"), &m, &err), VD_OK);
    ck_assert_int_eq(vd_bench_load_ivecs(path_of("gt.ivecs"), 0, 5, &back, &err), VD_OK);
    ck_assert_uint_eq(back.n, 2);
    ck_assert_uint_eq(back.dim, 3);
    ck_assert_int_eq(memcmp(back.data, rows, sizeof rows), 0);
    vd_bench_imat_free(&back);

    ck_assert_int_eq(vd_bench_load_ivecs(path_of("gt.ivecs"), 0, 4, &back, &err), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "record 0 holds id 4"));
    rows[1][1] = -1;
    ck_assert_int_eq(vd_bench_save_ivecs(path_of("neg.ivecs"), &m, &err), VD_OK);
    ck_assert_int_eq(vd_bench_load_ivecs(path_of("neg.ivecs"), 0, 5, &back, &err), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "record 1 holds id -1"));
    ck_assert_ptr_null(back.data);
    /* No limit: any value is accepted (the loader is also used for non-id matrices). */
    ck_assert_int_eq(vd_bench_load_ivecs(path_of("neg.ivecs"), 0, 0, &back, &err), VD_OK);
    vd_bench_imat_free(&back);

    ck_assert_int_eq(vd_bench_save_ivecs("/nonexistent-dir/x.ivecs", &m, &err), VD_IO);
}
END_TEST

START_TEST(parse_sizes_and_names)
{
    size_t n = 0;
    uint32_t dim = 0;
    vd_err err = {0};
    ck_assert_int_eq(vd_bench_parse_nxd("100000x128", &n, &dim, &err), VD_OK);
    ck_assert_uint_eq(n, 100000);
    ck_assert_uint_eq(dim, 128);
    static const char *bad[] = {"", "x", "10x", "x10", "10x0", "0x5", "10x5000", "10x5y",
                                "-1x3", "10*3", "10x-3"};
    for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
        err.msg[0] = '\0';
        ck_assert_int_eq(vd_bench_parse_nxd(bad[i], &n, &dim, &err), VD_INVALID);
        ck_assert_ptr_nonnull(strstr(err.msg, "synthetic size"));
    }

    vd_metric m;
    ck_assert_int_eq(vd_bench_metric_from_dir("../shared/data/fashion-mnist-784-l2/", &m), VD_OK);
    ck_assert_int_eq(m, VD_METRIC_L2);
    ck_assert_int_eq(vd_bench_metric_from_dir("glove6b-100-cosine", &m), VD_OK);
    ck_assert_int_eq(m, VD_METRIC_COSINE);
    ck_assert_int_eq(vd_bench_metric_from_dir("/x/y-ip//", &m), VD_OK);
    ck_assert_int_eq(m, VD_METRIC_IP);
    ck_assert_int_eq(vd_bench_metric_from_dir("/x/l2/plain", &m), VD_NOTFOUND);
    ck_assert_int_eq(vd_bench_metric_from_dir("data-l2x", &m), VD_NOTFOUND);

    char b[16];
    vd_bench_basename("/a/b/c//", b, sizeof b);
    ck_assert_str_eq(b, "c");
    vd_bench_basename("plain", b, sizeof b);
    ck_assert_str_eq(b, "plain");
    vd_bench_basename("/a/a-very-long-folder-name", b, sizeof b);
    ck_assert_str_eq(b, "a-very-long-fol");
}
END_TEST

START_TEST(synthetic_is_a_function_of_its_seed)
{
    vd_bench_fmat b1, q1, b2, q2, b3, q3;
    ck_assert_int_eq(vd_bench_synthetic(3000, 16, 10, 7, &b1, &q1, NULL), VD_OK);
    ck_assert_int_eq(vd_bench_synthetic(3000, 16, 25, 7, &b2, &q2, NULL), VD_OK);
    ck_assert_int_eq(vd_bench_synthetic(3000, 16, 10, 8, &b3, &q3, NULL), VD_OK);
    ck_assert_uint_eq(b1.n, 3000);
    ck_assert_uint_eq(q2.n, 25);
    ck_assert_uint_eq(q2.dim, 16);
    /* More queries change neither the base nor the first queries. */
    ck_assert_int_eq(memcmp(b1.data, b2.data, 3000 * 16 * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(q1.data, q2.data, 10 * 16 * sizeof(float)), 0);
    ck_assert_int_ne(memcmp(b1.data, b3.data, 3000 * 16 * sizeof(float)), 0);
    /* Gaussian-mixture scale: components mostly within a few units of zero, all finite. */
    double s2 = 0.0;
    for (size_t i = 0; i < 3000 * 16; i++) {
        ck_assert(isfinite(b1.data[i]));
        s2 += (double)b1.data[i] * b1.data[i];
    }
    double var = s2 / (3000 * 16);
    ck_assert(var > 0.3 && var < 3.0);
    vd_bench_fmat *all[] = {&b1, &q1, &b2, &q2, &b3, &q3};
    for (size_t i = 0; i < VD_ARRAY_LEN(all); i++)
        vd_bench_fmat_free(all[i]);
}
END_TEST

typedef struct ref_item {
    double d;
    int32_t id;
} ref_item;

static int ref_cmp(const void *a, const void *b)
{
    const ref_item *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Integer-valued vectors make every distance exact in float, so the kernels and the double
 * reference agree bit for bit and the tie order is the only thing under test. */
START_TEST(ground_truth_matches_naive_sort)
{
    enum { N = 300, NQ = 7, DIM = 9, K = 12 };
    static const vd_metric metrics[] = {VD_METRIC_L2, VD_METRIC_IP};
    float *base = malloc(N * DIM * sizeof(float)), *qs = malloc(NQ * DIM * sizeof(float));
    uint32_t x = 12345;
    for (int i = 0; i < N * DIM; i++) {
        x = x * 1103515245u + 12345u;
        base[i] = (float)((int)(x >> 16) % 5 - 2);
    }
    for (int i = 0; i < DIM; i++)
        base[i] = base[(N - 1) * DIM + i] = 1.0f; /* exact duplicates: a tie by id */
    for (int i = 0; i < NQ * DIM; i++) {
        x = x * 1103515245u + 12345u;
        qs[i] = (float)((int)(x >> 16) % 7 - 3);
    }
    for (int i = 0; i < DIM; i++)
        qs[i] = 1.0f;
    vd_bench_fmat b = {base, N, DIM}, q = {qs, NQ, DIM};
    for (size_t mi = 0; mi < VD_ARRAY_LEN(metrics); mi++) {
        vd_metric m = metrics[mi];
        vd_bench_imat gt;
        ck_assert_int_eq(vd_bench_ground_truth(&b, &q, m, K, 3, &gt, NULL), VD_OK);
        ck_assert_uint_eq(gt.n, NQ);
        ck_assert_uint_eq(gt.dim, K);
        for (int qi = 0; qi < NQ; qi++) {
            ref_item all[N];
            for (int i = 0; i < N; i++) {
                double d = 0.0;
                for (int c = 0; c < DIM; c++) {
                    double a = qs[qi * DIM + c], e = base[i * DIM + c];
                    d += m == VD_METRIC_L2 ? (a - e) * (a - e) : -a * e;
                }
                all[i] = (ref_item){d, i};
            }
            qsort(all, N, sizeof all[0], ref_cmp);
            for (int j = 0; j < K; j++)
                ck_assert_int_eq(gt.data[qi * K + j], all[j].id);
        }
        /* Query 0 equals rows 0 and N-1 under l2: both at distance 0, smaller row first. */
        if (m == VD_METRIC_L2) {
            ck_assert_int_eq(gt.data[0], 0);
            ck_assert_int_eq(gt.data[1], N - 1);
        }
        vd_bench_imat_free(&gt);
    }
    /* Cosine: a scaled copy of the query is its nearest neighbour. */
    for (int c = 0; c < DIM; c++)
        base[5 * DIM + c] = 3.0f * qs[2 * DIM + c];
    vd_bench_imat gt;
    ck_assert_int_eq(vd_bench_ground_truth(&b, &q, VD_METRIC_COSINE, K, 0, &gt, NULL), VD_OK);
    ck_assert_int_eq(gt.data[2 * K], 5);
    vd_bench_imat_free(&gt);
    /* k larger than the base pads with -1. */
    vd_bench_fmat small = {base, 3, DIM};
    ck_assert_int_eq(vd_bench_ground_truth(&small, &q, VD_METRIC_L2, 5, 1, &gt, NULL), VD_OK);
    ck_assert_int_eq(gt.data[3], -1);
    ck_assert_int_eq(gt.data[4], -1);
    vd_bench_imat_free(&gt);
    /* Mismatched dims and k == 0 are refused. */
    vd_err err = {0};
    vd_bench_fmat wrong = {qs, NQ, DIM - 1};
    ck_assert_int_eq(vd_bench_ground_truth(&b, &wrong, VD_METRIC_L2, K, 1, &gt, &err),
                     VD_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "query dim 8"));
    ck_assert_int_eq(vd_bench_ground_truth(&b, &q, VD_METRIC_L2, 0, 1, &gt, &err), VD_INVALID);
    free(base);
    free(qs);
}
END_TEST

START_TEST(statistics)
{
    double v[] = {5, 1, 4, 2, 3};
    ck_assert_double_eq(vd_bench_median(v, 5), 3.0);
    double w[] = {4, 1, 3, 2};
    ck_assert_double_eq(vd_bench_median(w, 4), 2.5);
    double l[100];
    for (int i = 0; i < 100; i++)
        l[i] = 100 - i; /* 100..1 */
    ck_assert_double_eq(vd_bench_quantile(l, 100, 0.50), 50.0);
    ck_assert_double_eq(vd_bench_quantile(l, 100, 0.99), 99.0);
    ck_assert_double_eq(vd_bench_quantile(l, 100, 1.0), 100.0);
    ck_assert_double_eq(vd_bench_quantile(l, 100, 0.0), 1.0);
    ck_assert(isnan(vd_bench_median(v, 0)));
    size_t cur = vd_bench_current_rss(); /* read first: the peak can only have grown since */
    ck_assert_uint_gt(cur, 0);
    ck_assert_uint_ge(vd_bench_peak_rss(), cur);
}
END_TEST

START_TEST(json_lines)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    vd_bench_json j;
    vd_bench_json_begin(&j);
    vd_bench_json_str(&j, "system", "vec\"tord\\\n");
    vd_bench_json_int(&j, "n", 340479);
    vd_bench_json_num(&j, "recall_at_10", 0.95);
    vd_bench_json_num(&j, "qps", NAN);
    vd_bench_json_null(&j, "x");
    vd_bench_json_str(&j, "s", NULL);
    ck_assert_int_eq(vd_bench_json_end(&j, f), 0);
    fclose(f);
    ck_assert_str_eq(out, "{\"system\": \"vec\\\"tord\\\\\\u000a\", \"n\": 340479, "
                          "\"recall_at_10\": 0.95, \"qps\": null, \"x\": null, \"s\": null}\n");
    free(out);

    f = open_memstream(&out, &len);
    vd_bench_json_begin(&j);
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 10; i++)
        vd_bench_json_str(&j, "k", big);
    ck_assert_int_eq(vd_bench_json_end(&j, f), -1);
    fclose(f);
    ck_assert_uint_eq(len, 0);
    free(out);
}
END_TEST

Suite *bench_common_suite(void)
{
    Suite *s = suite_create("bench_common");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, fvecs_round_trip_and_prefix);
    tcase_add_test(tc, bvecs_widened_to_float);
    tcase_add_test(tc, fvecs_malformed_refused);
    tcase_add_test(tc, ivecs_ids_checked_and_saved);
    tcase_add_test(tc, parse_sizes_and_names);
    tcase_add_test(tc, synthetic_is_a_function_of_its_seed);
    tcase_add_test(tc, ground_truth_matches_naive_sort);
    tcase_add_test(tc, statistics);
    tcase_add_test(tc, json_lines);
    suite_add_tcase(s, tc);
    return s;
}
