/* sched: does a slow or flooding connection hold up the others? Runs an
 * in-process libwebsock2 echo server (127.0.0.1, port 0, one I/O thread,
 * DIRECT delivery on agents) and drives it with one blocking client thread
 * per connection over real sockets. Three scenarios, each bounded in time:
 *
 *   hol    4 agents. One slow connection whose handler sleeps 300 ms per
 *          message (its client keeps one message in flight all the time)
 *          and 32 connections doing 16-byte echo round trips back to back.
 *          Reports the 32's round trips: count, p50, p99, worst, how many
 *          of the 32 ever waited over 50 ms, and the fewest any one did.
 *   mixed  4 agents, 100 connections doing round trips; the handler sleeps
 *          a uniform random 0-5000 us (drawn per message by the client
 *          from a seeded generator and carried in the message, so every
 *          build sees the same delays) before echoing. Reports msgs/s and
 *          its ratio to the ideal agents x 1000 / 2.5 ms.
 *   fair   2 agents. One connection floods (256 messages in flight, a
 *          handler that only echoes), 16 others do round trips. Reports
 *          the others' p99 and worst and the flooder's msgs/s, once per
 *          agent budget: the library's default (32), 1 and 1024, or only
 *          --budget N.
 *
 *   sched [--scenario hol|mixed|fair|all] [--duration S] [--agents N]
 *         [--budget N] [--flood N] [--flooders N] [--flood-us US]
 *         [--seed X] [--no-stats] [--quick]
 *
 *   --flood N      messages each flooder keeps in flight (default 256)
 *   --flooders N   flooding connections in fair (default 1)
 *   --flood-us US  the flooders' handler sleeps US microseconds (default 0)
 *   --corrupt-every N, --drop-every N  self-test: the handler flips a byte
 *                  of, or drops, every Nth echo; the program must fail
 *
 * Every message is 16 bytes: the handler's delay in microseconds (u32 LE),
 * the connection's index (u32 LE) and its sequence number (u64 LE). Each
 * frame gets a fresh mask, and every echo is compared byte for byte with
 * what was sent, in order. A corrupt, missing (5 s receive timeout),
 * reordered or refused reply makes the program exit 1. It prints one line
 * per run and a final one-line JSON object with every figure.
 *
 * Only API that predates the strand scheduler is used, so this file also
 * builds against older libraries, except the scheduler stats
 * (ready_connections, ready_wait_max_ns, per-agent events and busy_ns):
 * compile with -DSCHED_NO_STATS for a library without them, or pass
 * --no-stats to skip reading them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <websock.h>

#define MSG_LEN 16                    /* payload of every message */
#define FRAME_LEN (6 + MSG_LEN)       /* masked client frame */
#define RECV_TIMEOUT_S 5              /* a reply later than this is missing */
#define HOL_SLOW_US 300000u           /* the slow handler's sleep */
#define MIXED_MAX_US 5000u            /* mixed: delays 0..5000 us */
#define OVER_NS (50ull * 1000 * 1000) /* hol: the 50 ms target */
#define START_DELAY_NS (50ull * 1000000) /* threads start together */

/* ---- time and random numbers --------------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    ;
}

static void sleep_us(uint32_t us) {
  struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};
  while (nanosleep(&ts, &ts) == EINTR)
    ;
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

static double ms_of(uint64_t ns) {
  return (double)ns / 1e6;
}

/* ---- the server ----------------------------------------------------- */

/* What the handler counts, per server. */
typedef struct handler_stats {
  atomic_uint_fast64_t messages;    /* messages echoed */
  atomic_uint_fast64_t slept_ns;    /* time spent in the delays */
  atomic_uint_fast64_t send_errors; /* echoes websock_server_send refused */
} handler_stats;

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* Self-tests of the checks: the handler corrupts or drops every Nth echo
 * (0: never), and the program must then fail. */
static uint64_t corrupt_every, drop_every;

/* Sleeps as long as the message asks, then echoes it. */
static void on_event(websock_server *srv, const websock_event *ev, void *ud) {
  handler_stats *hs = ud;
  if (ev->type != WEBSOCK_EVENT_MESSAGE)
    return;
  uint64_t nth = atomic_fetch_add(&hs->messages, 1) + 1;
  if (ev->length >= 4) {
    uint32_t us = get_u32(ev->data);
    if (us > 0) {
      uint64_t t = now_ns();
      sleep_us(us);
      atomic_fetch_add(&hs->slept_ns, now_ns() - t);
    }
  }
  const uint8_t *data = ev->data;
  uint8_t bad[MSG_LEN];
  if (corrupt_every && nth % corrupt_every == 0 && ev->length == MSG_LEN) {
    memcpy(bad, ev->data, MSG_LEN);
    bad[MSG_LEN - 1] ^= 0x5a;
    data = bad;
  }
  if (drop_every && nth % drop_every == 0)
    return;
  if (websock_server_send(srv, ev->id, ev->opcode, data, ev->length) != 0)
    atomic_fetch_add(&hs->send_errors, 1);
}

static websock_server *server_start(int agents, unsigned budget,
                                    handler_stats *hs) {
  websock_config *cfg;
  websock_server *srv = NULL;
  int rc = websock_config_new(&cfg);
  if (!rc)
    rc = websock_config_set_listen(cfg, "127.0.0.1", 0);
  if (!rc)
    rc = websock_config_set_io_threads(cfg, 1);
  if (!rc)
    rc = websock_config_set_agents(cfg, agents);
  if (!rc && budget > 0)
    rc = websock_config_set_agent_budget(cfg, budget);
  if (!rc)
    rc = websock_config_set_close_timeout(cfg, 1000);
  if (!rc)
    rc = websock_config_set_event_callback(cfg, on_event, hs);
  if (!rc)
    rc = websock_server_new(&srv, cfg);
  websock_config_free(cfg);
  if (!rc)
    rc = websock_server_start(srv);
  if (rc) {
    fprintf(stderr, "sched: server: %s\n", websock_strerror(rc));
    exit(1);
  }
  return srv;
}

/* ---- the blocking client --------------------------------------------- */

static atomic_int failures; /* clients that failed, over the whole run */

typedef struct client {
  int fd;
  uint8_t rbuf[16384];
  size_t rpos, rlen;
} client;

static void die(const char *what) {
  fprintf(stderr, "sched: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int send_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Connects and upgrades (checking the 101 and the accept key); bytes that
 * came after the response head stay in the read buffer. */
static void client_open(client *c, int port) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {RECV_TIMEOUT_S, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0)
    die("connect");
  static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n";
  if (send_all(c->fd, (const uint8_t *)req, sizeof req - 1))
    die("send");
  c->rpos = c->rlen = 0;
  char *end = NULL;
  while (!end) {
    if (c->rlen >= sizeof c->rbuf - 1) {
      fprintf(stderr, "sched: handshake response too long\n");
      exit(1);
    }
    ssize_t r = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - 1 - c->rlen, 0);
    if (r <= 0)
      die("handshake");
    c->rlen += (size_t)r;
    c->rbuf[c->rlen] = 0;
    end = strstr((char *)c->rbuf, "\r\n\r\n");
  }
  /* RFC 6455 section 1.3: the accept key of this request's key. */
  if (strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) != 0 ||
      !strstr((char *)c->rbuf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")) {
    fprintf(stderr, "sched: upgrade refused: %.60s\n", (char *)c->rbuf);
    exit(1);
  }
  c->rpos = (size_t)(end + 4 - (char *)c->rbuf);
}

/* Appends one masked frame to |out|; returns its length. */
static size_t frame_encode(uint8_t *out, int opcode, const uint8_t *payload,
                           size_t len, uint32_t mask) {
  out[0] = (uint8_t)(0x80 | opcode);
  out[1] = (uint8_t)(0x80 | len); /* len < 126 here */
  put_u32(out + 2, mask);
  for (size_t i = 0; i < len; i++)
    out[6 + i] = (uint8_t)(payload[i] ^ out[2 + (i & 3)]);
  return 6 + len;
}

/* Length of the complete frame at the read position, or 0 when more
 * bytes are needed; sets *hdr to its header length. */
static size_t frame_ready(const client *c, size_t *hdr) {
  size_t have = c->rlen - c->rpos;
  const uint8_t *p = c->rbuf + c->rpos;
  if (have < 2)
    return 0;
  size_t h = 2;
  uint64_t len = p[1] & 0x7f;
  if (len == 126) {
    if (have < 4)
      return 0;
    len = (uint64_t)p[2] << 8 | p[3];
    h = 4;
  } else if (len == 127) {
    if (have < 10)
      return 0;
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | p[2 + i];
    h = 10;
  }
  *hdr = h;
  if (len > sizeof c->rbuf - 16)
    return SIZE_MAX; /* far larger than anything this benchmark sends */
  return have >= h + len ? h + (size_t)len : 0;
}

/* Reads one unmasked, unfragmented frame into |payload| (|cap| bytes).
 * Returns 0, or -1 with *why set. */
static int frame_read(client *c, int *opcode, uint8_t *payload, size_t cap,
                      size_t *len, const char **why) {
  size_t hdr = 0, n;
  while ((n = frame_ready(c, &hdr)) == 0) {
    if (c->rpos > 0) {
      memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
      c->rlen -= c->rpos;
      c->rpos = 0;
    }
    ssize_t r = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      *why = r == 0 ? "connection closed"
             : errno == EAGAIN || errno == EWOULDBLOCK
                 ? "reply missing (timeout)"
                 : "recv failed";
      return -1;
    }
    c->rlen += (size_t)r;
  }
  const uint8_t *p = c->rbuf + c->rpos;
  if (n == SIZE_MAX || n - hdr > cap) {
    *why = "frame too large";
    return -1;
  }
  if ((p[0] & 0xf0) != 0x80 || (p[1] & 0x80)) {
    *why = "fragmented, masked or RSV frame from the server";
    return -1;
  }
  *opcode = p[0] & 0x0f;
  *len = n - hdr;
  memcpy(payload, p + hdr, *len);
  c->rpos += n;
  return 0;
}

/* Sends close 1000 and reads up to the server's close frame. */
static int client_close(client *c, uint64_t *rng, const char **why) {
  uint8_t code[2] = {0x03, 0xe8}, out[8], in[128];
  size_t n = frame_encode(out, 8, code, 2, (uint32_t)rng_next(rng));
  int rc = send_all(c->fd, out, n);
  if (rc)
    *why = "send close failed";
  while (!rc) {
    int op;
    size_t len;
    rc = frame_read(c, &op, in, sizeof in, &len, why);
    if (!rc && op == 8)
      break;
    if (!rc) {
      *why = "unexpected frame before the close";
      rc = -1;
    }
  }
  close(c->fd);
  c->fd = -1;
  return rc;
}

/* ---- one connection's work ------------------------------------------ */

typedef struct slot {
  uint8_t msg[MSG_LEN];
  uint64_t sent_ns;
} slot;

typedef struct worker {
  pthread_t thread;
  client c;
  uint32_t index;      /* connection index, carried in each message */
  int inflight;        /* messages kept in flight */
  uint32_t delay_us;   /* fixed handler delay */
  uint32_t random_max; /* > 0: uniform delay 0..random_max us instead */
  int keep_rtts;       /* record every round trip */
  uint64_t rng;
  uint64_t start_ns, deadline_ns; /* sends stop at the deadline */
  const char *scenario;
  /* results */
  uint64_t *rtts;
  size_t nrtts, caprtts;
  uint64_t in_window; /* replies received before the deadline */
  uint64_t total;     /* replies received */
  uint64_t worst_ns;
  int failed;
} worker;

static void worker_fail(worker *w, const char *why, uint64_t seq) {
  fprintf(stderr, "sched: %s: connection %u, message %llu: %s\n", w->scenario,
          w->index, (unsigned long long)seq, why);
  w->failed = 1;
  atomic_fetch_add(&failures, 1);
}

static void rtt_push(worker *w, uint64_t ns) {
  if (ns > w->worst_ns)
    w->worst_ns = ns;
  if (!w->keep_rtts)
    return;
  if (w->nrtts == w->caprtts) {
    size_t cap = w->caprtts ? 2 * w->caprtts : 4096;
    uint64_t *p = realloc(w->rtts, cap * sizeof *p);
    if (!p)
      die("realloc");
    w->rtts = p;
    w->caprtts = cap;
  }
  w->rtts[w->nrtts++] = ns;
}

/* Fills slot |s| with message |seq| and appends its frame to |out|. */
static size_t message_make(worker *w, slot *s, uint64_t seq, uint8_t *out) {
  uint32_t d = w->delay_us;
  if (w->random_max)
    d = (uint32_t)(rng_next(&w->rng) % (w->random_max + 1u));
  put_u32(s->msg, d);
  put_u32(s->msg + 4, w->index);
  put_u64(s->msg + 8, seq);
  return frame_encode(out, WEBSOCK_OP_BINARY, s->msg, MSG_LEN,
                      (uint32_t)rng_next(&w->rng));
}

/* Keeps |inflight| messages in flight until the deadline, then collects
 * the replies still owed and closes. Replies arrive in order, so the next
 * one must equal the oldest message sent. Every reply that a read brought
 * is checked before the messages replacing them go out in one write. */
static void *worker_main(void *arg) {
  worker *w = arg;
  size_t k = (size_t)w->inflight;
  slot *ring = calloc(k, sizeof *ring);
  uint8_t *out = malloc(k * FRAME_LEN);
  if (!ring || !out)
    die("malloc");
  uint64_t next_tx = 0, next_rx = 0, unstamped = 0;
  size_t o = 0;
  const char *why = NULL;
  sleep_until(w->start_ns);
  for (; next_tx < k; next_tx++)
    o += message_make(w, &ring[next_tx % k], next_tx, out + o);
  while (!w->failed) {
    if (o > 0) {
      uint64_t t = now_ns();
      for (; unstamped < next_tx; unstamped++)
        ring[unstamped % k].sent_ns = t;
      if (send_all(w->c.fd, out, o)) {
        worker_fail(w, "send failed", unstamped);
        break;
      }
      o = 0;
    }
    if (next_rx == next_tx)
      break;
    /* every complete frame the last read brought, then send */
    do {
      int op;
      size_t len, hdr;
      uint8_t got[128];
      if (frame_read(&w->c, &op, got, sizeof got, &len, &why)) {
        worker_fail(w, why, next_rx);
        break;
      }
      uint64_t t = now_ns();
      slot *s = &ring[next_rx % k];
      if (op != WEBSOCK_OP_BINARY || len != MSG_LEN ||
          memcmp(got, s->msg, MSG_LEN) != 0) {
        worker_fail(w, op == 8 ? "closed by the server" : "corrupt reply",
                    next_rx);
        break;
      }
      rtt_push(w, t - s->sent_ns);
      w->total++;
      if (t <= w->deadline_ns)
        w->in_window++;
      next_rx++;
      if (t < w->deadline_ns) {
        o += message_make(w, &ring[next_tx % k], next_tx, out + o);
        next_tx++;
      }
      if (frame_ready(&w->c, &hdr) == 0)
        break;
    } while (!w->failed);
  }
  if (!w->failed && client_close(&w->c, &w->rng, &why))
    worker_fail(w, why, next_rx);
  if (w->c.fd >= 0)
    close(w->c.fd);
  free(ring);
  free(out);
  return NULL;
}

/* ---- scheduler stats (not in libraries before the strand scheduler) -- */

typedef struct sched_stats {
  int have;
  unsigned agents;
  uint64_t ready_max;         /* most ready connections seen while sampling */
  uint64_t ready_wait_max_ns; /* from the server */
  uint64_t *events, *busy_ns; /* per agent, over the run */
  uint64_t begin_ns, end_ns;  /* when the agent counters were read */
} sched_stats;

static int use_stats = 1;

#ifndef SCHED_NO_STATS
static void agent_snapshot(websock_server *srv, unsigned n, uint64_t *events,
                           uint64_t *busy) {
  for (unsigned i = 0; i < n; i++) {
    websock_agent_stats as;
    memset(&as, 0, sizeof as);
    websock_server_get_agent_stats(srv, i, &as, sizeof as);
    events[i] = as.events;
    busy[i] = as.busy_ns;
  }
}
#endif

static void stats_begin(sched_stats *ss, websock_server *srv, int agents) {
  memset(ss, 0, sizeof *ss);
  ss->agents = (unsigned)agents;
  ss->events = calloc(ss->agents + 1, sizeof *ss->events);
  ss->busy_ns = calloc(ss->agents + 1, sizeof *ss->busy_ns);
  if (!ss->events || !ss->busy_ns)
    die("calloc");
#ifndef SCHED_NO_STATS
  if (use_stats) {
    ss->have = 1;
    ss->begin_ns = now_ns();
    agent_snapshot(srv, ss->agents, ss->events, ss->busy_ns);
  }
#else
  (void)srv;
#endif
}

static void stats_sample(sched_stats *ss, websock_server *srv) {
#ifndef SCHED_NO_STATS
  if (ss->have) {
    websock_stats st;
    memset(&st, 0, sizeof st);
    websock_server_get_stats(srv, &st, sizeof st);
    if (st.ready_connections > ss->ready_max)
      ss->ready_max = st.ready_connections;
  }
#else
  (void)ss;
  (void)srv;
#endif
}

static void stats_end(sched_stats *ss, websock_server *srv) {
#ifndef SCHED_NO_STATS
  if (ss->have) {
    stats_sample(ss, srv);
    websock_stats st;
    memset(&st, 0, sizeof st);
    websock_server_get_stats(srv, &st, sizeof st);
    ss->ready_wait_max_ns = st.ready_wait_max_ns;
    uint64_t *ev = calloc(ss->agents + 1, sizeof *ev);
    uint64_t *busy = calloc(ss->agents + 1, sizeof *busy);
    if (!ev || !busy)
      die("calloc");
    agent_snapshot(srv, ss->agents, ev, busy);
    ss->end_ns = now_ns();
    for (unsigned i = 0; i < ss->agents; i++) {
      ss->events[i] = ev[i] - ss->events[i];
      ss->busy_ns[i] = busy[i] - ss->busy_ns[i];
    }
    free(ev);
    free(busy);
  }
#else
  (void)ss;
  (void)srv;
#endif
}

/* Room for the stats of up to 1024 agents. */
#define STATS_TEXT 40000

/* Share of the time between the two readings an agent ran events. */
static double busy_pct(const sched_stats *ss, unsigned i) {
  uint64_t span = ss->end_ns - ss->begin_ns;
  return span ? 100.0 * (double)ss->busy_ns[i] / (double)span : 0.0;
}

/* " ready_max R, ready_wait_max W ms, agents events e/e/.., busy b/b/..%" */
static void stats_text(const sched_stats *ss, char *buf, size_t cap) {
  buf[0] = 0;
  if (!ss->have)
    return;
  size_t o = (size_t)snprintf(
      buf, cap, "; ready max %llu, ready wait max %.1f ms",
      (unsigned long long)ss->ready_max, ms_of(ss->ready_wait_max_ns));
  if (ss->agents == 0 || o >= cap)
    return;
  o += (size_t)snprintf(buf + o, cap - o, ", agent events ");
  for (unsigned i = 0; i < ss->agents && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? "/" : "",
                          (unsigned long long)ss->events[i]);
  for (unsigned i = 0; i < ss->agents && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%.0f", i ? "/" : ", busy ",
                          busy_pct(ss, i));
  if (o < cap)
    snprintf(buf + o, cap - o, "%%");
}

static void stats_json(const sched_stats *ss, char *buf, size_t cap) {
  buf[0] = 0;
  if (!ss->have)
    return;
  size_t o = (size_t)snprintf(buf, cap,
                              ",\"ready_max\":%llu,\"ready_wait_max_ms\":%.3f,"
                              "\"agent_events\":[",
                              (unsigned long long)ss->ready_max,
                              ms_of(ss->ready_wait_max_ns));
  for (unsigned i = 0; i < ss->agents && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? "," : "",
                          (unsigned long long)ss->events[i]);
  if (o < cap)
    o += (size_t)snprintf(buf + o, cap - o, "],\"agent_busy_pct\":[");
  for (unsigned i = 0; i < ss->agents && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%.1f", i ? "," : "",
                          busy_pct(ss, i));
  if (o < cap)
    snprintf(buf + o, cap - o, "]");
}

/* ---- running a set of connections ----------------------------------- */

typedef struct run_opts {
  const char *scenario;
  int agents;
  unsigned budget; /* 0: the library's default */
  double duration;
  uint64_t seed;
} run_opts;

/* Round trips of the workers with keep_rtts set, merged. */
typedef struct rtt_summary {
  uint64_t count, min_per_conn;
  uint64_t p50_ns, p99_ns, worst_ns;
  unsigned over; /* connections whose worst round trip passed OVER_NS */
} rtt_summary;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static rtt_summary summarize(worker *ws, int n) {
  rtt_summary s = {0};
  size_t total = 0;
  s.min_per_conn = UINT64_MAX;
  for (int i = 0; i < n; i++)
    if (ws[i].keep_rtts) {
      total += ws[i].nrtts;
      if (ws[i].nrtts < s.min_per_conn)
        s.min_per_conn = ws[i].nrtts;
      if (ws[i].worst_ns > OVER_NS)
        s.over++;
    }
  if (s.min_per_conn == UINT64_MAX)
    s.min_per_conn = 0;
  s.count = total;
  if (!total)
    return s;
  uint64_t *all = malloc(total * sizeof *all);
  if (!all)
    die("malloc");
  size_t o = 0;
  for (int i = 0; i < n; i++)
    if (ws[i].keep_rtts) {
      memcpy(all + o, ws[i].rtts, ws[i].nrtts * sizeof *all);
      o += ws[i].nrtts;
    }
  qsort(all, total, sizeof *all, cmp_u64);
  s.p50_ns = all[(total - 1) / 2];
  s.p99_ns = all[(total * 99 + 99) / 100 - 1]; /* ceil(0.99 n)-th */
  s.worst_ns = all[total - 1];
  free(all);
  return s;
}

/* Opens |n| connections to a fresh server, runs them for the duration,
 * closes them and frees the server. Worker 0 starts 20 ms early (hol's slow
 * connection has its first message in the handler before the others
 * start). Returns the elapsed measuring window in seconds. */
static double run_workers(const run_opts *ro, worker *ws, int n,
                          handler_stats *hs, sched_stats *ss) {
  memset(hs, 0, sizeof *hs);
  websock_server *srv = server_start(ro->agents, ro->budget, hs);
  int port = websock_server_port(srv);
  for (int i = 0; i < n; i++) {
    client_open(&ws[i].c, port);
    ws[i].index = (uint32_t)i;
    ws[i].scenario = ro->scenario;
    ws[i].rng = splitmix64(ro->seed * 1000003u + (uint64_t)i) | 1;
  }
  stats_begin(ss, srv, ro->agents);
  uint64_t t0 = now_ns() + START_DELAY_NS;
  uint64_t deadline = t0 + (uint64_t)(ro->duration * 1e9);
  for (int i = 0; i < n; i++) {
    ws[i].start_ns = i == 0 ? t0 - START_DELAY_NS / 2 : t0;
    ws[i].deadline_ns = deadline;
    if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]))
      die("pthread_create");
  }
  /* sample the ready count until the window is over */
  while (now_ns() < deadline) {
    stats_sample(ss, srv);
    usleep(2000);
  }
  for (int i = 0; i < n; i++)
    pthread_join(ws[i].thread, NULL);
  stats_end(ss, srv);
  websock_server_free(srv);
  if (atomic_load(&hs->send_errors)) {
    fprintf(stderr, "sched: %s: %llu echoes refused by the server\n",
            ro->scenario, (unsigned long long)atomic_load(&hs->send_errors));
    atomic_fetch_add(&failures, 1);
  }
  return (double)(deadline - t0) / 1e9;
}

static void workers_free(worker *ws, int n) {
  for (int i = 0; i < n; i++)
    free(ws[i].rtts);
  free(ws);
}

static worker *workers_new(int n) {
  worker *ws = calloc((size_t)n, sizeof *ws);
  if (!ws)
    die("calloc");
  return ws;
}

static char json[1 << 18]; /* the final JSON object, built as runs finish */
static size_t json_len;

#define JSON_ADD(...)                                                          \
  do {                                                                         \
    if (json_len < sizeof json)                                                \
      json_len += (size_t)snprintf(json + json_len, sizeof json - json_len,    \
                                   __VA_ARGS__);                               \
  } while (0)

static void budget_name(unsigned budget, char *buf, size_t cap) {
  if (budget)
    snprintf(buf, cap, "%u", budget);
  else
    snprintf(buf, cap, "default");
}

/* ---- the scenarios -------------------------------------------------- */

#define HOL_CONNS 32
#define MIXED_CONNS 100
#define FAIR_CONNS 16

static void scenario_hol(const run_opts *ro) {
  int n = 1 + HOL_CONNS;
  worker *ws = workers_new(n);
  for (int i = 0; i < n; i++) {
    ws[i].inflight = 1;
    ws[i].keep_rtts = i > 0;
  }
  ws[0].delay_us = HOL_SLOW_US;
  handler_stats hs;
  sched_stats ss;
  double el = run_workers(ro, ws, n, &hs, &ss);
  rtt_summary s = summarize(ws, n);
  char b[16], st[STATS_TEXT], sj[STATS_TEXT];
  budget_name(ro->budget, b, sizeof b);
  stats_text(&ss, st, sizeof st);
  stats_json(&ss, sj, sizeof sj);
  printf("hol: %d agents, budget %s, %.1f s: %d conns did %llu round trips "
         "(fewest %llu): p50 %.2f ms, p99 %.2f ms, worst %.2f ms, %u over "
         "50 ms; slow conn %llu msgs, worst %.0f ms%s\n",
         ro->agents, b, el, HOL_CONNS, (unsigned long long)s.count,
         (unsigned long long)s.min_per_conn, ms_of(s.p50_ns), ms_of(s.p99_ns),
         ms_of(s.worst_ns), s.over, (unsigned long long)ws[0].total,
         ms_of(ws[0].worst_ns), st);
  fflush(stdout);
  JSON_ADD(
      ",\"hol\":{\"agents\":%d,\"budget\":\"%s\",\"duration_s\":%.3f,"
      "\"conns\":%d,\"round_trips\":%llu,\"min_per_conn\":%llu,"
      "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"worst_ms\":%.3f,"
      "\"conns_over_50ms\":%u,\"slow_msgs\":%llu,\"slow_worst_ms\":%.1f%s}",
      ro->agents, b, el, HOL_CONNS, (unsigned long long)s.count,
      (unsigned long long)s.min_per_conn, ms_of(s.p50_ns), ms_of(s.p99_ns),
      ms_of(s.worst_ns), s.over, (unsigned long long)ws[0].total,
      ms_of(ws[0].worst_ns), sj);
  free(ss.events);
  free(ss.busy_ns);
  workers_free(ws, n);
}

static void scenario_mixed(const run_opts *ro) {
  int n = MIXED_CONNS;
  worker *ws = workers_new(n);
  for (int i = 0; i < n; i++) {
    ws[i].inflight = 1;
    ws[i].random_max = MIXED_MAX_US;
    ws[i].keep_rtts = 1;
  }
  handler_stats hs;
  sched_stats ss;
  double el = run_workers(ro, ws, n, &hs, &ss);
  rtt_summary s = summarize(ws, n);
  uint64_t in_window = 0;
  for (int i = 0; i < n; i++)
    in_window += ws[i].in_window;
  double mps = (double)in_window / el;
  double mean_ms = (double)MIXED_MAX_US / 2 / 1000;
  int runners = ro->agents > 0 ? ro->agents : 1; /* agents 0: the loop */
  double ideal = runners * 1000.0 / mean_ms;
  uint64_t msgs = atomic_load(&hs.messages);
  double slept_ms = msgs ? ms_of(atomic_load(&hs.slept_ns)) / (double)msgs : 0;
  char b[16], st[STATS_TEXT], sj[STATS_TEXT];
  budget_name(ro->budget, b, sizeof b);
  stats_text(&ss, st, sizeof st);
  stats_json(&ss, sj, sizeof sj);
  printf("mixed: %d agents, budget %s, %.1f s: %d conns, %.0f msgs/s, "
         "%.3fx the ideal %.0f (handlers slept %.3f ms on average, ideal "
         "for that %.0f); p99 %.1f ms, worst %.1f ms%s\n",
         ro->agents, b, el, n, mps, mps / ideal, ideal, slept_ms,
         slept_ms > 0 ? runners * 1000.0 / slept_ms : 0.0, ms_of(s.p99_ns),
         ms_of(s.worst_ns), st);
  fflush(stdout);
  JSON_ADD(",\"mixed\":{\"agents\":%d,\"budget\":\"%s\",\"duration_s\":%.3f,"
           "\"conns\":%d,\"msgs\":%llu,\"msgs_per_s\":%.1f,\"ideal\":%.1f,"
           "\"ratio\":%.4f,\"slept_mean_ms\":%.4f,\"p50_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"worst_ms\":%.3f%s}",
           ro->agents, b, el, n, (unsigned long long)in_window, mps, ideal,
           mps / ideal, slept_ms, ms_of(s.p50_ns), ms_of(s.p99_ns),
           ms_of(s.worst_ns), sj);
  free(ss.events);
  free(ss.busy_ns);
  workers_free(ws, n);
}

/* The fairness case: |flooders| connections keep |inflight| messages in
 * flight each (their handler sleeps |us| microseconds, 0: none), 16 others
 * do round trips with a handler that only echoes. */
typedef struct flood_opts {
  int flooders, inflight;
  uint32_t us;
} flood_opts;

static void scenario_fair(const run_opts *ro, const flood_opts *fo, int first) {
  int nf = fo->flooders, n = nf + FAIR_CONNS;
  worker *ws = workers_new(n);
  for (int i = 0; i < n; i++) {
    ws[i].inflight = i < nf ? fo->inflight : 1;
    ws[i].delay_us = i < nf ? fo->us : 0;
    ws[i].keep_rtts = i >= nf;
  }
  handler_stats hs;
  sched_stats ss;
  double el = run_workers(ro, ws, n, &hs, &ss);
  rtt_summary s = summarize(ws, n);
  uint64_t flooded = 0, others = 0;
  for (int i = 0; i < n; i++)
    *(i < nf ? &flooded : &others) += ws[i].in_window;
  double flood_mps = (double)flooded / el;
  char b[16], st[STATS_TEXT], sj[STATS_TEXT], fl[64] = "flooder";
  if (nf > 1)
    snprintf(fl, sizeof fl, "%d flooders", nf);
  budget_name(ro->budget, b, sizeof b);
  stats_text(&ss, st, sizeof st);
  stats_json(&ss, sj, sizeof sj);
  printf("fair: %d agents, budget %s, %.1f s: %s (%d in flight, handler "
         "%u us) %.0f msgs/s; %d others %.0f msgs/s: p50 %.2f ms, p99 %.2f "
         "ms, worst %.2f ms%s\n",
         ro->agents, b, el, fl, fo->inflight, fo->us, flood_mps, FAIR_CONNS,
         (double)others / el, ms_of(s.p50_ns), ms_of(s.p99_ns),
         ms_of(s.worst_ns), st);
  fflush(stdout);
  JSON_ADD("%s{\"agents\":%d,\"budget\":\"%s\",\"duration_s\":%.3f,"
           "\"flooders\":%d,\"flood_inflight\":%d,\"flood_us\":%u,"
           "\"flood_msgs_per_s\":%.1f,\"others\":%d,"
           "\"others_msgs_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"worst_ms\":%.3f%s}",
           first ? "" : ",", ro->agents, b, el, nf, fo->inflight, fo->us,
           flood_mps, FAIR_CONNS, (double)others / el, ms_of(s.p50_ns),
           ms_of(s.p99_ns), ms_of(s.worst_ns), sj);
  free(ss.events);
  free(ss.busy_ns);
  workers_free(ws, n);
}

/* ---- main ----------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: sched [--scenario hol|mixed|fair|all] [--duration S] "
                  "[--agents N] [--budget N] [--flood N] [--flooders N] "
                  "[--flood-us US] [--seed X] [--no-stats] [--quick]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *scenario = "all";
  double duration = 0;
  int agents = -1, quick = 0; /* agents -1: per scenario */
  flood_opts fo = {1, 256, 0};
  unsigned budget = 0;
  uint64_t seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quick") == 0) {
      quick = 1;
      continue;
    }
    if (strcmp(a, "--no-stats") == 0) {
      use_stats = 0;
      continue;
    }
    if (i + 1 >= argc)
      usage();
    const char *v = argv[++i];
    if (strcmp(a, "--scenario") == 0)
      scenario = v;
    else if (strcmp(a, "--duration") == 0)
      duration = atof(v);
    else if (strcmp(a, "--agents") == 0)
      agents = atoi(v);
    else if (strcmp(a, "--budget") == 0)
      budget = (unsigned)strtoul(v, NULL, 10);
    else if (strcmp(a, "--flood") == 0)
      fo.inflight = atoi(v);
    else if (strcmp(a, "--flooders") == 0)
      fo.flooders = atoi(v);
    else if (strcmp(a, "--flood-us") == 0)
      fo.us = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(a, "--seed") == 0)
      seed = strtoull(v, NULL, 10);
    else if (strcmp(a, "--corrupt-every") == 0)
      corrupt_every = strtoull(v, NULL, 10);
    else if (strcmp(a, "--drop-every") == 0)
      drop_every = strtoull(v, NULL, 10);
    else
      usage();
  }
  int do_hol = !strcmp(scenario, "hol") || !strcmp(scenario, "all");
  int do_mixed = !strcmp(scenario, "mixed") || !strcmp(scenario, "all");
  int do_fair = !strcmp(scenario, "fair") || !strcmp(scenario, "all");
  if (!do_hol && !do_mixed && !do_fair)
    usage();
  if (duration == 0)
    duration = quick ? 0.5 : 3.0;
  if (duration < 0.05 || duration > 600 || agents < -1 || agents > 1024 ||
      fo.inflight < 1 || fo.inflight > 4096 || fo.flooders < 1 ||
      fo.flooders > 64 || fo.us > 1000000 || budget > 65536)
    usage();
#ifdef SCHED_NO_STATS
  use_stats = 0;
#endif
  printf("sched: %s, %.1f s per run%s, seed %llu, stats %s\n", scenario,
         duration, quick ? " (quick)" : "", (unsigned long long)seed,
         use_stats ? "on" : "off");
  fflush(stdout);
  JSON_ADD("{\"bench\":\"sched\",\"quick\":%s,\"stats\":%s,\"seed\":%llu",
           quick ? "true" : "false", use_stats ? "true" : "false",
           (unsigned long long)seed);
  run_opts ro = {NULL, 0, budget, duration, seed};
  if (do_hol) {
    ro.scenario = "hol";
    ro.agents = agents >= 0 ? agents : 4;
    scenario_hol(&ro);
  }
  if (do_mixed) {
    ro.scenario = "mixed";
    ro.agents = agents >= 0 ? agents : 4;
    scenario_mixed(&ro);
  }
  if (do_fair) {
    /* the default budget, then the extremes; or only the one asked for */
    static const unsigned sweep[] = {0, 1, 1024};
    size_t nb = budget ? 1 : sizeof sweep / sizeof sweep[0];
    ro.scenario = "fair";
    ro.agents = agents >= 0 ? agents : 2;
    if (quick)
      ro.duration = duration < 0.3 ? duration : 0.3;
    JSON_ADD(",\"fair\":[");
    for (size_t k = 0; k < nb; k++) {
      ro.budget = budget ? budget : sweep[k];
      scenario_fair(&ro, &fo, k == 0);
    }
    JSON_ADD("]");
  }
  int failed = atomic_load(&failures);
  JSON_ADD(",\"failures\":%d}", failed);
  printf("%s\n", json);
  if (failed)
    fprintf(stderr, "sched: %d failure(s)\n", failed);
  return failed ? 1 : 0;
}
