/* websock_server lifecycle: new, start, stop, join, free; queued-mode
 * polling and stats. Layer: api. */
#include <stdlib.h>
#include <string.h>

#include "../net/tls.h"
#include "server_int.h"

int websock_server_new(websock_server **out, const websock_config *cfg) {
  if (!out || !cfg)
    return WEBSOCK_ERR_INVALID;
  websock_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return WEBSOCK_ERR_NOMEM;
  int rc =
      websock__settings_copy(&srv->settings, websock__config_settings(cfg));
  if (rc) {
    free(srv);
    return rc;
  }
  pthread_mutex_init(&srv->mu, NULL);
  rc = websock__sched_init(&srv->sched, &srv->settings, srv);
  if (rc) {
    websock__settings_free(&srv->settings);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
    return rc;
  }
  rc = websock__net_init(&srv->net, &srv->settings, &srv->sched);
  /* Read certificate and key now, so a bad file fails here and not on the
   * first connection. */
  if (!rc)
    rc = websock__tls_ctx_new(&srv->settings, &srv->net.tls_ctx);
  if (rc) {
    websock__net_destroy(&srv->net);
    websock__sched_destroy(&srv->sched);
    websock__settings_free(&srv->settings);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
    return rc;
  }
  *out = srv;
  return 0;
}

int websock_server_start(websock_server *srv) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  pthread_mutex_lock(&srv->mu);
  int rc = WEBSOCK_ERR_STATE;
  if (atomic_load(&srv->state) == WEBSOCK__SERVER_NEW) {
    rc = websock__net_listen(&srv->net);
    if (!rc) {
      rc = websock__sched_start(&srv->sched);
      if (!rc)
        rc = websock__net_start(&srv->net);
      if (rc) {
        /* Undo a partial start so free() finds a consistent object. */
        websock__net_stop(&srv->net);
        websock__net_join(&srv->net);
        websock__sched_stop_join(&srv->sched);
      }
      atomic_store(&srv->state,
                   rc ? WEBSOCK__SERVER_JOINED : WEBSOCK__SERVER_RUNNING);
    }
  }
  pthread_mutex_unlock(&srv->mu);
  return rc;
}

int websock_server_port(const websock_server *srv) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  if (atomic_load(&((websock_server *)srv)->state) == WEBSOCK__SERVER_NEW)
    return WEBSOCK_ERR_STATE;
  return srv->net.port;
}

int websock_server_stop(websock_server *srv) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  if (atomic_load(&srv->state) == WEBSOCK__SERVER_RUNNING &&
      !atomic_exchange(&srv->stop_requested, 1))
    websock__net_stop(&srv->net);
  return 0;
}

int websock_server_join(websock_server *srv) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  if (websock__tctx.sched == &srv->sched)
    return WEBSOCK_ERR_RECURSIVE;
  pthread_mutex_lock(&srv->mu);
  int state = atomic_load(&srv->state);
  if (state == WEBSOCK__SERVER_RUNNING) {
    websock__net_join(&srv->net);
    websock__sched_stop_join(&srv->sched);
    atomic_store(&srv->state, WEBSOCK__SERVER_JOINED);
  }
  pthread_mutex_unlock(&srv->mu);
  return state == WEBSOCK__SERVER_NEW ? WEBSOCK_ERR_STATE : 0;
}

int websock_server_run(websock_server *srv) {
  int rc = websock_server_start(srv);
  return rc ? rc : websock_server_join(srv);
}

void websock_server_free(websock_server *srv) {
  if (!srv || websock__tctx.sched == &srv->sched)
    return; /* freeing from its own thread would pull the floor away */
  websock_server_stop(srv);
  websock_server_join(srv);
  websock__net_destroy(&srv->net);
  /* After the connections: each SSL object was freed with its connection. */
  websock__tls_ctx_free(srv->net.tls_ctx);
  websock__sched_destroy(&srv->sched);
  websock__settings_free(&srv->settings);
  pthread_mutex_destroy(&srv->mu);
  free(srv);
}

int websock_server_poll(websock_server *srv, int timeout_ms,
                        websock_event **out) {
  if (!srv || !out)
    return WEBSOCK_ERR_INVALID;
  if (srv->settings.delivery != WEBSOCK_DELIVERY_QUEUED)
    return WEBSOCK_ERR_STATE;
  websock__job *j = NULL;
  int r = websock__equeue_pop(&srv->sched, timeout_ms, &j);
  if (r == 1)
    *out = &j->ev;
  return r;
}

int websock_server_event_fd(websock_server *srv) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  if (srv->settings.delivery != WEBSOCK_DELIVERY_QUEUED)
    return WEBSOCK_ERR_STATE;
  return srv->sched.equeue.efd;
}

void websock_event_free(websock_event *ev) {
  if (!ev)
    return;
  websock__job *j =
      (websock__job *)(void *)((char *)ev - offsetof(websock__job, ev));
  if (ev->server)
    websock__event_done(&ev->server->sched, j);
  websock__job_release(j);
}

int websock_server_get_stats(websock_server *srv, websock_stats *out) {
  if (!srv || !out)
    return WEBSOCK_ERR_INVALID;
  memset(out, 0, sizeof *out);
  websock__net *n = &srv->net;
  out->connections = atomic_load(&n->open_conns);
  out->connections_total = atomic_load(&n->connections_total);
  out->rejected_total = atomic_load(&n->rejected_total);
  out->io_threads = n->nloops;
  out->agents = srv->sched.nagents;
  for (unsigned i = 0; i < n->nloops; i++) {
    websock__loop *l = &n->loops[i];
    out->loop_connections[i] = atomic_load(&l->nconns);
    out->loop_accepted[i] = atomic_load(&l->accepted);
    out->accepted_total += out->loop_accepted[i];
    out->messages_in += atomic_load(&l->messages_in);
    out->messages_out += atomic_load(&l->messages_out);
    out->bytes_in += atomic_load(&l->bytes_in);
    out->bytes_out += atomic_load(&l->bytes_out);
  }
  for (unsigned i = 0; i < srv->sched.nagents && srv->sched.agents; i++)
    out->agent_events[i] = atomic_load(&srv->sched.agents[i].events);
  size_t total, in_use;
  websock__pool_counts(&srv->sched.pool, &total, &in_use);
  out->pool_size = total;
  out->pool_in_use = in_use;
  out->pool_grows = atomic_load(&srv->sched.pool.grows);
  out->pool_shrinks = atomic_load(&srv->sched.pool.shrinks);
  out->event_path_allocs = atomic_load(&srv->sched.allocs);
  return 0;
}
