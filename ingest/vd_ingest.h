/* ingest/vd_ingest.h: readers of the files vectors arrive in for offline ingest (the bulk
 * build, `vectord build`, and anything else that reads them): vectors from .npy
 * (float32/float64), .fvecs and .bvecs, ids from an .npy of int64/uint64, payloads from JSON
 * Lines.
 *
 * Every file is memory-mapped read-only once, at open, and every byte of it is treated as
 * hostile input: structure at open, values as they are read. The readers know the parameter
 * table (index/vd_index.h: an input's dim is checked with vd_param_resolve when its header is
 * read) and nothing else of the index, nor the storage (the payload JSON rule is passed in),
 * so they are testable on their own (tests/unit/test_build_input.c). Inside: file.c (mapping,
 * .npy header), vectors.c, ids.c, payloads.c.
 *
 * Threads: a reader object is used by one thread at a time; different readers are
 * independent. Errors name the file (its last 60 characters) and, for a bad value, the row
 * (0-based, as numpy counts) or line (1-based, as editors count). */
#ifndef VD_INGEST_H
#define VD_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/vd_common.h"

/* ---- Vectors ---------------------------------------------------------------------------- */
typedef enum vd_input_format {
    VD_INPUT_NPY_F32 = 1,
    VD_INPUT_NPY_F64 = 2,
    VD_INPUT_FVECS = 3,
    VD_INPUT_BVECS = 4,
} vd_input_format;

typedef struct vd_vectors_file vd_vectors_file; /* opaque */

/* Maps `path` and checks its structure: magic, header, dtype, shape (2-D, C order), dim inside
 * the table's VD_PARAM_DIM range ("x.npy: dim 5000 is outside 1..4096"), at least one row,
 * and a size that matches the header or record size. The format comes from the extension
 * (.npy/.fvecs/.bvecs), or from the npy magic otherwise.
 * Values are not read here (see vd_vectors_rows). On VD_OK *out owns the reader; release it
 * with vd_vectors_close(). Errors: VD_IO (cannot open/map), VD_INVALID (bad content). */
vd_status vd_vectors_open(const char *path, vd_vectors_file **out, vd_err *err);
void vd_vectors_close(vd_vectors_file *f); /* NULL is a no-op; invalidates borrowed rows */

size_t vd_vectors_count(const vd_vectors_file *f);
uint32_t vd_vectors_dim(const vd_vectors_file *f);
vd_input_format vd_vectors_format(const vd_vectors_file *f);
const char *vd_vectors_format_name(const vd_vectors_file *f); /* "npy float32", "fvecs"... */
/* 1 when rows are used straight from the mapping (aligned float32 .npy): no copy at all. */
int vd_vectors_in_place(const vd_vectors_file *f);

/* Rows [first, first + n) as row-major float32. In place (see above) *rows_out points into
 * the mapping, valid until vd_vectors_close(), and `buf` is not touched; otherwise the rows
 * are converted into caller-owned `buf` (room for n * dim floats) and *rows_out = buf.
 * Checks every value read: each record's dim (fvecs/bvecs) equals the first record's, every
 * component is finite (float64 values must also fit float32), and with refuse_zero no row is
 * all zeros (cosine). The first violation is VD_INVALID naming its row and component. */
vd_status vd_vectors_rows(vd_vectors_file *f, size_t first, size_t n, float *buf,
                          int refuse_zero, const float **rows_out, vd_err *err);

/* Drops the mapped pages of rows [first, first + n) from this process's resident memory
 * (they stay in the page cache and are read again if touched): a pass over the input then
 * keeps about one chunk resident, never the whole file next to the index's own copy. */
void vd_vectors_release(vd_vectors_file *f, size_t first, size_t n);

/* ---- Ids ---------------------------------------------------------------------------------
 * The ids of rows 0..n-1: from an .npy of little-endian int64 or uint64 with shape (n,) or
 * (n, 1), or 0..n-1 when no file is given. */
typedef struct vd_ids_file vd_ids_file; /* opaque */

/* Maps and checks an ids file: dtype, shape, count == expected_n, no negative int64, and
 * the index's id rule over the whole file (vd_ids_check_distinct: no UINT64_MAX, no id
 * repeated). path == NULL gives the ids 0..expected_n-1. On VD_OK *out owns the reader. */
vd_status vd_ids_open(const char *path, size_t expected_n, vd_ids_file **out, vd_err *err);
void vd_ids_close(vd_ids_file *f); /* NULL is a no-op */
/* expected_n ids, borrowed until vd_ids_close(). */
const uint64_t *vd_ids_get(const vd_ids_file *f);

/* ---- String ids --------------------------------------------------------------------------
 * A text file (.txt) of UTF-8 ids, line i (1-based) the id of row i-1: its bytes exactly (a
 * final newline is optional and a trailing '\r' dropped; nothing else is trimmed). Packed as
 * storage takes string ids: the ids' bytes back to back and one uint32 end offset per row. */
typedef struct vd_text_ids_file vd_text_ids_file; /* opaque */

/* The id rules, passed in (ingest/ knows no storage): `one` checks a single id (storage's
 * vd_str_id_check; refusals name the line), `all` the packed set (distinct ids; refusals
 * name rows, 0-based like the vectors'). */
typedef vd_status (*vd_text_id_check_fn)(const uint8_t *p, size_t n, vd_err *err);
typedef vd_status (*vd_text_ids_check_fn)(const uint8_t *bytes, size_t n_bytes,
                                          const uint32_t *ends, size_t n, vd_err *err);

/* Maps and reads a string ids file: exactly expected_n lines, each accepted by `one`, the
 * whole accepted by `all` (VD_INVALID naming the file otherwise). On VD_OK *out owns the
 * reader, the mapping closed already (the ids are copied once, packed). */
vd_status vd_text_ids_open(const char *path, size_t expected_n, vd_text_id_check_fn one,
                           vd_text_ids_check_fn all, vd_text_ids_file **out, vd_err *err);
void vd_text_ids_close(vd_text_ids_file *f); /* NULL is a no-op */
/* The packed ids, borrowed until vd_text_ids_close: n_bytes bytes and expected_n ends. */
const uint8_t *vd_text_ids_bytes(const vd_text_ids_file *f);
const uint32_t *vd_text_ids_ends(const vd_text_ids_file *f);
size_t vd_text_ids_n_bytes(const vd_text_ids_file *f);

/* ---- Payloads ----------------------------------------------------------------------------
 * JSON Lines: line i (1-based) is the payload of row i-1, one JSON object per line; a final
 * newline is optional and a trailing '\r' is dropped. */
typedef struct vd_payloads_file vd_payloads_file; /* opaque */

/* The JSON check applied to each line (storage's vd_json_check_object in the build). */
typedef vd_status (*vd_json_check_fn)(const uint8_t *p, size_t n, vd_err *err);

/* Maps and checks a payloads file: exactly expected_n lines, each accepted by `check`
 * (VD_INVALID naming the line otherwise). On VD_OK *out owns the reader. */
vd_status vd_payloads_open(const char *path, size_t expected_n, vd_json_check_fn check,
                           vd_payloads_file **out, vd_err *err);
void vd_payloads_close(vd_payloads_file *f); /* NULL is a no-op */
/* expected_n pointers into the mapping and their lengths, borrowed until vd_payloads_close. */
const uint8_t *const *vd_payloads_ptrs(const vd_payloads_file *f);
const uint32_t *vd_payloads_lens(const vd_payloads_file *f);

#endif
