/* What the cluster's two halves share: the link (cluster.c: the thread,
 * the Redis connections, messages in and out) and the tags (tags.c: the
 * node's alive key, tag claims, the directory of other nodes' tags).
 * Layer: cluster. */
#ifndef WEBSOCK_CLUSTER_INT_H
#define WEBSOCK_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/async.h>

#include "cluster.h"
#include "util/hmap.h"
#include "wire.h"

#define CLUSTER_PREFIX_MAX 64
#define CLUSTER_CHANNEL_MAX (CLUSTER_PREFIX_MAX + 8 + WEBSOCK__TOPIC_MAX)
#define CLUSTER_TTL_DEFAULT_MS 9000

/* What a job asks the link's thread (in job->code). */
enum cluster_job {
  CLUSTER_JOB_OUT = 1, /* buf: [channel length 2][channel][message] */
  CLUSTER_JOB_TOPIC,   /* buf: a topic name; arg: +1 or -1 loops */
  CLUSTER_JOB_CLAIM,   /* buf: a tag, except_id: the id; arg: CLAIM_* */
  CLUSTER_JOB_RELEASE  /* buf: a tag, except_id: the id that let it go */
};

/* A claim's origin: set_tag (its outcome is the connection's TAG event),
 * or the link claiming a held tag again after Redis came back (an event
 * only when it was lost). */
enum { CLAIM_USER = 0, CLAIM_AGAIN = 1 };

struct websock__cluster {
  websock__net *net;
  websock__sched *sched;
  unsigned node;
  websock__cluster_url url;
  char prefix[CLUSTER_PREFIX_MAX + 1];
  char token[40]; /* this life's value of the alive key */
  unsigned ttl_ms;
  pthread_t thread;
  int started;
  struct event_base *base;
  int wake_fd;
  struct event wake_ev, retry_ev, beat_ev, sweep_ev, leave_ev;
  unsigned retry_ms;
  websock__mailbox mailbox;
  int mailbox_ready;            /* the link started: its mailbox takes jobs */
  redisAsyncContext *pub, *sub; /* NULL while down */
  int pub_ok, sub_ok;           /* connected */
  int done;                     /* the thread may end */
  websock__hmap topics;         /* cluster_topic by name (link thread) */
  uint64_t unanswered; /* PUBLISHes sent, not yet answered (link thread):
                          lost, and counted, when the link goes */
  /* tags.c, link thread only: */
  uint64_t heard_ms[WEBSOCK__CLUSTER_NODE_MAX + 1]; /* last word, 0: none */
  int loading;               /* the directory is being read from Redis */
  struct cluster_held *held; /* tag messages that came meanwhile */
  /* The directory: other nodes' tags, read by any thread. */
  pthread_mutex_t dir_mu;
  websock__hmap dir;
  int dir_ready;
  atomic_int up; /* the link is up and the node's number is its own */
  atomic_int quit;
  atomic_uint_fast64_t out, in, dropped, connects, conflicts, dir_count,
      nodes_alive;
};

/* cluster.c */
/* "prefix:kind" + name into ch (CLUSTER_CHANNEL_MAX + 1); its length, or
 * -1 when too long. */
int websock__cluster_channel(const websock__cluster *c, char *ch,
                             const char *kind, const void *name, size_t len);
/* Subscribes (on 1) or unsubscribes the subscriber connection. */
void websock__cluster_subscribe(websock__cluster *c, const char *kind,
                                const void *name, size_t len, int on);
/* The link is ready for work (its number checked): up = 1. */
void websock__cluster_ready(websock__cluster *c);

/* tags.c */
int websock__cluster_tags_init(websock__cluster *c);
void websock__cluster_tags_free(websock__cluster *c);
/* Sets up the timers on the link's new event base. */
void websock__cluster_tags_start(websock__cluster *c);
/* Checks (blocking, at most 1 s) that no live node has this number, and
 * takes it. Thread: the caller of websock_server_start(). */
int websock__cluster_take_number(websock__cluster *c);
/* Both connections are up: beats, then (once the number is confirmed)
 * voids the tags of this node's last link, reads the directory and claims
 * every held tag again. */
void websock__cluster_tags_up(websock__cluster *c);
/* A message of the tag channel. */
void websock__cluster_tags_message(websock__cluster *c,
                                   const websock__cluster_msg *m);
void websock__cluster_run_claim(websock__cluster *c, websock__job *j);
void websock__cluster_run_release(websock__cluster *c, websock__job *j);
/* Leaving for good: voids this node's tags and alive key in Redis, then
 * sets done (or does at once when the link is down). */
void websock__cluster_leave(websock__cluster *c);

#endif
