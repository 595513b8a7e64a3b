/* lws2_lua: the small C layer of the Lua binding, next to the public API
 * that websock.i wraps directly.
 *
 * One handle (lws2_server) owns a websock_config in QUEUED delivery mode
 * until lws2_create() turns it into a websock_server, and frees that server
 * with lws2_free() or when Lua collects the handle. The facade calls the
 * core's own functions (websock_config_*, websock_server_*) on the pointers
 * lws2_config_of() and lws2_server_of() give; the Lua side never gets
 * called from C: events come back as return values of
 * websock_server_poll() (see websock.i).
 *
 * Every function accepts a NULL handle (Lua nil). After lws2_create() the
 * config pointer is NULL, after lws2_free() the server pointer is: the core
 * answers a NULL pointer with WEBSOCK_ERR_INVALID. Thread: the Lua state's
 * thread (the core calls are thread-safe, the handle is not meant to be
 * shared between Lua states). */
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

/* The config, until lws2_create(); NULL afterwards. */
websock_config *lws2_config_of(lws2_server *h);
/* The server, from lws2_create() until lws2_free(); NULL otherwise. */
websock_server *lws2_server_of(lws2_server *h);

/* Numeric option by name, checked against the setter's C type: io_threads,
 * spread (enum websock_spread), agents, max_message_size, max_frame_size,
 * max_handshake_size, handshake_timeout, max_outbound, idle_timeout,
 * ping_interval, close_timeout, max_connections, fragment_size,
 * control_events, agent_budget. Unknown name, or a value that is not a
 * whole number in the setter's range: WEBSOCK_ERR_INVALID; after
 * lws2_create(): WEBSOCK_ERR_STATE. */
int lws2_set_option(lws2_server *h, const char *name, double value);
/* Turns the config into a server (no thread starts yet). */
int lws2_create(lws2_server *h);

/* Opt-in SIGINT/SIGTERM catching for plain-Lua programs (never call it
 * inside nginx): installs handlers that only set a flag. Returns 0 or
 * WEBSOCK_ERR_SYSTEM. */
int lws2_catch_signals(void);
/* The last caught signal number (0 = none), then resets it. */
int lws2_take_signal(void);

#endif
