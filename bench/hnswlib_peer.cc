/* bench/hnswlib_peer.cc: hnswlib, the strict peer of every vectord benchmark, behind a C API.
 *
 * Why a wrapper at all: the benchmark drivers are C, hnswlib is header-only C++. This file is
 * the only C++ translation unit in the tree; the Makefile compiles it with the same -O3
 * -march=native as vectord's C code, so hnswlib gets the same AVX-512 code generation and
 * the comparison is kernel-for-kernel fair (Debian's python3-hnswlib is an SSE-only build and
 * would flatter us by ~1.4x).
 *
 * Layout: one hnswlib::HierarchicalNSW<float> with room for exactly max_elements points
 * (hnswlib allocates its level-0 block once; resizing mid-build would add a copy vectord
 * does not pay). Labels are row numbers.
 *
 * Metrics: "l2" uses L2Space (squared distance, like vectord); "ip" uses InnerProductSpace
 * (1 - dot; same order as vectord's -dot). "cosine" normalizes every vector before
 * addPoint and every query before searchKnn, then uses InnerProductSpace - what hnswlib's
 * own Python binding does for space='cosine'. Query normalization happens inside the
 * timed search call on purpose: vectord normalizes its queries inside vd_index_search too.
 *
 * Parallel add follows hnswlib's examples (ParallelFor in its Python binding): the first
 * point is added alone so the entry point exists, then n_threads threads each take the next
 * row from one atomic counter and call addPoint, which is thread-safe in hnswlib 0.6.
 * Exceptions never cross the C boundary: each is caught and turned into an error message.
 *
 * Threads: search is safe from many threads (hnswlib keeps a pool of visited lists behind
 * a mutex, and searchKnn is const); set_ef must not race with searches. */
#include "bench/hnswlib_peer.h"

#include <hnswlib/hnswlib.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct hnswlib_peer {
    uint32_t dim = 0;
    bool normalize = false;
    std::string simd;
    std::unique_ptr<hnswlib::SpaceInterface<float>> space;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;
};

static void set_err(char *errbuf, size_t errlen, const char *fmt, const char *detail)
{
    if (errbuf != nullptr && errlen > 0)
        snprintf(errbuf, errlen, fmt, detail);
}

/* Mirrors the dispatch in hnswlib's space_l2.h / space_ip.h constructors, so the JSON line
 * says which kernel hnswlib really runs (it varies with dim % 16 and dim % 4). */
static std::string pick_simd_name(uint32_t dim, bool ip)
{
#if defined(USE_AVX512)
    const char *wide = AVX512Capable() ? "avx512" : (AVXCapable() ? "avx" : "sse");
#elif defined(USE_AVX)
    const char *wide = AVXCapable() ? "avx" : "sse";
#elif defined(USE_SSE)
    const char *wide = "sse";
#else
    const char *wide = nullptr;
#endif
    if (wide == nullptr)
        return "scalar";
#if defined(USE_AVX)
    const char *narrow = ip && AVXCapable() ? "avx" : "sse";
#else
    const char *narrow = "sse";
    (void)ip;
#endif
    if (dim % 16 == 0)
        return wide;
    if (dim % 4 == 0)
        return narrow;
    if (dim > 16)
        return std::string(wide) + "+scalar-tail";
    if (dim > 4)
        return std::string(narrow) + "+scalar-tail";
    return "scalar";
}

static void normalize_into(const float *v, uint32_t dim, float *out)
{
    double s = 0.0;
    for (uint32_t i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    float inv = s > 0.0 ? (float)(1.0 / std::sqrt(s)) : 0.0f;
    for (uint32_t i = 0; i < dim; i++)
        out[i] = v[i] * inv;
}

extern "C" hnswlib_peer *hnswlib_peer_create(uint32_t dim, const char *metric, uint32_t m,
                                             uint32_t ef_construction, uint64_t seed,
                                             size_t max_elements, char *errbuf, size_t errlen)
{
    if (dim == 0 || m < 2 || ef_construction == 0 || max_elements == 0 || metric == nullptr) {
        set_err(errbuf, errlen, "hnswlib peer: bad parameters%s", "");
        return nullptr;
    }
    try {
        std::unique_ptr<hnswlib_peer> p(new hnswlib_peer());
        p->dim = dim;
        bool ip;
        if (strcmp(metric, "l2") == 0) {
            p->space.reset(new hnswlib::L2Space(dim));
            ip = false;
        } else if (strcmp(metric, "cosine") == 0 || strcmp(metric, "ip") == 0) {
            p->space.reset(new hnswlib::InnerProductSpace(dim));
            p->normalize = strcmp(metric, "cosine") == 0;
            ip = true;
        } else {
            set_err(errbuf, errlen, "hnswlib peer: unknown metric '%s'", metric);
            return nullptr;
        }
        p->simd = pick_simd_name(dim, ip);
        p->hnsw.reset(new hnswlib::HierarchicalNSW<float>(p->space.get(), max_elements, m,
                                                          ef_construction, (size_t)seed));
        return p.release();
    } catch (const std::exception &e) {
        set_err(errbuf, errlen, "hnswlib peer: create failed: %s", e.what());
        return nullptr;
    }
}

extern "C" int hnswlib_peer_add(hnswlib_peer *p, const float *vecs, size_t n,
                                size_t first_label, uint32_t n_threads, char *errbuf,
                                size_t errlen)
{
    if (n == 0)
        return 0;
    if (p->hnsw->cur_element_count + n > p->hnsw->max_elements_) {
        set_err(errbuf, errlen, "hnswlib peer: %s", "adding past max_elements");
        return -1;
    }
    const uint32_t dim = p->dim;
    std::mutex err_mu;
    std::string first_error;
    auto add_one = [&](size_t i, float *scratch) {
        const float *v = vecs + i * dim;
        if (p->normalize) {
            normalize_into(v, dim, scratch);
            v = scratch;
        }
        p->hnsw->addPoint(v, first_label + i);
    };
    try {
        std::vector<float> scratch(dim);
        size_t start = 0;
        if (p->hnsw->cur_element_count == 0) {
            add_one(0, scratch.data());
            start = 1;
        }
        if (n_threads <= 1) {
            for (size_t i = start; i < n; i++)
                add_one(i, scratch.data());
            return 0;
        }
        std::atomic<size_t> next(start);
        std::vector<std::thread> threads;
        for (uint32_t t = 0; t < n_threads; t++) {
            threads.emplace_back([&]() {
                std::vector<float> buf(dim);
                for (;;) {
                    size_t i = next.fetch_add(1, std::memory_order_relaxed);
                    if (i >= n)
                        break;
                    try {
                        add_one(i, buf.data());
                    } catch (const std::exception &e) {
                        std::lock_guard<std::mutex> lock(err_mu);
                        if (first_error.empty())
                            first_error = e.what();
                        next.store(n);
                        break;
                    }
                }
            });
        }
        for (auto &t : threads)
            t.join();
    } catch (const std::exception &e) {
        set_err(errbuf, errlen, "hnswlib peer: add failed: %s", e.what());
        return -1;
    }
    if (!first_error.empty()) {
        set_err(errbuf, errlen, "hnswlib peer: add failed: %s", first_error.c_str());
        return -1;
    }
    return 0;
}

extern "C" void hnswlib_peer_set_ef(hnswlib_peer *p, uint32_t ef)
{
    p->hnsw->setEf(ef);
}

extern "C" uint32_t hnswlib_peer_search(const hnswlib_peer *p, const float *query, uint32_t k,
                                        uint64_t *labels, float *dists)
{
    try {
        const float *q = query;
        /* thread_local: no allocation per query beyond what searchKnn itself does. */
        thread_local std::vector<float> qn;
        if (p->normalize) {
            qn.resize(p->dim);
            normalize_into(query, p->dim, qn.data());
            q = qn.data();
        }
        auto res = p->hnsw->searchKnn(q, k);
        /* The priority queue pops farthest first. */
        uint32_t n = (uint32_t)res.size();
        for (uint32_t i = n; i-- > 0;) {
            labels[i] = (uint64_t)res.top().second;
            dists[i] = res.top().first;
            res.pop();
        }
        return n;
    } catch (const std::exception &) {
        return 0;
    }
}

extern "C" size_t hnswlib_peer_count(const hnswlib_peer *p)
{
    return p->hnsw->cur_element_count;
}

static double upper_link_bytes(const hnswlib::HierarchicalNSW<float> &h)
{
    double bytes = 0.0;
    for (size_t i = 0; i < h.cur_element_count; i++)
        if (h.element_levels_[i] > 0)
            bytes += (double)h.size_links_per_element_ * h.element_levels_[i];
    return bytes;
}

extern "C" double hnswlib_peer_bytes_core_per_vector(const hnswlib_peer *p)
{
    const auto &h = *p->hnsw;
    size_t n = h.cur_element_count;
    if (n == 0)
        return 0.0;
    /* Level-0 block minus the label, plus upper links. */
    double core = (double)(h.size_data_per_element_ - sizeof(hnswlib::labeltype)) * n;
    return (core + upper_link_bytes(h)) / (double)n;
}

extern "C" double hnswlib_peer_bytes_per_vector(const hnswlib_peer *p)
{
    const auto &h = *p->hnsw;
    size_t n = h.cur_element_count;
    if (n == 0)
        return 0.0;
    double total = (double)h.size_data_per_element_ * h.max_elements_ + upper_link_bytes(h);
    /* Side arrays sized by max_elements: linkLists_ pointers, element_levels_, one mutex per
     * element (link_list_locks_). */
    total += (double)h.max_elements_ * (sizeof(char *) + sizeof(int) + sizeof(std::mutex));
    /* label_lookup_: libstdc++ unordered_map node = next pointer + key + value (+ padding),
     * plus one bucket pointer per bucket. */
    total += (double)n * (sizeof(void *) + sizeof(hnswlib::labeltype) + sizeof(hnswlib::tableint)
                          + 4);
    total += (double)h.label_lookup_.bucket_count() * sizeof(void *);
    return total / (double)n;
}

extern "C" const char *hnswlib_peer_simd(const hnswlib_peer *p)
{
    return p->simd.c_str();
}

extern "C" void hnswlib_peer_free(hnswlib_peer *p)
{
    delete p;
}
