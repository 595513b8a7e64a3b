/* wsload's JSON-like message bodies: a corpus of chat records, the same on
 * every run, from which each (connection, sequence number) takes a body
 * starting at a record chosen by a hash, so successive messages share
 * structure (keys, names, rooms) but not text, as real chat traffic does.
 * Pure: no I/O. */
#ifndef WSLOAD_JSON_H
#define WSLOAD_JSON_H

#include <stddef.h>
#include <stdint.h>

/* The corpus and where its records start. */
typedef struct wsl_corpus {
  char *text;       /* records, back to back, separated by "," */
  size_t len;       /* bytes of text */
  uint32_t *starts; /* offset of each record in text */
  size_t usable;    /* records with at least body_len bytes after them */
  size_t body_len;  /* bytes each body takes */
  size_t nbodies;   /* distinct bodies: every usable record, or fewer */
  size_t stride;    /* records between two bodies' starts */
} wsl_corpus;

/* Builds a corpus for bodies of |body_len| bytes: at least 2 MiB and room
 * for 32 bodies, so a body is rarely within a 32 KiB window of the last
 * one's text. Every usable record starts a body as long as they come to
 * at most 4 MiB in all, else as many bodies as fit, spread evenly (at
 * least 64: 4,161 of 1 KiB, 64 of 64 KiB); a sender can then keep each
 * one compressed. Deterministic (fixed seed). Returns 0 or -1 (no
 * memory). */
int wsl_corpus_build(wsl_corpus *c, size_t body_len);

/* Which body message |seq| of connection |id| gets: 0..nbodies-1. */
size_t wsl_corpus_index(const wsl_corpus *c, uint32_t id, uint32_t seq);

/* Body number |idx|: body_len bytes of text. */
const uint8_t *wsl_corpus_at(const wsl_corpus *c, size_t idx);

#endif
