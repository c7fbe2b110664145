/* index/distance.c: squared L2 and dot product kernels, written once with SIMDe, and the
 * int8 dot products of quantized indexes.
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
 * The scalar references sum in double: they are the oracle the tests compare against.
 *
 * int8. A code is dim signed bytes in [-127, 127] with a per-vector scale; a distance is one
 * integer dot product plus a few float operations (index_int.h, vd_index__dist_q8_m). The
 * kernel body depends on what the CPU has, each written with SIMDe so it compiles anywhere:
 * AVX-512 VNNI (dpbusd: unsigned x signed bytes into int32 in one instruction, with |a| and
 * b's sign flipped where a is negative), AVX-512BW and AVX2 (maddubs into saturating int16
 * pairs, then madd into int32: 2 x 127 x 127 fits, which is why -128 is never a code), NEON
 * with the dot-product extension (sdot, signed on both sides), else 128-bit SSSE3 code that
 * SIMDe maps to NEON or portable C. Two accumulators, exact-length tails like the float
 * kernels. This file compiles every variant (VD_KERNELS_ALL: SIMDe emulates what the CPU
 * lacks) so the tests check each one against the scalar reference on any machine; the
 * index itself only ever calls the native one, inlined. Rejected: widening both sides to
 * int16 and madd (twice the instructions per byte); float kernels over dequantized codes
 * (int8's speed is fewer bytes per compare and cheap integer multiply-adds). */
#define VD_KERNELS_ALL
#include "index/index_int.h"

const uint32_t vd_kern_tail_mask[2 * VD_VW] = {
    [VD_VW ... 2 * VD_VW - 1] = UINT32_MAX,
};
const uint8_t vd_kern_tail_mask8[128] = {[64 ... 127] = 0xff};

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

int32_t vd_dist_dot_i8(vd_i8_kernel which, const int8_t *a, const int8_t *b, size_t dim)
{
    switch (which) {
    case VD_I8_128: return vd_kern_dot_i8_128(a, b, dim);
    case VD_I8_256: return vd_kern_dot_i8_256(a, b, dim);
    case VD_I8_512: return vd_kern_dot_i8_512(a, b, dim);
    case VD_I8_VNNI: return vd_kern_dot_i8_vnni(a, b, dim);
    case VD_I8_NEON: return vd_kern_dot_i8_neon(a, b, dim);
    default: return vd_kern_dot_i8(a, b, dim);
    }
}

int32_t vd_dist_dot_i8_ref(const int8_t *a, const int8_t *b, size_t dim)
{
    int64_t s = 0;
    for (size_t i = 0; i < dim; i++) s += (int64_t)a[i] * b[i];
    return (int32_t)s;
}

const char *vd_dist_simd_int8_name(void) { return VD_KERN_I8_NAME; }
