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
 * The scalar references sum in double: they are the oracle the tests compare against. */
#include <simde/x86/avx512.h>

#include "index/index_int.h"

static inline simde__m512 load_tail(const float *p, size_t n)
{
#if defined(SIMDE_X86_AVX512F_NATIVE)
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
#else
    float buf[16] = {0};
    memcpy(buf, p, n * sizeof(float));
    return simde_mm512_loadu_ps(buf);
#endif
}

static inline float hsum(simde__m512 v)
{
#if defined(SIMDE_X86_AVX512F_NATIVE)
    return _mm512_reduce_add_ps(v);
#else
    float t[16];
    simde_mm512_storeu_ps(t, v);
    float s0 = (t[0] + t[8]) + (t[4] + t[12]), s1 = (t[1] + t[9]) + (t[5] + t[13]);
    float s2 = (t[2] + t[10]) + (t[6] + t[14]), s3 = (t[3] + t[11]) + (t[7] + t[15]);
    return (s0 + s2) + (s1 + s3);
#endif
}

float vd_dist_l2sq(const float *a, const float *b, size_t dim)
{
    simde__m512 s0 = simde_mm512_setzero_ps(), s1 = simde_mm512_setzero_ps();
    simde__m512 s2 = simde_mm512_setzero_ps(), s3 = simde_mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        simde__m512 d0 = simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i),
                                            simde_mm512_loadu_ps(b + i));
        simde__m512 d1 = simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i + 16),
                                            simde_mm512_loadu_ps(b + i + 16));
        simde__m512 d2 = simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i + 32),
                                            simde_mm512_loadu_ps(b + i + 32));
        simde__m512 d3 = simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i + 48),
                                            simde_mm512_loadu_ps(b + i + 48));
        s0 = simde_mm512_fmadd_ps(d0, d0, s0);
        s1 = simde_mm512_fmadd_ps(d1, d1, s1);
        s2 = simde_mm512_fmadd_ps(d2, d2, s2);
        s3 = simde_mm512_fmadd_ps(d3, d3, s3);
    }
    for (; i + 16 <= dim; i += 16) {
        simde__m512 d = simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i),
                                           simde_mm512_loadu_ps(b + i));
        s0 = simde_mm512_fmadd_ps(d, d, s0);
    }
    if (i < dim) {
        simde__m512 d = simde_mm512_sub_ps(load_tail(a + i, dim - i), load_tail(b + i, dim - i));
        s1 = simde_mm512_fmadd_ps(d, d, s1);
    }
    return hsum(simde_mm512_add_ps(simde_mm512_add_ps(s0, s1), simde_mm512_add_ps(s2, s3)));
}

float vd_dist_dot(const float *a, const float *b, size_t dim)
{
    simde__m512 s0 = simde_mm512_setzero_ps(), s1 = simde_mm512_setzero_ps();
    simde__m512 s2 = simde_mm512_setzero_ps(), s3 = simde_mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        s0 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i), s0);
        s1 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i + 16),
                                  simde_mm512_loadu_ps(b + i + 16), s1);
        s2 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i + 32),
                                  simde_mm512_loadu_ps(b + i + 32), s2);
        s3 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i + 48),
                                  simde_mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= dim; i += 16)
        s0 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i), s0);
    if (i < dim)
        s1 = simde_mm512_fmadd_ps(load_tail(a + i, dim - i), load_tail(b + i, dim - i), s1);
    return hsum(simde_mm512_add_ps(simde_mm512_add_ps(s0, s1), simde_mm512_add_ps(s2, s3)));
}

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
