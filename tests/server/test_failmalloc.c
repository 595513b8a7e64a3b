/* Failmalloc over a whole connection's life: count the allocations one
 * life makes (handshake, messages whole and fragmented, a large message, a
 * tag, a send by tag, the close), then fail each of them in turn. Every
 * time the victim must either finish its life or see the server end its
 * connection cleanly (HTTP error, close 1011, TCP end) — never a stall —,
 * every OPEN must be followed by a CLOSE, and a client connected
 * throughout must still be served. The same walk over an outgoing
 * connection's life (client mode: connect, OPEN, an echo, our close):
 * every connect that was accepted hears its CLOSE. */
#include <arpa/inet.h>
#include <check.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <websock.h>

#include "util/alloc.h"
#include "testkit.h"
#include "wsclient.h"

#define FM_BIG 50000 /* fits the test client's frame buffer */
#define FM_TIMEOUT_MS 3000

typedef struct fm_server {
  websock_server *srv;
  int port;
  atomic_int opens, closes;
} fm_server;

/* Echo; "tag" tags the connection "victim", "totag" sends to that tag.
 * Like any careful handler it checks what it sends: a send refused for
 * memory ends the connection with 1011 rather than leaving its client
 * waiting. */
static void fm_on_event(websock_server *srv, const websock_event *ev,
                        void *ud) {
  fm_server *t = ud;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    atomic_fetch_add(&t->opens, 1);
    return;
  }
  if (ev->type == WEBSOCK_EVENT_CLOSE) {
    atomic_fetch_add(&t->closes, 1);
    return;
  }
  if (ev->type != WEBSOCK_EVENT_MESSAGE)
    return;
  int rc;
  if (ev->length == 3 && memcmp(ev->data, "tag", 3) == 0) {
    int tagged = websock_server_set_tag(srv, ev->id, "victim") == 0;
    rc = websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT,
                             tagged ? "tagged" : "notag", tagged ? 6 : 5);
  } else if (ev->length == 5 && memcmp(ev->data, "totag", 5) == 0) {
    rc = websock_server_send_tag(srv, "victim", WEBSOCK_OP_TEXT, "viatag", 6);
  } else {
    rc = websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
  }
  if (rc == WEBSOCK_ERR_NOMEM)
    websock_server_close(srv, ev->id, WEBSOCK_CLOSE_INTERNAL_ERROR, NULL);
}

static fm_server *fm_start(int agents) {
  fm_server *t = calloc(1, sizeof *t);
  websock_config *cfg = tk_config(agents, fm_on_event, t);
  websock_config_set_close_timeout(cfg, 300);
  websock_config_set_handshake_timeout(cfg, 2000);
  t->srv = tk_start(cfg, &t->port);
  return t;
}

static void fm_stop(fm_server *t) {
  websock_server_free(t->srv);
  free(t);
}

/* Sends one masked frame with the FIN bit as given (wsc_send always sets
 * it), for a fragmented message. */
static int fm_send_frame(wsc *c, int fin, int opcode, const char *p, size_t n) {
  uint8_t f[256];
  ck_assert_uint_lt(n, 126);
  f[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
  f[1] = (uint8_t)(0x80 | n);
  memset(f + 2, 0, 4); /* a zero mask leaves the payload as it is */
  memcpy(f + 6, p, n);
  return send(c->fd, f, 6 + n, MSG_NOSIGNAL) == (ssize_t)(6 + n) ? 0 : -1;
}

/* Outcome of waiting for one reply. */
enum { FM_GOT = 0, FM_ENDED = 1, FM_WRONG = -1 };

/* Waits for one reply into |got| (|cap| bytes, length in *len). FM_ENDED
 * when the server ended the connection instead (close 1011 or EOF),
 * FM_WRONG for another close code or for silence (a stall). */
static int fm_recv(wsc *c, uint8_t *got, size_t cap, size_t *len) {
  int op = wsc_recv(c, got, cap, len, FM_TIMEOUT_MS);
  if (op == -1)
    return FM_ENDED;
  if (op == 8) {
    unsigned code = *len >= 2 ? (unsigned)(got[0] << 8 | got[1]) : 1005;
    if (code == WEBSOCK_CLOSE_INTERNAL_ERROR)
      return FM_ENDED;
    fprintf(stderr, "failmalloc: unexpected close %u\n", code);
    return FM_WRONG;
  }
  if (op < 0) {
    fprintf(stderr, "failmalloc: no reply within %d ms\n", FM_TIMEOUT_MS);
    return FM_WRONG;
  }
  return FM_GOT;
}

/* Waits for a reply equal to |want| (|n| bytes): FM_GOT, or as fm_recv,
 * or FM_WRONG for another payload. */
static int fm_expect(wsc *c, const void *want, size_t n) {
  static uint8_t got[FM_BIG + 16];
  size_t len = 0;
  int r = fm_recv(c, got, sizeof got, &len);
  if (r == FM_GOT && (len != n || memcmp(got, want, n) != 0)) {
    fprintf(stderr, "failmalloc: wrong reply (%zu bytes)\n", len);
    return FM_WRONG;
  }
  return r;
}

/* One victim's life. Returns FM_GOT when it went through, FM_ENDED when
 * the server ended it early in an allowed way, FM_WRONG otherwise. */
static int fm_life(int port) {
  static uint8_t big[FM_BIG];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (uint8_t)(i * 7);
  int status = 0;
  wsc *c = wsc_connect(port, "/", &status);
  if (!c) /* refused with a status, or dropped: both are clean ends */
    return status == 0 || status == 500 || status == 503 ? FM_ENDED : FM_WRONG;
  int r = FM_ENDED; /* a send that fails: the server ended it */
  uint8_t b[128];
  size_t n = 0;
  if (wsc_send(c, WEBSOCK_OP_TEXT, "hello", 5) < 0)
    goto out;
  if ((r = fm_expect(c, "hello", 5)) != FM_GOT)
    goto out;
  r = FM_ENDED;
  if (fm_send_frame(c, 0, WEBSOCK_OP_TEXT, "frag", 4) < 0 ||
      fm_send_frame(c, 1, 0, "ment", 4) < 0)
    goto out;
  if ((r = fm_expect(c, "fragment", 8)) != FM_GOT)
    goto out;
  r = FM_ENDED;
  if (wsc_send(c, WEBSOCK_OP_BINARY, big, sizeof big) < 0)
    goto out;
  if ((r = fm_expect(c, big, sizeof big)) != FM_GOT)
    goto out;
  /* Setting the tag may itself fail for memory: the callback says so. */
  r = FM_ENDED;
  if (wsc_send(c, WEBSOCK_OP_TEXT, "tag", 3) < 0)
    goto out;
  if ((r = fm_recv(c, b, sizeof b, &n)) != FM_GOT)
    goto out;
  int tagged = n == 6 && memcmp(b, "tagged", 6) == 0;
  if (!tagged && !(n == 5 && memcmp(b, "notag", 5) == 0)) {
    r = FM_WRONG;
    goto out;
  }
  r = FM_ENDED;
  if (tagged && wsc_send(c, WEBSOCK_OP_TEXT, "totag", 5) < 0)
    goto out;
  if (tagged && (r = fm_expect(c, "viatag", 6)) != FM_GOT)
    goto out;
  /* Our close; the server answers with its own, then ends TCP. */
  if (wsc_send(c, 8, "\x03\xe8", 2) < 0) {
    r = FM_ENDED;
    goto out;
  }
  int op = wsc_recv(c, b, sizeof b, &n, FM_TIMEOUT_MS);
  if (op == -2 || (op != 8 && op != -1))
    r = FM_WRONG;
  else if (op == 8 && n >= 2 && (b[0] << 8 | b[1]) == 1011)
    r = FM_ENDED;
  else if (op == 8 && !(n >= 2 && (b[0] << 8 | b[1]) == 1000))
    r = FM_WRONG;
out:
  wsc_free(c);
  return r;
}

/* Every victim's connection has ended and reported its CLOSE. */
static void fm_wait_settled(fm_server *t) {
  for (int i = 0; i < 500; i++) {
    websock_stats st;
    websock_server_get_stats(t->srv, &st, sizeof st);
    if (st.connections == 1 &&
        atomic_load(&t->opens) == atomic_load(&t->closes) + 1)
      return;
    usleep(10000);
  }
  ck_abort_msg("failmalloc: %d opens but %d closes (+1 observer)",
               atomic_load(&t->opens), atomic_load(&t->closes));
}

/* One victim life, whatever kind: FM_GOT, FM_ENDED or FM_WRONG. */
typedef int (*fm_life_fn)(void *ud);

/* The walk: count what one life allocates, then fail each allocation of a
 * life in turn, with a bystander connected to |t| throughout. */
static void fm_walk_lives(fm_server *t, fm_life_fn life, void *ud) {
  wsc *observer = wsc_connect(t->port, "/", NULL);
  ck_assert_ptr_nonnull(observer);
  /* The first life warms what stays (the loop's scratch buffer, the
   * pool); the next three count what one life allocates: the fewest, as
   * a life may now and then also grow something shared (the pool). */
  ck_assert_int_eq(life(ud), FM_GOT);
  fm_wait_settled(t);
  long per_life = -1;
  for (int k = 0; k < 3; k++) {
    long before = websock__alloc_count();
    ck_assert_int_eq(life(ud), FM_GOT);
    fm_wait_settled(t);
    long used = websock__alloc_count() - before;
    if (per_life < 0 || used < per_life)
      per_life = used;
  }
  ck_assert_int_gt(per_life, 3);
  long failed0 = websock__alloc_failed();
  int ended = 0;
  for (long n = 1; n <= per_life + 2; n++) {
    websock__alloc_fail_at(n);
    int r = life(ud);
    websock__alloc_fail_at(0);
    ck_assert_msg(r != FM_WRONG, "failing allocation %ld of %ld", n, per_life);
    ended += r == FM_ENDED;
    fm_wait_settled(t);
    /* The bystander is served as if nothing happened. */
    char msg[32];
    int len = snprintf(msg, sizeof msg, "still here %ld", n);
    ck_assert_int_eq(wsc_send(observer, WEBSOCK_OP_TEXT, msg, (size_t)len), 0);
    ck_assert_int_eq(fm_expect(observer, msg, (size_t)len), FM_GOT);
  }
  /* The walk did fail allocations, and some of them ended the victim. */
  ck_assert_int_ge(websock__alloc_failed() - failed0, per_life);
  ck_assert_int_gt(ended, 0);
  /* And a life still goes through. */
  ck_assert_int_eq(life(ud), FM_GOT);
  fm_wait_settled(t);
  wsc_free(observer);
}

static int fm_server_life(void *ud) {
  return fm_life(((fm_server *)ud)->port);
}

static void fm_walk(int agents) {
  fm_server *t = fm_start(agents);
  fm_walk_lives(t, fm_server_life, t);
  fm_stop(t);
}

START_TEST(failmalloc_inline) {
  fm_walk(0);
}
END_TEST

START_TEST(failmalloc_agents) {
  fm_walk(2);
}
END_TEST

/* ---- the client's walk ------------------------------------------------- */

typedef struct fm_client {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t id;
  int opened, closed, echoed;
} fm_client;

static void fm_client_event(websock_server *srv, const websock_event *ev,
                            void *ud) {
  fm_client *k = ud;
  pthread_mutex_lock(&k->mu);
  if (ev->id == k->id || !k->id) {
    if (ev->type == WEBSOCK_EVENT_OPEN) {
      k->opened = 1;
      if (websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, "hello", 5) != 0)
        websock_server_close(srv, ev->id, 1000, NULL);
    } else if (ev->type == WEBSOCK_EVENT_MESSAGE) {
      k->echoed = ev->length == 5 && memcmp(ev->data, "hello", 5) == 0;
      websock_server_close(srv, ev->id, 1000, NULL);
    } else if (ev->type == WEBSOCK_EVENT_CLOSE) {
      k->closed++;
    }
  }
  pthread_cond_broadcast(&k->cv);
  pthread_mutex_unlock(&k->mu);
}

/* One outgoing life: FM_GOT (echoed and closed), FM_ENDED (the connect
 * refused for memory, or a CLOSE before the end), FM_WRONG (no CLOSE in
 * time, or two). */
static int fm_client_life(websock_server *c, fm_client *k, int port) {
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
  pthread_mutex_lock(&k->mu);
  k->id = 0;
  k->opened = k->closed = k->echoed = 0;
  uint64_t id = 0;
  /* (The lock keeps the events of this id waiting until it is known.) */
  int rc = websock_server_connect(c, url, NULL, &id);
  if (rc) {
    pthread_mutex_unlock(&k->mu);
    return rc == WEBSOCK_ERR_NOMEM ? FM_ENDED : FM_WRONG;
  }
  k->id = id;
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 5;
  while (!k->closed && pthread_cond_timedwait(&k->cv, &k->mu, &dl) == 0)
    ;
  int r = !k->closed ? FM_WRONG : k->echoed ? FM_GOT : FM_ENDED;
  if (!k->closed)
    fprintf(stderr, "failmalloc: connect %llu heard no CLOSE\n",
            (unsigned long long)id);
  pthread_mutex_unlock(&k->mu);
  usleep(20000); /* a second CLOSE would show here */
  pthread_mutex_lock(&k->mu);
  if (k->closed > 1)
    r = FM_WRONG;
  pthread_mutex_unlock(&k->mu);
  return r;
}

typedef struct fm_client_walk {
  websock_server *c;
  fm_client *k;
  int port;
} fm_client_walk;

static int fm_client_walk_life(void *ud) {
  fm_client_walk *w = ud;
  return fm_client_life(w->c, w->k, w->port);
}

START_TEST(failmalloc_client) {
  fm_server *t = fm_start(0);
  fm_client k;
  memset(&k, 0, sizeof k);
  pthread_mutex_init(&k.mu, NULL);
  pthread_cond_init(&k.cv, NULL);
  websock_config *cfg = tk_config(2, fm_client_event, &k);
  websock_config_set_client_only(cfg, 1);
  websock_config_set_close_timeout(cfg, 300);
  int unused;
  fm_client_walk w = {tk_start(cfg, &unused), &k, t->port};
  fm_walk_lives(t, fm_client_walk_life, &w);
  websock_server_free(w.c);
  fm_stop(t);
  pthread_cond_destroy(&k.cv);
  pthread_mutex_destroy(&k.mu);
}
END_TEST

int main(void) {
  Suite *s = suite_create("failmalloc");
  TCase *tc = tcase_create("walk");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, failmalloc_inline);
  tcase_add_test(tc, failmalloc_agents);
  tcase_add_test(tc, failmalloc_client);
  suite_add_tcase(s, tc);
  return tk_run(s);
}
