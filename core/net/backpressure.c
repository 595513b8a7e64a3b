/* Backpressure, in one place: the per-connection outbound bound (sends
 * past it fail with WEBSOCK_ERR_BACKPRESSURE and owe a DRAIN event), the
 * pausing of reads while a client's backlog is high, and the resumption
 * once it eased. Layer: net.
 *
 * A connection's backlog is its queued output (pending_out: bytes in posted
 * sends, in its out buffer) plus the bytes of its messages that user code
 * has not finished handling (inflight_in). Reading pauses above half the
 * outbound bound and resumes below a quarter, so a client that sends faster
 * than it reads our replies (or than its handlers run) slows itself down,
 * and replies to what was read still fit under the bound.
 *
 * The slow-consumer policy ends a connection whose queued output stayed at
 * half the bound or more at every sweep for the slow-consumer timeout: a
 * client that does not read would otherwise pin up to the bound forever. */
#include <stdatomic.h>
#include <sys/socket.h>

#include "net.h"

int websock__bp_admit(const websock__settings *st, websock__client *c,
                      size_t len) {
  size_t pending = atomic_load_explicit(&c->pending_out, memory_order_relaxed);
  /* One message larger than the bound still goes into an empty queue. */
  if (pending && pending + len > st->max_outbound) {
    websock__client_set(c, WEBSOCK__CLIENT_WANT_DRAIN);
    return WEBSOCK_ERR_BACKPRESSURE;
  }
  return 0;
}

int websock__bp_skip_shared(const websock__settings *st,
                            const websock__client *c, size_t len) {
  size_t pending = atomic_load_explicit(&c->pending_out, memory_order_relaxed);
  return pending > 0 && pending + len > st->max_outbound;
}

void websock__bp_count_out(websock__client *c, long n) {
  if (n >= 0)
    atomic_fetch_add_explicit(&c->pending_out, (size_t)n, memory_order_relaxed);
  else
    atomic_fetch_sub_explicit(&c->pending_out, (size_t)-n,
                              memory_order_relaxed);
}

static size_t bp_backlog(websock__conn *c) {
  return atomic_load_explicit(&c->base.pending_out, memory_order_relaxed) +
         atomic_load_explicit(&c->base.inflight_in, memory_order_acquire);
}

static void bp_resume(websock__conn *c) {
  event_add(&c->rd_ev, NULL);
  c->read_paused = 0;
  websock__client_clear(&c->base, WEBSOCK__CLIENT_READ_PAUSED);
  /* Records OpenSSL already pulled off the socket would never make it
   * readable again: look at them now. */
  if (c->ssl)
    event_active(&c->rd_ev, EV_READ, 1);
}

int websock__bp_check_pause(websock__conn *c) {
  if (bp_backlog(c) <= c->loop->net->settings->max_outbound / 2)
    return 0;
  event_del(&c->rd_ev);
  c->read_paused = 1;
  websock__client_set(&c->base, WEBSOCK__CLIENT_READ_PAUSED);
  return 1;
}

void websock__bp_maybe_resume(websock__conn *c) {
  /* A connection failed for a protocol error reads no more once its
   * budget is spent (see websock__conn_limit_reads). */
  if (c->fail_drop && !c->fail_read_kib)
    return;
  if (c->read_paused && c->state != WEBSOCK__CONN_DEAD &&
      bp_backlog(c) <= c->loop->net->settings->max_outbound / 4)
    bp_resume(c);
}

void websock__bp_force_resume(websock__conn *c) {
  if (c->read_paused)
    bp_resume(c);
}

void websock__bp_after_flush(websock__conn *c) {
  size_t pending =
      atomic_load_explicit(&c->base.pending_out, memory_order_relaxed);
  c->slow_since_ms = 0; /* it keeps up after all */
  if (c->fail_drop && c->state == WEBSOCK__CONN_LINGER) {
    /* Our close frame is out: the read side ends the connection (the
     * flush goes on to half-close it first; see conn_drained). */
    event_active(&c->rd_ev, EV_READ, 1);
    return;
  }
  websock__bp_maybe_resume(c);
  if (pending <= c->loop->net->settings->max_outbound / 2 &&
      websock__client_test_clear(&c->base, WEBSOCK__CLIENT_WANT_DRAIN) &&
      c->state == WEBSOCK__CONN_OPEN) {
    websock__emit e = {.type = WEBSOCK_EVENT_DRAIN};
    websock__conn_emit(c, &e);
  }
}

void websock__bp_event_done(websock__sched *s, websock__job *j) {
  websock__client *c = j->client;
  if (!c || j->ev.type != WEBSOCK_EVENT_MESSAGE)
    return;
  atomic_fetch_sub_explicit(&c->inflight_in, j->ev.length,
                            memory_order_acq_rel);
  if (!websock__client_has(c, WEBSOCK__CLIENT_READ_PAUSED) ||
      websock__client_test_set(c, WEBSOCK__CLIENT_RESUME_POSTED))
    return;
  websock__job *r = websock__pool_get(&s->pool);
  if (!r) {
    /* Out of memory: the next write progress on the loop resumes it. */
    websock__client_clear(c, WEBSOCK__CLIENT_RESUME_POSTED);
    return;
  }
  r->kind = WEBSOCK__JOB_RESUME;
  websock__client_ref(c);
  r->client = c;
  s->post_to_loop(s->loop_of(s, c), r);
}

int websock__bp_check_slow(websock__conn *c, uint32_t now) {
  const websock__settings *st = c->loop->net->settings;
  size_t pending =
      atomic_load_explicit(&c->base.pending_out, memory_order_relaxed);
  if (!st->slow_consumer_timeout_ms || c->state != WEBSOCK__CONN_OPEN ||
      pending < st->max_outbound / 2) {
    c->slow_since_ms = 0;
    return 0;
  }
  if (!c->slow_since_ms) {
    c->slow_since_ms = now ? now : 1; /* 0 means "not slow" */
    return 0;
  }
  if (now - c->slow_since_ms < st->slow_consumer_timeout_ms)
    return 0;
  /* No close frame: it would wait behind the output the peer does not
   * read. The output is dropped with the connection, the kernel's too: a
   * reset instead of a FIN that would keep the socket's buffers until the
   * peer read them or TCP gave up. */
  websock__out *o = c->out;
  if (o) {
    websock__bp_count_out(&c->base, -(long)(o->buf.len - o->off));
    websock__conn_out_release(c, 1);
  }
  struct linger reset = {.l_onoff = 1, .l_linger = 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  c->close_code = WEBSOCK_CLOSE_POLICY;
  websock__loop *l = c->loop;
  websock__conn_end(c);
  websock__listen_fd_freed(l);
  return 1;
}
