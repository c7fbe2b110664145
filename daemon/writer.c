/* daemon/writer.c: the one writer thread - group commit of create/drop/upsert/delete.
 *
 * The thread takes everything queued (up to MAX_GROUP jobs), prepares each request through
 * the engine (checked against its collection, turned into a storage op), commits the group
 * once - one LMDB transaction, one fsync - and only after the commit answers each request
 * with its own op's result. So an acknowledged write is durable and visible to every later
 * read, and the cost of a sync is shared by all writes that queued up while the previous one
 * ran: the busier the server, the bigger the groups.
 *
 * Checks that need the collection happen on the only thread that changes collections, so
 * the dim an upsert is checked against cannot change before the commit. A create or drop
 * ends its group (vd_write_ends_group): a later upsert in the same queue must see the
 * collection as it will be after that create/drop, which only shows once committed. Those
 * are rare; upserts and deletes group freely.
 *
 * Ops the store refuses (duplicate ids, NaN, bad JSON, unknown collection...) are skipped
 * inside the transaction and reported alone; a failed commit fails the whole group with the
 * commit's error and changes nothing, so nothing unacknowledged is ever visible and nothing
 * acknowledged is lost.
 * Rejected: one transaction per request (an fsync each: ~100s of writes/s); committing
 * without fsync and syncing on a timer (acknowledged writes could be lost on power cut). */
#include "daemon/server_int.h"

#include <inttypes.h>

#define MAX_GROUP 4096

static void log_ddl(const vd_write *w)
{
    const vd_op *op = &w->op;
    if (op->kind == VD_OP_CREATE)
        vd_log(VD_LOG_INFO, "created collection %s (dim %" PRIu32 ", %s)", op->params.name,
               op->params.dim, vd_metric_name(op->params.metric));
    else if (op->kind == VD_OP_DROP)
        vd_log(VD_LOG_INFO, "dropped collection %s", op->collection);
    else if (op->kind == VD_OP_PINDEX_CREATE)
        vd_log(VD_LOG_INFO, "created payload index %s.%s (%s)", op->collection, op->field,
               vd_pindex_kind_name(op->pindex_kind));
    else if (op->kind == VD_OP_PINDEX_DROP)
        vd_log(VD_LOG_INFO, "dropped payload index %s.%s", op->collection, op->field);
}

static void answer(vd_server *srv, vd_job *j)
{
    vd_result res;
    vd_err err;
    vd_status st = vd_engine_write_result(srv->engine, &j->write, &res, &err);
    if (st == VD_OK) {
        atomic_fetch_add(&srv->ops_committed, 1);
        vd_reply_result(srv, j, &res);
    } else {
        vd_reply_status(srv, j, st, &err);
    }
    vd_job_done(srv, j);
}

/* Commits jobs[0..n) (all prepared), answers every one of them and hands them back - but a
 * write whose work goes on in the background (a payload index being built) is parked on
 * *parked and answered when it is done. */
static void commit_group(vd_server *srv, vd_job **jobs, size_t n, vd_write **ws,
                         vd_job **parked)
{
    if (n == 0) return;
    for (size_t i = 0; i < n; i++)
        ws[i] = &jobs[i]->write;
    vd_err err;
    vd_store_counters before, after;
    vd_store_counters_get(srv->store, &before);
    uint64_t t0 = vd_now_ns();
    vd_status s = vd_engine_write_commit(srv->engine, ws, n, &err);
    uint64_t dt = vd_now_ns() - t0;
    vd_store_counters_get(srv->store, &after); /* this thread is the store's only writer */
    vd_hist_observe(&srv->metrics.group_size, n);
    vd_hist_observe(&srv->metrics.commit_ns, dt);
    if (after.commits != before.commits)
        vd_hist_observe(&srv->metrics.sync_ns, after.last_commit_ns);
    if (s == VD_OK) {
        atomic_fetch_add(&srv->writes_committed, 1);
    } else {
        atomic_fetch_add(&srv->metrics.commits_failed, 1);
        vd_log(VD_LOG_ERROR, "commit of %zu write(s) failed: %s", n, err.msg);
    }
    for (size_t i = 0; i < n; i++) {
        vd_job *j = jobs[i];
        if (j->write.op.status == VD_OK) log_ddl(&j->write);
        if (vd_engine_write_pending(srv->engine, &j->write)) {
            j->next = *parked;
            *parked = j;
            continue;
        }
        answer(srv, j);
    }
}

/* Prepares and commits a list of jobs in groups. */
static void run_jobs(vd_server *srv, vd_job *list, vd_job **group, vd_write **ws,
                     vd_job **parked)
{
    size_t n = 0;
    while (list) {
        vd_job *j = list;
        list = list->next;
        j->next = NULL;
        vd_err err;
        vd_status s = vd_engine_write_prepare(srv->engine, &j->req->op, &j->write, &err);
        if (s != VD_OK) {
            vd_reply_status(srv, j, s, &err);
            vd_job_done(srv, j);
            continue;
        }
        group[n++] = j;
        if (vd_write_ends_group(&j->write)) {
            commit_group(srv, group, n, ws, parked);
            n = 0;
        }
    }
    commit_group(srv, group, n, ws, parked);
}

/* Answers the parked jobs whose background work is done; with `why`, the others too, with
 * that error (the work stopped: it resumes at the next start). */
static void answer_parked(vd_server *srv, vd_job **parked, const vd_err *why)
{
    for (vd_job **p = parked; *p;) {
        vd_job *j = *p;
        int pending = vd_engine_write_pending(srv->engine, &j->write);
        if (pending && !why) {
            p = &j->next;
            continue;
        }
        *p = j->next;
        j->next = NULL;
        if (!pending) {
            answer(srv, j);
            continue;
        }
        vd_err err;
        vd_err_set(&err, why->code, "%s: %s; the index build resumes when the server starts "
                   "again", vd_request_name(j->kind), why->msg);
        vd_write_release(&j->write);
        vd_reply_status(srv, j, why->code, &err);
        vd_job_done(srv, j);
    }
}

/* Cannot group without the arrays: answer everything with an error rather than hang the
 * clients. */
static void refuse_all(vd_server *srv)
{
    vd_log(VD_LOG_ERROR, "writer: out of memory for its group arrays");
    vd_err err;
    vd_err_set(&err, VD_NOMEM, "writer out of memory");
    vd_job *j;
    while ((j = vd_jobq_pop(&srv->writeq)) != NULL) {
        vd_reply_status(srv, j, VD_NOMEM, &err);
        vd_job_done(srv, j);
    }
}

/* Background work (payload index builds) runs one bounded step at a time between groups,
 * never while writes wait: the queue is polled, not waited on, while there is any. One is
 * looked for at start too: a build a crash interrupted resumes. */
void *vd_writer__main(void *arg)
{
    vd_server *srv = arg;
    vd_job **group = vd_malloc(MAX_GROUP * sizeof *group);
    vd_write **ws = vd_malloc(MAX_GROUP * sizeof *ws);
    vd_job *list, *parked = NULL;
    int background = 1, closed = 0;
    if (!group || !ws) refuse_all(srv);
    while (group && ws) {
        if (background || parked)
            list = vd_jobq_poll_all(&srv->writeq, MAX_GROUP, &closed);
        else if (!(list = vd_jobq_pop_all(&srv->writeq, MAX_GROUP)))
            break;
        if (list) run_jobs(srv, list, group, ws, &parked);
        else if (closed) break;
        if (background || parked) {
            vd_err err;
            vd_status s = vd_engine_background(srv->engine, &background, &err);
            if (s != VD_OK) {
                vd_log(VD_LOG_ERROR, "writer: %s", err.msg);
                background = 0;
            }
            answer_parked(srv, &parked, s != VD_OK ? &err : NULL);
        }
    }
    vd_err stop;
    vd_err_set(&stop, VD_UNAVAILABLE, "the server is shutting down");
    answer_parked(srv, &parked, &stop);
    vd_free(group);
    vd_free(ws);
    return NULL;
}
