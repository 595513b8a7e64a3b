/* lws2_lua: see lws2_lua.h. Plain C over the public API; no Lua here. */
#include "lws2_lua.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct lws2_server {
  websock_config *cfg; /* until lws2_create() */
  websock_server *srv; /* after lws2_create(), until lws2_free() */
  int started;
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

int lws2_set_listen(lws2_server *h, const char *host, int port) {
  if (!h)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg)
    return WEBSOCK_ERR_STATE;
  return websock_config_set_listen(h->cfg, host, port);
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
  return WEBSOCK_ERR_INVALID;
}

int lws2_add_ws_path(lws2_server *h, const char *path) {
  if (!h || !path)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg)
    return WEBSOCK_ERR_STATE;
  return websock_config_add_ws_path(h->cfg, path);
}

int lws2_set_tls(lws2_server *h, const char *cert_file, const char *key_file) {
  if (!h || !cert_file || !key_file)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg)
    return WEBSOCK_ERR_STATE;
  return websock_config_set_tls(h->cfg, cert_file, key_file);
}

const char *lws2_tls_error(void) {
  return websock_tls_last_error();
}

int lws2_add_http_route(lws2_server *h, const char *path,
                        const char *content_type, const char *body,
                        size_t body_len) {
  if (!h || !path)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg)
    return WEBSOCK_ERR_STATE;
  return websock_config_add_http_route(h->cfg, path, content_type, body,
                                       body_len);
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

#define LWS2_SRV(h)                                                            \
  do {                                                                         \
    if (!(h) || !(h)->srv)                                                     \
      return WEBSOCK_ERR_INVALID;                                              \
  } while (0)

int lws2_start(lws2_server *h) {
  LWS2_SRV(h);
  int rc = websock_server_start(h->srv);
  if (rc == 0)
    h->started = 1;
  return rc;
}

int lws2_stop(lws2_server *h) {
  LWS2_SRV(h);
  return websock_server_stop(h->srv);
}

int lws2_join(lws2_server *h) {
  LWS2_SRV(h);
  return websock_server_join(h->srv);
}

int lws2_port(lws2_server *h) {
  LWS2_SRV(h);
  return websock_server_port(h->srv);
}

int lws2_event_fd(lws2_server *h) {
  LWS2_SRV(h);
  return websock_server_event_fd(h->srv);
}

int lws2_send(lws2_server *h, uint64_t id, const char *data, size_t len,
              int opcode) {
  LWS2_SRV(h);
  return websock_server_send(h->srv, id, opcode, data, len);
}

int lws2_send_tag(lws2_server *h, const char *tag, const char *data, size_t len,
                  int opcode) {
  LWS2_SRV(h);
  return websock_server_send_tag(h->srv, tag, opcode, data, len);
}

int lws2_broadcast(lws2_server *h, const char *data, size_t len, int opcode,
                   uint64_t except_id) {
  LWS2_SRV(h);
  return websock_server_broadcast(h->srv, opcode, data, len, except_id);
}

int lws2_ping(lws2_server *h, uint64_t id, const char *data, size_t len) {
  LWS2_SRV(h);
  return websock_server_ping(h->srv, id, data, len);
}

int lws2_close(lws2_server *h, uint64_t id, int code, const char *reason) {
  LWS2_SRV(h);
  return websock_server_close(h->srv, id, code, reason);
}

int lws2_close_tag(lws2_server *h, const char *tag, int code,
                   const char *reason) {
  LWS2_SRV(h);
  return websock_server_close_tag(h->srv, tag, code, reason);
}

int lws2_set_tag(lws2_server *h, uint64_t id, const char *tag) {
  LWS2_SRV(h);
  return websock_server_set_tag(h->srv, id, tag);
}

int lws2_find_tag(lws2_server *h, const char *tag, uint64_t *id) {
  LWS2_SRV(h);
  return websock_server_find_tag(h->srv, tag, id);
}

int lws2_get_tag(lws2_server *h, uint64_t id, char *buf, size_t cap) {
  LWS2_SRV(h);
  return websock_server_get_tag(h->srv, id, buf, cap);
}

int lws2_poll(lws2_server *h, int timeout_ms, websock_event **out) {
  LWS2_SRV(h);
  return websock_server_poll(h->srv, timeout_ms, out);
}

int lws2_get_stats(lws2_server *h, websock_stats *out) {
  LWS2_SRV(h);
  return websock_server_get_stats(h->srv, out);
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
