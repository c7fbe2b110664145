/* daemon/server_int.h: the server's internals shared by its files.
 *
 *   server.c       the libuv loop thread: listener, connections, framing, decoding (proto/),
 *                  Hello, routing, response writes, backpressure, idle timeout, shutdown
 *   jobq.c         the locked job queues between the loop and the worker threads, and the
 *                  hand-back of a finished job (calls no other daemon file)
 *   reader_pool.c  reader threads: run a read through the engine, answer it
 *   writer.c       the writer thread: prepare, group commit and answer writes (engine/)
 *   reply.c        a job's response frame from an engine result or an error (proto/),
 *                  the request's metrics and the slow-request log
 *   metrics.c, http.c   monitoring: counters and the --metrics-listen endpoint (metrics_int.h)
 *   tls.c, auth.c       TLS sessions of the data port, Hello's tokens (tls_int.h)
 *
 * The daemon deals in domain values only: proto/ decodes frames into vd_request values and
 * encodes vd_result values into frames; engine/ executes them against the store.
 *
 * Threads and ownership: a vd_job is created on the loop thread, owned by exactly one queue
 * or thread at a time (loop -> reader or writer queue -> worker -> done queue -> loop), and
 * freed on the loop thread. Workers never touch a vd_conn or any libuv handle: they only
 * fill job->frame and call vd_job_done(), which frees the request, queues the job on the
 * done queue and wakes the loop with uv_async_send. Counters read by stats are atomics. */
#ifndef VD_SERVER_INT_H
#define VD_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "common/vd_common.h"
#include "daemon/metrics_int.h"
#include "daemon/tls_int.h"
#include "engine/vd_engine.h"
#include "proto/vd_proto.h"
#include "storage/vd_storage.h"

typedef struct vd_server_config {
    const char *data_dir;
    char host[256];
    int port;
    uint32_t threads;       /* reader threads and index worker threads */
    const char *token_file;      /* NULL: no authentication */
    const char *read_token_file; /* NULL: no read-only token (needs token_file) */
    vd_limits limits;
    uint32_t max_inflight;   /* requests in flight per connection before reads pause */
    size_t max_output_bytes; /* queued response bytes per connection before reads pause */
    vd_log_level log_level;
    vd_log_format log_format;
    /* TLS on the data port when tls_cert is set (tls_key then too); tls_client_ca: mTLS */
    const char *tls_cert, *tls_key, *tls_client_ca;
    char metrics_host[256]; /* the HTTP endpoint; metrics_port < 0: none */
    int metrics_port;
    uint32_t slow_query_ms;      /* 0: no slow-request log */
    uint32_t test_load_pause_ms; /* tests: a pause per load progress step (VD_TEST_LOAD_PAUSE_MS) */
} vd_server_config;

/* Runs the server until SIGINT/SIGTERM; returns the process exit status. */
int vd_server_run(const vd_server_config *cfg);

typedef struct vd_conn vd_conn;
typedef struct vd_server vd_server;

typedef struct vd_job {
    struct vd_job *next;
    vd_conn *conn;         /* loop thread only */
    vd_proto_request *req; /* owned; freed by vd_job_done once answered */
    uint64_t request_id;
    vd_request_kind kind;
    size_t req_bytes; /* frame size, for per-connection accounting */
    uint64_t start_ns; /* when the frame was decoded (latency metrics, slow log) */
    /* result: a complete response frame (header + body), owned */
    uint8_t *frame;
    size_t frame_len;
    vd_write write; /* the writer's prepared op */
} vd_job;

/* A FIFO of jobs (jobq.c). Closing wakes every waiter; pop then drains what is left and
 * returns NULL only when the queue is closed and empty. */
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
vd_job *vd_jobq_take_all(vd_jobq *q);            /* never blocks; every job, or NULL */
size_t vd_jobq_len(vd_jobq *q);                  /* jobs queued now; any thread */
/* Never blocks: up to max jobs, or NULL; *closed tells whether the queue is closed. For a
 * queue with one consumer (the writer's). */
vd_job *vd_jobq_poll_all(vd_jobq *q, size_t max, int *closed);
void vd_jobq_close(vd_jobq *q);

struct vd_server {
    vd_server_config cfg;
    vd_store *store;
    vd_engine *engine;
    vd_auth *auth;                      /* the tokens (none: anyone may write) */
    vd_tls *tls;                        /* NULL: plain TCP */
    vd_http *http;                      /* NULL without --metrics-listen */
    _Atomic(vd_store *) published_store; /* store, once open: what the HTTP thread may read */
    vd_metrics metrics;
    uint64_t start_ns;

    /* loop thread */
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_signal_t sig_int, sig_term;
    uv_async_t done_async;
    uv_timer_t sweep_timer;
    uv_timer_t stop_timer;
    uv_timer_t accept_timer; /* retries an accept that found no memory */
    vd_conn *conns;   /* doubly linked list of open connections */
    uint32_t n_conns; /* accepted and counted against max_connections */
    uint64_t next_conn_id;
    _Atomic uint64_t inflight_total; /* written by the loop thread only; metrics read it */
    uint64_t inflight_bytes_total;
    int stopping; /* a signal arrived: no new work, drain, then close */
    int closing_handles;
    int stop_signal;
    /* log rate limit for client errors (loop thread) */
    uint64_t log_window_ns;
    uint32_t log_in_window;
    uint64_t log_suppressed;
    uint8_t discard[16384]; /* input of connections being closed lands here */
    uint8_t tls_in[65536];  /* ciphertext of one read, decrypted before the next (loop) */

    /* between threads */
    vd_jobq readq, writeq, doneq;
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
/* A worker's last step with a job (any thread): frees its request, queues it on the done
 * queue and wakes the loop thread, which sends j->frame. */
void vd_job_done(vd_server *srv, vd_job *j);

/* ---- replies (reply.c, any thread) ----
 * Each sets j->frame to a complete frame. On allocation failure j->frame stays NULL and the
 * loop closes the connection (the client sees EOF, never a wrong answer). */
/* The OK response for `res`, which is released. A result too large for max_frame becomes
 * the RESOURCE_EXHAUSTED error instead. STATS results get the server's counters added. */
void vd_reply_result(vd_server *srv, vd_job *j, vd_result *res);
/* An error response: status s, its message err->msg. */
void vd_reply_status(vd_server *srv, vd_job *j, vd_status s, const vd_err *err);

#endif
