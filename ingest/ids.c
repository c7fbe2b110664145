/* ingest/ids.c: the ids of the rows, from an .npy of little-endian int64 or uint64, shape (n,)
 * or (n, 1), or 0..n-1 when no file is given; or string ids from a text file, one per line.
 *
 * The ids are used straight from the mapping when the data offset is 8-aligned (numpy pads
 * the header to 64 bytes), otherwise copied once: 8 bytes a row either way. Every id is
 * checked at open - no negative int64, not the reserved "no hit" id, no id twice - so a bad
 * file is refused before anything is built. The duplicate check must see the whole file: a
 * build adds its rows in chunks, and an id repeated across two chunks would otherwise be an
 * upsert that silently replaces the first row.
 *
 * String ids: a text file is what every tool writes (`cut`, `jq -r`, pandas' to_csv), and
 * ids need no quoting in it - an id cannot hold a newline in this format, which is the one
 * restriction over the wire's ids. Lines are packed into one buffer (ids back to back, no
 * line ends) plus 4 bytes of offset a row, the layout storage takes; the mapping is closed
 * right after. Rejected: JSON Lines of strings (escaping for nothing); an .npy of fixed-width
 * unicode (UTF-32, padded to the longest id: 2 KB a row for 512-byte ids). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "index/vd_index.h"
#include "ingest/ingest_int.h"
#include "ingest/vd_ingest.h"

struct vd_ids_file {
    vd_ingest__mapped map;
    const uint64_t *ids; /* into map, or == owned */
    uint64_t *owned;
};

/* f->owned = n ids, copied from `src` or 0..n-1 when src is NULL. */
static vd_status own_ids(vd_ids_file *f, const uint8_t *src, size_t n, vd_err *err)
{
    f->owned = vd_malloc((n ? n : 1) * sizeof *f->owned);
    if (!f->owned) return vd_err_set(err, VD_NOMEM, "out of memory for %zu ids", n);
    if (src) memcpy(f->owned, src, n * sizeof *f->owned);
    else for (size_t i = 0; i < n; i++) f->owned[i] = i;
    f->ids = f->owned;
    return VD_OK;
}

/* Every id: not negative when the dtype is signed, not VD_ID_NONE, none twice. */
static vd_status check_values(const vd_ids_file *f, size_t n, int is_signed, vd_err *err)
{
    const char *name = f->map.name;
    for (size_t i = 0; i < n; i++) {
        if (is_signed && (int64_t)f->ids[i] < 0)
            return vd_err_set(err, VD_INVALID, "%s: id at row %zu is negative (%" PRId64 ")",
                              name, i, (int64_t)f->ids[i]);
    }
    /* The index's rule (also reserved ids), over the whole file: the build adds in chunks,
     * and an id repeated across two chunks would be an upsert. */
    if (vd_ids_check_distinct(f->ids, n, err) != VD_OK) return vd_err_prefix(err, "%s", name);
    return VD_OK;
}

/* Maps `path` into f and checks dtype, shape, size, count and every value. */
static vd_status read_file(vd_ids_file *f, const char *path, size_t expected_n, vd_err *err)
{
    vd_status s = vd_ingest__map(path, "ids", &f->map, err);
    if (s != VD_OK) return s;
    const char *name = f->map.name;
    vd_ingest__npy h;
    if ((s = vd_ingest__npy_parse(&f->map, &h, err)) != VD_OK) return s;
    int is_signed = !strcmp(h.descr, "<i8");
    if (!is_signed && strcmp(h.descr, "<u8") != 0)
        return vd_err_set(err, VD_INVALID, "%s: ids dtype '%s' is not supported; want int64 or "
                          "uint64 (little-endian)", name, h.descr);
    if (!(h.n_shape == 1 || (h.n_shape == 2 && h.shape[1] == 1)))
        return vd_err_set(err, VD_INVALID, "%s: ids must have shape (n,) or (n, 1), not %d-D",
                          name, h.n_shape);
    if ((s = vd_ingest__npy_check_size(&f->map, &h, h.shape[0], 8, err)) != VD_OK) return s;
    if (h.shape[0] != expected_n)
        return vd_err_set(err, VD_INVALID, "%s: %" PRIu64 " ids for %zu vectors", name,
                          h.shape[0], expected_n);
    const uint8_t *data = f->map.p + h.data_off;
    if (h.data_off % 8 == 0) f->ids = (const uint64_t *)(const void *)data;
    else if ((s = own_ids(f, data, expected_n, err)) != VD_OK) return s;
    return check_values(f, expected_n, is_signed, err);
}

vd_status vd_ids_open(const char *path, size_t expected_n, vd_ids_file **out, vd_err *err)
{
    vd_ids_file *f = vd_calloc(1, sizeof *f);
    vd_status s = !f    ? vd_err_set(err, VD_NOMEM, "out of memory opening ids")
                  : path ? read_file(f, path, expected_n, err)
                         : own_ids(f, NULL, expected_n, err);
    if (s != VD_OK) vd_ids_close(f);
    *out = s == VD_OK ? f : NULL;
    return s;
}

void vd_ids_close(vd_ids_file *f)
{
    if (f) vd_ingest__release(&f->map, f, f->owned, NULL);
}

const uint64_t *vd_ids_get(const vd_ids_file *f) { return f->ids; }

/* ---- string ids from a text file ------------------------------------------------------- */
struct vd_text_ids_file {
    uint8_t *bytes;
    uint32_t *ends;
    size_t n_bytes;
};

/* Packs the lines of mapping m (expected_n of them, counted) into f, each checked by one. */
static vd_status pack_lines(vd_text_ids_file *f, const vd_ingest__mapped *m, size_t expected_n,
                            vd_text_id_check_fn one, vd_err *err)
{
    const uint8_t *end = m->p + m->n;
    f->bytes = vd_malloc(m->n + 1);
    f->ends = vd_malloc((expected_n ? expected_n : 1) * sizeof *f->ends);
    if (!f->bytes || !f->ends)
        return vd_err_set(err, VD_NOMEM, "out of memory for %zu string ids", expected_n);
    size_t i = 0;
    for (const uint8_t *q = m->p; q < end; i++) {
        const uint8_t *nl = memchr(q, '\n', (size_t)(end - q));
        size_t len = (size_t)((nl ? nl : end) - q);
        if (len && q[len - 1] == '\r') len--;
        vd_err e = {0};
        if (one(q, len, &e) != VD_OK)
            return vd_err_set(err, e.code, "%s: line %zu: %s", m->name, i + 1, e.msg);
        memcpy(f->bytes + f->n_bytes, q, len);
        f->n_bytes += len;
        f->ends[i] = (uint32_t)f->n_bytes;
        q = nl ? nl + 1 : end;
    }
    return VD_OK;
}

vd_status vd_text_ids_open(const char *path, size_t expected_n, vd_text_id_check_fn one,
                           vd_text_ids_check_fn all, vd_text_ids_file **out, vd_err *err)
{
    vd_ingest__mapped m;
    vd_text_ids_file *f = vd_calloc(1, sizeof *f);
    vd_status s = f ? vd_ingest__map(path, "ids", &m, err)
                    : vd_err_set(err, VD_NOMEM, "out of memory opening ids");
    *out = NULL;
    if (s != VD_OK) {
        vd_free(f);
        return s;
    }
    size_t n_lines = vd_ingest__count_lines(m.p, m.p + m.n);
    if (m.n > UINT32_MAX)
        s = vd_err_set(err, VD_INVALID, "%s: %zu bytes of string ids; at most 4 GiB", m.name,
                       m.n);
    else if (n_lines != expected_n)
        s = vd_err_set(err, VD_INVALID, "%s: %zu id lines for %zu vectors", m.name, n_lines,
                       expected_n);
    if (s == VD_OK) s = pack_lines(f, &m, expected_n, one, err);
    if (s == VD_OK && (s = all(f->bytes, f->n_bytes, f->ends, expected_n, err)) != VD_OK)
        vd_err_prefix(err, "%s", m.name);
    vd_ingest__release(&m, NULL, NULL, NULL);
    if (s != VD_OK) {
        vd_text_ids_close(f);
        return s;
    }
    *out = f;
    return VD_OK;
}

void vd_text_ids_close(vd_text_ids_file *f)
{
    if (!f) return;
    vd_free(f->bytes);
    vd_free(f->ends);
    vd_free(f);
}

const uint8_t *vd_text_ids_bytes(const vd_text_ids_file *f) { return f->bytes; }
const uint32_t *vd_text_ids_ends(const vd_text_ids_file *f) { return f->ends; }
size_t vd_text_ids_n_bytes(const vd_text_ids_file *f) { return f->n_bytes; }
