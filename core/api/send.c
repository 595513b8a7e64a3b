/* Sending, closing, topics, tags and user data from any thread: argument
 * checks and look-ups here, then the one command path of the net layer
 * (net/command.c). Layer: api. */
#include <stdlib.h>
#include <string.h>

#include "proto/close.h"
#include "proto/utf8.h"
#include "server_int.h"

/* Finds |id| with a reference held. The client of the running callback is
 * found without taking the registry lock. */
static websock__client *send_lookup(websock_server *srv, uint64_t id) {
  websock__client *c = websock__tctx.client;
  if (c && c->id == id && websock__tctx.sched == &srv->sched) {
    websock__client_ref(c);
    return c;
  }
  return websock__registry_get(&srv->sched.registry, id);
}

static int send_check_payload(int opcode, const void *data, size_t len) {
  if ((!data && len) ||
      (opcode != WEBSOCK_OP_TEXT && opcode != WEBSOCK_OP_BINARY))
    return WEBSOCK_ERR_INVALID;
  if (opcode == WEBSOCK_OP_TEXT && !websock__utf8_valid(data, len))
    return WEBSOCK_ERR_BAD_UTF8;
  return 0;
}

static int send_check_close(int code, const char *reason) {
  if (code != 0 && !websock__close_code_valid((unsigned)code))
    return WEBSOCK_ERR_INVALID;
  if (reason && code == 0 && reason[0])
    return WEBSOCK_ERR_INVALID; /* a reason needs a code on the wire */
  if (reason && !websock__utf8_valid((const uint8_t *)reason, strlen(reason)))
    return WEBSOCK_ERR_BAD_UTF8;
  return 0;
}

/* A topic name: 1..WEBSOCK__TOPIC_MAX bytes, any bytes. */
static int send_check_topic(const void *topic, size_t len) {
  return topic && len && len <= WEBSOCK__TOPIC_MAX ? 0 : WEBSOCK_ERR_INVALID;
}

static int send_check(const websock__cmd *cmd) {
  switch (cmd->kind) {
  case WEBSOCK__CMD_SUBSCRIBE:
  case WEBSOCK__CMD_UNSUBSCRIBE:
    return send_check_topic(cmd->data, cmd->len);
  case WEBSOCK__CMD_SEND:
    return send_check_payload(cmd->opcode, cmd->data, cmd->len);
  case WEBSOCK__CMD_PING:
    if (!cmd->data && cmd->len)
      return WEBSOCK_ERR_INVALID;
    return cmd->len > 125 ? WEBSOCK_ERR_TOO_BIG : 0;
  default:
    return send_check_close(cmd->code, cmd->data);
  }
}

/* Checks |cmd| and runs it for the client with |id| (|tag| NULL) or with
 * |tag|. */
static int send_run(websock_server *srv, uint64_t id, const char *tag,
                    const websock__cmd *cmd) {
  int rc = send_check(cmd);
  if (rc)
    return rc;
  websock__client *c =
      tag ? websock__registry_get_tag(&srv->sched.registry, tag)
          : send_lookup(srv, id);
  int remote =
      cmd->kind == WEBSOCK__CMD_SEND || cmd->kind == WEBSOCK__CMD_CLOSE;
  if (!c && tag && srv->cluster && remote) {
    /* Another node's tag: sent to its connection by id. */
    rc = websock__cluster_find_tag(srv->cluster, tag, &id);
    if (rc)
      return rc;
    tag = NULL;
  }
  if (!c && !tag && srv->cluster && remote &&
      websock__cluster_remote(srv->cluster, id))
    return websock__cluster_send(
        srv->cluster, id, cmd->kind == WEBSOCK__CMD_SEND ? cmd->opcode : 0,
        cmd->code, cmd->data, cmd->len);
  if (!c)
    return WEBSOCK_ERR_NO_SUCH_CLIENT;
  rc = websock__net_command(&srv->net, c, cmd);
  websock__client_unref(c);
  return rc;
}

int websock_server_send(websock_server *srv, uint64_t id, int opcode,
                        const void *data, size_t len) {
  websock__cmd cmd = {WEBSOCK__CMD_SEND, opcode, 0, data, len};
  return srv ? send_run(srv, id, NULL, &cmd) : WEBSOCK_ERR_INVALID;
}

int websock_server_send_tag(websock_server *srv, const char *tag, int opcode,
                            const void *data, size_t len) {
  websock__cmd cmd = {WEBSOCK__CMD_SEND, opcode, 0, data, len};
  return srv && tag ? send_run(srv, 0, tag, &cmd) : WEBSOCK_ERR_INVALID;
}

int websock_server_ping(websock_server *srv, uint64_t id, const void *data,
                        size_t len) {
  websock__cmd cmd = {WEBSOCK__CMD_PING, 0, 0, data, len};
  return srv ? send_run(srv, id, NULL, &cmd) : WEBSOCK_ERR_INVALID;
}

int websock_server_close(websock_server *srv, uint64_t id, int code,
                         const char *reason) {
  websock__cmd cmd = {WEBSOCK__CMD_CLOSE, 0, code, reason,
                      reason ? strlen(reason) : 0};
  return srv ? send_run(srv, id, NULL, &cmd) : WEBSOCK_ERR_INVALID;
}

int websock_server_close_tag(websock_server *srv, const char *tag, int code,
                             const char *reason) {
  websock__cmd cmd = {WEBSOCK__CMD_CLOSE, 0, code, reason,
                      reason ? strlen(reason) : 0};
  return srv && tag ? send_run(srv, 0, tag, &cmd) : WEBSOCK_ERR_INVALID;
}

/* A message for many connections (broadcast, publish): a valid payload,
 * and a server that runs and is not stopping. */
static int send_check_fanout(websock_server *srv, int opcode, const void *data,
                             size_t len) {
  int rc = send_check_payload(opcode, data, len);
  if (rc)
    return rc;
  if (atomic_load(&srv->state) != WEBSOCK__SERVER_RUNNING ||
      atomic_load(&srv->stop_requested))
    return WEBSOCK_ERR_STATE;
  return 0;
}

int websock_server_broadcast(websock_server *srv, int opcode, const void *data,
                             size_t len, uint64_t except_id) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  int rc = send_check_fanout(srv, opcode, data, len);
  if (!rc)
    rc = websock__net_broadcast(&srv->net, opcode, data, len, except_id);
  if (!rc && srv->cluster)
    websock__cluster_broadcast(srv->cluster, opcode, data, len, except_id);
  return rc;
}

int websock_server_subscribe(websock_server *srv, uint64_t id,
                             const void *topic, size_t topic_len) {
  websock__cmd cmd = {WEBSOCK__CMD_SUBSCRIBE, 0, 0, topic, topic_len};
  return srv ? send_run(srv, id, NULL, &cmd) : WEBSOCK_ERR_INVALID;
}

int websock_server_unsubscribe(websock_server *srv, uint64_t id,
                               const void *topic, size_t topic_len) {
  websock__cmd cmd = {WEBSOCK__CMD_UNSUBSCRIBE, 0, 0, topic, topic_len};
  return srv ? send_run(srv, id, NULL, &cmd) : WEBSOCK_ERR_INVALID;
}

int websock_server_publish(websock_server *srv, const void *topic,
                           size_t topic_len, int opcode, const void *data,
                           size_t len, uint64_t except_id) {
  if (!srv || send_check_topic(topic, topic_len))
    return WEBSOCK_ERR_INVALID;
  int rc = send_check_fanout(srv, opcode, data, len);
  if (!rc)
    rc = websock__net_publish(&srv->net, topic, topic_len, opcode, data, len,
                              except_id);
  if (!rc && srv->cluster)
    websock__cluster_publish(srv->cluster, topic, topic_len, opcode, data, len,
                             except_id);
  return rc;
}

int websock_server_set_tag(websock_server *srv, uint64_t id, const char *tag) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  if (tag) {
    size_t n = strlen(tag);
    if (n == 0 || n > WEBSOCK__TAG_MAX)
      return WEBSOCK_ERR_INVALID;
  }
  int rc;
  websock__job *claim = NULL;
  if (srv->cluster && tag) {
    /* (The tag it holds is its again, also while the link is down: the
     * registry then answers UNCHANGED and the claim goes unused.) */
    if (!websock__registry_has_tag(&srv->sched.registry, id, tag) &&
        (rc = websock__cluster_tag_check(srv->cluster, tag)))
      return rc;
    if (!(claim = websock__cluster_claim_new(srv->cluster, id, tag)))
      return WEBSOCK_ERR_NOMEM;
  }
  rc = websock__registry_set_tag(&srv->sched.registry, id, tag, claim != NULL);
  if (rc) { /* (it has the tag already: nothing to ask) */
    if (claim)
      websock__job_release(claim);
    return rc == WEBSOCK__TAG_UNCHANGED       ? 0
           : rc == WEBSOCK__TAG_STILL_PENDING ? WEBSOCK_PENDING
                                              : rc;
  }
  if (!claim)
    return 0;
  /* Held here now; Redis tells whether it is ours cluster-wide. */
  websock__cluster_claim_post(srv->cluster, claim);
  return WEBSOCK_PENDING;
}

int websock_server_get_tag(websock_server *srv, uint64_t id, char *buf,
                           size_t cap) {
  if (!srv || !buf || cap == 0)
    return WEBSOCK_ERR_INVALID;
  websock__client *c = send_lookup(srv, id);
  if (!c)
    return WEBSOCK_ERR_NO_SUCH_CLIENT;
  buf[0] = 0;
  int n = websock__registry_copy_tag(&srv->sched.registry, c, buf, cap);
  websock__client_unref(c);
  return n < 0 ? WEBSOCK_ERR_INVALID : n;
}

int websock_server_find_tag(websock_server *srv, const char *tag,
                            uint64_t *id) {
  if (!srv || !tag || !id)
    return WEBSOCK_ERR_INVALID;
  websock__client *c = websock__registry_get_tag(&srv->sched.registry, tag);
  if (!c)
    return srv->cluster ? websock__cluster_find_tag(srv->cluster, tag, id)
                        : WEBSOCK_ERR_NO_SUCH_CLIENT;
  *id = c->id;
  websock__client_unref(c);
  return 0;
}

int websock_server_set_user_data(websock_server *srv, uint64_t id,
                                 void *user_data) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  websock__client *c = send_lookup(srv, id);
  if (!c)
    return WEBSOCK_ERR_NO_SUCH_CLIENT;
  atomic_store_explicit(&c->user_data, user_data, memory_order_release);
  websock__client_unref(c);
  return 0;
}
