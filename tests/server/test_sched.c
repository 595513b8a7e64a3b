/* The work-conserving scheduler over real sockets: a handler that blocks
 * holds up only its own connection, events of one connection run in order
 * and never on two agents at once (random handler delays, many agents),
 * a flooding connection gets at most a budget of events per turn, and the
 * scheduler's stats, and the agents' scheduling policy (SCHED_BATCH
 * unless turned off). No test here measures time: waits only bound how long
 * a broken scheduler may hang the test. */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <websock.h>

#include "testkit.h"
#include "wsclient.h"

#define MAX_IDS 256

typedef struct ssrv {
  websock_server *srv;
  int port;
  /* "block": the handler waits until |release| is set. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int blocked; /* handlers waiting now */
  int release;
  /* Per connection id: callbacks running now (must never exceed 1). */
  atomic_int running[MAX_IDS];
  atomic_int overlap; /* set when two callbacks of one id overlapped */
  atomic_int opens;   /* OPEN events run */
  int delay_us;       /* random handler delay bound (0: none) */
  /* The order events ran in: connection ids, for the fairness test. */
  uint64_t order[4096];
  atomic_int norder;
} ssrv;

static void ssrv_block(ssrv *t) {
  pthread_mutex_lock(&t->mu);
  t->blocked++;
  pthread_cond_broadcast(&t->cv);
  while (!t->release)
    pthread_cond_wait(&t->cv, &t->mu);
  t->blocked--;
  pthread_mutex_unlock(&t->mu);
}

static void ssrv_on_event(websock_server *srv, const websock_event *ev,
                          void *ud) {
  ssrv *t = ud;
  unsigned id = (unsigned)(ev->id % MAX_IDS);
  if (atomic_fetch_add(&t->running[id], 1) != 0)
    atomic_store(&t->overlap, 1);
  if (ev->type == WEBSOCK_EVENT_OPEN)
    atomic_fetch_add(&t->opens, 1);
  if (ev->type == WEBSOCK_EVENT_MESSAGE) {
    int n = atomic_fetch_add(&t->norder, 1);
    if (n < (int)(sizeof t->order / sizeof t->order[0]))
      t->order[n] = ev->id;
    if (ev->length == 5 && memcmp(ev->data, "block", 5) == 0) {
      ssrv_block(t);
      websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, "unblocked", 9);
    } else {
      if (t->delay_us)
        usleep((useconds_t)(rand() % t->delay_us));
      websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
    }
  }
  atomic_fetch_sub(&t->running[id], 1);
}

static ssrv *ssrv_start(int agents, unsigned budget, int delay_us) {
  ssrv *t = calloc(1, sizeof *t);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  t->delay_us = delay_us;
  websock_config *cfg = tk_config(agents, ssrv_on_event, t);
  ck_assert_int_eq(websock_config_set_agent_budget(cfg, budget), 0);
  t->srv = tk_start(cfg, &t->port);
  return t;
}

static void ssrv_release(ssrv *t) {
  pthread_mutex_lock(&t->mu);
  t->release = 1;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static void ssrv_stop(ssrv *t) {
  ssrv_release(t);
  websock_server_free(t->srv);
  ck_assert_int_eq(atomic_load(&t->overlap), 0);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t);
}

/* Waits until |n| handlers are blocked. */
static void ssrv_wait_blocked(ssrv *t, int n) {
  pthread_mutex_lock(&t->mu);
  while (t->blocked < n)
    pthread_cond_wait(&t->cv, &t->mu);
  pthread_mutex_unlock(&t->mu);
}

static void echo_ok(wsc *c, const char *msg) {
  char b[64];
  size_t n;
  ck_assert_int_eq(wsc_send(c, WEBSOCK_OP_TEXT, msg, strlen(msg)), 0);
  ck_assert_msg(wsc_recv(c, b, sizeof b, &n, 10000) == 1,
                "no echo of %s while other handlers block", msg);
  ck_assert_uint_eq(n, strlen(msg));
  ck_assert_mem_eq(b, msg, n);
}

/* |agents| agents, |blockers| connections whose handlers block: every
 * other connection is still served by the agents left, whatever its id. */
static void hol_run(int agents, int blockers) {
  ssrv *t = ssrv_start(agents, 32, 0);
  wsc *slow[4];
  for (int i = 0; i < blockers; i++) {
    slow[i] = wsc_connect(t->port, "/", NULL);
    ck_assert_ptr_nonnull(slow[i]);
    ck_assert_int_eq(wsc_send(slow[i], WEBSOCK_OP_TEXT, "block", 5), 0);
  }
  ssrv_wait_blocked(t, blockers);
  /* Sixteen connections: with the old id % agents mapping some of them
   * would wait behind a blocked handler forever. */
  for (int i = 0; i < 16; i++) {
    wsc *c = wsc_connect(t->port, "/", NULL);
    ck_assert_ptr_nonnull(c);
    char msg[32];
    for (int k = 0; k < 3; k++) {
      snprintf(msg, sizeof msg, "c%d-%d", i, k);
      echo_ok(c, msg);
    }
    wsc_free(c);
  }
  pthread_mutex_lock(&t->mu);
  ck_assert_int_eq(t->blocked, blockers); /* still blocked all along */
  pthread_mutex_unlock(&t->mu);
  ssrv_release(t);
  for (int i = 0; i < blockers; i++) {
    char b[16];
    size_t n;
    ck_assert_int_eq(wsc_recv(slow[i], b, sizeof b, &n, 10000), 1);
    ck_assert_mem_eq(b, "unblocked", 9);
    wsc_free(slow[i]);
  }
  ssrv_stop(t);
}

START_TEST(blocked_handler_holds_only_its_connection) {
  hol_run(2, 1);
}
END_TEST

START_TEST(two_blocked_of_three_agents) {
  hol_run(3, 2);
}
END_TEST

/* Many agents, random handler delays, pipelined messages: each connection
 * gets its echoes in order, and no two callbacks of one connection ever
 * overlap (checked in ssrv_stop). */
START_TEST(order_with_random_delays) {
  enum { CLIENTS = 8, MSGS = 150 };
  ssrv *t = ssrv_start(4, 4, 300);
  wsc *c[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    c[i] = wsc_connect(t->port, "/", NULL);
    ck_assert_ptr_nonnull(c[i]);
  }
  char msg[32];
  for (int m = 0; m < MSGS; m++)
    for (int i = 0; i < CLIENTS; i++) {
      int n = snprintf(msg, sizeof msg, "%d:%d", i, m);
      ck_assert_int_eq(wsc_send(c[i], WEBSOCK_OP_TEXT, msg, (size_t)n), 0);
    }
  for (int i = 0; i < CLIENTS; i++) {
    for (int m = 0; m < MSGS; m++) {
      char b[32];
      size_t n;
      ck_assert_int_eq(wsc_recv(c[i], b, sizeof b - 1, &n, 10000), 1);
      b[n] = 0;
      snprintf(msg, sizeof msg, "%d:%d", i, m);
      ck_assert_str_eq(b, msg);
    }
    wsc_free(c[i]);
  }
  websock_stats st;
  ck_assert_int_eq(websock_server_get_stats(t->srv, &st, sizeof st), 0);
  ck_assert_uint_eq(st.messages_in, CLIENTS * MSGS);
  /* An agent counts an event once its callback returned, which may be
   * just after the client got the echo sent inside it. */
  uint64_t events = 0, busy = 0;
  for (int tries = 0; tries < 500; tries++) {
    events = busy = 0;
    for (unsigned a = 0; a < 4; a++) {
      websock_agent_stats as;
      ck_assert_int_eq(
          websock_server_get_agent_stats(t->srv, a, &as, sizeof as), 0);
      events += as.events;
      busy += as.busy_ns;
    }
    if (events >= CLIENTS * (MSGS + 1))
      break;
    usleep(10000);
  }
  ck_assert_uint_ge(events, CLIENTS * (MSGS + 1)); /* + the OPENs */
  ck_assert_uint_gt(busy, 0);
  ck_assert_uint_gt(st.ready_wait_max_ns, 0);
  ssrv_stop(t);
}
END_TEST

/* One agent, budget 8: a flooding connection F with 100 events ready and
 * a connection G with one, both waiting behind a blocked handler. Once it
 * is released, G's event runs after exactly 8 of F's. */
START_TEST(budget_bounds_a_flooding_connection) {
  ssrv *t = ssrv_start(1, 8, 0);
  wsc *gate = wsc_connect(t->port, "/", NULL);
  wsc *f = wsc_connect(t->port, "/", NULL);
  wsc *g = wsc_connect(t->port, "/", NULL);
  ck_assert_ptr_nonnull(gate);
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_nonnull(g);
  for (int i = 0; i < 1000 && atomic_load(&t->opens) < 3; i++)
    usleep(5000); /* no OPEN still waiting behind the gate */
  ck_assert_int_eq(atomic_load(&t->opens), 3);
  ck_assert_int_eq(wsc_send(gate, WEBSOCK_OP_TEXT, "block", 5), 0);
  ssrv_wait_blocked(t, 1);
  for (int m = 0; m < 100; m++)
    ck_assert_int_eq(wsc_send(f, WEBSOCK_OP_TEXT, "f", 1), 0);
  websock_stats st;
  for (int i = 0; i < 1000; i++) { /* F's messages all read */
    websock_server_get_stats(t->srv, &st, sizeof st);
    if (st.messages_in >= 101)
      break;
    usleep(5000);
  }
  ck_assert_uint_eq(st.messages_in, 101);
  ck_assert_int_eq(wsc_send(g, WEBSOCK_OP_TEXT, "g", 1), 0);
  for (int i = 0; i < 1000; i++) {
    websock_server_get_stats(t->srv, &st, sizeof st);
    if (st.messages_in >= 102)
      break;
    usleep(5000);
  }
  ck_assert_uint_eq(st.messages_in, 102);
  ck_assert_uint_eq(st.ready_connections, 2); /* F and G wait */
  int gate_n = atomic_load(&t->norder);       /* the gate's "block" ran */
  ssrv_release(t);
  char b[16];
  size_t n;
  ck_assert_int_eq(wsc_recv(g, b, sizeof b, &n, 10000), 1);
  for (int m = 0; m < 100; m++)
    ck_assert_int_eq(wsc_recv(f, b, sizeof b, &n, 10000), 1);
  /* Events after the gate: F x 8, then G, then the rest of F. */
  int g_at = -1;
  uint64_t fid = 0;
  for (int k = gate_n; k < atomic_load(&t->norder); k++) {
    if (fid == 0)
      fid = t->order[k];
    if (t->order[k] != fid) {
      g_at = k - gate_n;
      break;
    }
  }
  ck_assert_int_eq(g_at, 8);
  wsc_free(gate);
  wsc_free(f);
  wsc_free(g);
  ssrv_stop(t);
}
END_TEST

/* ---- OPEN before any broadcast ----------------------------------------- */

static atomic_int bcast_stop;

static void greet_on_event(websock_server *srv, const websock_event *ev,
                           void *ud) {
  (void)ud;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    usleep(2000); /* a greeting that takes a while: a wide window */
    websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, "welcome", 7);
  }
}

static void *bcast_main(void *arg) {
  websock_server *srv = arg;
  while (!atomic_load(&bcast_stop)) {
    websock_server_broadcast(srv, WEBSOCK_OP_TEXT, "say", 3, 0);
    usleep(100);
  }
  return NULL;
}

/* Under a steady broadcast, with agents, every new client's first message
 * is the greeting its OPEN handler sent: broadcasts reach a connection
 * only once that handler returned. */
START_TEST(open_handler_runs_before_any_broadcast) {
  websock_config *cfg = tk_config(2, greet_on_event, NULL);
  websock_config_set_io_threads(cfg, 2);
  int port;
  websock_server *srv = tk_start(cfg, &port);
  atomic_store(&bcast_stop, 0);
  pthread_t th;
  pthread_create(&th, NULL, bcast_main, srv);
  for (int i = 0; i < 40; i++) {
    wsc *c = wsc_connect(port, "/", NULL);
    ck_assert_ptr_nonnull(c);
    char b[16];
    size_t n;
    ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), 1);
    ck_assert_msg(n == 7 && memcmp(b, "welcome", 7) == 0,
                  "client %d got a broadcast before its greeting", i);
    ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), 1); /* then says */
    ck_assert_mem_eq(b, "say", 3);
    wsc_free(c);
  }
  atomic_store(&bcast_stop, 1);
  pthread_join(th, NULL);
  websock_server_free(srv);
}
END_TEST

/* ---- sends from two agents in a causal chain ---------------------------
 * A's handler sends "N:1" to X and lets B's handler go on, which sends
 * "N:2" to X and lets A's go on, which sends "N:3": X must get them in
 * that order, although A's first send may still wait in its agent's
 * outbox (net/outbox.c) when its last one is made. */
typedef struct chain {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stage;
  atomic_uint_fast64_t x; /* X's id, once it said "x" */
} chain;

static void chain_wait(chain *k, int stage) {
  pthread_mutex_lock(&k->mu);
  while (k->stage < stage)
    pthread_cond_wait(&k->cv, &k->mu);
  pthread_mutex_unlock(&k->mu);
}

static void chain_set(chain *k, int stage) {
  pthread_mutex_lock(&k->mu);
  k->stage = stage;
  pthread_cond_broadcast(&k->cv);
  pthread_mutex_unlock(&k->mu);
}

static void chain_on_event(websock_server *srv, const websock_event *ev,
                           void *ud) {
  chain *k = ud;
  if (ev->type != WEBSOCK_EVENT_MESSAGE || ev->length < 1)
    return;
  char m[32];
  size_t len = ev->length < sizeof m - 1 ? ev->length : sizeof m - 1;
  memcpy(m, ev->data, len);
  m[len] = 0;
  int round = atoi(m + 1);
  uint64_t x = atomic_load(&k->x);
  switch (((const char *)ev->data)[0]) {
  case 'x':
    atomic_store(&k->x, ev->id);
    websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, "ok", 2);
    break;
  case 'a':
    snprintf(m, sizeof m, "%d:1", round);
    websock_server_send(srv, x, WEBSOCK_OP_TEXT, m, strlen(m));
    chain_set(k, 1);
    chain_wait(k, 2);
    snprintf(m, sizeof m, "%d:3", round);
    websock_server_send(srv, x, WEBSOCK_OP_TEXT, m, strlen(m));
    break;
  case 'b':
    chain_wait(k, 1);
    snprintf(m, sizeof m, "%d:2", round);
    websock_server_send(srv, x, WEBSOCK_OP_TEXT, m, strlen(m));
    chain_set(k, 2);
    break;
  }
}

START_TEST(sends_of_two_agents_keep_their_causal_order) {
  chain k = {.stage = 0};
  pthread_mutex_init(&k.mu, NULL);
  pthread_cond_init(&k.cv, NULL);
  int port;
  websock_server *srv = tk_start(tk_config(3, chain_on_event, &k), &port);
  wsc *x = wsc_connect(port, "/", NULL), *a = wsc_connect(port, "/", NULL),
      *b = wsc_connect(port, "/", NULL);
  ck_assert(x && a && b);
  char buf[32];
  size_t n;
  ck_assert_int_eq(wsc_send(x, WEBSOCK_OP_TEXT, "x", 1), 0);
  ck_assert_int_eq(wsc_recv(x, buf, sizeof buf, &n, 5000), 1);
  for (int round = 0; round < 200; round++) {
    chain_set(&k, 0);
    char m[32];
    int len = snprintf(m, sizeof m, "b%d", round);
    ck_assert_int_eq(wsc_send(b, WEBSOCK_OP_TEXT, m, (size_t)len), 0);
    m[0] = 'a';
    ck_assert_int_eq(wsc_send(a, WEBSOCK_OP_TEXT, m, (size_t)len), 0);
    for (int step = 1; step <= 3; step++) {
      ck_assert_int_eq(wsc_recv(x, buf, sizeof buf - 1, &n, 5000), 1);
      buf[n] = 0;
      snprintf(m, sizeof m, "%d:%d", round, step);
      ck_assert_msg(strcmp(buf, m) == 0, "round %d: got %s where %s was due",
                    round, buf, m);
    }
  }
  wsc_free(x);
  wsc_free(a);
  wsc_free(b);
  websock_server_free(srv);
  pthread_cond_destroy(&k.cv);
  pthread_mutex_destroy(&k.mu);
}
END_TEST

/* The policy the handler ran under, sent back as text. */
static void policy_on_event(websock_server *srv, const websock_event *ev,
                            void *ud) {
  (void)ud;
  if (ev->type != WEBSOCK_EVENT_MESSAGE)
    return;
  int p = sched_getscheduler(0);
  const char *name = p == SCHED_BATCH   ? "batch"
                     : p == SCHED_OTHER ? "other"
                                        : "else";
  websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, name, strlen(name));
}

/* What a message handler on an agent reports of its policy: |batch| -1
 * leaves the option at its default. */
static void policy_check(int agents, int batch, const char *want) {
  websock_config *cfg = tk_config(agents, policy_on_event, NULL);
  if (batch >= 0)
    ck_assert_int_eq(websock_config_set_agent_batch(cfg, batch), 0);
  int port;
  websock_server *srv = tk_start(cfg, &port);
  wsc *c = wsc_connect(port, "/", NULL);
  ck_assert_ptr_nonnull(c);
  char b[16];
  size_t n;
  for (int i = 0; i < 4; i++) { /* likely a turn of each agent */
    ck_assert_int_eq(wsc_send(c, WEBSOCK_OP_TEXT, "?", 1), 0);
    ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), 1);
    ck_assert_msg(n == strlen(want) && memcmp(b, want, n) == 0,
                  "agents=%d batch=%d: handler ran as %.*s, not %s", agents,
                  batch, (int)n, b, want);
  }
  wsc_free(c);
  websock_server_free(srv);
}

START_TEST(agents_run_as_sched_batch_unless_told_not_to) {
  policy_check(2, -1, "batch"); /* the default */
  policy_check(2, 1, "batch");
  policy_check(2, 0, "other");
  policy_check(0, -1, "other"); /* inline: the I/O thread is left alone */
  websock_config *cfg;
  ck_assert_int_eq(websock_config_new(&cfg), 0);
  ck_assert_int_eq(websock_config_set_agent_batch(cfg, 2), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_agent_batch(NULL, 1),
                   WEBSOCK_ERR_INVALID);
  websock_config_free(cfg);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sched");
  TCase *tc = tcase_create("strands");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, blocked_handler_holds_only_its_connection);
  tcase_add_test(tc, two_blocked_of_three_agents);
  tcase_add_test(tc, order_with_random_delays);
  tcase_add_test(tc, budget_bounds_a_flooding_connection);
  tcase_add_test(tc, open_handler_runs_before_any_broadcast);
  tcase_add_test(tc, agents_run_as_sched_batch_unless_told_not_to);
  tcase_add_test(tc, sends_of_two_agents_keep_their_causal_order);
  suite_add_tcase(s, tc);
  return tk_run(s);
}
