/* Id and tag maps of open connections (see registry.h). Layer: sched. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "websock.h"
#include "util/alloc.h"

/* A tag held by a client: in the tag map, one allocation with the string.
 * The client keeps its own copy (client->tag) for its events. */
typedef struct registry_tag {
  websock__hnode node; /* must stay first */
  websock__client *client;
  size_t hash;
  char tag[]; /* NUL-terminated */
} registry_tag;

static websock__client *registry_client_of(const websock__hnode *n) {
  return (websock__client *)(void *)((char *)n -
                                     offsetof(websock__client, reg_node));
}

static size_t registry_id_hash(const websock__hnode *n) {
  return websock__hash_u64(registry_client_of(n)->id);
}

static int registry_id_eq(const websock__hnode *n, const void *key) {
  return registry_client_of(n)->id == *(const uint64_t *)key;
}

static size_t registry_tag_hash(const websock__hnode *n) {
  return ((const registry_tag *)(const void *)n)->hash;
}

static int registry_tag_eq(const websock__hnode *n, const void *key) {
  return strcmp(((const registry_tag *)(const void *)n)->tag, key) == 0;
}

int websock__registry_init(websock__registry *r) {
  memset(r, 0, sizeof *r);
  if (websock__hmap_init(&r->ids, 1024, registry_id_hash) < 0)
    return -1;
  if (websock__hmap_init(&r->tags, 256, registry_tag_hash) < 0 ||
      pthread_mutex_init(&r->mu, NULL)) {
    websock__hmap_free(&r->ids);
    websock__hmap_free(&r->tags);
    return -1;
  }
  return 0;
}

void websock__registry_destroy(websock__registry *r) {
  for (size_t i = 0; i < r->tags.nbuckets; i++) {
    websock__hnode *n = r->tags.buckets[i];
    while (n) {
      websock__hnode *next = n->next;
      websock__free(n);
      n = next;
    }
  }
  websock__hmap_free(&r->tags);
  websock__hmap_free(&r->ids);
  pthread_mutex_destroy(&r->mu);
}

void websock__registry_add(websock__registry *r, websock__client *c) {
  pthread_mutex_lock(&r->mu);
  websock__hmap_insert(&r->ids, &c->reg_node, websock__hash_u64(c->id));
  websock__client_set(c, WEBSOCK__CLIENT_REGISTERED);
  pthread_mutex_unlock(&r->mu);
}

static websock__client *registry_find_id_locked(websock__registry *r,
                                                uint64_t id) {
  websock__hnode *n =
      *websock__hmap_find(&r->ids, websock__hash_u64(id), registry_id_eq, &id);
  return n ? registry_client_of(n) : NULL;
}

/* Releases the tag map's entry of |tag| when it is |c|'s (not the
 * client's copy of the string). */
static void registry_unlink_locked(websock__registry *r, websock__client *c,
                                   const char *tag) {
  if (!tag)
    return;
  websock__hnode **slot = websock__hmap_find(&r->tags, websock__hash_str(tag),
                                             registry_tag_eq, tag);
  registry_tag *e = (registry_tag *)(void *)*slot;
  if (e && e->client == c) {
    websock__hmap_remove(&r->tags, slot);
    websock__free(e);
  }
}

/* Takes |c|'s tag away, map entry and flag; returns its string for the
 * caller to free once the lock is released. */
static char *registry_untag_locked(websock__registry *r, websock__client *c) {
  registry_unlink_locked(r, c, c->tag);
  char *old = c->tag;
  c->tag = NULL;
  websock__client_clear(c, WEBSOCK__CLIENT_HAS_TAG);
  return old;
}

/* The same for |c|'s held tag. */
static char *registry_unhold_locked(websock__registry *r, websock__client *c) {
  registry_unlink_locked(r, c, c->held_tag);
  char *old = c->held_tag;
  c->held_tag = NULL;
  return old;
}

/* Makes |c|'s held tag its tag again (its map entry stayed). */
static void registry_restore_locked(websock__client *c) {
  c->tag = c->held_tag;
  c->held_tag = NULL;
  if (c->tag)
    websock__client_set(c, WEBSOCK__CLIENT_HAS_TAG);
}

/* Tells the hook that client |id| let go of |tag|. Called without the
 * lock. */
static void registry_untagged(websock__registry *r, uint64_t id, char *tag) {
  if (tag && r->on_untag)
    r->on_untag(r->on_untag_ud, id, tag);
}

void websock__registry_remove(websock__registry *r, websock__client *c) {
  int had_tag = 0;
  char *held = NULL;
  pthread_mutex_lock(&r->mu);
  if (websock__client_has(c, WEBSOCK__CLIENT_REGISTERED)) {
    websock__hnode **slot = websock__hmap_find(
        &r->ids, websock__hash_u64(c->id), registry_id_eq, &c->id);
    if (*slot)
      websock__hmap_remove(&r->ids, slot);
    websock__client_clear(c, WEBSOCK__CLIENT_REGISTERED);
    had_tag = c->tag != NULL;
    registry_unlink_locked(r, c, c->tag);
    held = registry_unhold_locked(r, c);
  }
  pthread_mutex_unlock(&r->mu);
  /* The client keeps its copy for its last events, and only its loop
   * (this thread) changes it once it is unregistered. */
  if (had_tag)
    registry_untagged(r, c->id, c->tag);
  registry_untagged(r, c->id, held);
  websock__free(held);
}

websock__client *websock__registry_get(websock__registry *r, uint64_t id) {
  pthread_mutex_lock(&r->mu);
  websock__client *c = registry_find_id_locked(r, id);
  if (c)
    websock__client_ref(c);
  pthread_mutex_unlock(&r->mu);
  return c;
}

websock__client *websock__registry_get_tag(websock__registry *r,
                                           const char *tag) {
  size_t h = websock__hash_str(tag);
  pthread_mutex_lock(&r->mu);
  registry_tag *e = (registry_tag *)(void *)*websock__hmap_find(
      &r->tags, h, registry_tag_eq, tag);
  websock__client *c = e ? e->client : NULL;
  if (c)
    websock__client_ref(c);
  pthread_mutex_unlock(&r->mu);
  return c;
}

int websock__registry_set_tag(websock__registry *r, uint64_t id,
                              const char *tag, int claim) {
  size_t len = tag ? strlen(tag) : 0;
  registry_tag *e = NULL;
  char *copy = NULL, *old = NULL, *old_held = NULL;
  if (tag) {
    /* Allocated before the lock, so the lock is never held in malloc. */
    e = websock__malloc(sizeof *e + len + 1);
    copy = websock__malloc(len + 1);
    if (!e || !copy) {
      websock__free(e);
      websock__free(copy);
      return WEBSOCK_ERR_NOMEM;
    }
    memcpy(e->tag, tag, len + 1);
    memcpy(copy, tag, len + 1);
    e->hash = websock__hash_str(tag);
  }
  pthread_mutex_lock(&r->mu);
  websock__client *c = registry_find_id_locked(r, id);
  int rc = 0;
  if (!c || websock__client_has(c, WEBSOCK__CLIENT_CLOSING)) {
    rc = WEBSOCK_ERR_NO_SUCH_CLIENT;
  } else if (tag) {
    registry_tag *found = (registry_tag *)(void *)*websock__hmap_find(
        &r->tags, e->hash, registry_tag_eq, tag);
    if (found && found->client != c) {
      rc = WEBSOCK_ERR_TAG_TAKEN;
    } else if (found && c->tag && strcmp(c->tag, tag) == 0) {
      rc = websock__client_has(c, WEBSOCK__CLIENT_TAG_PENDING)
               ? WEBSOCK__TAG_STILL_PENDING
               : WEBSOCK__TAG_UNCHANGED;
    } else if (found) {
      /* Its held tag, asked for again: settled as it was, and the pending
       * one goes. */
      old = registry_untag_locked(r, c);
      registry_restore_locked(c);
      websock__client_clear(c, WEBSOCK__CLIENT_TAG_PENDING);
      rc = WEBSOCK__TAG_UNCHANGED;
    } else {
      if (claim && c->tag &&
          !websock__client_has(c, WEBSOCK__CLIENT_TAG_PENDING)) {
        /* Its settled tag stays its until Redis answers. */
        c->held_tag = c->tag;
        c->tag = NULL;
      } else {
        old = registry_untag_locked(r, c);
        if (!claim)
          old_held = registry_unhold_locked(r, c);
      }
      e->client = c;
      websock__hmap_insert(&r->tags, &e->node, e->hash);
      c->tag = copy;
      websock__client_set(c, WEBSOCK__CLIENT_HAS_TAG);
      if (claim)
        websock__client_set(c, WEBSOCK__CLIENT_TAG_PENDING);
      else
        websock__client_clear(c, WEBSOCK__CLIENT_TAG_PENDING);
      e = NULL;
      copy = NULL;
    }
  } else {
    old = registry_untag_locked(r, c);
    old_held = registry_unhold_locked(r, c);
    websock__client_clear(c, WEBSOCK__CLIENT_TAG_PENDING);
  }
  pthread_mutex_unlock(&r->mu);
  registry_untagged(r, id, old);
  registry_untagged(r, id, old_held);
  websock__free(old);
  websock__free(old_held);
  websock__free(e);
  websock__free(copy);
  return rc;
}

int websock__registry_claim_done(websock__registry *r, uint64_t id,
                                 const char *tag, int ok) {
  char *gone = NULL, *released = NULL;
  int changed = 0;
  pthread_mutex_lock(&r->mu);
  websock__client *c = registry_find_id_locked(r, id);
  if (c) {
    int current = c->tag && strcmp(c->tag, tag) == 0;
    if (current && websock__client_test_clear(c, WEBSOCK__CLIENT_TAG_PENDING)) {
      if (ok) {
        released = registry_unhold_locked(r, c);
      } else {
        gone = registry_untag_locked(r, c);
        registry_restore_locked(c);
        changed = 1;
      }
    } else if (!ok && current) {
      gone = registry_untag_locked(r, c);
      changed = 1;
    } else if (!ok && c->held_tag && strcmp(c->held_tag, tag) == 0) {
      gone = registry_unhold_locked(r, c);
    }
  }
  pthread_mutex_unlock(&r->mu);
  registry_untagged(r, id, released);
  websock__free(gone);
  websock__free(released);
  return changed;
}

void websock__registry_each_tag(websock__registry *r, websock__untag_fn fn,
                                void *ud) {
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->tags.nbuckets; i++)
    for (websock__hnode *n = r->tags.buckets[i]; n; n = n->next) {
      const registry_tag *e = (const registry_tag *)(const void *)n;
      fn(ud, e->client->id, e->tag);
    }
  pthread_mutex_unlock(&r->mu);
}

int websock__registry_has_tag(websock__registry *r, uint64_t id,
                              const char *tag) {
  pthread_mutex_lock(&r->mu);
  websock__client *c = registry_find_id_locked(r, id);
  int has = c && c->tag && strcmp(c->tag, tag) == 0 &&
            !websock__client_has(c, WEBSOCK__CLIENT_TAG_PENDING);
  pthread_mutex_unlock(&r->mu);
  return has;
}

int websock__registry_copy_tag(websock__registry *r, websock__client *c,
                               char *buf, size_t cap) {
  int n = 0;
  pthread_mutex_lock(&r->mu);
  if (c->tag) {
    size_t len = strlen(c->tag);
    if (len + 1 > cap) {
      n = -1;
    } else {
      memcpy(buf, c->tag, len + 1);
      n = (int)len;
    }
  }
  pthread_mutex_unlock(&r->mu);
  return n;
}
