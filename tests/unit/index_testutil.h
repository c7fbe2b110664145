/* tests/unit/index_testutil.h: shared helpers for the index suites: size scaling for the
 * sanitizer builds, synthetic clustered data, .fvecs prefixes and recall@k against the exact
 * oracle (vd_index_search_exact). */
#ifndef VD_INDEX_TESTUTIL_H
#define VD_INDEX_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "index/vd_index.h"

/* 1 when VD_TEST_BUILD names a sanitizer build (asan/tsan): tests use smaller sizes. */
int vt_slow_build(void);
/* n for a plain build, n / div under sanitizers (at least 1). */
size_t vt_scale(size_t n, size_t div);

/* Deterministic PRNG for test data. */
uint64_t vt_rand(uint64_t *s);
float vt_randf(uint64_t *s); /* uniform in [-1, 1) */

/* n vectors of `dim` floats drawn around `n_clusters` random centres (malloc'ed). */
float *vt_clustered(size_t n, uint32_t dim, size_t n_clusters, uint64_t seed);

/* Reads up to max_n vectors of a .fvecs file (malloc'ed); NULL if missing or malformed. */
float *vt_read_fvecs(const char *path, size_t max_n, size_t *n_out, uint32_t *dim_out);

/* Opens an index (ck_assert on failure). */
vd_index *vt_open(uint32_t dim, vd_metric metric, uint32_t m, uint32_t efc, uint64_t seed);

/* Mean recall@k of vd_index_search(ef) against vd_index_search_exact over the queries. */
double vt_recall(const vd_index *ix, const float *queries, size_t nq, uint32_t k, uint32_t ef);

/* ck_assert that vd_index_validate passes, printing its message otherwise. */
void vt_assert_valid(const vd_index *ix);

#endif
