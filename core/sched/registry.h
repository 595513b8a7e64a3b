/* Registry of open connections by id and by tag, for sends from any
 * thread. One mutex guards both maps; lookups return a referenced client.
 * Layer: sched. */
#ifndef WEBSOCK_SCHED_REGISTRY_H
#define WEBSOCK_SCHED_REGISTRY_H

#include <pthread.h>
#include <stddef.h>

#include "client.h"
#include "util/hmap.h"

/* A connection let go of a tag (set_tag replaced or removed it, or the
 * connection ended): the cluster releases it in Redis. Called on the
 * thread that let go, after the lock is released; must not block. */
typedef void (*websock__untag_fn)(void *ud, uint64_t id, const char *tag);

typedef struct websock__registry {
  pthread_mutex_t mu;         /* guards both maps, and every client's tag */
  websock__hmap ids;          /* websock__client by id (reg_node) */
  websock__hmap tags;         /* tag entries by tag */
  websock__untag_fn on_untag; /* NULL, or set before the server starts */
  void *on_untag_ud;
} websock__registry;

/* websock__registry_set_tag: the client had that very tag already
 * (settled, or still being claimed). */
#define WEBSOCK__TAG_UNCHANGED 1
#define WEBSOCK__TAG_STILL_PENDING 2

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
/* Returns 0, WEBSOCK__TAG_UNCHANGED, _STILL_PENDING, WEBSOCK_ERR_TAG_TAKEN,
 * WEBSOCK_ERR_NO_SUCH_CLIENT or WEBSOCK_ERR_NOMEM. |tag| NULL removes the
 * tag (and a held one). With |claim| (a cluster node asking Redis for
 * |tag|) the new tag is pending and the client's settled tag is held, in
 * the map still, until websock__registry_claim_done(); a pending tag
 * replaced by another is let go at once. Asking for the held tag again
 * makes it the client's settled tag (WEBSOCK__TAG_UNCHANGED: nothing to
 * ask). */
int websock__registry_set_tag(websock__registry *r, uint64_t id,
                              const char *tag, int claim);
/* Redis' answer about |tag| of client |id| (|ok|: it is the client's
 * cluster-wide). For its pending tag: on success the held tag is let go
 * (on_untag), on failure the pending one is dropped and the held one is
 * the client's again. A settled or held tag that failed (claimed again
 * after Redis came back, and another node won it) is dropped. Dropped
 * tags do not go through on_untag: Redis knows. Returns 1 when the
 * client's tag changed, else 0. */
int websock__registry_claim_done(websock__registry *r, uint64_t id,
                                 const char *tag, int ok);
/* Calls |fn| for every tag held, with the lock held (so |fn| must not
 * call into the registry): the cluster claims them again after Redis
 * came back. */
void websock__registry_each_tag(websock__registry *r, websock__untag_fn fn,
                                void *ud);
/* 1 when client |id| has |tag| as its settled tag (not one being
 * claimed), else 0. */
int websock__registry_has_tag(websock__registry *r, uint64_t id,
                              const char *tag);
/* Copies c's tag into buf (cap bytes); returns its length, 0 if none, or
 * -1 when it does not fit. */
int websock__registry_copy_tag(websock__registry *r, websock__client *c,
                               char *buf, size_t cap);

#endif
