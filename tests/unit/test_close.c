/* Unit tests for close codes and close payloads (core/proto/close.c). */
#include <check.h>
#include <stdlib.h>

#include "proto/close.h"
#include "proto/frame.h"
#include "proto/utf8.h"

START_TEST(test_code_validity) {
  for (unsigned c = 0; c <= 5000; c++) {
    int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
               (c >= 3000 && c <= 4999);
    if (websock__close_code_valid(c) != want)
      ck_abort_msg("code %u", c);
  }
  ck_assert_int_eq(websock__close_code_valid(65535), 0);
  ck_assert_int_eq(websock__close_code_valid(1000 + 65536), 0);
  ck_assert_int_eq(websock__close_code_valid(0xFFFFFFFFu), 0);
}
END_TEST

/* Every 2-byte code through close_parse, with and without a reason. */
START_TEST(test_parse_codes) {
  for (unsigned c = 0; c < 65536; c++) {
    uint8_t p[5] = {(uint8_t)(c >> 8), (uint8_t)c, 'b', 'y', 'e'};
    unsigned code = 0;
    const uint8_t *reason = NULL;
    size_t rlen = 99;
    int want = websock__close_code_valid(c) ? 0 : WEBSOCK__PROTO_ERR_PROTOCOL;
    ck_assert_int_eq(websock__close_parse(p, 2, &code, &reason, &rlen), want);
    if (want == 0) {
      ck_assert_uint_eq(code, c);
      ck_assert_uint_eq(rlen, 0);
    }
    ck_assert_int_eq(websock__close_parse(p, 5, &code, &reason, &rlen), want);
    if (want == 0) {
      ck_assert_ptr_eq(reason, p + 2);
      ck_assert_uint_eq(rlen, 3);
    }
  }
}
END_TEST

START_TEST(test_parse_special) {
  unsigned code = 0;
  const uint8_t *reason = NULL;
  size_t rlen = 99;
  const uint8_t p[] = {0x03, 0xE8, 0xCE, 0xBA, 0xFF, 0xED, 0xA0, 0x80};
  ck_assert_int_eq(websock__close_parse(p, 0, &code, &reason, &rlen), 0);
  ck_assert_uint_eq(code, 1005);
  ck_assert_uint_eq(rlen, 0);
  ck_assert_int_eq(websock__close_parse(p, 1, &code, &reason, &rlen),
                   WEBSOCK__PROTO_ERR_PROTOCOL);
  ck_assert_int_eq(websock__close_parse(p, 4, &code, &reason, &rlen), 0);
  ck_assert_uint_eq(code, 1000);
  ck_assert_uint_eq(rlen, 2);
  /* truncated code point, 0xFF, surrogate */
  ck_assert_int_eq(websock__close_parse(p, 3, &code, &reason, &rlen),
                   WEBSOCK__PROTO_ERR_UTF8);
  ck_assert_int_eq(websock__close_parse(p, 5, &code, &reason, &rlen),
                   WEBSOCK__PROTO_ERR_UTF8);
  const uint8_t s[] = {0x0B, 0xB8, 0xED, 0xA0, 0x80};
  ck_assert_int_eq(websock__close_parse(s, 5, &code, &reason, &rlen),
                   WEBSOCK__PROTO_ERR_UTF8);
  /* invalid code wins over a bad reason: 1002 before 1007 */
  const uint8_t b[] = {0x03, 0xED, 0xFF};
  ck_assert_int_eq(websock__close_parse(b, 3, &code, &reason, &rlen),
                   WEBSOCK__PROTO_ERR_PROTOCOL);
}
END_TEST

START_TEST(test_build) {
  uint8_t out[125];
  ck_assert_uint_eq(websock__close_build(out, 0, "x", 1), 0);
  ck_assert_uint_eq(websock__close_build(out, 1005, "x", 1), 0);
  ck_assert_uint_eq(websock__close_build(out, 1000, NULL, 0), 2);
  ck_assert_mem_eq(out, "\x03\xe8", 2);
  ck_assert_uint_eq(websock__close_build(out, 4999, "bye", 3), 5);
  ck_assert_mem_eq(out,
                   "\x13\x87"
                   "bye",
                   5);
  char big[300];
  memset(big, 'a', sizeof big);
  ck_assert_uint_eq(websock__close_build(out, 1001, big, sizeof big), 125);
  ck_assert_uint_eq(websock__close_build(out, 1001, big, 123), 125);
  ck_assert_uint_eq(websock__close_build(out, 1001, big, 122), 124);
}
END_TEST

/* Long reasons made of 2-, 3- and 4-byte characters at every alignment are
 * cut to at most 123 bytes, at a code point boundary, as a prefix. */
START_TEST(test_build_truncation) {
  static const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
  for (size_t ci = 0; ci < 3; ci++) {
    size_t cl = strlen(chars[ci]);
    for (size_t pad = 0; pad < 8; pad++) {
      char reason[200];
      size_t n = 0;
      for (; n < pad; n++)
        reason[n] = 'p';
      while (n + cl <= sizeof reason) {
        memcpy(reason + n, chars[ci], cl);
        n += cl;
      }
      uint8_t out[125];
      size_t got = websock__close_build(out, 1000, reason, n);
      ck_assert_uint_le(got, 125);
      ck_assert_uint_gt(got, 125 - cl);
      ck_assert(websock__utf8_valid(out + 2, got - 2));
      ck_assert_mem_eq(out + 2, reason, got - 2);
      unsigned code;
      const uint8_t *r;
      size_t rl;
      ck_assert_int_eq(websock__close_parse(out, got, &code, &r, &rl), 0);
      ck_assert_uint_eq(code, 1000);
    }
  }
}
END_TEST

static Suite *close_suite(void) {
  Suite *s = suite_create("close");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_code_validity);
  tcase_add_test(tc, test_parse_codes);
  tcase_add_test(tc, test_parse_special);
  tcase_add_test(tc, test_build);
  tcase_add_test(tc, test_build_truncation);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(close_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
