/* An intrusive chained hash table: the caller embeds a node in each
 * object, keeps the lock, and says how to hash a node and match a key. It
 * doubles its buckets as it fills, so chains stay short however many
 * objects it holds. Layer: util. */
#ifndef WEBSOCK_UTIL_HMAP_H
#define WEBSOCK_UTIL_HMAP_H

#include <stddef.h>

typedef struct websock__hnode {
  struct websock__hnode *next; /* next in the bucket's chain */
} websock__hnode;

/* The hash of a node's key (called when the table grows). */
typedef size_t (*websock__hmap_hash_fn)(const websock__hnode *n);
/* 1 when |n| holds |key|. */
typedef int (*websock__hmap_eq_fn)(const websock__hnode *n, const void *key);

typedef struct websock__hmap {
  websock__hnode **buckets; /* nbuckets chains */
  size_t nbuckets;          /* a power of two */
  size_t count;             /* nodes held */
  websock__hmap_hash_fn hash;
} websock__hmap;

/* Returns 0, or -1 when out of memory. |nbuckets| must be a power of 2. */
int websock__hmap_init(websock__hmap *m, size_t nbuckets,
                       websock__hmap_hash_fn hash);
/* Frees the buckets (the nodes are the caller's). */
void websock__hmap_free(websock__hmap *m);
/* The slot that points to the node with |key| (hash |h|), or to the NULL
 * at the end of its chain when there is none: *slot tells which. */
websock__hnode **websock__hmap_find(websock__hmap *m, size_t h,
                                    websock__hmap_eq_fn eq, const void *key);
/* Adds |n| (hash |h|), first growing the table when it holds as many
 * nodes as buckets (a failed grow only lengthens the chains). */
void websock__hmap_insert(websock__hmap *m, websock__hnode *n, size_t h);
/* Unlinks the node |*slot| points to (a slot from _find). */
void websock__hmap_remove(websock__hmap *m, websock__hnode **slot);

/* Mixes a 64-bit key (e.g. an id) into a well-spread hash. */
size_t websock__hash_u64(unsigned long long v);
/* Hashes a NUL-terminated string (FNV-1a). */
size_t websock__hash_str(const char *s);

#endif
