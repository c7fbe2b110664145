/* client/python/ext/pool.c: the embedded module's thread pool (pool.h).
 *
 * A job is a task function, a context and n task indices; it lives on its caller's stack
 * for the call. Jobs with tasks left to hand out sit in a FIFO under one mutex: a worker
 * takes the next index of the oldest job, runs it unlocked, and counts it done; the caller
 * pushes its job, takes indices of its own job like a worker, then waits until every index
 * of it is done (workers may still be running some). Tasks are coarse (a search is one task
 * per thread, which takes its queries from the engine's own counter), so one mutex
 * acquisition per task is noise next to the task.
 * Rejected: threads created per call (tens of microseconds each, paid by every small knn);
 * one global job at a time (two Python threads searching at once would serialize on it);
 * lock-free deques (no measurable gain at this task size). */
#include "client/python/ext/pool.h"

#include <pthread.h>

typedef struct job {
    struct job *next;
    void (*task)(void *ctx, size_t i);
    void *ctx;
    size_t n, handed, done; /* under the pool's mutex */
} job;

struct vd_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a job was queued, or stopping */
    pthread_cond_t done_cv; /* some job's last task finished */
    job *head, *tail;       /* jobs with indices left to hand out */
    int stopping;
    uint32_t width, n_workers;
    pthread_t *workers;
};

/* Under mu: the next index of j (the job leaves the queue when its last one is handed). */
static size_t take(vd_pool *p, job *j)
{
    size_t i = j->handed++;
    if (j->handed == j->n) { /* unlink j: it is the head when workers take, any when callers do */
        job **pp = &p->head, *prev = NULL;
        while (*pp != j) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = j->next;
        if (p->tail == j) p->tail = prev;
    }
    return i;
}

/* Runs index i of j and counts it done (mu is held on entry and on return). */
static void run_one(vd_pool *p, job *j, size_t i)
{
    pthread_mutex_unlock(&p->mu);
    j->task(j->ctx, i);
    pthread_mutex_lock(&p->mu);
    if (++j->done == j->n) pthread_cond_broadcast(&p->done_cv);
}

static void *worker_main(void *arg)
{
    vd_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (!p->head) break; /* stopping, and nothing queued */
        job *j = p->head;
        run_one(p, j, take(p, j));
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void vd_pool_run(void *pool, size_t n, void (*task)(void *ctx, size_t i), void *ctx)
{
    vd_pool *p = pool;
    if (n == 0) return;
    if (!p || p->n_workers == 0 || n == 1) {
        for (size_t i = 0; i < n; i++)
            task(ctx, i);
        return;
    }
    job j = {.task = task, .ctx = ctx, .n = n};
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = &j;
    else
        p->head = &j;
    p->tail = &j;
    pthread_cond_broadcast(&p->work_cv);
    while (j.handed < j.n)
        run_one(p, &j, take(p, &j));
    while (j.done < j.n)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

vd_status vd_pool_new(uint32_t width, vd_pool **out, vd_err *err)
{
    *out = NULL;
    vd_pool *p = vd_calloc(1, sizeof *p);
    if (!p) return vd_err_set(err, VD_NOMEM, "out of memory for a thread pool");
    p->width = width ? width : 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    if (p->width > 1 && !(p->workers = vd_calloc(p->width - 1, sizeof *p->workers))) {
        vd_pool_free(p);
        return vd_err_set(err, VD_NOMEM, "out of memory for a thread pool");
    }
    for (uint32_t i = 0; i + 1 < p->width; i++) {
        int rc = pthread_create(&p->workers[i], NULL, worker_main, p);
        if (rc) {
            vd_pool_free(p);
            return vd_err_set(err, VD_NOMEM, "cannot start thread %u of a pool of %u: %s", i + 2,
                              width, strerror(rc));
        }
        p->n_workers++;
    }
    *out = p;
    return VD_OK;
}

void vd_pool_free(vd_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (uint32_t i = 0; i < p->n_workers; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    vd_free(p->workers);
    vd_free(p);
}

uint32_t vd_pool_width(const vd_pool *p)
{
    return p->width;
}
