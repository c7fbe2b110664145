/* tests/unit/test_build_cli.c: the command-line parser every vectord command uses
 * (daemon/cli.c, vd_cli__parse): both value forms, every kind of value, the one error line and
 * exit status 2 for each way a command line can be wrong, parameter flags checked against the
 * table in index/vd_index.h, and the help printed from the same flag table. Runs the parser
 * in-process, with stdout and stderr captured into a file. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon_int.h"
#include "index/vd_index.h"

static char captured[8192];

/* The flags of a made-up command "demo", and where they land. */
typedef struct demo {
    const char *data, *name;
    uint32_t n, bytes, m, k;
    int flag;
} demo;

static vd_status parse_name(const char *s, void *dst, vd_err *err)
{
    if (strchr(s, '/')) return vd_err_set(err, VD_INVALID, "no slashes");
    *(const char **)dst = s;
    return VD_OK;
}

/* Runs vd_cli__parse("demo", args...) on a fresh demo; stdout and stderr of the call end up
 * in `captured`. Returns the parser's result. */
static int parse(demo *d, const char *const *args)
{
    memset(d, 0, sizeof *d);
    d->n = 7;
    d->bytes = 4096;
    d->k = 10;
    vd_param_resolve(VD_PARAM_M, 0, &d->m, NULL);
    const vd_cli_flag flags[] = {
        {.name = "--data", .meta = "DIR", .kind = VD_CLI_TEXT, .dst = &d->data,
         .help = "a directory", .required = 1},
        {.name = "--name", .meta = "NAME", .kind = VD_CLI_FN, .dst = &d->name,
         .help = "a name", .def = "none", .parse = parse_name},
        {.name = "--n", .meta = "N", .kind = VD_CLI_UINT, .dst = &d->n, .help = "a count",
         .lo = 1, .hi = 100},
        {.name = "--bytes", .meta = "B", .kind = VD_CLI_BYTES, .dst = &d->bytes,
         .help = "a size\nover two lines", .lo = 1024, .hi = 1u << 30},
        {.name = "--m", .meta = "M", .kind = VD_CLI_PARAM, .dst = &d->m, .help = "links",
         .param = VD_PARAM_M},
        {.name = "--k", .meta = "K", .kind = VD_CLI_PARAM, .dst = &d->k, .help = "hits",
         .param = VD_PARAM_K},
        {.name = "--flag", .kind = VD_CLI_SWITCH, .dst = &d->flag, .help = "a switch"},
    };
    const vd_cli cli = {.cmd = "demo", .synopsis = "--data DIR [options]",
                        .about = "Demonstrates.\n", .footer = "Footer.\n", .flags = flags,
                        .n_flags = VD_ARRAY_LEN(flags)};
    char *argv[32];
    int argc = 0;
    argv[argc++] = "demo";
    for (; args[argc - 1]; argc++) argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    char path[] = "/tmp/vd-cli-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), err = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
    int rc = vd_cli__parse(&cli, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(out, 1);
    dup2(err, 2);
    close(out);
    close(err);
    ssize_t n = pread(fd, captured, sizeof captured - 1, 0);
    captured[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    return rc;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ck_assert_captured(needle)                                                            \
    ck_assert_msg(strstr(captured, (needle)) != NULL, "output '%s' lacks '%s'", captured,     \
                  (needle))

START_TEST(both_value_forms_and_every_kind)
{
    demo d;
    ck_assert_int_eq(parse(&d, ARGS("--data", "/x", "--name=abc", "--n", "100", "--bytes=64MiB",
                                    "--m", "128", "--k=1000000", "--flag")), -1);
    ck_assert_str_eq(d.data, "/x");
    ck_assert_str_eq(d.name, "abc");
    ck_assert_uint_eq(d.n, 100);
    ck_assert_uint_eq(d.bytes, 64u << 20);
    ck_assert_uint_eq(d.m, 128);
    ck_assert_uint_eq(d.k, 1000000);
    ck_assert_int_eq(d.flag, 1);
    ck_assert_str_eq(captured, "");
    static const struct {
        const char *v;
        uint32_t want;
    } sizes[] = {{"1024", 1024}, {"2k", 2048}, {"3K", 3072}, {"4KB", 4096}, {"1G", 1u << 30},
                 {"5MB", 5u << 20}};
    for (size_t i = 0; i < VD_ARRAY_LEN(sizes); i++) {
        ck_assert_int_eq(parse(&d, ARGS("--data=/x", "--bytes", sizes[i].v)), -1);
        ck_assert_uint_eq(d.bytes, sizes[i].want);
    }
    /* Flags not given keep what the command set; a later flag overrides an earlier one. */
    ck_assert_int_eq(parse(&d, ARGS("--data=/a", "--data", "/b")), -1);
    ck_assert_str_eq(d.data, "/b");
    ck_assert_uint_eq(d.n, 7);
    ck_assert_uint_eq(d.m, vd_param_info_of(VD_PARAM_M)->def);
    ck_assert_int_eq(d.flag, 0);
}
END_TEST

START_TEST(every_mistake_is_one_line_and_exit_2)
{
    const struct {
        const char *const *args;
        const char *line;
    } cases[] = {
        {ARGS("--data", "/x", "--bogus", "1"), "vectord demo: --bogus: unknown flag"},
        {ARGS("--data", "/x", "--bogus=1"), "vectord demo: --bogus: unknown flag"},
        {ARGS("--data"), "vectord demo: --data: needs a value"},
        {ARGS("--data="), "vectord demo: --data '': needs a value"},
        {ARGS("--data", "/x", "stray"), "vectord demo: argument stray: unexpected"},
        {ARGS("--n", "5"), "vectord demo: --data DIR is required"},
        {ARGS("--data", "/x", "--n", "0"), "vectord demo: --n 0: expected 1..100"},
        {ARGS("--data", "/x", "--n", "101"), "vectord demo: --n 101: expected 1..100"},
        {ARGS("--data", "/x", "--n", "-1"), "vectord demo: --n -1: expected 1..100"},
        {ARGS("--data", "/x", "--n", " 5"), "vectord demo: --n  5: expected 1..100"},
        {ARGS("--data", "/x", "--n", "5x"), "vectord demo: --n 5x: expected 1..100"},
        {ARGS("--data", "/x", "--n", "99999999999999999999"), "--n 99999999999999999999: exp"},
        {ARGS("--data", "/x", "--bytes", "12x"),
         "vectord demo: --bytes 12x: expected 1KiB..1GiB (suffixes k, M, G allowed)"},
        {ARGS("--data", "/x", "--bytes", "2G"), "vectord demo: --bytes 2G: expected 1KiB..1GiB"},
        {ARGS("--data", "/x", "--bytes", "1kB2"), "vectord demo: --bytes 1kB2: expected"},
        {ARGS("--data", "/x", "--name", "a/b"), "vectord demo: --name a/b: no slashes"},
        {ARGS("--data", "/x", "--flag=1"), "vectord demo: --flag 1: takes no value"},
    };
    for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
        demo d;
        ck_assert_int_eq(parse(&d, cases[i].args), 2);
        ck_assert_captured(cases[i].line);
        ck_assert_captured(" (try vectord demo --help)\n");
        ck_assert_msg(strchr(captured, '\n') == captured + strlen(captured) - 1,
                      "not one line: %s", captured);
    }
}
END_TEST

/* A parameter flag accepts exactly the table's range; 0 (the table's "default") is a typo on
 * a command line and refused. */
START_TEST(parameters_take_the_table_range)
{
    const vd_param ps[] = {VD_PARAM_M, VD_PARAM_K};
    const char *names[] = {"--m", "--k"};
    for (size_t i = 0; i < VD_ARRAY_LEN(ps); i++) {
        const vd_param_info *pi = vd_param_info_of(ps[i]);
        char lo[16], hi[16], below[16], above[16], want[64];
        snprintf(lo, sizeof lo, "%u", pi->min);
        snprintf(hi, sizeof hi, "%u", pi->max);
        snprintf(below, sizeof below, "%u", pi->min - 1);
        snprintf(above, sizeof above, "%u", pi->max + 1);
        snprintf(want, sizeof want, ": expected %u..%u (try", pi->min, pi->max);
        demo d;
        ck_assert_int_eq(parse(&d, ARGS("--data=/x", names[i], lo)), -1);
        ck_assert_int_eq(parse(&d, ARGS("--data=/x", names[i], hi)), -1);
        ck_assert_uint_eq(ps[i] == VD_PARAM_M ? d.m : d.k, pi->max);
        ck_assert_int_eq(parse(&d, ARGS("--data=/x", names[i], below)), 2);
        ck_assert_captured(want);
        ck_assert_int_eq(parse(&d, ARGS("--data=/x", names[i], above)), 2);
        ck_assert_captured(want);
        ck_assert_int_eq(parse(&d, ARGS("--data=/x", names[i], "0")), 2);
    }
}
END_TEST

START_TEST(help_is_printed_from_the_table)
{
    demo d;
    ck_assert_int_eq(parse(&d, ARGS("--n", "0", "--help")), 2); /* the error comes first */
    ck_assert_int_eq(parse(&d, ARGS("--help", "--n", "0")), 0);
    ck_assert_int_eq(parse(&d, ARGS("-h")), 0);
    ck_assert_captured("usage: vectord demo --data DIR [options]\n\nDemonstrates.\n\n");
    ck_assert_captured("  --data DIR               a directory\n");
    ck_assert_captured("  --name NAME              a name [none]\n");
    ck_assert_captured("  --n N                    a count, 1..100 [7]\n");
    ck_assert_captured("  --bytes B                a size\n"
                       "                           over two lines, 1KiB..1GiB [4KiB]\n");
    const vd_param_info *m = vd_param_info_of(VD_PARAM_M), *k = vd_param_info_of(VD_PARAM_K);
    char want[128];
    snprintf(want, sizeof want, "  --m M                    links, %u..%u [%u]\n", m->min, m->max,
             m->def);
    ck_assert_captured(want);
    snprintf(want, sizeof want, "  --k K                    hits, %u..%u [10]\n", k->min, k->max);
    ck_assert_captured(want);
    ck_assert_captured("  --flag                   a switch\n");
    ck_assert_captured("  -h, --help               this text\n\nFooter.\n");
}
END_TEST

Suite *build_cli_suite(void)
{
    Suite *s = suite_create("build_cli");
    TCase *tc = tcase_create("cli");
    tcase_add_test(tc, both_value_forms_and_every_kind);
    tcase_add_test(tc, every_mistake_is_one_line_and_exit_2);
    tcase_add_test(tc, parameters_take_the_table_range);
    tcase_add_test(tc, help_is_printed_from_the_table);
    suite_add_tcase(s, tc);
    return s;
}
