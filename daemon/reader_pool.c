/* daemon/reader_pool.c: the reader threads - search, get, list, info, count, stats.
 *
 * Each reader pops one job at a time from srv->readq, runs it through vd_engine_read and
 * encodes the result into the job's frame on this thread. There is no server-wide lock: the
 * engine takes a reference on the collection for the call and an LMDB snapshot only when it
 * reads stored records (see engine/read.c); the result, and the snapshot its payloads borrow
 * from, are released as soon as the frame is packed, never held across requests.
 * Rejected: per-thread reusable result buffers - allocation is small next to the search
 * itself, and per-request buffers keep the threads free of state. */
#include "daemon/server_int.h"

static void execute(vd_server *srv, vd_job *j)
{
    vd_result res;
    vd_err err;
    vd_status s = vd_engine_read(srv->engine, &j->req->op, &res, &err);
    if (s == VD_OK)
        vd_reply_result(srv, j, &res);
    else
        vd_reply_status(srv, j, s, &err);
}

void *vd_reader__main(void *arg)
{
    vd_server *srv = arg;
    vd_job *j;
    while ((j = vd_jobq_pop(&srv->readq)) != NULL) {
        uint64_t t0 = vd_now_ns();
        execute(srv, j);
        atomic_fetch_add_explicit(&srv->metrics.reader_busy_ns, vd_now_ns() - t0,
                                  memory_order_relaxed);
        vd_job_done(srv, j);
    }
    return NULL;
}
