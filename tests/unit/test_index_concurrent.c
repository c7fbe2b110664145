/* tests/unit/test_index_concurrent.c: reader threads search without locks while one writer
 * adds (single and multi-threaded batches), upserts, removes (through vacuum, so slots are
 * freed and reused under the readers) and publishes. One reader runs filtered searches
 * (every plan; its filter reads slot ids through vd_index_slot_id, as a payload filter
 * would). Every result must be sorted, free of duplicates and made of ids that exist or
 * existed (and, filtered, are allowed); ids removed for good never come back once the
 * writer is done. The same race on an int8 index, whose readers re-rank through a vector
 * source while upserts recode. Also runs under TSan (the file name says "concurrent"). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/vd_index.h"
#include "tests/unit/index_testutil.h"

#define DIM 16

typedef struct race {
    vd_index *ix;
    const float *queries;
    size_t n_queries;
    uint64_t id_limit;
    int done; /* atomic */
    const vd_vector_source *source; /* int8: the re-rank's floats */
} race;

/* The int8 race's source: the base vectors by id (an upserted id's newer vector is not what
 * it returns, which changes a distance, never the validity of a hit). */
static const float *source_get(void *ctx, uint32_t slot, uint64_t id)
{
    (void)slot;
    const float *v = ctx;
    return v + id * DIM;
}

typedef struct reader_arg {
    race *r;
    size_t searches, hits;
    int bad;
    char why[160];
    int exact;
    int filtered;
} reader_arg;

/* The filtered reader's predicate: ids divisible by 3. */
static int allow_third(void *ctx, uint32_t slot)
{
    uint64_t id = vd_index_slot_id(ctx, slot);
    return id != VD_ID_NONE && id % 3 == 0;
}

static vd_status filtered_search(const vd_index *ix, const float *q, size_t qi, vd_hit *h,
                                 uint32_t *n)
{
    vd_slot_filter f = {.allow = allow_third, .ctx = (void *)ix,
                        .n_allowed = VD_FILTER_COUNT_UNKNOWN};
    vd_search_opts o = {.k = 20, .ef = 40, .filter = &f, .plan = (vd_search_plan)(qi % 3)};
    return vd_index_search_opts(ix, q, &o, h, n, NULL);
}

static vd_status plain_search(const race *r, const float *q, vd_hit *h, uint32_t *n)
{
    vd_search_opts o = {.k = 20, .ef = 40, .source = r->source};
    return vd_index_search_opts(r->ix, q, &o, h, n, NULL);
}

static void *reader(void *p)
{
    reader_arg *a = p;
    race *r = a->r;
    vd_hit h[20];
    size_t qi = 0;
    while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE) || a->searches < 20) {
        const float *q = r->queries + (qi++ % r->n_queries) * DIM;
        uint32_t n = 0;
        vd_status st = a->filtered ? filtered_search(r->ix, q, qi, h, &n)
                       : a->exact && qi % 8 == 0
                           ? vd_index_search_exact(r->ix, q, 20, h, &n, NULL)
                           : plain_search(r, q, h, &n);
        a->searches++;
        if (st != VD_OK) {
            a->bad = 1;
            snprintf(a->why, sizeof a->why, "search failed: %d", st);
            break;
        }
        a->hits += n;
        for (uint32_t i = 0; i < n; i++) {
            if (h[i].id >= r->id_limit || (i && h[i - 1].distance > h[i].distance) ||
                (a->filtered && h[i].id % 3 != 0)) {
                a->bad = 1;
                snprintf(a->why, sizeof a->why, "hit %u: id %llu distance %g", i,
                         (unsigned long long)h[i].id, h[i].distance);
            }
            for (uint32_t j = 0; j < i; j++)
                if (h[j].id == h[i].id) {
                    a->bad = 1;
                    snprintf(a->why, sizeof a->why, "id %llu twice in one result",
                             (unsigned long long)h[i].id);
                }
        }
        if (a->bad) break;
    }
    return NULL;
}

/* The writer's publish, as storage's: publish, then forget the changes it wrote (an int8
 * index drops the floats it held for them). */
static void publish(vd_index *ix)
{
    vd_index_publish(ix);
    vd_index_changes_clear(ix);
}

static void run_race(int deferred, vd_quantization quant)
{
    size_t n = vt_scale(3000, 4), nr = 4;
    float *v = vt_clustered(2 * n, DIM, 20, 101), *q = vt_clustered(64, DIM, 20, 1101);
    uint64_t *ids = malloc(2 * n * sizeof(uint64_t));
    for (size_t i = 0; i < 2 * n; i++) ids[i] = i;
    vd_index_params p = {.dim = DIM, .metric = VD_METRIC_L2, .m = 8, .ef_construction = 48,
                         .seed = 9, .deferred_publish = deferred, .quantization = quant};
    vd_vector_source src = {source_get, v};
    race r = {.queries = q, .n_queries = 64, .id_limit = 2 * n,
              .source = quant == VD_QUANT_INT8 ? &src : NULL};
    ck_assert_int_eq(vd_index_open(&p, &r.ix, NULL), VD_OK);
    ck_assert_int_eq(vd_index_add_batch(r.ix, ids, v, n / 4, 1, NULL, NULL, NULL), VD_OK);
    publish(r.ix);

    pthread_t th[4];
    reader_arg args[4];
    for (size_t t = 0; t < nr; t++) {
        memset(&args[t], 0, sizeof args[t]);
        args[t].r = &r;
        args[t].exact = t == 0;
        args[t].filtered = t == 3;
        ck_assert_int_eq(pthread_create(&th[t], NULL, reader, &args[t]), 0);
    }
    /* The writer: grow with single adds and 2-thread batches, upsert, remove enough to vacuum
     * several times, publish along the way. */
    size_t next = n / 4;
    for (; next < n / 2; next++) {
        ck_assert_int_eq(vd_index_add(r.ix, ids[next], v + next * DIM, NULL), VD_OK);
        if (next % 16 == 0) publish(r.ix);
    }
    ck_assert_int_eq(vd_index_add_batch(r.ix, ids + next, v + next * DIM, n / 2, 2, NULL, NULL,
                                        NULL), VD_OK);
    next += n / 2;
    publish(r.ix);
    for (size_t i = 0; i < next; i += 2) { /* remove the even ids for good */
        ck_assert_int_eq(vd_index_remove(r.ix, ids[i], NULL), VD_OK);
        if (i % 32 == 0) publish(r.ix);
    }
    for (size_t i = 1; i < next; i += 6) /* upsert some odd ones with another vector */
        ck_assert_int_eq(vd_index_add(r.ix, ids[i], v + (2 * n - 1 - i) * DIM, NULL), VD_OK);
    publish(r.ix);
    ck_assert_int_eq(vd_index_add_batch(r.ix, ids + next, v + next * DIM, 2 * n - next, 1, NULL,
                                        NULL, NULL), VD_OK);
    publish(r.ix);
    __atomic_store_n(&r.done, 1, __ATOMIC_RELEASE);
    size_t searches = 0;
    for (size_t t = 0; t < nr; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(!args[t].bad, "reader %zu: %s", t, args[t].why);
        searches += args[t].searches;
    }
    ck_assert_uint_gt(searches, 0);
    vd_index_stats st;
    vd_index_stats_get(r.ix, &st);
    ck_assert_uint_lt(st.n_deleted, next / 2); /* vacuum ran under the readers */
    vt_assert_valid(r.ix);
    /* After the writer: removed ids are gone, the rest is found. */
    vd_hit h[10];
    uint32_t nh;
    for (size_t i = 0; i < next; i += 2) {
        ck_assert_int_eq(vd_index_search(r.ix, v + i * DIM, 10, 64, h, &nh, NULL), VD_OK);
        for (uint32_t j = 0; j < nh; j++)
            ck_assert_msg(h[j].id >= next || h[j].id % 2 == 1, "removed id %llu came back",
                          (unsigned long long)h[j].id);
    }
    ck_assert_uint_eq(vd_index_count(r.ix), 2 * n - next + next / 2);
    vd_index_close(r.ix);
    free(ids);
    free(v);
    free(q);
}

START_TEST(readers_race_one_writer) { run_race(0, VD_QUANT_NONE); }
END_TEST

START_TEST(readers_race_one_writer_deferred_publish) { run_race(1, VD_QUANT_NONE); }
END_TEST

START_TEST(int8_readers_race_upserts) { run_race(1, VD_QUANT_INT8); }
END_TEST

Suite *index_concurrent_suite(void)
{
    Suite *s = suite_create("index_concurrent");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, readers_race_one_writer);
    tcase_add_test(tc, readers_race_one_writer_deferred_publish);
    tcase_add_test(tc, int8_readers_race_upserts);
    suite_add_tcase(s, tc);
    return s;
}
