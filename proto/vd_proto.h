/* proto/vd_proto.h: the wire format around proto/vectord.proto, both directions - framing,
 * request frames decoded into the engine's domain values (engine/vd_engine.h), results
 * encoded into response frames, and the one table mapping vd_status to wire codes. No
 * other module sees a generated protobuf type (clients and tests that build raw messages
 * include proto/vd_proto_pb.h).
 *
 * Framing: each message is a 4-byte big-endian unsigned length N (1..max_frame), then N bytes
 * of one protobuf message. See docs/protocol.md.
 *
 * Threads: a frame decoder belongs to one thread at a time (the connection's loop thread);
 * everything else here is pure and may be called from any thread.
 * Depends on protobuf-c, common/, and the engine's types (no engine function is called). */
#ifndef VD_PROTO_H
#define VD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/vd_common.h"
#include "engine/vd_engine.h"

#define VD_PROTOCOL_VERSION 1u
#define VD_FRAME_HEADER_BYTES 4u

/* ---- Status codes ------------------------------------------------------------------------
 * The wire's Code enum (the gRPC canonical set), checked against vectord.proto at compile
 * time. One table (proto/wire.c) maps every vd_status to its code; the reverse direction
 * takes the first status listed for a code. */
#define VD_CODE_MAP(X)        \
    X(OK, 0)                  \
    X(CANCELLED, 1)           \
    X(UNKNOWN, 2)             \
    X(INVALID_ARGUMENT, 3)    \
    X(DEADLINE_EXCEEDED, 4)   \
    X(NOT_FOUND, 5)           \
    X(ALREADY_EXISTS, 6)      \
    X(PERMISSION_DENIED, 7)   \
    X(RESOURCE_EXHAUSTED, 8)  \
    X(FAILED_PRECONDITION, 9) \
    X(ABORTED, 10)            \
    X(OUT_OF_RANGE, 11)       \
    X(UNIMPLEMENTED, 12)      \
    X(INTERNAL, 13)           \
    X(UNAVAILABLE, 14)        \
    X(DATA_LOSS, 15)          \
    X(UNAUTHENTICATED, 16)

typedef enum vd_code {
#define X(name, value) VD_CODE_##name = value,
    VD_CODE_MAP(X)
#undef X
} vd_code;

vd_code vd_proto_code_of(vd_status s);
vd_status vd_proto_status_of(vd_code code);
const char *vd_proto_code_name(vd_code code); /* "INVALID_ARGUMENT"; "UNKNOWN_CODE" if unknown */

/* Limits a server enforces and announces in its Hello reply. */
typedef struct vd_limits {
    uint32_t max_frame_bytes; /* largest frame body, both directions */
    uint32_t max_batch;       /* ids per upsert/delete/get, queries per search */
    uint32_t max_k;
    uint32_t max_dim;
    uint32_t max_connections;
    uint32_t idle_timeout_ms; /* 0 = never */
} vd_limits;

/* ---- Frame decoder -----------------------------------------------------------------------
 * Incremental: bytes arrive in any split (one byte at a time, many frames per read) and
 * complete frames come out. Input either goes straight into the decoder's buffer
 * (vd_frame_reserve + vd_frame_commit: zero copy from read(2)) or is copied in
 * (vd_frame_push). The buffer holds at most one partial frame plus whatever one read
 * brought, so memory is bounded by max_frame + the read size.
 * Broken framing (length 0 or > max_frame) is sticky: every later vd_frame_next fails the
 * same way and the connection must be closed. A length over max_frame is refused as soon as
 * its 4 bytes are in, before any of its body is read. */
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
 * for a zero length ("zero-length frame (a frame holds 1..67108864 bytes after its 4-byte
 * length)"). */
vd_status vd_frame_next(vd_frame_decoder *d, const uint8_t **frame, uint32_t *len, vd_err *err);
/* Bytes of a frame begun but not complete (0 at a frame boundary): a peer closing with
 * pending bytes sent a truncated frame. */
size_t vd_frame_pending(const vd_frame_decoder *d);

/* Writes the 4-byte header for a body of `len` bytes. */
static inline void vd_frame_header_put(uint8_t *p, uint32_t len)
{
    vd_put_u32be(p, len);
}

/* ---- Requests ------------------------------------------------------------------------------ */

typedef struct vd_hello {
    uint32_t protocol_version;
    const char *token;       /* "" when not sent */
    const char *client_name; /* "" when not sent */
} vd_hello;

/* A decoded request frame. Everything it points to (names, ids, vectors, payloads) lives in
 * one allocation released by vd_proto_request_free; the arrays borrow the unpacked message's
 * bytes where they are aligned little-endian data (protobuf-c allocates each bytes field,
 * so on little-endian hosts always) and are converted copies otherwise. */
typedef struct vd_proto_request {
    uint64_t request_id;
    int is_hello; /* a Hello: `hello` is set and op.kind is VD_REQ_NONE */
    vd_hello hello;
    vd_request op; /* VD_REQ_NONE when the request names no operation known to this version */
} vd_proto_request;

/* Decodes one frame body. Three outcomes:
 *   VD_OK: *out owns the request;
 *   an error with *out == NULL: the bytes are not a Request (VD_INVALID "frame of 17 bytes is
 *     not a valid vectord.v1.Request") - nothing to answer but the connection;
 *   an error with *out != NULL: a Request whose operation's fields are malformed in wire
 *     terms ("delete: ids hold 12 bytes, not a multiple of 8 (little-endian uint64)", an
 *     unknown metric) - answer (*out)->request_id with err; the caller frees *out. Only
 *     request_id and op.kind are meaningful then.
 * Everything that needs the limits or the collection is the engine's to check. */
vd_status vd_proto_request_decode(const uint8_t *body, size_t len, vd_proto_request **out,
                                  vd_err *err);
void vd_proto_request_free(vd_proto_request *r); /* NULL is a no-op */

/* ---- A filter on its own ---------------------------------------------------------------
 * A serialized vectord.v1.Filter message outside a Request: the embedded module's filters,
 * which the Python client encodes exactly as it would for the wire. The same path as a
 * Request's filter: the depth guard on the raw bytes, protobuf-c, then the tree. On VD_OK
 * *out is the tree and *mem owns it and the strings it borrows (release with
 * vd_proto_filter_free, NULL a no-op); `bytes` is read during the call only. 0 bytes are an
 * empty Filter, which the grammar check refuses as the daemon does. Errors begin with
 * `kind`'s name: VD_INVALID "count: filter: nesting deeper than 16 levels", "search: filter
 * of 7 bytes is not a valid vectord.v1.Filter"; VD_NOMEM. Only the wire's shape is checked:
 * the grammar is vd_filter_check's, which the engine runs for every request. */
vd_status vd_proto_filter_decode(const uint8_t *bytes, size_t len, vd_request_kind kind,
                                 const vd_filter **out, void **mem, vd_err *err);
void vd_proto_filter_free(void *mem);

/* ---- Responses -----------------------------------------------------------------------------
 * Each encoder allocates (vd_malloc) one whole frame, 4-byte header included, into *frame and
 * *len, so the loop thread writes it with one uv_write. A response whose body would exceed
 * max_frame is VD_FULL with the engine's one message for it (vd_engine_err_too_big), and
 * nothing is allocated. */

/* What a server adds to the engine's stats in a StatsResponse. */
typedef struct vd_server_stats {
    const char *server_version;
    uint64_t uptime_s;
    uint32_t connections;
    uint64_t requests_total, errors_total;
    uint64_t writes_committed; /* LMDB transactions */
    uint64_t ops_committed;    /* write requests acknowledged */
    uint32_t reader_threads;
} vd_server_stats;

/* The OK response carrying `res` (any kind but NONE; `srv` is read for STATS only and may be
 * NULL otherwise). The result's arrays are converted to little-endian in place (nothing to
 * do on little-endian hosts) and copied into the frame; release res afterwards as usual. */
vd_status vd_proto_encode_result(uint64_t request_id, vd_result *res, const vd_server_stats *srv,
                                 uint32_t max_frame, uint8_t **frame, size_t *len, vd_err *err);
/* The Hello reply: protocol version, server version, limits. */
vd_status vd_proto_encode_hello(uint64_t request_id, const vd_limits *limits,
                                const char *server_version, uint8_t **frame, size_t *len,
                                vd_err *err);
/* A response carrying only a status. NULL on allocation failure. */
uint8_t *vd_proto_error_frame(uint64_t request_id, vd_code code, const char *msg, size_t *len);

#endif
