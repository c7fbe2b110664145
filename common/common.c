/* common/common.c: status messages, error records, the allocation wrapper and logging.
 * The allocation failure counters are process-wide atomics so that tests running the
 * library from several threads see one consistent countdown. Log lines are text or JSON
 * (--log-format json); the JSON form is built here, by hand, because a line is one flat
 * object of three strings - a JSON library would add a dependency for one escape loop. */
#include "common/vd_common.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

const char *vd_status_name(vd_status s)
{
    switch (s) {
#define X(name, code, msg) case VD_##name: return #name;
        VD_STATUS_MAP(X)
#undef X
    }
    return "UNKNOWN";
}

const char *vd_status_message(vd_status s)
{
    switch (s) {
#define X(name, code, msg) case VD_##name: return msg;
        VD_STATUS_MAP(X)
#undef X
    }
    return "unknown status";
}

vd_status vd_err_set(vd_err *err, vd_status s, const char *fmt, ...)
{
    if (!err) return s;
    err->code = s;
    if (!fmt) {
        snprintf(err->msg, sizeof err->msg, "%s", vd_status_message(s));
        return s;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return s;
}

vd_status vd_err_prefix(vd_err *err, const char *fmt, ...)
{
    if (!err) return VD_INTERNAL;
    char head[sizeof err->msg], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Precision caps keep the result inside msg (long messages are cut, never overrun). */
    snprintf(err->msg, sizeof err->msg, "%.96s: %.284s", head, old);
    return err->code;
}

/* -1: never fail; n >= 0: that many more allocations succeed. */
static atomic_long alloc_budget = -1;

/* -1: off; n >= 0: that many more allocations succeed, the next fails, then off again. */
static atomic_long alloc_once = -1;

void vd_alloc_fail_after(long n) { atomic_store(&alloc_budget, n); }
void vd_alloc_fail_nth(long n) { atomic_store(&alloc_once, n); }
int vd_alloc_fail_pending(void)
{
    return atomic_load(&alloc_once) >= 0 || atomic_load(&alloc_budget) > 0;
}

static int alloc_allowed(void)
{
    long o = atomic_load_explicit(&alloc_once, memory_order_relaxed);
    while (o >= 0) /* the call that takes it from 0 to -1 is the one that fails */
        if (atomic_compare_exchange_weak(&alloc_once, &o, o - 1)) {
            if (o == 0) return 0;
            break;
        }
    long b = atomic_load_explicit(&alloc_budget, memory_order_relaxed);
    while (b >= 0) {
        if (b == 0) return 0;
        if (atomic_compare_exchange_weak(&alloc_budget, &b, b - 1)) return 1;
    }
    return 1;
}

void *vd_malloc(size_t n) { return alloc_allowed() ? malloc(n ? n : 1) : NULL; }
void *vd_calloc(size_t count, size_t size)
{
    return alloc_allowed() ? calloc(count ? count : 1, size ? size : 1) : NULL;
}
void *vd_realloc(void *p, size_t n) { return alloc_allowed() ? realloc(p, n ? n : 1) : NULL; }
void vd_free(void *p) { free(p); }

char *vd_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = vd_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static atomic_int log_level = VD_LOG_INFO;
static atomic_int log_format = VD_LOG_TEXT;

void vd_log_set_level(vd_log_level min_level) { atomic_store(&log_level, (int)min_level); }
void vd_log_set_format(vd_log_format f) { atomic_store(&log_format, (int)f); }

/* Length of the valid UTF-8 sequence at p (1..4), 0 if the bytes there are not one. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
             : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 2 && c < 0xC2) return 0; /* overlong */
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if (n == 3) {
        unsigned cp = (c & 0x0F) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
        if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    } else if (n == 4) {
        unsigned cp = (c & 0x07) << 18 | (p[1] & 0x3Fu) << 12;
        if (cp < 0x10000 || cp > 0x10FFFF) return 0;
    }
    return n;
}

size_t vd_json_escape(const char *s, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    if (cap == 0) return 0;
    while (*p) {
        char esc[8];
        const char *piece = esc;
        size_t n = utf8_len(p), len;
        if (n == 0) { /* not UTF-8: one replacement character per bad byte */
            piece = "\\ufffd";
            len = 6;
            n = 1;
        } else if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            len = 2;
        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            esc[0] = '\\';
            esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
            len = 2;
        } else if (*p < 0x20) {
            len = (size_t)snprintf(esc, sizeof esc, "\\u%04x", *p);
        } else {
            piece = (const char *)p;
            len = n;
        }
        if (o + len >= cap) break; /* cut at a character boundary */
        memcpy(out + o, piece, len);
        o += len;
        p += n;
    }
    out[o] = 0;
    return o;
}

void vd_log(vd_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info ", "warn ", "error"};
    static const char *json_names[] = {"debug", "info", "warn", "error"};
    if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed)) return;
    char msg[1024], line[2400];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0) msg[0] = 0;
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    int n;
    if (atomic_load_explicit(&log_format, memory_order_relaxed) == VD_LOG_JSON) {
        char body[sizeof line - 96];
        vd_json_escape(msg, body, sizeof body);
        n = snprintf(line, sizeof line, "{\"ts\":\"%s.%03dZ\",\"level\":\"%s\",\"msg\":\"%s\"}",
                     stamp, (int)(ts.tv_nsec / 1000000), json_names[level & 3], body);
    } else {
        n = snprintf(line, sizeof line, "%sZ %s %s", stamp, names[level & 3], msg);
    }
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(2, line, (size_t)n); /* one write per line: lines never interleave */
    (void)w;
}

uint64_t vd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
