/* libFuzzer target: the cluster's wire formats (core/cluster/wire.c). The
 * first byte chooses: even, the rest is a redis:// URL (NUL-terminated);
 * odd, the rest is a message between nodes, decoded and its head written
 * again. Layer: cluster tests. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* |s| ends within its |cap| bytes; the parse zeroes the struct first, so
 * every byte after the string's NUL is 0 as well. */
static void fuzz_check_str(const char *s, size_t cap) {
  const char *nul = memchr(s, 0, cap);
  if (!nul)
    abort();
  for (const char *p = nul; p < s + cap; p++)
    if (*p)
      abort();
}

static void fuzz_url(const uint8_t *data, size_t size) {
  char *url = malloc(size + 1);
  if (!url)
    return;
  if (size)
    memcpy(url, data, size);
  url[size] = '\0';
  websock__cluster_url u;
  const char *why = NULL;
  if (websock__cluster_url_parse(url, &u, &why) == 0) {
    fuzz_check_str(u.host, sizeof u.host);
    fuzz_check_str(u.user, sizeof u.user);
    fuzz_check_str(u.password, sizeof u.password);
    size_t hl = strlen(u.host);
    if (hl == 0 || strcspn(u.host, "/[]") != hl || u.port < 1 ||
        u.port > 65535 || u.db < 0 || u.db > 65535 ||
        strncmp(url, "redis://", 8) != 0 || (u.user[0] && !u.password[0]))
      abort();
    /* The host is copied from the URL (in brackets when it holds ':'),
     * and so are the credentials when nothing was %-escaped. */
    char bracketed[sizeof u.host + 2];
    snprintf(bracketed, sizeof bracketed, "[%s]", u.host);
    if (!strstr(url + 8, strchr(u.host, ':') ? bracketed : u.host))
      abort();
    if (!strchr(url, '%') && ((u.password[0] && !strstr(url + 8, u.password)) ||
                              (u.user[0] && !strstr(url + 8, u.user))))
      abort();
  } else if (!why || !why[0]) {
    abort();
  }
  free(url);
}

static void fuzz_msg(const uint8_t *data, size_t size) {
  /* An exact-size copy so ASan sees any read past the end. */
  uint8_t *m = malloc(size ? size : 1);
  if (!m)
    return;
  if (size)
    memcpy(m, data, size);
  websock__cluster_msg msg;
  if (websock__cluster_msg_decode(m, size, &msg) == 0) {
    if (size < WEBSOCK__CLUSTER_HEAD || msg.kind < WEBSOCK__CM_PUBLISH ||
        msg.kind > WEBSOCK__CM_KIND_MAX || msg.name_len > 255 ||
        msg.origin > 0xFFFF || msg.opcode < 0 || msg.opcode > 255 ||
        msg.code < 0 || msg.code > 0xFFFF)
      abort();
    if (msg.name != m + WEBSOCK__CLUSTER_HEAD ||
        msg.data != msg.name + msg.name_len ||
        msg.name_len + msg.len + WEBSOCK__CLUSTER_HEAD != size)
      abort();
    uint8_t head[WEBSOCK__CLUSTER_HEAD];
    websock__cluster_msg_head(head, &msg);
    if (memcmp(head, m, sizeof head) != 0)
      abort();
  } else if (size >= WEBSOCK__CLUSTER_HEAD && m[0] >= WEBSOCK__CM_PUBLISH &&
             m[0] <= WEBSOCK__CM_KIND_MAX &&
             m[14] <= size - WEBSOCK__CLUSTER_HEAD) {
    abort(); /* a well-formed message refused */
  }
  free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  if (data[0] & 1)
    fuzz_msg(data + 1, size - 1);
  else
    fuzz_url(data + 1, size - 1);
  return 0;
}
