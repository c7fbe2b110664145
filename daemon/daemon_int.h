/* daemon/daemon_int.h: the vectord subcommands. Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status. Every command prints
 * --help and exits 2 with one clear line on bad arguments. */
#ifndef VD_DAEMON_INT_H
#define VD_DAEMON_INT_H

#define VD_VERSION_STRING "0.1.0"

int vd_cmd_serve(int argc, char **argv);  /* daemon/cmd_serve.c */
int vd_cmd_build(int argc, char **argv);  /* daemon/cmd_build.c */
int vd_cmd_info(int argc, char **argv);   /* daemon/cmd_admin.c */
int vd_cmd_check(int argc, char **argv);  /* daemon/cmd_admin.c */
int vd_cmd_backup(int argc, char **argv); /* daemon/cmd_admin.c */

#endif
