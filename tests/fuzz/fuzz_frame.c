/* tests/fuzz/fuzz_frame.c: arbitrary bytes through the frame decoder and request decoding,
 * the way the server's loop thread sees them.
 *
 * The first input byte picks how the rest is split into "reads" (so partial headers and
 * many-frames-per-read paths are exercised) and the max_frame limit; every complete frame
 * is decoded into a domain request, every array the request points to is read end to end
 * (ASan then catches a view longer than its bytes), and an error response is framed for
 * it. String ids go through storage's packing check (vd_str_ids_check: ends within the bytes
 * the frame carried) and are read only if it passes, as the engine does; a scroll cursor
 * goes through the cursor decoder, and its bytes, taken as a position, through an
 * encode/decode round trip. Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>

#include "engine/engine_int.h"
#include "proto/vd_proto.h"

static volatile uint64_t sink;

static void touch(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        sink += b[i];
}

/* String ids as the engine takes them: read only once the packing checked out. */
static void touch_str_ids(const vd_str_ids *s)
{
    touch(s->ends, s->n * 4);
    if (vd_str_ids_check(s, s->n % 2, NULL) != VD_OK) return;
    for (size_t i = 0; i < s->n; i++) {
        size_t a = vd_str_ids_start(s, i);
        touch(s->bytes + a, s->ends[i] - a);
    }
}

/* A cursor through the decoder, and its bytes as a position through a round trip. */
static void cursor_round_trip(const vd_scroll_req *q)
{
    const uint8_t *p = q->cursor.data;
    size_t n = q->cursor.len;
    vd_scroll_from from;
    uint32_t cid = n >= 6 ? vd_get_u32le(p + 2) : 1;
    vd_id_type t = n >= 2 && p[1] ? VD_ID_STR : VD_ID_INT;
    if (vd_engine__cursor_decode(p, n, cid, t, &from, NULL) == VD_OK && from.str)
        touch(from.str, from.str_len);
    uint8_t tok[VD_ENGINE__CURSOR_MAX];
    int str = n && vd_str_id_check(p, n, NULL) == VD_OK;
    uint64_t id = n >= 8 ? vd_get_u64le(p) : n;
    size_t tn = vd_engine__cursor_encode(tok, cid, str ? VD_ID_STR : VD_ID_INT, id, p, n);
    if (vd_engine__cursor_decode(tok, tn, cid, str ? VD_ID_STR : VD_ID_INT, &from, NULL) != VD_OK)
        abort();
    if (str ? (from.str_len != n || memcmp(from.str, p, n) != 0) : from.id != id) abort();
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
        touch_str_ids(&r->upsert.str_ids);
        break;
    case VD_REQ_DELETE:
        touch(r->del.ids, r->del.n_ids * 8);
        touch_str_ids(&r->del.str_ids);
        break;
    case VD_REQ_GET:
        touch(r->get.ids, r->get.n_ids * 8);
        touch_str_ids(&r->get.str_ids);
        break;
    case VD_REQ_SET_PAYLOAD:
        touch(r->set_payload.ids, r->set_payload.n_ids * 8);
        for (size_t i = 0; i < r->set_payload.n_payloads; i++)
            touch(r->set_payload.payloads[i].data, r->set_payload.payloads[i].len);
        touch_str_ids(&r->set_payload.str_ids);
        break;
    case VD_REQ_SCROLL:
        touch(r->scroll.collection, strlen(r->scroll.collection) + 1);
        cursor_round_trip(&r->scroll);
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
