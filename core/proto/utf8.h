/* Incremental UTF-8 validation (RFC 3629), pure: no I/O.
 * Layer: proto. Used for text messages split over frames and reads. */
#ifndef WEBSOCK_PROTO_UTF8_H
#define WEBSOCK_PROTO_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Validator state; zero-initialise or call websock__utf8_init(). */
typedef struct websock__utf8 {
  uint32_t state; /* DFA state: 0 = at a code point boundary */
} websock__utf8;

void websock__utf8_init(websock__utf8 *v);

/* Feeds |n| bytes. Returns 1 while the input so far is a valid prefix of
 * some UTF-8 text, 0 as soon as it cannot be (fails fast: the first bad
 * byte is enough, e.g. 0xC0, 0xF5, a surrogate, an overlong form). After 0
 * the state stays invalid. */
int websock__utf8_feed(websock__utf8 *v, const uint8_t *p, size_t n);

/* Returns 1 when the bytes fed so far end on a code point boundary. */
int websock__utf8_complete(const websock__utf8 *v);

/* Whole-buffer check: returns 1 when |p| is complete, valid UTF-8. */
int websock__utf8_valid(const uint8_t *p, size_t n);

#endif
