/* I/O loops: one thread and one libevent event_base each, a mailbox for
 * work from other threads, the listener on loop 0, periodic timeouts, and
 * the graceful stop. Layer: net. */
#include "net.h"

#include <errno.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/handshake.h"
#include "util/time.h"

#define LOOP_RBUF_SIZE (256 * 1024)

static pthread_once_t loop_evthread_once = PTHREAD_ONCE_INIT;
static void loop_use_pthreads(void) {
  evthread_use_pthreads();
}

/* ---- events to user code ---------------------------------------------- */

/* OPEN events carry what the handshake established; the strings live in the
 * connection, which the event keeps alive. */
static void loop_fill_open(websock_event *ev, const websock__conn *c) {
  ev->path = c->path;
  ev->query = c->query;
  ev->subprotocol = c->subprotocol;
  ev->remote_addr = c->remote;
}

void websock__loop_emit(websock__loop *l, websock__conn *c, int type,
                        int opcode, const uint8_t *data, size_t len, int code,
                        websock__buf *swap) {
  websock__sched *s = l->net->sched;
  const websock__settings *st = l->net->settings;
  int queued = st->delivery == WEBSOCK_DELIVERY_QUEUED;
  if (!queued && !st->event_cb)
    return;
  if (!queued && s->nagents == 0) {
    /* Inline mode: user code runs right here, reading our buffers. */
    websock_event ev = {0};
    ev.type = type;
    ev.id = c->base.id;
    ev.opcode = opcode;
    ev.data = data;
    ev.length = len;
    ev.close_code = code;
    ev.server = s->server;
    ev.user_data = atomic_load(&c->base.user_data);
    char tag[WEBSOCK__TAG_MAX + 1];
    if (atomic_load(&c->base.has_tag) &&
        websock__registry_copy_tag(&s->registry, &c->base, tag, sizeof tag) > 0)
      ev.tag = tag;
    if (type == WEBSOCK_EVENT_OPEN)
      loop_fill_open(&ev, c);
    websock__deliver(s, &c->base, &ev);
    atomic_fetch_add_explicit(&l->events, 1, memory_order_relaxed);
    return;
  }
  websock__job *j = websock__pool_get(&s->pool);
  if (!j)
    return; /* out of memory: the event is lost, the server goes on */
  j->kind = WEBSOCK__JOB_EVENT;
  websock__client_ref(&c->base);
  j->client = &c->base;
  memset(&j->ev, 0, sizeof j->ev);
  j->ev.type = type;
  j->ev.opcode = opcode;
  j->ev.close_code = code;
  if (swap) {
    /* Hand the reassembled message over without copying it. */
    websock__buf_swap(&j->buf, swap);
    swap->len = 0;
  } else if (len) {
    int r = websock__buf_append(&j->buf, data, len);
    if (r > 0)
      websock__count_alloc(&s->allocs);
  }
  j->ev.data = j->buf.data;
  j->ev.length = j->buf.len;
  if (type == WEBSOCK_EVENT_MESSAGE)
    atomic_fetch_add_explicit(&c->base.inflight_in, j->buf.len,
                              memory_order_relaxed);
  if (type == WEBSOCK_EVENT_OPEN)
    loop_fill_open(&j->ev, c);
  if (queued) {
    websock__equeue_push(s, j);
    return;
  }
  unsigned a = (unsigned)(c->base.id % s->nagents);
  if (l->batch_tail[a])
    l->batch_tail[a]->next = j;
  else
    l->batch_head[a] = j;
  l->batch_tail[a] = j;
}

void websock__loop_after(websock__loop *l) {
  /* Write everything queued during this callback: one send() per
   * connection however many messages it got. */
  while (l->flush_head) {
    websock__conn *c = l->flush_head;
    l->flush_head = c->flush_next;
    c->flush_next = NULL;
    c->in_flush_list = 0;
    if (c->state == WEBSOCK__CONN_DEAD)
      websock__client_unref(&c->base); /* the reference conn_end left us */
    else
      websock__conn_flush(c);
  }
}

/* End of a loop iteration, after the callbacks of every ready socket: hand
 * the events gathered to the agents, one push per agent. Waking an agent
 * once per iteration rather than once per socket lets it run a whole batch
 * where a shared core would otherwise switch threads for every message. */
static void loop_push_batches(websock__loop *l) {
  websock__sched *s = l->net->sched;
  for (unsigned a = 0; a < s->nagents; a++) {
    if (l->batch_head[a]) {
      websock__agent_push(s, a, l->batch_head[a], l->batch_tail[a]);
      l->batch_head[a] = l->batch_tail[a] = NULL;
    }
  }
}

/* ---- mailbox ---------------------------------------------------------- */

void websock__loop_post(websock__loop *l, websock__job *j) {
  j->next = NULL;
  pthread_mutex_lock(&l->mb_mu);
  int was_empty = l->mb_head == NULL;
  if (l->mb_tail)
    l->mb_tail->next = j;
  else
    l->mb_head = j;
  l->mb_tail = j;
  pthread_mutex_unlock(&l->mb_mu);
  /* One wake-up per batch: only the post that found the box empty writes. */
  if (was_empty) {
    uint64_t one = 1;
    ssize_t w = write(l->wake_fd, &one, sizeof one);
    (void)w;
  }
}

static void loop_post_void(void *loop, websock__job *j) {
  websock__loop_post(loop, j);
}

static void loop_close_all(websock__loop *l);

/* Ends the loop thread after the current iteration. Thread: any. */
static void loop_quit(websock__loop *l) {
  atomic_store(&l->quit, 1);
  event_base_loopbreak(l->base);
}

static void *loop_of_client(websock__sched *s, websock__client *c) {
  (void)s;
  return ((websock__conn *)c)->loop;
}

static void loop_run_job(websock__loop *l, websock__job *j) {
  websock__conn *c = (websock__conn *)j->client;
  switch (j->kind) {
  case WEBSOCK__JOB_SEND:
    if (c->state == WEBSOCK__CONN_OPEN) {
      if (websock__conn_queue_bytes(c, j->buf.data, j->buf.len, 1) == 0) {
        atomic_fetch_add_explicit(&l->messages_out, 1, memory_order_relaxed);
        break;
      }
    }
    atomic_fetch_sub(&c->base.pending_out, j->buf.len);
    break;
  case WEBSOCK__JOB_PING:
    if (c->state == WEBSOCK__CONN_OPEN)
      websock__conn_queue_message(c, 0x9, j->buf.data, j->buf.len);
    break;
  case WEBSOCK__JOB_CLOSE:
    websock__conn_start_close(c, j->code, (const char *)j->buf.data,
                              j->buf.len);
    break;
  case WEBSOCK__JOB_BROADCAST: {
    websock__blob *blob = j->ptr;
    size_t max_out = l->net->settings->max_outbound;
    for (websock__conn *k = l->conns; k; k = k->next) {
      if (k->state != WEBSOCK__CONN_OPEN || k->base.id == j->except_id)
        continue;
      if (atomic_load(&k->base.pending_out) + blob->len > max_out &&
          atomic_load(&k->base.pending_out) > 0)
        continue; /* a slow client misses a broadcast, never stalls it */
      if (websock__conn_queue_bytes(k, blob->data, blob->len, 0) == 0)
        atomic_fetch_add_explicit(&l->messages_out, 1, memory_order_relaxed);
    }
    websock__blob_unref(blob);
    j->ptr = NULL;
    break;
  }
  case WEBSOCK__JOB_ADOPT:
    if (l->stopping || !websock__conn_new(l, j->fd)) {
      close(j->fd);
      atomic_fetch_sub(&l->nconns, 1);
    }
    break;
  case WEBSOCK__JOB_STOP:
    if (!l->stopping) {
      l->stopping = 1;
      l->stop_deadline_ms =
          websock__now_ms() + l->net->settings->close_timeout_ms;
      if (l->index == 0 && l->net->listen_fd >= 0) {
        event_del(&l->listen_ev);
        close(l->net->listen_fd);
        l->net->listen_fd = -1;
      }
      websock__sched *s = l->net->sched;
      if (s->nagents == 0) {
        loop_close_all(l);
        break;
      }
      /* Let every agent finish what it has, so sends made by callbacks
       * already queued reach clients before their close frame. Events
       * gathered earlier in this iteration go first. */
      loop_push_batches(l);
      l->fences_pending = s->nagents;
      for (unsigned a = 0; a < s->nagents; a++) {
        websock__job *f = websock__pool_get(&s->pool);
        if (!f) {
          l->fences_pending--;
          continue;
        }
        f->kind = WEBSOCK__JOB_FENCE;
        f->ptr = l;
        websock__agent_push(s, a, f, f);
      }
      if (l->fences_pending == 0)
        loop_close_all(l);
    }
    break;
  case WEBSOCK__JOB_RESUME:
    atomic_store(&c->base.resume_posted, 0);
    websock__conn_maybe_resume(c);
    break;
  case WEBSOCK__JOB_FENCE_ACK:
    if (l->fences_pending && --l->fences_pending == 0)
      loop_close_all(l);
    break;
  default:
    break;
  }
  websock__job_release(j);
}

static void loop_on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  websock__loop *l = arg;
  uint64_t v;
  ssize_t r = read(fd, &v, sizeof v);
  (void)r;
  pthread_mutex_lock(&l->mb_mu);
  websock__job *j = l->mb_head;
  l->mb_head = l->mb_tail = NULL;
  pthread_mutex_unlock(&l->mb_mu);
  while (j) {
    websock__job *n = j->next;
    loop_run_job(l, j);
    j = n;
  }
  websock__loop_after(l);
}

/* ---- stop ------------------------------------------------------------- */

static void loop_close_all(websock__loop *l) {
  static const char why[] = "server shutdown";
  l->closing_all = 1;
  websock__conn *c = l->conns;
  while (c) {
    websock__conn *n = c->next;
    if (c->state == WEBSOCK__CONN_OPEN)
      websock__conn_start_close(c, 1001, why, sizeof why - 1);
    else if (c->state == WEBSOCK__CONN_HANDSHAKE)
      websock__conn_end(c);
    c = n;
  }
  websock__loop_conn_gone(l);
}

void websock__loop_conn_gone(websock__loop *l) {
  if (l->closing_all && !l->conns)
    loop_quit(l);
}

/* ---- timers ----------------------------------------------------------- */

static void loop_on_sweep(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  websock__loop *l = arg;
  uint64_t now = websock__now_ms();
  websock__conn *c = l->conns;
  while (c) {
    websock__conn *n = c->next;
    if (l->closing_all && now >= l->stop_deadline_ms)
      websock__conn_end(c); /* drain time is over */
    else
      websock__conn_sweep(c, now);
    c = n;
  }
  if (l->index == 0 && now - l->last_trim_ms >= 1000) {
    websock__pool_trim(&l->net->sched->pool);
    l->last_trim_ms = now;
  }
  websock__loop_after(l);
  websock__loop_conn_gone(l);
}

/* ---- accepting -------------------------------------------------------- */

static websock__loop *loop_pick(websock__net *n) {
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

static void loop_refuse(int fd) {
  char resp[256];
  size_t len = websock__http_response(resp, sizeof resp, 503, NULL, NULL, 0, 1);
  ssize_t w = send(fd, resp, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)w;
  close(fd);
}

static void loop_on_accept(evutil_socket_t lfd, short what, void *arg) {
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
        loop_refuse(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    websock__loop *t = loop_pick(n);
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

/* ---- set-up and threads ----------------------------------------------- */

int websock__net_init(websock__net *n, const websock__settings *st,
                      websock__sched *sched) {
  pthread_once(&loop_evthread_once, loop_use_pthreads);
  memset(n, 0, sizeof *n);
  n->settings = st;
  n->sched = sched;
  n->listen_fd = -1;
  atomic_init(&n->next_id, 1);
  sched->post_to_loop = loop_post_void;
  sched->loop_of = loop_of_client;
  /* Sweep often enough for the shortest configured timeout. */
  unsigned t[] = {st->handshake_timeout_ms, st->close_timeout_ms,
                  st->idle_timeout_ms, st->ping_interval_ms};
  unsigned lo = 1000;
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (t[i] && t[i] / 4 < lo)
      lo = t[i] / 4;
  if (lo < 10)
    lo = 10;
  n->sweep_interval.tv_sec = lo / 1000;
  n->sweep_interval.tv_usec = (lo % 1000) * 1000;
  n->nloops = (unsigned)st->io_threads;
  n->loops = calloc(n->nloops, sizeof *n->loops);
  if (!n->loops)
    return WEBSOCK_ERR_NOMEM;
  for (unsigned i = 0; i < n->nloops; i++) {
    websock__loop *l = &n->loops[i];
    l->net = n;
    l->index = i;
    l->wake_fd = -1;
    pthread_mutex_init(&l->mb_mu, NULL);
    l->base = event_base_new();
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->rbuf_cap = LOOP_RBUF_SIZE;
    l->rbuf = malloc(l->rbuf_cap);
    unsigned na = sched->nagents ? sched->nagents : 1;
    l->batch_head = calloc(na, sizeof *l->batch_head);
    l->batch_tail = calloc(na, sizeof *l->batch_tail);
    if (!l->base || l->wake_fd < 0 || !l->rbuf || !l->batch_head ||
        !l->batch_tail)
      return WEBSOCK_ERR_NOMEM;
    event_assign(&l->wake_ev, l->base, l->wake_fd, EV_READ | EV_PERSIST,
                 loop_on_wake, l);
    event_assign(&l->sweep_ev, l->base, -1, EV_PERSIST, loop_on_sweep, l);
    event_add(&l->wake_ev, NULL);
    event_add(&l->sweep_ev, &n->sweep_interval);
  }
  return 0;
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
               loop_on_accept, l0);
  event_add(&l0->listen_ev, NULL);
  return 0;
}

static void *loop_main(void *arg) {
  websock__loop *l = arg;
  websock__sched *s = l->net->sched;
  const websock__settings *st = l->net->settings;
  websock__tctx.sched = s;
  websock__tctx.loop = l;
  /* Inline mode runs callbacks here, so binding hooks run here too. */
  int hooks = s->nagents == 0 && st->delivery == WEBSOCK_DELIVERY_DIRECT;
  if (hooks && st->on_thread_start)
    st->on_thread_start(s->server, st->thread_ud);
  /* One iteration at a time, to hand gathered events to the agents after
   * each. */
  while (!atomic_load(&l->quit)) {
    if (event_base_loop(l->base, EVLOOP_ONCE) < 0)
      break;
    loop_push_batches(l);
  }
  /* Whatever is still open after the drain time ends now. */
  while (l->conns)
    websock__conn_end(l->conns);
  websock__loop_after(l);
  loop_push_batches(l);
  if (hooks && st->on_thread_stop)
    st->on_thread_stop(s->server, st->thread_ud);
  websock__tctx.sched = NULL;
  websock__tctx.loop = NULL;
  return NULL;
}

int websock__net_start(websock__net *n) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = 0;
  for (unsigned i = 0; i < n->nloops; i++) {
    if (pthread_create(&n->loops[i].thread, NULL, loop_main, &n->loops[i])) {
      rc = WEBSOCK_ERR_SYSTEM;
      break;
    }
    n->loops[i].started = 1;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

void websock__net_stop(websock__net *n) {
  for (unsigned i = 0; i < n->nloops; i++) {
    websock__job *j = websock__pool_get(&n->sched->pool);
    if (!j) {
      loop_quit(&n->loops[i]); /* crude, but it stops */
      continue;
    }
    j->kind = WEBSOCK__JOB_STOP;
    websock__loop_post(&n->loops[i], j);
  }
}

void websock__net_join(websock__net *n) {
  for (unsigned i = 0; i < n->nloops; i++) {
    if (n->loops[i].started) {
      pthread_join(n->loops[i].thread, NULL);
      n->loops[i].started = 0;
    }
  }
}

void websock__net_destroy(websock__net *n) {
  if (!n->loops)
    return;
  for (unsigned i = 0; i < n->nloops; i++) {
    websock__loop *l = &n->loops[i];
    /* Jobs posted after the loop ended (late sends) are dropped here. */
    websock__job *j = l->mb_head;
    while (j) {
      websock__job *nx = j->next;
      if (j->kind == WEBSOCK__JOB_ADOPT)
        close(j->fd);
      if (j->kind == WEBSOCK__JOB_BROADCAST && j->ptr)
        websock__blob_unref(j->ptr);
      websock__job_release(j);
      j = nx;
    }
    while (l->conns)
      websock__conn_end(l->conns);
    if (l->base) {
      event_del(&l->wake_ev);
      event_del(&l->sweep_ev);
      if (i == 0 && n->listen_fd >= 0)
        event_del(&l->listen_ev);
      event_base_free(l->base);
    }
    if (l->wake_fd >= 0)
      close(l->wake_fd);
    pthread_mutex_destroy(&l->mb_mu);
    free(l->rbuf);
    free(l->batch_head);
    free(l->batch_tail);
  }
  if (n->listen_fd >= 0)
    close(n->listen_fd);
  free(n->loops);
  n->loops = NULL;
}
