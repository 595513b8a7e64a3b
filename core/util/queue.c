/* The intrusive multi-producer queue (see queue.h). Layer: util. */
#include "queue.h"

#include <errno.h>
#include <stdint.h>
#include <time.h>

websock__qnode *websock__qlist_take(websock__qlist *l, size_t max) {
  websock__qnode *first = l->head;
  if (!first || max == 0)
    return NULL;
  websock__qnode *last = first;
  size_t n = 1;
  while (n < max && last->next) {
    last = last->next;
    n++;
  }
  l->head = last->next;
  if (!l->head)
    l->tail = NULL;
  l->len -= n;
  last->next = NULL;
  return first;
}

int websock__queue_init(websock__queue *q, websock__queue_hook on_nonempty,
                        websock__queue_hook on_empty, void *hook_arg) {
  q->list.head = q->list.tail = NULL;
  q->list.len = 0;
  q->waiters = 0;
  q->closed = 0;
  q->on_nonempty = on_nonempty;
  q->on_empty = on_empty;
  q->hook_arg = hook_arg;
  if (pthread_mutex_init(&q->mu, NULL))
    return -1;
  /* Timed waits measure against the monotonic clock, so a change of the
   * wall clock neither shortens nor stretches them. */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(&q->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (rc) {
    pthread_mutex_destroy(&q->mu);
    return -1;
  }
  return 0;
}

void websock__queue_destroy(websock__queue *q) {
  pthread_cond_destroy(&q->cv);
  pthread_mutex_destroy(&q->mu);
}

int websock__queue_push(websock__queue *q, websock__qnode *first,
                        websock__qnode *last) {
  size_t n = 1;
  for (websock__qnode *p = first; p != last; p = p->next)
    n++;
  pthread_mutex_lock(&q->mu);
  int was_empty = q->list.head == NULL;
  websock__qlist_push(&q->list, first, last, n);
  if (was_empty && q->on_nonempty)
    q->on_nonempty(q->hook_arg);
  if (q->waiters)
    pthread_cond_signal(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return was_empty;
}

static websock__qnode *queue_take_locked(websock__queue *q, size_t max) {
  websock__qnode *first = websock__qlist_take(&q->list, max);
  if (!q->list.head && q->on_empty && !q->closed)
    q->on_empty(q->hook_arg);
  /* Several waiters and more left: pass the wake-up on. */
  if (q->list.head && q->waiters)
    pthread_cond_signal(&q->cv);
  return first;
}

websock__qnode *websock__queue_take(websock__queue *q, size_t max) {
  pthread_mutex_lock(&q->mu);
  websock__qnode *r = queue_take_locked(q, max);
  pthread_mutex_unlock(&q->mu);
  return r;
}

websock__qnode *websock__queue_wait_take(websock__queue *q, int timeout_ms,
                                         size_t max) {
  struct timespec deadline;
  if (timeout_ms > 0) {
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&q->mu);
  while (!q->list.head && !q->closed && timeout_ms != 0) {
    q->waiters++;
    int rc = 0;
    if (timeout_ms < 0)
      pthread_cond_wait(&q->cv, &q->mu);
    else
      rc = pthread_cond_timedwait(&q->cv, &q->mu, &deadline);
    q->waiters--;
    if (rc == ETIMEDOUT)
      break;
  }
  websock__qnode *r = queue_take_locked(q, max);
  pthread_mutex_unlock(&q->mu);
  return r;
}

void websock__queue_close(websock__queue *q) {
  pthread_mutex_lock(&q->mu);
  q->closed = 1;
  if (q->on_nonempty)
    q->on_nonempty(q->hook_arg);
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}
