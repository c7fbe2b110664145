/* tests/unit/runner.c: the one Check runner. Suites register themselves by being declared
 * as `Suite *<name>_suite(void)` in a tests/unit/test_*.c file (the Makefile scans for them
 * into suites.h). Usage: test-unit [suite_name ...]; no argument runs every suite.
 * Exit status 0 only when every test passed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VD_SUITE(fn) Suite *fn(void);
#include "suites.h"
#undef VD_SUITE

typedef struct { const char *name; Suite *(*make)(void); } suite_entry;
static const suite_entry all_suites[] = {
#define VD_SUITE(fn) {#fn, fn},
#include "suites.h"
#undef VD_SUITE
    {NULL, NULL}};

static int wanted(const char *name, int argc, char **argv)
{
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    SRunner *sr = NULL;
    int n_suites = 0;
    for (const suite_entry *e = all_suites; e->name; e++) {
        if (!wanted(e->name, argc, argv)) continue;
        if (!sr) sr = srunner_create(e->make());
        else srunner_add_suite(sr, e->make());
        n_suites++;
    }
    if (!sr) {
        fprintf(stderr, "test-unit: no suite matched\n");
        return 1;
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
