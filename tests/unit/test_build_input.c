/* tests/unit/test_build_input.c: the ingest readers (ingest/vd_ingest.h) the bulk build reads
 * its input with. Every test writes its small input files into a fresh mkdtemp directory: each
 * format read back value by value, and each bad input refused with a message naming what was
 * wrong. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/vd_ingest.h"
#include "index/vd_index.h"
#include "storage/vd_storage.h"
#include "tests/unit/build_test_files.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/vd-build-input-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *path_of(const char *name)
{
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static vd_status open_err(const char *path, vd_err *e)
{
    vd_vectors_file *f = NULL;
    vd_status s = vd_vectors_open(path, &f, e);
    vd_vectors_close(f);
    return s;
}

/* Opens `path`, reads every row and returns the first failure (or VD_OK). */
static vd_status read_all(const char *path, int refuse_zero, vd_err *e)
{
    vd_vectors_file *f = NULL;
    vd_status s = vd_vectors_open(path, &f, e);
    if (s != VD_OK) return s;
    size_t n = vd_vectors_count(f), dim = vd_vectors_dim(f);
    float *buf = malloc(n * dim * sizeof(float));
    const float *rows;
    s = vd_vectors_rows(f, 0, n, buf, refuse_zero, &rows, e);
    free(buf);
    vd_vectors_close(f);
    return s;
}

#define ck_assert_msg_has(e, needle)                                                          \
    ck_assert_msg(strstr((e).msg, (needle)) != NULL, "message '%s' lacks '%s'", (e).msg,        \
                  (needle))

static float sample[6 * 3];

static void fill_sample(void)
{
    for (int i = 0; i < 18; i++) sample[i] = (float)(i * 7 % 11) - 3.5f;
}

static void expect_rows(vd_vectors_file *f, const float *want, size_t n, uint32_t dim)
{
    ck_assert_uint_eq(vd_vectors_count(f), n);
    ck_assert_uint_eq(vd_vectors_dim(f), dim);
    float buf[64];
    const float *rows = NULL;
    vd_err e;
    /* The whole file, then a chunk in the middle (the build reads in chunks). */
    ck_assert_int_eq(vd_vectors_rows(f, 0, n, buf, 0, &rows, &e), VD_OK);
    for (size_t i = 0; i < n * dim; i++) ck_assert_float_eq(rows[i], want[i]);
    vd_vectors_release(f, 0, n);
    ck_assert_int_eq(vd_vectors_rows(f, 2, 3, buf, 0, &rows, &e), VD_OK);
    for (size_t i = 0; i < 3 * dim; i++) ck_assert_float_eq(rows[i], want[2 * dim + i]);
    ck_assert_int_eq(vd_vectors_rows(f, 5, 2, buf, 0, &rows, &e), VD_INVALID);
}

/* ---- each format ------------------------------------------------------------------------- */
START_TEST(npy_float32_is_used_in_place)
{
    fill_sample();
    vd_test_write_npy(path_of("a.npy"), "<f4", "(6, 3)", sample, sizeof sample);
    vd_vectors_file *f = NULL;
    vd_err e;
    ck_assert_int_eq(vd_vectors_open(path_of("a.npy"), &f, &e), VD_OK);
    ck_assert_int_eq(vd_vectors_format(f), VD_INPUT_NPY_F32);
    ck_assert_str_eq(vd_vectors_format_name(f), "npy float32");
    ck_assert_int_eq(vd_vectors_in_place(f), 1);
    float buf[18];
    const float *rows = NULL;
    ck_assert_int_eq(vd_vectors_rows(f, 0, 6, buf, 0, &rows, &e), VD_OK);
    ck_assert_ptr_ne(rows, buf); /* straight from the mapping */
    expect_rows(f, sample, 6, 3);
    vd_vectors_close(f);
}
END_TEST

START_TEST(npy_float32_unaligned_data_is_copied)
{
    fill_sample();
    /* Header padded to an odd multiple: the data starts at an offset that is not 4-aligned. */
    const char *dict = "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (6, 3) }";
    ck_assert_uint_ne((10 + strlen(dict) + 1) % 4, 0);
    vd_test_write_npy_v(path_of("u.npy"), 1, dict, 1, sample, sizeof sample);
    vd_vectors_file *f = NULL;
    vd_err e;
    ck_assert_int_eq(vd_vectors_open(path_of("u.npy"), &f, &e), VD_OK);
    ck_assert_int_eq(vd_vectors_in_place(f), 0);
    expect_rows(f, sample, 6, 3);
    vd_vectors_close(f);
}
END_TEST

START_TEST(npy_float64_versions_2_and_3_are_converted)
{
    fill_sample();
    double d[18];
    for (int i = 0; i < 18; i++) d[i] = sample[i];
    const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (6, 3), }";
    for (int major = 2; major <= 3; major++) {
        vd_test_write_npy_v(path_of("d.npy"), major, dict, 64, d, sizeof d);
        vd_vectors_file *f = NULL;
        vd_err e;
        ck_assert_int_eq(vd_vectors_open(path_of("d.npy"), &f, &e), VD_OK);
        ck_assert_int_eq(vd_vectors_format(f), VD_INPUT_NPY_F64);
        ck_assert_int_eq(vd_vectors_in_place(f), 0);
        expect_rows(f, sample, 6, 3);
        vd_vectors_close(f);
    }
}
END_TEST

START_TEST(npy_format_is_sniffed_without_the_extension)
{
    fill_sample();
    vd_test_write_npy(path_of("vectors.bin"), "<f4", "(6, 3)", sample, sizeof sample);
    vd_vectors_file *f = NULL;
    vd_err e;
    ck_assert_int_eq(vd_vectors_open(path_of("vectors.bin"), &f, &e), VD_OK);
    expect_rows(f, sample, 6, 3);
    vd_vectors_close(f);
    vd_test_write_bytes(path_of("vectors.dat"), sample, sizeof sample);
    ck_assert_int_eq(open_err(path_of("vectors.dat"), &e), VD_INVALID);
    ck_assert_msg_has(e, "unknown input format");
}
END_TEST

START_TEST(fvecs_rows_are_converted)
{
    fill_sample();
    vd_test_write_vecs(path_of("a.fvecs"), sample, 6, 3, 4);
    vd_vectors_file *f = NULL;
    vd_err e;
    ck_assert_int_eq(vd_vectors_open(path_of("a.fvecs"), &f, &e), VD_OK);
    ck_assert_int_eq(vd_vectors_format(f), VD_INPUT_FVECS);
    ck_assert_int_eq(vd_vectors_in_place(f), 0);
    expect_rows(f, sample, 6, 3);
    vd_vectors_close(f);
}
END_TEST

START_TEST(bvecs_rows_are_converted)
{
    float v[18];
    for (int i = 0; i < 18; i++) v[i] = (float)(i * 37 % 256);
    vd_test_write_vecs(path_of("a.bvecs"), v, 6, 3, 1);
    vd_vectors_file *f = NULL;
    vd_err e;
    ck_assert_int_eq(vd_vectors_open(path_of("a.bvecs"), &f, &e), VD_OK);
    ck_assert_int_eq(vd_vectors_format(f), VD_INPUT_BVECS);
    expect_rows(f, v, 6, 3);
    vd_vectors_close(f);
}
END_TEST

/* ---- bad vector files -------------------------------------------------------------------- */
START_TEST(missing_file_and_directory_are_refused)
{
    vd_err e;
    ck_assert_int_eq(open_err(path_of("nope.npy"), &e), VD_IO);
    ck_assert_msg_has(e, "cannot open input");
    ck_assert_msg_has(e, "No such file");
    ck_assert_int_eq(open_err(dir, &e), VD_INVALID);
    ck_assert_msg_has(e, "not a regular file");
    vd_test_write_bytes(path_of("empty.fvecs"), "", 0);
    ck_assert_int_eq(open_err(path_of("empty.fvecs"), &e), VD_INVALID);
    ck_assert_msg_has(e, "is empty");
}
END_TEST

START_TEST(truncated_vecs_are_refused)
{
    fill_sample();
    vd_test_write_vecs(path_of("t.fvecs"), sample, 6, 3, 4);
    truncate(path_of("t.fvecs"), 6 * 16 - 5);
    vd_err e;
    ck_assert_int_eq(open_err(path_of("t.fvecs"), &e), VD_INVALID);
    ck_assert_msg_has(e, "truncated: size 91 is not a multiple of the record size 16");
    vd_test_write_vecs(path_of("t.bvecs"), sample, 6, 3, 1);
    truncate(path_of("t.bvecs"), 6 * 7 - 1);
    ck_assert_int_eq(open_err(path_of("t.bvecs"), &e), VD_INVALID);
    ck_assert_msg_has(e, "record size 7");
    vd_test_write_bytes(path_of("tiny.fvecs"), "\3\0", 2);
    ck_assert_int_eq(open_err(path_of("tiny.fvecs"), &e), VD_INVALID);
    ck_assert_msg_has(e, "truncated");
}
END_TEST

START_TEST(truncated_npy_is_refused)
{
    fill_sample();
    vd_test_write_npy(path_of("t.npy"), "<f4", "(6, 3)", sample, sizeof sample - 4);
    vd_err e;
    ck_assert_int_eq(open_err(path_of("t.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "truncated: 68 data bytes, header announces 72");
    vd_test_write_npy(path_of("long.npy"), "<f4", "(5, 3)", sample, sizeof sample);
    ck_assert_int_eq(open_err(path_of("long.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "12 trailing bytes");
    /* The header itself cut short. */
    vd_test_write_bytes(path_of("h.npy"), "\x93NUMPY\x01\x00\x76\x00{'descr'", 18);
    ck_assert_int_eq(open_err(path_of("h.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "truncated .npy header");
}
END_TEST

START_TEST(wrong_magic_and_version_are_refused)
{
    vd_err e;
    vd_test_write_bytes(path_of("m.npy"), "PK\3\4 this is a zip file, not npy", 33);
    ck_assert_int_eq(open_err(path_of("m.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "not a .npy file (bad magic)");
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }";
    float one = 1;
    vd_test_write_npy_v(path_of("v4.npy"), 4, dict, 64, &one, 4);
    ck_assert_int_eq(open_err(path_of("v4.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "unsupported .npy format version 4.0");
    vd_test_write_npy(path_of("garbled.npy"), "<f4", "[1, 1]", &one, 4);
    ck_assert_int_eq(open_err(path_of("garbled.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "malformed .npy header");
    vd_test_write_npy_v(path_of("nokey.npy"), 1, "{'descr': '<f4', 'fortran_order': False}", 64,
                        &one, 4);
    ck_assert_int_eq(open_err(path_of("nokey.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "lacks 'shape'");
}
END_TEST

START_TEST(wrong_shape_is_refused)
{
    float v[24] = {0};
    vd_err e;
    vd_test_write_npy(path_of("1d.npy"), "<f4", "(24,)", v, sizeof v);
    ck_assert_int_eq(open_err(path_of("1d.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "shape (24,) is not 2-D");
    vd_test_write_npy(path_of("3d.npy"), "<f4", "(2, 3, 4)", v, sizeof v);
    ck_assert_int_eq(open_err(path_of("3d.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "shape (2,3,4) is not 2-D");
    vd_test_write_npy(path_of("0.npy"), "<f4", "(0, 4)", v, 0);
    ck_assert_int_eq(open_err(path_of("0.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "holds no vectors");
}
END_TEST

START_TEST(wrong_dtype_is_refused)
{
    int32_t v[6] = {0};
    vd_err e;
    vd_test_write_npy(path_of("i.npy"), "<i4", "(2, 3)", v, sizeof v);
    ck_assert_int_eq(open_err(path_of("i.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "dtype '<i4' is not supported; want float32 or float64");
    vd_test_write_npy(path_of("be.npy"), ">f4", "(2, 3)", v, sizeof v);
    ck_assert_int_eq(open_err(path_of("be.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "big-endian");
    vd_test_write_npy_v(path_of("s.npy"), 1,
                "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2, 3), }", 64, v,
                sizeof v);
    ck_assert_int_eq(open_err(path_of("s.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "structured dtype");
}
END_TEST

START_TEST(fortran_order_is_refused)
{
    float v[6] = {0};
    vd_err e;
    vd_test_write_npy_v(path_of("f.npy"), 1,
                        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 64, v,
                        sizeof v);
    ck_assert_int_eq(open_err(path_of("f.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "Fortran order");
}
END_TEST

START_TEST(dims_out_of_range_or_inconsistent_are_refused)
{
    vd_err e;
    float one = 1;
    vd_test_write_npy(path_of("d0.npy"), "<f4", "(1, 0)", &one, 0);
    ck_assert_int_eq(open_err(path_of("d0.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "dim 0 is outside 1..4096");
    float *big = calloc(4097, sizeof(float));
    vd_test_write_npy(path_of("d4097.npy"), "<f4", "(1, 4097)", big, 4097 * sizeof(float));
    ck_assert_int_eq(open_err(path_of("d4097.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "dim 4097 is outside 1..4096");
    vd_test_write_vecs(path_of("d4097.fvecs"), big, 1, 4097, 4);
    ck_assert_int_eq(open_err(path_of("d4097.fvecs"), &e), VD_INVALID);
    ck_assert_msg_has(e, "first record: dim 4097 is outside 1..4096 (not a .fvecs file?)");
    free(big);
    int32_t zero_dim = 0;
    vd_test_write_bytes(path_of("d0.bvecs"), &zero_dim, 4);
    ck_assert_int_eq(open_err(path_of("d0.bvecs"), &e), VD_INVALID);
    ck_assert_msg_has(e, "first record: dim 0 is outside 1..4096");
    int32_t neg_dim = -3; /* an int32 in the file: a negative dim is named as such */
    vd_test_write_bytes(path_of("neg.fvecs"), &neg_dim, 4);
    ck_assert_int_eq(open_err(path_of("neg.fvecs"), &e), VD_INVALID);
    ck_assert_msg_has(e, "first record: dim -3 is outside 1..4096 (not a .fvecs file?)");
    vd_test_write_npy(path_of("huge.npy"), "<f4", "(1, 5000000000)", &one, 4);
    ck_assert_int_eq(open_err(path_of("huge.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, "dim 5000000000 is outside 1..4096");
    /* The limit is the parameter table's, not a copy of it. */
    const vd_param_info *pi = vd_param_info_of(VD_PARAM_DIM);
    char shape[32], want[64];
    snprintf(shape, sizeof shape, "(1, %u)", pi->max + 1);
    snprintf(want, sizeof want, "dim %u is outside %u..%u", pi->max + 1, pi->min, pi->max);
    vd_test_write_npy(path_of("table.npy"), "<f4", shape, &one, 4); /* refused before its size */
    ck_assert_int_eq(open_err(path_of("table.npy"), &e), VD_INVALID);
    ck_assert_msg_has(e, want);
    /* fvecs records of dim 2, 2, 3-with-two-values: the size is still a multiple of 12. */
    int32_t rec[9] = {2, 0, 0, 2, 0, 0, 3, 0, 0};
    float x = 1.5f;
    memcpy(&rec[1], &x, 4);
    memcpy(&rec[4], &x, 4);
    memcpy(&rec[7], &x, 4);
    vd_test_write_bytes(path_of("mixed.fvecs"), rec, sizeof rec);
    ck_assert_int_eq(read_all(path_of("mixed.fvecs"), 0, &e), VD_INVALID);
    ck_assert_msg_has(e, "record 2 has dim 3, record 0 has 2");
    uint8_t brec[12] = {2, 0, 0, 0, 1, 2, 2, 0, 0, 0, 3, 4};
    brec[6] = 1;
    vd_test_write_bytes(path_of("mixed.bvecs"), brec, sizeof brec);
    ck_assert_int_eq(read_all(path_of("mixed.bvecs"), 0, &e), VD_INVALID);
    ck_assert_msg_has(e, "record 1 has dim 1, record 0 has 2");
}
END_TEST

START_TEST(nan_inf_and_zero_rows_are_named)
{
    fill_sample();
    vd_err e;
    float v[18];
    memcpy(v, sample, sizeof v);
    v[4 * 3 + 2] = NAN;
    vd_test_write_npy(path_of("nan.npy"), "<f4", "(6, 3)", v, sizeof v);
    ck_assert_int_eq(read_all(path_of("nan.npy"), 0, &e), VD_INVALID);
    ck_assert_msg_has(e, "row 4: component 2 is NaN");
    memcpy(v, sample, sizeof v);
    v[1 * 3 + 0] = -INFINITY;
    vd_test_write_vecs(path_of("inf.fvecs"), v, 6, 3, 4);
    ck_assert_int_eq(read_all(path_of("inf.fvecs"), 0, &e), VD_INVALID);
    ck_assert_msg_has(e, "row 1: component 0 is infinite");
    double d[18];
    for (int i = 0; i < 18; i++) d[i] = sample[i];
    d[5 * 3 + 1] = 1e300;
    vd_test_write_npy(path_of("big.npy"), "<f8", "(6, 3)", d, sizeof d);
    ck_assert_int_eq(read_all(path_of("big.npy"), 0, &e), VD_INVALID);
    ck_assert_msg_has(e, "row 5 component 1 is 1e+300, outside float32 range");
    d[5 * 3 + 1] = NAN;
    vd_test_write_npy(path_of("nan64.npy"), "<f8", "(6, 3)", d, sizeof d);
    ck_assert_int_eq(read_all(path_of("nan64.npy"), 0, &e), VD_INVALID);
    ck_assert_msg_has(e, "row 5: component 1 is NaN");
    memcpy(v, sample, sizeof v);
    v[9] = v[10] = 0;
    v[11] = -0.0f;
    vd_test_write_npy(path_of("zero.npy"), "<f4", "(6, 3)", v, sizeof v);
    ck_assert_int_eq(read_all(path_of("zero.npy"), 0, &e), VD_OK); /* fine for l2 / ip */
    ck_assert_int_eq(read_all(path_of("zero.npy"), 1, &e), VD_INVALID);
    ck_assert_msg_has(e, "row 3: zero vector has no direction for cosine");
    uint8_t brec[2 * 6] = {2, 0, 0, 0, 1, 2, 2, 0, 0, 0, 0, 0};
    vd_test_write_bytes(path_of("zero.bvecs"), brec, sizeof brec);
    ck_assert_int_eq(read_all(path_of("zero.bvecs"), 1, &e), VD_INVALID);
    ck_assert_msg_has(e, "row 1: zero vector has no direction for cosine");
}
END_TEST

/* ---- ids --------------------------------------------------------------------------------- */
START_TEST(ids_int64_uint64_and_default)
{
    vd_ids_file *f = NULL;
    vd_err e;
    int64_t s[4] = {40, 10, 30, 20};
    vd_test_write_npy(path_of("i.npy"), "<i8", "(4,)", s, sizeof s);
    ck_assert_int_eq(vd_ids_open(path_of("i.npy"), 4, &f, &e), VD_OK);
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(vd_ids_get(f)[i], (uint64_t)s[i]);
    vd_ids_close(f);
    uint64_t u[4] = {UINT64_MAX - 1, 1, 2, 1ull << 63};
    vd_test_write_npy(path_of("u.npy"), "<u8", "(4, 1)", u, sizeof u);
    ck_assert_int_eq(vd_ids_open(path_of("u.npy"), 4, &f, &e), VD_OK);
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(vd_ids_get(f)[i], u[i]);
    vd_ids_close(f);
    ck_assert_int_eq(vd_ids_open(NULL, 5, &f, &e), VD_OK);
    for (int i = 0; i < 5; i++) ck_assert_uint_eq(vd_ids_get(f)[i], (uint64_t)i);
    vd_ids_close(f);
}
END_TEST

START_TEST(bad_ids_are_refused)
{
    vd_ids_file *f = NULL;
    vd_err e;
    int64_t s[4] = {1, 2, 3, 4};
    vd_test_write_npy(path_of("n.npy"), "<i8", "(4,)", s, sizeof s);
    ck_assert_int_eq(vd_ids_open(path_of("n.npy"), 5, &f, &e), VD_INVALID);
    ck_assert_msg_has(e, "4 ids for 5 vectors");
    ck_assert_ptr_null(f);
    s[2] = -7;
    vd_test_write_npy(path_of("neg.npy"), "<i8", "(4,)", s, sizeof s);
    ck_assert_int_eq(vd_ids_open(path_of("neg.npy"), 4, &f, &e), VD_INVALID);
    ck_assert_msg_has(e, "id at row 2 is negative (-7)");
    int64_t dup[5] = {9, 7, 8, 7, 9};
    vd_test_write_npy(path_of("dup.npy"), "<i8", "(5,)", dup, sizeof dup);
    ck_assert_int_eq(vd_ids_open(path_of("dup.npy"), 5, &f, &e), VD_INVALID);
    ck_assert_msg_has(e, "id 7 appears more than once (rows 1 and 3)");
    uint64_t res[2] = {1, UINT64_MAX};
    vd_test_write_npy(path_of("res.npy"), "<u8", "(2,)", res, sizeof res);
    ck_assert_int_eq(vd_ids_open(path_of("res.npy"), 2, &f, &e), VD_INVALID);
    ck_assert_msg_has(e, "reserved");
    double fl[2] = {1, 2};
    vd_test_write_npy(path_of("f.npy"), "<f8", "(2,)", fl, sizeof fl);
    ck_assert_int_eq(vd_ids_open(path_of("f.npy"), 2, &f, &e), VD_INVALID);
    ck_assert_msg_has(e, "ids dtype '<f8' is not supported");
    vd_test_write_npy(path_of("2d.npy"), "<i8", "(2, 2)", s, sizeof s);
    ck_assert_int_eq(vd_ids_open(path_of("2d.npy"), 2, &f, &e), VD_INVALID);
    ck_assert_msg_has(e, "shape (n,) or (n, 1)");
    vd_test_write_npy(path_of("short.npy"), "<i8", "(4,)", s, sizeof s - 8);
    ck_assert_int_eq(vd_ids_open(path_of("short.npy"), 4, &f, &e), VD_INVALID);
    ck_assert_msg_has(e, "truncated");
    ck_assert_int_eq(vd_ids_open(path_of("missing.npy"), 4, &f, &e), VD_IO);
    ck_assert_msg_has(e, "cannot open ids");
}
END_TEST

START_TEST(distinct_check_on_large_unsorted_ids)
{
    size_t n = 100000;
    uint64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (i * 2654435761u) % 1000003u; /* distinct */
    vd_err e;
    ck_assert_int_eq(vd_ids_check_distinct(ids, n, &e), VD_OK);
    ids[77777] = ids[12345];
    ck_assert_int_eq(vd_ids_check_distinct(ids, n, &e), VD_INVALID);
    ck_assert_msg_has(e, "appears more than once (rows 12345 and 77777)");
    free(ids);
}
END_TEST

/* ---- payloads ---------------------------------------------------------------------------- */
/* Stand-in for storage's vd_json_check_object in these tests of the line mechanics (counting,
 * CRLF, line numbers): accepts `{...}` and nothing else. The real check is tested with
 * storage's function in payloads_use_the_storage_json_check below. */
static vd_status braces_only(const uint8_t *p, size_t n, vd_err *err)
{
    if (n >= 2 && p[0] == '{' && p[n - 1] == '}') return VD_OK;
    return vd_err_set(err, VD_INVALID, "expected an object at byte 0");
}

START_TEST(payload_lines_map_to_rows)
{
    const char *text = "{\"a\": 1}\n{}\r\n{\"text\": \"x\\ny\"}";
    vd_test_write_bytes(path_of("p.jsonl"), text, strlen(text));
    vd_payloads_file *f = NULL;
    vd_err e;
    ck_assert_int_eq(vd_payloads_open(path_of("p.jsonl"), 3, braces_only, &f, &e), VD_OK);
    const uint8_t *const *p = vd_payloads_ptrs(f);
    const uint32_t *len = vd_payloads_lens(f);
    ck_assert_int_eq(memcmp(p[0], "{\"a\": 1}", len[0]), 0);
    ck_assert_uint_eq(len[1], 2); /* the '\r' is not part of the payload */
    ck_assert_uint_eq(len[2], strlen("{\"text\": \"x\\ny\"}"));
    vd_payloads_close(f);
}
END_TEST

START_TEST(bad_payloads_are_refused)
{
    vd_payloads_file *f = NULL;
    vd_err e;
    const char *three = "{}\n{}\n{}\n";
    vd_test_write_bytes(path_of("3.jsonl"), three, strlen(three));
    ck_assert_int_eq(vd_payloads_open(path_of("3.jsonl"), 4, braces_only, &f, &e), VD_INVALID);
    ck_assert_msg_has(e, "3 payload lines for 4 vectors");
    ck_assert_int_eq(vd_payloads_open(path_of("3.jsonl"), 2, braces_only, &f, &e), VD_INVALID);
    ck_assert_msg_has(e, "3 payload lines for 2 vectors");
    const char *bad = "{}\n[1, 2]\n{}\n";
    vd_test_write_bytes(path_of("bad.jsonl"), bad, strlen(bad));
    ck_assert_int_eq(vd_payloads_open(path_of("bad.jsonl"), 3, braces_only, &f, &e),
                     VD_INVALID);
    ck_assert_msg_has(e, "line 2 is not a JSON object");
    const char *blank = "{}\n\n{}\n";
    vd_test_write_bytes(path_of("blank.jsonl"), blank, strlen(blank));
    ck_assert_int_eq(vd_payloads_open(path_of("blank.jsonl"), 3, braces_only, &f, &e),
                     VD_INVALID);
    ck_assert_msg_has(e, "line 2 is not a JSON object");
    ck_assert_int_eq(vd_payloads_open(path_of("none.jsonl"), 3, braces_only, &f, &e), VD_IO);
    ck_assert_msg_has(e, "cannot open payloads");
    ck_assert_ptr_null(f);
}
END_TEST

/* The check the build really uses: storage's JSON validator, through the same hook. */
START_TEST(payloads_use_the_storage_json_check)
{
    vd_payloads_file *f = NULL;
    vd_err e;
    const char *good = "{\"text\": \"caf\\u00e9 \u00e9 \\\"q\\\"\", \"tags\": [1, 2.5e3, null, true]}\n"
                       "{}\n{\"nested\": {\"a\": {\"b\": []}}}\n";
    vd_test_write_bytes(path_of("good.jsonl"), good, strlen(good));
    ck_assert_msg(vd_payloads_open(path_of("good.jsonl"), 3, vd_json_check_object, &f, &e) ==
                      VD_OK, "%s", e.msg);
    vd_payloads_close(f);
    static const char *const bad[] = {
        "{}\n{\"a\": 1,}\n{}\n",      /* trailing comma */
        "{}\n[1]\n{}\n",                /* an array, not an object */
        "{}\n\"text\"\n{}\n",           /* a string */
        "{}\n{\"a\": 1} {}\n{}\n",      /* two values on one line */
        "{}\n{\"a\": tru}\n{}\n",       /* bad literal */
        "{}\n{\"a\": \"\xff\"}\n{}\n", /* invalid UTF-8 */
        "{}\n\n{}\n",                   /* empty line */
    };
    for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
        vd_test_write_bytes(path_of("bad.jsonl"), bad[i], strlen(bad[i]));
        ck_assert_int_eq(vd_payloads_open(path_of("bad.jsonl"), 3, vd_json_check_object, &f, &e),
                         VD_INVALID);
        ck_assert_msg_has(e, "line 2 is not a JSON object");
        ck_assert_ptr_null(f);
    }
}
END_TEST

Suite *build_input_suite(void)
{
    Suite *s = suite_create("build_input");
    TCase *tc = tcase_create("formats");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, npy_float32_is_used_in_place);
    tcase_add_test(tc, npy_float32_unaligned_data_is_copied);
    tcase_add_test(tc, npy_float64_versions_2_and_3_are_converted);
    tcase_add_test(tc, npy_format_is_sniffed_without_the_extension);
    tcase_add_test(tc, fvecs_rows_are_converted);
    tcase_add_test(tc, bvecs_rows_are_converted);
    tcase_add_test(tc, ids_int64_uint64_and_default);
    tcase_add_test(tc, payload_lines_map_to_rows);
    suite_add_tcase(s, tc);
    TCase *bad = tcase_create("bad_input");
    tcase_add_checked_fixture(bad, setup, teardown);
    tcase_add_test(bad, missing_file_and_directory_are_refused);
    tcase_add_test(bad, truncated_vecs_are_refused);
    tcase_add_test(bad, truncated_npy_is_refused);
    tcase_add_test(bad, wrong_magic_and_version_are_refused);
    tcase_add_test(bad, wrong_shape_is_refused);
    tcase_add_test(bad, wrong_dtype_is_refused);
    tcase_add_test(bad, fortran_order_is_refused);
    tcase_add_test(bad, dims_out_of_range_or_inconsistent_are_refused);
    tcase_add_test(bad, nan_inf_and_zero_rows_are_named);
    tcase_add_test(bad, bad_ids_are_refused);
    tcase_add_test(bad, distinct_check_on_large_unsorted_ids);
    tcase_add_test(bad, bad_payloads_are_refused);
    tcase_add_test(bad, payloads_use_the_storage_json_check);
    suite_add_tcase(s, bad);
    return s;
}
