/* Job wrappers: one struct carries an event to an agent or the queued-mode
 * consumer, or a command (send, close, ...) to an I/O loop. They come from a
 * pool so the steady state allocates nothing. Layer: sched. */
#ifndef WEBSOCK_SCHED_JOB_H
#define WEBSOCK_SCHED_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "util/buf.h"
#include "util/queue.h"
#include "websock.h"

#define WEBSOCK__TAG_MAX 255

enum websock__job_kind {
  WEBSOCK__JOB_EVENT = 1,   /* ev.type tells which; goes to an agent/queue */
  WEBSOCK__JOB_COMMAND,     /* code: enum websock__cmd_kind; to a loop */
  WEBSOCK__JOB_BROADCAST,   /* ptr = shared blob, except_id; to a loop */
  WEBSOCK__JOB_ADOPT,       /* fd accepted by another loop */
  WEBSOCK__JOB_STOP,        /* begin a graceful stop */
  WEBSOCK__JOB_STOP_ACCEPT, /* close the loop's listening socket */
  WEBSOCK__JOB_FENCE_ACK,   /* to the loop ptr: the agents ran every event
                               emitted before its stop */
  WEBSOCK__JOB_RESUME,      /* agent done with a paused client's backlog */
  WEBSOCK__JOB_HOOK,        /* to an agent: run the handshake hook for the
                               deferred upgrade ptr */
  WEBSOCK__JOB_GREETED,     /* to the loop: the OPEN handler of client has
                               returned (broadcasts may reach it now) */
  WEBSOCK__JOB_PUBLISH,     /* ptr = shared blob, except_id, buf: the
                               topic; to a loop */
  WEBSOCK__JOB_DIAL,        /* client = a prepared outgoing connection
                               (its dial in rx); to its loop (client
                               mode) */
  WEBSOCK__JOB_RESOLVED,    /* client = the connection, ptr = its struct
                               addrinfo list (NULL: arg is getaddrinfo's
                               error); to its loop */
  WEBSOCK__JOB_CLUSTER,     /* to the cluster link: code says what (a
                               message to publish, a topic's count) */
  WEBSOCK__JOB_OUTBOX       /* an agent's sends to connections of one
                               loop, coalesced (net/outbox.c); to that
                               loop */
};

/* What a COMMAND job asks the connection's loop to do. */
enum websock__cmd_kind {
  WEBSOCK__CMD_SEND = 1,    /* buf: encoded frames of one message */
  WEBSOCK__CMD_PING,        /* buf: ping payload */
  WEBSOCK__CMD_CLOSE,       /* arg: close code, buf: reason */
  WEBSOCK__CMD_UPGRADE,     /* ptr: the answered websock_upgrade */
  WEBSOCK__CMD_SEND_RAW,    /* buf: one message's payload, arg: its opcode;
                               compressed and encoded by the loop (deflate) */
  WEBSOCK__CMD_SUBSCRIBE,   /* buf: the topic */
  WEBSOCK__CMD_UNSUBSCRIBE, /* buf: the topic */
  WEBSOCK__CMD_TAG          /* buf: a tag, arg: Redis' answer to its claim;
                               the loop emits WEBSOCK_EVENT_TAG */
};

typedef struct websock__job {
  websock__qnode node;            /* queue link; must stay first */
  struct websock__pool *pool;     /* where it returns */
  int kind;                       /* enum websock__job_kind */
  websock__client *client;        /* referenced client, or NULL */
  websock__buf buf;               /* payload; capacity kept across uses */
  int code;                       /* COMMAND: enum websock__cmd_kind */
  int arg;                        /* COMMAND CLOSE: the close code */
  int fd;                         /* ADOPT: the socket */
  void *ptr;                      /* BROADCAST/PUBLISH blob, FENCE_ACK loop */
  uint64_t except_id;             /* BROADCAST: skip this id; FENCE_ACK
                                     waiting: events to have run */
  atomic_int holders;             /* OUTBOX: its agent's slot and the
                                     loop; the last to let go releases it */
  atomic_int outbox_state;        /* OUTBOX: enum websock__outbox_state */
  size_t outbox_last;             /* OUTBOX: offset of the newest record */
  uint64_t ready_ns;              /* EVENT at the head of a ready strand:
                                     when the strand became ready */
  websock_event ev;               /* public view handed to user code */
  char tag[WEBSOCK__TAG_MAX + 1]; /* copy of the tag for ev.tag */
} websock__job;

/* Who may touch an OUTBOX job's buffer (net/outbox.c). */
enum websock__outbox_state {
  WEBSOCK__OUTBOX_IDLE = 0,  /* posted; its agent may open it again */
  WEBSOCK__OUTBOX_APPENDING, /* its agent is adding a send */
  WEBSOCK__OUTBOX_SEALED     /* the loop took it: read-only, then gone */
};

/* The job a queue node belongs to. */
static inline websock__job *websock__job_of(websock__qnode *n) {
  return (websock__job *)(void *)((char *)n - offsetof(websock__job, node));
}

struct websock__pool;

/* A thread's own stack of free jobs of one pool (see
 * websock__pool_attach): the I/O and agent threads of a server get and
 * release most jobs there, without the pool's lock, and move them to and
 * from the pool in batches. */
typedef struct websock__pool_cache {
  struct websock__pool *pool;
  struct websock__job *head;
  atomic_size_t n;                  /* jobs held (written by its thread) */
  struct websock__pool_cache *next; /* in the pool's list of caches */
} websock__pool_cache;

typedef struct websock__pool {
  pthread_mutex_t mu;
  websock__pool_cache *caches; /* attached threads' caches */
  websock__job *free_list;     /* LIFO: warm buffers are reused first */
  size_t nfree;                /* jobs on free_list */
  size_t total;                /* jobs allocated */
  size_t low_water;            /* fewest free jobs since the last trim */
  size_t chunk;                /* jobs allocated per grow */
  size_t retain_cap;           /* largest buffer a free job keeps */
  size_t retain_budget;        /* most bytes free jobs keep in buffers larger
                                  than WEBSOCK__POOL_SMALL_BUF, all together */
  size_t retained_big;         /* bytes they keep now */
  atomic_uint_fast64_t grows;
  atomic_uint_fast64_t shrinks;
  atomic_uint_fast64_t *allocs; /* event-path allocation counter */
} websock__pool;

/* Buffers up to this size stay with a free job whatever the budget. */
#define WEBSOCK__POOL_SMALL_BUF 4096

int websock__pool_init(websock__pool *p, size_t initial, size_t chunk,
                       atomic_uint_fast64_t *alloc_counter);
void websock__pool_destroy(websock__pool *p);
/* Takes a job (kind 0, no client, empty buf); NULL when out of memory.
 * Thread: any. */
websock__job *websock__pool_get(websock__pool *p);
/* Drops the job's client reference and returns it to its pool. Its buffer
 * goes with it when small, or while the pool's budget for large buffers
 * has room (so a steady load of large messages allocates nothing), and is
 * freed otherwise: a burst must not leave the pool holding its memory. */
void websock__job_release(websock__job *j);
/* Gives the calling thread |tc| as its cache for |p| (at most one pool per
 * thread). Thread: the thread itself, before it uses the pool. */
void websock__pool_attach(websock__pool *p, websock__pool_cache *tc);
/* Returns the jobs |tc| holds to its pool and ends the attachment.
 * Thread: the attached thread, before it ends. */
void websock__pool_detach(websock__pool_cache *tc);
/* Gives back memory the last period did not need (hysteresis: only jobs
 * that stayed free the whole period are freed, half of them at a time). */
void websock__pool_trim(websock__pool *p);
void websock__pool_counts(websock__pool *p, size_t *total, size_t *in_use);

/* Lets go of a job with several holders (an OUTBOX); the last holder's
 * call releases it. Thread: any. */
static inline void websock__job_let_go(websock__job *j) {
  if (atomic_fetch_sub_explicit(&j->holders, 1, memory_order_acq_rel) == 1)
    websock__job_release(j);
}

/* A frame encoded once and shared by every loop of a broadcast or a
 * publish; the last loop done with it frees it. */
typedef struct websock__blob {
  atomic_int refs;
  size_t len;     /* the encoded frame(s), at data */
  size_t raw_len; /* the payload again, after them (deflate on), else 0 */
  int opcode;
  uint8_t data[];
} websock__blob;

void websock__blob_unref(websock__blob *b);

/* Counts an allocation made on the event path. */
static inline void websock__count_alloc(atomic_uint_fast64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

#endif
