/* common/vd_common.h: what every module shares and nothing else: the status enum and its
 * messages, the caller-owned error record, the allocation wrapper (so tests can fail the
 * Nth allocation), logging, and little-endian helpers for stored and wire data.
 * Threads: everything here may be called from any thread. */
#ifndef VD_COMMON_H
#define VD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One table generates the enum, the names and the default messages. The names are also the
 * wire status names (docs/protocol.md maps each to its gRPC-style code). */
#define VD_STATUS_MAP(X)                                                   \
    X(OK, 0, "success")                                                    \
    X(NOMEM, -1, "out of memory")                                          \
    X(INVALID, -2, "invalid argument")                                     \
    X(NOTFOUND, -3, "not found")                                           \
    X(EXISTS, -4, "already exists")                                        \
    X(CORRUPT, -5, "stored data failed validation")                        \
    X(IO, -6, "storage I/O error")                                         \
    X(FULL, -7, "resource exhausted")                                      \
    X(VERSION, -8, "unsupported format or protocol version")               \
    X(UNAUTHENTICATED, -9, "unauthenticated")                              \
    X(UNAVAILABLE, -10, "unavailable")                                     \
    X(INTERNAL, -11, "internal error")                                     \
    X(PRECONDITION, -12, "failed precondition")                            \
    X(DENIED, -13, "permission denied")

typedef enum vd_status {
#define X(name, code, msg) VD_##name = code,
    VD_STATUS_MAP(X)
#undef X
} vd_status;

/* Caller-owned error record. Every function taking a `vd_err *` accepts NULL. On failure the
 * callee fills `msg` with one line naming what was wrong. */
typedef struct vd_err {
    vd_status code;
    char msg[384]; /* room for a long data directory path in a message */
} vd_err;

/* Fills *err (if not NULL) with status s and a printf-style message; returns s. */
vd_status vd_err_set(vd_err *err, vd_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes an existing message in place: "context: old message". Returns err->code. */
vd_status vd_err_prefix(vd_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *vd_status_name(vd_status s);    /* "NOTFOUND"; "UNKNOWN" for other values */
const char *vd_status_message(vd_status s); /* "not found" */

/* Allocation wrapper. All project allocations go through these so that a test can make the
 * Nth call fail (vd_alloc_fail_after). vd_free(NULL) is a no-op. */
void *vd_malloc(size_t n);
void *vd_calloc(size_t count, size_t size);
void *vd_realloc(void *p, size_t n);
char *vd_strdup(const char *s);
void vd_free(void *p);
/* Test hook: the next n allocations succeed, then every one fails until reset with -1. */
void vd_alloc_fail_after(long n);
/* Test hook: the next n allocations succeed, the one after fails, and every later one
 * succeeds again (a transient failure, as SQLite's "benign" OOM tests inject); -1 cancels.
 * vd_alloc_fail_pending() is 1 while the failure asked for by either hook has not happened
 * yet. The two hooks are independent. */
void vd_alloc_fail_nth(long n);
int vd_alloc_fail_pending(void);

/* Logging: one line per event to stderr, "2026-11-22T03:49:17Z info  message", or with
 * VD_LOG_JSON one JSON object per line, {"ts":"2026-11-22T03:49:17.123Z","level":"info",
 * "msg":"message"} (the message escaped; bytes that are not UTF-8 become U+FFFD).
 * Thread-safe (one write(2) per line). */
typedef enum vd_log_level { VD_LOG_DEBUG, VD_LOG_INFO, VD_LOG_WARN, VD_LOG_ERROR } vd_log_level;
typedef enum vd_log_format { VD_LOG_TEXT, VD_LOG_JSON } vd_log_format;
void vd_log_set_level(vd_log_level min_level);
void vd_log_set_format(vd_log_format f);
/* The JSON string body of s (no quotes) into out[0..cap), always NUL-terminated, cut at a
 * character boundary when it does not fit; returns the length written. Pure. */
size_t vd_json_escape(const char *s, char *out, size_t cap);
void vd_log(vd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Little-endian and big-endian helpers for stored records and wire frames. */
static inline void vd_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t vd_get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void vd_put_u64le(uint8_t *p, uint64_t v)
{
    vd_put_u32le(p, (uint32_t)v);
    vd_put_u32le(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t vd_get_u64le(const uint8_t *p)
{
    return (uint64_t)vd_get_u32le(p) | (uint64_t)vd_get_u32le(p + 4) << 32;
}
static inline void vd_put_u32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t vd_get_u32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline void vd_put_u64be(uint8_t *p, uint64_t v)
{
    vd_put_u32be(p, (uint32_t)(v >> 32));
    vd_put_u32be(p + 4, (uint32_t)v);
}
static inline uint64_t vd_get_u64be(const uint8_t *p)
{
    return (uint64_t)vd_get_u32be(p) << 32 | vd_get_u32be(p + 4);
}

/* Monotonic clock in nanoseconds (for stats, timeouts and benchmarks). */
uint64_t vd_now_ns(void);

#define VD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Names of a small enum whose values are 0..n-1 (metric, id type, quantization): the name of
 * value v ("unknown" outside the table), and the value named s (-1 if none or s is NULL). */
static inline const char *vd_enum_name(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "unknown";
}
static inline int vd_enum_parse(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0) return (int)i;
    return -1;
}

#endif
