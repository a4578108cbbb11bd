"""The book store: N books x D levels per side, struct-of-arrays, preallocated once.

Layout (one contiguous, 64-byte-aligned buffer, so it can later live in shared memory):

  hdr  int64[N * HDR_WORDS]     per-book header: seqlock, level counts, sequence,
                                timestamps, counters, status (128 bytes per book)
  px   int64[N, 2, D]           prices, side-major, best level at index count-1
  sz   int64[N, 2, D]           sizes, same indexing

D is rounded up to a multiple of 8 so every side row starts on its own cache line:
two books (or two sides) never share a cache line the writer stores to.
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


def store_nbytes(n_books: int, depth: int) -> int:
    """Bytes needed by a store of this shape (excluding alignment slack)."""
    d = _round_up(depth, 8)
    return n_books * HDR_WORDS * 8 + 2 * n_books * 2 * d * 8


class BookStore:
    """Preallocated order books; the writer kernels and every reader share these arrays."""

    def __init__(self, n_books: int, depth: int, buffer: np.ndarray | None = None) -> None:
        if n_books < 1:
            raise ValueError(f"n_books must be >= 1, got {n_books}")
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be in 1..{MAX_DEPTH}, got {depth}")
        self.n_books = n_books
        self.depth = _round_up(depth, 8)
        self.requested_depth = depth
        nbytes = store_nbytes(n_books, depth)
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
        lv = n_books * 2 * self.depth
        self.hdr = words[:h]
        self.px = words[h:h + lv].reshape(n_books, 2, self.depth)
        self.sz = words[h + lv:h + 2 * lv].reshape(n_books, 2, self.depth)
        self.names: list[str] = [""] * n_books

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
