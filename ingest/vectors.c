/* ingest/vectors.c: vectors from .npy (float32/float64), .fvecs and .bvecs files.
 *
 * Layout. The file is mapped once (ingest/file.c); a reader keeps the mapping, the shape and
 * where the values start. Only what a format forces is copied:
 *   - float32 .npy whose data offset is 4-aligned (numpy pads the header to 64 bytes): rows
 *     are handed out straight from the mapping, no copy at all;
 *   - float64 .npy, .fvecs (a 4-byte dim before every row), .bvecs (uint8) or an unaligned
 *     float32 .npy: rows are converted chunk by chunk into the caller's buffer.
 * A caller walking the input in chunks calls vd_vectors_release() behind itself, so the
 * resident set holds about one chunk of input, never the whole file next to its own copy.
 *
 * Invariants. After open: dim is inside the parameter table's VD_PARAM_DIM range (checked
 * with vd_param_resolve, index/vd_index.h, the one owner of that limit), n >= 1, and the file
 * size is exactly what the header or the record size implies (a short file is "truncated", a
 * longer one has "trailing bytes"). Values (record dims, NaN/Inf, zero rows) are checked as
 * they are read, so one pass over all rows validates the whole file.
 *
 * Rejected: reading with read(2) into one big buffer (holds the input twice next to the
 * index); trusting the extension alone (the npy magic is checked). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "index/vd_index.h"
#include "ingest/ingest_int.h"
#include "ingest/vd_ingest.h"

struct vd_vectors_file {
    vd_ingest__mapped map;
    vd_input_format format;
    size_t n;
    uint32_t dim;
    size_t data_off;  /* npy: first value; fvecs/bvecs: 0 */
    size_t row_bytes; /* bytes per row in the file, including the dim prefix */
    int in_place;
};

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* A dim read from a header (fvecs stores a signed int32) against the parameter table; the
 * message is the table's, between `where` and `hint`. */
static vd_status check_dim(const vd_vectors_file *f, const char *where, int64_t dim,
                           const char *hint, vd_err *err)
{
    vd_err e = {0};
    if (dim >= 0 && dim <= (int64_t)UINT32_MAX) {
        if (vd_param_resolve(VD_PARAM_DIM, (uint32_t)dim, NULL, &e) == VD_OK) return VD_OK;
        return vd_err_set(err, VD_INVALID, "%s: %s%s%s", f->map.name, where, e.msg, hint);
    }
    const vd_param_info *pi = vd_param_info_of(VD_PARAM_DIM);
    return vd_err_set(err, VD_INVALID, "%s: %s%s %" PRId64 " is outside %" PRIu32 "..%" PRIu32
                      "%s", f->map.name, where, pi->name, dim, pi->min, pi->max, hint);
}

static vd_status open_npy(vd_vectors_file *f, vd_err *err)
{
    vd_ingest__npy h;
    vd_status s = vd_ingest__npy_parse(&f->map, &h, err);
    if (s != VD_OK) return s;
    const char *name = f->map.name;
    if (!strcmp(h.descr, "<f4")) f->format = VD_INPUT_NPY_F32;
    else if (!strcmp(h.descr, "<f8")) f->format = VD_INPUT_NPY_F64;
    else if (!strcmp(h.descr, ">f4") || !strcmp(h.descr, ">f8"))
        return vd_err_set(err, VD_INVALID,
                          "%s: big-endian dtype '%s' is not supported; convert with "
                          "arr.astype('<f4')", name, h.descr);
    else
        return vd_err_set(err, VD_INVALID,
                          "%s: dtype '%s' is not supported; want float32 or float64", name,
                          h.descr);
    if (h.n_shape != 2) {
        char shape[64] = "(";
        for (int i = 0; i < h.n_shape; i++) {
            size_t len = strlen(shape);
            snprintf(shape + len, sizeof shape - len, "%" PRIu64 "%s", h.shape[i],
                     h.n_shape == 1 || i + 1 < h.n_shape ? "," : "");
        }
        strcat(shape, ")");
        return vd_err_set(err, VD_INVALID, "%s: shape %s is not 2-D (want rows x dim)", name,
                          shape);
    }
    s = check_dim(f, "", h.shape[1] > INT64_MAX ? INT64_MAX : (int64_t)h.shape[1], "", err);
    if (s != VD_OK) return s;
    if (h.shape[0] == 0) return vd_err_set(err, VD_INVALID, "%s: holds no vectors", name);
    if (h.shape[0] > UINT64_MAX / h.shape[1])
        return vd_err_set(err, VD_INVALID, "%s: shape too large", name);
    size_t item = f->format == VD_INPUT_NPY_F32 ? 4 : 8;
    s = vd_ingest__npy_check_size(&f->map, &h, h.shape[0] * h.shape[1], item, err);
    if (s != VD_OK) return s;
    f->n = (size_t)h.shape[0];
    f->dim = (uint32_t)h.shape[1];
    f->data_off = h.data_off;
    f->row_bytes = f->dim * item;
    f->in_place = f->format == VD_INPUT_NPY_F32 && h.data_off % sizeof(float) == 0;
    return VD_OK;
}

/* fvecs/bvecs: int32 dim then dim values, every record. Only the first dim is read here; the
 * others are checked as rows are read. */
static vd_status open_vecs(vd_vectors_file *f, size_t value_bytes, vd_err *err)
{
    const char *name = f->map.name;
    if (f->map.n < 4)
        return vd_err_set(err, VD_INVALID, "%s: truncated: %zu bytes, shorter than one dim",
                          name, f->map.n);
    int32_t d;
    memcpy(&d, f->map.p, 4);
    vd_status s = check_dim(f, "first record: ", d,
                            value_bytes == 4 ? " (not a .fvecs file?)" : " (not a .bvecs file?)",
                            err);
    if (s != VD_OK) return s;
    f->dim = (uint32_t)d;
    f->row_bytes = 4 + (size_t)d * value_bytes;
    if (f->map.n % f->row_bytes != 0)
        return vd_err_set(err, VD_INVALID,
                          "%s: truncated: size %zu is not a multiple of the record size %zu "
                          "(dim %" PRId32 ")", name, f->map.n, f->row_bytes, d);
    f->n = f->map.n / f->row_bytes;
    f->data_off = 0;
    f->in_place = 0; /* the dim prefix breaks contiguity */
    return VD_OK;
}

/* Maps `path` into f and reads its header, in the format its name (or magic) says. */
static vd_status read_header(vd_vectors_file *f, const char *path, vd_err *err)
{
    vd_status s = vd_ingest__map(path, "input", &f->map, err);
    if (s != VD_OK) return s;
    if (ends_with(path, ".fvecs")) {
        f->format = VD_INPUT_FVECS;
        s = open_vecs(f, 4, err);
    } else if (ends_with(path, ".bvecs")) {
        f->format = VD_INPUT_BVECS;
        s = open_vecs(f, 1, err);
    } else if (ends_with(path, ".npy") || vd_ingest__is_npy(&f->map)) {
        s = open_npy(f, err);
    } else {
        s = vd_err_set(err, VD_INVALID,
                       "%s: unknown input format; name the file .npy, .fvecs or .bvecs",
                       f->map.name);
    }
    if (s == VD_OK) madvise((void *)f->map.p, f->map.n, MADV_SEQUENTIAL);
    return s;
}

vd_status vd_vectors_open(const char *path, vd_vectors_file **out, vd_err *err)
{
    vd_vectors_file *f = vd_calloc(1, sizeof *f);
    vd_status s = f ? read_header(f, path, err)
                    : vd_err_set(err, VD_NOMEM, "out of memory opening %s",
                                 vd_ingest__short_name(path));
    if (s != VD_OK) vd_vectors_close(f);
    *out = s == VD_OK ? f : NULL;
    return s;
}

void vd_vectors_close(vd_vectors_file *f)
{
    if (f) vd_ingest__release(&f->map, f, NULL, NULL);
}

size_t vd_vectors_count(const vd_vectors_file *f) { return f->n; }
uint32_t vd_vectors_dim(const vd_vectors_file *f) { return f->dim; }
vd_input_format vd_vectors_format(const vd_vectors_file *f) { return f->format; }
int vd_vectors_in_place(const vd_vectors_file *f) { return f->in_place; }

const char *vd_vectors_format_name(const vd_vectors_file *f)
{
    switch (f->format) {
    case VD_INPUT_NPY_F32: return "npy float32";
    case VD_INPUT_NPY_F64: return "npy float64";
    case VD_INPUT_FVECS: return "fvecs";
    case VD_INPUT_BVECS: return "bvecs";
    }
    return "unknown";
}

/* One row against the index's rule (vd_vector_check), named by file and row. */
static vd_status check_row(const vd_vectors_file *f, size_t row, const float *v,
                           int refuse_zero, vd_err *err)
{
    if (vd_vector_check(refuse_zero ? VD_METRIC_COSINE : VD_METRIC_L2, v, f->dim, err) != VD_OK)
        return vd_err_prefix(err, "%s: row %zu", f->map.name, row);
    return VD_OK;
}

vd_status vd_vectors_rows(vd_vectors_file *f, size_t first, size_t n, float *buf,
                          int refuse_zero, const float **rows_out, vd_err *err)
{
    if (first > f->n || n > f->n - first)
        return vd_err_set(err, VD_INVALID, "%s: rows %zu..%zu outside 0..%zu", f->map.name,
                          first, first + n, f->n);
    const uint8_t *src = f->map.p + f->data_off + first * f->row_bytes;
    const size_t dim = f->dim;
    const float *rows = buf;
    vd_status s;
    switch (f->format) {
    case VD_INPUT_NPY_F32:
        if (f->in_place) rows = (const float *)(const void *)src;
        else memcpy(buf, src, n * dim * sizeof(float));
        break;
    case VD_INPUT_NPY_F64:
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < dim; j++) {
                double v;
                memcpy(&v, src + (i * dim + j) * 8, 8);
                float x = (float)v;
                if (isfinite(v) && !isfinite(x))
                    return vd_err_set(err, VD_INVALID,
                                      "%s: row %zu component %zu is %g, outside float32 range",
                                      f->map.name, first + i, j, v);
                buf[i * dim + j] = x;
            }
        }
        break;
    case VD_INPUT_FVECS:
    case VD_INPUT_BVECS:
        for (size_t i = 0; i < n; i++) {
            const uint8_t *rec = src + i * f->row_bytes;
            int32_t d;
            memcpy(&d, rec, 4);
            if (d != (int32_t)dim)
                return vd_err_set(err, VD_INVALID,
                                  "%s: record %zu has dim %" PRId32 ", record 0 has %zu",
                                  f->map.name, first + i, d, dim);
            if (f->format == VD_INPUT_FVECS) {
                memcpy(buf + i * dim, rec + 4, dim * sizeof(float));
            } else {
                for (size_t j = 0; j < dim; j++) buf[i * dim + j] = (float)rec[4 + j];
            }
        }
        break;
    }
    if (f->format != VD_INPUT_BVECS || refuse_zero) {
        for (size_t i = 0; i < n; i++) {
            s = check_row(f, first + i, rows + i * dim, refuse_zero, err);
            if (s != VD_OK) return s;
        }
    }
    *rows_out = rows;
    return VD_OK;
}

void vd_vectors_release(vd_vectors_file *f, size_t first, size_t n)
{
    if (first >= f->n) return;
    if (n > f->n - first) n = f->n - first;
    vd_ingest__drop(&f->map, f->data_off + first * f->row_bytes, n * f->row_bytes);
}
