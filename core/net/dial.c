/* Outgoing connections (client mode) on their loop: from the DIAL job to
 * OPEN through name resolution (resolve.c), a non-blocking connect to each
 * address in turn, TLS as a client, our upgrade request and the server's
 * 101. A connection that fails on the way ends with a CLOSE event (1006)
 * whose reason names the stage. Only the owning loop runs this code, but
 * for the drop of jobs that never ran. Layer: net. */
#include "dial.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls.h"
#include "util/alloc.h"

void websock__dial_free(websock__dial *d) {
  if (!d)
    return;
  if (d->timer_set)
    event_del(&d->timer);
  if (d->addrs)
    freeaddrinfo(d->addrs);
  websock__buf_free(&d->request);
  for (size_t i = 0; i < d->nprotocols; i++)
    websock__free(d->protocols[i]);
  SSL_CTX_free(d->ssl_ctx);
  websock__free(d);
}

void websock__dial_drop(websock__job *j) {
  /* A DIAL's connection (and with it the dial) goes with the job's
   * reference. */
  if (j->kind == WEBSOCK__JOB_RESOLVED && j->ptr)
    freeaddrinfo(j->ptr);
  j->ptr = NULL;
  websock__job_release(j);
}

void websock__dial_net_free(websock__net *n) {
  websock__resolver_join(n);
  SSL_CTX_free(n->client_ctx);
  n->client_ctx = NULL;
  pthread_mutex_destroy(&n->dial_mu);
}

static websock__dial *dial_of(const websock__conn *c) {
  return c->rx ? c->rx->dial : NULL;
}

/* Puts "<stage>: <why>" where the CLOSE event takes its reason from. */
static void dial_set_reason(websock__conn *c, const char *stage,
                            const char *why) {
  websock__rx *rx = c->rx;
  char text[256];
  int n = snprintf(text, sizeof text, "%s: %s", stage, why);
  if (!rx || n < 0)
    return;
  rx->buf.len = 0;
  if (websock__buf_append(&rx->buf, text,
                          (size_t)n < sizeof text ? (size_t)n
                                                  : sizeof text - 1) < 0)
    rx->buf.len = 0;
}

/* The dial is done with, whatever the outcome. */
static void dial_release(websock__conn *c) {
  if (c->rx) {
    websock__dial_free(c->rx->dial);
    c->rx->dial = NULL;
  }
}

void websock__dial_fail(websock__conn *c, const char *stage, const char *why) {
  if (!websock__conn_dialing(c))
    return;
  dial_set_reason(c, stage, why);
  dial_release(c);
  c->close_code = WEBSOCK_CLOSE_ABNORMAL;
  websock__conn_end(c);
}

void websock__dial_ended(websock__conn *c) {
  if (!dial_of(c))
    return; /* a failure already said why */
  if (c->state == WEBSOCK__CONN_UPGRADING && c->ssl && !c->tls_done)
    dial_set_reason(c, "tls", "the server closed the connection");
  else if (c->state == WEBSOCK__CONN_UPGRADING)
    dial_set_reason(c, "handshake",
                    "the server closed the connection before its answer");
  else
    dial_set_reason(c, "stopped", "the server is stopping");
  dial_release(c);
}

void websock__dial_timeout(websock__conn *c) {
  websock__dial *d = dial_of(c);
  char why[320];
  unsigned ms = d ? d->timeout_ms : 0;
  if (c->state == WEBSOCK__CONN_RESOLVING)
    snprintf(why, sizeof why, "no address for %s within %u ms",
             d ? d->url.host : "?", ms);
  else if (c->state == WEBSOCK__CONN_CONNECTING)
    snprintf(why, sizeof why, "no TCP connection within %u ms", ms);
  else if (c->ssl && !c->tls_done)
    snprintf(why, sizeof why, "no TLS handshake within %u ms", ms);
  else
    snprintf(why, sizeof why, "no answer to the upgrade within %u ms", ms);
  websock__dial_fail(c, "timeout", why);
}

/* ---- connecting ------------------------------------------------------- */

/* The socket of the address that failed goes, with its events. */
static void dial_drop_socket(websock__conn *c) {
  if (c->wr_ev) {
    event_free(c->wr_ev);
    c->wr_ev = NULL;
  }
  c->write_armed = 0;
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

static void dial_connected(websock__conn *c);

/* Tries the addresses left, in order, until a connect() is under way or
 * done; fails the connection when none is left. */
static void dial_next(websock__conn *c) {
  websock__dial *d = dial_of(c);
  while (d->next_addr) {
    struct addrinfo *a = d->next_addr;
    d->next_addr = a->ai_next;
    int fd =
        socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      d->last_errno = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    event_assign(&c->rd_ev, c->loop->base, fd, EV_READ | EV_PERSIST,
                 websock__conn_on_io, c);
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      dial_connected(c);
      return;
    }
    if (errno == EINPROGRESS) {
      c->state = WEBSOCK__CONN_CONNECTING;
      websock__conn_arm_write(c);
      if (!c->write_armed) {
        websock__dial_fail(c, "connect", "out of memory");
        return;
      }
      return;
    }
    d->last_errno = errno;
    dial_drop_socket(c);
  }
  char why[400];
  snprintf(why, sizeof why, "%s (%s port %u)",
           d->last_errno ? strerror(d->last_errno) : "no address", d->url.host,
           (unsigned)d->url.port);
  websock__dial_fail(c, "connect", why);
}

void websock__dial_on_connect(websock__conn *c) {
  websock__dial *d = dial_of(c);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err == EINPROGRESS || err == EALREADY)
    return;
  if (err) {
    d->last_errno = err;
    dial_drop_socket(c);
    dial_next(c); /* the next address, or the failure */
    return;
  }
  event_del(c->wr_ev);
  c->write_armed = 0;
  dial_connected(c);
}

/* The upgrade request goes out (after TLS on wss://). */
static void dial_send_request(websock__conn *c) {
  websock__dial *d = dial_of(c);
  if (websock__conn_send_now(c, d->request.data, d->request.len) < 0) {
    websock__dial_fail(c, "handshake", "out of memory");
    return;
  }
  websock__buf_free(&d->request);
}

static int dial_host_is_ip(const websock__url *u) {
  struct in_addr a4;
  return u->ipv6 || inet_pton(AF_INET, u->host, &a4) == 1;
}

static void dial_connected(websock__conn *c) {
  websock__dial *d = dial_of(c);
  c->state = WEBSOCK__CONN_UPGRADING;
  if (event_add(&c->rd_ev, NULL) < 0) {
    websock__dial_fail(c, "connect", "out of memory");
    return;
  }
  /* The addresses are not needed any more. */
  freeaddrinfo(d->addrs);
  d->addrs = d->next_addr = NULL;
  if (!d->url.tls) {
    dial_send_request(c);
    return;
  }
  c->ssl = websock__tls_client_new(d->ssl_ctx, c->fd, d->url.host,
                                   dial_host_is_ip(&d->url), d->verify);
  if (!c->ssl) {
    websock__dial_fail(c, "tls", "out of memory");
    return;
  }
  /* The client speaks first: the read path drives the handshake from
   * here, and sends the request once it is done (websock__dial_tls_done). */
  websock__conn_read(c);
}

void websock__dial_tls_done(websock__conn *c) {
  if (dial_of(c))
    dial_send_request(c);
}

/* Starts on the addresses of |res| (owned by the dial from now on). */
static void dial_start(websock__conn *c, struct addrinfo *res) {
  websock__dial *d = dial_of(c);
  d->addrs = d->next_addr = res;
  c->state = WEBSOCK__CONN_CONNECTING;
  dial_next(c);
}

static void dial_on_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  websock__conn *c = arg;
  websock__loop *l = c->loop;
  websock__dial_timeout(c);
  websock__loop_after(l);
}

websock__conn *websock__dial_prepare(websock__loop *l, websock__dial *d) {
  websock__conn *c = websock__conn_new_outgoing(l, d->id, d->timeout_ms);
  if (!c)
    return NULL;
  c->max_message = d->max_message; /* before the reader is made */
  websock__rx *rx = websock__conn_rx(c);
  if (!rx) {
    websock__client_unref(&c->base);
    return NULL;
  }
  rx->dial = d;
  atomic_store(&c->base.user_data, d->user_data);
  return c;
}

void websock__dial_run(websock__loop *l, websock__job *j) {
  websock__conn *c = (websock__conn *)j->client;
  j->client = NULL; /* its reference becomes the loop's */
  websock__job_release(j);
  websock__conn_link(l, c);
  websock__dial *d = dial_of(c);
  struct timeval tv = {(time_t)(d->timeout_ms / 1000),
                       (suseconds_t)(d->timeout_ms % 1000) * 1000};
  evtimer_assign(&d->timer, l->base, dial_on_timer, c);
  d->timer_set = evtimer_add(&d->timer, &tv) == 0;
  if (l->stopping) {
    websock__dial_fail(c, "stopped", "the server is stopping");
    return;
  }
  /* A numeric address needs no lookup, so no thread: resolved here. */
  char port[8];
  snprintf(port, sizeof port, "%u", (unsigned)d->url.port);
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  int gai = getaddrinfo(d->url.host, port, &hints, &res);
  if (gai == 0) {
    dial_start(c, res);
  } else if (gai != EAI_NONAME) {
    websock__dial_fail(c, "resolve", gai_strerror(gai));
  } else if (websock__resolver_ask(c, d->url.host, d->url.port) < 0) {
    websock__dial_fail(c, "resolve", "cannot start the resolver thread");
  }
}

void websock__dial_resolved(websock__loop *l, websock__job *j) {
  (void)l;
  websock__conn *c = (websock__conn *)j->client;
  struct addrinfo *res = j->ptr;
  j->ptr = NULL;
  if (c->state == WEBSOCK__CONN_RESOLVING && dial_of(c)) {
    if (res) {
      dial_start(c, res);
      res = NULL;
    } else {
      char why[320];
      snprintf(why, sizeof why, "%s: %s", dial_of(c)->url.host,
               gai_strerror(j->arg));
      websock__dial_fail(c, "resolve", why);
    }
  }
  if (res)
    freeaddrinfo(res);     /* the connection ended meanwhile */
  websock__job_release(j); /* drops the job's reference on |c| */
}

/* ---- the server's answer ---------------------------------------------- */

/* The 101 checked out: the connection opens as an accepted one does. */
static void dial_open(websock__conn *c, const char *proto, size_t plen,
                      const char *ext, size_t elen, uint8_t *rest,
                      size_t rest_len) {
  websock__net *n = c->loop->net;
  websock__dial *d = dial_of(c);
  char sub[256];
  if (plen >= sizeof sub)
    plen = sizeof sub - 1;
  if (plen)
    memcpy(sub, proto, plen);
  sub[plen] = 0;
  char exts[256]; /* the extension agreed (only deflate is offered) */
  if (!c->pmd_on || elen >= sizeof exts)
    elen = 0;
  if (elen)
    memcpy(exts, ext, elen);
  exts[elen] = 0;
  /* The event's path and query, from the URL's target. */
  char target[WEBSOCK__URL_TARGET_MAX + 1];
  memcpy(target, d->url.target, sizeof target);
  char *q = strchr(target, '?');
  if (q)
    *q++ = 0;
  char remote[64];
  websock__conn_remote_addr(c, remote, sizeof remote);
  c->rx->buf.len = 0;
  dial_release(c);
  c->state = WEBSOCK__CONN_OPEN;
  websock__registry_add(&n->sched->registry, &c->base);
  atomic_fetch_add(&n->open_conns, 1);
  atomic_fetch_add(&n->connections_total, 1);
  c->open_reported = 1;
  websock__emit e = {.type = WEBSOCK_EVENT_OPEN,
                     .path = target,
                     .query = q,
                     .subprotocol = plen ? sub : NULL,
                     .remote = remote,
                     .extensions = elen ? exts : NULL};
  websock__conn_emit(c, &e);
  /* Frames the server sent right behind its 101. */
  if (rest_len && c->state == WEBSOCK__CONN_OPEN)
    websock__conn_feed(c, rest, rest_len);
}

void websock__dial_response_input(websock__conn *c, uint8_t *p, size_t len) {
  websock__dial *d = dial_of(c);
  websock__rx *rx = c->rx;
  const websock__settings *st = c->loop->net->settings;
  /* Most answers come whole in one read and are parsed where they landed;
   * one in pieces is gathered first. */
  const char *data = (const char *)p;
  size_t dlen = len;
  if (rx->buf.len) {
    int r = websock__buf_append(&rx->buf, p, len);
    if (r < 0) {
      websock__dial_fail(c, "handshake", "out of memory");
      return;
    }
    websock__conn_count_alloc(c, r);
    data = (const char *)rx->buf.data;
    dlen = rx->buf.len;
  }
  websock__http_response_head res;
  ssize_t head =
      websock__http_parse_response(data, dlen, st->max_handshake, &res);
  if (head == 0) {
    if (data == (const char *)p && websock__buf_append(&rx->buf, p, len) < 0)
      websock__dial_fail(c, "handshake", "out of memory");
    return;
  }
  if (head < 0) {
    websock__dial_fail(c, "handshake",
                       head == WEBSOCK__HTTP_ERR_TOO_LARGE
                           ? "the answer's head is over the size limit"
                           : "the answer is not HTTP/1.1");
    return;
  }
  const char *proto = NULL, *ext = NULL;
  size_t plen = 0, elen = 0;
  int r = websock__client_check_response(
      &res, d->key, (const char *const *)d->protocols, d->nprotocols,
      d->deflate, &proto, &plen, &ext, &elen);
  if (r == WEBSOCK__CHS_STATUS) {
    char why[160];
    snprintf(why, sizeof why, "HTTP %d %.*s", res.status,
             (int)(res.reason_len > 100 ? 100 : res.reason_len), res.reason);
    websock__dial_fail(c, "handshake", why);
    return;
  }
  if (r != WEBSOCK__CHS_OK) {
    websock__dial_fail(c, "handshake", websock__client_hs_strerror(r));
    return;
  }
  /* RFC 7692 section 5: an answer that does not fit our offer fails the
   * connection. */
  if (elen && websock__pmd_client_accept(c, ext, elen) < 0) {
    websock__dial_fail(c, "handshake",
                       "a permessage-deflate answer that does not fit the "
                       "offer");
    return;
  }
  /* What followed the head came in this read: it is at the end of |p|. */
  size_t rest = dlen - (size_t)head;
  dial_open(c, proto, plen, ext, elen, p + len - rest, rest);
}
