/* permessage-deflate negotiation (RFC 7692 §5, §7.1): reads the client's
 * Sec-WebSocket-Extensions offers and writes the server's answer, or
 * writes a client's offer and checks the server's answer. Pure string
 * work. Layer: proto (no I/O). */
#ifndef WEBSOCK_PROTO_PMD_H
#define WEBSOCK_PROTO_PMD_H

#include <stddef.h>
#include <stdint.h>

/* What both ends agreed to, in RFC terms (the server's and the client's
 * side of the connection, whichever role we have). */
typedef struct websock__pmd_params {
  /* 1: the server resets its compressor after every message */
  uint8_t server_no_context_takeover;
  /* 1: the client resets its compressor after every message */
  uint8_t client_no_context_takeover;
  /* Window of the server's compressor, 8..15 (15 when not limited). As a
   * server this is the window our deflater uses: the smaller of ours and
   * the client's limit, never 8. In shared mode a connection whose value
   * is below the shared compressor's window needs a compressor of this
   * window (one per thread and window size will do). As a client, the
   * window our inflater needs. */
  uint8_t server_max_window_bits;
  /* Largest window the client's compressor may use, 8..15 (15 when not
   * limited): the window the server's inflater needs (8 is inflated with
   * 9, see deflate.h). As a client, the window our deflater uses. */
  uint8_t client_max_window_bits;
} websock__pmd_params;

/* How we want compression, in terms of our end and the peer, so the same
 * policy serves both roles. */
typedef struct websock__pmd_policy {
  /* 0: shared — one compressor per I/O thread, so we never keep context
   * (as a server we always answer server_no_context_takeover); 1:
   * dedicated — a compressor per connection that keeps its context unless
   * the peer asked us not to. */
  int dedicated;
  /* 9..15 (0 means 15): our compressor's largest window. A client asking
   * for a smaller one gets the smaller one. */
  int window_bits;
  /* Ask the peer not to keep its context, so no inflater per connection is
   * needed. As a server: answer client_no_context_takeover when the client
   * offered it (also done in shared mode). As a client: offer
   * server_no_context_takeover. */
  int request_client_no_context_takeover;
  /* As a server: answer client_no_context_takeover even when the client
   * did not offer it. RFC 7692 §7.1.1.2 allows this (a client can always
   * reset its compressor), but the answer then goes beyond the offer, so
   * it is off unless set. Unused as a client. */
  int insist_peer_no_context_takeover;
  /* 9..15 (0 means 15): the largest window we want the peer's compressor
   * to use, which bounds our inflater's memory. As a server it takes
   * effect only when the client offered client_max_window_bits (the RFC
   * allows the parameter in an answer to such offers only). As a client:
   * offer server_max_window_bits with it when below 15. */
  int peer_window_bits;
} websock__pmd_policy;

/* Room for any answer and any offer written here, with its NUL (the
 * longest names all four parameters: 129 bytes). */
#define WEBSOCK__PMD_VALUE_MAX 160

/* Server side. |offers| is the value of every Sec-WebSocket-Extensions
 * request header joined by ", " (the caller joins them); it need not be
 * NUL-terminated. Walks the offers in the client's order, skipping other
 * extensions and declining (skipping) a permessage-deflate offer with an
 * unknown or repeated parameter, a value on a parameter that takes none,
 * no value where one is required, or a window that is not 8..15 written as
 * plain decimal without leading zeros (a quoted-string value is unquoted
 * first). Extension and parameter names match without regard to case.
 * An offer demanding server_max_window_bits=8 is declined too: zlib
 * cannot compress raw DEFLATE with a 256-byte window (it uses 512), and
 * the answer may not be larger than the offer. A malformed list element is
 * skipped up to the next comma outside a quoted string.
 *
 * The first acceptable offer is accepted: *out is filled and the answer's
 * header VALUE is written to |resp| as a NUL-terminated string, e.g.
 * "permessage-deflate; server_no_context_takeover". The answer holds only
 * parameters the client offered, plus server_no_context_takeover in shared
 * mode (which §7.1.1.1 allows unoffered) and, if |pol| insists,
 * client_no_context_takeover (§7.1.1.2). server_max_window_bits appears
 * only when offered (§7.1.2.1 would allow it unoffered, but a smaller
 * window only saves the client memory, and some clients reject it); a
 * client_max_window_bits value only when the client offered that
 * parameter (§7.1.2.2 forbids it otherwise).
 *
 * Returns 1 when agreed, 0 when no offer is acceptable (send no extension
 * header; |resp| is set to ""), or -1 when |resp| (|cap| bytes) is too
 * small for the answer (*out is then left unchanged). */
int websock__pmd_negotiate(const char *offers, size_t len,
                           const websock__pmd_policy *pol,
                           websock__pmd_params *out, char *resp, size_t cap);

/* Client side: writes the offer's header value for |pol| into |out| as a
 * NUL-terminated string, e.g. "permessage-deflate; client_max_window_bits".
 * Both kinds offer client_max_window_bits (with our window as a hint
 * below 15): a dedicated compressor takes any window, and a loop keeps a
 * shared one per window size. A shared one also offers
 * client_no_context_takeover.
 * Returns the length written, or -1 when |cap| is too small. */
int websock__pmd_offer(const websock__pmd_policy *pol, char *out, size_t cap);

/* Client side: checks the server's Sec-WebSocket-Extensions answer (its
 * value, |len| bytes) to the offer websock__pmd_offer(|pol|) made. Returns
 * 1 accepted (*out filled), 0 when the answer is empty (no extension), or
 * -1 when the connection must fail (RFC 7692 §5, §7.1): several or other
 * extensions, an unknown or repeated parameter, a bad value, a parameter
 * or value we did not offer (client_max_window_bits when we did not offer
 * it, a server window above the one we asked for), an answer that drops a
 * parameter we asked for, or client_max_window_bits=8, which zlib cannot
 * compress with. */
int websock__pmd_check_response(const char *value, size_t len,
                                const websock__pmd_policy *pol,
                                websock__pmd_params *out);

#endif
