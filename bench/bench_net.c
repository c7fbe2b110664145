/* bench/bench_net.c: load generator for the daemon over TCP (build/bench-net).
 *
 * Phases, each timed on its own after the data is in:
 *   1. upsert: n synthetic points in batches, `pipeline` batches in flight on one connection;
 *      every batch counts only once acknowledged, i.e. committed and synced (durable).
 *   2. latency: single-query searches one at a time on one connection: p50/p99 round trip.
 *   3. throughput: closed-loop single-query searches from 1, 8, 64 connections (one thread
 *      each) for --seconds each: QPS, p50/p99, recall@k against exact ground truth.
 * By default it starts its own daemon (build/vectord, temp data dir, free port); --addr uses
 * a running one. Prints a table, and with --json one JSON object per result line.
 *
 *   build/bench-net [--n 100000] [--dim 128] [--k 10] [--ef 64] [--queries 1000]
 *                   [--batch 1000] [--pipeline 8] [--conns 1,8,64] [--seconds 3]
 *                   [--threads N] [--vectord build/vectord] [--addr HOST:PORT] [--json] */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_common.h"
#include "tests/unit/vd_test_client.h"

typedef struct opts {
    size_t n, nq;
    uint32_t dim, k, ef, batch, pipeline, threads;
    double seconds;
    int conns[8], n_conns;
    const char *vectord;
    int port;
    int json;
} opts;

static vd_bench_fmat base, queries;
static vd_bench_imat gt;
static opts O;
static vd_bench_env env;

/* The human table: stdout, or stderr when stdout carries the JSON lines. */
static FILE *table(void) { return O.json ? stderr : stdout; }

static void die(const char *what)
{
    fprintf(stderr, "bench-net: %s\n", what);
    exit(1);
}

static void emit(const char *phase, double value, const char *unit, double p50_us, double p99_us,
                 int conns, double recall)
{
    if (!O.json) return;
    vd_bench_json j;
    vd_bench_json_begin(&j);
    vd_bench_json_str(&j, "bench", "net");
    vd_bench_json_str(&j, "phase", phase);
    vd_bench_json_str(&j, "dataset", "synthetic");
    vd_bench_json_int(&j, "n", (long long)O.n);
    vd_bench_json_int(&j, "dim", O.dim);
    vd_bench_json_str(&j, "metric", "l2");
    vd_bench_json_int(&j, "k", O.k);
    vd_bench_json_int(&j, "ef", O.ef);
    vd_bench_json_int(&j, "connections", conns);
    vd_bench_json_num(&j, unit, value);
    if (p50_us >= 0) vd_bench_json_num(&j, "p50_us", p50_us);
    if (p99_us >= 0) vd_bench_json_num(&j, "p99_us", p99_us);
    if (recall >= 0) vd_bench_json_num(&j, "recall", recall);
    vd_bench_json_int(&j, "server_threads", O.threads);
    vd_bench_json_str(&j, "cpu", env.cpu);
    vd_bench_json_str(&j, "commit", env.commit);
    vd_bench_json_end(&j, stdout);
}

static void open_client(vdt_client *c)
{
    if (vdt_connect(c, O.port) != 0) die("cannot connect");
    vd_pb_response *r = vdt_hello(c, getenv("VECTORD_TOKEN"));
    if (vdt_code(r) != 0) die("hello refused");
    vd_proto_response_free(r);
}

/* ---- phase 1: pipelined durable upserts ---- */
static void phase_upsert(void)
{
    vdt_client c;
    open_client(&c);
    vd_pb_response *r = vdt_drop(&c, "bench");
    vd_proto_response_free(r);
    r = vdt_create(&c, "bench", O.dim, VECTORD__V1__METRIC__L2);
    if (vdt_code(r) != 0) die(vdt_msg(r));
    vd_proto_response_free(r);
    uint64_t *ids = malloc(O.n * sizeof *ids);
    for (size_t i = 0; i < O.n; i++)
        ids[i] = i;
    size_t sent = 0, acked = 0;
    unsigned inflight = 0;
    uint64_t t0 = vd_now_ns();
    while (acked < O.n) {
        while (inflight < O.pipeline && sent < O.n) {
            size_t b = O.n - sent < O.batch ? O.n - sent : O.batch;
            Vectord__V1__Request rq;
            Vectord__V1__UpsertRequest u;
            vdt_upsert_request(&rq, &u, "bench", ids + sent, b, base.data + sent * O.dim,
                               b * O.dim * 4);
            if (vdt_send(&c, &rq) != 0) die("send failed");
            free(u.ids.data);
            sent += b;
            inflight++;
        }
        r = vdt_recv(&c);
        if (vdt_code(r) != 0) die(r ? vdt_msg(r) : "upsert: no response");
        acked += r->upsert->written;
        inflight--;
        vd_proto_response_free(r);
    }
    double s = vd_bench_seconds(t0, vd_now_ns());
    fprintf(table(), "%-34s %12.0f points/s   (%zu points in %.2f s, batch %u, pipeline %u)\n",
           "upsert (durable, pipelined)", (double)O.n / s, O.n, s, O.batch, O.pipeline);
    emit("upsert", (double)O.n / s, "points_per_s", -1, -1, 1, -1);
    free(ids);
    vdt_close(&c);
}

/* ---- phases 2 and 3: searches ---- */
typedef struct searcher {
    int idx;
    atomic_int *go;
    uint64_t deadline_ns;
    size_t max_queries; /* 0 = until deadline */
    double *lat_us;
    size_t n_lat, cap_lat;
    size_t hits, done;
} searcher;

static void *search_loop(void *arg)
{
    searcher *s = arg;
    vdt_client c;
    open_client(&c);
    while (!atomic_load(s->go))
        usleep(100);
    size_t qi = (size_t)s->idx * 7919;
    for (;;) {
        uint64_t t = vd_now_ns();
        if (s->max_queries ? s->done >= s->max_queries : t >= s->deadline_ns) break;
        size_t q = qi++ % O.nq;
        vd_pb_response *r =
            vdt_search(&c, "bench", queries.data + q * O.dim, O.dim * 4, O.k, O.ef, 0);
        uint64_t t1 = vd_now_ns();
        if (vdt_code(r) != 0) die(r ? vdt_msg(r) : "search: no response");
        for (uint32_t h = 0; h < O.k; h++) {
            uint64_t id = vdt_hit_id(r, h);
            for (uint32_t g = 0; g < O.k; g++)
                if ((uint64_t)gt.data[q * gt.dim + g] == id) {
                    s->hits++;
                    break;
                }
        }
        vd_proto_response_free(r);
        if (s->n_lat == s->cap_lat) {
            s->cap_lat = s->cap_lat * 2 + 1024;
            s->lat_us = realloc(s->lat_us, s->cap_lat * sizeof *s->lat_us);
        }
        s->lat_us[s->n_lat++] = (double)(t1 - t) / 1e3;
        s->done++;
    }
    vdt_close(&c);
    return NULL;
}

static void run_searchers(int n_conn, size_t max_queries, const char *label)
{
    searcher *s = calloc((size_t)n_conn, sizeof *s);
    pthread_t *th = calloc((size_t)n_conn, sizeof *th);
    atomic_int go = 0;
    uint64_t dur = (uint64_t)(O.seconds * 1e9);
    for (int i = 0; i < n_conn; i++) {
        s[i].idx = i;
        s[i].go = &go;
        s[i].max_queries = max_queries;
        pthread_create(&th[i], NULL, search_loop, &s[i]);
    }
    usleep(200000); /* every connection open and greeted */
    uint64_t t0 = vd_now_ns();
    for (int i = 0; i < n_conn; i++)
        s[i].deadline_ns = t0 + dur;
    atomic_store(&go, 1);
    for (int i = 0; i < n_conn; i++)
        pthread_join(th[i], NULL);
    double secs = vd_bench_seconds(t0, vd_now_ns());
    size_t total = 0, hits = 0, nl = 0;
    for (int i = 0; i < n_conn; i++) {
        total += s[i].done;
        hits += s[i].hits;
        nl += s[i].n_lat;
    }
    double *all = malloc((nl + 1) * sizeof *all);
    nl = 0;
    for (int i = 0; i < n_conn; i++) {
        memcpy(all + nl, s[i].lat_us, s[i].n_lat * sizeof *all);
        nl += s[i].n_lat;
        free(s[i].lat_us);
    }
    double p50 = vd_bench_quantile(all, nl, 0.5), p99 = vd_bench_quantile(all, nl, 0.99);
    double recall = total ? (double)hits / ((double)total * O.k) : 0;
    double qps = (double)total / secs;
    if (max_queries) {
        fprintf(table(), "%-34s p50 %8.1f us   p99 %8.1f us   (%zu queries, recall@%u %.4f)\n",
                label, p50, p99, total, O.k, recall);
        emit("latency", p50, "p50_round_trip_us", p50, p99, 1, recall);
    } else {
        fprintf(table(), "%-34s %12.0f QPS        p50 %7.1f us  p99 %8.1f us  recall@%u %.4f\n",
                label, qps, p50, p99, O.k, recall);
        emit("search_qps", qps, "qps", p50, p99, n_conn, recall);
    }
    free(all);
    free(s);
    free(th);
}

/* ---- phase 4: batched queries, pipelined on one connection (the Python knn path) ---- */
static void phase_batches(uint32_t per_req, uint32_t pipeline)
{
    vdt_client c;
    open_client(&c);
    uint64_t t0 = vd_now_ns(), end = t0 + (uint64_t)(O.seconds * 1e9);
    size_t next = 0, done = 0, hits = 0;
    unsigned inflight = 0;
    size_t first_of[64] = {0};
    uint64_t rid = 1;
    for (;;) {
        while (inflight < pipeline && vd_now_ns() < end) {
            size_t q0 = next % (O.nq - per_req + 1);
            Vectord__V1__SearchRequest m = VECTORD__V1__SEARCH_REQUEST__INIT;
            m.collection = "bench";
            m.queries.data = (uint8_t *)(queries.data + q0 * O.dim);
            m.queries.len = (size_t)per_req * O.dim * 4;
            m.k = O.k;
            m.ef = O.ef;
            Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
            r.op_case = VECTORD__V1__REQUEST__OP_SEARCH;
            r.search = &m;
            r.request_id = rid;
            first_of[rid % 64] = q0;
            if (vdt_send(&c, &r) != 0) die("send failed");
            rid++;
            next += per_req;
            inflight++;
        }
        if (!inflight) break;
        vd_pb_response *r = vdt_recv(&c);
        if (vdt_code(r) != 0) die(r ? vdt_msg(r) : "search: no response");
        size_t q0 = first_of[r->request_id % 64];
        for (uint32_t i = 0; i < r->search->nq; i++)
            for (uint32_t h = 0; h < O.k; h++) {
                uint64_t id = vdt_hit_id(r, (size_t)i * O.k + h);
                for (uint32_t g = 0; g < O.k; g++)
                    if ((uint64_t)gt.data[(q0 + i) * gt.dim + g] == id) {
                        hits++;
                        break;
                    }
            }
        done += r->search->nq;
        vd_proto_response_free(r);
        inflight--;
    }
    double secs = vd_bench_seconds(t0, vd_now_ns());
    double qps = (double)done / secs, recall = (double)hits / ((double)done * O.k);
    char label[64];
    snprintf(label, sizeof label, "search QPS (%u/request, pipeline %u)", per_req, pipeline);
    fprintf(table(), "%-34s %12.0f QPS        recall@%u %.4f\n", label, qps, O.k, recall);
    emit("search_batch_qps", qps, "qps", -1, -1, 1, recall);
    vdt_close(&c);
}

static void parse(int argc, char **argv)
{
    O = (opts){.n = 100000,
               .nq = 1000,
               .dim = 128,
               .k = 10,
               .ef = 64,
               .batch = 1000,
               .pipeline = 8,
               .seconds = 3,
               .conns = {1, 8, 64},
               .n_conns = 3,
               .vectord = "build/vectord"};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    O.threads = cores > 0 ? (uint32_t)cores : 1;
    const char *addr = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            O.json = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: bench-net [--n N] [--dim D] [--k K] [--ef EF] [--queries Q] "
                   "[--batch B] [--pipeline P] [--conns 1,8,64] [--seconds S] [--threads N] "
                   "[--vectord PATH | --addr HOST:PORT] [--json]\n");
            exit(0);
        }
        if (!v) die("every option but --json takes a value");
        i++;
        if (!strcmp(a, "--n"))
            O.n = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--dim"))
            O.dim = (uint32_t)atoi(v);
        else if (!strcmp(a, "--k"))
            O.k = (uint32_t)atoi(v);
        else if (!strcmp(a, "--ef"))
            O.ef = (uint32_t)atoi(v);
        else if (!strcmp(a, "--queries"))
            O.nq = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--batch"))
            O.batch = (uint32_t)atoi(v);
        else if (!strcmp(a, "--pipeline"))
            O.pipeline = (uint32_t)atoi(v);
        else if (!strcmp(a, "--seconds"))
            O.seconds = atof(v);
        else if (!strcmp(a, "--threads"))
            O.threads = (uint32_t)atoi(v);
        else if (!strcmp(a, "--vectord"))
            O.vectord = v;
        else if (!strcmp(a, "--addr"))
            addr = v;
        else if (!strcmp(a, "--conns")) {
            O.n_conns = 0;
            for (const char *p = v; *p && O.n_conns < 8;
                 p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
                O.conns[O.n_conns++] = atoi(p);
        } else
            die("unknown option (try --help)");
    }
    if (!O.n || !O.dim || !O.k || !O.nq || !O.batch || !O.pipeline) die("values must be > 0");
    if (addr) {
        const char *colon = strrchr(addr, ':');
        if (!colon) die("--addr HOST:PORT");
        O.port = atoi(colon + 1);
    }
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    vd_bench_env_get(&env);
    vd_err err;
    if (vd_bench_synthetic(O.n, O.dim, O.nq, 42, &base, &queries, &err) != VD_OK) die(err.msg);
    int cached = 0;
    if (vd_bench_synthetic_gt(&base, &queries, "mixture", VD_METRIC_L2, 42, O.k, 0, &gt, &cached,
                              &err))
        die(err.msg);
    vdt_daemon d;
    memset(&d, 0, sizeof d);
    if (!O.port) {
        char threads[16];
        snprintf(threads, sizeof threads, "%u", O.threads);
        const char *args[] = {"--threads", threads, NULL};
        /* vdt_daemon_start runs $VD_TEST_BUILD/vectord */
        char buildir[512];
        snprintf(buildir, sizeof buildir, "%s", O.vectord);
        char *slash = strrchr(buildir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(buildir, sizeof buildir, ".");
        setenv("VD_TEST_BUILD", buildir, 1);
        if (vdt_daemon_start(&d, args) != 0) die("could not start the daemon");
        O.port = d.port;
    }
    fprintf(table(), "bench-net: %zu x %u synthetic (l2), k %u, ef %u, %u server threads, %s\n",
            O.n, O.dim, O.k, O.ef, O.threads, env.cpu);
    phase_upsert();
    run_searchers(1, 200, "warm-up");
    run_searchers(1, 3000, "search round trip (1 conn)");
    for (int i = 0; i < O.n_conns; i++) {
        char label[64];
        snprintf(label, sizeof label, "search QPS (%d conn%s)", O.conns[i],
                 O.conns[i] == 1 ? "" : "s");
        run_searchers(O.conns[i], 0, label);
    }
    if (O.nq >= 32) phase_batches(32, 4);
    if (d.pid > 0) {
        vdt_daemon_stop(&d, SIGTERM);
        vdt_daemon_cleanup(&d);
    }
    vd_bench_fmat_free(&base);
    vd_bench_fmat_free(&queries);
    vd_bench_imat_free(&gt);
    return 0;
}
