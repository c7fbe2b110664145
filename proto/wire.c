/* proto/wire.c: what both directions of the codec share - the status-code table, the
 * metric and id type enums, the allocator protobuf-c unpacks with, and the layout facts the
 * zero-copy paths rely on.
 *
 * Our own enums mirror the generated ones so no other module needs the generated header;
 * the static assertions below fail the build the day vectord.proto and this file disagree.
 * Unpacking allocates through vd_malloc, so the allocation-failure tests reach it. */
#include "proto/proto_int.h"

#include <stddef.h>

_Static_assert(sizeof(float) == 4, "float32 wire format");

/* Payload arrays cross the codec as they are: vd_bytes is ProtobufCBinaryData's layout. */
_Static_assert(sizeof(vd_bytes) == sizeof(ProtobufCBinaryData) &&
                   offsetof(vd_bytes, len) == offsetof(ProtobufCBinaryData, len) &&
                   offsetof(vd_bytes, data) == offsetof(ProtobufCBinaryData, data),
               "vd_bytes must have ProtobufCBinaryData's layout");

#define X(name, value)                                                                             \
    _Static_assert((int)VD_CODE_##name == (int)VECTORD__V1__CODE__##name && value >= 0,            \
                   "vd_code " #name " differs from vectord.proto");
VD_CODE_MAP(X)
#undef X

/* ---- Status codes ------------------------------------------------------------------------ */

/* The reverse lookup takes the first row with a code: FULL before NOMEM, INTERNAL before IO. */
static const struct {
    vd_status status;
    vd_code code;
} code_table[] = {
    {VD_OK, VD_CODE_OK},
    {VD_INVALID, VD_CODE_INVALID_ARGUMENT},
    {VD_NOTFOUND, VD_CODE_NOT_FOUND},
    {VD_EXISTS, VD_CODE_ALREADY_EXISTS},
    {VD_FULL, VD_CODE_RESOURCE_EXHAUSTED},
    {VD_NOMEM, VD_CODE_RESOURCE_EXHAUSTED},
    {VD_UNAUTHENTICATED, VD_CODE_UNAUTHENTICATED},
    {VD_DENIED, VD_CODE_PERMISSION_DENIED},
    {VD_UNAVAILABLE, VD_CODE_UNAVAILABLE},
    {VD_VERSION, VD_CODE_FAILED_PRECONDITION},
    {VD_PRECONDITION, VD_CODE_FAILED_PRECONDITION},
    {VD_CORRUPT, VD_CODE_DATA_LOSS},
    {VD_INTERNAL, VD_CODE_INTERNAL},
    {VD_IO, VD_CODE_INTERNAL},
};

vd_code vd_proto_code_of(vd_status s)
{
    for (size_t i = 0; i < VD_ARRAY_LEN(code_table); i++)
        if (code_table[i].status == s) return code_table[i].code;
    return VD_CODE_INTERNAL;
}

vd_status vd_proto_status_of(vd_code code)
{
    for (size_t i = 0; i < VD_ARRAY_LEN(code_table); i++)
        if (code_table[i].code == code) return code_table[i].status;
    return VD_INTERNAL;
}

const char *vd_proto_code_name(vd_code code)
{
    switch (code) {
#define X(name, value)                                                                             \
    case VD_CODE_##name:                                                                           \
        return #name;
        VD_CODE_MAP(X)
#undef X
    }
    return "UNKNOWN_CODE";
}

/* ---- Metrics ------------------------------------------------------------------------------- */

Vectord__V1__Metric vd_proto__metric_to_wire(vd_metric m)
{
    switch (m) {
    case VD_METRIC_L2:
        return VECTORD__V1__METRIC__L2;
    case VD_METRIC_COSINE:
        return VECTORD__V1__METRIC__COSINE;
    case VD_METRIC_IP:
        return VECTORD__V1__METRIC__IP;
    }
    return VECTORD__V1__METRIC__METRIC_UNSPECIFIED;
}

int vd_proto__metric_from_wire(Vectord__V1__Metric w, vd_metric *out)
{
    switch (w) {
    case VECTORD__V1__METRIC__L2:
        *out = VD_METRIC_L2;
        return 1;
    case VECTORD__V1__METRIC__COSINE:
        *out = VD_METRIC_COSINE;
        return 1;
    case VECTORD__V1__METRIC__IP:
        *out = VD_METRIC_IP;
        return 1;
    default:
        return 0;
    }
}

/* ---- Id types ------------------------------------------------------------------------------ */

Vectord__V1__IdType vd_proto__id_type_to_wire(vd_id_type t)
{
    return t == VD_ID_STR ? VECTORD__V1__ID_TYPE__ID_TYPE_STR : VECTORD__V1__ID_TYPE__ID_TYPE_INT;
}

int vd_proto__id_type_from_wire(Vectord__V1__IdType w, vd_id_type *out)
{
    switch (w) {
    case VECTORD__V1__ID_TYPE__ID_TYPE_INT:
        *out = VD_ID_INT;
        return 1;
    case VECTORD__V1__ID_TYPE__ID_TYPE_STR:
        *out = VD_ID_STR;
        return 1;
    default:
        return 0;
    }
}

/* ---- Allocation ----------------------------------------------------------------------------- */

_Thread_local int vd_proto__alloc_failed;

static void *pb_alloc(void *data, size_t size)
{
    (void)data;
    void *p = vd_malloc(size);
    if (!p) vd_proto__alloc_failed = 1;
    return p;
}

static void pb_free(void *data, void *p)
{
    (void)data;
    vd_free(p);
}

ProtobufCAllocator vd_proto_allocator = {pb_alloc, pb_free, NULL};

Vectord__V1__Quantization vd_proto__quant_to_wire(vd_quantization q)
{
    return q == VD_QUANT_INT8 ? VECTORD__V1__QUANTIZATION__QUANTIZATION_INT8
                              : VECTORD__V1__QUANTIZATION__QUANTIZATION_NONE;
}

int vd_proto__quant_from_wire(Vectord__V1__Quantization w, vd_quantization *out)
{
    switch (w) {
    case VECTORD__V1__QUANTIZATION__QUANTIZATION_NONE:
        *out = VD_QUANT_NONE;
        return 1;
    case VECTORD__V1__QUANTIZATION__QUANTIZATION_INT8:
        *out = VD_QUANT_INT8;
        return 1;
    default:
        return 0;
    }
}
