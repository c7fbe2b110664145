/* tests/unit/test_storage_crash.c: crash safety with a real kill -9.
 *
 * A child process writes batches in a loop: batch b upserts ids [b*K, b*K+K) with payload
 * {"id":..} and, in the same group, deletes the first id of batch b-1, and does the same in
 * collection "strs" of string ids ("s<b>-<i>-é", same vectors); every 4th batch also drops
 * and re-creates collection "side" with 3 points in that group. After each
 * vd_store_write that returned VD_OK it reports b on a pipe. The parent kills it with SIGKILL
 * at a random moment (also during open and load), reopens the directory and checks:
 *  - every reported batch is there (no acknowledged write lost), every string id mapped to
 *    its own vector;
 *  - at most one unreported batch is there (the one whose commit raced the kill), and it is
 *    whole: all its K ids plus its delete, or nothing of it (no half-applied group);
 *  - vd_store_check passes and the graph validates.
 * The next round's child continues after the last batch present. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/vd_storage.h"
#include "tests/unit/storage_testlib.h"

#define K 25
#define DIM 16

/* The string id of row i of batch b in collection "strs" (at most SID_MAX bytes): its
 * vector is row i's. */
#define SID_MAX 48
static size_t str_id_of(uint64_t b, int i, char *out)
{
    return (size_t)snprintf(out, SID_MAX, "s%llu-%d-\xc3\xa9", (unsigned long long)b, i);
}

static void child(const char *dir, uint64_t first_batch, int fd)
{
    vd_store *st = NULL;
    vd_store_options opt = {.create = 1, .n_threads = 1};
    if (vd_store_open(dir, &opt, &st, NULL) != VD_OK) _exit(3);
    if (first_batch == 1) {
        vd_op op[2] = {{.kind = VD_OP_CREATE}, {.kind = VD_OP_CREATE}};
        strcpy(op[0].params.name, "crash");
        strcpy(op[1].params.name, "strs");
        for (int i = 0; i < 2; i++) {
            op[i].params.dim = DIM;
            op[i].params.m = 8;
            op[i].params.ef_construction = 40;
        }
        op[1].params.id_type = VD_ID_STR;
        if (vd_store_write(st, op, 2, NULL) != VD_OK ||
            (op[0].status != VD_OK && op[0].status != VD_EXISTS) ||
            (op[1].status != VD_OK && op[1].status != VD_EXISTS))
            _exit(4);
    }
    uint64_t ids[K];
    float vecs[K * DIM];
    uint8_t pbuf[K][32];
    const uint8_t *pl[K];
    uint32_t lens[K];
    for (uint64_t b = first_batch;; b++) {
        for (int i = 0; i < K; i++) {
            ids[i] = b * K + (uint64_t)i;
            st_vector_of(ids[i], DIM, vecs + i * DIM);
            lens[i] = (uint32_t)snprintf((char *)pbuf[i], 32, "{\"id\":%llu}",
                                         (unsigned long long)ids[i]);
            pl[i] = pbuf[i];
        }
        uint64_t del = (b - 1) * K;
        uint64_t side_ids[3] = {b * 10, b * 10 + 1, b * 10 + 2};
        uint8_t sbytes[K * SID_MAX], dbytes[SID_MAX];
        uint32_t sends[K], dend;
        size_t off = 0;
        for (int i = 0; i < K; i++) {
            off += str_id_of(b, i, (char *)sbytes + off);
            sends[i] = (uint32_t)off;
        }
        dend = (uint32_t)str_id_of(b - 1, 0, (char *)dbytes);
        vd_str_ids sids = {.bytes = sbytes, .ends = sends, .n = K, .n_bytes = off};
        vd_str_ids sdel = {.bytes = dbytes, .ends = &dend, .n = 1, .n_bytes = dend};
        vd_op ops[7] = {
            {.kind = VD_OP_UPSERT, .collection = "crash", .ids = ids, .n = K, .vectors = vecs,
             .payloads = pl, .payload_lens = lens},
            {.kind = VD_OP_DELETE, .collection = "crash", .ids = &del, .n = 1},
            {.kind = VD_OP_UPSERT, .collection = "strs", .str_ids = sids, .n = K,
             .vectors = vecs},
            {.kind = VD_OP_DELETE, .collection = "strs", .str_ids = sdel, .n = 1},
            /* Every 4th batch also replaces collection "side" in the same group. */
            {.kind = VD_OP_DROP, .collection = "side"},
            {.kind = VD_OP_CREATE},
            {.kind = VD_OP_UPSERT, .collection = "side", .ids = side_ids, .n = 3,
             .vectors = vecs},
        };
        strcpy(ops[5].params.name, "side");
        ops[5].params.dim = DIM;
        size_t n_ops = b % 4 == 0 ? 7 : 4;
        if (vd_store_write(st, ops, n_ops, NULL) != VD_OK || ops[0].status != VD_OK ||
            ops[1].status != VD_OK || ops[2].status != VD_OK || ops[3].status != VD_OK)
            _exit(5);
        if (n_ops == 7 && ((ops[4].status != VD_OK && ops[4].status != VD_NOTFOUND) ||
                           ops[5].status != VD_OK || ops[6].status != VD_OK))
            _exit(7);
        if (write(fd, &b, sizeof b) != (ssize_t)sizeof b) _exit(6);
    }
}

static int present(vd_store *st, vd_collection *c, uint64_t id)
{
    vd_snapshot *s = NULL;
    ck_assert_int_eq(vd_snapshot_begin(st, &s, NULL), VD_OK);
    int found = 0;
    const uint8_t *p = NULL;
    size_t plen = 0;
    const float *v = NULL;
    vd_err e = {0};
    ck_assert_msg(vd_snapshot_get(s, c, id, &found, &v, &p, &plen, &e) == VD_OK, "%s", e.msg);
    if (found) {
        char want[32];
        int n = snprintf(want, sizeof want, "{\"id\":%llu}", (unsigned long long)id);
        ck_assert_uint_eq(plen, (size_t)n);
        ck_assert(memcmp(p, want, plen) == 0);
        float wv[DIM];
        st_vector_of(id, DIM, wv);
        ck_assert(memcmp(v, wv, sizeof wv) == 0);
    }
    vd_snapshot_end(s);
    return found;
}

/* Collection "strs" holds exactly the string ids of batches 1..last (minus the deleted
 * first row of each but the last), each mapped to its own vector. */
static void check_strs(vd_store *st, int round, uint64_t last)
{
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "strs", &c, NULL), VD_OK);
    vd_snapshot *s = NULL;
    ck_assert_int_eq(vd_snapshot_begin(st, &s, NULL), VD_OK);
    for (uint64_t bb = 1; bb <= last + 1; bb++)
        for (int i = 0; i < K; i++) {
            char id[SID_MAX];
            size_t len = str_id_of(bb, i, id);
            uint64_t key;
            int found = 0;
            ck_assert(vd_snapshot_str_key(s, c, (const uint8_t *)id, len, &key, &found, NULL) ==
                      VD_OK);
            int want = bb <= last && !(i == 0 && bb + 1 <= last);
            ck_assert_msg(found == want, "round %d: string id %s: present %d, want %d", round,
                          id, found, want);
            if (!found) continue;
            const float *v = NULL;
            ck_assert(vd_snapshot_get(s, c, key, &found, &v, NULL, NULL, NULL) == VD_OK && found);
            float wv[DIM];
            st_vector_of(bb * K + (uint64_t)i, DIM, wv);
            ck_assert_msg(memcmp(v, wv, sizeof wv) == 0, "round %d: %s has another's vector",
                          round, id);
        }
    vd_snapshot_end(s);
    vd_collection_release(c);
}

START_TEST(kill_9_at_random_moments_loses_no_acknowledged_batch)
{
    char dir[64];
    st_tmpdir(dir);
    int rounds = 30, killed_writing = 0;
    uint64_t next = 1, total_acked = 0;
    srand((unsigned)time(NULL));
    for (int round = 0; round < rounds; round++) {
        uint64_t acked = st_crash_round(child, dir, next, 5000, st_sanitized() ? 300000 : 150000);
        total_acked += acked - (next - 1);
        if (acked >= next) killed_writing++;

        vd_store *st = st_open(dir);
        vd_collection *c = NULL;
        if (vd_store_acquire(st, "crash", &c, NULL) != VD_OK) {
            /* Killed before the collection's creation committed: nothing acknowledged. */
            ck_assert_uint_eq(acked, 0);
            vd_store_close(st);
            continue;
        }
        /* The last batch present: acked, or acked + 1 if its commit won the race. */
        uint64_t last = acked;
        if (present(st, c, (acked + 1) * K + 1)) last = acked + 1;
        for (uint64_t bb = 1; bb <= last + 1; bb++)
            for (int i = 0; i < K; i++) {
                uint64_t id = bb * K + (uint64_t)i;
                int want = bb <= last && !(i == 0 && bb + 1 <= last);
                ck_assert_msg(present(st, c, id) == want,
                              "round %d: id %llu of batch %llu: present %d, want %d (acked "
                              "%llu, last %llu)", round, (unsigned long long)id,
                              (unsigned long long)bb, !want, want, (unsigned long long)acked,
                              (unsigned long long)last);
            }
        ck_assert_uint_eq(vd_index_count(vd_collection_index(c)),
                          last ? (uint64_t)last * K - (last - 1) : 0);
        vd_collection_release(c);
        check_strs(st, round, last);
        /* "side" holds exactly the 3 points of the last batch that is a multiple of 4. */
        vd_collection *side = NULL;
        if (last >= 4) {
            ck_assert_int_eq(vd_store_acquire(st, "side", &side, NULL), VD_OK);
            ck_assert_uint_eq(vd_index_count(vd_collection_index(side)), 3);
            uint64_t m = last / 4 * 4;
            vd_snapshot *sn = NULL;
            ck_assert_int_eq(vd_snapshot_begin(st, &sn, NULL), VD_OK);
            int found = 0;
            ck_assert_int_eq(vd_snapshot_get(sn, side, m * 10 + 2, &found, NULL, NULL, NULL,
                                             NULL), VD_OK);
            ck_assert_msg(found, "round %d: side lacks the points of batch %llu", round,
                          (unsigned long long)m);
            vd_snapshot_end(sn);
            vd_collection_release(side);
        } else {
            ck_assert_int_eq(vd_store_acquire(st, "side", &side, NULL), VD_NOTFOUND);
        }
        st_report rep = {0};
        vd_err e = {0};
        ck_assert_msg(vd_store_check(st, st_report_line, &rep, &e) == VD_OK, "round %d: %s: %s",
                      round, e.msg, rep.first);
        vd_store_close(st);
        next = last + 1;
    }
    fprintf(stderr, "storage crash test: %d kill -9 rounds (%d while writing), %llu batches "
            "acknowledged, 0 lost\n", rounds, killed_writing, (unsigned long long)total_acked);
    ck_assert_int_ge(killed_writing, rounds / 3);
    st_rmtree(dir);
}
END_TEST

Suite *storage_crash_suite(void)
{
    Suite *s = suite_create("storage_crash");
    TCase *tc = tcase_create("crash");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, kill_9_at_random_moments_loses_no_acknowledged_batch);
    suite_add_tcase(s, tc);
    return s;
}
