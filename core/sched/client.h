/* The part of a connection that other threads may touch: id, refcount,
 * tag, user data, backpressure counters and state flags. The I/O layer
 * embeds it as the first member of its connection. Kept small: every idle
 * connection carries one. Layer: sched. */
#ifndef WEBSOCK_SCHED_CLIENT_H
#define WEBSOCK_SCHED_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/hmap.h"
#include "util/queue.h"

/* Bits of websock__client.flags. */
enum websock__client_flag {
  WEBSOCK__CLIENT_CLOSING = 1u << 0,       /* a close began or it ended */
  WEBSOCK__CLIENT_WANT_DRAIN = 1u << 1,    /* a send hit backpressure */
  WEBSOCK__CLIENT_READ_PAUSED = 1u << 2,   /* its loop stopped reading */
  WEBSOCK__CLIENT_RESUME_POSTED = 1u << 3, /* a RESUME job is on its way */
  WEBSOCK__CLIENT_HAS_TAG = 1u << 4,       /* tag != NULL (fast check) */
  WEBSOCK__CLIENT_REGISTERED = 1u << 5,    /* in the registry */
  WEBSOCK__CLIENT_READY = 1u << 6,         /* strand in the ready queue */
  WEBSOCK__CLIENT_RUNNING = 1u << 7,       /* an agent runs its strand */
  WEBSOCK__CLIENT_GREETED = 1u << 8,       /* its OPEN handler has returned:
                                               broadcasts may reach it */
  WEBSOCK__CLIENT_DEFLATE = 1u << 9,       /* permessage-deflate negotiated:
                                              sends go to the loop raw, to
                                              be compressed there */
  WEBSOCK__CLIENT_TAG_PENDING = 1u << 10   /* cluster: its tag is being
                                              claimed in Redis */
};

struct websock__job;

typedef struct websock__client {
  uint64_t id;               /* unique, never reused, < 2^53 */
  websock__hnode reg_node;   /* registry chain by id, under its lock */
  char *tag;                 /* guarded by the registry lock */
  char *held_tag;            /* the same: while its tag is being claimed
                                (TAG_PENDING), the tag it had before, still
                                its until the answer; else NULL */
  _Atomic(void *) user_data; /* carried in every event */
  atomic_size_t pending_out; /* bytes queued: posted sends + out buffer */
  atomic_size_t inflight_in; /* message bytes queued for user code */
  atomic_int refs;           /* loop + jobs + lookups in progress */
  atomic_uint flags;         /* enum websock__client_flag */
  void (*destroy)(struct websock__client *c); /* frees the whole object */
  /* Its strand, guarded by the scheduler's lock: the events waiting for an
   * agent, in order, as a ring (the last one's link points to the first,
   * which saves a pointer in every connection), and the link in the
   * agents' ready queue. */
  struct websock__job *strand_tail;
  websock__qnode ready_node;
} websock__client;

static inline int websock__client_has(websock__client *c, unsigned f) {
  return (atomic_load_explicit(&c->flags, memory_order_acquire) & f) != 0;
}

static inline void websock__client_set(websock__client *c, unsigned f) {
  atomic_fetch_or_explicit(&c->flags, f, memory_order_acq_rel);
}

static inline void websock__client_clear(websock__client *c, unsigned f) {
  atomic_fetch_and_explicit(&c->flags, ~f, memory_order_acq_rel);
}

/* Sets |f| and returns 1 when it was set already. */
static inline int websock__client_test_set(websock__client *c, unsigned f) {
  return (atomic_fetch_or_explicit(&c->flags, f, memory_order_acq_rel) & f) !=
         0;
}

/* Clears |f| and returns 1 when it was set. */
static inline int websock__client_test_clear(websock__client *c, unsigned f) {
  return (atomic_fetch_and_explicit(&c->flags, ~f, memory_order_acq_rel) & f) !=
         0;
}

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
