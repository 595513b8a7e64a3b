/* Deferred upgrades over real sockets: accepted later from another thread
 * (with a subprotocol, and with frames the client sent early), refused
 * with 401 and a body, a client that leaves while its upgrade waits, the
 * 503 at the handshake timeout, a subprotocol that was not offered, and
 * the hook run on the agents so a slow hook holds up no I/O thread. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <websock.h>

#include "testkit.h"
#include "wsclient.h"

typedef struct dsrv {
  websock_server *srv;
  int port;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  websock_upgrade *pending; /* the last deferred handle */
  int hook_blocked;         /* "/block" hooks waiting now */
  int release;              /* lets "/block" hooks go on */
  atomic_int opens;
  char open_proto[32]; /* subprotocol of the last OPEN */
} dsrv;

/* "/defer*": defer and hand the handle to the test. "/block": wait until
 * released, then accept (hook on agents). "/deny": 401. "/moved": 302
 * with a Location. Others: accept. */
static int dsrv_hook(websock_server *srv, websock_request *req, void *ud) {
  (void)srv;
  dsrv *t = ud;
  const char *path = websock_request_path(req);
  if (!websock_request_is_upgrade(req))
    return 0;
  if (strncmp(path, "/defer", 6) == 0) {
    websock_upgrade *up;
    ck_assert_int_eq(websock_request_defer(req, &up), 0);
    ck_assert_int_eq(websock_request_defer(req, &up), WEBSOCK_ERR_STATE);
    pthread_mutex_lock(&t->mu);
    t->pending = up;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return WEBSOCK_DEFER;
  }
  if (strcmp(path, "/block") == 0) {
    pthread_mutex_lock(&t->mu);
    t->hook_blocked++;
    pthread_cond_broadcast(&t->cv);
    while (!t->release)
      pthread_cond_wait(&t->cv, &t->mu);
    t->hook_blocked--;
    pthread_mutex_unlock(&t->mu);
    return 0;
  }
  if (strcmp(path, "/deny") == 0)
    return 401;
  if (strcmp(path, "/moved") == 0) {
    ck_assert_int_eq(
        websock_request_add_response_header(req, "Location", "/elsewhere"), 0);
    ck_assert_int_eq(websock_request_respond(req, 302, NULL, "go\n", 3), 0);
    return 0;
  }
  return 0;
}

static void dsrv_on_event(websock_server *srv, const websock_event *ev,
                          void *ud) {
  dsrv *t = ud;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    snprintf(t->open_proto, sizeof t->open_proto, "%s",
             ev->subprotocol ? ev->subprotocol : "");
    atomic_fetch_add(&t->opens, 1);
  } else if (ev->type == WEBSOCK_EVENT_MESSAGE) {
    websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
  }
}

static dsrv *dsrv_start(int agents, int on_agents, unsigned hs_timeout) {
  dsrv *t = calloc(1, sizeof *t);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  websock_config *cfg = tk_config(agents, dsrv_on_event, t);
  websock_config_set_handshake_on_agents(cfg, on_agents);
  websock_config_set_handshake_timeout(cfg, hs_timeout);
  websock_config_set_handshake_callback(cfg, dsrv_hook, t);
  t->srv = tk_start(cfg, &t->port);
  return t;
}

static void dsrv_stop(dsrv *t) {
  pthread_mutex_lock(&t->mu);
  t->release = 1;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  websock_server_free(t->srv);
  free(t);
}

static websock_upgrade *dsrv_take_pending(dsrv *t) {
  pthread_mutex_lock(&t->mu);
  while (!t->pending)
    pthread_cond_wait(&t->cv, &t->mu);
  websock_upgrade *up = t->pending;
  t->pending = NULL;
  pthread_mutex_unlock(&t->mu);
  return up;
}

/* A raw client: connects and sends |path|'s upgrade request followed by
 * |extra| (|extra_len| bytes: e.g. a frame sent before the 101). */
static int raw_upgrade(int port, const char *path, const char *protocols,
                       const void *extra, size_t extra_len) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "%s%s%s\r\n",
                   path, protocols ? "Sec-WebSocket-Protocol: " : "",
                   protocols ? protocols : "", protocols ? "\r\n" : "");
  if (extra_len)
    memcpy(req + n, extra, extra_len);
  ck_assert_int_eq(send(fd, req, (size_t)n + extra_len, MSG_NOSIGNAL),
                   n + (int)extra_len);
  return fd;
}

/* Reads until |n| bytes or the peer closes; returns the count. */
static size_t raw_read(int fd, char *buf, size_t cap, int timeout_ms) {
  size_t got = 0;
  while (got < cap) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0)
      break;
    ssize_t r = recv(fd, buf + got, cap - got, 0);
    if (r <= 0)
      break;
    got += (size_t)r;
    buf[got] = 0;
    if (strstr(buf, "\r\n\r\n") && strstr(buf, "\x81\x05hello"))
      break;
  }
  buf[got < cap ? got : cap - 1] = 0;
  return got;
}

typedef struct later {
  dsrv *t;
  int delay_ms;
  const char *proto;
  int rc;
} later;

static void *accept_later(void *arg) {
  later *l = arg;
  websock_upgrade *up = dsrv_take_pending(l->t);
  usleep((useconds_t)l->delay_ms * 1000);
  l->rc = websock_upgrade_add_response_header(up, "Set-Cookie", "s=1");
  if (l->rc == 0)
    l->rc = websock_upgrade_accept(up, l->proto, NULL);
  return NULL;
}

/* Accepted 200 ms later from another thread, choosing a subprotocol; a
 * frame the client sent before the 101 is answered after it. */
START_TEST(accept_later_from_another_thread) {
  dsrv *t = dsrv_start(1, 0, 5000);
  later l = {t, 200, "chat.v2", -99};
  pthread_t th;
  pthread_create(&th, NULL, accept_later, &l);
  /* A masked text frame "hello" right behind the request head. */
  const uint8_t frame[] = {0x81,    0x85,    1,       2,       3,      4,
                           'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1};
  int fd =
      raw_upgrade(t->port, "/defer", "chat.v1, chat.v2", frame, sizeof frame);
  char buf[2048];
  raw_read(fd, buf, sizeof buf - 1, 5000);
  pthread_join(th, NULL);
  ck_assert_int_eq(l.rc, 0);
  ck_assert_msg(strncmp(buf, "HTTP/1.1 101", 12) == 0, "got %s", buf);
  ck_assert_ptr_nonnull(strstr(buf, "Sec-WebSocket-Protocol: chat.v2\r\n"));
  ck_assert_ptr_nonnull(strstr(buf, "\r\nSet-Cookie: s=1\r\n"));
  char *body = strstr(buf, "\r\n\r\n") + 4;
  ck_assert_mem_eq(body, "\x81\x05hello", 7); /* the early frame's echo */
  ck_assert_str_eq(t->open_proto, "chat.v2");
  close(fd);
  dsrv_stop(t);
}
END_TEST

START_TEST(reject_later_with_401) {
  dsrv *t = dsrv_start(0, 0, 5000);
  int fd = raw_upgrade(t->port, "/defer", NULL, NULL, 0);
  websock_upgrade *up = dsrv_take_pending(t);
  ck_assert_int_eq(websock_upgrade_reject(up, 101, NULL, NULL, 0),
                   WEBSOCK_ERR_INVALID); /* not a refusal: still ours */
  ck_assert_int_eq(websock_upgrade_reject(up, 401, "text/x\ny", "login\n", 6),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_upgrade_add_response_header(up, "WWW-Authenticate",
                                                       "Basic realm=\"x\""),
                   0);
  ck_assert_int_eq(websock_upgrade_reject(up, 401, "text/plain", "login\n", 6),
                   0);
  char buf[2048];
  size_t n = raw_read(fd, buf, sizeof buf - 1, 5000);
  ck_assert_uint_gt(n, 0);
  ck_assert_msg(strncmp(buf, "HTTP/1.1 401", 12) == 0, "got %s", buf);
  ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\nlogin\n"));
  ck_assert_ptr_nonnull(
      strstr(buf, "\r\nWWW-Authenticate: Basic realm=\"x\"\r\n"));
  ck_assert_int_eq(atomic_load(&t->opens), 0);
  close(fd);
  dsrv_stop(t);
}
END_TEST

START_TEST(unoffered_subprotocol_keeps_the_handle) {
  dsrv *t = dsrv_start(0, 0, 5000);
  int fd = raw_upgrade(t->port, "/defer", "a", NULL, 0);
  websock_upgrade *up = dsrv_take_pending(t);
  ck_assert_str_eq(websock_request_path(websock_upgrade_request(up)), "/defer");
  ck_assert_int_eq(websock_upgrade_accept(up, "b", NULL), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_upgrade_accept(up, NULL, NULL), 0);
  char buf[2048];
  raw_read(fd, buf, sizeof buf - 1, 2000);
  ck_assert_msg(strncmp(buf, "HTTP/1.1 101", 12) == 0, "got %s", buf);
  ck_assert_ptr_null(strstr(buf, "Sec-WebSocket-Protocol"));
  close(fd);
  dsrv_stop(t);
}
END_TEST

/* Waits until no connection (not even one in its handshake) is left. */
static void wait_no_connections(dsrv *t) {
  for (int i = 0; i < 500; i++) {
    websock_loop_stats ls;
    websock_server_get_loop_stats(t->srv, 0, &ls, sizeof ls);
    if (ls.connections == 0)
      return;
    usleep(10000);
  }
  ck_abort_msg("the waiting connection never ended");
}

START_TEST(client_leaves_while_pending) {
  dsrv *t = dsrv_start(0, 0, 5000);
  int fd = raw_upgrade(t->port, "/defer", NULL, NULL, 0);
  websock_upgrade *up = dsrv_take_pending(t);
  close(fd);
  wait_no_connections(t);
  ck_assert_int_eq(websock_upgrade_accept(up, NULL, NULL),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(atomic_load(&t->opens), 0);
  dsrv_stop(t);
}
END_TEST

START_TEST(handshake_timeout_gives_503) {
  dsrv *t = dsrv_start(0, 0, 300);
  int fd = raw_upgrade(t->port, "/defer", NULL, NULL, 0);
  websock_upgrade *up = dsrv_take_pending(t);
  char buf[2048];
  size_t n = raw_read(fd, buf, sizeof buf - 1, 5000);
  ck_assert_uint_gt(n, 0);
  ck_assert_msg(strncmp(buf, "HTTP/1.1 503", 12) == 0, "got %s", buf);
  ck_assert_int_eq(websock_upgrade_reject(up, 403, NULL, NULL, 0),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  close(fd);
  dsrv_stop(t);
}
END_TEST

/* The hook on the agents: while one hook blocks, another client upgrades
 * and is echoed on the one I/O thread; a hook answering 401 refuses; the
 * blocked one is accepted once released; a hook may still defer. */
START_TEST(hook_on_agents) {
  dsrv *t = dsrv_start(2, 1, 5000);
  int slow = raw_upgrade(t->port, "/block", NULL, NULL, 0);
  pthread_mutex_lock(&t->mu);
  while (!t->hook_blocked)
    pthread_cond_wait(&t->cv, &t->mu);
  pthread_mutex_unlock(&t->mu);
  wsc *c = wsc_connect(t->port, "/fast", NULL);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(wsc_send(c, WEBSOCK_OP_TEXT, "hi", 2), 0);
  char b[16];
  size_t n;
  ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), 1);
  ck_assert_mem_eq(b, "hi", 2);
  wsc_free(c);
  int status = 0;
  ck_assert_ptr_null(wsc_connect(t->port, "/deny", &status));
  ck_assert_int_eq(status, 401);
  int moved = raw_upgrade(t->port, "/moved", NULL, NULL, 0);
  char mbuf[1024];
  size_t mn = raw_read(moved, mbuf, sizeof mbuf - 1, 5000);
  mbuf[mn] = 0;
  ck_assert_msg(strncmp(mbuf, "HTTP/1.1 302 Found\r\n", 20) == 0, "got %s",
                mbuf);
  ck_assert_ptr_nonnull(strstr(mbuf, "\r\nLocation: /elsewhere\r\n"));
  ck_assert_ptr_nonnull(strstr(mbuf, "\r\n\r\ngo\n"));
  close(moved);
  later l = {t, 0, NULL, -99};
  pthread_t th;
  pthread_create(&th, NULL, accept_later, &l);
  c = wsc_connect(t->port, "/defer-on-agent", NULL);
  pthread_join(th, NULL);
  ck_assert_int_eq(l.rc, 0);
  ck_assert_ptr_nonnull(c);
  wsc_free(c);
  pthread_mutex_lock(&t->mu);
  ck_assert_int_eq(t->hook_blocked, 1); /* all of that while it blocked */
  t->release = 1;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  char buf[2048];
  raw_read(slow, buf, sizeof buf - 1, 5000);
  ck_assert_msg(strncmp(buf, "HTTP/1.1 101", 12) == 0, "got %s", buf);
  close(slow);
  dsrv_stop(t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("defer");
  TCase *tc = tcase_create("deferred");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, accept_later_from_another_thread);
  tcase_add_test(tc, reject_later_with_401);
  tcase_add_test(tc, unoffered_subprotocol_keeps_the_handle);
  tcase_add_test(tc, client_leaves_while_pending);
  tcase_add_test(tc, handshake_timeout_gives_503);
  tcase_add_test(tc, hook_on_agents);
  suite_add_tcase(s, tc);
  return tk_run(s);
}
