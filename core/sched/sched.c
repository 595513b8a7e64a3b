/* Agent threads, the queued-mode event queue and event delivery.
 * Layer: sched. */
#include "sched.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

_Thread_local websock__thread_ctx websock__tctx;

void websock__job_fill_view(websock__sched *s, websock__job *j) {
  websock__client *c = j->client;
  j->ev.server = s->server;
  if (!c)
    return;
  j->ev.id = c->id;
  j->ev.user_data = atomic_load_explicit(&c->user_data, memory_order_acquire);
  j->ev.tag = NULL;
  if (atomic_load_explicit(&c->has_tag, memory_order_acquire) &&
      websock__registry_copy_tag(&s->registry, c, j->tag, sizeof j->tag) > 0)
    j->ev.tag = j->tag;
}

void websock__deliver(websock__sched *s, websock__client *client,
                      const websock_event *ev) {
  websock__client *saved = websock__tctx.client;
  websock__tctx.client = client;
  s->settings->event_cb(s->server, ev, s->settings->event_ud);
  websock__tctx.client = saved;
}

void websock__event_done(websock__sched *s, websock__job *j) {
  websock__client *c = j->client;
  if (!c || j->ev.type != WEBSOCK_EVENT_MESSAGE)
    return;
  atomic_fetch_sub_explicit(&c->inflight_in, j->ev.length,
                            memory_order_acq_rel);
  if (atomic_load_explicit(&c->read_paused, memory_order_acquire) &&
      !atomic_exchange(&c->resume_posted, 1)) {
    websock__job *r = websock__pool_get(&s->pool);
    if (!r) {
      atomic_store(&c->resume_posted, 0);
      return; /* the next write progress resumes it instead */
    }
    r->kind = WEBSOCK__JOB_RESUME;
    websock__client_ref(c);
    r->client = c;
    s->post_to_loop(s->loop_of(s, c), r);
  }
}

static void agent_run_job(websock__agent *a, websock__job *j) {
  websock__sched *s = a->sched;
  if (j->kind == WEBSOCK__JOB_FENCE) {
    /* Everything queued before the fence has run, and the sends it made are
     * already in the loop's mailbox ahead of this ack. */
    void *loop = j->ptr;
    j->kind = WEBSOCK__JOB_FENCE_ACK;
    s->post_to_loop(loop, j);
    return;
  }
  websock__job_fill_view(s, j);
  if (s->settings->event_cb)
    websock__deliver(s, j->client, &j->ev);
  atomic_fetch_add_explicit(&a->events, 1, memory_order_relaxed);
  websock__event_done(s, j);
  websock__job_release(j);
}

static void *agent_main(void *arg) {
  websock__agent *a = arg;
  websock__sched *s = a->sched;
  websock__tctx.sched = s;
  if (s->settings->on_thread_start)
    s->settings->on_thread_start(s->server, s->settings->thread_ud);
  pthread_mutex_lock(&a->mu);
  for (;;) {
    while (!a->head && !a->stop) {
      a->sleeping = 1;
      pthread_cond_wait(&a->cv, &a->mu);
      a->sleeping = 0;
    }
    if (!a->head)
      break; /* stop requested and nothing left */
    websock__job *j = a->head;
    a->head = a->tail = NULL;
    pthread_mutex_unlock(&a->mu);
    while (j) {
      websock__job *n = j->next;
      j->next = NULL;
      agent_run_job(a, j);
      j = n;
    }
    pthread_mutex_lock(&a->mu);
  }
  pthread_mutex_unlock(&a->mu);
  if (s->settings->on_thread_stop)
    s->settings->on_thread_stop(s->server, s->settings->thread_ud);
  websock__tctx.sched = NULL;
  return NULL;
}

void websock__agent_push(websock__sched *s, unsigned ai, websock__job *head,
                         websock__job *tail) {
  websock__agent *a = &s->agents[ai];
  pthread_mutex_lock(&a->mu);
  if (a->tail)
    a->tail->next = head;
  else
    a->head = head;
  a->tail = tail;
  int wake = a->sleeping;
  pthread_mutex_unlock(&a->mu);
  if (wake)
    pthread_cond_signal(&a->cv);
}

int websock__sched_init(websock__sched *s, const websock__settings *st,
                        websock_server *server) {
  memset(s, 0, sizeof *s);
  s->settings = st;
  s->server = server;
  s->equeue.efd = -1;
  if (websock__pool_init(&s->pool, 256, 64, &s->allocs) < 0)
    return WEBSOCK_ERR_NOMEM;
  if (websock__registry_init(&s->registry) < 0) {
    websock__pool_destroy(&s->pool);
    return WEBSOCK_ERR_NOMEM;
  }
  pthread_mutex_init(&s->equeue.mu, NULL);
  pthread_cond_init(&s->equeue.cv, NULL);
  if (st->delivery == WEBSOCK_DELIVERY_QUEUED) {
    s->equeue.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->equeue.efd < 0) {
      websock__sched_destroy(s);
      return WEBSOCK_ERR_SYSTEM;
    }
  } else if (st->agents > 0) {
    s->nagents = (unsigned)st->agents;
  }
  return 0;
}

int websock__sched_start(websock__sched *s) {
  if (!s->nagents)
    return 0;
  s->agents = calloc(s->nagents, sizeof *s->agents);
  if (!s->agents)
    return WEBSOCK_ERR_NOMEM;
  /* Core threads block every signal so the host's handlers run on its own
   * threads (Python, nginx and Ctrl-C rely on that). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = 0;
  for (unsigned i = 0; i < s->nagents; i++) {
    websock__agent *a = &s->agents[i];
    a->index = i;
    a->sched = s;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (pthread_create(&a->thread, NULL, agent_main, a)) {
      s->nagents = i;
      rc = WEBSOCK_ERR_SYSTEM;
      break;
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

void websock__sched_stop_join(websock__sched *s) {
  if (!s->agents) {
    websock__equeue_finish(s);
    return;
  }
  for (unsigned i = 0; i < s->nagents; i++) {
    websock__agent *a = &s->agents[i];
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_mutex_unlock(&a->mu);
    pthread_cond_signal(&a->cv);
  }
  for (unsigned i = 0; i < s->nagents; i++)
    pthread_join(s->agents[i].thread, NULL);
  websock__equeue_finish(s);
}

void websock__sched_destroy(websock__sched *s) {
  for (unsigned i = 0; i < s->nagents && s->agents; i++) {
    pthread_mutex_destroy(&s->agents[i].mu);
    pthread_cond_destroy(&s->agents[i].cv);
  }
  free(s->agents);
  s->agents = NULL;
  /* Events the consumer never took. */
  websock__job *j = s->equeue.head;
  while (j) {
    websock__job *n = j->next;
    websock__job_release(j);
    j = n;
  }
  s->equeue.head = s->equeue.tail = NULL;
  if (s->equeue.efd >= 0)
    close(s->equeue.efd);
  pthread_mutex_destroy(&s->equeue.mu);
  pthread_cond_destroy(&s->equeue.cv);
  websock__registry_destroy(&s->registry);
  websock__pool_destroy(&s->pool);
}

void websock__equeue_push(websock__sched *s, websock__job *j) {
  websock__equeue *q = &s->equeue;
  j->next = NULL;
  pthread_mutex_lock(&q->mu);
  int was_empty = q->head == NULL;
  if (q->tail)
    q->tail->next = j;
  else
    q->head = j;
  q->tail = j;
  if (was_empty) {
    uint64_t one = 1;
    ssize_t w = write(q->efd, &one, sizeof one);
    (void)w; /* a full eventfd counter is still readable */
    pthread_cond_signal(&q->cv);
  }
  pthread_mutex_unlock(&q->mu);
}

void websock__equeue_finish(websock__sched *s) {
  websock__equeue *q = &s->equeue;
  pthread_mutex_lock(&q->mu);
  q->finished = 1;
  if (q->efd >= 0) {
    /* Wake event-loop consumers so they notice the end. */
    uint64_t one = 1;
    ssize_t w = write(q->efd, &one, sizeof one);
    (void)w;
  }
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

int websock__equeue_pop(websock__sched *s, int timeout_ms, websock__job **out) {
  websock__equeue *q = &s->equeue;
  struct timespec deadline;
  if (timeout_ms > 0) {
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&q->mu);
  while (!q->head && !q->finished && timeout_ms != 0) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&q->cv, &q->mu);
    } else if (pthread_cond_timedwait(&q->cv, &q->mu, &deadline) == ETIMEDOUT) {
      break;
    }
  }
  websock__job *j = q->head;
  if (j) {
    q->head = j->next;
    if (!q->head)
      q->tail = NULL;
  }
  if (!q->head && !q->finished) {
    /* Empty now: make the fd unreadable until the next push. */
    uint64_t v;
    ssize_t r = read(q->efd, &v, sizeof v);
    (void)r;
  }
  pthread_mutex_unlock(&q->mu);
  if (!j)
    return 0;
  j->next = NULL;
  websock__job_fill_view(s, j);
  *out = j;
  return 1;
}
