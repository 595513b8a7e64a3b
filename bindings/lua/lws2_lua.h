/* lws2_lua: the small C layer the Lua binding wraps with SWIG.
 *
 * One handle (lws2_server) owns a websock_config until lws2_create() turns
 * it into a websock_server in QUEUED delivery mode. The Lua side never gets
 * called from C: it polls events with lws2_poll() (see websock.i for the
 * typemap that returns an event as multiple Lua values).
 *
 * Every function accepts a NULL handle (Lua nil) and returns
 * WEBSOCK_ERR_INVALID; after lws2_free() the handle stays valid but empty,
 * so every call returns WEBSOCK_ERR_INVALID instead of touching freed
 * memory. Thread: the Lua state's thread (the core calls are thread-safe,
 * the handle itself is not meant to be shared between Lua states). */
#ifndef LWS2_LUA_H
#define LWS2_LUA_H

#include <stddef.h>
#include <stdint.h>

#include <websock.h>

typedef struct lws2_server lws2_server;

/* A new handle holding a default config in QUEUED mode, or NULL (no
 * memory). */
lws2_server *lws2_new(void);
/* Stops, joins and frees the server (and the config); idempotent. */
void lws2_free(lws2_server *h);
/* lws2_free() then releases the handle itself (the Lua __gc). */
void lws2_destroy(lws2_server *h);

/* Options, only before lws2_create(); WEBSOCK_ERR_STATE afterwards. */
int lws2_set_listen(lws2_server *h, const char *host, int port);
/* Numeric option by name: io_threads, spread (enum websock_spread),
 * agents, max_message_size,
 * max_frame_size, max_handshake_size, handshake_timeout, max_outbound,
 * idle_timeout, ping_interval, close_timeout, max_connections,
 * fragment_size, control_events. Unknown name or bad value:
 * WEBSOCK_ERR_INVALID. */
int lws2_set_option(lws2_server *h, const char *name, double value);
int lws2_add_ws_path(lws2_server *h, const char *path);
/* Serve wss:// with a PEM certificate chain and key (read at create). */
int lws2_set_tls(lws2_server *h, const char *cert_file, const char *key_file);
/* Why the last WEBSOCK_ERR_TLS happened on this thread. */
const char *lws2_tls_error(void);
int lws2_add_http_route(lws2_server *h, const char *path,
                        const char *content_type, const char *body,
                        size_t body_len);
/* Turns the config into a server (no thread starts yet). */
int lws2_create(lws2_server *h);

int lws2_start(lws2_server *h);
int lws2_stop(lws2_server *h);
int lws2_join(lws2_server *h);
int lws2_port(lws2_server *h);
int lws2_event_fd(lws2_server *h);

int lws2_send(lws2_server *h, uint64_t id, const char *data, size_t len,
              int opcode);
int lws2_send_tag(lws2_server *h, const char *tag, const char *data, size_t len,
                  int opcode);
int lws2_broadcast(lws2_server *h, const char *data, size_t len, int opcode,
                   uint64_t except_id);
int lws2_ping(lws2_server *h, uint64_t id, const char *data, size_t len);
int lws2_close(lws2_server *h, uint64_t id, int code, const char *reason);
int lws2_close_tag(lws2_server *h, const char *tag, int code,
                   const char *reason);
/* |tag| NULL (Lua nil) removes the tag. */
int lws2_set_tag(lws2_server *h, uint64_t id, const char *tag);
/* Returns 0 and sets *id, or an error. */
int lws2_find_tag(lws2_server *h, const char *tag, uint64_t *id);
/* Copies the tag into buf (at least 256 bytes): returns its length, 0 when
 * none, or an error. */
int lws2_get_tag(lws2_server *h, uint64_t id, char *buf, size_t cap);

/* Waits up to timeout_ms for one event: 1 and *out set (free it with
 * websock_event_free), 0, or an error. */
int lws2_poll(lws2_server *h, int timeout_ms, websock_event **out);
int lws2_get_stats(lws2_server *h, websock_stats *out);

/* Opt-in SIGINT/SIGTERM catching for plain-Lua programs (never call it
 * inside nginx): installs handlers that only set a flag. Returns 0 or
 * WEBSOCK_ERR_SYSTEM. */
int lws2_catch_signals(void);
/* The last caught signal number (0 = none), then resets it. */
int lws2_take_signal(void);

#endif
