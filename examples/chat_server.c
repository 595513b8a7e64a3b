/* chat_server: a small chat over WebSocket on the path /chat, showing ids,
 * tags, send-by-tag and broadcast from callbacks on agent threads.
 *
 *   chat_server --port P [--host H] [--io-threads N] [--agents M]
 *               [--tls-cert FILE --tls-key FILE]   (serve wss://)
 *               [--web FILE]   (serve FILE, e.g. examples/web/chat.html, at /)
 *               [--idle-timeout MS] [--ping-interval MS]
 *               [--max-connections N] [--max-outbound BYTES]
 *               [--slow-consumer-timeout MS]   (limits; see config.h)
 *               [--no-deflate]   (permessage-deflate is on by default)
 *
 * Protocol (text messages):
 *   server -> new client:   welcome #ID
 *   /nick NAME              ok nick NAME | error nick-taken NAME
 *   /msg NAME TEXT          NAME gets "msg FROM TEXT";
 *                           sender gets ok msg NAME | error no-such-user NAME
 *   anything else           every other client gets "say FROM TEXT"
 * FROM is the sender's nick, or #ID before it has one.
 */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <websock.h>

#include "example_limits.h"

#define CHAT_LINE_MAX 4096

static void chat_reply(websock_server *srv, uint64_t id, const char *text) {
  websock_server_send(srv, id, WEBSOCK_OP_TEXT, text, strlen(text));
}

/* Splits "NAME REST" at the first space; returns NAME's length. */
static size_t chat_word(const char *s, size_t len) {
  size_t n = 0;
  while (n < len && s[n] != ' ')
    n++;
  return n;
}

static void chat_on_text(websock_server *srv, const websock_event *ev,
                         const char *s, size_t len) {
  char from[300], out[CHAT_LINE_MAX + 600];
  if (ev->tag)
    snprintf(from, sizeof from, "%s", ev->tag);
  else
    snprintf(from, sizeof from, "#%" PRIu64, ev->id);

  if (len > 6 && memcmp(s, "/nick ", 6) == 0) {
    const char *name = s + 6;
    size_t nlen = chat_word(name, len - 6);
    snprintf(out, sizeof out, "%.*s", (int)nlen, name);
    int rc = websock_server_set_tag(srv, ev->id, out);
    char reply[400];
    snprintf(reply, sizeof reply, "%s %.255s",
             rc == 0                       ? "ok nick"
             : rc == WEBSOCK_ERR_TAG_TAKEN ? "error nick-taken"
                                           : "error bad-nick",
             out);
    chat_reply(srv, ev->id, reply);
    return;
  }
  if (len > 5 && memcmp(s, "/msg ", 5) == 0) {
    const char *name = s + 5;
    size_t rest = len - 5, nlen = chat_word(name, rest);
    char to[300];
    snprintf(to, sizeof to, "%.*s", (int)(nlen < 255 ? nlen : 255), name);
    const char *text = nlen < rest ? name + nlen + 1 : "";
    int tlen = nlen < rest ? (int)(rest - nlen - 1) : 0;
    int n = snprintf(out, sizeof out, "msg %s %.*s", from, tlen, text);
    int rc = websock_server_send_tag(srv, to, WEBSOCK_OP_TEXT, out, (size_t)n);
    char reply[400];
    snprintf(reply, sizeof reply, "%s %s",
             rc == 0 ? "ok msg" : "error no-such-user", to);
    chat_reply(srv, ev->id, reply);
    return;
  }
  int n = snprintf(out, sizeof out, "say %s %.*s", from, (int)len, s);
  websock_server_broadcast(srv, WEBSOCK_OP_TEXT, out, (size_t)n, ev->id);
}

static void chat_on_event(websock_server *srv, const websock_event *ev,
                          void *user_data) {
  (void)user_data;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    char hello[64];
    snprintf(hello, sizeof hello, "welcome #%" PRIu64, ev->id);
    chat_reply(srv, ev->id, hello);
  } else if (ev->type == WEBSOCK_EVENT_MESSAGE &&
             ev->opcode == WEBSOCK_OP_TEXT) {
    size_t len = ev->length < CHAT_LINE_MAX ? ev->length : CHAT_LINE_MAX;
    chat_on_text(srv, ev, (const char *)ev->data, len);
  }
}

/* Serves the file at GET / next to the WebSocket on /chat. */
static int chat_add_page(websock_config *cfg, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return WEBSOCK_ERR_INVALID;
  }
  static char page[1 << 20];
  size_t n = fread(page, 1, sizeof page, f);
  fclose(f);
  return websock_config_add_http_route(cfg, "/", "text/html; charset=utf-8",
                                       page, n);
}

static void usage(const char *prog) {
  fprintf(stderr,
          "usage: %s --port P [--host H] [--io-threads N] [--agents M] "
          "[--tls-cert FILE --tls-key FILE] [--web FILE] "
          "[--idle-timeout MS] [--ping-interval MS] [--max-connections N] "
          "[--max-outbound BYTES] [--slow-consumer-timeout MS] "
          "[--no-deflate]\n",
          prog);
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = -1, io_threads = 1, agents = 1;
  const char *tls_cert = NULL, *tls_key = NULL, *web = NULL;
  int deflate = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--no-deflate") == 0) { /* the flag without value */
      deflate = 0;
      continue;
    }
    if (i + 1 >= argc)
      usage(argv[0]);
    const char *a = argv[i], *v = argv[++i];
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
    else if (strcmp(a, "--tls-cert") == 0)
      tls_cert = v;
    else if (strcmp(a, "--tls-key") == 0)
      tls_key = v;
    else if (strcmp(a, "--web") == 0)
      web = v;
    else
      usage(argv[0]);
  }
  if (port < 0 || !tls_cert != !tls_key)
    usage(argv[0]);

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  websock_config *cfg;
  websock_server *srv = NULL;
  int rc = websock_config_new(&cfg);
  if (!rc)
    rc = websock_config_set_listen(cfg, host, port);
  if (!rc)
    rc = websock_config_set_io_threads(cfg, io_threads);
  if (!rc)
    rc = websock_config_set_agents(cfg, agents);
  if (!rc && tls_cert)
    rc = websock_config_set_tls(cfg, tls_cert, tls_key);
  if (!rc)
    rc = websock_config_add_ws_path(cfg, "/chat");
  /* Chat lines are text that compresses well; one compressor per I/O
   * thread, so clients cost no compressor memory of their own. */
  if (!rc && deflate)
    rc = websock_config_set_deflate(cfg, WEBSOCK_DEFLATE_SHARED, 0, 0, 1, 64);
  if (!rc && web)
    rc = chat_add_page(cfg, web);
  if (!rc)
    rc = apply_limits(cfg);
  if (!rc)
    rc = websock_config_set_event_callback(cfg, chat_on_event, NULL);
  if (!rc)
    rc = websock_server_new(&srv, cfg);
  websock_config_free(cfg);
  if (!rc)
    rc = websock_server_start(srv);
  if (rc) {
    const char *why = rc == WEBSOCK_ERR_TLS ? websock_tls_last_error()
                      : srv ? websock_server_last_error(srv, NULL)
                            : "";
    fprintf(stderr, "chat_server: %s%s%s\n", websock_strerror(rc),
            *why ? ": " : "", why);
    websock_server_free(srv);
    return 1;
  }
  printf("listening on %d\n", websock_server_port(srv));
  fflush(stdout);
  int sig;
  sigwait(&sigs, &sig);
  websock_server_free(srv);
  return 0;
}
