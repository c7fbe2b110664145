/* tests/unit/storage_testlib.h: helpers shared by the storage suites: scratch directories,
 * deterministic vectors, one-op writes, whole-file comparison. */
#ifndef VD_STORAGE_TESTLIB_H
#define VD_STORAGE_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

#include "storage/vd_storage.h"

/* 1 in plain builds; smaller under sanitizers (VD_TEST_BUILD names asan or tsan). */
int st_sanitized(void);
size_t st_scale(size_t plain, size_t sanitized);

/* mkdtemp under /tmp; st_rmdir removes the tree. The returned string is static storage of
 * the caller's buffer `buf` (at least 64 bytes). */
char *st_tmpdir(char *buf);
void st_rmtree(const char *path);

/* Deterministic pseudo-random floats in [-1, 1). */
void st_fill(float *v, size_t n, uint64_t seed);

vd_store *st_open(const char *dir);                    /* create; asserts success */
vd_status st_create(vd_store *st, const char *name, uint32_t dim, vd_metric metric);
/* Upserts ids[0..n) with vectors from st_fill(seed + id) and, if with_payload, payload
 * {"id":<id>}. Returns the op status (group status if the group failed). */
vd_status st_upsert(vd_store *st, const char *name, const uint64_t *ids, size_t n,
                    uint32_t dim, int with_payload, vd_err *err);
vd_status st_upsert_range(vd_store *st, const char *name, uint64_t first, size_t n,
                          uint32_t dim, int with_payload);
vd_status st_delete(vd_store *st, const char *name, const uint64_t *ids, size_t n,
                    uint64_t *n_done);
void st_vector_of(uint64_t id, uint32_t dim, float *out); /* what st_upsert stores for id */

/* Reads a whole file into a new buffer (vd_free it); NULL if unreadable. */
uint8_t *st_read_file(const char *path, size_t *len);
int st_file_equals(const char *path, const uint8_t *bytes, size_t len);

/* One round of a kill -9 test: forks child(dir, next, fd), which writes batches from `next` on
 * and reports each committed batch number on fd, kills it with SIGKILL after min_us +
 * rand() % spread_us microseconds, and returns the last batch reported (next - 1 if none),
 * asserting the child died of the signal and reported batches in order. */
uint64_t st_crash_round(void (*child)(const char *dir, uint64_t next, int fd), const char *dir,
                        uint64_t next, unsigned min_us, unsigned spread_us);

/* Collects report lines of vd_store_check. */
typedef struct st_report {
    int n;
    char first[512];
} st_report;
void st_report_line(void *ctx, const char *line);

#endif
