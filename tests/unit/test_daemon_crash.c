/* tests/unit/test_daemon_crash.c: kill -9 under write load, then restart - every
 * acknowledged id must be there with its exact vector, and the daemon must serve again.
 *
 * Writer threads pipeline upserts (several batches in flight per connection) and record an id
 * only once its acknowledgement arrived. At a random moment the daemon gets SIGKILL; it is
 * restarted on the same data directory and every recorded id is read back. Repeated for
 * several rounds on the same directory, so later rounds also recover from earlier crashes. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/unit/vd_test_client.h"

#define ROUNDS 4 /* VD_CRASH_ROUNDS=N runs more (longer soak) */
#define WRITERS 4
#define BATCH 50
#define PIPELINE 4
#define DIM 16

static vdt_daemon D;

typedef struct acked {
    pthread_mutex_t mu;
    uint64_t *ids;
    size_t n, cap;
} acked;

typedef struct writer_arg {
    acked *ack;
    uint64_t next_id; /* this writer's id space */
    atomic_int *stop;
} writer_arg;

/* A distinct pseudo-random vector per id (splitmix64), recomputed to check read-back. */
static void vec_for(uint64_t id, float *v)
{
    uint64_t x = id;
    for (int d = 0; d < DIM; d++) {
        x += 0x9e3779b97f4a7c15u;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        v[d] = (float)((z ^ (z >> 31)) % 100000) / 1000.0f;
    }
}

static void record(acked *a, uint64_t first, size_t n)
{
    pthread_mutex_lock(&a->mu);
    if (a->n + n > a->cap) {
        a->cap = (a->n + n) * 2;
        a->ids = realloc(a->ids, a->cap * sizeof *a->ids);
    }
    for (size_t i = 0; i < n; i++)
        a->ids[a->n++] = first + i;
    pthread_mutex_unlock(&a->mu);
}

/* Keeps PIPELINE upserts in flight until the connection dies. Ids of a batch are recorded
 * only when its response says OK. */
static void *writer(void *p)
{
    writer_arg *w = p;
    vdt_client c;
    if (vdt_open(&c, &D, NULL) != 0) return NULL;
    c.timeout_ms = 10000;
    uint64_t first_of[PIPELINE * 2 + 1];
    memset(first_of, 0, sizeof first_of);
    float *v = malloc(BATCH * DIM * sizeof *v);
    uint64_t ids[BATCH];
    int inflight = 0;
    uint64_t rid = 1;
    for (;;) {
        while (inflight < PIPELINE && !atomic_load(w->stop)) {
            for (int i = 0; i < BATCH; i++) {
                ids[i] = w->next_id + (uint64_t)i;
                vec_for(ids[i], v + i * DIM);
            }
            Vectord__V1__Request r;
            Vectord__V1__UpsertRequest u;
            vdt_upsert_request(&r, &u, "crash", ids, BATCH, v, BATCH * DIM * 4);
            r.request_id = rid;
            first_of[rid % (PIPELINE * 2 + 1)] = w->next_id;
            int rc = vdt_send(&c, &r);
            free(u.ids.data);
            if (rc != 0) goto out;
            rid++;
            w->next_id += BATCH;
            inflight++;
        }
        if (inflight == 0) break;
        vd_pb_response *resp = vdt_recv(&c);
        if (!resp) goto out; /* killed */
        if (vdt_code(resp) == 0 && resp->upsert && resp->upsert->written == BATCH)
            record(w->ack, first_of[resp->request_id % (PIPELINE * 2 + 1)], BATCH);
        vd_proto_response_free(resp);
        inflight--;
    }
out:
    free(v);
    vdt_close(&c);
    return NULL;
}

START_TEST(kill_9_under_write_load_loses_no_acknowledged_write)
{
    memset(&D, 0, sizeof D);
    ck_assert_msg(vdt_daemon_start(&D, NULL) == 0, "daemon did not start (log %s)", D.log);
    vdt_client c;
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    vd_pb_response *r = vdt_create(&c, "crash", DIM, VECTORD__V1__METRIC__L2);
    ck_assert_int_eq(vdt_code(r), 0);
    vd_proto_response_free(r);
    vdt_close(&c);

    acked ack = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
    uint64_t next_id[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        next_id[i] = (uint64_t)(i + 1) << 40;
    srand((unsigned)getpid());
    size_t lost = 0;
    int rounds = getenv("VD_CRASH_ROUNDS") ? atoi(getenv("VD_CRASH_ROUNDS")) : ROUNDS;
    if (rounds < 1) rounds = ROUNDS;
    for (int round = 0; round < rounds; round++) {
        atomic_int stop = 0;
        writer_arg wa[WRITERS];
        pthread_t th[WRITERS];
        for (int i = 0; i < WRITERS; i++) {
            wa[i] = (writer_arg){&ack, next_id[i], &stop};
            ck_assert_int_eq(pthread_create(&th[i], NULL, writer, &wa[i]), 0);
        }
        usleep(150000 + (useconds_t)(rand() % 350000));
        ck_assert_int_eq(vdt_daemon_stop(&D, SIGKILL), 128 + SIGKILL);
        for (int i = 0; i < WRITERS; i++) {
            pthread_join(th[i], NULL);
            next_id[i] = wa[i].next_id; /* never reuse an id that might be half-written */
        }
        ck_assert_msg(vdt_daemon_start(&D, NULL) == 0, "restart failed (log %s)", D.log);
        ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
        /* every acknowledged id, with its exact vector */
        for (size_t at = 0; at < ack.n; at += 1000) {
            size_t n = ack.n - at < 1000 ? ack.n - at : 1000;
            r = vdt_get(&c, "crash", ack.ids + at, n, 1, 0);
            ck_assert_int_eq(vdt_code(r), 0);
            for (size_t i = 0; i < n; i++) {
                float want[DIM];
                vec_for(ack.ids[at + i], want);
                if (!r->get->found[i] ||
                    memcmp(r->get->vectors.data + i * DIM * 4, want, sizeof want) != 0)
                    lost++;
            }
            vd_proto_response_free(r);
        }
        r = vdt_count(&c, "crash");
        ck_assert_int_eq(vdt_code(r), 0);
        ck_assert_uint_ge(r->count->count, ack.n - lost);
        vd_proto_response_free(r);
        vdt_close(&c);
        ck_assert_msg(lost == 0, "round %d: %zu of %zu acknowledged ids lost", round, lost, ack.n);
    }
    fprintf(stderr, "kill -9: %d rounds, %zu acknowledged ids, %zu lost\n", rounds, ack.n, lost);
    ck_assert_uint_gt(ack.n, 0);
    free(ack.ids);
    ck_assert_int_eq(vdt_daemon_stop(&D, SIGTERM), 0);
    vdt_daemon_cleanup(&D);
}
END_TEST

START_TEST(sigterm_under_write_load_finishes_cleanly)
{
    /* SIGTERM while writers pipeline: exit status 0, and every write acknowledged before
     * the connections closed is there after a restart. */
    memset(&D, 0, sizeof D);
    ck_assert_msg(vdt_daemon_start(&D, NULL) == 0, "daemon did not start (log %s)", D.log);
    vdt_client c;
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    vd_pb_response *r = vdt_create(&c, "crash", DIM, VECTORD__V1__METRIC__L2);
    ck_assert_int_eq(vdt_code(r), 0);
    vd_proto_response_free(r);
    vdt_close(&c);
    acked ack = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
    atomic_int stop = 0;
    writer_arg wa[WRITERS];
    pthread_t th[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        wa[i] = (writer_arg){&ack, (uint64_t)(i + 1) << 40, &stop};
        ck_assert_int_eq(pthread_create(&th[i], NULL, writer, &wa[i]), 0);
    }
    usleep(400000);
    ck_assert_int_eq(vdt_daemon_stop(&D, SIGTERM), 0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    ck_assert(vdt_log_contains(&D, "stopped:"));
    ck_assert_int_eq(vdt_daemon_start(&D, NULL), 0);
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    size_t lost = 0;
    for (size_t at = 0; at < ack.n; at += 1000) {
        size_t n = ack.n - at < 1000 ? ack.n - at : 1000;
        r = vdt_get(&c, "crash", ack.ids + at, n, 0, 0);
        ck_assert_int_eq(vdt_code(r), 0);
        for (size_t i = 0; i < n; i++)
            lost += !r->get->found[i];
        vd_proto_response_free(r);
    }
    vdt_close(&c);
    ck_assert_uint_gt(ack.n, 0);
    ck_assert_msg(lost == 0, "%zu of %zu acknowledged ids lost", lost, ack.n);
    free(ack.ids);
    ck_assert_int_eq(vdt_daemon_stop(&D, SIGTERM), 0);
    vdt_daemon_cleanup(&D);
}
END_TEST

Suite *daemon_crash_suite(void)
{
    Suite *s = suite_create("daemon_crash");
    TCase *tc = tcase_create("crash");
    tcase_set_timeout(tc, 3600);
    tcase_add_test(tc, kill_9_under_write_load_loses_no_acknowledged_write);
    tcase_add_test(tc, sigterm_under_write_load_finishes_cleanly);
    suite_add_tcase(s, tc);
    return s;
}
