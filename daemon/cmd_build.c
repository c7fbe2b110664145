/* daemon/cmd_build.c: `vectord build`, the offline bulk build: a file of vectors (plus
 * optional ids and JSON payloads) becomes a new collection in a data directory that `serve`
 * opens at once.
 *
 * Phases, in this order, so that bad input costs seconds and never touches DIR:
 *   1. arguments (exit 2 with one line on anything wrong);
 *   2. input: the vectors are opened and read once in full (record dims, NaN/Inf, zero rows
 *      under cosine), the ids checked (count, sign, duplicates), each payload line checked as
 *      a JSON object, all before the data directory is opened or created;
 *   3. the store is opened (created if missing) and an existing collection of that name is
 *      refused unless --replace, before the long build;
 *   4. the index is built in memory with vd_index_add_batch on --threads workers, fed chunk by
 *      chunk from the input mapping (float32 .npy in place, other formats converted into one
 *      chunk buffer); pages behind each chunk are dropped, so memory holds the index's own copy
 *      of the vectors plus about one chunk of input, not the input twice;
 *   5. the input vectors are unmapped, and vd_store_import writes points, payloads and graph in
 *      ONE LMDB transaction.
 *
 * All or nothing: until the commit in phase 5 nothing is visible in DIR, and the commit is
 * atomic, so Ctrl-C, kill -9 or a failure at any point leaves either no collection or the
 * complete one. SIGINT/SIGTERM therefore just end the process (after finishing the progress
 * line): there is nothing to roll back. Other collections in DIR are never touched; with
 * --replace the old collection is dropped in the same transaction as the new one is written.
 *
 * Output: on a terminal (isatty(stderr)) a progress line per phase, redrawn about twice a
 * second from the index's and the store's progress callbacks (which run on this thread);
 * otherwise nothing until the one-line summary on stdout. Errors are one line on stderr.
 *
 * Rejected: building into a temporary directory and renaming it into place (DIR may hold
 * other collections, which a rename would replace, and the storage import already gives the
 * atomicity); one add_batch over the whole input (simpler, but with converted formats it needs
 * the whole converted copy next to the index, and with in-place .npy the whole mapping
 * becomes resident: two copies at the peak instead of one). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon_int.h"
#include "daemon/input.h"
#include "index/vd_index.h"
#include "storage/vd_storage.h"

/* Rows per add_batch call: big enough that thread start/join at chunk edges is noise, small
 * enough that one chunk of converted input is small next to the index. */
#define CHUNK_BYTES ((size_t)8 << 20)

static const char usage_text[] =
    "usage: vectord build --data DIR --collection NAME --input FILE [options]\n"
    "\n"
    "Builds a collection offline from a file of vectors, on all cores, into the data\n"
    "directory DIR (created if missing; other collections are left untouched). The\n"
    "collection appears complete or not at all: an interrupted or failed build leaves none.\n"
    "\n"
    "  --data DIR               data directory (created if missing)\n"
    "  --collection NAME        collection to create: [A-Za-z0-9_-]{1,64}\n"
    "  --input FILE             vectors: .npy (float32/float64, 2-D, C order), .fvecs, .bvecs\n"
    "  --ids FILE               ids: .npy of int64/uint64, one per vector (default 0..n-1)\n"
    "  --payloads FILE          JSON Lines: one JSON object per vector, in order\n"
    "  --metric l2|cosine|ip    distance (default l2)\n"
    "  --m M                    HNSW links per node, 2..128 (default 16)\n"
    "  --ef-construction EF     build-time candidate list, 1..100000 (default 200)\n"
    "  --ef-search EF           collection's default search ef, 1..100000 (default 100)\n"
    "  --threads N              build threads, 1..1024 (default: all cores)\n"
    "  --replace                replace an existing collection of that name\n"
    "  --help                   this text\n"
    "\n"
    "Exit status: 0 built, 1 failed (nothing written), 2 bad arguments, 130 interrupted.\n";

typedef struct build_args {
    const char *data, *collection, *input, *ids, *payloads;
    vd_metric metric;
    uint32_t m, ef_construction, ef_search, threads;
    int replace;
} build_args;

static int bad_args(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "vectord build: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (try vectord build --help)\n");
    return 2;
}

static int parse_u32(const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)s[0])) goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) goto bad;
    *out = (uint32_t)v;
    return 0;
bad:
    fprintf(stderr, "vectord build: %s wants an integer in %" PRIu32 "..%" PRIu32 ", got '%s'\n",
            flag, lo, hi, s);
    return 2;
}

/* Returns -1 to go on, or the exit status (0 after --help, 2 on bad arguments). */
static int parse_args(int argc, char **argv, build_args *a)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    memset(a, 0, sizeof *a);
    a->metric = VD_METRIC_L2;
    a->m = 16;
    a->ef_construction = 200;
    a->ef_search = 100;
    a->threads = cores > 0 && cores < 1024 ? (uint32_t)cores : 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!strcmp(arg, "--replace")) {
            a->replace = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) return bad_args("unexpected argument '%s'%s", arg, "");
        /* --flag value or --flag=value */
        char flag[32];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (flen >= sizeof flag) return bad_args("unknown option '%s'%s", arg, "");
        memcpy(flag, arg, flen);
        flag[flen] = 0;
        static const char *const known[] = {"--data", "--collection", "--input", "--ids",
                                            "--payloads", "--metric", "--m",
                                            "--ef-construction", "--ef-search", "--threads"};
        int k = -1;
        for (size_t j = 0; j < VD_ARRAY_LEN(known); j++)
            if (!strcmp(flag, known[j])) k = (int)j;
        if (k < 0) return bad_args("unknown option '%s'%s", flag, "");
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return bad_args("%s needs a value%s", flag, "");
        if (!*val) return bad_args("%s needs a value%s", flag, "");
        switch (k) {
        case 0: a->data = val; break;
        case 1: a->collection = val; break;
        case 2: a->input = val; break;
        case 3: a->ids = val; break;
        case 4: a->payloads = val; break;
        case 5:
            if (vd_metric_parse(val, &a->metric) != VD_OK)
                return bad_args("--metric wants l2, cosine or ip, got '%s'%s", val, "");
            break;
        case 6:
            if (parse_u32("--m", val, 2, VD_M_MAX, &a->m)) return 2;
            break;
        case 7:
            if (parse_u32("--ef-construction", val, 1, 100000, &a->ef_construction)) return 2;
            break;
        case 8:
            if (parse_u32("--ef-search", val, 1, 100000, &a->ef_search)) return 2;
            break;
        case 9:
            if (parse_u32("--threads", val, 1, 1024, &a->threads)) return 2;
            break;
        }
    }
    if (!a->data) return bad_args("--data DIR is required%s%s", "", "");
    if (!a->collection) return bad_args("--collection NAME is required%s%s", "", "");
    if (!a->input) return bad_args("--input FILE is required%s%s", "", "");
    vd_err e;
    if (vd_name_check(a->collection, &e) != VD_OK) {
        fprintf(stderr, "vectord build: bad collection name '%s': %s\n", a->collection, e.msg);
        return 2;
    }
    return -1;
}

/* ---- progress ---------------------------------------------------------------------------- */
typedef struct progress {
    int tty;
    int shown;          /* a progress line is on screen (needs a newline before other output) */
    const char *phase;  /* "building", "writing" */
    const char *unit;   /* "points", "records" */
    int chunked;        /* building: callbacks count within the current add_batch chunk */
    size_t base;        /* points done before the current add_batch chunk */
    size_t total;
    uint64_t t0_ns, last_ns;
} progress;

static progress prog;
static volatile sig_atomic_t progress_on_screen; /* read by the signal handler */

static void progress_draw(progress *p, size_t done, int force)
{
    if (!p->tty) return;
    uint64_t now = vd_now_ns();
    if (!force && now - p->last_ns < 450000000ull) return;
    p->last_ns = now;
    double s = (double)(now - p->t0_ns) / 1e9;
    double rate = s > 0 ? (double)done / s : 0;
    char eta[32] = "-:--";
    if (rate > 0 && done < p->total) {
        unsigned long left = (unsigned long)((double)(p->total - done) / rate + 0.5);
        if (left >= 3600)
            snprintf(eta, sizeof eta, "%lu:%02lu:%02lu", left / 3600, left / 60 % 60, left % 60);
        else snprintf(eta, sizeof eta, "%lu:%02lu", left / 60, left % 60);
    } else if (done >= p->total) {
        snprintf(eta, sizeof eta, "0:00");
    }
    fprintf(stderr, "\r  %-8s %zu/%zu %s  %.0f %s/s  ETA %s\033[K", p->phase, done, p->total,
            p->unit, rate, p->chunked ? "pts" : p->unit, eta);
    fflush(stderr);
    p->shown = 1;
    progress_on_screen = 1;
}

static void progress_start(progress *p, const char *phase, const char *unit, int chunked,
                           size_t total)
{
    if (p->shown) fputc('\n', stderr);
    p->shown = 0;
    p->phase = phase;
    p->unit = unit;
    p->chunked = chunked;
    p->base = 0;
    p->total = total;
    p->t0_ns = vd_now_ns();
    p->last_ns = 0;
    if (chunked) progress_draw(p, 0, 1); /* the store's total is known at its first call */
}

static void progress_end(progress *p)
{
    if (p->shown) fputc('\n', stderr);
    p->shown = 0;
    progress_on_screen = 0;
}

static void on_progress(void *ctx, size_t done, size_t total)
{
    progress *p = ctx;
    if (p->chunked) {
        progress_draw(p, p->base + done, 0); /* total is the chunk's; p->total the input's */
    } else {
        p->total = total; /* the store counts its own records */
        progress_draw(p, done, 0);
    }
}

/* Nothing is committed before vd_store_import's commit, and that commit is atomic: an
 * interrupt only needs to end the process. Async-signal-safe: write(2) and _exit(2) only. */
static void on_signal(int sig)
{
    static const char msg[] = "vectord build: interrupted; no collection was written\n";
    if (progress_on_screen) (void)!write(2, "\n", 1);
    (void)!write(2, msg, sizeof msg - 1);
    _exit(128 + sig);
}

static int fail_line(const vd_err *e)
{
    progress_end(&prog);
    fprintf(stderr, "vectord build: %s\n", e->msg);
    return 1;
}

/* ---- the command ------------------------------------------------------------------------- */
int vd_cmd_build(int argc, char **argv)
{
    build_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;

    vd_vectors_file *vf = NULL;
    vd_ids_file *idf = NULL;
    vd_payloads_file *pf = NULL;
    vd_store *st = NULL;
    vd_index *ix = NULL;
    vd_collection *coll = NULL;
    float *chunk = NULL;
    vd_err e = {0};
    rc = 1;

    memset(&prog, 0, sizeof prog);
    prog.tty = isatty(STDERR_FILENO);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    /* 2. Input, checked in full before DIR is touched. */
    if (vd_vectors_open(a.input, &vf, &e) != VD_OK) return fail_line(&e);
    const size_t n = vd_vectors_count(vf);
    const uint32_t dim = vd_vectors_dim(vf);
    const int refuse_zero = a.metric == VD_METRIC_COSINE;
    size_t chunk_rows = CHUNK_BYTES / ((size_t)dim * sizeof(float));
    if (chunk_rows == 0) chunk_rows = 1;
    if (chunk_rows > n) chunk_rows = n;
    if (!vd_vectors_in_place(vf)) {
        chunk = vd_malloc(chunk_rows * dim * sizeof(float));
        if (!chunk) {
            vd_err_set(&e, VD_NOMEM, "out of memory for a %zu-row input chunk", chunk_rows);
            goto fail;
        }
    }
    for (size_t first = 0; first < n; first += chunk_rows) {
        size_t rows = n - first < chunk_rows ? n - first : chunk_rows;
        const float *v;
        if (vd_vectors_rows(vf, first, rows, chunk, refuse_zero, &v, &e) != VD_OK) goto fail;
        vd_vectors_release(vf, first, rows);
    }
    if (vd_ids_open(a.ids, n, &idf, &e) != VD_OK) goto fail;
    if (a.payloads &&
        vd_payloads_open(a.payloads, n, vd_json_check_object, &pf, &e) != VD_OK)
        goto fail;

    /* 3. The store, and the name. */
    vd_store_options so = {.create = 1, .n_threads = a.threads};
    if (vd_store_open(a.data, &so, &st, &e) != VD_OK) goto fail;
    if (vd_store_acquire(st, a.collection, &coll, NULL) == VD_OK && !a.replace) {
        vd_err_set(&e, VD_EXISTS, "collection %s already exists in %s (--replace replaces it)",
                   a.collection, a.data);
        goto fail;
    }
    vd_collection_release(coll);
    coll = NULL;

    /* 4. The index, chunk by chunk. */
    vd_index_params ip = {.dim = dim,
                          .metric = a.metric,
                          .m = a.m,
                          .ef_construction = a.ef_construction,
                          .seed = 0x5eedb011dull,
                          .capacity_hint = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n};
    if (vd_index_open(&ip, &ix, &e) != VD_OK) goto fail;
    vd_index_set_ef_search(ix, a.ef_search);
    const uint64_t *ids = vd_ids_get(idf);
    uint64_t t_build = vd_now_ns();
    progress_start(&prog, "building", "points", 1, n);
    for (size_t first = 0; first < n; first += chunk_rows) {
        size_t rows = n - first < chunk_rows ? n - first : chunk_rows;
        const float *v;
        if (vd_vectors_rows(vf, first, rows, chunk, refuse_zero, &v, &e) != VD_OK) goto fail;
        /* Converted rows live in `chunk` now; in-place rows are needed until added. */
        if (v == chunk) vd_vectors_release(vf, first, rows);
        prog.base = first;
        if (vd_index_add_batch(ix, ids + first, v, rows, a.threads, on_progress, &prog, &e) !=
            VD_OK)
            goto fail;
        vd_vectors_release(vf, first, rows);
        progress_draw(&prog, first + rows, first + rows == n);
    }
    double build_s = (double)(vd_now_ns() - t_build) / 1e9;
    /* The index holds its own copy now: drop the input before the write phase. */
    vd_free(chunk);
    chunk = NULL;
    vd_vectors_close(vf);
    vf = NULL;

    /* 5. One transaction. */
    vd_collection_params cp = {.dim = dim,
                               .metric = a.metric,
                               .m = a.m,
                               .ef_construction = a.ef_construction,
                               .ef_search = a.ef_search};
    snprintf(cp.name, sizeof cp.name, "%s", a.collection);
    uint64_t t_write = vd_now_ns();
    progress_start(&prog, "writing", "records", 0, n);
    vd_status s = vd_store_import(st, &cp, ix, n, ids, pf ? vd_payloads_ptrs(pf) : NULL,
                                  pf ? vd_payloads_lens(pf) : NULL, a.replace, on_progress,
                                  &prog, &e);
    if (s != VD_OK) goto fail;
    ix = NULL; /* the store owns it now */
    progress_draw(&prog, prog.total, 1);
    progress_end(&prog);
    double write_s = (double)(vd_now_ns() - t_write) / 1e9;

    double mb = 0;
    if (vd_store_acquire(st, a.collection, &coll, NULL) == VD_OK) {
        vd_collection_info ci;
        vd_collection_info_get(coll, &ci);
        mb = (double)ci.bytes_disk / 1e6;
    }
    printf("built %s: %zu points, dim %" PRIu32 ", %s, m %" PRIu32 ", ef_construction %" PRIu32
           " in %.1f s (%.0f pts/s), wrote %.1f MB in %.1f s\n",
           a.collection, n, dim, vd_metric_name(a.metric), a.m, a.ef_construction, build_s,
           build_s > 0 ? (double)n / build_s : 0.0, mb, write_s);
    fflush(stdout);
    rc = 0;
    goto done;
fail:
    rc = fail_line(&e);
done:
    vd_collection_release(coll);
    vd_index_close(ix);
    vd_store_close(st);
    vd_payloads_close(pf);
    vd_ids_close(idf);
    vd_free(chunk);
    vd_vectors_close(vf);
    return rc;
}
