/* echo_server: echoes every message back with its type (text stays text,
 * binary stays binary). Benchmarks and conformance tests drive it, so it
 * stays this small.
 *
 *   echo_server --port P [--host H] [--io-threads N] [--agents M]
 *               [--agent-batch 0|1]
 *               [--spread least|rr] [--reuse-port] [--max-message BYTES]
 *               [--tls-cert FILE --tls-key FILE]
 *               [--idle-timeout MS] [--ping-interval MS]
 *               [--max-connections N] [--max-outbound BYTES]
 *               [--slow-consumer-timeout MS]
 *               [--deflate | --deflate-dedicated]
 *
 * With --tls-cert (PEM chain) and --tls-key (PEM key) it serves wss://.
 * With --reuse-port every I/O thread listens on its own SO_REUSEPORT
 * socket, and several echo_server processes may share one --port.
 * --deflate offers permessage-deflate with one compressor per I/O thread,
 * --deflate-dedicated with one per connection (plain echo_server sends
 * everything uncompressed, as the benchmarks want). --agent-batch 0 keeps
 * the agents on the normal scheduling policy (websock_config_set_agent_batch).
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <websock.h>

#include "example_limits.h"

static void on_event(websock_server *srv, const websock_event *ev,
                     void *user_data) {
  (void)user_data;
  if (ev->type == WEBSOCK_EVENT_MESSAGE)
    websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
}

static void usage(const char *prog) {
  fprintf(stderr,
          "usage: %s --port P [--host H] [--io-threads N] [--agents M] "
          "[--agent-batch 0|1] "
          "[--spread least|rr] [--reuse-port] [--max-message BYTES] "
          "[--tls-cert FILE --tls-key FILE] "
          "[--idle-timeout MS] [--ping-interval MS] [--max-connections N] "
          "[--max-outbound BYTES] [--slow-consumer-timeout MS] "
          "[--deflate | --deflate-dedicated]\n",
          prog);
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = -1, io_threads = 1, agents = 0, agent_batch = 1;
  int spread = WEBSOCK_SPREAD_LEAST_CONNECTIONS, reuse_port = 0;
  int deflate = WEBSOCK_DEFLATE_OFF;
  unsigned long long max_message = 0;
  const char *tls_cert = NULL, *tls_key = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    /* The flags without a value. */
    if (strcmp(a, "--reuse-port") == 0) {
      reuse_port = 1;
      continue;
    }
    if (strcmp(a, "--deflate") == 0 || strcmp(a, "--deflate-dedicated") == 0) {
      deflate = a[9] ? WEBSOCK_DEFLATE_DEDICATED : WEBSOCK_DEFLATE_SHARED;
      continue;
    }
    if (i + 1 >= argc)
      usage(argv[0]);
    const char *v = argv[++i];
    if (parse_limit(a, v))
      continue;
    if (strcmp(a, "--port") == 0)
      port = atoi(v);
    else if (strcmp(a, "--host") == 0)
      host = v;
    else if (strcmp(a, "--io-threads") == 0)
      io_threads = atoi(v);
    else if (strcmp(a, "--agents") == 0)
      agents = atoi(v);
    else if (strcmp(a, "--agent-batch") == 0)
      agent_batch = atoi(v);
    else if (strcmp(a, "--spread") == 0 && strcmp(v, "least") == 0)
      spread = WEBSOCK_SPREAD_LEAST_CONNECTIONS;
    else if (strcmp(a, "--spread") == 0 && strcmp(v, "rr") == 0)
      spread = WEBSOCK_SPREAD_ROUND_ROBIN;
    else if (strcmp(a, "--max-message") == 0)
      max_message = strtoull(v, NULL, 10);
    else if (strcmp(a, "--tls-cert") == 0)
      tls_cert = v;
    else if (strcmp(a, "--tls-key") == 0)
      tls_key = v;
    else
      usage(argv[0]);
  }
  if (port < 0 || !tls_cert != !tls_key)
    usage(argv[0]);

  /* Handle SIGINT/SIGTERM by waiting for them on this thread; the server's
   * own threads block every signal. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  websock_config *cfg;
  websock_server *srv = NULL; /* websock_server_new leaves it on failure */
  int rc = websock_config_new(&cfg);
  if (!rc)
    rc = websock_config_set_listen(cfg, host, port);
  if (!rc)
    rc = websock_config_set_io_threads(cfg, io_threads);
  if (!rc)
    rc = websock_config_set_agents(cfg, agents);
  if (!rc)
    rc = websock_config_set_agent_batch(cfg, agent_batch);
  if (!rc)
    rc = websock_config_set_spread(cfg, spread);
  if (!rc)
    rc = websock_config_set_reuse_port(cfg, reuse_port);
  if (!rc && deflate)
    rc = websock_config_set_deflate(cfg, deflate, 0, 0, 1, 64);
  if (!rc && max_message)
    rc = websock_config_set_max_message_size(cfg, max_message);
  if (!rc && tls_cert)
    rc = websock_config_set_tls(cfg, tls_cert, tls_key);
  if (!rc)
    rc = apply_limits(cfg);
  if (!rc)
    rc = websock_config_set_event_callback(cfg, on_event, NULL);
  if (rc) {
    fprintf(stderr, "echo_server: bad option: %s\n", websock_strerror(rc));
    return 2;
  }
  rc = websock_server_new(&srv, cfg);
  websock_config_free(cfg);
  if (!rc)
    rc = websock_server_start(srv);
  if (rc) {
    const char *why = rc == WEBSOCK_ERR_TLS ? websock_tls_last_error()
                      : srv ? websock_server_last_error(srv, NULL)
                            : "";
    fprintf(stderr, "echo_server: %s%s%s\n", websock_strerror(rc),
            *why ? ": " : "", why);
    websock_server_free(srv);
    return 1;
  }
  printf("listening on %d\n", websock_server_port(srv));
  fflush(stdout);

  int sig;
  sigwait(&sigs, &sig);
  websock_server_stop(srv);
  websock_server_join(srv);
  websock_server_free(srv);
  return 0;
}
