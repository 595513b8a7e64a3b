/* Deferred upgrades: a handshake whose answer comes later, from any
 * thread (websock_request_defer), or from the hook run on an agent
 * (websock_config_set_handshake_on_agents). Layer: net.
 *
 * Ownership: a handle is reference-counted. The connection holds one
 * reference while it waits (in rx->deferred); the holder (user code, or
 * the agent job running the hook) holds one until it answers; the answer
 * travels to the connection's loop in a COMMAND job that carries the
 * holder's reference. The handle holds a reference on the connection, so
 * its memory outlives the handle; |stale| tells a late answer that the
 * connection has gone (client left, 503 at the handshake timeout, server
 * stop) without touching anything else. */
#include <stdlib.h>
#include <string.h>

#include "defer.h"
#include "request.h"
#include "util/alloc.h"

websock_upgrade *websock__upgrade_new(websock__conn *c,
                                      const websock_request *req) {
  websock_upgrade *up = websock__calloc(1, sizeof *up);
  if (!up)
    return NULL;
  if (websock__request_copy(&up->req, req) < 0) {
    websock__free(up);
    return NULL;
  }
  up->req.owner = up;
  atomic_init(&up->refs, 1); /* the holder's */
  websock__client_ref(&c->base);
  up->conn = c;
  up->selected = -1;
  return up;
}

void websock__upgrade_ref(websock_upgrade *up) {
  atomic_fetch_add_explicit(&up->refs, 1, memory_order_relaxed);
}

void websock__upgrade_unref(websock_upgrade *up) {
  if (atomic_fetch_sub_explicit(&up->refs, 1, memory_order_acq_rel) != 1)
    return;
  websock__request_free(&up->req);
  websock__client_unref(&up->conn->base);
  websock__free(up);
}

int websock__upgrade_wait(websock__conn *c, websock_upgrade *up) {
  websock__rx *rx = websock__conn_rx(c);
  if (!rx)
    return -1;
  websock__upgrade_ref(up); /* the connection's */
  rx->deferred = up;
  c->state = WEBSOCK__CONN_DEFERRED;
  return 0;
}

void websock__upgrade_abandon(websock__conn *c) {
  websock_upgrade *up = c->rx ? c->rx->deferred : NULL;
  if (!up)
    return;
  c->rx->deferred = NULL;
  atomic_store_explicit(&up->stale, 1, memory_order_release);
  websock__upgrade_unref(up);
}

static int defer_post(websock_upgrade *up) {
  websock__net *n = up->conn->loop->net;
  websock__job *j = websock__pool_get(&n->sched->pool);
  if (!j)
    return WEBSOCK_ERR_NOMEM;
  j->kind = WEBSOCK__JOB_COMMAND;
  j->code = WEBSOCK__CMD_UPGRADE;
  j->ptr = up; /* with the holder's reference */
  websock__client_ref(&up->conn->base);
  j->client = &up->conn->base;
  websock__loop_post(up->conn->loop, j);
  return 0;
}

void websock__upgrade_answer(websock__conn *c, websock_upgrade *up) {
  /* A stale answer: the connection has gone, or was answered already. */
  if (c->state != WEBSOCK__CONN_DEFERRED || !c->rx || c->rx->deferred != up)
    return;
  c->rx->deferred = NULL;
  websock__upgrade_unref(up); /* the connection's; the job keeps its own */
  /* Bytes the client sent behind its head while it waited. */
  websock__buf early = c->rx->buf;
  memset(&c->rx->buf, 0, sizeof c->rx->buf);
  if (up->status == 0) {
    up->req.selected = up->selected;
    up->req.user_data = up->user_data;
    websock__upgrade_open(c, &up->req);
    if (early.len && c->state == WEBSOCK__CONN_OPEN) {
      /* They fit the loop's buffer: the head took at most its limit. */
      memcpy(c->loop->rbuf, early.data, early.len);
      websock__conn_feed(c, c->loop->rbuf, early.len);
    }
  } else {
    websock__upgrade_refuse_with(c, up->status, &up->req);
  }
  websock__buf_free(&early);
}

void websock__upgrade_expired(websock__conn *c) {
  websock__upgrade_abandon(c);
  websock__upgrade_refuse_with(c, 503, NULL);
}

int websock__upgrade_early_bytes(websock__conn *c, const uint8_t *p,
                                 size_t len) {
  websock__buf *b = &c->rx->buf;
  if (b->len + len > c->loop->net->settings->max_handshake)
    return -1; /* more than a client may send before the 101 */
  int g = websock__buf_append(b, p, len);
  websock__conn_count_alloc(c, g);
  return g < 0 ? -1 : 0;
}

/* ---- the hook on an agent ----------------------------------------------- */

int websock__upgrade_to_agents(websock__conn *c, websock_request *req) {
  websock_upgrade *up = websock__upgrade_new(c, req);
  if (!up)
    return -1;
  websock__sched *s = c->loop->net->sched;
  websock__job *j = websock__pool_get(&s->pool);
  if (!j || websock__upgrade_wait(c, up) < 0) {
    if (j)
      websock__job_release(j);
    websock__upgrade_unref(up);
    return -1;
  }
  j->kind = WEBSOCK__JOB_HOOK;
  j->ptr = up; /* with the holder's reference: the agent answers */
  websock__client_ref(&c->base);
  j->client = &c->base;
  /* Through the connection's strand, like its events. */
  websock__sched_submit(s, j);
  return 0;
}

/* sched's run_hook: runs the handshake hook on an agent, then answers
 * unless the hook deferred the answer further. */
static void defer_run_hook(websock__sched *s, websock__job *j) {
  websock_upgrade *up = j->ptr;
  j->ptr = NULL;
  const websock__settings *st = s->settings;
  int status = WEBSOCK_ACCEPT;
  if (!atomic_load_explicit(&up->stale, memory_order_acquire))
    status = st->hs_cb(s->server, &up->req, st->hs_ud);
  int rc;
  if (up->req.resp_status) {
    /* The hook answered with websock_request_respond(): that answer, from
     * the kept request, goes out as the refusal. */
    status = up->req.resp_status;
  } else if (status == WEBSOCK_DEFER && up->req.deferred == up) {
    /* The hook took a handle of its own: its holder answers. */
    websock__upgrade_unref(up);
    return;
  }
  if (status == WEBSOCK_ACCEPT) {
    rc = websock__upgrade_decide(up, 0, up->req.selected, up->req.user_data);
  } else {
    if (!up->req.resp_status && (status < 400 || status > 599))
      status = status == WEBSOCK_DEFER ? 500 : 403;
    rc = websock__upgrade_decide(up, status, -1, NULL);
  }
  /* Posted, or consumed as stale; without memory the job's reference is
   * dropped here and the handshake timeout answers 503. */
  if (rc == WEBSOCK_ERR_NOMEM)
    websock__upgrade_unref(up);
}

void websock__upgrade_install(websock__sched *s) {
  s->run_hook = defer_run_hook;
}

int websock__upgrade_decide(websock_upgrade *up, int status, int selected,
                            void *user_data) {
  if (atomic_exchange_explicit(&up->answered, 1, memory_order_acq_rel)) {
    websock__upgrade_unref(up);
    return WEBSOCK_ERR_STATE; /* answered already */
  }
  if (atomic_load_explicit(&up->stale, memory_order_acquire)) {
    websock__upgrade_unref(up);
    return WEBSOCK_ERR_NO_SUCH_CLIENT;
  }
  up->status = status;
  up->selected = selected;
  up->user_data = user_data;
  int rc = defer_post(up);
  if (rc)
    atomic_store(&up->answered, 0);
  return rc;
}
