/* Monotonic clock helpers. Layer: util. */
#ifndef WEBSOCK_UTIL_TIME_H
#define WEBSOCK_UTIL_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t websock__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
