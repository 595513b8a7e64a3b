/* Scheduler: agent threads that run user callbacks, the connections'
 * strands, the queued-mode event queue, and the policy that hands each
 * event to user code (inline, to the agents, or to the queue). Layer:
 * sched.
 *
 * Ownership: an event job holds a reference on its client from the moment
 * the loop emits it until user code is done with it (websock__event_done +
 * websock__job_release), whichever thread that is. */
#ifndef WEBSOCK_SCHED_SCHED_H
#define WEBSOCK_SCHED_SCHED_H

#include <pthread.h>
#include <stdatomic.h>

#include "job.h"
#include "registry.h"
#include "settings.h"
#include "util/queue.h"

typedef struct websock__agent {
  pthread_t thread;
  unsigned index;
  struct websock__sched *sched;
  atomic_uint_fast64_t events;  /* events delivered (stats) */
  atomic_uint_fast64_t busy_ns; /* time spent running events (stats) */
  websock__pool_cache jobs;     /* its own free jobs (pool.c) */
  /* Its open OUTBOX job per I/O loop, by loop index (net/outbox.c): the
   * agent holds each until it opens another for that loop or ends. */
  struct websock__job *outboxes[WEBSOCK__MAX_IO_THREADS];
} websock__agent;

typedef struct websock__sched {
  const websock__settings *settings;
  websock_server *server; /* public handle passed to callbacks */
  websock__pool pool;
  websock__registry registry;
  websock__agent *agents; /* made by websock__sched_start */
  unsigned nagents;
  /* The strands: every connection with events for the agents. A strand is
   * READY (in |ready|, waiting for an agent) or RUNNING (one agent runs a
   * budget of its events) or neither (no events waiting). Any agent takes
   * any ready strand, so no connection waits behind another's slow
   * handler, and a strand never runs on two agents, so each connection's
   * events run in order. */
  pthread_mutex_t mu;          /* guards the strands, |ready| and below */
  pthread_cond_t cv;           /* idle agents wait here */
  websock__qlist ready;        /* READY clients, by ready_node */
  unsigned idle;               /* agents waiting on cv */
  int stop;                    /* agents end once nothing is ready */
  uint64_t emitted, ran;       /* events handed to the agents / run by them */
  websock__job *drain_waiters; /* FENCE_ACK jobs waiting for |ran| */
  uint64_t ready_wait_max_ns;  /* longest a ready strand waited (stats) */
  /* Queued delivery: events for websock_server_poll(), and an eventfd
   * readable while the queue is not empty (or once it is closed). */
  websock__queue equeue;
  int efd;
  atomic_uint_fast64_t allocs; /* event-path allocations (stats) */
  /* Set by the net layer: posts a job to an I/O loop's mailbox, names the
   * loop that owns a client, and applies backpressure bookkeeping when
   * user code is done with an event. */
  void (*post_to_loop)(void *loop, websock__job *job);
  void *(*loop_of)(struct websock__sched *s, websock__client *c);
  void (*on_event_done)(struct websock__sched *s, websock__job *j);
  /* Runs a HOOK job on an agent (and consumes what its ptr holds). */
  void (*run_hook)(struct websock__sched *s, websock__job *j);
} websock__sched;

int websock__sched_init(websock__sched *s, const websock__settings *st,
                        websock_server *server);
/* Starts the agent threads (none when agents = 0 or in QUEUED mode). */
int websock__sched_start(websock__sched *s);
/* Lets agents finish every ready strand, then joins them. */
void websock__sched_stop_join(websock__sched *s);
void websock__sched_destroy(websock__sched *s);

/* Appends a chain of event jobs (linked by node.next, in emission order)
 * to their clients' strands, makes the strands that were idle ready, and
 * wakes as many idle agents as strands became ready: one lock for the
 * whole chain. Thread: I/O loops. */
void websock__sched_submit(websock__sched *s, websock__job *first);

/* The graceful stop of a loop: |ack| (a FENCE_ACK job whose ptr is the
 * loop) is posted back to the loop once the agents have run every event
 * submitted so far, with the sends those callbacks made already ahead of
 * it in the loop's mailbox; at once when that is already so. Thread: I/O
 * loops. */
void websock__sched_drain(websock__sched *s, websock__job *ack);

/* Ready strands now and the longest wait seen, for the stats. */
void websock__sched_ready_stats(websock__sched *s, uint64_t *ready,
                                uint64_t *wait_max_ns);

/* ---- emitting events (deliver.c) --------------------------------------- */

/* One event as the I/O layer reports it. Pointers are borrowed for the
 * call; |swap|, when set, is a buffer whose bytes (data/len) the event
 * takes over instead of copying them. */
typedef struct websock__emit {
  int type;       /* enum websock_event_type */
  int opcode;     /* MESSAGE */
  int close_code; /* CLOSE */
  int status;     /* TAG */
  const uint8_t *data;
  size_t len;
  websock__buf *swap;
  const char *path, *query, *subprotocol, *remote; /* OPEN; kept alive by
                                                      the client */
  const char *extensions;                          /* OPEN, or NULL */
} websock__emit;

/* Events a loop gathered during one iteration: handed to the agents once
 * per iteration (websock__batch_flush) rather than once per socket, so an
 * agent sharing a core with the loop runs a batch per switch. Owned and
 * used by one loop thread. */
typedef struct websock__batch {
  websock__qlist jobs;                 /* in emission order */
  atomic_uint_fast64_t *inline_events; /* counts events run inline */
} websock__batch;

void websock__batch_init(websock__batch *b,
                         atomic_uint_fast64_t *inline_events);
/* Hands what was gathered to the agents (websock__sched_submit). */
void websock__batch_flush(websock__sched *s, websock__batch *b);

/* Hands event |e| of client |c| to user code: runs the callback now
 * (agents = 0), queues it for the consumer (QUEUED), or gathers it in |b|
 * for the agents. Returns 0, or -1 when no job could be had (out
 * of memory): nothing was delivered and the caller decides what the
 * connection owes the user instead. Thread: the client's loop. */
int websock__sched_emit(websock__sched *s, websock__batch *b,
                        websock__client *c, const websock__emit *e);

/* Queued mode: see websock_server_poll(). Returns 1 with *out set, or 0. */
int websock__equeue_pop(websock__sched *s, int timeout_ms, websock__job **out);

/* Fills ev.user_data and ev.tag from the client just before user code
 * sees the event, so values set by earlier callbacks are visible. */
void websock__job_fill_view(websock__sched *s, websock__job *j);

/* User code is done with event job |j| (its message bytes no longer count
 * against the client's backpressure). Call before releasing the job.
 * Thread: any. */
void websock__event_done(websock__sched *s, websock__job *j);

/* Runs the user callback for |ev| of |client| on this thread, marking the
 * thread as inside a callback for that client. */
void websock__deliver(websock__sched *s, websock__client *client,
                      const websock_event *ev);

/* Thread-local facts about the calling thread. */
typedef struct websock__thread_ctx {
  websock__sched *sched;   /* non-NULL on this server's core threads */
  void *loop;              /* the I/O loop when this is a loop thread */
  websock__client *client; /* client whose callback is running, or NULL */
  websock__job **outboxes; /* an agent's outbox slots (websock__agent) */
} websock__thread_ctx;
extern _Thread_local websock__thread_ctx websock__tctx;

#endif
