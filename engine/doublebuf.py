"""Double-buffered copies of hot books: readers take a complete, immutable copy chosen by
one counter, and never wait for the writer.

With the plain seqlock a reader that meets a write section spins until it ends and
then copies again.  Here the writer, after its write section on a hot book, copies the
book's top ``levels`` per side (and its header) into the back copy and flips a counter;
readers read the front copy.  A reader retries only when the writer has lapped it (two
publishes during one read), which at any realistic message rate is almost never.

Protocol, per hot book (slot), one counter ``s`` (a "seqcount latch"):

  writer publish                          reader
  s = seq (writer-owned)                  s1 = load_acquire(seq)
  store seq = s + 1                       c = (s1 >> 1) & 1: the copy last published
  fence_release                           read copy c (plain loads)
  write copy ((s >> 1) + 1) & 1           fence_acquire
  store_release seq = s + 2               s2 = load_relaxed(seq)
                                          valid iff s2 <= (s1 & ~1) + 2

While ``seq`` is 2v or 2v+1, version v sits in copy v & 1 and any write in progress
targets the other copy; the writer only touches copy v & 1 again after storing 2v+3,
so a re-read of at most (s1 & ~1) + 2 proves the copy was not being rewritten.  The
orderings are the seqlock's (engine/seqlock.py), for the same reasons.  Initial state:
seq 0, copy 0 all zeros (an empty book).

A writer loop calls ``db_refresh`` after a batch of write sections (it publishes each
hot book whose seqlock moved since its last publish), or ``db_publish`` right after
the write section of one hot book.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.atomics import (
    fence_acquire,
    fence_release,
    load_acquire,
    load_relaxed,
    store_relaxed,
    store_release,
)
from engine.constants import ASK, BID, H_BID_LO, H_NASK, H_NBID, H_SEQLOCK, HDR_WORDS
from engine.layout import aligned_zeros
from engine.read import top_slot

SLOT_WORDS = 8     # one cache line per hot book in ``seq``
D_SEQ = 0          # the latch counter
D_SRC_SEQ = 1      # the book's seqlock value at the last publish (writer-private)
D_PUBLISHES = 2    # publishes made (writer-private)


@njit(nogil=True, inline="always")
def db_publish(seq, chdr, cpx, csz, slot, hdr, px, sz, book):
    """Copy ``book`` (header and its best ``levels`` per side, best first) into the back
    copy of ``slot`` and flip.  Call from the book's writer thread, outside a write
    section (the writer owns the book, so it reads it without the seqlock)."""
    i = slot * SLOT_WORDS
    s = load_relaxed(seq, i + D_SEQ)
    store_relaxed(seq, i + D_SEQ, s + 1)
    fence_release()
    c = ((s >> 1) + 1) & 1
    h = book * HDR_WORDS
    for k in range(HDR_WORDS):
        chdr[slot, c, k] = hdr[h + k]
    levels = cpx.shape[3]
    for side in range(2):
        t, n = top_slot(hdr, h, side, px.shape[2])  # the best level's slot (engine.store)
        m = min(n, levels)
        chdr[slot, c, H_NBID + side] = m
        chdr[slot, c, H_BID_LO + side] = 0  # the copy is best first from index 0
        for k in range(m):
            cpx[slot, c, side, k] = px[book, side, t - k]
            csz[slot, c, side, k] = sz[book, side, t - k]
    seq[i + D_SRC_SEQ] = hdr[h + H_SEQLOCK]
    seq[i + D_PUBLISHES] += 1
    store_release(seq, i + D_SEQ, s + 2)


@njit(nogil=True, inline="always")
def db_refresh(seq, chdr, cpx, csz, slot_book, hdr, px, sz):
    """Publish every hot book written since its last publish; returns how many."""
    done = 0
    for slot in range(slot_book.shape[0]):
        b = slot_book[slot]
        if hdr[b * HDR_WORDS + H_SEQLOCK] != seq[slot * SLOT_WORDS + D_SRC_SEQ]:
            db_publish(seq, chdr, cpx, csz, slot, hdr, px, sz, b)
            done += 1
    return done


@njit(nogil=True, cache=True)
def db_refresh_kernel(seq, chdr, cpx, csz, slot_book, hdr, px, sz):
    """db_refresh as a standalone kernel (Python callers, tests)."""
    return db_refresh(seq, chdr, cpx, csz, slot_book, hdr, px, sz)


@njit(nogil=True, inline="always")
def db_read_begin(seq, slot):
    """The counter a read starts from and the copy it must read."""
    s1 = load_acquire(seq, slot * SLOT_WORDS + D_SEQ)
    return s1, (s1 >> 1) & 1


@njit(nogil=True, inline="always")
def db_read_valid(seq, slot, s1):
    fence_acquire()
    return load_relaxed(seq, slot * SLOT_WORDS + D_SEQ) <= (s1 & ~1) + 2


@njit(nogil=True, cache=True)
def db_best(seq, chdr, cpx, csz, slot, side):
    """(price, size, ok) of the best level of ``side`` in the published copy."""
    while True:
        s1, c = db_read_begin(seq, slot)
        n = chdr[slot, c, H_NBID + side]
        p = cpx[slot, c, side, 0]
        q = csz[slot, c, side, 0]
        if db_read_valid(seq, slot, s1):
            return p, q, n > 0


@njit(nogil=True, cache=True)
def db_copy_top(seq, chdr, cpx, csz, slot, n, out_px, out_sz, out_hdr):
    """As engine.read.copy_top, from the published copy: top ``n`` levels per side best
    first into out_px/out_sz[2, >=n], the header into out_hdr.  Returns
    (nbid, nask, retries)."""
    retries = 0
    while True:
        s1, c = db_read_begin(seq, slot)
        for k in range(HDR_WORDS):
            out_hdr[k] = chdr[slot, c, k]
        cb = min(n, out_hdr[H_NBID])
        ca = min(n, out_hdr[H_NASK])
        for k in range(cb):
            out_px[BID, k] = cpx[slot, c, BID, k]
            out_sz[BID, k] = csz[slot, c, BID, k]
        for k in range(ca):
            out_px[ASK, k] = cpx[slot, c, ASK, k]
            out_sz[ASK, k] = csz[slot, c, ASK, k]
        if db_read_valid(seq, slot, s1):
            return cb, ca, retries
        retries += 1


class DoubleBuffer:
    """Front/back copies of ``books`` (the hot ones), ``levels`` per side each."""

    def __init__(self, store, books: list[int], levels: int) -> None:
        if not books:
            raise ValueError("a double buffer needs at least one book")
        if not 1 <= levels <= store.depth:
            raise ValueError(f"levels must be in 1..{store.depth}, got {levels}")
        for b in books:
            if not 0 <= b < store.n_books:
                raise IndexError(f"book {b} out of range 0..{store.n_books - 1}")
        if len(set(books)) != len(books):
            raise ValueError("a book may be double-buffered once")
        n = len(books)
        self.store = store
        self.levels = levels
        self.slot_book = np.asarray(books, dtype=np.int64)
        self.book_slot = {b: i for i, b in enumerate(books)}
        self.seq = aligned_zeros(n * SLOT_WORDS)
        self.seq[D_SRC_SEQ::SLOT_WORDS] = -1   # publish at the first refresh
        self.chdr = aligned_zeros((n, 2, HDR_WORDS))
        self.cpx = aligned_zeros((n, 2, 2, levels))
        self.csz = aligned_zeros((n, 2, 2, levels))

    @property
    def arrays(self) -> tuple:
        """(seq, chdr, cpx, csz): the first arguments of every db_* kernel."""
        return self.seq, self.chdr, self.cpx, self.csz

    def refresh(self) -> int:
        """Publish the hot books written since their last publish (from the writer's
        thread, or while no writer runs)."""
        s = self.store
        return db_refresh_kernel(*self.arrays, self.slot_book, s.hdr, s.px, s.sz)

    def slot(self, book: int) -> int:
        return self.book_slot[book]

    def top(self, book: int, n: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        """(px[2, n], sz[2, n], nbid, nask) of the published copy, best first."""
        n = min(n, self.levels)
        out_px = np.zeros((2, n), np.int64)
        out_sz = np.zeros((2, n), np.int64)
        out_hdr = np.zeros(HDR_WORDS, np.int64)
        nb, na, _ = db_copy_top(*self.arrays, self.slot(book), n, out_px, out_sz, out_hdr)
        return out_px, out_sz, int(nb), int(na)

    def top_with_seq(self, book: int, n: int):
        """As ``top``, plus the book's seqlock value when the copy was published (equal
        to the store's current value iff the copy is still the book's latest state)."""
        n = min(n, self.levels)
        out_px = np.zeros((2, n), np.int64)
        out_sz = np.zeros((2, n), np.int64)
        out_hdr = np.zeros(HDR_WORDS, np.int64)
        nb, na, _ = db_copy_top(*self.arrays, self.slot(book), n, out_px, out_sz, out_hdr)
        return out_px, out_sz, int(nb), int(na), int(out_hdr[H_SEQLOCK])

    @property
    def publishes(self) -> int:
        return int(self.seq[D_PUBLISHES::SLOT_WORDS].sum())


__all__ = ["ASK", "BID", "DoubleBuffer", "db_best", "db_copy_top", "db_publish",
           "db_refresh", "db_refresh_kernel"]
