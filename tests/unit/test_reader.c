/* Unit tests for the streaming frame reader (core/proto/reader.c): frame
 * tables fed whole, byte by byte, in random splits and at a guard page;
 * fragmentation, control interleaving, every 1002/1007/1009 case, limits,
 * zero-copy delivery, random message streams, and RSV1 (permessage-deflate)
 * frames and fragmented compressed messages. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/reader.h"
#include "split_helpers.h"
#include "proto/utf8.h"

/* ---- building input ---- */

typedef struct fspec {
  uint8_t b0;       /* FIN | RSV | opcode, as on the wire */
  const char *data; /* payload; NULL ends the list */
  size_t len;
  int unmasked;   /* 1: no masking key */
  uint64_t claim; /* non-zero: header claims this length, no payload */
} fspec;

#define F(b0, s)                                                               \
  { b0, s, sizeof(s) - 1, 0, 0 }
#define FU(b0, s)                                                              \
  { b0, s, sizeof(s) - 1, 1, 0 }
#define FC(b0, n)                                                              \
  { b0, "", 0, 0, n }

typedef struct bytes {
  uint8_t *p;
  size_t len, cap;
} bytes;

static void bytes_put(bytes *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    ck_assert_ptr_nonnull(b->p);
  }
  if (n)
    memcpy(b->p + b->len, p, n);
  b->len += n;
}

/* Appends one frame; the masking key varies with |seed| so every offset of
 * the key gets used. */
static void put_frame(bytes *b, uint8_t b0, const void *data, size_t len,
                      int masked, uint64_t claim, unsigned seed) {
  uint8_t h[WEBSOCK__FRAME_HEADER_MAX];
  size_t n = 0;
  uint64_t plen = claim ? claim : len;
  h[n++] = b0;
  uint8_t mbit = masked ? 0x80 : 0;
  if (plen <= 125) {
    h[n++] = (uint8_t)(mbit | plen);
  } else if (plen <= 0xFFFF) {
    h[n++] = (uint8_t)(mbit | 126);
    h[n++] = (uint8_t)(plen >> 8);
    h[n++] = (uint8_t)plen;
  } else {
    h[n++] = (uint8_t)(mbit | 127);
    for (int s = 56; s >= 0; s -= 8)
      h[n++] = (uint8_t)(plen >> s);
  }
  uint8_t key[4] = {(uint8_t)(seed * 37 + 1), (uint8_t)(seed * 91 + 7),
                    (uint8_t)(seed * 13 + 128), (uint8_t)(seed + 200)};
  if (masked) {
    memcpy(h + n, key, 4);
    n += 4;
  }
  bytes_put(b, h, n);
  if (claim)
    return;
  size_t at = b->len;
  bytes_put(b, data, len);
  if (masked)
    for (size_t i = 0; i < len; i++)
      b->p[at + i] ^= key[i % 4];
}

/* ---- recording callbacks ---- */

typedef struct rec {
  char log[16384];
  size_t loglen;
  uint8_t *msg;
  size_t msglen, msgcap;
  int in_msg;
  int msg_op;
  const uint8_t *buf_lo, *buf_hi; /* the buffer passed to the current feed */
  const websock__reader *reader;  /* for msg_compressed, when set */
  int msg_z;                      /* msg_compressed at the first piece */
  int stop_at;                    /* callback number that returns 1; 0 never */
  int calls;
  size_t data_calls;
} rec;

static void rec_log(rec *r, const char *tag, const uint8_t *p, size_t n) {
  char tmp[64];
  size_t tl = strlen(tag);
  TEST_REQUIRE(r->loglen + tl + 2 < sizeof r->log);
  memcpy(r->log + r->loglen, tag, tl);
  r->loglen += tl;
  r->log[r->loglen++] = '(';
  if (n > 200) {
    /* long payloads are compared elsewhere */
    int k = snprintf(tmp, sizeof tmp, "#%zu", n);
    memcpy(r->log + r->loglen, tmp, (size_t)k);
    r->loglen += (size_t)k;
  } else {
    for (size_t i = 0; i < n; i++) {
      TEST_REQUIRE(r->loglen + 6 < sizeof r->log);
      if (p[i] >= 0x20 && p[i] < 0x7F && p[i] != '\\') {
        r->log[r->loglen++] = (char)p[i];
      } else {
        snprintf(tmp, sizeof tmp, "\\x%02X", p[i]);
        memcpy(r->log + r->loglen, tmp, 4);
        r->loglen += 4;
      }
    }
  }
  r->log[r->loglen++] = ')';
  r->log[r->loglen] = '\0';
}

static int rec_data(void *ud, int opcode, const uint8_t *data, size_t len,
                    int first, int last) {
  rec *r = ud;
  r->calls++;
  r->data_calls++;
  TEST_REQUIRE(opcode == WEBSOCK__OP_TEXT || opcode == WEBSOCK__OP_BINARY);
  /* zero copy: the piece lies inside the buffer given to feed */
  if (len) {
    TEST_REQUIRE(data >= r->buf_lo && data + len <= r->buf_hi);
  }
  int z = r->reader ? r->reader->msg_compressed : 0;
  if (first) {
    TEST_REQUIRE(r->in_msg == 0);
    r->in_msg = 1;
    r->msg_op = opcode;
    r->msglen = 0;
    r->msg_z = z;
  } else {
    TEST_REQUIRE(r->in_msg == 1);
    TEST_REQUIRE(r->msg_op == opcode);
    TEST_REQUIRE(r->msg_z == z); /* the first frame decides, for all */
  }
  if (r->msglen + len > r->msgcap) {
    r->msgcap = (r->msglen + len) * 2;
    r->msg = realloc(r->msg, r->msgcap);
    ck_assert_ptr_nonnull(r->msg);
  }
  if (len)
    memcpy(r->msg + r->msglen, data, len);
  r->msglen += len;
  if (last) {
    /* compressed text is DEFLATE data: checked after inflating, not here */
    if (opcode == WEBSOCK__OP_TEXT && !z)
      TEST_REQUIRE(websock__utf8_valid(r->msg, r->msglen));
    rec_log(r, opcode == WEBSOCK__OP_TEXT ? (z ? "TZ" : "T") : (z ? "BZ" : "B"),
            r->msg, r->msglen);
    r->in_msg = 0;
  }
  return r->stop_at && r->calls == r->stop_at;
}

static int rec_control(void *ud, int opcode, const uint8_t *data, size_t len) {
  rec *r = ud;
  r->calls++;
  TEST_REQUIRE(len <= 125);
  const char *tag = opcode == WEBSOCK__OP_PING    ? "P"
                    : opcode == WEBSOCK__OP_PONG  ? "O"
                    : opcode == WEBSOCK__OP_CLOSE ? "C"
                                                  : "?";
  rec_log(r, tag, data, len);
  return r->stop_at && r->calls == r->stop_at;
}

static const websock__reader_callbacks rec_cb = {rec_data, rec_control};

/* ---- running one input in pieces ---- */

typedef struct result {
  int err;         /* close code of the error, 0 if none */
  ssize_t err_ret; /* the negative return value */
  size_t consumed; /* total bytes consumed */
  int closed;
} result;

typedef struct limits {
  uint64_t max_frame, max_msg;
  int mask; /* 0: the server's rule (masks required), 1: any, 2: the
              client's rule (masks forbidden) */
} limits;

/* Feeds |in| (copied, since the reader unmasks in place) split at |cuts|,
 * checking per-feed invariants. |at_guard| places the copy at the end of a
 * guard page. */
static void run_split(const limits *lim, int allow_rsv1, const uint8_t *in,
                      size_t n, const size_t *cuts, size_t nc, rec *rc,
                      result *res, test_guard *guard) {
  uint8_t *buf;
  uint8_t *heap = NULL;
  if (guard) {
    buf = test_guard_place(guard, in, n);
  } else {
    heap = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(heap);
    if (n)
      memcpy(heap, in, n);
    buf = heap;
  }
  websock__reader r;
  websock__reader_init(&r, lim->max_frame, lim->max_msg,
                       lim->mask == 2   ? WEBSOCK__MASK_FORBIDDEN
                       : lim->mask == 1 ? WEBSOCK__MASK_ANY
                                        : WEBSOCK__MASK_REQUIRED);
  r.allow_rsv1 = (uint8_t)allow_rsv1;
  rc->reader = &r;
  memset(res, 0, sizeof *res);
  rc->loglen = 0;
  rc->log[0] = '\0';
  rc->in_msg = 0;
  rc->calls = 0;
  size_t pos = 0;
  int stopped = 0;
  for (size_t i = 0; i <= nc; i++) {
    size_t end = i < nc ? cuts[i] : n;
    rc->buf_lo = buf + pos;
    rc->buf_hi = buf + end;
    ssize_t got = websock__reader_feed(&r, buf + pos, end - pos, &rec_cb, rc);
    if (got < 0) {
      res->err_ret = got;
      res->err = r.error_close_code;
      TEST_REQUIRE(r.closed == 1);
      /* dead after an error */
      TEST_REQUIRE(
          websock__reader_feed(&r, buf + pos, end - pos, &rec_cb, rc) == 0);
      break;
    }
    TEST_REQUIRE((size_t)got <= end - pos);
    if (stopped)
      TEST_REQUIRE(got == 0);
    res->consumed += (size_t)got;
    if ((size_t)got < end - pos) {
      TEST_REQUIRE(r.closed == 1);
      stopped = 1;
    }
    pos = end;
  }
  res->closed = r.closed;
  if (!res->err && !r.closed)
    TEST_REQUIRE(r.msg_compressed == 0 || r.msg_opcode != 0);
  rc->reader = NULL;
  free(heap);
}

/* Whole, byte by byte, at a guard page and 200 random splits must all give
 * |want_log|, |want_err| and (without an error) |want_consumed|. */
static void run_all(const limits *lim, int allow_rsv1, const uint8_t *in,
                    size_t n, const char *want_log, int want_err,
                    size_t want_consumed) {
  rec rc;
  memset(&rc, 0, sizeof rc);
  result res;
  size_t *cuts = malloc((n + 1) * sizeof *cuts);
  ck_assert_ptr_nonnull(cuts);
  test_guard g;
  test_guard_init(&g, n);
  for (int mode = 0; mode < 203; mode++) {
    size_t nc = 0;
    test_guard *gp = NULL;
    if (mode == 1) {
      for (size_t i = 1; i < n; i++)
        cuts[nc++] = i;
    } else if (mode == 2) {
      gp = &g;
    } else if (mode > 2) {
      test_rng rng;
      test_rng_seed(&rng, (uint64_t)mode * 1000003u + n);
      nc = test_random_cuts(&rng, n, cuts, n);
    }
    run_split(lim, allow_rsv1, in, n, cuts, nc, &rc, &res, gp);
    if (strcmp(rc.log, want_log) != 0)
      ck_abort_msg("mode %d: log '%s', want '%s'", mode, rc.log, want_log);
    ck_assert_int_eq(res.err, want_err);
    if (want_err) {
      ck_assert_int_eq(res.err_ret, want_err == 1002   ? -1001
                                    : want_err == 1007 ? -1002
                                                       : -1003);
    } else {
      ck_assert_uint_eq(res.consumed, want_consumed);
    }
  }
  test_guard_free(&g);
  free(cuts);
  free(rc.msg);
}

/* ---- the table ---- */

typedef struct rcase {
  const char *name;
  fspec f[10];
  const char *log;
  int err;
  limits lim;
} rcase;

static const rcase rcases[] = {
    {"text", {F(0x81, "Hello")}, "T(Hello)", 0, {0, 0, 0}},
    {"binary", {F(0x82, "\x00\xff")}, "B(\\x00\\xFF)", 0, {0, 0, 0}},
    {"empty text", {F(0x81, "")}, "T()", 0, {0, 0, 0}},
    {"empty binary", {F(0x82, "")}, "B()", 0, {0, 0, 0}},
    {"fragmented text",
     {F(0x01, "Hel"), F(0x00, "lo"), F(0x80, "!")},
     "T(Hello!)",
     0,
     {0, 0, 0}},
    {"fragments with control frames",
     {F(0x01, "Hel"), F(0x89, "p1"), F(0x00, "lo"), F(0x8A, ""), F(0x89, ""),
      F(0x80, "!")},
     "P(p1)O()P()T(Hello!)",
     0,
     {0, 0, 0}},
    {"empty fragments",
     {F(0x01, ""), F(0x00, ""), F(0x80, "")},
     "T()",
     0,
     {0, 0, 0}},
    {"binary fragments",
     {F(0x02, "\xff"), F(0x00, "\xfe"), F(0x80, "")},
     "B(\\xFF\\xFE)",
     0,
     {0, 0, 0}},
    {"utf8 split across fragments",
     {F(0x01, "\xe2"), F(0x00, "\x82"), F(0x80, "\xac")},
     "T(\\xE2\\x82\\xAC)",
     0,
     {0, 0, 0}},
    {"4-byte utf8 across fragments and a ping",
     {F(0x01, "a\xf0\x9f"), F(0x89, "x"), F(0x80, "\x98\x80")},
     "P(x)T(a\\xF0\\x9F\\x98\\x80)",
     0,
     {0, 0, 0}},
    {"two messages",
     {F(0x81, "one"), F(0x82, "two"), F(0x8A, "pong")},
     "T(one)B(two)O(pong)",
     0,
     {0, 0, 0}},
    {"binary need not be utf8",
     {F(0x82, "\xed\xa0\x80")},
     "B(\\xED\\xA0\\x80)",
     0,
     {0, 0, 0}},
    {"close then more",
     {F(0x81, "hi"),
      F(0x88, "\x03\xe8"
              "bye"),
      F(0x89, "after"), F(0xF3, "garbage")},
     "T(hi)C(\\x03\\xE8bye)",
     0,
     {0, 0, 0}},
    {"close empty", {F(0x88, "")}, "C()", 0, {0, 0, 0}},
    {"close 4999", {F(0x88, "\x13\x87")}, "C(\\x13\\x87)", 0, {0, 0, 0}},
    {"close inside fragmented message",
     {F(0x01, "par"), F(0x88, "\x03\xe9")},
     "C(\\x03\\xE9)",
     0,
     {0, 0, 0}},
    {"unmasked allowed", {FU(0x81, "hi")}, "T(hi)", 0, {0, 0, 1}},
    {"mixed masking allowed",
     {FU(0x01, "h"), F(0x80, "i")},
     "T(hi)",
     0,
     {0, 0, 1}},
    {"client takes unmasked",
     {FU(0x81, "hi"), FU(0x8A, "")},
     "T(hi)O()",
     0,
     {0, 0, 2}},
    /* 1002 */
    {"client refuses masked", {F(0x81, "hi")}, "", 1002, {0, 0, 2}},
    {"client refuses masked control", {F(0x89, "")}, "", 1002, {0, 0, 2}},
    {"client refuses masked after unmasked",
     {FU(0x81, "a"), F(0x81, "b")},
     "T(a)",
     1002,
     {0, 0, 2}},
    {"unmasked when required", {FU(0x81, "hi")}, "", 1002, {0, 0, 0}},
    {"unmasked control when required", {FU(0x89, "")}, "", 1002, {0, 0, 0}},
    {"unmasked after masked",
     {F(0x81, "a"), FU(0x81, "b")},
     "T(a)",
     1002,
     {0, 0, 0}},
    {"rsv1", {F(0xC1, "a")}, "", 1002, {0, 0, 0}},
    {"rsv2", {F(0xA1, "a")}, "", 1002, {0, 0, 0}},
    {"rsv3", {F(0x91, "a")}, "", 1002, {0, 0, 0}},
    {"rsv on ping", {F(0x89, "a"), F(0xC9, "a")}, "P(a)", 1002, {0, 0, 0}},
    {"rsv on continuation", {F(0x01, "a"), F(0x90, "b")}, "", 1002, {0, 0, 0}},
    {"rsv1 fragment not allowed",
     {F(0x42, "a"), F(0x80, "")},
     "",
     1002,
     {0, 0, 0}},
    {"continuation with no message", {F(0x80, "x")}, "", 1002, {0, 0, 0}},
    {"non-final continuation with no message",
     {F(0x00, "x")},
     "",
     1002,
     {0, 0, 0}},
    {"continuation after a complete message",
     {F(0x81, "a"), F(0x80, "b")},
     "T(a)",
     1002,
     {0, 0, 0}},
    {"text inside fragmented text",
     {F(0x01, "a"), F(0x81, "b")},
     "",
     1002,
     {0, 0, 0}},
    {"binary inside fragmented text",
     {F(0x01, "a"), F(0x89, ""), F(0x82, "b")},
     "P()",
     1002,
     {0, 0, 0}},
    {"text inside fragmented binary",
     {F(0x02, "a"), F(0x01, "b")},
     "",
     1002,
     {0, 0, 0}},
    {"ping fin=0", {F(0x09, "")}, "", 1002, {0, 0, 0}},
    {"pong fin=0", {F(0x0A, "a")}, "", 1002, {0, 0, 0}},
    {"close fin=0", {F(0x08, "")}, "", 1002, {0, 0, 0}},
    {"ping 126", {FC(0x89, 126)}, "", 1002, {0, 0, 0}},
    {"close 65536", {FC(0x88, 65536)}, "", 1002, {0, 0, 0}},
    {"close length 1", {F(0x88, "\x03")}, "", 1002, {0, 0, 0}},
    {"close code 999", {F(0x88, "\x03\xe7")}, "", 1002, {0, 0, 0}},
    {"close code 1004", {F(0x88, "\x03\xec")}, "", 1002, {0, 0, 0}},
    {"close code 1005", {F(0x88, "\x03\xed")}, "", 1002, {0, 0, 0}},
    {"close code 1006", {F(0x88, "\x03\xee")}, "", 1002, {0, 0, 0}},
    {"close code 1015", {F(0x88, "\x03\xf7")}, "", 1002, {0, 0, 0}},
    {"close code 2000", {F(0x88, "\x07\xd0")}, "", 1002, {0, 0, 0}},
    {"close code 5000",
     {F(0x88, "\x13\x88"
              "x")},
     "",
     1002,
     {0, 0, 0}},
    {"close code 0", {F(0x88, "\x00\x00")}, "", 1002, {0, 0, 0}},
    {"64-bit length top bit", {FC(0x82, 1ull << 63)}, "", 1002, {0, 0, 0}},
    {"64-bit length all ones", {FC(0x82, ~0ull)}, "", 1002, {0, 0, 0}},
    /* 1007 */
    {"text bad byte", {F(0x81, "a\xff")}, "", 1007, {0, 0, 0}},
    {"text surrogate", {F(0x81, "\xed\xa0\x80")}, "", 1007, {0, 0, 0}},
    {"text overlong", {F(0x81, "\xc0\xaf")}, "", 1007, {0, 0, 0}},
    {"text above U+10FFFF", {F(0x81, "\xf4\x90\x80\x80")}, "", 1007, {0, 0, 0}},
    {"text bad in a later fragment",
     {F(0x01, "ok"), F(0x89, "p"), F(0x80, "\xed\xa0\x80")},
     "P(p)",
     1007,
     {0, 0, 0}},
    {"text overlong across fragments",
     {F(0x01, "\xe0"), F(0x00, "\x80"), F(0x80, "\x80")},
     "",
     1007,
     {0, 0, 0}},
    {"text truncated at final empty fragment",
     {F(0x01, "a\xe2\x82"), F(0x80, "")},
     "",
     1007,
     {0, 0, 0}},
    {"text truncated single frame", {F(0x81, "\xf0\x9f")}, "", 1007, {0, 0, 0}},
    {"close reason bad utf8", {F(0x88, "\x03\xe8\xff")}, "", 1007, {0, 0, 0}},
    {"close reason truncated utf8",
     {F(0x88, "\x03\xe8"
              "a\xc3")},
     "",
     1007,
     {0, 0, 0}},
    /* 1009 and limits */
    {"frame at limit", {F(0x82, "0123456789")}, "B(0123456789)", 0, {10, 0, 0}},
    {"frame over limit", {FC(0x82, 11)}, "", 1009, {10, 0, 0}},
    {"frame far over limit", {FC(0x82, 1ull << 40)}, "", 1009, {10, 0, 0}},
    {"ping over frame limit", {F(0x89, "0123456789a")}, "", 1009, {10, 0, 0}},
    {"message at limit",
     {F(0x02, "012345"), F(0x89, "ping ping ping"), F(0x80, "6789")},
     "P(ping ping ping)B(0123456789)",
     0,
     {0, 10, 0}},
    {"message over limit",
     {F(0x02, "012345"), FC(0x80, 5)},
     "",
     1009,
     {0, 10, 0}},
    {"single frame over message limit", {FC(0x81, 11)}, "", 1009, {0, 10, 0}},
    {"limit resets per message",
     {F(0x82, "0123456789"), F(0x01, "01234"), F(0x80, "56789")},
     "B(0123456789)T(0123456789)",
     0,
     {0, 10, 0}},
    {"empty message at zero-ish limit", {F(0x81, "")}, "T()", 0, {1, 1, 0}},
};

/* Run with allow_rsv1, as once permessage-deflate is negotiated: RSV1 may
 * mark the first frame of a data message as compressed, and compressed
 * text is DEFLATE data, not UTF-8 (logged as TZ and BZ). */
static const rcase zcases[] = {
    {"rsv1 text",
     {F(0xC1, "\xf2\x48\xcd\xc9\xc9\x07\x00")},
     "TZ(\\xF2H\\xCD\\xC9\\xC9\\x07\\x00)",
     0,
     {0, 0, 0}},
    {"rsv1 binary", {F(0xC2, "\xff\x00")}, "BZ(\\xFF\\x00)", 0, {0, 0, 0}},
    {"rsv1 empty", {F(0xC1, "")}, "TZ()", 0, {0, 0, 0}},
    {"rsv1 fragmented with control frames",
     {F(0x41, "\xf2"), F(0x89, "p"), F(0x00, "\x48\xcd"), F(0x8A, ""),
      F(0x00, ""), F(0x80, "\xc9\xc9\x07\x00")},
     "P(p)O()TZ(\\xF2H\\xCD\\xC9\\xC9\\x07\\x00)",
     0,
     {0, 0, 0}},
    {"rsv1 fragmented binary",
     {F(0x42, "\x01"), F(0x80, "\x02")},
     "BZ(\\x01\\x02)",
     0,
     {0, 0, 0}},
    {"compressed then plain messages",
     {F(0xC1, "\xff"), F(0x81, "ok"), F(0x01, "a"), F(0x80, "b"), F(0xC2, "z")},
     "TZ(\\xFF)T(ok)T(ab)BZ(z)",
     0,
     {0, 0, 0}},
    {"plain text still checked when rsv1 is allowed",
     {F(0xC1, "\xff"), F(0x81, "\xff")},
     "TZ(\\xFF)",
     1007,
     {0, 0, 0}},
    {"rsv1 on a continuation frame",
     {F(0x41, "a"), F(0xC0, "b")},
     "",
     1002,
     {0, 0, 0}},
    {"rsv1 on a continuation of a plain message",
     {F(0x01, "a"), F(0x40, "b"), F(0x80, "")},
     "",
     1002,
     {0, 0, 0}},
    {"rsv1 on ping", {F(0xC9, "")}, "", 1002, {0, 0, 0}},
    {"rsv1 on pong", {F(0xCA, "x")}, "", 1002, {0, 0, 0}},
    {"rsv1 on close", {F(0xC8, "\x03\xe8")}, "", 1002, {0, 0, 0}},
    {"rsv1 on ping inside a compressed message",
     {F(0x41, "a"), F(0xC9, "")},
     "",
     1002,
     {0, 0, 0}},
    {"rsv2 with rsv1 allowed", {F(0xA1, "a")}, "", 1002, {0, 0, 0}},
    {"rsv3 with rsv1 allowed", {F(0x91, "a")}, "", 1002, {0, 0, 0}},
    {"rsv1 and rsv2", {F(0xE1, "a")}, "", 1002, {0, 0, 0}},
    {"rsv1 on a reserved opcode", {F(0xC3, "")}, "", 1002, {0, 0, 0}},
    {"compressed message over the limit",
     {F(0x42, "01234"), FC(0x80, 6)},
     "",
     1009,
     {0, 10, 0}},
};

static void build_case(const rcase *c, bytes *b, size_t *close_end) {
  *close_end = 0;
  for (unsigned i = 0; i < 10 && c->f[i].data; i++) {
    const fspec *f = &c->f[i];
    put_frame(b, f->b0, f->data, f->len, !f->unmasked, f->claim, i + 1);
    if ((f->b0 & 0x0F) == WEBSOCK__OP_CLOSE && !*close_end)
      *close_end = b->len;
  }
}

START_TEST(test_table) {
  const rcase *c = &rcases[_i];
  bytes b = {0};
  size_t close_end;
  build_case(c, &b, &close_end);
  run_all(&c->lim, 0, b.p, b.len, c->log, c->err,
          close_end ? close_end : b.len);
  free(b.p);
}
END_TEST

START_TEST(test_rsv1_table) {
  const rcase *c = &zcases[_i];
  bytes b = {0};
  size_t close_end;
  build_case(c, &b, &close_end);
  run_all(&c->lim, 1, b.p, b.len, c->log, c->err,
          close_end ? close_end : b.len);
  free(b.p);
}
END_TEST

/* Opcodes 3-7 and 0xB-0xF, final or not, alone or inside a message. */
START_TEST(test_reserved_opcodes) {
  static const limits lim = {0, 0, 0};
  for (unsigned op = 3; op < 16; op++) {
    if (op >= 8 && op <= 0xA)
      continue;
    for (unsigned fin = 0; fin < 2; fin++) {
      bytes b = {0};
      put_frame(&b, (uint8_t)(fin << 7 | op), "", 0, 1, 0, op);
      run_all(&lim, 0, b.p, b.len, "", 1002, 0);
      b.len = 0;
      put_frame(&b, 0x01, "a", 1, 1, 0, 1);
      put_frame(&b, (uint8_t)(fin << 7 | op), "xy", 2, 1, 0, 2);
      run_all(&lim, 0, b.p, b.len, "", 1002, 0);
      free(b.p);
    }
  }
}
END_TEST

/* Every length encoding through the reader, content compared exactly. */
static const size_t data_lengths[] = {0,    1,     125,   126,  127,
                                      1000, 65535, 65536, 70001};

START_TEST(test_lengths) {
  size_t len = data_lengths[_i];
  uint8_t *payload = malloc(len + 1);
  ck_assert_ptr_nonnull(payload);
  for (size_t i = 0; i < len; i++)
    payload[i] = (uint8_t)(i * 31 + (i >> 8));
  for (int masked = 0; masked < 2; masked++) {
    bytes b = {0};
    put_frame(&b, 0x82, payload, len, masked, 0, 5);
    size_t want_hdr = 2u + (len > 125 ? 2u : 0u) + (len > 65535 ? 6u : 0u) +
                      (masked ? 4u : 0u);
    ck_assert_uint_eq(b.len, want_hdr + len);
    limits lim = {0, 0, !masked};
    rec rc;
    memset(&rc, 0, sizeof rc);
    result res;
    test_rng rng;
    test_rng_seed(&rng, len);
    size_t *cuts = malloc((b.len + 1) * sizeof *cuts);
    for (int it = 0; it < 20; it++) {
      size_t nc = it == 0 ? 0 : test_random_cuts(&rng, b.len, cuts, b.len);
      run_split(&lim, 0, b.p, b.len, cuts, nc, &rc, &res, NULL);
      ck_assert_int_eq(res.err, 0);
      ck_assert_uint_eq(res.consumed, b.len);
      ck_assert_uint_eq(rc.msglen, len);
      if (len)
        ck_assert_int_eq(memcmp(rc.msg, payload, len), 0);
      ck_assert_int_eq(rc.in_msg, 0);
    }
    free(cuts);
    free(rc.msg);
    free(b.p);
  }
  free(payload);
}
END_TEST

/* Pieces arrive as they are fed (not buffered to the end of the frame),
 * and an empty text message is exactly one call with first = last = 1. */
typedef struct piece_log {
  int n;
  int first[8], last[8];
  size_t len[8];
} piece_log;

static int piece_data(void *ud, int opcode, const uint8_t *data, size_t len,
                      int first, int last) {
  (void)opcode;
  (void)data;
  piece_log *l = ud;
  ck_assert_int_lt(l->n, 8);
  l->first[l->n] = first;
  l->last[l->n] = last;
  l->len[l->n] = len;
  l->n++;
  return 0;
}

static int piece_control(void *ud, int opcode, const uint8_t *data,
                         size_t len) {
  (void)ud;
  (void)opcode;
  (void)data;
  (void)len;
  return 0;
}

START_TEST(test_pieces) {
  static const websock__reader_callbacks cb = {piece_data, piece_control};
  websock__reader r;
  piece_log l;
  bytes b = {0};

  /* empty text message */
  put_frame(&b, 0x81, "", 0, 1, 0, 1);
  websock__reader_init(&r, 0, 0, 1);
  memset(&l, 0, sizeof l);
  ck_assert_int_eq(websock__reader_feed(&r, b.p, b.len, &cb, &l),
                   (ssize_t)b.len);
  ck_assert_int_eq(l.n, 1);
  ck_assert_int_eq(l.first[0], 1);
  ck_assert_int_eq(l.last[0], 1);
  ck_assert_uint_eq(l.len[0], 0);

  /* 10-byte frame fed as header + 3, then 7 */
  b.len = 0;
  put_frame(&b, 0x82, "0123456789", 10, 1, 0, 2);
  websock__reader_init(&r, 0, 0, 1);
  memset(&l, 0, sizeof l);
  ck_assert_int_eq(websock__reader_feed(&r, b.p, 6 + 3, &cb, &l), 9);
  ck_assert_int_eq(l.n, 1);
  ck_assert_int_eq(l.first[0], 1);
  ck_assert_int_eq(l.last[0], 0);
  ck_assert_uint_eq(l.len[0], 3);
  ck_assert_mem_eq(b.p + 6, "012", 3);
  ck_assert_int_eq(websock__reader_feed(&r, b.p + 9, 7, &cb, &l), 7);
  ck_assert_int_eq(l.n, 2);
  ck_assert_int_eq(l.first[1], 0);
  ck_assert_int_eq(l.last[1], 1);
  ck_assert_uint_eq(l.len[1], 7);
  ck_assert_mem_eq(b.p + 6, "0123456789", 10); /* unmasked in place */

  /* fragmented: non-final empty first frame gives first=1,last=0,len=0 */
  b.len = 0;
  put_frame(&b, 0x01, "", 0, 1, 0, 3);
  put_frame(&b, 0x80, "x", 1, 1, 0, 4);
  websock__reader_init(&r, 0, 0, 1);
  memset(&l, 0, sizeof l);
  ck_assert_int_eq(websock__reader_feed(&r, b.p, b.len, &cb, &l),
                   (ssize_t)b.len);
  ck_assert_int_eq(l.n, 2);
  ck_assert_int_eq(l.first[0], 1);
  ck_assert_int_eq(l.last[0], 0);
  ck_assert_int_eq(l.first[1], 0);
  ck_assert_int_eq(l.last[1], 1);
  free(b.p);
}
END_TEST

/* Errors come as early as the bytes allow: bad UTF-8 at the bad byte, size
 * limits at the header, before any payload. */
START_TEST(test_fail_fast) {
  static const websock__reader_callbacks cb = {piece_data, piece_control};
  websock__reader r;
  piece_log l;
  bytes b = {0};

  put_frame(&b, 0x81, "ab\xed\xa0\x80zz", 7, 1, 0, 1);
  websock__reader_init(&r, 0, 0, 1);
  memset(&l, 0, sizeof l);
  ck_assert_int_eq(websock__reader_feed(&r, b.p, 6 + 3, &cb, &l), 9);
  ck_assert_int_eq(websock__reader_feed(&r, b.p + 9, 1, &cb, &l),
                   WEBSOCK__PROTO_ERR_UTF8);
  ck_assert_int_eq(r.error_close_code, 1007);
  ck_assert_int_eq(websock__reader_feed(&r, b.p + 10, 1, &cb, &l), 0);

  /* 0xF4 0x90 fails at the 0x90, in a second fragment */
  b.len = 0;
  put_frame(&b, 0x01, "\xf4", 1, 1, 0, 2);
  size_t first_len = b.len;
  put_frame(&b, 0x80, "\x90\x80\x80", 3, 1, 0, 3);
  websock__reader_init(&r, 0, 0, 1);
  ck_assert_int_eq(websock__reader_feed(&r, b.p, first_len + 6, &cb, &l),
                   (ssize_t)(first_len + 6));
  ck_assert_int_eq(websock__reader_feed(&r, b.p + first_len + 6, 1, &cb, &l),
                   WEBSOCK__PROTO_ERR_UTF8);

  /* frame limit from the header alone (masked: 2 + 4 bytes) */
  b.len = 0;
  put_frame(&b, 0x82, NULL, 0, 1, 101, 4);
  websock__reader_init(&r, 100, 0, 1);
  ck_assert_int_eq(websock__reader_feed(&r, b.p, 5, &cb, &l), 5);
  ck_assert_int_eq(websock__reader_feed(&r, b.p + 5, 1, &cb, &l),
                   WEBSOCK__PROTO_ERR_TOO_BIG);
  ck_assert_int_eq(r.error_close_code, 1009);

  /* RSV and opcode errors from the first byte, mask from the second */
  uint8_t bad[2] = {0xC1, 0x80};
  websock__reader_init(&r, 0, 0, 1);
  ck_assert_int_eq(websock__reader_feed(&r, bad, 1, &cb, &l),
                   WEBSOCK__PROTO_ERR_PROTOCOL);
  uint8_t unmasked[2] = {0x81, 0x05};
  websock__reader_init(&r, 0, 0, 1);
  ck_assert_int_eq(websock__reader_feed(&r, unmasked, 1, &cb, &l), 1);
  ck_assert_int_eq(websock__reader_feed(&r, unmasked + 1, 1, &cb, &l),
                   WEBSOCK__PROTO_ERR_PROTOCOL);
  ck_assert_int_eq(r.error_close_code, 1002);
  free(b.p);
}
END_TEST

/* A callback returning non-zero stops feed with ERR_CALLBACK at once. */
START_TEST(test_callback_stop) {
  bytes b = {0};
  put_frame(&b, 0x89, "p", 1, 1, 0, 1);
  put_frame(&b, 0x81, "hello", 5, 1, 0, 2);
  put_frame(&b, 0x89, "q", 1, 1, 0, 3);
  for (int stop = 1; stop <= 3; stop++) {
    rec rc;
    memset(&rc, 0, sizeof rc);
    rc.stop_at = stop;
    rc.buf_lo = b.p;
    rc.buf_hi = b.p + b.len;
    uint8_t *copy = malloc(b.len);
    memcpy(copy, b.p, b.len);
    rc.buf_lo = copy;
    rc.buf_hi = copy + b.len;
    websock__reader r;
    websock__reader_init(&r, 0, 0, 1);
    ck_assert_int_eq(websock__reader_feed(&r, copy, b.len, &rec_cb, &rc),
                     WEBSOCK__PROTO_ERR_CALLBACK);
    ck_assert_int_eq(rc.calls, stop);
    ck_assert_int_eq(websock__reader_feed(&r, copy, b.len, &rec_cb, &rc), 0);
    free(copy);
    free(rc.msg);
  }
  free(b.p);
}
END_TEST

/* Random valid streams: messages of random types and fragment counts with
 * control frames between fragments, checked against the expected log. From
 * _i = 10 on permessage-deflate is on and some messages are compressed
 * (RSV1 on their first frame, any bytes even in text). */
START_TEST(test_random_streams) {
  int deflate_on = _i >= 10;
  test_rng rng;
  test_rng_seed(&rng, 1234 + (uint64_t)_i);
  static const char *text_parts[] = {"a", "\xc3\xa9", "\xe2\x82\xac",
                                     "\xf0\x9f\x98\x80", "hello "};
  for (int it = 0; it < 20; it++) {
    bytes in = {0}, want = {0}, msg = {0};
    bytes_put(&msg, "x", 1); /* never NULL, even for empty messages */
    rec rc;
    memset(&rc, 0, sizeof rc);
    int nmsg = (int)test_rng_range(&rng, 1, 6);
    unsigned seed = 1;
    for (int m = 0; m < nmsg; m++) {
      int text = test_rng_next(&rng) & 1;
      int z = deflate_on && (test_rng_next(&rng) & 1);
      msg.len = 0;
      size_t parts = test_rng_range(&rng, 0, 12);
      for (size_t i = 0; i < parts; i++) {
        if (text && !z) {
          const char *p = text_parts[test_rng_next(&rng) % 5];
          bytes_put(&msg, p, strlen(p));
        } else {
          uint8_t x = (uint8_t)test_rng_next(&rng);
          bytes_put(&msg, &x, 1);
        }
      }
      /* random fragment boundaries, even inside code points */
      size_t nfrag = test_rng_range(&rng, 1, 4);
      size_t pos = 0;
      for (size_t f = 0; f < nfrag; f++) {
        size_t end =
            f + 1 == nfrag ? msg.len : test_rng_range(&rng, pos, msg.len);
        uint8_t op = f == 0 ? (text ? 1 : 2) : 0;
        if (f + 1 == nfrag)
          op |= 0x80;
        if (f == 0 && z)
          op |= 0x40;
        put_frame(&in, op, msg.p + pos, end - pos, 1, 0, seed++);
        pos = end;
        if (f + 1 == nfrag) {
          /* expected entry, escaped the way the recorder does it */
          rec_log(&rc, text ? (z ? "TZ" : "T") : (z ? "BZ" : "B"), msg.p,
                  msg.len);
          bytes_put(&want, rc.log, rc.loglen);
          rc.loglen = 0;
        }
        if (test_rng_next(&rng) % 3 == 0) {
          char ping[8];
          int k = snprintf(ping, sizeof ping, "p%u", seed);
          put_frame(&in, 0x89, ping, (size_t)k, 1, 0, seed++);
          bytes_put(&want, "P(", 2);
          bytes_put(&want, ping, (size_t)k);
          bytes_put(&want, ")", 1);
        }
      }
    }
    bytes_put(&want, "", 1);
    static const limits lim = {0, 0, 0};
    run_all(&lim, deflate_on, in.p, in.len, (const char *)want.p, 0, in.len);
    free(in.p);
    free(want.p);
    free(msg.p);
  }
}
END_TEST

static Suite *reader_suite(void) {
  Suite *s = suite_create("reader");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_table, 0,
                      (int)(sizeof rcases / sizeof rcases[0]));
  tcase_add_loop_test(tc, test_rsv1_table, 0,
                      (int)(sizeof zcases / sizeof zcases[0]));
  tcase_add_test(tc, test_reserved_opcodes);
  tcase_add_loop_test(tc, test_lengths, 0,
                      (int)(sizeof data_lengths / sizeof data_lengths[0]));
  tcase_add_test(tc, test_pieces);
  tcase_add_test(tc, test_fail_fast);
  tcase_add_test(tc, test_callback_stop);
  tcase_add_loop_test(tc, test_random_streams, 0, 20);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(reader_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
