/* The cluster's URL and messages (wire.h). Layer: cluster. */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

/* Copies |n| bytes of |p| into |dst| (|cap| with the NUL), or -1. */
static int wire_copy(char *dst, size_t cap, const char *p, size_t n) {
  if (n + 1 > cap)
    return -1;
  memcpy(dst, p, n);
  dst[n] = 0;
  return 0;
}

/* A decimal number of |p| (up to a non-digit, set in *end) in lo..hi. */
static int wire_number(const char *p, long lo, long hi, long *out,
                       const char **end) {
  long v = 0;
  const char *q = p;
  while (*q >= '0' && *q <= '9' && q - p < 6)
    v = v * 10 + (*q++ - '0');
  *end = q;
  if (q == p || (*q >= '0' && *q <= '9') || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* The value of the hex digit |c|, or -1. */
static int wire_hex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Copies the |n| bytes of |p| into |dst| (|cap| with the NUL), decoding
 * %XX. Returns 0, -1 when it does not fit, -2 for a '%' without two hex
 * digits or one that decodes to NUL. */
static int wire_decode(char *dst, size_t cap, const char *p, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)p[i];
    if (c == '%') {
      int hi = i + 2 < n ? wire_hex(p[i + 1]) : -1;
      int lo = hi >= 0 ? wire_hex(p[i + 2]) : -1;
      if (lo < 0 || (hi | lo) == 0)
        return -2;
      c = hi << 4 | lo;
      i += 2;
    }
    if (o + 1 >= cap)
      return -1;
    dst[o++] = (char)c;
  }
  dst[o] = 0;
  return 0;
}

/* "[user]:password@" of |p| (|n| bytes, the part before the last '@'). */
static int wire_credentials(const char *p, size_t n, websock__cluster_url *out,
                            const char **why) {
  const char *colon = memchr(p, ':', n);
  size_t ul = colon ? (size_t)(colon - p) : n;
  int ru = wire_decode(out->user, sizeof out->user, p, ul);
  int rp = colon ? wire_decode(out->password, sizeof out->password, colon + 1,
                               n - ul - 1)
                 : 0;
  if (ru == -2 || rp == -2)
    *why = "the cluster URL's credentials have a bad %-escape (%XX, not %00)";
  else if (ru < 0)
    *why = "the cluster URL's user name is too long";
  else if (rp < 0)
    *why = "the cluster URL's password is too long";
  else if (out->user[0] && !out->password[0])
    *why = "the cluster URL names a user without a password "
           "(redis://user:password@host; redis://:password@host for none)";
  else
    return 0;
  return -1;
}

/* The host of |p| (up to ':', '/' or the end; "[v6 address]" in
 * brackets), copied into out->host; sets *end past it. */
static int wire_host(const char *p, websock__cluster_url *out,
                     const char **end) {
  const char *h = p;
  size_t hl;
  if (*p == '[') {
    const char *close = strchr(p, ']');
    h = p + 1;
    hl = close ? (size_t)(close - h) : 0;
    if (!close || strcspn(h, "/@[") < hl)
      hl = 0;
    *end = close ? close + 1 : p;
  } else {
    hl = strcspn(p, ":/[]");
    *end = p + hl;
  }
  return hl == 0 ? -1 : wire_copy(out->host, sizeof out->host, h, hl);
}

int websock__cluster_url_parse(const char *url, websock__cluster_url *out,
                               const char **why) {
  static const char scheme[] = "redis://";
  memset(out, 0, sizeof *out);
  out->port = 6379;
  if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
    *why = "the cluster URL is not "
           "redis://[[user]:password@]host[:port][/db]";
    return -1;
  }
  const char *p = url + sizeof scheme - 1;
  /* The credentials end at the last '@' before the path (RFC 3986: a
   * password may hold '@' and ':'; '/', '?', '#' and '%' are %-escaped). */
  size_t authority = strcspn(p, "/");
  const char *at = NULL;
  for (const char *q = p; q < p + authority; q++)
    if (*q == '@')
      at = q;
  if (at) {
    if (wire_credentials(p, (size_t)(at - p), out, why) < 0)
      return -1;
    p = at + 1;
  }
  if (wire_host(p, out, &p) < 0) {
    *why = "the cluster URL has no host (or one over 255 bytes, or a bad "
           "[IPv6] address)";
    return -1;
  }
  long v;
  if (*p == ':') {
    if (wire_number(p + 1, 1, 65535, &v, &p) < 0) {
      *why = "the cluster URL's port is not 1..65535";
      return -1;
    }
    out->port = (int)v;
  }
  if (*p == '/' && p[1]) {
    if (wire_number(p + 1, 0, 65535, &v, &p) < 0) {
      *why = "the cluster URL's database is not a number";
      return -1;
    }
    out->db = (int)v;
  } else if (*p == '/') {
    p++;
  }
  if (*p) {
    *why = "the cluster URL has something after host[:port][/db]";
    return -1;
  }
  return 0;
}

int websock__cluster_url_auth(const websock__cluster_url *u,
                              const char *argv[3]) {
  if (!u->password[0])
    return 0; /* (a user comes only with a password) */
  int n = 0;
  argv[n++] = "AUTH";
  if (u->user[0]) /* an ACL user (Redis 6+) */
    argv[n++] = u->user;
  argv[n++] = u->password;
  return n;
}

static uint64_t wire_get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

int websock__cluster_msg_decode(const uint8_t *m, size_t n,
                                websock__cluster_msg *out) {
  if (n < WEBSOCK__CLUSTER_HEAD || m[0] < WEBSOCK__CM_PUBLISH ||
      m[0] > WEBSOCK__CM_KIND_MAX)
    return -1;
  out->kind = m[0];
  out->origin = (unsigned)(m[1] << 8 | m[2]);
  out->id = wire_get64(m + 3);
  out->opcode = m[11];
  out->code = m[12] << 8 | m[13];
  out->name_len = m[14];
  if (n - WEBSOCK__CLUSTER_HEAD < out->name_len)
    return -1;
  out->name = m + WEBSOCK__CLUSTER_HEAD;
  out->data = out->name + out->name_len;
  out->len = n - WEBSOCK__CLUSTER_HEAD - out->name_len;
  return 0;
}

void websock__cluster_msg_head(uint8_t head[WEBSOCK__CLUSTER_HEAD],
                               const websock__cluster_msg *msg) {
  head[0] = (uint8_t)msg->kind;
  head[1] = (uint8_t)(msg->origin >> 8);
  head[2] = (uint8_t)msg->origin;
  uint64_t v = msg->id;
  for (int i = 10; i >= 3; i--) {
    head[i] = (uint8_t)v;
    v >>= 8;
  }
  head[11] = (uint8_t)msg->opcode;
  head[12] = (uint8_t)(msg->code >> 8);
  head[13] = (uint8_t)msg->code;
  head[14] = (uint8_t)msg->name_len;
}
