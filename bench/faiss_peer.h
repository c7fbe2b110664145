/* bench/faiss_peer.h: FAISS HNSW (Debian's libfaiss-dev) behind a small C interface, the
 * peer of bench-filter: filtered search through an IDSelectorBitmap, the way FAISS users
 * filter an HNSW index.
 *
 * Labels are row numbers 0..n-1. Metrics follow vectord's: "l2" is squared Euclidean;
 * "cosine" normalizes every vector and query inside the wrapper and uses inner product (the
 * order is vectord's); "ip" is inner product. Threads: faiss_peer_search may run from one
 * thread at a time per peer (FAISS parallelizes over queries, and each call is one); add
 * fans out on n_threads OpenMP threads. Debian builds FAISS for the baseline ISA (no
 * -march=native), which the benchmark records. */
#ifndef VD_BENCH_FAISS_PEER_H
#define VD_BENCH_FAISS_PEER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct faiss_peer faiss_peer; /* opaque */

/* NULL with a message in errbuf on a bad argument or a FAISS exception. */
faiss_peer *faiss_peer_create(uint32_t dim, const char *metric, uint32_t m,
                              uint32_t ef_construction, char *errbuf, size_t errlen);
/* Adds rows vecs[0..n) with labels 0..n-1 on n_threads threads. 0, or -1 with a message. */
int faiss_peer_add(faiss_peer *p, const float *vecs, size_t n, uint32_t n_threads,
                   char *errbuf, size_t errlen);
/* Up to k nearest labels among those whose bit is set in bitmap (bit i % 8 of byte i / 8;
 * NULL: every row), with efSearch ef, into caller-owned labels/dists. Returns how many. */
uint32_t faiss_peer_search(faiss_peer *p, const float *query, uint32_t k, uint32_t ef,
                           const uint8_t *bitmap, size_t bitmap_bytes, uint64_t *labels,
                           float *dists);
void faiss_peer_free(faiss_peer *p); /* NULL is a no-op */

#ifdef __cplusplus
}
#endif

#endif
