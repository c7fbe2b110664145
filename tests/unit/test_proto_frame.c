/* tests/unit/test_proto_frame.c: the incremental frame decoder - splits at every byte,
 * many frames per read, zero-copy reserve/commit, broken lengths, truncation. */
#include <check.h>

#include "proto/vd_proto.h"

static size_t put_frame(uint8_t *dst, const char *body)
{
    size_t n = strlen(body);
    vd_frame_header_put(dst, (uint32_t)n);
    memcpy(dst + 4, body, n);
    return 4 + n;
}

START_TEST(frames_split_at_every_byte_come_out_whole)
{
    uint8_t wire[64];
    size_t n = put_frame(wire, "hello");
    n += put_frame(wire + n, "w");
    n += put_frame(wire + n, "0123456789");
    for (size_t split = 0; split <= n; split++) {
        vd_frame_decoder *d = NULL;
        ck_assert_int_eq(vd_frame_decoder_new(100, &d, NULL), VD_OK);
        const char *want[] = {"hello", "w", "0123456789"};
        size_t got = 0;
        size_t cuts[2] = {split, n};
        size_t at = 0;
        for (int c = 0; c < 2; c++) {
            ck_assert_int_eq(vd_frame_push(d, wire + at, cuts[c] - at, NULL), VD_OK);
            at = cuts[c];
            for (;;) {
                const uint8_t *f;
                uint32_t len;
                ck_assert_int_eq(vd_frame_next(d, &f, &len, NULL), VD_OK);
                if (!f) break;
                ck_assert_uint_lt(got, 3);
                ck_assert_uint_eq(len, strlen(want[got]));
                ck_assert(memcmp(f, want[got], len) == 0);
                got++;
            }
        }
        ck_assert_uint_eq(got, 3);
        ck_assert_uint_eq(vd_frame_pending(d), 0);
        vd_frame_decoder_free(d);
    }
}
END_TEST

START_TEST(one_byte_at_a_time)
{
    uint8_t wire[32];
    size_t n = put_frame(wire, "abcdef");
    vd_frame_decoder *d = NULL;
    ck_assert_int_eq(vd_frame_decoder_new(100, &d, NULL), VD_OK);
    const uint8_t *f;
    uint32_t len;
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(vd_frame_next(d, &f, &len, NULL), VD_OK);
        ck_assert_ptr_null(f);
        ck_assert_uint_eq(vd_frame_pending(d), i);
        ck_assert_int_eq(vd_frame_push(d, wire + i, 1, NULL), VD_OK);
    }
    ck_assert_int_eq(vd_frame_next(d, &f, &len, NULL), VD_OK);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(len, 6);
    vd_frame_decoder_free(d);
}
END_TEST

START_TEST(reserve_makes_room_for_the_whole_frame)
{
    vd_frame_decoder *d = NULL;
    ck_assert_int_eq(vd_frame_decoder_new(1 << 20, &d, NULL), VD_OK);
    uint8_t hdr[4];
    vd_frame_header_put(hdr, 500000);
    ck_assert_int_eq(vd_frame_push(d, hdr, 4, NULL), VD_OK);
    uint8_t *p;
    size_t cap;
    ck_assert_int_eq(vd_frame_reserve(d, 16, &p, &cap, NULL), VD_OK);
    ck_assert_uint_ge(cap, 500000);
    memset(p, 7, 500000);
    vd_frame_commit(d, 500000);
    const uint8_t *f;
    uint32_t len;
    ck_assert_int_eq(vd_frame_next(d, &f, &len, NULL), VD_OK);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(len, 500000);
    ck_assert_uint_eq(f[499999], 7);
    vd_frame_decoder_free(d);
}
END_TEST

START_TEST(oversized_length_is_broken_framing_and_sticky)
{
    vd_frame_decoder *d = NULL;
    vd_err e;
    ck_assert_int_eq(vd_frame_decoder_new(1000, &d, NULL), VD_OK);
    uint8_t hdr[4];
    vd_frame_header_put(hdr, 1001);
    ck_assert_int_eq(vd_frame_push(d, hdr, 4, NULL), VD_OK);
    const uint8_t *f;
    uint32_t len;
    ck_assert_int_eq(vd_frame_next(d, &f, &len, &e), VD_FULL);
    ck_assert_str_eq(e.msg, "frame of 1001 bytes exceeds max_frame_bytes 1000");
    uint8_t *p;
    size_t cap;
    ck_assert_int_eq(vd_frame_reserve(d, 16, &p, &cap, NULL), VD_OK);
    ck_assert_uint_lt(cap, 1001); /* no allocation for the bogus length */
    ck_assert_int_eq(vd_frame_next(d, &f, &len, &e), VD_FULL);
    vd_frame_decoder_free(d);
}
END_TEST

START_TEST(zero_length_frame_is_broken_framing)
{
    vd_frame_decoder *d = NULL;
    vd_err e;
    ck_assert_int_eq(vd_frame_decoder_new(1000, &d, NULL), VD_OK);
    uint8_t wire[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    ck_assert_int_eq(vd_frame_push(d, wire, 8, NULL), VD_OK);
    const uint8_t *f;
    uint32_t len;
    ck_assert_int_eq(vd_frame_next(d, &f, &len, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "zero-length frame"));
    vd_frame_decoder_free(d);
    ck_assert_int_eq(vd_frame_decoder_new(0, &d, &e), VD_INVALID);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(truncated_frame_is_reported_as_pending)
{
    vd_frame_decoder *d = NULL;
    ck_assert_int_eq(vd_frame_decoder_new(1000, &d, NULL), VD_OK);
    uint8_t wire[16];
    put_frame(wire, "0123456789");
    ck_assert_int_eq(vd_frame_push(d, wire, 9, NULL), VD_OK);
    const uint8_t *f;
    uint32_t len;
    ck_assert_int_eq(vd_frame_next(d, &f, &len, NULL), VD_OK);
    ck_assert_ptr_null(f);
    ck_assert_uint_eq(vd_frame_pending(d), 9);
    vd_frame_decoder_free(d);
}
END_TEST

START_TEST(decoder_survives_allocation_failure)
{
    vd_frame_decoder *d = NULL;
    vd_err e;
    ck_assert_int_eq(vd_frame_decoder_new(1 << 20, &d, NULL), VD_OK);
    uint8_t wire[16];
    size_t n = put_frame(wire, "abc");
    vd_alloc_fail_after(0);
    vd_status s = vd_frame_push(d, wire, n, &e);
    vd_alloc_fail_after(-1);
    ck_assert_int_eq(s, VD_NOMEM);
    ck_assert_int_eq(vd_frame_push(d, wire, n, NULL), VD_OK);
    const uint8_t *f;
    uint32_t len;
    ck_assert_int_eq(vd_frame_next(d, &f, &len, NULL), VD_OK);
    ck_assert_uint_eq(len, 3);
    vd_frame_decoder_free(d);
}
END_TEST

Suite *proto_frame_suite(void)
{
    Suite *s = suite_create("proto_frame");
    TCase *tc = tcase_create("frame");
    tcase_add_test(tc, frames_split_at_every_byte_come_out_whole);
    tcase_add_test(tc, one_byte_at_a_time);
    tcase_add_test(tc, reserve_makes_room_for_the_whole_frame);
    tcase_add_test(tc, oversized_length_is_broken_framing_and_sticky);
    tcase_add_test(tc, zero_length_frame_is_broken_framing);
    tcase_add_test(tc, truncated_frame_is_reported_as_pending);
    tcase_add_test(tc, decoder_survives_allocation_failure);
    suite_add_tcase(s, tc);
    return s;
}
