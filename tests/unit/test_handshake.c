/* Unit tests for the HTTP request parser and the WebSocket handshake
 * (core/proto/handshake.c): request tables split at every position and
 * ending at a guard page, header/token rules, keys, versions, responses. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/handshake.h"
#include "split_helpers.h"

#define MAX_HEAD 8192

#define GOOD_HEADERS                                                           \
  "Host: example.com\r\n"                                                      \
  "Upgrade: websocket\r\n"                                                     \
  "Connection: Upgrade\r\n"                                                    \
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                            \
  "Sec-WebSocket-Version: 13\r\n"

#define GOOD_REQUEST "GET /chat?room=1 HTTP/1.1\r\n" GOOD_HEADERS "\r\n"

/* Parses |req| from every prefix length, each placed to end at a guard
 * page: shorter prefixes give NEED_MORE (or, for a bad request, the same
 * error early), the whole gives |want|. Returns the final result with
 * |out| filled from a stable copy. */
static ssize_t parse_all_prefixes(const char *s, size_t n, size_t max_len,
                                  websock__http_request *out, char *stable) {
  test_guard g;
  test_guard_init(&g, n);
  websock__http_request req;
  ssize_t final = websock__http_parse_request(
      (const char *)test_guard_place(&g, s, n), n, max_len, &req);
  for (size_t k = 0; k < n; k++) {
    const char *p = (const char *)test_guard_place(&g, s, k);
    ssize_t r = websock__http_parse_request(p, k, max_len, &req);
    if (final > 0) {
      /* a complete head is only complete once all of it is there */
      if (k < (size_t) final)
        TEST_REQUIRE(r == WEBSOCK__HTTP_NEED_MORE ||
                     (r == WEBSOCK__HTTP_ERR_TOO_LARGE && k >= max_len));
      else
        TEST_REQUIRE(r == final);
    } else if (final < 0) {
      TEST_REQUIRE(r == WEBSOCK__HTTP_NEED_MORE || r == final);
    } else {
      TEST_REQUIRE(r == WEBSOCK__HTTP_NEED_MORE);
    }
  }
  test_guard_free(&g);
  memcpy(stable, s, n);
  ssize_t r = websock__http_parse_request(stable, n, max_len, out);
  ck_assert_int_eq(r, final);
  return r;
}

typedef struct http_case {
  const char *name;
  const char *req;
  ssize_t want; /* > 0: the head length is strlen(req) - want_trailing */
  size_t trailing;
} http_case;

#define OK_HEAD 1

static const http_case http_cases[] = {
    {"good", GOOD_REQUEST, OK_HEAD, 0},
    {"good with body after", GOOD_REQUEST "\x81\x85garbage", OK_HEAD, 9},
    {"bare LF", "GET / HTTP/1.1\nHost: a\nX: y\n\n", OK_HEAD, 0},
    {"mixed endings", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\n", OK_HEAD, 0},
    {"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", OK_HEAD, 0},
    {"no headers", "GET / HTTP/1.1\r\n\r\n", OK_HEAD, 0},
    {"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", OK_HEAD, 0},
    {"empty value", "GET / HTTP/1.1\r\nX-Empty:\r\nY:   \r\n\r\n", OK_HEAD, 0},
    {"8-bit value", "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", OK_HEAD, 0},
    {"incomplete", "GET / HTTP/1.1\r\nHost: a\r\n", 0, 0},
    {"incomplete request line", "GET / HT", 0, 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"HTTP/1.10", "GET / HTTP/1.10\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"lowercase http", "GET / http/1.1\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST,
     0},
    {"no version", "GET /\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"no target", "GET  HTTP/1.1\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"no method", " / HTTP/1.1\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"double space", "GET  / HTTP/1.1\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST,
     0},
    {"tab separator", "GET\t/ HTTP/1.1\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST,
     0},
    {"control in target", "GET /\x01 HTTP/1.1\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"bare CR", "GET / HTTP/1.1\rHost: a\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"bare CR in value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"non-token name", "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"obs-fold", "GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"NUL in value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"DEL in value", "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"control in unfinished line", "GET / HTTP/1.1\r\nX: \x01",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
    {"binary garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0},
};

START_TEST(test_http_table) {
  const http_case *c = &http_cases[_i];
  /* the one case with an embedded NUL goes on after it */
  size_t n = strlen(c->req);
  if (strcmp(c->name, "NUL in value") == 0)
    n = strlen(c->req) + 1 + strlen(c->req + strlen(c->req) + 1);
  char *stable = malloc(n + 1);
  websock__http_request req;
  ssize_t r = parse_all_prefixes(c->req, n, MAX_HEAD, &req, stable);
  if (c->want == OK_HEAD)
    ck_assert_int_eq(r, (ssize_t)(n - c->trailing));
  else
    ck_assert_int_eq(r, c->want);
  free(stable);
}
END_TEST

START_TEST(test_http_fields) {
  static const char s[] = "GET /chat?room=1&x=%20 HTTP/1.1\r\n"
                          "Host:example.com:8080 \r\n"
                          "X-Tabs:\t a b \t\r\n"
                          "x-empty:\r\n"
                          "\r\n";
  char stable[sizeof s];
  websock__http_request req;
  ssize_t r = parse_all_prefixes(s, sizeof s - 1, MAX_HEAD, &req, stable);
  ck_assert_int_eq(r, (ssize_t)(sizeof s - 1));
  ck_assert_uint_eq(req.method_len, 3);
  ck_assert_mem_eq(req.method, "GET", 3);
  ck_assert_uint_eq(req.target_len, strlen("/chat?room=1&x=%20"));
  ck_assert_mem_eq(req.target, "/chat?room=1&x=%20", req.target_len);
  ck_assert_int_eq(req.minor_version, 1);
  ck_assert_uint_eq(req.num_headers, 3);
  ck_assert_uint_eq(req.headers[0].value_len, strlen("example.com:8080"));
  ck_assert_mem_eq(req.headers[0].value, "example.com:8080", 16);
  ck_assert_uint_eq(req.headers[1].value_len, 3);
  ck_assert_mem_eq(req.headers[1].value, "a b", 3);
  ck_assert_uint_eq(req.headers[2].value_len, 0);
  const websock__http_header *h = websock__http_find_header(&req, "HOST");
  ck_assert_ptr_eq(h, &req.headers[0]);
  ck_assert_ptr_eq(websock__http_find_header(&req, "X-EMPTY"), &req.headers[2]);
  ck_assert_ptr_null(websock__http_find_header(&req, "Hos"));
  ck_assert_ptr_null(websock__http_find_header(&req, "Hostt"));
  /* results point into the buffer */
  ck_assert(req.method == stable);
}
END_TEST

/* max_len: a head that does not end within it is TOO_LARGE, not before. */
START_TEST(test_http_too_large) {
  static const char s[] = GOOD_REQUEST;
  size_t n = sizeof s - 1;
  websock__http_request req;
  ck_assert_int_eq(websock__http_parse_request(s, n, n, &req), (ssize_t)n);
  ck_assert_int_eq(websock__http_parse_request(s, n, n - 1, &req),
                   WEBSOCK__HTTP_ERR_TOO_LARGE);
  ck_assert_int_eq(websock__http_parse_request(s, n - 1, n, &req),
                   WEBSOCK__HTTP_NEED_MORE);
  ck_assert_int_eq(websock__http_parse_request(s, n - 1, n - 1, &req),
                   WEBSOCK__HTTP_ERR_TOO_LARGE);
  ck_assert_int_eq(websock__http_parse_request(s, 0, 0, &req),
                   WEBSOCK__HTTP_ERR_TOO_LARGE);
  /* endless header line */
  char *big = malloc(MAX_HEAD * 2);
  memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
  memset(big + 19, 'a', MAX_HEAD * 2 - 19);
  ck_assert_int_eq(
      websock__http_parse_request(big, MAX_HEAD * 2, MAX_HEAD, &req),
      WEBSOCK__HTTP_ERR_TOO_LARGE);
  ck_assert_int_eq(
      websock__http_parse_request(big, MAX_HEAD - 1, MAX_HEAD, &req),
      WEBSOCK__HTTP_NEED_MORE);
  free(big);
}
END_TEST

static size_t build_many_headers(char *buf, size_t cap, size_t count) {
  size_t n = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
  for (size_t i = 0; i < count; i++)
    n += (size_t)snprintf(buf + n, cap - n, "X-%zu: v\r\n", i);
  n += (size_t)snprintf(buf + n, cap - n, "\r\n");
  return n;
}

START_TEST(test_http_too_many_headers) {
  char buf[4096];
  websock__http_request req;
  size_t n = build_many_headers(buf, sizeof buf, WEBSOCK__HTTP_MAX_HEADERS);
  ck_assert_int_eq(websock__http_parse_request(buf, n, MAX_HEAD, &req),
                   (ssize_t)n);
  ck_assert_uint_eq(req.num_headers, WEBSOCK__HTTP_MAX_HEADERS);
  n = build_many_headers(buf, sizeof buf, WEBSOCK__HTTP_MAX_HEADERS + 1);
  char *stable = malloc(n);
  ck_assert_int_eq(parse_all_prefixes(buf, n, MAX_HEAD, &req, stable),
                   WEBSOCK__HTTP_ERR_TOO_LARGE);
  free(stable);
  /* a malformed line past the limit is a bad request, not too many, so the
   * answer does not depend on whether its end has arrived */
  n = build_many_headers(buf, sizeof buf, WEBSOCK__HTTP_MAX_HEADERS);
  memcpy(buf + n - 2, "Bad Name: v\r\n\r\n", 15);
  n += 13;
  stable = malloc(n);
  ck_assert_int_eq(parse_all_prefixes(buf, n, MAX_HEAD, &req, stable),
                   WEBSOCK__HTTP_ERR_BAD_REQUEST);
  free(stable);
}
END_TEST

/* Random splits: growing prefixes in random steps (what a server does as
 * reads arrive) reach the same result. */
START_TEST(test_http_random_growth) {
  test_rng rng;
  test_rng_seed(&rng, 99);
  static const char s[] = GOOD_REQUEST;
  size_t n = sizeof s - 1;
  websock__http_request req;
  for (int it = 0; it < 500; it++) {
    size_t have = 0;
    ssize_t r = 0;
    while (r == 0) {
      ck_assert_uint_lt(have, n + 1);
      have += test_rng_range(&rng, 1, 16);
      if (have > n)
        have = n;
      r = websock__http_parse_request(s, have, MAX_HEAD, &req);
    }
    ck_assert_int_eq(r, (ssize_t)n);
    ck_assert_uint_eq(have, n);
  }
}
END_TEST

/* ---- token lists ---- */

static void parse_or_die(const char *s, websock__http_request *req) {
  ssize_t r = websock__http_parse_request(s, strlen(s), MAX_HEAD, req);
  ck_assert_int_eq(r, (ssize_t)strlen(s));
}

START_TEST(test_tokens) {
  websock__http_request req;
  parse_or_die("GET / HTTP/1.1\r\n"
               "connection: keep-alive, Upgrade\r\n"
               "UPGRADE: foo/1 ,WebSocket\r\n"
               "X-List: ,, a ,\t b\t,\r\n"
               "X-List: c\r\n"
               "X-Near: upgrades, xupgrade, up grade\r\n"
               "\r\n",
               &req);
  ck_assert(websock__http_header_has_token(&req, "Connection", "upgrade"));
  ck_assert(websock__http_header_has_token(&req, "CONNECTION", "keep-alive"));
  ck_assert(websock__http_header_has_token(&req, "upgrade", "websocket"));
  ck_assert(websock__http_header_has_token(&req, "Upgrade", "FOO/1"));
  ck_assert(websock__http_header_has_token(&req, "x-list", "a"));
  ck_assert(websock__http_header_has_token(&req, "x-list", "b"));
  ck_assert(websock__http_header_has_token(&req, "x-list", "c"));
  ck_assert(!websock__http_header_has_token(&req, "x-list", ""));
  ck_assert(!websock__http_header_has_token(&req, "X-Near", "upgrade"));
  ck_assert(!websock__http_header_has_token(&req, "Missing", "a"));
  ck_assert(!websock__http_header_has_token(&req, "Connection", "upgrad"));
}
END_TEST

/* ---- handshake_check ---- */

typedef struct hs_case {
  const char *name;
  const char *req;
  int want;
} hs_case;

#define REQ(line, headers) line "\r\n" headers "\r\n"
#define HOST "Host: example.com\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define VER "Sec-WebSocket-Version: 13\r\n"
#define GET "GET /chat HTTP/1.1"

static const hs_case hs_cases[] = {
    {"good", REQ(GET, HOST UPG CONN KEY VER), WEBSOCK__HS_OK},
    {"good, other order", REQ(GET, VER KEY CONN UPG HOST), WEBSOCK__HS_OK},
    {"case-insensitive names and values",
     REQ(GET, "host: a\r\nUPGRADE: WebSocket\r\nconnection: upgrade\r\n"
              "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "SEC-WEBSOCKET-VERSION: 13\r\n"),
     WEBSOCK__HS_OK},
    {"connection token list",
     REQ(GET, HOST UPG "Connection: keep-alive,  Upgrade \r\n" KEY VER),
     WEBSOCK__HS_OK},
    {"connection split over headers",
     REQ(GET,
         HOST UPG "Connection: keep-alive\r\nConnection: upgrade\r\n" KEY VER),
     WEBSOCK__HS_OK},
    {"upgrade token list",
     REQ(GET, HOST "Upgrade: h2c, websocket\r\n" CONN KEY VER), WEBSOCK__HS_OK},
    {"HTTP/1.9", REQ("GET / HTTP/1.9", HOST UPG CONN KEY VER), WEBSOCK__HS_OK},
    {"key other value",
     REQ(GET,
         HOST UPG CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n" VER),
     WEBSOCK__HS_OK},
    {"key with +/",
     REQ(GET,
         HOST UPG CONN "Sec-WebSocket-Key: ++//++//++//++//+/+/+w==\r\n" VER),
     WEBSOCK__HS_OK},
    {"plain GET", REQ(GET, HOST), WEBSOCK__HS_NOT_UPGRADE},
    {"plain POST", REQ("POST /form HTTP/1.1", HOST), WEBSOCK__HS_NOT_UPGRADE},
    {"upgrade to h2c only", REQ(GET, HOST "Upgrade: h2c\r\n" CONN KEY VER),
     WEBSOCK__HS_NOT_UPGRADE},
    {"missing upgrade", REQ(GET, HOST CONN KEY VER), WEBSOCK__HS_NOT_UPGRADE},
    {"POST upgrade", REQ("POST /chat HTTP/1.1", HOST UPG CONN KEY VER),
     WEBSOCK__HS_BAD_METHOD},
    {"lowercase get", REQ("get /chat HTTP/1.1", HOST UPG CONN KEY VER),
     WEBSOCK__HS_BAD_METHOD},
    {"HTTP/1.0 upgrade", REQ("GET /chat HTTP/1.0", HOST UPG CONN KEY VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"missing host", REQ(GET, UPG CONN KEY VER), WEBSOCK__HS_BAD_REQUEST},
    {"two hosts", REQ(GET, HOST HOST UPG CONN KEY VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"missing connection", REQ(GET, HOST UPG KEY VER), WEBSOCK__HS_BAD_REQUEST},
    {"connection without upgrade",
     REQ(GET, HOST UPG "Connection: keep-alive\r\n" KEY VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"missing key", REQ(GET, HOST UPG CONN VER), WEBSOCK__HS_BAD_REQUEST},
    {"two keys", REQ(GET, HOST UPG CONN KEY KEY VER), WEBSOCK__HS_BAD_REQUEST},
    {"missing version", REQ(GET, HOST UPG CONN KEY), WEBSOCK__HS_BAD_VERSION},
    {"version 8", REQ(GET, HOST UPG CONN KEY "Sec-WebSocket-Version: 8\r\n"),
     WEBSOCK__HS_BAD_VERSION},
    {"version 013",
     REQ(GET, HOST UPG CONN KEY "Sec-WebSocket-Version: 013\r\n"),
     WEBSOCK__HS_BAD_VERSION},
    {"version 13, 8",
     REQ(GET, HOST UPG CONN KEY "Sec-WebSocket-Version: 13, 8\r\n"),
     WEBSOCK__HS_BAD_VERSION},
    {"version empty", REQ(GET, HOST UPG CONN KEY "Sec-WebSocket-Version:\r\n"),
     WEBSOCK__HS_BAD_VERSION},
    {"two versions", REQ(GET, HOST UPG CONN KEY VER VER),
     WEBSOCK__HS_BAD_VERSION},
    {"version trailing space trimmed",
     REQ(GET, HOST UPG CONN KEY "Sec-WebSocket-Version:  13  \r\n"),
     WEBSOCK__HS_OK},
    {"bad version and bad key",
     REQ(GET, HOST UPG CONN "Sec-WebSocket-Key: x\r\n"
                            "Sec-WebSocket-Version: 7\r\n"),
     WEBSOCK__HS_BAD_VERSION},
    {"key 23 chars",
     REQ(GET,
         HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n" VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"key 25 chars",
     REQ(GET,
         HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===\r\n" VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"key no padding",
     REQ(GET,
         HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAA\r\n" VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"key 17 bytes (one '=')",
     REQ(GET,
         HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQA=\r\n" VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"key url-safe chars",
     REQ(GET,
         HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j-_==\r\n" VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"key inner space",
     REQ(GET,
         HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ==\r\n" VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"key non-canonical last char",
     REQ(GET,
         HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n" VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"key padding inside",
     REQ(GET,
         HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2=jZQ==\r\n" VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"key empty", REQ(GET, HOST UPG CONN "Sec-WebSocket-Key:\r\n" VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"absolute-form target",
     REQ("GET http://a/chat HTTP/1.1", HOST UPG CONN KEY VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"asterisk target", REQ("GET * HTTP/1.1", HOST UPG CONN KEY VER),
     WEBSOCK__HS_BAD_REQUEST},
    {"protocols",
     REQ(GET,
         HOST UPG CONN KEY VER "Sec-WebSocket-Protocol: chat, superchat\r\n"),
     WEBSOCK__HS_OK},
    {"protocol not a token",
     REQ(GET, HOST UPG CONN KEY VER "Sec-WebSocket-Protocol: a b\r\n"),
     WEBSOCK__HS_BAD_REQUEST},
};

START_TEST(test_handshake_table) {
  const hs_case *c = &hs_cases[_i];
  size_t n = strlen(c->req);
  char *stable = malloc(n);
  websock__http_request req;
  ck_assert_int_eq(parse_all_prefixes(c->req, n, MAX_HEAD, &req, stable),
                   (ssize_t)n);
  websock__handshake hs;
  int r = websock__handshake_check(&req, &hs);
  if (r != c->want)
    ck_abort_msg("%s: got %d want %d", c->name, r, c->want);
  if (r == WEBSOCK__HS_OK) {
    ck_assert_uint_eq(hs.key_len, 24);
    ck_assert_ptr_nonnull(hs.host);
  }
  if (r == WEBSOCK__HS_OK || r == WEBSOCK__HS_NOT_UPGRADE)
    ck_assert_ptr_nonnull(hs.path);
  free(stable);
}
END_TEST

START_TEST(test_handshake_fields) {
  websock__http_request req;
  websock__handshake hs;
  parse_or_die("GET /a/b?x=1&y=2 HTTP/1.1\r\n" HOST UPG CONN KEY VER
               "Origin: https://example.org\r\n"
               "Sec-WebSocket-Protocol: chat, , superchat\r\n"
               "X-Other: 1\r\n"
               "sec-websocket-protocol:v2.bin\r\n"
               "\r\n",
               &req);
  ck_assert_int_eq(websock__handshake_check(&req, &hs), WEBSOCK__HS_OK);
  ck_assert_uint_eq(hs.path_len, 4);
  ck_assert_mem_eq(hs.path, "/a/b", 4);
  ck_assert_uint_eq(hs.query_len, 7);
  ck_assert_mem_eq(hs.query, "x=1&y=2", 7);
  ck_assert_uint_eq(hs.host_len, 11);
  ck_assert_mem_eq(hs.host, "example.com", 11);
  ck_assert_uint_eq(hs.origin_len, 19);
  ck_assert_mem_eq(hs.origin, "https://example.org", 19);
  ck_assert_mem_eq(hs.key, "dGhlIHNhbXBsZSBub25jZQ==", 24);
  ck_assert_uint_eq(hs.num_protocols, 3);
  ck_assert_uint_eq(hs.protocol_lens[0], 4);
  ck_assert_mem_eq(hs.protocols[0], "chat", 4);
  ck_assert_mem_eq(hs.protocols[1], "superchat", 9);
  ck_assert_uint_eq(hs.protocol_lens[2], 6);
  ck_assert_mem_eq(hs.protocols[2], "v2.bin", 6);

  /* no query, no origin, no protocols; "?" alone gives an empty query */
  parse_or_die("GET / HTTP/1.1\r\n" HOST UPG CONN KEY VER "\r\n", &req);
  ck_assert_int_eq(websock__handshake_check(&req, &hs), WEBSOCK__HS_OK);
  ck_assert_uint_eq(hs.path_len, 1);
  ck_assert_ptr_null(hs.query);
  ck_assert_ptr_null(hs.origin);
  ck_assert_uint_eq(hs.num_protocols, 0);
  parse_or_die("GET /p? HTTP/1.1\r\n" HOST "\r\n", &req);
  ck_assert_int_eq(websock__handshake_check(&req, &hs),
                   WEBSOCK__HS_NOT_UPGRADE);
  ck_assert_uint_eq(hs.path_len, 2);
  ck_assert_ptr_nonnull(hs.query);
  ck_assert_uint_eq(hs.query_len, 0);
  ck_assert_uint_eq(hs.host_len, 11);
}
END_TEST

START_TEST(test_too_many_protocols) {
  char buf[2048];
  websock__http_request req;
  websock__handshake hs;
  for (size_t count = 15; count <= 17; count++) {
    size_t n = (size_t)snprintf(buf, sizeof buf,
                                "GET / HTTP/1.1\r\n" HOST UPG CONN KEY VER
                                "Sec-WebSocket-Protocol: p0");
    for (size_t i = 1; i < count; i++)
      n += (size_t)snprintf(buf + n, sizeof buf - n, ", p%zu", i);
    snprintf(buf + n, sizeof buf - n, "\r\n\r\n");
    parse_or_die(buf, &req);
    int want = count <= WEBSOCK__MAX_SUBPROTOCOLS ? WEBSOCK__HS_OK
                                                  : WEBSOCK__HS_BAD_REQUEST;
    ck_assert_int_eq(websock__handshake_check(&req, &hs), want);
  }
}
END_TEST

/* ---- accept key and responses ---- */

START_TEST(test_accept_key) {
  char out[29];
  websock__handshake_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
  ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  /* long keys go through the streaming path and still work */
  char longkey[100];
  memset(longkey, 'k', sizeof longkey);
  char a[29], b[29];
  websock__handshake_accept_key(longkey, sizeof longkey, a);
  websock__handshake_accept_key(longkey, sizeof longkey, b);
  ck_assert_uint_eq(strlen(a), 28);
  ck_assert_str_eq(a, b);
  websock__handshake_accept_key(longkey, 64, a);
  websock__handshake_accept_key(longkey, 65, b);
  ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_handshake_response) {
  static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: "
                             "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                             "\r\n";
  static const char want_p[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: "
                               "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Protocol: chat\r\n"
                               "\r\n";
  char out[512];
  const char *acc = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
  size_t n = websock__handshake_response(out, sizeof out, acc, NULL, NULL, 0);
  ck_assert_uint_eq(n, sizeof want - 1);
  ck_assert_mem_eq(out, want, n);
  n = websock__handshake_response(out, sizeof out, acc, "chat", NULL, 0);
  ck_assert_uint_eq(n, sizeof want_p - 1);
  ck_assert_mem_eq(out, want_p, n);
  for (size_t cap = 0; cap < sizeof want_p - 1; cap++)
    ck_assert_uint_eq(
        websock__handshake_response(out, cap, acc, "chat", NULL, 0), 0);
  ck_assert_uint_eq(
      websock__handshake_response(out, sizeof out, acc, "a\r\nX: y", NULL, 0),
      0);
}
END_TEST

START_TEST(test_http_response) {
  static const char want426[] = "HTTP/1.1 426 Upgrade Required\r\n"
                                "Sec-WebSocket-Version: 13\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: close\r\n"
                                "Content-Type: text/plain\r\n"
                                "Content-Length: 5\r\n"
                                "\r\n"
                                "nope\n";
  char out[512];
  size_t n = websock__http_response(out, sizeof out, 426, NULL, "nope\n", 5, 1,
                                    NULL, 0);
  ck_assert_uint_eq(n, sizeof want426 - 1);
  ck_assert_mem_eq(out, want426, n);
  /* head only */
  n = websock__http_response(out, sizeof out, 426, NULL, "nope\n", 5, 0, NULL,
                             0);
  ck_assert_uint_eq(n, sizeof want426 - 1 - 5);
  ck_assert_mem_eq(out, want426, n);
  for (size_t cap = 0; cap < sizeof want426 - 1; cap++)
    ck_assert_uint_eq(
        websock__http_response(out, cap, 426, NULL, "nope\n", 5, 1, NULL, 0),
        0);

  n = websock__http_response(out, sizeof out, 405, "text/html", "", 0, 1, NULL,
                             0);
  out[n] = '\0';
  ck_assert_str_eq(out, "HTTP/1.1 405 Method Not Allowed\r\n"
                        "Allow: GET\r\n"
                        "Connection: close\r\n"
                        "Content-Type: text/html\r\n"
                        "Content-Length: 0\r\n"
                        "\r\n");
  /* default body names the status, and is always included */
  n = websock__http_response(out, sizeof out, 404, NULL, NULL, 0, 0, NULL, 0);
  out[n] = '\0';
  ck_assert_str_eq(out, "HTTP/1.1 404 Not Found\r\n"
                        "Connection: close\r\n"
                        "Content-Type: text/plain\r\n"
                        "Content-Length: 14\r\n"
                        "\r\n"
                        "404 Not Found\n");
  static const int statuses[] = {400, 403, 431, 500, 503};
  for (size_t i = 0; i < 5; i++) {
    n = websock__http_response(out, sizeof out, statuses[i], NULL, NULL, 0, 1,
                               NULL, 0);
    ck_assert_uint_gt(n, 0);
    out[n] = '\0';
    char line[64];
    snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", statuses[i],
             websock__http_reason(statuses[i]));
    ck_assert(strncmp(out, line, strlen(line)) == 0);
    ck_assert_str_ne(websock__http_reason(statuses[i]), "Unknown");
  }
  ck_assert_str_eq(websock__http_reason(431),
                   "Request Header Fields Too Large");
  ck_assert_str_eq(websock__http_reason(299), "Unknown");
  ck_assert_uint_eq(websock__http_response(out, sizeof out, 200,
                                           "text/plain\r\nX: y", "", 0, 1, NULL,
                                           0),
                    0);
  ck_assert_uint_eq(
      websock__http_response(out, sizeof out, 42, NULL, "", 0, 1, NULL, 0), 0);
}
END_TEST

START_TEST(test_header_lines) {
  websock__buf h = {0};
  ck_assert_int_eq(
      websock__http_header_line(&h, "WWW-Authenticate", "Bearer realm=\"x\""),
      0);
  ck_assert_int_eq(websock__http_header_line(&h, "Set-Cookie", "a=b;\tc"), 0);
  static const char lines[] = "WWW-Authenticate: Bearer realm=\"x\"\r\n"
                              "Set-Cookie: a=b;\tc\r\n";
  ck_assert_uint_eq(h.len, sizeof lines - 1);
  ck_assert_mem_eq(h.data, lines, h.len);
  /* no injection, no reserved names, no empty or non-token names */
  ck_assert_int_eq(websock__http_header_line(&h, "X", "a\r\nY: b"),
                   WEBSOCK__HEADER_INVALID);
  ck_assert_int_eq(websock__http_header_line(&h, "X", "a\nb"),
                   WEBSOCK__HEADER_INVALID);
  ck_assert_int_eq(websock__http_header_line(&h, "X Y", "v"),
                   WEBSOCK__HEADER_INVALID);
  ck_assert_int_eq(websock__http_header_line(&h, "", "v"),
                   WEBSOCK__HEADER_INVALID);
  ck_assert_int_eq(websock__http_header_line(&h, "content-length", "9"),
                   WEBSOCK__HEADER_INVALID);
  ck_assert_int_eq(
      websock__http_header_line(&h, "Sec-WebSocket-Extensions", "x"),
      WEBSOCK__HEADER_INVALID);
  ck_assert_uint_eq(h.len, sizeof lines - 1);

  char out[600];
  const char *acc = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
  size_t n = websock__handshake_response(out, sizeof out, acc, "chat",
                                         (const char *)h.data, h.len);
  out[n] = 0;
  ck_assert_str_eq(out, "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: "
                        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                        "Sec-WebSocket-Protocol: chat\r\n"
                        "WWW-Authenticate: Bearer realm=\"x\"\r\n"
                        "Set-Cookie: a=b;\tc\r\n"
                        "\r\n");
  n = websock__http_response(out, sizeof out, 401, NULL, "no\n", 3, 1,
                             (const char *)h.data, h.len);
  out[n] = 0;
  ck_assert_str_eq(out, "HTTP/1.1 401 Unauthorized\r\n"
                        "WWW-Authenticate: Bearer realm=\"x\"\r\n"
                        "Set-Cookie: a=b;\tc\r\n"
                        "Connection: close\r\n"
                        "Content-Type: text/plain\r\n"
                        "Content-Length: 3\r\n"
                        "\r\n"
                        "no\n");
  /* the lines of one response stop at their limit */
  char big[1000];
  memset(big, 'v', sizeof big - 1);
  big[sizeof big - 1] = 0;
  int rc = 0;
  for (int i = 0; i < 8 && rc == 0; i++)
    rc = websock__http_header_line(&h, "X-Big", big);
  ck_assert_int_eq(rc, WEBSOCK__HEADER_TOO_BIG);
  ck_assert_uint_le(h.len, WEBSOCK__RESPONSE_HEADERS_MAX);
  websock__buf_free(&h);
}
END_TEST

static Suite *handshake_suite(void) {
  Suite *s = suite_create("handshake");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_http_table, 0,
                      (int)(sizeof http_cases / sizeof http_cases[0]));
  tcase_add_test(tc, test_http_fields);
  tcase_add_test(tc, test_http_too_large);
  tcase_add_test(tc, test_http_too_many_headers);
  tcase_add_test(tc, test_http_random_growth);
  tcase_add_test(tc, test_tokens);
  tcase_add_loop_test(tc, test_handshake_table, 0,
                      (int)(sizeof hs_cases / sizeof hs_cases[0]));
  tcase_add_test(tc, test_handshake_fields);
  tcase_add_test(tc, test_too_many_protocols);
  tcase_add_test(tc, test_accept_key);
  tcase_add_test(tc, test_handshake_response);
  tcase_add_test(tc, test_http_response);
  tcase_add_test(tc, test_header_lines);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(handshake_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
