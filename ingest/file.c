/* ingest/file.c: the byte level of ingest/: read-only file mappings and the .npy header.
 *
 * Every input file is mapped once, read-only and MAP_PRIVATE, at open; the readers keep the
 * mapping and hand out pointers into it, so nothing is copied into the heap that a format
 * does not force. Dropping pages behind a pass (vd_ingest__drop) keeps the resident set at
 * about one chunk of input.
 *
 * The .npy header is a Python dict literal. A small tokenizer accepts what numpy writes
 * (quoted keys, a 'descr' string, True/False, an int tuple; exactly the three keys) and
 * refuses everything else (structured dtypes, object arrays, Fortran order) with a message
 * naming the field. Rejected: accepting big-endian or structured data with a silent
 * conversion (rare, and a silent swap hides a wrong dtype; the readers' messages say how to
 * convert instead). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/ingest_int.h"

/* ---- mapped files ------------------------------------------------------------------------ */
size_t vd_ingest__count_lines(const uint8_t *p, const uint8_t *end)
{
    size_t n = 0;
    for (const uint8_t *q = p; q < end; n++) {
        const uint8_t *nl = memchr(q, '\n', (size_t)(end - q));
        q = nl ? nl + 1 : end;
    }
    return n;
}

const char *vd_ingest__short_name(const char *path)
{
    size_t len = strlen(path);
    return len > 60 ? path + len - 60 : path;
}

vd_status vd_ingest__map(const char *path, const char *what, vd_ingest__mapped *m, vd_err *err)
{
    memset(m, 0, sizeof *m);
    m->name = vd_ingest__short_name(path);
    vd_status s = VD_OK;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vd_err_set(err, VD_IO, "cannot open %s %s: %s", what, m->name,
                                  strerror(errno));
    if (fstat(fd, &st) != 0)
        s = vd_err_set(err, VD_IO, "cannot stat %s %s: %s", what, m->name, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = vd_err_set(err, VD_INVALID, "%s %s is not a regular file", what, m->name);
    else if (st.st_size == 0)
        s = vd_err_set(err, VD_INVALID, "%s %s is empty", what, m->name);
    if (s != VD_OK) goto fail;
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        s = vd_err_set(err, VD_IO, "cannot map %s %s: %s", what, m->name, strerror(errno));
        goto fail;
    }
    m->p = p;
    m->n = (size_t)st.st_size;
fail:
    close(fd); /* a mapping keeps the file open */
    return s;
}

void vd_ingest__release(vd_ingest__mapped *m, void *reader, void *a, void *b)
{
    if (m->p) munmap((void *)m->p, m->n);
    m->p = NULL;
    vd_free(a);
    vd_free(b);
    vd_free(reader);
}

/* madvise needs page-aligned starts; pages shared with neighbours are dropped too, which is
 * harmless: a private read-only mapping just reads them again from the page cache. */
void vd_ingest__drop(const vd_ingest__mapped *m, size_t off, size_t len)
{
    if (!m->p || len == 0) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t start = off / page * page;
    size_t end = off + len > m->n ? m->n : off + len;
    if (end <= start) return;
    madvise((void *)(m->p + start), end - start, MADV_DONTNEED);
}

/* ---- .npy header ------------------------------------------------------------------------- */
static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

int vd_ingest__is_npy(const vd_ingest__mapped *m)
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

/* Skips blanks, then consumes `ch` if it comes next. */
static int take(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch) return 0;
    c->p++;
    return 1;
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

static int parse_shape(cursor *c, vd_ingest__npy *h)
{
    if (!take(c, '(')) return -1;
    h->n_shape = 0;
    while (!take(c, ')')) {
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
        if (take(c, ',')) continue;
        if (!take(c, ')')) return -1;
        break;
    }
    return 0;
}

/* The dict's entries; returns -1 at the first byte it cannot read (c->p points there), or
 * the mask of keys seen (1 descr, 2 fortran_order, 4 shape) with *fortran set. A structured
 * dtype returns -2. */
static int parse_dict(cursor *c, vd_ingest__npy *h, int *fortran)
{
    int seen = 0;
    if (!take(c, '{')) return -1;
    while (!take(c, '}')) {
        char key[32];
        if (parse_str(c, key, sizeof key) != 0 || !take(c, ':')) return -1;
        skip_ws(c);
        if (!strcmp(key, "descr")) {
            if (c->p < c->end && *c->p == '[') return -2;
            if (parse_str(c, h->descr, sizeof h->descr) != 0) return -1;
            seen |= 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (parse_word(c, "True") == 0) *fortran = 1;
            else if (parse_word(c, "False") == 0) *fortran = 0;
            else return -1;
            seen |= 2;
        } else if (!strcmp(key, "shape")) {
            if (parse_shape(c, h) != 0) return -1;
            seen |= 4;
        } else {
            return -1; /* numpy writes exactly these three keys */
        }
        if (take(c, ',')) continue;
        if (!take(c, '}')) return -1;
        break;
    }
    return seen;
}

vd_status vd_ingest__npy_parse(const vd_ingest__mapped *m, vd_ingest__npy *h, vd_err *err)
{
    memset(h, 0, sizeof *h);
    if (!vd_ingest__is_npy(m))
        return vd_err_set(err, VD_INVALID, "%s: not a .npy file (bad magic)", m->name);
    if (m->n < 10) return vd_err_set(err, VD_INVALID, "%s: truncated .npy header", m->name);
    unsigned major = m->p[6], minor = m->p[7];
    size_t hstart = major == 1 ? 10 : 12;
    if (major < 1 || major > 3)
        return vd_err_set(err, VD_INVALID, "%s: unsupported .npy format version %u.%u", m->name,
                          major, minor);
    if (m->n < hstart) return vd_err_set(err, VD_INVALID, "%s: truncated .npy header", m->name);
    size_t hlen = major == 1 ? ((size_t)m->p[8] | (size_t)m->p[9] << 8) : vd_get_u32le(m->p + 8);
    if (hlen > m->n - hstart)
        return vd_err_set(err, VD_INVALID, "%s: truncated .npy header (%zu bytes announced)",
                          m->name, hlen);
    h->data_off = hstart + hlen;
    cursor c = {(const char *)m->p + hstart, (const char *)m->p + hstart + hlen};
    int fortran = 0, seen = parse_dict(&c, h, &fortran);
    if (seen == -2)
        return vd_err_set(err, VD_INVALID,
                          "%s: structured dtype is not supported (want float32 or float64)",
                          m->name);
    if (seen < 0)
        return vd_err_set(err, VD_INVALID, "%s: malformed .npy header near byte %zu", m->name,
                          (size_t)(c.p - (const char *)m->p));
    if (seen != 7)
        return vd_err_set(err, VD_INVALID, "%s: .npy header lacks '%s'", m->name,
                          !(seen & 1) ? "descr" : !(seen & 2) ? "fortran_order" : "shape");
    if (fortran)
        return vd_err_set(err, VD_INVALID,
                          "%s: array is in Fortran order; save it in C order "
                          "(np.ascontiguousarray)", m->name);
    return VD_OK;
}

vd_status vd_ingest__npy_check_size(const vd_ingest__mapped *m, const vd_ingest__npy *h,
                                    uint64_t n_items, size_t item, vd_err *err)
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
