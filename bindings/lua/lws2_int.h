/* lws2_int: the handle's body, shared by the C files of the Lua binding
 * (lws2_lua.c: handle, options, waiting, draining; lws2_handshake.c: the
 * handshake hook and the queue of upgrades the Lua side answers). Not seen
 * by SWIG. */
#ifndef LWS2_INT_H
#define LWS2_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "lws2_lua.h"

/* An upgrade the hook deferred for the Lua side: queued until
 * lws2_handshake_next() takes it, then "taken" until Lua answers it. */
typedef struct lws2_pending {
  struct lws2_pending *prev, *next; /* in h->queue or h->taken */
  uint64_t ticket;                  /* Lua's name for it, > 0 */
  websock_upgrade *up;              /* held until answered */
  const char *chosen;               /* our subprotocol choice (a string of
                                       h->subprotocols), NULL for none */
} lws2_pending;

/* A doubly-linked list of pending upgrades. */
typedef struct lws2_plist {
  lws2_pending *head, *tail;
  size_t len;
} lws2_plist;

struct lws2_server {
  websock_config *cfg; /* until lws2_create() */
  websock_server *srv; /* after lws2_create(), until lws2_free() */

  /* Handshake settings: written before lws2_create(), read-only for the
   * hook (I/O threads) afterwards. */
  char **origins;       /* allowed Origin values (NULL-terminated) */
  size_t norigins;      /* entries of |origins|; 0 = any Origin */
  int origin_missing;   /* 1: a request without Origin is allowed too */
  int origin_check;     /* 1: |origins| applies (set by any lws2_add_origin) */
  char **subprotocols;  /* ours, in order of preference (NULL-terminated) */
  size_t nsubprotocols; /* entries of |subprotocols| */
  int handler;          /* 1: the Lua side answers every upgrade */

  /* 1 once lws2_stop_accepting() ran: the hook refuses upgrades (503). */
  atomic_int draining;

  /* The queue of deferred upgrades: the hook appends (I/O threads), the
   * Lua thread takes. |hs_fd| (an eventfd) is readable exactly while the
   * queue is not empty; both change under |mu|. */
  pthread_mutex_t mu;
  int mu_ready;         /* |mu| initialised */
  lws2_plist queue;     /* under |mu| */
  uint64_t next_ticket; /* under |mu| */
  int hs_fd;            /* -1 without a handler */
  /* Taken, not yet answered: the Lua thread's alone. */
  lws2_plist taken;
  int wait_fd; /* epoll set of the event fd and |hs_fd|, or -1 */
};

/* lws2_handshake.c: the hook installed by lws2_create(), and what
 * lws2_free() calls before websock_server_free(): answers every upgrade
 * still pending (503; stale ones are just released). */
int lws2__hook(websock_server *srv, websock_request *req, void *user_data);
void lws2__handshake_release(lws2_server *h);
/* Frees the handshake settings. */
void lws2__handshake_free_settings(lws2_server *h);

#endif
