// bench/faiss_peer.cc: see faiss_peer.h. FAISS's IndexHNSWFlat with the benchmark's M and
// ef_construction; a filtered search passes SearchParametersHNSW{efSearch, sel} with an
// IDSelectorBitmap over the allowed rows: FAISS traverses the graph as usual and only
// returns members, so selective or anti-correlated filters need a large efSearch (or never
// reach the target recall) - the behaviour bench-filter measures against.
#include "bench/faiss_peer.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <faiss/IndexHNSW.h>
#include <faiss/impl/IDSelector.h>
#include <omp.h>

struct faiss_peer {
    std::unique_ptr<faiss::IndexHNSWFlat> index;
    uint32_t dim;
    bool normalize;
    std::vector<float> q; // normalized query copy
};

static void normalize_rows(float *v, size_t n, uint32_t dim)
{
    for (size_t i = 0; i < n; i++) {
        float *r = v + i * dim;
        double s = 0;
        for (uint32_t j = 0; j < dim; j++) s += (double)r[j] * r[j];
        float inv = s > 0 ? (float)(1.0 / std::sqrt(s)) : 0.0f;
        for (uint32_t j = 0; j < dim; j++) r[j] *= inv;
    }
}

extern "C" faiss_peer *faiss_peer_create(uint32_t dim, const char *metric, uint32_t m,
                                         uint32_t ef_construction, char *errbuf,
                                         size_t errlen)
{
    try {
        std::string mt = metric ? metric : "";
        if (mt != "l2" && mt != "cosine" && mt != "ip") {
            snprintf(errbuf, errlen, "faiss peer: unknown metric %s", mt.c_str());
            return nullptr;
        }
        auto *p = new faiss_peer;
        p->dim = dim;
        p->normalize = mt == "cosine";
        p->index.reset(new faiss::IndexHNSWFlat((int)dim, (int)m,
                                                mt == "l2" ? faiss::METRIC_L2
                                                           : faiss::METRIC_INNER_PRODUCT));
        p->index->hnsw.efConstruction = (int)ef_construction;
        p->q.resize(dim);
        return p;
    } catch (const std::exception &e) {
        snprintf(errbuf, errlen, "faiss peer: %s", e.what());
        return nullptr;
    }
}

extern "C" int faiss_peer_add(faiss_peer *p, const float *vecs, size_t n, uint32_t n_threads,
                              char *errbuf, size_t errlen)
{
    try {
        omp_set_num_threads((int)(n_threads ? n_threads : 1));
        if (p->normalize) {
            std::vector<float> copy(vecs, vecs + n * p->dim);
            normalize_rows(copy.data(), n, p->dim);
            p->index->add((faiss::Index::idx_t)n, copy.data());
        } else {
            p->index->add((faiss::Index::idx_t)n, vecs);
        }
        omp_set_num_threads(1);
        return 0;
    } catch (const std::exception &e) {
        snprintf(errbuf, errlen, "faiss peer: %s", e.what());
        return -1;
    }
}

extern "C" uint32_t faiss_peer_search(faiss_peer *p, const float *query, uint32_t k,
                                      uint32_t ef, const uint8_t *bitmap, size_t bitmap_bytes,
                                      uint64_t *labels, float *dists)
{
    const float *q = query;
    if (p->normalize) {
        memcpy(p->q.data(), query, p->dim * sizeof(float));
        normalize_rows(p->q.data(), 1, p->dim);
        q = p->q.data();
    }
    std::vector<faiss::Index::idx_t> ids(k);
    faiss::SearchParametersHNSW sp;
    sp.efSearch = (int)(ef > k ? ef : k);
    // FAISS 1.7.3 (Debian 12) reads the index's efSearch, not the parameters' (measured: ef
    // 16 and 4096 through SearchParametersHNSW cost the same), so set both.
    p->index->hnsw.efSearch = sp.efSearch;
    std::unique_ptr<faiss::IDSelectorBitmap> sel;
    if (bitmap) {
        sel.reset(new faiss::IDSelectorBitmap(bitmap_bytes, bitmap));
        sp.sel = sel.get();
    }
    p->index->search(1, q, (faiss::Index::idx_t)k, dists, ids.data(), &sp);
    uint32_t n = 0;
    for (uint32_t i = 0; i < k; i++) {
        if (ids[i] < 0) break;
        labels[n++] = (uint64_t)ids[i];
    }
    return n;
}

extern "C" void faiss_peer_free(faiss_peer *p) { delete p; }
