/* HTTP/1.1 request head parser (RFC 9112) and the WebSocket opening
 * handshake checks and responses (RFC 6455 section 4.2).
 * Layer: proto (pure, no I/O; libcrypto only for SHA-1). */
#include "handshake.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- character classes ---- */

static int hs_is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hs_is_ows(char c) {
  return c == ' ' || c == '\t';
}

static unsigned char hs_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

int websock__http_ieq(const char *a, size_t alen, const char *b, size_t blen) {
  if (alen != blen)
    return 0;
  for (size_t i = 0; i < alen; i++)
    if (hs_lower((unsigned char)a[i]) != hs_lower((unsigned char)b[i]))
      return 0;
  return 1;
}

int websock__http_is_token(const char *s, size_t n) {
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!hs_is_tchar((unsigned char)s[i]))
      return 0;
  return 1;
}

/* ---- request parser ---- */

/* Takes the token at |s| when a |delim| follows it within |n| bytes:
 * sets *tok and *tok_len and returns the length, or returns 0 when there
 * is no token or no |delim| right after it. */
static size_t hs_take_token(const char *s, size_t n, char delim,
                            const char **tok, size_t *tok_len) {
  size_t i = 0;
  while (i < n && hs_is_tchar((unsigned char)s[i]))
    i++;
  if (i == 0 || i == n || s[i] != delim)
    return 0;
  *tok = s;
  *tok_len = i;
  return i;
}

/* Parses "METHOD SP target SP HTTP/1.x" (line without its ending). */
static int hs_parse_request_line(const char *s, size_t n,
                                 websock__http_request *req) {
  size_t i = hs_take_token(s, n, ' ', &req->method, &req->method_len);
  if (i == 0)
    return WEBSOCK__HTTP_ERR_BAD_REQUEST;
  size_t t = ++i;
  /* Visible ASCII only: no spaces, controls or raw 8-bit bytes. */
  while (i < n && (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7F)
    i++;
  if (i == t || i == n || s[i] != ' ')
    return WEBSOCK__HTTP_ERR_BAD_REQUEST;
  req->target = s + t;
  req->target_len = i - t;
  i++;
  if (n - i != 8 || memcmp(s + i, "HTTP/1.", 7) != 0 || s[i + 7] < '0' ||
      s[i + 7] > '9')
    return WEBSOCK__HTTP_ERR_BAD_REQUEST;
  req->minor_version = s[i + 7] - '0';
  return 0;
}

/* Parses "name: value" (line without its ending) into a header slot. */
static int hs_parse_header_line(const char *s, size_t n,
                                websock__http_header *h) {
  /* An empty name also catches obs-fold (a line starting with SP/HTAB) and
   * "name :" (whitespace before the colon, which RFC 9112 forbids). */
  size_t i = hs_take_token(s, n, ':', &h->name, &h->name_len);
  if (i == 0)
    return WEBSOCK__HTTP_ERR_BAD_REQUEST;
  size_t v = i + 1;
  for (size_t j = v; j < n; j++) {
    unsigned char c = (unsigned char)s[j];
    if ((c < 0x20 && c != '\t') || c == 0x7F)
      return WEBSOCK__HTTP_ERR_BAD_REQUEST;
  }
  size_t e = n;
  while (v < e && hs_is_ows(s[v]))
    v++;
  while (e > v && hs_is_ows(s[e - 1]))
    e--;
  h->value = s + v;
  h->value_len = e - v;
  return 0;
}

ssize_t websock__http_parse_head(const char *buf, size_t len, size_t max_len,
                                 websock__http_first_line_fn first_line,
                                 void *ctx, websock__http_header *headers,
                                 size_t *num_headers) {
  size_t limit = len < max_len ? len : max_len;
  size_t pos = 0;
  int have_first_line = 0;
  *num_headers = 0;
  /* Each call starts over: heads are small and this keeps no state. */
  while (pos < limit) {
    const char *nl = memchr(buf + pos, '\n', limit - pos);
    if (!nl)
      break;
    size_t end = (size_t)(nl - buf);
    size_t next = end + 1;
    if (end > pos && buf[end - 1] == '\r')
      end--;
    const char *line = buf + pos;
    size_t n = end - pos;
    /* A CR anywhere else is a bare CR: refuse rather than guess. */
    if (memchr(line, '\r', n))
      return WEBSOCK__HTTP_ERR_BAD_REQUEST;
    pos = next;
    if (!have_first_line) {
      if (n == 0)
        continue; /* RFC 9112 2.2: ignore empty lines before the start */
      int err = first_line(ctx, line, n);
      if (err)
        return err;
      have_first_line = 1;
      continue;
    }
    if (n == 0)
      return (ssize_t)pos;
    /* Validate before counting, so that a malformed line gives the same
     * answer whether or not its end has arrived (see the check below). */
    websock__http_header h;
    int err = hs_parse_header_line(line, n, &h);
    if (err)
      return err;
    if (*num_headers == WEBSOCK__HTTP_MAX_HEADERS)
      return WEBSOCK__HTTP_ERR_TOO_LARGE;
    headers[(*num_headers)++] = h;
  }
  /* An unfinished line may already show a stray control byte; catching it
   * now keeps a garbage stream from sitting in the buffer until the limit. */
  for (size_t i = pos; i < limit; i++) {
    unsigned char c = (unsigned char)buf[i];
    if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7F ||
        (c == '\r' && i + 1 < limit))
      return WEBSOCK__HTTP_ERR_BAD_REQUEST;
  }
  if (len >= max_len)
    return WEBSOCK__HTTP_ERR_TOO_LARGE;
  return WEBSOCK__HTTP_NEED_MORE;
}

static int hs_request_line(void *ctx, const char *s, size_t n) {
  return hs_parse_request_line(s, n, ctx);
}

ssize_t websock__http_parse_request(const char *buf, size_t len, size_t max_len,
                                    websock__http_request *req) {
  return websock__http_parse_head(buf, len, max_len, hs_request_line, req,
                                  req->headers, &req->num_headers);
}

const websock__http_header *
websock__http_headers_find(const websock__http_header *headers, size_t n,
                           const char *name) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i < n; i++)
    if (websock__http_ieq(headers[i].name, headers[i].name_len, name, nlen))
      return &headers[i];
  return NULL;
}

const websock__http_header *
websock__http_find_header(const websock__http_request *req, const char *name) {
  return websock__http_headers_find(req->headers, req->num_headers, name);
}

/* Calls |fn| on every non-empty element of the comma-separated list in
 * |v| (OWS trimmed); stops and returns the first non-zero result. */
int websock__http_each_item(const char *v, size_t n, websock__http_item_fn fn,
                            void *ctx) {
  size_t i = 0;
  while (i <= n) {
    size_t s = i;
    while (i < n && v[i] != ',')
      i++;
    size_t e = i;
    while (s < e && hs_is_ows(v[s]))
      s++;
    while (e > s && hs_is_ows(v[e - 1]))
      e--;
    if (e > s) {
      int rc = fn(ctx, v + s, e - s);
      if (rc)
        return rc;
    }
    i++; /* past the comma (or past the end) */
  }
  return 0;
}

static int hs_token_match(void *ctx, const char *s, size_t n) {
  const char *token = ctx;
  return websock__http_ieq(s, n, token, strlen(token));
}

int websock__http_headers_have_token(const websock__http_header *headers,
                                     size_t n, const char *name,
                                     const char *token) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i < n; i++) {
    const websock__http_header *h = &headers[i];
    if (!websock__http_ieq(h->name, h->name_len, name, nlen))
      continue;
    if (websock__http_each_item(h->value, h->value_len, hs_token_match,
                                (void *)token))
      return 1;
  }
  return 0;
}

int websock__http_header_has_token(const websock__http_request *req,
                                   const char *name, const char *token) {
  return websock__http_headers_have_token(req->headers, req->num_headers, name,
                                          token);
}

/* ---- handshake ---- */

size_t websock__http_headers_count(const websock__http_header *headers,
                                   size_t n, const char *name) {
  size_t nlen = strlen(name), count = 0;
  for (size_t i = 0; i < n; i++)
    if (websock__http_ieq(headers[i].name, headers[i].name_len, name, nlen))
      count++;
  return count;
}

static size_t hs_count_headers(const websock__http_request *req,
                               const char *name) {
  return websock__http_headers_count(req->headers, req->num_headers, name);
}

static int hs_b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

/* A 16-byte value in base64 is exactly 22 symbols and "==". The last
 * symbol carries only 2 data bits; the other 4 must be zero or the text is
 * not the canonical encoding of any 16 bytes. */
static int hs_key_valid(const char *k, size_t n) {
  if (n != 24 || k[22] != '=' || k[23] != '=')
    return 0;
  for (size_t i = 0; i < 22; i++)
    if (hs_b64_value((unsigned char)k[i]) < 0)
      return 0;
  return (hs_b64_value((unsigned char)k[21]) & 0xF) == 0;
}

static int hs_add_protocol(void *ctx, const char *s, size_t n) {
  websock__handshake *out = ctx;
  if (!websock__http_is_token(s, n) ||
      out->num_protocols == WEBSOCK__MAX_SUBPROTOCOLS)
    return 1;
  out->protocols[out->num_protocols] = s;
  out->protocol_lens[out->num_protocols] = n;
  out->num_protocols++;
  return 0;
}

int websock__handshake_check(const websock__http_request *req,
                             websock__handshake *out) {
  memset(out, 0, sizeof *out);
  const char *t = req->target;
  size_t tlen = req->target_len;
  const char *q = tlen ? memchr(t, '?', tlen) : NULL;
  out->path = t;
  out->path_len = q ? (size_t)(q - t) : tlen;
  if (q) {
    out->query = q + 1;
    out->query_len = tlen - out->path_len - 1;
  }
  const websock__http_header *h = websock__http_find_header(req, "Host");
  if (h) {
    out->host = h->value;
    out->host_len = h->value_len;
  }
  h = websock__http_find_header(req, "Origin");
  if (h) {
    out->origin = h->value;
    out->origin_len = h->value_len;
  }

  if (!websock__http_header_has_token(req, "Upgrade", "websocket"))
    return WEBSOCK__HS_NOT_UPGRADE;
  /* Methods are case-sensitive (RFC 9110 9.1): "get" is not GET. */
  if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
    return WEBSOCK__HS_BAD_METHOD;
  if (req->minor_version < 1)
    return WEBSOCK__HS_BAD_REQUEST;
  if (hs_count_headers(req, "Host") != 1 || tlen == 0 || t[0] != '/')
    return WEBSOCK__HS_BAD_REQUEST;
  if (!websock__http_header_has_token(req, "Connection", "upgrade"))
    return WEBSOCK__HS_BAD_REQUEST;
  /* Check the version before the key: a client speaking another version
   * needs the 426 with our version to retry, not a plain 400. */
  h = websock__http_find_header(req, "Sec-WebSocket-Version");
  if (!h || hs_count_headers(req, "Sec-WebSocket-Version") != 1 ||
      h->value_len != 2 || memcmp(h->value, "13", 2) != 0)
    return WEBSOCK__HS_BAD_VERSION;
  h = websock__http_find_header(req, "Sec-WebSocket-Key");
  if (!h || hs_count_headers(req, "Sec-WebSocket-Key") != 1 ||
      !hs_key_valid(h->value, h->value_len))
    return WEBSOCK__HS_BAD_REQUEST;
  out->key = h->value;
  out->key_len = h->value_len;
  for (size_t i = 0; i < req->num_headers; i++) {
    const websock__http_header *p = &req->headers[i];
    if (!websock__http_ieq(p->name, p->name_len, "Sec-WebSocket-Protocol", 22))
      continue;
    if (websock__http_each_item(p->value, p->value_len, hs_add_protocol, out))
      return WEBSOCK__HS_BAD_REQUEST;
  }
  return WEBSOCK__HS_OK;
}

static const char hs_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void websock__handshake_accept_key(const char *key, size_t key_len,
                                   char out[29]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  int ok = 0;
  char tmp[64 + sizeof WS_GUID];
  if (key_len <= 64) {
    /* The usual case (a checked key is 24 bytes): one-shot, no allocation. */
    memcpy(tmp, key, key_len);
    memcpy(tmp + key_len, WS_GUID, sizeof WS_GUID - 1);
    ok = EVP_Digest(tmp, key_len + sizeof WS_GUID - 1, md, &mdlen, EVP_sha1(),
                    NULL);
  } else {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
         EVP_DigestUpdate(ctx, key, key_len) &&
         EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) &&
         EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
  }
  if (!ok || mdlen != 20) {
    /* Only on allocation failure; an empty accept makes the client fail. */
    out[0] = '\0';
    return;
  }
  websock__base64_encode(md, 20, out);
}

void websock__base64_encode(const uint8_t *in, size_t n, char *out) {
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v =
        ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
    out[o++] = hs_b64_alphabet[(v >> 18) & 63];
    out[o++] = hs_b64_alphabet[(v >> 12) & 63];
    out[o++] = hs_b64_alphabet[(v >> 6) & 63];
    out[o++] = hs_b64_alphabet[v & 63];
  }
  if (i < n) {
    /* One or two bytes left: two or three symbols, padded to four. */
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)in[i + 1] << 8;
    out[o++] = hs_b64_alphabet[(v >> 18) & 63];
    out[o++] = hs_b64_alphabet[(v >> 12) & 63];
    out[o++] = i + 1 < n ? hs_b64_alphabet[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
}

/* snprintf into |out|; returns the length or 0 when it did not fit. */
static size_t hs_fits(int n, size_t cap) {
  if (n < 0 || (size_t)n >= cap)
    return 0;
  return (size_t)n;
}

size_t websock__handshake_response(char *out, size_t cap, const char accept[29],
                                   const char *subprotocol, const char *headers,
                                   size_t headers_len) {
  /* The subprotocol comes from application code: refuse anything that is
   * not a token so it cannot inject header lines. */
  if (subprotocol && !websock__http_is_token(subprotocol, strlen(subprotocol)))
    return 0;
  int n = snprintf(out, cap,
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %.28s\r\n"
                   "%s%s%s"
                   "%.*s"
                   "\r\n",
                   accept, subprotocol ? "Sec-WebSocket-Protocol: " : "",
                   subprotocol ? subprotocol : "", subprotocol ? "\r\n" : "",
                   (int)headers_len, headers ? headers : "");
  return hs_fits(n, cap);
}

int websock__http_value_ok(const char *value) {
  /* A field value is visible characters, spaces and tabs: a CR, LF or
   * other control character would let it start a header of its own. */
  for (const char *p = value; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if ((c < 0x20 && c != '\t') || c == 0x7F)
      return 0;
  }
  return 1;
}

/* Header names the library writes itself: a caller's line may not repeat
 * or contradict them. */
static int hs_reserved_header(const char *name, size_t n) {
  static const char *const reserved[] = {"Connection",
                                         "Content-Length",
                                         "Content-Type",
                                         "Transfer-Encoding",
                                         "Upgrade",
                                         "Sec-WebSocket-Accept",
                                         "Sec-WebSocket-Protocol",
                                         "Sec-WebSocket-Extensions",
                                         "Sec-WebSocket-Version"};
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
    if (websock__http_ieq(name, n, reserved[i], strlen(reserved[i])))
      return 1;
  return 0;
}

int websock__http_header_line(websock__buf *out, const char *name,
                              const char *value) {
  size_t nl = strlen(name), vl = strlen(value);
  if (!websock__http_is_token(name, nl) || hs_reserved_header(name, nl))
    return WEBSOCK__HEADER_INVALID;
  if (!websock__http_value_ok(value))
    return WEBSOCK__HEADER_INVALID;
  if (out->len + nl + vl + 4 > WEBSOCK__RESPONSE_HEADERS_MAX)
    return WEBSOCK__HEADER_TOO_BIG;
  if (websock__buf_reserve(out, nl + vl + 4) < 0)
    return WEBSOCK__HEADER_NOMEM;
  uint8_t *p = out->data + out->len;
  memcpy(p, name, nl);
  memcpy(p + nl, ": ", 2);
  memcpy(p + nl + 2, value, vl);
  memcpy(p + nl + 2 + vl, "\r\n", 2);
  out->len += nl + vl + 4;
  return 0;
}

const char *websock__http_reason(int status) {
  switch (status) {
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 204:
    return "No Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 426:
    return "Upgrade Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  default:
    return "Unknown";
  }
}

size_t websock__http_response(char *out, size_t cap, int status,
                              const char *content_type, const char *body,
                              size_t body_len, int copy_body,
                              const char *headers, size_t headers_len) {
  if (status < 100 || status > 999)
    return 0;
  if (!content_type)
    content_type = "text/plain";
  if (!websock__http_value_ok(content_type))
    return 0; /* no header injection through the content type */
  char def[64];
  if (!body) {
    /* The default body lives on this stack, so it is always copied. */
    int dn = snprintf(def, sizeof def, "%d %s\n", status,
                      websock__http_reason(status));
    body = def;
    body_len = hs_fits(dn, sizeof def);
    copy_body = 1;
  }
  const char *extra = "";
  if (status == 405)
    extra = "Allow: GET\r\n";
  else if (status == 426)
    extra = "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n";
  int n =
      snprintf(out, cap,
               "HTTP/1.1 %d %s\r\n"
               "%s%.*s"
               "Connection: close\r\n"
               "Content-Type: %s\r\n"
               "Content-Length: %zu\r\n"
               "\r\n",
               status, websock__http_reason(status), extra, (int)headers_len,
               headers ? headers : "", content_type, body_len);
  size_t head = hs_fits(n, cap);
  if (!head)
    return 0;
  if (!copy_body)
    return head;
  if (body_len > cap - head)
    return 0;
  memcpy(out + head, body, body_len);
  return head + body_len;
}
