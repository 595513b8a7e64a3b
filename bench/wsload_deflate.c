/* wsload's permessage-deflate (RFC 7692) client side: the offer, the check
 * of the server's answer, and one message compressed or inflated at a time
 * with zlib (raw DEFLATE, Z_SYNC_FLUSH, the 00 00 FF FF tail stripped and
 * put back). Pure: no sockets, no connection state. */
#include "wsload_deflate.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const uint8_t pmd_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* ---- negotiation ------------------------------------------------------ */

const char *wsl_pmd_offer(bool client_reset) {
  return client_reset ? "permessage-deflate; client_no_context_takeover; "
                        "client_max_window_bits"
                      : "permessage-deflate; client_max_window_bits";
}

/* A cursor over a header value. */
typedef struct pmd_scan {
  const char *p;   /* next character */
  const char *end; /* one past the last */
} pmd_scan;

static void scan_ows(pmd_scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
    s->p++;
}

/* RFC 7230 tchar. */
static bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Reads a token; returns its length (0: none there). */
static size_t scan_token(pmd_scan *s, const char **tok) {
  *tok = s->p;
  while (s->p < s->end && is_tchar(*s->p))
    s->p++;
  return (size_t)(s->p - *tok);
}

/* Reads a parameter value, a token or a quoted-string, unquoted into
 * |buf|. Returns its length, or -1 when malformed or too long. */
static int scan_value(pmd_scan *s, char *buf, size_t cap) {
  size_t n = 0;
  if (s->p < s->end && *s->p == '"') {
    s->p++;
    while (s->p < s->end && *s->p != '"') {
      if (*s->p == '\\' && s->p + 1 < s->end)
        s->p++;
      if (n + 1 >= cap)
        return -1;
      buf[n++] = *s->p++;
    }
    if (s->p >= s->end)
      return -1; /* no closing quote */
    s->p++;
  } else {
    const char *tok;
    n = scan_token(s, &tok);
    if (n + 1 > cap)
      return -1;
    memcpy(buf, tok, n);
  }
  buf[n] = 0;
  /* §7.1: a value, quoted or not, must be a token. */
  for (size_t i = 0; i < n; i++)
    if (!is_tchar(buf[i]))
      return -1;
  return n ? (int)n : -1;
}

/* A window size: 8..15 in decimal without leading zeros, else -1. */
static int window_value(const char *v) {
  if (!strcmp(v, "8") || !strcmp(v, "9"))
    return v[0] - '0';
  if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && v[2] == 0)
    return 10 + v[1] - '0';
  return -1;
}

static bool tok_is(const char *tok, size_t n, const char *name) {
  return strlen(name) == n && strncasecmp(tok, name, n) == 0;
}

#define PMD_FAIL(msg)                                                          \
  do {                                                                         \
    *why = (msg);                                                              \
    return -1;                                                                 \
  } while (0)

int wsl_pmd_check(const char *value, size_t len, bool client_reset,
                  wsl_pmd *out, const char **why) {
  static const char *const names[4] = {
      "server_no_context_takeover", "client_no_context_takeover",
      "server_max_window_bits", "client_max_window_bits"};
  pmd_scan s = {value, value + len};
  const char *tok;
  int seen[4] = {0, 0, 0, 0}, bits[4] = {0, 0, 15, 15};
  *why = NULL;
  /* Empty list elements are allowed around the one we expect (#rule). */
  for (;;) {
    scan_ows(&s);
    if (s.p < s.end && *s.p == ',') {
      s.p++;
      continue;
    }
    break;
  }
  if (s.p == s.end)
    return 0; /* declined */
  size_t n = scan_token(&s, &tok);
  if (n == 0)
    PMD_FAIL("malformed extension list");
  if (!tok_is(tok, n, "permessage-deflate"))
    PMD_FAIL("an extension we did not offer");
  for (;;) {
    scan_ows(&s);
    if (s.p == s.end)
      break;
    if (*s.p == ',') { /* only empty elements may follow */
      s.p++;
      scan_ows(&s);
      if (s.p < s.end && *s.p != ',')
        PMD_FAIL("more than one extension in the answer");
      continue;
    }
    if (*s.p != ';')
      PMD_FAIL("malformed parameter list");
    s.p++;
    scan_ows(&s);
    n = scan_token(&s, &tok);
    if (n == 0)
      PMD_FAIL("malformed parameter");
    int k = -1;
    for (int i = 0; i < 4; i++)
      if (tok_is(tok, n, names[i]))
        k = i;
    if (k < 0)
      PMD_FAIL("unknown parameter in the answer");
    if (seen[k]++)
      PMD_FAIL("repeated parameter in the answer");
    scan_ows(&s);
    char val[16];
    bool has_value = s.p < s.end && *s.p == '=';
    if (has_value) {
      s.p++;
      scan_ows(&s);
      if (scan_value(&s, val, sizeof val) < 0)
        PMD_FAIL("malformed parameter value");
    }
    if (k < 2 && has_value)
      PMD_FAIL("a value on a no_context_takeover parameter");
    if (k >= 2) {
      /* §7.1.2: in an answer both window parameters carry a value;
       * server_max_window_bits may come unoffered (§7.1.2.1), and we
       * offered client_max_window_bits. */
      if (!has_value || (bits[k] = window_value(val)) < 0)
        PMD_FAIL("a window size that is not 8..15");
    }
  }
  out->on = true;
  out->server_reset = seen[0] != 0;
  out->client_reset = client_reset || seen[1];
  out->server_bits = bits[2];
  out->client_bits = bits[3];
  return 1;
}

/* ---- compressing and inflating ----------------------------------------- */

z_stream *wsl_deflater_new(int level, int bits) {
  z_stream *z = calloc(1, sizeof *z);
  if (!z)
    return NULL;
  if (deflateInit2(z, level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    free(z);
    return NULL;
  }
  return z;
}

z_stream *wsl_inflater_new(void) {
  z_stream *z = calloc(1, sizeof *z);
  if (!z)
    return NULL;
  if (inflateInit2(z, -15) != Z_OK) {
    free(z);
    return NULL;
  }
  return z;
}

void wsl_deflater_free(z_stream *z) {
  if (z) {
    deflateEnd(z);
    free(z);
  }
}

void wsl_inflater_free(z_stream *z) {
  if (z) {
    inflateEnd(z);
    free(z);
  }
}

static int zbuf_reserve(wsl_zbuf *b, size_t cap) {
  if (b->cap >= cap)
    return 0;
  uint8_t *p = realloc(b->p, cap);
  if (!p)
    return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

int wsl_deflate_msg(z_stream *z, const uint8_t *in, size_t n, wsl_zbuf *out,
                    bool reset) {
  /* The bound is for Z_FINISH; a sync flush adds an empty stored block. */
  if (zbuf_reserve(out, deflateBound(z, (uLong)n) + 16) != 0)
    return -1;
  z->next_in = (Bytef *)(uintptr_t)in;
  z->avail_in = (uInt)n;
  size_t len = 0;
  for (;;) {
    z->next_out = out->p + len;
    z->avail_out = (uInt)(out->cap - len);
    int r = deflate(z, Z_SYNC_FLUSH);
    if (r != Z_OK && r != Z_BUF_ERROR)
      return -1;
    len = out->cap - z->avail_out;
    /* The flush is complete once deflate leaves output room unused. */
    if (z->avail_in == 0 && z->avail_out > 0)
      break;
    if (zbuf_reserve(out, out->cap * 2) != 0)
      return -1;
  }
  if (len < 4 || memcmp(out->p + len - 4, pmd_tail, 4) != 0)
    return -1;
  out->len = len - 4;
  if (reset && deflateReset(z) != Z_OK)
    return -1;
  return 0;
}

size_t wsl_stored_block(uint8_t *out, const uint8_t *p, size_t n) {
  out[0] = 0x00; /* BFINAL 0, BTYPE 00 (stored), then padding to the byte */
  out[1] = (uint8_t)n;
  out[2] = (uint8_t)(n >> 8);
  out[3] = (uint8_t)~n;
  out[4] = (uint8_t)(~n >> 8);
  memcpy(out + 5, p, n);
  return n + 5;
}

/* After a final block the stream is over; the next message goes on with
 * this one's window unless the server resets its own. */
static int inflate_restart(z_stream *z, bool reset) {
  static uint8_t dict[32768];
  uInt dl = sizeof dict;
  if (reset)
    return inflateReset(z) == Z_OK ? 0 : -1;
  if (inflateGetDictionary(z, dict, &dl) != Z_OK || inflateReset(z) != Z_OK ||
      (dl && inflateSetDictionary(z, dict, dl) != Z_OK))
    return -1;
  return 0;
}

int wsl_inflate_msg(z_stream *z, const uint8_t *in, size_t n, wsl_zbuf *out,
                    size_t limit, bool reset) {
  out->len = 0;
  for (int part = 0; part < 2; part++) {
    z->next_in = (Bytef *)(uintptr_t)(part ? pmd_tail : in);
    z->avail_in = part ? 4u : (uInt)n;
    for (;;) {
      if (out->cap - out->len < 4096 && out->cap <= limit) {
        size_t cap = out->cap ? out->cap * 2 : 16384;
        if (cap > limit + 1)
          cap = limit + 1;
        if (zbuf_reserve(out, cap) != 0)
          return -1;
      }
      /* Room up to one byte past the limit, to see it crossed. */
      size_t room = out->cap - out->len;
      if (room > limit + 1 - out->len)
        room = limit + 1 - out->len;
      z->next_out = out->p + out->len;
      z->avail_out = (uInt)room;
      int r = inflate(z, Z_SYNC_FLUSH);
      out->len += room - z->avail_out;
      if (out->len > limit)
        return -2;
      if (r == Z_STREAM_END) {
        if (part == 0 && z->avail_in > 0)
          return -1; /* data after the final block */
        return inflate_restart(z, reset);
      }
      if (r != Z_OK && r != Z_BUF_ERROR)
        return -1;
      if (z->avail_in == 0 && z->avail_out > 0)
        break; /* all read and all written */
      if (r == Z_BUF_ERROR && z->avail_out > 0)
        return -1; /* no progress with input left */
    }
  }
  /* The tail closes an empty stored block, after which zlib waits for a
   * block header (data_type bit 7); anywhere else the message was cut
   * short inside a block (libwebsock2 closes 1007 there too). */
  if (!(z->data_type & 128))
    return -1;
  if (reset && inflateReset(z) != Z_OK)
    return -1;
  return 0;
}
