/* tests/unit/build_test_files.h: writers of small input files for the bulk-build tests
 * (test_build_input.c, test_build_cmd.c). Each asserts (Check) that the write succeeded. */
#ifndef VD_BUILD_TEST_FILES_H
#define VD_BUILD_TEST_FILES_H

#include <stddef.h>
#include <stdint.h>

void vd_test_write_bytes(const char *path, const void *p, size_t n);
/* An .npy of format version `major` with header dict `dict`, padded like numpy to a
 * multiple of `align` bytes and ending in '\n', then n_data raw bytes. */
void vd_test_write_npy_v(const char *path, int major, const char *dict, size_t align,
                         const void *data, size_t n_data);
/* A version 1.0 .npy of dtype `descr` ("<f4") and shape `shape` ("(6, 3)"). */
void vd_test_write_npy(const char *path, const char *descr, const char *shape, const void *data,
                       size_t n_data);
/* n records of int32 dim then dim values: float32 (bytes == 4) or uint8 (bytes == 1). */
void vd_test_write_vecs(const char *path, const float *v, size_t n, int32_t dim, int bytes);

#endif
