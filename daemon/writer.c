/* daemon/writer.c: the one writer thread - group commit of create/drop/upsert/delete.
 *
 * The thread takes everything queued (up to MAX_GROUP jobs), turns each request into a
 * vd_op, calls vd_store_write once for the group - one LMDB transaction, one fsync - and only
 * after it returned VD_OK answers each request with its own op's result. So an acknowledged
 * write is durable and visible to every later read, and the cost of a sync is shared by all
 * writes that queued up while the previous one ran: the busier the server, the bigger the
 * groups.
 *
 * Validation that needs the collection (vector bytes = n x dim x 4) happens here, on the only
 * thread that changes collections, so the dim it checks against cannot change before the
 * commit. A create or drop ends its group: a later upsert in the same queue must see the
 * collection as it will be after that create/drop, which vd_store_acquire only shows once
 * committed. Those are rare; upserts and deletes group freely.
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

static void job_release_scratch(vd_job *j)
{
    vd_free(j->ids);
    j->ids = NULL;
    vd_floats_free(&j->vecs);
    vd_free(j->payloads);
    vd_free(j->payload_lens);
    j->payloads = NULL;
    j->payload_lens = NULL;
}

/* Turns a request into j->op. Returns 1 when the op should go to the store; 0 when the job
 * was already answered (invalid before reaching the store). */
static int prepare(vd_server *srv, vd_job *j)
{
    const vd_pb_request *q = j->req;
    vd_op *op = &j->op;
    vd_err err;
    memset(op, 0, sizeof *op);
    switch (q->op_case) {
    case VECTORD__V1__REQUEST__OP_CREATE_COLLECTION: {
        const Vectord__V1__CreateCollectionRequest *c = q->create_collection;
        if (vd_name_check(c->name, &err) != VD_OK) goto bad;
        if (vd_proto_check_create(c, srv->cfg.limits.max_dim, &err) != VD_OK) goto bad;
        op->kind = VD_OP_CREATE;
        snprintf(op->params.name, sizeof op->params.name, "%s", c->name);
        op->params.dim = c->dim;
        vd_metric_from_wire(c->metric, &op->params.metric);
        op->params.m = c->m;
        op->params.ef_construction = c->ef_construction;
        op->params.ef_search = c->ef_search;
        return 1;
    }
    case VECTORD__V1__REQUEST__OP_DROP_COLLECTION:
        if (vd_name_check(q->drop_collection->name, &err) != VD_OK) goto bad;
        op->kind = VD_OP_DROP;
        op->collection = q->drop_collection->name;
        return 1;
    case VECTORD__V1__REQUEST__OP_DELETE:
        if (vd_proto_ids(&q->delete_->ids, "delete", srv->cfg.limits.max_batch, &j->ids, &op->n,
                         &err) != VD_OK)
            goto bad;
        op->kind = VD_OP_DELETE;
        op->collection = q->delete_->collection;
        op->ids = j->ids;
        return 1;
    case VECTORD__V1__REQUEST__OP_UPSERT: {
        const Vectord__V1__UpsertRequest *u = q->upsert;
        vd_collection *c = NULL;
        if (vd_proto_ids(&u->ids, "upsert", srv->cfg.limits.max_batch, &j->ids, &op->n, &err))
            goto bad;
        if (vd_store_acquire(srv->store, u->collection, &c, &err) != VD_OK) goto bad;
        uint32_t dim = vd_collection_params_of(c)->dim;
        vd_collection_release(c);
        if (vd_proto_vectors(&u->vectors, op->n, dim, u->collection, &j->vecs, &err)) goto bad;
        if (vd_proto_payloads(u, op->n, &j->payloads, &j->payload_lens, &err)) goto bad;
        op->kind = VD_OP_UPSERT;
        op->collection = u->collection;
        op->ids = j->ids;
        op->vectors = j->vecs.v;
        op->payloads = j->payloads;
        op->payload_lens = j->payload_lens;
        return 1;
    }
    default:
        vd_err_set(&err, VD_INTERNAL, "%s is not a write operation", vd_proto_op_name(q->op_case));
        goto bad;
    }
bad:
    if (strncmp(err.msg, vd_proto_op_name(q->op_case), strlen(vd_proto_op_name(q->op_case))))
        vd_err_prefix(&err, "%s", vd_proto_op_name(q->op_case));
    vd_reply_status(srv, j, &err);
    return 0;
}

/* Answers a job whose op went through a successful commit. */
static void answer(vd_server *srv, vd_job *j)
{
    const vd_op *op = &j->op;
    if (op->status != VD_OK) {
        vd_reply_status(srv, j, &op->err);
        return;
    }
    atomic_fetch_add(&srv->ops_committed, 1);
    Vectord__V1__Response r = VECTORD__V1__RESPONSE__INIT;
    Vectord__V1__UpsertResponse ur = VECTORD__V1__UPSERT_RESPONSE__INIT;
    Vectord__V1__DeleteResponse dr = VECTORD__V1__DELETE_RESPONSE__INIT;
    Vectord__V1__DropCollectionResponse xr = VECTORD__V1__DROP_COLLECTION_RESPONSE__INIT;
    Vectord__V1__CreateCollectionResponse cr = VECTORD__V1__CREATE_COLLECTION_RESPONSE__INIT;
    Vectord__V1__CollectionInfo ci;
    vd_collection_info info;
    switch (op->kind) {
    case VD_OP_UPSERT:
        ur.written = op->n_done;
        r.result_case = VECTORD__V1__RESPONSE__RESULT_UPSERT;
        r.upsert = &ur;
        break;
    case VD_OP_DELETE:
        dr.deleted = op->n_done;
        r.result_case = VECTORD__V1__RESPONSE__RESULT_DELETE;
        r.delete_ = &dr;
        break;
    case VD_OP_DROP:
        r.result_case = VECTORD__V1__RESPONSE__RESULT_DROP_COLLECTION;
        r.drop_collection = &xr;
        break;
    case VD_OP_CREATE: {
        /* Only this thread creates or drops, so the collection is still there. */
        vd_collection *c = NULL;
        memset(&info, 0, sizeof info);
        info.params = op->params;
        if (vd_store_acquire(srv->store, op->params.name, &c, NULL) == VD_OK) {
            vd_collection_info_get(c, &info);
            vd_collection_release(c);
        }
        vd_info_to_wire(&info, &ci);
        cr.info = &ci;
        r.result_case = VECTORD__V1__RESPONSE__RESULT_CREATE_COLLECTION;
        r.create_collection = &cr;
        break;
    }
    }
    vd_reply(srv, j, &r);
}

static void log_ddl(const vd_op *op)
{
    if (op->status != VD_OK) return;
    if (op->kind == VD_OP_CREATE)
        vd_log(VD_LOG_INFO, "created collection %s (dim %" PRIu32 ", %s)", op->params.name,
               op->params.dim, vd_metric_name(op->params.metric));
    else if (op->kind == VD_OP_DROP)
        vd_log(VD_LOG_INFO, "dropped collection %s", op->collection);
}

/* Commits jobs[0..n) (all prepared) and answers every one of them. */
static void commit_group(vd_server *srv, vd_job **jobs, size_t n, vd_op *ops)
{
    if (n == 0) return;
    for (size_t i = 0; i < n; i++)
        ops[i] = jobs[i]->op;
    vd_err err;
    vd_status s = vd_store_write(srv->store, ops, n, &err);
    if (s == VD_OK)
        atomic_fetch_add(&srv->writes_committed, 1);
    else
        vd_log(VD_LOG_ERROR, "commit of %zu write(s) failed: %s", n, err.msg);
    for (size_t i = 0; i < n; i++) {
        vd_job *j = jobs[i];
        j->op = ops[i];
        if (s != VD_OK) {
            vd_reply_error(srv, j, vd_proto_code_of(s), "commit failed, nothing written: %s",
                           err.msg);
        } else {
            log_ddl(&j->op);
            answer(srv, j);
        }
        job_release_scratch(j);
        vd_proto_request_free(j->req);
        j->req = NULL;
        vd_server__complete(srv, j);
    }
}

void *vd_writer__main(void *arg)
{
    vd_server *srv = arg;
    vd_job **group = vd_malloc(MAX_GROUP * sizeof *group);
    vd_op *ops = vd_malloc(MAX_GROUP * sizeof *ops);
    if (!group || !ops) {
        /* Cannot group: answer everything with an error rather than hang the clients. */
        vd_log(VD_LOG_ERROR, "writer: out of memory for its group arrays");
        vd_job *j;
        while ((j = vd_jobq_pop(&srv->writeq)) != NULL) {
            vd_reply_error(srv, j, VECTORD__V1__CODE__RESOURCE_EXHAUSTED, "writer out of memory");
            vd_proto_request_free(j->req);
            j->req = NULL;
            vd_server__complete(srv, j);
        }
        vd_free(group);
        vd_free(ops);
        return NULL;
    }
    vd_job *list;
    while ((list = vd_jobq_pop_all(&srv->writeq, MAX_GROUP)) != NULL) {
        size_t n = 0;
        while (list) {
            vd_job *j = list;
            list = list->next;
            j->next = NULL;
            if (!prepare(srv, j)) {
                job_release_scratch(j);
                vd_proto_request_free(j->req);
                j->req = NULL;
                vd_server__complete(srv, j);
                continue;
            }
            group[n++] = j;
            if (j->op.kind == VD_OP_CREATE || j->op.kind == VD_OP_DROP) {
                commit_group(srv, group, n, ops);
                n = 0;
            }
        }
        commit_group(srv, group, n, ops);
    }
    vd_free(group);
    vd_free(ops);
    return NULL;
}
