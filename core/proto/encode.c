/* Whole-message frame encoding for the send path. Layer: proto. */
#include "encode.h"

#include <stdint.h>
#include <string.h>

#include "frame.h"

size_t websock__encoded_size(size_t len, size_t fragment_size) {
  size_t frames = 1;
  if (fragment_size && len > fragment_size)
    frames = len / fragment_size + (len % fragment_size != 0);
  size_t headers = frames * WEBSOCK__FRAME_HEADER_MAX;
  /* A size no buffer can have: reserving it fails instead of wrapping. */
  if (frames > SIZE_MAX / WEBSOCK__FRAME_HEADER_MAX || len > SIZE_MAX - headers)
    return SIZE_MAX;
  return len + headers;
}

long websock__encode_message(websock__buf *out, int opcode, const void *data,
                             size_t len, size_t fragment_size, int *grew) {
  size_t need = websock__encoded_size(len, fragment_size);
  int r = websock__buf_reserve(out, need);
  if (r < 0)
    return -1;
  if (grew)
    *grew = r;
  size_t start = out->len;
  const uint8_t *p = data;
  int control = (opcode & 0xF) >= 8;
  size_t chunk = (!control && fragment_size) ? fragment_size : len;
  size_t off = 0;
  int op = opcode;
  do {
    size_t n = len - off < chunk ? len - off : chunk;
    int fin = off + n == len;
    out->len +=
        websock__frame_encode_header(out->data + out->len, fin, op, n, NULL);
    if (n)
      memcpy(out->data + out->len, p + off, n);
    out->len += n;
    off += n;
    op = 0; /* later fragments are continuation frames */
  } while (off < len);
  return (long)(out->len - start);
}
