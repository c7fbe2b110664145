/* tests/unit/test_engine_strids.c: string ids, scroll and set_payload through the engine on a
 * real store - the path the daemon and the embedded module take.
 *
 * String ids round trip (Unicode, NUL inside, 512 bytes, ids sharing their first 507+ bytes,
 * ids that look like integers) through upsert, get, search, knn padding, delete and a reopen
 * that loads nothing but the graph; each kind of bad id is refused naming its row, and ids
 * of the other kind naming the collection's; scroll walks both id types in id order page by
 * page, its cursor refuses damage, other collections and recreated ones; a page is cut short
 * rather than outgrow the response limit; set_payload merges or replaces, counts the points
 * it updated, leaves vectors alone. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>

#include <pthread.h>

#include "engine/engine_int.h"
#include "tests/unit/storage_testlib.h"

#define DIM 8

static char dir[64];
static vd_store *st;
static vd_engine *eng;

static void open_engine(uint32_t max_response)
{
    vd_store_options opt = {.create = 1, .n_threads = 1};
    vd_err e;
    ck_assert_msg(vd_store_open(dir, &opt, &st, &e) == VD_OK, "%s", e.msg);
    vd_engine_limits lim = {.max_batch = 1000, .max_k = 50, .max_response_bytes = max_response};
    ck_assert_int_eq(vd_engine_new(st, &lim, &eng, &e), VD_OK);
}

static void close_engine(void)
{
    vd_engine_free(eng);
    vd_store_close(st);
    eng = NULL;
    st = NULL;
}

static void setup(void)
{
    st_tmpdir(dir);
    open_engine(1 << 20);
}

static void teardown(void)
{
    close_engine();
    st_rmtree(dir);
}

/* ---- packed string ids ------------------------------------------------------------------ */
typedef struct sids {
    uint8_t bytes[64 * 1024];
    uint32_t ends[256];
    vd_str_ids v;
} sids;

/* n ids; lens[i] < 0 means strlen. */
static void pack(sids *s, const char *const *ids, const int *lens, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = lens && lens[i] >= 0 ? (size_t)lens[i] : strlen(ids[i]);
        memcpy(s->bytes + off, ids[i], len);
        off += len;
        s->ends[i] = (uint32_t)off;
    }
    s->v = (vd_str_ids){.bytes = s->bytes, .ends = s->ends, .n = n, .n_bytes = off};
}

static vd_status run(const vd_request *q, vd_result *r, vd_err *e)
{
    return vd_engine_execute(eng, q, r, e);
}

static void create(const char *name, vd_id_type t)
{
    vd_request q = {.kind = VD_REQ_CREATE};
    q.create = (vd_create_req){.name = name, .dim = DIM, .metric = VD_METRIC_L2, .m = 8,
                               .ef_construction = 64, .id_type = t};
    vd_result r;
    vd_err e;
    ck_assert_msg(run(&q, &r, &e) == VD_OK, "%s", e.msg);
    ck_assert_int_eq(r.info.params.id_type, t);
    vd_result_free(&r);
}

/* Upserts the ids with vectors st_vector_of(seed + i) and payloads {"i":i}. */
static vd_status upsert_str(const char *coll, const vd_str_ids *ids, uint64_t seed, vd_err *e)
{
    size_t n = ids->n;
    float *v = calloc(n * DIM + 1, sizeof *v);
    vd_bytes *pl = calloc(n + 1, sizeof *pl);
    char (*buf)[32] = calloc(n + 1, sizeof *buf);
    for (size_t i = 0; i < n; i++) {
        st_vector_of(seed + i, DIM, v + i * DIM);
        pl[i].len = (size_t)snprintf(buf[i], 32, "{\"i\":%zu}", i);
        pl[i].data = (const uint8_t *)buf[i];
    }
    vd_request q = {.kind = VD_REQ_UPSERT};
    q.upsert = (vd_upsert_req){.collection = coll, .vectors = v, .n_floats = n * DIM,
                               .dim = DIM, .payloads = pl, .n_payloads = n, .str_ids = *ids};
    vd_result r;
    vd_status s = run(&q, &r, e);
    if (s == VD_OK) ck_assert_uint_eq(r.n, n);
    vd_result_free(&r);
    free(v);
    free(pl);
    free(buf);
    return s;
}

static vd_status upsert_int(const char *coll, const uint64_t *ids, size_t n, vd_err *e)
{
    float *v = calloc(n * DIM + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) st_vector_of(ids[i], DIM, v + i * DIM);
    vd_request q = {.kind = VD_REQ_UPSERT};
    q.upsert = (vd_upsert_req){.collection = coll, .ids = ids, .n_ids = n, .vectors = v,
                               .n_floats = n * DIM, .dim = DIM};
    vd_result r;
    vd_status s = run(&q, &r, e);
    vd_result_free(&r);
    free(v);
    return s;
}

/* The ids as get sees them: found flags and vectors into found[] / vecs. */
static void get_str(const char *coll, const vd_str_ids *ids, uint8_t *found, float *vecs)
{
    vd_request q = {.kind = VD_REQ_GET};
    q.get = (vd_get_req){.collection = coll, .with_vectors = 1, .str_ids = *ids};
    vd_result r;
    vd_err e;
    ck_assert_msg(run(&q, &r, &e) == VD_OK, "%s", e.msg);
    ck_assert_uint_eq(r.get.n, ids->n);
    memcpy(found, r.get.found, ids->n);
    memcpy(vecs, r.get.vectors, ids->n * DIM * sizeof *vecs);
    vd_result_free(&r);
}

/* The awkward ids every string test uses: Unicode, NUL inside, integer look-alikes, shared
 * prefixes (ordinary and past the 507-byte bucket split), 1 and 512 bytes. */
static char long_a[513], long_b[513], long_c[513], mid[508];
static const char *const awkward[] = {
    "a.md#0", "a.md#1", "a.md#10", "a.md", "handbook.pdf#p12-3", "ünï©ødé ✓ 日本語 🚀",
    "7", "007", "18446744073709551615", "-1", "a\0b", "x", long_a, long_b, long_c, mid,
};
static const int awkward_lens[] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 3, -1,
                                   512, 512, 510, 507};
#define N_AWKWARD (sizeof awkward / sizeof *awkward)

static void make_long_ids(void)
{
    memset(long_a, 'q', 512);
    memcpy(long_b, long_a, 512);
    long_b[511] = 'r'; /* shares 511 bytes with long_a */
    memcpy(long_c, long_a, 510); /* a prefix of both */
    memset(mid, 'q', 507);       /* the bucket prefix itself, as an id of its own */
}

START_TEST(string_ids_round_trip_through_every_operation_and_a_reopen)
{
    make_long_ids();
    sids s;
    pack(&s, awkward, awkward_lens, N_AWKWARD);
    create("chunks", VD_ID_STR);
    vd_err e;
    ck_assert_msg(upsert_str("chunks", &s.v, 100, &e) == VD_OK, "%s", e.msg);
    for (int round = 0; round < 2; round++) {
        uint8_t found[N_AWKWARD];
        float vecs[N_AWKWARD * DIM], want[DIM];
        get_str("chunks", &s.v, found, vecs);
        for (size_t i = 0; i < N_AWKWARD; i++) {
            ck_assert_msg(found[i], "row %zu not found (round %d)", i, round);
            st_vector_of(100 + i, DIM, want);
            ck_assert(memcmp(vecs + i * DIM, want, sizeof want) == 0);
        }
        /* search: each point's own vector finds it first, by its own id */
        for (size_t i = 0; i < N_AWKWARD; i++) {
            st_vector_of(100 + i, DIM, want);
            vd_request q = {.kind = VD_REQ_SEARCH};
            q.search = (vd_search_req){.collection = "chunks", .queries = want,
                                       .n_floats = DIM, .dim = DIM, .k = 1};
            vd_result r;
            ck_assert_msg(run(&q, &r, &e) == VD_OK, "%s", e.msg);
            ck_assert_ptr_null(r.search.ids);
            size_t len = r.search.str_id_ends[0];
            size_t want_len = s.v.ends[i] - vd_str_ids_start(&s.v, i);
            ck_assert_uint_eq(len, want_len);
            ck_assert(memcmp(r.search.str_ids, s.bytes + vd_str_ids_start(&s.v, i), len) == 0);
            vd_result_free(&r);
        }
        close_engine(); /* nothing of the mapping is loaded: it is read in place */
        open_engine(1 << 20);
    }
    ck_assert(vd_store_check(st, NULL, NULL, &e) == VD_OK);
}
END_TEST

START_TEST(knn_pads_rows_and_names_hits_with_payloads)
{
    const char *ids[] = {"b", "a", "c"};
    sids s;
    pack(&s, ids, NULL, 3);
    create("few", VD_ID_STR);
    vd_err e;
    ck_assert(upsert_str("few", &s.v, 1, &e) == VD_OK);
    float q[2 * DIM];
    st_vector_of(2, DIM, q);       /* "a" (row 1) */
    st_vector_of(3, DIM, q + DIM); /* "c" (row 2) */
    vd_request r0 = {.kind = VD_REQ_SEARCH};
    r0.search = (vd_search_req){.collection = "few", .queries = q, .n_floats = 2 * DIM,
                                .dim = DIM, .k = 5, .with_payloads = 1};
    vd_result r;
    ck_assert_msg(run(&r0, &r, &e) == VD_OK, "%s", e.msg);
    ck_assert_uint_eq(r.search.nq, 2);
    ck_assert_ptr_null(r.search.ids);
    const uint32_t *ends = r.search.str_id_ends;
    ck_assert_uint_eq(ends[0], 1);
    ck_assert_int_eq(r.search.str_ids[0], 'a');
    ck_assert_uint_eq(ends[2], 3); /* three hits of one byte each, then two empty: padding */
    ck_assert_uint_eq(ends[3], 3);
    ck_assert_uint_eq(ends[4], 3);
    ck_assert_int_eq(r.search.str_ids[ends[4]], 'c'); /* row 1 starts with "c" */
    ck_assert(isinf(r.search.distances[3]) && isinf(r.search.distances[9]));
    ck_assert_uint_eq(r.search.payloads[0].len, 7);
    ck_assert(memcmp(r.search.payloads[0].data, "{\"i\":1}", 7) == 0);
    ck_assert_uint_eq(r.search.payloads[3].len, 0);
    vd_result_free(&r);
}
END_TEST

/* The request fails with VD_INVALID and a message containing `has`. */
static void refused(const vd_request *q, const char *has)
{
    vd_result r;
    vd_err e;
    ck_assert_int_eq(run(q, &r, &e), VD_INVALID);
    ck_assert_msg(strstr(e.msg, has), "'%s' lacks '%s'", e.msg, has);
    vd_result_free(&r);
}

static uint64_t count_of(const char *name)
{
    vd_request q = {.kind = VD_REQ_COUNT, .name = name};
    vd_result r;
    vd_err e;
    ck_assert(run(&q, &r, &e) == VD_OK);
    return r.n;
}

START_TEST(bad_and_mixed_ids_are_refused_naming_the_row)
{
    create("s", VD_ID_STR);
    create("i", VD_ID_INT);
    float v[4 * DIM] = {1};
    for (int i = 0; i < 4; i++) v[i * DIM] = (float)i + 1;
    uint64_t ints[2] = {1, 2};
    sids s;
    vd_request q = {.kind = VD_REQ_UPSERT};
    q.upsert = (vd_upsert_req){.collection = "s", .ids = ints, .n_ids = 2, .vectors = v,
                               .n_floats = 2 * DIM};
    refused(&q, "upsert into s: collection s has string ids; row 0 is an integer id (1)");
    const char *one[] = {"ok", "a"};
    pack(&s, one, NULL, 2);
    q.upsert = (vd_upsert_req){.collection = "i", .vectors = v, .n_floats = 2 * DIM,
                               .str_ids = s.v};
    refused(&q, "upsert into i: collection i has integer ids; row 0 is a string id (\"ok\")");
    q.upsert = (vd_upsert_req){.collection = "s", .ids = ints, .n_ids = 2, .vectors = v,
                               .n_floats = 2 * DIM, .str_ids = s.v};
    refused(&q, "both integer ids and string ids given");
    const char *bad[][2] = {{"fine", ""}, {"fine", "\xff"}, {"fine", "\xc0\xaf"},
                            {"fine", "\xed\xa0\x80"}, {"dup", "dup"}};
    const char *msgs[] = {"row 1: string id is empty",
                          "row 1: string id is not valid UTF-8 (byte 0: invalid UTF-8 lead byte)",
                          "row 1: string id is not valid UTF-8 (byte 0: invalid UTF-8 lead byte)",
                          "row 1: string id is not valid UTF-8 (byte 0: UTF-8 encoded surrogate)",
                          "string id \"dup\" appears more than once (rows 0 and 1)"};
    for (int k = 0; k < 5; k++) {
        pack(&s, bad[k], NULL, 2);
        q.upsert = (vd_upsert_req){.collection = "s", .vectors = v, .n_floats = 2 * DIM,
                                   .str_ids = s.v};
        refused(&q, msgs[k]);
    }
    static char big[514];
    memset(big, 'z', 513);
    const char *too_long[] = {"fine", big};
    pack(&s, too_long, NULL, 2);
    q.upsert.str_ids = s.v;
    refused(&q, "row 1: string id of 513 bytes is longer than 512");
    /* get, delete and set_payload use the same rule */
    pack(&s, bad[0], NULL, 2);
    vd_request g = {.kind = VD_REQ_GET};
    g.get = (vd_get_req){.collection = "s", .str_ids = s.v};
    refused(&g, "get s: row 1: string id is empty");
    g.get = (vd_get_req){.collection = "s", .ids = ints, .n_ids = 1};
    refused(&g, "get s: collection s has string ids; row 0 is an integer id (1)");
    vd_request d = {.kind = VD_REQ_DELETE};
    d.del = (vd_delete_req){.collection = "s", .str_ids = s.v};
    refused(&d, "delete from s: row 1: string id is empty");
    ck_assert_uint_eq(count_of("s"), 0);
    ck_assert_uint_eq(count_of("i"), 0);
}
END_TEST

START_TEST(delete_frees_an_id_and_a_new_upsert_takes_a_new_key)
{
    const char *ids[] = {"keep", "gone"};
    sids s;
    pack(&s, ids, NULL, 2);
    create("d", VD_ID_STR);
    vd_err e;
    ck_assert(upsert_str("d", &s.v, 10, &e) == VD_OK);
    ck_assert(upsert_str("d", &s.v, 20, &e) == VD_OK); /* replace: same points */
    ck_assert_uint_eq(count_of("d"), 2);
    const char *gone[] = {"gone", "never"};
    sids g;
    pack(&g, gone, NULL, 2);
    vd_request q = {.kind = VD_REQ_DELETE};
    q.del = (vd_delete_req){.collection = "d", .str_ids = g.v};
    vd_result r;
    ck_assert(run(&q, &r, &e) == VD_OK);
    ck_assert_uint_eq(r.n, 1); /* "never" did not exist */
    ck_assert_uint_eq(count_of("d"), 1);
    uint8_t found[2];
    float vecs[2 * DIM], want[DIM];
    get_str("d", &s.v, found, vecs);
    ck_assert(found[0] && !found[1]);
    st_vector_of(20, DIM, want);
    ck_assert(memcmp(vecs, want, sizeof want) == 0);
    /* it comes back as a new point */
    pack(&g, gone, NULL, 1);
    ck_assert(upsert_str("d", &g.v, 30, &e) == VD_OK);
    get_str("d", &s.v, found, vecs);
    ck_assert(found[0] && found[1]);
    st_vector_of(30, DIM, want);
    ck_assert(memcmp(vecs + DIM, want, sizeof want) == 0);
    ck_assert_msg(vd_store_check(st, NULL, NULL, &e) == VD_OK, "%s", e.msg);
}
END_TEST

/* ---- scroll ---------------------------------------------------------------------------- */
typedef struct walk {
    size_t n_pages, n;
    uint64_t ints[4096];
    char strs[4096][520];
    size_t lens[4096];
} walk;

/* Scrolls coll to the end in pages of `limit`; every page but the last has a cursor. */
static void scroll_all(const char *coll, uint32_t limit, walk *w)
{
    uint8_t cursor[1024];
    size_t clen = 0;
    memset(w, 0, sizeof *w);
    for (;;) {
        vd_request q = {.kind = VD_REQ_SCROLL};
        q.scroll = (vd_scroll_req){.collection = coll, .limit = limit,
                                   .cursor = {clen, cursor}, .with_payloads = 1};
        vd_result r;
        vd_err e;
        ck_assert_msg(run(&q, &r, &e) == VD_OK, "%s", e.msg);
        w->n_pages++;
        for (size_t i = 0; i < r.scroll.n; i++) {
            if (r.scroll.ids) {
                w->ints[w->n++] = r.scroll.ids[i];
                continue;
            }
            size_t a = i ? r.scroll.str_id_ends[i - 1] : 0, b = r.scroll.str_id_ends[i];
            memcpy(w->strs[w->n], r.scroll.str_ids + a, b - a);
            w->lens[w->n++] = b - a;
        }
        ck_assert_uint_le(r.scroll.n, limit);
        int more = r.scroll.next_cursor != NULL;
        if (more) {
            ck_assert_uint_le(r.scroll.next_cursor_len, sizeof cursor);
            memcpy(cursor, r.scroll.next_cursor, r.scroll.next_cursor_len);
            clen = r.scroll.next_cursor_len;
        }
        vd_result_free(&r);
        if (!more) break;
    }
}

static int cmp_bytes(const void *a, size_t na, const void *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

START_TEST(scroll_walks_both_id_types_in_id_order)
{
    make_long_ids();
    sids s;
    pack(&s, awkward, awkward_lens, N_AWKWARD);
    create("s", VD_ID_STR);
    create("i", VD_ID_INT);
    vd_err e;
    ck_assert(upsert_str("s", &s.v, 1, &e) == VD_OK);
    uint64_t ints[300];
    for (size_t i = 0; i < 300; i++) ints[i] = (i * 7919) % 1000 * 1000003ull; /* shuffled */
    ints[0] = UINT64_MAX - 1;
    ck_assert(upsert_int("i", ints, 300, &e) == VD_OK);
    static walk w;
    for (uint32_t limit = 1; limit <= 400; limit = limit * 3 + 1) {
        scroll_all("i", limit, &w);
        ck_assert_uint_eq(w.n, 300);
        for (size_t i = 1; i < w.n; i++) ck_assert(w.ints[i - 1] < w.ints[i]);
        ck_assert_uint_eq(w.ints[299], UINT64_MAX - 1);
        scroll_all("s", limit, &w);
        ck_assert_uint_eq(w.n, N_AWKWARD);
        for (size_t i = 1; i < w.n; i++)
            ck_assert_msg(cmp_bytes(w.strs[i - 1], w.lens[i - 1], w.strs[i], w.lens[i]) < 0,
                          "rows %zu, %zu out of bytewise order (limit %u)", i - 1, i, limit);
    }
    create("empty", VD_ID_STR);
    scroll_all("empty", 10, &w);
    ck_assert_uint_eq(w.n, 0);
    ck_assert_uint_eq(w.n_pages, 1);
}
END_TEST

/* A page of coll after `cursor`; the result is the caller's. */
static vd_status page(const char *coll, const uint8_t *cursor, size_t clen, uint32_t limit,
                      int vectors, vd_result *r, vd_err *e)
{
    vd_request q = {.kind = VD_REQ_SCROLL};
    q.scroll = (vd_scroll_req){.collection = coll, .limit = limit, .cursor = {clen, cursor},
                               .with_vectors = vectors, .with_payloads = 1};
    return run(&q, r, e);
}

START_TEST(scroll_cursors_refuse_damage_other_and_recreated_collections)
{
    create("a", VD_ID_INT);
    create("b", VD_ID_INT);
    create("s", VD_ID_STR);
    uint64_t ids[5] = {1, 2, 3, 4, 5};
    vd_err e;
    ck_assert(upsert_int("a", ids, 5, &e) == VD_OK);
    ck_assert(upsert_int("b", ids, 5, &e) == VD_OK);
    vd_result r;
    ck_assert(page("a", NULL, 0, 2, 0, &r, &e) == VD_OK);
    uint8_t cur[64];
    size_t n = r.scroll.next_cursor_len;
    memcpy(cur, r.scroll.next_cursor, n);
    vd_result_free(&r);
    const char *stale = "scroll: the cursor belongs to another collection, or to one dropped "
                        "since; start again without a cursor";
    const char *forged = "scroll: invalid cursor (damaged, or not one this server gave); start "
                         "again without a cursor";
    vd_result x;
    ck_assert_int_eq(page("b", cur, n, 2, 0, &x, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, stale);
    ck_assert_int_eq(page("s", cur, n, 2, 0, &x, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, stale);
    for (size_t i = 0; i < n; i++) { /* every byte flipped, every truncation */
        uint8_t bad[64];
        memcpy(bad, cur, n);
        bad[i] ^= 0x40;
        ck_assert_int_eq(page("a", bad, n, 2, 0, &x, &e), VD_INVALID);
        ck_assert_str_eq(e.msg, forged);
        ck_assert_int_eq(page("a", cur, i, 2, 0, &x, &e), i ? VD_INVALID : VD_OK);
        vd_result_free(&x);
    }
    /* a dropped and recreated collection of the same name has another id */
    vd_request d = {.kind = VD_REQ_DROP, .name = "a"};
    ck_assert(run(&d, &x, &e) == VD_OK);
    create("a", VD_ID_INT);
    ck_assert(upsert_int("a", ids, 5, &e) == VD_OK);
    ck_assert_int_eq(page("a", cur, n, 2, 0, &x, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, stale);
    vd_request big = {.kind = VD_REQ_SCROLL};
    big.scroll = (vd_scroll_req){.collection = "a", .limit = 1001};
    ck_assert_int_eq(run(&big, &x, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "scroll: limit 1001 exceeds max_batch 1000");
    big.scroll.collection = "nope";
    big.scroll.limit = 0;
    ck_assert_int_eq(run(&big, &x, &e), VD_NOTFOUND);
    ck_assert_str_eq(e.msg, "scroll: collection nope does not exist");
}
END_TEST

START_TEST(scroll_pages_are_cut_short_rather_than_outgrow_the_response_limit)
{
    close_engine();
    open_engine(8192); /* about 30 points of 8 dims with vectors per page */
    create("c", VD_ID_INT);
    uint64_t ids[200];
    for (size_t i = 0; i < 200; i++) ids[i] = i;
    vd_err e;
    ck_assert(upsert_int("c", ids, 200, &e) == VD_OK);
    size_t seen = 0, pages = 0;
    uint8_t cur[64];
    size_t clen = 0;
    for (;;) {
        vd_result r;
        ck_assert_msg(page("c", cur, clen, 1000, 1, &r, &e) == VD_OK, "%s", e.msg);
        pages++;
        for (size_t i = 0; i < r.scroll.n; i++) {
            ck_assert_uint_eq(r.scroll.ids[i], seen + i);
            float want[DIM];
            st_vector_of(seen + i, DIM, want);
            ck_assert(memcmp(r.scroll.vectors + i * DIM, want, sizeof want) == 0);
        }
        seen += r.scroll.n;
        ck_assert_uint_gt(r.scroll.n, 0);
        ck_assert_uint_lt(r.scroll.n, 200);
        int more = r.scroll.next_cursor != NULL;
        if (more) memcpy(cur, r.scroll.next_cursor, clen = r.scroll.next_cursor_len);
        vd_result_free(&r);
        if (!more) break;
    }
    ck_assert_uint_eq(seen, 200);
    ck_assert_uint_ge(pages, 2);
}
END_TEST

/* ---- set_payload ------------------------------------------------------------------------ */
static vd_status set_payloads(const char *coll, const uint64_t *ids, const vd_str_ids *s,
                              size_t n, const char *const *pl, int merge, uint64_t *updated,
                              vd_err *e)
{
    vd_bytes b[16];
    for (size_t i = 0; i < n; i++)
        b[i] = (vd_bytes){pl[i] ? strlen(pl[i]) : 0, (const uint8_t *)pl[i]};
    vd_request q = {.kind = VD_REQ_SET_PAYLOAD};
    q.set_payload = (vd_set_payload_req){.collection = coll, .ids = ids, .n_ids = ids ? n : 0,
                                         .payloads = b, .n_payloads = n, .merge = merge};
    if (s) q.set_payload.str_ids = *s;
    vd_result r;
    vd_status st2 = run(&q, &r, e);
    if (updated) *updated = r.n;
    vd_result_free(&r);
    return st2;
}

/* The stored payload of integer id `id` as a string (static storage). */
static const char *payload_of(const char *coll, uint64_t id, const vd_str_ids *s)
{
    static char out[256];
    vd_request q = {.kind = VD_REQ_GET};
    q.get = (vd_get_req){.collection = coll, .with_payloads = 1, .with_vectors = 1};
    if (s) q.get.str_ids = *s;
    else q.get.ids = &id, q.get.n_ids = 1;
    vd_result r;
    vd_err e;
    ck_assert_msg(run(&q, &r, &e) == VD_OK, "%s", e.msg);
    ck_assert(r.get.found[0]);
    float want[DIM];
    st_vector_of(s ? 50 : id, DIM, want);
    ck_assert_msg(memcmp(r.get.vectors, want, sizeof want) == 0, "set_payload moved a vector");
    snprintf(out, sizeof out, "%.*s", (int)r.get.payloads[0].len,
             (const char *)r.get.payloads[0].data);
    vd_result_free(&r);
    return out;
}

START_TEST(set_payload_merges_or_replaces_and_counts_what_it_updated)
{
    create("p", VD_ID_INT);
    uint64_t ids[3] = {1, 2, 3};
    vd_err e;
    ck_assert(upsert_int("p", ids, 2, &e) == VD_OK); /* 1 and 2, no payloads */
    uint64_t upd;
    const char *first[] = {"{\"a\":1,\"b\":{\"x\":[1,2]}}", "{\"a\":2}", "{\"a\":3}"};
    ck_assert(set_payloads("p", ids, NULL, 3, first, 1, &upd, &e) == VD_OK);
    ck_assert_uint_eq(upd, 2); /* 3 does not exist */
    ck_assert_str_eq(payload_of("p", 1, NULL), "{\"a\":1,\"b\":{\"x\":[1,2]}}");
    const char *more[] = {"{ \"c\" : \"t\" , \"\\u0061\" : 0.10 }", NULL};
    ck_assert(set_payloads("p", ids, NULL, 2, more, 1, &upd, &e) == VD_OK);
    ck_assert_uint_eq(upd, 2);
    ck_assert_str_eq(payload_of("p", 1, NULL),
                     "{\"b\":{\"x\":[1,2]},\"c\" : \"t\",\"\\u0061\" : 0.10}");
    ck_assert_str_eq(payload_of("p", 2, NULL), "{\"a\":2}"); /* NULL under merge: unchanged */
    const char *repl[] = {"{\"only\":true}", NULL};
    ck_assert(set_payloads("p", ids, NULL, 2, repl, 0, &upd, &e) == VD_OK);
    ck_assert_str_eq(payload_of("p", 1, NULL), "{\"only\":true}");
    ck_assert_str_eq(payload_of("p", 2, NULL), ""); /* NULL under replace: cleared */
    const char *bad[] = {"[1]", "{}"};
    ck_assert_int_eq(set_payloads("p", ids, NULL, 2, bad, 1, &upd, &e), VD_INVALID);
    ck_assert_msg(strstr(e.msg, "set_payload p: point 0 (id 1): payload is a JSON array; a payload must be an "
                         "object"),
                  "%s", e.msg);
    uint64_t dup[2] = {1, 1};
    ck_assert_int_eq(set_payloads("p", dup, NULL, 2, repl, 1, &upd, &e), VD_INVALID);
    ck_assert_msg(strstr(e.msg, "id 1 appears more than once"), "%s", e.msg);
    ck_assert_int_eq(set_payloads("p", ids, NULL, 1, repl, 1, &upd, &e), VD_OK);
    vd_bytes one = {2, (const uint8_t *)"{}"};
    vd_request q = {.kind = VD_REQ_SET_PAYLOAD};
    q.set_payload = (vd_set_payload_req){.collection = "p", .ids = ids, .n_ids = 2,
                                         .payloads = &one, .n_payloads = 1};
    refused(&q, "set_payload: 1 payloads for 2 ids (send one per id)");
    /* string ids */
    create("ps", VD_ID_STR);
    const char *names[] = {"doc"};
    sids s;
    pack(&s, names, NULL, 1);
    ck_assert(upsert_str("ps", &s.v, 50, &e) == VD_OK);
    const char *tag[] = {"{\"tag\":\"x\"}"};
    ck_assert(set_payloads("ps", NULL, &s.v, 1, tag, 1, &upd, &e) == VD_OK);
    ck_assert_uint_eq(upd, 1);
    ck_assert_str_eq(payload_of("ps", 0, &s.v), "{\"i\":0,\"tag\":\"x\"}");
    ck_assert_msg(vd_store_check(st, NULL, NULL, &e) == VD_OK, "%s", e.msg);
}
END_TEST

/* A point committed (by another thread, the writer's) after a search of string ids began
 * its naming snapshot but before it searched: the search finds it, the first snapshot
 * cannot name it, the second does. */
static void *upsert_newcomer(void *arg)
{
    (void)arg;
    const char *ids[] = {"newcomer"};
    sids s;
    pack(&s, ids, NULL, 1);
    vd_err e;
    ck_assert_msg(upsert_str("late", &s.v, 777, &e) == VD_OK, "%s", e.msg);
    return NULL;
}

static void commit_in_between(void)
{
    pthread_t t;
    vd_engine__test_after_snapshot = NULL; /* once */
    pthread_create(&t, NULL, upsert_newcomer, NULL);
    pthread_join(t, NULL);
}

START_TEST(a_hit_committed_after_the_naming_snapshot_is_named_by_a_second_one)
{
    const char *ids[] = {"a", "b", "c"};
    sids s;
    pack(&s, ids, NULL, 3);
    create("late", VD_ID_STR);
    vd_err e;
    ck_assert(upsert_str("late", &s.v, 1, &e) == VD_OK);
    float q[DIM];
    st_vector_of(777, DIM, q); /* the newcomer's own vector */
    vd_request r0 = {.kind = VD_REQ_SEARCH};
    r0.search = (vd_search_req){.collection = "late", .queries = q, .n_floats = DIM, .dim = DIM,
                                .k = 4, .with_payloads = 1};
    vd_engine__test_after_snapshot = commit_in_between;
    vd_result r;
    ck_assert_msg(run(&r0, &r, &e) == VD_OK, "%s", e.msg);
    ck_assert_ptr_null(vd_engine__test_after_snapshot); /* the hook ran */
    ck_assert_uint_eq(r.search.str_id_ends[0], 8);
    ck_assert(memcmp(r.search.str_ids, "newcomer", 8) == 0);
    ck_assert_uint_eq(r.search.payloads[0].len, 7); /* from the second snapshot */
    for (int h = 1; h < 4; h++) /* and the other three, each one byte */
        ck_assert_uint_eq(r.search.str_id_ends[h], 8 + (uint32_t)h);
    vd_result_free(&r);
}
END_TEST

/* Runs q with the Nth allocation failing, for N = 0, 1, ... until it succeeds: each failure
 * is VD_NOMEM with the operation's name, never a crash; returns the successful result. */
static void until_it_succeeds(const vd_request *q, vd_result *out)
{
    const char *op = vd_request_name(q->kind);
    for (long fail = 0; fail < 400; fail++) {
        vd_err e;
        vd_alloc_fail_after(fail);
        vd_status s = run(q, out, &e);
        vd_alloc_fail_after(-1);
        if (s == VD_OK) return;
        ck_assert_msg(s == VD_NOMEM, "%s, failing allocation %ld: status %d: %s", op, fail, s,
                      e.msg);
        ck_assert_msg(strncmp(e.msg, op, strlen(op)) == 0, "%s", e.msg);
        vd_result_free(out);
    }
    ck_abort_msg("%s never succeeded", op);
}

START_TEST(every_allocation_failure_on_the_string_id_paths_is_reported)
{
    make_long_ids();
    sids s;
    pack(&s, awkward, awkward_lens, N_AWKWARD);
    create("oom", VD_ID_STR);
    vd_result r;
    vd_err e;
    /* the write group: an upsert of new ids, a merge of payloads */
    float v[N_AWKWARD * DIM];
    for (size_t i = 0; i < N_AWKWARD; i++) st_vector_of(100 + i, DIM, v + i * DIM);
    vd_request u = {.kind = VD_REQ_UPSERT};
    u.upsert = (vd_upsert_req){.collection = "oom", .vectors = v, .n_floats = N_AWKWARD * DIM,
                               .dim = DIM, .str_ids = s.v};
    until_it_succeeds(&u, &r);
    ck_assert_uint_eq(r.n, N_AWKWARD);
    vd_result_free(&r);
    vd_bytes pl[N_AWKWARD];
    for (size_t i = 0; i < N_AWKWARD; i++) pl[i] = (vd_bytes){7, (const uint8_t *)"{\"m\":1}"};
    vd_request sp = {.kind = VD_REQ_SET_PAYLOAD};
    sp.set_payload = (vd_set_payload_req){.collection = "oom", .str_ids = s.v, .payloads = pl,
                                          .n_payloads = N_AWKWARD, .merge = 1};
    until_it_succeeds(&sp, &r);
    vd_result_free(&r);
    ck_assert_uint_eq(count_of("oom"), N_AWKWARD);
    /* the reads: search naming hits with payloads, get, a scroll page */
    vd_request q = {.kind = VD_REQ_SEARCH};
    q.search = (vd_search_req){.collection = "oom", .queries = v, .n_floats = 2 * DIM,
                               .dim = DIM, .k = 4, .with_payloads = 1};
    until_it_succeeds(&q, &r);
    ck_assert_uint_eq(r.search.str_id_ends[0], 6); /* "a.md#0" */
    ck_assert_uint_eq(r.search.payloads[0].len, 7);
    vd_result_free(&r);
    vd_request g = {.kind = VD_REQ_GET};
    g.get = (vd_get_req){.collection = "oom", .with_vectors = 1, .with_payloads = 1,
                         .str_ids = s.v};
    until_it_succeeds(&g, &r);
    for (size_t i = 0; i < N_AWKWARD; i++) ck_assert(r.get.found[i]);
    vd_result_free(&r);
    vd_request sc = {.kind = VD_REQ_SCROLL};
    sc.scroll = (vd_scroll_req){.collection = "oom", .limit = 5, .with_payloads = 1};
    until_it_succeeds(&sc, &r);
    ck_assert_uint_eq(r.scroll.n, 5);
    ck_assert_ptr_nonnull(r.scroll.next_cursor);
    vd_result_free(&r);
    ck_assert_msg(vd_store_check(st, NULL, NULL, &e) == VD_OK, "%s", e.msg);
}
END_TEST

Suite *engine_strids_suite(void)
{
    Suite *s = suite_create("engine_strids");
    TCase *tc = tcase_create("engine_strids");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, string_ids_round_trip_through_every_operation_and_a_reopen);
    tcase_add_test(tc, knn_pads_rows_and_names_hits_with_payloads);
    tcase_add_test(tc, bad_and_mixed_ids_are_refused_naming_the_row);
    tcase_add_test(tc, delete_frees_an_id_and_a_new_upsert_takes_a_new_key);
    tcase_add_test(tc, scroll_walks_both_id_types_in_id_order);
    tcase_add_test(tc, scroll_cursors_refuse_damage_other_and_recreated_collections);
    tcase_add_test(tc, scroll_pages_are_cut_short_rather_than_outgrow_the_response_limit);
    tcase_add_test(tc, set_payload_merges_or_replaces_and_counts_what_it_updated);
    tcase_add_test(tc, every_allocation_failure_on_the_string_id_paths_is_reported);
    tcase_add_test(tc, a_hit_committed_after_the_naming_snapshot_is_named_by_a_second_one);
    suite_add_tcase(s, tc);
    return s;
}
