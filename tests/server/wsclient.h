/* A tiny blocking WebSocket client for the server tests: handshake, masked
 * frames out, frames in. Test code only. */
#ifndef WEBSOCK_TEST_WSCLIENT_H
#define WEBSOCK_TEST_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct wsc {
  int fd;
  uint8_t buf[1 << 16]; /* received, not yet parsed */
  size_t len;
} wsc;

/* Connects to 127.0.0.1:port and upgrades on |path|; returns NULL when the
 * server refused (the HTTP status is stored in *status when not NULL). */
wsc *wsc_connect(int port, const char *path, int *status);
/* The same with extra request header lines (|headers|, each ending in
 * CRLF), and the response head copied into |head_out| (|head_cap| bytes,
 * NUL-terminated; 0 for none). */
wsc *wsc_connect_ext(int port, const char *path, const char *headers,
                     int *status, char *head_out, size_t head_cap);
void wsc_free(wsc *c);
/* Abortive close (no close frame). */
void wsc_drop(wsc *c);
int wsc_send(wsc *c, int opcode, const void *p, size_t n);
/* Reads one frame: returns opcode (>= 0), -1 on EOF/error, -2 on timeout.
 * Payload copied to out (cap bytes, truncated), length in *n. */
int wsc_recv(wsc *c, void *out, size_t cap, size_t *n, int timeout_ms);

/* A plain HTTP response, split up (each part NUL-terminated). */
typedef struct http_resp {
  int status;
  char head[2048]; /* status line and headers, without the blank line */
  char body[2048];
  size_t body_len;
} http_resp;

/* Sends |request| (a whole HTTP request, verbatim) to 127.0.0.1:port and
 * reads until the server closes its side. Returns 0, or -1 when the
 * connection failed, the server did not close within |timeout_ms|, or the
 * response was malformed, too big, or its body did not match its
 * Content-Length. */
int http_exchange(int port, const char *request, http_resp *out,
                  int timeout_ms);
/* Copies the value of header |name| (case-insensitive) into |buf|; returns
 * buf, or NULL when the response has no such header. */
const char *http_header(const http_resp *r, const char *name, char *buf,
                        size_t cap);

#endif
