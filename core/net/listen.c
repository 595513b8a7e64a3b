/* Listening and accepting: one listening socket on loop 0 that spreads the
 * accepted connections over the loops, or with reuse_port one SO_REUSEPORT
 * socket per loop, each keeping what it accepts; the refusals at the
 * connection limit; and what happens when the process runs out of file
 * descriptors. Layer: net. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
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

static unsigned listen_total(websock__net *n) {
  unsigned total = 0;
  for (unsigned k = 0; k < n->nloops; k++)
    total += atomic_load(&n->loops[k].nconns);
  return total;
}

static void listen_refuse(websock__net *n, int fd) {
  atomic_fetch_add(&n->rejected_total, 1);
  /* A TLS client would read a plain-text 503 as garbage: just close. */
  if (n->tls_ctx) {
    close(fd);
    return;
  }
  char resp[256];
  size_t len =
      websock__http_response(resp, sizeof resp, 503, NULL, NULL, 0, 1, NULL, 0);
  ssize_t w = send(fd, resp, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)w;
  close(fd);
}

/* The loop that takes one more connection, its place taken, or NULL at
 * the connection limit. One listener (loop 0) is the only thread that
 * adds connections: it checks the total, then picks a loop. With
 * reuse_port every loop accepts at once and keeps what it accepted: it
 * takes the place first and then checks the total, so two loops racing
 * for the last place may both refuse, but the limit is never passed. */
static websock__loop *listen_admit(websock__loop *l) {
  websock__net *n = l->net;
  unsigned max = n->settings->max_connections;
  websock__loop *t = l;
  if (!n->settings->reuse_port) {
    if (listen_total(n) >= max)
      return NULL;
    t = listen_pick(n);
    atomic_fetch_add(&t->nconns, 1);
  } else {
    atomic_fetch_add(&t->nconns, 1);
    if (listen_total(n) > max) {
      atomic_fetch_sub(&t->nconns, 1);
      return NULL;
    }
  }
  atomic_fetch_add(&t->accepted, 1);
  return t;
}

/* Gives an accepted socket to loop |t|: made here when |t| is the calling
 * loop |l|, else posted to it. */
static void listen_hand_over(websock__loop *l, websock__loop *t, int fd) {
  if (t == l) {
    if (!websock__conn_new(l, fd)) {
      close(fd);
      atomic_fetch_sub(&t->nconns, 1);
    }
    return;
  }
  websock__job *j = websock__pool_get(&l->net->sched->pool);
  if (!j) {
    close(fd);
    atomic_fetch_sub(&t->nconns, 1);
    return;
  }
  j->kind = WEBSOCK__JOB_ADOPT;
  j->fd = fd;
  websock__loop_post(t, j);
}

/* Out of descriptors (EMFILE/ENFILE), the listener is not watched for a
 * while: it is level-triggered and the client stays queued, so watching it
 * would wake the loop at once, again and again, for an accept that fails.
 * The pause starts short and doubles up to a cap while the shortage lasts;
 * a connection closing ends it early (websock__listen_fd_freed). */
#define LISTEN_RETRY_FIRST_MS 100
#define LISTEN_RETRY_MAX_MS 1600

/* The spare descriptor is held only while the process is near its
 * descriptor limit: from when an accept returns a descriptor within
 * LISTEN_SPARE_MARGIN of the soft RLIMIT_NOFILE (descriptors are numbered
 * lowest first, so the numbers tell how full the table is) until one comes
 * back LISTEN_SPARE_MARGIN lower again. A server far from the limit holds
 * none, so stopping it leaves no descriptor behind (the loop closes its
 * listener; one stopped near the limit keeps the spare until the process
 * exits or websock__listen_release). 0 and below mean none, since the
 * loops start zeroed (a 0 from open() means stdin was closed: not kept). */
#define LISTEN_SPARE_MARGIN 64
static void listen_spare_open(websock__loop *l) {
  if (l->spare_fd > 0)
    return;
  l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (l->spare_fd == 0) {
    close(0);
    l->spare_fd = -1;
  }
}

static void listen_spare_close(websock__loop *l) {
  if (l->spare_fd > 0)
    close(l->spare_fd);
  l->spare_fd = -1;
}

/* Takes or gives back the spare by how full the descriptor table is,
 * judged from |fd|, the descriptor just made. */
static void listen_spare_adjust(websock__loop *l, int fd) {
  if (fd >= l->spare_from_fd)
    listen_spare_open(l);
  else if (fd < l->spare_from_fd - LISTEN_SPARE_MARGIN)
    listen_spare_close(l);
}

void websock__listen_release(websock__loop *l) {
  if (l->listen_fd < 0)
    listen_spare_close(l);
}

static void listen_pause(websock__loop *l) {
  unsigned ms = l->accept_retry_ms ? l->accept_retry_ms : LISTEN_RETRY_FIRST_MS;
  l->accept_retry_ms =
      ms * 2 > LISTEN_RETRY_MAX_MS ? LISTEN_RETRY_MAX_MS : ms * 2;
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  event_del(&l->listen_ev);
  atomic_store(&l->accept_paused, 1);
  event_add(&l->accept_retry_ev, &tv);
}

static void listen_on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  websock__loop *l = arg;
  if (!atomic_exchange(&l->accept_paused, 0))
    return;
  event_del(&l->accept_retry_ev); /* woken early: drop the timer */
  if (l->listen_fd < 0) {         /* the server stopped meanwhile */
    websock__listen_release(l);
    return;
  }
  listen_spare_open(l);
  event_add(&l->listen_ev, NULL);
  /* Clients waited while the listener was paused: look at once. */
  event_active(&l->listen_ev, EV_READ, 1);
}

void websock__listen_fd_freed(websock__loop *l) {
  websock__net *n = l->net;
  websock__loop *t = n->settings->reuse_port ? l : &n->loops[0];
  /* libevent's locks make activating another loop's event safe. */
  if (atomic_load(&t->accept_paused))
    event_active(&t->accept_retry_ev, EV_TIMEOUT, 1);
}

/* accept4() failed with EMFILE or ENFILE: gives up the spare descriptor to
 * accept one waiting client and refuse it (503 on plain ws://) rather than
 * leave it hanging, then takes the spare again (the technique libev and
 * nginx document). Returns 1 when a client was answered, 0 when none
 * could be, and the listener was paused. */
static int listen_out_of_fds(websock__loop *l, int lfd) {
  if (l->spare_fd > 0) {
    listen_spare_close(l);
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
      listen_refuse(l->net, fd);
    listen_spare_open(l);
    if (fd >= 0)
      return 1;
  }
  listen_pause(l);
  return 0;
}

static void listen_on_accept(evutil_socket_t lfd, short what, void *arg) {
  (void)what;
  websock__loop *l = arg;
  websock__net *n = l->net;
  for (int i = 0; i < 64; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if ((errno == EMFILE || errno == ENFILE) && listen_out_of_fds(l, lfd))
        continue;
      break; /* EAGAIN: all taken; or paused for descriptors */
    }
    l->accept_retry_ms = 0; /* descriptors are back */
    listen_spare_adjust(l, fd);
    websock__loop *t = listen_admit(l);
    if (!t) {
      listen_refuse(n, fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    listen_hand_over(l, t, fd);
  }
  websock__loop_after(l);
}

/* Records why listening failed: "cannot listen on HOST:PORT: reason" with
 * the errno of the failing call, and returns |rc|. */
static int listen_failed(websock__net *n, int rc, const char *what, int err) {
  const websock__settings *st = n->settings;
  char reason[96];
  snprintf(reason, sizeof reason, "%s", strerror(err));
  /* "address already in use", as the sentence goes on after the colon */
  if (reason[0] >= 'A' && reason[0] <= 'Z' &&
      !(reason[1] >= 'A' && reason[1] <= 'Z'))
    reason[0] = (char)(reason[0] - 'A' + 'a');
  int v6 = strchr(st->host, ':') != NULL;
  snprintf(n->listen_error, sizeof n->listen_error, "%s %s%s%s:%d: %s", what,
           v6 ? "[" : "", st->host, v6 ? "]" : "", st->port, reason);
  n->listen_errno = err;
  return rc;
}

/* A non-blocking listening socket bound to |addr|, or a negative
 * WEBSOCK_ERR_* with the reason recorded. */
static int listen_open(websock__net *n, const struct sockaddr *addr,
                       socklen_t addrlen, int reuse_port) {
  int fd =
      socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return listen_failed(n, WEBSOCK_ERR_SYSTEM, "cannot listen on", errno);
  int one = 1, zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* Every socket of the group must ask for SO_REUSEPORT before bind(); a
   * kernel without it fails here rather than with a confusing bind error. */
  if (reuse_port &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    return listen_failed(n, WEBSOCK_ERR_SYSTEM,
                         "cannot share (SO_REUSEPORT) the port of", err);
  }
  if (addr->sa_family == AF_INET6) /* "::" serves IPv4 too */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, addr, addrlen) < 0 || listen(fd, 1024) < 0) {
    int err = errno;
    close(fd);
    return listen_failed(n, WEBSOCK_ERR_ADDRESS, "cannot listen on", err);
  }
  return fd;
}

static void listen_close_all(websock__net *n) {
  for (unsigned i = 0; i < n->nloops; i++) {
    if (n->loops[i].listen_fd >= 0) {
      close(n->loops[i].listen_fd);
      n->loops[i].listen_fd = -1;
    }
    websock__listen_release(&n->loops[i]);
  }
}

static uint16_t *listen_port_of(struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET6
             ? &((struct sockaddr_in6 *)(void *)ss)->sin6_port
             : &((struct sockaddr_in *)(void *)ss)->sin_port;
}

int websock__net_listen(websock__net *n) {
  const websock__settings *st = n->settings;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char port[16];
  snprintf(port, sizeof port, "%d", st->port);
  n->listen_error[0] = 0;
  n->listen_errno = 0;
  if (st->client_only)
    return 0; /* no listener; websock_server_port() says 0 */
  int gai = getaddrinfo(st->host, port, &hints, &res);
  if (gai != 0 || !res) {
    /* errno means something only for EAI_SYSTEM */
    int err = gai == EAI_SYSTEM ? errno : 0;
    snprintf(n->listen_error, sizeof n->listen_error,
             "cannot resolve the address to listen on, \"%s\": %s", st->host,
             gai == EAI_SYSTEM ? strerror(err) : gai_strerror(gai));
    n->listen_errno = err;
    return WEBSOCK_ERR_ADDRESS;
  }
  struct sockaddr_storage addr;
  socklen_t addrlen = (socklen_t)res->ai_addrlen;
  memcpy(&addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  /* With port 0 the first socket gets a port from the system; the others
   * join it on that port (what getsockname() reports is that address). */
  unsigned count = st->reuse_port ? n->nloops : 1;
  int rc = 0;
  for (unsigned i = 0; i < count && !rc; i++) {
    int fd = listen_open(n, (struct sockaddr *)&addr, addrlen, st->reuse_port);
    if (fd < 0) {
      rc = fd;
      break;
    }
    n->loops[i].listen_fd = fd;
    socklen_t sl = sizeof addr;
    if (i == 0 && getsockname(fd, (struct sockaddr *)&addr, &sl) < 0)
      rc = listen_failed(n, WEBSOCK_ERR_SYSTEM, "cannot listen on", errno);
  }
  if (rc) {
    listen_close_all(n);
    return rc;
  }
  n->port = ntohs(*listen_port_of(&addr));
  for (unsigned i = 0; i < count; i++) {
    websock__loop *l = &n->loops[i];
    event_assign(&l->listen_ev, l->base, l->listen_fd, EV_READ | EV_PERSIST,
                 listen_on_accept, l);
    event_assign(&l->accept_retry_ev, l->base, -1, 0, listen_on_retry, l);
    struct rlimit rl;
    l->spare_from_fd = INT_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < INT_MAX)
      l->spare_from_fd = (int)rl.rlim_cur - LISTEN_SPARE_MARGIN;
    listen_spare_adjust(l, l->listen_fd);
    event_add(&l->listen_ev, NULL);
  }
  return 0;
}
