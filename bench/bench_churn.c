/* bench/bench_churn.c: build/bench-churn - how good the graph is after deletes, against a
 * fresh build of the same points (issue 13): recall@10 at a fixed ef of
 *   - a fresh build of the initial points,
 *   - that index after a random half of its points is removed, and a fresh build of the
 *     survivors,
 *   - a fresh index after R rounds of churn (remove a fraction f of the live points at random,
 *     insert as many new ones), and a fresh build of the points live at the end,
 * each against the exact neighbours among the points live at the time (brute force), and the
 * cost per delete (remove + the publish that repairs around it, amortized over groups of
 * --group operations as the daemon's group commits do; vacuums included).
 *
 * Data: a data folder (the first --max-base rows are the initial points, the next ones the
 * points churn inserts), or --synthetic NxD with --generator mixture | clustered | random
 * (iid N(0, 1): no structure at all), whose extra rows are drawn beyond N.
 * Output: a human table, or with --json one object per measurement.
 *
 * Rejected: measuring through the daemon (the same index code behind a socket: slower to run,
 * no different graph); recall against the initial ground truth (the survivors' neighbours
 * are what a user asks for). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_common.h"
#include "common/vd_common.h"
#include "index/vd_index.h"

typedef struct options {
    const char *data_dir, *synthetic, *generator;
    int metric_given;
    vd_metric metric;
    uint32_t m, ef_construction, ef, threads, rounds, group;
    double fraction;
    size_t max_base, n_queries;
    uint64_t seed;
    int json;
} options;

typedef struct set {
    char name[256];
    vd_bench_fmat all, queries; /* all: initial points, then the reserve churn inserts */
    size_t n_initial;
} set;

/* ---- data ------------------------------------------------------------------------------ */

static double gauss(uint64_t *s)
{
    double u = ((double)(vd_bench_splitmix64(s) >> 11) + 0.5) * 0x1.0p-53;
    double v = (double)(vd_bench_splitmix64(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u)) * cos(2 * M_PI * v);
}

static vd_status random_set(size_t n, uint32_t dim, size_t nq, uint64_t seed, vd_bench_fmat *a,
                            vd_bench_fmat *q, vd_err *err)
{
    a->data = vd_malloc(n * dim * sizeof(float));
    q->data = vd_malloc(nq * dim * sizeof(float));
    if (!a->data || !q->data) return vd_err_set(err, VD_NOMEM, "out of memory for %zux%u", n, dim);
    uint64_t s = seed;
    for (size_t i = 0; i < n * dim; i++) a->data[i] = (float)gauss(&s);
    for (size_t i = 0; i < nq * dim; i++) q->data[i] = (float)gauss(&s);
    a->n = n;
    q->n = nq;
    a->dim = q->dim = dim;
    return VD_OK;
}

static vd_status load_set(options *o, set *d, vd_err *err)
{
    double extra = o->fraction * o->rounds; /* churn inserts, in initial sets */
    vd_status st;
    if (o->synthetic) {
        size_t n;
        uint32_t dim;
        if ((st = vd_bench_parse_nxd(o->synthetic, &n, &dim, err))) return st;
        if (!o->metric_given) o->metric = VD_METRIC_L2;
        size_t total = n + (size_t)ceil(extra * (double)n), nq = o->n_queries ? o->n_queries : 200;
        if (!strcmp(o->generator, "random"))
            st = random_set(total, dim, nq, o->seed, &d->all, &d->queries, err);
        else if (!strcmp(o->generator, "clustered"))
            st = vd_bench_synthetic_clustered(total, dim, nq, o->seed, &d->all, &d->queries,
                                              err);
        else
            st = vd_bench_synthetic(total, dim, nq, o->seed, &d->all, &d->queries, err);
        d->n_initial = n;
        snprintf(d->name, sizeof d->name, "synthetic-%s-%zux%u-%s", o->generator, n, dim,
                 vd_metric_name(o->metric));
        return st;
    }
    char path[4096];
    vd_bench_basename(o->data_dir, d->name, sizeof d->name);
    if (!o->metric_given && vd_bench_metric_from_dir(o->data_dir, &o->metric) != VD_OK)
        return vd_err_set(err, VD_INVALID, "%s: no -l2/-cosine/-ip suffix; give --metric",
                          o->data_dir);
    snprintf(path, sizeof path, "%s/base.fvecs", o->data_dir);
    size_t want = o->max_base ? o->max_base + (size_t)ceil(extra * (double)o->max_base) : 0;
    if ((st = vd_bench_load_vectors(path, want, &d->all, err))) return st;
    d->n_initial = o->max_base && want <= d->all.n ? o->max_base
                                                  : (size_t)((double)d->all.n / (1 + extra));
    snprintf(path, sizeof path, "%s/query.fvecs", o->data_dir);
    return vd_bench_load_fvecs(path, o->n_queries ? o->n_queries : 200, &d->queries, err);
}

/* ---- measurement ----------------------------------------------------------------------- */

/* Recall@10 of ix at ef over the queries against brute force among the live rows; the mean
 * distances a query computed into *dist (the search's cost, to compare graphs at equal work). */
static double recall_live(vd_index *ix, const set *d, const uint8_t *live, const options *o,
                          double *dist, vd_err *err)
{
    size_t n_live = 0;
    for (size_t i = 0; i < d->all.n; i++) n_live += live[i];
    vd_bench_fmat sub = {.data = vd_malloc(n_live * d->all.dim * sizeof(float)), .n = n_live,
                         .dim = d->all.dim};
    uint32_t *row = vd_malloc(n_live * sizeof *row);
    vd_bench_imat gt = {0};
    double r = -1;
    if (!sub.data || !row) goto done;
    for (size_t i = 0, j = 0; i < d->all.n; i++)
        if (live[i]) {
            memcpy(sub.data + j * d->all.dim, d->all.data + i * d->all.dim,
                   d->all.dim * sizeof(float));
            row[j++] = (uint32_t)i;
        }
    if (vd_bench_ground_truth(&sub, &d->queries, o->metric, 10, o->threads, &gt, err)) goto done;
    size_t hit = 0;
    double nd = 0;
    for (size_t qi = 0; qi < d->queries.n; qi++) {
        vd_hit h[10];
        uint32_t nh = 0;
        vd_search_explain ex;
        vd_search_opts so = {.k = 10, .ef = o->ef, .explain = &ex};
        vd_index_search_opts(ix, d->queries.data + qi * d->all.dim, &so, h, &nh, NULL);
        nd += (double)ex.distances;
        for (uint32_t a = 0; a < nh; a++)
            for (int b = 0; b < 10; b++)
                if (h[a].id == row[gt.data[qi * gt.dim + b]]) hit++;
    }
    r = (double)hit / (10.0 * (double)d->queries.n);
    if (dist) *dist = nd / (double)d->queries.n;
done:
    vd_free(sub.data);
    vd_free(row);
    vd_bench_imat_free(&gt);
    return r;
}

static vd_index *open_index(const set *d, const options *o, vd_err *err)
{
    vd_index_params p = {.dim = d->all.dim, .metric = o->metric, .m = o->m,
                         .ef_construction = o->ef_construction, .seed = o->seed,
                         .deferred_publish = 1};
    vd_index *ix = NULL;
    return vd_index_open(&p, &ix, err) == VD_OK ? ix : NULL;
}

/* Inserts the live rows in ascending order (one batch per 16k rows, published). */
static vd_status add_rows(vd_index *ix, const set *d, const uint8_t *live, const options *o,
                          vd_err *err)
{
    size_t cap = 16384, n = 0;
    uint64_t *ids = vd_malloc(cap * sizeof *ids);
    float *v = vd_malloc(cap * d->all.dim * sizeof(float));
    vd_status st = ids && v ? VD_OK : vd_err_set(err, VD_NOMEM, "out of memory");
    for (size_t i = 0; i <= d->all.n && st == VD_OK; i++) {
        if (i < d->all.n && live[i]) {
            ids[n] = i;
            memcpy(v + n * d->all.dim, d->all.data + i * d->all.dim, d->all.dim * sizeof(float));
            n++;
        }
        if (n == cap || (i == d->all.n && n)) {
            st = vd_index_add_batch(ix, ids, v, n, o->threads, NULL, NULL, err);
            vd_index_publish(ix);
            vd_index_changes_clear(ix);
            n = 0;
        }
    }
    vd_free(ids);
    vd_free(v);
    return st;
}

/* A fresh index of the live rows, its recall (and distances per query into *dist). */
static double fresh_recall(const set *d, const uint8_t *live, const options *o, double *dist,
                           vd_err *err)
{
    vd_index *ix = open_index(d, o, err);
    double r = ix && add_rows(ix, d, live, o, err) == VD_OK
                   ? recall_live(ix, d, live, o, dist, err)
                   : -1;
    vd_index_close(ix);
    return r;
}

typedef struct deleter {
    double seconds;
    size_t n, in_group;
} deleter;

/* Removes row i, publishing every o->group operations (timed). */
static void remove_row(vd_index *ix, deleter *dl, uint64_t i, const options *o)
{
    uint64_t t0 = vd_now_ns();
    vd_index_remove(ix, i, NULL);
    if (++dl->in_group >= o->group) {
        vd_index_publish(ix);
        vd_index_changes_clear(ix);
        dl->in_group = 0;
    }
    dl->seconds += vd_bench_seconds(t0, vd_now_ns());
    dl->n++;
}

static void flush(vd_index *ix, deleter *dl)
{
    uint64_t t0 = vd_now_ns();
    vd_index_publish(ix);
    vd_index_changes_clear(ix);
    dl->seconds += vd_bench_seconds(t0, vd_now_ns());
    dl->in_group = 0;
}

/* Picks a random live row among the first `limit` (rejection sampling). */
static size_t random_live(const uint8_t *live, size_t limit, uint64_t *s)
{
    for (;;) {
        size_t i = (size_t)(vd_bench_splitmix64(s) % limit);
        if (live[i]) return i;
    }
}

typedef struct outcome {
    double recall, dist, fresh, fresh_dist;
} outcome;

static void report(const options *o, const set *d, const char *phase, outcome r,
                   const deleter *dl)
{
    double recall = r.recall, fresh = r.fresh;
    double us = dl && dl->n ? dl->seconds * 1e6 / (double)dl->n : NAN;
    if (o->json) {
        vd_bench_json j;
        vd_bench_json_begin(&j);
        vd_bench_json_str(&j, "bench", "churn");
        vd_bench_json_str(&j, "dataset", d->name);
        vd_bench_json_int(&j, "n", (long long)d->n_initial);
        vd_bench_json_int(&j, "dim", d->all.dim);
        vd_bench_json_str(&j, "metric", vd_metric_name(o->metric));
        vd_bench_json_int(&j, "M", o->m);
        vd_bench_json_int(&j, "ef_construction", o->ef_construction);
        vd_bench_json_int(&j, "ef", o->ef);
        vd_bench_json_str(&j, "phase", phase);
        vd_bench_json_num(&j, "recall_at_10", recall);
        vd_bench_json_num(&j, "fresh_recall_at_10", fresh);
        vd_bench_json_num(&j, "distances_per_query", r.dist);
        vd_bench_json_num(&j, "fresh_distances_per_query", r.fresh_dist);
        vd_bench_json_num(&j, "us_per_delete", us);
        vd_bench_json_int(&j, "group", o->group);
        vd_bench_json_end(&j, stdout);
    }
    fprintf(o->json ? stderr : stdout, "   %-22s recall@10 %.4f (%4.0f dist/q)  fresh build of "
            "the same points %.4f (%4.0f)  %+.4f%s", phase, recall, r.dist, fresh, r.fresh_dist,
            recall - fresh, dl ? "" : "\n");
    if (dl) fprintf(o->json ? stderr : stdout, "   %.1f us per delete\n", us);
}

static int run(options *o)
{
    set d = {0};
    vd_err err = {0};
    if (load_set(o, &d, &err)) {
        fprintf(stderr, "bench-churn: %s\n", err.msg);
        return 1;
    }
    size_t n0 = d.n_initial, total = d.all.n;
    fprintf(o->json ? stderr : stdout, "\n== churn %s: %zu initial points (+%zu for churn), dim "
            "%u, %s | M %u, ef_construction %u, ef %u, %zu queries, groups of %u\n",
            d.name, n0, total - n0, d.all.dim, vd_metric_name(o->metric), o->m,
            o->ef_construction, o->ef, d.queries.n, o->group);
    uint8_t *live = vd_calloc(total, 1);
    vd_index *ix = NULL;
    if (!live) goto fail;
    memset(live, 1, n0);
    ix = open_index(&d, o, &err);
    if (!ix || add_rows(ix, &d, live, o, &err)) goto fail;
    outcome f = {0};
    f.recall = f.fresh = recall_live(ix, &d, live, o, &f.dist, &err);
    f.fresh_dist = f.dist;
    report(o, &d, "fresh build", f, NULL);
    /* A random half removed. */
    uint64_t s = o->seed * 7 + 1;
    deleter dl = {0};
    for (size_t k = 0; k < n0 / 2; k++) {
        size_t i = random_live(live, n0, &s);
        live[i] = 0;
        remove_row(ix, &dl, i, o);
    }
    flush(ix, &dl);
    outcome h = {0};
    h.recall = recall_live(ix, &d, live, o, &h.dist, &err);
    h.fresh = fresh_recall(&d, live, o, &h.fresh_dist, &err);
    report(o, &d, "after 50 % deleted", h, &dl);
    vd_index_close(ix);
    /* Churn from a fresh index of the initial points. */
    memset(live, 0, total);
    memset(live, 1, n0);
    ix = open_index(&d, o, &err);
    if (!ix || add_rows(ix, &d, live, o, &err)) goto fail;
    deleter dc = {0};
    size_t next = n0, per = (size_t)(o->fraction * (double)n0);
    for (uint32_t r = 0; r < o->rounds && next + per <= total; r++) {
        for (size_t k = 0; k < per; k++) {
            size_t i = random_live(live, next, &s);
            live[i] = 0;
            remove_row(ix, &dc, i, o);
        }
        flush(ix, &dc);
        uint8_t *add = vd_calloc(total, 1);
        if (!add) goto fail;
        memset(add + next, 1, per);
        for (size_t i = next; i < next + per; i++) live[i] = 1;
        next += per;
        vd_status st = add_rows(ix, &d, add, o, &err);
        vd_free(add);
        if (st) goto fail;
    }
    char phase[64];
    snprintf(phase, sizeof phase, "after %u x %.0f %% churn", o->rounds, o->fraction * 100);
    outcome c = {0};
    c.recall = recall_live(ix, &d, live, o, &c.dist, &err);
    c.fresh = fresh_recall(&d, live, o, &c.fresh_dist, &err);
    report(o, &d, phase, c, &dc);
    vd_index_close(ix);
    vd_free(live);
    vd_bench_fmat_free(&d.all);
    vd_bench_fmat_free(&d.queries);
    return 0;
fail:
    fprintf(stderr, "bench-churn: %s\n", err.msg[0] ? err.msg : "out of memory");
    return 1;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: bench-churn (--data DIR | --synthetic NxD) [options]\n"
"Recall@10 at a fixed ef after a random half of the points is removed and after rounds of\n"
"churn, each against a fresh build of the same points, and the cost per delete.\n"
"\n"
"  --data DIR            base.fvecs and query.fvecs; the metric from the -l2/-cosine/-ip suffix\n"
"  --max-base N          initial points: the first N rows (the next ones are churn's inserts)\n"
"  --synthetic NxD       N initial points of dim D (and the inserts), seeded\n"
"  --generator G         synthetic: mixture (default), clustered or random (iid gaussian)\n"
"  --metric M            l2, cosine or ip\n"
"  --ef EF               search ef (default 100)\n"
"  --m M, --ef-construction E   HNSW parameters (default 16, 200)\n"
"  --rounds R            churn rounds (default 10)\n"
"  --fraction F          share of the live points each round replaces (default 0.1)\n"
"  --group G             operations per publish, as the daemon's group commits (default 256)\n"
"  --queries Q           queries (default 200)\n"
"  --threads N           build and ground-truth threads (default: all cores)\n"
"  --seed S              data and level seed (default 100)\n"
"  --json                one JSON object per measurement on stdout (table on stderr)\n"
"  --help                this text\n");
}

int main(int argc, char **argv)
{
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    options o = {.generator = "mixture", .m = 16, .ef_construction = 200, .ef = 100,
                 .threads = nc > 0 ? (uint32_t)nc : 1, .rounds = 10, .group = 256,
                 .fraction = 0.1, .seed = 100};
    static const struct option longopts[] = {
        {"data", 1, NULL, 'd'},     {"synthetic", 1, NULL, 's'}, {"generator", 1, NULL, 'g'},
        {"metric", 1, NULL, 'M'},   {"ef", 1, NULL, 'e'},        {"m", 1, NULL, 'm'},
        {"ef-construction", 1, NULL, 'c'}, {"rounds", 1, NULL, 'r'},
        {"fraction", 1, NULL, 'f'}, {"group", 1, NULL, 'G'},     {"queries", 1, NULL, 'q'},
        {"threads", 1, NULL, 't'},  {"seed", 1, NULL, 'S'},      {"max-base", 1, NULL, 'b'},
        {"json", 0, NULL, 'j'},     {"help", 0, NULL, 'h'},      {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'd': o.data_dir = optarg; break;
        case 's': o.synthetic = optarg; break;
        case 'g':
            o.generator = optarg;
            if (strcmp(optarg, "mixture") && strcmp(optarg, "clustered") &&
                strcmp(optarg, "random"))
                goto bad;
            break;
        case 'M':
            if (vd_metric_parse(optarg, &o.metric) != VD_OK) goto bad;
            o.metric_given = 1;
            break;
        case 'e': o.ef = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'm': o.m = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'c': o.ef_construction = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'r': o.rounds = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'f': o.fraction = strtod(optarg, &end); break;
        case 'G': o.group = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'q': o.n_queries = strtoul(optarg, &end, 10); break;
        case 't': o.threads = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'S': o.seed = strtoull(optarg, &end, 10); break;
        case 'b': o.max_base = strtoul(optarg, &end, 10); break;
        case 'j': o.json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (end && *end) goto bad;
        continue;
    bad:
        fprintf(stderr, "bench-churn: bad value '%s' for %s\n", optarg, argv[optind - 1]);
        return 2;
    }
    if (!o.data_dir == !o.synthetic || o.ef == 0 || o.group == 0 || o.threads == 0 ||
        !(o.fraction > 0 && o.fraction < 1)) {
        fprintf(stderr, "bench-churn: give one of --data and --synthetic; ef, group, threads > 0;"
                " 0 < fraction < 1\n");
        return 2;
    }
    return run(&o);
}
