/* bench/bench_common.c: shared machinery of the benchmark drivers.
 *
 * Loading. Datasets come in the texmex layout (per record: little-endian int32 dim, then dim
 * float32 / int32 / uint8). A file is mapped read-only, every record header is checked
 * against the first (a truncated or spliced file is refused with the record number), values
 * are checked (finite floats; ground-truth ids inside the base), and the rows are copied into
 * one dense vd_malloc'd matrix without headers, so the index sees exactly what a caller
 * would pass to vd_index_add_batch. The copy costs one pass over the file; it is timed as
 * part of "load" and never mixed into build or query times.
 *
 * Synthetic data. A gaussian mixture rather than uniform noise: uniform data in 128 dims has
 * no neighbourhood structure (every point is about equally far from every other) and is a
 * test of nothing real, while one tight blob is trivially easy. About one cluster per 1,000
 * points, centres N(0, 1), spread 0.35..0.65 per cluster: the clusters are separated, and
 * inside a cluster the data is full-dimensional, so the graph has to work for recall. The
 * generator is xoshiro256** seeded by splitmix64 and Box-Muller normals; it is single-
 * threaded on purpose so the data depends only on (n, dim, n_queries, seed). Queries use
 * their own stream, so asking for more queries does not change the base.
 *
 * Ground truth. Exact top-k by brute force using the index's own vd_dist_* kernels: blocks
 * of queries are scanned against the whole base so each base row is read from memory once
 * per block, not once per query (the scan is bandwidth-bound otherwise); blocks are handed
 * to all cores through an atomic counter. Ties go to the smaller row, as in the shipped
 * gt.ivecs files. Synthetic ground truth is cached in /tmp under a name carrying every
 * parameter and the generator version, written to a temporary name and renamed so an
 * interrupted run never leaves a half file; a cached file is accepted only if its shape
 * and id range are right and its first row matches a fresh brute-force computation.
 *
 * Memory. Peak RSS comes from VmHWM in /proc/self/status. Both systems live in one process,
 * so drivers reset the mark (clear_refs) before each phase and read per-system figures as
 * deltas; each system's own accounting (vd_index_stats_get, hnswlib's layout) is the
 * primary bytes-per-vector figure since RSS includes allocator slack and the dataset.
 *
 * Rejected: reading with stdio (an extra copy and no cheaper), a C++ ground truth through
 * hnswlib's brute-force index (it would measure the peer with the peer's kernels). */
#include "bench/bench_common.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEXMEX_DIM_MAX 65536u
#define SYNTH_VERSION 1
#define GT_QUERY_BLOCK 16u

/* ---- texmex loading ------------------------------------------------------------------- */

typedef enum texmex_kind { TEXMEX_FLOAT, TEXMEX_INT, TEXMEX_BYTE } texmex_kind;

/* Maps `path`, validates it and copies up to max_rows rows (all if 0) into a dense buffer of
 * elements of the kind's size. */
static vd_status load_texmex(const char *path, texmex_kind kind, size_t max_rows,
                             void **data_out, size_t *n_out, uint32_t *dim_out, vd_err *err)
{
    size_t elem = kind == TEXMEX_BYTE ? 1 : 4;
    int fd = -1;
    uint8_t *map = NULL;
    size_t size = 0;
    uint8_t *data = NULL;
    vd_status st = VD_OK;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = vd_err_set(err, errno == ENOENT ? VD_NOTFOUND : VD_IO, "%s: %s", path,
                        strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = vd_err_set(err, VD_IO, "%s: fstat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = vd_err_set(err, VD_INVALID, "%s: not a regular file", path);
        goto fail;
    }
    size = (size_t)sb.st_size;
    if (size < 4) {
        st = vd_err_set(err, VD_CORRUPT, "%s: %zu bytes, too short for one record", path, size);
        goto fail;
    }
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        map = NULL;
        st = vd_err_set(err, VD_IO, "%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    (void)madvise(map, size, MADV_SEQUENTIAL);

    uint32_t dim = vd_get_u32le(map);
    if (dim == 0 || dim > TEXMEX_DIM_MAX) {
        st = vd_err_set(err, VD_CORRUPT, "%s: record 0 has dim %u (expected 1..%u)", path,
                        dim, TEXMEX_DIM_MAX);
        goto fail;
    }
    size_t rec = 4 + (size_t)dim * elem;
    if (size % rec != 0) {
        st = vd_err_set(err, VD_CORRUPT,
                        "%s: size %zu is not a whole number of %zu-byte records (dim %u)",
                        path, size, rec, dim);
        goto fail;
    }
    size_t n = size / rec;
    if (max_rows > 0 && n > max_rows)
        n = max_rows;
    data = vd_malloc(n * dim * elem);
    if (data == NULL) {
        st = vd_err_set(err, VD_NOMEM, "%s: no memory for %zu x %u values", path, n, dim);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *r = map + i * rec;
        uint32_t d = vd_get_u32le(r);
        if (d != dim) {
            st = vd_err_set(err, VD_CORRUPT, "%s: record %zu has dim %u, record 0 has %u", path,
                            i, d, dim);
            goto fail;
        }
        uint8_t *dst = data + i * dim * elem;
        memcpy(dst, r + 4, (size_t)dim * elem);
        if (kind == TEXMEX_FLOAT) {
            const float *f = (const float *)dst;
            for (uint32_t c = 0; c < dim; c++) {
                if (!isfinite(f[c])) {
                    st = vd_err_set(err, VD_CORRUPT, "%s: record %zu component %u is %f", path,
                                    i, c, (double)f[c]);
                    goto fail;
                }
            }
        }
    }
    munmap(map, size);
    close(fd);
    *data_out = data;
    *n_out = n;
    *dim_out = dim;
    return VD_OK;
fail:
    vd_free(data);
    if (map != NULL)
        munmap(map, size);
    if (fd >= 0)
        close(fd);
    return st;
}

vd_status vd_bench_load_fvecs(const char *path, size_t max_rows, vd_bench_fmat *out,
                              vd_err *err)
{
    void *data = NULL;
    memset(out, 0, sizeof *out);
    vd_status st = load_texmex(path, TEXMEX_FLOAT, max_rows, &data, &out->n, &out->dim, err);
    out->data = data;
    return st;
}

vd_status vd_bench_load_bvecs(const char *path, size_t max_rows, vd_bench_fmat *out,
                              vd_err *err)
{
    void *bytes = NULL;
    memset(out, 0, sizeof *out);
    vd_status st = load_texmex(path, TEXMEX_BYTE, max_rows, &bytes, &out->n, &out->dim, err);
    if (st != VD_OK)
        return st;
    size_t total = out->n * out->dim;
    out->data = vd_malloc(total * sizeof(float));
    if (out->data == NULL) {
        vd_free(bytes);
        return vd_err_set(err, VD_NOMEM, "%s: no memory for %zu floats", path, total);
    }
    const uint8_t *b = bytes;
    for (size_t i = 0; i < total; i++)
        out->data[i] = (float)b[i];
    vd_free(bytes);
    return VD_OK;
}

vd_status vd_bench_load_ivecs(const char *path, size_t max_rows, int32_t id_limit,
                              vd_bench_imat *out, vd_err *err)
{
    void *data = NULL;
    memset(out, 0, sizeof *out);
    vd_status st = load_texmex(path, TEXMEX_INT, max_rows, &data, &out->n, &out->dim, err);
    if (st != VD_OK)
        return st;
    out->data = data;
    if (id_limit > 0) {
        for (size_t i = 0; i < out->n * out->dim; i++) {
            if (out->data[i] < 0 || out->data[i] >= id_limit) {
                st = vd_err_set(err, VD_CORRUPT, "%s: record %zu holds id %d, outside 0..%d",
                                path, i / out->dim, out->data[i], id_limit - 1);
                vd_bench_imat_free(out);
                return st;
            }
        }
    }
    return VD_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

vd_status vd_bench_load_vectors(const char *path, size_t max_rows, vd_bench_fmat *out,
                                vd_err *err)
{
    if (ends_with(path, ".fvecs"))
        return vd_bench_load_fvecs(path, max_rows, out, err);
    if (ends_with(path, ".bvecs"))
        return vd_bench_load_bvecs(path, max_rows, out, err);
    memset(out, 0, sizeof *out);
    return vd_err_set(err, VD_INVALID, "%s: expected a .fvecs or .bvecs file", path);
}

vd_status vd_bench_save_ivecs(const char *path, const vd_bench_imat *m, vd_err *err)
{
    char tmp[PATH_MAX];
    FILE *f = NULL;
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return vd_err_set(err, VD_INVALID, "%s: path too long", path);
    f = fopen(tmp, "wb");
    if (f == NULL)
        return vd_err_set(err, VD_IO, "%s: %s", tmp, strerror(errno));
    uint8_t hdr[4];
    vd_put_u32le(hdr, m->dim);
    for (size_t i = 0; i < m->n; i++) {
        if (fwrite(hdr, 4, 1, f) != 1 ||
            fwrite(m->data + i * m->dim, sizeof(int32_t), m->dim, f) != m->dim)
            goto fail;
    }
    if (fclose(f) != 0) {
        f = NULL;
        goto fail;
    }
    f = NULL;
    if (rename(tmp, path) != 0)
        goto fail;
    return VD_OK;
fail:;
    int e = errno;
    if (f != NULL)
        fclose(f);
    unlink(tmp);
    return vd_err_set(err, VD_IO, "%s: %s", path, strerror(e));
}

void vd_bench_fmat_free(vd_bench_fmat *m)
{
    vd_free(m->data);
    memset(m, 0, sizeof *m);
}

void vd_bench_imat_free(vd_bench_imat *m)
{
    vd_free(m->data);
    memset(m, 0, sizeof *m);
}

vd_status vd_bench_parse_nxd(const char *s, size_t *n, uint32_t *dim, vd_err *err)
{
    char *end = NULL;
    if (s == NULL || !isdigit((unsigned char)s[0]))
        goto bad;
    errno = 0;
    unsigned long long nn = strtoull(s, &end, 10);
    if (errno != 0 || (*end != 'x' && *end != 'X') || !isdigit((unsigned char)end[1]))
        goto bad;
    const char *d = end + 1;
    unsigned long long dd = strtoull(d, &end, 10);
    if (errno != 0 || *end != '\0')
        goto bad;
    if (nn == 0 || nn > (1ull << 31) || dd == 0 || dd > VD_DIM_MAX)
        return vd_err_set(err, VD_INVALID,
                          "synthetic size '%s': need 1..2^31 vectors of dim 1..%u", s,
                          VD_DIM_MAX);
    *n = (size_t)nn;
    *dim = (uint32_t)dd;
    return VD_OK;
bad:
    return vd_err_set(err, VD_INVALID, "synthetic size '%s': expected NxD, e.g. 100000x128",
                      s ? s : "(null)");
}

/* ---- synthetic data -------------------------------------------------------------------- */

typedef struct rng {
    uint64_t s[4];
    int has_spare;
    double spare;
} rng;

uint64_t vd_bench_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = vd_bench_splitmix64(&seed);
    r->has_spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static double rng_uniform(rng *r) /* [0, 1) */
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static double rng_normal(rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_uniform(r) - 1.0;
        v = 2.0 * rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    r->spare = v * m;
    r->has_spare = 1;
    return u * m;
}

static void draw_points(rng *r, const float *centres, const float *spread, size_t n_clusters,
                        uint32_t dim, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t c = (size_t)(rng_uniform(r) * (double)n_clusters);
        if (c >= n_clusters)
            c = n_clusters - 1;
        const float *ctr = centres + c * dim;
        for (uint32_t d = 0; d < dim; d++)
            out[i * dim + d] = ctr[d] + spread[c] * (float)rng_normal(r);
    }
}

vd_status vd_bench_synthetic(size_t n, uint32_t dim, size_t n_queries, uint64_t seed,
                             vd_bench_fmat *base, vd_bench_fmat *queries, vd_err *err)
{
    float *centres = NULL, *spread = NULL;
    memset(base, 0, sizeof *base);
    memset(queries, 0, sizeof *queries);
    size_t n_clusters = n / 1000 > 0 ? n / 1000 : 1;
    centres = vd_malloc(n_clusters * dim * sizeof(float));
    spread = vd_malloc(n_clusters * sizeof(float));
    base->data = vd_malloc(n * dim * sizeof(float));
    queries->data = vd_malloc((n_queries ? n_queries : 1) * dim * sizeof(float));
    if (centres == NULL || spread == NULL || base->data == NULL || queries->data == NULL) {
        vd_err_set(err, VD_NOMEM, "synthetic %zux%u: out of memory", n, dim);
        goto fail;
    }
    rng r;
    rng_seed(&r, seed);
    for (size_t c = 0; c < n_clusters; c++) {
        for (uint32_t d = 0; d < dim; d++)
            centres[c * dim + d] = (float)rng_normal(&r);
        spread[c] = (float)(0.35 + 0.30 * rng_uniform(&r));
    }
    draw_points(&r, centres, spread, n_clusters, dim, base->data, n);
    rng_seed(&r, seed ^ 0x5175657269657321ull); /* the queries' own stream */
    draw_points(&r, centres, spread, n_clusters, dim, queries->data, n_queries);
    base->n = n;
    base->dim = dim;
    queries->n = n_queries;
    queries->dim = dim;
    vd_free(centres);
    vd_free(spread);
    return VD_OK;
fail:
    vd_free(centres);
    vd_free(spread);
    vd_bench_fmat_free(base);
    vd_bench_fmat_free(queries);
    return VD_NOMEM;
}

/* One cluster of the clustered generator: a centre and dim x sub basis (N(0, 1/dim)
 * entries: nearly orthogonal columns of length ~1) with a spread. */
static void draw_subspace_points(rng *r, const float *centres, const float *bases,
                                 const float *spread, size_t n_clusters, uint32_t dim,
                                 uint32_t sub, float *out, size_t n)
{
    float z[VD_DIM_MAX];
    for (size_t i = 0; i < n; i++) {
        size_t c = (size_t)(rng_uniform(r) * (double)n_clusters);
        if (c >= n_clusters)
            c = n_clusters - 1;
        for (uint32_t j = 0; j < sub; j++)
            z[j] = spread[c] * (float)rng_normal(r);
        const float *b = bases + c * (size_t)dim * sub;
        for (uint32_t d = 0; d < dim; d++) {
            float x = centres[c * dim + d] + 0.05f * (float)rng_normal(r);
            for (uint32_t j = 0; j < sub; j++)
                x += b[(size_t)d * sub + j] * z[j];
            out[i * dim + d] = x;
        }
    }
}

vd_status vd_bench_synthetic_clustered(size_t n, uint32_t dim, size_t n_queries, uint64_t seed,
                                       vd_bench_fmat *base, vd_bench_fmat *queries,
                                       vd_err *err)
{
    float *centres = NULL, *bases = NULL, *spread = NULL;
    memset(base, 0, sizeof *base);
    memset(queries, 0, sizeof *queries);
    size_t n_clusters = n / 1000 > 0 ? n / 1000 : 1;
    uint32_t sub = dim / 2 > 0 ? dim / 2 : 1;
    centres = vd_malloc(n_clusters * dim * sizeof(float));
    bases = vd_malloc(n_clusters * (size_t)dim * sub * sizeof(float));
    spread = vd_malloc(n_clusters * sizeof(float));
    base->data = vd_malloc(n * dim * sizeof(float));
    queries->data = vd_malloc((n_queries ? n_queries : 1) * dim * sizeof(float));
    if (!centres || !bases || !spread || !base->data || !queries->data) {
        vd_err_set(err, VD_NOMEM, "synthetic clustered %zux%u: out of memory", n, dim);
        goto fail;
    }
    rng r;
    rng_seed(&r, seed ^ 0x636c757374657273ull);
    double inv = 1.0 / sqrt((double)dim);
    for (size_t c = 0; c < n_clusters; c++) {
        for (uint32_t d = 0; d < dim; d++)
            centres[c * dim + d] = (float)rng_normal(&r);
        for (size_t e = 0; e < (size_t)dim * sub; e++)
            bases[c * (size_t)dim * sub + e] = (float)(rng_normal(&r) * inv);
        spread[c] = (float)(0.5 + 0.5 * rng_uniform(&r));
    }
    draw_subspace_points(&r, centres, bases, spread, n_clusters, dim, sub, base->data, n);
    rng_seed(&r, seed ^ 0x5175657269657321ull); /* the queries' own stream */
    draw_subspace_points(&r, centres, bases, spread, n_clusters, dim, sub, queries->data,
                         n_queries);
    base->n = n;
    base->dim = dim;
    queries->n = n_queries;
    queries->dim = dim;
    vd_free(centres);
    vd_free(bases);
    vd_free(spread);
    return VD_OK;
fail:
    vd_free(centres);
    vd_free(bases);
    vd_free(spread);
    vd_bench_fmat_free(base);
    vd_bench_fmat_free(queries);
    return VD_NOMEM;
}

/* ---- exact ground truth ---------------------------------------------------------------- */

typedef struct gt_item {
    float d;
    int32_t id;
} gt_item;

static inline int gt_less(gt_item a, gt_item b)
{
    return a.d < b.d || (a.d == b.d && a.id < b.id);
}

/* Max-heap of the k best so far: h[0] is the worst kept. */
static void heap_push_bounded(gt_item *h, uint32_t *len, uint32_t k, gt_item x)
{
    if (*len < k) {
        uint32_t i = (*len)++;
        while (i > 0) {
            uint32_t p = (i - 1) / 2;
            if (!gt_less(h[p], x))
                break;
            h[i] = h[p];
            i = p;
        }
        h[i] = x;
        return;
    }
    if (!gt_less(x, h[0]))
        return;
    uint32_t i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        gt_item big = x;
        if (l < k && gt_less(big, h[l])) {
            m = l;
            big = h[l];
        }
        if (r < k && gt_less(big, h[r]))
            m = r;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    h[i] = x;
}

static int gt_cmp(const void *a, const void *b)
{
    gt_item x = *(const gt_item *)a, y = *(const gt_item *)b;
    return gt_less(x, y) ? -1 : gt_less(y, x) ? 1 : 0;
}

typedef struct gt_job {
    const float *base; /* normalized copy under cosine */
    const float *queries;
    size_t n_base, n_queries;
    uint32_t dim, k;
    vd_metric metric;
    int32_t *out;
    atomic_size_t next_block;
} gt_job;

static void *gt_worker(void *arg)
{
    gt_job *job = arg;
    gt_item *heaps = vd_malloc((size_t)GT_QUERY_BLOCK * job->k * sizeof(gt_item));
    uint32_t lens[GT_QUERY_BLOCK];
    if (heaps == NULL)
        return (void *)1;
    for (;;) {
        size_t q0 = atomic_fetch_add(&job->next_block, 1) * GT_QUERY_BLOCK;
        if (q0 >= job->n_queries)
            break;
        size_t nq = job->n_queries - q0 < GT_QUERY_BLOCK ? job->n_queries - q0 : GT_QUERY_BLOCK;
        memset(lens, 0, sizeof lens);
        for (size_t i = 0; i < job->n_base; i++) {
            const float *b = job->base + i * job->dim;
            for (size_t q = 0; q < nq; q++) {
                const float *qv = job->queries + (q0 + q) * job->dim;
                float d = job->metric == VD_METRIC_L2 ? vd_dist_l2sq(qv, b, job->dim)
                                                      : -vd_dist_dot(qv, b, job->dim);
                gt_item it = {d, (int32_t)i};
                heap_push_bounded(heaps + q * job->k, &lens[q], job->k, it);
            }
        }
        for (size_t q = 0; q < nq; q++) {
            gt_item *h = heaps + q * job->k;
            qsort(h, lens[q], sizeof *h, gt_cmp);
            int32_t *row = job->out + (q0 + q) * job->k;
            for (uint32_t j = 0; j < job->k; j++)
                row[j] = j < lens[q] ? h[j].id : -1;
        }
    }
    vd_free(heaps);
    return NULL;
}

static float *normalized_copy(const vd_bench_fmat *m)
{
    float *c = vd_malloc(m->n * m->dim * sizeof(float));
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < m->n; i++) {
        const float *v = m->data + i * m->dim;
        double s = 0.0;
        for (uint32_t d = 0; d < m->dim; d++)
            s += (double)v[d] * v[d];
        float inv = s > 0.0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (uint32_t d = 0; d < m->dim; d++)
            c[i * m->dim + d] = v[d] * inv;
    }
    return c;
}

vd_status vd_bench_ground_truth(const vd_bench_fmat *base, const vd_bench_fmat *queries,
                                vd_metric metric, uint32_t k, uint32_t n_threads,
                                vd_bench_imat *out, vd_err *err)
{
    float *nb = NULL, *nq = NULL;
    pthread_t *tids = NULL;
    uint32_t started = 0;
    vd_status st = VD_OK;
    memset(out, 0, sizeof *out);
    if (base->dim != queries->dim)
        return vd_err_set(err, VD_INVALID, "ground truth: base dim %u but query dim %u",
                          base->dim, queries->dim);
    if (k == 0 || base->n > INT32_MAX)
        return vd_err_set(err, VD_INVALID, "ground truth: k %u / base size %zu out of range",
                          k, base->n);
    if (n_threads == 0)
        n_threads = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads == 0)
        n_threads = 1;
    gt_job job = {.base = base->data, .queries = queries->data, .n_base = base->n,
                  .n_queries = queries->n, .dim = base->dim, .k = k, .metric = metric};
    atomic_init(&job.next_block, 0);
    if (metric == VD_METRIC_COSINE) {
        nb = normalized_copy(base);
        nq = normalized_copy(queries);
        if (nb == NULL || nq == NULL) {
            st = vd_err_set(err, VD_NOMEM, "ground truth: no memory for normalized copies");
            goto fail;
        }
        job.base = nb;
        job.queries = nq;
    }
    job.out = vd_malloc((queries->n ? queries->n : 1) * k * sizeof(int32_t));
    tids = vd_calloc(n_threads, sizeof *tids);
    if (job.out == NULL || tids == NULL) {
        st = vd_err_set(err, VD_NOMEM, "ground truth: out of memory");
        goto fail;
    }
    for (; started < n_threads; started++) {
        if (pthread_create(&tids[started], NULL, gt_worker, &job) != 0)
            break;
    }
    if (started == 0)
        gt_worker(&job); /* no thread could start: do it here */
    int failed = 0;
    for (uint32_t t = 0; t < started; t++) {
        void *ret = NULL;
        pthread_join(tids[t], &ret);
        failed |= ret != NULL;
    }
    if (failed) {
        st = vd_err_set(err, VD_NOMEM, "ground truth: a worker ran out of memory");
        goto fail;
    }
    out->data = job.out;
    out->n = queries->n;
    out->dim = k;
    vd_free(tids);
    vd_free(nb);
    vd_free(nq);
    return VD_OK;
fail:
    vd_free(job.out);
    vd_free(tids);
    vd_free(nb);
    vd_free(nq);
    return st;
}

vd_status vd_bench_synthetic_gt(const vd_bench_fmat *base, const vd_bench_fmat *queries,
                                 const char *generator, vd_metric metric, uint64_t seed,
                                 uint32_t k, uint32_t n_threads, vd_bench_imat *out,
                                 int *cached, vd_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "/tmp/vd-bench-gt-v%d-%s-%zux%u-q%zu-seed%llu-%s-k%u.ivecs",
             SYNTH_VERSION, generator, base->n, base->dim, queries->n,
             (unsigned long long)seed, vd_metric_name(metric), k);
    *cached = 0;
    vd_bench_imat m = {0};
    if (vd_bench_load_ivecs(path, 0, (int32_t)base->n, &m, NULL) == VD_OK) {
        vd_bench_imat check = {0};
        vd_bench_fmat q0 = {.data = queries->data, .n = queries->n > 0 ? 1 : 0,
                            .dim = queries->dim};
        int ok = m.n == queries->n && m.dim == k && q0.n == 1 &&
                 vd_bench_ground_truth(base, &q0, metric, k, n_threads, &check, NULL) == VD_OK &&
                 memcmp(check.data, m.data, k * sizeof(int32_t)) == 0;
        vd_bench_imat_free(&check);
        if (ok) {
            *out = m;
            *cached = 1;
            return VD_OK;
        }
        vd_bench_imat_free(&m);
    }
    vd_status st = vd_bench_ground_truth(base, queries, metric, k, n_threads, out, err);
    if (st != VD_OK)
        return st;
    vd_err werr = {0};
    if (vd_bench_save_ivecs(path, out, &werr) != VD_OK)
        vd_log(VD_LOG_WARN, "ground truth not cached: %s", werr.msg);
    return VD_OK;
}

/* ---- names ------------------------------------------------------------------------------ */

void vd_bench_basename(const char *path, char *buf, size_t len)
{
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    size_t n = end - start;
    if (n >= len)
        n = len - 1;
    memcpy(buf, path + start, n);
    buf[n] = '\0';
}

vd_status vd_bench_metric_from_dir(const char *dir, vd_metric *out)
{
    char name[256];
    vd_bench_basename(dir, name, sizeof name);
    static const struct {
        const char *suffix;
        vd_metric m;
    } map[] = {{"-l2", VD_METRIC_L2}, {"-cosine", VD_METRIC_COSINE}, {"-ip", VD_METRIC_IP}};
    for (size_t i = 0; i < VD_ARRAY_LEN(map); i++) {
        if (ends_with(name, map[i].suffix)) {
            *out = map[i].m;
            return VD_OK;
        }
    }
    return VD_NOTFOUND;
}

/* ---- statistics ------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

double vd_bench_quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    if (q <= 0.0)
        return v[0];
    size_t rank = (size_t)ceil(q * (double)n); /* nearest rank, 1-based */
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

double vd_bench_median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- memory ----------------------------------------------------------------------------- */

static size_t status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 0;
    char line[256];
    size_t kb = 0, klen = strlen(key);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            kb = strtoull(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

size_t vd_bench_peak_rss(void)
{
    size_t kb = status_kb("VmHWM");
    if (kb == 0) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            kb = (size_t)ru.ru_maxrss;
    }
    return kb * 1024;
}

size_t vd_bench_current_rss(void)
{
    return status_kb("VmRSS") * 1024;
}

int vd_bench_reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, "5", 1);
    close(fd);
    return w == 1 ? 0 : -1;
}

/* ---- environment ------------------------------------------------------------------------ */

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

/* First line of a command's output, or "" on failure. */
static void command_line(const char *cmd, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return;
    if (fgets(buf, (int)len, p) == NULL)
        buf[0] = '\0';
    while (fgetc(p) != EOF) {
    }
    if (pclose(p) != 0)
        buf[0] = '\0';
    trim(buf);
}

#ifndef VD_BENCH_CFLAGS
#define VD_BENCH_CFLAGS "?"
#endif

void vd_bench_env_get(vd_bench_env *out)
{
    memset(out, 0, sizeof *out);
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    out->n_cores = nc > 0 ? (uint32_t)nc : 1;

    snprintf(out->cpu, sizeof out->cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "model name", 10) == 0) {
                const char *c = strchr(line, ':');
                if (c != NULL) {
                    c++;
                    while (*c == ' ' || *c == '\t')
                        c++;
                    snprintf(out->cpu, sizeof out->cpu, "%s", c);
                    trim(out->cpu);
                }
                break;
            }
        }
        fclose(f);
    }

    /* The Makefile passes the optimization flags; the ISA macros say what -march=native
     * resolved to on the build machine. */
    static const char isa[] = ""
#ifdef __AVX512F__
                              " AVX512F"
#endif
#ifdef __AVX2__
                              " AVX2"
#endif
#ifdef __FMA__
                              " FMA"
#endif
#ifdef __ARM_NEON
                              " NEON"
#endif
#ifndef __OPTIMIZE__
                              " (not optimized)"
#endif
        ;
    snprintf(out->cflags, sizeof out->cflags, "cc %s %s%s", __VERSION__, VD_BENCH_CFLAGS, isa);

    /* The commit of the source tree the binary sits in (build/.. by default), found from
     * /proc/self/exe so it is right whatever the working directory. */
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char dir[PATH_MAX + 8] = ".";
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(dir, sizeof dir, "%s/..", exe);
        }
    }
    char cmd[PATH_MAX + 160], dirty[64];
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse --short HEAD 2>/dev/null", dir);
    command_line(cmd, out->commit, sizeof out->commit);
    if (out->commit[0] == '\0') {
        snprintf(out->commit, sizeof out->commit, "unknown");
        return;
    }
    snprintf(cmd, sizeof cmd, "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null",
             dir);
    command_line(cmd, dirty, sizeof dirty);
    if (dirty[0] != '\0')
        strncat(out->commit, "+dirty", sizeof out->commit - strlen(out->commit) - 1);
}

/* ---- JSON lines ------------------------------------------------------------------------- */

static void json_raw(vd_bench_json *j, const char *s, size_t n)
{
    if (j->overflow || j->len + n + 2 > sizeof j->buf) {
        j->overflow = 1;
        return;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
}

static void json_string(vd_bench_json *j, const char *s)
{
    json_raw(j, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            json_raw(j, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            json_raw(j, esc, 6);
        } else {
            json_raw(j, (const char *)&c, 1);
        }
    }
    json_raw(j, "\"", 1);
}

static void json_key(vd_bench_json *j, const char *key)
{
    if (j->n_keys++ > 0)
        json_raw(j, ", ", 2);
    json_string(j, key);
    json_raw(j, ": ", 2);
}

void vd_bench_json_begin(vd_bench_json *j)
{
    j->len = 0;
    j->n_keys = 0;
    j->overflow = 0;
    json_raw(j, "{", 1);
}

void vd_bench_json_str(vd_bench_json *j, const char *key, const char *val)
{
    json_key(j, key);
    if (val == NULL)
        json_raw(j, "null", 4);
    else
        json_string(j, val);
}

void vd_bench_json_num(vd_bench_json *j, const char *key, double val)
{
    json_key(j, key);
    if (!isfinite(val)) {
        json_raw(j, "null", 4);
        return;
    }
    char num[48];
    int n = snprintf(num, sizeof num, "%.6g", val);
    json_raw(j, num, (size_t)n);
}

void vd_bench_json_int(vd_bench_json *j, const char *key, long long val)
{
    json_key(j, key);
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", val);
    json_raw(j, num, (size_t)n);
}

void vd_bench_json_null(vd_bench_json *j, const char *key)
{
    json_key(j, key);
    json_raw(j, "null", 4);
}

int vd_bench_json_end(vd_bench_json *j, FILE *f)
{
    json_raw(j, "}", 1);
    if (j->overflow)
        return -1;
    j->buf[j->len++] = '\n';
    fwrite(j->buf, 1, j->len, f);
    fflush(f);
    return 0;
}
