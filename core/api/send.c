/* Sending, closing, tags and user data from any thread. A call from the
 * connection's own loop thread writes straight into its buffer; any other
 * thread hands a pooled job to the loop's mailbox. Layer: api. */
#include <stdlib.h>
#include <string.h>

#include "proto/close.h"
#include "proto/encode.h"
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

static int send_on_own_loop(websock_server *srv, websock__client *c) {
  return websock__tctx.loop == &srv->net.loops[c->loop_index];
}

static int send_check_payload(int opcode, const void *data, size_t len) {
  if ((!data && len) ||
      (opcode != WEBSOCK_OP_TEXT && opcode != WEBSOCK_OP_BINARY))
    return WEBSOCK_ERR_INVALID;
  if (opcode == WEBSOCK_OP_TEXT && !websock__utf8_valid(data, len))
    return WEBSOCK_ERR_BAD_UTF8;
  return 0;
}

/* Queues a frame of kind |kind| (SEND or PING) for client |c|. */
static int send_to_client(websock_server *srv, websock__client *c, int kind,
                          int opcode, const void *data, size_t len) {
  if (atomic_load_explicit(&c->closing, memory_order_acquire))
    return WEBSOCK_ERR_CLOSING;
  size_t pending = atomic_load_explicit(&c->pending_out, memory_order_relaxed);
  if (pending && pending + len > srv->settings.max_outbound) {
    atomic_store(&c->want_drain, 1);
    return WEBSOCK_ERR_BACKPRESSURE;
  }
  if (send_on_own_loop(srv, c)) {
    websock__conn *conn = (websock__conn *)c;
    if (conn->state != WEBSOCK__CONN_OPEN)
      return WEBSOCK_ERR_CLOSING;
    if (websock__conn_queue_message(conn, opcode, data, len) < 0)
      return WEBSOCK_ERR_NOMEM;
    if (kind == WEBSOCK__JOB_SEND)
      atomic_fetch_add_explicit(&conn->loop->messages_out, 1,
                                memory_order_relaxed);
    return 0;
  }
  websock__job *j = websock__pool_get(&srv->sched.pool);
  if (!j)
    return WEBSOCK_ERR_NOMEM;
  if (kind == WEBSOCK__JOB_SEND) {
    int grew = 0;
    long w = websock__encode_message(&j->buf, opcode, data, len,
                                     srv->settings.fragment_size, &grew);
    if (w < 0) {
      websock__job_release(j);
      return WEBSOCK_ERR_NOMEM;
    }
    if (grew)
      websock__count_alloc(&srv->sched.allocs);
    atomic_fetch_add_explicit(&c->pending_out, (size_t)w, memory_order_relaxed);
  } else if (websock__buf_append(&j->buf, data, len) < 0) {
    websock__job_release(j);
    return WEBSOCK_ERR_NOMEM;
  }
  j->kind = kind;
  websock__client_ref(c);
  j->client = c;
  websock__loop_post(&srv->net.loops[c->loop_index], j);
  return 0;
}

int websock_server_send(websock_server *srv, uint64_t id, int opcode,
                        const void *data, size_t len) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  int rc = send_check_payload(opcode, data, len);
  if (rc)
    return rc;
  websock__client *c = send_lookup(srv, id);
  if (!c)
    return WEBSOCK_ERR_NO_SUCH_CLIENT;
  rc = send_to_client(srv, c, WEBSOCK__JOB_SEND, opcode, data, len);
  websock__client_unref(c);
  return rc;
}

int websock_server_send_tag(websock_server *srv, const char *tag, int opcode,
                            const void *data, size_t len) {
  if (!srv || !tag)
    return WEBSOCK_ERR_INVALID;
  int rc = send_check_payload(opcode, data, len);
  if (rc)
    return rc;
  websock__client *c = websock__registry_get_tag(&srv->sched.registry, tag);
  if (!c)
    return WEBSOCK_ERR_NO_SUCH_CLIENT;
  rc = send_to_client(srv, c, WEBSOCK__JOB_SEND, opcode, data, len);
  websock__client_unref(c);
  return rc;
}

int websock_server_ping(websock_server *srv, uint64_t id, const void *data,
                        size_t len) {
  if (!srv || (!data && len))
    return WEBSOCK_ERR_INVALID;
  if (len > 125)
    return WEBSOCK_ERR_TOO_BIG;
  websock__client *c = send_lookup(srv, id);
  if (!c)
    return WEBSOCK_ERR_NO_SUCH_CLIENT;
  int rc = send_to_client(srv, c, WEBSOCK__JOB_PING, 0x9, data, len);
  websock__client_unref(c);
  return rc;
}

static int send_close_client(websock_server *srv, websock__client *c, int code,
                             const char *reason) {
  size_t rlen = reason ? strlen(reason) : 0;
  if (atomic_load_explicit(&c->closing, memory_order_acquire))
    return WEBSOCK_ERR_CLOSING;
  if (send_on_own_loop(srv, c)) {
    websock__conn_start_close((websock__conn *)c, code, reason, rlen);
    return 0;
  }
  websock__job *j = websock__pool_get(&srv->sched.pool);
  if (!j)
    return WEBSOCK_ERR_NOMEM;
  if (websock__buf_append(&j->buf, reason ? reason : "", rlen) < 0) {
    websock__job_release(j);
    return WEBSOCK_ERR_NOMEM;
  }
  j->kind = WEBSOCK__JOB_CLOSE;
  j->code = code;
  websock__client_ref(c);
  j->client = c;
  websock__loop_post(&srv->net.loops[c->loop_index], j);
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

int websock_server_close(websock_server *srv, uint64_t id, int code,
                         const char *reason) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  int rc = send_check_close(code, reason);
  if (rc)
    return rc;
  websock__client *c = send_lookup(srv, id);
  if (!c)
    return WEBSOCK_ERR_NO_SUCH_CLIENT;
  rc = send_close_client(srv, c, code, reason);
  websock__client_unref(c);
  return rc;
}

int websock_server_close_tag(websock_server *srv, const char *tag, int code,
                             const char *reason) {
  if (!srv || !tag)
    return WEBSOCK_ERR_INVALID;
  int rc = send_check_close(code, reason);
  if (rc)
    return rc;
  websock__client *c = websock__registry_get_tag(&srv->sched.registry, tag);
  if (!c)
    return WEBSOCK_ERR_NO_SUCH_CLIENT;
  rc = send_close_client(srv, c, code, reason);
  websock__client_unref(c);
  return rc;
}

int websock_server_broadcast(websock_server *srv, int opcode, const void *data,
                             size_t len, uint64_t except_id) {
  if (!srv)
    return WEBSOCK_ERR_INVALID;
  int rc = send_check_payload(opcode, data, len);
  if (rc)
    return rc;
  if (atomic_load(&srv->state) != WEBSOCK__SERVER_RUNNING ||
      atomic_load(&srv->stop_requested))
    return WEBSOCK_ERR_STATE;
  websock__buf frame = {0};
  long w = websock__encode_message(&frame, opcode, data, len,
                                   srv->settings.fragment_size, NULL);
  if (w < 0)
    return WEBSOCK_ERR_NOMEM;
  websock__blob *blob = malloc(sizeof *blob + (size_t)w);
  if (!blob) {
    websock__buf_free(&frame);
    return WEBSOCK_ERR_NOMEM;
  }
  memcpy(blob->data, frame.data, (size_t)w);
  blob->len = (size_t)w;
  websock__buf_free(&frame);
  unsigned nloops = srv->net.nloops;
  atomic_init(&blob->refs, (int)nloops);
  for (unsigned i = 0; i < nloops; i++) {
    websock__job *j = websock__pool_get(&srv->sched.pool);
    if (!j) {
      websock__blob_unref(blob);
      rc = WEBSOCK_ERR_NOMEM;
      continue;
    }
    j->kind = WEBSOCK__JOB_BROADCAST;
    j->ptr = blob;
    j->except_id = except_id;
    websock__loop_post(&srv->net.loops[i], j);
  }
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
  return websock__registry_set_tag(&srv->sched.registry, id, tag);
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
    return WEBSOCK_ERR_NO_SUCH_CLIENT;
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
