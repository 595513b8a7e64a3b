/* The cluster through Redis, over real sockets: a redis-server of the
 * test's own on a free loopback port and two server nodes in this process,
 * each with clients: ids carry the node; publishes reach the topic's
 * members on both nodes (not the sender); broadcasts too; a node with no
 * member of a topic receives nothing of it; a send and a close by id reach
 * a connection on the other node; with Redis gone local delivery goes on,
 * a send to the other node's id says WEBSOCK_ERR_CLUSTER and the lost
 * shares are counted; once Redis is back the nodes reconnect and subscribe
 * again by themselves. */
#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <websock.h>

#include "testkit.h"
#include "wsclient.h"

extern char **environ;

/* ---- a redis-server of our own ---------------------------------------- */

static int redis_port;
static pid_t redis_pid;

static int port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void redis_start(void) {
  char port[16];
  snprintf(port, sizeof port, "%d", redis_port);
  char *argv[] = {"redis-server", "--port", port, "--bind",
                  "127.0.0.1",    "--save", "",   "--appendonly",
                  "no",           NULL};
  posix_spawn_file_actions_t fa; /* its log to /dev/null */
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  ck_assert_int_eq(
      posix_spawnp(&redis_pid, "redis-server", &fa, NULL, argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; i < 500 && !port_open(redis_port); i++)
    usleep(10000);
  ck_assert_msg(port_open(redis_port), "redis-server did not listen");
}

static void redis_stop(void) {
  kill(redis_pid, SIGKILL);
  waitpid(redis_pid, NULL, 0);
}

/* ---- the nodes ------------------------------------------------------- */

/* Text commands: "id" → "id:N"; "sub T" → "sub:RC"; "pub T|TEXT"
 * publishes TEXT to T except the sender ("pub:RC"); "bc TEXT" broadcasts
 * except the sender ("bc:RC"); "to N|TEXT" sends TEXT to id N ("to:RC");
 * "shut N" closes id N with 4000 "bye" ("shut:RC"). */
static void node_on_event(websock_server *srv, const websock_event *ev,
                          void *ud) {
  (void)ud;
  if (ev->type != WEBSOCK_EVENT_MESSAGE)
    return;
  char b[600], d[512];
  size_t len = ev->length < sizeof d - 1 ? ev->length : sizeof d - 1;
  memcpy(d, ev->data, len);
  d[len] = 0;
  char *bar = strchr(d, '|');
  int n;
  if (strcmp(d, "id") == 0) {
    n = snprintf(b, sizeof b, "id:%" PRIu64, ev->id);
  } else if (strncmp(d, "sub ", 4) == 0) {
    n = snprintf(b, sizeof b, "sub:%d",
                 websock_server_subscribe(srv, ev->id, d + 4, len - 4));
  } else if (strncmp(d, "pub ", 4) == 0 && bar) {
    int rc = websock_server_publish(srv, d + 4, (size_t)(bar - d - 4),
                                    WEBSOCK_OP_TEXT, bar + 1, strlen(bar + 1),
                                    ev->id);
    n = snprintf(b, sizeof b, "pub:%d", rc);
  } else if (strncmp(d, "bc ", 3) == 0) {
    int rc =
        websock_server_broadcast(srv, WEBSOCK_OP_TEXT, d + 3, len - 3, ev->id);
    n = snprintf(b, sizeof b, "bc:%d", rc);
  } else if (strncmp(d, "to ", 3) == 0 && bar) {
    uint64_t to = strtoull(d + 3, NULL, 10);
    int rc =
        websock_server_send(srv, to, WEBSOCK_OP_TEXT, bar + 1, strlen(bar + 1));
    n = snprintf(b, sizeof b, "to:%d", rc);
  } else if (strncmp(d, "shut ", 5) == 0) {
    uint64_t to = strtoull(d + 5, NULL, 10);
    n = snprintf(b, sizeof b, "shut:%d",
                 websock_server_close(srv, to, 4000, "bye"));
  } else {
    return;
  }
  websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, b, (size_t)n);
}

static websock_server *node_start(int node, int io, int agents, int *port) {
  websock_config *cfg = tk_config(agents, node_on_event, NULL);
  ck_assert_int_eq(websock_config_set_io_threads(cfg, io), 0);
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
  ck_assert_int_eq(websock_config_set_cluster(cfg, url, node), 0);
  ck_assert_int_eq(websock_config_set_cluster_prefix(cfg, "test"), 0);
  return tk_start(cfg, port);
}

static websock_stats node_stats(websock_server *s) {
  websock_stats st;
  ck_assert_int_eq(websock_server_get_stats(s, &st, sizeof st), 0);
  return st;
}

/* Waits until the node's link is up (and has come up |n| times). */
static void wait_up(websock_server *s, uint64_t n) {
  for (int i = 0; i < 1500; i++) {
    websock_stats st = node_stats(s);
    if (st.cluster_up && st.cluster_connects >= n)
      return;
    usleep(10000);
  }
  ck_abort_msg("the cluster link did not come up");
}

/* A client's next text message, or "" after |ms|. */
static const char *next(wsc *c, int ms) {
  static char buf[1024];
  size_t n = 0;
  int op = wsc_recv(c, buf, sizeof buf - 1, &n, ms);
  buf[op == WEBSOCK_OP_TEXT ? n : 0] = 0;
  return buf;
}

static void ask(wsc *c, const char *cmd, const char *want) {
  ck_assert_int_eq(wsc_send(c, WEBSOCK_OP_TEXT, cmd, strlen(cmd)), 0);
  ck_assert_str_eq(next(c, 5000), want);
}

static uint64_t client_id(wsc *c) {
  ck_assert_int_eq(wsc_send(c, WEBSOCK_OP_TEXT, "id", 2), 0);
  const char *r = next(c, 5000);
  ck_assert_msg(strncmp(r, "id:", 3) == 0, "%s", r);
  return strtoull(r + 3, NULL, 10);
}

/* Subscribes |c| and gives the link time to subscribe in Redis too. */
static void join_topic(wsc *c, const char *topic) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "sub %s", topic);
  ask(c, cmd, "sub:0");
}

START_TEST(test_cluster) {
  redis_port = tk_free_port();
  redis_start();
  int p1, p2;
  websock_server *n1 = node_start(1, 1, 0, &p1);
  websock_server *n2 = node_start(2, 2, 2, &p2);
  wait_up(n1, 1);
  wait_up(n2, 1);
  wsc *a = wsc_connect(p1, "/", NULL), *b = wsc_connect(p2, "/", NULL),
      *c = wsc_connect(p2, "/", NULL);
  ck_assert(a && b && c);
  /* Ids carry their node. */
  uint64_t ida = client_id(a), idb = client_id(b);
  ck_assert_uint_eq(ida >> 43, 1);
  ck_assert_uint_eq(idb >> 43, 2);
  ck_assert_uint_lt(idb, 1ull << 53);
  /* A publish reaches the members on both nodes, not its sender. */
  join_topic(a, "room");
  join_topic(b, "room");
  usleep(200000); /* the SUBSCRIBE reaches Redis */
  ask(a, "pub room|hello", "pub:0");
  ck_assert_str_eq(next(b, 5000), "hello");
  ck_assert_str_eq(next(a, 200), "");
  ck_assert_str_eq(next(c, 200), ""); /* not a member */
  /* A node with no member of a topic hears nothing of it. */
  websock_stats before = node_stats(n2);
  join_topic(a, "only-here");
  usleep(100000);
  ask(a, "pub only-here|x", "pub:0");
  usleep(300000);
  ck_assert_uint_eq(node_stats(n2).cluster_in, before.cluster_in);
  /* A broadcast reaches everyone else, on both nodes. */
  ask(b, "bc news", "bc:0");
  ck_assert_str_eq(next(a, 5000), "news");
  ck_assert_str_eq(next(c, 5000), "news");
  ck_assert_str_eq(next(b, 200), "");
  /* A send by id to the other node's connection, and a close. */
  char cmd[128];
  snprintf(cmd, sizeof cmd, "to %" PRIu64 "|psst", ida);
  ask(b, cmd, "to:0");
  ck_assert_str_eq(next(a, 5000), "psst");
  snprintf(cmd, sizeof cmd, "to %" PRIu64 "|nobody",
           (uint64_t)1 << 43 | 999999);
  ask(b, cmd, "to:0"); /* a gone id on the other node: lost, as locally */
  /* Redis goes away: local delivery goes on; cross-node sends say so. */
  redis_stop();
  for (int i = 0; i < 500 && node_stats(n1).cluster_up; i++)
    usleep(10000);
  ck_assert_uint_eq(node_stats(n1).cluster_up, 0);
  uint64_t dropped = node_stats(n2).cluster_dropped;
  ask(b, "bc local only", "bc:0");
  ck_assert_str_eq(next(c, 5000), "local only");
  ck_assert_str_eq(next(a, 300), "");
  ck_assert_uint_gt(node_stats(n2).cluster_dropped, dropped);
  snprintf(cmd, sizeof cmd, "to %" PRIu64 "|lost", ida);
  char want[32];
  snprintf(want, sizeof want, "to:%d", WEBSOCK_ERR_CLUSTER);
  ask(b, cmd, want);
  /* Redis is back: both nodes reconnect and subscribe again. */
  redis_start();
  wait_up(n1, 2);
  wait_up(n2, 2);
  usleep(200000);
  ask(a, "pub room|again", "pub:0");
  ck_assert_str_eq(next(b, 5000), "again");
  snprintf(cmd, sizeof cmd, "shut %" PRIu64, idb);
  ask(a, cmd, "shut:0");
  size_t n = 0;
  char buf[64];
  ck_assert_int_eq(wsc_recv(b, buf, sizeof buf, &n, 5000), 8);
  ck_assert_uint_ge(n, 2);
  ck_assert_int_eq((uint8_t)buf[0] << 8 | (uint8_t)buf[1], 4000);
  wsc_free(a);
  wsc_free(b);
  wsc_free(c);
  websock_server_free(n1);
  websock_server_free(n2);
  redis_stop();
}
END_TEST

START_TEST(test_cluster_config) {
  websock_config *cfg;
  ck_assert_int_eq(websock_config_new(&cfg), 0);
  ck_assert_int_eq(websock_config_set_cluster(cfg, "http://x", 1),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_cluster(cfg, "redis://h:0", 1),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_cluster(cfg, "redis://h", 0),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_cluster(cfg, "redis://h", 1024),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_cluster(cfg, "redis://:pw@h:1/0", 1023),
                   0);
  ck_assert_int_eq(websock_config_set_cluster_prefix(cfg, ""),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_cluster(cfg, NULL, 0), 0);
  websock_config_free(cfg);
  ck_assert_str_eq(websock_strerror(WEBSOCK_ERR_CLUSTER),
                   "the cluster's Redis link is down");
}
END_TEST

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  Suite *s = suite_create("cluster");
  TCase *tc = tcase_create("cluster");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_cluster_config);
  tcase_add_test(tc, test_cluster);
  suite_add_tcase(s, tc);
  return tk_run(s);
}
