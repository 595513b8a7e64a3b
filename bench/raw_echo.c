/* raw_echo: the benchmark floor, a minimal single-threaded epoll WebSocket
 * echo server (no libevent): one read, echo every complete frame with one
 * write. Not a conformant server (no UTF-8 checks); for benchmarks only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define SHARED_CAP (256u << 10)
#define MAX_FRAME (16u << 20)
#define HS_MAX 8192

typedef struct conn {
  int fd;
  bool upgraded;
  bool close_after_write;
  uint32_t events;
  uint8_t *rbuf; /* only holds a partial frame between reads */
  size_t rlen, rcap;
  size_t need;   /* size of the incomplete frame, if known */
  uint8_t *wbuf; /* only used when a write was partial */
  size_t woff, wlen, wcap;
} conn_t;

static int epfd;
/* Single-threaded: every read lands here first, so an idle connection
 * owns no buffer at all. */
static uint8_t shared_buf[SHARED_CAP];
static volatile sig_atomic_t stop;
static unsigned long corrupt_every, drop_every, msg_count;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void ep_set(conn_t *c, uint32_t ev) {
  if (c->events == ev)
    return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
  c->events = ev;
}

static void conn_free(conn_t *c) {
  close(c->fd);
  free(c->rbuf);
  free(c->wbuf);
  free(c);
}

/* Writes out; keeps what the socket did not take. False: c was freed. */
static bool send_out(conn_t *c, const uint8_t *p, size_t len) {
  while (len) {
    ssize_t n = write(c->fd, p, len);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    conn_free(c);
    return false;
  }
  if (len) {
    if (c->wcap < len) {
      uint8_t *w = realloc(c->wbuf, len);
      if (!w) {
        conn_free(c);
        return false;
      }
      c->wbuf = w;
      c->wcap = len;
    }
    memcpy(c->wbuf, p, len);
    c->woff = 0;
    c->wlen = len;
    ep_set(c, EPOLLOUT); /* stop reading until the backlog is out */
    return true;
  }
  if (c->close_after_write) {
    conn_free(c);
    return false;
  }
  return true;
}

/* Answers the upgrade request in b. Returns the bytes consumed, or -1 if
 * c was freed (or is being closed). */
static long handshake(conn_t *c, uint8_t *b, size_t len) {
  uint8_t *end = memmem(b, len, "\r\n\r\n", 4);
  if (!end) {
    if (len > HS_MAX) {
      conn_free(c);
      return -1;
    }
    return 0;
  }
  size_t hlen = (size_t)(end - b) + 4;
  const char *key = NULL;
  size_t klen = 0;
  for (char *p = (char *)b; p < (char *)end;) {
    char *eol = memmem(p, (size_t)((char *)end + 2 - p), "\r\n", 2);
    if (!strncasecmp(p, "sec-websocket-key:", 18)) {
      key = p + 18;
      while (*key == ' ' || *key == '\t')
        key++;
      klen = (size_t)(eol - key);
      while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t'))
        klen--;
    }
    p = eol + 2;
  }
  if (!key || klen == 0 || klen > 64) {
    static const char bad[] =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    c->close_after_write = true;
    send_out(c, (const uint8_t *)bad, sizeof bad - 1);
    return -1;
  }
  char buf[128];
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  memcpy(buf, key, klen);
  memcpy(buf + klen, WS_GUID, sizeof WS_GUID - 1);
  EVP_Digest(buf, klen + sizeof WS_GUID - 1, md, &mdlen, EVP_sha1(), NULL);
  char acc[64];
  EVP_EncodeBlock((unsigned char *)acc, md, (int)mdlen);
  char resp[256];
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n",
                   acc);
  c->upgraded = true;
  if (!send_out(c, (const uint8_t *)resp, (size_t)n))
    return -1;
  return (long)hlen;
}

/* Moves len payload bytes from src down to dst (dst <= src) while
 * removing the mask, 8 bytes at a time. */
static void unmask_move(uint8_t *dst, const uint8_t *src, size_t len,
                        const uint8_t mask[4]) {
  uint8_t mm[8];
  uint64_t m8;
  for (int i = 0; i < 8; i++)
    mm[i] = mask[i & 3];
  memcpy(&m8, mm, 8);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, src + i, 8);
    w ^= m8;
    memcpy(dst + i, &w, 8);
  }
  for (; i < len; i++)
    dst[i] = src[i] ^ mask[i & 3];
}

/* Turns every complete masked frame in b into an unmasked echo frame,
 * in place (output trails input by 4+ bytes per frame), and writes all
 * of them at once. Returns the input bytes consumed, -1 if c was freed. */
static long echo_frames(conn_t *c, uint8_t *b, size_t blen) {
  size_t in = 0, out = 0;
  c->need = 0;
  while (blen - in >= 2 && !c->close_after_write) {
    uint8_t b0 = b[in], b1 = b[in + 1];
    if (!(b1 & 0x80)) {
      conn_free(c); /* client frames must be masked */
      return -1;
    }
    uint64_t len = b1 & 0x7f;
    size_t hl = 2;
    if (len == 126) {
      if (blen - in < 4)
        break;
      len = ((uint64_t)b[in + 2] << 8) | b[in + 3];
      hl = 4;
    } else if (len == 127) {
      if (blen - in < 10)
        break;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = (len << 8) | b[in + 2 + i];
      hl = 10;
    }
    if (len > MAX_FRAME) {
      conn_free(c);
      return -1;
    }
    size_t total = hl + 4 + (size_t)len;
    if (blen - in < total) {
      c->need = total; /* keep room for the whole frame */
      break;
    }
    int op = b0 & 0x0f;
    uint8_t mask[4];
    memcpy(mask, b + in + hl, 4);
    size_t n = (size_t)len;
    if (op == 0xA) { /* pong: nothing to echo */
      in += total;
      continue;
    }
    bool data = op < 0x8;
    if (data && (b0 & 0x80))
      msg_count++;
    if (data && drop_every && (b0 & 0x80) && msg_count % drop_every == 0) {
      in += total;
      continue;
    }
    memmove(b + out, b + in, hl);
    b[out] = op == 0x9 ? (uint8_t)((b0 & 0xf0) | 0xA) : b0;
    b[out + 1] = b1 & 0x7f;
    unmask_move(b + out + hl, b + in + hl + 4, n, mask);
    if (data && corrupt_every && (b0 & 0x80) && n &&
        msg_count % corrupt_every == 0)
      b[out + hl + n - 1] ^= 0x01;
    out += hl + n;
    in += total;
    if (op == 0x8)
      c->close_after_write = true;
  }
  if ((out || c->close_after_write) && !send_out(c, b, out))
    return -1;
  return (long)in;
}

/* Handshake or frames on b[0..len). Returns bytes consumed, -1: freed. */
static long process(conn_t *c, uint8_t *b, size_t len) {
  size_t done = 0;
  if (!c->upgraded) {
    long h = handshake(c, b, len);
    if (h <= 0)
      return h;
    done = (size_t)h;
  }
  long e = echo_frames(c, b + done, len - done);
  return e < 0 ? -1 : (long)done + e;
}

/* Keeps the unconsumed tail of a read in c->rbuf (or drops the buffer
 * when nothing is left). False: out of memory, c was freed. */
static bool keep_rest(conn_t *c, const uint8_t *b, size_t rest) {
  if (!rest) {
    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rcap = 0;
    return true;
  }
  size_t want = c->need > rest ? c->need : rest;
  if (want < 4096)
    want = 4096;
  if (c->rcap < want) {
    bool own = c->rbuf && b >= c->rbuf && b < c->rbuf + c->rcap;
    size_t off = own ? (size_t)(b - c->rbuf) : 0;
    uint8_t *nb = realloc(own ? c->rbuf : NULL, off + want);
    if (!nb) {
      conn_free(c);
      return false;
    }
    if (!own)
      free(c->rbuf);
    else
      b = nb + off;
    c->rbuf = nb;
    c->rcap = off + want;
  }
  memmove(c->rbuf, b, rest);
  c->rlen = rest;
  return true;
}

static void on_readable(conn_t *c) {
  for (;;) {
    uint8_t *b = shared_buf;
    size_t have = 0, room = SHARED_CAP;
    if (c->rlen) { /* continue a partial frame */
      if (c->rcap - c->rlen < 4096) {
        uint8_t *nb = realloc(c->rbuf, c->rcap * 2);
        if (!nb) {
          conn_free(c);
          return;
        }
        c->rbuf = nb;
        c->rcap *= 2;
      }
      b = c->rbuf;
      have = c->rlen;
      room = c->rcap - c->rlen;
    }
    ssize_t n = read(c->fd, b + have, room);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (n <= 0) {
      conn_free(c);
      return;
    }
    have += (size_t)n;
    long used = process(c, b, have);
    if (used < 0 || !keep_rest(c, b + used, have - (size_t)used))
      return;
    if (c->wlen) /* backpressure: wait for EPOLLOUT */
      return;
    if ((size_t)n < room)
      return;
  }
}

static void on_writable(conn_t *c) {
  while (c->woff < c->wlen) {
    ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
    if (n > 0) {
      c->woff += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    conn_free(c);
    return;
  }
  c->woff = c->wlen = 0;
  if (c->close_after_write) {
    conn_free(c);
    return;
  }
  ep_set(c, EPOLLIN);
}

static void on_accept(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_t *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->events = EPOLLIN;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) != 0)
      conn_free(c);
  }
}

int main(int argc, char **argv) {
  int port = 0;
  static const struct option lo[] = {
      {"port", 1, 0, 'p'},
      {"corrupt-every", 1, 0, 'c'},
      {"drop-every", 1, 0, 'd'},
      {"help", 0, 0, 'h'},
      {0, 0, 0, 0},
  };
  int o;
  while ((o = getopt_long(argc, argv, "p:", lo, NULL)) != -1) {
    switch (o) {
    case 'p':
      port = atoi(optarg);
      break;
    case 'c':
      corrupt_every = strtoul(optarg, NULL, 10);
      break;
    case 'd':
      drop_every = strtoul(optarg, NULL, 10);
      break;
    default:
      fprintf(stderr, "usage: raw_echo --port P [--corrupt-every N] "
                      "[--drop-every N]\n");
      return o == 'h' ? 0 : 2;
    }
  }
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "raw_echo: --port required\n");
    return 2;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
      listen(lfd, SOMAXCONN) != 0) {
    perror("raw_echo: bind/listen");
    return 1;
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &le);
  printf("listening on %d\n", port);
  fflush(stdout);

  struct epoll_event evs[512];
  while (!stop) {
    int n = epoll_wait(epfd, evs, 512, 1000);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c) {
        on_accept(lfd);
        continue;
      }
      if (evs[i].events & EPOLLOUT)
        on_writable(c);
      else
        on_readable(c);
    }
  }
  return 0;
}
