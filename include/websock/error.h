/* libwebsock2 error codes. 0 is success; every failure is a negative
 * WEBSOCK_ERR_* value between -1 and -999. The core's internal codes are
 * -1000 and below and never reach a caller. */
#ifndef WEBSOCK_ERROR_H
#define WEBSOCK_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum websock_error {
  WEBSOCK_OK = 0,
  WEBSOCK_ERR_INVALID = -1, /* invalid argument (NULL handle, bad value) */
  WEBSOCK_ERR_NOMEM = -2,   /* out of memory */
  WEBSOCK_ERR_STATE = -3,   /* not allowed in the server's state */
  WEBSOCK_ERR_NO_SUCH_CLIENT = -4, /* unknown or already closed id/tag */
  WEBSOCK_ERR_TAG_TAKEN = -5,      /* another live connection has the tag */
  WEBSOCK_ERR_BACKPRESSURE = -6,   /* outbound queue of the client is full */
  WEBSOCK_ERR_CLOSING = -7,        /* the connection is closing */
  WEBSOCK_ERR_TOO_BIG = -8,        /* payload over a limit (e.g. > 125 for
                                      ping/close) */
  WEBSOCK_ERR_BAD_UTF8 = -9,       /* text payload is not valid UTF-8 */
  WEBSOCK_ERR_ADDRESS = -10,       /* cannot resolve or bind the address */
  WEBSOCK_ERR_SYSTEM = -11,        /* a system call failed (errno is set) */
  WEBSOCK_ERR_TLS = -12,           /* TLS set-up failed (cert, key, ctx) */
  WEBSOCK_ERR_RECURSIVE = -13,     /* call not allowed from a callback or
                                      core thread of this server */
  WEBSOCK_ERR_CLUSTER = -14        /* the cluster's Redis link is down: a
                                      send to another node's connection
                                      cannot go now */
};

/* Not an error: websock_server_set_tag() on a cluster node took the tag
 * here and asked Redis for it cluster-wide; a WEBSOCK_EVENT_TAG event of
 * the connection tells the outcome. */
#define WEBSOCK_PENDING 1

/* Returns a static, human-readable description of |err| (never NULL).
 * Thread: any thread. */
WEBSOCK_EXTERN const char *websock_strerror(int err);

/* Returns 1 when |err| comes from the environment rather than from the
 * call's arguments or the server's state: WEBSOCK_ERR_NOMEM and
 * WEBSOCK_ERR_SYSTEM. Retrying the same call at once is unlikely to help,
 * and a server whose websock_server_start() failed with such an error can
 * only be freed. Every other code (and WEBSOCK_OK) gives 0: the call failed
 * and the object is as it was. Thread: any thread. */
WEBSOCK_EXTERN int websock_err_is_fatal(int err);

#ifdef __cplusplus
}
#endif
#endif
