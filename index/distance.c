/* index/distance.c: squared L2 and dot product kernels, written once with SIMDe.
 *
 * The kernels use 512-bit SIMDe types: with -march=native on an AVX-512 machine they compile
 * to native zmm instructions; elsewhere SIMDe lowers each 512-bit op to two AVX2, four SSE or
 * four NEON ops, so one source serves every target. Four independent accumulators hide the
 * FMA latency (64 floats per iteration), then a 16-wide loop, then the tail.
 *
 * Tails are exact-length: no read past dim floats (vectors sit at the end of node blocks and
 * queries are caller memory). With native AVX-512 a masked load does it in one instruction;
 * SIMDe 0.7.4 has no portable simde_mm512_maskz_loadu_ps, so other targets copy the last
 * dim % 16 floats into a zeroed 16-float buffer. Rejected: a scalar tail loop (slow for dims
 * like 100 = 6 * 16 + 4 where it would be every query's last 4 products, and a different
 * summation order from the SIMD part for no gain).
 *
 * The kernel bodies live in index_int.h as static inline functions so that the search loop in
 * hnsw.c inlines them (a call per distance is measurable at 100 dims); this file exports them.
 *
 * The scalar references sum in double: they are the oracle the tests compare against. */
#include "index/index_int.h"

float vd_dist_l2sq(const float *a, const float *b, size_t dim) { return vd_kern_l2sq(a, b, dim); }

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
