/* tests/unit/test_build_cmd.c: `vectord build` end to end. Runs the real binary
 * ($VD_TEST_BUILD/vectord) on files generated into a mkdtemp directory, then reads the data
 * directory back through storage (points, vectors, payloads) and runs `vectord check` and
 * `vectord info` on it. Bad input and bad arguments must fail with their message and leave no
 * collection; kill -9 and SIGINT in the middle of a build must leave a directory that checks
 * clean and holds no trace of the collection. */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "index/vd_index.h"
#include "storage/vd_storage.h"
#include "tests/unit/build_test_files.h"

static char dir[64];
static char data[128];
static char out[1 << 16]; /* stdout + stderr of the last run */

static void setup(void)
{
    strcpy(dir, "/tmp/vd-build-cmd-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(data, sizeof data, "%s/data", dir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *path_of(const char *name)
{
    static char p[8][128];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static const char *binary(void)
{
    static char bin[512];
    const char *b = getenv("VD_TEST_BUILD");
    snprintf(bin, sizeof bin, "%s/vectord", b ? b : "build");
    return bin;
}

/* Starts `vectord <words>` (split on spaces; "%s" expanded first) with stdout and stderr
 * into a file; returns the pid. */
static pid_t start(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char *argv[40];
    int argc = 0;
    argv[argc++] = (char *)binary();
    for (char *w = strtok(line, " "); w && argc < 39; w = strtok(NULL, " ")) argv[argc++] = w;
    argv[argc] = NULL;
    const char *log = path_of("out.txt");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Waits for pid; returns its exit status, or 128 + signal; leaves its output in `out`. */
static int finish(pid_t pid)
{
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    FILE *f = fopen(path_of("out.txt"), "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define run(...) finish(start(__VA_ARGS__))

#define ck_assert_out_has(needle)                                                             \
    ck_assert_msg(strstr(out, (needle)) != NULL, "output '%s' lacks '%s'", out, (needle))

/* Number of points in collection `name`, or -1 when it (or the data directory) is absent. */
static long stored_count(const char *name)
{
    struct stat sb;
    if (stat(data, &sb) != 0) return -1;
    vd_store *st = NULL;
    vd_collection *c = NULL;
    vd_store_options o = {.read_only = 1};
    vd_err e;
    ck_assert_msg(vd_store_open(data, &o, &st, &e) == VD_OK, "open: %s", e.msg);
    long n = -1;
    if (vd_store_acquire(st, name, &c, NULL) == VD_OK) {
        vd_collection_info ci;
        vd_collection_info_get(c, &ci);
        n = (long)ci.count;
    }
    vd_collection_release(c);
    vd_store_close(st);
    return n;
}

/* Asserts that point `id` of `name` holds `want` (dim floats) and payload `payload`. */
static void expect_point(const char *name, uint64_t id, const float *want, uint32_t dim,
                         const char *payload)
{
    vd_store *st = NULL;
    vd_collection *c = NULL;
    vd_snapshot *s = NULL;
    vd_store_options o = {.read_only = 1};
    vd_err e;
    ck_assert_msg(vd_store_open(data, &o, &st, &e) == VD_OK, "open: %s", e.msg);
    ck_assert_int_eq(vd_store_acquire(st, name, &c, &e), VD_OK);
    ck_assert_uint_eq(vd_collection_params_of(c)->dim, dim);
    ck_assert_int_eq(vd_snapshot_begin(st, &s, &e), VD_OK);
    int found = 0;
    const float *vec = NULL;
    const uint8_t *pl = NULL;
    size_t pl_len = 0;
    ck_assert_int_eq(vd_snapshot_get(s, c, id, &found, &vec, &pl, &pl_len, &e), VD_OK);
    ck_assert_int_eq(found, 1);
    for (uint32_t j = 0; j < dim; j++) ck_assert_float_eq_tol(vec[j], want[j], 1e-6);
    if (payload) {
        ck_assert_uint_eq(pl_len, strlen(payload));
        ck_assert_int_eq(memcmp(pl, payload, pl_len), 0);
    } else {
        ck_assert_uint_eq(pl_len, 0);
    }
    vd_snapshot_end(s);
    vd_collection_release(c);
    vd_store_close(st);
}

static void expect_check_passes(void)
{
    ck_assert_msg(run("check --data %s", data) == 0, "check failed: %s", out);
}

/* n x dim values in -1..1 (not all zero), deterministic. */
static float *make_vectors(size_t n, uint32_t dim, uint32_t seed)
{
    float *v = malloc(n * dim * sizeof *v);
    uint64_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n * dim; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (float)((x >> 40) & 0xffff) / 32768.0f - 1.0f;
    }
    return v;
}

static void write_payloads(const char *path, size_t n)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < n; i++) fprintf(f, "{\"row\": %zu, \"text\": \"chunk %zu\"}\n", i, i);
    ck_assert_int_eq(fclose(f), 0);
}

/* ---- success per format ------------------------------------------------------------------ */
enum { N = 300, DIM = 12 };

START_TEST(npy_float32_with_ids_and_payloads)
{
    float *v = make_vectors(N, DIM, 1);
    vd_test_write_npy(path_of("v.npy"), "<f4", "(300, 12)", v, N * DIM * sizeof(float));
    uint64_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = 1000000007ull * (uint64_t)(N - i);
    vd_test_write_npy(path_of("ids.npy"), "<u8", "(300,)", ids, sizeof ids);
    write_payloads(path_of("p.jsonl"), N);
    ck_assert_msg(run("build --data %s --collection docs --input %s --ids %s --payloads %s "
                      "--m 8 --ef-construction 40 --threads 2",
                      data, path_of("v.npy"), path_of("ids.npy"), path_of("p.jsonl")) == 0,
                  "%s", out);
    ck_assert_out_has("built docs: 300 points, dim 12, l2, m 8, ef_construction 40");
    ck_assert_int_eq(stored_count("docs"), N);
    expect_point("docs", ids[0], v, DIM, "{\"row\": 0, \"text\": \"chunk 0\"}");
    expect_point("docs", ids[299], v + 299 * DIM, DIM, "{\"row\": 299, \"text\": \"chunk 299\"}");
    expect_check_passes();
    ck_assert_int_eq(run("info --data %s", data), 0);
    ck_assert_out_has("docs");
    free(v);
}
END_TEST

START_TEST(npy_float64_cosine)
{
    float *v = make_vectors(N, DIM, 2);
    double *d = malloc(N * DIM * sizeof *d);
    for (size_t i = 0; i < N * DIM; i++) d[i] = v[i];
    vd_test_write_npy(path_of("v.npy"), "<f8", "(300, 12)", d, N * DIM * sizeof(double));
    ck_assert_msg(run("build --data %s --collection c64 --input %s --metric cosine",
                      data, path_of("v.npy")) == 0, "%s", out);
    ck_assert_int_eq(stored_count("c64"), N);
    /* cosine stores the unit vector */
    float unit[DIM];
    double norm = 0;
    for (int j = 0; j < DIM; j++) norm += (double)v[7 * DIM + j] * v[7 * DIM + j];
    for (int j = 0; j < DIM; j++) unit[j] = (float)(v[7 * DIM + j] / sqrt(norm));
    expect_point("c64", 7, unit, DIM, NULL);
    expect_check_passes();
    free(d);
    free(v);
}
END_TEST

START_TEST(fvecs_and_bvecs_into_one_directory)
{
    float *v = make_vectors(N, DIM, 3);
    vd_test_write_vecs(path_of("v.fvecs"), v, N, DIM, 4);
    for (size_t i = 0; i < N * DIM; i++) v[i] = (float)(int)((v[i] + 1.0f) * 127.0f);
    for (size_t j = 0; j < DIM; j++) v[j] = (float)(j + 1); /* row 0 surely non-zero */
    vd_test_write_vecs(path_of("v.bvecs"), v, N, DIM, 1);
    ck_assert_msg(run("build --data %s --collection f --input %s --metric ip", data,
                      path_of("v.fvecs")) == 0, "%s", out);
    ck_assert_msg(run("build --data %s --collection b --input %s", data, path_of("v.bvecs")) == 0,
                  "%s", out);
    ck_assert_int_eq(stored_count("f"), N);
    ck_assert_int_eq(stored_count("b"), N);
    expect_point("b", 0, v, DIM, NULL);
    expect_point("b", 123, v + 123 * DIM, DIM, NULL);
    expect_check_passes();
    ck_assert_int_eq(run("info --data %s", data), 0);
    ck_assert_out_has("f");
    ck_assert_out_has("b");
    free(v);
}
END_TEST

START_TEST(existing_collection_needs_replace_and_others_stay)
{
    float *v = make_vectors(N, DIM, 4);
    vd_test_write_npy(path_of("v.npy"), "<f4", "(300, 12)", v, N * DIM * sizeof(float));
    vd_test_write_npy(path_of("w.npy"), "<f4", "(100, 12)", v, 100 * DIM * sizeof(float));
    ck_assert_int_eq(run("build --data %s --collection keep --input %s", data, path_of("v.npy")),
                     0);
    ck_assert_int_eq(run("build --data %s --collection x --input %s", data, path_of("v.npy")), 0);
    ck_assert_int_eq(run("build --data %s --collection x --input %s", data, path_of("w.npy")), 1);
    ck_assert_out_has("collection x already exists");
    ck_assert_int_eq(stored_count("x"), N);
    ck_assert_int_eq(run("build --data %s --collection x --input %s --replace", data,
                         path_of("w.npy")), 0);
    ck_assert_int_eq(stored_count("x"), 100);
    ck_assert_int_eq(stored_count("keep"), N);
    expect_check_passes();
    free(v);
}
END_TEST

/* The graph written by the build is the one served: reloaded from DIR, it answers with the
 * recall of an HNSW index, not a brute-force fallback nor a broken graph. */
START_TEST(reloaded_build_keeps_recall)
{
    enum { NR = 3000, DR = 24, NQ = 50, K = 10 };
    float *v = make_vectors(NR, DR, 8);
    vd_test_write_npy(path_of("v.npy"), "<f4", "(3000, 24)", v, NR * DR * sizeof(float));
    ck_assert_msg(run("build --data %s --collection r --input %s --m 12 --ef-construction 100 "
                      "--threads 2", data, path_of("v.npy")) == 0, "%s", out);
    vd_store *st = NULL;
    vd_collection *c = NULL;
    vd_store_options o = {.read_only = 1};
    vd_err e;
    ck_assert_msg(vd_store_open(data, &o, &st, &e) == VD_OK, "open: %s", e.msg);
    ck_assert_int_eq(vd_store_acquire(st, "r", &c, &e), VD_OK);
    vd_index *ix = vd_collection_index(c);
    ck_assert_int_eq(vd_index_validate(ix, &e), VD_OK);
    float *q = make_vectors(NQ, DR, 9);
    size_t hit = 0;
    for (int i = 0; i < NQ; i++) {
        vd_hit got[K], want[K];
        uint32_t n_got = 0, n_want = 0;
        ck_assert_int_eq(vd_index_search(ix, q + i * DR, K, 64, got, &n_got, &e), VD_OK);
        ck_assert_int_eq(vd_index_search_exact(ix, q + i * DR, K, want, &n_want, &e), VD_OK);
        ck_assert_uint_eq(n_got, K);
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++) hit += got[a].id == want[b].id;
    }
    double recall = (double)hit / (NQ * K);
    ck_assert_msg(recall >= 0.95, "recall@10 %.3f after reload", recall);
    vd_collection_release(c);
    vd_store_close(st);
    free(q);
    free(v);
}
END_TEST

/* ---- bad arguments: exit 2, one line -------------------------------------------------- */
START_TEST(bad_arguments_exit_2_with_one_line)
{
    float v[DIM] = {1};
    vd_test_write_npy(path_of("v.npy"), "<f4", "(1, 12)", v, sizeof v);
    const char *in = path_of("v.npy");
    static const struct {
        const char *args, *msg;
    } cases[] = {
        {"build --data %s --collection a --input %s --frobnicate 3", "--frobnicate: unknown flag"},
        {"build --data %s --input %s", "--collection NAME is required"},
        {"build --data %s --collection a --input %s --m 0", "--m 0: expected 2..128"},
        {"build --data %s --collection a --input %s --threads many",
         "--threads many: expected 1..1024"},
        {"build --data %s --collection a --input %s --ef-construction 1e3",
         "--ef-construction 1e3: expected 1..10000"},
        {"build --data %s --collection a/b --input %s", "--collection a/b: collection name has"},
        {"build --data %s --collection a --input %s --metric hamming",
         "--metric hamming: expected l2, cosine or ip"},
        {"build --data %s --collection a --input %s --ids", "--ids: needs a value"},
        {"build --data %s --collection a --input %s --replace=yes", "--replace yes: takes no"},
        {"build --data %s --collection a --input %s extra", "argument extra: unexpected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(run(cases[i].args, data, in), 2);
        ck_assert_out_has(cases[i].msg);
        ck_assert_out_has("(try vectord build --help)\n");
        ck_assert_msg(strchr(out, '\n') == out + strlen(out) - 1, "not one line: %s", out);
    }
    ck_assert_int_eq(run("build --input %s --collection a", in), 2);
    ck_assert_out_has("--data DIR is required");
    ck_assert_int_eq(run("build --help"), 0);
    ck_assert_out_has("usage: vectord build");
    struct stat sb;
    ck_assert_int_ne(stat(data, &sb), 0); /* nothing was created */
}
END_TEST

/* Each parameter flag's bounds are the table's (index/vd_index.h), checked before the input
 * is opened: the input named here does not exist, so an exit 2 (not "cannot open input",
 * exit 1) shows that nothing was read; and the extremes the table allows really build. */
START_TEST(parameter_limits_come_from_the_table_before_the_input)
{
    static const struct {
        const char *flag;
        vd_param p;
    } flags[] = {{"--m", VD_PARAM_M},
                 {"--ef-construction", VD_PARAM_EF_CONSTRUCTION},
                 {"--ef-search", VD_PARAM_EF_SEARCH}};
    const char *missing = path_of("missing.npy");
    for (size_t i = 0; i < VD_ARRAY_LEN(flags); i++) {
        const vd_param_info *pi = vd_param_info_of(flags[i].p);
        char want[64];
        snprintf(want, sizeof want, "expected %u..%u", pi->min, pi->max);
        const uint32_t refused[] = {0, pi->min - 1, pi->max + 1, 20000};
        for (size_t j = 0; j < VD_ARRAY_LEN(refused); j++) {
            if (j == 1 && pi->min == 1) continue; /* the same 0 as above */
            if (refused[j] >= pi->min && refused[j] <= pi->max) continue;
            ck_assert_int_eq(run("build --data %s --collection a --input %s %s %u", data,
                                 missing, flags[i].flag, refused[j]), 2);
            ck_assert_out_has(want);
        }
    }
    struct stat sb;
    ck_assert_int_ne(stat(data, &sb), 0);
    /* serve's --max-k is bounded by the table's k. */
    const vd_param_info *k = vd_param_info_of(VD_PARAM_K);
    char want[64];
    snprintf(want, sizeof want, "--max-k %u: expected %u..%u", k->max + 1, k->min, k->max);
    ck_assert_int_eq(run("serve --data %s --max-k %u", data, k->max + 1), 2);
    ck_assert_out_has(want);
    ck_assert_int_ne(stat(data, &sb), 0);
    const vd_param_info *m = vd_param_info_of(VD_PARAM_M);
    const vd_param_info *efc = vd_param_info_of(VD_PARAM_EF_CONSTRUCTION);
    const vd_param_info *efs = vd_param_info_of(VD_PARAM_EF_SEARCH);
    float *v = make_vectors(N, DIM, 11);
    vd_test_write_npy(path_of("v.npy"), "<f4", "(300, 12)", v, N * DIM * sizeof(float));
    free(v);
    ck_assert_msg(run("build --data %s --collection hi --input %s --m %u --ef-construction %u "
                      "--ef-search %u", data, path_of("v.npy"), m->max, efc->max, efs->max) == 0,
                  "%s", out);
    ck_assert_int_eq(stored_count("hi"), N);
    expect_check_passes();
    ck_assert_msg(run("build --data %s --collection lo --input %s --m %u --ef-construction %u "
                      "--ef-search %u", data, path_of("v.npy"), m->min, efc->min, efs->min) == 0,
                  "%s", out);
    ck_assert_int_eq(stored_count("lo"), N);
    expect_check_passes();
}
END_TEST

/* The input's dim is checked against the same table as its header is read: the largest dim
 * builds, one more is refused before the data directory is created. */
START_TEST(input_dim_limit_comes_from_the_table)
{
    const vd_param_info *pi = vd_param_info_of(VD_PARAM_DIM);
    size_t n = 3, dim = pi->max + 1;
    float *v = make_vectors(n, (uint32_t)dim, 12);
    char shape[64], want[64];
    snprintf(shape, sizeof shape, "(%zu, %zu)", n, dim);
    vd_test_write_npy(path_of("wide.npy"), "<f4", shape, v, n * dim * sizeof(float));
    ck_assert_int_eq(run("build --data %s --collection w --input %s", data, path_of("wide.npy")),
                     1);
    snprintf(want, sizeof want, "dim %zu is outside %u..%u", dim, pi->min, pi->max);
    ck_assert_out_has(want);
    struct stat sb;
    ck_assert_int_ne(stat(data, &sb), 0);
    dim = pi->max;
    snprintf(shape, sizeof shape, "(%zu, %zu)", n, dim);
    vd_test_write_npy(path_of("max.npy"), "<f4", shape, v, n * dim * sizeof(float));
    ck_assert_msg(run("build --data %s --collection w --input %s", data, path_of("max.npy")) == 0,
                  "%s", out);
    ck_assert_int_eq(stored_count("w"), (long)n);
    free(v);
}
END_TEST

/* The help quotes the table's range and default of every parameter flag. */
START_TEST(help_quotes_the_parameter_table)
{
    static const struct {
        const char *cmd, *flag;
        vd_param p;
        uint32_t def; /* 0: the table's */
    } flags[] = {{"build", "--m M ", VD_PARAM_M, 0},
                 {"build", "--ef-construction EF ", VD_PARAM_EF_CONSTRUCTION, 0},
                 {"build", "--ef-search EF ", VD_PARAM_EF_SEARCH, 0},
                 {"serve", "--max-k N ", VD_PARAM_K, 10000}};
    for (size_t i = 0; i < VD_ARRAY_LEN(flags); i++) {
        ck_assert_int_eq(run("%s --help", flags[i].cmd), 0);
        const vd_param_info *pi = vd_param_info_of(flags[i].p);
        const char *line = strstr(out, flags[i].flag);
        ck_assert_msg(line != NULL, "%s --help lacks %s: %s", flags[i].cmd, flags[i].flag, out);
        char want[64];
        snprintf(want, sizeof want, ", %u..%u [%u]\n", pi->min, pi->max,
                 flags[i].def ? flags[i].def : pi->def);
        const char *found = strstr(line, want), *eol = strchr(line, '\n');
        ck_assert_msg(found && found + strlen(want) - 1 == eol, "%s --help: '%.*s' lacks '%s'",
                      flags[i].cmd, (int)(eol - line), line, want);
    }
}
END_TEST

/* ---- bad input: exit 1, the reason, no collection ------------------------------------- */
START_TEST(bad_inputs_fail_and_leave_no_collection)
{
    float *v = make_vectors(N, DIM, 5);
    /* A good collection first, so the directory exists and must stay clean. */
    vd_test_write_npy(path_of("good.npy"), "<f4", "(300, 12)", v, N * DIM * sizeof(float));
    ck_assert_int_eq(run("build --data %s --collection good --input %s", data,
                         path_of("good.npy")), 0);

    vd_test_write_vecs(path_of("trunc.fvecs"), v, N, DIM, 4);
    truncate(path_of("trunc.fvecs"), N * (4 + DIM * 4) - 3);
    vd_test_write_bytes(path_of("magic.npy"), "not an npy file at all, really", 30);
    vd_test_write_npy(path_of("1d.npy"), "<f4", "(3600,)", v, N * DIM * sizeof(float));
    vd_test_write_npy(path_of("int.npy"), "<i4", "(300, 12)", v, N * DIM * sizeof(float));
    vd_test_write_npy_v(path_of("fortran.npy"), 1,
                        "{'descr': '<f4', 'fortran_order': True, 'shape': (300, 12), }", 64, v,
                        N * DIM * sizeof(float));
    float *nan = make_vectors(N, DIM, 5);
    nan[250 * DIM + 11] = NAN;
    vd_test_write_npy(path_of("nan.npy"), "<f4", "(300, 12)", nan, N * DIM * sizeof(float));
    int64_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = i;
    vd_test_write_npy(path_of("ids299.npy"), "<i8", "(299,)", ids, 299 * 8);
    ids[200] = 17;
    vd_test_write_npy(path_of("dup.npy"), "<i8", "(300,)", ids, sizeof ids);
    write_payloads(path_of("p299.jsonl"), 299);
    write_payloads(path_of("bad.jsonl"), N);
    FILE *f = fopen(path_of("bad.jsonl"), "a");
    fputs("[\"not an object\"]\n", f);
    fclose(f);
    /* the 301st line makes the count wrong; build a 300-line file with line 5 bad instead */
    f = fopen(path_of("bad300.jsonl"), "w");
    for (int i = 0; i < N; i++) fputs(i == 4 ? "[1, 2]\n" : "{\"ok\": true}\n", f);
    fclose(f);

    static const struct {
        const char *file, *extra, *msg;
    } cases[] = {
        {"missing.npy", "", "cannot open input"},
        {"trunc.fvecs", "", "truncated"},
        {"magic.npy", "", "bad magic"},
        {"1d.npy", "", "is not 2-D"},
        {"int.npy", "", "dtype '<i4' is not supported"},
        {"fortran.npy", "", "Fortran order"},
        {"nan.npy", "", "row 250: component 11 is NaN"},
        {"good.npy", "--ids ids299.npy", "299 ids for 300 vectors"},
        {"good.npy", "--ids dup.npy", "id 17 appears more than once (rows 17 and 200)"},
        {"good.npy", "--payloads p299.jsonl", "299 payload lines for 300 vectors"},
        {"good.npy", "--payloads bad.jsonl", "301 payload lines for 300 vectors"},
        {"good.npy", "--payloads bad300.jsonl", "line 5 is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[256] = "";
        if (*cases[i].extra) {
            const char *sp = strchr(cases[i].extra, ' ');
            snprintf(extra, sizeof extra, "%.*s %s", (int)(sp - cases[i].extra), cases[i].extra,
                     path_of(sp + 1));
        }
        ck_assert_int_eq(run("build --data %s --collection bad --input %s %s", data,
                             path_of(cases[i].file), extra), 1);
        ck_assert_out_has(cases[i].msg);
        ck_assert_int_eq(stored_count("bad"), -1);
    }
    ck_assert_int_eq(stored_count("good"), N);
    expect_check_passes();
    free(nan);
    free(v);
}
END_TEST

/* On a terminal the build draws a progress line per phase; elsewhere only the summary. */
START_TEST(progress_line_on_a_terminal_only)
{
    float *v = make_vectors(2000, 16, 10);
    vd_test_write_npy(path_of("v.npy"), "<f4", "(2000, 16)", v, 2000 * 16 * sizeof(float));
    free(v);
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    ck_assert_int_ge(master, 0);
    ck_assert_int_eq(grantpt(master), 0);
    ck_assert_int_eq(unlockpt(master), 0);
    const char *slave_name = ptsname(master);
    ck_assert_ptr_nonnull(slave_name);
    char slave_path[64];
    snprintf(slave_path, sizeof slave_path, "%s", slave_name);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(slave_path, O_RDWR);
        if (fd < 0) _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        close(master);
        char dd[160], in[160];
        snprintf(dd, sizeof dd, "%s", data);
        snprintf(in, sizeof in, "%s", path_of("v.npy"));
        execl(binary(), binary(), "build", "--data", dd, "--collection", "tty", "--input", in,
              (char *)NULL);
        _exit(127);
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(master, out + n, sizeof out - 1 - n);
        if (r <= 0) break; /* EIO once the child has closed the terminal */
        n += (size_t)r;
    }
    out[n] = 0;
    close(master);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    ck_assert_out_has("\r  building 0/2000 points");
    ck_assert_out_has("\r  building 2000/2000 points");
    ck_assert_out_has(" pts/s  ETA ");
    ck_assert_out_has("\r  writing ");
    ck_assert_out_has("built tty: 2000 points");
    /* Not a terminal: the summary alone. */
    ck_assert_int_eq(run("build --data %s --collection plain --input %s", data,
                         path_of("v.npy")), 0);
    ck_assert_msg(strstr(out, "building") == NULL && strncmp(out, "built plain:", 12) == 0,
                  "unexpected output: %s", out);
}
END_TEST

/* ---- interruption ------------------------------------------------------------------------ */
/* Starts a build that takes about a second or more, waits until it is past the input checks
 * (the data directory exists), lets it run a little, and sends `sig`. */
static int interrupt_build(int sig, const char *name)
{
    size_t n = 40000;
    uint32_t dim = 48;
    float *v = make_vectors(n, dim, 6);
    vd_test_write_npy(path_of("big.npy"), "<f4", "(40000, 48)", v, n * dim * sizeof(float));
    free(v);
    pid_t pid = start("build --data %s --collection %s --input %s --ef-construction 400 "
                      "--threads 2", data, name, path_of("big.npy"));
    struct stat sb;
    for (int i = 0; i < 2000 && stat(data, &sb) != 0; i++) usleep(1000);
    usleep(200 * 1000);
    ck_assert_int_eq(kill(pid, sig), 0);
    return finish(pid);
}

START_TEST(kill_9_mid_build_leaves_no_collection)
{
    float *v = make_vectors(N, DIM, 7);
    vd_test_write_npy(path_of("v.npy"), "<f4", "(300, 12)", v, N * DIM * sizeof(float));
    free(v);
    ck_assert_int_eq(run("build --data %s --collection other --input %s", data,
                         path_of("v.npy")), 0);
    int rc = interrupt_build(SIGKILL, "big");
    ck_assert_msg(rc == 128 + SIGKILL, "build was not killed mid-way (exit %d): %s", rc, out);
    expect_check_passes();
    ck_assert_int_eq(stored_count("big"), -1);
    ck_assert_int_eq(stored_count("other"), N);
}
END_TEST

START_TEST(sigint_mid_build_exits_130_and_leaves_no_collection)
{
    int rc = interrupt_build(SIGINT, "big");
    ck_assert_msg(rc == 130, "exit %d: %s", rc, out);
    ck_assert_out_has("interrupted; no collection was written");
    expect_check_passes();
    ck_assert_int_eq(stored_count("big"), -1);
}
END_TEST

Suite *build_cmd_suite(void)
{
    Suite *s = suite_create("build_cmd");
    TCase *tc = tcase_create("cmd");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, npy_float32_with_ids_and_payloads);
    tcase_add_test(tc, npy_float64_cosine);
    tcase_add_test(tc, fvecs_and_bvecs_into_one_directory);
    tcase_add_test(tc, existing_collection_needs_replace_and_others_stay);
    tcase_add_test(tc, reloaded_build_keeps_recall);
    tcase_add_test(tc, progress_line_on_a_terminal_only);
    tcase_add_test(tc, bad_arguments_exit_2_with_one_line);
    tcase_add_test(tc, parameter_limits_come_from_the_table_before_the_input);
    tcase_add_test(tc, input_dim_limit_comes_from_the_table);
    tcase_add_test(tc, help_quotes_the_parameter_table);
    tcase_add_test(tc, bad_inputs_fail_and_leave_no_collection);
    tcase_add_test(tc, kill_9_mid_build_leaves_no_collection);
    tcase_add_test(tc, sigint_mid_build_exits_130_and_leaves_no_collection);
    suite_add_tcase(s, tc);
    return s;
}
