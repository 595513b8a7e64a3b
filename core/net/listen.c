/* Listening and accepting: the listening socket on loop 0, the spreading
 * of accepted connections over the loops, and the refusals at the
 * connection limit. Layer: net. */
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "proto/handshake.h"

static websock__loop *listen_pick(websock__net *n) {
  unsigned best = n->rr++ % n->nloops;
  if (n->settings->spread == WEBSOCK_SPREAD_ROUND_ROBIN)
    return &n->loops[best];
  /* Fewest connections; the scan starts at the round-robin position so
   * equal loops take new work in turn. */
  unsigned best_load = atomic_load(&n->loops[best].nconns);
  for (unsigned k = 1; k < n->nloops; k++) {
    unsigned i = (best + k) % n->nloops;
    unsigned load = atomic_load(&n->loops[i].nconns);
    if (load < best_load) {
      best = i;
      best_load = load;
    }
  }
  return &n->loops[best];
}

static void listen_refuse(int fd) {
  char resp[256];
  size_t len = websock__http_response(resp, sizeof resp, 503, NULL, NULL, 0, 1);
  ssize_t w = send(fd, resp, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)w;
  close(fd);
}

static void listen_on_accept(evutil_socket_t lfd, short what, void *arg) {
  (void)what;
  websock__loop *l0 = arg;
  websock__net *n = l0->net;
  for (int i = 0; i < 64; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      break; /* EAGAIN, or EMFILE: try again on the next wake-up */
    unsigned total = 0;
    for (unsigned k = 0; k < n->nloops; k++)
      total += atomic_load(&n->loops[k].nconns);
    if (total >= n->settings->max_connections) {
      atomic_fetch_add(&n->rejected_total, 1);
      /* A TLS client would read a plain-text 503 as garbage: just close. */
      if (n->tls_ctx)
        close(fd);
      else
        listen_refuse(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    websock__loop *t = listen_pick(n);
    atomic_fetch_add(&t->nconns, 1);
    atomic_fetch_add(&t->accepted, 1);
    if (t == l0) {
      if (!websock__conn_new(l0, fd)) {
        close(fd);
        atomic_fetch_sub(&t->nconns, 1);
      }
      continue;
    }
    websock__job *j = websock__pool_get(&n->sched->pool);
    if (!j) {
      close(fd);
      atomic_fetch_sub(&t->nconns, 1);
      continue;
    }
    j->kind = WEBSOCK__JOB_ADOPT;
    j->fd = fd;
    websock__loop_post(t, j);
  }
  websock__loop_after(l0);
}

int websock__net_listen(websock__net *n) {
  const websock__settings *st = n->settings;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char port[16];
  snprintf(port, sizeof port, "%d", st->port);
  if (getaddrinfo(st->host, port, &hints, &res) != 0 || !res)
    return WEBSOCK_ERR_ADDRESS;
  int fd =
      socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return WEBSOCK_ERR_SYSTEM;
  }
  int one = 1, zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (res->ai_family == AF_INET6) /* "::" serves IPv4 too */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  int rc = 0;
  if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0)
    rc = WEBSOCK_ERR_ADDRESS;
  freeaddrinfo(res);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (!rc && getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
    rc = WEBSOCK_ERR_SYSTEM;
  if (rc) {
    close(fd);
    return rc;
  }
  n->port =
      ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
  n->listen_fd = fd;
  websock__loop *l0 = &n->loops[0];
  event_assign(&l0->listen_ev, l0->base, fd, EV_READ | EV_PERSIST,
               listen_on_accept, l0);
  event_add(&l0->listen_ev, NULL);
  return 0;
}
