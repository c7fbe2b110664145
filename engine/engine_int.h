/* engine/engine_int.h: what the engine's files share.
 *
 *   engine.c  the engine object, limits, the checks and messages every operation shares,
 *             releasing results (calls no other engine file)
 *   cursor.c  scroll cursors: the opaque token, both ways (pure; calls nothing)
 *   ids.c     string ids on the read side: keys of ids, names of hits, packed arrays
 *   scroll.c  scroll (any thread)
 *   read.c    list, info, count, stats, get, search, and the dispatch of reads (any thread)
 *   write.c   create, drop, upsert, delete, set_payload: prepare, group commit, results
 *             (one thread)
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

/* ---- cursor.c ------------------------------------------------------------------------------ */
#define VD_ENGINE__CURSOR_MAX (6 + VD_STR_ID_MAX + 8)
/* The cursor of position id (int ids) or str[0..len) (string ids) in collection cid into
 * out; returns its length. */
size_t vd_engine__cursor_encode(uint8_t out[VD_ENGINE__CURSOR_MAX], uint32_t cid, vd_id_type t,
                                uint64_t id, const uint8_t *str, size_t len);
/* A cursor p[0..n) for collection cid of id type t into *from (str borrows p). VD_INVALID
 * "scroll: invalid cursor ..." for anything this file did not write, "scroll: the cursor
 * belongs to another collection ..." for a well-formed one of another collection. */
vd_status vd_engine__cursor_decode(const uint8_t *p, size_t n, uint32_t cid, vd_id_type t,
                                   vd_scroll_from *from, vd_err *err);

/* ---- ids.c -------------------------------------------------------------------------------- */
/* Packed string ids being built: ends has room for the n given to _init. */
typedef struct vd_engine__pack {
    uint8_t *bytes;
    size_t len, cap;
    uint32_t *ends;
    size_t n;
} vd_engine__pack;
vd_status vd_engine__pack_init(vd_engine__pack *pk, size_t n, vd_err *err);
vd_status vd_engine__pack_add(vd_engine__pack *pk, const uint8_t *p, size_t n, vd_err *err);
/* Hands the arrays over (the caller frees them with vd_free) and empties pk. */
void vd_engine__pack_take(vd_engine__pack *pk, uint8_t **bytes, uint32_t **ends);
void vd_engine__pack_free(vd_engine__pack *pk);
/* keys[i] = the internal key of ids' id i in snap (VD_ID_NONE when absent). */
vd_status vd_engine__str_keys(vd_snapshot *snap, const vd_collection *c, const vd_str_ids *ids,
                              uint64_t *keys, vd_err *err);
/* Names the hits of r (internal keys in r->ids) into r->str_ids / str_id_ends. *snap is a
 * snapshot begun before the search; it may be replaced by one begun after it (see ids.c). */
vd_status vd_engine__name_hits(vd_engine *e, const vd_collection *c, vd_search_result *r,
                               vd_snapshot **snap, vd_err *err);

/* Test hook (tests/unit only): called by a search of string ids between the snapshot that
 * names its hits and the search itself, so a test can commit a write in between. */
extern void (*vd_engine__test_after_snapshot)(void);

/* ---- scroll.c ----------------------------------------------------------------------------- */
vd_status vd_engine__read_scroll(vd_engine *e, const vd_scroll_req *q, vd_result *out,
                                 vd_err *err);

#endif
