/* Random bytes from getrandom(2), buffered per thread. Layer: util. */
#include "random.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#define RANDOM_BLOCK 256

/* Bytes drawn but not handed out yet. Only its own thread reads a block,
 * and a byte is handed out once: used bytes are wiped. */
static _Thread_local struct {
  uint8_t bytes[RANDOM_BLOCK];
  size_t left; /* unused bytes at the end of |bytes| */
} random_block;

/* getrandom until |n| bytes came, across signals and short reads. */
static int random_fill(uint8_t *p, size_t n) {
  while (n) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += got;
    n -= (size_t)got;
  }
  return 0;
}

int websock__random(void *out, size_t n) {
  uint8_t *p = out;
  if (n > RANDOM_BLOCK / 4) /* large requests skip the block */
    return random_fill(p, n);
  if (random_block.left < n) {
    if (random_fill(random_block.bytes, RANDOM_BLOCK) < 0)
      return -1;
    random_block.left = RANDOM_BLOCK;
  }
  uint8_t *from = random_block.bytes + RANDOM_BLOCK - random_block.left;
  memcpy(p, from, n);
  memset(from, 0, n);
  random_block.left -= n;
  return 0;
}

int websock__random_key(void *ud, uint8_t key[4]) {
  (void)ud;
  return websock__random(key, 4);
}
