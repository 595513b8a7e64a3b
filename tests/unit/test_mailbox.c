/* Unit tests for the lock-free mailbox (core/util/mailbox.c): posting
 * order, one wake-up per batch that found the box empty, and several
 * threads posting while the owner takes: every node arrives once, each
 * poster's nodes in its order, and no wake-up is missed (the owner sleeps
 * on a counter the wake hook raises, as a loop sleeps on its eventfd). */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "util/mailbox.h"

typedef struct item {
  websock__qnode node; /* first: a node is its item */
  unsigned poster, seq;
} item;

static void count_wake(void *arg) {
  atomic_fetch_add((atomic_uint *)arg, 1);
}

START_TEST(test_order_and_wakes) {
  atomic_uint wakes = 0;
  websock__mailbox m;
  websock__mailbox_init(&m, count_wake, &wakes);
  ck_assert_ptr_null(websock__mailbox_take(&m));
  item it[5];
  for (unsigned i = 0; i < 5; i++) {
    it[i].seq = i;
    websock__mailbox_post(&m, &it[i].node);
  }
  ck_assert_uint_eq(atomic_load(&wakes), 1); /* only the first found it empty */
  websock__qnode *n = websock__mailbox_take(&m);
  for (unsigned i = 0; i < 5; i++, n = n->next) {
    ck_assert_ptr_nonnull(n);
    ck_assert_uint_eq(((item *)(void *)n)->seq, i);
  }
  ck_assert_ptr_null(n);
  ck_assert_ptr_null(websock__mailbox_take(&m));
  websock__mailbox_post(&m, &it[0].node); /* empty again: wakes again */
  ck_assert_uint_eq(atomic_load(&wakes), 2);
  ck_assert_ptr_eq(websock__mailbox_take(&m), &it[0].node);
  ck_assert_ptr_null(it[0].node.next);
}
END_TEST

#define POSTERS 4
#define PER_POSTER 100000

typedef struct shared {
  websock__mailbox box;
  pthread_mutex_t mu; /* the owner's "eventfd": a counter it sleeps on */
  pthread_cond_t cv;
  unsigned wakes;
  item *items;
} shared;

static void wake_owner(void *arg) {
  shared *sh = arg;
  pthread_mutex_lock(&sh->mu);
  sh->wakes++;
  pthread_cond_signal(&sh->cv);
  pthread_mutex_unlock(&sh->mu);
}

typedef struct poster_arg {
  shared *sh;
  unsigned index;
} poster_arg;

static void *poster(void *arg) {
  poster_arg *pa = arg;
  item *mine = pa->sh->items + (size_t)pa->index * PER_POSTER;
  for (unsigned i = 0; i < PER_POSTER; i++) {
    mine[i].poster = pa->index;
    mine[i].seq = i;
    websock__mailbox_post(&pa->sh->box, &mine[i].node);
  }
  return NULL;
}

START_TEST(test_concurrent_posters) {
  shared sh;
  pthread_mutex_init(&sh.mu, NULL);
  pthread_cond_init(&sh.cv, NULL);
  sh.wakes = 0;
  sh.items = calloc((size_t)POSTERS * PER_POSTER, sizeof(item));
  ck_assert_ptr_nonnull(sh.items);
  websock__mailbox_init(&sh.box, wake_owner, &sh);
  pthread_t t[POSTERS];
  poster_arg pa[POSTERS];
  for (unsigned i = 0; i < POSTERS; i++) {
    pa[i] = (poster_arg){&sh, i};
    ck_assert_int_eq(pthread_create(&t[i], NULL, poster, &pa[i]), 0);
  }
  unsigned next[POSTERS] = {0};
  size_t got = 0;
  while (got < (size_t)POSTERS * PER_POSTER) {
    /* Sleep until woken, as a loop does: a missed wake-up hangs here
     * (and the test's timeout fails it). */
    pthread_mutex_lock(&sh.mu);
    while (!sh.wakes)
      pthread_cond_wait(&sh.cv, &sh.mu);
    sh.wakes = 0;
    pthread_mutex_unlock(&sh.mu);
    for (websock__qnode *n = websock__mailbox_take(&sh.box); n;) {
      websock__qnode *nx = n->next;
      item *it = (item *)(void *)n;
      ck_assert_uint_lt(it->poster, POSTERS);
      ck_assert_uint_eq(it->seq, next[it->poster]); /* in its order, once */
      next[it->poster]++;
      got++;
      n = nx;
    }
  }
  for (unsigned i = 0; i < POSTERS; i++) {
    pthread_join(t[i], NULL);
    ck_assert_uint_eq(next[i], PER_POSTER);
  }
  ck_assert_ptr_null(websock__mailbox_take(&sh.box));
  free(sh.items);
  pthread_cond_destroy(&sh.cv);
  pthread_mutex_destroy(&sh.mu);
}
END_TEST

static Suite *mailbox_suite(void) {
  Suite *s = suite_create("mailbox");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_order_and_wakes);
  tcase_add_test(tc, test_concurrent_posters);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(mailbox_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
