/* libFuzzer target for permessage-deflate's negotiation (proto/pmd.c):
 * the input as a client's Sec-WebSocket-Extensions offers under each
 * server policy, and as a server's answer to each client offer. An
 * accepted offer's answer must fit, be NUL-terminated, name
 * permessage-deflate and carry windows in range; nothing may read past
 * the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_params(const websock__pmd_params *p) {
  if (p->server_max_window_bits < 8 || p->server_max_window_bits > 15 ||
      p->client_max_window_bits < 8 || p->client_max_window_bits > 15)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy, so the sanitizer sees any read past the end. */
  char *in = malloc(size ? size : 1);
  if (!in)
    return 0;
  memcpy(in, data, size);
  static const websock__pmd_policy pols[] = {
      {0, 15, 1, 1, 15}, /* shared, as net/deflate.c asks */
      {1, 15, 0, 0, 15}, /* dedicated */
      {1, 9, 1, 0, 10},  /* small windows */
  };
  for (size_t i = 0; i < sizeof pols / sizeof pols[0]; i++) {
    websock__pmd_params p;
    char resp[WEBSOCK__PMD_VALUE_MAX];
    int r = websock__pmd_negotiate(in, size, &pols[i], &p, resp, sizeof resp);
    if (r == 1) {
      if (memchr(resp, 0, sizeof resp) == NULL ||
          strncmp(resp, "permessage-deflate", 18) != 0)
        abort();
      check_params(&p);
    } else if (r == 0 && resp[0] != 0) {
      abort();
    }
    if (websock__pmd_check_response(in, size, &pols[i], &p) == 1)
      check_params(&p);
  }
  free(in);
  return 0;
}
