/* wsload's permessage-deflate (RFC 7692) client side: the offer, the check
 * of the server's answer, and compressing and inflating one message with
 * zlib. No sockets here; loadgen.c owns the connections. */
#ifndef WSLOAD_DEFLATE_H
#define WSLOAD_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

/* What the server's answer agreed to. */
typedef struct wsl_pmd {
  /* 1: permessage-deflate is in use on the connection */
  bool on;
  /* 1: the server resets its compressor after every message, so our
   * inflater need not keep the previous message's window */
  bool server_reset;
  /* 1: we reset our compressor after every message (we offered or the
   * server asked client_no_context_takeover) */
  bool client_reset;
  /* Window our compressor may use, 8..15 (client_max_window_bits) */
  int client_bits;
  /* Window the server said it uses, 8..15 (server_max_window_bits) */
  int server_bits;
} wsl_pmd;

/* A growable output buffer. */
typedef struct wsl_zbuf {
  uint8_t *p; /* the bytes (malloc'd) */
  size_t len; /* bytes in use */
  size_t cap; /* bytes allocated */
} wsl_zbuf;

/* The Sec-WebSocket-Extensions value we offer. With |client_reset| it is
 * "permessage-deflate; client_no_context_takeover; client_max_window_bits"
 * (we reset our compressor, and the server may narrow its window); without
 * it Chrome's offer, "permessage-deflate; client_max_window_bits". */
const char *wsl_pmd_offer(bool client_reset);

/* Checks the server's answer (the value of its Sec-WebSocket-Extensions
 * headers joined by ", ", |len| bytes) to wsl_pmd_offer(|client_reset|).
 * Returns 1 and fills *out when it accepts permessage-deflate, 0 when the
 * answer is empty (declined), -1 when the connection must fail (RFC 7692
 * §5, §7.1): another or a second extension, an unknown or repeated
 * parameter, a value on server_/client_no_context_takeover, a window
 * missing or not 8..15 in plain decimal (quoted-string values are
 * unquoted first). *why then names the reason. */
int wsl_pmd_check(const char *value, size_t len, bool client_reset,
                  wsl_pmd *out, const char **why);

/* A raw-DEFLATE compressor at zlib |level| with a window of |bits|
 * (9..15) and memLevel 8, or NULL when out of memory. */
z_stream *wsl_deflater_new(int level, int bits);
/* A raw-DEFLATE inflater with a 32 KiB window (fits any server window), or
 * NULL when out of memory. */
z_stream *wsl_inflater_new(void);
/* Frees either kind; NULL is a no-op. */
void wsl_deflater_free(z_stream *z);
void wsl_inflater_free(z_stream *z);

/* Compresses one message of |n| bytes into |out| (replacing its contents):
 * DEFLATE blocks ended by Z_SYNC_FLUSH, with the 00 00 FF FF tail removed
 * (RFC 7692 §7.2.1). With |reset| the compressor starts afresh for the
 * next message (no context takeover). Returns 0, or -1 on a zlib error. */
int wsl_deflate_msg(z_stream *z, const uint8_t *in, size_t n, wsl_zbuf *out,
                    bool reset);

/* Writes |n| bytes (at most 65535) as one non-final stored DEFLATE block
 * to |out| (n + 5 bytes); returns the bytes written. The block ends on a
 * byte boundary, so a fresh compressor's output may follow it (its
 * distances reach back no further than its own start). A message that
 * ends with the block needs one more 00 byte (the header of the empty
 * stored block whose 00 00 FF FF the receiver appends). */
size_t wsl_stored_block(uint8_t *out, const uint8_t *p, size_t n);

/* Inflates one message's compressed payload (|n| bytes, the tail not
 * included) into |out| (replacing its contents), at most |limit| bytes.
 * With |reset| the inflater starts the next message with an empty window;
 * otherwise it keeps this message's window (also across a final block).
 * Returns 0, -1 on corrupt data (also data that stops inside a block once
 * the tail is added), -2 past |limit|. After an error the
 * stream's window is unusable: the caller fails the connection. */
int wsl_inflate_msg(z_stream *z, const uint8_t *in, size_t n, wsl_zbuf *out,
                    size_t limit, bool reset);

#endif
