/* Server configuration: create, set options, hand to websock_server_new(),
 * which copies it. Every setter returns 0 or WEBSOCK_ERR_INVALID (NULL
 * config or a value out of range). Thread: a config is not thread-safe; use
 * it from one thread at a time. */
#ifndef WEBSOCK_CONFIG_H
#define WEBSOCK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "export.h"
#include "request.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct websock_config websock_config;

enum websock_delivery {
  WEBSOCK_DELIVERY_DIRECT = 0, /* the event callback runs on agent threads
                                  (or the I/O thread when agents = 0) */
  WEBSOCK_DELIVERY_QUEUED = 1  /* events are queued for websock_server_poll()
                                  and signalled on websock_server_event_fd() */
};

/* Creates a config with the documented defaults. Returns 0 and sets *out,
 * or WEBSOCK_ERR_INVALID / WEBSOCK_ERR_NOMEM leaving *out unchanged. */
WEBSOCK_EXTERN int websock_config_new(websock_config **out);
/* Frees |cfg|; NULL is a no-op. */
WEBSOCK_EXTERN void websock_config_free(websock_config *cfg);

/* Address to listen on (default "127.0.0.1"; "0.0.0.0" for all IPv4, "::"
 * for IPv6 and IPv4) and port (default 0: the system picks a free port,
 * see websock_server_port()). The host string is copied. */
WEBSOCK_EXTERN int websock_config_set_listen(websock_config *cfg,
                                             const char *host, int port);
/* Number of I/O threads, each with its own libevent event_base (1..64,
 * default 1). */
WEBSOCK_EXTERN int websock_config_set_io_threads(websock_config *cfg, int n);
/* Number of agent threads running callbacks (0..64, default 0: callbacks
 * run inline on the I/O thread, the fastest mode for light handlers). */
WEBSOCK_EXTERN int websock_config_set_agents(websock_config *cfg, int n);
/* Delivery mode, enum websock_delivery (default DIRECT). */
WEBSOCK_EXTERN int websock_config_set_delivery(websock_config *cfg, int mode);
/* The event callback (DIRECT mode) and its user data. */
WEBSOCK_EXTERN int websock_config_set_event_callback(websock_config *cfg,
                                                     websock_event_cb cb,
                                                     void *user_data);
/* The handshake/HTTP hook (see request.h); NULL (the default) accepts
 * every valid upgrade on an allowed path and answers other requests from
 * the static routes, else with 426. */
WEBSOCK_EXTERN int
websock_config_set_handshake_callback(websock_config *cfg,
                                      websock_handshake_cb cb, void *user_data);

/* Hooks run on every agent thread (and I/O thread when agents = 0) as it
 * starts and before it ends, e.g. to keep per-thread binding state. */
typedef void (*websock_thread_cb)(websock_server *srv, void *user_data);
WEBSOCK_EXTERN int websock_config_set_thread_hooks(websock_config *cfg,
                                                   websock_thread_cb on_start,
                                                   websock_thread_cb on_stop,
                                                   void *user_data);

/* Deliver PING and PONG events (default 0: pongs are sent automatically
 * and control frames are not reported). */
WEBSOCK_EXTERN int websock_config_set_control_events(websock_config *cfg,
                                                     int enable);

/* Only accept upgrades on these paths (exact match, e.g. "/chat"; may be
 * called several times). Default: every path. Others get 404. */
WEBSOCK_EXTERN int websock_config_add_ws_path(websock_config *cfg,
                                              const char *path);
/* Serve |body| (copied) for GET |path| on plain HTTP requests when no hook
 * answered them, e.g. an HTML page next to the WebSocket endpoint. */
WEBSOCK_EXTERN int websock_config_add_http_route(websock_config *cfg,
                                                 const char *path,
                                                 const char *content_type,
                                                 const void *body,
                                                 size_t body_len);

/* Limits. Sizes in bytes, times in milliseconds. */
/* Largest request head (default 8192; 431 past it). */
WEBSOCK_EXTERN int websock_config_set_max_handshake_size(websock_config *cfg,
                                                         size_t bytes);
/* Time allowed from accept to a complete handshake (default 10000). */
WEBSOCK_EXTERN int websock_config_set_handshake_timeout(websock_config *cfg,
                                                        unsigned ms);
/* Largest message (default 1 MiB) and frame (default 0 = same as the
 * message limit) payload accepted; larger gets close 1009. */
WEBSOCK_EXTERN int websock_config_set_max_message_size(websock_config *cfg,
                                                       uint64_t bytes);
WEBSOCK_EXTERN int websock_config_set_max_frame_size(websock_config *cfg,
                                                     uint64_t bytes);
/* Outbound bytes queued per connection before sends fail with
 * WEBSOCK_ERR_BACKPRESSURE and reading from that client pauses (default
 * 8 MiB). One message larger than the limit is still accepted into an
 * empty queue. */
WEBSOCK_EXTERN int websock_config_set_max_outbound(websock_config *cfg,
                                                   size_t bytes);
/* Close a connection that sent nothing for |ms| (default 0 = never). */
WEBSOCK_EXTERN int websock_config_set_idle_timeout(websock_config *cfg,
                                                   unsigned ms);
/* Send a ping to a connection that sent nothing for |ms| (default 0 =
 * never); combine with the idle timeout to drop half-open peers. */
WEBSOCK_EXTERN int websock_config_set_ping_interval(websock_config *cfg,
                                                    unsigned ms);
/* Time to wait for the peer's close frame after ours, and for clients to
 * drain during a graceful stop (default 5000). */
WEBSOCK_EXTERN int websock_config_set_close_timeout(websock_config *cfg,
                                                    unsigned ms);
/* Most simultaneous connections (default 100000); more get HTTP 503. */
WEBSOCK_EXTERN int websock_config_set_max_connections(websock_config *cfg,
                                                      unsigned n);
/* Messages longer than |bytes| are sent as several frames of at most
 * |bytes| (default 0 = never fragment). */
WEBSOCK_EXTERN int websock_config_set_fragment_size(websock_config *cfg,
                                                    size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
