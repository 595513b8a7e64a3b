/* Builds the handshake hook's request object from a parsed head (its
 * public accessors are in api/request.c). Layer: net. */
#include "request.h"

#include <string.h>

#include "proto/handshake.h"
#include "tls.h"
#include "util/alloc.h"

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
  /* The strings go into the loop's scratch buffer, which keeps its room
   * from one handshake to the next. */
  websock__buf_swap(&r->arena, &c->loop->scratch);
  r->arena.len = 0;
  if (websock__buf_append(&r->arena, "", 1) < 0)
    return -1;
  size_t bad = (size_t)-1;
  char addr[80];
  websock__conn_remote_addr(c, addr, sizeof addr);
  r->remote = request_keep(r, addr, strlen(addr));
  const char *sni = websock__tls_sni(c->ssl);
  if (sni)
    r->sni = request_keep(r, sni, strlen(sni));
  char subject[256];
  size_t sn = websock__tls_peer_subject(c->ssl, subject, sizeof subject);
  if (sn)
    r->peer = request_keep(r, subject, sn);
  if (is_upgrade)
    websock__handshake_accept_key(hs->key, hs->key_len, r->accept);
  r->method = request_keep(r, http->method, http->method_len);
  r->path = request_keep(r, hs->path, hs->path_len);
  if (hs->query)
    r->query = request_keep(r, hs->query, hs->query_len);
  if (hs->origin)
    r->origin = request_keep(r, hs->origin, hs->origin_len);
  if (r->method == bad || r->path == bad || r->query == bad ||
      r->origin == bad || r->remote == bad || r->sni == bad || r->peer == bad)
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

int websock__request_copy(struct websock_request *dst,
                          const struct websock_request *src) {
  *dst = *src;
  dst->conn = NULL;
  dst->detached = 1;
  dst->deferred = NULL;
  memset(&dst->arena, 0, sizeof dst->arena);
  memset(&dst->resp_headers, 0, sizeof dst->resp_headers);
  /* Copied before any answer: the hook that answers runs on the copy. */
  dst->resp_status = 0;
  dst->resp_ctype = NULL;
  memset(&dst->resp_body, 0, sizeof dst->resp_body);
  if (websock__buf_append(&dst->arena, src->arena.data, src->arena.len) < 0 ||
      (src->resp_headers.len &&
       websock__buf_append(&dst->resp_headers, src->resp_headers.data,
                           src->resp_headers.len) < 0)) {
    websock__buf_free(&dst->arena);
    websock__buf_free(&dst->resp_headers);
    return -1;
  }
  return 0;
}

int websock__request_answer(struct websock_request *r, int status,
                            const char *content_type, const void *body,
                            size_t body_len) {
  /* A retry after a failure replaces what the failed call kept. */
  websock__free(r->resp_ctype);
  r->resp_ctype = NULL;
  r->resp_body.len = 0;
  r->resp_status = 0;
  size_t clen = content_type ? strlen(content_type) + 1 : 0;
  char *ctype = clen ? websock__malloc(clen) : NULL;
  if ((clen && !ctype) ||
      (body && websock__buf_append(&r->resp_body, body, body_len) < 0)) {
    websock__free(ctype);
    return -1;
  }
  if (clen)
    memcpy(ctype, content_type, clen);
  r->resp_ctype = ctype;
  r->resp_has_body = body != NULL;
  r->resp_status = status;
  return 0;
}

void websock__request_free(struct websock_request *r) {
  websock__free(r->resp_ctype);
  r->resp_ctype = NULL;
  websock__buf_free(&r->resp_body);
  websock__buf_free(&r->resp_headers);
  if (r->detached) {
    websock__buf_free(&r->arena);
    return;
  }
  /* A head with huge headers must not pin its memory in the loop. */
  if (r->arena.cap > 16384)
    websock__buf_free(&r->arena);
  r->arena.len = 0;
  websock__buf_swap(&r->arena, &r->conn->loop->scratch);
}
