/* tests/unit/test_daemon_ops.c: every operation through the real daemon over loopback -
 * hello and limits, create/list/info/count/stats, upsert/get/search (with payloads, padding,
 * multi-query), delete, drop, pipelining with out-of-order ids, restart keeps the data,
 * SIGTERM exits 0, command-line errors exit 2. */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/vd_test_client.h"

static vdt_daemon D;
static vdt_client C;

static void setup(void)
{
    memset(&D, 0, sizeof D);
    ck_assert_msg(vdt_daemon_start(&D, NULL) == 0, "daemon did not start (log %s)", D.log);
    ck_assert_int_eq(vdt_open(&C, &D, NULL), 0);
}

static void teardown(void)
{
    vdt_close(&C);
    vdt_daemon_cleanup(&D);
}

#define OK(resp)                                                                                   \
    do {                                                                                           \
        vd_pb_response *r_ = (resp);                                                               \
        ck_assert_msg(vdt_code(r_) == 0, "%s: %d %s", #resp, vdt_code(r_), vdt_msg(r_));           \
        vd_proto_response_free(r_);                                                                \
    } while (0)

/* Points i = 1..n of dim 4 at (i, 0, 0, 0) under l2: nearest to (x,0,0,0) is round(x). */
static void fill_line(const char *name, uint64_t first, size_t n, int payloads)
{
    uint64_t *ids = malloc(n * sizeof *ids);
    float *v = calloc(n * 4, sizeof *v);
    char **pl = calloc(n, sizeof *pl);
    for (size_t i = 0; i < n; i++) {
        ids[i] = first + i;
        v[i * 4] = (float)(first + i);
        pl[i] = malloc(64);
        snprintf(pl[i], 64, "{\"i\":%zu}", (size_t)(first + i));
    }
    OK(vdt_upsert(&C, name, ids, n, v, n * 16, payloads ? (const char *const *)pl : NULL));
    for (size_t i = 0; i < n; i++)
        free(pl[i]);
    free(pl);
    free(ids);
    free(v);
}

START_TEST(hello_reports_version_and_limits)
{
    vdt_client c2;
    ck_assert_int_eq(vdt_connect(&c2, D.port), 0);
    vd_pb_response *r = vdt_hello(&c2, NULL);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_int_eq(r->result_case, VECTORD__V1__RESPONSE__RESULT_HELLO);
    ck_assert_uint_eq(r->hello->protocol_version, 1);
    ck_assert_str_eq(r->hello->server_version, "0.1.0");
    ck_assert_uint_eq(r->hello->limits->max_frame_bytes, 64u << 20);
    ck_assert_uint_eq(r->hello->limits->max_k, 10000);
    ck_assert_uint_eq(r->hello->limits->max_dim, 4096);
    ck_assert_uint_gt(r->hello->limits->max_batch, 0);
    ck_assert_uint_gt(r->hello->limits->idle_timeout_ms, 0);
    vd_proto_response_free(r);
    vdt_close(&c2);
}
END_TEST

START_TEST(create_list_info_count_drop)
{
    vd_pb_response *r = vdt_create(&C, "docs", 4, VECTORD__V1__METRIC__COSINE);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_str_eq(r->create_collection->info->name, "docs");
    ck_assert_uint_eq(r->create_collection->info->dim, 4);
    ck_assert_int_eq(r->create_collection->info->metric, VECTORD__V1__METRIC__COSINE);
    ck_assert_uint_eq(r->create_collection->info->m, 16);
    ck_assert_uint_eq(r->create_collection->info->ef_construction, 200);
    ck_assert_uint_eq(r->create_collection->info->ef_search, 100);
    vd_proto_response_free(r);
    OK(vdt_create(&C, "alpha", 8, VECTORD__V1__METRIC__L2));

    r = vdt_list(&C);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(r->list_collections->n_collections, 2);
    ck_assert_str_eq(r->list_collections->collections[0]->name, "alpha");
    ck_assert_str_eq(r->list_collections->collections[1]->name, "docs");
    vd_proto_response_free(r);

    float v[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    uint64_t ids[2] = {5, 6};
    OK(vdt_upsert(&C, "docs", ids, 2, v, sizeof v, NULL));
    r = vdt_info(&C, "docs");
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(r->collection_info->info->count, 2);
    ck_assert_uint_eq(r->collection_info->info->dim, 4);
    vd_proto_response_free(r);
    r = vdt_count(&C, "docs");
    ck_assert_uint_eq(r->count->count, 2);
    vd_proto_response_free(r);

    r = vdt_stats(&C);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_str_eq(r->stats->server_version, "0.1.0");
    ck_assert_uint_eq(r->stats->collections, 2);
    ck_assert_uint_eq(r->stats->points, 2);
    ck_assert_uint_ge(r->stats->connections, 1);
    ck_assert_uint_ge(r->stats->ops_committed, 3);
    ck_assert_uint_ge(r->stats->writes_committed, 1);
    ck_assert_uint_eq(r->stats->reader_threads, 2);
    vd_proto_response_free(r);

    OK(vdt_drop(&C, "docs"));
    r = vdt_count(&C, "docs");
    ck_assert_int_eq(vdt_code(r), VECTORD__V1__CODE__NOT_FOUND);
    vd_proto_response_free(r);
    r = vdt_list(&C);
    ck_assert_uint_eq(r->list_collections->n_collections, 1);
    vd_proto_response_free(r);
}
END_TEST

START_TEST(upsert_get_search_delete)
{
    OK(vdt_create(&C, "line", 4, VECTORD__V1__METRIC__L2));
    fill_line("line", 1, 50, 1);

    /* search: nearest to 10.2 is 10, then 11, 9 */
    float q[8] = {10.2f, 0, 0, 0, 47.9f, 0, 0, 0};
    vd_pb_response *r = vdt_search(&C, "line", q, sizeof q, 3, 0, 1);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(r->search->nq, 2);
    ck_assert_uint_eq(r->search->k, 3);
    ck_assert_uint_eq(r->search->ids.len, 6 * 8);
    ck_assert_uint_eq(vdt_hit_id(r, 0), 10);
    ck_assert_uint_eq(vdt_hit_id(r, 1), 11);
    ck_assert_uint_eq(vdt_hit_id(r, 2), 9);
    ck_assert_float_eq_tol(vdt_hit_dist(r, 0), 0.04f, 1e-4f);
    ck_assert_uint_eq(vdt_hit_id(r, 3), 48);
    ck_assert_uint_eq(r->search->n_payloads, 6);
    ck_assert_uint_eq(r->search->payloads[0].len, strlen("{\"i\":10}"));
    ck_assert(memcmp(r->search->payloads[0].data, "{\"i\":10}", 8) == 0);
    vd_proto_response_free(r);

    /* get: found flags in request order, vectors, payloads; a missing id */
    uint64_t ids[3] = {7, 999, 3};
    r = vdt_get(&C, "line", ids, 3, 1, 1);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(r->get->n_found, 3);
    ck_assert(r->get->found[0] && !r->get->found[1] && r->get->found[2]);
    ck_assert_uint_eq(r->get->vectors.len, 3 * 16);
    float got[12];
    memcpy(got, r->get->vectors.data, sizeof got);
    ck_assert(got[0] == 7 && got[4] == 0 && got[8] == 3);
    ck_assert_uint_eq(r->get->n_payloads, 3);
    ck_assert_uint_eq(r->get->payloads[1].len, 0);
    ck_assert(memcmp(r->get->payloads[2].data, "{\"i\":3}", 7) == 0);
    vd_proto_response_free(r);

    /* upsert replaces vector and payload */
    uint64_t one = 7;
    float nv[4] = {100, 0, 0, 0};
    const char *np[1] = {"{\"new\":true}"};
    OK(vdt_upsert(&C, "line", &one, 1, nv, sizeof nv, np));
    r = vdt_get(&C, "line", &one, 1, 1, 1);
    memcpy(got, r->get->vectors.data, 16);
    ck_assert(got[0] == 100);
    ck_assert(memcmp(r->get->payloads[0].data, np[0], strlen(np[0])) == 0);
    vd_proto_response_free(r);

    /* delete reports how many existed; they vanish from search at once */
    uint64_t del[3] = {10, 11, 12345};
    r = vdt_delete(&C, "line", del, 3);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(r->delete_->deleted, 2);
    vd_proto_response_free(r);
    r = vdt_search(&C, "line", q, 16, 2, 0, 0);
    ck_assert_uint_eq(vdt_hit_id(r, 0), 9);
    ck_assert_uint_eq(vdt_hit_id(r, 1), 12);
    ck_assert_uint_eq(r->search->n_payloads, 0);
    vd_proto_response_free(r);
    r = vdt_count(&C, "line");
    ck_assert_uint_eq(r->count->count, 48);
    vd_proto_response_free(r);
}
END_TEST

START_TEST(search_pads_short_rows)
{
    OK(vdt_create(&C, "few", 4, VECTORD__V1__METRIC__L2));
    fill_line("few", 1, 3, 0);
    float q[4] = {0};
    vd_pb_response *r = vdt_search(&C, "few", q, sizeof q, 5, 0, 1);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(vdt_hit_id(r, 0), 1);
    ck_assert_uint_eq(vdt_hit_id(r, 2), 3);
    ck_assert(vdt_hit_id(r, 3) == UINT64_MAX && vdt_hit_id(r, 4) == UINT64_MAX);
    ck_assert(isinf(vdt_hit_dist(r, 4)));
    ck_assert_uint_eq(r->search->payloads[4].len, 0);
    vd_proto_response_free(r);
}
END_TEST

START_TEST(pipelined_requests_are_matched_by_id)
{
    OK(vdt_create(&C, "pipe", 4, VECTORD__V1__METRIC__L2));
    enum { N = 64 };
    uint64_t ids[N];
    float v[N * 4];
    Vectord__V1__Request req[N];
    Vectord__V1__UpsertRequest up[N];
    /* N upserts, each of one point, sent back to back before reading anything */
    for (int i = 0; i < N; i++) {
        ids[i] = 1000 + (uint64_t)i;
        memset(&v[i * 4], 0, 16);
        v[i * 4] = (float)i;
        vdt_upsert_request(&req[i], &up[i], "pipe", &ids[i], 1, &v[i * 4], 16);
        req[i].request_id = 5000 + (uint64_t)i;
        ck_assert_int_eq(vdt_send(&C, &req[i]), 0);
    }
    int seen[N] = {0};
    for (int i = 0; i < N; i++) {
        vd_pb_response *r = vdt_recv(&C);
        ck_assert_int_eq(vdt_code(r), 0);
        ck_assert_uint_ge(r->request_id, 5000);
        ck_assert_uint_lt(r->request_id, 5000 + N);
        ck_assert_int_eq(seen[r->request_id - 5000]++, 0);
        ck_assert_uint_eq(r->upsert->written, 1);
        vd_proto_response_free(r);
    }
    for (int i = 0; i < N; i++)
        free(up[i].ids.data);
    vd_pb_response *r = vdt_count(&C, "pipe");
    ck_assert_uint_eq(r->count->count, N);
    vd_proto_response_free(r);
}
END_TEST

START_TEST(data_survives_a_clean_restart)
{
    OK(vdt_create(&C, "keep", 4, VECTORD__V1__METRIC__IP));
    fill_line("keep", 1, 20, 1);
    vdt_close(&C);
    ck_assert_int_eq(vdt_daemon_stop(&D, SIGTERM), 0);
    ck_assert(vdt_log_contains(&D, "shutting down"));
    ck_assert(vdt_log_contains(&D, "stopped:"));
    ck_assert_int_eq(vdt_daemon_start(&D, NULL), 0);
    ck_assert(vdt_log_contains(&D, "collection keep: 20 points"));
    ck_assert_int_eq(vdt_open(&C, &D, NULL), 0);
    vd_pb_response *r = vdt_count(&C, "keep");
    ck_assert_uint_eq(r->count->count, 20);
    vd_proto_response_free(r);
    uint64_t id = 20;
    r = vdt_get(&C, "keep", &id, 1, 0, 1);
    ck_assert(r->get->found[0]);
    ck_assert(memcmp(r->get->payloads[0].data, "{\"i\":20}", 8) == 0);
    vd_proto_response_free(r);
}
END_TEST

START_TEST(sigint_with_requests_in_flight_exits_zero)
{
    OK(vdt_create(&C, "busy", 4, VECTORD__V1__METRIC__L2));
    uint64_t ids[100];
    float v[400] = {0};
    for (int i = 0; i < 100; i++)
        ids[i] = (uint64_t)i + 1;
    Vectord__V1__Request rq;
    Vectord__V1__UpsertRequest u;
    vdt_upsert_request(&rq, &u, "busy", ids, 100, v, sizeof v);
    ck_assert_int_eq(vdt_send(&C, &rq), 0);
    free(u.ids.data);
    vd_pb_response *r = vdt_recv(&C); /* acknowledged before we signal */
    ck_assert_int_eq(vdt_code(r), 0);
    vd_proto_response_free(r);
    ck_assert_int_eq(vdt_daemon_stop(&D, SIGINT), 0);
    ck_assert(vdt_wait_closed(&C, 5000));
    ck_assert_int_eq(vdt_daemon_start(&D, NULL), 0);
    vdt_close(&C);
    ck_assert_int_eq(vdt_open(&C, &D, NULL), 0);
    r = vdt_count(&C, "busy");
    ck_assert_uint_eq(r->count->count, 100);
    vd_proto_response_free(r);
}
END_TEST

START_TEST(half_closed_connection_still_gets_its_answers)
{
    OK(vdt_create(&C, "half", 4, VECTORD__V1__METRIC__L2));
    fill_line("half", 1, 10, 0);
    enum { N = 20 };
    float q[4] = {3, 0, 0, 0};
    for (int i = 0; i < N; i++) {
        Vectord__V1__SearchRequest m = VECTORD__V1__SEARCH_REQUEST__INIT;
        m.collection = "half";
        m.queries.data = (uint8_t *)q;
        m.queries.len = sizeof q;
        m.k = 2;
        Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
        r.op_case = VECTORD__V1__REQUEST__OP_SEARCH;
        r.search = &m;
        ck_assert_int_eq(vdt_send(&C, &r), 0);
    }
    shutdown(C.fd, SHUT_WR); /* "that was all" */
    for (int i = 0; i < N; i++) {
        vd_pb_response *r = vdt_recv(&C);
        ck_assert_int_eq(vdt_code(r), 0);
        ck_assert_uint_eq(vdt_hit_id(r, 0), 3);
        vd_proto_response_free(r);
    }
    ck_assert(vdt_wait_closed(&C, 5000));
}
END_TEST

static int run_cli(const char *const *args)
{
    const char *b = getenv("VD_TEST_BUILD");
    char bin[512];
    snprintf(bin, sizeof bin, "%s/vectord", b && *b ? b : "build");
    const char *argv[16] = {bin, "serve"};
    int n = 2;
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", 1);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(bad_command_lines_exit_2)
{
    const char *a1[] = {"--threads", "0", NULL};
    const char *a2[] = {"--listen", "nohost", NULL};
    const char *a3[] = {"--bogus", "1", NULL};
    const char *a4[] = {"--max-k", NULL};
    const char *a5[] = {"--token-file", "/nonexistent/token", NULL};
    const char *a6[] = {"--idle-timeout-s", "-1", NULL};
    const char *a7[] = {"--max-frame-bytes", "12x", NULL};
    const char *a8[] = {"--idle-timeout-s", "5000000", NULL}; /* over 2^32 ms */
    const char *a9[] = {"--listen", "[::1:80", NULL};
    const char *help[] = {"--help", NULL};
    ck_assert_int_eq(run_cli(a1), 2);
    ck_assert_int_eq(run_cli(a2), 2);
    ck_assert_int_eq(run_cli(a3), 2);
    ck_assert_int_eq(run_cli(a4), 2);
    ck_assert_int_eq(run_cli(a5), 2);
    ck_assert_int_eq(run_cli(a6), 2);
    ck_assert_int_eq(run_cli(a7), 2);
    ck_assert_int_eq(run_cli(a8), 2);
    ck_assert_int_eq(run_cli(a9), 2);
    ck_assert_int_eq(run_cli(help), 0);
}
END_TEST

Suite *daemon_ops_suite(void)
{
    Suite *s = suite_create("daemon_ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, hello_reports_version_and_limits);
    tcase_add_test(tc, create_list_info_count_drop);
    tcase_add_test(tc, upsert_get_search_delete);
    tcase_add_test(tc, search_pads_short_rows);
    tcase_add_test(tc, pipelined_requests_are_matched_by_id);
    tcase_add_test(tc, half_closed_connection_still_gets_its_answers);
    tcase_add_test(tc, data_survives_a_clean_restart);
    tcase_add_test(tc, sigint_with_requests_in_flight_exits_zero);
    suite_add_tcase(s, tc);
    TCase *cli = tcase_create("cli");
    tcase_set_timeout(cli, 60);
    tcase_add_test(cli, bad_command_lines_exit_2);
    suite_add_tcase(s, cli);
    return s;
}
