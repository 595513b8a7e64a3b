/* The one command path: send, ping, close, subscribe and unsubscribe,
 * from any thread. A command runs at once when the caller is the
 * connection's own loop thread (a callback in inline mode, a hook); from
 * any other thread it is copied into a pooled job and posted to that
 * loop's mailbox. Broadcasts and publishes are encoded once and posted to
 * every loop, which hands them to its connections (a fan-out). Layer: net.
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
  case WEBSOCK__CMD_SUBSCRIBE:
    return websock__topic_subscribe(c, data, len);
  case WEBSOCK__CMD_UNSUBSCRIBE:
    websock__topic_unsubscribe(c, data, len);
    return 0;
  case WEBSOCK__CMD_TAG:
    if (c->state == WEBSOCK__CONN_OPEN) {
      websock__emit e = {
          .type = WEBSOCK_EVENT_TAG, .status = code, .data = data, .len = len};
      websock__conn_emit(c, &e);
    }
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
  int raw = cmd->kind == WEBSOCK__CMD_SEND &&
            websock__client_has(c, WEBSOCK__CLIENT_DEFLATE) &&
            cmd->len >= n->settings->deflate_threshold;
  /* An agent's small sends share a job per loop (outbox.c). */
  if (cmd->kind == WEBSOCK__CMD_SEND && !raw &&
      websock__outbox_send(n, l, c, cmd) == 0)
    return 0;
  websock__job *j = websock__pool_get(&n->sched->pool);
  if (!j)
    return WEBSOCK_ERR_NOMEM;
  int grew = 0;
  int kind = cmd->kind, arg = cmd->code;
  if (raw) {
    /* Compressed by the loop, the one thread that may use the
     * connection's (or the loop's) compressor. Counted as it is until
     * then. */
    kind = WEBSOCK__CMD_SEND_RAW;
    arg = cmd->opcode;
    grew = websock__buf_append(&j->buf, cmd->data, cmd->len);
    if (grew < 0) {
      websock__job_release(j);
      return WEBSOCK_ERR_NOMEM;
    }
    websock__bp_count_out(c, (long)cmd->len);
  } else if (kind == WEBSOCK__CMD_SEND) {
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
  j->code = kind;
  j->arg = arg;
  websock__client_ref(c);
  j->client = c;
  websock__loop_post(l, j);
  return 0;
}

/* Encodes one message once into a blob shared by every loop and posts a
 * job of |kind| (BROADCAST, or PUBLISH with the topic in its buffer) to
 * each loop. */
static int command_post_shared(websock__net *n, int kind, const void *topic,
                               size_t topic_len, int opcode, const void *data,
                               size_t len, uint64_t except_id) {
  size_t cap = websock__encoded_size(len, n->settings->fragment_size);
  /* With deflate the loops also need the payload itself, to compress it
   * for the connections that negotiated it. */
  size_t raw = n->settings->deflate_mode != WEBSOCK_DEFLATE_OFF &&
                       len >= n->settings->deflate_threshold
                   ? len
                   : 0;
  if (cap == SIZE_MAX || raw > SIZE_MAX - sizeof(websock__blob) - cap)
    return WEBSOCK_ERR_NOMEM;
  websock__blob *blob = websock__malloc(sizeof *blob + cap + raw);
  if (!blob)
    return WEBSOCK_ERR_NOMEM;
  blob->opcode = opcode;
  blob->raw_len = raw;
  /* Encoded in place: the buffer already has the room encode_message asks
   * for (websock__encoded_size), so it never reallocates it. */
  websock__buf frame = {blob->data, 0, cap};
  long w = websock__encode_message(&frame, opcode, data, len,
                                   n->settings->fragment_size, NULL);
  blob->len = (size_t)w;
  if (raw)
    memcpy(blob->data + blob->len, data, raw);
  atomic_init(&blob->refs, (int)n->nloops);
  int rc = 0;
  for (unsigned i = 0; i < n->nloops; i++) {
    websock__job *j = websock__pool_get(&n->sched->pool);
    /* A topic fits a pooled job's first buffer: this rarely allocates. */
    int grew =
        j && topic_len ? websock__buf_append(&j->buf, topic, topic_len) : 0;
    if (!j || grew < 0) {
      if (j)
        websock__job_release(j);
      websock__blob_unref(blob);
      rc = WEBSOCK_ERR_NOMEM;
      continue;
    }
    if (grew > 0)
      websock__count_alloc(&n->sched->allocs);
    j->kind = kind;
    j->ptr = blob;
    j->except_id = except_id;
    websock__loop_post(&n->loops[i], j);
  }
  return rc;
}

int websock__net_broadcast(websock__net *n, int opcode, const void *data,
                           size_t len, uint64_t except_id) {
  return command_post_shared(n, WEBSOCK__JOB_BROADCAST, NULL, 0, opcode, data,
                             len, except_id);
}

int websock__net_publish(websock__net *n, const void *topic, size_t topic_len,
                         int opcode, const void *data, size_t len,
                         uint64_t except_id) {
  return command_post_shared(n, WEBSOCK__JOB_PUBLISH, topic, topic_len, opcode,
                             data, len, except_id);
}

/* ---- fan-out: one shared message to many connections of a loop ------- */

void websock__fanout_begin(websock__fanout *f, websock__loop *l,
                           const websock__blob *blob, uint64_t except_id) {
  f->loop = l;
  f->blob = blob;
  f->except_id = except_id;
  f->plain = (websock__buf){(uint8_t *)blob->data, blob->len, blob->len};
  f->shared = NULL;
}

/* The frames of the blob for |k|: the plain ones, the compressed ones this
 * loop's shared compressor made once for every connection like |k|
 * (made on first use), or, for a connection with a compressor of its own,
 * NULL: it compresses its copy itself. */
static const websock__buf *fanout_frames(websock__fanout *f, websock__conn *k) {
  const websock__blob *blob = f->blob;
  const uint8_t *raw = blob->data + blob->len;
  if (!blob->raw_len || !websock__pmd_wants(k, blob->opcode, blob->raw_len))
    return &f->plain;
  if (!websock__pmd_shared(k))
    return NULL;
  if (!f->shared)
    f->shared = websock__pmd_frame(k, blob->opcode, raw, blob->raw_len);
  return f->shared;
}

void websock__fanout_to(websock__fanout *f, websock__conn *k) {
  const websock__blob *blob = f->blob;
  /* A connection whose OPEN handler has not returned yet is not reached:
   * its handler greets it before anything else comes. */
  if (k->state != WEBSOCK__CONN_OPEN || k->base.id == f->except_id ||
      !websock__client_has(&k->base, WEBSOCK__CLIENT_GREETED) ||
      websock__bp_skip_shared(f->loop->net->settings, &k->base, blob->len))
    return;
  const websock__buf *fr = fanout_frames(f, k);
  int rc =
      fr ? websock__conn_append(k, fr->data, fr->len, WEBSOCK__APPEND_MESSAGE)
         : websock__conn_queue_message(k, blob->opcode, blob->data + blob->len,
                                       blob->raw_len);
  if (rc < 0)
    websock__conn_fail(k, WEBSOCK_CLOSE_INTERNAL_ERROR);
}

void websock__fanout_end(websock__fanout *f) {
  if (f->shared)
    websock__pmd_scratch_done(&f->loop->zframe);
}

static void command_broadcast(websock__loop *l, websock__job *j) {
  websock__fanout f;
  websock__fanout_begin(&f, l, j->ptr, j->except_id);
  /* A broadcast is for the server's audience: the connections it dialed
   * (a bridge's upstream) are not part of it. */
  for (websock__conn *k = l->conns; k; k = k->next)
    if (!k->outgoing)
      websock__fanout_to(&f, k);
  websock__fanout_end(&f);
}

void websock__command_run(websock__loop *l, websock__job *j) {
  if (j->kind == WEBSOCK__JOB_BROADCAST || j->kind == WEBSOCK__JOB_PUBLISH) {
    if (j->kind == WEBSOCK__JOB_BROADCAST)
      command_broadcast(l, j);
    else
      websock__topic_publish(l, j);
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
    int rc;
    if (j->code == WEBSOCK__CMD_SEND_RAW) {
      /* Counted raw by the sender; encoding counts what it queues. */
      websock__bp_count_out(&c->base, -(long)j->buf.len);
      rc = command_send(c, j->arg, j->buf.data, j->buf.len, NULL);
    } else {
      rc = command_apply(c, j->code, 0, j->arg, j->buf.data, j->buf.len,
                         &j->buf);
    }
    if (rc == WEBSOCK_ERR_NOMEM)
      websock__conn_fail(c, WEBSOCK_CLOSE_INTERNAL_ERROR);
  }
  websock__job_release(j);
}

void websock__command_drop(websock__job *j) {
  if (j->kind == WEBSOCK__JOB_COMMAND && j->code == WEBSOCK__CMD_UPGRADE) {
    websock__upgrade_unref(j->ptr); /* the loop has gone */
    j->ptr = NULL;
  } else if ((j->kind == WEBSOCK__JOB_BROADCAST ||
              j->kind == WEBSOCK__JOB_PUBLISH) &&
             j->ptr) {
    websock__blob_unref(j->ptr);
    j->ptr = NULL;
  } else if (j->kind == WEBSOCK__JOB_COMMAND &&
             (j->code == WEBSOCK__CMD_SEND ||
              j->code == WEBSOCK__CMD_SEND_RAW) &&
             j->client) {
    /* Counted at submission; it will never be written now. */
    websock__bp_count_out(j->client, -(long)j->buf.len);
    j->code = 0;
  }
  websock__job_release(j);
}
