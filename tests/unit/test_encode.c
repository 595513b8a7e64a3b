/* Unit tests for whole-message encoding (core/proto/encode.c): every length
 * class, fragmentation by fragment_size, control frames never fragmented,
 * the returned byte count and the |grew| flag, and a decode round-trip
 * through the frame header parser, fed whole, byte by byte and in random
 * splits, each header also parsed at a guard page. */
#include <check.h>
#include <stdlib.h>

#include "proto/encode.h"
#include "proto/frame.h"
#include "split_helpers.h"
#include "util/alloc.h"

/* ---- decoding what the encoder wrote ---------------------------------- */

typedef struct dframe {
  int fin, opcode;
  size_t header_len;
  uint64_t len;
} dframe;

typedef struct decoded {
  dframe frames[4096];
  size_t nframes;
  uint8_t *payload; /* every frame's payload, concatenated */
  size_t plen;
} decoded;

/* Walks |buf| frame by frame with websock__frame_parse_header, checking
 * that each header, placed to end at a guard page, parses the same and
 * that every shorter prefix of it asks for more. */
static void decode_all(const uint8_t *buf, size_t len, decoded *d) {
  test_guard g;
  test_guard_init(&g, WEBSOCK__FRAME_HEADER_MAX);
  d->nframes = 0;
  d->plen = 0;
  d->payload = malloc(len ? len : 1);
  ck_assert_ptr_nonnull(d->payload);
  size_t off = 0;
  while (off < len) {
    websock__frame_header h;
    ssize_t r = websock__frame_parse_header(buf + off, len - off, &h);
    ck_assert_int_gt(r, 0);
    ck_assert_uint_eq(h.header_len, (size_t)r);
    ck_assert_uint_eq(h.masked, 0); /* server frames are never masked */
    ck_assert_uint_eq(h.rsv, 0);
    size_t hl = (size_t)r;
    for (size_t k = 0; k <= hl; k++) {
      websock__frame_header h2;
      uint8_t *p = test_guard_place(&g, buf + off, k);
      ssize_t r2 = websock__frame_parse_header(p, k, &h2);
      if (k < hl) {
        TEST_REQUIRE(r2 == WEBSOCK__PROTO_NEED_MORE);
      } else {
        TEST_REQUIRE(r2 == r);
        TEST_REQUIRE(h2.payload_len == h.payload_len);
        TEST_REQUIRE(h2.opcode == h.opcode && h2.fin == h.fin);
      }
    }
    ck_assert_uint_le(h.payload_len, len - off - hl);
    ck_assert_uint_lt(d->nframes, 4096);
    dframe *f = &d->frames[d->nframes++];
    f->fin = h.fin;
    f->opcode = h.opcode;
    f->header_len = hl;
    f->len = h.payload_len;
    memcpy(d->payload + d->plen, buf + off + hl, (size_t)h.payload_len);
    d->plen += (size_t)h.payload_len;
    off += hl + (size_t)h.payload_len;
  }
  ck_assert_uint_eq(off, len);
  test_guard_free(&g);
}

/* A streaming de-framer on top of the header parser: takes the bytes in
 * any split, keeps a partial header until the parser has all of it, and
 * returns the payloads of the frames, concatenated, and how many frames. */
typedef struct stream {
  uint8_t hbuf[WEBSOCK__FRAME_HEADER_MAX];
  size_t hlen;
  uint64_t left; /* payload bytes of the current frame still to come */
  int in_payload;
  size_t nframes, plen;
  uint8_t *payload;
  int last_fin;
} stream;

static void stream_feed(stream *s, const uint8_t *p, size_t n) {
  while (n) {
    if (s->in_payload) {
      size_t k = s->left < n ? (size_t)s->left : n;
      memcpy(s->payload + s->plen, p, k);
      s->plen += k;
      s->left -= k;
      p += k;
      n -= k;
      if (!s->left)
        s->in_payload = 0;
      continue;
    }
    s->hbuf[s->hlen++] = *p++;
    n--;
    websock__frame_header h;
    ssize_t r = websock__frame_parse_header(s->hbuf, s->hlen, &h);
    TEST_REQUIRE(r >= 0);
    TEST_REQUIRE(s->hlen <= WEBSOCK__FRAME_HEADER_MAX);
    if (r > 0) {
      TEST_REQUIRE((size_t)r == s->hlen);
      s->nframes++;
      s->last_fin = h.fin;
      s->hlen = 0;
      s->left = h.payload_len;
      s->in_payload = s->left > 0;
    }
  }
}

/* ---- length classes, unfragmented -------------------------------------- */

static const size_t len_classes[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};

static size_t header_len_for(size_t len) {
  return len <= 125 ? 2 : len <= 65535 ? 4 : 10;
}

static uint8_t *pattern(size_t len, uint64_t seed) {
  uint8_t *p = malloc(len ? len : 1);
  ck_assert_ptr_nonnull(p);
  test_rng rng;
  test_rng_seed(&rng, seed);
  for (size_t i = 0; i < len; i++)
    p[i] = (uint8_t)(0x20 + test_rng_next(&rng) % 0x5F); /* ASCII: text ok */
  return p;
}

START_TEST(test_length_classes) {
  static const int ops[] = {WEBSOCK__OP_TEXT, WEBSOCK__OP_BINARY};
  size_t len = len_classes[_i];
  uint8_t *data = pattern(len, len);
  for (size_t o = 0; o < 2; o++) {
    websock__buf out = {0};
    int grew = -7;
    long w = websock__encode_message(&out, ops[o], data, len, 0, &grew);
    size_t hl = header_len_for(len);
    ck_assert_int_eq(w, (long)(hl + len));
    ck_assert_uint_eq(out.len, hl + len);
    ck_assert_int_eq(grew, 1); /* the buffer was empty */
    ck_assert_uint_le((size_t)w, websock__encoded_size(len, 0));
    /* The exact bytes of the header: FIN + opcode, then the length in its
     * shortest form, no mask bit. */
    ck_assert_uint_eq(out.data[0], 0x80u | (unsigned)ops[o]);
    if (hl == 2) {
      ck_assert_uint_eq(out.data[1], len);
    } else if (hl == 4) {
      ck_assert_uint_eq(out.data[1], 126);
      ck_assert_uint_eq((size_t)out.data[2] << 8 | out.data[3], len);
    } else {
      ck_assert_uint_eq(out.data[1], 127);
      uint64_t v = 0;
      for (int k = 0; k < 8; k++)
        v = v << 8 | out.data[2 + k];
      ck_assert_uint_eq(v, len);
    }
    decoded *d = malloc(sizeof *d);
    decode_all(out.data, out.len, d);
    ck_assert_uint_eq(d->nframes, 1);
    ck_assert_int_eq(d->frames[0].fin, 1);
    ck_assert_int_eq(d->frames[0].opcode, ops[o]);
    ck_assert_uint_eq(d->frames[0].len, len);
    ck_assert_uint_eq(d->plen, len);
    ck_assert_int_eq(memcmp(d->payload, data, len), 0);
    free(d->payload);
    free(d);
    websock__buf_free(&out);
  }
  free(data);
}
END_TEST

/* ---- the returned count and the grew flag ------------------------------ */

START_TEST(test_count_and_grew) {
  websock__buf out = {0};
  int grew = -1;
  /* Empty buffer: allocates (the 256-byte floor). */
  ck_assert_int_eq(websock__encode_message(&out, 1, "abc", 3, 0, &grew), 5);
  ck_assert_int_eq(grew, 1);
  ck_assert_uint_eq(out.cap, 256);
  /* Room left: appends after what is there, no allocation; the count is
   * only what this call appended. */
  ck_assert_int_eq(websock__encode_message(&out, 2, "de", 2, 0, &grew), 4);
  ck_assert_int_eq(grew, 0);
  ck_assert_uint_eq(out.len, 9);
  ck_assert_mem_eq(out.data,
                   "\x81\x03"
                   "abc"
                   "\x82\x02"
                   "de",
                   9);
  /* |grew| may be NULL. */
  ck_assert_int_eq(websock__encode_message(&out, 2, "", 0, 0, NULL), 2);
  ck_assert_mem_eq(out.data + 9, "\x82\x00", 2);
  /* A message that does not fit the remaining room grows it again. */
  static uint8_t big[1000];
  ck_assert_int_eq(websock__encode_message(&out, 2, big, sizeof big, 0, &grew),
                   1004);
  ck_assert_int_eq(grew, 1);
  ck_assert_uint_eq(out.len, 1015);
  ck_assert_mem_eq(out.data,
                   "\x81\x03"
                   "abc",
                   5);
  /* Reused after a consume: the kept capacity serves without allocating. */
  websock__buf_consume(&out, out.len);
  ck_assert_int_eq(websock__encode_message(&out, 2, big, sizeof big, 0, &grew),
                   1004);
  ck_assert_int_eq(grew, 0);
  ck_assert_uint_eq(out.len, 1004);
  websock__buf_free(&out);
}
END_TEST

/* An allocation that fails returns -1 and leaves the buffer as it was. */
START_TEST(test_alloc_failure) {
  websock__buf out = {0};
  ck_assert_int_eq(websock__encode_message(&out, 2, "x", 1, 0, NULL), 3);
  static uint8_t big[1000];
  int grew = -5;
  websock__alloc_fail_at(1);
  ck_assert_int_eq(websock__encode_message(&out, 2, big, sizeof big, 0, &grew),
                   -1);
  ck_assert_uint_eq(out.len, 3);
  ck_assert_uint_eq(out.cap, 256);
  ck_assert_mem_eq(out.data, "\x82\x01x", 3);
  ck_assert_int_eq(grew, -5); /* untouched on failure */
  /* Fragmented, the same. */
  websock__alloc_fail_at(1);
  ck_assert_int_eq(
      websock__encode_message(&out, 1, big, sizeof big, 100, &grew), -1);
  ck_assert_uint_eq(out.len, 3);
  /* A message that fits the room left allocates nothing. */
  websock__alloc_fail_at(1);
  ck_assert_int_eq(websock__encode_message(&out, 2, big, 200, 0, &grew), 204);
  ck_assert_int_eq(grew, 0);
  websock__alloc_fail_at(0);
  websock__buf_free(&out);
}
END_TEST

/* ---- fragmentation ---------------------------------------------------- */

typedef struct frag_case {
  size_t len, fragment_size;
} frag_case;

static const frag_case frag_cases[] = {
    {0, 10},        {1, 10},       {9, 10},        {10, 10},
    {11, 10},       {30, 10},      {31, 10},       {5, 1},
    {125, 125},     {126, 125},    {1000, 126},    {65535, 65535},
    {65536, 65535}, {65536, 4096}, {70000, 65536}, {200000, 70000},
    {300, 0},       {300, 300},    {300, 1000},
};

START_TEST(test_fragmentation) {
  const frag_case *c = &frag_cases[_i];
  uint8_t *data = pattern(c->len, 77 + c->len);
  for (int op = WEBSOCK__OP_TEXT; op <= WEBSOCK__OP_BINARY; op++) {
    websock__buf out = {0};
    int grew = -1;
    long w = websock__encode_message(&out, op, data, c->len, c->fragment_size,
                                     &grew);
    ck_assert_int_gt(w, 0);
    ck_assert_int_eq(grew, 1);
    ck_assert_uint_eq(out.len, (size_t)w);
    ck_assert_uint_le((size_t)w,
                      websock__encoded_size(c->len, c->fragment_size));
    size_t want_frames = 1;
    if (c->fragment_size && c->len > c->fragment_size)
      want_frames = (c->len + c->fragment_size - 1) / c->fragment_size;
    decoded *d = malloc(sizeof *d);
    decode_all(out.data, out.len, d);
    ck_assert_uint_eq(d->nframes, want_frames);
    size_t bytes = 0;
    for (size_t i = 0; i < d->nframes; i++) {
      const dframe *f = &d->frames[i];
      /* TEXT/BINARY first, then continuations; FIN on the last only. */
      ck_assert_int_eq(f->opcode, i == 0 ? op : WEBSOCK__OP_CONT);
      ck_assert_int_eq(f->fin, i + 1 == d->nframes);
      /* Every fragment but the last is full; none is larger. */
      if (i + 1 < d->nframes)
        ck_assert_uint_eq(f->len, c->fragment_size);
      if (c->fragment_size)
        ck_assert_uint_le(f->len, c->fragment_size);
      ck_assert_uint_eq(f->header_len, header_len_for((size_t)f->len));
      bytes += f->header_len + (size_t)f->len;
    }
    ck_assert_uint_eq(bytes, (size_t)w);
    ck_assert_uint_eq(d->plen, c->len);
    ck_assert_int_eq(memcmp(d->payload, data, c->len), 0);
    free(d->payload);
    free(d);
    websock__buf_free(&out);
  }
  free(data);
}
END_TEST

/* ---- RSV1: a compressed message marks its first frame only ------------ */

START_TEST(test_rsv1_on_first_frame_only) {
  uint8_t data[300];
  memset(data, 'z', sizeof data);
  websock__buf out = {0};
  long w = websock__encode_message(&out, WEBSOCK__OP_TEXT | WEBSOCK__FRAME_RSV1,
                                   data, sizeof data, 100, NULL);
  ck_assert_int_gt(w, 0);
  /* Three frames of 100 bytes (2 bytes of header each): RSV1 and TEXT on
   * the first, plain continuations after it. */
  ck_assert_uint_eq(out.len, 3 * (2 + 100));
  ck_assert_uint_eq(out.data[0], 0x40 | WEBSOCK__OP_TEXT);
  ck_assert_uint_eq(out.data[102], WEBSOCK__OP_CONT);
  ck_assert_uint_eq(out.data[204], 0x80 | WEBSOCK__OP_CONT);
  out.len = 0;
  websock__encode_message(&out, WEBSOCK__OP_BINARY | WEBSOCK__FRAME_RSV1, data,
                          5, 0, NULL);
  ck_assert_uint_eq(out.data[0], 0x80 | 0x40 | WEBSOCK__OP_BINARY);
  ck_assert_uint_eq(out.data[1], 5);
  websock__buf_free(&out);
}
END_TEST

/* ---- control frames are never fragmented ------------------------------- */

START_TEST(test_control_not_fragmented) {
  static const int ops[] = {WEBSOCK__OP_CLOSE, WEBSOCK__OP_PING,
                            WEBSOCK__OP_PONG};
  static const size_t lens[] = {0, 1, 2, 11, 124, 125};
  static const size_t frags[] = {0, 1, 2, 10, 124};
  uint8_t *data = pattern(125, 9);
  for (size_t o = 0; o < 3; o++) {
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
      for (size_t f = 0; f < sizeof frags / sizeof frags[0]; f++) {
        websock__buf out = {0};
        long w = websock__encode_message(&out, ops[o], data, lens[l], frags[f],
                                         NULL);
        ck_assert_int_eq(w, (long)(2 + lens[l]));
        ck_assert_uint_eq(out.data[0], 0x80u | (unsigned)ops[o]);
        ck_assert_uint_eq(out.data[1], lens[l]);
        ck_assert_int_eq(memcmp(out.data + 2, data, lens[l]), 0);
        decoded *d = malloc(sizeof *d);
        decode_all(out.data, out.len, d);
        ck_assert_uint_eq(d->nframes, 1);
        ck_assert_int_eq(d->frames[0].fin, 1);
        ck_assert_int_eq(d->frames[0].opcode, ops[o]);
        free(d->payload);
        free(d);
        websock__buf_free(&out);
      }
    }
  }
  free(data);
}
END_TEST

/* ---- a stream of messages, decoded in any split ------------------------ */

/* Many messages (random opcode, length class and fragment size) encoded one
 * after another into one buffer; the stream is then decoded whole, byte by
 * byte and in random splits, and each way yields the same frame count and
 * payload bytes as the messages put in. */
START_TEST(test_stream_splits) {
  test_rng rng;
  test_rng_seed(&rng, 1234 + (uint64_t)_i);
  websock__buf out = {0};
  size_t want_frames = 0, want_plen = 0;
  uint8_t *want = malloc(4 << 20);
  ck_assert_ptr_nonnull(want);
  for (int m = 0; m < 40; m++) {
    static const int ops[] = {1, 2, 8, 9, 10};
    int op = ops[test_rng_next(&rng) % 5];
    size_t len = op >= 8 ? test_rng_range(&rng, 0, 125)
                         : len_classes[test_rng_next(&rng) % 7];
    size_t frag = test_rng_next(&rng) % 3 ? 0 : test_rng_range(&rng, 1, 700);
    uint8_t *data = pattern(len, (uint64_t)m * 31 + (uint64_t)_i);
    size_t before = out.len;
    long w = websock__encode_message(&out, op, data, len, frag, NULL);
    ck_assert_int_eq(w, (long)(out.len - before));
    ck_assert_uint_le(want_plen + len, 4 << 20);
    memcpy(want + want_plen, data, len);
    want_plen += len;
    want_frames += (op < 8 && frag && len > frag) ? (len + frag - 1) / frag : 1;
    free(data);
  }
  for (int mode = 0; mode < 3; mode++) {
    stream s = {0};
    s.payload = malloc(want_plen + 1);
    if (mode == 0) {
      stream_feed(&s, out.data, out.len);
    } else if (mode == 1) {
      for (size_t i = 0; i < out.len; i++)
        stream_feed(&s, out.data + i, 1);
    } else {
      static size_t cuts[1 << 16];
      size_t nc = test_random_cuts(&rng, out.len, cuts, 1 << 16);
      size_t pos = 0;
      for (size_t i = 0; i <= nc; i++) {
        size_t end = i < nc ? cuts[i] : out.len;
        stream_feed(&s, out.data + pos, end - pos);
        pos = end;
      }
    }
    ck_assert_uint_eq(s.nframes, want_frames);
    ck_assert_uint_eq(s.plen, want_plen);
    ck_assert_uint_eq(s.hlen, 0);
    ck_assert_int_eq(s.in_payload, 0);
    ck_assert_int_eq(s.last_fin, 1);
    ck_assert_int_eq(memcmp(s.payload, want, want_plen), 0);
    free(s.payload);
  }
  free(want);
  websock__buf_free(&out);
}
END_TEST

/* ---- masking for the client ------------------------------------------- */

/* Keys from a counter, so the test can tell each frame got its own. */
static int counter_key(void *ud, uint8_t key[4]) {
  uint32_t *n = ud;
  uint32_t k = 0x9E3779B9u * ++*n;
  memcpy(key, &k, 4);
  return 0;
}

static int failing_key(void *ud, uint8_t key[4]) {
  (void)ud;
  (void)key;
  return -1;
}

START_TEST(test_mask_frames) {
  test_rng rng;
  test_rng_seed(&rng, 77 + (uint64_t)_i);
  for (int m = 0; m < 30; m++) {
    static const int ops[] = {1, 2, 8, 9, 10, 1 | WEBSOCK__FRAME_RSV1};
    int op = ops[test_rng_next(&rng) % 6];
    size_t len = (op & 0xF) >= 8 ? test_rng_range(&rng, 0, 125)
                                 : len_classes[test_rng_next(&rng) % 8];
    size_t frag = test_rng_next(&rng) % 2 ? 0 : test_rng_range(&rng, 1, 900);
    uint8_t *data = pattern(len, (uint64_t)m);
    websock__buf plain = {0}, out = {0};
    ck_assert_int_ge(websock__encode_message(&plain, op, data, len, frag, NULL),
                     0);
    uint32_t keys = 0;
    websock__buf_append(&out, (const uint8_t *)"x", 1); /* appends after */
    long w = websock__mask_frames(&out, plain.data, plain.len, counter_key,
                                  &keys, NULL);
    ck_assert_int_eq(w, (long)(out.len - 1));
    ck_assert_uint_eq((size_t)w, plain.len + 4u * keys); /* 4 bytes a frame */
    /* Each masked frame matches its plain one: same fin, opcode, RSV and
     * length, a key of its own, the payload back when unmasked. */
    size_t po = 0, mo = 1;
    uint32_t seen = 0;
    uint8_t last_key[4] = {0};
    while (po < plain.len) {
      websock__frame_header hp, hm;
      ssize_t lp =
          websock__frame_parse_header(plain.data + po, plain.len - po, &hp);
      ssize_t lm =
          websock__frame_parse_header(out.data + mo, out.len - mo, &hm);
      ck_assert_int_gt(lp, 0);
      ck_assert_int_eq(lm, lp + 4);
      ck_assert_uint_eq(hm.masked, 1);
      ck_assert_uint_eq(hm.fin, hp.fin);
      ck_assert_uint_eq(hm.opcode, hp.opcode);
      ck_assert_uint_eq(hm.rsv, hp.rsv);
      ck_assert_uint_eq(hm.payload_len, hp.payload_len);
      ck_assert(seen == 0 || memcmp(hm.mask, last_key, 4) != 0);
      memcpy(last_key, hm.mask, 4);
      seen++;
      uint8_t *pl = out.data + mo + (size_t)lm;
      websock__mask(pl, (size_t)hm.payload_len, hm.mask, 0);
      ck_assert_int_eq(
          memcmp(pl, plain.data + po + (size_t)lp, (size_t)hp.payload_len), 0);
      po += (size_t)lp + (size_t)hp.payload_len;
      mo += (size_t)lm + (size_t)hm.payload_len;
    }
    ck_assert_uint_eq(mo, out.len);
    ck_assert_uint_eq(seen, keys);
    free(data);
    websock__buf_free(&plain);
    websock__buf_free(&out);
  }
}
END_TEST

START_TEST(test_mask_frames_refuses_partial) {
  websock__buf plain = {0}, out = {0};
  ck_assert_int_ge(websock__encode_message(&plain, 2, "abcdef", 6, 0, NULL), 0);
  uint32_t keys = 0;
  websock__buf_append(&out, (const uint8_t *)"keep", 4);
  /* A cut header, a cut payload: -1 and the output as it was. */
  for (size_t cut = 1; cut < plain.len; cut++) {
    ck_assert_int_eq(
        websock__mask_frames(&out, plain.data, cut, counter_key, &keys, NULL),
        -1);
    ck_assert_uint_eq(out.len, 4);
  }
  /* No key, no frame. */
  ck_assert_int_eq(websock__mask_frames(&out, plain.data, plain.len,
                                        failing_key, NULL, NULL),
                   -1);
  ck_assert_uint_eq(out.len, 4);
  /* An already masked frame is not ours to mask again. */
  websock__buf masked = {0};
  websock__mask_frames(&masked, plain.data, plain.len, counter_key, &keys,
                       NULL);
  ck_assert_int_eq(websock__mask_frames(&out, masked.data, masked.len,
                                        counter_key, &keys, NULL),
                   -1);
  ck_assert_uint_eq(out.len, 4);
  websock__buf_free(&plain);
  websock__buf_free(&out);
  websock__buf_free(&masked);
}
END_TEST

/* ---- the size bound --------------------------------------------------- */

START_TEST(test_encoded_size) {
  ck_assert_uint_eq(websock__encoded_size(0, 0), WEBSOCK__FRAME_HEADER_MAX);
  ck_assert_uint_eq(websock__encoded_size(100, 0),
                    100 + WEBSOCK__FRAME_HEADER_MAX);
  ck_assert_uint_eq(websock__encoded_size(100, 100),
                    100 + WEBSOCK__FRAME_HEADER_MAX);
  ck_assert_uint_eq(websock__encoded_size(101, 100),
                    101 + 2 * WEBSOCK__FRAME_HEADER_MAX);
  ck_assert_uint_eq(websock__encoded_size(1000, 1),
                    1000 + 1000 * WEBSOCK__FRAME_HEADER_MAX);
  /* Sizes no buffer can have saturate instead of wrapping around. */
  ck_assert_uint_eq(websock__encoded_size(SIZE_MAX - 3, 0), SIZE_MAX);
  ck_assert_uint_eq(websock__encoded_size(SIZE_MAX, 1), SIZE_MAX);
}
END_TEST

static Suite *encode_suite(void) {
  Suite *s = suite_create("encode");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_length_classes, 0,
                      (int)(sizeof len_classes / sizeof len_classes[0]));
  tcase_add_test(tc, test_count_and_grew);
  tcase_add_test(tc, test_alloc_failure);
  tcase_add_loop_test(tc, test_fragmentation, 0,
                      (int)(sizeof frag_cases / sizeof frag_cases[0]));
  tcase_add_test(tc, test_control_not_fragmented);
  tcase_add_test(tc, test_rsv1_on_first_frame_only);
  tcase_add_loop_test(tc, test_stream_splits, 0, 6);
  tcase_add_test(tc, test_encoded_size);
  tcase_add_loop_test(tc, test_mask_frames, 0, 4);
  tcase_add_test(tc, test_mask_frames_refuses_partial);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(encode_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
