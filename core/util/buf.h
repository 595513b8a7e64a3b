/* Growable byte buffer that keeps its capacity between uses, so the steady
 * state allocates nothing. Layer: util. */
#ifndef WEBSOCK_UTIL_BUF_H
#define WEBSOCK_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct websock__buf {
  uint8_t *data; /* heap block, mapping (cap >= 64 KiB) or NULL */
  size_t len;    /* bytes in use */
  size_t cap;    /* bytes allocated */
} websock__buf;

/* Makes room for |extra| more bytes. Returns 1 when it had to allocate,
 * 0 when the capacity sufficed, -1 on allocation failure. An empty buffer
 * gets about the room asked for; one that grows, twice its size. Blocks
 * of 64 KiB and more are mappings of their own, given back to the system
 * when freed. Only these functions may allocate, resize or free |data|. */
int websock__buf_grow(websock__buf *b, size_t extra);
static inline int websock__buf_reserve(websock__buf *b, size_t extra) {
  /* The common case, room enough, costs a compare at the caller. */
  return b->cap - b->len >= extra ? 0 : websock__buf_grow(b, extra);
}
/* Like reserve, but grows to about len + |extra| only (rounded up to 64
 * bytes, or a page for a mapping), for a caller that grows in steps of its
 * own under a limit. */
int websock__buf_reserve_exact(websock__buf *b, size_t extra);
/* Appends |n| bytes; same return convention as reserve. */
int websock__buf_append(websock__buf *b, const void *p, size_t n);
/* Drops the first |n| bytes, moving the rest to the front. */
void websock__buf_consume(websock__buf *b, size_t n);
/* Frees the block when it is empty (returns 1 when it freed something). */
int websock__buf_shrink_if_empty(websock__buf *b);
void websock__buf_free(websock__buf *b);
void websock__buf_swap(websock__buf *a, websock__buf *b);

#endif
