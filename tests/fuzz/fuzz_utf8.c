/* libFuzzer target: incremental UTF-8 validation in input-derived splits
 * must agree with the whole-buffer check and with byte-at-a-time feeding.
 * Layer: proto tests. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Index of the byte at which byte-wise feeding first fails, or size. */
static size_t utf8_first_bad(const uint8_t *p, size_t n) {
  websock__utf8 v;
  websock__utf8_init(&v);
  for (size_t i = 0; i < n; i++)
    if (!websock__utf8_feed(&v, p + i, 1))
      return i;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  /* First byte seeds the split sizes; the rest is the text. */
  uint32_t seed = data[0] * 2654435761u + 1;
  const uint8_t *p = data + 1;
  size_t n = size - 1;

  int whole = websock__utf8_valid(p, n);
  size_t bad = utf8_first_bad(p, n);
  websock__utf8 v;
  websock__utf8_init(&v);
  size_t pos = 0;
  int ok = 1;
  while (pos < n) {
    seed = seed * 1103515245u + 12345u;
    size_t step = (seed >> 16) % 17; /* 0..16, empty pieces included */
    if (step > n - pos)
      step = n - pos;
    int r = websock__utf8_feed(&v, p + pos, step);
    if (ok && !r) {
      /* the failure must be reported in the piece holding the bad byte */
      if (!(bad >= pos && bad < pos + step))
        abort();
    }
    if (!ok && r)
      abort(); /* once invalid, always invalid */
    if (ok && r && bad < pos + step)
      abort(); /* a bad byte went by unnoticed */
    ok = r;
    pos += step;
  }
  int incremental = ok && websock__utf8_complete(&v);
  if (incremental != whole)
    abort();
  if (whole && bad != n)
    abort();
  return 0;
}
