"""One SPSC queue per book, all preallocated in one pool, sized per book.

Each book gets its own ring (engine.ring layout: a CTL_WORDS control row and a
(REC_FIELDS, capacity) struct-of-arrays block), so a book's whole update stream is
one unit a worker can own, hand off or have stolen (engine.handoff).

Capacity rule: a push is all or nothing, so a ring must hold the largest message its
producer can send: a full snapshot of both sides (2 x levels) plus a checksum or end
record and a status record.  ``queue_capacity(levels)`` is the smallest power of two
>= 2 * levels + 2, and at least MIN_CAPACITY (so small books still absorb bursts of
small updates).  Cost: 64 bytes per record slot plus 256 bytes of control per book;
for 5000 books whose venues send up to 1000 levels a side that is 2048 slots =
128 KiB a book, 625 MiB in all, touched up front (prefaulted) so no page fault lands
on the hot path.  Venues that send 5000-level snapshots (Binance spot REST, Coinbase,
Bitstamp) need 16384 slots = 1 MiB a book.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.constants import REC_FIELDS
from engine.ring import C_FULL, C_HEAD, C_TAIL, CTL_WORDS, prefaulted

MIN_CAPACITY = 256
RECORD_BYTES = REC_FIELDS * 8


def queue_capacity(levels: int, minimum: int = MIN_CAPACITY) -> int:
    """Slots for a book whose largest message carries ``levels`` levels a side."""
    need = max(2 * int(levels) + 2, minimum, 2)
    cap = 1
    while cap < need:
        cap *= 2
    return cap


def pool_nbytes(capacities) -> int:
    """Bytes a QueuePool of these capacities allocates."""
    caps = np.asarray(capacities, dtype=np.int64)
    return int(caps.sum()) * RECORD_BYTES + len(caps) * CTL_WORDS * 8


@njit(nogil=True, inline="always")
def queue_data(buf, off, cap, q):
    """The (REC_FIELDS, cap[q]) record block of queue ``q`` (a view into ``buf``)."""
    c = cap[q]
    return buf[off[q]:off[q] + REC_FIELDS * c].reshape((REC_FIELDS, c))


class QueuePool:
    """``len(capacities)`` rings; ring ``q`` has ``capacities[q]`` slots (powers of two).

    ``ctl[q]`` is ring q's control row; its records live at
    ``buf[off[q] : off[q] + REC_FIELDS * cap[q]]`` (field-major)."""

    def __init__(self, capacities) -> None:
        caps = np.asarray(capacities, dtype=np.int64)
        if caps.ndim != 1 or len(caps) == 0:
            raise ValueError("QueuePool needs at least one capacity")
        bad = caps[(caps < 2) | (caps & (caps - 1) != 0)]
        if len(bad):
            raise ValueError(f"queue capacity must be a power of two >= 2, got {int(bad[0])}")
        self.cap = caps
        self.off = np.zeros(len(caps), dtype=np.int64)
        self.off[1:] = np.cumsum(caps[:-1] * REC_FIELDS)
        self.ctl = prefaulted((len(caps), CTL_WORDS))
        self.buf = prefaulted(int(caps.sum()) * REC_FIELDS)

    def __len__(self) -> int:
        return len(self.cap)

    @property
    def nbytes(self) -> int:
        return self.buf.nbytes + self.ctl.nbytes

    def data(self, q: int) -> np.ndarray:
        """Queue q's record block, shape (REC_FIELDS, cap[q]): what producers write."""
        c = int(self.cap[q])
        o = int(self.off[q])
        return self.buf[o:o + REC_FIELDS * c].reshape(REC_FIELDS, c)

    def depths(self) -> np.ndarray:
        """Records waiting in every queue (racy snapshot, fine for monitoring)."""
        return self.ctl[:, C_HEAD] - self.ctl[:, C_TAIL]

    def full_counts(self) -> np.ndarray:
        return self.ctl[:, C_FULL].copy()

    def pushed(self) -> np.ndarray:
        """Records ever pushed per queue (the producer's free-running head)."""
        return self.ctl[:, C_HEAD].copy()
