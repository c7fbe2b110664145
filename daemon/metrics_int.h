/* daemon/metrics_int.h: the server's monitoring numbers and the HTTP endpoint that serves them.
 *
 *   metrics.c  the registry (counters, gauges, histograms: atomics only), observation
 *              helpers for the loop and worker threads, and the Prometheus text rendering
 *   http.c     GET /metrics, /healthz, /livez, /readyz over GNU libmicrohttpd on
 *              --metrics-listen (never the data port)
 *
 * Threads: libmicrohttpd answers on threads of its own. They read only atomics, the store's
 * any-thread calls (vd_store_list, vd_store_info_get, vd_store_counters_get) and the queue
 * lengths (under the queues' own mutexes) - never a libuv handle, a connection or the
 * writer's state. Every observe call is lock-free and may come from any thread. */
#ifndef VD_METRICS_INT_H
#define VD_METRICS_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/vd_common.h"
#include "engine/vd_engine.h"
#include "proto/vd_proto.h"

/* Operations counted: every request kind of VD_REQUEST_MAP ("none" for requests naming no
 * known operation) and hello, which is no engine request. */
#define VD_METRICS_OP_HELLO VD_REQ_KINDS
#define VD_METRICS_OPS (VD_REQ_KINDS + 1)
#define VD_METRICS_CODES 17 /* the wire's vd_code values 0..16 */
#define VD_HIST_MAX 20

/* A histogram with fixed upper bounds (`bounds`, ascending, in the observed unit: ns or a
 * count); counts[i] counts observations <= bounds[i] and > bounds[i-1], counts[n_bounds] the
 * rest (+Inf). */
typedef struct vd_hist {
    const uint64_t *bounds;
    size_t n_bounds;
    _Atomic uint64_t counts[VD_HIST_MAX + 1];
    _Atomic uint64_t sum, count;
} vd_hist;

/* Server lifecycle as /readyz and vectord_state report it. */
typedef enum vd_server_state {
    VD_STATE_STARTING = 0, /* reading tokens, certificates */
    VD_STATE_LOADING = 1,  /* opening the data directory */
    VD_STATE_READY = 2,    /* listening on the data port */
    VD_STATE_STOPPING = 3, /* a signal arrived */
} vd_server_state;

typedef enum vd_refusal {
    VD_REFUSED_MAX_CONNECTIONS,
    VD_REFUSED_SHUTTING_DOWN,
    VD_REFUSED_KINDS
} vd_refusal;

typedef struct vd_metrics {
    _Atomic uint64_t requests[VD_METRICS_OPS][VD_METRICS_CODES];
    vd_hist latency[VD_METRICS_OPS]; /* ns, from the frame's decode to its response frame */
    _Atomic uint64_t connections_accepted, refused[VD_REFUSED_KINDS];
    _Atomic uint64_t tls_handshakes, tls_failures, tls_plaintext;
    vd_hist group_size;   /* writes per group commit */
    vd_hist commit_ns;    /* the whole group: apply, persist, LMDB commit */
    vd_hist sync_ns;      /* the LMDB commit alone: page writes and fsync */
    _Atomic uint64_t commits_failed;
    _Atomic uint64_t reader_busy_ns;
    _Atomic uint64_t slow_requests;
    _Atomic uint64_t load_done, load_total; /* points of the data directory's load */
    _Atomic int state;                      /* vd_server_state */
} vd_metrics;

void vd_metrics_init(vd_metrics *m);
void vd_hist_observe(vd_hist *h, uint64_t v);
/* One answered request: its operation (a vd_request_kind or VD_METRICS_OP_HELLO), the wire
 * code of its response, and the time it took. Any thread. */
void vd_metrics_request(vd_metrics *m, unsigned op, vd_code code, uint64_t ns);
void vd_metrics_set_state(vd_metrics *m, vd_server_state s);
vd_server_state vd_metrics_state(const vd_metrics *m);

/* ---- rendering and the endpoint -------------------------------------------------------- */
struct vd_server;

/* A growing text buffer (vd_malloc); `failed` sticks after an allocation failure. */
typedef struct vd_text {
    char *p;
    size_t len, cap;
    int failed;
} vd_text;
void vd_text_printf(vd_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The whole Prometheus text exposition (format 0.0.4) of srv into *out (the caller frees
 * out->p with vd_free). VD_NOMEM when the text could not be built. Any thread. */
vd_status vd_metrics_render(struct vd_server *srv, vd_text *out);

typedef struct vd_http vd_http; /* opaque: the running HTTP endpoint */
/* Starts serving srv's endpoints on host:port (an IP address; port 0 picks one, logged) on
 * libmicrohttpd's own thread. The server must outlive vd_http_stop(). */
vd_status vd_http_start(struct vd_server *srv, const char *host, int port, vd_http **out,
                        vd_err *err);
/* Stops answering and joins the HTTP thread; no callback runs after it returns. NULL: no-op. */
void vd_http_stop(vd_http *h);

#endif
