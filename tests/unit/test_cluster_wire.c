/* Unit tests for the cluster's wire formats (core/cluster/wire.c): the
 * redis:// URL (every accepted form, every rejection with its reason) and
 * the messages nodes exchange (every kind through head + decode, the
 * rejected heads, every truncation of a valid message). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/wire.h"

/* Parses |url|, which must succeed with these fields. */
static void url_ok(const char *url, const char *host, int port,
                   const char *password, int db) {
  websock__cluster_url u;
  const char *why = NULL;
  int r = websock__cluster_url_parse(url, &u, &why);
  if (r != 0)
    ck_abort_msg("%s: rejected (%s)", url, why ? why : "no reason");
  ck_assert_str_eq(u.host, host);
  ck_assert_int_eq(u.port, port);
  ck_assert_str_eq(u.password, password);
  ck_assert_int_eq(u.db, db);
}

/* Parses |url|, which must succeed with these credentials. */
static void url_auth(const char *url, const char *user, const char *password) {
  websock__cluster_url u;
  const char *why = NULL;
  if (websock__cluster_url_parse(url, &u, &why) != 0)
    ck_abort_msg("%s: rejected (%s)", url, why ? why : "no reason");
  ck_assert_str_eq(u.user, user);
  ck_assert_str_eq(u.password, password);
  /* The AUTH command it asks for: AUTH [user] password, or none. */
  const char *argv[3];
  int n = websock__cluster_url_auth(&u, argv);
  ck_assert_int_eq(n, !password[0] ? 0 : user[0] ? 3 : 2);
  if (n) {
    ck_assert_str_eq(argv[0], "AUTH");
    ck_assert_str_eq(argv[n - 1], password);
  }
  if (n == 3)
    ck_assert_str_eq(argv[1], user);
}

/* Parses |url|, which must fail with a reason containing |reason| (words
 * only that failure's reason holds). */
static void url_bad(const char *url, const char *reason) {
  websock__cluster_url u;
  const char *why = NULL;
  int r = websock__cluster_url_parse(url, &u, &why);
  if (r != -1)
    ck_abort_msg("%s: accepted (host \"%s\" port %d db %d)",
                 url ? url : "(null)", u.host, u.port, u.db);
  if (!why)
    ck_abort_msg("%s: no reason", url ? url : "(null)");
  if (!strstr(why, reason))
    ck_abort_msg("%s: reason \"%s\", not about \"%s\"", url ? url : "(null)",
                 why, reason);
}

START_TEST(url_valid) {
  url_ok("redis://h", "h", 6379, "", 0);
  url_ok("redis://localhost", "localhost", 6379, "", 0);
  url_ok("redis://127.0.0.1:6380", "127.0.0.1", 6380, "", 0);
  url_ok("redis://redis.example.com:1/15", "redis.example.com", 1, "", 15);
  url_ok("redis://h:65535", "h", 65535, "", 0);
  url_ok("redis://h/", "h", 6379, "", 0);
  url_ok("redis://h:7000/", "h", 7000, "", 0);
  url_ok("redis://h/0", "h", 6379, "", 0);
  url_ok("redis://h/65535", "h", 6379, "", 65535);
  url_ok("redis://h:6379/3", "h", 6379, "", 3);
  /* Leading zeros: up to six digits. */
  url_ok("redis://h:000080/000007", "h", 80, "", 7);
  /* A password: ":password@" (AUTH password) or "user:password@" (AUTH
   * user password, Redis 6 ACLs); "@" and ":@" are none. */
  url_ok("redis://:secret@h", "h", 6379, "secret", 0);
  url_auth("redis://:secret@h", "", "secret");
  url_auth("redis://alice:secret@h:1234/2", "alice", "secret");
  url_ok("redis://alice:secret@h:1234/2", "h", 1234, "secret", 2);
  url_ok("redis://:@h", "h", 6379, "", 0);
  url_ok("redis://@h", "h", 6379, "", 0);
  url_auth("redis://@h", "", ""); /* no AUTH at all */
  /* The last '@' before the path ends the credentials, the first ':'
   * the user. */
  url_ok("redis://:p@ss@h:1", "h", 1, "p@ss", 0);
  url_auth("redis://u:p:a@s:s@h/9", "u", "p:a@s:s");
  url_ok("redis://u:p:a@s:s@h/9", "h", 6379, "p:a@s:s", 9);
  url_ok("redis://:@@@h", "h", 6379, "@@", 0);
  /* %-escapes in the credentials: '/', '?', '#' and '%' need them. */
  url_ok("redis://:a%2Fb%3fc%23d%25@h", "h", 6379, "a/b?c#d%", 0);
  url_auth("redis://b%40x%3A:p%41@h", "b@x:", "pA");
  url_ok("redis://:%e2%82%ac@h", "h", 6379, "\xe2\x82\xac", 0);
  /* IPv6 in brackets. */
  url_ok("redis://[::1]", "::1", 6379, "", 0);
  url_ok("redis://[::1]:7000/2", "::1", 7000, "", 2);
  url_ok("redis://:pw@[::1]:1", "::1", 1, "pw", 0);
  url_ok("redis://[2001:db8::7]/", "2001:db8::7", 6379, "", 0);
}
END_TEST

/* The longest host and password fit; one byte more is refused. */
START_TEST(url_limits) {
  char url[2048], host[WEBSOCK__CLUSTER_HOST_MAX + 2];
  char pw[WEBSOCK__CLUSTER_PASSWORD_MAX + 2];
  memset(host, 'h', sizeof host - 1);
  host[sizeof host - 1] = 0;
  memset(pw, 'p', sizeof pw - 1);
  pw[sizeof pw - 1] = 0;

  host[WEBSOCK__CLUSTER_HOST_MAX] = 0; /* 255 bytes */
  snprintf(url, sizeof url, "redis://%s:9/1", host);
  url_ok(url, host, 9, "", 1);
  host[WEBSOCK__CLUSTER_HOST_MAX] = 'h'; /* 256 bytes */
  snprintf(url, sizeof url, "redis://%s:9/1", host);
  url_bad(url, "no host");
  snprintf(url, sizeof url, "redis://%s", host);
  url_bad(url, "no host");

  pw[WEBSOCK__CLUSTER_PASSWORD_MAX] = 0; /* 512 bytes */
  snprintf(url, sizeof url, "redis://user:%s@h", pw);
  url_ok(url, "h", 6379, pw, 0);
  snprintf(url, sizeof url, "redis://:%s@h", pw);
  url_ok(url, "h", 6379, pw, 0);
  pw[WEBSOCK__CLUSTER_PASSWORD_MAX] = 'p'; /* 513 bytes */
  snprintf(url, sizeof url, "redis://user:%s@h", pw);
  url_bad(url, "too long");
  snprintf(url, sizeof url, "redis://:%s@h", pw);
  url_bad(url, "too long");

  host[WEBSOCK__CLUSTER_USER_MAX] = 0; /* a user of 255 bytes */
  snprintf(url, sizeof url, "redis://%s:pw@h", host);
  url_auth(url, host, "pw");
  host[WEBSOCK__CLUSTER_USER_MAX] = 'h'; /* 256 bytes */
  snprintf(url, sizeof url, "redis://%s:pw@h", host);
  url_bad(url, "user name is too long");
}
END_TEST

START_TEST(url_rejected) {
  /* The scheme. */
  url_bad(NULL, "is not redis://");
  url_bad("", "is not redis://");
  url_bad("redis:/h", "is not redis://");
  url_bad("redis:h", "is not redis://");
  url_bad("rediss://h", "is not redis://");
  url_bad("REDIS://h", "is not redis://");
  url_bad("http://h", "is not redis://");
  url_bad(" redis://h", "is not redis://");
  url_bad("unix:///tmp/redis.sock", "is not redis://");
  /* The host. */
  url_bad("redis://", "no host");
  url_bad("redis://:6379", "no host");
  url_bad("redis:///0", "no host");
  url_bad("redis://:pw@", "no host");
  url_bad("redis://:pw@:6379", "no host");
  url_bad("redis://:pw@/1", "no host");
  url_bad("redis://h/1@x", "something after"); /* '@' after the path */
  url_bad("redis://[]", "no host");
  url_bad("redis://[::1", "no host");
  url_bad("redis://::1", "no host");
  url_bad("redis://[::1]x", "something after");
  url_bad("redis://h]", "something after");
  url_bad("redis://[a/b]", "no host");
  /* The credentials. */
  url_bad("redis://alice@h", "user without a password");
  url_bad("redis://alice:@h", "user without a password");
  url_bad("redis://:a%2@h", "%-escape");
  url_bad("redis://:a%zz@h", "%-escape");
  url_bad("redis://:a%00b@h", "%-escape");
  url_bad("redis://a%:p@h", "%-escape");
  url_bad("redis://:a/b@h", "no host"); /* an unescaped '/' ends it */
  /* The port. */
  url_bad("redis://h:", "port is not");
  url_bad("redis://h:0", "port is not");
  url_bad("redis://h:00000", "port is not");
  url_bad("redis://h:65536", "port is not");
  url_bad("redis://h:99999", "port is not");
  url_bad("redis://h:999999", "port is not");
  url_bad("redis://h:1000000", "port is not");
  url_bad("redis://h:6379000", "port is not");
  url_bad("redis://h:0000001", "port is not");
  url_bad("redis://h:abc", "port is not");
  url_bad("redis://h:-1", "port is not");
  url_bad("redis://h:+1", "port is not");
  url_bad("redis://h: 1", "port is not");
  url_bad("redis://h:/1", "port is not");
  url_bad("redis://h::1", "port is not");
  /* The database. */
  url_bad("redis://h/x", "database");
  url_bad("redis://h/-1", "database");
  url_bad("redis://h/+1", "database");
  url_bad("redis://h//", "database");
  url_bad("redis://h//1", "database");
  url_bad("redis://h:1/x", "database");
  url_bad("redis://h/65536", "database");
  url_bad("redis://h/1000000", "database");
  /* Anything after host[:port][/db]. */
  url_bad("redis://h:1x", "something after");
  url_bad("redis://h:1 ", "something after");
  url_bad("redis://h/1/2", "something after");
  url_bad("redis://h/1/", "something after");
  url_bad("redis://h/1x", "something after");
  url_bad("redis://h:1/2?x=1", "something after");
  url_bad("redis://h/?db=1", "database");
  url_bad("redis://h:6379:6380", "something after");
}
END_TEST

/* A failure leaves no stale fields: parse a full URL, then a bad one into
 * the same struct, then a bare host. */
START_TEST(url_reset) {
  websock__cluster_url u;
  const char *why = NULL;
  ck_assert_int_eq(websock__cluster_url_parse("redis://u:pw@h:1/2", &u, &why),
                   0);
  ck_assert_int_eq(websock__cluster_url_parse("redis://x:0", &u, &why), -1);
  ck_assert_ptr_nonnull(why);
  ck_assert_int_eq(websock__cluster_url_parse("redis://x", &u, &why), 0);
  ck_assert_str_eq(u.host, "x");
  ck_assert_str_eq(u.password, "");
  ck_assert_int_eq(u.port, 6379);
  ck_assert_int_eq(u.db, 0);
}
END_TEST

/* Builds head + name + data for |msg| into |buf|; returns the length. */
static size_t msg_build(uint8_t *buf, const websock__cluster_msg *msg) {
  websock__cluster_msg_head(buf, msg);
  if (msg->name_len)
    memcpy(buf + WEBSOCK__CLUSTER_HEAD, msg->name, msg->name_len);
  if (msg->len)
    memcpy(buf + WEBSOCK__CLUSTER_HEAD + msg->name_len, msg->data, msg->len);
  return WEBSOCK__CLUSTER_HEAD + msg->name_len + msg->len;
}

static void msg_check(const uint8_t *buf, size_t n,
                      const websock__cluster_msg *want) {
  websock__cluster_msg got;
  memset(&got, 0xAA, sizeof got);
  ck_assert_int_eq(websock__cluster_msg_decode(buf, n, &got), 0);
  ck_assert_int_eq(got.kind, want->kind);
  ck_assert_uint_eq(got.origin, want->origin);
  ck_assert_uint_eq(got.id, want->id);
  ck_assert_int_eq(got.opcode, want->opcode);
  ck_assert_int_eq(got.code, want->code);
  ck_assert_uint_eq(got.name_len, want->name_len);
  ck_assert_ptr_eq(got.name, buf + WEBSOCK__CLUSTER_HEAD);
  if (want->name_len)
    ck_assert_mem_eq(got.name, want->name, want->name_len);
  ck_assert_uint_eq(got.len, want->len);
  ck_assert_ptr_eq(got.data, buf + WEBSOCK__CLUSTER_HEAD + want->name_len);
  if (want->len)
    ck_assert_mem_eq(got.data, want->data, want->len);
  /* The head written again is the head read. */
  uint8_t head[WEBSOCK__CLUSTER_HEAD];
  websock__cluster_msg_head(head, &got);
  ck_assert_mem_eq(head, buf, WEBSOCK__CLUSTER_HEAD);
}

/* Every kind, with names and data of several sizes and extreme numbers. */
START_TEST(msg_roundtrip) {
  static uint8_t name[255], data[1000];
  for (size_t i = 0; i < sizeof name; i++)
    name[i] = (uint8_t)(i * 7 + 1);
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 13);
  static const size_t name_lens[] = {0, 1, 5, 254, 255};
  static const size_t data_lens[] = {0, 1, 2, 125, 1000};
  static const unsigned origins[] = {0, 1, 0x1234, 0xFFFF};
  static const uint64_t ids[] = {0, 1, 0x0102030405060708ull,
                                 0x8000000000000000ull, UINT64_MAX};
  static const int codes[] = {0, 1000, 1011, 4999, 65535};
  static uint8_t buf[WEBSOCK__CLUSTER_HEAD + sizeof name + sizeof data];
  for (int kind = WEBSOCK__CM_PUBLISH; kind <= WEBSOCK__CM_KIND_MAX; kind++)
    for (size_t a = 0; a < 5; a++)
      for (size_t b = 0; b < 5; b++) {
        websock__cluster_msg m = {
            .kind = kind,
            .origin = origins[(a + b) % 4],
            .id = ids[(a * 3 + b) % 5],
            .opcode = (int)((a + b + (size_t)kind) % 16) * 17 % 256,
            .code = codes[(a + 2 * b) % 5],
            .name = name_lens[a] ? name : NULL,
            .name_len = name_lens[a],
            .data = data_lens[b] ? data : NULL,
            .len = data_lens[b],
        };
        size_t n = msg_build(buf, &m);
        ck_assert_uint_eq(n, WEBSOCK__CLUSTER_HEAD + m.name_len + m.len);
        msg_check(buf, n, &m);
      }
}
END_TEST

/* The head's bytes: big-endian numbers where wire.h says. */
START_TEST(msg_head_layout) {
  websock__cluster_msg m = {.kind = WEBSOCK__CM_SEND,
                            .origin = 0xBEEF,
                            .id = 0x1122334455667788ull,
                            .opcode = 0x82,
                            .code = 0x03E8,
                            .name_len = 0xAB};
  uint8_t head[WEBSOCK__CLUSTER_HEAD];
  websock__cluster_msg_head(head, &m);
  static const uint8_t want[WEBSOCK__CLUSTER_HEAD] = {
      3,    0xBE, 0xEF, 0x11, 0x22, 0x33, 0x44, 0x55,
      0x66, 0x77, 0x88, 0x82, 0x03, 0xE8, 0xAB};
  ck_assert_mem_eq(head, want, sizeof want);
  ck_assert_int_eq(WEBSOCK__CM_PUBLISH, 1);
  ck_assert_int_eq(WEBSOCK__CM_KIND_MAX, WEBSOCK__CM_NODE_GONE);
  ck_assert_int_eq(WEBSOCK__CM_KIND_MAX, 7);
}
END_TEST

START_TEST(msg_rejected) {
  uint8_t buf[64] = {0};
  websock__cluster_msg out;
  buf[0] = WEBSOCK__CM_PUBLISH;
  /* Shorter than the head, even with a valid kind and no name. */
  ck_assert_int_eq(websock__cluster_msg_decode(NULL, 0, &out), -1);
  for (size_t n = 0; n < WEBSOCK__CLUSTER_HEAD; n++)
    ck_assert_int_eq(websock__cluster_msg_decode(buf, n, &out), -1);
  ck_assert_int_eq(
      websock__cluster_msg_decode(buf, WEBSOCK__CLUSTER_HEAD, &out), 0);
  ck_assert_uint_eq(out.len, 0);
  ck_assert_uint_eq(out.name_len, 0);
  /* Every kind byte: only 1..KIND_MAX decode. */
  for (int k = 0; k < 256; k++) {
    buf[0] = (uint8_t)k;
    int want = k >= WEBSOCK__CM_PUBLISH && k <= WEBSOCK__CM_KIND_MAX ? 0 : -1;
    if (websock__cluster_msg_decode(buf, sizeof buf, &out) != want)
      ck_abort_msg("kind %d", k);
    if (want == 0)
      ck_assert_int_eq(out.kind, k);
  }
  /* A name longer than what follows the head. */
  buf[0] = WEBSOCK__CM_TAG_CLAIMED;
  for (int nl = 0; nl < 256; nl++) {
    buf[14] = (uint8_t)nl;
    for (size_t n = WEBSOCK__CLUSTER_HEAD; n <= sizeof buf; n++) {
      int want = (size_t)nl <= n - WEBSOCK__CLUSTER_HEAD ? 0 : -1;
      if (websock__cluster_msg_decode(buf, n, &out) != want)
        ck_abort_msg("name_len %d, n %zu", nl, n);
      if (want == 0)
        ck_assert_uint_eq(out.len, n - WEBSOCK__CLUSTER_HEAD - (size_t)nl);
    }
  }
}
END_TEST

/* Every prefix of valid messages, each in an exact-size copy (so ASan sees
 * a read past its end): -1 before the name's end, 0 from there with the
 * data the prefix holds. */
START_TEST(msg_truncated) {
  static const char *names[] = {"", "t", "room/42", "tag:user:alice"};
  static const char data[] = "hello, the other nodes";
  for (int kind = WEBSOCK__CM_PUBLISH; kind <= WEBSOCK__CM_KIND_MAX; kind++)
    for (size_t ni = 0; ni < 4; ni++) {
      websock__cluster_msg m = {.kind = kind,
                                .origin = 7,
                                .id = 99,
                                .opcode = 1,
                                .code = 1000,
                                .name = (const uint8_t *)names[ni],
                                .name_len = strlen(names[ni]),
                                .data = (const uint8_t *)data,
                                .len = sizeof data - 1};
      uint8_t full[WEBSOCK__CLUSTER_HEAD + 32 + sizeof data];
      size_t total = msg_build(full, &m);
      size_t need = WEBSOCK__CLUSTER_HEAD + m.name_len;
      for (size_t n = 0; n <= total; n++) {
        uint8_t *p = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(p);
        memcpy(p, full, n);
        websock__cluster_msg got;
        int r = websock__cluster_msg_decode(p, n, &got);
        if (r != (n < need ? -1 : 0))
          ck_abort_msg("kind %d name \"%s\": %d at %zu of %zu", kind, names[ni],
                       r, n, total);
        if (r == 0) {
          websock__cluster_msg want = m;
          want.len = n - need;
          msg_check(p, n, &want);
        }
        free(p);
      }
    }
}
END_TEST

static Suite *cluster_wire_suite(void) {
  Suite *s = suite_create("cluster_wire");
  TCase *tc = tcase_create("url");
  tcase_add_test(tc, url_valid);
  tcase_add_test(tc, url_limits);
  tcase_add_test(tc, url_rejected);
  tcase_add_test(tc, url_reset);
  suite_add_tcase(s, tc);
  tc = tcase_create("msg");
  tcase_add_test(tc, msg_roundtrip);
  tcase_add_test(tc, msg_head_layout);
  tcase_add_test(tc, msg_rejected);
  tcase_add_test(tc, msg_truncated);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(cluster_wire_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
