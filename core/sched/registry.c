/* Id and tag maps of open connections (see registry.h). Layer: sched. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "websock.h"

struct websock__tag_entry {
  websock__tag_entry *next;
  websock__client *client;
  size_t hash;
  char tag[]; /* NUL-terminated */
};

static size_t registry_hash_id(uint64_t id) {
  id ^= id >> 33;
  id *= 0xff51afd7ed558ccdULL;
  id ^= id >> 33;
  return (size_t)id;
}

static size_t registry_hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++) {
    h ^= (uint8_t)*s;
    h *= 1099511628211ULL;
  }
  return (size_t)h;
}

int websock__registry_init(websock__registry *r) {
  memset(r, 0, sizeof *r);
  r->nids_buckets = 1024;
  r->ntag_buckets = 256;
  r->ids = calloc(r->nids_buckets, sizeof *r->ids);
  r->tags = calloc(r->ntag_buckets, sizeof *r->tags);
  if (!r->ids || !r->tags || pthread_mutex_init(&r->mu, NULL)) {
    free(r->ids);
    free(r->tags);
    return -1;
  }
  return 0;
}

void websock__registry_destroy(websock__registry *r) {
  for (size_t i = 0; i < r->ntag_buckets; i++) {
    websock__tag_entry *e = r->tags[i];
    while (e) {
      websock__tag_entry *n = e->next;
      free(e);
      e = n;
    }
  }
  free(r->tags);
  free(r->ids);
  pthread_mutex_destroy(&r->mu);
}

static void registry_grow_ids_locked(websock__registry *r) {
  size_t nb = r->nids_buckets * 2;
  websock__client **nt = calloc(nb, sizeof *nt);
  if (!nt)
    return; /* keep the longer chains; still correct */
  for (size_t i = 0; i < r->nids_buckets; i++) {
    websock__client *c = r->ids[i];
    while (c) {
      websock__client *n = c->reg_next;
      size_t b = registry_hash_id(c->id) & (nb - 1);
      c->reg_next = nt[b];
      nt[b] = c;
      c = n;
    }
  }
  free(r->ids);
  r->ids = nt;
  r->nids_buckets = nb;
}

/* Doubles the tag table once it holds as many tags as buckets, so lookups
 * by tag stay short however many connections are tagged. */
static void registry_grow_tags_locked(websock__registry *r) {
  size_t nb = r->ntag_buckets * 2;
  websock__tag_entry **nt = calloc(nb, sizeof *nt);
  if (!nt)
    return; /* keep the longer chains; still correct */
  for (size_t i = 0; i < r->ntag_buckets; i++) {
    websock__tag_entry *e = r->tags[i];
    while (e) {
      websock__tag_entry *n = e->next;
      e->next = nt[e->hash & (nb - 1)];
      nt[e->hash & (nb - 1)] = e;
      e = n;
    }
  }
  free(r->tags);
  r->tags = nt;
  r->ntag_buckets = nb;
}

int websock__registry_add(websock__registry *r, websock__client *c) {
  pthread_mutex_lock(&r->mu);
  if (r->nids >= r->nids_buckets)
    registry_grow_ids_locked(r);
  size_t b = registry_hash_id(c->id) & (r->nids_buckets - 1);
  c->reg_next = r->ids[b];
  r->ids[b] = c;
  c->registered = 1;
  r->nids++;
  pthread_mutex_unlock(&r->mu);
  return 0;
}

static websock__tag_entry **
registry_find_tag_locked(websock__registry *r, const char *tag, size_t h) {
  websock__tag_entry **pp = &r->tags[h & (r->ntag_buckets - 1)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->hash == h && strcmp((*pp)->tag, tag) == 0)
      return pp;
  return pp;
}

static void registry_unlink_tag_locked(websock__registry *r,
                                       websock__client *c) {
  if (!c->tag)
    return;
  size_t h = registry_hash_str(c->tag);
  websock__tag_entry **pp = registry_find_tag_locked(r, c->tag, h);
  if (*pp && (*pp)->client == c) {
    websock__tag_entry *e = *pp;
    *pp = e->next;
    free(e);
    r->ntags--;
  }
}

void websock__registry_remove(websock__registry *r, websock__client *c) {
  pthread_mutex_lock(&r->mu);
  if (c->registered) {
    size_t b = registry_hash_id(c->id) & (r->nids_buckets - 1);
    for (websock__client **pp = &r->ids[b]; *pp; pp = &(*pp)->reg_next) {
      if (*pp == c) {
        *pp = c->reg_next;
        break;
      }
    }
    c->registered = 0;
    r->nids--;
    registry_unlink_tag_locked(r, c);
  }
  pthread_mutex_unlock(&r->mu);
}

websock__client *websock__registry_get(websock__registry *r, uint64_t id) {
  pthread_mutex_lock(&r->mu);
  websock__client *c = r->ids[registry_hash_id(id) & (r->nids_buckets - 1)];
  while (c && c->id != id)
    c = c->reg_next;
  if (c)
    websock__client_ref(c);
  pthread_mutex_unlock(&r->mu);
  return c;
}

websock__client *websock__registry_get_tag(websock__registry *r,
                                           const char *tag) {
  size_t h = registry_hash_str(tag);
  pthread_mutex_lock(&r->mu);
  websock__tag_entry *e = *registry_find_tag_locked(r, tag, h);
  websock__client *c = e ? e->client : NULL;
  if (c)
    websock__client_ref(c);
  pthread_mutex_unlock(&r->mu);
  return c;
}

int websock__registry_set_tag(websock__registry *r, uint64_t id,
                              const char *tag) {
  size_t len = tag ? strlen(tag) : 0;
  size_t h = tag ? registry_hash_str(tag) : 0;
  websock__tag_entry *e = NULL;
  char *copy = NULL;
  if (tag) {
    e = malloc(sizeof *e + len + 1);
    copy = malloc(len + 1);
    if (!e || !copy) {
      free(e);
      free(copy);
      return WEBSOCK_ERR_NOMEM;
    }
    memcpy(e->tag, tag, len + 1);
    memcpy(copy, tag, len + 1);
    e->hash = h;
  }
  pthread_mutex_lock(&r->mu);
  websock__client *c = r->ids[registry_hash_id(id) & (r->nids_buckets - 1)];
  while (c && c->id != id)
    c = c->reg_next;
  int rc = 0;
  if (!c || atomic_load(&c->closing)) {
    rc = WEBSOCK_ERR_NO_SUCH_CLIENT;
  } else if (tag) {
    websock__tag_entry **pp = registry_find_tag_locked(r, tag, h);
    if (*pp && (*pp)->client != c) {
      rc = WEBSOCK_ERR_TAG_TAKEN;
    } else if (!*pp) {
      registry_unlink_tag_locked(r, c);
      if (r->ntags >= r->ntag_buckets)
        registry_grow_tags_locked(r);
      e->client = c;
      e->next = r->tags[h & (r->ntag_buckets - 1)];
      r->tags[h & (r->ntag_buckets - 1)] = e;
      r->ntags++;
      free(c->tag);
      c->tag = copy;
      atomic_store(&c->has_tag, 1);
      e = NULL;
      copy = NULL;
    } /* else: it already has this very tag */
  } else {
    registry_unlink_tag_locked(r, c);
    free(c->tag);
    c->tag = NULL;
    atomic_store(&c->has_tag, 0);
  }
  pthread_mutex_unlock(&r->mu);
  free(e);
  free(copy);
  return rc;
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
