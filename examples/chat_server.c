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
 *   /join ROOM              ok join ROOM (ROOM: a topic of the server)
 *   /leave ROOM             ok leave ROOM
 *   /room ROOM TEXT         every other member of ROOM gets
 *                           "room ROOM FROM TEXT"; the sender ok room ROOM
 *                           | error not-in-room ROOM
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
#define CHAT_ROOMS_MAX 64 /* rooms one client may be in */

/* The rooms a client is in, so "/room" can tell a member from a stranger
 * (the server's topics answer publish, not membership). Its user data:
 * only that client's own handler touches it, and one client's events never
 * run at once, so it needs no lock. */
typedef struct chat_client {
  char *rooms[CHAT_ROOMS_MAX];
  int nrooms;
} chat_client;

static int chat_room_index(const chat_client *cc, const char *room) {
  for (int i = 0; cc && i < cc->nrooms; i++)
    if (strcmp(cc->rooms[i], room) == 0)
      return i;
  return -1;
}

static void chat_client_free(chat_client *cc) {
  for (int i = 0; cc && i < cc->nrooms; i++)
    free(cc->rooms[i]);
  free(cc);
}

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

/* "/join ROOM", "/leave ROOM" and "/room ROOM TEXT". */
static void chat_on_room(websock_server *srv, const websock_event *ev,
                         const char *s, size_t len, const char *from) {
  chat_client *cc = ev->user_data;
  int cmd = s[1]; /* 'j', 'l' or 'r' */
  size_t skip = cmd == 'l' ? 7 : 6;
  const char *name = s + skip;
  size_t rest = len - skip, nlen = chat_word(name, rest);
  char room[256], reply[400], out[CHAT_LINE_MAX + 600];
  if (nlen == 0 || nlen > 255) {
    chat_reply(srv, ev->id, "error bad-room");
    return;
  }
  snprintf(room, sizeof room, "%.*s", (int)nlen, name);
  int at = chat_room_index(cc, room);
  if (cmd == 'j') {
    int rc = at >= 0 ? 0 : websock_server_subscribe(srv, ev->id, room, nlen);
    char *copy = at >= 0 || rc ? NULL : strdup(room);
    if (copy && cc && cc->nrooms < CHAT_ROOMS_MAX) {
      cc->rooms[cc->nrooms++] = copy;
    } else if (at < 0 && !rc) { /* no room to remember it: undo */
      free(copy);
      websock_server_unsubscribe(srv, ev->id, room, nlen);
      rc = WEBSOCK_ERR_NOMEM;
    }
    snprintf(reply, sizeof reply, "%s %s",
             rc ? "error too-many-rooms" : "ok join", room);
  } else if (cmd == 'l') {
    if (at >= 0) {
      websock_server_unsubscribe(srv, ev->id, room, nlen);
      free(cc->rooms[at]);
      cc->rooms[at] = cc->rooms[--cc->nrooms];
    }
    snprintf(reply, sizeof reply, "ok leave %s", room);
  } else if (at < 0) {
    snprintf(reply, sizeof reply, "error not-in-room %s", room);
  } else {
    const char *text = nlen < rest ? name + nlen + 1 : "";
    int tlen = nlen < rest ? (int)(rest - nlen - 1) : 0;
    int n =
        snprintf(out, sizeof out, "room %s %s %.*s", room, from, tlen, text);
    websock_server_publish(srv, room, nlen, WEBSOCK_OP_TEXT, out, (size_t)n,
                           ev->id);
    snprintf(reply, sizeof reply, "ok room %s", room);
  }
  chat_reply(srv, ev->id, reply);
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
  if ((len >= 6 &&
       (memcmp(s, "/join ", 6) == 0 || memcmp(s, "/room ", 6) == 0)) ||
      (len >= 7 && memcmp(s, "/leave ", 7) == 0)) {
    chat_on_room(srv, ev, s, len, from);
    return;
  }
  int n = snprintf(out, sizeof out, "say %s %.*s", from, (int)len, s);
  websock_server_broadcast(srv, WEBSOCK_OP_TEXT, out, (size_t)n, ev->id);
}

static void chat_on_event(websock_server *srv, const websock_event *ev,
                          void *user_data) {
  (void)user_data;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    /* Its rooms (NULL without memory: it then cannot join any). */
    websock_server_set_user_data(srv, ev->id, calloc(1, sizeof(chat_client)));
    char hello[64];
    snprintf(hello, sizeof hello, "welcome #%" PRIu64, ev->id);
    chat_reply(srv, ev->id, hello);
  } else if (ev->type == WEBSOCK_EVENT_CLOSE) {
    chat_client_free(ev->user_data); /* its topics went with it */
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
