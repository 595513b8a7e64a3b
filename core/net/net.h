/* The I/O layer: event loops (one libevent event_base and one thread each),
 * the listener, and connections. A connection lives its whole life on one
 * loop and only that loop's thread touches its non-atomic fields; other
 * threads reach it through the loop's mailbox. Layer: net. */
#ifndef WEBSOCK_NET_NET_H
#define WEBSOCK_NET_NET_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "proto/reader.h"
#include "sched/sched.h"
#include "util/buf.h"
#include "util/queue.h"

struct websock__net;
struct ssl_st;     /* OpenSSL's SSL */
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

enum websock__conn_state {
  WEBSOCK__CONN_HANDSHAKE = 0, /* reading the HTTP request head */
  WEBSOCK__CONN_OPEN,          /* frames flow both ways */
  WEBSOCK__CONN_CLOSING,       /* our close frame is queued/sent; waiting for
                                  the peer's close (or the close timeout) */
  WEBSOCK__CONN_LINGER,        /* done: flush, half-close, discard input
                                  until EOF or the close timeout */
  WEBSOCK__CONN_DEAD           /* socket closed; waiting for the last ref */
};

typedef struct websock__conn {
  websock__client base;       /* shared part; must stay first */
  struct websock__loop *loop; /* owner */
  int fd;
  uint8_t state;            /* enum websock__conn_state */
  uint8_t open_reported;    /* OPEN event delivered: CLOSE is owed */
  uint8_t close_sent;       /* our close frame is queued */
  uint8_t close_received;   /* the peer's close frame arrived */
  uint8_t read_paused;      /* reading stopped for backpressure */
  uint8_t write_armed;      /* EV_WRITE is pending */
  uint8_t in_flush_list;    /* on loop->flush_head */
  uint8_t ping_outstanding; /* keepalive ping sent, nothing heard since */
  uint8_t active;           /* traffic since the last sweep */
  uint8_t shut_wr;          /* shutdown(SHUT_WR) done (LINGER) */
  uint8_t release_out;      /* free |out| once the 101 response is sent */
  uint8_t tls_done;         /* TLS handshake complete */
  uint8_t tls_rd_wants_wr;  /* handshake/SSL_read waits for EV_WRITE */
  uint8_t tls_wr_wants_rd;  /* SSL_write waits for readable input */
  uint8_t tls_failed;       /* fatal TLS error: no close_notify allowed */
  uint8_t tls_shut;         /* close_notify sent */
  uint8_t close_owed;       /* ended, but its CLOSE event still waits for
                               memory: on the loop's owed list */
  int close_code;           /* code for the CLOSE event */
  uint64_t deadline_ms;     /* handshake / close / linger deadline */
  uint64_t last_rx_ms;      /* last byte from the peer */
  struct event rd_ev;       /* EV_READ|EV_PERSIST */
  struct event *wr_ev;      /* EV_WRITE|EV_PERSIST while output is stuck;
                               made on first use: most sockets never block,
                               and idle connections stay small */
  struct ssl_st *ssl;       /* TLS state, NULL on plain ws:// */
  websock__reader reader;   /* frame parser state (OPEN and later) */
  websock__buf in;          /* request head bytes (HANDSHAKE only) */
  websock__buf msg;         /* fragments of the message being received */
  websock__buf out;         /* encoded bytes waiting for the socket */
  size_t out_off;           /* bytes of |out| already written */
  char *info;               /* "path\0query\0subprotocol\0remote\0" */
  const char *path, *query, *subprotocol, *remote; /* into info */
  struct websock__conn *prev, *next; /* loop's list of connections (or of
                                        owed CLOSE events once ended) */
  struct websock__conn *flush_next;  /* loop's flush list */
} websock__conn;

typedef struct websock__loop {
  struct websock__net *net;
  unsigned index;
  pthread_t thread;
  int started;
  struct event_base *base;
  int wake_fd; /* eventfd: mailbox not empty */
  struct event wake_ev;
  struct event sweep_ev;     /* periodic timeouts and trimming */
  struct event listen_ev;    /* loop 0 only */
  websock__queue mailbox;    /* jobs from any thread; wakes wake_fd */
  int mailbox_ready;         /* mailbox initialised (for a failed init) */
  websock__conn *conns;      /* every connection of this loop */
  websock__conn *owed;       /* ended connections whose CLOSE event could
                                not be had yet (out of memory): retried by
                                the sweep, so no CLOSE is ever lost */
  atomic_uint nconns;        /* connections assigned (incl. in flight) */
  websock__conn *flush_head; /* connections with output to write */
  websock__batch batch;      /* events gathered this iteration */
  uint8_t *rbuf;             /* shared receive buffer */
  size_t rbuf_cap;
  atomic_int quit;         /* leave the event loop */
  int stopping;            /* graceful stop begun */
  int closing_all;         /* close frames sent to everyone */
  unsigned fences_pending; /* agent fences not yet acknowledged */
  uint64_t stop_deadline_ms;
  uint64_t last_trim_ms;
  atomic_uint_fast64_t accepted;
  atomic_uint_fast64_t events; /* delivered inline (agents = 0) */
  atomic_uint_fast64_t messages_in, messages_out, bytes_in, bytes_out;
} websock__loop;

typedef struct websock__net {
  const websock__settings *settings;
  websock__sched *sched;
  websock__loop *loops;
  unsigned nloops;
  int listen_fd;
  int port;
  atomic_uint_fast64_t next_id;
  atomic_uint open_conns; /* all loops, for max_connections */
  atomic_uint_fast64_t connections_total;
  atomic_uint_fast64_t rejected_total;
  unsigned rr; /* round-robin start for ties (loop 0 only) */
  struct timeval sweep_interval;
  struct ssl_ctx_st *tls_ctx; /* server's reference; NULL without TLS */
} websock__net;

/* loop.c */
int websock__net_init(websock__net *n, const websock__settings *st,
                      websock__sched *sched);
int websock__net_listen(websock__net *n);
int websock__net_start(websock__net *n);
void websock__net_stop(websock__net *n);
void websock__net_join(websock__net *n);
void websock__net_destroy(websock__net *n);
/* Posts a job to a loop's mailbox and wakes it. Thread: any. */
void websock__loop_post(websock__loop *l, websock__job *j);
/* The loop |c| lives on, and whether the calling thread is that loop. */
websock__loop *websock__loop_of(websock__net *n, const websock__client *c);
int websock__loop_is_current(const websock__loop *l);
/* Adds |c| to the loop's flush list. */
void websock__loop_want_flush(websock__loop *l, websock__conn *c);
/* End of every loop callback: writes pending output of all connections at
 * once. */
void websock__loop_after(websock__loop *l);
/* Called when a connection ended during a stop. */
void websock__loop_conn_gone(websock__loop *l);

/* conn.c */
websock__conn *websock__conn_new(websock__loop *l, int fd);
void websock__conn_on_read(evutil_socket_t fd, short what, void *arg);
void websock__conn_on_write(evutil_socket_t fd, short what, void *arg);
/* How websock__conn_append() counts the bytes it queues. */
enum websock__append_flags {
  WEBSOCK__APPEND_COUNTED = 1, /* already in pending_out (a posted send) */
  WEBSOCK__APPEND_MESSAGE = 2  /* one data message: counts in messages_out */
};
/* Appends pre-encoded bytes to the connection's output and schedules a
 * flush: the one place output is queued (besides encoding in place, see
 * websock__conn_queue_message) and counted. Returns 0 or -1 (no memory;
 * bytes already counted are uncounted then). */
int websock__conn_append(websock__conn *c, const uint8_t *p, size_t n,
                         int flags);
/* Encodes and queues a message or control frame. Returns 0 or -1. */
int websock__conn_queue_message(websock__conn *c, int opcode, const void *p,
                                size_t n);
/* Starts the close handshake (no-op once closing). */
void websock__conn_start_close(websock__conn *c, int code, const char *reason,
                               size_t reason_len);
/* Fails the connection: sends |code| when a close can still be sent, then
 * flushes, half-closes and lingers until EOF or the close timeout. */
void websock__conn_fail(websock__conn *c, int code);
/* Writes what is queued; may end the connection. */
void websock__conn_flush(websock__conn *c);
/* Ends the connection now: closes the socket, reports CLOSE. */
void websock__conn_end(websock__conn *c);
/* Hands an event of |c| to user code; on out of memory the connection
 * fails with 1011 (or, for CLOSE, the event waits on the owed list). */
void websock__conn_emit(websock__conn *c, const websock__emit *e);
/* Retries an owed CLOSE event; returns 1 once it went out. */
int websock__conn_retry_close(websock__conn *c);
/* Periodic timeout checks. */
void websock__conn_sweep(websock__conn *c, uint64_t now);

/* command.c: send, ping and close from any thread; broadcast. */
typedef struct websock__cmd {
  int kind;         /* enum websock__cmd_kind */
  int opcode;       /* SEND: WEBSOCK_OP_TEXT / WEBSOCK_OP_BINARY */
  int code;         /* CLOSE: close code (0: none) */
  const void *data; /* SEND/PING payload, CLOSE reason */
  size_t len;
} websock__cmd;
/* Runs |cmd| for client |c| now when called on its loop, else posts it
 * there (the payload copied, a SEND encoded by the caller). Returns 0,
 * WEBSOCK_ERR_CLOSING, WEBSOCK_ERR_BACKPRESSURE or WEBSOCK_ERR_NOMEM.
 * Thread: any. */
int websock__net_command(websock__net *n, websock__client *c,
                         const websock__cmd *cmd);
/* Encodes one message once and has every loop queue it to its open
 * connections except |except_id|. Returns 0 or WEBSOCK_ERR_NOMEM.
 * Thread: any. */
int websock__net_broadcast(websock__net *n, int opcode, const void *data,
                           size_t len, uint64_t except_id);
/* A COMMAND or BROADCAST job reached its loop. Thread: that loop. */
void websock__command_run(websock__loop *l, websock__job *j);
/* Drops a COMMAND or BROADCAST job that will never run (the loop ended). */
void websock__command_drop(websock__job *j);

/* backpressure.c: the outbound bound, read pausing and DRAIN. */
/* Whether a send of |len| more bytes fits the outbound bound; when not,
 * remembers that a DRAIN event is owed. Returns 0 or
 * WEBSOCK_ERR_BACKPRESSURE. Thread: any. */
int websock__bp_admit(const websock__settings *st, websock__client *c,
                      size_t len);
/* Whether a shared broadcast frame of |len| bytes should skip |c| (a slow
 * client misses a broadcast rather than stalling or growing without
 * bound). Thread: the client's loop. */
int websock__bp_skip_shared(const websock__settings *st,
                            const websock__client *c, size_t len);
/* Outbound bytes were queued (|n| > 0) or left the queue: written or
 * dropped (|n| < 0). The one place pending_out changes. Thread: any. */
void websock__bp_count_out(websock__client *c, long n);
/* After reading: stops reading when the backlog passed half the bound.
 * Returns 1 when it paused. Thread: the loop. */
int websock__bp_check_pause(websock__conn *c);
/* Resumes reading once the backlog fell below a quarter of the bound. */
void websock__bp_maybe_resume(websock__conn *c);
/* Resumes reading at once (TLS needs input to make write progress). */
void websock__bp_force_resume(websock__conn *c);
/* After a flush emptied the output: resume reading, report DRAIN. */
void websock__bp_after_flush(websock__conn *c);
/* sched's on_event_done hook: a message no longer counts against its
 * client, and a paused loop is asked to look again. Thread: any. */
void websock__bp_event_done(websock__sched *s, websock__job *j);

#endif
