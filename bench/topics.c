/* topics: what publish costs to a topic with very many subscribers, and
 * what subscribe and unsubscribe cost for one connection in 1,000 topics.
 * Runs an in-process libwebsock2 server (127.0.0.1, port 0, DIRECT
 * delivery inline on the I/O threads) whose OPEN handler subscribes every
 * connection to the topic "bench", and drives it over real sockets from
 * client processes forked before the server starts (each process has its
 * own descriptor limit; every client uses epoll and one small struct per
 * connection).
 *
 *   fan-out latency     publishes one message at a time to "bench" and
 *                       waits until every subscriber has it: the time
 *                       from the publish call to the last subscriber's
 *                       receipt (p50, p99, max) and every delivery's
 *                       latency (p50, p99).
 *   fan-out throughput  keeps --window publishes in flight: publishes/s,
 *                       deliveries/s and the deliveries' latency.
 *   1,000 topics        one more connection (this process's own client)
 *                       joins 1,000 topics and leaves them again, from
 *                       this thread (the calls post to its I/O thread:
 *                       the cost of a call, and the time until the loop
 *                       applied all 1,000) and from its own callback on
 *                       the I/O thread (the loop's cost alone).
 *
 *   topics [--conns N] [--io-threads N] [--procs P] [--latency R]
 *          [--publishes M] [--window W] [--size B] [--rounds K] [--quick]
 *
 * --conns is capped by what the descriptor limit allows this process
 * (every connection costs the server one descriptor): the soft limit is
 * raised to the hard one first. Clients spread over the source addresses
 * 127.0.0.1..127.0.0.8 (IP_BIND_ADDRESS_NO_PORT), so their ports never run
 * out. Each message is B bytes (16..125): its sequence number and the
 * CLOCK_MONOTONIC time of its publish. A missing delivery (5 s) makes the
 * program exit 1. It prints one line per figure and a final JSON object.
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
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <websock.h>

#define MAX_PROCS 16
#define NBUCKETS 320 /* latency histogram: 8 buckets per power of two */
#define TOPICS 1000  /* the 1,000-topics part */
#define TIMEOUT_NS (5ull * 1000000000ull)

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

/* The upper edge of bucket |b|, in nanoseconds. */
static double bucket_ns(unsigned b) {
  if (b < 8)
    return b;
  unsigned lg = b / 8 + 2, sub = b % 8;
  return ldexp(1.0 + (sub + 1) / 8.0, (int)lg);
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

static double ms(double ns) {
  return ns / 1e6;
}

/* ---- what the processes share ---------------------------------------- */

typedef struct shared {
  atomic_int port;                       /* the server's, once it listens */
  atomic_int stop;                       /* the clients leave */
  atomic_int failed;                     /* a client could not connect */
  atomic_uint connected;                 /* clients upgraded, all processes */
  atomic_uint ready;                     /* processes in their receive loop */
  uint64_t hist[2][MAX_PROCS][NBUCKETS]; /* delivery latency: phase 0 =
                                            latency, 1 = throughput */
  size_t nseq;                           /* publishes in all */
  /* Then, nseq each: deliveries so far (atomic), and per process the
   * time of the last delivery of each publish. */
} shared;

static atomic_uint_fast64_t *shared_got(shared *s) {
  return (atomic_uint_fast64_t *)(void *)(s + 1);
}

static uint64_t *shared_last(shared *s, int proc) {
  return (uint64_t *)(void *)(shared_got(s) + s->nseq) + (size_t)proc * s->nseq;
}

/* ---- options ----------------------------------------------------------- */

typedef struct opts {
  int conns, io_threads, procs, latency, publishes, window, size, rounds;
  int quick;
} opts;

static void die(const char *what) {
  fprintf(stderr, "topics: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* ---- a raw client ------------------------------------------------------ */

static int send_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w <= 0)
      return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Connects from 127.0.0.(1 + k % 8) and upgrades on |path| (blocking).
 * Returns the socket, or -1. */
static int client_connect(int port, int k, const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
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
  /* Read the response head byte by byte: nothing may be read past it. */
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
  return fd;
fail:
  close(fd);
  return -1;
}

/* A client frame (masked with zeros: the mask is still sent). */
static size_t frame_make(uint8_t *out, int opcode, const void *p, size_t n) {
  out[0] = (uint8_t)(0x80 | opcode);
  out[1] = (uint8_t)(0x80 | n);
  memset(out + 2, 0, 4);
  memcpy(out + 6, p, n);
  return n + 6;
}

/* Reads one whole server frame (blocking). Returns its opcode or -1. */
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

/* One subscriber's state in a client process: a partial frame. */
typedef struct sub {
  int fd;
  uint8_t n;
  uint8_t carry[131];
} sub;

typedef struct proc_ctx {
  shared *sh;
  int index;
  size_t nlat; /* publishes of the latency phase (seq < nlat) */
  uint32_t *cnt;
  uint64_t *last;
  uint64_t *hist[2];
  size_t tmin, tmax; /* publishes seen since the last flush, or tmin >
                        tmax for none */
} proc_ctx;

/* One delivered frame of |len| bytes at |p|, received at |t|. */
static void on_frame(proc_ctx *pc, const uint8_t *p, size_t len, uint64_t t) {
  if ((p[0] & 0x0f) != WEBSOCK_OP_BINARY || len < 2 + 16)
    return; /* close or other frames: not ours */
  uint64_t seq, pub;
  memcpy(&seq, p + 2, 8);
  memcpy(&pub, p + 10, 8);
  if (seq >= pc->sh->nseq)
    return;
  pc->cnt[seq]++;
  if (seq < pc->tmin)
    pc->tmin = seq;
  if (seq > pc->tmax)
    pc->tmax = seq;
  if (t > pc->last[seq])
    pc->last[seq] = t;
  pc->hist[seq >= pc->nlat][bucket_of(t > pub ? t - pub : 0)]++;
}

/* Parses what a read brought for |s|. */
static void sub_input(proc_ctx *pc, sub *s, const uint8_t *p, size_t n,
                      uint64_t t) {
  while (n) {
    if (s->n < 2) {
      s->carry[s->n++] = *p++;
      n--;
      continue;
    }
    size_t flen = 2 + (s->carry[1] & 0x7f);
    if (flen > sizeof s->carry) {
      s->n = 0; /* not a frame this program asked for: skip a byte */
      continue;
    }
    size_t take = flen - s->n < n ? flen - s->n : n;
    memcpy(s->carry + s->n, p, take);
    s->n = (uint8_t)(s->n + take);
    p += take;
    n -= take;
    if (s->n == flen) {
      on_frame(pc, s->carry, flen, t);
      s->n = 0;
    }
  }
}

/* A client process: opens |count| connections, then reads until told to
 * stop, and leaves its figures in the shared memory. */
static void client_main(shared *sh, int index, int count, size_t nlat) {
  while (!atomic_load(&sh->port))
    usleep(1000);
  int port = atomic_load(&sh->port);
  sub *subs = calloc((size_t)count, sizeof *subs);
  proc_ctx pc = {sh,
                 index,
                 nlat,
                 calloc(sh->nseq, sizeof(uint32_t)),
                 calloc(sh->nseq, sizeof(uint64_t)),
                 {NULL, NULL},
                 SIZE_MAX,
                 0};
  pc.hist[0] = calloc(NBUCKETS, sizeof(uint64_t));
  pc.hist[1] = calloc(NBUCKETS, sizeof(uint64_t));
  int ep = epoll_create1(0);
  if (!subs || !pc.cnt || !pc.last || !pc.hist[0] || !pc.hist[1] || ep < 0)
    _exit(2);
  for (int i = 0; i < count; i++) {
    int fd = client_connect(port, index * 100003 + i, "/");
    if (fd < 0) {
      fprintf(stderr, "topics: client %d/%d of process %d: %s\n", i, count,
              index, strerror(errno));
      atomic_store(&sh->failed, 1);
      _exit(1);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    subs[i].fd = fd;
    struct epoll_event ev = {EPOLLIN, {.ptr = &subs[i]}};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
      _exit(2);
    atomic_fetch_add(&sh->connected, 1);
  }
  atomic_fetch_add(&sh->ready, 1);
  atomic_uint_fast64_t *got = shared_got(sh);
  static uint8_t buf[1 << 16];
  struct epoll_event evs[256];
  while (!atomic_load(&sh->stop)) {
    int n = epoll_wait(ep, evs, 256, 50);
    uint64_t t = now_ns();
    for (int i = 0; i < n; i++) {
      sub *s = evs[i].data.ptr;
      for (;;) {
        ssize_t r = recv(s->fd, buf, sizeof buf, 0);
        if (r <= 0) {
          if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
          }
          break;
        }
        sub_input(&pc, s, buf, (size_t)r, t);
        if ((size_t)r < sizeof buf)
          break;
      }
    }
    /* The counts of this batch go to the publisher at once: one atomic
     * add per publish seen, not per delivery. */
    for (size_t q = pc.tmin; q <= pc.tmax && q < sh->nseq; q++) {
      if (pc.cnt[q]) {
        atomic_fetch_add(&got[q], pc.cnt[q]);
        pc.cnt[q] = 0;
      }
    }
    pc.tmin = SIZE_MAX;
    pc.tmax = 0;
  }
  for (size_t q = 0; q < sh->nseq; q++)
    if (pc.cnt[q])
      atomic_fetch_add(&got[q], pc.cnt[q]);
  memcpy(shared_last(sh, index), pc.last, sh->nseq * sizeof(uint64_t));
  memcpy(sh->hist[0][index], pc.hist[0], sizeof sh->hist[0][index]);
  memcpy(sh->hist[1][index], pc.hist[1], sizeof sh->hist[1][index]);
  _exit(0);
}

/* ---- the server -------------------------------------------------------- */

typedef struct bench_srv {
  websock_server *srv;
  atomic_uint_fast64_t special; /* id of the 1,000-topics connection */
  char names[TOPICS][16];       /* "room-0".."room-999" */
  size_t name_len[TOPICS];
} bench_srv;

static bench_srv B;

/* On the I/O thread: 1,000 subscribes, then 1,000 unsubscribes, timed. */
static void on_loop_rounds(websock_server *srv, uint64_t id) {
  uint64_t t0 = now_ns();
  for (int i = 0; i < TOPICS; i++)
    websock_server_subscribe(srv, id, B.names[i], B.name_len[i]);
  uint64_t t1 = now_ns();
  for (int i = 0; i < TOPICS; i++)
    websock_server_unsubscribe(srv, id, B.names[i], B.name_len[i]);
  uint64_t t2 = now_ns();
  char b[64];
  int n = snprintf(b, sizeof b, "%" PRIu64 " %" PRIu64, t1 - t0, t2 - t1);
  websock_server_send(srv, id, WEBSOCK_OP_TEXT, b, (size_t)n);
}

static void on_event(websock_server *srv, const websock_event *ev, void *ud) {
  (void)ud;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    if (ev->path && strcmp(ev->path, "/special") == 0)
      atomic_store(&B.special, ev->id);
    else if (websock_server_subscribe(srv, ev->id, "bench", 5) != 0)
      fprintf(stderr, "topics: subscribe failed\n");
  } else if (ev->type == WEBSOCK_EVENT_MESSAGE && ev->length == 2 &&
             memcmp(ev->data, "go", 2) == 0) {
    on_loop_rounds(srv, ev->id);
  }
}

static websock_server *server_start(int io_threads) {
  websock_config *cfg;
  websock_server *srv = NULL;
  int rc = websock_config_new(&cfg);
  if (!rc)
    rc = websock_config_set_io_threads(cfg, io_threads);
  if (!rc)
    rc = websock_config_set_agents(cfg, 0);
  if (!rc)
    rc = websock_config_set_max_connections(cfg, 200000);
  if (!rc)
    rc = websock_config_set_event_callback(cfg, on_event, NULL);
  if (!rc)
    rc = websock_server_new(&srv, cfg);
  websock_config_free(cfg);
  if (!rc)
    rc = websock_server_start(srv);
  if (rc) {
    fprintf(stderr, "topics: server: %s\n", websock_strerror(rc));
    exit(1);
  }
  return srv;
}

static uint64_t subscriptions(websock_server *srv, int io_threads) {
  uint64_t n = 0;
  for (int i = 0; i < io_threads; i++) {
    websock_loop_stats ls;
    if (websock_server_get_loop_stats(srv, (unsigned)i, &ls, sizeof ls) == 0)
      n += ls.subscriptions;
  }
  return n;
}

/* Waits until the loops hold |want| memberships; returns when (ns). */
static uint64_t wait_subscriptions(websock_server *srv, int io, uint64_t want) {
  uint64_t t0 = now_ns();
  while (subscriptions(srv, io) != want) {
    if (now_ns() - t0 > 10 * 1000000000ull) {
      fprintf(stderr, "topics: %" PRIu64 " subscriptions, want %" PRIu64 "\n",
              subscriptions(srv, io), want);
      exit(1);
    }
    sched_yield();
  }
  return now_ns();
}

/* CPU time this process (the server's threads and the publisher) used. */
static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
             1000000000ull +
         ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
             1000ull;
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

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  if (f)
    fclose(f);
  return kib;
}

/* ---- fan-out ----------------------------------------------------------- */

static void publish_seq(websock_server *srv, uint64_t seq, int size,
                        uint64_t *call_ns) {
  uint8_t msg[125];
  memset(msg, 'p', sizeof msg);
  memcpy(msg, &seq, 8);
  uint64_t t = now_ns();
  memcpy(msg + 8, &t, 8);
  int rc = websock_server_publish(srv, "bench", 5, WEBSOCK_OP_BINARY, msg,
                                  (size_t)size, 0);
  *call_ns += now_ns() - t;
  if (rc) {
    fprintf(stderr, "topics: publish: %s\n", websock_strerror(rc));
    exit(1);
  }
}

/* Waits until publish |seq| reached all |n| subscribers. */
static void wait_delivered(shared *sh, uint64_t seq, uint64_t n) {
  atomic_uint_fast64_t *got = shared_got(sh);
  uint64_t t0 = now_ns();
  while (atomic_load(&got[seq]) < n) {
    if (now_ns() - t0 > TIMEOUT_NS) {
      fprintf(stderr,
              "topics: publish %" PRIu64 " reached %" PRIu64 " of %" PRIu64
              "\n",
              seq, (uint64_t)atomic_load(&got[seq]), n);
      exit(1);
    }
    usleep(20);
  }
}

/* ---- main -------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: topics [--conns N] [--io-threads N] [--procs P] "
                  "[--latency R] [--publishes M] [--window W] [--size B] "
                  "[--rounds K] [--quick]\n");
  exit(2);
}

static void parse(int argc, char **argv, opts *o) {
  *o = (opts){100000, 2, 2, 100, 500, 8, 16, 20, 0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quick") == 0) {
      o->quick = 1;
      o->conns = 2000;
      o->latency = 20;
      o->publishes = 200;
      o->rounds = 3;
      continue;
    }
    if (i + 1 >= argc)
      usage();
    int v = atoi(argv[++i]);
    if (strcmp(a, "--conns") == 0)
      o->conns = v;
    else if (strcmp(a, "--io-threads") == 0)
      o->io_threads = v;
    else if (strcmp(a, "--procs") == 0)
      o->procs = v;
    else if (strcmp(a, "--latency") == 0)
      o->latency = v;
    else if (strcmp(a, "--publishes") == 0)
      o->publishes = v;
    else if (strcmp(a, "--window") == 0)
      o->window = v;
    else if (strcmp(a, "--size") == 0)
      o->size = v;
    else if (strcmp(a, "--rounds") == 0)
      o->rounds = v;
    else
      usage();
  }
  if (o->conns < 1 || o->io_threads < 1 || o->procs < 1 ||
      o->procs > MAX_PROCS || o->latency < 1 || o->publishes < 1 ||
      o->window < 1 || o->size < 16 || o->size > 125 || o->rounds < 1)
    usage();
}

int main(int argc, char **argv) {
  opts o;
  parse(argc, argv, &o);
  signal(SIGPIPE, SIG_IGN);
  /* The descriptors decide how many connections this machine allows. */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  long lim = rl.rlim_cur == RLIM_INFINITY ? 1 << 20 : (long)rl.rlim_cur;
  int requested = o.conns;
  /* The server's side: one descriptor per connection, plus its own and
   * this process's client of the 1,000-topics part and a margin (the
   * library keeps a spare descriptor near the limit). */
  if (o.conns > lim - 200)
    o.conns = (int)(lim - 200);
  int per_proc = (o.conns + o.procs - 1) / o.procs;
  if (per_proc > lim - 50) {
    o.procs = (int)((o.conns + (lim - 51)) / (lim - 50));
    per_proc = (o.conns + o.procs - 1) / o.procs;
  }
  if (o.procs > MAX_PROCS)
    usage();
  size_t nseq = (size_t)o.latency + (size_t)o.publishes;
  size_t sz = sizeof(shared) + nseq * sizeof(atomic_uint_fast64_t) +
              (size_t)o.procs * nseq * sizeof(uint64_t);
  shared *sh =
      mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED)
    die("mmap");
  sh->nseq = nseq;
  pid_t pids[MAX_PROCS];
  int left = o.conns;
  for (int p = 0; p < o.procs; p++) {
    int count = left < per_proc ? left : per_proc;
    left -= count;
    pids[p] = fork();
    if (pids[p] < 0)
      die("fork");
    if (pids[p] == 0)
      client_main(sh, p, count, (size_t)o.latency);
  }
  for (int i = 0; i < TOPICS; i++)
    B.name_len[i] =
        (size_t)snprintf(B.names[i], sizeof B.names[i], "room-%d", i);
  long rss0 = rss_kib();
  websock_server *srv = server_start(o.io_threads);
  B.srv = srv;
  double load = loadavg();
  printf("topics: fd limit %ld, %d connections (asked for %d), %d client "
         "processes, %d I/O threads, %d-byte messages, load average %.2f\n",
         lim, o.conns, requested, o.procs, o.io_threads, o.size, load);
  fflush(stdout);
  uint64_t c0 = now_ns();
  atomic_store(&sh->port, websock_server_port(srv));
  while (atomic_load(&sh->ready) < (unsigned)o.procs) {
    if (atomic_load(&sh->failed)) {
      fprintf(stderr, "topics: a client process could not connect\n");
      atomic_store(&sh->stop, 1);
      return 1;
    }
    usleep(1000);
  }
  uint64_t n = (uint64_t)o.conns;
  wait_subscriptions(srv, o.io_threads, n);
  uint64_t c1 = now_ns();
  long rss1 = rss_kib();
  printf("connect: %d connections upgraded and subscribed in %.0f ms; "
         "server RSS %ld -> %ld KiB (%.2f KiB a connection)\n",
         o.conns, ms((double)(c1 - c0)), rss0, rss1,
         (double)(rss1 - rss0) / (double)o.conns);

  /* Fan-out latency: one publish at a time. */
  uint64_t call_ns = 0;
  uint64_t *pub_t = calloc(nseq, sizeof *pub_t);
  for (int r = 0; r < o.latency; r++) {
    pub_t[r] = now_ns();
    publish_seq(srv, (uint64_t)r, o.size, &call_ns);
    wait_delivered(sh, (uint64_t)r, n);
    usleep(o.quick ? 1000 : 5000);
  }
  double lat_call_us = (double)call_ns / o.latency / 1e3;
  /* Fan-out throughput: --window publishes in flight. */
  call_ns = 0;
  uint64_t cpu0 = cpu_ns();
  uint64_t t0 = now_ns();
  for (int r = 0; r < o.publishes; r++) {
    uint64_t seq = (uint64_t)o.latency + (uint64_t)r;
    if (r >= o.window)
      wait_delivered(sh, seq - (uint64_t)o.window, n);
    pub_t[seq] = now_ns();
    publish_seq(srv, seq, o.size, &call_ns);
  }
  wait_delivered(sh, nseq - 1, n);
  for (size_t q = (size_t)o.latency; q < nseq; q++)
    wait_delivered(sh, q, n);
  uint64_t t1 = now_ns();
  uint64_t cpu1 = cpu_ns();
  double thr_call_us = (double)call_ns / o.publishes / 1e3;

  /* The 1,000-topics part, with this process's own client. */
  int special = client_connect(websock_server_port(srv), 7, "/special");
  if (special < 0)
    die("special client");
  while (!atomic_load(&B.special))
    usleep(100);
  uint64_t sid = atomic_load(&B.special);
  double sub_call = 0, sub_applied = 0, unsub_call = 0, unsub_applied = 0;
  double loop_sub = 0, loop_unsub = 0;
  uint8_t fr[160], pl[128];
  size_t pn;
  for (int r = 0; r < o.rounds; r++) {
    uint64_t a = now_ns();
    for (int i = 0; i < TOPICS; i++)
      if (websock_server_subscribe(srv, sid, B.names[i], B.name_len[i]))
        die("subscribe");
    uint64_t b = now_ns();
    uint64_t c = wait_subscriptions(srv, o.io_threads, n + TOPICS);
    /* A publish to one of them reaches it. */
    if (websock_server_publish(srv, B.names[500], B.name_len[500],
                               WEBSOCK_OP_TEXT, "r", 1, 0) ||
        frame_read(special, pl, sizeof pl, &pn) != WEBSOCK_OP_TEXT)
      die("publish to room-500");
    uint64_t d = now_ns();
    for (int i = 0; i < TOPICS; i++)
      if (websock_server_unsubscribe(srv, sid, B.names[i], B.name_len[i]))
        die("unsubscribe");
    uint64_t e = now_ns();
    uint64_t f = wait_subscriptions(srv, o.io_threads, n);
    sub_call += (double)(b - a);
    sub_applied += (double)(c - a);
    unsub_call += (double)(e - d);
    unsub_applied += (double)(f - d);
    /* The same from its own callback, on its I/O thread. */
    size_t fl = frame_make(fr, WEBSOCK_OP_TEXT, "go", 2);
    if (send_all(special, fr, fl) < 0 ||
        frame_read(special, pl, sizeof pl - 1, &pn) != WEBSOCK_OP_TEXT)
      die("on-loop round");
    pl[pn] = 0;
    unsigned long long ls = 0, lu = 0;
    sscanf((char *)pl, "%llu %llu", &ls, &lu);
    loop_sub += (double)ls;
    loop_unsub += (double)lu;
  }
  double k = (double)o.rounds * TOPICS;
  close(special);

  atomic_store(&sh->stop, 1);
  int bad = 0;
  for (int p = 0; p < o.procs; p++) {
    int st;
    waitpid(pids[p], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
      bad = 1;
  }
  websock_server_stop(srv);
  websock_server_join(srv);
  websock_server_free(srv);
  if (bad) {
    fprintf(stderr, "topics: a client process failed\n");
    return 1;
  }

  /* Figures. */
  uint64_t hist[2][NBUCKETS] = {{0}};
  for (int ph = 0; ph < 2; ph++)
    for (int p = 0; p < o.procs; p++)
      for (unsigned b = 0; b < NBUCKETS; b++)
        hist[ph][b] += sh->hist[ph][p][b];
  uint64_t *fan = calloc((size_t)o.latency, sizeof *fan);
  for (int r = 0; r < o.latency; r++) {
    uint64_t last = 0;
    for (int p = 0; p < o.procs; p++)
      if (shared_last(sh, p)[r] > last)
        last = shared_last(sh, p)[r];
    fan[r] = last - pub_t[r];
  }
  qsort(fan, (size_t)o.latency, sizeof *fan, cmp_u64);
  double fan50 = (double)fan[o.latency / 2];
  double fan99 = (double)fan[(size_t)((o.latency - 1) * 0.99)];
  double fanmax = (double)fan[o.latency - 1];
  uint64_t tlast = 0;
  for (size_t q = (size_t)o.latency; q < nseq; q++)
    for (int p = 0; p < o.procs; p++)
      if (shared_last(sh, p)[q] > tlast)
        tlast = shared_last(sh, p)[q];
  double secs = (double)((tlast > t1 ? tlast : t1) - t0) / 1e9;
  double pubs = o.publishes / secs, dels = pubs * (double)n;
  /* The server's CPU per delivery: its I/O threads' work (and the
   * publisher's, small) over the throughput phase. */
  double cpu_del_ns = (double)(cpu1 - cpu0) / ((double)o.publishes * (double)n);
  printf("fan-out latency (%d publishes, one at a time): last subscriber "
         "p50 %.2f ms, p99 %.2f ms, max %.2f ms; each delivery p50 %.2f ms, "
         "p99 %.2f ms; publish call %.1f us\n",
         o.latency, ms(fan50), ms(fan99), ms(fanmax), ms(hist_pct(hist[0], .5)),
         ms(hist_pct(hist[0], .99)), lat_call_us);
  printf("fan-out throughput (%d publishes, %d in flight): %.0f publishes/s, "
         "%.2f M deliveries/s; each delivery p50 %.2f ms, p99 %.2f ms; "
         "publish call %.1f us; server CPU %.0f ns a delivery\n",
         o.publishes, o.window, pubs, dels / 1e6, ms(hist_pct(hist[1], .5)),
         ms(hist_pct(hist[1], .99)), thr_call_us, cpu_del_ns);
  printf("1,000 topics (%d rounds): from another thread subscribe %.0f ns a "
         "call, all 1,000 applied after %.2f ms; unsubscribe %.0f ns a call, "
         "applied after %.2f ms; on the I/O thread subscribe %.0f ns, "
         "unsubscribe %.0f ns\n",
         o.rounds, sub_call / k, ms(sub_applied / o.rounds), unsub_call / k,
         ms(unsub_applied / o.rounds), loop_sub / k, loop_unsub / k);
  printf("{\"conns\": %d, \"requested\": %d, \"fd_limit\": %ld, "
         "\"io_threads\": %d, \"size\": %d, \"rss_kib_per_conn\": %.3f, "
         "\"fanout_last_p50_ms\": %.3f, \"fanout_last_p99_ms\": %.3f, "
         "\"delivery_p50_ms\": %.3f, \"delivery_p99_ms\": %.3f, "
         "\"publish_call_us\": %.2f, \"publishes_per_s\": %.1f, "
         "\"deliveries_per_s\": %.0f, \"thr_delivery_p50_ms\": %.3f, "
         "\"thr_delivery_p99_ms\": %.3f, \"sub_call_ns\": %.0f, "
         "\"sub_applied_ms\": %.3f, \"unsub_call_ns\": %.0f, "
         "\"unsub_applied_ms\": %.3f, \"loop_sub_ns\": %.0f, "
         "\"loop_unsub_ns\": %.0f, \"server_cpu_ns_per_delivery\": %.0f, "
         "\"load\": %.2f}\n",
         o.conns, requested, lim, o.io_threads, o.size,
         (double)(rss1 - rss0) / (double)o.conns, ms(fan50), ms(fan99),
         ms(hist_pct(hist[0], .5)), ms(hist_pct(hist[0], .99)), lat_call_us,
         pubs, dels, ms(hist_pct(hist[1], .5)), ms(hist_pct(hist[1], .99)),
         sub_call / k, ms(sub_applied / o.rounds), unsub_call / k,
         ms(unsub_applied / o.rounds), loop_sub / k, loop_unsub / k, cpu_del_ns,
         load);
  free(fan);
  free(pub_t);
  return 0;
}
