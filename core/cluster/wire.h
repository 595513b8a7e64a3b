/* The cluster's wire formats, pure functions with no Redis in them (and
 * fuzzed: tests/fuzz/fuzz_cluster.c): the redis:// URL, and the messages
 * nodes publish to one another. Layer: cluster. */
#ifndef WEBSOCK_CLUSTER_WIRE_H
#define WEBSOCK_CLUSTER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WEBSOCK__CLUSTER_HOST_MAX 255
#define WEBSOCK__CLUSTER_USER_MAX 255
#define WEBSOCK__CLUSTER_PASSWORD_MAX 512
/* The fixed part of a message, before its name. */
#define WEBSOCK__CLUSTER_HEAD 15

/* "redis://[[user]:password@]host[:port][/db]", parsed: the credentials
 * %-decoded, an IPv6 host given as "[addr]" without its brackets. */
typedef struct websock__cluster_url {
  char host[WEBSOCK__CLUSTER_HOST_MAX + 1];
  char user[WEBSOCK__CLUSTER_USER_MAX + 1];         /* "": AUTH password */
  int port;                                         /* default 6379 */
  char password[WEBSOCK__CLUSTER_PASSWORD_MAX + 1]; /* "": no AUTH */
  int db;                                           /* default 0 */
} websock__cluster_url;

/* Returns 0 and fills |out|, or -1 with the reason in *why. */
int websock__cluster_url_parse(const char *url, websock__cluster_url *out,
                               const char **why);
/* The words of the AUTH command |u| asks for, in |argv|: "AUTH" [user]
 * password. Returns their count, 0 when it needs none. */
int websock__cluster_url_auth(const websock__cluster_url *u,
                              const char *argv[3]);

enum websock__cluster_kind {
  WEBSOCK__CM_PUBLISH = 1,  /* name: the topic; id: the connection to skip */
  WEBSOCK__CM_BROADCAST,    /* id: the connection to skip */
  WEBSOCK__CM_SEND,         /* id: the connection to reach; opcode 0 and
                               code: a close, the reason as data */
  WEBSOCK__CM_TAG_CLAIMED,  /* name: the tag, now held by (origin, id) */
  WEBSOCK__CM_TAG_RELEASED, /* name: the tag (origin, id) no longer holds */
  WEBSOCK__CM_NODE_ALIVE,   /* origin beats (every ttl/3) */
  WEBSOCK__CM_NODE_GONE,    /* id (as a node number): its tags are void */
  WEBSOCK__CM_KIND_MAX = WEBSOCK__CM_NODE_GONE
};

/* A message: [kind 1][origin 2][id 8][opcode 1][code 2][name length 1]
 * [name][data], numbers big-endian. */
typedef struct websock__cluster_msg {
  int kind; /* enum websock__cluster_kind */
  unsigned origin;
  uint64_t id;
  int opcode;
  int code;
  const uint8_t *name; /* a topic or a tag, name_len 0..255 bytes */
  size_t name_len;
  const uint8_t *data;
  size_t len;
} websock__cluster_msg;

/* Returns 0 and fills |out| (pointing into |m|), or -1 for a message that
 * is too short or of an unknown kind. */
int websock__cluster_msg_decode(const uint8_t *m, size_t n,
                                websock__cluster_msg *out);
/* Writes the fixed part of |msg| (its name and data follow it). */
void websock__cluster_msg_head(uint8_t head[WEBSOCK__CLUSTER_HEAD],
                               const websock__cluster_msg *msg);

#endif
