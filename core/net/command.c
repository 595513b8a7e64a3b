/* The one command path: send, ping and close, from any thread. A command
 * runs at once when the caller is the connection's own loop thread (a
 * callback in inline mode, a hook); from any other thread it is copied
 * into a pooled job and posted to that loop's mailbox. Broadcasts are
 * encoded once and posted to every loop. Layer: net.
 *
 * Accounting: a posted SEND is encoded by the caller and its bytes enter
 * pending_out before the post, so the next send from any thread sees them
 * against the outbound bound; websock__conn_append (APPEND_COUNTED) then
 * queues them without counting twice, or uncounts them when the
 * connection is no longer open. */
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "proto/encode.h"
#include "defer.h"
#include "proto/frame.h"
#include "util/alloc.h"

/* A SEND on the connection's loop: |data| to encode, or (|encoded| not
 * NULL) a posted job's buffer holding its frames already encoded and
 * counted by the caller, which the output may take over. */
static inline int command_send(websock__conn *c, int opcode,
                               const uint8_t *data, size_t len,
                               websock__buf *encoded) {
  if (c->state == WEBSOCK__CONN_OPEN) {
    int r = encoded ? websock__conn_append_buf(c, encoded,
                                               WEBSOCK__APPEND_COUNTED |
                                                   WEBSOCK__APPEND_MESSAGE)
                    : websock__conn_queue_message(c, opcode, data, len);
    return r < 0 ? WEBSOCK_ERR_NOMEM : 0;
  }
  if (encoded)
    websock__bp_count_out(&c->base, -(long)len); /* never queued */
  return WEBSOCK_ERR_CLOSING;
}

/* Runs a command on the connection's loop (|encoded| as for
 * command_send). */
static int command_apply(websock__conn *c, int kind, int opcode, int code,
                         const uint8_t *data, size_t len,
                         websock__buf *encoded) {
  switch (kind) {
  case WEBSOCK__CMD_SEND:
    return command_send(c, opcode, data, len, encoded);
  case WEBSOCK__CMD_PING:
    if (c->state != WEBSOCK__CONN_OPEN)
      return WEBSOCK_ERR_CLOSING;
    return websock__conn_queue_message(c, WEBSOCK__OP_PING, data, len) < 0
               ? WEBSOCK_ERR_NOMEM
               : 0;
  case WEBSOCK__CMD_CLOSE:
    websock__conn_start_close(c, code, (const char *)data, len);
    return 0;
  default:
    return WEBSOCK_ERR_INVALID;
  }
}

int websock__net_command(websock__net *n, websock__client *c,
                         const websock__cmd *cmd) {
  if (websock__client_has(c, WEBSOCK__CLIENT_CLOSING))
    return WEBSOCK_ERR_CLOSING;
  if (cmd->kind == WEBSOCK__CMD_SEND) {
    int rc = websock__bp_admit(n->settings, c, cmd->len);
    if (rc)
      return rc;
  }
  websock__loop *l = websock__loop_of(c);
  if (websock__loop_is_current(l)) {
    /* A send from the connection's own callback (inline mode), the hot
     * path of an echo, goes straight to command_send. */
    if (cmd->kind == WEBSOCK__CMD_SEND)
      return command_send((websock__conn *)c, cmd->opcode, cmd->data, cmd->len,
                          NULL);
    return command_apply((websock__conn *)c, cmd->kind, cmd->opcode, cmd->code,
                         cmd->data, cmd->len, NULL);
  }
  websock__job *j = websock__pool_get(&n->sched->pool);
  if (!j)
    return WEBSOCK_ERR_NOMEM;
  int grew = 0;
  if (cmd->kind == WEBSOCK__CMD_SEND) {
    long w = websock__encode_message(&j->buf, cmd->opcode, cmd->data, cmd->len,
                                     n->settings->fragment_size, &grew);
    if (w < 0) {
      websock__job_release(j);
      return WEBSOCK_ERR_NOMEM;
    }
    websock__bp_count_out(c, w);
  } else {
    grew = websock__buf_append(&j->buf, cmd->len ? cmd->data : "", cmd->len);
    if (grew < 0) {
      websock__job_release(j);
      return WEBSOCK_ERR_NOMEM;
    }
  }
  if (grew > 0)
    websock__count_alloc(&n->sched->allocs);
  j->kind = WEBSOCK__JOB_COMMAND;
  j->code = cmd->kind;
  j->arg = cmd->code;
  websock__client_ref(c);
  j->client = c;
  websock__loop_post(l, j);
  return 0;
}

int websock__net_broadcast(websock__net *n, int opcode, const void *data,
                           size_t len, uint64_t except_id) {
  size_t cap = websock__encoded_size(len, n->settings->fragment_size);
  websock__blob *blob = websock__malloc(sizeof *blob + cap);
  if (!blob)
    return WEBSOCK_ERR_NOMEM;
  /* Encoded in place: the buffer already has the room encode_message asks
   * for (websock__encoded_size), so it never reallocates it. */
  websock__buf frame = {blob->data, 0, cap};
  long w = websock__encode_message(&frame, opcode, data, len,
                                   n->settings->fragment_size, NULL);
  blob->len = (size_t)w;
  atomic_init(&blob->refs, (int)n->nloops);
  int rc = 0;
  for (unsigned i = 0; i < n->nloops; i++) {
    websock__job *j = websock__pool_get(&n->sched->pool);
    if (!j) {
      websock__blob_unref(blob);
      rc = WEBSOCK_ERR_NOMEM;
      continue;
    }
    j->kind = WEBSOCK__JOB_BROADCAST;
    j->ptr = blob;
    j->except_id = except_id;
    websock__loop_post(&n->loops[i], j);
  }
  return rc;
}

static void command_broadcast(websock__loop *l, websock__job *j) {
  websock__blob *blob = j->ptr;
  const websock__settings *st = l->net->settings;
  for (websock__conn *k = l->conns; k; k = k->next) {
    /* A connection whose OPEN handler has not returned yet is not in the
     * broadcast set: its handler greets it before anything else comes. */
    if (k->state != WEBSOCK__CONN_OPEN || k->base.id == j->except_id ||
        !websock__client_has(&k->base, WEBSOCK__CLIENT_GREETED) ||
        websock__bp_skip_shared(st, &k->base, blob->len))
      continue;
    if (websock__conn_append(k, blob->data, blob->len,
                             WEBSOCK__APPEND_MESSAGE) < 0)
      websock__conn_fail(k, WEBSOCK_CLOSE_INTERNAL_ERROR);
  }
}

void websock__command_run(websock__loop *l, websock__job *j) {
  if (j->kind == WEBSOCK__JOB_BROADCAST) {
    command_broadcast(l, j);
    websock__blob_unref(j->ptr);
    j->ptr = NULL;
  } else if (j->code == WEBSOCK__CMD_UPGRADE) {
    websock__upgrade_answer((websock__conn *)j->client, j->ptr);
    websock__upgrade_unref(j->ptr); /* the holder's, carried by the job */
    j->ptr = NULL;
  } else {
    /* No caller is left to tell of a failure: the send was accepted. A
     * connection that ended loses it; one that ran out of memory fails
     * with 1011, so its CLOSE event says so. */
    websock__conn *c = (websock__conn *)j->client;
    if (command_apply(c, j->code, 0, j->arg, j->buf.data, j->buf.len,
                      &j->buf) == WEBSOCK_ERR_NOMEM)
      websock__conn_fail(c, WEBSOCK_CLOSE_INTERNAL_ERROR);
  }
  websock__job_release(j);
}

void websock__command_drop(websock__job *j) {
  if (j->kind == WEBSOCK__JOB_COMMAND && j->code == WEBSOCK__CMD_UPGRADE) {
    websock__upgrade_unref(j->ptr); /* the loop has gone */
    j->ptr = NULL;
  } else if (j->kind == WEBSOCK__JOB_BROADCAST && j->ptr) {
    websock__blob_unref(j->ptr);
    j->ptr = NULL;
  } else if (j->kind == WEBSOCK__JOB_COMMAND && j->code == WEBSOCK__CMD_SEND &&
             j->client) {
    /* Counted at submission; it will never be written now. */
    websock__bp_count_out(j->client, -(long)j->buf.len);
    j->code = 0;
  }
  websock__job_release(j);
}
