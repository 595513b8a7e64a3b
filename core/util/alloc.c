/* The core's allocator with its failure hook (see alloc.h). Layer: util. */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

static atomic_long alloc_count;
static atomic_long alloc_countdown; /* > 0: armed; fails when it hits 0 */
static atomic_long alloc_failed;

/* 1 when this allocation is the one to fail. One relaxed load when the
 * hook is not armed, which is always outside tests. */
static int alloc_should_fail(void) {
  atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
  if (atomic_load_explicit(&alloc_countdown, memory_order_relaxed) <= 0)
    return 0;
  if (atomic_fetch_sub_explicit(&alloc_countdown, 1, memory_order_acq_rel) != 1)
    return 0;
  atomic_fetch_add_explicit(&alloc_failed, 1, memory_order_relaxed);
  return 1;
}

void *websock__malloc(size_t n) {
  return alloc_should_fail() ? NULL : malloc(n);
}

void *websock__calloc(size_t n, size_t size) {
  return alloc_should_fail() ? NULL : calloc(n, size);
}

void *websock__realloc(void *p, size_t n) {
  return alloc_should_fail() ? NULL : realloc(p, n);
}

void websock__free(void *p) {
  free(p);
}

void *websock__map(size_t n) {
  if (alloc_should_fail())
    return NULL;
  void *p =
      mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void *websock__remap(void *p, size_t old_n, size_t n) {
  if (alloc_should_fail())
    return NULL;
  void *q = mremap(p, old_n, n, MREMAP_MAYMOVE);
  return q == MAP_FAILED ? NULL : q;
}

void websock__unmap(void *p, size_t n) {
  munmap(p, n);
}

void websock__alloc_fail_at(long n) {
  atomic_store(&alloc_countdown, n > 0 ? n : 0);
}

long websock__alloc_count(void) {
  return atomic_load(&alloc_count);
}

long websock__alloc_failed(void) {
  return atomic_load(&alloc_failed);
}
