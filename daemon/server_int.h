/* daemon/server_int.h: the server's internals shared by its files.
 *
 *   server.c       the libuv loop thread: listener, connections, framing, Hello, dispatch,
 *                  response writes, backpressure, idle timeout, signals and shutdown
 *   jobq.c         the locked job queues between the loop and the worker threads
 *   reader_pool.c  reader threads: search, get, list, info, count, stats
 *   writer.c       the writer thread: group commit of create/drop/upsert/delete
 *   reply.c        building response frames (any thread)
 *
 * Threads and ownership: a vd_job is created on the loop thread, owned by exactly one queue
 * or thread at a time (loop -> reader or writer queue -> worker -> done list -> loop), and
 * freed on the loop thread. Workers never touch a vd_conn or any libuv handle: they only
 * fill job->frame and call vd_server__complete(), which appends to the done list under
 * done_mu and wakes the loop with uv_async_send. Counters read by stats are atomics. */
#ifndef VD_SERVER_INT_H
#define VD_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "common/vd_common.h"
#include "proto/vd_proto.h"
#include "storage/vd_storage.h"

typedef struct vd_server_config {
    const char *data_dir;
    char host[256];
    int port;
    uint32_t threads;       /* reader threads and index worker threads */
    const char *token_file; /* NULL: no authentication */
    vd_limits limits;
    uint32_t max_inflight;   /* requests in flight per connection before reads pause */
    size_t max_output_bytes; /* queued response bytes per connection before reads pause */
    vd_log_level log_level;
} vd_server_config;

/* Runs the server until SIGINT/SIGTERM; returns the process exit status. */
int vd_server_run(const vd_server_config *cfg);

typedef struct vd_conn vd_conn;
typedef struct vd_server vd_server;

typedef struct vd_job {
    struct vd_job *next;
    vd_server *srv;
    vd_conn *conn;      /* loop thread only */
    vd_pb_request *req; /* owned; freed by the worker once answered */
    uint64_t request_id;
    size_t req_bytes; /* frame size, for per-connection accounting */
    uint64_t t_start_ns;
    /* result: a complete response frame (header + body), owned */
    uint8_t *frame;
    size_t frame_len;
    int failed; /* the response carries a non-OK status */
    /* writer scratch (writer.c) */
    vd_op op;
    uint64_t *ids;
    vd_floats vecs;
    const uint8_t **payloads;
    uint32_t *payload_lens;
} vd_job;

/* A blocking FIFO of jobs (jobq.c). Closing wakes every waiter; pop then drains what is left
 * and returns NULL only when the queue is closed and empty. */
typedef struct vd_jobq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    vd_job *head, *tail;
    size_t n;
    int closed;
} vd_jobq;

int vd_jobq_init(vd_jobq *q);
void vd_jobq_destroy(vd_jobq *q);
void vd_jobq_push(vd_jobq *q, vd_job *j);
vd_job *vd_jobq_pop(vd_jobq *q);                 /* blocks */
vd_job *vd_jobq_pop_all(vd_jobq *q, size_t max); /* blocks; up to max jobs as a list */
void vd_jobq_close(vd_jobq *q);

struct vd_server {
    vd_server_config cfg;
    vd_store *store;
    uint8_t *token; /* NULL without --token-file */
    size_t token_len;
    uint64_t start_ns;

    /* loop thread */
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_signal_t sig_int, sig_term;
    uv_async_t done_async;
    uv_timer_t sweep_timer;
    uv_timer_t stop_timer;
    vd_conn *conns;   /* doubly linked list of open connections */
    uint32_t n_conns; /* accepted and counted against max_connections */
    uint64_t next_conn_id;
    uint64_t inflight_total;
    uint64_t inflight_bytes_total;
    int stopping; /* a signal arrived: no new work, drain, then close */
    int closing_handles;
    int stop_signal;
    /* log rate limit for client errors (loop thread) */
    uint64_t log_window_ns;
    uint32_t log_in_window;
    uint64_t log_suppressed;
    uint8_t discard[16384]; /* input of connections being closed lands here */

    /* between threads */
    pthread_mutex_t done_mu;
    vd_job *done_head, *done_tail;
    vd_jobq readq, writeq;
    pthread_t *readers;
    uint32_t n_readers;
    pthread_t writer;
    int writer_started;

    /* statistics (any thread) */
    atomic_uint_fast64_t requests_total, errors_total, writes_committed, ops_committed;
    atomic_uint_fast32_t connections;
};

/* ---- worker side ---- */
void *vd_reader__main(void *srv);
void *vd_writer__main(void *srv);
void vd_reader__execute(vd_server *srv, vd_job *j);
/* Hands a finished job back to the loop thread (any thread). */
void vd_server__complete(vd_server *srv, vd_job *j);

/* ---- replies (reply.c, any thread) ----
 * Each sets j->frame to a complete frame; a response too large for max_frame is replaced by
 * a RESOURCE_EXHAUSTED error. On allocation failure j->frame stays NULL and the loop closes
 * the connection (the client sees EOF, never a wrong answer). */
void vd_reply(vd_server *srv, vd_job *j, Vectord__V1__Response *r);
void vd_reply_error(vd_server *srv, vd_job *j, vd_pb_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void vd_reply_status(vd_server *srv, vd_job *j, const vd_err *err); /* code from err->code */
/* Wire <-> store metric. */
Vectord__V1__Metric vd_metric_to_wire(vd_metric m);
int vd_metric_from_wire(Vectord__V1__Metric w, vd_metric *out); /* 0 if unknown */
void vd_info_to_wire(const vd_collection_info *in, Vectord__V1__CollectionInfo *out);

#endif
