/* daemon/jobq.c: the FIFOs between the loop thread and the worker threads, both ways.
 *
 * A mutex, a condition variable and an intrusive singly linked list (jobs carry `next`), so
 * pushing never allocates and cannot fail. FIFO order matters for the writer: the writes of
 * one connection reach it, and so are committed, in the order they were sent. The way back
 * is a queue too (srv->doneq), drained by the loop thread without waiting when
 * uv_async_send wakes it; the loop never blocks on a condition variable.
 * Rejected: a lock-free MPMC ring - at most a few hundred thousand jobs per second cross it,
 * where a mutex costs far less than the work each job does, and a ring needs a size bound
 * that backpressure already provides per connection. */
#include "daemon/server_int.h"

int vd_jobq_init(vd_jobq *q)
{
    memset(q, 0, sizeof *q);
    if (pthread_mutex_init(&q->mu, NULL)) return -1;
    if (pthread_cond_init(&q->cv, NULL)) {
        pthread_mutex_destroy(&q->mu);
        return -1;
    }
    return 0;
}

void vd_jobq_destroy(vd_jobq *q)
{
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
}

void vd_jobq_push(vd_jobq *q, vd_job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

vd_job *vd_jobq_pop_all(vd_jobq *q, size_t max)
{
    pthread_mutex_lock(&q->mu);
    while (!q->head && !q->closed)
        pthread_cond_wait(&q->cv, &q->mu);
    vd_job *first = q->head, *last = NULL;
    size_t taken = 0;
    for (vd_job *j = q->head; j && taken < max; j = j->next) {
        last = j;
        taken++;
    }
    if (last) {
        q->head = last->next;
        if (!q->head) q->tail = NULL;
        last->next = NULL;
        q->n -= taken;
    }
    pthread_mutex_unlock(&q->mu);
    return last ? first : NULL;
}

vd_job *vd_jobq_pop(vd_jobq *q)
{
    return vd_jobq_pop_all(q, 1);
}

vd_job *vd_jobq_poll_all(vd_jobq *q, size_t max, int *closed)
{
    pthread_mutex_lock(&q->mu);
    *closed = q->closed;
    int any = q->head != NULL;
    pthread_mutex_unlock(&q->mu);
    return any ? vd_jobq_pop_all(q, max) : NULL; /* only this thread pops: it stays non-empty */
}

vd_job *vd_jobq_take_all(vd_jobq *q)
{
    pthread_mutex_lock(&q->mu);
    vd_job *list = q->head;
    q->head = q->tail = NULL;
    q->n = 0;
    pthread_mutex_unlock(&q->mu);
    return list;
}

void vd_job_done(vd_server *srv, vd_job *j)
{
    vd_proto_request_free(j->req);
    j->req = NULL;
    vd_jobq_push(&srv->doneq, j);
    uv_async_send(&srv->done_async);
}

void vd_jobq_close(vd_jobq *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

size_t vd_jobq_len(vd_jobq *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}
