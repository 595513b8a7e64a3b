/* Client mode over real sockets: a client-only server dials an echo server
 * of the same process, inline and with agents on two I/O threads: text,
 * binary, empty and 1 MiB messages, fragmented echoes, ping/pong, both
 * close paths, subprotocols, headers, path and query; every failure stage
 * with its reason (refused, bad URL, unresolvable, a refused upgrade, a
 * server that never answers, a stop with dials pending); sends before OPEN;
 * broadcasts leave outgoing connections out while topics reach them;
 * permessage-deflate; wss against a throwaway CA (trusted, untrusted, wrong
 * host name, verification off); and 1,000 clients at once. Run under ASan
 * and TSan by the sanitizer suites. */
#include <arpa/inet.h>
#include <check.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <websock.h>

#include "testkit.h"

/* ---- what a client-side server saw ------------------------------------ */

#define MAXC 1100

typedef struct crec {
  uint64_t id;
  int opened, closed, close_code, messages, pongs;
  int last_opcode;
  char *last; /* the last message (malloc'd) */
  size_t last_len;
  char reason[300];
  char path[64], query[64], sub[32], ext[128];
} crec;

typedef struct clog {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  crec recs[MAXC];
  int n;
  int echo_close_after; /* 1: close (1000) after the first message */
  atomic_int opens, closes;
} clog;

static crec *clog_find(clog *g, uint64_t id) {
  for (int i = 0; i < g->n; i++)
    if (g->recs[i].id == id)
      return &g->recs[i];
  ck_assert_int_lt(g->n, MAXC);
  crec *r = &g->recs[g->n++];
  memset(r, 0, sizeof *r);
  r->id = id;
  return r;
}

static void copy_str(char *dst, size_t cap, const char *s) {
  snprintf(dst, cap, "%s", s ? s : "");
}

static void client_on_event(websock_server *srv, const websock_event *ev,
                            void *ud) {
  clog *g = ud;
  pthread_mutex_lock(&g->mu);
  crec *r = clog_find(g, ev->id);
  switch (ev->type) {
  case WEBSOCK_EVENT_OPEN:
    r->opened = 1;
    copy_str(r->path, sizeof r->path, ev->path);
    copy_str(r->query, sizeof r->query, ev->query);
    copy_str(r->sub, sizeof r->sub, ev->subprotocol);
    copy_str(r->ext, sizeof r->ext, ev->extensions);
    atomic_fetch_add(&g->opens, 1);
    break;
  case WEBSOCK_EVENT_MESSAGE:
    r->messages++;
    r->last_opcode = ev->opcode;
    free(r->last);
    r->last = malloc(ev->length + 1);
    memcpy(r->last, ev->data, ev->length);
    r->last_len = ev->length;
    if (g->echo_close_after)
      websock_server_close(srv, ev->id, 1000, "done");
    break;
  case WEBSOCK_EVENT_PONG:
    r->pongs++;
    break;
  case WEBSOCK_EVENT_CLOSE:
    r->closed++;
    r->close_code = ev->close_code;
    snprintf(r->reason, sizeof r->reason, "%.*s", (int)ev->length,
             (const char *)ev->data);
    atomic_fetch_add(&g->closes, 1);
    break;
  default:
    break;
  }
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void clog_init(clog *g) {
  memset(g, 0, sizeof *g);
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
}

static void clog_free(clog *g) {
  for (int i = 0; i < g->n; i++)
    free(g->recs[i].last);
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

/* Waits (up to |ms|) until the record of |id| satisfies |what|: 'o'
 * opened, 'c' closed, 'm' more than |n| messages (the copy then holds the
 * last one, for the caller to free), 'p' a pong. */
static crec clog_wait(clog *g, uint64_t id, char what, int n, int ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += ms / 1000;
  dl.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&g->mu);
  crec *r = clog_find(g, id);
  for (;;) {
    int ok = what == 'o'   ? r->opened || r->closed
             : what == 'c' ? r->closed
             : what == 'm' ? r->messages > n || r->closed
                           : r->pongs > 0 || r->closed;
    if (ok || pthread_cond_timedwait(&g->cv, &g->mu, &dl) != 0)
      break;
  }
  crec copy = *r;
  copy.last = NULL;
  if (r->last && what == 'm') { /* the caller frees it */
    copy.last = malloc(r->last_len + 1);
    memcpy(copy.last, r->last, r->last_len);
  }
  pthread_mutex_unlock(&g->mu);
  return copy;
}

static websock_server *client_server(clog *g, int io, int agents, int flags) {
  websock_config *cfg = tk_config(agents, client_on_event, g);
  ck_assert_int_eq(websock_config_set_client_only(cfg, 1), 0);
  ck_assert_int_eq(websock_config_set_io_threads(cfg, io), 0);
  ck_assert_int_eq(websock_config_set_control_events(cfg, 1), 0);
  ck_assert_int_eq(websock_config_set_max_message_size(cfg, 4u << 20), 0);
  ck_assert_int_eq(websock_config_set_close_timeout(cfg, 2000), 0);
  if (flags & 1)
    ck_assert_int_eq(
        websock_config_set_deflate(cfg, WEBSOCK_DEFLATE_SHARED, 15, 8, 1, 64),
        0);
  int port;
  websock_server *srv = tk_start(cfg, &port);
  ck_assert_int_eq(port, 0); /* no listener */
  return srv;
}

/* ---- the echo server --------------------------------------------------- */

typedef struct eserv {
  atomic_int closes;
  atomic_int last_close_code;
  char last_reason[64];
  char seen_auth[64]; /* the Authorization header of the last upgrade */
  char seen_ext[128]; /* the extensions of the first OPEN (under mu) */
  atomic_int opens;
  pthread_mutex_t mu;
  atomic_int messages;
} eserv;

/* Echoes; "close NNNN" closes with that code and reason "later". */
static void echo_on_event(websock_server *srv, const websock_event *ev,
                          void *ud) {
  eserv *e = ud;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    /* (Agents run OPEN handlers of different connections at once.) */
    pthread_mutex_lock(&e->mu);
    if (atomic_fetch_add(&e->opens, 1) == 0)
      copy_str(e->seen_ext, sizeof e->seen_ext, ev->extensions);
    pthread_mutex_unlock(&e->mu);
  }
  if (ev->type == WEBSOCK_EVENT_MESSAGE) {
    atomic_fetch_add(&e->messages, 1);
    if (ev->length == 10 && memcmp(ev->data, "close ", 6) == 0) {
      char code[5];
      memcpy(code, ev->data + 6, 4);
      code[4] = 0;
      websock_server_close(srv, ev->id, atoi(code), "later");
      return;
    }
    websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
  } else if (ev->type == WEBSOCK_EVENT_CLOSE) {
    pthread_mutex_lock(&e->mu);
    snprintf(e->last_reason, sizeof e->last_reason, "%.*s", (int)ev->length,
             (const char *)ev->data);
    pthread_mutex_unlock(&e->mu);
    atomic_store(&e->last_close_code, ev->close_code);
    atomic_fetch_add(&e->closes, 1);
  }
}

/* Accepts "chat" when offered; refuses path "/forbidden" with 403. */
static int echo_hook(websock_server *srv, websock_request *req, void *ud) {
  (void)srv;
  eserv *e = ud;
  const char *auth = websock_request_header(req, "Authorization");
  pthread_mutex_lock(&e->mu); /* (hooks of two I/O threads) */
  if (auth)
    snprintf(e->seen_auth, sizeof e->seen_auth, "%s", auth);
  pthread_mutex_unlock(&e->mu);
  if (strcmp(websock_request_path(req), "/forbidden") == 0)
    return 403;
  for (int i = 0; i < websock_request_subprotocol_count(req); i++)
    if (strcmp(websock_request_subprotocol(req, i), "chat") == 0)
      websock_request_select_subprotocol(req, "chat");
  return 0;
}

static websock_server *echo_server(eserv *e, int io, int agents, int flags,
                                   int *port) {
  memset(e, 0, sizeof *e);
  pthread_mutex_init(&e->mu, NULL);
  websock_config *cfg = tk_config(agents, echo_on_event, e);
  ck_assert_int_eq(websock_config_set_io_threads(cfg, io), 0);
  ck_assert_int_eq(websock_config_set_handshake_callback(cfg, echo_hook, e), 0);
  ck_assert_int_eq(websock_config_set_max_message_size(cfg, 4u << 20), 0);
  /* Echoes come back in frames of at most 4 KiB. */
  ck_assert_int_eq(websock_config_set_fragment_size(cfg, 4096), 0);
  if (flags & 1)
    ck_assert_int_eq(
        websock_config_set_deflate(cfg, WEBSOCK_DEFLATE_SHARED, 15, 8, 1, 64),
        0);
  return tk_start(cfg, port);
}

static uint64_t dial(websock_server *c, const char *url,
                     websock_connect_options *o) {
  uint64_t id = 0;
  int rc = websock_server_connect(c, url, o, &id);
  ck_assert_msg(rc == 0, "connect %s: %d %s", url, rc, websock_connect_error());
  ck_assert_uint_gt(id, 0);
  return id;
}

static void send_and_check(websock_server *c, clog *g, uint64_t id, int op,
                           const char *data, size_t len, int nth) {
  ck_assert_int_eq(websock_server_send(c, id, op, data, len), 0);
  crec r = clog_wait(g, id, 'm', nth, 10000);
  ck_assert_int_eq(r.messages, nth + 1);
  ck_assert_int_eq(r.last_opcode, op);
  ck_assert_uint_eq(r.last_len, len);
  ck_assert(len == 0 || memcmp(r.last, data, len) == 0);
  free(r.last);
}

/* ---- echo in both modes ------------------------------------------------ */

static const int modes[][2] = {{1, 0}, {2, 2}};

static void run_echo(int io, int agents, int flags) {
  eserv e;
  clog g;
  clog_init(&g);
  int port;
  websock_server *s = echo_server(&e, io, agents, flags, &port);
  websock_server *c = client_server(&g, io, agents, flags);
  websock_connect_options *o = websock_connect_options_new();
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(websock_connect_options_add_subprotocol(o, "other"), 0);
  ck_assert_int_eq(websock_connect_options_add_subprotocol(o, "chat"), 0);
  ck_assert_int_eq(
      websock_connect_options_add_header(o, "Authorization", "Bearer t0k"), 0);
  ck_assert_int_eq(websock_connect_options_set_deflate(o, flags & 1), 0);
  char url[128];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/echo/x?a=1&b=2", port);
  uint64_t id = dial(c, url, o);
  websock_connect_options_free(o);
  crec r = clog_wait(&g, id, 'o', 0, 10000);
  ck_assert_msg(r.opened, "not opened: %s", r.reason);
  ck_assert_str_eq(r.path, "/echo/x");
  ck_assert_str_eq(r.query, "a=1&b=2");
  ck_assert_str_eq(r.sub, "chat");
  pthread_mutex_lock(&e.mu);
  ck_assert_str_eq(e.seen_auth, "Bearer t0k");
  pthread_mutex_unlock(&e.mu);
  /* The OPEN says what was agreed, on both sides. */
  for (int i = 0; i < 500 && atomic_load(&e.opens) < 1; i++)
    usleep(10000);
  pthread_mutex_lock(&e.mu);
  if (flags & 1) {
    ck_assert_msg(strncmp(r.ext, "permessage-deflate", 18) == 0, "%s", r.ext);
    ck_assert_str_eq(e.seen_ext, r.ext);
  } else {
    ck_assert_str_eq(r.ext, "");
    ck_assert_str_eq(e.seen_ext, "");
  }
  pthread_mutex_unlock(&e.mu);
  send_and_check(c, &g, id, WEBSOCK_OP_TEXT, "hello", 5, 0);
  send_and_check(c, &g, id, WEBSOCK_OP_BINARY, "\0\1\2\3", 4, 1);
  send_and_check(c, &g, id, WEBSOCK_OP_TEXT, "", 0, 2);
  /* 1 MiB: fragmented both ways (the echo server's frames are 4 KiB). */
  size_t big = 1u << 20;
  char *b = malloc(big);
  for (size_t i = 0; i < big; i++)
    b[i] = (char)('a' + (i * 7) % 26);
  send_and_check(c, &g, id, WEBSOCK_OP_TEXT, b, big, 3);
  free(b);
  ck_assert_int_eq(websock_server_ping(c, id, "pp", 2), 0);
  r = clog_wait(&g, id, 'p', 0, 5000);
  ck_assert_int_ge(r.pongs, 1);
  /* Our close: the server sees our code and reason, we see its answer. */
  ck_assert_int_eq(websock_server_close(c, id, 4000, "bye"), 0);
  r = clog_wait(&g, id, 'c', 0, 10000);
  ck_assert_int_eq(r.closed, 1);
  ck_assert_int_eq(r.close_code, 4000);
  for (int i = 0; i < 200 && atomic_load(&e.closes) < 1; i++)
    usleep(10000);
  ck_assert_int_eq(atomic_load(&e.last_close_code), 4000);
  pthread_mutex_lock(&e.mu);
  ck_assert_str_eq(e.last_reason, "bye");
  pthread_mutex_unlock(&e.mu);
  ck_assert_int_eq(websock_server_send(c, id, WEBSOCK_OP_TEXT, "x", 1),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  /* The server's close. */
  id = dial(c, url, NULL);
  ck_assert(clog_wait(&g, id, 'o', 0, 10000).opened);
  ck_assert_int_eq(
      websock_server_send(c, id, WEBSOCK_OP_TEXT, "close 4001", 10), 0);
  r = clog_wait(&g, id, 'c', 0, 10000);
  ck_assert_int_eq(r.close_code, 4001);
  ck_assert_str_eq(r.reason, "later");
  websock_server_free(c);
  websock_server_free(s);
  clog_free(&g);
}

START_TEST(test_echo) {
  run_echo(modes[_i][0], modes[_i][1], 0);
}
END_TEST

START_TEST(test_echo_deflate) {
  run_echo(modes[_i][0], modes[_i][1], 1);
}
END_TEST

/* ---- failures, each with its stage ------------------------------------- */

/* A listener that never accepts: TCP connects, nothing answers. */
static int mute_listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(fd, 64), 0);
  socklen_t l = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &l);
  *port = ntohs(a.sin_port);
  return fd;
}

static void expect_failure(websock_server *c, clog *g, const char *url,
                           websock_connect_options *o, const char *prefix) {
  uint64_t id = dial(c, url, o);
  crec r = clog_wait(g, id, 'c', 0, 15000);
  ck_assert_msg(r.closed == 1, "%s: no CLOSE", url);
  ck_assert_int_eq(r.opened, 0);
  ck_assert_int_eq(r.close_code, 1006);
  ck_assert_msg(strncmp(r.reason, prefix, strlen(prefix)) == 0,
                "%s: reason \"%s\", expected \"%s...\"", url, r.reason, prefix);
}

START_TEST(test_failures) {
  clog g;
  clog_init(&g);
  eserv e;
  int port;
  websock_server *s = echo_server(&e, 1, 0, 0, &port);
  websock_server *c = client_server(&g, modes[_i][0], modes[_i][1], 0);
  char url[160];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", tk_free_port());
  expect_failure(c, &g, url, NULL, "connect: Connection refused");
  expect_failure(c, &g, "ws://nonexistent.invalid/", NULL, "resolve: ");
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/forbidden", port);
  expect_failure(c, &g, url, NULL, "handshake: HTTP 403");
  int mport;
  int mfd = mute_listener(&mport);
  websock_connect_options *o = websock_connect_options_new();
  ck_assert_int_eq(websock_connect_options_set_timeout_ms(o, 300), 0);
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", mport);
  expect_failure(c, &g, url, o,
                 "timeout: no answer to the upgrade within 300 ms");
  /* A host name through the resolver thread. */
  snprintf(url, sizeof url, "ws://localhost:%d/", port);
  uint64_t id = dial(c, url, NULL);
  crec r = clog_wait(&g, id, 'o', 0, 10000);
  ck_assert_msg(r.opened, "localhost: %s", r.reason);
  /* Bad arguments fail at once, with a reason. */
  uint64_t bad = 0;
  ck_assert_int_eq(websock_server_connect(c, "http://x/", NULL, &bad),
                   WEBSOCK_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(websock_connect_error(), "bad URL"));
  ck_assert_int_eq(websock_server_connect(c, "ws://[::1/", NULL, &bad),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_connect(c, NULL, NULL, &bad),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_connect_options_add_header(o, "Host", "x"),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(
      websock_connect_options_add_header(o, "Sec-WebSocket-Key", "x"),
      WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_connect_options_add_header(o, "X-A", "a\r\nb"),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_connect_options_add_subprotocol(o, "a b"),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_connect_options_set_timeout_ms(o, 0),
                   WEBSOCK_ERR_INVALID);
  /* Before OPEN the id is unknown to sends. */
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", mport);
  id = dial(c, url, o);
  ck_assert_int_eq(websock_server_send(c, id, WEBSOCK_OP_TEXT, "x", 1),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock_server_close(c, id, 1000, NULL),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  clog_wait(&g, id, 'c', 0, 5000);
  websock_connect_options_free(o);
  /* A stop ends the dials still under way, each with its CLOSE. */
  uint64_t ids[20];
  for (int i = 0; i < 20; i++)
    ids[i] = dial(c, url, NULL);
  websock_server_stop(c);
  websock_server_join(c);
  for (int i = 0; i < 20; i++) {
    r = clog_wait(&g, ids[i], 'c', 0, 5000);
    ck_assert_int_eq(r.closed, 1);
    ck_assert_msg(strncmp(r.reason, "stopped: ", 9) == 0, "%s", r.reason);
  }
  ck_assert_int_eq(websock_server_connect(c, url, NULL, &bad),
                   WEBSOCK_ERR_STATE);
  websock_server_free(c);
  close(mfd);
  websock_server_free(s);
  clog_free(&g);
}
END_TEST

/* ---- broadcasts and topics --------------------------------------------- */

START_TEST(test_broadcast_topics) {
  clog g;
  clog_init(&g);
  eserv e;
  int port;
  websock_server *s = echo_server(&e, 1, 0, 0, &port);
  websock_server *c = client_server(&g, 1, modes[_i][1], 0);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
  uint64_t id = dial(c, url, NULL);
  ck_assert(clog_wait(&g, id, 'o', 0, 10000).opened);
  /* A broadcast has no audience here: the only connection is outgoing. */
  ck_assert_int_eq(websock_server_broadcast(c, WEBSOCK_OP_TEXT, "b", 1, 0), 0);
  usleep(300000);
  ck_assert_int_eq(atomic_load(&e.messages), 0);
  /* A topic it joined reaches it (masked like any send: the echo server
   * would fail an unmasked frame with 1002). */
  ck_assert_int_eq(websock_server_subscribe(c, id, "t", 1), 0);
  ck_assert_int_eq(
      websock_server_publish(c, "t", 1, WEBSOCK_OP_TEXT, "pub", 3, 0), 0);
  crec r = clog_wait(&g, id, 'm', 0, 5000);
  ck_assert_int_eq(r.messages, 1);
  ck_assert_uint_eq(r.last_len, 3);
  ck_assert(memcmp(r.last, "pub", 3) == 0);
  free(r.last);
  websock_server_free(c);
  websock_server_free(s);
  clog_free(&g);
}
END_TEST

/* ---- 1,000 clients ----------------------------------------------------- */

START_TEST(test_thousand) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
    rl.rlim_cur = 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  clog g;
  clog_init(&g);
  g.echo_close_after = 1;
  eserv e;
  int port;
  websock_server *s = echo_server(&e, 2, 2, 0, &port);
  websock_server *c = client_server(&g, 2, 2, 0);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
  enum { N = 1000 };
  static uint64_t ids[N];
  for (int i = 0; i < N; i++)
    ids[i] = dial(c, url, NULL);
  /* Each says hello once open; the echo makes it close (1000). */
  int sent = 0;
  for (int round = 0; round < 3000 && sent < N; round++) {
    sent = 0;
    for (int i = 0; i < N; i++) {
      pthread_mutex_lock(&g.mu);
      crec *r = clog_find(&g, ids[i]);
      int open = r->opened && !r->closed, done = r->messages || r->closed;
      pthread_mutex_unlock(&g.mu);
      if (done || (open && websock_server_send(c, ids[i], WEBSOCK_OP_TEXT,
                                               "hello", 5) == 0))
        sent++;
    }
    usleep(10000);
  }
  ck_assert_int_eq(sent, N);
  for (int i = 0; i < N; i++) {
    crec r = clog_wait(&g, ids[i], 'c', 0, 20000);
    ck_assert_msg(r.opened && r.closed == 1 && r.close_code == 1000,
                  "client %d: opened %d closed %d code %d reason %s", i,
                  r.opened, r.closed, r.close_code, r.reason);
  }
  ck_assert_int_eq(atomic_load(&g.opens), N);
  websock_server_free(c);
  websock_server_free(s);
  clog_free(&g);
}
END_TEST

/* ---- wss against a throwaway CA ---------------------------------------- */

static char tdir[64];

static void sh(const char *cmd) {
  char full[2048];
  snprintf(full, sizeof full, "cd %s && %s >/dev/null 2>&1", tdir, cmd);
  ck_assert_msg(system(full) == 0, "failed: %s", cmd);
}

/* ca.pem signs good.pem (localhost, 127.0.0.1) and other.pem
 * (other.example). */
static void make_pki(void) {
  snprintf(tdir, sizeof tdir, "/tmp/websock-client-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tdir));
  sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
     "-keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca");
  const char *names[2][2] = {{"good", "DNS:localhost,IP:127.0.0.1"},
                             {"other", "DNS:other.example"}};
  for (int i = 0; i < 2; i++) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout %s.key -out %s.csr -subj /CN=%s && "
             "printf 'subjectAltName=%s' > %s.ext && "
             "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key "
             "-CAcreateserial -out %s.pem -days 2 -extfile %s.ext",
             names[i][0], names[i][0], names[i][0], names[i][1], names[i][0],
             names[i][0], names[i][0], names[i][0]);
    sh(cmd);
  }
}

static websock_server *tls_echo(eserv *e, const char *name, int *port) {
  memset(e, 0, sizeof *e);
  pthread_mutex_init(&e->mu, NULL);
  websock_config *cfg = tk_config(0, echo_on_event, e);
  char cert[128], key[128];
  snprintf(cert, sizeof cert, "%s/%s.pem", tdir, name);
  snprintf(key, sizeof key, "%s/%s.key", tdir, name);
  ck_assert_int_eq(websock_config_set_tls(cfg, cert, key), 0);
  return tk_start(cfg, port);
}

START_TEST(test_tls) {
  make_pki();
  clog g;
  clog_init(&g);
  eserv e1, e2;
  int good, other;
  websock_server *s1 = tls_echo(&e1, "good", &good);
  websock_server *s2 = tls_echo(&e2, "other", &other);
  websock_server *c = client_server(&g, modes[_i][0], modes[_i][1], 0);
  char ca[128], url[128];
  snprintf(ca, sizeof ca, "%s/ca.pem", tdir);
  websock_connect_options *trust = websock_connect_options_new();
  ck_assert_int_eq(websock_connect_options_set_tls_ca_file(trust, ca), 0);
  /* Trusted, by name and by address. */
  const char *hosts[] = {"localhost", "127.0.0.1"};
  for (int i = 0; i < 2; i++) {
    snprintf(url, sizeof url, "wss://%s:%d/", hosts[i], good);
    uint64_t id = dial(c, url, trust);
    crec r = clog_wait(&g, id, 'o', 0, 10000);
    ck_assert_msg(r.opened, "%s: %s", url, r.reason);
    send_and_check(c, &g, id, WEBSOCK_OP_TEXT, "over tls", 8, 0);
  }
  /* The system's CAs do not know ours. */
  snprintf(url, sizeof url, "wss://localhost:%d/", good);
  expect_failure(c, &g, url, NULL, "tls: certificate verify failed");
  /* A trusted certificate for another name. */
  snprintf(url, sizeof url, "wss://localhost:%d/", other);
  expect_failure(c, &g, url, trust,
                 "tls: certificate verify failed (hostname mismatch)");
  /* Plain ws:// client on the TLS port, wss:// on a plain one. */
  eserv e3;
  int plain;
  websock_server *s3 = echo_server(&e3, 1, 0, 0, &plain);
  snprintf(url, sizeof url, "wss://localhost:%d/", plain);
  expect_failure(c, &g, url, trust, "tls: ");
  /* Verification off (tests only) takes the wrong name. */
  websock_connect_options *loose = websock_connect_options_new();
  ck_assert_int_eq(websock_connect_options_set_tls_verify(loose, 0), 0);
  snprintf(url, sizeof url, "wss://localhost:%d/", other);
  uint64_t id = dial(c, url, loose);
  ck_assert(clog_wait(&g, id, 'o', 0, 10000).opened);
  /* A CA file that is not there fails at the connect. */
  ck_assert_int_eq(websock_connect_options_set_tls_ca_file(loose, "/nope.pem"),
                   0);
  ck_assert_int_eq(websock_connect_options_set_tls_verify(loose, 1), 0);
  uint64_t bad;
  ck_assert_int_eq(websock_server_connect(c, url, loose, &bad),
                   WEBSOCK_ERR_TLS);
  ck_assert_ptr_nonnull(strstr(websock_connect_error(), "/nope.pem"));
  websock_connect_options_free(loose);
  websock_connect_options_free(trust);
  websock_server_free(c);
  websock_server_free(s3);
  websock_server_free(s2);
  websock_server_free(s1);
  clog_free(&g);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tdir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("client");
  TCase *tc = tcase_create("client");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_echo, 0, 2);
  tcase_add_loop_test(tc, test_echo_deflate, 0, 2);
  tcase_add_loop_test(tc, test_failures, 0, 2);
  tcase_add_loop_test(tc, test_broadcast_topics, 0, 2);
  tcase_add_test(tc, test_thousand);
  tcase_add_loop_test(tc, test_tls, 0, 2);
  suite_add_tcase(s, tc);
  return tk_run(s);
}
