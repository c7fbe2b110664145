/* proto/vd_proto_pb.h: the generated protobuf-c types, for clients and tests that build raw
 * messages (tests/unit/vd_test_client.h, benchmarks). Production code outside proto/ uses
 * proto/vd_proto.h only. */
#ifndef VD_PROTO_PB_H
#define VD_PROTO_PB_H

#include "proto/vd_proto.h"
#include "proto/vectord.pb-c.h"

typedef Vectord__V1__Request vd_pb_request;
typedef Vectord__V1__Response vd_pb_response;

/* The protobuf-c allocator routing through vd_malloc/vd_free. */
extern ProtobufCAllocator vd_proto_allocator;

/* Unpacks a response body. VD_INVALID when the bytes are not a Response. */
vd_status vd_proto_response_decode(const uint8_t *body, size_t len, vd_pb_response **out,
                                   vd_err *err);
void vd_proto_response_free(vd_pb_response *r); /* NULL is a no-op */

#endif
