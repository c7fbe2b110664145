/* tests/unit/test_engine_scroll_concurrent.c: scroll while writes happen (also under TSan).
 *
 * A collection holds a stable set of points that no write touches, interleaved in id order
 * with churning ones: the writer thread keeps upserting new points and deleting them again,
 * and replacing stable points' neighbours. Reader threads walk the collection page by page
 * with small pages, over and over. Every walk must see the ids in strictly ascending order
 * (so none twice) and every stable point exactly once; churning points may or may not
 * appear. Both id types: integer order and bytewise string order. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/vd_engine.h"
#include "tests/unit/storage_testlib.h"

#define DIM 4
#define READERS 2

typedef struct world {
    vd_engine *eng;
    const char *coll;
    int str;
    size_t n_stable; /* stable points: ids 2k (int) or "p%06zu" of 2k (str), k < n_stable */
    atomic_int stop;
    atomic_long walks;
    atomic_int failed;
    char why[sizeof(vd_err){0}.msg + 64];
} world;

/* The id of number i: i (int) or "p%06zu". */
static size_t id_str(size_t i, char *out) { return (size_t)sprintf(out, "p%06zu", i); }

/* Upserts (or deletes) the points numbered nums[0..n). */
static void write_points(world *w, const size_t *nums, size_t n, int del)
{
    uint64_t ids[64];
    uint8_t bytes[64 * 8];
    uint32_t ends[64];
    float v[64 * DIM];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i] = nums[i];
        off += id_str(nums[i], (char *)bytes + off);
        ends[i] = (uint32_t)off;
        st_vector_of(nums[i], DIM, v + i * DIM);
    }
    vd_str_ids s = {.bytes = bytes, .ends = ends, .n = n, .n_bytes = off};
    vd_request q = {.kind = del ? VD_REQ_DELETE : VD_REQ_UPSERT};
    vd_str_ids none = {0};
    if (del)
        q.del = (vd_delete_req){.collection = w->coll, .ids = w->str ? NULL : ids,
                                .n_ids = w->str ? 0 : n, .str_ids = w->str ? s : none};
    else
        q.upsert = (vd_upsert_req){.collection = w->coll, .ids = w->str ? NULL : ids,
                                   .n_ids = w->str ? 0 : n, .vectors = v, .n_floats = n * DIM,
                                   .dim = DIM, .str_ids = w->str ? s : none};
    vd_result r;
    vd_err e;
    ck_assert_msg(vd_engine_execute(w->eng, &q, &r, &e) == VD_OK, "%s", e.msg);
    vd_result_free(&r);
}

static int note_failure(world *w, const char *msg)
{
    if (atomic_exchange(&w->failed, 1) == 0) snprintf(w->why, sizeof w->why, "%s", msg);
    return 0;
}

/* One page's ids checked and counted into seen; 0 on a failure. */
static int page_ok(world *w, const vd_scroll_result *r, uint8_t *seen, uint8_t *last,
                   size_t *last_len, uint64_t *last_int, int *have_last)
{
    for (size_t i = 0; i < r->n; i++) {
        size_t num;
        if (w->str) {
            size_t a = i ? r->str_id_ends[i - 1] : 0, b = r->str_id_ends[i];
            const uint8_t *p = r->str_ids + a;
            int c = *have_last ? memcmp(last, p, *last_len < b - a ? *last_len : b - a) : -1;
            if (*have_last && (c > 0 || (c == 0 && *last_len >= b - a)))
                return note_failure(w, "string ids out of order or repeated");
            memcpy(last, p, *last_len = b - a);
            char tmp[16] = {0};
            memcpy(tmp, p, b - a < 15 ? b - a : 15);
            num = strtoul(tmp + 1, NULL, 10);
        } else {
            if (*have_last && r->ids[i] <= *last_int)
                return note_failure(w, "int ids out of order or repeated");
            num = *last_int = r->ids[i];
        }
        *have_last = 1;
        if (num % 2 == 0 && num / 2 < w->n_stable && seen[num / 2]++)
            return note_failure(w, "a stable point twice");
    }
    return 1;
}

/* One walk: strictly ascending ids, every stable point once. */
static void walk(world *w, uint8_t *seen)
{
    uint8_t cursor[600], last[600];
    size_t clen = 0, last_len = 0;
    uint64_t last_int = 0;
    int have_last = 0;
    memset(seen, 0, w->n_stable);
    for (;;) {
        vd_request q = {.kind = VD_REQ_SCROLL};
        q.scroll = (vd_scroll_req){.collection = w->coll, .limit = 7, .cursor = {clen, cursor}};
        vd_result r;
        vd_err e;
        if (vd_engine_read(w->eng, &q, &r, &e) != VD_OK) {
            note_failure(w, e.msg);
            return;
        }
        if (!page_ok(w, &r.scroll, seen, last, &last_len, &last_int, &have_last)) {
            vd_result_free(&r);
            return;
        }
        int more = r.scroll.next_cursor != NULL;
        if (more) memcpy(cursor, r.scroll.next_cursor, clen = r.scroll.next_cursor_len);
        vd_result_free(&r);
        if (!more) break;
    }
    for (size_t k = 0; k < w->n_stable; k++)
        if (!seen[k]) {
            note_failure(w, "a stable point was missed");
            return;
        }
    atomic_fetch_add(&w->walks, 1);
}

static void *reader(void *arg)
{
    world *w = arg;
    uint8_t *seen = malloc(w->n_stable);
    while (!atomic_load(&w->stop) && !atomic_load(&w->failed)) walk(w, seen);
    free(seen);
    return NULL;
}

static void run_world(int str)
{
    char dir[64];
    st_tmpdir(dir);
    vd_store *st = st_open(dir);
    world w = {.coll = "c", .str = str, .n_stable = st_scale(600, 150)};
    ck_assert(vd_engine_new(st, NULL, &w.eng, NULL) == VD_OK);
    vd_request cq = {.kind = VD_REQ_CREATE};
    cq.create = (vd_create_req){.name = "c", .dim = DIM, .metric = VD_METRIC_L2, .m = 8,
                                .ef_construction = 32, .id_type = str ? VD_ID_STR : VD_ID_INT};
    vd_result r;
    ck_assert(vd_engine_execute(w.eng, &cq, &r, NULL) == VD_OK);
    vd_result_free(&r);
    size_t nums[64];
    for (size_t k = 0; k < w.n_stable; k += 50) {
        size_t n = 0;
        for (size_t j = k; j < k + 50 && j < w.n_stable; j++) nums[n++] = 2 * j;
        write_points(&w, nums, n, 0);
    }
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++) pthread_create(&th[i], NULL, reader, &w);
    /* churn: odd numbers come and go around the stable ones, until the readers finished a
     * few whole walks while it went on */
    size_t rounds = st_scale(300, 60);
    for (size_t round = 0;
         (round < rounds || atomic_load(&w.walks) < 2 * READERS) && !atomic_load(&w.failed);
         round++) {
        size_t n = 0;
        for (size_t j = 0; j < 16; j++) nums[n++] = 2 * ((round * 37 + j * 11) % w.n_stable) + 1;
        write_points(&w, nums, n, round % 3 == 2);
    }
    atomic_store(&w.stop, 1);
    for (int i = 0; i < READERS; i++) pthread_join(th[i], NULL);
    ck_assert_msg(!atomic_load(&w.failed), "%s", w.why);
    vd_engine_free(w.eng);
    vd_err e;
    ck_assert_msg(vd_store_check(st, NULL, NULL, &e) == VD_OK, "%s", e.msg);
    vd_store_close(st);
    st_rmtree(dir);
}

START_TEST(scroll_under_writes_sees_every_stable_integer_id_once) { run_world(0); }
END_TEST

START_TEST(scroll_under_writes_sees_every_stable_string_id_once) { run_world(1); }
END_TEST

Suite *engine_scroll_concurrent_suite(void)
{
    Suite *s = suite_create("engine_scroll_concurrent");
    TCase *tc = tcase_create("engine_scroll_concurrent");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, scroll_under_writes_sees_every_stable_integer_id_once);
    tcase_add_test(tc, scroll_under_writes_sees_every_stable_string_id_once);
    suite_add_tcase(s, tc);
    return s;
}
