/* tests/unit/test_engine_ops.c: the engine on a real store, the way the daemon and the
 * embedded module call it - every operation's result, the checks with their exact
 * messages (one form for a missing collection across all operations), group commit through
 * prepare/commit/result, results whose arrays a caller may take, and allocation failure. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>

#include "engine/vd_engine.h"

static char dir[64];
static vd_store *st;
static vd_engine *eng;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void open_engine(const vd_engine_limits *lim)
{
    vd_store_options opt = {.create = 1, .n_threads = 1};
    vd_err e;
    ck_assert_msg(vd_store_open(dir, &opt, &st, &e) == VD_OK, "%s", e.msg);
    ck_assert_int_eq(vd_engine_new(st, lim, &eng, &e), VD_OK);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/vd-engine-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    vd_engine_limits lim = {.max_batch = 100, .max_k = 50, .max_response_bytes = 1 << 20};
    open_engine(&lim);
}

static void teardown(void)
{
    vd_engine_free(eng);
    vd_store_close(st);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs req through vd_engine_execute; on VD_OK *out holds the result (caller frees). */
static vd_status run(const vd_request *req, vd_result *out, vd_err *e)
{
    return vd_engine_execute(eng, req, out, e);
}

static void ok(const vd_request *req)
{
    vd_result r;
    vd_err e;
    ck_assert_msg(run(req, &r, &e) == VD_OK, "%s: %s", vd_request_name(req->kind), e.msg);
    vd_result_free(&r);
}

/* The request fails with `s` and exactly `msg`. */
static void refused(const vd_request *req, vd_status s, const char *msg)
{
    vd_result r;
    vd_err e;
    ck_assert_int_eq(run(req, &r, &e), s);
    ck_assert_str_eq(e.msg, msg);
    ck_assert_int_eq(r.kind, VD_REQ_NONE); /* zeroed */
    vd_result_free(&r);
}

static vd_request create_req(const char *name, uint32_t dim, vd_metric metric)
{
    vd_request q = {.kind = VD_REQ_CREATE};
    q.create = (vd_create_req){.name = name, .dim = dim, .metric = metric};
    return q;
}

/* Points 1..n at (i, 0, 0, 0), payload {"i":i}. */
static void fill_line(const char *name, size_t n)
{
    uint64_t ids[64];
    float v[64 * 4] = {0};
    char text[64][16];
    vd_bytes pl[64];
    for (size_t i = 0; i < n; i++) {
        ids[i] = i + 1;
        v[i * 4] = (float)(i + 1);
        int len = snprintf(text[i], sizeof text[i], "{\"i\":%zu}", i + 1);
        pl[i] = (vd_bytes){(size_t)len, (const uint8_t *)text[i]};
    }
    vd_request q = {.kind = VD_REQ_UPSERT};
    q.upsert = (vd_upsert_req){.collection = name,
                               .ids = ids,
                               .n_ids = n,
                               .vectors = v,
                               .n_floats = n * 4,
                               .dim = 4,
                               .payloads = pl,
                               .n_payloads = n};
    vd_result r;
    vd_err e;
    ck_assert_msg(run(&q, &r, &e) == VD_OK, "%s", e.msg);
    ck_assert_uint_eq(r.n, n);
    vd_result_free(&r);
}

static vd_request search_req(const char *name, const float *q, size_t n_floats, uint32_t k)
{
    vd_request r = {.kind = VD_REQ_SEARCH};
    r.search = (vd_search_req){.collection = name, .queries = q, .n_floats = n_floats, .k = k};
    return r;
}

START_TEST(collections_are_created_listed_counted_and_dropped)
{
    vd_request q = create_req("docs", 4, VD_METRIC_L2);
    q.create.ef_search = 40;
    vd_result r;
    vd_err e;
    ck_assert_int_eq(run(&q, &r, &e), VD_OK);
    ck_assert_str_eq(r.info.params.name, "docs");
    ck_assert(r.info.params.dim == 4 && r.info.params.m == 16 && r.info.params.ef_search == 40);
    ck_assert_uint_gt(r.info.created_unix_s, 0);
    vd_result_free(&r);
    refused(&q, VD_EXISTS, "create_collection: collection docs already exists");
    fill_line("docs", 5);
    ok(&(vd_request){.kind = VD_REQ_CREATE, .create = {.name = "b", .dim = 2}});

    ck_assert_int_eq(run(&(vd_request){.kind = VD_REQ_LIST}, &r, &e), VD_OK);
    ck_assert_uint_eq(r.list.n, 2);
    ck_assert_str_eq(r.list.items[0].params.name, "b");
    ck_assert_uint_eq(r.list.items[1].count, 5);
    vd_result_free(&r);
    ck_assert_int_eq(
        run(&(vd_request){.kind = VD_REQ_COUNT, .count = {.collection = "docs"}}, &r, &e), VD_OK);
    ck_assert_uint_eq(r.n, 5);
    ck_assert_int_eq(run(&(vd_request){.kind = VD_REQ_INFO, .name = "docs"}, &r, &e), VD_OK);
    ck_assert_uint_eq(r.info.count, 5);
    ck_assert_int_eq(run(&(vd_request){.kind = VD_REQ_STATS}, &r, &e), VD_OK);
    ck_assert(r.stats.collections == 2 && r.stats.points == 5 && r.stats.map_bytes > 0);
    ok(&(vd_request){.kind = VD_REQ_DROP, .name = "b"});
    refused(&(vd_request){.kind = VD_REQ_DROP, .name = "b"}, VD_NOTFOUND,
            "drop_collection: collection b does not exist");
}
END_TEST

START_TEST(search_fills_rows_pads_and_fetches_payloads)
{
    ok(&(vd_request){.kind = VD_REQ_CREATE, .create = {.name = "line", .dim = 4}});
    fill_line("line", 3);
    float q[8] = {2.2f, 0, 0, 0, 9, 0, 0, 0};
    vd_request s = search_req("line", q, 8, 4);
    s.search.with_payloads = 1;
    vd_result r;
    vd_err e;
    ck_assert_int_eq(run(&s, &r, &e), VD_OK);
    ck_assert(r.search.nq == 2 && r.search.k == 4);
    ck_assert(r.search.ids[0] == 2 && r.search.ids[1] == 3 && r.search.ids[2] == 1);
    ck_assert(r.search.ids[3] == VD_ID_NONE && isinf(r.search.distances[3]));
    ck_assert(r.search.ids[4] == 3);
    ck_assert_float_eq_tol(r.search.distances[4], 36.0f, 1e-4f);
    ck_assert_ptr_nonnull(r.snapshot); /* the payload bytes borrow from it */
    ck_assert(r.search.payloads[0].len == 7 && !memcmp(r.search.payloads[0].data, "{\"i\":2}", 7));
    ck_assert_uint_eq(r.search.payloads[3].len, 0);
    /* a caller may take an array: it is then theirs to free */
    uint64_t *ids = r.search.ids;
    r.search.ids = NULL;
    vd_result_free(&r);
    ck_assert(ids[0] == 2);
    vd_free(ids);
    /* without payloads no snapshot is held */
    s.search.with_payloads = 0;
    ck_assert_int_eq(run(&s, &r, &e), VD_OK);
    ck_assert_ptr_null(r.snapshot);
    ck_assert_ptr_null(r.search.payloads);
    vd_result_free(&r);
}
END_TEST

START_TEST(search_checks_k_ef_dims_and_rows)
{
    ok(&(vd_request){.kind = VD_REQ_CREATE, .create = {.name = "d", .dim = 4}});
    fill_line("d", 2);
    float q[8] = {1};
    vd_request s = search_req("d", q, 8, 0);
    refused(&s, VD_INVALID, "search: k is 0; k must be 1..50");
    s.search.k = 51;
    refused(&s, VD_INVALID, "search: k 51 exceeds max_k 50");
    s.search.k = 1;
    s.search.ef = 20000;
    refused(&s, VD_INVALID, "search: ef 20000 is outside 1..10000");
    s.search.ef = 0;
    s.search.dim = 8; /* twice the dim: one query of the wrong dim, not two queries */
    refused(&s, VD_INVALID, "search: query has 8 dims, collection d expects 4");
    s.search.dim = 4;
    s.search.n_floats = 6;
    refused(&s, VD_INVALID,
            "search: queries hold 24 bytes, not a multiple of 16 (4 dims x 4 bytes, collection d)");
    s.search.dim = 0; /* not said: rows of the collection's dim */
    s.search.n_floats = 8;
    ok(&s);
    s.search.n_floats = 0;
    refused(&s, VD_INVALID, "search: no queries (the queries array is empty)");
    float nan_q[4] = {NAN, 0, 0, 0};
    refused(&(vd_request){.kind = VD_REQ_SEARCH,
                          .search = {.collection = "d", .queries = nan_q, .n_floats = 4, .k = 1}},
            VD_INVALID, "search d: query: component 0 is NaN");
    float *many = calloc(101 * 4, sizeof *many);
    refused(&(vd_request){.kind = VD_REQ_SEARCH,
                          .search = {.collection = "d", .queries = many, .n_floats = 404, .k = 1}},
            VD_INVALID, "search: 101 queries exceed max_batch 100");
    free(many);
}
END_TEST

START_TEST(a_result_too_large_is_refused_before_the_work)
{
    vd_engine_free(eng);
    vd_engine_limits lim = {.max_response_bytes = 4096};
    ck_assert_int_eq(vd_engine_new(st, &lim, &eng, NULL), VD_OK);
    ck_assert_uint_eq(vd_engine_limits_of(eng)->max_k, VD_K_MAX);
    ok(&(vd_request){.kind = VD_REQ_CREATE, .create = {.name = "d", .dim = 4}});
    fill_line("d", 2);
    float q[4] = {1};
    refused(&(vd_request){.kind = VD_REQ_SEARCH,
                          .search = {.collection = "d", .queries = q, .n_floats = 4, .k = 300}},
            VD_FULL,
            "search: the response would hold 3600 bytes, over max_frame_bytes 4096; ask for less "
            "per request");
}
END_TEST

START_TEST(get_returns_found_vectors_and_payloads_in_request_order)
{
    ok(&(vd_request){.kind = VD_REQ_CREATE, .create = {.name = "g", .dim = 4}});
    fill_line("g", 3);
    uint64_t ids[4] = {3, 99, 1, 3}; /* duplicates are fine in a get */
    vd_request g = {.kind = VD_REQ_GET};
    g.get = (vd_get_req){
        .collection = "g", .ids = ids, .n_ids = 4, .with_vectors = 1, .with_payloads = 1};
    vd_result r;
    vd_err e;
    ck_assert_int_eq(run(&g, &r, &e), VD_OK);
    ck_assert(r.get.n == 4 && r.get.dim == 4);
    ck_assert(r.get.found[0] && !r.get.found[1] && r.get.found[2] && r.get.found[3]);
    ck_assert(r.get.vectors[0] == 3 && r.get.vectors[4] == 0 && r.get.vectors[8] == 1);
    ck_assert_uint_eq(r.get.payloads[1].len, 0);
    ck_assert(r.get.payloads[2].len == 7 && !memcmp(r.get.payloads[2].data, "{\"i\":1}", 7));
    vd_result_free(&r);
    g.get.n_ids = 0;
    refused(&g, VD_INVALID, "get: empty batch (no ids)");
}
END_TEST

START_TEST(writes_check_sizes_against_the_collection)
{
    ok(&(vd_request){.kind = VD_REQ_CREATE, .create = {.name = "w", .dim = 4}});
    uint64_t ids[2] = {1, 2};
    float v[8] = {1, 0, 0, 0, 2, 0, 0, 0};
    vd_bytes pl[1] = {{2, (const uint8_t *)"{}"}};
    vd_request u = {.kind = VD_REQ_UPSERT};
    u.upsert =
        (vd_upsert_req){.collection = "w", .ids = ids, .n_ids = 2, .vectors = v, .n_floats = 7};
    refused(&u, VD_INVALID,
            "upsert: vectors hold 28 bytes, 2 ids x 4 dims x 4 bytes = 32 expected (collection w)");
    u.upsert.n_floats = 8;
    u.upsert.dim = 3;
    refused(&u, VD_INVALID, "upsert: vectors have 3 dims, collection w expects 4");
    u.upsert.dim = 0;
    u.upsert.payloads = pl;
    u.upsert.n_payloads = 1;
    refused(&u, VD_INVALID,
            "upsert: 1 payloads for 2 ids (send none, or one per id; an empty payload means none)");
    u.upsert.n_payloads = 0;
    u.upsert.n_ids = 0;
    refused(&u, VD_INVALID, "upsert: empty batch (no ids)");
    u.upsert.n_ids = 101;
    refused(&u, VD_INVALID, "upsert: 101 ids exceed max_batch 100");
    vd_request c = create_req("bad name!", 4, VD_METRIC_L2);
    refused(&c, VD_INVALID,
            "create_collection: collection name has character 0x20 at position 3; allowed: A-Z "
            "a-z 0-9 _ -");
    c = create_req("x", 5000, VD_METRIC_L2);
    refused(&c, VD_INVALID, "create_collection x: dim 5000 is outside 1..4096");
    c = create_req("x", 4, VD_METRIC_L2);
    c.create.ef_construction = 20000;
    refused(&c, VD_INVALID, "create_collection x: ef_construction 20000 is outside 1..10000");
    vd_request d = {.kind = VD_REQ_DELETE, .del = {.collection = "w", .ids = ids, .n_ids = 0}};
    refused(&d, VD_INVALID, "delete: empty batch (no ids)");
}
END_TEST

START_TEST(a_missing_collection_is_one_message_for_every_operation)
{
    uint64_t id = 1;
    float v[4] = {0};
    const vd_request reqs[] = {
        {.kind = VD_REQ_INFO, .name = "nope"},
        {.kind = VD_REQ_COUNT, .count = {.collection = "nope"}},
        {.kind = VD_REQ_DROP, .name = "nope"},
        {.kind = VD_REQ_GET, .get = {.collection = "nope", .ids = &id, .n_ids = 1}},
        {.kind = VD_REQ_SEARCH,
         .search = {.collection = "nope", .queries = v, .n_floats = 4, .k = 1}},
        {.kind = VD_REQ_UPSERT,
         .upsert = {.collection = "nope", .ids = &id, .n_ids = 1, .vectors = v, .n_floats = 4}},
        {.kind = VD_REQ_DELETE, .del = {.collection = "nope", .ids = &id, .n_ids = 1}},
    };
    for (size_t i = 0; i < VD_ARRAY_LEN(reqs); i++) {
        char want[128];
        snprintf(want, sizeof want, "%s: collection nope does not exist",
                 vd_request_name(reqs[i].kind));
        refused(&reqs[i], VD_NOTFOUND, want);
    }
}
END_TEST

START_TEST(writes_prepared_together_commit_in_one_group)
{
    ok(&(vd_request){.kind = VD_REQ_CREATE, .create = {.name = "grp", .dim = 4}});
    uint64_t a[2] = {1, 2}, b[1] = {3}, dup[2] = {5, 5};
    float v[8] = {1, 0, 0, 0, 2, 0, 0, 0};
    vd_request reqs[3] = {
        {.kind = VD_REQ_UPSERT,
         .upsert = {.collection = "grp", .ids = a, .n_ids = 2, .vectors = v, .n_floats = 8}},
        {.kind = VD_REQ_UPSERT, /* refused by the store inside the group, alone */
         .upsert = {.collection = "grp", .ids = dup, .n_ids = 2, .vectors = v, .n_floats = 8}},
        {.kind = VD_REQ_DELETE, .del = {.collection = "grp", .ids = b, .n_ids = 1}},
    };
    vd_write w[3], *ws[3];
    vd_err e;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(vd_engine_write_prepare(eng, &reqs[i], &w[i], &e), VD_OK);
        ck_assert(!vd_write_ends_group(&w[i]));
        ws[i] = &w[i];
    }
    ck_assert_int_eq(vd_engine_write_commit(eng, ws, 3, &e), VD_OK);
    vd_result r;
    ck_assert_int_eq(vd_engine_write_result(eng, &w[0], &r, &e), VD_OK);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_int_eq(vd_engine_write_result(eng, &w[1], &r, &e), VD_INVALID);
    ck_assert_msg(strncmp(e.msg, "upsert", 6) == 0 && strstr(e.msg, "5"), "%s", e.msg);
    ck_assert_int_eq(vd_engine_write_result(eng, &w[2], &r, &e), VD_OK);
    ck_assert_uint_eq(r.n, 0); /* id 3 did not exist */
    vd_result c;
    ck_assert_int_eq(
        run(&(vd_request){.kind = VD_REQ_COUNT, .count = {.collection = "grp"}}, &c, &e), VD_OK);
    ck_assert_uint_eq(c.n, 2);
    /* a create or drop ends its group */
    vd_write cw;
    vd_request cr = create_req("next", 4, VD_METRIC_IP);
    ck_assert_int_eq(vd_engine_write_prepare(eng, &cr, &cw, &e), VD_OK);
    ck_assert(vd_write_ends_group(&cw));
    vd_write_release(&cw);
}
END_TEST

START_TEST(every_allocation_failure_of_a_search_is_reported_not_crashed)
{
    ok(&(vd_request){.kind = VD_REQ_CREATE, .create = {.name = "oom", .dim = 4}});
    fill_line("oom", 8);
    float q[8] = {3, 0, 0, 0, 5, 0, 0, 0};
    vd_request s = search_req("oom", q, 8, 3);
    s.search.with_payloads = 1;
    int succeeded = 0;
    for (long fail = 0; fail < 64 && !succeeded; fail++) {
        vd_result r;
        vd_err e;
        vd_alloc_fail_after(fail);
        vd_status st_ = run(&s, &r, &e);
        vd_alloc_fail_after(-1);
        if (st_ == VD_OK) {
            succeeded = 1;
            ck_assert(r.search.ids[0] == 3 && r.search.ids[3] == 5);
        } else {
            ck_assert_msg(st_ == VD_NOMEM, "status %d: %s", st_, e.msg);
            ck_assert_msg(strncmp(e.msg, "search", 6) == 0, "%s", e.msg);
        }
        vd_result_free(&r);
    }
    ck_assert(succeeded);
}
END_TEST

/* A host's parallel-for that runs the tasks backwards on this thread: the rows each task
 * writes, and the error chosen among failing tasks, must not depend on the order. */
static size_t tasks_run;
static void backwards(void *host, size_t n, void (*task)(void *, size_t), void *ctx)
{
    ck_assert_ptr_eq(host, &tasks_run);
    for (size_t i = n; i-- > 0;) task(ctx, i);
    tasks_run += n;
}

START_TEST(a_lent_parallel_for_runs_a_search_in_tasks_with_the_serial_answer)
{
    ok(&(vd_request){.kind = VD_REQ_CREATE, .create = {.name = "par", .dim = 4}});
    fill_line("par", 40);
    float q[40 * 4] = {0};
    for (size_t i = 0; i < 40; i++) q[i * 4] = (float)i + 0.9f;
    vd_request s = search_req("par", q, 160, 3);
    vd_result serial, par;
    vd_err e;
    ck_assert_int_eq(run(&s, &serial, &e), VD_OK);
    vd_engine_set_parallel(eng, backwards, &tasks_run, 2);
    tasks_run = 0;
    ck_assert_int_eq(run(&s, &par, &e), VD_OK);
    ck_assert_uint_eq(tasks_run, 2); /* one per thread, taking queries one at a time */
    ck_assert_int_eq(memcmp(serial.search.ids, par.search.ids, 120 * sizeof(uint64_t)), 0);
    ck_assert_int_eq(memcmp(serial.search.distances, par.search.distances, 120 * sizeof(float)),
                     0);
    vd_result_free(&serial);
    vd_result_free(&par);
    q[7 * 4 + 1] = NAN; /* in two tasks: the lowest query is reported, as serially */
    q[31 * 4 + 2] = INFINITY;
    refused(&s, VD_INVALID, "search par: query 7: query: component 1 is NaN");
    tasks_run = 0;
    vd_request one = search_req("par", q, 4, 3); /* one query: on the caller's thread */
    ok(&one);
    ck_assert_uint_eq(tasks_run, 0);
    q[7 * 4 + 1] = q[31 * 4 + 2] = 0;
    int succeeded = 0; /* every allocation failure, the tasks' own included, is reported */
    for (long fail = 0; fail < 64 && !succeeded; fail++) {
        vd_result r;
        vd_alloc_fail_after(fail);
        vd_status st_ = run(&s, &r, &e);
        vd_alloc_fail_after(-1);
        succeeded = st_ == VD_OK;
        if (!succeeded) ck_assert_msg(st_ == VD_NOMEM && !strncmp(e.msg, "search", 6), "%s", e.msg);
        vd_result_free(&r);
    }
    ck_assert(succeeded);
}
END_TEST

Suite *engine_ops_suite(void)
{
    Suite *s = suite_create("engine_ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, collections_are_created_listed_counted_and_dropped);
    tcase_add_test(tc, search_fills_rows_pads_and_fetches_payloads);
    tcase_add_test(tc, search_checks_k_ef_dims_and_rows);
    tcase_add_test(tc, a_result_too_large_is_refused_before_the_work);
    tcase_add_test(tc, get_returns_found_vectors_and_payloads_in_request_order);
    tcase_add_test(tc, writes_check_sizes_against_the_collection);
    tcase_add_test(tc, a_missing_collection_is_one_message_for_every_operation);
    tcase_add_test(tc, writes_prepared_together_commit_in_one_group);
    tcase_add_test(tc, every_allocation_failure_of_a_search_is_reported_not_crashed);
    tcase_add_test(tc, a_lent_parallel_for_runs_a_search_in_tasks_with_the_serial_answer);
    suite_add_tcase(s, tc);
    return s;
}
