/* bench/bench_filter.c: filtered search, side by side in one run - vectord (payload indexes,
 * the planner, the filtered traversal), the exact scan over the matching points, and FAISS
 * HNSW with an IDSelectorBitmap (Debian's libfaiss-dev, same M and ef_construction) - plus
 * unfiltered vectord at recall 0.95 for reference, payload index creation rate, memory per
 * indexed point and open time with and without indexes.
 *
 * Per data set (texmex layout in --data DIR): vectord's index is built (vd_index_add_batch)
 * and imported into a fresh data directory under --tmp with JSON payloads; payload indexes
 * are created over the loaded collection (the daemon's path: a definition write, then build
 * steps, timed); the store is reopened to time the open and to show nothing is rebuilt.
 * Filters (the list):
 *   fashion-mnist: label == the query's own label (10 %, correlated), label == another label
 *     ((own + 5) % 10, 10 %, anti-correlated);
 *   GloVe: rank < 3405 (1 %), rank < 34048 (10 %), initial == "z", len >= 12, with payload
 *     {"rank": row, "initial": first letter, "len": letters} from base_words.txt.gz (rows in
 *     frequency order);
 *   both: synthetic keywords at 50 %, 10 %, 1 %, 0.1 % (uniformly random: uncorrelated).
 * For each filter and query the ground truth is the exact top-k over the matching points.
 * The exact scan is reported three ways: `exact`, the matching slots found through the same
 * payload index and compiled filter vectord uses, then a SIMD scan over a contiguous copy of
 * the vectors (the peer the "never slower" target compares with); `(given)`, the same scan
 * with the rows handed over for free; `(vd)`, vectord's own exact plan forced. vectord and FAISS each sweep ef upwards
 * until recall@k >= 0.95 (or the sweep ends); QPS is per query on one thread, in that thread's
 * CPU time, and vectord's includes compiling the filter for that query (a server compiles
 * per request). For the
 * uncorrelated filters vectord also runs at twice the unfiltered ef of recall 0.95 (what an
 * outside check does) and the ratio to unfiltered QPS is printed. Every vectord row checks
 * that each query got exactly min(k, matches) hits, all matching.
 *
 * --subset-index adds, for each uncorrelated filter, an index built over the matching points
 * alone and searched unfiltered: what a collection per keyword value gives, and the bound of
 * what per-value links in the one graph (Qdrant's payload_m) could reach. Not a peer the
 * targets compare with: it holds a second copy of those vectors and answers one filter only.
 *
 * Timings on a shared 2-core machine are noisy; the ratios are what to quote. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "bench/bench_common.h"
#include "bench/faiss_peer.h"
#include "storage/vd_storage.h"

#define K 10

/* The human table: stdout, or stderr when --json writes JSON lines to stdout. */
static FILE *txt;

/* Search loops are timed in the searching thread's CPU time: on a machine shared with other
 * work, time slices lost to other processes do not count (memory and cache contention still
 * do). Builds and opens are wall time. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const uint32_t efs_vd[] = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024};
static const uint32_t efs_faiss[] = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768,
                                     1024, 2048, 4096};

typedef struct opts {
    const char *dirs[8];
    int n_dirs;
    const char *tmp;
    uint32_t m, efc, threads, runs;
    size_t n_queries;
    int json, no_faiss, subset_index;
} opts;

static uint32_t g_runs = 2; /* passes per measurement; the best QPS counts */
static vd_search_plan g_plan; /* 0: vectord's planner; VD_PLAN_EXACT: its exact scan forced */

/* One data set with its payload columns. */
typedef struct dset {
    char name[128];
    vd_bench_fmat base, queries;
    vd_bench_imat gt; /* unfiltered ground truth */
    vd_metric metric;
    float *unit; /* cosine: unit-norm copy of base (what vectord stores) */
    int fashion, glove;
    int32_t *label, *qlabel;  /* fashion */
    char *initial;            /* glove: first byte of the word */
    uint32_t *len;            /* glove: bytes of the word */
    uint32_t *kw[4];          /* synthetic keywords: 2, 10, 100, 1000 values */
} dset;

static const uint32_t kw_values[4] = {2, 10, 100, 1000};
static const char *const kw_field[4] = {"k50", "k10", "k1", "k01"};

/* ---- filters ---------------------------------------------------------------------------- */
typedef enum fkind { F_LABEL_OWN, F_LABEL_OTHER, F_RANK_LT, F_INITIAL, F_LEN_GE, F_KW } fkind;

typedef struct fspec {
    const char *name;
    fkind kind;
    int64_t arg;      /* rank bound, len bound, keyword column */
    int uncorrelated; /* counts toward the 0.5 x unfiltered target */
} fspec;

typedef struct fbuf { /* one condition, built per query */
    vd_filter f;
    vd_fval v;
    char s[16];
} fbuf;

static void filter_of(const dset *d, const fspec *fs, size_t q, fbuf *b)
{
    memset(b, 0, sizeof *b);
    b->f.values = &b->v;
    b->f.n_values = 1;
    b->f.op = VD_FOP_EQ;
    switch (fs->kind) {
    case F_LABEL_OWN: case F_LABEL_OTHER:
        b->f.field = "label";
        b->v.type = VD_FVAL_INT;
        b->v.i = fs->kind == F_LABEL_OWN ? d->qlabel[q] : (d->qlabel[q] + 5) % 10;
        break;
    case F_RANK_LT:
        b->f.field = "rank";
        b->f.op = VD_FOP_LT;
        b->v.type = VD_FVAL_INT;
        b->v.i = fs->arg;
        break;
    case F_INITIAL:
        b->f.field = "initial";
        b->v.type = VD_FVAL_STRING;
        b->v.s.p = "z";
        b->v.s.len = 1;
        break;
    case F_LEN_GE:
        b->f.field = "len";
        b->f.op = VD_FOP_GTE;
        b->v.type = VD_FVAL_INT;
        b->v.i = fs->arg;
        break;
    case F_KW:
        b->f.field = kw_field[fs->arg];
        snprintf(b->s, sizeof b->s, "v0");
        b->v.type = VD_FVAL_STRING;
        b->v.s.p = b->s;
        b->v.s.len = 2;
        break;
    }
    b->f.field_len = strlen(b->f.field);
}

/* The same filter on row r, for the ground truth and FAISS's selector. */
static int row_matches(const dset *d, const fspec *fs, size_t q, size_t r)
{
    switch (fs->kind) {
    case F_LABEL_OWN: return d->label[r] == d->qlabel[q];
    case F_LABEL_OTHER: return d->label[r] == (d->qlabel[q] + 5) % 10;
    case F_RANK_LT: return (int64_t)r < fs->arg;
    case F_INITIAL: return d->initial[r] == 'z';
    case F_LEN_GE: return (int64_t)d->len[r] >= fs->arg;
    case F_KW: return d->kw[fs->arg][r] == 0;
    }
    return 0;
}

static int per_query(const fspec *fs)
{
    return fs->kind == F_LABEL_OWN || fs->kind == F_LABEL_OTHER;
}

/* ---- data ------------------------------------------------------------------------------- */
static uint64_t rng = 0x5eedf117e2ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int32_t *read_labels(const char *path, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    int32_t *a = calloc(n, sizeof *a);
    for (size_t i = 0; i < n && fscanf(f, "%d", &a[i]) == 1; i++) {}
    fclose(f);
    return a;
}

static int read_words(dset *d, const char *path)
{
    gzFile g = gzopen(path, "r");
    if (!g) return -1;
    char line[4096];
    d->initial = calloc(d->base.n, 1);
    d->len = calloc(d->base.n, sizeof *d->len);
    for (size_t i = 0; i < d->base.n && gzgets(g, line, sizeof line); i++) {
        size_t n = strcspn(line, "\r\n");
        unsigned char c = (unsigned char)line[0];
        /* The first byte as a one-letter string: a byte JSON cannot hold alone becomes '_'. */
        d->initial[i] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '_';
        d->len[i] = (uint32_t)n;
    }
    gzclose(g);
    return 0;
}

static int load_set(const opts *o, const char *dir, dset *d)
{
    char path[1024];
    vd_err e;
    memset(d, 0, sizeof *d);
    vd_bench_basename(dir, d->name, sizeof d->name);
    if (vd_bench_metric_from_dir(dir, &d->metric) != VD_OK) d->metric = VD_METRIC_L2;
    snprintf(path, sizeof path, "%s/base.fvecs", dir);
    if (vd_bench_load_vectors(path, 0, &d->base, &e) != VD_OK) goto fail;
    snprintf(path, sizeof path, "%s/query.fvecs", dir);
    if (vd_bench_load_vectors(path, o->n_queries, &d->queries, &e) != VD_OK) goto fail;
    snprintf(path, sizeof path, "%s/gt.ivecs", dir);
    if (vd_bench_load_ivecs(path, d->queries.n, (int32_t)d->base.n, &d->gt, &e) != VD_OK) goto fail;
    snprintf(path, sizeof path, "%s/base_labels.txt", dir);
    if (access(path, R_OK) == 0) {
        d->fashion = 1;
        d->label = read_labels(path, d->base.n);
        snprintf(path, sizeof path, "%s/query_labels.txt", dir);
        d->qlabel = read_labels(path, d->queries.n);
    }
    snprintf(path, sizeof path, "%s/base_words.txt.gz", dir);
    if (access(path, R_OK) == 0) d->glove = read_words(d, path) == 0;
    for (int c = 0; c < 4; c++) {
        d->kw[c] = malloc(d->base.n * sizeof *d->kw[c]);
        for (size_t i = 0; i < d->base.n; i++) d->kw[c][i] = (uint32_t)(next_rand() % kw_values[c]);
    }
    if (d->metric == VD_METRIC_COSINE) {
        d->unit = malloc(d->base.n * d->base.dim * sizeof *d->unit);
        for (size_t i = 0; i < d->base.n; i++) {
            const float *v = d->base.data + i * d->base.dim;
            float s = sqrtf(vd_dist_dot(v, v, d->base.dim));
            for (uint32_t j = 0; j < d->base.dim; j++) d->unit[i * d->base.dim + j] = v[j] / s;
        }
    }
    return 0;
fail:
    fprintf(stderr, "bench-filter: %s: %s\n", dir, e.msg);
    return -1;
}

/* The JSON payload of row i. */
static int payload_of(const dset *d, size_t i, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "{");
    if (d->fashion) n += snprintf(buf + n, cap - n, "\"label\":%d,", d->label[i]);
    if (d->glove)
        n += snprintf(buf + n, cap - n, "\"rank\":%zu,\"initial\":\"%c\",\"len\":%u,", i,
                      d->initial[i], d->len[i]);
    for (int c = 0; c < 4; c++)
        n += snprintf(buf + n, cap - n, "\"%s\":\"v%u\"%s", kw_field[c], d->kw[c][i],
                      c < 3 ? "," : "}");
    return n;
}

/* ---- vectord: build, import, payload indexes, reopen --------------------------------------- */
typedef struct vd_side {
    vd_store *st;
    vd_collection *c;
    char dir[512];
    double build_s, open_plain_s, open_indexed_s;
    int rebuilt_at_open; /* a build step had work after the reopen */
    struct { const char *field; vd_pindex_kind kind; double secs; uint64_t points, bytes; } pi[8];
    int n_pi;
} vd_side;

static vd_status reopen(const opts *o, vd_side *v, double *secs, vd_err *e)
{
    vd_collection_release(v->c);
    v->c = NULL;
    vd_store_close(v->st);
    v->st = NULL;
    vd_store_options so = {.create = 0, .n_threads = o->threads};
    uint64_t t0 = vd_now_ns();
    vd_status s = vd_store_open(v->dir, &so, &v->st, e);
    if (s == VD_OK) s = vd_store_acquire(v->st, "b", &v->c, e);
    *secs = vd_bench_seconds(t0, vd_now_ns());
    return s;
}

static vd_status vd_setup(const opts *o, const dset *d, vd_side *v, vd_err *e)
{
    vd_index_params ip = {.dim = d->base.dim, .metric = d->metric, .m = o->m,
                          .ef_construction = o->efc, .seed = 0x5eedb011d,
                          .capacity_hint = (uint32_t)d->base.n};
    vd_index *ix = NULL;
    size_t n = d->base.n;
    uint64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = i;
    uint64_t t0 = vd_now_ns();
    vd_status s = vd_index_open(&ip, &ix, e);
    if (s == VD_OK) s = vd_index_add_batch(ix, ids, d->base.data, n, o->threads, NULL, NULL, e);
    v->build_s = vd_bench_seconds(t0, vd_now_ns());
    char **pl = calloc(n, sizeof *pl);
    uint32_t *lens = calloc(n, sizeof *lens);
    for (size_t i = 0; i < n && s == VD_OK; i++) {
        char buf[256];
        lens[i] = (uint32_t)payload_of(d, i, buf, sizeof buf);
        pl[i] = strdup(buf);
    }
    snprintf(v->dir, sizeof v->dir, "%s/vd-bench-filter-%d", o->tmp, (int)getpid());
    vd_store_options so = {.create = 1, .n_threads = o->threads};
    vd_collection_params cp = {.name = "b", .dim = d->base.dim, .metric = d->metric, .m = o->m,
                               .ef_construction = o->efc};
    if (s == VD_OK) s = vd_store_open(v->dir, &so, &v->st, e);
    if (s == VD_OK)
        s = vd_store_import(v->st, &cp, ix, n, ids, (const uint8_t *const *)pl, lens, 0, NULL,
                            NULL, e);
    if (s == VD_OK) ix = NULL; /* the store owns it */
    vd_index_close(ix);
    for (size_t i = 0; i < n; i++) free(pl[i]);
    free(pl);
    free(lens);
    free(ids);
    /* Twice, the second counts: the first after the import also warms the page cache. */
    if (s == VD_OK) s = reopen(o, v, &v->open_plain_s, e);
    if (s == VD_OK) s = reopen(o, v, &v->open_plain_s, e);
    return s;
}

static vd_status create_index(vd_side *v, const char *field, vd_pindex_kind kind, vd_err *e)
{
    vd_op op = {.kind = VD_OP_PINDEX_CREATE, .collection = "b", .field = field,
                .pindex_kind = kind};
    uint64_t t0 = vd_now_ns();
    vd_status s = vd_store_write(v->st, &op, 1, e);
    if (s == VD_OK && op.status != VD_OK) {
        *e = op.err;
        s = op.status;
    }
    for (int more = 1; s == VD_OK && more;) s = vd_store_pindex_step(v->st, 16384, &more, e);
    double secs = vd_bench_seconds(t0, vd_now_ns());
    vd_collection_info info;
    vd_collection_info_get(v->c, &info);
    for (uint32_t i = 0; i < info.n_pindexes; i++)
        if (!strcmp(info.pindexes[i].field, field)) {
            v->pi[v->n_pi].field = field;
            v->pi[v->n_pi].kind = kind;
            v->pi[v->n_pi].secs = secs;
            v->pi[v->n_pi].points = info.pindexes[i].points;
            v->pi[v->n_pi].bytes = info.pindexes[i].bytes_memory;
            v->n_pi++;
        }
    return s;
}

static vd_status vd_indexes(const opts *o, const dset *d, vd_side *v, vd_err *e)
{
    vd_status s = VD_OK;
    if (d->fashion) s = create_index(v, "label", VD_PINDEX_INTEGER, e);
    if (s == VD_OK && d->glove) s = create_index(v, "rank", VD_PINDEX_INTEGER, e);
    if (s == VD_OK && d->glove) s = create_index(v, "initial", VD_PINDEX_KEYWORD, e);
    if (s == VD_OK && d->glove) s = create_index(v, "len", VD_PINDEX_INTEGER, e);
    for (int c = 0; c < 4 && s == VD_OK; c++)
        s = create_index(v, kw_field[c], VD_PINDEX_KEYWORD, e);
    if (s == VD_OK) s = reopen(o, v, &v->open_indexed_s, e);
    if (s == VD_OK) s = reopen(o, v, &v->open_indexed_s, e);
    int more = 0;
    if (s == VD_OK) s = vd_store_pindex_step(v->st, 1, &more, e);
    v->rebuilt_at_open = more;
    return s;
}

/* ---- searching ----------------------------------------------------------------------------- */
typedef struct run {
    double recall, qps;
    uint32_t ef;
    int reached;
    uint64_t short_rows; /* queries with fewer than min(k, matches) hits, or a non-match */
    uint32_t plans[5];   /* vectord: queries per plan */
    double compile_us;   /* vectord: mean filter compile */
} run;

static double hits_recall(const uint64_t *got, uint32_t n_got, const uint64_t *want,
                          uint32_t n_want, uint64_t *hit)
{
    uint32_t h = 0;
    for (uint32_t a = 0; a < n_got; a++)
        for (uint32_t b = 0; b < n_want; b++)
            if (got[a] == want[b]) {
                h++;
                break;
            }
    *hit += h;
    return h;
}

/* The matching rows of filter fs for query q into a byte bitmap (FAISS's layout) and a list. */
typedef struct subset {
    uint8_t *bytes;
    size_t n_bytes;
    uint32_t *rows;
    size_t n;
} subset;

static void subset_of(const dset *d, const fspec *fs, size_t q, subset *out)
{
    memset(out->bytes, 0, out->n_bytes);
    out->n = 0;
    for (size_t r = 0; r < d->base.n; r++)
        if (row_matches(d, fs, q, r)) {
            out->bytes[r / 8] |= (uint8_t)(1u << (r % 8));
            out->rows[out->n++] = (uint32_t)r;
        }
}

/* Exact top-K over the subset (the ground truth), distances as vectord defines them. */
static uint32_t exact_topk(const dset *d, const float *q, const subset *s, uint64_t *ids)
{
    float best[K];
    uint32_t n = 0, dim = d->base.dim;
    float qn[4096];
    const float *base = d->unit ? d->unit : d->base.data;
    if (d->unit) {
        float norm = sqrtf(vd_dist_dot(q, q, dim));
        for (uint32_t j = 0; j < dim; j++) qn[j] = q[j] / norm;
        q = qn;
    }
    for (size_t i = 0; i < s->n; i++) {
        const float *v = base + (size_t)s->rows[i] * dim;
        float dist = d->unit ? 1.0f - vd_dist_dot(q, v, dim) : vd_dist_l2sq(q, v, dim);
        if (n == K && dist >= best[K - 1]) continue;
        uint32_t at = n < K ? n++ : K - 1;
        while (at > 0 && best[at - 1] > dist) {
            best[at] = best[at - 1];
            ids[at] = ids[at - 1];
            at--;
        }
        best[at] = dist;
        ids[at] = s->rows[i];
    }
    return n;
}

/* What one filter is, per query: its matches, the ground truth, FAISS's bitmap. */
typedef struct truth {
    size_t nq;
    uint64_t *gt;       /* nq x K */
    uint32_t *n_gt;     /* min(K, matches) */
    uint64_t *n_match;  /* matches per query */
    uint8_t **bitmap;   /* per query (shared when the filter is the same for all) */
    size_t n_bytes;
    double exact_qps;       /* the matching rows found through the payload index, then scanned */
    double exact_given_qps; /* the rows handed over for free (the scan alone) */
    double exact_vd_qps;    /* vectord's own exact scan forced (its node layout, same filter) */
    double selectivity;     /* mean matches / n */
} truth;

static void truth_free(truth *t, int shared)
{
    for (size_t i = 0; t->bitmap && i < (shared ? 1 : t->nq); i++) free(t->bitmap[i]);
    free(t->bitmap);
    free(t->gt);
    free(t->n_gt);
    free(t->n_match);
}

static void truth_of(const dset *d, const fspec *fs, truth *t)
{
    size_t nq = d->queries.n;
    subset s = {.n_bytes = (d->base.n + 7) / 8};
    s.rows = malloc(d->base.n * sizeof *s.rows);
    *t = (truth){.nq = nq, .n_bytes = s.n_bytes};
    t->gt = calloc(nq * K, sizeof *t->gt);
    t->n_gt = calloc(nq, sizeof *t->n_gt);
    t->n_match = calloc(nq, sizeof *t->n_match);
    t->bitmap = calloc(nq, sizeof *t->bitmap);
    double scan_s = 0, sel = 0;
    for (size_t q = 0; q < nq; q++) {
        if (q == 0 || per_query(fs)) {
            s.bytes = calloc(1, s.n_bytes);
            subset_of(d, fs, q, &s);
        }
        t->bitmap[q] = s.bytes;
        t->n_match[q] = s.n;
        sel += (double)s.n / (double)d->base.n;
        uint64_t t0 = cpu_ns();
        t->n_gt[q] = exact_topk(d, d->queries.data + q * d->queries.dim, &s, t->gt + q * K);
        scan_s += vd_bench_seconds(t0, cpu_ns());
    }
    t->exact_given_qps = (double)nq / scan_s;
    t->selectivity = sel / (double)nq;
    free(s.rows);
}

/* The exact scan as a system without vectord's planner would run it: the filter compiled
 * through the same payload indexes, its matching slots listed, each one's distance. */
static void exact_run(vd_side *v, const dset *d, const fspec *fs, truth *t)
{
    subset s = {.rows = malloc(d->base.n * sizeof *s.rows)};
    uint64_t ids[K];
    t->exact_qps = 0;
    for (uint32_t pass = 0; pass < g_runs; pass++) {
    uint64_t t0 = cpu_ns();
    for (size_t q = 0; q < t->nq; q++) {
        fbuf b;
        vd_filtered *fv = NULL;
        filter_of(d, fs, q, &b);
        if (vd_filtered_begin(v->st, v->c, &b.f, &fv, NULL) != VD_OK) exit(1);
        s.n = 0;
        for (size_t got; (got = vd_filtered_next(fv, s.n ? s.rows[s.n - 1] + 1 : 0, s.rows + s.n,
                                                 d->base.n - s.n)) > 0;)
            s.n += got;
        vd_filtered_end(fv);
        uint32_t n = exact_topk(d, d->queries.data + q * d->queries.dim, &s, ids);
        if (n != t->n_gt[q]) exit(1); /* slots are rows: the same answer as the ground truth */
    }
    double qps = (double)t->nq / vd_bench_seconds(t0, cpu_ns());
    if (qps > t->exact_qps) t->exact_qps = qps;
    }
    free(s.rows);
}

/* vectord over every query at ef, each filter compiled for its query. */
/* Scores one query's n answers into *hit / *want: against the filter's ground truth (a query
 * short of min(k, matches) hits, or `bad`, counts in r->short_rows), or unfiltered (fs NULL)
 * against the set's gt.ivecs. */
static void score_query(const dset *d, const fspec *fs, const truth *t, size_t q,
                        const uint64_t *ids, uint32_t n, int bad, run *r, uint64_t *hit,
                        uint64_t *want)
{
    if (fs) {
        r->short_rows += bad || n != t->n_gt[q];
        hits_recall(ids, n, t->gt + q * K, t->n_gt[q], hit);
        *want += t->n_gt[q];
    } else {
        uint64_t g[K];
        for (uint32_t i = 0; i < K; i++) g[i] = (uint64_t)d->gt.data[q * d->gt.dim + i];
        hits_recall(ids, n, g, K, hit);
        *want += K;
    }
}

static void vd_run(vd_side *v, const dset *d, const fspec *fs, const truth *t, uint32_t ef,
                   run *r)
{
    vd_index *ix = vd_collection_index(v->c);
    uint64_t hit = 0, want = 0;
    double compile_ns = 0;
    memset(r, 0, sizeof *r);
    r->ef = ef;
    uint64_t t0 = cpu_ns();
    for (size_t q = 0; q < t->nq; q++) {
        vd_hit hits[K];
        uint32_t n = 0;
        vd_search_explain ex = {0};
        vd_search_opts so = {.k = K, .ef = ef, .explain = &ex, .plan = g_plan};
        vd_filtered *fv = NULL;
        vd_slot_filter sf = {0};
        if (fs) {
            fbuf b;
            filter_of(d, fs, q, &b);
            vd_err e;
            if (vd_filtered_begin(v->st, v->c, &b.f, &fv, &e) != VD_OK) {
                fprintf(stderr, "bench-filter: %s\n", e.msg);
                exit(1);
            }
            vd_filtered_stats fst;
            vd_filtered_stats_get(fv, &fst);
            compile_ns += (double)fst.compile_ns;
            vd_filtered_slot_filter(fv, &sf, NULL);
            so.filter = &sf;
        }
        vd_index_search_opts(ix, d->queries.data + q * d->queries.dim, &so, hits, &n, NULL);
        vd_filtered_end(fv);
        uint64_t ids[K];
        for (uint32_t i = 0; i < n; i++) ids[i] = hits[i].id;
        int bad = 0;
        for (uint32_t i = 0; fs && i < n; i++) bad |= !row_matches(d, fs, q, ids[i]);
        score_query(d, fs, t, q, ids, n, bad, r, &hit, &want);
        if (ex.plan >= 1 && ex.plan <= 4) r->plans[ex.plan]++;
    }
    double secs = vd_bench_seconds(t0, cpu_ns());
    r->qps = (double)t->nq / secs;
    r->recall = want ? (double)hit / (double)want : 1.0;
    r->compile_us = compile_ns / 1e3 / (double)t->nq;
}

static void faiss_run(faiss_peer *p, const dset *d, const fspec *fs, const truth *t,
                      uint32_t ef, run *r)
{
    uint64_t hit = 0, want = 0;
    memset(r, 0, sizeof *r);
    r->ef = ef;
    uint64_t t0 = cpu_ns();
    for (size_t q = 0; q < t->nq; q++) {
        uint64_t ids[K];
        float dists[K];
        uint32_t n = faiss_peer_search(p, d->queries.data + q * d->queries.dim, K, ef,
                                       fs ? t->bitmap[q] : NULL, t->n_bytes, ids, dists);
        score_query(d, fs, t, q, ids, n, 0, r, &hit, &want);
    }
    r->qps = (double)t->nq / vd_bench_seconds(t0, cpu_ns());
    r->recall = want ? (double)hit / (double)want : 1.0;
}

/* One pass of a system over every query at ef. */
typedef void (*run_fn)(void *sys, const dset *d, const fspec *fs, const truth *t, uint32_t ef,
                       run *r);

static void vd_pass(void *sys, const dset *d, const fspec *fs, const truth *t, uint32_t ef,
                    run *r)
{
    vd_run(sys, d, fs, t, ef, r);
}

static void faiss_pass(void *sys, const dset *d, const fspec *fs, const truth *t, uint32_t ef,
                       run *r)
{
    faiss_run(sys, d, fs, t, ef, r);
}

/* g_runs passes at ef: the best QPS (the same answers each time). */
static void best_of(run_fn f, void *sys, const dset *d, const fspec *fs, const truth *t,
                    uint32_t ef, run *r)
{
    run x;
    f(sys, d, fs, t, ef, r);
    for (uint32_t i = 1; i < g_runs; i++) {
        f(sys, d, fs, t, ef, &x);
        if (x.qps > r->qps) r->qps = x.qps;
    }
}

/* Sweeps ef upwards until recall >= 0.95: the first such run, or the last one. Recall is
 * found with one pass per ef; only the chosen ef is timed (best of g_runs). */
static run sweep(run_fn f, void *sys, const uint32_t *efs, size_t n_efs, const dset *d,
                 const fspec *fs, const truth *t)
{
    run r = {0};
    for (size_t i = 0; i < n_efs; i++) {
        f(sys, d, fs, t, efs[i], &r);
        if ((r.reached = r.recall >= 0.95)) break;
    }
    int reached = r.reached;
    best_of(f, sys, d, fs, t, r.ef, &r);
    r.reached = reached;
    return r;
}

static run sweep_vd(vd_side *v, const dset *d, const fspec *fs, const truth *t)
{
    return sweep(vd_pass, v, efs_vd, VD_ARRAY_LEN(efs_vd), d, fs, t);
}

static run sweep_faiss(faiss_peer *p, const dset *d, const fspec *fs, const truth *t)
{
    return sweep(faiss_pass, p, efs_faiss, VD_ARRAY_LEN(efs_faiss), d, fs, t);
}

/* ---- --subset-index: an index of the matching points alone ------------------------------- */

/* One pass of unfiltered searches at ef on the subset's own index (sys), recall against the
 * filter's ground truth. */
static void sub_pass(void *sys, const dset *d, const fspec *fs, const truth *t, uint32_t ef,
                     run *r)
{
    const vd_index *six = sys;
    uint64_t hit = 0, want = 0;
    memset(r, 0, sizeof *r);
    r->ef = ef;
    uint64_t t0 = cpu_ns();
    for (size_t q = 0; q < t->nq; q++) {
        vd_hit hits[K];
        uint64_t ids[K];
        uint32_t n = 0;
        vd_index_search(six, d->queries.data + q * d->queries.dim, K, ef, hits, &n, NULL);
        for (uint32_t i = 0; i < n; i++) ids[i] = hits[i].id;
        score_query(d, fs, t, q, ids, n, 0, r, &hit, &want);
    }
    r->qps = (double)t->nq / vd_bench_seconds(t0, cpu_ns());
    r->recall = want ? (double)hit / (double)want : 1.0;
}

/* Builds an index of the rows filter fs matches (the same for every query: only uncorrelated
 * filters come here), sweeps it to recall 0.95 and runs it at twice the unfiltered ef. */
static void subset_run(const opts *o, const dset *d, const fspec *fs, const truth *t,
                       const run *unf)
{
    size_t n = 0, dim = d->base.dim;
    uint64_t *ids = malloc(d->base.n * sizeof *ids);
    float *vecs = malloc(d->base.n * dim * sizeof *vecs);
    if (!ids || !vecs) {
        fprintf(stderr, "bench-filter: out of memory for the subset index\n");
        exit(1);
    }
    for (size_t r = 0; r < d->base.n; r++)
        if (row_matches(d, fs, 0, r)) {
            ids[n] = r;
            memcpy(vecs + n * dim, d->base.data + r * dim, dim * sizeof *vecs);
            n++;
        }
    vd_index_params ip = {.dim = d->base.dim, .metric = d->metric, .m = o->m,
                          .ef_construction = o->efc, .seed = 0x5eedb011d,
                          .capacity_hint = (uint32_t)n};
    vd_index *six = NULL;
    vd_err e;
    uint64_t t0 = vd_now_ns();
    if (vd_index_open(&ip, &six, &e) != VD_OK ||
        vd_index_add_batch(six, ids, vecs, n, o->threads, NULL, NULL, &e) != VD_OK) {
        fprintf(stderr, "bench-filter: subset index: %s\n", e.msg);
        exit(1);
    }
    double build_s = vd_bench_seconds(t0, vd_now_ns());
    free(vecs);
    free(ids);
    run r = sweep(sub_pass, six, efs_vd, VD_ARRAY_LEN(efs_vd), d, fs, t), r2;
    best_of(sub_pass, six, d, fs, t, 2 * unf->ef, &r2);
    vd_index_close(six);
    fprintf(txt, "  subset index of %s: %zu points built in %.1f s; ef %u recall %.3f %.0f QPS "
            "(%.2fx unfiltered); at 2xef %u recall %.3f %.0f QPS (%.2fx unfiltered)%s\n",
            fs->name, n, build_s, r.ef, r.recall, r.qps, r.qps / unf->qps, r2.ef, r2.recall,
            r2.qps, r2.qps / unf->qps, r.short_rows || r2.short_rows ? " SHORT" : "");
    fflush(txt);
    if (!o->json) return;
    vd_bench_json j;
    vd_bench_json_begin(&j);
    vd_bench_json_str(&j, "bench", "filter_subset_index");
    vd_bench_json_str(&j, "dataset", d->name);
    vd_bench_json_str(&j, "filter", fs->name);
    vd_bench_json_int(&j, "points", (long long)n);
    vd_bench_json_num(&j, "build_s", build_s);
    vd_bench_json_int(&j, "ef", r.ef);
    vd_bench_json_num(&j, "recall", r.recall);
    vd_bench_json_num(&j, "qps", r.qps);
    vd_bench_json_int(&j, "ef_2x", r2.ef);
    vd_bench_json_num(&j, "recall_2x", r2.recall);
    vd_bench_json_num(&j, "qps_2x", r2.qps);
    vd_bench_json_num(&j, "unfiltered_qps", unf->qps);
    vd_bench_json_end(&j, stdout);
}

/* ---- the report ---------------------------------------------------------------------------- */
static const char *plan_mix(const run *r, char *buf, size_t cap)
{
    if (r->plans[VD_PLAN_ONE_HOP])
        snprintf(buf, cap, "g%u/e%u/ge%u/o%u", r->plans[VD_PLAN_GRAPH], r->plans[VD_PLAN_EXACT],
                 r->plans[VD_PLAN_GRAPH_THEN_EXACT], r->plans[VD_PLAN_ONE_HOP]);
    else
        snprintf(buf, cap, "g%u/e%u/ge%u", r->plans[VD_PLAN_GRAPH], r->plans[VD_PLAN_EXACT],
                 r->plans[VD_PLAN_GRAPH_THEN_EXACT]);
    return buf;
}

static void report(const opts *o, const dset *d, const fspec *fs, const truth *t,
                   const run *vd, const run *vd2, const run *unf, const run *fa,
                   const vd_bench_env *env)
{
    char plans[64];
    double peer = fa->reached && fa->qps > t->exact_qps ? fa->qps : t->exact_qps;
    uint64_t matches = 0;
    for (size_t q = 0; q < t->nq; q++) matches += t->n_match[q];
    fprintf(txt, "%-16s %6.2f%% %7.0f | %4u %5.3f %8.0f %5.1f %-14s %s | %5.3f %8.0f "
            "%5.2fx | %8.0f %8.0f %8.0f | %4u %5.3f %8.0f | %s\n",
            fs->name, 100 * t->selectivity, (double)matches / (double)t->nq, vd->ef,
            vd->recall, vd->qps, vd->compile_us, plan_mix(vd, plans, sizeof plans),
            vd->short_rows ? "SHORT" : "ok", vd2 ? vd2->recall : NAN, vd2 ? vd2->qps : NAN,
            vd2 ? vd2->qps / unf->qps : NAN, t->exact_qps, t->exact_given_qps, t->exact_vd_qps,
            fa->ef, fa->recall, fa->qps, vd->reached && vd->qps >= peer ? "yes" : "NO");
    fflush(txt);
    if (!o->json) return;
    vd_bench_json j;
    vd_bench_json_begin(&j);
    vd_bench_json_str(&j, "bench", "filter");
    vd_bench_json_str(&j, "dataset", d->name);
    vd_bench_json_str(&j, "filter", fs->name);
    vd_bench_json_int(&j, "n", (long long)d->base.n);
    vd_bench_json_int(&j, "dim", d->base.dim);
    vd_bench_json_str(&j, "metric", vd_metric_name(d->metric));
    vd_bench_json_int(&j, "M", o->m);
    vd_bench_json_int(&j, "ef_construction", o->efc);
    vd_bench_json_int(&j, "k", K);
    vd_bench_json_int(&j, "queries", (long long)t->nq);
    vd_bench_json_num(&j, "selectivity", t->selectivity);
    vd_bench_json_int(&j, "uncorrelated", fs->uncorrelated);
    vd_bench_json_int(&j, "vectord_ef", vd->ef);
    vd_bench_json_num(&j, "vectord_recall", vd->recall);
    vd_bench_json_num(&j, "vectord_qps", vd->qps);
    vd_bench_json_int(&j, "vectord_short_rows", (long long)vd->short_rows);
    vd_bench_json_num(&j, "vectord_compile_us", vd->compile_us);
    vd_bench_json_int(&j, "plan_graph", vd->plans[VD_PLAN_GRAPH]);
    vd_bench_json_int(&j, "plan_exact", vd->plans[VD_PLAN_EXACT]);
    vd_bench_json_int(&j, "plan_graph_then_exact", vd->plans[VD_PLAN_GRAPH_THEN_EXACT]);
    vd_bench_json_int(&j, "plan_one_hop", vd->plans[VD_PLAN_ONE_HOP]);
    if (vd2) {
        vd_bench_json_int(&j, "vectord_2x_ef", vd2->ef);
        vd_bench_json_num(&j, "vectord_2x_recall", vd2->recall);
        vd_bench_json_num(&j, "vectord_2x_qps", vd2->qps);
    }
    vd_bench_json_int(&j, "unfiltered_ef", unf->ef);
    vd_bench_json_num(&j, "unfiltered_recall", unf->recall);
    vd_bench_json_num(&j, "unfiltered_qps", unf->qps);
    vd_bench_json_num(&j, "exact_qps", t->exact_qps);
    vd_bench_json_num(&j, "exact_given_rows_qps", t->exact_given_qps);
    vd_bench_json_num(&j, "exact_vectord_forced_qps", t->exact_vd_qps);
    vd_bench_json_int(&j, "faiss_ef", fa->ef);
    vd_bench_json_num(&j, "faiss_recall", fa->recall);
    vd_bench_json_num(&j, "faiss_qps", fa->qps);
    vd_bench_json_int(&j, "faiss_reached", fa->reached);
    vd_bench_json_str(&j, "cpu", env->cpu);
    vd_bench_json_str(&j, "cflags", env->cflags);
    vd_bench_json_str(&j, "commit", env->commit);
    vd_bench_json_end(&j, stdout);
}

static void report_set(const opts *o, const dset *d, const vd_side *v, double faiss_build_s,
                       const run *unf, const run *funf)
{
    fprintf(txt, "\n== %s: %zu x %u %s, M %u, ef_construction %u, %zu queries, k %d, 1 search "
           "thread\n", d->name, d->base.n, d->base.dim, vd_metric_name(d->metric), o->m,
           o->efc, d->queries.n, K);
    fprintf(txt, "build (%u threads): vectord %.1f s, FAISS %.1f s. Unfiltered recall 0.95: "
           "vectord ef %u (recall %.3f) %.0f QPS; FAISS ef %u (recall %.3f) %.0f QPS\n", o->threads,
           v->build_s, faiss_build_s, unf->ef, unf->recall, unf->qps, funf->ef, funf->recall,
           funf->qps);
    for (int i = 0; i < v->n_pi; i++)
        fprintf(txt, "payload index %-8s %-8s %8" PRIu64 " points in %6.2f s = %9.0f points/s, "
               "%5.1f bytes/point\n", v->pi[i].field, vd_pindex_kind_name(v->pi[i].kind),
               v->pi[i].points, v->pi[i].secs, (double)d->base.n / v->pi[i].secs,
               v->pi[i].points ? (double)v->pi[i].bytes / (double)v->pi[i].points : 0.0);
    fprintf(txt, "open: %.2f s without payload indexes, %.2f s with them; build steps after the "
           "reopen: %s\n", v->open_plain_s, v->open_indexed_s,
           v->rebuilt_at_open ? "SOME (rebuilt)" : "none (loaded, not rebuilt)");
    fprintf(txt, "%-16s %7s %7s | %4s %5s %8s %5s %-14s %s | %5s %8s %6s | %8s %8s %8s | "
            "%4s %5s %8s | %s\n", "filter", "sel", "matches", "ef", "rec", "vd QPS", "cmpus",
            "plans g/e/ge", "hits", "2xef", "QPS", "/unf", "exact", "(given)", "(vd)", "ef",
            "rec", "FAISS", ">= peers");
    if (o->json) {
        vd_bench_json j;
        vd_bench_json_begin(&j);
        vd_bench_json_str(&j, "bench", "filter_setup");
        vd_bench_json_str(&j, "dataset", d->name);
        vd_bench_json_num(&j, "build_s", v->build_s);
        vd_bench_json_num(&j, "faiss_build_s", faiss_build_s);
        vd_bench_json_num(&j, "open_plain_s", v->open_plain_s);
        vd_bench_json_num(&j, "open_indexed_s", v->open_indexed_s);
        vd_bench_json_int(&j, "rebuilt_at_open", v->rebuilt_at_open);
        for (int i = 0; i < v->n_pi; i++) {
            char key[64];
            snprintf(key, sizeof key, "pindex_%s_points_per_s", v->pi[i].field);
            vd_bench_json_num(&j, key, (double)d->base.n / v->pi[i].secs);
            snprintf(key, sizeof key, "pindex_%s_bytes_per_point", v->pi[i].field);
            vd_bench_json_num(&j, key, v->pi[i].points ? (double)v->pi[i].bytes /
                                                          (double)v->pi[i].points : 0.0);
        }
        vd_bench_json_end(&j, stdout);
    }
    fflush(txt);
}

/* ---- one data set ---------------------------------------------------------------------------- */
static int filters_of(const dset *d, fspec *out)
{
    int n = 0;
    if (d->fashion) {
        out[n++] = (fspec){"label == own", F_LABEL_OWN, 0, 0};
        out[n++] = (fspec){"label == other", F_LABEL_OTHER, 0, 0};
    }
    if (d->glove) {
        out[n++] = (fspec){"rank < 3405", F_RANK_LT, 3405, 0};
        out[n++] = (fspec){"rank < 34048", F_RANK_LT, 34048, 0};
        out[n++] = (fspec){"initial == z", F_INITIAL, 0, 0};
        out[n++] = (fspec){"len >= 12", F_LEN_GE, 12, 0};
    }
    static const char *const names[4] = {"k50 == v0 (50%)", "k10 == v0 (10%)",
                                         "k1 == v0 (1%)", "k01 == v0 (0.1%)"};
    for (int c = 0; c < 4; c++) out[n++] = (fspec){names[c], F_KW, c, 1};
    return n;
}

static int run_set(const opts *o, const char *dir, const vd_bench_env *env)
{
    dset d;
    vd_side v = {0};
    vd_err e = {0};
    char eb[256];
    if (load_set(o, dir, &d) != 0) return -1;
    vd_status s = vd_setup(o, &d, &v, &e);
    if (s == VD_OK) s = vd_indexes(o, &d, &v, &e);
    if (s != VD_OK) {
        fprintf(stderr, "bench-filter: %s: %s\n", d.name, e.msg);
        return -1;
    }
    const char *metric = vd_metric_name(d.metric);
    faiss_peer *fp = NULL;
    uint64_t t0 = vd_now_ns();
    if (!o->no_faiss &&
        (!(fp = faiss_peer_create(d.base.dim, metric, o->m, o->efc, eb, sizeof eb)) ||
         faiss_peer_add(fp, d.base.data, d.base.n, o->threads, eb, sizeof eb) != 0)) {
        fprintf(stderr, "bench-filter: %s\n", eb);
        return -1;
    }
    double faiss_build_s = vd_bench_seconds(t0, vd_now_ns());
    truth all = {.nq = d.queries.n};
    run unf = sweep_vd(&v, &d, NULL, &all), funf = {0};
    if (fp) funf = sweep_faiss(fp, &d, NULL, &all);
    report_set(o, &d, &v, faiss_build_s, &unf, &funf);
    fspec fs[16];
    int n_fs = filters_of(&d, fs);
    for (int i = 0; i < n_fs; i++) {
        truth t;
        truth_of(&d, &fs[i], &t);
        exact_run(&v, &d, &fs[i], &t);
        run fx;
        g_plan = VD_PLAN_EXACT;
        best_of(vd_pass, &v, &d, &fs[i], &t, 10, &fx);
        g_plan = 0;
        t.exact_vd_qps = fx.qps;
        run r = sweep_vd(&v, &d, &fs[i], &t), r2 = {0}, fr = {0};
        if (fp) fr = sweep_faiss(fp, &d, &fs[i], &t);
        if (fs[i].uncorrelated) best_of(vd_pass, &v, &d, &fs[i], &t, 2 * unf.ef, &r2);
        report(o, &d, &fs[i], &t, &r, fs[i].uncorrelated ? &r2 : NULL, &unf, &fr, env);
        if (o->subset_index && fs[i].uncorrelated && !per_query(&fs[i]))
            subset_run(o, &d, &fs[i], &t, &unf);
        truth_free(&t, !per_query(&fs[i]));
    }
    faiss_peer_free(fp);
    vd_collection_release(v.c);
    vd_store_close(v.st);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", v.dir);
    if (system(cmd) != 0) fprintf(stderr, "bench-filter: could not remove %s\n", v.dir);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: bench-filter [--data DIR]... [options]\n"
"Filtered search: vectord next to the exact scan over the matches and FAISS HNSW with an\n"
"IDSelectorBitmap, per filter, in one run (see the top of bench/bench_filter.c).\n"
"  --data DIR        a texmex set (base.fvecs, query.fvecs, gt.ivecs) with base_labels.txt\n"
"                    (fashion-mnist: label filters) or base_words.txt.gz (GloVe: rank,\n"
"                    initial, len filters); synthetic keyword filters run on every set.\n"
"                    Repeatable; default: fashion-mnist-784-l2 and glove6b-100-cosine in\n"
"                    ../shared/data\n"
"  --tmp DIR         where the data directory goes (default /tmp)\n"
"  --m M             HNSW M for both systems (default 16)\n"
"  --ef-construction EF  (default 200)\n"
"  --threads N       build threads (default: cores); searches run on one thread\n"
"  --queries N       queries per set (default 500)\n"
"  --runs R          timed passes per measurement, the best counts (default 3)\n"
"  --no-faiss        skip the FAISS peer (quick runs while tuning)\n"
"  --json            JSON lines on stdout (one per filter, one per set), the table on stderr\n"
"  --subset-index    also build an index of each uncorrelated filter's matching points alone\n"
"                    and search it unfiltered (what a collection per value would give)\n"
"  --help            this text\n");
}

static int parse(int argc, char **argv, opts *o)
{
    static const struct option lo[] = {
        {"data", required_argument, 0, 'd'}, {"tmp", required_argument, 0, 't'},
        {"m", required_argument, 0, 'm'}, {"ef-construction", required_argument, 0, 'e'},
        {"threads", required_argument, 0, 'j'}, {"queries", required_argument, 0, 'q'},
        {"runs", required_argument, 0, 'r'}, {"no-faiss", no_argument, 0, 'F'},
        {"json", no_argument, 0, 'J'}, {"subset-index", no_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *o = (opts){.tmp = "/tmp", .m = 16, .efc = 200, .n_queries = 500, .runs = 3};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        char *end = NULL;
        unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;
        int bad_num = optarg && (!*optarg || *end || v == 0);
        switch (c) {
        case 'd':
            if (o->n_dirs == 8) { fprintf(stderr, "bench-filter: at most 8 --data\n"); return -1; }
            o->dirs[o->n_dirs++] = optarg;
            continue;
        case 't': o->tmp = optarg; continue;
        case 'J': o->json = 1; continue;
        case 'F': o->no_faiss = 1; continue;
        case 'S': o->subset_index = 1; continue;
        case 'h': usage(stdout); return 1;
        case 'm': case 'e': case 'j': case 'q': case 'r':
            if (bad_num) {
                fprintf(stderr, "bench-filter: --%s needs a positive integer, got '%s'\n",
                        c == 'm' ? "m" : c == 'e' ? "ef-construction" : c == 'j' ? "threads" :
                        c == 'r' ? "runs" : "queries", optarg);
                return -1;
            }
            if (c == 'm') o->m = (uint32_t)v;
            else if (c == 'e') o->efc = (uint32_t)v;
            else if (c == 'j') o->threads = (uint32_t)v;
            else if (c == 'r') o->runs = (uint32_t)v;
            else o->n_queries = v;
            continue;
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bench-filter: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->n_dirs) {
        o->dirs[o->n_dirs++] = "../shared/data/fashion-mnist-784-l2";
        o->dirs[o->n_dirs++] = "../shared/data/glove6b-100-cosine";
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    int p = parse(argc, argv, &o);
    if (p) return p > 0 ? 0 : 2;
    txt = o.json ? stderr : stdout;
    g_runs = o.runs;
    if (!o.threads) o.threads = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    vd_log_set_level(VD_LOG_WARN);
    vd_bench_env env;
    vd_bench_env_get(&env);
    fprintf(txt, "bench-filter: %s, %s, commit %s, vectord SIMD %s; FAISS from Debian's "
            "libfaiss-dev (baseline ISA)\n", env.cpu, env.cflags, env.commit, vd_dist_simd_name());
    for (int i = 0; i < o.n_dirs; i++)
        if (run_set(&o, o.dirs[i], &env) != 0) return 1;
    return 0;
}
