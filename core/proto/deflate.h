/* permessage-deflate streams (RFC 7692 §7.2): raw DEFLATE with zlib, one
 * message at a time, with memory that stays bounded. Layer: proto (pure, no
 * I/O). zlib's own allocations come from a websock__zcache, a block cache
 * owned by one I/O thread, so creating and dropping per-connection streams
 * reuses the same blocks instead of fragmenting the heap. */
#ifndef WEBSOCK_PROTO_DEFLATE_H
#define WEBSOCK_PROTO_DEFLATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zlib.h>

#include "util/buf.h"

/* Error codes of this module (negative, distinct from frame.h's). */
enum websock__zerror {
  WEBSOCK__Z_ERR_NOMEM = -1101,    /* out of memory, or zlib refused */
  WEBSOCK__Z_ERR_PARAM = -1102,    /* window bits, memLevel or level */
  WEBSOCK__INFLATE_BAD = -1103,    /* corrupt compressed data: close 1007 */
  WEBSOCK__INFLATE_TOO_BIG = -1104 /* output over the limit: close 1009 */
};

/* Distinct block sizes a cache keeps free lists for. One stream asks zlib
 * for at most five sizes, so this covers a deflater and an inflater of a
 * few configurations; blocks of other sizes go straight to the heap. */
#define WEBSOCK__ZCACHE_CLASSES 16

typedef struct websock__zcache_class {
  size_t size;    /* payload bytes of this class's blocks; 0 = slot unused */
  void *free;     /* cached blocks, linked through their header */
  unsigned count; /* blocks on |free| */
} websock__zcache_class;

/* zlib's allocator for one I/O thread. Single-threaded: only its thread
 * may create, use or free streams drawing from it. Freed blocks wait on a
 * free list of their exact size (zlib asks for the same few sizes for a
 * given window and memLevel), bounded per size and in total; the counters
 * let tests and stats prove the steady state allocates nothing. */
typedef struct websock__zcache {
  websock__zcache_class cls[WEBSOCK__ZCACHE_CLASSES]; /* by exact size */
  unsigned max_blocks_per_size; /* bound of each free list (default 64) */
  size_t max_cached_bytes;      /* bound of all free lists (default 4 MiB) */
  size_t cached_bytes;          /* payload bytes waiting on free lists */
  size_t live_bytes;      /* payload bytes handed to zlib, not yet freed */
  size_t peak_live_bytes; /* highest live_bytes so far */
  long heap_allocs;       /* calls to websock__malloc made for zlib */
  long heap_frees;        /* blocks given back to the heap */
  long hits;              /* requests served from a free list */
} websock__zcache;

/* Sets |c| up empty with the default bounds (change the two max_ fields
 * afterwards if needed). Allocates nothing. */
void websock__zcache_init(websock__zcache *c);
/* Gives cached blocks back to the heap until at most |keep_bytes| remain
 * cached (0: all). Blocks in use by streams are not touched. */
void websock__zcache_trim(websock__zcache *c, size_t keep_bytes);
/* Frees every cached block. Every stream drawing from |c| must have been
 * freed first: a later free of a live block would touch freed memory. */
void websock__zcache_free(websock__zcache *c);
/* zlib's hooks, for callers that set up a z_stream of their own with
 * opaque = the cache. */
voidpf websock__zcache_alloc(voidpf opaque, uInt items, uInt size);
void websock__zcache_release(voidpf opaque, voidpf block);

/* One compressor. The zlib state is created by the first message, not by
 * _init, so a connection that never sends a compressed message costs only
 * this struct. */
typedef struct websock__deflater {
  z_stream zs;         /* zlib's stream, valid while |ready| */
  websock__zcache *zc; /* where zlib's memory comes from, or NULL */
  int8_t window_bits;  /* 9..15 */
  int8_t mem_level;    /* 1..9 */
  int8_t level;        /* 0..9, or -1 for zlib's default (6) */
  uint8_t ready;       /* 1 once deflateInit2 has succeeded */
} websock__deflater;

/* Configures |d| for raw DEFLATE with the given LZ77 window (9..15: zlib
 * cannot compress with 8, see pmd.h), memLevel (1..9) and level (0..9 or
 * -1). |zc| may be NULL (zlib's memory then comes from websock__malloc
 * directly). Returns 0, or WEBSOCK__Z_ERR_PARAM. Allocates nothing. */
int websock__deflater_init(websock__deflater *d, websock__zcache *zc,
                           int window_bits, int mem_level, int level);
/* Gives zlib's state back to the cache (the context is lost; the next
 * message creates a fresh state). For idle connections that keep no
 * context. */
void websock__deflater_release(websock__deflater *d);
/* Releases |d|; _init may be called again afterwards. */
void websock__deflater_free(websock__deflater *d);

/* Compresses one whole message and appends its payload to |out|: raw
 * DEFLATE ending in a Z_SYNC_FLUSH, with the flush's 00 00 FF FF tail
 * removed (RFC 7692 §7.2.1). With |keep_context| the next message may refer
 * back into this one (context takeover); without it the stream is reset
 * afterwards, so each message stands alone. |out| grows once to a bound of
 * the compressed size (deflateBound) and is not reallocated when it already
 * has that room. Returns the bytes appended, or WEBSOCK__Z_ERR_NOMEM (|out|
 * then keeps its old length and the stream is reset, so the context is
 * gone: a connection with context takeover must close). An empty message
 * is the single byte 00 (an empty stored block's header) and touches no
 * zlib state. */
ssize_t websock__deflate_message(websock__deflater *d, const uint8_t *in,
                                 size_t len, int keep_context,
                                 websock__buf *out);

/* One decompressor. Its window is created by the first compressed data. */
typedef struct websock__inflater {
  z_stream zs;         /* zlib's stream, valid while |ready| */
  websock__zcache *zc; /* where zlib's memory comes from, or NULL */
  size_t msg_in;       /* compressed bytes of the message in progress */
  size_t msg_out;      /* bytes produced for the message in progress */
  int8_t window_bits;  /* 9..15 */
  uint8_t ready;       /* 1 once inflateInit2 has succeeded */
  uint8_t in_msg;      /* 1 between a message's first and last chunk */
  uint8_t ended;       /* 1 after a final block: rest of message ignored */
  /* zlib's words for the last WEBSOCK__INFLATE_BAD (a static string), or
   * NULL. One is worth knowing: zlib takes a match distance beyond a small
   * window when the bytes it points at are still in the output of the same
   * inflate() call, so with window_bits < 15 whether such (invalid) data
   * is refused with "invalid distance too far back" depends on how the
   * output happened to be cut. */
  const char *error;
} websock__inflater;

/* Configures |inf| for raw DEFLATE data made with a window of up to
 * 2^|window_bits| bytes (8..15). 8 is read with a 9-bit window: zlib-based
 * peers told to use 8 use 9, and a larger window reads any smaller one's
 * data. Returns 0, or WEBSOCK__Z_ERR_PARAM. Allocates nothing. */
int websock__inflater_init(websock__inflater *inf, websock__zcache *zc,
                           int window_bits);
/* Gives zlib's state (and its window) back to the cache; the context is
 * lost. Not during a message. */
void websock__inflater_release(websock__inflater *inf);
void websock__inflater_free(websock__inflater *inf);

/* Decompresses one whole message payload (the compressed bytes as they
 * arrived, without the tail: 00 00 FF FF is appended here) and appends the
 * result to |out|, growing it chunk by chunk but never by more than
 * |limit| bytes for this message: as soon as the output would pass |limit|
 * it stops with WEBSOCK__INFLATE_TOO_BIG, so a small input that would
 * inflate to gigabytes costs at most |limit| bytes of |out|. With
 * |keep_context| the next message may refer back into this one; without it
 * the stream is reset afterwards. A message holding a final block
 * (BFINAL, which some peers send) ends there: the bytes after it are
 * ignored and the stream starts over (keeping its window when
 * |keep_context|). Returns the bytes appended, or one of:
 * WEBSOCK__INFLATE_TOO_BIG — over |limit| (close 1009);
 * WEBSOCK__INFLATE_BAD — corrupt or truncated data (close 1007);
 * WEBSOCK__Z_ERR_NOMEM. After an error the stream has been reset and the
 * output appended so far stays in |out| (the caller closes anyway). */
ssize_t websock__inflate_message(websock__inflater *inf, const uint8_t *in,
                                 size_t len, int keep_context, size_t limit,
                                 websock__buf *out);

/* The same, fed in pieces as frames arrive: |last| = 1 on the message's
 * final piece (which may be empty). |limit| bounds the whole message's
 * output, counted across calls (so the caller may consume |out| between
 * pieces); |keep_context| matters only with |last|. Same returns, per
 * call. The inflater is busy from a message's first piece to its last, so
 * an inflater shared between connections may only be used this way for
 * one message at a time. */
ssize_t websock__inflate_chunk(websock__inflater *inf, const uint8_t *in,
                               size_t len, int last, int keep_context,
                               size_t limit, websock__buf *out);

#endif
