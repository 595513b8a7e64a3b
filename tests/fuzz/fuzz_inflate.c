/* libFuzzer target: the inflate path. Frames go through a reader with
 * permessage-deflate on (RSV1 allowed) and a small message limit; every
 * compressed message is inflated twice, piece by piece as the reader hands
 * it over and whole, with the output limited to the message limit. Both
 * must agree, never pass the limit, and what inflates must survive our
 * deflater and inflate back the same. Layer: proto tests. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/deflate.h"
#include "proto/reader.h"
#include "proto/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_LIMIT 4096

typedef struct fuzz_state {
  const websock__reader *reader;
  websock__zcache zc;
  websock__inflater piecewise; /* fed each piece as it arrives */
  websock__inflater whole;     /* fed the collected message at its end */
  websock__deflater back;      /* recompresses what inflated */
  websock__inflater again;     /* inflates that */
  int keep;                    /* context takeover, for all four */
  int bits;                    /* the inflaters' window bits */
  websock__buf zmsg;  /* the compressed message (<= FUZZ_LIMIT: the reader) */
  websock__buf out1;  /* piecewise output */
  websock__buf out2;  /* whole output */
  websock__buf round; /* recompressed */
  websock__buf out3;  /* and inflated again */
  ssize_t err;        /* the first inflate error, 0 if none */
  int piece_err;      /* the piecewise error, waiting for the whole one */
} fuzz_state;

static int fuzz_on_data(void *ud, int opcode, const uint8_t *p, size_t n,
                        int first, int last) {
  fuzz_state *s = ud;
  if (!s->reader->msg_compressed)
    return 0; /* plain messages are fuzz_frame's business */
  if (first) {
    s->zmsg.len = s->out1.len = s->out2.len = 0;
    s->piece_err = 0;
  }
  if (websock__buf_append(&s->zmsg, p, n) < 0)
    abort();
  if (s->zmsg.len > FUZZ_LIMIT)
    abort(); /* the reader's message limit counts compressed bytes */
  if (!s->piece_err) {
    ssize_t r = websock__inflate_chunk(&s->piecewise, p, n, last, s->keep,
                                       FUZZ_LIMIT, &s->out1);
    if (r < 0)
      s->piece_err = (int)r;
  }
  if (s->out1.len > FUZZ_LIMIT)
    abort();
  if (!last)
    return 0;
  ssize_t r = websock__inflate_message(&s->whole, s->zmsg.data, s->zmsg.len,
                                       s->keep, FUZZ_LIMIT, &s->out2);
  if (s->out2.len > FUZZ_LIMIT || s->out2.cap > FUZZ_LIMIT + 4096)
    abort();
  if (r >= 0 && (size_t)r != s->out2.len)
    abort();
  /* The same bytes give the same answer however they were cut, but for
   * zlib's leniency with distances beyond a small window (deflate.h): then
   * the side that refused must say so, and the other must have inflated
   * at least as far, the same bytes. */
  if ((r < 0 ? (int)r : 0) != s->piece_err) {
    int whole_refused = r == WEBSOCK__INFLATE_BAD;
    const websock__inflater *refused =
        whole_refused ? &s->whole : &s->piecewise;
    const websock__buf *shorter = whole_refused ? &s->out2 : &s->out1;
    const websock__buf *longer = whole_refused ? &s->out1 : &s->out2;
    if (s->bits == 15 || !refused->error ||
        strcmp(refused->error, "invalid distance too far back") != 0 ||
        longer->len < shorter->len ||
        (shorter->len && memcmp(shorter->data, longer->data, shorter->len)))
      abort();
    s->err = WEBSOCK__INFLATE_BAD;
    return 1; /* one side closes with 1007: enough for this input */
  }
  if (r < 0) {
    if (r != WEBSOCK__INFLATE_BAD && r != WEBSOCK__INFLATE_TOO_BIG)
      abort();
    s->err = r;
    return 1; /* the connection would close: 1007 or 1009 */
  }
  if (s->out1.len != s->out2.len ||
      (s->out1.len && memcmp(s->out1.data, s->out2.data, s->out1.len)))
    abort();
  if (opcode == WEBSOCK__OP_TEXT &&
      !websock__utf8_valid(s->out2.data, s->out2.len)) {
    s->err = WEBSOCK__PROTO_ERR_UTF8;
    return 1; /* 1007, from the caller's check of the inflated text */
  }
  s->round.len = 0;
  if (websock__deflate_message(&s->back, s->out2.data, s->out2.len, s->keep,
                               &s->round) < 0)
    abort();
  s->out3.len = 0;
  ssize_t back = websock__inflate_message(
      &s->again, s->round.data, s->round.len, s->keep, FUZZ_LIMIT, &s->out3);
  if (back != (ssize_t)s->out2.len ||
      (back && memcmp(s->out3.data, s->out2.data, s->out2.len)))
    abort();
  return 0;
}

static int fuzz_on_control(void *ud, int opcode, const uint8_t *p, size_t n) {
  (void)ud;
  (void)opcode;
  (void)p;
  if (n > 125)
    abort();
  return 0;
}

static const websock__reader_callbacks fuzz_cb = {fuzz_on_data,
                                                  fuzz_on_control};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  /* byte 0: bit 0 context takeover, bit 1 masks required, bits 2-4 window
   * bits 8 + (0..7, 15 at most), bits 5-7 our memLevel - 1; byte 1: split
   * seed; then the frames. */
  uint8_t cfg = data[0];
  uint32_t seed = data[1] * 2246822519u + 1;
  int bits = 8 + ((cfg >> 2) & 7);
  if (bits > 15)
    bits = 15;
  fuzz_state s;
  memset(&s, 0, sizeof s);
  s.keep = cfg & 1;
  s.bits = bits;
  websock__zcache_init(&s.zc);
  websock__inflater_init(&s.piecewise, &s.zc, bits);
  websock__inflater_init(&s.whole, &s.zc, bits);
  websock__deflater_init(&s.back, &s.zc, bits < 9 ? 9 : bits,
                         1 + ((cfg >> 5) & 7), -1);
  websock__inflater_init(&s.again, &s.zc, bits);
  websock__reader r;
  websock__reader_init(&r, 0, FUZZ_LIMIT, (cfg >> 1) & 1);
  r.allow_rsv1 = 1;
  s.reader = &r;
  size_t n = size - 2;
  /* exact-size copy: ASan catches reads past the end */
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf)
    abort();
  memcpy(buf, data + 2, n);
  size_t pos = 0;
  while (pos < n) {
    seed = seed * 1103515245u + 12345u;
    size_t step = (seed >> 16) % ((seed & 8) ? 300 : 9);
    if (step > n - pos)
      step = n - pos;
    ssize_t got = websock__reader_feed(&r, buf + pos, step, &fuzz_cb, &s);
    if (got < 0 || (size_t)got < step)
      break; /* an error, a close, or the callback closing */
    pos += step;
  }
  free(buf);
  websock__inflater_free(&s.piecewise);
  websock__inflater_free(&s.whole);
  websock__deflater_free(&s.back);
  websock__inflater_free(&s.again);
  if (s.zc.live_bytes != 0)
    abort(); /* every stream gave its memory back */
  websock__zcache_free(&s.zc);
  if (s.zc.heap_allocs != s.zc.heap_frees)
    abort();
  websock__buf_free(&s.zmsg);
  websock__buf_free(&s.out1);
  websock__buf_free(&s.out2);
  websock__buf_free(&s.round);
  websock__buf_free(&s.out3);
  return 0;
}
