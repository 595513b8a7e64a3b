/* The server object behind the public handle. Layer: api. */
#ifndef WEBSOCK_API_SERVER_INT_H
#define WEBSOCK_API_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "cluster/cluster.h"
#include "net/net.h"
#include "sched/sched.h"
#include "sched/settings.h"

enum websock__server_state {
  WEBSOCK__SERVER_NEW = 0, /* created, not started */
  WEBSOCK__SERVER_RUNNING, /* threads running (maybe stopping) */
  WEBSOCK__SERVER_JOINED   /* threads ended */
};

struct websock_server {
  websock__settings settings; /* immutable copy of the config */
  websock__sched sched;
  websock__net net;
  pthread_mutex_t mu;        /* guards state changes (start/join) */
  atomic_int state;          /* enum websock__server_state */
  atomic_int stop_requested; /* websock_server_stop() was called */
  websock__cluster *cluster; /* the Redis link, NULL without a cluster */
};

/* config.c: deep copy and release of settings. */
int websock__settings_copy(websock__settings *dst,
                           const websock__settings *src);
void websock__settings_free(websock__settings *s);
const websock__settings *websock__config_settings(const websock_config *cfg);

#endif
