/* daemon/daemon_int.h: the vectord subcommands and the command-line parser they share.
 *
 *   main.c       `vectord <command>` dispatch, --version
 *   cli.c        the one flag parser and --help printer (vd_cli__parse)
 *   cmd_serve.c  `vectord serve` (the server itself: server_int.h)
 *   cmd_build.c  `vectord build`, the offline bulk build (input readers: ingest/vd_ingest.h)
 *   cmd_admin.c  `vectord info`, `vectord check`, `vectord backup`
 *
 * Each command takes the arguments after its name (argv[0] is the subcommand) and returns the
 * process exit status: 0 success (and after --help), 1 the operation failed, 2 bad arguments
 * (one line on stderr). Commands keep no state between calls: tests run them in-process. */
#ifndef VD_DAEMON_INT_H
#define VD_DAEMON_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/vd_common.h"
#include "index/vd_index.h"

#define VD_VERSION_STRING "0.1.0"

int vd_cmd_serve(int argc, char **argv);  /* daemon/cmd_serve.c */
int vd_cmd_build(int argc, char **argv);  /* daemon/cmd_build.c */
int vd_cmd_info(int argc, char **argv);   /* daemon/cmd_admin.c */
int vd_cmd_check(int argc, char **argv);  /* daemon/cmd_admin.c */
int vd_cmd_backup(int argc, char **argv); /* daemon/cmd_admin.c */

/* ---- command lines (daemon/cli.c) --------------------------------------------------------
 * What a flag's value is, and where it goes (`dst`, owned by the command). */
typedef enum vd_cli_kind {
    VD_CLI_TEXT,   /* any non-empty string: const char * (borrowed from argv) */
    VD_CLI_SWITCH, /* no value: int, set to 1 */
    VD_CLI_UINT,   /* an unsigned decimal in lo..hi: uint32_t */
    VD_CLI_BYTES,  /* the same, with an optional k/M/G suffix (binary; "MiB" and "MB" too) */
    VD_CLI_PARAM,  /* a collection parameter, checked by vd_param_resolve against the table
                      in index/vd_index.h: uint32_t (a 0 is refused, never "the default") */
    VD_CLI_FN,     /* parsed by `parse` */
} vd_cli_kind;

typedef struct vd_cli_flag {
    const char *name; /* "--ef-construction" */
    const char *meta; /* "EF" in the help; NULL for a switch */
    vd_cli_kind kind;
    void *dst;
    const char *help; /* the help line ('\n' continues it, aligned); range and default follow */
    /* The default the help shows in brackets; NULL: the table's default for a parameter,
     * else the value `dst` holds before parsing (what the command set it to), if any. */
    const char *def;
    uint64_t lo, hi; /* VD_CLI_UINT, VD_CLI_BYTES */
    vd_param param;  /* VD_CLI_PARAM */
    /* VD_CLI_FN: stores `val` into dst, or returns non-OK with why in err->msg ("expected
     * HOST:PORT"). */
    vd_status (*parse)(const char *val, void *dst, vd_err *err);
    int required;
} vd_cli_flag;

typedef struct vd_cli {
    const char *cmd;      /* "build" */
    const char *synopsis; /* after "usage: vectord build " */
    const char *about;    /* what the command does (ends with '\n') */
    const char *footer;   /* after the flags (exit statuses...), NULL for none */
    const vd_cli_flag *flags;
    size_t n_flags; /* at most 64 */
} vd_cli;

/* Parses argv[1..argc) (--flag value, --flag=value, -h/--help) into the flags' destinations,
 * checking every value and every required flag before returning. Returns -1 when the command
 * should go on, 0 after printing the help to stdout, 2 after printing one error line to
 * stderr. Flags not given keep their destination's value. */
int vd_cli__parse(const vd_cli *c, int argc, char **argv);
void vd_cli__help(const vd_cli *c, FILE *out);
/* --threads of serve and build: 1..VD_CLI_MAX_THREADS, by default the online cores (clamped
 * to that range). */
#define VD_CLI_MAX_THREADS 1024u
uint32_t vd_cli__cores(void);
/* Prints "vectord <cmd>: <flag> <value>: <why> (try vectord <cmd> --help)" (without the value
 * when it is NULL) to stderr; returns 2, the exit status of bad arguments. */
int vd_cli__fail(const char *cmd, const char *flag, const char *value, const char *why);

#endif
