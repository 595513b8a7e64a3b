/* The opaque handle types of libwebsock2, declared once for every public
 * header. Their bodies are private: use the functions of each header. */
#ifndef WEBSOCK_TYPES_H
#define WEBSOCK_TYPES_H

#ifdef __cplusplus
extern "C" {
#endif

/* A server: I/O threads, agents, connections (server.h). */
typedef struct websock_server websock_server;
/* Options for websock_server_new() (config.h). */
typedef struct websock_config websock_config;
/* The HTTP request seen by the handshake hook (request.h). */
typedef struct websock_request websock_request;

/* A WebSocket upgrade whose answer was put off (request.h). */
typedef struct websock_upgrade websock_upgrade;

/* OpenSSL's SSL_CTX, named by its struct tag so this header needs no
 * OpenSSL header (openssl/ssl.h declares the same struct). */
struct ssl_ctx_st;

#ifdef __cplusplus
}
#endif
#endif
