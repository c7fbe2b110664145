/* tests/unit/test_storage_filter_concurrent.c: filtered readers racing the writer (also run
 * under TSan). The writer upserts new points, replaces old ones (each replacement moves the
 * point to a new slot: the case where a filter computed for one state and a search run in
 * another would lose it) with the same payload, deletes by filter points of another group,
 * and creates, builds and drops a payload index, while reader threads count and search (the
 * planner's plan, and the one-hop plan forced) through filters - one answered by a payload
 * index, one by the stored payloads - and read collection infos. Invariants a reader
 * checks, for the ids acknowledged before it began: no acknowledged matching point is
 * missing from a count, and a filtered search returns exactly min(k, matching points) hits,
 * all of them matching. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/vd_storage.h"
#include "tests/unit/filter_testlib.h"
#include "tests/unit/storage_testlib.h"

#define DIM 8
#define BATCH 40

static vd_store *g_st;
static atomic_int g_stop;
static _Atomic uint64_t g_acked; /* ids [0, g_acked) are committed (some replaced) */
static atomic_long g_reads;
static const vd_filter *g_by_index, *g_by_payload; /* g == 3; s == "w1" (no index on s
                                                    * most of the time) */

static uint64_t count_of(vd_collection *c, const vd_filter *f, vd_filtered **keep)
{
    vd_filtered *v = NULL;
    vd_err e = {0};
    ck_assert_msg(vd_filtered_begin(g_st, c, f, &v, &e) == VD_OK, "%s", e.msg);
    vd_filtered_stats fs;
    vd_filtered_stats_get(v, &fs);
    if (keep) *keep = v;
    else vd_filtered_end(v);
    return fs.matching;
}

static void *reader(void *arg)
{
    (void)arg;
    uint64_t seed = 7;
    while (!atomic_load(&g_stop)) {
        uint64_t acked = atomic_load(&g_acked);
        vd_collection *c = NULL;
        ck_assert_int_eq(vd_store_acquire(g_st, "f", &c, NULL), VD_OK);
        /* g == 3: every acked id with id % 10 == 3 (none of them is ever deleted). */
        vd_filtered *v = NULL;
        uint64_t n = count_of(c, g_by_index, &v);
        ck_assert_msg(n >= (acked + 6) / 10, "count %llu below %llu acked matches",
                      (unsigned long long)n, (unsigned long long)((acked + 6) / 10));
        vd_slot_filter sf;
        ck_assert_int_eq(vd_filtered_slot_filter(v, &sf, NULL), VD_OK);
        float q[DIM];
        st_fill(q, DIM, seed++);
        vd_hit hits[10];
        uint32_t got = 0;
        /* The planner's choice, and the one-hop traversal forced (it reads every node's
         * links and header the writer may be changing, as the unfiltered beam does). */
        for (int p = 0; p < 2; p++) {
            vd_search_opts o = {.k = 10, .ef = 32, .filter = &sf,
                                .plan = p ? VD_PLAN_ONE_HOP : 0};
            ck_assert_int_eq(vd_index_search_opts(vd_collection_index(c), q, &o, hits, &got,
                                                  NULL),
                             VD_OK);
            ck_assert_uint_eq(got, n < 10 ? n : 10);
            for (uint32_t i = 0; i < got; i++) ck_assert_uint_eq(hits[i].id % 10, 3);
        }
        vd_filtered_end(v);
        /* s == "w1": every acked id with id % 5 == 1 and id % 10 != 7 (those go by filter). */
        n = count_of(c, g_by_payload, NULL);
        ck_assert_uint_ge(n, (acked + 8) / 10 + (acked + 3) / 10);
        vd_collection_info info;
        vd_collection_info_get(c, &info);
        ck_assert_uint_ge(info.n_pindexes, 1);
        vd_collection_release(c);
        atomic_fetch_add(&g_reads, 1);
    }
    return NULL;
}

static void write_batch(uint64_t first, size_t n)
{
    uint64_t ids[BATCH];
    float vecs[BATCH * DIM];
    char buf[BATCH][40];
    const uint8_t *pl[BATCH];
    uint32_t lens[BATCH];
    for (size_t i = 0; i < n; i++) {
        ids[i] = first + i;
        st_vector_of(ids[i], DIM, vecs + i * DIM);
        lens[i] = (uint32_t)snprintf(buf[i], sizeof buf[i], "{\"g\":%llu,\"s\":\"w%llu\"}",
                                     (unsigned long long)(ids[i] % 10),
                                     (unsigned long long)(ids[i] % 5));
        pl[i] = (const uint8_t *)buf[i];
    }
    vd_op op = {.kind = VD_OP_UPSERT, .collection = "f", .ids = ids, .n = n, .vectors = vecs,
                .payloads = pl, .payload_lens = lens};
    vd_err e;
    ck_assert_int_eq(vd_store_write(g_st, &op, 1, &e), VD_OK);
    ck_assert_msg(op.status == VD_OK, "%s", op.err.msg);
}

static void pindex_op(vd_op_kind kind, const char *field, vd_pindex_kind pk)
{
    vd_op op = {.kind = kind, .collection = "f", .field = field, .pindex_kind = pk};
    vd_err e;
    ck_assert_int_eq(vd_store_write(g_st, &op, 1, &e), VD_OK);
    ck_assert_msg(op.status == VD_OK, "%s", op.err.msg);
}

START_TEST(filtered_readers_race_the_writer)
{
    char dir[64];
    st_tmpdir(dir);
    g_st = st_open(dir);
    ft_arena *a = ft_new();
    g_by_index = ft_parse(a, "{\"g\":3}");
    g_by_payload = ft_parse(a, "{\"s\":\"w1\"}");
    const vd_filter *gone = ft_parse(a, "{\"g\":7}");
    ck_assert_int_eq(st_create(g_st, "f", DIM, VD_METRIC_L2), VD_OK);
    pindex_op(VD_OP_PINDEX_CREATE, "g", VD_PINDEX_INTEGER);
    write_batch(0, BATCH);
    atomic_store(&g_acked, BATCH);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, reader, NULL), 0);
    int rounds = (int)st_scale(150, 40), more = 0;
    for (int r = 0; r < rounds; r++) {
        uint64_t acked = atomic_load(&g_acked);
        write_batch(acked, BATCH); /* new points */
        atomic_store(&g_acked, acked + BATCH);
        write_batch((uint64_t)(r * 13) % acked / 10 * 10, 10); /* replacements */
        vd_op del = {.kind = VD_OP_DELETE, .collection = "f", .filter = gone};
        ck_assert_int_eq(vd_store_write(g_st, &del, 1, NULL), VD_OK);
        ck_assert_int_eq(del.status, VD_OK);
        if (r % 30 == 5) pindex_op(VD_OP_PINDEX_CREATE, "s", VD_PINDEX_KEYWORD);
        if (r % 30 == 20) pindex_op(VD_OP_PINDEX_DROP, "s", 0);
        ck_assert_int_eq(vd_store_pindex_step(g_st, 64, &more, NULL), VD_OK);
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    ck_assert_int_gt(atomic_load(&g_reads), 10);
    st_report rep = {0};
    vd_err e = {0};
    ck_assert_msg(vd_store_check(g_st, st_report_line, &rep, &e) == VD_OK, "%s: %s", e.msg,
                  rep.first);
    vd_store_close(g_st);
    ft_free(a);
    st_rmtree(dir);
}
END_TEST

Suite *storage_filter_concurrent_suite(void)
{
    Suite *s = suite_create("storage_filter_concurrent");
    TCase *t = tcase_create("race");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, filtered_readers_race_the_writer);
    suite_add_tcase(s, t);
    return s;
}
