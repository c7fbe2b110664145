/* tests/unit/test_storage_files.c: what is on disk when it is not what we wrote: random bytes,
 * a truncated file, an empty file, a foreign LMDB environment, a newer format version - each
 * refused with a clear message and left byte for byte as it was. Also read-only opens that
 * create nothing, backups (also while another process writes) and the admin commands. */
#include <check.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/daemon_int.h"
#include "storage/vd_storage.h"
#include "tests/unit/storage_testlib.h"

static int exists(const char *dir, const char *file)
{
    char p[256];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &sb) == 0;
}

/* Opens `dir` for writing and read-only; both must fail with `want` naming the directory and
 * `msg_part`, with data.mdb unchanged and no lock file left behind if there was none. */
static void expect_refusal(const char *dir, vd_status want, const char *msg_part)
{
    char path[256];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    size_t len;
    uint8_t *before = st_read_file(path, &len);
    ck_assert_ptr_nonnull(before);
    int had_lock = exists(dir, "lock.mdb");
    for (int ro = 0; ro < 2; ro++) {
        vd_store_options opt = {.create = !ro, .read_only = ro};
        vd_store *st = NULL;
        vd_err e = {0};
        vd_status s = vd_store_open(dir, &opt, &st, &e);
        ck_assert_msg(s == want, "open (ro=%d): %s, want %s: %s", ro, vd_status_name(s),
                      vd_status_name(want), e.msg);
        ck_assert_ptr_null(st);
        ck_assert_msg(strstr(e.msg, dir) != NULL, "message lacks the path: %s", e.msg);
        ck_assert_msg(strstr(e.msg, msg_part) != NULL, "message '%s' lacks '%s'", e.msg,
                      msg_part);
        ck_assert_msg(st_file_equals(path, before, len), "data.mdb was modified");
        if (!had_lock && want != VD_VERSION) ck_assert(!exists(dir, "lock.mdb"));
    }
    vd_free(before);
    /* The admin commands refuse it too. */
    char *argv[] = {"check", "--data", (char *)dir, NULL};
    ck_assert_int_eq(vd_cmd_check(3, argv), 1);
    char *argv2[] = {"info", "--data", (char *)dir, NULL};
    ck_assert_int_eq(vd_cmd_info(3, argv2), 1);
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void make_store(const char *dir, size_t n_points)
{
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "docs", 8, VD_METRIC_L2), VD_OK);
    for (size_t b = 0; b < n_points; b += 500)
        ck_assert_int_eq(st_upsert_range(st, "docs", b, 500, 8, 1), VD_OK);
    vd_store_close(st);
}

static void quiet(void)
{
    /* The admin commands print; keep the test log readable. */
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stdout));
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));
}

START_TEST(random_bytes_are_not_a_data_directory)
{
    quiet();
    char dir[64], path[128];
    st_tmpdir(dir);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    uint8_t junk[16384];
    st_fill((float *)junk, sizeof junk / 4, 99);
    write_file(path, junk, sizeof junk);
    expect_refusal(dir, VD_CORRUPT, "is not an LMDB data file");
    write_file(path, junk, 0); /* empty file */
    expect_refusal(dir, VD_CORRUPT, "is not an LMDB data file");
    st_rmtree(dir);
}
END_TEST

START_TEST(a_truncated_file_is_refused_before_lmdb_maps_it)
{
    quiet();
    char dir[64], path[128];
    st_tmpdir(dir);
    make_store(dir, 2000);
    unlink(strcat(strcpy(path, dir), "/lock.mdb"));
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(truncate(path, sb.st_size / 2), 0);
    expect_refusal(dir, VD_CORRUPT, "is truncated");
    ck_assert_int_eq(truncate(path, 4096 + 100), 0); /* second meta page cut */
    expect_refusal(dir, VD_CORRUPT, "second LMDB meta page");
    st_rmtree(dir);
}
END_TEST

START_TEST(a_foreign_lmdb_environment_is_refused)
{
    quiet();
    char dir[64];
    st_tmpdir(dir);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 4), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = {4, "user"}, v = {5, "alice"};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    expect_refusal(dir, VD_CORRUPT, "not a vectord data directory");

    /* A named "meta" database without our magic. */
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 4), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
    MDB_val k2 = {5, "magic"}, v2 = {5, "other"};
    ck_assert_int_eq(mdb_put(txn, dbi, &k2, &v2, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    expect_refusal(dir, VD_CORRUPT, "no vectord magic");
    st_rmtree(dir);
}
END_TEST

START_TEST(a_newer_format_version_is_refused_untouched)
{
    quiet();
    char dir[64];
    st_tmpdir(dir);
    make_store(dir, 500);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t ver[4];
    vd_put_u32le(ver, VD_STORAGE_FORMAT_VERSION + 1);
    MDB_val k = {6, "format"}, v = {4, ver};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    expect_refusal(dir, VD_VERSION, "was written in storage format 2; this vectord reads "
                                    "format 1 at most");
    char to[128];
    snprintf(to, sizeof to, "%s/copy", dir);
    vd_err e;
    ck_assert_int_eq(vd_store_backup(dir, to, &e), VD_VERSION);
    ck_assert(!exists(dir, "copy"));
    st_rmtree(dir);
}
END_TEST

START_TEST(read_only_opens_create_nothing)
{
    quiet();
    char dir[64], sub[128];
    st_tmpdir(dir);
    snprintf(sub, sizeof sub, "%s/absent", dir);
    vd_store_options ro = {.read_only = 1};
    vd_store *st = NULL;
    vd_err e;
    ck_assert_int_eq(vd_store_open(sub, &ro, &st, &e), VD_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, sub));
    ck_assert(!exists(dir, "absent"));
    ck_assert_int_eq(vd_store_open(dir, &ro, &st, &e), VD_NOTFOUND); /* empty directory */
    ck_assert_ptr_nonnull(strstr(e.msg, "no data.mdb"));
    ck_assert(!exists(dir, "data.mdb") && !exists(dir, "lock.mdb"));
    vd_store_options no_create = {0};
    ck_assert_int_eq(vd_store_open(sub, &no_create, &st, &e), VD_NOTFOUND);
    ck_assert(!exists(dir, "absent"));
    /* A store without lock.mdb (as a backup leaves it) opens read-only without one. */
    make_store(dir, 500);
    char lock[128];
    snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
    ck_assert_int_eq(unlink(lock), 0);
    ck_assert_int_eq(vd_store_open(dir, &ro, &st, &e), VD_OK);
    ck_assert(vd_store_check(st, NULL, NULL, &e) == VD_OK);
    vd_store_close(st);
    ck_assert(!exists(dir, "lock.mdb"));
    char *argv[] = {"info", "--data", dir, NULL};
    ck_assert_int_eq(vd_cmd_info(3, argv), 0);
    char *argv2[] = {"check", "--data", dir, NULL};
    ck_assert_int_eq(vd_cmd_check(3, argv2), 0);
    ck_assert(!exists(dir, "lock.mdb"));
    st_rmtree(dir);
}
END_TEST

START_TEST(only_one_process_may_write_a_directory)
{
    quiet();
    char dir[64];
    st_tmpdir(dir);
    make_store(dir, 100);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        vd_store *st = NULL;
        vd_store_options opt = {.n_threads = 1};
        if (vd_store_open(dir, &opt, &st, NULL) != VD_OK) _exit(3);
        char c = 'r';
        if (write(fds[1], &c, 1) != 1) _exit(4);
        pause();
        _exit(0);
    }
    close(fds[1]);
    char c;
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    vd_store *st = NULL;
    vd_store_options opt = {.n_threads = 1};
    vd_err e;
    ck_assert_int_eq(vd_store_open(dir, &opt, &st, &e), VD_PRECONDITION);
    char want[128];
    snprintf(want, sizeof want, "is in use by process %ld (", (long)pid); /* names the holder */
    ck_assert_msg(strstr(e.msg, want) != NULL, "%s", e.msg);
    ck_assert_ptr_nonnull(strstr(e.msg, "only one process may write it"));
    ck_assert_ptr_null(st);
    ck_assert(exists(dir, "writer.pid"));
    vd_store_options ro = {.read_only = 1};
    ck_assert_int_eq(vd_store_open(dir, &ro, &st, &e), VD_OK); /* readers are welcome */
    vd_store_close(st);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    st = st_open(dir); /* the lock died with the process; its stale pid file is overwritten */
    vd_store_close(st);
    ck_assert(!exists(dir, "writer.pid")); /* a clean close removes it */
    close(fds[0]);
    st_rmtree(dir);
}
END_TEST

/* LMDB forbids one environment opened twice in a process (closing the second handle would
 * drop the first one's locks on lock.mdb): the second open, read-only too, is refused
 * before LMDB sees it, and the first keeps working. */
START_TEST(a_directory_opens_once_per_process)
{
    quiet();
    char dir[64];
    st_tmpdir(dir);
    make_store(dir, 100);
    vd_store *st = st_open(dir), *again = NULL;
    vd_err e;
    char want[160];
    snprintf(want, sizeof want, "data directory %s is already open in this process (pid %ld)",
             dir, (long)getpid());
    vd_store_options rw = {.n_threads = 1}, ro = {.read_only = 1};
    const vd_store_options *opts[] = {&rw, &ro};
    for (size_t i = 0; i < VD_ARRAY_LEN(opts); i++) {
        ck_assert_int_eq(vd_store_open(dir, opts[i], &again, &e), VD_PRECONDITION);
        ck_assert_msg(strstr(e.msg, want) == e.msg, "%s", e.msg);
        ck_assert_ptr_null(again);
    }
    char other[64];
    st_tmpdir(other);
    make_store(other, 10); /* another directory is no conflict */
    vd_store *st2 = st_open(other);
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "docs", &c, &e), VD_OK); /* the first handle works */
    vd_collection_release(c);
    vd_store_close(st2);
    vd_store_close(st);
    st = st_open(dir); /* closed: it opens again */
    vd_store_close(st);
    st_rmtree(other);
    st_rmtree(dir);
}
END_TEST

START_TEST(catalog_only_opens_list_without_loading_graphs)
{
    quiet();
    char dir[64];
    st_tmpdir(dir);
    make_store(dir, 1000);
    vd_store *st = NULL;
    vd_err e;
    vd_store_options bad = {.catalog_only = 1};
    ck_assert_int_eq(vd_store_open(dir, &bad, &st, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "must be read-only"));
    vd_store_options opt = {.read_only = 1, .catalog_only = 1};
    ck_assert_int_eq(vd_store_open(dir, &opt, &st, &e), VD_OK);
    vd_collection_info *cs = NULL;
    size_t n = 0;
    ck_assert_int_eq(vd_store_list(st, &cs, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(cs[0].params.name, "docs");
    ck_assert_uint_eq(cs[0].count, 1000);
    ck_assert(cs[0].bytes_disk > 1000 * 8 * 4);
    vd_free(cs);
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "docs", &c, NULL), VD_OK);
    ck_assert_ptr_null(vd_collection_index(c));
    vd_collection_release(c);
    ck_assert_int_eq(vd_store_check(st, NULL, NULL, &e), VD_INVALID);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(admin_commands_parse_their_arguments)
{
    quiet();
    char *h1[] = {"info", "--help", NULL}, *h2[] = {"check", "-h", NULL},
         *h3[] = {"backup", "--help", NULL};
    ck_assert_int_eq(vd_cmd_info(2, h1), 0);
    ck_assert_int_eq(vd_cmd_check(2, h2), 0);
    ck_assert_int_eq(vd_cmd_backup(2, h3), 0);
    char *b1[] = {"info", NULL}, *b2[] = {"check", "--data", NULL},
         *b3[] = {"backup", "--data", "/tmp", NULL}, *b4[] = {"info", "--bogus", NULL},
         *b5[] = {"check", "--data=", NULL}, *b6[] = {"info", "--to", "x", NULL};
    ck_assert_int_eq(vd_cmd_info(1, b1), 2);
    ck_assert_int_eq(vd_cmd_check(2, b2), 2);
    ck_assert_int_eq(vd_cmd_backup(3, b3), 2);
    ck_assert_int_eq(vd_cmd_info(2, b4), 2);
    ck_assert_int_eq(vd_cmd_check(2, b5), 2);
    ck_assert_int_eq(vd_cmd_info(3, b6), 2);
    char *m1[] = {"info", "--data=/nonexistent/vd", NULL};
    ck_assert_int_eq(vd_cmd_info(2, m1), 1);
}
END_TEST

START_TEST(check_reports_damaged_records)
{
    quiet();
    char dir[64];
    st_tmpdir(dir);
    make_store(dir, 500);
    /* Remove one points record behind the store's back: counts disagree. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "points", 0, &dbi), 0);
    uint8_t key[12];
    vd_put_u32be(key, 1);
    vd_put_u64be(key + 4, 17);
    MDB_val k = {12, key};
    ck_assert_int_eq(mdb_del(txn, dbi, &k, NULL), 0);
    /* and an orphan record of an unknown collection */
    vd_put_u32be(key, 77);
    MDB_val v = {4, "\0\0\0\0"};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    vd_store_options ro = {.read_only = 1};
    vd_store *st = NULL;
    vd_err e;
    ck_assert_int_eq(vd_store_open(dir, &ro, &st, &e), VD_OK);
    st_report r = {0};
    ck_assert_int_eq(vd_store_check(st, st_report_line, &r, &e), VD_CORRUPT);
    ck_assert_int_ge(r.n, 2);
    ck_assert_msg(strstr(r.first, "the catalog counts 500 points, 499 are stored"), "%s",
                  r.first);
    ck_assert_ptr_nonnull(strstr(e.msg, "problems found"));
    vd_store_close(st);
    char *argv[] = {"check", "--data", dir, NULL};
    ck_assert_int_eq(vd_cmd_check(3, argv), 1);
    st_rmtree(dir);
}
END_TEST

START_TEST(backup_errors)
{
    quiet();
    char dir[64], to[128];
    st_tmpdir(dir);
    vd_err e;
    snprintf(to, sizeof to, "%s/copy", dir);
    ck_assert_int_eq(vd_store_backup(dir, to, &e), VD_NOTFOUND); /* no data.mdb */
    ck_assert_ptr_nonnull(strstr(e.msg, "not a vectord data directory"));
    ck_assert(!exists(dir, "copy"));
    make_store(dir, 100);
    ck_assert_int_eq(mkdir(to, 0755), 0);
    char f[160];
    snprintf(f, sizeof f, "%s/x", to);
    write_file(f, (const uint8_t *)"x", 1);
    ck_assert_int_eq(vd_store_backup(dir, to, &e), VD_EXISTS);
    ck_assert_ptr_nonnull(strstr(e.msg, "is not empty"));
    ck_assert_int_eq(vd_store_backup(dir, "/nonexistent/a/b", &e), VD_NOTFOUND);
    ck_assert_int_eq(vd_store_backup("/nonexistent/vd", to, &e), VD_NOTFOUND);
    char *argv[] = {"backup", "--data", dir, "--to", to, NULL};
    ck_assert_int_eq(vd_cmd_backup(5, argv), 1);
    st_rmtree(dir);
}
END_TEST

/* The writer child: appends batches of 200 points until killed. */
static void writer_child(const char *dir, int ready_fd)
{
    vd_store *st = NULL;
    vd_store_options opt = {.create = 1, .n_threads = 1};
    if (vd_store_open(dir, &opt, &st, NULL) != VD_OK) _exit(3);
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1) _exit(4);
    for (uint64_t b = 1000;; b++)
        if (st_upsert_range(st, "docs", b * 200, 200, 8, 1) != VD_OK) _exit(5);
}

START_TEST(backup_while_another_process_writes_is_consistent)
{
    quiet();
    char dir[64], to[128];
    st_tmpdir(dir);
    make_store(dir, 1000);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        writer_child(dir, fds[1]);
    }
    close(fds[1]);
    char c;
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    for (int round = 0; round < 3; round++) {
        usleep(150000);
        snprintf(to, sizeof to, "%s/copy%d", dir, round);
        vd_err e = {0};
        ck_assert_msg(vd_store_backup(dir, to, &e) == VD_OK, "backup: %s", e.msg);
        ck_assert(!exists(to, "lock.mdb"));
        vd_store_options ro = {.read_only = 1};
        vd_store *st = NULL;
        ck_assert_msg(vd_store_open(to, &ro, &st, &e) == VD_OK, "open copy: %s", e.msg);
        st_report r = {0};
        ck_assert_msg(vd_store_check(st, st_report_line, &r, &e) == VD_OK, "%s / %s", e.msg,
                      r.first);
        vd_collection *col = NULL;
        ck_assert_int_eq(vd_store_acquire(st, "docs", &col, NULL), VD_OK);
        size_t n = vd_index_count(vd_collection_index(col));
        ck_assert_uint_eq(n % 200, 0); /* whole batches only */
        ck_assert_uint_ge(n, 1000);
        vd_collection_release(col);
        vd_store_close(st);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFSIGNALED(status)); /* still writing when killed */
    /* The CLI variant, and the copy serves writes again. */
    snprintf(to, sizeof to, "%s/copy-cli", dir);
    char *argv[] = {"backup", "--data", dir, "--to", to, NULL};
    ck_assert_int_eq(vd_cmd_backup(5, argv), 0);
    vd_store *st = st_open(to);
    ck_assert_int_eq(st_upsert_range(st, "docs", 1u << 30, 10, 8, 1), VD_OK);
    vd_store_close(st);
    char *argv2[] = {"check", "--data", to, NULL};
    ck_assert_int_eq(vd_cmd_check(3, argv2), 0);
    close(fds[0]);
    st_rmtree(dir);
}
END_TEST

Suite *storage_files_suite(void)
{
    Suite *s = suite_create("storage_files");
    TCase *tc = tcase_create("files");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, random_bytes_are_not_a_data_directory);
    tcase_add_test(tc, a_truncated_file_is_refused_before_lmdb_maps_it);
    tcase_add_test(tc, a_foreign_lmdb_environment_is_refused);
    tcase_add_test(tc, a_newer_format_version_is_refused_untouched);
    tcase_add_test(tc, read_only_opens_create_nothing);
    tcase_add_test(tc, only_one_process_may_write_a_directory);
    tcase_add_test(tc, a_directory_opens_once_per_process);
    tcase_add_test(tc, catalog_only_opens_list_without_loading_graphs);
    tcase_add_test(tc, admin_commands_parse_their_arguments);
    tcase_add_test(tc, check_reports_damaged_records);
    tcase_add_test(tc, backup_errors);
    tcase_add_test(tc, backup_while_another_process_writes_is_consistent);
    suite_add_tcase(s, tc);
    return s;
}
