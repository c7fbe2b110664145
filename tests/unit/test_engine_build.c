/* tests/unit/test_engine_build.c: vd_engine_build from arrays (the embedded db.build's path;
 * `vectord build` feeds it from files, tests/unit/test_build_cmd.c): the collection it
 * writes is served as built and survives a reopen, every refusal comes before anything is
 * written with a message naming the row or id, replace swaps a collection in one commit,
 * string ids make a str collection whose hits are named after a reopen,
 * progress reports both phases, and a source's callbacks are called in order. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/vd_engine.h"
#include "tests/unit/storage_testlib.h"

static char dir[64];
static vd_store *st;
static vd_engine *eng;

static void open_engine(void)
{
    vd_store_options opt = {.create = 1, .n_threads = 2};
    vd_err e;
    ck_assert_msg(vd_store_open(dir, &opt, &st, &e) == VD_OK, "%s", e.msg);
    ck_assert_int_eq(vd_engine_new(st, NULL, &eng, &e), VD_OK);
}

static void close_engine(void)
{
    vd_engine_free(eng);
    vd_store_close(st);
    eng = NULL;
    st = NULL;
}

static void setup(void)
{
    st_tmpdir(dir);
    open_engine();
}

static void teardown(void)
{
    close_engine();
    st_rmtree(dir);
}

#define N 3000
#define DIM 8
static float vecs[N * DIM];
static uint64_t ids[N];

static void fill(void)
{
    srand(5);
    for (size_t i = 0; i < N; i++) {
        ids[i] = 1000 + 3 * i;
        for (size_t d = 0; d < DIM; d++)
            vecs[i * DIM + d] = (float)rand() / RAND_MAX - 0.5f;
    }
}

static vd_build_req req_of(const char *name)
{
    vd_build_req b = {.n = N, .ids = ids, .vectors = vecs, .threads = 2};
    snprintf(b.params.name, sizeof b.params.name, "%s", name);
    b.params.dim = DIM;
    b.params.metric = VD_METRIC_L2;
    b.params.ef_search = 64;
    return b;
}

/* The nearest neighbour of point i, through the engine. */
static uint64_t nearest(const char *name, size_t i)
{
    vd_request q = {.kind = VD_REQ_SEARCH};
    q.search =
        (vd_search_req){.collection = name, .queries = vecs + i * DIM, .n_floats = DIM, .k = 1};
    vd_result r;
    vd_err e;
    ck_assert_msg(vd_engine_read(eng, &q, &r, &e) == VD_OK, "%s", e.msg);
    uint64_t id = r.search.ids[0];
    vd_result_free(&r);
    return id;
}

static size_t phases[3], last_done[3];
static void on_progress(void *ctx, vd_build_phase ph, size_t done, size_t total)
{
    ck_assert_ptr_eq(ctx, phases);
    ck_assert(ph == VD_BUILD_LINKING || ph == VD_BUILD_WRITING);
    ck_assert_uint_le(done, total);
    if (ph == VD_BUILD_LINKING) ck_assert_uint_eq(total, N);
    ck_assert_msg(phases[VD_BUILD_WRITING] == 0 || ph == VD_BUILD_WRITING, "phases in order");
    phases[ph]++;
    last_done[ph] = done;
}

START_TEST(arrays_become_a_collection_served_as_built_and_kept)
{
    fill();
    vd_build_req b = req_of("arr");
    b.progress = on_progress;
    b.progress_ctx = phases;
    const char *pl = "{\"t\":1}";
    const uint8_t *pls[N] = {0};
    uint32_t lens[N] = {0};
    pls[7] = (const uint8_t *)pl;
    lens[7] = (uint32_t)strlen(pl);
    b.payloads = pls;
    b.payload_lens = lens;
    vd_build_result res;
    vd_err e;
    ck_assert_msg(vd_engine_build(eng, &b, &res, &e) == VD_OK, "%s", e.msg);
    ck_assert_str_eq(res.info.params.name, "arr");
    ck_assert(res.info.count == N && res.info.params.dim == DIM && res.info.params.m == 16 &&
              res.info.params.ef_construction == 200 && res.info.params.ef_search == 64);
    ck_assert(res.link_ns > 0 && res.write_ns > 0);
    ck_assert(phases[VD_BUILD_LINKING] >= 2 && last_done[VD_BUILD_LINKING] == N);
    ck_assert(phases[VD_BUILD_WRITING] >= 1);
    size_t self = 0;
    for (size_t i = 0; i < N; i += 10)
        self += nearest("arr", i) == ids[i];
    ck_assert_uint_ge(self, N / 10 - 3);
    close_engine(); /* a reopen loads the graph as stored */
    open_engine();
    ck_assert_uint_eq(nearest("arr", 7), ids[7]);
    vd_request g = {.kind = VD_REQ_GET};
    g.get = (vd_get_req){.collection = "arr", .ids = &ids[7], .n_ids = 1, .with_payloads = 1};
    vd_result r;
    ck_assert_int_eq(vd_engine_read(eng, &g, &r, &e), VD_OK);
    ck_assert(r.get.found[0] && r.get.payloads[0].len == lens[7]);
    vd_result_free(&r);
}
END_TEST

static void refused(const vd_build_req *b, vd_status s, const char *msg)
{
    vd_build_result res;
    vd_err e;
    ck_assert_int_eq(vd_engine_build(eng, b, &res, &e), s);
    ck_assert_str_eq(e.msg, msg);
    vd_collection_info *list = NULL;
    size_t n = 99;
    ck_assert_int_eq(vd_store_list(st, &list, &n, NULL), VD_OK);
    for (size_t i = 0; i < n; i++) /* a refusal writes nothing */
        ck_assert_msg(strcmp(list[i].params.name, b->params.name) != 0 || list[i].count == 5,
                      "%s was written", b->params.name);
    vd_free(list);
}

START_TEST(bad_input_is_refused_naming_the_row_before_anything_is_written)
{
    fill();
    vd_build_req b = req_of("bad");
    vecs[1234 * DIM + 5] = NAN;
    refused(&b, VD_INVALID, "build bad: row 1234: component 5 is NaN");
    vecs[1234 * DIM + 5] = 0;
    ids[2999] = ids[17];
    refused(&b, VD_INVALID, "build bad: id 1051 appears more than once (rows 17 and 2999)");
    ids[2999] = 1000 + 3 * 2999;
    b.params.m = 1;
    refused(&b, VD_INVALID, "build bad: m 1 is outside 2..128");
    b.params.m = 0;
    b.params.ef_search = 20000;
    refused(&b, VD_INVALID, "build bad: ef_search 20000 is outside 1..10000");
    b.params.ef_search = 0;
    b.params.dim = 0;
    refused(&b, VD_INVALID, "build bad: dim 0 is outside 1..4096");
    b.params.dim = DIM;
    b.n = 0;
    refused(&b, VD_INVALID, "build bad: no vectors to build from");
    b = req_of("no/slash");
    refused(&b, VD_INVALID,
            "build: collection name has character 0x2f at position 2; allowed: A-Z a-z "
            "0-9 _ -");
    b = req_of("cos");
    b.params.metric = VD_METRIC_COSINE;
    memset(vecs + 9 * DIM, 0, DIM * sizeof(float));
    refused(&b, VD_INVALID, "build cos: row 9: zero vector has no direction for cosine");
}
END_TEST

START_TEST(an_existing_collection_is_replaced_only_when_asked)
{
    fill();
    vd_request c = {.kind = VD_REQ_CREATE};
    c.create = (vd_create_req){.name = "old", .dim = DIM};
    vd_result r;
    vd_err e;
    ck_assert_int_eq(vd_engine_execute(eng, &c, &r, &e), VD_OK);
    vd_result_free(&r);
    vd_request u = {.kind = VD_REQ_UPSERT};
    u.upsert = (vd_upsert_req){
        .collection = "old", .ids = ids, .n_ids = 5, .vectors = vecs, .n_floats = 5 * DIM};
    ck_assert_int_eq(vd_engine_execute(eng, &u, &r, &e), VD_OK);
    vd_result_free(&r);
    vd_build_req b = req_of("old");
    refused(&b, VD_EXISTS,
            "build old: collection old already exists (--replace, or replace=True in Python, "
            "builds it anew)");
    b.replace = 1;
    vd_build_result res;
    ck_assert_msg(vd_engine_build(eng, &b, &res, &e) == VD_OK, "%s", e.msg);
    ck_assert_uint_eq(res.info.count, N);
    ck_assert_uint_eq(nearest("old", 2000), ids[2000]);
}
END_TEST

/* N string ids "p0000".."p2999" packed into bytes/ends (5 bytes each). */
static uint8_t sid_bytes[N * 5 + 1];
static uint32_t sid_ends[N];

static vd_str_ids str_ids_of(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char tmp[8];
        snprintf(tmp, sizeof tmp, "p%04zu", i);
        memcpy(sid_bytes + 5 * i, tmp, 5);
        sid_ends[i] = (uint32_t)(5 * (i + 1));
    }
    return (vd_str_ids){.bytes = sid_bytes, .ends = sid_ends, .n = n, .n_bytes = 5 * n};
}

START_TEST(string_ids_build_a_str_collection_under_internal_keys)
{
    fill();
    vd_str_ids sids = str_ids_of(N);
    vd_build_req b = req_of("sbad");
    b.str_ids = &sids; /* an int collection given string ids, and the reverse */
    refused(&b, VD_INVALID, "build sbad: a collection with int ids needs integer ids");
    b.params.id_type = VD_ID_STR;
    refused(&b, VD_INVALID, "build sbad: a collection with str ids needs string ids");
    b.ids = NULL;
    b.n = N - 1;
    refused(&b, VD_INVALID, "build sbad: 3000 string ids for 2999 vectors");
    b.n = N;
    memcpy(sid_bytes + 5 * 2999, "p0017", 5);
    refused(&b, VD_INVALID,
            "build sbad: string id \"p0017\" appears more than once (rows 17 and 2999)");
    sids = str_ids_of(N);
    b = req_of("str");
    b.ids = NULL;
    b.str_ids = &sids;
    b.params.id_type = VD_ID_STR;
    vd_build_result res;
    vd_err e;
    ck_assert_msg(vd_engine_build(eng, &b, &res, &e) == VD_OK, "%s", e.msg);
    ck_assert(res.info.count == N && res.info.params.id_type == VD_ID_STR);
    close_engine(); /* the mapping is stored: a reopen names the hits */
    open_engine();
    vd_request q = {.kind = VD_REQ_SEARCH};
    q.search = (vd_search_req){
        .collection = "str", .queries = vecs + 1234 * DIM, .n_floats = DIM, .k = 1};
    vd_result r;
    ck_assert_msg(vd_engine_read(eng, &q, &r, &e) == VD_OK, "%s", e.msg);
    ck_assert(r.search.ids == NULL && r.search.str_id_ends[0] == 5);
    ck_assert(memcmp(r.search.str_ids, "p1234", 5) == 0);
    vd_result_free(&r);
    vd_request g = {.kind = VD_REQ_GET};
    vd_str_ids one = {.bytes = (const uint8_t *)"p0042", .ends = (const uint32_t[]){5}, .n = 1,
                      .n_bytes = 5};
    g.get = (vd_get_req){.collection = "str", .str_ids = one, .with_vectors = 1};
    ck_assert_msg(vd_engine_read(eng, &g, &r, &e) == VD_OK, "%s", e.msg);
    ck_assert(r.get.found[0] && r.get.vectors[0] == vecs[42 * DIM]);
    vd_result_free(&r);
}
END_TEST

/* A source of rows: converted into the chunk buffer, released behind each chunk, finished
 * once before the write phase. */
typedef struct source {
    size_t next, released, finished;
} source;

static vd_status src_read(void *ctx, size_t first, size_t n, float *buf, const float **out,
                          vd_err *err)
{
    source *s = ctx;
    ck_assert_uint_eq(first, s->next);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_le(n, vd_build_chunk_rows(DIM, N));
    memcpy(buf, vecs + first * DIM, n * DIM * sizeof(float));
    s->next = first + n;
    *out = buf;
    return VD_OK;
}

static void src_release(void *ctx, size_t first, size_t n)
{
    ((source *)ctx)->released += n;
    (void)first;
}

static void src_finish(void *ctx)
{
    source *s = ctx;
    ck_assert_uint_eq(s->next, N);
    s->finished++;
}

START_TEST(a_row_source_is_read_in_chunks_released_and_finished)
{
    fill();
    ck_assert_uint_eq(vd_build_chunk_rows(DIM, N), N); /* 8 MiB holds them all */
    ck_assert_uint_eq(vd_build_chunk_rows(4096, 1000000), 512);
    ck_assert_uint_eq(vd_build_chunk_rows(4096, 3), 3);
    source s = {0};
    vd_build_req b = req_of("src");
    b.vectors = NULL;
    b.rows =
        (vd_build_rows){.read = src_read, .release = src_release, .finish = src_finish, .ctx = &s};
    vd_build_result res;
    vd_err e;
    ck_assert_msg(vd_engine_build(eng, &b, &res, &e) == VD_OK, "%s", e.msg);
    ck_assert(s.next == N && s.finished == 1 && s.released >= N);
    ck_assert_uint_eq(nearest("src", 100), ids[100]);
}
END_TEST

Suite *engine_build_suite(void)
{
    Suite *s = suite_create("engine_build");
    TCase *tc = tcase_create("build");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, arrays_become_a_collection_served_as_built_and_kept);
    tcase_add_test(tc, bad_input_is_refused_naming_the_row_before_anything_is_written);
    tcase_add_test(tc, an_existing_collection_is_replaced_only_when_asked);
    tcase_add_test(tc, string_ids_build_a_str_collection_under_internal_keys);
    tcase_add_test(tc, a_row_source_is_read_in_chunks_released_and_finished);
    suite_add_tcase(s, tc);
    return s;
}
