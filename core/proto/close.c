/* Close codes and close frame payloads (RFC 6455 sections 5.5.1 and 7.4).
 * Layer: proto (pure, no I/O). */
#include "close.h"

#include <string.h>

#include "frame.h"
#include "utf8.h"
#include "websock/event.h"

/* Close payloads are control frame payloads: at most 125 bytes, 2 of which
 * carry the code. */
#define CLOSE_REASON_MAX 123

int websock__close_code_valid(unsigned code) {
  if (code >= 1000 && code <= 1003)
    return 1;
  /* 1004 is reserved; 1005/1006/1015 are for local reporting only. */
  if (code >= 1007 && code <= 1014)
    return 1;
  return code >= 3000 && code <= 4999;
}

int websock__close_parse(const uint8_t *payload, size_t len, unsigned *code,
                         const uint8_t **reason, size_t *reason_len) {
  if (len == 0) {
    *code = WEBSOCK_CLOSE_NO_STATUS;
    *reason = payload;
    *reason_len = 0;
    return 0;
  }
  if (len == 1)
    return WEBSOCK__PROTO_ERR_PROTOCOL;
  unsigned c = ((unsigned)payload[0] << 8) | payload[1];
  if (!websock__close_code_valid(c))
    return WEBSOCK__PROTO_ERR_PROTOCOL;
  if (!websock__utf8_valid(payload + 2, len - 2))
    return WEBSOCK__PROTO_ERR_UTF8;
  *code = c;
  *reason = payload + 2;
  *reason_len = len - 2;
  return 0;
}

size_t websock__close_build(uint8_t *out, unsigned code, const char *reason,
                            size_t reason_len) {
  if (code == 0 || code == WEBSOCK_CLOSE_NO_STATUS)
    return 0;
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  if (!reason)
    return 2;
  size_t n = reason_len;
  if (n > CLOSE_REASON_MAX) {
    /* Back off to the start of the code point that crosses the limit, so
     * the peer does not see a truncated sequence (it would fail with 1007). */
    n = CLOSE_REASON_MAX;
    while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80)
      n--;
  }
  memcpy(out + 2, reason, n);
  return 2 + n;
}
