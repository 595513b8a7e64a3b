/* cluster: what crossing nodes through Redis costs (issue 16). Runs a
 * redis-server of its own on a free 127.0.0.1 port and three cluster nodes
 * in this process (nodes 1, 2 and 3, DIRECT delivery, --io-threads and
 * --agents each), and drives them over real sockets from one client
 * process forked before anything else starts (epoll, blocking handshakes,
 * one small struct per connection; it also keeps the descriptors of the
 * clients apart from the servers').
 *
 * One publisher connection on node 1 sends messages its node's handler
 * passes on: 'P' publishes the message to the cell's topic (except the
 * publisher), 'S' sends it by id to one connection, 'T' by tag. The
 * receivers are on node 1 itself (within one node) or on node 2 (through
 * Redis):
 *
 *   publish      S subscribers (1 and --subs), one topic
 *   send by id   one receiver addressed by id (websock_server_send)
 *   send by tag  one receiver addressed by its tag, which it claimed
 *                cluster-wide (websock_server_send_tag: node 1 finds the
 *                tag in its directory and forwards to its id)
 *   fan-out      --fanout subscribers, all on node 1, then half on nodes
 *                1 and 2, then a third on each node: one publish at a
 *                time, the time until the last has it
 *
 * Each cell first publishes probes until every receiver has one (the
 * receiving node's SUBSCRIBE has reached Redis), then --latency messages
 * one at a time (latency p50/p99 from the publisher's send to receipt),
 * then keeps --window messages in flight for --duration seconds
 * (publishes/s delivered to all, and their latency under that load).
 * Every message is B bytes (32..125): kind, cell, target id, sequence
 * number, the CLOCK_MONOTONIC time of its send, then a pattern of its
 * sequence number. Every delivery is checked (length, kind, cell,
 * pattern, and per receiver the next sequence number: none lost,
 * duplicated or reordered); a wrong one, or a message missing for 5 s,
 * makes the program exit 1. Redis is killed by its PID at the end, also
 * on failure. It prints a line per cell and markdown tables.
 *
 *   cluster [--io-threads N] [--agents N] [--subs S] [--fanout N]
 *           [--rounds R] [--latency L] [--duration SEC] [--window W]
 *           [--size B] [--quick]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <websock.h>

#define NBUCKETS 320 /* latency histogram: 8 buckets per power of two */
#define TIMEOUT_NS (5ull * 1000000000ull)
#define HDR 32 /* kind, cell, probe, pad, target, seq, time */
#define MAX_CELLS 16
#define RING 4096 /* delivery counts of the messages in flight (>= window) */

/* ---- time, histograms ------------------------------------------------ */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned bucket_of(uint64_t ns) {
  if (ns < 8)
    return (unsigned)ns;
  unsigned lg = 63u - (unsigned)__builtin_clzll(ns);
  unsigned sub = (unsigned)(ns >> (lg - 3)) & 7u;
  unsigned b = (lg - 2) * 8 + sub;
  return b < NBUCKETS ? b : NBUCKETS - 1;
}

/* The middle of bucket |b|, in nanoseconds (the buckets are 1/8 of a
 * power of two wide, so this is within 6% of any value in it). */
static double bucket_ns(unsigned b) {
  if (b < 8)
    return b;
  unsigned lg = b / 8 + 2, sub = b % 8;
  return ldexp(1.0 + (sub + 0.5) / 8.0, (int)lg);
}

static double hist_pct(const uint64_t *h, double p) {
  uint64_t total = 0;
  for (unsigned b = 0; b < NBUCKETS; b++)
    total += h[b];
  if (!total)
    return 0;
  uint64_t want = (uint64_t)ceil(p * (double)total), seen = 0;
  for (unsigned b = 0; b < NBUCKETS; b++) {
    seen += h[b];
    if (seen >= want && h[b])
      return bucket_ns(b);
  }
  return bucket_ns(NBUCKETS - 1);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* ---- options ----------------------------------------------------------- */

typedef struct opts {
  int io_threads, agents, subs, fanout, rounds, latency, window, size;
  double duration;
  int quick;
  const char *redis_log; /* redis-server's stdout, or NULL: /dev/null */
  int redis_limits;      /* keep Redis' default pubsub output limit */
} opts;

static opts O;

static void usage(void) {
  fprintf(stderr, "usage: cluster [--io-threads N] [--agents N] [--subs S] "
                  "[--fanout N] [--rounds R] [--latency L] [--duration SEC] "
                  "[--window W] [--size B] [--redis-log FILE] "
                  "[--redis-default-limits] [--quick]\n");
  exit(2);
}

static void parse(int argc, char **argv) {
  O = (opts){1, 0, 100, 10000, 20, 2000, 32, 32, 3.0, 0, NULL, 0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--redis-default-limits") == 0) {
      O.redis_limits = 1;
      continue;
    }
    if (strcmp(a, "--quick") == 0) {
      O.quick = 1;
      O.fanout = 1000;
      O.rounds = 5;
      O.latency = 200;
      O.duration = 0.5;
      continue;
    }
    if (i + 1 >= argc)
      usage();
    const char *v = argv[++i];
    if (strcmp(a, "--io-threads") == 0)
      O.io_threads = atoi(v);
    else if (strcmp(a, "--agents") == 0)
      O.agents = atoi(v);
    else if (strcmp(a, "--subs") == 0)
      O.subs = atoi(v);
    else if (strcmp(a, "--fanout") == 0)
      O.fanout = atoi(v);
    else if (strcmp(a, "--rounds") == 0)
      O.rounds = atoi(v);
    else if (strcmp(a, "--latency") == 0)
      O.latency = atoi(v);
    else if (strcmp(a, "--duration") == 0)
      O.duration = atof(v);
    else if (strcmp(a, "--window") == 0)
      O.window = atoi(v);
    else if (strcmp(a, "--size") == 0)
      O.size = atoi(v);
    else if (strcmp(a, "--redis-log") == 0)
      O.redis_log = v;
    else
      usage();
  }
  if (O.io_threads < 1 || O.agents < 0 || O.subs < 1 || O.fanout < 0 ||
      O.rounds < 1 || O.latency < 1 || O.window < 1 || O.window > 256 ||
      O.size < HDR || O.size > 125 || !(O.duration > 0 && O.duration <= 600))
    usage();
}

/* ---- what the two processes share -------------------------------------- */

#define NODES 3 /* cluster nodes; PORTS[NODES] is the server without one */

typedef struct shared {
  atomic_int port[NODES + 1]; /* the nodes' (once every link is up) and
                                 the server's without a cluster */
  atomic_int quit;            /* the parent gave up */
} shared;

static shared *SH;

/* ---- the nodes (parent) ------------------------------------------------ */

static atomic_uint_fast64_t handler_errors;
static atomic_int handler_last_rc;

/* OPEN: a path "/s/TOPIC" subscribes to TOPIC ("/s/-": none), "/t/TAG"
 * claims TAG; every connection is told its id ("id:N"). MESSAGE: 'P'
 * publishes the message to topic "c<cell>" except the sender, 'S' sends
 * it to the id in it, 'T' to tag "r<cell>" (a probe may find the tag not
 * yet known). TAG: the claim must have succeeded. */
static void on_event(websock_server *srv, const websock_event *ev, void *ud) {
  (void)ud;
  int rc = 0;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    const char *p = ev->path ? ev->path : "";
    if (strncmp(p, "/s/", 3) == 0 && strcmp(p + 3, "-") != 0)
      rc = websock_server_subscribe(srv, ev->id, p + 3, strlen(p + 3));
    else if (strncmp(p, "/t/", 3) == 0)
      rc = websock_server_set_tag(srv, ev->id, p + 3);
    char b[32];
    int n = snprintf(b, sizeof b, "id:%" PRIu64, ev->id);
    if (rc >= 0) /* 0, or a claim pending */
      rc = websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, b, (size_t)n);
  } else if (ev->type == WEBSOCK_EVENT_MESSAGE && ev->length >= HDR) {
    const uint8_t *d = ev->data;
    if (d[0] == 'P') {
      char topic[8];
      int n = snprintf(topic, sizeof topic, "c%u", d[1]);
      rc = websock_server_publish(srv, topic, (size_t)n, WEBSOCK_OP_BINARY, d,
                                  ev->length, ev->id);
    } else if (d[0] == 'S') {
      uint64_t to;
      memcpy(&to, d + 8, 8);
      rc = websock_server_send(srv, to, WEBSOCK_OP_BINARY, d, ev->length);
    } else if (d[0] == 'T') {
      char tag[8];
      snprintf(tag, sizeof tag, "r%u", d[1]);
      rc = websock_server_send_tag(srv, tag, WEBSOCK_OP_BINARY, d, ev->length);
      if (d[2] && rc == WEBSOCK_ERR_NO_SUCH_CLIENT)
        rc = 0;
    }
  } else if (ev->type == WEBSOCK_EVENT_TAG) {
    rc = ev->status;
  }
  if (rc < 0) { /* (set_tag's WEBSOCK_PENDING is no error) */
    atomic_fetch_add(&handler_errors, 1);
    atomic_store(&handler_last_rc, rc);
  }
}

static websock_server *node_start(int node, int redis_port) {
  websock_config *cfg;
  websock_server *srv = NULL;
  char url[64], prefix[32];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
  snprintf(prefix, sizeof prefix, "bench%d", (int)getpid());
  int rc = websock_config_new(&cfg);
  if (!rc)
    rc = websock_config_set_io_threads(cfg, O.io_threads);
  if (!rc)
    rc = websock_config_set_agents(cfg, O.agents);
  if (!rc)
    rc = websock_config_set_max_connections(cfg, 200000);
  if (!rc)
    rc = websock_config_set_event_callback(cfg, on_event, NULL);
  if (!rc && node)
    rc = websock_config_set_cluster(cfg, url, node);
  if (!rc && node)
    rc = websock_config_set_cluster_prefix(cfg, prefix);
  if (!rc)
    rc = websock_server_new(&srv, cfg);
  websock_config_free(cfg);
  if (!rc)
    rc = websock_server_start(srv);
  if (rc) {
    fprintf(stderr, "cluster: node %d (0: no cluster): %s\n", node,
            websock_strerror(rc));
    exit(1);
  }
  return srv;
}

static websock_stats node_stats(websock_server *s) {
  websock_stats st;
  memset(&st, 0, sizeof st);
  websock_server_get_stats(s, &st, sizeof st);
  return st;
}

/* ---- redis-server (parent) --------------------------------------------- */

static pid_t redis_pid, client_pid;

static void kill_children(void) {
  if (redis_pid > 0) {
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
  }
  if (client_pid > 0) {
    kill(client_pid, SIGKILL);
    waitpid(client_pid, NULL, 0);
    client_pid = 0;
  }
}

static void on_fatal_signal(int sig) {
  /* async-signal-safe: kill by PID and leave */
  if (redis_pid > 0)
    kill(redis_pid, SIGKILL);
  if (client_pid > 0)
    kill(client_pid, SIGKILL);
  static const char m[] = "cluster: interrupted or timed out\n";
  if (write(2, m, sizeof m - 1) < 0) {
  }
  _exit(sig == SIGALRM ? 1 : 128 + sig);
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
    perror("cluster: free port");
    exit(1);
  }
  close(fd);
  return ntohs(a.sin_port);
}

static int port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

/* Starts redis-server on |port| (no persistence, its log to /dev/null);
 * it dies with this thread (PR_SET_PDEATHSIG) if we cannot kill it. */
static void redis_start(int port) {
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  redis_pid = fork();
  if (redis_pid < 0) {
    perror("cluster: fork");
    exit(1);
  }
  if (redis_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null = open(O.redis_log ? O.redis_log : "/dev/null",
                    O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (null >= 0)
      dup2(null, 1);
    /* Without a limit on what Redis buffers for a subscriber: a node
     * publishing faster than its link reads its own publishes back would
     * otherwise lose its subscriber connection (see bench/README.md). */
    if (O.redis_limits)
      execlp("redis-server", "redis-server", "--port", ps, "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no", (char *)NULL);
    else
      execlp("redis-server", "redis-server", "--port", ps, "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no",
             "--client-output-buffer-limit", "pubsub 0 0 0", (char *)NULL);
    perror("cluster: redis-server");
    _exit(127);
  }
  for (int i = 0; i < 500 && !port_open(port); i++) {
    if (waitpid(redis_pid, NULL, WNOHANG) == redis_pid) {
      redis_pid = 0;
      fprintf(stderr, "cluster: redis-server exited at once\n");
      exit(1);
    }
    usleep(10000);
  }
  if (!port_open(port)) {
    fprintf(stderr, "cluster: redis-server did not listen on %d\n", port);
    exit(1);
  }
}

/* CPU seconds |pid| has used (utime + stime). */
static double proc_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                   &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double loadavg(void) {
  FILE *f = fopen("/proc/loadavg", "r");
  double l = -1;
  if (f) {
    if (fscanf(f, "%lf", &l) != 1)
      l = -1;
    fclose(f);
  }
  return l;
}

/* ---- the clients (child) ----------------------------------------------- */

static void cdie(const char *what) {
  fprintf(stderr, "cluster: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int send_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads one whole server frame (blocking, the socket's timeout). Returns
 * its opcode or -1. */
static int frame_read(int fd, uint8_t *payload, size_t cap, size_t *len) {
  uint8_t h[2];
  if (recv(fd, h, 2, MSG_WAITALL) != 2)
    return -1;
  size_t n = h[1] & 0x7f;
  if (n >= 126 || n > cap)
    return -1;
  if (n && recv(fd, payload, n, MSG_WAITALL) != (ssize_t)n)
    return -1;
  *len = n;
  return h[0] & 0x0f;
}

/* Connects from 127.0.0.(1 + k % 8) (so the source ports do not run out),
 * upgrades on |path| and reads the "id:N" the node sends from its OPEN
 * handler. Blocking with a 5 s timeout. Returns the socket, or -1. */
static int client_connect(int port, int k, const char *path, uint64_t *id) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  struct timeval tv = {5, 0};
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(k % 8));
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
    goto fail;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
    goto fail;
  char req[256];
  int n =
      snprintf(req, sizeof req,
               "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
               path);
  if (send_all(fd, req, (size_t)n) < 0)
    goto fail;
  /* The response head byte by byte: nothing may be read past it. */
  char head[512];
  size_t hl = 0;
  while (hl < sizeof head) {
    ssize_t r = recv(fd, head + hl, 1, 0);
    if (r <= 0)
      goto fail;
    hl++;
    if (hl >= 4 && memcmp(head + hl - 4, "\r\n\r\n", 4) == 0)
      break;
  }
  if (hl < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0)
    goto fail;
  uint8_t pl[64];
  size_t pn = 0;
  if (frame_read(fd, pl, sizeof pl - 1, &pn) != WEBSOCK_OP_TEXT || pn < 4 ||
      memcmp(pl, "id:", 3) != 0)
    goto fail;
  pl[pn] = 0;
  *id = strtoull((char *)pl + 3, NULL, 10);
  return fd;
fail:
  close(fd);
  return -1;
}

/* One receiver: its socket, node (0..NODES-1), the next sequence number it
 * must get, whether a probe reached it, and a partial frame. */
typedef struct sub {
  int fd, node, warm;
  uint64_t id, next;
  uint8_t n;
  uint8_t carry[131];
} sub;

/* One cell being run. */
typedef struct cell {
  const char *what, *path; /* the table's first two columns */
  int idx, kind;           /* topic "c<idx>"; 'P' publish, 'S' send */
  int on[NODES];           /* receivers on each node */
  int plain;               /* 1: on the server without a cluster instead */
  int fanout;              /* one at a time, --rounds; no throughput */
  sub *subs;
  int nsubs, warm_left;
  uint64_t target, expect; /* send's id; deliveries per message */
  uint32_t *cnt;           /* deliveries so far, per sequence number
                              modulo RING */
  uint64_t sent;           /* messages sent so far */
  uint64_t *last[NODES];   /* latency phase: last receipt per node, per seq */
  size_t nlast;
  uint64_t *hist; /* the current phase's latency histogram */
  /* results */
  uint64_t hist_lat[NBUCKETS], hist_thr[NBUCKETS];
  uint64_t thr_msgs;
  double thr_secs, connect_ms, drain_ms;
  double last50, last99, lastmax, node_last50[NODES];
} cell;

static int EP = -1, PUB[2] = {-1, -1}, PORTS[NODES + 1];
static uint64_t PUB_ID[2];

static void payload_make(uint8_t *p, const cell *c, uint64_t seq, int probe) {
  p[0] = (uint8_t)c->kind;
  p[1] = (uint8_t)c->idx;
  p[2] = (uint8_t)probe;
  memset(p + 3, 0, 5);
  memcpy(p + 8, &c->target, 8);
  memcpy(p + 16, &seq, 8);
  for (int i = HDR; i < O.size; i++)
    p[i] = (uint8_t)(seq * 31u + (unsigned)i);
  uint64_t t = now_ns();
  memcpy(p + 24, &t, 8);
}

/* A client frame of |n| <= 125 bytes (masked with zeros: the mask is
 * still sent). */
static size_t frame_make(uint8_t *out, const uint8_t *p, size_t n) {
  out[0] = 0x80 | WEBSOCK_OP_BINARY;
  out[1] = (uint8_t)(0x80 | n);
  memset(out + 2, 0, 4);
  memcpy(out + 6, p, n);
  return n + 6;
}

static void bad(const cell *c, const sub *s, const char *why, uint64_t a,
                uint64_t b) {
  fprintf(stderr,
          "cluster: %s %s: receiver %d (node %d): %s (%" PRIu64 ", %" PRIu64
          ")\n",
          c->what, c->path, (int)(s - c->subs), s->node + 1, why, a, b);
  exit(1);
}

/* One whole frame |f| of |flen| bytes for |s|, received at |t|: checked
 * all through. */
static void on_frame(cell *c, sub *s, const uint8_t *f, size_t flen,
                     uint64_t t) {
  int op = f[0] & 0x0f;
  const uint8_t *p = f + 2;
  size_t len = flen - 2;
  if (op != WEBSOCK_OP_BINARY)
    bad(c, s, "not a binary frame (opcode, length)", (uint64_t)op, len);
  if (len != (size_t)O.size)
    bad(c, s, "wrong length (got, want)", len, (uint64_t)O.size);
  if (p[0] != c->kind || p[1] != c->idx)
    bad(c, s, "another cell's message (kind, cell)", p[0], p[1]);
  if (p[2]) { /* a probe */
    if (!s->warm) {
      s->warm = 1;
      c->warm_left--;
    }
    return;
  }
  uint64_t seq, sent;
  memcpy(&seq, p + 16, 8);
  memcpy(&sent, p + 24, 8);
  if (seq != s->next)
    bad(c, s, "out of sequence (got, want)", seq, s->next);
  if (seq >= c->sent)
    bad(c, s, "a sequence number never sent (got, sent)", seq, c->sent);
  for (int i = HDR; i < O.size; i++)
    if (p[i] != (uint8_t)(seq * 31u + (unsigned)i))
      bad(c, s, "corrupt payload (seq, byte)", seq, (uint64_t)i);
  s->next++;
  c->cnt[seq % RING]++;
  c->hist[bucket_of(t > sent ? t - sent : 0)]++;
  if (seq < c->nlast && t > c->last[s->node][seq])
    c->last[s->node][seq] = t;
}

static void sub_input(cell *c, sub *s, const uint8_t *p, size_t n, uint64_t t) {
  while (n) {
    if (s->n < 2) {
      s->carry[s->n++] = *p++;
      n--;
      continue;
    }
    size_t flen = 2 + (s->carry[1] & 0x7f);
    if ((s->carry[1] & 0x7f) >= 126)
      bad(c, s, "a frame this program never asks for (byte 0, byte 1)",
          s->carry[0], s->carry[1]);
    size_t take = flen - s->n < n ? flen - s->n : n;
    memcpy(s->carry + s->n, p, take);
    s->n = (uint8_t)(s->n + take);
    p += take;
    n -= take;
    if (s->n == flen) {
      on_frame(c, s, s->carry, flen, t);
      s->n = 0;
    }
  }
}

/* Waits up to |ms| for input and takes all there is. */
static void poll_once(cell *c, int ms) {
  static uint8_t buf[1 << 16];
  struct epoll_event evs[256];
  int n = epoll_wait(EP, evs, 256, ms);
  if (n < 0 && errno != EINTR)
    cdie("epoll_wait");
  for (int i = 0; i < n; i++) {
    sub *s = evs[i].data.ptr;
    for (;;) {
      ssize_t r = recv(s->fd, buf, sizeof buf, 0);
      uint64_t t = now_ns();
      if (r == 0)
        bad(c, s, "the node closed the connection", 0, 0);
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR)
          break;
        cdie("recv");
      }
      sub_input(c, s, buf, (size_t)r, t);
      if ((size_t)r < sizeof buf)
        break;
    }
  }
}

static void pub_send(const cell *c, const uint8_t *frames, size_t n) {
  if (send_all(PUB[c->plain], frames, n) < 0)
    cdie("publisher send");
}

/* Probes until every receiver has had one: then the receiving node's
 * subscription has reached Redis and the OPEN handlers have returned. */
static void warm_up(cell *c) {
  uint8_t p[125], f[131];
  uint64_t t0 = now_ns();
  c->hist = c->hist_lat; /* probes are not counted */
  while (c->warm_left > 0) {
    payload_make(p, c, 0, 1);
    pub_send(c, f, frame_make(f, p, (size_t)O.size));
    uint64_t t1 = now_ns();
    while (c->warm_left > 0 && now_ns() - t1 < 10000000ull)
      poll_once(c, 2);
    if (now_ns() - t0 > 2 * TIMEOUT_NS) {
      fprintf(stderr, "cluster: %s %s: %d of %d receivers never got a probe\n",
              c->what, c->path, c->warm_left, c->nsubs);
      exit(1);
    }
  }
}

/* Sends sequence numbers from |first|, at most |count| of them, until
 * |end| (ns), with up to |window| not yet delivered to every receiver;
 * then waits for the last. Returns the messages and sets *secs to the
 * time from the first send to the last completion. */
static uint64_t run_phase(cell *c, uint64_t first, uint64_t count, uint64_t end,
                          int window, uint64_t gap_us, uint64_t *hist,
                          double *secs) {
  static uint8_t batch[256 * 131];
  uint8_t p[125];
  c->hist = hist;
  uint64_t sent = first, done = first, limit = first + count;
  uint64_t t0 = now_ns(), tdone = t0, progress = t0;
  for (;;) {
    uint64_t t = now_ns();
    int more = sent < limit && t < end;
    if (!more && done == sent)
      break;
    size_t bl = 0;
    while (more && sent < limit && sent - done < (uint64_t)window) {
      payload_make(p, c, sent, 0);
      bl += frame_make(batch + bl, p, (size_t)O.size);
      sent++;
    }
    c->sent = sent;
    if (bl)
      pub_send(c, batch, bl);
    poll_once(c, 2);
    uint64_t before = done;
    while (done < sent && c->cnt[done % RING] == c->expect)
      c->cnt[done++ % RING] = 0;
    t = now_ns();
    if (done != before) {
      tdone = progress = t;
      if (gap_us)
        usleep((useconds_t)gap_us);
    } else if (t - progress > TIMEOUT_NS) {
      fprintf(stderr,
              "cluster: %s %s: message %" PRIu64 " reached %u of %" PRIu64
              " receivers in 5 s\n",
              c->what, c->path, done, c->cnt[done % RING], c->expect);
      exit(1);
    }
  }
  *secs = (double)(tdone - t0) / 1e9;
  return done - first;
}

/* ---- quiet between cells ---------------------------------------------- */

/* A cell may leave work behind it in the links (node 1's PUBLISHes still
 * on their way to Redis, its own publishes coming back to it from Redis
 * to be dropped). Before the next cell starts, a message goes node 1 ->
 * node 2 by id (Redis has then taken every PUBLISH node 1 sent before it)
 * and then node 2 -> node 1 by a publish to a topic with a member on node
 * 1 (node 1 has then read everything Redis queued for it before), then
 * 100 ms pass. The connections: a publisher on node 2, a receiver on node
 * 2 and a member of "c255" on node 1 (blocking reads). */
static int SYNC_PUB2 = -1, SYNC_RECV2 = -1, SYNC_MEMBER1 = -1;
static uint64_t SYNC_RECV2_ID, SYNC_PUB2_ID, SYNC_SEQ;

static void sync_msg(int fd, int kind, uint64_t target, uint64_t seq) {
  uint8_t p[125], f[131];
  memset(p, 0, sizeof p);
  p[0] = (uint8_t)kind;
  p[1] = 255;
  memcpy(p + 8, &target, 8);
  memcpy(p + 16, &seq, 8);
  if (send_all(fd, f, frame_make(f, p, HDR)) < 0)
    cdie("sync send");
}

/* Waits up to |ms| for a message numbered |seq| on |fd| (older ones are
 * skipped). Returns 1 once it came, 0 when it did not in time. */
static int sync_wait(int fd, uint64_t seq, int ms) {
  uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
  for (;;) {
    uint64_t t = now_ns();
    if (t >= end)
      return 0;
    struct pollfd pf = {fd, POLLIN, 0};
    int r = poll(&pf, 1, (int)((end - t) / 1000000ull) + 1);
    if (r < 0 && errno != EINTR)
      cdie("poll");
    if (r <= 0)
      continue;
    uint8_t pl[128];
    size_t pn = 0;
    if (frame_read(fd, pl, sizeof pl, &pn) != WEBSOCK_OP_BINARY || pn < HDR)
      cdie("sync read");
    uint64_t got;
    memcpy(&got, pl + 16, 8);
    if (got == seq)
      return 1;
  }
}

/* Returns how long the links took to drain (ms, the 100 ms not counted). */
static double quiesce(void) {
  uint64_t q = ++SYNC_SEQ, t0 = now_ns();
  sync_msg(PUB[0], 'S', SYNC_RECV2_ID, q);
  if (!sync_wait(SYNC_RECV2, q, 30000)) {
    fprintf(stderr, "cluster: node 1 -> node 2 did not drain in 30 s\n");
    exit(1);
  }
  /* The first time node 1's subscription to c255 may still be on its
   * way to Redis: publish again until one arrives. */
  for (;;) {
    sync_msg(SYNC_PUB2, 'P', 0, q);
    if (sync_wait(SYNC_MEMBER1, q, 200))
      break;
    if (now_ns() - t0 > 30 * 1000000000ull) {
      fprintf(stderr, "cluster: node 2 -> node 1 did not drain in 30 s\n");
      exit(1);
    }
  }
  double ms = (double)(now_ns() - t0) / 1e6;
  usleep(100000);
  return ms;
}

static void sync_connect(void) {
  uint64_t id;
  SYNC_PUB2 = client_connect(PORTS[1], 3, "/p", &SYNC_PUB2_ID);
  SYNC_RECV2 = client_connect(PORTS[1], 4, "/s/-", &SYNC_RECV2_ID);
  SYNC_MEMBER1 = client_connect(PORTS[0], 5, "/s/c255", &id);
  if (SYNC_PUB2 < 0 || SYNC_RECV2 < 0 || SYNC_MEMBER1 < 0)
    cdie("sync connections");
  quiesce();
}

static void cell_connect(cell *c) {
  c->nsubs = 0;
  for (int k = 0; k < NODES; k++)
    c->nsubs += c->on[k];
  c->subs = calloc((size_t)c->nsubs, sizeof *c->subs);
  if (!c->subs)
    cdie("calloc");
  char path[32];
  if (c->kind == 'P')
    snprintf(path, sizeof path, "/s/c%d", c->idx);
  else if (c->kind == 'T')
    snprintf(path, sizeof path, "/t/r%d", c->idx);
  else
    snprintf(path, sizeof path, "/s/-");
  uint64_t t0 = now_ns();
  int left[NODES], k = 0;
  memcpy(left, c->on, sizeof left);
  for (int i = 0; i < c->nsubs; i++) {
    sub *s = &c->subs[i];
    /* over several nodes: in turn, so none is served first */
    while (!left[k])
      k = (k + 1) % NODES;
    left[k]--;
    s->node = k;
    k = (k + 1) % NODES;
    s->fd = client_connect(PORTS[c->plain ? NODES : s->node],
                           c->idx * 100003 + i, path, &s->id);
    if (s->fd < 0) {
      fprintf(stderr, "cluster: %s %s: receiver %d of %d: ", c->what, c->path,
              i, c->nsubs);
      cdie("connect");
    }
    if (fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK) < 0)
      cdie("fcntl");
    struct epoll_event ev = {EPOLLIN, {.ptr = s}};
    if (epoll_ctl(EP, EPOLL_CTL_ADD, s->fd, &ev) < 0)
      cdie("epoll_ctl");
  }
  c->connect_ms = (double)(now_ns() - t0) / 1e6;
  c->warm_left = c->nsubs;
  c->target = c->kind == 'S' ? c->subs[0].id : 0;
  c->expect = c->kind == 'P' ? (uint64_t)c->nsubs : 1;
}

static void cell_close(cell *c) {
  for (int i = 0; i < c->nsubs; i++) {
    epoll_ctl(EP, EPOLL_CTL_DEL, c->subs[i].fd, NULL);
    close(c->subs[i].fd);
  }
  free(c->subs);
  c->subs = NULL;
}

static void cell_run(cell *c) {
  cell_connect(c);
  uint64_t lat = c->fanout ? (uint64_t)O.rounds : (uint64_t)O.latency;
  c->cnt = calloc(RING, sizeof *c->cnt);
  c->nlast = (size_t)lat;
  for (int k = 0; k < NODES; k++)
    if (!(c->last[k] = calloc(lat, sizeof(uint64_t))))
      cdie("calloc");
  if (!c->cnt)
    cdie("calloc");
  warm_up(c);
  uint64_t *t_send = calloc(lat, sizeof *t_send);
  double secs;
  if (c->fanout) {
    /* One publish at a time; the time from its send (in the payload) to
     * the last receipt. */
    for (uint64_t r = 0; r < lat; r++) {
      t_send[r] = now_ns();
      run_phase(c, r, 1, UINT64_MAX, 1, 2000, c->hist_lat, &secs);
    }
    uint64_t *all = calloc(lat, sizeof *all), *pn[NODES];
    for (int k = 0; k < NODES; k++)
      if (!(pn[k] = calloc(lat, sizeof(uint64_t))))
        cdie("calloc");
    if (!all)
      cdie("calloc");
    for (uint64_t r = 0; r < lat; r++) {
      uint64_t last = 0;
      for (int k = 0; k < NODES; k++) {
        uint64_t a = c->last[k][r];
        last = a > last ? a : last;
        pn[k][r] = a ? a - t_send[r] : 0;
      }
      all[r] = last - t_send[r];
    }
    qsort(all, lat, sizeof *all, cmp_u64);
    c->last50 = (double)all[lat / 2];
    c->last99 = (double)all[(size_t)((double)(lat - 1) * 0.99)];
    c->lastmax = (double)all[lat - 1];
    for (int k = 0; k < NODES; k++) {
      qsort(pn[k], lat, sizeof(uint64_t), cmp_u64);
      c->node_last50[k] = (double)pn[k][lat / 2];
      free(pn[k]);
    }
    free(all);
  } else {
    run_phase(c, 0, lat, UINT64_MAX, 1, 0, c->hist_lat, &secs);
    uint64_t end = now_ns() + (uint64_t)(O.duration * 1e9);
    c->thr_msgs = run_phase(c, lat, UINT64_MAX / 2, end, O.window, 0,
                            c->hist_thr, &c->thr_secs);
  }
  free(t_send);
  free(c->cnt);
  for (int k = 0; k < NODES; k++)
    free(c->last[k]);
  cell_close(c);
}

static void us2(char *out, size_t cap, const uint64_t *h) {
  snprintf(out, cap, "%.0f / %.0f", hist_pct(h, .5) / 1e3,
           hist_pct(h, .99) / 1e3);
}

static void add_cell(cell *cells, int *nc, const char *what, const char *path,
                     int kind, int on1, int on2, int on3, int fanout) {
  cell *c = &cells[(*nc)++];
  memset(c, 0, sizeof *c);
  c->what = what;
  c->path = path;
  c->idx = (int)(c - cells);
  c->kind = kind;
  c->on[0] = on1;
  c->on[1] = on2;
  c->on[2] = on3;
  c->fanout = fanout;
}

static void client_main(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  alarm(O.quick ? 60 : 900);
  while (!atomic_load(&SH->port[NODES])) {
    if (atomic_load(&SH->quit) || getppid() == 1)
      _exit(1);
    usleep(1000);
  }
  for (int k = 0; k <= NODES; k++)
    PORTS[k] = atomic_load(&SH->port[k]);
  EP = epoll_create1(0);
  if (EP < 0)
    cdie("epoll_create1");
  PUB[0] = client_connect(PORTS[0], 7, "/p", &PUB_ID[0]);
  PUB[1] = client_connect(PORTS[NODES], 7, "/p", &PUB_ID[1]);
  if (PUB[0] < 0 || PUB[1] < 0)
    cdie("publisher connect");
  sync_connect();
  int S = O.subs, F = O.fanout;
  cell cells[MAX_CELLS];
  int nc = 0;
  static const char *const paths[3] = {"no cluster", "within node 1",
                                       "node 1 → node 2"};
  /* Each operation without a cluster, within node 1, and node 1 to 2. */
  for (int i = 0; i < 3; i++) {
    add_cell(cells, &nc, "publish", paths[i], 'P', i < 2, i == 2, 0, 0);
    cells[nc - 1].plain = i == 0;
  }
  for (int i = 0; S != 1 && i < 3; i++) {
    add_cell(cells, &nc, "publish", paths[i], 'P', i < 2 ? S : 0,
             i == 2 ? S : 0, 0, 0);
    cells[nc - 1].plain = i == 0;
  }
  for (int i = 0; i < 3; i++) {
    add_cell(cells, &nc, "send by id", paths[i], 'S', i < 2, i == 2, 0, 0);
    cells[nc - 1].plain = i == 0;
  }
  for (int i = 0; i < 3; i++) {
    add_cell(cells, &nc, "send by tag", paths[i], 'T', i < 2, i == 2, 0, 0);
    cells[nc - 1].plain = i == 0;
  }
  if (F > 0)
    add_cell(cells, &nc, "fan-out", "within node 1", 'P', F, 0, 0, 1);
  if (F > 1)
    add_cell(cells, &nc, "fan-out", "node 1 → nodes 1, 2", 'P', F - F / 2,
             F / 2, 0, 1);
  if (F > 2)
    add_cell(cells, &nc, "fan-out", "node 1 → nodes 1, 2, 3", 'P',
             F - 2 * (F / 3), F / 3, F / 3, 1);
  for (int i = 0; i < nc; i++) {
    cell *c = &cells[i];
    cell_run(c);
    c->drain_ms = quiesce();
    char a[64], b[64];
    us2(a, sizeof a, c->hist_lat);
    us2(b, sizeof b, c->hist_thr);
    if (c->fanout)
      printf("%s %s, %d+%d+%d receivers (connected in %.0f ms): last receipt "
             "p50 %.2f ms, p99 %.2f ms, max %.2f ms; the nodes' last p50 "
             "%.2f / %.2f / %.2f ms; each delivery p50/p99 %s us; links "
             "drained %.1f ms after\n",
             c->what, c->path, c->on[0], c->on[1], c->on[2], c->connect_ms,
             c->last50 / 1e6, c->last99 / 1e6, c->lastmax / 1e6,
             c->node_last50[0] / 1e6, c->node_last50[1] / 1e6,
             c->node_last50[2] / 1e6, a, c->drain_ms);
    else
      printf("%s %s, %d receivers: 1 in flight p50/p99 %s us; %d in flight "
             "%.0f msgs/s (%" PRIu64 " in %.2f s, %.0f deliveries/s), "
             "p50/p99 %s us; links drained %.1f ms after\n",
             c->what, c->path, c->nsubs, a, O.window,
             (double)c->thr_msgs / c->thr_secs, c->thr_msgs, c->thr_secs,
             (double)c->thr_msgs * (double)c->expect / c->thr_secs, b,
             c->drain_ms);
    fflush(stdout);
  }
  printf("\n| operation | path | receivers | msgs/s (%d in flight) | "
         "deliveries/s | p50 / p99 µs, 1 in flight | p50 / p99 µs, %d in "
         "flight | links drained after, ms |\n"
         "|---|---|---:|---:|---:|---:|---:|---:|\n",
         O.window, O.window);
  for (int i = 0; i < nc; i++) {
    cell *c = &cells[i];
    if (c->fanout)
      continue;
    char a[64], b[64];
    us2(a, sizeof a, c->hist_lat);
    us2(b, sizeof b, c->hist_thr);
    double r = (double)c->thr_msgs / c->thr_secs;
    printf("| %s | %s | %d | %.0f | %.0f | %s | %s | %.0f |\n", c->what,
           c->path, c->nsubs, r, r * (double)c->expect, a, b, c->drain_ms);
  }
  if (F > 0) {
    printf("\n| fan-out of one publish (%d rounds) | receivers | last "
           "receipt p50 / p99 / max ms | nodes 1 / 2 / 3's last, p50 ms | "
           "each delivery p50 / p99 ms |\n|---|---|---:|---:|---:|\n",
           O.rounds);
    for (int i = 0; i < nc; i++) {
      cell *c = &cells[i];
      if (!c->fanout)
        continue;
      char on[64] = "", last[96] = "";
      for (int k = 0; k < NODES; k++) {
        size_t ol = strlen(on), ll = strlen(last);
        const char *sep = k ? " + " : "", *lsep = k ? " / " : "";
        snprintf(on + ol, sizeof on - ol, "%s%d", sep, c->on[k]);
        if (c->on[k])
          snprintf(last + ll, sizeof last - ll, "%s%.2f", lsep,
                   c->node_last50[k] / 1e6);
        else
          snprintf(last + ll, sizeof last - ll, "%s–", lsep);
      }
      printf("| %s | %s | %.2f / %.2f / %.2f | %s | %.2f / %.2f |\n", c->path,
             on, c->last50 / 1e6, c->last99 / 1e6, c->lastmax / 1e6, last,
             hist_pct(c->hist_lat, .5) / 1e6, hist_pct(c->hist_lat, .99) / 1e6);
    }
  }
  fflush(stdout);
  close(PUB[0]);
  close(PUB[1]);
  _exit(0);
}

/* ---- main (parent) ----------------------------------------------------- */

int main(int argc, char **argv) {
  parse(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  /* Each side of the fan-out holds one descriptor per receiver. */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  long lim = rl.rlim_cur == RLIM_INFINITY ? 1 << 20 : (long)rl.rlim_cur;
  int asked = O.fanout;
  if (O.fanout > lim - 300)
    O.fanout = (int)(lim - 300);
  if (O.subs > lim - 300)
    O.subs = (int)(lim - 300);
  SH = mmap(NULL, sizeof *SH, PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (SH == MAP_FAILED) {
    perror("cluster: mmap");
    return 1;
  }
  printf("cluster: %d nodes of %d I/O thread(s) and %d agent(s) each, "
         "%d-byte messages, S = 1 and %d, fan-out to %d (asked for %d, fd "
         "limit %ld), load average %.2f\n",
         NODES, O.io_threads, O.agents, O.size, O.subs, O.fanout, asked, lim,
         loadavg());
  fflush(stdout);
  /* The client process first, before any thread exists. */
  client_pid = fork();
  if (client_pid < 0) {
    perror("cluster: fork");
    return 1;
  }
  if (client_pid == 0)
    client_main();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fatal_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  atexit(kill_children);
  alarm(O.quick ? 90 : 1200);

  int rport = free_port();
  redis_start(rport);
  websock_server *nodes[NODES + 1]; /* the last: no cluster */
  for (int k = 0; k <= NODES; k++)
    nodes[k] = node_start(k < NODES ? k + 1 : 0, rport);
  uint64_t t0 = now_ns();
  for (int k = 0; k < NODES; k++)
    while (!node_stats(nodes[k]).cluster_up) {
      if (now_ns() - t0 > 15 * 1000000000ull) {
        fprintf(stderr, "cluster: the nodes' Redis links did not come up\n");
        atomic_store(&SH->quit, 1);
        exit(1);
      }
      usleep(5000);
    }
  double redis_cpu0 = proc_cpu_s(redis_pid);
  for (int k = 0; k <= NODES; k++)
    atomic_store(&SH->port[k], websock_server_port(nodes[k]));
  int st = 0;
  while (waitpid(client_pid, &st, 0) < 0 && errno == EINTR) {
  }
  client_pid = 0;
  double redis_cpu = proc_cpu_s(redis_pid) - redis_cpu0;
  int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  uint64_t herr = atomic_load(&handler_errors);
  int link_down = 0;
  uint64_t dropped = 0;
  printf("\n"); /* also after a failure: what the links did */
  for (int k = 0; k < NODES; k++) {
    websock_stats sk = node_stats(nodes[k]);
    printf("node %d: cluster_out %" PRIu64 ", cluster_in %" PRIu64
           ", dropped %" PRIu64 ", connects %" PRIu64 "; ",
           k + 1, sk.cluster_out, sk.cluster_in, sk.cluster_dropped,
           sk.cluster_connects);
    link_down |= sk.cluster_connects != 1;
    dropped += sk.cluster_dropped;
  }
  printf("redis-server CPU %.2f s; load average %.2f\n", redis_cpu, loadavg());
  fflush(stdout);
  if (herr) {
    fprintf(stderr, "cluster: %" PRIu64 " handler calls failed (last: %s)\n",
            herr, websock_strerror(atomic_load(&handler_last_rc)));
    ok = 0;
  }
  if (dropped) /* checked deliveries all came: no receiver missed these */
    printf("the links dropped %" PRIu64 " messages beyond the 32 MiB that "
           "may wait for Redis (a node publishing faster than Redis takes "
           "it; see bench/README.md)\n",
           dropped);
  if (link_down) {
    fprintf(stderr, "cluster: a Redis link went down during the run\n");
    ok = 0;
  }
  if (!ok) {
    fprintf(stderr, "cluster: FAILED\n");
    kill_children();
    _exit(1); /* the nodes' threads are still running */
  }
  for (int k = 0; k <= NODES; k++)
    websock_server_stop(nodes[k]);
  for (int k = 0; k <= NODES; k++) {
    websock_server_join(nodes[k]);
    websock_server_free(nodes[k]);
  }
  kill_children();
  return 0;
}
