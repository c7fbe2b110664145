/* tests/unit/vd_test_client.h: a small blocking vectord client for tests and benchmarks,
 * plus a helper that runs the real daemon binary ($VD_TEST_BUILD/vectord, default build/)
 * on a free loopback port with a temporary data directory.
 *
 * Threads: a vdt_client belongs to one thread. Calls return NULL/-1 on I/O failure, EOF or
 * timeout; responses are owned by the caller (vd_proto_response_free). */
#ifndef VD_TEST_CLIENT_H
#define VD_TEST_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/vd_proto_pb.h"

typedef struct vdt_client {
    int fd;
    uint64_t next_id;
    int timeout_ms; /* per receive; default 20000 */
    uint8_t *buf;   /* receive buffer */
    size_t cap, start, end;
    /* Decode responses with malloc instead of vd_malloc, so that a test failing the server's
     * Nth vd_malloc in the same process never fails the client's (test_daemon_oom.c). */
    int system_alloc;
} vdt_client;

/* Connects to 127.0.0.1:port (no Hello). 0 on success. */
int vdt_connect(vdt_client *c, int port);
void vdt_close(vdt_client *c);
/* Raw bytes on the socket. 0 on success. */
int vdt_send_raw(vdt_client *c, const void *p, size_t n);
/* Frames and sends a request; sets request_id from next_id when it is 0. 0 on success. */
int vdt_send(vdt_client *c, Vectord__V1__Request *r);
/* Next response frame, or NULL on EOF/error/timeout. */
vd_pb_response *vdt_recv(vdt_client *c);
/* send + recv (the response must carry the request's id, else NULL). */
vd_pb_response *vdt_call(vdt_client *c, Vectord__V1__Request *r);
/* 1 when the server closed the connection within timeout_ms (skipping any frames). */
int vdt_wait_closed(vdt_client *c, int timeout_ms);

/* Requests. Each returns the response (caller frees) or NULL on transport failure. */
vd_pb_response *vdt_hello(vdt_client *c, const char *token);
vd_pb_response *vdt_create(vdt_client *c, const char *name, uint32_t dim, int metric);
vd_pb_response *vdt_drop(vdt_client *c, const char *name);
vd_pb_response *vdt_list(vdt_client *c);
vd_pb_response *vdt_info(vdt_client *c, const char *name);
vd_pb_response *vdt_count(vdt_client *c, const char *name);
vd_pb_response *vdt_stats(vdt_client *c);
/* payloads: NULL, or n strings ("" = none). vec_bytes: bytes of vecs to send (normally
 * n * dim * 4; tests pass other sizes on purpose). */
vd_pb_response *vdt_upsert(vdt_client *c, const char *name, const uint64_t *ids, size_t n,
                           const float *vecs, size_t vec_bytes, const char *const *payloads);
vd_pb_response *vdt_delete(vdt_client *c, const char *name, const uint64_t *ids, size_t n);
vd_pb_response *vdt_get(vdt_client *c, const char *name, const uint64_t *ids, size_t n,
                        int with_vectors, int with_payloads);
/* Sends no dim, as clients from before SearchRequest.dim do (rows are the collection's). */
vd_pb_response *vdt_search(vdt_client *c, const char *name, const float *q, size_t q_bytes,
                           uint32_t k, uint32_t ef, int with_payloads);
/* The same with SearchRequest.dim = dim. */
vd_pb_response *vdt_search_dim(vdt_client *c, const char *name, const float *q, size_t q_bytes,
                               uint32_t dim, uint32_t k, uint32_t ef, int with_payloads);
/* Builds a request without sending it (for pipelining): the caller packs with vdt_send. */
void vdt_upsert_request(Vectord__V1__Request *r, Vectord__V1__UpsertRequest *u, const char *name,
                        const uint64_t *ids, size_t n, const float *vecs, size_t vec_bytes);

/* Code of a response, -1 for NULL. */
int vdt_code(const vd_pb_response *r);
const char *vdt_msg(const vd_pb_response *r);
/* Id i of a search response row-major result. */
uint64_t vdt_hit_id(const vd_pb_response *r, size_t i);
float vdt_hit_dist(const vd_pb_response *r, size_t i);

/* A loopback port free at the time of the call (bind to port 0, then release); -1 if none. */
int vdt_free_port(void);

/* ---- the daemon under test ---- */
typedef struct vdt_daemon {
    pid_t pid;
    int port;
    char dir[256];  /* data directory */
    char log[300];  /* its stderr */
    char root[200]; /* temp root, removed by vdt_daemon_cleanup */
} vdt_daemon;

/* Starts `vectord serve` on a free port with a fresh temp data dir (or d->dir if already set,
 * keeping its data), extra flags from `args` (NULL-terminated, may be NULL), and waits until it
 * accepts connections. 0 on success. */
int vdt_daemon_start(vdt_daemon *d, const char *const *args);
/* Sends sig and waits for exit; returns the exit status (128 + signal when killed by one),
 * -1 on failure. */
int vdt_daemon_stop(vdt_daemon *d, int sig);
/* 1 while the process runs. */
int vdt_daemon_alive(vdt_daemon *d);
/* Removes the temp directory. */
void vdt_daemon_cleanup(vdt_daemon *d);
/* Connects and says hello (token may be NULL); 0 on success. */
int vdt_open(vdt_client *c, const vdt_daemon *d, const char *token);
/* 1 if the daemon's log contains `needle`. */
int vdt_log_contains(const vdt_daemon *d, const char *needle);

#endif
