"""Per-book seqlock: one writer, any number of readers, readers never block the writer.

Protocol (Boehm, "Can seqlocks get along with programming language memory models?"):

  writer                                   reader
  s = seq (only the writer stores it)      s1 = load_acquire(seq); retry while odd
  store seq = s + 1                        copy the data (plain loads)
  fence_release                            fence_acquire
  write the data (plain stores)            s2 = load_relaxed(seq)
  store_release seq = s + 2                valid iff s1 == s2

Why each ordering is needed:
* fence_release after the odd store: a reader that observes any new data value must
  also observe seq >= s + 1 when it re-reads seq (fence-to-fence synchronisation);
  without it the data stores could become visible before the odd counter.
* store_release of s + 2: every data store is visible before the even counter, so a
  reader that starts (load_acquire) on s + 2 sees all of them.
* load_acquire of s1: the data loads cannot be performed before it.
* fence_acquire before s2: the data loads cannot be performed after the re-check;
  it is also a compiler barrier, so LLVM cannot hoist the re-check out of a retry loop.
A reader that raced a writer sees s1 != s2 (or odd s1) and copies again: torn copies
are discarded, never returned.  Writers of one book must be serialised by ownership
(one writer thread per book at a time); the seqlock does not arbitrate writers.
"""

from numba import njit

from engine.atomics import (
    cpu_relax,
    fence_acquire,
    fence_release,
    load_acquire,
    load_relaxed,
    sched_yield,
    store_relaxed,
    store_release,
)
from engine.constants import H_SEQLOCK, HDR_WORDS

SPIN_BEFORE_YIELD = 1000  # pause-spins waiting out a write before yielding the CPU: a
                          # writer preempted mid-section must get the core back


@njit(nogil=True, inline="always")
def write_begin(hdr, book):
    """Make ``book`` odd (being written); returns the counter to pass to write_end."""
    i = book * HDR_WORDS + H_SEQLOCK
    s = load_relaxed(hdr, i)
    store_relaxed(hdr, i, s + 1)
    fence_release()
    return s + 1


@njit(nogil=True, inline="always")
def write_end(hdr, book, odd):
    """Publish every store made since write_begin."""
    store_release(hdr, book * HDR_WORDS + H_SEQLOCK, odd + 1)


@njit(nogil=True, inline="always")
def read_begin(hdr, book):
    """Wait out a write in progress; returns the even counter the copy starts from."""
    i = book * HDR_WORDS + H_SEQLOCK
    s = load_acquire(hdr, i)
    spins = 0
    while s & 1:
        spins += 1
        if spins < SPIN_BEFORE_YIELD:
            cpu_relax()
        else:
            sched_yield()
        s = load_acquire(hdr, i)
    return s


@njit(nogil=True, inline="always")
def read_valid(hdr, book, start):
    """True when nothing was written to ``book`` since ``read_begin`` returned ``start``."""
    fence_acquire()
    return load_relaxed(hdr, book * HDR_WORDS + H_SEQLOCK) == start
