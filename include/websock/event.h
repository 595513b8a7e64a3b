/* The one event structure every callback and the queued mode deliver. */
#ifndef WEBSOCK_EVENT_H
#define WEBSOCK_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

enum websock_event_type {
  WEBSOCK_EVENT_OPEN = 1,    /* handshake done; path, subprotocol, remote
                                set. No broadcast reaches the connection
                                before its OPEN handler has returned. */
  WEBSOCK_EVENT_MESSAGE = 2, /* a whole message; opcode TEXT or BINARY */
  WEBSOCK_EVENT_PING = 3,    /* a ping arrived (pong already sent); only with
                                websock_config_set_control_events() */
  WEBSOCK_EVENT_PONG = 4,    /* a pong arrived; only with control events */
  WEBSOCK_EVENT_CLOSE = 5,   /* the connection ended; last event of an id */
  WEBSOCK_EVENT_DRAIN = 6,   /* a send refused with BACKPRESSURE may now be
                                retried: the outbound queue drained */
  WEBSOCK_EVENT_TAG = 7      /* cluster: the outcome of a set_tag that gave
                                WEBSOCK_PENDING. data/length: the tag asked
                                for; status: 0 (the connection holds it
                                cluster-wide), WEBSOCK_ERR_TAG_TAKEN (a
                                connection of another node has it) or
                                WEBSOCK_ERR_CLUSTER (Redis was unreachable).
                                On an error the connection has its tag of
                                before the set_tag again (ev->tag), or
                                none. Also comes, with an error, when a
                                tag is lost to another node after a Redis
                                restart. */
};

/* Data opcodes of a message (RFC 6455 section 5.2). */
enum websock_opcode { WEBSOCK_OP_TEXT = 1, WEBSOCK_OP_BINARY = 2 };

/* Close status codes (RFC 6455 section 7.4.1). Codes 1005 and 1006 never
 * appear on the wire: they only report how a connection ended. */
enum websock_close_code {
  WEBSOCK_CLOSE_NORMAL = 1000,          /* the purpose was fulfilled */
  WEBSOCK_CLOSE_GOING_AWAY = 1001,      /* server stop, idle timeout */
  WEBSOCK_CLOSE_PROTOCOL_ERROR = 1002,  /* the peer broke RFC 6455 */
  WEBSOCK_CLOSE_UNSUPPORTED = 1003,     /* a data type it cannot accept */
  WEBSOCK_CLOSE_NO_STATUS = 1005,       /* a close frame without a code */
  WEBSOCK_CLOSE_ABNORMAL = 1006,        /* TCP ended with no close frame */
  WEBSOCK_CLOSE_INVALID_DATA = 1007,    /* text that is not UTF-8 */
  WEBSOCK_CLOSE_POLICY = 1008,          /* a policy was violated */
  WEBSOCK_CLOSE_TOO_BIG = 1009,         /* message over the size limit */
  WEBSOCK_CLOSE_MANDATORY_EXT = 1010,   /* (client) extension missing */
  WEBSOCK_CLOSE_INTERNAL_ERROR = 1011,  /* the server failed (e.g. memory) */
  WEBSOCK_CLOSE_SERVICE_RESTART = 1012, /* restarting: reconnect later */
  WEBSOCK_CLOSE_TRY_AGAIN_LATER = 1013  /* overloaded: reconnect later */
};

/* Everything pointed to by an event is valid during the callback (direct
 * mode) or until websock_event_free() (queued mode); copy what you keep. */
typedef struct websock_event {
  int type;                /* enum websock_event_type */
  uint64_t id;             /* connection id, unique for the server's life,
                              always < 2^53 */
  const char *tag;         /* the connection's tag, NULL when it has none */
  int opcode;              /* MESSAGE: WEBSOCK_OP_TEXT or WEBSOCK_OP_BINARY */
  const uint8_t *data;     /* MESSAGE payload, PING/PONG payload, CLOSE
                              reason (not NUL-terminated; may be NULL when
                              length is 0) */
  size_t length;           /* bytes at data */
  int close_code;          /* CLOSE: the peer's code, 1005 when its close
                              frame had none, 1006 when the TCP connection
                              ended without a close frame, or the code this
                              side sent when it closed first */
  void *user_data;         /* per-connection pointer set with
                              websock_server_set_user_data() or the handshake
                              hook; NULL until set */
  const char *path;        /* OPEN: request path (no query); else NULL */
  const char *query;       /* OPEN: query string without '?', NULL if none */
  const char *subprotocol; /* OPEN: the chosen subprotocol, NULL if none */
  const char *remote_addr; /* OPEN: peer address "ip:port" / "[ip6]:port" */
  websock_server *server;  /* the server that delivered the event */
  const char *extensions;  /* OPEN: the extension agreed, as the 101's
                              Sec-WebSocket-Extensions value (e.g.
                              "permessage-deflate; server_no_context_takeover"),
                              NULL when none */
  int status;              /* TAG: 0 or a negative WEBSOCK_ERR_*; else 0 */
} websock_event;

/* The event callback: runs on an agent thread (agents > 0) or on the
 * connection's I/O thread (agents = 0), never on two threads at once for
 * one connection, and in order per connection. It may call every API
 * function except websock_server_join/_run/_free. |user_data| is the pointer
 * given to websock_config_set_event_callback(). */
typedef void (*websock_event_cb)(websock_server *srv, const websock_event *ev,
                                 void *user_data);

/* Releases an event returned by websock_server_poll(). NULL is a no-op.
 * Thread: any thread. */
WEBSOCK_EXTERN void websock_event_free(websock_event *ev);

#ifdef __cplusplus
}
#endif
#endif
