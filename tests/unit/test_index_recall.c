/* tests/unit/test_index_recall.c: recall@10 floors against the exact oracle on synthetic data
 * (l2, cosine, ip) and on prefixes of the real sets in ../shared/data, determinism with one
 * thread, and multi-threaded add_batch. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/vd_index.h"
#include "tests/unit/index_testutil.h"

static void build(vd_index *ix, const float *v, size_t n, uint32_t threads)
{
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) ids[i] = 1000 + i * 7;
    vd_err e = {0};
    ck_assert_msg(vd_index_add_batch(ix, ids, v, n, threads, NULL, NULL, &e) == VD_OK, "%s",
                  e.msg);
    free(ids);
    ck_assert_uint_eq(vd_index_count(ix), n);
}

static void synthetic_recall(vd_metric metric, uint32_t ef)
{
    size_t n = vt_scale(4000, 4), nq = vt_scale(100, 2);
    uint32_t dim = 32;
    float *base = vt_clustered(n, dim, 40, 11), *q = vt_clustered(nq, dim, 40, 11 + 1000);
    vd_index *ix = vt_open(dim, metric, 16, 100, 5);
    build(ix, base, n, 1);
    vt_assert_valid(ix);
    double r = vt_recall(ix, q, nq, 10, ef);
    ck_assert_msg(r >= 0.95, "%s recall@10 %.4f < 0.95", vd_metric_name(metric), r);
    vd_index_close(ix);
    free(base);
    free(q);
}

START_TEST(recall_synthetic_l2) { synthetic_recall(VD_METRIC_L2, 64); }
END_TEST
START_TEST(recall_synthetic_cosine) { synthetic_recall(VD_METRIC_COSINE, 64); }
END_TEST
START_TEST(recall_synthetic_ip) { synthetic_recall(VD_METRIC_IP, 128); }
END_TEST

static void real_recall(const char *set, vd_metric metric, size_t n_max, uint32_t ef)
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
        free(base);
        free(q);
        return;
    }
    ck_assert_uint_eq(dim, dq);
    vd_index *ix = vt_open(dim, metric, 16, 200, 3);
    build(ix, base, n, 1);
    vt_assert_valid(ix);
    double r = vt_recall(ix, q, nq, 10, ef);
    ck_assert_msg(r >= 0.95, "%s (%zu points) recall@10 %.4f < 0.95", set, n, r);
    vd_index_close(ix);
    free(base);
    free(q);
}

START_TEST(recall_fashion_mnist_prefix)
{
    real_recall("fashion-mnist-784-l2", VD_METRIC_L2, vt_scale(5000, 4), 64);
}
END_TEST

START_TEST(recall_glove_prefix)
{
    real_recall("glove6b-100-cosine", VD_METRIC_COSINE, vt_scale(10000, 4), 200);
}
END_TEST

static int collect_links(vd_index *ix, uint8_t **out, size_t *len)
{
    vd_index_header h;
    vd_index_header_get(ix, &h);
    size_t cap = 64 + h.n_slots * (size_t)(4 + 4 * (2 * 16 + 1)) * 4, off = 0;
    uint8_t *buf = malloc(cap);
    for (uint32_t s = 0; s < h.n_slots; s++) {
        size_t l = 0;
        vd_status st = vd_index_slot_links(ix, s, buf + off, cap - off, &l, NULL);
        if (st == VD_NOTFOUND) { /* a free slot */
            buf[off++] = 0xff;
            continue;
        }
        ck_assert_int_eq(st, VD_OK);
        off += l;
    }
    *out = buf;
    *len = off;
    return 0;
}

START_TEST(one_thread_builds_are_identical)
{
    size_t n = vt_scale(2000, 4);
    float *base = vt_clustered(n, 16, 20, 21);
    vd_index *a = vt_open(16, VD_METRIC_L2, 8, 64, 99), *b = vt_open(16, VD_METRIC_L2, 8, 64, 99);
    build(a, base, n, 1);
    build(b, base, n, 1);
    uint8_t *la, *lb;
    size_t na, nb;
    collect_links(a, &la, &na);
    collect_links(b, &lb, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(la, lb, na) == 0, "same seed and order gave different graphs");
    vd_index_header ha, hb;
    vd_index_header_get(a, &ha);
    vd_index_header_get(b, &hb);
    ck_assert_uint_eq(ha.entry_slot, hb.entry_slot);
    ck_assert_uint_eq(ha.max_level, hb.max_level);
    free(la);
    free(lb);
    vd_index_close(a);
    vd_index_close(b);
    free(base);
}
END_TEST

/* The same mutations (batches, single upserts, removals past the vacuum threshold, publishes)
 * on two indexes with one seed: repairs, vacuum and reconnection must be as deterministic as
 * the build. */
static void mutate(vd_index *ix, const float *base, size_t n, uint32_t dim)
{
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < n; i++) ids[i] = 1000 + i * 7;
    ck_assert_int_eq(vd_index_add_batch(ix, ids, base, n / 2, 1, NULL, NULL, NULL), VD_OK);
    for (size_t i = 0; i < n / 2; i += 2)
        ck_assert_int_eq(vd_index_remove(ix, ids[i], NULL), VD_OK);
    for (size_t i = 1; i < n / 2; i += 4)
        ck_assert_int_eq(vd_index_add(ix, ids[i], base + ((i + 5) % n) * dim, NULL), VD_OK);
    vd_index_publish(ix);
    ck_assert_int_eq(vd_index_add_batch(ix, ids + n / 2, base + (n / 2) * dim, n - n / 2, 1, NULL,
                                        NULL, NULL),
                     VD_OK);
    vd_index_publish(ix);
    vt_assert_valid(ix);
    free(ids);
}

START_TEST(one_thread_mutations_are_identical)
{
    size_t n = vt_scale(2000, 4);
    float *base = vt_clustered(n, 16, 20, 23);
    vd_index *a = vt_open(16, VD_METRIC_L2, 8, 64, 77), *b = vt_open(16, VD_METRIC_L2, 8, 64, 77);
    mutate(a, base, n, 16);
    mutate(b, base, n, 16);
    vd_index_stats sa, sb;
    vd_index_stats_get(a, &sa);
    vd_index_stats_get(b, &sb);
    ck_assert_uint_eq(sa.n_slots, sb.n_slots);
    /* Without vacuum and slot reuse, the n points and the n / 8 upserts would need n + n / 8
     * + 1 slots. */
    ck_assert_uint_lt(sa.n_slots, n + n / 8);
    uint8_t *la, *lb;
    size_t na, nb;
    collect_links(a, &la, &na);
    collect_links(b, &lb, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(la, lb, na) == 0, "same seed and mutations gave different graphs");
    vd_index_header ha, hb;
    vd_index_header_get(a, &ha);
    vd_index_header_get(b, &hb);
    ck_assert_uint_eq(ha.entry_slot, hb.entry_slot);
    ck_assert_uint_eq(ha.max_level, hb.max_level);
    free(la);
    free(lb);
    vd_index_close(a);
    vd_index_close(b);
    free(base);
}
END_TEST

static size_t progress_calls, progress_last, progress_total;
static void on_progress(void *ctx, size_t done, size_t total)
{
    (void)ctx;
    progress_calls++;
    ck_assert_uint_ge(done, progress_last);
    progress_last = done;
    progress_total = total;
}

START_TEST(two_thread_batch_keeps_recall)
{
    size_t n = vt_scale(4000, 4), nq = vt_scale(100, 2);
    float *base = vt_clustered(n, 32, 40, 31), *q = vt_clustered(nq, 32, 40, 1031);
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) ids[i] = i;
    vd_index *ix = vt_open(32, VD_METRIC_L2, 16, 100, 1);
    progress_calls = progress_last = progress_total = 0;
    ck_assert_int_eq(vd_index_add_batch(ix, ids, base, n, 2, on_progress, NULL, NULL), VD_OK);
    ck_assert_uint_ge(progress_calls, 1);
    ck_assert_uint_eq(progress_last, n);
    ck_assert_uint_eq(progress_total, n);
    ck_assert_uint_eq(vd_index_count(ix), n);
    vt_assert_valid(ix);
    double r = vt_recall(ix, q, nq, 10, 64);
    ck_assert_msg(r >= 0.95, "2-thread recall@10 %.4f < 0.95", r);
    /* A second batch on all cores over the first (upserting half of the ids). */
    for (size_t i = 0; i < n; i++) ids[i] = i + n / 2;
    ck_assert_int_eq(vd_index_add_batch(ix, ids, base, n, 0, NULL, NULL, NULL), VD_OK);
    ck_assert_uint_eq(vd_index_count(ix), n + n / 2);
    vt_assert_valid(ix);
    vd_index_close(ix);
    free(ids);
    free(base);
    free(q);
}
END_TEST

Suite *index_recall_suite(void)
{
    Suite *s = suite_create("index_recall");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, recall_synthetic_l2);
    tcase_add_test(tc, recall_synthetic_cosine);
    tcase_add_test(tc, recall_synthetic_ip);
    tcase_add_test(tc, recall_fashion_mnist_prefix);
    tcase_add_test(tc, recall_glove_prefix);
    tcase_add_test(tc, one_thread_builds_are_identical);
    tcase_add_test(tc, one_thread_mutations_are_identical);
    tcase_add_test(tc, two_thread_batch_keeps_recall);
    suite_add_tcase(s, tc);
    return s;
}
