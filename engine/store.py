"""The book store: N books x D levels per side, struct-of-arrays, preallocated once.

Layout (one contiguous, 64-byte-aligned buffer, so it can later live in shared memory):

  hdr  int64[N * HDR_WORDS]     per-book header: seqlock, level counts, sequence,
                                timestamps, counters, status (128 bytes per book)
  px   int64[N, 2, R]           prices, side-major: a side's n levels are
                                px[b, side, lo:lo+n], worst first, best at lo+n-1
                                (n = H_NBID / H_NASK, lo = H_BID_LO / H_ASK_LO)
  sz   int64[N, 2, R]           sizes, same indexing

``depth`` (D rounded up to a multiple of 8) is how many levels a book may keep;
R = row_length(D) adds spare slots, so the levels can sit anywhere in the row:
evicting the worst level of a full side moves lo instead of the whole row, and a delete
or insert moves the shorter side (engine/kernels.py).  R is a multiple of 8, so every
side row starts on its own cache line: two books (or two sides) never share a cache
line the writer stores to.
"""

from __future__ import annotations

import numpy as np

from engine.constants import (
    CACHE_LINE,
    EMPTY,
    H_MAX_LEVELS,
    H_PRICE_DEC,
    H_SIZE_DEC,
    H_STATUS,
    HDR_WORDS,
)

MAX_DEPTH = 1 << 16


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def row_length(depth: int) -> int:
    """Slots per side row for books keeping up to ``depth`` levels: the depth rounded
    up to whole cache lines, plus spare slots (1/16 of it, at least 8).  With s spare
    slots, a side that stays full (a venue with more levels than the book keeps) moves
    its levels once every s/2 or so evictions instead of on every one."""
    d = _round_up(depth, 8)
    return d + max(8, _round_up(d // 16, 8))


def store_nbytes(n_books: int, depth: int, row: int | None = None) -> int:
    """Bytes needed by a store of this shape (excluding alignment slack)."""
    d = row_length(depth) if row is None else row
    return n_books * HDR_WORDS * 8 + 2 * n_books * 2 * d * 8


class BookStore:
    """Preallocated order books; the writer kernels and every reader share these arrays."""

    def __init__(self, n_books: int, depth: int, buffer: np.ndarray | None = None, *,
                 row: int | None = None, fresh: bool | None = None) -> None:
        """``depth`` levels kept per side by default; ``row``: the exact row length of
        an existing layout (a reader attaching to a shared segment); ``fresh``: set
        every book's kept depth in the header (default: when the store allocates its
        own buffer)."""
        if n_books < 1:
            raise ValueError(f"n_books must be >= 1, got {n_books}")
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be in 1..{MAX_DEPTH}, got {depth}")
        self.n_books = n_books
        self.depth = _round_up(depth, 8)  # levels a book may keep
        self.row = row_length(depth) if row is None else row  # slots per side row
        if self.row < self.depth:
            raise ValueError(f"row of {self.row} slots cannot hold {self.depth} levels")
        self.requested_depth = depth
        if fresh is None:
            fresh = buffer is None
        nbytes = store_nbytes(n_books, depth, self.row)
        if buffer is None:  # [platform] settings: huge pages, NUMA binding (or None)
            from engine.platform import store_buffer

            buffer = store_buffer(nbytes)
        if buffer is None:
            raw = np.empty(nbytes + CACHE_LINE, dtype=np.uint8)
            raw.fill(0)  # touch every page now, not on the hot path
            off = (-raw.ctypes.data) % CACHE_LINE
            buffer = raw[off:off + nbytes]
        if buffer.nbytes < nbytes or buffer.ctypes.data % CACHE_LINE:
            raise ValueError("store buffer too small or not 64-byte aligned")
        self.buffer = buffer
        words = buffer[:nbytes].view(np.int64)
        h = n_books * HDR_WORDS
        lv = n_books * 2 * self.row
        self.hdr = words[:h]
        self.px = words[h:h + lv].reshape(n_books, 2, self.row)
        self.sz = words[h + lv:h + 2 * lv].reshape(n_books, 2, self.row)
        self.names: list[str] = [""] * n_books
        if fresh:  # a book keeps ``self.depth`` levels until configure() says otherwise
            self.hdr.reshape(n_books, HDR_WORDS)[:, H_MAX_LEVELS] = self.depth

    def configure(self, book: int, name: str, price_decimals: int, size_decimals: int,
                  max_levels: int | None = None) -> None:
        """Name a book, fix its scales and how many levels per side it keeps (default:
        the depth asked of the store); call before any writer touches the book."""
        if not 0 <= price_decimals <= 18 or not 0 <= size_decimals <= 18:
            raise ValueError(f"decimals must be in 0..18, got {price_decimals}, {size_decimals}")
        keep = self.requested_depth if max_levels is None else max_levels
        if not 1 <= keep <= self.depth:
            raise ValueError(f"max_levels must be in 1..{self.depth}, got {keep}")
        h = book * HDR_WORDS
        self.hdr[h + H_MAX_LEVELS] = keep
        self.hdr[h + H_PRICE_DEC] = price_decimals
        self.hdr[h + H_SIZE_DEC] = size_decimals
        self.hdr[h + H_STATUS] = EMPTY
        self.names[book] = name

    def book(self, index: int):
        from engine.views import Book

        if not 0 <= index < self.n_books:
            raise IndexError(f"book {index} out of range 0..{self.n_books - 1}")
        return Book(self, index)

    def __repr__(self) -> str:
        mib = self.buffer.nbytes / 2**20
        return f"BookStore(n_books={self.n_books}, depth={self.depth}, {mib:.1f} MiB)"
