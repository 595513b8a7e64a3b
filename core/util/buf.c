/* Growable byte buffer (see buf.h). Layer: util. */
#include "buf.h"

#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int websock__buf_reserve(websock__buf *b, size_t extra) {
  if (b->cap - b->len >= extra)
    return 0;
  if (extra > SIZE_MAX - b->len)
    return -1; /* the sum would wrap: no such buffer can exist */
  size_t want = b->len + extra;
  /* Grow geometrically from a small floor so repeated appends stay O(n). */
  size_t cap = b->cap ? b->cap : 256;
  while (cap < want)
    cap = cap * 2 > cap ? cap * 2 : want;
  uint8_t *p = websock__realloc(b->data, cap);
  if (!p)
    return -1;
  b->data = p;
  b->cap = cap;
  return 1;
}

int websock__buf_append(websock__buf *b, const void *p, size_t n) {
  int r = websock__buf_reserve(b, n);
  if (r >= 0 && n) {
    memcpy(b->data + b->len, p, n);
    b->len += n;
  }
  return r;
}

void websock__buf_consume(websock__buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

int websock__buf_shrink_if_empty(websock__buf *b) {
  if (b->len || !b->data)
    return 0;
  websock__free(b->data);
  b->data = NULL;
  b->cap = 0;
  return 1;
}

void websock__buf_free(websock__buf *b) {
  websock__free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void websock__buf_swap(websock__buf *a, websock__buf *b) {
  websock__buf t = *a;
  *a = *b;
  *b = t;
}
