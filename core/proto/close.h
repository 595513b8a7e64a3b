/* Close codes and close frame payloads (RFC 6455 section 7.4), pure.
 * Layer: proto. */
#ifndef WEBSOCK_PROTO_CLOSE_H
#define WEBSOCK_PROTO_CLOSE_H

#include <stddef.h>
#include <stdint.h>

/* Returns 1 when |code| may appear in a close frame on the wire:
 * 1000-1003, 1007-1014, 3000-4999. 1004-1006, 1015, other 1xxx, 2xxx and
 * anything below 1000 or above 4999 are invalid. */
int websock__close_code_valid(unsigned code);

/* Parses a received close payload. |len| 0 gives code 1005 (no status) and
 * an empty reason. Returns 0 and sets |*code|, |*reason|, |*reason_len|
 * (pointing into |payload|), or WEBSOCK__PROTO_ERR_PROTOCOL for length 1 or
 * an invalid code, or WEBSOCK__PROTO_ERR_UTF8 for a reason that is not
 * valid UTF-8. */
int websock__close_parse(const uint8_t *payload, size_t len, unsigned *code,
                         const uint8_t **reason, size_t *reason_len);

/* Builds a close payload (2-byte code + reason) into |out| (room for 125
 * bytes). The reason is cut to 123 bytes at a UTF-8 boundary. Code 0 or
 * 1005 gives an empty payload. Returns the payload length. */
size_t websock__close_build(uint8_t *out, unsigned code, const char *reason,
                            size_t reason_len);

#endif
