/* Pool of job wrappers: grows in chunks under load, trims with hysteresis
 * when demand falls. Layer: sched. */
#include "job.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

/* Initial payload room of a job: covers small messages and control frames. */
#define POOL_JOB_BUF 256

/* The next job of a free list (linked through the queue node). */
static websock__job *pool_next(websock__job *j) {
  return j->node.next ? websock__job_of(j->node.next) : NULL;
}

static int pool_grow_locked(websock__pool *p) {
  for (size_t i = 0; i < p->chunk; i++) {
    websock__job *j = websock__calloc(1, sizeof *j);
    if (!j)
      return i ? 0 : -1;
    /* Give each job a small buffer now, so a job deep in the free list that
     * is first used at a busier moment does not allocate then. */
    if (websock__buf_reserve(&j->buf, POOL_JOB_BUF) < 0) {
      websock__free(j);
      return i ? 0 : -1;
    }
    j->pool = p;
    j->node.next = p->free_list ? &p->free_list->node : NULL;
    p->free_list = j;
    p->nfree++;
    p->total++;
    if (p->allocs) {
      websock__count_alloc(p->allocs);
      websock__count_alloc(p->allocs);
    }
  }
  atomic_fetch_add_explicit(&p->grows, 1, memory_order_relaxed);
  return 0;
}

int websock__pool_init(websock__pool *p, size_t initial, size_t chunk,
                       atomic_uint_fast64_t *alloc_counter) {
  memset(p, 0, sizeof *p);
  if (pthread_mutex_init(&p->mu, NULL))
    return -1;
  p->chunk = chunk ? chunk : 64;
  p->retain_cap = 1u << 20;
  /* Enough for dozens of 64 KiB messages in flight, a few MiB at most. */
  p->retain_budget = 4u << 20;
  size_t saved = p->chunk;
  p->chunk = initial;
  int r = initial ? pool_grow_locked(p) : 0;
  p->chunk = saved;
  atomic_store(&p->grows, 0); /* the initial fill is not a grow */
  p->allocs = alloc_counter;
  p->low_water = p->nfree;
  return r;
}

void websock__pool_destroy(websock__pool *p) {
  websock__job *j = p->free_list;
  while (j) {
    websock__job *n = pool_next(j);
    websock__buf_free(&j->buf);
    websock__free(j);
    j = n;
  }
  p->free_list = NULL;
  pthread_mutex_destroy(&p->mu);
}

websock__job *websock__pool_get(websock__pool *p) {
  pthread_mutex_lock(&p->mu);
  if (!p->free_list && pool_grow_locked(p) < 0) {
    pthread_mutex_unlock(&p->mu);
    return NULL;
  }
  websock__job *j = p->free_list;
  p->free_list = pool_next(j);
  p->nfree--;
  if (j->buf.cap > WEBSOCK__POOL_SMALL_BUF)
    p->retained_big -= j->buf.cap;
  if (p->nfree < p->low_water)
    p->low_water = p->nfree;
  pthread_mutex_unlock(&p->mu);
  j->node.next = NULL;
  return j;
}

void websock__job_release(websock__job *j) {
  if (j->client) {
    websock__client_unref(j->client);
    j->client = NULL;
  }
  websock__pool *p = j->pool;
  j->buf.len = 0;
  j->kind = 0;
  j->code = j->arg = 0;
  j->ptr = NULL;
  websock__buf drop = {0};
  size_t cap = j->buf.cap;
  pthread_mutex_lock(&p->mu);
  if (cap > WEBSOCK__POOL_SMALL_BUF) {
    if (cap <= p->retain_cap && p->retained_big + cap <= p->retain_budget)
      p->retained_big += cap;
    else
      websock__buf_swap(&drop, &j->buf);
  }
  j->node.next = p->free_list ? &p->free_list->node : NULL;
  p->free_list = j;
  p->nfree++;
  pthread_mutex_unlock(&p->mu);
  websock__buf_free(&drop);
}

void websock__pool_trim(websock__pool *p) {
  websock__job *victims = NULL;
  pthread_mutex_lock(&p->mu);
  /* Jobs that stayed free for the whole period were surplus; give back half
   * of them (never below one chunk) so a load that comes back does not make
   * the pool thrash. */
  size_t surplus = p->low_water > p->chunk ? p->low_water - p->chunk : 0;
  size_t n = surplus / 2;
  for (size_t i = 0; i < n && p->free_list; i++) {
    websock__job *j = p->free_list;
    p->free_list = pool_next(j);
    if (j->buf.cap > WEBSOCK__POOL_SMALL_BUF)
      p->retained_big -= j->buf.cap;
    j->node.next = victims ? &victims->node : NULL;
    victims = j;
    p->nfree--;
    p->total--;
  }
  p->low_water = p->nfree;
  pthread_mutex_unlock(&p->mu);
  if (n)
    atomic_fetch_add_explicit(&p->shrinks, 1, memory_order_relaxed);
  while (victims) {
    websock__job *nx = pool_next(victims);
    websock__buf_free(&victims->buf);
    websock__free(victims);
    victims = nx;
  }
}

void websock__pool_counts(websock__pool *p, size_t *total, size_t *in_use) {
  pthread_mutex_lock(&p->mu);
  *total = p->total;
  *in_use = p->total - p->nfree;
  pthread_mutex_unlock(&p->mu);
}

void websock__blob_unref(websock__blob *b) {
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
    websock__free(b);
}
