/* Symbol visibility for libwebsock2's public API. */
#ifndef WEBSOCK_EXPORT_H
#define WEBSOCK_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define WEBSOCK_EXTERN __attribute__((visibility("default")))
#else
#define WEBSOCK_EXTERN
#endif

#endif
