/* A connection's life on its loop: handshake, frames in, frames out, the
 * close handshake and timeouts. Only the owning loop thread runs this code.
 * Layer: net. */
#include "net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/close.h"
#include "proto/encode.h"
#include "proto/handshake.h"
#include "util/time.h"
#include "request.h"
#include "tls.h"

static void conn_destroy(websock__client *base) {
  websock__conn *c = (websock__conn *)base;
  SSL_free(c->ssl); /* normally gone already, with the socket */
  websock__buf_free(&c->in);
  websock__buf_free(&c->msg);
  websock__buf_free(&c->out);
  free(c->info);
  free(c->base.tag);
  free(c);
}

static void conn_count_alloc(websock__conn *c, int grew) {
  if (grew > 0)
    websock__count_alloc(&c->loop->net->sched->allocs);
}

websock__conn *websock__conn_new(websock__loop *l, int fd) {
  websock__net *n = l->net;
  websock__conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->base.id = atomic_fetch_add(&n->next_id, 1);
  c->base.loop_index = l->index;
  atomic_init(&c->base.refs, 1); /* the loop's reference */
  c->base.destroy = conn_destroy;
  c->loop = l;
  c->fd = fd;
  c->state = WEBSOCK__CONN_HANDSHAKE;
  uint64_t now = websock__now_ms();
  c->deadline_ms = now + n->settings->handshake_timeout_ms;
  c->last_rx_ms = now;
  event_assign(&c->rd_ev, l->base, fd, EV_READ | EV_PERSIST,
               websock__conn_on_read, c);
  /* Created here, on the owning loop, so the SSL object is only ever used
   * by one thread. */
  if (n->tls_ctx && !(c->ssl = websock__tls_new(n->tls_ctx, fd))) {
    free(c);
    return NULL;
  }
  if (event_add(&c->rd_ev, NULL) < 0) {
    SSL_free(c->ssl);
    free(c);
    return NULL;
  }
  /* The peer address, for the hook and the OPEN event. */
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char addr[80] = "?";
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
    char host[64];
    if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
      evutil_inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
      snprintf(addr, sizeof addr, "[%s]:%u", host, ntohs(s6->sin6_port));
    } else if (ss.ss_family == AF_INET) {
      struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
      evutil_inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
      snprintf(addr, sizeof addr, "%s:%u", host, ntohs(s4->sin_port));
    }
  }
  /* Until the handshake completes only the address is known. */
  size_t alen = strlen(addr);
  c->info = malloc(alen + 1);
  if (c->info) {
    memcpy(c->info, addr, alen + 1);
    c->remote = c->info;
  }
  c->next = l->conns;
  if (l->conns)
    l->conns->prev = c;
  l->conns = c;
  return c;
}

void websock__loop_want_flush(websock__loop *l, websock__conn *c) {
  if (!c->in_flush_list) {
    c->in_flush_list = 1;
    c->flush_next = l->flush_head;
    l->flush_head = c;
  }
}

/* Drops the bytes of |out| the socket already took, so the buffer does not
 * grow with bytes that are gone: all of them once everything was written,
 * the written prefix when it dominates a large buffer. */
static void conn_out_compact(websock__conn *c) {
  if (c->out_off == c->out.len) {
    c->out.len = c->out_off = 0;
  } else if (c->out_off > 65536 && c->out_off * 2 > c->out.len) {
    websock__buf_consume(&c->out, c->out_off);
    c->out_off = 0;
  }
}

/* The one place a data message leaving counts in the stats. */
static void conn_count_message(websock__conn *c) {
  atomic_fetch_add_explicit(&c->loop->messages_out, 1, memory_order_relaxed);
}

int websock__conn_append(websock__conn *c, const uint8_t *p, size_t n,
                         int flags) {
  conn_out_compact(c);
  int r = websock__buf_append(&c->out, p, n);
  if (r < 0) {
    if (flags & WEBSOCK__APPEND_COUNTED)
      websock__bp_count_out(&c->base, -(long)n);
    return -1;
  }
  conn_count_alloc(c, r);
  if (!(flags & WEBSOCK__APPEND_COUNTED))
    websock__bp_count_out(&c->base, (long)n);
  if (flags & WEBSOCK__APPEND_MESSAGE)
    conn_count_message(c);
  websock__loop_want_flush(c->loop, c);
  return 0;
}

int websock__conn_queue_message(websock__conn *c, int opcode, const void *p,
                                size_t n) {
  int grew = 0;
  conn_out_compact(c);
  size_t frag = opcode < 8 ? c->loop->net->settings->fragment_size : 0;
  long w = websock__encode_message(&c->out, opcode, p, n, frag, &grew);
  if (w < 0)
    return -1;
  conn_count_alloc(c, grew);
  websock__bp_count_out(&c->base, w);
  if (opcode < 8)
    conn_count_message(c);
  websock__loop_want_flush(c->loop, c);
  return 0;
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
  atomic_store_explicit(&c->base.closing, 1, memory_order_release);
}

static void conn_queue_close_frame(websock__conn *c, int code,
                                   const char *reason, size_t reason_len) {
  uint8_t payload[125];
  size_t n = websock__close_build(payload, (unsigned)code, reason, reason_len);
  websock__conn_queue_message(c, WEBSOCK__OP_CLOSE, payload, n);
  c->close_sent = 1;
  if (!c->close_code)
    c->close_code = code ? code : WEBSOCK_CLOSE_NO_STATUS;
}

void websock__conn_start_close(websock__conn *c, int code, const char *reason,
                               size_t reason_len) {
  if (c->state != WEBSOCK__CONN_OPEN)
    return;
  conn_mark_closing(c);
  conn_queue_close_frame(c, code, reason, reason_len);
  c->state = WEBSOCK__CONN_CLOSING;
  c->deadline_ms = websock__now_ms() + c->loop->net->settings->close_timeout_ms;
}

/* RFC 6455 section 7.1.7 (see net.h). */
void websock__conn_fail(websock__conn *c, int code) {
  conn_mark_closing(c);
  if (c->state == WEBSOCK__CONN_OPEN && !c->close_sent)
    conn_queue_close_frame(c, code, NULL, 0);
  c->state = WEBSOCK__CONN_LINGER;
  c->deadline_ms = websock__now_ms() + c->loop->net->settings->close_timeout_ms;
  websock__loop_want_flush(c->loop, c);
}

/* Sends our close_notify once, when the session is healthy enough to. */
static void conn_tls_close_notify(websock__conn *c) {
  if (c->ssl && c->tls_done && !c->tls_failed && !c->tls_shut) {
    c->tls_shut = 1;
    websock__tls_shutdown(c->ssl);
  }
}

void websock__conn_end(websock__conn *c) {
  if (c->state == WEBSOCK__CONN_DEAD)
    return;
  websock__loop *l = c->loop;
  websock__net *n = l->net;
  conn_mark_closing(c);
  c->state = WEBSOCK__CONN_DEAD;
  event_del(&c->rd_ev);
  if (c->wr_ev) {
    event_free(c->wr_ev);
    c->wr_ev = NULL;
  }
  if (c->ssl) {
    conn_tls_close_notify(c);
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  close(c->fd);
  c->fd = -1;
  if (c->base.registered)
    websock__registry_remove(&n->sched->registry, &c->base);
  /* Unlink from the loop; the flush list skips DEAD connections and drops
   * its entry at the end of the iteration. */
  conn_unlink(&l->conns, c);
  atomic_fetch_sub(&l->nconns, 1);
  websock__buf_free(&c->in);
  int owed = 0;
  if (c->open_reported) {
    atomic_fetch_sub(&n->open_conns, 1);
    if (!c->close_code)
      c->close_code = WEBSOCK_CLOSE_ABNORMAL;
    /* The reason, when the peer's close frame brought one, stays in msg
     * until the event has it. */
    if (!c->close_received)
      c->msg.len = 0;
    owed = !websock__conn_retry_close(c);
  }
  if (!owed)
    websock__buf_free(&c->msg);
  if (owed) {
    /* Out of memory: the CLOSE event waits on the owed list, with its own
     * reference, until the sweep can deliver it. */
    websock__client_ref(&c->base);
    c->close_owed = 1;
    c->next = l->owed;
    if (l->owed)
      l->owed->prev = c;
    l->owed = c;
  }
  if (!c->in_flush_list)
    websock__client_unref(&c->base);
  /* else the flush pass drops the loop's reference */
  websock__loop_conn_gone(l);
}

int websock__conn_retry_close(websock__conn *c) {
  websock__emit e = {.type = WEBSOCK_EVENT_CLOSE,
                     .close_code = c->close_code,
                     .data = c->msg.len ? c->msg.data : NULL,
                     .len = c->msg.len};
  if (websock__sched_emit(c->loop->net->sched, &c->loop->batch, &c->base, &e) <
      0)
    return 0;
  if (c->close_owed) {
    websock__loop *l = c->loop;
    conn_unlink(&l->owed, c);
    c->close_owed = 0;
    websock__buf_free(&c->msg);
    websock__client_unref(&c->base);
    websock__loop_conn_gone(l);
  }
  return 1;
}

void websock__conn_emit(websock__conn *c, const websock__emit *e) {
  if (websock__sched_emit(c->loop->net->sched, &c->loop->batch, &c->base, e) ==
      0)
    return;
  /* Out of memory: an event that cannot be delivered must not vanish. The
   * connection fails with 1011, and its CLOSE event (which waits for memory
   * if need be) tells user code; an OPEN that never went out owes none. */
  if (e->type == WEBSOCK_EVENT_OPEN) {
    c->open_reported = 0;
    atomic_fetch_sub(&c->loop->net->open_conns, 1);
  }
  if (!c->close_code)
    c->close_code = WEBSOCK_CLOSE_INTERNAL_ERROR;
  websock__conn_fail(c, WEBSOCK_CLOSE_INTERNAL_ERROR);
}

/* ---- writing ---------------------------------------------------------- */

static void conn_arm_write(websock__conn *c) {
  if (c->write_armed)
    return;
  if (!c->wr_ev) {
    c->wr_ev = event_new(c->loop->base, c->fd, EV_WRITE | EV_PERSIST,
                         websock__conn_on_write, c);
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

void websock__conn_flush(websock__conn *c) {
  if (c->state == WEBSOCK__CONN_DEAD)
    return;
  if (c->ssl && !c->tls_done) {
    /* Nothing is queued before the TLS handshake ends; it drives itself. */
    conn_disarm_write(c);
    return;
  }
  websock__loop *l = c->loop;
  while (c->out_off < c->out.len) {
    long w =
        conn_io_write(c, c->out.data + c->out_off, c->out.len - c->out_off);
    if (w > 0) {
      c->out_off += (size_t)w;
      atomic_fetch_add_explicit(&l->bytes_out, (uint64_t)w,
                                memory_order_relaxed);
      websock__bp_count_out(&c->base, -w);
      continue;
    }
    if (w == WEBSOCK__IO_WANT_WRITE) {
      conn_arm_write(c);
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
  c->out.len = c->out_off = 0;
  if (c->release_out) {
    websock__buf_free(&c->out);
    c->release_out = 0;
  }
  conn_disarm_write(c);
  websock__bp_after_flush(c);
  if (c->state == WEBSOCK__CONN_CLOSING && c->close_received) {
    /* Both close frames exchanged and ours is on the wire: the server
     * closes the TCP connection first (RFC 6455 section 7.1.1). */
    websock__conn_end(c);
  } else if (c->state == WEBSOCK__CONN_LINGER && !c->shut_wr) {
    /* close_notify must precede the TCP FIN for the peer to see an orderly
     * TLS end. */
    conn_tls_close_notify(c);
    shutdown(c->fd, SHUT_WR);
    c->shut_wr = 1;
  }
}

static void conn_read(websock__conn *c, evutil_socket_t fd);

void websock__conn_on_write(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  websock__conn *c = arg;
  websock__loop *l = c->loop;
  websock__client_ref(&c->base);
  if (c->tls_rd_wants_wr) {
    /* The TLS handshake or an SSL_read was waiting for this. */
    c->tls_rd_wants_wr = 0;
    conn_read(c, fd);
  }
  websock__conn_flush(c);
  websock__client_unref(&c->base);
  websock__loop_after(l);
}

/* ---- events to user code ---------------------------------------------- */

/* Reports one event of |c| that carries bytes (or none). */
static void conn_emit_simple(websock__conn *c, int type, int opcode,
                             const uint8_t *data, size_t len,
                             websock__buf *swap) {
  websock__emit e = {
      .type = type, .opcode = opcode, .data = data, .len = len, .swap = swap};
  websock__conn_emit(c, &e);
}

static int conn_on_data(void *ud, int opcode, const uint8_t *data, size_t len,
                        int first, int last) {
  websock__conn *c = ud;
  if (c->state != WEBSOCK__CONN_OPEN)
    return 0; /* after our close frame, data is discarded */
  if (first && last) {
    conn_emit_simple(c, WEBSOCK_EVENT_MESSAGE, opcode, data, len, NULL);
  } else {
    int r = websock__buf_append(&c->msg, data, len);
    if (r < 0) {
      websock__conn_fail(c, WEBSOCK_CLOSE_INTERNAL_ERROR);
      return 1;
    }
    conn_count_alloc(c, r);
    if (last) {
      conn_emit_simple(c, WEBSOCK_EVENT_MESSAGE, opcode, c->msg.data,
                       c->msg.len, &c->msg);
      c->msg.len = 0;
    }
  }
  if (last) {
    atomic_fetch_add_explicit(&c->loop->messages_in, 1, memory_order_relaxed);
  }
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
        conn_emit_simple(c, WEBSOCK_EVENT_PING, 0, data, len, NULL);
    }
    return 0;
  }
  if (opcode == WEBSOCK__OP_PONG) {
    c->ping_outstanding = 0;
    if (st->control_events && c->state == WEBSOCK__CONN_OPEN)
      conn_emit_simple(c, WEBSOCK_EVENT_PONG, 0, data, len, NULL);
    return 0;
  }
  /* CLOSE: the reader has validated the payload already. */
  unsigned code = WEBSOCK_CLOSE_NO_STATUS;
  const uint8_t *reason = NULL;
  size_t rlen = 0;
  websock__close_parse(data, len, &code, &reason, &rlen);
  c->close_received = 1;
  /* Keep the reason for the CLOSE event; the message buffer is free now,
   * since no data is delivered after a close frame. */
  c->msg.len = 0;
  if (rlen && websock__buf_append(&c->msg, reason, rlen) < 0)
    c->msg.len = 0;
  conn_mark_closing(c);
  if (!c->close_sent) {
    c->close_code = (int)code;
    /* Echo the peer's status code (RFC 6455 section 5.5.1). */
    conn_queue_close_frame(c, code == WEBSOCK_CLOSE_NO_STATUS ? 0 : (int)code,
                           NULL, 0);
  } else if (c->state == WEBSOCK__CONN_CLOSING) {
    /* We started the close; report what the peer answered. */
    c->close_code = (int)code;
  }
  if (c->state == WEBSOCK__CONN_OPEN || c->state == WEBSOCK__CONN_CLOSING)
    c->state = WEBSOCK__CONN_CLOSING;
  websock__loop_want_flush(c->loop, c);
  return 1;
}

static const websock__reader_callbacks conn_reader_cb = {conn_on_data,
                                                         conn_on_control};

/* ---- handshake -------------------------------------------------------- */

/* Sends a complete HTTP response and lingers until the peer closes. */
static void conn_http_reply(websock__conn *c, int status) {
  char head[1024];
  size_t n =
      websock__http_response(head, sizeof head, status, NULL, NULL, 0, 1);
  if (websock__conn_append(c, (const uint8_t *)head, n, 0) < 0) {
    websock__conn_end(c);
    return;
  }
  websock__conn_fail(c, 0);
}

static int conn_path_allowed(const websock__settings *st, const char *path) {
  if (!st->ws_paths)
    return 1;
  for (char **p = st->ws_paths; *p; p++)
    if (strcmp(*p, path) == 0)
      return 1;
  return 0;
}

static const websock__route *conn_find_route(const websock__settings *st,
                                             const char *path) {
  for (const websock__route *r = st->routes; r; r = r->next)
    if (strcmp(r->path, path) == 0)
      return r;
  return NULL;
}

/* Answers a plain HTTP request: hook, then static routes, then 426. */
static void conn_plain_http(websock__conn *c, websock_request *req) {
  const websock__settings *st = c->loop->net->settings;
  int status = 0;
  if (st->hs_cb) {
    status = st->hs_cb(c->loop->net->sched->server, req, st->hs_ud);
    if (req->responded) {
      websock__conn_fail(c, 0);
      return;
    }
  }
  if (status >= 400 && status <= 599) {
    conn_http_reply(c, status);
    return;
  }
  const websock__route *r = conn_find_route(st, websock_request_path(req));
  const char *method = websock_request_method(req);
  if (r && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) {
    req->is_upgrade = 0;
    websock_request_respond(req, 200, r->content_type, r->body,
                            strcmp(method, "HEAD") == 0 ? 0 : r->body_len);
    websock__conn_fail(c, 0);
    return;
  }
  conn_http_reply(c, r ? 405 : 426);
}

/* Copies path, query, subprotocol and address into one block. */
static int conn_keep_info(websock__conn *c, websock_request *req) {
  const char *parts[4] = {websock_request_path(req), websock_request_query(req),
                          websock_request_subprotocol(req, req->selected),
                          c->remote};
  size_t lens[4], total = 0;
  for (int i = 0; i < 4; i++) {
    lens[i] = parts[i] ? strlen(parts[i]) : 0;
    total += lens[i] + 1;
  }
  char *info = malloc(total);
  if (!info)
    return -1;
  const char **dst[4] = {&c->path, &c->query, &c->subprotocol, &c->remote};
  char *p = info;
  for (int i = 0; i < 4; i++) {
    memcpy(p, parts[i] ? parts[i] : "", lens[i]);
    p[lens[i]] = 0;
    *dst[i] = parts[i] ? p : NULL;
    p += lens[i] + 1;
  }
  free(c->info);
  c->info = info;
  return 0;
}

static void conn_accept_upgrade(websock__conn *c, websock_request *req,
                                const websock__handshake *hs) {
  websock__net *n = c->loop->net;
  const websock__settings *st = n->settings;
  char accept[29];
  websock__handshake_accept_key(hs->key, hs->key_len, accept);
  char resp[512];
  const char *proto = websock_request_subprotocol(req, req->selected);
  size_t len = websock__handshake_response(resp, sizeof resp, accept, proto);
  if (!len || conn_keep_info(c, req) < 0) {
    conn_http_reply(c, 500);
    return;
  }
  if (websock__conn_append(c, (const uint8_t *)resp, len, 0) < 0) {
    websock__conn_end(c);
    return;
  }
  /* Many connections stay idle after the upgrade: do not keep the buffer
   * the response needed (about 270 bytes each) until the idle sweep. */
  c->release_out = 1;
  websock__reader_init(&c->reader, st->max_frame, st->max_message, 1);
  c->state = WEBSOCK__CONN_OPEN;
  atomic_store(&c->base.user_data, req->user_data);
  websock__registry_add(&n->sched->registry, &c->base);
  atomic_fetch_add(&n->open_conns, 1);
  atomic_fetch_add(&n->connections_total, 1);
  c->open_reported = 1;
  websock__emit e = {.type = WEBSOCK_EVENT_OPEN,
                     .path = c->path,
                     .query = c->query,
                     .subprotocol = c->subprotocol,
                     .remote = c->remote};
  websock__conn_emit(c, &e);
}

/* Returns the number of bytes of c->in that belong to the head once the
 * request was handled, 0 while it is incomplete, -1 when it failed. */
static ssize_t conn_handshake(websock__conn *c) {
  websock__net *n = c->loop->net;
  const websock__settings *st = n->settings;
  websock__http_request http;
  ssize_t head = websock__http_parse_request(
      (const char *)c->in.data, c->in.len, st->max_handshake, &http);
  if (head == 0)
    return 0;
  if (head < 0) {
    atomic_fetch_add(&n->rejected_total, 1);
    conn_http_reply(c, websock__http_error_status((int)head));
    return -1;
  }
  websock__handshake hs;
  int hr = websock__handshake_check(&http, &hs);
  if (hr < 0) {
    atomic_fetch_add(&n->rejected_total, 1);
    conn_http_reply(c, websock__http_error_status(hr));
    return -1;
  }
  websock_request req;
  if (websock__request_build(&req, c, &http, &hs, hr == WEBSOCK__HS_OK) < 0) {
    websock__request_free(&req);
    conn_http_reply(c, 500);
    return -1;
  }
  ssize_t rc = head;
  if (hr == WEBSOCK__HS_NOT_UPGRADE) {
    conn_plain_http(c, &req);
    rc = -1;
  } else if (!conn_path_allowed(st, websock_request_path(&req))) {
    atomic_fetch_add(&n->rejected_total, 1);
    conn_http_reply(c, 404);
    rc = -1;
  } else {
    int status = st->hs_cb ? st->hs_cb(n->sched->server, &req, st->hs_ud) : 0;
    if (status != 0) {
      atomic_fetch_add(&n->rejected_total, 1);
      conn_http_reply(c, status >= 400 && status <= 599 ? status : 403);
      rc = -1;
    } else {
      conn_accept_upgrade(c, &req, &hs);
    }
  }
  websock__request_free(&req);
  return rc;
}

/* ---- reading ---------------------------------------------------------- */

static void conn_feed(websock__conn *c, uint8_t *p, size_t len) {
  ssize_t r = websock__reader_feed(&c->reader, p, len, &conn_reader_cb, c);
  if (r < 0 && r != WEBSOCK__PROTO_ERR_CALLBACK)
    websock__conn_fail(c, c->reader.error_close_code);
}

static void conn_read_handshake(websock__conn *c, const uint8_t *p,
                                size_t len) {
  int g = websock__buf_append(&c->in, p, len);
  if (g < 0) {
    websock__conn_end(c);
    return;
  }
  ssize_t head = conn_handshake(c);
  if (head <= 0)
    return;
  /* Frames sent right behind the request head. */
  if ((size_t)head < c->in.len && c->state == WEBSOCK__CONN_OPEN)
    conn_feed(c, c->in.data + head, c->in.len - (size_t)head);
  websock__buf_free(&c->in);
}

/* Hands |n| bytes received into the loop buffer to the state machine.
 * Returns 1 when reading must stop: the connection ended, or its peer does
 * not read what we send. */
static int conn_consume(websock__conn *c, size_t n) {
  websock__loop *l = c->loop;
  c->last_rx_ms = websock__now_ms();
  c->active = 1;
  c->ping_outstanding = 0;
  atomic_fetch_add_explicit(&l->bytes_in, (uint64_t)n, memory_order_relaxed);
  switch (c->state) {
  case WEBSOCK__CONN_HANDSHAKE:
    conn_read_handshake(c, l->rbuf, n);
    break;
  case WEBSOCK__CONN_OPEN:
  case WEBSOCK__CONN_CLOSING:
    if (!c->close_received)
      conn_feed(c, l->rbuf, n);
    break;
  default: /* LINGER: discard until EOF */
    break;
  }
  if (c->state == WEBSOCK__CONN_DEAD)
    return 1;
  return websock__bp_check_pause(c);
}

static void conn_read_plain(websock__conn *c, evutil_socket_t fd) {
  websock__loop *l = c->loop;
  /* Bounded number of reads per wake-up keeps other connections served. */
  for (int round = 0; round < 4; round++) {
    if (c->state == WEBSOCK__CONN_DEAD)
      return;
    ssize_t n = recv(fd, l->rbuf, l->rbuf_cap, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        websock__conn_end(c);
      return;
    }
    if (n == 0) {
      websock__conn_end(c); /* EOF: 1006 unless a close was exchanged */
      return;
    }
    if (conn_consume(c, (size_t)n) || (size_t)n < l->rbuf_cap)
      return;
  }
}

/* Runs the TLS handshake; returns 1 once application data may flow. */
static int conn_tls_accept(websock__conn *c) {
  int r = websock__tls_handshake(c->ssl);
  if (r == WEBSOCK__IO_OK) {
    c->tls_done = 1;
    return 1;
  }
  if (r == WEBSOCK__IO_WANT_WRITE) {
    c->tls_rd_wants_wr = 1;
    conn_arm_write(c);
  } else if (r != WEBSOCK__IO_WANT_READ) {
    /* Plain HTTP, garbage, an untrusted certificate on the client side:
     * drop it quietly. */
    atomic_fetch_add(&c->loop->net->rejected_total, 1);
    c->tls_failed = 1;
    websock__conn_end(c);
  }
  return 0;
}

static void conn_read_tls(websock__conn *c) {
  websock__loop *l = c->loop;
  if (!c->tls_done && !conn_tls_accept(c))
    return;
  if (c->tls_wr_wants_rd) {
    c->tls_wr_wants_rd = 0;
    websock__loop_want_flush(l, c);
  }
  for (int round = 0; round < 4; round++) {
    if (c->state == WEBSOCK__CONN_DEAD)
      return;
    size_t n = 0;
    int r = websock__tls_read(c->ssl, l->rbuf, l->rbuf_cap, &n);
    if (n && conn_consume(c, n))
      return; /* a resume looks at what OpenSSL still holds */
    switch (r) {
    case WEBSOCK__IO_OK:
      continue; /* buffer full: there may be more */
    case WEBSOCK__IO_WANT_READ:
      return;
    case WEBSOCK__IO_WANT_WRITE:
      c->tls_rd_wants_wr = 1;
      conn_arm_write(c);
      return;
    case WEBSOCK__IO_EOF:
      websock__conn_end(c); /* close_notify: 1006 unless a close was
                               exchanged */
      return;
    default:
      c->tls_failed = 1;
      websock__conn_end(c);
      return;
    }
  }
  /* Out of rounds with plaintext possibly buffered in OpenSSL and none on
   * the socket: come back after the other connections had their turn. */
  if (c->state != WEBSOCK__CONN_DEAD)
    event_active(&c->rd_ev, EV_READ, 1);
}

static void conn_read(websock__conn *c, evutil_socket_t fd) {
  if (c->ssl)
    conn_read_tls(c);
  else
    conn_read_plain(c, fd);
}

void websock__conn_on_read(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  websock__conn *c = arg;
  /* Callbacks below may end the connection; keep it alive until we return. */
  websock__loop *l = c->loop;
  websock__client_ref(&c->base);
  conn_read(c, fd);
  websock__client_unref(&c->base);
  websock__loop_after(l);
}

void websock__conn_sweep(websock__conn *c, uint64_t now) {
  const websock__settings *st = c->loop->net->settings;
  switch (c->state) {
  case WEBSOCK__CONN_HANDSHAKE:
  case WEBSOCK__CONN_CLOSING:
  case WEBSOCK__CONN_LINGER:
    if (now >= c->deadline_ms) {
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
    } else if (st->ping_interval_ms && !c->ping_outstanding &&
               now - c->last_rx_ms >= st->ping_interval_ms) {
      websock__conn_queue_message(c, WEBSOCK__OP_PING, NULL, 0);
      c->ping_outstanding = 1;
    }
    break;
  default:
    break;
  }
  /* A paused reader whose resume job could not be had (out of memory). */
  websock__bp_maybe_resume(c);
  /* Idle connections give their buffers back (the 1 KiB/idle-conn goal). */
  if (!c->active) {
    websock__buf_shrink_if_empty(&c->msg);
    conn_out_compact(c);
    websock__buf_shrink_if_empty(&c->out);
  }
  c->active = 0;
}
