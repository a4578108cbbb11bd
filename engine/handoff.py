"""Who may consume a book's queue: one owner word per queue, handed off by CAS.

The owner word is ring control word C_OWNER (on the consumer's cache line, next to
the tail, so checking it costs no extra line):

   0          nobody owns the queue yet
   w + 1      worker w owns it and is NOT consuming it
   -(w + 1)   worker w is consuming it right now

  owner w, to consume:   cas(own, w+1, -(w+1))     fails -> the queue was taken: forget it
                         pop + apply (tail, cached head, book seqlock: as plain SPSC)
                         store_release(own, w+1)
  thief / mover to t:    cas(own, w+1, t+1)        succeeds only while w is not consuming
                         (a mover then tells t through t's inbox; a thief lists it itself)

Why that is enough (C++11 model, engine.atomics):
* One consumer at a time.  The only way into "consuming" is the owner's CAS from w+1;
  every CAS expects a positive word, so none succeeds while the word is negative.  A
  thief therefore only ever takes a queue that nobody is popping, and a worker that
  lost its queue learns it from its own failed CAS before it touches a record.
* Nothing lost, duplicated or reordered.  The queue's consumer state (tail and cached
  head) lives in the ring's control row and is written only while consuming.  The old
  owner's store_release(own, w+1) comes after its tail store and its book stores; the
  new owner's CAS reads that value, or one written by a later read-modify-write of the
  same word (a mover's CAS), which C++11 puts in the release sequence of that store.
  So the old owner's writes happen-before the new owner's first pop: it resumes from
  the exact tail the old owner left and sees the book exactly as it was left.
* The producer never reads the owner: to it there is still exactly one consumer,
  because consumers never overlap.  SPSC ordering (engine.ring) is unchanged.
* Readers never notice: the book's seqlock counter is one more word handed over along
  the same happens-before chain, so its even/odd sequence continues unbroken.

Inbox: a worker learns of queues a mover gave it through its inbox, an SPSC ring of
queue indices (one producer: the rebalancer, under a lock; one consumer: the worker).
A queue index in an inbox is only a hint: the owner word decides.
"""

from __future__ import annotations

from numba import njit

from engine.atomics import cas, cpu_relax, load_acquire, load_relaxed, store_release
from engine.ring import C_OWNER

NO_OWNER = -1


@njit(nogil=True, inline="always")
def claim(c, w):
    """Worker w starts consuming queue control row ``c``; False if w no longer owns it."""
    return cas(c, C_OWNER, w + 1, -(w + 1))


@njit(nogil=True, inline="always")
def release(c, w):
    """Worker w is done consuming (publishes its tail and book writes to any next owner)."""
    store_release(c, C_OWNER, w + 1)


@njit(nogil=True, inline="always")
def take(c, frm, to):
    """Move ownership from idle owner ``frm`` to ``to``; False if frm is consuming or
    is not the owner."""
    return cas(c, C_OWNER, frm + 1, to + 1)


@njit(nogil=True, inline="always")
def owner_of(c):
    """The owning worker (consuming or not), or NO_OWNER."""
    v = load_acquire(c, C_OWNER)
    if v > 0:
        return v - 1
    if v < 0:
        return -v - 1
    return NO_OWNER


@njit(nogil=True, inline="always")
def owned_idle_by(c, w):
    return load_relaxed(c, C_OWNER) == w + 1


MOVE_DONE = 0        # ownership is now ``to``'s
MOVE_ALREADY = 1     # ``to`` owned it already
MOVE_BUSY = 2        # the owner was consuming for the whole spin budget: try later


@njit(nogil=True, cache=True)
def move_queue(ctl, q, to, tries):
    """Give queue ``q`` to worker ``to`` (from whoever owns it, or from nobody).
    Returns (outcome, previous owner)."""
    c = ctl[q]
    for _ in range(tries):
        v = load_acquire(c, C_OWNER)
        if v == to + 1 or v == -(to + 1):
            return MOVE_ALREADY, to
        if v == 0:
            if cas(c, C_OWNER, 0, to + 1):
                return MOVE_DONE, NO_OWNER
        elif v > 0:
            if cas(c, C_OWNER, v, to + 1):
                return MOVE_DONE, v - 1
        cpu_relax()
    return MOVE_BUSY, owner_of(c)


# -- inbox: SPSC ring of queue indices, mover -> worker ------------------------------

@njit(nogil=True, cache=True)
def inbox_push(row, head_word, tail_word, box, q):
    """Append q to a worker's inbox (the single producer); False when full."""
    head = row[head_word]
    if head - load_acquire(row, tail_word) >= box.shape[0]:
        return False
    box[head & (box.shape[0] - 1)] = q
    store_release(row, head_word, head + 1)
    return True


@njit(nogil=True, cache=True)
def move_queues(ctl, books, targets, tries, wctl, head_word, tail_word, inbox, outcomes):
    """move_queue + inbox_push for many queues in one nogil call (the rebalancer's
    batch: it keeps the GIL away from the event loop).  outcomes[i] is a MOVE_* code,
    or MOVE_BUSY when the target's inbox was full (nothing changed then)."""
    for i in range(books.shape[0]):
        q = books[i]
        to = targets[i]
        row = wctl[to]
        box = inbox[to]
        if row[head_word] - load_acquire(row, tail_word) >= box.shape[0]:
            outcomes[i] = MOVE_BUSY
            continue
        outcome, _prev = move_queue(ctl, q, to, tries)
        if outcome == MOVE_DONE:
            inbox_push(row, head_word, tail_word, box, q)   # room was checked above
        outcomes[i] = outcome
