/* The server: lifecycle, sending, ids and tags, queued events, stats. */
#ifndef WEBSOCK_SERVER_H
#define WEBSOCK_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "export.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates a server from |cfg| (copied: the config may be freed at once).
 * No thread starts and no socket opens until websock_server_start().
 * Returns 0 and sets *out, or WEBSOCK_ERR_INVALID / WEBSOCK_ERR_NOMEM
 * leaving *out unchanged, or WEBSOCK_ERR_TLS (certificate, key or context
 * unusable; see websock_tls_last_error()). Thread: any thread. */
WEBSOCK_EXTERN int websock_server_new(websock_server **out,
                                      const websock_config *cfg);

/* Stops (if running), joins every core thread and frees the server and all
 * queued events not yet freed. NULL is a no-op. Ids kept by the caller stay
 * harmless: the server is gone, so do not call it again with |srv|.
 * Thread: any thread except the server's own I/O and agent threads. */
WEBSOCK_EXTERN void websock_server_free(websock_server *srv);

/* Binds, listens and starts the I/O and agent threads; returns once the
 * server accepts connections. Returns 0, or WEBSOCK_ERR_STATE (already
 * started), WEBSOCK_ERR_ADDRESS (cannot resolve/bind), WEBSOCK_ERR_SYSTEM,
 * WEBSOCK_ERR_NOMEM. A server starts once. Thread: any thread. */
WEBSOCK_EXTERN int websock_server_start(websock_server *srv);

/* Why the last websock_server_start() of |srv| could not listen, in words
 * that name the address, e.g. "cannot listen on 127.0.0.1:8080: address
 * already in use" or "cannot resolve the address to listen on, \"x.y\":
 * Name or service not known"; "" when it did not fail so. When |err_no|
 * is not NULL it gets the errno of the failing call (EADDRINUSE,
 * EACCES...; 0 for a name that does not resolve). The text lives as long
 * as |srv|. Thread: any, after websock_server_start() returned. */
WEBSOCK_EXTERN const char *websock_server_last_error(const websock_server *srv,
                                                     int *err_no);

/* The port the server listens on (useful with port 0), or
 * WEBSOCK_ERR_STATE before start. Thread: any thread. */
WEBSOCK_EXTERN int websock_server_port(const websock_server *srv);

/* This server's node number in its cluster (1..1023: the one configured,
 * or the one drawn from Redis for node 0), 0 when it is not a cluster
 * node, or WEBSOCK_ERR_STATE before start. Thread: any thread. */
WEBSOCK_EXTERN int websock_server_cluster_node(const websock_server *srv);

/* Begins a graceful stop and returns at once: stops accepting, lets agents
 * finish queued events, delivers queued sends, sends close 1001 to every
 * client and waits up to the close timeout for them, then ends the
 * threads. Idempotent; safe from callbacks and signal-free threads.
 * Returns 0 or WEBSOCK_ERR_INVALID. Thread: any thread. */
WEBSOCK_EXTERN int websock_server_stop(websock_server *srv);

/* Stops taking new connections and serves the established ones on as
 * before, e.g. to hand a port over to a new process (reuse_port) and let
 * this one drain before websock_server_stop(): the listening sockets
 * close within a moment (the loops close them), so new clients are
 * refused or, with SO_REUSEPORT, go to the other sockets of the port;
 * clients the kernel had queued for a closing socket and not yet handed
 * over are reset (Linux's net.ipv4.tcp_migrate_req moves them instead).
 * Returns 0, WEBSOCK_ERR_STATE (not running), WEBSOCK_ERR_NOMEM. Thread:
 * any thread. */
WEBSOCK_EXTERN int websock_server_stop_accepting(websock_server *srv);

/* Waits until every core thread of a started server has ended (after
 * websock_server_stop()). Returns 0, WEBSOCK_ERR_STATE when not started,
 * WEBSOCK_ERR_RECURSIVE from the server's own threads. Thread: any other. */
WEBSOCK_EXTERN int websock_server_join(websock_server *srv);

/* websock_server_start() then websock_server_join(): blocks until stopped.
 * Thread: as for join. */
WEBSOCK_EXTERN int websock_server_run(websock_server *srv);

/* Sends one message of |len| bytes (copied) to connection |id|. |opcode| is
 * WEBSOCK_OP_TEXT (payload must be valid UTF-8) or WEBSOCK_OP_BINARY.
 * Non-blocking: the frame is queued to the connection's I/O thread.
 * Returns 0, or WEBSOCK_ERR_NO_SUCH_CLIENT (unknown or ended id),
 * WEBSOCK_ERR_CLOSING (close already started), WEBSOCK_ERR_BACKPRESSURE
 * (outbound queue full: wait for a DRAIN event), WEBSOCK_ERR_BAD_UTF8,
 * WEBSOCK_ERR_INVALID, WEBSOCK_ERR_NOMEM. Thread: any thread. */
WEBSOCK_EXTERN int websock_server_send(websock_server *srv, uint64_t id,
                                       int opcode, const void *data,
                                       size_t len);
/* As websock_server_send(), addressed by tag. On a cluster node a tag
 * another node holds is sent there (0 once handed to the link, as a send
 * by id); WEBSOCK_ERR_NO_SUCH_CLIENT when no node holds it, as far as this
 * node's directory of tags knows (see websock_server_find_tag);
 * WEBSOCK_ERR_CLUSTER when the tag is not here and the link is down. */
WEBSOCK_EXTERN int websock_server_send_tag(websock_server *srv, const char *tag,
                                           int opcode, const void *data,
                                           size_t len);
/* Sends |len| bytes (copied) to every open connection except |except_id|
 * (0 = none). The frame is encoded once and shared. Returns 0 or
 * WEBSOCK_ERR_INVALID / _BAD_UTF8 / _NOMEM / _STATE (not running);
 * connections over their outbound limit are skipped. Thread: any thread. */
WEBSOCK_EXTERN int websock_server_broadcast(websock_server *srv, int opcode,
                                            const void *data, size_t len,
                                            uint64_t except_id);
/* Topics (publish/subscribe). A topic is a byte string of 1..255 bytes
 * (any bytes, NUL included; compared byte for byte); a connection may be in
 * any number of topics, and a topic may hold any number of connections. A
 * connection leaves all its topics when it ends. A subscribe and a later
 * publish made by the same thread are applied in that order: the publish
 * reaches the new member (both travel through the connection's I/O thread
 * in order), once its OPEN handler has returned. */

/* Makes connection |id| a member of |topic| (|topic_len| bytes, copied).
 * Subscribing to a topic the connection is in already is a no-op. Non-
 * blocking: on another thread than the connection's I/O thread the change
 * is posted to it. Returns 0, or WEBSOCK_ERR_INVALID (|topic| NULL, or
 * |topic_len| 0 or over 255), WEBSOCK_ERR_NO_SUCH_CLIENT (unknown or ended
 * id), WEBSOCK_ERR_CLOSING (its close began), WEBSOCK_ERR_NOMEM. A posted
 * subscribe that finds no memory on the I/O thread fails the connection
 * (close 1011) rather than lose the membership silently. Thread: any
 * thread, inside or outside callbacks (from the OPEN callback too). */
WEBSOCK_EXTERN int websock_server_subscribe(websock_server *srv, uint64_t id,
                                            const void *topic,
                                            size_t topic_len);
/* Ends connection |id|'s membership of |topic|. Unsubscribing from a topic
 * the connection is not in is a no-op and returns 0 (from another thread
 * the membership is not known when the call returns). Returns 0, or
 * WEBSOCK_ERR_INVALID, WEBSOCK_ERR_NO_SUCH_CLIENT, WEBSOCK_ERR_CLOSING,
 * WEBSOCK_ERR_NOMEM as for subscribe. Thread: any thread. */
WEBSOCK_EXTERN int websock_server_unsubscribe(websock_server *srv, uint64_t id,
                                              const void *topic,
                                              size_t topic_len);
/* Sends |len| bytes (copied) to every member of |topic| except |except_id|
 * (0 = none), like websock_server_broadcast(): the frame is encoded once
 * (and with permessage-deflate compressed once per I/O thread for the
 * connections of the shared compressor) and shared; connections over their
 * outbound limit and connections whose OPEN handler has not returned are
 * skipped. Non-blocking: returns 0 once the message is posted to the I/O
 * threads, which is before it is known how many connections it reaches
 * (none, when the topic has no member). Returns 0, or WEBSOCK_ERR_INVALID
 * (bad topic, opcode or pointer), WEBSOCK_ERR_BAD_UTF8, WEBSOCK_ERR_NOMEM,
 * WEBSOCK_ERR_STATE (not running). Thread: any thread. */
WEBSOCK_EXTERN int websock_server_publish(websock_server *srv,
                                          const void *topic, size_t topic_len,
                                          int opcode, const void *data,
                                          size_t len, uint64_t except_id);
/* Sends a ping with up to 125 bytes of payload (WEBSOCK_ERR_TOO_BIG past
 * that). Errors as for send. Thread: any thread. */
WEBSOCK_EXTERN int websock_server_ping(websock_server *srv, uint64_t id,
                                       const void *data, size_t len);
/* Starts the close handshake with |code| (1000-1003, 1007-1014, 3000-4999;
 * 0 sends no code) and a UTF-8 |reason| (NULL for none; cut to 123 bytes).
 * Errors: WEBSOCK_ERR_NO_SUCH_CLIENT, WEBSOCK_ERR_CLOSING,
 * WEBSOCK_ERR_INVALID (bad code), WEBSOCK_ERR_BAD_UTF8. Thread: any. */
WEBSOCK_EXTERN int websock_server_close(websock_server *srv, uint64_t id,
                                        int code, const char *reason);
WEBSOCK_EXTERN int websock_server_close_tag(websock_server *srv,
                                            const char *tag, int code,
                                            const char *reason);

/* Gives connection |id| the unique tag |tag| (1..255 bytes, copied),
 * replacing its old tag; NULL removes it. A tag is released when its
 * connection ends. Returns 0, WEBSOCK_ERR_TAG_TAKEN (held by another live
 * connection), WEBSOCK_ERR_NO_SUCH_CLIENT, WEBSOCK_ERR_INVALID.
 * On a cluster node a tag is unique cluster-wide: TAG_TAKEN comes at once
 * when this node knows another holds it; else the connection holds it
 * here at once (sends by tag on this node reach it), the call returns
 * WEBSOCK_PENDING, and Redis' answer arrives as a WEBSOCK_EVENT_TAG event
 * of the connection, in order with its other events. Until then the tag
 * it had before stays its too (sends to either reach it): on success the
 * old one is let go, on a refusal (a tag another node won in the same
 * moment) the new one is taken back and the old one is its tag again, as
 * a refused set_tag leaves a single server's connection as it was.
 * WEBSOCK_ERR_CLUSTER: the Redis link is down. Giving a connection the
 * tag it has returns 0, also while the link is down (WEBSOCK_PENDING
 * while Redis has not answered);
 * asking for its tag of before while a claim is pending settles back to
 * it (0). Thread: any thread. */
WEBSOCK_EXTERN int websock_server_set_tag(websock_server *srv, uint64_t id,
                                          const char *tag);
/* Copies connection |id|'s tag into |buf| (|cap| bytes, NUL-terminated).
 * Returns the tag length, 0 when it has none, or WEBSOCK_ERR_NO_SUCH_CLIENT
 * / WEBSOCK_ERR_INVALID (cap too small). Thread: any thread. */
WEBSOCK_EXTERN int websock_server_get_tag(websock_server *srv, uint64_t id,
                                          char *buf, size_t cap);
/* Looks up the id holding |tag|: returns 0 and sets *id, or
 * WEBSOCK_ERR_NO_SUCH_CLIENT. On a cluster node it answers for every node
 * from this node's directory of tags (no Redis round trip: as fresh as the
 * last tag change it heard, milliseconds), and gives WEBSOCK_ERR_CLUSTER
 * for a tag not held here while the Redis link is down. Thread: any
 * thread. */
WEBSOCK_EXTERN int websock_server_find_tag(websock_server *srv, const char *tag,
                                           uint64_t *id);
/* Sets the user data carried in every later event of |id|. Returns 0 or
 * WEBSOCK_ERR_NO_SUCH_CLIENT. The library never dereferences it. Thread:
 * any thread (from the connection's callbacks it is seen by every later
 * event in order). */
WEBSOCK_EXTERN int websock_server_set_user_data(websock_server *srv,
                                                uint64_t id, void *user_data);

/* QUEUED mode: waits up to |timeout_ms| (0 = do not wait, -1 = forever)
 * for an event. Returns 1 and sets *out to an event the caller must free
 * with websock_event_free(), 0 when none came in time (or the server has
 * ended and every event was taken), or WEBSOCK_ERR_STATE (not QUEUED mode)
 * / WEBSOCK_ERR_INVALID. Thread: any thread; one consumer at a time keeps
 * per-connection order. */
WEBSOCK_EXTERN int websock_server_poll(websock_server *srv, int timeout_ms,
                                       websock_event **out);
/* QUEUED mode: a file descriptor readable while events are queued, for
 * epoll/asyncio/cqueues/nginx loops (then call websock_server_poll with 0).
 * Owned by the server. Returns the fd or WEBSOCK_ERR_STATE. */
WEBSOCK_EXTERN int websock_server_event_fd(websock_server *srv);

/* Server-wide counters; a snapshot, each counter read atomically. New
 * fields are only ever appended, so a program built against an older
 * header keeps working: it passes its own sizeof(websock_stats) and gets
 * the fields it knows. */
typedef struct websock_stats {
  uint64_t connections;       /* open WebSocket connections now */
  uint64_t connections_total; /* upgrades completed since start */
  uint64_t accepted_total;    /* TCP connections accepted since start */
  uint64_t rejected_total;    /* handshakes refused or failed */
  uint64_t messages_in;       /* messages received */
  uint64_t messages_out;      /* messages queued for sending */
  uint64_t bytes_in;          /* payload bytes received */
  uint64_t bytes_out;         /* bytes written to sockets */
  uint64_t pool_size;         /* job wrappers allocated now */
  uint64_t pool_in_use;       /* job wrappers in use now */
  uint64_t pool_grows;        /* times the pool grew */
  uint64_t pool_shrinks;      /* times the pool gave memory back */
  uint64_t event_path_allocs; /* allocations made while handing events and
                                 sends between threads (flat in the steady
                                 state) */
  uint32_t io_threads;        /* I/O threads: index 0..io_threads-1 */
  uint32_t agents;            /* agent threads: index 0..agents-1 */
  uint64_t ready_connections; /* connections with events waiting for a
                                 free agent now */
  uint64_t ready_wait_max_ns; /* the longest any connection waited, ready,
                                 for an agent since start */
  uint64_t cluster_up;        /* cluster: 1 while the Redis link is up */
  uint64_t cluster_out;       /* messages this node published to Redis */
  uint64_t cluster_in;        /* messages from other nodes delivered here */
  uint64_t cluster_dropped;   /* messages for other nodes that were lost:
                                 the link was down, Redis fell 32 MiB
                                 behind, or a connection to Redis ended
                                 before Redis took them */
  uint64_t cluster_connects;  /* times the link (re)connected */
  uint64_t cluster_tags;      /* tags of other nodes this node knows of */
  uint64_t cluster_nodes;     /* other nodes heard from within the ttl */
} websock_stats;

/* Fills the first |size| bytes of |out| (pass sizeof(websock_stats)).
 * Returns 0, or WEBSOCK_ERR_INVALID (NULL, or |size| smaller than the
 * first version of the struct). Thread: any thread. */
WEBSOCK_EXTERN int websock_server_get_stats(websock_server *srv,
                                            websock_stats *out, size_t size);

/* Counters of one I/O thread; appended to like websock_stats. */
typedef struct websock_loop_stats {
  uint64_t connections;   /* connections on this loop now (also those still
                             in the handshake) */
  uint64_t accepted;      /* TCP connections this loop took since start */
  uint64_t events;        /* events delivered inline here (agents = 0) */
  uint64_t topics;        /* topics with members on this loop now */
  uint64_t subscriptions; /* memberships of this loop's connections now */
} websock_loop_stats;

/* Fills the first |size| bytes of |out| with the counters of I/O thread
 * |index| (0..io_threads-1; pass sizeof(websock_loop_stats)). Returns 0,
 * or WEBSOCK_ERR_INVALID (NULL, index out of range, |size| too small).
 * Thread: any thread. */
WEBSOCK_EXTERN int websock_server_get_loop_stats(websock_server *srv,
                                                 unsigned index,
                                                 websock_loop_stats *out,
                                                 size_t size);

/* Counters of one agent thread; appended to like websock_stats. */
typedef struct websock_agent_stats {
  uint64_t events;  /* events this agent delivered to user code */
  uint64_t busy_ns; /* time it spent running them, in nanoseconds */
} websock_agent_stats;

/* As websock_server_get_loop_stats(), for agent |index| (0..agents-1).
 * Thread: any thread. */
WEBSOCK_EXTERN int websock_server_get_agent_stats(websock_server *srv,
                                                  unsigned index,
                                                  websock_agent_stats *out,
                                                  size_t size);

#ifdef __cplusplus
}
#endif
#endif
