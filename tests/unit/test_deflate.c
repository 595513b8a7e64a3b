/* Unit tests for the permessage-deflate streams (core/proto/deflate.c):
 * round trips over sizes, windows and memLevels, context takeover, the
 * RFC 7692 §7.2.3 examples, interop with plain zlib both ways, final
 * blocks, the decompression bomb bound, corrupt data, pieces, the block
 * cache's reuse and failing allocations. Prints the zlib memory per stream
 * that the README quotes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "proto/deflate.h"
#include "split_helpers.h"
#include "util/alloc.h"

/* ---- helpers ---- */

static uint8_t *fill_random(size_t n, uint64_t seed) {
  uint8_t *p = malloc(n ? n : 1);
  ck_assert_ptr_nonnull(p);
  test_rng r;
  test_rng_seed(&r, seed);
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)test_rng_next(&r);
  return p;
}

/* JSON-like text: compresses well, as chat traffic does. */
static uint8_t *fill_text(size_t n, uint64_t seed) {
  static const char *words[] = {
      "{\"user\":", "\"alice\"", ",\"msg\":", "\"hello\"",
      " world",     "}",         "\n",        "42"};
  uint8_t *p = malloc(n ? n : 1);
  ck_assert_ptr_nonnull(p);
  test_rng r;
  test_rng_seed(&r, seed);
  size_t i = 0;
  while (i < n) {
    const char *w = words[test_rng_next(&r) % 8];
    for (; *w && i < n; w++)
      p[i++] = (uint8_t)*w;
  }
  return p;
}

/* Compresses |in| with plain zlib the way RFC 7692 §7.2.1 says: raw
 * DEFLATE, sync flush, tail removed (or with |finish|: one final block). */
static void zlib_compress(const uint8_t *in, size_t n, int bits, int finish,
                          websock__buf *out) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  ck_assert_int_eq(
      deflateInit2(&zs, 6, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  uLong bound = deflateBound(&zs, (uLong)n) + 16;
  out->len = 0;
  ck_assert_int_ge(websock__buf_reserve(out, (size_t)bound), 0);
  zs.next_in = (Bytef *)in;
  zs.avail_in = (uInt)n;
  zs.next_out = out->data;
  zs.avail_out = (uInt)out->cap;
  int zr = deflate(&zs, finish ? Z_FINISH : Z_SYNC_FLUSH);
  ck_assert_int_eq(zr, finish ? Z_STREAM_END : Z_OK);
  out->len = out->cap - zs.avail_out;
  if (!finish) {
    ck_assert_uint_ge(out->len, 4);
    ck_assert_mem_eq(out->data + out->len - 4, "\x00\x00\xff\xff", 4);
    out->len -= 4;
  }
  deflateEnd(&zs);
}

/* Inflates |in| plus the tail with plain zlib. */
static void zlib_inflate(const uint8_t *in, size_t n, size_t want,
                         websock__buf *out) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  ck_assert_int_eq(inflateInit2(&zs, -15), Z_OK);
  uint8_t *buf = malloc(n + 4);
  memcpy(buf, in, n);
  memcpy(buf + n, "\x00\x00\xff\xff", 4);
  out->len = 0;
  ck_assert_int_ge(websock__buf_reserve(out, want + 1), 0);
  zs.next_in = buf;
  zs.avail_in = (uInt)(n + 4);
  zs.next_out = out->data;
  zs.avail_out = (uInt)out->cap;
  int zr = inflate(&zs, Z_SYNC_FLUSH);
  ck_assert(zr == Z_OK || zr == Z_BUF_ERROR);
  ck_assert_uint_eq(zs.avail_in, 0);
  out->len = out->cap - zs.avail_out;
  inflateEnd(&zs);
  free(buf);
}

/* ---- round trips ---- */

static const size_t rt_sizes[] = {0, 1, 100, 65536, 1 << 20};

START_TEST(test_round_trip) {
  size_t n = rt_sizes[_i];
  websock__zcache zc;
  websock__zcache_init(&zc);
  for (int kind = 0; kind < 2; kind++) {
    /* the largest size is random (incompressible), the others text */
    uint8_t *msg = kind ? fill_random(n, n + 7) : fill_text(n, n + 3);
    static const int bits[] = {9, 12, 15};
    static const int levels[] = {1, 8};
    for (int b = 0; b < 3; b++) {
      for (int m = 0; m < 2; m++) {
        for (int keep = 0; keep < 2; keep++) {
          websock__deflater d;
          websock__inflater inf;
          ck_assert_int_eq(
              websock__deflater_init(&d, &zc, bits[b], levels[m], -1), 0);
          ck_assert_int_eq(websock__inflater_init(&inf, &zc, bits[b]), 0);
          websock__buf z = {0}, out = {0};
          for (int rep = 0; rep < 3; rep++) {
            z.len = out.len = 0;
            ssize_t zn = websock__deflate_message(&d, msg, n, keep, &z);
            ck_assert_int_ge(zn, 1); /* even empty is one byte: 0x00 */
            ck_assert_uint_eq((size_t)zn, z.len);
            ssize_t on =
                websock__inflate_message(&inf, z.data, z.len, keep, n, &out);
            ck_assert_int_eq(on, (ssize_t)n);
            if (n)
              ck_assert_int_eq(memcmp(out.data, msg, n), 0);
          }
          websock__buf_free(&z);
          websock__buf_free(&out);
          websock__deflater_free(&d);
          websock__inflater_free(&inf);
        }
      }
    }
    free(msg);
  }
  ck_assert_uint_eq(zc.live_bytes, 0);
  websock__zcache_free(&zc);
  ck_assert_uint_eq(zc.cached_bytes, 0);
  ck_assert_int_eq(zc.heap_allocs, zc.heap_frees);
}
END_TEST

/* RFC 7692 §7.2.3.1-2: "Hello", then "Hello" again with the window shared.
 * zlib produces exactly the RFC's bytes. */
START_TEST(test_rfc_examples) {
  websock__deflater d;
  websock__inflater inf;
  ck_assert_int_eq(websock__deflater_init(&d, NULL, 15, 8, -1), 0);
  ck_assert_int_eq(websock__inflater_init(&inf, NULL, 15), 0);
  websock__buf z = {0}, out = {0};
  const uint8_t *hello = (const uint8_t *)"Hello";
  ck_assert_int_eq(websock__deflate_message(&d, hello, 5, 1, &z), 7);
  ck_assert_mem_eq(z.data, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7);
  ck_assert_int_eq(websock__inflate_message(&inf, z.data, 7, 1, 100, &out), 5);
  z.len = 0;
  ck_assert_int_eq(websock__deflate_message(&d, hello, 5, 1, &z), 5);
  ck_assert_mem_eq(z.data, "\xf2\x00\x11\x00\x00", 5);
  ck_assert_int_eq(websock__inflate_message(&inf, z.data, 5, 1, 100, &out), 5);
  ck_assert_mem_eq(out.data, "HelloHello", 10);

  /* §7.2.3.3 no compression (a stored block), §7.2.3.4 a final block
   * followed by a spare byte, §7.2.3.5 two blocks in one message, §7.2.3.6
   * the empty message, each to a fresh stream. */
  static const struct {
    const char *z;
    size_t zlen;
    const char *want;
  } ex[] = {
      {"\x00\x05\x00\xfa\xff"
       "Hello\x00",
       11, "Hello"},
      {"\xf3\x48\xcd\xc9\xc9\x07\x00", 7, "Hello"},
      {"\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 8, "Hello"},
      {"\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00", 13, "Hello"},
      {"\x00", 1, ""},
      {"", 0, ""},
  };
  for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
    out.len = 0;
    ck_assert_int_eq(websock__inflate_message(&inf, (const uint8_t *)ex[i].z,
                                              ex[i].zlen, 0, 100, &out),
                     (ssize_t)strlen(ex[i].want));
    ck_assert_mem_eq(out.data, ex[i].want, strlen(ex[i].want));
  }
  /* The empty message compresses to the single byte 0x00. */
  websock__deflater_release(&d);
  z.len = 0;
  ck_assert_int_eq(websock__deflate_message(&d, NULL, 0, 0, &z), 1);
  ck_assert_uint_eq(z.data[0], 0);
  websock__buf_free(&z);
  websock__buf_free(&out);
  websock__deflater_free(&d);
  websock__inflater_free(&inf);
}
END_TEST

/* With takeover a repeated message costs a few bytes; without it every
 * message costs the same and stands alone. */
START_TEST(test_context_takeover) {
  uint8_t *msg = fill_text(2000, 11);
  for (int keep = 0; keep < 2; keep++) {
    websock__deflater d;
    websock__inflater inf;
    websock__deflater_init(&d, NULL, 15, 8, -1);
    websock__inflater_init(&inf, NULL, 15);
    websock__buf z1 = {0}, z2 = {0}, out = {0};
    ssize_t n1 = websock__deflate_message(&d, msg, 2000, keep, &z1);
    ssize_t n2 = websock__deflate_message(&d, msg, 2000, keep, &z2);
    ck_assert_int_gt(n1, 0);
    if (keep) {
      ck_assert_int_lt(n2 * 10, n1);
    } else {
      ck_assert_int_eq(n1, n2);
      ck_assert_mem_eq(z1.data, z2.data, (size_t)n1);
    }
    ck_assert_int_eq(
        websock__inflate_message(&inf, z1.data, z1.len, keep, 2000, &out),
        2000);
    out.len = 0;
    ck_assert_int_eq(
        websock__inflate_message(&inf, z2.data, z2.len, keep, 2000, &out),
        2000);
    ck_assert_int_eq(memcmp(out.data, msg, 2000), 0);
    if (keep) {
      /* The second message needs the first one's window. */
      websock__inflater fresh;
      websock__inflater_init(&fresh, NULL, 15);
      out.len = 0;
      ssize_t r =
          websock__inflate_message(&fresh, z2.data, z2.len, 0, 2000, &out);
      ck_assert_int_eq(r, WEBSOCK__INFLATE_BAD);
      websock__inflater_free(&fresh);
    }
    websock__buf_free(&z1);
    websock__buf_free(&z2);
    websock__buf_free(&out);
    websock__deflater_free(&d);
    websock__inflater_free(&inf);
  }
  free(msg);
}
END_TEST

/* Plain zlib (as every peer uses) into our inflater, and ours into plain
 * zlib, with and without context, at several windows. */
START_TEST(test_interop) {
  static const int bits[] = {9, 10, 15};
  for (int b = 0; b < 3; b++) {
    for (int kind = 0; kind < 2; kind++) {
      size_t n = 70000;
      uint8_t *msg = kind ? fill_random(n, 5) : fill_text(n, 6);
      websock__buf z = {0}, out = {0};
      zlib_compress(msg, n, bits[b], 0, &z);
      websock__inflater inf;
      websock__inflater_init(&inf, NULL, bits[b]);
      ck_assert_int_eq(
          websock__inflate_message(&inf, z.data, z.len, 0, n, &out),
          (ssize_t)n);
      ck_assert_int_eq(memcmp(out.data, msg, n), 0);
      websock__inflater_free(&inf);

      websock__deflater d;
      websock__deflater_init(&d, NULL, bits[b], 8, -1);
      z.len = 0;
      ck_assert_int_gt(websock__deflate_message(&d, msg, n, 0, &z), 0);
      zlib_inflate(z.data, z.len, n, &out);
      ck_assert_uint_eq(out.len, n);
      ck_assert_int_eq(memcmp(out.data, msg, n), 0);
      websock__deflater_free(&d);
      websock__buf_free(&z);
      websock__buf_free(&out);
      free(msg);
    }
  }
  /* Context across messages, zlib sending: one stream, two sync flushes. */
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  websock__inflater inf;
  websock__inflater_init(&inf, NULL, 15);
  websock__buf out = {0};
  uint8_t zbuf[512];
  for (int m = 0; m < 3; m++) {
    const char *text = "the same sentence, again and again and again";
    zs.next_in = (Bytef *)text;
    zs.avail_in = (uInt)strlen(text);
    zs.next_out = zbuf;
    zs.avail_out = sizeof zbuf;
    ck_assert_int_eq(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
    size_t zn = sizeof zbuf - zs.avail_out - 4;
    out.len = 0;
    ck_assert_int_eq(websock__inflate_message(&inf, zbuf, zn, 1, 100, &out),
                     (ssize_t)strlen(text));
    ck_assert_mem_eq(out.data, text, strlen(text));
  }
  deflateEnd(&zs);
  websock__inflater_free(&inf);
  websock__buf_free(&out);
}
END_TEST

/* A peer that ends each message with a final block (Z_FINISH) and then
 * starts over with the previous message as its dictionary: the window must
 * survive the final block when context is kept. */
START_TEST(test_final_block) {
  const char *m1 = "a message that the next one refers back to, word for word";
  websock__buf z = {0}, out = {0};
  zlib_compress((const uint8_t *)m1, strlen(m1), 15, 1, &z);
  websock__inflater inf;
  websock__inflater_init(&inf, NULL, 15);
  ck_assert_int_eq(websock__inflate_message(&inf, z.data, z.len, 1, 100, &out),
                   (ssize_t)strlen(m1));
  ck_assert_mem_eq(out.data, m1, strlen(m1));

  z_stream zs;
  memset(&zs, 0, sizeof zs);
  deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  deflateSetDictionary(&zs, (const Bytef *)m1, (uInt)strlen(m1));
  uint8_t zbuf[256];
  zs.next_in = (Bytef *)m1;
  zs.avail_in = (uInt)strlen(m1);
  zs.next_out = zbuf;
  zs.avail_out = sizeof zbuf;
  ck_assert_int_eq(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
  size_t zn = sizeof zbuf - zs.avail_out - 4;
  ck_assert_uint_lt(zn, 20); /* it is all back references */
  deflateEnd(&zs);
  out.len = 0;
  ck_assert_int_eq(websock__inflate_message(&inf, zbuf, zn, 1, 100, &out),
                   (ssize_t)strlen(m1));
  ck_assert_mem_eq(out.data, m1, strlen(m1));

  /* Bytes after the final block are ignored, in any piece. */
  zlib_compress((const uint8_t *)"tail", 4, 15, 1, &z);
  ck_assert_int_ge(websock__buf_append(&z, "\x12\x34garbage", 9), 0);
  out.len = 0;
  ck_assert_int_eq(
      websock__inflate_chunk(&inf, z.data, z.len - 3, 0, 0, 100, &out), 4);
  ck_assert_int_eq(
      websock__inflate_chunk(&inf, z.data + z.len - 3, 3, 1, 0, 100, &out), 0);
  ck_assert_mem_eq(out.data, "tail", 4);
  websock__inflater_free(&inf);
  websock__buf_free(&z);
  websock__buf_free(&out);
}
END_TEST

/* ---- bombs and bad data ---- */

/* What util/buf.c may round a block up to: its small-buffer floor, a
 * page. The inflater adds nothing of its own to that. */
#define BUF_SLACK 4096

/* Zeros compress about 1000:1. The output stops at the limit and the
 * buffer never grows past it, whatever the input would inflate to. */
START_TEST(test_bomb) {
  size_t n = (size_t)16 << 20; /* 16 MiB of zeros -> about 16 KiB */
  uint8_t *zeros = calloc(n, 1);
  ck_assert_ptr_nonnull(zeros);
  websock__deflater d;
  websock__deflater_init(&d, NULL, 15, 9, 9);
  websock__buf z = {0};
  ck_assert_int_gt(websock__deflate_message(&d, zeros, n, 0, &z), 0);
  ck_assert_uint_lt(z.len, n / 500);
  /* The first 1 KiB alone inflates to about 1 MiB. */
  size_t kib = 1024;
  websock__zcache zc;
  websock__zcache_init(&zc);
  static const size_t limits[] = {0, 1, 4096, 65536, 1 << 20};
  for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
    size_t limit = limits[li];
    websock__inflater inf;
    websock__inflater_init(&inf, &zc, 15);
    for (int whole = 0; whole < 2; whole++) {
      if (!whole && limit > 65536)
        continue; /* 1 KiB may inflate to a little under 1 MiB */
      websock__buf out = {0};
      ssize_t r = websock__inflate_message(&inf, z.data, whole ? z.len : kib, 0,
                                           limit, &out);
      ck_assert_int_eq(r, WEBSOCK__INFLATE_TOO_BIG);
      ck_assert_uint_le(out.cap, limit + BUF_SLACK);
      ck_assert_uint_le(out.len, limit);
      /* the stream is usable again: a small message fits */
      websock__buf z2 = {0};
      websock__deflate_message(&d, (const uint8_t *)"ok", 2, 0, &z2);
      out.len = 0;
      ck_assert_int_eq(
          websock__inflate_message(&inf, z2.data, z2.len, 0, 2, &out), 2);
      websock__buf_free(&z2);
      websock__buf_free(&out);
    }
    /* only the inflater's own state and window: no big buffer anywhere */
    ck_assert_uint_lt(zc.peak_live_bytes, 48 * 1024);
    websock__inflater_free(&inf);
  }
  /* At exactly the inflated size it fits; one byte less does not. */
  websock__inflater inf;
  websock__inflater_init(&inf, NULL, 15);
  websock__buf out = {0};
  ck_assert_int_eq(websock__inflate_message(&inf, z.data, z.len, 0, n, &out),
                   (ssize_t)n);
  ck_assert_uint_le(out.cap, n + BUF_SLACK);
  out.len = 0;
  ck_assert_int_eq(
      websock__inflate_message(&inf, z.data, z.len, 0, n - 1, &out),
      WEBSOCK__INFLATE_TOO_BIG);
  ck_assert_uint_eq(out.len, n - 1);
  /* Fed in pieces the limit counts the whole message, not each piece. */
  websock__buf_free(&out);
  size_t got = 0;
  ssize_t r = 0;
  for (size_t pos = 0; pos < z.len && r >= 0; pos += 100) {
    size_t piece = z.len - pos < 100 ? z.len - pos : 100;
    r = websock__inflate_chunk(&inf, z.data + pos, piece, pos + piece == z.len,
                               0, 262144, &out);
    if (r > 0)
      got += (size_t)r;
    out.len = 0; /* the caller consumed it */
  }
  ck_assert_int_eq(r, WEBSOCK__INFLATE_TOO_BIG);
  ck_assert_uint_le(got, 262144);
  ck_assert_uint_le(out.cap, 262144 + BUF_SLACK);
  websock__buf_free(&out);
  websock__inflater_free(&inf);
  websock__deflater_free(&d);
  websock__zcache_free(&zc);
  websock__buf_free(&z);
  free(zeros);
}
END_TEST

START_TEST(test_corrupt) {
  websock__inflater inf;
  websock__inflater_init(&inf, NULL, 15);
  websock__buf out = {0};
  /* reserved block type 11 */
  ck_assert_int_eq(
      websock__inflate_message(&inf, (const uint8_t *)"\x07", 1, 0, 100, &out),
      WEBSOCK__INFLATE_BAD);
  /* stored block whose NLEN is not ~LEN */
  ck_assert_int_eq(
      websock__inflate_message(&inf,
                               (const uint8_t *)"\x00\x05\x00\xfb\xff"
                                                "Hello\x00",
                               11, 0, 100, &out),
      WEBSOCK__INFLATE_BAD);
  /* a distance before the start of the window: a message made with a
   * dictionary the inflater never saw */
  {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    const char *dict = "some words that the message repeats";
    deflateSetDictionary(&zs, (const Bytef *)dict, (uInt)strlen(dict));
    uint8_t zbuf[128];
    zs.next_in = (Bytef *)dict;
    zs.avail_in = (uInt)strlen(dict);
    zs.next_out = zbuf;
    zs.avail_out = sizeof zbuf;
    ck_assert_int_eq(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
    size_t zn = sizeof zbuf - zs.avail_out - 4;
    deflateEnd(&zs);
    ck_assert_int_eq(websock__inflate_message(&inf, zbuf, zn, 0, 100, &out),
                     WEBSOCK__INFLATE_BAD);
  }
  /* a valid message cut short, at every length */
  websock__deflater d;
  websock__deflater_init(&d, NULL, 15, 8, -1);
  uint8_t *msg = fill_text(3000, 9);
  websock__buf z = {0};
  websock__deflate_message(&d, msg, 3000, 0, &z);
  for (size_t cut = 1; cut < z.len; cut++) {
    out.len = 0;
    /* (the tail read as Huffman codes may also run past the limit) */
    ssize_t r = websock__inflate_message(&inf, z.data, cut, 0, 3000, &out);
    if (r != WEBSOCK__INFLATE_BAD && r != WEBSOCK__INFLATE_TOO_BIG)
      ck_abort_msg("cut %zu of %zu: %zd", cut, z.len, r);
  }
  out.len = 0;
  ck_assert_int_eq(websock__inflate_message(&inf, z.data, z.len, 0, 3000, &out),
                   3000);
  /* the tail sent by the peer as well (not stripped): cut short too */
  ck_assert_int_ge(websock__buf_append(&z, "\x00\x00\xff\xff", 4), 0);
  out.len = 0;
  ck_assert_int_eq(websock__inflate_message(&inf, z.data, z.len, 0, 3000, &out),
                   WEBSOCK__INFLATE_BAD);
  /* random bytes: an error or some output, never a crash or an overrun */
  test_rng rng;
  test_rng_seed(&rng, 77);
  for (int it = 0; it < 2000; it++) {
    uint8_t junk[64];
    size_t n = test_rng_range(&rng, 1, sizeof junk);
    for (size_t i = 0; i < n; i++)
      junk[i] = (uint8_t)test_rng_next(&rng);
    out.len = 0;
    ssize_t r = websock__inflate_message(&inf, junk, n, 0, 500, &out);
    TEST_REQUIRE(r == WEBSOCK__INFLATE_BAD || r == WEBSOCK__INFLATE_TOO_BIG ||
                 (r >= 0 && r <= 500));
    TEST_REQUIRE(out.len <= 500);
  }
  websock__buf_free(&z);
  websock__buf_free(&out);
  websock__deflater_free(&d);
  websock__inflater_free(&inf);
  free(msg);
}
END_TEST

/* A message split into random pieces inflates to the same bytes. */
START_TEST(test_pieces) {
  size_t n = 50000;
  uint8_t *msg = fill_text(n, 21);
  websock__deflater d;
  websock__deflater_init(&d, NULL, 12, 8, -1);
  websock__inflater inf;
  websock__inflater_init(&inf, NULL, 12);
  test_rng rng;
  test_rng_seed(&rng, 3);
  size_t *cuts = malloc(n * sizeof *cuts);
  websock__buf z = {0}, out = {0};
  for (int it = 0; it < 30; it++) {
    z.len = out.len = 0;
    websock__deflate_message(&d, msg, n, 1, &z);
    size_t nc = it == 0 ? z.len - 1 : test_random_cuts(&rng, z.len, cuts, n);
    if (it == 0)
      for (size_t i = 0; i < nc; i++)
        cuts[i] = i + 1; /* byte by byte */
    size_t pos = 0;
    for (size_t i = 0; i <= nc; i++) {
      size_t end = i < nc ? cuts[i] : z.len;
      ssize_t r = websock__inflate_chunk(&inf, z.data + pos, end - pos, i == nc,
                                         1, n, &out);
      TEST_REQUIRE(r >= 0);
      pos = end;
    }
    ck_assert_uint_eq(out.len, n);
    ck_assert_int_eq(memcmp(out.data, msg, n), 0);
  }
  free(cuts);
  websock__buf_free(&z);
  websock__buf_free(&out);
  websock__deflater_free(&d);
  websock__inflater_free(&inf);
  free(msg);
}
END_TEST

/* ---- memory ---- */

/* After a warm-up, connections coming and going and messages flowing
 * allocate nothing: zlib's blocks come back from the cache. */
START_TEST(test_zcache_reuse) {
  websock__zcache zc;
  websock__zcache_init(&zc);
  uint8_t *msg = fill_text(4000, 1);
  websock__buf z = {0}, out = {0};
  ck_assert_int_ge(websock__buf_reserve(&z, 8192), 0);
  ck_assert_int_ge(websock__buf_reserve(&out, 8192), 0);
  for (int round = 0; round < 101; round++) {
    if (round == 1) {
      zc.heap_allocs = 0;
      zc.hits = 0;
    }
    long before = websock__alloc_count();
    websock__deflater d[4];
    websock__inflater inf[4];
    for (int i = 0; i < 4; i++) {
      websock__deflater_init(&d[i], &zc, 15, 8, -1);
      websock__inflater_init(&inf[i], &zc, 15);
    }
    for (int m = 0; m < 5; m++) {
      for (int i = 0; i < 4; i++) {
        z.len = out.len = 0;
        TEST_REQUIRE(websock__deflate_message(&d[i], msg, 4000, 1, &z) > 0);
        TEST_REQUIRE(websock__inflate_message(&inf[i], z.data, z.len, 1, 4000,
                                              &out) == 4000);
        /* a final block restarts with the window kept: still from the
         * cache */
        z.len = out.len = 0;
        TEST_REQUIRE(
            websock__buf_append(&z, "\xf3\x48\xcd\xc9\xc9\x07\x00", 7) == 0);
        TEST_REQUIRE(websock__inflate_message(&inf[i], z.data, z.len, 1, 4000,
                                              &out) == 5);
      }
    }
    for (int i = 0; i < 4; i++) {
      websock__deflater_free(&d[i]);
      websock__inflater_free(&inf[i]);
    }
    if (round > 0)
      TEST_REQUIRE(websock__alloc_count() == before);
  }
  ck_assert_int_eq(zc.heap_allocs, 0);
  ck_assert_int_gt(zc.hits, 100 * 4 * 5);
  ck_assert_uint_eq(zc.live_bytes, 0);
  /* Trimming gives memory back; the bounds keep the cache small. */
  size_t cached = zc.cached_bytes;
  ck_assert_uint_gt(cached, 0);
  websock__zcache_trim(&zc, cached / 2);
  ck_assert_uint_le(zc.cached_bytes, cached / 2);
  websock__zcache_free(&zc);
  ck_assert_uint_eq(zc.cached_bytes, 0);
  websock__buf_free(&z);
  websock__buf_free(&out);
  free(msg);
}
END_TEST

START_TEST(test_zcache_bounds) {
  websock__zcache zc;
  websock__zcache_init(&zc);
  zc.max_blocks_per_size = 2;
  void *b[5];
  for (int i = 0; i < 5; i++)
    b[i] = websock__zcache_alloc(&zc, 100, 10);
  ck_assert_int_eq(zc.heap_allocs, 5);
  ck_assert_uint_eq(zc.live_bytes, 5000);
  for (int i = 0; i < 5; i++)
    websock__zcache_release(&zc, b[i]);
  ck_assert_uint_eq(zc.cached_bytes, 2000); /* two kept, three freed */
  ck_assert_int_eq(zc.heap_frees, 3);
  zc.max_cached_bytes = 2500;
  void *big = websock__zcache_alloc(&zc, 1, 1000);
  websock__zcache_release(&zc, big); /* over the byte bound: freed */
  ck_assert_uint_eq(zc.cached_bytes, 2000);
  /* Alignment for any type. */
  void *x = websock__zcache_alloc(&zc, 1, 24);
  ck_assert_uint_eq((uintptr_t)x % _Alignof(max_align_t), 0);
  websock__zcache_release(&zc, x);
  websock__zcache_free(&zc);
  ck_assert_int_eq(zc.heap_allocs, zc.heap_frees);
}
END_TEST

/* zlib's memory per stream, from the cache's counters: the figures the
 * README's memory table quotes. The inflater's window is allocated by its
 * first message, so both are measured after one. */
START_TEST(test_memory_figures) {
  static const int bits[] = {9, 12, 15};
  static const int levels[] = {1, 8};
  for (int b = 0; b < 3; b++) {
    for (int m = 0; m < 2; m++) {
      websock__zcache zc;
      websock__zcache_init(&zc);
      websock__deflater d;
      websock__deflater_init(&d, &zc, bits[b], levels[m], -1);
      websock__buf z = {0};
      websock__deflate_message(&d, (const uint8_t *)"Hello", 5, 1, &z);
      printf("deflater window_bits %2d memLevel %d: %zu bytes\n", bits[b],
             levels[m], zc.live_bytes);
      /* at least the window (twice its size), prev and hash tables */
      ck_assert_uint_gt(zc.live_bytes, (size_t)4 << bits[b]);
      websock__deflater_free(&d);
      websock__buf_free(&z);
      websock__zcache_free(&zc);
    }
  }
  for (int b = 0; b < 3; b++) {
    websock__zcache zc;
    websock__zcache_init(&zc);
    websock__inflater inf;
    websock__inflater_init(&inf, &zc, bits[b]);
    websock__buf out = {0};
    size_t idle = 0;
    websock__inflate_message(
        &inf, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7, 1, 100, &out);
    idle = zc.live_bytes;
    printf("inflater window_bits %2d: %zu bytes\n", bits[b], idle);
    ck_assert_uint_ge(idle, (size_t)1 << bits[b]);
    websock__inflater_free(&inf);
    websock__buf_free(&out);
    websock__zcache_free(&zc);
  }
}
END_TEST

/* Every allocation failing in turn: an error code, no leak, no crash. */
START_TEST(test_failmalloc) {
  uint8_t *msg = fill_text(20000, 4);
  for (long fail = 1; fail < 40; fail++) {
    websock__zcache zc;
    websock__zcache_init(&zc);
    websock__deflater d;
    websock__inflater inf;
    websock__deflater_init(&d, &zc, 15, 8, -1);
    websock__inflater_init(&inf, &zc, 15);
    websock__buf z = {0}, out = {0};
    websock__alloc_fail_at(fail);
    ssize_t zn = websock__deflate_message(&d, msg, 20000, 1, &z);
    ssize_t on =
        zn > 0 ? websock__inflate_message(&inf, z.data, z.len, 1, 20000, &out)
               : WEBSOCK__Z_ERR_NOMEM;
    websock__alloc_fail_at(0);
    if (zn < 0)
      ck_assert_int_eq(zn, WEBSOCK__Z_ERR_NOMEM);
    if (on < 0)
      ck_assert_int_eq(on, WEBSOCK__Z_ERR_NOMEM);
    else
      ck_assert_int_eq(memcmp(out.data, msg, 20000), 0);
    /* the streams still work afterwards (without the old context) */
    websock__deflater_release(&d);
    z.len = out.len = 0;
    ck_assert_int_gt(websock__deflate_message(&d, msg, 100, 0, &z), 0);
    websock__inflater_release(&inf);
    ck_assert_int_eq(
        websock__inflate_message(&inf, z.data, z.len, 0, 20000, &out), 100);
    websock__deflater_free(&d);
    websock__inflater_free(&inf);
    websock__buf_free(&z);
    websock__buf_free(&out);
    websock__zcache_free(&zc);
  }
  free(msg);
}
END_TEST

START_TEST(test_params) {
  websock__deflater d;
  websock__inflater inf;
  ck_assert_int_eq(websock__deflater_init(&d, NULL, 8, 8, -1),
                   WEBSOCK__Z_ERR_PARAM);
  ck_assert_int_eq(websock__deflater_init(&d, NULL, 16, 8, -1),
                   WEBSOCK__Z_ERR_PARAM);
  ck_assert_int_eq(websock__deflater_init(&d, NULL, 15, 0, -1),
                   WEBSOCK__Z_ERR_PARAM);
  ck_assert_int_eq(websock__deflater_init(&d, NULL, 15, 10, -1),
                   WEBSOCK__Z_ERR_PARAM);
  ck_assert_int_eq(websock__deflater_init(&d, NULL, 15, 8, 10),
                   WEBSOCK__Z_ERR_PARAM);
  ck_assert_int_eq(websock__deflater_init(&d, NULL, 15, 8, -2),
                   WEBSOCK__Z_ERR_PARAM);
  ck_assert_int_eq(websock__deflater_init(&d, NULL, 9, 1, 0), 0);
  websock__deflater_free(&d);
  ck_assert_int_eq(websock__inflater_init(&inf, NULL, 7), WEBSOCK__Z_ERR_PARAM);
  ck_assert_int_eq(websock__inflater_init(&inf, NULL, 16),
                   WEBSOCK__Z_ERR_PARAM);
  /* 8 is read with 9 bits: data made with a 512-byte window inflates */
  ck_assert_int_eq(websock__inflater_init(&inf, NULL, 8), 0);
  ck_assert_int_eq(inf.window_bits, 9);
  uint8_t *msg = fill_random(2000, 8);
  for (size_t i = 512; i < 2000; i++)
    msg[i] = msg[i - 500]; /* distances of 500 */
  websock__buf z = {0}, out = {0};
  zlib_compress(msg, 2000, 9, 0, &z);
  ck_assert_int_eq(websock__inflate_message(&inf, z.data, z.len, 0, 2000, &out),
                   2000);
  ck_assert_int_eq(memcmp(out.data, msg, 2000), 0);
  websock__inflater_free(&inf);
  websock__buf_free(&z);
  websock__buf_free(&out);
  free(msg);
}
END_TEST

static Suite *deflate_suite(void) {
  Suite *s = suite_create("deflate");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 240);
  tcase_add_loop_test(tc, test_round_trip, 0,
                      (int)(sizeof rt_sizes / sizeof rt_sizes[0]));
  tcase_add_test(tc, test_rfc_examples);
  tcase_add_test(tc, test_context_takeover);
  tcase_add_test(tc, test_interop);
  tcase_add_test(tc, test_final_block);
  tcase_add_test(tc, test_bomb);
  tcase_add_test(tc, test_corrupt);
  tcase_add_test(tc, test_pieces);
  tcase_add_test(tc, test_zcache_reuse);
  tcase_add_test(tc, test_zcache_bounds);
  tcase_add_test(tc, test_memory_figures);
  tcase_add_test(tc, test_failmalloc);
  tcase_add_test(tc, test_params);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(deflate_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
