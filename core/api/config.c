/* websock_config: option setters and the deep copy a server keeps.
 * Layer: api. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "server_int.h"
#include "util/alloc.h"

struct websock_config {
  websock__settings s;
};

/* The default connection limit, from the soft RLIMIT_NOFILE (see
 * websock_config_set_max_connections): the limit less a reserve for the
 * server's own descriptors (listeners, eventfds, the spare, the user's
 * files), so that clients past it get a 503 instead of exhausting the
 * descriptors, within [16, 100000]. */
#define CONFIG_FD_RESERVE 32
#define CONFIG_MIN_CONNECTIONS 16
#define CONFIG_MAX_CONNECTIONS 100000

static unsigned config_default_max_connections(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
      rl.rlim_cur >= CONFIG_MAX_CONNECTIONS + CONFIG_FD_RESERVE)
    return CONFIG_MAX_CONNECTIONS;
  if (rl.rlim_cur < CONFIG_MIN_CONNECTIONS + CONFIG_FD_RESERVE)
    return CONFIG_MIN_CONNECTIONS;
  return (unsigned)rl.rlim_cur - CONFIG_FD_RESERVE;
}

static char *config_strdup(const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *d = websock__malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

int websock_config_new(websock_config **out) {
  if (!out)
    return WEBSOCK_ERR_INVALID;
  websock_config *c = websock__calloc(1, sizeof *c);
  if (!c)
    return WEBSOCK_ERR_NOMEM;
  websock__settings *s = &c->s;
  s->host = config_strdup("127.0.0.1");
  if (!s->host) {
    websock__free(c);
    return WEBSOCK_ERR_NOMEM;
  }
  s->io_threads = 1;
  s->max_handshake = 8192;
  s->handshake_timeout_ms = 10000;
  s->max_message = 1u << 20;
  s->max_outbound = 8u << 20;
  s->close_timeout_ms = 5000;
  s->max_connections = config_default_max_connections();
  s->slow_consumer_timeout_ms = 30000;
  s->agent_budget = 32;
  s->agent_batch = 1;
  s->deflate_window_bits = 15;
  s->deflate_mem_level = 8;
  s->deflate_level = 1;
  s->deflate_threshold = 64;
  *out = c;
  return 0;
}

void websock_config_free(websock_config *cfg) {
  if (!cfg)
    return;
  websock__settings_free(&cfg->s);
  websock__free(cfg);
}

const websock__settings *websock__config_settings(const websock_config *c) {
  return &c->s;
}

int websock_config_set_listen(websock_config *cfg, const char *host, int port) {
  if (!cfg || port < 0 || port > 65535)
    return WEBSOCK_ERR_INVALID;
  char *h = config_strdup(host ? host : "127.0.0.1");
  if (!h)
    return WEBSOCK_ERR_NOMEM;
  websock__free(cfg->s.host);
  cfg->s.host = h;
  cfg->s.port = port;
  return 0;
}

/* The setters that check one value and store it: name, argument type,
 * settings field, and the condition on the value |v|. */
#define CONFIG_VALUE_SETTERS(X)                                                \
  X(io_threads, int, io_threads, v >= 1 && v <= WEBSOCK__MAX_IO_THREADS)       \
  X(spread, int, spread,                                                       \
    v == WEBSOCK_SPREAD_LEAST_CONNECTIONS || v == WEBSOCK_SPREAD_ROUND_ROBIN)  \
  X(agents, int, agents, v >= 0 && v <= WEBSOCK__MAX_AGENTS)                   \
  X(delivery, int, delivery,                                                   \
    v == WEBSOCK_DELIVERY_DIRECT || v == WEBSOCK_DELIVERY_QUEUED)              \
  X(max_handshake_size, size_t, max_handshake, v >= 256 && v <= (1u << 20))    \
  X(handshake_timeout, unsigned, handshake_timeout_ms, v > 0)                  \
  X(max_message_size, uint64_t, max_message, v > 0)                            \
  X(max_frame_size, uint64_t, max_frame, 1)                                    \
  X(max_outbound, size_t, max_outbound, v >= 1024)                             \
  X(idle_timeout, unsigned, idle_timeout_ms, 1)                                \
  X(ping_interval, unsigned, ping_interval_ms, 1)                              \
  X(ping_timeout, unsigned, ping_timeout_ms, 1)                                \
  X(close_timeout, unsigned, close_timeout_ms, v > 0)                          \
  X(max_connections, unsigned, max_connections, v > 0)                         \
  X(slow_consumer_timeout, unsigned, slow_consumer_timeout_ms, 1)              \
  X(fragment_size, size_t, fragment_size, 1)                                   \
  X(reuse_port, int, reuse_port, v == 0 || v == 1)                             \
  X(client_only, int, client_only, v == 0 || v == 1)                           \
  X(agent_budget, unsigned, agent_budget, v >= 1 && v <= 65536)                \
  X(handshake_on_agents, int, handshake_on_agents, v == 0 || v == 1)           \
  X(agent_batch, int, agent_batch, v == 0 || v == 1)                           \
  X(tls_ctx, struct ssl_ctx_st *, tls_ctx, 1)

#define CONFIG_DEFINE_SETTER(name, type, field, valid)                         \
  int websock_config_set_##name(websock_config *cfg, type v) {                 \
    if (!cfg || !(valid))                                                      \
      return WEBSOCK_ERR_INVALID;                                              \
    cfg->s.field = v;                                                          \
    return 0;                                                                  \
  }
CONFIG_VALUE_SETTERS(CONFIG_DEFINE_SETTER)

/* The callback setters: name, callback type, and the settings fields of
 * the callback and of its user data. */
#define CONFIG_CALLBACK_SETTERS(X)                                             \
  X(event_callback, websock_event_cb, event_cb, event_ud)                      \
  X(handshake_callback, websock_handshake_cb, hs_cb, hs_ud)                    \
  X(tls_password_callback, websock_tls_password_cb, tls_pw_cb, tls_pw_ud)

#define CONFIG_DEFINE_CALLBACK_SETTER(name, type, field, ud_field)             \
  int websock_config_set_##name(websock_config *cfg, type cb,                  \
                                void *user_data) {                             \
    if (!cfg)                                                                  \
      return WEBSOCK_ERR_INVALID;                                              \
    cfg->s.field = cb;                                                         \
    cfg->s.ud_field = user_data;                                               \
    return 0;                                                                  \
  }
CONFIG_CALLBACK_SETTERS(CONFIG_DEFINE_CALLBACK_SETTER)

int websock_config_set_thread_hooks(websock_config *cfg,
                                    websock_thread_cb on_start,
                                    websock_thread_cb on_stop,
                                    void *user_data) {
  if (!cfg)
    return WEBSOCK_ERR_INVALID;
  cfg->s.on_thread_start = on_start;
  cfg->s.on_thread_stop = on_stop;
  cfg->s.thread_ud = user_data;
  return 0;
}

int websock_config_set_control_events(websock_config *cfg, int enable) {
  if (!cfg)
    return WEBSOCK_ERR_INVALID;
  cfg->s.control_events = enable != 0;
  return 0;
}

int websock_config_add_ws_path(websock_config *cfg, const char *path) {
  if (!cfg || !path || path[0] != '/')
    return WEBSOCK_ERR_INVALID;
  size_t n = 0;
  while (cfg->s.ws_paths && cfg->s.ws_paths[n])
    n++;
  char **p = websock__realloc(cfg->s.ws_paths, (n + 2) * sizeof *p);
  if (!p)
    return WEBSOCK_ERR_NOMEM;
  cfg->s.ws_paths = p;
  p[n] = config_strdup(path);
  p[n + 1] = NULL;
  return p[n] ? 0 : WEBSOCK_ERR_NOMEM;
}

static websock__route *config_route_new(const char *path, const char *ctype,
                                        const void *body, size_t len) {
  websock__route *r = websock__calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->path = config_strdup(path);
  r->content_type = config_strdup(ctype ? ctype : "text/plain");
  r->body = websock__malloc(len ? len : 1);
  r->body_len = len;
  if (!r->path || !r->content_type || !r->body) {
    websock__free(r->path);
    websock__free(r->content_type);
    websock__free(r->body);
    websock__free(r);
    return NULL;
  }
  if (len)
    memcpy(r->body, body, len);
  return r;
}

int websock_config_add_http_route(websock_config *cfg, const char *path,
                                  const char *content_type, const void *body,
                                  size_t body_len) {
  if (!cfg || !path || path[0] != '/' || (!body && body_len))
    return WEBSOCK_ERR_INVALID;
  websock__route *r = config_route_new(path, content_type, body, body_len);
  if (!r)
    return WEBSOCK_ERR_NOMEM;
  r->next = cfg->s.routes;
  cfg->s.routes = r;
  return 0;
}

int websock_config_set_tls(websock_config *cfg, const char *cert_chain_file,
                           const char *key_file) {
  if (!cfg || !cert_chain_file != !key_file)
    return WEBSOCK_ERR_INVALID;
  char *cert = NULL, *key = NULL;
  if (cert_chain_file) {
    cert = config_strdup(cert_chain_file);
    key = config_strdup(key_file);
    if (!cert || !key) {
      websock__free(cert);
      websock__free(key);
      return WEBSOCK_ERR_NOMEM;
    }
  }
  websock__free(cfg->s.tls_cert);
  websock__free(cfg->s.tls_key);
  cfg->s.tls_cert = cert;
  cfg->s.tls_key = key;
  return 0;
}

int websock_config_set_deflate(websock_config *cfg, int mode, int window_bits,
                               int mem_level, int level, size_t threshold) {
  if (!cfg || mode < WEBSOCK_DEFLATE_OFF || mode > WEBSOCK_DEFLATE_DEDICATED ||
      (window_bits && (window_bits < 9 || window_bits > 15)) ||
      (mem_level && (mem_level < 1 || mem_level > 9)) || level < -1 ||
      level > 9)
    return WEBSOCK_ERR_INVALID;
  cfg->s.deflate_mode = mode;
  cfg->s.deflate_window_bits = window_bits ? window_bits : 15;
  cfg->s.deflate_mem_level = mem_level ? mem_level : 8;
  cfg->s.deflate_level = level;
  cfg->s.deflate_threshold = threshold;
  return 0;
}

int websock_config_set_tls_verify_client(websock_config *cfg,
                                         const char *ca_file, int mode) {
  if (!cfg || mode < WEBSOCK_TLS_VERIFY_NONE ||
      mode > WEBSOCK_TLS_VERIFY_REQUIRED ||
      (mode != WEBSOCK_TLS_VERIFY_NONE && !ca_file))
    return WEBSOCK_ERR_INVALID;
  char *ca = NULL;
  if (mode != WEBSOCK_TLS_VERIFY_NONE && !(ca = config_strdup(ca_file)))
    return WEBSOCK_ERR_NOMEM;
  websock__free(cfg->s.tls_client_ca);
  cfg->s.tls_client_ca = ca;
  cfg->s.tls_verify_client = mode;
  return 0;
}

int websock_config_set_cluster(websock_config *cfg, const char *redis_url,
                               int node) {
  if (!cfg || (redis_url && (node < 0 || node > WEBSOCK__CLUSTER_NODE_MAX ||
                             websock__cluster_url_check(redis_url) < 0)))
    return WEBSOCK_ERR_INVALID;
  char *u = NULL;
  if (redis_url && !(u = config_strdup(redis_url)))
    return WEBSOCK_ERR_NOMEM;
  websock__free(cfg->s.cluster_url);
  cfg->s.cluster_url = u;
  cfg->s.cluster_node = redis_url ? node : 0;
  return 0;
}

int websock_config_set_cluster_prefix(websock_config *cfg, const char *prefix) {
  if (!cfg || (prefix && (!prefix[0] || strlen(prefix) > 64)))
    return WEBSOCK_ERR_INVALID;
  char *p = NULL;
  if (prefix && !(p = config_strdup(prefix)))
    return WEBSOCK_ERR_NOMEM;
  websock__free(cfg->s.cluster_prefix);
  cfg->s.cluster_prefix = p;
  return 0;
}

int websock_config_set_cluster_ttl(websock_config *cfg, unsigned ms) {
  if (!cfg || ms < 100 || ms > 600000)
    return WEBSOCK_ERR_INVALID;
  cfg->s.cluster_ttl_ms = ms;
  return 0;
}

int websock__settings_copy(websock__settings *d, const websock__settings *s) {
  *d = *s;
  d->host = NULL;
  d->ws_paths = NULL;
  d->routes = NULL;
  d->tls_cert = d->tls_key = d->tls_client_ca = NULL;
  d->cluster_url = d->cluster_prefix = NULL;
  if (s->cluster_url && !(d->cluster_url = config_strdup(s->cluster_url)))
    goto fail;
  if (s->cluster_prefix &&
      !(d->cluster_prefix = config_strdup(s->cluster_prefix)))
    goto fail;
  d->host = config_strdup(s->host);
  if (!d->host)
    goto fail;
  if (s->tls_cert && !(d->tls_cert = config_strdup(s->tls_cert)))
    goto fail;
  if (s->tls_key && !(d->tls_key = config_strdup(s->tls_key)))
    goto fail;
  if (s->tls_client_ca && !(d->tls_client_ca = config_strdup(s->tls_client_ca)))
    goto fail;
  if (s->ws_paths) {
    size_t n = 0;
    while (s->ws_paths[n])
      n++;
    d->ws_paths = websock__calloc(n + 1, sizeof *d->ws_paths);
    if (!d->ws_paths)
      goto fail;
    for (size_t i = 0; i < n; i++)
      if (!(d->ws_paths[i] = config_strdup(s->ws_paths[i])))
        goto fail;
  }
  websock__route **tail = &d->routes;
  for (const websock__route *r = s->routes; r; r = r->next) {
    websock__route *c =
        config_route_new(r->path, r->content_type, r->body, r->body_len);
    if (!c)
      goto fail;
    *tail = c;
    tail = &c->next;
  }
  if (!d->max_frame || d->max_frame > d->max_message)
    d->max_frame = d->max_message;
  return 0;
fail:
  websock__settings_free(d);
  return WEBSOCK_ERR_NOMEM;
}

void websock__settings_free(websock__settings *s) {
  websock__free(s->host);
  websock__free(s->cluster_url);
  websock__free(s->cluster_prefix);
  websock__free(s->tls_cert);
  websock__free(s->tls_key);
  websock__free(s->tls_client_ca);
  for (size_t i = 0; s->ws_paths && s->ws_paths[i]; i++)
    websock__free(s->ws_paths[i]);
  websock__free(s->ws_paths);
  websock__route *r = s->routes;
  while (r) {
    websock__route *n = r->next;
    websock__free(r->path);
    websock__free(r->content_type);
    websock__free(r->body);
    websock__free(r);
    r = n;
  }
  memset(s, 0, sizeof *s);
}
