/* tests/unit/storage_testlib.c: see storage_testlib.h. */
#define _XOPEN_SOURCE 700
#include "tests/unit/storage_testlib.h"

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int st_sanitized(void)
{
    const char *b = getenv("VD_TEST_BUILD");
    return b && (strstr(b, "asan") || strstr(b, "tsan"));
}

size_t st_scale(size_t plain, size_t sanitized) { return st_sanitized() ? sanitized : plain; }

char *st_tmpdir(char *buf)
{
    strcpy(buf, "/tmp/vd-storage-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(buf));
    return buf;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    remove(p);
    return 0;
}

void st_rmtree(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

void st_fill(float *v, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v[i] = (float)((double)(x >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
    }
}

void st_vector_of(uint64_t id, uint32_t dim, float *out) { st_fill(out, dim, id + 1); }

vd_store *st_open(const char *dir)
{
    vd_store *st = NULL;
    vd_store_options opt = {.create = 1, .n_threads = 1};
    vd_err e = {0};
    vd_status s = vd_store_open(dir, &opt, &st, &e);
    ck_assert_msg(s == VD_OK, "open %s: %s", dir, e.msg);
    return st;
}

vd_status st_create(vd_store *st, const char *name, uint32_t dim, vd_metric metric)
{
    vd_op op = {.kind = VD_OP_CREATE};
    snprintf(op.params.name, sizeof op.params.name, "%s", name);
    op.params.dim = dim;
    op.params.metric = metric;
    op.params.m = 8;
    op.params.ef_construction = 64;
    vd_err e;
    vd_status s = vd_store_write(st, &op, 1, &e);
    return s != VD_OK ? s : op.status;
}

vd_status st_upsert(vd_store *st, const char *name, const uint64_t *ids, size_t n,
                    uint32_t dim, int with_payload, vd_err *err)
{
    float *vecs = malloc(n * dim * sizeof *vecs + 1);
    uint8_t **pl = with_payload ? calloc(n, sizeof *pl) : NULL;
    uint32_t *lens = with_payload ? calloc(n, sizeof *lens) : NULL;
    for (size_t i = 0; i < n; i++) {
        st_vector_of(ids[i], dim, vecs + i * dim);
        if (with_payload) {
            pl[i] = malloc(64);
            lens[i] = (uint32_t)snprintf((char *)pl[i], 64, "{\"id\":%llu}",
                                         (unsigned long long)ids[i]);
        }
    }
    vd_op op = {.kind = VD_OP_UPSERT, .collection = name, .ids = ids, .n = n, .vectors = vecs,
                .payloads = (const uint8_t *const *)pl, .payload_lens = lens};
    vd_status s = vd_store_write(st, &op, 1, err);
    if (s == VD_OK) {
        s = op.status;
        if (s != VD_OK && err) *err = op.err;
    }
    if (pl)
        for (size_t i = 0; i < n; i++) free(pl[i]);
    free(pl);
    free(lens);
    free(vecs);
    return s;
}

vd_status st_upsert_range(vd_store *st, const char *name, uint64_t first, size_t n,
                          uint32_t dim, int with_payload)
{
    uint64_t *ids = malloc(n * sizeof *ids + 1);
    for (size_t i = 0; i < n; i++) ids[i] = first + i;
    vd_err e = {0};
    vd_status s = st_upsert(st, name, ids, n, dim, with_payload, &e);
    free(ids);
    return s;
}

vd_status st_delete(vd_store *st, const char *name, const uint64_t *ids, size_t n,
                    uint64_t *n_done)
{
    vd_op op = {.kind = VD_OP_DELETE, .collection = name, .ids = ids, .n = n};
    vd_err e;
    vd_status s = vd_store_write(st, &op, 1, &e);
    if (n_done) *n_done = op.n_done;
    return s != VD_OK ? s : op.status;
}

uint8_t *st_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = vd_malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        vd_free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

int st_file_equals(const char *path, const uint8_t *bytes, size_t len)
{
    size_t n;
    uint8_t *b = st_read_file(path, &n);
    int eq = b && n == len && memcmp(b, bytes, len) == 0;
    vd_free(b);
    return eq;
}

void st_report_line(void *ctx, const char *line)
{
    st_report *r = ctx;
    if (r->n++ == 0) snprintf(r->first, sizeof r->first, "%s", line);
}

uint64_t st_crash_round(void (*child)(const char *dir, uint64_t next, int fd), const char *dir,
                        uint64_t next, unsigned min_us, unsigned spread_us)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child(dir, next, fds[1]);
        _exit(9); /* a child returns only by failing */
    }
    close(fds[1]);
    usleep((useconds_t)(min_us + (unsigned)rand() % spread_us));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFSIGNALED(status), "child exited on its own with %d", WEXITSTATUS(status));
    uint64_t acked = next - 1, b;
    while (read(fds[0], &b, sizeof b) == (ssize_t)sizeof b) {
        ck_assert_uint_eq(b, acked + 1);
        acked = b;
    }
    close(fds[0]);
    return acked;
}
