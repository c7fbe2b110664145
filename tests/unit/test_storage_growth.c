/* tests/unit/test_storage_growth.c: resources running out. The map grows far beyond its
 * initial size (both ahead of a group and after MDB_MAP_FULL, where the group is discarded,
 * its collections reloaded from LMDB and the group re-run); a full disk (RLIMIT_FSIZE in a
 * child process) is VD_FULL with nothing acknowledged lost; failed allocations on open and on
 * write return VD_NOMEM and leave a consistent, usable store. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/storage_int.h"
#include "tests/unit/storage_testlib.h"

static uint64_t count_of(vd_store *st, const char *name)
{
    vd_collection *c = NULL;
    if (vd_store_acquire(st, name, &c, NULL) != VD_OK) return UINT64_MAX;
    uint64_t n = vd_index_count(vd_collection_index(c));
    vd_collection_release(c);
    return n;
}

static void assert_check_ok(vd_store *st)
{
    st_report r = {0};
    vd_err e = {0};
    ck_assert_msg(vd_store_check(st, st_report_line, &r, &e) == VD_OK, "check: %s: %s", e.msg,
                  r.first);
}

static void grow_far(int pregrow)
{
    char dir[64];
    st_tmpdir(dir);
    vd_storage__test_initial_map = 1u << 20; /* 1 MiB */
    vd_storage__pregrow = pregrow;
    long grows0 = vd_storage__n_grows, retries0 = vd_storage__n_retries;
    vd_store *st = st_open(dir);
    uint32_t dim = 32;
    size_t n = st_scale(20000, 10000), batch = 1000;
    ck_assert_int_eq(st_create(st, "big", dim, VD_METRIC_L2), VD_OK);
    /* One batch far larger than the whole initial map, then many. */
    ck_assert_int_eq(st_upsert_range(st, "big", 0, batch * 3, dim, 1), VD_OK);
    for (size_t b = batch * 3; b < n; b += batch)
        ck_assert_int_eq(st_upsert_range(st, "big", b, batch, dim, 1), VD_OK);
    uint64_t del[500];
    for (int i = 0; i < 500; i++) del[i] = (uint64_t)i * 3;
    ck_assert_int_eq(st_delete(st, "big", del, 500, NULL), VD_OK);
    ck_assert_uint_eq(count_of(st, "big"), n - 500);
    vd_store_info si;
    ck_assert_int_eq(vd_store_info_get(st, &si, NULL), VD_OK);
    ck_assert_msg(si.map_bytes >= 4u * (1u << 20), "map %llu", (unsigned long long)si.map_bytes);
    ck_assert(si.file_bytes > 2u * (1u << 20));
    ck_assert(vd_storage__n_grows - grows0 >= 1);
    if (!pregrow) ck_assert(vd_storage__n_retries - retries0 >= 1);
    assert_check_ok(st);
    float q[32];
    st_fill(q, dim, 5);
    vd_hit h1[10], h2[10];
    uint32_t n1, n2;
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "big", &c, NULL), VD_OK);
    ck_assert_int_eq(vd_index_search(vd_collection_index(c), q, 10, 50, h1, &n1, NULL), VD_OK);
    vd_collection_release(c);
    vd_store_close(st);
    st = st_open(dir);
    ck_assert_uint_eq(count_of(st, "big"), n - 500);
    ck_assert_int_eq(vd_store_acquire(st, "big", &c, NULL), VD_OK);
    ck_assert_int_eq(vd_index_search(vd_collection_index(c), q, 10, 50, h2, &n2, NULL), VD_OK);
    vd_collection_release(c);
    ck_assert_uint_eq(n1, n2);
    for (uint32_t i = 0; i < n1; i++) ck_assert_uint_eq(h1[i].id, h2[i].id);
    assert_check_ok(st);
    vd_store_close(st);
    st_rmtree(dir);
}

START_TEST(map_grows_after_map_full_and_the_group_is_rerun)
{
    grow_far(0);
}
END_TEST

START_TEST(map_grows_ahead_of_big_groups)
{
    grow_far(1);
}
END_TEST

/* Child: writes batches under a file size limit until the disk is "full"; exit status 0 when
 * VD_FULL came with a clear message and the store kept serving reads; acknowledged batches
 * go to fd. */
static void full_child(const char *dir, int fd)
{
    vd_store *st = NULL;
    vd_store_options opt = {.n_threads = 1};
    if (vd_store_open(dir, &opt, &st, NULL) != VD_OK) _exit(10);
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) _exit(11);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {(rlim_t)sb.st_size + (1u << 20), (rlim_t)sb.st_size + (1u << 20)};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(12);
    for (uint64_t b = 1; b < 10000; b++) {
        uint64_t ids[200];
        for (int i = 0; i < 200; i++) ids[i] = b * 200 + (uint64_t)i;
        vd_err e = {0};
        vd_status s = st_upsert(st, "docs", ids, 200, 32, 1, &e);
        if (s == VD_OK) {
            if (write(fd, &b, sizeof b) != (ssize_t)sizeof b) _exit(13);
            continue;
        }
        if (s != VD_FULL || !strstr(e.msg, "disk full")) {
            fprintf(stderr, "full_child: %s %s\n", vd_status_name(s), e.msg);
            _exit(14);
        }
        /* Reads still serve what was acknowledged; a second write fails the same way. */
        if (count_of(st, "docs") != 200 * b) _exit(15);
        if (st_upsert(st, "docs", ids, 200, 32, 1, &e) != VD_FULL) _exit(16);
        if (count_of(st, "docs") != 200 * b) _exit(17);
        /* A small write that fits in freed pages may or may not pass; either way no loss. */
        _exit(0);
    }
    _exit(18);
}

START_TEST(a_full_disk_is_a_clear_error_and_loses_nothing_acknowledged)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "docs", 32, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "docs", 0, 200, 32, 1), VD_OK);
    vd_store_close(st);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        full_child(dir, fds[1]);
    }
    close(fds[1]);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    uint64_t b, acked = 0;
    while (read(fds[0], &b, sizeof b) == (ssize_t)sizeof b) acked = b;
    close(fds[0]);
    ck_assert_uint_ge(acked, 1);
    st = st_open(dir);
    ck_assert_uint_eq(count_of(st, "docs"), 200 * (acked + 1));
    assert_check_ok(st);
    ck_assert_int_eq(st_upsert_range(st, "docs", 1u << 30, 200, 32, 1), VD_OK);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(allocation_failures_on_open_return_nomem_cleanly)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "a", 8, VD_METRIC_COSINE), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "a", 0, 300, 8, 1), VD_OK);
    ck_assert_int_eq(st_create(st, "b", 4, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "b", 0, 50, 4, 0), VD_OK);
    vd_store_close(st);
    int ok_at = -1;
    for (long n = 0; n < 2000 && ok_at < 0; n++) {
        vd_store_options opt = {.n_threads = 1};
        vd_err e = {0};
        st = NULL;
        vd_alloc_fail_after(n);
        vd_status s = vd_store_open(dir, &opt, &st, &e);
        vd_alloc_fail_after(-1);
        if (s == VD_OK) {
            ok_at = (int)n;
            ck_assert_uint_eq(count_of(st, "a"), 300);
            assert_check_ok(st);
            vd_store_close(st);
        } else {
            ck_assert_msg(s == VD_NOMEM, "n=%ld: %s %s", n, vd_status_name(s), e.msg);
            ck_assert_ptr_null(st);
        }
    }
    ck_assert_int_gt(ok_at, 5);
    st_rmtree(dir);
}
END_TEST

START_TEST(allocation_failures_on_write_change_nothing)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "a", 8, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "a", 0, 200, 8, 1), VD_OK);
    uint64_t expect = 200, next_id = 200;
    int ok_at = -1;
    for (long n = 0; n < 3000 && ok_at < 0; n++) {
        /* One group: a create, an upsert of 40 new + 10 replaced points, a delete. */
        uint64_t ids[50], del[5];
        float vecs[50 * 8];
        for (int i = 0; i < 50; i++) ids[i] = next_id - 10 + (uint64_t)i;
        for (int i = 0; i < 5; i++) del[i] = next_id - 20 + (uint64_t)i;
        for (int i = 0; i < 50; i++) st_vector_of(ids[i] + 7, 8, vecs + i * 8);
        vd_op ops[3];
        memset(ops, 0, sizeof ops);
        ops[0].kind = VD_OP_CREATE;
        snprintf(ops[0].params.name, sizeof ops[0].params.name, "c%ld", n);
        ops[0].params.dim = 3;
        ops[1] = (vd_op){.kind = VD_OP_UPSERT, .collection = "a", .ids = ids, .n = 50,
                         .vectors = vecs};
        ops[2] = (vd_op){.kind = VD_OP_DELETE, .collection = "a", .ids = del, .n = 5};
        vd_err e = {0};
        vd_alloc_fail_after(n);
        vd_status s = vd_store_write(st, ops, 3, &e);
        vd_alloc_fail_after(-1);
        if (s == VD_OK) {
            ok_at = (int)n;
            ck_assert_int_eq(ops[1].status, VD_OK);
            expect += 40 - 5;
            next_id += 40;
            ck_assert_uint_eq(count_of(st, "a"), expect);
        } else {
            ck_assert_msg(s == VD_NOMEM, "n=%ld: %s %s", n, vd_status_name(s), e.msg);
            ck_assert_uint_eq(count_of(st, "a"), expect);
            char name[32];
            snprintf(name, sizeof name, "c%ld", n);
            ck_assert_uint_eq(count_of(st, name), UINT64_MAX);
        }
        if (n % 16 == 0 || ok_at >= 0) assert_check_ok(st);
    }
    ck_assert_int_gt(ok_at, 3);
    /* The store is usable afterwards and the state survives a reopen. */
    ck_assert_int_eq(st_upsert_range(st, "a", 5000, 10, 8, 0), VD_OK);
    vd_store_close(st);
    st = st_open(dir);
    ck_assert_uint_eq(count_of(st, "a"), expect + 10);
    assert_check_ok(st);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

Suite *storage_growth_suite(void)
{
    Suite *s = suite_create("storage_growth");
    TCase *tc = tcase_create("growth");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, map_grows_after_map_full_and_the_group_is_rerun);
    tcase_add_test(tc, map_grows_ahead_of_big_groups);
    tcase_add_test(tc, a_full_disk_is_a_clear_error_and_loses_nothing_acknowledged);
    tcase_add_test(tc, allocation_failures_on_open_return_nomem_cleanly);
    tcase_add_test(tc, allocation_failures_on_write_change_nothing);
    suite_add_tcase(s, tc);
    return s;
}
