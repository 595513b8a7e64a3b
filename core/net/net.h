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

#include "proto/deflate.h"
#include "proto/reader.h"
#include "sched/sched.h"
#include "topic.h"
#include "util/buf.h"
#include "util/mailbox.h"
#include "util/queue.h"
#include "util/time.h"

struct websock__net;
struct ssl_st;     /* OpenSSL's SSL */
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

enum websock__conn_state {
  WEBSOCK__CONN_HANDSHAKE = 0, /* reading the HTTP request head */
  WEBSOCK__CONN_DEFERRED,      /* the upgrade waits for a deferred answer */
  WEBSOCK__CONN_OPEN,          /* frames flow both ways */
  WEBSOCK__CONN_CLOSING,       /* our close frame is queued/sent; waiting for
                                  the peer's close (or the close timeout) */
  WEBSOCK__CONN_LINGER,        /* done: flush, half-close, discard input
                                  until EOF or the close timeout */
  WEBSOCK__CONN_DEAD,          /* socket closed; waiting for the last ref */
  /* An outgoing connection (dial.c) before it opens: */
  WEBSOCK__CONN_RESOLVING,  /* its host name is being looked up */
  WEBSOCK__CONN_CONNECTING, /* connect() in progress (EV_WRITE); then TLS */
  WEBSOCK__CONN_UPGRADING   /* our request sent, the 101 awaited */
};

/* The read side of a connection, allocated only while it is needed: a
 * request head that came in pieces, a frame or message in progress, the
 * peer's close reason. An idle open connection gives it back at the sweep
 * (see websock__conn_sweep), which is what keeps idle connections small. */
typedef struct websock__rx {
  websock__reader reader; /* frame parser (OPEN and CLOSING) */
  websock__buf buf;       /* HANDSHAKE: the request head so far; DEFERRED:
                             bytes sent behind it; later the fragments of
                             the message being received, then the peer's
                             close reason */
  struct websock_upgrade *deferred; /* DEFERRED: the handle waited for */
  struct websock__dial *dial;       /* outgoing, until OPEN: how to connect
                                       and what to check (dial.c) */
} websock__rx;

/* Output waiting for the socket, made on first use and given back by the
 * sweep when a quiet connection has written everything. */
typedef struct websock__out {
  websock__buf buf; /* encoded bytes */
  size_t off;       /* bytes of |buf| already written */
} websock__out;

/* Times of a connection are milliseconds since its loop's epoch in 32 bits
 * (see websock__loop_now): they are compared by difference, so they wrap
 * harmlessly every 49 days. */
typedef struct websock__conn {
  websock__client base;       /* shared part; must stay first */
  struct websock__loop *loop; /* owner */
  struct event rd_ev;         /* EV_READ|EV_PERSIST */
  struct event *wr_ev;        /* EV_WRITE|EV_PERSIST while output is stuck;
                                 made on first use: most sockets never
                                 block, and idle connections stay small */
  struct ssl_st *ssl;         /* TLS state, NULL on plain ws:// */
  websock__rx *rx;            /* read side, NULL while idle */
  struct websock__out *out;   /* output not written yet, NULL while idle */
  struct websock__conn *prev, *next; /* loop's list of connections (or of
                                        owed CLOSE events once ended) */
  struct websock__conn *flush_next;  /* loop's flush list */
  struct websock__zconn *z; /* its own deflate streams (deflate.c), NULL
                               while it needs none */
  uint32_t deadline_ms;     /* handshake / close / linger */
  uint32_t last_rx_ms;      /* last byte from the peer */
  int fd;
  uint16_t close_code;           /* code for the CLOSE event */
  uint8_t state;                 /* enum websock__conn_state */
  uint8_t pmd_windows;           /* permessage-deflate's windows: ours in
                                    the high nibble, the client's in the
                                    low one (8..15; 0 without deflate) */
  unsigned open_reported : 1;    /* OPEN event delivered: CLOSE is owed */
  unsigned close_sent : 1;       /* our close frame is queued */
  unsigned close_received : 1;   /* the peer's close frame arrived */
  unsigned close_owed : 1;       /* ended; its CLOSE event waits for memory
                                    on the loop's owed list */
  unsigned read_paused : 1;      /* reading stopped for backpressure */
  unsigned write_armed : 1;      /* EV_WRITE is pending */
  unsigned in_flush_list : 1;    /* on loop->flush_head */
  unsigned ping_outstanding : 1; /* keepalive ping sent, nothing heard */
  unsigned active : 1;           /* traffic since the last sweep */
  unsigned shut_wr : 1;          /* shutdown(SHUT_WR) done (LINGER) */
  unsigned tls_done : 1;         /* TLS handshake complete */
  unsigned tls_rd_wants_wr : 1;  /* handshake/SSL_read waits for EV_WRITE */
  unsigned tls_wr_wants_rd : 1;  /* SSL_write waits for readable input */
  unsigned tls_failed : 1;       /* fatal TLS error: no close_notify */
  unsigned tls_shut : 1;         /* close_notify sent */
  unsigned fail_drop : 1;        /* failed for a protocol error (1002, 1007,
                                    1009): read at most fail_read_kib more,
                                    end once our close frame is flushed */
  unsigned fail_read_kib : 7;    /* fail_drop: KiB still allowed to read */
  unsigned pmd_on : 1;           /* permessage-deflate negotiated */
  unsigned pmd_server_reset : 1; /* we reset our compressor each message */
  unsigned pmd_client_reset : 1; /* the client resets its compressor */
  unsigned outgoing : 1;         /* we dialed it (client mode, dial.c):
                                    our frames are masked, its are not */
  uint32_t slow_since_ms;        /* slow-consumer policy: first sweep that
                                    found the output at half the bound or
                                    more since it was last below (0: not) */
  websock__tsub *topics;         /* its topics (topic.c), NULL while none */
  uint64_t max_message;          /* outgoing: the limit its connect asked
                                    for; 0: the server's */
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
  int listen_fd;             /* listening socket: loop 0's, or every loop's
                                with reuse_port; -1 when none */
  struct event listen_ev;    /* accepts on listen_fd (while it is >= 0) */
  websock__mailbox mailbox;  /* jobs from any thread; wakes wake_fd */
  websock__conn *conns;      /* every connection of this loop */
  websock__conn *owed;       /* ended connections whose CLOSE event could
                                not be had yet (out of memory): retried by
                                the sweep, so no CLOSE is ever lost */
  atomic_uint nconns;        /* connections assigned (incl. in flight) */
  websock__conn *flush_head; /* connections with output to write */
  websock__batch batch;      /* events gathered this iteration */
  websock__pool_cache jobs;  /* this thread's own free jobs (pool.c) */
  uint8_t *rbuf;             /* shared receive buffer */
  /* permessage-deflate (deflate.c): zlib's block cache, the compressors
   * shared by the connections that keep no context (one per window, 9..15,
   * made on first use), the inflater of clients that keep none, and the
   * scratch buffers of one message compressed or inflated. */
  websock__zcache zcache;
  websock__deflater zshared[7];
  websock__inflater zinflate;
  websock__buf zout, zin, zframe;
  websock__buf scratch;   /* the handshake request's strings (reused) */
  websock__buf unmasked;  /* an outgoing connection's frames before they
                             are masked */
  websock__topics topics; /* topics with members here (topic.c) */
  size_t rbuf_cap;
  atomic_int quit;   /* leave the event loop */
  int stopping;      /* graceful stop begun */
  int closing_all;   /* close frames sent to everyone */
  int draining;      /* stop waits for the agents (FENCE_ACK) */
  uint64_t epoch_ms; /* websock__now_ms() at init: origin of conn times */
  uint64_t stop_deadline_ms;
  uint64_t last_trim_ms;
  atomic_uint_fast64_t accepted;
  atomic_uint_fast64_t events; /* delivered inline (agents = 0) */
  atomic_uint_fast64_t messages_in, messages_out, bytes_in, bytes_out;
  int spare_fd;      /* listening loops: /dev/null held near the
                        descriptor limit so that, out of them, one waiting
                        client can still be accepted and refused; <= 0
                        when none (see listen.c) */
  int spare_from_fd; /* hold the spare once accepted descriptors reach
                        this number (the soft limit less a margin) */
  struct event accept_retry_ev; /* listening loops: re-watches the listener
                                   after it was paused at EMFILE/ENFILE */
  unsigned accept_retry_ms;     /* the next pause's length (backs off) */
  atomic_int accept_paused;     /* the listener is paused for descriptors;
                                   a connection closing on any loop may
                                   wake it early (websock__listen_fd_freed) */
} websock__loop;

typedef struct websock__net {
  const websock__settings *settings;
  websock__sched *sched;
  websock__loop *loops;
  unsigned nloops;
  int port;
  atomic_uint_fast64_t next_id;
  atomic_uint open_conns; /* all loops, for max_connections */
  atomic_uint_fast64_t connections_total;
  atomic_uint_fast64_t rejected_total;
  unsigned rr; /* round-robin start for ties (loop 0 only) */
  struct timeval sweep_interval;
  struct ssl_ctx_st *tls_ctx;         /* server's reference; NULL without TLS */
  struct websock__resolver *resolver; /* dial.c's name lookups, made by
                                         the first connect that needs one */
  struct ssl_ctx_st *client_ctx;      /* wss:// connects without options:
                                         the system's CAs, made on first
                                         use */
  pthread_mutex_t dial_mu;            /* guards making those two */
  /* Why websock__net_listen failed, for websock_server_last_error(). */
  char listen_error[160];
  int listen_errno;
} websock__net;

/* loop.c */
int websock__net_init(websock__net *n, const websock__settings *st,
                      websock__sched *sched);
int websock__net_listen(websock__net *n);
int websock__net_start(websock__net *n);
void websock__net_stop(websock__net *n);
/* Asks every loop to close its listening socket. Returns 0 or
 * WEBSOCK_ERR_NOMEM (some loops were not asked). */
int websock__net_stop_accepting(websock__net *n);
void websock__net_join(websock__net *n);
void websock__net_destroy(websock__net *n);
/* Posts a job to a loop's mailbox and wakes it. Thread: any. */
void websock__loop_post(websock__loop *l, websock__job *j);
/* The loop |c| lives on, and whether the calling thread is that loop. */
websock__loop *websock__loop_of(const websock__client *c);
static inline int websock__loop_is_current(const websock__loop *l) {
  return websock__tctx.loop == l;
}
/* Adds |c| to the loop's flush list. */
void websock__loop_want_flush(websock__loop *l, websock__conn *c);
/* End of every loop callback: writes pending output of all connections at
 * once. */
void websock__loop_after(websock__loop *l);
/* Called when a connection ended during a stop. */
void websock__loop_conn_gone(websock__loop *l);

/* Milliseconds since the loop's epoch, as connection times count them. */
static inline uint32_t websock__loop_now(const websock__loop *l) {
  return (uint32_t)(websock__now_ms() - l->epoch_ms);
}

/* 1 when time |t| has come (at |now|): compared by difference, so it
 * holds across the 32-bit wrap for deadlines under 24 days away. */
static inline int websock__time_reached(uint32_t now, uint32_t t) {
  return (int32_t)(now - t) >= 0;
}

/* listen.c: a descriptor of loop |l| was closed: a listener paused for
 * want of descriptors looks again at once. Thread: |l|'s loop. */
void websock__listen_fd_freed(websock__loop *l);
/* Closes the spare descriptor of a listening loop (at stop or destroy, once
 * its listener is closed). Thread: |l|'s loop, or any once it ended. */
void websock__listen_release(websock__loop *l);

/* conn.c: a connection's life: creation, the close handshake, the end,
 * events to user code, timeouts. */
websock__conn *websock__conn_new(websock__loop *l, int fd);
/* An outgoing connection of loop |l| with the id its connect returned, in
 * state RESOLVING, without a socket yet, ending at |timeout_ms| unless
 * open. Made on the connecting thread (so a lack of memory is the
 * connect's error, not a fate nobody hears of) and touched by no other
 * thread until its loop links it (websock__conn_link). */
websock__conn *websock__conn_new_outgoing(websock__loop *l, uint64_t id,
                                          unsigned timeout_ms);
/* Puts |c| on its loop's list. Thread: that loop. */
void websock__conn_link(websock__loop *l, websock__conn *c);
/* Starts the close handshake (no-op once closing). */
void websock__conn_start_close(websock__conn *c, int code, const char *reason,
                               size_t reason_len);
/* The peer's close frame arrived (payload already validated). */
void websock__conn_on_peer_close(websock__conn *c, const uint8_t *payload,
                                 size_t len);
/* Fails the connection: sends |code| when a close can still be sent, then
 * flushes, half-closes and lingers until EOF or the close timeout. */
void websock__conn_fail(websock__conn *c, int code);
/* Ends the connection now: closes the socket, reports CLOSE. */
void websock__conn_end(websock__conn *c);
/* Hands an event of |c| to user code; on out of memory the connection
 * fails with 1011 (or, for CLOSE, the event waits on the owed list). */
void websock__conn_emit(websock__conn *c, const websock__emit *e);
/* Retries an owed CLOSE event; returns 1 once it went out. */
int websock__conn_retry_close(websock__conn *c);
/* The read side, made on first use; NULL when out of memory. */
websock__rx *websock__conn_rx(websock__conn *c);
/* Writes the peer's address ("ip:port", "[ip6]:port") into |buf|. */
void websock__conn_remote_addr(const websock__conn *c, char *buf, size_t cap);
/* Counts an allocation made on the event path when |grew| > 0. */
void websock__conn_count_alloc(websock__conn *c, int grew);
/* The largest message |c| may receive. */
static inline uint64_t websock__conn_max_message(const websock__conn *c) {
  return c->max_message ? c->max_message : c->loop->net->settings->max_message;
}
/* The largest frame: an outgoing connection's own limit covers frames
 * too (the config's frame limit is at most its message limit). */
static inline uint64_t websock__conn_max_frame(const websock__conn *c) {
  return c->max_message ? c->max_message : c->loop->net->settings->max_frame;
}
/* 1 while an outgoing connection is not open yet. */
static inline int websock__conn_dialing(const websock__conn *c) {
  return c->state == WEBSOCK__CONN_RESOLVING ||
         c->state == WEBSOCK__CONN_CONNECTING ||
         c->state == WEBSOCK__CONN_UPGRADING;
}
/* The libevent callback of both socket events: reads on EV_READ, writes
 * (and reads a TLS layer waited to write for) on EV_WRITE. */
void websock__conn_on_io(evutil_socket_t fd, short what, void *arg);
/* Periodic timeout checks; idle connections give memory back. */
void websock__conn_sweep(websock__conn *c, uint32_t now);

/* deflate.c: permessage-deflate. */
/* Answers the client's offer in |req| when the config allows deflate:
 * writes the 101's "Sec-WebSocket-Extensions: ...\r\n" line into |line|
 * and sets the connection's parameters. Returns the line's length, or 0
 * for no extension. */
size_t websock__pmd_answer(websock__conn *c, const struct websock_request *req,
                           char *line, size_t cap);
/* Client side: the offer's header value for the config's deflate
 * parameters into |out|; its length, or -1 when |cap| is too small. */
int websock__pmd_client_offer(const websock__settings *st, char *out,
                              size_t cap);
/* Client side: takes the server's Sec-WebSocket-Extensions answer (its
 * value) to that offer. Returns 1 (deflate on for |c|), 0 (no extension)
 * or -1 (an answer the client must fail the connection for). */
int websock__pmd_client_accept(websock__conn *c, const char *value, size_t len);
/* Lets |r| accept compressed messages when deflate was negotiated. */
void websock__pmd_reader(websock__conn *c, websock__reader *r);
/* 1 when a data message of |len| bytes goes out compressed. */
int websock__pmd_wants(const websock__conn *c, int opcode, size_t len);
/* Compresses |n| bytes for |c| into the loop's scratch buffer (its
 * contents valid until the next call on this loop). NULL without
 * memory: with context takeover the connection must then fail (1011). */
const websock__buf *websock__pmd_deflate(websock__conn *c, const void *p,
                                         size_t n);
/* Inflates a whole compressed message into the loop's scratch buffer
 * (set in *out), checking text for UTF-8. Returns 0, or the close code to
 * fail with: 1009 past the message limit (inflated chunk by chunk, never
 * allocated first), 1007 corrupt data or bad UTF-8, 1011 no memory. */
int websock__pmd_inflate(websock__conn *c, int opcode, const uint8_t *in,
                         size_t len, websock__buf **out);
/* 1 when |c| takes its compressed messages from the loop's compressor of
 * the configured window, as every such connection does (shared mode). */
int websock__pmd_shared(const websock__conn *c);
/* The frames of one message compressed by that compressor, encoded into
 * the loop's frame scratch buffer, for a broadcast to share them; NULL
 * without memory. */
const websock__buf *websock__pmd_frame(websock__conn *c, int opcode,
                                       const void *p, size_t n);
/* Empties a scratch buffer after its message, giving back a large one. */
void websock__pmd_scratch_done(websock__buf *b);
/* The connection ends (on its loop): its streams go back to the cache. */
void websock__pmd_conn_end(websock__conn *c);
void websock__pmd_loop_init(websock__loop *l);
void websock__pmd_loop_trim(websock__loop *l);
void websock__pmd_loop_free(websock__loop *l);

/* conn_write.c: output. */
/* How websock__conn_append() counts the bytes it queues. */
enum websock__append_flags {
  WEBSOCK__APPEND_COUNTED = 1, /* already in pending_out (a posted send) */
  WEBSOCK__APPEND_MESSAGE = 2  /* one data message: counts in messages_out */
};
/* Appends pre-encoded bytes to the connection's output and schedules a
 * flush: the one place output is queued (besides encoding in place, see
 * websock__conn_queue_message, and taking a whole buffer, below) and
 * counted. Returns 0 or -1 (no memory; bytes already counted are
 * uncounted then). */
int websock__conn_append(websock__conn *c, const uint8_t *p, size_t n,
                         int flags);
/* Frames of at least this many bytes move into an empty output instead
 * of being copied. */
#define WEBSOCK__SWAP_MIN 4096
/* websock__conn_append() of the encoded frames in |b|, which may take
 * |b|'s block for the output (when the output is empty and |b| holds at
 * least WEBSOCK__SWAP_MIN bytes) and leave |b| with the output's empty
 * one. Returns as websock__conn_append(). */
int websock__conn_append_buf(websock__conn *c, websock__buf *b, int flags);
/* websock__conn_append() of the frames of |messages| data messages whose
 * bytes a sender counted already (an outbox's record). */
int websock__conn_append_messages(websock__conn *c, const uint8_t *p, size_t n,
                                  size_t messages);
/* Encodes and queues a message or control frame. Returns 0 or -1. */
int websock__conn_queue_message(websock__conn *c, int opcode, const void *p,
                                size_t n);
/* Writes |n| bytes at once when nothing else is queued, and queues what
 * the socket did not take: a handshake response needs no buffer this
 * way. Returns 0 or -1 (no memory). */
int websock__conn_send_now(websock__conn *c, const uint8_t *p, size_t n);
/* Writes what is queued; may end the connection. */
void websock__conn_flush(websock__conn *c);
/* Drops the written part of the output (all of it once everything went). */
void websock__conn_out_compact(websock__conn *c);
/* Frees the output when everything was written (|force|: in any case). */
void websock__conn_out_release(websock__conn *c, int force);
/* Watches writability (made on first use). */
void websock__conn_arm_write(websock__conn *c);
/* Sends our close_notify once, when the session is healthy enough to. */
void websock__conn_tls_close_notify(websock__conn *c);

/* conn_read.c: input: plain and TLS reads, frames in. */
/* Reads what the socket (or OpenSSL) has. */
void websock__conn_read(websock__conn *c);
/* Feeds frame bytes to the reader (OPEN and CLOSING). */
void websock__conn_feed(websock__conn *c, uint8_t *p, size_t len);
/* |c| was failed for a protocol error: input past a small budget is no
 * longer read, and the connection ends once its close frame is flushed. */
void websock__conn_limit_reads(websock__conn *c);

/* dial.c: outgoing connections (client mode). */
struct websock__dial;
/* Makes the connection of dial |d| for loop |l| with its read side, which
 * then owns |d|; NULL when out of memory (|d| is the caller's again).
 * Thread: the connecting one. */
websock__conn *websock__dial_prepare(websock__loop *l, struct websock__dial *d);
/* A DIAL job (client: the prepared connection) reached its loop: the
 * connection joins it, its deadline runs, and it resolves or connects.
 * Thread: that loop. */
void websock__dial_run(websock__loop *l, websock__job *j);
/* A RESOLVED job (the resolver's answer) reached its loop. */
void websock__dial_resolved(websock__loop *l, websock__job *j);
/* Drops a DIAL or RESOLVED job that will never run. */
void websock__dial_drop(websock__job *j);
/* EV_WRITE on a CONNECTING socket: the connect finished (or failed). */
void websock__dial_on_connect(websock__conn *c);
/* The TLS handshake of an outgoing connection finished: the request goes. */
void websock__dial_tls_done(websock__conn *c);
/* An outgoing connection that never opened ends: its reason is set when
 * no failure set one (the server closed the connection, a stop). */
void websock__dial_ended(websock__conn *c);
/* Its deadline passed before OPEN. */
void websock__dial_timeout(websock__conn *c);
/* Fails an outgoing connection that is not open yet: "<stage>: <why>" is
 * the reason its CLOSE event (1006) carries. */
void websock__dial_fail(websock__conn *c, const char *stage, const char *why);
/* Takes |len| bytes of the server's answer in the UPGRADING state (bytes
 * after the head are fed as frames). */
void websock__dial_response_input(websock__conn *c, uint8_t *p, size_t len);
/* Frees what the connection's dial holds (at the end of the connection). */
void websock__dial_free(struct websock__dial *d);
/* Joins the resolver thread (after the loops ended). */
void websock__resolver_join(websock__net *n);
/* Frees the resolver and the default client context (at destroy). */
void websock__dial_net_free(websock__net *n);

/* upgrade.c: the HTTP request head: the hook, routes, replies, the 101. */
/* Takes |len| bytes of a connection in the HANDSHAKE state (in the loop's
 * buffer: bytes left after the head are fed as frames). */
void websock__conn_upgrade_input(websock__conn *c, uint8_t *p, size_t len);

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
/* As websock__net_broadcast, to the members of |topic| (1..255 bytes,
 * copied) on every loop. Returns 0 or WEBSOCK_ERR_NOMEM. Thread: any. */
int websock__net_publish(websock__net *n, const void *topic, size_t topic_len,
                         int opcode, const void *data, size_t len,
                         uint64_t except_id);
/* outbox.c: an agent's small sends to one loop's connections, coalesced
 * into one posted job. Queues |cmd| (a SEND, admitted, of a connection of
 * |l|, that the loop need not compress) in the calling agent's outbox for
 * |l|: 0, or 1
 * when it is not for an outbox (not an agent, a large message, no job):
 * the caller posts a job of its own then. Thread: an agent. */
int websock__outbox_send(websock__net *n, websock__loop *l, websock__client *c,
                         const websock__cmd *cmd);
/* An OUTBOX job reached its loop: its sends are queued. Thread: that
 * loop. */
void websock__outbox_run(websock__job *ob);
/* An OUTBOX job that will never run (the loop ended). */
void websock__outbox_drop(websock__job *ob);
/* A COMMAND, BROADCAST or PUBLISH job reached its loop. Thread: that loop. */
void websock__command_run(websock__loop *l, websock__job *j);
/* Drops a COMMAND, BROADCAST or PUBLISH job that will never run (the loop
 * ended). */
void websock__command_drop(websock__job *j);
/* A fan-out: one shared message (a broadcast's or a publish's blob) handed
 * to many connections of a loop, compressed at most once for all the
 * connections of the loop's shared compressor. */
typedef struct websock__fanout {
  websock__loop *loop;
  const websock__blob *blob;
  uint64_t except_id;         /* the connection skipped (0: none) */
  websock__buf plain;         /* the blob's plain frames */
  const websock__buf *shared; /* the compressed frames, made on first use */
} websock__fanout;
void websock__fanout_begin(websock__fanout *f, websock__loop *l,
                           const websock__blob *blob, uint64_t except_id);
/* Queues the message to |k| unless |k| is not open, is the skipped one,
 * has not been greeted (its OPEN handler is still running) or is over its
 * outbound bound (websock__bp_skip_shared). */
void websock__fanout_to(websock__fanout *f, websock__conn *k);
void websock__fanout_end(websock__fanout *f);

/* topic.c: the loop's topics (see topic.h). Thread: the loop. */
/* Makes open connection |c| a member of |name| (a no-op when it is one).
 * Returns 0, WEBSOCK_ERR_CLOSING (not open) or WEBSOCK_ERR_NOMEM. */
int websock__topic_subscribe(websock__conn *c, const void *name, size_t len);
/* Ends |c|'s membership of |name| (a no-op when it is not a member). */
void websock__topic_unsubscribe(websock__conn *c, const void *name, size_t len);
/* |c| ends: it leaves all its topics. */
void websock__topic_conn_end(websock__conn *c);
/* Runs a PUBLISH job: the members of its topic on |l| get its blob. */
void websock__topic_publish(websock__loop *l, websock__job *j);

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
/* The slow-consumer policy, at the sweep: ends an open connection whose
 * output stayed at half the outbound bound or more for longer than the
 * slow-consumer timeout (its output is dropped, CLOSE reports 1008).
 * Returns 1 when it ended |c|. Thread: the loop. */
int websock__bp_check_slow(websock__conn *c, uint32_t now);

#endif
