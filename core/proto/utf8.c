/* Incremental UTF-8 validation with a small table-driven DFA.
 * Layer: proto (pure, no I/O). Byte classes keep the transition table tiny;
 * runs of ASCII are skipped 8 bytes at a time. */
#include "utf8.h"

#include <string.h>

/* Byte classes. The split of 0x80..0xBF into three ranges is what lets the
 * second byte after E0/ED/F0/F4 reject overlongs, surrogates and code points
 * above U+10FFFF right away. */
enum {
  C_ASCII = 0, /* 00..7F */
  C_CONT_LO,   /* 80..8F */
  C_CONT_MID,  /* 90..9F */
  C_CONT_HI,   /* A0..BF */
  C_BAD,       /* C0 C1 F5..FF: never valid */
  C_LEAD2,     /* C2..DF */
  C_E0,        /* E0: second byte A0..BF (no overlongs) */
  C_LEAD3,     /* E1..EC EE EF */
  C_ED,        /* ED: second byte 80..9F (no surrogates) */
  C_F0,        /* F0: second byte 90..BF (no overlongs) */
  C_LEAD4,     /* F1..F3 */
  C_F4,        /* F4: second byte 80..8F (<= U+10FFFF) */
  C_COUNT
};

/* DFA states. ACCEPT must be 0 so a zeroed validator is ready to use. */
enum {
  S_ACCEPT = 0,
  S_REJECT,
  S_NEED1, /* one continuation byte left */
  S_NEED2, /* two continuation bytes left */
  S_NEED3, /* three continuation bytes left */
  S_E0,    /* after E0 */
  S_ED,    /* after ED */
  S_F0,    /* after F0 */
  S_F4,    /* after F4 */
  S_COUNT
};

static const uint8_t utf8_class[256] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0,
    /* 80..8F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 90..9F */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* A0..BF */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3,
    /* C0..C1, C2..DF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 5, 5, 5, 5,
    /* E0, E1..EC, ED, EE..EF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0, F1..F3, F4, F5..FF */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4};

#define R S_REJECT
static const uint8_t utf8_next[S_COUNT][C_COUNT] = {
    /* columns in byte class order: ASCII, CONT_LO, CONT_MID, CONT_HI, BAD,
     * LEAD2, E0, LEAD3, ED, F0, LEAD4, F4 */
    [S_ACCEPT] = {S_ACCEPT, R, R, R, R, S_NEED1, S_E0, S_NEED2, S_ED, S_F0,
                  S_NEED3, S_F4},
    [S_REJECT] = {R, R, R, R, R, R, R, R, R, R, R, R},
    [S_NEED1] = {R, S_ACCEPT, S_ACCEPT, S_ACCEPT, R, R, R, R, R, R, R, R},
    [S_NEED2] = {R, S_NEED1, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R},
    [S_NEED3] = {R, S_NEED2, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R},
    [S_E0] = {R, R, R, S_NEED1, R, R, R, R, R, R, R, R},
    [S_ED] = {R, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R, R},
    [S_F0] = {R, R, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R},
    [S_F4] = {R, S_NEED2, R, R, R, R, R, R, R, R, R, R},
};
#undef R

#define UTF8_HIGH_BITS 0x8080808080808080ull

/* Runs the DFA over |p| from |state|; stops at the first rejecting byte. */
static uint32_t utf8_run(uint32_t state, const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (state == S_ACCEPT) {
      /* Text is mostly ASCII: skip whole words with no high bit set. */
      while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        if (w & UTF8_HIGH_BITS)
          break;
        i += 8;
      }
      if (i == n)
        break;
    }
    state = utf8_next[state][utf8_class[p[i]]];
    if (state == S_REJECT)
      break;
    i++;
  }
  return state;
}

void websock__utf8_init(websock__utf8 *v) {
  v->state = S_ACCEPT;
}

int websock__utf8_feed(websock__utf8 *v, const uint8_t *p, size_t n) {
  if (v->state == S_REJECT)
    return 0;
  v->state = utf8_run(v->state, p, n);
  return v->state != S_REJECT;
}

int websock__utf8_complete(const websock__utf8 *v) {
  return v->state == S_ACCEPT;
}

int websock__utf8_valid(const uint8_t *p, size_t n) {
  return utf8_run(S_ACCEPT, p, n) == S_ACCEPT;
}
