/* Unit tests for the random source (core/util/random.c): every byte value
 * turns up, keys do not repeat, small and large requests, and two threads
 * drawing at once get different bytes (each has its own block). */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/random.h"

START_TEST(test_byte_values) {
  /* 64 KiB in requests of every size up to 200: each byte value is
   * expected 256 times, so a missing one means a broken source. */
  static uint8_t buf[65536];
  size_t off = 0, n = 1;
  while (off < sizeof buf) {
    size_t take = n < sizeof buf - off ? n : sizeof buf - off;
    ck_assert_int_eq(websock__random(buf + off, take), 0);
    off += take;
    n = n % 200 + 1;
  }
  unsigned count[256] = {0};
  for (size_t i = 0; i < sizeof buf; i++)
    count[buf[i]]++;
  for (int v = 0; v < 256; v++)
    ck_assert_uint_gt(count[v], 100);
}
END_TEST

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

START_TEST(test_keys_do_not_repeat) {
  /* 4,096 keys of 32 bits: a repeat has odds of about 1 in 500,000. */
  enum { N = 4096 };
  static uint32_t keys[N];
  for (int i = 0; i < N; i++) {
    uint8_t k[4];
    ck_assert_int_eq(websock__random_key(NULL, k), 0);
    memcpy(&keys[i], k, 4);
  }
  qsort(keys, N, sizeof keys[0], cmp_u32);
  for (int i = 1; i < N; i++)
    ck_assert_uint_ne(keys[i], keys[i - 1]);
}
END_TEST

START_TEST(test_large_request) {
  uint8_t a[4096], b[4096];
  ck_assert_int_eq(websock__random(a, sizeof a), 0);
  ck_assert_int_eq(websock__random(b, sizeof b), 0);
  ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
  ck_assert_int_eq(websock__random(a, 0), 0);
}
END_TEST

static void *draw(void *arg) {
  uint8_t *out = arg;
  for (int i = 0; i < 256; i++)
    if (websock__random(out + 4 * i, 4) < 0)
      return NULL;
  return arg;
}

START_TEST(test_threads_draw_apart) {
  static uint8_t a[1024], b[1024];
  pthread_t ta, tb;
  void *ra, *rb;
  ck_assert_int_eq(pthread_create(&ta, NULL, draw, a), 0);
  ck_assert_int_eq(pthread_create(&tb, NULL, draw, b), 0);
  pthread_join(ta, &ra);
  pthread_join(tb, &rb);
  ck_assert_ptr_eq(ra, a);
  ck_assert_ptr_eq(rb, b);
  ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
}
END_TEST

static Suite *random_suite(void) {
  Suite *s = suite_create("random");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_byte_values);
  tcase_add_test(tc, test_keys_do_not_repeat);
  tcase_add_test(tc, test_large_request);
  tcase_add_test(tc, test_threads_draw_apart);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(random_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
