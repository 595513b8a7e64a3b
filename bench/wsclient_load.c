/* wsclient_load: an echo load generator built on libwebsock2's own client
 * mode, for comparison with wsload (loadgen.c) on the same workloads.
 *
 *   wsclient_load --port P [--host H] [--path /] [--connections N]
 *                 [--size BYTES] [--inflight K] [--duration S] [--warmup S]
 *                 [--binary|--text] [--io-threads N] [--agents M] [--quiet]
 *
 * A client-only websock_server (websock_config_set_client_only) makes N
 * outgoing connections to ws://H:P/path. By default its event callback
 * runs inline on one I/O thread (agents 0); --io-threads and --agents
 * change that. Each connection keeps K messages in flight: it sends its
 * first K from its OPEN callback and one more from every MESSAGE callback
 * that takes an echo back, so the connection's state is only ever touched
 * by its own callbacks, which the library runs one at a time and in order.
 * The main thread only drives the phases (connect, warmup, measure, drain,
 * close) through an atomic and reads per-connection counts that are atomic.
 *
 * Messages are the ones wsload sends: the connection's index and the
 * sequence number as 16 hex digits, then a printable pattern whose offset
 * depends on the sequence number. Every echo is checked byte for byte
 * against the next one expected; a wrong type or length, a wrong byte, an
 * echo nobody asked for, one missing at the end, a refused send and a
 * connection that failed or closed early are errors.
 *
 * It prints one JSON line with wsload's keys for an echo run (msgs,
 * msgs_per_s, p50_us, p99_us, errors, lost, ...) plus client_cpu_s and
 * client_cpu_us_per_msg: the process's CPU time
 * (CLOCK_PROCESS_CPUTIME_ID, every thread) over the measured interval,
 * divided by the echoes received in it. Exit status 1 on any error or
 * when nothing was echoed, 2 on bad arguments, 3 when the client could
 * not start.
 *
 * Latency is taken from just before websock_server_send() to the start
 * of the MESSAGE callback, so it includes the library's client-side
 * parsing and dispatch, which wsload's (taken once per epoll wakeup,
 * before reading) leaves out.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <websock.h>

#define HDR_LEN 16     /* "%08x%08x": connection index, sequence number */
#define PAT_SPREAD 251 /* the body's offset in the pattern is seq % this */

/* ---- options --------------------------------------------------------------
 */

static struct {
  const char *host;
  int port;
  const char *path;
  int conns;
  size_t size;
  int inflight;
  double duration;
  double warmup;
  bool binary;
  int io_threads;
  int agents;
  bool quiet;
} opt = {
    .host = "127.0.0.1",
    .path = "/",
    .conns = 1,
    .size = 16,
    .inflight = 1,
    .duration = 5.0,
    .warmup = 1.0,
    .binary = true,
    .io_threads = 1,
    .agents = 0,
};

static void logmsg(const char *fmt, ...) {
  if (opt.quiet)
    return;
  va_list ap;
  va_start(ap, fmt);
  fputs("wsclient_load: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void *xmalloc(size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p) {
    fprintf(stderr, "wsclient_load: out of memory\n");
    exit(3);
  }
  return p;
}

/* ---- clocks ------------------------------------------------------------- */

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void) {
  return clock_ns(CLOCK_MONOTONIC);
}

/* CPU time of the whole process: every thread, the library's included. */
static uint64_t cpu_ns(void) {
  return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* ---- latency histogram ---------------------------------------------------
 * Log-linear: values below 64 ns exactly, above that 32 buckets per power
 * of two (about 3% wide), the midpoint reported. */

#define H_SUB 32
#define H_BUCKETS (64 + 58 * H_SUB)

static unsigned h_bucket(uint64_t v) {
  if (v < 64)
    return (unsigned)v;
  unsigned top = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
  unsigned sub = (unsigned)(v >> (top - 5)) - 32u;   /* 0..31 */
  return 64u + (top - 6u) * H_SUB + sub;
}

static uint64_t h_mid(unsigned b) {
  if (b < 64)
    return b;
  unsigned top = (b - 64u) / H_SUB + 6u;
  uint64_t lo = (uint64_t)(32u + (b - 64u) % H_SUB) << (top - 5);
  return lo + (((uint64_t)1 << (top - 5)) >> 1);
}

/* ---- per-thread counters -------------------------------------------------
 * Callbacks run on the I/O threads (agents 0) or on the agents; each
 * thread counts into its own block, pushed once onto a lock-free list and
 * summed after the server's threads have been joined. */

typedef struct tstats {
  struct tstats *next;
  uint8_t *scratch; /* one message being built */
  uint64_t hist[H_BUCKETS];
  uint64_t hist_n, hist_max;
  long long msgs, msgs_total, bytes, bytes_sent;
  long long lost, reordered, corrupt, conn_errors, proto_errors;
} tstats;

static _Atomic(tstats *) all_stats;
static _Thread_local tstats *my_stats;

static tstats *stats_here(void) {
  tstats *t = my_stats;
  if (t)
    return t;
  t = xmalloc(sizeof *t);
  t->scratch = xmalloc(opt.size);
  tstats *head = atomic_load(&all_stats);
  do
    t->next = head;
  while (!atomic_compare_exchange_weak(&all_stats, &head, t));
  my_stats = t;
  return t;
}

/* ---- connections ----------------------------------------------------------
 */

enum { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_CLOSING };
static atomic_int phase = PH_CONNECT;

enum { C_PENDING, C_OPEN, C_CLOSED };

typedef struct conn {
  uint32_t index;      /* in the header of its messages */
  uint32_t next_seq;   /* next sequence number to send */
  uint32_t expect_seq; /* next one expected back */
  uint64_t *sent_at;   /* send times, a ring of opt.inflight */
  atomic_uint inflight;
  atomic_int state;
  atomic_bool send_failed; /* a send was refused: it stopped sending */
} conn_t;

static conn_t *conns;
static uint8_t *pattern; /* opt.size + PAT_SPREAD printable bytes */
static atomic_int n_open, n_opened, n_closed, n_failed;
static atomic_int first_error = 1; /* only the first error is logged */

/* Logs "what" (and ": detail", |len| bytes) for the first error only. */
static void log_first(const char *what, const void *detail, size_t len) {
  if (!atomic_exchange(&first_error, 0))
    return;
  if (detail && len)
    logmsg("%s: %.*s", what, (int)(len > INT_MAX ? INT_MAX : len),
           (const char *)detail);
  else
    logmsg("%s", what);
}

static const char hexdig[] = "0123456789abcdef";

static void put_hex32(uint8_t *p, uint32_t v) {
  for (int i = 7; i >= 0; i--, v >>= 4)
    p[i] = (uint8_t)hexdig[v & 15u];
}

static bool get_hex32(const uint8_t *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 8; i++) {
    uint32_t d;
    if (p[i] >= '0' && p[i] <= '9')
      d = (uint32_t)(p[i] - '0');
    else if (p[i] >= 'a' && p[i] <= 'f')
      d = (uint32_t)(p[i] - 'a') + 10u;
    else
      return false;
    v = v << 4 | d;
  }
  *out = v;
  return true;
}

/* Message (index, seq): the header (cut short in messages under 16 bytes)
 * and the pattern from offset seq % PAT_SPREAD. */
static void message_fill(uint8_t *p, uint32_t index, uint32_t seq) {
  uint8_t hdr[HDR_LEN];
  put_hex32(hdr, index);
  put_hex32(hdr + 8, seq);
  memcpy(p, hdr, opt.size < HDR_LEN ? opt.size : HDR_LEN);
  if (opt.size > HDR_LEN)
    memcpy(p + HDR_LEN, pattern + seq % PAT_SPREAD, opt.size - HDR_LEN);
}

static bool message_is(const uint8_t *p, uint32_t index, uint32_t seq) {
  uint8_t hdr[HDR_LEN];
  put_hex32(hdr, index);
  put_hex32(hdr + 8, seq);
  if (memcmp(p, hdr, opt.size < HDR_LEN ? opt.size : HDR_LEN) != 0)
    return false;
  return opt.size <= HDR_LEN || memcmp(p + HDR_LEN, pattern + seq % PAT_SPREAD,
                                       opt.size - HDR_LEN) == 0;
}

static bool sending_allowed(void) {
  int ph = atomic_load_explicit(&phase, memory_order_relaxed);
  return ph == PH_CONNECT || ph == PH_WARMUP || ph == PH_MEASURE;
}

/* Tops connection c's window up to opt.inflight messages. Runs only in
 * c's own callbacks. */
static void conn_fill(websock_server *srv, uint64_t id, conn_t *c, tstats *t,
                      uint64_t now) {
  unsigned k = (unsigned)opt.inflight;
  unsigned inflight = atomic_load_explicit(&c->inflight, memory_order_relaxed);
  int op = opt.binary ? WEBSOCK_OP_BINARY : WEBSOCK_OP_TEXT;
  bool measured =
      atomic_load_explicit(&phase, memory_order_relaxed) == PH_MEASURE;
  while (inflight < k && sending_allowed() &&
         !atomic_load_explicit(&c->send_failed, memory_order_relaxed)) {
    message_fill(t->scratch, c->index, c->next_seq);
    c->sent_at[c->next_seq % k] = now;
    int rc = websock_server_send(srv, id, op, t->scratch, opt.size);
    if (rc != 0) {
      const char *why = websock_strerror(rc);
      log_first("send refused", why, strlen(why));
      atomic_store(&c->send_failed, true);
      t->conn_errors++;
      break;
    }
    c->next_seq++;
    inflight++;
    if (measured)
      t->bytes_sent += (long long)opt.size;
  }
  atomic_store_explicit(&c->inflight, inflight, memory_order_relaxed);
}

/* Checks one echo against the next message expected. TCP and the library
 * keep order, so anything else is an error: a well-formed message of the
 * window resynchronises (the skipped ones count as lost when they never
 * turn up, as reordered when they turn up late), anything else is
 * corrupt. */
static void on_echo(websock_server *srv, const websock_event *ev, conn_t *c) {
  tstats *t = stats_here();
  uint64_t now = now_ns();
  if (atomic_load_explicit(&c->state, memory_order_relaxed) != C_OPEN)
    return;
  unsigned inflight = atomic_load_explicit(&c->inflight, memory_order_relaxed);
  if (inflight == 0) {
    t->corrupt++; /* an echo nobody asked for */
    log_first("an echo nobody asked for", NULL, 0);
    return;
  }
  uint32_t k = (uint32_t)opt.inflight, seq = c->expect_seq, s, ix;
  int want_op = opt.binary ? WEBSOCK_OP_BINARY : WEBSOCK_OP_TEXT;
  bool good = false;
  if (ev->opcode != want_op || ev->length != opt.size || !ev->data) {
    c->expect_seq++;
  } else if (message_is(ev->data, c->index, seq)) {
    good = true;
    c->expect_seq++;
  } else if (opt.size >= HDR_LEN && get_hex32(ev->data, &ix) &&
             get_hex32(ev->data + 8, &s) && ix == c->index &&
             (uint32_t)(c->next_seq - s) - 1u < k &&
             message_is(ev->data, c->index, s)) {
    good = true;
    seq = s;
    if ((int32_t)(s - c->expect_seq) > 0)
      c->expect_seq = s + 1; /* skipped: lost, or reordered when late */
    else
      t->reordered++;
  } else {
    c->expect_seq++;
  }
  if (!good) {
    t->corrupt++;
    log_first("a corrupt echo", NULL, 0);
  }
  bool measured =
      atomic_load_explicit(&phase, memory_order_relaxed) == PH_MEASURE;
  if (good && measured) {
    uint64_t lat = now - c->sent_at[seq % k];
    t->hist[h_bucket(lat)]++;
    t->hist_n++;
    if (lat > t->hist_max)
      t->hist_max = lat;
  }
  atomic_store_explicit(&c->inflight, inflight - 1, memory_order_relaxed);
  t->msgs_total++;
  if (measured) {
    t->msgs++;
    t->bytes += (long long)ev->length;
  }
  conn_fill(srv, ev->id, c, t, now);
}

static void on_event(websock_server *srv, const websock_event *ev,
                     void *user_data) {
  (void)user_data;
  conn_t *c = ev->user_data;
  if (!c)
    return;
  switch (ev->type) {
  case WEBSOCK_EVENT_OPEN:
    atomic_store(&c->state, C_OPEN);
    atomic_fetch_add(&n_open, 1);
    atomic_fetch_add(&n_opened, 1);
    conn_fill(srv, ev->id, c, stats_here(), now_ns());
    break;
  case WEBSOCK_EVENT_MESSAGE:
    on_echo(srv, ev, c);
    break;
  case WEBSOCK_EVENT_CLOSE: {
    tstats *t = stats_here();
    int was = atomic_exchange(&c->state, C_CLOSED);
    if (was == C_PENDING) { /* the connect failed: the reason says where */
      t->conn_errors++;
      atomic_fetch_add(&n_failed, 1);
      log_first("cannot connect", ev->data, ev->length);
    } else if (was == C_OPEN) {
      atomic_fetch_sub(&n_open, 1);
      if (atomic_load(&phase) != PH_CLOSING) {
        int code = ev->close_code;
        if (code == WEBSOCK_CLOSE_PROTOCOL_ERROR ||
            code == WEBSOCK_CLOSE_INVALID_DATA || code == WEBSOCK_CLOSE_TOO_BIG)
          t->proto_errors++;
        else
          t->conn_errors++;
        t->lost += atomic_exchange(&c->inflight, 0u);
        log_first("a connection closed during the run", ev->data, ev->length);
      }
    }
    atomic_fetch_add(&n_closed, 1);
    break;
  }
  default:
    break;
  }
}

/* ---- arguments ------------------------------------------------------------
 */

static void usage(FILE *f) {
  fprintf(f,
          "usage: wsclient_load --port P [options]\n"
          "  --host H          server address (default 127.0.0.1)\n"
          "  --port P          server port (required)\n"
          "  --path /          request path\n"
          "  --connections N   connections (default 1)\n"
          "  --size BYTES      message size (default 16)\n"
          "  --inflight K      messages in flight per connection (default 1)\n"
          "  --duration S      measured seconds (default 5)\n"
          "  --warmup S        unmeasured seconds before (default 1)\n"
          "  --binary|--text   message type (default binary)\n"
          "  --io-threads N    the client's I/O threads (default 1)\n"
          "  --agents M        agent threads running the callbacks (default\n"
          "                    0: inline on the I/O threads)\n"
          "  --quiet           no progress on stderr\n");
}

static void bad_args(void) {
  usage(stderr);
  exit(2);
}

static long long arg_int(const char *s, long long lo, long long hi) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    bad_args();
  return v;
}

static double arg_secs(const char *s, double lo) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo) || v > 86400.0)
    bad_args();
  return v;
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--binary") == 0) {
      opt.binary = true;
      continue;
    }
    if (strcmp(a, "--text") == 0) {
      opt.binary = false;
      continue;
    }
    if (strcmp(a, "--quiet") == 0) {
      opt.quiet = true;
      continue;
    }
    if (strcmp(a, "--help") == 0) {
      usage(stdout);
      exit(0);
    }
    if (i + 1 >= argc)
      bad_args();
    const char *v = argv[++i];
    if (strcmp(a, "--host") == 0)
      opt.host = v;
    else if (strcmp(a, "--port") == 0)
      opt.port = (int)arg_int(v, 1, 65535);
    else if (strcmp(a, "--path") == 0)
      opt.path = v;
    else if (strcmp(a, "--connections") == 0)
      opt.conns = (int)arg_int(v, 1, 1000000);
    else if (strcmp(a, "--size") == 0)
      opt.size = (size_t)arg_int(v, 1, 1 << 30);
    else if (strcmp(a, "--inflight") == 0)
      opt.inflight = (int)arg_int(v, 1, 1 << 20);
    else if (strcmp(a, "--duration") == 0)
      opt.duration = arg_secs(v, 0.001);
    else if (strcmp(a, "--warmup") == 0)
      opt.warmup = arg_secs(v, 0.0);
    else if (strcmp(a, "--io-threads") == 0)
      opt.io_threads = (int)arg_int(v, 1, 256);
    else if (strcmp(a, "--agents") == 0)
      opt.agents = (int)arg_int(v, 0, 1024);
    else
      bad_args();
  }
  if (opt.port == 0 || opt.path[0] != '/')
    bad_args();
}

/* Enough descriptors for every connection (the library's default
 * connection limit follows the soft limit when the config is made). */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  rlim_t want = (rlim_t)opt.conns + 128;
  if (rl.rlim_cur >= want)
    return;
  rl.rlim_cur =
      rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

/* ---- the run ------------------------------------------------------------- */

static websock_server *client_start(void) {
  websock_config *cfg = NULL;
  websock_server *srv = NULL;
  int rc = websock_config_new(&cfg);
  if (!rc)
    rc = websock_config_set_client_only(cfg, 1);
  if (!rc)
    rc = websock_config_set_io_threads(cfg, opt.io_threads);
  if (!rc)
    rc = websock_config_set_agents(cfg, opt.agents);
  if (!rc)
    rc = websock_config_set_event_callback(cfg, on_event, NULL);
  if (!rc && opt.conns > 16)
    rc = websock_config_set_max_connections(cfg, (unsigned)opt.conns + 16u);
  if (!rc && opt.size > ((size_t)1 << 20))
    rc = websock_config_set_max_message_size(cfg, opt.size);
  if (!rc)
    rc = websock_server_new(&srv, cfg);
  websock_config_free(cfg);
  if (!rc)
    rc = websock_server_start(srv);
  if (rc) {
    fprintf(stderr, "wsclient_load: cannot start the client: %s\n",
            websock_strerror(rc));
    websock_server_free(srv);
    exit(3);
  }
  return srv;
}

/* Starts every connection; their ids go to ids[]. */
static void connect_all(websock_server *srv, uint64_t *ids) {
  char url[512];
  bool v6 = strchr(opt.host, ':') != NULL;
  int n = snprintf(url, sizeof url, "ws://%s%s%s:%d%s", v6 ? "[" : "", opt.host,
                   v6 ? "]" : "", opt.port, opt.path);
  if (n < 0 || (size_t)n >= sizeof url)
    bad_args();
  websock_connect_options *o = websock_connect_options_new();
  if (!o) {
    fprintf(stderr, "wsclient_load: out of memory\n");
    exit(3);
  }
  for (int i = 0; i < opt.conns; i++) {
    websock_connect_options_set_user_data(o, &conns[i]);
    int rc = websock_server_connect(srv, url, o, &ids[i]);
    if (rc) {
      fprintf(stderr, "wsclient_load: connect %s: %s: %s\n", url,
              websock_strerror(rc), websock_connect_error());
      exit(rc == WEBSOCK_ERR_INVALID ? 2 : 3);
    }
  }
  websock_connect_options_free(o);
}

static unsigned inflight_sum(void) {
  unsigned sum = 0;
  for (int i = 0; i < opt.conns; i++)
    sum += atomic_load_explicit(&conns[i].inflight, memory_order_relaxed);
  return sum;
}

/* Sleeps until |done| says so or |seconds| have passed; true when done. */
static bool wait_for(bool (*done)(void), double seconds) {
  uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
  for (;;) {
    if (done && done())
      return true;
    uint64_t t = now_ns();
    if (t >= end)
      return false;
    uint64_t left_ms = (end - t) / 1000000u + 1;
    sleep_ms(left_ms < 5 ? (long)left_ms : 5);
  }
}

static bool all_settled(void) {
  return atomic_load(&n_opened) + atomic_load(&n_failed) >= opt.conns;
}

static bool none_open(void) {
  return atomic_load(&n_open) == 0;
}

static bool drained(void) {
  return inflight_sum() == 0 || none_open();
}

static bool all_closed(void) {
  return atomic_load(&n_closed) >= opt.conns;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  raise_nofile();
  pattern = xmalloc(opt.size + PAT_SPREAD);
  uint64_t r = now_ns() | 1u;
  for (size_t i = 0; i < opt.size + PAT_SPREAD; i++) {
    r ^= r << 13; /* xorshift64: any printable pattern will do */
    r ^= r >> 7;
    r ^= r << 17;
    pattern[i] = (uint8_t)(' ' + r % 95u);
  }
  conns = xmalloc(sizeof *conns * (size_t)opt.conns);
  for (int i = 0; i < opt.conns; i++) {
    conns[i].index = (uint32_t)i;
    conns[i].sent_at = xmalloc(sizeof(uint64_t) * (size_t)opt.inflight);
    atomic_init(&conns[i].inflight, 0u);
    atomic_init(&conns[i].state, C_PENDING);
    atomic_init(&conns[i].send_failed, false);
  }
  uint64_t *ids = xmalloc(sizeof *ids * (size_t)opt.conns);

  websock_server *srv = client_start();
  connect_all(srv, ids);
  /* Each connection starts sending at its OPEN; the warmup runs from the
   * moment all of them are open (or have failed). */
  if (!wait_for(all_settled, 60.0))
    logmsg("connect phase timed out (%d open)", atomic_load(&n_open));
  logmsg("%d connections open", atomic_load(&n_open));
  atomic_store(&phase, PH_WARMUP);
  wait_for(none_open, opt.warmup);

  uint64_t t0 = now_ns(), cpu0 = cpu_ns();
  atomic_store(&phase, PH_MEASURE);
  wait_for(none_open, opt.duration);
  atomic_store(&phase, PH_DRAIN);
  uint64_t t1 = now_ns(), cpu1 = cpu_ns();

  if (!wait_for(drained, 5.0))
    logmsg("%u messages never echoed", inflight_sum());
  long long lost = (long long)inflight_sum();
  atomic_store(&phase, PH_CLOSING);
  for (int i = 0; i < opt.conns; i++)
    if (atomic_load(&conns[i].state) == C_OPEN)
      websock_server_close(srv, ids[i], WEBSOCK_CLOSE_NORMAL, NULL);
  if (!wait_for(all_closed, 3.0))
    logmsg("%d connections did not close in time",
           opt.conns - atomic_load(&n_closed));
  websock_server_stop(srv);
  websock_server_join(srv);
  websock_server_free(srv);

  /* Every thread that counted has ended: sum their blocks. */
  tstats sum;
  memset(&sum, 0, sizeof sum);
  for (tstats *t = atomic_load(&all_stats); t; t = t->next) {
    for (unsigned b = 0; b < H_BUCKETS; b++)
      sum.hist[b] += t->hist[b];
    sum.hist_n += t->hist_n;
    if (t->hist_max > sum.hist_max)
      sum.hist_max = t->hist_max;
    sum.msgs += t->msgs;
    sum.msgs_total += t->msgs_total;
    sum.bytes += t->bytes;
    sum.bytes_sent += t->bytes_sent;
    sum.lost += t->lost;
    sum.reordered += t->reordered;
    sum.corrupt += t->corrupt;
    sum.conn_errors += t->conn_errors;
    sum.proto_errors += t->proto_errors;
  }
  sum.lost += lost;

  double pct[3] = {0.50, 0.99, 0.999}, us[3] = {0, 0, 0};
  for (int p = 0; p < 3 && sum.hist_n; p++) {
    uint64_t want = (uint64_t)(pct[p] * (double)sum.hist_n), seen = 0;
    if (want >= sum.hist_n)
      want = sum.hist_n - 1;
    for (unsigned b = 0; b < H_BUCKETS; b++) {
      seen += sum.hist[b];
      if (seen > want) {
        uint64_t v = h_mid(b);
        us[p] = (double)(v < sum.hist_max ? v : sum.hist_max) / 1000.0;
        break;
      }
    }
  }
  double el = (double)(t1 - t0) / 1e9;
  double cpu_s = (double)(cpu1 - cpu0) / 1e9;
  long long errors = sum.lost + sum.reordered + sum.corrupt + sum.conn_errors +
                     sum.proto_errors;
  printf("{\"mode\":\"echo\",\"generator\":\"wsclient_load\",\"tls\":false,"
         "\"connections\":%d,\"connections_open\":%d,\"size\":%zu,"
         "\"inflight\":%d,\"type\":\"%s\",\"io_threads\":%d,\"agents\":%d,"
         "\"elapsed_s\":%.3f,\"msgs\":%lld,\"msgs_total\":%lld,"
         "\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f,\"p50_us\":%.1f,"
         "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"errors\":%lld,"
         "\"lost\":%lld,\"reordered\":%lld,\"corrupt\":%lld,"
         "\"conn_errors\":%lld,\"proto_errors\":%lld,\"body\":\"random\","
         "\"deflate_offered\":false,\"deflate_conns\":0,"
         "\"msgs_compressed\":0,\"wire_bytes\":%lld,\"wire_ratio\":%.4f,"
         "\"wire_bytes_sent\":%lld,\"sent_ratio\":%.4f,\"idle_messages\":0,"
         "\"deflate_body_cache\":false,\"client_cpu_s\":%.4f,"
         "\"client_cpu_us_per_msg\":%.3f}\n",
         opt.conns, atomic_load(&n_opened), opt.size, opt.inflight,
         opt.binary ? "binary" : "text", opt.io_threads, opt.agents, el,
         sum.msgs, sum.msgs_total, el > 0 ? (double)sum.msgs / el : 0.0,
         el > 0 ? (double)sum.bytes / el / 1e6 : 0.0, us[0], us[1], us[2],
         (double)sum.hist_max / 1000.0, errors, sum.lost, sum.reordered,
         sum.corrupt, sum.conn_errors, sum.proto_errors, sum.bytes,
         sum.bytes ? 1.0 : 0.0, sum.bytes_sent, sum.bytes_sent ? 1.0 : 0.0,
         cpu_s, sum.msgs ? cpu_s * 1e6 / (double)sum.msgs : 0.0);
  fflush(stdout);
  if (errors)
    logmsg("FAILED: %lld errors (lost %lld reordered %lld corrupt %lld "
           "conn %lld proto %lld)",
           errors, sum.lost, sum.reordered, sum.corrupt, sum.conn_errors,
           sum.proto_errors);
  if (sum.msgs == 0)
    logmsg("FAILED: no messages echoed in the measured window");

  for (tstats *t = atomic_load(&all_stats), *next; t; t = next) {
    next = t->next;
    free(t->scratch);
    free(t);
  }
  for (int i = 0; i < opt.conns; i++)
    free(conns[i].sent_at);
  free(conns);
  free(ids);
  free(pattern);
  return errors || sum.msgs == 0 ? 1 : 0;
}
