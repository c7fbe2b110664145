/* engine/engine_int.h: what the engine's files share.
 *
 *   engine.c  the engine object, limits, the checks and messages every operation shares,
 *             releasing results (calls no other engine file)
 *   read.c    list, info, count, stats, get, search (any thread)
 *   write.c   create, drop, upsert, delete: prepare, group commit, results (one thread)
 *   build.c   the bulk build: rows -> index on n threads -> one import (one thread) */
#ifndef VD_ENGINE_INT_H
#define VD_ENGINE_INT_H

#include "engine/vd_engine.h"

struct vd_engine {
    vd_store *store;         /* borrowed */
    vd_engine_limits limits; /* defaults filled in */
    struct {
        vd_parallel_fn fn; /* NULL: every read runs on its caller's thread */
        void *host;
        size_t width;
    } par;
};

/* Bytes an encoding adds around a response's arrays (status, tags, lengths): the precheck
 * keeps this much room below max_response_bytes. */
#define VD_ENGINE__RESPONSE_SLACK 1024u

/* Ends a request that failed with status s: prefixes err's message (err may be NULL) with
 * the operation's name unless it begins with it already, so every message of a request
 * starts with it. Returns s. */
vd_status vd_engine__fail(vd_status s, vd_err *err, vd_request_kind k);

/* A batch of n ids: 1..max_batch. */
vd_status vd_engine__check_batch(const vd_engine *e, vd_request_kind k, size_t n, vd_err *err);

/* VD_FULL (vd_engine_err_too_big) when `bytes` of result arrays would not fit in a
 * response. */
vd_status vd_engine__check_response(const vd_engine *e, vd_request_kind k, uint64_t bytes,
                                    vd_err *err);

#endif
