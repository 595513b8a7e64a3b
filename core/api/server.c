/* websock_server lifecycle: new, start, stop, join, free; queued-mode
 * polling and stats. Layer: api. */
#include <stdlib.h>
#include <string.h>

#include "net/tls.h"
#include "server_int.h"
#include "util/alloc.h"

int websock_server_new(websock_server **out, const websock_config *cfg) {
  if (!out || !cfg)
    return WEBSOCK_ERR_INVALID;
  websock_server *srv = websock__calloc(1, sizeof *srv);
  if (!srv)
    return WEBSOCK_ERR_NOMEM;
  int rc =
      websock__settings_copy(&srv->settings, websock__config_settings(cfg));
  if (rc) {
    websock__free(srv);
    return rc;
  }
  pthread_mutex_init(&srv->mu, NULL);
  rc = websock__sched_init(&srv->sched, &srv->settings, srv);
  if (rc) {
    websock__settings_free(&srv->settings);
    pthread_mutex_destroy(&srv->mu);
    websock__free(srv);
    return rc;
  }
  rc = websock__net_init(&srv->net, &srv->settings, &srv->sched);
  /* Read certificate and key now, so a bad file fails here and not on the
   * first connection. */
  if (!rc)
    rc = websock__tls_ctx_new(&srv->settings, &srv->net.tls_ctx);
  if (!rc && srv->settings.cluster_url)
    rc = websock__cluster_new(&srv->settings, &srv->net, &srv->cluster);
  if (rc) {
    websock__cluster_free(srv->cluster);
    websock__net_destroy(&srv->net);
    websock__sched_destroy(&srv->sched);
    websock__settings_free(&srv->settings);
    pthread_mutex_destroy(&srv->mu);
    websock__free(srv);
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
    /* The link first: the loops tell it of their topics from the start. */
    if (!rc && srv->cluster) {
      rc = websock__cluster_start(srv->cluster);
      if (rc) {
        websock__cluster_join(srv->cluster);
        atomic_store(&srv->state, WEBSOCK__SERVER_JOINED);
      }
    }
    if (!rc) {
      rc = websock__sched_start(&srv->sched);
      if (!rc)
        rc = websock__net_start(&srv->net);
      if (rc) {
        /* Undo a partial start so websock__free() finds a consistent object. */
        websock__net_stop(&srv->net);
        websock__net_join(&srv->net);
        websock__cluster_join(srv->cluster);
        websock__sched_stop_join(&srv->sched);
      }
      atomic_store(&srv->state,
                   rc ? WEBSOCK__SERVER_JOINED : WEBSOCK__SERVER_RUNNING);
    }
  }
  pthread_mutex_unlock(&srv->mu);
  return rc;
}

const char *websock_server_last_error(const websock_server *srv, int *err_no) {
  if (err_no)
    *err_no = srv ? srv->net.listen_errno : 0;
  return srv ? srv->net.listen_error : "";
}

int websock_server_port(const websock_server *srv) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  if (atomic_load(&((websock_server *)srv)->state) == WEBSOCK__SERVER_NEW)
    return WEBSOCK_ERR_STATE;
  return srv->net.port;
}

int websock_server_cluster_node(const websock_server *srv) {
  int rc = websock_server_port(srv);
  if (rc < 0)
    return rc;
  return srv->cluster ? (int)websock__cluster_node(srv->cluster) : 0;
}

int websock_server_stop(websock_server *srv) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  if (atomic_load(&srv->state) == WEBSOCK__SERVER_RUNNING &&
      !atomic_exchange(&srv->stop_requested, 1))
    websock__net_stop(&srv->net);
  return 0;
}

int websock_server_stop_accepting(websock_server *srv) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  if (atomic_load(&srv->state) != WEBSOCK__SERVER_RUNNING)
    return WEBSOCK_ERR_STATE;
  return websock__net_stop_accepting(&srv->net);
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
    /* After the loops: what it delivers late waits in their mailboxes. */
    websock__cluster_join(srv->cluster);
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
  websock__cluster_join(srv->cluster); /* a server that never started */
  websock__net_destroy(&srv->net);
  websock__cluster_free(srv->cluster);
  /* After the connections: each SSL object was freed with its connection. */
  websock__tls_ctx_free(srv->net.tls_ctx);
  websock__sched_destroy(&srv->sched);
  websock__settings_free(&srv->settings);
  pthread_mutex_destroy(&srv->mu);
  websock__free(srv);
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
  return srv->sched.efd;
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

/* Size of the first published version of each stats struct: callers
 * built against it pass no less. */
#define SERVER_STATS_V1 (offsetof(websock_stats, agents) + sizeof(uint32_t))
#define SERVER_LOOP_STATS_V1 offsetof(websock_loop_stats, topics)
#define SERVER_AGENT_STATS_V1 sizeof(websock_agent_stats)

/* Copies the first |size| bytes of a filled struct |st| to |out|. */
#define SERVER_STATS_OUT(out, st, size)                                        \
  memcpy(out, &st, size < sizeof st ? size : sizeof st)

int websock_server_get_stats(websock_server *srv, websock_stats *out,
                             size_t size) {
  if (!srv || !out || size < SERVER_STATS_V1)
    return WEBSOCK_ERR_INVALID;
  websock_stats st;
  memset(&st, 0, sizeof st);
  websock__net *n = &srv->net;
  st.connections = atomic_load(&n->open_conns);
  st.connections_total = atomic_load(&n->connections_total);
  st.rejected_total = atomic_load(&n->rejected_total);
  st.io_threads = n->nloops;
  st.agents = srv->sched.nagents;
  for (unsigned i = 0; i < n->nloops; i++) {
    websock__loop *l = &n->loops[i];
    st.accepted_total += atomic_load(&l->accepted);
    st.messages_in += atomic_load(&l->messages_in);
    st.messages_out += atomic_load(&l->messages_out);
    st.bytes_in += atomic_load(&l->bytes_in);
    st.bytes_out += atomic_load(&l->bytes_out);
  }
  size_t total, in_use;
  websock__pool_counts(&srv->sched.pool, &total, &in_use);
  st.pool_size = total;
  st.pool_in_use = in_use;
  st.pool_grows = atomic_load(&srv->sched.pool.grows);
  st.pool_shrinks = atomic_load(&srv->sched.pool.shrinks);
  st.event_path_allocs = atomic_load(&srv->sched.allocs);
  websock__sched_ready_stats(&srv->sched, &st.ready_connections,
                             &st.ready_wait_max_ns);
  if (srv->cluster) {
    websock__cluster_counts cc;
    websock__cluster_counts_get(srv->cluster, &cc);
    st.cluster_up = (uint64_t)cc.up;
    st.cluster_out = cc.out;
    st.cluster_in = cc.in;
    st.cluster_dropped = cc.dropped;
    st.cluster_connects = cc.connects;
    st.cluster_tags = cc.tags;
    st.cluster_nodes = cc.nodes;
  }
  SERVER_STATS_OUT(out, st, size);
  return 0;
}

int websock_server_get_loop_stats(websock_server *srv, unsigned index,
                                  websock_loop_stats *out, size_t size) {
  if (!srv || !out || size < SERVER_LOOP_STATS_V1 || index >= srv->net.nloops)
    return WEBSOCK_ERR_INVALID;
  websock__loop *l = &srv->net.loops[index];
  websock_loop_stats st = {atomic_load(&l->nconns), atomic_load(&l->accepted),
                           atomic_load(&l->events),
                           atomic_load(&l->topics.ntopics),
                           atomic_load(&l->topics.nsubs)};
  SERVER_STATS_OUT(out, st, size);
  return 0;
}

int websock_server_get_agent_stats(websock_server *srv, unsigned index,
                                   websock_agent_stats *out, size_t size) {
  if (!srv || !out || size < SERVER_AGENT_STATS_V1 ||
      index >= srv->sched.nagents)
    return WEBSOCK_ERR_INVALID;
  websock_agent_stats st = {0, 0};
  if (srv->sched.agents) { /* made by websock_server_start() */
    st.events = atomic_load(&srv->sched.agents[index].events);
    st.busy_ns = atomic_load(&srv->sched.agents[index].busy_ns);
  }
  SERVER_STATS_OUT(out, st, size);
  return 0;
}
