/* libFuzzer target: the streaming reader on arbitrary bytes, fed whole and
 * in input-derived splits; both runs must agree and respect the limits.
 * Layer: proto tests. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/close.h"
#include "proto/reader.h"
#include "proto/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_state {
  uint64_t max_frame, max_msg;
  const uint8_t *lo, *hi; /* buffer of the current feed */
  int in_msg, msg_op;
  uint64_t msg_size, frame_piece_sum;
  websock__utf8 text;
  uint64_t hash; /* over complete messages and control frames */
  uint64_t msg_hash;
} fuzz_state;

static uint64_t fuzz_mix(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

static int fuzz_on_data(void *ud, int opcode, const uint8_t *p, size_t n,
                        int first, int last) {
  fuzz_state *s = ud;
  if (opcode != WEBSOCK__OP_TEXT && opcode != WEBSOCK__OP_BINARY)
    abort();
  if (n && (p < s->lo || p + n > s->hi))
    abort(); /* not inside the fed buffer */
  if (first) {
    if (s->in_msg)
      abort();
    s->in_msg = 1;
    s->msg_op = opcode;
    s->msg_size = 0;
    s->msg_hash = 0xCBF29CE484222325ull;
    websock__utf8_init(&s->text);
  } else if (!s->in_msg || s->msg_op != opcode) {
    abort();
  }
  s->msg_size += n;
  if (s->max_msg && s->msg_size > s->max_msg)
    abort();
  if (s->max_frame && n > s->max_frame)
    abort();
  s->msg_hash = fuzz_mix(s->msg_hash, p, n);
  if (opcode == WEBSOCK__OP_TEXT && !websock__utf8_feed(&s->text, p, n))
    abort(); /* the reader let bad UTF-8 through */
  if (last) {
    if (opcode == WEBSOCK__OP_TEXT && !websock__utf8_complete(&s->text))
      abort();
    uint8_t tag = (uint8_t)opcode;
    s->hash = fuzz_mix(s->hash, &tag, 1);
    s->hash ^= s->msg_hash + s->msg_size;
    s->in_msg = 0;
  }
  return 0;
}

static int fuzz_on_control(void *ud, int opcode, const uint8_t *p, size_t n) {
  fuzz_state *s = ud;
  if (n > 125)
    abort();
  if (opcode == WEBSOCK__OP_CLOSE) {
    unsigned code;
    const uint8_t *reason;
    size_t rlen;
    if (websock__close_parse(p, n, &code, &reason, &rlen) != 0)
      abort();
  } else if (opcode != WEBSOCK__OP_PING && opcode != WEBSOCK__OP_PONG) {
    abort();
  }
  uint8_t tag = (uint8_t)(0x10 | opcode);
  s->hash = fuzz_mix(s->hash, &tag, 1);
  s->hash = fuzz_mix(s->hash, p, n);
  return 0;
}

static const websock__reader_callbacks fuzz_cb = {fuzz_on_data,
                                                  fuzz_on_control};

typedef struct fuzz_result {
  uint64_t hash;
  size_t consumed;
  ssize_t err;
  int close_code;
} fuzz_result;

/* Runs |in| through a fresh reader in pieces chosen by |seed| (0: whole). */
static void fuzz_run(const uint8_t *in, size_t n, uint8_t cfg, uint32_t seed,
                     fuzz_result *res) {
  static const uint64_t frame_limits[4] = {0, 64, 1000, 0};
  static const uint64_t msg_limits[4] = {0, 256, 1000, 100};
  fuzz_state s;
  memset(&s, 0, sizeof s);
  s.max_frame = frame_limits[(cfg >> 1) & 3];
  s.max_msg = msg_limits[(cfg >> 1) & 3];
  s.hash = 0xCBF29CE484222325ull;
  websock__reader r;
  /* bit 0: masks required (the server's rule); else bit 3: masks
   * forbidden (the client's rule); else any. */
  websock__reader_init(&r, s.max_frame, s.max_msg,
                       (cfg & 1)   ? WEBSOCK__MASK_REQUIRED
                       : (cfg & 8) ? WEBSOCK__MASK_FORBIDDEN
                                   : WEBSOCK__MASK_ANY);
  /* exact-size copy: ASan catches reads past the end; the reader unmasks
   * in place so each run needs its own copy anyway */
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf)
    abort();
  memcpy(buf, in, n);
  memset(res, 0, sizeof *res);
  size_t pos = 0;
  int stopped = 0;
  while (pos < n) {
    size_t step = n - pos;
    if (seed) {
      seed = seed * 1103515245u + 12345u;
      size_t want = (seed >> 16) % ((seed & 8) ? 300 : 9);
      if (want < step)
        step = want;
    }
    s.lo = buf + pos;
    s.hi = buf + pos + step;
    ssize_t got = websock__reader_feed(&r, buf + pos, step, &fuzz_cb, &s);
    if (got < 0) {
      res->err = got;
      res->close_code = r.error_close_code;
      if (got != WEBSOCK__PROTO_ERR_PROTOCOL &&
          got != WEBSOCK__PROTO_ERR_UTF8 && got != WEBSOCK__PROTO_ERR_TOO_BIG)
        abort();
      if (r.error_close_code != 1002 && r.error_close_code != 1007 &&
          r.error_close_code != 1009)
        abort();
      if (websock__reader_feed(&r, buf + pos, step, &fuzz_cb, &s) != 0)
        abort();
      break;
    }
    if ((size_t)got > step)
      abort();
    if (stopped && got != 0)
      abort();
    if ((size_t)got < step) {
      if (!r.closed)
        abort();
      stopped = 1;
    }
    res->consumed += (size_t)got;
    pos += step;
  }
  res->hash = s.hash;
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  /* byte 0: bit 0 masks required, bits 1-2 limits, bit 3 masks forbidden;
   * byte 1: split seed */
  uint8_t cfg = data[0];
  uint32_t seed = data[1] * 2246822519u + 1;
  fuzz_result whole, split;
  fuzz_run(data + 2, size - 2, cfg, 0, &whole);
  fuzz_run(data + 2, size - 2, cfg, seed, &split);
  if (whole.hash != split.hash || whole.err != split.err ||
      whole.close_code != split.close_code)
    abort();
  if (!whole.err && whole.consumed != split.consumed)
    abort();
  return 0;
}
