/* The core's allocator: every allocation of the library goes through
 * these, so a test can make the n-th one fail (failmalloc) and check that
 * running out of memory never crashes the server, harms other connections
 * or drops an event silently. Layer: util. */
#ifndef WEBSOCK_UTIL_ALLOC_H
#define WEBSOCK_UTIL_ALLOC_H

#include <stddef.h>

void *websock__malloc(size_t n);
void *websock__calloc(size_t n, size_t size);
void *websock__realloc(void *p, size_t n);
void websock__free(void *p);

/* Pages of their own for large buffers (util/buf.c): anonymous mappings
 * that go back to the system the moment they are unmapped, whatever the C
 * library's heap does with its own free memory. |n| is a multiple of the
 * page size. Counted and failed like the heap functions. */
void *websock__map(size_t n);
void *websock__remap(void *p, size_t old_n, size_t n);
void websock__unmap(void *p, size_t n);

/* Test hook: the |n|-th allocation from now fails (1: the next one), and
 * every later one succeeds again; 0 disarms. Thread: any. */
void websock__alloc_fail_at(long n);
/* Allocations made through this allocator so far. Thread: any. */
long websock__alloc_count(void);
/* Allocations failed on purpose so far. Thread: any. */
long websock__alloc_failed(void);

#endif
