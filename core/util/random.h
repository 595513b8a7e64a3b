/* Unpredictable bytes for masking keys and handshake nonces, from the
 * kernel's CSPRNG. Layer: util. */
#ifndef WEBSOCK_UTIL_RANDOM_H
#define WEBSOCK_UTIL_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* Fills |out| with |n| random bytes from getrandom(2). Small requests are
 * served from a per-thread block of 256 bytes drawn at once, so a client
 * sending small messages makes one system call per 64 masking keys rather
 * than one per frame. Returns 0, or -1 when the kernel gave nothing
 * (errno set). Thread: any. */
int websock__random(void *out, size_t n);

/* A websock__mask_key_fn (proto/encode.h) drawing from websock__random;
 * |ud| is unused. */
int websock__random_key(void *ud, uint8_t key[4]);

#endif
