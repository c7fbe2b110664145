/* tests/fuzz/fuzz_filter.c: hostile Filter messages through everything a filter meets before
 * it reaches an index: the depth guard on the raw frame, protobuf-c, the tree decoder
 * (proto/filter.c), the grammar check (vd_filter_check) and, for trees it accepts, the
 * reference evaluation on a few payloads (storage/filter.c), plus the values a payload
 * index would extract from them.
 *
 * Input: byte 0 picks the request the filter rides in (search, count or delete), the rest
 * is the Filter message's bytes, wrapped into a Request frame here, so the fuzzer spends
 * its time inside the filter rather than rediscovering the Request around it. Nothing may
 * crash, leak, read out of bounds or recurse without bound. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/vd_proto.h"
#include "storage/storage_int.h"

static volatile uint64_t sink;

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

/* A length-delimited field `field` holding body[0..n) at p. */
static size_t put_field(uint8_t *p, uint32_t field, const uint8_t *body, size_t n)
{
    size_t k = put_varint(p, (uint64_t)field << 3 | 2);
    k += put_varint(p + k, n);
    memcpy(p + k, body, n);
    return k + n;
}

static const char *const payloads[] = {
    "{\"a\":1,\"s\":\"x\",\"b\":true,\"m\":{\"lang\":\"en\"},\"t\":[1,\"x\",2.5]}",
    "{\"a\":[{\"b\":2},{\"b\":\"y\"}],\"n\":null,\"big\":12345678901234567890}",
    "{}",
};

static void touch_tree(const vd_filter *f, json_t *const *js, size_t n_js)
{
    for (size_t i = 0; i < n_js; i++) sink += (uint64_t)vd_storage__filter_match(f, js[i]);
    /* The values an index of each kind would keep for the first condition's path. */
    const vd_filter *c = f;
    while (c->op >= VD_FOP_AND && c->n_children) c = &c->children[0];
    if (c->op > VD_FOP_EXISTS) return;
    vd_buf b = {0};
    for (int k = VD_PINDEX_KEYWORD; k <= VD_PINDEX_BOOL; k++)
        for (size_t i = 0; i < n_js; i++) {
            size_t len = 0;
            vd_pvals r;
            if (vd_storage__pvals_extract((vd_pindex_kind)k, c->field, c->field_len, js[i], &b,
                                          &len, NULL) == VD_OK &&
                len && vd_storage__pvals_decode(b.p, len, (vd_pindex_kind)k, &r, NULL) != VD_OK)
                abort(); /* what extraction writes, the decoder must read back */
        }
    vd_storage__buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *js[3];
    if (!js[0])
        for (size_t i = 0; i < 3; i++)
            if (vd_storage__json_parse((const uint8_t *)payloads[i], strlen(payloads[i]), &js[i],
                                       NULL) != VD_OK)
                abort();
    if (size < 1 || size > (1 << 20)) return 0;
    static const uint32_t op_field[3] = {18, 19, 16}, filter_field[3] = {7, 2, 3};
    int which = data[0] % 3;
    data++;
    size--;
    uint8_t *inner = malloc(size + 16), *frame = malloc(size + 40);
    size_t ni = put_field(inner, filter_field[which], data, size);
    size_t nf = put_varint(frame, 1 << 3 | 0);
    nf += put_varint(frame + nf, 42); /* request_id */
    nf += put_field(frame + nf, op_field[which], inner, ni);
    vd_proto_request *r = NULL;
    vd_err e;
    vd_status s = vd_proto_request_decode(frame, nf, &r, &e);
    if (s == VD_OK && r) {
        const vd_request *q = &r->op;
        const vd_filter *f = q->kind == VD_REQ_SEARCH ? q->search.filter :
                             q->kind == VD_REQ_COUNT ? q->count.filter : q->del.filter;
        if (f && vd_filter_check(f, &e) == VD_OK) touch_tree(f, js, 3);
    }
    vd_proto_request_free(r);
    free(inner);
    free(frame);
    return 0;
}
