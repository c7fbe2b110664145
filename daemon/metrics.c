/* daemon/metrics.c: the server's metrics - a registry of atomics that the loop thread and the
 * workers update without a lock, and its rendering as the Prometheus text format (0.0.4).
 *
 * Layout: fixed arrays indexed by operation (VD_REQUEST_MAP's kinds, plus hello) and wire
 * code, so counting a request is one relaxed atomic add and a new request kind is counted
 * (and named, by vd_request_name) the day it is added to the table. Histograms have fixed
 * bounds and non-cumulative buckets; rendering sums them into Prometheus' cumulative `le`
 * series. A scrape reads each counter once; counters of one scrape are not a consistent
 * snapshot of each other (a request may be counted in requests_total and not yet in its
 * histogram), which is what Prometheus expects of counters anyway.
 *
 * What only other modules know is asked at scrape time through their any-thread calls:
 * collections (vd_store_list: points, stored and in-memory bytes), the LMDB environment
 * (vd_store_info_get: map, file, used bytes), the queues' lengths. The store pointer is
 * published once the data directory is open (a scrape during the load shows the load's
 * progress and no collections) and the endpoint is stopped before the store is closed.
 * Process figures (resident memory, open descriptors) come from /proc/self when it exists.
 *
 * Rejected: a metrics library (prometheus-client-c is not in Debian; the format is a few
 * lines of text); a lock around the registry (scrapes would stall requests); per-connection
 * series (unbounded label sets). */
#include "daemon/server_int.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "daemon/daemon_int.h"

/* Request latency and commit times, in ns: 100 us .. 10 s. */
static const uint64_t time_bounds[] = {
    100000,    250000,    500000,     1000000,    2500000,    5000000,
    10000000,  25000000,  50000000,   100000000,  250000000,  500000000,
    1000000000, 2500000000u, 5000000000u, 10000000000u};
/* Writes per group commit. */
static const uint64_t size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

_Static_assert(VD_ARRAY_LEN(time_bounds) <= VD_HIST_MAX, "histogram bounds");
_Static_assert(VD_CODE_UNAUTHENTICATED + 1 == VD_METRICS_CODES, "one counter per wire code");

static void hist_init(vd_hist *h, const uint64_t *bounds, size_t n)
{
    h->bounds = bounds;
    h->n_bounds = n;
}

void vd_metrics_init(vd_metrics *m)
{
    memset(m, 0, sizeof *m);
    for (unsigned op = 0; op < VD_METRICS_OPS; op++)
        hist_init(&m->latency[op], time_bounds, VD_ARRAY_LEN(time_bounds));
    hist_init(&m->group_size, size_bounds, VD_ARRAY_LEN(size_bounds));
    hist_init(&m->commit_ns, time_bounds, VD_ARRAY_LEN(time_bounds));
    hist_init(&m->sync_ns, time_bounds, VD_ARRAY_LEN(time_bounds));
}

void vd_hist_observe(vd_hist *h, uint64_t v)
{
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void vd_metrics_request(vd_metrics *m, unsigned op, vd_code code, uint64_t ns)
{
    if (op >= VD_METRICS_OPS) op = VD_REQ_NONE;
    unsigned c = (unsigned)code < VD_METRICS_CODES ? (unsigned)code : VD_CODE_UNKNOWN;
    atomic_fetch_add_explicit(&m->requests[op][c], 1, memory_order_relaxed);
    vd_hist_observe(&m->latency[op], ns);
}

void vd_metrics_set_state(vd_metrics *m, vd_server_state s)
{
    atomic_store(&m->state, (int)s);
}

vd_server_state vd_metrics_state(const vd_metrics *m)
{
    return (vd_server_state)atomic_load(&((vd_metrics *)m)->state);
}

/* ---- text ------------------------------------------------------------------------------- */

void vd_text_printf(vd_text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->p && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 16384;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *p = vd_realloc(t->p, cap);
        if (!p) {
            t->failed = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

static const char *op_name(unsigned op)
{
    return op == VD_METRICS_OP_HELLO ? "hello" : vd_request_name((vd_request_kind)op);
}

static void head(vd_text *t, const char *name, const char *type, const char *help)
{
    vd_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(vd_text *t, const char *name, const char *help, double v)
{
    head(t, name, "gauge", help);
    vd_text_printf(t, "%s %.15g\n", name, v);
}

static void counter(vd_text *t, const char *name, const char *help, uint64_t v)
{
    head(t, name, "counter", help);
    vd_text_printf(t, "%s %" PRIu64 "\n", name, v);
}

/* One histogram series: `labels` is "" or `op="search",`; values divided by `scale`. */
static void hist_series(vd_text *t, const char *name, const char *labels, vd_hist *h,
                        double scale)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->n_bounds)
            vd_text_printf(t, "%s_bucket{%sle=\"%.6g\"} %" PRIu64 "\n", name, labels,
                           (double)h->bounds[i] / scale, cum);
        else
            vd_text_printf(t, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, cum);
    }
    /* Without braces when there are no labels: `name_sum{}` is not valid exposition text. */
    size_t ll = strlen(labels);
    if (ll) {
        vd_text_printf(t, "%s_sum{%.*s} %.9g\n", name, (int)ll - 1, labels,
                       (double)atomic_load(&h->sum) / scale);
        vd_text_printf(t, "%s_count{%.*s} %" PRIu64 "\n", name, (int)ll - 1, labels, cum);
    } else {
        vd_text_printf(t, "%s_sum %.9g\n%s_count %" PRIu64 "\n", name,
                       (double)atomic_load(&h->sum) / scale, name, cum);
    }
}

static void render_requests(vd_text *t, vd_metrics *m)
{
    head(t, "vectord_requests_total", "counter",
         "Requests answered, by operation and status code.");
    for (unsigned op = 0; op < VD_METRICS_OPS; op++)
        for (unsigned c = 0; c < VD_METRICS_CODES; c++) {
            uint64_t v = atomic_load_explicit(&m->requests[op][c], memory_order_relaxed);
            /* OK of every operation always, other codes once they happened: stable series
             * without 200 rows of zeros. */
            if (v || (c == VD_CODE_OK && op != VD_REQ_NONE))
                vd_text_printf(t, "vectord_requests_total{op=\"%s\",code=\"%s\"} %" PRIu64 "\n",
                               op_name(op), vd_proto_code_name((vd_code)c), v);
        }
    head(t, "vectord_request_duration_seconds", "histogram",
         "Time from a request's decoding to its response being ready, by operation.");
    for (unsigned op = 0; op < VD_METRICS_OPS; op++) {
        if (op == VD_REQ_NONE) continue;
        char labels[64];
        snprintf(labels, sizeof labels, "op=\"%s\",", op_name(op));
        hist_series(t, "vectord_request_duration_seconds", labels, &m->latency[op], 1e9);
    }
}

static void render_server(vd_text *t, vd_server *srv)
{
    vd_metrics *m = &srv->metrics;
    vd_server_state st = vd_metrics_state(m);
    head(t, "vectord_build_info", "gauge", "The server's version (always 1).");
    vd_text_printf(t, "vectord_build_info{version=\"%s\"} 1\n", VD_VERSION_STRING);
    gauge(t, "vectord_ready", "1 once the data directory is loaded and the data port listens.",
          st == VD_STATE_READY);
    gauge(t, "vectord_state", "0 starting, 1 loading the data directory, 2 ready, 3 stopping.",
          st);
    gauge(t, "vectord_load_points_done", "Points loaded so far by the start-up load.",
          (double)atomic_load(&m->load_done));
    gauge(t, "vectord_load_points_total", "Points the start-up load has to load.",
          (double)atomic_load(&m->load_total));
    gauge(t, "vectord_uptime_seconds", "Seconds since the process started.",
          (double)(vd_now_ns() - srv->start_ns) / 1e9);
    render_requests(t, m);
    gauge(t, "vectord_requests_in_flight", "Requests received and not yet answered.",
          (double)atomic_load(&srv->inflight_total));
    counter(t, "vectord_slow_requests_total", "Requests slower than --slow-query-ms.",
            atomic_load(&m->slow_requests));
    gauge(t, "vectord_connections_open", "Client connections open on the data port.",
          (double)atomic_load(&srv->connections));
    counter(t, "vectord_connections_accepted_total", "Connections accepted on the data port.",
            atomic_load(&m->connections_accepted));
    head(t, "vectord_connections_refused_total", "counter",
         "Connections refused, by reason (max_connections, shutting_down).");
    static const char *const reasons[VD_REFUSED_KINDS] = {"max_connections", "shutting_down"};
    for (int r = 0; r < VD_REFUSED_KINDS; r++)
        vd_text_printf(t, "vectord_connections_refused_total{reason=\"%s\"} %" PRIu64 "\n",
                       reasons[r], (uint64_t)atomic_load(&m->refused[r]));
    if (srv->tls) {
        counter(t, "vectord_tls_handshakes_total", "TLS handshakes completed.",
                atomic_load(&m->tls_handshakes));
        counter(t, "vectord_tls_handshake_failures_total",
                "TLS handshakes that failed (bad or missing client certificate, old "
                "protocol, not TLS).", atomic_load(&m->tls_failures));
    }
    gauge(t, "vectord_writer_queue_depth", "Write requests waiting for the writer thread.",
          (double)vd_jobq_len(&srv->writeq));
    gauge(t, "vectord_reader_queue_depth", "Read requests waiting for a reader thread.",
          (double)vd_jobq_len(&srv->readq));
    gauge(t, "vectord_reader_threads", "Reader threads.", srv->n_readers);
    head(t, "vectord_reader_busy_seconds_total", "counter",
         "Time the reader threads spent executing reads (busy fraction: its rate / threads).");
    vd_text_printf(t, "vectord_reader_busy_seconds_total %.9f\n",
                   (double)atomic_load(&m->reader_busy_ns) / 1e9);
}

static void render_writes(vd_text *t, vd_metrics *m)
{
    head(t, "vectord_group_commit_size", "histogram", "Write requests per group commit.");
    hist_series(t, "vectord_group_commit_size", "", &m->group_size, 1);
    head(t, "vectord_commit_duration_seconds", "histogram",
         "Time of a group commit: applying its writes, persisting the graph, committing.");
    hist_series(t, "vectord_commit_duration_seconds", "", &m->commit_ns, 1e9);
    head(t, "vectord_commit_sync_duration_seconds", "histogram",
         "Time of the LMDB commit of a group: page writes and fsync.");
    hist_series(t, "vectord_commit_sync_duration_seconds", "", &m->sync_ns, 1e9);
    counter(t, "vectord_commits_failed_total", "Group commits that failed (nothing written).",
            atomic_load(&m->commits_failed));
}

/* Collections and the LMDB environment: only once the store is open. */
static vd_status render_store(vd_text *t, vd_store *st)
{
    vd_collection_info *list = NULL;
    size_t n = 0;
    vd_status s = vd_store_list(st, &list, &n, NULL);
    if (s != VD_OK) return s;
    static const struct {
        const char *name, *help;
        size_t off;
    } per[] = {
        {"vectord_collection_points", "Points in a collection.",
         offsetof(vd_collection_info, count)},
        {"vectord_collection_disk_bytes", "Bytes a collection's records take on disk (estimate).",
         offsetof(vd_collection_info, bytes_disk)},
        {"vectord_collection_memory_bytes", "Bytes a collection's in-memory index holds.",
         offsetof(vd_collection_info, bytes_memory)},
    };
    gauge(t, "vectord_collections", "Collections.", (double)n);
    for (size_t k = 0; k < VD_ARRAY_LEN(per); k++) {
        head(t, per[k].name, "gauge", per[k].help);
        /* Names are [A-Za-z0-9_-] (storage's rule): nothing to escape in a label. */
        for (size_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&list[i] + per[k].off, sizeof v);
            vd_text_printf(t, "%s{collection=\"%s\"} %" PRIu64 "\n", per[k].name,
                           list[i].params.name, v);
        }
    }
    vd_free(list);
    vd_store_info si;
    if ((s = vd_store_info_get(st, &si, NULL)) != VD_OK) return s;
    gauge(t, "vectord_lmdb_map_bytes", "Size of the LMDB map (address space).",
          (double)si.map_bytes);
    gauge(t, "vectord_lmdb_file_bytes", "Size of the data file, data.mdb.", (double)si.file_bytes);
    gauge(t, "vectord_lmdb_used_bytes", "Bytes of the data file's pages in use.",
          (double)si.used_bytes);
    vd_store_counters sc;
    vd_store_counters_get(st, &sc);
    counter(t, "vectord_lmdb_commits_total", "LMDB write transactions committed.", sc.commits);
    return VD_OK;
}

static void render_process(vd_text *t)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &pages, &resident) == 2)
            gauge(t, "process_resident_memory_bytes", "Resident memory size in bytes.",
                  (double)resident * (double)sysconf(_SC_PAGESIZE));
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = -1; /* the descriptor opendir itself holds */
        while (readdir(d))
            n++;
        closedir(d);
        gauge(t, "process_open_fds", "Open file descriptors.", (double)(n - 2)); /* . and .. */
    }
}

vd_status vd_metrics_render(vd_server *srv, vd_text *out)
{
    memset(out, 0, sizeof *out);
    render_server(out, srv);
    render_writes(out, &srv->metrics);
    vd_store *st = atomic_load_explicit(&srv->published_store, memory_order_acquire);
    if (st && render_store(out, st) != VD_OK) out->failed = 1;
    render_process(out);
    if (!out->failed) return VD_OK;
    vd_free(out->p);
    memset(out, 0, sizeof *out);
    return VD_NOMEM;
}
