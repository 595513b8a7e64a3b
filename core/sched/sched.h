/* Scheduler: agent threads that run user callbacks, the queued-mode event
 * queue, and the policy that hands each event to user code (inline, to an
 * agent, or to the queue). Events of one connection always go to agent
 * (id % agents), so they run in order. Layer: sched.
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
  websock__queue q; /* event and fence jobs for this agent */
  unsigned index;
  struct websock__sched *sched;
  atomic_uint_fast64_t events; /* events delivered (stats) */
} websock__agent;

typedef struct websock__sched {
  const websock__settings *settings;
  websock_server *server; /* public handle passed to callbacks */
  websock__pool pool;
  websock__registry registry;
  websock__agent *agents; /* made by websock__sched_start */
  unsigned nagents;
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
} websock__sched;

int websock__sched_init(websock__sched *s, const websock__settings *st,
                        websock_server *server);
/* Starts the agent threads (none when agents = 0 or in QUEUED mode). */
int websock__sched_start(websock__sched *s);
/* Lets agents finish their queues, then joins them. */
void websock__sched_stop_join(websock__sched *s);
void websock__sched_destroy(websock__sched *s);

/* Appends a chain of jobs to agent |a| with one lock and at most one
 * wake-up. Thread: I/O loops. */
void websock__agent_push(websock__sched *s, unsigned a, websock__job *first,
                         websock__job *last);

/* ---- emitting events (deliver.c) --------------------------------------- */

/* One event as the I/O layer reports it. Pointers are borrowed for the
 * call; |swap|, when set, is a buffer whose bytes (data/len) the event
 * takes over instead of copying them. */
typedef struct websock__emit {
  int type;       /* enum websock_event_type */
  int opcode;     /* MESSAGE */
  int close_code; /* CLOSE */
  const uint8_t *data;
  size_t len;
  websock__buf *swap;
  const char *path, *query, *subprotocol, *remote; /* OPEN; kept alive by
                                                      the client */
} websock__emit;

/* Events a loop gathered during one iteration, per agent: handed over once
 * per iteration (websock__batch_flush) rather than once per socket, so an
 * agent sharing a core with the loop runs a batch per switch. Owned and
 * used by one loop thread. */
typedef struct websock__batch {
  websock__job **first, **last;        /* per agent */
  atomic_uint_fast64_t *inline_events; /* counts events run inline */
} websock__batch;

int websock__batch_init(websock__batch *b, websock__sched *s,
                        atomic_uint_fast64_t *inline_events);
void websock__batch_free(websock__batch *b);
/* Pushes what was gathered to the agents, one push per agent. */
void websock__batch_flush(websock__sched *s, websock__batch *b);

/* Hands event |e| of client |c| to user code: runs the callback now
 * (agents = 0), queues it for the consumer (QUEUED), or gathers it in |b|
 * for the client's agent. Returns 0, or -1 when no job could be had (out
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
} websock__thread_ctx;
extern _Thread_local websock__thread_ctx websock__tctx;

#endif
