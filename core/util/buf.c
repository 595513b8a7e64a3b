/* Growable byte buffer (see buf.h). Layer: util. */
#include "buf.h"

#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* From this capacity on a buffer is a mapping of its own (alloc.h): a
 * burst of large messages or a client that reads nothing grows buffers of
 * megabytes, and the heap would keep that memory resident after they are
 * freed (glibc raises its own mapping threshold after freeing such
 * blocks, and agents allocate from arenas of their own). Smaller buffers
 * stay on the heap, where they are cheap. */
#define BUF_MAP_MIN ((size_t)64 * 1024)
#define BUF_PAGE ((size_t)4096)

static int buf_mapped(size_t cap) {
  return cap >= BUF_MAP_MIN;
}

/* Moves |b| to a block of |cap| bytes. Returns 0 or -1. */
static int buf_resize(websock__buf *b, size_t cap) {
  uint8_t *p;
  if (!buf_mapped(cap)) {
    p = websock__realloc(b->data, cap);
  } else if (buf_mapped(b->cap)) {
    p = websock__remap(b->data, b->cap, cap);
  } else {
    p = websock__map(cap);
    if (p && b->len)
      memcpy(p, b->data, b->len);
    if (p)
      websock__free(b->data);
  }
  if (!p)
    return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

int websock__buf_grow(websock__buf *b, size_t extra) {
  if (b->cap - b->len >= extra)
    return 0;
  if (extra > SIZE_MAX - b->len - BUF_PAGE)
    return -1; /* the sum would wrap: no such buffer can exist */
  size_t want = b->len + extra;
  size_t cap;
  if (b->len == 0 && want >= 1024) {
    /* Filled at once (a message, a job's payload): the size it needs, not
     * the next power of two, so a 64 KiB message takes 64 KiB. */
    cap = (want + 63) & ~(size_t)63;
  } else {
    /* Grown piece by piece: geometrically, so appends stay O(n). */
    cap = b->cap ? b->cap : 256;
    while (cap < want)
      cap = cap * 2 > cap ? cap * 2 : want;
  }
  if (buf_mapped(cap))
    cap = (cap + BUF_PAGE - 1) & ~(BUF_PAGE - 1);
  return buf_resize(b, cap) < 0 ? -1 : 1;
}

int websock__buf_reserve_exact(websock__buf *b, size_t extra) {
  if (b->cap - b->len >= extra)
    return 0;
  if (extra > SIZE_MAX - b->len - BUF_PAGE)
    return -1;
  size_t cap = (b->len + extra + 63) & ~(size_t)63;
  if (buf_mapped(cap))
    cap = (cap + BUF_PAGE - 1) & ~(BUF_PAGE - 1);
  return buf_resize(b, cap) < 0 ? -1 : 1;
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
  websock__buf_free(b);
  return 1;
}

void websock__buf_free(websock__buf *b) {
  if (buf_mapped(b->cap))
    websock__unmap(b->data, b->cap);
  else
    websock__free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void websock__buf_swap(websock__buf *a, websock__buf *b) {
  websock__buf t = *a;
  *a = *b;
  *b = t;
}
