/* tests/fuzz/fuzz_frame.c: arbitrary bytes through the frame decoder and request
 * decoding/validation, the way the server's loop thread sees them.
 *
 * The first input byte picks how the rest is split into "reads" (so partial headers and
 * many-frames-per-read paths are exercised) and the max_frame limit; every complete frame
 * is unpacked as a Request and run through every checked view with a few dims, and an
 * error response is framed for it. Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>

#include "proto/vd_proto.h"

static void check_request(const vd_pb_request *r)
{
    vd_err e;
    static const uint32_t dims[] = {1, 3, 128};
    switch (r->op_case) {
    case VECTORD__V1__REQUEST__OP_CREATE_COLLECTION:
        vd_proto_check_create(r->create_collection, 4096, &e);
        break;
    case VECTORD__V1__REQUEST__OP_UPSERT: {
        uint64_t *ids = NULL;
        size_t n = 0;
        if (vd_proto_ids(&r->upsert->ids, "upsert", 1000, &ids, &n, &e) != VD_OK) break;
        for (size_t i = 0; i < VD_ARRAY_LEN(dims); i++) {
            vd_floats f;
            if (vd_proto_vectors(&r->upsert->vectors, n, dims[i], "fuzz", &f, &e) == VD_OK) {
                volatile float sink = f.v[f.n_rows * dims[i] - 1];
                (void)sink;
                vd_floats_free(&f);
            }
        }
        const uint8_t **p = NULL;
        uint32_t *l = NULL;
        if (vd_proto_payloads(r->upsert, n, &p, &l, &e) == VD_OK && p) {
            volatile uint8_t sink = l[n - 1] ? p[n - 1][l[n - 1] - 1] : 0;
            (void)sink;
        }
        vd_free(p);
        vd_free(l);
        vd_free(ids);
        break;
    }
    case VECTORD__V1__REQUEST__OP_DELETE:
    case VECTORD__V1__REQUEST__OP_GET: {
        const ProtobufCBinaryData *b =
            r->op_case == VECTORD__V1__REQUEST__OP_GET ? &r->get->ids : &r->delete_->ids;
        uint64_t *ids = NULL;
        size_t n = 0;
        if (vd_proto_ids(b, "ids", 1000, &ids, &n, &e) == VD_OK) {
            volatile uint64_t sink = ids[n - 1];
            (void)sink;
        }
        vd_free(ids);
        break;
    }
    case VECTORD__V1__REQUEST__OP_SEARCH:
        vd_proto_check_k(r->search->k, 10000, &e);
        for (size_t i = 0; i < VD_ARRAY_LEN(dims); i++) {
            vd_floats f;
            if (vd_proto_queries(&r->search->queries, dims[i], "fuzz", 1000, &f, &e) == VD_OK) {
                volatile float sink = f.v[f.n_rows * dims[i] - 1];
                (void)sink;
                vd_floats_free(&f);
            }
        }
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
            vd_pb_request *r = NULL;
            uint64_t rid = 0;
            if (vd_proto_request_decode(f, len, &r, &e) == VD_OK) {
                rid = r->request_id;
                check_request(r);
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
