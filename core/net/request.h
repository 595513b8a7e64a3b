/* The request object handed to the handshake hook: NUL-terminated copies
 * of the parsed head, plus the hook's answer. Layer: net. */
#ifndef WEBSOCK_NET_REQUEST_H
#define WEBSOCK_NET_REQUEST_H

#include "proto/handshake.h"
#include "util/buf.h"
#include "net.h"

struct websock_request {
  websock__conn *conn; /* the connection asking */
  int is_upgrade;      /* valid WebSocket upgrade */
  websock__buf arena;  /* NUL-terminated copies of the strings (the loop's
                          scratch buffer, lent for the request's life) */
  size_t method, path, query, origin; /* offsets into arena; 0 = none */
  size_t remote;                      /* the peer's address (offset) */
  size_t sni;                         /* TLS server name (offset) */
  size_t peer;                        /* client certificate subject */
  char accept[29];                    /* Sec-WebSocket-Accept (upgrades) */
  size_t hname[WEBSOCK__HTTP_MAX_HEADERS];
  size_t hvalue[WEBSOCK__HTTP_MAX_HEADERS];
  int nheaders;
  size_t proto[WEBSOCK__MAX_SUBPROTOCOLS];
  int nprotos;
  int selected;    /* chosen subprotocol index, -1 = none */
  void *user_data; /* initial connection user data */
  /* The answer websock_request_respond() recorded (resp_status 0: none)
   * and the header lines websock_request_add_response_header() gathered
   * for whatever response goes out, the 101 included. */
  int resp_status;
  int resp_has_body;         /* else the status's default text */
  char *resp_ctype;          /* copy; NULL for text/plain */
  websock__buf resp_body;    /* copy */
  websock__buf resp_headers; /* "Name: value\r\n" lines */
  int detached;              /* a copy owned by a deferred upgrade: no conn, its
                                own arena */
  struct websock_upgrade *deferred; /* websock_request_defer() made it */
  struct websock_upgrade *owner;    /* detached: the handle it lives in */
};

/* Builds |req| from a parsed head. Returns 0 or -1 (no memory). */
int websock__request_build(struct websock_request *req, websock__conn *c,
                           const websock__http_request *http,
                           const websock__handshake *hs, int is_upgrade);
void websock__request_free(struct websock_request *req);
/* websock_request_respond() without its state check: checks the status
 * for the kind of request, records the answer (|body| NULL: the status's
 * default text). Returns 0 or a WEBSOCK_ERR_*. (api/request.c) */
int websock__request_record(struct websock_request *r, int status,
                            const char *content_type, const void *body,
                            size_t body_len);
/* Records the answer (copies of |content_type| and |body|; |body| NULL for
 * the status's default text). Returns 0 or -1 (no memory). */
int websock__request_answer(struct websock_request *req, int status,
                            const char *content_type, const void *body,
                            size_t body_len);
/* Copies |src| into |dst|, detached from its connection and the loop's
 * scratch buffer (for a hook on an agent, or a deferred upgrade). Returns
 * 0 or -1 (no memory). */
int websock__request_copy(struct websock_request *dst,
                          const struct websock_request *src);

#endif
