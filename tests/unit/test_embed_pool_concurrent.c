/* tests/unit/test_embed_pool_concurrent.c: the embedded module's thread pool
 * (client/python/ext/pool.c), which vectord.open lends to the engine's searches, under
 * ThreadSanitizer: every task index runs exactly once, a job runs on every thread of the
 * pool at once, several callers share the pool at once, a pool of width 1 runs on its caller, and
 * the engine searching on the pool from two threads while a writer upserts gives the serial
 * answers. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/python/ext/pool.h"
#include "engine/vd_engine.h"
#include "tests/unit/storage_testlib.h"

typedef struct counts {
    atomic_int *runs;
    atomic_int threads_seen;
    pthread_t caller;
    atomic_int off_caller; /* tasks that ran on another thread than the caller */
} counts;

static void count_task(void *ctx, size_t i)
{
    counts *c = ctx;
    atomic_fetch_add(&c->runs[i], 1);
    if (!pthread_equal(pthread_self(), c->caller)) atomic_fetch_add(&c->off_caller, 1);
}

static void run_counted(vd_pool *p, size_t n, counts *c)
{
    c->runs = calloc(n ? n : 1, sizeof *c->runs);
    c->caller = pthread_self();
    vd_pool_run(p, n, count_task, c);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(atomic_load(&c->runs[i]), 1);
    free(c->runs);
}

START_TEST(every_index_runs_once_on_the_pools_threads)
{
    vd_pool *p = NULL;
    ck_assert_int_eq(vd_pool_new(3, &p, NULL), VD_OK);
    ck_assert_uint_eq(vd_pool_width(p), 3);
    for (size_t n = 0; n < 50; n++) {
        counts c = {0};
        run_counted(p, n, &c);
    }
    counts big = {0};
    run_counted(p, 100000, &big);
    vd_pool_free(p);
    vd_pool_free(NULL);
}
END_TEST

/* Tasks that each wait for all of them to have started: they can only finish if the pool
 * runs them on `width` threads at once (a thread holds its task until the others arrive),
 * so the workers are proved to take part without timing anything. */
typedef struct meet {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t arrived, want;
    int timed_out;
} meet;

static void meet_task(void *ctx, size_t i)
{
    meet *m = ctx;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60; /* only a broken pool gets here: then fail, do not hang */
    pthread_mutex_lock(&m->mu);
    if (++m->arrived == m->want) pthread_cond_broadcast(&m->cv);
    while (m->arrived < m->want && !m->timed_out)
        if (pthread_cond_timedwait(&m->cv, &m->mu, &deadline) != 0) m->timed_out = 1;
    pthread_mutex_unlock(&m->mu);
    (void)i;
}

START_TEST(a_job_runs_on_every_thread_of_the_pool_at_once)
{
    vd_pool *p = NULL;
    ck_assert_int_eq(vd_pool_new(3, &p, NULL), VD_OK);
    for (int round = 0; round < 20; round++) {
        meet m = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 3, 0};
        vd_pool_run(p, 3, meet_task, &m);
        ck_assert_msg(!m.timed_out && m.arrived == 3, "only %zu of 3 tasks ran at once", m.arrived);
    }
    vd_pool_free(p);
}
END_TEST

START_TEST(a_pool_one_wide_runs_on_its_caller)
{
    vd_pool *p = NULL;
    ck_assert_int_eq(vd_pool_new(1, &p, NULL), VD_OK);
    counts c = {0};
    run_counted(p, 1000, &c);
    ck_assert_int_eq(atomic_load(&c.off_caller), 0);
    vd_pool_free(p);
    ck_assert_int_eq(vd_pool_new(0, &p, NULL), VD_OK); /* 0 means 1 */
    ck_assert_uint_eq(vd_pool_width(p), 1);
    vd_pool_free(p);
}
END_TEST

static void *submitter(void *arg)
{
    vd_pool *p = arg;
    for (int round = 0; round < 200; round++) {
        counts c = {0};
        run_counted(p, (size_t)(round % 37) + 1, &c);
    }
    return NULL;
}

START_TEST(several_callers_share_the_pool_at_once)
{
    vd_pool *p = NULL;
    ck_assert_int_eq(vd_pool_new(2, &p, NULL), VD_OK);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, submitter, p), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    vd_pool_free(p);
}
END_TEST

/* ---- the engine on the pool ---------------------------------------------------------------- */

#define DIM 16
#define N 1000
#define NQ 32
static vd_engine *eng;
static float base[N * DIM], queries[NQ * DIM];
static uint64_t serial_ids[NQ * 5];
static atomic_int stop_writer;

static vd_request knn_req(void)
{
    vd_request q = {.kind = VD_REQ_SEARCH};
    q.search = (vd_search_req){.collection = "p",
                               .queries = queries,
                               .n_floats = NQ * DIM,
                               .dim = DIM,
                               .k = 5,
                               .ef = N}; /* ef >= N: exact, whatever the writer adds */
    return q;
}

static void *searcher(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        vd_request q = knn_req();
        vd_result r;
        vd_err e;
        ck_assert_msg(vd_engine_read(eng, &q, &r, &e) == VD_OK, "%s", e.msg);
        /* the writer only adds far-away points: the answers stay the serial ones */
        ck_assert_int_eq(memcmp(r.search.ids, serial_ids, sizeof serial_ids), 0);
        vd_result_free(&r);
    }
    return NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    float far[DIM];
    for (uint64_t id = 1000000; !atomic_load(&stop_writer); id++) {
        for (int d = 0; d < DIM; d++)
            far[d] = 1000.0f + (float)(id % 97) + (float)d;
        vd_request u = {.kind = VD_REQ_UPSERT};
        u.upsert = (vd_upsert_req){
            .collection = "p", .ids = &id, .n_ids = 1, .vectors = far, .n_floats = DIM, .dim = DIM};
        vd_result r;
        vd_err e;
        ck_assert_msg(vd_engine_write(eng, &u, &r, &e) == VD_OK, "%s", e.msg);
        vd_result_free(&r);
    }
    return NULL;
}

START_TEST(the_engine_searches_on_the_pool_from_two_threads_while_one_writes)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = NULL;
    vd_pool *pool = NULL;
    vd_err e;
    vd_store_options opt = {.create = 1, .n_threads = 2};
    ck_assert_msg(vd_store_open(dir, &opt, &st, &e) == VD_OK, "%s", e.msg);
    ck_assert_int_eq(vd_engine_new(st, NULL, &eng, &e), VD_OK);
    srand(9);
    for (size_t i = 0; i < N * DIM; i++)
        base[i] = (float)rand() / RAND_MAX;
    for (size_t i = 0; i < NQ * DIM; i++)
        queries[i] = (float)rand() / RAND_MAX;
    uint64_t ids[N];
    for (size_t i = 0; i < N; i++)
        ids[i] = i;
    vd_request c = {.kind = VD_REQ_CREATE, .create = {.name = "p", .dim = DIM}};
    vd_request u = {.kind = VD_REQ_UPSERT};
    u.upsert = (vd_upsert_req){.collection = "p",
                               .ids = ids,
                               .n_ids = N,
                               .vectors = base,
                               .n_floats = N * DIM,
                               .dim = DIM};
    vd_result r;
    ck_assert_int_eq(vd_engine_write(eng, &c, &r, &e), VD_OK);
    vd_result_free(&r);
    ck_assert_msg(vd_engine_write(eng, &u, &r, &e) == VD_OK, "%s", e.msg);
    vd_result_free(&r);
    vd_request q = knn_req();
    ck_assert_int_eq(vd_engine_read(eng, &q, &r, &e), VD_OK); /* serially, for reference */
    memcpy(serial_ids, r.search.ids, sizeof serial_ids);
    vd_result_free(&r);

    ck_assert_int_eq(vd_pool_new(3, &pool, &e), VD_OK);
    vd_engine_set_parallel(eng, vd_pool_run, pool, vd_pool_width(pool));
    atomic_store(&stop_writer, 0);
    pthread_t s1, s2, w;
    ck_assert_int_eq(pthread_create(&w, NULL, writer, NULL), 0);
    ck_assert_int_eq(pthread_create(&s1, NULL, searcher, NULL), 0);
    ck_assert_int_eq(pthread_create(&s2, NULL, searcher, NULL), 0);
    pthread_join(s1, NULL);
    pthread_join(s2, NULL);
    atomic_store(&stop_writer, 1);
    pthread_join(w, NULL);
    vd_engine_free(eng);
    vd_pool_free(pool);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

Suite *embed_pool_suite(void)
{
    Suite *s = suite_create("embed_pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_index_runs_once_on_the_pools_threads);
    tcase_add_test(tc, a_job_runs_on_every_thread_of_the_pool_at_once);
    tcase_add_test(tc, a_pool_one_wide_runs_on_its_caller);
    tcase_add_test(tc, several_callers_share_the_pool_at_once);
    tcase_add_test(tc, the_engine_searches_on_the_pool_from_two_threads_while_one_writes);
    suite_add_tcase(s, tc);
    return s;
}
