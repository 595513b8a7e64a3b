/* The HTTP request seen by the handshake hook, before the upgrade. */
#ifndef WEBSOCK_REQUEST_H
#define WEBSOCK_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The handshake hook runs on the connection's I/O thread for every complete
 * HTTP request head: WebSocket upgrades and plain HTTP requests alike (see
 * websock_request_is_upgrade()). Keep it short: it holds up that I/O thread
 * (or put it on the agents: websock_config_set_handshake_on_agents()).
 * For an upgrade, return 0 to accept (optionally after
 * websock_request_select_subprotocol()), an HTTP status (400..599) to
 * reject with that status, or WEBSOCK_DEFER after websock_request_defer()
 * to answer later from any thread. Any request, upgrade or not, may be
 * answered with websock_request_respond() (a 401 with a body, a redirect,
 * a health check's 200), with header lines from
 * websock_request_add_response_header(); the hook's return value is then
 * ignored. A plain request the hook did not answer gets the static route
 * for its path, else 426 Upgrade Required (or the status returned).
 * The request and every string from it are valid only during the call. */
typedef int (*websock_handshake_cb)(websock_server *srv, websock_request *req,
                                    void *user_data);

/* What the hook returns to answer an upgrade later (websock_request_defer). */
enum websock_handshake_answer { WEBSOCK_ACCEPT = 0, WEBSOCK_DEFER = 1 };

/* 1 for a valid WebSocket upgrade request, 0 for a plain HTTP request. */
WEBSOCK_EXTERN int websock_request_is_upgrade(const websock_request *req);
/* Method ("GET"), path without query, query without '?' (NULL if none). */
WEBSOCK_EXTERN const char *websock_request_method(const websock_request *req);
WEBSOCK_EXTERN const char *websock_request_path(const websock_request *req);
WEBSOCK_EXTERN const char *websock_request_query(const websock_request *req);
/* Value of the first header called |name| (case-insensitive), or NULL. */
WEBSOCK_EXTERN const char *websock_request_header(const websock_request *req,
                                                  const char *name);
/* Number of headers, and the name and value of header |i| (NULL if out of
 * range). */
WEBSOCK_EXTERN int websock_request_header_count(const websock_request *req);
WEBSOCK_EXTERN const char *
websock_request_header_name(const websock_request *req, int i);
WEBSOCK_EXTERN const char *
websock_request_header_value(const websock_request *req, int i);
/* Origin header, NULL if none; peer address "ip:port". */
WEBSOCK_EXTERN const char *websock_request_origin(const websock_request *req);
WEBSOCK_EXTERN const char *
websock_request_remote_addr(const websock_request *req);
/* TLS server name (SNI) the client asked for; NULL without TLS or SNI. */
WEBSOCK_EXTERN const char *websock_request_sni(const websock_request *req);
/* The id the connection has, and keeps once accepted (the OPEN event's
 * id), so what the hook learnt can be matched to it later; 0 for NULL. */
WEBSOCK_EXTERN uint64_t websock_request_id(const websock_request *req);
/* The subject of the client's verified certificate (RFC 2253, e.g.
 * "CN=alice,O=Example"); NULL without one (see
 * websock_config_set_tls_verify_client()). */
WEBSOCK_EXTERN const char *websock_request_tls_peer(const websock_request *req);
/* Subprotocols offered by the client, in its order of preference. */
WEBSOCK_EXTERN int
websock_request_subprotocol_count(const websock_request *req);
WEBSOCK_EXTERN const char *
websock_request_subprotocol(const websock_request *req, int i);
/* Chooses |name| (one of the offered subprotocols) for the 101 response.
 * Returns 0, or WEBSOCK_ERR_INVALID when |name| was not offered. */
WEBSOCK_EXTERN int websock_request_select_subprotocol(websock_request *req,
                                                      const char *name);
/* Sets the user data the connection starts with (see websock_event). */
WEBSOCK_EXTERN int websock_request_set_user_data(websock_request *req,
                                                 void *user_data);
/* Answers the request with |status|, a Content-Type (text/plain when
 * NULL) and |body_len| bytes of |body| (copied), then closes the
 * connection. For an upgrade request this refuses the upgrade with any
 * status from 200 to 599 (e.g. 401, or 302 with a Location header added
 * by websock_request_add_response_header()); a plain request may have any
 * status from 100 to 599 but 101. The response goes out when the hook
 * returns. Returns 0, WEBSOCK_ERR_INVALID (status out of range, a control
 * character in |content_type|), WEBSOCK_ERR_STATE (called twice, or after
 * websock_request_defer()), WEBSOCK_ERR_NOMEM. */
WEBSOCK_EXTERN int websock_request_respond(websock_request *req, int status,
                                           const char *content_type,
                                           const void *body, size_t body_len);

/* Adds the header line "name: value" to whatever response this request
 * gets: the 101 (e.g. Set-Cookie), a refusal (WWW-Authenticate) or the
 * response of websock_request_respond() (Location). |name| must be an
 * HTTP token other than the headers the library writes itself
 * (Connection, Content-Length, Content-Type, Transfer-Encoding, Upgrade,
 * Sec-WebSocket-*); |value| may not hold CR, LF or another control
 * character but tab. Up to 4096 bytes of lines per request. Returns 0,
 * WEBSOCK_ERR_INVALID, WEBSOCK_ERR_TOO_BIG or WEBSOCK_ERR_NOMEM. Thread:
 * in the handshake hook. */
WEBSOCK_EXTERN int websock_request_add_response_header(websock_request *req,
                                                       const char *name,
                                                       const char *value);

/* Puts off the answer to this upgrade: sets *out to a handle that
 * websock_upgrade_accept() or websock_upgrade_reject() completes later,
 * from any thread (a database or another service decides); the hook then
 * returns WEBSOCK_DEFER. The handle keeps what the answer needs (path,
 * query, headers, offered subprotocols), so |req| may go. A handle not
 * completed within the handshake timeout gets HTTP 503, and one whose
 * client left meanwhile is stale: completing it then returns
 * WEBSOCK_ERR_NO_SUCH_CLIENT, never touches freed memory. Complete every
 * handle before websock_server_free(). Returns 0, WEBSOCK_ERR_STATE (not
 * an upgrade, or deferred already), WEBSOCK_ERR_INVALID, WEBSOCK_ERR_NOMEM.
 * Thread: in the handshake hook. */
WEBSOCK_EXTERN int websock_request_defer(websock_request *req,
                                         websock_upgrade **out);

/* The request a deferred upgrade keeps (read it with the websock_request_*
 * accessors until the handle is completed). Thread: the holder of |up|. */
WEBSOCK_EXTERN const websock_request *
websock_upgrade_request(const websock_upgrade *up);

/* Accepts a deferred upgrade: 101 with |subprotocol| (one the client
 * offered, or NULL for none) and |user_data| as the connection's first
 * user data; OPEN follows. Consumes |up| on every result but
 * WEBSOCK_ERR_INVALID. Returns 0 (the answer is on its way to the
 * connection's I/O thread), WEBSOCK_ERR_NO_SUCH_CLIENT (the client left or
 * timed out), WEBSOCK_ERR_INVALID (NULL, or |subprotocol| not offered: |up|
 * is still yours), WEBSOCK_ERR_NOMEM (|up| is still yours). Thread: any. */
WEBSOCK_EXTERN int websock_upgrade_accept(websock_upgrade *up,
                                          const char *subprotocol,
                                          void *user_data);

/* Refuses a deferred upgrade with HTTP |status| (200..599 but 101), a
 * Content-Type (text/plain when NULL) and |body_len| bytes of |body|
 * (copied; NULL for the status's default text), e.g. 401 for a failed
 * login or 302 to send the client elsewhere. Consumes |up| on every
 * result but WEBSOCK_ERR_INVALID / WEBSOCK_ERR_NOMEM. Returns as
 * websock_upgrade_accept(). Thread: any. */
WEBSOCK_EXTERN int websock_upgrade_reject(websock_upgrade *up, int status,
                                          const char *content_type,
                                          const void *body, size_t body_len);

/* websock_request_add_response_header() for a deferred upgrade's answer,
 * accept or reject. Thread: the holder of |up|, before it answers. */
WEBSOCK_EXTERN int websock_upgrade_add_response_header(websock_upgrade *up,
                                                       const char *name,
                                                       const char *value);

#ifdef __cplusplus
}
#endif
#endif
