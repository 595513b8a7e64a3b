/* libwebsock2: a multi-threaded WebSocket (RFC 6455) server library on
 * libevent and OpenSSL. Umbrella header: include this one. */
#ifndef WEBSOCK_H
#define WEBSOCK_H

#include "websock/export.h"
#include "websock/version.h"
#include "websock/types.h"
#include "websock/error.h"
#include "websock/event.h"
#include "websock/request.h"
#include "websock/config.h"
#include "websock/server.h"
#include "websock/client.h"

#endif
