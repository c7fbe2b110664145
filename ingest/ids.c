/* ingest/ids.c: the ids of the rows, from an .npy of little-endian int64 or uint64, shape (n,)
 * or (n, 1), or 0..n-1 when no file is given.
 *
 * The ids are used straight from the mapping when the data offset is 8-aligned (numpy pads
 * the header to 64 bytes), otherwise copied once: 8 bytes a row either way. Every id is
 * checked at open - no negative int64, not the reserved "no hit" id, no id twice - so a bad
 * file is refused before anything is built. The duplicate check must see the whole file: a
 * build adds its rows in chunks, and an id repeated across two chunks would otherwise be an
 * upsert that silently replaces the first row. */
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
