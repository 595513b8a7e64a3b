/* Error strings, the TLS set-up reason and the library version.
 * Layer: api. */
#include "net/tls.h"
#include "websock.h"

const char *websock_strerror(int err) {
  switch (err) {
  case WEBSOCK_OK:
    return "success";
  case WEBSOCK_ERR_INVALID:
    return "invalid argument";
  case WEBSOCK_ERR_NOMEM:
    return "out of memory";
  case WEBSOCK_ERR_STATE:
    return "not allowed in the server's current state";
  case WEBSOCK_ERR_NO_SUCH_CLIENT:
    return "no such client";
  case WEBSOCK_ERR_TAG_TAKEN:
    return "tag taken by another connection";
  case WEBSOCK_ERR_BACKPRESSURE:
    return "outbound queue full";
  case WEBSOCK_ERR_CLOSING:
    return "connection is closing";
  case WEBSOCK_ERR_TOO_BIG:
    return "payload too big";
  case WEBSOCK_ERR_BAD_UTF8:
    return "text is not valid UTF-8";
  case WEBSOCK_ERR_ADDRESS:
    return "cannot resolve or bind the address";
  case WEBSOCK_ERR_SYSTEM:
    return "system call failed";
  case WEBSOCK_ERR_TLS:
    return "TLS set-up failed";
  case WEBSOCK_ERR_RECURSIVE:
    return "not allowed from a server thread";
  case WEBSOCK_ERR_CLUSTER:
    return "the cluster's Redis link is down";
  default:
    return "unknown error";
  }
}

int websock_err_is_fatal(int err) {
  return err == WEBSOCK_ERR_NOMEM || err == WEBSOCK_ERR_SYSTEM;
}

const char *websock_version(void) {
  return WEBSOCK_VERSION_STRING;
}

const char *websock_tls_last_error(void) {
  return websock__tls_last_error();
}
