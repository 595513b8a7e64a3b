/* The topic set of a loop (core/net/topic.h) on its own: joins, leaves,
 * an owner leaving everything, names with NUL bytes, empty topics freed,
 * the counts the stats read, a random walk checked against a plain
 * matrix, and the sizes the server must handle (100,000 members in one
 * topic, one owner in 1,000 topics) in bounded time. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/topic.h"

/* An owner: what a connection is to the set. */
typedef struct owner {
  websock__tsub *head;
  int index;
} owner;

static size_t count_list(const websock__tsub *s, int by_topic) {
  size_t n = 0;
  for (; s; s = by_topic ? s->tnext : s->onext)
    n++;
  return n;
}

static size_t ntopics(websock__topics *t) {
  return atomic_load(&t->ntopics);
}

static size_t nsubs(websock__topics *t) {
  return atomic_load(&t->nsubs);
}

START_TEST(join_leave) {
  websock__topics t;
  websock__topics_init(&t);
  owner a = {0}, b = {0};
  ck_assert_ptr_null(websock__topics_find(&t, "x", 1)); /* no maps yet */
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, "news", 4), 1);
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, "news", 4), 0);
  ck_assert_int_eq(websock__topics_join(&t, &b.head, &b, "news", 4), 1);
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, "sport", 5), 1);
  ck_assert_uint_eq(ntopics(&t), 2);
  ck_assert_uint_eq(nsubs(&t), 3);
  websock__topic *news = websock__topics_find(&t, "news", 4);
  ck_assert_ptr_nonnull(news);
  ck_assert_uint_eq(news->nmembers, 2);
  ck_assert_uint_eq(count_list(news->members, 1), 2);
  ck_assert_uint_eq(count_list(a.head, 0), 2);
  ck_assert_ptr_null(websock__topics_find(&t, "new", 3));
  ck_assert_ptr_null(websock__topics_find(&t, "newsy", 5));
  /* Leaving what one is not in changes nothing. */
  ck_assert_int_eq(websock__topics_leave(&t, &b.head, &b, "sport", 5), 0);
  ck_assert_int_eq(websock__topics_leave(&t, &b.head, &b, "none", 4), 0);
  ck_assert_int_eq(websock__topics_leave(&t, &a.head, &a, "news", 4), 1);
  ck_assert_int_eq(websock__topics_leave(&t, &a.head, &a, "news", 4), 0);
  ck_assert_uint_eq(news->nmembers, 1);
  ck_assert_ptr_eq(news->members->owner, &b);
  /* The last member gone, the topic is gone. */
  ck_assert_int_eq(websock__topics_leave(&t, &b.head, &b, "news", 4), 1);
  ck_assert_ptr_null(websock__topics_find(&t, "news", 4));
  ck_assert_ptr_null(b.head);
  ck_assert_uint_eq(ntopics(&t), 1);
  ck_assert_uint_eq(nsubs(&t), 1);
  websock__topics_leave_all(&t, &a.head);
  ck_assert_ptr_null(a.head);
  ck_assert_uint_eq(ntopics(&t), 0);
  ck_assert_uint_eq(nsubs(&t), 0);
  websock__topics_leave_all(&t, &a.head); /* nothing left: a no-op */
  websock__topics_free(&t);
}
END_TEST

START_TEST(binary_names) {
  websock__topics t;
  websock__topics_init(&t);
  owner a = {0};
  uint8_t every[WEBSOCK__TOPIC_MAX];
  for (int i = 0; i < WEBSOCK__TOPIC_MAX; i++)
    every[i] = (uint8_t)i;
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, "a\0b", 3), 1);
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, "a\0c", 3), 1);
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, "a", 1), 1);
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, "\0", 1), 1);
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, "\0\0", 2), 1);
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, every, 255), 1);
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, every, 254), 1);
  ck_assert_uint_eq(ntopics(&t), 7);
  websock__topic *tp = websock__topics_find(&t, "a\0c", 3);
  ck_assert_ptr_nonnull(tp);
  ck_assert_uint_eq(tp->len, 3);
  ck_assert_mem_eq(tp->name, "a\0c", 3);
  ck_assert_ptr_null(websock__topics_find(&t, "a\0", 2));
  ck_assert_ptr_null(websock__topics_find(&t, every, 0));
  ck_assert_ptr_null(websock__topics_find(&t, every, 256));
  /* Out of range is refused, never stored. */
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, every, 0), -1);
  ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, every, 256), -1);
  websock__topics_leave_all(&t, &a.head);
  ck_assert_uint_eq(ntopics(&t), 0);
  websock__topics_free(&t);
}
END_TEST

/* A random walk of joins, leaves and owners leaving everything, checked
 * after every step against a matrix of who is in what. */
START_TEST(random_walk) {
  enum { OWNERS = 40, TOPICS = 30, STEPS = 40000 };
  websock__topics t;
  websock__topics_init(&t);
  owner o[OWNERS];
  memset(o, 0, sizeof o);
  static uint8_t in[OWNERS][TOPICS];
  memset(in, 0, sizeof in);
  uint64_t s = 88172645463325252ull;
  for (int step = 0; step < STEPS; step++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    int w = (int)(s % OWNERS), k = (int)((s >> 8) % TOPICS);
    unsigned op = (unsigned)((s >> 16) % 100);
    char name[8];
    int nl = snprintf(name, sizeof name, "t%d", k);
    if (op < 55) {
      int r = websock__topics_join(&t, &o[w].head, &o[w], name, (size_t)nl);
      ck_assert_int_eq(r, !in[w][k]);
      in[w][k] = 1;
    } else if (op < 98) {
      int r = websock__topics_leave(&t, &o[w].head, &o[w], name, (size_t)nl);
      ck_assert_int_eq(r, in[w][k]);
      in[w][k] = 0;
    } else {
      websock__topics_leave_all(&t, &o[w].head);
      memset(in[w], 0, sizeof in[w]);
    }
    if (step % 97 == 0 || step == STEPS - 1) {
      size_t want_subs = 0, want_topics = 0;
      for (int kk = 0; kk < TOPICS; kk++) {
        size_t members = 0;
        for (int ww = 0; ww < OWNERS; ww++)
          members += in[ww][kk];
        nl = snprintf(name, sizeof name, "t%d", kk);
        websock__topic *tp = websock__topics_find(&t, name, (size_t)nl);
        if (members) {
          ck_assert_ptr_nonnull(tp);
          ck_assert_uint_eq(tp->nmembers, members);
          ck_assert_uint_eq(count_list(tp->members, 1), members);
          for (websock__tsub *m = tp->members; m; m = m->tnext)
            ck_assert(in[((owner *)m->owner) - o][kk]);
          want_topics++;
        } else {
          ck_assert_ptr_null(tp);
        }
        want_subs += members;
      }
      for (int ww = 0; ww < OWNERS; ww++) {
        size_t mine = 0;
        for (int kk = 0; kk < TOPICS; kk++)
          mine += in[ww][kk];
        ck_assert_uint_eq(count_list(o[ww].head, 0), mine);
      }
      ck_assert_uint_eq(ntopics(&t), want_topics);
      ck_assert_uint_eq(nsubs(&t), want_subs);
    }
  }
  /* What is left is freed with the set (ASan checks). */
  websock__topics_free(&t);
}
END_TEST

static double secs_since(const struct timespec *a) {
  struct timespec b;
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (double)(b.tv_sec - a->tv_sec) +
         (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/* 100,000 members of one topic: every join and leave O(1) (quadratic
 * behaviour would take minutes). */
START_TEST(big_topic) {
  enum { N = 100000 };
  websock__topics t;
  websock__topics_init(&t);
  owner *o = calloc(N, sizeof *o);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(websock__topics_join(&t, &o[i].head, &o[i], "all", 3), 1);
  for (int i = 0; i < N; i++) /* duplicates found at once */
    ck_assert_int_eq(websock__topics_join(&t, &o[i].head, &o[i], "all", 3), 0);
  websock__topic *tp = websock__topics_find(&t, "all", 3);
  ck_assert_uint_eq(tp->nmembers, N);
  size_t walked = 0;
  for (websock__tsub *m = tp->members; m; m = m->tnext)
    walked++;
  ck_assert_uint_eq(walked, N);
  for (int i = 0; i < N; i += 2)
    ck_assert_int_eq(websock__topics_leave(&t, &o[i].head, &o[i], "all", 3), 1);
  for (int i = 1; i < N; i += 2)
    websock__topics_leave_all(&t, &o[i].head);
  ck_assert_ptr_null(websock__topics_find(&t, "all", 3));
  double el = secs_since(&t0);
  fprintf(stderr,
          "big_topic: 100,000 joins, 100,000 duplicate joins, "
          "100,000 leaves: %.1f ms\n",
          el * 1e3);
  ck_assert(el < 30.0);
  free(o);
  websock__topics_free(&t);
}
END_TEST

/* One owner in 1,000 topics (and others in some of them). */
START_TEST(many_topics) {
  enum { T = 1000 };
  websock__topics t;
  websock__topics_init(&t);
  owner a = {0}, b = {0};
  char name[16];
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int round = 0; round < 100; round++) {
    for (int i = 0; i < T; i++) {
      int n = snprintf(name, sizeof name, "topic-%d", i);
      ck_assert_int_eq(websock__topics_join(&t, &a.head, &a, name, (size_t)n),
                       1);
      if (round == 0 && i % 3 == 0)
        websock__topics_join(&t, &b.head, &b, name, (size_t)n);
    }
    ck_assert_uint_eq(count_list(a.head, 0), T);
    for (int i = 0; i < T; i += 2) {
      int n = snprintf(name, sizeof name, "topic-%d", i);
      ck_assert_int_eq(websock__topics_leave(&t, &a.head, &a, name, (size_t)n),
                       1);
    }
    websock__topics_leave_all(&t, &a.head);
    ck_assert_uint_eq(ntopics(&t), (T + 2) / 3); /* b's are left */
  }
  double el = secs_since(&t0);
  fprintf(stderr,
          "many_topics: 100 x (1,000 joins, 500 leaves, leave_all "
          "of 500): %.1f ms\n",
          el * 1e3);
  ck_assert(el < 30.0);
  websock__topics_leave_all(&t, &b.head);
  ck_assert_uint_eq(ntopics(&t), 0);
  websock__topics_free(&t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("topic");
  TCase *tc = tcase_create("topic");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, join_leave);
  tcase_add_test(tc, binary_names);
  tcase_add_test(tc, random_walk);
  tcase_add_test(tc, big_topic);
  tcase_add_test(tc, many_topics);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
