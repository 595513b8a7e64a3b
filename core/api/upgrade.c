/* Deferred upgrades, the public side: defer in the hook, answer from any
 * thread (net/defer.c does the work). Layer: api. */
#include "net/defer.h"
#include "net/request.h"

int websock_request_defer(websock_request *req, websock_upgrade **out) {
  if (!req || !out)
    return WEBSOCK_ERR_INVALID;
  if (!req->is_upgrade || req->deferred || req->resp_status)
    return WEBSOCK_ERR_STATE;
  websock_upgrade *up;
  if (req->owner) {
    /* The hook runs on an agent, on the handle's own copy. */
    up = req->owner;
    websock__upgrade_ref(up);
  } else {
    up = websock__upgrade_new(req->conn, req);
    if (!up)
      return WEBSOCK_ERR_NOMEM;
  }
  req->deferred = up;
  *out = up;
  return 0;
}

const websock_request *websock_upgrade_request(const websock_upgrade *up) {
  return up ? &up->req : NULL;
}

int websock_upgrade_accept(websock_upgrade *up, const char *subprotocol,
                           void *user_data) {
  if (!up)
    return WEBSOCK_ERR_INVALID;
  /* The kept request chooses it as the hook would have; a name it did not
   * offer leaves |up| the caller's. */
  if (subprotocol &&
      websock_request_select_subprotocol(&up->req, subprotocol) != 0)
    return WEBSOCK_ERR_INVALID;
  return websock__upgrade_decide(up, 0, subprotocol ? up->req.selected : -1,
                                 user_data);
}

int websock_upgrade_reject(websock_upgrade *up, int status,
                           const char *content_type, const void *body,
                           size_t body_len) {
  if (!up)
    return WEBSOCK_ERR_INVALID;
  /* Without a body: the status's default text, |content_type| ignored. */
  int rc = websock__request_record(&up->req, status, body ? content_type : NULL,
                                   body, body_len);
  return rc ? rc : websock__upgrade_decide(up, status, -1, NULL);
}

int websock_upgrade_add_response_header(websock_upgrade *up, const char *name,
                                        const char *value) {
  return up ? websock_request_add_response_header(&up->req, name, value)
            : WEBSOCK_ERR_INVALID;
}
