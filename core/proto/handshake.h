/* HTTP/1.1 request parsing and the WebSocket opening handshake (RFC 6455
 * section 4), pure: no I/O. Layer: proto. */
#ifndef WEBSOCK_PROTO_HANDSHAKE_H
#define WEBSOCK_PROTO_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"

#define WEBSOCK__HTTP_MAX_HEADERS 64
#define WEBSOCK__MAX_SUBPROTOCOLS 16

/* Internal codes of the HTTP parser and the handshake check. Like every
 * internal code they sit below the public range (-1000 and less); each one
 * encodes the HTTP status to answer: -(1000 + status), see
 * websock__http_error_status(). */
#define WEBSOCK__HTTP_ERR_BASE 1000

enum websock__http_error {
  WEBSOCK__HTTP_NEED_MORE = 0,
  WEBSOCK__HTTP_ERR_BAD_REQUEST = -1400, /* malformed request: 400 */
  WEBSOCK__HTTP_ERR_TOO_LARGE = -1431    /* head over the limit or too
                                            many headers: 431 */
};

/* The HTTP status that an internal code of this header stands for. */
static inline int websock__http_error_status(int code) {
  return -code - WEBSOCK__HTTP_ERR_BASE;
}

typedef struct websock__http_header {
  const char *name; /* points into the parsed buffer, not NUL-terminated */
  size_t name_len;
  const char *value; /* leading/trailing spaces and tabs trimmed */
  size_t value_len;
} websock__http_header;

typedef struct websock__http_request {
  const char *method;
  size_t method_len;
  const char *target; /* request-target as sent: path plus "?query" */
  size_t target_len;
  int minor_version; /* 1 for HTTP/1.1; HTTP/1.0 gives 0 */
  websock__http_header headers[WEBSOCK__HTTP_MAX_HEADERS];
  size_t num_headers;
} websock__http_request;

/* Parses a request head (request line + headers + empty line) from |buf|.
 * Lines end with CRLF (a bare LF is accepted too). Returns the length of the
 * head including the final empty line when complete; WEBSOCK__HTTP_NEED_MORE
 * when incomplete and |len| < |max_len|; WEBSOCK__HTTP_ERR_TOO_LARGE when the
 * head is not complete within |max_len| bytes or has more than
 * WEBSOCK__HTTP_MAX_HEADERS headers; WEBSOCK__HTTP_ERR_BAD_REQUEST for a
 * malformed line (no method/target/version, a version other than HTTP/1.x,
 * control characters, a header without ':' or with an empty or non-token
 * name, obs-fold continuation lines). Results point into |buf|. */
ssize_t websock__http_parse_request(const char *buf, size_t len, size_t max_len,
                                    websock__http_request *req);

/* Called with the first line of a head (without its ending); returns 0 or
 * a websock__http_error. */
typedef int (*websock__http_first_line_fn)(void *ctx, const char *line,
                                           size_t n);

/* The head parser that requests and responses share: skips empty lines,
 * hands the first line to |first_line|, then parses header lines into
 * |headers| (room for WEBSOCK__HTTP_MAX_HEADERS) up to the empty line.
 * Returns as websock__http_parse_request. */
ssize_t websock__http_parse_head(const char *buf, size_t len, size_t max_len,
                                 websock__http_first_line_fn first_line,
                                 void *ctx, websock__http_header *headers,
                                 size_t *num_headers);

/* First of the |n| |headers| called |name| (case-insensitive); NULL if
 * none. */
const websock__http_header *
websock__http_headers_find(const websock__http_header *headers, size_t n,
                           const char *name);

/* How many of the |n| |headers| are called |name| (case-insensitive). */
size_t websock__http_headers_count(const websock__http_header *headers,
                                   size_t n, const char *name);

/* As websock__http_header_has_token, over |n| |headers|. */
int websock__http_headers_have_token(const websock__http_header *headers,
                                     size_t n, const char *name,
                                     const char *token);

/* 1 when |a| and |b| are equal but for ASCII case. */
int websock__http_ieq(const char *a, size_t alen, const char *b, size_t blen);

/* 1 when the |n| bytes at |s| are a non-empty RFC 9110 token. */
int websock__http_is_token(const char *s, size_t n);

/* Calls |fn| on every non-empty element of the comma-separated list in
 * |v| (OWS trimmed); stops and returns the first non-zero result. */
typedef int (*websock__http_item_fn)(void *ctx, const char *s, size_t n);
int websock__http_each_item(const char *v, size_t n, websock__http_item_fn fn,
                            void *ctx);

/* Standard base64 of |n| bytes with padding: 4 * ((n + 2) / 3) characters
 * and a NUL into |out|. */
void websock__base64_encode(const uint8_t *in, size_t n, char *out);

/* Finds the first header called |name| (case-insensitive); NULL if none. */
const websock__http_header *
websock__http_find_header(const websock__http_request *req, const char *name);

/* Returns 1 when some header called |name| (all of them are searched)
 * contains |token| in its comma-separated token list, case-insensitively
 * ("keep-alive, Upgrade" contains "upgrade"). */
int websock__http_header_has_token(const websock__http_request *req,
                                   const char *name, const char *token);

enum websock__handshake_result {
  WEBSOCK__HS_OK = 0,              /* a valid WebSocket upgrade request */
  WEBSOCK__HS_NOT_UPGRADE = 1,     /* a plain HTTP request (no Upgrade:
                                      websocket header): for the HTTP hook */
  WEBSOCK__HS_BAD_REQUEST = -1400, /* respond 400 */
  WEBSOCK__HS_BAD_METHOD = -1405,  /* upgrade with a method other than GET */
  WEBSOCK__HS_BAD_VERSION = -1426  /* Sec-WebSocket-Version missing or not
                                      13: respond 426 +
                                      Sec-WebSocket-Version: 13 */
};

typedef struct websock__handshake {
  const char *path; /* target up to '?' (points into the buffer) */
  size_t path_len;
  const char *query; /* after '?', without it; NULL when there is none */
  size_t query_len;
  const char *key; /* Sec-WebSocket-Key value as sent (24 base64 chars) */
  size_t key_len;
  const char *host; /* Host header value */
  size_t host_len;
  const char *origin; /* Origin header value, NULL when absent */
  size_t origin_len;
  /* offered subprotocols, from all Sec-WebSocket-Protocol headers, in order */
  const char *protocols[WEBSOCK__MAX_SUBPROTOCOLS];
  size_t protocol_lens[WEBSOCK__MAX_SUBPROTOCOLS];
  size_t num_protocols;
} websock__handshake;

/* Checks a parsed request for a WebSocket upgrade. Valid means: method GET;
 * HTTP/1.1 or later; a Host header; "Upgrade" has token "websocket";
 * "Connection" has token "upgrade"; "Sec-WebSocket-Version" is exactly 13;
 * "Sec-WebSocket-Key" is base64 of exactly 16 bytes; request-target starts
 * with '/' (origin-form). A request without "Upgrade: websocket" is
 * WEBSOCK__HS_NOT_UPGRADE (whatever its method). Fills |out| for OK and
 * NOT_UPGRADE (path/query/host/origin at least). More than
 * WEBSOCK__MAX_SUBPROTOCOLS offered protocols is a bad request. */
int websock__handshake_check(const websock__http_request *req,
                             websock__handshake *out);

/* Computes Sec-WebSocket-Accept for |key|: base64(SHA-1(key + GUID)).
 * Writes 28 characters plus a NUL into |out| (29 bytes). */
void websock__handshake_accept_key(const char *key, size_t key_len,
                                   char out[29]);

/* Writes the 101 response with the accept value, a Sec-WebSocket-Protocol
 * header when |subprotocol| is not NULL, and |headers_len| bytes of ready
 * header lines ("Name: value\r\n"..., see websock__http_header_line;
 * NULL for none). Returns the length, or 0 when |cap| is too small. */
size_t websock__handshake_response(char *out, size_t cap, const char accept[29],
                                   const char *subprotocol, const char *headers,
                                   size_t headers_len);

/* Most bytes of header lines an application may add to one response. */
#define WEBSOCK__RESPONSE_HEADERS_MAX 4096

enum websock__header_error {
  WEBSOCK__HEADER_INVALID = -1, /* not a token name, a reserved name, or a
                                   control character in the value */
  WEBSOCK__HEADER_TOO_BIG = -2, /* past WEBSOCK__RESPONSE_HEADERS_MAX */
  WEBSOCK__HEADER_NOMEM = -3
};

/* 1 when |value| may stand as a header field value: no CR, LF or other
 * control character but tab. */
int websock__http_value_ok(const char *value);

/* Appends the header line "name: value\r\n" to |out| after checking that
 * |name| is a token the library does not write itself (Connection,
 * Content-Length, Content-Type, Transfer-Encoding, Upgrade and the
 * Sec-WebSocket-* headers) and that |value| holds no CR, LF or other
 * control character but tab, so no caller can inject lines. Returns 0 or
 * a websock__header_error. */
int websock__http_header_line(websock__buf *out, const char *name,
                              const char *value);

/* Writes a complete HTTP/1.1 response with "Connection: close": status line
 * with the standard reason phrase for |status| (e.g. 400 Bad Request, 403,
 * 404, 405 + "Allow: GET", 426 Upgrade Required + "Sec-WebSocket-Version:
 * 13" + "Upgrade: websocket", 431, 500, 503), Content-Type (text/plain when
 * NULL), Content-Length, and |body| (a default short text body naming the
 * status when |body| is NULL). Returns the length of the head only when
 * |body_len| bytes of |body| are to be sent separately (|copy_body| 0), or
 * of head + body (|copy_body| 1); 0 when |cap| is too small. |headers|
 * holds |headers_len| bytes of further header lines (NULL for none). */
size_t websock__http_response(char *out, size_t cap, int status,
                              const char *content_type, const char *body,
                              size_t body_len, int copy_body,
                              const char *headers, size_t headers_len);

/* Standard reason phrase for an HTTP status ("Unknown" for others). */
const char *websock__http_reason(int status);

#endif
