/* lws2_handshake: the handshake hook of the Lua binding and the queue of
 * upgrades the Lua side answers (see lws2_lua.h). The hook runs on the
 * server's I/O threads and never calls Lua: it decides what C can decide
 * (Origin, subprotocol, draining) and defers the rest into a queue the Lua
 * thread drains with its events. */
#include "lws2_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char LWS2_DRAINING_BODY[] = "server is shutting down";
static const char LWS2_TEXT[] = "text/plain; charset=utf-8";

/* ---- lists ------------------------------------------------------------ */

static void plist_push(lws2_plist *l, lws2_pending *p) {
  p->next = NULL;
  p->prev = l->tail;
  if (l->tail)
    l->tail->next = p;
  else
    l->head = p;
  l->tail = p;
  l->len++;
}

static void plist_remove(lws2_plist *l, lws2_pending *p) {
  if (p->prev)
    p->prev->next = p->next;
  else
    l->head = p->next;
  if (p->next)
    p->next->prev = p->prev;
  else
    l->tail = p->prev;
  p->prev = p->next = NULL;
  l->len--;
}

/* The eventfd is readable exactly while the queue is not empty. */
static void hs_signal(lws2_server *h) {
  uint64_t one = 1;
  ssize_t w = write(h->hs_fd, &one, sizeof one);
  (void)w; /* a full counter is still readable */
}

static void hs_unsignal(lws2_server *h) {
  uint64_t v;
  ssize_t r = read(h->hs_fd, &v, sizeof v);
  (void)r; /* EAGAIN: unreadable already */
}

/* ---- settings ----------------------------------------------------------- */

/* Appends a copy of |s| to the NULL-terminated list |*list| of |*n|. */
static int strlist_add(char ***list, size_t *n, const char *s) {
  char *copy = strdup(s);
  char **grown = copy ? realloc(*list, (*n + 2) * sizeof *grown) : NULL;
  if (!grown) {
    free(copy);
    return WEBSOCK_ERR_NOMEM;
  }
  grown[(*n)++] = copy;
  grown[*n] = NULL;
  *list = grown;
  return 0;
}

static void strlist_free(char ***list, size_t *n) {
  for (size_t i = 0; i < *n; i++)
    free((*list)[i]);
  free(*list);
  *list = NULL;
  *n = 0;
}

int lws2_add_origin(lws2_server *h, const char *origin) {
  if (!h)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg)
    return WEBSOCK_ERR_STATE;
  h->origin_check = 1;
  if (!origin) {
    h->origin_missing = 1;
    return 0;
  }
  return strlist_add(&h->origins, &h->norigins, origin);
}

int lws2_add_subprotocol(lws2_server *h, const char *name) {
  if (!h || !name || !*name)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg)
    return WEBSOCK_ERR_STATE;
  return strlist_add(&h->subprotocols, &h->nsubprotocols, name);
}

int lws2_set_handshake_handler(lws2_server *h, int enable) {
  if (!h)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg)
    return WEBSOCK_ERR_STATE;
  h->handler = enable != 0;
  return 0;
}

void lws2__handshake_free_settings(lws2_server *h) {
  strlist_free(&h->origins, &h->norigins);
  strlist_free(&h->subprotocols, &h->nsubprotocols);
  h->origin_check = h->origin_missing = h->handler = 0;
}

/* ---- the hook (I/O threads) ---------------------------------------------- */

static int origin_allowed(const lws2_server *h, const char *origin) {
  if (!h->origin_check)
    return 1;
  if (!origin)
    return h->origin_missing;
  for (size_t i = 0; i < h->norigins; i++)
    if (strcmp(h->origins[i], origin) == 0)
      return 1;
  return 0;
}

/* The first of our subprotocols the client offered, or NULL. */
static const char *choose_subprotocol(const lws2_server *h,
                                      const websock_request *req) {
  int offered = websock_request_subprotocol_count(req);
  for (size_t i = 0; i < h->nsubprotocols; i++)
    for (int j = 0; j < offered; j++)
      if (strcmp(h->subprotocols[i], websock_request_subprotocol(req, j)) == 0)
        return h->subprotocols[i];
  return NULL;
}

/* Answers with |status| and |body|; the status returned is what the core
 * sends bare when there was no memory for the body (once answered, the
 * core ignores it). */
static int refuse(websock_request *req, int status, const char *body) {
  websock_request_respond(req, status, LWS2_TEXT, body, strlen(body));
  return status;
}

/* 403 with the body the websockets library (and the Python binding) sends:
 * "Failed to open a WebSocket connection: invalid Origin header: X.\n", or
 * "...: missing Origin header.\n". */
static int refuse_origin(websock_request *req, const char *origin) {
  static const char head[] = "Failed to open a WebSocket connection: ";
  size_t cap = sizeof head + (origin ? strlen(origin) : 0) + 32;
  char *body = malloc(cap);
  if (!body)
    return 403;
  if (origin)
    snprintf(body, cap, "%sinvalid Origin header: %s.\n", head, origin);
  else
    snprintf(body, cap, "%smissing Origin header.\n", head);
  refuse(req, 403, body);
  free(body);
  return 403;
}

int lws2__hook(websock_server *srv, websock_request *req, void *user_data) {
  (void)srv;
  lws2_server *h = user_data;
  if (!websock_request_is_upgrade(req))
    return WEBSOCK_ACCEPT; /* plain HTTP: the static routes, else 426 */
  if (atomic_load_explicit(&h->draining, memory_order_relaxed)) {
    websock_request_add_response_header(req, "Retry-After", "1");
    return refuse(req, 503, LWS2_DRAINING_BODY);
  }
  const char *origin = websock_request_origin(req);
  if (!origin_allowed(h, origin))
    return refuse_origin(req, origin);
  const char *chosen = choose_subprotocol(h, req);
  if (!h->handler) {
    if (chosen)
      websock_request_select_subprotocol(req, chosen);
    return WEBSOCK_ACCEPT;
  }
  lws2_pending *p = calloc(1, sizeof *p);
  if (!p)
    return 503;
  if (websock_request_defer(req, &p->up) != 0) {
    free(p);
    return 500;
  }
  p->chosen = chosen;
  pthread_mutex_lock(&h->mu);
  p->ticket = ++h->next_ticket;
  plist_push(&h->queue, p);
  if (h->queue.len == 1)
    hs_signal(h);
  pthread_mutex_unlock(&h->mu);
  return WEBSOCK_DEFER;
}

/* ---- the Lua side ------------------------------------------------------- */

int lws2_handshake_next(lws2_server *h, uint64_t *ticket,
                        const websock_request **req, const char **subprotocol) {
  *ticket = 0;
  *req = NULL;
  *subprotocol = NULL;
  if (!h || !h->mu_ready)
    return 0;
  pthread_mutex_lock(&h->mu);
  lws2_pending *p = h->queue.head;
  if (p) {
    plist_remove(&h->queue, p);
    if (h->queue.len == 0)
      hs_unsignal(h);
  }
  pthread_mutex_unlock(&h->mu);
  if (!p)
    return 0;
  plist_push(&h->taken, p);
  *ticket = p->ticket;
  *req = websock_upgrade_request(p->up);
  *subprotocol = p->chosen;
  return 1;
}

/* The taken upgrade |ticket|: answers come mostly in the order they were
 * taken, so the search from the oldest ends at once. */
static lws2_pending *find_taken(lws2_server *h, uint64_t ticket) {
  if (!h)
    return NULL;
  for (lws2_pending *p = h->taken.head; p; p = p->next)
    if (p->ticket == ticket)
      return p;
  return NULL;
}

/* The handle was consumed unless the answer was refused as invalid or for
 * want of memory. */
static int spend(lws2_server *h, lws2_pending *p, int rc) {
  if (rc == WEBSOCK_ERR_INVALID || rc == WEBSOCK_ERR_NOMEM)
    return rc;
  plist_remove(&h->taken, p);
  free(p);
  return rc;
}

int lws2_handshake_header(lws2_server *h, uint64_t ticket, const char *name,
                          const char *value) {
  lws2_pending *p = find_taken(h, ticket);
  if (!p)
    return WEBSOCK_ERR_INVALID;
  return websock_upgrade_add_response_header(p->up, name, value);
}

int lws2_handshake_accept(lws2_server *h, uint64_t ticket,
                          const char *subprotocol) {
  lws2_pending *p = find_taken(h, ticket);
  if (!p)
    return WEBSOCK_ERR_INVALID;
  /* The ticket rides on the OPEN event as its user data: the facade finds
   * the request it accepted by it. Tickets stay below 2^53. */
  int rc =
      websock_upgrade_accept(p->up, subprotocol, (void *)(uintptr_t)ticket);
  return spend(h, p, rc);
}

int lws2_handshake_reject(lws2_server *h, uint64_t ticket, int status,
                          const char *content_type, const void *opt_body,
                          size_t opt_body_len) {
  lws2_pending *p = find_taken(h, ticket);
  if (!p)
    return WEBSOCK_ERR_INVALID;
  int rc = websock_upgrade_reject(p->up, status, content_type, opt_body,
                                  opt_body ? opt_body_len : 0);
  return spend(h, p, rc);
}

int lws2_handshake_pending(lws2_server *h) {
  if (!h || !h->mu_ready)
    return 0;
  pthread_mutex_lock(&h->mu);
  size_t n = h->queue.len + h->taken.len;
  pthread_mutex_unlock(&h->mu);
  return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* Answers (503) and frees every upgrade of |l|. */
static void release_all(lws2_plist *l) {
  lws2_pending *p;
  while ((p = l->head) != NULL) {
    plist_remove(l, p);
    /* Stale after the join: this only drops the handle. Without memory
     * for the answer the handle would leak, so try the bare status. */
    if (websock_upgrade_reject(p->up, 503, NULL, NULL, 0) == WEBSOCK_ERR_NOMEM)
      websock_upgrade_accept(p->up, NULL, NULL);
    free(p);
  }
}

void lws2__handshake_release(lws2_server *h) {
  if (!h->mu_ready)
    return;
  pthread_mutex_lock(&h->mu);
  release_all(&h->queue);
  pthread_mutex_unlock(&h->mu);
  release_all(&h->taken);
}
