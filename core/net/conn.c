/* A connection's life on its loop: creation, the close handshake, the end,
 * events to user code and timeouts. Reading, writing and the HTTP upgrade
 * live in conn_read.c, conn_write.c and upgrade.c. Only the owning loop
 * thread runs this code. Layer: net. */
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/close.h"
#include "proto/frame.h"
#include "defer.h"
#include "tls.h"
#include "util/alloc.h"

static void conn_rx_free(websock__conn *c) {
  websock__upgrade_abandon(c); /* a handle still waited for goes stale */
  if (c->rx) {
    websock__dial_free(c->rx->dial);
    websock__buf_free(&c->rx->buf);
    websock__free(c->rx);
    c->rx = NULL;
  }
}

static void conn_destroy(websock__client *base) {
  websock__conn *c = (websock__conn *)base;
  SSL_free(c->ssl); /* normally gone already, with the socket */
  conn_rx_free(c);
  websock__conn_out_release(c, 1);
  websock__free(c->base.tag);
  websock__free(c);
}

void websock__conn_count_alloc(websock__conn *c, int grew) {
  if (grew > 0)
    websock__count_alloc(&c->loop->net->sched->allocs);
}

websock__rx *websock__conn_rx(websock__conn *c) {
  if (c->rx)
    return c->rx;
  websock__rx *rx = websock__calloc(1, sizeof *rx);
  if (!rx)
    return NULL;
  websock__conn_count_alloc(c, 1);
  /* A server's peers mask every frame; a client's never do. */
  websock__reader_init(
      &rx->reader, websock__conn_max_frame(c), websock__conn_max_message(c),
      c->outgoing ? WEBSOCK__MASK_FORBIDDEN : WEBSOCK__MASK_REQUIRED);
  websock__pmd_reader(c, &rx->reader);
  c->rx = rx;
  return rx;
}

/* A connection of loop |l| with id |id| on socket |fd| (-1: none yet),
 * linked into nothing yet. */
static websock__conn *conn_make(websock__loop *l, int fd, uint64_t id,
                                int state, unsigned timeout_ms) {
  websock__conn *c = websock__calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->base.id = id;
  atomic_init(&c->base.refs, 1); /* the loop's reference */
  c->base.destroy = conn_destroy;
  c->loop = l;
  c->fd = fd;
  c->state = (uint8_t)state;
  uint32_t now = websock__loop_now(l);
  c->deadline_ms = now + timeout_ms;
  c->last_rx_ms = now;
  event_assign(&c->rd_ev, l->base, fd, EV_READ | EV_PERSIST,
               websock__conn_on_io, c);
  return c;
}

static void conn_link(websock__loop *l, websock__conn *c) {
  c->next = l->conns;
  if (l->conns)
    l->conns->prev = c;
  l->conns = c;
}

websock__conn *websock__conn_new_outgoing(websock__loop *l, uint64_t id,
                                          unsigned timeout_ms) {
  websock__conn *c = conn_make(l, -1, id, WEBSOCK__CONN_RESOLVING, timeout_ms);
  if (!c)
    return NULL;
  c->outgoing = 1;
  return c;
}

void websock__conn_link(websock__loop *l, websock__conn *c) {
  conn_link(l, c);
}

websock__conn *websock__conn_new(websock__loop *l, int fd) {
  websock__net *n = l->net;
  websock__conn *c =
      conn_make(l, fd, atomic_fetch_add(&n->next_id, 1),
                WEBSOCK__CONN_HANDSHAKE, n->settings->handshake_timeout_ms);
  if (!c)
    return NULL;
  /* Created here, on the owning loop, so the SSL object is only ever used
   * by one thread. */
  if (n->tls_ctx && !(c->ssl = websock__tls_new(n->tls_ctx, fd))) {
    websock__free(c);
    return NULL;
  }
  if (event_add(&c->rd_ev, NULL) < 0) {
    SSL_free(c->ssl);
    websock__free(c);
    return NULL;
  }
  conn_link(l, c);
  return c;
}

void websock__conn_on_io(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  websock__conn *c = arg;
  websock__loop *l = c->loop;
  /* What runs below may end the connection; keep it until we return. */
  websock__client_ref(&c->base);
  if (c->state == WEBSOCK__CONN_CONNECTING) {
    websock__dial_on_connect(c); /* EV_WRITE: the connect() finished */
  } else if (what & EV_READ) {
    websock__conn_read(c);
  } else {
    if (c->tls_rd_wants_wr) {
      /* The TLS handshake or an SSL_read was waiting for this. */
      c->tls_rd_wants_wr = 0;
      websock__conn_read(c);
    }
    websock__conn_flush(c);
  }
  websock__client_unref(&c->base);
  websock__loop_after(l);
}

void websock__conn_remote_addr(const websock__conn *c, char *buf, size_t cap) {
  /* Asked for when needed (the hook, the OPEN event) rather than kept:
   * every idle connection would carry it otherwise. */
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[64];
  snprintf(buf, cap, "?");
  if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0)
    return;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    evutil_inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
    snprintf(buf, cap, "[%s]:%u", host, ntohs(s6->sin6_port));
  } else if (ss.ss_family == AF_INET) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    evutil_inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
    snprintf(buf, cap, "%s:%u", host, ntohs(s4->sin_port));
  }
}

/* Removes |c| from the doubly linked list at |*head|. */
static void conn_unlink(websock__conn **head, websock__conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    *head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

/* Marks the connection as closing for other threads (sends now fail). */
static void conn_mark_closing(websock__conn *c) {
  websock__client_set(&c->base, WEBSOCK__CLIENT_CLOSING);
}

static void conn_queue_close_frame(websock__conn *c, int code,
                                   const char *reason, size_t reason_len) {
  uint8_t payload[125];
  size_t n = websock__close_build(payload, (unsigned)code, reason, reason_len);
  websock__conn_queue_message(c, WEBSOCK__OP_CLOSE, payload, n);
  c->close_sent = 1;
  /* When we start the close, our reason is the CLOSE event's unless the
   * peer answers with one of its own ("keepalive ping timeout" for a peer
   * that is gone). No data is delivered after our close frame, so the
   * message buffer is free. (Answering the peer's close, its reason stays
   * there.) */
  websock__rx *rx =
      !c->close_received && (reason_len || c->rx) ? websock__conn_rx(c) : NULL;
  if (rx) {
    rx->buf.len = 0;
    if (websock__buf_append(&rx->buf, reason, reason_len) < 0)
      rx->buf.len = 0;
  }
  if (!c->close_code)
    c->close_code = (uint16_t)(code ? code : WEBSOCK_CLOSE_NO_STATUS);
}

static void conn_set_deadline(websock__conn *c, unsigned ms) {
  c->deadline_ms = websock__loop_now(c->loop) + ms;
}

void websock__conn_start_close(websock__conn *c, int code, const char *reason,
                               size_t reason_len) {
  if (c->state != WEBSOCK__CONN_OPEN)
    return;
  conn_mark_closing(c);
  conn_queue_close_frame(c, code, reason, reason_len);
  c->state = WEBSOCK__CONN_CLOSING;
  conn_set_deadline(c, c->loop->net->settings->close_timeout_ms);
}

void websock__conn_on_peer_close(websock__conn *c, const uint8_t *payload,
                                 size_t len) {
  unsigned code = WEBSOCK_CLOSE_NO_STATUS;
  const uint8_t *reason = NULL;
  size_t rlen = 0;
  websock__close_parse(payload, len, &code, &reason, &rlen);
  c->close_received = 1;
  /* Keep the reason for the CLOSE event: the message buffer is free now,
   * since no data is delivered after a close frame. */
  websock__buf *keep = &c->rx->buf;
  if (rlen || !c->close_sent) /* else the reason of our own close stays */
    keep->len = 0;
  if (rlen && websock__buf_append(keep, reason, rlen) < 0)
    keep->len = 0;
  conn_mark_closing(c);
  if (!c->close_sent) {
    c->close_code = (uint16_t)code;
    /* Echo the peer's status code (RFC 6455 section 5.5.1). */
    conn_queue_close_frame(c, code == WEBSOCK_CLOSE_NO_STATUS ? 0 : (int)code,
                           NULL, 0);
  } else if (c->state == WEBSOCK__CONN_CLOSING) {
    /* We started the close; report what the peer answered. */
    c->close_code = (uint16_t)code;
  }
  if (c->state == WEBSOCK__CONN_OPEN) {
    /* From now on the close timeout bounds the rest of the handshake (the
     * deadline still held the upgrade's, long past). */
    c->state = WEBSOCK__CONN_CLOSING;
    conn_set_deadline(c, c->loop->net->settings->close_timeout_ms);
  }
  websock__loop_want_flush(c->loop, c);
}

/* The reason a 1009 gives: which limit, and how large it is, so the peer's
 * developer sees what to change. */
static size_t conn_too_big_reason(const websock__conn *c, char *out,
                                  size_t cap) {
  uint64_t max_message = websock__conn_max_message(c);
  uint64_t max_frame = websock__conn_max_frame(c);
  int frame = max_frame && max_frame < max_message && c->rx &&
              c->rx->reader.hdr.payload_len > max_frame;
  int n = snprintf(out, cap, "%s too big (limit %llu bytes)",
                   frame ? "frame" : "message",
                   (unsigned long long)(frame ? max_frame : max_message));
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* RFC 6455 section 7.1.7 (see net.h). */
void websock__conn_fail(websock__conn *c, int code) {
  /* A peer that broke the protocol gets its close frame and little more:
   * reading and discarding all it sends until the close timeout would let
   * it keep the loop busy (other failures, 1011 on out of memory, linger
   * as before). */
  if (code == WEBSOCK_CLOSE_PROTOCOL_ERROR ||
      code == WEBSOCK_CLOSE_INVALID_DATA || code == WEBSOCK_CLOSE_TOO_BIG)
    websock__conn_limit_reads(c);
  conn_mark_closing(c);
  if (c->state == WEBSOCK__CONN_OPEN && !c->close_sent) {
    char why[64];
    size_t wn = code == WEBSOCK_CLOSE_TOO_BIG
                    ? conn_too_big_reason(c, why, sizeof why)
                    : 0;
    conn_queue_close_frame(c, code, why, wn);
  }
  c->state = WEBSOCK__CONN_LINGER;
  conn_set_deadline(c, c->loop->net->settings->close_timeout_ms);
  websock__loop_want_flush(c->loop, c);
}

/* Closes the socket and everything libevent and OpenSSL hold for it. */
static void conn_close_socket(websock__conn *c) {
  event_del(&c->rd_ev);
  if (c->wr_ev) {
    event_free(c->wr_ev);
    c->wr_ev = NULL;
  }
  if (c->ssl) {
    websock__conn_tls_close_notify(c);
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

void websock__conn_end(websock__conn *c) {
  if (c->state == WEBSOCK__CONN_DEAD)
    return;
  websock__loop *l = c->loop;
  websock__net *n = l->net;
  /* Whoever dialed a connection learns its end even when it never opened:
   * the reason names the stage it ended in (dial.c). */
  if (c->outgoing && !c->open_reported)
    websock__dial_ended(c);
  conn_mark_closing(c);
  c->state = WEBSOCK__CONN_DEAD;
  conn_close_socket(c);
  websock__pmd_conn_end(c);
  websock__topic_conn_end(c); /* before CLOSE: publishes no longer reach it */
  if (websock__client_has(&c->base, WEBSOCK__CLIENT_REGISTERED))
    websock__registry_remove(&n->sched->registry, &c->base);
  /* Unlink from the loop; the flush list skips DEAD connections and drops
   * its entry at the end of the iteration. */
  conn_unlink(&l->conns, c);
  atomic_fetch_sub(&l->nconns, 1);
  int owed = 0;
  if (c->open_reported || c->outgoing) {
    if (c->open_reported)
      atomic_fetch_sub(&n->open_conns, 1);
    if (!c->close_code)
      c->close_code = WEBSOCK_CLOSE_ABNORMAL;
    /* The reason, of the peer's close frame or of ours, stays in the read
     * buffer until the event has it. */
    if (c->open_reported && !c->close_received && !c->close_sent && c->rx)
      c->rx->buf.len = 0;
    owed = !websock__conn_retry_close(c);
  }
  if (owed) {
    /* Out of memory: the CLOSE event waits on the owed list, with its own
     * reference, until the sweep can deliver it. */
    websock__client_ref(&c->base);
    c->close_owed = 1;
    c->next = l->owed;
    if (l->owed)
      l->owed->prev = c;
    l->owed = c;
  } else {
    conn_rx_free(c);
  }
  if (!c->in_flush_list)
    websock__client_unref(&c->base);
  /* else the flush pass drops the loop's reference */
  websock__loop_conn_gone(l);
}

int websock__conn_retry_close(websock__conn *c) {
  websock__buf *reason = c->rx ? &c->rx->buf : NULL;
  websock__emit e = {.type = WEBSOCK_EVENT_CLOSE,
                     .close_code = c->close_code,
                     .data = reason && reason->len ? reason->data : NULL,
                     .len = reason ? reason->len : 0};
  if (websock__sched_emit(c->loop->net->sched, &c->loop->batch, &c->base, &e) <
      0)
    return 0;
  if (c->close_owed) {
    websock__loop *l = c->loop;
    conn_unlink(&l->owed, c);
    c->close_owed = 0;
    conn_rx_free(c);
    websock__client_unref(&c->base);
    websock__loop_conn_gone(l);
  }
  return 1;
}

/* Out of memory: an event that cannot be delivered must not vanish. The
 * connection fails with 1011, and its CLOSE event (which waits for memory
 * if need be) tells user code; an OPEN that never went out owes none.
 * Apart, so the hot websock__conn_emit stays small enough to inline. */
static void __attribute__((noinline, cold))
conn_emit_failed(websock__conn *c, const websock__emit *e) {
  if (e->type == WEBSOCK_EVENT_OPEN) {
    c->open_reported = 0;
    atomic_fetch_sub(&c->loop->net->open_conns, 1);
  }
  if (!c->close_code)
    c->close_code = WEBSOCK_CLOSE_INTERNAL_ERROR;
  websock__conn_fail(c, WEBSOCK_CLOSE_INTERNAL_ERROR);
}

void websock__conn_emit(websock__conn *c, const websock__emit *e) {
  if (websock__sched_emit(c->loop->net->sched, &c->loop->batch, &c->base, e))
    conn_emit_failed(c, e);
}

/* An open connection that was quiet for a sweep period gives back what
 * only traffic needs: the read side (when no frame is in progress), the
 * output buffer and the write event. They come back on the next use. */
static void conn_shrink_idle(websock__conn *c) {
  if (c->rx && c->state == WEBSOCK__CONN_OPEN && !c->rx->buf.len &&
      websock__reader_at_rest(&c->rx->reader))
    conn_rx_free(c);
  websock__conn_out_compact(c);
  websock__conn_out_release(c, 0);
  if (c->wr_ev && !c->write_armed) {
    event_free(c->wr_ev);
    c->wr_ev = NULL;
  }
}

void websock__conn_sweep(websock__conn *c, uint32_t now) {
  const websock__settings *st = c->loop->net->settings;
  switch (c->state) {
  case WEBSOCK__CONN_DEFERRED:
    if (websock__time_reached(now, c->deadline_ms)) {
      websock__upgrade_expired(c); /* 503 */
      return;
    }
    break;
  case WEBSOCK__CONN_RESOLVING:
  case WEBSOCK__CONN_CONNECTING:
  case WEBSOCK__CONN_UPGRADING:
    if (websock__time_reached(now, c->deadline_ms)) {
      websock__dial_timeout(c);
      return;
    }
    break;
  case WEBSOCK__CONN_HANDSHAKE:
  case WEBSOCK__CONN_CLOSING:
  case WEBSOCK__CONN_LINGER:
    if (websock__time_reached(now, c->deadline_ms)) {
      /* A CLOSING connection reports the code we sent (set when our close
       * frame was queued); the peer never answered. */
      websock__conn_end(c);
      return;
    }
    break;
  case WEBSOCK__CONN_OPEN:
    if (st->idle_timeout_ms && now - c->last_rx_ms >= st->idle_timeout_ms) {
      static const char why[] = "idle timeout";
      websock__conn_start_close(c, WEBSOCK_CLOSE_GOING_AWAY, why,
                                sizeof why - 1);
    } else if (c->ping_outstanding && st->ping_timeout_ms &&
               now - c->last_rx_ms >=
                   st->ping_interval_ms + st->ping_timeout_ms) {
      /* Nothing at all came back, not even a pong: the peer or the path
       * to it is gone. */
      static const char why[] = "keepalive ping timeout";
      websock__conn_start_close(c, WEBSOCK_CLOSE_INTERNAL_ERROR, why,
                                sizeof why - 1);
    } else if (st->ping_interval_ms && !c->ping_outstanding &&
               now - c->last_rx_ms >= st->ping_interval_ms) {
      websock__conn_queue_message(c, WEBSOCK__OP_PING, NULL, 0);
      c->ping_outstanding = 1;
    }
    break;
  default:
    break;
  }
  if (websock__bp_check_slow(c, now))
    return; /* ended: a slow consumer */
  /* A paused reader whose resume job could not be had (out of memory). */
  websock__bp_maybe_resume(c);
  if (!c->active)
    conn_shrink_idle(c);
  c->active = 0;
}
