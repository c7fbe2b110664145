/* daemon/cmd_admin.c: the operator's commands on a data directory: `vectord info`,
 * `vectord check`, `vectord backup`.
 *
 * info and check open the directory read-only (vd_store_options.read_only): they never create
 * a file, and they can run while a daemon serves the directory (LMDB readers do not block the
 * writer). backup needs no store at all: vd_store_backup opens its own read-only environment
 * and copies one consistent snapshot. Exit codes: 0 success, 1 the operation failed (or check
 * found problems), 2 bad arguments - always with one line on stderr saying why. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon_int.h"
#include "storage/vd_storage.h"

typedef struct admin_args {
    const char *data;
    const char *to;
} admin_args;

/* Parses --data DIR [--to DIR2] (also --data=DIR). Returns 0 ok, 1 help printed, 2 error. */
static int parse(int argc, char **argv, const char *cmd, const char *usage, int want_to,
                 admin_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], **slot = NULL, *val = NULL;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(usage, stdout);
            return 1;
        }
        if (!strncmp(arg, "--data", 6)) slot = &a->data;
        else if (want_to && !strncmp(arg, "--to", 4)) slot = &a->to;
        size_t nlen = slot == &a->data ? 6 : 4;
        if (slot && arg[nlen] == '=') {
            val = arg + nlen + 1;
        } else if (slot && arg[nlen] == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "vectord %s: %s needs a value (try --help)\n", cmd, arg);
                return 2;
            }
            val = argv[++i];
        } else {
            fprintf(stderr, "vectord %s: unknown argument '%s' (try --help)\n", cmd, arg);
            return 2;
        }
        if (!*val) {
            fprintf(stderr, "vectord %s: empty value for %.*s\n", cmd, (int)nlen, arg);
            return 2;
        }
        *slot = val;
    }
    if (!a->data) {
        fprintf(stderr, "vectord %s: --data DIR is required (try --help)\n", cmd);
        return 2;
    }
    if (want_to && !a->to) {
        fprintf(stderr, "vectord %s: --to DIR2 is required (try --help)\n", cmd);
        return 2;
    }
    return 0;
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

int vd_cmd_info(int argc, char **argv)
{
    static const char usage[] =
        "usage: vectord info --data DIR\n\n"
        "Describes a data directory: storage format version, LMDB map/file/used sizes, and per\n"
        "collection its name, dimension, metric, m, ef_construction, ef_search, point count\n"
        "and stored bytes. Opens DIR read-only; safe while a daemon serves it.\n";
    admin_args a;
    int pr = parse(argc, argv, "info", usage, 0, &a);
    if (pr) return pr == 1 ? 0 : 2;
    vd_store *st = NULL;
    /* The catalog holds every figure info prints: no graph is loaded, so info is instant
     * even on a large directory. */
    vd_store_options opt = {.read_only = 1, .n_threads = 1, .catalog_only = 1};
    vd_err e = {0};
    vd_collection_info *cs = NULL;
    size_t n = 0;
    vd_store_info si;
    if (vd_store_open(a.data, &opt, &st, &e) != VD_OK ||
        vd_store_info_get(st, &si, &e) != VD_OK || vd_store_list(st, &cs, &n, &e) != VD_OK) {
        fprintf(stderr, "vectord info: %s\n", e.msg);
        vd_store_close(st);
        return 1;
    }
    printf("data directory  %s\n", a.data);
    printf("format version  %u\n", si.format_version);
    printf("map size        %.1f MiB\n", mib(si.map_bytes));
    printf("file size       %.1f MiB\n", mib(si.file_bytes));
    printf("used            %.1f MiB\n", mib(si.used_bytes));
    printf("collections     %zu\n", n);
    if (n) {
        printf("\n%-24s %6s %-7s %4s %6s %9s %12s %12s\n", "name", "dim", "metric", "m", "efc",
               "ef_search", "count", "bytes");
        for (size_t i = 0; i < n; i++) {
            const vd_collection_params *p = &cs[i].params;
            printf("%-24s %6u %-7s %4u %6u %9u %12" PRIu64 " %12" PRIu64 "\n", p->name, p->dim,
                   vd_metric_name(p->metric), p->m, p->ef_construction, p->ef_search,
                   cs[i].count, cs[i].bytes_disk);
        }
    }
    vd_free(cs);
    vd_store_close(st);
    return 0;
}

static void print_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

int vd_cmd_check(int argc, char **argv)
{
    static const char usage[] =
        "usage: vectord check --data DIR\n\n"
        "Verifies a data directory: every point has a vector and a graph node and vice versa,\n"
        "every link points at a live node, counts agree, the graph validates. Prints \"ok\" and\n"
        "exits 0, or prints one line per problem and exits 1. Opens DIR read-only.\n";
    admin_args a;
    int pr = parse(argc, argv, "check", usage, 0, &a);
    if (pr) return pr == 1 ? 0 : 2;
    vd_store *st = NULL;
    vd_store_options opt = {.read_only = 1, .n_threads = 1};
    vd_err e = {0};
    vd_status s = vd_store_open(a.data, &opt, &st, &e);
    if (s != VD_OK) {
        /* A directory that fails to load is a finding, not a usage problem. */
        printf("%s\n", e.msg);
        fprintf(stderr, "vectord check: %s: FAILED (%s)\n", a.data, vd_status_name(s));
        return 1;
    }
    s = vd_store_check(st, print_line, NULL, &e);
    vd_store_close(st);
    if (s == VD_OK) {
        printf("ok\n");
        return 0;
    }
    fprintf(stderr, "vectord check: %s\n", e.msg);
    return 1;
}

int vd_cmd_backup(int argc, char **argv)
{
    static const char usage[] =
        "usage: vectord backup --data DIR --to DIR2\n\n"
        "Writes a consistent, compacted copy of data directory DIR into DIR2 (created; must be\n"
        "empty or absent). Safe while a daemon serves and writes DIR: the copy is one LMDB\n"
        "snapshot. Serve the copy with `vectord serve --data DIR2`.\n";
    admin_args a;
    int pr = parse(argc, argv, "backup", usage, 1, &a);
    if (pr) return pr == 1 ? 0 : 2;
    vd_err e = {0};
    uint64_t t0 = vd_now_ns();
    if (vd_store_backup(a.data, a.to, &e) != VD_OK) {
        fprintf(stderr, "vectord backup: %s\n", e.msg);
        return 1;
    }
    printf("backup of %s written to %s in %.2f s\n", a.data, a.to,
           (double)(vd_now_ns() - t0) / 1e9);
    return 0;
}
