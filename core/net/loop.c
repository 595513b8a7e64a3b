/* I/O loops: one thread and one libevent event_base each, a mailbox for
 * work from other threads, periodic timeouts, and the graceful stop. The
 * listener is in listen.c. Layer: net. */
#include "net.h"

#include <event2/thread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "defer.h"
#include "util/alloc.h"
#include "util/time.h"

#define LOOP_RBUF_SIZE (256 * 1024)

static pthread_once_t loop_evthread_once = PTHREAD_ONCE_INIT;
static void loop_use_pthreads(void) {
  evthread_use_pthreads();
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

/* ---- mailbox ---------------------------------------------------------- */

void websock__loop_post(websock__loop *l, websock__job *j) {
  websock__mailbox_post(&l->mailbox, &j->node);
}

/* The mailbox went from empty to non-empty: one eventfd write per batch. */
static void loop_wake(void *arg) {
  websock__loop *l = arg;
  uint64_t one = 1;
  ssize_t w = write(l->wake_fd, &one, sizeof one);
  (void)w; /* a full eventfd counter is still readable */
}

static void loop_post_void(void *loop, websock__job *j) {
  websock__loop_post(loop, j);
}

websock__loop *websock__loop_of(const websock__client *c) {
  return ((const websock__conn *)(const void *)c)->loop;
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

/* The agents run every event this loop handed them before the loop closes
 * its clients, so sends made by callbacks already queued reach them before
 * their close frame. Events gathered earlier in this iteration go first.
 * Returns 1 when the loop waits for the agents' acknowledgement. */
static int loop_drain_agents(websock__loop *l) {
  websock__sched *s = l->net->sched;
  if (!s->nagents)
    return 0;
  websock__batch_flush(s, &l->batch);
  websock__job *ack = websock__pool_get(&s->pool);
  if (!ack)
    return 0; /* out of memory: close without waiting for the agents */
  ack->kind = WEBSOCK__JOB_FENCE_ACK;
  ack->ptr = l;
  websock__sched_drain(s, ack);
  return 1;
}

/* No new connections: the listening socket (loop 0's, or every loop's
 * with reuse_port) closes, so the kernel refuses them or, with
 * SO_REUSEPORT, hands them to the group's other sockets. */
static void loop_close_listener(websock__loop *l) {
  if (l->listen_fd >= 0) {
    event_del(&l->listen_ev);
    close(l->listen_fd);
    l->listen_fd = -1;
  }
  websock__listen_release(l); /* the spare descriptor kept for EMFILE */
}

static void loop_begin_stop(websock__loop *l) {
  if (l->stopping)
    return;
  l->stopping = 1;
  l->stop_deadline_ms = websock__now_ms() + l->net->settings->close_timeout_ms;
  loop_close_listener(l);
  l->draining = loop_drain_agents(l);
  if (!l->draining)
    loop_close_all(l);
}

static void loop_run_job(websock__loop *l, websock__job *j) {
  switch (j->kind) {
  case WEBSOCK__JOB_COMMAND:
  case WEBSOCK__JOB_BROADCAST:
  case WEBSOCK__JOB_PUBLISH:
    websock__command_run(l, j);
    return;
  case WEBSOCK__JOB_ADOPT:
    if (l->stopping || !websock__conn_new(l, j->fd)) {
      close(j->fd);
      atomic_fetch_sub(&l->nconns, 1);
    }
    break;
  case WEBSOCK__JOB_OUTBOX:
    websock__outbox_run(j);
    return;
  case WEBSOCK__JOB_DIAL:
    websock__dial_run(l, j);
    return;
  case WEBSOCK__JOB_RESOLVED:
    websock__dial_resolved(l, j);
    return;
  case WEBSOCK__JOB_STOP:
    loop_begin_stop(l);
    break;
  case WEBSOCK__JOB_STOP_ACCEPT:
    loop_close_listener(l);
    break;
  case WEBSOCK__JOB_GREETED:
    websock__client_set(j->client, WEBSOCK__CLIENT_GREETED);
    break;
  case WEBSOCK__JOB_RESUME:
    websock__client_clear(j->client, WEBSOCK__CLIENT_RESUME_POSTED);
    websock__bp_maybe_resume((websock__conn *)j->client);
    break;
  case WEBSOCK__JOB_FENCE_ACK:
    if (l->draining) {
      l->draining = 0;
      loop_close_all(l);
    }
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
  websock__qnode *n = websock__mailbox_take(&l->mailbox);
  while (n) {
    websock__qnode *next = n->next;
    loop_run_job(l, websock__job_of(n));
    n = next;
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
      websock__conn_start_close(c, WEBSOCK_CLOSE_GOING_AWAY, why,
                                sizeof why - 1);
    else if (websock__conn_dialing(c))
      websock__dial_fail(c, "stopped", "the server is stopping");
    else if (c->state == WEBSOCK__CONN_HANDSHAKE)
      websock__conn_end(c);
    c = n;
  }
  websock__loop_conn_gone(l);
}

void websock__loop_conn_gone(websock__loop *l) {
  if (l->closing_all && !l->conns && !l->owed)
    loop_quit(l);
}

/* ---- timers ----------------------------------------------------------- */

static void loop_on_sweep(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  websock__loop *l = arg;
  uint64_t now = websock__now_ms();
  /* CLOSE events that waited for memory go out first. */
  websock__conn *o = l->owed;
  while (o) {
    websock__conn *n = o->next;
    websock__conn_retry_close(o);
    o = n;
  }
  websock__conn *c = l->conns;
  while (c) {
    websock__conn *n = c->next;
    if (l->closing_all && now >= l->stop_deadline_ms)
      websock__conn_end(c); /* drain time is over */
    else
      websock__conn_sweep(c, websock__loop_now(l));
    c = n;
  }
  if (now - l->last_trim_ms >= 1000) {
    if (l->index == 0) /* one pool for the server */
      websock__pool_trim(&l->net->sched->pool);
    websock__pmd_loop_trim(l);
    l->last_trim_ms = now;
  }
  websock__loop_after(l);
  websock__loop_conn_gone(l);
}

/* ---- set-up and threads ----------------------------------------------- */

int websock__net_init(websock__net *n, const websock__settings *st,
                      websock__sched *sched) {
  pthread_once(&loop_evthread_once, loop_use_pthreads);
  memset(n, 0, sizeof *n);
  n->settings = st;
  n->sched = sched;
  atomic_init(&n->next_id, 1);
  pthread_mutex_init(&n->dial_mu, NULL);
  sched->post_to_loop = loop_post_void;
  sched->loop_of = loop_of_client;
  sched->on_event_done = websock__bp_event_done;
  websock__upgrade_install(sched);
  /* Sweep often enough for the shortest configured timeout. */
  unsigned t[] = {st->handshake_timeout_ms, st->close_timeout_ms,
                  st->idle_timeout_ms, st->ping_interval_ms,
                  st->ping_timeout_ms};
  unsigned lo = 1000;
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (t[i] && t[i] / 4 < lo)
      lo = t[i] / 4;
  if (lo < 10)
    lo = 10;
  n->sweep_interval.tv_sec = lo / 1000;
  n->sweep_interval.tv_usec = (lo % 1000) * 1000;
  n->nloops = (unsigned)st->io_threads;
  n->loops = websock__calloc(n->nloops, sizeof *n->loops);
  if (!n->loops)
    return WEBSOCK_ERR_NOMEM;
  /* Every loop's descriptors read -1 before anything can fail, so that
   * websock__net_destroy() of a half-made net closes none it does not own. */
  for (unsigned i = 0; i < n->nloops; i++) {
    n->loops[i].listen_fd = -1; /* none until websock__net_listen() */
    n->loops[i].wake_fd = -1;
  }
  for (unsigned i = 0; i < n->nloops; i++) {
    websock__loop *l = &n->loops[i];
    l->net = n;
    l->index = i;
    l->epoch_ms = websock__now_ms();
    l->wake_fd = -1;
    websock__mailbox_init(&l->mailbox, loop_wake, l);
    l->base = event_base_new();
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->rbuf_cap = LOOP_RBUF_SIZE;
    l->rbuf = websock__malloc(l->rbuf_cap);
    websock__batch_init(&l->batch, &l->events);
    websock__pmd_loop_init(l);
    websock__topics_init(&l->topics);
    if (!l->base || l->wake_fd < 0 || !l->rbuf)
      return WEBSOCK_ERR_NOMEM;
    event_assign(&l->wake_ev, l->base, l->wake_fd, EV_READ | EV_PERSIST,
                 loop_on_wake, l);
    event_assign(&l->sweep_ev, l->base, -1, EV_PERSIST, loop_on_sweep, l);
    event_add(&l->wake_ev, NULL);
    event_add(&l->sweep_ev, &n->sweep_interval);
  }
  return 0;
}

/* The loop is ending: CLOSE events still owed get a last try (|retry|),
 * then whatever could not be had is given up with its connections. */
static void loop_drop_owed(websock__loop *l, int retry) {
  while (l->owed) {
    websock__conn *c = l->owed;
    if (retry && websock__conn_retry_close(c))
      continue; /* it left the list */
    l->owed = c->next;
    if (l->owed)
      l->owed->prev = NULL;
    c->next = c->prev = NULL;
    c->close_owed = 0;
    websock__client_unref(&c->base);
  }
}

static void *loop_main(void *arg) {
  websock__loop *l = arg;
  websock__sched *s = l->net->sched;
  const websock__settings *st = l->net->settings;
  websock__tctx.sched = s;
  websock__tctx.loop = l;
  websock__pool_attach(&s->pool, &l->jobs);
  /* Inline mode runs callbacks here, so binding hooks run here too. */
  int hooks = s->nagents == 0 && st->delivery == WEBSOCK_DELIVERY_DIRECT;
  if (hooks && st->on_thread_start)
    st->on_thread_start(s->server, st->thread_ud);
  /* One iteration at a time, to hand gathered events to the agents after
   * each. */
  while (!atomic_load(&l->quit)) {
    if (event_base_loop(l->base, EVLOOP_ONCE) < 0)
      break;
    websock__batch_flush(s, &l->batch);
  }
  /* Whatever is still open after the drain time ends now. */
  while (l->conns)
    websock__conn_end(l->conns);
  websock__loop_after(l);
  loop_drop_owed(l, 1);
  websock__batch_flush(s, &l->batch);
  if (hooks && st->on_thread_stop)
    st->on_thread_stop(s->server, st->thread_ud);
  websock__pool_detach(&l->jobs);
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

int websock__net_stop_accepting(websock__net *n) {
  int rc = 0;
  for (unsigned i = 0; i < n->nloops; i++) {
    websock__job *j = websock__pool_get(&n->sched->pool);
    if (!j) {
      rc = WEBSOCK_ERR_NOMEM;
      continue;
    }
    j->kind = WEBSOCK__JOB_STOP_ACCEPT;
    websock__loop_post(&n->loops[i], j);
  }
  return rc;
}

void websock__net_join(websock__net *n) {
  for (unsigned i = 0; i < n->nloops; i++) {
    if (n->loops[i].started) {
      pthread_join(n->loops[i].thread, NULL);
      n->loops[i].started = 0;
    }
  }
  /* After the loops: what it answers late waits in their mailboxes for
   * websock__net_destroy to drop. */
  websock__resolver_join(n);
}

void websock__net_destroy(websock__net *n) {
  if (!n->loops)
    return;
  for (unsigned i = 0; i < n->nloops; i++) {
    websock__loop *l = &n->loops[i];
    /* Jobs posted after the loop ended (late sends) are dropped here. */
    websock__qnode *q = websock__mailbox_take(&l->mailbox);
    while (q) {
      websock__qnode *nx = q->next;
      websock__job *j = websock__job_of(q);
      if (j->kind == WEBSOCK__JOB_ADOPT)
        close(j->fd);
      if (j->kind == WEBSOCK__JOB_COMMAND ||
          j->kind == WEBSOCK__JOB_BROADCAST || j->kind == WEBSOCK__JOB_PUBLISH)
        websock__command_drop(j);
      else if (j->kind == WEBSOCK__JOB_DIAL || j->kind == WEBSOCK__JOB_RESOLVED)
        websock__dial_drop(j);
      else if (j->kind == WEBSOCK__JOB_OUTBOX)
        websock__outbox_drop(j);
      else
        websock__job_release(j);
      q = nx;
    }
    while (l->conns)
      websock__conn_end(l->conns);
    loop_drop_owed(l, 0);
    if (l->base) {
      event_del(&l->wake_ev);
      event_del(&l->sweep_ev);
      if (l->listen_fd >= 0)
        event_del(&l->listen_ev);
      event_base_free(l->base);
    }
    if (l->listen_fd >= 0)
      close(l->listen_fd);
    l->listen_fd = -1;
    websock__listen_release(l);
    if (l->wake_fd >= 0)
      close(l->wake_fd);
    websock__free(l->rbuf);
    websock__buf_free(&l->scratch);
    websock__buf_free(&l->unmasked);
    websock__pmd_loop_free(l);
    websock__topics_free(&l->topics); /* empty: its connections ended */
  }
  websock__free(n->loops);
  n->loops = NULL;
  websock__dial_net_free(n);
}
