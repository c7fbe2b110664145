/* daemon/cli.c: the one command-line parser of every vectord command (serve, build, info,
 * check, backup).
 *
 * A command describes its flags in a table of vd_cli_flag (name, value kind, destination,
 * help line) and calls vd_cli__parse once; the same table prints its --help. So every command
 * takes `--flag value` and `--flag=value`, answers -h/--help, refuses an unknown flag, a
 * missing value or a bad one, and a missing required flag with ONE line of the same form,
 * `vectord <cmd>: <flag> <value>: <why> (try vectord <cmd> --help)`, and exit status 2.
 *
 * Collection parameters (VD_CLI_PARAM) are checked by vd_param_resolve against the table in
 * index/vd_index.h, and their help line prints that table's range and default
 * (vd_param_info_of): a flag cannot accept what the index refuses, nor the help quote another
 * number. Every check happens here, while parsing, before a command opens any file: `vectord
 * build --ef-construction 20000` is refused before its input is read.
 *
 * A later flag of the same name overrides an earlier one. Nothing is kept between calls (the
 * tests call the commands in-process, many times). Rejected: getopt_long (no `--flag=value`
 * checks of its own, a different message per failure, and a second table for the help). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon_int.h"

int vd_cli__fail(const char *cmd, const char *flag, const char *value, const char *why)
{
    if (value)
        fprintf(stderr, "vectord %s: %s %s: %s (try vectord %s --help)\n", cmd, flag, value,
                why, cmd);
    else
        fprintf(stderr, "vectord %s: %s: %s (try vectord %s --help)\n", cmd, flag, why, cmd);
    return 2;
}

uint32_t vd_cli__cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > (long)VD_CLI_MAX_THREADS ? VD_CLI_MAX_THREADS : (uint32_t)n;
}

/* ---- values ------------------------------------------------------------------------------ */
/* An unsigned decimal, optionally (bytes != 0) with a binary suffix k/K, M or G, itself
 * optionally followed by "B" or "iB". -1 on anything else or on overflow. */
static int parse_uint(const char *s, int bytes, uint64_t *out)
{
    if (!isdigit((unsigned char)s[0])) return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    if (bytes && *end) {
        unsigned shift = strchr("kK", *end) ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
        if (!shift || (end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0))
            return -1;
        if (v > (UINT64_MAX >> shift)) return -1;
        v <<= shift;
        end += strlen(end);
    }
    if (*end) return -1;
    *out = v;
    return 0;
}

/* "64MiB" for multiples of a KiB, MiB or GiB, the plain number otherwise. */
static const char *show_bytes(uint64_t v, char *buf, size_t cap)
{
    static const char *const unit[] = {"GiB", "MiB", "KiB"};
    for (int i = 0; i < 3; i++) {
        uint64_t u = (uint64_t)1 << (30 - 10 * i);
        if (v >= u && v % u == 0) {
            snprintf(buf, cap, "%" PRIu64 "%s", v / u, unit[i]);
            return buf;
        }
    }
    snprintf(buf, cap, "%" PRIu64, v);
    return buf;
}

/* The accepted range of an integer flag, from its own bounds or the parameter table. */
static void range_of(const vd_cli_flag *f, uint64_t *lo, uint64_t *hi)
{
    if (f->kind == VD_CLI_PARAM) {
        const vd_param_info *pi = vd_param_info_of(f->param);
        *lo = pi->min;
        *hi = pi->max;
    } else {
        *lo = f->lo;
        *hi = f->hi;
    }
}

static void show_range(const vd_cli_flag *f, char *buf, size_t cap)
{
    uint64_t lo, hi;
    range_of(f, &lo, &hi);
    if (f->kind == VD_CLI_BYTES) {
        char a[24], b[24]; /* 20 digits and a unit */
        snprintf(buf, cap, "%s..%s", show_bytes(lo, a, sizeof a), show_bytes(hi, b, sizeof b));
    } else {
        snprintf(buf, cap, "%" PRIu64 "..%" PRIu64, lo, hi);
    }
}

/* Stores `val` into f->dst, or fills `why` (one phrase) and returns -1. */
static int set_value(const vd_cli_flag *f, const char *val, char *why, size_t cap)
{
    uint64_t v = 0, lo, hi;
    char range[80];
    vd_err e = {0};
    switch (f->kind) {
    case VD_CLI_TEXT:
        *(const char **)f->dst = val;
        return 0;
    case VD_CLI_SWITCH:
        snprintf(why, cap, "takes no value");
        return -1;
    case VD_CLI_FN:
        if (f->parse(val, f->dst, &e) == VD_OK) return 0;
        snprintf(why, cap, "%s", e.msg);
        return -1;
    case VD_CLI_UINT:
    case VD_CLI_BYTES:
    case VD_CLI_PARAM:
        break;
    }
    range_of(f, &lo, &hi);
    int ok = parse_uint(val, f->kind == VD_CLI_BYTES, &v) == 0 && v >= lo && v <= hi;
    /* The table's own check decides for parameters; lo >= 1 keeps "0 = default" out of a
     * flag, where a 0 is a typo rather than a request for the default. */
    if (ok && f->kind == VD_CLI_PARAM)
        ok = vd_param_resolve(f->param, (uint32_t)v, f->dst, NULL) == VD_OK;
    else if (ok)
        *(uint32_t *)f->dst = (uint32_t)v;
    if (ok) return 0;
    show_range(f, range, sizeof range);
    snprintf(why, cap, "expected %s%s", range,
             f->kind == VD_CLI_BYTES ? " (suffixes k, M, G allowed)" : "");
    return -1;
}

/* ---- parsing ----------------------------------------------------------------------------- */
static const vd_cli_flag *find(const vd_cli *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n_flags; i++)
        if (strlen(c->flags[i].name) == len && !strncmp(c->flags[i].name, name, len))
            return &c->flags[i];
    return NULL;
}

int vd_cli__parse(const vd_cli *c, int argc, char **argv)
{
    unsigned char seen[64] = {0};
    if (c->n_flags > sizeof seen) return vd_cli__fail(c->cmd, "flags", NULL, "too many");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            vd_cli__help(c, stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0)
            return vd_cli__fail(c->cmd, "argument", a, "unexpected (flags start with --)");
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const vd_cli_flag *f = find(c, a, len);
        if (!f) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)len, a);
            return vd_cli__fail(c->cmd, name, NULL, "unknown flag");
        }
        seen[f - c->flags] = 1;
        if (f->kind == VD_CLI_SWITCH && !eq) {
            *(int *)f->dst = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!val) return vd_cli__fail(c->cmd, f->name, NULL, "needs a value");
        if (!*val) return vd_cli__fail(c->cmd, f->name, "''", "needs a value");
        char why[sizeof(((vd_err *)0)->msg)];
        if (set_value(f, val, why, sizeof why) != 0)
            return vd_cli__fail(c->cmd, f->name, val, why);
    }
    for (size_t i = 0; i < c->n_flags; i++) {
        if (!c->flags[i].required || seen[i]) continue;
        fprintf(stderr, "vectord %s: %s %s is required (try vectord %s --help)\n", c->cmd,
                c->flags[i].name, c->flags[i].meta, c->cmd);
        return 2;
    }
    return -1;
}

/* ---- help -------------------------------------------------------------------------------- */
#define HELP_INDENT 27 /* "  " + a 24-column flag + " " */
#define HELP_WIDTH 80
/* The default shown in brackets: the flag's own text, else the table's default, else the
 * destination's value before parsing (what the command set it to). */
static void show_default(const vd_cli_flag *f, char *buf, size_t cap)
{
    buf[0] = 0;
    if (f->def) {
        snprintf(buf, cap, "%s", f->def);
        return;
    }
    if (f->kind == VD_CLI_TEXT) {
        const char *v = *(const char *const *)f->dst;
        if (v) snprintf(buf, cap, "%s", v);
        return;
    }
    if (f->kind != VD_CLI_UINT && f->kind != VD_CLI_BYTES && f->kind != VD_CLI_PARAM) return;
    uint32_t v = *(const uint32_t *)f->dst;
    const vd_param_info *pi = f->kind == VD_CLI_PARAM ? vd_param_info_of(f->param) : NULL;
    if (pi && pi->def) v = pi->def;
    if (f->kind == VD_CLI_BYTES) show_bytes(v, buf, cap);
    else snprintf(buf, cap, "%" PRIu32, v);
}

void vd_cli__help(const vd_cli *c, FILE *out)
{
    fprintf(out, "usage: vectord %s %s\n\n%s\n", c->cmd, c->synopsis, c->about);
    for (size_t i = 0; i < c->n_flags; i++) {
        const vd_cli_flag *f = &c->flags[i];
        char left[64], range[80] = "", def[96];
        snprintf(left, sizeof left, "%s%s%s", f->name, f->meta ? " " : "",
                 f->meta ? f->meta : "");
        if (f->kind == VD_CLI_UINT || f->kind == VD_CLI_BYTES || f->kind == VD_CLI_PARAM) {
            memcpy(range, ", ", 3);
            show_range(f, range + 2, sizeof range - 2);
        }
        show_default(f, def, sizeof def);
        char tail[200];
        snprintf(tail, sizeof tail, "%s%s%s%s", range, *def ? " [" : "", def, *def ? "]" : "");
        fprintf(out, "  %-24s ", left);
        size_t col = HELP_INDENT;
        for (const char *p = f->help; *p; p++, col++) { /* continuation lines line up */
            if (*p == '\n') {
                fprintf(out, "\n%*s", HELP_INDENT, "");
                col = HELP_INDENT - 1;
            } else {
                fputc(*p, out);
            }
        }
        if (col + strlen(tail) > HELP_WIDTH) /* range and default on a line of their own */
            fprintf(out, "\n%*s%s\n", HELP_INDENT, "", tail + (range[0] ? 2 : 1));
        else
            fprintf(out, "%s\n", tail);
    }
    fprintf(out, "  %-24s this text\n", "-h, --help");
    if (c->footer) fprintf(out, "\n%s", c->footer);
}
