/* Statistics counters that one thread writes and any thread reads. The
 * owner adds with a plain load and store, not a locked read-modify-write:
 * on the paths that count every message (a loop's messages and bytes, an
 * agent's events) the lock prefix costs more than the rest of the count,
 * and readers still see each value whole. A counter that several threads
 * add to uses atomic_fetch_add instead. Layer: util. */
#ifndef WEBSOCK_UTIL_COUNTER_H
#define WEBSOCK_UTIL_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

/* Adds |n| to |c|. Thread: the counter's one writer. */
static inline void websock__counter_add(atomic_uint_fast64_t *c, uint64_t n) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

#endif
