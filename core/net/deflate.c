/* permessage-deflate on a connection (RFC 7692): the answer to the
 * client's offer, compressing what we send and inflating what we receive,
 * with the memory model the config chose. Layer: net (the streams
 * themselves are proto/deflate.c, the negotiation proto/pmd.c).
 *
 * Ownership: every stream lives on one loop and only its thread touches it.
 * The loop owns the shared ones (one compressor per window size, made on
 * first use; one inflater for the clients that reset their context) and
 * the block cache zlib draws from; a connection owns its own streams
 * (websock__zconn, made on the first message that needs them) and gives
 * them back when it ends on its loop, never from another thread. */
#include <string.h>
#include <strings.h>

#include "net.h"
#include "proto/deflate.h"
#include "proto/encode.h"
#include "proto/frame.h"
#include "proto/pmd.h"
#include "proto/utf8.h"
#include "util/alloc.h"

/* A connection's own streams: a compressor in dedicated mode, an inflater
 * when the client keeps its context between messages. */
struct websock__zconn {
  websock__deflater def;
  websock__inflater inf;
  uint8_t def_ready; /* def configured */
  uint8_t inf_ready; /* inf configured */
};

/* A loop's scratch buffers: above this the room a large message took is
 * given back after it. */
#define PMD_SCRATCH_KEEP (256u * 1024)

/* The config's deflate parameters as a negotiation policy, for our side
 * as a server (|client| 0) or as a client. */
static websock__pmd_policy pmd_policy(const websock__settings *st, int client) {
  websock__pmd_policy pol;
  memset(&pol, 0, sizeof pol);
  pol.dedicated = st->deflate_mode == WEBSOCK_DEFLATE_DEDICATED;
  pol.window_bits = st->deflate_window_bits;
  /* Shared mode needs no inflater per connection when the peer agrees to
   * reset its compressor after every message. */
  pol.request_client_no_context_takeover = !pol.dedicated;
  /* As a server, even when the client did not offer it (browsers do not):
   * RFC 7692 section 7.1.1.2 lets the server ask, and every client can
   * reset. */
  pol.insist_peer_no_context_takeover = !pol.dedicated && !client;
  pol.peer_window_bits = 15;
  return pol;
}

/* The value of every Sec-WebSocket-Extensions header of |req|, joined by
 * ", " into |out|. Returns the length, or 0 when there is none (or they do
 * not fit: a sane offer list is far shorter than the head limit). */
static size_t pmd_offers(const websock_request *req, char *out, size_t cap) {
  size_t n = 0;
  int count = websock_request_header_count(req);
  for (int i = 0; i < count; i++) {
    if (strcasecmp(websock_request_header_name(req, i),
                   "Sec-WebSocket-Extensions") != 0)
      continue;
    const char *v = websock_request_header_value(req, i);
    size_t vl = strlen(v);
    if (n + vl + 2 >= cap)
      return 0;
    if (n) {
      memcpy(out + n, ", ", 2);
      n += 2;
    }
    memcpy(out + n, v, vl);
    n += vl;
  }
  out[n] = 0;
  return n;
}

size_t websock__pmd_answer(websock__conn *c, const websock_request *req,
                           char *line, size_t cap) {
  const websock__settings *st = c->loop->net->settings;
  if (st->deflate_mode == WEBSOCK_DEFLATE_OFF)
    return 0;
  char offers[2048], value[WEBSOCK__PMD_VALUE_MAX];
  size_t n = pmd_offers(req, offers, sizeof offers);
  websock__pmd_policy pol = pmd_policy(st, 0);
  websock__pmd_params p;
  if (!n ||
      websock__pmd_negotiate(offers, n, &pol, &p, value, sizeof value) != 1)
    return 0;
  int w = snprintf(line, cap, "Sec-WebSocket-Extensions: %s\r\n", value);
  if (w <= 0 || (size_t)w >= cap)
    return 0;
  c->pmd_on = 1;
  c->pmd_server_reset = p.server_no_context_takeover != 0;
  c->pmd_client_reset = p.client_no_context_takeover != 0;
  c->pmd_windows = (uint8_t)((p.server_max_window_bits & 0xf) << 4 |
                             (p.client_max_window_bits & 0xf));
  websock__client_set(&c->base, WEBSOCK__CLIENT_DEFLATE);
  if (c->rx) /* made for a head that came in pieces, or while deferred */
    websock__pmd_reader(c, &c->rx->reader);
  return (size_t)w;
}

int websock__pmd_client_offer(const websock__settings *st, char *out,
                              size_t cap) {
  websock__pmd_policy pol = pmd_policy(st, 1);
  return websock__pmd_offer(&pol, out, cap);
}

int websock__pmd_client_accept(websock__conn *c, const char *value,
                               size_t len) {
  websock__pmd_policy pol = pmd_policy(c->loop->net->settings, 1);
  websock__pmd_params p;
  int r = websock__pmd_check_response(value, len, &pol, &p);
  if (r <= 0)
    return r;
  /* The connection's fields say "ours" and "the peer's" (server-named
   * where the server wrote them): as a client ours are the client's. */
  c->pmd_on = 1;
  c->pmd_server_reset = p.client_no_context_takeover != 0;
  c->pmd_client_reset = p.server_no_context_takeover != 0;
  c->pmd_windows = (uint8_t)((p.client_max_window_bits & 0xf) << 4 |
                             (p.server_max_window_bits & 0xf));
  websock__client_set(&c->base, WEBSOCK__CLIENT_DEFLATE);
  if (c->rx)
    websock__pmd_reader(c, &c->rx->reader);
  return 1;
}

void websock__pmd_reader(websock__conn *c, websock__reader *r) {
  r->allow_rsv1 = c->pmd_on;
}

/* The connection's own streams, made on first use. */
static struct websock__zconn *pmd_zconn(websock__conn *c) {
  if (!c->z) {
    c->z = websock__calloc(1, sizeof *c->z);
    websock__conn_count_alloc(c, c->z != NULL);
  }
  return c->z;
}

/* The compressor for |c|: its own (dedicated), else its loop's for the
 * window the client allowed us. NULL without memory. */
static websock__deflater *pmd_deflater(websock__conn *c, int *keep) {
  websock__loop *l = c->loop;
  const websock__settings *st = l->net->settings;
  int bits = c->pmd_windows >> 4;
  if (bits < 9)
    bits = 9;
  if (st->deflate_mode == WEBSOCK_DEFLATE_DEDICATED) {
    struct websock__zconn *z = pmd_zconn(c);
    if (!z)
      return NULL;
    if (!z->def_ready) {
      websock__deflater_init(&z->def, &l->zcache, bits, st->deflate_mem_level,
                             st->deflate_level);
      z->def_ready = 1;
    }
    *keep = !c->pmd_server_reset;
    return &z->def;
  }
  websock__deflater *d = &l->zshared[bits - 9];
  if (!d->window_bits)
    websock__deflater_init(d, &l->zcache, bits, st->deflate_mem_level,
                           st->deflate_level);
  *keep = 0;
  return d;
}

int websock__pmd_wants(const websock__conn *c, int opcode, size_t len) {
  return c->pmd_on && opcode < 8 &&
         len >= c->loop->net->settings->deflate_threshold;
}

const websock__buf *websock__pmd_deflate(websock__conn *c, const void *p,
                                         size_t n) {
  int keep = 0;
  websock__deflater *d = pmd_deflater(c, &keep);
  websock__buf *out = &c->loop->zout;
  out->len = 0;
  if (!d || websock__deflate_message(d, p, n, keep, out) < 0)
    return NULL;
  return out;
}

int websock__pmd_shared(const websock__conn *c) {
  const websock__settings *st = c->loop->net->settings;
  return st->deflate_mode == WEBSOCK_DEFLATE_SHARED &&
         (c->pmd_windows >> 4) == st->deflate_window_bits;
}

const websock__buf *websock__pmd_frame(websock__conn *c, int opcode,
                                       const void *p, size_t n) {
  websock__loop *l = c->loop;
  const websock__buf *z = websock__pmd_deflate(c, p, n);
  if (!z)
    return NULL;
  websock__buf *f = &l->zframe;
  f->len = 0;
  long w =
      websock__encode_message(f, opcode | WEBSOCK__FRAME_RSV1, z->data, z->len,
                              l->net->settings->fragment_size, NULL);
  websock__pmd_scratch_done(&l->zout);
  return w < 0 ? NULL : f;
}

void websock__pmd_scratch_done(websock__buf *b) {
  b->len = 0;
  if (b->cap > PMD_SCRATCH_KEEP)
    websock__buf_free(b);
}

int websock__pmd_inflate(websock__conn *c, int opcode, const uint8_t *in,
                         size_t len, websock__buf **out) {
  websock__loop *l = c->loop;
  websock__inflater *inf = &l->zinflate;
  int keep = !c->pmd_client_reset;
  if (keep) {
    /* The client refers back into earlier messages: this connection needs
     * a window of its own. */
    struct websock__zconn *z = pmd_zconn(c);
    if (!z)
      return WEBSOCK_CLOSE_INTERNAL_ERROR;
    if (!z->inf_ready) {
      int bits = c->pmd_windows & 0xf;
      websock__inflater_init(&z->inf, &l->zcache, bits ? bits : 15);
      z->inf_ready = 1;
    }
    inf = &z->inf;
  } else if (!inf->window_bits) {
    websock__inflater_init(inf, &l->zcache, 15);
  }
  websock__buf *b = &l->zin;
  b->len = 0;
  ssize_t r = websock__inflate_message(inf, in, len, keep,
                                       websock__conn_max_message(c), b);
  if (r == WEBSOCK__INFLATE_TOO_BIG)
    return WEBSOCK_CLOSE_TOO_BIG;
  if (r == WEBSOCK__INFLATE_BAD)
    return WEBSOCK_CLOSE_INVALID_DATA;
  if (r < 0)
    return WEBSOCK_CLOSE_INTERNAL_ERROR;
  if (opcode == WEBSOCK_OP_TEXT && !websock__utf8_valid(b->data, b->len))
    return WEBSOCK_CLOSE_INVALID_DATA;
  *out = b;
  return 0;
}

void websock__pmd_conn_end(websock__conn *c) {
  if (!c->z)
    return;
  if (c->z->def_ready)
    websock__deflater_free(&c->z->def);
  if (c->z->inf_ready)
    websock__inflater_free(&c->z->inf);
  websock__free(c->z);
  c->z = NULL;
}

void websock__pmd_loop_init(websock__loop *l) {
  websock__zcache_init(&l->zcache);
}

void websock__pmd_loop_trim(websock__loop *l) {
  /* What idle connections' streams left in the cache beyond a few
   * streams' worth goes back to the heap. */
  websock__zcache_trim(&l->zcache, 1u << 20);
}

void websock__pmd_loop_free(websock__loop *l) {
  for (size_t i = 0; i < sizeof l->zshared / sizeof l->zshared[0]; i++)
    if (l->zshared[i].window_bits)
      websock__deflater_free(&l->zshared[i]);
  if (l->zinflate.window_bits)
    websock__inflater_free(&l->zinflate);
  websock__buf_free(&l->zout);
  websock__buf_free(&l->zin);
  websock__buf_free(&l->zframe);
  websock__zcache_free(&l->zcache);
}
