/* lws2_lua: see lws2_lua.h. Plain C over the public API; no Lua here:
 * the handle, the numeric options, draining, waiting for events and
 * upgrades, the clock of the facade's timers, signals. */
#include "lws2_int.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

lws2_server *lws2_new(void) {
  lws2_server *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->hs_fd = -1;
  h->wait_fd = -1;
  atomic_init(&h->draining, 0);
  if (websock_config_new(&h->cfg) != 0) {
    free(h);
    return NULL;
  }
  websock_config_set_delivery(h->cfg, WEBSOCK_DELIVERY_QUEUED);
  return h;
}

void lws2_free(lws2_server *h) {
  if (!h)
    return;
  websock_config_free(h->cfg);
  h->cfg = NULL;
  if (h->srv) {
    /* Every deferred upgrade must be completed before the server is
     * freed: once the threads have ended they are all stale, and
     * answering them only releases them. */
    websock_server_stop(h->srv);
    websock_server_join(h->srv);
    lws2__handshake_release(h);
    websock_server_free(h->srv);
    h->srv = NULL;
  }
  lws2__handshake_free_settings(h);
  if (h->wait_fd >= 0)
    close(h->wait_fd);
  h->wait_fd = -1;
  if (h->hs_fd >= 0)
    close(h->hs_fd);
  h->hs_fd = -1;
  if (h->mu_ready)
    pthread_mutex_destroy(&h->mu);
  h->mu_ready = 0;
}

void lws2_destroy(lws2_server *h) {
  lws2_free(h);
  free(h);
}

websock_config *lws2_config_of(lws2_server *h) {
  return h ? h->cfg : NULL;
}

websock_server *lws2_server_of(lws2_server *h) {
  return h ? h->srv : NULL;
}

/* Integral, non-negative and at most |max|. */
static int lws2_whole(double v, double max) {
  return !isnan(v) && v >= 0 && v <= max && floor(v) == v;
}

int lws2_set_option(lws2_server *h, const char *name, double v) {
  if (!h || !name)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg)
    return WEBSOCK_ERR_STATE;
  websock_config *c = h->cfg;
  if (!lws2_whole(v, 9007199254740992.0))
    return WEBSOCK_ERR_INVALID;
  int small = v <= 2147483647.0;
  if (strcmp(name, "io_threads") == 0)
    return small ? websock_config_set_io_threads(c, (int)v)
                 : WEBSOCK_ERR_INVALID;
  if (strcmp(name, "spread") == 0) /* enum websock_spread */
    return small ? websock_config_set_spread(c, (int)v) : WEBSOCK_ERR_INVALID;
  if (strcmp(name, "agents") == 0)
    return small ? websock_config_set_agents(c, (int)v) : WEBSOCK_ERR_INVALID;
  if (strcmp(name, "control_events") == 0)
    return websock_config_set_control_events(c, v != 0);
  if (strcmp(name, "max_message_size") == 0)
    return websock_config_set_max_message_size(c, (uint64_t)v);
  if (strcmp(name, "max_frame_size") == 0)
    return websock_config_set_max_frame_size(c, (uint64_t)v);
  if (strcmp(name, "max_handshake_size") == 0)
    return websock_config_set_max_handshake_size(c, (size_t)v);
  if (strcmp(name, "max_outbound") == 0)
    return websock_config_set_max_outbound(c, (size_t)v);
  if (strcmp(name, "fragment_size") == 0)
    return websock_config_set_fragment_size(c, (size_t)v);
  if (v > 4294967295.0)
    return WEBSOCK_ERR_INVALID;
  unsigned u = (unsigned)v;
  if (strcmp(name, "handshake_timeout") == 0)
    return websock_config_set_handshake_timeout(c, u);
  if (strcmp(name, "idle_timeout") == 0)
    return websock_config_set_idle_timeout(c, u);
  if (strcmp(name, "ping_interval") == 0)
    return websock_config_set_ping_interval(c, u);
  if (strcmp(name, "ping_timeout") == 0)
    return websock_config_set_ping_timeout(c, u);
  if (strcmp(name, "close_timeout") == 0)
    return websock_config_set_close_timeout(c, u);
  if (strcmp(name, "max_connections") == 0)
    return websock_config_set_max_connections(c, u);
  if (strcmp(name, "agent_budget") == 0)
    return websock_config_set_agent_budget(c, u);
  return WEBSOCK_ERR_INVALID;
}

int lws2_create(lws2_server *h) {
  if (!h)
    return WEBSOCK_ERR_INVALID;
  if (!h->cfg || h->srv)
    return WEBSOCK_ERR_STATE;
  if (!h->mu_ready) {
    if (pthread_mutex_init(&h->mu, NULL) != 0)
      return WEBSOCK_ERR_SYSTEM;
    h->mu_ready = 1;
  }
  if (h->handler && h->hs_fd < 0) {
    h->hs_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->hs_fd < 0)
      return WEBSOCK_ERR_SYSTEM;
  }
  /* Always installed: besides the checks it refuses upgrades while the
   * server drains. Without settings it accepts at once, as no hook would. */
  int rc = websock_config_set_handshake_callback(h->cfg, lws2__hook, h);
  if (rc == 0)
    rc = websock_server_new(&h->srv, h->cfg);
  if (rc == 0) {
    websock_config_free(h->cfg);
    h->cfg = NULL;
  }
  return rc;
}

int lws2_stop_accepting(lws2_server *h) {
  if (!h)
    return WEBSOCK_ERR_INVALID;
  int rc = websock_server_stop_accepting(h->srv);
  if (rc == WEBSOCK_ERR_INVALID || rc == WEBSOCK_ERR_STATE)
    return rc; /* no server, or not running: nothing to drain */
  /* Set even when some loops could not be told (no memory): upgrades
   * that reach a still-open socket get 503 instead of a connection. */
  atomic_store(&h->draining, 1);
  return rc;
}

/* ---- waiting --------------------------------------------------------------
 */

int lws2_wait(lws2_server *h, int timeout_ms) {
  if (!h)
    return WEBSOCK_ERR_INVALID;
  if (!h->srv)
    return WEBSOCK_ERR_STATE;
  int efd = websock_server_event_fd(h->srv);
  if (efd < 0)
    return efd;
  struct pollfd p[2] = {{.fd = efd, .events = POLLIN},
                        {.fd = h->hs_fd, .events = POLLIN}};
  int n = poll(p, h->hs_fd >= 0 ? 2 : 1, timeout_ms < 0 ? -1 : timeout_ms);
  if (n < 0)
    return errno == EINTR ? 0 : WEBSOCK_ERR_SYSTEM;
  return n > 0;
}

int lws2_event_fd(lws2_server *h) {
  if (!h)
    return WEBSOCK_ERR_INVALID;
  if (!h->srv)
    return WEBSOCK_ERR_STATE;
  int efd = websock_server_event_fd(h->srv);
  if (efd < 0 || h->hs_fd < 0)
    return efd;
  if (h->wait_fd >= 0)
    return h->wait_fd;
  /* An epoll set is itself readable while one of its descriptors is:
   * one fd for the caller's loop, for events and upgrades alike. */
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0)
    return WEBSOCK_ERR_SYSTEM;
  struct epoll_event a = {.events = EPOLLIN, .data.fd = efd};
  struct epoll_event b = {.events = EPOLLIN, .data.fd = h->hs_fd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &a) != 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, h->hs_fd, &b) != 0) {
    close(ep);
    return WEBSOCK_ERR_SYSTEM;
  }
  h->wait_fd = ep;
  return ep;
}

uint64_t lws2_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static volatile sig_atomic_t lws2_signal;

static void lws2_on_signal(int sig) {
  lws2_signal = sig;
}

int lws2_catch_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = lws2_on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
    return WEBSOCK_ERR_SYSTEM;
  return 0;
}

int lws2_take_signal(void) {
  int s = lws2_signal;
  lws2_signal = 0;
  return s;
}
