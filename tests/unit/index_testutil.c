/* tests/unit/index_testutil.c: see index_testutil.h. */
#include "tests/unit/index_testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vt_slow_build(void)
{
    const char *b = getenv("VD_TEST_BUILD");
    return b && (strstr(b, "asan") || strstr(b, "tsan"));
}

size_t vt_scale(size_t n, size_t div)
{
    if (!vt_slow_build()) return n;
    return n / div ? n / div : 1;
}

uint64_t vt_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float vt_randf(uint64_t *s) { return (float)((vt_rand(s) >> 40) * 0x1.0p-24 * 2.0 - 1.0); }

float *vt_clustered(size_t n, uint32_t dim, size_t n_clusters, uint64_t seed)
{
    /* Like real embeddings, the points have a low intrinsic dimension: clusters in an
     * 8-dimensional latent space, mapped linearly into `dim` dimensions, plus a little noise.
     * The map and the centres depend on seed % 1000 only, so base and queries made with
     * seeds s and s + 1000 share them. */
    enum { LATENT = 8 };
    uint64_t s = seed % 1000 * 7919 + 17;
    float *a = malloc((size_t)dim * LATENT * sizeof(float));
    float *c = malloc(n_clusters * LATENT * sizeof(float));
    float *v = malloc(n * dim * sizeof(float));
    ck_assert(a && c && v);
    for (size_t i = 0; i < (size_t)dim * LATENT; i++) a[i] = vt_randf(&s);
    for (size_t i = 0; i < n_clusters * LATENT; i++) c[i] = vt_randf(&s) * 3.0f;
    s = seed;
    for (size_t i = 0; i < n; i++) {
        const float *ctr = c + (vt_rand(&s) % n_clusters) * LATENT;
        float z[LATENT];
        for (int j = 0; j < LATENT; j++) z[j] = ctr[j] + vt_randf(&s);
        for (uint32_t d = 0; d < dim; d++) {
            float x = 0.05f * vt_randf(&s);
            for (int j = 0; j < LATENT; j++) x += a[d * LATENT + j] * z[j];
            v[i * dim + d] = x;
        }
    }
    free(a);
    free(c);
    return v;
}

float *vt_read_fvecs(const char *path, size_t max_n, size_t *n_out, uint32_t *dim_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    int32_t d = 0;
    float *v = NULL;
    size_t n = 0;
    if (fread(&d, 4, 1, f) != 1 || d < 1 || d > (int32_t)VD_DIM_MAX) goto done;
    v = malloc(max_n * (size_t)d * sizeof(float));
    if (!v) goto done;
    rewind(f);
    for (; n < max_n; n++) {
        int32_t dd;
        if (fread(&dd, 4, 1, f) != 1) break;
        if (dd != d || fread(v + n * (size_t)d, sizeof(float), (size_t)d, f) != (size_t)d) {
            free(v);
            v = NULL;
            goto done;
        }
    }
    *n_out = n;
    *dim_out = (uint32_t)d;
done:
    fclose(f);
    return v;
}

vd_index *vt_open(uint32_t dim, vd_metric metric, uint32_t m, uint32_t efc, uint64_t seed)
{
    vd_index_params p = {.dim = dim, .metric = metric, .m = m, .ef_construction = efc,
                         .seed = seed};
    vd_index *ix = NULL;
    vd_err e = {0};
    vd_status st = vd_index_open(&p, &ix, &e);
    ck_assert_msg(st == VD_OK, "open: %s", e.msg);
    return ix;
}

double vt_recall(const vd_index *ix, const float *queries, size_t nq, uint32_t k, uint32_t ef)
{
    uint32_t dim = vd_index_params_of(ix)->dim;
    vd_hit *exact = malloc(k * sizeof(vd_hit)), *approx = malloc(k * sizeof(vd_hit));
    size_t found = 0, total = 0;
    for (size_t q = 0; q < nq; q++) {
        uint32_t ne = 0, na = 0;
        vd_err e = {0};
        ck_assert_int_eq(vd_index_search_exact(ix, queries + q * dim, k, exact, &ne, &e), VD_OK);
        ck_assert_int_eq(vd_index_search(ix, queries + q * dim, k, ef, approx, &na, &e), VD_OK);
        for (uint32_t i = 0; i < ne; i++)
            for (uint32_t j = 0; j < na; j++)
                if (exact[i].id == approx[j].id) {
                    found++;
                    break;
                }
        total += ne;
    }
    free(exact);
    free(approx);
    return total ? (double)found / (double)total : 1.0;
}

void vt_assert_valid(const vd_index *ix)
{
    vd_err e = {0};
    vd_status st = vd_index_validate(ix, &e);
    ck_assert_msg(st == VD_OK, "validate: %s", e.msg);
}
