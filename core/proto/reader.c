/* Streaming frame reader: bytes in any split -> data pieces and control
 * frames, enforcing RFC 6455 framing, fragmentation, UTF-8 and size rules.
 * Layer: proto (pure, no I/O). */
#include "reader.h"

#include <string.h>

#include "close.h"
#include "websock/event.h"

void websock__reader_init(websock__reader *r, uint64_t max_frame_size,
                          uint64_t max_message_size, int mask_rule) {
  memset(r, 0, sizeof *r);
  r->max_frame_size = max_frame_size;
  r->max_message_size = max_message_size;
  r->mask_rule = mask_rule;
  websock__utf8_init(&r->utf8);
}

/* Marks the reader dead and maps |err| to the close code to send. */
static ssize_t reader_fail(websock__reader *r, int err) {
  r->closed = 1;
  switch (err) {
  case WEBSOCK__PROTO_ERR_UTF8:
    r->error_close_code = WEBSOCK_CLOSE_INVALID_DATA;
    break;
  case WEBSOCK__PROTO_ERR_TOO_BIG:
    r->error_close_code = WEBSOCK_CLOSE_TOO_BIG;
    break;
  case WEBSOCK__PROTO_ERR_CALLBACK:
    break; /* the caller decided; nothing to tell the peer from here */
  default:
    r->error_close_code = WEBSOCK_CLOSE_PROTOCOL_ERROR;
    err = WEBSOCK__PROTO_ERR_PROTOCOL;
    break;
  }
  return err;
}

/* Policy checks that only need the first two header bytes, run as soon as
 * they arrive so a bad peer is stopped without waiting for more. */
static int reader_check_start(const websock__reader *r, const uint8_t *b,
                              size_t n) {
  if (n >= 1) {
    unsigned op = b[0] & 0xFu;
    /* RSV1 is permessage-deflate's "compressed" bit, valid only on the
     * first frame of a data message (RFC 7692 §6.1); nothing defines RSV2
     * or RSV3. Checked only when a bit is set, so plain frames pay one
     * test as before. */
    if ((b[0] & 0x70) && ((b[0] & 0x70) != 0x40 || !r->allow_rsv1 ||
                          (op != WEBSOCK__OP_TEXT && op != WEBSOCK__OP_BINARY)))
      return WEBSOCK__PROTO_ERR_PROTOCOL;
    switch (op) {
    case WEBSOCK__OP_CONT:
      if (!r->msg_opcode)
        return WEBSOCK__PROTO_ERR_PROTOCOL;
      break;
    case WEBSOCK__OP_TEXT:
    case WEBSOCK__OP_BINARY:
      if (r->msg_opcode)
        return WEBSOCK__PROTO_ERR_PROTOCOL;
      break;
    case WEBSOCK__OP_CLOSE:
    case WEBSOCK__OP_PING:
    case WEBSOCK__OP_PONG:
      break;
    default:
      return WEBSOCK__PROTO_ERR_PROTOCOL;
    }
  }
  /* The mask bit must equal the rule's low bit: 1 for REQUIRED, 0 for
   * FORBIDDEN. */
  if (n >= 2 && r->mask_rule && (b[1] >> 7) != (r->mask_rule & 1))
    return WEBSOCK__PROTO_ERR_PROTOCOL;
  return 0;
}

/* Size limits, from the complete header before any payload is accepted. */
static int reader_check_size(const websock__reader *r,
                             const websock__frame_header *h) {
  uint64_t plen = h->payload_len;
  if (r->max_frame_size && plen > r->max_frame_size)
    return WEBSOCK__PROTO_ERR_TOO_BIG;
  if (h->opcode < 0x8 && r->max_message_size) {
    uint64_t so_far = h->opcode == WEBSOCK__OP_CONT ? r->msg_size : 0;
    if (so_far > r->max_message_size || plen > r->max_message_size - so_far)
      return WEBSOCK__PROTO_ERR_TOO_BIG;
  }
  return 0;
}

/* Takes header bytes from |buf| into r->hbuf. Returns the bytes consumed
 * (all of |len| while the header is incomplete) or a negative error; sets
 * r->in_payload once the header is complete and accepted. */
static ssize_t reader_take_header(websock__reader *r, const uint8_t *buf,
                                  size_t len) {
  size_t old = r->hlen;
  size_t take = sizeof r->hbuf - old;
  if (take > len)
    take = len;
  memcpy(r->hbuf + old, buf, take);
  size_t have = old + take;
  int err = reader_check_start(r, r->hbuf, have);
  if (err)
    return err;
  ssize_t hl = websock__frame_parse_header(r->hbuf, have, &r->hdr);
  if (hl < 0)
    return hl;
  if (hl == 0) {
    /* Incomplete means every byte given belongs to the header (it is at
     * most sizeof hbuf long), so all of them were kept. */
    r->hlen = (uint8_t)have;
    return (ssize_t)take;
  }
  err = reader_check_size(r, &r->hdr);
  if (err)
    return err;
  if (r->hdr.opcode == WEBSOCK__OP_TEXT ||
      r->hdr.opcode == WEBSOCK__OP_BINARY) {
    r->msg_opcode = r->hdr.opcode;
    r->msg_compressed = (uint8_t)((r->hdr.rsv >> 2) & 1);
    r->msg_started = 0;
    r->msg_size = 0;
    websock__utf8_init(&r->utf8);
  }
  r->hlen = 0;
  r->in_payload = 1;
  r->frame_pos = 0;
  return (ssize_t)((size_t)hl - old);
}

/* Handles |n| payload bytes of a data frame (n may be 0 for the single call
 * of an empty frame). */
static int reader_data(websock__reader *r, uint8_t *p, size_t n,
                       const websock__reader_callbacks *cb, void *ud) {
  const websock__frame_header *h = &r->hdr;
  if (h->masked)
    websock__mask(p, n, h->mask, r->frame_pos);
  int last = h->fin && r->frame_pos + n == h->payload_len;
  /* Compressed text is checked by whoever inflates it. */
  if (r->msg_opcode == WEBSOCK__OP_TEXT && !r->msg_compressed) {
    if (!websock__utf8_feed(&r->utf8, p, n))
      return WEBSOCK__PROTO_ERR_UTF8;
    if (last && !websock__utf8_complete(&r->utf8))
      return WEBSOCK__PROTO_ERR_UTF8;
  }
  int first = !r->msg_started;
  r->msg_started = 1;
  r->frame_pos += n;
  r->msg_size += n;
  if (cb->on_data && cb->on_data(ud, r->msg_opcode, p, n, first, last))
    return WEBSOCK__PROTO_ERR_CALLBACK;
  return 0;
}

/* Collects |n| bytes of a control frame payload; delivers it once whole. */
static int reader_control(websock__reader *r, const uint8_t *p, size_t n,
                          const websock__reader_callbacks *cb, void *ud) {
  const websock__frame_header *h = &r->hdr;
  /* frame_pos + n <= payload_len <= 125, enforced by the header parser. */
  uint8_t *dst = r->ctrl + r->frame_pos;
  memcpy(dst, p, n);
  if (h->masked)
    websock__mask(dst, n, h->mask, r->frame_pos);
  r->frame_pos += n;
  if (r->frame_pos < h->payload_len)
    return 0;
  size_t plen = (size_t)h->payload_len;
  if (h->opcode == WEBSOCK__OP_CLOSE) {
    unsigned code;
    const uint8_t *reason;
    size_t reason_len;
    int err = websock__close_parse(r->ctrl, plen, &code, &reason, &reason_len);
    if (err)
      return err;
  }
  if (cb->on_control && cb->on_control(ud, h->opcode, r->ctrl, plen))
    return WEBSOCK__PROTO_ERR_CALLBACK;
  return 0;
}

int websock__reader_at_rest(const websock__reader *r) {
  return r->hlen == 0 && !r->in_payload && r->msg_opcode == 0 && !r->closed;
}

ssize_t websock__reader_feed(websock__reader *r, uint8_t *buf, size_t len,
                             const websock__reader_callbacks *cb, void *ud) {
  if (r->closed)
    return 0;
  size_t pos = 0;
  for (;;) {
    if (!r->in_payload) {
      if (pos == len)
        break;
      ssize_t used = reader_take_header(r, buf + pos, len - pos);
      if (used < 0)
        return reader_fail(r, (int)used);
      pos += (size_t)used;
      if (!r->in_payload)
        break;
    }
    const websock__frame_header *h = &r->hdr;
    uint64_t left = h->payload_len - r->frame_pos;
    size_t n = len - pos;
    if (left < n)
      n = (size_t)left;
    int err = 0;
    if (h->opcode >= 0x8) {
      err = reader_control(r, buf + pos, n, cb, ud);
    } else if (n > 0 || h->payload_len == 0) {
      err = reader_data(r, buf + pos, n, cb, ud);
    }
    pos += n;
    if (err)
      return reader_fail(r, err);
    if (r->frame_pos < h->payload_len)
      break; /* pos == len: the rest of the payload is still to come */
    r->in_payload = 0;
    if (h->opcode == WEBSOCK__OP_CLOSE) {
      /* Nothing may follow a close frame; leave the rest unconsumed. */
      r->closed = 1;
      break;
    }
    if (h->opcode < 0x8 && h->fin) {
      r->msg_opcode = 0;
      r->msg_compressed = 0;
      r->msg_started = 0;
      r->msg_size = 0;
    }
  }
  return (ssize_t)pos;
}
