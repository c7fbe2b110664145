/* daemon/cmd_serve.c: placeholder until issue 4 lands. */
#include <stdio.h>
#include "daemon/daemon_int.h"
int vd_cmd_serve(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "vectord serve: not yet implemented (issue 4)\n");
    return 1;
}
