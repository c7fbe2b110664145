/* tests/unit/test_daemon_oom.c: allocation failures on the daemon's request path and the
 * storage write path, end to end. The server runs in this process (vd_server_run on a
 * thread, as `vectord serve` runs it) so that vd_alloc_fail_nth reaches every thread of it:
 * the loop thread's decoding and replies, the readers, the writer and the store under it.
 *
 * For N = 0, 1, 2, ... a scripted session (hello, create, upsert with payloads, search with
 * payloads, get with vectors and payloads, delete, count, info, list, stats, drop) runs with
 * the Nth allocation from its start failing: once (vd_alloc_fail_nth, a transient shortage),
 * then in a second sweep with every allocation from the Nth on failing until the session
 * ends (vd_alloc_fail_after, memory gone for a while). Every request must then be answered
 * correctly, or refused with a clear out-of-memory status, or (when even the error frame
 * could not be built) its connection closed - never a wrong answer or a hang; afterwards the
 * server must serve a fresh connection and hold exactly the acknowledged writes. The sweep
 * ends at the first N the session completes without reaching; then the server stops, the
 * store is checked (vd_store_check) and, under ASan, nothing may have leaked. The client
 * decodes with malloc (vdt_client.system_alloc), so only the server's allocations count. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "daemon/server_int.h"
#include "tests/unit/storage_testlib.h"
#include "tests/unit/vd_test_client.h"

#define DIM 8
#define BATCH 40

static vd_server_config cfg;
static int server_rc;

static void *serve(void *arg)
{
    (void)arg;
    server_rc = vd_server_run(&cfg);
    return NULL;
}

static int open_client(vdt_client *c)
{
    for (int i = 0; i < 500; i++) {
        if (vdt_connect(c, cfg.port) == 0) {
            c->system_alloc = 1;
            c->timeout_ms = 20000;
            vd_pb_response *r = vdt_hello(c, NULL);
            int ok = vdt_code(r) == 0 && r->result_case == VECTORD__V1__RESPONSE__RESULT_HELLO;
            vd_proto_response_free(r);
            if (ok) return 0;
            vdt_close(c);
        }
        usleep(10000);
    }
    return -1;
}

/* One response of the session: 1 OK, 0 a clear refusal, -1 no answer (closed). Anything
 * else fails the test. */
static int outcome(vd_pb_response *r, const char *what, long n)
{
    if (!r) return -1;
    int code = vdt_code(r);
    if (code == 0) return 1;
    const char *msg = vdt_msg(r);
    ck_assert_msg(code == VECTORD__V1__CODE__RESOURCE_EXHAUSTED && strstr(msg, "memory"),
                  "N=%ld %s: code %d '%s' is no out-of-memory status", n, what, code, msg);
    return 0;
}

/* The connection for the next request: the same, or a fresh one after a close. */
static void reconnect_if(vdt_client *c, int out)
{
    if (out >= 0) return;
    vdt_close(c);
    ck_assert_int_eq(open_client(c), 0);
}

/* With persistent failures every request after a failed one fails too (and a fresh
 * connection could not even be accepted): the session ends at its first failure. */
#define STEP(out)                                                                                  \
    do {                                                                                           \
        int out_ = (out);                                                                          \
        if (persistent && out_ <= 0) goto done;                                                    \
        reconnect_if(&c, out_);                                                                    \
    } while (0)

static uint64_t count_main(void)
{
    vdt_client c;
    ck_assert_msg(open_client(&c) == 0, "the server stopped serving");
    vd_pb_response *r = vdt_count(&c, "main");
    ck_assert_msg(vdt_code(r) == 0, "count: %s", vdt_msg(r));
    uint64_t n = r->count->count;
    vd_proto_response_free(r);
    vdt_close(&c);
    return n;
}

static void vec_of(uint64_t id, float *v)
{
    for (int d = 0; d < DIM; d++)
        v[d] = (float)((id * 2654435761u + (uint64_t)d * 40503u) % 1000) / 100.0f + 0.01f;
}

/* The session with the Nth allocation failing; *expect tracks the points of "main".
 * Returns 1 when the session ended before reaching its Nth allocation. */
static int session(long n, int persistent, uint64_t *expect)
{
    char coll[32];
    snprintf(coll, sizeof coll, "s%d_%ld", persistent, n);
    uint64_t base = 1000 + (uint64_t)persistent * 10000000 + (uint64_t)n * 100, ids[BATCH];
    float v[BATCH * DIM];
    char pay[BATCH][32];
    const char *payloads[BATCH];
    for (int i = 0; i < BATCH; i++) {
        ids[i] = base + (uint64_t)i;
        vec_of(ids[i], v + i * DIM);
        snprintf(pay[i], sizeof pay[i], "{\"id\":%llu}", (unsigned long long)ids[i]);
        payloads[i] = pay[i];
    }
    vdt_client c;
    ck_assert_int_eq(open_client(&c), 0);
    if (persistent)
        vd_alloc_fail_after(n);
    else
        vd_alloc_fail_nth(n);
    vd_pb_response *r;
    int o, upserted = 0, deleted = 0; /* requests never sent changed nothing */

    r = vdt_create(&c, coll, DIM, VECTORD__V1__METRIC__L2);
    int created = outcome(r, "create", n);
    vd_proto_response_free(r);
    STEP(created);
    r = vdt_upsert(&c, "main", ids, BATCH, v, sizeof v, payloads);
    upserted = outcome(r, "upsert", n);
    if (upserted > 0) ck_assert_uint_eq(r->upsert->written, BATCH);
    vd_proto_response_free(r);
    STEP(upserted);
    r = vdt_search(&c, "main", v, 2 * DIM * 4, 5, 32, 1);
    if ((o = outcome(r, "search", n)) > 0) {
        ck_assert_uint_eq(r->search->nq, 2);
        ck_assert_uint_eq(r->search->k, 5);
    }
    vd_proto_response_free(r);
    STEP(o);
    r = vdt_get(&c, "main", ids, 10, 1, 1);
    if ((o = outcome(r, "get", n)) > 0 && upserted > 0)
        for (int i = 0; i < 10; i++) {
            ck_assert(r->get->found[i]);
            ck_assert_mem_eq(r->get->vectors.data + i * DIM * 4, v + i * DIM, DIM * 4);
            ck_assert_uint_eq(r->get->payloads[i].len, strlen(pay[i]));
            ck_assert_mem_eq(r->get->payloads[i].data, pay[i], strlen(pay[i]));
        }
    vd_proto_response_free(r);
    STEP(o);
    r = vdt_delete(&c, "main", ids, 5);
    o = outcome(r, "delete", n);
    deleted = o > 0 ? (int)r->delete_->deleted : o < 0 ? -1 : 0;
    vd_proto_response_free(r);
    STEP(o);
    vd_pb_response *(*const reads[])(vdt_client *, const char *) = {vdt_count, vdt_info};
    for (size_t i = 0; i < 2; i++) {
        r = reads[i](&c, "main");
        o = outcome(r, i ? "info" : "count", n);
        vd_proto_response_free(r);
        STEP(o);
    }
    r = vdt_list(&c);
    o = outcome(r, "list", n);
    vd_proto_response_free(r);
    STEP(o);
    r = vdt_stats(&c);
    o = outcome(r, "stats", n);
    vd_proto_response_free(r);
    STEP(o);
    r = vdt_drop(&c, coll);
    if (created <= 0 && vdt_code(r) == VECTORD__V1__CODE__NOT_FOUND)
        ck_assert(created == 0 || created == -1); /* never created: nothing to drop */
    else
        outcome(r, "drop", n);
    vd_proto_response_free(r);
done:;
    int never_failed = vd_alloc_fail_pending();
    vd_alloc_fail_nth(-1);
    vd_alloc_fail_after(-1);
    vdt_close(&c);

    /* Exactly the acknowledged writes; an unanswered one is either fully there or not. */
    uint64_t now = count_main(), lo = *expect, hi = *expect;
    if (upserted > 0) lo = hi = *expect + BATCH;
    else if (upserted < 0) hi = *expect + BATCH;
    if (deleted >= 0) {
        lo -= (uint64_t)deleted;
        hi -= (uint64_t)deleted;
    } else {
        lo = lo >= 5 ? lo - 5 : 0;
    }
    ck_assert_msg(now >= lo && now <= hi, "N=%ld: main holds %llu points, expected %llu..%llu",
                  n, (unsigned long long)now, (unsigned long long)lo, (unsigned long long)hi);
    *expect = now;
    return never_failed;
}

START_TEST(every_allocation_of_a_session_failing_in_turn)
{
    /* tmpfs when there is one: a session is four fsyncs, the sweep hundreds of sessions */
    char dir[64];
    snprintf(dir, sizeof dir, "/dev/shm/vd-oom-XXXXXX");
    if (!mkdtemp(dir)) st_tmpdir(dir);
    memset(&cfg, 0, sizeof cfg);
    char data[128];
    snprintf(data, sizeof data, "%s/data", dir);
    cfg.data_dir = data;
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.port = vdt_free_port();
    cfg.threads = 2;
    cfg.limits = (vd_limits){.max_frame_bytes = 1u << 20, .max_batch = 1024, .max_k = 100,
                             .max_dim = 64, .max_connections = 64, .idle_timeout_ms = 0};
    cfg.max_inflight = 16;
    cfg.max_output_bytes = 16u << 20;
    cfg.log_level = VD_LOG_ERROR + 1; /* quiet: every failed commit would log a line */
    cfg.metrics_port = -1;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, serve, NULL), 0);
    vdt_client c;
    ck_assert_int_eq(open_client(&c), 0);
    vd_pb_response *r = vdt_create(&c, "main", DIM, VECTORD__V1__METRIC__L2);
    ck_assert_int_eq(vdt_code(r), 0);
    vd_proto_response_free(r);
    vdt_close(&c);

    uint64_t expect = 0;
    for (int persistent = 0; persistent < 2; persistent++) {
        long n = 0;
        for (; n < 20000; n++)
            if (session(n, persistent, &expect)) break; /* it never reached its Nth */
        fprintf(stderr, "daemon allocation sweep (%s): %ld sessions, N = 0..%ld all passed; "
                        "%llu points acknowledged and present\n",
                persistent ? "every allocation from the Nth on fails" : "the Nth fails once",
                n + 1, n - 1, (unsigned long long)expect);
        ck_assert_int_gt(n, 100);
    }
    ck_assert_uint_gt(expect, 0);

    /* No memory at all while a client connects: the accept waits (retried every few ms)
     * and the connection is served once memory is back - libuv holds a connection nobody
     * accepted and stops watching the listener, so giving up would wedge every later one. */
    vd_alloc_fail_after(0);
    vdt_client late;
    ck_assert_int_eq(vdt_connect(&late, cfg.port), 0);
    late.system_alloc = 1;
    Vectord__V1__HelloRequest hm = VECTORD__V1__HELLO_REQUEST__INIT;
    hm.protocol_version = VD_PROTOCOL_VERSION;
    Vectord__V1__Request hr = VECTORD__V1__REQUEST__INIT;
    hr.op_case = VECTORD__V1__REQUEST__OP_HELLO;
    hr.hello = &hm;
    ck_assert_int_eq(vdt_send(&late, &hr), 0);
    usleep(300000);
    vd_alloc_fail_after(-1);
    r = vdt_recv(&late);
    ck_assert_msg(vdt_code(r) == 0, "hello after the shortage: %s", vdt_msg(r));
    vd_proto_response_free(r);
    vdt_close(&late);
    ck_assert_uint_eq(count_main(), expect);

    kill(getpid(), SIGTERM); /* the server's own shutdown path */
    pthread_join(th, NULL);
    ck_assert_int_eq(server_rc, 0);
    vd_store *st = st_open(data);
    st_report rep = {0};
    vd_err e = {0};
    ck_assert_msg(vd_store_check(st, st_report_line, &rep, &e) == VD_OK, "check: %s %s", e.msg,
                  rep.first);
    vd_collection *col = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "main", &col, NULL), VD_OK);
    ck_assert_uint_eq(vd_index_count(vd_collection_index(col)), expect);
    vd_collection_release(col);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

Suite *daemon_oom_suite(void)
{
    Suite *s = suite_create("daemon_oom");
    TCase *tc = tcase_create("oom");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, every_allocation_of_a_session_failing_in_turn);
    suite_add_tcase(s, tc);
    return s;
}
