/* tests/unit/test_storage_pindex_crash.c: payload indexes through a real kill -9.
 *
 * A child process writes batches in a loop, each one group: upsert the K points of batch b
 * with payload {"b": b, "odd": i % 2 == 1, "t": "x<b % 3>"}, and delete by filter {"b": b - 2,
 * "odd": true} (the odd half of batch b - 2). Collection "p" has payload indexes on "b"
 * (integer) and "odd" (bool) from the start; after batch 3 a third one, a keyword index on
 * "t", is built over the stored points one small step per batch, so kills land inside builds
 * too. After each group that committed it reports b on a pipe. The parent kills it at a
 * random moment, reopens, and checks:
 *  - vd_store_check passes (values records equal the payloads, postings equal the records);
 *  - every reported batch is there as the index answers it: K points with b == batch, K/2 of
 *    them even, the odd half gone exactly when the batch two later committed; at most one
 *    unreported batch (the one racing the kill) is there, whole or not at all;
 *  - the same counts come out of the payloads (a condition no index answers).
 * The next round's child continues after the last batch present, finishing any build. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/vd_storage.h"
#include "tests/unit/filter_testlib.h"
#include "tests/unit/storage_testlib.h"

#define K 20
#define DIM 8

static vd_status pindex(vd_store *st, const char *field, vd_pindex_kind kind)
{
    vd_op op = {.kind = VD_OP_PINDEX_CREATE, .collection = "p", .field = field,
                .pindex_kind = kind};
    vd_status s = vd_store_write(st, &op, 1, NULL);
    return s != VD_OK ? s : op.status == VD_EXISTS ? VD_OK : op.status;
}

static void child(const char *dir, uint64_t first_batch, int fd)
{
    vd_store *st = NULL;
    vd_store_options opt = {.create = 1, .n_threads = 1};
    if (vd_store_open(dir, &opt, &st, NULL) != VD_OK) _exit(3);
    if (first_batch == 1) {
        if (st_create(st, "p", DIM, VD_METRIC_L2) != VD_OK ||
            pindex(st, "b", VD_PINDEX_INTEGER) != VD_OK ||
            pindex(st, "odd", VD_PINDEX_BOOL) != VD_OK)
            _exit(4);
    }
    ft_arena *a = ft_new();
    uint64_t ids[K];
    float vecs[K * DIM];
    char pbuf[K][48], fbuf[64];
    const uint8_t *pl[K];
    uint32_t lens[K];
    int more = 0;
    for (uint64_t b = first_batch;; b++) {
        for (int i = 0; i < K; i++) {
            ids[i] = b * K + (uint64_t)i;
            st_vector_of(ids[i], DIM, vecs + i * DIM);
            lens[i] = (uint32_t)snprintf(pbuf[i], sizeof pbuf[i],
                                         "{\"b\":%llu,\"odd\":%s,\"t\":\"x%d\"}",
                                         (unsigned long long)b, i % 2 ? "true" : "false",
                                         (int)(b % 3));
            pl[i] = (const uint8_t *)pbuf[i];
        }
        snprintf(fbuf, sizeof fbuf, "{\"b\":%lld,\"odd\":true}", (long long)b - 2);
        vd_op ops[2] = {
            {.kind = VD_OP_UPSERT, .collection = "p", .ids = ids, .n = K, .vectors = vecs,
             .payloads = pl, .payload_lens = lens},
            {.kind = VD_OP_DELETE, .collection = "p", .filter = ft_parse(a, fbuf)},
        };
        if (vd_store_write(st, ops, b >= 3 ? 2 : 1, NULL) != VD_OK || ops[0].status != VD_OK ||
            (b >= 3 && ops[1].status != VD_OK))
            _exit(5);
        if (write(fd, &b, sizeof b) != (ssize_t)sizeof b) _exit(6);
        if (b == 3 && pindex(st, "t", VD_PINDEX_KEYWORD) != VD_OK) _exit(7);
        if (b >= 3 && vd_store_pindex_step(st, 7, &more, NULL) != VD_OK) _exit(8);
    }
}

static uint64_t count(vd_store *st, const char *fmt, uint64_t b, int with_unindexed)
{
    char text[160];
    snprintf(text, sizeof text, fmt, (unsigned long long)b);
    if (with_unindexed) /* a condition no index answers: the payloads decide the rest too */
        text[strlen(text) - 1] = 0, strcat(text, ",\"nope\":{\"$exists\":false}}");
    return ft_count(st, "p", text);
}

/* What the parent expects of batch bb when `last` is the last committed batch. */
static void check_batch(vd_store *st, uint64_t bb, uint64_t last, int round)
{
    uint64_t want = bb > last ? 0 : bb + 2 <= last ? K / 2 : K;
    for (int scan = 0; scan < 2; scan++) {
        uint64_t n = count(st, "{\"b\":%llu}", bb, scan);
        ck_assert_msg(n == want, "round %d: batch %llu has %llu points, want %llu (last %llu%s)",
                      round, (unsigned long long)bb, (unsigned long long)n,
                      (unsigned long long)want, (unsigned long long)last,
                      scan ? ", from the payloads" : "");
        ck_assert_uint_eq(count(st, "{\"b\":%llu,\"odd\":false}", bb, scan), bb > last ? 0 : K / 2);
    }
}

START_TEST(kill_9_during_filtered_deletes_upserts_and_builds)
{
    char dir[64];
    st_tmpdir(dir);
    int rounds = (int)st_scale(20, 8), killed_writing = 0;
    uint64_t next = 1;
    srand((unsigned)time(NULL));
    for (int round = 0; round < rounds; round++) {
        uint64_t acked = st_crash_round(child, dir, next, 10000,
                                        st_sanitized() ? 400000 : 200000);
        if (acked >= next) killed_writing++;
        vd_store *st = st_open(dir);
        vd_collection *c = NULL;
        if (vd_store_acquire(st, "p", &c, NULL) != VD_OK) {
            ck_assert_uint_eq(acked, 0);
            vd_store_close(st);
            continue;
        }
        vd_collection_release(c);
        st_report rep = {0};
        vd_err e = {0};
        ck_assert_msg(vd_store_check(st, st_report_line, &rep, &e) == VD_OK, "round %d: %s: %s",
                      round, e.msg, rep.first);
        uint64_t last = acked + (count(st, "{\"b\":%llu}", acked + 1, 0) ? 1 : 0);
        for (uint64_t bb = 1; bb <= last + 1; bb++) check_batch(st, bb, last, round);
        vd_store_close(st);
        next = last + 1;
    }
    fprintf(stderr, "payload index crash test: %d kill -9 rounds (%d while writing), %llu "
            "batches, 0 lost\n", rounds, killed_writing, (unsigned long long)next - 1);
    ck_assert_int_ge(killed_writing, rounds / 3);
    /* Finish the build the kills interrupted; it answers like the payloads. */
    vd_store *st = st_open(dir);
    for (int more = 1; more;) ck_assert_int_eq(vd_store_pindex_step(st, 1000, &more, NULL), VD_OK);
    int building = 1;
    ck_assert_int_eq(vd_store_pindex_state(st, "p", "t", &building, NULL), VD_OK);
    ck_assert_int_eq(building, 0);
    for (uint64_t r = 0; r < 3; r++) {
        char f[32];
        snprintf(f, sizeof f, "{\"t\":\"x%d\"}", (int)r);
        uint64_t by_index = count(st, f, 0, 0), by_payload = count(st, f, 0, 1);
        ck_assert_uint_eq(by_index, by_payload);
    }
    st_report rep = {0};
    vd_err e = {0};
    ck_assert_msg(vd_store_check(st, st_report_line, &rep, &e) == VD_OK, "%s: %s", e.msg,
                  rep.first);
    vd_store_close(st);
    st_rmtree(dir);
}
END_TEST

Suite *storage_pindex_crash_suite(void)
{
    Suite *s = suite_create("storage_pindex_crash");
    TCase *tc = tcase_create("crash");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, kill_9_during_filtered_deletes_upserts_and_builds);
    suite_add_tcase(s, tc);
    return s;
}
