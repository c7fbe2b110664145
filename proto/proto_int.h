/* proto/proto_int.h: what the codec's files share.
 *
 *   frame.c     the incremental frame decoder
 *   wire.c      the status-code table, the allocator, byte order (calls no other proto file)
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

/* Wire metric <-> domain metric. from_wire: 0 when the wire value is not a metric. */
Vectord__V1__Metric vd_proto__metric_to_wire(vd_metric m);
int vd_proto__metric_from_wire(Vectord__V1__Metric w, vd_metric *out);
Vectord__V1__Quantization vd_proto__quant_to_wire(vd_quantization q);
int vd_proto__quant_from_wire(Vectord__V1__Quantization w, vd_quantization *out); /* 0: unknown */

#endif
