/* bench/bench_index.c: build/bench-index - vectord's in-process HNSW against hnswlib, side
 * by side in one process, on one dataset.
 *
 * Phases, each timed on its own: load (files or the synthetic generator, plus ground truth),
 * build (vectord through vd_index_add_batch, hnswlib through its parallel addPoint, same M,
 * ef_construction, seed and thread count, into an index sized for the data), then an ef
 * sweep. For every ef and every system: one warm-up pass over all queries on one thread
 * (its results give recall@k against the exact ground truth; it also faults in the caches
 * the other system just evicted), then --runs timed single-thread passes (QPS is their
 * median; every query is timed on its own for p50/p99), then --runs all-thread passes (the
 * same work split over --threads threads through an atomic counter; median QPS). A pass
 * repeats the query set until it lasts about --min-pass-ms, so fast configurations are not
 * timed over a few milliseconds of clock noise. The two systems take turns pass by pass
 * (warm-ups, then single-thread passes A B B A ..., then all-thread passes likewise), so a
 * burst of load from other processes on a shared machine lands on both sides alike. Single-
 * thread passes also record the thread's CPU time (qps_1t_cpu): time slices lost to other
 * processes do not count there, so it is the steadier figure when the machine is busy.
 *
 * Builds: --builds B builds each system B times, alternating which goes first, and quotes
 * the median (single-thread timings on this class of machine vary by 15-20 % between
 * builds); the last build of each is the one searched.
 *
 * Memory, per system: its own accounting (vd_index_stats_get for vectord, hnswlib's known
 * layout for hnswlib) as bytes_per_vector; "vectors + links" as the DESIGN.md memory model;
 * and the RSS it added. peak_rss_mb is the RSS the process held after loading the data plus
 * the system's own peak increase during its build (the kernel's high-water mark is reset
 * before each build), i.e. the peak that process would have had with this system alone.
 *
 * Summary: per system, the smallest swept ef reaching recall 0.95 and 0.99 and its QPS; the
 * ratio vectord/hnswlib both at each system's own smallest qualifying ef and interpolated to
 * exactly the target recall (log-QPS linear in recall between the two bracketing sweep
 * points), both labelled. Output: the human table on stdout, or with --json the table on
 * stderr and one JSON object per (system, ef) on stdout.
 *
 * Rejected: timing one system's whole sweep (or one whole sweep point) after the other's:
 * drift on a shared machine then lands on one side only; reusing result buffers across systems (kept separate so a
 * wrong id from one cannot leak into the other's recall). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_common.h"
#include "bench/hnswlib_peer.h"
#include "common/vd_common.h"
#include "index/vd_index.h"

#define MAX_EF 64
#define MAX_BUILDS 15
#define N_SYS 2
#define MB (1024.0 * 1024.0)

static const uint32_t DEFAULT_EFS[] = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768};

typedef struct options {
    const char *data_dir;
    const char *synthetic;
    int metric_given;
    vd_metric metric;
    uint32_t m, ef_construction, threads, k, runs, builds;
    uint32_t efs[MAX_EF];
    size_t n_efs;
    uint64_t seed;
    size_t n_queries;  /* 0 = all (data) / 1000 (synthetic) */
    size_t max_base;   /* 0 = all */
    int json;
    int hnswlib_first; /* which system builds first in round 0 */
    int run_sys[N_SYS];
    double min_pass_s;
    const char *generator;        /* synthetic data: "mixture" or "clustered" */
    vd_quantization quantization; /* vectord's; hnswlib is always float */
    uint32_t rerank;              /* vectord int8: 0 = the default */
} options;

typedef struct point {
    uint32_t ef;
    double recall, qps_1t, qps_1t_cpu, qps_all, p50_us, p99_us;
} point;

/* One system under test: a handle and three operations, so the timing loop is the same code
 * for both. search writes up to k ids into `ids` and returns how many. */
typedef struct bench_sys {
    const char *name;
    void *handle;
    vd_status (*build)(struct bench_sys *s, const vd_bench_fmat *base, const options *o,
                       vd_err *err);
    uint32_t (*search)(const struct bench_sys *s, const float *q, uint32_t k, uint32_t ef,
                       uint64_t *ids, void *scratch);
    size_t scratch_bytes; /* per-thread buffer for search, for k results */
    void (*set_ef)(struct bench_sys *s, uint32_t ef);
    void (*stats)(struct bench_sys *s); /* fills the memory fields below after a build */
    void (*destroy)(struct bench_sys *s);
    /* results */
    double build_s[MAX_BUILDS];
    uint32_t n_builds;
    double build_med; /* median of build_s */
    double bytes_per_vector, bytes_core_per_vector, rss_delta_mb, peak_rss_mb;
    double aux_mb;      /* of rss_delta_mb, what the bench itself holds (vectord's re-rank copy) */
    double n_vectors;   /* points the accounting is per */
    char breakdown[384]; /* where bytes_per_vector goes, printed under the memory line */
    char simd[64];
    point pts[MAX_EF];
} bench_sys;

/* ---- vectord ---------------------------------------------------------------------------- */

/* vectord's handle: the index and, for int8, where it re-ranks from - the base vectors in the
 * stored form (normalized under cosine), as storage would hand them from LMDB. */
typedef struct vectord_state {
    vd_index *ix;
    float *stored; /* owned copy under cosine, else NULL (the base is used as is) */
    const float *vecs;
    uint32_t dim, rerank;
    vd_vector_source src;
} vectord_state;

static const float *vectord_source_get(void *ctx, uint32_t slot, uint64_t id)
{
    const vectord_state *v = ctx;
    (void)slot;
    return v->vecs + id * v->dim;
}

static void vectord_progress(void *ctx, size_t done, size_t total)
{
    (void)ctx;
    fprintf(stderr, "\r  vectord build %zu / %zu", done, total);
}

static vd_status vectord_build(bench_sys *s, const vd_bench_fmat *base, const options *o,
                               vd_err *err)
{
    vd_index *ix = NULL;
    uint64_t *ids = NULL;
    vectord_state *vs = NULL;
    vd_index_params p = {.dim = base->dim, .metric = o->metric, .m = o->m,
                         .ef_construction = o->ef_construction, .seed = o->seed,
                         .capacity_hint = base->n > UINT32_MAX ? UINT32_MAX : (uint32_t)base->n,
                         .quantization = o->quantization};
    vd_status st = vd_index_open(&p, &ix, err);
    if (st != VD_OK)
        goto fail;
    vs = vd_calloc(1, sizeof *vs);
    if (vs == NULL) {
        st = vd_err_set(err, VD_NOMEM, "vectord build: no memory");
        goto fail;
    }
    ids = vd_malloc(base->n * sizeof *ids);
    if (ids == NULL) {
        st = vd_err_set(err, VD_NOMEM, "vectord build: no memory for %zu ids", base->n);
        goto fail;
    }
    for (size_t i = 0; i < base->n; i++)
        ids[i] = i;
    int tty = isatty(STDERR_FILENO);
    st = vd_index_add_batch(ix, ids, base->data, base->n, o->threads,
                            tty ? vectord_progress : NULL, NULL, err);
    if (tty)
        fprintf(stderr, "\r\033[K");
    if (st != VD_OK)
        goto fail;
    /* As storage does once it wrote a group: an int8 index then drops the floats it held. */
    vd_index_changes_clear(ix);
    vd_free(ids);
    vs->ix = ix;
    vs->dim = base->dim;
    vs->rerank = o->rerank;
    vs->vecs = base->data;
    vs->src = (vd_vector_source){vectord_source_get, vs};
    if (o->quantization == VD_QUANT_INT8 && o->metric == VD_METRIC_COSINE) {
        /* Outside the timed build: storage keeps these on disk, not in the index. */
        vs->stored = vd_malloc(base->n * base->dim * sizeof(float));
        if (vs->stored == NULL) {
            st = vd_err_set(err, VD_NOMEM, "vectord build: no memory for the stored vectors");
            goto fail;
        }
        for (size_t i = 0; i < base->n; i++) {
            const float *x = base->data + i * base->dim;
            double nn = 0;
            for (uint32_t j = 0; j < base->dim; j++)
                nn += (double)x[j] * x[j];
            for (uint32_t j = 0; j < base->dim; j++)
                vs->stored[i * base->dim + j] = (float)(x[j] / sqrt(nn));
        }
        vs->vecs = vs->stored;
        s->aux_mb = (double)base->n * base->dim * sizeof(float) / MB;
    }
    s->handle = vs;
    return VD_OK;
fail:
    vd_free(ids);
    vd_free(vs);
    vd_index_close(ix);
    return st;
}

static uint32_t vectord_search(const bench_sys *s, const float *q, uint32_t k, uint32_t ef,
                               uint64_t *ids, void *scratch)
{
    const vectord_state *vs = s->handle;
    vd_hit *hits = scratch;
    uint32_t n = 0;
    vd_search_opts o = {.k = k, .ef = ef, .rerank = vs->rerank, .source = &vs->src};
    if (vd_index_search_opts(vs->ix, q, &o, hits, &n, NULL) != VD_OK)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        ids[i] = hits[i].id;
    return n;
}

static void vectord_set_ef(bench_sys *s, uint32_t ef)
{
    (void)s;
    (void)ef; /* vectord takes ef per search call */
}

static void vectord_stats(bench_sys *s)
{
    vd_index_stats st;
    vd_index_stats_get(((const vectord_state *)s->handle)->ix, &st);
    double n = st.n_visible > 0 ? (double)st.n_visible : 1.0;
    s->bytes_per_vector = (double)st.bytes_total / n;
    s->bytes_core_per_vector = (double)(st.bytes_vectors + st.bytes_links) / n;
    s->n_vectors = n;
    snprintf(s->breakdown, sizeof s->breakdown,
             "level-0 blocks %.1f (stride %zu = header %zu + links %zu + vector %zu + pad %zu, "
             "%.3f slots per point), upper blocks %.1f, per-slot tables %.1f, id map %.1f, "
             "other %.1f",
             (double)st.bytes_blocks / n, st.block_stride, st.block_header, st.block_links,
             st.block_stride - st.block_header - st.block_links - st.block_pad, st.block_pad,
             (double)st.n_slots / n, (double)st.bytes_upper / n,
             (double)st.bytes_slot_tables / n, (double)st.bytes_id_map / n,
             (double)st.bytes_other / n);
    if (st.quantization == VD_QUANT_INT8)
        snprintf(s->simd, sizeof s->simd, "%s+int8:%s", st.simd, st.simd_int8);
    else
        snprintf(s->simd, sizeof s->simd, "%s", st.simd ? st.simd : vd_dist_simd_name());
}

static void vectord_destroy(bench_sys *s)
{
    vectord_state *vs = s->handle;
    vd_index_close(vs->ix);
    vd_free(vs->stored);
    vd_free(vs);
    s->handle = NULL;
}

/* ---- hnswlib ---------------------------------------------------------------------------- */

static vd_status hnswlib_build(bench_sys *s, const vd_bench_fmat *base, const options *o,
                               vd_err *err)
{
    char msg[256] = "";
    hnswlib_peer *p = hnswlib_peer_create(base->dim, vd_metric_name(o->metric), o->m,
                                          o->ef_construction, o->seed, base->n, msg, sizeof msg);
    if (p == NULL)
        return vd_err_set(err, VD_INTERNAL, "%s", msg);
    if (hnswlib_peer_add(p, base->data, base->n, 0, o->threads, msg, sizeof msg) != 0) {
        hnswlib_peer_free(p);
        return vd_err_set(err, VD_INTERNAL, "%s", msg);
    }
    s->handle = p;
    return VD_OK;
}

static uint32_t hnswlib_search(const bench_sys *s, const float *q, uint32_t k, uint32_t ef,
                               uint64_t *ids, void *scratch)
{
    (void)ef; /* set once per sweep point by hnswlib_set_ef: hnswlib keeps ef in the index */
    return hnswlib_peer_search(s->handle, q, k, ids, scratch);
}

static void hnswlib_set_ef(bench_sys *s, uint32_t ef)
{
    hnswlib_peer_set_ef(s->handle, ef);
}

static void hnswlib_stats(bench_sys *s)
{
    s->bytes_per_vector = hnswlib_peer_bytes_per_vector(s->handle);
    s->bytes_core_per_vector = hnswlib_peer_bytes_core_per_vector(s->handle);
    snprintf(s->simd, sizeof s->simd, "%s", hnswlib_peer_simd(s->handle));
}

static void hnswlib_destroy(bench_sys *s)
{
    hnswlib_peer_free(s->handle);
    s->handle = NULL;
}

/* ---- measurement ------------------------------------------------------------------------ */

typedef struct query_set {
    const vd_bench_fmat *q;
    const vd_bench_imat *gt;
    uint32_t k;
} query_set;

typedef struct par_job {
    const bench_sys *s;
    const query_set *qs;
    uint32_t ef;
    size_t total; /* queries to run: reps * n */
    atomic_size_t next;
    atomic_int failed;
} par_job;

#define PAR_CHUNK 4

static void *par_worker(void *arg)
{
    par_job *j = arg;
    uint32_t k = j->qs->k;
    uint64_t *ids = vd_malloc(k * sizeof *ids);
    void *scratch = vd_malloc(j->s->scratch_bytes);
    if (ids == NULL || scratch == NULL) {
        atomic_store(&j->failed, 1);
        vd_free(ids);
        vd_free(scratch);
        return NULL;
    }
    size_t nq = j->qs->q->n;
    uint32_t dim = j->qs->q->dim;
    for (;;) {
        size_t i0 = atomic_fetch_add_explicit(&j->next, PAR_CHUNK, memory_order_relaxed);
        if (i0 >= j->total)
            break;
        size_t i1 = i0 + PAR_CHUNK < j->total ? i0 + PAR_CHUNK : j->total;
        for (size_t i = i0; i < i1; i++)
            j->s->search(j->s, j->qs->q->data + (i % nq) * dim, k, j->ef, ids, scratch);
    }
    vd_free(ids);
    vd_free(scratch);
    return NULL;
}

/* Runs `total` queries over n_threads threads; returns elapsed seconds, or -1. */
static double parallel_pass(const bench_sys *s, const query_set *qs, uint32_t ef, size_t total,
                            uint32_t n_threads)
{
    pthread_t tids[256];
    if (n_threads > VD_ARRAY_LEN(tids))
        n_threads = VD_ARRAY_LEN(tids);
    par_job j = {.s = s, .qs = qs, .ef = ef, .total = total};
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    uint64_t t0 = vd_now_ns();
    uint32_t started = 0;
    for (; started < n_threads; started++)
        if (pthread_create(&tids[started], NULL, par_worker, &j) != 0)
            break;
    if (started == 0)
        par_worker(&j);
    for (uint32_t t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    uint64_t t1 = vd_now_ns();
    return atomic_load(&j.failed) ? -1.0 : vd_bench_seconds(t0, t1);
}

static double recall_of(const uint64_t *ids, const uint32_t *n_found, const query_set *qs,
                        uint32_t at)
{
    double sum = 0.0;
    for (size_t i = 0; i < qs->q->n; i++) {
        const int32_t *g = qs->gt->data + i * qs->gt->dim;
        const uint64_t *r = ids + i * qs->k;
        uint32_t nr = n_found[i] < at ? n_found[i] : at;
        uint32_t hit = 0;
        for (uint32_t a = 0; a < nr; a++)
            for (uint32_t b = 0; b < at; b++)
                if (r[a] == (uint64_t)g[b]) {
                    hit++;
                    break;
                }
        sum += (double)hit / at;
    }
    return sum / (double)qs->q->n;
}

/* Per-system state of one sweep point. */
typedef struct point_run {
    bench_sys *s;
    uint64_t *ids;
    uint32_t *n_found;
    void *scratch;
    double *lat, *qps_wall, *qps_cpu, *qps_par;
    size_t n_lat, total;
} point_run;

static void point_run_free(point_run *r)
{
    vd_free(r->ids);
    vd_free(r->n_found);
    vd_free(r->scratch);
    vd_free(r->lat);
    vd_free(r->qps_wall);
    vd_free(r->qps_cpu);
    vd_free(r->qps_par);
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One single-thread timed pass: every query timed on its own. */
static void pass_1t(point_run *r, const query_set *qs, uint32_t ef, uint32_t run)
{
    size_t nq = qs->q->n;
    uint32_t dim = qs->q->dim;
    uint64_t c0 = thread_cpu_ns();
    uint64_t p0 = vd_now_ns(), prev = p0;
    for (size_t i = 0; i < r->total; i++) {
        r->s->search(r->s, qs->q->data + (i % nq) * dim, qs->k, ef, r->ids, r->scratch);
        uint64_t now = vd_now_ns();
        r->lat[r->n_lat++] = (double)(now - prev) / 1e3;
        prev = now;
    }
    uint64_t c1 = thread_cpu_ns();
    r->qps_wall[run] = (double)r->total / vd_bench_seconds(p0, prev);
    r->qps_cpu[run] = c1 > c0 ? (double)r->total / vd_bench_seconds(c0, c1) : NAN;
}

/* One sweep point for every system, interleaved pass by pass (the order flips each run) so
 * a burst of load from other processes lands on both systems alike. */
static vd_status measure_point(bench_sys *sys, const int *run_sys, size_t pt_idx,
                               const query_set *qs, uint32_t ef, const options *o, vd_err *err)
{
    size_t nq = qs->q->n;
    uint32_t dim = qs->q->dim, k = qs->k;
    point_run runs[N_SYS];
    vd_status st = VD_OK;
    memset(runs, 0, sizeof runs);
    for (int si = 0; si < N_SYS; si++) {
        if (!run_sys[si])
            continue;
        point_run *r = &runs[si];
        r->s = &sys[si];
        r->ids = vd_malloc(nq * k * sizeof *r->ids);
        r->n_found = vd_malloc(nq * sizeof *r->n_found);
        r->scratch = vd_malloc(r->s->scratch_bytes);
        r->qps_wall = vd_calloc(o->runs, sizeof(double));
        r->qps_cpu = vd_calloc(o->runs, sizeof(double));
        r->qps_par = vd_calloc(o->runs, sizeof(double));
        if (r->ids == NULL || r->n_found == NULL || r->scratch == NULL ||
            r->qps_wall == NULL || r->qps_cpu == NULL || r->qps_par == NULL) {
            st = vd_err_set(err, VD_NOMEM, "%s ef %u: out of memory", r->s->name, ef);
            goto fail;
        }
    }
    /* Warm-up passes: recall, caches, and each system's pass length. */
    for (int step = 0; step < N_SYS; step++) {
        int si = (step + (int)pt_idx) % N_SYS;
        if (!run_sys[si])
            continue;
        point_run *r = &runs[si];
        point *pt = &r->s->pts[pt_idx];
        r->s->set_ef(r->s, ef);
        uint64_t t0 = vd_now_ns();
        for (size_t i = 0; i < nq; i++)
            r->n_found[i] = r->s->search(r->s, qs->q->data + i * dim, k, ef, r->ids + i * k,
                                         r->scratch);
        double warm = vd_bench_seconds(t0, vd_now_ns());
        pt->ef = ef;
        pt->recall = recall_of(r->ids, r->n_found, qs, k < 10 ? k : 10);
        size_t reps = warm > 0 ? (size_t)ceil(o->min_pass_s / warm) : 1;
        r->total = (reps < 1 ? 1 : reps) * nq;
        r->lat = vd_malloc(r->total * o->runs * sizeof *r->lat);
        if (r->lat == NULL) {
            st = vd_err_set(err, VD_NOMEM, "%s ef %u: no memory for %zu latencies", r->s->name,
                            ef, r->total * o->runs);
            goto fail;
        }
    }
    for (uint32_t run = 0; run < o->runs; run++) {
        for (int step = 0; step < N_SYS; step++) {
            int si = (step + (int)pt_idx + (int)run) % N_SYS;
            if (run_sys[si])
                pass_1t(&runs[si], qs, ef, run);
        }
    }
    for (uint32_t run = 0; run < o->runs; run++) {
        for (int step = 0; step < N_SYS; step++) {
            int si = (step + (int)pt_idx + (int)run) % N_SYS;
            if (!run_sys[si])
                continue;
            point_run *r = &runs[si];
            size_t total = r->total * o->threads;
            double sec = parallel_pass(r->s, qs, ef, total, o->threads);
            if (sec <= 0) {
                st = vd_err_set(err, VD_NOMEM, "%s ef %u: a search thread ran out of memory",
                                r->s->name, ef);
                goto fail;
            }
            r->qps_par[run] = (double)total / sec;
        }
    }
    for (int si = 0; si < N_SYS; si++) {
        if (!run_sys[si])
            continue;
        point_run *r = &runs[si];
        point *pt = &r->s->pts[pt_idx];
        pt->qps_1t = vd_bench_median(r->qps_wall, o->runs);
        pt->qps_1t_cpu = vd_bench_median(r->qps_cpu, o->runs);
        pt->qps_all = vd_bench_median(r->qps_par, o->runs);
        pt->p50_us = vd_bench_quantile(r->lat, r->n_lat, 0.50);
        pt->p99_us = vd_bench_quantile(r->lat, r->n_lat, 0.99);
    }
fail:
    for (int si = 0; si < N_SYS; si++)
        point_run_free(&runs[si]);
    return st;
}

/* ---- summary ---------------------------------------------------------------------------- */

typedef struct at_recall {
    int reached;
    size_t idx;        /* smallest-ef point with recall >= target */
    double qps_interp; /* 1-thread QPS interpolated to exactly the target recall */
    int interp_exact;  /* 0 when the first sweep point already exceeds the target */
} at_recall;

static at_recall find_recall(const bench_sys *s, size_t n_pts, double target)
{
    at_recall a = {0};
    for (size_t i = 0; i < n_pts; i++) {
        if (s->pts[i].recall >= target) {
            a.reached = 1;
            a.idx = i;
            break;
        }
    }
    if (!a.reached)
        return a;
    const point *hi = &s->pts[a.idx];
    if (a.idx == 0 || hi->recall == target) {
        a.qps_interp = hi->qps_1t;
        a.interp_exact = hi->recall == target;
        return a;
    }
    const point *lo = &s->pts[a.idx - 1];
    double t = (target - lo->recall) / (hi->recall - lo->recall);
    a.qps_interp = exp(log(lo->qps_1t) + t * (log(hi->qps_1t) - log(lo->qps_1t)));
    a.interp_exact = 1;
    return a;
}

/* ---- options ---------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: bench-index (--data DIR | --synthetic NxD) [options]\n"
"Builds vectord's HNSW and hnswlib's on the same data with the same parameters and compares\n"
"recall@10, single- and all-thread QPS, latency, build time and memory over an ef sweep.\n"
"\n"
"  --data DIR            DIR holds base.fvecs (or base.bvecs), query.fvecs, gt.ivecs; the\n"
"                        metric comes from the folder name suffix -l2/-cosine/-ip\n"
"  --synthetic NxD       seeded synthetic data, e.g. 100000x128; exact ground truth by brute\n"
"                        force, cached in /tmp\n"
"  --generator G         synthetic data: mixture (default; isotropic gaussian clusters) or\n"
"                        clustered (gaussian clusters each spanning a random subspace of\n"
"                        half the dims, plus noise: low intrinsic dimension, like embeddings)\n"
"  --metric M            l2, cosine or ip (overrides the folder suffix; default l2 for\n"
"                        synthetic data)\n"
"  --m M                 HNSW M (default 16)\n"
"  --ef-construction E   (default 200)\n"
"  --threads N           build and all-thread search threads (default: number of cores)\n"
"  --k K                 neighbours per query (default 10)\n"
"  --ef LIST             comma-separated ef sweep (default 10,16,24,32,48,64,96,128,192,\n"
"                        256,384,512,768)\n"
"  --runs R              timed passes per point, the median is kept (default 3)\n"
"  --builds B            builds per system, alternating which goes first; the median build\n"
"                        time is reported (default 1)\n"
"  --order O             vectord-first (default) or hnswlib-first\n"
"  --systems LIST        vectord,hnswlib (default both)\n"
"  --seed S              level-generator and synthetic-data seed (default 100)\n"
"  --queries Q           use the first Q queries (synthetic: generate Q, default 1000)\n"
"  --max-base N          with --data: index only the first N base vectors (ground truth is\n"
"                        recomputed by brute force)\n"
"  --min-pass-ms T       a timed pass repeats the queries to last about T ms (default 200)\n"
"  --quantization Q      vectord's vectors: none (default) or int8 (codes in the graph, the\n"
"                        best candidates re-ranked with the floats); hnswlib stays float and\n"
"                        recall is always against the exact float ground truth\n"
"  --rerank R            int8: re-rank R x k candidates (default: the index's, %u)\n"
"  --json                one JSON object per (system, ef) on stdout; the table goes to stderr\n"
"  --help                this text\n"
"\n"
"JSON keys: system dataset n dim metric M ef_construction ef k recall_at_10 qps_1t qps_all\n"
"p50_us p99_us build_s bytes_per_vector peak_rss_mb threads simd cpu cflags commit, then\n"
"n_queries runs builds bytes_core_per_vector rss_delta_mb load_s seed qps_1t_cpu.\n"
"bytes_per_vector is the system's own accounting (vd_index_stats_get; hnswlib's allocation\n"
"layout); bytes_core_per_vector is raw vectors + links; peak_rss_mb is the RSS after loading\n"
"plus the system's own peak increase during its build; qps_1t_cpu counts the searching\n"
"thread's CPU time instead of wall time. quantization is \"int8\" or \"none\" (hnswlib\n"
"always none); for int8, bytes_core_per_vector is codes + links.\n",
            vd_param_info_of(VD_PARAM_RERANK)->def);
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int parse_efs(const char *s, options *o)
{
    char buf[1024];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    o->n_efs = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (o->n_efs == MAX_EF || parse_u32(tok, 1, 1u << 20, &o->efs[o->n_efs]) != 0)
            return -1;
        o->n_efs++;
    }
    if (o->n_efs == 0)
        return -1;
    qsort(o->efs, o->n_efs, sizeof o->efs[0], cmp_u32);
    size_t w = 1;
    for (size_t i = 1; i < o->n_efs; i++)
        if (o->efs[i] != o->efs[w - 1])
            o->efs[w++] = o->efs[i];
    o->n_efs = w;
    return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a bad option (message printed). */
static int parse_options(int argc, char **argv, options *o)
{
    enum { O_DATA = 1, O_SYN, O_METRIC, O_M, O_EFC, O_THREADS, O_K, O_EF, O_RUNS, O_BUILDS,
           O_ORDER, O_SYSTEMS, O_SEED, O_QUERIES, O_MAXBASE, O_MINPASS, O_JSON, O_QUANT,
           O_RERANK, O_GEN, O_HELP };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"synthetic", required_argument, NULL, O_SYN},
        {"metric", required_argument, NULL, O_METRIC},
        {"m", required_argument, NULL, O_M},
        {"ef-construction", required_argument, NULL, O_EFC},
        {"threads", required_argument, NULL, O_THREADS},
        {"k", required_argument, NULL, O_K},
        {"ef", required_argument, NULL, O_EF},
        {"runs", required_argument, NULL, O_RUNS},
        {"builds", required_argument, NULL, O_BUILDS},
        {"order", required_argument, NULL, O_ORDER},
        {"systems", required_argument, NULL, O_SYSTEMS},
        {"seed", required_argument, NULL, O_SEED},
        {"queries", required_argument, NULL, O_QUERIES},
        {"max-base", required_argument, NULL, O_MAXBASE},
        {"min-pass-ms", required_argument, NULL, O_MINPASS},
        {"json", no_argument, NULL, O_JSON},
        {"quantization", required_argument, NULL, O_QUANT},
        {"rerank", required_argument, NULL, O_RERANK},
        {"generator", required_argument, NULL, O_GEN},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (options){.m = 16, .ef_construction = 200, .threads = nc > 0 ? (uint32_t)nc : 1,
                   .k = 10, .runs = 3, .builds = 1, .seed = 100, .min_pass_s = 0.2,
                   .generator = "mixture",
                   .run_sys = {1, 1}};
    memcpy(o->efs, DEFAULT_EFS, sizeof DEFAULT_EFS);
    o->n_efs = VD_ARRAY_LEN(DEFAULT_EFS);
    int c, li = -1;
    uint32_t u;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, &li)) != -1) {
        const char *a = optarg;
        switch (c) {
        case O_DATA: o->data_dir = a; break;
        case O_SYN: o->synthetic = a; break;
        case O_METRIC:
            if (vd_metric_parse(a, &o->metric) != VD_OK)
                goto bad;
            o->metric_given = 1;
            break;
        case O_M:
            if (parse_u32(a, 2, VD_M_MAX, &o->m) != 0)
                goto bad;
            break;
        case O_EFC:
            if (parse_u32(a, 1, 1u << 20, &o->ef_construction) != 0)
                goto bad;
            break;
        case O_THREADS:
            if (parse_u32(a, 1, 256, &o->threads) != 0)
                goto bad;
            break;
        case O_K:
            if (parse_u32(a, 1, 4096, &o->k) != 0)
                goto bad;
            break;
        case O_EF:
            if (parse_efs(a, o) != 0)
                goto bad;
            break;
        case O_RUNS:
            if (parse_u32(a, 1, 1000, &o->runs) != 0)
                goto bad;
            break;
        case O_BUILDS:
            if (parse_u32(a, 1, MAX_BUILDS, &o->builds) != 0)
                goto bad;
            break;
        case O_ORDER:
            if (strcmp(a, "vectord-first") == 0)
                o->hnswlib_first = 0;
            else if (strcmp(a, "hnswlib-first") == 0)
                o->hnswlib_first = 1;
            else
                goto bad;
            break;
        case O_SYSTEMS: {
            o->run_sys[0] = o->run_sys[1] = 0;
            char buf[64];
            if (strlen(a) >= sizeof buf)
                goto bad;
            strcpy(buf, a);
            for (char *save = NULL, *t = strtok_r(buf, ",", &save); t != NULL;
                 t = strtok_r(NULL, ",", &save)) {
                if (strcmp(t, "vectord") == 0)
                    o->run_sys[0] = 1;
                else if (strcmp(t, "hnswlib") == 0)
                    o->run_sys[1] = 1;
                else
                    goto bad;
            }
            if (!o->run_sys[0] && !o->run_sys[1])
                goto bad;
            break;
        }
        case O_SEED: {
            char *end = NULL;
            errno = 0;
            o->seed = strtoull(a, &end, 10);
            if (errno != 0 || end == a || *end != '\0')
                goto bad;
            break;
        }
        case O_QUERIES:
            if (parse_u32(a, 1, 100000000, &u) != 0)
                goto bad;
            o->n_queries = u;
            break;
        case O_MAXBASE:
            if (parse_u32(a, 1, UINT32_MAX, &u) != 0)
                goto bad;
            o->max_base = u;
            break;
        case O_GEN:
            if (strcmp(a, "mixture") != 0 && strcmp(a, "clustered") != 0)
                goto bad;
            o->generator = a;
            break;
        case O_QUANT:
            if (vd_quantization_parse(a, &o->quantization) != VD_OK)
                goto bad;
            break;
        case O_RERANK: {
            const vd_param_info *pi = vd_param_info_of(VD_PARAM_RERANK);
            if (parse_u32(a, pi->min, pi->max, &o->rerank) != 0)
                goto bad;
            break;
        }
        case O_MINPASS:
            if (parse_u32(a, 0, 600000, &u) != 0)
                goto bad;
            o->min_pass_s = u / 1000.0;
            break;
        case O_JSON: o->json = 1; break;
        case O_HELP:
        case 'h': usage(stdout); return 1;
        default:
            fprintf(stderr, "bench-index: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            usage(stderr);
            return -1;
        }
        continue;
bad:
        fprintf(stderr, "bench-index: bad value '%s' for --%s\n", a,
                li >= 0 ? longopts[li].name : "?");
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "bench-index: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (o->synthetic != NULL && o->max_base != 0) {
        fprintf(stderr, "bench-index: --max-base applies to --data; size synthetic data in NxD\n");
        return -1;
    }
    if ((o->data_dir == NULL) == (o->synthetic == NULL)) {
        fprintf(stderr, "bench-index: give exactly one of --data DIR and --synthetic NxD\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ---- data ------------------------------------------------------------------------------- */

typedef struct dataset {
    char name[256];
    vd_bench_fmat base, queries;
    vd_bench_imat gt;
    const char *gt_source;
    double load_s, gt_s;
} dataset;

static vd_status load_dataset(options *o, dataset *d, vd_err *err)
{
    char path[4096];
    uint64_t t0 = vd_now_ns();
    vd_status st;
    if (o->synthetic != NULL) {
        size_t n;
        uint32_t dim;
        if ((st = vd_bench_parse_nxd(o->synthetic, &n, &dim, err)) != VD_OK)
            return st;
        if (!o->metric_given)
            o->metric = VD_METRIC_L2;
        size_t nq = o->n_queries ? o->n_queries : 1000;
        int clustered = strcmp(o->generator, "clustered") == 0;
        st = clustered ? vd_bench_synthetic_clustered(n, dim, nq, o->seed, &d->base, &d->queries,
                                                      err)
                       : vd_bench_synthetic(n, dim, nq, o->seed, &d->base, &d->queries, err);
        if (st != VD_OK)
            return st;
        snprintf(d->name, sizeof d->name, "synthetic%s-%zux%u-%s", clustered ? "-clustered" : "",
                 n, dim, vd_metric_name(o->metric));
        d->load_s = vd_bench_seconds(t0, vd_now_ns());
        uint64_t g0 = vd_now_ns();
        int cached = 0;
        uint32_t gk = o->k > 100 ? o->k : 100;
        st = vd_bench_synthetic_gt(&d->base, &d->queries, o->generator, o->metric, o->seed, gk,
                                   0, &d->gt, &cached, err);
        d->gt_s = vd_bench_seconds(g0, vd_now_ns());
        d->gt_source = cached ? "cached brute force (/tmp)" : "brute force";
        return st;
    }

    vd_bench_basename(o->data_dir, d->name, sizeof d->name);
    if (!o->metric_given && vd_bench_metric_from_dir(o->data_dir, &o->metric) != VD_OK)
        return vd_err_set(err, VD_INVALID,
                          "%s: folder name has no -l2/-cosine/-ip suffix; give --metric",
                          o->data_dir);
    snprintf(path, sizeof path, "%s/base.fvecs", o->data_dir);
    if (access(path, R_OK) != 0) {
        snprintf(path, sizeof path, "%s/base.bvecs", o->data_dir);
        if (access(path, R_OK) != 0)
            snprintf(path, sizeof path, "%s/base.fvecs", o->data_dir); /* name it in errors */
    }
    if ((st = vd_bench_load_vectors(path, o->max_base, &d->base, err)) != VD_OK)
        return st;
    snprintf(path, sizeof path, "%s/query.fvecs", o->data_dir);
    if ((st = vd_bench_load_fvecs(path, o->n_queries, &d->queries, err)) != VD_OK)
        return st;
    if (d->queries.dim != d->base.dim)
        return vd_err_set(err, VD_INVALID, "%s: base dim %u but query dim %u", o->data_dir,
                          d->base.dim, d->queries.dim);
    d->load_s = vd_bench_seconds(t0, vd_now_ns());
    uint64_t g0 = vd_now_ns();
    if (o->max_base) {
        /* gt.ivecs describes the full base: recompute for the prefix. */
        uint32_t gk = o->k > 100 ? o->k : 100;
        st = vd_bench_ground_truth(&d->base, &d->queries, o->metric, gk, 0, &d->gt, err);
        d->gt_source = "brute force (base prefix)";
    } else {
        snprintf(path, sizeof path, "%s/gt.ivecs", o->data_dir);
        st = vd_bench_load_ivecs(path, d->queries.n, (int32_t)d->base.n, &d->gt, err);
        d->gt_source = "gt.ivecs";
        if (st == VD_OK && d->gt.n < d->queries.n)
            st = vd_err_set(err, VD_CORRUPT, "%s: %zu ground-truth rows for %zu queries", path,
                            d->gt.n, d->queries.n);
    }
    d->gt_s = vd_bench_seconds(g0, vd_now_ns());
    if (st == VD_OK && d->gt.dim < o->k)
        st = vd_err_set(err, VD_INVALID, "ground truth has %u neighbours per query, k is %u",
                        d->gt.dim, o->k);
    return st;
}

/* ---- output ----------------------------------------------------------------------------- */

static void print_header(FILE *f, const options *o, const dataset *d, const vd_bench_env *env)
{
    fprintf(f, "\n== %s: n %zu, dim %u, metric %s, %zu queries, k %u | M %u, ef_construction "
               "%u, seed %llu, threads %u, runs %u, builds %u | vectord quantization %s\n",
            d->name, d->base.n, d->base.dim, vd_metric_name(o->metric), d->queries.n, o->k,
            o->m, o->ef_construction, (unsigned long long)o->seed, o->threads, o->runs,
            o->builds, vd_quantization_name(o->quantization));
    fprintf(f, "   cpu %s (%u cores) | %s | commit %s\n", env->cpu, env->n_cores, env->cflags,
            env->commit);
    fprintf(f, "   load %.2f s (%.0f MB of vectors), ground truth %.2f s (%s)\n", d->load_s,
            (double)d->base.n * d->base.dim * 4 / MB, d->gt_s, d->gt_source);
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : NAN;
}

static void print_results(FILE *f, const options *o, bench_sys *sys, size_t n_pts)
{
    bench_sys *v = o->run_sys[0] ? &sys[0] : NULL, *h = o->run_sys[1] ? &sys[1] : NULL;
    double vb = v ? v->build_med : NAN, hb = h ? h->build_med : NAN;
    fprintf(f, "   build (median of %u, %s first): vectord %.2f s, hnswlib %.2f s, ratio %.2f\n",
            o->builds, o->hnswlib_first ? "hnswlib" : "vectord", vb, hb, ratio(vb, hb));
    for (int i = 0; i < N_SYS; i++) {
        if (!o->run_sys[i])
            continue;
        fprintf(f, "   %-8s simd %-18s memory %.0f B/vector (vectors+links %.0f), RSS +%.1f MB, "
                   "peak RSS %.1f MB\n",
                sys[i].name, sys[i].simd, sys[i].bytes_per_vector, sys[i].bytes_core_per_vector,
                sys[i].rss_delta_mb, sys[i].peak_rss_mb);
        if (sys[i].breakdown[0])
            fprintf(f, "            B/vector: %s\n", sys[i].breakdown);
        if (sys[i].aux_mb > 0 && sys[i].n_vectors > 0)
            fprintf(f, "            RSS +%.1f MB is the index's %.0f B/vector plus the bench's "
                       "%.1f MB float copy it re-ranks from (storage's, in the daemon)\n",
                    sys[i].rss_delta_mb,
                    (sys[i].rss_delta_mb - sys[i].aux_mb) * MB / sys[i].n_vectors, sys[i].aux_mb);
    }
    fprintf(f, "\n   %5s | %-15s | %-24s | %-24s | %-13s | %-13s\n", "", "recall@10",
            "QPS 1 thread", "QPS all threads", "p50 us", "p99 us");
    fprintf(f, "   %5s | %7s %7s | %9s %9s %4s | %9s %9s %4s | %6s %6s | %6s %6s\n", "ef",
            "vectord", "hnswlib", "vectord", "hnswlib", "x", "vectord", "hnswlib", "x",
            "vd", "hn", "vd", "hn");
    for (size_t i = 0; i < n_pts; i++) {
        point z = {0};
        z.recall = z.qps_1t = z.qps_all = z.p50_us = z.p99_us = NAN;
        const point *a = v ? &v->pts[i] : &z, *b = h ? &h->pts[i] : &z;
        fprintf(f, "   %5u | %7.4f %7.4f | %9.0f %9.0f %4.2f | %9.0f %9.0f %4.2f | %6.0f %6.0f "
                   "| %6.0f %6.0f\n",
                o->efs[i], a->recall, b->recall, a->qps_1t, b->qps_1t,
                ratio(a->qps_1t, b->qps_1t), a->qps_all, b->qps_all,
                ratio(a->qps_all, b->qps_all), a->p50_us, b->p50_us, a->p99_us, b->p99_us);
    }
    static const double targets[] = {0.95, 0.99};
    fprintf(f, "\n");
    for (size_t t = 0; t < VD_ARRAY_LEN(targets); t++) {
        at_recall ar[N_SYS];
        fprintf(f, "   recall >= %.2f:", targets[t]);
        for (int i = 0; i < N_SYS; i++) {
            if (!o->run_sys[i])
                continue;
            ar[i] = find_recall(&sys[i], n_pts, targets[t]);
            if (ar[i].reached) {
                const point *p = &sys[i].pts[ar[i].idx];
                fprintf(f, "  %s ef %u (recall %.4f, %.0f QPS 1t, %.0f QPS all)", sys[i].name,
                        p->ef, p->recall, p->qps_1t, p->qps_all);
            } else {
                fprintf(f, "  %s not reached in the sweep", sys[i].name);
            }
        }
        fprintf(f, "\n");
        if (v && h && ar[0].reached && ar[1].reached) {
            const point *pv = &v->pts[ar[0].idx], *ph = &h->pts[ar[1].idx];
            fprintf(f, "      QPS ratio vectord/hnswlib, 1 thread: %.2f at each system's own "
                       "smallest qualifying ef; %.2f interpolated to recall %.2f%s; "
                       "all threads at own ef: %.2f; 1 thread by CPU time at own ef: %.2f\n",
                    ratio(pv->qps_1t, ph->qps_1t), ratio(ar[0].qps_interp, ar[1].qps_interp),
                    targets[t],
                    ar[0].interp_exact && ar[1].interp_exact
                        ? ""
                        : " (a first sweep point already exceeded it; its QPS used)",
                    ratio(pv->qps_all, ph->qps_all), ratio(pv->qps_1t_cpu, ph->qps_1t_cpu));
        }
    }
    fprintf(f, "\n");
    fflush(f);
}

static void print_json(const options *o, const dataset *d, const vd_bench_env *env,
                       bench_sys *sys, size_t n_pts)
{
    for (size_t i = 0; i < n_pts; i++) {
        for (int s = 0; s < N_SYS; s++) {
            if (!o->run_sys[s])
                continue;
            const bench_sys *y = &sys[s];
            const point *p = &y->pts[i];
            vd_bench_json j;
            vd_bench_json_begin(&j);
            vd_bench_json_str(&j, "system", y->name);
            vd_bench_json_str(&j, "quantization",
                              vd_quantization_name(s == 0 ? o->quantization : VD_QUANT_NONE));
            vd_bench_json_str(&j, "dataset", d->name);
            vd_bench_json_int(&j, "n", (long long)d->base.n);
            vd_bench_json_int(&j, "dim", d->base.dim);
            vd_bench_json_str(&j, "metric", vd_metric_name(o->metric));
            vd_bench_json_int(&j, "M", o->m);
            vd_bench_json_int(&j, "ef_construction", o->ef_construction);
            vd_bench_json_int(&j, "ef", p->ef);
            vd_bench_json_int(&j, "k", o->k);
            if (o->k >= 10)
                vd_bench_json_num(&j, "recall_at_10", p->recall);
            else
                vd_bench_json_null(&j, "recall_at_10");
            vd_bench_json_num(&j, "qps_1t", p->qps_1t);
            vd_bench_json_num(&j, "qps_all", p->qps_all);
            vd_bench_json_num(&j, "p50_us", p->p50_us);
            vd_bench_json_num(&j, "p99_us", p->p99_us);
            vd_bench_json_num(&j, "build_s", y->build_med);
            vd_bench_json_num(&j, "bytes_per_vector", y->bytes_per_vector);
            vd_bench_json_num(&j, "peak_rss_mb", y->peak_rss_mb);
            vd_bench_json_int(&j, "threads", o->threads);
            vd_bench_json_str(&j, "simd", y->simd);
            vd_bench_json_str(&j, "cpu", env->cpu);
            vd_bench_json_str(&j, "cflags", env->cflags);
            vd_bench_json_str(&j, "commit", env->commit);
            vd_bench_json_int(&j, "n_queries", (long long)d->queries.n);
            vd_bench_json_int(&j, "runs", o->runs);
            vd_bench_json_int(&j, "builds", y->n_builds);
            vd_bench_json_num(&j, "bytes_core_per_vector", y->bytes_core_per_vector);
            vd_bench_json_num(&j, "rss_delta_mb", y->rss_delta_mb);
            vd_bench_json_num(&j, "load_s", d->load_s);
            vd_bench_json_int(&j, "seed", (long long)o->seed);
            vd_bench_json_num(&j, "qps_1t_cpu", p->qps_1t_cpu);
            if (o->k < 10)
                vd_bench_json_num(&j, "recall_at_k", p->recall);
            if (vd_bench_json_end(&j, stdout) != 0)
                fprintf(stderr, "bench-index: JSON line too long, dropped\n");
        }
    }
}

/* ---- main ------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    options o;
    dataset d = {0};
    vd_err err = {0};
    vd_bench_env env;
    int rc = 1;
    bench_sys sys[N_SYS] = {
        {.name = "vectord", .build = vectord_build, .search = vectord_search,
         .set_ef = vectord_set_ef, .stats = vectord_stats, .destroy = vectord_destroy},
        {.name = "hnswlib", .build = hnswlib_build, .search = hnswlib_search,
         .set_ef = hnswlib_set_ef, .stats = hnswlib_stats, .destroy = hnswlib_destroy},
    };

    int pr = parse_options(argc, argv, &o);
    if (pr != 0)
        return pr > 0 ? 0 : 2;
    sys[0].scratch_bytes = o.k * sizeof(vd_hit);
    sys[1].scratch_bytes = o.k * sizeof(float);
    FILE *table = o.json ? stderr : stdout;
    vd_bench_env_get(&env);

    if (load_dataset(&o, &d, &err) != VD_OK) {
        fprintf(stderr, "bench-index: %s\n", err.msg);
        goto done;
    }
    print_header(table, &o, &d, &env);

    /* Builds, alternating which system goes first each round. */
    size_t rss_data = vd_bench_current_rss();
    for (uint32_t r = 0; r < o.builds; r++) {
        for (int step = 0; step < N_SYS; step++) {
            int si = (step + o.hnswlib_first + (int)r) % N_SYS;
            bench_sys *s = &sys[si];
            if (!o.run_sys[si])
                continue;
            if (s->handle != NULL)
                s->destroy(s);
            size_t before = vd_bench_current_rss();
            int peak_ok = vd_bench_reset_peak_rss() == 0;
            uint64_t t0 = vd_now_ns();
            if (s->build(s, &d.base, &o, &err) != VD_OK) {
                fprintf(stderr, "bench-index: %s build: %s\n", s->name, err.msg);
                goto done;
            }
            double sec = vd_bench_seconds(t0, vd_now_ns());
            s->build_s[s->n_builds++] = sec;
            size_t after = vd_bench_current_rss(), peak = vd_bench_peak_rss();
            s->rss_delta_mb = ((double)after - (double)before) / MB;
            s->peak_rss_mb = peak_ok ? ((double)rss_data + (double)peak - (double)before) / MB
                                     : (double)peak / MB;
            s->stats(s);
            fprintf(table, "   build %u: %s %.2f s\n", r + 1, s->name, sec);
            fflush(table);
        }
    }

    for (int i = 0; i < N_SYS; i++) {
        double tmp[MAX_BUILDS];
        memcpy(tmp, sys[i].build_s, sizeof tmp);
        sys[i].build_med = o.run_sys[i] ? vd_bench_median(tmp, sys[i].n_builds) : NAN;
    }

    query_set qs = {.q = &d.queries, .gt = &d.gt, .k = o.k};
    for (size_t i = 0; i < o.n_efs; i++) {
        if (measure_point(sys, o.run_sys, i, &qs, o.efs[i], &o, &err) != VD_OK) {
            fprintf(stderr, "bench-index: %s\n", err.msg);
            goto done;
        }
        if (isatty(fileno(table)))
            fprintf(stderr, "\r  ef %u done\033[K", o.efs[i]);
    }
    if (isatty(fileno(table)))
        fprintf(stderr, "\r\033[K");
    print_results(table, &o, sys, o.n_efs);
    if (o.json)
        print_json(&o, &d, &env, sys, o.n_efs);
    rc = 0;
done:
    for (int i = 0; i < N_SYS; i++)
        if (sys[i].handle != NULL)
            sys[i].destroy(&sys[i]);
    vd_bench_fmat_free(&d.base);
    vd_bench_fmat_free(&d.queries);
    vd_bench_imat_free(&d.gt);
    return rc;
}
