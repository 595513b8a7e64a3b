/* Topics over real sockets: subscribe, unsubscribe and publish on two I/O
 * threads, inline and with agents, from callbacks and from other threads;
 * except_id; a connection's topics dropped when it ends; subscribing in
 * the OPEN callback; bad names and unknown ids; binary names; 2,000
 * connections in one topic and one connection in 1,000 topics; publishes
 * compressed for deflate clients; the steady state's allocations; and
 * subscribes, unsubscribes, publishes and disconnects racing on several
 * threads (run under TSan by the tsan suite). */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <websock.h>

#include "testkit.h"
#include "wsdeflate.h"
#include "wsclient.h"

/* ---- the test server ------------------------------------------------- */

typedef struct tt {
  websock_server *srv;
  int port;
  int auto_sub; /* the OPEN handler subscribes to "lobby" */
  atomic_int opens, closes;
  atomic_int open_sub_bad; /* OPEN handler subscribes that failed */
} tt;

/* OPEN greets with "id:N". Text commands: "sub T", "unsub T" (answered
 * "sub:RC" / "unsub:RC"), "pub T|TEXT" (publishes TEXT to T except the
 * sender, answered "pub:RC"), "sync" (answered "sync"); anything else is
 * echoed. */
static void tt_on_event(websock_server *srv, const websock_event *ev,
                        void *ud) {
  tt *t = ud;
  char b[300];
  int n;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    atomic_fetch_add(&t->opens, 1);
    if (t->auto_sub && websock_server_subscribe(srv, ev->id, "lobby", 5) != 0)
      atomic_fetch_add(&t->open_sub_bad, 1);
    n = snprintf(b, sizeof b, "id:%" PRIu64, ev->id);
    websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, b, (size_t)n);
    return;
  }
  if (ev->type == WEBSOCK_EVENT_CLOSE) {
    atomic_fetch_add(&t->closes, 1);
    return;
  }
  if (ev->type != WEBSOCK_EVENT_MESSAGE)
    return;
  const char *d = (const char *)ev->data;
  size_t len = ev->length;
  if (len > 4 && memcmp(d, "sub ", 4) == 0) {
    int rc = websock_server_subscribe(srv, ev->id, d + 4, len - 4);
    n = snprintf(b, sizeof b, "sub:%d", rc);
  } else if (len > 6 && memcmp(d, "unsub ", 6) == 0) {
    int rc = websock_server_unsubscribe(srv, ev->id, d + 6, len - 6);
    n = snprintf(b, sizeof b, "unsub:%d", rc);
  } else if (len > 4 && memcmp(d, "pub ", 4) == 0) {
    const char *bar = memchr(d + 4, '|', len - 4);
    ck_assert_ptr_nonnull(bar);
    size_t tl = (size_t)(bar - (d + 4));
    int rc = websock_server_publish(srv, d + 4, tl, WEBSOCK_OP_TEXT, bar + 1,
                                    len - 4 - tl - 1, ev->id);
    n = snprintf(b, sizeof b, "pub:%d", rc);
  } else if (len == 4 && memcmp(d, "sync", 4) == 0) {
    n = snprintf(b, sizeof b, "sync");
  } else {
    websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
    return;
  }
  websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, b, (size_t)n);
}

static tt *tt_start_cfg(int io, int agents, int auto_sub, int deflate) {
  tt *t = calloc(1, sizeof *t);
  t->auto_sub = auto_sub;
  websock_config *cfg = tk_config(agents, tt_on_event, t);
  ck_assert_int_eq(websock_config_set_io_threads(cfg, io), 0);
  ck_assert_int_eq(websock_config_set_close_timeout(cfg, 2000), 0);
  ck_assert_int_eq(websock_config_set_max_connections(cfg, 100000), 0);
  if (deflate)
    ck_assert_int_eq(websock_config_set_deflate(cfg, deflate, 0, 0, 1, 64), 0);
  t->srv = tk_start(cfg, &t->port);
  return t;
}

static tt *tt_start(int io, int agents, int auto_sub) {
  return tt_start_cfg(io, agents, auto_sub, 0);
}

/* Stops the server and checks every OPEN got its CLOSE. */
static void tt_stop(tt *t) {
  ck_assert_int_eq(websock_server_stop(t->srv), 0);
  ck_assert_int_eq(websock_server_join(t->srv), 0);
  websock_server_free(t->srv);
  ck_assert_int_eq(atomic_load(&t->opens), atomic_load(&t->closes));
  ck_assert_int_eq(atomic_load(&t->open_sub_bad), 0);
  free(t);
}

/* Topics and memberships on all loops. */
static void tt_counts(tt *t, uint64_t *topics, uint64_t *subs) {
  websock_stats st;
  ck_assert_int_eq(websock_server_get_stats(t->srv, &st, sizeof st), 0);
  *topics = *subs = 0;
  for (unsigned i = 0; i < st.io_threads; i++) {
    websock_loop_stats ls;
    ck_assert_int_eq(websock_server_get_loop_stats(t->srv, i, &ls, sizeof ls),
                     0);
    *topics += ls.topics;
    *subs += ls.subscriptions;
  }
}

/* Waits (up to 10 s) until the loops hold |topics| topics (any number
 * with UINT64_MAX: a topic counts once per loop it has members on, and
 * which loop a connection lands on is the spread policy's business) and
 * |subs| memberships. */
static void tt_wait_counts(tt *t, uint64_t topics, uint64_t subs) {
  uint64_t tp = 0, sb = 0;
  for (int i = 0; i < 2000; i++) {
    tt_counts(t, &tp, &sb);
    if ((topics == UINT64_MAX || tp == topics) && sb == subs)
      return;
    usleep(5000);
  }
  ck_abort_msg("topics %" PRIu64 " (want %" PRIu64 "), subscriptions %" PRIu64
               " (want %" PRIu64 ")",
               tp, topics, sb, subs);
}

/* ---- clients ---------------------------------------------------------- */

/* Reads frames until a text frame equal to |want| comes; returns how many
 * other frames came first. */
static int recv_until(wsc *c, const char *want) {
  char b[1024];
  size_t n;
  for (int skipped = 0;; skipped++) {
    int op = wsc_recv(c, b, sizeof b - 1, &n, 10000);
    ck_assert_int_ge(op, 0);
    b[n] = 0;
    if (op == WEBSOCK_OP_TEXT && strcmp(b, want) == 0)
      return skipped;
  }
}

/* Expects |want| as the next frame (text). */
static void recv_text(wsc *c, const char *want) {
  char b[1024];
  size_t n;
  ck_assert_int_eq(wsc_recv(c, b, sizeof b - 1, &n, 10000), WEBSOCK_OP_TEXT);
  b[n] = 0;
  ck_assert_str_eq(b, want);
}

/* The next frame is the answer to a "sync": nothing else was queued for
 * the client before it (a publish that reached its loop earlier and
 * skipped it stays missing). */
static void recv_nothing(wsc *c) {
  ck_assert_int_eq(wsc_send(c, WEBSOCK_OP_TEXT, "sync", 4), 0);
  recv_text(c, "sync");
}

/* A round trip that ends the command |cmd| with the answer |want|. */
static void command(wsc *c, const char *cmd, const char *want) {
  ck_assert_int_eq(wsc_send(c, WEBSOCK_OP_TEXT, cmd, strlen(cmd)), 0);
  recv_text(c, want);
}

/* Connects, reads the "id:N" greeting and makes a round trip, after which
 * the OPEN handler has returned (publishes reach it). Frames published to
 * it meanwhile (auto_sub) are skipped. */
static wsc *client_open(tt *t, uint64_t *id) {
  wsc *c = wsc_connect(t->port, "/", NULL);
  ck_assert_ptr_nonnull(c);
  char b[64];
  size_t n;
  ck_assert_int_eq(wsc_recv(c, b, sizeof b - 1, &n, 10000), WEBSOCK_OP_TEXT);
  b[n] = 0;
  ck_assert_int_eq(strncmp(b, "id:", 3), 0);
  if (id)
    *id = strtoull(b + 3, NULL, 10);
  ck_assert_int_eq(wsc_send(c, WEBSOCK_OP_TEXT, "sync", 4), 0);
  recv_until(c, "sync");
  return c;
}

static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- subscribe, publish, unsubscribe ---------------------------------- */

static void pubsub_run(int agents) {
  enum { N = 8, MEMBERS = 6 };
  tt *t = tt_start(2, agents, 0);
  wsc *c[N];
  uint64_t id[N];
  for (int i = 0; i < N; i++)
    c[i] = client_open(t, &id[i]);
  /* 0..2 subscribe from their own callback, 3..5 from this thread. */
  for (int i = 0; i < 3; i++)
    command(c[i], "sub news", "sub:0");
  for (int i = 3; i < MEMBERS; i++)
    ck_assert_int_eq(websock_server_subscribe(t->srv, id[i], "news", 4), 0);
  /* Twice is a no-op. */
  command(c[0], "sub news", "sub:0");
  ck_assert_int_eq(websock_server_subscribe(t->srv, id[3], "news", 4), 0);
  ck_assert_int_eq(websock_server_subscribe(t->srv, id[4], "sport", 5), 0);
  tt_wait_counts(t, UINT64_MAX, MEMBERS + 1);

  ck_assert_int_eq(
      websock_server_publish(t->srv, "news", 4, WEBSOCK_OP_TEXT, "hello", 5, 0),
      0);
  for (int i = 0; i < MEMBERS; i++)
    recv_text(c[i], "hello");
  for (int i = MEMBERS; i < N; i++)
    recv_nothing(c[i]);

  /* except_id, and a binary message. */
  ck_assert_int_eq(websock_server_publish(t->srv, "news", 4, WEBSOCK_OP_BINARY,
                                          "\x00\x01", 2, id[1]),
                   0);
  for (int i = 0; i < MEMBERS; i++) {
    if (i == 1)
      continue;
    uint8_t b[8];
    size_t n;
    ck_assert_int_eq(wsc_recv(c[i], b, sizeof b, &n, 10000), WEBSOCK_OP_BINARY);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(b, "\x00\x01", 2);
  }
  recv_nothing(c[1]);

  /* A publish from a callback (client 6 is no member; it is the except). */
  command(c[6], "pub news|from six", "pub:0");
  for (int i = 0; i < MEMBERS; i++)
    recv_text(c[i], "from six");
  recv_nothing(c[7]);

  /* Unsubscribe: from the callback, from this thread, and of a topic the
   * connection is not in (a no-op, 0). */
  command(c[0], "unsub news", "unsub:0");
  command(c[0], "unsub news", "unsub:0");
  ck_assert_int_eq(websock_server_unsubscribe(t->srv, id[3], "news", 4), 0);
  ck_assert_int_eq(websock_server_unsubscribe(t->srv, id[7], "news", 4), 0);
  ck_assert_int_eq(websock_server_unsubscribe(t->srv, id[7], "never", 5), 0);
  ck_assert_int_eq(
      websock_server_publish(t->srv, "news", 4, WEBSOCK_OP_TEXT, "again", 5, 0),
      0);
  ck_assert_int_eq(
      websock_server_publish(t->srv, "sport", 5, WEBSOCK_OP_TEXT, "goal", 4, 0),
      0);
  for (int i = 0; i < MEMBERS; i++) {
    if (i != 0 && i != 3)
      recv_text(c[i], "again");
    if (i == 4)
      recv_text(c[i], "goal");
  }
  recv_nothing(c[0]);
  recv_nothing(c[3]);
  recv_nothing(c[7]);
  tt_wait_counts(t, UINT64_MAX, MEMBERS - 2 + 1);

  /* A topic nobody is in: posted, reaches nobody. */
  ck_assert_int_eq(
      websock_server_publish(t->srv, "void", 4, WEBSOCK_OP_TEXT, "x", 1, 0), 0);
  for (int i = 0; i < N; i++)
    recv_nothing(c[i]);
  for (int i = 0; i < N; i++)
    wsc_free(c[i]);
  tt_wait_counts(t, 0, 0);
  tt_stop(t);
}

START_TEST(pubsub_inline) {
  pubsub_run(0);
}
END_TEST
START_TEST(pubsub_agents) {
  pubsub_run(3);
}
END_TEST

/* ---- a connection's topics end with it -------------------------------- */

static void conn_end_run(int agents) {
  tt *t = tt_start(2, agents, 0);
  uint64_t a_id, b_id, c_id;
  wsc *a = client_open(t, &a_id), *b = client_open(t, &b_id);
  wsc *c = client_open(t, &c_id);
  const char *names[] = {"t1", "t2", "t3"};
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(websock_server_subscribe(t->srv, a_id, names[i], 2), 0);
    ck_assert_int_eq(websock_server_subscribe(t->srv, c_id, names[i], 2), 0);
  }
  ck_assert_int_eq(websock_server_subscribe(t->srv, b_id, "t1", 2), 0);
  ck_assert_int_eq(websock_server_subscribe(t->srv, b_id, "b-only", 6), 0);
  /* a and c leave with three topics each: a abruptly, c with a close
   * started by the server. */
  wsc_drop(a);
  ck_assert_int_eq(websock_server_close(t->srv, c_id, 1000, "bye"), 0);
  uint8_t buf[64];
  size_t n;
  ck_assert_int_eq(wsc_recv(c, buf, sizeof buf, &n, 10000), 8);
  wsc_send(c, 8, buf, n);
  wsc_free(c);
  tt_wait_counts(t, 2, 2); /* t1 and b-only, b's alone */
  ck_assert_int_eq(websock_server_subscribe(t->srv, a_id, "t1", 2),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock_server_unsubscribe(t->srv, a_id, "t1", 2),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock_server_publish(t->srv, "t2", 2, WEBSOCK_OP_TEXT,
                                          "to nobody", 9, 0),
                   0);
  ck_assert_int_eq(
      websock_server_publish(t->srv, "t1", 2, WEBSOCK_OP_TEXT, "to b", 4, 0),
      0);
  recv_text(b, "to b");
  wsc_free(b);
  tt_wait_counts(t, 0, 0);
  ck_assert_int_eq(websock_server_publish(t->srv, "t1", 2, WEBSOCK_OP_TEXT,
                                          "to nobody", 9, 0),
                   0);
  tt_stop(t);
}

START_TEST(conn_end_inline) {
  conn_end_run(0);
}
END_TEST
START_TEST(conn_end_agents) {
  conn_end_run(2);
}
END_TEST

/* A connection subscribed with topics still queued to its loop when it
 * ends: the late subscribes find it ended and add nothing. */
START_TEST(subscribe_racing_end) {
  tt *t = tt_start(2, 2, 0);
  for (int round = 0; round < 20; round++) {
    uint64_t id;
    wsc *c = client_open(t, &id);
    for (int i = 0; i < 50; i++) {
      char name[16];
      int n = snprintf(name, sizeof name, "r%d", i);
      int rc = websock_server_subscribe(t->srv, id, name, (size_t)n);
      ck_assert(rc == 0 || rc == WEBSOCK_ERR_NO_SUCH_CLIENT ||
                rc == WEBSOCK_ERR_CLOSING);
      if (i == 10)
        wsc_drop(c);
    }
  }
  tt_wait_counts(t, 0, 0);
  tt_stop(t);
}
END_TEST

/* ---- subscribe inside the OPEN callback, publish from another thread -- */

typedef struct pub_arg {
  websock_server *srv;
  int rc;
} pub_arg;

static void *publisher(void *arg) {
  pub_arg *p = arg;
  p->rc = websock_server_publish(p->srv, "lobby", 5, WEBSOCK_OP_TEXT, "welcome",
                                 7, 0);
  return NULL;
}

static void open_sub_run(int agents) {
  enum { N = 10 };
  tt *t = tt_start(2, agents, 1);
  wsc *c[N];
  for (int i = 0; i < N; i++)
    c[i] = client_open(t, NULL);
  tt_wait_counts(t, UINT64_MAX, N);
  pub_arg p = {t->srv, -1};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, publisher, &p), 0);
  pthread_join(th, NULL);
  ck_assert_int_eq(p.rc, 0);
  for (int i = 0; i < N; i++)
    recv_text(c[i], "welcome");
  for (int i = 0; i < N; i++)
    wsc_free(c[i]);
  tt_wait_counts(t, 0, 0);
  tt_stop(t);
}

START_TEST(open_sub_inline) {
  open_sub_run(0);
}
END_TEST
START_TEST(open_sub_agents) {
  open_sub_run(2);
}
END_TEST

/* ---- argument checks --------------------------------------------------- */

START_TEST(bad_arguments) {
  tt *t = tt_start(1, 0, 0);
  uint64_t id;
  wsc *c = client_open(t, &id);
  char big[257];
  memset(big, 'x', sizeof big);
  websock_server *s = t->srv;
  ck_assert_int_eq(websock_server_subscribe(s, id, "a", 0),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_subscribe(s, id, big, 256),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_subscribe(s, id, NULL, 1),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_subscribe(NULL, id, "a", 1),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_unsubscribe(s, id, "a", 0),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_unsubscribe(s, id, big, 256),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_unsubscribe(NULL, id, "a", 1),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_publish(s, "a", 0, 1, "x", 1, 0),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_publish(s, big, 256, 1, "x", 1, 0),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_publish(s, NULL, 1, 1, "x", 1, 0),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_publish(NULL, "a", 1, 1, "x", 1, 0),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_publish(s, "a", 1, 9, "x", 1, 0),
                   WEBSOCK_ERR_INVALID); /* a ping is no message */
  ck_assert_int_eq(websock_server_publish(s, "a", 1, 1, NULL, 1, 0),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_publish(s, "a", 1, 1, "\xff", 1, 0),
                   WEBSOCK_ERR_BAD_UTF8);
  ck_assert_int_eq(websock_server_publish(s, "a", 1, 2, "\xff", 1, 0), 0);
  ck_assert_int_eq(websock_server_publish(s, "a", 1, 1, NULL, 0, 0), 0);
  /* Unknown ids. */
  ck_assert_int_eq(websock_server_subscribe(s, id + 1000, "a", 1),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock_server_unsubscribe(s, id + 1000, "a", 1),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock_server_subscribe(s, 0, "a", 1),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  /* 255 bytes is the longest name; it works end to end. */
  ck_assert_int_eq(websock_server_subscribe(s, id, big, 255), 0);
  ck_assert_int_eq(websock_server_publish(s, big, 255, 1, "long", 4, 0), 0);
  recv_text(c, "long");
  /* A close in progress: CLOSING. */
  ck_assert_int_eq(websock_server_close(s, id, 1000, NULL), 0);
  /* Posted before the loop ran the close (0), or after (CLOSING): either
   * way the late subscribe adds nothing. */
  int rc = websock_server_subscribe(s, id, "late", 4);
  ck_assert(rc == 0 || rc == WEBSOCK_ERR_CLOSING ||
            rc == WEBSOCK_ERR_NO_SUCH_CLIENT);
  wsc_free(c);
  tt_wait_counts(t, 0, 0);
  /* Not running: publish says so. */
  ck_assert_int_eq(websock_server_stop(s), 0);
  ck_assert_int_eq(websock_server_publish(s, "a", 1, 1, "x", 1, 0),
                   WEBSOCK_ERR_STATE);
  tt_stop(t);

  websock_server *fresh;
  websock_config *cfg = tk_config(0, tt_on_event, NULL);
  ck_assert_int_eq(websock_server_new(&fresh, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_publish(fresh, "a", 1, 1, "x", 1, 0),
                   WEBSOCK_ERR_STATE);
  ck_assert_int_eq(websock_server_subscribe(fresh, 1, "a", 1),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  websock_server_free(fresh);
}
END_TEST

/* ---- binary names ----------------------------------------------------- */

START_TEST(binary_names) {
  tt *t = tt_start(2, 1, 0);
  uint64_t id[4];
  wsc *c[4];
  for (int i = 0; i < 4; i++)
    c[i] = client_open(t, &id[i]);
  /* "a\0b", "a\0c", "a" and every byte value 0..254: all distinct. */
  uint8_t every[255];
  for (int i = 0; i < 255; i++)
    every[i] = (uint8_t)i;
  ck_assert_int_eq(websock_server_subscribe(t->srv, id[0], "a\0b", 3), 0);
  ck_assert_int_eq(websock_server_subscribe(t->srv, id[1], "a\0c", 3), 0);
  ck_assert_int_eq(websock_server_subscribe(t->srv, id[2], "a", 1), 0);
  ck_assert_int_eq(websock_server_subscribe(t->srv, id[3], every, 255), 0);
  ck_assert_int_eq(websock_server_subscribe(t->srv, id[3], "\0", 1), 0);
  ck_assert_int_eq(
      websock_server_publish(t->srv, "a\0b", 3, WEBSOCK_OP_TEXT, "ab", 2, 0),
      0);
  ck_assert_int_eq(
      websock_server_publish(t->srv, "a\0c", 3, WEBSOCK_OP_TEXT, "ac", 2, 0),
      0);
  ck_assert_int_eq(
      websock_server_publish(t->srv, "a", 1, WEBSOCK_OP_TEXT, "a", 1, 0), 0);
  ck_assert_int_eq(
      websock_server_publish(t->srv, "a\0", 2, WEBSOCK_OP_TEXT, "no", 2, 0), 0);
  ck_assert_int_eq(websock_server_publish(t->srv, every, 255, WEBSOCK_OP_TEXT,
                                          "every", 5, 0),
                   0);
  ck_assert_int_eq(
      websock_server_publish(t->srv, every, 254, WEBSOCK_OP_TEXT, "no", 2, 0),
      0);
  ck_assert_int_eq(
      websock_server_publish(t->srv, "\0", 1, WEBSOCK_OP_TEXT, "nul", 3, 0), 0);
  recv_text(c[0], "ab");
  recv_text(c[1], "ac");
  recv_text(c[2], "a");
  recv_text(c[3], "every");
  recv_text(c[3], "nul");
  for (int i = 0; i < 4; i++)
    recv_nothing(c[i]);
  /* Unsubscribing by a prefix or a longer name does nothing. */
  ck_assert_int_eq(websock_server_unsubscribe(t->srv, id[0], "a", 1), 0);
  ck_assert_int_eq(websock_server_unsubscribe(t->srv, id[0], "a\0bc", 4), 0);
  tt_wait_counts(t, 5, 5);
  ck_assert_int_eq(websock_server_unsubscribe(t->srv, id[0], "a\0b", 3), 0);
  tt_wait_counts(t, 4, 4);
  for (int i = 0; i < 4; i++)
    wsc_free(c[i]);
  tt_wait_counts(t, 0, 0);
  tt_stop(t);
}
END_TEST

/* ---- a topic with 2,000 members --------------------------------------- */

START_TEST(many_subscribers) {
  raise_fd_limit();
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  /* Two descriptors a connection in this process, and some to spare. */
  int want = 2000;
  int n =
      rl.rlim_cur < (rlim_t)(2 * want + 100) ? (int)rl.rlim_cur / 2 - 50 : want;
  if (n < want)
    fprintf(stderr, "many_subscribers: %d connections (descriptor limit)\n", n);
  tt *t = tt_start(2, 2, 0);
  wsc **c = calloc((size_t)n, sizeof *c);
  uint64_t *id = calloc((size_t)n, sizeof *id);
  uint64_t t0 = now_ms();
  for (int i = 0; i < n; i++) {
    c[i] = client_open(t, &id[i]);
    ck_assert_int_eq(websock_server_subscribe(t->srv, id[i], "crowd", 5), 0);
  }
  uint64_t t1 = now_ms();
  tt_wait_counts(t, UINT64_MAX, (uint64_t)n);
  for (int round = 0; round < 3; round++) {
    char msg[32];
    int ml = snprintf(msg, sizeof msg, "round %d", round);
    uint64_t p0 = now_ms();
    ck_assert_int_eq(websock_server_publish(t->srv, "crowd", 5, WEBSOCK_OP_TEXT,
                                            msg, (size_t)ml,
                                            round == 1 ? id[7] : 0),
                     0);
    for (int i = 0; i < n; i++) {
      if (round == 1 && i == 7)
        continue;
      recv_text(c[i], msg);
    }
    uint64_t p1 = now_ms();
    /* Bounded in time, even under the sanitizers. */
    ck_assert_uint_lt(p1 - p0, 20000);
    if (round == 0)
      fprintf(stderr,
              "many_subscribers: %d connections opened and subscribed in "
              "%" PRIu64 " ms, one publish reached all in %" PRIu64 " ms\n",
              n, t1 - t0, p1 - p0);
  }
  recv_nothing(c[7]);
  /* Half of them leave the topic, then everyone leaves. */
  for (int i = 0; i < n; i += 2)
    ck_assert_int_eq(websock_server_unsubscribe(t->srv, id[i], "crowd", 5), 0);
  tt_wait_counts(t, UINT64_MAX, (uint64_t)(n / 2));
  ck_assert_int_eq(
      websock_server_publish(t->srv, "crowd", 5, WEBSOCK_OP_TEXT, "odd", 3, 0),
      0);
  for (int i = 1; i < n; i += 2)
    recv_text(c[i], "odd");
  recv_nothing(c[0]);
  for (int i = 0; i < n; i++)
    wsc_free(c[i]);
  tt_wait_counts(t, 0, 0);
  free(c);
  free(id);
  tt_stop(t);
}
END_TEST

/* ---- one connection in 1,000 topics ----------------------------------- */

static void topic_name(char *b, size_t cap, int i, size_t *len) {
  int n = snprintf(b, cap, "topic-%d", i);
  *len = (size_t)n;
}

START_TEST(many_topics) {
  enum { T = 1000 };
  tt *t = tt_start(2, 1, 0);
  uint64_t id, other;
  wsc *c = client_open(t, &id);
  wsc *o = client_open(t, &other);
  char name[32];
  size_t nl;
  for (int i = 0; i < T; i++) {
    topic_name(name, sizeof name, i, &nl);
    ck_assert_int_eq(websock_server_subscribe(t->srv, id, name, nl), 0);
    if (i % 10 == 0)
      ck_assert_int_eq(websock_server_subscribe(t->srv, other, name, nl), 0);
  }
  tt_wait_counts(t, UINT64_MAX, T + T / 10);
  /* One publish to each topic, in order. */
  for (int i = 0; i < T; i++) {
    topic_name(name, sizeof name, i, &nl);
    ck_assert_int_eq(
        websock_server_publish(t->srv, name, nl, WEBSOCK_OP_TEXT, name, nl, 0),
        0);
  }
  for (int i = 0; i < T; i++) {
    topic_name(name, sizeof name, i, &nl);
    recv_text(c, name);
    if (i % 10 == 0)
      recv_text(o, name);
  }
  recv_nothing(o);
  /* It leaves the even topics. */
  for (int i = 0; i < T; i += 2) {
    topic_name(name, sizeof name, i, &nl);
    ck_assert_int_eq(websock_server_unsubscribe(t->srv, id, name, nl), 0);
  }
  for (int i = 0; i < T; i++) {
    topic_name(name, sizeof name, i, &nl);
    ck_assert_int_eq(
        websock_server_publish(t->srv, name, nl, WEBSOCK_OP_TEXT, name, nl, 0),
        0);
  }
  for (int i = 0; i < T; i++) {
    topic_name(name, sizeof name, i, &nl);
    if (i % 2)
      recv_text(c, name);
    if (i % 10 == 0)
      recv_text(o, name);
  }
  recv_nothing(c);
  /* It ends with 500 topics: they all go, the other's stay. */
  wsc_drop(c);
  tt_wait_counts(t, T / 10, T / 10); /* the other's, on its loop */
  wsc_free(o);
  tt_wait_counts(t, 0, 0);
  tt_stop(t);
}
END_TEST

/* ---- publishes with permessage-deflate -------------------------------- */

/* Members with and without deflate get the publish each in its form; a
 * short one goes plain to all. */
static void deflate_members(int mode, int agents) {
  enum { N = 6 };
  tt *t = tt_start_cfg(2, agents, 0, mode);
  wsc *c[N];
  uint8_t back[2048], plain[2048];
  size_t n;
  for (int i = 0; i < N; i++) {
    c[i] = wsc_connect_ext(t->port, "/", i % 2 ? offer : "", NULL, NULL, 0);
    ck_assert_ptr_nonnull(c[i]);
    /* The greeting (short: plain), then a subscribe answered after the
     * OPEN handler returned. */
    ck_assert_int_eq(wsc_recv(c[i], back, sizeof back, &n, 10000),
                     WEBSOCK_OP_TEXT);
    command(c[i], "sub z", "sub:0");
  }
  char news[600];
  for (size_t i = 0; i < sizeof news; i++)
    news[i] = "topic news, compressed once per I/O thread "[i % 43];
  ck_assert_int_eq(websock_server_publish(t->srv, "z", 1, WEBSOCK_OP_TEXT, news,
                                          sizeof news, 0),
                   0);
  ck_assert_int_eq(
      websock_server_publish(t->srv, "z", 1, WEBSOCK_OP_TEXT, "short", 5, 0),
      0);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(wsc_recv(c[i], back, sizeof back, &n, 10000),
                     WEBSOCK_OP_TEXT);
    if (i % 2) {
      ck_assert_uint_lt(n, sizeof news / 2);
      n = inflate_msg(back, n, plain, sizeof plain);
      ck_assert_uint_eq(n, sizeof news);
      ck_assert_mem_eq(plain, news, n);
    } else {
      ck_assert_uint_eq(n, sizeof news);
      ck_assert_mem_eq(back, news, n);
    }
    recv_text(c[i], "short");
  }
  for (int i = 0; i < N; i++)
    wsc_free(c[i]);
  tt_wait_counts(t, 0, 0);
  tt_stop(t);
}

START_TEST(deflate_shared) {
  deflate_members(WEBSOCK_DEFLATE_SHARED, 0);
  deflate_members(WEBSOCK_DEFLATE_SHARED, 2);
}
END_TEST
START_TEST(deflate_dedicated) {
  deflate_members(WEBSOCK_DEFLATE_DEDICATED, 2);
}
END_TEST

/* ---- the steady state allocates nothing per publish -------------------- */

START_TEST(steady_allocs) {
  enum { N = 20, ROUNDS = 1500 };
  tt *t = tt_start(2, 2, 0);
  wsc *c[N];
  uint64_t id;
  for (int i = 0; i < N; i++) {
    c[i] = client_open(t, &id);
    ck_assert_int_eq(websock_server_subscribe(t->srv, id, "steady", 6), 0);
  }
  tt_wait_counts(t, UINT64_MAX, N);
  uint64_t before = 0, t0 = 0;
  char msg[100];
  memset(msg, 'm', sizeof msg);
  for (int round = 0; round < ROUNDS; round++) {
    if (round == 500) {
      websock_stats st;
      ck_assert_int_eq(websock_server_get_stats(t->srv, &st, sizeof st), 0);
      before = st.event_path_allocs;
      t0 = now_ms();
    }
    ck_assert_int_eq(websock_server_publish(t->srv, "steady", 6,
                                            WEBSOCK_OP_BINARY, msg, sizeof msg,
                                            0),
                     0);
    for (int i = 0; i < N; i++) {
      uint8_t b[128];
      size_t n;
      ck_assert_int_eq(wsc_recv(c[i], b, sizeof b, &n, 10000),
                       WEBSOCK_OP_BINARY);
      ck_assert_uint_eq(n, sizeof msg);
    }
  }
  websock_stats st;
  ck_assert_int_eq(websock_server_get_stats(t->srv, &st, sizeof st), 0);
  /* 1,000 publishes to 20 members, 20,000 deliveries: the jobs and the
   * output buffers are reused. A member that only receives is quiet for
   * the sweep, which gives its output back (two allocations to make it
   * again, once per sweep period of about a second, as for a broadcast);
   * a job first used now, deeper in the pool, may grow once. */
  uint64_t secs = (now_ms() - t0) / 1000 + 2;
  uint64_t allocs = st.event_path_allocs - before;
  ck_assert_uint_le(allocs, 4 + 2 * N * secs);
  for (int i = 0; i < N; i++)
    wsc_free(c[i]);
  tt_wait_counts(t, 0, 0);
  tt_stop(t);
}
END_TEST

/* ---- races: subscribe, unsubscribe, publish, disconnect --------------- */

enum { RACE_CLIENTS = 24, RACE_TOPICS = 8 };

typedef struct race {
  tt *t;
  atomic_uint_fast64_t ids[RACE_CLIENTS]; /* 0 while reconnecting */
  atomic_int stop;
  atomic_int bad; /* unexpected return codes */
} race;

static uint64_t race_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void race_topic(uint64_t r, char *b, size_t *len) {
  int n = snprintf(b, 16, "race%u", (unsigned)(r % RACE_TOPICS));
  *len = (size_t)n;
}

static void *race_subscriber(void *arg) {
  race *r = arg;
  uint64_t s = (uint64_t)(uintptr_t)&s | 1;
  while (!atomic_load(&r->stop)) {
    uint64_t x = race_rand(&s);
    uint64_t id = atomic_load(&r->ids[x % RACE_CLIENTS]);
    char name[16];
    size_t nl;
    race_topic(x >> 8, name, &nl);
    int rc = (x >> 20) % 3
                 ? websock_server_subscribe(r->t->srv, id, name, nl)
                 : websock_server_unsubscribe(r->t->srv, id, name, nl);
    if (rc != 0 && rc != WEBSOCK_ERR_NO_SUCH_CLIENT &&
        rc != WEBSOCK_ERR_CLOSING)
      atomic_fetch_add(&r->bad, 1);
  }
  return NULL;
}

static void *race_publisher(void *arg) {
  race *r = arg;
  uint64_t s = 0x9e3779b97f4a7c15ull;
  while (!atomic_load(&r->stop)) {
    uint64_t x = race_rand(&s);
    char name[16];
    size_t nl;
    race_topic(x, name, &nl);
    uint64_t except = atomic_load(&r->ids[(x >> 12) % RACE_CLIENTS]);
    if (websock_server_publish(r->t->srv, name, nl, WEBSOCK_OP_TEXT, "race", 4,
                               (x >> 30) % 2 ? except : 0) != 0)
      atomic_fetch_add(&r->bad, 1);
    usleep(50);
  }
  return NULL;
}

static void races_run(int agents) {
  tt *t = tt_start(2, agents, 1);
  race *r = calloc(1, sizeof *r);
  r->t = t;
  wsc *c[RACE_CLIENTS];
  for (int i = 0; i < RACE_CLIENTS; i++) {
    uint64_t id;
    c[i] = client_open(t, &id);
    atomic_store(&r->ids[i], id);
  }
  pthread_t th[3];
  ck_assert_int_eq(pthread_create(&th[0], NULL, race_subscriber, r), 0);
  ck_assert_int_eq(pthread_create(&th[1], NULL, race_subscriber, r), 0);
  ck_assert_int_eq(pthread_create(&th[2], NULL, race_publisher, r), 0);
  /* This thread disconnects and reconnects clients meanwhile. */
  uint64_t s = 12345, end = now_ms() + 1500;
  int rounds = 0;
  while (now_ms() < end || rounds < 20) {
    uint64_t x = race_rand(&s);
    int i = (int)(x % RACE_CLIENTS);
    atomic_store(&r->ids[i], 0);
    if ((x >> 10) % 2)
      wsc_drop(c[i]);
    else
      wsc_free(c[i]);
    uint64_t id;
    c[i] = client_open(t, &id);
    atomic_store(&r->ids[i], id);
    rounds++;
  }
  atomic_store(&r->stop, 1);
  for (int i = 0; i < 3; i++)
    pthread_join(th[i], NULL);
  ck_assert_int_eq(atomic_load(&r->bad), 0);
  /* Every client is still served after all that. */
  for (int i = 0; i < RACE_CLIENTS; i++) {
    ck_assert_int_eq(wsc_send(c[i], WEBSOCK_OP_TEXT, "sync", 4), 0);
    recv_until(c[i], "sync");
  }
  for (int i = 0; i < RACE_CLIENTS; i++)
    wsc_free(c[i]);
  tt_wait_counts(t, 0, 0);
  free(r);
  tt_stop(t);
}

START_TEST(races_inline) {
  races_run(0);
}
END_TEST
START_TEST(races_agents) {
  races_run(2);
}
END_TEST

int main(void) {
  Suite *s = suite_create("topics");
  TCase *tc = tcase_create("topics");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, pubsub_inline);
  tcase_add_test(tc, pubsub_agents);
  tcase_add_test(tc, conn_end_inline);
  tcase_add_test(tc, conn_end_agents);
  tcase_add_test(tc, subscribe_racing_end);
  tcase_add_test(tc, open_sub_inline);
  tcase_add_test(tc, open_sub_agents);
  tcase_add_test(tc, bad_arguments);
  tcase_add_test(tc, binary_names);
  tcase_add_test(tc, many_subscribers);
  tcase_add_test(tc, many_topics);
  tcase_add_test(tc, deflate_shared);
  tcase_add_test(tc, deflate_dedicated);
  tcase_add_test(tc, steady_allocs);
  tcase_add_test(tc, races_inline);
  tcase_add_test(tc, races_agents);
  suite_add_tcase(s, tc);
  return tk_run(s);
}
