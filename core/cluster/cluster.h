/* The cluster link: servers configured with the same Redis form one
 * cluster, publishes, broadcasts and sends by id and tag reach connections
 * on every node, and tags are unique cluster-wide
 * (docs/cluster-design.md). One thread per server owns the
 * Redis connections (hiredis on a libevent base of its own), so Redis'
 * latency or absence never reaches an I/O or agent thread: other threads
 * hand it pooled jobs through its mailbox. Layer: cluster. */
#ifndef WEBSOCK_CLUSTER_CLUSTER_H
#define WEBSOCK_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

/* Ids of a cluster node: node << 43 | n, below 2^53 (see the design). */
#define WEBSOCK__CLUSTER_NODE_SHIFT 43
#define WEBSOCK__CLUSTER_NODE_MAX 1023

typedef struct websock__cluster websock__cluster;

/* What the link did, for websock_server_get_stats(). */
typedef struct websock__cluster_counts {
  int up;            /* 1 while both Redis connections are up */
  uint64_t out;      /* messages published to Redis */
  uint64_t in;       /* messages from Redis delivered here */
  uint64_t dropped;  /* not published: the link was down (or no memory) */
  uint64_t connects; /* times the link came up */
  uint64_t tags;     /* other nodes' tags in the directory */
  uint64_t nodes;    /* other nodes heard from within the ttl */
} websock__cluster_counts;

/* 0 when |url| is a cluster URL websock__cluster_new takes, else -1. */
int websock__cluster_url_check(const char *url);
/* Makes the link for |n| (not started), from st's checked cluster URL;
 * sets n's first id to this node's range and hooks the loops' topics and
 * the registry's tags. Returns 0 or WEBSOCK_ERR_NOMEM. Thread: the caller
 * of websock_server_new(). */
int websock__cluster_new(const websock__settings *st, websock__net *n,
                         struct websock__cluster **out);
/* Checks that no live node has this number (WEBSOCK_ERR_ADDRESS, the
 * reason in n->listen_error; a Redis that does not answer within 1 s does
 * not fail the start), then starts the thread, which connects (and
 * reconnects with back-off) by itself. */
int websock__cluster_start(struct websock__cluster *c);
/* Stops and joins its thread (what it still held is dropped). */
void websock__cluster_join(struct websock__cluster *c);
void websock__cluster_free(struct websock__cluster *c);

/* The other nodes' share of a publish or a broadcast (the local one is
 * the caller's): 0 once handed over, or when the link is down (the remote
 * part is lost and counted). Thread: any, never blocks. */
void websock__cluster_publish(struct websock__cluster *c, const void *topic,
                              size_t topic_len, int opcode, const void *data,
                              size_t len, uint64_t except_id);
void websock__cluster_broadcast(struct websock__cluster *c, int opcode,
                                const void *data, size_t len,
                                uint64_t except_id);
/* The node number: the configured one, or the one drawn at start. Thread:
 * any, after websock__cluster_start(). */
unsigned websock__cluster_node(const struct websock__cluster *c);
/* 1 when |id| is another node's: then websock__cluster_send forwards. */
int websock__cluster_remote(const struct websock__cluster *c, uint64_t id);
/* A send (opcode TEXT/BINARY) or close (opcode 0: |code|, reason in data)
 * to another node's connection |id|. Returns 0, WEBSOCK_ERR_CLUSTER (the
 * link is down) or WEBSOCK_ERR_NOMEM. Thread: any. */
int websock__cluster_send(struct websock__cluster *c, uint64_t id, int opcode,
                          int code, const void *data, size_t len);
/* Before a local set_tag of |tag|: WEBSOCK_ERR_TAG_TAKEN when another
 * node holds it (as the directory knows), WEBSOCK_ERR_CLUSTER when the
 * link is down, else 0. Thread: any. */
int websock__cluster_tag_check(struct websock__cluster *c, const char *tag);
/* A claim of |tag| for |id|, made before the tag changes hands locally
 * (so that running out of memory leaves the connection's old tag alone):
 * NULL when out of memory. Thread: any. */
struct websock__job *websock__cluster_claim_new(struct websock__cluster *c,
                                                uint64_t id, const char *tag);
/* Asks Redis for the claim's tag, now held here: the answer comes as the
 * connection's TAG event. Thread: any. */
void websock__cluster_claim_post(struct websock__cluster *c,
                                 struct websock__job *j);
/* The id of another node's connection holding |tag|: 0 with *id set,
 * WEBSOCK_ERR_NO_SUCH_CLIENT, or WEBSOCK_ERR_CLUSTER (the link is down).
 * Thread: any. */
int websock__cluster_find_tag(struct websock__cluster *c, const char *tag,
                              uint64_t *id);
void websock__cluster_counts_get(const struct websock__cluster *c,
                                 websock__cluster_counts *out);

#endif
