/* tests/unit/test_index_persist.c: change tracking, exporting every slot and loading it into
 * a new index (identical results, no re-insertion), and corrupted links records and headers
 * rejected with VD_CORRUPT (or VD_VERSION) and a message naming the problem. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/vd_common.h"
#include "index/vd_index.h"
#include "tests/unit/index_testutil.h"

typedef struct saved {
    vd_index_header h;
    uint32_t dim, n;
    uint32_t *slot;
    uint64_t *id;
    float *vec;
    uint8_t **links;
    size_t *len;
} saved;

static void save(const vd_index *ix, saved *sv)
{
    memset(sv, 0, sizeof *sv);
    vd_index_header_get(ix, &sv->h);
    sv->dim = vd_index_params_of(ix)->dim;
    uint32_t ns = sv->h.n_slots;
    sv->slot = calloc(ns + 1, sizeof(uint32_t));
    sv->id = calloc(ns + 1, sizeof(uint64_t));
    sv->vec = calloc((size_t)(ns + 1) * sv->dim, sizeof(float));
    sv->links = calloc(ns + 1, sizeof(uint8_t *));
    sv->len = calloc(ns + 1, sizeof(size_t));
    for (uint32_t s = 0; s < ns; s++) {
        const float *v;
        uint64_t id;
        if (vd_index_slot_vector(ix, s, &id, &v, NULL) != VD_OK) continue;
        size_t need = 0;
        ck_assert_int_eq(vd_index_slot_links(ix, s, NULL, 0, &need, NULL), VD_FULL);
        uint8_t *buf = malloc(need);
        size_t len = 0;
        ck_assert_int_eq(vd_index_slot_links(ix, s, buf, need, &len, NULL), VD_OK);
        ck_assert_uint_eq(len, need);
        sv->slot[sv->n] = s;
        sv->id[sv->n] = id;
        memcpy(sv->vec + (size_t)sv->n * sv->dim, v, sv->dim * sizeof(float));
        sv->links[sv->n] = buf;
        sv->len[sv->n] = len;
        sv->n++;
    }
}

static void saved_free(saved *sv)
{
    for (uint32_t i = 0; i < sv->n; i++) free(sv->links[i]);
    free(sv->slot);
    free(sv->id);
    free(sv->vec);
    free(sv->links);
    free(sv->len);
}

/* Loads sv into ix in reverse order (any order must work); returns the first failure. */
static vd_status load(vd_index *ix, const saved *sv, vd_err *e)
{
    for (uint32_t i = sv->n; i-- > 0;) {
        vd_status st = vd_index_load_slot(ix, sv->slot[i], sv->id[i],
                                          sv->vec + (size_t)i * sv->dim, sv->links[i],
                                          sv->len[i], e);
        if (st) return st;
    }
    return vd_index_load_finish(ix, &sv->h, e);
}

static vd_index *build_with_removals(uint32_t dim, vd_metric metric, size_t n, int tombstones)
{
    float *v = vt_clustered(n, dim, 10, 81);
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) ids[i] = 5000 + i;
    vd_index_params p = {.dim = dim, .metric = metric, .m = 8, .ef_construction = 64,
                         .seed = 3, .deferred_publish = tombstones};
    vd_index *ix = NULL;
    ck_assert_int_eq(vd_index_open(&p, &ix, NULL), VD_OK);
    ck_assert_int_eq(vd_index_add_batch(ix, ids, v, n, 1, NULL, NULL, NULL), VD_OK);
    vd_index_publish(ix);
    /* 5% removed: below the vacuum threshold, so tombstones stay. */
    for (size_t i = 0; i < n; i += 20) ck_assert_int_eq(vd_index_remove(ix, 5000 + i, NULL), VD_OK);
    if (tombstones) vd_index_publish(ix);
    free(ids);
    free(v);
    return ix;
}

START_TEST(export_and_load_give_identical_results)
{
    uint32_t dim = 12;
    size_t n = vt_scale(1500, 3);
    vd_index *a = build_with_removals(dim, VD_METRIC_COSINE, n, 1);
    vd_index_stats sa;
    vd_index_stats_get(a, &sa);
    ck_assert_uint_gt(sa.n_deleted, 0); /* tombstones travel through the records too */
    saved sv;
    save(a, &sv);
    vd_index *b = vt_open(dim, VD_METRIC_COSINE, 8, 64, 3);
    vd_err e = {0};
    ck_assert_msg(load(b, &sv, &e) == VD_OK, "load: %s", e.msg);
    vt_assert_valid(b);
    ck_assert_uint_eq(vd_index_count(b), vd_index_count(a));
    float *q = vt_clustered(50, dim, 10, 1081);
    for (int i = 0; i < 50; i++) {
        vd_hit ha[10], hb[10];
        uint32_t na, nb;
        ck_assert_int_eq(vd_index_search_exact(a, q + i * dim, 10, ha, &na, NULL), VD_OK);
        ck_assert_int_eq(vd_index_search_exact(b, q + i * dim, 10, hb, &nb, NULL), VD_OK);
        ck_assert_uint_eq(na, nb);
        for (uint32_t j = 0; j < na; j++) ck_assert_uint_eq(ha[j].id, hb[j].id);
        ck_assert_int_eq(vd_index_search(a, q + i * dim, 10, 0, ha, &na, NULL), VD_OK);
        ck_assert_int_eq(vd_index_search(b, q + i * dim, 10, 0, hb, &nb, NULL), VD_OK);
        ck_assert_uint_eq(na, nb);
        for (uint32_t j = 0; j < na; j++) ck_assert_uint_eq(ha[j].id, hb[j].id);
    }
    /* The loaded index keeps working: add, remove, validate. */
    ck_assert_int_eq(vd_index_add(b, 1, q, NULL), VD_OK);
    ck_assert_int_eq(vd_index_remove(b, 5001, NULL), VD_OK);
    vd_index_publish(b);
    vt_assert_valid(b);
    float out[12];
    ck_assert_int_eq(vd_index_get(b, 5002, out, NULL), VD_OK);
    free(q);
    saved_free(&sv);
    vd_index_close(a);
    vd_index_close(b);
}
END_TEST

START_TEST(empty_index_round_trips)
{
    vd_index *a = vt_open(4, VD_METRIC_L2, 8, 64, 1), *b = vt_open(4, VD_METRIC_L2, 8, 64, 1);
    saved sv;
    save(a, &sv);
    ck_assert_uint_eq(sv.n, 0);
    ck_assert_int_eq(load(b, &sv, NULL), VD_OK);
    ck_assert_uint_eq(vd_index_count(b), 0);
    saved_free(&sv);
    vd_index_close(a);
    vd_index_close(b);
}
END_TEST

/* Loads sv with record i replaced by (rec, len); expects `want` and `needle` in the message. */
static void expect_bad_record(const saved *sv, uint32_t i, const uint8_t *rec, size_t len,
                              vd_status want, const char *needle)
{
    vd_index *b = vt_open(sv->dim, VD_METRIC_COSINE, 8, 64, 3);
    saved s2 = *sv;
    uint8_t **links = malloc(sv->n * sizeof(uint8_t *));
    size_t *lens = malloc(sv->n * sizeof(size_t));
    memcpy(links, sv->links, sv->n * sizeof(uint8_t *));
    memcpy(lens, sv->len, sv->n * sizeof(size_t));
    links[i] = (uint8_t *)rec;
    lens[i] = len;
    s2.links = links;
    s2.len = lens;
    vd_err e = {0};
    vd_status st = load(b, &s2, &e);
    ck_assert_msg(st == want, "expected %s, got %s (%s)", vd_status_name(want),
                  vd_status_name(st), e.msg);
    ck_assert_msg(strstr(e.msg, needle) != NULL, "message '%s' lacks '%s'", e.msg, needle);
    free(links);
    free(lens);
    vd_index_close(b);
}

START_TEST(corrupted_links_records_are_rejected)
{
    vd_index *a = build_with_removals(12, VD_METRIC_COSINE, 300, 1);
    saved sv;
    save(a, &sv);
    uint32_t i = 5; /* some record with links */
    while (sv.len[i] < 16) i++;
    uint8_t *r = malloc(sv.len[i] + 8);
    size_t len = sv.len[i];
    uint32_t self = sv.slot[i];

    expect_bad_record(&sv, i, sv.links[i], 3, VD_CORRUPT, "truncated");
    expect_bad_record(&sv, i, sv.links[i], len - 2, VD_CORRUPT, "truncated");
    memcpy(r, sv.links[i], len);
    r[len] = 0;
    expect_bad_record(&sv, i, r, len + 1, VD_CORRUPT, "trailing");
    r[0] = VD_INDEX_LINKS_FORMAT + 1;
    expect_bad_record(&sv, i, r, len, VD_VERSION, "format");
    r[0] = 0;
    expect_bad_record(&sv, i, r, len, VD_CORRUPT, "format");
    memcpy(r, sv.links[i], len);
    r[1] = 33;
    expect_bad_record(&sv, i, r, len, VD_CORRUPT, "level 33");
    memcpy(r, sv.links[i], len);
    r[2] = 0x80;
    expect_bad_record(&sv, i, r, len, VD_CORRUPT, "flags");
    memcpy(r, sv.links[i], len);
    vd_put_u32le(r + 4, 17); /* count above 2*m = 16 */
    expect_bad_record(&sv, i, r, len, VD_CORRUPT, "limit");
    memcpy(r, sv.links[i], len);
    vd_put_u32le(r + 4, 0xffffffffu);
    expect_bad_record(&sv, i, r, len, VD_CORRUPT, "limit");
    memcpy(r, sv.links[i], len);
    vd_put_u32le(r + 8, self);
    expect_bad_record(&sv, i, r, len, VD_CORRUPT, "itself");
    memcpy(r, sv.links[i], len);
    memcpy(r + 12, r + 8, 4);
    expect_bad_record(&sv, i, r, len, VD_CORRUPT, "twice");
    memcpy(r, sv.links[i], len);
    vd_put_u32le(r + 8, 1000000);
    expect_bad_record(&sv, i, r, len, VD_CORRUPT, "beyond");
    memcpy(r, sv.links[i], len);
    vd_put_u32le(r + 8, sv.h.n_slots + 5); /* beyond the stored slots, within the arena */
    expect_bad_record(&sv, i, r, len, VD_CORRUPT, "beyond");
    free(r);
    saved_free(&sv);
    vd_index_close(a);
}
END_TEST

START_TEST(corrupted_headers_and_slots_are_rejected)
{
    vd_index *a = build_with_removals(12, VD_METRIC_COSINE, 300, 0);
    saved sv;
    save(a, &sv);
    vd_err e = {0};
    vd_index *b;

    saved s2 = sv; /* entry point on a slot that was never stored */
    s2.h.entry_slot = sv.h.n_slots + 3;
    b = vt_open(12, VD_METRIC_COSINE, 8, 64, 3);
    ck_assert_int_eq(load(b, &s2, &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "entry"));
    vd_index_close(b);

    s2 = sv; /* wrong top level */
    s2.h.max_level = sv.h.max_level + 1;
    b = vt_open(12, VD_METRIC_COSINE, 8, 64, 3);
    ck_assert_int_eq(load(b, &s2, &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "level"));
    vd_index_close(b);

    s2 = sv; /* fewer slots than stored */
    s2.h.n_slots = sv.slot[sv.n - 1];
    b = vt_open(12, VD_METRIC_COSINE, 8, 64, 3);
    ck_assert_int_eq(load(b, &s2, &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "slots"));
    vd_index_close(b);

    /* The same id in two live slots (records 1..3 are live: slot 0 was removed). */
    b = vt_open(12, VD_METRIC_COSINE, 8, 64, 3);
    ck_assert_int_eq(vd_index_load_slot(b, sv.slot[1], 77, sv.vec + 12, sv.links[1], sv.len[1],
                                        &e), VD_OK);
    ck_assert_int_eq(vd_index_load_slot(b, sv.slot[2], 77, sv.vec + 24, sv.links[2], sv.len[2],
                                        &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "id 77"));
    ck_assert_int_eq(vd_index_load_slot(b, sv.slot[1], 78, sv.vec + 12, sv.links[1], sv.len[1],
                                         &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "twice"));
    float bad[12] = {0};
    ck_assert_int_eq(vd_index_load_slot(b, sv.slot[3], 79, bad, sv.links[3], sv.len[3], &e),
                     VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "zero"));
    bad[4] = NAN;
    ck_assert_int_eq(vd_index_load_slot(b, sv.slot[3], 79, bad, sv.links[3], sv.len[3], &e),
                     VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "component 4"));
    vd_index_close(b);

    /* A link to a slot that was not stored is caught by load_finish. */
    b = vt_open(12, VD_METRIC_COSINE, 8, 64, 3);
    uint32_t skip = sv.slot[1] == sv.h.entry_slot ? 2 : 1;
    for (uint32_t i = 0; i < sv.n; i++)
        if (i != skip)
            ck_assert_int_eq(vd_index_load_slot(b, sv.slot[i], sv.id[i], sv.vec + i * 12,
                                            sv.links[i], sv.len[i], &e), VD_OK);
    ck_assert_int_eq(vd_index_load_finish(b, &sv.h, &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "empty slot"));
    vd_index_close(b);

    /* Slot numbers, ids and headers out of range. */
    b = vt_open(12, VD_METRIC_COSINE, 8, 64, 3);
    ck_assert_int_eq(vd_index_load_slot(b, UINT32_MAX - 1, 5, sv.vec + 12, sv.links[1],
                                        sv.len[1], &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "out of range"));
    ck_assert_int_eq(vd_index_load_slot(b, sv.slot[1], VD_ID_NONE, sv.vec + 12, sv.links[1],
                                        sv.len[1], &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "reserved"));
    vd_index_header big = {.entry_slot = UINT32_MAX, .max_level = 0, .n_slots = UINT32_MAX};
    ck_assert_int_eq(vd_index_load_finish(b, &big, &e), VD_CORRUPT);
    vd_index_header none = {.entry_slot = 3, .max_level = 0, .n_slots = 10};
    ck_assert_int_eq(vd_index_load_finish(b, &none, &e), VD_CORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "empty graph"));
    vd_index_close(b);

    /* Loading into an index that already has points is refused. */
    float v[12] = {1};
    b = vt_open(12, VD_METRIC_COSINE, 8, 64, 3);
    ck_assert_int_eq(vd_index_add(b, 1, v, NULL), VD_OK);
    ck_assert_int_eq(vd_index_load_slot(b, 5, 2, v, sv.links[0], sv.len[0], &e), VD_INVALID);
    vd_index_close(b);
    saved_free(&sv);
    vd_index_close(a);
}
END_TEST

typedef struct seen_changes {
    uint32_t last;
    size_t n, kinds[4];
    int stop_after;
} seen_changes;

static int on_change(void *ctx, uint32_t slot, vd_change_kind kind)
{
    seen_changes *c = ctx;
    if (c->n) ck_assert_uint_gt(slot, c->last); /* ascending, each slot once */
    c->last = slot;
    c->n++;
    c->kinds[kind]++;
    return c->stop_after && (int)c->n == c->stop_after ? 42 : 0;
}

START_TEST(changes_report_new_links_freed_in_order)
{
    vd_index *ix = vt_open(4, VD_METRIC_L2, 4, 32, 1);
    float *v = vt_clustered(100, 4, 5, 91);
    for (uint64_t i = 0; i < 100; i++)
        ck_assert_int_eq(vd_index_add(ix, i, v + i * 4, NULL), VD_OK);
    seen_changes c = {0};
    ck_assert_int_eq(vd_index_changes(ix, on_change, &c), 0);
    ck_assert_uint_eq(c.n, 100);
    ck_assert_uint_eq(c.kinds[VD_CHANGE_NEW], 100); /* NEW even though links changed since */
    vd_index_changes_clear(ix);
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(vd_index_changes(ix, on_change, &c), 0);
    ck_assert_uint_eq(c.n, 0);
    ck_assert_int_eq(vd_index_remove(ix, 50, NULL), VD_OK);
    ck_assert_int_eq(vd_index_changes(ix, on_change, &c), 0);
    ck_assert_uint_ge(c.kinds[VD_CHANGE_LINKS], 1);
    ck_assert_uint_eq(c.kinds[VD_CHANGE_NEW], 0);
    memset(&c, 0, sizeof c);
    c.stop_after = 1;
    ck_assert_int_eq(vd_index_changes(ix, on_change, &c), 42);
    ck_assert_uint_eq(c.n, 1);
    free(v);
    vd_index_close(ix);
}
END_TEST

START_TEST(changes_made_after_a_report_survive_clear)
{
    vd_index_params p = {.dim = 4, .metric = VD_METRIC_L2, .m = 4, .ef_construction = 32,
                         .deferred_publish = 1};
    vd_index *ix = NULL;
    ck_assert_int_eq(vd_index_open(&p, &ix, NULL), VD_OK);
    float *v = vt_clustered(100, 4, 5, 95);
    for (uint64_t i = 0; i < 100; i++)
        ck_assert_int_eq(vd_index_add(ix, i, v + i * 4, NULL), VD_OK);
    vd_index_publish(ix);
    seen_changes c = {0};
    vd_index_changes(ix, on_change, &c);
    vd_index_changes_clear(ix);
    /* Storage's order: report, write, commit, publish (which repairs), clear. */
    ck_assert_int_eq(vd_index_remove(ix, 50, NULL), VD_OK);
    memset(&c, 0, sizeof c);
    vd_index_changes(ix, on_change, &c);
    ck_assert_uint_eq(c.n, 1); /* the removed slot's flags; nothing repaired yet */
    vd_index_publish(ix);
    vd_index_changes_clear(ix);
    memset(&c, 0, sizeof c);
    vd_index_changes(ix, on_change, &c);
    ck_assert_uint_ge(c.kinds[VD_CHANGE_LINKS], 1); /* the repaired neighbours */
    vd_index_changes_clear(ix);
    memset(&c, 0, sizeof c);
    vd_index_changes(ix, on_change, &c);
    ck_assert_uint_eq(c.n, 0);
    free(v);
    vd_index_close(ix);
}
END_TEST

/* The table's minimums (m 2, ef_construction 1) build a valid graph: one batch (its publish
 * runs a reachability pass), served-like small batches then removals (a tenth of the points
 * in one publish: a pass), and the load of what they stored. m 2 used to leave a quarter of
 * the points unreachable, and its reconnections overflowed the orphan queue. */
START_TEST(smallest_parameters_give_a_valid_graph)
{
    const vd_param_info *m = vd_param_info_of(VD_PARAM_M);
    const vd_param_info *efc = vd_param_info_of(VD_PARAM_EF_CONSTRUCTION);
    size_t n = vt_scale(3000, 2);
    uint32_t dim = 12;
    float *v = vt_clustered(n, dim, 30, 61);
    uint64_t *ids = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) ids[i] = i;
    for (int deferred = 0; deferred < 2; deferred++) {
        vd_index_params p = {.dim = dim, .metric = VD_METRIC_L2, .m = m->min,
                             .ef_construction = efc->min, .seed = 9,
                             .deferred_publish = deferred};
        vd_index *ix = NULL;
        ck_assert_int_eq(vd_index_open(&p, &ix, NULL), VD_OK);
        if (!deferred) {
            ck_assert_int_eq(vd_index_add_batch(ix, ids, v, n, 2, NULL, NULL, NULL), VD_OK);
        } else {
            for (size_t i = 0, b = 1; i < n; i += b, b = b % 100 + 1) {
                size_t len = i + b <= n ? b : n - i;
                ck_assert_int_eq(vd_index_add_batch(ix, ids + i, v + i * dim, len, 1, NULL, NULL,
                                                    NULL), VD_OK);
                vd_index_publish(ix);
            }
            for (size_t i = 0; i < n; i += 10)
                ck_assert_int_eq(vd_index_remove(ix, ids[i], NULL), VD_OK);
            vd_index_publish(ix);
        }
        vt_assert_valid(ix);
        saved sv;
        save(ix, &sv);
        vd_index *b = NULL;
        p.deferred_publish = 1;
        ck_assert_int_eq(vd_index_open(&p, &b, NULL), VD_OK);
        vd_err e = {0};
        ck_assert_msg(load(b, &sv, &e) == VD_OK, "%s", e.msg);
        vt_assert_valid(b);
        ck_assert_uint_eq(vd_index_count(b), vd_index_count(ix));
        saved_free(&sv);
        vd_index_close(b);
        vd_index_close(ix);
    }
    free(ids);
    free(v);
}
END_TEST

Suite *index_persist_suite(void)
{
    Suite *s = suite_create("index_persist");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, export_and_load_give_identical_results);
    tcase_add_test(tc, empty_index_round_trips);
    tcase_add_test(tc, corrupted_links_records_are_rejected);
    tcase_add_test(tc, corrupted_headers_and_slots_are_rejected);
    tcase_add_test(tc, changes_report_new_links_freed_in_order);
    tcase_add_test(tc, changes_made_after_a_report_survive_clear);
    tcase_add_test(tc, smallest_parameters_give_a_valid_graph);
    suite_add_tcase(s, tc);
    return s;
}
