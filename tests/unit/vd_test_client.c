/* tests/unit/vd_test_client.c: blocking loopback client and daemon launcher for the daemon
 * tests. Deliberately simple - poll(2) + blocking send/recv, one frame buffer - so that when
 * a test fails, the server is the suspect. The daemon runs as a real child process (the same
 * binary users run), its stderr in a log file inside its temp directory. */
#include "tests/unit/vd_test_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void)
{
    return vd_now_ns() / 1000000u;
}

int vdt_connect(vdt_client *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->next_id = 1;
    c->timeout_ms = 20000;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    return 0;
}

void vdt_close(vdt_client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->cap = c->start = c->end = 0;
}

int vdt_send_raw(vdt_client *c, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int vdt_send(vdt_client *c, Vectord__V1__Request *r)
{
    if (r->request_id == 0) r->request_id = c->next_id++;
    size_t n = vectord__v1__request__get_packed_size(r);
    uint8_t *b = malloc(n + 4);
    if (!b) return -1;
    vd_put_u32be(b, (uint32_t)n);
    vectord__v1__request__pack(r, b + 4);
    int rc = vdt_send_raw(c, b, n + 4);
    free(b);
    return rc;
}

/* Reads more bytes into the buffer; 0 on data, -1 on EOF/error/timeout. */
static int fill(vdt_client *c, int timeout_ms)
{
    if (c->start == c->end) c->start = c->end = 0;
    if (c->cap - c->end < 65536) {
        if (c->start > 0) {
            memmove(c->buf, c->buf + c->start, c->end - c->start);
            c->end -= c->start;
            c->start = 0;
        }
        if (c->cap - c->end < 65536) {
            size_t ncap = c->cap * 2 + 65536;
            uint8_t *nb = realloc(c->buf, ncap);
            if (!nb) return -1;
            c->buf = nb;
            c->cap = ncap;
        }
    }
    struct pollfd p = {c->fd, POLLIN, 0};
    int rc;
    do
        rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc <= 0) return -1;
    ssize_t r = recv(c->fd, c->buf + c->end, c->cap - c->end, 0);
    if (r <= 0) return -1;
    c->end += (size_t)r;
    return 0;
}

vd_pb_response *vdt_recv(vdt_client *c)
{
    uint64_t deadline = now_ms() + (uint64_t)c->timeout_ms;
    for (;;) {
        size_t have = c->end - c->start;
        if (have >= 4) {
            uint32_t len = vd_get_u32be(c->buf + c->start);
            if (have >= 4 + (size_t)len) {
                vd_pb_response *r = NULL;
                if (c->system_alloc) /* freed by vd_proto_response_free: vd_free is free */
                    r = vectord__v1__response__unpack(NULL, len, c->buf + c->start + 4);
                else
                    vd_proto_response_decode(c->buf + c->start + 4, len, &r, NULL);
                c->start += 4 + (size_t)len;
                return r;
            }
        }
        uint64_t t = now_ms();
        if (t >= deadline || fill(c, (int)(deadline - t)) != 0) return NULL;
    }
}

vd_pb_response *vdt_call(vdt_client *c, Vectord__V1__Request *r)
{
    if (vdt_send(c, r) != 0) return NULL;
    vd_pb_response *resp = vdt_recv(c);
    if (resp && resp->request_id != r->request_id) {
        fprintf(stderr, "vdt_call: response for request %llu, expected %llu (%s)\n",
                (unsigned long long)resp->request_id, (unsigned long long)r->request_id,
                vdt_msg(resp));
        vd_proto_response_free(resp);
        return NULL;
    }
    return resp;
}

int vdt_wait_closed(vdt_client *c, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t t = now_ms();
        if (t >= deadline) return 0;
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, (int)(deadline - t)) <= 0) return 0;
        uint8_t junk[4096];
        ssize_t r = recv(c->fd, junk, sizeof junk, 0);
        if (r == 0) return 1;
        if (r < 0 && errno != EINTR && errno != EAGAIN) return 1; /* reset counts as closed */
    }
}

/* ---- requests ------------------------------------------------------------------------------ */

#define REQ(field, CASE)                                                                           \
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;                                           \
    r.op_case = VECTORD__V1__REQUEST__OP_##CASE;                                                   \
    r.field = &m

vd_pb_response *vdt_hello(vdt_client *c, const char *token)
{
    Vectord__V1__HelloRequest m = VECTORD__V1__HELLO_REQUEST__INIT;
    m.protocol_version = VD_PROTOCOL_VERSION;
    m.token = (char *)(token ? token : "");
    m.client_name = "vd_test_client";
    REQ(hello, HELLO);
    return vdt_call(c, &r);
}

vd_pb_response *vdt_create(vdt_client *c, const char *name, uint32_t dim, int metric)
{
    Vectord__V1__CreateCollectionRequest m = VECTORD__V1__CREATE_COLLECTION_REQUEST__INIT;
    m.name = (char *)name;
    m.dim = dim;
    m.metric = (Vectord__V1__Metric)metric;
    REQ(create_collection, CREATE_COLLECTION);
    return vdt_call(c, &r);
}

vd_pb_response *vdt_drop(vdt_client *c, const char *name)
{
    Vectord__V1__DropCollectionRequest m = VECTORD__V1__DROP_COLLECTION_REQUEST__INIT;
    m.name = (char *)name;
    REQ(drop_collection, DROP_COLLECTION);
    return vdt_call(c, &r);
}

vd_pb_response *vdt_list(vdt_client *c)
{
    Vectord__V1__ListCollectionsRequest m = VECTORD__V1__LIST_COLLECTIONS_REQUEST__INIT;
    REQ(list_collections, LIST_COLLECTIONS);
    return vdt_call(c, &r);
}

vd_pb_response *vdt_info(vdt_client *c, const char *name)
{
    Vectord__V1__CollectionInfoRequest m = VECTORD__V1__COLLECTION_INFO_REQUEST__INIT;
    m.name = (char *)name;
    REQ(collection_info, COLLECTION_INFO);
    return vdt_call(c, &r);
}

vd_pb_response *vdt_count(vdt_client *c, const char *name)
{
    Vectord__V1__CountRequest m = VECTORD__V1__COUNT_REQUEST__INIT;
    m.collection = (char *)name;
    REQ(count, COUNT);
    return vdt_call(c, &r);
}

vd_pb_response *vdt_stats(vdt_client *c)
{
    Vectord__V1__StatsRequest m = VECTORD__V1__STATS_REQUEST__INIT;
    REQ(stats, STATS);
    return vdt_call(c, &r);
}

static uint8_t *ids_le(const uint64_t *ids, size_t n)
{
    uint8_t *b = malloc(n * 8 + 1);
    for (size_t i = 0; i < n; i++)
        vd_put_u64le(b + 8 * i, ids[i]);
    return b;
}

void vdt_upsert_request(Vectord__V1__Request *r, Vectord__V1__UpsertRequest *u, const char *name,
                        const uint64_t *ids, size_t n, const float *vecs, size_t vec_bytes)
{
    vectord__v1__request__init(r);
    vectord__v1__upsert_request__init(u);
    u->collection = (char *)name;
    u->ids.data = ids_le(ids, n); /* freed by the caller: free(u->ids.data) */
    u->ids.len = n * 8;
    u->vectors.data = (uint8_t *)vecs;
    u->vectors.len = vec_bytes;
    r->op_case = VECTORD__V1__REQUEST__OP_UPSERT;
    r->upsert = u;
}

vd_pb_response *vdt_upsert(vdt_client *c, const char *name, const uint64_t *ids, size_t n,
                           const float *vecs, size_t vec_bytes, const char *const *payloads)
{
    Vectord__V1__Request r;
    Vectord__V1__UpsertRequest u;
    vdt_upsert_request(&r, &u, name, ids, n, vecs, vec_bytes);
    ProtobufCBinaryData *p = NULL;
    if (payloads) {
        p = calloc(n + 1, sizeof *p);
        for (size_t i = 0; i < n; i++) {
            p[i].data = (uint8_t *)payloads[i];
            p[i].len = strlen(payloads[i]);
        }
        u.payloads = p;
        u.n_payloads = n;
    }
    vd_pb_response *resp = vdt_call(c, &r);
    free(u.ids.data);
    free(p);
    return resp;
}

vd_pb_response *vdt_delete(vdt_client *c, const char *name, const uint64_t *ids, size_t n)
{
    Vectord__V1__DeleteRequest m = VECTORD__V1__DELETE_REQUEST__INIT;
    m.collection = (char *)name;
    m.ids.data = ids_le(ids, n);
    m.ids.len = n * 8;
    REQ(delete_, DELETE);
    vd_pb_response *resp = vdt_call(c, &r);
    free(m.ids.data);
    return resp;
}

vd_pb_response *vdt_get(vdt_client *c, const char *name, const uint64_t *ids, size_t n,
                        int with_vectors, int with_payloads)
{
    Vectord__V1__GetRequest m = VECTORD__V1__GET_REQUEST__INIT;
    m.collection = (char *)name;
    m.ids.data = ids_le(ids, n);
    m.ids.len = n * 8;
    m.with_vectors = with_vectors;
    m.with_payloads = with_payloads;
    REQ(get, GET);
    vd_pb_response *resp = vdt_call(c, &r);
    free(m.ids.data);
    return resp;
}

vd_pb_response *vdt_search_dim(vdt_client *c, const char *name, const float *q, size_t q_bytes,
                               uint32_t dim, uint32_t k, uint32_t ef, int with_payloads)
{
    Vectord__V1__SearchRequest m = VECTORD__V1__SEARCH_REQUEST__INIT;
    m.collection = (char *)name;
    m.queries.data = (uint8_t *)q;
    m.queries.len = q_bytes;
    m.dim = dim;
    m.k = k;
    m.ef = ef;
    m.with_payloads = with_payloads;
    REQ(search, SEARCH);
    return vdt_call(c, &r);
}

vd_pb_response *vdt_search(vdt_client *c, const char *name, const float *q, size_t q_bytes,
                           uint32_t k, uint32_t ef, int with_payloads)
{
    return vdt_search_dim(c, name, q, q_bytes, 0, k, ef, with_payloads);
}

int vdt_code(const vd_pb_response *r)
{
    return r ? (r->status ? (int)r->status->code : 0) : -1;
}

const char *vdt_msg(const vd_pb_response *r)
{
    if (!r) return "(no response)";
    return r->status && r->status->message ? r->status->message : "";
}

uint64_t vdt_hit_id(const vd_pb_response *r, size_t i)
{
    return vd_get_u64le(r->search->ids.data + 8 * i);
}

float vdt_hit_dist(const vd_pb_response *r, size_t i)
{
    uint32_t u = vd_get_u32le(r->search->distances.data + 4 * i);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- the daemon ---------------------------------------------------------------------------- */

int vdt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

int vdt_daemon_alive(vdt_daemon *d)
{
    if (d->pid <= 0) return 0;
    int st;
    pid_t r = waitpid(d->pid, &st, WNOHANG);
    if (r == d->pid) {
        d->pid = 0;
        return 0;
    }
    return 1;
}

static int start_once(vdt_daemon *d, const char *const *args)
{
    const char *b = getenv("VD_TEST_BUILD");
    char bin[512], listen[64];
    snprintf(bin, sizeof bin, "%s/vectord", b && *b ? b : "build");
    d->port = vdt_free_port();
    if (d->port <= 0) return -1;
    snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "serve";
    argv[n++] = "--data";
    argv[n++] = d->dir;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--threads";
    argv[n++] = "2";
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execv(bin, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    d->pid = pid;
    uint64_t deadline = now_ms() + 60000;
    while (now_ms() < deadline) {
        if (!vdt_daemon_alive(d)) return -1;
        vdt_client c;
        if (vdt_connect(&c, d->port) == 0) {
            vdt_close(&c);
            return 0;
        }
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    d->pid = 0;
    return -1;
}

int vdt_daemon_start(vdt_daemon *d, const char *const *args)
{
    if (!d->root[0]) {
        snprintf(d->root, sizeof d->root, "/tmp/vd-test-XXXXXX");
        if (!mkdtemp(d->root)) return -1;
        snprintf(d->log, sizeof d->log, "%s/vectord.log", d->root);
    }
    if (!d->dir[0]) snprintf(d->dir, sizeof d->dir, "%s/data", d->root);
    for (int attempt = 0; attempt < 5; attempt++) /* a port taken between probe and bind */
        if (start_once(d, args) == 0) return 0;
    return -1;
}

int vdt_daemon_stop(vdt_daemon *d, int sig)
{
    if (d->pid <= 0) return -1;
    kill(d->pid, sig);
    int st = 0;
    if (waitpid(d->pid, &st, 0) != d->pid) return -1;
    d->pid = 0;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

void vdt_daemon_cleanup(vdt_daemon *d)
{
    if (d->pid > 0) vdt_daemon_stop(d, SIGKILL);
    if (d->root[0] && !getenv("VD_TEST_KEEP")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->root);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", d->root);
    }
    d->root[0] = 0;
}

int vdt_open(vdt_client *c, const vdt_daemon *d, const char *token)
{
    if (vdt_connect(c, d->port) != 0) return -1;
    vd_pb_response *r = vdt_hello(c, token);
    int ok = vdt_code(r) == 0 && r->result_case == VECTORD__V1__RESPONSE__RESULT_HELLO;
    vd_proto_response_free(r);
    if (!ok) vdt_close(c);
    return ok ? 0 : -1;
}

int vdt_log_contains(const vdt_daemon *d, const char *needle)
{
    FILE *f = fopen(d->log, "r");
    if (!f) return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}
