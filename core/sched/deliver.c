/* The event-delivery policy: how an event the I/O layer reports reaches
 * user code (inline, through an agent, or through the queued mode), and
 * the view of the client that user code sees. Layer: sched. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"
#include "util/alloc.h"

_Thread_local websock__thread_ctx websock__tctx;

void websock__job_fill_view(websock__sched *s, websock__job *j) {
  websock__client *c = j->client;
  j->ev.server = s->server;
  if (!c)
    return;
  j->ev.id = c->id;
  j->ev.user_data = atomic_load_explicit(&c->user_data, memory_order_acquire);
  j->ev.tag = NULL;
  if (websock__client_has(c, WEBSOCK__CLIENT_HAS_TAG) &&
      websock__registry_copy_tag(&s->registry, c, j->tag, sizeof j->tag) > 0)
    j->ev.tag = j->tag;
}

void websock__deliver(websock__sched *s, websock__client *client,
                      const websock_event *ev) {
  websock__client *saved = websock__tctx.client;
  websock__tctx.client = client;
  s->settings->event_cb(s->server, ev, s->settings->event_ud);
  websock__tctx.client = saved;
}

/* User code is done with the OPEN event of |c|: from now on broadcasts
 * reach it, never before its OPEN handler greeted it. Called on the loop
 * thread (inline mode, or no handler). */
static void deliver_greeted(websock__client *c, int type) {
  if (type == WEBSOCK_EVENT_OPEN)
    websock__client_set(c, WEBSOCK__CLIENT_GREETED);
}

void websock__event_done(websock__sched *s, websock__job *j) {
  if (j->client && j->ev.type == WEBSOCK_EVENT_OPEN) {
    /* The loop marks it, in mailbox order: a broadcast posted before the
     * sends of the OPEN handler must still skip the connection. */
    websock__job *g = websock__pool_get(&s->pool);
    if (g) {
      g->kind = WEBSOCK__JOB_GREETED;
      websock__client_ref(j->client);
      g->client = j->client;
      s->post_to_loop(s->loop_of(s, j->client), g);
    } else {
      deliver_greeted(j->client, WEBSOCK_EVENT_OPEN); /* out of memory */
    }
  }
  if (s->on_event_done)
    s->on_event_done(s, j);
}

static void emit_fill(websock_event *ev, const websock__emit *e) {
  ev->type = e->type;
  ev->opcode = e->opcode;
  ev->close_code = e->close_code;
  ev->status = e->status;
  if (e->type == WEBSOCK_EVENT_OPEN) {
    ev->path = e->path;
    ev->query = e->query;
    ev->subprotocol = e->subprotocol;
    ev->remote_addr = e->remote;
    ev->extensions = e->extensions;
  }
}

/* Inline mode: user code runs right here, reading the loop's buffers. */
static void emit_inline(websock__sched *s, websock__batch *b,
                        websock__client *c, const websock__emit *e) {
  websock_event ev;
  memset(&ev, 0, sizeof ev);
  emit_fill(&ev, e);
  ev.id = c->id;
  ev.data = e->data;
  ev.length = e->len;
  ev.server = s->server;
  ev.user_data = atomic_load_explicit(&c->user_data, memory_order_acquire);
  char tag[WEBSOCK__TAG_MAX + 1];
  if (websock__client_has(c, WEBSOCK__CLIENT_HAS_TAG) &&
      websock__registry_copy_tag(&s->registry, c, tag, sizeof tag) > 0)
    ev.tag = tag;
  websock__deliver(s, c, &ev);
  deliver_greeted(c, e->type);
  atomic_fetch_add_explicit(b->inline_events, 1, memory_order_relaxed);
}

/* An OPEN event that waits in a queue keeps copies of its strings, in the
 * job's buffer (an OPEN carries no payload), so the connection need not
 * keep them. Returns 0 or -1 (no memory). */
static int emit_keep_open_strings(websock__sched *s, websock__job *j,
                                  const websock__emit *e) {
  const char *src[5] = {e->path, e->query, e->subprotocol, e->remote,
                        e->extensions};
  size_t off[5];
  for (int i = 0; i < 5; i++) {
    off[i] = j->buf.len;
    if (!src[i])
      continue;
    int r = websock__buf_append(&j->buf, src[i], strlen(src[i]) + 1);
    if (r < 0)
      return -1;
    if (r > 0)
      websock__count_alloc(&s->allocs);
  }
  /* Pointers only now: the appends may have moved the buffer. */
  const char **dst[5] = {&j->ev.path, &j->ev.query, &j->ev.subprotocol,
                         &j->ev.remote_addr, &j->ev.extensions};
  for (int i = 0; i < 5; i++)
    *dst[i] = src[i] ? (const char *)j->buf.data + off[i] : NULL;
  j->ev.data = NULL;
  j->ev.length = 0;
  return 0;
}

int websock__sched_emit(websock__sched *s, websock__batch *b,
                        websock__client *c, const websock__emit *e) {
  const websock__settings *st = s->settings;
  int queued = st->delivery == WEBSOCK_DELIVERY_QUEUED;
  if (!queued && !st->event_cb) {
    deliver_greeted(c, e->type); /* no handler to wait for */
    return 0;
  }
  if (!queued && s->nagents == 0) {
    emit_inline(s, b, c, e);
    return 0;
  }
  websock__job *j = websock__pool_get(&s->pool);
  if (!j)
    return -1;
  if (e->swap) {
    /* Hand the reassembled message over without copying it. */
    websock__buf_swap(&j->buf, e->swap);
    e->swap->len = 0;
  } else if (e->len) {
    int r = websock__buf_append(&j->buf, e->data, e->len);
    if (r < 0) {
      websock__job_release(j);
      return -1;
    }
    if (r > 0)
      websock__count_alloc(&s->allocs);
  }
  j->kind = WEBSOCK__JOB_EVENT;
  websock__client_ref(c);
  j->client = c;
  memset(&j->ev, 0, sizeof j->ev);
  emit_fill(&j->ev, e);
  j->ev.data = j->buf.data;
  j->ev.length = j->buf.len;
  if (e->type == WEBSOCK_EVENT_OPEN && emit_keep_open_strings(s, j, e) < 0) {
    websock__job_release(j);
    return -1;
  }
  if (e->type == WEBSOCK_EVENT_MESSAGE)
    atomic_fetch_add_explicit(&c->inflight_in, j->buf.len,
                              memory_order_relaxed);
  if (queued) {
    websock__queue_push(&s->equeue, &j->node, &j->node);
    return 0;
  }
  websock__qlist_push(&b->jobs, &j->node, &j->node, 1);
  return 0;
}

void websock__batch_init(websock__batch *b,
                         atomic_uint_fast64_t *inline_events) {
  b->jobs = (websock__qlist){NULL, NULL, 0};
  b->inline_events = inline_events;
}

void websock__batch_flush(websock__sched *s, websock__batch *b) {
  websock__qnode *first = websock__qlist_take(&b->jobs, SIZE_MAX);
  if (first)
    websock__sched_submit(s, websock__job_of(first));
}
