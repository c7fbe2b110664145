/* ingest/ingest_int.h: what the readers of ingest/ share, all defined in ingest/file.c: the
 * read-only file mapping and the .npy header. vectors.c, ids.c and payloads.c call file.c,
 * never each other, and file.c calls none of them. */
#ifndef VD_INGEST_INT_H
#define VD_INGEST_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/vd_common.h"

/* A whole file mapped read-only (MAP_PRIVATE). */
typedef struct vd_ingest__mapped {
    const uint8_t *p; /* NULL until mapped */
    size_t n;
    const char *name; /* for messages: the path's last 60 characters, borrowed from the caller */
} vd_ingest__mapped;

/* Lines of p[0..end): a final line without its newline counts. */
size_t vd_ingest__count_lines(const uint8_t *p, const uint8_t *end);

/* The path's last 60 characters, for messages (a pointer into `path`). */
const char *vd_ingest__short_name(const char *path);

/* Maps a regular, non-empty file; `what` names it in messages ("cannot open ids x.npy: ...").
 * VD_IO when it cannot be opened or mapped, VD_INVALID when it is not a regular file or is
 * empty. On failure m holds nothing to release. */
vd_status vd_ingest__map(const char *path, const char *what, vd_ingest__mapped *m,
                         vd_err *err);
/* Releases a reader: unmaps m (an all-zero m is a no-op), then frees its arrays a and b
 * (either may be NULL) and the reader itself. Every reader's close is this one call. */
void vd_ingest__release(vd_ingest__mapped *m, void *reader, void *a, void *b);
/* Drops the pages of bytes [off, off + len) from this process's resident set (they are read
 * again from the page cache if touched). */
void vd_ingest__drop(const vd_ingest__mapped *m, size_t off, size_t len);

/* ---- .npy -------------------------------------------------------------------------------- */
typedef struct vd_ingest__npy {
    char descr[16]; /* "<f4" */
    int n_shape;
    uint64_t shape[4];
    size_t data_off; /* where the values start */
} vd_ingest__npy;

int vd_ingest__is_npy(const vd_ingest__mapped *m); /* starts with the npy magic */
/* Parses magic, version (1.0, 2.0, 3.0) and the header dict; refuses structured dtypes and
 * Fortran order. VD_INVALID names the file and what was wrong. */
vd_status vd_ingest__npy_parse(const vd_ingest__mapped *m, vd_ingest__npy *h, vd_err *err);
/* VD_INVALID unless the data after the header is exactly n_items * item bytes ("truncated",
 * "trailing bytes", "shape too large"). */
vd_status vd_ingest__npy_check_size(const vd_ingest__mapped *m, const vd_ingest__npy *h,
                                    uint64_t n_items, size_t item, vd_err *err);

#endif
