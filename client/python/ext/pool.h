/* client/python/ext/pool.h: a fixed pool of threads behind the engine's parallel-for
 * (vd_parallel_fn), for the embedded module: one search's queries run on every core while
 * the calling Python thread (GIL released) works too.
 *
 * Threads: vd_pool_run from any number of threads at once - each call is a job of its own,
 * and workers take tasks from every queued job; the caller works on its own job's tasks and
 * returns when all of them are done. vd_pool_new and vd_pool_free with no job running.
 * Pure C and pthreads: no Python here (tests/unit/test_embed_pool_concurrent.c runs it under
 * ThreadSanitizer). */
#ifndef VD_POOL_H
#define VD_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "common/vd_common.h"

typedef struct vd_pool vd_pool; /* opaque */

/* A pool `width` threads wide: the caller of vd_pool_run plus width - 1 workers (width 1:
 * no worker; every job runs on its caller). On VD_OK *out owns the pool. */
vd_status vd_pool_new(uint32_t width, vd_pool **out, vd_err *err);
void vd_pool_free(vd_pool *p); /* joins the workers; NULL is a no-op */
uint32_t vd_pool_width(const vd_pool *p);

/* A vd_parallel_fn (engine/vd_engine.h) with `pool` the vd_pool: runs task(ctx, i) for every
 * i in [0, n) and returns once all have returned. */
void vd_pool_run(void *pool, size_t n, void (*task)(void *ctx, size_t i), void *ctx);

#endif
