/* Unit tests for the registry of open connections (core/sched/registry.c):
 * add/get/remove by id, tags set, replaced and removed, TAG_TAKEN,
 * NO_SUCH_CLIENT for unknown, removed and closing clients, growth of both
 * tables, referenced lookups that keep a removed client alive, copy_tag's
 * size check, running out of memory, and lookups racing adds and
 * removes. */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/job.h"
#include "sched/registry.h"
#include "split_helpers.h"
#include "util/alloc.h"

/* The few fields the test reads: the maps' counts and sizes, and the
 * client's flags. */
#define REG_NIDS(r) ((r)->ids.count)
#define REG_ID_BUCKETS(r) ((r)->ids.nbuckets)
#define REG_NTAGS(r) ((r)->tags.count)
#define REG_TAG_BUCKETS(r) ((r)->tags.nbuckets)
#define CLIENT_REGISTERED(c)                                                   \
  websock__client_has((c), WEBSOCK__CLIENT_REGISTERED)
#define CLIENT_HAS_TAG(c) websock__client_has((c), WEBSOCK__CLIENT_HAS_TAG)
#define CLIENT_SET_CLOSING(c) websock__client_set((c), WEBSOCK__CLIENT_CLOSING)
#define CLIENT_CLEAR_CLOSING(c)                                                \
  websock__client_clear((c), WEBSOCK__CLIENT_CLOSING)

/* ---- a stand-in for the I/O layer's connection ------------------------ */

typedef struct fake {
  websock__client base; /* first, as the I/O layer embeds it */
  atomic_int *destroyed;
} fake;

static atomic_int destroyed;

/* Frees the client and its tag, as the real connection does: the registry
 * never owns the client's copy of its tag. */
static void fake_destroy(websock__client *c) {
  fake *f = (fake *)c;
  atomic_fetch_add(f->destroyed, 1);
  websock__free(c->tag);
  free(f);
}

static websock__client *fake_new(uint64_t id) {
  fake *f = calloc(1, sizeof *f);
  ck_assert_ptr_nonnull(f);
  f->base.id = id;
  f->base.destroy = fake_destroy;
  atomic_init(&f->base.refs, 1); /* the owner's reference */
  f->destroyed = &destroyed;
  return &f->base;
}

static int refs(websock__client *c) {
  return atomic_load(&c->refs);
}

/* Looks |id| up and drops the reference at once; returns what was found. */
static websock__client *peek(websock__registry *r, uint64_t id) {
  websock__client *c = websock__registry_get(r, id);
  if (c)
    websock__client_unref(c);
  return c;
}

static websock__client *peek_tag(websock__registry *r, const char *tag) {
  websock__client *c = websock__registry_get_tag(r, tag);
  if (c)
    websock__client_unref(c);
  return c;
}

/* ---- by id ------------------------------------------------------------ */

START_TEST(test_add_get_remove) {
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  atomic_store(&destroyed, 0);
  websock__client *a = fake_new(1), *b = fake_new(2);
  ck_assert_ptr_null(peek(&r, 1));
  websock__registry_add(&r, a);
  websock__registry_add(&r, b);
  ck_assert_uint_eq(REG_NIDS(&r), 2);
  ck_assert_int_eq(CLIENT_REGISTERED(a), 1);
  /* get returns the very client, with a reference taken. */
  websock__client *g = websock__registry_get(&r, 1);
  ck_assert_ptr_eq(g, a);
  ck_assert_int_eq(refs(a), 2);
  websock__client_unref(g);
  ck_assert_int_eq(refs(a), 1);
  ck_assert_ptr_eq(peek(&r, 2), b);
  ck_assert_ptr_null(peek(&r, 3));
  ck_assert_ptr_null(peek(&r, 0));
  websock__registry_remove(&r, a);
  ck_assert_int_eq(CLIENT_REGISTERED(a), 0);
  ck_assert_uint_eq(REG_NIDS(&r), 1);
  ck_assert_ptr_null(peek(&r, 1));
  ck_assert_ptr_eq(peek(&r, 2), b);
  /* Removing twice is harmless and counts once. */
  websock__registry_remove(&r, a);
  ck_assert_uint_eq(REG_NIDS(&r), 1);
  ck_assert_ptr_eq(peek(&r, 2), b);
  websock__registry_remove(&r, b);
  ck_assert_uint_eq(REG_NIDS(&r), 0);
  ck_assert_ptr_null(peek(&r, 2));
  /* The registry never dropped the owner's reference. */
  ck_assert_int_eq(refs(a), 1);
  ck_assert_int_eq(refs(b), 1);
  ck_assert_int_eq(atomic_load(&destroyed), 0);
  websock__client_unref(a);
  websock__client_unref(b);
  ck_assert_int_eq(atomic_load(&destroyed), 2);
  websock__registry_destroy(&r);
}
END_TEST

/* A reference from get keeps a client alive after it left the registry
 * and its owner let go; the last unref destroys it exactly once. */
START_TEST(test_get_keeps_alive) {
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  atomic_store(&destroyed, 0);
  websock__client *a = fake_new(7);
  websock__registry_add(&r, a);
  ck_assert_int_eq(websock__registry_set_tag(&r, 7, "seven", 0), 0);
  websock__client *g1 = websock__registry_get(&r, 7);
  websock__client *g2 = websock__registry_get_tag(&r, "seven");
  ck_assert_ptr_eq(g1, a);
  ck_assert_ptr_eq(g2, a);
  ck_assert_int_eq(refs(a), 3);
  websock__registry_remove(&r, a);
  websock__client_unref(a); /* the owner (the loop) is done */
  ck_assert_int_eq(atomic_load(&destroyed), 0);
  ck_assert_uint_eq(g1->id, 7);
  websock__client_unref(g1);
  ck_assert_int_eq(atomic_load(&destroyed), 0);
  websock__client_unref(g2);
  ck_assert_int_eq(atomic_load(&destroyed), 1);
  websock__registry_destroy(&r);
}
END_TEST

/* ---- tags ------------------------------------------------------------- */

START_TEST(test_tags) {
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  atomic_store(&destroyed, 0);
  websock__client *a = fake_new(10), *b = fake_new(11);
  websock__registry_add(&r, a);
  websock__registry_add(&r, b);
  ck_assert_ptr_null(peek_tag(&r, "alpha"));
  /* set */
  ck_assert_int_eq(websock__registry_set_tag(&r, 10, "alpha", 0), 0);
  ck_assert_str_eq(a->tag, "alpha");
  ck_assert_int_eq(CLIENT_HAS_TAG(a), 1);
  ck_assert_ptr_eq(peek_tag(&r, "alpha"), a);
  ck_assert_uint_eq(REG_NTAGS(&r), 1);
  /* taken by another live client */
  ck_assert_int_eq(websock__registry_set_tag(&r, 11, "alpha", 0),
                   WEBSOCK_ERR_TAG_TAKEN);
  ck_assert_ptr_null(b->tag);
  ck_assert_int_eq(CLIENT_HAS_TAG(b), 0);
  ck_assert_ptr_eq(peek_tag(&r, "alpha"), a);
  /* the same tag again is a no-op that says so */
  ck_assert_int_eq(websock__registry_set_tag(&r, 10, "alpha", 0),
                   WEBSOCK__TAG_UNCHANGED);
  ck_assert_str_eq(a->tag, "alpha");
  ck_assert_uint_eq(REG_NTAGS(&r), 1);
  /* tags are exact strings: a prefix or another case is another tag */
  ck_assert_ptr_null(peek_tag(&r, "alph"));
  ck_assert_ptr_null(peek_tag(&r, "Alpha"));
  ck_assert_ptr_null(peek_tag(&r, "alphaa"));
  /* replace: the old tag is released at once */
  ck_assert_int_eq(websock__registry_set_tag(&r, 10, "beta", 0), 0);
  ck_assert_str_eq(a->tag, "beta");
  ck_assert_ptr_null(peek_tag(&r, "alpha"));
  ck_assert_ptr_eq(peek_tag(&r, "beta"), a);
  ck_assert_uint_eq(REG_NTAGS(&r), 1);
  ck_assert_int_eq(websock__registry_set_tag(&r, 11, "alpha", 0), 0);
  ck_assert_ptr_eq(peek_tag(&r, "alpha"), b);
  ck_assert_int_eq(websock__registry_set_tag(&r, 10, "alpha", 0),
                   WEBSOCK_ERR_TAG_TAKEN);
  ck_assert_str_eq(a->tag, "beta"); /* a failed set keeps the old tag */
  ck_assert_ptr_eq(peek_tag(&r, "beta"), a);
  ck_assert_uint_eq(REG_NTAGS(&r), 2);
  /* remove with NULL */
  ck_assert_int_eq(websock__registry_set_tag(&r, 10, NULL, 0), 0);
  ck_assert_ptr_null(a->tag);
  ck_assert_int_eq(CLIENT_HAS_TAG(a), 0);
  ck_assert_ptr_null(peek_tag(&r, "beta"));
  ck_assert_uint_eq(REG_NTAGS(&r), 1);
  ck_assert_int_eq(websock__registry_set_tag(&r, 10, NULL, 0), 0); /* again */
  /* the freed tag is free for others */
  ck_assert_int_eq(websock__registry_set_tag(&r, 11, "beta", 0), 0);
  ck_assert_ptr_eq(peek_tag(&r, "beta"), b);
  ck_assert_ptr_null(peek_tag(&r, "alpha"));
  /* the empty string is a tag like any other here (the API refuses it) */
  ck_assert_int_eq(websock__registry_set_tag(&r, 10, "", 0), 0);
  ck_assert_ptr_eq(peek_tag(&r, ""), a);
  websock__registry_remove(&r, a);
  websock__registry_remove(&r, b);
  websock__client_unref(a);
  websock__client_unref(b);
  ck_assert_int_eq(atomic_load(&destroyed), 2);
  websock__registry_destroy(&r);
}
END_TEST

/* Leaving the registry releases the tag for others, while the client keeps
 * its copy for its last events. */
START_TEST(test_remove_releases_tag) {
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  atomic_store(&destroyed, 0);
  websock__client *a = fake_new(20), *b = fake_new(21);
  websock__registry_add(&r, a);
  websock__registry_add(&r, b);
  ck_assert_int_eq(websock__registry_set_tag(&r, 20, "room", 0), 0);
  websock__registry_remove(&r, a);
  ck_assert_ptr_null(peek_tag(&r, "room"));
  ck_assert_uint_eq(REG_NTAGS(&r), 0);
  ck_assert_str_eq(a->tag, "room");
  char buf[16];
  ck_assert_int_eq(websock__registry_copy_tag(&r, a, buf, sizeof buf), 4);
  ck_assert_str_eq(buf, "room");
  ck_assert_int_eq(websock__registry_set_tag(&r, 21, "room", 0), 0);
  ck_assert_ptr_eq(peek_tag(&r, "room"), b);
  /* Removing the stale client again leaves b's entry for the same string
   * alone. */
  websock__registry_remove(&r, a);
  ck_assert_ptr_eq(peek_tag(&r, "room"), b);
  websock__registry_remove(&r, b);
  websock__client_unref(a);
  websock__client_unref(b);
  ck_assert_int_eq(atomic_load(&destroyed), 2);
  websock__registry_destroy(&r);
}
END_TEST

/* ---- the cluster's hooks: on_untag, claim_done, each_tag ------------- */

typedef struct untag_log {
  int n;
  uint64_t id[8];
  char tag[8][16];
} untag_log;

static void log_untag(void *ud, uint64_t id, const char *tag) {
  untag_log *l = ud;
  ck_assert_int_lt(l->n, 8);
  l->id[l->n] = id;
  snprintf(l->tag[l->n], sizeof l->tag[0], "%s", tag);
  l->n++;
}

START_TEST(test_cluster_hooks) {
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  untag_log log = {0};
  r.on_untag = log_untag;
  r.on_untag_ud = &log;
  websock__client *a = fake_new(60), *b = fake_new(61);
  websock__registry_add(&r, a);
  websock__registry_add(&r, b);
  /* taking a tag, or failing to, lets nothing go */
  ck_assert_int_eq(websock__registry_set_tag(&r, 60, "x", 0), 0);
  ck_assert_int_eq(websock__registry_set_tag(&r, 61, "x", 0),
                   WEBSOCK_ERR_TAG_TAKEN);
  ck_assert_int_eq(websock__registry_set_tag(&r, 60, "x", 0),
                   WEBSOCK__TAG_UNCHANGED);
  ck_assert_int_eq(log.n, 0);
  /* replacing lets the old one go, removing too, once */
  ck_assert_int_eq(websock__registry_set_tag(&r, 60, "y", 0), 0);
  ck_assert_int_eq(log.n, 1);
  ck_assert_uint_eq(log.id[0], 60);
  ck_assert_str_eq(log.tag[0], "x");
  ck_assert_int_eq(websock__registry_set_tag(&r, 60, NULL, 0), 0);
  ck_assert_int_eq(websock__registry_set_tag(&r, 60, NULL, 0), 0);
  ck_assert_int_eq(log.n, 2);
  ck_assert_str_eq(log.tag[1], "y");
  /* each_tag sees every tag held */
  ck_assert_int_eq(websock__registry_set_tag(&r, 60, "p", 0), 0);
  ck_assert_int_eq(websock__registry_set_tag(&r, 61, "q", 0), 0);
  untag_log seen = {0};
  websock__registry_each_tag(&r, log_untag, &seen);
  ck_assert_int_eq(seen.n, 2);
  ck_assert_int_eq(
      strcmp(seen.tag[0], "p") == 0 || strcmp(seen.tag[1], "p") == 0, 1);
  /* a failed claim takes back exactly that tag, without the hook */
  ck_assert_int_eq(websock__registry_claim_done(&r, 61, "p", 0), 0);
  ck_assert_int_eq(websock__registry_claim_done(&r, 62, "q", 0), 0);
  ck_assert_int_eq(websock__registry_claim_done(&r, 61, "q", 0), 1);
  ck_assert_ptr_null(b->tag);
  ck_assert_ptr_null(peek_tag(&r, "q"));
  ck_assert_int_eq(log.n, 2);
  /* a connection that ends lets its tag go */
  websock__registry_remove(&r, a);
  ck_assert_int_eq(log.n, 3);
  ck_assert_str_eq(log.tag[2], "p");
  websock__registry_remove(&r, a);
  websock__registry_remove(&r, b); /* no tag: nothing */
  ck_assert_int_eq(log.n, 3);
  websock__client_unref(a);
  websock__client_unref(b);
  websock__registry_destroy(&r);
}
END_TEST

/* A claim in flight keeps the tag of before held, in the map, until
 * Redis answers: success lets it go, failure gives it back. */
START_TEST(test_claims) {
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  untag_log log = {0};
  r.on_untag = log_untag;
  r.on_untag_ud = &log;
  websock__client *a = fake_new(70), *b = fake_new(71);
  websock__registry_add(&r, a);
  websock__registry_add(&r, b);
  /* a first claim: pending, nothing held */
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "old", 1), 0);
  ck_assert(websock__client_has(a, WEBSOCK__CLIENT_TAG_PENDING));
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "old", 1),
                   WEBSOCK__TAG_STILL_PENDING);
  ck_assert_int_eq(websock__registry_claim_done(&r, 70, "old", 1), 0);
  ck_assert(!websock__client_has(a, WEBSOCK__CLIENT_TAG_PENDING));
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "old", 1),
                   WEBSOCK__TAG_UNCHANGED);
  /* a second: the settled one is held, both find the client */
  ck_assert_int_eq(websock__registry_has_tag(&r, 70, "old"), 1);
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "new", 1), 0);
  ck_assert_int_eq(websock__registry_has_tag(&r, 70, "new"), 0); /* pending */
  ck_assert_int_eq(websock__registry_has_tag(&r, 70, "old"), 0); /* held */
  ck_assert_int_eq(websock__registry_has_tag(&r, 71, "new"), 0);
  ck_assert_str_eq(a->tag, "new");
  ck_assert_str_eq(a->held_tag, "old");
  ck_assert_ptr_eq(peek_tag(&r, "old"), a);
  ck_assert_ptr_eq(peek_tag(&r, "new"), a);
  ck_assert_int_eq(websock__registry_set_tag(&r, 71, "old", 1),
                   WEBSOCK_ERR_TAG_TAKEN);
  ck_assert_int_eq(log.n, 0);
  /* refused: the one held is its tag again; nothing goes through the hook
   * (Redis has the refused one as another's, the held one as ours) */
  ck_assert_int_eq(websock__registry_claim_done(&r, 70, "new", 0), 1);
  ck_assert_str_eq(a->tag, "old");
  ck_assert_ptr_null(a->held_tag);
  ck_assert_ptr_null(peek_tag(&r, "new"));
  ck_assert_ptr_eq(peek_tag(&r, "old"), a);
  ck_assert(!websock__client_has(a, WEBSOCK__CLIENT_TAG_PENDING));
  ck_assert_int_eq(log.n, 0);
  /* a pending tag replaced by another goes at once; the held one stays */
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "n2", 1), 0);
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "n3", 1), 0);
  ck_assert_int_eq(log.n, 1);
  ck_assert_str_eq(log.tag[0], "n2");
  ck_assert_str_eq(a->held_tag, "old");
  ck_assert_int_eq(websock__registry_claim_done(&r, 70, "n2", 1), 0);
  ck_assert_str_eq(a->held_tag, "old"); /* an answer for a tag let go */
  /* granted: the held one goes */
  ck_assert_int_eq(websock__registry_claim_done(&r, 70, "n3", 1), 0);
  ck_assert_int_eq(log.n, 2);
  ck_assert_str_eq(log.tag[1], "old");
  ck_assert_ptr_null(a->held_tag);
  ck_assert_ptr_null(peek_tag(&r, "old"));
  ck_assert_str_eq(a->tag, "n3");
  /* asking for the held tag again settles it, and the pending one goes */
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "b", 1), 0);
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "n3", 1),
                   WEBSOCK__TAG_UNCHANGED);
  ck_assert_int_eq(log.n, 3);
  ck_assert_str_eq(log.tag[2], "b");
  ck_assert_str_eq(a->tag, "n3");
  ck_assert_ptr_null(a->held_tag);
  ck_assert(!websock__client_has(a, WEBSOCK__CLIENT_TAG_PENDING));
  /* the held tag lost (claimed again after a restart): dropped alone */
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "c", 1), 0);
  ck_assert_int_eq(websock__registry_claim_done(&r, 70, "n3", 0), 0);
  ck_assert_ptr_null(a->held_tag);
  ck_assert_ptr_null(peek_tag(&r, "n3"));
  ck_assert_str_eq(a->tag, "c");
  ck_assert_int_eq(log.n, 3);
  /* removing lets the pending one and the held one go */
  ck_assert_int_eq(websock__registry_claim_done(&r, 70, "c", 1), 0);
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "d", 1), 0);
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, NULL, 0), 0);
  ck_assert_int_eq(log.n, 5);
  ck_assert_ptr_null(a->tag);
  ck_assert_ptr_null(a->held_tag);
  ck_assert_ptr_null(peek_tag(&r, "c"));
  /* and so does the connection's end */
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "e", 1), 0);
  ck_assert_int_eq(websock__registry_claim_done(&r, 70, "e", 1), 0);
  ck_assert_int_eq(websock__registry_set_tag(&r, 70, "f", 1), 0);
  log.n = 0;
  websock__registry_remove(&r, a);
  ck_assert_int_eq(log.n, 2);
  ck_assert_ptr_null(peek_tag(&r, "e"));
  ck_assert_ptr_null(peek_tag(&r, "f"));
  ck_assert_ptr_null(a->held_tag);
  websock__registry_remove(&r, b);
  websock__client_unref(a);
  websock__client_unref(b);
  websock__registry_destroy(&r);
}
END_TEST

START_TEST(test_no_such_client) {
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  atomic_store(&destroyed, 0);
  websock__client *a = fake_new(30), *b = fake_new(31);
  websock__registry_add(&r, a);
  websock__registry_add(&r, b);
  /* unknown id */
  ck_assert_int_eq(websock__registry_set_tag(&r, 99, "x", 0),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock__registry_set_tag(&r, 99, NULL, 0),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_ptr_null(peek_tag(&r, "x"));
  /* a closing client takes no tag and gives none up */
  ck_assert_int_eq(websock__registry_set_tag(&r, 31, "keep", 0), 0);
  CLIENT_SET_CLOSING(a);
  CLIENT_SET_CLOSING(b);
  ck_assert_int_eq(websock__registry_set_tag(&r, 30, "x", 0),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_ptr_null(a->tag);
  ck_assert_ptr_null(peek_tag(&r, "x"));
  ck_assert_int_eq(websock__registry_set_tag(&r, 31, NULL, 0),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock__registry_set_tag(&r, 31, "other", 0),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_ptr_eq(peek_tag(&r, "keep"), b);
  ck_assert_str_eq(b->tag, "keep");
  /* it is still found by id until it leaves (sends then say CLOSING) */
  ck_assert_ptr_eq(peek(&r, 30), a);
  /* a removed client is unknown */
  CLIENT_CLEAR_CLOSING(a);
  websock__registry_remove(&r, a);
  ck_assert_int_eq(websock__registry_set_tag(&r, 30, "x", 0),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_ptr_null(peek_tag(&r, "x"));
  websock__registry_remove(&r, b);
  websock__client_unref(a);
  websock__client_unref(b);
  ck_assert_int_eq(atomic_load(&destroyed), 2);
  websock__registry_destroy(&r);
}
END_TEST

/* ---- copy_tag --------------------------------------------------------- */

START_TEST(test_copy_tag) {
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  atomic_store(&destroyed, 0);
  websock__client *a = fake_new(40);
  websock__registry_add(&r, a);
  char buf[WEBSOCK__TAG_MAX + 1];
  memset(buf, '#', sizeof buf);
  ck_assert_int_eq(websock__registry_copy_tag(&r, a, buf, sizeof buf), 0);
  ck_assert_int_eq(buf[0], '#'); /* no tag: nothing written */
  ck_assert_int_eq(websock__registry_set_tag(&r, 40, "hello", 0), 0);
  ck_assert_int_eq(websock__registry_copy_tag(&r, a, buf, 6), 5);
  ck_assert_str_eq(buf, "hello");
  /* One byte short of the NUL: refused, never truncated, nothing written. */
  memset(buf, '#', sizeof buf);
  ck_assert_int_eq(websock__registry_copy_tag(&r, a, buf, 5), -1);
  ck_assert_int_eq(buf[0], '#');
  ck_assert_int_eq(websock__registry_copy_tag(&r, a, buf, 0), -1);
  /* The longest tag fits the job's tag field exactly; one more does not. */
  char longest[WEBSOCK__TAG_MAX + 2];
  memset(longest, 'x', sizeof longest);
  longest[WEBSOCK__TAG_MAX] = 0;
  ck_assert_int_eq(websock__registry_set_tag(&r, 40, longest, 0), 0);
  ck_assert_int_eq(websock__registry_copy_tag(&r, a, buf, sizeof buf),
                   WEBSOCK__TAG_MAX);
  ck_assert_str_eq(buf, longest);
  longest[WEBSOCK__TAG_MAX] = 'x';
  longest[WEBSOCK__TAG_MAX + 1] = 0;
  ck_assert_int_eq(websock__registry_set_tag(&r, 40, longest, 0), 0);
  memset(buf, '#', sizeof buf);
  ck_assert_int_eq(websock__registry_copy_tag(&r, a, buf, sizeof buf), -1);
  ck_assert_int_eq(buf[0], '#');
  websock__registry_remove(&r, a);
  websock__client_unref(a);
  websock__registry_destroy(&r);
}
END_TEST

/* ---- growth ----------------------------------------------------------- */

/* Ids far apart and close together, so the hash has to spread both. */
static uint64_t nth_id(size_t i) {
  return i % 2 ? (uint64_t)i + 1 : ((uint64_t)i << 32) + 977 * (uint64_t)i + 1;
}

START_TEST(test_growth) {
  enum { N = 5000 };
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  atomic_store(&destroyed, 0);
  size_t ids0 = REG_ID_BUCKETS(&r), tags0 = REG_TAG_BUCKETS(&r);
  websock__client **c = malloc(N * sizeof *c);
  for (size_t i = 0; i < N; i++) {
    c[i] = fake_new(nth_id(i));
    websock__registry_add(&r, c[i]);
    char tag[32];
    snprintf(tag, sizeof tag, "t%zu", i);
    ck_assert_int_eq(websock__registry_set_tag(&r, c[i]->id, tag, 0), 0);
  }
  ck_assert_uint_eq(REG_NIDS(&r), N);
  ck_assert_uint_eq(REG_NTAGS(&r), N);
  /* Both tables grew (doubling), to at least one bucket per entry. */
  ck_assert_uint_gt(REG_ID_BUCKETS(&r), ids0);
  ck_assert_uint_gt(REG_TAG_BUCKETS(&r), tags0);
  ck_assert_uint_ge(REG_ID_BUCKETS(&r), N / 2);
  ck_assert_uint_ge(REG_TAG_BUCKETS(&r), N / 2);
  ck_assert_uint_eq(REG_ID_BUCKETS(&r) & (REG_ID_BUCKETS(&r) - 1), 0);
  ck_assert_uint_eq(REG_TAG_BUCKETS(&r) & (REG_TAG_BUCKETS(&r) - 1), 0);
  /* Every entry is still found after the rehashing, by id and by tag. */
  for (size_t i = 0; i < N; i++) {
    char tag[32];
    snprintf(tag, sizeof tag, "t%zu", i);
    TEST_REQUIRE(peek(&r, c[i]->id) == c[i]);
    TEST_REQUIRE(peek_tag(&r, tag) == c[i]);
  }
  /* Remove every other one: those are gone, the rest stay. */
  for (size_t i = 0; i < N; i += 2)
    websock__registry_remove(&r, c[i]);
  ck_assert_uint_eq(REG_NIDS(&r), N / 2);
  ck_assert_uint_eq(REG_NTAGS(&r), N / 2);
  for (size_t i = 0; i < N; i++) {
    char tag[32];
    snprintf(tag, sizeof tag, "t%zu", i);
    websock__client *want = i % 2 ? c[i] : NULL;
    TEST_REQUIRE(peek(&r, c[i]->id) == want);
    TEST_REQUIRE(peek_tag(&r, tag) == want);
  }
  /* Retagging the survivors moves every tag entry. */
  for (size_t i = 1; i < N; i += 2) {
    char tag[32];
    snprintf(tag, sizeof tag, "u%zu", i);
    TEST_REQUIRE(websock__registry_set_tag(&r, c[i]->id, tag, 0) == 0);
  }
  ck_assert_uint_eq(REG_NTAGS(&r), N / 2);
  for (size_t i = 1; i < N; i += 2) {
    char tag[32];
    snprintf(tag, sizeof tag, "t%zu", i);
    TEST_REQUIRE(peek_tag(&r, tag) == NULL);
    snprintf(tag, sizeof tag, "u%zu", i);
    TEST_REQUIRE(peek_tag(&r, tag) == c[i]);
  }
  for (size_t i = 1; i < N; i += 2)
    websock__registry_remove(&r, c[i]);
  ck_assert_uint_eq(REG_NIDS(&r), 0);
  ck_assert_uint_eq(REG_NTAGS(&r), 0);
  for (size_t i = 0; i < N; i++)
    websock__client_unref(c[i]);
  ck_assert_int_eq(atomic_load(&destroyed), N);
  free(c);
  websock__registry_destroy(&r);
}
END_TEST

/* ---- out of memory ---------------------------------------------------- */

START_TEST(test_out_of_memory) {
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  atomic_store(&destroyed, 0);
  websock__client *a = fake_new(50);
  websock__registry_add(&r, a);
  ck_assert_int_eq(websock__registry_set_tag(&r, 50, "old", 0), 0);
  /* Either of set_tag's two allocations failing leaves the old tag. */
  for (long n = 1; n <= 2; n++) {
    websock__alloc_fail_at(n);
    ck_assert_int_eq(websock__registry_set_tag(&r, 50, "new", 0),
                     WEBSOCK_ERR_NOMEM);
    ck_assert_str_eq(a->tag, "old");
    ck_assert_ptr_eq(peek_tag(&r, "old"), a);
    ck_assert_ptr_null(peek_tag(&r, "new"));
  }
  websock__alloc_fail_at(0);
  /* The id table cannot grow: adds still work, on longer chains. */
  size_t buckets = REG_ID_BUCKETS(&r);
  websock__client **c = malloc(buckets * sizeof *c);
  for (size_t i = 0; i < buckets; i++) {
    if (REG_NIDS(&r) == buckets)
      websock__alloc_fail_at(1); /* the add that would double the table */
    c[i] = fake_new(1000 + i);
    websock__registry_add(&r, c[i]);
  }
  websock__alloc_fail_at(0);
  ck_assert_uint_eq(REG_ID_BUCKETS(&r), buckets);
  ck_assert_uint_eq(REG_NIDS(&r), buckets + 1);
  for (size_t i = 0; i < buckets; i++)
    TEST_REQUIRE(peek(&r, 1000 + i) == c[i]);
  ck_assert_ptr_eq(peek(&r, 50), a);
  websock__client *last = fake_new(5);
  websock__registry_add(&r, last); /* memory back: now it grows */
  ck_assert_uint_eq(REG_ID_BUCKETS(&r), 2 * buckets);
  for (size_t i = 0; i < buckets; i++) {
    websock__registry_remove(&r, c[i]);
    websock__client_unref(c[i]);
  }
  free(c);
  websock__registry_remove(&r, last);
  websock__client_unref(last);
  websock__registry_remove(&r, a);
  websock__client_unref(a);
  ck_assert_int_eq(atomic_load(&destroyed), (int)buckets + 2);
  websock__registry_destroy(&r);
}
END_TEST

/* ---- lookups racing adds and removes ---------------------------------- */

typedef struct racer {
  websock__registry *r;
  atomic_int *stop;
  atomic_uint_fast64_t *max_id;
  unsigned seed;
  long found;
} racer;

static void *racer_run(void *arg) {
  racer *x = arg;
  test_rng rng;
  test_rng_seed(&rng, x->seed);
  while (!atomic_load(x->stop)) {
    uint64_t max = atomic_load(x->max_id);
    if (!max)
      continue;
    uint64_t id = test_rng_range(&rng, 1, (size_t)max);
    websock__client *c =
        test_rng_next(&rng) % 2 ? websock__registry_get(x->r, id) : NULL;
    if (!c) {
      char tag[32];
      snprintf(tag, sizeof tag, "r%" PRIu64, id);
      c = websock__registry_get_tag(x->r, tag);
    }
    if (c) {
      /* What a lookup returns is the client asked for, alive until the
       * reference is dropped. */
      if (c->id != id)
        return (void *)1;
      x->found++;
      websock__client_unref(c);
    }
  }
  return NULL;
}

START_TEST(test_concurrent_lookups) {
  enum { N = 3000 };
  websock__registry r;
  ck_assert_int_eq(websock__registry_init(&r), 0);
  atomic_store(&destroyed, 0);
  atomic_int stop = 0;
  atomic_uint_fast64_t max_id = 0;
  racer x[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    x[i] = (racer){&r, &stop, &max_id, (unsigned)i + 5, 0};
    ck_assert_int_eq(pthread_create(&th[i], NULL, racer_run, &x[i]), 0);
  }
  websock__client *live[8] = {0};
  for (uint64_t id = 1; id <= N; id++) {
    websock__client *c = fake_new(id);
    websock__registry_add(&r, c);
    char tag[32];
    snprintf(tag, sizeof tag, "r%" PRIu64, id);
    ck_assert_int_eq(websock__registry_set_tag(&r, id, tag, 0), 0);
    atomic_store(&max_id, id);
    /* Keep eight alive; the oldest leaves and its owner lets go. */
    websock__client *old = live[id % 8];
    live[id % 8] = c;
    if (old) {
      websock__registry_remove(&r, old);
      websock__client_unref(old);
    }
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++) {
    void *res;
    pthread_join(th[i], &res);
    ck_assert_ptr_null(res);
  }
  for (int i = 0; i < 8; i++) {
    websock__registry_remove(&r, live[i]);
    websock__client_unref(live[i]);
  }
  ck_assert_int_eq(atomic_load(&destroyed), N);
  ck_assert_uint_eq(REG_NIDS(&r), 0);
  ck_assert_uint_eq(REG_NTAGS(&r), 0);
  websock__registry_destroy(&r);
}
END_TEST

static Suite *registry_suite(void) {
  Suite *s = suite_create("registry");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_add_get_remove);
  tcase_add_test(tc, test_get_keeps_alive);
  tcase_add_test(tc, test_tags);
  tcase_add_test(tc, test_remove_releases_tag);
  tcase_add_test(tc, test_cluster_hooks);
  tcase_add_test(tc, test_claims);
  tcase_add_test(tc, test_no_such_client);
  tcase_add_test(tc, test_copy_tag);
  tcase_add_test(tc, test_growth);
  tcase_add_test(tc, test_out_of_memory);
  tcase_add_test(tc, test_concurrent_lookups);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(registry_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
