/* A connection's output: the out buffer, frames encoded in place, writes
 * to the socket (or OpenSSL), writability and the ends of the close
 * handshake that wait for the output to drain. Layer: net. */
#include <errno.h>
#include <sys/socket.h>

#include "net.h"
#include "proto/encode.h"
#include "proto/frame.h"
#include "tls.h"
#include "util/alloc.h"
#include "util/random.h"

void websock__loop_want_flush(websock__loop *l, websock__conn *c) {
  if (!c->in_flush_list) {
    c->in_flush_list = 1;
    c->flush_next = l->flush_head;
    l->flush_head = c;
  }
}

/* Drops the bytes of the output the socket already took, so the buffer
 * does not grow with bytes that are gone: all of them once everything was
 * written, the written prefix when it dominates a large buffer. */
void websock__conn_out_compact(websock__conn *c) {
  websock__out *o = c->out;
  if (!o)
    return;
  if (o->off == o->buf.len) {
    o->buf.len = o->off = 0;
  } else if (o->off > 65536 && o->off * 2 > o->buf.len) {
    websock__buf_consume(&o->buf, o->off);
    o->off = 0;
  }
}

void websock__conn_out_release(websock__conn *c, int force) {
  websock__out *o = c->out;
  if (!o || (!force && o->off != o->buf.len))
    return;
  websock__buf_free(&o->buf);
  websock__free(o);
  c->out = NULL;
}

/* The output, made on first use (compacted); NULL without memory. */
static websock__out *conn_out(websock__conn *c) {
  if (c->out) {
    if (c->out->off) /* the common case, all written, needs nothing */
      websock__conn_out_compact(c);
    return c->out;
  }
  c->out = websock__calloc(1, sizeof *c->out);
  websock__conn_count_alloc(c, c->out != NULL);
  return c->out;
}

/* The one place data messages leaving count in the stats. */
static void conn_count_messages(websock__conn *c, size_t n) {
  atomic_fetch_add_explicit(&c->loop->messages_out, n, memory_order_relaxed);
}

/* Queues |n| bytes: as they are (frames of an accepted connection, the
 * rest of an HTTP head), or with |mask| the unmasked frames of an outgoing
 * connection, each masked with a fresh key (RFC 6455 section 5.3): 4 bytes
 * more per frame than the caller counted. */
static int conn_append_bytes(websock__conn *c, const uint8_t *p, size_t n,
                             int flags, int mask) {
  websock__out *o = conn_out(c);
  int grew = 0;
  long w = -1;
  if (o && mask) {
    w = websock__mask_frames(&o->buf, p, n, websock__random_key, NULL, &grew);
  } else if (o) {
    grew = websock__buf_append(&o->buf, p, n);
    w = grew < 0 ? -1 : (long)n;
  }
  if (w < 0) {
    if (flags & WEBSOCK__APPEND_COUNTED)
      websock__bp_count_out(&c->base, -(long)n);
    return -1;
  }
  websock__conn_count_alloc(c, grew);
  long uncounted = (flags & WEBSOCK__APPEND_COUNTED) ? w - (long)n : w;
  if (uncounted)
    websock__bp_count_out(&c->base, uncounted);
  if (flags & WEBSOCK__APPEND_MESSAGE)
    conn_count_messages(c, 1);
  websock__loop_want_flush(c->loop, c);
  return 0;
}

int websock__conn_append(websock__conn *c, const uint8_t *p, size_t n,
                         int flags) {
  return conn_append_bytes(c, p, n, flags, c->outgoing);
}

int websock__conn_append_messages(websock__conn *c, const uint8_t *p, size_t n,
                                  size_t messages) {
  if (websock__conn_append(c, p, n, WEBSOCK__APPEND_COUNTED) < 0)
    return -1;
  conn_count_messages(c, messages);
  return 0;
}

int websock__conn_append_buf(websock__conn *c, websock__buf *b, int flags) {
  /* (An outgoing connection's frames are copied anyway, to be masked.) */
  websock__out *o =
      b->len >= WEBSOCK__SWAP_MIN && !c->outgoing ? conn_out(c) : NULL;
  if (!o || o->off != o->buf.len)
    return websock__conn_append(c, b->data, b->len, flags);
  /* Nothing waits in the output: the frames become the output as they
   * are, and the output's empty buffer goes to |b|'s owner (a pooled job,
   * which keeps it for the next message of this size). */
  websock__buf_swap(&o->buf, b);
  o->off = 0;
  b->len = 0;
  if (!(flags & WEBSOCK__APPEND_COUNTED))
    websock__bp_count_out(&c->base, (long)o->buf.len);
  if (flags & WEBSOCK__APPEND_MESSAGE)
    conn_count_messages(c, 1);
  websock__loop_want_flush(c->loop, c);
  return 0;
}

int websock__conn_queue_message(websock__conn *c, int opcode, const void *p,
                                size_t n) {
  websock__loop *l = c->loop;
  websock__out *o = conn_out(c);
  if (!o)
    return -1;
  const websock__buf *z = NULL;
  if (websock__pmd_wants(c, opcode, n)) {
    z = websock__pmd_deflate(c, p, n);
    if (!z)
      return -1;
    p = z->data;
    n = z->len;
    opcode |= WEBSOCK__FRAME_RSV1;
  }
  int data = (opcode & 0xF) < 8;
  size_t frag = data ? l->net->settings->fragment_size : 0;
  /* Encoded in place; an outgoing connection's frames go through the
   * loop's scratch buffer to be masked. */
  websock__buf *dst = c->outgoing ? &l->unmasked : &o->buf;
  if (c->outgoing)
    dst->len = 0;
  int grew = 0;
  long w = websock__encode_message(dst, opcode, p, n, frag, &grew);
  if (z)
    websock__pmd_scratch_done(&l->zout);
  websock__conn_count_alloc(c, grew);
  if (c->outgoing) {
    int rc = w < 0 ? -1
                   : conn_append_bytes(c, dst->data, dst->len,
                                       data ? WEBSOCK__APPEND_MESSAGE : 0, 1);
    websock__pmd_scratch_done(dst);
    return rc;
  }
  if (w < 0)
    return -1;
  websock__bp_count_out(&c->base, w);
  if (data)
    conn_count_messages(c, 1);
  websock__loop_want_flush(l, c);
  return 0;
}

void websock__conn_arm_write(websock__conn *c) {
  if (c->write_armed)
    return;
  if (!c->wr_ev) {
    c->wr_ev = event_new(c->loop->base, c->fd, EV_WRITE | EV_PERSIST,
                         websock__conn_on_io, c);
    if (!c->wr_ev)
      return; /* out of memory: output stalls until a deadline ends it */
  }
  event_add(c->wr_ev, NULL);
  c->write_armed = 1;
}

/* Nothing left to write: stop watching writability, unless the TLS layer
 * waits for it on behalf of a read. */
static void conn_disarm_write(websock__conn *c) {
  if (c->write_armed && !c->tls_rd_wants_wr) {
    event_del(c->wr_ev);
    c->write_armed = 0;
  }
}

/* One write to the peer: bytes written (> 0) or a WEBSOCK__IO_* code. */
static long conn_io_write(websock__conn *c, const uint8_t *p, size_t n) {
  if (c->ssl)
    return websock__tls_write(c->ssl, p, n);
  for (;;) {
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w > 0)
      return (long)w;
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return WEBSOCK__IO_WANT_WRITE;
    return WEBSOCK__IO_ERROR; /* peer gone (EPIPE, ECONNRESET) */
  }
}

int websock__conn_send_now(websock__conn *c, const uint8_t *p, size_t n) {
  size_t done = 0;
  if ((!c->out || c->out->off == c->out->buf.len) && (!c->ssl || c->tls_done)) {
    long w = conn_io_write(c, p, n);
    if (w > 0) {
      done = (size_t)w;
      atomic_fetch_add_explicit(&c->loop->bytes_out, (uint64_t)w,
                                memory_order_relaxed);
    }
    /* A failed write is seen again, and handled, by the flush. */
  }
  if (done == n) {
    websock__loop_want_flush(c->loop, c); /* for what comes after */
    return 0;
  }
  return conn_append_bytes(c, p + done, n - done, 0, 0);
}

void websock__conn_tls_close_notify(websock__conn *c) {
  if (c->ssl && c->tls_done && !c->tls_failed && !c->tls_shut) {
    c->tls_shut = 1;
    websock__tls_shutdown(c->ssl);
  }
}

/* Everything queued went out: the close handshake may move on. */
static void conn_drained(websock__conn *c) {
  conn_disarm_write(c);
  websock__bp_after_flush(c);
  if (c->state == WEBSOCK__CONN_CLOSING && c->close_received) {
    /* Both close frames exchanged and ours is on the wire: the server
     * closes the TCP connection first (RFC 6455 section 7.1.1), so that it
     * and not the client holds TIME_WAIT. A client waits for that, up to
     * the close timeout. */
    if (!c->outgoing) {
      websock__conn_end(c);
      return;
    }
    c->state = WEBSOCK__CONN_LINGER;
    c->deadline_ms =
        websock__loop_now(c->loop) + c->loop->net->settings->close_timeout_ms;
  } else if (c->state == WEBSOCK__CONN_LINGER && !c->shut_wr &&
             !(c->outgoing && c->close_received && c->close_sent)) {
    /* close_notify must precede the TCP FIN for the peer to see an orderly
     * TLS end. */
    websock__conn_tls_close_notify(c);
    shutdown(c->fd, SHUT_WR);
    c->shut_wr = 1;
  }
}

void websock__conn_flush(websock__conn *c) {
  if (c->state == WEBSOCK__CONN_DEAD)
    return;
  if (c->ssl && !c->tls_done) {
    /* Nothing is queued before the TLS handshake ends; it drives itself. */
    conn_disarm_write(c);
    return;
  }
  websock__loop *l = c->loop;
  websock__out *o = c->out;
  while (o && o->off < o->buf.len) {
    long w = conn_io_write(c, o->buf.data + o->off, o->buf.len - o->off);
    if (w > 0) {
      o->off += (size_t)w;
      atomic_fetch_add_explicit(&l->bytes_out, (uint64_t)w,
                                memory_order_relaxed);
      websock__bp_count_out(&c->base, -w);
      continue;
    }
    if (w == WEBSOCK__IO_WANT_WRITE) {
      websock__conn_arm_write(c);
      return;
    }
    if (w == WEBSOCK__IO_WANT_READ) {
      /* TLS needs input first (e.g. a key update); the next read event
       * flushes again. Make sure there will be one. */
      c->tls_wr_wants_rd = 1;
      websock__bp_force_resume(c);
      return;
    }
    if (c->ssl)
      c->tls_failed = 1;
    websock__conn_end(c);
    return;
  }
  if (o)
    o->buf.len = o->off = 0;
  conn_drained(c);
}
