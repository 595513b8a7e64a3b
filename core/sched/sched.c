/* Agent threads and the connections' strands (work-conserving: any idle
 * agent runs any ready connection, one agent at a time per connection, a
 * budget of events per turn), and the queued-mode event queue.
 * Layer: sched. */
#include "sched.h"
#include "util/alloc.h"
#include "util/counter.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static uint64_t sched_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The first event of |c|'s ring (which must not be empty). */
static websock__job *sched_strand_head(websock__client *c) {
  return websock__job_of(c->strand_tail->node.next);
}

/* Cuts the first |max| events off |c|'s ring, as a NULL-terminated chain
 * in order; the ring keeps the rest. */
static websock__job *sched_strand_cut(websock__client *c, unsigned max) {
  websock__job *first = sched_strand_head(c), *last = first;
  for (unsigned k = 1; k < max && last != c->strand_tail; k++)
    last = websock__job_of(last->node.next);
  if (last == c->strand_tail)
    c->strand_tail = NULL; /* took them all */
  else
    c->strand_tail->node.next = last->node.next;
  last->node.next = NULL;
  return first;
}

static websock__client *sched_client_of(websock__qnode *n) {
  return (websock__client *)(void *)((char *)n -
                                     offsetof(websock__client, ready_node));
}

/* Puts |c| (with events waiting, neither READY nor RUNNING) at the tail
 * of the ready queue. */
static void sched_make_ready_locked(websock__sched *s, websock__client *c,
                                    uint64_t now) {
  sched_strand_head(c)->ready_ns = now;
  websock__qlist_push(&s->ready, &c->ready_node, &c->ready_node, 1);
  websock__client_set(c, WEBSOCK__CLIENT_READY);
}

/* Runs of one client's events spliced per lock (see below). */
#define SCHED_SUBMIT_RUNS 64

void websock__sched_submit(websock__sched *s, websock__job *first) {
  /* Outside the lock the batch is cut into runs of one client's events (a
   * read brings several messages of one connection in a row); under it,
   * each run is spliced into its strand's ring at once: the lock is held
   * for a step per run, not per event, so the agents wait less for it. */
  while (first) {
    struct {
      websock__job *head, *tail;
    } runs[SCHED_SUBMIT_RUNS];
    unsigned nruns = 0, n = 0;
    while (first && nruns < SCHED_SUBMIT_RUNS) {
      websock__job *head = first, *tail = first;
      n++;
      while (tail->node.next &&
             websock__job_of(tail->node.next)->client == head->client) {
        tail = websock__job_of(tail->node.next);
        n++;
      }
      first = tail->node.next ? websock__job_of(tail->node.next) : NULL;
      runs[nruns].head = head;
      runs[nruns].tail = tail;
      nruns++;
    }
    uint64_t now = sched_now_ns();
    int woke = 0; /* some strand became ready */
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < nruns; i++) {
      websock__client *c = runs[i].head->client;
      if (c->strand_tail) {
        runs[i].tail->node.next = c->strand_tail->node.next; /* the head */
        c->strand_tail->node.next = &runs[i].head->node;
      } else {
        runs[i].tail->node.next = &runs[i].head->node;
      }
      c->strand_tail = runs[i].tail;
      if (!websock__client_has(c, WEBSOCK__CLIENT_READY |
                                      WEBSOCK__CLIENT_RUNNING)) {
        sched_make_ready_locked(s, c, now);
        woke = 1;
      }
    }
    s->emitted += n;
    /* One agent is woken; it wakes the next if strands are still ready
     * when it takes its own (see agent_take_locked), so no agent idles
     * while a connection waits, without waking them all per batch. */
    int wake = woke && s->idle;
    pthread_mutex_unlock(&s->mu);
    /* After the unlock: an agent woken while we held the lock would run
     * (on a shared core it preempts us), block on the lock, and cost two
     * more switches. */
    if (wake)
      pthread_cond_signal(&s->cv);
  }
}

/* Posts the drain acknowledgements whose events have all run. */
static void sched_post_drained_locked(websock__sched *s) {
  websock__job **pp = &s->drain_waiters;
  while (*pp) {
    websock__job *ack = *pp;
    if (s->ran >= ack->except_id) {
      *pp = ack->node.next ? websock__job_of(ack->node.next) : NULL;
      ack->node.next = NULL;
      s->post_to_loop(ack->ptr, ack);
    } else {
      pp = (websock__job **)(void *)&ack->node.next;
    }
  }
}

void websock__sched_drain(websock__sched *s, websock__job *ack) {
  pthread_mutex_lock(&s->mu);
  ack->except_id = s->emitted;
  ack->node.next = s->drain_waiters ? &s->drain_waiters->node : NULL;
  s->drain_waiters = ack;
  sched_post_drained_locked(s);
  pthread_mutex_unlock(&s->mu);
}

void websock__sched_ready_stats(websock__sched *s, uint64_t *ready,
                                uint64_t *wait_max_ns) {
  pthread_mutex_lock(&s->mu);
  *ready = s->ready.len;
  *wait_max_ns = s->ready_wait_max_ns;
  pthread_mutex_unlock(&s->mu);
}

/* Takes the next ready strand and up to a budget of its events, or waits;
 * returns NULL once stopping with nothing ready. Called with the lock.
 * Sets *pass_on when strands are still ready and agents idle: the caller
 * wakes one once it has let the lock go. *now is the time, read again
 * only after a wait (a clock read per turn, not three). */
static websock__job *agent_take_locked(websock__agent *a, websock__client **out,
                                       int *pass_on, uint64_t *now) {
  websock__sched *s = a->sched;
  if (!s->ready.head && !s->stop) {
    do {
      s->idle++;
      pthread_cond_wait(&s->cv, &s->mu);
      s->idle--;
    } while (!s->ready.head && !s->stop);
    *now = sched_now_ns();
  }
  websock__qnode *n = websock__qlist_take(&s->ready, 1);
  if (!n)
    return NULL;
  websock__client *c = sched_client_of(n);
  *pass_on = s->ready.head && s->idle; /* more work: pass the wake-up on */
  websock__client_clear(c, WEBSOCK__CLIENT_READY);
  websock__client_set(c, WEBSOCK__CLIENT_RUNNING);
  uint64_t ready_ns = sched_strand_head(c)->ready_ns;
  uint64_t waited = *now > ready_ns ? *now - ready_ns : 0;
  if (waited > s->ready_wait_max_ns)
    s->ready_wait_max_ns = waited;
  /* A budget of events in a row, the rest wait their next turn: a client
   * that floods cannot hold an agent while other strands are ready. */
  websock__job *first = sched_strand_cut(c, s->settings->agent_budget);
  /* The strand's events hold references; keep one of our own for after
   * the last of them is released. */
  websock__client_ref(c);
  *out = c;
  return first;
}

/* Runs one event job and releases it. */
static void agent_run_event(websock__agent *a, websock__job *j) {
  websock__sched *s = a->sched;
  if (j->kind == WEBSOCK__JOB_HOOK) {
    websock__client *saved = websock__tctx.client;
    websock__tctx.client = j->client;
    s->run_hook(s, j);
    websock__tctx.client = saved;
    websock__job_release(j);
    return;
  }
  websock__job_fill_view(s, j);
  if (s->settings->event_cb)
    websock__deliver(s, j->client, &j->ev);
  websock__counter_add(&a->events, 1);
  websock__event_done(s, j);
  websock__job_release(j);
}

/* SCHED_BATCH: an agent woken by its I/O thread on a shared core does
 * not preempt it (see websock_config_set_agent_batch). Only from the
 * normal policy: a real-time or idle policy the host chose stays. */
static void agent_become_batch(void) {
#ifdef SCHED_BATCH
  int policy;
  struct sched_param sp;
  if (pthread_getschedparam(pthread_self(), &policy, &sp) == 0 &&
      policy == SCHED_OTHER) {
    sp.sched_priority = 0;
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
  }
#endif
}

static void *agent_main(void *arg) {
  websock__agent *a = arg;
  websock__sched *s = a->sched;
  websock__tctx.sched = s;
  websock__tctx.outboxes = a->outboxes;
  websock__pool_attach(&s->pool, &a->jobs);
  if (s->settings->agent_batch)
    agent_become_batch();
  if (s->settings->on_thread_start)
    s->settings->on_thread_start(s->server, s->settings->thread_ud);
  /* One lock per turn: the strand just run is finished and the next one
   * taken in the same critical section; the reference on the finished
   * client is dropped after the lock, before its successor runs. */
  websock__client *c, *done = NULL;
  websock__job *j;
  int pass_on;
  uint64_t now = sched_now_ns();
  pthread_mutex_lock(&s->mu);
  for (;;) {
    if (done && !s->ready.head) { /* about to wait: let it go first */
      pthread_mutex_unlock(&s->mu);
      websock__client_unref(done);
      done = NULL;
      pthread_mutex_lock(&s->mu);
    }
    if (!(j = agent_take_locked(a, &c, &pass_on, &now)))
      break;
    pthread_mutex_unlock(&s->mu);
    if (pass_on)
      pthread_cond_signal(&s->cv);
    if (done) {
      websock__client_unref(done);
      done = NULL;
    }
    uint64_t n = 0;
    while (j) {
      websock__job *next = j->node.next ? websock__job_of(j->node.next) : NULL;
      j->node.next = NULL;
      agent_run_event(a, j);
      j = next;
      n++;
    }
    uint64_t t1 = sched_now_ns();
    websock__counter_add(&a->busy_ns, t1 - now);
    now = t1;
    pthread_mutex_lock(&s->mu);
    websock__client_clear(c, WEBSOCK__CLIENT_RUNNING);
    /* Events that came while it ran wait at the tail, behind the strands
     * that were ready before. No wake-up is needed: this agent takes the
     * head of the queue next and passes the wake-up on if more wait. */
    if (c->strand_tail)
      sched_make_ready_locked(s, c, t1);
    s->ran += n;
    if (s->drain_waiters)
      sched_post_drained_locked(s);
    done = c;
  }
  pthread_mutex_unlock(&s->mu);
  if (done)
    websock__client_unref(done);
  if (s->settings->on_thread_stop)
    s->settings->on_thread_stop(s->server, s->settings->thread_ud);
  websock__tctx.outboxes = NULL;
  for (unsigned i = 0; i < WEBSOCK__MAX_IO_THREADS; i++)
    if (a->outboxes[i])
      websock__job_let_go(a->outboxes[i]); /* posted: the loop has it too */
  websock__pool_detach(&a->jobs);
  websock__tctx.sched = NULL;
  return NULL;
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
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
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
  if (s->agents) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->nagents; i++)
      pthread_join(s->agents[i].thread, NULL);
  }
  websock__queue_close(&s->equeue);
}

/* Releases a chain of jobs linked by node.next. */
static void sched_release_chain(websock__job *j) {
  while (j) {
    websock__job *next = j->node.next ? websock__job_of(j->node.next) : NULL;
    websock__job_release(j);
    j = next;
  }
}

void websock__sched_destroy(websock__sched *s) {
  /* After the joins nothing is ready; this is for a start that failed. */
  websock__qnode *n;
  while ((n = websock__qlist_take(&s->ready, 1))) {
    websock__client *c = sched_client_of(n);
    if (c->strand_tail)
      sched_release_chain(sched_strand_cut(c, UINT_MAX));
  }
  sched_release_chain(s->drain_waiters); /* their loops are gone */
  s->drain_waiters = NULL;
  websock__free(s->agents);
  s->agents = NULL;
  n = websock__queue_take(&s->equeue, SIZE_MAX);
  while (n) { /* events the consumer never took */
    websock__qnode *next = n->next;
    websock__job_release(websock__job_of(n));
    n = next;
  }
  websock__queue_destroy(&s->equeue);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
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
