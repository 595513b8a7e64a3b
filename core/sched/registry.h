/* Registry of open connections by id and by tag, for sends from any
 * thread. One mutex guards both maps; lookups return a referenced client.
 * Layer: sched. */
#ifndef WEBSOCK_SCHED_REGISTRY_H
#define WEBSOCK_SCHED_REGISTRY_H

#include <pthread.h>
#include <stddef.h>

#include "client.h"
#include "util/hmap.h"

typedef struct websock__registry {
  pthread_mutex_t mu; /* guards both maps, and every client's tag */
  websock__hmap ids;  /* websock__client by id (reg_node) */
  websock__hmap tags; /* tag entries by tag */
} websock__registry;

int websock__registry_init(websock__registry *r);
void websock__registry_destroy(websock__registry *r);
/* Adds an open connection. */
void websock__registry_add(websock__registry *r, websock__client *c);
/* Removes it and releases its tag for others (the client keeps its copy of
 * the string for its last events). */
void websock__registry_remove(websock__registry *r, websock__client *c);
/* Returns the client with a new reference, or NULL. */
websock__client *websock__registry_get(websock__registry *r, uint64_t id);
websock__client *websock__registry_get_tag(websock__registry *r,
                                           const char *tag);
/* Returns 0, WEBSOCK_ERR_TAG_TAKEN, WEBSOCK_ERR_NO_SUCH_CLIENT or
 * WEBSOCK_ERR_NOMEM. |tag| NULL removes the tag. */
int websock__registry_set_tag(websock__registry *r, uint64_t id,
                              const char *tag);
/* Copies c's tag into buf (cap bytes); returns its length, 0 if none, or
 * -1 when it does not fit. */
int websock__registry_copy_tag(websock__registry *r, websock__client *c,
                               char *buf, size_t cap);

#endif
