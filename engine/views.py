"""Python read API: a ``Book`` view over one book of a ``BookStore``.

Every read is one seqlock-validated copy made by a Numba reader (engine.read), so the
values returned together always come from the same published state of the book.
Prices and sizes come as floats (convenient) or exact fixed-point ints with the
book's decimals (``*_fixed``/``exact=True``); ``to_dict`` gives exact decimal strings.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine import read
from engine.constants import (
    ASK,
    BID,
    H_EXCH_SEQ,
    H_EXCH_TS,
    H_MESSAGES,
    H_NASK,
    H_NBID,
    H_PRICE_DEC,
    H_PUBLISH_TS,
    H_RECV_TS,
    H_SIZE_DEC,
    H_STATUS,
    H_UPDATES,
    HDR_WORDS,
    STATUS_NAMES,
)
from engine.fixedpoint import from_fixed


class Top(NamedTuple):
    """Top-of-book snapshot, best level first on both sides, all from one state.

    ``levels`` rows are bid px, bid size, ask px, ask size; the side arrays are views
    of it made on access (cheap to build: one kernel call, one allocation)."""

    levels: np.ndarray
    n_bid: int
    n_ask: int
    seq: int          # last exchange sequence applied
    exch_ts: int      # exchange timestamp of the last message, ns
    recv_ts: int      # local receive time of the last message, monotonic ns
    status_code: int

    @property
    def bid_px(self) -> np.ndarray:
        return self.levels[0, :self.n_bid]

    @property
    def bid_sz(self) -> np.ndarray:
        return self.levels[1, :self.n_bid]

    @property
    def ask_px(self) -> np.ndarray:
        return self.levels[2, :self.n_ask]

    @property
    def ask_sz(self) -> np.ndarray:
        return self.levels[3, :self.n_ask]

    @property
    def status(self) -> str:
        return STATUS_NAMES[self.status_code]


_top_into = read.top_into
_top_into_fixed = read.top_into_fixed
_top_flat = read.top_into_flat
_top_flat_fixed = read.top_into_flat_fixed
_empty = np.empty
_i64 = np.int64
_new_top = tuple.__new__


def _flat_words(hdr: np.ndarray, px: np.ndarray, sz: np.ndarray) -> np.ndarray | None:
    """One int64 view over hdr, px and sz when they lie back to back in memory (as
    ``BookStore`` lays them out), else None.  Lets the Python view pass one array
    to a reader kernel instead of three."""
    if not (hdr.flags.c_contiguous and px.flags.c_contiguous and sz.flags.c_contiguous):
        return None
    start = hdr.ctypes.data
    if px.ctypes.data != start + hdr.nbytes or sz.ctypes.data != start + hdr.nbytes + px.nbytes:
        return None
    n = hdr.size + px.size + sz.size
    return np.lib.stride_tricks.as_strided(hdr, shape=(n,), strides=(8,), writeable=False)


class Book:
    """Read-only view of one book; cheap to create, safe to use from any thread."""

    __slots__ = ("_hdr", "_px", "_sz", "index", "name", "_h", "_pscale", "_sscale",
                 "price_decimals", "size_decimals", "_depth", "_row", "_words", "_n_books")

    def __init__(self, store, index: int) -> None:
        self._hdr = store.hdr
        self._px = store.px
        self._sz = store.sz
        self._depth = store.depth
        self._row = store.px.shape[2]  # slots per side row (engine.store.row_length)
        self.index = index
        self.name = store.names[index]
        self._h = index * HDR_WORDS
        self.price_decimals = int(store.hdr[self._h + H_PRICE_DEC])
        self.size_decimals = int(store.hdr[self._h + H_SIZE_DEC])
        self._pscale = float(10 ** self.price_decimals)
        self._sscale = float(10 ** self.size_decimals)
        self._n_books = store.px.shape[0]
        self._words = _flat_words(store.hdr, store.px, store.sz)

    # -- top of book --------------------------------------------------------------
    def best_bid_fixed(self) -> tuple[int, int] | None:
        p, q, ok = read.best(self._hdr, self._px, self._sz, self.index, BID)
        return (p, q) if ok else None

    def best_ask_fixed(self) -> tuple[int, int] | None:
        p, q, ok = read.best(self._hdr, self._px, self._sz, self.index, ASK)
        return (p, q) if ok else None

    def best_bid(self) -> tuple[float, float] | None:
        """(price, size) of the best bid, or None when there are no bids."""
        p, q, ok = read.best(self._hdr, self._px, self._sz, self.index, BID)
        return (p / self._pscale, q / self._sscale) if ok else None

    def best_ask(self) -> tuple[float, float] | None:
        p, q, ok = read.best(self._hdr, self._px, self._sz, self.index, ASK)
        return (p / self._pscale, q / self._sscale) if ok else None

    def mid(self) -> float | None:
        two_mid, _, ok = read.mid_spread(self._hdr, self._px, self._sz, self.index)
        return two_mid / (2 * self._pscale) if ok else None

    def spread(self) -> float | None:
        _, spread, ok = read.mid_spread(self._hdr, self._px, self._sz, self.index)
        return spread / self._pscale if ok else None

    # -- depth ----------------------------------------------------------------------
    def _copy(self, n: int):
        n = max(0, min(n, self._px.shape[2]))
        out_px = np.empty((2, max(n, 1)), np.int64)
        out_sz = np.empty((2, max(n, 1)), np.int64)
        out_hdr = np.empty(HDR_WORDS, np.int64)
        nb, na = read.copy_top(self._hdr, self._px, self._sz, self.index, n,
                               out_px, out_sz, out_hdr)
        return out_px, out_sz, out_hdr, nb, na

    def top(self, n: int = 10, exact: bool = False) -> Top:
        """Top ``n`` levels per side as arrays (float64, or int64 fixed point if exact).
        The four arrays are views of one block, allocated here and filled by the reader
        kernel (cheaper from Python than an array allocated and returned by Numba)."""
        if n > self._depth or n < 0:
            n = max(0, min(n, self._depth))
        if self._words is not None:
            if exact:
                out = _empty((4, n), _i64)
                res = _top_flat_fixed(self._words, self._n_books, self._row, self.index, out)
            else:
                out = _empty((4, n))  # float64
                res = _top_flat(self._words, self._n_books, self._row, self.index, out)
        elif exact:
            out = _empty((4, n), _i64)
            res = _top_into_fixed(self._hdr, self._px, self._sz, self.index, out)
        else:
            out = _empty((4, n))
            res = _top_into(self._hdr, self._px, self._sz, self.index, out)
        return _new_top(Top, (out,) + res)

    def to_dict(self) -> dict:
        """The whole book, exact: prices and sizes as decimal strings, best first."""
        out_px, out_sz, out_hdr, nb, na = self._copy(self._px.shape[2])
        pd, sd = self.price_decimals, self.size_decimals

        def levels(side: int, n: int) -> list[list[str]]:
            return [[from_fixed(int(out_px[side, k]), pd), from_fixed(int(out_sz[side, k]), sd)]
                    for k in range(n)]

        return {
            "name": self.name,
            "status": STATUS_NAMES[int(out_hdr[H_STATUS])],
            "seq": int(out_hdr[H_EXCH_SEQ]),
            "exch_ts": int(out_hdr[H_EXCH_TS]),
            "recv_ts": int(out_hdr[H_RECV_TS]),
            "bids": levels(BID, nb),
            "asks": levels(ASK, na),
        }

    # -- state ----------------------------------------------------------------------
    def header(self) -> dict[str, int]:
        """Counters and stamps of the book, from one consistent copy."""
        _, _, h, _, _ = self._copy(0)
        return {
            "seq": int(h[H_EXCH_SEQ]), "exch_ts": int(h[H_EXCH_TS]),
            "recv_ts": int(h[H_RECV_TS]), "publish_ts": int(h[H_PUBLISH_TS]),
            "updates": int(h[H_UPDATES]), "messages": int(h[H_MESSAGES]),
            "bid_levels": int(h[H_NBID]), "ask_levels": int(h[H_NASK]),
            "status": int(h[H_STATUS]),
        }

    @property
    def seq(self) -> int:
        return int(read.last_seq(self._hdr, self.index))

    @property
    def status(self) -> str:
        return STATUS_NAMES[int(self._hdr[self._h + H_STATUS])]

    def __repr__(self) -> str:
        bbo = f"{self.best_bid()}/{self.best_ask()}"
        return f"Book({self.name or self.index!r}, status={self.status}, bbo={bbo})"
