/* The cluster link (cluster.h): a thread with its own event base and two
 * hiredis connections to Redis, one for commands (PUBLISH, the tag
 * scripts) and one in subscribe mode. The tags are tags.c's.
 *
 * Channels (P is the prefix): "P:all" broadcasts, "P:t:<topic>" publishes
 * (subscribed while a loop of ours has a member of the topic), "P:n:<node>"
 * sends and closes to one node's connections, "P:tags" tag changes and
 * beats. Messages are wire.h's, with the id the one to skip (publish,
 * broadcast) or to reach (send). A node drops what it published itself:
 * it delivered that locally already.
 *
 * Ownership: the link, its Redis contexts, its topic counts and its timers
 * belong to its thread. Other threads only post jobs to its mailbox, read
 * its atomics and (tags.c) read the directory under its lock.
 * Layer: cluster. */
#include "cluster_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
/* The adapter is a header of static functions written without our
 * warnings in mind. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#include <hiredis/adapters/libevent.h>
#pragma GCC diagnostic pop

#include "util/alloc.h"

#define CLUSTER_RETRY_FIRST_MS 100
#define CLUSTER_RETRY_MOST_MS 5000
/* The most bytes hiredis may hold unwritten for Redis: a node publishing
 * faster than Redis takes it drops (and counts) beyond this instead of
 * growing hiredis' output buffer without end. */
#define CLUSTER_OBUF_MAX (32u << 20)

/* How long a stopping node waits for Redis to take its leave. */
#define CLUSTER_LEAVE_MS 500

/* A topic some loop of ours has members in: subscribed while count > 0. */
typedef struct cluster_topic {
  websock__hnode node;
  unsigned count; /* loops with members */
  size_t len;
  uint8_t name[];
} cluster_topic;

/* ---- set-up ----------------------------------------------------------- */

int websock__cluster_url_check(const char *url) {
  websock__cluster_url u;
  const char *why;
  return websock__cluster_url_parse(url, &u, &why);
}

/* FNV-1a over a topic name's bytes. */
static size_t cluster_hash_name(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return (size_t)h;
}

static size_t cluster_topic_hash(const websock__hnode *n) {
  const cluster_topic *t = (const cluster_topic *)(const void *)n;
  return cluster_hash_name(t->name, t->len);
}

typedef struct cluster_key {
  const void *name;
  size_t len;
} cluster_key;

static int cluster_topic_eq(const websock__hnode *n, const void *key) {
  const cluster_topic *t = (const cluster_topic *)(const void *)n;
  const cluster_key *k = key;
  return t->len == k->len && memcmp(t->name, k->name, k->len) == 0;
}

static void cluster_topic_ref(void *ud, const void *name, size_t len,
                              int delta);

int websock__cluster_new(const websock__settings *st, websock__net *n,
                         websock__cluster **out) {
  *out = NULL;
  websock__cluster *c = websock__calloc(1, sizeof *c);
  if (!c)
    return WEBSOCK_ERR_NOMEM;
  c->net = n;
  c->sched = n->sched;
  c->node = (unsigned)st->cluster_node;
  c->wake_fd = -1;
  c->ttl_ms = st->cluster_ttl_ms ? st->cluster_ttl_ms : CLUSTER_TTL_DEFAULT_MS;
  snprintf(c->prefix, sizeof c->prefix, "%s",
           st->cluster_prefix ? st->cluster_prefix : "websock");
  const char *why;
  if (websock__cluster_url_parse(st->cluster_url, &c->url, &why) < 0 ||
      websock__hmap_init(&c->topics, 16, cluster_topic_hash) < 0 ||
      websock__cluster_tags_init(c) < 0) {
    /* (The config checked the URL: only memory can fail here.) */
    websock__cluster_free(c);
    return WEBSOCK_ERR_NOMEM;
  }
  for (unsigned i = 0; i < n->nloops; i++) {
    n->loops[i].topics.on_topic = cluster_topic_ref;
    n->loops[i].topics.on_topic_ud = c;
  }
  *out = c;
  return 0;
}

void websock__cluster_free(websock__cluster *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->topics.nbuckets; i++) {
    websock__hnode *h = c->topics.buckets[i];
    while (h) {
      websock__hnode *next = h->next;
      websock__free(h);
      h = next;
    }
  }
  websock__hmap_free(&c->topics);
  websock__cluster_tags_free(c);
  websock__free(c);
}

/* ---- the Redis connections -------------------------------------------- */

static void cluster_connect(websock__cluster *c);

/* Either connection failed or ended: both go, and a retry is set. */
static void cluster_down(websock__cluster *c) {
  atomic_store(&c->up, 0);
  /* What Redis had not taken is lost with the connection: counted. */
  atomic_fetch_add_explicit(&c->dropped, c->unanswered, memory_order_relaxed);
  c->unanswered = 0;
  redisAsyncContext *pub = c->pub, *sub = c->sub;
  c->pub = c->sub = NULL;
  c->pub_ok = c->sub_ok = 0;
  /* (A context whose disconnect callback is running is freed by hiredis
   * after it returns; its data pointer is cleared so it is not freed
   * twice.) */
  if (pub && pub->data) {
    pub->data = NULL;
    redisAsyncFree(pub);
  }
  if (sub && sub->data) {
    sub->data = NULL;
    redisAsyncFree(sub);
  }
  if (atomic_load(&c->quit))
    return;
  unsigned ms = c->retry_ms ? c->retry_ms : CLUSTER_RETRY_FIRST_MS;
  c->retry_ms = ms * 2 > CLUSTER_RETRY_MOST_MS ? CLUSTER_RETRY_MOST_MS : ms * 2;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(&c->retry_ev, &tv);
}

static void cluster_on_disconnect(const redisAsyncContext *ac, int status) {
  (void)status;
  websock__cluster *c = ac->data;
  if (!c)
    return; /* we freed it ourselves */
  /* hiredis frees |ac| after this returns. */
  if (ac == c->pub) {
    c->pub->data = NULL;
    c->pub = NULL;
  } else if (ac == c->sub) {
    c->sub->data = NULL;
    c->sub = NULL;
  }
  cluster_down(c);
}

/* Subscribes |sub| to a channel; messages come to cluster_on_message. */
static void cluster_on_message(redisAsyncContext *ac, void *reply, void *ud);

int websock__cluster_channel(const websock__cluster *c, char *ch,
                             const char *kind, const void *name, size_t len) {
  int n = snprintf(ch, CLUSTER_CHANNEL_MAX + 1, "%s:%s", c->prefix, kind);
  if (n < 0 || (size_t)n + len > CLUSTER_CHANNEL_MAX)
    return -1;
  memcpy(ch + n, name, len);
  ch[(size_t)n + len] = 0;
  return n + (int)len;
}

void websock__cluster_subscribe(websock__cluster *c, const char *kind,
                                const void *name, size_t len, int on) {
  char ch[CLUSTER_CHANNEL_MAX + 1];
  int n = websock__cluster_channel(c, ch, kind, name, len);
  if (!c->sub || !c->sub_ok || n < 0)
    return;
  redisAsyncCommand(c->sub, on ? cluster_on_message : NULL, c,
                    on ? "SUBSCRIBE %b" : "UNSUBSCRIBE %b", ch, (size_t)n);
}

/* Both connections are up: the node's channels and every topic with local
 * members are subscribed again (after a Redis restart too); tags.c beats
 * and, once the number is confirmed, calls websock__cluster_ready. */
static void cluster_up(websock__cluster *c) {
  char node[16];
  int nl = snprintf(node, sizeof node, "%u", c->node);
  websock__cluster_subscribe(c, "all", "", 0, 1);
  websock__cluster_subscribe(c, "n:", node, (size_t)nl, 1);
  websock__cluster_subscribe(c, "tags", "", 0, 1);
  for (size_t i = 0; i < c->topics.nbuckets; i++)
    for (websock__hnode *h = c->topics.buckets[i]; h; h = h->next) {
      cluster_topic *t = (cluster_topic *)(void *)h;
      if (t->count)
        websock__cluster_subscribe(c, "t:", t->name, t->len, 1);
    }
  c->retry_ms = 0;
  websock__cluster_tags_up(c);
}

void websock__cluster_ready(websock__cluster *c) {
  atomic_fetch_add(&c->connects, 1);
  atomic_store(&c->up, 1);
}

static void cluster_on_connect(const redisAsyncContext *ac, int status) {
  websock__cluster *c = ac->data;
  if (!c)
    return;
  if (status != REDIS_OK) {
    /* hiredis frees |ac| itself after a failed connect. */
    ((redisAsyncContext *)ac)->data = NULL;
    if (ac == c->pub)
      c->pub = NULL;
    else if (ac == c->sub)
      c->sub = NULL;
    cluster_down(c);
    return;
  }
  if (ac == c->pub)
    c->pub_ok = 1;
  else if (ac == c->sub)
    c->sub_ok = 1;
  if (c->pub_ok && c->sub_ok)
    cluster_up(c);
}

static redisAsyncContext *cluster_context(websock__cluster *c) {
  redisAsyncContext *ac = redisAsyncConnect(c->url.host, c->url.port);
  if (!ac)
    return NULL;
  if (ac->err || redisLibeventAttach(ac, c->base) != REDIS_OK) {
    redisAsyncFree(ac);
    return NULL;
  }
  ac->data = c;
  redisAsyncSetConnectCallback(ac, cluster_on_connect);
  redisAsyncSetDisconnectCallback(ac, cluster_on_disconnect);
  /* Sent once connected, before anything else. (The database matters
   * for the tag keys; publish and subscribe span every database.) */
  const char *auth[3];
  int na = websock__cluster_url_auth(&c->url, auth);
  if (na)
    redisAsyncCommandArgv(ac, NULL, NULL, na, auth, NULL);
  if (c->url.db)
    redisAsyncCommand(ac, NULL, NULL, "SELECT %d", c->url.db);
  return ac;
}

static void cluster_connect(websock__cluster *c) {
  if (atomic_load(&c->quit) || c->pub || c->sub)
    return;
  c->pub = cluster_context(c);
  c->sub = c->pub ? cluster_context(c) : NULL;
  if (!c->pub || !c->sub)
    cluster_down(c);
}

static void cluster_on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  cluster_connect(arg);
}

/* ---- messages in ------------------------------------------------------ */

/* One message from a channel: delivered to this node's connections. */
static void cluster_deliver(websock__cluster *c, const uint8_t *p, size_t n) {
  websock__cluster_msg m;
  if (websock__cluster_msg_decode(p, n, &m) < 0)
    return;
  if (m.kind >= WEBSOCK__CM_TAG_CLAIMED) {
    websock__cluster_tags_message(c, &m);
    return;
  }
  if (m.origin == c->node && m.kind != WEBSOCK__CM_SEND)
    return; /* ours: delivered here when it was published */
  atomic_fetch_add_explicit(&c->in, 1, memory_order_relaxed);
  if (m.kind == WEBSOCK__CM_PUBLISH && m.name_len) {
    websock__net_publish(c->net, m.name, m.name_len, m.opcode, m.data, m.len,
                         m.id);
  } else if (m.kind == WEBSOCK__CM_BROADCAST) {
    websock__net_broadcast(c->net, m.opcode, m.data, m.len, m.id);
  } else if (m.kind == WEBSOCK__CM_SEND) {
    websock__client *k = websock__registry_get(&c->sched->registry, m.id);
    if (!k)
      return; /* gone meanwhile: as a local send to a gone id */
    websock__cmd cmd = {m.opcode ? WEBSOCK__CMD_SEND : WEBSOCK__CMD_CLOSE,
                        m.opcode, m.code, m.data, m.len};
    websock__net_command(c->net, k, &cmd);
    websock__client_unref(k);
  }
}

static void cluster_on_message(redisAsyncContext *ac, void *reply, void *ud) {
  (void)ac;
  websock__cluster *c = ud;
  redisReply *r = reply;
  /* ["message", channel, payload]; subscribe confirmations are skipped. */
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
      r->element[0]->type != REDIS_REPLY_STRING ||
      strcmp(r->element[0]->str, "message") != 0 ||
      r->element[2]->type != REDIS_REPLY_STRING)
    return;
  cluster_deliver(c, (const uint8_t *)r->element[2]->str,
                  (size_t)r->element[2]->len);
}

/* ---- jobs from other threads ------------------------------------------ */

/* Redis took a PUBLISH. (A reply of NULL: the connection went, and
 * cluster_down counted it with the others still unanswered.) */
static void cluster_on_published(redisAsyncContext *ac, void *reply, void *ud) {
  (void)ac;
  websock__cluster *c = ud;
  if (reply && c->unanswered)
    c->unanswered--;
}

static void cluster_run_job(websock__cluster *c, websock__job *j) {
  const uint8_t *b = j->buf.data;
  if (j->code == CLUSTER_JOB_OUT && j->buf.len >= 2) {
    size_t cl = (size_t)(b[0] << 8 | b[1]);
    if (c->pub && atomic_load(&c->up) && j->buf.len >= 2 + cl &&
        sdslen(c->pub->c.obuf) < CLUSTER_OBUF_MAX) {
      c->unanswered++;
      redisAsyncCommand(c->pub, cluster_on_published, c, "PUBLISH %b %b", b + 2,
                        cl, b + 2 + cl, j->buf.len - 2 - cl);
      atomic_fetch_add_explicit(&c->out, 1, memory_order_relaxed);
    } else {
      atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
    }
  } else if (j->code == CLUSTER_JOB_TOPIC) {
    cluster_key k = {b, j->buf.len};
    size_t h = cluster_hash_name(b, j->buf.len);
    websock__hnode **slot =
        websock__hmap_find(&c->topics, h, cluster_topic_eq, &k);
    cluster_topic *t = (cluster_topic *)(void *)*slot;
    if (!t && j->arg > 0 && (t = websock__calloc(1, sizeof *t + k.len))) {
      t->len = k.len;
      memcpy(t->name, b, k.len);
      websock__hmap_insert(&c->topics, &t->node, h);
      slot = NULL;
    }
    if (t && j->arg > 0 && t->count++ == 0)
      websock__cluster_subscribe(c, "t:", t->name, t->len, 1);
    if (t && j->arg < 0 && t->count && --t->count == 0) {
      websock__cluster_subscribe(c, "t:", t->name, t->len, 0);
      websock__hmap_remove(&c->topics, slot);
      websock__free(t);
    }
  } else if (j->code == CLUSTER_JOB_CLAIM) {
    websock__cluster_run_claim(c, j); /* keeps the job until Redis answers */
    return;
  } else if (j->code == CLUSTER_JOB_RELEASE) {
    websock__cluster_run_release(c, j);
  }
  websock__job_release(j);
}

static void cluster_on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  websock__cluster *c = arg;
  uint64_t v;
  ssize_t r = read(fd, &v, sizeof v);
  (void)r;
  websock__qnode *q = websock__mailbox_take(&c->mailbox);
  while (q) {
    websock__qnode *next = q->next;
    cluster_run_job(c, websock__job_of(q));
    q = next;
  }
  /* Stopping: the releases of the connections that ended came first. */
  if (atomic_load(&c->quit) && !c->done &&
      !evtimer_pending(&c->leave_ev, NULL)) {
    struct timeval tv = {0, CLUSTER_LEAVE_MS * 1000};
    evtimer_add(&c->leave_ev, &tv);
    websock__cluster_leave(c);
  }
}

static void cluster_on_leave_timeout(evutil_socket_t fd, short what,
                                     void *arg) {
  (void)fd;
  (void)what;
  websock__cluster *c = arg;
  c->done = 1;
}

static void cluster_wake(void *arg) {
  websock__cluster *c = arg;
  uint64_t one = 1;
  ssize_t w = write(c->wake_fd, &one, sizeof one);
  (void)w;
}

static void *cluster_main(void *arg) {
  websock__cluster *c = arg;
  cluster_connect(c);
  while (!c->done)
    if (event_base_loop(c->base, EVLOOP_ONCE) < 0)
      break;
  /* Leaving: the connections go without a word (their data cleared so
   * the disconnect callbacks do nothing). */
  atomic_store(&c->up, 0);
  if (c->pub) {
    c->pub->data = NULL;
    redisAsyncFree(c->pub);
    c->pub = NULL;
  }
  if (c->sub) {
    c->sub->data = NULL;
    redisAsyncFree(c->sub);
    c->sub = NULL;
  }
  return NULL;
}

/* This node's ids: node << 43, then from its start time in ms since
 * 2026-01-01 times 8, so a restart does not hand out its last life's ids
 * again (docs/cluster-design.md). Set once the number is known, before
 * the first connection. */
static void cluster_first_id(websock__cluster *c) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  uint64_t since = ms > 1767225600000ull ? ms - 1767225600000ull : 0;
  uint64_t low = (since * 8) & ((1ull << WEBSOCK__CLUSTER_NODE_SHIFT) - 1);
  atomic_store(&c->net->next_id,
               ((uint64_t)c->node << WEBSOCK__CLUSTER_NODE_SHIFT) | (low + 1));
}

int websock__cluster_start(websock__cluster *c) {
  c->base = event_base_new();
  c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (!c->base || c->wake_fd < 0)
    return WEBSOCK_ERR_SYSTEM;
  websock__mailbox_init(&c->mailbox, cluster_wake, c);
  c->mailbox_ready = 1;
  event_assign(&c->wake_ev, c->base, c->wake_fd, EV_READ | EV_PERSIST,
               cluster_on_wake, c);
  evtimer_assign(&c->retry_ev, c->base, cluster_on_retry, c);
  evtimer_assign(&c->leave_ev, c->base, cluster_on_leave_timeout, c);
  websock__cluster_tags_start(c);
  if (event_add(&c->wake_ev, NULL) < 0)
    return WEBSOCK_ERR_SYSTEM;
  int rc = websock__cluster_take_number(c);
  if (rc)
    return rc;
  cluster_first_id(c);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&c->thread, NULL, cluster_main, c);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc)
    return WEBSOCK_ERR_SYSTEM;
  c->started = 1;
  return 0;
}

void websock__cluster_join(websock__cluster *c) {
  if (!c)
    return;
  if (c->started) {
    atomic_store(&c->quit, 1);
    cluster_wake(c);
    pthread_join(c->thread, NULL);
    c->started = 0;
  }
  if (c->mailbox_ready) {
    websock__qnode *q = websock__mailbox_take(&c->mailbox);
    while (q) {
      websock__qnode *next = q->next;
      websock__job_release(websock__job_of(q));
      q = next;
    }
    c->mailbox_ready = 0;
  }
  if (c->base) {
    event_del(&c->wake_ev);
    event_del(&c->retry_ev);
    event_del(&c->beat_ev);
    event_del(&c->sweep_ev);
    event_del(&c->leave_ev);
    event_base_free(c->base);
    c->base = NULL;
  }
  if (c->wake_fd >= 0)
    close(c->wake_fd);
  c->wake_fd = -1;
}

/* ---- the API's side --------------------------------------------------- */

/* Posts a message for |channel| (kind + name) to the link's thread. */
static int cluster_post(websock__cluster *c, const char *kind, const void *name,
                        size_t name_len, int mkind, uint64_t id, int opcode,
                        int code, const void *topic, size_t tl,
                        const void *data, size_t len) {
  websock__job *j = websock__pool_get(&c->sched->pool);
  if (!j) {
    atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
    return WEBSOCK_ERR_NOMEM;
  }
  char ch[CLUSTER_CHANNEL_MAX + 1];
  int cl = websock__cluster_channel(c, ch, kind, name, name_len);
  uint8_t head[2 + WEBSOCK__CLUSTER_HEAD];
  websock__buf *b = &j->buf;
  b->len = 0;
  if (cl < 0)
    cl = 0; /* (names are checked shorter than that) */
  head[0] = (uint8_t)(cl >> 8);
  head[1] = (uint8_t)cl;
  websock__cluster_msg msg = {.kind = mkind,
                              .origin = c->node,
                              .id = id,
                              .opcode = opcode,
                              .code = code,
                              .name_len = tl};
  websock__cluster_msg_head(head + 2, &msg);
  int grew = 0, r;
  if ((r = websock__buf_append(b, head, 2)) < 0 ||
      (grew |= r, r = websock__buf_append(b, ch, (size_t)cl)) < 0 ||
      (grew |= r, r = websock__buf_append(b, head + 2, sizeof head - 2)) < 0 ||
      (grew |= r, r = websock__buf_append(b, topic, tl)) < 0 ||
      (grew |= r, r = websock__buf_append(b, data, len)) < 0) {
    websock__job_release(j);
    atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
    return WEBSOCK_ERR_NOMEM;
  }
  if (grew | r)
    websock__count_alloc(&c->sched->allocs);
  j->kind = WEBSOCK__JOB_CLUSTER;
  j->code = CLUSTER_JOB_OUT;
  websock__mailbox_post(&c->mailbox, &j->node);
  return 0;
}

void websock__cluster_publish(websock__cluster *c, const void *topic,
                              size_t topic_len, int opcode, const void *data,
                              size_t len, uint64_t except_id) {
  if (!atomic_load(&c->up)) {
    atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
    return;
  }
  cluster_post(c, "t:", topic, topic_len, WEBSOCK__CM_PUBLISH, except_id,
               opcode, 0, topic, topic_len, data, len);
}

void websock__cluster_broadcast(websock__cluster *c, int opcode,
                                const void *data, size_t len,
                                uint64_t except_id) {
  if (!atomic_load(&c->up)) {
    atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
    return;
  }
  cluster_post(c, "all", "", 0, WEBSOCK__CM_BROADCAST, except_id, opcode, 0, "",
               0, data, len);
}

unsigned websock__cluster_node(const websock__cluster *c) {
  return c->node;
}

int websock__cluster_remote(const websock__cluster *c, uint64_t id) {
  uint64_t node = id >> WEBSOCK__CLUSTER_NODE_SHIFT;
  return node && node != c->node;
}

int websock__cluster_send(websock__cluster *c, uint64_t id, int opcode,
                          int code, const void *data, size_t len) {
  if (!atomic_load(&c->up))
    return WEBSOCK_ERR_CLUSTER;
  char node[16];
  int nl = snprintf(node, sizeof node, "%u",
                    (unsigned)(id >> WEBSOCK__CLUSTER_NODE_SHIFT));
  return cluster_post(c, "n:", node, (size_t)nl, WEBSOCK__CM_SEND, id, opcode,
                      code, "", 0, data, len);
}

/* A loop's topic got its first member (+1) or lost its last (-1). Thread:
 * that loop. */
static void cluster_topic_ref(void *ud, const void *name, size_t len,
                              int delta) {
  websock__cluster *c = ud;
  websock__job *j = websock__pool_get(&c->sched->pool);
  if (!j)
    return; /* out of memory: the count is off until the topic changes */
  j->buf.len = 0;
  if (websock__buf_append(&j->buf, name, len) < 0) {
    websock__job_release(j);
    return;
  }
  j->kind = WEBSOCK__JOB_CLUSTER;
  j->code = CLUSTER_JOB_TOPIC;
  j->arg = delta;
  websock__mailbox_post(&c->mailbox, &j->node);
}

void websock__cluster_counts_get(const websock__cluster *c,
                                 websock__cluster_counts *out) {
  websock__cluster *m = (websock__cluster *)c;
  out->up = atomic_load(&m->up);
  out->out = atomic_load(&m->out);
  out->in = atomic_load(&m->in);
  out->dropped = atomic_load(&m->dropped);
  out->connects = atomic_load(&m->connects);
  out->tags = atomic_load(&m->dir_count);
  out->nodes = atomic_load(&m->nodes_alive);
}
