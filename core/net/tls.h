/* TLS with OpenSSL: the server's SSL_CTX and a thin non-blocking transport
 * over one connection's SSL object. The connection state machine (which
 * event to arm when) stays in conn.c. Layer: net. */
#ifndef WEBSOCK_NET_TLS_H
#define WEBSOCK_NET_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "sched/settings.h"

/* Results of the transport calls below (and of the plain path in conn.c):
 * bytes moved are returned separately, so every code is a state. */
enum websock__io {
  WEBSOCK__IO_OK = 0,             /* done / buffer filled: call again */
  WEBSOCK__IO_WANT_READ = -2001,  /* would block until readable */
  WEBSOCK__IO_WANT_WRITE = -2002, /* would block until writable */
  WEBSOCK__IO_EOF = -2003,        /* orderly end (close_notify or TCP EOF) */
  WEBSOCK__IO_ERROR = -2004       /* the connection failed */
};

/* Builds the server's context: takes a reference on the caller's SSL_CTX
 * (st->tls_ctx), or creates one from st->tls_cert/st->tls_key with the
 * library defaults. Sets *out to NULL when TLS is not configured. Returns
 * 0, WEBSOCK_ERR_TLS (reason in websock_tls_last_error()) or
 * WEBSOCK_ERR_NOMEM. Thread: the caller of websock_server_new(). */
int websock__tls_ctx_new(const websock__settings *st, SSL_CTX **out);
/* Why the last websock__tls_ctx_new() on this thread failed ("" if not). */
const char *websock__tls_last_error(void);
/* Drops the server's reference; NULL is a no-op. */
void websock__tls_ctx_free(SSL_CTX *ctx);

/* Client mode: a context that checks servers against the CA file (PEM) or,
 * with NULL, the system's store; |verify| 0 checks nothing (tests only).
 * Returns 0, WEBSOCK_ERR_TLS (reason in websock__tls_last_error()) or
 * WEBSOCK_ERR_NOMEM. Thread: any (loading CAs is slow: never a loop). */
int websock__tls_client_ctx_new(const char *ca_file, int verify, SSL_CTX **out);
/* A client-side SSL object on |fd| for a server named |host|: SNI for host
 * names, and with |verify| the certificate must name |host| (a DNS name or
 * an IP address). NULL when out of memory. */
SSL *websock__tls_client_new(SSL_CTX *ctx, int fd, const char *host,
                             int host_is_ip, int verify);
/* Why the handshake on |ssl| failed, in words ("certificate verify failed
 * (hostname mismatch)"), into |out|. Thread: the one whose call failed. */
void websock__tls_failure(SSL *ssl, char *out, size_t cap);

/* A server-side SSL object on the non-blocking socket |fd|, or NULL. */
SSL *websock__tls_new(SSL_CTX *ctx, int fd);
/* Drives the TLS handshake one step: WEBSOCK__IO_OK when complete, else a
 * WANT code or WEBSOCK__IO_ERROR. */
int websock__tls_handshake(SSL *ssl);
/* Reads plaintext into |buf| until it is full or the socket would block,
 * storing the byte count in *got. Returns the state that stopped it:
 * WEBSOCK__IO_OK (buffer full: more may be buffered inside OpenSSL without
 * the socket being readable), a WANT code, EOF or ERROR. Bytes in *got
 * are valid whatever the result. */
int websock__tls_read(SSL *ssl, uint8_t *buf, size_t cap, size_t *got);
/* Writes up to |n| bytes; returns the count (> 0) or a negative
 * WEBSOCK__IO_* code. After a WANT code the next call must pass the same
 * bytes again (they may have moved: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
long websock__tls_write(SSL *ssl, const uint8_t *p, size_t n);
/* Sends close_notify once, without waiting for the peer's (best effort). */
void websock__tls_shutdown(SSL *ssl);
/* The server name the client asked for (SNI), or NULL. */
const char *websock__tls_sni(SSL *ssl);
/* The verified client certificate's subject (RFC 2253, e.g.
 * "CN=alice,O=Example") in |out|; 0 when there is none (no TLS, no client
 * certificate, or it did not verify), else its length. */
size_t websock__tls_peer_subject(SSL *ssl, char *out, size_t cap);

#endif
