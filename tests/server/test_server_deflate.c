/* permessage-deflate in the server, over real sockets, with zlib on the
 * client side: every reply inflated and compared, the steady state
 * allocating nothing (stats.event_path_allocs flat) in both memory models
 * and both delivery modes, and broadcasts reaching compressing and plain
 * clients alike. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <websock.h>

#include "testkit.h"
#include "wsdeflate.h"
#include "wsclient.h"

static void echo(websock_server *srv, const websock_event *ev, void *ud) {
  (void)ud;
  if (ev->type != WEBSOCK_EVENT_MESSAGE)
    return;
  if (ev->length == 5 && memcmp(ev->data, "bcast", 5) == 0) {
    static const char news[] = "news for everyone, compressed once per "
                               "I/O thread for all who negotiated deflate";
    websock_server_broadcast(srv, WEBSOCK_OP_TEXT, news, sizeof news - 1, 0);
    return;
  }
  websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
}

static websock_server *deflate_server(int io, int agents, int mode, int *port) {
  websock_config *cfg = tk_config(agents, echo, NULL);
  ck_assert_int_eq(websock_config_set_io_threads(cfg, io), 0);
  ck_assert_int_eq(websock_config_set_deflate(cfg, mode, 0, 0, 1, 64), 0);
  return tk_start(cfg, port);
}

/* 20 clients echo compressed messages; after a warm-up the allocation
 * counter of the event path stays where it was. */
static void steady_run(int io, int agents, int mode) {
  enum { CLIENTS = 20 };
  int port;
  websock_server *srv = deflate_server(io, agents, mode, &port);
  wsc *c[CLIENTS];
  char head[1024];
  for (int i = 0; i < CLIENTS; i++) {
    c[i] = wsc_connect_ext(port, "/", offer, NULL, head, sizeof head);
    ck_assert_ptr_nonnull(c[i]);
    /* Both models honour the client's wish that we reset; shared mode
     * asks the client to reset too, dedicated lets it choose. */
    ck_assert_ptr_nonnull(strstr(head, "\r\nSec-WebSocket-Extensions: "
                                       "permessage-deflate; "
                                       "server_no_context_takeover"));
  }
  char msg[400];
  for (size_t i = 0; i < sizeof msg; i++)
    msg[i] = "{\"k\":\"value\",\"n\":12345}"[i % 24];
  uint8_t z[1024], back[1024], plain[1024];
  size_t zn = deflate_msg(msg, sizeof msg, z, sizeof z);
  uint64_t before = 0;
  for (int round = 0; round < 1500; round++) {
    if (round == 500) {
      websock_stats st;
      websock_server_get_stats(srv, &st, sizeof st);
      before = st.event_path_allocs;
    }
    for (int i = 0; i < CLIENTS; i++)
      ck_assert_int_eq(wsc_send(c[i], 0x40 | WEBSOCK_OP_TEXT, z, zn), 0);
    for (int i = 0; i < CLIENTS; i++) {
      size_t n;
      ck_assert_int_eq(wsc_recv(c[i], back, sizeof back, &n, 5000),
                       WEBSOCK_OP_TEXT);
      ck_assert_uint_lt(n, sizeof msg / 2); /* it came back compressed */
      if (round % 100 == 0) {
        size_t pn = inflate_msg(back, n, plain, sizeof plain);
        ck_assert_uint_eq(pn, sizeof msg);
        ck_assert_mem_eq(plain, msg, sizeof msg);
      }
    }
  }
  websock_stats st;
  websock_server_get_stats(srv, &st, sizeof st);
  /* 20,000 messages each way: none allocates. (A pooled job first used
   * now, deeper in the pool than the warm-up reached, may grow its small
   * buffer once for a 400-byte message: a handful at most.) */
  ck_assert_uint_le(st.event_path_allocs - before, 4);
  for (int i = 0; i < CLIENTS; i++)
    wsc_free(c[i]);
  websock_server_free(srv);
}

START_TEST(steady_shared_inline) {
  steady_run(1, 0, WEBSOCK_DEFLATE_SHARED);
}
END_TEST
START_TEST(steady_shared_agents) {
  steady_run(2, 2, WEBSOCK_DEFLATE_SHARED);
}
END_TEST
START_TEST(steady_dedicated_agents) {
  steady_run(2, 2, WEBSOCK_DEFLATE_DEDICATED);
}
END_TEST

/* A broadcast reaches clients with and without deflate, each in its own
 * form; short messages go out plain (RSV1 clear) to everyone. */
START_TEST(broadcast_mixed) {
  int port;
  websock_server *srv = deflate_server(2, 1, WEBSOCK_DEFLATE_SHARED, &port);
  enum { N = 6 };
  wsc *c[N];
  for (int i = 0; i < N; i++) {
    c[i] = wsc_connect_ext(port, "/", i % 2 ? offer : "", NULL, NULL, 0);
    ck_assert_ptr_nonnull(c[i]);
  }
  /* Every OPEN handler has returned once each client got an echo. */
  uint8_t back[1024], plain[1024];
  size_t n;
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(wsc_send(c[i], WEBSOCK_OP_TEXT, "hi", 2), 0);
    ck_assert_int_eq(wsc_recv(c[i], back, sizeof back, &n, 5000),
                     WEBSOCK_OP_TEXT);
    ck_assert_uint_eq(n, 2);
  }
  ck_assert_int_eq(wsc_send(c[0], WEBSOCK_OP_TEXT, "bcast", 5), 0);
  static const char news[] = "news for everyone, compressed once per I/O "
                             "thread for all who negotiated deflate";
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(wsc_recv(c[i], back, sizeof back, &n, 5000),
                     WEBSOCK_OP_TEXT);
    if (i % 2) {
      ck_assert_uint_lt(n, sizeof news - 1);
      n = inflate_msg(back, n, plain, sizeof plain);
      ck_assert_uint_eq(n, sizeof news - 1);
      ck_assert_mem_eq(plain, news, n);
    } else {
      ck_assert_uint_eq(n, sizeof news - 1);
      ck_assert_mem_eq(back, news, n);
    }
  }
  for (int i = 0; i < N; i++)
    wsc_free(c[i]);
  websock_server_free(srv);
}
END_TEST

START_TEST(config_checks) {
  websock_config *cfg;
  ck_assert_int_eq(websock_config_new(&cfg), 0);
  ck_assert_int_eq(websock_config_set_deflate(cfg, 3, 0, 0, 1, 64),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_deflate(cfg, 1, 8, 0, 1, 64),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_deflate(cfg, 1, 0, 10, 1, 64),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_deflate(cfg, 1, 0, 0, 10, 64),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_deflate(cfg, 2, 9, 1, -1, 0), 0);
  websock_config_free(cfg);
}
END_TEST

int main(void) {
  Suite *s = suite_create("deflate");
  TCase *tc = tcase_create("deflate");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, steady_shared_inline);
  tcase_add_test(tc, steady_shared_agents);
  tcase_add_test(tc, steady_dedicated_agents);
  tcase_add_test(tc, broadcast_mixed);
  tcase_add_test(tc, config_checks);
  suite_add_tcase(s, tc);
  return tk_run(s);
}
