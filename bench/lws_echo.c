/* lws_echo: WebSocket echo server on libwebsockets, written the way its
 * documentation shows (per-session queue, lws_callback_on_writable,
 * lws_write with LWS_PRE headroom). Benchmark comparison row. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#define MAX_MESSAGE (16u << 20)

typedef struct msg {
  struct msg *next;
  size_t len;
  bool binary;
  unsigned char data[]; /* LWS_PRE bytes of headroom, then the payload */
} msg_t;

typedef struct session {
  msg_t *head, *tail; /* complete messages waiting to be echoed */
  unsigned char *cur; /* message being assembled (with LWS_PRE) */
  size_t cur_len, cur_cap;
} session_t;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static void session_clear(session_t *s) {
  while (s->head) {
    msg_t *m = s->head;
    s->head = m->next;
    free(m);
  }
  s->tail = NULL;
  free(s->cur);
  s->cur = NULL;
  s->cur_len = s->cur_cap = 0;
}

/* Appends a received chunk to the message being assembled. */
static int append_chunk(session_t *s, const void *in, size_t len) {
  if (s->cur_len + len > MAX_MESSAGE)
    return -1;
  if (s->cur_len + len > s->cur_cap) {
    size_t cap = s->cur_cap ? s->cur_cap : 256;
    while (cap < s->cur_len + len)
      cap *= 2;
    unsigned char *p = realloc(s->cur, cap);
    if (!p)
      return -1;
    s->cur = p;
    s->cur_cap = cap;
  }
  memcpy(s->cur + s->cur_len, in, len);
  s->cur_len += len;
  return 0;
}

static int queue_message(session_t *s, const void *in, size_t len,
                         bool binary) {
  msg_t *m = malloc(sizeof *m + LWS_PRE + len);
  if (!m)
    return -1;
  m->next = NULL;
  m->len = len;
  m->binary = binary;
  if (len)
    memcpy(m->data + LWS_PRE, in, len);
  if (s->tail)
    s->tail->next = m;
  else
    s->head = m;
  s->tail = m;
  return 0;
}

static int echo_cb(struct lws *wsi, enum lws_callback_reasons reason,
                   void *user, void *in, size_t len) {
  session_t *s = user;
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED:
    memset(s, 0, sizeof *s);
    break;
  case LWS_CALLBACK_RECEIVE: {
    bool first = lws_is_first_fragment(wsi);
    bool last =
        lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    bool binary = lws_frame_is_binary(wsi);
    if (first && last && !s->cur_len) {
      /* the common case: the whole message arrived in one callback */
      if (queue_message(s, in, len, binary))
        return -1;
    } else {
      if (append_chunk(s, in, len))
        return -1;
      if (!last)
        break;
      if (queue_message(s, s->cur, s->cur_len, binary))
        return -1;
      s->cur_len = 0;
    }
    lws_callback_on_writable(wsi);
    break;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE: {
    msg_t *m = s->head;
    if (!m)
      break;
    int n = lws_write(wsi, m->data + LWS_PRE, m->len,
                      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    if (n < (int)m->len)
      return -1;
    s->head = m->next;
    if (!s->head)
      s->tail = NULL;
    free(m);
    if (s->head)
      lws_callback_on_writable(wsi);
    break;
  }
  case LWS_CALLBACK_CLOSED:
    session_clear(s);
    break;
  default:
    break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {
    {"echo", echo_cb, sizeof(session_t), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv) {
  int port = 0;
  static const struct option lo[] = {
      {"port", 1, 0, 'p'},
      {"help", 0, 0, 'h'},
      {0, 0, 0, 0},
  };
  int o;
  while ((o = getopt_long(argc, argv, "p:", lo, NULL)) != -1) {
    if (o == 'p') {
      port = atoi(optarg);
    } else {
      fprintf(stderr, "usage: lws_echo --port P\n");
      return o == 'h' ? 0 : 2;
    }
  }
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "lws_echo: --port required\n");
    return 2;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = "127.0.0.1";
  info.protocols = protocols; /* first protocol is the default one */
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
  struct lws_context *ctx = lws_create_context(&info);
  if (!ctx) {
    fprintf(stderr, "lws_echo: lws_create_context failed\n");
    return 1;
  }
  printf("listening on %d\n", port);
  fflush(stdout);
  int n = 0;
  while (n >= 0 && !interrupted)
    n = lws_service(ctx, 0);
  lws_context_destroy(ctx);
  return 0;
}
