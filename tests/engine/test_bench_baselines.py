"""The engine benchmark's Python baseline books do the same work as the kernels: after
the same stream, every baseline holds the same best levels as the engine's books."""

import numpy as np
import pytest

from bench import engine as be
from engine.constants import ASK, BID, H_BID_LO, H_NBID, HDR_WORDS
from engine.kernels import S_WORDS, apply_records
from engine.store import BookStore


def _top(levels: dict, side: int, n: int) -> list[tuple[int, int]]:
    return sorted(levels.items(), reverse=(side == BID))[:n]


@pytest.mark.parametrize("name", list(be.BASELINES))
def test_baseline_books_end_equal_to_the_engine(name):
    kind, loop, _ = be.BASELINES[name]
    pytest.importorskip({"sortedcontainers": "sortedcontainers",
                         "order_book": "order_book"}.get(kind, "builtins"))
    n_books, depth = 40, 60
    store = BookStore(n_books, depth)
    snap, mask = be._as_ring_block(be.snapshot_block(n_books, depth))
    stats = np.zeros(S_WORDS, np.int64)
    apply_records(store.hdr, store.px, store.sz, snap, mask, 0, n_books * 2 * depth,
                  be.NO_HIST, stats)
    stream = be.update_stream(n_books, depth, 20_000)
    blk, mask = be._as_ring_block(stream)
    apply_records(store.hdr, store.px, store.sz, blk, mask, 0, stream.shape[1], be.NO_HIST,
                  stats)
    cols = be._stream_columns(stream)
    books = be._baseline_books(kind, n_books, depth, set(cols[0]))
    loop(books, cols)
    touched = 0
    for b in set(cols[0]):
        if kind == "order_book":
            sides = (books[b].bids.to_dict(), books[b].asks.to_dict())
        else:
            sides = (dict(books[b][BID]), dict(books[b][ASK]))
        for side in (BID, ASK):
            n = int(store.hdr[b * HDR_WORDS + H_NBID + side])
            lo = int(store.hdr[b * HDR_WORDS + H_BID_LO + side])
            engine = list(zip(store.px[b, side, lo:lo + n][::-1].tolist(),
                              store.sz[b, side, lo:lo + n][::-1].tolist()))
            # the engine keeps `depth` levels; an unbounded baseline may hold more
            assert engine[:20] == _top(sides[side], side, 20)
        if kind == "dict_best":  # the best prices it kept are the real ones
            assert books[b][2] == max(sides[BID]) and books[b][3] == min(sides[ASK])
        touched += 1
    assert touched > 10
