/* daemon/cmd_build.c: placeholder until issue 6 lands. */
#include <stdio.h>
#include "daemon/daemon_int.h"
int vd_cmd_build(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "vectord build: not yet implemented (issue 6)\n");
    return 1;
}
