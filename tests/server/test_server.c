/* Server tests over real sockets: ordering across loops and agents, sends
 * from foreign threads racing disconnects, tags, lifetime, the allocation
 * counter, graceful stop, queued mode, hooks and argument checks. */
#include <errno.h>
#include <arpa/inet.h>
#include <check.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <websock.h>

#include "wsclient.h"

/* ---- stats -------------------------------------------------------------- */

static websock_stats stats_now(websock_server *srv) {
  websock_stats st;
  ck_assert_int_eq(websock_server_get_stats(srv, &st, sizeof st), 0);
  return st;
}

static websock_loop_stats loop_stats(websock_server *srv, unsigned i) {
  websock_loop_stats ls;
  ck_assert_int_eq(websock_server_get_loop_stats(srv, i, &ls, sizeof ls), 0);
  return ls;
}

static websock_agent_stats agent_stats(websock_server *srv, unsigned i) {
  websock_agent_stats as;
  ck_assert_int_eq(websock_server_get_agent_stats(srv, i, &as, sizeof as), 0);
  return as;
}

static uint64_t loop_accepted(websock_server *srv, unsigned i) {
  return loop_stats(srv, i).accepted;
}

static uint64_t loop_connections(websock_server *srv, unsigned i) {
  return loop_stats(srv, i).connections;
}

/* ---- a configurable test server --------------------------------------- */

typedef struct tsrv {
  websock_server *srv;
  int port;
  int tag_self; /* "tag" message: tag the conn "c<id>" */
  atomic_int opens, closes;
  atomic_int recursive_rc; /* result of join() from a callback */
} tsrv;

/* Echo; "id?" answers "id:<N>"; "tag" sets tag c<id>; "join" tries join. */
static void tsrv_on_event(websock_server *srv, const websock_event *ev,
                          void *ud) {
  tsrv *t = ud;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    atomic_fetch_add(&t->opens, 1);
    char b[64];
    int n = snprintf(b, sizeof b, "id:%" PRIu64, ev->id);
    websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, b, (size_t)n);
  } else if (ev->type == WEBSOCK_EVENT_CLOSE) {
    atomic_fetch_add(&t->closes, 1);
  } else if (ev->type == WEBSOCK_EVENT_MESSAGE) {
    if (ev->length == 3 && memcmp(ev->data, "tag", 3) == 0) {
      char tag[64];
      snprintf(tag, sizeof tag, "c%" PRIu64, ev->id);
      websock_server_set_tag(srv, ev->id, tag);
      websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, "tagged", 6);
      return;
    }
    if (ev->length == 4 && memcmp(ev->data, "join", 4) == 0) {
      atomic_store(&t->recursive_rc, websock_server_join(srv));
      websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, "joined", 6);
      return;
    }
    websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
  }
}

static tsrv *tsrv_start_spread(int io, int agents, int queued, int spread) {
  tsrv *t = calloc(1, sizeof *t);
  websock_config *cfg;
  ck_assert_int_eq(websock_config_new(&cfg), 0);
  websock_config_set_io_threads(cfg, io);
  ck_assert_int_eq(websock_config_set_spread(cfg, spread), 0);
  websock_config_set_agents(cfg, agents);
  websock_config_set_close_timeout(cfg, 2000);
  if (queued)
    websock_config_set_delivery(cfg, WEBSOCK_DELIVERY_QUEUED);
  else
    websock_config_set_event_callback(cfg, tsrv_on_event, t);
  ck_assert_int_eq(websock_server_new(&t->srv, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_start(t->srv), 0);
  t->port = websock_server_port(t->srv);
  ck_assert_int_gt(t->port, 0);
  return t;
}

static tsrv *tsrv_start(int io, int agents, int queued) {
  return tsrv_start_spread(io, agents, queued,
                           WEBSOCK_SPREAD_LEAST_CONNECTIONS);
}

static void tsrv_stop(tsrv *t) {
  ck_assert_int_eq(websock_server_stop(t->srv), 0);
  ck_assert_int_eq(websock_server_join(t->srv), 0);
  websock_server_free(t->srv);
  free(t);
}

/* Connects and reads the "id:N" greeting. */
static wsc *client_open(tsrv *t, uint64_t *id) {
  wsc *c = wsc_connect(t->port, "/", NULL);
  ck_assert_ptr_nonnull(c);
  char b[64];
  size_t n;
  ck_assert_int_eq(wsc_recv(c, b, sizeof b - 1, &n, 5000), 1);
  b[n] = 0;
  ck_assert_int_eq(strncmp(b, "id:", 3), 0);
  if (id)
    *id = strtoull(b + 3, NULL, 10);
  return c;
}

/* ---- ordering and spread ---------------------------------------------- */

static void order_run(int io, int agents) {
  enum { CLIENTS = 40, MSGS = 200 };
  tsrv *t = tsrv_start(io, agents, 0);
  wsc *c[CLIENTS];
  for (int i = 0; i < CLIENTS; i++)
    c[i] = client_open(t, NULL);
  /* Pipeline every message first, then check the echoes come back in
   * order: events of one connection must never overtake each other. */
  for (int i = 0; i < CLIENTS; i++) {
    for (int m = 0; m < MSGS; m++) {
      char b[32];
      int n = snprintf(b, sizeof b, "%d:%d", i, m);
      ck_assert_int_eq(wsc_send(c[i], 2, b, (size_t)n), 0);
    }
  }
  for (int i = 0; i < CLIENTS; i++) {
    for (int m = 0; m < MSGS; m++) {
      char b[32], want[32];
      size_t n;
      ck_assert_int_eq(wsc_recv(c[i], b, sizeof b - 1, &n, 10000), 2);
      b[n] = 0;
      snprintf(want, sizeof want, "%d:%d", i, m);
      ck_assert_str_eq(b, want);
    }
  }
  websock_stats st = stats_now(t->srv);
  ck_assert_uint_eq(st.connections, CLIENTS);
  ck_assert_uint_eq(st.messages_in, CLIENTS * MSGS);
  for (int i = 0; i < io; i++)
    ck_assert_uint_gt(loop_accepted(t->srv, (unsigned)i), 0); /* all worked */
  for (int a = 0; a < agents; a++) /* every agent ran */
    ck_assert_uint_gt(agent_stats(t->srv, (unsigned)a).events, 0);
  for (int i = 0; i < CLIENTS; i++)
    wsc_free(c[i]);
  tsrv_stop(t);
}

START_TEST(test_order_inline) {
  order_run(1, 0);
}
END_TEST
START_TEST(test_order_two_loops_inline) {
  order_run(2, 0);
}
END_TEST
START_TEST(test_order_agents) {
  order_run(2, 3);
}
END_TEST

/* ---- allocation counter stays flat under a steady load ---------------- */

static void alloc_run(int io, int agents) {
  enum { CLIENTS = 20 };
  tsrv *t = tsrv_start(io, agents, 0);
  wsc *c[CLIENTS];
  for (int i = 0; i < CLIENTS; i++)
    c[i] = client_open(t, NULL);
  uint8_t msg[100] = {0}, back[200];
  size_t n;
  uint64_t before = 0;
  for (int round = 0; round < 2000; round++) {
    if (round == 500) {
      websock_stats st;
      st = stats_now(t->srv);
      before = st.event_path_allocs;
    }
    for (int i = 0; i < CLIENTS; i++)
      ck_assert_int_eq(wsc_send(c[i], 2, msg, sizeof msg), 0);
    for (int i = 0; i < CLIENTS; i++)
      ck_assert_int_eq(wsc_recv(c[i], back, sizeof back, &n, 5000), 2);
  }
  websock_stats st;
  st = stats_now(t->srv);
  ck_assert_uint_eq(st.event_path_allocs, before);
  ck_assert_uint_gt(st.pool_size, 0);
  for (int i = 0; i < CLIENTS; i++)
    wsc_free(c[i]);
  tsrv_stop(t);
}

/* Six connections alternate over two loops under both policies; the three
 * on loop 1 close; two new ones then both go to the emptied loop with
 * LEAST_CONNECTIONS, and one to each loop with ROUND_ROBIN. */
static void spread_run(int spread, uint64_t want0, uint64_t want1) {
  tsrv *t = tsrv_start_spread(2, 0, 0, spread);
  wsc *c[8];
  for (int i = 0; i < 6; i++)
    c[i] = client_open(t, NULL);
  ck_assert_uint_eq(loop_accepted(t->srv, 0), 3);
  ck_assert_uint_eq(loop_accepted(t->srv, 1), 3);
  for (int i = 1; i < 6; i += 2) /* the first connection went to loop 0 */
    wsc_free(c[i]);
  for (int ms = 0; ms < 5000; ms += 10) {
    if (loop_connections(t->srv, 1) == 0)
      break;
    usleep(10000);
  }
  ck_assert_uint_eq(loop_connections(t->srv, 0), 3);
  ck_assert_uint_eq(loop_connections(t->srv, 1), 0);
  c[1] = client_open(t, NULL);
  c[3] = client_open(t, NULL);
  ck_assert_uint_eq(loop_accepted(t->srv, 0), want0);
  ck_assert_uint_eq(loop_accepted(t->srv, 1), want1);
  for (int i = 0; i < 4; i++)
    wsc_free(c[i]);
  wsc_free(c[4]);
  tsrv_stop(t);
}

START_TEST(test_spread_least_connections) {
  spread_run(WEBSOCK_SPREAD_LEAST_CONNECTIONS, 3, 5);
}
END_TEST

START_TEST(test_spread_round_robin) {
  spread_run(WEBSOCK_SPREAD_ROUND_ROBIN, 4, 4);
}
END_TEST

START_TEST(test_alloc_flat_inline) {
  alloc_run(1, 0);
}
END_TEST
START_TEST(test_alloc_flat_agents) {
  alloc_run(2, 2);
}
END_TEST

/* ---- sends from foreign threads racing connects and disconnects ------ */

/* Two sender threads send to the connection under test (by id and by tag),
 * to random older ids (gone or going), and now and then close their target,
 * while tagged bystanders that nobody sends to stay connected throughout.
 * Each logs the sends to the connection under test that returned 0, with a
 * tick from one clock shared with the closes. The client then checks, per
 * sender, that what it received is exactly the logged sequence when the
 * server did not close it, and a prefix of it holding every message sent
 * before the first successful close when it did; nothing else arrives, and
 * a close frame arrives exactly when a close returned 0. */

enum {
  RACE_SENDERS = 2,
  RACE_BYSTANDERS = 4,
  RACE_CYCLES = 600,
  RACE_LOG = 1 << 14,  /* logged sends per sender between two pauses */
  RACE_WINDOW_MS = 15, /* how long each client reads while sends race */
  RACE_CLOSE_SEQ = 0   /* seq of a log entry that records a close */
};

typedef struct race_entry {
  uint64_t target; /* id the send or close went to */
  uint64_t seq;    /* the sender's message number, RACE_CLOSE_SEQ: a close */
  uint64_t tick;   /* the shared clock: after a send, before a close */
} race_entry;

typedef struct race race;

typedef struct race_sender {
  race *r;
  int index;
  pthread_t th;
  atomic_uint_fast64_t seen; /* target read at the top of the iteration */
  size_t nlog;               /* entries in log; reset by main when paused */
  race_entry log[RACE_LOG];  /* sends (rc 0) and closes of the target */
} race_sender;

struct race {
  tsrv *t;
  atomic_int stop;
  atomic_uint_fast64_t cur;   /* connection under test; 0 pauses senders */
  uint64_t floor;             /* highest bystander id: never a target */
  atomic_uint_fast64_t clock; /* orders sends and closes across senders */
  atomic_long sent_old, refused;
  atomic_int bad_rc; /* a return code no send may give, or 0 */
  race_sender s[RACE_SENDERS];
};

static void race_log(race_sender *s, uint64_t target, uint64_t seq,
                     uint64_t tick) {
  s->log[s->nlog++] = (race_entry){target, seq, tick};
}

static void *race_sender_run(void *arg) {
  race_sender *s = arg;
  race *r = s->r;
  unsigned seed = 7u + (unsigned)s->index;
  uint64_t seq = RACE_CLOSE_SEQ;
  while (!atomic_load(&r->stop)) {
    /* Publish the target before using it and read it again, so that once
     * main has paused (cur = 0) and sees seen == 0, no send is in flight. */
    uint64_t cur = atomic_load(&r->cur);
    atomic_store(&s->seen, cur);
    if (!cur || atomic_load(&r->cur) != cur || s->nlog + 2 > RACE_LOG) {
      usleep(50);
      continue;
    }
    int to_cur = cur <= r->floor + 1 || rand_r(&seed) % 2;
    uint64_t id =
        to_cur ? cur
               : r->floor + 1 + (uint64_t)rand_r(&seed) % (cur - r->floor - 1);
    char b[96];
    int n = snprintf(b, sizeof b, "to:%" PRIu64 ":%d:%" PRIu64, id, s->index,
                     ++seq);
    int rc;
    if (rand_r(&seed) & 1) {
      rc = websock_server_send(r->t->srv, id, WEBSOCK_OP_TEXT, b, (size_t)n);
    } else {
      char tag[64];
      snprintf(tag, sizeof tag, "c%" PRIu64, id);
      rc = websock_server_send_tag(r->t->srv, tag, WEBSOCK_OP_TEXT, b,
                                   (size_t)n);
    }
    if (rc == 0) {
      uint64_t tick = atomic_fetch_add(&r->clock, 1);
      if (to_cur)
        race_log(s, id, seq, tick);
      else
        atomic_fetch_add(&r->sent_old, 1);
    } else if (rc == WEBSOCK_ERR_NO_SUCH_CLIENT || rc == WEBSOCK_ERR_CLOSING ||
               rc == WEBSOCK_ERR_BACKPRESSURE) {
      atomic_fetch_add(&r->refused, 1);
    } else {
      atomic_store(&r->bad_rc, rc);
    }
    /* Close old ids often (racing their disconnects), the connection under
     * test rarely, so that some clients are closed and most are not. */
    if (rand_r(&seed) % (to_cur ? 256 : 8) == 0) {
      uint64_t tick = atomic_fetch_add(&r->clock, 1);
      if (websock_server_close(r->t->srv, id, 1000, "race") == 0 && to_cur)
        race_log(s, id, RACE_CLOSE_SEQ, tick);
    }
    usleep(100);
  }
  return NULL;
}

/* Stops the senders and waits until neither has a send in flight. */
static void race_pause(race *r) {
  atomic_store(&r->cur, 0);
  for (int i = 0; i < RACE_SENDERS; i++) {
    int waited = 0;
    while (atomic_load(&r->s[i].seen) != 0) {
      ck_assert_int_lt(waited++, 100000); /* 5 s at most */
      usleep(50);
    }
  }
}

/* What one client received: the seqs of each sender, in arrival order. */
typedef struct race_got {
  uint64_t seq[RACE_SENDERS][RACE_LOG];
  size_t n[RACE_SENDERS];
  int closed; /* a close frame arrived */
} race_got;

/* Takes one frame for connection |id|: a "to:" message must name |id| and
 * come from a known sender; a close frame must be the senders' 1000 "race".
 * Returns the opcode (or -2 on timeout). */
static int race_take(wsc *c, uint64_t id, race_got *g, char *b, size_t cap,
                     int timeout_ms) {
  size_t n;
  int op = wsc_recv(c, b, cap - 1, &n, timeout_ms);
  if (op == -2)
    return op;
  ck_assert_msg(op == 1 || op == 8, "unexpected opcode %d", op);
  b[n] = 0;
  if (op == 8) {
    ck_assert_uint_ge(n, 2);
    ck_assert_int_eq((uint8_t)b[0] << 8 | (uint8_t)b[1], 1000);
    ck_assert_str_eq(b + 2, "race");
    g->closed = 1;
    return op;
  }
  if (strncmp(b, "to:", 3) != 0)
    return op;
  uint64_t target, seq;
  int sender;
  ck_assert_int_eq(
      sscanf(b, "to:%" SCNu64 ":%d:%" SCNu64, &target, &sender, &seq), 3);
  ck_assert_uint_eq(target, id); /* never another connection's message */
  ck_assert(sender >= 0 && sender < RACE_SENDERS);
  ck_assert_uint_lt(g->n[sender], RACE_LOG);
  g->seq[sender][g->n[sender]++] = seq;
  return op;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Checks what connection |id| received against the senders' logs (the
 * senders are paused). Returns the number of messages it received. */
static size_t race_verify(race *r, uint64_t id, const race_got *g,
                          size_t *logged) {
  uint64_t close_tick = UINT64_MAX;
  for (int i = 0; i < RACE_SENDERS; i++)
    for (size_t k = 0; k < r->s[i].nlog; k++) {
      const race_entry *e = &r->s[i].log[k];
      if (e->target == id && e->seq == RACE_CLOSE_SEQ && e->tick < close_tick)
        close_tick = e->tick;
    }
  /* A close that returned 0 is always delivered, and nothing else closes. */
  ck_assert_int_eq(g->closed, close_tick != UINT64_MAX);
  size_t got = 0;
  for (int i = 0; i < RACE_SENDERS; i++) {
    size_t m = 0; /* logged sends of sender i to id, in order */
    for (size_t k = 0; k < r->s[i].nlog; k++) {
      const race_entry *e = &r->s[i].log[k];
      if (e->target != id || e->seq == RACE_CLOSE_SEQ)
        continue;
      if (m < g->n[i]) {
        /* In order, no duplicates, nothing that was not sent. */
        ck_assert_uint_eq(g->seq[i][m], e->seq);
      } else {
        /* Not received: only allowed after the close began. */
        ck_assert_msg(e->tick > close_tick,
                      "id %" PRIu64 ": sender %d's message %" PRIu64
                      " was sent (tick %" PRIu64 ", close at %" PRIu64
                      ") but never arrived",
                      id, i, e->seq, e->tick, close_tick);
      }
      m++;
    }
    ck_assert_uint_le(g->n[i], m); /* nothing beyond what was sent */
    got += g->n[i];
    *logged += m;
  }
  return got;
}

START_TEST(test_foreign_send_races) {
  static race r;
  static race_got g;
  memset(&r, 0, sizeof r);
  r.t = tsrv_start(2, 2, 0);
  /* Bystanders on both loops: any message they get was misdelivered. */
  wsc *by[RACE_BYSTANDERS];
  char b[128];
  for (int i = 0; i < RACE_BYSTANDERS; i++) {
    by[i] = client_open(r.t, &r.floor);
    size_t n;
    ck_assert_int_eq(wsc_send(by[i], 1, "tag", 3), 0);
    ck_assert_int_eq(wsc_recv(by[i], b, sizeof b - 1, &n, 5000), 1);
  }
  for (int i = 0; i < RACE_SENDERS; i++) {
    r.s[i].r = &r;
    r.s[i].index = i;
    ck_assert_int_eq(pthread_create(&r.s[i].th, NULL, race_sender_run, &r.s[i]),
                     0);
  }
  size_t delivered = 0, logged = 0;
  int closed_cycles = 0;
  for (int k = 0; k < RACE_CYCLES; k++) {
    /* The senders still race the previous client's disconnect here. */
    uint64_t id;
    wsc *c = client_open(r.t, &id);
    ck_assert_int_eq(wsc_send(c, 1, "tag", 3), 0);
    size_t n;
    ck_assert_int_eq(wsc_recv(c, b, sizeof b - 1, &n, 5000), 1);
    b[n] = 0;
    ck_assert_str_eq(b, "tagged"); /* nothing for older ids came first */
    race_pause(&r);
    for (int i = 0; i < RACE_SENDERS; i++)
      r.s[i].nlog = 0;
    memset(&g, 0, sizeof g);
    atomic_store(&r.cur, id);
    uint64_t end = now_ms() + RACE_WINDOW_MS;
    for (uint64_t t = now_ms(); t < end && !g.closed; t = now_ms())
      if (race_take(c, id, &g, b, sizeof b, (int)(end - t)) == -2)
        break;
    race_pause(&r);
    /* Everything sent so far is queued before the echo of "sync". */
    if (!g.closed) {
      ck_assert_int_eq(wsc_send(c, 1, "sync", 4), 0);
      for (;;) {
        int op = race_take(c, id, &g, b, sizeof b, 5000);
        ck_assert_int_ne(op, -2);
        if (op == 8 || (op == 1 && strcmp(b, "sync") == 0))
          break;
      }
    }
    delivered += race_verify(&r, id, &g, &logged);
    closed_cycles += g.closed;
    /* Let the senders race this client's disconnect. */
    atomic_store(&r.cur, id);
    if (k % 2)
      wsc_drop(c); /* abortive */
    else
      wsc_free(c);
  }
  race_pause(&r);
  atomic_store(&r.stop, 1);
  for (int i = 0; i < RACE_SENDERS; i++)
    pthread_join(r.s[i].th, NULL);
  ck_assert_int_eq(atomic_load(&r.bad_rc), 0);
  /* The bystanders got nothing but the echo of their "sync". */
  for (int i = 0; i < RACE_BYSTANDERS; i++) {
    size_t n;
    ck_assert_int_eq(wsc_send(by[i], 1, "sync", 4), 0);
    ck_assert_int_eq(wsc_recv(by[i], b, sizeof b - 1, &n, 5000), 1);
    b[n] = 0;
    ck_assert_str_eq(b, "sync");
    wsc_free(by[i]);
  }
  /* Both outcomes happened, and every message sent to a client that was
   * not closed arrived (checked per client above). */
  ck_assert_int_gt(closed_cycles, 0);
  ck_assert_int_lt(closed_cycles, RACE_CYCLES);
  ck_assert_uint_gt(delivered, 0);
  ck_assert_uint_le(delivered, logged);
  ck_assert_int_gt(atomic_load(&r.sent_old) + atomic_load(&r.refused), 0);
  ck_assert_int_gt(atomic_load(&r.refused), 0);
  tsrv_stop(r.t);
}
END_TEST

/* ---- tags ------------------------------------------------------------- */

START_TEST(test_tags) {
  tsrv *t = tsrv_start(2, 1, 0);
  uint64_t a, b;
  wsc *ca = client_open(t, &a);
  wsc *cb = client_open(t, &b);
  ck_assert_int_eq(websock_server_set_tag(t->srv, a, "alice"), 0);
  ck_assert_int_eq(websock_server_set_tag(t->srv, a, "alice"), 0);
  ck_assert_int_eq(websock_server_set_tag(t->srv, b, "alice"),
                   WEBSOCK_ERR_TAG_TAKEN);
  uint64_t found = 0;
  ck_assert_int_eq(websock_server_find_tag(t->srv, "alice", &found), 0);
  ck_assert_uint_eq(found, a);
  char buf[32];
  ck_assert_int_eq(websock_server_get_tag(t->srv, a, buf, sizeof buf), 5);
  ck_assert_str_eq(buf, "alice");
  ck_assert_int_eq(websock_server_get_tag(t->srv, b, buf, sizeof buf), 0);
  /* Re-tagging releases the old tag. */
  ck_assert_int_eq(websock_server_set_tag(t->srv, a, "alice2"), 0);
  ck_assert_int_eq(websock_server_set_tag(t->srv, b, "alice"), 0);
  ck_assert_int_eq(websock_server_send_tag(t->srv, "alice", 1, "x", 1), 0);
  char m[8];
  size_t n;
  ck_assert_int_eq(wsc_recv(cb, m, sizeof m, &n, 5000), 1);
  ck_assert_int_eq(websock_server_send_tag(t->srv, "nobody", 1, "x", 1),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  /* A tag is released when its connection ends. */
  wsc_free(cb);
  int rc = WEBSOCK_ERR_TAG_TAKEN;
  for (int i = 0; i < 500 && rc == WEBSOCK_ERR_TAG_TAKEN; i++) {
    rc = websock_server_set_tag(t->srv, a, "alice");
    if (rc)
      usleep(2000);
  }
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(websock_server_set_tag(t->srv, a, NULL), 0);
  ck_assert_int_eq(websock_server_find_tag(t->srv, "alice", &found),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  ck_assert_int_eq(websock_server_set_tag(t->srv, a, big), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_set_tag(t->srv, a, ""), WEBSOCK_ERR_INVALID);
  wsc_free(ca);
  tsrv_stop(t);
}
END_TEST

/* More tagged connections than the tag table's first buckets: the table
 * grows, and every tag still finds its connection and is released. */
START_TEST(test_many_tags) {
  enum { N = 300 };
  tsrv *t = tsrv_start(2, 0, 0);
  wsc *c[N];
  uint64_t id[N];
  char tag[32];
  for (int i = 0; i < N; i++) {
    c[i] = client_open(t, &id[i]);
    snprintf(tag, sizeof tag, "user-%d", i);
    ck_assert_int_eq(websock_server_set_tag(t->srv, id[i], tag), 0);
  }
  for (int i = 0; i < N; i++) {
    uint64_t found = 0;
    snprintf(tag, sizeof tag, "user-%d", i);
    ck_assert_int_eq(websock_server_find_tag(t->srv, tag, &found), 0);
    ck_assert_uint_eq(found, id[i]);
    ck_assert_int_eq(websock_server_send_tag(t->srv, tag, 1, tag, strlen(tag)),
                     0);
  }
  for (int i = 0; i < N; i++) {
    char m[32];
    size_t n;
    ck_assert_int_eq(wsc_recv(c[i], m, sizeof m - 1, &n, 5000), 1);
    m[n] = 0;
    snprintf(tag, sizeof tag, "user-%d", i);
    ck_assert_str_eq(m, tag);
    wsc_free(c[i]);
  }
  /* Closes are noticed asynchronously: wait for each tag to go. */
  for (int i = 0; i < N; i++) {
    uint64_t found;
    snprintf(tag, sizeof tag, "user-%d", i);
    for (int ms = 0;
         ms < 5000 && websock_server_find_tag(t->srv, tag, &found) == 0;
         ms += 10)
      usleep(10000);
    ck_assert_int_eq(websock_server_find_tag(t->srv, tag, &found),
                     WEBSOCK_ERR_NO_SUCH_CLIENT);
  }
  tsrv_stop(t);
}
END_TEST

/* ---- lifetime: ids outlive their connections safely ------------------- */

START_TEST(test_stale_id) {
  tsrv *t = tsrv_start(1, 2, 0);
  uint64_t id;
  wsc *c = client_open(t, &id);
  wsc_drop(c);
  int rc = 0;
  for (int i = 0; i < 500 && rc == 0; i++) {
    rc = websock_server_send(t->srv, id, WEBSOCK_OP_TEXT, "x", 1);
    if (rc == 0)
      usleep(2000);
  }
  ck_assert(rc == WEBSOCK_ERR_NO_SUCH_CLIENT || rc == WEBSOCK_ERR_CLOSING);
  for (int i = 0; i < 500; i++) {
    rc = websock_server_send(t->srv, id, WEBSOCK_OP_TEXT, "x", 1);
    if (rc == WEBSOCK_ERR_NO_SUCH_CLIENT)
      break;
    usleep(2000);
  }
  ck_assert_int_eq(rc, WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock_server_close(t->srv, id, 1000, NULL),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock_server_set_tag(t->srv, id, "x"),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock_server_set_user_data(t->srv, id, t),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock_server_send(t->srv, 999999, 1, "x", 1),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  /* Ids are never reused. */
  uint64_t id2;
  wsc *c2 = client_open(t, &id2);
  ck_assert_uint_gt(id2, id);
  wsc_free(c2);
  tsrv_stop(t);
}
END_TEST

/* ---- graceful stop delivers queued sends before close 1001 ------------- */

static void stop_drain_run(int agents) {
  tsrv *t = tsrv_start(2, agents, 0);
  uint64_t id;
  wsc *c = client_open(t, &id);
  enum { N = 2000 };
  for (int i = 0; i < N; i++) {
    char b[16];
    int n = snprintf(b, sizeof b, "%d", i);
    ck_assert_int_eq(websock_server_send(t->srv, id, 1, b, (size_t)n), 0);
  }
  websock_server_stop(t->srv);
  for (int i = 0; i < N; i++) {
    char b[16], want[16];
    size_t n;
    ck_assert_int_eq(wsc_recv(c, b, sizeof b - 1, &n, 5000), 1);
    b[n] = 0;
    snprintf(want, sizeof want, "%d", i);
    ck_assert_str_eq(b, want);
  }
  uint8_t cl[64];
  size_t n;
  ck_assert_int_eq(wsc_recv(c, cl, sizeof cl, &n, 5000), 8);
  ck_assert_uint_ge(n, 2);
  ck_assert_int_eq(cl[0] << 8 | cl[1], 1001);
  /* Answer the close so the server can finish at once. */
  wsc_send(c, 8, cl, 2);
  ck_assert_int_eq(websock_server_join(t->srv), 0);
  ck_assert_int_eq(websock_server_send(t->srv, id, 1, "x", 1),
                   WEBSOCK_ERR_NO_SUCH_CLIENT);
  ck_assert_int_eq(websock_server_broadcast(t->srv, 1, "x", 1, 0),
                   WEBSOCK_ERR_STATE);
  wsc_free(c);
  websock_server_free(t->srv);
  ck_assert_int_eq(atomic_load(&t->opens), atomic_load(&t->closes));
  free(t);
}

START_TEST(test_stop_drains_inline) {
  stop_drain_run(0);
}
END_TEST
START_TEST(test_stop_drains_agents) {
  stop_drain_run(2);
}
END_TEST

/* ---- broadcast -------------------------------------------------------- */

START_TEST(test_broadcast) {
  tsrv *t = tsrv_start(2, 2, 0);
  enum { N = 10 };
  wsc *c[N];
  uint64_t ids[N];
  for (int i = 0; i < N; i++)
    c[i] = client_open(t, &ids[i]);
  ck_assert_int_eq(websock_server_broadcast(t->srv, 1, "all", 3, ids[0]), 0);
  for (int i = 1; i < N; i++) {
    char b[8];
    size_t n;
    ck_assert_int_eq(wsc_recv(c[i], b, sizeof b, &n, 5000), 1);
    ck_assert_int_eq(memcmp(b, "all", 3), 0);
  }
  char b[8];
  size_t n;
  ck_assert_int_eq(wsc_recv(c[0], b, sizeof b, &n, 200), -2);
  for (int i = 0; i < N; i++)
    wsc_free(c[i]);
  tsrv_stop(t);
}
END_TEST

/* ---- re-entry from a callback is refused, not deadlocked -------------- */

START_TEST(test_join_from_callback) {
  tsrv *t = tsrv_start(1, 1, 0);
  wsc *c = client_open(t, NULL);
  wsc_send(c, 1, "join", 4);
  char b[16];
  size_t n;
  ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), 1);
  ck_assert_int_eq(atomic_load(&t->recursive_rc), WEBSOCK_ERR_RECURSIVE);
  wsc_free(c);
  tsrv_stop(t);
}
END_TEST

/* ---- queued delivery -------------------------------------------------- */

START_TEST(test_queued_mode) {
  tsrv *t = tsrv_start(2, 0, 1);
  int efd = websock_server_event_fd(t->srv);
  ck_assert_int_ge(efd, 0);
  wsc *c = wsc_connect(t->port, "/q?x=1", NULL);
  ck_assert_ptr_nonnull(c);
  struct pollfd p = {efd, POLLIN, 0};
  ck_assert_int_eq(poll(&p, 1, 5000), 1);
  websock_event *ev = NULL;
  ck_assert_int_eq(websock_server_poll(t->srv, 0, &ev), 1);
  ck_assert_int_eq(ev->type, WEBSOCK_EVENT_OPEN);
  ck_assert_str_eq(ev->path, "/q");
  ck_assert_str_eq(ev->query, "x=1");
  uint64_t id = ev->id;
  websock_event_free(ev);
  wsc_send(c, 2, "abc", 3);
  ck_assert_int_eq(websock_server_poll(t->srv, 5000, &ev), 1);
  ck_assert_int_eq(ev->type, WEBSOCK_EVENT_MESSAGE);
  ck_assert_int_eq(ev->opcode, WEBSOCK_OP_BINARY);
  ck_assert_uint_eq(ev->length, 3);
  ck_assert_int_eq(memcmp(ev->data, "abc", 3), 0);
  ck_assert_int_eq(
      websock_server_send(t->srv, id, ev->opcode, ev->data, ev->length), 0);
  websock_event_free(ev);
  char b[8];
  size_t n;
  ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), 2);
  ck_assert_int_eq(websock_server_poll(t->srv, 0, &ev), 0);
  wsc_free(c);
  ck_assert_int_eq(websock_server_poll(t->srv, 5000, &ev), 1);
  ck_assert_int_eq(ev->type, WEBSOCK_EVENT_CLOSE);
  ck_assert_int_eq(ev->close_code, 1006);
  websock_event_free(ev);
  websock_stats big[2];
  ck_assert_int_eq(websock_server_get_stats(t->srv, big, sizeof big[0]), 0);
  /* A caller built against a newer header passes a larger struct: only the
   * fields this library knows are written. */
  memset(big, 0xAB, sizeof big);
  ck_assert_int_eq(websock_server_get_stats(t->srv, big, sizeof big), 0);
  ck_assert_uint_eq(((unsigned char *)big)[sizeof big - 1], 0xAB);
  ck_assert_int_eq(websock_server_get_stats(t->srv, big, 8),
                   WEBSOCK_ERR_INVALID);
  websock_loop_stats ls;
  ck_assert_int_eq(websock_server_get_loop_stats(t->srv, 99, &ls, sizeof ls),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_get_loop_stats(t->srv, 0, &ls, 4),
                   WEBSOCK_ERR_INVALID);
  websock_agent_stats as; /* queued mode: no agents */
  ck_assert_int_eq(websock_server_get_agent_stats(t->srv, 0, &as, sizeof as),
                   WEBSOCK_ERR_INVALID);
  tsrv_stop(t);
}
END_TEST

/* ---- handshake hook and static routes --------------------------------- */

/* What the hook saw; checked on the test thread (a failing ck_assert on an
 * I/O thread would not end the test cleanly). */
static atomic_int hook_plain, hook_upgrades, hook_bad;

static int hook(websock_server *srv, websock_request *req, void *ud) {
  (void)srv;
  (void)ud;
  const char *path = websock_request_path(req);
  if (!websock_request_is_upgrade(req)) {
    atomic_fetch_add(&hook_plain, 1);
    if (strcmp(path, "/hello") == 0) {
      const char *q = websock_request_query(req);
      if (strcmp(websock_request_method(req), "GET") != 0 || !q ||
          strcmp(q, "name=x") != 0)
        atomic_store(&hook_bad, 1);
      if (websock_request_respond(req, 200, "text/plain", "hi", 2) != 0 ||
          websock_request_respond(req, 200, NULL, "again", 5) !=
              WEBSOCK_ERR_STATE)
        atomic_store(&hook_bad, 2);
      return 0;
    }
    if (strcmp(path, "/teapot") == 0)
      return 418;
    return 0; /* /page falls through to its route, others get 426 */
  }
  atomic_fetch_add(&hook_upgrades, 1);
  if (websock_request_add_response_header(req, "Content-Length", "1") !=
          WEBSOCK_ERR_INVALID ||
      websock_request_add_response_header(req, "X-A", "b\r\nX-B: c") !=
          WEBSOCK_ERR_INVALID ||
      websock_request_respond(req, 101, NULL, NULL, 0) != WEBSOCK_ERR_INVALID)
    atomic_store(&hook_bad, 3);
  if (strcmp(path, "/forbidden") == 0)
    return 403;
  if (strcmp(path, "/login") == 0) {
    /* The answer and its header lines win over the return value. */
    if (websock_request_add_response_header(req, "WWW-Authenticate",
                                            "Bearer realm=\"chat\"") != 0 ||
        websock_request_respond(req, 401, NULL, "login\n", 6) != 0 ||
        websock_request_respond(req, 401, NULL, NULL, 0) != WEBSOCK_ERR_STATE)
      atomic_store(&hook_bad, 5);
    return 0;
  }
  if (strcmp(path, "/moved") == 0) {
    if (websock_request_add_response_header(req, "Location", "/fine") != 0 ||
        websock_request_respond(req, 302, NULL, NULL, 0) != 0)
      atomic_store(&hook_bad, 6);
    return 403;
  }
  if (websock_request_add_response_header(req, "Set-Cookie", "s=1") != 0)
    atomic_store(&hook_bad, 7);
  const char *host = websock_request_header(req, "host");
  if (!host || strcmp(host, "127.0.0.1") != 0 ||
      !websock_request_remote_addr(req))
    atomic_store(&hook_bad, 4);
  return 0;
}

/* GETs |path| and checks status, Content-Type, Content-Length, Connection
 * and the body. */
static void http_check(int port, const char *method, const char *path,
                       int status, const char *type, const char *body,
                       http_resp *r) {
  char req[256], v[128], want_len[32];
  snprintf(req, sizeof req,
           "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
           method, path);
  ck_assert_int_eq(http_exchange(port, req, r, 5000), 0);
  ck_assert_int_eq(r->status, status);
  ck_assert_ptr_nonnull(http_header(r, "Content-Type", v, sizeof v));
  ck_assert_str_eq(v, type);
  snprintf(want_len, sizeof want_len, "%zu", r->body_len);
  ck_assert_ptr_nonnull(http_header(r, "Content-Length", v, sizeof v));
  ck_assert_str_eq(v, want_len);
  ck_assert_ptr_nonnull(http_header(r, "Connection", v, sizeof v));
  ck_assert_str_eq(v, "close");
  if (body)
    ck_assert_str_eq(r->body, body);
}

START_TEST(test_handshake_hook) {
  websock_config *cfg;
  websock_server *srv;
  atomic_store(&hook_plain, 0);
  atomic_store(&hook_upgrades, 0);
  atomic_store(&hook_bad, 0);
  websock_config_new(&cfg);
  websock_config_set_handshake_callback(cfg, hook, NULL);
  websock_config_add_http_route(cfg, "/page", "text/html", "<p>x</p>", 8);
  ck_assert_int_eq(websock_server_new(&srv, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_start(srv), 0);
  int port = websock_server_port(srv), status = 0;
  http_resp r;
  char v[128];
  /* The hook answers /hello itself. */
  http_check(port, "GET", "/hello?name=x", 200, "text/plain", "hi", &r);
  ck_assert_int_eq(strncmp(r.head, "HTTP/1.1 200 OK\r\n", 17), 0);
  /* The hook lets /page through to its static route. */
  http_check(port, "GET", "/page", 200, "text/html", "<p>x</p>", &r);
  ck_assert_uint_eq(r.body_len, 8);
  /* The route serves GET and HEAD only. */
  http_check(port, "POST", "/page", 405, "text/plain", NULL, &r);
  ck_assert_ptr_nonnull(http_header(&r, "Allow", v, sizeof v));
  ck_assert_str_eq(v, "GET");
  ck_assert_ptr_null(strstr(r.body, "<p>x</p>"));
  /* A status from the hook is the answer. */
  http_check(port, "GET", "/teapot", 418, "text/plain", NULL, &r);
  /* Neither hook nor route: 426 says how to upgrade. */
  http_check(port, "GET", "/nowhere", 426, "text/plain", NULL, &r);
  ck_assert_ptr_nonnull(http_header(&r, "Upgrade", v, sizeof v));
  ck_assert_str_eq(v, "websocket");
  ck_assert_ptr_nonnull(http_header(&r, "Sec-WebSocket-Version", v, sizeof v));
  ck_assert_str_eq(v, "13");
  ck_assert_int_eq(atomic_load(&hook_plain), 5);
  /* Upgrades: the hook refuses one and accepts the other. */
  ck_assert_ptr_null(wsc_connect(port, "/forbidden", &status));
  ck_assert_int_eq(status, 403);
  wsc *ok = wsc_connect(port, "/fine", &status);
  ck_assert_ptr_nonnull(ok);
  ck_assert_int_eq(status, 101);
  wsc_free(ok);
  /* Answers with header lines: a 401 with its challenge, a redirect. */
  static const char up_fmt[] = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n";
  char req[512];
  snprintf(req, sizeof req, up_fmt, "/login");
  ck_assert_int_eq(http_exchange(port, req, &r, 5000), 0);
  ck_assert_int_eq(r.status, 401);
  ck_assert_ptr_nonnull(http_header(&r, "WWW-Authenticate", v, sizeof v));
  ck_assert_str_eq(v, "Bearer realm=\"chat\"");
  ck_assert_str_eq(r.body, "login\n");
  snprintf(req, sizeof req, up_fmt, "/moved");
  ck_assert_int_eq(http_exchange(port, req, &r, 5000), 0);
  ck_assert_int_eq(r.status, 302);
  ck_assert_ptr_nonnull(http_header(&r, "Location", v, sizeof v));
  ck_assert_str_eq(v, "/fine");
  ck_assert_int_eq(atomic_load(&hook_upgrades), 4);
  ck_assert_int_eq(atomic_load(&hook_bad), 0);
  websock_server_free(srv);
}
END_TEST

/* ---- argument checks -------------------------------------------------- */

START_TEST(test_null_handles) {
  websock_config *cfg = NULL;
  ck_assert_int_eq(websock_config_new(NULL), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_agents(NULL, 1), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_new(NULL, NULL), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_start(NULL), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_stop(NULL), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_join(NULL), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_send(NULL, 1, 1, "x", 1),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_send_tag(NULL, "a", 1, "x", 1),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_broadcast(NULL, 1, "x", 1, 0),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_close(NULL, 1, 1000, NULL),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_set_tag(NULL, 1, "a"), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_poll(NULL, 0, NULL), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_get_stats(NULL, NULL, 0),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_port(NULL), WEBSOCK_ERR_INVALID);
  websock_server_free(NULL);
  websock_config_free(NULL);
  websock_event_free(NULL);
  ck_assert_str_eq(websock_strerror(WEBSOCK_ERR_TAG_TAKEN),
                   "tag taken by another connection");
  ck_assert_int_eq(websock_config_new(&cfg), 0);
  ck_assert_int_eq(websock_config_set_io_threads(cfg, 0), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_spread(cfg, 2), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_spread(NULL, 0), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_listen(cfg, "127.0.0.1", 70000),
                   WEBSOCK_ERR_INVALID);
  websock_server *srv;
  ck_assert_int_eq(websock_server_new(&srv, cfg), 0);
  ck_assert_int_eq(websock_server_port(srv), WEBSOCK_ERR_STATE);
  ck_assert_int_eq(websock_server_join(srv), WEBSOCK_ERR_STATE);
  ck_assert_int_eq(websock_server_poll(srv, 0, &(websock_event *){0}),
                   WEBSOCK_ERR_STATE);
  ck_assert_int_eq(websock_server_send(srv, 1, 1, "\xff", 1),
                   WEBSOCK_ERR_BAD_UTF8);
  ck_assert_int_eq(websock_server_send(srv, 1, 7, "x", 1), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_close(srv, 1, 1005, NULL),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_server_ping(srv, 1, cfg, 126), WEBSOCK_ERR_TOO_BIG);
  websock_server_free(srv);
  /* A second server cannot bind the same port. */
  websock_server *a, *b;
  websock_config_set_listen(cfg, "127.0.0.1", 0);
  ck_assert_int_eq(websock_server_new(&a, cfg), 0);
  ck_assert_int_eq(websock_server_start(a), 0);
  ck_assert_int_eq(websock_server_start(a), WEBSOCK_ERR_STATE);
  websock_config_set_listen(cfg, "127.0.0.1", websock_server_port(a));
  ck_assert_int_eq(websock_server_new(&b, cfg), 0);
  int err = -1;
  ck_assert_str_eq(websock_server_last_error(b, &err), "");
  ck_assert_int_eq(err, 0);
  ck_assert_int_eq(websock_server_start(b), WEBSOCK_ERR_ADDRESS);
  char want[96];
  snprintf(want, sizeof want,
           "cannot listen on 127.0.0.1:%d: address already in use",
           websock_server_port(a));
  ck_assert_str_eq(websock_server_last_error(b, &err), want);
  ck_assert_int_eq(err, EADDRINUSE);
  websock_server_free(b);
  websock_server_free(a);
  /* A name that does not resolve says so. */
  websock_config_set_listen(cfg, "no-such-host.invalid", 0);
  ck_assert_int_eq(websock_server_new(&b, cfg), 0);
  ck_assert_int_eq(websock_server_start(b), WEBSOCK_ERR_ADDRESS);
  ck_assert_msg(strncmp(websock_server_last_error(b, &err),
                        "cannot resolve the address to listen on, "
                        "\"no-such-host.invalid\": ",
                        64) == 0,
                "got %s", websock_server_last_error(b, NULL));
  ck_assert_int_eq(err, 0);
  websock_server_free(b);
  websock_config_free(cfg);
}
END_TEST

/* Stopping to accept keeps the established connections served; new
 * clients are refused. */
START_TEST(test_stop_accepting) {
  tsrv *t = tsrv_start(2, 0, 0);
  wsc *c = client_open(t, NULL);
  ck_assert_int_eq(websock_server_stop_accepting(t->srv), 0);
  wsc *late = NULL;
  for (int i = 0; i < 100; i++) { /* the loop closes it within a moment */
    late = wsc_connect(t->port, "/", NULL);
    if (!late)
      break;
    wsc_free(late);
    usleep(20000);
  }
  ck_assert_ptr_null(late);
  uint8_t b[16];
  size_t n;
  ck_assert_int_eq(wsc_send(c, WEBSOCK_OP_TEXT, "still", 5), 0);
  ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), WEBSOCK_OP_TEXT);
  ck_assert_mem_eq(b, "still", 5);
  wsc_free(c);
  tsrv_stop(t);
  websock_server *fresh;
  websock_config *cfg;
  websock_config_new(&cfg);
  ck_assert_int_eq(websock_server_new(&fresh, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_stop_accepting(fresh), WEBSOCK_ERR_STATE);
  websock_server_free(fresh);
}
END_TEST

/* ---- timeouts: slow handshake, idle peers, keepalive pings ------------ */

static websock_server *timeout_server(unsigned hs_ms, unsigned idle_ms,
                                      unsigned ping_ms, int *port) {
  websock_config *cfg;
  websock_server *srv;
  websock_config_new(&cfg);
  websock_config_set_handshake_timeout(cfg, hs_ms);
  websock_config_set_idle_timeout(cfg, idle_ms);
  websock_config_set_ping_interval(cfg, ping_ms);
  websock_config_set_close_timeout(cfg, 300);
  ck_assert_int_eq(websock_server_new(&srv, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_start(srv), 0);
  *port = websock_server_port(srv);
  return srv;
}

START_TEST(test_handshake_timeout) {
  int port;
  websock_server *srv = timeout_server(300, 0, 0, &port);
  /* A client that connects and never finishes its request is dropped. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(send(fd, "GET / HTTP/1.1\r\n", 16, 0), 16);
  struct pollfd p = {fd, POLLIN, 0};
  ck_assert_int_eq(poll(&p, 1, 5000), 1);
  char b[16];
  ck_assert_int_le(recv(fd, b, sizeof b, 0), 0); /* EOF or reset */
  close(fd);
  websock_server_free(srv);
}
END_TEST

START_TEST(test_idle_timeout_closes) {
  int port;
  websock_server *srv = timeout_server(5000, 300, 0, &port);
  wsc *c = wsc_connect(port, "/", NULL);
  ck_assert_ptr_nonnull(c);
  uint8_t b[64];
  size_t n;
  ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), 8);
  ck_assert_int_eq(b[0] << 8 | b[1], 1001);
  wsc_free(c);
  websock_server_free(srv);
}
END_TEST

START_TEST(test_keepalive_ping) {
  int port;
  websock_server *srv = timeout_server(5000, 1500, 200, &port);
  wsc *c = wsc_connect(port, "/", NULL);
  ck_assert_ptr_nonnull(c);
  uint8_t b[64];
  size_t n;
  /* Silent peer gets pinged; answering keeps it open past the idle time. */
  for (int i = 0; i < 10; i++) {
    ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), 9);
    ck_assert_int_eq(wsc_send(c, 10, b, n), 0);
  }
  websock_stats st;
  st = stats_now(srv);
  ck_assert_uint_eq(st.connections, 1);
  wsc_free(c);
  websock_server_free(srv);
}
END_TEST

/* The CLOSE event of a connection the server closed itself, and the peer
 * never answered: our code and our reason. */
static char ka_reason[64];
static atomic_int ka_code;
static void ka_on_event(websock_server *srv, const websock_event *ev,
                        void *ud) {
  (void)srv;
  (void)ud;
  if (ev->type == WEBSOCK_EVENT_CLOSE && !atomic_load(&ka_code)) {
    snprintf(ka_reason, sizeof ka_reason, "%.*s", (int)ev->length,
             (const char *)ev->data);
    atomic_store(&ka_code, ev->close_code);
  }
}

/* A peer that stops answering the keepalive pings is closed with 1011;
 * one that answers stays. */
START_TEST(test_keepalive_ping_timeout) {
  websock_config *cfg;
  websock_server *srv;
  websock_config_new(&cfg);
  atomic_store(&ka_code, 0);
  websock_config_set_event_callback(cfg, ka_on_event, NULL);
  websock_config_set_ping_interval(cfg, 150);
  websock_config_set_ping_timeout(cfg, 600);
  websock_config_set_close_timeout(cfg, 300);
  ck_assert_int_eq(websock_server_new(&srv, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_start(srv), 0);
  int port = websock_server_port(srv);
  wsc *mute = wsc_connect(port, "/", NULL);
  wsc *live = wsc_connect(port, "/", NULL);
  ck_assert_ptr_nonnull(mute);
  ck_assert_ptr_nonnull(live);
  uint8_t b[64];
  size_t n;
  int got_close = 0;
  for (int i = 0; i < 40 && !got_close; i++) {
    int op = wsc_recv(live, b, sizeof b, &n, 5000);
    ck_assert_int_eq(op, 9);
    ck_assert_int_eq(wsc_send(live, 10, b, n), 0);
    while (!got_close && (op = wsc_recv(mute, b, sizeof b, &n, 0)) >= 0) {
      if (op == 8) {
        ck_assert_uint_ge(n, 2);
        ck_assert_int_eq(b[0] << 8 | b[1], 1011);
        ck_assert_mem_eq(b + 2, "keepalive ping timeout", n - 2);
        got_close = 1;
      } else {
        ck_assert_int_eq(op, 9); /* pings, never answered */
      }
    }
  }
  ck_assert(got_close);
  wsc_drop(mute); /* it never answers the close either */
  for (int i = 0; i < 300 && !atomic_load(&ka_code); i++)
    usleep(10000);
  ck_assert_int_eq(atomic_load(&ka_code), 1011);
  ck_assert_str_eq(ka_reason, "keepalive ping timeout");
  for (int i = 0; i < 3; i++) { /* the live one stays */
    ck_assert_int_eq(wsc_recv(live, b, sizeof b, &n, 5000), 9);
    ck_assert_int_eq(wsc_send(live, 10, b, n), 0);
  }
  wsc_free(live);
  websock_server_free(srv);
}
END_TEST

/* ---- thread hooks and per-connection user data ------------------------ */

static atomic_int hook_starts, hook_stops;
static void on_thread_start(websock_server *s, void *ud) {
  (void)s;
  (void)ud;
  atomic_fetch_add(&hook_starts, 1);
}
static void on_thread_stop(websock_server *s, void *ud) {
  (void)s;
  (void)ud;
  atomic_fetch_add(&hook_stops, 1);
}

static int ud_marker;
static void ud_on_event(websock_server *srv, const websock_event *ev,
                        void *ud) {
  (void)ud;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    ck_assert_ptr_null(ev->user_data);
    websock_server_set_user_data(srv, ev->id, &ud_marker);
  } else if (ev->type == WEBSOCK_EVENT_MESSAGE) {
    const char *r = ev->user_data == &ud_marker ? "yes" : "no";
    websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, r, strlen(r));
  }
}

START_TEST(test_hooks_and_user_data) {
  websock_config *cfg;
  websock_server *srv;
  websock_config_new(&cfg);
  websock_config_set_io_threads(cfg, 2);
  websock_config_set_agents(cfg, 3);
  websock_config_set_thread_hooks(cfg, on_thread_start, on_thread_stop, NULL);
  websock_config_set_event_callback(cfg, ud_on_event, NULL);
  ck_assert_int_eq(websock_server_new(&srv, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_start(srv), 0);
  wsc *c = wsc_connect(websock_server_port(srv), "/", NULL);
  ck_assert_ptr_nonnull(c);
  wsc_send(c, 1, "?", 1);
  char b[8];
  size_t n;
  ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), 1);
  ck_assert_int_eq(memcmp(b, "yes", 3), 0);
  wsc_free(c);
  websock_server_stop(srv);
  websock_server_join(srv);
  ck_assert_int_eq(atomic_load(&hook_starts), 3); /* once per agent */
  ck_assert_int_eq(atomic_load(&hook_stops), 3);
  websock_server_free(srv);
}
END_TEST

/* ---- backpressure and the DRAIN event --------------------------------- */

static atomic_int drains;
static void drain_on_event(websock_server *srv, const websock_event *ev,
                           void *ud) {
  (void)srv;
  (void)ud;
  if (ev->type == WEBSOCK_EVENT_DRAIN)
    atomic_fetch_add(&drains, 1);
}

START_TEST(test_backpressure_and_drain) {
  websock_config *cfg;
  websock_server *srv;
  websock_config_new(&cfg);
  websock_config_set_agents(cfg, 1);
  websock_config_set_max_outbound(cfg, 64 * 1024);
  websock_config_set_event_callback(cfg, drain_on_event, NULL);
  ck_assert_int_eq(websock_server_new(&srv, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_start(srv), 0);
  wsc *c = wsc_connect(websock_server_port(srv), "/", NULL);
  ck_assert_ptr_nonnull(c);
  websock_stats st;
  for (int i = 0; i < 500; i++) {
    st = stats_now(srv);
    if (st.connections == 1)
      break;
    usleep(2000);
  }
  uint64_t id = 1;
  /* The client reads nothing: sends pile up until the bound refuses one. */
  static char chunk[16384];
  int rc = 0, sent = 0;
  for (int i = 0; i < 100000 && rc == 0; i++) {
    rc = websock_server_send(srv, id, WEBSOCK_OP_BINARY, chunk, sizeof chunk);
    sent += rc == 0;
  }
  ck_assert_int_eq(rc, WEBSOCK_ERR_BACKPRESSURE);
  /* Reading everything lets the queue drain, which is reported once. */
  char b[1024];
  size_t n;
  for (int i = 0; i < sent; i++)
    ck_assert_int_eq(wsc_recv(c, b, sizeof b, &n, 5000), 2);
  for (int i = 0; i < 500 && atomic_load(&drains) == 0; i++)
    usleep(2000);
  ck_assert_int_eq(atomic_load(&drains), 1);
  ck_assert_int_eq(
      websock_server_send(srv, id, WEBSOCK_OP_BINARY, chunk, sizeof chunk), 0);
  wsc_free(c);
  websock_server_free(srv);
}
END_TEST

static Suite *server_suite(void) {
  Suite *s = suite_create("server");
  TCase *tc = tcase_create("server");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_order_inline);
  tcase_add_test(tc, test_order_two_loops_inline);
  tcase_add_test(tc, test_order_agents);
  tcase_add_test(tc, test_spread_least_connections);
  tcase_add_test(tc, test_spread_round_robin);
  tcase_add_test(tc, test_alloc_flat_inline);
  tcase_add_test(tc, test_alloc_flat_agents);
  tcase_add_test(tc, test_foreign_send_races);
  tcase_add_test(tc, test_tags);
  tcase_add_test(tc, test_many_tags);
  tcase_add_test(tc, test_stale_id);
  tcase_add_test(tc, test_stop_drains_inline);
  tcase_add_test(tc, test_stop_drains_agents);
  tcase_add_test(tc, test_broadcast);
  tcase_add_test(tc, test_join_from_callback);
  tcase_add_test(tc, test_queued_mode);
  tcase_add_test(tc, test_handshake_hook);
  tcase_add_test(tc, test_null_handles);
  tcase_add_test(tc, test_handshake_timeout);
  tcase_add_test(tc, test_idle_timeout_closes);
  tcase_add_test(tc, test_keepalive_ping);
  tcase_add_test(tc, test_keepalive_ping_timeout);
  tcase_add_test(tc, test_stop_accepting);
  tcase_add_test(tc, test_hooks_and_user_data);
  tcase_add_test(tc, test_backpressure_and_drain);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(server_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
