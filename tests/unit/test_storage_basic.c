/* tests/unit/test_storage_basic.c: the write/read/reopen cycle: reopen equality (searches,
 * counts, payloads, params), group commit of mixed ops, upsert replacement, snapshots,
 * listing, import of a prebuilt index, and the JSON/name validators. */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/vd_storage.h"
#include "tests/unit/storage_testlib.h"

#define K 10

typedef struct search_dump {
    size_t n_queries;
    vd_hit *hits; /* n_queries * K */
    uint32_t *n;
} search_dump;

static void dump_searches(vd_store *st, const char *name, uint32_t dim, size_t n_queries,
                          search_dump *d)
{
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, name, &c, NULL), VD_OK);
    d->n_queries = n_queries;
    d->hits = calloc(n_queries * K, sizeof *d->hits);
    d->n = calloc(n_queries, sizeof *d->n);
    float *q = malloc(dim * sizeof *q);
    for (size_t i = 0; i < n_queries; i++) {
        st_fill(q, dim, 777000 + i);
        vd_err e;
        ck_assert_int_eq(vd_index_search(vd_collection_index(c), q, K, 40, d->hits + i * K,
                                         &d->n[i], &e), VD_OK);
    }
    free(q);
    vd_collection_release(c);
}

static void dumps_equal(const search_dump *a, const search_dump *b)
{
    ck_assert_uint_eq(a->n_queries, b->n_queries);
    for (size_t i = 0; i < a->n_queries; i++) {
        ck_assert_uint_eq(a->n[i], b->n[i]);
        for (uint32_t j = 0; j < a->n[i]; j++) {
            ck_assert_uint_eq(a->hits[i * K + j].id, b->hits[i * K + j].id);
            ck_assert(a->hits[i * K + j].distance == b->hits[i * K + j].distance);
        }
    }
}

static void dump_free(search_dump *d)
{
    free(d->hits);
    free(d->n);
}

static uint64_t count_of(vd_store *st, const char *name)
{
    vd_collection *c = NULL;
    if (vd_store_acquire(st, name, &c, NULL) != VD_OK) return UINT64_MAX;
    vd_collection_info info;
    vd_collection_info_get(c, &info);
    vd_collection_release(c);
    return info.count;
}

/* 1 if present (and then checks vector + payload), 0 if absent. */
static int has_point(vd_store *st, const char *name, uint64_t id, int with_payload)
{
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, name, &c, NULL), VD_OK);
    uint32_t dim = vd_collection_params_of(c)->dim;
    vd_snapshot *s = NULL;
    ck_assert_int_eq(vd_snapshot_begin(st, &s, NULL), VD_OK);
    int found = -1;
    const float *v = NULL;
    const uint8_t *p = NULL;
    size_t plen = 99;
    vd_err e = {0};
    ck_assert_msg(vd_snapshot_get(s, c, id, &found, &v, &p, &plen, &e) == VD_OK, "%s", e.msg);
    if (found) {
        float *want = malloc(dim * sizeof *want);
        st_vector_of(id, dim, want);
        if (vd_collection_params_of(c)->metric == VD_METRIC_COSINE) {
            double n2 = 0;
            for (uint32_t i = 0; i < dim; i++) n2 += (double)want[i] * want[i];
            for (uint32_t i = 0; i < dim; i++) {
                ck_assert(fabsf(v[i] - (float)(want[i] / sqrt(n2))) < 1e-5f);
            }
        } else {
            ck_assert(memcmp(v, want, dim * sizeof *want) == 0);
        }
        free(want);
        if (with_payload) {
            char buf[64];
            int n = snprintf(buf, sizeof buf, "{\"id\":%" PRIu64 "}", id);
            ck_assert_uint_eq(plen, (size_t)n);
            ck_assert(memcmp(p, buf, plen) == 0);
        } else {
            ck_assert_ptr_null(p);
            ck_assert_uint_eq(plen, 0);
        }
    }
    vd_snapshot_end(s);
    vd_collection_release(c);
    return found;
}

static void assert_check_ok(vd_store *st)
{
    st_report r = {0};
    vd_err e = {0};
    vd_status s = vd_store_check(st, st_report_line, &r, &e);
    ck_assert_msg(s == VD_OK && r.n == 0, "check: %s (%d lines, first: %s)", e.msg, r.n,
                  r.first);
}

START_TEST(reopen_gives_identical_searches_counts_payloads_and_params)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    size_t n = st_scale(3000, 750); /* a multiple of the batch size */
    ck_assert_int_eq(st_create(st, "docs", 16, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_create(st, "cos", 8, VD_METRIC_COSINE), VD_OK);
    for (size_t b = 0; b < n; b += 250) {
        ck_assert_int_eq(st_upsert_range(st, "docs", b, 250, 16, 1), VD_OK);
        ck_assert_int_eq(st_upsert_range(st, "cos", b, 250, 8, 0), VD_OK);
    }
    /* Deletions and replacements so the reload meets tombstones and reused slots. */
    uint64_t del[100];
    for (int i = 0; i < 100; i++) del[i] = (uint64_t)i * 5;
    uint64_t done = 0;
    ck_assert_int_eq(st_delete(st, "docs", del, 100, &done), VD_OK);
    ck_assert_uint_eq(done, 100);
    ck_assert_int_eq(st_upsert_range(st, "docs", 1, 4, 16, 1), VD_OK); /* 1..4: replace */
    ck_assert_int_eq(st_upsert_range(st, "docs", n, 50, 16, 1), VD_OK);
    uint64_t want_docs = n - 100 + 50;
    ck_assert_uint_eq(count_of(st, "docs"), want_docs);

    search_dump d1, d2, c1, c2;
    dump_searches(st, "docs", 16, 30, &d1);
    dump_searches(st, "cos", 8, 30, &c1);
    assert_check_ok(st);
    vd_store_close(st);

    st = st_open(dir);
    ck_assert_uint_eq(count_of(st, "docs"), want_docs);
    ck_assert_uint_eq(count_of(st, "cos"), n);
    dump_searches(st, "docs", 16, 30, &d2);
    dump_searches(st, "cos", 8, 30, &c2);
    dumps_equal(&d1, &d2);
    dumps_equal(&c1, &c2);
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "docs", &c, NULL), VD_OK);
    const vd_collection_params *p = vd_collection_params_of(c);
    ck_assert_uint_eq(p->dim, 16);
    ck_assert_uint_eq(p->m, 8);
    ck_assert_uint_eq(p->ef_construction, 64);
    ck_assert_uint_eq(p->ef_search, 100);
    ck_assert_int_eq(p->metric, VD_METRIC_L2);
    vd_collection_release(c);
    for (uint64_t id = 0; id < n + 50; id += 13)
        ck_assert_int_eq(has_point(st, "docs", id, 1), !(id % 5 == 0 && id < 500));
    ck_assert_int_eq(has_point(st, "cos", 5, 0), 1);
    assert_check_ok(st);
    /* And it keeps working after the reload. */
    ck_assert_int_eq(st_upsert_range(st, "docs", 10 * n, 20, 16, 1), VD_OK);
    ck_assert_int_eq(has_point(st, "docs", 10 * n + 3, 1), 1);
    vd_store_close(st);
    dump_free(&d1);
    dump_free(&d2);
    dump_free(&c1);
    dump_free(&c2);
    st_rmtree(dir);
}
END_TEST

START_TEST(group_commit_applies_valid_ops_in_order_and_skips_invalid_ones)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    uint32_t dim = 8;
    float vecs[60 * 8];
    uint64_t ids_a[50], ids_b[20], ids_del[10], ids_late[10], ids_bad[3] = {500, 501, 502};
    for (int i = 0; i < 50; i++) ids_a[i] = (uint64_t)i + 1;
    for (int i = 0; i < 20; i++) ids_b[i] = (uint64_t)i + 1000;
    for (int i = 0; i < 10; i++) ids_del[i] = (uint64_t)i + 1;
    for (int i = 0; i < 10; i++) ids_late[i] = (uint64_t)i + 100;
    st_fill(vecs, 60 * 8, 42);
    const uint8_t *bad_pl[3] = {(const uint8_t *)"{}", (const uint8_t *)"{\"a\":}", NULL};
    uint32_t bad_len[3] = {2, 6, 0};

    vd_op ops[10];
    memset(ops, 0, sizeof ops);
    ops[0].kind = VD_OP_CREATE;
    strcpy(ops[0].params.name, "a");
    ops[0].params.dim = dim;
    ops[1] = (vd_op){.kind = VD_OP_UPSERT, .collection = "a", .ids = ids_a, .n = 50,
                     .vectors = vecs};
    ops[2].kind = VD_OP_CREATE;
    strcpy(ops[2].params.name, "b");
    ops[2].params.dim = dim;
    ops[2].params.metric = VD_METRIC_IP;
    ops[3] = (vd_op){.kind = VD_OP_UPSERT, .collection = "b", .ids = ids_b, .n = 20,
                     .vectors = vecs};
    ops[4] = (vd_op){.kind = VD_OP_DELETE, .collection = "a", .ids = ids_del, .n = 10};
    ops[5] = (vd_op){.kind = VD_OP_DROP, .collection = "b"};
    ops[6] = (vd_op){.kind = VD_OP_UPSERT, .collection = "b", .ids = ids_b, .n = 20,
                     .vectors = vecs};
    ops[7].kind = VD_OP_CREATE;
    strcpy(ops[7].params.name, "a");
    ops[7].params.dim = dim;
    ops[8] = (vd_op){.kind = VD_OP_UPSERT, .collection = "a", .ids = ids_bad, .n = 3,
                     .vectors = vecs, .payloads = bad_pl, .payload_lens = bad_len};
    ops[9] = (vd_op){.kind = VD_OP_UPSERT, .collection = "a", .ids = ids_late, .n = 10,
                     .vectors = vecs + 8};
    vd_err e = {0};
    ck_assert_msg(vd_store_write(st, ops, 10, &e) == VD_OK, "%s", e.msg);
    ck_assert_int_eq(ops[0].status, VD_OK);
    ck_assert_int_eq(ops[1].status, VD_OK);
    ck_assert_uint_eq(ops[1].n_done, 50);
    ck_assert_int_eq(ops[2].status, VD_OK);
    ck_assert_int_eq(ops[3].status, VD_OK);
    ck_assert_int_eq(ops[4].status, VD_OK);
    ck_assert_uint_eq(ops[4].n_done, 10);
    ck_assert_int_eq(ops[5].status, VD_OK);
    ck_assert_int_eq(ops[6].status, VD_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(ops[6].err.msg, "collection b does not exist"));
    ck_assert_int_eq(ops[7].status, VD_EXISTS);
    ck_assert_int_eq(ops[8].status, VD_INVALID);
    ck_assert_msg(strstr(ops[8].err.msg, "point 1 (id 501)") != NULL, "%s", ops[8].err.msg);
    ck_assert_int_eq(ops[9].status, VD_OK);

    for (int round = 0; round < 2; round++) {
        ck_assert_uint_eq(count_of(st, "a"), 50);
        ck_assert_uint_eq(count_of(st, "b"), UINT64_MAX);
        vd_collection *c = NULL;
        ck_assert_int_eq(vd_store_acquire(st, "a", &c, NULL), VD_OK);
        vd_snapshot *s = NULL;
        ck_assert_int_eq(vd_snapshot_begin(st, &s, NULL), VD_OK);
        int found;
        for (uint64_t id = 1; id <= 50; id++) {
            ck_assert_int_eq(vd_snapshot_get(s, c, id, &found, NULL, NULL, NULL, NULL), VD_OK);
            ck_assert_int_eq(found, id > 10);
        }
        for (int i = 0; i < 3; i++) { /* nothing of the invalid op */
            ck_assert_int_eq(vd_snapshot_get(s, c, ids_bad[i], &found, NULL, NULL, NULL, NULL),
                             VD_OK);
            ck_assert_int_eq(found, 0);
        }
        const float *v;
        ck_assert_int_eq(vd_snapshot_get(s, c, 100, &found, &v, NULL, NULL, NULL), VD_OK);
        ck_assert_int_eq(found, 1);
        ck_assert(memcmp(v, vecs + 8, dim * sizeof(float)) == 0);
        vd_snapshot_end(s);
        vd_collection_release(c);
        assert_check_ok(st);
        vd_store_close(st);
        st = st_open(dir);
    }
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(upsert_replaces_across_groups_and_within_one_group)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    uint32_t dim = 4;
    ck_assert_int_eq(st_create(st, "r", dim, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "r", 0, 40, dim, 0), VD_OK);
    float v1[4] = {1, 2, 3, 4}, v2[4] = {5, 6, 7, 8}, v3[4] = {9, 9, 9, 9};
    uint64_t id = 7;
    /* Same id in three ops of one group: the last one wins; twice the same vector too. */
    vd_op ops[4] = {
        {.kind = VD_OP_UPSERT, .collection = "r", .ids = &id, .n = 1, .vectors = v1},
        {.kind = VD_OP_UPSERT, .collection = "r", .ids = &id, .n = 1, .vectors = v2},
        {.kind = VD_OP_UPSERT, .collection = "r", .ids = &id, .n = 1, .vectors = v3},
        {.kind = VD_OP_UPSERT, .collection = "r", .ids = &id, .n = 1, .vectors = v3},
    };
    ck_assert_int_eq(vd_store_write(st, ops, 4, NULL), VD_OK);
    for (int round = 0; round < 3; round++) {
        vd_collection *c = NULL;
        ck_assert_int_eq(vd_store_acquire(st, "r", &c, NULL), VD_OK);
        ck_assert_uint_eq(vd_index_count(vd_collection_index(c)), 40);
        vd_snapshot *s = NULL;
        ck_assert_int_eq(vd_snapshot_begin(st, &s, NULL), VD_OK);
        int found;
        const float *v;
        ck_assert_int_eq(vd_snapshot_get(s, c, 7, &found, &v, NULL, NULL, NULL), VD_OK);
        ck_assert_int_eq(found, 1);
        ck_assert(memcmp(v, v3, sizeof v3) == 0);
        vd_hit h[1];
        uint32_t nh;
        ck_assert_int_eq(vd_index_search(vd_collection_index(c), v3, 1, 10, h, &nh, NULL),
                         VD_OK);
        ck_assert_uint_eq(h[0].id, 7);
        vd_snapshot_end(s);
        vd_collection_release(c);
        assert_check_ok(st);
        /* Churn so that freed slots are reclaimed and refilled. */
        for (int k = 0; k < 5; k++) {
            uint64_t del[10];
            for (int i = 0; i < 10; i++) del[i] = (uint64_t)(20 + i);
            ck_assert_int_eq(st_delete(st, "r", del, 10, NULL), VD_OK);
            ck_assert_int_eq(st_upsert_range(st, "r", 20, 10, dim, 0), VD_OK);
        }
        assert_check_ok(st);
        vd_store_close(st);
        st = st_open(dir);
    }
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(list_info_and_snapshots_of_dropped_collections)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "zeta", 3, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_create(st, "alpha", 5, VD_METRIC_IP), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "alpha", 0, 10, 5, 1), VD_OK);
    vd_collection_info *cs = NULL;
    size_t n = 0;
    ck_assert_int_eq(vd_store_list(st, &cs, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(cs[0].params.name, "alpha");
    ck_assert_uint_eq(cs[0].count, 10);
    ck_assert(cs[0].bytes_disk > 10 * 5 * 4);
    ck_assert(cs[0].bytes_memory > 0);
    ck_assert(cs[0].created_unix_s > 1600000000u);
    ck_assert_str_eq(cs[1].params.name, "zeta");
    vd_free(cs);
    vd_store_info si;
    ck_assert_int_eq(vd_store_info_get(st, &si, NULL), VD_OK);
    ck_assert_uint_eq(si.format_version, VD_STORAGE_FORMAT_VERSION);
    ck_assert(si.map_bytes >= si.file_bytes && si.file_bytes >= si.used_bytes);
    ck_assert(si.used_bytes > 0);

    /* A reader holding a collection keeps searching it after the drop. */
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "alpha", &c, NULL), VD_OK);
    vd_op drop = {.kind = VD_OP_DROP, .collection = "alpha"};
    ck_assert_int_eq(vd_store_write(st, &drop, 1, NULL), VD_OK);
    ck_assert_int_eq(drop.status, VD_OK);
    vd_collection *c2 = NULL;
    vd_err e;
    ck_assert_int_eq(vd_store_acquire(st, "alpha", &c2, &e), VD_NOTFOUND);
    ck_assert_str_eq(e.msg, "collection alpha does not exist");
    float q[5] = {1, 0, 0, 0, 0};
    vd_hit h[3];
    uint32_t nh;
    ck_assert_int_eq(vd_index_search(vd_collection_index(c), q, 3, 10, h, &nh, NULL), VD_OK);
    ck_assert_uint_eq(nh, 3);
    vd_snapshot *s = NULL;
    ck_assert_int_eq(vd_snapshot_begin(st, &s, NULL), VD_OK);
    int found = 1;
    ck_assert_int_eq(vd_snapshot_get(s, c, 3, &found, NULL, NULL, NULL, NULL), VD_OK);
    ck_assert_int_eq(found, 0);
    vd_snapshot_end(s);
    vd_collection_release(c);
    /* Re-creating the name gives a fresh, empty collection. */
    ck_assert_int_eq(st_create(st, "alpha", 5, VD_METRIC_IP), VD_OK);
    ck_assert_int_eq(vd_store_acquire(st, "alpha", &c, NULL), VD_OK);
    ck_assert_uint_eq(vd_index_count(vd_collection_index(c)), 0);
    vd_collection_release(c);
    assert_check_ok(st);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

static int n_progress;
static void on_progress(void *ctx, size_t done, size_t total)
{
    (void)ctx;
    ck_assert(done <= total);
    n_progress++;
}

START_TEST(import_adopts_a_prebuilt_index_in_one_transaction)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    uint32_t dim = 12;
    size_t n = st_scale(2000, 400);
    vd_index_params ip = {.dim = dim, .metric = VD_METRIC_COSINE, .m = 12,
                          .ef_construction = 80, .seed = 5};
    vd_index *ix = NULL;
    ck_assert_int_eq(vd_index_open(&ip, &ix, NULL), VD_OK);
    uint64_t *ids = malloc(n * sizeof *ids);
    float *vecs = malloc(n * dim * sizeof *vecs);
    const uint8_t **pl = calloc(n, sizeof *pl);
    uint32_t *lens = calloc(n, sizeof *lens);
    char (*pbuf)[32] = malloc(n * 32);
    for (size_t i = 0; i < n; i++) {
        ids[i] = i * 3 + 1;
        st_vector_of(ids[i], dim, vecs + i * dim);
        if (i % 2) {
            lens[i] = (uint32_t)snprintf(pbuf[i], 32, "{\"id\":%" PRIu64 "}", ids[i]);
            pl[i] = (const uint8_t *)pbuf[i];
        }
    }
    ck_assert_int_eq(vd_index_add_batch(ix, ids, vecs, n, 2, NULL, NULL, NULL), VD_OK);
    vd_collection_params p = {.name = "imp", .dim = dim, .metric = VD_METRIC_COSINE, .m = 12,
                              .ef_construction = 80, .ef_search = 50};
    /* Mismatched parameters and bad payloads are refused, leaving ix to the caller. */
    vd_collection_params bad = p;
    bad.m = 16;
    vd_err e;
    ck_assert_int_eq(vd_store_import(st, &bad, ix, n, ids, NULL, NULL, 0, NULL, NULL, &e),
                     VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "m 12"));
    const uint8_t *save = pl[0];
    pl[0] = (const uint8_t *)"[1]";
    lens[0] = 3;
    ck_assert_int_eq(vd_store_import(st, &p, ix, n, ids, pl, lens, 0, NULL, NULL, &e),
                     VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "point 0"));
    pl[0] = save;
    lens[0] = 0;
    n_progress = 0;
    ck_assert_msg(vd_store_import(st, &p, ix, n, ids, pl, lens, 0, on_progress, NULL, &e) ==
                  VD_OK, "%s", e.msg);
    ck_assert(n_progress >= 1);
    search_dump d1, d2;
    dump_searches(st, "imp", dim, 20, &d1);
    ck_assert_uint_eq(count_of(st, "imp"), n);

    /* A second import under the same name: EXISTS without replace. */
    vd_index *ix2 = NULL;
    ck_assert_int_eq(vd_index_open(&ip, &ix2, NULL), VD_OK);
    ck_assert_int_eq(vd_index_add_batch(ix2, ids, vecs, 10, 1, NULL, NULL, NULL), VD_OK);
    ck_assert_int_eq(vd_store_import(st, &p, ix2, 10, ids, NULL, NULL, 0, NULL, NULL, &e),
                     VD_EXISTS);
    assert_check_ok(st);
    vd_store_close(st);

    st = st_open(dir);
    dump_searches(st, "imp", dim, 20, &d2);
    dumps_equal(&d1, &d2);
    ck_assert_int_eq(has_point(st, "imp", ids[1], 1), 1);
    ck_assert_int_eq(has_point(st, "imp", ids[2], 0), 1);
    assert_check_ok(st);
    /* Replace: the old collection goes in the same transaction. */
    ck_assert_int_eq(vd_store_import(st, &p, ix2, 10, ids, NULL, NULL, 1, NULL, NULL, &e),
                     VD_OK);
    ck_assert_uint_eq(count_of(st, "imp"), 10);
    /* Writes to an imported (non-deferred) index go through a reload first. */
    ck_assert_int_eq(st_upsert_range(st, "imp", 100000, 5, dim, 0), VD_OK);
    ck_assert_uint_eq(count_of(st, "imp"), 15);
    assert_check_ok(st);
    vd_store_close(st);
    st = st_open(dir);
    ck_assert_uint_eq(count_of(st, "imp"), 15);
    assert_check_ok(st);
    vd_store_close(st);
    dump_free(&d1);
    dump_free(&d2);
    free(ids);
    free(vecs);
    free(pl);
    free(lens);
    free(pbuf);
    st_rmtree(dir);
}
END_TEST

START_TEST(json_validator_accepts_rfc8259_objects_only)
{
    static const char *good[] = {
        "{}", " {\"a\":1} ", "{\"a\":[1,2.5,-3e10,0,-0.0e+1,true,false,null,\"x\"]}",
        "{\"t\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\",\"e\":\"\\u00e9\\ud83d\\ude00\\n\"}",
        "{\"a\":{\"b\":{\"c\":{}}},\"a\":2}",
    };
    /* jansson's messages name the fault and the byte after it; what a payload is instead of
     * an object is named by its type. */
    static const struct { const char *in; const char *msg; } bad[] = {
        {"", "empty"}, {"   ", "empty"},
        {"[1]", "payload is a JSON array; a payload must be an object"},
        {"\"s\"", "payload is a JSON string; a payload must be an object"},
        {"7", "payload is a JSON number"}, {"null", "payload is JSON null"},
        {"{", "string or '}' expected near end of file at byte 1"},
        {"{\"a\":1,}", "string or '}' expected near '}'"}, {"{\"a\" 1}", "':' expected"},
        {"{\"a\":01}", "invalid token near '0'"}, {"{\"a\":1.}", "invalid token near '1.'"},
        {"{\"a\":NaN}", "invalid token near 'NaN'"}, {"{\"a\":tru}", "invalid token near 'tru'"},
        {"{} {}", "end of file expected"}, {"{\"a\":\"\x01\"}", "control character 0x1"},
        {"{\"a\":\"\\x\"}", "invalid escape"}, {"{\"a\":\"\\ud800\"}", "invalid Unicode '\\uD800'"},
        {"{\"a\":\"\\udc00\"}", "invalid Unicode '\\uDC00'"},
        {"{\"a\":\"\xc0\x80\"}", "unable to decode byte 0xc0"},
        {"{\"a\":\"\xe0\x80\x80\"}", "unable to decode byte 0xe0"}, /* overlong */
        {"{\"a\":\"\xed\xa0\x80\"}", "unable to decode byte 0xed"}, /* surrogate */
        {"{\"a\":\"\xf4\x90\x80\x80\"}", "unable to decode byte 0xf4"}, /* > U+10FFFF */
        {"{\"a\":\"\xe2\x82\"}", "unable to decode byte 0xe2"}, /* truncated */
        {"{/*c*/}", "string or '}' expected near '/'"}, {"{\"a\":1e}", "invalid token near '1e'"},
        {"{\"a\":1e400}", "real number overflow"}, {"{\"a\\u0000\":1}", "NUL byte in object key"},
    };
    for (size_t i = 0; i < VD_ARRAY_LEN(good); i++) {
        vd_err e = {0};
        ck_assert_msg(vd_json_check_object((const uint8_t *)good[i], strlen(good[i]), &e) ==
                      VD_OK, "good[%zu]: %s", i, e.msg);
    }
    for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
        vd_err e = {0};
        ck_assert_msg(vd_json_check_object((const uint8_t *)bad[i].in, strlen(bad[i].in), &e) ==
                      VD_INVALID, "bad[%zu] accepted", i);
        ck_assert_msg(strstr(e.msg, bad[i].msg) != NULL, "bad[%zu]: %s", i, e.msg);
    }
    /* Depth: 64 levels pass, 65 fail; a NUL byte inside is a control character. */
    char deep[400];
    size_t n = 0;
    for (int i = 0; i < 63; i++) n += (size_t)sprintf(deep + n, "{\"a\":");
    n += (size_t)sprintf(deep + n, "{}");
    for (int i = 0; i < 63; i++) deep[n++] = '}';
    ck_assert_int_eq(vd_json_check_object((const uint8_t *)deep, n, NULL), VD_OK);
    char deeper[420] = "{\"a\":";
    memcpy(deeper + 5, deep, n);
    deeper[5 + n] = '}';
    vd_err e;
    ck_assert_int_eq(vd_json_check_object((const uint8_t *)deeper, n + 6, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "deeper than 64"));
    ck_assert_int_eq(vd_json_check_object((const uint8_t *)"{\"a\0\":1}", 9, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "control character 0x0 near '\"a' at byte 3"));
    /* An integer beyond int64 is valid JSON: read as a double. */
    const char *big = "{\"a\":123456789012345678901234567890,\"b\":\"\\u0000\"}";
    ck_assert_int_eq(vd_json_check_object((const uint8_t *)big, strlen(big), &e), VD_OK);
}
END_TEST

START_TEST(collection_names_are_checked)
{
    vd_err e;
    ck_assert_int_eq(vd_name_check("docs_v2-A", NULL), VD_OK);
    char longest[VD_NAME_MAX + 2];
    memset(longest, 'a', VD_NAME_MAX);
    longest[VD_NAME_MAX] = 0;
    ck_assert_int_eq(vd_name_check(longest, NULL), VD_OK);
    longest[VD_NAME_MAX] = 'a';
    longest[VD_NAME_MAX + 1] = 0;
    ck_assert_int_eq(vd_name_check(longest, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "longer than 64"));
    ck_assert_int_eq(vd_name_check("", &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "collection name is empty");
    ck_assert_int_eq(vd_name_check("a b", &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "0x20 at position 1"));
    ck_assert_int_eq(vd_name_check("../x", NULL), VD_INVALID);
    ck_assert_int_eq(vd_name_check(NULL, NULL), VD_INVALID);
}
END_TEST

Suite *storage_basic_suite(void)
{
    Suite *s = suite_create("storage_basic");
    TCase *tc = tcase_create("basic");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, reopen_gives_identical_searches_counts_payloads_and_params);
    tcase_add_test(tc, group_commit_applies_valid_ops_in_order_and_skips_invalid_ones);
    tcase_add_test(tc, upsert_replaces_across_groups_and_within_one_group);
    tcase_add_test(tc, list_info_and_snapshots_of_dropped_collections);
    tcase_add_test(tc, import_adopts_a_prebuilt_index_in_one_transaction);
    tcase_add_test(tc, json_validator_accepts_rfc8259_objects_only);
    tcase_add_test(tc, collection_names_are_checked);
    suite_add_tcase(s, tc);
    return s;
}
