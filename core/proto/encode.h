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

#endif
