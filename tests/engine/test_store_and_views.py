"""Store layout (cache lines) and the Python Book view."""

import numpy as np
import pytest

from engine.constants import (
    ASK,
    BID,
    CACHE_LINE,
    F_CLEAR,
    F_END,
    F_STATUS,
    HDR_WORDS,
    LIVE,
    R_BOOK,
    R_FLAGS,
    R_PRICE,
    R_SEQ,
    R_SIDE,
    R_SIZE,
    R_TS,
    REC_FIELDS,
)
from engine.fixedpoint import to_fixed
from engine.kernels import S_WORDS, apply_records
from engine.store import BookStore

NO_HIST = np.zeros(0, np.int64)


def test_layout_keeps_every_book_and_side_on_its_own_cache_lines():
    store = BookStore(5, 13)
    assert store.depth == 16  # rounded up to whole cache lines
    assert store.buffer.ctypes.data % CACHE_LINE == 0
    assert HDR_WORDS * 8 % CACHE_LINE == 0
    lines = {}
    for b in range(store.n_books):
        hdr_lines = {(store.hdr.ctypes.data + (b * HDR_WORDS + k) * 8) // CACHE_LINE
                     for k in range(HDR_WORDS)}
        for arr in (store.px, store.sz):
            for side in (BID, ASK):
                row = arr[b, side]
                assert row.ctypes.data % CACHE_LINE == 0
                row_lines = {(row.ctypes.data + k * 8) // CACHE_LINE for k in range(len(row))}
                for line in row_lines:
                    assert lines.setdefault(line, b) == b
        for line in hdr_lines:
            assert lines.setdefault(line, b) == b  # no line shared between two books


def test_store_rejects_bad_shapes():
    with pytest.raises(ValueError, match="depth"):
        BookStore(1, 0)
    with pytest.raises(ValueError, match="n_books"):
        BookStore(0, 10)
    store = BookStore(1, 8)
    with pytest.raises(ValueError, match="decimals"):
        store.configure(0, "X", 19, 2)
    with pytest.raises(IndexError):
        store.book(1)


def _apply(store, recs):
    data = np.zeros((REC_FIELDS, 64), np.int64)
    for k, (b, s, f, p, q, seq, ts) in enumerate(recs):
        data[[R_BOOK, R_SIDE, R_FLAGS, R_PRICE, R_SIZE, R_SEQ, R_TS], k] = b, s, f, p, q, seq, ts
    apply_records(store.hdr, store.px, store.sz, data, 63, 0, len(recs), NO_HIST,
                  np.zeros(S_WORDS, np.int64))


def test_book_view_reads_exact_and_float_forms():
    store = BookStore(2, 16)
    store.configure(0, "BTC-USDT", 2, 8)
    book = store.book(0)
    assert book.best_bid() is None and book.mid() is None and book.status == "empty"
    px = lambda s: to_fixed(s, 2)  # noqa: E731
    sz = lambda s: to_fixed(s, 8)  # noqa: E731
    _apply(store, [
        (0, BID, F_CLEAR, px("65000.10"), sz("0.5"), 11, 1_700_000_000_000_000_000),
        (0, BID, 0, px("64999.90"), sz("1.25"), 11, 0),
        (0, ASK, 0, px("65000.30"), sz("0.00000001"), 11, 0),
        (0, ASK, F_END, px("65001"), sz("3"), 11, 1_700_000_000_000_000_123),
        (0, 0, F_STATUS | F_END, 0, LIVE, -1, 0),
    ])
    assert book.best_bid() == (65000.1, 0.5)
    assert book.best_ask_fixed() == (6500030, 1)
    assert book.mid() == pytest.approx(65000.2)
    assert book.spread() == pytest.approx(0.2)
    top = book.top(5)
    assert top.bid_px.tolist() == [65000.1, 64999.9] and top.ask_sz.tolist() == [1e-8, 3.0]
    assert top.seq == 11 and top.status == "live"
    exact = book.top(1, exact=True)
    assert exact.bid_px.dtype == np.int64 and exact.bid_px.tolist() == [6500010]
    assert len(exact.ask_px) == 1
    d = book.to_dict()
    assert d["bids"] == [["65000.1", "0.5"], ["64999.9", "1.25"]]
    assert d["asks"] == [["65000.3", "0.00000001"], ["65001", "3"]]
    assert d["status"] == "live" and d["seq"] == 11
    assert d["exch_ts"] == 1_700_000_000_000_000_123
    h = book.header()
    assert h["updates"] == 4 and h["messages"] == 1 and h["bid_levels"] == 2
    assert book.seq == 11
    assert store.book(1).to_dict()["bids"] == []  # neighbour untouched


def test_top_flat_fast_path_equals_the_general_reader():
    """Book.top reads through one flat view of the store when hdr, px and sz lie back
    to back (as BookStore lays them out), else through the three arrays; both give
    the same levels, scaled by the book's decimals, for any n (clamped to the depth)."""
    from engine import views

    store = BookStore(3, 20)
    store.configure(1, "X", 3, 5)
    recs = [(1, BID, 0 if i else F_CLEAR, 100_000 - 7 * i, 1000 + i, 4, 9) for i in range(18)]
    recs += [(1, ASK, 0, 100_010 + 3 * i, 50 + i, 4, 9) for i in range(5)]
    recs[-1] = recs[-1][:2] + (F_END,) + recs[-1][3:]
    _apply(store, recs)
    fast = store.book(1)
    assert fast._words is not None
    slow = store.book(1)
    slow._words = None  # as for a store whose arrays are not one block
    assert views._flat_words(store.hdr, store.px[:, :, :8], store.sz) is None
    for n in (0, 1, 5, 18, 24, 1000):
        for exact in (False, True):
            a, b = fast.top(n, exact=exact), slow.top(n, exact=exact)
            for f in ("bid_px", "bid_sz", "ask_px", "ask_sz"):  # columns past n_* are unset
                assert np.array_equal(getattr(a, f), getattr(b, f))
            assert a[1:] == b[1:]
            m = min(n, 24)
            assert a.levels.shape == (4, m) and a.n_bid == min(m, 18) and a.n_ask == min(m, 5)
            assert a.seq == 4 and a.exch_ts == 9
        ex, fl = fast.top(n, exact=True), fast.top(n)
        assert fl.bid_px.tolist() == [p / 1e3 for p in ex.bid_px.tolist()]
        assert fl.ask_sz.tolist() == [q / 1e5 for q in ex.ask_sz.tolist()]
    assert fast.top(3, exact=True).bid_px.tolist() == [100_000, 99_993, 99_986]
    assert store.book(0).top(5).n_bid == 0  # neighbours untouched


def test_readers_clamp_a_torn_start_and_count_into_the_row():
    """A read racing the writer can pair one state's lo with another state's n (the
    seqlock check then throws the copy away).  Until then the readers must index inside
    the row: here the last book's ask side claims lo = row - 2 and n = 5 (no writer
    publishes that, it would run 3 slots past the row), and every reader stays in the
    row: the best slot is clamped to the row's last one, the count to what fits below."""
    from engine.constants import H_ASK_LO, H_NASK
    from engine.read import best, copy_top, top_slot

    store = BookStore(2, 8)
    row = store.px.shape[2]
    h = 1 * HDR_WORDS
    store.hdr[h + H_ASK_LO] = row - 2
    store.hdr[h + H_NASK] = 5
    store.px[1, ASK, row - 2:] = [20, 10]
    store.sz[1, ASK, row - 2:] = [2, 1]
    assert top_slot(store.hdr, h, ASK, row) == (row - 1, 5)
    store.hdr[h + H_ASK_LO] = 3 * row  # far past the row: the count shrinks to fit
    assert top_slot(store.hdr, h, ASK, row) == (row - 1, 5)
    store.hdr[h + H_NASK] = 2 * row
    assert top_slot(store.hdr, h, ASK, row) == (row - 1, row)
    store.hdr[h + H_ASK_LO] = row - 2
    store.hdr[h + H_NASK] = 5
    assert best(store.hdr, store.px, store.sz, 1, ASK) == (10, 1, True)
    out_px, out_sz, out_hdr = (np.zeros((2, 8), np.int64), np.zeros((2, 8), np.int64),
                               np.zeros(HDR_WORDS, np.int64))
    assert copy_top(store.hdr, store.px, store.sz, 1, 8, out_px, out_sz, out_hdr)[1] == 5
    assert out_px[ASK, :5].tolist() == [10, 20, 0, 0, 0]  # the row's top five slots
    top = store.book(1).top(8, exact=True)
    assert top.n_ask == 5 and top.ask_px[:5].tolist() == [10, 20, 0, 0, 0]
