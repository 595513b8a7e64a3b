/* lws2_listen: finds the listening sockets a server opened and closes them
 * while its connections go on (lws2_stop_accepting), for a graceful
 * drain: an nginx worker leaving on reload, a process handing its port to
 * its successor.
 *
 * The public API has no call that stops accepting short of stopping the
 * server, so this works from the outside: lws2_start() notes the
 * listening sockets (by device and inode) that appeared on the server's
 * port during websock_server_start(), and closing one means dup2()ing over
 * its descriptor an eventfd that is never written. The socket leaves the
 * kernel's SO_REUSEPORT group at once (new connections go to the other
 * servers on the port); the I/O thread's event on the descriptor simply
 * never fires again, and the core closes the eventfd at stop as it would
 * have closed the socket. This stays correct as long as the core keeps a
 * listening socket's descriptor open until stop; a core call such as
 * websock_server_stop_accepting() would replace it. */
#include "lws2_int.h"

#include <dirent.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The local port of listening TCP socket |fd|, 0 when |fd| is not one. */
static int listening_port(int fd) {
  int on = 0, type = 0;
  socklen_t len = sizeof on;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0 || !on)
    return 0;
  len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      type != SOCK_STREAM)
    return 0;
  struct sockaddr_storage ss;
  len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
    return 0;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
}

/* Calls |fn| for every descriptor of this process that is a listening TCP
 * socket on |port| (0: any port); stops early when |fn| returns < 0.
 * Returns 0, or -1 when /proc/self/fd cannot be read. */
static int each_listener(int port,
                         int (*fn)(int fd, const struct stat *st, void *arg),
                         void *arg) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  int self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long fd = strtol(e->d_name, &end, 10);
    if (*end || end == e->d_name || fd < 0 || fd == self || fd > 0x7fffffff)
      continue;
    struct stat st;
    if (fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode))
      continue;
    int p = listening_port((int)fd);
    if (!p || (port && p != port))
      continue;
    if (fn((int)fd, &st, arg) < 0)
      break;
  }
  closedir(d);
  return 0;
}

typedef struct {
  lws2_listener *set;
  size_t n, cap;
  int nomem;
} snapshot;

static int snapshot_add(int fd, const struct stat *st, void *arg) {
  (void)fd;
  snapshot *s = arg;
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 16;
    lws2_listener *grown = realloc(s->set, cap * sizeof *grown);
    if (!grown) {
      s->nomem = 1;
      return -1;
    }
    s->set = grown;
    s->cap = cap;
  }
  s->set[s->n].dev = st->st_dev;
  s->set[s->n].ino = st->st_ino;
  s->n++;
  return 0;
}

int lws2__listeners_snapshot(lws2_listener **out, size_t *n, int port) {
  snapshot s = {0};
  if (each_listener(port, snapshot_add, &s) != 0 || s.nomem) {
    free(s.set);
    return -1;
  }
  *out = s.set;
  *n = s.n;
  return 0;
}

typedef struct {
  const lws2_listener *set;
  size_t n;
  int closed;
} closing;

static int close_if_ours(int fd, const struct stat *st, void *arg) {
  closing *c = arg;
  for (size_t i = 0; i < c->n; i++) {
    if (c->set[i].dev != st->st_dev || c->set[i].ino != st->st_ino)
      continue;
    int quiet = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (quiet < 0)
      return -1;
    if (dup2(quiet, fd) >= 0)
      c->closed++;
    close(quiet);
    return 0;
  }
  return 0;
}

int lws2__listeners_close(const lws2_listener *set, size_t n) {
  if (!n)
    return 0;
  closing c = {set, n, 0};
  if (each_listener(0, close_if_ours, &c) != 0)
    return -1;
  return c.closed;
}
