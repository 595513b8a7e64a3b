/* The HTTP side of a connection: the request head, the handshake hook,
 * allowed paths, static routes, plain HTTP replies and the 101 upgrade.
 * Layer: net. */
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "proto/handshake.h"
#include "defer.h"
#include "request.h"

/* Sends a complete HTTP response, with the header lines |req| gathered
 * (NULL: none), and lingers until the peer closes. |body| NULL sends the
 * status's default text; |head_only| leaves the body out (HEAD). */
static void upgrade_send(websock__conn *c, int status, const char *ctype,
                         const void *body, size_t body_len, int head_only,
                         const websock_request *req) {
  char head[1024 + WEBSOCK__RESPONSE_HEADERS_MAX];
  const websock__buf *h = req ? &req->resp_headers : NULL;
  size_t n = websock__http_response(
      head, sizeof head, status, ctype, body, body_len, !body,
      h && h->len ? (const char *)h->data : NULL, h ? h->len : 0);
  if (!n || websock__conn_send_now(c, (const uint8_t *)head, n) < 0 ||
      (body && body_len && !head_only &&
       websock__conn_append(c, body, body_len, 0) < 0)) {
    websock__conn_end(c);
    return;
  }
  websock__conn_fail(c, 0);
}

static void upgrade_reply(websock__conn *c, int status) {
  upgrade_send(c, status, NULL, NULL, 0, 0, NULL);
}

/* Sends the answer websock_request_respond() recorded in |req|. */
static void upgrade_send_answer(websock__conn *c, const websock_request *req) {
  /* An empty body is empty (a 204, a redirect), not the default text. */
  const void *body = NULL;
  if (req->resp_has_body)
    body = req->resp_body.len ? (const void *)req->resp_body.data : "";
  upgrade_send(c, req->resp_status, req->resp_ctype, body, req->resp_body.len,
               0, req);
}

void websock__upgrade_refuse_with(websock__conn *c, int status,
                                  const websock_request *req) {
  atomic_fetch_add(&c->loop->net->rejected_total, 1);
  if (req && req->resp_status)
    upgrade_send_answer(c, req);
  else
    upgrade_send(c, status, NULL, NULL, 0, 0, req);
}

static int upgrade_path_allowed(const websock__settings *st, const char *path) {
  if (!st->ws_paths)
    return 1;
  for (char **p = st->ws_paths; *p; p++)
    if (strcmp(*p, path) == 0)
      return 1;
  return 0;
}

static const websock__route *upgrade_find_route(const websock__settings *st,
                                                const char *path) {
  for (const websock__route *r = st->routes; r; r = r->next)
    if (strcmp(r->path, path) == 0)
      return r;
  return NULL;
}

/* Answers a plain HTTP request: hook, then static routes, then 426. */
static void upgrade_plain_http(websock__conn *c, websock_request *req) {
  const websock__settings *st = c->loop->net->settings;
  int status = 0;
  if (st->hs_cb) {
    status = st->hs_cb(c->loop->net->sched->server, req, st->hs_ud);
    if (req->resp_status) {
      upgrade_send_answer(c, req);
      return;
    }
  }
  if (status >= 400 && status <= 599) {
    upgrade_send(c, status, NULL, NULL, 0, 0, req);
    return;
  }
  const websock__route *r = upgrade_find_route(st, websock_request_path(req));
  const char *method = websock_request_method(req);
  int head_only = strcmp(method, "HEAD") == 0;
  if (r && (head_only || strcmp(method, "GET") == 0)) {
    /* HEAD gets the head a GET would: the same Content-Length, no body. */
    upgrade_send(c, 200, r->content_type, r->body, r->body_len, head_only, req);
    return;
  }
  upgrade_send(c, r ? 405 : 426, NULL, NULL, 0, 0, req);
}

void websock__upgrade_open(websock__conn *c, websock_request *req) {
  websock__net *n = c->loop->net;
  char resp[512 + WEBSOCK__RESPONSE_HEADERS_MAX];
  const char *proto = websock_request_subprotocol(req, req->selected);
  /* Our extension's answer, then the header lines the hook added. */
  char headers[256 + WEBSOCK__RESPONSE_HEADERS_MAX];
  size_t hl = websock__pmd_answer(c, req, headers, 256);
  /* The answer's value, for the OPEN event ("Sec-WebSocket-Extensions: "
   * and "\r\n" around it). */
  static const char ext_name[] = "Sec-WebSocket-Extensions: ";
  char ext[256];
  size_t el = hl > sizeof ext_name + 1 ? hl - (sizeof ext_name - 1) - 2 : 0;
  if (el)
    memcpy(ext, headers + sizeof ext_name - 1, el);
  ext[el] = 0;
  const websock__buf *h = &req->resp_headers;
  if (h->len) {
    memcpy(headers + hl, h->data, h->len);
    hl += h->len;
  }
  size_t len = websock__handshake_response(resp, sizeof resp, req->accept,
                                           proto, headers, hl);
  if (!len) {
    upgrade_reply(c, 500);
    return;
  }
  /* Written at once: most connections never need an output buffer for
   * it, and many stay idle after the upgrade. */
  if (websock__conn_send_now(c, (const uint8_t *)resp, len) < 0) {
    websock__conn_end(c);
    return;
  }
  c->state = WEBSOCK__CONN_OPEN;
  atomic_store(&c->base.user_data, req->user_data);
  websock__registry_add(&n->sched->registry, &c->base);
  atomic_fetch_add(&n->open_conns, 1);
  atomic_fetch_add(&n->connections_total, 1);
  c->open_reported = 1;
  /* The strings live in the request: the event copies what it keeps. */
  websock__emit e = {.type = WEBSOCK_EVENT_OPEN,
                     .path = websock_request_path(req),
                     .query = websock_request_query(req),
                     .subprotocol = proto,
                     .remote = websock_request_remote_addr(req),
                     .extensions = el ? ext : NULL};
  websock__conn_emit(c, &e);
}

/* Asks the hook about an upgrade (or lets the agents ask it) and acts on
 * the answer: the 101, a refusal, or waiting for a deferred answer. */
static void upgrade_decide(websock__conn *c, websock_request *req) {
  websock__net *n = c->loop->net;
  const websock__settings *st = n->settings;
  if (st->hs_cb && st->handshake_on_agents && n->sched->nagents) {
    if (websock__upgrade_to_agents(c, req) < 0)
      upgrade_reply(c, 500);
    return;
  }
  int status = st->hs_cb ? st->hs_cb(n->sched->server, req, st->hs_ud) : 0;
  if (req->deferred && status != WEBSOCK_DEFER) /* answered here after all */
    atomic_store(&req->deferred->stale, 1);
  if (req->resp_status) {
    websock__upgrade_refuse_with(c, req->resp_status, req);
  } else if (status == WEBSOCK_ACCEPT) {
    websock__upgrade_open(c, req);
  } else if (status == WEBSOCK_DEFER) {
    /* Deferring without a handle would leave the client hanging. */
    if (!req->deferred || websock__upgrade_wait(c, req->deferred) < 0)
      upgrade_reply(c, 500);
  } else {
    websock__upgrade_refuse_with(
        c, status >= 400 && status <= 599 ? status : 403, req);
  }
}

/* Handles a complete request head |http|: the hook, then the 101 or an
 * HTTP answer. */
static void upgrade_handle(websock__conn *c, const websock__http_request *http,
                           const websock__handshake *hs, int hr) {
  websock__net *n = c->loop->net;
  const websock__settings *st = n->settings;
  websock_request req;
  if (websock__request_build(&req, c, http, hs, hr == WEBSOCK__HS_OK) < 0) {
    websock__request_free(&req);
    upgrade_reply(c, 500);
    return;
  }
  if (hr == WEBSOCK__HS_NOT_UPGRADE) {
    upgrade_plain_http(c, &req);
  } else if (!upgrade_path_allowed(st, websock_request_path(&req))) {
    websock__upgrade_refuse_with(c, 404, NULL);
  } else {
    upgrade_decide(c, &req);
  }
  websock__request_free(&req);
}

/* Parses the head in |data|: returns its length once it was handled, 0
 * while it is incomplete, -1 when it was refused. */
static ssize_t upgrade_parse(websock__conn *c, const uint8_t *data,
                             size_t len) {
  const websock__settings *st = c->loop->net->settings;
  websock__http_request http;
  ssize_t head = websock__http_parse_request((const char *)data, len,
                                             st->max_handshake, &http);
  if (head <= 0) {
    if (head < 0)
      websock__upgrade_refuse_with(c, websock__http_error_status((int)head),
                                   NULL);
    return head < 0 ? -1 : 0;
  }
  websock__handshake hs;
  int hr = websock__handshake_check(&http, &hs);
  if (hr < 0) {
    websock__upgrade_refuse_with(c, websock__http_error_status(hr), NULL);
    return -1;
  }
  upgrade_handle(c, &http, &hs, hr);
  return head;
}

void websock__conn_upgrade_input(websock__conn *c, uint8_t *p, size_t len) {
  websock__loop *l = c->loop;
  /* Most heads come in one read and are parsed where they landed, in the
   * loop's buffer; only one that comes in pieces needs a buffer of its
   * own. */
  websock__buf *pieces = c->rx && c->rx->buf.len ? &c->rx->buf : NULL;
  if (pieces) {
    int g = websock__buf_append(pieces, p, len);
    if (g < 0) {
      websock__conn_end(c);
      return;
    }
    websock__conn_count_alloc(c, g);
  }
  const uint8_t *data = pieces ? pieces->data : p;
  size_t avail = pieces ? pieces->len : len;
  ssize_t head = upgrade_parse(c, data, avail);
  if (head == 0 && !pieces) {
    websock__rx *rx = websock__conn_rx(c);
    int g = rx ? websock__buf_append(&rx->buf, p, len) : -1;
    if (g < 0)
      websock__conn_end(c);
    else
      websock__conn_count_alloc(c, g);
    return;
  }
  if (head <= 0)
    return;
  /* Frames sent right behind the head: only the last read can hold them
   * (every earlier piece was part of the head), so they fit the loop's
   * buffer, where the reader may unmask them in place. */
  size_t rest = avail - (size_t)head;
  uint8_t *frames = p + head;
  if (pieces) {
    frames = l->rbuf;
    memmove(frames, pieces->data + head, rest);
    websock__buf_free(pieces);
  }
  if (rest && c->state == WEBSOCK__CONN_OPEN)
    websock__conn_feed(c, frames, rest);
  else if (rest && c->state == WEBSOCK__CONN_DEFERRED &&
           websock__upgrade_early_bytes(c, frames, rest) < 0)
    websock__conn_end(c);
}
