/* permessage-deflate streams over zlib (see deflate.h): the block cache
 * behind zlib's allocator, the message compressor and the bounded
 * decompressor. Layer: proto (pure, no I/O). */
#include "deflate.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "util/alloc.h"

/* The sync flush marker RFC 7692 §7.2.1 strips and §7.2.2 puts back. */
static const uint8_t deflate_tail[4] = {0x00, 0x00, 0xFF, 0xFF};

/* ---- block cache ---- */

/* Precedes every block handed to zlib, so a free knows the block's size
 * and class without zlib telling it. The union keeps the payload aligned
 * for any type zlib stores there. */
typedef union zcache_head {
  struct {
    union zcache_head *next; /* next free block of the class, while cached */
    size_t size;             /* payload bytes */
    unsigned cls;            /* class slot, or WEBSOCK__ZCACHE_CLASSES */
  } h;
  max_align_t align;
} zcache_head;

void websock__zcache_init(websock__zcache *c) {
  memset(c, 0, sizeof *c);
  c->max_blocks_per_size = 64;
  c->max_cached_bytes = (size_t)4 << 20;
}

/* The slot for blocks of |size|, claiming a free slot for a new size;
 * WEBSOCK__ZCACHE_CLASSES when all slots hold other sizes. */
static unsigned zcache_class_of(websock__zcache *c, size_t size) {
  unsigned empty = WEBSOCK__ZCACHE_CLASSES;
  for (unsigned i = 0; i < WEBSOCK__ZCACHE_CLASSES; i++) {
    if (c->cls[i].size == size)
      return i;
    if (c->cls[i].size == 0 && empty == WEBSOCK__ZCACHE_CLASSES)
      empty = i;
  }
  if (empty < WEBSOCK__ZCACHE_CLASSES)
    c->cls[empty].size = size;
  return empty;
}

voidpf websock__zcache_alloc(voidpf opaque, uInt items, uInt size) {
  websock__zcache *c = opaque;
  if (size && items > (SIZE_MAX - sizeof(zcache_head)) / size)
    return Z_NULL;
  size_t n = (size_t)items * size;
  unsigned cls = WEBSOCK__ZCACHE_CLASSES;
  zcache_head *b = NULL;
  if (c && n) {
    cls = zcache_class_of(c, n);
    if (cls < WEBSOCK__ZCACHE_CLASSES && c->cls[cls].free) {
      b = c->cls[cls].free;
      c->cls[cls].free = b->h.next;
      c->cls[cls].count--;
      c->cached_bytes -= n;
      c->hits++;
    }
  }
  if (!b) {
    b = websock__malloc(sizeof *b + n);
    if (!b)
      return Z_NULL;
    if (c)
      c->heap_allocs++;
  }
  b->h.next = NULL;
  b->h.size = n;
  b->h.cls = cls;
  if (c) {
    c->live_bytes += n;
    if (c->live_bytes > c->peak_live_bytes)
      c->peak_live_bytes = c->live_bytes;
  }
  return b + 1;
}

void websock__zcache_release(voidpf opaque, voidpf block) {
  websock__zcache *c = opaque;
  if (!block)
    return;
  zcache_head *b = (zcache_head *)block - 1;
  size_t n = b->h.size;
  if (!c) {
    websock__free(b);
    return;
  }
  c->live_bytes -= n;
  unsigned cls = b->h.cls;
  /* A trim may have handed the slot to another size since this block was
   * made: only a block of the slot's current size may join its list. */
  if (cls < WEBSOCK__ZCACHE_CLASSES && c->cls[cls].size == n &&
      c->cls[cls].count < c->max_blocks_per_size &&
      c->cached_bytes <= c->max_cached_bytes &&
      n <= c->max_cached_bytes - c->cached_bytes) {
    b->h.next = c->cls[cls].free;
    c->cls[cls].free = b;
    c->cls[cls].count++;
    c->cached_bytes += n;
    return;
  }
  websock__free(b);
  c->heap_frees++;
}

void websock__zcache_trim(websock__zcache *c, size_t keep_bytes) {
  /* Largest blocks first: they are the windows and hash tables of streams
   * that have gone, the memory worth giving back. */
  while (c->cached_bytes > keep_bytes) {
    websock__zcache_class *big = NULL;
    for (unsigned i = 0; i < WEBSOCK__ZCACHE_CLASSES; i++)
      if (c->cls[i].free && (!big || c->cls[i].size > big->size))
        big = &c->cls[i];
    if (!big)
      break;
    zcache_head *b = big->free;
    big->free = b->h.next;
    big->count--;
    c->cached_bytes -= b->h.size;
    websock__free(b);
    c->heap_frees++;
  }
  /* Slots with nothing cached may serve other sizes from now on. */
  for (unsigned i = 0; i < WEBSOCK__ZCACHE_CLASSES; i++)
    if (!c->cls[i].free)
      c->cls[i].size = 0;
}

void websock__zcache_free(websock__zcache *c) {
  websock__zcache_trim(c, 0);
}

/* ---- compressor ---- */

int websock__deflater_init(websock__deflater *d, websock__zcache *zc,
                           int window_bits, int mem_level, int level) {
  if (window_bits < 9 || window_bits > 15 || mem_level < 1 || mem_level > 9 ||
      level < -1 || level > 9)
    return WEBSOCK__Z_ERR_PARAM;
  memset(d, 0, sizeof *d);
  d->zc = zc;
  d->window_bits = (int8_t)window_bits;
  d->mem_level = (int8_t)mem_level;
  d->level = (int8_t)level;
  return 0;
}

/* Creates zlib's state on first use. Returns 0 or WEBSOCK__Z_ERR_NOMEM. */
static int deflater_ready(websock__deflater *d) {
  if (d->ready)
    return 0;
  memset(&d->zs, 0, sizeof d->zs);
  d->zs.zalloc = websock__zcache_alloc;
  d->zs.zfree = websock__zcache_release;
  d->zs.opaque = d->zc;
  /* Negative window bits: raw DEFLATE, no zlib header or checksum. */
  if (deflateInit2(&d->zs, d->level, Z_DEFLATED, -d->window_bits, d->mem_level,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return WEBSOCK__Z_ERR_NOMEM;
  d->ready = 1;
  return 0;
}

void websock__deflater_release(websock__deflater *d) {
  if (d->ready)
    deflateEnd(&d->zs);
  d->ready = 0;
}

void websock__deflater_free(websock__deflater *d) {
  websock__deflater_release(d);
}

/* Points the stream's output at the free room of |out|. */
static void deflate_set_out(z_stream *zs, websock__buf *out) {
  size_t room = out->cap - out->len;
  zs->next_out = out->data + out->len;
  zs->avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
}

/* Runs deflate over all of |in|, ending with a sync flush. Returns 0 or
 * WEBSOCK__Z_ERR_NOMEM; out->len follows the output. */
static int deflate_run(websock__deflater *d, const uint8_t *in, size_t len,
                       websock__buf *out) {
  z_stream *zs = &d->zs;
  size_t left = len;
  zs->next_in = (Bytef *)in;
  zs->avail_in = 0;
  deflate_set_out(zs, out);
  for (;;) {
    if (zs->avail_in == 0 && left) {
      /* avail_in is 32 bits wide: longer messages go in slices. */
      uInt take = left > UINT_MAX ? UINT_MAX : (uInt)left;
      zs->avail_in = take;
      left -= take;
    }
    if (zs->avail_out == 0) {
      /* deflateBound was not enough (it cannot be, short of a zlib change):
       * grow rather than fail. */
      if (websock__buf_reserve(out, 64 + left + zs->avail_in) < 0)
        return WEBSOCK__Z_ERR_NOMEM;
      deflate_set_out(zs, out);
    }
    int flush = left ? Z_NO_FLUSH : Z_SYNC_FLUSH;
    int zr = deflate(zs, flush);
    out->len = (size_t)(zs->next_out - out->data);
    if (zr != Z_OK && zr != Z_BUF_ERROR)
      return WEBSOCK__Z_ERR_NOMEM;
    /* With room left over after a sync flush everything has been written
     * (Z_BUF_ERROR there only means there was nothing more to do). */
    if (flush == Z_SYNC_FLUSH && zs->avail_in == 0 && zs->avail_out != 0)
      return 0;
  }
}

ssize_t websock__deflate_message(websock__deflater *d, const uint8_t *in,
                                 size_t len, int keep_context,
                                 websock__buf *out) {
  if (len == 0) {
    /* Between messages the stream is byte-aligned, so an empty message is
     * an empty stored block's header byte (RFC 7692 §7.2.3.6). zlib will
     * not write a second sync flush with no input in between, and needs
     * not be woken up for this. */
    static const uint8_t empty = 0x00;
    return websock__buf_append(out, &empty, 1) < 0 ? WEBSOCK__Z_ERR_NOMEM : 1;
  }
  if (deflater_ready(d))
    return WEBSOCK__Z_ERR_NOMEM;
  size_t start = out->len;
  /* The bound covers a whole stream ending with Z_FINISH; the sync flush
   * adds at most an empty stored block (5 bytes) and a partial byte. */
  uLong bound = deflateBound(&d->zs, (uLong)len);
  int err = bound > SIZE_MAX - 16 ? WEBSOCK__Z_ERR_NOMEM : 0;
  if (!err && websock__buf_reserve(out, (size_t)bound + 16) < 0)
    err = WEBSOCK__Z_ERR_NOMEM;
  if (!err)
    err = deflate_run(d, in, len, out);
  size_t n = out->len - start;
  if (!err && (n < 4 || memcmp(out->data + out->len - 4, deflate_tail, 4) != 0))
    err = WEBSOCK__Z_ERR_NOMEM; /* not a sync flush: zlib misbehaved */
  if (err) {
    out->len = start;
    deflateReset(&d->zs);
    return err;
  }
  out->len -= 4;
  if (!keep_context)
    deflateReset(&d->zs);
  return (ssize_t)(n - 4);
}

/* ---- decompressor ---- */

int websock__inflater_init(websock__inflater *inf, websock__zcache *zc,
                           int window_bits) {
  if (window_bits < 8 || window_bits > 15)
    return WEBSOCK__Z_ERR_PARAM;
  memset(inf, 0, sizeof *inf);
  inf->zc = zc;
  inf->window_bits = (int8_t)(window_bits < 9 ? 9 : window_bits);
  return 0;
}

static int inflater_ready(websock__inflater *inf) {
  if (inf->ready)
    return 0;
  memset(&inf->zs, 0, sizeof inf->zs);
  inf->zs.zalloc = websock__zcache_alloc;
  inf->zs.zfree = websock__zcache_release;
  inf->zs.opaque = inf->zc;
  if (inflateInit2(&inf->zs, -inf->window_bits) != Z_OK)
    return WEBSOCK__Z_ERR_NOMEM;
  inf->ready = 1;
  return 0;
}

void websock__inflater_release(websock__inflater *inf) {
  if (inf->ready)
    inflateEnd(&inf->zs);
  inf->ready = 0;
  inf->in_msg = 0;
}

void websock__inflater_free(websock__inflater *inf) {
  websock__inflater_release(inf);
}

/* After a final block zlib accepts nothing more until reset. Starts the
 * stream over with the window it had, so a later message may still refer
 * back into this one. Returns 0 or WEBSOCK__Z_ERR_NOMEM. */
static int inflate_restart(websock__inflater *inf) {
  z_stream *zs = &inf->zs;
  uInt dlen = 0;
  inflateGetDictionary(zs, Z_NULL, &dlen);
  Bytef *dict = NULL;
  if (dlen) {
    /* From the cache and always the window's size (the size of the
     * window's own block), so peers that end every message this way cost
     * no allocation per message. */
    dict = websock__zcache_alloc(inf->zc, 1u << inf->window_bits, 1);
    if (!dict)
      return WEBSOCK__Z_ERR_NOMEM;
    inflateGetDictionary(zs, dict, &dlen);
  }
  inflateReset(zs);
  int zr = Z_OK;
  if (dict) {
    zr = inflateSetDictionary(zs, dict, dlen);
    websock__zcache_release(inf->zc, dict);
  }
  return zr == Z_OK ? 0 : WEBSOCK__Z_ERR_NOMEM;
}

/* Makes room in |out| for at most |budget| more bytes, growing by about
 * its size so a long output costs O(log n) copies, and never beyond the
 * budget. Only util/buf.c may resize a buffer, and a growing buffer there
 * doubles, which could take it to twice the limit; an empty one gets the
 * room asked for, so growth goes through a fresh buffer. Returns 0 or
 * WEBSOCK__Z_ERR_NOMEM. */
static int inflate_grow(websock__buf *out, size_t budget, size_t hint) {
  size_t step = out->cap > hint ? out->cap : hint;
  if (step < 1024)
    step = 1024;
  if (step > budget)
    step = budget;
  if (step > SIZE_MAX - out->len)
    return WEBSOCK__Z_ERR_NOMEM;
  if (out->len == 0)
    return websock__buf_reserve(out, step) < 0 ? WEBSOCK__Z_ERR_NOMEM : 0;
  websock__buf fresh = {0};
  if (websock__buf_reserve(&fresh, out->len + step) < 0)
    return WEBSOCK__Z_ERR_NOMEM;
  memcpy(fresh.data, out->data, out->len);
  fresh.len = out->len;
  websock__buf_swap(out, &fresh);
  websock__buf_free(&fresh);
  return 0;
}

/* Inflates |len| bytes into |out| within |limit| bytes for the message.
 * Returns 0 once all input is taken and all output written, or an error. */
static int inflate_feed(websock__inflater *inf, const uint8_t *in, size_t len,
                        size_t limit, websock__buf *out) {
  z_stream *zs = &inf->zs;
  size_t left = len;
  uint8_t scratch;
  zs->next_in = (Bytef *)in;
  zs->avail_in = 0;
  for (;;) {
    if (inf->ended)
      return 0; /* a final block ended the data: the rest is ignored */
    if (zs->avail_in == 0 && left) {
      uInt take = left > UINT_MAX ? UINT_MAX : (uInt)left;
      zs->avail_in = take;
      left -= take;
    }
    size_t budget = limit - inf->msg_out;
    int probing = budget == 0;
    if (probing) {
      /* At the limit: one byte more would be too much, and zlib can only
       * tell whether one is coming by writing it, so it writes here. */
      zs->next_out = &scratch;
      zs->avail_out = 1;
    } else {
      if (out->cap == out->len) {
        int err = inflate_grow(out, budget, 4 * (left + zs->avail_in));
        if (err)
          return err;
      }
      size_t room = out->cap - out->len;
      if (room > budget)
        room = budget;
      zs->next_out = out->data + out->len;
      zs->avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
    }
    uInt before = zs->avail_out;
    int zr = inflate(zs, Z_SYNC_FLUSH);
    size_t made = before - zs->avail_out;
    if (probing && made)
      return WEBSOCK__INFLATE_TOO_BIG;
    out->len += made;
    inf->msg_out += made;
    switch (zr) {
    case Z_OK:
      /* Done when the input is gone and zlib stopped short of the room it
       * had: it holds nothing back after Z_SYNC_FLUSH. */
      if (zs->avail_in == 0 && !left && zs->avail_out != 0)
        return 0;
      break;
    case Z_BUF_ERROR:
      /* No progress was possible: fine when the input is gone (the output
       * was already complete), a stuck stream when it is not. */
      if (zs->avail_in == 0 && !left)
        return 0;
      if (zs->avail_out != 0) {
        inf->error = "stuck stream";
        return WEBSOCK__INFLATE_BAD;
      }
      break;
    case Z_STREAM_END:
      inf->ended = 1;
      return inflate_restart(inf);
    case Z_MEM_ERROR:
      return WEBSOCK__Z_ERR_NOMEM;
    default: /* Z_DATA_ERROR, or Z_NEED_DICT, which raw data never asks */
      inf->error = zs->msg;
      return WEBSOCK__INFLATE_BAD;
    }
  }
}

ssize_t websock__inflate_chunk(websock__inflater *inf, const uint8_t *in,
                               size_t len, int last, int keep_context,
                               size_t limit, websock__buf *out) {
  if (inflater_ready(inf))
    return WEBSOCK__Z_ERR_NOMEM;
  if (!inf->in_msg) {
    inf->in_msg = 1;
    inf->ended = 0;
    inf->msg_out = 0;
    inf->msg_in = 0;
    inf->error = NULL;
  }
  size_t start = out->len;
  inf->msg_in += len;
  int err = inflate_feed(inf, in, len, limit, out);
  /* An empty payload is an empty message; nothing is owed a tail. */
  if (!err && last && !inf->ended && inf->msg_in) {
    err = inflate_feed(inf, deflate_tail, sizeof deflate_tail, limit, out);
    /* The tail closes an empty stored block, after which zlib waits for
     * the next block header (data_type bit 7). Anywhere else the message
     * was cut short inside a block. */
    if (!err && !inf->ended && !(inf->zs.data_type & 128)) {
      inf->error = "message ends inside a block";
      err = WEBSOCK__INFLATE_BAD;
    }
  }
  if (err || last) {
    inf->in_msg = 0;
    if (err || !keep_context)
      inflateReset(&inf->zs);
  }
  if (err)
    return err;
  return (ssize_t)(out->len - start);
}

ssize_t websock__inflate_message(websock__inflater *inf, const uint8_t *in,
                                 size_t len, int keep_context, size_t limit,
                                 websock__buf *out) {
  return websock__inflate_chunk(inf, in, len, 1, keep_context, limit, out);
}
