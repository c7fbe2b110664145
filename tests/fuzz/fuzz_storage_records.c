/* tests/fuzz/fuzz_storage_records.c: hostile stored records through storage's record codec
 * (storage/records.h), the functions every reader of LMDB's bytes goes through: keys, the
 * catalog record, points and vector records, meta values, and a slot's vector + links
 * records loaded into an index the way a store opens (vd_storage__slot_load, then
 * vd_index_load_finish with the catalog's header). Pure functions: no LMDB environment.
 *
 * Input: a sequence of chunks, each [kind u8][len u8][len bytes] (len clipped to what is
 * left); kind % 9 picks what the bytes are, and kind's high bit copies them to an address
 * that is 2 mod 4 (LMDB aligns values to 2 bytes only):
 *   0 catalog  [name_len u8][name][record]: decoded; a decoded record re-encodes to exactly
 *              the input bytes, and one with small parameters (dim <= 16, m <= 8) becomes
 *              the collection the next slots load into;
 *   1 points   record: decoded, payload JSON-checked; re-encodes to the input bytes;
 *   2 vector   record for the current dim: decoded; re-encodes to the input bytes;
 *   3 slot     [slot u8][vector_len u8][vector record][links record]: loaded into the
 *              current collection's index until one is refused;
 *   4 meta     the bytes as magic, format and next collection id;
 *   5 key      [table u8][cid u32 LE][key]: decoded as each kind of key; decoded keys
 *              re-encode to the input bytes;
 *   6 string id records: the bytes as a sids value, a skeys value, a sequence record and a
 *              bucket (decoded ones re-encode to the input; a decoded bucket's entries are
 *              each found, edited out one by one down to nothing, and edited back);
 *   7 merge    [split u8][object][object]: two halves that pass vd_json_check_object are
 *              merged, and the merge must pass it too and fit its bound;
 *   8 pindex   [kind u8][record]: decoded as a payload index definition and as a slot's
 *              values record of that kind; what decodes re-encodes to the input bytes, and
 *              values added to postings and removed again leave them empty.
 * Every refusal must be VD_CORRUPT or VD_VERSION (VD_NOMEM for a slot). After the last
 * chunk a collection that loaded slots is finished with its header; a finished graph must
 * validate (but for reachability, which the store logs rather than refuses), search, and
 * serialize every filled slot's links (vd_storage__links_encode). Nothing may crash, leak,
 * hang or read out of bounds: every record is a private copy of exactly its length. */
#include <stdlib.h>
#include <string.h>

#include "storage/storage_int.h"

#define DEFAULT_DIM 4

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

typedef struct state {
    vd_catalog_rec rec; /* the current collection; hdr used by the finish */
    int have_rec;
    vd_index *ix;
    int loading; /* slots still accepted */
    uint32_t n_loaded;
    vd_buf buf;
} state;

static int take(reader *r, uint8_t *out)
{
    if (!r->n) return 0;
    *out = *r->p++;
    r->n--;
    return 1;
}

/* A private copy of the next len bytes (clipped) that ends where its allocation ends, so
 * ASan sees any read past them; with g_odd it starts 2 bytes into the allocation (4-aligned
 * + 2), as LMDB aligns values to 2 bytes only. Freed with release(). */
static int g_odd;
static uint8_t *take_copy(reader *r, size_t len, size_t *n_out)
{
    if (len > r->n) len = r->n;
    size_t off = g_odd ? 2 : 0;
    uint8_t *b = (uint8_t *)malloc(len + off ? len + off : 1) + off;
    memcpy(b, r->p, len);
    r->p += len;
    r->n -= len;
    *n_out = len;
    return b;
}

static void release(uint8_t *p) { free(p - (g_odd ? 2 : 0)); }

static void refused_ok(vd_status s)
{
    if (s != VD_CORRUPT && s != VD_VERSION) abort();
}

static uint32_t dim_of(const state *st)
{
    return st->ix ? vd_index_params_of(st->ix)->dim : DEFAULT_DIM;
}

static void open_index(state *st, const vd_collection_params *p, uint64_t seed)
{
    vd_index_close(st->ix);
    vd_index_params ip = {.dim = p->dim, .metric = p->metric, .m = p->m,
                          .ef_construction = p->ef_construction, .seed = seed,
                          .deferred_publish = 1};
    st->ix = NULL;
    if (vd_index_open(&ip, &st->ix, NULL) != VD_OK) abort();
    st->loading = 1;
    st->n_loaded = 0;
}

static void do_catalog(state *st, reader *c)
{
    uint8_t name_len = 0;
    take(c, &name_len);
    size_t nn, n;
    uint8_t *name = take_copy(c, name_len % 72u, &nn);
    uint8_t *rec = take_copy(c, c->n, &n);
    vd_catalog_rec r;
    vd_status s = vd_storage__catalog_decode(name, nn, rec, n, &r, NULL);
    if (s != VD_OK) {
        refused_ok(s);
    } else {
        uint8_t out[VD_CATALOG_REC_BYTES];
        vd_storage__catalog_encode(&r, out);
        /* The newest version re-encodes byte for byte; a version 1 record is rewritten as
         * the newest one, which must decode to the same record. */
        if (n == VD_CATALOG_REC_V1_BYTES) {
            vd_catalog_rec r2;
            if (vd_storage__catalog_decode(name, nn, out, sizeof out, &r2, NULL) != VD_OK ||
                memcmp(&r2.params, &r.params, sizeof r.params) != 0 || r2.seed != r.seed ||
                r2.count != r.count || r2.hdr.n_slots != r.hdr.n_slots)
                abort();
        } else if (n != sizeof out || memcmp(out, rec, n) != 0) {
            abort();
        }
        if (strlen(r.params.name) != nn || memcmp(r.params.name, name, nn) != 0) abort();
        if (r.params.dim <= 16 && r.params.m <= 8) {
            st->rec = r;
            st->have_rec = 1;
            open_index(st, &r.params, r.seed);
        }
    }
    release(name);
    release(rec);
}

static void do_point(reader *c)
{
    size_t n;
    uint8_t *rec = take_copy(c, c->n, &n);
    vd_point_rec r;
    vd_status s = vd_storage__point_decode(rec, n, &r, NULL);
    if (s != VD_OK) {
        refused_ok(s);
    } else {
        if (r.payload_len && !r.payload) abort();
        if (r.payload) vd_json_check_object(r.payload, r.payload_len, NULL);
        size_t size = vd_storage__point_size(r.payload_len);
        uint8_t *out = malloc(size);
        vd_storage__point_encode(out, r.slot, r.payload, r.payload_len);
        if (size != n || memcmp(out, rec, n) != 0) abort();
        free(out);
    }
    release(rec);
}

static void do_vector(const state *st, reader *c)
{
    uint32_t dim = dim_of(st);
    size_t n;
    uint8_t *rec = take_copy(c, c->n, &n);
    vd_vector_rec r;
    vd_status s = vd_storage__vector_decode(rec, n, dim, &r, NULL);
    if (s != VD_OK) {
        refused_ok(s);
    } else {
        float scratch[16];
        const float *v = vd_storage__vector_floats(&r, dim, scratch);
        uint8_t *out = malloc(vd_storage__vector_size(dim));
        vd_storage__vector_encode(out, r.id, v, dim);
        if (vd_storage__vector_size(dim) != n || memcmp(out, rec, n) != 0) abort();
        free(out);
    }
    release(rec);
}

static void do_slot(state *st, reader *c)
{
    uint8_t slot = 0, vlen = 0;
    take(c, &slot);
    take(c, &vlen);
    size_t vn, ln;
    uint8_t *v = take_copy(c, vlen, &vn);
    uint8_t *l = take_copy(c, c->n, &ln);
    if (!st->ix) {
        vd_collection_params p = {.dim = DEFAULT_DIM, .metric = VD_METRIC_L2, .m = 4,
                                  .ef_construction = 16};
        open_index(st, &p, 1);
    }
    if (st->loading) {
        float scratch[16];
        vd_status s = vd_storage__slot_load(st->ix, slot % 32u, v, vn, l, ln, scratch, NULL);
        if (s == VD_OK) st->n_loaded++;
        else if (s != VD_NOMEM) refused_ok(s);
        st->loading = s == VD_OK;
    }
    release(v);
    release(l);
}

static void do_meta(reader *c)
{
    size_t n;
    uint8_t *b = take_copy(c, c->n, &n);
    uint32_t v;
    vd_status s = vd_storage__magic_decode(b, n, NULL);
    if (s != VD_OK) refused_ok(s);
    uint8_t out[VD_META_U32_BYTES];
    if ((s = vd_storage__format_decode(b, n, &v, NULL)) != VD_OK) {
        refused_ok(s);
    } else {
        vd_storage__meta_u32_encode(out, v);
        if (v == 0 || v > VD_STORAGE_FORMAT_VERSION || memcmp(out, b, n)) abort();
    }
    if ((s = vd_storage__next_cid_decode(b, n, &v, NULL)) != VD_OK) {
        refused_ok(s);
    } else {
        vd_storage__meta_u32_encode(out, v);
        if (v == 0 || memcmp(out, b, n)) abort();
    }
    release(b);
}

static void do_key(reader *c)
{
    uint8_t db = 0, cb[4] = {0};
    take(c, &db);
    for (int i = 0; i < 4; i++) take(c, &cb[i]);
    uint32_t cid = vd_get_u32le(cb), slot, c2;
    uint64_t id;
    size_t n;
    uint8_t *k = take_copy(c, c->n, &n), out[VD_KEY_POINT_BYTES];
    if (vd_storage__key_point_decode(k, n, cid, &id)) {
        vd_storage__key_point(out, cid, id);
        if (n != VD_KEY_POINT_BYTES || memcmp(out, k, n) != 0) abort();
    }
    if (vd_storage__key_slot_decode(k, n, cid, &slot)) {
        vd_storage__key_slot(out, cid, slot);
        if (n != VD_KEY_SLOT_BYTES || memcmp(out, k, n) != 0) abort();
    }
    const vd_db_info *d = vd_storage__db_info((vd_db)(db % (VD_DB_COUNT + 1)));
    if (vd_storage__key_cid_decode((vd_db)(db % (VD_DB_COUNT + 1)), k, n, &c2)) {
        vd_storage__key_cid(out, c2);
        if (!d || memcmp(out, k, VD_KEY_CID_BYTES)) abort();
        if (d->cid_key_bytes == VD_KEY_VARIABLE ? n < VD_KEY_CID_BYTES : n != d->cid_key_bytes)
            abort();
    }
    const uint8_t *sid;
    size_t len;
    int bucket;
    if (vd_storage__key_sid_decode(k, n, cid, &sid, &len, &bucket)) {
        uint8_t sk[VD_KEY_SID_MAX];
        if (vd_storage__key_sid(sk, cid, sid, len) != n || memcmp(sk, k, n) != 0) abort();
        if (bucket != (len == VD_SID_SPLIT) || len > VD_SID_SPLIT) abort();
    }
    release(k);
}

/* A decoded bucket: every entry found; removed one by one; rebuilt from nothing. */
static void bucket_rounds(const uint8_t *b, size_t n)
{
    uint8_t *x = malloc(n + VD_SID_ENTRY_MAX), *y = malloc(n + VD_SID_ENTRY_MAX);
    size_t off = 0, rl, xn = 0;
    const uint8_t *rest;
    uint64_t key, k2;
    while (vd_storage__sid_bucket_next(b, n, &off, &rest, &rl, &key)) {
        if (!vd_storage__sid_bucket_find(b, n, rest, rl, &k2) || k2 != key) abort();
        xn = vd_storage__sid_bucket_edit(x, xn, rest, rl, key, y); /* rebuilt, in order */
        memcpy(x, y, xn);
    }
    if (xn != n || memcmp(x, b, n) != 0) abort();
    for (off = 0; vd_storage__sid_bucket_next(b, n, &off, &rest, &rl, &key);) {
        xn = vd_storage__sid_bucket_edit(x, xn, rest, rl, VD_ID_NONE, y);
        memcpy(x, y, xn);
        if (xn && vd_storage__sid_bucket_decode(x, xn, NULL) != VD_OK) abort();
    }
    if (xn != 0) abort();
    free(x);
    free(y);
}

static void do_sid(reader *c)
{
    size_t n;
    uint8_t *b = take_copy(c, c->n, &n);
    uint64_t key;
    vd_sidseq q;
    vd_status s;
    if ((s = vd_storage__sid_decode(b, n, &key, NULL)) != VD_OK) {
        refused_ok(s);
    } else {
        uint8_t out[VD_SID_REC_BYTES];
        vd_storage__sid_encode(out, key);
        if (n != sizeof out || memcmp(out, b, n)) abort();
    }
    if ((s = vd_storage__skey_decode(b, n, NULL)) != VD_OK) refused_ok(s);
    else if (vd_str_id_check(b, n, NULL) != VD_OK) abort();
    if ((s = vd_storage__sidseq_decode(b, n, &q, NULL)) != VD_OK) {
        refused_ok(s);
    } else {
        uint8_t out[VD_SIDSEQ_REC_BYTES];
        vd_storage__sidseq_encode(out, &q);
        if (n != sizeof out || memcmp(out, b, n)) abort();
    }
    if ((s = vd_storage__sid_bucket_decode(b, n, NULL)) != VD_OK) refused_ok(s);
    else bucket_rounds(b, n);
    release(b);
}

static void do_merge(reader *c)
{
    uint8_t split = 0;
    take(c, &split);
    size_t na, nb;
    uint8_t *a = take_copy(c, split < c->n ? split : c->n, &na);
    uint8_t *b = take_copy(c, c->n, &nb);
    if (vd_json_check_object(a, na, NULL) == VD_OK && vd_json_check_object(b, nb, NULL) == VD_OK) {
        uint8_t *out = malloc(na + nb + 1);
        size_t n = 0;
        if (vd_storage__json_merge(a, na, b, nb, out, &n, NULL) != VD_OK) abort();
        if (n > na + nb || vd_json_check_object(out, n, NULL) != VD_OK) abort();
        free(out);
    }
    release(a);
    release(b);
}

static void do_pindex(reader *c)
{
    uint8_t kb = 0;
    take(c, &kb);
    vd_pindex_kind kind = (vd_pindex_kind)(kb % 4 + 1);
    size_t n;
    uint8_t *b = take_copy(c, c->n, &n);
    vd_pdef_rec d;
    vd_status s = vd_storage__pdef_decode(b, n, &d, NULL);
    if (s == VD_OK) {
        uint8_t *out = malloc(vd_storage__pdef_size(d.path_len));
        vd_storage__pdef_encode(out, &d);
        if (vd_storage__pdef_size(d.path_len) != n || memcmp(out, b, n)) abort();
        free(out);
    } else if (s != VD_CORRUPT && s != VD_VERSION) {
        abort();
    }
    vd_pvals r;
    s = vd_storage__pvals_decode(b, n, kind, &r, NULL);
    if (s == VD_OK) {
        vd_pval_item items[64];
        size_t it = 0, m = 0;
        while (m < 64 && vd_storage__pvals_next(&r, &it, &items[m])) m++;
        if (m == r.n) { /* the record re-encodes from its values */
            vd_buf out = {0};
            size_t len = 0;
            if (vd_storage__pvals_encode(&out, kind, r.flags, items, m, &len, NULL) != VD_OK ||
                len != n || memcmp(out.p, b, n))
                abort();
            vd_storage__buf_free(&out);
        }
        vd_pidx *x = vd_pidx_new(kind);
        if (x && vd_pidx_add(x, 7, &r, NULL) == VD_OK) {
            vd_pidx_remove(x, 7, &r);
            if (vd_pidx_points(x) || !roaring_bitmap_is_empty(vd_pidx_present(x))) abort();
        }
        vd_pidx_free(x);
    } else if (s != VD_CORRUPT && s != VD_VERSION) {
        abort();
    }
    release(b);
}

/* The end of a load: the header, the validator, a search, every slot's links again. */
static void finish(state *st, reader *r)
{
    if (!st->ix || !st->loading || !st->n_loaded) return;
    vd_index_header h = st->rec.hdr;
    if (!st->have_rec) {
        uint8_t entry = 255, level = 0, n_slots = 0;
        take(r, &entry);
        take(r, &level);
        take(r, &n_slots);
        h = (vd_index_header){entry == 255 ? UINT32_MAX : entry % 32u, level % 34u, n_slots};
    }
    /* The finish reserves n_slots (a stored u32): huge headers are the index's to bound,
     * and tests/fuzz/fuzz_index_load.c keeps them small too. */
    if (h.n_slots > 1024) return;
    if (vd_index_load_finish(st->ix, &h, NULL) != VD_OK) return;
    vd_err e;
    if (vd_index_validate(st->ix, &e) != VD_OK && !strstr(e.msg, "not reachable")) abort();
    float q[16] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8};
    vd_hit hits[8];
    uint32_t nh = 0;
    if (vd_index_search(st->ix, q, 8, 16, hits, &nh, NULL) != VD_OK) abort();
    vd_index_header_get(st->ix, &h);
    for (uint32_t slot = 0; slot < h.n_slots; slot++) {
        uint64_t id;
        const float *v;
        size_t len;
        if (vd_index_slot_vector(st->ix, slot, &id, &v, NULL) != VD_OK) continue;
        if (vd_storage__links_encode(st->ix, slot, &st->buf, &len, NULL) != VD_OK) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    state st = {0};
    uint8_t kind, len;
    for (int i = 0; i < 64 && take(&r, &kind) && take(&r, &len); i++) {
        size_t n = len < r.n ? len : r.n;
        reader c = {r.p, n};
        g_odd = (kind & 0x80) != 0;
        r.p += n;
        r.n -= n;
        switch (kind % 9) {
        case 0: do_catalog(&st, &c); break;
        case 1: do_point(&c); break;
        case 2: do_vector(&st, &c); break;
        case 3: do_slot(&st, &c); break;
        case 4: do_meta(&c); break;
        case 5: do_key(&c); break;
        case 6: do_sid(&c); break;
        case 7: do_merge(&c); break;
        default: do_pindex(&c); break;
        }
    }
    finish(&st, &r);
    vd_index_close(st.ix);
    vd_storage__buf_free(&st.buf);
    return 0;
}
