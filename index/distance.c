/* index/distance.c: squared L2 and dot product kernels, written once with SIMDe.
 *
 * One kernel body over a vector type chosen at compile time as the widest the target runs
 * natively (index_int.h): 512-bit with AVX-512, 256-bit with AVX/AVX2, else 128-bit, which
 * SIMDe maps to SSE2, NEON or portable code. Rejected: always the 512-bit SIMDe types and
 * letting SIMDe split them: on AVX2 GCC routes every split op through the stack and general
 * registers, up to 9x slower than native 256-bit code (81 vs 9 ns per 100-dim distance).
 * Four independent accumulators hide the FMA latency (4 vectors per iteration), then a
 * one-vector loop, then the tail.
 *
 * Tails are exact-length: no read past dim floats (vectors sit at the end of node blocks and
 * queries are caller memory). The last dim % VD_VW floats are taken by one load that ends at
 * dim, with the lanes already summed masked off. Only vectors shorter than one register go
 * through a zeroed buffer. Rejected: a scalar tail loop (every 100-dim distance would end in
 * 4 scalar products) and masked loads (SIMDe 0.7.4 has no portable maskz_loadu).
 *
 * The kernel bodies live in index_int.h as static inline functions so that the loops of
 * search.c, neighbors.c and the rest inline them (a call per distance is measurable at 100
 * dims); this file exports them.
 *
 * The scalar references sum in double: they are the oracle the tests compare against. */
#include "index/index_int.h"

const uint32_t vd_kern_tail_mask[2 * VD_VW] = {
    [VD_VW ... 2 * VD_VW - 1] = UINT32_MAX,
};

float vd_dist_l2sq(const float *a, const float *b, size_t dim) { return vd_kern_l2sq(a, b, dim); }

float vd_dist_l2sq_below(const float *a, const float *b, size_t dim, float bound)
{
    return vd_kern_l2sq_below(a, b, dim, bound);
}

float vd_dist_dot(const float *a, const float *b, size_t dim) { return vd_kern_dot(a, b, dim); }

float vd_dist_l2sq_ref(const float *a, const float *b, size_t dim)
{
    double s = 0;
    for (size_t i = 0; i < dim; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return (float)s;
}

float vd_dist_dot_ref(const float *a, const float *b, size_t dim)
{
    double s = 0;
    for (size_t i = 0; i < dim; i++) s += (double)a[i] * (double)b[i];
    return (float)s;
}

const char *vd_dist_simd_name(void)
{
#if defined(SIMDE_X86_AVX512F_NATIVE)
    return "avx512";
#elif defined(SIMDE_X86_AVX2_NATIVE)
    return "avx2";
#elif defined(SIMDE_X86_SSE2_NATIVE)
    return "sse2";
#elif defined(SIMDE_ARM_NEON_A64V8_NATIVE)
    return "neon";
#elif defined(SIMDE_ARM_NEON_A32V7_NATIVE)
    return "neon32";
#else
    return "scalar";
#endif
}
