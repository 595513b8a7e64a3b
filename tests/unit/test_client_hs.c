/* Unit tests for the client's opening handshake (core/proto/client_hs.c):
 * URLs good and bad, the exact request bytes, response heads fed whole,
 * byte by byte and in random splits, and every check failure. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/client_hs.h"
#include "split_helpers.h"

#define MAX_HEAD 8192
#define SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* ---- URLs ---- */

typedef struct url_case {
  const char *url;
  int tls, ipv6, port_explicit;
  unsigned port;
  const char *host, *target;
} url_case;

static const url_case good_urls[] = {
    {"ws://example.com", 0, 0, 0, 80, "example.com", "/"},
    {"wss://example.com", 1, 0, 0, 443, "example.com", "/"},
    {"WS://Example.com/", 0, 0, 0, 80, "Example.com", "/"},
    {"WsS://h/chat", 1, 0, 0, 443, "h", "/chat"},
    {"ws://h?x=1", 0, 0, 0, 80, "h", "/?x=1"},
    {"ws://h/a/b?x=1&y=%20", 0, 0, 0, 80, "h", "/a/b?x=1&y=%20"},
    {"ws://h:8080/p", 0, 0, 1, 8080, "h", "/p"},
    {"ws://h:1", 0, 0, 1, 1, "h", "/"},
    {"wss://h:65535?q", 1, 0, 1, 65535, "h", "/?q"},
    {"ws://h:80", 0, 0, 1, 80, "h", "/"},
    {"ws://[::1]", 0, 1, 0, 80, "::1", "/"},
    {"wss://[2001:db8::7]:9001/x", 1, 1, 1, 9001, "2001:db8::7", "/x"},
    {"ws://[::ffff:10.0.0.1]/", 0, 1, 0, 80, "::ffff:10.0.0.1", "/"},
    {"ws://127.0.0.1:9000", 0, 0, 1, 9000, "127.0.0.1", "/"},
};

START_TEST(test_url_good) {
  const url_case *c = &good_urls[_i];
  websock__url u;
  const char *why = NULL;
  ck_assert_msg(websock__url_parse(c->url, &u, &why) == 0, "%s: %s", c->url,
                why ? why : "");
  ck_assert_int_eq(u.tls, c->tls);
  ck_assert_int_eq(u.ipv6, c->ipv6);
  ck_assert_int_eq(u.port_explicit, c->port_explicit);
  ck_assert_uint_eq(u.port, c->port);
  ck_assert_str_eq(u.host, c->host);
  ck_assert_str_eq(u.target, c->target);
}
END_TEST

static const char *const bad_urls[] = {
    "http://h/",
    "wss:/h",
    "ws:/h",
    "ws//h",
    "ws://",
    "ws:///x",
    "ws://:80/",
    "ws://u@h/",
    "ws://u:p@h",
    "ws://h/#frag",
    "ws://h#",
    "ws://h:0",
    "ws://h:65536",
    "ws://h:-1",
    "ws://h:",
    "ws://h:80x",
    "ws://h:000080",
    "ws://h /x",
    "ws://h/a b",
    "ws://h/\t",
    "ws://h/\x7f",
    "ws://h/caf\xc3\xa9",
    "ws://[::1",
    "ws://[]/",
    "ws://[::1]x",
    "ws://[fe80::1%25eth0]/",
    "ws://[1.2.3.4]/",
    "ws://h[1]/",
    "",
    "ws",
    "ws://h:8:9/",
};

START_TEST(test_url_bad) {
  websock__url u;
  const char *why = NULL;
  ck_assert_msg(websock__url_parse(bad_urls[_i], &u, &why) == -1,
                "accepted: %s", bad_urls[_i]);
  ck_assert_ptr_nonnull(why);
  ck_assert_int_gt((int)strlen(why), 0);
}
END_TEST

START_TEST(test_url_limits) {
  static char url[WEBSOCK__URL_TARGET_MAX + 600];
  websock__url u;
  const char *why;
  /* host of exactly the maximum, then one more */
  strcpy(url, "ws://");
  memset(url + 5, 'a', WEBSOCK__URL_HOST_MAX);
  url[5 + WEBSOCK__URL_HOST_MAX] = '\0';
  ck_assert_int_eq(websock__url_parse(url, &u, &why), 0);
  ck_assert_uint_eq(strlen(u.host), WEBSOCK__URL_HOST_MAX);
  strcat(url, "a");
  ck_assert_int_eq(websock__url_parse(url, &u, &why), -1);
  /* target of exactly the maximum, then one more */
  strcpy(url, "ws://h");
  memset(url + 6, 'p', WEBSOCK__URL_TARGET_MAX);
  url[6] = '/';
  url[6 + WEBSOCK__URL_TARGET_MAX] = '\0';
  ck_assert_int_eq(websock__url_parse(url, &u, &why), 0);
  ck_assert_uint_eq(strlen(u.target), WEBSOCK__URL_TARGET_MAX);
  strcat(url, "p");
  ck_assert_int_eq(websock__url_parse(url, &u, &why), -1);
  /* the '/' added before a bare query counts too */
  strcpy(url, "ws://h");
  memset(url + 6, 'q', WEBSOCK__URL_TARGET_MAX);
  url[6] = '?';
  url[6 + WEBSOCK__URL_TARGET_MAX] = '\0';
  ck_assert_int_eq(websock__url_parse(url, &u, &why), -1);
}
END_TEST

/* ---- key and request ---- */

START_TEST(test_client_key) {
  /* RFC 6455 4.1's sample nonce is the text "the sample nonce". */
  char key[25];
  websock__client_key((const uint8_t *)"the sample nonce", key);
  ck_assert_str_eq(key, SAMPLE_KEY);
  char accept[29];
  websock__handshake_accept_key(key, 24, accept);
  ck_assert_str_eq(accept, SAMPLE_ACCEPT);
  uint8_t zero[16] = {0};
  websock__client_key(zero, key);
  ck_assert_str_eq(key, "AAAAAAAAAAAAAAAAAAAAAA==");
}
END_TEST

static void request_is(const char *url, const char *const *protocols,
                       size_t nprotocols, const char *extensions,
                       const char *headers, const char *want) {
  websock__url u;
  const char *why;
  ck_assert_int_eq(websock__url_parse(url, &u, &why), 0);
  websock__buf b = {0};
  ck_assert_int_eq(websock__client_request(&b, &u, SAMPLE_KEY, protocols,
                                           nprotocols, extensions, headers,
                                           headers ? strlen(headers) : 0),
                   0);
  ck_assert_uint_eq(b.len, strlen(want));
  ck_assert_msg(memcmp(b.data, want, b.len) == 0, "got:\n%.*s", (int)b.len,
                (const char *)b.data);
  websock__buf_free(&b);
}

#define REQ_TAIL                                                               \
  "Upgrade: websocket\r\n"                                                     \
  "Connection: Upgrade\r\n"                                                    \
  "Sec-WebSocket-Key: " SAMPLE_KEY "\r\n"                                      \
  "Sec-WebSocket-Version: 13\r\n"

START_TEST(test_request_bytes) {
  request_is("ws://example.com/chat", NULL, 0, NULL, NULL,
             "GET /chat HTTP/1.1\r\nHost: example.com\r\n" REQ_TAIL "\r\n");
  request_is("wss://example.com:443?x=1", NULL, 0, NULL, NULL,
             "GET /?x=1 HTTP/1.1\r\nHost: example.com\r\n" REQ_TAIL "\r\n");
  request_is("ws://example.com:8080/", NULL, 0, NULL, NULL,
             "GET / HTTP/1.1\r\nHost: example.com:8080\r\n" REQ_TAIL "\r\n");
  request_is("wss://h:80/", NULL, 0, NULL, NULL,
             "GET / HTTP/1.1\r\nHost: h:80\r\n" REQ_TAIL "\r\n");
  request_is("ws://[::1]/", NULL, 0, NULL, NULL,
             "GET / HTTP/1.1\r\nHost: [::1]\r\n" REQ_TAIL "\r\n");
  const char *const protos[] = {"chat", "superchat"};
  request_is("wss://[2001:db8::1]:9443/s?a=b", protos, 2,
             "permessage-deflate; client_max_window_bits",
             "Origin: https://example.com\r\nX-Token: abc\r\n",
             "GET /s?a=b HTTP/1.1\r\nHost: [2001:db8::1]:9443\r\n" REQ_TAIL
             "Sec-WebSocket-Protocol: chat, superchat\r\n"
             "Sec-WebSocket-Extensions: permessage-deflate; "
             "client_max_window_bits\r\n"
             "Origin: https://example.com\r\nX-Token: abc\r\n\r\n");
  request_is("ws://h", protos + 1, 1, NULL, NULL,
             "GET / HTTP/1.1\r\nHost: h\r\n" REQ_TAIL
             "Sec-WebSocket-Protocol: superchat\r\n\r\n");
}
END_TEST

START_TEST(test_request_refuses_injection) {
  websock__url u;
  const char *why;
  ck_assert_int_eq(websock__url_parse("ws://h/", &u, &why), 0);
  websock__buf b = {0};
  ck_assert_int_eq(websock__buf_append(&b, "keep", 4), 1);
  const char *const bad[] = {"chat\r\nX: y"};
  ck_assert_int_eq(
      websock__client_request(&b, &u, SAMPLE_KEY, bad, 1, NULL, NULL, 0), -1);
  ck_assert_int_eq(websock__client_request(&b, &u, SAMPLE_KEY, NULL, 0,
                                           "x\r\nEvil: 1", NULL, 0),
                   -1);
  ck_assert_uint_eq(b.len, 4); /* nothing appended */
  websock__buf_free(&b);
}
END_TEST

/* ---- response parser ---- */

#define GOOD_RESPONSE                                                          \
  "HTTP/1.1 101 Switching Protocols\r\n"                                       \
  "Upgrade: websocket\r\n"                                                     \
  "Connection: Upgrade\r\n"                                                    \
  "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"                                \
  "\r\n"

typedef struct resp_case {
  const char *name;
  const char *text;
  ssize_t want; /* OK_HEAD: complete, strlen(text) - trailing */
  size_t trailing;
  int status;
} resp_case;

#define OK_HEAD 1

static const resp_case resp_cases[] = {
    {"good", GOOD_RESPONSE, OK_HEAD, 0, 101},
    {"good + frame", GOOD_RESPONSE "\x81\x02hi", OK_HEAD, 4, 101},
    {"bare LF", "HTTP/1.1 101 OK\nUpgrade: websocket\n\n", OK_HEAD, 0, 101},
    {"no reason", "HTTP/1.1 101\r\nA: b\r\n\r\n", OK_HEAD, 0, 101},
    {"empty reason", "HTTP/1.1 404 \r\n\r\n", OK_HEAD, 0, 404},
    {"HTTP/1.0", "HTTP/1.0 200 OK\r\n\r\n", OK_HEAD, 0, 200},
    {"8-bit reason", "HTTP/1.1 400 Mauvaise requ\xc3\xaate\r\n\r\n", OK_HEAD, 0,
     400},
    {"incomplete", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: w", 0, 0, 0},
    {"incomplete status", "HTTP/1.1 10", 0, 0, 0},
    {"HTTP/2", "HTTP/2.0 101 X\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0, 0},
    {"two digits", "HTTP/1.1 10 X\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0,
     0},
    {"four digits", "HTTP/1.1 1010\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0,
     0},
    {"status 099", "HTTP/1.1 099 X\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0,
     0},
    {"status 600", "HTTP/1.1 600 X\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0,
     0},
    {"no space", "HTTP/1.1\t101 X\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0,
     0},
    {"lowercase", "http/1.1 101 X\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0,
     0},
    {"control in reason", "HTTP/1.1 101 a\x01\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0, 0},
    {"obs-fold", "HTTP/1.1 101 X\r\nUpgrade: a\r\n websocket\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0, 0},
    {"empty name", "HTTP/1.1 101 X\r\n: v\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0, 0},
    {"non-token name", "HTTP/1.1 101 X\r\nBad(name): v\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0, 0},
    {"space before colon", "HTTP/1.1 101 X\r\nUpgrade : v\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0, 0},
    {"no colon", "HTTP/1.1 101 X\r\nUpgrade\r\n\r\n",
     WEBSOCK__HTTP_ERR_BAD_REQUEST, 0, 0},
    {"bare CR", "HTTP/1.1 101 X\rY\r\n\r\n", WEBSOCK__HTTP_ERR_BAD_REQUEST, 0,
     0},
};

/* Parses every prefix, each ending at a guard page: before a complete head
 * only NEED_MORE, before an error only NEED_MORE or that error. */
static ssize_t parse_prefixes(const char *s, size_t n,
                              websock__http_response_head *out, char *stable) {
  test_guard g;
  test_guard_init(&g, n);
  websock__http_response_head res;
  ssize_t final = websock__http_parse_response(
      (const char *)test_guard_place(&g, s, n), n, MAX_HEAD, &res);
  for (size_t k = 0; k < n; k++) {
    const char *p = (const char *)test_guard_place(&g, s, k);
    ssize_t r = websock__http_parse_response(p, k, MAX_HEAD, &res);
    if (final > 0)
      TEST_REQUIRE(k < (size_t) final ? r == WEBSOCK__HTTP_NEED_MORE
                                      : r == final);
    else
      TEST_REQUIRE(r == WEBSOCK__HTTP_NEED_MORE || r == final);
  }
  test_guard_free(&g);
  memcpy(stable, s, n);
  ssize_t r = websock__http_parse_response(stable, n, MAX_HEAD, out);
  ck_assert_int_eq(r, final);
  return r;
}

START_TEST(test_response_table) {
  const resp_case *c = &resp_cases[_i];
  size_t n = strlen(c->text);
  static char stable[MAX_HEAD];
  websock__http_response_head res;
  ssize_t r = parse_prefixes(c->text, n, &res, stable);
  if (c->want == OK_HEAD) {
    ck_assert_msg(r == (ssize_t)(n - c->trailing), "%s: %zd", c->name, r);
    ck_assert_int_eq(res.status, c->status);
  } else {
    ck_assert_msg(r == c->want, "%s: %zd", c->name, r);
  }
}
END_TEST

START_TEST(test_response_fields) {
  const char *t = "HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade:   websocket  \r\n"
                  "sec-websocket-protocol: chat\r\n\r\n";
  websock__http_response_head res;
  ck_assert_int_eq(websock__http_parse_response(t, strlen(t), MAX_HEAD, &res),
                   (ssize_t)strlen(t));
  ck_assert_int_eq(res.minor_version, 1);
  ck_assert_uint_eq(res.reason_len, 19);
  ck_assert_int_eq(memcmp(res.reason, "Switching Protocols", 19), 0);
  ck_assert_uint_eq(res.num_headers, 2);
  const websock__http_header *h =
      websock__http_response_header(&res, "UPGRADE");
  ck_assert_ptr_nonnull(h);
  ck_assert_uint_eq(h->value_len, 9);
  ck_assert_int_eq(memcmp(h->value, "websocket", 9), 0);
  ck_assert_ptr_null(websock__http_response_header(&res, "Origin"));
}
END_TEST

START_TEST(test_response_limits) {
  /* The head limit and the header count limit, as for requests. */
  char *big = malloc(MAX_HEAD * 2);
  ck_assert_ptr_nonnull(big);
  strcpy(big, "HTTP/1.1 101 X\r\n");
  size_t n = strlen(big);
  while (n < MAX_HEAD + 10)
    big[n++] = 'a';
  websock__http_response_head res;
  ck_assert_int_eq(websock__http_parse_response(big, n, MAX_HEAD, &res),
                   WEBSOCK__HTTP_ERR_TOO_LARGE);
  ck_assert_int_eq(websock__http_parse_response(big, 100, MAX_HEAD, &res),
                   WEBSOCK__HTTP_NEED_MORE);
  strcpy(big, "HTTP/1.1 101 X\r\n");
  n = strlen(big);
  for (int i = 0; i <= WEBSOCK__HTTP_MAX_HEADERS; i++)
    n += (size_t)sprintf(big + n, "X-%d: v\r\n", i);
  n += (size_t)sprintf(big + n, "\r\n");
  ck_assert_int_eq(websock__http_parse_response(big, n, MAX_HEAD, &res),
                   WEBSOCK__HTTP_ERR_TOO_LARGE);
  free(big);
}
END_TEST

START_TEST(test_response_random_splits) {
  /* Growing prefixes in random steps, as a client reading a socket does:
   * NEED_MORE until all of the head is there, then its length. */
  const char *t = GOOD_RESPONSE "\x81\x00";
  size_t n = strlen(t) + 1, head = strlen(GOOD_RESPONSE);
  test_rng rng;
  test_rng_seed(&rng, 6455);
  size_t cuts[64];
  for (int round = 0; round < 2000; round++) {
    size_t nc = test_random_cuts(&rng, n, cuts, 64);
    websock__http_response_head res;
    for (size_t c = 0; c <= nc; c++) {
      size_t k = c < nc ? cuts[c] : n;
      ssize_t r = websock__http_parse_response(t, k, MAX_HEAD, &res);
      TEST_REQUIRE(k < head ? r == WEBSOCK__HTTP_NEED_MORE
                            : r == (ssize_t)head);
    }
    TEST_REQUIRE(res.status == 101 && res.num_headers == 3);
  }
}
END_TEST

/* ---- checks ---- */

typedef struct check_case {
  const char *name;
  const char *headers; /* after the status line */
  int status;
  size_t nprotocols; /* of {"chat", "superchat"} */
  int offered_ext;
  int want;
  const char *protocol, *extensions;
} check_case;

#define UPG "Upgrade: websocket\r\n"
#define CON "Connection: Upgrade\r\n"
#define ACC "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"

static const check_case check_cases[] = {
    {"ok", UPG CON ACC, 101, 0, 0, WEBSOCK__CHS_OK, NULL, NULL},
    {"ok, case and lists",
     "upgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
     "sec-websocket-accept: " SAMPLE_ACCEPT "\r\n",
     101, 0, 0, WEBSOCK__CHS_OK, NULL, NULL},
    {"ok, protocol", UPG CON ACC "Sec-WebSocket-Protocol: superchat\r\n", 101,
     2, 0, WEBSOCK__CHS_OK, "superchat", NULL},
    {"ok, no protocol chosen", UPG CON ACC, 101, 2, 0, WEBSOCK__CHS_OK, NULL,
     NULL},
    {"ok, extensions",
     UPG CON ACC "Sec-WebSocket-Extensions: permessage-deflate\r\n", 101, 0, 1,
     WEBSOCK__CHS_OK, NULL, "permessage-deflate"},
    {"ok, extensions offered, none", UPG CON ACC, 101, 0, 1, WEBSOCK__CHS_OK,
     NULL, NULL},
    {"status 200", UPG CON ACC, 200, 0, 0, WEBSOCK__CHS_STATUS, NULL, NULL},
    {"status 403", "", 403, 0, 0, WEBSOCK__CHS_STATUS, NULL, NULL},
    {"no upgrade", CON ACC, 101, 0, 0, WEBSOCK__CHS_UPGRADE, NULL, NULL},
    {"upgrade h2c", "Upgrade: h2c\r\n" CON ACC, 101, 0, 0, WEBSOCK__CHS_UPGRADE,
     NULL, NULL},
    {"no connection", UPG ACC, 101, 0, 0, WEBSOCK__CHS_CONNECTION, NULL, NULL},
    {"connection close", UPG "Connection: close\r\n" ACC, 101, 0, 0,
     WEBSOCK__CHS_CONNECTION, NULL, NULL},
    {"no accept", UPG CON, 101, 0, 0, WEBSOCK__CHS_ACCEPT, NULL, NULL},
    {"wrong accept",
     UPG CON "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOA=\r\n", 101, 0,
     0, WEBSOCK__CHS_ACCEPT, NULL, NULL},
    {"accept case",
     UPG CON "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n", 101, 0,
     0, WEBSOCK__CHS_ACCEPT, NULL, NULL},
    {"accept with tail", UPG CON "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "x\r\n",
     101, 0, 0, WEBSOCK__CHS_ACCEPT, NULL, NULL},
    {"two accepts", UPG CON ACC ACC, 101, 0, 0, WEBSOCK__CHS_ACCEPT, NULL,
     NULL},
    {"protocol not offered", UPG CON ACC "Sec-WebSocket-Protocol: other\r\n",
     101, 2, 0, WEBSOCK__CHS_PROTOCOL, NULL, NULL},
    {"protocol, none offered", UPG CON ACC "Sec-WebSocket-Protocol: chat\r\n",
     101, 0, 0, WEBSOCK__CHS_PROTOCOL, NULL, NULL},
    {"protocol case", UPG CON ACC "Sec-WebSocket-Protocol: Chat\r\n", 101, 2, 0,
     WEBSOCK__CHS_PROTOCOL, NULL, NULL},
    {"two protocols in one",
     UPG CON ACC "Sec-WebSocket-Protocol: chat, superchat\r\n", 101, 2, 0,
     WEBSOCK__CHS_PROTOCOL, NULL, NULL},
    {"two protocol headers",
     UPG CON ACC "Sec-WebSocket-Protocol: chat\r\n"
                 "Sec-WebSocket-Protocol: chat\r\n",
     101, 2, 0, WEBSOCK__CHS_PROTOCOL, NULL, NULL},
    {"extensions not offered",
     UPG CON ACC "Sec-WebSocket-Extensions: permessage-deflate\r\n", 101, 0, 0,
     WEBSOCK__CHS_EXTENSION, NULL, NULL},
    {"two extension headers",
     UPG CON ACC "Sec-WebSocket-Extensions: a\r\nSec-WebSocket-Extensions: "
                 "b\r\n",
     101, 0, 1, WEBSOCK__CHS_EXTENSION, NULL, NULL},
};

START_TEST(test_check_table) {
  const check_case *c = &check_cases[_i];
  static char text[2048];
  int n = snprintf(text, sizeof text, "HTTP/1.1 %d X\r\n%s\r\n", c->status,
                   c->headers);
  ck_assert_int_gt(n, 0);
  websock__http_response_head res;
  ck_assert_int_eq(
      websock__http_parse_response(text, (size_t)n, MAX_HEAD, &res), n);
  const char *const protos[] = {"chat", "superchat"};
  const char *p = "x", *e = "x";
  size_t pl = 99, el = 99;
  int r =
      websock__client_check_response(&res, SAMPLE_KEY, protos, c->nprotocols,
                                     c->offered_ext, &p, &pl, &e, &el);
  ck_assert_msg(r == c->want, "%s: %d (%s)", c->name, r,
                websock__client_hs_strerror(r));
  ck_assert_ptr_nonnull(websock__client_hs_strerror(r));
  if (c->protocol) {
    ck_assert_uint_eq(pl, strlen(c->protocol));
    ck_assert_int_eq(memcmp(p, c->protocol, pl), 0);
  } else {
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(pl, 0);
  }
  if (c->extensions) {
    ck_assert_uint_eq(el, strlen(c->extensions));
    ck_assert_int_eq(memcmp(e, c->extensions, el), 0);
  } else {
    ck_assert_ptr_null(e);
    ck_assert_uint_eq(el, 0);
  }
}
END_TEST

START_TEST(test_strerror) {
  for (int r = WEBSOCK__CHS_EXTENSION; r <= WEBSOCK__CHS_OK; r++)
    ck_assert_str_ne(websock__client_hs_strerror(r),
                     websock__client_hs_strerror(99));
}
END_TEST

static Suite *client_hs_suite(void) {
  Suite *s = suite_create("client_hs");
  TCase *tc = tcase_create("core");
  tcase_add_loop_test(tc, test_url_good, 0,
                      (int)(sizeof good_urls / sizeof *good_urls));
  tcase_add_loop_test(tc, test_url_bad, 0,
                      (int)(sizeof bad_urls / sizeof *bad_urls));
  tcase_add_test(tc, test_url_limits);
  tcase_add_test(tc, test_client_key);
  tcase_add_test(tc, test_request_bytes);
  tcase_add_test(tc, test_request_refuses_injection);
  tcase_add_loop_test(tc, test_response_table, 0,
                      (int)(sizeof resp_cases / sizeof *resp_cases));
  tcase_add_test(tc, test_response_fields);
  tcase_add_test(tc, test_response_limits);
  tcase_add_test(tc, test_response_random_splits);
  tcase_add_loop_test(tc, test_check_table, 0,
                      (int)(sizeof check_cases / sizeof *check_cases));
  tcase_add_test(tc, test_strerror);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(client_hs_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
