/* tests/unit/test_index_filter.c: filtered search (vd_index_search_opts with a slot filter).
 *
 * Predicates over ids (the filter maps a slot to its id with vd_index_slot_id): random ones
 * at 50 %, 10 %, 1 % and 0.1 % selectivity, and, on clustered data with known labels, ones
 * correlated with the query (its own cluster) and anti-correlated (the clusters farthest
 * from it). For each: recall@10 >= 0.95 against a brute force over the matching points, and
 * exactly min(k, matching visible points) hits, under the planner and with the traversal
 * and the exact scan forced (the traversal's recall is asserted where it is meant to run:
 * at 1 % of 20k points the planner scans, and does so for any index below millions of
 * points); with a bitmap, with next(), with allow() alone, with and without a count. Also:
 * an empty filter, one that matches everything, tombstones and unpublished points (never
 * returned), allow() at most once per slot per search, the explain counters, bad options. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/vd_index.h"
#include "tests/unit/index_testutil.h"

#define DIM 24
#define N_CLUSTERS 50
#define K 10

/* Clustered data with labels: N_CLUSTERS centres, points around them. */
typedef struct dataset {
    size_t n, nq;
    float *v, *q, *ctr;
    uint32_t *label, *qlabel;
} dataset;

static void make_data(dataset *d, size_t n, size_t nq, uint64_t seed)
{
    uint64_t s = seed;
    d->n = n;
    d->nq = nq;
    d->ctr = malloc(N_CLUSTERS * DIM * sizeof(float));
    d->v = malloc(n * DIM * sizeof(float));
    d->q = malloc(nq * DIM * sizeof(float));
    d->label = malloc(n * sizeof(uint32_t));
    d->qlabel = malloc(nq * sizeof(uint32_t));
    for (size_t i = 0; i < N_CLUSTERS * DIM; i++) d->ctr[i] = 4.0f * vt_randf(&s);
    for (size_t i = 0; i < n + nq; i++) {
        uint32_t c = (uint32_t)(vt_rand(&s) % N_CLUSTERS);
        float *x = i < n ? d->v + i * DIM : d->q + (i - n) * DIM;
        for (int j = 0; j < DIM; j++) x[j] = d->ctr[c * DIM + j] + 0.8f * vt_randf(&s);
        if (i < n) d->label[i] = c;
        else d->qlabel[i - n] = c;
    }
}

static void free_data(dataset *d)
{
    free(d->v);
    free(d->q);
    free(d->ctr);
    free(d->label);
    free(d->qlabel);
}

static vd_index *build(const dataset *d, int deferred)
{
    vd_index_params p = {.dim = DIM, .metric = VD_METRIC_L2, .m = 12, .ef_construction = 100,
                         .seed = 5, .deferred_publish = deferred};
    vd_index *ix = NULL;
    ck_assert_int_eq(vd_index_open(&p, &ix, NULL), VD_OK);
    uint64_t *ids = malloc(d->n * sizeof(uint64_t));
    for (size_t i = 0; i < d->n; i++) ids[i] = i;
    ck_assert_int_eq(vd_index_add_batch(ix, ids, d->v, d->n, 2, NULL, NULL, NULL), VD_OK);
    vd_index_publish(ix);
    free(ids);
    return ix;
}

/* ---- a filter over ids ---------------------------------------------------------------- */

typedef struct idfilter {
    const vd_index *ix;
    const uint8_t *ok_id; /* by id: 1 allowed */
    size_t n_ids;
    uint8_t *by_slot;     /* for next(): allowed by slot (tombstones included) */
    uint32_t n_slots;
    uint32_t *calls;      /* allow() calls per slot in the current search */
    int twice;            /* allow() was asked twice for one slot */
    uint64_t *bits;       /* allowed by slot, as a bitmap */
} idfilter;

static int f_allow(void *ctx, uint32_t slot)
{
    idfilter *f = ctx;
    uint64_t id = vd_index_slot_id(f->ix, slot);
    if (f->calls && slot < f->n_slots && f->calls[slot]++) f->twice = 1;
    if (id >= f->n_ids) return 0;
    return f->ok_id[id];
}

static size_t f_next(void *ctx, uint32_t from, uint32_t *out, size_t cap)
{
    idfilter *f = ctx;
    size_t n = 0;
    for (uint32_t s = from; s < f->n_slots && n < cap; s++)
        if (f->by_slot[s]) out[n++] = s;
    return n;
}

/* Builds the slot tables of f for the index as it is now (writer side, no search running). */
static void filter_bind(idfilter *f, const vd_index *ix, const uint8_t *ok_id, size_t n_ids)
{
    vd_index_header h;
    vd_index_header_get(ix, &h);
    f->ix = ix;
    f->ok_id = ok_id;
    f->n_ids = n_ids;
    f->n_slots = h.n_slots;
    f->by_slot = calloc(h.n_slots + 1, 1);
    f->calls = calloc(h.n_slots + 1, sizeof(uint32_t));
    f->bits = calloc(h.n_slots / 64 + 1, sizeof(uint64_t));
    for (uint32_t s = 0; s < h.n_slots; s++) {
        uint64_t id = vd_index_slot_id(ix, s);
        f->by_slot[s] = id < n_ids && ok_id[id];
        if (f->by_slot[s]) f->bits[s / 64] |= (uint64_t)1 << (s % 64);
    }
}

static void filter_unbind(idfilter *f)
{
    free(f->by_slot);
    free(f->calls);
    free(f->bits);
    f->by_slot = NULL;
    f->calls = NULL;
    f->bits = NULL;
}

/* Brute force over the allowed ids among the first n (alive[] when given): the k nearest. */
static size_t brute(const dataset *d, const float *q, const uint8_t *ok, const uint8_t *alive,
                    uint64_t *out, uint32_t k)
{
    float best[K];
    size_t nb = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (!ok[i] || (alive && !alive[i])) continue;
        float dd = vd_dist_l2sq_ref(q, d->v + i * DIM, DIM);
        if (nb < k) nb++;
        else if (dd >= best[nb - 1]) continue;
        size_t j = nb - 1;
        while (j && best[j - 1] > dd) {
            best[j] = best[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        best[j] = dd;
        out[j] = i;
    }
    return nb;
}

typedef struct run_stats {
    double recall;
    size_t plans[5];
} run_stats;

/* The filter shapes: how a caller may describe the same predicate. */
enum { SHAPE_NEXT_COUNT, SHAPE_ALLOW_COUNT, SHAPE_NEXT, SHAPE_BITS, N_SHAPES };

/* Searches every query with filter ok[] (by id) in the given shape and checks the hit count,
 * order, that every hit is allowed and alive; returns the mean recall@K against brute
 * force. */
static run_stats run(const vd_index *ix, const dataset *d, const uint8_t *ok,
                     const uint8_t *alive, int shape, vd_search_plan plan, uint32_t ef)
{
    idfilter f = {0};
    filter_bind(&f, ix, ok, d->n);
    uint64_t n_ok = 0;
    for (size_t i = 0; i < d->n; i++) n_ok += ok[i] && (!alive || alive[i]);
    int with_next = shape == SHAPE_NEXT_COUNT || shape == SHAPE_NEXT;
    int with_count = shape == SHAPE_NEXT_COUNT || shape == SHAPE_ALLOW_COUNT;
    vd_slot_filter sf = {.allow = f_allow, .next = with_next ? f_next : NULL, .ctx = &f,
                         .n_allowed = with_count ? n_ok : VD_FILTER_COUNT_UNKNOWN};
    if (shape == SHAPE_BITS) {
        sf.allow = NULL;
        sf.bits = f.bits;
        sf.n_bits = f.n_slots;
    }
    run_stats rs = {0};
    size_t found = 0, total = 0;
    for (size_t qi = 0; qi < d->nq; qi++) {
        const float *q = d->q + qi * DIM;
        vd_hit h[K];
        uint32_t nh = 99;
        vd_search_explain ex;
        vd_search_opts o = {.k = K, .ef = ef, .filter = &sf, .explain = &ex, .plan = plan};
        memset(f.calls, 0, (f.n_slots + 1) * sizeof(uint32_t));
        vd_err e = {0};
        ck_assert_msg(vd_index_search_opts(ix, q, &o, h, &nh, &e) == VD_OK, "%s", e.msg);
        ck_assert_msg(!f.twice, "allow() asked twice for one slot (plan %s)",
                      vd_search_plan_name(ex.plan));
        uint64_t want[K];
        size_t nw = brute(d, q, ok, alive, want, K);
        ck_assert_msg(nh == nw, "query %zu: %u hits, %zu allowed points would give %zu (plan %s)",
                      qi, nh, (size_t)n_ok, nw, vd_search_plan_name(ex.plan));
        for (uint32_t i = 0; i < nh; i++) {
            ck_assert_msg(h[i].id < d->n && ok[h[i].id], "hit %llu is not allowed",
                          (unsigned long long)h[i].id);
            ck_assert(!alive || alive[h[i].id]);
            if (i) ck_assert(h[i - 1].distance <= h[i].distance);
            for (size_t j = 0; j < nw; j++)
                if (want[j] == h[i].id) found++;
        }
        total += nw;
        ck_assert(ex.plan >= VD_PLAN_GRAPH && ex.plan <= VD_PLAN_ONE_HOP);
        rs.plans[ex.plan]++;
        if (plan && n_ok) ck_assert(ex.plan == plan || ex.plan == VD_PLAN_GRAPH_THEN_EXACT);
    }
    filter_unbind(&f);
    rs.recall = total ? (double)found / (double)total : 1.0;
    return rs;
}

static void check_recall(const char *what, run_stats rs)
{
    ck_assert_msg(rs.recall >= 0.95, "%s: recall@10 %.4f < 0.95 (plans graph %zu exact %zu "
                  "graph_then_exact %zu one_hop %zu)", what, rs.recall, rs.plans[1], rs.plans[2],
                  rs.plans[3], rs.plans[4]);
}

/* Every combination of plan and filter shape for one predicate; the forced traversal's
 * recall only where `graph_recall` (its hit counts always). */
static void check_all(const vd_index *ix, const dataset *d, const uint8_t *ok, const char *name,
                      int graph_recall)
{
    static const vd_search_plan plans[] = {0, VD_PLAN_GRAPH, VD_PLAN_EXACT, VD_PLAN_ONE_HOP};
    char what[128];
    for (size_t p = 0; p < VD_ARRAY_LEN(plans); p++)
        for (int shape = 0; shape < N_SHAPES; shape++) {
            snprintf(what, sizeof what, "%s, plan %s, shape %d", name,
                     plans[p] ? vd_search_plan_name(plans[p]) : "planner", shape);
            run_stats rs = run(ix, d, ok, NULL, shape, plans[p], 64);
            int traversal = plans[p] == VD_PLAN_GRAPH || plans[p] == VD_PLAN_ONE_HOP;
            if (!traversal || graph_recall) check_recall(what, rs);
        }
}

static uint64_t mix(uint64_t x)
{
    uint64_t s = x;
    return vt_rand(&s);
}

START_TEST(random_predicates_at_every_selectivity)
{
    dataset d;
    make_data(&d, vt_scale(20000, 4), vt_scale(60, 2), 11);
    vd_index *ix = build(&d, 0);
    static const double sel[] = {0.5, 0.1, 0.01, 0.001};
    uint8_t *ok = malloc(d.n);
    for (size_t si = 0; si < VD_ARRAY_LEN(sel); si++) {
        for (size_t i = 0; i < d.n; i++) ok[i] = (double)(mix(i + 7) % 100000) < sel[si] * 1e5;
        char name[64];
        snprintf(name, sizeof name, "random %.1f %%", sel[si] * 100);
        check_all(ix, &d, ok, name, sel[si] >= 0.1);
    }
    free(ok);
    vd_index_close(ix);
    free_data(&d);
}
END_TEST

/* in[j] = 1 for the n clusters whose centres are nearest cluster c's (c itself first), or
 * farthest from it; 0 for the others. Ties go to the lower index. */
static void mark_clusters(const dataset *d, uint32_t c, uint32_t n, int farthest, uint8_t *in)
{
    float dist[N_CLUSTERS];
    for (uint32_t j = 0; j < N_CLUSTERS; j++) {
        in[j] = 0;
        dist[j] = vd_dist_l2sq_ref(d->ctr + c * DIM, d->ctr + j * DIM, DIM);
    }
    for (uint32_t r = 0; r < n; r++) { /* the r-th nearest, or farthest */
        uint32_t best = N_CLUSTERS;
        for (uint32_t j = 0; j < N_CLUSTERS; j++)
            if (!in[j] && (best == N_CLUSTERS ||
                           (farthest ? dist[j] > dist[best] : dist[j] < dist[best])))
                best = j;
        in[best] = 1;
    }
}

/* Correlated: the query's own cluster (2 %), and a tenth of it (0.2 %). Anti-correlated: the
 * five clusters farthest from the query's (10 %), and a tenth of the farthest one. The
 * predicate depends on the query, so each query runs on its own. */
START_TEST(correlated_and_anti_correlated_predicates)
{
    dataset d;
    make_data(&d, vt_scale(20000, 4), vt_scale(40, 2), 23);
    vd_index *ix = build(&d, 0);
    uint8_t *ok = malloc(d.n);
    for (int kind = 0; kind < 4; kind++) {
        dataset one = d;
        run_stats sum = {0};
        for (size_t qi = 0; qi < d.nq; qi++) {
            uint32_t c = d.qlabel[qi];
            uint8_t far[N_CLUSTERS];
            mark_clusters(&d, c, kind == 2 ? 5 : 1, 1, far);
            for (size_t i = 0; i < d.n; i++) {
                uint32_t l = d.label[i];
                ok[i] = kind < 2 ? l == c : far[l];
                if (kind % 2) ok[i] = ok[i] && mix(i) % 10 == 0;
            }
            one.q = d.q + qi * DIM;
            one.nq = 1;
            for (vd_search_plan p = 0; p <= VD_PLAN_GRAPH; p++) {
                run_stats rs = run(ix, &one, ok, NULL, qi % N_SHAPES, p, 64);
                sum.recall += rs.recall;
                for (int j = 0; j < 5; j++) sum.plans[j] += rs.plans[j];
            }
        }
        sum.recall /= 2.0 * (double)d.nq;
        static const char *names[] = {"correlated 2 %", "correlated 0.2 %",
                                      "anti-correlated 10 %", "anti-correlated 0.2 %"};
        check_recall(names[kind], sum);
    }
    free(ok);
    vd_index_close(ix);
    free_data(&d);
}
END_TEST

START_TEST(empty_filter_and_filter_matching_everything)
{
    dataset d;
    make_data(&d, vt_scale(3000, 2), 20, 31);
    vd_index *ix = build(&d, 0);
    uint8_t *none = calloc(d.n, 1), *all = malloc(d.n);
    memset(all, 1, d.n);
    for (vd_search_plan p = 0; p <= VD_PLAN_EXACT; p++)
        for (int shape = 0; shape < N_SHAPES; shape++) {
            run_stats rs = run(ix, &d, none, NULL, shape, p, 32);
            ck_assert(rs.recall == 1.0); /* no hits expected, none returned */
            check_recall("all", run(ix, &d, all, NULL, shape, p, 32));
        }
    /* Matching everything, the traversal is the unfiltered search. */
    idfilter f = {0};
    filter_bind(&f, ix, all, d.n);
    vd_slot_filter sf = {.allow = f_allow, .ctx = &f, .n_allowed = d.n};
    for (size_t qi = 0; qi < d.nq; qi++) {
        vd_hit a[K], b[K];
        uint32_t na, nb;
        vd_search_opts o = {.k = K, .ef = 32, .filter = &sf, .plan = VD_PLAN_GRAPH};
        memset(f.calls, 0, (f.n_slots + 1) * sizeof(uint32_t));
        ck_assert_int_eq(vd_index_search_opts(ix, d.q + qi * DIM, &o, a, &na, NULL), VD_OK);
        ck_assert_int_eq(vd_index_search(ix, d.q + qi * DIM, K, 32, b, &nb, NULL), VD_OK);
        ck_assert_uint_eq(na, nb);
        for (uint32_t i = 0; i < na; i++) ck_assert_uint_eq(a[i].id, b[i].id);
    }
    filter_unbind(&f);
    free(none);
    free(all);
    vd_index_close(ix);
    free_data(&d);
}
END_TEST

/* Removed-but-unpublished points are still returned, unpublished ones not; after the
 * publish the reverse. allow() never sees an invisible point. */
START_TEST(tombstones_and_unpublished_points)
{
    dataset d;
    make_data(&d, vt_scale(6000, 2), 30, 37);
    size_t half = d.n / 2;
    dataset first = d;
    first.n = half;
    vd_index *ix = build(&first, 1);
    uint8_t *ok = malloc(d.n), *alive = calloc(d.n, 1);
    for (size_t i = 0; i < d.n; i++) ok[i] = mix(i) % 10 < 3;
    for (size_t i = 0; i < half; i++) alive[i] = 1;
    /* Unpublished: the second half added, a third of the first half removed. */
    uint64_t *ids = malloc((d.n - half) * sizeof(uint64_t));
    for (size_t i = half; i < d.n; i++) ids[i - half] = i;
    ck_assert_int_eq(vd_index_add_batch(ix, ids, d.v + half * DIM, d.n - half, 1, NULL, NULL,
                                        NULL), VD_OK);
    for (size_t i = 0; i < half; i += 3) ck_assert_int_eq(vd_index_remove(ix, i, NULL), VD_OK);
    for (vd_search_plan p = 0; p <= VD_PLAN_EXACT; p++) {
        idfilter f = {0};
        filter_bind(&f, ix, ok, d.n);
        vd_slot_filter sf = {.allow = f_allow, .ctx = &f, .n_allowed = VD_FILTER_COUNT_UNKNOWN};
        for (size_t qi = 0; qi < d.nq; qi++) {
            vd_hit h[K];
            uint32_t nh;
            vd_search_opts o = {.k = K, .ef = 48, .filter = &sf, .plan = p};
            memset(f.calls, 0, (f.n_slots + 1) * sizeof(uint32_t));
            ck_assert_int_eq(vd_index_search_opts(ix, d.q + qi * DIM, &o, h, &nh, NULL), VD_OK);
            ck_assert_uint_eq(nh, K);
            for (uint32_t i = 0; i < nh; i++) ck_assert(h[i].id < half && ok[h[i].id]);
        }
        filter_unbind(&f);
        /* next() and the bitmap list the unpublished slots too: the index skips them. */
        for (int shape = 0; shape < N_SHAPES; shape++)
            check_recall("before publish", run(ix, &d, ok, alive, shape, p, 48));
    }
    vd_index_publish(ix);
    for (size_t i = 0; i < d.n; i++) alive[i] = i >= half || i % 3 != 0;
    for (vd_search_plan p = 0; p <= VD_PLAN_EXACT; p++)
        for (int shape = 0; shape < N_SHAPES; shape++)
            check_recall("after publish", run(ix, &d, ok, alive, shape, p, 48));
    free(ids);
    free(ok);
    free(alive);
    vd_index_close(ix);
    free_data(&d);
}
END_TEST

START_TEST(fewer_matches_than_k_and_explain)
{
    dataset d;
    make_data(&d, vt_scale(4000, 2), 10, 41);
    vd_index *ix = build(&d, 0);
    uint8_t *ok = calloc(d.n, 1);
    for (size_t i = 0; i < 4; i++) ok[i * 97] = 1; /* 4 matches, k = 10 */
    for (vd_search_plan p = 0; p <= VD_PLAN_EXACT; p++)
        for (int shape = 0; shape < N_SHAPES; shape++)
            ck_assert(run(ix, &d, ok, NULL, shape, p, 32).recall == 1.0);
    idfilter f = {0};
    filter_bind(&f, ix, ok, d.n);
    vd_slot_filter sf = {.allow = f_allow, .next = f_next, .ctx = &f, .n_allowed = 4};
    vd_search_explain ex;
    vd_hit h[K];
    uint32_t nh;
    vd_search_opts o = {.k = K, .filter = &sf, .explain = &ex};
    ck_assert_int_eq(vd_index_search_opts(ix, d.q, &o, h, &nh, NULL), VD_OK);
    ck_assert_uint_eq(nh, 4);
    ck_assert_str_eq(vd_search_plan_name(ex.plan), "exact"); /* 4 distances beat any traversal */
    ck_assert_uint_eq(ex.distances, 4);
    ck_assert(ex.cost_exact < ex.cost_graph);
    o.plan = VD_PLAN_GRAPH;
    memset(f.calls, 0, (f.n_slots + 1) * sizeof(uint32_t));
    ck_assert_int_eq(vd_index_search_opts(ix, d.q, &o, h, &nh, NULL), VD_OK);
    ck_assert_uint_eq(nh, 4);
    ck_assert_str_eq(vd_search_plan_name(ex.plan), "graph_then_exact");
    ck_assert_uint_gt(ex.filter_calls, 0);
    ck_assert_uint_gt(ex.nodes_visited, 0);
    /* Unfiltered explain. */
    vd_search_opts u = {.k = K, .ef = 40, .explain = &ex};
    ck_assert_int_eq(vd_index_search_opts(ix, d.q, &u, h, &nh, NULL), VD_OK);
    ck_assert_uint_eq(nh, K);
    ck_assert_str_eq(vd_search_plan_name(ex.plan), "graph");
    ck_assert_uint_gt(ex.distances, 40);
    ck_assert_uint_eq(ex.filter_calls, 0);
    ck_assert(ex.selectivity == 1.0);
    filter_unbind(&f);
    free(ok);
    vd_index_close(ix);
    free_data(&d);
}
END_TEST

/* The one-hop plan (every node in the beam, the allowed ones returned) where it is meant to
 * run, at 50 %, 30 % and 10 %: random predicates, and per query the clusters nearest the
 * query's own (correlated) or farthest from it (anti-correlated) making up that share. Forced
 * and under the planner, which must choose it for a random 50 % predicate at a small ef (a
 * larger one costs more than the scan of a small sanitizer-build index); every run checks
 * min(k, matches) hits, all allowed, and recall@10 >= 0.95 against brute force. */
START_TEST(one_hop_at_dense_selectivities)
{
    dataset d;
    make_data(&d, vt_scale(20000, 4), vt_scale(40, 2), 37);
    vd_index *ix = build(&d, 0);
    static const double sel[] = {0.5, 0.3, 0.1};
    uint8_t *ok = malloc(d.n);
    char what[128];
    for (size_t si = 0; si < VD_ARRAY_LEN(sel); si++) {
        for (size_t i = 0; i < d.n; i++) ok[i] = (double)(mix(i + 3) % 100000) < sel[si] * 1e5;
        for (int shape = 0; shape < N_SHAPES; shape++) {
            snprintf(what, sizeof what, "random %.0f %%, one_hop, shape %d", sel[si] * 100, shape);
            check_recall(what, run(ix, &d, ok, NULL, shape, VD_PLAN_ONE_HOP, 64));
            snprintf(what, sizeof what, "random %.0f %%, planner, shape %d", sel[si] * 100, shape);
            check_recall(what, run(ix, &d, ok, NULL, shape, 0, 64));
        }
        if (si == 0) { /* at ef 16 its beam costs a fraction of the scan of n / 2 points */
            run_stats rs = run(ix, &d, ok, NULL, SHAPE_BITS, 0, 16);
            ck_assert_msg(rs.plans[VD_PLAN_ONE_HOP] >= d.nq / 2,
                          "random 50 %%: the planner chose one_hop %zu of %zu times",
                          rs.plans[VD_PLAN_ONE_HOP], d.nq);
        }
        uint32_t n_cl = (uint32_t)(sel[si] * N_CLUSTERS + 0.5);
        for (int anti = 0; anti < 2; anti++) {
            run_stats sum = {0};
            for (size_t qi = 0; qi < d.nq; qi++) {
                uint32_t c = d.qlabel[qi];
                uint8_t in[N_CLUSTERS];
                mark_clusters(&d, c, n_cl, anti, in);
                for (size_t i = 0; i < d.n; i++) ok[i] = in[d.label[i]];
                dataset one = d;
                one.q = d.q + qi * DIM;
                one.nq = 1;
                for (int forced = 0; forced < 2; forced++) {
                    run_stats rs = run(ix, &one, ok, NULL, qi % N_SHAPES,
                                       forced ? VD_PLAN_ONE_HOP : 0, 64);
                    sum.recall += rs.recall;
                    for (int j = 0; j < 5; j++) sum.plans[j] += rs.plans[j];
                }
            }
            sum.recall /= 2.0 * (double)d.nq;
            snprintf(what, sizeof what, "%scorrelated %.0f %%", anti ? "anti-" : "",
                     sel[si] * 100);
            check_recall(what, sum);
        }
    }
    free(ok);
    vd_index_close(ix);
    free_data(&d);
}
END_TEST

START_TEST(bad_options)
{
    vd_index *ix = vt_open(4, VD_METRIC_L2, 8, 32, 1);
    float v[4] = {1, 2, 3, 4};
    ck_assert_int_eq(vd_index_add(ix, 1, v, NULL), VD_OK);
    vd_hit h[2];
    uint32_t n = 7;
    vd_err e = {0};
    ck_assert_int_eq(vd_index_search_opts(ix, v, NULL, h, &n, &e), VD_INVALID);
    ck_assert_uint_eq(n, 0);
    ck_assert_str_eq(e.msg, "search options are required");
    vd_slot_filter f = {0};
    vd_search_opts o = {.k = 1, .filter = &f};
    ck_assert_int_eq(vd_index_search_opts(ix, v, &o, h, &n, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "search filter has neither allow() nor bits");
    o.filter = NULL;
    o.plan = VD_PLAN_GRAPH_THEN_EXACT;
    ck_assert_int_eq(vd_index_search_opts(ix, v, &o, h, &n, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "search plan 3 cannot be forced");
    o.plan = (vd_search_plan)5;
    ck_assert_int_eq(vd_index_search_opts(ix, v, &o, h, &n, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "search plan 5 cannot be forced");
    ck_assert_str_eq(vd_search_plan_name(VD_PLAN_ONE_HOP), "one_hop");
    o.plan = 0;
    o.k = 0;
    ck_assert_int_eq(vd_index_search_opts(ix, v, &o, h, &n, &e), VD_INVALID);
    ck_assert_str_eq(vd_search_plan_name(0), "unknown");
    ck_assert_uint_eq(vd_index_slot_id(ix, 0), 1);
    ck_assert_uint_eq(vd_index_slot_id(ix, 1), VD_ID_NONE);
    vd_index_close(ix);
}
END_TEST

Suite *index_filter_suite(void)
{
    Suite *s = suite_create("index_filter");
    TCase *tc = tcase_create("filter");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, random_predicates_at_every_selectivity);
    tcase_add_test(tc, correlated_and_anti_correlated_predicates);
    tcase_add_test(tc, empty_filter_and_filter_matching_everything);
    tcase_add_test(tc, tombstones_and_unpublished_points);
    tcase_add_test(tc, fewer_matches_than_k_and_explain);
    tcase_add_test(tc, one_hop_at_dense_selectivities);
    tcase_add_test(tc, bad_options);
    suite_add_tcase(s, tc);
    return s;
}
