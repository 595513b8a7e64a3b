/* Streaming message reader: frames -> messages, pure: no I/O.
 * Layer: proto. Takes bytes in any split and reports message data and
 * control frames through callbacks, enforcing RFC 6455 rules and limits. */
#ifndef WEBSOCK_PROTO_READER_H
#define WEBSOCK_PROTO_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "utf8.h"

typedef struct websock__reader_callbacks {
  /* A piece of a data message. |opcode| is TEXT or BINARY (the message's
   * type, also for continuation frames). |first| is 1 on the first piece of
   * a message, |last| is 1 on the final piece (the piece may be empty, e.g.
   * an empty final continuation frame). Pieces arrive in order; |data| is
   * already unmasked, points into the buffer passed to feed (mutable), and is
   * valid only during the call. Text is already UTF-8 checked up to here,
   * except in a compressed message (reader->msg_compressed): its bytes are
   * DEFLATE data, and the caller must check the inflated text itself.
   * Return 0 to go on, non-zero to stop feed with WEBSOCK__PROTO_ERR_CALLBACK.
   */
  int (*on_data)(void *ud, int opcode, const uint8_t *data, size_t len,
                 int first, int last);
  /* A complete control frame: PING, PONG or CLOSE, with its unmasked
   * payload (<= 125 bytes; for CLOSE already validated with
   * websock__close_parse). Same return convention as on_data. */
  int (*on_control)(void *ud, int opcode, const uint8_t *data, size_t len);
} websock__reader_callbacks;

/* Which frames a reader takes: a server's peer must mask every frame, a
 * client's peer must mask none (RFC 6455 section 5.1). */
enum websock__mask_rule {
  WEBSOCK__MASK_ANY = 0,      /* both (tests and tools) */
  WEBSOCK__MASK_REQUIRED = 1, /* the server's rule */
  WEBSOCK__MASK_FORBIDDEN = 2 /* the client's rule */
};

typedef struct websock__reader {
  /* limits (set before feeding; 0 = unlimited) */
  uint64_t max_frame_size;   /* payload bytes of one frame */
  uint64_t max_message_size; /* payload bytes of one reassembled message */
  int mask_rule;             /* enum websock__mask_rule */
  /* 1 once permessage-deflate was negotiated (set after _init; 0 keeps
   * every RSV bit a protocol error): RSV1 may then mark the first frame of
   * a TEXT or BINARY message as compressed (RFC 7692 §6). */
  uint8_t allow_rsv1;
  /* 1 while the message in progress is compressed (its first frame had
   * RSV1), readable from on_data: the pieces are then DEFLATE data to
   * inflate, and text is NOT UTF-8 checked here. 0 between messages. */
  uint8_t msg_compressed;
  /* state (private) */
  websock__frame_header hdr; /* current frame's header once complete */
  uint8_t hbuf[WEBSOCK__FRAME_HEADER_MAX]; /* partial header bytes */
  uint8_t hlen;                            /* bytes in hbuf */
  uint8_t in_payload;   /* 1 while reading the current frame's payload */
  uint8_t msg_opcode;   /* opcode of the message in progress, 0 if none */
  uint8_t msg_started;  /* 1 once the first piece of msg was reported */
  uint8_t closed;       /* 1 after a CLOSE frame or an error */
  uint64_t frame_pos;   /* payload bytes of current frame consumed */
  uint64_t msg_size;    /* payload bytes of current message so far */
  websock__utf8 utf8;   /* text validation across fragments */
  uint8_t ctrl[125];    /* control frame payload being collected */
  int error_close_code; /* close code to send after an error */
} websock__reader;

/* Initialises |r| with the given limits and |mask_rule| (enum
 * websock__mask_rule). */
void websock__reader_init(websock__reader *r, uint64_t max_frame_size,
                          uint64_t max_message_size, int mask_rule);

/* 1 when |r| sits between messages with no partial frame: a fresh reader
 * with the same limits would behave the same from here on. */
int websock__reader_at_rest(const websock__reader *r);

/* Feeds |len| bytes (unmasked in place, hence not const). Returns the number
 * of bytes consumed: |len| normally; fewer when a callback stopped it or
 * after a CLOSE frame (bytes after the CLOSE are not consumed and the reader
 * accepts nothing more: feed returns 0). On a violation returns a negative
 * WEBSOCK__PROTO_ERR_* and sets r->error_close_code to the code to send:
 * 1002 protocol error (bad opcode, RSV bits set — with allow_rsv1, RSV1
 * still on a continuation or control frame and RSV2/RSV3 always — a frame
 * unmasked or masked against the mask rule, continuation with no message, new
 * data frame inside a fragmented message, bad control frame, bad close
 * payload), 1007 bad UTF-8 in text (reported as soon as the bad byte arrives,
 * also mid-fragment) or in a close reason, 1009 a frame or message over its
 * limit (checked from the header, before the payload arrives). */
ssize_t websock__reader_feed(websock__reader *r, uint8_t *buf, size_t len,
                             const websock__reader_callbacks *cb, void *ud);

#endif
