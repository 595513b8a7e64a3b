/* Scheduler: agent threads that run user callbacks, the queued-mode event
 * queue, and delivery of events to user code. Events of one connection
 * always go to agent (id % agents), so they run in order.
 * Layer: sched. */
#ifndef WEBSOCK_SCHED_SCHED_H
#define WEBSOCK_SCHED_SCHED_H

#include <pthread.h>
#include <stdatomic.h>

#include "job.h"
#include "registry.h"
#include "settings.h"

typedef struct websock__agent {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  websock__job *head, *tail; /* FIFO of jobs, guarded by mu */
  int stop;                  /* exit once the queue is empty */
  int sleeping;              /* waiting on cv: signal on push */
  unsigned index;
  struct websock__sched *sched;
  atomic_uint_fast64_t events; /* events delivered (stats) */
} websock__agent;

/* Queued delivery: a FIFO the consumer drains with poll, plus an eventfd
 * that is readable while the FIFO is not empty. */
typedef struct websock__equeue {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  websock__job *head, *tail;
  int efd;
  int finished; /* the server ended: no more events will come */
} websock__equeue;

typedef struct websock__sched {
  const websock__settings *settings;
  websock_server *server; /* public handle passed to callbacks */
  websock__pool pool;
  websock__registry registry;
  websock__agent *agents;
  unsigned nagents;
  websock__equeue equeue;
  atomic_uint_fast64_t allocs; /* event-path allocations (stats) */
  /* Posts a job to an I/O loop's mailbox (set by the net layer). */
  void (*post_to_loop)(void *loop, websock__job *job);
  /* The loop that owns client |c| (set by the net layer). */
  void *(*loop_of)(struct websock__sched *s, websock__client *c);
} websock__sched;

int websock__sched_init(websock__sched *s, const websock__settings *st,
                        websock_server *server);
/* Starts the agent threads (none when agents = 0 or in QUEUED mode). */
int websock__sched_start(websock__sched *s);
/* Lets agents finish their queues, then joins them. */
void websock__sched_stop_join(websock__sched *s);
void websock__sched_destroy(websock__sched *s);

/* Appends a chain of jobs (head..tail, linked by next) to agent |a| with
 * one lock and at most one wake-up. Thread: I/O loops. */
void websock__agent_push(websock__sched *s, unsigned a, websock__job *head,
                         websock__job *tail);
/* Queued mode: appends one event job for the consumer. */
void websock__equeue_push(websock__sched *s, websock__job *j);
/* Queued mode: see websock_server_poll(). */
int websock__equeue_pop(websock__sched *s, int timeout_ms, websock__job **out);
void websock__equeue_finish(websock__sched *s);

/* Fills ev.user_data and ev.tag from the client just before user code
 * sees the event, so values set by earlier callbacks are visible. */
void websock__job_fill_view(websock__sched *s, websock__job *j);

/* User code is done with event job |j|: its message bytes no longer count
 * against the client's backpressure, and a paused loop is told to look
 * again. Call before releasing the job. Thread: any. */
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
