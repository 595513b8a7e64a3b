/* spread: which connection-spreading policy balances the I/O threads
 * better? Runs an in-process libwebsock2 echo server once per policy and
 * measures two things over real sockets:
 *
 *   churn  CONNS connections stay open while STEPS times a random one
 *          closes and a new one connects; after every step it samples
 *          the per-loop connection counts and reports the mean and the
 *          largest gap between the fullest and the emptiest loop.
 *   wave   2*W idle connections open, the ones on the last loop close,
 *          then `wsload` runs W busy connections (16 in flight); it
 *          reports each loop's share of the busy connections and the
 *          msgs/s wsload measured.
 *
 *   spread [--io-threads N] [--conns C] [--steps S] [--wave W]
 *          [--duration SEC] [--wsload PATH] [--seed X]
 *
 * Only the library's public API is used; the clients here are plain
 * blocking sockets, and the busy wave is driven by wsload.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <websock.h>

static void on_event(websock_server *srv, const websock_event *ev, void *ud) {
  (void)ud;
  if (ev->type == WEBSOCK_EVENT_MESSAGE)
    websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
}

static void die(const char *what) {
  fprintf(stderr, "spread: %s: %s\n", what, strerror(errno));
  exit(1);
}

static websock_server *server_start(int io_threads, int spread) {
  websock_config *cfg;
  websock_server *srv = NULL;
  int rc = websock_config_new(&cfg);
  if (!rc)
    rc = websock_config_set_io_threads(cfg, io_threads);
  if (!rc)
    rc = websock_config_set_spread(cfg, spread);
  if (!rc)
    rc = websock_config_set_max_connections(cfg, 100000);
  if (!rc)
    rc = websock_config_set_event_callback(cfg, on_event, NULL);
  if (!rc)
    rc = websock_server_new(&srv, cfg);
  websock_config_free(cfg);
  if (!rc)
    rc = websock_server_start(srv);
  if (rc) {
    fprintf(stderr, "spread: server: %s\n", websock_strerror(rc));
    exit(1);
  }
  return srv;
}

/* A blocking client that completes the upgrade and then only holds the
 * socket; closing it is an abrupt EOF the server must notice. */
static int client_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    die("socket");
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
    die("connect");
  static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n";
  if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)sizeof req - 1)
    die("send");
  char resp[512];
  size_t n = 0;
  while (n < sizeof resp - 1) {
    ssize_t r = recv(fd, resp + n, sizeof resp - 1 - n, 0);
    if (r <= 0)
      die("handshake");
    n += (size_t)r;
    resp[n] = 0;
    if (strstr(resp, "\r\n\r\n"))
      break;
  }
  if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
    fprintf(stderr, "spread: upgrade refused: %.40s\n", resp);
    exit(1);
  }
  return fd;
}

/* The per-loop counters this benchmark reads. */
#define SPREAD_MAX_LOOPS 16
typedef struct spread_stats {
  unsigned io_threads;
  uint64_t loop_connections[SPREAD_MAX_LOOPS];
  uint64_t loop_accepted[SPREAD_MAX_LOOPS];
} spread_stats;

static spread_stats stats_of(websock_server *srv) {
  websock_stats st;
  websock_server_get_stats(srv, &st, sizeof st);
  spread_stats out = {0};
  out.io_threads =
      st.io_threads < SPREAD_MAX_LOOPS ? st.io_threads : SPREAD_MAX_LOOPS;
  for (unsigned k = 0; k < out.io_threads; k++) {
    websock_loop_stats ts;
    websock_server_get_loop_stats(srv, k, &ts, sizeof ts);
    out.loop_connections[k] = ts.connections;
    out.loop_accepted[k] = ts.accepted;
  }
  return out;
}

/* Waits until the server counts |open| connections (closes are noticed
 * asynchronously by the loops). */
static spread_stats wait_open(websock_server *srv, uint64_t open) {
  for (int i = 0; i < 50000; i++) {
    spread_stats st = stats_of(srv);
    uint64_t sum = 0;
    for (unsigned k = 0; k < st.io_threads; k++)
      sum += st.loop_connections[k];
    if (sum == open)
      return st;
    usleep(100);
  }
  fprintf(stderr, "spread: server never reached %llu connections\n",
          (unsigned long long)open);
  exit(1);
}

static unsigned gap_of(const spread_stats *st) {
  uint64_t lo = UINT64_MAX, hi = 0;
  for (unsigned k = 0; k < st->io_threads; k++) {
    if (st->loop_connections[k] < lo)
      lo = st->loop_connections[k];
    if (st->loop_connections[k] > hi)
      hi = st->loop_connections[k];
  }
  return (unsigned)(hi - lo);
}

static void churn(int io_threads, int spread, int conns, int steps,
                  unsigned seed, double *mean_gap, unsigned *max_gap) {
  websock_server *srv = server_start(io_threads, spread);
  int port = websock_server_port(srv);
  int *fds = malloc((size_t)conns * sizeof *fds);
  if (!fds)
    die("malloc");
  for (int i = 0; i < conns; i++)
    fds[i] = client_open(port);
  srand(seed);
  double sum = 0;
  *max_gap = 0;
  for (int s = 0; s < steps; s++) {
    int victim = rand() % conns;
    close(fds[victim]);
    wait_open(srv, (uint64_t)conns - 1);
    fds[victim] = client_open(port);
    spread_stats st = wait_open(srv, (uint64_t)conns);
    unsigned g = gap_of(&st);
    sum += g;
    if (g > *max_gap)
      *max_gap = g;
  }
  *mean_gap = sum / steps;
  for (int i = 0; i < conns; i++)
    close(fds[i]);
  free(fds);
  websock_server_free(srv);
}

/* Returns msgs/s and fills |share| (percent of messages per loop). */
static double wave(int io_threads, int spread, int w, double duration,
                   const char *wsload, double *share) {
  websock_server *srv = server_start(io_threads, spread);
  int port = websock_server_port(srv);
  int idle = 2 * w;
  int *fds = malloc((size_t)idle * sizeof *fds);
  if (!fds)
    die("malloc");
  /* One at a time: each accept sees the previous one counted. */
  for (int i = 0; i < idle; i++) {
    fds[i] = client_open(port);
    wait_open(srv, (uint64_t)i + 1);
  }
  /* Sequential connections alternate over the loops under both policies,
   * so connection i sits on loop i % N: close the last loop's. */
  int closed = 0;
  for (int i = io_threads - 1; i < idle; i += io_threads) {
    close(fds[i]);
    fds[i] = -1;
    closed++;
  }
  spread_stats before = wait_open(srv, (uint64_t)(idle - closed));
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "'%s' --port %d --connections %d --inflight 16 --duration %g "
           "--warmup 0.2 --quiet",
           wsload, port, w, duration);
  FILE *out = popen(cmd, "r");
  if (!out)
    die("popen");
  char line[4096] = "";
  size_t got = fread(line, 1, sizeof line - 1, out);
  line[got] = 0;
  const char *m = strstr(line, "\"msgs_per_s\":");
  if (pclose(out) != 0 || !m) {
    fprintf(stderr, "spread: %s failed: %s\n", wsload, line);
    exit(1);
  }
  double mps = atof(m + strlen("\"msgs_per_s\":"));
  /* The wave's connections are the only busy ones: where they were
   * accepted is where the work went. */
  spread_stats after = stats_of(srv);
  for (unsigned k = 0; k < after.io_threads; k++) {
    uint64_t n = after.loop_accepted[k] - before.loop_accepted[k];
    share[k] = 100.0 * (double)n / w;
  }
  for (int i = 0; i < idle; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  free(fds);
  websock_server_free(srv);
  return mps;
}

static void usage(void) {
  fprintf(stderr, "usage: spread [--io-threads N] [--conns C] [--steps S] "
                  "[--wave W] [--duration SEC] [--wsload PATH] [--seed X]\n");
  exit(2);
}

int main(int argc, char **argv) {
  int io_threads = 2, conns = 200, steps = 2000, w = 100;
  double duration = 2.0;
  unsigned seed = 1;
  char wsload[4096];
  snprintf(wsload, sizeof wsload, "%s/wsload", dirname(strdup(argv[0])));
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc)
      usage();
    const char *a = argv[i], *v = argv[++i];
    if (strcmp(a, "--io-threads") == 0)
      io_threads = atoi(v);
    else if (strcmp(a, "--conns") == 0)
      conns = atoi(v);
    else if (strcmp(a, "--steps") == 0)
      steps = atoi(v);
    else if (strcmp(a, "--wave") == 0)
      w = atoi(v);
    else if (strcmp(a, "--duration") == 0)
      duration = atof(v);
    else if (strcmp(a, "--wsload") == 0)
      snprintf(wsload, sizeof wsload, "%s", v);
    else if (strcmp(a, "--seed") == 0)
      seed = (unsigned)strtoul(v, NULL, 10);
    else
      usage();
  }
  if (io_threads < 2 || io_threads > 16 || conns < 2 || steps < 1 || w < 1)
    usage();
  static const struct {
    const char *name;
    int policy;
  } policies[] = {{"least_connections", WEBSOCK_SPREAD_LEAST_CONNECTIONS},
                  {"round_robin", WEBSOCK_SPREAD_ROUND_ROBIN}};
  printf("io_threads %d; churn: %d connections, %d steps (seed %u); "
         "wave: %d busy after %d idle, %.1f s\n\n",
         io_threads, conns, steps, seed, w, 2 * w, duration);
  printf("| policy | churn: mean gap | churn: max gap | wave: busy "
         "connections per loop | wave msgs/s |\n|---|---:|---:|---|---:|\n");
  for (size_t p = 0; p < sizeof policies / sizeof policies[0]; p++) {
    double mean_gap, share[16] = {0};
    unsigned max_gap;
    churn(io_threads, policies[p].policy, conns, steps, seed, &mean_gap,
          &max_gap);
    double mps =
        wave(io_threads, policies[p].policy, w, duration, wsload, share);
    char shares[256];
    size_t off = 0;
    for (int k = 0; k < io_threads && off < sizeof shares; k++)
      off += (size_t)snprintf(shares + off, sizeof shares - off, "%s%.0f%%",
                              k ? " / " : "", share[k]);
    printf("| %s | %.2f | %u | %s | %.0f |\n", policies[p].name, mean_gap,
           max_gap, shares, mps);
    fflush(stdout);
  }
  return 0;
}
