/* tests/unit/test_index_quant.c: int8 quantization (vd_index_params.quantization).
 *
 * Recall against the exact float answer (brute force over the floats, not the codes) on
 * prefixes of the sets in ../shared/data and on synthetic data under l2, cosine and ip:
 * within 0.01 of the float index at the same ef with the default re-rank, and >= 0.95; the
 * re-ranked distances are the float ones; without a source the code distances come back.
 * The floats: held for storage until vd_index_changes_clear, then gone (slot_vector NULL,
 * get NOTFOUND), vd_index_vector_matches against stored floats. A persistence round trip
 * (codes recomputed from the floats at load: the same codes, the same answers), upserts
 * recoding, drift (vectors far outside the first ones' range), zero vectors, bad values. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/vd_index.h"
#include "tests/unit/index_testutil.h"

/* A vector source over an array indexed by id (the normalized floats, as storage keeps). */
typedef struct array_source {
    const float *v;
    uint32_t dim;
    uint64_t n;
    size_t calls;
} array_source;

static const float *array_get(void *ctx, uint32_t slot, uint64_t id)
{
    array_source *a = ctx;
    (void)slot;
    a->calls++;
    return id < a->n ? a->v + id * a->dim : NULL;
}

/* The floats as the index stores them: normalized under cosine. */
static float *stored_form(const float *v, size_t n, uint32_t dim, vd_metric metric)
{
    float *s = malloc(n * dim * sizeof(float));
    memcpy(s, v, n * dim * sizeof(float));
    if (metric != VD_METRIC_COSINE) return s;
    for (size_t i = 0; i < n; i++) {
        double nn = 0;
        for (uint32_t j = 0; j < dim; j++) nn += (double)s[i * dim + j] * s[i * dim + j];
        for (uint32_t j = 0; j < dim; j++) s[i * dim + j] = (float)(s[i * dim + j] / sqrt(nn));
    }
    return s;
}

static vd_index *open_q(uint32_t dim, vd_metric metric, vd_quantization q, int deferred)
{
    vd_index_params p = {.dim = dim, .metric = metric, .m = 16, .ef_construction = 100,
                         .seed = 7, .quantization = q, .deferred_publish = deferred};
    vd_index *ix = NULL;
    vd_err e = {0};
    ck_assert_msg(vd_index_open(&p, &ix, &e) == VD_OK, "%s", e.msg);
    return ix;
}

static void add_all(vd_index *ix, const float *v, size_t n, uint32_t dim)
{
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) ids[i] = i;
    ck_assert_int_eq(vd_index_add_batch(ix, ids, v, n, 1, NULL, NULL, NULL), VD_OK);
    free(ids);
}

/* Brute force over the stored floats: the k nearest ids of q (q as stored). */
static void brute(const float *s, size_t n, uint32_t dim, vd_metric metric, const float *q,
                  uint64_t *out, uint32_t k)
{
    float best[16];
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) {
        const float *x = s + i * dim;
        float d = metric == VD_METRIC_L2 ? vd_dist_l2sq_ref(q, x, dim)
                  : metric == VD_METRIC_COSINE ? 1.0f - vd_dist_dot_ref(q, x, dim)
                                              : -vd_dist_dot_ref(q, x, dim);
        if (nb < k) nb++;
        else if (d >= best[nb - 1]) continue;
        size_t j = nb - 1;
        while (j && best[j - 1] > d) {
            best[j] = best[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        best[j] = d;
        out[j] = i;
    }
}

/* Mean recall@10 of ix at ef against the float brute force, with the source when given. */
static double recall(const vd_index *ix, const float *s, size_t n, uint32_t dim,
                     vd_metric metric, const float *qs, size_t nq, uint32_t ef,
                     const vd_vector_source *src)
{
    size_t found = 0;
    float *qn = stored_form(qs, nq, dim, metric);
    for (size_t i = 0; i < nq; i++) {
        uint64_t want[10];
        brute(s, n, dim, metric, qn + i * dim, want, 10);
        vd_hit h[10];
        uint32_t nh = 0;
        vd_search_opts o = {.k = 10, .ef = ef, .source = src};
        ck_assert_int_eq(vd_index_search_opts(ix, qs + i * dim, &o, h, &nh, NULL), VD_OK);
        ck_assert_uint_eq(nh, 10);
        for (uint32_t a = 0; a < nh; a++)
            for (int b = 0; b < 10; b++)
                if (h[a].id == want[b]) found++;
    }
    free(qn);
    return (double)found / (10.0 * (double)nq);
}

/* int8 against float on the same data: recall within 0.01 at the same ef, and >= floor. */
static void compare(const char *name, const float *v, size_t n, uint32_t dim, vd_metric metric,
                    const float *q, size_t nq, uint32_t ef, double floor)
{
    float *s = stored_form(v, n, dim, metric);
    vd_index *f = open_q(dim, metric, VD_QUANT_NONE, 0), *i8 = open_q(dim, metric, VD_QUANT_INT8, 0);
    add_all(f, v, n, dim);
    add_all(i8, v, n, dim);
    vd_index_changes_clear(i8); /* "storage wrote them": the index keeps codes only */
    array_source as = {s, dim, n, 0};
    vd_vector_source src = {array_get, &as};
    double rf = recall(f, s, n, dim, metric, q, nq, ef, NULL);
    double r8 = recall(i8, s, n, dim, metric, q, nq, ef, &src);
    ck_assert_msg(r8 >= rf - 0.01 && r8 >= floor, "%s: int8 recall@10 %.4f, float %.4f at ef %u",
                  name, r8, rf, ef);
    ck_assert_uint_gt(as.calls, 0);
    vt_assert_valid(i8);
    vd_index_close(f);
    vd_index_close(i8);
    free(s);
}

static void real_set(const char *set, vd_metric metric, size_t n_max, uint32_t ef)
{
    char path[256];
    size_t n = 0, nq = 0;
    uint32_t dim = 0, dq = 0;
    snprintf(path, sizeof path, "../shared/data/%s/base.fvecs", set);
    float *base = vt_read_fvecs(path, n_max, &n, &dim);
    snprintf(path, sizeof path, "../shared/data/%s/query.fvecs", set);
    float *q = vt_read_fvecs(path, vt_scale(100, 2), &nq, &dq);
    if (!base || !q) {
        fprintf(stderr, "SKIP %s: ../shared/data/%s not found (run from the repo root)\n", set,
                set);
    } else {
        compare(set, base, n, dim, metric, q, nq, ef, 0.95);
    }
    free(base);
    free(q);
}

START_TEST(int8_recall_fashion_mnist_prefix)
{
    real_set("fashion-mnist-784-l2", VD_METRIC_L2, vt_scale(5000, 4), 48);
}
END_TEST

START_TEST(int8_recall_glove_prefix)
{
    real_set("glove6b-100-cosine", VD_METRIC_COSINE, vt_scale(20000, 8), 128);
}
END_TEST

START_TEST(int8_recall_synthetic_every_metric)
{
    size_t n = vt_scale(8000, 4);
    uint32_t dim = 48;
    float *v = vt_clustered(n, dim, 30, 21), *q = vt_clustered(50, dim, 30, 1021);
    compare("synthetic l2", v, n, dim, VD_METRIC_L2, q, 50, 64, 0.95);
    compare("synthetic cosine", v, n, dim, VD_METRIC_COSINE, q, 50, 64, 0.95);
    compare("synthetic ip", v, n, dim, VD_METRIC_IP, q, 50, 128, 0.9);
    free(v);
    free(q);
}
END_TEST

/* Re-ranked hits carry the float distance; without a source, the code distance. */
START_TEST(int8_distances_and_the_floats_it_holds)
{
    uint32_t dim = 20;
    size_t n = 500;
    float *v = vt_clustered(n, dim, 5, 31);
    vd_index *ix = open_q(dim, VD_METRIC_L2, VD_QUANT_INT8, 0);
    add_all(ix, v, n, dim);
    /* Before the clear, storage can read every new slot's floats. */
    uint64_t id;
    const float *fv;
    ck_assert_int_eq(vd_index_slot_vector(ix, 3, &id, &fv, NULL), VD_OK);
    ck_assert_ptr_nonnull(fv);
    ck_assert(memcmp(fv, v + id * dim, dim * sizeof(float)) == 0);
    float out[20];
    ck_assert_int_eq(vd_index_get(ix, 7, out, NULL), VD_OK);
    ck_assert(memcmp(out, v + 7 * dim, sizeof out) == 0);
    vd_index_changes_clear(ix);
    ck_assert_int_eq(vd_index_slot_vector(ix, 3, &id, &fv, NULL), VD_OK);
    ck_assert_ptr_null(fv);
    vd_err e = {0};
    ck_assert_int_eq(vd_index_get(ix, 7, out, &e), VD_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "keeps no float vector"));
    ck_assert_int_eq(vd_index_vector_matches(ix, 7, v + 7 * dim, NULL), VD_OK);
    ck_assert_int_eq(vd_index_vector_matches(ix, 7, v + 8 * dim, &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "differs from the codes"));
    ck_assert_int_eq(vd_index_vector_matches(ix, 9999, v, NULL), VD_NOTFOUND);
    vd_index_stats st;
    vd_index_stats_get(ix, &st);
    ck_assert_int_eq(st.quantization, VD_QUANT_INT8);
    ck_assert_uint_eq(st.bytes_vectors, n * (dim + 8)); /* codes and two floats, no vectors */
    /* The breakdown adds up; an int8 block is header + codes + links padded to 8 only (with
     * M 16: 32 + 28 + 132 = 192), and after the clear nothing is left pending. */
    ck_assert_uint_eq(st.bytes_total, st.bytes_blocks + st.bytes_upper + st.bytes_slot_tables +
                                          st.bytes_id_map + st.bytes_other);
    ck_assert_uint_eq(st.bytes_blocks, st.n_slots * st.block_stride);
    ck_assert_uint_eq(st.block_stride, st.block_header + st.block_links + dim + 8 + st.block_pad);
    ck_assert_uint_lt(st.block_pad, 8);
    ck_assert_uint_eq(st.block_header, 32);
    ck_assert_uint_gt(st.bytes_id_map, 0);
    ck_assert_uint_lt(st.bytes_id_map, 16 * n); /* 4 bytes per entry, load factor above 1/4 */
    ck_assert_uint_ge(st.bytes_slot_tables, 6 * n);
    ck_assert_uint_lt(st.bytes_other, 512 * 1024); /* the index object and its 4096 stripes */
    array_source as = {v, dim, n, 0};
    vd_vector_source src = {array_get, &as};
    for (size_t i = 0; i < 20; i++) {
        const float *q = v + i * 13 * dim;
        vd_hit a[5], b[5];
        uint32_t na, nb;
        vd_search_explain ex;
        vd_search_opts o = {.k = 5, .ef = 40, .source = &src, .explain = &ex};
        ck_assert_int_eq(vd_index_search_opts(ix, q, &o, a, &na, NULL), VD_OK);
        ck_assert_uint_eq(ex.reranked, 10); /* rerank 2 x k by default */
        for (uint32_t j = 0; j < na; j++) {
            ck_assert_float_eq(a[j].distance, vd_dist_l2sq(q, v + a[j].id * dim, dim));
            if (j) ck_assert(a[j - 1].distance <= a[j].distance);
        }
        ck_assert_uint_eq(a[0].id, i * 13);
        o.source = NULL;
        o.rerank = 64;
        ck_assert_int_eq(vd_index_search_opts(ix, q, &o, b, &nb, NULL), VD_OK);
        ck_assert_uint_eq(ex.reranked, 0);
        ck_assert_uint_eq(nb, 5);
        ck_assert(fabsf(b[0].distance - a[0].distance) < 0.05f * (1 + a[0].distance));
        /* The exact scan without a source ranks by codes; with a filter forced exact, by
         * floats. */
        ck_assert_int_eq(vd_index_search_exact(ix, q, 5, b, &nb, NULL), VD_OK);
        ck_assert_uint_eq(b[0].id, i * 13);
    }
    vd_hit h1[1];
    uint32_t n1 = 0;
    vd_search_opts bad = {.k = 1, .rerank = 65};
    ck_assert_int_eq(vd_index_search_opts(ix, v, &bad, h1, &n1, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "rerank 65 is outside 1..64");
    free(v);
    vd_index_close(ix);
}
END_TEST

/* A filter on an int8 index: every plan re-ranks with the floats. */
static int allow_even(void *ctx, uint32_t slot)
{
    uint64_t id = vd_index_slot_id(ctx, slot);
    return id != VD_ID_NONE && id % 2 == 0;
}

START_TEST(int8_filtered_plans_rerank)
{
    uint32_t dim = 24;
    size_t n = vt_scale(4000, 2);
    float *v = vt_clustered(n, dim, 10, 41);
    vd_index *ix = open_q(dim, VD_METRIC_L2, VD_QUANT_INT8, 0);
    add_all(ix, v, n, dim);
    vd_index_changes_clear(ix);
    array_source as = {v, dim, n, 0};
    vd_vector_source src = {array_get, &as};
    vd_slot_filter f = {.allow = allow_even, .ctx = ix, .n_allowed = VD_FILTER_COUNT_UNKNOWN};
    for (vd_search_plan p = 0; p <= VD_PLAN_EXACT; p++)
        for (size_t i = 0; i < 30; i++) {
            const float *q = v + (2 * i * 31 % n) * dim;
            vd_hit h[10];
            uint32_t nh;
            vd_search_explain ex;
            vd_search_opts o = {.k = 10, .ef = 64, .filter = &f, .plan = p, .source = &src,
                                .explain = &ex};
            ck_assert_int_eq(vd_index_search_opts(ix, q, &o, h, &nh, NULL), VD_OK);
            ck_assert_uint_eq(nh, 10);
            ck_assert_uint_gt(ex.reranked, 0);
            for (uint32_t j = 0; j < nh; j++) {
                ck_assert(h[j].id % 2 == 0);
                ck_assert_float_eq(h[j].distance, vd_dist_l2sq(q, v + h[j].id * dim, dim));
            }
            ck_assert_uint_eq(h[0].id, 2 * i * 31 % n); /* the query itself, allowed */
        }
    free(v);
    vd_index_close(ix);
}
END_TEST

/* Export and load: the codes are recomputed from the floats (nothing else is stored), so the
 * loaded index answers exactly as the one that built it. */
START_TEST(int8_persistence_round_trip)
{
    uint32_t dim = 32;
    size_t n = vt_scale(3000, 2);
    float *v = vt_clustered(n, dim, 12, 51), *q = vt_clustered(40, dim, 12, 1051);
    for (vd_metric m = VD_METRIC_L2; m <= VD_METRIC_IP; m++) {
        float *s = stored_form(v, n, dim, m);
        vd_index *a = open_q(dim, m, VD_QUANT_INT8, 0);
        add_all(a, v, n, dim);
        for (size_t i = 0; i < n; i += 17) ck_assert_int_eq(vd_index_remove(a, i, NULL), VD_OK);
        vd_index_changes_clear(a);
        vd_index *b = open_q(dim, m, VD_QUANT_INT8, 1);
        vd_index_header h;
        vd_index_header_get(a, &h);
        for (uint32_t slot = 0; slot < h.n_slots; slot++) {
            uint64_t id;
            const float *fv;
            if (vd_index_slot_vector(a, slot, &id, &fv, NULL) != VD_OK) continue;
            uint8_t buf[4096];
            size_t len;
            ck_assert_int_eq(vd_index_slot_links(a, slot, buf, sizeof buf, &len, NULL), VD_OK);
            ck_assert_int_eq(vd_index_load_slot(b, slot, id, s + id * dim, buf, len, NULL), VD_OK);
        }
        vd_err e = {0};
        ck_assert_msg(vd_index_load_finish(b, &h, &e) == VD_OK, "%s", e.msg);
        vt_assert_valid(b);
        for (size_t i = 1; i < n; i += 17) /* the same codes and scales */
            if (i % 17) ck_assert_int_eq(vd_index_vector_matches(b, i, s + i * dim, NULL), VD_OK);
        array_source as = {s, dim, n, 0};
        vd_vector_source src = {array_get, &as};
        for (size_t i = 0; i < 40; i++) {
            vd_hit ha[10], hb[10];
            uint32_t na, nb;
            vd_search_opts o = {.k = 10, .ef = 50, .source = &src};
            ck_assert_int_eq(vd_index_search_opts(a, q + i * dim, &o, ha, &na, NULL), VD_OK);
            ck_assert_int_eq(vd_index_search_opts(b, q + i * dim, &o, hb, &nb, NULL), VD_OK);
            ck_assert_uint_eq(na, nb);
            for (uint32_t j = 0; j < na; j++) {
                ck_assert_uint_eq(ha[j].id, hb[j].id);
                ck_assert_float_eq(ha[j].distance, hb[j].distance);
            }
        }
        vd_index_close(a);
        vd_index_close(b);
        free(s);
    }
    free(v);
    free(q);
}
END_TEST

/* Upserts recode; vectors far outside the range of the first ones (drift) lose nothing,
 * since each vector has its own scale; zero vectors (l2) encode to scale 0. */
START_TEST(int8_upserts_drift_and_zero_vectors)
{
    uint32_t dim = 16;
    size_t n = 2000;
    float *v = vt_clustered(n, dim, 8, 61);
    /* Half the points 1000x larger, a tenth 1000x smaller, inserted after the rest. */
    for (size_t i = n / 2; i < n; i++)
        for (uint32_t j = 0; j < dim; j++) v[i * dim + j] *= i % 5 ? 1000.0f : 0.001f;
    vd_index *ix = open_q(dim, VD_METRIC_L2, VD_QUANT_INT8, 0);
    add_all(ix, v, n / 2, dim);
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) ids[i] = i;
    ck_assert_int_eq(vd_index_add_batch(ix, ids + n / 2, v + n / 2 * dim, n - n / 2, 1, NULL,
                                        NULL, NULL), VD_OK);
    float zero[16] = {0};
    ck_assert_int_eq(vd_index_add(ix, n, zero, NULL), VD_OK);
    vd_index_changes_clear(ix);
    ck_assert_int_eq(vd_index_vector_matches(ix, n, zero, NULL), VD_OK);
    float *all = malloc((n + 1) * dim * sizeof(float));
    memcpy(all, v, n * dim * sizeof(float));
    memcpy(all + n * dim, zero, sizeof zero);
    array_source as = {all, dim, n + 1, 0};
    vd_vector_source src = {array_get, &as};
    double r = recall(ix, all, n + 1, dim, VD_METRIC_L2, v + n / 2 * dim, 50, 64, &src);
    ck_assert_msg(r >= 0.95, "recall with drifted vectors %.4f", r);
    vd_hit h[3];
    uint32_t nh;
    vd_search_opts o = {.k = 3, .ef = 30, .source = &src};
    ck_assert_int_eq(vd_index_search_opts(ix, zero, &o, h, &nh, NULL), VD_OK);
    ck_assert_uint_eq(h[0].id, n);
    ck_assert_float_eq(h[0].distance, 0.0f);
    /* Upsert: id 5 takes id 1500's vector; its codes follow. */
    ck_assert_int_eq(vd_index_add(ix, 5, v + 1500 * dim, NULL), VD_OK);
    ck_assert_int_eq(vd_index_vector_matches(ix, 5, v + 1500 * dim, NULL), VD_OK);
    ck_assert_int_eq(vd_index_vector_matches(ix, 5, v + 5 * dim, NULL), VD_CORRUPT);
    vt_assert_valid(ix);
    free(ids);
    free(all);
    free(v);
    vd_index_close(ix);
}
END_TEST

START_TEST(int8_bad_values_refused)
{
    vd_index_params p = {.dim = 8, .metric = VD_METRIC_L2, .quantization = (vd_quantization)7};
    vd_index *ix = NULL;
    vd_err e = {0};
    ck_assert_int_eq(vd_index_open(&p, &ix, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "unknown quantization 7");
    vd_quantization q;
    ck_assert_int_eq(vd_quantization_parse("int8", &q), VD_OK);
    ck_assert_int_eq(q, VD_QUANT_INT8);
    ck_assert_int_eq(vd_quantization_parse("int4", &q), VD_INVALID);
    const vd_param_info *r = vd_param_info_of(VD_PARAM_RERANK);
    ck_assert_str_eq(r->name, "rerank");
    ck_assert_uint_eq(r->def, 2);
}
END_TEST

Suite *index_quant_suite(void)
{
    Suite *s = suite_create("index_quant");
    TCase *tc = tcase_create("int8");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, int8_recall_fashion_mnist_prefix);
    tcase_add_test(tc, int8_recall_glove_prefix);
    tcase_add_test(tc, int8_recall_synthetic_every_metric);
    tcase_add_test(tc, int8_distances_and_the_floats_it_holds);
    tcase_add_test(tc, int8_filtered_plans_rerank);
    tcase_add_test(tc, int8_persistence_round_trip);
    tcase_add_test(tc, int8_upserts_drift_and_zero_vectors);
    tcase_add_test(tc, int8_bad_values_refused);
    suite_add_tcase(s, tc);
    return s;
}
