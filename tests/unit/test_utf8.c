/* Unit tests for the incremental UTF-8 validator (core/proto/utf8.c):
 * Autobahn-style tables fed whole, byte by byte and in random splits, plus
 * exhaustive comparisons against a slow reference decoder. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "split_helpers.h"
#include "proto/utf8.h"

/* Slow, obvious reference: returns the length of the valid prefix that can
 * still be extended to valid UTF-8 (n when all is fine) and sets
 * *complete when the input ends on a code point boundary. */
static size_t ref_prefix(const uint8_t *p, size_t n, int *complete) {
  size_t i = 0;
  *complete = 1;
  while (i < n) {
    uint8_t c = p[i];
    size_t need;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      need = 1, cp = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2, cp = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3, cp = c & 0x07u, min = 0x10000;
    } else {
      *complete = 0;
      return i;
    }
    size_t j = 1;
    for (; j <= need; j++) {
      if (i + j == n) {
        /* Truncated. Every constraint is fixed by the first two bytes,
         * which passed below (or only the lead is here), so more bytes
         * could still complete it. */
        *complete = 0;
        return n;
      }
      uint8_t d = p[i + j];
      if ((d & 0xC0) != 0x80) {
        *complete = 0;
        return i + j;
      }
      cp = (cp << 6) | (d & 0x3Fu);
      /* Check the partial value as soon as the second byte is known. */
      if (j == 1) {
        uint32_t hi = cp << (6 * (need - 1));
        uint32_t lo_max = hi | ((1u << (6 * (need - 1))) - 1);
        if (lo_max < min || hi > 0x10FFFF || (hi >= 0xD800 && hi <= 0xDFFF)) {
          *complete = 0;
          return i + 1;
        }
      }
    }
    i += need + 1;
  }
  return n;
}

/* Feeds |p| in the pieces given by |cuts| and returns the index of the
 * piece end where feed first returned 0 (n if never), checking that the
 * failure is reported in the piece holding byte |bad|. */
static void check_split(const uint8_t *p, size_t n, const size_t *cuts,
                        size_t ncuts, int want_valid, size_t want_bad) {
  websock__utf8 v;
  websock__utf8_init(&v);
  size_t pos = 0;
  int failed = 0;
  for (size_t i = 0; i <= ncuts && !failed; i++) {
    size_t end = i < ncuts ? cuts[i] : n;
    int ok = websock__utf8_feed(&v, p + pos, end - pos);
    if (!ok) {
      failed = 1;
      /* fail-fast: the bad byte is inside this piece */
      TEST_REQUIRE(want_bad < end);
      TEST_REQUIRE(want_bad >= pos);
      /* stays invalid */
      TEST_REQUIRE(websock__utf8_feed(&v, (const uint8_t *)"a", 1) == 0);
    } else {
      TEST_REQUIRE(want_bad >= end);
    }
    pos = end;
  }
  if (!failed)
    TEST_REQUIRE(websock__utf8_complete(&v) == want_valid);
  else
    TEST_REQUIRE(want_valid == 0);
}

/* Runs one input whole, byte by byte and in random splits. */
static void check_all_splits(const uint8_t *p, size_t n, int want_valid,
                             size_t want_bad) {
  ck_assert_int_eq(websock__utf8_valid(p, n), want_valid);
  check_split(p, n, NULL, 0, want_valid, want_bad);
  size_t cuts[4096];
  size_t nc = 0;
  for (size_t i = 1; i < n && nc < 4096; i++)
    cuts[nc++] = i;
  if (n <= 4096)
    check_split(p, n, cuts, nc, want_valid, want_bad);
  test_rng rng;
  test_rng_seed(&rng, n);
  for (int it = 0; it < 50; it++) {
    nc = test_random_cuts(&rng, n, cuts, 4096);
    check_split(p, n, cuts, nc, want_valid, want_bad);
  }
}

#define NO_BAD ((size_t)-1)

typedef struct utf8_case {
  const char *name;
  const char *bytes;
  size_t len;
  int valid;      /* complete and valid */
  long bad_index; /* first byte at which feed fails; -1: none */
} utf8_case;

#define S(x) x, sizeof(x) - 1

static const utf8_case utf8_cases[] = {
    {"empty", S(""), 1, -1},
    {"ascii", S("Hello-\x7f"), 1, -1},
    {"kosme", S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), 1, -1},
    {"first 2", S("\xc2\x80"), 1, -1},
    {"first 3", S("\xe0\xa0\x80"), 1, -1},
    {"first 4", S("\xf0\x90\x80\x80"), 1, -1},
    {"last 1", S("\x7f"), 1, -1},
    {"last 2", S("\xdf\xbf"), 1, -1},
    {"last 3", S("\xef\xbf\xbf"), 1, -1},
    {"max", S("\xf4\x8f\xbf\xbf"), 1, -1},
    {"before surrogates", S("\xed\x9f\xbf"), 1, -1},
    {"after surrogates", S("\xee\x80\x80"), 1, -1},
    {"U+FFFE", S("\xef\xbf\xbe"), 1, -1},
    {"emoji", S("\xf0\x9f\x98\x80"), 1, -1},
    {"nul", "a\0b", 3, 1, -1},
    {"above max F4 90", S("\xf4\x90\x80\x80"), 0, 1},
    {"F5 lead", S("\xf5\x80\x80\x80"), 0, 0},
    {"FF", S("a\xff"), 0, 1},
    {"FE", S("\xfe"), 0, 0},
    {"C0 overlong", S("\xc0\xaf"), 0, 0},
    {"C1 overlong", S("\xc1\xbf"), 0, 0},
    {"E0 overlong", S("\xe0\x80\xaf"), 0, 1},
    {"E0 9F overlong", S("\xe0\x9f\xbf"), 0, 1},
    {"F0 overlong", S("\xf0\x80\x80\xaf"), 0, 1},
    {"F0 8F overlong", S("\xf0\x8f\xbf\xbf"), 0, 1},
    {"surrogate D800", S("\xed\xa0\x80"), 0, 1},
    {"surrogate DFFF", S("\xed\xbf\xbf"), 0, 1},
    {"surrogate pair", S("\xed\xa0\x80\xed\xb0\x80"), 0, 1},
    {"lone cont", S("\x80"), 0, 0},
    {"lone cont BF", S("ab\xbf"), 0, 2},
    {"2 missing cont",
     S("\xc2"
       "a"),
     0, 1},
    {"3 missing cont",
     S("\xe1\x80"
       "a"),
     0, 2},
    {"4 missing cont",
     S("\xf1\x80\x80"
       "a"),
     0, 3},
    {"truncated 2", S("\xc2"), 0, -1},
    {"truncated 3a", S("\xe1"), 0, -1},
    {"truncated 3b", S("\xe1\x80"), 0, -1},
    {"truncated 4a", S("\xf0"), 0, -1},
    {"truncated 4b", S("\xf0\x90"), 0, -1},
    {"truncated 4c", S("\xf4\x8f\xbf"), 0, -1},
    {"kosme then bad",
     S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
       "edited"),
     0, 12},
    {"lead then lead", S("\xe1\xe1"), 0, 1},
    {"5-byte form", S("\xf8\x88\x80\x80\x80"), 0, 0},
    {"6-byte form", S("\xfc\x84\x80\x80\x80\x80"), 0, 0},
};

START_TEST(test_table) {
  const utf8_case *c = &utf8_cases[_i];
  size_t bad = c->bad_index < 0 ? NO_BAD : (size_t)c->bad_index;
  check_all_splits((const uint8_t *)c->bytes, c->len, c->valid, bad);
  /* Reference agrees with the table. */
  int complete;
  size_t pre = ref_prefix((const uint8_t *)c->bytes, c->len, &complete);
  ck_assert_uint_eq(pre, c->bad_index < 0 ? c->len : bad);
}
END_TEST

/* Every code point encodes to valid UTF-8, except surrogates. */
START_TEST(test_all_code_points) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
      b[0] = (uint8_t)cp, n = 1;
    } else if (cp < 0x800) {
      b[0] = (uint8_t)(0xC0 | (cp >> 6));
      b[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
      b[0] = (uint8_t)(0xE0 | (cp >> 12));
      b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      b[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
    } else {
      b[0] = (uint8_t)(0xF0 | (cp >> 18));
      b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
      b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      b[3] = (uint8_t)(0x80 | (cp & 0x3F)), n = 4;
    }
    int want = !(cp >= 0xD800 && cp <= 0xDFFF);
    if (websock__utf8_valid(b, n) != want)
      ck_abort_msg("code point U+%04X", (unsigned)cp);
  }
}
END_TEST

/* Exhaustive 1..3 byte inputs (3-byte: every lead from C0 up) and a 4-byte
 * sample, incremental and whole, against the reference. */
static void compare_ref(const uint8_t *b, size_t n) {
  int complete;
  size_t pre = ref_prefix(b, n, &complete);
  int want_valid = pre == n && complete;
  if (websock__utf8_valid(b, n) != want_valid)
    ck_abort_msg("valid mismatch %02x %02x %02x %02x n=%zu", b[0],
                 n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0, n);
  websock__utf8 v;
  websock__utf8_init(&v);
  for (size_t i = 0; i < n; i++) {
    int ok = websock__utf8_feed(&v, b + i, 1);
    if (ok != (i < pre))
      ck_abort_msg("fail position mismatch at %zu: %02x %02x %02x %02x", i,
                   b[0], n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0);
    if (!ok)
      break;
  }
}

START_TEST(test_exhaustive) {
  uint8_t b[4];
  for (unsigned a = 0; a < 256; a++) {
    b[0] = (uint8_t)a;
    compare_ref(b, 1);
    for (unsigned c = 0; c < 256; c++) {
      b[1] = (uint8_t)c;
      compare_ref(b, 2);
      if (a < 0xC0)
        continue;
      for (unsigned d = 0; d < 256; d++) {
        b[2] = (uint8_t)d;
        compare_ref(b, 3);
      }
    }
  }
  static const uint8_t sample[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F,
                                   0xA0, 0xBF, 0xC0, 0xC2, 0xF4, 0xFF};
  for (unsigned a = 0xE0; a < 256; a++)
    for (unsigned c = 0; c < 256; c++)
      for (size_t d = 0; d < sizeof sample; d++)
        for (size_t e = 0; e < sizeof sample; e++) {
          b[0] = (uint8_t)a, b[1] = (uint8_t)c, b[2] = sample[d];
          b[3] = sample[e];
          compare_ref(b, 4);
        }
}
END_TEST

/* The 8-byte ASCII fast path: one bad byte at every position and
 * alignment of a long ASCII buffer, plus multi-byte text at every offset. */
START_TEST(test_ascii_fast_path) {
  uint8_t buf[80];
  for (size_t len = 0; len <= 64; len++) {
    for (size_t off = 0; off < 8; off++) {
      memset(buf, 'x', sizeof buf);
      ck_assert_int_eq(websock__utf8_valid(buf + off, len), 1);
      for (size_t bad = 0; bad < len; bad++) {
        buf[off + bad] = 0x80;
        ck_assert_int_eq(websock__utf8_valid(buf + off, len), 0);
        websock__utf8 v;
        websock__utf8_init(&v);
        ck_assert_int_eq(websock__utf8_feed(&v, buf + off, bad), 1);
        ck_assert_int_eq(websock__utf8_feed(&v, buf + off + bad, len - bad), 0);
        buf[off + bad] = 0xE2; /* starts a 3-byte char: truncated/broken */
        ck_assert_int_eq(websock__utf8_valid(buf + off, len), 0);
        if (bad + 3 <= len) {
          buf[off + bad + 1] = 0x82;
          buf[off + bad + 2] = 0xAC; /* now a valid euro sign */
          ck_assert_int_eq(websock__utf8_valid(buf + off, len), 1);
          buf[off + bad + 1] = 'x';
          buf[off + bad + 2] = 'x';
        }
        buf[off + bad] = 'x';
      }
    }
  }
}
END_TEST

/* Long mixed text in random splits agrees with the whole-buffer check. */
START_TEST(test_random_text) {
  test_rng rng;
  test_rng_seed(&rng, 42);
  static const char *pieces[] = {"a",
                                 "hello world ",
                                 "\xc3\xa9",
                                 "\xe2\x82\xac",
                                 "\xf0\x9f\x98\x80",
                                 "\xed\x9f\xbf",
                                 "\xf4\x8f\xbf\xbf",
                                 "\x7f"};
  uint8_t buf[2048];
  for (int it = 0; it < 300; it++) {
    size_t n = 0;
    while (n < sizeof buf - 16) {
      const char *p = pieces[test_rng_next(&rng) % 8];
      size_t l = strlen(p);
      memcpy(buf + n, p, l);
      n += l;
      if (test_rng_next(&rng) % 64 == 0)
        break;
    }
    size_t bad = NO_BAD;
    int valid = 1;
    if (it % 3 == 1 && n > 0) {
      /* Corrupt one byte; the reference tells where it first fails. */
      buf[test_rng_next(&rng) % n] = (uint8_t)test_rng_next(&rng);
      int complete;
      size_t pre = ref_prefix(buf, n, &complete);
      valid = pre == n && complete;
      if (pre < n)
        bad = pre;
    }
    check_all_splits(buf, n, valid, bad);
  }
}
END_TEST

static Suite *utf8_suite(void) {
  Suite *s = suite_create("utf8");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_table, 0,
                      (int)(sizeof utf8_cases / sizeof utf8_cases[0]));
  tcase_add_test(tc, test_all_code_points);
  tcase_add_test(tc, test_exhaustive);
  tcase_add_test(tc, test_ascii_fast_path);
  tcase_add_test(tc, test_random_text);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(utf8_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
