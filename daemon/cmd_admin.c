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
    const char *to; /* backup only */
} admin_args;

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

static int run_info(const admin_args *a)
{
    vd_store *st = NULL;
    /* The catalog holds every figure info prints: no graph is loaded, so info is instant
     * even on a large directory. */
    vd_store_options opt = {.read_only = 1, .n_threads = 1, .catalog_only = 1};
    vd_err e = {0};
    vd_collection_info *cs = NULL;
    size_t n = 0;
    vd_store_info si;
    if (vd_store_open(a->data, &opt, &st, &e) != VD_OK ||
        vd_store_info_get(st, &si, &e) != VD_OK || vd_store_list(st, &cs, &n, &e) != VD_OK) {
        fprintf(stderr, "vectord info: %s\n", e.msg);
        vd_store_close(st);
        return 1;
    }
    printf("data directory  %s\n", a->data);
    printf("format version  %u\n", si.format_version);
    printf("map size        %.1f MiB\n", mib(si.map_bytes));
    printf("file size       %.1f MiB\n", mib(si.file_bytes));
    printf("used            %.1f MiB\n", mib(si.used_bytes));
    printf("collections     %zu\n", n);
    if (n) {
        printf("\n%-24s %6s %-7s %4s %6s %9s %4s %-5s %12s %12s\n", "name", "dim", "metric",
               "m", "efc", "ef_search", "ids", "quant", "count", "bytes");
        for (size_t i = 0; i < n; i++) {
            const vd_collection_params *p = &cs[i].params;
            printf("%-24s %6u %-7s %4u %6u %9u %4s %-5s %12" PRIu64 " %12" PRIu64 "\n", p->name,
                   p->dim, vd_metric_name(p->metric), p->m, p->ef_construction, p->ef_search,
                   vd_id_type_name(p->id_type), vd_quantization_name(p->quantization),
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

static int run_check(const admin_args *a)
{
    vd_store *st = NULL;
    vd_store_options opt = {.read_only = 1, .n_threads = 1};
    vd_err e = {0};
    vd_status s = vd_store_open(a->data, &opt, &st, &e);
    if (s != VD_OK) {
        /* A directory that fails to load is a finding, not a usage problem. */
        printf("%s\n", e.msg);
        fprintf(stderr, "vectord check: %s: FAILED (%s)\n", a->data, vd_status_name(s));
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

static int run_backup(const admin_args *a)
{
    vd_err e = {0};
    uint64_t t0 = vd_now_ns();
    if (vd_store_backup(a->data, a->to, &e) != VD_OK) {
        fprintf(stderr, "vectord backup: %s\n", e.msg);
        return 1;
    }
    printf("backup of %s written to %s in %.2f s\n", a->data, a->to,
           (double)(vd_now_ns() - t0) / 1e9);
    return 0;
}

/* ---- the commands: one parser, one table ------------------------------------------------- */
typedef struct admin_cmd {
    const char *name;
    int want_to; /* takes --to DIR2 */
    const char *about;
    int (*run)(const admin_args *a);
} admin_cmd;

static const admin_cmd admin_cmds[] = {
    {"info", 0,
     "Describes a data directory: storage format version, LMDB map/file/used sizes, and per\n"
     "collection its name, dimension, metric, m, ef_construction, ef_search, id type (int\n"
     "or str), quantization (none or int8), point count and stored bytes. Opens DIR\n"
     "read-only; safe while a daemon serves it.\n",
     run_info},
    {"check", 0,
     "Verifies a data directory: every point has a vector and a graph node and vice versa,\n"
     "every link points at a live node, counts agree, the graph validates. Prints \"ok\" and\n"
     "exits 0, or prints one line per problem and exits 1. Opens DIR read-only.\n",
     run_check},
    {"backup", 1,
     "Writes a consistent, compacted copy of data directory DIR into DIR2 (created; must be\n"
     "empty or absent). Safe while a daemon serves and writes DIR: the copy is one LMDB\n"
     "snapshot. Serve the copy with `vectord serve --data DIR2`.\n",
     run_backup},
};

/* Parses --data DIR (and --to DIR2 for backup), then runs the command. */
static int admin_main(const admin_cmd *cmd, int argc, char **argv)
{
    admin_args a = {0};
    const vd_cli_flag flags[] = {
        {.name = "--data", .meta = "DIR", .kind = VD_CLI_TEXT, .dst = &a.data,
         .help = "data directory", .required = 1},
        {.name = "--to", .meta = "DIR2", .kind = VD_CLI_TEXT, .dst = &a.to,
         .help = "where the copy goes (created; must be empty or absent)", .required = 1},
    };
    const vd_cli cli = {.cmd = cmd->name,
                        .synopsis = cmd->want_to ? "--data DIR --to DIR2" : "--data DIR",
                        .about = cmd->about,
                        .flags = flags,
                        .n_flags = cmd->want_to ? 2 : 1};
    int rc = vd_cli__parse(&cli, argc, argv);
    return rc >= 0 ? rc : cmd->run(&a);
}

int vd_cmd_info(int argc, char **argv) { return admin_main(&admin_cmds[0], argc, argv); }
int vd_cmd_check(int argc, char **argv) { return admin_main(&admin_cmds[1], argc, argv); }
int vd_cmd_backup(int argc, char **argv) { return admin_main(&admin_cmds[2], argc, argv); }
