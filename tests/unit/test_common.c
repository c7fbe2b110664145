/* tests/unit/test_common.c: status table, error records, allocation failure injection, the
 * JSON escaping of log lines. */
#include <check.h>

#include "common/vd_common.h"

START_TEST(status_names_and_messages_come_from_one_table)
{
    ck_assert_str_eq(vd_status_name(VD_NOTFOUND), "NOTFOUND");
    ck_assert_str_eq(vd_status_message(VD_NOMEM), "out of memory");
    ck_assert_str_eq(vd_status_name((vd_status)12345), "UNKNOWN");
}
END_TEST

START_TEST(err_set_formats_and_returns_the_status)
{
    vd_err e;
    ck_assert_int_eq(vd_err_set(&e, VD_INVALID, "vector %d has %d dims", 3, 383), VD_INVALID);
    ck_assert_int_eq(e.code, VD_INVALID);
    ck_assert_str_eq(e.msg, "vector 3 has 383 dims");
    vd_err_prefix(&e, "upsert %s", "docs");
    ck_assert_str_eq(e.msg, "upsert docs: vector 3 has 383 dims");
    ck_assert_int_eq(vd_err_set(NULL, VD_IO, "ignored"), VD_IO);
}
END_TEST

START_TEST(alloc_fail_after_fails_the_nth_allocation)
{
    vd_alloc_fail_after(2);
    void *a = vd_malloc(8), *b = vd_malloc(8), *c = vd_malloc(8);
    vd_alloc_fail_after(-1);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_null(c);
    void *d = vd_malloc(8);
    ck_assert_ptr_nonnull(d);
    vd_free(a); vd_free(b); vd_free(d);
}
END_TEST

START_TEST(alloc_fail_nth_fails_one_allocation_only)
{
    vd_alloc_fail_nth(1);
    ck_assert(vd_alloc_fail_pending());
    void *a = vd_malloc(8), *b = vd_malloc(8), *c = vd_malloc(8);
    ck_assert(!vd_alloc_fail_pending());
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    ck_assert_ptr_nonnull(c);
    vd_free(a);
    vd_free(c);
    vd_alloc_fail_nth(5);
    vd_alloc_fail_nth(-1); /* cancelled before it happened */
    ck_assert(!vd_alloc_fail_pending());
    void *d = vd_malloc(8);
    ck_assert_ptr_nonnull(d);
    vd_free(d);
    vd_alloc_fail_after(3);
    ck_assert(vd_alloc_fail_pending());
    vd_alloc_fail_after(-1);
}
END_TEST

START_TEST(json_escape_makes_any_message_a_json_string)
{
    char out[64];
    vd_json_escape("a \"quoted\" \\ line\n\t\x01", out, sizeof out);
    ck_assert_str_eq(out, "a \\\"quoted\\\" \\\\ line\\n\\t\\u0001");
    /* valid UTF-8 stays, a stray byte or an overlong form becomes U+FFFD */
    vd_json_escape("caf\xc3\xa9 \xff \xc0\xaf", out, sizeof out);
    ck_assert_str_eq(out, "caf\xc3\xa9 \\ufffd \\ufffd\\ufffd");
    /* cut at a character boundary, always terminated */
    ck_assert_uint_eq(vd_json_escape("\"\"\"", out, 4), 2);
    ck_assert_str_eq(out, "\\\"");
    ck_assert_uint_eq(vd_json_escape("\xe2\x82\xac", out, 3), 0); /* a 3-byte char: no room */
}
END_TEST

START_TEST(endian_helpers_round_trip)
{
    uint8_t buf[8];
    vd_put_u32be(buf, 0x01020304u);
    ck_assert_uint_eq(buf[0], 1);
    ck_assert_uint_eq(vd_get_u32be(buf), 0x01020304u);
    vd_put_u64le(buf, 0x1122334455667788ull);
    ck_assert_uint_eq(buf[0], 0x88);
    ck_assert_uint_eq(vd_get_u64le(buf), 0x1122334455667788ull);
    vd_put_u64be(buf, 0x1122334455667788ull);
    ck_assert_uint_eq(buf[0], 0x11);
    ck_assert_uint_eq(vd_get_u64be(buf), 0x1122334455667788ull);
}
END_TEST

Suite *common_suite(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, status_names_and_messages_come_from_one_table);
    tcase_add_test(tc, err_set_formats_and_returns_the_status);
    tcase_add_test(tc, alloc_fail_after_fails_the_nth_allocation);
    tcase_add_test(tc, alloc_fail_nth_fails_one_allocation_only);
    tcase_add_test(tc, json_escape_makes_any_message_a_json_string);
    tcase_add_test(tc, endian_helpers_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
