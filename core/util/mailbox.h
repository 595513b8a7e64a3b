/* A thread's inbox: any number of threads post nodes to it without a
 * lock, one thread (its owner) takes them all at once, in the order they
 * were posted. The loops' and the cluster link's mailboxes are this; the
 * queued-mode event queue, with several consumers that wait, is
 * websock__queue. Layer: util.
 *
 * A post is one compare-and-swap onto a stack; the owner swaps the stack
 * out whole and reverses it. A post that finds the box empty calls the
 * wake hook (an eventfd write), after the node is in, so the owner is
 * woken once per batch and never misses a node: a wake-up may come for a
 * node the owner already took (it then finds nothing, which is harmless),
 * never late. */
#ifndef WEBSOCK_UTIL_MAILBOX_H
#define WEBSOCK_UTIL_MAILBOX_H

#include <stdatomic.h>

#include "queue.h"

typedef void (*websock__mailbox_wake)(void *arg);

typedef struct websock__mailbox {
  _Atomic(websock__qnode *) top; /* newest node first; NULL when empty */
  websock__mailbox_wake wake;
  void *wake_arg;
} websock__mailbox;

void websock__mailbox_init(websock__mailbox *m, websock__mailbox_wake wake,
                           void *wake_arg);

/* Adds |n| (its next is overwritten) and wakes the owner when the box
 * was empty. Thread: any. */
void websock__mailbox_post(websock__mailbox *m, websock__qnode *n);

/* Takes every node posted so far, oldest first, as a NULL-terminated
 * chain (NULL when empty). Thread: the owner (or any one thread once
 * nobody posts any more). */
websock__qnode *websock__mailbox_take(websock__mailbox *m);

#endif
