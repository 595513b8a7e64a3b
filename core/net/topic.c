/* Topics on an I/O loop: the set of topics and memberships (see topic.h
 * for who owns what), and what the loop does with it: subscribe and
 * unsubscribe a connection, drop its topics when it ends, and hand a
 * published message to a topic's members. Only the loop's thread runs
 * this code; other threads reach it through jobs (command.c). Layer: net. */
#include "topic.h"

#include <stdint.h>
#include <string.h>

#include "net.h"
#include "util/alloc.h"

/* Buckets each map starts with (they double as they fill). */
#define TOPIC_BUCKETS 64

/* A topic's name as a look-up key. */
typedef struct topic_key {
  const uint8_t *name;
  size_t len;
} topic_key;

/* A membership as a look-up key. */
typedef struct tsub_key {
  const void *owner;
  const websock__topic *topic;
} tsub_key;

/* FNV-1a over the name's bytes (a name may hold NUL bytes). */
static size_t topic_hash_name(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return (size_t)h;
}

static size_t topic_hash(const websock__hnode *n) {
  return ((const websock__topic *)(const void *)n)->hash;
}

static int topic_eq(const websock__hnode *n, const void *key) {
  const websock__topic *t = (const websock__topic *)(const void *)n;
  const topic_key *k = key;
  return t->len == k->len && memcmp(t->name, k->name, k->len) == 0;
}

static size_t tsub_hash_of(const void *owner, const websock__topic *topic) {
  return websock__hash_u64((unsigned long long)(uintptr_t)owner ^
                           websock__hash_u64((uintptr_t)topic));
}

static size_t tsub_hash(const websock__hnode *n) {
  const websock__tsub *s = (const websock__tsub *)(const void *)n;
  return tsub_hash_of(s->owner, s->topic);
}

static int tsub_eq(const websock__hnode *n, const void *key) {
  const websock__tsub *s = (const websock__tsub *)(const void *)n;
  const tsub_key *k = key;
  return s->owner == k->owner && s->topic == k->topic;
}

/* Matches the node itself: finds the slot that points to it. */
static int node_is(const websock__hnode *n, const void *key) {
  return n == key;
}

void websock__topics_init(websock__topics *t) {
  memset(t, 0, sizeof *t);
  atomic_init(&t->ntopics, 0);
  atomic_init(&t->nsubs, 0);
}

/* Makes the maps on first use. Returns 0 or -1. */
static int topics_ready(websock__topics *t) {
  if (t->names.buckets)
    return 0;
  if (websock__hmap_init(&t->names, TOPIC_BUCKETS, topic_hash) < 0)
    return -1;
  if (websock__hmap_init(&t->subs, TOPIC_BUCKETS, tsub_hash) < 0) {
    websock__hmap_free(&t->names);
    return -1;
  }
  return 0;
}

/* The counts the stats read, after a change. */
static void topics_publish_counts(websock__topics *t) {
  atomic_store_explicit(&t->ntopics, t->names.count, memory_order_relaxed);
  atomic_store_explicit(&t->nsubs, t->subs.count, memory_order_relaxed);
}

void websock__topics_free(websock__topics *t) {
  for (size_t i = 0; i < t->subs.nbuckets; i++) {
    websock__hnode *n = t->subs.buckets[i];
    while (n) {
      websock__hnode *next = n->next;
      websock__free(n);
      n = next;
    }
  }
  for (size_t i = 0; i < t->names.nbuckets; i++) {
    websock__hnode *n = t->names.buckets[i];
    while (n) {
      websock__hnode *next = n->next;
      websock__free(n);
      n = next;
    }
  }
  websock__hmap_free(&t->subs);
  websock__hmap_free(&t->names);
  topics_publish_counts(t);
}

websock__topic *websock__topics_find(websock__topics *t, const void *name,
                                     size_t len) {
  if (!t->names.buckets || len == 0 || len > WEBSOCK__TOPIC_MAX)
    return NULL;
  topic_key k = {name, len};
  websock__hnode *n =
      *websock__hmap_find(&t->names, topic_hash_name(name, len), topic_eq, &k);
  return (websock__topic *)(void *)n;
}

/* Frees |tp| once its last member left. */
static void topics_drop_if_empty(websock__topics *t, websock__topic *tp) {
  if (tp->members)
    return;
  if (t->on_topic)
    t->on_topic(t->on_topic_ud, tp->name, tp->len, -1);
  websock__hmap_remove(&t->names,
                       websock__hmap_find(&t->names, tp->hash, node_is, tp));
  websock__free(tp);
}

int websock__topics_join(websock__topics *t, websock__tsub **head, void *owner,
                         const void *name, size_t len) {
  if (len == 0 || len > WEBSOCK__TOPIC_MAX || topics_ready(t) < 0)
    return -1;
  size_t h = topic_hash_name(name, len);
  topic_key k = {name, len};
  websock__hnode **slot = websock__hmap_find(&t->names, h, topic_eq, &k);
  websock__topic *tp = (websock__topic *)(void *)*slot;
  if (!tp) {
    tp = websock__malloc(sizeof *tp + len);
    if (!tp)
      return -1;
    memset(tp, 0, sizeof *tp);
    tp->hash = h;
    tp->len = (uint8_t)len;
    memcpy(tp->name, name, len);
    websock__hmap_insert(&t->names, &tp->node, h);
    if (t->on_topic)
      t->on_topic(t->on_topic_ud, name, len, +1);
  } else {
    tsub_key sk = {owner, tp};
    if (*websock__hmap_find(&t->subs, tsub_hash_of(owner, tp), tsub_eq, &sk))
      return 0; /* a member already */
  }
  websock__tsub *s = websock__calloc(1, sizeof *s);
  if (!s) {
    topics_drop_if_empty(t, tp); /* made just now, for nothing */
    topics_publish_counts(t);
    return -1;
  }
  s->topic = tp;
  s->owner = owner;
  s->tnext = tp->members;
  if (tp->members)
    tp->members->tprev = s;
  tp->members = s;
  tp->nmembers++;
  s->onext = *head;
  if (*head)
    (*head)->oprev = s;
  *head = s;
  websock__hmap_insert(&t->subs, &s->node, tsub_hash_of(owner, tp));
  topics_publish_counts(t);
  return 1;
}

/* Unlinks |s| from its three places and frees it (and its topic when it
 * was the last member). */
static void topics_unlink(websock__topics *t, websock__tsub **head,
                          websock__tsub *s) {
  websock__topic *tp = s->topic;
  if (s->tprev)
    s->tprev->tnext = s->tnext;
  else
    tp->members = s->tnext;
  if (s->tnext)
    s->tnext->tprev = s->tprev;
  tp->nmembers--;
  if (s->oprev)
    s->oprev->onext = s->onext;
  else
    *head = s->onext;
  if (s->onext)
    s->onext->oprev = s->oprev;
  websock__hmap_remove(
      &t->subs,
      websock__hmap_find(&t->subs, tsub_hash_of(s->owner, tp), node_is, s));
  websock__free(s);
  topics_drop_if_empty(t, tp);
}

int websock__topics_leave(websock__topics *t, websock__tsub **head, void *owner,
                          const void *name, size_t len) {
  websock__topic *tp = websock__topics_find(t, name, len);
  if (!tp)
    return 0;
  tsub_key sk = {owner, tp};
  websock__hnode *n =
      *websock__hmap_find(&t->subs, tsub_hash_of(owner, tp), tsub_eq, &sk);
  if (!n)
    return 0;
  topics_unlink(t, head, (websock__tsub *)(void *)n);
  topics_publish_counts(t);
  return 1;
}

void websock__topics_leave_all(websock__topics *t, websock__tsub **head) {
  if (!*head)
    return;
  while (*head)
    topics_unlink(t, head, *head);
  topics_publish_counts(t);
}

/* ---- the loop's side ------------------------------------------------- */

int websock__topic_subscribe(websock__conn *c, const void *name, size_t len) {
  /* Only an open connection joins: one that is closing would be dropped
   * again at its end, and one that ended (a posted subscribe that came
   * late) must not join at all, since nothing would ever free it. */
  if (c->state != WEBSOCK__CONN_OPEN)
    return WEBSOCK_ERR_CLOSING;
  int r = websock__topics_join(&c->loop->topics, &c->topics, c, name, len);
  return r < 0 ? WEBSOCK_ERR_NOMEM : 0;
}

void websock__topic_unsubscribe(websock__conn *c, const void *name,
                                size_t len) {
  websock__topics_leave(&c->loop->topics, &c->topics, c, name, len);
}

void websock__topic_conn_end(websock__conn *c) {
  websock__topics_leave_all(&c->loop->topics, &c->topics);
}

void websock__topic_publish(websock__loop *l, websock__job *j) {
  websock__topic *tp =
      websock__topics_find(&l->topics, j->buf.data, j->buf.len);
  if (!tp)
    return; /* no member on this loop */
  websock__fanout f;
  websock__fanout_begin(&f, l, j->ptr, j->except_id);
  /* Nothing below ends a connection or runs user code, so the list
   * cannot change while it is walked. */
  for (websock__tsub *s = tp->members; s; s = s->tnext)
    websock__fanout_to(&f, s->owner);
  websock__fanout_end(&f);
}
