/* The intrusive FIFO of the core (websock__qlist: the strands, the ready
 * strands, a loop's batch) and a queue around it that any number of
 * threads push to and one or more threads take from, under a mutex, with
 * hooks that tell the consumer when it went from empty to non-empty (and
 * back): the queued-mode event queue. A thread's inbox with one consumer
 * (a loop's, the cluster link's) is the lock-free websock__mailbox
 * (mailbox.h). Layer: util. */
#ifndef WEBSOCK_UTIL_QUEUE_H
#define WEBSOCK_UTIL_QUEUE_H

#include <pthread.h>
#include <stddef.h>

/* The link embedded in every queued object. */
typedef struct websock__qnode {
  struct websock__qnode *next; /* next in the queue (or chain), NULL last */
} websock__qnode;

/* The FIFO itself, for an owner that keeps its own lock (or needs none):
 * the one head/tail append of the core. websock__queue below adds the
 * lock, the waiting and the hooks. */
typedef struct websock__qlist {
  websock__qnode *head, *tail; /* both NULL when empty */
  size_t len;                  /* nodes held */
} websock__qlist;

/* Appends the chain |first|..|last| (linked by next) of |n| nodes. */
static inline void websock__qlist_push(websock__qlist *l, websock__qnode *first,
                                       websock__qnode *last, size_t n) {
  last->next = NULL;
  if (l->tail)
    l->tail->next = first;
  else
    l->head = first;
  l->tail = last;
  l->len += n;
}

/* Takes up to |max| nodes from the front as a NULL-terminated chain (NULL
 * when empty). */
websock__qnode *websock__qlist_take(websock__qlist *l, size_t max);

/* Called with the queue's lock held, so they must be short and must not
 * call the queue's functions: |on_nonempty| after a push found it empty,
 * |on_empty| after a take left it (or found it) empty, except once it is
 * closed, so that a consumer watching a file descriptor keeps seeing the
 * end. Either may be NULL. */
typedef void (*websock__queue_hook)(void *arg);

typedef struct websock__queue {
  pthread_mutex_t mu;  /* guards every field below */
  pthread_cond_t cv;   /* signalled for threads in _wait_take */
  websock__qlist list; /* the nodes queued */
  unsigned waiters;    /* threads blocked in _wait_take */
  int closed;          /* _close() called: waits return at once */
  websock__queue_hook on_nonempty;
  websock__queue_hook on_empty;
  void *hook_arg;
} websock__queue;

/* Returns 0, or -1 when the mutex or condition cannot be made. */
int websock__queue_init(websock__queue *q, websock__queue_hook on_nonempty,
                        websock__queue_hook on_empty, void *hook_arg);
/* Frees the lock; nodes still queued are the caller's (take them first). */
void websock__queue_destroy(websock__queue *q);

/* Appends the chain |first|..|last| (linked by next; |last|->next is set
 * to NULL) with one lock and at most one hook call and one wake-up.
 * Returns 1 when the queue was empty before. Thread: any. */
int websock__queue_push(websock__queue *q, websock__qnode *first,
                        websock__qnode *last);

/* Takes up to |max| nodes from the front without waiting, as a
 * NULL-terminated chain (NULL when empty). Thread: any. */
websock__qnode *websock__queue_take(websock__queue *q, size_t max);

/* As _take, but first waits up to |timeout_ms| (-1: no limit, 0: not at
 * all) for a node or for _close(). Thread: any. */
websock__qnode *websock__queue_wait_take(websock__queue *q, int timeout_ms,
                                         size_t max);

/* Wakes every waiter for good (they return what is left, then NULL) and
 * calls |on_nonempty| once more so a consumer polling a file descriptor
 * notices the end. Thread: any. */
void websock__queue_close(websock__queue *q);

#endif
