/* Name resolution for outgoing connections, off the loops: getaddrinfo()
 * blocks for as long as DNS takes, so one helper thread per server runs
 * the lookups in turn and posts each answer to the asking connection's
 * loop in a RESOLVED job. The thread starts with the first lookup and is
 * joined after the loops. Layer: net. */
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "dial.h"
#include "util/alloc.h"

typedef struct websock__resolver {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  websock__job *head, *tail; /* lookups waiting, linked by node.next */
  int stop;
} websock__resolver;

/* Looks up the "host\0port" in |j|'s buffer and posts the answer. */
static void resolver_answer(websock__job *j) {
  const char *host = (const char *)j->buf.data;
  const char *port = host + strlen(host) + 1;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int gai = getaddrinfo(host, port, &hints, &res);
  j->ptr = gai == 0 ? res : NULL;
  j->arg = gai == 0 && !res ? EAI_NONAME : gai;
  websock__loop_post(websock__loop_of(j->client), j);
}

static void *resolver_main(void *arg) {
  websock__resolver *r = arg;
  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (!r->head && !r->stop)
      pthread_cond_wait(&r->cv, &r->mu);
    websock__job *j = r->head;
    if (!j)
      break; /* stopped with nothing left */
    r->head = (websock__job *)(void *)j->node.next;
    if (!r->head)
      r->tail = NULL;
    int stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    if (stop)
      websock__job_release(j); /* its connection ended with the loops */
    else
      resolver_answer(j);
    pthread_mutex_lock(&r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* The server's resolver, started on first use. */
static websock__resolver *resolver_get(websock__net *n) {
  pthread_mutex_lock(&n->dial_mu);
  websock__resolver *r = n->resolver;
  if (!r && (r = websock__calloc(1, sizeof *r))) {
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    /* Signals go to the application's threads, never to this one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, resolver_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
      pthread_cond_destroy(&r->cv);
      pthread_mutex_destroy(&r->mu);
      websock__free(r);
      r = NULL;
    } else {
      n->resolver = r;
    }
  }
  pthread_mutex_unlock(&n->dial_mu);
  return r;
}

int websock__resolver_ask(websock__conn *c, const char *host, uint16_t port) {
  websock__net *n = c->loop->net;
  websock__resolver *r = resolver_get(n);
  websock__job *j = r ? websock__pool_get(&n->sched->pool) : NULL;
  if (!j)
    return -1;
  char ps[8];
  int pl = snprintf(ps, sizeof ps, "%u", (unsigned)port);
  size_t hl = strlen(host);
  j->buf.len = 0;
  if (websock__buf_append(&j->buf, host, hl + 1) < 0 ||
      websock__buf_append(&j->buf, ps, (size_t)pl + 1) < 0) {
    websock__job_release(j);
    return -1;
  }
  j->kind = WEBSOCK__JOB_RESOLVED;
  websock__client_ref(&c->base);
  j->client = &c->base;
  j->node.next = NULL;
  pthread_mutex_lock(&r->mu);
  if (r->tail)
    r->tail->node.next = &j->node;
  else
    r->head = j;
  r->tail = j;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return 0;
}

void websock__resolver_join(websock__net *n) {
  pthread_mutex_lock(&n->dial_mu);
  websock__resolver *r = n->resolver;
  pthread_mutex_unlock(&n->dial_mu);
  if (!r)
    return;
  pthread_mutex_lock(&r->mu);
  r->stop = 1;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->thread, NULL);
  pthread_mutex_lock(&n->dial_mu);
  n->resolver = NULL;
  pthread_mutex_unlock(&n->dial_mu);
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  websock__free(r);
}
