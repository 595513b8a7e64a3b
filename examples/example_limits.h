/* The limit flags both example servers take (--idle-timeout,
 * --ping-interval, --max-connections, --slow-consumer-timeout,
 * --max-outbound): parsed from the command line, then applied to the
 * config. Example code, included by echo_server.c and chat_server.c. */
#ifndef WEBSOCK_EXAMPLE_LIMITS_H
#define WEBSOCK_EXAMPLE_LIMITS_H

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <websock.h>

/* The limit flags a deployment sets; each one left out keeps the
 * library's default. */
typedef struct {
  const char *flag;
  int (*set)(websock_config *cfg, unsigned v);
  int given;
  unsigned long long value;
} example_limit;

static int set_idle(websock_config *cfg, unsigned v) {
  return websock_config_set_idle_timeout(cfg, v);
}
static int set_ping(websock_config *cfg, unsigned v) {
  return websock_config_set_ping_interval(cfg, v);
}
static int set_max_conns(websock_config *cfg, unsigned v) {
  return websock_config_set_max_connections(cfg, v);
}
static int set_slow(websock_config *cfg, unsigned v) {
  return websock_config_set_slow_consumer_timeout(cfg, v);
}

static example_limit limits[] = {
    {"--idle-timeout", set_idle, 0, 0},
    {"--ping-interval", set_ping, 0, 0},
    {"--max-connections", set_max_conns, 0, 0},
    {"--slow-consumer-timeout", set_slow, 0, 0},
    {"--max-outbound", NULL, 0, 0}, /* a size_t: see apply_limits */
};

/* 1 when |a| is a limit flag (its value |v| taken), else 0. */
static int parse_limit(const char *a, const char *v) {
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    if (strcmp(a, limits[i].flag) == 0) {
      char *end;
      limits[i].value = strtoull(v, &end, 10);
      limits[i].given = 1;
      return *v && !*end &&
             limits[i].value <= (limits[i].set ? UINT_MAX : SIZE_MAX);
    }
  }
  return 0;
}

static int apply_limits(websock_config *cfg) {
  int rc = 0;
  for (size_t i = 0; i < sizeof limits / sizeof limits[0] && !rc; i++) {
    if (!limits[i].given)
      continue;
    if (limits[i].set)
      rc = limits[i].set(cfg, (unsigned)limits[i].value);
    else
      rc = websock_config_set_max_outbound(cfg, (size_t)limits[i].value);
  }
  return rc;
}

#endif
