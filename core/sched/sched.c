/* Agent threads and the queued-mode event queue. Layer: sched. */
#include "sched.h"
#include "util/alloc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

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
  /* Everything queued at once: the loop pushes a batch per iteration. NULL
   * only once the queue is closed and empty. */
  websock__qnode *n;
  while ((n = websock__queue_wait_take(&a->q, -1, SIZE_MAX))) {
    while (n) {
      websock__qnode *next = n->next;
      n->next = NULL;
      agent_run_job(a, websock__job_of(n));
      n = next;
    }
  }
  if (s->settings->on_thread_stop)
    s->settings->on_thread_stop(s->server, s->settings->thread_ud);
  websock__tctx.sched = NULL;
  return NULL;
}

void websock__agent_push(websock__sched *s, unsigned ai, websock__job *first,
                         websock__job *last) {
  websock__queue_push(&s->agents[ai].q, &first->node, &last->node);
}

/* The eventfd of the queued mode is readable exactly while events wait
 * (and for good once the server ended): both hooks run under the queue's
 * lock, so a consumer never sees it readable with nothing to take. */
static void equeue_signal(void *arg) {
  websock__sched *s = arg;
  uint64_t one = 1;
  ssize_t w = write(s->efd, &one, sizeof one);
  (void)w; /* a full eventfd counter is still readable */
}

static void equeue_unsignal(void *arg) {
  websock__sched *s = arg;
  uint64_t v;
  ssize_t r = read(s->efd, &v, sizeof v);
  (void)r; /* EAGAIN: already unreadable */
}

int websock__sched_init(websock__sched *s, const websock__settings *st,
                        websock_server *server) {
  memset(s, 0, sizeof *s);
  s->settings = st;
  s->server = server;
  s->efd = -1;
  if (websock__pool_init(&s->pool, 256, 64, &s->allocs) < 0)
    return WEBSOCK_ERR_NOMEM;
  if (websock__registry_init(&s->registry) < 0) {
    websock__pool_destroy(&s->pool);
    return WEBSOCK_ERR_NOMEM;
  }
  int queued = st->delivery == WEBSOCK_DELIVERY_QUEUED;
  if (websock__queue_init(&s->equeue, queued ? equeue_signal : NULL,
                          queued ? equeue_unsignal : NULL, s) < 0) {
    websock__registry_destroy(&s->registry);
    websock__pool_destroy(&s->pool);
    return WEBSOCK_ERR_NOMEM;
  }
  if (queued) {
    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->efd < 0) {
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
  s->agents = websock__calloc(s->nagents, sizeof *s->agents);
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
    if (websock__queue_init(&a->q, NULL, NULL, NULL) < 0) {
      s->nagents = i;
      rc = WEBSOCK_ERR_NOMEM;
      break;
    }
    if (pthread_create(&a->thread, NULL, agent_main, a)) {
      websock__queue_destroy(&a->q);
      s->nagents = i;
      rc = WEBSOCK_ERR_SYSTEM;
      break;
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

void websock__sched_stop_join(websock__sched *s) {
  for (unsigned i = 0; s->agents && i < s->nagents; i++)
    websock__queue_close(&s->agents[i].q);
  for (unsigned i = 0; s->agents && i < s->nagents; i++)
    pthread_join(s->agents[i].thread, NULL);
  websock__queue_close(&s->equeue);
}

/* Releases every job left in |q|. */
static void sched_drop_all(websock__queue *q) {
  websock__qnode *n = websock__queue_take(q, SIZE_MAX);
  while (n) {
    websock__qnode *next = n->next;
    websock__job_release(websock__job_of(n));
    n = next;
  }
}

void websock__sched_destroy(websock__sched *s) {
  for (unsigned i = 0; i < s->nagents && s->agents; i++) {
    sched_drop_all(&s->agents[i].q);
    websock__queue_destroy(&s->agents[i].q);
  }
  websock__free(s->agents);
  s->agents = NULL;
  sched_drop_all(&s->equeue); /* events the consumer never took */
  websock__queue_destroy(&s->equeue);
  if (s->efd >= 0)
    close(s->efd);
  websock__registry_destroy(&s->registry);
  websock__pool_destroy(&s->pool);
}

int websock__equeue_pop(websock__sched *s, int timeout_ms, websock__job **out) {
  websock__qnode *n = websock__queue_wait_take(&s->equeue, timeout_ms, 1);
  if (!n)
    return 0;
  websock__job *j = websock__job_of(n);
  websock__job_fill_view(s, j);
  *out = j;
  return 1;
}
