/* RFC 6455 frame header codec and masking, pure: no I/O.
 * Layer: proto. */
#ifndef WEBSOCK_PROTO_FRAME_H
#define WEBSOCK_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum websock__opcode {
  WEBSOCK__OP_CONT = 0x0,
  WEBSOCK__OP_TEXT = 0x1,
  WEBSOCK__OP_BINARY = 0x2,
  WEBSOCK__OP_CLOSE = 0x8,
  WEBSOCK__OP_PING = 0x9,
  WEBSOCK__OP_PONG = 0xA
};

/* Longest possible frame header: 2 + 8 (length) + 4 (mask). */
#define WEBSOCK__FRAME_HEADER_MAX 14

/* Internal error codes of the proto layer (distinct from the public ones). */
enum websock__proto_error {
  WEBSOCK__PROTO_NEED_MORE = 0,
  WEBSOCK__PROTO_ERR_PROTOCOL = -1001, /* violation: close 1002 */
  WEBSOCK__PROTO_ERR_UTF8 = -1002,     /* bad UTF-8 text: close 1007 */
  WEBSOCK__PROTO_ERR_TOO_BIG = -1003,  /* frame/message too big: 1009 */
  WEBSOCK__PROTO_ERR_CALLBACK = -1004  /* a callback asked to stop */
};

typedef struct websock__frame_header {
  uint8_t fin;          /* 1 when this is the final fragment */
  uint8_t rsv;          /* RSV1..3 as bits 2..0 */
  uint8_t opcode;       /* enum websock__opcode (or unknown value) */
  uint8_t masked;       /* 1 when a masking key is present */
  uint8_t mask[4];      /* masking key, valid when masked */
  uint64_t payload_len; /* payload length in bytes */
  size_t header_len;    /* bytes taken by the header, 2..14 */
} websock__frame_header;

/* Parses one frame header at |buf|. Returns the header length (> 0) when the
 * header is complete, WEBSOCK__PROTO_NEED_MORE (0) when more bytes are
 * needed, or WEBSOCK__PROTO_ERR_PROTOCOL for a header no peer may send:
 * a 64-bit length with the top bit set, a control frame (opcode >= 8) that
 * is fragmented or longer than 125 bytes. Opcode and RSV policy is left to
 * the caller (see reader.h). Never reads past |len|. */
ssize_t websock__frame_parse_header(const uint8_t *buf, size_t len,
                                    websock__frame_header *h);

/* RSV1 in the |opcode| argument of the encoders: the frame starts a
 * compressed message (permessage-deflate). */
#define WEBSOCK__FRAME_RSV1 0x40

/* Writes a header for a frame with the given fields into |out| (room for
 * WEBSOCK__FRAME_HEADER_MAX bytes) using the minimal length encoding.
 * |opcode| may carry WEBSOCK__FRAME_RSV1. |mask| is NULL for an unmasked
 * (server) frame. Returns bytes written. */
size_t websock__frame_encode_header(uint8_t *out, int fin, int opcode,
                                    uint64_t payload_len, const uint8_t *mask);

/* XORs |len| bytes at |data| in place with |key|, starting at byte |offset|
 * of the payload (so a payload unmasked in pieces gives the same result).
 * Word-at-a-time; |data| needs no alignment. */
void websock__mask(uint8_t *data, size_t len, const uint8_t key[4],
                   uint64_t offset);

#endif
