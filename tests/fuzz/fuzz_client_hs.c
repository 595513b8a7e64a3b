/* libFuzzer target: the client's handshake on arbitrary bytes, as a
 * server's response head (parsed, then checked against a fixed key and
 * offer) and as a URL. Layer: proto tests. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client_hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_ptr(const char *p, size_t n, const char *buf,
                           size_t len) {
  if (n && (p < buf || p + n > buf + len))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy so ASan sees any read past the end. */
  char *buf = malloc(size ? size : 1);
  if (!buf)
    return 0;
  if (size)
    memcpy(buf, data, size);

  websock__http_response_head res;
  ssize_t r = websock__http_parse_response(buf, size, 8192, &res);
  if (r > 0) {
    if ((size_t)r > size || res.num_headers > WEBSOCK__HTTP_MAX_HEADERS ||
        res.status < 100 || res.status > 599)
      abort();
    fuzz_check_ptr(res.reason, res.reason_len, buf, (size_t)r);
    for (size_t i = 0; i < res.num_headers; i++) {
      if (res.headers[i].name_len == 0)
        abort();
      fuzz_check_ptr(res.headers[i].name, res.headers[i].name_len, buf,
                     (size_t)r);
      fuzz_check_ptr(res.headers[i].value, res.headers[i].value_len, buf,
                     (size_t)r);
    }
    static const char *const protos[] = {"chat", "superchat"};
    const char *p, *e;
    size_t pl, el;
    for (int offer = 0; offer < 2; offer++) {
      int c = websock__client_check_response(
          &res, "dGhlIHNhbXBsZSBub25jZQ==", protos, (size_t)offer * 2, offer,
          &p, &pl, &e, &el);
      if (c < WEBSOCK__CHS_EXTENSION || c > WEBSOCK__CHS_OK ||
          !websock__client_hs_strerror(c))
        abort();
      if (c == WEBSOCK__CHS_OK) {
        fuzz_check_ptr(p, pl, buf, (size_t)r);
        fuzz_check_ptr(e, el, buf, (size_t)r);
        if ((p && !offer) || (e && !offer))
          abort();
      }
    }
  } else if (r != WEBSOCK__HTTP_NEED_MORE &&
             r != WEBSOCK__HTTP_ERR_BAD_REQUEST &&
             r != WEBSOCK__HTTP_ERR_TOO_LARGE) {
    abort();
  }

  /* The same bytes as a URL; a parsed one must build a request. */
  char *url = malloc(size + 1);
  if (url) {
    if (size)
      memcpy(url, data, size);
    url[size] = '\0';
    websock__url u;
    const char *why = NULL;
    if (websock__url_parse(url, &u, &why) == 0) {
      if (u.port == 0 || u.host[0] == '\0' || u.target[0] != '/')
        abort();
      websock__buf out = {0};
      if (websock__client_request(&out, &u, "dGhlIHNhbXBsZSBub25jZQ==", NULL, 0,
                                  NULL, NULL, 0) != 0)
        abort();
      websock__buf_free(&out);
    } else if (!why) {
      abort();
    }
    free(url);
  }
  free(buf);
  return 0;
}
