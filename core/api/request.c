/* The public accessors of the handshake hook's request object (built by
 * net/request.c). Layer: api. */
#include <string.h>
#include <strings.h>

#include "net/defer.h"
#include "net/request.h"
#include "proto/handshake.h"

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
  return r ? request_str(r, r->remote) : NULL;
}

const char *websock_request_sni(const websock_request *r) {
  return r ? request_str(r, r->sni) : NULL;
}

uint64_t websock_request_id(const websock_request *r) {
  if (!r)
    return 0;
  const websock__conn *c = r->conn ? r->conn : r->owner ? r->owner->conn : NULL;
  return c ? c->base.id : 0;
}

const char *websock_request_tls_peer(const websock_request *r) {
  return r ? request_str(r, r->peer) : NULL;
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

/* Statuses an answer may have: any final status for a plain request; for
 * an upgrade, any but 1xx (a 101 is what accepting sends). */
static int request_status_ok(const websock_request *r, int status) {
  return status >= (r->is_upgrade ? 200 : 100) && status <= 599 &&
         status != 101;
}

int websock__request_record(websock_request *r, int status,
                            const char *content_type, const void *body,
                            size_t body_len) {
  if (!r || !request_status_ok(r, status) || (!body && body_len) ||
      (content_type && !websock__http_value_ok(content_type)))
    return WEBSOCK_ERR_INVALID;
  return websock__request_answer(r, status, content_type, body, body_len) < 0
             ? WEBSOCK_ERR_NOMEM
             : 0;
}

int websock_request_respond(websock_request *r, int status,
                            const char *content_type, const void *body,
                            size_t body_len) {
  if (r && (r->resp_status || r->deferred))
    return WEBSOCK_ERR_STATE;
  if (!body && body_len)
    return WEBSOCK_ERR_INVALID;
  /* A NULL body is an empty one here (no default text). */
  return websock__request_record(r, status, content_type, body ? body : "",
                                 body_len);
}

int websock_request_add_response_header(websock_request *r, const char *name,
                                        const char *value) {
  if (!r || !name || !value)
    return WEBSOCK_ERR_INVALID;
  switch (websock__http_header_line(&r->resp_headers, name, value)) {
  case 0:
    return 0;
  case WEBSOCK__HEADER_TOO_BIG:
    return WEBSOCK_ERR_TOO_BIG;
  case WEBSOCK__HEADER_NOMEM:
    return WEBSOCK_ERR_NOMEM;
  default:
    return WEBSOCK_ERR_INVALID;
  }
}
