"""The apply kernels against the dict reference, on random update streams."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.constants import (
    ASK,
    BID,
    CROSSED,
    F_CHECKSUM,
    F_CLEAR,
    F_END,
    F_NOLEVEL,
    F_STATUS,
    H_ABSENT_DELETES,
    H_BID_LO,
    H_CHECKSUM_FAIL,
    H_CHECKSUM_OK,
    H_CROSSED,
    H_DEPTH_DROPS,
    H_EXCH_SEQ,
    H_MESSAGES,
    H_NASK,
    H_NBID,
    H_STALE_EVENTS,
    H_STATUS,
    H_UPDATES,
    HDR_WORDS,
    LIVE,
    R_BOOK,
    R_FLAGS,
    R_PRICE,
    R_SEQ,
    R_SIDE,
    R_SIZE,
    REC_FIELDS,
    STALE,
)
from engine.histogram import new_hist
from engine.kernels import (
    APPLY_VARIANTS,
    S_BAD_RECORDS,
    S_SECTIONS,
    S_WORDS,
    SIMD_HEAD,
    SIMD_WINDOW,
    apply_records,
    set_level,
    set_level_scan,
    set_level_simd,
)
from engine.store import BookStore
from tests.engine.reference import RefBook

NO_HIST = np.zeros(0, np.int64)


def block(records):
    """records: (book, side, flags, price, size, seq) tuples -> (REC_FIELDS, cap) block."""
    cap = 1
    while cap < max(len(records), 1):
        cap *= 2
    data = np.zeros((REC_FIELDS, cap), np.int64)
    for k, (b, s, f, p, q, seq) in enumerate(records):
        data[R_BOOK, k], data[R_SIDE, k], data[R_FLAGS, k] = b, s, f
        data[R_PRICE, k], data[R_SIZE, k], data[R_SEQ, k] = p, q, seq
    return data, cap - 1


def book_levels(store, b, side):
    """(price, size) best first, straight from the rows: px[b, side, lo:lo+n]."""
    n = store.book(b).header()["bid_levels" if side == BID else "ask_levels"]
    lo = int(store.hdr[b * HDR_WORDS + H_BID_LO + side])
    px = store.px[b, side, lo:lo + n][::-1]
    sz = store.sz[b, side, lo:lo + n][::-1]
    return list(zip(px.tolist(), sz.tolist()))


level = st.tuples(st.sampled_from([BID, ASK]), st.integers(0, 120), st.integers(0, 3))
message = st.tuples(st.booleans(), st.lists(level, min_size=1, max_size=25))


KERNELS = [apply_records, *APPLY_VARIANTS.values()]


@settings(max_examples=150, deadline=None)
@given(depth=st.sampled_from([1, 3, 8, 20, 64]), stream=st.lists(message, min_size=1, max_size=30),
       n_books=st.integers(1, 3), data=st.data(), kernel=st.sampled_from(KERNELS))
def test_random_streams_match_reference(depth, stream, n_books, data, kernel):
    """Every compiled variant (prefetch on/off, scan or vectorised search) against the
    reference; the vectorised search's head and window (4 + 16) sit inside these depths."""
    apply_records = kernel
    store = BookStore(n_books, depth)
    refs = [RefBook(store.depth) for _ in range(n_books)]
    stats = np.zeros(S_WORDS, np.int64)
    for seq, (clear, levels) in enumerate(stream):
        b = data.draw(st.integers(0, n_books - 1))
        ref = refs[b]
        recs = []
        for k, (side, price, size) in enumerate(levels):
            flags = (F_CLEAR if clear and k == 0 else 0) | (F_END if k == len(levels) - 1 else 0)
            recs.append((b, side, flags, price, size, seq))
        if clear:
            ref.clear()
        for side, price, size in levels:
            ref.set(side, price, size)
        d, mask = block(recs)
        apply_records(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
        for side in (BID, ASK):  # after every message, every book, both sides
            for bb in range(n_books):
                assert book_levels(store, bb, side) == refs[bb].levels(side)
        h = b * HDR_WORDS
        assert store.hdr[h + H_EXCH_SEQ] == seq
        if ref.crossed():
            assert store.hdr[h + H_STATUS] == CROSSED
    assert stats[S_BAD_RECORDS] == 0
    for b in range(n_books):
        h = b * HDR_WORDS
        assert store.hdr[h + H_DEPTH_DROPS] == refs[b].depth_drops
        assert store.hdr[h + H_ABSENT_DELETES] == refs[b].absent_deletes


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 2)), max_size=600),
       setter=st.sampled_from([set_level, set_level_scan, set_level_simd]))
def test_deep_side_uses_binary_search_path(ops, setter):
    """Depth 1000 side with prices spread wide: most finds go past the linear scan."""
    depth = 1000
    p = np.zeros(depth, np.int64)
    q = np.zeros(depth, np.int64)
    ref = RefBook(depth)
    n = 0
    for price, size in ops:
        n, _ = setter(p, q, n, depth, price, size, ASK)
        ref.set(ASK, price, size)
    assert list(zip(p[:n][::-1].tolist(), q[:n][::-1].tolist())) == ref.levels(ASK)


def test_one_write_section_per_book_run_and_counters():
    store = BookStore(2, 8)
    stats = np.zeros(S_WORDS, np.int64)
    recs = [(0, BID, F_CLEAR, 100, 1, 7), (0, ASK, 0, 101, 1, 7), (0, BID, F_END, 99, 2, 7),
            (1, ASK, F_END, 50, 1, 3), (0, ASK, F_END, 102, 1, 8)]
    d, mask = block(recs)
    apply_records(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
    assert stats[S_SECTIONS] == 3  # book 0, book 1, book 0
    assert store.hdr[H_UPDATES] == 4 and store.hdr[H_MESSAGES] == 2
    assert store.hdr[0] == 4  # seqlock: two sections, each +2, even (published)
    assert store.hdr[HDR_WORDS] == 2


def test_crossed_book_is_flagged_and_live_cannot_hide_it():
    store = BookStore(1, 8)
    stats = np.zeros(S_WORDS, np.int64)
    recs = [(0, BID, F_CLEAR, 100, 1, 1), (0, ASK, F_END, 100, 1, 1),
            (0, 0, F_STATUS | F_END, 0, LIVE, -1)]
    d, mask = block(recs)
    apply_records(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
    assert store.hdr[H_STATUS] == CROSSED
    assert store.hdr[H_CROSSED] == 1
    # a resync that un-crosses the book and marks it live is accepted
    recs = [(0, BID, F_CLEAR, 99, 1, 2), (0, ASK, F_END, 100, 1, 2),
            (0, 0, F_STATUS | F_END, 0, LIVE, -1)]
    d, mask = block(recs)
    apply_records(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
    assert store.hdr[H_STATUS] == LIVE


def test_bad_book_or_side_is_dropped_and_counted():
    store = BookStore(2, 8)
    stats = np.zeros(S_WORDS, np.int64)
    recs = [(5, BID, F_END, 1, 1, 1), (-1, BID, F_END, 1, 1, 1), (1, 7, F_END, 1, 1, 1),
            (1, BID, F_END, 10, 1, 2)]
    d, mask = block(recs)
    apply_records(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
    assert stats[S_BAD_RECORDS] == 3
    assert book_levels(store, 1, BID) == [(10, 1)]


def test_clear_only_record_and_wraparound_positions():
    store = BookStore(1, 8)
    stats = np.zeros(S_WORDS, np.int64)
    hist = new_hist()
    # positions 6..9 in a capacity-8 block wrap to slots 6,7,0,1
    data = np.zeros((REC_FIELDS, 8), np.int64)
    for pos, (s, f, p, q) in zip(range(6, 10), [(BID, 0, 10, 1), (ASK, 0, 12, 1),
                                                (BID, F_CLEAR | F_NOLEVEL, 0, 0),
                                                (ASK, F_END, 13, 2)]):
        j = pos & 7
        data[R_SIDE, j], data[R_FLAGS, j], data[R_PRICE, j], data[R_SIZE, j] = s, f, p, q
    apply_records(store.hdr, store.px, store.sz, data, 7, 6, 10, hist, stats)
    assert book_levels(store, 0, BID) == []
    assert book_levels(store, 0, ASK) == [(13, 2)]
    assert hist.sum() == 1  # one message end -> one latency sample


@pytest.mark.parametrize("setter", [set_level_scan, set_level_simd])
@pytest.mark.parametrize("side", [BID, ASK])
@pytest.mark.parametrize("depth,span", [(1000, 3000), (64, 400), (200, 200),
                                        (SIMD_HEAD + 1, 12), (SIMD_HEAD + SIMD_WINDOW, 50),
                                        (SIMD_HEAD + SIMD_WINDOW + 1, 50)])
@pytest.mark.parametrize("seed", [1, 2])
def test_long_random_streams_every_search_path(setter, side, depth, span, seed):
    """Long streams grow sides past the 16-level scan window, so the interpolated deep
    search, its bracket edges and the full-side eviction all run many times; checked
    against the reference after every single update."""
    rng = np.random.default_rng(seed)
    p = np.zeros(depth, np.int64)
    q = np.zeros(depth, np.int64)
    ref = RefBook(depth)
    n = 0
    prices = rng.integers(0, span, 4000)
    sizes = np.where(rng.random(4000) < 0.25, 0, rng.integers(1, 9, 4000))
    most = 0
    for price, size in zip(prices.tolist(), sizes.tolist()):
        n, _ = setter(p, q, n, depth, price, size, side)
        most = max(most, n)
        ref.set(side, price, size)
        assert list(zip(p[:n][::-1].tolist(), q[:n][::-1].tolist())) == ref.levels(side)
    assert most > 2 * 16 or most == depth  # deep searches ran, or the side filled up


@pytest.mark.parametrize("kernel", KERNELS)
def test_binance_style_5000_level_books_match_reference(kernel):
    """Two full 5000-level books (a Binance-style deep snapshot), then a stream of
    8-level messages: mostly near the touch, some anywhere in the book, some beyond
    the held depth (dropped or evicting), inserts inside the spread, 20 % deletes,
    a re-snapshot half way; checked against the reference every 25 messages."""
    depth, n_books, mid = 5000, 2, 1_000_000
    store = BookStore(n_books, depth)
    refs = [RefBook(depth) for _ in range(n_books)]
    stats = np.zeros(S_WORDS, np.int64)
    rng = np.random.default_rng(5)

    def snapshot(b, shift):
        recs = []
        for side in (BID, ASK):
            for i in range(depth):
                price = mid + shift - 1 - 2 * i if side == BID else mid + shift + 1 + 2 * i
                recs.append((b, side, F_CLEAR if not recs else 0, price, 1 + i, 0))
        recs[-1] = recs[-1][:2] + (F_END,) + recs[-1][3:]
        refs[b].clear()
        for _, side, _, price, size, _ in recs:
            refs[b].set(side, price, size)
        return recs

    def run(recs):
        d, mask = block(recs)
        kernel(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)

    run(snapshot(0, 0) + snapshot(1, 500))
    for m in range(1200):
        b = int(rng.integers(0, n_books))
        if m == 600:
            run(snapshot(b, -300))
        recs = []
        for k in range(8):
            side = int(rng.integers(0, 2))
            r = rng.random()
            dist = (int(rng.geometric(0.3)) - 1 if r < 0.8 else
                    int(rng.integers(0, 2 * depth)) if r < 0.97 else -1)  # -1: in the spread
            sgn = -1 if side == BID else 1
            price = mid + sgn * (1 + dist)
            size = 0 if rng.random() < 0.2 else int(rng.integers(1, 100))
            recs.append((b, side, F_END if k == 7 else 0, price, size, m))
            refs[b].set(side, price, size)
        run(recs)
        if m % 25 == 0 or m == 1199:
            for bb in range(n_books):
                for side in (BID, ASK):
                    assert book_levels(store, bb, side) == refs[bb].levels(side)
    for b in range(n_books):
        h = b * HDR_WORDS
        assert store.hdr[h + H_DEPTH_DROPS] == refs[b].depth_drops > 0
        assert store.hdr[h + H_ABSENT_DELETES] == refs[b].absent_deletes > 0


def _ck_record(b, expected, scheme):
    return (b, 0, F_CHECKSUM | F_END, expected, scheme, 1)


def test_checksum_records_verify_against_zlib_and_mark_stale_on_mismatch():
    import zlib

    from engine.checksum import CK_KRAKEN, CK_OKX

    store = BookStore(1, 32)
    store.configure(0, "X", 1, 0)
    stats = np.zeros(S_WORDS, np.int64)
    # OKX's documented example: bids 3366.1x7, 3366x6; asks 3366.8x9, 3368x8
    okx = zlib.crc32(b"3366.1:7:3366.8:9:3366:6:3368:8")
    okx_signed = okx - 2**32 if okx >= 2**31 else okx
    kraken = zlib.crc32(b"336689" + b"336808" + b"336617" + b"336606")
    recs = [(0, BID, F_CLEAR, 33661, 7, 1), (0, BID, 0, 33660, 6, 1),
            (0, ASK, 0, 33668, 9, 1), (0, ASK, F_END, 33680, 8, 1),
            (0, 0, F_STATUS | F_END, 0, LIVE, -1),
            _ck_record(0, okx_signed, CK_OKX), _ck_record(0, kraken, CK_KRAKEN)]
    d, mask = block(recs)
    apply_records(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
    assert store.hdr[H_CHECKSUM_OK] == 2 and store.hdr[H_CHECKSUM_FAIL] == 0
    assert store.hdr[H_STATUS] == LIVE
    recs = [(0, ASK, F_END, 33668, 10, 2), _ck_record(0, okx_signed, CK_OKX)]  # stale sum
    d, mask = block(recs)
    apply_records(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
    assert store.hdr[H_CHECKSUM_FAIL] == 1 and store.hdr[H_STATUS] == STALE
    assert store.hdr[H_STALE_EVENTS] == 1


def test_live_status_cannot_revive_a_book_whose_checksum_failed():
    from engine.checksum import CK_OKX

    store = BookStore(1, 32)
    store.configure(0, "X", 1, 0)
    stats = np.zeros(S_WORDS, np.int64)
    recs = [(0, BID, F_CLEAR, 33661, 7, 1), (0, ASK, F_END, 33668, 9, 1),
            _ck_record(0, 12345, CK_OKX), (0, 0, F_STATUS | F_END, 0, LIVE, -1)]
    d, mask = block(recs)
    apply_records(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
    assert store.hdr[H_STATUS] == STALE  # the LIVE record after the mismatch is refused
    recs = [(0, BID, F_CLEAR | F_END, 33661, 7, 2), (0, 0, F_STATUS | F_END, 0, LIVE, -1)]
    d, mask = block(recs)
    apply_records(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
    assert store.hdr[H_STATUS] == LIVE  # a new snapshot clears the verdict


def test_a_book_keeps_exactly_its_configured_levels_not_the_rounded_row():
    store = BookStore(2, 10)           # rows are 16 long (whole cache lines)
    store.configure(0, "A", 0, 0)      # keeps 10 (the depth asked for)
    store.configure(1, "B", 0, 0, max_levels=3)
    stats = np.zeros(S_WORDS, np.int64)
    recs = [(b, BID, F_END, p, 1, 1) for b in (0, 1) for p in range(100, 120)]
    d, mask = block(recs)
    apply_records(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
    assert [p for p, _ in book_levels(store, 0, BID)] == list(range(119, 109, -1))
    assert [p for p, _ in book_levels(store, 1, BID)] == [119, 118, 117]
    with pytest.raises(ValueError, match="max_levels"):
        store.configure(1, "B", 0, 0, max_levels=17)


@settings(max_examples=200, deadline=None)
@given(levels=st.lists(st.tuples(st.integers(1, 10**18), st.integers(0, 10**18)), min_size=1,
                       max_size=30), pdec=st.integers(0, 12), sdec=st.integers(0, 12))
def test_checksum_text_matches_python_formatting(levels, pdec, sdec):
    """Both schemes against zlib over text formatted in Python, for any magnitudes."""
    import zlib

    from engine.checksum import CK_KRAKEN, CK_OKX, book_checksum
    from engine.fixedpoint import from_fixed

    store = BookStore(1, 32)
    store.configure(0, "X", pdec, sdec)
    bids = sorted({p: q for p, q in levels})
    asks = sorted({p + 10**18: q for p, q in levels}, reverse=True)
    sz = dict(levels)
    for side, prices in ((BID, bids), (ASK, asks)):
        for i, p in enumerate(prices[-32:]):
            store.px[0, side, i] = p
            store.sz[0, side, i] = sz[p if side == BID else p - 10**18]
        store.hdr[H_NBID if side == BID else H_NASK] = len(prices[-32:])
    nb, na = int(store.hdr[H_NBID]), int(store.hdr[H_NASK])
    bid_l = [(int(store.px[0, BID, nb - 1 - k]), int(store.sz[0, BID, nb - 1 - k]))
             for k in range(nb)]
    ask_l = [(int(store.px[0, ASK, na - 1 - k]), int(store.sz[0, ASK, na - 1 - k]))
             for k in range(na)]
    kraken = "".join(f"{p}{q}" for p, q in ask_l[:10] + bid_l[:10])
    assert book_checksum(store.hdr, store.px, store.sz, 0, CK_KRAKEN) == \
        zlib.crc32(kraken.encode())
    parts = []
    for k in range(25):
        if k < nb:
            parts += [from_fixed(bid_l[k][0], pdec), from_fixed(bid_l[k][1], sdec)]
        if k < na:
            parts += [from_fixed(ask_l[k][0], pdec), from_fixed(ask_l[k][1], sdec)]
    assert book_checksum(store.hdr, store.px, store.sz, 0, CK_OKX) == \
        zlib.crc32(":".join(parts).encode())


def test_borrowed_flat_is_a_view_of_the_whole_store():
    """The level setter works on borrowed_flat views of px/sz: every element, in C
    order, and writes through the view land in the store (a copy would lose them)."""
    from numba import njit

    from engine.atomics import borrowed_flat

    @njit
    def poke(a, i, v):
        f = borrowed_flat(a)
        f[i] = v
        return f.shape[0], f[a.size - 1]

    a = np.arange(2 * 2 * 5, dtype=np.int64).reshape(2, 2, 5)
    n, last = poke(a, 13, -7)
    assert n == a.size and last == a.size - 1
    assert a[1, 0, 3] == -7 and (a.ravel() == np.r_[np.arange(13), -7, np.arange(14, 20)]).all()


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_full_side_under_a_rising_market_evicts_by_moving_its_start(kernel):
    """Every update a new best bid on a side full to its depth: each one evicts the
    worst level.  The book must equal the reference after every message, the readers
    (Python view and checksum-free Numba copy) must see the best level, and the run must
    have moved through the row (lo changed, re-centred when it hit the row's end)
    rather than the whole row shifting."""
    depth = 64
    store = BookStore(1, depth)
    ref = RefBook(depth)
    stats = np.zeros(S_WORDS, np.int64)
    recs = [(0, BID, F_CLEAR if i == 0 else 0, 1000 - i, 1 + i, 0) for i in range(depth)]
    recs[-1] = recs[-1][:2] + (F_END,) + recs[-1][3:]
    for _, side, _, p, q, _ in recs:
        ref.set(side, p, q)
    d, mask = block(recs)
    kernel(store.hdr, store.px, store.sz, d, mask, 0, len(recs), NO_HIST, stats)
    los = set()
    for k in range(1, 300):
        d, mask = block([(0, BID, F_END, 1000 + k, k, k)])
        kernel(store.hdr, store.px, store.sz, d, mask, 0, 1, NO_HIST, stats)
        ref.set(BID, 1000 + k, k)
        los.add(int(store.hdr[H_BID_LO]))
        assert book_levels(store, 0, BID) == ref.levels(BID)
        top = store.book(0).top(3, exact=True)
        assert top.bid_px[0] == 1000 + k and top.n_bid == 3
    assert store.hdr[H_NBID] == depth
    assert len(los) > 3  # the start moved (and wrapped back when re-centred)
