/* tests/unit/build_test_files.c: see build_test_files.h. */
#include "tests/unit/build_test_files.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/vd_common.h"

void vd_test_write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n) ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

void vd_test_write_npy_v(const char *path, int major, const char *dict, size_t align,
                         const void *data, size_t n_data)
{
    size_t pre = major == 1 ? 10 : 12;
    size_t hlen = strlen(dict) + 1;
    while ((pre + hlen) % align) hlen++;
    size_t total = pre + hlen + n_data;
    uint8_t *b = malloc(total);
    ck_assert_ptr_nonnull(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    if (major == 1) {
        b[8] = (uint8_t)hlen;
        b[9] = (uint8_t)(hlen >> 8);
    } else {
        vd_put_u32le(b + 8, (uint32_t)hlen);
    }
    memset(b + pre, ' ', hlen);
    memcpy(b + pre, dict, strlen(dict));
    b[pre + hlen - 1] = '\n';
    if (n_data) memcpy(b + pre + hlen, data, n_data);
    vd_test_write_bytes(path, b, total);
    free(b);
}

void vd_test_write_npy(const char *path, const char *descr, const char *shape, const void *data,
                       size_t n_data)
{
    char dict[200];
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
             shape);
    vd_test_write_npy_v(path, 1, dict, 64, data, n_data);
}

void vd_test_write_vecs(const char *path, const float *v, size_t n, int32_t dim, int bytes)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < n; i++) {
        fwrite(&dim, 4, 1, f);
        for (int32_t j = 0; j < dim; j++) {
            float x = v[i * (size_t)dim + (size_t)j];
            if (bytes == 4) {
                fwrite(&x, 4, 1, f);
            } else {
                uint8_t u = (uint8_t)x;
                fwrite(&u, 1, 1, f);
            }
        }
    }
    ck_assert_int_eq(fclose(f), 0);
}
