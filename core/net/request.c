/* Accessors of the handshake hook's request object. Layer: net. */
#include "request.h"

#include <string.h>
#include <strings.h>

#include "../proto/handshake.h"
#include "tls.h"

/* Copies a string into the arena; returns its offset (never 0: the arena
 * starts with one padding byte so 0 can mean "absent"). */
static size_t request_keep(struct websock_request *r, const char *s, size_t n) {
  size_t off = r->arena.len;
  if (websock__buf_reserve(&r->arena, n + 1) < 0)
    return (size_t)-1;
  memcpy(r->arena.data + off, s, n);
  r->arena.data[off + n] = 0;
  r->arena.len += n + 1;
  return off;
}

int websock__request_build(struct websock_request *r, websock__conn *c,
                           const websock__http_request *http,
                           const websock__handshake *hs, int is_upgrade) {
  memset(r, 0, sizeof *r);
  r->conn = c;
  r->is_upgrade = is_upgrade;
  r->selected = -1;
  if (websock__buf_append(&r->arena, "", 1) < 0)
    return -1;
  size_t bad = (size_t)-1;
  r->method = request_keep(r, http->method, http->method_len);
  r->path = request_keep(r, hs->path, hs->path_len);
  if (hs->query)
    r->query = request_keep(r, hs->query, hs->query_len);
  if (hs->origin)
    r->origin = request_keep(r, hs->origin, hs->origin_len);
  if (r->method == bad || r->path == bad || r->query == bad || r->origin == bad)
    return -1;
  for (size_t i = 0; i < http->num_headers; i++) {
    const websock__http_header *h = &http->headers[i];
    r->hname[i] = request_keep(r, h->name, h->name_len);
    r->hvalue[i] = request_keep(r, h->value, h->value_len);
    if (r->hname[i] == bad || r->hvalue[i] == bad)
      return -1;
  }
  r->nheaders = (int)http->num_headers;
  for (size_t i = 0; i < hs->num_protocols; i++) {
    r->proto[i] = request_keep(r, hs->protocols[i], hs->protocol_lens[i]);
    if (r->proto[i] == bad)
      return -1;
  }
  r->nprotos = (int)hs->num_protocols;
  return 0;
}

void websock__request_free(struct websock_request *r) {
  websock__buf_free(&r->arena);
}

static const char *request_str(const websock_request *r, size_t off) {
  return off ? (const char *)r->arena.data + off : NULL;
}

int websock_request_is_upgrade(const websock_request *r) {
  return r ? r->is_upgrade : 0;
}

const char *websock_request_method(const websock_request *r) {
  return r ? request_str(r, r->method) : NULL;
}

const char *websock_request_path(const websock_request *r) {
  return r ? request_str(r, r->path) : NULL;
}

const char *websock_request_query(const websock_request *r) {
  return r ? request_str(r, r->query) : NULL;
}

const char *websock_request_header(const websock_request *r, const char *name) {
  if (!r || !name)
    return NULL;
  for (int i = 0; i < r->nheaders; i++)
    if (strcasecmp(request_str(r, r->hname[i]), name) == 0)
      return request_str(r, r->hvalue[i]);
  return NULL;
}

int websock_request_header_count(const websock_request *r) {
  return r ? r->nheaders : 0;
}

const char *websock_request_header_name(const websock_request *r, int i) {
  return r && i >= 0 && i < r->nheaders ? request_str(r, r->hname[i]) : NULL;
}

const char *websock_request_header_value(const websock_request *r, int i) {
  return r && i >= 0 && i < r->nheaders ? request_str(r, r->hvalue[i]) : NULL;
}

const char *websock_request_origin(const websock_request *r) {
  return r ? request_str(r, r->origin) : NULL;
}

const char *websock_request_remote_addr(const websock_request *r) {
  return r && r->conn ? r->conn->remote : NULL;
}

const char *websock_request_sni(const websock_request *r) {
  return r && r->conn ? websock__tls_sni(r->conn->ssl) : NULL;
}

int websock_request_subprotocol_count(const websock_request *r) {
  return r ? r->nprotos : 0;
}

const char *websock_request_subprotocol(const websock_request *r, int i) {
  return r && i >= 0 && i < r->nprotos ? request_str(r, r->proto[i]) : NULL;
}

int websock_request_select_subprotocol(websock_request *r, const char *name) {
  if (!r || !name || !r->is_upgrade)
    return WEBSOCK_ERR_INVALID;
  for (int i = 0; i < r->nprotos; i++) {
    if (strcmp(request_str(r, r->proto[i]), name) == 0) {
      r->selected = i;
      return 0;
    }
  }
  return WEBSOCK_ERR_INVALID;
}

int websock_request_set_user_data(websock_request *r, void *user_data) {
  if (!r)
    return WEBSOCK_ERR_INVALID;
  r->user_data = user_data;
  return 0;
}

int websock_request_respond(websock_request *r, int status,
                            const char *content_type, const void *body,
                            size_t body_len) {
  if (!r || status < 100 || status > 599 || (!body && body_len))
    return WEBSOCK_ERR_INVALID;
  if (r->is_upgrade || r->responded)
    return WEBSOCK_ERR_STATE;
  char head[512];
  size_t n = websock__http_response(head, sizeof head, status, content_type,
                                    body ? body : "", body_len, 0);
  if (!n)
    return WEBSOCK_ERR_INVALID;
  if (websock__conn_queue_bytes(r->conn, (const uint8_t *)head, n, 0) < 0 ||
      (body_len && websock__conn_queue_bytes(r->conn, body, body_len, 0) < 0))
    return WEBSOCK_ERR_NOMEM;
  r->responded = 1;
  return 0;
}
