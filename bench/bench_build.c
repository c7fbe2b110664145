/* bench/bench_build.c: build/bench-build - the offline bulk build (`vectord build`, the real
 * command, end to end) next to hnswlib building the same vectors with the same M,
 * ef_construction, seed and threads, in one run.
 *
 * vectord is timed as a user runs it: a child process `vectord build --data TMP ...` from the
 * input file to the synced commit, wall time and the child's peak RSS (wait4's ru_maxrss);
 * its summary line gives the index phase and the write phase apart. hnswlib is timed in this
 * process on the same vectors, loaded beforehand (so its time is the index build only, which
 * favours it: vectord's total also reads the file and writes the data directory). Builds
 * alternate which system goes first; --builds B quotes medians of B.
 *
 * Input: --data DIR (DIR/base.fvecs or base.bvecs; metric from the -l2/-cosine/-ip suffix),
 * --input FILE (.fvecs/.bvecs), or --synthetic NxD (bench_common's seeded gaussian mixture,
 * written once to a float32 .npy in --tmp, which vectord build uses in place).
 * Output: a table on stdout, or with --json the table on stderr and one JSON object per
 * system on stdout.
 *
 * Rejected: calling the build code in-process (it would skip argument parsing, input checks
 * and the process's own memory behaviour, which is what a batch job pays). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_common.h"
#include "bench/hnswlib_peer.h"

#define MAX_BUILDS 15
#define MB (1024.0 * 1024.0)

typedef struct options {
    const char *data_dir, *input, *synthetic, *vectord, *tmp;
    vd_metric metric;
    int metric_given, json;
    uint32_t m, ef_construction, threads, builds;
    uint64_t seed;
} options;

typedef struct result {
    double total_s[MAX_BUILDS], index_s[MAX_BUILDS], write_s[MAX_BUILDS], rss_mb[MAX_BUILDS];
    uint32_t n;
} result;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bench-build (--data DIR | --input FILE | --synthetic NxD) [options]\n"
        "Times `vectord build` end to end (a child process: read, build, write, sync) and\n"
        "hnswlib building the same vectors in process, same M/ef_construction/threads/seed.\n"
        "\n"
        "  --data DIR            DIR/base.fvecs (or base.bvecs); metric from the -l2/-cosine/-ip\n"
        "                        suffix of the folder name\n"
        "  --input FILE          a .fvecs or .bvecs file\n"
        "  --synthetic NxD       seeded gaussian mixture, written once as .npy into --tmp\n"
        "  --metric M            l2, cosine or ip (default: folder suffix, else l2)\n"
        "  --m M                 (default 16)\n"
        "  --ef-construction E   (default 200)\n"
        "  --threads N           (default: all cores)\n"
        "  --builds B            builds per system, alternating order; medians (default 1)\n"
        "  --seed S              synthetic data and level seed (default 100)\n"
        "  --vectord PATH        the binary (default build/vectord)\n"
        "  --tmp DIR             scratch for data directories and synthetic input (default /tmp)\n"
        "  --json                one JSON object per system on stdout, the table on stderr\n"
        "  --help                this text\n");
}

static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"data", 1, 0, 'd'},    {"input", 1, 0, 'i'},  {"synthetic", 1, 0, 's'},
        {"metric", 1, 0, 'M'},  {"m", 1, 0, 'm'},      {"ef-construction", 1, 0, 'e'},
        {"threads", 1, 0, 't'}, {"builds", 1, 0, 'b'}, {"seed", 1, 0, 'S'},
        {"vectord", 1, 0, 'v'}, {"tmp", 1, 0, 'T'},    {"json", 0, 0, 'j'},
        {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    *o = (options){.vectord = "build/vectord",
                   .tmp = "/tmp",
                   .m = 16,
                   .ef_construction = 200,
                   .builds = 1,
                   .seed = 100};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end = NULL;
        unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;
        int num_ok = optarg && *optarg && end && *end == '\0';
        switch (c) {
        case 'd':
            o->data_dir = optarg;
            break;
        case 'i':
            o->input = optarg;
            break;
        case 's':
            o->synthetic = optarg;
            break;
        case 'v':
            o->vectord = optarg;
            break;
        case 'T':
            o->tmp = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'M':
            if (vd_metric_parse(optarg, &o->metric) != VD_OK) goto bad;
            o->metric_given = 1;
            break;
        case 'm':
            if (!num_ok || v < 2 || v > 128) goto bad;
            o->m = (uint32_t)v;
            break;
        case 'e':
            if (!num_ok || v < 1) goto bad;
            o->ef_construction = (uint32_t)v;
            break;
        case 't':
            if (!num_ok || v < 1 || v > 1024) goto bad;
            o->threads = (uint32_t)v;
            break;
        case 'b':
            if (!num_ok || v < 1 || v > MAX_BUILDS) goto bad;
            o->builds = (uint32_t)v;
            break;
        case 'S':
            if (!num_ok) goto bad;
            o->seed = v;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "bench-build: bad value '%s' for an option (try --help)\n", optarg);
        return -1;
    }
    if (optind < argc || (!!o->data_dir + !!o->input + !!o->synthetic) != 1) {
        fprintf(stderr, "bench-build: give exactly one of --data, --input, --synthetic\n");
        return -1;
    }
    if (!o->threads) o->threads = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    return 0;
}

/* Writes m as a float32 C-order .npy (format 1.0). */
static vd_status write_npy(const char *path, const vd_bench_fmat *m, vd_err *err)
{
    char hdr[128];
    int n =
        snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %u), }",
                 m->n, m->dim);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) return vd_err_set(err, VD_IO, "cannot write %s", path);
    uint16_t hlen = (uint16_t)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    size_t w = fwrite(m->data, sizeof(float) * m->dim, m->n, f);
    if (fclose(f) != 0 || w != m->n) return vd_err_set(err, VD_IO, "short write to %s", path);
    return VD_OK;
}

/* Runs `vectord build` into a fresh directory under o->tmp; fills one build of r. */
static int run_vectord(const options *o, const char *input, uint32_t round, result *r)
{
    char dir[4096], cmd_m[16], cmd_e[16], cmd_t[16], line[512] = "";
    snprintf(dir, sizeof dir, "%s/vd-bench-build-%d-%u", o->tmp, (int)getpid(), round);
    snprintf(cmd_m, sizeof cmd_m, "%u", o->m);
    snprintf(cmd_e, sizeof cmd_e, "%u", o->ef_construction);
    snprintf(cmd_t, sizeof cmd_t, "%u", o->threads);
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    uint64_t t0 = vd_now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        execl(o->vectord, o->vectord, "build", "--data", dir, "--collection", "bench", "--input",
              input, "--metric", vd_metric_name(o->metric), "--m", cmd_m, "--ef-construction",
              cmd_e, "--threads", cmd_t, (char *)NULL);
        perror("bench-build: exec vectord");
        _exit(127);
    }
    close(pfd[1]);
    FILE *out = fdopen(pfd[0], "r");
    while (out && fgets(line, sizeof line, out) && strncmp(line, "built ", 6) != 0) {
    }
    if (out) fclose(out);
    int status = 0;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench-build: %s build failed (status %d)\n", o->vectord, status);
        return -1;
    }
    double total = vd_bench_seconds(t0, vd_now_ns());
    /* "built NAME: N points, ... in 5.2 s (3863 pts/s), wrote 66.7 MB in 0.2 s" */
    const char *a = strstr(line, " in "), *b = a ? strstr(a + 4, " in ") : NULL;
    r->total_s[r->n] = total;
    r->index_s[r->n] = a ? atof(a + 4) : NAN;
    r->write_s[r->n] = b ? atof(b + 4) : NAN;
    r->rss_mb[r->n] = (double)ru.ru_maxrss * 1024.0 / MB;
    r->n++;
    char rm[4200];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (system(rm) != 0) fprintf(stderr, "bench-build: could not remove %s\n", dir);
    return 0;
}

static int run_hnswlib(const options *o, const vd_bench_fmat *v, result *r, double *bpv)
{
    char eb[256];
    hnswlib_peer *p = hnswlib_peer_create(v->dim, vd_metric_name(o->metric), o->m,
                                          o->ef_construction, o->seed, v->n, eb, sizeof eb);
    if (!p) {
        fprintf(stderr, "bench-build: hnswlib: %s\n", eb);
        return -1;
    }
    size_t before = vd_bench_current_rss();
    int peak_ok = vd_bench_reset_peak_rss() == 0;
    uint64_t t0 = vd_now_ns();
    int rc = hnswlib_peer_add(p, v->data, v->n, 0, o->threads, eb, sizeof eb);
    double s = vd_bench_seconds(t0, vd_now_ns());
    if (rc != 0) fprintf(stderr, "bench-build: hnswlib: %s\n", eb);
    r->total_s[r->n] = r->index_s[r->n] = s;
    r->write_s[r->n] = NAN;
    /* The index alone (the vectors were loaded before the build started). */
    r->rss_mb[r->n] = peak_ok ? ((double)vd_bench_peak_rss() - (double)before) / MB : NAN;
    r->n++;
    *bpv = hnswlib_peer_bytes_per_vector(p);
    hnswlib_peer_free(p);
    return rc;
}

static double med(const double *v, uint32_t n)
{
    double t[MAX_BUILDS];
    memcpy(t, v, n * sizeof *t);
    return vd_bench_median(t, n);
}

int main(int argc, char **argv)
{
    options o;
    int pr = parse_options(argc, argv, &o);
    if (pr) return pr > 0 ? 0 : 2;
    vd_err err = {0};
    vd_bench_fmat base = {0}, queries = {0};
    char input[4096], name[256];
    int rc = 1, made_input = 0;
    vd_bench_env env;
    vd_bench_env_get(&env);

    if (o.synthetic) {
        size_t n;
        uint32_t dim;
        if (vd_bench_parse_nxd(o.synthetic, &n, &dim, &err) != VD_OK ||
            vd_bench_synthetic(n, dim, 1, o.seed, &base, &queries, &err) != VD_OK)
            goto fail;
        if (!o.metric_given) o.metric = VD_METRIC_L2;
        snprintf(name, sizeof name, "synthetic-%zux%u-%s", n, dim, vd_metric_name(o.metric));
        snprintf(input, sizeof input, "%s/vd-bench-build-%d.npy", o.tmp, (int)getpid());
        if (write_npy(input, &base, &err) != VD_OK) goto fail;
        made_input = 1;
    } else {
        if (o.data_dir) {
            vd_bench_basename(o.data_dir, name, sizeof name);
            snprintf(input, sizeof input, "%s/base.fvecs", o.data_dir);
            if (access(input, R_OK) != 0)
                snprintf(input, sizeof input, "%s/base.bvecs", o.data_dir);
            if (!o.metric_given && vd_bench_metric_from_dir(o.data_dir, &o.metric) != VD_OK) {
                vd_err_set(&err, VD_INVALID, "%s has no -l2/-cosine/-ip suffix; give --metric",
                           o.data_dir);
                goto fail;
            }
        } else {
            vd_bench_basename(o.input, name, sizeof name);
            snprintf(input, sizeof input, "%s", o.input);
        }
        if (vd_bench_load_vectors(input, 0, &base, &err) != VD_OK) goto fail;
    }
    double raw_mb = (double)base.n * base.dim * sizeof(float) / MB;
    FILE *table = o.json ? stderr : stdout;
    fprintf(table,
            "\n== bulk build %s: n %zu, dim %u, %s | M %u, ef_construction %u, threads %u, "
            "builds %u\n   cpu %s (%u cores) | %s | commit %s\n",
            name, base.n, base.dim, vd_metric_name(o.metric), o.m, o.ef_construction, o.threads,
            o.builds, env.cpu, env.n_cores, env.cflags, env.commit);

    result vr = {0}, hr = {0};
    double h_bpv = 0;
    for (uint32_t b = 0; b < o.builds; b++) {
        for (int step = 0; step < 2; step++) {
            int vectord_turn = (step + (int)b) % 2 == 0;
            if (vectord_turn ? run_vectord(&o, input, b, &vr) : run_hnswlib(&o, &base, &hr, &h_bpv))
                goto done;
            fprintf(table, "   build %u: %s %.1f s\n", b + 1, vectord_turn ? "vectord" : "hnswlib",
                    vectord_turn ? vr.total_s[vr.n - 1] : hr.total_s[hr.n - 1]);
            fflush(table);
        }
    }
    double vt = med(vr.total_s, vr.n), vi = med(vr.index_s, vr.n), vw = med(vr.write_s, vr.n);
    double vm = med(vr.rss_mb, vr.n), ht = med(hr.total_s, hr.n), hm = med(hr.rss_mb, hr.n);
    fprintf(table,
            "   raw vectors %.1f MB\n"
            "   vectord build (whole command): %.1f s = index %.1f s + write %.1f s + input and "
            "exit %.1f s; %.0f points/s; peak RSS %.1f MB (%.2fx raw)\n"
            "   hnswlib build (index only):    %.1f s; %.0f points/s; index RSS %.1f MB "
            "(%.2fx raw)\n"
            "   ratio vectord/hnswlib: whole command %.2f, index phase %.2f (medians of %u)\n",
            raw_mb, vt, vi, vw, vt - vi - vw, base.n / vt, vm, vm / raw_mb, ht, base.n / ht, hm,
            hm / raw_mb, vt / ht, vi / ht, o.builds);
    if (o.json) {
        for (int s = 0; s < 2; s++) {
            vd_bench_json j;
            vd_bench_json_begin(&j);
            vd_bench_json_str(&j, "bench", "build");
            vd_bench_json_str(&j, "system", s ? "hnswlib" : "vectord");
            vd_bench_json_str(&j, "dataset", name);
            vd_bench_json_int(&j, "n", (long long)base.n);
            vd_bench_json_int(&j, "dim", base.dim);
            vd_bench_json_str(&j, "metric", vd_metric_name(o.metric));
            vd_bench_json_int(&j, "M", o.m);
            vd_bench_json_int(&j, "ef_construction", o.ef_construction);
            vd_bench_json_int(&j, "threads", o.threads);
            vd_bench_json_int(&j, "builds", o.builds);
            vd_bench_json_num(&j, "build_s", s ? ht : vt);
            vd_bench_json_num(&j, "index_s", s ? ht : vi);
            vd_bench_json_num(&j, "write_s", s ? NAN : vw);
            vd_bench_json_num(&j, "peak_rss_mb", s ? hm : vm);
            vd_bench_json_num(&j, "raw_vectors_mb", raw_mb);
            if (s) vd_bench_json_num(&j, "bytes_per_vector", h_bpv);
            vd_bench_json_str(&j, "cpu", env.cpu);
            vd_bench_json_str(&j, "cflags", env.cflags);
            vd_bench_json_str(&j, "commit", env.commit);
            vd_bench_json_end(&j, stdout);
        }
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench-build: %s\n", err.msg);
done:
    if (made_input) unlink(input);
    vd_bench_fmat_free(&base);
    vd_bench_fmat_free(&queries);
    return rc;
}
