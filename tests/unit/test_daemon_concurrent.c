/* tests/unit/test_daemon_concurrent.c: 200 concurrent connections mixing upserts, deletes,
 * gets, searches and counts against one daemon, each result checked: every acknowledged
 * write is visible to the next read of the same client (read-your-writes), deleted ids are
 * gone, search rows are well formed and sorted, and the final count is exactly what was
 * acknowledged. Meanwhile a scraper reads /metrics over and over, so the HTTP thread reads
 * the counters, the store and the queues while they change. Runs under TSan too (the daemon
 * binary comes from the same build variant, halting on a race), so it is kept small: a few
 * requests per connection. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/unit/vd_test_client.h"

#define N_CONN 200
#define ROUNDS 6
#define BATCH 4
#define DIM 8

static vdt_daemon D;
static int metrics_port;
static atomic_int scraping;
static int scrapes, bad_scrapes;

/* GET /metrics until told to stop; counts the answers that were a 200 with the counters. */
static void *scrape(void *arg)
{
    (void)arg;
    static char buf[1 << 20];
    while (atomic_load(&scraping)) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)metrics_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        size_t n = 0;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            send(fd, "GET /metrics HTTP/1.0\r\n\r\n", 26, MSG_NOSIGNAL) == 26) {
            ssize_t r;
            while (n < sizeof buf - 1 && (r = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0)
                n += (size_t)r;
        }
        close(fd);
        buf[n] = 0;
        scrapes++;
        if (!strstr(buf, " 200 ") || !strstr(buf, "vectord_requests_total{op=\"upsert\""))
            bad_scrapes++;
        usleep(20000);
    }
    return NULL;
}

typedef struct worker {
    int idx;
    int failures;
    char why[200];
    uint64_t live; /* ids written and not deleted */
} worker;

/* A distinct pseudo-random vector per id (splitmix64), so results are checkable. */
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

#define FAIL(w, ...)                                                                               \
    do {                                                                                           \
        if (!(w)->failures++) snprintf((w)->why, sizeof(w)->why, __VA_ARGS__);                     \
        goto out;                                                                                  \
    } while (0)

static void *run(void *arg)
{
    worker *w = arg;
    vdt_client c;
    vd_pb_response *r = NULL;
    if (vdt_open(&c, &D, NULL) != 0) {
        w->failures++;
        snprintf(w->why, sizeof w->why, "connection %d: hello failed", w->idx);
        return NULL;
    }
    uint64_t base = (uint64_t)(w->idx + 1) * 1000;
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t ids[BATCH];
        float v[BATCH * DIM];
        for (int i = 0; i < BATCH; i++) {
            ids[i] = base + (uint64_t)round * BATCH + (uint64_t)i;
            vec_for(ids[i], v + i * DIM);
        }
        r = vdt_upsert(&c, "conc", ids, BATCH, v, sizeof v, NULL);
        if (vdt_code(r) != 0 || r->upsert->written != BATCH)
            FAIL(w, "conn %d upsert: %s", w->idx, vdt_msg(r));
        vd_proto_response_free(r);
        w->live += BATCH;
        /* read-your-writes: the acknowledged vectors are there, exactly */
        r = vdt_get(&c, "conc", ids, BATCH, 1, 0);
        if (vdt_code(r) != 0) FAIL(w, "conn %d get: %s", w->idx, vdt_msg(r));
        for (int i = 0; i < BATCH; i++)
            if (!r->get->found[i] ||
                memcmp(r->get->vectors.data + i * DIM * 4, v + i * DIM, DIM * 4) != 0)
                FAIL(w, "conn %d: acknowledged id %llu not readable", w->idx,
                     (unsigned long long)ids[i]);
        vd_proto_response_free(r);
        /* search for one of them: well-formed, sorted rows over known ids */
        r = vdt_search(&c, "conc", v, DIM * 4, 5, 32, 0);
        if (vdt_code(r) != 0 || r->search->nq != 1 || r->search->k != 5)
            FAIL(w, "conn %d search: %s", w->idx, vdt_msg(r));
        for (int h = 0; h < 5; h++) {
            uint64_t id = vdt_hit_id(r, (size_t)h);
            if (id != UINT64_MAX && (id < 1000 || id >= (uint64_t)(N_CONN + 1) * 1000))
                FAIL(w, "conn %d: search returned unknown id %llu", w->idx, (unsigned long long)id);
            if (h > 0 && vdt_hit_dist(r, (size_t)h) < vdt_hit_dist(r, (size_t)h - 1))
                FAIL(w, "conn %d: search rows not sorted", w->idx);
        }
        if (vdt_hit_dist(r, 0) > 1e-3f)
            FAIL(w, "conn %d: nearest to a stored vector at distance %g", w->idx,
                 (double)vdt_hit_dist(r, 0));
        vd_proto_response_free(r);
        /* every other round, delete one of the new ids and check it is gone */
        if (round % 2 == 1) {
            r = vdt_delete(&c, "conc", &ids[0], 1);
            if (vdt_code(r) != 0 || r->delete_->deleted != 1)
                FAIL(w, "conn %d delete: %s", w->idx, vdt_msg(r));
            vd_proto_response_free(r);
            w->live--;
            r = vdt_get(&c, "conc", &ids[0], 1, 0, 0);
            if (vdt_code(r) != 0 || r->get->found[0])
                FAIL(w, "conn %d: deleted id still found", w->idx);
            vd_proto_response_free(r);
        }
        r = vdt_count(&c, "conc");
        if (vdt_code(r) != 0 || r->count->count < w->live)
            FAIL(w, "conn %d count: %s", w->idx, vdt_msg(r));
        vd_proto_response_free(r);
    }
    r = NULL;
out:
    vd_proto_response_free(r);
    vdt_close(&c);
    return NULL;
}

START_TEST(two_hundred_connections_mixing_reads_and_writes)
{
    memset(&D, 0, sizeof D);
    char mport[32];
    metrics_port = vdt_free_port();
    snprintf(mport, sizeof mport, "127.0.0.1:%d", metrics_port);
    const char *args[] = {"--max-connections", "400", "--metrics-listen", mport, NULL};
    ck_assert_msg(vdt_daemon_start(&D, args) == 0, "daemon did not start (log %s)", D.log);
    vdt_client c;
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    vd_pb_response *r = vdt_create(&c, "conc", DIM, VECTORD__V1__METRIC__L2);
    ck_assert_int_eq(vdt_code(r), 0);
    vd_proto_response_free(r);

    static worker ws[N_CONN];
    pthread_t th[N_CONN], scraper;
    atomic_store(&scraping, 1);
    ck_assert_int_eq(pthread_create(&scraper, NULL, scrape, NULL), 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < N_CONN; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].idx = i;
        ck_assert_int_eq(pthread_create(&th[i], &attr, run, &ws[i]), 0);
    }
    uint64_t live = 0;
    int failed = 0;
    for (int i = 0; i < N_CONN; i++) {
        pthread_join(th[i], NULL);
        if (ws[i].failures && !failed++) fprintf(stderr, "first failure: %s\n", ws[i].why);
        live += ws[i].live;
    }
    pthread_attr_destroy(&attr);
    atomic_store(&scraping, 0);
    pthread_join(scraper, NULL);
    ck_assert_msg(failed == 0, "%d of %d connections failed", failed, N_CONN);
    ck_assert_int_gt(scrapes, 0);
    ck_assert_msg(bad_scrapes == 0, "%d of %d scrapes failed", bad_scrapes, scrapes);
    r = vdt_count(&c, "conc");
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(r->count->count, live);
    vd_proto_response_free(r);
    r = vdt_stats(&c);
    ck_assert_uint_ge(r->stats->ops_committed, N_CONN * (ROUNDS + ROUNDS / 2));
    /* group commit: fewer transactions than acknowledged writes */
    ck_assert_uint_le(r->stats->writes_committed, r->stats->ops_committed);
    fprintf(stderr, "concurrent: %d connections, %llu writes in %llu commits\n", N_CONN,
            (unsigned long long)r->stats->ops_committed,
            (unsigned long long)r->stats->writes_committed);
    vd_proto_response_free(r);
    vdt_close(&c);
    ck_assert_int_eq(vdt_daemon_stop(&D, SIGTERM), 0);
    vdt_daemon_cleanup(&D);
}
END_TEST

Suite *daemon_concurrent_suite(void)
{
    Suite *s = suite_create("daemon_concurrent");
    TCase *tc = tcase_create("concurrent");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, two_hundred_connections_mixing_reads_and_writes);
    suite_add_tcase(s, tc);
    return s;
}
