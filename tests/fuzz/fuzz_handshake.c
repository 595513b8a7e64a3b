/* libFuzzer target: HTTP request parsing, handshake checks and response
 * builders on arbitrary bytes, plus prefix consistency of the parser.
 * Layer: proto tests. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_ptr(const char *p, size_t n, const char *buf,
                           size_t len) {
  if (n && (p < buf || p + n > buf + len))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  /* First byte picks the head limit; the rest is the request. */
  size_t max_len = 16 + (size_t)data[0] * 16;
  size_t len = size - 1;
  /* An exact-size copy so ASan sees any read past the end. */
  char *buf = malloc(len);
  if (!buf)
    return 0;
  memcpy(buf, data + 1, len);

  websock__http_request req;
  ssize_t r = websock__http_parse_request(buf, len, max_len, &req);
  if (r > 0) {
    if ((size_t)r > len || (size_t)r > max_len)
      abort();
    if (req.num_headers > WEBSOCK__HTTP_MAX_HEADERS)
      abort();
    fuzz_check_ptr(req.method, req.method_len, buf, (size_t)r);
    fuzz_check_ptr(req.target, req.target_len, buf, (size_t)r);
    for (size_t i = 0; i < req.num_headers; i++) {
      fuzz_check_ptr(req.headers[i].name, req.headers[i].name_len, buf,
                     (size_t)r);
      fuzz_check_ptr(req.headers[i].value, req.headers[i].value_len, buf,
                     (size_t)r);
      if (req.headers[i].name_len == 0)
        abort();
    }
    websock__handshake hs;
    int hr = websock__handshake_check(&req, &hs);
    (void)websock__http_header_has_token(&req, "Connection", "upgrade");
    char out[1024];
    if (hr == WEBSOCK__HS_OK) {
      if (hs.key_len != 24 || !hs.host)
        abort();
      char accept[29];
      websock__handshake_accept_key(hs.key, hs.key_len, accept);
      if (strlen(accept) != 28)
        abort();
      char proto[256];
      const char *sub = NULL;
      if (hs.num_protocols > 0 && hs.protocol_lens[0] < sizeof proto) {
        memcpy(proto, hs.protocols[0], hs.protocol_lens[0]);
        proto[hs.protocol_lens[0]] = '\0';
        sub = proto;
      }
      if (websock__handshake_response(out, sizeof out, accept, sub, NULL, 0) ==
          0)
        abort();
    } else if (hr != WEBSOCK__HS_NOT_UPGRADE && hr != WEBSOCK__HS_BAD_REQUEST &&
               hr != WEBSOCK__HS_BAD_METHOD && hr != WEBSOCK__HS_BAD_VERSION) {
      abort();
    }
    if (hr == WEBSOCK__HS_OK || hr == WEBSOCK__HS_NOT_UPGRADE)
      fuzz_check_ptr(hs.path, hs.path_len, buf, (size_t)r);
    int status = hr < 0 ? -hr : 404;
    size_t cap = (size_t)data[0] * 2;
    size_t n =
        websock__http_response(out, cap < sizeof out ? cap : sizeof out, status,
                               NULL, buf, (size_t)r % 64, 1, NULL, 0);
    if (n > sizeof out)
      abort();
  } else if (r != WEBSOCK__HTTP_NEED_MORE &&
             r != WEBSOCK__HTTP_ERR_BAD_REQUEST &&
             r != WEBSOCK__HTTP_ERR_TOO_LARGE) {
    abort();
  }

  /* Prefixes: before a complete head only NEED_MORE; before an error only
   * NEED_MORE or that same error (errors may show early). */
  size_t step = 1 + (size_t)data[0] % 7;
  for (size_t k = 0; k < len; k += step) {
    websock__http_request q;
    ssize_t pr = websock__http_parse_request(buf, k, max_len, &q);
    if (r > 0) {
      if (k < (size_t)r && pr != WEBSOCK__HTTP_NEED_MORE)
        abort();
      if (k >= (size_t)r && pr != r)
        abort();
    } else if (pr != WEBSOCK__HTTP_NEED_MORE && pr != r) {
      abort();
    }
  }
  free(buf);
  return 0;
}
