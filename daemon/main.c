/* daemon/main.c: `vectord <command> ...` dispatch. Each command lives in its own file.
 *
 * malloc: the server unpacks every request frame into fresh buffers on the loop thread and
 * frees them on a worker; with glibc's default (dynamic) thresholds each 100 KB query batch
 * freed at the top of the heap was trimmed back to the kernel and faulted in again by the
 * next one - page faults, brk and munmap were ~2 % of a knn's CPU (perf, fashion-mnist
 * through the Python client). Fixed thresholds keep up to 64 MiB of freed memory for reuse;
 * allocations of 32 MiB and more (big upsert frames) still get their own mapping. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon_int.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", vd_cmd_serve, "serve a data directory over TCP"},
    {"build", vd_cmd_build, "build a collection offline from a .npy/.fvecs/.bvecs file"},
    {"info", vd_cmd_info, "describe a data directory: collections, counts, sizes"},
    {"check", vd_cmd_check, "verify the integrity of a data directory"},
    {"backup", vd_cmd_backup, "copy a data directory consistently, also while it is served"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: vectord <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`vectord <command> --help` describes each command's options.\n"
               "`vectord --version` prints the version.\n");
}

int main(int argc, char **argv)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vectord %s\n", VD_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "vectord: unknown command '%s' (try vectord --help)\n", argv[1]);
    return 2;
}
