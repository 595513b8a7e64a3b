/* libwsalloc.so: LD_PRELOAD shim counting malloc/calloc/realloc/free calls.
 * Appends "mallocs N frees N callocs N reallocs N" to $WSALLOC_OUT on
 * SIGUSR2 and at exit. "mallocs" counts every allocating call. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef int (*memalign_fn)(void **, size_t, size_t);
typedef void *(*aligned_fn)(size_t, size_t);

static malloc_fn real_malloc;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static free_fn real_free;
static memalign_fn real_posix_memalign;
static aligned_fn real_aligned_alloc;

static atomic_ulong n_alloc, n_calloc, n_realloc, n_free;
static atomic_int init_state; /* 0 none, 1 running, 2 done */
static char out_path[4096];

/* dlsym() may calloc before real_calloc is known: serve it from here. */
static _Alignas(16) unsigned char boot_buf[8192];
static atomic_size_t boot_used;

static void *boot_alloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  size_t off = atomic_fetch_add(&boot_used, n);
  if (off + n > sizeof boot_buf)
    return NULL;
  return boot_buf + off;
}

static int is_boot(const void *p) {
  return (const unsigned char *)p >= boot_buf &&
         (const unsigned char *)p < boot_buf + sizeof boot_buf;
}

static void put_num(char *buf, size_t *pos, unsigned long v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n)
    buf[(*pos)++] = tmp[--n];
}

static void put_str(char *buf, size_t *pos, const char *s) {
  while (*s)
    buf[(*pos)++] = *s++;
}

/* Async-signal-safe: one O_APPEND write() per snapshot line. */
static void dump_counts(void) {
  if (!out_path[0])
    return;
  char line[160];
  size_t pos = 0;
  put_str(line, &pos, "mallocs ");
  put_num(line, &pos, atomic_load(&n_alloc));
  put_str(line, &pos, " frees ");
  put_num(line, &pos, atomic_load(&n_free));
  put_str(line, &pos, " callocs ");
  put_num(line, &pos, atomic_load(&n_calloc));
  put_str(line, &pos, " reallocs ");
  put_num(line, &pos, atomic_load(&n_realloc));
  line[pos++] = '\n';
  int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  ssize_t w = write(fd, line, pos);
  (void)w;
  close(fd);
}

static void on_usr2(int sig) {
  (void)sig;
  dump_counts();
}

static void resolve(void) {
  int expect = 0;
  if (!atomic_compare_exchange_strong(&init_state, &expect, 1))
    return; /* already done, or dlsym is calling back in */
  real_calloc = (calloc_fn)dlsym(RTLD_NEXT, "calloc");
  real_malloc = (malloc_fn)dlsym(RTLD_NEXT, "malloc");
  real_realloc = (realloc_fn)dlsym(RTLD_NEXT, "realloc");
  real_free = (free_fn)dlsym(RTLD_NEXT, "free");
  real_posix_memalign = (memalign_fn)dlsym(RTLD_NEXT, "posix_memalign");
  real_aligned_alloc = (aligned_fn)dlsym(RTLD_NEXT, "aligned_alloc");
  atomic_store(&init_state, 2);
}

__attribute__((constructor)) static void shim_init(void) {
  resolve();
  const char *p = getenv("WSALLOC_OUT");
  if (p && strlen(p) < sizeof out_path)
    strcpy(out_path, p);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &sa, NULL);
}

__attribute__((destructor)) static void shim_fini(void) {
  dump_counts();
}

void *malloc(size_t n) {
  if (!real_malloc) {
    resolve();
    if (!real_malloc)
      return boot_alloc(n);
  }
  atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
  return real_malloc(n);
}

void *calloc(size_t a, size_t b) {
  if (!real_calloc) {
    resolve();
    if (!real_calloc) {
      if (b && a > SIZE_MAX / b)
        return NULL;
      return boot_alloc(a * b); /* static storage is already zeroed */
    }
  }
  atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n_calloc, 1, memory_order_relaxed);
  return real_calloc(a, b);
}

void *realloc(void *p, size_t n) {
  if (is_boot(p)) { /* move a bootstrap block to the heap */
    void *q = malloc(n);
    if (q) {
      size_t avail = (size_t)(boot_buf + sizeof boot_buf - (unsigned char *)p);
      memcpy(q, p, n < avail ? n : avail);
    }
    return q;
  }
  if (!real_realloc) {
    resolve();
    if (!real_realloc)
      return NULL;
  }
  atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n_realloc, 1, memory_order_relaxed);
  return real_realloc(p, n);
}

void free(void *p) {
  if (!p || is_boot(p))
    return;
  if (!real_free) {
    resolve();
    if (!real_free)
      return; /* leak rather than crash */
  }
  atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
  real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n) {
  if (!real_posix_memalign) {
    resolve();
    if (!real_posix_memalign)
      return 12; /* ENOMEM */
  }
  atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
  return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n) {
  if (!real_aligned_alloc) {
    resolve();
    if (!real_aligned_alloc)
      return NULL;
  }
  atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
  return real_aligned_alloc(align, n);
}
