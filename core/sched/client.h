/* The part of a connection that other threads may touch: id, refcount,
 * tag, user data, backpressure counters. The I/O layer embeds it as the
 * first member of its connection. Layer: sched. */
#ifndef WEBSOCK_SCHED_CLIENT_H
#define WEBSOCK_SCHED_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct websock__client {
  uint64_t id;                      /* unique, never reused, < 2^53 */
  unsigned loop_index;              /* owning I/O loop, fixed for life */
  atomic_int refs;                  /* loop + jobs + lookups in progress */
  atomic_int closing;               /* 1 once a close began or it ended */
  atomic_size_t pending_out;        /* bytes queued: mailbox + out buffer */
  atomic_int want_drain;            /* a send hit backpressure: report DRAIN */
  atomic_size_t inflight_in;        /* message bytes queued for user code */
  atomic_int read_paused;           /* loop stopped reading (backpressure) */
  atomic_int resume_posted;         /* a RESUME job is on its way */
  _Atomic(void *) user_data;        /* carried in every event */
  atomic_int has_tag;               /* 1 while tag != NULL (fast check) */
  char *tag;                        /* guarded by the registry lock */
  struct websock__client *reg_next; /* registry chain, under its lock */
  int registered;                   /* in the registry (under its lock) */
  void (*destroy)(struct websock__client *c); /* frees the whole object */
} websock__client;

static inline void websock__client_ref(websock__client *c) {
  atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* Drops a reference; the last one frees the connection on whatever thread
 * drops it (the I/O loop has already torn down its libevent state). */
static inline void websock__client_unref(websock__client *c) {
  if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
    c->destroy(c);
}

#endif
