/* permessage-deflate negotiation (see pmd.h): the Sec-WebSocket-Extensions
 * grammar of RFC 6455 §9.1 and the parameter rules of RFC 7692 §7.1.
 * Layer: proto (pure string work, no I/O). */
#include "pmd.h"

#include <string.h>

/* ---- scanning the header value ---- */

typedef struct pmd_scan {
  const char *p;   /* next unread byte */
  const char *end; /* one past the value */
} pmd_scan;

/* RFC 7230 tchar. */
static int pmd_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void pmd_ows(pmd_scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
    s->p++;
}

/* Skips a token; returns its length (0: no token here). */
static size_t pmd_token(pmd_scan *s) {
  const char *start = s->p;
  while (s->p < s->end && pmd_tchar((unsigned char)*s->p))
    s->p++;
  return (size_t)(s->p - start);
}

static int pmd_ieq(const char *a, size_t n, const char *lit) {
  if (strlen(lit) != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)a[i];
    if (c >= 'A' && c <= 'Z')
      c = (unsigned char)(c - 'A' + 'a');
    if (c != (unsigned char)lit[i])
      return 0;
  }
  return 1;
}

/* A parameter value: a token or a quoted-string, unquoted. Its first |cap|
 * bytes go to |val|, its whole length to *vlen (only short values matter
 * here). Returns 1, or 0 on a syntax error. */
static int pmd_value(pmd_scan *s, char *val, size_t cap, size_t *vlen) {
  size_t n = 0;
  if (s->p < s->end && *s->p == '"') {
    s->p++;
    for (;;) {
      if (s->p >= s->end)
        return 0; /* unterminated */
      unsigned char c = (unsigned char)*s->p++;
      if (c == '"')
        break;
      if (c == '\\') {
        if (s->p >= s->end)
          return 0;
        c = (unsigned char)*s->p++;
      }
      /* qdtext and quoted-pair: HTAB, SP, visible ASCII, obs-text */
      if (c != '\t' && (c < 0x20 || c == 0x7F))
        return 0;
      if (n < cap)
        val[n] = (char)c;
      n++;
    }
  } else {
    const char *start = s->p;
    size_t tl = pmd_token(s);
    if (tl == 0)
      return 0;
    for (size_t i = 0; i < tl && i < cap; i++)
      val[i] = start[i];
    n = tl;
  }
  *vlen = n;
  return 1;
}

/* Window bits: 8..15 as plain decimal without leading zeros, or -1. */
static int pmd_bits(const char *v, size_t n) {
  if (n == 1 && (v[0] == '8' || v[0] == '9'))
    return v[0] - '0';
  if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return 10 + (v[1] - '0');
  return -1;
}

/* ---- one element of the extension list ---- */

typedef struct pmd_ext {
  int is_pmd; /* 1: the element names permessage-deflate */
  int bad;    /* 1: unknown or repeated parameter, or a bad value */
  int snct;   /* server_no_context_takeover present */
  int cnct;   /* client_no_context_takeover present */
  int smwb;   /* server_max_window_bits: -1 absent, 0 no value, 8..15 */
  int cmwb;   /* client_max_window_bits: the same */
} pmd_ext;

/* Records one parameter of a permessage-deflate element. */
static void pmd_param(pmd_ext *e, const char *name, size_t nlen, int has_value,
                      const char *val, size_t vlen) {
  int *flag = NULL, *bits = NULL;
  if (pmd_ieq(name, nlen, "server_no_context_takeover"))
    flag = &e->snct;
  else if (pmd_ieq(name, nlen, "client_no_context_takeover"))
    flag = &e->cnct;
  else if (pmd_ieq(name, nlen, "server_max_window_bits"))
    bits = &e->smwb;
  else if (pmd_ieq(name, nlen, "client_max_window_bits"))
    bits = &e->cmwb;
  if (flag) {
    if (*flag || has_value)
      e->bad = 1;
    *flag = 1;
  } else if (bits) {
    if (*bits >= 0)
      e->bad = 1; /* repeated */
    int b = has_value ? pmd_bits(val, vlen) : 0;
    if (b < 0)
      e->bad = 1;
    *bits = b < 0 ? 0 : b;
  } else {
    e->bad = 1; /* unknown: RFC 7692 §5 says decline */
  }
}

/* Moves past the rest of a malformed element, to the next comma outside a
 * quoted string (or the end), so the next offer still gets its turn. */
static void pmd_resync(pmd_scan *s) {
  int quoted = 0;
  while (s->p < s->end) {
    char c = *s->p;
    if (!quoted && c == ',')
      return;
    s->p++;
    if (c == '"')
      quoted = !quoted;
    else if (quoted && c == '\\' && s->p < s->end)
      s->p++;
  }
}

/* Reads one list element into *e. Returns 1 for an element, 0 for an empty
 * one, -1 for a malformed one; in every case s->p ends at the comma after
 * the element or at the end. */
static int pmd_element(pmd_scan *s, pmd_ext *e) {
  memset(e, 0, sizeof *e);
  e->smwb = e->cmwb = -1;
  pmd_ows(s);
  if (s->p >= s->end || *s->p == ',')
    return 0;
  const char *name = s->p;
  size_t nlen = pmd_token(s);
  if (nlen == 0)
    goto bad;
  e->is_pmd = pmd_ieq(name, nlen, "permessage-deflate");
  pmd_ows(s);
  while (s->p < s->end && *s->p == ';') {
    s->p++;
    pmd_ows(s);
    const char *pname = s->p;
    size_t plen = pmd_token(s);
    if (plen == 0)
      goto bad;
    pmd_ows(s);
    char val[4];
    size_t vlen = 0;
    int has_value = 0;
    if (s->p < s->end && *s->p == '=') {
      s->p++;
      pmd_ows(s);
      if (!pmd_value(s, val, sizeof val, &vlen))
        goto bad;
      has_value = 1;
      pmd_ows(s);
    }
    if (e->is_pmd)
      pmd_param(e, pname, plen, has_value, val, vlen);
  }
  if (s->p < s->end && *s->p != ',')
    goto bad;
  return 1;
bad:
  pmd_resync(s);
  return -1;
}

/* ---- writing a header value ---- */

typedef struct pmd_out {
  char *p;      /* destination */
  size_t cap;   /* its size */
  size_t len;   /* bytes written, without the NUL */
  int overflow; /* 1 once something did not fit */
} pmd_out;

static void pmd_put(pmd_out *o, const char *s) {
  size_t n = strlen(s);
  if (o->overflow || o->cap == 0 || n > o->cap - 1 - o->len) {
    o->overflow = 1;
    return;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
  o->p[o->len] = '\0';
}

/* Appends "; name=bits" (bits 8..15). */
static void pmd_put_bits(pmd_out *o, const char *name, int bits) {
  char num[3] = {0};
  if (bits >= 10) {
    num[0] = '1';
    num[1] = (char)('0' + bits - 10);
  } else {
    num[0] = (char)('0' + bits);
  }
  pmd_put(o, "; ");
  pmd_put(o, name);
  pmd_put(o, "=");
  pmd_put(o, num);
}

/* A policy window: 0 means 15, anything else is brought into 9..15. */
static int pmd_policy_bits(int bits) {
  if (bits == 0 || bits > 15)
    return 15;
  return bits < 9 ? 9 : bits;
}

/* ---- server side ---- */

/* What the server answers one acceptable-looking offer: 1 with *p and the
 * two "say" flags set, 0 to decline it. */
static int pmd_server_terms(const pmd_ext *e, const websock__pmd_policy *pol,
                            websock__pmd_params *p, int *say_srv,
                            int *say_cli) {
  /* In an offer server_max_window_bits needs a value (§7.1.2.1), and 8 is
   * a window zlib cannot compress with; an answer may not be larger. */
  if (e->smwb == 0 || e->smwb == 8)
    return 0;
  int ours = pmd_policy_bits(pol->window_bits);
  int srv = e->smwb > 0 && e->smwb < ours ? e->smwb : ours;
  int cli = 15;
  *say_srv = e->smwb > 0;
  *say_cli = 0;
  if (e->cmwb >= 0) {
    /* The client understands the parameter, so we may narrow its window;
     * a value it gave caps what it will use anyway and is echoed. */
    int peer = pmd_policy_bits(pol->peer_window_bits);
    cli = e->cmwb > 0 && e->cmwb < peer ? e->cmwb : peer;
    *say_cli = e->cmwb > 0 || cli < 15;
  }
  p->server_no_context_takeover = (uint8_t)(e->snct || !pol->dedicated);
  p->client_no_context_takeover =
      (uint8_t)((e->cnct && (pol->request_client_no_context_takeover ||
                             !pol->dedicated)) ||
                pol->insist_peer_no_context_takeover);
  p->server_max_window_bits = (uint8_t)srv;
  p->client_max_window_bits = (uint8_t)cli;
  return 1;
}

int websock__pmd_negotiate(const char *offers, size_t len,
                           const websock__pmd_policy *pol,
                           websock__pmd_params *out, char *resp, size_t cap) {
  if (!offers) {
    /* No header at all; NULL + 0 would not be a valid pointer sum. */
    offers = "";
    len = 0;
  }
  pmd_scan s = {offers, offers + len};
  if (cap)
    resp[0] = '\0';
  for (;;) {
    pmd_ext e;
    websock__pmd_params p;
    int say_srv, say_cli;
    if (pmd_element(&s, &e) == 1 && e.is_pmd && !e.bad &&
        pmd_server_terms(&e, pol, &p, &say_srv, &say_cli)) {
      pmd_out o = {resp, cap, 0, 0};
      pmd_put(&o, "permessage-deflate");
      if (p.server_no_context_takeover)
        pmd_put(&o, "; server_no_context_takeover");
      if (p.client_no_context_takeover)
        pmd_put(&o, "; client_no_context_takeover");
      if (say_srv)
        pmd_put_bits(&o, "server_max_window_bits", p.server_max_window_bits);
      if (say_cli)
        pmd_put_bits(&o, "client_max_window_bits", p.client_max_window_bits);
      if (o.overflow) {
        if (cap)
          resp[0] = '\0';
        return -1;
      }
      *out = p;
      return 1;
    }
    if (s.p >= s.end)
      return 0;
    s.p++; /* the comma */
  }
}

/* ---- client side ---- */

int websock__pmd_offer(const websock__pmd_policy *pol, char *out, size_t cap) {
  pmd_out o = {out, cap, 0, 0};
  int ours = pmd_policy_bits(pol->window_bits);
  int peer = pmd_policy_bits(pol->peer_window_bits);
  pmd_put(&o, "permessage-deflate");
  /* A shared compressor keeps no context, so it says so. Either kind
   * honours a window the server picks: a loop keeps a shared compressor
   * per window size. */
  if (!pol->dedicated)
    pmd_put(&o, "; client_no_context_takeover");
  if (pol->request_client_no_context_takeover)
    pmd_put(&o, "; server_no_context_takeover");
  if (peer < 15)
    pmd_put_bits(&o, "server_max_window_bits", peer);
  if (ours < 15)
    pmd_put_bits(&o, "client_max_window_bits", ours);
  else
    pmd_put(&o, "; client_max_window_bits");
  return o.overflow ? -1 : (int)o.len;
}

int websock__pmd_check_response(const char *value, size_t len,
                                const websock__pmd_policy *pol,
                                websock__pmd_params *out) {
  if (!value) {
    value = "";
    len = 0;
  }
  pmd_scan s = {value, value + len};
  pmd_ext e, got;
  int n = 0;
  memset(&got, 0, sizeof got);
  for (;;) {
    int r = pmd_element(&s, &e);
    if (r < 0)
      return -1;
    if (r == 1) {
      got = e;
      n++;
    }
    if (s.p >= s.end)
      break;
    s.p++;
  }
  if (n == 0)
    return 0;
  /* We offered one extension: the answer may hold it once, nothing else. */
  if (n > 1 || !got.is_pmd || got.bad)
    return -1;
  int ours = pmd_policy_bits(pol->window_bits);
  int peer = pmd_policy_bits(pol->peer_window_bits);
  /* Accepting an offer means answering each limit it asked for (§7.1.1.1,
   * §7.1.2.1); a server window must have a value and fit what we asked. */
  if (pol->request_client_no_context_takeover && !got.snct)
    return -1;
  if (got.smwb == 0 || (peer < 15 && (got.smwb < 0 || got.smwb > peer)))
    return -1;
  int cli = ours;
  if (got.cmwb >= 0) {
    /* In an answer it needs a value, no larger than our hint, and one
     * zlib can compress with. */
    if (got.cmwb == 0 || got.cmwb == 8 || (ours < 15 && got.cmwb > ours))
      return -1;
    if (got.cmwb < cli)
      cli = got.cmwb;
  }
  out->server_no_context_takeover = (uint8_t)got.snct;
  out->client_no_context_takeover = (uint8_t)(got.cnct || !pol->dedicated);
  out->server_max_window_bits = (uint8_t)(got.smwb > 0 ? got.smwb : 15);
  out->client_max_window_bits = (uint8_t)cli;
  return 1;
}
