/* proto/frame.c: incremental decoder for length-prefixed frames.
 *
 * Layout: one byte buffer buf[0..cap) holding unconsumed input in [start, end). Frames are
 * handed out as pointers into it, so a complete frame is never copied: read(2) writes into
 * the tail (vd_frame_reserve/commit) and vd_frame_next advances `start`. The buffer only
 * moves (compaction or growth) inside vd_frame_reserve/push, which is why a frame body stays
 * valid until the next one of those calls.
 *
 * Invariants: start <= end <= cap; once `broken` is set, it never clears and the bytes are
 * never looked at again. Reserve grows the buffer to hold the whole frame being assembled
 * (header + body <= 4 + max_frame), which bounds memory by the limit plus one read's worth.
 * After a large frame has been consumed and the buffer is empty, it shrinks back so an idle
 * connection does not pin megabytes.
 *
 * Rejected: a ring buffer (frames could wrap and need copying out); a callback-style "feed"
 * that delivers frames as they complete (the caller could not stop between frames to apply
 * backpressure without this layer keeping the rest anyway - a pull API lets it stop). */
#include "proto/vd_proto.h"

#include <inttypes.h>

#define SHRINK_ABOVE (1u << 20) /* release an empty buffer larger than this */

struct vd_frame_decoder {
    uint8_t *buf;
    size_t cap, start, end;
    uint32_t max_frame;
    int broken;       /* 0, or the sticky vd_status of broken framing */
    uint32_t bad_len; /* the offending length, for the repeated message */
};

vd_status vd_frame_decoder_new(uint32_t max_frame, vd_frame_decoder **out, vd_err *err)
{
    *out = NULL;
    if (max_frame == 0) return vd_err_set(err, VD_INVALID, "max_frame must be at least 1");
    vd_frame_decoder *d = vd_calloc(1, sizeof *d);
    if (!d) return vd_err_set(err, VD_NOMEM, "frame decoder: out of memory");
    d->max_frame = max_frame;
    *out = d;
    return VD_OK;
}

void vd_frame_decoder_free(vd_frame_decoder *d)
{
    if (!d) return;
    vd_free(d->buf);
    vd_free(d);
}

static vd_status broken_err(const vd_frame_decoder *d, vd_err *err)
{
    if (d->broken == VD_FULL)
        return vd_err_set(err, VD_FULL,
                          "frame of %" PRIu32 " bytes exceeds max_frame_bytes %" PRIu32, d->bad_len,
                          d->max_frame);
    return vd_err_set(err, VD_INVALID,
                      "zero-length frame (a frame holds 1..%" PRIu32
                      " bytes after its 4-byte length)",
                      d->max_frame);
}

/* Checks the header at `start` if complete; sets `broken` on a bad length. Returns the
 * frame's total size (header + body), or 0 when the header is not complete or is bad. */
static size_t frame_total(vd_frame_decoder *d)
{
    if (d->broken || d->end - d->start < VD_FRAME_HEADER_BYTES) return 0;
    uint32_t len = vd_get_u32be(d->buf + d->start);
    if (len == 0 || len > d->max_frame) {
        d->broken = len == 0 ? VD_INVALID : VD_FULL;
        d->bad_len = len;
        return 0;
    }
    return VD_FRAME_HEADER_BYTES + (size_t)len;
}

vd_status vd_frame_reserve(vd_frame_decoder *d, size_t want, uint8_t **p, size_t *cap, vd_err *err)
{
    if (want == 0) want = 1;
    size_t have = d->end - d->start;
    if (have == 0) {
        d->start = d->end = 0;
        if (d->cap > SHRINK_ABOVE && want <= SHRINK_ABOVE) {
            vd_free(d->buf);
            d->buf = NULL;
            d->cap = 0;
        }
    }
    size_t total = frame_total(d);
    size_t need = want;
    if (total > have && total - have > need) need = total - have;
    if (d->cap - d->end < need) {
        if (d->start > 0) { /* compact: the partial frame moves to the front */
            memmove(d->buf, d->buf + d->start, have);
            d->start = 0;
            d->end = have;
        }
        if (d->cap - d->end < need) {
            size_t ncap = have + need;
            uint8_t *nb = vd_realloc(d->buf, ncap);
            if (!nb)
                return vd_err_set(err, VD_NOMEM, "frame buffer of %zu bytes: out of memory", ncap);
            d->buf = nb;
            d->cap = ncap;
        }
    }
    *p = d->buf + d->end;
    *cap = d->cap - d->end;
    return VD_OK;
}

void vd_frame_commit(vd_frame_decoder *d, size_t n)
{
    if (n > d->cap - d->end) n = d->cap - d->end; /* caller bug; never run past the buffer */
    d->end += n;
}

vd_status vd_frame_push(vd_frame_decoder *d, const uint8_t *data, size_t n, vd_err *err)
{
    if (n == 0) return VD_OK;
    uint8_t *p = NULL;
    size_t cap = 0;
    vd_status s = vd_frame_reserve(d, n, &p, &cap, err);
    if (s != VD_OK) return s;
    memcpy(p, data, n);
    vd_frame_commit(d, n);
    return VD_OK;
}

vd_status vd_frame_next(vd_frame_decoder *d, const uint8_t **frame, uint32_t *len, vd_err *err)
{
    *frame = NULL;
    *len = 0;
    size_t total = frame_total(d);
    if (d->broken) return broken_err(d, err);
    if (total == 0 || d->end - d->start < total) return VD_OK;
    *frame = d->buf + d->start + VD_FRAME_HEADER_BYTES;
    *len = (uint32_t)(total - VD_FRAME_HEADER_BYTES);
    d->start += total;
    return VD_OK;
}

size_t vd_frame_pending(const vd_frame_decoder *d)
{
    return d->end - d->start;
}
