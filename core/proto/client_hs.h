/* The client's side of the opening handshake (RFC 6455 section 4.1), pure:
 * no I/O. Parses ws:// and wss:// URLs, writes the upgrade request, parses
 * the server's response head and checks it. Layer: proto. */
#ifndef WEBSOCK_PROTO_CLIENT_HS_H
#define WEBSOCK_PROTO_CLIENT_HS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "handshake.h"
#include "util/buf.h"

#define WEBSOCK__URL_HOST_MAX 255
#define WEBSOCK__URL_TARGET_MAX 4096

typedef struct websock__url {
  int tls;       /* 1 for wss:// */
  int ipv6;      /* 1 when the host was a bracketed IPv6 literal */
  uint16_t port; /* explicit, or 80 / 443 by scheme */
  int port_explicit;
  char host[WEBSOCK__URL_HOST_MAX + 1];     /* NUL-terminated, no brackets */
  char target[WEBSOCK__URL_TARGET_MAX + 1]; /* path and "?query" as given
                                               ("/" when the URL has no
                                               path); never the #fragment */
} websock__url;

/* Parses |url| ("ws://host[:port][/path][?query]", "wss://...", scheme
 * case-insensitive, IPv6 as "[::1]"). Refused: another scheme, userinfo
 * ("user@"), an empty host, a port that is not 1..65535 in decimal, a
 * fragment ('#', RFC 6455 §3), a host or target over its maximum, control
 * characters or spaces anywhere. Returns 0, or -1 with *why set to a
 * static text naming the problem. */
int websock__url_parse(const char *url, websock__url *out, const char **why);

/* The value of Sec-WebSocket-Key for 16 random bytes: their base64, 24
 * characters and a NUL. */
void websock__client_key(const uint8_t nonce[16], char key[25]);

/* Appends the upgrade request for |u| to |out|: "GET target HTTP/1.1",
 * Host (brackets for IPv6, ":port" unless the scheme's default), Upgrade,
 * Connection, Sec-WebSocket-Key, Sec-WebSocket-Version: 13, a
 * Sec-WebSocket-Protocol line listing |protocols| (none when
 * |nprotocols| is 0), a Sec-WebSocket-Extensions line with |extensions|
 * (NULL for none), then |headers_len| bytes of ready header lines (see
 * websock__http_header_line), and the empty line. Returns 0, or -1 with
 * |out| as it was: no memory, a protocol that is not a token, or
 * |extensions| failing websock__http_value_ok (no line injection). */
int websock__client_request(websock__buf *out, const websock__url *u,
                            const char key[25], const char *const *protocols,
                            size_t nprotocols, const char *extensions,
                            const char *headers, size_t headers_len);

/* A parsed response head. (Not "websock__http_response": that name is
 * handshake.h's response writer.) */
typedef struct websock__http_response_head {
  int status;         /* 100..599 */
  int minor_version;  /* HTTP/1.x */
  const char *reason; /* points into the buffer, may be empty */
  size_t reason_len;
  websock__http_header headers[WEBSOCK__HTTP_MAX_HEADERS];
  size_t num_headers;
} websock__http_response_head;

/* Parses a response head (status line, headers, empty line) from |buf|.
 * Returns as websock__http_parse_request: the head's length when complete,
 * WEBSOCK__HTTP_NEED_MORE, WEBSOCK__HTTP_ERR_TOO_LARGE past |max_len| or
 * WEBSOCK__HTTP_MAX_HEADERS, WEBSOCK__HTTP_ERR_BAD_REQUEST for a malformed
 * status line (not "HTTP/1.x NNN[ reason]") or header line. */
ssize_t websock__http_parse_response(const char *buf, size_t len,
                                     size_t max_len,
                                     websock__http_response_head *res);

/* First header called |name| (case-insensitive); NULL if none. */
const websock__http_header *
websock__http_response_header(const websock__http_response_head *res,
                              const char *name);

enum websock__client_hs_result {
  WEBSOCK__CHS_OK = 0,
  WEBSOCK__CHS_STATUS = -1,     /* not 101 (res->status says what) */
  WEBSOCK__CHS_UPGRADE = -2,    /* no "Upgrade: websocket" */
  WEBSOCK__CHS_CONNECTION = -3, /* no "Connection: upgrade" */
  WEBSOCK__CHS_ACCEPT = -4,     /* Sec-WebSocket-Accept missing or wrong */
  WEBSOCK__CHS_PROTOCOL = -5,   /* a subprotocol we did not offer, or more
                                   than one */
  WEBSOCK__CHS_EXTENSION = -6   /* extensions although we offered none */
};

/* Checks a parsed response to the request made with |key| and
 * |protocols|. On OK, *protocol / *protocol_len give the chosen
 * subprotocol (NULL / 0 when none) and *extensions / *extensions_len the
 * value of the one Sec-WebSocket-Extensions header (NULL / 0 when none;
 * the caller checks it with websock__pmd_check_response). Extensions when
 * |offered_extensions| is 0, or more than one such header, fail. */
int websock__client_check_response(const websock__http_response_head *res,
                                   const char key[25],
                                   const char *const *protocols,
                                   size_t nprotocols, int offered_extensions,
                                   const char **protocol, size_t *protocol_len,
                                   const char **extensions,
                                   size_t *extensions_len);

/* A short static text for a websock__client_hs_result. */
const char *websock__client_hs_strerror(int result);

#endif
