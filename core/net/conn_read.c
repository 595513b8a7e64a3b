/* A connection's input: plain and TLS reads into the loop's buffer, the
 * TLS handshake, and frames in (messages and control frames to events).
 * Layer: net. */
#include <errno.h>
#include <sys/socket.h>

#include "net.h"
#include "proto/frame.h"
#include "defer.h"
#include "tls.h"

/* ---- frames in -------------------------------------------------------- */

/* Reports one event of |c| that carries bytes (or none). */
static void conn_emit_data(websock__conn *c, int type, int opcode,
                           const uint8_t *data, size_t len,
                           websock__buf *swap) {
  websock__emit e = {
      .type = type, .opcode = opcode, .data = data, .len = len, .swap = swap};
  websock__conn_emit(c, &e);
}

/* A piece of a compressed message: gathered (a message in one frame is
 * inflated where it landed), then inflated whole and reported. Returns 1
 * when the connection failed. */
static int conn_on_compressed(websock__conn *c, int opcode, const uint8_t *data,
                              size_t len, int first, int last) {
  websock__buf *msg = &c->rx->buf;
  if (!(first && last)) {
    int r = websock__buf_append(msg, data, len);
    if (r < 0) {
      websock__conn_fail(c, WEBSOCK_CLOSE_INTERNAL_ERROR);
      return 1;
    }
    websock__conn_count_alloc(c, r);
    if (!last)
      return 0;
    data = msg->data;
    len = msg->len;
  }
  websock__buf *out = NULL;
  int code = websock__pmd_inflate(c, opcode, data, len, &out);
  msg->len = 0;
  if (code) {
    websock__pmd_scratch_done(&c->loop->zin);
    websock__conn_fail(c, code);
    return 1;
  }
  conn_emit_data(c, WEBSOCK_EVENT_MESSAGE, opcode, out->data, out->len, out);
  websock__pmd_scratch_done(out);
  return 0;
}

static int conn_on_data(void *ud, int opcode, const uint8_t *data, size_t len,
                        int first, int last) {
  websock__conn *c = ud;
  if (c->state != WEBSOCK__CONN_OPEN)
    return 0; /* after our close frame, data is discarded */
  if (c->rx->reader.msg_compressed) {
    if (conn_on_compressed(c, opcode, data, len, first, last))
      return 1; /* failed: nothing more is read but to linger */
  } else if (first && last) {
    conn_emit_data(c, WEBSOCK_EVENT_MESSAGE, opcode, data, len, NULL);
  } else {
    websock__buf *msg = &c->rx->buf;
    int r = websock__buf_append(msg, data, len);
    if (r < 0) {
      websock__conn_fail(c, WEBSOCK_CLOSE_INTERNAL_ERROR);
      return 1;
    }
    websock__conn_count_alloc(c, r);
    if (last) {
      conn_emit_data(c, WEBSOCK_EVENT_MESSAGE, opcode, msg->data, msg->len,
                     msg);
      msg->len = 0;
    }
  }
  if (last)
    atomic_fetch_add_explicit(&c->loop->messages_in, 1, memory_order_relaxed);
  /* Never stop the reader here: even after a callback closed the
   * connection, the peer's close frame must still be parsed (data frames
   * are dropped above while not OPEN). */
  return 0;
}

static int conn_on_control(void *ud, int opcode, const uint8_t *data,
                           size_t len) {
  websock__conn *c = ud;
  const websock__settings *st = c->loop->net->settings;
  if (opcode == WEBSOCK__OP_PING) {
    if (c->state == WEBSOCK__CONN_OPEN) {
      websock__conn_queue_message(c, WEBSOCK__OP_PONG, data, len);
      if (st->control_events)
        conn_emit_data(c, WEBSOCK_EVENT_PING, 0, data, len, NULL);
    }
    return 0;
  }
  if (opcode == WEBSOCK__OP_PONG) {
    c->ping_outstanding = 0;
    if (st->control_events && c->state == WEBSOCK__CONN_OPEN)
      conn_emit_data(c, WEBSOCK_EVENT_PONG, 0, data, len, NULL);
    return 0;
  }
  /* CLOSE: the reader has validated the payload already. */
  websock__conn_on_peer_close(c, data, len);
  return 1;
}

static const websock__reader_callbacks conn_reader_cb = {conn_on_data,
                                                         conn_on_control};

void websock__conn_feed(websock__conn *c, uint8_t *p, size_t len) {
  websock__rx *rx = websock__conn_rx(c);
  if (!rx) {
    websock__conn_fail(c, WEBSOCK_CLOSE_INTERNAL_ERROR);
    return;
  }
  ssize_t r = websock__reader_feed(&rx->reader, p, len, &conn_reader_cb, c);
  if (r < 0 && r != WEBSOCK__PROTO_ERR_CALLBACK)
    websock__conn_fail(c, rx->reader.error_close_code);
}

/* ---- reading ---------------------------------------------------------- */

/* Input read after we failed a connection for a protocol error (1002,
 * 1007, 1009): enough for the frames in flight and a peer that stops
 * sending when it sees our close, little enough that a peer streaming on
 * costs nothing (it is not read at all past this, and the connection ends
 * once our close frame is flushed, or at the close timeout). In KiB, as
 * websock__conn.fail_read_kib counts it. */
#define CONN_FAIL_READ_BUDGET_KIB 64

void websock__conn_limit_reads(websock__conn *c) {
  if (c->fail_drop)
    return;
  c->fail_drop = 1;
  c->fail_read_kib = CONN_FAIL_READ_BUDGET_KIB & 0x7f; /* 7 bits */
}

/* How much one read may take: the loop buffer, or what is left of a
 * failed connection's budget. */
static size_t conn_read_cap(const websock__conn *c) {
  size_t cap = c->loop->rbuf_cap;
  if (c->fail_drop && (size_t)c->fail_read_kib * 1024 < cap)
    cap = (size_t)c->fail_read_kib * 1024;
  return cap;
}

/* The connection ends from the read side (EOF, a reset, a fatal TLS
 * error, a failure flushed): its descriptor may be what a paused listener
 * waits for. */
static void conn_read_gone(websock__conn *c) {
  websock__loop *l = c->loop;
  websock__conn_end(c);
  websock__listen_fd_freed(l);
}

/* A failed connection whose close frame went out (the half-close follows
 * the flush, see conn_drained) ends now; one whose read budget is spent
 * stops reading and waits for that, or for the close timeout. Returns 1
 * when reading must not go on. */
static int conn_fail_read_done(websock__conn *c) {
  if (!c->fail_drop)
    return 0;
  if (c->shut_wr) {
    conn_read_gone(c);
    return 1;
  }
  if (c->fail_read_kib)
    return 0;
  event_del(&c->rd_ev);
  return 1;
}

/* A read of |n| bytes from a failed connection spends its budget. */
static void conn_fail_spend(websock__conn *c, size_t n) {
  if (!c->fail_drop)
    return;
  size_t kib = (n + 1023) / 1024, left = c->fail_read_kib;
  c->fail_read_kib = (unsigned)(kib >= left ? 0 : left - kib) & 0x7f;
}

/* Hands |n| bytes received into the loop buffer to the state machine.
 * Returns 1 when reading must stop: the connection ended, or its peer does
 * not read what we send. */
static int conn_consume(websock__conn *c, size_t n) {
  websock__loop *l = c->loop;
  c->last_rx_ms = websock__loop_now(l);
  c->active = 1;
  c->ping_outstanding = 0;
  atomic_fetch_add_explicit(&l->bytes_in, (uint64_t)n, memory_order_relaxed);
  conn_fail_spend(c, n);
  switch (c->state) {
  case WEBSOCK__CONN_HANDSHAKE:
    websock__conn_upgrade_input(c, l->rbuf, n);
    break;
  case WEBSOCK__CONN_DEFERRED:
    if (websock__upgrade_early_bytes(c, l->rbuf, n) < 0)
      websock__conn_end(c);
    break;
  case WEBSOCK__CONN_OPEN:
  case WEBSOCK__CONN_CLOSING:
    if (!c->close_received)
      websock__conn_feed(c, l->rbuf, n);
    break;
  case WEBSOCK__CONN_UPGRADING:
    websock__dial_response_input(c, l->rbuf, n);
    break;
  default: /* LINGER: discard until EOF (or the budget of a failure) */
    break;
  }
  if (c->state == WEBSOCK__CONN_DEAD)
    return 1;
  if (conn_fail_read_done(c))
    return 1;
  return websock__bp_check_pause(c);
}

static void conn_read_plain(websock__conn *c) {
  websock__loop *l = c->loop;
  /* Bounded number of reads per wake-up keeps other connections served. */
  for (int round = 0; round < 4; round++) {
    if (c->state == WEBSOCK__CONN_DEAD || conn_fail_read_done(c))
      return;
    size_t cap = conn_read_cap(c);
    ssize_t n = recv(c->fd, l->rbuf, cap, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        conn_read_gone(c);
      return;
    }
    if (n == 0) {
      conn_read_gone(c); /* EOF: 1006 unless a close was exchanged */
      return;
    }
    if (conn_consume(c, (size_t)n) || (size_t)n < cap)
      return;
  }
}

/* Runs the TLS handshake (as a server, or as the client of an outgoing
 * connection); returns 1 once application data may flow. */
static int conn_tls_handshake(websock__conn *c) {
  int r = websock__tls_handshake(c->ssl);
  if (r == WEBSOCK__IO_OK) {
    c->tls_done = 1;
    if (c->outgoing)
      websock__dial_tls_done(c); /* our request goes out */
    return c->state != WEBSOCK__CONN_DEAD;
  }
  if (r == WEBSOCK__IO_WANT_WRITE) {
    c->tls_rd_wants_wr = 1;
    websock__conn_arm_write(c);
  } else if (r != WEBSOCK__IO_WANT_READ && c->outgoing) {
    char why[200];
    websock__tls_failure(c->ssl, why, sizeof why);
    c->tls_failed = 1;
    websock__dial_fail(c, "tls", why);
  } else if (r != WEBSOCK__IO_WANT_READ) {
    /* Plain HTTP, garbage, an untrusted certificate on the client side:
     * drop it quietly. */
    atomic_fetch_add(&c->loop->net->rejected_total, 1);
    c->tls_failed = 1;
    conn_read_gone(c);
  }
  return 0;
}

static void conn_read_tls(websock__conn *c) {
  websock__loop *l = c->loop;
  if (!c->tls_done && !conn_tls_handshake(c))
    return;
  if (c->tls_wr_wants_rd) {
    c->tls_wr_wants_rd = 0;
    websock__loop_want_flush(l, c);
  }
  for (int round = 0; round < 4; round++) {
    if (c->state == WEBSOCK__CONN_DEAD || conn_fail_read_done(c))
      return;
    size_t n = 0;
    int r = websock__tls_read(c->ssl, l->rbuf, conn_read_cap(c), &n);
    if (n && conn_consume(c, n))
      return; /* a resume looks at what OpenSSL still holds */
    switch (r) {
    case WEBSOCK__IO_OK:
      continue; /* buffer full: there may be more */
    case WEBSOCK__IO_WANT_READ:
      return;
    case WEBSOCK__IO_WANT_WRITE:
      c->tls_rd_wants_wr = 1;
      websock__conn_arm_write(c);
      return;
    case WEBSOCK__IO_EOF:
      conn_read_gone(c); /* close_notify: 1006 unless a close was
                            exchanged */
      return;
    default:
      c->tls_failed = 1;
      conn_read_gone(c);
      return;
    }
  }
  /* Out of rounds with plaintext possibly buffered in OpenSSL and none on
   * the socket: come back after the other connections had their turn. */
  if (c->state != WEBSOCK__CONN_DEAD)
    event_active(&c->rd_ev, EV_READ, 1);
}

void websock__conn_read(websock__conn *c) {
  if (c->ssl)
    conn_read_tls(c);
  else
    conn_read_plain(c);
}
