/* tests/unit/test_storage_filter.c: filters and payload indexes in storage - the grammar and
 * its messages, the semantics on payloads, payload indexes answering exactly what the
 * payloads answer (random payloads and filters, through creation, maintenance, reopen and
 * drop), delete by filter in one group, vd_store_check on the values records, and a data
 * directory written before the payload index tables existed. */
#include <check.h>
#include <inttypes.h>
#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/storage_int.h"
#include "tests/unit/filter_testlib.h"
#include "tests/unit/storage_testlib.h"

#define DIM 4

/* ---- the grammar ----------------------------------------------------------------------- */
static void expect_refused(const vd_filter *f, const char *msg)
{
    vd_err e = {0};
    ck_assert_int_eq(vd_filter_check(f, &e), VD_INVALID);
    ck_assert_msg(strcmp(e.msg, msg) == 0, "got '%s', want '%s'", e.msg, msg);
}

START_TEST(grammar_errors_name_the_fault_and_where)
{
    ft_arena *a = ft_new();
    vd_err e;
    ck_assert_int_eq(vd_filter_check(ft_parse(a, "{\"source\": \"a.md\", \"year\": {\"$gte\": "
                                             "2020, \"$lt\": 2024.5}}"), &e), VD_OK);
    expect_refused(ft_parse(a, "{\"year\": {\"$gte\": true}}"),
                   "filter.year: $gte expects a number or string, got bool");
    expect_refused(ft_parse(a, "{\"$or\": [{\"a\": 1}, {\"year\": {\"$exists\": 3}}]}"),
                   "filter.$or[1].year: $exists expects true or false, got number");
    expect_refused(ft_parse(a, "{\"a\": 1, \"m.lang\": {\"$in\": [\"en\", true, 2]}, "
                               "\"$and\": [{\"b\": {\"$lt\": false}}]}"),
                   "filter.$and[0].b: $lt expects a number or string, got bool");
    expect_refused(ft_parse(a, "{\"a..b\": 1}"),
                   "filter.a..b: the field path \"a..b\" has an empty segment");
    expect_refused(ft_parse(a, "{\".a\": 1}"),
                   "filter..a: the field path \".a\" has an empty segment");
    /* What the dict grammar cannot say but the wire can: built by hand. */
    vd_fval nan_v = {.type = VD_FVAL_FLOAT, .f = NAN}, one = {.type = VD_FVAL_INT, .i = 1};
    vd_fval two[2] = {one, one};
    vd_filter c_nan = {.op = VD_FOP_GTE, .field = "year", .field_len = 4, .values = &nan_v,
                       .n_values = 1};
    vd_filter ors[2] = {{.op = VD_FOP_EQ, .field = "a", .field_len = 1, .values = &one,
                         .n_values = 1}, c_nan};
    vd_filter f_or = {.op = VD_FOP_OR, .children = ors, .n_children = 2};
    expect_refused(&f_or, "filter.$or[1].year: $gte expects a finite number, got nan");
    vd_filter f_and0 = {.op = VD_FOP_AND};
    expect_refused(&f_and0, "filter: $and expects a non-empty list of filters");
    vd_filter f_not2 = {.op = VD_FOP_NOT, .children = ors, .n_children = 2};
    expect_refused(&f_not2, "filter: $not expects one filter, got 2");
    vd_filter eq2 = {.op = VD_FOP_EQ, .field = "a", .field_len = 1, .values = two, .n_values = 2};
    expect_refused(&eq2, "filter.a: $eq expects one value, got 2");
    vd_filter noname = {.op = VD_FOP_EQ, .values = &one, .n_values = 1};
    expect_refused(&noname, "filter.: the field path is empty");
    vd_filter unknown = {.op = (vd_filter_op)99};
    expect_refused(&unknown, "filter: unknown operator 99");
    vd_fval bad_utf8 = {.type = VD_FVAL_STRING, .s = {"\xff", 1}};
    vd_filter c_utf = {.op = VD_FOP_EQ, .field = "a", .field_len = 1, .values = &bad_utf8,
                       .n_values = 1};
    expect_refused(&c_utf, "filter.a: $eq expects valid UTF-8 strings");
    char longp[VD_FILTER_MAX_PATH_BYTES + 2];
    memset(longp, 'p', sizeof longp);
    vd_filter c_long = {.op = VD_FOP_EQ, .field = longp, .field_len = sizeof longp - 1,
                        .values = &one, .n_values = 1};
    ck_assert_int_eq(vd_filter_check(&c_long, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "the field path has 257 bytes, over the 256 allowed"));
    c_long.field_len--;
    ck_assert_int_eq(vd_filter_check(&c_long, NULL), VD_OK);
    ft_free(a);
}
END_TEST

START_TEST(grammar_limits_depth_and_terms)
{
    /* 16 nested $not pass; a 17th is refused where it is. */
    vd_fval one = {.type = VD_FVAL_INT, .i = 1};
    vd_filter chain[18];
    chain[17] = (vd_filter){.op = VD_FOP_EQ, .field = "a", .field_len = 1, .values = &one,
                            .n_values = 1};
    for (int i = 16; i >= 0; i--)
        chain[i] = (vd_filter){.op = VD_FOP_NOT, .children = &chain[i + 1], .n_children = 1};
    ck_assert_int_eq(vd_filter_check(&chain[1], NULL), VD_OK);
    vd_err e;
    ck_assert_int_eq(vd_filter_check(&chain[0], &e), VD_INVALID);
    ck_assert_msg(strstr(e.msg, ": nesting deeper than 16 levels") &&
                  !strncmp(e.msg, "filter.$not.$not", 16), "%s", e.msg);
    /* 1,024 terms: an $and (1) of 1,023 conditions; one more is refused. An $in list's values
     * count too. */
    static vd_filter conds[1024];
    for (int i = 0; i < 1024; i++)
        conds[i] = (vd_filter){.op = VD_FOP_EQ, .field = "a", .field_len = 1, .values = &one,
                               .n_values = 1};
    vd_filter all = {.op = VD_FOP_AND, .children = conds, .n_children = 1023};
    ck_assert_int_eq(vd_filter_check(&all, NULL), VD_OK);
    all.n_children = 1024;
    ck_assert_int_eq(vd_filter_check(&all, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "filter: more than 1024 terms");
    static vd_fval many[1024];
    for (int i = 0; i < 1024; i++) many[i] = (vd_fval){.type = VD_FVAL_INT, .i = i};
    vd_filter in = {.op = VD_FOP_IN, .field = "a", .field_len = 1, .values = many,
                    .n_values = 1023};
    ck_assert_int_eq(vd_filter_check(&in, NULL), VD_OK);
    in.n_values = 1024;
    ck_assert_int_eq(vd_filter_check(&in, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "filter: more than 1024 terms");
}
END_TEST

/* ---- semantics on payloads ------------------------------------------------------------- */
static int matches(const char *payload, const char *filter)
{
    ft_arena *a = ft_new();
    const vd_filter *f = ft_parse(a, filter);
    ck_assert_int_eq(vd_filter_check(f, NULL), VD_OK);
    json_t *j = NULL;
    if (payload)
        ck_assert_int_eq(vd_storage__json_parse((const uint8_t *)payload, strlen(payload), &j,
                                                NULL), VD_OK);
    int r = vd_storage__filter_match(f, j);
    json_decref(j);
    ft_free(a);
    return r;
}

START_TEST(semantics_on_payloads)
{
    static const struct {
        const char *payload, *filter;
        int want;
    } cases[] = {
        {"{\"a\":1}", "{\"a\":1}", 1},
        {"{\"a\":1}", "{\"a\":1.0}", 1},             /* numbers compare as numbers */
        {"{\"a\":1.0}", "{\"a\":1}", 1},
        {"{\"a\":\"1\"}", "{\"a\":1}", 0},           /* a type mismatch does not match */
        {"{\"a\":true}", "{\"a\":1}", 0},
        {"{\"a\":1}", "{\"a\":true}", 0},
        {"{\"a\":[1,2,3]}", "{\"a\":2}", 1},         /* arrays: any element */
        {"{\"a\":[1,[2]]}", "{\"a\":2}", 0},         /* one level only */
        {"{\"a\":[\"x\",5]}", "{\"a\":{\"$gt\":4}}", 1},
        {"{\"a\":[\"x\",5]}", "{\"a\":{\"$gt\":\"w\"}}", 1}, /* strings order by bytes */
        {"{\"m\":{\"lang\":\"en\"}}", "{\"m.lang\":\"en\"}", 1}, /* dotted paths */
        {"{\"m\":[{\"lang\":\"de\"},{\"lang\":\"en\"}]}", "{\"m.lang\":\"en\"}", 1},
        {"{\"m\":{\"lang\":[\"de\",\"en\"]}}", "{\"m.lang\":{\"$in\":[\"fr\",\"en\"]}}", 1},
        {"{\"m.lang\":\"en\"}", "{\"m.lang\":\"en\"}", 0}, /* a dot is a path separator */
        {"{\"a\":1}", "{\"b\":{\"$ne\":1}}", 1},     /* $ne, $nin hold on a missing field */
        {"{\"a\":1}", "{\"b\":{\"$nin\":[1,2]}}", 1},
        {"{\"b\":[1,3]}", "{\"b\":{\"$ne\":1}}", 0}, /* ... and fail when any element equals */
        {"{\"b\":[1,3]}", "{\"b\":{\"$nin\":[2,3]}}", 0},
        {NULL, "{\"b\":{\"$ne\":1}}", 1},            /* a point without a payload */
        {NULL, "{\"b\":1}", 0},
        {"{\"a\":null}", "{\"a\":{\"$exists\":true}}", 1}, /* null exists */
        {"{\"a\":[]}", "{\"a\":{\"$exists\":true}}", 1},
        {"{\"a\":{}}", "{\"a.b\":{\"$exists\":true}}", 0},
        {"{\"a\":1}", "{\"b\":{\"$exists\":false}}", 1},
        {"{\"a\":null}", "{\"a\":{\"$ne\":null_is_not_allowed}}", -1},
        {"{\"y\":2020}", "{\"y\":{\"$gte\":2020,\"$lt\":2021}}", 1},
        {"{\"y\":2021}", "{\"y\":{\"$gte\":2020,\"$lt\":2021}}", 0},
        {"{\"y\":9007199254740993}", "{\"y\":9007199254740992.0}", 0}, /* exact, not as doubles */
        {"{\"y\":9007199254740993}", "{\"y\":{\"$gt\":9007199254740992.0}}", 1},
        {"{\"y\":-0.0}", "{\"y\":0}", 1},
        {"{\"a\":\"x\",\"b\":2}", "{\"$or\":[{\"a\":\"y\"},{\"b\":{\"$lte\":2}}]}", 1},
        {"{\"a\":\"x\",\"b\":2}", "{\"$not\":{\"a\":\"x\"}}", 0},
        {"{\"a\":\"x\",\"b\":2}", "{\"a\":\"x\",\"b\":3}", 0},
        {"{\"t\":[\"rag\",\"llm\"]}", "{\"t\":{\"$in\":[]}}", 0},
        {"{\"t\":[\"rag\",\"llm\"]}", "{\"t\":{\"$nin\":[]}}", 1},
        {"{\"s\":\"caf\\u00e9\"}", "{\"s\":\"caf\xc3\xa9\"}", 1},
    };
    for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
        if (cases[i].want < 0) continue; /* null operands are refused by the clients */
        ck_assert_msg(matches(cases[i].payload, cases[i].filter) == cases[i].want,
                      "case %zu: %s on %s", i, cases[i].filter,
                      cases[i].payload ? cases[i].payload : "(none)");
    }
}
END_TEST

/* ---- payload indexes agree with the payloads ---------------------------------------------- */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *const words[] = {"alpha", "beta", "gamma", "delta", "eps", "zeta"};

/* A random payload (or none) exercising arrays, nesting, mixed types and fallbacks. */
static int random_payload(char *buf, size_t cap)
{
    if (rnd() % 10 == 0) return 0;
    size_t n = (size_t)snprintf(buf, cap, "{");
    if (rnd() % 5) {
        if (rnd() % 4 == 0)
            n += (size_t)snprintf(buf + n, cap - n, "\"k\":[\"%s\",\"%s\"],", words[rnd() % 6],
                                  words[rnd() % 6]);
        else if (rnd() % 9 == 0)
            n += (size_t)snprintf(buf + n, cap - n, "\"k\":%d,", (int)(rnd() % 3));
        else
            n += (size_t)snprintf(buf + n, cap - n, "\"k\":\"%s\",", words[rnd() % 6]);
    }
    if (rnd() % 5) {
        int r = (int)(rnd() % 10);
        if (r == 0) n += (size_t)snprintf(buf + n, cap - n, "\"i\":%d.5,", (int)(rnd() % 20));
        else if (r == 1) n += (size_t)snprintf(buf + n, cap - n, "\"i\":1e19,");
        else if (r == 2)
            n += (size_t)snprintf(buf + n, cap - n, "\"i\":[%d,%d],", (int)(rnd() % 20) - 5,
                                  (int)(rnd() % 20));
        else if (r == 3) n += (size_t)snprintf(buf + n, cap - n, "\"i\":\"%d\",", (int)(rnd() % 9));
        else n += (size_t)snprintf(buf + n, cap - n, "\"i\":%d,", (int)(rnd() % 20) - 5);
    }
    if (rnd() % 4) {
        if (rnd() % 7 == 0) n += (size_t)snprintf(buf + n, cap - n, "\"f\":9007199254740993,");
        else
            n += (size_t)snprintf(buf + n, cap - n, "\"f\":%.3f,",
                                  (double)(rnd() % 2000) / 100.0 - 5);
    }
    if (rnd() % 3)
        n += (size_t)snprintf(buf + n, cap - n, "\"b\":%s,", rnd() % 2 ? "true" : "false");
    if (rnd() % 3) {
        const char *lang = rnd() % 2 ? "en" : "de";
        if (rnd() % 3)
            n += (size_t)snprintf(buf + n, cap - n, "\"m\":{\"lang\":\"%s\"},", lang);
        else
            n += (size_t)snprintf(buf + n, cap - n, "\"m\":[{\"lang\":\"%s\"},{\"x\":1}],", lang);
    }
    if (buf[n - 1] == ',') n--;
    n += (size_t)snprintf(buf + n, cap - n, "}");
    return (int)n;
}

static const char *random_condition(char *buf, size_t cap)
{
    int r = (int)(rnd() % 14);
    const char *w = words[rnd() % 6];
    int v = (int)(rnd() % 20) - 5;
    switch (r) {
    case 0: snprintf(buf, cap, "{\"k\":\"%s\"}", w); break;
    case 1: snprintf(buf, cap, "{\"k\":{\"$in\":[\"%s\",\"%s\"]}}", w, words[rnd() % 6]); break;
    case 2: snprintf(buf, cap, "{\"k\":{\"$gte\":\"%s\"}}", w); break;
    case 3: snprintf(buf, cap, "{\"i\":{\"$%s\":%d}}", rnd() % 2 ? "gt" : "lte", v); break;
    case 4: snprintf(buf, cap, "{\"i\":{\"$lt\":%d.5}}", v); break;
    case 5: snprintf(buf, cap, "{\"i\":{\"$ne\":%d}}", v); break;
    case 6: snprintf(buf, cap, "{\"f\":{\"$gte\":%d.25}}", v); break;
    case 7: snprintf(buf, cap, "{\"f\":{\"$gt\":9007199254740992}}"); break;
    case 8: snprintf(buf, cap, "{\"b\":%s}", rnd() % 2 ? "true" : "false"); break;
    case 9: snprintf(buf, cap, "{\"m.lang\":{\"$nin\":[\"%s\"]}}", rnd() % 2 ? "en" : "fr"); break;
    case 10: snprintf(buf, cap, "{\"%s\":{\"$exists\":%s}}", rnd() % 2 ? "i" : "m",
                      rnd() % 2 ? "true" : "false"); break;
    case 11: snprintf(buf, cap, "{\"i\":{\"$in\":[%d,%d.5,\"%d\"]}}", v, v, v); break;
    case 12: snprintf(buf, cap, "{\"k\":{\"$ne\":\"%s\"}}", w); break;
    default: snprintf(buf, cap, "{\"i\":%d.0}", v); break;
    }
    return buf;
}

/* A random filter of one to three levels. */
static void random_filter(char *buf, size_t cap, int depth)
{
    char a[1100], b[1100];
    int r = depth > 2 ? 0 : (int)(rnd() % 5);
    if (r <= 1) {
        random_condition(buf, cap);
        return;
    }
    random_filter(a, sizeof a, depth + 1);
    random_filter(b, sizeof b, depth + 1);
    if (r == 2) snprintf(buf, cap, "{\"$and\":[%.500s,%.500s]}", a, b);
    else if (r == 3) snprintf(buf, cap, "{\"$or\":[%.500s,%.500s]}", a, b);
    else snprintf(buf, cap, "{\"$not\":%.500s}", a);
}

/* The set storage computes for `filter` against the brute force over the stored payloads. */
static void compare(vd_store *st, const char *name, const char *filter, uint64_t *n_total)
{
    ft_arena *a = ft_new();
    const vd_filter *f = ft_parse(a, filter);
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, name, &c, NULL), VD_OK);
    vd_filtered *v = NULL;
    vd_err e = {0};
    ck_assert_msg(vd_filtered_begin(st, c, f, &v, &e) == VD_OK, "%s: %s", filter, e.msg);
    vd_filtered_stats fs;
    vd_filtered_stats_get(v, &fs);
    /* brute force: every stored point, its payload parsed and matched */
    vd_snapshot *sn = NULL;
    vd_txn t;
    ck_assert_int_eq(vd_storage__read_begin(st, &t, NULL, "test"), VD_OK);
    MDB_cursor *cur = NULL;
    MDB_val k, val;
    uint8_t kb[VD_KEY_POINT_BYTES];
    int rc;
    uint64_t id, want = 0;
    vd_storage__key_point(kb, c->cid, 0);
    ck_assert_int_eq(vd_storage__cursor_at(&t, VD_DB_POINTS, kb, sizeof kb, &cur, &k, &val, &rc,
                                           NULL), VD_OK);
    while (rc == 0 && vd_storage__key_point_decode(k.mv_data, k.mv_size, c->cid, &id)) {
        vd_point_rec pr;
        ck_assert_int_eq(vd_storage__point_decode(val.mv_data, val.mv_size, &pr, NULL), VD_OK);
        json_t *j = NULL;
        if (pr.payload)
            ck_assert_int_eq(vd_storage__json_parse(pr.payload, pr.payload_len, &j, NULL), VD_OK);
        int m = vd_storage__filter_match(f, j);
        want += m;
        ck_assert_msg(vd_filtered_allows(v, pr.slot) == m, "%s: point %" PRIu64 " (slot %u, "
                      "payload %.*s): storage says %d", filter, id, pr.slot,
                      (int)pr.payload_len, pr.payload ? (const char *)pr.payload : "",
                      !m);
        json_decref(j);
        rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    vd_storage__read_end(&t);
    (void)sn;
    ck_assert_msg(fs.matching == want, "%s: %" PRIu64 " in the set, %" PRIu64 " match", filter,
                  fs.matching, want);
    *n_total += want;
    vd_filtered_end(v);
    vd_collection_release(c);
    ft_free(a);
}

static void upsert_random(vd_store *st, const char *name, uint64_t first, size_t n)
{
    uint64_t *ids = malloc(n * sizeof *ids);
    float *vecs = malloc(n * DIM * sizeof *vecs);
    const uint8_t **pl = calloc(n, sizeof *pl);
    uint32_t *lens = calloc(n, sizeof *lens);
    char (*bufs)[512] = malloc(n * sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        ids[i] = first + i;
        st_vector_of(ids[i], DIM, vecs + i * DIM);
        int len = random_payload(bufs[i], sizeof bufs[i]);
        if (len) {
            pl[i] = (const uint8_t *)bufs[i];
            lens[i] = (uint32_t)len;
        }
    }
    vd_op op = {.kind = VD_OP_UPSERT, .collection = name, .ids = ids, .n = n, .vectors = vecs,
                .payloads = pl, .payload_lens = lens};
    vd_err e;
    ck_assert_int_eq(vd_store_write(st, &op, 1, &e), VD_OK);
    ck_assert_msg(op.status == VD_OK, "%s", op.err.msg);
    free(ids);
    free(vecs);
    free(pl);
    free(lens);
    free(bufs);
}

static vd_status pindex_op(vd_store *st, vd_op_kind kind, const char *name, const char *field,
                           vd_pindex_kind pk, vd_err *err)
{
    vd_op op = {.kind = kind, .collection = name, .field = field, .pindex_kind = pk};
    vd_status s = vd_store_write(st, &op, 1, err);
    if (s != VD_OK) return s;
    if (op.status != VD_OK && err) *err = op.err;
    return op.status;
}

static void build_all(vd_store *st, size_t step)
{
    int more = 1;
    vd_err e;
    while (more) ck_assert_msg(vd_store_pindex_step(st, step, &more, &e) == VD_OK, "%s", e.msg);
}

#define check_ok(st) check_ok_at(st, __LINE__)
static void check_ok_at(vd_store *st, int line)
{
    st_report rep = {0};
    vd_err e = {0};
    vd_status s = vd_store_check(st, st_report_line, &rep, &e);
    ck_assert_msg(s == VD_OK, "line %d: check: %s (first: %s)", line, e.msg, rep.first);
}

static void compare_many(vd_store *st, const char *name, int n)
{
    char f[2048];
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        random_filter(f, sizeof f, 0);
        compare(st, name, f, &total);
    }
    ck_assert_uint_gt(total, 0);
}

START_TEST(indexes_answer_what_payloads_answer)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    size_t n = st_scale(1500, 400);
    ck_assert_int_eq(st_create(st, "p", DIM, VD_METRIC_L2), VD_OK);
    upsert_random(st, "p", 0, n);
    check_ok(st);
    compare_many(st, "p", 60); /* no index: every condition from the payloads */
    check_ok(st);
    static const struct { const char *field; vd_pindex_kind kind; } idx[] = {
        {"k", VD_PINDEX_KEYWORD}, {"i", VD_PINDEX_INTEGER}, {"f", VD_PINDEX_FLOAT},
        {"b", VD_PINDEX_BOOL}, {"m.lang", VD_PINDEX_KEYWORD}};
    vd_err e;
    for (size_t i = 0; i < VD_ARRAY_LEN(idx); i++)
        ck_assert_msg(pindex_op(st, VD_OP_PINDEX_CREATE, "p", idx[i].field, idx[i].kind, &e) ==
                      VD_OK, "%s", e.msg);
    compare_many(st, "p", 30); /* building: still from the payloads, still right */
    /* Writes during the build: replacements, deletes, new points before and after the scan. */
    int more = 1;
    ck_assert_int_eq(vd_store_pindex_step(st, 100, &more, &e), VD_OK);
    ck_assert_int_eq(more, 1);
    upsert_random(st, "p", 50, 100);
    upsert_random(st, "p", n, 50);
    uint64_t gone[3] = {3, 700 % n, n + 5}, n_done = 0;
    ck_assert_int_eq(st_delete(st, "p", gone, 3, &n_done), VD_OK);
    build_all(st, 333);
    int building = 1;
    ck_assert_int_eq(vd_store_pindex_state(st, "p", "k", &building, NULL), VD_OK);
    ck_assert_int_eq(building, 0);
    check_ok(st);
    compare_many(st, "p", 150);
    /* Maintenance on every write, then a reopen loads the postings as they were. */
    upsert_random(st, "p", 200, 300);
    ck_assert_int_eq(st_delete(st, "p", gone, 3, &n_done), VD_OK);
    compare_many(st, "p", 60);
    check_ok(st);
    vd_store_close(st);
    st = st_open(dir);
    ck_assert_int_eq(vd_store_pindex_state(st, "p", "i", &building, NULL), VD_OK);
    ck_assert_int_eq(building, 0);
    more = 1;
    ck_assert_int_eq(vd_store_pindex_step(st, 10, &more, &e), VD_OK);
    ck_assert_int_eq(more, 0); /* nothing rebuilt */
    check_ok(st);
    compare_many(st, "p", 60);
    /* Dropping one: its conditions go back to the payloads; its records are gone. */
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_DROP, "p", "i", 0, &e), VD_OK);
    ck_assert_int_eq(vd_store_pindex_state(st, "p", "i", &building, NULL), VD_NOTFOUND);
    compare_many(st, "p", 40);
    check_ok(st);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(pindex_ops_are_checked)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "d", DIM, VD_METRIC_L2), VD_OK);
    vd_err e;
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_CREATE, "d", "src", VD_PINDEX_KEYWORD, &e), VD_OK);
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_CREATE, "d", "src", VD_PINDEX_INTEGER, &e),
                     VD_EXISTS);
    ck_assert_str_eq(e.msg, "create_payload_index d.src: the field has a keyword index already");
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_CREATE, "d", "a..b", VD_PINDEX_KEYWORD, &e),
                     VD_INVALID);
    ck_assert_str_eq(e.msg, "create_payload_index d: the field path \"a..b\" has an empty "
                            "segment");
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_CREATE, "d", "x", (vd_pindex_kind)9, &e),
                     VD_INVALID);
    ck_assert_str_eq(e.msg, "create_payload_index d.x: unknown kind 9");
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_DROP, "d", "nope", 0, &e), VD_NOTFOUND);
    ck_assert_str_eq(e.msg, "drop_payload_index d: no payload index on field nope");
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_CREATE, "nope", "x", VD_PINDEX_BOOL, &e),
                     VD_NOTFOUND);
    char f[32];
    for (int i = 1; i < VD_FILTER_MAX_PINDEXES; i++) {
        snprintf(f, sizeof f, "f%d", i);
        ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_CREATE, "d", f, VD_PINDEX_BOOL, &e), VD_OK);
    }
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_CREATE, "d", "one_more", VD_PINDEX_BOOL, &e),
                     VD_FULL);
    ck_assert_str_eq(e.msg, "create_payload_index d.one_more: collection d has 16 payload "
                            "indexes, the most allowed is 16");
    build_all(st, 1000);
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "d", &c, NULL), VD_OK);
    vd_collection_info info;
    vd_collection_info_get(c, &info);
    vd_collection_release(c);
    ck_assert_uint_eq(info.n_pindexes, VD_FILTER_MAX_PINDEXES);
    ck_assert_str_eq(info.pindexes[0].field, "src");
    ck_assert_int_eq(info.pindexes[0].kind, VD_PINDEX_KEYWORD);
    ck_assert_int_eq(info.pindexes[0].building, 0);
    /* Dropping the collection takes its payload indexes with it (check looks for orphans). */
    vd_op drop = {.kind = VD_OP_DROP, .collection = "d"};
    ck_assert_int_eq(vd_store_write(st, &drop, 1, &e), VD_OK);
    ck_assert_int_eq(drop.status, VD_OK);
    ck_assert_int_eq(st_create(st, "d", DIM, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(vd_store_pindex_state(st, "d", "src", &(int){0}, NULL), VD_NOTFOUND);
    check_ok(st);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(delete_by_filter_sees_its_group)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "d", DIM, VD_METRIC_L2), VD_OK);
    vd_err e;
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_CREATE, "d", "src", VD_PINDEX_KEYWORD, &e), VD_OK);
    build_all(st, 10);
    uint64_t ids[4] = {1, 2, 3, 4};
    float v[4 * DIM];
    for (int i = 0; i < 4; i++) st_vector_of(ids[i], DIM, v + i * DIM);
    const uint8_t *pl[4] = {(const uint8_t *)"{\"src\":\"a\"}", (const uint8_t *)"{\"src\":\"b\"}",
                            (const uint8_t *)"{\"src\":\"a\"}", NULL};
    uint32_t lens[4] = {11, 11, 11, 0};
    vd_op up = {.kind = VD_OP_UPSERT, .collection = "d", .ids = ids, .n = 4, .vectors = v,
                .payloads = pl, .payload_lens = lens};
    ck_assert_int_eq(vd_store_write(st, &up, 1, &e), VD_OK);
    check_ok(st);
    ck_assert_uint_eq(ft_count(st, "d", "{\"src\":\"a\"}"), 2);
    check_ok(st);
    /* One group: id 2 becomes "a", id 3 becomes "c", then delete where src == "a": the
     * delete sees the group's own upserts (ids 1 and 2 go, not 3). */
    ft_arena *a = ft_new();
    const uint8_t *pl2[2] = {(const uint8_t *)"{\"src\":\"a\"}",
                             (const uint8_t *)"{\"src\":\"c\"}"};
    uint32_t lens2[2] = {11, 11};
    vd_op ops[3] = {
        {.kind = VD_OP_UPSERT, .collection = "d", .ids = ids + 1, .n = 2, .vectors = v + DIM,
         .payloads = pl2, .payload_lens = lens2},
        {.kind = VD_OP_DELETE, .collection = "d", .filter = ft_parse(a, "{\"src\":\"a\"}")},
        {.kind = VD_OP_DELETE, .collection = "d", .ids = ids, .n = 1,
         .filter = ft_parse(a, "{\"src\":\"a\"}")},
    };
    ck_assert_int_eq(vd_store_write(st, ops, 3, &e), VD_OK);
    check_ok(st);
    ck_assert_int_eq(ops[1].status, VD_OK);
    ck_assert_uint_eq(ops[1].n_done, 2);
    ck_assert_int_eq(ops[2].status, VD_INVALID);
    ck_assert_str_eq(ops[2].err.msg, "delete from d: give ids or a filter, not both");
    ck_assert_uint_eq(ft_count(st, "d", "{\"src\":\"a\"}"), 0);
    ck_assert_uint_eq(ft_count(st, "d", "{\"src\":{\"$exists\":true}}"), 1);
    ck_assert_uint_eq(ft_count(st, "d", "{\"src\":{\"$ne\":\"c\"}}"), 1); /* id 4, no payload */
    /* A bad filter is refused with the op's prefix. */
    vd_op bad = {.kind = VD_OP_DELETE, .collection = "d", .filter = ft_parse(a, "{\"$or\":[]}")};
    ck_assert_int_eq(vd_store_write(st, &bad, 1, &e), VD_OK);
    ck_assert_int_eq(bad.status, VD_INVALID);
    ck_assert_str_eq(bad.err.msg, "delete from d: filter: $or expects a non-empty list of filters");
    check_ok(st);
    ft_free(a);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(first_index_in_a_group_of_upserts)
{
    /* The points records of a group's upserts name their slots only once the group resolves
     * them: the live slots of a collection's first index must be taken after that. */
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "d", DIM, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "d", 0, 30, DIM, 1), VD_OK);
    uint64_t ids[20];
    float v[20 * DIM];
    for (int i = 0; i < 20; i++) {
        ids[i] = (uint64_t)i * 2; /* 15 replaced, 5 new */
        st_vector_of(ids[i] + 1000, DIM, v + i * DIM);
    }
    vd_op ops[2] = {
        {.kind = VD_OP_UPSERT, .collection = "d", .ids = ids, .n = 20, .vectors = v},
        {.kind = VD_OP_PINDEX_CREATE, .collection = "d", .field = "id",
         .pindex_kind = VD_PINDEX_INTEGER},
    };
    vd_err e;
    ck_assert_int_eq(vd_store_write(st, ops, 2, &e), VD_OK);
    ck_assert_int_eq(ops[0].status, VD_OK);
    ck_assert_int_eq(ops[1].status, VD_OK);
    build_all(st, 4);
    check_ok(st);
    /* 35 points: the 15 odd ones keep {"id": n}; the 15 replaced and the 5 new have none. */
    ck_assert_uint_eq(ft_count(st, "d", "{\"id\":{\"$exists\":false}}"), 20);
    ck_assert_uint_eq(ft_count(st, "d", "{\"$not\":{\"id\":{\"$gte\":0}}}"), 20);
    ck_assert_uint_eq(ft_count(st, "d", "{\"id\":{\"$gte\":0}}"), 15);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(check_finds_damaged_values_records)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "d", DIM, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "d", 0, 20, DIM, 1), VD_OK); /* {"id": n} */
    vd_err e;
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_CREATE, "d", "id", VD_PINDEX_INTEGER, &e), VD_OK);
    build_all(st, 7);
    check_ok(st);
    ck_assert_uint_eq(ft_count(st, "d", "{\"id\":{\"$lt\":5}}"), 5);
    /* Rewrite one values record behind the store's back, and add one for no point. */
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "d", &c, NULL), VD_OK);
    uint32_t cid = c->cid, no = c->pset->defs[0]->no;
    vd_collection_release(c);
    MDB_txn *txn;
    ck_assert_int_eq(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
    uint8_t kb[VD_KEY_PVAL_BYTES], rec[16] = {VD_PVAL_REC_VERSION, VD_PINDEX_INTEGER,
                                               VD_PVAL_PRESENT, 0, 1, 0, 0, 0};
    vd_put_u64le(rec + 8, vd_storage__key_of_int(99));
    MDB_val k = {sizeof kb, kb}, v = {sizeof rec, rec};
    vd_storage__key_pval(kb, cid, no, 3);
    ck_assert_int_eq(mdb_put(txn, st->dbi[VD_DB_PVALUES], &k, &v, 0), 0);
    vd_storage__key_pval(kb, cid, no, 5000);
    ck_assert_int_eq(mdb_put(txn, st->dbi[VD_DB_PVALUES], &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    st_report rep = {0};
    ck_assert_int_eq(vd_store_check(st, st_report_line, &rep, &e), VD_CORRUPT);
    ck_assert_int_ge(rep.n, 2);
    ck_assert_msg(strstr(rep.first, "payload index on id holds other values than the payload") ||
                  strstr(rep.first, "values records"), "%s", rep.first);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

START_TEST(directory_without_payload_index_tables)
{
    /* A directory written before the tables existed: drop them from a fresh one. */
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    ck_assert_int_eq(st_create(st, "d", DIM, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "d", 0, 10, DIM, 1), VD_OK);
    MDB_txn *txn;
    ck_assert_int_eq(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_drop(txn, st->dbi[VD_DB_PINDEXES], 1), 0);
    ck_assert_int_eq(mdb_drop(txn, st->dbi[VD_DB_PVALUES], 1), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    vd_store_close(st);
    /* Read-only (vectord check, info): opens, checks, creates nothing. */
    vd_store_options ro = {.read_only = 1};
    vd_err e = {0};
    ck_assert_msg(vd_store_open(dir, &ro, &st, &e) == VD_OK, "%s", e.msg);
    ck_assert_int_eq(st->db_absent[VD_DB_PINDEXES], 1);
    check_ok(st);
    ck_assert_uint_eq(ft_count(st, "d", "{\"id\":{\"$gte\":5}}"), 5);
    vd_store_close(st);
    /* Read-write: the tables appear, and indexes work. */
    st = st_open(dir);
    ck_assert_int_eq(st->db_absent[VD_DB_PINDEXES], 0);
    ck_assert_int_eq(pindex_op(st, VD_OP_PINDEX_CREATE, "d", "id", VD_PINDEX_FLOAT, &e), VD_OK);
    build_all(st, 3);
    ck_assert_uint_eq(ft_count(st, "d", "{\"id\":{\"$gte\":5}}"), 5);
    check_ok(st);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

Suite *storage_filter_suite(void)
{
    Suite *s = suite_create("storage_filter");
    TCase *t = tcase_create("filter");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, grammar_errors_name_the_fault_and_where);
    tcase_add_test(t, grammar_limits_depth_and_terms);
    tcase_add_test(t, semantics_on_payloads);
    tcase_add_test(t, indexes_answer_what_payloads_answer);
    tcase_add_test(t, pindex_ops_are_checked);
    tcase_add_test(t, delete_by_filter_sees_its_group);
    tcase_add_test(t, first_index_in_a_group_of_upserts);
    tcase_add_test(t, check_finds_damaged_values_records);
    tcase_add_test(t, directory_without_payload_index_tables);
    suite_add_tcase(s, t);
    return s;
}
