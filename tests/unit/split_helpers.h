/* Shared helpers for the parser unit tests: a fixed-seed PRNG for random
 * splits and a buffer that ends exactly at a PROT_NONE page to catch
 * over-reads. Header-only; every function is static. */
#ifndef WEBSOCK_TEST_SPLIT_HELPERS_H
#define WEBSOCK_TEST_SPLIT_HELPERS_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Like ck_assert, but silent on success: Check records every passing
 * ck_assert through a pipe, which dominates run time in hot loops. */
#define TEST_REQUIRE(cond)                                                     \
  do {                                                                         \
    if (!(cond))                                                               \
      ck_abort_msg("%s:%d: requirement failed: %s", __FILE__, __LINE__,        \
                   #cond);                                                     \
  } while (0)

/* xorshift64*: deterministic, so a failing split can be replayed. */
typedef struct test_rng {
  uint64_t s;
} test_rng;

static inline void test_rng_seed(test_rng *r, uint64_t seed) {
  r->s = seed * 0x9E3779B97F4A7C15ull + 1;
}

static inline uint64_t test_rng_next(test_rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 0x2545F4914F6CDD1Dull;
}

/* Uniform-ish value in [lo, hi]. */
static inline size_t test_rng_range(test_rng *r, size_t lo, size_t hi) {
  return lo + (size_t)(test_rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* Memory whose last readable byte is just before a PROT_NONE page. */
typedef struct test_guard {
  uint8_t *base;
  size_t map_len;
  size_t room; /* readable bytes before the guard page */
} test_guard;

static inline void test_guard_init(test_guard *g, size_t max_len) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t room = (max_len + page - 1) / page * page;
  if (room == 0)
    room = page;
  g->map_len = room + page;
  void *m = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(m, MAP_FAILED);
  g->base = m;
  g->room = room;
  ck_assert_int_eq(mprotect(g->base + room, page, PROT_NONE), 0);
}

/* Copies |len| bytes so that they end exactly at the guard page. */
static inline uint8_t *test_guard_place(test_guard *g, const void *data,
                                        size_t len) {
  ck_assert_uint_le(len, g->room);
  uint8_t *p = g->base + g->room - len;
  if (len)
    memcpy(p, data, len);
  return p;
}

static inline void test_guard_free(test_guard *g) {
  munmap(g->base, g->map_len);
  g->base = NULL;
}

/* Fills |cuts| with increasing split points in (0, len) for a random split
 * of |len| bytes into pieces; returns how many cut points were made. */
static inline size_t test_random_cuts(test_rng *r, size_t len, size_t *cuts,
                                      size_t max_cuts) {
  size_t n = 0, pos = 0;
  while (n < max_cuts && pos < len) {
    /* Mostly small pieces, sometimes large ones, sometimes empty ones. */
    size_t step;
    uint64_t kind = test_rng_next(r) % 8;
    if (kind == 0)
      step = 0;
    else if (kind < 6)
      step = test_rng_range(r, 1, 4);
    else
      step = test_rng_range(r, 1, len);
    pos += step;
    if (pos >= len)
      break;
    cuts[n++] = pos;
  }
  return n;
}

#endif
