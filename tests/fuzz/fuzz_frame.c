/* tests/fuzz/fuzz_frame.c: arbitrary bytes through the frame decoder and request decoding,
 * the way the server's loop thread sees them.
 *
 * The first input byte picks how the rest is split into "reads" (so partial headers and
 * many-frames-per-read paths are exercised) and the max_frame limit; every complete frame
 * is decoded into a domain request, every array the request points to is read end to end
 * (ASan then catches a view longer than its bytes), and an error response is framed for
 * it. Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>

#include "proto/vd_proto.h"

static volatile uint64_t sink;

static void touch(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        sink += b[i];
}

static void touch_request(const vd_proto_request *q)
{
    const vd_request *r = &q->op;
    if (q->is_hello) touch(q->hello.token, strlen(q->hello.token) + 1);
    switch (r->kind) {
    case VD_REQ_CREATE:
        touch(r->create.name, strlen(r->create.name) + 1);
        break;
    case VD_REQ_UPSERT:
        touch(r->upsert.ids, r->upsert.n_ids * 8);
        touch(r->upsert.vectors, r->upsert.n_floats * 4);
        for (size_t i = 0; i < r->upsert.n_payloads; i++)
            touch(r->upsert.payloads[i].data, r->upsert.payloads[i].len);
        break;
    case VD_REQ_DELETE:
        touch(r->del.ids, r->del.n_ids * 8);
        break;
    case VD_REQ_GET:
        touch(r->get.ids, r->get.n_ids * 8);
        break;
    case VD_REQ_SEARCH:
        touch(r->search.queries, r->search.n_floats * 4);
        break;
    case VD_REQ_DROP:
    case VD_REQ_INFO:
        touch(r->name, strlen(r->name) + 1);
        break;
    case VD_REQ_COUNT:
        touch(r->count.collection, strlen(r->count.collection) + 1);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t chunk = (size_t)(data[0] & 0x0f) + 1; /* read sizes 1..16, or all at once */
    uint32_t max_frame = (data[0] & 0x10) ? 64 : 1 << 16;
    int all_at_once = (data[0] & 0x20) != 0;
    data++;
    size--;

    vd_frame_decoder *d = NULL;
    if (vd_frame_decoder_new(max_frame, &d, NULL) != VD_OK) return 0;
    size_t at = 0;
    int broken = 0;
    while (at < size && !broken) {
        size_t n = all_at_once ? size - at : (size - at < chunk ? size - at : chunk);
        uint8_t *p;
        size_t cap;
        if (vd_frame_reserve(d, n, &p, &cap, NULL) != VD_OK) break;
        if (cap < n) abort(); /* the contract: at least `want` bytes */
        memcpy(p, data + at, n);
        vd_frame_commit(d, n);
        at += n;
        for (;;) {
            const uint8_t *f;
            uint32_t len;
            vd_err e = {VD_OK, "ok"};
            if (vd_frame_next(d, &f, &len, &e) != VD_OK) {
                broken = 1;
                break;
            }
            if (!f) break;
            if (len == 0 || len > max_frame) abort();
            vd_proto_request *r = NULL;
            uint64_t rid = 0;
            vd_status s = vd_proto_request_decode(f, len, &r, &e);
            if (r) {
                rid = r->request_id;
                if (s == VD_OK) touch_request(r);
                vd_proto_request_free(r);
            }
            size_t flen = 0;
            uint8_t *frame = vd_proto_error_frame(rid, vd_proto_code_of(e.code), e.msg, &flen);
            vd_free(frame);
        }
    }
    vd_frame_decoder_free(d);
    return 0;
}
