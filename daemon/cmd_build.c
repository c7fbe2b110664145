/* daemon/cmd_build.c: `vectord build`, the offline bulk build: a file of vectors (plus
 * optional ids and JSON payloads) becomes a new collection in a data directory that `serve`
 * opens at once.
 *
 * Phases, in this order, so that bad input costs seconds and never touches DIR:
 *   1. arguments (daemon/cli.c; exit 2 with one line on anything wrong): m, ef_construction
 *      and ef_search through the parameter table (index/vd_index.h), the name through
 *      storage's rule, before any file is opened - a bad limit costs milliseconds, whatever
 *      the input's size;
 *   2. input (ingest/vd_ingest.h): the vectors' header is read (its dim checked against the
 *      same table), the whole parameter set checked by vd_index_params_check, then every
 *      value read once (record dims, NaN/Inf, zero rows under cosine), the ids checked
 *      (count, sign, duplicates; string ids from a .txt file: storage's id rule, distinct),
 *      each payload line checked as a JSON object, all before the data directory is opened
 *      or created; a .txt ids file makes the collection one of string ids;
 *   3. the store is opened (created if missing) and an existing collection of that name is
 *      refused unless --replace, before the long build;
 *   4. vd_engine_build (engine/build.c, the one bulk build, also the embedded module's): the
 *      index is built in memory with vd_index_add_batch on --threads workers, fed chunk by
 *      chunk from the input mapping (float32 .npy in place, other formats converted into one
 *      chunk buffer); pages behind each chunk are dropped, so memory holds the index's own copy
 *      of the vectors plus about one chunk of input, not the input twice;
 *   5. the input vectors are unmapped, and the engine's import writes points, payloads and
 *      graph in ONE LMDB transaction.
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
 * atomicity). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon_int.h"
#include "engine/vd_engine.h"
#include "ingest/vd_ingest.h"
#include "index/vd_index.h"
#include "storage/vd_storage.h"

typedef struct build_args {
    const char *data, *input, *ids, *payloads;
    vd_collection_params cp; /* everything but dim, which comes from the input */
    uint32_t threads;
    int replace;
} build_args;

static vd_status parse_name(const char *s, void *dst, vd_err *err)
{
    vd_status st = vd_name_check(s, err);
    if (st == VD_OK) snprintf(((vd_collection_params *)dst)->name, VD_NAME_MAX + 1, "%s", s);
    return st;
}

static vd_status parse_metric(const char *s, void *dst, vd_err *err)
{
    if (vd_metric_parse(s, dst) == VD_OK) return VD_OK;
    return vd_err_set(err, VD_INVALID, "expected l2, cosine or ip");
}

static vd_status parse_quantization(const char *s, void *dst, vd_err *err)
{
    if (vd_quantization_parse(s, dst) == VD_OK) return VD_OK;
    return vd_err_set(err, VD_INVALID, "expected none or int8");
}

/* Every flag is checked here, the parameters against the table (vd_cli__parse), before any
 * file is opened. Returns -1 to go on, or the exit status (0 after --help, 2 on bad ones). */
static int parse_args(int argc, char **argv, build_args *a)
{
    memset(a, 0, sizeof *a);
    a->cp.metric = VD_METRIC_L2;
    a->threads = vd_cli__cores();
    vd_param_resolve(VD_PARAM_M, 0, &a->cp.m, NULL); /* 0: the table's defaults */
    vd_param_resolve(VD_PARAM_EF_CONSTRUCTION, 0, &a->cp.ef_construction, NULL);
    vd_param_resolve(VD_PARAM_EF_SEARCH, 0, &a->cp.ef_search, NULL);
    char name_help[64];
    snprintf(name_help, sizeof name_help, "collection to create: [A-Za-z0-9_-]{1,%d}",
             VD_NAME_MAX);
    const vd_cli_flag flags[] = {
        {.name = "--data", .meta = "DIR", .kind = VD_CLI_TEXT, .dst = &a->data,
         .help = "data directory (created if missing)", .required = 1},
        {.name = "--collection", .meta = "NAME", .kind = VD_CLI_FN, .dst = &a->cp,
         .help = name_help, .parse = parse_name, .required = 1},
        {.name = "--input", .meta = "FILE", .kind = VD_CLI_TEXT, .dst = &a->input,
         .help = "vectors: .npy (float32/float64, 2-D, C order), .fvecs,\n.bvecs",
         .required = 1},
        {.name = "--ids", .meta = "FILE", .kind = VD_CLI_TEXT, .dst = &a->ids,
         .help = "ids: .npy of int64/uint64, one per vector; or .txt, one\n"
                 "UTF-8 string id per line (1..512 bytes), which makes the\n"
                 "collection one of string ids",
         .def = "0..n-1"},
        {.name = "--payloads", .meta = "FILE", .kind = VD_CLI_TEXT, .dst = &a->payloads,
         .help = "JSON Lines: one JSON object per vector, in order"},
        {.name = "--metric", .meta = "l2|cosine|ip", .kind = VD_CLI_FN, .dst = &a->cp.metric,
         .help = "distance", .def = "l2", .parse = parse_metric},
        {.name = "--quantization", .meta = "none|int8", .kind = VD_CLI_FN,
         .dst = &a->cp.quantization,
         .help = "int8: int8 codes in the graph (about a quarter of the vector memory),\n"
                 "the best candidates re-ranked with the stored float32 vectors",
         .def = "none", .parse = parse_quantization},
        {.name = "--m", .meta = "M", .kind = VD_CLI_PARAM, .dst = &a->cp.m,
         .help = "HNSW links per node", .param = VD_PARAM_M},
        {.name = "--ef-construction", .meta = "EF", .kind = VD_CLI_PARAM,
         .dst = &a->cp.ef_construction, .help = "build-time candidate list",
         .param = VD_PARAM_EF_CONSTRUCTION},
        {.name = "--ef-search", .meta = "EF", .kind = VD_CLI_PARAM, .dst = &a->cp.ef_search,
         .help = "the collection's default search ef", .param = VD_PARAM_EF_SEARCH},
        {.name = "--threads", .meta = "N", .kind = VD_CLI_UINT, .dst = &a->threads,
         .help = "build threads", .def = "all cores", .lo = 1, .hi = VD_CLI_MAX_THREADS},
        {.name = "--replace", .kind = VD_CLI_SWITCH, .dst = &a->replace,
         .help = "replace an existing collection of that name"},
    };
    const vd_cli cli = {
        .cmd = "build",
        .synopsis = "--data DIR --collection NAME --input FILE [options]",
        .about = "Builds a collection offline from a file of vectors, on all cores, into the data\n"
                 "directory DIR (created if missing; other collections are left untouched). The\n"
                 "collection appears complete or not at all: an interrupted or failed build\n"
                 "leaves none.\n",
        .footer = "Exit status: 0 built, 1 failed (nothing written), 2 bad arguments, 130 "
                  "interrupted.\n",
        .flags = flags,
        .n_flags = VD_ARRAY_LEN(flags)};
    int rc = vd_cli__parse(&cli, argc, argv);
    size_t n = a->ids ? strlen(a->ids) : 0;
    if (n >= 4 && strcmp(a->ids + n - 4, ".txt") == 0) a->cp.id_type = VD_ID_STR;
    return rc;
}

/* ---- progress ---------------------------------------------------------------------------- */
typedef struct progress {
    int tty;
    int shown;            /* a progress line is on screen (needs a newline before other output) */
    vd_build_phase phase; /* 0 before the first call */
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
    int linking = p->phase == VD_BUILD_LINKING;
    fprintf(stderr, "\r  %-8s %zu/%zu %s  %.0f %s/s  ETA %s\033[K",
            linking ? "building" : "writing", done, p->total, linking ? "points" : "records",
            rate, linking ? "pts" : "records", eta);
    fflush(stderr);
    p->shown = 1;
    progress_on_screen = 1;
}

static void progress_end(progress *p)
{
    if (p->shown) fputc('\n', stderr);
    p->shown = 0;
    progress_on_screen = 0;
}

/* The engine's progress, on this thread: a new line per phase, redrawn twice a second. */
static void on_progress(void *ctx, vd_build_phase phase, size_t done, size_t total)
{
    progress *p = ctx;
    if (phase != p->phase) {
        progress_end(p);
        p->phase = phase;
        p->t0_ns = vd_now_ns();
        p->last_ns = 0;
    }
    p->total = total;
    progress_draw(p, done, done == 0 || done >= total);
}

/* Nothing is committed before the import's commit, and that commit is atomic: an
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
/* One build's resources: every pointer starts NULL and build_close releases what is held. */
typedef struct build {
    build_args a;
    vd_vectors_file *vf;
    vd_ids_file *idf;     /* integer ids */
    vd_text_ids_file *tf; /* string ids (--ids FILE.txt) */
    vd_payloads_file *pf;
    vd_store *st;
    vd_engine *engine;
    size_t n;
    vd_build_result res;
} build;

/* Storage's rule for a whole set of string ids (distinct), as ingest calls it. */
static vd_status check_text_ids(const uint8_t *bytes, size_t n_bytes, const uint32_t *ends,
                                size_t n, vd_err *err)
{
    vd_str_ids ids = {.bytes = bytes, .ends = ends, .n = n, .n_bytes = n_bytes};
    return vd_str_ids_check(&ids, 1, err);
}

/* 2. The input, in full, before DIR is touched: its header (the dim checked against the
 * parameter table as it is read), every parameter once more through the index's own check,
 * then every value, the ids and the payload lines. */
static vd_status check_input(build *b, vd_err *e)
{
    float *chunk = NULL;
    vd_status s = vd_vectors_open(b->a.input, &b->vf, e);
    if (s != VD_OK) return s;
    b->n = vd_vectors_count(b->vf);
    b->a.cp.dim = vd_vectors_dim(b->vf);
    vd_index_params ip = {.dim = b->a.cp.dim,
                          .metric = b->a.cp.metric,
                          .m = b->a.cp.m,
                          .ef_construction = b->a.cp.ef_construction,
                          .quantization = b->a.cp.quantization};
    if ((s = vd_index_params_check(&ip, e)) != VD_OK) return s;
    size_t step = vd_build_chunk_rows(ip.dim, b->n);
    if (!vd_vectors_in_place(b->vf) && !(chunk = vd_malloc(step * ip.dim * sizeof(float))))
        return vd_err_set(e, VD_NOMEM, "out of memory for a %zu-row input chunk", step);
    const int refuse_zero = b->a.cp.metric == VD_METRIC_COSINE;
    for (size_t first = 0; first < b->n && s == VD_OK; first += step) {
        const float *v;
        size_t rows = b->n - first < step ? b->n - first : step;
        s = vd_vectors_rows(b->vf, first, rows, chunk, refuse_zero, &v, e);
        vd_vectors_release(b->vf, first, rows);
    }
    vd_free(chunk);
    if (s == VD_OK && b->a.cp.id_type == VD_ID_STR)
        s = vd_text_ids_open(b->a.ids, b->n, vd_str_id_check, check_text_ids, &b->tf, e);
    else if (s == VD_OK)
        s = vd_ids_open(b->a.ids, b->n, &b->idf, e);
    if (s == VD_OK && b->a.payloads)
        s = vd_payloads_open(b->a.payloads, b->n, vd_json_check_object, &b->pf, e);
    return s;
}

/* 3. The store (created if missing) and the engine on it. */
static vd_status open_store(build *b, vd_err *e)
{
    vd_store_options so = {.create = 1, .n_threads = b->a.threads};
    vd_status s = vd_store_open(b->a.data, &so, &b->st, e);
    if (s == VD_OK) s = vd_engine_new(b->st, NULL, &b->engine, e);
    return s;
}

/* The input file as the engine's row source: read (checked again, converted or in place),
 * released behind each chunk, closed once every row is in the index. */
static vd_status rows_read(void *ctx, size_t first, size_t n, float *buf, const float **out,
                           vd_err *e)
{
    build *b = ctx;
    return vd_vectors_rows(b->vf, first, n, buf, b->a.cp.metric == VD_METRIC_COSINE, out, e);
}

static void rows_release(void *ctx, size_t first, size_t n)
{
    vd_vectors_release(((build *)ctx)->vf, first, n);
}

static void rows_finish(void *ctx)
{
    build *b = ctx;
    vd_vectors_close(b->vf);
    b->vf = NULL;
}

/* 4 and 5. An existing collection is refused (unless --replace) before the long part. */
static vd_status run_build(build *b, vd_err *e)
{
    vd_str_ids sids = {0};
    if (b->tf)
        sids = (vd_str_ids){.bytes = vd_text_ids_bytes(b->tf), .ends = vd_text_ids_ends(b->tf),
                            .n = b->n, .n_bytes = vd_text_ids_n_bytes(b->tf)};
    vd_build_req req = {.params = b->a.cp,
                        .n = b->n,
                        .ids = b->idf ? vd_ids_get(b->idf) : NULL,
                        .str_ids = b->tf ? &sids : NULL,
                        .payloads = b->pf ? vd_payloads_ptrs(b->pf) : NULL,
                        .payload_lens = b->pf ? vd_payloads_lens(b->pf) : NULL,
                        .rows = {.read = rows_read,
                                 .release = rows_release,
                                 .finish = rows_finish,
                                 .ctx = b,
                                 .in_place = vd_vectors_in_place(b->vf)},
                        .threads = b->a.threads,
                        .replace = b->a.replace,
                        .progress = prog.tty ? on_progress : NULL,
                        .progress_ctx = &prog};
    vd_status s = vd_engine_build(b->engine, &req, &b->res, e);
    progress_end(&prog);
    return s;
}

static void print_summary(const build *b)
{
    const vd_collection_params *cp = &b->res.info.params;
    double build_s = (double)b->res.link_ns / 1e9, write_s = (double)b->res.write_ns / 1e9;
    printf("built %s: %zu points, dim %" PRIu32 ", %s, m %" PRIu32 ", ef_construction %" PRIu32
           "%s, quantization %s in %.1f s (%.0f pts/s), wrote %.1f MB in %.1f s\n",
           cp->name, b->n, cp->dim, vd_metric_name(cp->metric), cp->m, cp->ef_construction,
           cp->id_type == VD_ID_STR ? ", string ids" : "", vd_quantization_name(cp->quantization),
           build_s, build_s > 0 ? (double)b->n / build_s : 0.0,
           (double)b->res.info.bytes_disk / 1e6, write_s);
    fflush(stdout);
}

static void build_close(build *b)
{
    vd_engine_free(b->engine);
    vd_store_close(b->st);
    vd_payloads_close(b->pf);
    vd_ids_close(b->idf);
    vd_text_ids_close(b->tf);
    vd_vectors_close(b->vf);
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int vd_cmd_build(int argc, char **argv)
{
    build b;
    memset(&b, 0, sizeof b);
    int rc = parse_args(argc, argv, &b.a);
    if (rc >= 0) return rc;
    memset(&prog, 0, sizeof prog);
    prog.tty = isatty(STDERR_FILENO);
    catch_signals();
    vd_err e = {0};
    vd_status s = check_input(&b, &e);
    if (s == VD_OK) s = open_store(&b, &e);
    if (s == VD_OK) s = run_build(&b, &e);
    if (s == VD_OK) print_summary(&b);
    rc = s == VD_OK ? 0 : fail_line(&e);
    build_close(&b);
    return rc;
}
