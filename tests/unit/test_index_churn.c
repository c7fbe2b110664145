/* tests/unit/test_index_churn.c: the graph after heavy deletes is as good as a fresh build of
 * the survivors (issue 13): recall@10 at a fixed, low ef after a random half is removed and
 * after rounds of 10 % churn (remove 10 %, insert as many new points), each within a
 * tolerance of a fresh index of the same points. The fast version of bench-churn: small,
 * single-threaded builds and a fixed seed, so the figures are the same on every run.
 *
 * The data is iid gaussian, the hardest case for repairs (no cluster structure to fall back
 * on), at a low ef where a fresh build finds 0.69-0.75, so a degraded graph shows: with the
 * repairs this replaced (lists rebuilt by the heuristic) recall was 0.078 below fresh after
 * the removals and 0.053 after churn; with replacements from a beam 0.024 and 0.020 below;
 * with the replacements linking back 0.028 above and 0.006 below. The tolerance is the
 * issue's target for random data. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/vd_index.h"
#include "tests/unit/index_testutil.h"

enum { DIM = 24, M = 8, EFC = 64, EF = 16, NQ = 200, GROUP = 64 };
#define TOLERANCE 0.02

static float *gaussian(size_t n, uint64_t seed)
{
    float *v = malloc(n * DIM * sizeof(float));
    ck_assert_ptr_nonnull(v);
    uint64_t s = seed;
    for (size_t i = 0; i < n * DIM; i++) /* sum of four uniforms: near enough gaussian */
        v[i] = vt_randf(&s) + vt_randf(&s) + vt_randf(&s) + vt_randf(&s);
    return v;
}

static vd_index *open_deferred(void)
{
    vd_index_params p = {.dim = DIM, .metric = VD_METRIC_L2, .m = M, .ef_construction = EFC,
                         .seed = 5, .deferred_publish = 1};
    vd_index *ix = NULL;
    ck_assert_int_eq(vd_index_open(&p, &ix, NULL), VD_OK);
    return ix;
}

/* Adds the rows i < n with live[i] (ids = row numbers), one thread, published. */
static void add_live(vd_index *ix, const float *v, const char *live, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (live[i]) ck_assert_int_eq(vd_index_add(ix, i, v + i * DIM, NULL), VD_OK);
    vd_index_publish(ix);
}

/* Recall of a fresh index of the rows live now. */
static double fresh_recall(const float *v, const char *live, size_t n, const float *q)
{
    vd_index *ix = open_deferred();
    add_live(ix, v, live, n);
    double r = vt_recall(ix, q, NQ, 10, EF);
    vd_index_close(ix);
    return r;
}

/* Removes `count` random live rows among the first n, publishing every GROUP removals as
 * the daemon's group commits do. */
static void remove_random(vd_index *ix, char *live, size_t n, size_t count, uint64_t *s)
{
    for (size_t k = 0; k < count; k++) {
        size_t i;
        do i = vt_rand(s) % n;
        while (!live[i]);
        live[i] = 0;
        ck_assert_int_eq(vd_index_remove(ix, i, NULL), VD_OK);
        if ((k + 1) % GROUP == 0) vd_index_publish(ix);
    }
    vd_index_publish(ix);
}

START_TEST(recall_after_churn_matches_a_fresh_build)
{
    size_t n = vt_scale(5000, 2), per = n / 10, rounds = 10, total = n + rounds * per;
    float *v = gaussian(total, 77), *q = gaussian(NQ, 78);
    char *live = calloc(total, 1);
    ck_assert_ptr_nonnull(live);
    uint64_t s = 3;

    /* A random half removed. */
    memset(live, 1, n);
    vd_index *ix = open_deferred();
    add_live(ix, v, live, n);
    remove_random(ix, live, n, n / 2, &s);
    vt_assert_valid(ix);
    double half = vt_recall(ix, q, NQ, 10, EF), half_fresh = fresh_recall(v, live, n, q);
    vd_index_close(ix);

    /* Rounds of churn from a fresh index of the initial points. */
    memset(live, 0, total);
    memset(live, 1, n);
    ix = open_deferred();
    add_live(ix, v, live, n);
    size_t next = n;
    for (size_t r = 0; r < rounds; r++) {
        remove_random(ix, live, next, per, &s);
        for (size_t i = next; i < next + per; i++) {
            live[i] = 1;
            ck_assert_int_eq(vd_index_add(ix, i, v + i * DIM, NULL), VD_OK);
        }
        next += per;
        vd_index_publish(ix);
    }
    vt_assert_valid(ix);
    double churn = vt_recall(ix, q, NQ, 10, EF), churn_fresh = fresh_recall(v, live, total, q);
    vd_index_close(ix);

    fprintf(stderr, "churn: after 50%% removed %.4f (fresh %.4f), after %zu x 10%% churn %.4f "
            "(fresh %.4f)\n", half, half_fresh, rounds, churn, churn_fresh);
    ck_assert_msg(half >= half_fresh - TOLERANCE, "after removing half: recall %.4f, a fresh "
                  "build %.4f", half, half_fresh);
    ck_assert_msg(churn >= churn_fresh - TOLERANCE, "after churn: recall %.4f, a fresh build "
                  "%.4f", churn, churn_fresh);
    free(live);
    free(v);
    free(q);
}
END_TEST

Suite *index_churn_suite(void)
{
    Suite *s = suite_create("index_churn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, recall_after_churn_matches_a_fresh_build);
    suite_add_tcase(s, tc);
    return s;
}
