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
void wsc_free(wsc *c);
/* Abortive close (no close frame). */
void wsc_drop(wsc *c);
int wsc_send(wsc *c, int opcode, const void *p, size_t n);
/* Reads one frame: returns opcode (>= 0), -1 on EOF/error, -2 on timeout.
 * Payload copied to out (cap bytes, truncated), length in *n. */
int wsc_recv(wsc *c, void *out, size_t cap, size_t *n, int timeout_ms);

#endif
