/* The intrusive hash table (see hmap.h). Layer: util. */
#include "hmap.h"

#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>

int websock__hmap_init(websock__hmap *m, size_t nbuckets,
                       websock__hmap_hash_fn hash) {
  m->buckets = websock__calloc(nbuckets, sizeof *m->buckets);
  m->nbuckets = nbuckets;
  m->count = 0;
  m->hash = hash;
  return m->buckets ? 0 : -1;
}

void websock__hmap_free(websock__hmap *m) {
  websock__free(m->buckets);
  m->buckets = NULL;
  m->nbuckets = m->count = 0;
}

websock__hnode **websock__hmap_find(websock__hmap *m, size_t h,
                                    websock__hmap_eq_fn eq, const void *key) {
  websock__hnode **slot = &m->buckets[h & (m->nbuckets - 1)];
  while (*slot && !eq(*slot, key))
    slot = &(*slot)->next;
  return slot;
}

static void hmap_grow(websock__hmap *m) {
  size_t nb = m->nbuckets * 2;
  websock__hnode **nt = websock__calloc(nb, sizeof *nt);
  if (!nt)
    return;
  for (size_t i = 0; i < m->nbuckets; i++) {
    websock__hnode *n = m->buckets[i];
    while (n) {
      websock__hnode *next = n->next;
      size_t b = m->hash(n) & (nb - 1);
      n->next = nt[b];
      nt[b] = n;
      n = next;
    }
  }
  websock__free(m->buckets);
  m->buckets = nt;
  m->nbuckets = nb;
}

void websock__hmap_insert(websock__hmap *m, websock__hnode *n, size_t h) {
  if (m->count >= m->nbuckets)
    hmap_grow(m);
  websock__hnode **b = &m->buckets[h & (m->nbuckets - 1)];
  n->next = *b;
  *b = n;
  m->count++;
}

void websock__hmap_remove(websock__hmap *m, websock__hnode **slot) {
  websock__hnode *n = *slot;
  *slot = n->next;
  n->next = NULL;
  m->count--;
}

size_t websock__hash_u64(unsigned long long v) {
  uint64_t x = v;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x;
}

size_t websock__hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++) {
    h ^= (uint8_t)*s;
    h *= 1099511628211ULL;
  }
  return (size_t)h;
}
