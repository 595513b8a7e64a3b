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

int websock__cluster_url_parse(const char *url, websock__cluster_url *out,
                               const char **why) {
  static const char scheme[] = "redis://";
  memset(out, 0, sizeof *out);
  out->port = 6379;
  if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
    *why = "the cluster URL is not redis://[:password@]host[:port][/db]";
    return -1;
  }
  const char *p = url + sizeof scheme - 1;
  /* The last '@' ends the credentials: a password may hold '@'. */
  const char *at = strrchr(p, '@');
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *pw = colon ? colon + 1 : p; /* "user:pass@" or "pass@" */
    if (wire_copy(out->password, sizeof out->password, pw, (size_t)(at - pw)) <
        0) {
      *why = "the cluster URL's password is too long";
      return -1;
    }
    p = at + 1;
  }
  size_t hl = strcspn(p, ":/");
  if (hl == 0 || wire_copy(out->host, sizeof out->host, p, hl) < 0) {
    *why = "the cluster URL has no host (or one over 255 bytes)";
    return -1;
  }
  p += hl;
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
