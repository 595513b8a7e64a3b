/* echo_client: connects to a WebSocket server and echoes every message
 * back with its type (text stays text, binary stays binary). Conformance
 * checks drive it (the Autobahn|Testsuite's fuzzingserver), so it stays
 * this small.
 *
 *   echo_client [--deflate] [--ca FILE] [--insecure] URL
 *
 * It exits 0 once the server has closed the connection, 1 with the reason
 * when it could not connect, 2 on bad arguments. --deflate offers
 * permessage-deflate (one compressor per I/O thread, reset after every
 * message, and the server asked to reset its own). --ca FILE trusts the CA
 * certificates in FILE for wss:// (default: the system's); --insecure
 * checks no certificate at all (tests only).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <websock.h>

static atomic_int opened;
static atomic_int exit_code = 1;

static void on_event(websock_server *srv, const websock_event *ev,
                     void *user_data) {
  (void)user_data;
  switch (ev->type) {
  case WEBSOCK_EVENT_OPEN:
    atomic_store(&opened, 1);
    break;
  case WEBSOCK_EVENT_MESSAGE:
    websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
    break;
  case WEBSOCK_EVENT_CLOSE:
    if (!atomic_load(&opened))
      fprintf(stderr, "echo_client: cannot connect: %.*s\n", (int)ev->length,
              (const char *)ev->data);
    atomic_store(&exit_code, atomic_load(&opened) ? 0 : 1);
    websock_server_stop(srv);
    break;
  default:
    break;
  }
}

static void usage(const char *prog) {
  fprintf(stderr, "usage: %s [--deflate] [--ca FILE] [--insecure] URL\n", prog);
  exit(2);
}

int main(int argc, char **argv) {
  const char *ca = NULL, *url = NULL;
  int insecure = 0, deflate = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
      ca = argv[++i];
    else if (strcmp(argv[i], "--insecure") == 0)
      insecure = 1;
    else if (strcmp(argv[i], "--deflate") == 0)
      deflate = 1;
    else if (argv[i][0] != '-' && !url)
      url = argv[i];
    else
      usage(argv[0]);
  }
  if (!url)
    usage(argv[0]);
  websock_config *cfg = NULL;
  websock_server *srv = NULL;
  int rc = websock_config_new(&cfg);
  if (!rc)
    rc = websock_config_set_client_only(cfg, 1);
  if (!rc)
    rc = websock_config_set_event_callback(cfg, on_event, NULL);
  /* Conformance suites send messages of up to 16 MiB. */
  if (!rc)
    rc = websock_config_set_max_message_size(cfg, 64u << 20);
  /* Compress everything of 64 bytes or more, the library's default. */
  if (!rc && deflate)
    rc = websock_config_set_deflate(cfg, WEBSOCK_DEFLATE_SHARED, 15, 8, 1, 64);
  if (!rc)
    rc = websock_server_new(&srv, cfg);
  websock_config_free(cfg);
  if (!rc)
    rc = websock_server_start(srv);
  if (rc) {
    fprintf(stderr, "echo_client: %s\n", websock_strerror(rc));
    websock_server_free(srv);
    return 1;
  }
  websock_connect_options *o = websock_connect_options_new();
  if (!o) {
    fprintf(stderr, "echo_client: out of memory\n");
    websock_server_free(srv);
    return 1;
  }
  if (ca)
    websock_connect_options_set_tls_ca_file(o, ca);
  if (insecure)
    websock_connect_options_set_tls_verify(o, 0);
  websock_connect_options_set_deflate(o, deflate);
  uint64_t id;
  rc = websock_server_connect(srv, url, o, &id);
  websock_connect_options_free(o);
  if (rc) {
    fprintf(stderr, "echo_client: %s: %s\n", websock_strerror(rc),
            websock_connect_error());
    websock_server_free(srv);
    return 1;
  }
  websock_server_join(srv);
  websock_server_free(srv);
  return atomic_load(&exit_code);
}
