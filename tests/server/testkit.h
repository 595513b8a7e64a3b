/* Small helpers shared by the server tests: start a server from a config,
 * run a Check suite. Test code only. */
#ifndef WEBSOCK_TEST_TESTKIT_H
#define WEBSOCK_TEST_TESTKIT_H

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <websock.h>

/* Makes a server from |cfg| (freed here), starts it, stores its port in
 * *port; fails the test on any error. */
static inline websock_server *tk_start(websock_config *cfg, int *port) {
  websock_server *srv = NULL;
  ck_assert_int_eq(websock_server_new(&srv, cfg), 0);
  websock_config_free(cfg);
  ck_assert_int_eq(websock_server_start(srv), 0);
  *port = websock_server_port(srv);
  return srv;
}

/* A config with |agents| agents and the event callback |cb| (user data
 * |ud|), for the test to set more options on before tk_start. */
static inline websock_config *tk_config(int agents, websock_event_cb cb,
                                        void *ud) {
  websock_config *cfg;
  ck_assert_int_eq(websock_config_new(&cfg), 0);
  ck_assert_int_eq(websock_config_set_agents(cfg, agents), 0);
  ck_assert_int_eq(websock_config_set_event_callback(cfg, cb, ud), 0);
  return cfg;
}

/* A loopback port nothing listens on (bound, read, let go). */
static inline int tk_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t l = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &l);
  close(fd);
  return ntohs(a.sin_port);
}

/* Runs |s| and returns the process's exit status (0: all passed). */
static inline int tk_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}

#endif
