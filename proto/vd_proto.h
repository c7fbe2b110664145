/* proto/vd_proto.h: the wire format around proto/vectord.proto - framing, request decoding
 * into checked views, response encoding, and the one table mapping vd_status to wire codes.
 *
 * Framing: each message is a 4-byte big-endian unsigned length N (1..max_frame), then N bytes
 * of one protobuf message. See docs/protocol.md.
 *
 * Threads: a frame decoder belongs to one thread at a time (the connection's loop thread);
 * everything else here is pure and may be called from any thread.
 * Depends on protobuf-c and common/ only. */
#ifndef VD_PROTO_H
#define VD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/vd_common.h"
#include "proto/vectord.pb-c.h"

#define VD_PROTOCOL_VERSION 1u
#define VD_FRAME_HEADER_BYTES 4u

typedef Vectord__V1__Request vd_pb_request;
typedef Vectord__V1__Response vd_pb_response;
typedef Vectord__V1__Code vd_pb_code;

/* Limits a server enforces and announces in its Hello reply. */
typedef struct vd_limits {
    uint32_t max_frame_bytes; /* largest frame body, both directions */
    uint32_t max_batch;       /* ids per upsert/delete/get, queries per search */
    uint32_t max_k;
    uint32_t max_dim;
    uint32_t max_connections;
    uint32_t idle_timeout_ms; /* 0 = never */
} vd_limits;

/* ---- Status codes ------------------------------------------------------------------------
 * One table (proto/message.c) maps every vd_status to its wire code; the reverse direction
 * takes the first status listed for a code. */
vd_pb_code vd_proto_code_of(vd_status s);
vd_status vd_proto_status_of(vd_pb_code code);
const char *vd_proto_code_name(vd_pb_code code); /* "INVALID_ARGUMENT"; "CODE_<n>" if unknown */

/* ---- Frame decoder -----------------------------------------------------------------------
 * Incremental: bytes arrive in any split (one byte at a time, many frames per read) and
 * complete frames come out. Input either goes straight into the decoder's buffer
 * (vd_frame_reserve + vd_frame_commit: zero copy from read(2)) or is copied in
 * (vd_frame_push). The buffer holds at most one partial frame plus whatever one read
 * brought, so memory is bounded by max_frame + the read size.
 * Broken framing (length 0 or > max_frame) is sticky: every later vd_frame_next fails the
 * same way and the connection must be closed. */
typedef struct vd_frame_decoder vd_frame_decoder; /* opaque */

/* max_frame: largest accepted frame body in bytes (>= 1). On VD_OK *out owns a decoder. */
vd_status vd_frame_decoder_new(uint32_t max_frame, vd_frame_decoder **out, vd_err *err);
void vd_frame_decoder_free(vd_frame_decoder *d); /* NULL is a no-op */

/* Space for input at the buffer's tail: *p gets room for *cap bytes, at least `want` and at
 * least what the frame being assembled still lacks (so a large frame is read in place).
 * Pass the number of bytes written to vd_frame_commit. VD_NOMEM on allocation failure. */
vd_status vd_frame_reserve(vd_frame_decoder *d, size_t want, uint8_t **p, size_t *cap, vd_err *err);
void vd_frame_commit(vd_frame_decoder *d, size_t n);
/* Copies n input bytes in (reserve + memcpy + commit). */
vd_status vd_frame_push(vd_frame_decoder *d, const uint8_t *data, size_t n, vd_err *err);

/* Takes the next complete frame: on VD_OK, *frame and *len are the body (header stripped) or
 * *frame == NULL when no complete frame is buffered yet. The body stays valid until the next
 * vd_frame_reserve/vd_frame_push/vd_frame_decoder_free. Broken framing: VD_FULL for a length
 * over max_frame ("frame of 70000000 bytes exceeds max_frame_bytes 67108864"), VD_INVALID
 * for a zero length. */
vd_status vd_frame_next(vd_frame_decoder *d, const uint8_t **frame, uint32_t *len, vd_err *err);
/* Bytes of a frame begun but not complete (0 at a frame boundary): a peer closing with
 * pending bytes sent a truncated frame. */
size_t vd_frame_pending(const vd_frame_decoder *d);

/* Writes the 4-byte header for a body of `len` bytes. */
static inline void vd_frame_header_put(uint8_t *p, uint32_t len)
{
    vd_put_u32be(p, len);
}

/* ---- Requests ----------------------------------------------------------------------------- */

/* Unpacks one frame body into a Request (allocated through vd_malloc). VD_INVALID when the
 * bytes are not a Request ("frame of 17 bytes is not a valid vectord.v1.Request"). */
vd_status vd_proto_request_decode(const uint8_t *body, size_t len, vd_pb_request **out,
                                  vd_err *err);
void vd_proto_request_free(vd_pb_request *r); /* NULL is a no-op */
const char *vd_proto_op_name(int op_case);    /* "upsert"; "none" for NOT_SET */

/* Little-endian uint64 ids from a `bytes` field: checks the length is a multiple of 8 and
 * 1 <= n <= max_batch ("what" names the operation in messages: "upsert"). On VD_OK *ids_out
 * is a new array (vd_free) of *n_out ids, decoded from little-endian. */
vd_status vd_proto_ids(const ProtobufCBinaryData *b, const char *what, uint32_t max_batch,
                       uint64_t **ids_out, size_t *n_out, vd_err *err);

/* Float32 rows from a `bytes` field, row-major, dim floats each. The view borrows the
 * request's bytes when they are aligned (protobuf-c allocates them) and owns a copy
 * otherwise; it lives no longer than the request it came from. */
typedef struct vd_floats {
    const float *v;
    size_t n_rows;
    float *owned; /* NULL when borrowing */
} vd_floats;
void vd_floats_free(vd_floats *f); /* releases `owned`, zeroes the view */

/* Upsert vectors: exactly n_ids * dim * 4 bytes, else VD_INVALID "vectors hold 1532 bytes,
 * 4 ids x 96 dims x 4 bytes = 1536 expected (collection docs)". */
vd_status vd_proto_vectors(const ProtobufCBinaryData *b, size_t n_ids, uint32_t dim,
                           const char *collection, vd_floats *out, vd_err *err);
/* Search queries: a whole number nq >= 1 of dim-float rows, nq <= max_batch. */
vd_status vd_proto_queries(const ProtobufCBinaryData *b, uint32_t dim, const char *collection,
                           uint32_t max_batch, vd_floats *out, vd_err *err);
/* k in 1..max_k. */
vd_status vd_proto_check_k(uint32_t k, uint32_t max_k, vd_err *err);

/* Upsert payloads: none, or exactly n entries; an empty entry means "no payload". On VD_OK
 * *ptrs and *lens are new arrays of n entries (NULL pointer = none), or both NULL when the
 * request carries no payloads. The pointers borrow from the request. JSON validity is the
 * store's to check. */
vd_status vd_proto_payloads(const Vectord__V1__UpsertRequest *u, size_t n_ids,
                            const uint8_t ***ptrs, uint32_t **lens, vd_err *err);

/* CreateCollection: dim in 1..max_dim, metric specified. Name, m and ef bounds are the
 * store's to check. */
vd_status vd_proto_check_create(const Vectord__V1__CreateCollectionRequest *c, uint32_t max_dim,
                                vd_err *err);

/* ---- Responses ---------------------------------------------------------------------------- */

/* Frame size (header + body) of a response. */
size_t vd_proto_response_frame_size(const vd_pb_response *r);
/* Packs header + body into dst (room for vd_proto_response_frame_size bytes); returns the
 * number of bytes written. */
size_t vd_proto_response_pack(const vd_pb_response *r, uint8_t *dst);
/* Allocates (vd_malloc) and packs a whole frame. VD_FULL when the body would exceed
 * max_frame ("response of N bytes exceeds max_frame_bytes M"), nothing allocated then. */
vd_status vd_proto_response_frame(const vd_pb_response *r, uint32_t max_frame, uint8_t **out,
                                  size_t *len_out, vd_err *err);
/* A response carrying only a status, as an allocated frame. NULL on allocation failure. */
uint8_t *vd_proto_error_frame(uint64_t request_id, vd_pb_code code, const char *msg,
                              size_t *len_out);

/* Unpacks a response body (clients and tests). */
vd_status vd_proto_response_decode(const uint8_t *body, size_t len, vd_pb_response **out,
                                   vd_err *err);
void vd_proto_response_free(vd_pb_response *r); /* NULL is a no-op */

/* The protobuf-c allocator routing through vd_malloc/vd_free. */
extern ProtobufCAllocator vd_proto_allocator;

#endif
