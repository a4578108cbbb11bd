"""SPSC rings of normalized update records (struct of arrays), producer -> writer thread.

One producer (a connector, under the GIL) and one consumer (a nogil writer kernel) per
ring.  ``head`` (records pushed) and ``tail`` (records consumed) are free-running int64
counters on separate cache lines; each side keeps a private cached copy of the other's
counter on its own line, so the line ping-pongs only when the cached value runs out.

  producer: load own head; if the space from the cached tail is short, reload
            tail (acquire); copy records; store_release head += n
  consumer: load own tail; if the cached head says empty, reload head (acquire);
            read records; store_release tail += n (after the reads: frees the slots)

Back-pressure policy: a push is all-or-nothing (a message is never split).  A full
ring is counted (C_FULL) and ``Ring.push`` waits for space, yielding the CPU, up to a
timeout, which back-pressures the connector's socket instead of dropping data; only
after the timeout does it raise ``RingFull`` so the caller drops the message, counts
it and resyncs the book.  Records are never overwritten.

Batches popped by the consumer are extended to the next F_END record, so a message
is applied inside one write section and readers never see half of one.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from engine.atomics import load_acquire, load_relaxed, prefetch, store_relaxed, store_release
from engine.constants import F_END, R_FLAGS, REC_FIELDS
from engine.kernels import apply_records

CTL_WORDS = 32
C_HEAD = 0            # producer line
C_PUSHED_MSGS = 1
C_TAIL = 8            # consumer line
C_OWNER = 9           # consumer line: which worker may consume (engine.handoff)
C_PROD_TAIL = 16      # producer's cached tail
C_FULL = 17           # pushes refused because the ring was full
C_CONS_HEAD = 24      # consumer's cached head
C_MAX_DEPTH = 25      # deepest backlog the consumer has seen


def prefaulted(shape) -> np.ndarray:
    """A zeroed int64 array whose pages are already touched: ``np.zeros`` maps pages
    lazily, and the first write to each one (or a 2 MiB transparent huge page being
    zeroed) would otherwise stall the hot path by microseconds to milliseconds."""
    from engine.layout import aligned_zeros

    return aligned_zeros(shape)  # 64-byte aligned: head and tail lines stay apart


class RingFull(RuntimeError):
    """The consumer did not free space within the push timeout."""


@njit(nogil=True, inline="always")
def ring_reserve(ctl, cap, n):
    """Producer side: the head position if ``n`` slots are free, else -1 (counted as a
    full ring).  The caller writes slots head..head+n-1 and then calls ring_publish."""
    head = load_relaxed(ctl, C_HEAD)
    if head + n - ctl[C_PROD_TAIL] > cap:
        store_relaxed(ctl, C_PROD_TAIL, load_acquire(ctl, C_TAIL))
        if head + n - ctl[C_PROD_TAIL] > cap:
            ctl[C_FULL] += 1
            return -1
    return head


@njit(nogil=True, inline="always")
def ring_publish(ctl, head, n):
    """Make the n records written at head.. visible to the consumer (release)."""
    ctl[C_PUSHED_MSGS] += 1
    store_release(ctl, C_HEAD, head + n)


@njit(nogil=True, cache=True)
def ring_push(ctl, data, src, start, n):
    """Copy records src[:, start:start+n] into the ring; all or nothing."""
    cap = data.shape[1]
    mask = cap - 1
    head = ring_reserve(ctl, cap, n)
    if head < 0:
        return False
    for k in range(n):
        j = (head + k) & mask
        for f in range(REC_FIELDS):
            data[f, j] = src[f, start + k]
    ring_publish(ctl, head, n)
    return True


@njit(nogil=True, cache=True)
def ring_push_one(ctl, data, book, side, flags, price, size, seq, ts, recv):
    """Push one record (field order as R_*); False when full."""
    cap = data.shape[1]
    head = ring_reserve(ctl, cap, 1)
    if head < 0:
        return False
    j = head & (cap - 1)
    data[0, j] = book
    data[1, j] = side
    data[2, j] = flags
    data[3, j] = price
    data[4, j] = size
    data[5, j] = seq
    data[6, j] = ts
    data[7, j] = recv
    ring_publish(ctl, head, 1)
    return True


@njit(nogil=True, inline="always")
def ring_available(ctl):
    """Records waiting (consumer side)."""
    tail = load_relaxed(ctl, C_TAIL)
    if ctl[C_CONS_HEAD] == tail:
        ctl[C_CONS_HEAD] = load_acquire(ctl, C_HEAD)
    return ctl[C_CONS_HEAD] - tail


PREFETCH_RECORDS = 16  # records whose lines a pop asks for at once (two lines per field)


@njit(nogil=True, inline="always")
def prefetch_records(data, tail, n, mask):
    """Ask for the lines holding records tail..tail+n-1 (at most PREFETCH_RECORDS) in
    every field row at once.  The producer wrote them on another core, so each line is
    a cross-core transfer; the apply loop would otherwise meet them one after another
    (the book, side and price rows first, the sequence and timestamp rows only at the
    message end).  Asked together they arrive together.  A writer that keeps up pops
    one or two messages at a time, so these are the lines of its whole batch; a long
    batch streams, and the hardware prefetcher follows it."""
    cap = data.shape[1]
    last = tail + min(n, PREFETCH_RECORDS) - 1
    for f in range(REC_FIELDS):
        prefetch(data, f * cap + (tail & mask))
        prefetch(data, f * cap + (last & mask))


@njit(nogil=True)
def ring_consume(ctl, data, hdr, px, sz, batch, hist, stats):
    """Pop up to ``batch`` records (extended to a message end) and apply them."""
    avail = ring_available(ctl)
    if avail <= 0:
        return 0
    if avail > ctl[C_MAX_DEPTH]:
        ctl[C_MAX_DEPTH] = avail
    mask = data.shape[1] - 1
    tail = load_relaxed(ctl, C_TAIL)
    prefetch_records(data, tail, avail, mask)
    n = min(avail, batch)
    while n < avail and not data[R_FLAGS, (tail + n - 1) & mask] & F_END:
        n += 1
    apply_records(hdr, px, sz, data, mask, tail, tail + n, hist, stats)
    store_release(ctl, C_TAIL, tail + n)
    return n


@njit(nogil=True, cache=True)
def ring_pop_into(ctl, data, out, max_n):
    """Move up to ``max_n`` records into out[:, :n] without applying them; returns n."""
    avail = ring_available(ctl)
    n = min(avail, max_n, out.shape[1])
    if n <= 0:
        return 0
    mask = data.shape[1] - 1
    tail = load_relaxed(ctl, C_TAIL)
    for k in range(n):
        j = (tail + k) & mask
        for f in range(REC_FIELDS):
            out[f, k] = data[f, j]
    store_release(ctl, C_TAIL, tail + n)
    return n


@njit(nogil=True, cache=True)
def ring_drain(ctl, data, hdr, px, sz, batch, hist, stats):
    """Consume everything currently in the ring (tests, replay)."""
    total = 0
    while True:
        got = ring_consume(ctl, data, hdr, px, sz, batch, hist, stats)
        if got == 0:
            return total
        total += got


class RingPool:
    """``n`` rings of ``capacity`` records each, preallocated in two arrays."""

    def __init__(self, n: int, capacity: int = 1 << 16) -> None:
        if capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two >= 2, got {capacity}")
        self.capacity = capacity
        self.ctl = prefaulted((n, CTL_WORDS))
        self.data = prefaulted((n, REC_FIELDS, capacity))

    def __len__(self) -> int:
        return self.ctl.shape[0]

    def ring(self, i: int) -> Ring:
        return Ring(self, i)


class Ring:
    """Producer handle of one ring (use from exactly one thread)."""

    __slots__ = ("ctl", "data", "index", "capacity")

    def __init__(self, pool: RingPool, index: int) -> None:
        self.ctl = pool.ctl[index]
        self.data = pool.data[index]
        self.index = index
        self.capacity = pool.capacity

    def try_push(self, block: np.ndarray, start: int = 0, n: int | None = None) -> bool:
        if n is None:
            n = block.shape[1] - start
        return ring_push(self.ctl, self.data, block, start, n)

    def push(self, block: np.ndarray, start: int = 0, n: int | None = None,
             timeout: float = 1.0) -> None:
        """Push records, waiting for space up to ``timeout`` s (back-pressure), else RingFull."""
        if n is None:
            n = block.shape[1] - start
        if n > self.capacity:
            raise ValueError(f"message of {n} records exceeds ring capacity {self.capacity}")
        if ring_push(self.ctl, self.data, block, start, n):
            return
        deadline = time.monotonic() + timeout
        pause = 0.0
        while not ring_push(self.ctl, self.data, block, start, n):
            if time.monotonic() > deadline:
                raise RingFull(f"ring {self.index} full for {timeout}s ({n} records)")
            time.sleep(pause)
            pause = min(pause * 2 or 1e-5, 1e-3)

    def push_one(self, book: int, side: int, flags: int, price: int, size: int,
                 seq: int = -1, ts: int = 0, recv: int = 0) -> bool:
        return ring_push_one(self.ctl, self.data, book, side, flags, price, size, seq, ts, recv)

    @property
    def depth(self) -> int:
        """Records waiting right now (approximate from another thread)."""
        return int(self.ctl[C_HEAD] - self.ctl[C_TAIL])

    @property
    def full_count(self) -> int:
        return int(self.ctl[C_FULL])
