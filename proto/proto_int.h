/* proto/proto_int.h: what the codec's files share.
 *
 *   frame.c     the incremental frame decoder
 *   wire.c      the status-code table, the allocator, byte order (calls no other proto file)
 *   filter.c    the Filter tree both ways: the depth guard before unpacking, and the decoder
 *   request.c   Request frames -> the engine's domain requests
 *   response.c  domain results -> Response frames; Response decoding for clients and tests */
#ifndef VD_PROTO_INT_H
#define VD_PROTO_INT_H

#include "proto/vd_proto_pb.h"

/* 1 on little-endian hosts: arrays then cross the wire as they are. */
static inline int vd_proto__host_is_le(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* filter.c: refuses (VD_INVALID) a Request whose filters nest deeper than protobuf-c's
 * recursion may safely go, before it is unpacked, with the request's id and kind for the
 * answer; anything unparsable passes (protobuf-c refuses it). */
vd_status vd_proto__filter_prescan(const uint8_t *body, size_t len, uint64_t *request_id,
                                   vd_request_kind *kind, vd_err *err);
/* The storage tree of a wire Filter (NULL: none), into *out; *mem (vd_free) owns its nodes,
 * which borrow strings from f. */
vd_status vd_proto__filter_of(const Vectord__V1__Filter *f, vd_request_kind k,
                              const vd_filter **out, void **mem, vd_err *err);

/* Wire metric <-> domain metric. from_wire: 0 when the wire value is not a metric. */
/* Set by the protobuf-c allocator when an allocation fails (this thread): protobuf-c's
 * unpack returns NULL for bytes it refuses and for memory it could not get alike, and only
 * the latter is RESOURCE_EXHAUSTED rather than a bad frame. Clear it before unpacking. */
extern _Thread_local int vd_proto__alloc_failed;

Vectord__V1__Metric vd_proto__metric_to_wire(vd_metric m);
int vd_proto__metric_from_wire(Vectord__V1__Metric w, vd_metric *out);
/* Wire id type <-> domain id type. from_wire: 0 when the wire value is not one. */
Vectord__V1__IdType vd_proto__id_type_to_wire(vd_id_type t);
int vd_proto__id_type_from_wire(Vectord__V1__IdType w, vd_id_type *out);
Vectord__V1__Quantization vd_proto__quant_to_wire(vd_quantization q);
int vd_proto__quant_from_wire(Vectord__V1__Quantization w, vd_quantization *out); /* 0: unknown */

#endif
