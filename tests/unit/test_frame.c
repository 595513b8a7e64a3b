/* Unit tests for the frame header codec and masking (core/proto/frame.c):
 * every length encoding, early errors, every prefix and a guard page. */
#include <check.h>
#include <stdlib.h>

#include "proto/frame.h"
#include "split_helpers.h"

typedef struct hdr_case {
  const char *name;
  uint8_t bytes[WEBSOCK__FRAME_HEADER_MAX];
  size_t len;
  ssize_t ret; /* header length, or an error */
  uint8_t fin, rsv, opcode, masked;
  uint64_t payload_len;
  /* for errors: shortest prefix that already reports the error */
  size_t err_at;
} hdr_case;

static const hdr_case hdr_cases[] = {
    {"text 0", {0x81, 0x00}, 2, 2, 1, 0, 1, 0, 0, 0},
    {"text 5 masked", {0x81, 0x85, 1, 2, 3, 4}, 6, 6, 1, 0, 1, 1, 5, 0},
    {"125", {0x82, 125}, 2, 2, 1, 0, 2, 0, 125, 0},
    {"126", {0x02, 126, 0x00, 0x7E}, 4, 4, 0, 0, 2, 0, 126, 0},
    {"65535 masked",
     {0x82, 0xFE, 0xFF, 0xFF, 9, 8, 7, 6},
     8,
     8,
     1,
     0,
     2,
     1,
     65535,
     0},
    {"65536",
     {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0},
     10,
     10,
     1,
     0,
     2,
     0,
     65536,
     0},
    {"2^63-1 masked",
     {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4},
     14,
     14,
     1,
     0,
     2,
     1,
     0x7FFFFFFFFFFFFFFFull,
     0},
    {"rsv bits kept", {0xF1, 0x00}, 2, 2, 1, 7, 1, 0, 0, 0},
    {"unknown opcode kept", {0x83, 0x00}, 2, 2, 1, 0, 3, 0, 0, 0},
    {"cont", {0x00, 0x03}, 2, 2, 0, 0, 0, 0, 3, 0},
    {"ping 125", {0x89, 125}, 2, 2, 1, 0, 9, 0, 125, 0},
    {"close 0 masked", {0x88, 0x80, 0, 0, 0, 0}, 6, 6, 1, 0, 8, 1, 0, 0},
    {"64-bit top bit",
     {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0},
     10,
     WEBSOCK__PROTO_ERR_PROTOCOL,
     0,
     0,
     0,
     0,
     0,
     10},
    {"64-bit all ones",
     {0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4},
     14,
     WEBSOCK__PROTO_ERR_PROTOCOL,
     0,
     0,
     0,
     0,
     0,
     10},
    {"ping fin=0",
     {0x09, 0x00},
     2,
     WEBSOCK__PROTO_ERR_PROTOCOL,
     0,
     0,
     0,
     0,
     0,
     1},
    {"close fin=0",
     {0x08, 0x80, 0, 0, 0, 0},
     6,
     WEBSOCK__PROTO_ERR_PROTOCOL,
     0,
     0,
     0,
     0,
     0,
     1},
    {"pong 126",
     {0x8A, 126, 0, 126},
     4,
     WEBSOCK__PROTO_ERR_PROTOCOL,
     0,
     0,
     0,
     0,
     0,
     2},
    {"ping 127",
     {0x89, 127, 0, 0, 0, 0, 0, 0, 0, 1},
     10,
     WEBSOCK__PROTO_ERR_PROTOCOL,
     0,
     0,
     0,
     0,
     0,
     2},
    {"reserved control 0xB fin=0",
     {0x0B, 0x00},
     2,
     WEBSOCK__PROTO_ERR_PROTOCOL,
     0,
     0,
     0,
     0,
     0,
     1},
};

static void check_parse(const hdr_case *c, const uint8_t *buf, size_t len) {
  websock__frame_header h;
  memset(&h, 0xAA, sizeof h);
  ssize_t r = websock__frame_parse_header(buf, len, &h);
  if (c->ret > 0) {
    if (len < (size_t)c->ret) {
      ck_assert_int_eq(r, WEBSOCK__PROTO_NEED_MORE);
      return;
    }
    ck_assert_int_eq(r, c->ret);
    ck_assert_uint_eq(h.header_len, (size_t)c->ret);
    ck_assert_uint_eq(h.fin, c->fin);
    ck_assert_uint_eq(h.rsv, c->rsv);
    ck_assert_uint_eq(h.opcode, c->opcode);
    ck_assert_uint_eq(h.masked, c->masked);
    ck_assert_uint_eq(h.payload_len, c->payload_len);
    if (c->masked)
      ck_assert_mem_eq(h.mask, c->bytes + c->ret - 4, 4);
  } else {
    ck_assert_int_eq(r, len >= c->err_at ? c->ret : WEBSOCK__PROTO_NEED_MORE);
  }
}

START_TEST(test_parse_table) {
  const hdr_case *c = &hdr_cases[_i];
  test_guard g;
  test_guard_init(&g, 64);
  /* Every prefix (including the whole), at the end of a guard page and
   * followed by trailing bytes that must not change the result. */
  for (size_t n = 0; n <= c->len; n++) {
    uint8_t *p = test_guard_place(&g, c->bytes, n);
    check_parse(c, p, n);
    uint8_t more[WEBSOCK__FRAME_HEADER_MAX + 8];
    memcpy(more, c->bytes, n);
    memset(more + n, 0x5A, sizeof more - n);
    if (n == c->len)
      check_parse(c, more, sizeof more);
  }
  test_guard_free(&g);
}
END_TEST

static const uint64_t lengths[] = {
    0,     1,     124,        125,        126,        127,
    65535, 65536, 0xFFFFFFFF, 1ull << 32, 1ull << 62, 0x7FFFFFFFFFFFFFFFull};

START_TEST(test_encode_roundtrip) {
  static const uint8_t key[4] = {0xDE, 0xAD, 0xBE, 0xEF};
  test_guard g;
  test_guard_init(&g, 64);
  for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
    for (int masked = 0; masked < 2; masked++) {
      for (int op = 0; op < 16; op++) {
        if (op >= 8 && lengths[i] > 125)
          continue;
        uint8_t out[WEBSOCK__FRAME_HEADER_MAX];
        int fin = op >= 8 || (op & 1);
        size_t n = websock__frame_encode_header(out, fin, op, lengths[i],
                                                masked ? key : NULL);
        size_t want = 2u + (lengths[i] > 125 ? 2u : 0u) +
                      (lengths[i] > 65535 ? 6u : 0u) + (masked ? 4u : 0u);
        ck_assert_uint_eq(n, want);
        websock__frame_header h;
        uint8_t *p = test_guard_place(&g, out, n);
        ck_assert_int_eq(websock__frame_parse_header(p, n, &h), (ssize_t)n);
        ck_assert_uint_eq(h.payload_len, lengths[i]);
        ck_assert_uint_eq(h.opcode, (unsigned)op);
        ck_assert_uint_eq(h.fin, (unsigned)fin);
        ck_assert_uint_eq(h.masked, (unsigned)masked);
        ck_assert_uint_eq(h.rsv, 0);
        if (masked)
          ck_assert_mem_eq(h.mask, key, 4);
        for (size_t k = 0; k < n; k++) {
          p = test_guard_place(&g, out, k);
          ck_assert_int_eq(websock__frame_parse_header(p, k, &h),
                           WEBSOCK__PROTO_NEED_MORE);
        }
      }
    }
  }
  test_guard_free(&g);
}
END_TEST

START_TEST(test_encode_bytes) {
  uint8_t out[WEBSOCK__FRAME_HEADER_MAX];
  static const uint8_t k[4] = {1, 2, 3, 4};
  ck_assert_uint_eq(websock__frame_encode_header(out, 1, 1, 5, NULL), 2);
  ck_assert_mem_eq(out, "\x81\x05", 2);
  ck_assert_uint_eq(websock__frame_encode_header(out, 0, 2, 126, NULL), 4);
  ck_assert_mem_eq(out, "\x02\x7e\x00\x7e", 4);
  ck_assert_uint_eq(websock__frame_encode_header(out, 1, 8, 2, k), 6);
  ck_assert_mem_eq(out, "\x88\x82\x01\x02\x03\x04", 6);
  ck_assert_uint_eq(websock__frame_encode_header(out, 1, 2, 65536, NULL), 10);
  ck_assert_mem_eq(out, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}
END_TEST

static void mask_ref(uint8_t *d, size_t n, const uint8_t key[4], uint64_t off) {
  for (size_t i = 0; i < n; i++)
    d[i] ^= key[(off + i) % 4];
}

START_TEST(test_mask_offsets) {
  static const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
  uint8_t src[200], a[208], b[200];
  for (size_t i = 0; i < sizeof src; i++)
    src[i] = (uint8_t)(i * 7 + 3);
  for (size_t align = 0; align < 8; align++) {
    for (uint64_t off = 0; off < 12; off++) {
      for (size_t len = 0; len <= 70; len++) {
        memcpy(a + align, src, len);
        memcpy(b, src, len);
        websock__mask(a + align, len, key, off);
        mask_ref(b, len, key, off);
        ck_assert_mem_eq(a + align, b, len);
      }
    }
  }
  /* a huge offset works modulo 4 */
  memcpy(a, src, 50);
  memcpy(b, src, 50);
  websock__mask(a, 50, key, 0xFFFFFFFFFFFFFFF1ull);
  mask_ref(b, 50, key, 1);
  ck_assert_mem_eq(a, b, 50);
}
END_TEST

/* Masking a payload in random pieces equals masking it whole; masking
 * twice restores it. */
START_TEST(test_mask_pieces) {
  static const uint8_t key[4] = {0x01, 0x80, 0xFF, 0x5A};
  uint8_t src[1000], whole[1000], parts[1000];
  test_rng rng;
  test_rng_seed(&rng, 7);
  for (size_t i = 0; i < sizeof src; i++)
    src[i] = (uint8_t)test_rng_next(&rng);
  memcpy(whole, src, sizeof src);
  websock__mask(whole, sizeof whole, key, 0);
  for (int it = 0; it < 500; it++) {
    size_t cuts[1000];
    size_t nc = test_random_cuts(&rng, sizeof src, cuts, 1000);
    memcpy(parts, src, sizeof src);
    size_t pos = 0;
    for (size_t i = 0; i <= nc; i++) {
      size_t end = i < nc ? cuts[i] : sizeof src;
      websock__mask(parts + pos, end - pos, key, pos);
      pos = end;
    }
    ck_assert_mem_eq(parts, whole, sizeof src);
  }
  websock__mask(whole, sizeof whole, key, 0);
  ck_assert_mem_eq(whole, src, sizeof src);
}
END_TEST

static Suite *frame_suite(void) {
  Suite *s = suite_create("frame");
  TCase *tc = tcase_create("core");
  tcase_add_loop_test(tc, test_parse_table, 0,
                      (int)(sizeof hdr_cases / sizeof hdr_cases[0]));
  tcase_add_test(tc, test_encode_roundtrip);
  tcase_add_test(tc, test_encode_bytes);
  tcase_add_test(tc, test_mask_offsets);
  tcase_add_test(tc, test_mask_pieces);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(frame_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
