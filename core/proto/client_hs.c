/* The client's side of the opening handshake (RFC 6455 section 4.1): URL
 * parsing, the upgrade request and the checks of the server's response.
 * Layer: proto (pure, no I/O; the HTTP helpers come from handshake.c). */
#include "client_hs.h"

#include <stdio.h>
#include <string.h>

/* ---- URL ---- */

static int chs_is_digit(char c) {
  return c >= '0' && c <= '9';
}

static int chs_is_hex(char c) {
  return chs_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 reg-name characters (unreserved, pct-encoded, sub-delims): what
 * may stand in a Host header without changing its meaning. */
static int chs_is_host_char(char c) {
  if (chs_is_hex(c) || (c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z'))
    return 1;
  return c != 0 && strchr("-._~%!$&'()*+,;=", c) != NULL;
}

static int chs_fail(const char **why, const char *text) {
  if (why)
    *why = text;
  return -1;
}

/* Parses the decimal port at |s| (|n| bytes) into *port. */
static int chs_parse_port(const char *s, size_t n, uint16_t *port) {
  /* Five digits at most: leading zeros would let "000080" through, and a
   * longer run cannot be a port anyway. */
  if (n == 0 || n > 5)
    return -1;
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!chs_is_digit(s[i]))
      return -1;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  if (v < 1 || v > 65535)
    return -1;
  *port = (uint16_t)v;
  return 0;
}

int websock__url_parse(const char *url, websock__url *out, const char **why) {
  memset(out, 0, sizeof *out);
  size_t len = strlen(url);
  /* Checked once for the whole text: the target goes into the request line
   * as it is, so it must hold nothing the server would split on. */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)url[i];
    if (c <= 0x20 || c >= 0x7F)
      return chs_fail(why, "space, control character or non-ASCII byte");
    if (c == '#')
      return chs_fail(why, "fragment ('#') in a WebSocket URL");
  }
  size_t i;
  if (len >= 5 && websock__http_ieq(url, 5, "ws://", 5)) {
    i = 5;
  } else if (len >= 6 && websock__http_ieq(url, 6, "wss://", 6)) {
    out->tls = 1;
    i = 6;
  } else {
    return chs_fail(why, "scheme is not ws:// or wss://");
  }
  size_t a = i;
  while (i < len && url[i] != '/' && url[i] != '?')
    i++;
  const char *auth = url + a;
  size_t auth_len = i - a;
  if (memchr(auth, '@', auth_len))
    return chs_fail(why, "userinfo ('user@') in the URL");

  const char *host;
  size_t host_len, p; /* p: offset in auth after the host */
  if (auth_len > 0 && auth[0] == '[') {
    const char *close = memchr(auth, ']', auth_len);
    if (!close)
      return chs_fail(why, "'[' without ']' in the host");
    host = auth + 1;
    host_len = (size_t)(close - host);
    /* Hex digits, colons and dots (an embedded IPv4 tail); no zone id,
     * which has no meaning in a Host header. */
    for (size_t k = 0; k < host_len; k++)
      if (!chs_is_hex(host[k]) && host[k] != ':' && host[k] != '.')
        return chs_fail(why, "bad character in the IPv6 address");
    if (host_len > 0 && !memchr(host, ':', host_len))
      return chs_fail(why, "bracketed host is not an IPv6 address");
    out->ipv6 = 1;
    p = host_len + 2;
  } else {
    host = auth;
    const char *colon = memchr(auth, ':', auth_len);
    host_len = colon ? (size_t)(colon - auth) : auth_len;
    for (size_t k = 0; k < host_len; k++)
      if (!chs_is_host_char(host[k]))
        return chs_fail(why, "bad character in the host");
    p = host_len;
  }
  if (host_len == 0)
    return chs_fail(why, "empty host");
  if (host_len > WEBSOCK__URL_HOST_MAX)
    return chs_fail(why, "host too long");
  if (p < auth_len) {
    if (auth[p] != ':' ||
        chs_parse_port(auth + p + 1, auth_len - p - 1, &out->port) < 0)
      return chs_fail(why, "port is not 1..65535");
    out->port_explicit = 1;
  } else {
    out->port = out->tls ? 443 : 80;
  }

  /* "ws://h?x=1" asks for "/?x=1": the request-target must start with '/'
   * (origin-form, RFC 9112 3.2.1). */
  const char *rest = url + i;
  size_t rest_len = len - i;
  size_t slash = (rest_len == 0 || rest[0] == '?') ? 1 : 0;
  if (rest_len + slash > WEBSOCK__URL_TARGET_MAX)
    return chs_fail(why, "path and query too long");
  memcpy(out->host, host, host_len);
  out->host[host_len] = '\0';
  if (slash)
    out->target[0] = '/';
  memcpy(out->target + slash, rest, rest_len);
  out->target[slash + rest_len] = '\0';
  return 0;
}

void websock__client_key(const uint8_t nonce[16], char key[25]) {
  websock__base64_encode(nonce, 16, key);
}

/* ---- request ---- */

static int chs_put(websock__buf *out, const char *s) {
  return websock__buf_append(out, s, strlen(s)) < 0 ? -1 : 0;
}

int websock__client_request(websock__buf *out, const websock__url *u,
                            const char key[25], const char *const *protocols,
                            size_t nprotocols, const char *extensions,
                            const char *headers, size_t headers_len) {
  /* Application strings are checked before a byte is written, so a refusal
   * leaves |out| as it was and no value can inject header lines. */
  for (size_t k = 0; k < nprotocols; k++)
    if (!websock__http_is_token(protocols[k], strlen(protocols[k])))
      return -1;
  if (extensions && !websock__http_value_ok(extensions))
    return -1;
  size_t start = out->len;
  char port[8] = "";
  if (u->port != (u->tls ? 443 : 80))
    snprintf(port, sizeof port, ":%u", (unsigned)u->port);
  int err = chs_put(out, "GET ") || chs_put(out, u->target) ||
            chs_put(out, " HTTP/1.1\r\nHost: ") ||
            (u->ipv6 && chs_put(out, "[")) || chs_put(out, u->host) ||
            (u->ipv6 && chs_put(out, "]")) || chs_put(out, port) ||
            chs_put(out, "\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\n"
                         "Sec-WebSocket-Key: ") ||
            websock__buf_append(out, key, 24) < 0 ||
            chs_put(out, "\r\nSec-WebSocket-Version: 13\r\n");
  if (!err && nprotocols > 0) {
    err = chs_put(out, "Sec-WebSocket-Protocol: ");
    for (size_t k = 0; !err && k < nprotocols; k++)
      err = (k > 0 && chs_put(out, ", ")) || chs_put(out, protocols[k]);
    err = err || chs_put(out, "\r\n");
  }
  if (!err && extensions)
    err = chs_put(out, "Sec-WebSocket-Extensions: ") ||
          chs_put(out, extensions) || chs_put(out, "\r\n");
  if (!err && headers_len)
    err = websock__buf_append(out, headers, headers_len) < 0;
  err = err || chs_put(out, "\r\n");
  if (err) {
    out->len = start;
    return -1;
  }
  return 0;
}

/* ---- response ---- */

/* Parses "HTTP/1.x SP 3DIGIT [SP reason]" (line without its ending). */
static int chs_status_line(void *ctx, const char *s, size_t n) {
  websock__http_response_head *res = ctx;
  if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || !chs_is_digit(s[7]) ||
      s[8] != ' ' || !chs_is_digit(s[9]) || !chs_is_digit(s[10]) ||
      !chs_is_digit(s[11]))
    return WEBSOCK__HTTP_ERR_BAD_REQUEST;
  if (n > 12 && s[12] != ' ')
    return WEBSOCK__HTTP_ERR_BAD_REQUEST;
  int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  if (status < 100 || status > 599)
    return WEBSOCK__HTTP_ERR_BAD_REQUEST;
  /* The reason is text for people: tabs, spaces, visible and 8-bit bytes. */
  for (size_t i = 13; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && c != '\t') || c == 0x7F)
      return WEBSOCK__HTTP_ERR_BAD_REQUEST;
  }
  res->minor_version = s[7] - '0';
  res->status = status;
  res->reason = s + (n > 12 ? 13 : 12);
  res->reason_len = n > 12 ? n - 13 : 0;
  return 0;
}

ssize_t websock__http_parse_response(const char *buf, size_t len,
                                     size_t max_len,
                                     websock__http_response_head *res) {
  res->status = 0;
  res->minor_version = 0;
  res->reason = NULL;
  res->reason_len = 0;
  return websock__http_parse_head(buf, len, max_len, chs_status_line, res,
                                  res->headers, &res->num_headers);
}

const websock__http_header *
websock__http_response_header(const websock__http_response_head *res,
                              const char *name) {
  return websock__http_headers_find(res->headers, res->num_headers, name);
}

int websock__client_check_response(const websock__http_response_head *res,
                                   const char key[25],
                                   const char *const *protocols,
                                   size_t nprotocols, int offered_extensions,
                                   const char **protocol, size_t *protocol_len,
                                   const char **extensions,
                                   size_t *extensions_len) {
  const websock__http_header *hs = res->headers;
  size_t n = res->num_headers;
  *protocol = NULL;
  *protocol_len = 0;
  *extensions = NULL;
  *extensions_len = 0;
  if (res->status != 101)
    return WEBSOCK__CHS_STATUS;
  if (!websock__http_headers_have_token(hs, n, "Upgrade", "websocket"))
    return WEBSOCK__CHS_UPGRADE;
  if (!websock__http_headers_have_token(hs, n, "Connection", "upgrade"))
    return WEBSOCK__CHS_CONNECTION;
  /* Two accept headers would leave it open which one the server meant. */
  const websock__http_header *h =
      websock__http_headers_find(hs, n, "Sec-WebSocket-Accept");
  char want[29];
  websock__handshake_accept_key(key, 24, want);
  if (!h || websock__http_headers_count(hs, n, "Sec-WebSocket-Accept") != 1 ||
      want[0] == '\0' || h->value_len != 28 || memcmp(h->value, want, 28) != 0)
    return WEBSOCK__CHS_ACCEPT;

  /* RFC 6455 4.1: the server picks one of the offered values, compared
   * exactly (subprotocol names are case-sensitive), or none. */
  size_t count = websock__http_headers_count(hs, n, "Sec-WebSocket-Protocol");
  if (count > 1)
    return WEBSOCK__CHS_PROTOCOL;
  if (count == 1) {
    h = websock__http_headers_find(hs, n, "Sec-WebSocket-Protocol");
    size_t k = 0;
    while (k < nprotocols &&
           (strlen(protocols[k]) != h->value_len ||
            memcmp(protocols[k], h->value, h->value_len) != 0))
      k++;
    if (k == nprotocols)
      return WEBSOCK__CHS_PROTOCOL;
    *protocol = h->value;
    *protocol_len = h->value_len;
  }

  count = websock__http_headers_count(hs, n, "Sec-WebSocket-Extensions");
  if (count > 1 || (count == 1 && !offered_extensions)) {
    *protocol = NULL;
    *protocol_len = 0;
    return WEBSOCK__CHS_EXTENSION;
  }
  if (count == 1) {
    h = websock__http_headers_find(hs, n, "Sec-WebSocket-Extensions");
    *extensions = h->value;
    *extensions_len = h->value_len;
  }
  return WEBSOCK__CHS_OK;
}

const char *websock__client_hs_strerror(int result) {
  switch (result) {
  case WEBSOCK__CHS_OK:
    return "ok";
  case WEBSOCK__CHS_STATUS:
    return "server did not answer 101 Switching Protocols";
  case WEBSOCK__CHS_UPGRADE:
    return "response lacks Upgrade: websocket";
  case WEBSOCK__CHS_CONNECTION:
    return "response lacks Connection: upgrade";
  case WEBSOCK__CHS_ACCEPT:
    return "Sec-WebSocket-Accept missing or wrong";
  case WEBSOCK__CHS_PROTOCOL:
    return "server chose a subprotocol that was not offered";
  case WEBSOCK__CHS_EXTENSION:
    return "server sent extensions that were not offered";
  default:
    return "unknown handshake result";
  }
}
