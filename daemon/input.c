/* daemon/input.c: the bulk build's input readers (.npy, .fvecs, .bvecs, ids .npy, JSONL).
 *
 * Layout. Every input file is mapped read-only (MAP_PRIVATE) once, at open. A reader keeps the
 * mapping, the file's shape and where its values start; nothing is read into the heap except
 * what a format forces:
 *   - float32 .npy whose data offset is 4-aligned (numpy pads the header to 64 bytes): rows
 *     are handed out straight from the mapping, no copy at all;
 *   - float64 .npy, .fvecs (a 4-byte dim before every row), .bvecs (uint8) or an unaligned
 *     float32 .npy: rows are converted chunk by chunk into a caller's buffer.
 * The build walks the input in chunks and calls vd_vectors_release() behind itself, so the
 * resident set holds about one chunk of input next to the index's own copy of the vectors,
 * never the whole input twice. Ids need 8 bytes a row (mapped in place when aligned);
 * payloads 12 bytes a row of pointers and lengths into their mapping.
 *
 * Invariants. After open: 1 <= dim <= VD_DIM_MAX, n >= 1, and the file size equals exactly
 * what the header or the record size implies (a short file is "truncated", a longer one has
 * "trailing bytes"). Values (record dims, NaN/Inf, zero rows) are checked as they are read,
 * so a pass over all rows validates the whole file before anything is built.
 *
 * The .npy header is a Python dict literal. It is parsed by a small tokenizer that accepts
 * what numpy writes (quoted keys, 'descr' string, True/False, an int tuple) and refuses
 * everything else (structured dtypes, object arrays) with a message naming the field.
 *
 * Rejected: reading with read(2) into one big buffer (holds the input twice next to the
 * index); trusting the extension alone (the npy magic is checked); accepting big-endian data
 * with a silent swap (rare, and a silent swap hides a wrong dtype: the message says how to
 * convert instead). */
#include "daemon/input.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/vd_index.h"

/* ---- Mapped files ------------------------------------------------------------------------ */
typedef struct mapped {
    const uint8_t *p; /* NULL when the file is empty */
    size_t n;
    const char *name; /* for messages: the path's last 60 characters, borrowed from the caller */
} mapped;

static const char *short_name(const char *path)
{
    size_t len = strlen(path);
    return len > 60 ? path + len - 60 : path;
}

static vd_status map_file(const char *path, const char *what, mapped *m, vd_err *err)
{
    memset(m, 0, sizeof *m);
    m->name = short_name(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vd_err_set(err, VD_IO, "cannot open %s %s: %s", what, m->name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return vd_err_set(err, VD_IO, "cannot stat %s %s: %s", what, m->name, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vd_err_set(err, VD_INVALID, "%s %s is not a regular file", what, m->name);
    }
    if (st.st_size == 0) {
        close(fd);
        return vd_err_set(err, VD_INVALID, "%s %s is empty", what, m->name);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file open */
    if (p == MAP_FAILED)
        return vd_err_set(err, VD_IO, "cannot map %s %s: %s", what, m->name, strerror(e));
    m->p = p;
    m->n = (size_t)st.st_size;
    return VD_OK;
}

static void unmap_file(mapped *m)
{
    if (m->p) munmap((void *)m->p, m->n);
    m->p = NULL;
}

/* madvise needs page-aligned starts; pages shared with neighbours are dropped too, which is
 * harmless: a private read-only mapping just reads them again from the page cache. */
static void drop_range(const mapped *m, size_t off, size_t len)
{
    if (!m->p || len == 0) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t start = off / page * page;
    size_t end = off + len > m->n ? m->n : off + len;
    if (end <= start) return;
    madvise((void *)(m->p + start), end - start, MADV_DONTNEED);
}

/* ---- .npy header ------------------------------------------------------------------------- */
typedef struct npy_header {
    char descr[16];
    int fortran_order;
    int n_shape;
    uint64_t shape[4];
    size_t data_off;
    int have_descr, have_order, have_shape;
} npy_header;

static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static int is_npy(const mapped *m)
{
    return m->n >= 6 && memcmp(m->p, npy_magic, 6) == 0;
}

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* A quoted Python string without escapes (numpy never writes any in these fields). */
static int parse_str(cursor *c, char *out, size_t cap)
{
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char q = *c->p++;
    size_t len = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || len + 1 >= cap) return -1;
        out[len++] = *c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    out[len] = 0;
    return 0;
}

static int parse_word(cursor *c, const char *w)
{
    size_t len = strlen(w);
    if ((size_t)(c->end - c->p) < len || memcmp(c->p, w, len) != 0) return -1;
    c->p += len;
    return 0;
}

static int parse_shape(cursor *c, npy_header *h)
{
    if (c->p >= c->end || *c->p != '(') return -1;
    c->p++;
    h->n_shape = 0;
    for (;;) {
        skip_ws(c);
        if (c->p < c->end && *c->p == ')') break;
        if (h->n_shape == (int)VD_ARRAY_LEN(h->shape)) return -1;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return -1;
        uint64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            uint64_t d = (uint64_t)(*c->p - '0');
            if (v > (UINT64_MAX - d) / 10) return -1;
            v = v * 10 + d;
            c->p++;
        }
        h->shape[h->n_shape++] = v;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') c->p++;
        else if (c->p < c->end && *c->p == ')') break;
        else return -1;
    }
    c->p++;
    return 0;
}

/* Parses magic, version and the header dict; on VD_OK h->data_off is where the data starts. */
static vd_status npy_parse(const mapped *m, npy_header *h, vd_err *err)
{
    memset(h, 0, sizeof *h);
    if (!is_npy(m))
        return vd_err_set(err, VD_INVALID, "%s: not a .npy file (bad magic)", m->name);
    if (m->n < 10) return vd_err_set(err, VD_INVALID, "%s: truncated .npy header", m->name);
    unsigned major = m->p[6], minor = m->p[7];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)m->p[8] | (size_t)m->p[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (m->n < 12) return vd_err_set(err, VD_INVALID, "%s: truncated .npy header", m->name);
        hlen = vd_get_u32le(m->p + 8);
        hstart = 12;
    } else {
        return vd_err_set(err, VD_INVALID, "%s: unsupported .npy format version %u.%u", m->name,
                          major, minor);
    }
    if (hlen > m->n - hstart)
        return vd_err_set(err, VD_INVALID, "%s: truncated .npy header (%zu bytes announced)",
                          m->name, hlen);
    h->data_off = hstart + hlen;
    cursor c = {(const char *)m->p + hstart, (const char *)m->p + hstart + hlen};
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') goto bad;
    c.p++;
    for (;;) {
        char key[32];
        skip_ws(&c);
        if (c.p < c.end && *c.p == '}') break;
        if (parse_str(&c, key, sizeof key) != 0) goto bad;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') goto bad;
        c.p++;
        skip_ws(&c);
        if (!strcmp(key, "descr")) {
            if (c.p < c.end && *c.p == '[')
                return vd_err_set(err, VD_INVALID,
                                  "%s: structured dtype is not supported (want float32 or "
                                  "float64)", m->name);
            if (parse_str(&c, h->descr, sizeof h->descr) != 0) goto bad;
            h->have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (parse_word(&c, "True") == 0) h->fortran_order = 1;
            else if (parse_word(&c, "False") == 0) h->fortran_order = 0;
            else goto bad;
            h->have_order = 1;
        } else if (!strcmp(key, "shape")) {
            if (parse_shape(&c, h) != 0) goto bad;
            h->have_shape = 1;
        } else {
            goto bad; /* numpy writes exactly these three keys */
        }
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') c.p++;
        else if (c.p < c.end && *c.p == '}') break;
        else goto bad;
    }
    if (!h->have_descr || !h->have_order || !h->have_shape)
        return vd_err_set(err, VD_INVALID, "%s: .npy header lacks '%s'", m->name,
                          !h->have_descr ? "descr" : !h->have_order ? "fortran_order" : "shape");
    if (h->fortran_order)
        return vd_err_set(err, VD_INVALID,
                          "%s: array is in Fortran order; save it in C order "
                          "(np.ascontiguousarray)", m->name);
    return VD_OK;
bad:
    return vd_err_set(err, VD_INVALID, "%s: malformed .npy header near byte %zu", m->name,
                      (size_t)(c.p - (const char *)m->p));
}

/* Compares the data size with what the header announces. */
static vd_status npy_check_size(const mapped *m, const npy_header *h, uint64_t n_items,
                                size_t item, vd_err *err)
{
    uint64_t have = m->n - h->data_off;
    if (n_items > UINT64_MAX / item)
        return vd_err_set(err, VD_INVALID, "%s: shape too large", m->name);
    uint64_t want = n_items * item;
    if (have < want)
        return vd_err_set(err, VD_INVALID,
                          "%s: truncated: %" PRIu64 " data bytes, header announces %" PRIu64,
                          m->name, have, want);
    if (have > want)
        return vd_err_set(err, VD_INVALID,
                          "%s: %" PRIu64 " trailing bytes after the %" PRIu64
                          " bytes the header announces", m->name, have - want, want);
    return VD_OK;
}

/* ---- Vectors ----------------------------------------------------------------------------- */
struct vd_vectors_file {
    mapped map;
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

static vd_status open_npy(vd_vectors_file *f, vd_err *err)
{
    npy_header h;
    vd_status s = npy_parse(&f->map, &h, err);
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
    if (h.shape[1] < 1 || h.shape[1] > VD_DIM_MAX)
        return vd_err_set(err, VD_INVALID, "%s: dim %" PRIu64 " is outside 1..%u", name,
                          h.shape[1], VD_DIM_MAX);
    if (h.shape[0] == 0) return vd_err_set(err, VD_INVALID, "%s: holds no vectors", name);
    if (h.shape[0] > UINT64_MAX / h.shape[1])
        return vd_err_set(err, VD_INVALID, "%s: shape too large", name);
    size_t item = f->format == VD_INPUT_NPY_F32 ? 4 : 8;
    s = npy_check_size(&f->map, &h, h.shape[0] * h.shape[1], item, err);
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
    if (d < 1 || d > (int32_t)VD_DIM_MAX)
        return vd_err_set(err, VD_INVALID,
                          "%s: first record has dim %" PRId32 ", outside 1..%u (not a %s file?)",
                          name, d, VD_DIM_MAX, value_bytes == 4 ? ".fvecs" : ".bvecs");
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

vd_status vd_vectors_open(const char *path, vd_vectors_file **out, vd_err *err)
{
    vd_vectors_file *f = NULL;
    vd_status s;
    *out = NULL;
    f = vd_calloc(1, sizeof *f);
    if (!f) return vd_err_set(err, VD_NOMEM, "out of memory opening %s", short_name(path));
    s = map_file(path, "input", &f->map, err);
    if (s != VD_OK) goto fail;
    if (ends_with(path, ".fvecs")) {
        f->format = VD_INPUT_FVECS;
        s = open_vecs(f, 4, err);
    } else if (ends_with(path, ".bvecs")) {
        f->format = VD_INPUT_BVECS;
        s = open_vecs(f, 1, err);
    } else if (ends_with(path, ".npy") || is_npy(&f->map)) {
        s = open_npy(f, err);
    } else {
        s = vd_err_set(err, VD_INVALID,
                       "%s: unknown input format; name the file .npy, .fvecs or .bvecs",
                       f->map.name);
    }
    if (s != VD_OK) goto fail;
    madvise((void *)f->map.p, f->map.n, MADV_SEQUENTIAL);
    *out = f;
    return VD_OK;
fail:
    vd_vectors_close(f);
    return s;
}

void vd_vectors_close(vd_vectors_file *f)
{
    if (!f) return;
    unmap_file(&f->map);
    vd_free(f);
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

/* Finds the first non-finite component of a row known to hold one and names it. */
static vd_status bad_value(const vd_vectors_file *f, size_t row, const float *v, vd_err *err)
{
    for (uint32_t j = 0; j < f->dim; j++)
        if (!isfinite(v[j]))
            return vd_err_set(err, VD_INVALID, "%s: row %zu component %u is %s", f->map.name,
                              row, j, isnan(v[j]) ? "NaN" : "Inf");
    return vd_err_set(err, VD_INTERNAL, "%s: row %zu: non-finite value vanished", f->map.name,
                      row);
}

/* Checks one float32 row: all finite (bit test, so the loop vectorizes), and non-zero when
 * asked. */
static vd_status check_row(const vd_vectors_file *f, size_t row, const float *v,
                           int refuse_zero, vd_err *err)
{
    uint32_t inf_or_nan = 0, any = 0;
    for (uint32_t j = 0; j < f->dim; j++) {
        uint32_t b;
        memcpy(&b, &v[j], 4);
        inf_or_nan |= (b & 0x7f800000u) == 0x7f800000u;
        any |= b & 0x7fffffffu; /* -0.0 counts as zero */
    }
    if (inf_or_nan) return bad_value(f, row, v, err);
    if (refuse_zero && !any)
        return vd_err_set(err, VD_INVALID,
                          "%s: row %zu is a zero vector (cosine needs a non-zero vector)",
                          f->map.name, row);
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
    drop_range(&f->map, f->data_off + first * f->row_bytes, n * f->row_bytes);
}

/* ---- Ids --------------------------------------------------------------------------------- */
struct vd_ids_file {
    mapped map;
    const uint64_t *ids; /* into map, or == owned */
    uint64_t *owned;
};

typedef struct id_row {
    uint64_t id;
    uint64_t row;
} id_row;

static int cmp_id_row(const void *a, const void *b)
{
    const id_row *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

vd_status vd_ids_check_distinct(const uint64_t *ids, size_t n, vd_err *err)
{
    /* Sorted order is cheap for the common case (ids already ascending): one scan, no copy. */
    size_t i = 1;
    while (i < n && ids[i - 1] < ids[i]) i++;
    if (i >= n) return VD_OK;
    id_row *t = vd_malloc(n * sizeof *t);
    if (!t) return vd_err_set(err, VD_NOMEM, "out of memory checking %zu ids", n);
    for (size_t k = 0; k < n; k++) t[k] = (id_row){ids[k], k};
    qsort(t, n, sizeof *t, cmp_id_row);
    vd_status s = VD_OK;
    for (size_t k = 1; k < n; k++) {
        if (t[k].id == t[k - 1].id) {
            s = vd_err_set(err, VD_INVALID, "duplicate id %" PRIu64 " at rows %" PRIu64
                           " and %" PRIu64, t[k].id, t[k - 1].row, t[k].row);
            break;
        }
    }
    vd_free(t);
    return s;
}

vd_status vd_ids_open(const char *path, size_t expected_n, vd_ids_file **out, vd_err *err)
{
    vd_ids_file *f = NULL;
    vd_status s;
    *out = NULL;
    f = vd_calloc(1, sizeof *f);
    if (!f) return vd_err_set(err, VD_NOMEM, "out of memory opening ids");
    if (!path) {
        f->owned = vd_malloc(expected_n * sizeof *f->owned);
        if (!f->owned) {
            s = vd_err_set(err, VD_NOMEM, "out of memory for %zu ids", expected_n);
            goto fail;
        }
        for (size_t i = 0; i < expected_n; i++) f->owned[i] = i;
        f->ids = f->owned;
        *out = f;
        return VD_OK;
    }
    s = map_file(path, "ids", &f->map, err);
    if (s != VD_OK) goto fail;
    const char *name = f->map.name;
    npy_header h;
    s = npy_parse(&f->map, &h, err);
    if (s != VD_OK) goto fail;
    int is_signed;
    if (!strcmp(h.descr, "<i8")) is_signed = 1;
    else if (!strcmp(h.descr, "<u8")) is_signed = 0;
    else {
        s = vd_err_set(err, VD_INVALID, "%s: ids dtype '%s' is not supported; want int64 or "
                       "uint64 (little-endian)", name, h.descr);
        goto fail;
    }
    if (!(h.n_shape == 1 || (h.n_shape == 2 && h.shape[1] == 1))) {
        s = vd_err_set(err, VD_INVALID, "%s: ids must have shape (n,) or (n, 1), not %d-D",
                       name, h.n_shape);
        goto fail;
    }
    s = npy_check_size(&f->map, &h, h.shape[0], 8, err);
    if (s != VD_OK) goto fail;
    if (h.shape[0] != expected_n) {
        s = vd_err_set(err, VD_INVALID, "%s: %" PRIu64 " ids for %zu vectors", name,
                       h.shape[0], expected_n);
        goto fail;
    }
    const uint8_t *data = f->map.p + h.data_off;
    if (h.data_off % 8 == 0) {
        f->ids = (const uint64_t *)(const void *)data;
    } else {
        f->owned = vd_malloc(expected_n * sizeof *f->owned);
        if (!f->owned) {
            s = vd_err_set(err, VD_NOMEM, "out of memory for %zu ids", expected_n);
            goto fail;
        }
        memcpy(f->owned, data, expected_n * 8);
        f->ids = f->owned;
    }
    for (size_t i = 0; i < expected_n; i++) {
        if (is_signed && (int64_t)f->ids[i] < 0) {
            s = vd_err_set(err, VD_INVALID, "%s: id at row %zu is negative (%" PRId64 ")",
                           name, i, (int64_t)f->ids[i]);
            goto fail;
        }
        if (f->ids[i] == VD_ID_NONE) {
            s = vd_err_set(err, VD_INVALID,
                           "%s: id at row %zu is %" PRIu64 ", reserved for \"no hit\"", name,
                           i, f->ids[i]);
            goto fail;
        }
    }
    s = vd_ids_check_distinct(f->ids, expected_n, err);
    if (s != VD_OK) {
        vd_err_prefix(err, "%s", name);
        goto fail;
    }
    *out = f;
    return VD_OK;
fail:
    vd_ids_close(f);
    return s;
}

void vd_ids_close(vd_ids_file *f)
{
    if (!f) return;
    unmap_file(&f->map);
    vd_free(f->owned);
    vd_free(f);
}

const uint64_t *vd_ids_get(const vd_ids_file *f) { return f->ids; }

/* ---- Payloads ---------------------------------------------------------------------------- */
struct vd_payloads_file {
    mapped map;
    size_t n;
    const uint8_t **ptrs;
    uint32_t *lens;
};

vd_status vd_payloads_open(const char *path, size_t expected_n, vd_json_check_fn check,
                           vd_payloads_file **out, vd_err *err)
{
    vd_payloads_file *f = NULL;
    vd_status s;
    *out = NULL;
    f = vd_calloc(1, sizeof *f);
    if (!f) return vd_err_set(err, VD_NOMEM, "out of memory opening payloads");
    s = map_file(path, "payloads", &f->map, err);
    if (s != VD_OK) goto fail;
    const char *name = f->map.name;
    const uint8_t *p = f->map.p, *end = p + f->map.n;

    /* Count first, so a count mismatch is reported as such, not as a bad line. */
    size_t n_lines = 0;
    for (const uint8_t *q = p; q < end;) {
        const uint8_t *nl = memchr(q, '\n', (size_t)(end - q));
        n_lines++;
        q = nl ? nl + 1 : end;
    }
    if (n_lines != expected_n) {
        s = vd_err_set(err, VD_INVALID, "%s: %zu payload lines for %zu vectors", name, n_lines,
                       expected_n);
        goto fail;
    }
    f->ptrs = vd_malloc(expected_n * sizeof *f->ptrs);
    f->lens = vd_malloc(expected_n * sizeof *f->lens);
    if (!f->ptrs || !f->lens) {
        s = vd_err_set(err, VD_NOMEM, "out of memory for %zu payloads", expected_n);
        goto fail;
    }
    size_t i = 0;
    for (const uint8_t *q = p; q < end; i++) {
        const uint8_t *nl = memchr(q, '\n', (size_t)(end - q));
        const uint8_t *stop = nl ? nl : end;
        size_t len = (size_t)(stop - q);
        if (len && q[len - 1] == '\r') len--;
        if (len > UINT32_MAX) {
            s = vd_err_set(err, VD_INVALID, "%s: line %zu is longer than 4 GiB", name, i + 1);
            goto fail;
        }
        s = check(q, len, err);
        if (s != VD_OK) {
            vd_err_prefix(err, "%s: line %zu is not a JSON object", name, i + 1);
            goto fail;
        }
        f->ptrs[i] = q;
        f->lens[i] = (uint32_t)len;
        q = nl ? nl + 1 : end;
    }
    f->n = expected_n;
    *out = f;
    return VD_OK;
fail:
    vd_payloads_close(f);
    return s;
}

void vd_payloads_close(vd_payloads_file *f)
{
    if (!f) return;
    unmap_file(&f->map);
    vd_free(f->ptrs);
    vd_free(f->lens);
    vd_free(f);
}

const uint8_t *const *vd_payloads_ptrs(const vd_payloads_file *f)
{
    return (const uint8_t *const *)f->ptrs;
}
const uint32_t *vd_payloads_lens(const vd_payloads_file *f) { return f->lens; }
