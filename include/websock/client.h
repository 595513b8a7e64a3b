/* Client mode: outgoing ws:// and wss:// connections on a server's loops,
 * with the same ids, tags, user data and events as accepted ones.
 * Include <websock.h>, not this file. */
#ifndef WEBSOCK_CLIENT_H
#define WEBSOCK_CLIENT_H

#include <stdint.h>

#include "export.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How to connect: subprotocols to offer, extra request headers, a timeout,
 * TLS trust. Made and used by one thread at a time (not thread-safe); a
 * connect copies what it needs, so the options may be changed or freed
 * right after it. The options keep the TLS context they built on their
 * first wss:// connect, so many connects with one options object load the
 * CA file once. */
typedef struct websock_connect_options websock_connect_options;

WEBSOCK_EXTERN websock_connect_options *websock_connect_options_new(void);
WEBSOCK_EXTERN void websock_connect_options_free(websock_connect_options *o);

/* Adds a subprotocol to offer (a token, at most 16 of them), in order of
 * preference. WEBSOCK_ERR_INVALID for a name that is not a token. */
WEBSOCK_EXTERN int
websock_connect_options_add_subprotocol(websock_connect_options *o,
                                        const char *name);
/* Adds a request header line ("Authorization", "Origin", "Cookie", ...).
 * Refused (WEBSOCK_ERR_INVALID): names that are not tokens, values with CR,
 * LF or other control characters, the headers the handshake writes itself
 * (Host, Upgrade, Connection, Sec-WebSocket-*), more than 8 KiB in all. */
WEBSOCK_EXTERN int
websock_connect_options_add_header(websock_connect_options *o, const char *name,
                                   const char *value);
/* One deadline for name resolution, the TCP connect, TLS and the 101, in
 * milliseconds (default 10000; 1..3600000). */
WEBSOCK_EXTERN int
websock_connect_options_set_timeout_ms(websock_connect_options *o, int ms);
/* The CA certificates (PEM) that wss:// servers are checked against; NULL
 * (the default) uses the system's store. */
WEBSOCK_EXTERN int
websock_connect_options_set_tls_ca_file(websock_connect_options *o,
                                        const char *path);
/* 1 (the default): the server's certificate must chain to a trusted CA and
 * name the URL's host; SNI is sent for host names. 0 accepts any
 * certificate: for tests only. */
WEBSOCK_EXTERN int
websock_connect_options_set_tls_verify(websock_connect_options *o, int on);
/* The largest message, and frame, the connection accepts (bytes; 0, the
 * default: the server's websock_config_set_max_message_size and frame
 * size). A larger one closes it with 1009, compressed or not. */
WEBSOCK_EXTERN int
websock_connect_options_set_max_message_size(websock_connect_options *o,
                                             uint64_t bytes);
/* 1: offer permessage-deflate (RFC 7692) with the server's config's
 * deflate parameters, or the defaults when it has none. Default 0. */
WEBSOCK_EXTERN int
websock_connect_options_set_deflate(websock_connect_options *o, int on);
/* The pointer the connection's events carry as user_data from its OPEN
 * (and in the CLOSE of a connect that failed). */
WEBSOCK_EXTERN int
websock_connect_options_set_user_data(websock_connect_options *o, void *ud);

/* Starts a connection to |url| ("ws://host[:port][/path][?query]",
 * "wss://...", IPv6 as "ws://[::1]:8080/") and returns at once with its id
 * in *id. Thread: any, once the server runs (WEBSOCK_ERR_STATE before and
 * after). Name resolution runs on a helper thread and the connect is
 * non-blocking, so no loop ever waits.
 *
 * Events are those of an accepted connection: OPEN once the server's 101
 * checked out (path, query and the subprotocol it chose set), then
 * MESSAGE, PING, PONG, DRAIN, and exactly one CLOSE. A connect that fails
 * gets a CLOSE too, without an OPEN: code 1006 and a reason naming the
 * stage ("resolve: nonexistent.invalid: Name or service not known",
 * "connect: Connection refused (127.0.0.1 port 9)", "tls: certificate
 * verify failed (hostname mismatch)", "handshake: HTTP 404 Not Found",
 * "handshake: Sec-WebSocket-Accept missing or wrong", "timeout: no answer
 * to the upgrade within 10000 ms", "stopped: the server is stopping").
 * Until OPEN the
 * id is unknown to send and close (WEBSOCK_ERR_NO_SUCH_CLIENT). Broadcasts
 * do not reach outgoing connections; topics they subscribe to do.
 *
 * Returns 0, WEBSOCK_ERR_INVALID (a bad URL or option; the reason in
 * websock_connect_error()), WEBSOCK_ERR_TLS (the CA file; the reason too),
 * WEBSOCK_ERR_STATE or WEBSOCK_ERR_NOMEM. |opts| may be NULL (defaults). */
WEBSOCK_EXTERN int websock_server_connect(websock_server *srv, const char *url,
                                          websock_connect_options *opts,
                                          uint64_t *id);
/* Why the last websock_server_connect() on this thread failed ("" when it
 * did not). */
WEBSOCK_EXTERN const char *websock_connect_error(void);

#ifdef __cplusplus
}
#endif
#endif
