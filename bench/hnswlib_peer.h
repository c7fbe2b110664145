/* bench/hnswlib_peer.h: the peer in every benchmark - hnswlib (Debian libhnswlib-dev headers)
 * behind a small C interface, compiled with the same optimization flags as vectord.
 *
 * Labels are row numbers 0..n-1. Metrics follow vectord's: "l2" is squared Euclidean,
 * "cosine" normalizes every vector and query inside the wrapper and uses hnswlib's
 * inner-product space (so distances are 1 - cos, as vectord's), "ip" is hnswlib's inner
 * product space (1 - dot; the order is the same as vectord's -dot).
 * Threads: hnswlib_peer_search may run from many threads at once; everything else is
 * single-threaded (hnswlib_peer_add fans out internally). */
#ifndef VD_BENCH_HNSWLIB_PEER_H
#define VD_BENCH_HNSWLIB_PEER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hnswlib_peer hnswlib_peer; /* opaque */

/* metric: "l2", "cosine" or "ip". Returns NULL with a message in errbuf on a bad argument or
 * an allocation failure. Room for exactly max_elements points. */
hnswlib_peer *hnswlib_peer_create(uint32_t dim, const char *metric, uint32_t m,
                                  uint32_t ef_construction, uint64_t seed, size_t max_elements,
                                  char *errbuf, size_t errlen);
/* Adds rows vecs[i*dim..] with labels first_label + i, using n_threads threads, each taking
 * the next row from a shared atomic counter (hnswlib's own ParallelFor pattern). Returns 0,
 * or -1 with a message in errbuf (capacity exceeded, hnswlib exception). */
int hnswlib_peer_add(hnswlib_peer *p, const float *vecs, size_t n, size_t first_label,
                     uint32_t n_threads, char *errbuf, size_t errlen);
void hnswlib_peer_set_ef(hnswlib_peer *p, uint32_t ef);
/* Up to k nearest labels, nearest first, into caller-owned labels/dists (room for k).
 * Returns the number found. `query` is not modified (cosine normalizes a private copy). */
uint32_t hnswlib_peer_search(const hnswlib_peer *p, const float *query, uint32_t k,
                             uint64_t *labels, float *dists);
size_t hnswlib_peer_count(const hnswlib_peer *p);
/* Memory per stored point from hnswlib's layout: the level-0 block (links + vector + label),
 * the upper-level link lists actually allocated, and the per-element side arrays (link
 * list pointer, level, mutex) plus the label hash map; divided by the number of points. */
double hnswlib_peer_bytes_per_vector(const hnswlib_peer *p);
/* Bytes of raw vectors + links only (the "vectors + links" memory model of DESIGN.md). */
double hnswlib_peer_bytes_core_per_vector(const hnswlib_peer *p);
/* The distance kernel hnswlib picked for this dim on this CPU ("avx512", "avx", "sse"...). */
const char *hnswlib_peer_simd(const hnswlib_peer *p);
void hnswlib_peer_free(hnswlib_peer *p); /* NULL is a no-op */

#ifdef __cplusplus
}
#endif

#endif
