/* Encoding whole outbound messages into frames, pure: no I/O.
 * Layer: proto (uses util/buf). */
#ifndef WEBSOCK_PROTO_ENCODE_H
#define WEBSOCK_PROTO_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Appends the unmasked frame(s) of one message to |out|: one frame, or
 * frames of at most |fragment_size| payload bytes when it is non-zero
 * (TEXT/BINARY then CONT..., fin on the last). Control opcodes are never
 * fragmented. |opcode| | WEBSOCK__FRAME_RSV1 marks a compressed message:
 * RSV1 goes on its first frame only. Returns the bytes appended, or -1 when
 * allocation failed; *grew is set to 1 when |out| had to allocate. */
long websock__encode_message(websock__buf *out, int opcode, const void *data,
                             size_t len, size_t fragment_size, int *grew);

/* Upper bound of the encoded size of such a message. */
size_t websock__encoded_size(size_t len, size_t fragment_size);

/* Gives the masking key of the next frame: 4 bytes a peer cannot predict
 * (RFC 6455 section 10.3). Returns 0, or -1 when no random source
 * answered. */
typedef int (*websock__mask_key_fn)(void *ud, uint8_t key[4]);

/* The client's side of the send path: appends to |out| the frames in
 * |frames| (|len| bytes of whole unmasked frames, as the encoders here
 * write them) each masked with a fresh key from |next_key|. Every frame
 * grows by its 4-byte key; nothing else changes. Returns the bytes
 * appended, or -1 when allocation failed, a key could not be had, or
 * |frames| does not hold whole valid frames (|out| is then as it was);
 * *grew as above. */
long websock__mask_frames(websock__buf *out, const uint8_t *frames, size_t len,
                          websock__mask_key_fn next_key, void *ud, int *grew);

#endif
