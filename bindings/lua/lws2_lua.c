/* lws2_lua: see lws2_lua.h. Plain C over the public API; no Lua here. */
#include "lws2_lua.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct lws2_server {
  websock_config *cfg; /* until lws2_create() */
  websock_server *srv; /* after lws2_create(), until lws2_free() */
};

lws2_server *lws2_new(void) {
  lws2_server *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  if (websock_config_new(&h->cfg) != 0) {
    free(h);
    return NULL;
  }
  websock_config_set_delivery(h->cfg, WEBSOCK_DELIVERY_QUEUED);
  return h;
}

void lws2_free(lws2_server *h) {
  if (!h)
    return;
  websock_config_free(h->cfg);
  h->cfg = NULL;
  websock_server_free(h->srv);
  h->srv = NULL;
}

void lws2_destroy(lws2_server *h) {
  lws2_free(h);
  free(h);
}

websock_config *lws2_config_of(lws2_server *h) {
  return h ? h->cfg : NULL;
}

websock_server *lws2_server_of(lws2_server *h) {
  return h ? h->srv : NULL;
}

/* Integral, non-negative and at most |max|. */
static int lws2_whole(double v, double max) {
  return !isnan(v) && v >= 0 && v <= max && floor(v) == v;
}

int lws2_set_option(lws2_server *h, const char *name, double v) {
  if (!h || !name)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg)
    return WEBSOCK_ERR_STATE;
  websock_config *c = h->cfg;
  if (!lws2_whole(v, 9007199254740992.0))
    return WEBSOCK_ERR_INVALID;
  int small = v <= 2147483647.0;
  if (strcmp(name, "io_threads") == 0)
    return small ? websock_config_set_io_threads(c, (int)v)
                 : WEBSOCK_ERR_INVALID;
  if (strcmp(name, "spread") == 0) /* enum websock_spread */
    return small ? websock_config_set_spread(c, (int)v) : WEBSOCK_ERR_INVALID;
  if (strcmp(name, "agents") == 0)
    return small ? websock_config_set_agents(c, (int)v) : WEBSOCK_ERR_INVALID;
  if (strcmp(name, "control_events") == 0)
    return websock_config_set_control_events(c, v != 0);
  if (strcmp(name, "max_message_size") == 0)
    return websock_config_set_max_message_size(c, (uint64_t)v);
  if (strcmp(name, "max_frame_size") == 0)
    return websock_config_set_max_frame_size(c, (uint64_t)v);
  if (strcmp(name, "max_handshake_size") == 0)
    return websock_config_set_max_handshake_size(c, (size_t)v);
  if (strcmp(name, "max_outbound") == 0)
    return websock_config_set_max_outbound(c, (size_t)v);
  if (strcmp(name, "fragment_size") == 0)
    return websock_config_set_fragment_size(c, (size_t)v);
  if (v > 4294967295.0)
    return WEBSOCK_ERR_INVALID;
  unsigned u = (unsigned)v;
  if (strcmp(name, "handshake_timeout") == 0)
    return websock_config_set_handshake_timeout(c, u);
  if (strcmp(name, "idle_timeout") == 0)
    return websock_config_set_idle_timeout(c, u);
  if (strcmp(name, "ping_interval") == 0)
    return websock_config_set_ping_interval(c, u);
  if (strcmp(name, "close_timeout") == 0)
    return websock_config_set_close_timeout(c, u);
  if (strcmp(name, "max_connections") == 0)
    return websock_config_set_max_connections(c, u);
  if (strcmp(name, "agent_budget") == 0)
    return websock_config_set_agent_budget(c, u);
  return WEBSOCK_ERR_INVALID;
}

int lws2_create(lws2_server *h) {
  if (!h)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg || h->srv)
    return WEBSOCK_ERR_STATE;
  int rc = websock_server_new(&h->srv, h->cfg);
  if (rc == 0) {
    websock_config_free(h->cfg);
    h->cfg = NULL;
  }
  return rc;
}

static volatile sig_atomic_t lws2_signal;

static void lws2_on_signal(int sig) {
  lws2_signal = sig;
}

int lws2_catch_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = lws2_on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
    return WEBSOCK_ERR_SYSTEM;
  return 0;
}

int lws2_take_signal(void) {
  int s = lws2_signal;
  lws2_signal = 0;
  return s;
}
