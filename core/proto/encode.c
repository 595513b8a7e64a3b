/* Whole-message frame encoding for the send path. Layer: proto. */
#include "encode.h"

#include <stdint.h>
#include <string.h>
#include <sys/types.h>

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

long websock__mask_frames(websock__buf *out, const uint8_t *frames, size_t len,
                          websock__mask_key_fn next_key, void *ud, int *grew) {
  /* First the frames are counted and checked, headers only: the output
   * then grows once, by exactly 4 bytes a frame, and the masking pass
   * below can fail only for want of a key. */
  size_t nframes = 0;
  for (size_t off = 0; off < len; nframes++) {
    websock__frame_header h;
    ssize_t hl = websock__frame_parse_header(frames + off, len - off, &h);
    if (hl <= 0 || h.masked || h.payload_len > len - off - (size_t)hl)
      return -1;
    off += (size_t)hl + (size_t)h.payload_len;
  }
  if (nframes > (SIZE_MAX - len) / 4)
    return -1;
  int r = websock__buf_reserve(out, len + nframes * 4);
  if (r < 0)
    return -1;
  if (grew)
    *grew = r;
  size_t start = out->len;
  for (size_t off = 0; off < len;) {
    websock__frame_header h;
    size_t hl =
        (size_t)websock__frame_parse_header(frames + off, len - off, &h);
    uint8_t key[4];
    if (next_key(ud, key) < 0) {
      out->len = start;
      return -1;
    }
    int op = h.opcode | (h.rsv & 4 ? WEBSOCK__FRAME_RSV1 : 0);
    out->len += websock__frame_encode_header(out->data + out->len, h.fin, op,
                                             h.payload_len, key);
    size_t n = (size_t)h.payload_len;
    if (n) {
      memcpy(out->data + out->len, frames + off + hl, n);
      websock__mask(out->data + out->len, n, key, 0);
    }
    out->len += n;
    off += hl + n;
  }
  return (long)(out->len - start);
}
