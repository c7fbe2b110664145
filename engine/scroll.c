/* engine/scroll.c: scroll, a collection's points a page at a time in id order (numeric for
 * int ids, bytewise for string ids), for re-embedding, export and audits.
 *
 * A page is one snapshot (vd_snapshot_scroll), starting after the cursor's position
 * (engine/cursor.c), and takes points until it holds `limit`, or until one more would push
 * the response past max_response_bytes (the page is then short and carries a cursor: a
 * scroll never fails for size unless a single point is too big), or the collection ends
 * (no cursor). The walk stops on the first point it does not take, so "no cursor" means the
 * collection really ended. With a filter, points it does not match are passed over (storage
 * evaluates it on each record of the page's snapshot) and a page holds matches only. Ids, vectors and string ids are copied into the result's arrays;
 * payloads borrow from the snapshot, which the result keeps, as for get.
 * Any thread. */
#include "engine/engine_int.h"

/* Bytes a point adds to a response besides its arrays (tags and lengths). */
#define POINT_SLACK 16u

typedef struct page {
    vd_scroll_result *r;
    size_t limit;
    uint64_t budget;    /* bytes the page may still use, UINT64_MAX: no limit */
    uint64_t max_bytes; /* the engine's max_response_bytes, for the message */
    int with_payloads;
    vd_engine__pack ids; /* string ids */
    vd_status s;
    vd_err *err;
    uint64_t last_id; /* the last point taken, for the cursor */
    uint8_t last_str[VD_STR_ID_MAX]; /* a copy: the walk's ids live only during the call */
    size_t last_len;
} page;

static int take(void *ctx, const vd_scroll_point *pt)
{
    page *pg = ctx;
    vd_scroll_result *r = pg->r;
    uint64_t bytes = POINT_SLACK + (pt->str_id ? pt->str_len + 4 : 8) +
                     (r->vectors ? (uint64_t)r->dim * 4 : 0) +
                     (pg->with_payloads ? pt->payload_len : 0);
    if (r->n == pg->limit) return 1;
    if (bytes > pg->budget) {
        if (r->n == 0)
            pg->s = vd_engine_err_too_big(pg->err, VD_REQ_SCROLL, bytes, pg->max_bytes);
        return 1;
    }
    if (pg->budget != UINT64_MAX) pg->budget -= bytes;
    if (pt->str_id) {
        if ((pg->s = vd_engine__pack_add(&pg->ids, pt->str_id, pt->str_len, pg->err)) != VD_OK)
            return 1;
    } else {
        r->ids[r->n] = pt->id;
    }
    if (r->vectors) memcpy(r->vectors + r->n * r->dim, pt->vec, (size_t)r->dim * sizeof(float));
    if (r->payloads && pt->payload) r->payloads[r->n] = (vd_bytes){pt->payload_len, pt->payload};
    pg->last_id = pt->id;
    pg->last_len = pt->str_id ? pt->str_len : 0;
    if (pg->last_len) memcpy(pg->last_str, pt->str_id, pg->last_len);
    r->n++;
    return 0;
}

/* The page's arrays for up to `limit` points; the vectors' size is checked up front. */
static vd_status alloc_page(const vd_engine *e, const vd_scroll_req *q, int str, page *pg,
                            vd_err *err)
{
    vd_scroll_result *r = pg->r;
    size_t n = pg->limit;
    vd_status s = q->with_vectors
                      ? vd_engine__check_response(e, VD_REQ_SCROLL, (uint64_t)r->dim * 4, err)
                      : VD_OK;
    if (s != VD_OK) return s;
    if (str) {
        if ((s = vd_engine__pack_init(&pg->ids, n, err)) != VD_OK) return s;
    } else {
        r->ids = vd_malloc(n * sizeof *r->ids);
    }
    if (q->with_vectors) r->vectors = vd_malloc(n * (size_t)r->dim * sizeof *r->vectors);
    if (q->with_payloads) r->payloads = vd_calloc(n, sizeof *r->payloads);
    if ((!str && !r->ids) || (q->with_vectors && !r->vectors) ||
        (q->with_payloads && !r->payloads))
        return vd_err_set(err, VD_NOMEM, "scroll: out of memory for %zu points", n);
    return VD_OK;
}

static vd_status limit_of(const vd_engine *e, uint32_t limit, size_t *out, vd_err *err)
{
    *out = limit ? limit : VD_SCROLL_LIMIT_DEFAULT;
    if (e->limits.max_batch && *out > e->limits.max_batch)
        return vd_err_set(err, VD_INVALID, "scroll: limit %zu exceeds max_batch %" PRIu32, *out,
                          e->limits.max_batch);
    return VD_OK;
}

static vd_status next_cursor(const vd_collection *c, const page *pg, vd_scroll_result *r,
                             vd_err *err)
{
    uint8_t tok[VD_ENGINE__CURSOR_MAX];
    vd_id_type t = vd_collection_params_of(c)->id_type;
    size_t n = vd_engine__cursor_encode(tok, vd_collection_id(c), t, pg->last_id, pg->last_str,
                                        pg->last_len);
    if (!(r->next_cursor = vd_malloc(n)))
        return vd_err_set(err, VD_NOMEM, "scroll: out of memory for the cursor");
    memcpy(r->next_cursor, tok, n);
    r->next_cursor_len = n;
    return VD_OK;
}

vd_status vd_engine__read_scroll(vd_engine *e, const vd_scroll_req *q, vd_result *out,
                                 vd_err *err)
{
    vd_scroll_result *r = &out->scroll;
    vd_collection *c = NULL;
    page pg = {.r = r, .with_payloads = q->with_payloads, .s = VD_OK, .err = err};
    vd_scroll_from from = {.start = 1};
    int at_end = 1;
    vd_status s = limit_of(e, q->limit, &pg.limit, err);
    if (s == VD_OK && q->filter) s = vd_filter_check(q->filter, err);
    if (s == VD_OK) s = vd_store_acquire(e->store, q->collection, &c, err);
    if (s != VD_OK) return s;
    const vd_collection_params *p = vd_collection_params_of(c);
    int str = p->id_type == VD_ID_STR;
    r->dim = p->dim;
    pg.max_bytes = e->limits.max_response_bytes;
    pg.budget = pg.max_bytes == 0 ? UINT64_MAX
                : pg.max_bytes > 2 * VD_ENGINE__RESPONSE_SLACK + VD_ENGINE__CURSOR_MAX
                    ? pg.max_bytes - 2 * VD_ENGINE__RESPONSE_SLACK - VD_ENGINE__CURSOR_MAX
                    : 0;
    if (q->cursor.len &&
        (s = vd_engine__cursor_decode(q->cursor.data, q->cursor.len, vd_collection_id(c),
                                      p->id_type, &from, err)) != VD_OK)
        goto done;
    if ((s = alloc_page(e, q, str, &pg, err)) != VD_OK ||
        (s = vd_snapshot_begin(e->store, &out->snapshot, err)) != VD_OK)
        goto done;
    s = vd_snapshot_scroll(out->snapshot, c, &from, q->with_vectors, q->filter, take, &pg,
                           &at_end, err);
    if (s == VD_OK) s = pg.s;
    if (s == VD_OK && !at_end && r->n) s = next_cursor(c, &pg, r, err);
    if (s == VD_OK && str) vd_engine__pack_take(&pg.ids, &r->str_ids, &r->str_id_ends);
    if (s == VD_OK && !r->payloads) { /* nothing borrows from the snapshot: end it now */
        vd_snapshot_end(out->snapshot);
        out->snapshot = NULL;
    }
done:
    vd_engine__pack_free(&pg.ids);
    vd_collection_release(c);
    return s;
}
