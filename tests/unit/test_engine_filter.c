/* tests/unit/test_engine_filter.c: filters and payload indexes through the engine, the way
 * the daemon's threads and the embedded module call it: create_payload_index answered once
 * built (vd_engine_write loops the background steps; the split calls say it is pending),
 * search/count/delete with a filter, explain, payload indexes in collection info, and the
 * engine's refusals with their messages. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>

#include "engine/vd_engine.h"
#include "tests/unit/filter_testlib.h"

#define DIM 4
#define N 200

static char dir[64];
static vd_store *st;
static vd_engine *eng;
static ft_arena *fa;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void ok(const vd_request *req, vd_result *r)
{
    vd_err e = {0};
    ck_assert_msg(vd_engine_execute(eng, req, r, &e) == VD_OK, "%s: %s",
                  vd_request_name(req->kind), e.msg);
}

/* N points in "f": vector (i, 1, 0, 0) and payload {"n": i, "s": "w<i % 4>"}. */
static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/vd-engine-f-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    vd_store_options opt = {.create = 1, .n_threads = 1};
    ck_assert_int_eq(vd_store_open(dir, &opt, &st, NULL), VD_OK);
    ck_assert_int_eq(vd_engine_new(st, NULL, &eng, NULL), VD_OK);
    fa = ft_new();
    vd_result r;
    vd_request c = {.kind = VD_REQ_CREATE};
    c.create = (vd_create_req){.name = "f", .dim = DIM, .metric = VD_METRIC_L2};
    ok(&c, &r);
    vd_result_free(&r);
    static uint64_t ids[N];
    static float v[N * DIM];
    static char text[N][32];
    static vd_bytes pl[N];
    for (int i = 0; i < N; i++) {
        ids[i] = (uint64_t)i;
        v[i * DIM] = (float)i;
        v[i * DIM + 1] = 1;
        pl[i].len = (size_t)snprintf(text[i], sizeof text[i], "{\"n\":%d,\"s\":\"w%d\"}", i,
                                     i % 4);
        pl[i].data = (const uint8_t *)text[i];
    }
    vd_request u = {.kind = VD_REQ_UPSERT};
    u.upsert = (vd_upsert_req){.collection = "f", .ids = ids, .n_ids = N, .vectors = v,
                               .n_floats = N * DIM, .payloads = pl, .n_payloads = N};
    ok(&u, &r);
    vd_result_free(&r);
}

static void teardown(void)
{
    ft_free(fa);
    vd_engine_free(eng);
    vd_store_close(st);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t count(const char *filter)
{
    vd_request q = {.kind = VD_REQ_COUNT, .count = {.collection = "f",
                                                    .filter = ft_parse(fa, filter)}};
    vd_result r;
    ok(&q, &r);
    uint64_t n = r.n;
    vd_result_free(&r);
    return n;
}

START_TEST(create_payload_index_answers_once_built)
{
    /* The split calls: committed, then pending until the background steps finish. */
    vd_request q = {.kind = VD_REQ_CREATE_PINDEX,
                    .pindex = {.collection = "f", .field = "n", .kind = VD_PINDEX_INTEGER}};
    vd_write w;
    vd_err e;
    ck_assert_int_eq(vd_engine_write_prepare(eng, &q, &w, &e), VD_OK);
    ck_assert(vd_write_ends_group(&w));
    vd_write *one = &w;
    ck_assert_int_eq(vd_engine_write_commit(eng, &one, 1, &e), VD_OK);
    ck_assert_int_eq(vd_engine_write_pending(eng, &w), 1);
    int more = 1, steps = 0;
    while (more) {
        ck_assert_int_eq(vd_engine_background(eng, &more, &e), VD_OK);
        steps++;
    }
    ck_assert_int_eq(vd_engine_write_pending(eng, &w), 0);
    vd_result r;
    ck_assert_int_eq(vd_engine_write_result(eng, &w, &r, &e), VD_OK);
    ck_assert_str_eq(r.pindex.field, "n");
    ck_assert_uint_eq(r.pindex.points, N);
    ck_assert_int_eq(r.pindex.building, 0);
    vd_result_free(&r);
    /* The one-call form builds in its own loop. */
    vd_request q2 = {.kind = VD_REQ_CREATE_PINDEX,
                     .pindex = {.collection = "f", .field = "s", .kind = VD_PINDEX_KEYWORD}};
    ok(&q2, &r);
    ck_assert_uint_eq(r.pindex.points, N);
    vd_result_free(&r);
    vd_request info = {.kind = VD_REQ_INFO, .name = "f"};
    ok(&info, &r);
    ck_assert_uint_eq(r.info.n_pindexes, 2);
    ck_assert_str_eq(r.info.pindexes[1].field, "s");
    vd_result_free(&r);
    ck_assert_uint_eq(count("{\"n\":{\"$lt\":50},\"s\":\"w1\"}"), 13);
    vd_request drop = {.kind = VD_REQ_DROP_PINDEX, .pindex = {.collection = "f", .field = "s"}};
    ok(&drop, &r);
    vd_result_free(&r);
    ck_assert_uint_eq(count("{\"n\":{\"$lt\":50},\"s\":\"w1\"}"), 13); /* from the payloads */
}
END_TEST

START_TEST(search_count_delete_with_a_filter)
{
    float q[2 * DIM] = {0, 1, 0, 0, 100, 1, 0, 0};
    vd_request s = {.kind = VD_REQ_SEARCH};
    s.search = (vd_search_req){.collection = "f", .queries = q, .n_floats = 2 * DIM, .k = 5,
                               .filter = ft_parse(fa, "{\"s\":\"w3\"}"), .explain = 1,
                               .with_payloads = 1};
    vd_result r;
    ok(&s, &r);
    ck_assert_uint_eq(r.search.nq, 2);
    ck_assert_uint_eq(r.search.ids[0], 3);   /* nearest with s == w3 to x = 0 */
    ck_assert_uint_eq(r.search.ids[5], 99);  /* and to x = 100: 99, 103, 95, ... */
    ck_assert_uint_eq(r.search.ids[6], 103);
    ck_assert_int_eq(r.search.filtered, 1);
    ck_assert_uint_eq(r.search.filter.matching, N / 4);
    ck_assert_ptr_nonnull(r.search.explain);
    ck_assert(r.search.explain[0].plan >= VD_PLAN_GRAPH);
    ck_assert(r.search.payloads[0].len > 0);
    vd_result_free(&r);
    /* A filter matching 2 points: 2 hits and padding. */
    s.search.filter = ft_parse(fa, "{\"n\":{\"$in\":[7,8]}}");
    ok(&s, &r);
    ck_assert_uint_eq(r.search.ids[0], 7);
    ck_assert_uint_eq(r.search.ids[1], 8);
    ck_assert_uint_eq(r.search.ids[2], VD_ID_NONE);
    ck_assert(isinf(r.search.distances[2]));
    vd_result_free(&r);
    /* Delete by filter: one write. */
    vd_request d = {.kind = VD_REQ_DELETE, .del = {.collection = "f",
                                                   .filter = ft_parse(fa, "{\"s\":\"w0\"}")}};
    ok(&d, &r);
    ck_assert_uint_eq(r.n, N / 4);
    vd_result_free(&r);
    ck_assert_uint_eq(count("{\"s\":\"w0\"}"), 0);
    ck_assert_uint_eq(count("{\"s\":{\"$ne\":\"w0\"}}"), N - N / 4);
}
END_TEST

START_TEST(the_engine_refuses_bad_filters_first)
{
    vd_err e;
    vd_result r;
    vd_request c = {.kind = VD_REQ_COUNT, .count = {.collection = "nope",
                                                    .filter = ft_parse(fa, "{\"$or\":[]}")}};
    /* The filter is checked before the collection is looked up. */
    ck_assert_int_eq(vd_engine_execute(eng, &c, &r, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "count: filter: $or expects a non-empty list of filters");
    uint64_t id = 1;
    vd_request d = {.kind = VD_REQ_DELETE, .del = {.collection = "f", .ids = &id, .n_ids = 1,
                                                   .filter = ft_parse(fa, "{\"n\":1}")}};
    ck_assert_int_eq(vd_engine_execute(eng, &d, &r, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "delete: give ids or a filter, not both");
    vd_request p = {.kind = VD_REQ_CREATE_PINDEX, .pindex = {.collection = "f"}};
    ck_assert_int_eq(vd_engine_execute(eng, &p, &r, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "create_payload_index: no field named");
    vd_request p2 = {.kind = VD_REQ_DROP_PINDEX, .pindex = {.collection = "f", .field = "x"}};
    ck_assert_int_eq(vd_engine_execute(eng, &p2, &r, &e), VD_NOTFOUND);
    ck_assert_str_eq(e.msg, "drop_payload_index f: no payload index on field x");
}
END_TEST

Suite *engine_filter_suite(void)
{
    Suite *s = suite_create("engine_filter");
    TCase *t = tcase_create("filter");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, create_payload_index_answers_once_built);
    tcase_add_test(t, search_count_delete_with_a_filter);
    tcase_add_test(t, the_engine_refuses_bad_filters_first);
    suite_add_tcase(s, t);
    return s;
}
