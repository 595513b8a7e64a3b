/* Blocking WebSocket test client (see wsclient.h). */
#include "wsclient.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static int wsc_fill(wsc *c, int timeout_ms) {
  struct pollfd p = {c->fd, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  if (r == 0)
    return -2;
  if (r < 0 || c->len == sizeof c->buf)
    return -1;
  ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
  if (n <= 0)
    return -1;
  c->len += (size_t)n;
  return 0;
}

wsc *wsc_connect(int port, const char *path, int *status) {
  return wsc_connect_ext(port, path, "", status, NULL, 0);
}

wsc *wsc_connect_ext(int port, const char *path, const char *headers,
                     int *status, char *head_out, size_t head_cap) {
  wsc *c = calloc(1, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
    wsc_free(c);
    return NULL;
  }
  char req[1024];
  int n =
      snprintf(req, sizeof req,
               "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s\r\n",
               path, headers);
  if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
    wsc_free(c);
    return NULL;
  }
  for (;;) {
    void *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end) {
      int code = 0;
      sscanf((char *)c->buf, "HTTP/1.1 %d", &code);
      if (status)
        *status = code;
      size_t head = (size_t)((uint8_t *)end - c->buf) + 4;
      if (head_cap) {
        size_t k = head < head_cap ? head : head_cap - 1;
        memcpy(head_out, c->buf, k);
        head_out[k] = 0;
      }
      memmove(c->buf, c->buf + head, c->len - head);
      c->len -= head;
      if (code != 101) {
        wsc_free(c);
        return NULL;
      }
      return c;
    }
    if (wsc_fill(c, 5000) < 0) {
      wsc_free(c);
      return NULL;
    }
  }
}

void wsc_free(wsc *c) {
  if (!c)
    return;
  close(c->fd);
  free(c);
}

void wsc_drop(wsc *c) {
  struct linger lg = {1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  wsc_free(c);
}

int wsc_send(wsc *c, int opcode, const void *p, size_t n) {
  uint8_t h[14];
  size_t hl = 0;
  h[hl++] = (uint8_t)(0x80 | opcode);
  if (n < 126) {
    h[hl++] = (uint8_t)(0x80 | n);
  } else if (n < 65536) {
    h[hl++] = 0x80 | 126;
    h[hl++] = (uint8_t)(n >> 8);
    h[hl++] = (uint8_t)n;
  } else {
    h[hl++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
  }
  uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
  memcpy(h + hl, mask, 4);
  hl += 4;
  uint8_t *frame = malloc(hl + n);
  memcpy(frame, h, hl);
  for (size_t i = 0; i < n; i++)
    frame[hl + i] = ((const uint8_t *)p)[i] ^ mask[i & 3];
  size_t off = 0;
  while (off < hl + n) {
    ssize_t w = send(c->fd, frame + off, hl + n - off, MSG_NOSIGNAL);
    if (w <= 0) {
      free(frame);
      return -1;
    }
    off += (size_t)w;
  }
  free(frame);
  return 0;
}

int wsc_recv(wsc *c, void *out, size_t cap, size_t *n, int timeout_ms) {
  for (;;) {
    if (c->len >= 2) {
      size_t hl = 2;
      uint64_t len = c->buf[1] & 0x7f;
      if (len == 126) {
        hl = 4;
        if (c->len >= 4)
          len = (uint64_t)c->buf[2] << 8 | c->buf[3];
      } else if (len == 127) {
        hl = 10;
        if (c->len >= 10) {
          len = 0;
          for (int i = 0; i < 8; i++)
            len = len << 8 | c->buf[2 + i];
        }
      }
      if (c->len >= hl && c->len >= hl + len) {
        int op = c->buf[0] & 0x0f;
        size_t k = len < cap ? (size_t)len : cap;
        memcpy(out, c->buf + hl, k);
        *n = k;
        memmove(c->buf, c->buf + hl + len, c->len - hl - (size_t)len);
        c->len -= hl + (size_t)len;
        return op;
      }
    }
    int r = wsc_fill(c, timeout_ms);
    if (r < 0)
      return r;
  }
}

int http_exchange(int port, const char *request, http_resp *out,
                  int timeout_ms) {
  memset(out, 0, sizeof *out);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  size_t rlen = strlen(request);
  char raw[sizeof out->head + sizeof out->body + 4];
  size_t got = 0;
  int rc = -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      send(fd, request, rlen, MSG_NOSIGNAL) != (ssize_t)rlen)
    goto done;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1)
      goto done; /* the server must end the response by closing */
    ssize_t n = recv(fd, raw + got, sizeof raw - got, 0);
    if (n < 0)
      goto done;
    if (n == 0)
      break;
    got += (size_t)n;
    if (got == sizeof raw)
      goto done;
  }
  char *end = memmem(raw, got, "\r\n\r\n", 4);
  if (!end || (size_t)(end - raw) >= sizeof out->head)
    goto done;
  size_t head = (size_t)(end - raw);
  memcpy(out->head, raw, head);
  out->head[head] = 0;
  out->body_len = got - head - 4;
  if (out->body_len >= sizeof out->body)
    goto done;
  memcpy(out->body, end + 4, out->body_len);
  out->body[out->body_len] = 0;
  if (sscanf(out->head, "HTTP/1.1 %d ", &out->status) != 1)
    goto done;
  char cl[32];
  if (http_header(out, "content-length", cl, sizeof cl) &&
      strtoull(cl, NULL, 10) != out->body_len)
    goto done;
  rc = 0;
done:
  close(fd);
  return rc;
}

const char *http_header(const http_resp *r, const char *name, char *buf,
                        size_t cap) {
  size_t nl = strlen(name);
  const char *line = strstr(r->head, "\r\n");
  while (line) {
    line += 2;
    const char *eol = strstr(line, "\r\n");
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    if (len > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
      const char *v = line + nl + 1;
      while (*v == ' ')
        v++;
      size_t vl = (size_t)(line + len - v);
      if (vl >= cap)
        vl = cap - 1;
      memcpy(buf, v, vl);
      buf[vl] = 0;
      return buf;
    }
    line = eol;
  }
  return NULL;
}
