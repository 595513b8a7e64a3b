/* Client mode's API: connect options, and websock_server_connect(), which
 * checks the URL and options on the caller's thread, writes the upgrade
 * request there, and hands the plan to a loop in a DIAL job. Layer: api. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "net/dial.h"
#include "proto/pmd.h"
#include "net/tls.h"
#include "server_int.h"
#include "util/alloc.h"
#include "util/random.h"

#define CONNECT_HEADERS_MAX 8192
#define CONNECT_DEFAULT_TIMEOUT_MS 10000

struct websock_connect_options {
  char *protocols[WEBSOCK__DIAL_MAX_PROTOCOLS];
  size_t nprotocols;
  websock__buf headers; /* "Name: value\r\n" lines */
  int timeout_ms;
  char *ca_file;
  int verify;
  void *user_data;
  int deflate;
  uint64_t max_message;
  SSL_CTX *ctx; /* built by the first wss:// connect with these options */
};

static _Thread_local char connect_error[320];

const char *websock_connect_error(void) {
  return connect_error;
}

static int connect_fail(int rc, const char *fmt, const char *what) {
  snprintf(connect_error, sizeof connect_error, fmt, what);
  return rc;
}

static char *connect_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = websock__malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

websock_connect_options *websock_connect_options_new(void) {
  websock_connect_options *o = websock__calloc(1, sizeof *o);
  if (o) {
    o->timeout_ms = CONNECT_DEFAULT_TIMEOUT_MS;
    o->verify = 1;
  }
  return o;
}

static void options_drop_ctx(websock_connect_options *o) {
  SSL_CTX_free(o->ctx);
  o->ctx = NULL;
}

void websock_connect_options_free(websock_connect_options *o) {
  if (!o)
    return;
  for (size_t i = 0; i < o->nprotocols; i++)
    websock__free(o->protocols[i]);
  websock__buf_free(&o->headers);
  websock__free(o->ca_file);
  options_drop_ctx(o);
  websock__free(o);
}

int websock_connect_options_add_subprotocol(websock_connect_options *o,
                                            const char *name) {
  if (!o || !name || !websock__http_is_token(name, strlen(name)) ||
      o->nprotocols == WEBSOCK__DIAL_MAX_PROTOCOLS)
    return WEBSOCK_ERR_INVALID;
  char *d = connect_strdup(name);
  if (!d)
    return WEBSOCK_ERR_NOMEM;
  o->protocols[o->nprotocols++] = d;
  return 0;
}

/* The headers our handshake writes itself, which a caller's must not
 * repeat or contradict. */
static int connect_header_reserved(const char *name) {
  static const char *const own[] = {"host", "upgrade", "connection",
                                    "content-length", "transfer-encoding"};
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    if (strcasecmp(name, own[i]) == 0)
      return 1;
  return strncasecmp(name, "sec-websocket-", 14) == 0;
}

int websock_connect_options_add_header(websock_connect_options *o,
                                       const char *name, const char *value) {
  if (!o || !name || !value || !websock__http_is_token(name, strlen(name)) ||
      connect_header_reserved(name))
    return WEBSOCK_ERR_INVALID;
  for (const unsigned char *v = (const unsigned char *)value; *v; v++)
    if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
      return WEBSOCK_ERR_INVALID;
  size_t nl = strlen(name), vl = strlen(value);
  if (o->headers.len + nl + vl + 4 > CONNECT_HEADERS_MAX)
    return WEBSOCK_ERR_INVALID;
  size_t old = o->headers.len;
  if (websock__buf_append(&o->headers, name, nl) < 0 ||
      websock__buf_append(&o->headers, ": ", 2) < 0 ||
      websock__buf_append(&o->headers, value, vl) < 0 ||
      websock__buf_append(&o->headers, "\r\n", 2) < 0) {
    o->headers.len = old;
    return WEBSOCK_ERR_NOMEM;
  }
  return 0;
}

int websock_connect_options_set_timeout_ms(websock_connect_options *o, int ms) {
  if (!o || ms < 1 || ms > 3600000)
    return WEBSOCK_ERR_INVALID;
  o->timeout_ms = ms;
  return 0;
}

int websock_connect_options_set_tls_ca_file(websock_connect_options *o,
                                            const char *path) {
  if (!o)
    return WEBSOCK_ERR_INVALID;
  char *d = NULL;
  if (path && !(d = connect_strdup(path)))
    return WEBSOCK_ERR_NOMEM;
  websock__free(o->ca_file);
  o->ca_file = d;
  options_drop_ctx(o); /* the next wss:// connect loads the new CAs */
  return 0;
}

int websock_connect_options_set_tls_verify(websock_connect_options *o, int on) {
  if (!o || (on != 0 && on != 1))
    return WEBSOCK_ERR_INVALID;
  if (o->verify != on)
    options_drop_ctx(o);
  o->verify = on;
  return 0;
}

int websock_connect_options_set_max_message_size(websock_connect_options *o,
                                                 uint64_t bytes) {
  if (!o)
    return WEBSOCK_ERR_INVALID;
  o->max_message = bytes;
  return 0;
}

int websock_connect_options_set_deflate(websock_connect_options *o, int on) {
  if (!o || (on != 0 && on != 1))
    return WEBSOCK_ERR_INVALID;
  o->deflate = on;
  return 0;
}

int websock_connect_options_set_user_data(websock_connect_options *o,
                                          void *ud) {
  if (!o)
    return WEBSOCK_ERR_INVALID;
  o->user_data = ud;
  return 0;
}

/* The TLS context for a wss:// connect: the options' own, or the server's
 * default one (system CAs, verification on), each made once. Returns a new
 * reference in *out, or an error with the reason in connect_error. */
static int connect_tls_ctx(websock_server *srv, websock_connect_options *o,
                           SSL_CTX **out) {
  SSL_CTX *ctx = NULL;
  int rc = 0;
  if (o) {
    if (!o->ctx)
      rc = websock__tls_client_ctx_new(o->ca_file, o->verify, &o->ctx);
    ctx = o->ctx;
  } else {
    websock__net *n = &srv->net;
    pthread_mutex_lock(&n->dial_mu);
    if (!n->client_ctx)
      rc = websock__tls_client_ctx_new(NULL, 1, &n->client_ctx);
    ctx = n->client_ctx;
    pthread_mutex_unlock(&n->dial_mu);
  }
  if (rc)
    return connect_fail(rc, "%s", websock__tls_last_error());
  if (SSL_CTX_up_ref(ctx) != 1)
    return connect_fail(WEBSOCK_ERR_NOMEM, "%s", "SSL_CTX_up_ref failed");
  *out = ctx;
  return 0;
}

/* The loop with the fewest connections (the first of equals). */
static websock__loop *connect_pick_loop(websock__net *n) {
  websock__loop *best = &n->loops[0];
  unsigned least = atomic_load(&best->nconns);
  for (unsigned i = 1; i < n->nloops && least; i++) {
    unsigned k = atomic_load(&n->loops[i].nconns);
    if (k < least) {
      least = k;
      best = &n->loops[i];
    }
  }
  return best;
}

/* Fills |d| from the URL and options: the request, its key, what to check
 * the answer against. */
static int connect_plan(websock_server *srv, websock__dial *d,
                        websock_connect_options *o) {
  d->timeout_ms = o ? (unsigned)o->timeout_ms : CONNECT_DEFAULT_TIMEOUT_MS;
  d->verify = o ? o->verify : 1;
  d->user_data = o ? o->user_data : NULL;
  d->deflate = o ? o->deflate : 0;
  d->max_message = o ? o->max_message : 0;
  for (size_t i = 0; o && i < o->nprotocols; i++) {
    if (!(d->protocols[i] = connect_strdup(o->protocols[i])))
      return connect_fail(WEBSOCK_ERR_NOMEM, "%s", "out of memory");
    d->nprotocols++;
  }
  uint8_t nonce[16];
  if (websock__random(nonce, sizeof nonce) < 0)
    return connect_fail(WEBSOCK_ERR_SYSTEM, "%s", "no random source");
  websock__client_key(nonce, d->key);
  const websock__buf *h = o ? &o->headers : NULL;
  char offer[WEBSOCK__PMD_VALUE_MAX];
  if (d->deflate &&
      websock__pmd_client_offer(&srv->settings, offer, sizeof offer) < 0)
    return connect_fail(WEBSOCK_ERR_INVALID, "%s", "bad deflate settings");
  if (websock__client_request(
          &d->request, &d->url, d->key, (const char *const *)d->protocols,
          d->nprotocols, d->deflate ? offer : NULL,
          h && h->len ? (const char *)h->data : NULL, h ? h->len : 0) < 0)
    return connect_fail(WEBSOCK_ERR_NOMEM, "%s", "out of memory");
  if (d->url.tls)
    return connect_tls_ctx(srv, o, &d->ssl_ctx);
  return 0;
}

int websock_server_connect(websock_server *srv, const char *url,
                           websock_connect_options *opts, uint64_t *id) {
  connect_error[0] = 0;
  if (!srv || !url || !id)
    return connect_fail(WEBSOCK_ERR_INVALID, "%s", "NULL argument");
  if (atomic_load(&srv->state) != WEBSOCK__SERVER_RUNNING ||
      atomic_load(&srv->stop_requested))
    return connect_fail(WEBSOCK_ERR_STATE, "%s", "the server is not running");
  websock__dial *d = websock__calloc(1, sizeof *d);
  if (!d)
    return connect_fail(WEBSOCK_ERR_NOMEM, "%s", "out of memory");
  const char *why = NULL;
  if (websock__url_parse(url, &d->url, &why) < 0) {
    websock__dial_free(d);
    return connect_fail(WEBSOCK_ERR_INVALID, "bad URL: %s",
                        why ? why : "invalid");
  }
  int rc = connect_plan(srv, d, opts);
  if (rc) {
    websock__dial_free(d);
    return rc;
  }
  websock__net *n = &srv->net;
  websock__loop *l = connect_pick_loop(n);
  d->id = atomic_fetch_add(&n->next_id, 1);
  /* The connection is made here: out of memory is this call's error
   * rather than a connect nobody hears the end of. */
  websock__conn *c = websock__dial_prepare(l, d);
  websock__job *j = c ? websock__pool_get(&srv->sched.pool) : NULL;
  if (!j) {
    if (c)
      websock__client_unref(&c->base); /* and the dial with it */
    else
      websock__dial_free(d);
    return connect_fail(WEBSOCK_ERR_NOMEM, "%s", "out of memory");
  }
  *id = d->id;
  atomic_fetch_add(&l->nconns, 1);
  j->kind = WEBSOCK__JOB_DIAL;
  j->client = &c->base; /* the connection's first reference travels */
  websock__loop_post(l, j);
  return 0;
}
