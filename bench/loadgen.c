/* wsload: epoll-based WebSocket echo load generator for the libwebsock2
 * benchmarks. Verifies every echoed byte, measures per-message latency and
 * prints one JSON result line on stdout. With --handshakes N it measures
 * connection set-up instead: N connections, --concurrency at a time, each
 * upgrading and then closing. With --deflate it offers permessage-deflate
 * and compresses every message it sends (wsload_deflate.c); --json makes
 * the bodies JSON-like chat records (wsload_json.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "wsload_deflate.h"
#include "wsload_json.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HDR_LEN 16     /* "%08x%08x" connection id + sequence number */
#define PAT_SPREAD 251 /* body pattern offset varies with seq % this */
#define HS_MAX 8192    /* max size of the HTTP upgrade response */
#define MAX_EVENTS 1024

/* ---- options ---------------------------------------------------------- */

static struct {
  const char *host;
  int port;
  int conns;
  size_t size;
  int inflight;
  double duration;
  double warmup;
  bool binary;
  bool idle;
  const char *path;
  int batch;
  long long messages; /* stop after this many measured messages (0: off) */
  pid_t signal_pid;   /* send SIGUSR2 here after warmup and at the end */
  double drain_timeout;
  bool quiet;
  bool tls;             /* wss://: TLS over each connection */
  const char *tls_ca;   /* verify the server against this CA file */
  long long handshakes; /* handshake mode: connections in all (0: off) */
  int concurrency;      /* handshake mode: connections at a time */
  double hs_timeout;    /* handshake mode: give up after this many s */
  bool deflate;         /* offer permessage-deflate, compress what we send */
  bool deflate_keep;    /* offer like Chrome: our compressor keeps context */
  int deflate_level;    /* zlib level of our compressor */
  bool json;            /* bodies are JSON-like chat records */
  int idle_messages;    /* --idle: each connection echoes this many first */
  bool deflate_full;    /* compress every message whole, no body cache */
} opt = {
    .host = "127.0.0.1",
    .port = 0,
    .conns = 1,
    .size = 16,
    .inflight = 1,
    .duration = 5.0,
    .warmup = 1.0,
    .binary = true,
    .idle = false,
    .path = "/",
    .batch = 256,
    .messages = 0,
    .signal_pid = 0,
    .drain_timeout = 5.0,
    .quiet = false,
    .concurrency = 64,
    .hs_timeout = 120.0,
    .deflate_level = 1,
};

/* ---- time, random ----------------------------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of this process (every thread), for client_cpu_us_per_msg. */
static uint64_t cpu_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state;

static uint64_t rng_next(void) {
  /* xorshift64*: fast, good enough for masks and keys */
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static void rng_seed(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s)
    s = now_ns() ^ ((uint64_t)getpid() << 32);
  rng_state = s ? s : 0x9E3779B97F4A7C15ULL;
}

/* ---- latency histogram (log-linear, ~3% precision) -------------------- */

#define HIST_SUB 32
#define HIST_N (64 + 58 * HIST_SUB)

static uint64_t hist[HIST_N];
static uint64_t hist_count;
static uint64_t hist_max;

static unsigned hist_index(uint64_t v) {
  if (v < 64)
    return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  uint64_t m = v >> (msb - 5); /* 32..63 */
  return 64u + (msb - 6u) * HIST_SUB + (unsigned)(m - 32);
}

static uint64_t hist_value(unsigned idx) {
  if (idx < 64)
    return idx;
  unsigned k = (idx - 64) / HIST_SUB, msb = k + 6;
  uint64_t m = 32 + (idx - 64) % HIST_SUB;
  uint64_t lo = m << (msb - 5);
  return lo + ((1ull << (msb - 5)) >> 1);
}

static void hist_add(uint64_t v) {
  hist[hist_index(v)]++;
  hist_count++;
  if (v > hist_max)
    hist_max = v;
}

static double hist_pct(double p) {
  if (!hist_count)
    return 0.0;
  uint64_t want = (uint64_t)(p * (double)hist_count);
  if (want >= hist_count)
    want = hist_count - 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < HIST_N; i++) {
    seen += hist[i];
    if (seen > want) {
      uint64_t v = hist_value(i);
      return (double)(v < hist_max ? v : hist_max) / 1000.0;
    }
  }
  return (double)hist_max / 1000.0;
}

/* ---- connection state ------------------------------------------------- */

/* ST_TLS: TCP connected, TLS handshake (SSL_connect) in progress */
enum {
  ST_IDLE,
  ST_CONNECTING,
  ST_TLS,
  ST_HANDSHAKE,
  ST_OPEN,
  ST_CLOSING,
  ST_DONE
};
#define ST_PENDING(s)                                                          \
  ((s) == ST_CONNECTING || (s) == ST_TLS || (s) == ST_HANDSHAKE)

typedef struct conn {
  int fd;
  SSL *ssl; /* NULL in plain mode */
  int state;
  uint32_t id;
  uint32_t events; /* currently registered epoll events */
  uint8_t *rbuf;
  size_t rlen, rcap;
  uint8_t *wbuf;
  size_t woff, wlen, wcap;
  uint32_t next_seq;   /* next sequence number to send */
  uint32_t expect_seq; /* next sequence number expected back */
  uint32_t inflight;
  uint64_t *sent_at; /* ring of send timestamps, size opt.inflight */
  uint8_t *frag;     /* reassembly of fragmented messages */
  size_t frag_len, frag_cap;
  int frag_op;
  char accept[32];      /* expected Sec-WebSocket-Accept */
  uint64_t start_ns;    /* handshake mode: when connect() was called */
  uint64_t deadline_ns; /* handshake mode: given up on after this */
  bool close_seen;      /* handshake mode: the server's close frame came */
  wsl_pmd pmd;          /* permessage-deflate as the server agreed to it */
  z_stream *zd;         /* our compressor when it keeps context (lazy) */
  z_stream *zi;         /* our inflater when the server keeps context */
  bool frag_z;          /* the message being reassembled is compressed */
} conn_t;

static conn_t *conns;
static int epfd;
static SSL_CTX *ssl_ctx;
static uint8_t *pattern;  /* printable body pattern, size + PAT_SPREAD */
static wsl_corpus corpus; /* --json: the bodies */
/* Compressors for connections that reset theirs after every message: with
 * one thread, one per window size serves them all (the bytes are the same
 * as from one each), so 10,000 connections do not cost 2.6 GB here. */
static z_stream *shared_zd[16];
static z_stream *shared_zi; /* likewise the inflater, when servers reset */
static uint8_t *plain_msg;  /* a message before it is compressed */
static wsl_zbuf zout, zin;  /* compressed message; inflated message */
/* Each distinct body compressed once (lazily), for connections that reset
 * their compressor after every message: such a message is then a stored
 * block with its header followed by its body's blocks, the same bytes a
 * fresh compressor makes of the body alone. So wsload spends no deflate
 * per message and the server, not the client, is the limit; the server
 * inflates as much as for a message compressed whole (--deflate-full). */
typedef struct zbody {
  uint8_t *p; /* the body's DEFLATE blocks, tail stripped (NULL: not yet) */
  size_t len; /* their length */
} zbody;
static zbody *zbodies; /* by body index, body_count() of them */

/* ---- global run state and counters ------------------------------------ */

enum {
  PH_CONNECT,
  PH_WARMUP,
  PH_PRIME, /* --idle --idle-messages: a few echoes, then hold */
  PH_PAUSE,
  PH_MEASURE,
  PH_DRAIN,
  PH_HOLD,
  PH_CLOSING,
  PH_FINISHED
};

static int phase = PH_CONNECT;
static uint64_t now; /* cached per loop iteration */
static uint64_t phase_deadline;
static uint64_t measure_start, measure_end;
static uint64_t cpu_start, cpu_end; /* our CPU time at both ends */
static int n_open, n_pending, n_started, n_closed, n_opened;
static long long total_inflight;
static long long sent_measure;
static long long sent_prime; /* messages sent in PH_PRIME */

static struct {
  long long msgs;       /* echoes received in the measured window */
  long long msgs_total; /* all echoes received, any phase */
  long long bytes;
  long long lost, reordered, corrupt;
  long long conn_errors, proto_errors;
  long long wire_bytes; /* payload bytes received in the measured window */
  long long wire_sent;  /* payload bytes sent in the measured window */
  long long bytes_sent; /* the same uncompressed */
  long long msgs_z;     /* echoes that came compressed, any phase */
  long long pmd_conns;  /* connections that agreed on permessage-deflate */
} st;

static void logmsg(const char *fmt, ...) {
  if (opt.quiet)
    return;
  va_list ap;
  va_start(ap, fmt);
  fputs("wsload: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (!q) {
    fprintf(stderr, "wsload: out of memory\n");
    exit(3);
  }
  return q;
}

static bool sending_allowed(void) {
  if (phase == PH_WARMUP || phase == PH_PRIME)
    return true;
  if (phase == PH_MEASURE)
    return opt.messages == 0 || sent_measure < opt.messages;
  return false;
}

static void ep_set(conn_t *c, uint32_t ev) {
  if (c->events == ev)
    return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
    c->events = ev;
}

static void conn_close(conn_t *c, bool error) {
  if (c->state == ST_DONE || c->fd < 0)
    return;
  if (error) {
    st.conn_errors++;
    st.lost += c->inflight;
  }
  total_inflight -= c->inflight;
  c->inflight = 0;
  if (ST_PENDING(c->state))
    n_pending--;
  else if (c->state == ST_OPEN || c->state == ST_CLOSING)
    n_open--;
  if (c->ssl) {
    SSL_free(c->ssl); /* no close_notify: the fd goes away now */
    c->ssl = NULL;
  }
  wsl_deflater_free(c->zd);
  wsl_inflater_free(c->zi);
  c->zd = c->zi = NULL;
  memset(&c->pmd, 0, sizeof c->pmd);
  c->frag_z = false;
  close(c->fd);
  c->fd = -1;
  c->state = ST_DONE;
  n_closed++;
}

static void wbuf_reserve(conn_t *c, size_t extra) {
  if (c->woff && c->woff == c->wlen)
    c->woff = c->wlen = 0;
  if (c->wlen + extra <= c->wcap)
    return;
  if (c->woff) {
    memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
    c->wlen -= c->woff;
    c->woff = 0;
    if (c->wlen + extra <= c->wcap)
      return;
  }
  size_t cap = c->wcap ? c->wcap : 4096;
  while (cap < c->wlen + extra)
    cap *= 2;
  c->wbuf = xrealloc(c->wbuf, cap);
  c->wcap = cap;
}

/* Logs the first TLS failure with OpenSSL's reason. */
static void tls_log(const char *what, int err) {
  unsigned long e = ERR_peek_last_error();
  if (st.conn_errors == 0 && st.proto_errors == 0)
    logmsg("%s: SSL error %d: %s", what, err,
           e ? ERR_reason_error_string(e) : strerror(errno));
  ERR_clear_error();
}

/* TLS variant of conn_flush. An SSL_write that hit WANT_WRITE is retried
 * with the same (possibly moved and extended) pending bytes, which
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows. */
static void conn_flush_tls(conn_t *c) {
  while (c->woff < c->wlen) {
    size_t len = c->wlen - c->woff;
    int n = SSL_write(c->ssl, c->wbuf + c->woff,
                      len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0) {
      c->woff += (size_t)n;
      continue;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      ep_set(c, EPOLLIN | EPOLLOUT);
      return;
    }
    if (c->state != ST_CLOSING)
      tls_log("SSL_write", err);
    ERR_clear_error();
    conn_close(c, c->state != ST_CLOSING);
    return;
  }
  c->woff = c->wlen = 0;
  ep_set(c, EPOLLIN);
}

/* Writes as much of the output buffer as the socket takes. */
static void conn_flush(conn_t *c) {
  if (c->ssl) {
    conn_flush_tls(c);
    return;
  }
  while (c->woff < c->wlen) {
    ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
    if (n > 0) {
      c->woff += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ep_set(c, EPOLLIN | EPOLLOUT);
      return;
    }
    conn_close(c, c->state != ST_CLOSING);
    return;
  }
  c->woff = c->wlen = 0;
  ep_set(c, EPOLLIN);
}

/* XORs len bytes at p with the 4-byte mask, 8 bytes at a time. */
static void mask_bytes(uint8_t *p, size_t len, const uint8_t mask[4]) {
  uint64_t m8;
  uint8_t mm[8];
  for (int i = 0; i < 8; i++)
    mm[i] = mask[i & 3];
  memcpy(&m8, mm, 8);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    w ^= m8;
    memcpy(p + i, &w, 8);
  }
  for (; i < len; i++)
    p[i] ^= mask[i & 3];
}

/* Appends one masked client frame (header + masked payload) to wbuf and
 * returns a pointer to the (still unmasked) payload area. */
static uint8_t *frame_begin(conn_t *c, int opcode, size_t len,
                            uint8_t **maskp) {
  wbuf_reserve(c, len + 14);
  uint8_t *h = c->wbuf + c->wlen;
  size_t hl = 2;
  h[0] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    h[1] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    h[1] = 0x80 | 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    hl = 4;
  } else {
    h[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++)
      h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    hl = 10;
  }
  uint32_t m = (uint32_t)rng_next();
  memcpy(h + hl, &m, 4);
  *maskp = h + hl;
  c->wlen += hl + 4 + len;
  return h + hl + 4;
}

static const char hexd[] = "0123456789abcdef";

static void put_hex32(uint8_t *p, uint32_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)hexd[v & 15];
    v >>= 4;
  }
}

static bool get_hex32(const uint8_t *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 8; i++) {
    int d;
    if (p[i] >= '0' && p[i] <= '9')
      d = p[i] - '0';
    else if (p[i] >= 'a' && p[i] <= 'f')
      d = p[i] - 'a' + 10;
    else
      return false;
    v = (v << 4) | (uint32_t)d;
  }
  *out = v;
  return true;
}

/* Which body message (id, seq) gets, and how many distinct ones exist:
 * random printable text at an offset depending on seq, or with --json a
 * run of chat records starting at a record chosen by (id, seq). */
static size_t body_index(uint32_t id, uint32_t seq) {
  return opt.json ? wsl_corpus_index(&corpus, id, seq) : seq % PAT_SPREAD;
}

static size_t body_count(void) {
  return opt.json ? corpus.nbodies : PAT_SPREAD;
}

static const uint8_t *body_at(size_t idx) {
  return opt.json ? wsl_corpus_at(&corpus, idx) : pattern + idx;
}

/* The body after the header of message (id, seq). */
static const uint8_t *payload_body(uint32_t id, uint32_t seq) {
  return body_at(body_index(id, seq));
}

/* Writes the header of (conn id, seq), 16 hex chars (fewer when the
 * messages are shorter); returns its length. */
static size_t header_fill(uint8_t *p, uint32_t id, uint32_t seq) {
  uint8_t hdr[HDR_LEN];
  put_hex32(hdr, id);
  put_hex32(hdr + 8, seq);
  size_t n = opt.size < HDR_LEN ? opt.size : HDR_LEN;
  memcpy(p, hdr, n);
  return n;
}

/* Fills the payload for (conn id, seq): the header then the body. */
static void payload_fill(uint8_t *p, uint32_t id, uint32_t seq) {
  header_fill(p, id, seq);
  if (opt.size > HDR_LEN)
    memcpy(p + HDR_LEN, payload_body(id, seq), opt.size - HDR_LEN);
}

/* The compressor for c's next message: its own when it keeps context,
 * else the one shared by every connection with that window. NULL when
 * there is none (out of memory, or a window of 8, which zlib cannot
 * compress raw DEFLATE with): the message goes uncompressed, as RFC 7692
 * allows for any message. */
static z_stream *pmd_deflater(conn_t *c) {
  int bits = c->pmd.client_bits < 9 ? 0 : c->pmd.client_bits;
  if (!bits)
    return NULL;
  if (!c->pmd.client_reset) {
    if (!c->zd)
      c->zd = wsl_deflater_new(opt.deflate_level, bits);
    return c->zd;
  }
  if (!shared_zd[bits])
    shared_zd[bits] = wsl_deflater_new(opt.deflate_level, bits);
  return shared_zd[bits];
}

/* The compressed body of message (id, seq), made on first use. */
static const zbody *cached_body(z_stream *z, uint32_t id, uint32_t seq) {
  size_t idx = body_index(id, seq);
  if (!zbodies)
    zbodies = calloc(body_count(), sizeof *zbodies);
  if (!zbodies)
    return NULL;
  zbody *b = &zbodies[idx];
  if (!b->p) {
    if (wsl_deflate_msg(z, body_at(idx), opt.size - HDR_LEN, &zout, true))
      return NULL;
    b->p = xrealloc(NULL, zout.len ? zout.len : 1);
    memcpy(b->p, zout.p, zout.len);
    b->len = zout.len;
  }
  return b;
}

/* Appends message (c->id, c->next_seq) to wbuf as one masked frame,
 * compressed (RSV1) when the connection agreed on permessage-deflate. */
static void queue_message(conn_t *c, int op) {
  uint8_t *mask, *p;
  size_t wire = opt.size;
  z_stream *z = c->pmd.on ? pmd_deflater(c) : NULL;
  const zbody *zb = NULL;
  bool cache = z && c->pmd.client_reset && !opt.deflate_full;
  if (cache && opt.size > HDR_LEN &&
      !(zb = cached_body(z, c->id, c->next_seq))) {
    fprintf(stderr, "wsload: deflate failed\n");
    exit(3);
  }
  if (cache) {
    uint8_t hdr[HDR_LEN];
    size_t hn = header_fill(hdr, c->id, c->next_seq);
    /* Without a body the stored block ends on a byte boundary, so the
     * empty stored block that ends the message needs a header byte of its
     * own before the 00 00 FF FF the server appends (RFC 7692 §7.2.3.3). */
    wire = hn + 5 + (zb ? zb->len : 1);
    p = frame_begin(c, op | 0x40, wire, &mask); /* RSV1: compressed */
    size_t at = wsl_stored_block(p, hdr, hn);
    if (zb)
      memcpy(p + at, zb->p, zb->len);
    else
      p[at] = 0x00;
  } else if (z) {
    payload_fill(plain_msg, c->id, c->next_seq);
    if (wsl_deflate_msg(z, plain_msg, opt.size, &zout, c->pmd.client_reset)) {
      fprintf(stderr, "wsload: deflate failed\n");
      exit(3);
    }
    wire = zout.len;
    p = frame_begin(c, op | 0x40, wire, &mask); /* RSV1: compressed */
    memcpy(p, zout.p, wire);
  } else {
    p = frame_begin(c, op, wire, &mask);
    payload_fill(p, c->id, c->next_seq);
  }
  mask_bytes(p, wire, mask);
  if (phase == PH_MEASURE) {
    st.wire_sent += (long long)wire;
    st.bytes_sent += (long long)opt.size;
  }
}

/* Queues as many messages as the in-flight window allows, then writes
 * them all with one write(). */
static void conn_pump(conn_t *c) {
  if (c->state != ST_OPEN || !sending_allowed())
    return;
  int op = opt.binary ? 2 : 1;
  bool queued = false;
  while (c->inflight < (uint32_t)opt.inflight && sending_allowed()) {
    if (phase == PH_PRIME && c->next_seq >= (uint32_t)opt.idle_messages)
      break;
    queue_message(c, op);
    c->sent_at[c->next_seq % (uint32_t)opt.inflight] = now;
    c->next_seq++;
    c->inflight++;
    total_inflight++;
    if (phase == PH_MEASURE)
      sent_measure++;
    else if (phase == PH_PRIME)
      sent_prime++;
    queued = true;
  }
  if (queued && !(c->events & EPOLLOUT))
    conn_flush(c);
}

static void send_control(conn_t *c, int opcode, const uint8_t *data,
                         size_t len) {
  uint8_t *mask;
  uint8_t *p = frame_begin(c, opcode, len, &mask);
  if (len)
    memcpy(p, data, len);
  mask_bytes(p, len, mask);
  if (!(c->events & EPOLLOUT))
    conn_flush(c);
}

/* ---- message verification --------------------------------------------- */

static bool payload_is(const uint8_t *p, uint32_t id, uint32_t seq) {
  uint8_t want[HDR_LEN];
  size_t hn = opt.size < HDR_LEN ? opt.size : HDR_LEN;
  put_hex32(want, id);
  put_hex32(want + 8, seq);
  if (memcmp(p, want, hn) != 0)
    return false;
  return opt.size <= HDR_LEN ||
         memcmp(p + HDR_LEN, payload_body(id, seq), opt.size - HDR_LEN) == 0;
}

/* Checks one echoed message against the next one expected. TCP keeps
 * order, so any other message is an error: a well-formed message from
 * our in-flight window resynchronises (skipped messages count as
 * reordered if they turn up later, else as lost); anything else is
 * corrupt. */
static void deliver(conn_t *c, int op, const uint8_t *p, size_t len,
                    size_t wire) {
  if (c->state != ST_OPEN)
    return; /* late echo while closing: ignored */
  if (c->inflight == 0) {
    st.corrupt++; /* an echo nobody asked for */
    return;
  }
  uint32_t seq = c->expect_seq, s, id;
  bool timed = false;
  if (op != (opt.binary ? 2 : 1) || len != opt.size) {
    st.corrupt++;
    c->expect_seq++;
  } else if (payload_is(p, c->id, seq)) {
    timed = true;
    c->expect_seq++;
  } else if (opt.size >= HDR_LEN && get_hex32(p, &id) && get_hex32(p + 8, &s) &&
             id == c->id &&
             (uint32_t)(c->next_seq - s) - 1u < (uint32_t)opt.inflight &&
             payload_is(p, c->id, s)) {
    seq = s;
    timed = true;
    if ((int32_t)(s - c->expect_seq) > 0)
      c->expect_seq = s + 1; /* skipped: counted when late, or as lost */
    else
      st.reordered++; /* arrived after a later message */
  } else {
    st.corrupt++;
    c->expect_seq++;
  }
  if (timed && phase == PH_MEASURE)
    hist_add(now - c->sent_at[seq % (uint32_t)opt.inflight]);
  c->inflight--;
  total_inflight--;
  st.msgs_total++;
  if (phase == PH_MEASURE) {
    st.msgs++;
    st.bytes += (long long)len;
    st.wire_bytes += (long long)wire;
  }
}

/* Inflates a compressed message (RSV1) and delivers it. Returns false
 * when the data was corrupt and c was closed. */
static bool deliver_compressed(conn_t *c, int op, const uint8_t *p, size_t n) {
  z_stream *z;
  if (c->pmd.server_reset) {
    if (!shared_zi)
      shared_zi = wsl_inflater_new();
    z = shared_zi;
  } else {
    if (!c->zi)
      c->zi = wsl_inflater_new();
    z = c->zi;
  }
  if (!z) {
    fprintf(stderr, "wsload: out of memory\n");
    exit(3);
  }
  st.msgs_z++;
  /* An echo inflates to our size: a little more is a corrupt echo, far
   * more a broken server, failed before it costs us memory. */
  int r = wsl_inflate_msg(z, p, n, &zin, opt.size + 65536, c->pmd.server_reset);
  if (r != 0) {
    if (st.proto_errors == 0)
      logmsg("connection %u: %s", c->id,
             r == -2 ? "a compressed message inflates far past our size"
                     : "corrupt compressed data");
    if (z == shared_zi) { /* its state is unknown now: start afresh */
      wsl_inflater_free(shared_zi);
      shared_zi = NULL;
    }
    st.proto_errors++;
    conn_close(c, true);
    return false;
  }
  deliver(c, op, zin.p, zin.len, n);
  return true;
}

/* Parses every complete frame in rbuf. Returns false if c was closed. */
static bool parse_frames(conn_t *c) {
  size_t pos = 0;
  while (c->rlen - pos >= 2) {
    const uint8_t *h = c->rbuf + pos;
    int fin = h[0] & 0x80, op = h[0] & 0x0f;
    /* RSV1 marks a compressed message on its first frame only (RFC 7692
     * §6.1): never on a continuation or a control frame. */
    bool rsv1 = (h[0] & 0x40) != 0;
    if ((h[0] & 0x30) || (h[1] & 0x80) ||
        (rsv1 && (!c->pmd.on || (op != 0x1 && op != 0x2)))) {
      st.proto_errors++; /* RSV bits or a masked server frame */
      conn_close(c, true);
      return false;
    }
    uint64_t len = h[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
      if (c->rlen - pos < 4)
        break;
      len = ((uint64_t)h[2] << 8) | h[3];
      hl = 4;
    } else if (len == 127) {
      if (c->rlen - pos < 10)
        break;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = (len << 8) | h[2 + i];
      hl = 10;
    }
    if (len > (1u << 30)) {
      st.proto_errors++;
      conn_close(c, true);
      return false;
    }
    if (c->rlen - pos < hl + len) {
      size_t need = hl + (size_t)len;
      if (need > c->rcap) { /* make room for a big frame */
        size_t cap = c->rcap;
        while (cap < need)
          cap *= 2;
        c->rbuf = xrealloc(c->rbuf, cap);
        c->rcap = cap;
      }
      break;
    }
    const uint8_t *p = h + hl;
    size_t n = (size_t)len;
    pos += hl + n;
    if (op == 0x1 || op == 0x2) {
      if (c->frag_op) {
        st.proto_errors++;
        conn_close(c, true);
        return false;
      }
      if (fin && rsv1) {
        if (!deliver_compressed(c, op, p, n))
          return false;
      } else if (fin) {
        deliver(c, op, p, n, n);
      } else {
        c->frag_op = op;
        c->frag_len = 0;
        c->frag_z = rsv1;
      }
    }
    if (op == 0x0 || ((op == 0x1 || op == 0x2) && !fin)) {
      if (!c->frag_op) {
        st.proto_errors++;
        conn_close(c, true);
        return false;
      }
      if (c->frag_len + n > c->frag_cap) {
        c->frag_cap = (c->frag_len + n) * 2;
        c->frag = xrealloc(c->frag, c->frag_cap);
      }
      memcpy(c->frag + c->frag_len, p, n);
      c->frag_len += n;
      if (fin) {
        int fop = c->frag_op;
        c->frag_op = 0;
        if (!c->frag_z)
          deliver(c, fop, c->frag, c->frag_len, c->frag_len);
        else if (!deliver_compressed(c, fop, c->frag, c->frag_len))
          return false;
      }
    } else if (op == 0x8) {
      if (c->state != ST_CLOSING) {
        st.proto_errors++; /* server closed during the run */
        conn_close(c, true);
      } else if (opt.handshakes) {
        /* The server closes the TCP connection first (RFC 6455 7.1.1):
         * wait for its EOF, so the TIME_WAIT is its own and 10,000s of
         * connections do not use up our ephemeral ports. */
        c->close_seen = true;
        c->deadline_ns = now + 1000000000u; /* a server that never closes */
        continue;
      } else {
        conn_close(c, false);
      }
      return false;
    } else if (op == 0x9) {
      send_control(c, 0xA, p, n);
    } else if (op != 0xA && op != 0x1 && op != 0x2) {
      st.proto_errors++;
      conn_close(c, true);
      return false;
    }
    if (c->state == ST_DONE)
      return false;
  }
  if (pos) {
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
  }
  return true;
}

/* ---- handshake -------------------------------------------------------- */

static void compute_accept(const char *key, char *out) {
  char buf[128];
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  int n = snprintf(buf, sizeof buf, "%s%s", key, WS_GUID);
  EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha1(), NULL);
  EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

static void send_upgrade(conn_t *c) {
  uint8_t raw[16];
  char key[32];
  uint64_t a = rng_next(), b = rng_next();
  memcpy(raw, &a, 8);
  memcpy(raw + 8, &b, 8);
  EVP_EncodeBlock((unsigned char *)key, raw, 16);
  compute_accept(key, c->accept);
  char req[768], ext[128] = "";
  if (opt.deflate)
    snprintf(ext, sizeof ext, "Sec-WebSocket-Extensions: %s\r\n",
             wsl_pmd_offer(!opt.deflate_keep));
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "%s\r\n",
                   opt.path, opt.host, opt.port, key, ext);
  wbuf_reserve(c, (size_t)n);
  memcpy(c->wbuf + c->wlen, req, (size_t)n);
  c->wlen += (size_t)n;
  conn_flush(c);
}

/* Finds header `name` in the response and copies its trimmed value. */
static bool find_header(const char *resp, const char *name, char *val,
                        size_t vcap) {
  size_t nl = strlen(name);
  const char *p = strstr(resp, "\r\n");
  while (p && p[2] != '\r') {
    p += 2;
    if (!strncasecmp(p, name, nl) && p[nl] == ':') {
      const char *v = p + nl + 1, *e = strstr(v, "\r\n");
      while (*v == ' ' || *v == '\t')
        v++;
      while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
      size_t n = (size_t)(e - v);
      if (n >= vcap)
        return false;
      memcpy(val, v, n);
      val[n] = 0;
      return true;
    }
    p = strstr(p, "\r\n");
  }
  return false;
}

/* Joins the values of every `name` header in the response with ", " into
 * |out|. Returns how many there were, or -1 when they do not fit. */
static int join_headers(const char *resp, const char *name, char *out,
                        size_t cap) {
  size_t nl = strlen(name), len = 0;
  int count = 0;
  out[0] = 0;
  for (const char *p = strstr(resp, "\r\n"); p && p[2] != '\r';
       p = strstr(p, "\r\n")) {
    p += 2;
    if (strncasecmp(p, name, nl) || p[nl] != ':')
      continue;
    const char *v = p + nl + 1, *e = strstr(v, "\r\n");
    while (*v == ' ' || *v == '\t')
      v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    size_t n = (size_t)(e - v);
    if (len + n + 3 > cap)
      return -1;
    if (count++) {
      memcpy(out + len, ", ", 2);
      len += 2;
    }
    memcpy(out + len, v, n);
    len += n;
    out[len] = 0;
  }
  return count;
}

/* Checks the server's Sec-WebSocket-Extensions answer and records what
 * it agreed to in c->pmd. Returns false (and logs why, once) when the
 * connection must fail: an answer to no offer, or one RFC 7692 forbids. */
static bool check_extensions(conn_t *c, const char *resp) {
  char ext[1024];
  const char *why = NULL;
  int n = join_headers(resp, "Sec-WebSocket-Extensions", ext, sizeof ext);
  memset(&c->pmd, 0, sizeof c->pmd);
  if (n < 0) {
    why = "a Sec-WebSocket-Extensions answer too long";
  } else if (n > 0 && !opt.deflate) {
    for (const char *v = ext; *v && !why; v++)
      if (*v != ' ' && *v != '\t' && *v != ',')
        why = "an extension we did not offer";
  } else if (n > 0) {
    int r = wsl_pmd_check(ext, strlen(ext), !opt.deflate_keep, &c->pmd, &why);
    if (r == 1)
      st.pmd_conns++;
  }
  if (!why)
    return true;
  if (st.proto_errors == 0)
    logmsg("bad Sec-WebSocket-Extensions answer (%s): %s", why, ext);
  return false;
}

static void conn_opened(conn_t *c);

/* Checks the 101 response once complete. Returns false if c was closed. */
static bool check_handshake(conn_t *c) {
  uint8_t *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
  if (!end) {
    if (c->rlen > HS_MAX) {
      st.proto_errors++;
      conn_close(c, true);
      return false;
    }
    return true;
  }
  size_t hlen = (size_t)(end - c->rbuf) + 4;
  char resp[HS_MAX + 8];
  if (hlen > HS_MAX) {
    st.proto_errors++;
    conn_close(c, true);
    return false;
  }
  memcpy(resp, c->rbuf, hlen);
  resp[hlen] = 0;
  char val[128];
  bool ok = !strncmp(resp, "HTTP/1.1 101", 12) &&
            find_header(resp, "Sec-WebSocket-Accept", val, sizeof val) &&
            !strcmp(val, c->accept) &&
            find_header(resp, "Upgrade", val, sizeof val) &&
            !strcasecmp(val, "websocket");
  if (ok && !check_extensions(c, resp)) {
    st.proto_errors++;
    conn_close(c, true);
    return false;
  }
  if (!ok) {
    if (!opt.quiet && st.proto_errors == 0) {
      char *eol = strstr(resp, "\r\n");
      if (eol)
        *eol = 0;
      logmsg("bad handshake response: %s", resp);
    }
    st.proto_errors++;
    conn_close(c, true);
    return false;
  }
  memmove(c->rbuf, c->rbuf + hlen, c->rlen - hlen);
  c->rlen -= hlen;
  conn_opened(c);
  return c->state == ST_OPEN;
}

/* ---- connection setup ------------------------------------------------- */

static struct sockaddr_storage dst;
static socklen_t dst_len;

static void conn_start(conn_t *c) {
  int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  n_started++;
  if (fd < 0) {
    if (st.conn_errors == 0)
      logmsg("socket: %s", strerror(errno));
    st.conn_errors++;
    c->state = ST_DONE;
    n_closed++;
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->state = ST_CONNECTING;
  n_pending++;
  c->start_ns = now_ns();
  c->deadline_ns = c->start_ns + 10000000000u;
  int r = connect(fd, (struct sockaddr *)&dst, dst_len);
  struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
  c->events = EPOLLOUT;
  epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
  if (r < 0 && errno != EINPROGRESS) {
    if (st.conn_errors == 0)
      logmsg("connect: %s", strerror(errno));
    conn_close(c, true);
  }
}

static void start_more(void) {
  while (phase == PH_CONNECT && n_started < opt.conns && n_pending < opt.batch)
    conn_start(&conns[n_started]);
}

static void hs_opened(conn_t *c);

static void conn_opened(conn_t *c) {
  c->state = ST_OPEN;
  n_opened++;
  n_pending--;
  n_open++;
  if (opt.handshakes)
    hs_opened(c);
  else
    start_more();
}

/* ---- I/O events ------------------------------------------------------- */

/* Handles new bytes in rbuf. Returns false if c is done reading. */
static bool conn_input(conn_t *c) {
  if (c->state == ST_HANDSHAKE) {
    if (!check_handshake(c))
      return false;
    if (c->state != ST_OPEN)
      return false;
  }
  if (!parse_frames(c))
    return false;
  conn_pump(c); /* refill the window with one write */
  return c->state != ST_DONE;
}

/* TLS variant of on_readable: OpenSSL hands out one record at a time
 * and may hold more already read from the socket, so read until it
 * says WANT_READ. */
static void on_readable_tls(conn_t *c) {
  for (;;) {
    if (c->rcap - c->rlen < 4096) {
      c->rcap *= 2;
      c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
    size_t room = c->rcap - c->rlen;
    int n = SSL_read(c->ssl, c->rbuf + c->rlen,
                     room > INT32_MAX ? INT32_MAX : (int)room);
    if (n <= 0) {
      int err = SSL_get_error(c->ssl, n);
      if (err == SSL_ERROR_WANT_READ)
        return;
      if (err == SSL_ERROR_WANT_WRITE) {
        ep_set(c, EPOLLIN | EPOLLOUT);
        return;
      }
      if (c->state != ST_CLOSING) {
        if (err == SSL_ERROR_ZERO_RETURN) {
          if (st.conn_errors == 0)
            logmsg("connection %u closed by server", c->id);
        } else {
          tls_log("SSL_read", err);
        }
      }
      ERR_clear_error();
      conn_close(c, c->state != ST_CLOSING);
      return;
    }
    c->rlen += (size_t)n;
    if (!conn_input(c))
      return;
  }
}

/* Drives the non-blocking TLS handshake; sends the upgrade when done. */
static void tls_step(conn_t *c) {
  int r = SSL_connect(c->ssl);
  if (r == 1) {
    c->state = ST_HANDSHAKE;
    ep_set(c, EPOLLIN);
    send_upgrade(c);
    return;
  }
  int err = SSL_get_error(c->ssl, r);
  if (err == SSL_ERROR_WANT_READ) {
    ep_set(c, EPOLLIN);
  } else if (err == SSL_ERROR_WANT_WRITE) {
    ep_set(c, EPOLLIN | EPOLLOUT);
  } else {
    if (err == SSL_ERROR_SSL && st.conn_errors == 0 &&
        SSL_get_verify_result(c->ssl) != X509_V_OK)
      logmsg("certificate verification: %s",
             X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
    tls_log("SSL_connect", err);
    conn_close(c, true);
  }
}

static bool host_is_ip(const char *h) {
  uint8_t buf[16];
  return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

static void tls_begin(conn_t *c) {
  c->ssl = SSL_new(ssl_ctx);
  if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
    tls_log("SSL_new", 0);
    conn_close(c, true);
    return;
  }
  SSL_set_connect_state(c->ssl);
  if (!host_is_ip(opt.host))
    SSL_set_tlsext_host_name(c->ssl, opt.host);
  if (opt.tls_ca)
    SSL_set1_host(c->ssl, opt.host); /* DNS name or IP address */
  c->state = ST_TLS;
  tls_step(c);
}

static void on_readable(conn_t *c) {
  if (c->ssl) {
    on_readable_tls(c);
    return;
  }
  for (;;) {
    if (c->rcap - c->rlen < 4096) {
      c->rcap *= 2;
      c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
    size_t room = c->rcap - c->rlen;
    ssize_t n = read(c->fd, c->rbuf + c->rlen, room);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      conn_close(c, c->state != ST_CLOSING);
      return;
    }
    if (n == 0) {
      if (c->state != ST_CLOSING && st.conn_errors == 0)
        logmsg("connection %u closed by server", c->id);
      if (opt.handshakes && c->state == ST_CLOSING && !c->close_seen)
        st.proto_errors++; /* EOF without the server's close frame */
      conn_close(c, c->state != ST_CLOSING);
      return;
    }
    c->rlen += (size_t)n;
    if (c->state == ST_HANDSHAKE) {
      if (!check_handshake(c))
        return;
      if (c->state != ST_OPEN)
        return;
    }
    if (!parse_frames(c))
      return;
    conn_pump(c); /* refill the window with one write */
    if (c->state == ST_DONE)
      return;
    if ((size_t)n < room)
      return; /* socket drained */
  }
}

static void on_event(conn_t *c, uint32_t ev) {
  if (c->state == ST_CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err || (ev & (EPOLLERR | EPOLLHUP))) {
      if (st.conn_errors == 0)
        logmsg("connect: %s", strerror(err ? err : ECONNRESET));
      conn_close(c, true);
      return;
    }
    if (opt.tls) {
      tls_begin(c);
      return;
    }
    c->state = ST_HANDSHAKE;
    ep_set(c, EPOLLIN);
    send_upgrade(c);
    return;
  }
  if (c->state == ST_TLS) {
    tls_step(c);
    return;
  }
  if (ev & EPOLLOUT) {
    conn_flush(c);
    if (c->state == ST_DONE)
      return;
  }
  if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
    on_readable(c);
}

/* ---- phases ----------------------------------------------------------- */

static uint64_t secs(double s) {
  return (uint64_t)(s * 1e9);
}

static void signal_target(void) {
  if (opt.signal_pid <= 0)
    return;
  if (kill(opt.signal_pid, SIGUSR2) != 0)
    logmsg("kill(%d): %s", (int)opt.signal_pid, strerror(errno));
  struct timespec ts = {0, 300 * 1000 * 1000};
  nanosleep(&ts, NULL); /* let the target write its snapshot */
  now = now_ns();
}

static void pump_all(void) {
  for (int i = 0; i < opt.conns; i++)
    conn_pump(&conns[i]);
}

static void start_measure(void) {
  phase = PH_MEASURE;
  measure_start = now;
  cpu_start = cpu_now_ns();
  phase_deadline = now + secs(opt.duration);
  memset(&hist, 0, sizeof hist);
  hist_count = hist_max = 0;
  st.msgs = st.bytes = 0;
  pump_all();
}

static void start_closing(void) {
  phase = PH_CLOSING;
  phase_deadline = now + secs(2.0);
  static const uint8_t bye[2] = {0x03, 0xe8}; /* 1000 normal */
  for (int i = 0; i < opt.conns; i++) {
    conn_t *c = &conns[i];
    if (c->state == ST_OPEN) {
      c->state = ST_CLOSING;
      send_control(c, 0x8, bye, 2);
    } else if (ST_PENDING(c->state)) {
      conn_close(c, true);
    }
  }
}

static void advance_phase(void) {
  switch (phase) {
  case PH_CONNECT:
    if (n_started < opt.conns || n_pending > 0) {
      if (now < phase_deadline)
        return;
      logmsg("connect phase timed out (%d open, %d pending)", n_open,
             n_pending);
      for (int i = 0; i < opt.conns; i++) {
        if (conns[i].state == ST_IDLE) {
          st.conn_errors++;
          conns[i].state = ST_DONE;
        } else if (ST_PENDING(conns[i].state)) {
          conn_close(&conns[i], true);
        }
      }
    }
    logmsg("%d connections open", n_open);
    if (opt.idle && opt.idle_messages > 0) {
      phase = PH_PRIME;
      phase_deadline = now + secs(60.0);
      pump_all();
    } else if (opt.idle) {
      phase = PH_HOLD;
      measure_start = now;
      phase_deadline = now + secs(opt.duration);
    } else if (opt.warmup > 0) {
      phase = PH_WARMUP;
      phase_deadline = now + secs(opt.warmup);
      pump_all();
    } else {
      start_measure();
    }
    return;
  case PH_WARMUP:
    if (now < phase_deadline)
      return;
    if (opt.signal_pid > 0) {
      phase = PH_PAUSE; /* drain, then snapshot with nothing queued */
      phase_deadline = now + secs(opt.drain_timeout);
    } else {
      start_measure();
    }
    return;
  case PH_PRIME:
    /* Every open connection has had its messages echoed: hold. */
    if ((total_inflight > 0 ||
         sent_prime < (long long)n_open * opt.idle_messages) &&
        now < phase_deadline)
      return;
    if (total_inflight > 0 ||
        sent_prime < (long long)n_open * opt.idle_messages) {
      logmsg("%lld messages never echoed", total_inflight);
      st.lost += total_inflight;
    }
    logmsg("%d connections active (%d messages each)", n_open,
           opt.idle_messages);
    phase = PH_HOLD;
    measure_start = now;
    phase_deadline = now + secs(opt.duration);
    return;
  case PH_PAUSE:
    if (total_inflight > 0 && now < phase_deadline)
      return;
    signal_target();
    start_measure();
    return;
  case PH_MEASURE: {
    bool done = now >= phase_deadline;
    if (opt.messages && sent_measure >= opt.messages && total_inflight == 0)
      done = true;
    if (!done && n_open == 0)
      done = true;
    if (!done)
      return;
    measure_end = now;
    cpu_end = cpu_now_ns();
    phase = PH_DRAIN;
    phase_deadline = now + secs(opt.drain_timeout);
    return;
  }
  case PH_DRAIN:
    if (total_inflight > 0 && now < phase_deadline)
      return;
    st.lost += total_inflight;
    if (total_inflight)
      logmsg("%lld messages never echoed", total_inflight);
    signal_target();
    start_closing();
    return;
  case PH_HOLD:
    if (now < phase_deadline)
      return;
    measure_end = now;
    start_closing();
    return;
  case PH_CLOSING:
    if (n_open > 0 && now < phase_deadline)
      return;
    for (int i = 0; i < opt.conns; i++)
      if (conns[i].state == ST_CLOSING)
        conn_close(&conns[i], false);
    phase = PH_FINISHED;
    return;
  default:
    return;
  }
}

/* ---- handshake mode --------------------------------------------------- */

/* --handshakes N: N connections, --concurrency C of them at a time. Each
 * connects, upgrades (101 and Sec-WebSocket-Accept checked), sends a close
 * frame (1000) and waits for the server's close frame and EOF; then its
 * slot starts the next connection. The latency histogram holds the time
 * from connect() to the verified 101. */

static long long hs_ok; /* upgrades verified */

static void hs_opened(conn_t *c) {
  static const uint8_t bye[2] = {0x03, 0xe8}; /* 1000 normal */
  hist_add(now_ns() - c->start_ns);
  hs_ok++;
  c->state = ST_CLOSING;
  send_control(c, 0x8, bye, 2);
}

/* Times out stuck connections and starts new ones in the free slots. */
static void hs_refill(void) {
  for (int i = 0; i < opt.conns; i++) {
    conn_t *c = &conns[i];
    if (c->state != ST_IDLE && c->state != ST_DONE && now >= c->deadline_ns) {
      if (!c->close_seen && st.conn_errors == 0)
        logmsg("connection %u timed out", c->id);
      conn_close(c, !c->close_seen);
    }
    if ((c->state == ST_IDLE || c->state == ST_DONE) &&
        n_started < opt.handshakes) {
      c->id = (uint32_t)n_started;
      c->rlen = c->woff = c->wlen = 0;
      c->frag_op = 0;
      c->frag_len = 0;
      c->close_seen = false;
      c->state = ST_IDLE;
      conn_start(c);
    }
  }
}

static void hs_run(struct epoll_event *evs) {
  phase = PH_MEASURE; /* start_more() stays out of the way */
  now = measure_start = now_ns();
  uint64_t give_up = now + secs(opt.hs_timeout);
  hs_refill();
  while (n_closed < opt.handshakes && now < give_up) {
    int n = epoll_wait(epfd, evs, MAX_EVENTS, 50);
    now = now_ns();
    if (n < 0 && errno != EINTR) {
      perror("wsload: epoll_wait");
      exit(3);
    }
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->state != ST_DONE)
        on_event(c, evs[i].events);
    }
    now = now_ns();
    hs_refill();
  }
  measure_end = now;
  if (n_closed < opt.handshakes) {
    logmsg("gave up after %.0f s: %lld of %lld connections done",
           opt.hs_timeout, (long long)n_closed, opt.handshakes);
    for (int i = 0; i < opt.conns; i++)
      conn_close(&conns[i], true);
    st.conn_errors += opt.handshakes - n_started; /* never started */
  }
  phase = PH_FINISHED;
}

static void hs_report(void) {
  double el = (double)(measure_end - measure_start) / 1e9;
  long long errors = st.conn_errors + st.proto_errors;
  printf("{\"mode\":\"handshakes\",\"tls\":%s,\"connections\":%lld,"
         "\"concurrency\":%d,\"elapsed_s\":%.3f,\"handshakes\":%lld,"
         "\"handshakes_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"p999_us\":%.1f,\"max_us\":%.1f,\"errors\":%lld,\"lost\":0,"
         "\"reordered\":0,\"corrupt\":0,\"conn_errors\":%lld,"
         "\"proto_errors\":%lld,\"deflate_offered\":%s,"
         "\"deflate_conns\":%lld}\n",
         opt.tls ? "true" : "false", opt.handshakes, opt.concurrency, el, hs_ok,
         el > 0 ? (double)hs_ok / el : 0.0, hist_pct(0.50), hist_pct(0.99),
         hist_pct(0.999), (double)hist_max / 1000.0, errors, st.conn_errors,
         st.proto_errors, opt.deflate ? "true" : "false", st.pmd_conns);
  fflush(stdout);
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: wsload --port P [options]\n"
      "  --host H          server address (default 127.0.0.1)\n"
      "  --port P          server port (required)\n"
      "  --path /          request path\n"
      "  --connections N   connections (default 1)\n"
      "  --size BYTES      message size (default 16)\n"
      "  --inflight K      messages in flight per connection (default 1)\n"
      "  --duration S      measured seconds (default 5; --idle: hold time)\n"
      "  --warmup S        unmeasured seconds before (default 1)\n"
      "  --binary|--text   message type (default binary)\n"
      "  --idle            only connect, hold for --duration, report\n"
      "  --batch N         max concurrent connection attempts (256)\n"
      "  --messages M      stop after M measured messages\n"
      "  --signal-pid PID  SIGUSR2 PID after warmup and after the run\n"
      "  --tls             wss://: TLS 1.2+, server certificate not checked\n"
      "  --tls-ca FILE     with --tls: verify the server against this CA\n"
      "  --handshakes N    handshake mode: N connections, each upgrading then\n"
      "                    closing; reports handshakes_per_s\n"
      "  --concurrency C   handshake mode: connections at a time (default 64)\n"
      "  --deflate         offer permessage-deflate (with\n"
      "                    client_no_context_takeover and\n"
      "                    client_max_window_bits) and send every message\n"
      "                    compressed where the server agrees\n"
      "  --deflate-keep-context  with --deflate: offer as Chrome does\n"
      "                    (client_max_window_bits only) and keep our\n"
      "                    compressor's context unless the server says not to\n"
      "  --deflate-level N zlib level of our compressor (-1..9, default 1)\n"
      "  --deflate-full    compress every message whole; by default, where we\n"
      "                    reset our compressor, each distinct body is\n"
      "                    compressed once and sent after a stored block\n"
      "                    holding the message's header\n"
      "  --json            bodies are JSON-like chat records (implies --text\n"
      "                    unless --binary is given)\n"
      "  --idle-messages K with --idle: each connection echoes K messages\n"
      "                    (--size bytes, verified) before the hold\n"
      "  --quiet           no progress on stderr\n");
}

static void parse_args(int argc, char **argv) {
  enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_CONNS,
    OPT_SIZE,
    OPT_INFL,
    OPT_DUR,
    OPT_WARM,
    OPT_BIN,
    OPT_TEXT,
    OPT_IDLE,
    OPT_PATH,
    OPT_BATCH,
    OPT_MSGS,
    OPT_SIGPID,
    OPT_QUIET,
    OPT_TLS,
    OPT_TLS_CA,
    OPT_HANDSHAKES,
    OPT_CONCURRENCY,
    OPT_DEFLATE,
    OPT_DEFLATE_KEEP,
    OPT_DEFLATE_LEVEL,
    OPT_DEFLATE_FULL,
    OPT_JSON,
    OPT_IDLE_MSGS,
    OPT_HELP
  };
  static const struct option lo[] = {
      {"host", 1, 0, OPT_HOST},
      {"port", 1, 0, OPT_PORT},
      {"connections", 1, 0, OPT_CONNS},
      {"size", 1, 0, OPT_SIZE},
      {"inflight", 1, 0, OPT_INFL},
      {"duration", 1, 0, OPT_DUR},
      {"warmup", 1, 0, OPT_WARM},
      {"binary", 0, 0, OPT_BIN},
      {"text", 0, 0, OPT_TEXT},
      {"idle", 0, 0, OPT_IDLE},
      {"path", 1, 0, OPT_PATH},
      {"batch", 1, 0, OPT_BATCH},
      {"messages", 1, 0, OPT_MSGS},
      {"signal-pid", 1, 0, OPT_SIGPID},
      {"quiet", 0, 0, OPT_QUIET},
      {"tls", 0, 0, OPT_TLS},
      {"tls-ca", 1, 0, OPT_TLS_CA},
      {"handshakes", 1, 0, OPT_HANDSHAKES},
      {"concurrency", 1, 0, OPT_CONCURRENCY},
      {"deflate", 0, 0, OPT_DEFLATE},
      {"deflate-keep-context", 0, 0, OPT_DEFLATE_KEEP},
      {"deflate-level", 1, 0, OPT_DEFLATE_LEVEL},
      {"deflate-full", 0, 0, OPT_DEFLATE_FULL},
      {"json", 0, 0, OPT_JSON},
      {"idle-messages", 1, 0, OPT_IDLE_MSGS},
      {"help", 0, 0, OPT_HELP},
      {0, 0, 0, 0},
  };
  int o;
  bool type_given = false;
  while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (o) {
    case OPT_HOST:
      opt.host = optarg;
      break;
    case OPT_PORT:
      opt.port = atoi(optarg);
      break;
    case OPT_CONNS:
      opt.conns = atoi(optarg);
      break;
    case OPT_SIZE:
      opt.size = (size_t)strtoull(optarg, NULL, 10);
      break;
    case OPT_INFL:
      opt.inflight = atoi(optarg);
      break;
    case OPT_DUR:
      opt.duration = atof(optarg);
      break;
    case OPT_WARM:
      opt.warmup = atof(optarg);
      break;
    case OPT_BIN:
      opt.binary = true;
      type_given = true;
      break;
    case OPT_TEXT:
      opt.binary = false;
      type_given = true;
      break;
    case OPT_IDLE:
      opt.idle = true;
      break;
    case OPT_PATH:
      opt.path = optarg;
      break;
    case OPT_BATCH:
      opt.batch = atoi(optarg);
      break;
    case OPT_MSGS:
      opt.messages = atoll(optarg);
      break;
    case OPT_SIGPID:
      opt.signal_pid = (pid_t)atoi(optarg);
      break;
    case OPT_QUIET:
      opt.quiet = true;
      break;
    case OPT_TLS:
      opt.tls = true;
      break;
    case OPT_TLS_CA:
      opt.tls = true;
      opt.tls_ca = optarg;
      break;
    case OPT_HANDSHAKES:
      opt.handshakes = atoll(optarg);
      if (opt.handshakes <= 0) {
        usage(stderr);
        exit(2);
      }
      break;
    case OPT_CONCURRENCY:
      opt.concurrency = atoi(optarg);
      break;
    case OPT_DEFLATE:
      opt.deflate = true;
      break;
    case OPT_DEFLATE_KEEP:
      opt.deflate = opt.deflate_keep = true;
      break;
    case OPT_DEFLATE_LEVEL:
      opt.deflate_level = atoi(optarg);
      if (opt.deflate_level < -1 || opt.deflate_level > 9) {
        usage(stderr);
        exit(2);
      }
      break;
    case OPT_DEFLATE_FULL:
      opt.deflate = opt.deflate_full = true;
      break;
    case OPT_JSON:
      opt.json = true;
      break;
    case OPT_IDLE_MSGS:
      opt.idle_messages = atoi(optarg);
      break;
    case OPT_HELP:
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      exit(2);
    }
  }
  if (opt.json && !type_given)
    opt.binary = false;
  if (opt.idle_messages < 0 || (opt.idle_messages && !opt.idle)) {
    usage(stderr);
    exit(2);
  }
  if (opt.handshakes) { /* the slots are the connections at a time */
    if (opt.concurrency <= 0 || opt.idle) {
      usage(stderr);
      exit(2);
    }
    if (opt.concurrency > opt.handshakes)
      opt.concurrency = (int)opt.handshakes;
    opt.conns = opt.concurrency;
    opt.inflight = 1;
  }
  if (opt.port <= 0 || opt.port > 65535 || opt.conns <= 0 || opt.size == 0 ||
      opt.size > (1u << 30) || opt.inflight <= 0 || opt.duration <= 0 ||
      opt.warmup < 0 || opt.batch <= 0 || opt.messages < 0) {
    usage(stderr);
    exit(2);
  }
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  rlim_t want = (rlim_t)opt.conns + 64;
  if (rl.rlim_cur >= want)
    return;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
    logmsg("RLIMIT_NOFILE hard limit %llu < %llu needed",
           (unsigned long long)rl.rlim_max, (unsigned long long)want);
  rl.rlim_cur =
      rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

static void resolve(void) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  char port[16];
  snprintf(port, sizeof port, "%d", opt.port);
  int r = getaddrinfo(opt.host, port, &hints, &ai);
  if (r != 0) {
    fprintf(stderr, "wsload: %s: %s\n", opt.host, gai_strerror(r));
    exit(2);
  }
  memcpy(&dst, ai->ai_addr, ai->ai_addrlen);
  dst_len = ai->ai_addrlen;
  freeaddrinfo(ai);
}

static void init_conns(void) {
  conns = calloc((size_t)opt.conns, sizeof *conns);
  if (!conns) {
    fprintf(stderr, "wsload: out of memory\n");
    exit(3);
  }
  /* read buffer holds a whole window of echoes; grows on demand */
  size_t frame = opt.size + 14;
  size_t rcap = opt.idle ? 4096 : frame * (size_t)opt.inflight + 4096;
  if (rcap < 16384 && !opt.idle)
    rcap = 16384;
  for (int i = 0; i < opt.conns; i++) {
    conn_t *c = &conns[i];
    c->fd = -1;
    c->id = (uint32_t)i;
    c->rcap = rcap;
    c->rbuf = xrealloc(NULL, rcap);
    if (!opt.idle || opt.idle_messages)
      c->sent_at = xrealloc(NULL, sizeof(uint64_t) * (size_t)opt.inflight);
  }
  pattern = xrealloc(NULL, opt.size + PAT_SPREAD);
  for (size_t i = 0; i < opt.size + PAT_SPREAD; i++)
    pattern[i] = (uint8_t)(' ' + rng_next() % 95); /* printable ASCII */
  if (opt.json && opt.size > HDR_LEN &&
      wsl_corpus_build(&corpus, opt.size - HDR_LEN) != 0) {
    fprintf(stderr, "wsload: out of memory\n");
    exit(3);
  }
  if (opt.deflate)
    plain_msg = xrealloc(NULL, opt.size);
}

static void init_tls(void) {
  ssl_ctx = SSL_CTX_new(TLS_client_method());
  if (!ssl_ctx || !SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION)) {
    fprintf(stderr, "wsload: cannot create the TLS context\n");
    exit(3);
  }
  SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (opt.tls_ca) {
    if (SSL_CTX_load_verify_locations(ssl_ctx, opt.tls_ca, NULL) != 1) {
      fprintf(stderr, "wsload: cannot load CA file %s\n", opt.tls_ca);
      exit(2);
    }
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
  } else {
    /* benchmark against a throwaway certificate: no verification */
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
  }
}

static void report(void) {
  double el = measure_end > measure_start
                  ? (double)(measure_end - measure_start) / 1e9
                  : 0.0;
  long long errors =
      st.lost + st.reordered + st.corrupt + st.conn_errors + st.proto_errors;
  double mps = el > 0 ? (double)st.msgs / el : 0.0;
  double mbs = el > 0 ? (double)st.bytes / el / 1e6 : 0.0;
  /* Our own CPU over the measured window, per echo received in it. */
  double cpu_s =
      cpu_end > cpu_start ? (double)(cpu_end - cpu_start) / 1e9 : 0.0;
  printf(
      "{\"mode\":\"%s\",\"tls\":%s,\"connections\":%d,"
      "\"connections_open\":%d,"
      "\"size\":%zu,\"inflight\":%d,\"type\":\"%s\",\"elapsed_s\":%.3f,"
      "\"msgs\":%lld,\"msgs_total\":%lld,\"msgs_per_s\":%.1f,"
      "\"mb_per_s\":%.2f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
      "\"p999_us\":%.1f,\"max_us\":%.1f,\"errors\":%lld,\"lost\":%lld,"
      "\"reordered\":%lld,\"corrupt\":%lld,\"conn_errors\":%lld,"
      "\"proto_errors\":%lld,\"body\":\"%s\",\"deflate_offered\":%s,"
      "\"deflate_conns\":%lld,\"msgs_compressed\":%lld,"
      "\"wire_bytes\":%lld,\"wire_ratio\":%.4f,\"wire_bytes_sent\":%lld,"
      "\"sent_ratio\":%.4f,\"idle_messages\":%d,"
      "\"deflate_body_cache\":%s,\"client_cpu_s\":%.4f,"
      "\"client_cpu_us_per_msg\":%.3f}\n",
      opt.idle ? "idle" : "echo", opt.tls ? "true" : "false", opt.conns,
      n_opened, opt.size, opt.inflight, opt.binary ? "binary" : "text", el,
      st.msgs, st.msgs_total, mps, mbs, hist_pct(0.50), hist_pct(0.99),
      hist_pct(0.999), (double)hist_max / 1000.0, errors, st.lost, st.reordered,
      st.corrupt, st.conn_errors, st.proto_errors, opt.json ? "json" : "random",
      opt.deflate ? "true" : "false", st.pmd_conns, st.msgs_z, st.wire_bytes,
      st.bytes ? (double)st.wire_bytes / (double)st.bytes : 0.0, st.wire_sent,
      st.bytes_sent ? (double)st.wire_sent / (double)st.bytes_sent : 0.0,
      opt.idle_messages, opt.deflate && !opt.deflate_full ? "true" : "false",
      cpu_s, st.msgs ? cpu_s * 1e6 / (double)st.msgs : 0.0);
  fflush(stdout);
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  rng_seed();
  raise_nofile();
  resolve();
  if (opt.tls)
    init_tls();
  init_conns();
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    perror("wsload: epoll_create1");
    return 3;
  }
  struct epoll_event *evs = calloc(MAX_EVENTS, sizeof *evs);
  if (opt.handshakes) {
    hs_run(evs);
    hs_report();
    long long errors = st.conn_errors + st.proto_errors;
    if (errors)
      logmsg("FAILED: %lld errors (conn %lld proto %lld)", errors,
             st.conn_errors, st.proto_errors);
    return errors || hs_ok == 0 ? 1 : 0;
  }
  now = now_ns();
  phase_deadline = now + secs(60.0); /* connect phase limit */
  start_more();
  while (phase != PH_FINISHED) {
    uint64_t left = phase_deadline > now ? phase_deadline - now : 0;
    int tmo = (int)(left / 1000000u) + 1;
    if (tmo > 50)
      tmo = 50;
    int n = epoll_wait(epfd, evs, MAX_EVENTS, tmo);
    now = now_ns();
    if (n < 0 && errno != EINTR) {
      perror("wsload: epoll_wait");
      return 3;
    }
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->state != ST_DONE)
        on_event(c, evs[i].events);
    }
    start_more();
    advance_phase();
  }
  report();
  long long errors =
      st.lost + st.reordered + st.corrupt + st.conn_errors + st.proto_errors;
  if (errors)
    logmsg("FAILED: %lld errors (lost %lld reordered %lld corrupt %lld "
           "conn %lld proto %lld)",
           errors, st.lost, st.reordered, st.corrupt, st.conn_errors,
           st.proto_errors);
  if (!opt.idle && st.msgs == 0) {
    logmsg("FAILED: no messages echoed in the measured window");
    return 1;
  }
  return errors ? 1 : 0;
}
