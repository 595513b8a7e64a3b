/* The HTTP request seen by the handshake hook, before the upgrade. */
#ifndef WEBSOCK_REQUEST_H
#define WEBSOCK_REQUEST_H

#include <stddef.h>

#include "export.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The handshake hook runs on the connection's I/O thread for every complete
 * HTTP request head: WebSocket upgrades and plain HTTP requests alike (see
 * websock_request_is_upgrade()). Keep it short: it holds up that I/O thread.
 * For an upgrade, return 0 to accept (optionally after
 * websock_request_select_subprotocol()), or an HTTP status (400..599) to
 * reject with that status. For a plain request, answer with
 * websock_request_respond() and return 0; returning 0 without responding
 * gives 426 Upgrade Required, and returning a status gives that status.
 * The request and every string from it are valid only during the call. */
typedef int (*websock_handshake_cb)(websock_server *srv, websock_request *req,
                                    void *user_data);

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
/* Answers a plain HTTP request with |status|, a Content-Type (text/plain
 * when NULL) and |body_len| bytes of |body| (copied), then closes the
 * connection. Returns 0, WEBSOCK_ERR_STATE when called for an upgrade
 * request or twice, WEBSOCK_ERR_NOMEM. */
WEBSOCK_EXTERN int websock_request_respond(websock_request *req, int status,
                                           const char *content_type,
                                           const void *body, size_t body_len);

#ifdef __cplusplus
}
#endif
#endif
