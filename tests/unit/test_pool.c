/* Unit tests for the job pool (core/sched/pool.c): get and release, growth
 * in chunks, the trim hysteresis (only jobs free for a whole period go,
 * half at a time, never below one chunk), retain_cap, the allocation
 * counter, the counts, running out of memory while growing, and concurrent
 * get/release. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#include "sched/job.h"
#include "split_helpers.h"
#include "util/alloc.h"

static void counts(websock__pool *p, size_t *total, size_t *in_use) {
  websock__pool_counts(p, total, in_use);
}

static size_t total_of(websock__pool *p) {
  size_t t, u;
  counts(p, &t, &u);
  return t;
}

static size_t in_use_of(websock__pool *p) {
  size_t t, u;
  counts(p, &t, &u);
  return u;
}

/* ---- get and release -------------------------------------------------- */

START_TEST(test_get_release) {
  websock__pool p;
  atomic_uint_fast64_t allocs = 0;
  ck_assert_int_eq(websock__pool_init(&p, 8, 4, &allocs), 0);
  ck_assert_uint_eq(total_of(&p), 8);
  ck_assert_uint_eq(in_use_of(&p), 0);
  /* The initial fill is neither a grow nor an event-path allocation. */
  ck_assert_uint_eq(atomic_load(&p.grows), 0);
  ck_assert_uint_eq(atomic_load(&allocs), 0);
  websock__job *j[8];
  for (int i = 0; i < 8; i++) {
    j[i] = websock__pool_get(&p);
    ck_assert_ptr_nonnull(j[i]);
    /* A fresh job: no kind, no client, an empty buffer with room for a
     * small message already reserved. */
    ck_assert_int_eq(j[i]->kind, 0);
    ck_assert_ptr_null(j[i]->client);
    ck_assert_ptr_null(j[i]->ptr);
    ck_assert_uint_eq(j[i]->buf.len, 0);
    ck_assert_uint_ge(j[i]->buf.cap, 256);
    ck_assert_ptr_eq(j[i]->pool, &p);
    for (int k = 0; k < i; k++)
      ck_assert_ptr_ne(j[i], j[k]);
    ck_assert_uint_eq(in_use_of(&p), (size_t)i + 1);
  }
  ck_assert_uint_eq(total_of(&p), 8);
  ck_assert_uint_eq(atomic_load(&p.grows), 0);
  ck_assert_uint_eq(atomic_load(&allocs), 0);
  /* A released job comes back with its fields reset. */
  j[3]->kind = WEBSOCK__JOB_EVENT;
  j[3]->ptr = &p;
  ck_assert_int_eq(websock__buf_append(&j[3]->buf, "payload", 7), 0);
  uint8_t *warm = j[3]->buf.data;
  websock__job_release(j[3]);
  ck_assert_uint_eq(in_use_of(&p), 7);
  /* LIFO: the job just released (its buffer warm) is the next one out. */
  websock__job *again = websock__pool_get(&p);
  ck_assert_ptr_eq(again, j[3]);
  ck_assert_int_eq(again->kind, 0);
  ck_assert_ptr_null(again->ptr);
  ck_assert_uint_eq(again->buf.len, 0);
  ck_assert_ptr_eq(again->buf.data, warm);
  for (int i = 0; i < 8; i++)
    websock__job_release(j[i]);
  ck_assert_uint_eq(in_use_of(&p), 0);
  ck_assert_uint_eq(total_of(&p), 8);
  websock__pool_destroy(&p);
}
END_TEST

/* ---- growth in chunks and the allocation counter ---------------------- */

START_TEST(test_growth) {
  websock__pool p;
  atomic_uint_fast64_t allocs = 0;
  ck_assert_int_eq(websock__pool_init(&p, 8, 4, &allocs), 0);
  websock__job *j[21];
  for (int i = 0; i < 21; i++) {
    j[i] = websock__pool_get(&p);
    ck_assert_ptr_nonnull(j[i]);
    /* 8 at first, then chunks of 4 as each runs out. */
    size_t want = i < 8 ? 8 : 8 + 4 * (size_t)((i - 8) / 4 + 1);
    ck_assert_uint_eq(total_of(&p), want);
    ck_assert_uint_eq(in_use_of(&p), (size_t)i + 1);
    ck_assert_uint_eq(atomic_load(&p.grows), (want - 8) / 4);
    /* Two allocations per new job (the job and its buffer). */
    ck_assert_uint_eq(atomic_load(&allocs), 2 * (want - 8));
  }
  ck_assert_uint_eq(total_of(&p), 24);
  for (int i = 0; i < 21; i++)
    websock__job_release(j[i]);
  /* Reuse allocates nothing. */
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 21; i++)
      j[i] = websock__pool_get(&p);
    for (int i = 0; i < 21; i++)
      websock__job_release(j[i]);
  }
  ck_assert_uint_eq(total_of(&p), 24);
  ck_assert_uint_eq(atomic_load(&p.grows), 4);
  ck_assert_uint_eq(atomic_load(&allocs), 32);
  websock__pool_destroy(&p);
}
END_TEST

/* No initial jobs and no counter: the first get grows by the default chunk
 * of 64 when the chunk given is 0. */
START_TEST(test_defaults) {
  websock__pool p;
  ck_assert_int_eq(websock__pool_init(&p, 0, 0, NULL), 0);
  ck_assert_uint_eq(total_of(&p), 0);
  websock__job *j = websock__pool_get(&p);
  ck_assert_ptr_nonnull(j);
  ck_assert_uint_eq(total_of(&p), 64);
  ck_assert_uint_eq(in_use_of(&p), 1);
  ck_assert_uint_eq(atomic_load(&p.grows), 1);
  websock__job_release(j);
  websock__pool_destroy(&p);
}
END_TEST

/* ---- trim hysteresis -------------------------------------------------- */

/* Takes |n| jobs and gives them back, so the free count dips by |n|. */
static void dip(websock__pool *p, size_t n) {
  websock__job **j = malloc(n * sizeof *j + 1);
  for (size_t i = 0; i < n; i++) {
    j[i] = websock__pool_get(p);
    ck_assert_ptr_nonnull(j[i]);
  }
  for (size_t i = 0; i < n; i++)
    websock__job_release(j[i]);
  free(j);
}

START_TEST(test_trim_hysteresis) {
  websock__pool p;
  ck_assert_int_eq(websock__pool_init(&p, 0, 4, NULL), 0);
  dip(&p, 40); /* every job was in use at some point of this period */
  ck_assert_uint_eq(total_of(&p), 40);
  websock__pool_trim(&p);
  ck_assert_uint_eq(total_of(&p), 40); /* none stayed free: none go */
  ck_assert_uint_eq(atomic_load(&p.shrinks), 0);
  /* A quiet period: all 40 stayed free; half of the 36 above one chunk
   * go. */
  websock__pool_trim(&p);
  ck_assert_uint_eq(total_of(&p), 22);
  ck_assert_uint_eq(atomic_load(&p.shrinks), 1);
  /* A period in which 12 of the 22 were taken: only the 10 that stayed
   * free count, 6 above one chunk, 3 go. */
  dip(&p, 12);
  websock__pool_trim(&p);
  ck_assert_uint_eq(total_of(&p), 19);
  ck_assert_uint_eq(atomic_load(&p.shrinks), 2);
  /* A period that used every job frees nothing, however many are free
   * at the moment of the trim. */
  dip(&p, 19);
  websock__pool_trim(&p);
  ck_assert_uint_eq(total_of(&p), 19);
  ck_assert_uint_eq(atomic_load(&p.shrinks), 2);
  /* Quiet periods: 19 -> 12 -> 8 -> 6 -> 5, then it stays above one chunk
   * for good. */
  static const size_t seq[] = {12, 8, 6, 5, 5, 5};
  for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
    websock__pool_trim(&p);
    ck_assert_uint_eq(total_of(&p), seq[i]);
    ck_assert_uint_ge(total_of(&p), 4);
  }
  ck_assert_uint_eq(atomic_load(&p.shrinks), 6); /* only trims that freed */
  ck_assert_uint_eq(in_use_of(&p), 0);
  websock__pool_destroy(&p);
}
END_TEST

/* Jobs in use are never trimmed, and a pool can shrink while some are out;
 * those come back and are reused normally. */
START_TEST(test_trim_keeps_jobs_in_use) {
  websock__pool p;
  ck_assert_int_eq(websock__pool_init(&p, 0, 8, NULL), 0);
  dip(&p, 64);
  websock__job *held[20];
  for (int i = 0; i < 20; i++)
    held[i] = websock__pool_get(&p);
  for (int i = 0; i < 30; i++) {
    websock__pool_trim(&p);
    size_t t, u;
    counts(&p, &t, &u);
    ck_assert_uint_eq(u, 20);
    ck_assert_uint_ge(t - u, 8); /* at least one chunk stays free */
  }
  ck_assert_uint_le(total_of(&p), 20 + 8 + 1);
  for (int i = 0; i < 20; i++) {
    held[i]->kind = WEBSOCK__JOB_EVENT;
    websock__job_release(held[i]);
  }
  ck_assert_uint_eq(in_use_of(&p), 0);
  websock__job *j = websock__pool_get(&p);
  ck_assert_ptr_eq(j, held[19]);
  ck_assert_int_eq(j->kind, 0);
  websock__job_release(j);
  websock__pool_destroy(&p);
}
END_TEST

/* ---- retain_cap ------------------------------------------------------- */

START_TEST(test_retain_cap) {
  websock__pool p;
  ck_assert_int_eq(websock__pool_init(&p, 2, 2, NULL), 0);
  ck_assert_uint_eq(p.retain_cap, 1u << 20);
  /* A buffer of exactly retain_cap is kept... */
  websock__job *j = websock__pool_get(&p);
  ck_assert_int_eq(websock__buf_reserve(&j->buf, 1u << 20), 1);
  ck_assert_uint_eq(j->buf.cap, 1u << 20);
  j->buf.len = 1000;
  websock__job_release(j);
  websock__job *k = websock__pool_get(&p);
  ck_assert_ptr_eq(k, j);
  ck_assert_uint_eq(k->buf.cap, 1u << 20);
  ck_assert_uint_eq(k->buf.len, 0);
  /* ... one past it is dropped, so a huge message does not pin memory. */
  ck_assert_int_eq(websock__buf_reserve(&k->buf, (1u << 20) + 1), 1);
  ck_assert_uint_gt(k->buf.cap, p.retain_cap);
  websock__job_release(k);
  k = websock__pool_get(&p);
  ck_assert_ptr_eq(k, j);
  ck_assert_ptr_null(k->buf.data);
  ck_assert_uint_eq(k->buf.cap, 0);
  ck_assert_uint_eq(k->buf.len, 0);
  /* The job still works: its buffer grows again on demand. */
  ck_assert_int_eq(websock__buf_append(&k->buf, "abc", 3), 1);
  websock__job_release(k);
  /* Small buffers stay whatever the caps say. */
  p.retain_cap = 100;
  k = websock__pool_get(&p);
  ck_assert_uint_eq(k->buf.cap, 256);
  websock__job_release(k);
  k = websock__pool_get(&p);
  ck_assert_uint_eq(k->buf.cap, 256);
  websock__job_release(k);
  websock__pool_destroy(&p);
}
END_TEST

/* Free jobs keep large buffers only up to the pool's budget, all
 * together: after a burst the rest is freed at once, not at the next
 * trims. */
START_TEST(test_retain_budget) {
  enum { N = 8 };
  websock__pool p;
  ck_assert_int_eq(websock__pool_init(&p, N, N, NULL), 0);
  ck_assert_uint_eq(p.retain_budget, 4u << 20);
  websock__job *j[N];
  for (int i = 0; i < N; i++) {
    j[i] = websock__pool_get(&p);
    ck_assert_int_eq(websock__buf_reserve(&j[i]->buf, 1u << 20), 1);
  }
  for (int i = 0; i < N; i++)
    websock__job_release(j[i]);
  ck_assert_uint_eq(p.retained_big, 4u << 20);
  int kept = 0;
  for (int i = 0; i < N; i++) {
    j[i] = websock__pool_get(&p);
    kept += j[i]->buf.cap == 1u << 20;
    ck_assert(j[i]->buf.cap == 1u << 20 || j[i]->buf.cap == 0);
  }
  ck_assert_int_eq(kept, 4);
  ck_assert_uint_eq(p.retained_big, 0);
  /* Jobs in use hold their buffers outside the budget; a release with
   * room keeps the buffer again. */
  for (int i = 0; i < N; i++)
    websock__job_release(j[i]);
  ck_assert_uint_eq(p.retained_big, 4u << 20);
  websock__pool_trim(&p);
  websock__pool_destroy(&p);
}
END_TEST

/* ---- out of memory while growing -------------------------------------- */

START_TEST(test_growth_failure) {
  websock__pool p;
  atomic_uint_fast64_t allocs = 0;
  ck_assert_int_eq(websock__pool_init(&p, 0, 4, &allocs), 0);
  /* The first job of the chunk cannot be made: get says so, nothing
   * changes. */
  websock__alloc_fail_at(1);
  ck_assert_ptr_null(websock__pool_get(&p));
  ck_assert_uint_eq(total_of(&p), 0);
  ck_assert_uint_eq(atomic_load(&allocs), 0);
  /* Its buffer cannot be made: the same (and the job is not leaked). */
  websock__alloc_fail_at(2);
  ck_assert_ptr_null(websock__pool_get(&p));
  ck_assert_uint_eq(total_of(&p), 0);
  ck_assert_uint_eq(atomic_load(&allocs), 0);
  ck_assert_uint_eq(atomic_load(&p.grows), 0);
  /* A later job of the chunk fails: the pool keeps the jobs it made. */
  websock__alloc_fail_at(5);
  websock__job *a = websock__pool_get(&p);
  ck_assert_ptr_nonnull(a);
  ck_assert_uint_eq(total_of(&p), 2);
  ck_assert_uint_eq(in_use_of(&p), 1);
  ck_assert_uint_eq(atomic_load(&allocs), 4);
  websock__job *b = websock__pool_get(&p);
  ck_assert_ptr_nonnull(b);
  ck_assert_uint_eq(total_of(&p), 2);
  /* Memory back: the next get grows a whole chunk again. */
  websock__alloc_fail_at(0);
  websock__job *c = websock__pool_get(&p);
  ck_assert_ptr_nonnull(c);
  ck_assert_uint_eq(total_of(&p), 6);
  websock__job_release(a);
  websock__job_release(b);
  websock__job_release(c);
  ck_assert_uint_eq(in_use_of(&p), 0);
  websock__pool_destroy(&p);
}
END_TEST

/* ---- the client reference --------------------------------------------- */

static int destroyed;

static void fake_destroy(websock__client *c) {
  destroyed++;
  free(c);
}

START_TEST(test_release_drops_client) {
  websock__pool p;
  ck_assert_int_eq(websock__pool_init(&p, 4, 4, NULL), 0);
  websock__client *c = calloc(1, sizeof *c);
  c->id = 42;
  c->destroy = fake_destroy;
  atomic_init(&c->refs, 1);
  destroyed = 0;
  websock__job *a = websock__pool_get(&p), *b = websock__pool_get(&p);
  websock__client_ref(c);
  a->client = c;
  websock__client_ref(c);
  b->client = c;
  ck_assert_int_eq(atomic_load(&c->refs), 3);
  websock__job_release(a);
  ck_assert_ptr_null(a->client);
  ck_assert_int_eq(atomic_load(&c->refs), 2);
  websock__client_unref(c); /* the owner lets go; b still holds it */
  ck_assert_int_eq(destroyed, 0);
  ck_assert_int_eq(atomic_load(&c->refs), 1);
  websock__job_release(b); /* the last reference frees it */
  ck_assert_int_eq(destroyed, 1);
  ck_assert_uint_eq(in_use_of(&p), 0);
  websock__pool_destroy(&p);
}
END_TEST

/* ---- shared blobs ----------------------------------------------------- */

START_TEST(test_blob_unref) {
  websock__blob *b = malloc(sizeof *b + 4);
  atomic_init(&b->refs, 3);
  b->len = 4;
  memcpy(b->data, "abcd", 4);
  websock__blob_unref(b);
  websock__blob_unref(b);
  ck_assert_int_eq(atomic_load(&b->refs), 1);
  ck_assert_mem_eq(b->data, "abcd", 4); /* still alive for the last user */
  websock__blob_unref(b);               /* freed: ASan checks no leak */
}
END_TEST

/* ---- concurrency ------------------------------------------------------ */

typedef struct churn {
  websock__pool *p;
  unsigned seed;
} churn;

static void *churn_run(void *arg) {
  churn *c = arg;
  test_rng rng;
  test_rng_seed(&rng, c->seed);
  websock__job *held[32];
  size_t n = 0;
  for (int i = 0; i < 20000; i++) {
    if (n < 32 && (n == 0 || test_rng_next(&rng) % 2)) {
      websock__job *j = websock__pool_get(c->p);
      if (!j)
        return (void *)1;
      if (j->kind != 0 || j->buf.len != 0)
        return (void *)2;
      j->kind = WEBSOCK__JOB_EVENT;
      j->buf.len = 1;
      held[n++] = j;
    } else {
      websock__job_release(held[--n]);
    }
    if (i % 1000 == 0)
      websock__pool_trim(c->p);
  }
  while (n)
    websock__job_release(held[--n]);
  return NULL;
}

START_TEST(test_concurrent) {
  websock__pool p;
  atomic_uint_fast64_t allocs = 0;
  ck_assert_int_eq(websock__pool_init(&p, 16, 16, &allocs), 0);
  pthread_t th[4];
  churn c[4];
  for (int i = 0; i < 4; i++) {
    c[i].p = &p;
    c[i].seed = (unsigned)i + 1;
    ck_assert_int_eq(pthread_create(&th[i], NULL, churn_run, &c[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(th[i], &r);
    ck_assert_ptr_null(r);
  }
  size_t t, u;
  counts(&p, &t, &u);
  ck_assert_uint_eq(u, 0);
  ck_assert_uint_le(t, 16 + 4 * 32 + 16);
  ck_assert_uint_eq(atomic_load(&allocs) % 2, 0);
  websock__pool_destroy(&p);
}
END_TEST

static Suite *pool_suite(void) {
  Suite *s = suite_create("pool");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_get_release);
  tcase_add_test(tc, test_growth);
  tcase_add_test(tc, test_defaults);
  tcase_add_test(tc, test_trim_hysteresis);
  tcase_add_test(tc, test_trim_keeps_jobs_in_use);
  tcase_add_test(tc, test_retain_cap);
  tcase_add_test(tc, test_retain_budget);
  tcase_add_test(tc, test_growth_failure);
  tcase_add_test(tc, test_release_drops_client);
  tcase_add_test(tc, test_blob_unref);
  tcase_add_test(tc, test_concurrent);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(pool_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
