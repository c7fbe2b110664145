/* ingest/payloads.c: one JSON payload per row from a JSON Lines file.
 *
 * Line i (1-based, as editors count) is the payload of row i-1; a final newline is optional
 * and a trailing '\r' is dropped. The file stays mapped: the reader keeps a pointer and a
 * length per line (12 bytes a row), never a copy. The lines are counted before any is
 * checked, so a count mismatch is reported as such and not as a bad line. The JSON rule is
 * passed in (storage's vd_json_check_object in the build): ingest/ knows no storage. */
#include <string.h>

#include "ingest/ingest_int.h"
#include "ingest/vd_ingest.h"

struct vd_payloads_file {
    vd_ingest__mapped map;
    const uint8_t **ptrs;
    uint32_t *lens;
};

/* Maps `path` into f, counts its lines and checks each with `check`. */
static vd_status read_file(vd_payloads_file *f, const char *path, size_t expected_n,
                           vd_json_check_fn check, vd_err *err)
{
    vd_status s = vd_ingest__map(path, "payloads", &f->map, err);
    if (s != VD_OK) return s;
    const char *name = f->map.name;
    const uint8_t *end = f->map.p + f->map.n;
    size_t n_lines = vd_ingest__count_lines(f->map.p, end);
    if (n_lines != expected_n)
        return vd_err_set(err, VD_INVALID, "%s: %zu payload lines for %zu vectors", name,
                          n_lines, expected_n);
    f->ptrs = vd_malloc(expected_n * sizeof *f->ptrs);
    f->lens = vd_malloc(expected_n * sizeof *f->lens);
    if (!f->ptrs || !f->lens)
        return vd_err_set(err, VD_NOMEM, "out of memory for %zu payloads", expected_n);
    size_t i = 0;
    for (const uint8_t *q = f->map.p; q < end; i++) {
        const uint8_t *nl = memchr(q, '\n', (size_t)(end - q));
        size_t len = (size_t)((nl ? nl : end) - q);
        if (len && q[len - 1] == '\r') len--;
        if (len > UINT32_MAX)
            return vd_err_set(err, VD_INVALID, "%s: line %zu is longer than 4 GiB", name, i + 1);
        vd_err e = {0};
        if (check(q, len, &e) != VD_OK)
            return vd_err_set(err, e.code, "%s: line %zu is not a JSON object: %s", name, i + 1,
                              e.msg);
        f->ptrs[i] = q;
        f->lens[i] = (uint32_t)len;
        q = nl ? nl + 1 : end;
    }
    return VD_OK;
}

vd_status vd_payloads_open(const char *path, size_t expected_n, vd_json_check_fn check,
                           vd_payloads_file **out, vd_err *err)
{
    vd_payloads_file *f = vd_calloc(1, sizeof *f);
    vd_status s = f ? read_file(f, path, expected_n, check, err)
                    : vd_err_set(err, VD_NOMEM, "out of memory opening payloads");
    if (s != VD_OK) vd_payloads_close(f);
    *out = s == VD_OK ? f : NULL;
    return s;
}

void vd_payloads_close(vd_payloads_file *f)
{
    if (f) vd_ingest__release(&f->map, f, f->ptrs, f->lens);
}

const uint8_t *const *vd_payloads_ptrs(const vd_payloads_file *f)
{
    return (const uint8_t *const *)f->ptrs;
}
const uint32_t *vd_payloads_lens(const vd_payloads_file *f) { return f->lens; }
