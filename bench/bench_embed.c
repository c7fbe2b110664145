/* bench/bench_embed.c: search on the graph a data directory holds, in process, two ways,
 * passes alternating - the baseline bench_client.py sets embedded knn against on the SAME
 * graph (bench-index builds a graph of its own, whose recall and speed differ a little).
 *
 *   engine: vd_engine_read(SEARCH) of the whole query set per call on the embedded module's
 *           own pool (client/python/ext/pool.c), as vectord.open runs it: the embedded path
 *           without Python;
 *   index:  bench-index's loop: threads created per pass take 4 queries at a time from a
 *           counter and call vd_index_search_opts on the collection's index, no result rows.
 *
 * embedded / engine is the cost of Python and the module; engine / index that of the
 * engine's read path (result rows, tasks, hand-off). Threads: main runs everything; the
 * passes fan out. Rejected: a mode of bench-index (its build, hnswlib and sweep machinery
 * have nothing to do with an existing directory). */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench/bench_common.h"
#include "client/python/ext/pool.h"
#include "engine/vd_engine.h"
#include "storage/vd_storage.h"

typedef struct options {
    const char *dir, *collection, *queries;
    char efs[256];
    uint32_t k, threads, runs;
    double min_pass_s;
    int json;
} options;

/* CPU seconds (user + system) of this process, every thread. */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* One timed pass: queries per second and CPU microseconds per query. */
typedef struct pass {
    double qps, cpu_us;
} pass;

typedef struct idx_job {
    const vd_index *ix;
    const vd_bench_fmat *q;
    uint32_t k, ef;
    size_t total;
    atomic_size_t next;
} idx_job;

static void *idx_worker(void *arg)
{
    idx_job *j = arg;
    vd_hit *hits = vd_malloc(j->k * sizeof *hits);
    if (!hits) return NULL;
    vd_search_opts o = {.k = j->k, .ef = j->ef};
    for (;;) {
        size_t i0 = atomic_fetch_add_explicit(&j->next, 4, memory_order_relaxed);
        if (i0 >= j->total) break;
        size_t i1 = i0 + 4 < j->total ? i0 + 4 : j->total;
        for (size_t i = i0; i < i1; i++) {
            uint32_t got = 0;
            vd_index_search_opts(j->ix, j->q->data + (i % j->q->n) * j->q->dim, &o, hits, &got,
                                 NULL);
        }
    }
    vd_free(hits);
    return NULL;
}

/* One index pass of at least min_pass_s. */
static pass index_pass(const vd_index *ix, const vd_bench_fmat *q, const options *o, uint32_t ef)
{
    size_t total = q->n;
    for (;;) {
        double c0 = cpu_now();
        idx_job j = {.ix = ix, .q = q, .k = o->k, .ef = ef, .total = total};
        atomic_init(&j.next, 0);
        pthread_t tids[64];
        uint32_t n = o->threads < 64 ? o->threads : 64, started = 0;
        uint64_t t0 = vd_now_ns();
        for (; started < n; started++)
            if (pthread_create(&tids[started], NULL, idx_worker, &j)) break;
        if (!started) idx_worker(&j);
        for (uint32_t t = 0; t < started; t++)
            pthread_join(tids[t], NULL);
        double s = vd_bench_seconds(t0, vd_now_ns());
        if (s >= o->min_pass_s) return (pass){total / s, (cpu_now() - c0) * 1e6 / total};
        total *= 2;
    }
}

/* One engine pass: whole-set searches repeated for min_pass_s; qps < 0 on an error. */
static pass engine_pass(vd_engine *e, const vd_bench_fmat *q, const options *o, uint32_t ef,
                        vd_err *err)
{
    vd_request req = {.kind = VD_REQ_SEARCH};
    req.search = (vd_search_req){.collection = o->collection,
                                 .queries = q->data,
                                 .n_floats = q->n * q->dim,
                                 .dim = q->dim,
                                 .k = o->k,
                                 .ef = ef};
    size_t calls = 0;
    double c0 = cpu_now();
    uint64_t t0 = vd_now_ns();
    for (;;) {
        vd_result res;
        if (vd_engine_read(e, &req, &res, err) != VD_OK) return (pass){-1, 0};
        vd_result_free(&res);
        calls++;
        double s = vd_bench_seconds(t0, vd_now_ns());
        double n = (double)(calls * q->n);
        if (s >= o->min_pass_s) return (pass){n / s, (cpu_now() - c0) * 1e6 / n};
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench-embed --open DIR --collection NAME --queries FILE.fvecs [options]\n"
            "Searches the collection's graph in process as the embedded module does\n"
            "(vd_engine_read on its pool) and as bench-index does (vd_index_search_opts),\n"
            "passes alternating, and prints the QPS of each per ef.\n\n"
            "  --ef LIST          comma-separated ef values (default 10,64,256)\n"
            "  --k K              neighbours per query (default 10)\n"
            "  --threads N        pool width and index threads (default: cores)\n"
            "  --runs R           passes per way and ef, the median is kept (default 3)\n"
            "  --min-pass-ms T    a pass lasts at least T ms (default 300)\n"
            "  --json             one JSON object per ef on stdout (keys: ef qps_engine\n"
            "                     qps_index cpu_us_engine cpu_us_index threads k n_queries;\n"
            "                     cpu_us: CPU microseconds per query, the mean of the passes)\n");
}

static int parse(int argc, char **argv, options *o)
{
    static const struct option lo[] = {{"open", 1, 0, 'o'},
                                       {"collection", 1, 0, 'c'},
                                       {"queries", 1, 0, 'q'},
                                       {"ef", 1, 0, 'e'},
                                       {"k", 1, 0, 'k'},
                                       {"threads", 1, 0, 't'},
                                       {"runs", 1, 0, 'r'},
                                       {"min-pass-ms", 1, 0, 'm'},
                                       {"json", 0, 0, 'j'},
                                       {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    *o = (options){.k = 10, .runs = 3, .min_pass_s = 0.3};
    snprintf(o->efs, sizeof o->efs, "10,64,256");
    for (int ch; (ch = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (ch) {
        case 'o':
            o->dir = optarg;
            break;
        case 'c':
            o->collection = optarg;
            break;
        case 'q':
            o->queries = optarg;
            break;
        case 'e':
            snprintf(o->efs, sizeof o->efs, "%s", optarg);
            break;
        case 'k':
            o->k = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 't':
            o->threads = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'r':
            o->runs = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'm':
            o->min_pass_s = strtod(optarg, NULL) / 1000;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (!o->dir || !o->collection || !o->queries || !o->k || !o->runs || o->runs > 64) {
        usage(stderr);
        return -1;
    }
    if (!o->threads) o->threads = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    if (parse(argc, argv, &o)) return 2;
    vd_err err = {0};
    vd_bench_fmat q = {0};
    vd_store *st = NULL;
    vd_engine *e = NULL;
    vd_pool *pool = NULL;
    vd_collection *c = NULL;
    vd_store_options so = {.read_only = 1, .n_threads = o.threads};
    vd_engine_limits lim = {0};
    vd_status s = vd_bench_load_fvecs(o.queries, 0, &q, &err);
    if (!s) s = vd_store_open(o.dir, &so, &st, &err);
    if (!s) s = vd_engine_new(st, &lim, &e, &err);
    if (!s) s = vd_pool_new(o.threads, &pool, &err);
    if (!s) s = vd_store_acquire(st, o.collection, &c, &err);
    if (s) {
        fprintf(stderr, "bench-embed: %s\n", err.msg);
        return 1;
    }
    vd_engine_set_parallel(e, vd_pool_run, pool, vd_pool_width(pool));
    const vd_index *ix = vd_collection_index(c);
    FILE *table = o.json ? stderr : stdout;
    fprintf(table, "%6s | %12s %12s | %12s | %s\n", "ef", "engine QPS", "index QPS", "engine/index",
            "CPU us/query engine index");
    int rc = 0;
    for (char *tok = strtok(o.efs, ","); tok && !rc; tok = strtok(NULL, ",")) {
        uint32_t ef = (uint32_t)strtoul(tok, NULL, 10);
        double qe[64], qi[64], ce = 0, ci = 0;
        for (uint32_t r = 0; r < o.runs && !rc; r++) { /* A B B A ... */
            pass pe, pi;
            if (r % 2 == 0) {
                pe = engine_pass(e, &q, &o, ef, &err);
                pi = index_pass(ix, &q, &o, ef);
            } else {
                pi = index_pass(ix, &q, &o, ef);
                pe = engine_pass(e, &q, &o, ef, &err);
            }
            qe[r] = pe.qps;
            qi[r] = pi.qps;
            ce += pe.cpu_us / o.runs;
            ci += pi.cpu_us / o.runs;
            if (pe.qps < 0) {
                fprintf(stderr, "bench-embed: %s\n", err.msg);
                rc = 1;
            }
        }
        if (rc) break;
        double me = vd_bench_median(qe, o.runs), mi = vd_bench_median(qi, o.runs);
        fprintf(table, "%6u | %12.0f %12.0f | %12.3f | %8.2f %8.2f\n", ef, me, mi, me / mi, ce, ci);
        if (o.json) {
            vd_bench_json j;
            vd_bench_json_begin(&j);
            vd_bench_json_int(&j, "ef", ef);
            vd_bench_json_num(&j, "qps_engine", me);
            vd_bench_json_num(&j, "qps_index", mi);
            vd_bench_json_num(&j, "cpu_us_engine", ce);
            vd_bench_json_num(&j, "cpu_us_index", ci);
            vd_bench_json_int(&j, "threads", o.threads);
            vd_bench_json_int(&j, "k", o.k);
            vd_bench_json_int(&j, "n_queries", (long long)q.n);
            vd_bench_json_end(&j, stdout);
        }
    }
    vd_collection_release(c);
    vd_engine_free(e);
    vd_pool_free(pool);
    vd_store_close(st);
    vd_bench_fmat_free(&q);
    return rc;
}
