/* libwebsock2 version. */
#ifndef WEBSOCK_VERSION_H
#define WEBSOCK_VERSION_H

#include "export.h"

#define WEBSOCK_VERSION_MAJOR 0
#define WEBSOCK_VERSION_MINOR 1
#define WEBSOCK_VERSION_PATCH 0
#define WEBSOCK_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the version of the library loaded at run time ("0.1.0").
 * Thread: any thread. */
WEBSOCK_EXTERN const char *websock_version(void);

#ifdef __cplusplus
}
#endif
#endif
