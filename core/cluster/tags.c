/* Tags across the cluster (docs/cluster-design.md): a node's alive key,
 * tag claims in Redis, and the directory of the other nodes' tags.
 *
 * In Redis (P the prefix):
 *   P:node:N     this life's token of node N, PX ttl, refreshed every ttl/3
 *   P:tags       hash: tag -> "N:id", the connection holding it
 *   P:tagsof:N   set: the tags node N claimed, so its tags can be voided
 *                without a scan of every tag
 *   channel P:tags  claims, releases, beats and voided nodes (wire.h)
 * A tag in P:tags is held only while its node's alive key exists: a node
 * killed without a word stops beating, its key expires within the ttl,
 * and claims of its tags then succeed; the first node to notice the
 * silence voids its entries (the reap script) and tells the others.
 *
 * Threads: everything here runs on the link's thread, but for the
 * directory's readers (tag_check, find_tag: any thread, under dir_mu) and
 * websock__cluster_claim_post / the untag hook (any thread: they post jobs).
 * Layer: cluster. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster_int.h"
#include "util/alloc.h"
#include "util/random.h"
#include "util/time.h"

/* ---- the scripts (run atomically by Redis) ---------------------------- */

/* The tag scripts' arguments (tags_tag_script): KEYS: P:tags, P:tagsof:N.
 * ARGV: tag, "N:id", "P:node:", N, channel, message. */

/* 0 when the tag is now ours, or the holder's "N:id". */
static const char claim_lua[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if cur and cur ~= ARGV[2] then\n"
    "  local owner = string.match(cur, '^(%d+):')\n"
    "  if owner and owner ~= ARGV[4] and\n"
    "     redis.call('EXISTS', ARGV[3] .. owner) == 1 then return cur end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[5], ARGV[6])\n"
    "return 0\n";

/* Lets go of the tag if that connection still holds it. */
static const char release_lua[] =
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "  redis.call('SREM', KEYS[2], ARGV[1])\n"
    "  redis.call('PUBLISH', ARGV[5], ARGV[6])\n"
    "end\n"
    "return 0\n";

/* Voids node M's tags. KEYS: P:tags, P:tagsof:M, P:node:M. ARGV: "M:",
 * channel, force ("1": even while M's key lives: M itself), token (not
 * "": also delete M's key if it is still this token's), message. */
static const char reap_lua[] =
    "if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[3]) == 1 then\n"
    "  return 0 end\n"
    "for _, t in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
    "  local v = redis.call('HGET', KEYS[1], t)\n"
    "  if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then\n"
    "    redis.call('HDEL', KEYS[1], t) end\n"
    "end\n"
    "redis.call('DEL', KEYS[2])\n"
    "if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then\n"
    "  redis.call('DEL', KEYS[3]) end\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[5])\n"
    "return 1\n";

/* KEYS: P:node:N. ARGV: token, ttl ms, channel, message. 1, or 0 when
 * another life holds the number. */
static const char beat_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and v ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "redis.call('PUBLISH', ARGV[3], ARGV[4])\n"
    "return 1\n";

/* KEYS: P:tags. ARGV: "P:node:". The entries of live nodes, flat. */
static const char load_lua[] =
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "local out, alive = {}, {}\n"
    "for i = 1, #all, 2 do\n"
    "  local owner = string.match(all[i + 1], '^(%d+):')\n"
    "  if owner then\n"
    "    if alive[owner] == nil then\n"
    "      alive[owner] = redis.call('EXISTS', ARGV[1] .. owner) == 1 end\n"
    "    if alive[owner] then\n"
    "      out[#out + 1] = all[i]; out[#out + 1] = all[i + 1] end\n"
    "  end\n"
    "end\n"
    "return out\n";

#define TAGS_ARGS_MAX 10

/* Runs |script| on the command connection with |nkeys| keys then args:
 * strings, but for the last when |msg_len| is not 0, a binary message of
 * that many bytes. */
static void tags_eval(websock__cluster *c, redisCallbackFn *cb, void *pd,
                      const char *script, int nkeys, int n,
                      const char *const *args, size_t msg_len) {
  const char *argv[TAGS_ARGS_MAX + 3];
  size_t argl[TAGS_ARGS_MAX + 3];
  char nk[8];
  snprintf(nk, sizeof nk, "%d", nkeys);
  argv[0] = "EVAL";
  argv[1] = script;
  argv[2] = nk;
  for (int i = 0; i < n; i++)
    argv[3 + i] = args[i];
  for (int i = 0; i < 3 + n; i++)
    argl[i] = strlen(argv[i]);
  if (msg_len)
    argl[2 + n] = msg_len;
  redisAsyncCommandArgv(c->pub, cb, pd, 3 + n, argv, argl);
}

/* ---- names ------------------------------------------------------------ */

typedef struct tags_names {
  char tags[CLUSTER_CHANNEL_MAX + 1];        /* P:tags, the hash and channel */
  char tagsof[CLUSTER_CHANNEL_MAX + 1];      /* P:tagsof:N */
  char key[CLUSTER_CHANNEL_MAX + 1];         /* P:node:N */
  char node_prefix[CLUSTER_CHANNEL_MAX + 1]; /* P:node: */
  char num[16];                              /* N */
  char owner_prefix[24];                     /* "N:" */
} tags_names;

static void tags_names_of(const websock__cluster *c, unsigned node,
                          tags_names *n) {
  int l = snprintf(n->num, sizeof n->num, "%u", node);
  websock__cluster_channel(c, n->tags, "tags", "", 0);
  websock__cluster_channel(c, n->tagsof, "tagsof:", n->num, (size_t)l);
  websock__cluster_channel(c, n->key, "node:", n->num, (size_t)l);
  websock__cluster_channel(c, n->node_prefix, "node:", "", 0);
  snprintf(n->owner_prefix, sizeof n->owner_prefix, "%u:", node);
}

/* A tag channel message of this node: head + tag into |m|, its length. */
static size_t tags_message(const websock__cluster *c, uint8_t *m, int kind,
                           uint64_t id, const char *tag, size_t len) {
  websock__cluster_msg msg = {
      .kind = kind, .origin = c->node, .id = id, .name_len = len};
  websock__cluster_msg_head(m, &msg);
  if (len)
    memcpy(m + WEBSOCK__CLUSTER_HEAD, tag, len);
  return WEBSOCK__CLUSTER_HEAD + len;
}

/* "N:id" into |out| (32 bytes). */
static void tags_value(char *out, unsigned node, uint64_t id) {
  snprintf(out, 32, "%u:%" PRIu64, node, id);
}

/* Parses "N:id": 0, or -1. */
static int tags_parse_value(const char *s, size_t n, unsigned *node,
                            uint64_t *id) {
  char v[40];
  if (n >= sizeof v)
    return -1;
  memcpy(v, s, n);
  v[n] = 0;
  char *end;
  unsigned long nd = strtoul(v, &end, 10);
  if (*end != ':' || nd < 1 || nd > WEBSOCK__CLUSTER_NODE_MAX)
    return -1;
  char *e2;
  unsigned long long i = strtoull(end + 1, &e2, 10);
  if (e2 == end + 1 || *e2)
    return -1;
  *node = (unsigned)nd;
  *id = i;
  return 0;
}

/* ---- the directory: other nodes' tags --------------------------------- */

typedef struct cluster_dirent {
  websock__hnode node; /* must stay first */
  size_t hash;
  unsigned owner;
  uint64_t id;
  char tag[]; /* NUL-terminated */
} cluster_dirent;

static size_t dir_hash(const websock__hnode *n) {
  return ((const cluster_dirent *)(const void *)n)->hash;
}

static int dir_eq(const websock__hnode *n, const void *key) {
  return strcmp(((const cluster_dirent *)(const void *)n)->tag, key) == 0;
}

/* Copies |len| bytes of a tag into |out| (WEBSOCK__TAG_MAX + 1): 0, or -1
 * for a name that is no tag (empty, or with a NUL). */
static int dir_tag(char *out, const uint8_t *p, size_t len) {
  if (!len || len > WEBSOCK__TAG_MAX || memchr(p, 0, len))
    return -1;
  memcpy(out, p, len);
  out[len] = 0;
  return 0;
}

static void dir_put(websock__cluster *c, const char *tag, unsigned owner,
                    uint64_t id) {
  size_t len = strlen(tag);
  /* Allocated before the lock, which readers on every thread take. */
  cluster_dirent *e = websock__malloc(sizeof *e + len + 1);
  if (!e)
    return; /* out of memory: that tag looks free here */
  e->hash = websock__hash_str(tag);
  e->owner = owner;
  e->id = id;
  memcpy(e->tag, tag, len + 1);
  pthread_mutex_lock(&c->dir_mu);
  cluster_dirent *old = (cluster_dirent *)(void *)*websock__hmap_find(
      &c->dir, e->hash, dir_eq, tag);
  if (old) {
    old->owner = owner;
    old->id = id;
  } else {
    websock__hmap_insert(&c->dir, &e->node, e->hash);
    e = NULL;
  }
  atomic_store(&c->dir_count, c->dir.count);
  pthread_mutex_unlock(&c->dir_mu);
  websock__free(e);
}

/* Removes |tag| if (owner, id) holds it (id 0: whoever of owner). */
static void dir_del(websock__cluster *c, const char *tag, unsigned owner,
                    uint64_t id) {
  cluster_dirent *gone = NULL;
  pthread_mutex_lock(&c->dir_mu);
  websock__hnode **slot =
      websock__hmap_find(&c->dir, websock__hash_str(tag), dir_eq, tag);
  cluster_dirent *e = (cluster_dirent *)(void *)*slot;
  if (e && e->owner == owner && (!id || e->id == id)) {
    websock__hmap_remove(&c->dir, slot);
    gone = e;
  }
  atomic_store(&c->dir_count, c->dir.count);
  pthread_mutex_unlock(&c->dir_mu);
  websock__free(gone);
}

/* Removes every entry of |owner| (0: all). */
static void dir_drop(websock__cluster *c, unsigned owner) {
  cluster_dirent *gone = NULL;
  pthread_mutex_lock(&c->dir_mu);
  for (size_t i = 0; i < c->dir.nbuckets; i++) {
    websock__hnode **slot = &c->dir.buckets[i];
    while (*slot) {
      cluster_dirent *e = (cluster_dirent *)(void *)*slot;
      if (!owner || e->owner == owner) {
        websock__hmap_remove(&c->dir, slot);
        /* Chained through the node's link, freed after the lock. */
        e->node.next = gone ? &gone->node : NULL;
        gone = e;
      } else {
        slot = &(*slot)->next;
      }
    }
  }
  atomic_store(&c->dir_count, c->dir.count);
  pthread_mutex_unlock(&c->dir_mu);
  while (gone) {
    cluster_dirent *next = (cluster_dirent *)(void *)gone->node.next;
    websock__free(gone);
    gone = next;
  }
}

/* Looks |tag| up: 1 with *id set, or 0. Thread: any. */
static int dir_find(websock__cluster *c, const char *tag, uint64_t *id) {
  pthread_mutex_lock(&c->dir_mu);
  cluster_dirent *e = (cluster_dirent *)(void *)*websock__hmap_find(
      &c->dir, websock__hash_str(tag), dir_eq, tag);
  if (e)
    *id = e->id;
  pthread_mutex_unlock(&c->dir_mu);
  return e != NULL;
}

/* ---- claims and releases ---------------------------------------------- */

/* Tells connection |id| the outcome of its claim of |tag| (its TAG
 * event, emitted by its loop in order with its other events). */
static void tags_event(websock__cluster *c, uint64_t id, const char *tag,
                       int status) {
  websock__client *k = websock__registry_get(&c->sched->registry, id);
  if (!k)
    return; /* it ended meanwhile, and its tag went with it */
  websock__cmd cmd = {WEBSOCK__CMD_TAG, 0, status, tag, strlen(tag)};
  websock__net_command(c->net, k, &cmd);
  websock__client_unref(k);
}

/* Redis answered a claim (privdata: the job, ptr: the link). */
static void tags_on_claim(redisAsyncContext *ac, void *reply, void *pd) {
  (void)ac;
  websock__job *j = pd;
  websock__cluster *c = j->ptr;
  const redisReply *r = reply;
  const char *tag = (const char *)j->buf.data;
  uint64_t id = j->except_id;
  unsigned owner;
  uint64_t holder;
  if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
    /* Ours: the tag it held meanwhile is let go. */
    websock__registry_claim_done(&c->sched->registry, id, tag, 1);
    if (j->arg == CLAIM_USER)
      tags_event(c, id, tag, 0);
  } else if (r && r->type == REDIS_REPLY_STRING) {
    /* Another node's connection holds it: ours lets go (and has the tag
     * it held meanwhile again). */
    websock__registry_claim_done(&c->sched->registry, id, tag, 0);
    if (tags_parse_value(r->str, r->len, &owner, &holder) == 0 &&
        owner != c->node)
      dir_put(c, tag, owner, holder);
    tags_event(c, id, tag, WEBSOCK_ERR_TAG_TAKEN);
  } else if (j->arg == CLAIM_USER || r) {
    /* The link went before Redis answered (or Redis refused the script):
     * the claim failed. A tag claimed again keeps its hold for the next
     * link when only the connection went. */
    websock__registry_claim_done(&c->sched->registry, id, tag, 0);
    tags_event(c, id, tag, WEBSOCK_ERR_CLUSTER);
  }
  j->ptr = NULL;
  websock__job_release(j);
}

/* Runs a tag script (claim or release) for the job's tag and connection,
 * publishing a message of |kind| when it changes the tag. */
static void tags_tag_script(websock__cluster *c, const char *script, int kind,
                            websock__job *j, redisCallbackFn *cb) {
  const char *tag = (const char *)j->buf.data;
  tags_names n;
  tags_names_of(c, c->node, &n);
  char value[32];
  tags_value(value, c->node, j->except_id);
  uint8_t m[WEBSOCK__CLUSTER_HEAD + WEBSOCK__TAG_MAX];
  size_t ml = tags_message(c, m, kind, j->except_id, tag, strlen(tag));
  const char *args[8] = {n.tags,        n.tagsof, tag,    value,
                         n.node_prefix, n.num,    n.tags, (const char *)m};
  tags_eval(c, cb, cb ? j : NULL, script, 2, 8, args, ml);
}

void websock__cluster_run_claim(websock__cluster *c, websock__job *j) {
  j->ptr = c;
  if (!c->pub || !atomic_load(&c->up))
    tags_on_claim(NULL, NULL, j);
  else
    tags_tag_script(c, claim_lua, WEBSOCK__CM_TAG_CLAIMED, j, tags_on_claim);
}

void websock__cluster_run_release(websock__cluster *c, websock__job *j) {
  /* (While the link is down it is dropped: the next link voids this
   * node's old tags anyway.) */
  if (c->pub && atomic_load(&c->up))
    tags_tag_script(c, release_lua, WEBSOCK__CM_TAG_RELEASED, j, NULL);
}

/* A job for the link about |tag| of |id|: NULL when out of memory. */
static websock__job *tags_job(websock__cluster *c, int code, uint64_t id,
                              const char *tag) {
  websock__job *j = websock__pool_get(&c->sched->pool);
  if (!j)
    return NULL;
  j->buf.len = 0;
  if (websock__buf_append(&j->buf, tag, strlen(tag) + 1) < 0) {
    websock__job_release(j);
    return NULL;
  }
  j->kind = WEBSOCK__JOB_CLUSTER;
  j->code = code;
  j->except_id = id;
  j->arg = CLAIM_USER;
  return j;
}

websock__job *websock__cluster_claim_new(websock__cluster *c, uint64_t id,
                                         const char *tag) {
  return tags_job(c, CLUSTER_JOB_CLAIM, id, tag);
}

void websock__cluster_claim_post(websock__cluster *c, websock__job *j) {
  websock__mailbox_post(&c->mailbox, &j->node);
}

/* The registry's hook: a connection let go of a tag. Thread: any. */
static void tags_on_untag(void *ud, uint64_t id, const char *tag) {
  websock__cluster *c = ud;
  if (!c->mailbox_ready)
    return;
  websock__job *j = tags_job(c, CLUSTER_JOB_RELEASE, id, tag);
  if (j) /* (else Redis keeps it until this node's next link voids it) */
    websock__mailbox_post(&c->mailbox, &j->node);
}

/* Claims again every tag held here (after the link came back). */
typedef struct tags_list {
  websock__buf buf; /* [id 8][tag NUL] ... */
  int failed;
} tags_list;

static void tags_collect(void *ud, uint64_t id, const char *tag) {
  tags_list *l = ud;
  if (websock__buf_append(&l->buf, &id, sizeof id) < 0 ||
      websock__buf_append(&l->buf, tag, strlen(tag) + 1) < 0)
    l->failed = 1;
}

static void tags_claim_all(websock__cluster *c) {
  tags_list l = {{0}, 0};
  websock__registry_each_tag(&c->sched->registry, tags_collect, &l);
  for (size_t off = 0; off + sizeof(uint64_t) < l.buf.len;) {
    uint64_t id;
    memcpy(&id, l.buf.data + off, sizeof id);
    const char *tag = (const char *)l.buf.data + off + sizeof id;
    off += sizeof id + strlen(tag) + 1;
    websock__job *j = tags_job(c, CLUSTER_JOB_CLAIM, id, tag);
    if (!j)
      continue;
    j->arg = CLAIM_AGAIN;
    websock__cluster_run_claim(c, j);
  }
  websock__buf_free(&l.buf);
}

/* ---- nodes: beats, the directory's load, silent nodes ----------------- */

/* Voids node |node|'s tags in Redis: another node's once its key has
 * expired; this node's own (|force|) when its link comes up, and with its
 * key (|token|) when it leaves. */
static void tags_reap(websock__cluster *c, unsigned node, int force,
                      const char *token, redisCallbackFn *cb) {
  tags_names n;
  tags_names_of(c, node, &n);
  uint8_t m[WEBSOCK__CLUSTER_HEAD];
  size_t ml = tags_message(c, m, WEBSOCK__CM_NODE_GONE, node, NULL, 0);
  const char *args[8] = {n.tags, n.tagsof,          n.key, n.owner_prefix,
                         n.tags, force ? "1" : "0", token, (const char *)m};
  tags_eval(c, cb, c, reap_lua, 3, 8, args, ml);
}

/* A message of the tag channel held while the directory loads. */
typedef struct cluster_held {
  struct cluster_held *next;
  websock__cluster_msg m;
  uint8_t name[WEBSOCK__TAG_MAX];
} cluster_held;

static void tags_apply(websock__cluster *c, const websock__cluster_msg *m) {
  if (m->origin < 1 || m->origin > WEBSOCK__CLUSTER_NODE_MAX)
    return;
  if (m->origin != c->node)
    c->heard_ms[m->origin] = websock__now_ms();
  char tag[WEBSOCK__TAG_MAX + 1];
  switch (m->kind) {
  case WEBSOCK__CM_TAG_CLAIMED:
    if (m->origin != c->node && dir_tag(tag, m->name, m->name_len) == 0)
      dir_put(c, tag, m->origin, m->id);
    break;
  case WEBSOCK__CM_TAG_RELEASED:
    if (m->origin != c->node && dir_tag(tag, m->name, m->name_len) == 0)
      dir_del(c, tag, m->origin, m->id);
    break;
  case WEBSOCK__CM_NODE_GONE:
    if (m->id < 1 || m->id > WEBSOCK__CLUSTER_NODE_MAX)
      break;
    if ((unsigned)m->id != c->node) {
      dir_drop(c, (unsigned)m->id);
      c->heard_ms[m->id] = 0;
    } else if (m->origin != c->node && atomic_load(&c->up)) {
      /* Another node found this one silent (its link stalled past the
       * ttl) and voided its tags: they are claimed again. */
      tags_claim_all(c);
    }
    break;
  default: /* NODE_ALIVE: heard */
    break;
  }
}

void websock__cluster_tags_message(websock__cluster *c,
                                   const websock__cluster_msg *m) {
  if (!c->loading) {
    tags_apply(c, m);
    return;
  }
  /* Applied after the directory's load, which may predate it. */
  cluster_held *h = websock__malloc(sizeof *h);
  if (!h)
    return;
  h->m = *m;
  size_t nl = m->name_len < sizeof h->name ? m->name_len : sizeof h->name;
  memcpy(h->name, m->name, nl);
  h->m.name = h->name;
  h->m.name_len = nl;
  h->m.data = NULL;
  h->m.len = 0;
  cluster_held **tail = &c->held;
  while (*tail)
    tail = &(*tail)->next;
  h->next = NULL;
  *tail = h;
}

/* The directory as Redis has it: every live node's tags. */
static void tags_on_load(redisAsyncContext *ac, void *reply, void *pd) {
  (void)ac;
  websock__cluster *c = pd;
  const redisReply *r = reply;
  if (r && r->type == REDIS_REPLY_ARRAY) {
    dir_drop(c, 0);
    uint64_t now = websock__now_ms();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
      const redisReply *t = r->element[i], *v = r->element[i + 1];
      char tag[WEBSOCK__TAG_MAX + 1];
      unsigned owner;
      uint64_t id;
      if (t->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
          dir_tag(tag, (const uint8_t *)t->str, (size_t)t->len) < 0 ||
          tags_parse_value(v->str, (size_t)v->len, &owner, &id) < 0 ||
          owner == c->node)
        continue;
      dir_put(c, tag, owner, id);
      c->heard_ms[owner] = now;
    }
  }
  c->loading = 0;
  while (c->held) {
    cluster_held *h = c->held;
    c->held = h->next;
    if (r)
      tags_apply(c, &h->m);
    websock__free(h);
  }
}

static void tags_beat(websock__cluster *c);

/* Redis answered a beat: the number is ours (1) or another life's (0). */
static void tags_on_beat(redisAsyncContext *ac, void *reply, void *pd) {
  websock__cluster *c = pd;
  const redisReply *r = reply;
  if (!r || !ac->data || r->type != REDIS_REPLY_INTEGER)
    return; /* the link is going */
  if (r->integer == 0) {
    /* Another server has this node number (this one was silent past the
     * ttl, or both were started with it): this node keeps to itself
     * until the number is free again. */
    atomic_fetch_add(&c->conflicts, 1);
    atomic_store(&c->up, 0);
    return;
  }
  if (atomic_load(&c->up))
    return;
  /* The number is confirmed: what the last link claimed is voided, the
   * directory read, and every tag held here claimed again, in this order
   * on the one connection. */
  tags_reap(c, c->node, 1, "", NULL);
  c->loading = 1;
  tags_names n;
  tags_names_of(c, c->node, &n);
  const char *args[2] = {n.tags, n.node_prefix};
  tags_eval(c, tags_on_load, c, load_lua, 1, 2, args, 0);
  websock__cluster_ready(c);
  tags_claim_all(c);
}

static void tags_beat(websock__cluster *c) {
  if (!c->pub || !c->pub_ok || !c->sub_ok)
    return;
  tags_names n;
  tags_names_of(c, c->node, &n);
  char ttl[16];
  snprintf(ttl, sizeof ttl, "%u", c->ttl_ms);
  uint8_t m[WEBSOCK__CLUSTER_HEAD];
  size_t ml = tags_message(c, m, WEBSOCK__CM_NODE_ALIVE, 0, NULL, 0);
  const char *args[5] = {n.key, c->token, ttl, n.tags, (const char *)m};
  tags_eval(c, tags_on_beat, c, beat_lua, 1, 5, args, ml);
}

static void tags_on_beat_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  tags_beat(arg);
}

/* Every ttl/10: nodes silent for a ttl are gone; their tags are voided
 * here and, their key having expired, in Redis. */
static void tags_on_sweep(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  websock__cluster *c = arg;
  uint64_t now = websock__now_ms();
  uint64_t alive = 0;
  for (unsigned node = 1; node <= WEBSOCK__CLUSTER_NODE_MAX; node++) {
    uint64_t heard = c->heard_ms[node];
    if (!heard || node == c->node)
      continue;
    if (now - heard <= c->ttl_ms) {
      alive++;
      continue;
    }
    c->heard_ms[node] = 0;
    dir_drop(c, node);
    if (c->pub && atomic_load(&c->up))
      tags_reap(c, node, 0, "", NULL);
  }
  atomic_store(&c->nodes_alive, alive);
}

static void tags_every(struct event *ev, unsigned ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  if (!evtimer_pending(ev, NULL))
    event_add(ev, &tv);
}

void websock__cluster_tags_start(websock__cluster *c) {
  event_assign(&c->beat_ev, c->base, -1, EV_PERSIST, tags_on_beat_timer, c);
  event_assign(&c->sweep_ev, c->base, -1, EV_PERSIST, tags_on_sweep, c);
}

void websock__cluster_tags_up(websock__cluster *c) {
  tags_every(&c->beat_ev, c->ttl_ms / 3);
  tags_every(&c->sweep_ev, c->ttl_ms / 10);
  tags_beat(c);
}

static void tags_on_left(redisAsyncContext *ac, void *reply, void *pd) {
  (void)ac;
  (void)reply;
  websock__cluster *c = pd;
  c->done = 1;
}

void websock__cluster_leave(websock__cluster *c) {
  if (!c->pub || !atomic_load(&c->up)) {
    c->done = 1;
    return;
  }
  atomic_store(&c->up, 0);
  tags_reap(c, c->node, 1, c->token, tags_on_left);
}

/* ---- set-up and the API's side ---------------------------------------- */

int websock__cluster_tags_init(websock__cluster *c) {
  uint8_t r[16];
  if (websock__random(r, sizeof r) < 0)
    return -1;
  for (size_t i = 0; i < sizeof r; i++)
    snprintf(c->token + 2 * i, 3, "%02x", r[i]);
  if (websock__hmap_init(&c->dir, 64, dir_hash) < 0)
    return -1;
  if (pthread_mutex_init(&c->dir_mu, NULL)) {
    websock__hmap_free(&c->dir);
    return -1;
  }
  c->dir_ready = 1;
  c->sched->registry.on_untag = tags_on_untag;
  c->sched->registry.on_untag_ud = c;
  return 0;
}

void websock__cluster_tags_free(websock__cluster *c) {
  if (!c->dir_ready)
    return;
  dir_drop(c, 0);
  websock__hmap_free(&c->dir);
  pthread_mutex_destroy(&c->dir_mu);
  while (c->held) {
    cluster_held *h = c->held;
    c->held = h->next;
    websock__free(h);
  }
  c->sched->registry.on_untag = NULL;
  c->dir_ready = 0;
}

/* SET NX of node |node|'s key with this life's token: 1 when the number
 * is this server's now (or was already), 0 when a live node has it, -1
 * when Redis did not answer. */
static int tags_take(websock__cluster *c, redisContext *r, unsigned node) {
  tags_names n;
  tags_names_of(c, node, &n);
  redisReply *a =
      redisCommand(r, "SET %s %s NX PX %u", n.key, c->token, c->ttl_ms);
  int got = !a || a->type == REDIS_REPLY_ERROR ? -1
            : a->type == REDIS_REPLY_NIL       ? 0
                                               : 1;
  freeReplyObject(a);
  if (got == 0) { /* taken: by another life, or by ours (a retried start) */
    redisReply *g = redisCommand(r, "GET %s", n.key);
    if (!g || g->type == REDIS_REPLY_ERROR)
      got = -1;
    else if (g->type != REDIS_REPLY_STRING || strcmp(g->str, c->token) == 0)
      got = 1; /* expired meanwhile, or ours: the link's beat settles it */
    freeReplyObject(g);
  }
  return got;
}

/* The reply |a| to a set-up command on the start's blocking connection:
 * 0, -1 when Redis did not answer, or WEBSOCK_ERR_CLUSTER with its
 * refusal in the server's last error. */
static int tags_setup_command(websock__cluster *c, const char *what,
                              redisReply *a) {
  int rc = !a ? -1 : a->type == REDIS_REPLY_ERROR ? WEBSOCK_ERR_CLUSTER : 0;
  if (rc == WEBSOCK_ERR_CLUSTER)
    snprintf(c->net->listen_error, sizeof c->net->listen_error,
             "cluster: Redis refused %s: %.100s", what, a->str);
  freeReplyObject(a);
  return rc;
}

/* A blocking connection for the start's check (1 s per step) in *out, or
 * NULL when Redis does not answer. Returns 0, or WEBSOCK_ERR_CLUSTER when
 * Redis refused the URL's credentials or database. */
static int tags_connect_blocking(websock__cluster *c, redisContext **out) {
  struct timeval tv = {1, 0};
  redisContext *r = redisConnectWithTimeout(c->url.host, c->url.port, tv);
  int rc = r && !r->err && redisSetTimeout(r, tv) == REDIS_OK ? 0 : -1;
  const char *auth[3];
  int na = websock__cluster_url_auth(&c->url, auth);
  if (!rc && na)
    rc = tags_setup_command(c, "the password",
                            redisCommandArgv(r, na, auth, NULL));
  if (!rc && c->url.db)
    rc = tags_setup_command(c, "the database",
                            redisCommand(r, "SELECT %d", c->url.db));
  *out = rc ? NULL : r;
  if (rc)
    redisFree(r);
  return rc == -1 ? 0 : rc; /* -1: no answer, the link checks later */
}

int websock__cluster_take_number(websock__cluster *c) {
  redisContext *r;
  int rc = tags_connect_blocking(c, &r);
  char *why = c->net->listen_error;
  size_t cap = sizeof c->net->listen_error;
  if (rc) {
    /* Refused: the reason is written. */
  } else if (c->node) {
    /* A given number: refused only when Redis says a live node has it; a
     * Redis that does not answer leaves the check to the link. */
    if (r && tags_take(c, r, c->node) == 0) {
      snprintf(why, cap,
               "cluster node %u is alive in Redis (another server has this "
               "number; one killed frees it within %u ms)",
               c->node, c->ttl_ms);
      rc = WEBSOCK_ERR_ADDRESS;
    }
  } else {
    /* Node 0: the lowest number no live node has. Ids carry the number,
     * so without an answer there is nothing to start with. */
    int got = r ? 0 : -1;
    unsigned node = 0;
    while (got == 0 && node < WEBSOCK__CLUSTER_NODE_MAX)
      got = tags_take(c, r, ++node);
    if (got == 1) {
      c->node = node;
    } else if (got == 0) {
      snprintf(why, cap, "all %u cluster node numbers are alive in Redis",
               (unsigned)WEBSOCK__CLUSTER_NODE_MAX);
      rc = WEBSOCK_ERR_ADDRESS;
    } else {
      snprintf(why, cap,
               "cluster node 0 draws its number from Redis at start, and "
               "Redis at %.40s:%d did not answer",
               c->url.host, c->url.port);
      rc = WEBSOCK_ERR_CLUSTER;
    }
  }
  redisFree(r);
  return rc;
}

int websock__cluster_tag_check(websock__cluster *c, const char *tag) {
  uint64_t id;
  if (dir_find(c, tag, &id))
    return WEBSOCK_ERR_TAG_TAKEN;
  return atomic_load(&c->up) ? 0 : WEBSOCK_ERR_CLUSTER;
}

int websock__cluster_find_tag(websock__cluster *c, const char *tag,
                              uint64_t *id) {
  if (dir_find(c, tag, id))
    return 0;
  return atomic_load(&c->up) ? WEBSOCK_ERR_NO_SUCH_CLIENT : WEBSOCK_ERR_CLUSTER;
}
