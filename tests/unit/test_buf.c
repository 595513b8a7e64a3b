/* Unit tests for the growable byte buffer (core/util/buf.c): the floor and
 * geometric growth, the 1/0/-1 "did it allocate" convention, failure that
 * leaves the buffer as it was (through the allocator's failmalloc hook),
 * consume/shrink/free/swap, and random
 * append/consume sequences checked against a plain reference array. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "split_helpers.h"
#include "util/alloc.h"
#include "util/buf.h"

START_TEST(test_reserve_floor_and_doubling) {
  websock__buf b = {0};
  /* Nothing asked, nothing allocated. */
  ck_assert_int_eq(websock__buf_reserve(&b, 0), 0);
  ck_assert_ptr_null(b.data);
  ck_assert_uint_eq(b.cap, 0);
  /* The first allocation is the 256-byte floor. */
  ck_assert_int_eq(websock__buf_reserve(&b, 1), 1);
  ck_assert_ptr_nonnull(b.data);
  ck_assert_uint_eq(b.cap, 256);
  ck_assert_uint_eq(b.len, 0);
  /* Within capacity: no allocation, same block. */
  uint8_t *before = b.data;
  ck_assert_int_eq(websock__buf_reserve(&b, 256), 0);
  ck_assert_ptr_eq(b.data, before);
  ck_assert_uint_eq(b.cap, 256);
  /* One byte more doubles. */
  ck_assert_int_eq(websock__buf_reserve(&b, 257), 1);
  ck_assert_uint_eq(b.cap, 512);
  /* Reserve counts from len, not from 0. */
  b.len = 500;
  ck_assert_int_eq(websock__buf_reserve(&b, 12), 0);
  ck_assert_int_eq(websock__buf_reserve(&b, 13), 1);
  ck_assert_uint_eq(b.cap, 1024);
  /* A growing buffer doubles as often as needed, never more. */
  b.len = 1;
  ck_assert_int_eq(websock__buf_reserve(&b, 5000), 1);
  ck_assert_uint_eq(b.cap, 8192);
  /* An empty one filled at once gets what it asks for (in 64-byte steps,
   * whole pages once it is a mapping of its own). */
  b.len = 0;
  ck_assert_int_eq(websock__buf_reserve(&b, 10000), 1);
  ck_assert_uint_eq(b.cap, 10048);
  ck_assert_int_eq(websock__buf_reserve(&b, 100000), 1);
  ck_assert_uint_eq(b.cap, 102400);
  websock__buf_free(&b);
  ck_assert_ptr_null(b.data);
  ck_assert_uint_eq(b.cap, 0);
  ck_assert_uint_eq(b.len, 0);
}
END_TEST

/* For every size from 1 to 5000 the capacity after one reserve on an empty
 * buffer is the smallest 256 * 2^k that holds it below 1 KiB, and the size
 * rounded up to 64 bytes from there. */
/* A request whose sum with the length would wrap fails, and leaves the
 * buffer as it was. */
START_TEST(test_reserve_overflow) {
  websock__buf b = {0};
  ck_assert_int_eq(websock__buf_append(&b, "0123456789", 10), 1);
  uint8_t *data = b.data;
  size_t cap = b.cap;
  ck_assert_int_eq(websock__buf_reserve(&b, SIZE_MAX - 5), -1);
  ck_assert_ptr_eq(b.data, data);
  ck_assert_uint_eq(b.cap, cap);
  ck_assert_uint_eq(b.len, 10);
  websock__buf_free(&b);
}
END_TEST

START_TEST(test_reserve_sizes) {
  for (size_t want = 1; want <= 5000; want++) {
    websock__buf b = {0};
    TEST_REQUIRE(websock__buf_reserve(&b, want) == 1);
    size_t cap = 256;
    while (cap < want)
      cap *= 2;
    if (want >= 1024)
      cap = (want + 63) / 64 * 64;
    TEST_REQUIRE(b.cap == cap);
    TEST_REQUIRE(b.cap - b.len >= want);
    websock__buf_free(&b);
  }
}
END_TEST

/* Large buffers live in mappings of their own: growing into one, within
 * one, and back out keeps every byte. */
START_TEST(test_mapped_buffers) {
  websock__buf b = {0};
  uint8_t chunk[4096];
  for (size_t i = 0; i < 64; i++) {
    memset(chunk, (int)i, sizeof chunk);
    ck_assert_int_ge(websock__buf_append(&b, chunk, sizeof chunk), 0);
  }
  ck_assert_uint_ge(b.cap, 64 * 4096);
  ck_assert_uint_eq(b.cap % 4096, 0);
  for (size_t i = 0; i < 64; i++)
    ck_assert_uint_eq(b.data[i * 4096 + 17], (uint8_t)i);
  websock__buf_consume(&b, 63 * 4096);
  ck_assert_uint_eq(b.data[5], 63);
  b.len = 0;
  ck_assert_int_eq(websock__buf_shrink_if_empty(&b), 1);
  ck_assert_ptr_null(b.data);
  /* A mapping that fails leaves the heap block as it was. */
  ck_assert_int_eq(websock__buf_append(&b, "abc", 3), 1);
  uint8_t *heap = b.data;
  websock__alloc_fail_at(1);
  ck_assert_int_eq(websock__buf_reserve(&b, 1 << 20), -1);
  ck_assert_ptr_eq(b.data, heap);
  ck_assert_mem_eq(b.data, "abc", 3);
  websock__buf_free(&b);
}
END_TEST

START_TEST(test_reserve_failure_keeps_buffer) {
  websock__buf b = {0};
  long failed = websock__alloc_failed();
  websock__alloc_fail_at(1);
  ck_assert_int_eq(websock__buf_reserve(&b, 10), -1);
  ck_assert_int_eq(websock__alloc_failed(), failed + 1);
  ck_assert_ptr_null(b.data);
  ck_assert_uint_eq(b.cap, 0);
  ck_assert_uint_eq(b.len, 0);
  /* One failure only: the next allocation succeeds. */
  ck_assert_int_eq(websock__buf_append(&b, "abc", 3), 1);
  uint8_t *data = b.data;
  websock__alloc_fail_at(1);
  ck_assert_int_eq(websock__buf_reserve(&b, 300), -1);
  ck_assert_ptr_eq(b.data, data);
  ck_assert_uint_eq(b.cap, 256);
  ck_assert_uint_eq(b.len, 3);
  ck_assert_mem_eq(b.data, "abc", 3);
  /* Within capacity nothing is allocated, so an armed failure stays
   * armed. */
  websock__alloc_fail_at(1);
  long count = websock__alloc_count();
  ck_assert_int_eq(websock__buf_reserve(&b, 253), 0);
  ck_assert_int_eq(websock__buf_append(&b, "defgh", 5), 0);
  ck_assert_int_eq(websock__alloc_count(), count);
  ck_assert_int_eq(websock__alloc_failed(), failed + 2);
  websock__alloc_fail_at(0);
  ck_assert_int_eq(websock__buf_reserve(&b, 1000), 1);
  ck_assert_mem_eq(b.data, "abcdefgh", 8);
  websock__buf_free(&b);
}
END_TEST

START_TEST(test_append) {
  websock__buf b = {0};
  /* Empty appends allocate nothing, even from NULL. */
  ck_assert_int_eq(websock__buf_append(&b, NULL, 0), 0);
  ck_assert_ptr_null(b.data);
  ck_assert_int_eq(websock__buf_append(&b, "hello", 5), 1);
  ck_assert_int_eq(websock__buf_append(&b, " world", 6), 0);
  ck_assert_uint_eq(b.len, 11);
  ck_assert_mem_eq(b.data, "hello world", 11);
  uint8_t big[300];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (uint8_t)i;
  ck_assert_int_eq(websock__buf_append(&b, big, sizeof big), 1);
  ck_assert_uint_eq(b.len, 311);
  ck_assert_uint_eq(b.cap, 512);
  ck_assert_mem_eq(b.data, "hello world", 11);
  ck_assert_mem_eq(b.data + 11, big, sizeof big);
  /* A failed append changes nothing. */
  websock__alloc_fail_at(1);
  ck_assert_int_eq(websock__buf_append(&b, big, 300), -1);
  ck_assert_uint_eq(b.len, 311);
  ck_assert_uint_eq(b.cap, 512);
  ck_assert_mem_eq(b.data + 11, big, sizeof big);
  websock__buf_free(&b);
}
END_TEST

START_TEST(test_consume) {
  websock__buf b = {0};
  ck_assert_int_eq(websock__buf_append(&b, "0123456789", 10), 1);
  websock__buf_consume(&b, 0);
  ck_assert_uint_eq(b.len, 10);
  ck_assert_mem_eq(b.data, "0123456789", 10);
  websock__buf_consume(&b, 3);
  ck_assert_uint_eq(b.len, 7);
  ck_assert_mem_eq(b.data, "3456789", 7);
  websock__buf_consume(&b, 6);
  ck_assert_uint_eq(b.len, 1);
  ck_assert_mem_eq(b.data, "9", 1);
  websock__buf_consume(&b, 1);
  ck_assert_uint_eq(b.len, 0);
  /* The capacity stays for the next use: the steady state allocates
   * nothing. */
  ck_assert_uint_eq(b.cap, 256);
  ck_assert_ptr_nonnull(b.data);
  ck_assert_int_eq(websock__buf_append(&b, "ab", 2), 0);
  websock__buf_consume(&b, 1000); /* more than there is: empties it */
  ck_assert_uint_eq(b.len, 0);
  ck_assert_uint_eq(b.cap, 256);
  websock__buf_free(&b);
}
END_TEST

START_TEST(test_shrink_if_empty) {
  websock__buf b = {0};
  ck_assert_int_eq(websock__buf_shrink_if_empty(&b), 0); /* nothing held */
  ck_assert_int_eq(websock__buf_append(&b, "x", 1), 1);
  ck_assert_int_eq(websock__buf_shrink_if_empty(&b), 0); /* not empty */
  ck_assert_ptr_nonnull(b.data);
  ck_assert_uint_eq(b.cap, 256);
  ck_assert_mem_eq(b.data, "x", 1);
  websock__buf_consume(&b, 1);
  ck_assert_int_eq(websock__buf_shrink_if_empty(&b), 1);
  ck_assert_ptr_null(b.data);
  ck_assert_uint_eq(b.cap, 0);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_int_eq(websock__buf_shrink_if_empty(&b), 0);
  /* Usable again afterwards. */
  ck_assert_int_eq(websock__buf_append(&b, "yz", 2), 1);
  ck_assert_mem_eq(b.data, "yz", 2);
  websock__buf_free(&b);
  websock__buf_free(&b); /* a freed buffer frees again harmlessly */
  ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(test_swap) {
  websock__buf a = {0}, b = {0};
  ck_assert_int_eq(websock__buf_append(&a, "aaa", 3), 1);
  ck_assert_int_eq(websock__buf_reserve(&b, 1000), 1);
  ck_assert_int_eq(websock__buf_append(&b, "b", 1), 0);
  uint8_t *pa = a.data, *pb = b.data;
  websock__buf_swap(&a, &b);
  ck_assert_ptr_eq(a.data, pb);
  ck_assert_uint_eq(a.len, 1);
  ck_assert_uint_eq(a.cap, 1024);
  ck_assert_mem_eq(a.data, "b", 1);
  ck_assert_ptr_eq(b.data, pa);
  ck_assert_uint_eq(b.len, 3);
  ck_assert_uint_eq(b.cap, 256);
  ck_assert_mem_eq(b.data, "aaa", 3);
  websock__buf empty = {0};
  websock__buf_swap(&a, &empty);
  ck_assert_ptr_null(a.data);
  ck_assert_uint_eq(a.cap, 0);
  ck_assert_ptr_eq(empty.data, pb);
  websock__buf_free(&empty);
  websock__buf_free(&b);
}
END_TEST

/* Random appends (whole, byte by byte, in random pieces) and consumes,
 * checked after every step against a plain array holding what the buffer
 * should hold; the return value must say exactly when capacity grew. */
START_TEST(test_random_ops) {
  enum { MAX = 20000 };
  static uint8_t ref[MAX], src[MAX];
  test_rng rng;
  test_rng_seed(&rng, 0xB0F + (uint64_t)_i);
  for (size_t i = 0; i < MAX; i++)
    src[i] = (uint8_t)test_rng_next(&rng);
  websock__buf b = {0};
  size_t rlen = 0;
  for (int step = 0; step < 4000; step++) {
    uint64_t op = test_rng_next(&rng) % 4;
    if (op < 3 && rlen < MAX / 2) {
      size_t n = test_rng_range(&rng, 0, op == 0 ? 8 : 600);
      size_t off = test_rng_range(&rng, 0, MAX - n);
      size_t pieces = op == 1 ? n : 1; /* op 1: byte by byte */
      for (size_t k = 0; k < pieces; k++) {
        size_t at = off + (op == 1 ? k : 0), len = op == 1 ? 1 : n;
        size_t cap = b.cap;
        int r = websock__buf_append(&b, src + at, len);
        TEST_REQUIRE(r == (rlen + len > cap ? 1 : 0));
        TEST_REQUIRE(r ? b.cap > cap : b.cap == cap);
        memcpy(ref + rlen, src + at, len);
        rlen += len;
      }
    } else {
      size_t n = test_rng_range(&rng, 0, rlen + 10);
      websock__buf_consume(&b, n);
      n = n > rlen ? rlen : n;
      memmove(ref, ref + n, rlen - n);
      rlen -= n;
    }
    TEST_REQUIRE(b.len == rlen);
    TEST_REQUIRE(b.len <= b.cap);
    TEST_REQUIRE(rlen == 0 || memcmp(b.data, ref, rlen) == 0);
  }
  websock__buf_free(&b);
}
END_TEST

static Suite *buf_suite(void) {
  Suite *s = suite_create("buf");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_reserve_floor_and_doubling);
  tcase_add_test(tc, test_reserve_sizes);
  tcase_add_test(tc, test_reserve_overflow);
  tcase_add_test(tc, test_reserve_failure_keeps_buffer);
  tcase_add_test(tc, test_mapped_buffers);
  tcase_add_test(tc, test_append);
  tcase_add_test(tc, test_consume);
  tcase_add_test(tc, test_shrink_if_empty);
  tcase_add_test(tc, test_swap);
  tcase_add_loop_test(tc, test_random_ops, 0, 8);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(buf_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
