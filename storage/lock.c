/* storage/lock.c: one process writes a data directory, and a refused one learns which.
 *
 * Two guards, because there are two ways to open a directory twice:
 *  - another process (a daemon and an embedded vectord.open, two embedded processes, a
 *    daemon and `vectord build`): flock(LOCK_EX) on LMDB's own data.mdb descriptor, taken by
 *    every writing open. It belongs to the open file description, so it goes away with the
 *    process, also after kill -9, and closing some other descriptor of data.mdb (the
 *    precheck's) never drops it. The holder writes its pid into DIR/writer.pid right after
 *    taking it, so the refusal names it; the file is only ever a hint (the flock is the
 *    lock), removed by a clean close before the lock is released and overwritten by the next
 *    holder after a crash.
 *  - this process: a registry of the directories open here (device and inode), checked
 *    before LMDB is even asked to open the environment. LMDB forbids one environment opened
 *    twice in a process - closing the second handle would drop the first one's POSIX locks
 *    on lock.mdb - so the second open (of any kind, read-only too) must be refused before
 *    mdb_env_open, not after it.
 * Both refusals are VD_PRECONDITION (the directory is fine; the state of the system is not).
 *
 * Rejected: fcntl (POSIX) locks, whose F_GETLK would report the holder's pid directly - they
 * belong to the process, so they never conflict inside it and any close() of the file drops
 * them; /proc/locks (Linux only, and pids of other pid namespaces read as 0); a pid file
 * alone (stale after kill -9, and racy). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage_int.h"

#define PID_FILE "writer.pid"

/* ---- this process ------------------------------------------------------------------------ */

typedef struct open_dir {
    dev_t dev;
    ino_t ino;
    pid_t pid; /* the opener: a child after fork() inherits the table, not the handle */
} open_dir;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static open_dir *reg;
static size_t n_reg, cap_reg;

static int dir_id(const char *dir, open_dir *out)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) return 0;
    *out = (open_dir){sb.st_dev, sb.st_ino, getpid()};
    return 1;
}

vd_status vd_storage__register_dir(vd_store *st, vd_err *err)
{
    open_dir id;
    if (!dir_id(st->dir, &id))
        return vd_err_set(err, VD_UNAVAILABLE, "data directory %s: %s", st->dir, strerror(errno));
    vd_status s = VD_OK;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < n_reg; i++)
        if (reg[i].dev == id.dev && reg[i].ino == id.ino && reg[i].pid == id.pid)
            s = vd_err_set(err, VD_PRECONDITION,
                           "data directory %s is already open in this process (pid %ld); "
                           "close it first (one handle per directory per process)",
                           st->dir, (long)getpid());
    if (s == VD_OK && n_reg == cap_reg) {
        size_t cap = cap_reg ? 2 * cap_reg : 8;
        open_dir *grown = vd_realloc(reg, cap * sizeof *grown);
        if (grown) {
            reg = grown;
            cap_reg = cap;
        } else {
            s = vd_err_set(err, VD_NOMEM, "out of memory opening %s", st->dir);
        }
    }
    if (s == VD_OK) {
        reg[n_reg++] = id;
        st->registered = 1;
        st->dir_dev = id.dev;
        st->dir_ino = id.ino;
    }
    pthread_mutex_unlock(&reg_mu);
    return s;
}

void vd_storage__unregister_dir(vd_store *st)
{
    if (!st->registered) return;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < n_reg; i++)
        if (reg[i].dev == st->dir_dev && reg[i].ino == st->dir_ino) {
            reg[i] = reg[--n_reg];
            break;
        }
    if (n_reg == 0) { /* nothing open: leave no allocation behind (leak checks) */
        vd_free(reg);
        reg = NULL;
        cap_reg = 0;
    }
    pthread_mutex_unlock(&reg_mu);
    st->registered = 0;
}

/* ---- other processes --------------------------------------------------------------------- */

static void pid_path(const vd_store *st, char *path, size_t cap)
{
    snprintf(path, cap, "%s/" PID_FILE, st->dir);
}

/* The pid DIR/writer.pid names if that process is alive, else 0. */
static long recorded_pid(const vd_store *st)
{
    char path[4096], text[32];
    pid_path(st, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return 0;
    text[n] = 0;
    char *end;
    long pid = strtol(text, &end, 10);
    if (pid <= 0 || (*end && *end != '\n')) return 0;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM ? pid : 0;
}

vd_status vd_storage__writer_lock(vd_store *st, int fd, vd_err *err)
{
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        char path[4096], text[32];
        pid_path(st, path, sizeof path);
        int len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
        int pf = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (pf >= 0) { /* a hint only: without it a refusal just cannot name us */
            if (write(pf, text, (size_t)len) != len)
                vd_log(VD_LOG_WARN, "storage: %s: short write", path);
            close(pf);
        }
        st->locked = 1;
        return VD_OK;
    }
    if (errno != EWOULDBLOCK)
        return vd_err_set(err, VD_IO, "locking data directory %s: %s", st->dir, strerror(errno));
    /* The holder writes its pid right after its flock: give a fresh holder a moment. */
    long pid = 0;
    for (int i = 0; i < 50 && !(pid = recorded_pid(st)); i++)
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    if (pid)
        return vd_err_set(err, VD_PRECONDITION,
                          "data directory %s is in use by process %ld (vectord serve, vectord "
                          "build or an embedded vectord.open); only one process may write it",
                          st->dir, pid);
    return vd_err_set(err, VD_PRECONDITION,
                      "data directory %s is in use by another process (its pid is not "
                      "recorded); only one process may write it",
                      st->dir);
}

void vd_storage__writer_unlock(vd_store *st)
{
    if (!st->locked) return;
    /* Before the flock goes (with the environment): a later holder's file is never removed. */
    char path[4096];
    pid_path(st, path, sizeof path);
    unlink(path);
    st->locked = 0;
}
