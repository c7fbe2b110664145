/* bench/bench_common.h: what every benchmark driver shares - dataset loading (texmex
 * fvecs/ivecs/bvecs), a seeded synthetic generator with exact ground truth, timing and
 * statistics helpers, memory probes, the run's environment (CPU, compiler flags, commit)
 * and a one-object-per-line JSON writer.
 * Threads: everything here is called from the driver's main thread, except the brute-force
 * ground truth which fans out internally. */
#ifndef VD_BENCH_COMMON_H
#define VD_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/vd_common.h"
#include "index/vd_index.h"

/* ---- data ----------------------------------------------------------------------------- */

/* A dense row-major matrix: rows of `dim` elements, no per-row header. */
typedef struct vd_bench_fmat {
    float *data; /* n * dim floats, vd_malloc'd */
    size_t n;
    uint32_t dim;
} vd_bench_fmat;

typedef struct vd_bench_imat {
    int32_t *data; /* n * dim ints */
    size_t n;
    uint32_t dim;
} vd_bench_imat;

/* Loaders for the texmex layout (per record: int32 dim, then dim values). They check that
 * the file is a whole number of records, that every record has the same dim (1..65536), and
 * for fvecs that every value is finite. `max_rows` > 0 keeps only the first rows. */
vd_status vd_bench_load_fvecs(const char *path, size_t max_rows, vd_bench_fmat *out,
                              vd_err *err);
vd_status vd_bench_load_bvecs(const char *path, size_t max_rows, vd_bench_fmat *out,
                              vd_err *err); /* uint8 values, widened to float */
/* ivecs values must lie in [0, id_limit) when id_limit > 0 (ground truth row numbers). */
vd_status vd_bench_load_ivecs(const char *path, size_t max_rows, int32_t id_limit,
                              vd_bench_imat *out, vd_err *err);
/* Picks the loader by the file's suffix (.fvecs or .bvecs). */
vd_status vd_bench_load_vectors(const char *path, size_t max_rows, vd_bench_fmat *out,
                                vd_err *err);
vd_status vd_bench_save_ivecs(const char *path, const vd_bench_imat *m, vd_err *err);
void vd_bench_fmat_free(vd_bench_fmat *m);
void vd_bench_imat_free(vd_bench_imat *m);

/* "100000x128" -> n, dim. VD_INVALID on anything else. */
vd_status vd_bench_parse_nxd(const char *s, size_t *n, uint32_t *dim, vd_err *err);

/* splitmix64: the next value of the 64-bit state *x (seeds the generators below; also a
 * small seeded stream for benches that draw ids or coins). */
uint64_t vd_bench_splitmix64(uint64_t *x);

/* Synthetic data: a mixture of gaussian clusters (about one cluster per 1,000 points, centres
 * N(0, 1) per component, per-cluster spread 0.35..0.65), so neighbourhoods have structure but
 * the graph still has to work for recall. Queries are fresh draws from the same mixture.
 * Fully determined by (n, dim, n_queries, seed). */
vd_status vd_bench_synthetic(size_t n, uint32_t dim, size_t n_queries, uint64_t seed,
                             vd_bench_fmat *base, vd_bench_fmat *queries, vd_err *err);

/* Clustered synthetic data of low intrinsic dimension, like embedding models give: about one
 * cluster per 1,000 points, each a Gaussian spanning its own random subspace of dim/2
 * dimensions (centres N(0, 1) per component, spread 0.5..1.0 along the subspace), plus
 * isotropic noise of sd 0.05. Queries are fresh draws. Fully determined by the arguments. */
vd_status vd_bench_synthetic_clustered(size_t n, uint32_t dim, size_t n_queries, uint64_t seed,
                                       vd_bench_fmat *base, vd_bench_fmat *queries,
                                       vd_err *err);

/* Exact top-k row numbers for every query (nearest first, ties by the smaller row), by
 * brute force with the index's own vd_dist_* kernels on n_threads threads (0 = all cores).
 * Under "cosine" both sides are compared normalized. */
vd_status vd_bench_ground_truth(const vd_bench_fmat *base, const vd_bench_fmat *queries,
                                vd_metric metric, uint32_t k, uint32_t n_threads,
                                vd_bench_imat *out, vd_err *err);

/* Ground truth for the synthetic set, cached in /tmp under a name made of every parameter
 * (the generator's name - "mixture", "clustered" - and version included); computed and
 * written on a miss. *cached says which. */
vd_status vd_bench_synthetic_gt(const vd_bench_fmat *base, const vd_bench_fmat *queries,
                                 const char *generator, vd_metric metric, uint64_t seed,
                                 uint32_t k, uint32_t n_threads, vd_bench_imat *out,
                                 int *cached, vd_err *err);

/* Metric from a data folder name ending in -l2, -cosine or -ip (trailing '/' ignored).
 * VD_NOTFOUND when the name has none of these suffixes. */
vd_status vd_bench_metric_from_dir(const char *dir, vd_metric *out);
/* The last path component, trailing '/' removed, into buf. */
void vd_bench_basename(const char *path, char *buf, size_t len);

/* ---- timing and statistics ------------------------------------------------------------ */

static inline double vd_bench_seconds(uint64_t t0_ns, uint64_t t1_ns)
{
    return (double)(t1_ns - t0_ns) / 1e9;
}
/* Sorts `v` in place and returns the median / the q-quantile (0..1, nearest rank). */
double vd_bench_median(double *v, size_t n);
double vd_bench_quantile(double *v, size_t n, double q);

/* ---- memory --------------------------------------------------------------------------- */

/* Peak resident set (VmHWM) and current resident set (VmRSS) in bytes, from
 * /proc/self/status; getrusage's ru_maxrss as a fallback for the peak. */
size_t vd_bench_peak_rss(void);
size_t vd_bench_current_rss(void);
/* Resets the kernel's peak-RSS mark to the current RSS (writes 5 to /proc/self/clear_refs),
 * so the next vd_bench_peak_rss() is the peak of one phase. Returns 0, or -1 if the kernel
 * refused (then peaks are process-lifetime peaks). */
int vd_bench_reset_peak_rss(void);

/* ---- environment ---------------------------------------------------------------------- */

typedef struct vd_bench_env {
    char cpu[128];    /* /proc/cpuinfo "model name" */
    char cflags[256]; /* compiler, version, optimization flags and ISA macros */
    char commit[64];  /* git rev-parse --short HEAD, "+dirty" if the work tree has changes */
    uint32_t n_cores;
} vd_bench_env;
void vd_bench_env_get(vd_bench_env *out);

/* ---- JSON lines ------------------------------------------------------------------------- */

/* Builds one JSON object in a fixed buffer; keys are written in call order. Values that do
 * not fit are dropped and vd_bench_json_end reports it. Non-finite numbers become null. */
typedef struct vd_bench_json {
    char buf[4096];
    size_t len;
    int n_keys;
    int overflow;
} vd_bench_json;
void vd_bench_json_begin(vd_bench_json *j);
void vd_bench_json_str(vd_bench_json *j, const char *key, const char *val);
void vd_bench_json_num(vd_bench_json *j, const char *key, double val);
void vd_bench_json_int(vd_bench_json *j, const char *key, long long val);
void vd_bench_json_null(vd_bench_json *j, const char *key);
/* Closes the object and writes it as one line to `f`; -1 if it overflowed (nothing written). */
int vd_bench_json_end(vd_bench_json *j, FILE *f);

#endif
