/* Unit tests for permessage-deflate negotiation (core/proto/pmd.c): offer
 * tables for every RFC 7692 parameter, with and without values, in order,
 * declined and malformed, each read at a guard page with every too-small
 * answer buffer; the client's offer and its check of answers; and both
 * sides run against each other. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/pmd.h"
#include "split_helpers.h"

/* Policies: shared (the default), dedicated, dedicated asking the client
 * not to keep context, dedicated with small windows, insisting. */
static const websock__pmd_policy SHARED = {0, 15, 1, 0, 0};
static const websock__pmd_policy DED = {1, 15, 0, 0, 0};
static const websock__pmd_policy DED_REQ = {1, 0, 1, 0, 0};
static const websock__pmd_policy DED_SMALL = {1, 10, 0, 0, 12};
static const websock__pmd_policy INSIST = {0, 15, 1, 1, 0};

typedef struct ncase {
  const char *offers;
  const websock__pmd_policy *pol;
  int ret;          /* 1 agreed, 0 declined */
  const char *resp; /* the answer when agreed */
  websock__pmd_params want;
} ncase;

#define PMD "permessage-deflate"
#define SNCT "; server_no_context_takeover"
#define CNCT "; client_no_context_takeover"

static const ncase ncases[] = {
    /* what browsers and common clients offer */
    {PMD, &SHARED, 1, PMD SNCT, {1, 0, 15, 15}},
    {PMD, &DED, 1, PMD, {0, 0, 15, 15}},
    {PMD "; client_max_window_bits", &DED, 1, PMD, {0, 0, 15, 15}},
    {PMD "; client_max_window_bits", &SHARED, 1, PMD SNCT, {1, 0, 15, 15}},
    {PMD "; client_max_window_bits",
     &DED_SMALL,
     1,
     PMD "; client_max_window_bits=12",
     {0, 0, 10, 12}},
    {PMD "; client_max_window_bits", &INSIST, 1, PMD SNCT CNCT, {1, 1, 15, 15}},
    /* the context parameters */
    {PMD SNCT, &DED, 1, PMD SNCT, {1, 0, 15, 15}},
    {PMD CNCT, &DED, 1, PMD, {0, 0, 15, 15}},
    {PMD CNCT, &DED_REQ, 1, PMD CNCT, {0, 1, 15, 15}},
    {PMD CNCT, &SHARED, 1, PMD SNCT CNCT, {1, 1, 15, 15}},
    {PMD SNCT CNCT, &DED, 1, PMD SNCT, {1, 0, 15, 15}},
    {PMD CNCT SNCT, &SHARED, 1, PMD SNCT CNCT, {1, 1, 15, 15}},
    {PMD, &DED_REQ, 1, PMD, {0, 0, 15, 15}},
    /* server_max_window_bits: answered with the same or a smaller value */
    {PMD "; server_max_window_bits=10",
     &DED,
     1,
     PMD "; server_max_window_bits=10",
     {0, 0, 10, 15}},
    {PMD "; server_max_window_bits=15",
     &DED_SMALL,
     1,
     PMD "; server_max_window_bits=10",
     {0, 0, 10, 15}},
    {PMD "; server_max_window_bits=9",
     &DED_SMALL,
     1,
     PMD "; server_max_window_bits=9",
     {0, 0, 9, 15}},
    {PMD "; server_max_window_bits=12",
     &SHARED,
     1,
     PMD SNCT "; server_max_window_bits=12",
     {1, 0, 12, 15}},
    /* 8 cannot be honoured with zlib; no value is not an offer */
    {PMD "; server_max_window_bits=8", &DED, 0, "", {0}},
    {PMD "; server_max_window_bits", &DED, 0, "", {0}},
    {PMD "; server_max_window_bits=8, " PMD, &DED, 1, PMD, {0, 0, 15, 15}},
    /* client_max_window_bits with a value is echoed (or lowered) */
    {PMD "; client_max_window_bits=10",
     &DED,
     1,
     PMD "; client_max_window_bits=10",
     {0, 0, 15, 10}},
    {PMD "; client_max_window_bits=8",
     &DED,
     1,
     PMD "; client_max_window_bits=8",
     {0, 0, 15, 8}},
    {PMD "; client_max_window_bits=15",
     &DED_SMALL,
     1,
     PMD "; client_max_window_bits=12",
     {0, 0, 10, 12}},
    {PMD "; client_max_window_bits=9",
     &DED_SMALL,
     1,
     PMD "; client_max_window_bits=9",
     {0, 0, 10, 9}},
    /* not offered: never answered, whatever we would like */
    {PMD, &DED_SMALL, 1, PMD, {0, 0, 10, 15}},
    /* quoted-string values, escapes, whitespace */
    {PMD "; client_max_window_bits=\"10\"",
     &DED,
     1,
     PMD "; client_max_window_bits=10",
     {0, 0, 15, 10}},
    {PMD "; server_max_window_bits=\"1\\1\"",
     &DED,
     1,
     PMD "; server_max_window_bits=11",
     {0, 0, 11, 15}},
    {" \t" PMD " ;\tserver_max_window_bits = 13 ; client_max_window_bits \t",
     &DED,
     1,
     PMD "; server_max_window_bits=13",
     {0, 0, 13, 15}},
    {PMD ";server_no_context_takeover;client_max_window_bits=14",
     &DED,
     1,
     PMD SNCT "; client_max_window_bits=14",
     {1, 0, 15, 14}},
    /* names without regard to case; answered in lower case */
    {"PerMessage-Deflate; Server_No_Context_Takeover",
     &DED,
     1,
     PMD SNCT,
     {1, 0, 15, 15}},
    {"PERMESSAGE-DEFLATE; CLIENT_MAX_WINDOW_BITS=9",
     &DED,
     1,
     PMD "; client_max_window_bits=9",
     {0, 0, 15, 9}},
    /* several offers: the first acceptable one, in the client's order */
    {PMD "; client_max_window_bits; server_max_window_bits=10, " PMD
         "; client_max_window_bits",
     &DED,
     1,
     PMD "; server_max_window_bits=10",
     {0, 0, 10, 15}},
    {PMD "; foo, " PMD "; server_max_window_bits=11, " PMD,
     &DED,
     1,
     PMD "; server_max_window_bits=11",
     {0, 0, 11, 15}},
    {"x-webkit-deflate-frame, " PMD "; client_max_window_bits",
     &DED,
     1,
     PMD,
     {0, 0, 15, 15}},
    {"foo; bar=\"a, b; c\", " PMD SNCT, &DED, 1, PMD SNCT, {1, 0, 15, 15}},
    {"foo, bar; baz=1", &DED, 0, "", {0}},
    /* declined: unknown, repeated, values where none belong, bad bits */
    {PMD "; foo", &DED, 0, "", {0}},
    {PMD "; foo=1", &DED, 0, "", {0}},
    {PMD SNCT SNCT, &DED, 0, "", {0}},
    {PMD CNCT CNCT, &DED, 0, "", {0}},
    {PMD "; client_max_window_bits; client_max_window_bits=10",
     &DED,
     0,
     "",
     {0}},
    {PMD "; server_max_window_bits=10; server_max_window_bits=10",
     &DED,
     0,
     "",
     {0}},
    {PMD "; server_no_context_takeover=1", &DED, 0, "", {0}},
    {PMD "; client_no_context_takeover=\"\"", &DED, 0, "", {0}},
    {PMD "; client_max_window_bits=16", &DED, 0, "", {0}},
    {PMD "; client_max_window_bits=7", &DED, 0, "", {0}},
    {PMD "; client_max_window_bits=0", &DED, 0, "", {0}},
    {PMD "; client_max_window_bits=08", &DED, 0, "", {0}},
    {PMD "; client_max_window_bits=010", &DED, 0, "", {0}},
    {PMD "; client_max_window_bits=+9", &DED, 0, "", {0}},
    {PMD "; client_max_window_bits=9.0", &DED, 0, "", {0}},
    {PMD "; client_max_window_bits=\"\"", &DED, 0, "", {0}},
    {PMD "; client_max_window_bits=\" 9\"", &DED, 0, "", {0}},
    {PMD "; server_max_window_bits=100000000000000000000009", &DED, 0, "", {0}},
    /* malformed elements are skipped up to the next comma */
    {PMD "; =5, " PMD SNCT, &DED, 1, PMD SNCT, {1, 0, 15, 15}},
    {PMD " x, " PMD CNCT, &DED_REQ, 1, PMD CNCT, {0, 1, 15, 15}},
    {PMD "; client_max_window_bits=, " PMD, &DED, 1, PMD, {0, 0, 15, 15}},
    {PMD "; a=\"unterminated, " PMD, &DED, 0, "", {0}},
    {"; " PMD ", " PMD, &DED, 1, PMD, {0, 0, 15, 15}},
    {PMD "; a=\"b\"c, " PMD SNCT, &DED, 1, PMD SNCT, {1, 0, 15, 15}},
    {PMD "\x01, " PMD SNCT, &DED, 1, PMD SNCT, {1, 0, 15, 15}},
    {"permessage-deflatex", &DED, 0, "", {0}},
    {"permessage", &DED, 0, "", {0}},
    /* empty lists and empty elements */
    {"", &DED, 0, "", {0}},
    {" , ,", &DED, 0, "", {0}},
    {", " PMD ",", &DED, 1, PMD, {0, 0, 15, 15}},
};

static void check_params(const websock__pmd_params *got,
                         const websock__pmd_params *want, const char *what) {
  if (got->server_no_context_takeover != want->server_no_context_takeover ||
      got->client_no_context_takeover != want->client_no_context_takeover ||
      got->server_max_window_bits != want->server_max_window_bits ||
      got->client_max_window_bits != want->client_max_window_bits)
    ck_abort_msg("%s: params %d %d %d %d, want %d %d %d %d", what,
                 got->server_no_context_takeover,
                 got->client_no_context_takeover, got->server_max_window_bits,
                 got->client_max_window_bits, want->server_no_context_takeover,
                 want->client_no_context_takeover, want->server_max_window_bits,
                 want->client_max_window_bits);
}

START_TEST(test_negotiate_table) {
  const ncase *c = &ncases[_i];
  size_t n = strlen(c->offers);
  /* Not NUL-terminated: the offers end at a guard page. */
  test_guard g;
  test_guard_init(&g, n);
  const char *in = (const char *)test_guard_place(&g, c->offers, n);
  char resp[256];
  websock__pmd_params p;
  memset(&p, 0xAA, sizeof p);
  int r = websock__pmd_negotiate(in, n, c->pol, &p, resp, sizeof resp);
  if (r != c->ret)
    ck_abort_msg("'%s': returned %d, want %d", c->offers, r, c->ret);
  ck_assert_str_eq(resp, c->resp);
  if (r == 1) {
    check_params(&p, &c->want, c->offers);
    /* Every smaller buffer is too small and leaves *out alone. */
    size_t need = strlen(c->resp) + 1;
    for (size_t cap = 0; cap < need; cap++) {
      websock__pmd_params q;
      memset(&q, 0x55, sizeof q);
      char small[256];
      memset(small, 'x', sizeof small);
      ck_assert_int_eq(websock__pmd_negotiate(in, n, c->pol, &q, small, cap),
                       -1);
      ck_assert_uint_eq(q.server_max_window_bits, 0x55);
      if (cap)
        ck_assert_int_eq(small[0], '\0');
      ck_assert_int_eq(small[cap], 'x'); /* nothing written past cap */
    }
    ck_assert_int_eq(websock__pmd_negotiate(in, n, c->pol, &p, resp, need), 1);
    ck_assert_str_eq(resp, c->resp);
  }
  test_guard_free(&g);
}
END_TEST

/* Every prefix of every offer list: no over-read, a sane answer. */
START_TEST(test_negotiate_prefixes) {
  for (size_t i = 0; i < sizeof ncases / sizeof ncases[0]; i++) {
    size_t n = strlen(ncases[i].offers);
    test_guard g;
    test_guard_init(&g, n);
    for (size_t k = 0; k <= n; k++) {
      const char *in = (const char *)test_guard_place(&g, ncases[i].offers, k);
      char resp[256];
      websock__pmd_params p;
      int r = websock__pmd_negotiate(in, k, &DED, &p, resp, sizeof resp);
      TEST_REQUIRE(r == 0 || r == 1);
      TEST_REQUIRE(r == 1 ? strncmp(resp, PMD, strlen(PMD)) == 0
                          : resp[0] == '\0');
      if (r == 1) {
        TEST_REQUIRE(p.server_max_window_bits >= 9 &&
                     p.server_max_window_bits <= 15);
        TEST_REQUIRE(p.client_max_window_bits >= 8 &&
                     p.client_max_window_bits <= 15);
      }
    }
    test_guard_free(&g);
  }
}
END_TEST

/* The longest answer fits WEBSOCK__PMD_VALUE_MAX. */
START_TEST(test_value_max) {
  static const websock__pmd_policy all = {0, 12, 1, 1, 12};
  const char *offer = PMD CNCT "; server_max_window_bits=15"
                               "; client_max_window_bits=15";
  char resp[WEBSOCK__PMD_VALUE_MAX];
  websock__pmd_params p;
  ck_assert_int_eq(
      websock__pmd_negotiate(offer, strlen(offer), &all, &p, resp, sizeof resp),
      1);
  ck_assert_str_eq(resp, PMD SNCT CNCT "; server_max_window_bits=12"
                                       "; client_max_window_bits=12");
  ck_assert_uint_eq(strlen(resp) + 1, 129);
  static const websock__pmd_policy ded_all = {1, 12, 1, 0, 12};
  ck_assert_int_gt(websock__pmd_offer(&ded_all, resp, sizeof resp), 0);
}
END_TEST

/* No header at all: nothing agreed, nothing to fail. */
START_TEST(test_no_header) {
  char resp[64] = "x";
  websock__pmd_params p;
  ck_assert_int_eq(websock__pmd_negotiate(NULL, 0, &SHARED, &p, resp, 64), 0);
  ck_assert_str_eq(resp, "");
  ck_assert_int_eq(websock__pmd_check_response(NULL, 0, &DED, &p), 0);
}
END_TEST

/* ---- client side ---- */

START_TEST(test_offer) {
  char out[256];
  ck_assert_int_eq(websock__pmd_offer(&DED, out, sizeof out),
                   (int)strlen(PMD "; client_max_window_bits"));
  ck_assert_str_eq(out, PMD "; client_max_window_bits");
  websock__pmd_offer(&SHARED, out, sizeof out);
  ck_assert_str_eq(out, PMD CNCT SNCT "; client_max_window_bits");
  websock__pmd_offer(&DED_SMALL, out, sizeof out);
  ck_assert_str_eq(out, PMD "; server_max_window_bits=12"
                            "; client_max_window_bits=10");
  websock__pmd_offer(&DED_REQ, out, sizeof out);
  ck_assert_str_eq(out, PMD SNCT "; client_max_window_bits");
  size_t need = strlen(PMD "; client_max_window_bits") + 1;
  for (size_t cap = 0; cap < need; cap++)
    ck_assert_int_eq(websock__pmd_offer(&DED, out, cap), -1);
  ck_assert_int_eq(websock__pmd_offer(&DED, out, need), (int)need - 1);
}
END_TEST

typedef struct rcase {
  const char *value;
  const websock__pmd_policy *pol;
  int ret;
  websock__pmd_params want; /* the client's view */
} rcase;

static const rcase rcases[] = {
    {"", &DED, 0, {0}},
    {" \t", &DED, 0, {0}},
    {PMD, &DED, 1, {0, 0, 15, 15}},
    {" " PMD " ", &DED, 1, {0, 0, 15, 15}},
    {"Permessage-Deflate", &DED, 1, {0, 0, 15, 15}},
    {PMD SNCT, &DED, 1, {1, 0, 15, 15}},
    {PMD CNCT, &DED, 1, {0, 1, 15, 15}},
    {PMD "; server_max_window_bits=9", &DED, 1, {0, 0, 9, 15}},
    {PMD "; server_max_window_bits=8", &DED, 1, {0, 0, 8, 15}},
    {PMD "; client_max_window_bits=10", &DED, 1, {0, 0, 15, 10}},
    {PMD "; client_max_window_bits=\"9\"", &DED, 1, {0, 0, 15, 9}},
    {PMD "; client_max_window_bits", &DED, -1, {0}},
    {PMD "; client_max_window_bits=8", &DED, -1, {0}},
    {PMD "; server_max_window_bits", &DED, -1, {0}},
    {PMD "; server_max_window_bits=16", &DED, -1, {0}},
    {PMD "; server_max_window_bits=09", &DED, -1, {0}},
    {"foo", &DED, -1, {0}},
    {PMD ", " PMD, &DED, -1, {0}},
    {PMD ", foo", &DED, -1, {0}},
    {PMD "; foo", &DED, -1, {0}},
    {PMD SNCT SNCT, &DED, -1, {0}},
    {PMD "; server_no_context_takeover=1", &DED, -1, {0}},
    {PMD "; =", &DED, -1, {0}},
    {PMD " junk", &DED, -1, {0}},
    /* shared: the server's context was asked; a window it names for us
     * is taken (a loop has a shared compressor per window) */
    {PMD SNCT, &SHARED, 1, {1, 1, 15, 15}},
    {PMD SNCT CNCT, &SHARED, 1, {1, 1, 15, 15}},
    {PMD, &SHARED, -1, {0}},
    {PMD SNCT "; client_max_window_bits=10", &SHARED, 1, {1, 1, 15, 10}},
    {PMD SNCT "; client_max_window_bits=8", &SHARED, -1, {0}},
    /* small windows: the server's must be answered and fit */
    {PMD "; server_max_window_bits=12", &DED_SMALL, 1, {0, 0, 12, 10}},
    {PMD "; server_max_window_bits=9; client_max_window_bits=9",
     &DED_SMALL,
     1,
     {0, 0, 9, 9}},
    {PMD, &DED_SMALL, -1, {0}},
    {PMD "; server_max_window_bits=13", &DED_SMALL, -1, {0}},
    {PMD "; server_max_window_bits=12; client_max_window_bits=11",
     &DED_SMALL,
     -1,
     {0}},
    {PMD SNCT "; client_max_window_bits=12", &DED_REQ, 1, {1, 0, 15, 12}},
    {PMD "; client_max_window_bits=12", &DED_REQ, -1, {0}},
};

START_TEST(test_check_response) {
  const rcase *c = &rcases[_i];
  size_t n = strlen(c->value);
  test_guard g;
  test_guard_init(&g, n);
  const char *in = (const char *)test_guard_place(&g, c->value, n);
  websock__pmd_params p;
  int r = websock__pmd_check_response(in, n, c->pol, &p);
  if (r != c->ret)
    ck_abort_msg("'%s': returned %d, want %d", c->value, r, c->ret);
  if (r == 1)
    check_params(&p, &c->want, c->value);
  test_guard_free(&g);
}
END_TEST

/* Our client's offer against our server, every pair of policies: the
 * server agrees, the client accepts the answer, and the two views fit
 * (each inflater's window holds what the other end's deflater uses). */
START_TEST(test_both_sides) {
  const websock__pmd_policy *pols[] = {&SHARED, &DED, &DED_REQ, &DED_SMALL,
                                       &INSIST};
  for (int ci = 0; ci < 5; ci++) {
    for (int si = 0; si < 5; si++) {
      char offer[256], resp[256];
      ck_assert_int_gt(websock__pmd_offer(pols[ci], offer, sizeof offer), 0);
      websock__pmd_params sp, cp;
      ck_assert_int_eq(websock__pmd_negotiate(offer, strlen(offer), pols[si],
                                              &sp, resp, sizeof resp),
                       1);
      int r = websock__pmd_check_response(resp, strlen(resp), pols[ci], &cp);
      if (r != 1)
        ck_abort_msg("client %d server %d: offer '%s' answer '%s' -> %d", ci,
                     si, offer, resp, r);
      ck_assert_int_eq(cp.server_no_context_takeover,
                       sp.server_no_context_takeover);
      if (sp.client_no_context_takeover)
        ck_assert_int_eq(cp.client_no_context_takeover, 1);
      ck_assert_uint_ge(cp.server_max_window_bits, sp.server_max_window_bits);
      ck_assert_uint_le(cp.client_max_window_bits, sp.client_max_window_bits);
    }
  }
}
END_TEST

static Suite *pmd_suite(void) {
  Suite *s = suite_create("pmd");
  TCase *tc = tcase_create("core");
  tcase_add_loop_test(tc, test_negotiate_table, 0,
                      (int)(sizeof ncases / sizeof ncases[0]));
  tcase_add_test(tc, test_negotiate_prefixes);
  tcase_add_test(tc, test_no_header);
  tcase_add_test(tc, test_value_max);
  tcase_add_test(tc, test_offer);
  tcase_add_loop_test(tc, test_check_response, 0,
                      (int)(sizeof rcases / sizeof rcases[0]));
  tcase_add_test(tc, test_both_sides);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(pmd_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
