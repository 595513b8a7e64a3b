/* RFC 6455 section 5.2 frame headers (parse/encode) and payload masking.
 * Layer: proto (pure, no I/O). */
#include "frame.h"

#include <string.h>

ssize_t websock__frame_parse_header(const uint8_t *buf, size_t len,
                                    websock__frame_header *h) {
  if (len < 1)
    return WEBSOCK__PROTO_NEED_MORE;
  uint8_t b0 = buf[0];
  h->fin = (uint8_t)(b0 >> 7);
  h->rsv = (uint8_t)((b0 >> 4) & 0x7);
  h->opcode = (uint8_t)(b0 & 0xF);
  /* Control frames must not be fragmented (5.5): known from byte 0, so
   * reject before waiting for the rest of the header. */
  if (h->opcode >= 0x8 && !h->fin)
    return WEBSOCK__PROTO_ERR_PROTOCOL;
  if (len < 2)
    return WEBSOCK__PROTO_NEED_MORE;
  uint8_t b1 = buf[1];
  h->masked = (uint8_t)(b1 >> 7);
  uint8_t len7 = (uint8_t)(b1 & 0x7F);
  if (h->opcode >= 0x8 && len7 > 125)
    return WEBSOCK__PROTO_ERR_PROTOCOL;

  size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  if (len < 2 + ext)
    return WEBSOCK__PROTO_NEED_MORE;
  uint64_t plen = len7;
  if (ext) {
    plen = 0;
    for (size_t i = 0; i < ext; i++)
      plen = (plen << 8) | buf[2 + i];
    /* The most significant bit of a 64-bit length must be 0. */
    if (ext == 8 && (plen >> 63))
      return WEBSOCK__PROTO_ERR_PROTOCOL;
  }
  size_t need = 2 + ext + (h->masked ? 4 : 0);
  if (len < need)
    return WEBSOCK__PROTO_NEED_MORE;
  h->payload_len = plen;
  if (h->masked)
    memcpy(h->mask, buf + 2 + ext, 4);
  else
    memset(h->mask, 0, 4);
  h->header_len = need;
  return (ssize_t)need;
}

size_t websock__frame_encode_header(uint8_t *out, int fin, int opcode,
                                    uint64_t payload_len, const uint8_t *mask) {
  size_t n = 0;
  /* The RSV bits ride in |opcode| (WEBSOCK__FRAME_RSV1). */
  out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x7F));
  uint8_t mbit = mask ? 0x80 : 0;
  if (payload_len <= 125) {
    out[n++] = (uint8_t)(mbit | payload_len);
  } else if (payload_len <= 0xFFFF) {
    out[n++] = (uint8_t)(mbit | 126);
    out[n++] = (uint8_t)(payload_len >> 8);
    out[n++] = (uint8_t)payload_len;
  } else {
    out[n++] = (uint8_t)(mbit | 127);
    for (int shift = 56; shift >= 0; shift -= 8)
      out[n++] = (uint8_t)(payload_len >> shift);
  }
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

void websock__mask(uint8_t *data, size_t len, const uint8_t key[4],
                   uint64_t offset) {
  /* Rotate the key so that k[0] applies to data[0]; 8 bytes of the rotated
   * key then repeat with period 8, which fits a 64-bit word whatever the
   * byte order, because memcpy keeps the byte positions. */
  uint8_t k[8];
  for (size_t i = 0; i < 8; i++)
    k[i] = key[(offset + i) & 3];
  size_t i = 0;
  if (len >= 8) {
    uint64_t kw;
    memcpy(&kw, k, sizeof kw);
    for (; len - i >= 8; i += 8) {
      uint64_t w;
      memcpy(&w, data + i, sizeof w);
      w ^= kw;
      memcpy(data + i, &w, sizeof w);
    }
  }
  for (; i < len; i++)
    data[i] ^= k[i & 7];
}
