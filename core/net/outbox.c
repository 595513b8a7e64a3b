/* An agent's outbox: the small sends an agent makes to the connections of
 * one loop travel together in one pooled job, posted once, instead of a
 * job per message (an echo's reply was a job taken, posted, run and
 * released, with a reference on the client, per message). Layer: net.
 *
 * Who touches what:
 * - An OUTBOX job has two holders (job.h: holders), its agent's slot for
 *   the loop (websock__agent.outboxes[loop index]) and the loop's
 *   mailbox; the last to let go releases it.
 * - Its buffer holds records, each a header (outbox_rec) and the encoded
 *   frames of one or more sends to one client in a row; each record holds
 *   a reference on its client. Only its agent writes it, and only while
 *   outbox_state is APPENDING, which the agent sets from IDLE with a
 *   compare-and-swap, and only while the outbox is still the newest post
 *   in the loop's mailbox (the mailbox's top). Adding to it is therefore
 *   the same as posting a job at the tail: every order the mailbox keeps
 *   holds (one client's sends, a send against a later close, ping,
 *   broadcast or drain fence, and across threads that synchronise).
 * - The loop seals it (IDLE to SEALED) before it reads it; the agent's
 *   next compare-and-swap fails then, and it opens a new outbox.
 * - Nothing grows an outbox's buffer: a send that does not fit in the room
 *   left opens a new one, so the steady state allocates nothing. */
#include <sched.h>
#include <string.h>

#include "net.h"
#include "proto/encode.h"

/* Larger sends go in a job of their own, whose buffer the output may
 * take over whole (websock__conn_append_buf). */
#define OUTBOX_MAX_FRAMES 1024

typedef struct outbox_rec {
  websock__client *client; /* referenced */
  size_t len;              /* bytes of frames after the header */
  size_t messages;         /* sends they hold */
} outbox_rec;

static outbox_rec outbox_rec_at(const websock__job *ob, size_t off) {
  outbox_rec r;
  memcpy(&r, ob->buf.data + off, sizeof r);
  return r;
}

static void outbox_rec_put(websock__job *ob, size_t off, const outbox_rec *r) {
  memcpy(ob->buf.data + off, r, sizeof *r);
}

/* Opens |ob| for one more send: 1 when this agent may add to it now
 * (APPENDING), 0 when the loop has it or a newer post follows it. */
static int outbox_open(websock__job *ob, websock__loop *l) {
  int idle = WEBSOCK__OUTBOX_IDLE;
  if (!atomic_compare_exchange_strong_explicit(
          &ob->outbox_state, &idle, WEBSOCK__OUTBOX_APPENDING,
          memory_order_acquire, memory_order_relaxed))
    return 0; /* sealed */
  if (atomic_load_explicit(&l->mailbox.top, memory_order_acquire) !=
      &ob->node) {
    atomic_store_explicit(&ob->outbox_state, WEBSOCK__OUTBOX_IDLE,
                          memory_order_release);
    return 0;
  }
  return 1;
}

static void outbox_close(websock__job *ob) {
  atomic_store_explicit(&ob->outbox_state, WEBSOCK__OUTBOX_IDLE,
                        memory_order_release);
}

/* Adds the send to |ob| (APPENDING, or not posted yet, with room for a
 * record header and the send's encoded frames). */
static void outbox_add(websock__net *n, websock__job *ob, websock__client *c,
                       const websock__cmd *cmd) {
  outbox_rec r;
  size_t off;
  if (ob->buf.len && (r = outbox_rec_at(ob, ob->outbox_last)).client == c) {
    off = ob->outbox_last; /* one more send to the same client */
  } else {
    off = ob->outbox_last = ob->buf.len;
    websock__client_ref(c);
    r = (outbox_rec){c, 0, 0};
    ob->buf.len += sizeof r;
  }
  size_t before = ob->buf.len;
  /* The room was checked: this never reallocates. */
  long w = websock__encode_message(&ob->buf, cmd->opcode, cmd->data, cmd->len,
                                   n->settings->fragment_size, NULL);
  websock__bp_count_out(c, w);
  r.len += ob->buf.len - before;
  r.messages++;
  outbox_rec_put(ob, off, &r);
}

int websock__outbox_send(websock__net *n, websock__loop *l, websock__client *c,
                         const websock__cmd *cmd) {
  websock__job **slot = websock__tctx.outboxes;
  if (!slot)
    return 1; /* not an agent */
  slot += l->index;
  size_t need = websock__encoded_size(cmd->len, n->settings->fragment_size);
  if (need > OUTBOX_MAX_FRAMES)
    return 1;
  websock__job *ob = *slot;
  if (ob) {
    if (outbox_open(ob, l)) {
      /* Worst case a new record: its header, then the frames. */
      if (ob->buf.cap - ob->buf.len >= sizeof(outbox_rec) + need) {
        outbox_add(n, ob, c, cmd);
        outbox_close(ob);
        return 0;
      }
      outbox_close(ob); /* full: it goes as it is */
    }
    *slot = NULL;
    websock__job_let_go(ob);
  }
  ob = websock__pool_get(&n->sched->pool);
  if (!ob)
    return 1; /* the caller's own job will fail the same way */
  if (ob->buf.cap < sizeof(outbox_rec) + need) {
    websock__job_release(ob);
    return 1;
  }
  ob->kind = WEBSOCK__JOB_OUTBOX;
  atomic_store_explicit(&ob->holders, 2, memory_order_relaxed);
  atomic_store_explicit(&ob->outbox_state, WEBSOCK__OUTBOX_IDLE,
                        memory_order_relaxed);
  outbox_add(n, ob, c, cmd);
  *slot = ob;
  websock__loop_post(l, ob); /* after it is filled: the post publishes it */
  return 0;
}

/* Waits out the agent's send in progress, if any, and seals |ob|. */
static void outbox_seal(websock__job *ob) {
  for (;;) {
    int idle = WEBSOCK__OUTBOX_IDLE;
    if (atomic_compare_exchange_weak_explicit(
            &ob->outbox_state, &idle, WEBSOCK__OUTBOX_SEALED,
            memory_order_acquire, memory_order_relaxed))
      return;
    /* A few instructions of the agent's; on a shared core it needs the
     * CPU to finish them. */
    if (idle == WEBSOCK__OUTBOX_APPENDING)
      sched_yield();
  }
}

/* Seals |ob| and consumes its records: each queued on its connection
 * when |deliver| and the connection is open, else uncounted; then lets
 * the outbox go. */
static void outbox_consume(websock__job *ob, int deliver) {
  outbox_seal(ob);
  for (size_t off = 0; off < ob->buf.len;) {
    outbox_rec r = outbox_rec_at(ob, off);
    const uint8_t *frames = ob->buf.data + off + sizeof r;
    websock__conn *c = (websock__conn *)r.client;
    if (!deliver || c->state != WEBSOCK__CONN_OPEN)
      websock__bp_count_out(r.client, -(long)r.len); /* never queued */
    else if (websock__conn_append_messages(c, frames, r.len, r.messages) < 0)
      websock__conn_fail(c, WEBSOCK_CLOSE_INTERNAL_ERROR);
    websock__client_unref(r.client);
    off += sizeof r + r.len;
  }
  websock__job_let_go(ob);
}

void websock__outbox_run(websock__job *ob) {
  outbox_consume(ob, 1);
}

void websock__outbox_drop(websock__job *ob) {
  outbox_consume(ob, 0);
}
