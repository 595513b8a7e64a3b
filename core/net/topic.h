/* Topics: who is subscribed to what, on one I/O loop. Layer: net.
 *
 * Ownership and threads. Every I/O loop owns one websock__topics: the
 * topics that have members on that loop, each with the list of its local
 * members. Only the loop's thread reads or changes it (no lock): a
 * subscribe, unsubscribe or publish from any other thread travels to the
 * loop as a job through its mailbox (see command.c), so a subscribe and a
 * publish made in that order by one thread are applied in that order.
 *
 * A websock__tsub is one (connection, topic) membership. It is linked into
 * three places at once: the topic's member list (a publish walks it), the
 * connection's own list of topics (its end walks it) and the set's map of
 * memberships by (connection, topic) (a subscribe checks it for a
 * duplicate, an unsubscribe finds its node), so every operation costs O(1)
 * per membership whatever the sizes of the topic or of the connection's
 * list. A membership is allocated by the subscribe that makes it and freed
 * by the unsubscribe or by the end of its connection. A topic is allocated
 * with its first member and freed with its last one: an empty topic never
 * stays in the map. The maps' bucket arrays are made on first use and
 * freed with the loop.
 *
 * This part knows nothing of connections beyond an opaque owner pointer
 * and the head of the owner's list, so it is tested on its own
 * (tests/unit/test_topic.c). */
#ifndef WEBSOCK_NET_TOPIC_H
#define WEBSOCK_NET_TOPIC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/hmap.h"

/* Longest topic name, in bytes (names are 1..255 bytes, any bytes). */
#define WEBSOCK__TOPIC_MAX 255

struct websock__tsub;

typedef struct websock__topic {
  websock__hnode node;           /* in websock__topics.names; first */
  size_t hash;                   /* of the name */
  struct websock__tsub *members; /* its members on this loop, newest first */
  size_t nmembers;               /* length of that list */
  uint8_t len;                   /* of the name */
  uint8_t name[];                /* |len| bytes, not NUL-terminated */
} websock__topic;

typedef struct websock__tsub {
  websock__hnode node;                 /* in websock__topics.subs; first */
  websock__topic *topic;               /* what it is a membership of */
  void *owner;                         /* whose (a websock__conn) */
  struct websock__tsub *tprev, *tnext; /* the topic's member list */
  struct websock__tsub *oprev, *onext; /* the owner's list of topics */
} websock__tsub;

typedef struct websock__topics {
  websock__hmap names;   /* websock__topic by name */
  websock__hmap subs;    /* websock__tsub by (owner, topic) */
  atomic_size_t ntopics; /* topics held (written by the loop only,
                            read by the stats from any thread) */
  atomic_size_t nsubs;   /* memberships held (likewise) */
  /* Told when a topic gets its first member here (+1) and loses its last
   * (-1): the cluster subscribes to what its loops have members of. Set
   * before the loops run; NULL without a cluster. */
  void (*on_topic)(void *ud, const void *name, size_t len, int delta);
  void *on_topic_ud;
} websock__topics;

/* An empty set; its maps are made on first use. */
void websock__topics_init(websock__topics *t);
/* Frees every topic and membership left and the maps. Owner lists that
 * still point into the set must not be used afterwards. */
void websock__topics_free(websock__topics *t);
/* Makes |owner| (whose list of topics starts at *|head|) a member of the
 * topic |name| (1..WEBSOCK__TOPIC_MAX bytes). Returns 1 when it became
 * one, 0 when it was one already, -1 when out of memory (nothing
 * changed). */
int websock__topics_join(websock__topics *t, websock__tsub **head, void *owner,
                         const void *name, size_t len);
/* Ends |owner|'s membership of |name|. Returns 1 when it was a member, 0
 * when not. */
int websock__topics_leave(websock__topics *t, websock__tsub **head, void *owner,
                          const void *name, size_t len);
/* Ends every membership in the list at *|head| (the owner leaves). */
void websock__topics_leave_all(websock__topics *t, websock__tsub **head);
/* The topic |name|, or NULL when it has no member here. */
websock__topic *websock__topics_find(websock__topics *t, const void *name,
                                     size_t len);

#endif
