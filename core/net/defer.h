/* Deferred upgrades (see defer.c): the handle, and how the loop, the
 * agents and the public API use it. Layer: net. */
#ifndef WEBSOCK_NET_DEFER_H
#define WEBSOCK_NET_DEFER_H

#include <stdatomic.h>

#include "net.h"
#include "request.h"

struct websock_upgrade {
  atomic_int refs;            /* connection's, holder's, an answer job's */
  atomic_int stale;           /* the connection went, or got its 503 */
  atomic_int answered;        /* accept or reject was called */
  websock__conn *conn;        /* referenced */
  struct websock_request req; /* a detached copy of the request */
  /* The answer, written by the holder before it is posted; a refusal's
   * body and the added header lines live in |req| (resp_*). */
  int status;      /* 0: accept; else the HTTP status of the refusal */
  int selected;    /* accept: the subprotocol's index, -1 for none */
  void *user_data; /* accept: the connection's first user data */
};

/* A handle for |c| holding a copy of |req|, with the holder's reference;
 * NULL without memory. Thread: the connection's loop, or its agent. */
websock_upgrade *websock__upgrade_new(websock__conn *c,
                                      const websock_request *req);
void websock__upgrade_ref(websock_upgrade *up);
void websock__upgrade_unref(websock_upgrade *up);
/* |c| waits for |up|'s answer (DEFERRED). Returns 0 or -1 (no memory).
 * Thread: the loop. */
int websock__upgrade_wait(websock__conn *c, websock_upgrade *up);
/* The connection goes: its handle, if any, becomes stale. */
void websock__upgrade_abandon(websock__conn *c);
/* The handshake timeout passed while waiting: 503. */
void websock__upgrade_expired(websock__conn *c);
/* Keeps bytes a waiting client sent behind its head; -1 past the limit. */
int websock__upgrade_early_bytes(websock__conn *c, const uint8_t *p,
                                 size_t len);
/* Records the answer and posts it to the connection's loop, with the
 * holder's reference. Returns 0; WEBSOCK_ERR_NO_SUCH_CLIENT (stale) or
 * WEBSOCK_ERR_STATE (answered already), both consuming the reference;
 * WEBSOCK_ERR_NOMEM, which does not. Thread: any. */
int websock__upgrade_decide(websock_upgrade *up, int status, int selected,
                            void *user_data);
/* The posted answer reached the loop. */
void websock__upgrade_answer(websock__conn *c, websock_upgrade *up);
/* Hands the hook for |req| to the agents (through |c|'s strand). */
int websock__upgrade_to_agents(websock__conn *c, websock_request *req);
/* Sets sched's run_hook. */
void websock__upgrade_install(websock__sched *s);

/* upgrade.c */
/* The 101 for |req| (its accept key and selected subprotocol) and OPEN. */
void websock__upgrade_open(websock__conn *c, websock_request *req);
/* Refuses with the answer |req| recorded (websock_request_respond), else
 * with |status| and its default text, with |req|'s added header lines
 * (|req| may be NULL), then lingers. */
void websock__upgrade_refuse_with(websock__conn *c, int status,
                                  const websock_request *req);

#endif
