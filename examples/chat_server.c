/* chat_server: a small chat over WebSocket on the path /chat, showing ids,
 * tags, send-by-tag, topics and broadcast from callbacks on agent threads,
 * on one server or on every node of a cluster through Redis.
 *
 *   chat_server --port P [--host H] [--io-threads N] [--agents M]
 *               [--tls-cert FILE --tls-key FILE]   (serve wss://)
 *               [--web FILE]   (serve FILE, e.g. examples/web/chat.html, at /)
 *               [--idle-timeout MS] [--ping-interval MS]
 *               [--max-connections N] [--max-outbound BYTES]
 *               [--slow-consumer-timeout MS]   (limits; see config.h)
 *               [--no-deflate]   (permessage-deflate is on by default)
 *               [--redis URL [--node N] [--cluster-ttl MS]]
 *
 * --redis redis://[:password@]host[:port][/db] makes the server a node of
 * the cluster of every chat server on that Redis: nicks are unique, and
 * /msg, rooms and say reach clients on every node. --node N (1..1023) is
 * its node number, 0 (the default) draws a free one from Redis at start;
 * --cluster-ttl MS is how soon a node killed without a word loses its
 * nicks (within MS + MS/10; default 9000).
 *
 * Protocol (text messages), the same on every node:
 *   server -> new client:   welcome #ID
 *   /nick NAME              ok nick NAME | error nick-taken NAME
 *                           | error cluster-down NAME (Redis unreachable)
 *                           | error bad-nick NAME; a refused /nick keeps
 *                           the nick of before. On a cluster the answer
 *                           may wait for Redis to settle the claim; till
 *                           then FROM stays the nick of before, and a
 *                           /nick sent meanwhile waits its turn: every
 *                           /nick is answered once, in the order sent
 *   (unasked, on a cluster) error nick-lost NAME: the client's nick NAME
 *                           went to another client (while Redis was
 *                           away)
 *   /msg NAME TEXT          NAME, on whichever node, gets "msg FROM TEXT";
 *                           sender gets ok msg NAME | error no-such-user
 *                           NAME | error cluster-down NAME
 *   /join ROOM              ok join ROOM (ROOM: a topic, cluster-wide)
 *   /leave ROOM             ok leave ROOM
 *   /room ROOM TEXT         every other member of ROOM gets
 *                           "room ROOM FROM TEXT"; the sender ok room ROOM
 *                           | error not-in-room ROOM
 *   anything else           every other client gets "say FROM TEXT"
 * FROM is the sender's confirmed nick, or #ID before it has one (so a
 * nick that lost a race is never shown). One sender's lines reach each
 * client in the order sent, also across nodes.
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
#define CHAT_NICK_MAX 255 /* a tag's limit */

/* A "/nick NAME" line not answered yet: on a cluster, one waiting for
 * Redis or for the answer of the one before. */
typedef struct chat_ask {
  struct chat_ask *next; /* the one sent after it */
  char name[];           /* the nick asked for */
} chat_ask;

/* A client's chat state, its user data: its rooms, so "/room" can tell a
 * member from a stranger (the server's topics answer publish, not
 * membership), its confirmed nick and its /nick lines not answered yet.
 * Only that client's own events touch it, and one client's events never
 * run at once, so it needs no lock. */
typedef struct chat_client {
  char *rooms[CHAT_ROOMS_MAX];
  int nrooms;
  char nick[CHAT_NICK_MAX + 1]; /* confirmed nick, "" before one */
  chat_ask *asks, *last_ask;    /* in the order sent; the first one's
                                   claim is in flight in Redis, the
                                   others wait for its answer */
} chat_client;

static int chat_room_index(const chat_client *cc, const char *room) {
  for (int i = 0; cc && i < cc->nrooms; i++)
    if (strcmp(cc->rooms[i], room) == 0)
      return i;
  return -1;
}

static void chat_client_free(chat_client *cc) {
  if (!cc)
    return;
  for (int i = 0; i < cc->nrooms; i++)
    free(cc->rooms[i]);
  while (cc->asks) {
    chat_ask *next = cc->asks->next;
    free(cc->asks);
    cc->asks = next;
  }
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

static void chat_nick_reply(websock_server *srv, uint64_t id, int rc,
                            const char *name) {
  char reply[400];
  snprintf(reply, sizeof reply, "%s %.255s",
           rc == 0                       ? "ok nick"
           : rc == WEBSOCK_ERR_TAG_TAKEN ? "error nick-taken"
           : rc == WEBSOCK_ERR_CLUSTER   ? "error cluster-down"
                                         : "error bad-nick",
           name);
  chat_reply(srv, id, reply);
}

/* Answers the first /nick waiting (|rc|: its set_tag's code or Redis'
 * answer), then asks for the next ones in turn until one waits for Redis:
 * one claim at a time, so every /nick is answered as on one server, in
 * order, and a refused one leaves the nick of before. */
static void chat_nick_next(websock_server *srv, uint64_t id, chat_client *cc,
                           int rc) {
  for (;;) {
    chat_ask *a = cc->asks;
    if (rc == 0)
      snprintf(cc->nick, sizeof cc->nick, "%s", a->name); /* confirmed */
    chat_nick_reply(srv, id, rc, a->name);
    cc->asks = a->next;
    free(a);
    if (!cc->asks)
      return;
    rc = websock_server_set_tag(srv, id, cc->asks->name);
    if (rc == WEBSOCK_PENDING)
      return;
  }
}

/* "/nick NAME" (|len| bytes at |name|). */
static void chat_on_nick(websock_server *srv, uint64_t id, chat_client *cc,
                         const char *name, size_t len) {
  chat_ask *a = malloc(sizeof *a + len + 1);
  if (!a) { /* no memory to answer it in its turn: it cannot chat */
    websock_server_close(srv, id, WEBSOCK_CLOSE_INTERNAL_ERROR, NULL);
    return;
  }
  a->next = NULL;
  memcpy(a->name, name, len);
  a->name[len] = '\0';
  if (cc->asks) { /* a claim is in flight: this one waits its turn */
    cc->last_ask->next = a;
    cc->last_ask = a;
    return;
  }
  cc->asks = cc->last_ask = a;
  /* (set_tag refuses an empty or too long nick: bad-nick.) */
  int rc = websock_server_set_tag(srv, id, a->name);
  if (rc != WEBSOCK_PENDING)
    chat_nick_next(srv, id, cc, rc);
}

/* A TAG event: Redis' answer to the claim in flight, or a nick lost
 * unasked. */
static void chat_on_tag(websock_server *srv, const websock_event *ev,
                        chat_client *cc) {
  const chat_ask *a = cc->asks;
  if (a && strlen(a->name) == ev->length &&
      memcmp(a->name, ev->data, ev->length) == 0) {
    /* On a refusal the connection has its nick of before again, still
     * the confirmed one. */
    chat_nick_next(srv, ev->id, cc, ev->status);
    return;
  }
  if (ev->status == 0)
    return;
  /* A nick it had went to another node's client while Redis was away. */
  char name[CHAT_NICK_MAX + 1], reply[400];
  size_t n = ev->length < CHAT_NICK_MAX ? ev->length : CHAT_NICK_MAX;
  memcpy(name, ev->data, n);
  name[n] = '\0';
  if (strcmp(cc->nick, name) == 0)
    cc->nick[0] = '\0';
  snprintf(reply, sizeof reply, "error nick-lost %s", name);
  chat_reply(srv, ev->id, reply);
}

static void chat_on_text(websock_server *srv, const websock_event *ev,
                         chat_client *cc, const char *s, size_t len) {
  char from[300], out[CHAT_LINE_MAX + 600];
  if (cc->nick[0])
    snprintf(from, sizeof from, "%s", cc->nick);
  else
    snprintf(from, sizeof from, "#%" PRIu64, ev->id);

  if (len > 6 && memcmp(s, "/nick ", 6) == 0) {
    const char *name = s + 6;
    chat_on_nick(srv, ev->id, cc, name, chat_word(name, len - 6));
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
    /* To a nick on another node it crosses through Redis. */
    int rc = websock_server_send_tag(srv, to, WEBSOCK_OP_TEXT, out, (size_t)n);
    char reply[400];
    snprintf(reply, sizeof reply, "%s %s",
             rc == 0                     ? "ok msg"
             : rc == WEBSOCK_ERR_CLUSTER ? "error cluster-down"
                                         : "error no-such-user",
             to);
    chat_reply(srv, ev->id, reply);
    return;
  }
  if ((len >= 6 &&
       (memcmp(s, "/join ", 6) == 0 || memcmp(s, "/room ", 6) == 0)) ||
      (len >= 7 && memcmp(s, "/leave ", 7) == 0)) {
    chat_on_room(srv, ev, s, len, from);
    return;
  }
  /* On a cluster a broadcast reaches every node's clients. */
  int n = snprintf(out, sizeof out, "say %s %.*s", from, (int)len, s);
  websock_server_broadcast(srv, WEBSOCK_OP_TEXT, out, (size_t)n, ev->id);
}

static void chat_on_event(websock_server *srv, const websock_event *ev,
                          void *user_data) {
  (void)user_data;
  chat_client *cc = ev->user_data;
  if (ev->type == WEBSOCK_EVENT_OPEN) {
    cc = calloc(1, sizeof *cc);
    if (!cc) { /* no memory for its state: it cannot chat */
      websock_server_close(srv, ev->id, WEBSOCK_CLOSE_INTERNAL_ERROR, NULL);
      return;
    }
    if (websock_server_set_user_data(srv, ev->id, cc)) {
      free(cc); /* it ended already */
      return;
    }
    char hello[64];
    snprintf(hello, sizeof hello, "welcome #%" PRIu64, ev->id);
    chat_reply(srv, ev->id, hello);
  } else if (ev->type == WEBSOCK_EVENT_CLOSE) {
    chat_client_free(cc); /* its topics and tag went with it */
  } else if (!cc) {
    return;
  } else if (ev->type == WEBSOCK_EVENT_TAG) {
    chat_on_tag(srv, ev, cc);
  } else if (ev->type == WEBSOCK_EVENT_MESSAGE &&
             ev->opcode == WEBSOCK_OP_TEXT) {
    size_t len = ev->length < CHAT_LINE_MAX ? ev->length : CHAT_LINE_MAX;
    chat_on_text(srv, ev, cc, (const char *)ev->data, len);
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
          "[--no-deflate] [--redis URL [--node N] [--cluster-ttl MS]]\n",
          prog);
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = -1, io_threads = 1, agents = 1;
  const char *tls_cert = NULL, *tls_key = NULL, *web = NULL;
  int deflate = 1;
  const char *redis = NULL;
  int node = 0, ttl = 0;
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
    else if (strcmp(a, "--redis") == 0)
      redis = v;
    else if (strcmp(a, "--node") == 0)
      node = atoi(v);
    else if (strcmp(a, "--cluster-ttl") == 0)
      ttl = atoi(v);
    else
      usage(argv[0]);
  }
  if (port < 0 || !tls_cert != !tls_key || (!redis && (node || ttl)) ||
      node < 0 || ttl < 0)
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
  /* A node of the cluster of every chat server on this Redis (node 0: a
   * number drawn from Redis at start). */
  if (!rc && redis)
    rc = websock_config_set_cluster(cfg, redis, node);
  if (!rc && redis && ttl)
    rc = websock_config_set_cluster_ttl(cfg, (unsigned)ttl);
  if (rc == WEBSOCK_ERR_INVALID && redis)
    fprintf(stderr, "chat_server: check --redis redis://[:password@]host"
                    "[:port][/db], --node 0..1023, --cluster-ttl "
                    "100..600000\n");
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
  if (redis) /* (not the URL: it may hold a password) */
    fprintf(stderr, "chat_server: cluster node %d\n",
            websock_server_cluster_node(srv));
  int sig;
  sigwait(&sigs, &sig);
  websock_server_free(srv);
  return 0;
}
