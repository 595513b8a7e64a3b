/* An outgoing connection's plan: what websock_server_connect() decided on
 * the caller's thread and hands to a loop in a DIAL job. The loop owns it
 * from then on (in the connection's rx->dial) until the connection opens
 * or fails. Layer: net. */
#ifndef WEBSOCK_NET_DIAL_H
#define WEBSOCK_NET_DIAL_H

#include <event2/event_struct.h>
#include <stdint.h>

#include "net.h"
#include "proto/client_hs.h"
#include "util/buf.h"

#define WEBSOCK__DIAL_MAX_PROTOCOLS 16

struct addrinfo;

typedef struct websock__dial {
  uint64_t id;                /* the id the connect returned */
  unsigned timeout_ms;        /* resolve + connect + TLS + 101 */
  void *user_data;            /* set on the connection from the start */
  struct ssl_ctx_st *ssl_ctx; /* a reference; NULL for ws:// */
  int verify;                 /* check the certificate and host name */
  int deflate;                /* offer permessage-deflate */
  uint64_t max_message;       /* the connection's limit (0: the server's) */
  websock__url url;
  char key[25];         /* our Sec-WebSocket-Key */
  websock__buf request; /* the upgrade request, written once connected */
  char *protocols[WEBSOCK__DIAL_MAX_PROTOCOLS]; /* offered, to check the
                                                   answer against */
  size_t nprotocols;
  /* On the loop: its own timer for the deadline (the sweep runs once a
   * second at most, too coarse for a 200 ms connect timeout), the
   * addresses to try, in order, and the last failure. */
  struct event timer;
  int timer_set;
  struct addrinfo *addrs, *next_addr;
  int last_errno;
} websock__dial;

/* Asks the server's resolver thread to look up |c|'s host; its answer
 * comes back in a RESOLVED job. Returns 0, or -1 (no memory, no thread).
 * Thread: |c|'s loop. */
int websock__resolver_ask(websock__conn *c, const char *host, uint16_t port);

#endif
