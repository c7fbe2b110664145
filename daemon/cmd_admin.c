/* daemon/cmd_admin.c: placeholder until issue 3 lands. */
#include <stdio.h>
#include "daemon/daemon_int.h"
int vd_cmd_info(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "vectord info: not yet implemented (issue 3)\n");
    return 1;
}
int vd_cmd_check(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "vectord check: not yet implemented (issue 3)\n");
    return 1;
}
int vd_cmd_backup(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "vectord backup: not yet implemented (issue 3)\n");
    return 1;
}
