/* Reuse-port over real sockets: one SO_REUSEPORT listener per I/O thread,
 * each thread keeping what it accepted; several servers on one port; the
 * bind conflicts with a server that does not share its port; the limit
 * over all threads; every listener closed by the stop. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <websock.h>

#include "wsclient.h"

/* ---- a small echo server ------------------------------------------------ */

/* Echo; the message "sleep" holds the thread that runs it for 1.5 s
 * (agents = 0: the I/O thread of that connection) before answering. */
static void rp_on_event(websock_server *srv, const websock_event *ev,
                        void *ud) {
  (void)ud;
  if (ev->type != WEBSOCK_EVENT_MESSAGE)
    return;
  if (ev->length == 5 && memcmp(ev->data, "sleep", 5) == 0) {
    struct timespec ts = {1, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, "slept", 5);
    return;
  }
  websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
}

typedef struct rp_opts {
  int io, agents, reuse, port;
  unsigned max_conns; /* 0: default */
} rp_opts;

/* A new server and the result of starting it (*rc); NULL when new failed. */
static websock_server *rp_try_start(rp_opts o, int *rc) {
  websock_config *cfg;
  websock_server *srv = NULL;
  ck_assert_int_eq(websock_config_new(&cfg), 0);
  ck_assert_int_eq(websock_config_set_listen(cfg, "127.0.0.1", o.port), 0);
  ck_assert_int_eq(websock_config_set_io_threads(cfg, o.io), 0);
  ck_assert_int_eq(websock_config_set_agents(cfg, o.agents), 0);
  ck_assert_int_eq(websock_config_set_reuse_port(cfg, o.reuse), 0);
  /* Ignored with reuse-port. Round-robin would make a loop that handed its
   * accepts over give every other one away (see held_loop0_run). */
  ck_assert_int_eq(websock_config_set_spread(cfg, WEBSOCK_SPREAD_ROUND_ROBIN),
                   0);
  ck_assert_int_eq(websock_config_set_close_timeout(cfg, 2000), 0);
  if (o.max_conns)
    ck_assert_int_eq(websock_config_set_max_connections(cfg, o.max_conns), 0);
  ck_assert_int_eq(websock_config_set_event_callback(cfg, rp_on_event, NULL),
                   0);
  ck_assert_int_eq(websock_server_new(&srv, cfg), 0);
  websock_config_free(cfg);
  *rc = websock_server_start(srv);
  return srv;
}

static websock_server *rp_start(rp_opts o) {
  int rc;
  websock_server *srv = rp_try_start(o, &rc);
  ck_assert_int_eq(rc, 0);
  ck_assert_int_gt(websock_server_port(srv), 0);
  if (o.port)
    ck_assert_int_eq(websock_server_port(srv), o.port);
  return srv;
}

static void rp_stop(websock_server *srv) {
  ck_assert_int_eq(websock_server_stop(srv), 0);
  ck_assert_int_eq(websock_server_join(srv), 0);
  websock_server_free(srv);
}

static websock_loop_stats io_stats(websock_server *srv, unsigned i) {
  websock_loop_stats ls;
  ck_assert_int_eq(websock_server_get_loop_stats(srv, i, &ls, sizeof ls), 0);
  return ls;
}

static websock_stats srv_stats(websock_server *srv) {
  websock_stats st;
  ck_assert_int_eq(websock_server_get_stats(srv, &st, sizeof st), 0);
  return st;
}

/* The per-loop open connection counts once they sum to |want| (5 s). */
static uint64_t wait_connections(websock_server *srv, uint64_t want) {
  uint64_t got = 0;
  for (int i = 0; i < 500; i++) {
    got = srv_stats(srv).connections;
    if (got == want)
      break;
    usleep(10000);
  }
  return got;
}

/* ---- clients --------------------------------------------------------------
 */

/* One round trip on |c|; fails the test unless the echo comes back. */
static void echo_once(wsc *c, int i) {
  char msg[32], back[32];
  int n = snprintf(msg, sizeof msg, "hello %d", i);
  ck_assert_int_eq(wsc_send(c, 1, msg, (size_t)n), 0);
  size_t got;
  ck_assert_int_eq(wsc_recv(c, back, sizeof back, &got, 5000), 1);
  ck_assert_uint_eq(got, (size_t)n);
  ck_assert_int_eq(memcmp(back, msg, got), 0);
}

/* A connected, upgraded client that echoed once. */
static wsc *open_served(int port, int i) {
  int status = 0;
  wsc *c = wsc_connect(port, "/", &status);
  ck_assert_msg(c != NULL, "connection %d not served (status %d)", i, status);
  echo_once(c, i);
  return c;
}

/* 1 when a TCP connect to 127.0.0.1:port is refused (no listener). */
static int connect_refused(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  int e = errno;
  close(fd);
  return r < 0 && e == ECONNREFUSED;
}

/* Sends an upgrade request on a new socket; returns the socket. */
static int upgrade_send(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  static const char req[] =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  ck_assert_int_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL),
                   (ssize_t)(sizeof req - 1));
  return fd;
}

/* Waits up to |ms| for the 101 on each of the |n| sockets in |fds| not yet
 * answered (answered[i] == 0); marks those answered. Returns how many were
 * answered during this call. */
static int upgrade_collect(const int *fds, int *answered, int n, int ms) {
  int count = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct pollfd p[64];
    int idx[64], k = 0;
    for (int i = 0; i < n && k < 64; i++) {
      if (!answered[i]) {
        p[k] = (struct pollfd){fds[i], POLLIN, 0};
        idx[k++] = i;
      }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long spent =
        (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (k == 0 || spent >= ms)
      return count;
    if (poll(p, (nfds_t)k, (int)(ms - spent)) <= 0)
      return count;
    for (int j = 0; j < k; j++) {
      if (!(p[j].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char buf[512];
      ssize_t r = recv(p[j].fd, buf, sizeof buf - 1, 0);
      ck_assert_int_gt(r, 12);
      buf[r] = 0;
      ck_assert_int_eq(strncmp(buf, "HTTP/1.1 101", 12), 0);
      answered[idx[j]] = 1;
      count++;
    }
  }
}

static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  ck_assert_ptr_nonnull(d);
  int n = 0;
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

/* ---- each I/O thread accepts on its own socket -------------------------- */

/* |io| threads with reuse-port: |n| connections all served, every loop
 * accepted some of them and kept them (no hand-off between loops). */
static void spread_run(int io, int agents, int n) {
  websock_server *srv = rp_start((rp_opts){io, agents, 1, 0, 0});
  int port = websock_server_port(srv);
  wsc **c = calloc((size_t)n, sizeof *c);
  for (int i = 0; i < n; i++)
    c[i] = open_served(port, i);
  ck_assert_uint_eq(wait_connections(srv, (uint64_t)n), (uint64_t)n);
  uint64_t accepted = 0;
  for (int i = 0; i < io; i++) {
    websock_loop_stats ts = io_stats(srv, (unsigned)i);
    ck_assert_msg(ts.accepted > 0, "loop %d accepted nothing", i);
    ck_assert_uint_eq(ts.connections, ts.accepted);
    accepted += ts.accepted;
  }
  ck_assert_uint_eq(accepted, (uint64_t)n);
  ck_assert_uint_eq(srv_stats(srv).accepted_total, (uint64_t)n);
  for (int i = 0; i < n; i++) /* everyone still served after the others */
    echo_once(c[i], i);
  for (int i = 0; i < n; i++)
    wsc_free(c[i]);
  free(c);
  ck_assert_uint_eq(wait_connections(srv, 0), 0);
  rp_stop(srv);
}

START_TEST(test_two_loops_inline) {
  spread_run(2, 0, 200);
}
END_TEST

START_TEST(test_two_loops_agents) {
  spread_run(2, 2, 200);
}
END_TEST

START_TEST(test_four_loops) {
  spread_run(4, 1, 200);
}
END_TEST

/* While loop 0's thread is held by a handler, new connections keep being
 * accepted and served by loop 1 with reuse-port; with one listener every
 * accept waits for loop 0. |reuse| picks the mode. Returns how many of 24
 * upgrades were answered while loop 0 was held. */
static int held_loop0_run(int reuse) {
  enum { N = 24 };
  websock_server *srv = rp_start((rp_opts){2, 0, reuse, 0, 0});
  int port = websock_server_port(srv);
  /* A connection on loop 0 (the kernel or the spreading policy decides,
   * so try until one lands there). */
  wsc *held = NULL, *spare[64];
  int nspare = 0;
  for (int i = 0; i < 64 && !held; i++) {
    uint64_t before = io_stats(srv, 0).accepted;
    wsc *c = open_served(port, i);
    if (io_stats(srv, 0).accepted > before)
      held = c;
    else
      spare[nspare++] = c;
  }
  ck_assert_ptr_nonnull(held);
  uint64_t loop0_before = io_stats(srv, 0).accepted;
  uint64_t loop1_before = io_stats(srv, 1).accepted;
  ck_assert_int_eq(wsc_send(held, 1, "sleep", 5), 0);
  usleep(100 * 1000); /* the handler is running now */
  int fds[N], answered[N] = {0};
  for (int i = 0; i < N; i++)
    fds[i] = upgrade_send(port);
  int early = upgrade_collect(fds, answered, N, 800);
  uint64_t loop1_during = io_stats(srv, 1).accepted - loop1_before;
  /* Loop 0 cannot take a connection itself now: more there would mean
   * loop 1 handed it some of what it accepted. */
  ck_assert_uint_eq(io_stats(srv, 0).accepted - loop0_before, 0);
  /* Loop 0 is back: every upgrade gets its answer. */
  char b[16];
  size_t n;
  ck_assert_int_eq(wsc_recv(held, b, sizeof b, &n, 5000), 1);
  ck_assert_int_eq(memcmp(b, "slept", 5), 0);
  upgrade_collect(fds, answered, N, 5000);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(answered[i], 1);
    close(fds[i]);
  }
  if (reuse) /* the early answers came from loop 1 */
    ck_assert_uint_ge(loop1_during, (uint64_t)early);
  else
    ck_assert_uint_eq(loop1_during, 0);
  wsc_free(held);
  for (int i = 0; i < nspare; i++)
    wsc_free(spare[i]);
  rp_stop(srv);
  return early;
}

START_TEST(test_accepts_skip_a_held_loop0) {
  /* 24 connections, each on either socket: all on loop 0's is 2^-24. */
  ck_assert_int_gt(held_loop0_run(1), 0);
}
END_TEST

START_TEST(test_one_listener_waits_for_loop0) {
  ck_assert_int_eq(held_loop0_run(0), 0);
}
END_TEST

/* ---- several servers on one port (prefork, nginx workers) --------------- */

START_TEST(test_two_servers_one_port) {
  enum { N = 100 };
  websock_server *a = rp_start((rp_opts){2, 0, 1, 0, 0});
  int port = websock_server_port(a);
  websock_server *b = rp_start((rp_opts){1, 1, 1, port, 0});
  wsc *c[N];
  for (int i = 0; i < N; i++)
    c[i] = open_served(port, i);
  uint64_t ta = srv_stats(a).accepted_total, tb = srv_stats(b).accepted_total;
  ck_assert_uint_gt(ta, 0);
  ck_assert_uint_gt(tb, 0);
  ck_assert_uint_eq(ta + tb, N);
  ck_assert_uint_eq(wait_connections(a, ta), ta);
  ck_assert_uint_eq(wait_connections(b, tb), tb);
  for (int i = 0; i < N; i++)
    wsc_free(c[i]);
  /* One server leaves (a worker restarting): the other serves it all. */
  rp_stop(a);
  for (int i = 0; i < 20; i++)
    c[i] = open_served(port, i);
  ck_assert_uint_eq(srv_stats(b).accepted_total, tb + 20);
  for (int i = 0; i < 20; i++)
    wsc_free(c[i]);
  rp_stop(b);
  ck_assert(connect_refused(port));
}
END_TEST

/* ---- a port is shared only by servers that all ask for it --------------- */

static void conflict_run(int first_reuse, int second_reuse, int second_io) {
  websock_server *a = rp_start((rp_opts){2, 0, first_reuse, 0, 0});
  int port = websock_server_port(a);
  int fds = open_fds();
  int rc;
  websock_server *b =
      rp_try_start((rp_opts){second_io, 0, second_reuse, port, 0}, &rc);
  ck_assert_int_eq(rc, WEBSOCK_ERR_ADDRESS);
  ck_assert_int_eq(websock_server_port(b), WEBSOCK_ERR_STATE);
  websock_server_free(b);
  ck_assert_int_eq(open_fds(), fds); /* its sockets went with it */
  wsc *c = open_served(port, 0);     /* the first one still serves */
  wsc_free(c);
  rp_stop(a);
}

START_TEST(test_plain_cannot_take_a_shared_port) {
  conflict_run(1, 0, 1);
}
END_TEST

START_TEST(test_shared_cannot_join_a_plain_port) {
  conflict_run(0, 1, 2);
}
END_TEST

/* ---- the connection limit counts every loop ----------------------------- */

START_TEST(test_limit_counts_all_loops) {
  enum { MAX = 40, EXTRA = 30 };
  websock_server *srv = rp_start((rp_opts){2, 0, 1, 0, MAX});
  int port = websock_server_port(srv);
  wsc *c[MAX];
  for (int i = 0; i < MAX; i++)
    c[i] = open_served(port, i);
  for (int i = 0; i < EXTRA; i++) {
    int status = 0;
    wsc *x = wsc_connect(port, "/", &status);
    ck_assert_ptr_null(x);
    ck_assert_int_eq(status, 503);
  }
  websock_stats st = srv_stats(srv);
  ck_assert_uint_eq(st.connections, MAX);
  ck_assert_uint_eq(st.rejected_total, EXTRA);
  ck_assert_uint_eq(io_stats(srv, 0).accepted + io_stats(srv, 1).accepted, MAX);
  /* Both loops hold some (all 40 on one socket is 2^-39): the refusals
   * came from the total, not from one loop's own count. */
  ck_assert_uint_gt(io_stats(srv, 0).accepted, 0);
  ck_assert_uint_gt(io_stats(srv, 1).accepted, 0);
  wsc_free(c[0]);
  ck_assert_uint_eq(wait_connections(srv, MAX - 1), MAX - 1);
  c[0] = open_served(port, 0); /* a place came free */
  for (int i = 0; i < MAX; i++)
    wsc_free(c[i]);
  rp_stop(srv);
}
END_TEST

/* ---- the stop closes every listener ------------------------------------ */

static void stop_run(int io, int reuse) {
  websock_server *srv = rp_start((rp_opts){io, 0, reuse, 0, 0});
  int port = websock_server_port(srv);
  wsc *c[8];
  for (int i = 0; i < 8; i++)
    c[i] = open_served(port, i);
  ck_assert_int_eq(websock_server_stop(srv), 0);
  /* Open clients get the going-away close, then the server ends. */
  for (int i = 0; i < 8; i++) {
    uint8_t b[64];
    size_t n;
    ck_assert_int_eq(wsc_recv(c[i], b, sizeof b, &n, 5000), 8);
    ck_assert_uint_ge(n, 2);
    ck_assert_int_eq((b[0] << 8) | b[1], WEBSOCK_CLOSE_GOING_AWAY);
    wsc_free(c[i]);
  }
  ck_assert_int_eq(websock_server_join(srv), 0);
  /* Each connect would reach one of the sockets (by the kernel's hash):
   * none may be left. */
  for (int i = 0; i < 64; i++)
    ck_assert_msg(connect_refused(port), "connect %d not refused", i);
  websock_server_free(srv);
}

START_TEST(test_stop_closes_every_listener) {
  stop_run(2, 1);
  stop_run(4, 1);
}
END_TEST

START_TEST(test_stop_closes_the_one_listener) {
  stop_run(2, 0);
}
END_TEST

START_TEST(test_free_without_stop_closes_listeners) {
  int fds = open_fds();
  websock_server *srv = rp_start((rp_opts){3, 0, 1, 0, 0});
  int port = websock_server_port(srv);
  wsc *c = open_served(port, 0);
  websock_server_free(srv); /* stops and joins */
  wsc_free(c);
  ck_assert_int_eq(open_fds(), fds);
  for (int i = 0; i < 32; i++)
    ck_assert(connect_refused(port));
}
END_TEST

static Suite *reuseport_suite(void) {
  Suite *s = suite_create("reuseport");
  TCase *tc = tcase_create("reuseport");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_two_loops_inline);
  tcase_add_test(tc, test_two_loops_agents);
  tcase_add_test(tc, test_four_loops);
  tcase_add_test(tc, test_accepts_skip_a_held_loop0);
  tcase_add_test(tc, test_one_listener_waits_for_loop0);
  tcase_add_test(tc, test_two_servers_one_port);
  tcase_add_test(tc, test_plain_cannot_take_a_shared_port);
  tcase_add_test(tc, test_shared_cannot_join_a_plain_port);
  tcase_add_test(tc, test_limit_counts_all_loops);
  tcase_add_test(tc, test_stop_closes_every_listener);
  tcase_add_test(tc, test_stop_closes_the_one_listener);
  tcase_add_test(tc, test_free_without_stop_closes_listeners);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(reuseport_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
