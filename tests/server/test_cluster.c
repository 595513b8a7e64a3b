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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <websock.h>

#include "testkit.h"
#include "wsclient.h"

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

/* Starts redis-server on redis_port, with |acl| (NULL: none) as its
 * users: then it also listens on ::1. */
static void redis_start_acl(char *const *acl) {
  char port[16];
  snprintf(port, sizeof port, "%d", redis_port);
  char *argv[32] = {"redis-server", "--port", port, "--bind", "127.0.0.1"};
  int n = 5;
  if (acl)
    argv[n++] = "::1";
  char *rest[] = {"--save", "", "--appendonly", "no"};
  for (int i = 0; i < 4; i++)
    argv[n++] = rest[i];
  for (int i = 0; acl && acl[i] && n < 31; i++)
    argv[n++] = acl[i];
  argv[n] = NULL;
  /* Its log to /dev/null (not ctest's pipe either), and it dies with this
   * test's process, also when a failed check ends it. Only
   * async-signal-safe calls between fork and exec: threads may run. */
  redis_pid = fork();
  ck_assert_int_ge(redis_pid, 0);
  if (redis_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execvp("redis-server", argv);
    _exit(127);
  }
  for (int i = 0; i < 500 && !port_open(redis_port); i++)
    usleep(10000);
  ck_assert_msg(port_open(redis_port), "redis-server did not listen");
}

static void redis_start(void) {
  redis_start_acl(NULL);
}

static void redis_stop(void) {
  kill(redis_pid, SIGKILL);
  waitpid(redis_pid, NULL, 0);
}

/* ---- the nodes ------------------------------------------------------- */

static unsigned node_ttl_ms; /* 0: the default */

/* Text commands: "id" → "id:N"; "sub T" → "sub:RC"; "pub T|TEXT"
 * publishes TEXT to T except the sender ("pub:RC"); "bc TEXT" broadcasts
 * except the sender ("bc:RC"); "to N|TEXT" sends TEXT to id N ("to:RC");
 * "shut N" closes id N with 4000 "bye" ("shut:RC"); "tag T" sets the
 * sender's tag ("tag:RC"), "untag" removes it; "find T" → "find:RC:ID";
 * "tagto T|TEXT" sends by tag ("tagto:RC"); "mytag" → "mytag:TAG" (its
 * tag now, "" for none). A TAG event comes to the
 * client as "tagev:TAG:STATUS". */
static void node_on_event(websock_server *srv, const websock_event *ev,
                          void *ud) {
  (void)ud;
  char b[600], d[512];
  int n;
  if (ev->type == WEBSOCK_EVENT_TAG) {
    n = snprintf(b, sizeof b, "tagev:%.*s:%d", (int)ev->length,
                 (const char *)ev->data, ev->status);
    websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, b, (size_t)n);
    return;
  }
  if (ev->type != WEBSOCK_EVENT_MESSAGE)
    return;
  size_t len = ev->length < sizeof d - 1 ? ev->length : sizeof d - 1;
  memcpy(d, ev->data, len);
  d[len] = 0;
  char *bar = strchr(d, '|');
  uint64_t found = 0;
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
  } else if (strncmp(d, "tag ", 4) == 0) {
    n = snprintf(b, sizeof b, "tag:%d",
                 websock_server_set_tag(srv, ev->id, d + 4));
  } else if (strcmp(d, "mytag") == 0) {
    char t[300] = "";
    websock_server_get_tag(srv, ev->id, t, sizeof t);
    n = snprintf(b, sizeof b, "mytag:%s", t);
  } else if (strcmp(d, "untag") == 0) {
    n = snprintf(b, sizeof b, "untag:%d",
                 websock_server_set_tag(srv, ev->id, NULL));
  } else if (strncmp(d, "find ", 5) == 0) {
    int rc = websock_server_find_tag(srv, d + 5, &found);
    n = snprintf(b, sizeof b, "find:%d:%" PRIu64, rc, rc ? 0 : found);
  } else if (strncmp(d, "tagto ", 6) == 0 && bar) {
    *bar = 0;
    int rc = websock_server_send_tag(srv, d + 6, WEBSOCK_OP_TEXT, bar + 1,
                                     strlen(bar + 1));
    n = snprintf(b, sizeof b, "tagto:%d", rc);
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
  if (node_ttl_ms)
    ck_assert_int_eq(websock_config_set_cluster_ttl(cfg, node_ttl_ms), 0);
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

/* Asks |cmd| until the answer is |want| (a state that spreads through
 * Redis); returns the milliseconds it took. */
static long ask_until(wsc *c, const char *cmd, const char *want, int ms) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const char *r = "";
  for (int waited = 0; waited <= ms; waited += 20) {
    ck_assert_int_eq(wsc_send(c, WEBSOCK_OP_TEXT, cmd, strlen(cmd)), 0);
    r = next(c, 5000);
    if (strcmp(r, want) == 0) {
      clock_gettime(CLOCK_MONOTONIC, &t1);
      return (t1.tv_sec - t0.tv_sec) * 1000 +
             (t1.tv_nsec - t0.tv_nsec) / 1000000;
    }
    usleep(20000);
  }
  ck_abort_msg("%s: got %s, want %s", cmd, r, want);
  return -1;
}

static void claim(wsc *c, const char *tag, int want_status) {
  char cmd[300], ev[300];
  snprintf(cmd, sizeof cmd, "tag %s", tag);
  ask(c, cmd, "tag:1");
  snprintf(ev, sizeof ev, "tagev:%s:%d", tag, want_status);
  ck_assert_str_eq(next(c, 5000), ev);
}

/* Node 3 in a process of its own, forked before this process has any
 * thread: it starts, a client of its own takes the tag "ghost", and it
 * says so on |fd|; then it waits to be killed. */
static pid_t node3_spawn(void) {
  int pfd[2];
  ck_assert_int_eq(pipe(pfd), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    /* It goes with the test, however the test ends. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(pfd[0]);
    int port;
    websock_server *n3 = node_start(3, 1, 0, &port);
    (void)n3;
    wsc *g = NULL;
    for (int i = 0; i < 500; i++) { /* its link up, then the claim */
      websock_stats st;
      websock_server_get_stats(n3, &st, sizeof st);
      if (st.cluster_up)
        break;
      usleep(10000);
    }
    g = wsc_connect(port, "/", NULL);
    char buf[64];
    size_t n = 0;
    const char *cmd = "tag ghost";
    int ok = g && wsc_send(g, WEBSOCK_OP_TEXT, cmd, strlen(cmd)) == 0 &&
             wsc_recv(g, buf, sizeof buf, &n, 5000) == WEBSOCK_OP_TEXT &&
             wsc_recv(g, buf, sizeof buf, &n, 5000) == WEBSOCK_OP_TEXT &&
             n == strlen("tagev:ghost:0") &&
             memcmp(buf, "tagev:ghost:0", n) == 0;
    ssize_t w = write(pfd[1], ok ? "y" : "n", 1);
    (void)w;
    for (;;)
      pause();
  }
  close(pfd[1]);
  char r = 0;
  ck_assert_int_eq(read(pfd[0], &r, 1), 1);
  close(pfd[0]);
  ck_assert_msg(r == 'y', "node 3 could not take its tag");
  return pid;
}

START_TEST(test_cluster_tags) {
  redis_port = tk_free_port();
  redis_start();
  node_ttl_ms = 600;
  pid_t n3pid = node3_spawn();
  int p1, p2;
  websock_server *n1 = node_start(1, 2, 2, &p1);
  websock_server *n2 = node_start(2, 1, 0, &p2);
  wait_up(n1, 1);
  wait_up(n2, 1);
  wsc *a = wsc_connect(p1, "/", NULL), *b = wsc_connect(p2, "/", NULL),
      *a2 = wsc_connect(p1, "/", NULL), *b2 = wsc_connect(p2, "/", NULL);
  ck_assert(a && b && a2 && b2);
  uint64_t ida = client_id(a);
  char cmd[300], want[300];
  /* A claim: held here at once (PENDING), then Redis' answer as the TAG
   * event; the other node then knows it is taken. */
  claim(a, "alice", 0);
  snprintf(want, sizeof want, "find:0:%" PRIu64, ida);
  ask_until(b, "find alice", want, 3000);
  snprintf(want, sizeof want, "tag:%d", WEBSOCK_ERR_TAG_TAKEN);
  ask(b, "tag alice", want);
  ask(a, "tag alice", "tag:0"); /* its own tag again */
  /* Sends by tag cross to the holder's node; a tag nobody holds says so. */
  ask(b, "tagto alice|hi alice", "tagto:0");
  ck_assert_str_eq(next(a, 5000), "hi alice");
  snprintf(want, sizeof want, "tagto:%d", WEBSOCK_ERR_NO_SUCH_CLIENT);
  ask(b, "tagto nobody|x", want);
  snprintf(want, sizeof want, "find:%d:0", WEBSOCK_ERR_NO_SUCH_CLIENT);
  ask(b, "find nobody", want);
  /* Two nodes claim one tag in the same moment: exactly one wins; the
   * loser keeps the tag it had (held all along), the winner lets its old
   * one go once Redis said yes. */
  claim(a2, "olda", 0);
  claim(b2, "oldb", 0);
  ck_assert_int_eq(wsc_send(a2, WEBSOCK_OP_TEXT, "tag race", 8), 0);
  ck_assert_int_eq(wsc_send(b2, WEBSOCK_OP_TEXT, "tag race", 8), 0);
  int wins = 0, won[2] = {0, 0};
  wsc *racers[2] = {a2, b2};
  for (int i = 0; i < 2; i++) {
    const char *r = next(racers[i], 5000);
    if (strcmp(r, "tag:1") == 0) {
      r = next(racers[i], 5000);
      snprintf(want, sizeof want, "tagev:race:%d", WEBSOCK_ERR_TAG_TAKEN);
      ck_assert_msg(strcmp(r, "tagev:race:0") == 0 || strcmp(r, want) == 0,
                    "%s", r);
      won[i] = strcmp(r, "tagev:race:0") == 0;
      wins += won[i];
    } else {
      snprintf(want, sizeof want, "tag:%d", WEBSOCK_ERR_TAG_TAKEN);
      ck_assert_str_eq(r, want);
    }
  }
  for (int i = 0; i < 2; i++) {
    const char *old = i == 0 ? "olda" : "oldb";
    char cmd[64], mine[64];
    snprintf(cmd, sizeof cmd, "find %s", old);
    snprintf(mine, sizeof mine, "mytag:%s", won[i] ? "race" : old);
    ask(racers[i], "mytag", mine);
    if (won[i])
      snprintf(want, sizeof want, "find:%d:0", WEBSOCK_ERR_NO_SUCH_CLIENT);
    else
      snprintf(want, sizeof want, "find:0:%" PRIu64, client_id(racers[i]));
    ask_until(racers[1 - i], cmd, want, 3000); /* released, or still its */
  }
  ck_assert_int_eq(wins, 1);
  /* Released (untag, or the connection ends): free on every node. */
  char none[64];
  snprintf(none, sizeof none, "find:%d:0", WEBSOCK_ERR_NO_SUCH_CLIENT);
  ask(a, "untag", "untag:0");
  ask_until(b, "find alice", none, 3000);
  claim(b, "alice", 0);
  wsc_free(a2); /* one of them holds "race" */
  wsc_free(b2);
  ask_until(a, "find race", none, 3000);
  ask_until(b, "find race", none, 3000);
  claim(a, "carol", 0);
  /* Redis refuses a claim this node's directory could not know of (a tag
   * planted in Redis for live node 3): the refusal comes as the TAG
   * event, and a has "carol" again, held all along. */
  char hset[160];
  snprintf(hset, sizeof hset,
           "redis-cli -p %d HSET test:tags planted 3:12345 >/dev/null",
           redis_port);
  ck_assert_int_eq(system(hset), 0);
  ask(a, "tag planted", "tag:1");
  snprintf(want, sizeof want, "tagev:planted:%d", WEBSOCK_ERR_TAG_TAKEN);
  ck_assert_str_eq(next(a, 5000), want);
  ask(a, "mytag", "mytag:carol");
  snprintf(want, sizeof want, "find:0:%" PRIu64, ida);
  ask(b, "find carol", want);
  /* What a node knows of the others. */
  for (int i = 0; i < 300 && node_stats(n1).cluster_nodes < 2; i++)
    usleep(10000);
  ck_assert_uint_eq(node_stats(n1).cluster_nodes, 2); /* nodes 2 and 3 */
  ck_assert_uint_ge(node_stats(n1).cluster_tags, 2);  /* alice, ghost */
  /* Node 3 is killed: within the ttl (+ a sweep) its tags are free. */
  const char *r = "";
  for (int i = 0; i < 300; i++) {
    ck_assert_int_eq(wsc_send(a, WEBSOCK_OP_TEXT, "find ghost", 10), 0);
    if (strncmp(r = next(a, 5000), "find:0:", 7) == 0)
      break;
    usleep(10000);
  }
  ck_assert_msg(strncmp(r, "find:0:", 7) == 0, "%s", r);
  snprintf(want, sizeof want, "tag:%d", WEBSOCK_ERR_TAG_TAKEN);
  ask(a, "tag ghost", want);
  kill(n3pid, SIGKILL);
  waitpid(n3pid, NULL, 0);
  long freed = ask_until(a, "find ghost", none, 5000);
  ck_assert_msg(freed <= 600 + 60 + 400, "freed after %ld ms", freed);
  claim(a, "ghost", 0);
  snprintf(want, sizeof want, "find:0:%" PRIu64, ida);
  ask_until(b, "find ghost", want, 3000);
  /* A second server with a live node's number does not start. */
  websock_config *cfg = tk_config(0, node_on_event, NULL);
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
  ck_assert_int_eq(websock_config_set_cluster(cfg, url, 1), 0);
  ck_assert_int_eq(websock_config_set_cluster_prefix(cfg, "test"), 0);
  websock_server *dup = NULL;
  ck_assert_int_eq(websock_server_new(&dup, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_start(dup), WEBSOCK_ERR_ADDRESS);
  ck_assert_ptr_nonnull(strstr(websock_server_last_error(dup, NULL), "node 1"));
  websock_server_free(dup);
  /* Node 0 draws the lowest number no live node has: 3, free again since
   * its tags were (its key expired first), and its ids carry it. */
  int p0;
  websock_server *n0 = node_start(0, 1, 0, &p0);
  ck_assert_int_eq(websock_server_cluster_node(n0), 3);
  ck_assert_int_eq(websock_server_cluster_node(n1), 1);
  wsc *z = wsc_connect(p0, "/", NULL);
  ck_assert_uint_eq(client_id(z) >> 43, 3);
  wsc_free(z);
  websock_server_free(n0);
  /* Redis restarts: tags and cross-node sends say WEBSOCK_ERR_CLUSTER
   * meanwhile; then every node claims its tags again (a's "ghost", which
   * replaced its "carol", and b's "alice"). */
  redis_stop();
  for (int i = 0; i < 500 && node_stats(n1).cluster_up; i++)
    usleep(10000);
  snprintf(want, sizeof want, "tag:%d", WEBSOCK_ERR_CLUSTER);
  ask(a, "tag dave", want);
  ask(a, "tag ghost", "tag:0"); /* the tag it holds: no claim needed */
  snprintf(want, sizeof want, "tagto:%d", WEBSOCK_ERR_CLUSTER);
  ask(b, "tagto ghost|lost", want);
  /* Without Redis there is no number to draw: node 0 does not start. */
  cfg = tk_config(0, node_on_event, NULL);
  ck_assert_int_eq(websock_config_set_cluster(cfg, url, 0), 0);
  ck_assert_int_eq(websock_server_new(&dup, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_start(dup), WEBSOCK_ERR_CLUSTER);
  ck_assert_ptr_nonnull(
      strstr(websock_server_last_error(dup, NULL), "did not answer"));
  websock_server_free(dup);
  redis_start();
  wait_up(n1, 2);
  wait_up(n2, 2);
  snprintf(want, sizeof want, "find:0:%" PRIu64, ida);
  ask_until(b, "find ghost", want, 3000);
  ask(b, "tagto ghost|back", "tagto:0");
  ck_assert_str_eq(next(a, 5000), "back");
  snprintf(want, sizeof want, "tag:%d", WEBSOCK_ERR_TAG_TAKEN);
  ask_until(a, "tag alice", want, 3000);
  /* A clean stop lets go of the node's tags and of its number at once. */
  wsc_free(b);
  websock_server_free(n2);
  /* (Its leave waits at most 500 ms for Redis; on a loaded machine the
   * key may outlive it, so allow for the key's expiry too.) */
  char gone[128];
  snprintf(gone, sizeof gone,
           "test \"$(redis-cli -p %d EXISTS test:node:2)\" = 0", redis_port);
  for (int i = 0; i < 200 && system(gone) != 0; i++)
    usleep(10000);
  n2 = node_start(2, 1, 0, &p2);
  wait_up(n2, 1);
  wsc_free(a);
  websock_server_free(n2);
  websock_server_free(n1);
  redis_stop();
  node_ttl_ms = 0;
}
END_TEST

/* Credentials reach Redis %-decoded, as an ACL user's AUTH, over IPv6 to
 * database 2; credentials Redis refuses (a wrong password; the default
 * user, which is off) fail the start with Redis' reason. */
START_TEST(test_cluster_auth) {
  redis_port = tk_free_port();
  char *acl[] = {"--user", "alice",  "on",      ">p@ss/w%rd", "~*", "&*",
                 "+@all",  "--user", "default", "off",        NULL};
  redis_start_acl(acl);
  char url[128];
  snprintf(url, sizeof url, "redis://alice:p%%40ss%%2Fw%%25rd@[::1]:%d/2",
           redis_port);
  websock_config *cfg = tk_config(0, node_on_event, NULL);
  ck_assert_int_eq(websock_config_set_cluster(cfg, url, 0), 0);
  int port;
  websock_server *n1 = tk_start(cfg, &port);
  ck_assert_int_eq(websock_server_cluster_node(n1), 1);
  wait_up(n1, 1);
  static const char *bad[] = {"redis://alice:wrong@127.0.0.1:%d",
                              "redis://:p%%40ss%%2Fw%%25rd@127.0.0.1:%d"};
  for (int i = 0; i < 2; i++) {
    snprintf(url, sizeof url, bad[i], redis_port);
    cfg = tk_config(0, node_on_event, NULL);
    ck_assert_int_eq(websock_config_set_cluster(cfg, url, 2), 0);
    websock_server *n2 = NULL;
    ck_assert_int_eq(websock_server_new(&n2, cfg), 0);
    websock_config_free(cfg);
    ck_assert_int_eq(websock_server_start(n2), WEBSOCK_ERR_CLUSTER);
    const char *why = websock_server_last_error(n2, NULL);
    ck_assert_msg(strstr(why, "refused the password"), "%s", why);
    websock_server_free(n2);
  }
  websock_server_free(n1);
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
  ck_assert_int_eq(websock_config_set_cluster(cfg, "redis://h", -1),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_cluster(cfg, "redis://h", 0), 0);
  ck_assert_int_eq(websock_config_set_cluster(cfg, "redis://h", 1024),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_cluster(cfg, "redis://:pw@h:1/0", 1023),
                   0);
  ck_assert_int_eq(websock_config_set_cluster_prefix(cfg, ""),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_cluster(cfg, NULL, 0), 0);
  websock_server *srv = NULL;
  ck_assert_int_eq(websock_server_new(&srv, cfg), 0);
  ck_assert_int_eq(websock_server_cluster_node(srv), WEBSOCK_ERR_STATE);
  websock_server_free(srv);
  websock_config_free(cfg);
  int port;
  srv = tk_start(tk_config(0, node_on_event, NULL), &port);
  ck_assert_int_eq(websock_server_cluster_node(srv), 0); /* no cluster */
  websock_server_free(srv);
  ck_assert_int_eq(websock_server_cluster_node(NULL), WEBSOCK_ERR_INVALID);
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
  tcase_add_test(tc, test_cluster_auth);
  tcase_add_test(tc, test_cluster);
  tcase_add_test(tc, test_cluster_tags);
  suite_add_tcase(s, tc);
  return tk_run(s);
}
