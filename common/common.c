/* common/common.c: status messages, error records, the allocation wrapper and logging.
 * The allocation failure counter is a process-wide atomic so that tests running the
 * library from several threads see one consistent countdown. */
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
    snprintf(err->msg, sizeof err->msg, "%.80s: %.116s", head, old);
    return err->code;
}

/* -1: never fail; n >= 0: that many more allocations succeed. */
static atomic_long alloc_budget = -1;

void vd_alloc_fail_after(long n) { atomic_store(&alloc_budget, n); }

static int alloc_allowed(void)
{
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

void vd_log_set_level(vd_log_level min_level) { atomic_store(&log_level, (int)min_level); }

void vd_log(vd_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info ", "warn ", "error"};
    if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed)) return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ ", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, "%s ", names[level & 3]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : (n + m > (int)sizeof line - 2 ? (int)sizeof line - 2 : n + m);
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
