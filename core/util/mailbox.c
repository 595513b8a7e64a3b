/* The lock-free inbox of a thread (see mailbox.h). Layer: util. */
#include "mailbox.h"

void websock__mailbox_init(websock__mailbox *m, websock__mailbox_wake wake,
                           void *wake_arg) {
  atomic_init(&m->top, NULL);
  m->wake = wake;
  m->wake_arg = wake_arg;
}

void websock__mailbox_post(websock__mailbox *m, websock__qnode *n) {
  websock__qnode *top = atomic_load_explicit(&m->top, memory_order_relaxed);
  do
    n->next = top;
  while (!atomic_compare_exchange_weak_explicit(
      &m->top, &top, n, memory_order_release, memory_order_relaxed));
  if (!top && m->wake)
    m->wake(m->wake_arg);
}

websock__qnode *websock__mailbox_take(websock__mailbox *m) {
  /* Only the owner swaps the stack out, so no node is seen twice and no
   * ABA can arise: posters only ever push. */
  websock__qnode *n =
      atomic_exchange_explicit(&m->top, NULL, memory_order_acquire);
  websock__qnode *fifo = NULL;
  while (n) { /* newest first: reverse into posting order */
    websock__qnode *next = n->next;
    n->next = fifo;
    fifo = n;
    n = next;
  }
  return fifo;
}
