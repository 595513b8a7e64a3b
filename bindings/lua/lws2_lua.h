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
 * ping_interval, ping_timeout, close_timeout, max_connections,
 * fragment_size, control_events, agent_budget. Unknown name, or a value
 * that is not a whole number in the setter's range: WEBSOCK_ERR_INVALID;
 * after lws2_create(): WEBSOCK_ERR_STATE. */
int lws2_set_option(lws2_server *h, const char *name, double value);
/* Turns the config into a server (no thread starts yet) and installs the
 * handshake hook of lws2_handshake.c. */
int lws2_create(lws2_server *h);

/* ---- the handshake (lws2_handshake.c) ---------------------------------
 * A hook in C checks every upgrade against the allowed Origins, chooses
 * our subprotocol and, with a Lua handler, defers the answer: the upgrade
 * waits in a queue that lws2_wait() and lws2_event_fd() watch, the Lua
 * side takes it with lws2_handshake_next() and answers it by ticket. C
 * never calls Lua. The setters work before lws2_create() only
 * (WEBSOCK_ERR_STATE after). */

/* Allows Origin |origin| (copied; exact match); NULL allows a request
 * without an Origin header. Once called, other Origins get HTTP 403 with
 * websockets' body ("Failed to open a WebSocket connection: invalid Origin
 * header: X.\n", or "missing Origin header"). Returns 0, WEBSOCK_ERR_STATE,
 * WEBSOCK_ERR_NOMEM. */
int lws2_add_origin(lws2_server *h, const char *origin);
/* Appends |name| (copied) to our subprotocols, in order of preference:
 * the first of ours the client offered is chosen (none matching: no
 * subprotocol). Returns 0, WEBSOCK_ERR_INVALID (NULL or empty),
 * WEBSOCK_ERR_STATE, WEBSOCK_ERR_NOMEM. */
int lws2_add_subprotocol(lws2_server *h, const char *name);
/* 1: every upgrade that passed the checks above waits for the Lua side's
 * answer (within the handshake timeout, else 503). Returns 0 or
 * WEBSOCK_ERR_STATE. */
int lws2_set_handshake_handler(lws2_server *h, int enable);
/* Takes the next upgrade waiting for an answer: returns 1 and sets
 * *ticket, *req (the kept request, readable until the ticket is answered)
 * and *subprotocol (our choice, NULL for none), or 0 when none waits.
 * Thread: the Lua state's. */
int lws2_handshake_next(lws2_server *h, uint64_t *ticket,
                        const websock_request **req, const char **subprotocol);
/* Adds a header line to the answer of |ticket|
 * (websock_upgrade_add_response_header). Returns 0, WEBSOCK_ERR_INVALID
 * (unknown ticket, reserved name, CR/LF), WEBSOCK_ERR_TOO_BIG,
 * WEBSOCK_ERR_NOMEM. */
int lws2_handshake_header(lws2_server *h, uint64_t ticket, const char *name,
                          const char *value);
/* Accepts |ticket| with |subprotocol| (one the client offered, or NULL);
 * the OPEN event that follows carries |ticket| as its user data. Returns
 * as websock_upgrade_accept(); the ticket is spent unless the result is
 * WEBSOCK_ERR_INVALID (unknown ticket, subprotocol not offered) or
 * WEBSOCK_ERR_NOMEM. */
int lws2_handshake_accept(lws2_server *h, uint64_t ticket,
                          const char *subprotocol);
/* Refuses |ticket| with HTTP |status| (200..599 but 101), a Content-Type
 * (NULL: text/plain) and a body (NULL: the status's default text). Returns
 * as websock_upgrade_reject(); the ticket is spent unless the result is
 * WEBSOCK_ERR_INVALID or WEBSOCK_ERR_NOMEM. */
int lws2_handshake_reject(lws2_server *h, uint64_t ticket, int status,
                          const char *content_type, const void *opt_body,
                          size_t opt_body_len);
/* Upgrades queued or taken and not yet answered. */
int lws2_handshake_pending(lws2_server *h);

/* ---- waiting ---------------------------------------------------------- */

/* Waits up to |timeout_ms| (0: do not wait, -1: forever) until an event
 * or (with a handler) an upgrade waits. Returns 1, 0 (timed out),
 * WEBSOCK_ERR_INVALID / WEBSOCK_ERR_STATE (no server). */
int lws2_wait(lws2_server *h, int timeout_ms);
/* A descriptor readable while events or upgrades wait: the server's event
 * fd, or with a handler an epoll set of it and the upgrade queue's. Owned
 * by the handle. Returns the fd or a WEBSOCK_ERR_*. */
int lws2_event_fd(lws2_server *h);
/* Milliseconds of CLOCK_MONOTONIC (the facade's timers). */
uint64_t lws2_now_ms(void);

/* ---- draining ----------------------------------------------------------- */

/* Stops taking new connections while the open ones go on:
 * websock_server_stop_accepting() (the I/O threads close their listening
 * sockets within a moment; with reuse_port the other servers on the port
 * take every new connection, without it connects are refused), and from
 * now on the hook answers upgrades that still arrive (connections accepted
 * before the sockets closed) with 503 and Retry-After: 1. Idempotent.
 * Returns 0, or WEBSOCK_ERR_INVALID / WEBSOCK_ERR_STATE (not running) /
 * WEBSOCK_ERR_NOMEM (some I/O threads were not told; the 503 applies). */
int lws2_stop_accepting(lws2_server *h);

/* Opt-in SIGINT/SIGTERM catching for plain-Lua programs (never call it
 * inside nginx): installs handlers that only set a flag. Returns 0 or
 * WEBSOCK_ERR_SYSTEM. */
int lws2_catch_signals(void);
/* The last caught signal number (0 = none), then resets it. */
int lws2_take_signal(void);

#endif
