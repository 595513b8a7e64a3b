/* Pool of job wrappers: grows in chunks under load, trims with hysteresis
 * when demand falls. Layer: sched. */
#include "job.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

/* Initial payload room of a job: covers small messages and control frames. */
#define POOL_JOB_BUF 256

/* Jobs a thread's cache holds at most, and moves at a time. */
#define POOL_TC_MAX 32
#define POOL_TC_BATCH 16

/* The calling thread's cache, if it attached one. */
static _Thread_local websock__pool_cache *pool_tc;

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

/* A job leaves the pool's free list (the lock held). */
static websock__job *pool_take_locked(websock__pool *p) {
  websock__job *j = p->free_list;
  p->free_list = pool_next(j);
  p->nfree--;
  if (j->buf.cap > WEBSOCK__POOL_SMALL_BUF)
    p->retained_big -= j->buf.cap;
  return j;
}

/* Fills an empty cache with a batch from the pool (growing it if need
 * be). A job that keeps a large buffer ends the batch, so a cache never
 * sits on more than one such buffer outside the pool's budget. */
static void pool_refill(websock__pool_cache *tc) {
  websock__pool *p = tc->pool;
  size_t n = 0;
  pthread_mutex_lock(&p->mu);
  if (!p->free_list)
    pool_grow_locked(p);
  while (p->free_list && n < POOL_TC_BATCH) {
    int big = p->free_list->buf.cap > WEBSOCK__POOL_SMALL_BUF;
    if (big && n)
      break;
    websock__job *j = pool_take_locked(p);
    j->node.next = tc->head ? &tc->head->node : NULL;
    tc->head = j;
    n++;
    if (big)
      break;
  }
  if (p->nfree < p->low_water)
    p->low_water = p->nfree;
  /* Under the lock, so websock__pool_counts never counts a job twice. */
  atomic_store_explicit(&tc->n, n, memory_order_relaxed);
  pthread_mutex_unlock(&p->mu);
}

/* Moves |count| jobs of the cache back to the pool. */
static void pool_spill(websock__pool_cache *tc, size_t count) {
  websock__pool *p = tc->pool;
  size_t n = atomic_load_explicit(&tc->n, memory_order_relaxed);
  pthread_mutex_lock(&p->mu);
  while (count-- && tc->head) {
    websock__job *j = tc->head;
    tc->head = pool_next(j);
    j->node.next = p->free_list ? &p->free_list->node : NULL;
    p->free_list = j;
    p->nfree++;
    n--;
  }
  atomic_store_explicit(&tc->n, n, memory_order_relaxed);
  pthread_mutex_unlock(&p->mu);
}

void websock__pool_attach(websock__pool *p, websock__pool_cache *tc) {
  tc->pool = p;
  tc->head = NULL;
  atomic_init(&tc->n, 0);
  pthread_mutex_lock(&p->mu);
  tc->next = p->caches;
  p->caches = tc;
  pthread_mutex_unlock(&p->mu);
  pool_tc = tc;
}

void websock__pool_detach(websock__pool_cache *tc) {
  websock__pool *p = tc->pool;
  pool_spill(tc, SIZE_MAX);
  pthread_mutex_lock(&p->mu);
  for (websock__pool_cache **pp = &p->caches; *pp; pp = &(*pp)->next) {
    if (*pp == tc) {
      *pp = tc->next;
      break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  if (pool_tc == tc)
    pool_tc = NULL;
}

websock__job *websock__pool_get(websock__pool *p) {
  websock__pool_cache *tc = pool_tc;
  if (tc && tc->pool == p) {
    if (!tc->head)
      pool_refill(tc);
    websock__job *j = tc->head;
    if (j) {
      tc->head = pool_next(j);
      atomic_store_explicit(
          &tc->n, atomic_load_explicit(&tc->n, memory_order_relaxed) - 1,
          memory_order_relaxed);
      j->node.next = NULL;
      return j;
    }
    return NULL; /* out of memory */
  }
  pthread_mutex_lock(&p->mu);
  if (!p->free_list && pool_grow_locked(p) < 0) {
    pthread_mutex_unlock(&p->mu);
    return NULL;
  }
  websock__job *j = pool_take_locked(p);
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
  websock__pool_cache *tc = pool_tc;
  if (tc && tc->pool == p && cap <= WEBSOCK__POOL_SMALL_BUF) {
    size_t n = atomic_load_explicit(&tc->n, memory_order_relaxed);
    if (n >= POOL_TC_MAX) {
      pool_spill(tc, POOL_TC_BATCH);
      n -= POOL_TC_BATCH;
    }
    j->node.next = tc->head ? &tc->head->node : NULL;
    tc->head = j;
    atomic_store_explicit(&tc->n, n + 1, memory_order_relaxed);
    return;
  }
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
  size_t cached = 0; /* free, in the threads' caches */
  for (websock__pool_cache *tc = p->caches; tc; tc = tc->next)
    cached += atomic_load_explicit(&tc->n, memory_order_relaxed);
  *total = p->total;
  /* A cache's count may lag a job or two behind its owner. */
  *in_use = p->nfree + cached < p->total ? p->total - p->nfree - cached : 0;
  pthread_mutex_unlock(&p->mu);
}

void websock__blob_unref(websock__blob *b) {
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
    websock__free(b);
}
