/* permessage-deflate on the client side of the server tests: the offer,
 * and one message compressed or inflated as RFC 7692 sends it, with zlib.
 * Test code only. */
#ifndef WEBSOCK_TEST_WSDEFLATE_H
#define WEBSOCK_TEST_WSDEFLATE_H

#include <check.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

/* An offer in which both sides reset their context after every message. */
static const char offer[] __attribute__((unused)) =
    "Sec-WebSocket-Extensions: permessage-deflate; "
    "server_no_context_takeover; "
    "client_no_context_takeover\r\n";

/* One message compressed as RFC 7692 sends it (no context kept). */
static inline size_t deflate_msg(const void *in, size_t n, uint8_t *out,
                                 size_t cap) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, 0), Z_OK);
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.avail_in = (uInt)n;
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  ck_assert_int_eq(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
  size_t len = cap - zs.avail_out;
  deflateEnd(&zs);
  ck_assert_uint_ge(len, 4);
  ck_assert_mem_eq(out + len - 4, "\x00\x00\xff\xff", 4);
  return len - 4;
}

/* Inflates a reply (its own stream each time: shared mode keeps none, and
 * dedicated mode is told not to keep any by this client's offer). */
static inline size_t inflate_msg(const uint8_t *in, size_t n, uint8_t *out,
                                 size_t cap) {
  uint8_t buf[4096];
  ck_assert_uint_le(n + 4, sizeof buf);
  memcpy(buf, in, n);
  memcpy(buf + n, "\x00\x00\xff\xff", 4);
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  ck_assert_int_eq(inflateInit2(&zs, -15), Z_OK);
  zs.next_in = buf;
  zs.avail_in = (uInt)(n + 4);
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  int r = inflate(&zs, Z_SYNC_FLUSH);
  ck_assert(r == Z_OK || r == Z_BUF_ERROR);
  size_t len = cap - zs.avail_out;
  inflateEnd(&zs);
  return len;
}

#endif
