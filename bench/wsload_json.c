/* wsload's JSON-like message bodies: a fixed corpus of chat records
 * ({"id":..,"user":..,"room":..,"ts":..,"text":..} with a few optional
 * fields) and a body per (connection, sequence number). Pure: no I/O. */
#include "wsload_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const json_users[] = {
    "alice",  "bob",   "carol", "dave",    "erin",   "frank",  "grace",
    "heidi",  "ivan",  "judy",  "mallory", "niaj",   "olivia", "peggy",
    "rupert", "sybil", "trent", "victor",  "walter", "yolanda"};
static const char *const json_rooms[] = {"lobby", "general", "random", "dev",
                                         "ops",   "support", "sales",  "music"};
static const char *const json_words[] = {
    "the",       "a",       "to",       "and",     "of",       "is",
    "it",        "that",    "for",      "on",      "you",      "this",
    "with",      "we",      "be",       "are",     "not",      "have",
    "just",      "can",     "but",      "so",      "will",     "do",
    "what",      "if",      "at",       "all",     "about",    "there",
    "one",       "out",     "up",       "when",    "they",     "now",
    "more",      "think",   "know",     "like",    "time",     "good",
    "going",     "here",    "see",      "new",     "get",      "build",
    "deploy",    "release", "test",     "tests",   "passing",  "failing",
    "branch",    "merge",   "review",   "please",  "thanks",   "lunch",
    "meeting",   "today",   "tomorrow", "later",   "morning",  "coffee",
    "server",    "client",  "latency",  "memory",  "cpu",      "graph",
    "dashboard", "alert",   "fixed",    "broken",  "bug",      "issue",
    "ticket",    "ship",    "rollback", "config",  "cache",    "queue",
    "socket",    "timeout", "retry",    "logs",    "metrics",  "benchmark",
    "faster",    "slower",  "maybe",    "sure",    "ok",       "yes",
    "no",        "great",   "nice",     "weird",   "looks",    "seems",
    "works",     "again",   "still",    "already", "soon",     "wait",
    "check",     "update",  "patch",    "version", "minutes",  "hours",
    "week",      "weekend", "docs",     "readme",  "question", "answer",
    "idea",      "plan",    "design",   "draft",   "customer", "user",
    "login",     "page",    "button",   "mobile",  "browser",  "network"};
static const char *const json_reactions[] = {"+1",   "smile", "tada",
                                             "eyes", "heart", "rocket"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* xorshift64* with a fixed seed: the corpus is the same on every run, so
 * the compression ratios of two runs compare. */
static uint64_t corpus_rng(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* Appends one record to |out| (at least 512 bytes of room); returns its
 * length. */
static size_t corpus_record(char *out, uint64_t *rng, uint32_t id,
                            uint64_t ts) {
  char text[400];
  size_t tn = 0;
  unsigned words = 3 + (unsigned)(corpus_rng(rng) % 22);
  for (unsigned w = 0; w < words && tn < sizeof text - 40; w++) {
    const char *word = json_words[corpus_rng(rng) % NELEM(json_words)];
    size_t wl = strlen(word);
    if (w)
      text[tn++] = ' ';
    memcpy(text + tn, word, wl);
    if (w == 0 && text[tn] >= 'a' && text[tn] <= 'z')
      text[tn] = (char)(text[tn] - 'a' + 'A');
    tn += wl;
  }
  text[tn++] = "..!?"[corpus_rng(rng) % 4];
  text[tn] = 0;
  uint64_t r = corpus_rng(rng);
  int n = snprintf(out, 512,
                   "{\"id\":%u,\"user\":\"%s\",\"room\":\"%s\","
                   "\"ts\":%llu,\"text\":\"%s\"",
                   id, json_users[r % NELEM(json_users)],
                   json_rooms[(r >> 8) % NELEM(json_rooms)],
                   (unsigned long long)ts, text);
  unsigned extra = (unsigned)((r >> 16) % 10);
  if (extra < 2)
    n += snprintf(out + n, 512 - (size_t)n, ",\"reply_to\":%u",
                  id - 1 - (unsigned)((r >> 24) % 50));
  else if (extra == 2)
    n += snprintf(out + n, 512 - (size_t)n, ",\"edited\":true");
  else if (extra == 3)
    n += snprintf(out + n, 512 - (size_t)n, ",\"reactions\":[\"%s\",\"%s\"]",
                  json_reactions[(r >> 24) % NELEM(json_reactions)],
                  json_reactions[(r >> 32) % NELEM(json_reactions)]);
  out[n++] = '}';
  out[n++] = ',';
  return (size_t)n;
}

int wsl_corpus_build(wsl_corpus *c, size_t body_len) {
  size_t want = body_len * 32;
  if (want < 2u << 20)
    want = 2u << 20;
  size_t cap = want + 1024, nrec = 0, rcap = want / 64;
  memset(c, 0, sizeof *c);
  c->text = malloc(cap);
  c->starts = malloc(rcap * sizeof *c->starts);
  if (!c->text || !c->starts)
    return -1;
  uint64_t rng = 0x6a736f6e636f7270ULL; /* "jsoncorp" */
  uint64_t ts = 1700000000000ULL;
  uint32_t id = 100000;
  while (c->len < want) {
    if (nrec == rcap) {
      rcap *= 2;
      uint32_t *s = realloc(c->starts, rcap * sizeof *s);
      if (!s)
        return -1;
      c->starts = s;
    }
    c->starts[nrec++] = (uint32_t)c->len;
    ts += corpus_rng(&rng) % 5000;
    c->len += corpus_record(c->text + c->len, &rng, id++, ts);
  }
  /* The records whose body fits before the end of the text. */
  c->usable = nrec;
  while (c->usable > 0 && c->starts[c->usable - 1] + body_len > c->len)
    c->usable--;
  c->body_len = body_len;
  if (!c->usable)
    return -1;
  size_t fit = (4u << 20) / (body_len ? body_len : 1);
  c->nbodies = fit < 64 ? 64 : fit;
  if (c->nbodies > c->usable)
    c->nbodies = c->usable;
  c->stride = c->usable / c->nbodies;
  return 0;
}

size_t wsl_corpus_index(const wsl_corpus *c, uint32_t id, uint32_t seq) {
  /* splitmix64 of (id, seq): neighbouring messages start far apart. */
  uint64_t x = ((uint64_t)id << 32 | seq) + 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return (size_t)(x % c->nbodies);
}

const uint8_t *wsl_corpus_at(const wsl_corpus *c, size_t idx) {
  return (const uint8_t *)c->text + c->starts[idx * c->stride];
}
